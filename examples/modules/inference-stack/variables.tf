variable "prefix" {
  description = "Name prefix of every deployment of the stack (also the `stack` label)."
  type        = string
}

variable "cluster" {
  description = "Cluster of the stack; null for the provider's default."
  type        = string
  default     = null
}

variable "labels" {
  description = "Labels added to every deployment."
  type        = map(string)
  default     = {}
}

variable "components" {
  description = <<-EOT
    One deployment per entry, keyed by component name: { bento = "repo:version",
    instance_type = optional, min_replicas = optional (1), max_replicas = optional (1),
    envs = optional map }. (Typed as `any` so the module also runs on Terraform 1.0.)
  EOT
  type        = any
}
