# The instance types of one cluster (leave `cluster` out for the default cluster).
data "bentocloud_instance_types" "east" {
  cluster = "local-east"
}

output "gpu_types" {
  # GPU counts are strings as BentoCloud gives them, e.g. "1"; null without GPU.
  value = {
    for t in data.bentocloud_instance_types.east.instance_types :
    t.name => "${t.gpu} x ${t.gpu_type} (${t.cpu} CPU, ${t.memory})" if t.gpu != null
  }
}
