variable "prefix" {
  description = "Name prefix of every deployment of the stack (also the `stack` label)."
  type        = string

  validation {
    # Deployment names are `<prefix>-<component>`, DNS labels of at most 63 characters.
    condition     = can(regex("^[a-z0-9]([-a-z0-9]{0,30}[a-z0-9])?$", var.prefix))
    error_message = "The prefix must be 1 to 32 lowercase letters, digits and '-', starting and ending with a letter or digit (e.g. \"search\"): it starts every deployment name."
  }
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

  validation {
    condition     = alltrue([for k, c in var.components : can(regex("^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", k)) && can(tostring(c.bento))])
    error_message = "Every component needs a lowercase name (letters, digits, '-') and a `bento` (\"repo:version\"), e.g. { api = { bento = \"iris:v1\" } }."
  }
}
