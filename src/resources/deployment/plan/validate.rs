//! Plan-time validation of a `bentocloud_deployment` configuration: every value that can be
//! checked locally, each problem on its attribute path with the fix. Unknown values are skipped
//! (checked at apply).

use std::collections::BTreeSet;

use tf_provider::value::Value;
use tf_provider::AttributePath;

use super::super::model::{
    Autoscaling, CanaryBlock, DeploymentState, Location, ProgressiveRollout, ServiceBlock,
    ServiceSettings, Spec, StringMap, Timeouts, TrafficSettings, ROUTE_TYPES,
};
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

pub(super) fn check_scaling(
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
