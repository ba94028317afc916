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

output "ml_prod_urls" {
  value = { for d in data.bentocloud_deployments.ml_prod.deployments : d.name => d.url }
}
