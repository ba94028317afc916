resource "bentocloud_deployment" "sentiment" {
  name  = "sentiment-api"
  bento = "sentiment_analysis:v3"

  instance_type       = "cpu.2"
  min_replicas        = 2
  max_replicas        = 6
  deployment_strategy = "RollingUpdate" # zero-downtime rollouts (the default)

  labels = {
    team = "nlp"
    env  = "prod"
  }
  envs = {
    LOG_LEVEL = "info"
  }
  # Secret values stay in BentoCloud; only their names are in Terraform.
  secrets = ["hf-token"]

  # Fail fast with BentoCloud's reason, and put the previous revision back on failure.
  rollback_on_failure = true

  timeouts {
    create = "30m"
    update = "20m"
  }
}

output "sentiment_url" {
  value = bentocloud_deployment.sentiment.url
}
