output "urls" {
  description = "Endpoint URL of each component."
  value       = { for k, d in bentocloud_deployment.this : k => d.url }
}

output "revisions" {
  description = "Latest revision of each component (changes on every rollout)."
  value       = { for k, d in bentocloud_deployment.this : k => d.revision }
}
