data "bentocloud_deployment" "gateway" {
  name    = "llm-gateway"
  cluster = "local-east"
}

output "gateway_url" {
  value = data.bentocloud_deployment.gateway.url
}
