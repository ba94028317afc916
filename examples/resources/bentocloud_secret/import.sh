# Import an organisation secret by name (BentoCloud does not return values: the next apply
# writes the configured ones):
terraform import bentocloud_secret.db db-credentials

# A secret whose configuration sets `cluster = "local-east"`, by `cluster/name`:
terraform import bentocloud_secret.regional local-east/regional-credentials
