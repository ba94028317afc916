terraform {
  required_providers {
    bentocloud = {
      source  = "bentocloud/bentocloud"
      version = "~> 0.1.0" # 0.x: a new minor version may break (see the CHANGELOG)
    }
  }
}

# Credentials come from the provider block, else BENTO_CLOUD_API_KEY /
# BENTO_CLOUD_API_ENDPOINT, else the context saved by `bentoml cloud login`.
provider "bentocloud" {
  # endpoint = "https://my-org.cloud.bentoml.com"
  # api_key  = var.bentocloud_api_key
  cluster = "local-east"

  # One budget shared by every resource and data source of this provider. The defaults are
  # 16 in flight and 500 a second; 50 a second leaves room under the organisation's API quota
  # for CI and the bentoml CLI.
  max_concurrent_requests = 16
  requests_per_second     = 50

  # Labels every deployment of this provider gets, under its own `labels`.
  default_labels = {
    managed-by = "terraform"
  }
}
