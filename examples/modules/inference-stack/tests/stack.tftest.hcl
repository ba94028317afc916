# Module tests of inference-stack (Terraform >= 1.6, `terraform test`), against bentocloud-local:
# export BENTO_CLOUD_API_ENDPOINT, BENTO_CLOUD_API_KEY and BENTOCLOUD_STATUS_SYNC_PERIOD=3s,
# then `terraform init && terraform test` in the module directory. The provider is configured
# from those variables; `terraform test` destroys what the apply run creates.

variables {
  prefix = "tftest"
  labels = { team = "search" }
  components = {
    api = {
      bento        = "tftest_api:v1"
      min_replicas = 1
      max_replicas = 2
    }
    worker = {
      bento         = "tftest_worker:v1"
      instance_type = "cpu.2"
      envs          = { MODE = "batch" }
    }
  }
}

# What the module plans for each component, before anything exists.
run "plan_names_labels_and_settings" {
  command = plan

  assert {
    condition     = bentocloud_deployment.this["api"].name == "tftest-api" && bentocloud_deployment.this["worker"].name == "tftest-worker"
    error_message = "Deployment names must be <prefix>-<component>."
  }

  assert {
    condition     = bentocloud_deployment.this["worker"].labels == tomap({ team = "search", stack = "tftest", component = "worker" })
    error_message = "Each deployment must carry the module's labels plus `stack` and `component`."
  }

  assert {
    condition     = bentocloud_deployment.this["api"].min_replicas == 1 && bentocloud_deployment.this["api"].max_replicas == 2
    error_message = "Scaling must come from the component."
  }

  assert {
    condition     = bentocloud_deployment.this["worker"].instance_type == "cpu.2" && bentocloud_deployment.this["worker"].envs["MODE"] == "batch"
    error_message = "Instance type and envs must come from the component."
  }

  # `cluster` is not set here: the stack goes to the organisation's default cluster, which
  # the plan already shows (bentocloud-local's default is local-east).
  assert {
    condition     = bentocloud_deployment.this["api"].cluster == "local-east"
    error_message = "Without `cluster`, the stack must go to the default cluster local-east, not ${bentocloud_deployment.this["api"].cluster}."
  }
}

# The whole stack rolls out and serves.
run "apply_stack_serves" {
  assert {
    condition     = alltrue([for k, d in bentocloud_deployment.this : d.status == "running"])
    error_message = "Every component must be running after apply."
  }

  assert {
    condition     = length(output.urls) == 2 && alltrue([for k, u in output.urls : startswith(u, "http")])
    error_message = "Every component must have an endpoint URL."
  }

  assert {
    condition     = length(output.revisions) == 2 && alltrue([for k, r in output.revisions : r != ""])
    error_message = "Every component must report its revision."
  }
}

# A prefix that cannot start a deployment name is refused by the module, at plan time.
run "rejects_an_invalid_prefix" {
  command = plan

  variables {
    prefix = "Search_Stack"
  }

  expect_failures = [var.prefix]
}
