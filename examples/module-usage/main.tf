terraform {
  required_providers {
    bentocloud = {
      source = "bentocloud/bentocloud"
    }
  }
}

provider "bentocloud" {}

module "search_stack" {
  source  = "../modules/inference-stack"
  prefix  = "search"
  cluster = "local-east"
  labels  = { team = "search" }

  components = {
    embed = {
      bento        = "text_embedder:v1"
      min_replicas = 1
      max_replicas = 3
    }
    rerank = {
      bento = "reranker:v2"
    }
    gateway = {
      bento         = "search_gateway:v5"
      instance_type = "cpu.2"
      envs          = { UPSTREAM_TIMEOUT = "10" }
    }
  }
}

# The whole stack, found again through the fleet data source.
data "bentocloud_deployments" "stack" {
  labels     = { stack = "search" }
  depends_on = [module.search_stack]
}

output "stack_urls" {
  value = module.search_stack.urls
}

output "stack_members" {
  value = data.bentocloud_deployments.stack.names
}
