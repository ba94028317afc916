# Quickstart: two deployments on two clusters, and the fleet read back through the data source.
#
# The endpoint and the API key come from BENTO_CLOUD_API_ENDPOINT / BENTO_CLOUD_API_KEY (the
# same variables the bentoml CLI reads); scripts/demo.sh sets them for a local bentocloud-local.
#
#   terraform init && terraform apply
#   terraform apply -var bento_version=v2     # rolling update to a new bento version

terraform {
  required_providers {
    bentocloud = {
      source  = "bentocloud/bentocloud"
      version = "~> 0.1.0"
    }
  }
}

variable "bento_version" {
  description = "Version of the iris_classifier bento to run."
  type        = string
  default     = "v1"
}

# No provider-level `cluster`: each deployment names its cluster, and the fleet data source
# below (which defaults to the provider's `cluster` when one is set) lists every cluster.
provider "bentocloud" {}

resource "bentocloud_deployment" "iris" {
  name    = "iris-classifier"
  cluster = "local-east"
  bento   = "iris_classifier:${var.bento_version}"

  labels = {
    team = "quickstart"
    app  = "iris"
  }
  envs = {
    LOG_LEVEL = "info"
  }

  instance_type = "cpu.2"
  min_replicas  = 2
  max_replicas  = 4
}

resource "bentocloud_deployment" "summarizer" {
  name    = "summarizer"
  cluster = "local-west"
  bento   = "summarizer:v1"

  labels = {
    team = "quickstart"
    app  = "summarizer"
  }
}

# The whole quickstart fleet, across both clusters (read after the deployments exist).
data "bentocloud_deployments" "fleet" {
  labels = {
    team = "quickstart"
  }
  depends_on = [bentocloud_deployment.iris, bentocloud_deployment.summarizer]
}

output "iris" {
  value = {
    id       = bentocloud_deployment.iris.id
    bento    = bentocloud_deployment.iris.bento
    status   = bentocloud_deployment.iris.status
    revision = bentocloud_deployment.iris.revision
    url      = bentocloud_deployment.iris.url
  }
}

output "fleet" {
  value = [for d in data.bentocloud_deployments.fleet.deployments : "${d.id}  ${d.bento}  ${d.status}"]
}
