terraform {
  required_providers {
    bentocloud = {
      source  = "bentocloud/bentocloud"
      version = "~> 0.1"
    }
  }
}

# Credentials come from the provider block, else BENTO_CLOUD_API_KEY /
# BENTO_CLOUD_API_ENDPOINT, else the context saved by `bentoml cloud login`.
provider "bentocloud" {
  # endpoint = "https://my-org.cloud.bentoml.com"
  # api_key  = var.bentocloud_api_key
  cluster = "local-east"

  # One budget shared by every resource and data source of this provider.
  max_concurrent_requests = 16
  requests_per_second     = 50
}
