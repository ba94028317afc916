# Import by cluster and name:
terraform import bentocloud_deployment.sentiment local-east/sentiment-api

# Or by name alone, in the provider's default cluster:
terraform import bentocloud_deployment.sentiment sentiment-api
