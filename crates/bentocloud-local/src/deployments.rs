//! Deployment commands: validate a create/update body against `crate::rules`, the cluster's
//! instance types and the bento's services, then write the deployment and a new revision.
//! Synchronous functions over one SQLite transaction; the HTTP layer only parses and renders.

use std::collections::{BTreeMap, BTreeSet};

use rusqlite::Connection;

use super::error::ApiError;
use super::error::Result;
use super::store::{
    self, Behaviour, BentoRow, CanaryRow, CanaryVersionRow, DeploymentRow, InstanceTypeRow,
    Principal, RevisionRow,
};
use super::vocab::Phase;
use crate::api::{
    Canary, CreateDeploymentRequest, DeploymentConfig, DeploymentStatus, Scaling, ServiceConfig,
    UpdateDeploymentRequest,
};
use crate::rules;

/// Who is asking, and how unknown bentos are treated.
pub struct Caller<'a> {
    pub principal: &'a Principal,
    /// Unknown `repo:version` tags are registered on first sight instead of being a 404 (the
    /// real API's answer, and the default). Opt-in, for demos (`--auto-register-bentos`).
    pub auto_register_bentos: bool,
}

fn not_found(name: &str, cluster: &str) -> ApiError {
    ApiError::not_found(format!(
        "deployment {name:?} not found in cluster {cluster:?}"
    ))
}

/// The live deployment `name` in `cluster` (empty = default cluster) of the caller's org.
pub fn get(
    c: &Connection,
    p: &Principal,
    cluster: Option<&str>,
    name: &str,
) -> Result<DeploymentRow> {
    let cl = store::cluster(c, cluster)?;
    store::find_deployment(c, p.org.id, &cl.name, name)?.ok_or_else(|| not_found(name, &cl.name))
}

/// Resolves a tag to a bento: registered, or the newest of the repo for a tag without version.
/// An unknown one is a 404 like on BentoCloud (`bento "repo:v" not found: record not found`),
/// unless the caller opted into auto-registration: then it is registered at `now`, declaring
/// `services`.
pub fn resolve_bento(
    c: &Connection,
    caller: &Caller,
    tag: &str,
    services: &[String],
    now: i64,
) -> Result<BentoRow> {
    let (repo, version) = rules::bento_tag(tag).map_err(ApiError::bad)?;
    let org = caller.principal.org.id;
    if let Some(b) = store::find_bento(c, org, &repo, version.as_deref())? {
        return Ok(b);
    }
    if !caller.auto_register_bentos {
        return Err(match version {
            Some(v) => ApiError::not_found(format!("bento \"{repo}:{v}\" not found")),
            None => ApiError::not_found(format!("bento repository {repo:?} not found")),
        });
    }
    let version = version.unwrap_or_else(|| format!("{:012x}", rand::random::<u64>() >> 16));
    let mut beh = Behaviour {
        auto: true,
        ..Behaviour::default()
    };
    if !services.is_empty() {
        beh.services = services.to_vec();
    }
    Ok(store::put_bento(c, org, &repo, &version, &beh, now)?)
}

/// Checks per-service settings against `crate::rules` and the cluster's instance types.
fn check_services(
    services: &BTreeMap<String, ServiceConfig>,
    cluster: &str,
    types: &[InstanceTypeRow],
    what: &str,
) -> Result<()> {
    let type_names: Vec<&str> = types.iter().map(|t| t.spec.name.as_str()).collect();
    for (svc, cfg) in services {
        let ctx = |m: String| ApiError::bad(format!("{what}service {svc:?}: {m}"));
        for e in cfg.envs.iter().flatten() {
            rules::env_name(&e.name).map_err(ctx)?;
        }
        if let Some(s) = &cfg.scaling {
            rules::scaling(s.min_replicas, s.max_replicas).map_err(ctx)?;
            if let Some(p) = s.policy.as_ref().filter(|p| !p.is_null()) {
                check_policy(p).map_err(ctx)?;
            }
        }
        if let Some(s) = &cfg.deployment_strategy {
            rules::deployment_strategy(s).map_err(ctx)?;
        }
        if let Some(t) = &cfg.instance_type {
            if !type_names.contains(&t.as_str()) {
                return Err(ctx(format!(
                    "instance type {t:?} does not exist in cluster {cluster:?}; valid instance types: {}",
                    type_names.join(", ")
                )));
            }
        }
        if let Some(t) = cfg.cold_start_timeout {
            if t < 0 {
                return Err(ctx(format!(
                    "cold_start_timeout is {t}: it cannot be negative"
                )));
            }
        }
    }
    Ok(())
}

/// `scaling.policy`: only what the platform certainly refuses. The metric types and behaviours
/// are words of the platform's vocabulary (API doc §3.2; the provider checks the same words,
/// `bentocloud_api::settings`); a target that is not a Kubernetes quantity, and a stabilization
/// window outside 0..3600 s, are refused by the Kubernetes API the HPA is written to. A policy
/// that is not an `HPAPolicy` object at all does not decode on the server. Anything else (for
/// instance a `cpu` target of 500) is accepted, as the platform may.
fn check_policy(p: &serde_json::Value) -> std::result::Result<(), String> {
    use bentocloud_api::settings as st;
    let pol: st::ScalingPolicy = serde_json::from_value(p.clone())
        .map_err(|e| format!("scaling.policy is not a valid autoscaling policy: {e}"))?;
    for m in pol.metrics.iter().flatten() {
        st::metric_type(&m.kind)?;
        if st::quantity_value(&m.value_text()).is_none() {
            return Err(format!(
                "scaling.policy: the {} target {:?} is not a positive quantity (e.g. 10, \"512Mi\")",
                m.kind,
                m.value_text()
            ));
        }
    }
    for b in [&pol.scale_up_behavior, &pol.scale_down_behavior]
        .into_iter()
        .flatten()
    {
        st::scale_behavior(b)?;
    }
    for (which, w) in [
        (
            "scale_up_stabilization_window",
            pol.scale_up_stabilization_window,
        ),
        (
            "scale_down_stabilization_window",
            pol.scale_down_stabilization_window,
        ),
    ] {
        if let Some(w) = w {
            st::stabilization_window(which, w)?;
        }
    }
    Ok(())
}

fn check_secrets(c: &Connection, caller: &Caller, secrets: &Option<Vec<String>>) -> Result<()> {
    for s in secrets.iter().flatten() {
        if store::find_secret(c, caller.principal.org.id, s)?.is_none() {
            return Err(ApiError::bad(format!(
                "secret {s:?} does not exist in this organization: create it first"
            )));
        }
    }
    Ok(())
}

/// Resolves `tag` and checks the services the body names are the bento's.
fn bento_with_services(
    c: &Connection,
    caller: &Caller,
    tag: &str,
    services: &BTreeMap<String, ServiceConfig>,
    what: &str,
    now: i64,
) -> Result<BentoRow> {
    let names: Vec<String> = services.keys().cloned().collect();
    let bento = resolve_bento(c, caller, tag, &names, now)?;
    if !bento.behaviour.auto {
        let valid = &bento.behaviour.services;
        if let Some(bad) = names.iter().find(|n| !valid.contains(n)) {
            return Err(ApiError::bad(format!(
                "{what}service {bad:?} is not defined by bento {:?}; valid services: {}",
                bento.tag(),
                valid.join(", ")
            )));
        }
    }
    Ok(bento)
}

/// Server-side defaults, as the official client fills them: the cluster's default instance
/// type, scaling {1, 1}, and max = max(min, 1).
fn with_defaults(
    services: &BTreeMap<String, ServiceConfig>,
    types: &[InstanceTypeRow],
) -> BTreeMap<String, ServiceConfig> {
    let default_type = types
        .iter()
        .find(|t| t.spec.default)
        .or_else(|| types.first())
        .map(|t| t.spec.name.clone());
    let mut services = services.clone();
    for cfg in services.values_mut() {
        if cfg.instance_type.is_none() {
            cfg.instance_type = default_type.clone();
        }
        match &mut cfg.scaling {
            None => {
                cfg.scaling = Some(Scaling {
                    min_replicas: Some(1),
                    max_replicas: Some(1),
                    policy: None,
                })
            }
            Some(sc) => {
                if sc.max_replicas.is_none() {
                    sc.max_replicas = Some(sc.min_replicas.unwrap_or(1).max(1));
                }
            }
        }
    }
    services
}

/// Route types of a canary: the official client's type for `route_type` is
/// `Literal["random", "header", "query"]` or null (v2.py:80-87).
const ROUTE_TYPES: [&str; 3] = ["random", "header", "query"];

/// A canary's routing: a known `route_type`, and a `route_by` unless the pick is random.
fn check_canary_route(canary: &Canary) -> Result<()> {
    if let Some(rt) = &canary.route_type {
        if !ROUTE_TYPES.contains(&rt.as_str()) {
            return Err(ApiError::bad(format!(
                "canary.route_type is {rt:?}: use one of {}",
                ROUTE_TYPES.join(", ")
            )));
        }
        let by = canary.route_by.as_deref().unwrap_or("").trim();
        if rt != "random" && by.is_empty() {
            return Err(ApiError::bad(format!(
                "canary.route_by is empty: route_type {rt:?} needs the name of the {} that picks the version",
                if rt == "header" { "header" } else { "query parameter" }
            )));
        }
    }
    Ok(())
}

/// A canary version's name: 1 to 63 letters, digits, '-', '_' or '.', and not `main`.
fn check_canary_version_name(name: &str, what: &str) -> Result<()> {
    let valid_name = !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '-' | '_' | '.'));
    if !valid_name || name == store::MAIN_TARGET {
        return Err(ApiError::bad(format!(
            "{what}a version name is 1 to 63 letters, digits, '-', '_' or '.', and not \"main\" (the main target's name)"
        )));
    }
    Ok(())
}

/// Checks a canary and resolves each version's bento. The shape is the official client's
/// `DeploymentCanarySchema` (API doc §3.2); what the server stores is what §3.3/§10 say a
/// response shows: one target per version (named after its key, with its own bento and config)
/// and `manifest.routing` with the weights. The limits below are inferred (the real server's
/// are not documented): a version cannot be called `main` (the main target's name, which the
/// client tells apart by name), needs a bento (a target without one breaks the client's
/// update, §8), and weights are percentages in 0..=100 that add up to at most 100.
fn canary_row(
    c: &Connection,
    caller: &Caller,
    cluster: &str,
    types: &[InstanceTypeRow],
    canary: &Canary,
    access_authorization: bool,
    now: i64,
) -> Result<CanaryRow> {
    check_canary_route(canary)?;
    let mut row = CanaryRow {
        route_type: canary.route_type.clone(),
        route_by: canary.route_by.clone(),
        versions: BTreeMap::new(),
    };
    let mut total: i64 = 0;
    for (name, v) in canary.versions.iter().flatten() {
        let what = format!("canary version {name:?}: ");
        check_canary_version_name(name, &what)?;
        let tag = v.bento.as_deref().unwrap_or("").trim();
        if tag.is_empty() {
            return Err(ApiError::bad(format!(
                "{what}bento is required (repo:version)"
            )));
        }
        let weight = v.weight.unwrap_or(0);
        if !(0..=100).contains(&weight) {
            return Err(ApiError::bad(format!(
                "{what}weight is {weight}: it is a percentage, 0 to 100"
            )));
        }
        total += weight;
        for e in v.envs.iter().flatten() {
            rules::env_name(&e.name).map_err(|m| ApiError::bad(format!("{what}{m}")))?;
        }
        check_services(&v.services, cluster, types, &what)?;
        check_secrets(c, caller, &v.secrets)?;
        let bento = bento_with_services(c, caller, tag, &v.services, &what, now)?;
        row.versions.insert(
            name.clone(),
            CanaryVersionRow {
                bento_id: bento.id,
                weight,
                config: DeploymentConfig {
                    access_authorization,
                    envs: v.envs.clone(),
                    labels: None,
                    secrets: v.secrets.clone(),
                    services: with_defaults(&v.services, types),
                },
            },
        );
    }
    if total > 100 {
        return Err(ApiError::bad(format!(
            "canary weights add up to {total}: at most 100 (percent of the traffic)"
        )));
    }
    Ok(row)
}

/// Checks a spec and returns its bento, the config stored in the revision and its canary.
fn validate(
    c: &Connection,
    caller: &Caller,
    cluster: &str,
    spec: &UpdateDeploymentRequest,
    now: i64,
) -> Result<(BentoRow, DeploymentConfig, Option<CanaryRow>)> {
    rules::bento_tag(&spec.bento).map_err(ApiError::bad)?;
    for l in spec.labels.iter().flatten() {
        rules::label_key(&l.key).map_err(ApiError::bad)?;
        rules::label_value(&l.value).map_err(ApiError::bad)?;
    }
    let mut seen = BTreeSet::new();
    for l in spec.labels.iter().flatten() {
        if !seen.insert(&l.key) {
            return Err(ApiError::bad(format!(
                "label key {:?} is given twice",
                l.key
            )));
        }
    }
    for e in spec.envs.iter().flatten() {
        rules::env_name(&e.name).map_err(ApiError::bad)?;
    }
    let types = store::instance_types(c, cluster)?;
    check_services(&spec.services, cluster, &types, "")?;
    check_secrets(c, caller, &spec.secrets)?;
    let bento = bento_with_services(c, caller, &spec.bento, &spec.services, "", now)?;
    let config = DeploymentConfig {
        access_authorization: spec.access_authorization,
        envs: spec.envs.clone(),
        labels: None,
        secrets: spec.secrets.clone(),
        services: with_defaults(&spec.services, &types),
    };
    let canary = match &spec.canary {
        Some(canary) => Some(canary_row(
            c,
            caller,
            cluster,
            &types,
            canary,
            spec.access_authorization,
            now,
        )?),
        None => None,
    };
    Ok((bento, config, canary))
}

/// Starts a new revision of `d` (the deployment row must exist) and resets its rollout.
fn new_revision(
    c: &Connection,
    p: &Principal,
    d: &mut DeploymentRow,
    bento: &BentoRow,
    (config, canary): (DeploymentConfig, Option<CanaryRow>),
    now: i64,
) -> Result<()> {
    let rev = RevisionRow {
        uid: store::new_uid(),
        deployment_id: d.id,
        seq: store::next_revision_seq(c, d.id)?,
        created_at: now,
        bento_id: bento.id,
        config,
        canary,
        creator: p.user_name.clone(),
    };
    store::insert_revision(c, &rev)?;
    d.target_revision = rev.uid;
    d.updated_at = now;
    d.phase_since = now;
    d.message = String::new();
    let building = bento.behaviour.image_build_ms > 0 || bento.behaviour.image_build_fails;
    if building {
        d.phase = Phase::ImageBuilding;
        d.status = DeploymentStatus::ImageBuilding;
    } else {
        d.phase = Phase::Rolling;
        d.status = DeploymentStatus::Deploying;
    }
    Ok(store::save_deployment(c, d)?)
}

fn generated_name(repo: &str) -> String {
    let base: String = repo
        .to_ascii_lowercase()
        .chars()
        .map(|ch| if ch.is_ascii_alphanumeric() { ch } else { '-' })
        .collect();
    let base = base.trim_matches('-');
    let base: String = base.chars().take(40).collect();
    let base = base.trim_end_matches('-');
    let suffix = format!("{:06x}", rand::random::<u32>() & 0xff_ffff);
    if base.is_empty() {
        format!("deployment-{suffix}")
    } else {
        format!("{base}-{suffix}")
    }
}

pub fn create(
    c: &Connection,
    caller: &Caller,
    cluster: Option<&str>,
    req: CreateDeploymentRequest,
    now: i64,
) -> Result<DeploymentRow> {
    let p = caller.principal;
    let cl = store::cluster(c, cluster)?;
    let name = match req.name.as_deref().map(str::trim) {
        Some(n) if !n.is_empty() => n.to_string(),
        _ => {
            let (repo, _) = rules::bento_tag(&req.spec.bento).map_err(ApiError::bad)?;
            generated_name(&repo)
        }
    };
    rules::deployment_name(&name).map_err(|e| ApiError::bad(format!("deployment name: {e}")))?;
    if store::find_deployment(c, p.org.id, &cl.name, &name)?.is_some() {
        return Err(ApiError::bad(format!(
            "deployment {name:?} already exists in cluster {:?}",
            cl.name
        )));
    }
    let (bento, config, canary) = validate(c, caller, &cl.name, &req.spec, now)?;
    let mut d = DeploymentRow {
        id: 0,
        org_id: p.org.id,
        cluster: cl.name.clone(),
        name,
        uid: store::new_uid(),
        created_at: now,
        updated_at: now,
        deleted_at: None,
        labels: req.spec.labels.clone().unwrap_or_default(),
        dev: req.dev,
        creator: p.user_name.clone(),
        status: DeploymentStatus::Deploying,
        phase: Phase::Rolling,
        message: String::new(),
        target_revision: String::new(),
        serving_revision: String::new(),
        phase_since: now,
        last_request_at: now,
        // A new deployment reports `non-deployed` until its first status sync (Yatai creates
        // the row with that status; inferred for BentoCloud, API doc §10).
        reported_status: DeploymentStatus::NonDeployed,
        status_synced_at: now,
    };
    d.id = store::insert_deployment(c, &d)?;
    new_revision(c, p, &mut d, &bento, (config, canary), now)?;
    Ok(d)
}

/// Full PUT: the body replaces the configuration; `labels: null` keeps the labels, while
/// `canary: null` removes the canary (like every other field, it is part of the whole desired
/// configuration the official client sends, §5.1; labels are the one documented exception,
/// §9.3).
pub fn update(
    c: &Connection,
    caller: &Caller,
    cluster: Option<&str>,
    name: &str,
    spec: UpdateDeploymentRequest,
    now: i64,
) -> Result<DeploymentRow> {
    let mut d = get(c, caller.principal, cluster, name)?;
    let (bento, config, canary) = validate(c, caller, &d.cluster, &spec, now)?;
    if let Some(labels) = spec.labels {
        d.labels = labels;
    }
    new_revision(c, caller.principal, &mut d, &bento, (config, canary), now)?;
    Ok(d)
}

/// Redeploys the latest revision's bento and configuration as a new revision.
pub fn void_update(
    c: &Connection,
    p: &Principal,
    cluster: Option<&str>,
    name: &str,
    now: i64,
) -> Result<DeploymentRow> {
    let mut d = get(c, p, cluster, name)?;
    let rev = store::revision(c, &d.target_revision)?;
    let bento = store::bento_by_id(c, rev.bento_id)?;
    new_revision(c, p, &mut d, &bento, (rev.config, rev.canary), now)?;
    Ok(d)
}

/// Moves the deployment to `terminating`; the reconciler drains its replicas and ends in
/// `terminated`. Terminating a terminated deployment changes nothing.
pub fn terminate(
    c: &Connection,
    p: &Principal,
    cluster: Option<&str>,
    name: &str,
    now: i64,
) -> Result<DeploymentRow> {
    let mut d = get(c, p, cluster, name)?;
    if d.phase != Phase::Terminated && d.phase != Phase::Terminating {
        d.phase = Phase::Terminating;
        d.status = DeploymentStatus::Terminating;
        // Terminate sets `terminating` at once (Yatai; API doc §10); `terminated` comes with
        // a later sync, once no replica runs.
        d.reported_status = DeploymentStatus::Terminating;
        d.status_synced_at = now;
        d.phase_since = now;
        d.updated_at = now;
        d.message = String::new();
        store::save_deployment(c, &d)?;
    }
    Ok(d)
}

/// Deletes in any state. Yatai OSS refuses to delete a deployment that is not terminated,
/// but the official client's `delete` never terminates first, and a control plane for tests
/// must not leave work behind: deleting stops every replica at once (no drain) and marks the
/// row deleted. Revisions are kept (history); the name is free again.
pub fn delete(
    c: &Connection,
    p: &Principal,
    cluster: Option<&str>,
    name: &str,
    now: i64,
) -> Result<DeploymentRow> {
    let mut d = get(c, p, cluster, name)?;
    store::stop_all_replicas(c, d.id, now)?;
    d.deleted_at = Some(now);
    d.updated_at = now;
    d.phase = Phase::Terminated;
    d.status = DeploymentStatus::Terminated;
    d.reported_status = DeploymentStatus::Terminated;
    d.status_synced_at = now;
    store::save_deployment(c, &d)?;
    Ok(d)
}

#[cfg(test)]
mod tests;
