# The live health of a deployment, read with the `bentocloud_deployment` data source: ready
# replicas against desired ones, per service. This folder works with every Terraform version
# the provider supports (1.0 and later); with Terraform 1.5 and later, copy `check.tf.example`
# next to it as `check.tf` to be warned on every plan and apply when a service is short of
# ready replicas. (`check` blocks do not parse before Terraform 1.5, so the check is kept out
# of this folder's configuration.)

variable "deployment" {
  description = "The deployment to watch."
  type        = string
  default     = "ml-api"
}

variable "cluster" {
  description = "Its cluster."
  type        = string
  default     = "local-east"
}

data "bentocloud_deployment" "watched" {
  name    = var.deployment
  cluster = var.cluster
}

locals {
  # `health` is null when the pods stream cannot be read (the provider warns why).
  health = data.bentocloud_deployment.watched.health == null ? [] : data.bentocloud_deployment.watched.health

  # The services with fewer ready replicas than desired.
  short_of_replicas = [
    for h in local.health : h if h.ready_replicas < h.desired_replicas
  ]
}

output "short_of_replicas" {
  description = "Each service short of ready replicas (null: all services together), with how many are ready."
  value = {
    for h in local.short_of_replicas :
    coalesce(h.service, "all services") => "${h.ready_replicas} of ${h.desired_replicas} replicas ready"
  }
}
