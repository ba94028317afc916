//! Plan rules of `bentocloud_deployment`, as pure functions (tf-provider has no plan modifiers):
//! defaults, which changes force replacement, which need an API call, and which computed
//! attributes an apply will change (those must be planned unknown, or Terraform reports an
//! inconsistent result after apply). Validation of the configuration, with attribute paths, is
//! in [`validate`].

use std::collections::BTreeSet;

use tf_provider::value::Value;
use tf_provider::AttributePath;

use super::convert::managed_keys;
use super::model::{
    labels_after, merged_labels, Autoscaling, CanaryBlock, DeploymentState, LastApply, Reported,
    ServiceSettings, Spec, StringMap, TrafficSettings, DEFAULT_STRATEGY,
};
use crate::api::DeploymentStatus;

mod validate;
pub use validate::validate;

/// Default min/max: min 1; max = max(min, 1).
fn default_scaling(min: &mut Value<i64>, max: &mut Value<i64>) {
    if min.is_null() {
        *min = match max {
            Value::Value(m) => Value::Value((*m).min(1)),
            _ => Value::Value(1),
        };
    }
    if max.is_null() {
        *max = match min {
            Value::Value(m) => Value::Value((*m).max(1)),
            _ => Value::Unknown,
        };
    }
}

/// Defaults of one service's settings (the entry service's and each `service` block's): the
/// scaling of [`default_scaling`], `RollingUpdate`, and the instance type the server picks.
/// A bound the configuration leaves out keeps the prior (server) value, unless the other,
/// configured bound has moved past it: then it follows (`max_replicas` defaults to
/// `min_replicas`), so raising `min_replicas` alone above the running maximum is a valid plan
/// rather than a request the API refuses.
fn follow_configured_bound(planned: &mut ServiceSettings, config: &ServiceSettings) {
    if let (Value::Value(min), Value::Value(max)) = (&planned.min_replicas, &planned.max_replicas) {
        let (min, max) = (*min, *max);
        // (`>=` would do the same: equal bounds need no change.)
        if min > max {
            if config.max_replicas.is_null() && config.min_replicas.is_value() {
                planned.max_replicas = Value::Value(min);
            } else if config.min_replicas.is_null() && config.max_replicas.is_value() {
                planned.min_replicas = Value::Value(max);
            }
        }
    }
}

fn default_settings(svc: &mut ServiceSettings) {
    default_scaling(&mut svc.min_replicas, &mut svc.max_replicas);
    if svc.deployment_strategy.is_null() {
        svc.deployment_strategy = Value::Value(DEFAULT_STRATEGY.into());
    }
    if svc.instance_type.is_null() {
        svc.instance_type = Value::Unknown;
    }
    unknown_where_unset_policy(svc);
}

/// The autoscaling and traffic settings left null become unknown: the closed server may fill
/// defaults of its own (the API doc is silent on whether it does), and a null planned then a
/// value read back is an inconsistent result. Known after apply either way.
fn unknown_where_unset_policy(svc: &mut ServiceSettings) {
    let Autoscaling {
        autoscaling_metrics,
        scale_up_behavior,
        scale_down_behavior,
        scale_up_stabilization_window,
        scale_down_stabilization_window,
    } = &mut svc.autoscaling;
    let TrafficSettings {
        cold_start_timeout,
        traffic_timeout,
        traffic_max_concurrency,
        traffic_external_queue,
        config_overrides,
    } = &mut svc.traffic;
    unknown_if_null(autoscaling_metrics);
    unknown_if_null(scale_up_behavior);
    unknown_if_null(scale_down_behavior);
    unknown_if_null(scale_up_stabilization_window);
    unknown_if_null(scale_down_stabilization_window);
    unknown_if_null(cold_start_timeout);
    unknown_if_null(traffic_timeout);
    unknown_if_null(traffic_max_concurrency);
    unknown_if_null(traffic_external_queue);
    unknown_if_null(&mut config_overrides.0);
}

fn unknown_if_null<T>(v: &mut Value<T>) {
    if v.is_null() {
        *v = Value::Unknown;
    }
}

fn default_flags(s: &mut DeploymentState) {
    for (flag, default) in [
        (&mut s.settings.wait_for_rollout, true),
        (&mut s.settings.rollback_on_failure, false),
        (&mut s.settings.bento_managed_externally, false),
        (&mut s.settings.rollback_on_interrupt, false),
        (&mut s.spec.access_authorization, false),
    ] {
        if flag.is_null() {
            *flag = Value::Value(default);
        }
    }
}

/// Terraform-only settings left out of the configuration go back to their defaults. They are
/// optional+computed (so an import can record them), which makes Terraform's proposed state
/// carry the prior value: without this, removing `rollback_on_failure = true` would keep it.
/// Server-side settings (replicas, instance type, strategy, `access_authorization`) are the
/// opposite: left out, they keep what the server has.
fn reset_unset_settings(planned: &mut DeploymentState, config: &DeploymentState) {
    let c = &config.settings;
    for (flag, configured) in [
        (&mut planned.settings.wait_for_rollout, &c.wait_for_rollout),
        (
            &mut planned.settings.rollback_on_failure,
            &c.rollback_on_failure,
        ),
        (
            &mut planned.settings.bento_managed_externally,
            &c.bento_managed_externally,
        ),
        (
            &mut planned.settings.rollback_on_interrupt,
            &c.rollback_on_interrupt,
        ),
    ] {
        if configured.is_null() {
            *flag = Value::Null;
        }
    }
}

/// Terraform's proposed state with `terraform_labels`: its `labels` merged over the provider's
/// `default_labels`. The plan functions take a proposal this made.
pub fn with_default_labels(
    mut proposed: DeploymentState,
    defaults: &Value<StringMap>,
) -> DeploymentState {
    proposed.label_sets.terraform_labels = merged_labels(defaults, &proposed.spec.labels);
    proposed
}

/// An imported state's labels: every label the deployment has becomes Terraform's
/// (`terraform_labels`), and `labels` holds those the provider's `default_labels` do not
/// already give (same key and value). So the plan right after an import of a deployment its
/// configuration describes is empty. Unlike a refresh, an import cannot tell a label set
/// elsewhere from one the configuration will name: the plan after it shows any label the
/// configuration leaves out as removed, before anything is sent. (The Google provider instead
/// imports no label as its own, which makes every import of a labelled resource plan a change.)
pub fn adopt_labels(state: &mut DeploymentState, defaults: &Value<StringMap>) {
    let all = state.label_sets.effective_labels.clone();
    let defaults = defaults.as_ref_option();
    state.spec.labels = match &all {
        Value::Value(m) => {
            let own: StringMap = m
                .iter()
                .filter(|(k, v)| defaults.and_then(|d| d.get(*k)) != Some(*v))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            if own.is_empty() {
                Value::Null
            } else {
                Value::Value(own)
            }
        }
        other => other.clone(),
    };
    state.label_sets.terraform_labels = all;
}

/// Planned state of a new deployment.
pub fn plan_create(proposed: &DeploymentState, default_cluster: Option<&str>) -> DeploymentState {
    let mut p = proposed.clone();
    if p.location.cluster.is_null() {
        p.location.cluster = default_cluster
            .map(|c| Value::Value(c.to_string()))
            .unwrap_or(Value::Unknown);
    }
    default_flags(&mut p);
    default_settings(&mut p.spec.entry);
    if let Value::Value(services) = &mut p.spec.service {
        services
            .iter_mut()
            .for_each(|b| default_settings(&mut b.settings));
    }
    p.location.id = match (&p.location.cluster, &p.location.name) {
        (Value::Value(c), Value::Value(n)) => Value::Value(format!("{c}/{n}")),
        _ => Value::Unknown,
    };
    p.reported = Reported::unknown();
    p.label_sets.effective_labels = Value::Unknown;
    default_canary(&mut p.canary.canary);
    p
}

/// A configured canary's defaults: `random` routing, weight 0.
fn default_canary(c: &mut Value<CanaryBlock>) {
    let Value::Value(c) = c else { return };
    if c.route_type.is_null() {
        c.route_type = Value::Value("random".into());
    }
    if let Value::Value(versions) = &mut c.version {
        for v in versions.iter_mut().filter(|v| v.weight.is_null()) {
            v.weight = Value::Value(0);
        }
    }
}

/// Whether the change between `prior` and `planned` needs an API call: any change of the
/// [`Spec`](super::model::Spec) (not of the Terraform-only settings: waits, rollback, timeouts).
/// A change made on the server after the plan that an apply must not overwrite: the server's
/// latest revision is not the one the plan refreshed (`prior.reported.revision`), and what
/// Terraform manages differs from it (`server` is the server's document as state). Returns
/// the attributes that differ. A newer revision that changes nothing Terraform manages (a
/// redeploy, or CI's bento with `bento_managed_externally`) is not a conflict.
pub fn changed_since_plan(prior: &DeploymentState, server: &DeploymentState) -> Vec<String> {
    let (Value::Value(planned_against), Value::Value(latest)) =
        (&prior.reported.revision, &server.reported.revision)
    else {
        return Vec::new();
    };
    if planned_against.is_empty() || planned_against == latest {
        return Vec::new();
    }
    let external = prior.settings.bento_managed_externally == Value::Value(true);
    prior.spec.differing_attributes(&server.spec, external)
}

/// Labels count by what the deployment would end up with: `labels` and `terraform_labels`
/// changing while every label is already on the server (an import adopting them, a key moved
/// between `labels` and `default_labels`) sends nothing.
pub fn needs_api_update(prior: &DeploymentState, planned: &DeploymentState) -> bool {
    let external = planned.settings.bento_managed_externally == Value::Value(true);
    let without_labels = |s: &Spec| Spec {
        labels: Value::Null,
        ..s.clone()
    };
    let labels_change = match &prior.label_sets.effective_labels {
        Value::Value(current) => labels_after(current, managed_keys(prior), managed_now(planned))
            .is_none_or(|after| after != *current),
        _ => prior.spec.labels != planned.spec.labels,
    };
    labels_change
        || prior.canary != planned.canary
        || without_labels(&prior.spec).differs(&without_labels(&planned.spec), external)
}

/// Whether applying `planned` over `prior` delivers a new bento progressively: a
/// `progressive_rollout` block, and a change of `bento` that is sent (not CI's, see
/// `bento_managed_externally`).
pub fn delivers_progressively(prior: &DeploymentState, planned: &DeploymentState) -> bool {
    planned.settings.progressive_rollout.is_value()
        && planned.settings.bento_managed_externally != Value::Value(true)
        && prior.spec.bento != planned.spec.bento
        && !stopped(prior)
}

/// The labels `planned` manages: its `terraform_labels`, or `labels` when those are not set.
fn managed_now(planned: &DeploymentState) -> &Value<StringMap> {
    match &planned.label_sets.terraform_labels {
        Value::Null => &planned.spec.labels,
        tf => tf,
    }
}

fn status_of(prior: &DeploymentState) -> Option<DeploymentStatus> {
    prior
        .reported
        .status
        .as_ref_option()
        .and_then(|s| DeploymentStatus::parse(s))
}

/// Whether the deployment was stopped outside Terraform (`terminating`/`terminated`: the
/// console's stop, `bentoml deployment terminate`, `POST .../terminate`). Terraform manages a
/// serving deployment, so a stopped one is drift: apply brings it back with a PUT of the
/// configuration, which starts a terminated deployment (API doc §4's state machine:
/// "update/start on terminated ─► deploying"; the official client's `start` is an update,
/// pyapi.py:311-339), and waits for it like any rollout.
pub fn stopped(prior: &DeploymentState) -> bool {
    status_of(prior).is_some_and(|s| {
        matches!(
            s,
            DeploymentStatus::Terminated | DeploymentStatus::Terminating
        )
    })
}

/// Whether the refreshed status says the deployment is failing (`failed`, `unhealthy`,
/// `image-build-failed`). With no failed rollout of this state's own behind it
/// ([`LastApply::Failed`]), this alone changes no plan: it is reported as a warning.
pub fn failing(prior: &DeploymentState) -> bool {
    status_of(prior).is_some_and(|s| s.is_rollout_failure() || s == DeploymentStatus::Unhealthy)
}

/// Whether applying `planned` over `prior` sends the configuration (a PUT): the spec changed,
/// this state's last rollout failed (re-submitted even without a change, so reverting a bad
/// change converges too), or the deployment was stopped outside Terraform.
pub fn put_needed(prior: &DeploymentState, planned: &DeploymentState, last: LastApply) -> bool {
    needs_api_update(prior, planned) || last == LastApply::Failed || stopped(prior)
}

/// Every setting still null in `planned` (left out of the configuration, and not known from
/// the server either: a deployment created with `services: {}`, or without an instance type
/// or strategy, by the console, the official client or a raw API body) becomes unknown. The
/// PUT leaves such a setting to the server, which may fill it (the instance type the cluster
/// defaults to, scaling `{1, 1}`): planning null and then reading a value back is what
/// Terraform reports as "Provider produced inconsistent result after apply".
fn unknown_where_unset(planned: &mut ServiceSettings) {
    unknown_where_unset_policy(planned);
    let ServiceSettings {
        instance_type,
        min_replicas,
        max_replicas,
        deployment_strategy,
        autoscaling: _,
        traffic: _,
    } = planned;
    for v in [instance_type, deployment_strategy] {
        unknown_if_null(v);
    }
    for v in [min_replicas, max_replicas] {
        unknown_if_null(v);
    }
}

/// Planned state of an update, and the attributes that force replacement. `last` is what
/// this state's last apply left (its private state).
///
/// - Optional+computed settings left out of the configuration keep the prior (server) value;
///   Terraform's proposed state already carries it. A setting the server does not report
///   either stays null when no PUT is sent, and is planned unknown when one is (see
///   [`unknown_where_unset`]); only a new `service` block gets defaults.
/// - Computed attributes the apply changes (status, revision, ...) are planned unknown when
///   the apply rolls anything out: a PUT ([`put_needed`]), a redeploy, or a wait resumed for
///   an unconfirmed rollout; a replacement makes all of them unknown.
pub fn plan_update(
    prior: &DeploymentState,
    proposed: &DeploymentState,
    config: &DeploymentState,
    last: LastApply,
) -> (DeploymentState, Vec<AttributePath>) {
    let mut p = proposed.clone();
    reset_unset_settings(&mut p, config);
    default_flags(&mut p);
    default_canary(&mut p.canary.canary);
    follow_configured_bound(&mut p.spec.entry, &config.spec.entry);
    let prior_services = prior.spec.service_blocks();
    let mut new_blocks = BTreeSet::new();
    if let Value::Value(services) = &mut p.spec.service {
        for (i, svc) in services.iter_mut().enumerate() {
            match prior_services.iter().find(|s| s.name == svc.name) {
                Some(b) => {
                    svc.settings.fill_from(&b.settings);
                    let configured = config
                        .spec
                        .service
                        .as_ref_option()
                        .and_then(|c| c.iter().find(|c| c.name == svc.name));
                    if let Some(c) = configured {
                        follow_configured_bound(&mut svc.settings, &c.settings);
                    }
                }
                None => {
                    default_settings(&mut svc.settings);
                    new_blocks.insert(i);
                }
            }
        }
    }
    let mut replace = Vec::new();
    if prior.location.name != p.location.name {
        replace.push(AttributePath::new("name"));
    }
    if config.location.cluster.is_value() && prior.location.cluster != p.location.cluster {
        replace.push(AttributePath::new("cluster"));
    }
    if !replace.is_empty() {
        p.location.id = Value::Unknown;
        if config.location.cluster.is_null() {
            p.location.cluster = prior.location.cluster.clone();
        }
    }
    let put = put_needed(prior, &p, last);
    if put {
        unknown_where_unset(&mut p.spec.entry);
        if let Value::Value(services) = &mut p.spec.service {
            for (_, svc) in services
                .iter_mut()
                .enumerate()
                .filter(|(i, _)| !new_blocks.contains(i))
            {
                unknown_where_unset(&mut svc.settings);
            }
        }
    }
    if put
        || prior.settings.redeploy_requested(&p.settings)
        || last == LastApply::Unconfirmed
        || !replace.is_empty()
    {
        p.reported = if replace.is_empty() {
            p.reported.after_rollout()
        } else {
            Reported::unknown()
        };
    }
    if put || !replace.is_empty() {
        p.label_sets.effective_labels = Value::Unknown;
    }
    (p, replace)
}

#[cfg(test)]
mod tests;
