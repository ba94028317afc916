resource "bentocloud_deployment" "sentiment" {
  name  = "sentiment-api"
  bento = "sentiment_analysis:v3"

  instance_type       = "cpu.2"
  min_replicas        = 2
  max_replicas        = 6
  deployment_strategy = "RollingUpdate" # zero-downtime rollouts (the default)

  # Autoscaling between min_replicas and max_replicas: add a replica per 20 requests a second,
  # at once; remove them only after 5 minutes of lower load.
  autoscaling_metrics = {
    qps = "20"
  }
  scale_up_behavior               = "fast"
  scale_down_behavior             = "stable"
  scale_down_stabilization_window = 300

  # Traffic: a request may run 60 s; a replica serves 8 at once, the rest queue.
  traffic_timeout         = 60
  traffic_max_concurrency = 8
  traffic_external_queue  = true
  # Any other `@bentoml.service` setting, as JSON (key order and spacing never make a diff).
  config_overrides = jsonencode({
    logging = { access = { enabled = false } }
  })

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
