# Every cluster of the organisation, and the default one.
data "bentocloud_clusters" "all" {}

output "cluster_names" {
  value = data.bentocloud_clusters.all.names
}

output "default_cluster" {
  value = data.bentocloud_clusters.all.default_cluster
}
