data "bentocloud_deployment" "gateway" {
  name    = "llm-gateway"
  cluster = "local-east"
}

output "gateway_url" {
  value = data.bentocloud_deployment.gateway.url
}

# `data.bentocloud_deployment.gateway.health` lists each service's ready replicas against
# desired ones, its replicas per bento version, restarts and latest warnings, read live.
# examples/health-check turns it into a `check` block that warns when a service is short of
# ready replicas (Terraform 1.5 and later).
