# The latest bento of a repository: deploy whatever was pushed last.
data "bentocloud_bento" "latest" {
  repository = "sentiment_analysis"
}

# A given version: does it exist, and which services does it declare?
data "bentocloud_bento" "candidate" {
  repository = "iris_classifier"
  version    = "v2"
}

output "latest_tag" {
  value = data.bentocloud_bento.latest.exists ? data.bentocloud_bento.latest.tag : "nothing pushed yet"
}

output "candidate_services" {
  value = data.bentocloud_bento.candidate.services
}
