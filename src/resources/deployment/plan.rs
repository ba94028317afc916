//! Plan rules of `bentocloud_deployment`, as pure functions (tf-provider has no plan modifiers):
//! validation with attribute paths, defaults, which changes force replacement, and which
//! computed attributes an apply will change (those must be planned unknown, or Terraform reports
//! an inconsistent result after apply).

use std::collections::BTreeSet;

use tf_provider::value::Value;
use tf_provider::AttributePath;

use super::convert::managed_keys;
use super::model::{
    labels_after, merged_labels, Autoscaling, CanaryBlock, DeploymentState, LastApply, Location,
    ProgressiveRollout, Reported, ServiceBlock, ServiceSettings, Spec, StringMap, Timeouts,
    TrafficSettings, DEFAULT_STRATEGY, ROUTE_TYPES,
};
use crate::api::DeploymentStatus;
use crate::diag::Problem;
use crate::rules;
use crate::settings;

/// A check of one string: `Err` carries what is wrong and the fix.
type Rule = fn(&str) -> Result<(), String>;

fn problem(path: AttributePath, summary: &str, detail: String) -> Problem {
    Problem::new(path, summary, detail)
}

fn check_map_keys(
    map: &Value<StringMap>,
    base: AttributePath,
    what: &str,
    key_rule: fn(&str) -> Result<(), String>,
    value_rule: Option<Rule>,
    out: &mut Vec<Problem>,
) {
    let Value::Value(map) = map else { return };
    for (k, v) in map {
        if let Err(why) = key_rule(k) {
            out.push(problem(
                base.clone().key(k.clone()),
                &format!("Invalid {what} key"),
                why,
            ));
        }
        if let (Some(rule), Value::Value(v)) = (value_rule, v) {
            if let Err(why) = rule(v) {
                out.push(problem(
                    base.clone().key(k.clone()),
                    &format!("Invalid {what} value"),
                    why,
                ));
            }
        }
    }
}

fn check_scaling(
    min: &Value<i64>,
    max: &Value<i64>,
    base: impl Fn(&'static str) -> AttributePath,
    out: &mut Vec<Problem>,
) {
    let (min, max) = (min.as_ref_option().copied(), max.as_ref_option().copied());
    if let Err(why) = rules::scaling(min, max) {
        // Blame max only when it alone is wrong (below 1); otherwise min is the one to fix.
        let attr = if max.is_some_and(|m| m < 1) && min.is_none_or(|m| m >= 0) {
            "max_replicas"
        } else {
            "min_replicas"
        };
        out.push(problem(base(attr), "Invalid scaling", why));
    }
}

fn check_strategy(v: &Value<String>, path: AttributePath, out: &mut Vec<Problem>) {
    if let Value::Value(s) = v {
        if let Err(why) = rules::deployment_strategy(s) {
            out.push(problem(path, "Invalid deployment_strategy", why));
        }
    }
}

/// Checks everything that can be known locally, part by part of the model. Unknown values are
/// skipped (checked at apply).
pub fn validate(config: &DeploymentState) -> Vec<Problem> {
    let mut out = Vec::new();
    check_location(&config.location, &mut out);
    check_spec(&config.spec, &mut out);
    check_timeouts(&config.settings.timeouts, &mut out);
    check_canary(&config.canary.canary, &mut out);
    check_progressive(&config.settings.progressive_rollout, &mut out);
    if config.canary.canary.is_value() && config.settings.progressive_rollout.is_value() {
        out.push(problem(
            AttributePath::new("progressive_rollout"),
            "Conflicting canary settings",
            "`progressive_rollout` runs its own canary while a bento change is delivered; it cannot be combined with a `canary` block. Remove one of them.".into(),
        ));
    }
    out
}

fn check_route(
    route_type: &Value<String>,
    route_by: &Value<String>,
    base: impl Fn(&'static str) -> AttributePath,
    out: &mut Vec<Problem>,
) {
    if let Value::Value(t) = route_type {
        if !ROUTE_TYPES.contains(&t.as_str()) {
            out.push(problem(
                base("route_type"),
                "Invalid route_type",
                format!(
                    "unknown route_type {t:?}: use one of {}",
                    ROUTE_TYPES.join(", ")
                ),
            ));
        } else if t != "random" && route_by.is_null() {
            out.push(problem(base("route_by"), "Missing route_by", format!("route_type {t:?} needs route_by: the name of the {t} that names the version (e.g. \"x-canary\")")));
        }
    }
}

fn check_canary(canary: &Value<CanaryBlock>, out: &mut Vec<Problem>) {
    let Value::Value(c) = canary else { return };
    let base = |a: &'static str| AttributePath::new("canary").index(0).attribute(a);
    check_route(&c.route_type, &c.route_by, base, out);
    let mut seen = BTreeSet::new();
    let mut total = 0;
    for (i, v) in c.versions().iter().enumerate() {
        let at = |a: &'static str| {
            AttributePath::new("canary")
                .index(0)
                .attribute("version")
                .index(i as i64)
                .attribute(a)
        };
        if let Value::Value(name) = &v.name {
            if name == "main" {
                out.push(problem(at("name"), "Invalid canary version name", "`main` is the deployment's own target: name the version after its bento (e.g. \"v2\").".into()));
            } else if let Err(why) = rules::deployment_name(name) {
                out.push(problem(at("name"), "Invalid canary version name", why));
            } else if !seen.insert(name.clone()) {
                out.push(problem(
                    at("name"),
                    "Duplicate canary version",
                    format!(
                        "version {name:?} is configured twice: merge the two `version` blocks."
                    ),
                ));
            }
        }
        if let Value::Value(b) = &v.bento {
            if let Err(why) = rules::bento_tag(b) {
                out.push(problem(at("bento"), "Invalid bento", why));
            }
        }
        if let Value::Value(w) = v.weight {
            if !(0..=100).contains(&w) {
                out.push(problem(
                    at("weight"),
                    "Invalid weight",
                    format!("weight is {w}: a percentage, 0 to 100"),
                ));
            }
            total += w;
        }
        check_map_keys(
            &v.envs,
            at("envs"),
            "environment variable",
            rules::env_name,
            None,
            out,
        );
    }
    if c.versions().is_empty() {
        out.push(problem(
            base("version"),
            "Canary without versions",
            "Add at least one `version` block, or remove the `canary` block to remove the canary."
                .into(),
        ));
    }
    if total > 100 {
        out.push(problem(base("version"), "Invalid weights", format!("the versions' weights add up to {total}: at most 100 (the deployment itself gets the rest)")));
    }
}

fn check_progressive(p: &Value<ProgressiveRollout>, out: &mut Vec<Problem>) {
    let Value::Value(p) = p else { return };
    let base = |a: &'static str| {
        AttributePath::new("progressive_rollout")
            .index(0)
            .attribute(a)
    };
    if let Value::Value(steps) = &p.steps {
        let known: Vec<i64> = steps
            .iter()
            .filter_map(|s| s.as_ref_option().copied())
            .collect();
        let increasing = known.windows(2).all(|w| w[0] < w[1]);
        if steps.is_empty() || known.iter().any(|s| !(1..=99).contains(s)) || !increasing {
            out.push(problem(base("steps"), "Invalid steps", format!("steps {known:?}: give one or more canary weights in percent, increasing, each 1 to 99 (e.g. [5, 25, 50])")));
        }
    }
    if let Value::Value(t) = &p.bake_time {
        if let Err(why) = crate::duration::parse_go_duration(t) {
            out.push(problem(base("bake_time"), "Invalid bake_time", why));
        }
    }
    check_route(&p.route_type, &p.route_by, base, out);
    let Value::Value(a) = &p.analysis else { return };
    let at = |x: &'static str| {
        AttributePath::new("progressive_rollout")
            .index(0)
            .attribute("analysis")
            .index(0)
            .attribute(x)
    };
    for (name, v) in [
        ("unready_grace", &a.unready_grace),
        ("probe_interval", &a.probe_interval),
        ("max_latency", &a.max_latency),
    ] {
        if let Value::Value(t) = v {
            if let Err(why) = crate::duration::parse_go_duration(t) {
                out.push(problem(at(name), &format!("Invalid {name}"), why));
            }
        }
    }
    if let Value::Value(n) = a.max_restarts {
        if n < 0 {
            out.push(problem(
                at("max_restarts"),
                "Invalid max_restarts",
                format!("max_restarts is {n}: a count, 0 or more"),
            ));
        }
    }
    if let Value::Value(r) = a.max_failure_rate {
        if !(0.0..=1.0).contains(&r) {
            out.push(problem(
                at("max_failure_rate"),
                "Invalid max_failure_rate",
                format!("max_failure_rate is {r}: a share, 0 to 1 (e.g. 0.05)"),
            ));
        }
    }
    if let Value::Value(path) = &a.probe_path {
        if !path.starts_with('/') {
            out.push(problem(
                at("probe_path"),
                "Invalid probe_path",
                format!("probe_path {path:?} must start with `/` (e.g. \"/healthz\")"),
            ));
        }
        // A probe must reach the canary; with random routing only the weight decides, and the
        // answer does not say which version served it (the platform's responses carry no
        // such header), so the probe could not be judged.
        if !matches!(
            p.route_type.as_ref_option().map(String::as_str),
            Some("header" | "query")
        ) && !p.route_type.is_unknown()
        {
            out.push(problem(at("probe_path"), "Probes need header or query routing", "probes must reach the canary, which only `route_type = \"header\"` or `\"query\"` (with `route_by`) guarantees: set one, or remove probe_path to judge the canary by its pods only".into()));
        }
    }
}

fn check_location(l: &Location, out: &mut Vec<Problem>) {
    if let Value::Value(name) = &l.name {
        if let Err(why) = rules::deployment_name(name) {
            out.push(problem(
                AttributePath::new("name"),
                "Invalid deployment name",
                why,
            ));
        }
    }
    if let Value::Value(cluster) = &l.cluster {
        if cluster.trim().is_empty() {
            out.push(problem(
                AttributePath::new("cluster"),
                "Empty cluster",
                "`cluster` is empty: remove it to use the provider's default cluster, or name a cluster.".into(),
            ));
        }
    }
}

fn check_spec(spec: &Spec, out: &mut Vec<Problem>) {
    if let Value::Value(bento) = &spec.bento {
        if let Err(why) = rules::bento_tag(bento) {
            out.push(problem(AttributePath::new("bento"), "Invalid bento", why));
        }
    }
    check_map_keys(
        &spec.labels,
        AttributePath::new("labels"),
        "label",
        rules::label_key,
        Some(rules::label_value),
        out,
    );
    check_map_keys(
        &spec.envs,
        AttributePath::new("envs"),
        "environment variable",
        rules::env_name,
        None,
        out,
    );
    if let Value::Value(secrets) = &spec.secrets {
        for s in secrets.iter().filter_map(Value::as_ref_option) {
            if s.trim().is_empty() {
                out.push(problem(AttributePath::new("secrets"), "Empty secret name", "`secrets` contains an empty name: list the names of existing BentoCloud secrets.".into()));
            }
        }
    }
    check_settings(&spec.entry, AttributePath::new, out);
    if let Value::Value(services) = &spec.service {
        check_service_blocks(services, out);
    }
}

/// One service's settings (the entry service's at the top level, a block's inside it).
fn check_settings(
    s: &ServiceSettings,
    path: impl Fn(&'static str) -> AttributePath,
    out: &mut Vec<Problem>,
) {
    check_scaling(&s.min_replicas, &s.max_replicas, &path, out);
    check_strategy(&s.deployment_strategy, path("deployment_strategy"), out);
    check_autoscaling(&s.autoscaling, &path, out);
    check_traffic(&s.traffic, &path, out);
}

fn check_autoscaling(
    a: &Autoscaling,
    path: impl Fn(&'static str) -> AttributePath,
    out: &mut Vec<Problem>,
) {
    if let Value::Value(metrics) = &a.autoscaling_metrics {
        for (kind, target) in metrics {
            let at = path("autoscaling_metrics").key(kind.clone());
            if let Err(why) = settings::metric_type(kind) {
                out.push(problem(at, "Invalid autoscaling metric", why));
            } else if let Value::Value(t) = target {
                if let Err(why) = settings::metric_value(kind, t) {
                    out.push(problem(at, "Invalid autoscaling target", why));
                }
            }
        }
    }
    for (name, v) in [
        ("scale_up_behavior", &a.scale_up_behavior),
        ("scale_down_behavior", &a.scale_down_behavior),
    ] {
        if let Value::Value(b) = v {
            if let Err(why) = settings::scale_behavior(b) {
                out.push(problem(path(name), &format!("Invalid {name}"), why));
            }
        }
    }
    for (name, v) in [
        (
            "scale_up_stabilization_window",
            &a.scale_up_stabilization_window,
        ),
        (
            "scale_down_stabilization_window",
            &a.scale_down_stabilization_window,
        ),
    ] {
        if let Value::Value(w) = v {
            if let Err(why) = settings::stabilization_window(name, *w) {
                out.push(problem(path(name), &format!("Invalid {name}"), why));
            }
        }
    }
}

fn check_traffic(
    t: &TrafficSettings,
    path: impl Fn(&'static str) -> AttributePath,
    out: &mut Vec<Problem>,
) {
    if let Value::Value(n) = t.cold_start_timeout {
        if n < 1 {
            out.push(problem(
                path("cold_start_timeout"),
                "Invalid cold_start_timeout",
                format!(
                    "cold_start_timeout is {n}: it is a number of seconds, at least 1 (e.g. 900)"
                ),
            ));
        }
    }
    if let Value::Value(n) = t.traffic_timeout {
        if !(n > 0.0 && n.is_finite()) {
            out.push(problem(
                path("traffic_timeout"),
                "Invalid traffic_timeout",
                format!(
                    "traffic_timeout is {n}: it is a number of seconds greater than 0 (e.g. 60)"
                ),
            ));
        }
    }
    if let Value::Value(n) = t.traffic_max_concurrency {
        if n < 1 {
            out.push(problem(
                path("traffic_max_concurrency"),
                "Invalid traffic_max_concurrency",
                format!(
                    "traffic_max_concurrency is {n}: a replica serves at least 1 request at once"
                ),
            ));
        }
    }
    if let Value::Value(text) = &t.config_overrides.0 {
        if let Err(why) = overrides_rule(text) {
            out.push(problem(
                path("config_overrides"),
                "Invalid config_overrides",
                why,
            ));
        }
    }
}

/// `config_overrides` is a JSON object without the keys the typed settings own.
fn overrides_rule(text: &str) -> Result<(), String> {
    let v: serde_json::Value = serde_json::from_str(text).map_err(|e| {
        format!("config_overrides is not JSON ({e}): write it with jsonencode({{ ... }})")
    })?;
    let Some(o) = v.as_object() else {
        return Err(
            "config_overrides must be a JSON object, e.g. jsonencode({ resources = { gpu = 1 } })"
                .into(),
        );
    };
    if let Some(t) = o.get("traffic").and_then(|t| t.as_object()) {
        for k in settings::TRAFFIC_KEYS {
            if t.contains_key(k) {
                return Err(format!("config_overrides sets traffic.{k}: set it with the `traffic_{k}` attribute instead, which Terraform reads back and keeps"));
            }
        }
    }
    Ok(())
}

fn check_service_blocks(services: &[ServiceBlock], out: &mut Vec<Problem>) {
    let mut seen = BTreeSet::new();
    for (i, svc) in services.iter().enumerate() {
        let base = || AttributePath::new("service").index(i as i64);
        if let Value::Value(name) = &svc.name {
            if name.trim().is_empty() {
                out.push(problem(
                    base().attribute("name"),
                    "Empty service name",
                    "Name the service as declared in the bento.".into(),
                ));
            } else if !seen.insert(name.clone()) {
                out.push(problem(
                    base().attribute("name"),
                    "Duplicate service",
                    format!(
                        "service {name:?} is configured twice: merge the two `service` blocks."
                    ),
                ));
            }
        }
        check_settings(&svc.settings, |a| base().attribute(a), out);
        check_map_keys(
            &svc.envs,
            base().attribute("envs"),
            "environment variable",
            rules::env_name,
            None,
            out,
        );
    }
}

fn check_timeouts(timeouts: &Value<Timeouts>, out: &mut Vec<Problem>) {
    let Value::Value(t) = timeouts else { return };
    for (field, v) in [
        ("create", &t.create),
        ("update", &t.update),
        ("delete", &t.delete),
    ] {
        if let Value::Value(text) = v {
            if let Err(why) = crate::duration::parse_go_duration(text) {
                out.push(problem(
                    AttributePath::new("timeouts").index(0).attribute(field),
                    "Invalid timeout",
                    why,
                ));
            }
        }
    }
}

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
