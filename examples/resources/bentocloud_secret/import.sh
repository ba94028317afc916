# Import by name (values are not returned by BentoCloud: the next apply writes the configured ones):
terraform import bentocloud_secret.db db-credentials
