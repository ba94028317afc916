//! The one place errors become Terraform diagnostics: summary, detail and attribute path.
//!
//! Client and wait errors already name the operation, the deployment, the HTTP status and the
//! server's message (and never the API key); this module adds what the user should do next.
//! The provider, the resources and the data sources call one function per kind of problem, so
//! every message they show is written here. Problems that are computed as values with their own
//! texts (`plan::validate`, `credentials::resolve`) are reported as they come.

use std::fmt::Display;

use tf_provider::{AttributePath, Diagnostics};

use crate::client::{ClientError, ErrorKind};
use crate::wait::WaitError;

/// One problem with a configuration, found before any API call: the attribute to fix, a short
/// summary, and a detail that says the fix. Every plan-time check (the deployment's and the
/// secret's rules, the lookups' inputs) returns these; [`report_problems`] is the one place
/// they become diagnostics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub path: AttributePath,
    pub summary: String,
    pub detail: String,
}

impl Problem {
    /// A problem at `path`.
    pub fn new(path: AttributePath, summary: impl Into<String>, detail: impl Into<String>) -> Self {
        Problem {
            path,
            summary: summary.into(),
            detail: detail.into(),
        }
    }

    /// A problem with the top-level attribute `attribute`.
    pub fn at(
        attribute: &'static str,
        summary: impl Into<String>,
        detail: impl Into<String>,
    ) -> Self {
        Problem::new(AttributePath::new(attribute), summary, detail)
    }
}

/// Adds each problem as an error on its attribute; whether there was any.
pub fn report_problems(diags: &mut Diagnostics, problems: Vec<Problem>) -> bool {
    let any = !problems.is_empty();
    for p in problems {
        diags.error(p.summary, p.detail, p.path);
    }
    any
}

/// Adds an error for a failed API call, at `path` (root when `None`).
pub fn api_error(
    diags: &mut Diagnostics,
    summary: &str,
    err: &ClientError,
    path: Option<AttributePath>,
) {
    let mut detail = err.to_string();
    if err.is_unauthorized() {
        detail.push_str(
            "\n\nBentoCloud rejected the API key: check `api_key` in the provider block or BENTO_CLOUD_API_KEY, or run `bentoml cloud login` again.",
        );
    } else if err.is_retryable() {
        detail.push_str("\n\nThis looks transient (the request was retried with back-off): run the command again.");
    }
    diags.error(summary.to_string(), detail, path.unwrap_or_default());
}

/// Adds an error for a rollout wait that did not end in success.
pub fn wait_error(diags: &mut Diagnostics, what: &str, id: &str, err: &WaitError) {
    let summary = match err {
        WaitError::Failed { .. } => format!("Rollout of {id} failed"),
        WaitError::TimedOut { .. } => format!("Timed out waiting for {what} of {id}"),
        WaitError::Cancelled { .. } => format!("Interrupted while waiting for {what} of {id}"),
        WaitError::Api(_) => format!("Lost track of {what} of {id}"),
    };
    diags.root_error(summary, err.to_string());
}

/// `cluster {name:?}`, or `the default cluster` for `""` (the organisation's default).
fn cluster_phrase(cluster: &str) -> String {
    if cluster.is_empty() {
        "the default cluster".to_string()
    } else {
        format!("cluster {cluster:?}")
    }
}

// ----- the provider block -----

/// A resource or data source needs the API, but `configure` did not succeed.
pub fn not_configured(diags: &mut Diagnostics) {
    diags.root_error(
        "The bentocloud provider is not configured",
        "The provider block could not be configured (see the errors above), so no BentoCloud API call can be made.",
    );
}

/// `endpoint` is not a usable URL.
pub fn invalid_endpoint(diags: &mut Diagnostics, endpoint: &str, why: &str) {
    diags.error(
        "Invalid BentoCloud endpoint",
        format!("`endpoint` = {endpoint:?} is not a usable URL: {why}. Use the full origin, e.g. \"https://my-org.cloud.bentoml.com\" or \"http://127.0.0.1:4780\"."),
        AttributePath::new("endpoint"),
    );
}

/// `max_concurrent_requests` is below 1.
pub fn invalid_max_concurrent_requests(diags: &mut Diagnostics, n: i64, default: i64) {
    diags.error(
        "Invalid max_concurrent_requests",
        format!("`max_concurrent_requests` is {n}: it must be at least 1 (default {default})."),
        AttributePath::new("max_concurrent_requests"),
    );
}

/// `requests_per_second` is not greater than 0.
pub fn invalid_requests_per_second(diags: &mut Diagnostics, r: f64, default: f64) {
    diags.error(
        "Invalid requests_per_second",
        format!("`requests_per_second` is {r}: it must be greater than 0 (default {default})."),
        AttributePath::new("requests_per_second"),
    );
}

/// The detail of a duration `setting` whose `text` does not parse (`why`).
pub fn not_a_duration(setting: &str, text: &str, why: &str) -> String {
    format!("{setting} = {text:?} is not a duration: {why}. Use a Go duration such as \"2m\" or \"90s\".")
}

/// `status_sync_period` (or its environment variable) is not a duration; `detail` from
/// [`not_a_duration`].
pub fn invalid_status_sync_period(diags: &mut Diagnostics, detail: String) {
    diags.error(
        "Invalid status_sync_period",
        detail,
        AttributePath::new("status_sync_period"),
    );
}

/// `BENTOCLOUD_REFRESH_BATCH` is not one of its values (an environment variable: no
/// attribute to point at).
pub fn invalid_refresh_batch(diags: &mut Diagnostics, detail: String) {
    diags.root_error("Invalid BENTOCLOUD_REFRESH_BATCH", detail);
}

/// The provider's `cluster` is empty.
pub fn empty_provider_cluster(diags: &mut Diagnostics) {
    diags.error(
        "Empty cluster",
        "`cluster` is empty: remove it to use the organisation's default cluster, or name a cluster.",
        AttributePath::new("cluster"),
    );
}

/// `endpoint` or `api_key` is unknown at `configure`.
pub fn configuration_unknown(diags: &mut Diagnostics) {
    diags.root_error(
        "Provider configuration depends on values not known yet",
        "`endpoint` or `api_key` is computed from a resource that does not exist yet. Apply that resource first (terraform apply -target=...), or pass the value through a variable.",
    );
}

/// The API client cannot be built from the configuration.
pub fn client_not_created(diags: &mut Diagnostics, err: &ClientError) {
    diags.error(
        "Cannot create the BentoCloud API client",
        err.to_string(),
        AttributePath::new("endpoint"),
    );
}

/// `configure`'s check of the API key was refused (`err`); the key came from `key_source` and
/// was sent to `endpoint`.
pub fn api_key_rejected(
    diags: &mut Diagnostics,
    err: &ClientError,
    key_source: impl Display,
    endpoint: impl Display,
) {
    diags.error(
        "BentoCloud rejected the API key",
        format!(
            "{err}. The key from {key_source} was refused by {endpoint}. Check `api_key` or the BENTO_CLOUD_API_KEY \
             environment variable, or run `bentoml cloud login` again."
        ),
        AttributePath::new("api_key"),
    );
}

/// `configure`'s first call found a rejected certificate or an unreachable endpoint
/// ([`ErrorKind::Certificate`], [`ErrorKind::Unreachable`]): every call would fail alike, so it
/// is said once, with the setting the endpoint came from (`came_from`).
pub fn endpoint_unusable(
    diags: &mut Diagnostics,
    err: &ClientError,
    endpoint: impl Display,
    came_from: &str,
) {
    let summary = match err.kind() {
        ErrorKind::Certificate => "Cannot verify the BentoCloud server's certificate",
        _ => "Cannot reach the BentoCloud endpoint",
    };
    diags.error(
        summary,
        format!("{err}\n\nThe endpoint {endpoint} came from {came_from}."),
        AttributePath::new("endpoint"),
    );
}

// ----- bentocloud_deployment -----

/// A deployment's state names neither `cluster`/`name` nor a `cluster/name` id, so it cannot
/// be found. A read (`on_read`) says what is missing; the apply paths only say what to do.
pub fn state_without_location(diags: &mut Diagnostics, on_read: bool) {
    let fix = "Remove it with `terraform state rm` and import it again.";
    let detail = if on_read {
        format!("The state of this bentocloud_deployment lacks `cluster`/`name` and a `cluster/name` id. {fix}")
    } else {
        fix.to_string()
    };
    diags.root_error("Deployment state has no cluster and name", detail);
}

/// The cluster a plan names does not exist (`err`: the not-found answer).
pub fn unknown_cluster(diags: &mut Diagnostics, cluster: &str, err: &ClientError) {
    diags.error(
        "Unknown cluster",
        format!("BentoCloud has no cluster {cluster:?} ({err}). Use a cluster of your organisation (`bentoml cloud` / the console lists them), or remove `cluster` to use the default."),
        AttributePath::new("cluster"),
    );
}

/// `cluster` offers no instance type `wanted` (set at `path`); it offers `offered`.
pub fn unknown_instance_type(
    diags: &mut Diagnostics,
    cluster: &str,
    wanted: &str,
    offered: &[String],
    path: AttributePath,
) {
    diags.error(
        "Unknown instance type",
        format!(
            "Cluster {cluster:?} offers no instance type {wanted:?}. Use one of: {}.",
            offered.join(", ")
        ),
        path,
    );
}

/// `bento` is not a bento tag.
pub fn invalid_bento(diags: &mut Diagnostics, why: String) {
    diags.error("Invalid bento", why, AttributePath::new("bento"));
}

/// Looking up the bento `tag` failed: it does not exist, or the API failed.
pub fn bento_lookup_failed(diags: &mut Diagnostics, tag: &str, err: &ClientError) {
    if err.is_not_found() {
        diags.error(
            "Bento not found",
            format!("BentoCloud has no bento {tag:?} ({err}). Push it first (`bentoml push {tag}`, or `bentoml build` then push), or fix `bento`."),
            AttributePath::new("bento"),
        );
    } else {
        api_error(
            diags,
            "Cannot look up the bento",
            err,
            Some(AttributePath::new("bento")),
        );
    }
}

/// A `service` block (at `path`) configures `service`, the bento's entry service.
pub fn entry_service_in_service_block(diags: &mut Diagnostics, service: &str, path: AttributePath) {
    diags.error(
        "Entry service configured in a service block",
        format!("{service:?} is the bento's entry service: set its settings with the top-level `instance_type`, `min_replicas`, `max_replicas` and `deployment_strategy`, and remove this block."),
        path,
    );
}

/// A `service` block (at `path`) names `service`, which bento `tag` does not have (`known`).
pub fn unknown_service(
    diags: &mut Diagnostics,
    tag: &str,
    service: &str,
    known: &[String],
    path: AttributePath,
) {
    diags.error(
        "Unknown service",
        format!(
            "Bento {tag:?} has no service {service:?}. Its services are: {}.",
            known.join(", ")
        ),
        path,
    );
}

/// The plan changes `bento`, which `bento_managed_externally` leaves to CI (a warning).
pub fn bento_managed_externally(diags: &mut Diagnostics) {
    diags.root_warning(
        "bento is managed externally",
        "`bento_managed_externally` is set, so the changed `bento` is recorded but not deployed: the running bento stays what CI deployed (see `deployed_bento`).",
    );
}

/// Creating deployment `name` in `cluster` (`""`: the default one) failed. A name taken
/// already (409, or "already exists") gets the import command.
pub fn create_failed(diags: &mut Diagnostics, name: &str, cluster: &str, err: &ClientError) {
    let where_ = cluster_phrase(cluster);
    if err.is_conflict() || err.is_already_exists() {
        let prefix = if cluster.is_empty() {
            String::new()
        } else {
            format!("{cluster}/")
        };
        diags.error(
            "Deployment already exists",
            format!("{err}\n\nA deployment named {name:?} already exists in {where_}. Import it to manage it with Terraform: terraform import <address> {prefix}{name}"),
            AttributePath::new("name"),
        );
    } else {
        api_error(
            diags,
            &format!("Cannot create deployment {name:?} in {where_}"),
            err,
            None,
        );
    }
}

/// `terraform import` of a secret `id` that BentoCloud does not have.
pub fn secret_import_not_found(diags: &mut Diagnostics, id: &str) {
    diags.root_error(
        "Cannot import a secret that does not exist",
        format!("BentoCloud has no secret {id:?}. Check the name (`bentoml secret list`) and, for a secret of another cluster, import it as `cluster/name`."),
    );
}

/// The deployment `id` an update is for no longer exists.
pub fn deleted_outside_terraform(diags: &mut Diagnostics, id: &str) {
    diags.root_error(
        format!("Deployment {id} was deleted outside Terraform"),
        "It no longer exists, so it cannot be updated. Run `terraform apply` again: the refresh drops it from state and the plan recreates it.",
    );
}

/// `id` reports a failing status (`failed`, `unhealthy`, ...) that no apply of this state
/// left (a warning at plan time: the plan changes nothing for it).
pub fn deployment_failing(diags: &mut Diagnostics, id: &str, status: &str, reason: Option<&str>) {
    let why = reason
        .map(|r| format!(" BentoCloud's reason: {r}."))
        .unwrap_or_default();
    diags.root_warning(
        format!("Deployment {id} is {status}"),
        format!(
            "BentoCloud reports the deployment {status}, and no apply of this Terraform state made it so (it turned {status} on its own, or through a change made elsewhere).{why} This plan does not change it for that reason alone: see its events and logs in the BentoCloud console. To re-submit the configuration anyway, use `terraform apply -replace` or change `redeploy_triggers`."
        ),
    );
}

/// `id` was stopped outside Terraform (a warning at plan time: the plan brings it back).
pub fn stopped_outside_terraform(diags: &mut Diagnostics, id: &str, status: &str) {
    diags.root_warning(
        format!("Deployment {id} was stopped outside Terraform"),
        format!(
            "BentoCloud reports it {status} (stopped from the console, `bentoml deployment terminate` or the API). This configuration manages a serving deployment, so apply starts it again with the configured settings and waits for it to serve. To keep it stopped, remove it from the configuration or from state (`terraform state rm`)."
        ),
    );
}

/// A rollback put the previous configuration (bento `bento`) of `id` back, as `revision` (a
/// warning).
pub fn rolled_back(diags: &mut Diagnostics, id: &str, bento: &str, revision: &str) {
    diags.root_warning(
        format!("Rolled back {id}"),
        format!(
            "The previous configuration (bento {bento}) is serving again, as revision {revision}."
        ),
    );
}

/// After Ctrl-C, the rollback (`revision`) was submitted but not confirmed within `deadline`.
pub fn rollback_unconfirmed(
    diags: &mut Diagnostics,
    id: &str,
    revision: &str,
    deadline: std::time::Duration,
    err: &WaitError,
) {
    diags.root_error(
        format!("Rollback of {id} not confirmed before the provider stopped"),
        format!(
            "The previous configuration was submitted as revision {revision}, and was not reported serving within the {}s the provider waits after an interrupt ({err}). The rollback goes on server-side; the next apply waits for it.",
            deadline.as_secs()
        ),
    );
}

/// The deployment changed on the server after the plan was made (`attributes` differ from
/// what Terraform manages): the apply refuses to overwrite that change.
pub fn changed_since_plan(
    diags: &mut Diagnostics,
    id: &str,
    planned_against: &str,
    server: &crate::api::Deployment,
    attributes: &[String],
) {
    let rev = server.latest_revision.as_ref();
    let uid = rev.map_or("?", |r| r.meta.uid.as_str());
    let who = rev
        .and_then(|r| r.creator.as_ref())
        .map(|u| u.meta.name.clone())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "an unknown user".to_string());
    let when = rev.map_or("an unknown time", |r| r.meta.created_at.as_str());
    diags.root_error(
        format!("Deployment {id} changed on BentoCloud after this plan was made"),
        format!(
            "Its latest revision {uid} was created by {who} at {when}; the plan was made against revision {planned_against}. It changed what Terraform manages ({}), so applying this plan would silently overwrite that change: nothing was applied. Run `terraform plan` again to see the change, then apply (or adopt it in the configuration).",
            attributes.join(", ")
        ),
    );
}

/// `terraform import` was given an ID that is not one (`why` says how).
pub fn invalid_import_id(diags: &mut Diagnostics, why: String) {
    diags.root_error("Invalid import ID", why);
}

/// `terraform import` names a deployment (`shown`) that does not exist.
pub fn import_not_found(diags: &mut Diagnostics, shown: &str) {
    diags.root_error(
        "Cannot import a deployment that does not exist",
        format!("BentoCloud has no deployment {shown}. Check the name and cluster (`bentoml deployment list`)."),
    );
}

// ----- data sources -----

/// `name` is not a deployment name.
pub fn invalid_deployment_name(diags: &mut Diagnostics, why: String) {
    diags.error("Invalid deployment name", why, AttributePath::new("name"));
}

/// The data source's deployment `name` does not exist in `cluster` (`""`: the default one).
pub fn deployment_not_found(diags: &mut Diagnostics, name: &str, cluster: &str) {
    diags.error(
        "Deployment not found",
        format!(
            "BentoCloud has no deployment {name:?} in {}. Check `name` and `cluster` (`bentoml deployment list` lists them).",
            cluster_phrase(cluster)
        ),
        AttributePath::new("name"),
    );
}

/// The data source read deployment `name` but not its pods: `health` is null (see
/// `data_sources::health::read_health` for why this is a warning, not an error).
pub fn health_unavailable(diags: &mut Diagnostics, name: &str, err: &ClientError) {
    let mut detail = format!(
        "`health` is null: {err}\n\nThe other attributes were read. The health comes from the pods stream the official client reads (a websocket, `/ws/v2/deployments/{name}/pods`): check that a proxy between Terraform and BentoCloud passes websockets and that the API token may read the deployment's pods."
    );
    if err.is_retryable() {
        detail.push_str(" This looks transient: the next plan reads it again.");
    }
    diags.warning(
        format!("Cannot read the health of deployment {name:?}"),
        detail,
        AttributePath::new("health"),
    );
}

/// The label `key` of a `labels` filter is not a label key.
pub fn invalid_label_key(diags: &mut Diagnostics, key: &str, why: String) {
    diags.error(
        "Invalid label key",
        why,
        AttributePath::new("labels").key(key.to_string()),
    );
}

/// The value of label `key` of a `labels` filter is not a label value.
pub fn invalid_label_value(diags: &mut Diagnostics, key: &str, why: String) {
    diags.error(
        "Invalid label value",
        why,
        AttributePath::new("labels").key(key.to_string()),
    );
}

/// Plan: a `bento` change that an apply will deliver through `progressive_rollout`'s steps.
pub fn progressive_path(
    diags: &mut Diagnostics,
    planned: &crate::resources::deployment::model::DeploymentState,
) {
    let p = planned.settings.progressive_rollout.as_ref_option();
    let steps: Vec<String> = p
        .and_then(|p| p.steps.as_ref_option())
        .into_iter()
        .flatten()
        .map(|s| match s.as_ref_option() {
            Some(n) => format!("{n}%"),
            None => "(known after apply)".to_string(),
        })
        .collect();
    let bake = p
        .and_then(|p| p.bake_time.as_ref_option().cloned())
        .unwrap_or_else(|| crate::resources::deployment::model::DEFAULT_BAKE_TIME.to_string());
    let bento = planned
        .spec
        .bento
        .as_ref_option()
        .cloned()
        .unwrap_or_default();
    diags.root_warning(
        "The bento change will be delivered progressively",
        format!(
            "Apply runs {bento} as a canary at {} (each step baked for {bake} and judged by `analysis`), then promotes it with a rolling update. A failing check, a timeout or Ctrl-C removes the canary and leaves the serving bento. Without `progressive_rollout`, the change would roll out at once.",
            steps.join(", then ")
        ),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_errors_keep_the_path_and_add_the_next_step() {
        let mut diags = Diagnostics::default();
        let unauthorized = ClientError::from_response(
            "get deployment \"a\"",
            401,
            br#"{"error":"invalid api token"}"#,
        );
        api_error(
            &mut diags,
            "Cannot read",
            &unauthorized,
            Some(AttributePath::new("bento")),
        );
        let transient = ClientError::from_response("list deployments", 503, b"");
        api_error(&mut diags, "Cannot list", &transient, None);
        assert_eq!(diags.errors[0].attribute, AttributePath::new("bento"));
        assert!(diags.errors[0].detail.contains("invalid api token"));
        assert!(diags.errors[0].detail.contains("bentoml cloud login"));
        assert!(diags.errors[1].detail.contains("transient"));
        assert!(!diags.errors[1].detail.contains("bentoml cloud login"));
    }

    #[test]
    fn a_taken_name_gets_the_import_command_other_create_errors_do_not() {
        let taken = ClientError::from_response(
            "create deployment \"iris\"",
            400,
            br#"{"error":"deployment \"iris\" already exists in cluster \"local-east\""}"#,
        );
        let mut diags = Diagnostics::default();
        create_failed(&mut diags, "iris", "local-east", &taken);
        create_failed(&mut diags, "iris", "", &taken);
        let bad = ClientError::from_response("create deployment \"iris\"", 400, b"bad bento");
        create_failed(&mut diags, "iris", "", &bad);
        let [first, second, third] = &diags.errors[..] else {
            panic!("three errors expected: {:?}", diags.errors)
        };
        assert_eq!(first.summary, "Deployment already exists");
        assert_eq!(first.attribute, AttributePath::new("name"));
        // (Details may carry a backtrace after the text when RUST_BACKTRACE is set.)
        assert!(first.detail.contains("already exists in cluster \"local-east\". Import it to manage it with Terraform: terraform import <address> local-east/iris"), "{}", first.detail);
        assert!(second.detail.contains("in the default cluster. Import it to manage it with Terraform: terraform import <address> iris"), "{}", second.detail);
        assert_eq!(
            third.summary,
            "Cannot create deployment \"iris\" in the default cluster"
        );
    }

    #[test]
    fn a_state_without_location_says_what_is_missing_on_read_only() {
        let mut diags = Diagnostics::default();
        state_without_location(&mut diags, true);
        state_without_location(&mut diags, false);
        let fix = "Remove it with `terraform state rm` and import it again.";
        assert!(diags.errors[0]
            .detail
            .starts_with("The state of this bentocloud_deployment lacks"));
        assert!(diags.errors[0].detail.contains(&format!("id. {fix}")));
        assert!(diags.errors[1].detail.starts_with(fix));
    }

    #[test]
    fn certificate_and_unreachable_errors_get_no_retry_advice() {
        use crate::client::ErrorKind;
        for kind in [ErrorKind::Certificate, ErrorKind::Unreachable] {
            let mut diags = Diagnostics::default();
            let e = ClientError::new("get the current user", kind, None, "set SSL_CERT_FILE");
            api_error(&mut diags, "Cannot read", &e, None);
            let detail = &diags.errors[0].detail;
            assert!(detail.contains("SSL_CERT_FILE"), "{detail}");
            assert!(
                !detail.contains("This looks transient") && !detail.contains("run the command"),
                "{detail}"
            );
        }
    }
}
