# Adopt an existing organisation secret by name. BentoCloud does not return secret values, so
# the next apply writes the configured ones.
import {
  to = bentocloud_secret.db
  id = "db-credentials"
}

# A secret whose configuration sets `cluster = "local-east"` is imported as `cluster/name`:
# import {
#   to = bentocloud_secret.regional
#   id = "local-east/regional-credentials"
# }
