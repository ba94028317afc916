variable "db_password" {
  type      = string
  sensitive = true
  default   = "change-me" # pass the real one with -var or TF_VAR_db_password
}

# Environment variables for the deployments that mount the secret.
resource "bentocloud_secret" "db" {
  name        = "db-credentials"
  description = "Database credentials of the sentiment API"
  items = {
    DB_USER     = "sentiment"
    DB_PASSWORD = var.db_password
  }
}

# Files: each item becomes a file under `path`.
resource "bentocloud_secret" "tls" {
  name = "sentiment-tls"
  type = "mountfile"
  path = "/etc/sentiment/tls"
  items = {
    "ca.pem" = "-----BEGIN CERTIFICATE-----\n...\n-----END CERTIFICATE-----\n"
  }
}

resource "bentocloud_deployment" "sentiment" {
  name    = "sentiment-secrets-demo"
  bento   = "sentiment_analysis:v3"
  secrets = [bentocloud_secret.db.name, bentocloud_secret.tls.name]

  # BentoCloud does not restart running replicas when a secret changes: redeploy when its
  # content version moves, so a rotated password reaches every replica (a rolling update).
  redeploy_triggers = {
    db  = bentocloud_secret.db.version
    tls = bentocloud_secret.tls.version
  }
}
