//! The `bentocloud_deployment` resource's Terraform shape: its state struct and its schema.
//!
//! Every attribute's description says its default, its environment variable (if any) and its
//! effect; the docs under `docs/` are generated from these. Nested *blocks* are used (never
//! nested attributes), because nested attributes crash Terraform 1.0.3 with tf-provider 0.2.2.

use std::collections::{BTreeSet, HashMap};

use serde::{Deserialize, Serialize};
use tf_provider::schema::{
    Attribute, AttributeConstraint, AttributeType, Block, Description, NestedBlock, Schema,
};
use tf_provider::value::Value;

pub use crate::schema::StringMap;
pub use delivery::*;

mod delivery;
use crate::schema::{attr as a, str_map, to_map};

/// State of one `bentocloud_deployment`, in parts named by role. The rules that treat the
/// attributes by role are derived from these parts, not listed again:
///
/// - "did the spec change" (an API call is needed) compares [`Spec`]s ([`Spec::differs`]);
/// - "keep the serving spec after a failure" puts the serving [`Spec`] back whole;
/// - "what becomes unknown" is decided field by field in [`Reported`]'s own constructors, whose
///   struct literals the compiler checks for completeness;
/// - the data sources show [`Location`], [`Spec`] and [`Reported`], never [`Settings`].
///
/// The parts are flattened into one Terraform object: `every_part_round_trips_unknown_values`
/// pins that tf-provider's untagged `Value` survives the flattening in MessagePack and JSON.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DeploymentState {
    #[serde(flatten)]
    pub location: Location,
    #[serde(flatten)]
    pub spec: Spec,
    #[serde(flatten)]
    pub settings: Settings,
    #[serde(flatten)]
    pub reported: Reported,
    #[serde(flatten)]
    pub label_sets: LabelSets,
    #[serde(flatten)]
    pub canary: CanaryPart,
}

/// The label sets besides `labels` (the configured ones), as the Google provider has them:
/// `terraform_labels` = `labels` merged over the provider's `default_labels` (what Terraform
/// manages), `effective_labels` = every label the deployment has, whoever set it. A label set
/// elsewhere shows in `effective_labels` and is never removed; a managed one changed or removed
/// elsewhere shows as drift of `labels`/`terraform_labels`. Resource only: the data sources
/// show every label in `labels`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LabelSets {
    pub terraform_labels: Value<StringMap>,
    pub effective_labels: Value<StringMap>,
}

/// `labels` merged over `defaults` (a key in both takes `labels`' value); unknown when either
/// is unknown or holds an unknown value.
pub fn merged_labels(defaults: &Value<StringMap>, labels: &Value<StringMap>) -> Value<StringMap> {
    let known = |m: &Value<StringMap>| match m {
        Value::Value(m) if m.values().any(Value::is_unknown) => None,
        Value::Value(m) => Some(m.clone()),
        Value::Null => Some(StringMap::new()),
        Value::Unknown => None,
    };
    match (known(defaults), known(labels)) {
        (Some(mut d), Some(l)) => {
            d.extend(l);
            Value::Value(d)
        }
        _ => Value::Unknown,
    }
}

/// The labels a deployment has after Terraform writes `managed` over `current` (the server's
/// labels): keys Terraform managed before (`managed_before`) and no longer are removed, labels
/// set elsewhere stay. `None` when `managed` is not known; null manages none.
pub fn labels_after(
    current: &StringMap,
    managed_before: &Value<StringMap>,
    managed: &Value<StringMap>,
) -> Option<StringMap> {
    let none = StringMap::new();
    let managed = match managed {
        Value::Value(m) => m,
        Value::Null => &none,
        Value::Unknown => return None,
    };
    if managed.values().any(Value::is_unknown) {
        return None;
    }
    let mut out = current.clone();
    for k in managed_before
        .as_ref_option()
        .into_iter()
        .flat_map(|m| m.keys())
    {
        if !managed.contains_key(k) {
            out.remove(k);
        }
    }
    out.extend(managed.clone());
    Some(out)
}

/// Where the deployment is: changing `name` or `cluster` replaces it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Location {
    pub id: Value<String>,
    pub name: Value<String>,
    pub cluster: Value<String>,
}

/// What Terraform manages on the server: sent in the create and update bodies, read back by
/// refresh, and compared to decide whether an apply calls the API.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Spec {
    #[serde(default)]
    pub bento: Value<String>,
    #[serde(default)]
    pub access_authorization: Value<bool>,
    #[serde(default)]
    pub labels: Value<StringMap>,
    #[serde(default)]
    pub envs: Value<StringMap>,
    #[serde(default)]
    pub secrets: Value<BTreeSet<Value<String>>>,
    /// The entry service's settings (top-level attributes).
    #[serde(flatten)]
    pub entry: ServiceSettings,
    /// Settings of the other services (`service` blocks).
    #[serde(default)]
    pub service: Value<Vec<ServiceBlock>>,
}

impl Spec {
    /// The `service` blocks (none when `service` is null or unknown).
    pub fn service_blocks(&self) -> &[ServiceBlock] {
        self.service.as_ref_option().map_or(&[], Vec::as_slice)
    }

    /// Whether `planned` asks the server for something `self` (the prior) does not have. With
    /// `bento_managed_externally`, the bento is CI's: a difference in it alone is not a change.
    pub fn differs(&self, planned: &Spec, bento_managed_externally: bool) -> bool {
        if bento_managed_externally {
            let prior = Spec {
                bento: planned.bento.clone(),
                ..self.clone()
            };
            prior != *planned
        } else {
            self != planned
        }
    }
}

impl Spec {
    /// The attributes whose values differ between `self` and `other` (by serialised name),
    /// ignoring `bento` with `bento_managed_externally`: what a diagnostic names.
    pub fn differing_attributes(
        &self,
        other: &Spec,
        bento_managed_externally: bool,
    ) -> Vec<String> {
        let (a, b) = (
            serde_json::to_value(self).unwrap_or_default(),
            serde_json::to_value(other).unwrap_or_default(),
        );
        let mut out: Vec<String> = a
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(k, v)| b.get(k.as_str()) != Some(*v))
            .map(|(k, _)| k.clone())
            .filter(|k| !(bento_managed_externally && k == "bento"))
            .collect();
        out.sort();
        out
    }

    /// Whether applying `planned` over `self` (the prior) replaces the running replicas: any
    /// difference other than `min_replicas`/`max_replicas` (of the entry service or of a
    /// `service` block) does, and so does no difference at all (a re-submit, or a stopped
    /// deployment started again). Only a scaling-only change adds or removes replicas without
    /// replacing them. With `bento_managed_externally`, a difference in `bento` alone is not
    /// sent, so it replaces nothing. Pure: the rollout wait's [`crate::wait::Change`].
    pub fn restarts_replicas(&self, planned: &Spec, bento_managed_externally: bool) -> bool {
        fn unscaled(s: &Spec) -> Spec {
            let mut out = s.clone();
            // The autoscaling policy goes with the bounds: it configures the platform's
            // autoscaler (Yatai: the HPA object beside the pods), not the pods, so changing it
            // replaces no replica. `Change::Scale`'s judge holds either way (it waits until no
            // pod is pending or terminating), so a platform that did restart them is waited
            // for too. Traffic settings and `config_overrides` are the bento's own
            // configuration (BENTOML_CONFIG_OVERRIDES in the pods): they restart.
            out.entry.min_replicas = Value::Null;
            out.entry.max_replicas = Value::Null;
            out.entry.autoscaling = Autoscaling::default();
            if let Value::Value(blocks) = &mut out.service {
                for b in blocks.iter_mut() {
                    b.settings.min_replicas = Value::Null;
                    b.settings.max_replicas = Value::Null;
                    b.settings.autoscaling = Autoscaling::default();
                }
            }
            out
        }
        let prior = if bento_managed_externally {
            Spec {
                bento: planned.bento.clone(),
                ..self.clone()
            }
        } else {
            self.clone()
        };
        let scaling_only = prior != *planned && unscaled(&prior) == unscaled(planned);
        !scaling_only
    }
}

/// One service's settings: the entry service's (top-level attributes) and each `service`
/// block's.
///
/// Every setting is a flat, optional+computed attribute (a setting left out keeps what the
/// server has, whoever set it). Flat rather than nested: nested attributes crash Terraform
/// 1.0.3 with tf-provider 0.2.2, and a block cannot be computed, so a policy set elsewhere could
/// not be kept by a block. The names are the API's own (`scale_up_behavior`,
/// `cold_start_timeout`, ...), prefixed where the API nests them (`autoscaling_metrics` for
/// `scaling.policy.metrics`, `traffic_*` for `config_overrides.traffic.*`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ServiceSettings {
    pub instance_type: Value<String>,
    pub min_replicas: Value<i64>,
    pub max_replicas: Value<i64>,
    pub deployment_strategy: Value<String>,
    #[serde(flatten)]
    pub autoscaling: Autoscaling,
    #[serde(flatten)]
    pub traffic: TrafficSettings,
}

/// The autoscaling policy (`scaling.policy`): what to scale on, and how fast.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Autoscaling {
    /// Metric type → target value (`qps = "10"`, `memory = "2Gi"`).
    pub autoscaling_metrics: Value<StringMap>,
    pub scale_up_behavior: Value<String>,
    pub scale_down_behavior: Value<String>,
    pub scale_up_stabilization_window: Value<i64>,
    pub scale_down_stabilization_window: Value<i64>,
}

/// Traffic settings: the cold-start timeout, `config_overrides.traffic`'s typed keys, and the
/// rest of `config_overrides` as JSON text.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TrafficSettings {
    pub cold_start_timeout: Value<i64>,
    pub traffic_timeout: Value<f64>,
    pub traffic_max_concurrency: Value<i64>,
    pub traffic_external_queue: Value<bool>,
    pub config_overrides: JsonText,
}

/// A JSON document as text, equal to another that means the same (key order and whitespace
/// aside): comparing specs never sees a reformatted `jsonencode` as a change.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct JsonText(pub Value<String>);

impl PartialEq for JsonText {
    fn eq(&self, other: &Self) -> bool {
        match (&self.0, &other.0) {
            (Value::Value(a), Value::Value(b)) => a == b || same_json(a, b),
            (a, b) => a == b,
        }
    }
}

/// Whether two texts are the same JSON document.
pub fn same_json(a: &str, b: &str) -> bool {
    match (
        serde_json::from_str::<serde_json::Value>(a),
        serde_json::from_str::<serde_json::Value>(b),
    ) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

impl JsonText {
    pub fn is_null(&self) -> bool {
        self.0.is_null()
    }
}

impl ServiceSettings {
    /// Each setting left out (null) takes `prior`'s: optional+computed settings a
    /// configuration omits keep what the server has.
    pub fn fill_from(&mut self, prior: &ServiceSettings) {
        fn keep<T: Clone>(v: &mut Value<T>, prior: &Value<T>) {
            if v.is_null() {
                *v = prior.clone();
            }
        }
        // Destructured without `..`: a new setting must be decided here.
        let ServiceSettings {
            instance_type,
            min_replicas,
            max_replicas,
            deployment_strategy,
            autoscaling:
                Autoscaling {
                    autoscaling_metrics,
                    scale_up_behavior,
                    scale_down_behavior,
                    scale_up_stabilization_window,
                    scale_down_stabilization_window,
                },
            traffic:
                TrafficSettings {
                    cold_start_timeout,
                    traffic_timeout,
                    traffic_max_concurrency,
                    traffic_external_queue,
                    config_overrides,
                },
        } = self;
        let (pa, pt) = (&prior.autoscaling, &prior.traffic);
        keep(instance_type, &prior.instance_type);
        keep(min_replicas, &prior.min_replicas);
        keep(max_replicas, &prior.max_replicas);
        keep(deployment_strategy, &prior.deployment_strategy);
        keep(autoscaling_metrics, &pa.autoscaling_metrics);
        keep(scale_up_behavior, &pa.scale_up_behavior);
        keep(scale_down_behavior, &pa.scale_down_behavior);
        keep(
            scale_up_stabilization_window,
            &pa.scale_up_stabilization_window,
        );
        keep(
            scale_down_stabilization_window,
            &pa.scale_down_stabilization_window,
        );
        keep(cold_start_timeout, &pt.cold_start_timeout);
        keep(traffic_timeout, &pt.traffic_timeout);
        keep(traffic_max_concurrency, &pt.traffic_max_concurrency);
        keep(traffic_external_queue, &pt.traffic_external_queue);
        keep(&mut config_overrides.0, &pt.config_overrides.0);
    }
}

/// One `service` block: settings of a named service of a multi-service bento.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ServiceBlock {
    #[serde(default)]
    pub name: Value<String>,
    #[serde(flatten)]
    pub settings: ServiceSettings,
    #[serde(default)]
    pub envs: Value<StringMap>,
}

/// Terraform-only settings: how apply behaves. Never sent to the server, never in data sources.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    pub wait_for_rollout: Value<bool>,
    pub rollback_on_failure: Value<bool>,
    pub bento_managed_externally: Value<bool>,
    pub rollback_on_interrupt: Value<bool>,
    /// Free-form values; any change redeploys (a new revision of the same spec).
    pub redeploy_triggers: Value<StringMap>,
    #[serde(with = "tf_provider::value::serde_as_vec")]
    pub timeouts: Value<Timeouts>,
    #[serde(with = "tf_provider::value::serde_as_vec")]
    pub progressive_rollout: Value<ProgressiveRollout>,
}

impl Settings {
    /// Whether `planned`'s `redeploy_triggers` ask for a redeploy after `self`'s (the prior
    /// state's): any key added, removed or changed. A prior without triggers (null: the
    /// attribute was just added, or the deployment was just imported) only starts recording
    /// them, so adopting the attribute or importing does not redeploy. An unknown value counts
    /// as a change: plan cannot tell, and apply compares again with known values.
    pub fn redeploy_requested(&self, planned: &Settings) -> bool {
        let Value::Value(prior) = &self.redeploy_triggers else {
            return false;
        };
        match &planned.redeploy_triggers {
            Value::Value(now) => prior != now || now.values().any(Value::is_unknown),
            Value::Null => !prior.is_empty(),
            Value::Unknown => true,
        }
    }
}

/// What the server reports about the deployment (computed attributes).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Reported {
    pub status: Value<String>,
    pub url: Value<String>,
    pub revision: Value<String>,
    pub deployed_bento: Value<String>,
    pub created_at: Value<String>,
    pub updated_at: Value<String>,
    pub creator: Value<String>,
}

impl Reported {
    /// Nothing is known yet: a deployment to be created (or replaced).
    pub fn unknown() -> Self {
        Self {
            status: Value::Unknown,
            url: Value::Unknown,
            revision: Value::Unknown,
            deployed_bento: Value::Unknown,
            created_at: Value::Unknown,
            updated_at: Value::Unknown,
            creator: Value::Unknown,
        }
    }

    /// What an apply that rolls out (or waits for a rollout) changes; the rest stays.
    pub fn after_rollout(&self) -> Self {
        Self {
            status: Value::Unknown,
            url: self.url.clone(),
            revision: Value::Unknown,
            deployed_bento: Value::Unknown,
            created_at: self.created_at.clone(),
            updated_at: Value::Unknown,
            creator: self.creator.clone(),
        }
    }
}

/// The `timeouts` block (Go durations).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Timeouts {
    pub create: Value<String>,
    pub update: Value<String>,
    pub delete: Value<String>,
}

/// The resource's private state: what this state's last apply left behind, keyed on the
/// revision it submitted. Refresh keeps it while that revision is still the server's latest
/// (a newer revision, made elsewhere, is not ours to wait for or to re-submit):
///
/// - **unconfirmed** (`failed` null or false): the wait was interrupted or timed out, so the
///   next apply resumes waiting for the revision even when the refreshed status is a stale
///   `running` (BentoCloud refreshes status after the fact, see `crate::wait`);
/// - **failed** (`failed = true`): the rollout of the revision failed, so the previous
///   configuration still serves; the next apply re-submits the configuration even when no
///   attribute changed (reverting a bad change converges too). A deployment that turns
///   `failed` or `unhealthy` on its own carries no such marker: the status alone never makes
///   a plan show a change.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Unconfirmed {
    pub revision: Value<String>,
    /// The rollout of `revision` failed (absent in states written before it existed: those
    /// markers were all "unconfirmed").
    pub failed: Value<bool>,
}

/// `Null` (the empty private state of every resource before this one existed) or a marker.
pub type Private = Value<Unconfirmed>;

/// What this state's last apply left behind, read from its private state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LastApply {
    /// Nothing to resume or re-submit.
    Settled,
    /// A rollout whose wait was interrupted or timed out: the next apply waits for it.
    Unconfirmed,
    /// A rollout that failed: the next apply re-submits the configuration.
    Failed,
}

/// The revision a private state names (unconfirmed or failed), if any.
pub fn marked_revision(p: &Private) -> Option<&str> {
    p.as_ref_option()
        .and_then(|u| u.revision.as_ref_option())
        .map(String::as_str)
        .filter(|r| !r.is_empty())
}

/// What the private state says the last apply left.
pub fn last_apply(p: &Private) -> LastApply {
    match (marked_revision(p), p.as_ref_option().map(|u| &u.failed)) {
        (None, _) => LastApply::Settled,
        (Some(_), Some(Value::Value(true))) => LastApply::Failed,
        (Some(_), _) => LastApply::Unconfirmed,
    }
}

/// The unconfirmed revision a private state names, if any (not a failed one).
pub fn unconfirmed_revision(p: &Private) -> Option<&str> {
    marked_revision(p).filter(|_| last_apply(p) == LastApply::Unconfirmed)
}

/// A private state naming `revision` as unconfirmed.
pub fn unconfirmed(revision: &str) -> Private {
    Value::Value(Unconfirmed {
        revision: Value::Value(revision.to_string()),
        failed: Value::Null,
    })
}

/// A private state naming `revision` as the one whose rollout failed.
pub fn failed(revision: &str) -> Private {
    Value::Value(Unconfirmed {
        revision: Value::Value(revision.to_string()),
        failed: Value::Value(true),
    })
}

/// The private state refresh keeps when the server's latest revision is `latest`: the marker
/// while it names that revision, else none.
pub fn private_after_refresh(p: Private, latest: Option<&str>) -> Private {
    match marked_revision(&p) {
        Some(r) if latest == Some(r) => p,
        _ => Value::Null,
    }
}

/// Default `timeouts.create` / `timeouts.update`.
pub const DEFAULT_ROLLOUT_TIMEOUT: &str = "30m";
/// Default `timeouts.delete`.
pub const DEFAULT_DELETE_TIMEOUT: &str = "10m";
/// Default rollout strategy of a new deployment.
pub const DEFAULT_STRATEGY: &str = crate::api::Strategy::RollingUpdate.as_str();

/// Attributes shared by the resource and the data sources, as computed outputs or inputs.
/// `c` picks the constraint for the configurable ones. The descriptions follow who uses them:
/// the resource's say what setting an attribute does (defaults, rollouts, replacement); the
/// data sources', which read a deployment (`c` makes its `bento` computed), say what it shows.
pub fn deployment_attributes(
    c: impl Fn(&str) -> AttributeConstraint,
) -> HashMap<String, Attribute> {
    use AttributeType::{Bool, Number, String as Str};
    let reads = c("bento") == AttributeConstraint::Computed;
    // (name, type, constraint, the resource's description, the data sources' description)
    let rows: Vec<(&str, AttributeType, AttributeConstraint, &str, &str)> = vec![
        ("id", Str, AttributeConstraint::Computed, "`cluster/name` of the deployment; also the import ID.", "`cluster/name` of the deployment (what `terraform import` of a `bentocloud_deployment` takes)."),
        ("name", Str, c("name"), "Deployment name: lowercase letters, digits and `-`, at most 63 characters, unique in its cluster. Changing it replaces the deployment (a new one is created, then the old one is destroyed).", "Name of the deployment (unique in its cluster)."),
        ("cluster", Str, c("cluster"), "Cluster to deploy to. Default: the provider's `cluster`, else the organisation's default cluster. Changing it replaces the deployment.", "Cluster of the deployment. Reading one deployment without it: the provider's `cluster`, else the organisation's default cluster."),
        ("bento", Str, c("bento"), "Bento to serve, as `repository:version` (e.g. `iris_classifier:v2`); `repository` alone (or `repository:latest`) means its newest version, resolved when the deployment is created or `bento` changes; other changes keep the running version, so a newer push is not picked up until `bento` changes (see `deployed_bento`). Changing it triggers a rollout using `deployment_strategy` (a rolling update by default, with zero downtime).", "Bento of the deployment's latest revision, as `repository:version` (e.g. `iris_classifier:v2`)."),
        ("access_authorization", Bool, c("access_authorization"), "Whether the endpoint requires an API token. Default `false` (public endpoint).", "Whether the endpoint requires an API token (`false`: a public endpoint)."),
        ("labels", str_map(), c("labels"), "Labels of the deployment (`key = value`), merged over the provider's `default_labels` (see `terraform_labels`). Keys use letters, digits, `-`, `_`, `.` and an optional DNS prefix (`example.com/team`). Default: none. Usable as a filter in `bentocloud_deployments`. Only the labels configured here are Terraform's: labels set elsewhere stay (see `effective_labels`); a configured one changed or removed elsewhere is drift, put back by the next apply.", "Labels of the deployment (`key = value`); an empty map when it has none."),
        ("envs", str_map(), c("envs"), "Environment variables for every service (`NAME = value`). Values are shown in plans: put secret values in BentoCloud secrets and reference them with `secrets`. Default: none. Changing them triggers a rollout.", "Environment variables of every service (`NAME = value`), as BentoCloud returns them; an empty map when there are none. Secret values are not among them: see `secrets`."),
        ("secrets", AttributeType::Set(Box::new(Str)), c("secrets"), "Names of BentoCloud secrets (organisation secrets) mounted into every service. Only names are stored; secret values never enter Terraform state. Default: none.", "Names of the BentoCloud secrets mounted into every service (names only, never values); empty when there are none."),
        ("instance_type", Str, c("instance_type"), "Instance type of the entry service (e.g. `cpu.2`, `gpu.l4.1`; list them with `bentoml deployment list-instance-types`). Default: the cluster's default instance type, chosen by BentoCloud. Changing it triggers a rollout.", "Instance type of the entry service (e.g. `cpu.2`, `gpu.l4.1`; see the `bentocloud_instance_types` data source); null when BentoCloud chose the cluster's default and does not say which."),
        ("min_replicas", Number, c("min_replicas"), "Fewest replicas of the entry service. Default `1`. `0` scales to zero when idle (the deployment reports `scaled-to-zero` and wakes on the next request). Must be at most `max_replicas`.", "Fewest replicas of the entry service (`0`: scales to zero when idle). `1` when the deployment sets no scaling (the platform's default)."),
        ("max_replicas", Number, c("max_replicas"), "Most replicas of the entry service when scaling on load. Default: `min_replicas`, and at least `1`.", "Most replicas of the entry service when scaling on load. When the deployment sets none: `min_replicas`, and at least `1` (the platform's default)."),
        ("deployment_strategy", Str, c("deployment_strategy"), "How changes roll out to the entry service: `RollingUpdate` (default: new replicas start and become ready before old ones drain; zero downtime), `Recreate` (stop all, then start all: downtime), `RampedSlowRollout` (one replica at a time, with a pause), `BestEffortControlledRollout` (rolling without extra replicas, allowing up to 20% of them, at least one, below the desired count).", "How changes roll out to the entry service: `RollingUpdate`, `Recreate`, `RampedSlowRollout` or `BestEffortControlledRollout` (see the `bentocloud_deployment` resource); null when the deployment names none."),
        ("status", Str, AttributeConstraint::Computed, "Status reported by BentoCloud: `running`, `deploying`, `image-building`, `scaled-to-zero`, `unhealthy`, `failed`, `image-build-failed`, `terminating`, `terminated`, ...", "Status reported by BentoCloud when read: `running`, `deploying`, `image-building`, `scaled-to-zero`, `unhealthy`, `failed`, `image-build-failed`, `terminating`, `terminated`, ... BentoCloud refreshes it periodically, so right after a change it may still describe the previous revision."),
        ("url", Str, AttributeConstraint::Computed, "Endpoint URL of the deployment.", "Endpoint URL of the deployment."),
        ("revision", Str, AttributeConstraint::Computed, "UID of the deployment's latest revision. Every configuration change creates a new revision; apply waits for this revision, never for an older one that still reports `running`.", "UID of the deployment's latest revision (every configuration change creates a new one)."),
        ("deployed_bento", Str, AttributeConstraint::Computed, "The bento the latest revision actually runs (`repository:version`), as BentoCloud resolved it. Differs from `bento` when `bento` names only a repository, or when `bento_managed_externally` is set and CI deployed another version.", "The bento the latest revision runs (`repository:version`), as BentoCloud resolved it; the same as `bento` here."),
        ("created_at", Str, AttributeConstraint::Computed, "Creation time (RFC 3339).", "Creation time (RFC 3339)."),
        ("updated_at", Str, AttributeConstraint::Computed, "Last update time (RFC 3339).", "Last update time (RFC 3339)."),
        ("creator", Str, AttributeConstraint::Computed, "Name of the user who created the deployment.", "Name of the user who created the deployment."),
    ];
    let mut out: HashMap<String, Attribute> = rows
        .into_iter()
        .map(|(name, t, constraint, resource, data)| {
            let description = if reads { data } else { resource };
            (name.to_string(), a(t, constraint, description))
        })
        .collect();
    for (name, t, resource, data) in policy_and_traffic_rows("the entry service") {
        let description = if reads { data } else { resource };
        out.insert(name.to_string(), a(t, c(name), &description));
    }
    out
}

/// The autoscaling and traffic settings of one service (`whose`: "the entry service" at the
/// top level, "this service" in a `service` block): (name, type, the resource's description,
/// the data sources' description).
fn policy_and_traffic_rows(whose: &str) -> Vec<(&'static str, AttributeType, String, String)> {
    use crate::settings::{METRIC_TYPES, SCALE_BEHAVIORS};
    use AttributeType::{Bool, Number, String as Str};
    let metrics = METRIC_TYPES.map(|m| format!("`{m}`")).join(", ");
    let behaviors = SCALE_BEHAVIORS.map(|m| format!("`{m}`")).join(", ");
    vec![
        ("autoscaling_metrics", str_map(), format!("Metrics the autoscaler of {whose} scales on, between `min_replicas` and `max_replicas`: metric type to target value per replica. Types: {metrics} (`cpu`/`gpu`: utilisation in percent, e.g. `\"80\"`; `qps`: requests per second, `queue`: requests in flight or waiting, both whole numbers; `memory`: a quantity such as `\"2Gi\"`). Sent as `scaling.policy.metrics`. `{{}}` removes every metric."), format!("Metrics the autoscaler of {whose} scales on (`scaling.policy.metrics`): metric type to target value; null when none are set.")),
        ("scale_up_behavior", Str, format!("How {whose} scales up: {behaviors} (`disabled`: never adds replicas on load; `fast`: on the next evaluation; `stable`: only once the need has lasted `scale_up_stabilization_window`)."), format!("How {whose} scales up ({behaviors}); null when the policy sets none.")),
        ("scale_down_behavior", Str, format!("How {whose} scales down: {behaviors} (`disabled`: keeps its replicas when load drops; `fast`: on the next evaluation; `stable`: only once the lower need has lasted `scale_down_stabilization_window`)."), format!("How {whose} scales down ({behaviors}); null when the policy sets none.")),
        ("scale_up_stabilization_window", Number, format!("Seconds the need for more replicas of {whose} must last before a `stable` scale-up (0 to 3600)."), format!("Scale-up stabilization window of {whose} in seconds; null when unset.")),
        ("scale_down_stabilization_window", Number, format!("Seconds the need for fewer replicas of {whose} must last before a `stable` scale-down (0 to 3600)."), format!("Scale-down stabilization window of {whose} in seconds; null when unset.")),
        ("cold_start_timeout", Number, format!("Seconds a request waits for {whose} to wake from zero replicas (`min_replicas = 0`) before it is refused. Changing it triggers a rollout."), format!("Seconds a request waits for {whose} to wake from zero replicas; null when unset.")),
        ("traffic_timeout", Number, format!("Seconds a request to {whose} may run before it is answered with a timeout (`config_overrides.traffic.timeout`, the `@bentoml.service(traffic={{\"timeout\": ...}})` setting). Changing it triggers a rollout."), format!("Request timeout of {whose} in seconds (`config_overrides.traffic.timeout`); null when unset.")),
        ("traffic_max_concurrency", Number, format!("Requests one replica of {whose} serves at once (`config_overrides.traffic.max_concurrency`); more wait in the external queue when `traffic_external_queue` is on, else are refused. Changing it triggers a rollout."), format!("Requests one replica of {whose} serves at once; null when unset.")),
        ("traffic_external_queue", Bool, format!("Whether requests to {whose} beyond `traffic_max_concurrency` wait in a queue in front of the replicas (`config_overrides.traffic.external_queue`) instead of being refused. Changing it triggers a rollout."), format!("Whether requests to {whose} beyond its concurrency wait in a queue; null when unset.")),
        ("config_overrides", Str, format!("The rest of {whose}'s `@bentoml.service` configuration overrides, as a JSON object (write `jsonencode({{...}})`), e.g. `jsonencode({{ resources = {{ gpu = 1 }} }})`. The typed `traffic_*` settings own `traffic.timeout`, `traffic.max_concurrency` and `traffic.external_queue`: set those there, not here. Compared as JSON, so key order and whitespace never make a change. `\"{{}}\"` clears it. Changing it triggers a rollout."), format!("The rest of {whose}'s configuration overrides as JSON (without the `traffic` keys shown by the `traffic_*` attributes); `{{}}` when none.")),
    ]
}

/// The `service` block (the data sources show it as a list of objects of the same attributes).
pub fn service_block_schema() -> Block {
    use AttributeConstraint::{Optional, OptionalComputed, Required};
    use AttributeType::{Number, String as Str};
    Block {
        version: 1,
        attributes: to_map(vec![
            ("name", a(Str, Required, "Service name, as declared in the bento (`@bentoml.service` class name). Must not be the entry service, which the top-level attributes configure.")),
            ("instance_type", a(Str, OptionalComputed, "Instance type of this service. Default: the cluster's default instance type.")),
            ("min_replicas", a(Number, OptionalComputed, "Fewest replicas of this service. Default `1`; `0` scales to zero when idle.")),
            ("max_replicas", a(Number, OptionalComputed, "Most replicas of this service. Default: `min_replicas`, and at least `1`.")),
            ("deployment_strategy", a(Str, OptionalComputed, "Rollout strategy of this service. Default `RollingUpdate`.")),
            ("envs", a(str_map(), Optional, "Environment variables of this service only; they override the deployment's `envs`. Default: none.")),
        ])
        .into_iter()
        .chain(
            policy_and_traffic_rows("this service")
                .into_iter()
                .map(|(name, t, d, _)| (name.to_string(), a(t, OptionalComputed, &d))),
        )
        .collect(),
        blocks: HashMap::new(),
        description: Description::markdown("Settings of one more service of a multi-service bento (repeat the block per service)."),
        deprecated: false,
    }
}

fn timeouts_block_schema() -> Block {
    use AttributeConstraint::Optional;
    use AttributeType::String as Str;
    Block {
        version: 1,
        attributes: to_map(vec![
            ("create", a(Str, Optional, "How long create waits for the first rollout (Go duration such as `30m`, `1h30m`). Default `30m`. On timeout the rollout goes on server-side; the deployment is saved in state, so a later apply resumes.")),
            ("update", a(Str, Optional, "How long update waits for the rollout. Default `30m`. On timeout the rollout goes on server-side and the next plan shows what is still to converge.")),
            ("delete", a(Str, Optional, "How long destroy waits for the deployment to terminate before deleting it. Default `10m`.")),
        ]),
        blocks: HashMap::new(),
        description: Description::markdown("Time limits of create, update and destroy."),
        deprecated: false,
    }
}

/// Appended to the description of each server-side optional setting of the resource.
const KEPT_WHEN_REMOVED: &str = " Left out of the configuration (or removed from it): keeps the value BentoCloud has, whoever set it; Terraform never resets it.";

/// Appended to the description of each Terraform-only setting.
const RESET_WHEN_REMOVED: &str = " Terraform-only (never sent to BentoCloud): removed from the configuration, it goes back to its default.";

/// The resource schema.
pub fn resource_schema() -> Schema {
    use AttributeConstraint::{Optional, OptionalComputed, Required};
    let mut attributes = deployment_attributes(|name| match name {
        "name" | "bento" => Required,
        "labels" | "envs" | "secrets" => Optional,
        _ => OptionalComputed,
    });
    // Removed from the configuration, a server-side setting keeps what BentoCloud has; a
    // Terraform-only setting (below) goes back to its default (`plan::plan_update`).
    for k in [
        "cluster",
        "access_authorization",
        "instance_type",
        "min_replicas",
        "max_replicas",
        "deployment_strategy",
        "autoscaling_metrics",
        "scale_up_behavior",
        "scale_down_behavior",
        "scale_up_stabilization_window",
        "scale_down_stabilization_window",
        "cold_start_timeout",
        "traffic_timeout",
        "traffic_max_concurrency",
        "traffic_external_queue",
        "config_overrides",
    ] {
        if let Some(attr) = attributes.get_mut(k) {
            attr.description.content.push_str(KEPT_WHEN_REMOVED);
        }
    }
    for (k, d) in [
        ("wait_for_rollout", "Whether create and update wait until BentoCloud reports the submitted revision `running` (or `scaled-to-zero` when `min_replicas` is 0). Default `true`. A failed rollout (`image-build-failed`, `failed`, or `unhealthy` past a grace period) fails the apply with BentoCloud's reason."),
        ("rollback_on_failure", "When a rollout fails or times out, put the previous configuration back, wait for it, and still report the failure. Default `false`: a failed rollout is left as is (the previous revision keeps serving with `RollingUpdate`) and the next plan shows the change again. For Ctrl-C see `rollback_on_interrupt`."),
        ("rollback_on_interrupt", "When the wait for an update's rollout is interrupted (Ctrl-C, i.e. Terraform asks the provider to stop), put the previous configuration back before the provider stops, and wait for it at most 60 seconds; the diagnostic says whether the rollback finished. Default `false`: the submitted rollout goes on server-side and the next apply waits for it."),
        ("bento_managed_externally", "Set when CI deploys new bento versions (e.g. `bentoml deployment update --bento`): Terraform then uses `bento` only to create the deployment and never reverts the running bento; everything else stays managed. Default `false`. See `deployed_bento` for what runs."),
    ] {
        let d = format!("{d}{RESET_WHEN_REMOVED}");
        attributes.insert(k.to_string(), a(AttributeType::Bool, OptionalComputed, &d));
    }
    attributes.insert(
        "terraform_labels".to_string(),
        a(str_map(), AttributeConstraint::Computed, "`labels` merged over the provider's `default_labels` (a key in both takes `labels`' value): every label Terraform manages on this deployment."),
    );
    attributes.insert(
        "effective_labels".to_string(),
        a(str_map(), AttributeConstraint::Computed, "Every label the deployment has, including labels set elsewhere (the console, `bentoml`, scripts). Terraform never removes a label it did not set."),
    );
    attributes.insert(
        "redeploy_triggers".to_string(),
        a(str_map(), Optional, "Arbitrary values; when any of them changes (a key added, removed or changed), apply redeploys the deployment without a spec change (`PUT /api/v2/deployments/{name}/void_update`: a new revision of the same configuration, rolled out and waited for like any other). Use it to make a rotated secret reach running replicas, which BentoCloud does not do by itself: `redeploy_triggers = { db = bentocloud_secret.db.version }`. Not sent to BentoCloud. Default: none."),
    );
    let mut blocks = HashMap::new();
    blocks.insert(
        "service".to_string(),
        NestedBlock::List({
            let mut b = service_block_schema();
            for (k, attr) in b.attributes.iter_mut() {
                if k != "name" && k != "envs" {
                    attr.description.content.push_str(KEPT_WHEN_REMOVED);
                }
            }
            b
        }),
    );
    blocks.insert(
        "timeouts".to_string(),
        NestedBlock::Optional(timeouts_block_schema()),
    );
    blocks.insert(
        "canary".to_string(),
        NestedBlock::Optional(canary_block_schema()),
    );
    blocks.insert(
        "progressive_rollout".to_string(),
        NestedBlock::Optional(progressive_block_schema()),
    );
    Schema {
        version: 1,
        block: Block {
            version: 1,
            attributes,
            blocks,
            description: Description::markdown(
                "A BentoCloud deployment: a bento served behind an endpoint, with its scaling, instance type, environment and secrets. Create and update wait for the rollout of the revision they submitted (not a stale `running`), fail fast with BentoCloud's reason, and leave honest state when a rollout fails or is interrupted.",
            ),
            deprecated: false,
        },
    }
}

/// `spec` with one managed attribute changed to another known value, for each attribute
/// [`Spec`] has (found by serialising it, so a new attribute is covered without a list):
/// the rules derived from the model are checked against every one of them.
#[cfg(test)]
pub(crate) fn one_attribute_changes(spec: &Spec) -> Vec<(String, Spec)> {
    let s = |x: &str| Value::Value(x.to_string());
    let other = Spec {
        bento: s("other:v9"),
        access_authorization: Value::Value(spec.access_authorization != Value::Value(true)),
        labels: Value::Value(StringMap::from([("changed".to_string(), s("yes"))])),
        envs: Value::Value(StringMap::from([("CHANGED".to_string(), s("yes"))])),
        secrets: Value::Value(BTreeSet::from([s("changed-secret")])),
        entry: changed_settings(),
        service: Value::Value(vec![ServiceBlock {
            name: s("Changed"),
            settings: changed_settings(),
            envs: Value::Null,
        }]),
    };
    let base = serde_json::to_value(spec).unwrap_or_default();
    let alt = serde_json::to_value(&other).unwrap_or_default();
    let mut out = Vec::new();
    for (k, v) in alt.as_object().into_iter().flatten() {
        let mut changed = base.clone();
        changed[k] = v.clone();
        if let Ok(changed) = serde_json::from_value::<Spec>(changed) {
            out.push((k.clone(), changed));
        }
    }
    assert_eq!(out.len(), alt.as_object().map_or(0, |o| o.len()));
    out
}

/// A service's settings with every one set (a value no test fixture uses).
#[cfg(test)]
pub(crate) fn changed_settings() -> ServiceSettings {
    let s = |x: &str| Value::Value(x.to_string());
    ServiceSettings {
        instance_type: s("gpu.changed"),
        min_replicas: Value::Value(7),
        max_replicas: Value::Value(9),
        deployment_strategy: s("RampedSlowRollout"),
        autoscaling: Autoscaling {
            autoscaling_metrics: Value::Value(StringMap::from([("qps".to_string(), s("77"))])),
            scale_up_behavior: s("fast"),
            scale_down_behavior: s("disabled"),
            scale_up_stabilization_window: Value::Value(17),
            scale_down_stabilization_window: Value::Value(717),
        },
        traffic: TrafficSettings {
            cold_start_timeout: Value::Value(77),
            traffic_timeout: Value::Value(7.5),
            traffic_max_concurrency: Value::Value(77),
            traffic_external_queue: Value::Value(true),
            config_overrides: JsonText(s(r#"{"changed":true}"#)),
        },
    }
}

#[cfg(test)]
mod tests;
