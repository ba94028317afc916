# A module composing several deployments that make up one inference stack
# (e.g. an embedding model, a reranker and a gateway), sharing labels and secrets.
terraform {
  required_providers {
    bentocloud = {
      source = "bentocloud/bentocloud"
    }
  }
}

resource "bentocloud_deployment" "this" {
  for_each = var.components

  name          = "${var.prefix}-${each.key}"
  cluster       = var.cluster
  bento         = each.value.bento
  instance_type = lookup(each.value, "instance_type", null)
  min_replicas  = lookup(each.value, "min_replicas", 1)
  max_replicas  = lookup(each.value, "max_replicas", 1)

  labels = merge(var.labels, { stack = var.prefix, component = each.key })
  envs   = lookup(each.value, "envs", {})

  rollback_on_failure = true
}
