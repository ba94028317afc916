# Every running deployment of the ML team in one cluster, all pages.
data "bentocloud_deployments" "ml_prod" {
  cluster = "local-east"
  search  = "api"
  query   = "status:running"
  labels = {
    team = "ml"
    env  = "prod"
  }
}

# `cluster/name` => bento and status of each.
output "ml_prod" {
  value = { for d in data.bentocloud_deployments.ml_prod.deployments : d.id => "${d.bento} (${d.status})" }
}

# BentoCloud's list returns no endpoint URLs (`url` is null in `deployments`): read each
# deployment for its URL.
data "bentocloud_deployment" "ml_prod" {
  for_each = toset(data.bentocloud_deployments.ml_prod.names)
  name     = each.key
  cluster  = "local-east"
}

output "ml_prod_urls" {
  value = { for name, d in data.bentocloud_deployment.ml_prod : name => d.url }
}
