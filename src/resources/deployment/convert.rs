//! Translation between Terraform state and BentoCloud documents, both ways.
//!
//! - server → state: [`state_from_server`] overlays what BentoCloud reports onto a prior state,
//!   normalising only where the two are the same thing said differently (an empty map vs. no
//!   map, `repo` vs. the `repo:version` it resolved to), so drift shows and nothing else does.
//! - state → server: [`create_request`] and [`update_request`]. Update is read-modify-write:
//!   start from the server's current configuration and overlay only what Terraform manages, so
//!   fields Terraform does not model (extras, config overrides, cold start timeouts, scaling
//!   policies, services without a `service` block, canary) are kept. The PUT replaces the whole
//!   configuration (API doc §5.1): whatever it does not carry back is lost.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value as Json;
use tf_provider::value::Value;

use super::model::{
    labels_after, Autoscaling, CanaryBlock, CanaryVersionBlock, DeploymentState, JsonText,
    LabelSets, Location, Reported, ServiceBlock, ServiceSettings, StringMap, TrafficSettings,
};
use crate::api::{
    Canary, CanaryVersion, CreateDeploymentRequest, Deployment, DeploymentConfig, EnvItem,
    LabelItem, ServiceConfig, UpdateDeploymentRequest,
};
use crate::rules::BentoTag;
use crate::settings::{overrides_without_traffic, ScalingMetric, ScalingPolicy, Traffic};

/// The entry service's name when nothing names it: the official client's fallback.
pub const DEFAULT_ENTRY_SERVICE: &str = "apiserver";

/// The entry service of a deployment: the bento manifest's `entry_service` when it names one
/// (the entry service is the bento's, even when the configuration has no settings for it yet:
/// the official client puts its top-level flags under the manifest's entry service, API doc
/// §5.2), else the only service, else [`DEFAULT_ENTRY_SERVICE`] when the config has it, else
/// the first.
///
/// The manifest read here is the bento's own when the caller asked for it: for a multi-service
/// config, [`Client::with_bento_manifest`] replaces the main target's `bento.manifest` with the
/// one `GET /api/v1/bento_repositories/{repo}/bentos/{version}` returns, as the official client
/// reads the entry service from the bento (API doc §5.2 step 4), since the deployment document
/// may carry no manifest at all (§3.3: optional). The client's deployment methods do not do it
/// on their own: every caller of this (and of [`state_from_server`]) with a document from the
/// server calls `with_bento_manifest` first (the resource's reads, create, updates, rollbacks
/// and waits, the data sources).
///
/// [`Client::with_bento_manifest`]: crate::client::Client::with_bento_manifest
pub fn entry_service(d: &Deployment) -> Option<String> {
    let target = d.main_target()?;
    let services = &target.config.as_ref()?.services;
    let from_manifest = target
        .bento
        .as_ref()
        .and_then(|b| b.manifest.as_ref())
        .map(|m| m.entry_service.clone())
        .filter(|e| !e.is_empty());
    from_manifest
        .or_else(|| {
            (services.len() == 1)
                .then(|| services.keys().next().cloned())
                .flatten()
        })
        .or_else(|| {
            services
                .contains_key(DEFAULT_ENTRY_SERVICE)
                .then(|| DEFAULT_ENTRY_SERVICE.to_string())
        })
        .or_else(|| services.keys().next().cloned())
}

fn map_from_envs(envs: &Option<Vec<EnvItem>>) -> StringMap {
    envs.iter()
        .flatten()
        .map(|e| (e.name.clone(), Value::Value(e.value.clone())))
        .collect()
}

fn map_from_labels(labels: &[LabelItem]) -> StringMap {
    labels
        .iter()
        .map(|l| (l.key.clone(), Value::Value(l.value.clone())))
        .collect()
}

/// An empty collection is "not set" when the prior value was not set (and vice versa), so
/// `labels = {}` and no labels at all both read back as written.
fn normalise_map(server: StringMap, prior: &Value<StringMap>) -> Value<StringMap> {
    if server.is_empty() && !matches!(prior, Value::Value(m) if m.is_empty()) {
        Value::Null
    } else {
        Value::Value(server)
    }
}

fn envs_from_map(map: &Value<StringMap>) -> Vec<EnvItem> {
    map.as_ref_option()
        .map(|m| {
            m.iter()
                .map(|(k, v)| EnvItem {
                    name: k.clone(),
                    value: v.as_ref_option().cloned().unwrap_or_default(),
                })
                .collect()
        })
        .unwrap_or_default()
}

fn labels_from_map(map: &Value<StringMap>) -> Vec<LabelItem> {
    map.as_ref_option()
        .map(|m| {
            m.iter()
                .map(|(k, v)| LabelItem {
                    key: k.clone(),
                    value: v.as_ref_option().cloned().unwrap_or_default(),
                })
                .collect()
        })
        .unwrap_or_default()
}

fn secrets_from_set(set: &Value<BTreeSet<Value<String>>>) -> Vec<String> {
    set.as_ref_option()
        .map(|s| {
            s.iter()
                .filter_map(|v| v.as_ref_option().cloned())
                .collect()
        })
        .unwrap_or_default()
}

/// `repo` (or `repo:latest`) in the prior state stays as written when the server runs some
/// version of that repository: the user asked for "latest", not for a pinned version.
fn bento_for_state(server_tag: Option<String>, prior: &Value<String>) -> Value<String> {
    let Some(server_tag) = server_tag else {
        return prior.clone();
    };
    if let Value::Value(p) = prior {
        let asked = BentoTag::of(p);
        if !asked.names_version() && asked.accepts(&BentoTag::of(&server_tag)) {
            return prior.clone();
        }
    }
    Value::Value(server_tag)
}

/// One service's settings as the server has them; unset scaling reads as the platform's
/// defaults (min 1, max = max(min, 1)). `prior` keeps the text of what means the same: a
/// metric target written `"10"` and sent as `10`, `config_overrides` formatted otherwise.
fn settings_of(svc: &ServiceConfig, prior: &ServiceSettings) -> ServiceSettings {
    let s = svc.scaling.clone().unwrap_or_default();
    let min = s.min_replicas.unwrap_or(1);
    let max = s.max_replicas.unwrap_or(min.max(1));
    let policy = ScalingPolicy::of(s.policy.as_ref());
    let traffic = Traffic::of(&svc.config_overrides);
    ServiceSettings {
        instance_type: opt_value(svc.instance_type.clone()),
        min_replicas: Value::Value(min),
        max_replicas: Value::Value(max),
        deployment_strategy: opt_value(svc.deployment_strategy.clone()),
        autoscaling: Autoscaling {
            autoscaling_metrics: metrics_for_state(&policy, &prior.autoscaling.autoscaling_metrics),
            scale_up_behavior: opt_value(policy.scale_up_behavior),
            scale_down_behavior: opt_value(policy.scale_down_behavior),
            scale_up_stabilization_window: opt_value(policy.scale_up_stabilization_window),
            scale_down_stabilization_window: opt_value(policy.scale_down_stabilization_window),
        },
        traffic: TrafficSettings {
            cold_start_timeout: opt_value(svc.cold_start_timeout),
            traffic_timeout: opt_value(traffic.timeout),
            traffic_max_concurrency: opt_value(traffic.max_concurrency),
            traffic_external_queue: opt_value(traffic.external_queue),
            config_overrides: overrides_for_state(
                &svc.config_overrides,
                &prior.traffic.config_overrides,
            ),
        },
    }
}

/// `scaling.policy.metrics` as a map of type to target text; a target keeps the prior's text
/// when it means the same value (`"10"` sent as the number 10).
fn metrics_for_state(policy: &ScalingPolicy, prior: &Value<StringMap>) -> Value<StringMap> {
    let prior_text = |kind: &str| {
        prior
            .as_ref_option()
            .and_then(|m| m.get(kind))
            .and_then(|v| v.as_ref_option())
    };
    let map: StringMap = policy
        .metrics
        .iter()
        .flatten()
        .map(|m| {
            let text = match prior_text(&m.kind) {
                Some(p) if ScalingMetric::from_text(&m.kind, p).value == m.value => p.clone(),
                _ => m.value_text(),
            };
            (m.kind.clone(), Value::Value(text))
        })
        .collect();
    normalise_map(map, prior)
}

/// `config_overrides` without the typed traffic keys, as JSON text: the prior's text when it
/// is the same document, else the canonical form (keys sorted, no whitespace: what
/// `jsonencode` writes).
fn overrides_for_state(overrides: &Json, prior: &JsonText) -> JsonText {
    let rest = overrides_without_traffic(overrides);
    if let Value::Value(p) = &prior.0 {
        if serde_json::from_str::<Json>(p).is_ok_and(|p| p == rest) {
            return prior.clone();
        }
    }
    JsonText(Value::Value(canonical_json(&rest)))
}

/// `v` as compact JSON with every object's keys sorted.
pub fn canonical_json(v: &Json) -> String {
    fn sorted(v: &Json) -> Json {
        match v {
            Json::Object(m) => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                Json::Object(
                    keys.into_iter()
                        .map(|k| (k.clone(), sorted(&m[k])))
                        .collect(),
                )
            }
            Json::Array(a) => Json::Array(a.iter().map(sorted).collect()),
            other => other.clone(),
        }
    }
    serde_json::to_string(&sorted(v)).unwrap_or_else(|_| "{}".to_string())
}

fn opt_value<T>(o: Option<T>) -> Value<T> {
    o.map(Value::Value).unwrap_or(Value::Null)
}

fn service_block_from(
    name: &str,
    svc: &ServiceConfig,
    prior: Option<&ServiceBlock>,
) -> ServiceBlock {
    let prior_envs = prior.map(|p| p.envs.clone()).unwrap_or(Value::Null);
    let prior_settings = prior.map(|p| p.settings.clone()).unwrap_or_default();
    ServiceBlock {
        name: Value::Value(name.to_string()),
        settings: settings_of(svc, &prior_settings),
        envs: normalise_map(map_from_envs(&svc.envs), &prior_envs),
    }
}

/// State from what the server reports, overlaid on `prior` (Terraform-only settings such as
/// waits and timeouts come from `prior`). `import` passes a prior with no service blocks, which
/// reads back every non-entry service. `d` should carry its bento's manifest (see
/// [`entry_service`]).
pub fn state_from_server(
    d: &Deployment,
    prior: &DeploymentState,
    importing: bool,
) -> DeploymentState {
    let mut s = prior.clone();
    s.location = location_of(d);
    s.reported = reported_from(d, &prior.reported);
    let on_server = map_from_labels(&d.meta.labels);
    s.label_sets = LabelSets {
        terraform_labels: only_keys_of(&on_server, managed_keys(prior)),
        effective_labels: Value::Value(on_server.clone()),
    };
    // An import (and a data source) reads every label; a refresh only those configured, so a
    // label set elsewhere is not drift (it shows in `effective_labels`).
    s.spec.labels = if importing {
        normalise_map(on_server, &prior.spec.labels)
    } else {
        only_keys_of(&on_server, &prior.spec.labels)
    };
    if prior.settings.bento_managed_externally != Value::Value(true) || prior.spec.bento.is_null() {
        s.spec.bento = bento_for_state(d.bento_tag(), &prior.spec.bento);
    }

    let config = d.main_target().and_then(|t| t.config.clone());
    let has_config = config.is_some();
    let config = config.unwrap_or_default();
    s.spec.access_authorization = Value::Value(config.access_authorization);
    s.spec.envs = normalise_map(map_from_envs(&config.envs), &prior.spec.envs);
    s.spec.secrets = secrets_for_state(&config, &prior.spec.secrets);

    let entry = entry_service(d);
    match entry.as_ref().and_then(|e| config.services.get(e)) {
        Some(svc) => s.spec.entry = settings_of(svc, &prior.spec.entry),
        // The main target's configuration has no settings for the entry service (created with
        // `services: {}` by the console, a script or a raw API body): the server reports none,
        // so state claims none (the plan then leaves them to the server, see
        // `plan::plan_update`). Without a configuration at all, the prior values stay.
        None if has_config => s.spec.entry = ServiceSettings::default(),
        None => {}
    }
    let blocks = if importing {
        every_other_service(&config, entry.as_deref())
    } else {
        blocks_still_served(&config, prior.spec.service_blocks())
    };
    s.spec.service = Value::Value(blocks);
    // The canary block is read only when the configuration manages it (or on import, which
    // adopts it): a canary set elsewhere is otherwise kept without showing as drift.
    if importing || prior.canary.canary.is_value() {
        s.canary.canary = canary_for_state(d, &prior.canary.canary);
    }
    s
}

/// The `canary` block from the server's canary (the extra targets and `manifest.routing`, as
/// the official client rebuilds it): null when it has no version. Versions keep `prior`'s
/// order (Terraform matches list blocks by index), new ones follow by name; a bento written
/// as `repo` stays so while the version runs some version of it. A null `route_type` reads as
/// `random`, the routing the platform then applies (weights).
fn canary_for_state(d: &Deployment, prior: &Value<CanaryBlock>) -> Value<CanaryBlock> {
    let Some(c) = d.canary() else {
        return Value::Null;
    };
    let versions = c.versions.unwrap_or_default();
    if versions.is_empty() {
        return Value::Null;
    }
    let prior_versions = prior.as_ref_option().map_or(&[][..], |p| p.versions());
    let mut names: Vec<&String> = prior_versions
        .iter()
        .filter_map(|p| p.name.as_ref_option())
        .filter(|n| versions.contains_key(*n))
        .collect();
    names.extend(
        versions
            .keys()
            .filter(|k| !names.contains(k))
            .collect::<Vec<_>>(),
    );
    let blocks = names
        .into_iter()
        .filter_map(|name| {
            let v = versions.get(name)?;
            let before = prior_versions
                .iter()
                .find(|p| p.name.as_ref_option() == Some(name));
            Some(CanaryVersionBlock {
                name: Value::Value(name.clone()),
                bento: bento_for_state(
                    v.bento.clone(),
                    &before.map_or(Value::Null, |b| b.bento.clone()),
                ),
                weight: Value::Value(v.weight.unwrap_or(0)),
                envs: normalise_map(
                    map_from_envs(&v.envs),
                    &before.map_or(Value::Null, |b| b.envs.clone()),
                ),
            })
        })
        .collect();
    Value::Value(CanaryBlock {
        route_type: Value::Value(c.route_type.unwrap_or_else(|| "random".to_string())),
        route_by: opt_value(c.route_by.filter(|r| !r.is_empty())),
        version: Value::Value(blocks),
    })
}

/// The body's `canary` for a configured `canary` block.
pub fn canary_from_block(b: &CanaryBlock) -> Canary {
    Canary {
        route_type: b.route_type.as_ref_option().cloned(),
        route_by: b.route_by.as_ref_option().cloned(),
        versions: Some(
            b.versions()
                .iter()
                .filter_map(|v| {
                    let name = v.name.as_ref_option()?.clone();
                    Some((
                        name,
                        CanaryVersion {
                            bento: v.bento.as_ref_option().cloned(),
                            weight: Some(v.weight.as_ref_option().copied().unwrap_or(0)),
                            envs: Some(envs_from_map(&v.envs)),
                            secrets: None,
                            services: BTreeMap::new(),
                        },
                    ))
                })
                .collect(),
        ),
    }
}

/// The labels Terraform managed in `prior`: its `terraform_labels`, or, in a state written
/// before those existed, its `labels` (then Terraform owned every label it listed).
pub fn managed_keys(prior: &DeploymentState) -> &Value<StringMap> {
    match &prior.label_sets.terraform_labels {
        Value::Value(_) => &prior.label_sets.terraform_labels,
        _ => &prior.spec.labels,
    }
}

/// The labels of `on_server` whose keys `keys` has (null stays null).
fn only_keys_of(on_server: &StringMap, keys: &Value<StringMap>) -> Value<StringMap> {
    match keys {
        Value::Value(k) => Value::Value(
            on_server
                .iter()
                .filter(|(key, _)| k.contains_key(*key))
                .map(|(key, v)| (key.clone(), v.clone()))
                .collect(),
        ),
        _ => Value::Null,
    }
}

/// Where the server says the deployment is.
fn location_of(d: &Deployment) -> Location {
    let cluster = d.cluster.meta.name.clone();
    Location {
        id: Value::Value(format!("{cluster}/{}", d.meta.name)),
        name: Value::Value(d.meta.name.clone()),
        cluster: Value::Value(cluster),
    }
}

/// What the server reports about the deployment; `prior` gives the URL a listing lacks.
fn reported_from(d: &Deployment, prior: &Reported) -> Reported {
    Reported {
        status: Value::Value(d.status.as_str().to_string()),
        // List items carry no `urls` (API doc §3.3): the URL read before stays (a deployment's
        // URL does not change), and a data source over a list shows none.
        url: match d.urls.as_ref().and_then(|u| u.first()) {
            Some(u) => Value::Value(u.clone()),
            None => prior.url.clone(),
        },
        revision: Value::Value(d.revision_uid().unwrap_or_default().to_string()),
        deployed_bento: Value::Value(d.bento_tag().unwrap_or_default()),
        created_at: Value::Value(d.meta.created_at.clone()),
        updated_at: Value::Value(d.meta.updated_at.clone()),
        creator: Value::Value(d.creator.meta.name.clone()),
    }
}

/// The secrets the configuration mounts; none stays null unless `prior` said an empty set.
fn secrets_for_state(
    config: &DeploymentConfig,
    prior: &Value<BTreeSet<Value<String>>>,
) -> Value<BTreeSet<Value<String>>> {
    let secrets: BTreeSet<Value<String>> = config
        .secrets
        .iter()
        .flatten()
        .map(|x| Value::Value(x.clone()))
        .collect();
    if secrets.is_empty() && !matches!(prior, Value::Value(p) if p.is_empty()) {
        Value::Null
    } else {
        Value::Value(secrets)
    }
}

/// A `service` block for every service of `config` but the entry one (what an import reads).
fn every_other_service(config: &DeploymentConfig, entry: Option<&str>) -> Vec<ServiceBlock> {
    config
        .services
        .iter()
        .filter(|(name, _)| Some(name.as_str()) != entry)
        .map(|(name, svc)| service_block_from(name, svc, None))
        .collect()
}

/// The `prior` blocks whose services `config` still has, refreshed from it.
fn blocks_still_served(config: &DeploymentConfig, prior: &[ServiceBlock]) -> Vec<ServiceBlock> {
    prior
        .iter()
        .filter_map(|b| {
            let name = b.name.as_ref_option()?;
            config
                .services
                .get(name)
                .map(|svc| service_block_from(name, svc, Some(b)))
        })
        .collect()
}

fn service_config_from_block(base: Option<&ServiceConfig>, b: &ServiceBlock) -> ServiceConfig {
    // A new service starts empty; `apply_service_settings` gives it `config_overrides: {}`.
    let mut svc = base.cloned().unwrap_or_default();
    apply_service_settings(&mut svc, &b.settings);
    svc.envs = Some(envs_from_map(&b.envs));
    svc
}

/// Overlays one service's known settings onto its server configuration, and gives a service
/// without `config_overrides` an empty object (its documented default, API doc §3.2, which the
/// official client always sends as an object).
fn apply_service_settings(svc: &mut ServiceConfig, settings: &ServiceSettings) {
    if let Value::Value(it) = &settings.instance_type {
        svc.instance_type = Some(it.clone());
    }
    let mut scaling = svc.scaling.clone().unwrap_or_default();
    if let Value::Value(m) = settings.min_replicas {
        scaling.min_replicas = Some(m);
    }
    if let Value::Value(m) = settings.max_replicas {
        scaling.max_replicas = Some(m);
    }
    // A bound neither configured nor on the server takes the platform's default (the official
    // client's `_fix_scaling`, API doc §5.3): min 1 (at most the max), max = max(min, 1). So
    // `min_replicas = 2` on a service the server has no scaling for sends {2, 2}, not the
    // invalid {2, 1}.
    if scaling.min_replicas.is_none() {
        scaling.min_replicas = Some(scaling.max_replicas.map_or(1, |max| max.min(1)));
    }
    if scaling.max_replicas.is_none() {
        scaling.max_replicas = Some(scaling.min_replicas.unwrap_or(1).max(1));
    }
    scaling.policy = policy_over(scaling.policy.take(), &settings.autoscaling);
    svc.scaling = Some(scaling);
    if let Value::Value(st) = &settings.deployment_strategy {
        svc.deployment_strategy = Some(st.clone());
    }
    let t = &settings.traffic;
    if let Value::Value(n) = t.cold_start_timeout {
        svc.cold_start_timeout = Some(n);
    }
    // The escape hatch replaces the free-form part; the typed traffic keys are then written
    // over it: the server's unless configured (the JSON may not hold them, `plan::validate`).
    if let Value::Value(text) = &t.config_overrides.0 {
        if let Ok(mut rest) = serde_json::from_str::<Json>(text) {
            Traffic::of(&svc.config_overrides).write_into(&mut rest);
            svc.config_overrides = rest;
        }
    }
    Traffic {
        timeout: t.traffic_timeout.as_ref_option().copied(),
        max_concurrency: t.traffic_max_concurrency.as_ref_option().copied(),
        external_queue: t.traffic_external_queue.as_ref_option().copied(),
    }
    .write_into(&mut svc.config_overrides);
    if svc.config_overrides.is_null() {
        svc.config_overrides = Json::Object(Default::default());
    }
}

/// The server's `scaling.policy` with the known autoscaling settings written over it; left
/// as it was (null included) when none is known. All five keys are sent, `null` when unset,
/// as the official client sends `HPAPolicy`; keys neither side models are kept.
fn policy_over(policy: Option<Json>, a: &Autoscaling) -> Option<Json> {
    let any_known = a.autoscaling_metrics.is_value()
        || a.scale_up_behavior.is_value()
        || a.scale_down_behavior.is_value()
        || a.scale_up_stabilization_window.is_value()
        || a.scale_down_stabilization_window.is_value();
    if !any_known {
        return policy;
    }
    let mut p = ScalingPolicy::of(policy.as_ref());
    if let Value::Value(m) = &a.autoscaling_metrics {
        p.metrics = Some(
            m.iter()
                .filter_map(|(k, v)| v.as_ref_option().map(|v| ScalingMetric::from_text(k, v)))
                .collect(),
        );
    }
    if let Value::Value(b) = &a.scale_up_behavior {
        p.scale_up_behavior = Some(b.clone());
    }
    if let Value::Value(b) = &a.scale_down_behavior {
        p.scale_down_behavior = Some(b.clone());
    }
    if let Value::Value(w) = a.scale_up_stabilization_window {
        p.scale_up_stabilization_window = Some(w);
    }
    if let Value::Value(w) = a.scale_down_stabilization_window {
        p.scale_down_stabilization_window = Some(w);
    }
    Some(p.write_over(policy.as_ref()))
}

fn services_for(
    planned: &DeploymentState,
    entry: &str,
    base: &BTreeMap<String, ServiceConfig>,
) -> BTreeMap<String, ServiceConfig> {
    let mut services = base.clone();
    let mut entry_svc = services.remove(entry).unwrap_or_default();
    apply_service_settings(&mut entry_svc, &planned.spec.entry);
    services.insert(entry.to_string(), entry_svc);
    for b in planned.spec.service.as_ref_option().into_iter().flatten() {
        if let Value::Value(name) = &b.name {
            let svc = service_config_from_block(base.get(name), b);
            services.insert(name.clone(), svc);
        }
    }
    services
}

/// The POST body for a new deployment whose bento's entry service is `entry`.
pub fn create_request(planned: &DeploymentState, entry: &str) -> CreateDeploymentRequest {
    CreateDeploymentRequest {
        name: planned.location.name.as_ref_option().cloned(),
        dev: false,
        spec: UpdateDeploymentRequest {
            bento: planned
                .spec
                .bento
                .as_ref_option()
                .cloned()
                .unwrap_or_default(),
            access_authorization: planned.spec.access_authorization == Value::Value(true),
            envs: Some(envs_from_map(&planned.spec.envs)),
            labels: Some(labels_from_map(
                match &planned.label_sets.terraform_labels {
                    Value::Value(_) => &planned.label_sets.terraform_labels,
                    _ => &planned.spec.labels,
                },
            )),
            secrets: Some(secrets_from_set(&planned.spec.secrets)),
            services: services_for(planned, entry, &BTreeMap::new()),
            canary: planned.canary.canary.as_ref_option().map(canary_from_block),
        },
    }
}

/// The bento a PUT names.
///
/// - `bento_managed_externally`: the server's bento (CI owns it).
/// - `resolved`: the caller resolved a changed `bento` at apply (`repo` → its newest version),
///   and that version is what is deployed.
/// - `bento` names no version and the server runs a version of that repository: that running
///   version, so a change of anything else (envs, scaling) never moves the deployment to a
///   newer push. A PUT naming `repo` alone makes the server resolve it again (API doc §3.2:
///   `bento` may be `"repo"`; §7 `deploy my_bento` resolves the newest), so sending the
///   configured `repo` back would silently upgrade.
/// - otherwise the configured tag.
pub fn update_bento(
    planned: &DeploymentState,
    server: &Deployment,
    resolved: Option<&str>,
) -> String {
    let server_bento = server.bento_tag().unwrap_or_default();
    if planned.settings.bento_managed_externally == Value::Value(true) && !server_bento.is_empty() {
        return server_bento;
    }
    if let Some(r) = resolved.filter(|r| !r.is_empty()) {
        return r.to_string();
    }
    let Some(configured) = planned.spec.bento.as_ref_option() else {
        return server_bento;
    };
    let asked = BentoTag::of(configured);
    if !asked.names_version()
        && !server_bento.is_empty()
        && asked.accepts(&BentoTag::of(&server_bento))
    {
        return server_bento;
    }
    configured.clone()
}

/// The PUT body: the server's current configuration with Terraform's attributes overlaid, the
/// top-level settings on `entry` (the bento's entry service), and the bento of
/// [`update_bento`].
///
/// Everything Terraform does not manage is carried back, because the PUT replaces the whole
/// configuration (API doc §5.1): per-service settings of services without a `service` block,
/// scaling policies, `config_overrides`, `extras` and `cold_start_timeout` (from the main
/// target's config, §3.3), and the canary, rebuilt from the extra targets and
/// `manifest.routing` as the official client does (`Deployment::canary`; §3.2, §10). The real
/// API does not return `canary` inside `targets[].config`, so copying it from there would drop
/// it.
///
/// Labels: the server's, minus those Terraform managed before (`managed_before`, see
/// [`managed_keys`]) and no longer does, plus `terraform_labels`: a label set elsewhere is
/// never removed.
pub fn update_request(
    planned: &DeploymentState,
    server: &Deployment,
    entry: &str,
    resolved_bento: Option<&str>,
    managed_before: &Value<StringMap>,
) -> UpdateDeploymentRequest {
    let managed = match &planned.label_sets.terraform_labels {
        Value::Value(_) => &planned.label_sets.terraform_labels,
        _ => &planned.spec.labels,
    };
    let labels = labels_after(
        &map_from_labels(&server.meta.labels),
        managed_before,
        managed,
    )
    .map(Value::Value)
    .unwrap_or_else(|| planned.spec.labels.clone());
    let config: DeploymentConfig = server
        .main_target()
        .and_then(|t| t.config.clone())
        .unwrap_or_default();
    UpdateDeploymentRequest {
        bento: update_bento(planned, server, resolved_bento),
        access_authorization: planned.spec.access_authorization == Value::Value(true),
        envs: Some(envs_from_map(&planned.spec.envs)),
        // Unlike the official client (which sends null = keep), the labels are sent: the PUT
        // replaces the whole configuration, and Terraform's must be there.
        labels: Some(labels_from_map(&labels)),
        secrets: Some(secrets_from_set(&planned.spec.secrets)),
        services: services_for(planned, entry, &config.services),
        // The configured canary; else the server's, kept (the caller removes it when the
        // configuration stopped managing one).
        canary: match &planned.canary.canary {
            Value::Value(b) => Some(canary_from_block(b)),
            _ => server.canary(),
        },
    }
}

#[cfg(test)]
mod tests;
