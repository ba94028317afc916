# Adopt an existing deployment by cluster and name (`cluster/name`), or by name alone in the
# provider's default cluster; write its resource block first. `terraform plan` shows the import.
import {
  to = bentocloud_deployment.sentiment
  id = "local-east/sentiment-api"
}
