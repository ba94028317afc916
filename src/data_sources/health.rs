//! The health of one deployment, per service, as the `bentocloud_deployment` data source shows
//! it in `health`: desired, ready and total replicas, replicas per bento version (old and new
//! during a rollout), restarts, and the latest warnings of pods that are not ready.
//!
//! Read from the pods stream the official client uses (`ws/v2/deployments/{name}/pods`, API
//! doc §10), through the client the rollout waits use ([`Client::deployment_pods`]), and
//! counted with the rollout waits' own rules ([`pods_by_service`], [`pod_serves`],
//! [`pod_crashes`], [`pods_reason`]): nothing the real API lacks is read. [`summarise`] is
//! pure; [`read_health`] is the one read, and the one place its failure is decided.
//!
//! Why a computed `list(object)` attribute and not nested attributes or blocks: protocol-6
//! nested attributes crash Terraform 1.0.3, and a data source has no computed blocks; the
//! data source's `service` list is exposed the same way, and both Terraform 1.0.3 and 1.11.4
//! read such lists (`for` expressions, `check` blocks, outputs).
//!
//! What the stream does not carry, and so what `health` does not claim:
//! - **Which service a pod runs** on the platform's ancestor: its operator labels pods by
//!   deployment, bento repository, bento version and component type, not by service. Pods are
//!   counted per service when every pod names one ([`crate::wait::POD_SERVICE_LABEL`]), and a
//!   deployment with one service needs no label; otherwise one entry covers all services
//!   together (`service` null, `desired_replicas` their sum).
//! - **The platform's desired replica count**: the API reports none (an autoscaler may run
//!   more). `desired_replicas` is the floor the configuration asks for, `min_replicas` (API doc
//!   §5.3: `1` when unset), and `0` for a deployment that is stopped (`terminating`,
//!   `terminated`).
//! - **A restart counter**: the pod schema the provider reads (`KubePod`) has none. `restarts`
//!   counts the pods that show a restart: a crash loop, or Kubernetes' `BackOff` event ("Back-off
//!   restarting failed container"). A lower bound on container restarts.
//!
//! Canary versions' pods are not counted: `desired_replicas` is the main target's scaling, and
//! a canary's pods run another bento by design.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use tf_provider::schema::{Attribute, AttributeConstraint, AttributeType};
use tf_provider::value::Value;
use tf_provider::Diagnostics;

use crate::api::{Deployment, DeploymentStatus, KubePod, POD_BENTO_VERSION_LABEL};
use crate::client::{Client, ClientError};
use crate::diag;
use crate::schema::{attr, to_map};
use crate::wait::{pod_crashes, pod_serves, pods_by_service, pods_reason, RolloutTarget};

/// The pod label naming the bento repository a pod runs (the operator's; API doc §10).
pub const POD_BENTO_REPOSITORY_LABEL: &str = "yatai.ai/bento-repository";

/// The Kubernetes event reason of a container the kubelet restarts after a crash.
pub const RESTART_EVENT_REASON: &str = "BackOff";

/// At most this many warnings per service: the newest pods' first.
pub const MAX_WARNINGS: usize = 10;

/// The health of one service (or of all services together, `service: None`), in plain Rust:
/// what [`summarise`] computes, before it becomes Terraform values.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceHealth {
    pub service: Option<String>,
    pub desired: u32,
    pub ready: u32,
    pub total: u32,
    pub restarts: u32,
    /// Per bento (`repository:version`, or the version alone when the pods do not name the
    /// repository; `None` for pods with no version label), sorted.
    pub versions: Vec<VersionHealth>,
    pub warnings: Vec<String>,
}

/// The replicas of one bento within a service.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VersionHealth {
    pub bento: Option<String>,
    pub ready: u32,
    pub total: u32,
}

/// The bento a pod runs, from its labels.
fn bento_of(p: &KubePod) -> Option<String> {
    let version = p.labels.get(POD_BENTO_VERSION_LABEL)?;
    Some(match p.labels.get(POD_BENTO_REPOSITORY_LABEL) {
        Some(repo) if !repo.is_empty() => format!("{repo}:{version}"),
        _ => version.clone(),
    })
}

/// Whether `p` shows a container restart: a crash loop, or the kubelet's `BackOff` event.
pub fn shows_restart(p: &KubePod) -> bool {
    pod_crashes(p)
        || p.warnings
            .iter()
            .flatten()
            .any(|e| e.reason == RESTART_EVENT_REASON)
}

/// One service's health from its pods.
fn service_health(service: Option<String>, desired: u32, pods: &[&KubePod]) -> ServiceHealth {
    let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
    let mut versions: BTreeMap<Option<String>, VersionHealth> = BTreeMap::new();
    for p in pods {
        let bento = bento_of(p);
        let v = versions.entry(bento.clone()).or_insert(VersionHealth {
            bento,
            ready: 0,
            total: 0,
        });
        v.total += 1;
        v.ready += u32::from(pod_serves(p));
    }
    // The latest warnings: Kubernetes' events of the pods that do not serve, newest pods first
    // (RFC 3339 start times of one server sort as text; pods not started yet come first).
    let mut unready: Vec<&KubePod> = pods
        .iter()
        .copied()
        .filter(|p| !pod_serves(p) && p.warnings.as_ref().is_some_and(|w| !w.is_empty()))
        .collect();
    unready.sort_by(|a, b| {
        let start = |p: &KubePod| p.status.start_time.clone().unwrap_or_default();
        start(b).cmp(&start(a)).then_with(|| a.name.cmp(&b.name))
    });
    let warnings = unready
        .into_iter()
        .filter_map(|p| pods_reason(std::slice::from_ref(p), None))
        .take(MAX_WARNINGS)
        .collect();
    ServiceHealth {
        service,
        desired,
        ready: count(pods.iter().filter(|p| pod_serves(p)).count()),
        total: count(pods.len()),
        restarts: count(pods.iter().filter(|p| shows_restart(p)).count()),
        versions: versions.into_values().collect(),
        warnings,
    }
}

/// The health of each service of `target` (the deployment's latest revision) from its `pods`,
/// as the pods stream lists them. `entry_service` names the one service of a configuration
/// that names none. `stopped`: the deployment is terminating or terminated (nothing desired).
/// Pure.
///
/// One entry per service, by name, when the pods can be told apart by service (see the module
/// doc) or there are none; else one entry for all of them. Canary pods are left out.
pub fn summarise(
    target: &RolloutTarget,
    entry_service: Option<&str>,
    stopped: bool,
    pods: &[KubePod],
) -> Vec<ServiceHealth> {
    let desired = |min: u32| if stopped { 0 } else { min };
    let any_main = pods.iter().any(|p| !p.status.is_canary);
    if !any_main && !target.services.is_empty() {
        return target
            .services
            .iter()
            .map(|(name, b)| service_health(Some(name.clone()), desired(b.min), &[]))
            .collect();
    }
    pods_by_service(target, pods)
        .into_iter()
        .map(|(name, bounds, of)| {
            let service = if !name.is_empty() {
                Some(name)
            } else if target.services.len() == 1 {
                target.services.keys().next().cloned()
            } else if target.services.is_empty() {
                entry_service.map(str::to_string)
            } else {
                None
            };
            service_health(service, desired(bounds.min), &of)
        })
        .collect()
}

/// The health of deployment `d`: one pods-stream read, summarised. The read's error is the
/// caller's to report ([`read_health`]).
pub async fn deployment_health(
    client: &Client,
    d: &Deployment,
    entry_service: Option<&str>,
) -> Result<Vec<ServiceHealth>, ClientError> {
    let pods = client
        .deployment_pods(&d.cluster.meta.name, &d.meta.name)
        .await?;
    let stopped = matches!(
        d.status,
        DeploymentStatus::Terminating | DeploymentStatus::Terminated
    );
    Ok(summarise(
        &RolloutTarget::of(d),
        entry_service,
        stopped,
        &pods,
    ))
}

/// `health` of the data source for `d`: its services' health, or null with a warning naming
/// the cause when the pods stream cannot be read.
///
/// Why a warning and not an error: the pods stream is a websocket, and a proxy that does not
/// pass websockets, or a token allowed to read deployments but not their pods, is a lasting
/// property of the user's setup, not of this deployment. Failing the read would fail every plan
/// of a configuration that only wires the deployment's URL or bento into something else.
/// `health` is null (not an empty list, which would claim "no service"), so a `check` on it
/// sees "unknown", and the warning says why at once (one attempt, no retry: a permanent error
/// is not made slower by retrying it).
pub async fn read_health(
    client: &Client,
    d: &Deployment,
    entry_service: Option<&str>,
    diags: &mut Diagnostics,
) -> Value<Vec<HealthData>> {
    match deployment_health(client, d, entry_service).await {
        Ok(services) => Value::Value(services.into_iter().map(HealthData::from).collect()),
        Err(e) => {
            diag::health_unavailable(diags, &d.meta.name, &e);
            Value::Null
        }
    }
}

// ----- as Terraform values -----

/// One element of `health`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct HealthData {
    pub service: Value<String>,
    pub desired_replicas: Value<i64>,
    pub ready_replicas: Value<i64>,
    pub total_replicas: Value<i64>,
    pub restarts: Value<i64>,
    pub versions: Value<Vec<VersionData>>,
    pub warnings: Value<Vec<Value<String>>>,
}

/// One element of `health[*].versions`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct VersionData {
    pub bento: Value<String>,
    pub ready_replicas: Value<i64>,
    pub total_replicas: Value<i64>,
}

fn opt(s: Option<String>) -> Value<String> {
    s.map(Value::Value).unwrap_or(Value::Null)
}

impl From<ServiceHealth> for HealthData {
    fn from(h: ServiceHealth) -> Self {
        HealthData {
            service: opt(h.service),
            desired_replicas: Value::Value(h.desired.into()),
            ready_replicas: Value::Value(h.ready.into()),
            total_replicas: Value::Value(h.total.into()),
            restarts: Value::Value(h.restarts.into()),
            versions: Value::Value(
                h.versions
                    .into_iter()
                    .map(|v| VersionData {
                        bento: opt(v.bento),
                        ready_replicas: Value::Value(v.ready.into()),
                        total_replicas: Value::Value(v.total.into()),
                    })
                    .collect(),
            ),
            warnings: Value::Value(h.warnings.into_iter().map(Value::Value).collect()),
        }
    }
}

/// The object type of a list element with `fields`.
fn object_of(fields: &HashMap<String, Attribute>) -> AttributeType {
    AttributeType::Object(
        fields
            .iter()
            .map(|(k, a)| (k.clone(), a.attr_type.clone()))
            .collect(),
    )
}

/// The fields of one element of `health[*].versions` (also used to document them).
///
/// Names follow Terraform's conventions: snake_case, counts named for what they count
/// (`*_replicas`, as `min_replicas`/`max_replicas` are), the same names at both levels.
pub fn version_fields() -> HashMap<String, Attribute> {
    use AttributeConstraint::Computed;
    to_map(vec![
        ("bento", attr(AttributeType::String, Computed, "The bento these replicas run, as its pods' labels name it: `repository:version` (like the top-level `bento`), or the version alone when the pods do not name the repository; null for pods that name no version.")),
        ("ready_replicas", attr(AttributeType::Number, Computed, "Replicas of this bento that serve (ready and not terminating).")),
        ("total_replicas", attr(AttributeType::Number, Computed, "Replicas of this bento the platform lists: starting, serving, crashing or terminating.")),
    ])
}

/// The fields of one element of `health` (also used to document them).
pub fn health_fields() -> HashMap<String, Attribute> {
    use AttributeConstraint::Computed;
    to_map(vec![
        ("service", attr(AttributeType::String, Computed, "The service. Null when the platform's pods do not say which service they run and the deployment has several: the entry then covers all of them together.")),
        ("desired_replicas", attr(AttributeType::Number, Computed, "Replicas the configuration asks for: the service's `min_replicas` (`1` when unset, the platform's default; `0` while the deployment is stopped). BentoCloud does not report the autoscaler's current target, which may be higher.")),
        ("ready_replicas", attr(AttributeType::Number, Computed, "Replicas that serve: ready and not terminating. Below `desired_replicas` while replicas start, crash or fail their readiness probe.")),
        ("total_replicas", attr(AttributeType::Number, Computed, "Replicas the platform lists for the service: starting, serving, crashing, and old ones still terminating during a rollout. The sum of `versions[*].total_replicas`.")),
        ("restarts", attr(AttributeType::Number, Computed, "Replicas that show a container restart after a crash: in a crash loop (`CrashLoopBackOff`, `Error`, phase `Failed`) or with Kubernetes' `BackOff` event. A lower bound on container restarts: the pods stream carries no restart counter the provider reads.")),
        ("versions", attr(AttributeType::List(Box::new(object_of(&version_fields()))), Computed, "Replicas per bento, sorted by `bento`: one entry normally, two during a rolling update (the old bento's replicas going down, the new one's coming up).")),
        ("warnings", attr(AttributeType::List(Box::new(AttributeType::String)), Computed, "The latest Kubernetes warnings of replicas that do not serve (a failing readiness probe, a crash loop's `BackOff`), one line per replica with its name and bento version, newest replicas first, at most 10. Empty when every replica serves.")),
    ])
}

/// The `health` attribute of the `bentocloud_deployment` data source.
pub fn health_attribute() -> Attribute {
    attr(
        AttributeType::List(Box::new(object_of(&health_fields()))),
        AttributeConstraint::Computed,
        "Health of each service, read live from the pods stream the official client uses (one read per data source read): desired, ready and total replicas, replicas per bento version, restarts and the latest warnings. One entry per service, sorted by name. Null, with a warning, when the pods stream cannot be read (a proxy that does not pass websockets, a token not allowed to read pods): the rest of the data source is still read. Use it in a `check` block (Terraform 1.5 and later) to be warned when a deployment has fewer ready replicas than desired. Canary versions' replicas are not counted.",
    )
}

#[cfg(test)]
mod tests;
