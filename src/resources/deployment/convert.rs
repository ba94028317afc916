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

use super::model::{DeploymentState, ServiceBlock, ServiceSettings, StringMap};
use crate::api::{
    CreateDeploymentRequest, Deployment, DeploymentConfig, EnvItem, LabelItem, ServiceConfig,
    UpdateDeploymentRequest,
};
use crate::rules::BentoTag;

/// The entry service's name when nothing names it: the official client's fallback.
pub const DEFAULT_ENTRY_SERVICE: &str = "apiserver";

/// The entry service of a deployment: the bento manifest's `entry_service` when it names one
/// (the entry service is the bento's, even when the configuration has no settings for it yet:
/// the official client puts its top-level flags under the manifest's entry service, API doc
/// §5.2), else the only service, else [`DEFAULT_ENTRY_SERVICE`] when the config has it, else
/// the first.
///
/// The manifest read here is the bento's own: for a multi-service config the client replaces
/// the main target's `bento.manifest` with the one `GET /api/v1/bento_repositories/{repo}/
/// bentos/{version}` returns (`Client::with_bento_manifest`), as the official client reads the
/// entry service from the bento (API doc §5.2 step 4), since the deployment document may carry
/// no manifest at all (§3.3: optional).
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
/// defaults (min 1, max = max(min, 1)).
fn settings_of(svc: &ServiceConfig) -> ServiceSettings {
    let s = svc.scaling.clone().unwrap_or_default();
    let min = s.min_replicas.unwrap_or(1);
    let max = s.max_replicas.unwrap_or(min.max(1));
    ServiceSettings {
        instance_type: opt_value(svc.instance_type.clone()),
        min_replicas: Value::Value(min),
        max_replicas: Value::Value(max),
        deployment_strategy: opt_value(svc.deployment_strategy.clone()),
    }
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
    ServiceBlock {
        name: Value::Value(name.to_string()),
        settings: settings_of(svc),
        envs: normalise_map(map_from_envs(&svc.envs), &prior_envs),
    }
}

/// State from what the server reports, overlaid on `prior` (Terraform-only settings such as
/// waits and timeouts come from `prior`). `import` passes a prior with no service blocks, which
/// reads back every non-entry service.
pub fn state_from_server(
    d: &Deployment,
    prior: &DeploymentState,
    importing: bool,
) -> DeploymentState {
    let mut s = prior.clone();
    let cluster = d.cluster.meta.name.clone();
    s.location.name = Value::Value(d.meta.name.clone());
    s.location.cluster = Value::Value(cluster.clone());
    s.location.id = Value::Value(format!("{cluster}/{}", d.meta.name));
    s.reported.status = Value::Value(d.status.as_str().to_string());
    // List items carry no `urls` (API doc §3.3): the URL read before stays (a deployment's
    // URL does not change), and a data source over a list shows none.
    s.reported.url = match d.urls.as_ref().and_then(|u| u.first()) {
        Some(u) => Value::Value(u.clone()),
        None => prior.reported.url.clone(),
    };
    s.reported.revision = Value::Value(d.revision_uid().unwrap_or_default().to_string());
    s.reported.created_at = Value::Value(d.meta.created_at.clone());
    s.reported.updated_at = Value::Value(d.meta.updated_at.clone());
    s.reported.creator = Value::Value(d.creator.meta.name.clone());
    s.spec.labels = normalise_map(map_from_labels(&d.meta.labels), &prior.spec.labels);

    let server_tag = d.bento_tag();
    s.reported.deployed_bento = Value::Value(server_tag.clone().unwrap_or_default());
    if prior.settings.bento_managed_externally != Value::Value(true) || prior.spec.bento.is_null() {
        s.spec.bento = bento_for_state(server_tag, &prior.spec.bento);
    }

    let config = d.main_target().and_then(|t| t.config.clone());
    let has_config = config.is_some();
    let config = config.unwrap_or_default();
    s.spec.access_authorization = Value::Value(config.access_authorization);
    s.spec.envs = normalise_map(map_from_envs(&config.envs), &prior.spec.envs);
    let secrets: BTreeSet<Value<String>> = config
        .secrets
        .iter()
        .flatten()
        .map(|x| Value::Value(x.clone()))
        .collect();
    s.spec.secrets =
        if secrets.is_empty() && !matches!(&prior.spec.secrets, Value::Value(p) if p.is_empty()) {
            Value::Null
        } else {
            Value::Value(secrets)
        };

    let entry = entry_service(d);
    match entry.as_ref().and_then(|e| config.services.get(e)) {
        Some(svc) => s.spec.entry = settings_of(svc),
        // The main target's configuration has no settings for the entry service (created with
        // `services: {}` by the console, a script or a raw API body): the server reports none,
        // so state claims none (the plan then leaves them to the server, see
        // `plan::plan_update`). Without a configuration at all, the prior values stay.
        None if has_config => s.spec.entry = ServiceSettings::default(),
        None => {}
    }

    let prior_blocks = prior
        .spec
        .service
        .as_ref_option()
        .cloned()
        .unwrap_or_default();
    let blocks: Vec<ServiceBlock> = if importing {
        config
            .services
            .iter()
            .filter(|(name, _)| Some(*name) != entry.as_ref())
            .map(|(name, svc)| service_block_from(name, svc, None))
            .collect()
    } else {
        prior_blocks
            .iter()
            .filter_map(|b| {
                let name = b.name.as_ref_option()?;
                config
                    .services
                    .get(name)
                    .map(|svc| service_block_from(name, svc, Some(b)))
            })
            .collect()
    };
    s.spec.service = Value::Value(blocks);
    s
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
    svc.scaling = Some(scaling);
    if let Value::Value(st) = &settings.deployment_strategy {
        svc.deployment_strategy = Some(st.clone());
    }
    if svc.config_overrides.is_null() {
        svc.config_overrides = Json::Object(Default::default());
    }
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
            labels: Some(labels_from_map(&planned.spec.labels)),
            secrets: Some(secrets_from_set(&planned.spec.secrets)),
            services: services_for(planned, entry, &BTreeMap::new()),
            canary: None,
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
pub fn update_request(
    planned: &DeploymentState,
    server: &Deployment,
    entry: &str,
    resolved_bento: Option<&str>,
) -> UpdateDeploymentRequest {
    let config: DeploymentConfig = server
        .main_target()
        .and_then(|t| t.config.clone())
        .unwrap_or_default();
    UpdateDeploymentRequest {
        bento: update_bento(planned, server, resolved_bento),
        access_authorization: planned.spec.access_authorization == Value::Value(true),
        envs: Some(envs_from_map(&planned.spec.envs)),
        // Unlike the official client (which sends null = keep), Terraform owns the labels.
        labels: Some(labels_from_map(&planned.spec.labels)),
        secrets: Some(secrets_from_set(&planned.spec.secrets)),
        services: services_for(planned, entry, &config.services),
        canary: server.canary(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Scaling;
    use crate::resources::deployment::model::{
        Location, ServiceBlock, ServiceSettings, Settings, Spec,
    };

    fn sample() -> Deployment {
        serde_json::from_str(include_str!("../../../tests/fixtures/deployment-full.json"))
            .expect("fixture")
    }

    /// Every managed attribute, changed alone, changes what is sent (create and update bodies)
    /// and reads back from a server that took it: adding an attribute to
    /// [`Spec`](super::super::model::Spec) without its conversion fails here.
    #[test]
    fn every_managed_attribute_is_sent_and_read_back() {
        let server = sample();
        let mut planned = state_from_server(&server, &DeploymentState::default(), false);
        planned.settings.bento_managed_externally = Value::Value(false);
        let entry = entry_service(&server).expect("entry");
        let body = |p: &DeploymentState| {
            (
                serde_json::to_value(update_request(p, &server, &entry, None)).expect("ser"),
                serde_json::to_value(create_request(p, &entry)).expect("ser"),
            )
        };
        let (update_before, create_before) = body(&planned);
        for (k, spec) in crate::resources::deployment::model::one_attribute_changes(&planned.spec) {
            let changed = DeploymentState {
                spec,
                ..planned.clone()
            };
            let (update_after, create_after) = body(&changed);
            assert_ne!(update_after, update_before, "{k} is not in the PUT body");
            assert_ne!(create_after, create_before, "{k} is not in the POST body");

            // A server that took the PUT reads back as what was planned.
            let mut took = server.clone();
            let req = update_request(&changed, &server, &entry, None);
            let target = took
                .latest_revision
                .as_mut()
                .and_then(|r| r.targets.first_mut())
                .and_then(Option::as_mut)
                .expect("main target");
            if let Some(b) = target.bento.as_mut() {
                b.version = req.bento.split(':').nth(1).unwrap_or_default().to_string();
                b.repository.meta.name =
                    req.bento.split(':').next().unwrap_or_default().to_string();
            }
            let config = target.config.as_mut().expect("config");
            config.access_authorization = req.access_authorization;
            config.envs = req.envs.clone();
            config.secrets = req.secrets.clone();
            config.services = req.services.clone();
            took.meta.labels = req.labels.clone().unwrap_or_default();
            let back = state_from_server(&took, &changed, false);
            assert_eq!(back.spec, changed.spec, "{k} does not read back");
        }
    }

    #[test]
    fn reads_every_managed_attribute_from_the_server() {
        let d = sample();
        let s = state_from_server(&d, &DeploymentState::default(), true);
        assert_eq!(s.location.id, Value::Value("default-cluster/demo".into()));
        assert_eq!(s.spec.bento, Value::Value("my_bento:abc123".into()));
        assert_eq!(s.spec.entry.instance_type, Value::Value("cpu.2".into()));
        assert_eq!(
            (s.spec.entry.min_replicas, s.spec.entry.max_replicas),
            (Value::Value(1), Value::Value(2))
        );
        assert_eq!(
            s.spec.entry.deployment_strategy,
            Value::Value("RollingUpdate".into())
        );
        assert_eq!(s.reported.status, Value::Value("running".into()));
        assert_eq!(
            s.reported.url,
            Value::Value("https://demo.stub.local".into())
        );
        assert_eq!(s.reported.revision, Value::Value("ae47940179e85336".into()));
        let envs = s.spec.envs.as_ref_option().expect("envs");
        assert_eq!(envs["GLOBAL"], Value::Value("1".into()));
        assert_eq!(
            s.spec.labels,
            Value::Null,
            "no labels on the server and none before"
        );
        assert_eq!(s.spec.service, Value::Value(vec![]));
    }

    #[test]
    fn repo_only_bento_does_not_drift_against_the_resolved_version() {
        let d = sample();
        let prior = DeploymentState {
            spec: Spec {
                bento: Value::Value("my_bento".into()),
                ..Default::default()
            },
            ..Default::default()
        };
        assert_eq!(
            state_from_server(&d, &prior, false).spec.bento,
            Value::Value("my_bento".into())
        );
        let prior = DeploymentState {
            spec: Spec {
                bento: Value::Value("other:v1".into()),
                ..Default::default()
            },
            ..Default::default()
        };
        assert_eq!(
            state_from_server(&d, &prior, false).spec.bento,
            Value::Value("my_bento:abc123".into())
        );
    }

    #[test]
    fn externally_managed_bento_keeps_the_configured_value_and_reports_the_deployed_one() {
        let d = sample();
        let prior = DeploymentState {
            spec: Spec {
                bento: Value::Value("my_bento:v0".into()),
                ..Default::default()
            },
            settings: Settings {
                bento_managed_externally: Value::Value(true),
                ..Default::default()
            },
            ..Default::default()
        };
        let s = state_from_server(&d, &prior, false);
        assert_eq!(s.spec.bento, Value::Value("my_bento:v0".into()));
        assert_eq!(
            s.reported.deployed_bento,
            Value::Value("my_bento:abc123".into())
        );
        let req = update_request(&s, &d, "MyService", None);
        assert_eq!(
            req.bento, "my_bento:abc123",
            "update never reverts the CI-deployed bento"
        );
    }

    #[test]
    fn update_keeps_fields_terraform_does_not_manage() {
        let d = sample();
        let mut s = state_from_server(&d, &DeploymentState::default(), true);
        s.spec.entry.max_replicas = Value::Value(5);
        s.spec.bento = Value::Value("my_bento:v2".into());
        let req = update_request(&s, &d, "MyService", None);
        let svc = &req.services["MyService"];
        assert_eq!(svc.scaling.as_ref().and_then(|x| x.max_replicas), Some(5));
        assert_eq!(svc.config_overrides["traffic"]["timeout"], 10);
        assert_eq!(req.bento, "my_bento:v2");
        assert_eq!(req.envs.as_ref().map(Vec::len), Some(1));
    }

    #[test]
    fn create_puts_entry_settings_under_the_entry_service_and_blocks_under_theirs() {
        let mut planned = DeploymentState {
            location: Location {
                name: Value::Value("x".into()),
                ..Default::default()
            },
            spec: Spec {
                bento: Value::Value("b:1".into()),
                entry: ServiceSettings {
                    instance_type: Value::Value("cpu.2".into()),
                    min_replicas: Value::Value(2),
                    max_replicas: Value::Value(3),
                    deployment_strategy: Value::Value("Recreate".into()),
                },
                ..Default::default()
            },
            ..Default::default()
        };
        planned.spec.service = Value::Value(vec![ServiceBlock {
            settings: ServiceSettings {
                instance_type: Value::Value("gpu.l4.1".into()),
                min_replicas: Value::Value(1),
                max_replicas: Value::Value(1),
                deployment_strategy: Value::Value("RollingUpdate".into()),
            },
            name: Value::Value("Model".into()),
            envs: Value::Null,
        }]);
        let req = create_request(&planned, "Gateway");
        assert_eq!(req.name.as_deref(), Some("x"));
        let gw = &req.spec.services["Gateway"];
        assert_eq!(gw.instance_type.as_deref(), Some("cpu.2"));
        assert_eq!(gw.scaling.as_ref().and_then(|s| s.min_replicas), Some(2));
        assert_eq!(gw.deployment_strategy.as_deref(), Some("Recreate"));
        assert_eq!(
            req.spec.services["Model"].instance_type.as_deref(),
            Some("gpu.l4.1")
        );
    }

    /// The multi-service + canary sample body (`api-samples/create-multiservice-canary.json`,
    /// the official client's create body) as BentoCloud shows it once deployed (API doc §3.3,
    /// §10): a target `main` with the body's config, a target per canary version, and
    /// `manifest.routing`. No `canary` anywhere in a config. `with_manifest` says whether the
    /// main target's bento embeds its manifest (entry service `Gateway`).
    fn multi_service_with_canary(with_manifest: bool) -> Deployment {
        use crate::api::{Bento, DeploymentManifest, Routing, Target};
        let body: CreateDeploymentRequest = serde_json::from_str(include_str!(
            "../../../tests/fixtures/create-multiservice-canary.json"
        ))
        .expect("fixture");
        let mut d = sample();
        let bento = |tag: &str| {
            let (repo, version) = tag.split_once(':').expect("tag");
            let mut b = Bento {
                version: version.into(),
                ..Default::default()
            };
            b.meta.name = version.into();
            b.repository.meta.name = repo.into();
            b
        };
        let mut main_bento = bento(&body.spec.bento);
        if with_manifest {
            main_bento.manifest = Some(crate::api::BentoManifest {
                entry_service: "Gateway".into(),
                ..Default::default()
            });
        }
        let mut main = Target {
            bento: Some(main_bento),
            config: Some(DeploymentConfig {
                access_authorization: body.spec.access_authorization,
                envs: body.spec.envs.clone(),
                labels: None,
                secrets: body.spec.secrets.clone(),
                services: body.spec.services.clone(),
            }),
            ..Default::default()
        };
        main.meta.name = "main".into();
        let canary = body.spec.canary.clone().expect("canary");
        let mut targets = vec![Some(main)];
        let mut weights = BTreeMap::new();
        for (name, v) in canary.versions.clone().unwrap_or_default() {
            let mut t = Target {
                bento: Some(bento(v.bento.as_deref().expect("bento"))),
                config: Some(DeploymentConfig {
                    access_authorization: body.spec.access_authorization,
                    envs: v.envs.clone(),
                    labels: None,
                    secrets: v.secrets.clone(),
                    services: v.services.clone(),
                }),
                ..Default::default()
            };
            t.meta.name = name.clone();
            targets.push(Some(t));
            weights.insert(name, v.weight.unwrap_or(0));
        }
        d.latest_revision.as_mut().expect("rev").targets = targets;
        d.manifest = Some(DeploymentManifest {
            dev: false,
            routing: Some(Routing {
                route_type: canary.route_type.clone(),
                route_by: canary.route_by.clone(),
                weights: Some(weights),
            }),
        });
        d
    }

    /// Terraform manages the top level (the entry service `Gateway`) and `envs` only, and
    /// changes `envs` and `max_replicas`.
    fn envs_change_on(d: &Deployment) -> UpdateDeploymentRequest {
        let mut s = state_from_server(d, &DeploymentState::default(), false);
        s.spec.service = Value::Value(vec![]);
        s.spec.entry.max_replicas = Value::Value(6);
        s.spec.envs = Value::Value(
            [("G".to_string(), Value::Value("2".to_string()))]
                .into_iter()
                .collect(),
        );
        update_request(&s, d, "Gateway", None)
    }

    #[test]
    fn update_keeps_the_settings_of_services_without_a_service_block() {
        let d = multi_service_with_canary(true);
        let before = d.main_target().and_then(|t| t.config.clone()).expect("cfg");
        let req = envs_change_on(&d);
        assert_eq!(
            req.services["Model"], before.services["Model"],
            "a service Terraform does not name is sent back unchanged"
        );
        assert_eq!(req.envs.as_ref().map(|e| e[0].value.as_str()), Some("2"));
    }

    #[test]
    fn update_keeps_scaling_policies() {
        let d = multi_service_with_canary(true);
        let req = envs_change_on(&d);
        let sc = req.services["Gateway"].scaling.clone().expect("scaling");
        assert_eq!(sc.max_replicas, Some(6));
        let policy = sc.policy.expect("the policy survives");
        assert_eq!(policy["metrics"][0]["type"], "cpu");
        assert_eq!(policy["scale_down_stabilization_window"], 600);
    }

    #[test]
    fn update_keeps_config_overrides() {
        let d = multi_service_with_canary(true);
        let req = envs_change_on(&d);
        let o = &req.services["Gateway"].config_overrides;
        assert_eq!(o["traffic"]["timeout"], 60);
        assert_eq!(o["resources"]["gpu"], 1);
    }

    #[test]
    fn update_keeps_extras() {
        let d = multi_service_with_canary(true);
        let req = envs_change_on(&d);
        let extras = req.services["Gateway"].extras.clone().expect("extras");
        assert_eq!(extras["bento_request_overrides"]["imageBuildTimeout"], 1800);
    }

    #[test]
    fn update_keeps_cold_start_timeout() {
        let d = multi_service_with_canary(true);
        let req = envs_change_on(&d);
        assert_eq!(req.services["Gateway"].cold_start_timeout, Some(900));
    }

    #[test]
    fn update_sends_back_the_canary_read_from_the_targets_and_the_routing() {
        let d = multi_service_with_canary(true);
        let body: CreateDeploymentRequest = serde_json::from_str(include_str!(
            "../../../tests/fixtures/create-multiservice-canary.json"
        ))
        .expect("fixture");
        let req = envs_change_on(&d);
        assert_eq!(
            req.canary, body.spec.canary,
            "the canary the official client set is sent back whole"
        );
        assert_eq!(req.bento, "my_bento:abc123", "the main target's bento");
        // Without routing and extra targets there is no canary to send.
        let req = update_request(&DeploymentState::default(), &sample(), "MyService", None);
        assert_eq!(req.canary, None);
    }

    #[test]
    fn entry_service_comes_from_the_bento_manifest_not_the_service_order() {
        // With the bento's manifest (which the client puts there, see `entry_service`), the
        // entry service is `Gateway`; the top-level attributes read and write it.
        let d = multi_service_with_canary(true);
        assert_eq!(entry_service(&d).as_deref(), Some("Gateway"));
        let s = state_from_server(&d, &DeploymentState::default(), true);
        assert_eq!(s.spec.entry.instance_type, Value::Value("cpu.2".into()));
        let names: Vec<String> = s
            .spec
            .service
            .as_ref_option()
            .into_iter()
            .flatten()
            .filter_map(|b| b.name.as_ref_option().cloned())
            .collect();
        assert_eq!(names, ["Model"]);
        let mut planned = s.clone();
        planned.spec.entry.instance_type = Value::Value("cpu.4".into());
        let req = update_request(&planned, &d, "Gateway", None);
        assert_eq!(
            req.services["Gateway"].instance_type.as_deref(),
            Some("cpu.4")
        );
        assert_eq!(
            req.services["Model"].instance_type.as_deref(),
            Some("gpu.l4.1")
        );
    }

    /// The entry service when the manifest does not settle it: a manifest naming a service
    /// the config lacks is ignored, and of several services `apiserver` (the official client's
    /// fallback) wins over the first by name.
    #[test]
    fn entry_service_falls_back_like_the_official_client() {
        let with = |services: &[&str], manifest_entry: Option<&str>| {
            let mut doc: Json =
                serde_json::from_str(include_str!("../../../tests/fixtures/deployment-full.json"))
                    .expect("fixture");
            let target = &mut doc["latest_revision"]["targets"][0];
            let svc = target["config"]["services"]["MyService"].clone();
            target["config"]["services"] = Json::Object(
                services
                    .iter()
                    .map(|n| (n.to_string(), svc.clone()))
                    .collect(),
            );
            match manifest_entry {
                Some(e) => target["bento"]["manifest"]["entry_service"] = Json::from(e),
                None => {
                    if let Some(b) = target["bento"].as_object_mut() {
                        b.remove("manifest");
                    }
                }
            }
            let d: Deployment = serde_json::from_value(doc).expect("deployment");
            entry_service(&d)
        };
        assert_eq!(
            with(&["aaa", "apiserver"], None).as_deref(),
            Some("apiserver")
        );
        assert_eq!(with(&["aaa", "bbb"], None).as_deref(), Some("aaa"));
        assert_eq!(with(&["Web"], None).as_deref(), Some("Web"));
        assert_eq!(
            with(&["aaa", "apiserver"], Some("Ghost")).as_deref(),
            Some("Ghost"),
            "a manifest naming a service the config has no settings for yet"
        );
        assert_eq!(
            with(&[], Some("Web")).as_deref(),
            Some("Web"),
            "services: {{}}"
        );
        assert_eq!(with(&[], None), None, "nothing names it");
        assert_eq!(with(&["aaa", "Web"], Some("Web")).as_deref(), Some("Web"));
    }

    /// A pinned version that changed on the server is drift; only `repo` (or `repo:latest`)
    /// stays as written while the server runs a version of that repository.
    #[test]
    fn a_pinned_bento_changed_elsewhere_reads_as_drift() {
        let v = |x: &str| Value::Value(x.to_string());
        assert_eq!(
            bento_for_state(Some("iris:v2".into()), &v("iris:v1")),
            v("iris:v2")
        );
        assert_eq!(
            bento_for_state(Some("iris:v2".into()), &v("iris")),
            v("iris")
        );
        assert_eq!(
            bento_for_state(Some("iris:v2".into()), &v("iris:latest")),
            v("iris:latest")
        );
        assert_eq!(
            bento_for_state(Some("other:v2".into()), &v("iris")),
            v("other:v2"),
            "another repository is drift even for a repo-only bento"
        );
        assert_eq!(bento_for_state(None, &v("iris:v1")), v("iris:v1"));
    }

    #[test]
    fn repo_only_bento_keeps_the_running_version_when_bento_is_unchanged() {
        let d = sample(); // runs my_bento:abc123
        for configured in ["my_bento", "my_bento:latest"] {
            let planned = DeploymentState {
                spec: Spec {
                    bento: Value::Value(configured.into()),
                    ..Default::default()
                },
                ..Default::default()
            };
            assert_eq!(
                update_request(&planned, &d, "MyService", None).bento,
                "my_bento:abc123",
                "{configured}: a PUT naming the repository alone would move to its newest push"
            );
        }
        // A pinned version is sent as configured; another repository too.
        for configured in ["my_bento:v9", "other"] {
            let planned = DeploymentState {
                spec: Spec {
                    bento: Value::Value(configured.into()),
                    ..Default::default()
                },
                ..Default::default()
            };
            assert_eq!(update_bento(&planned, &d, None), configured);
        }
    }

    #[test]
    fn changed_bento_sends_the_version_resolved_at_apply() {
        let d = sample();
        let planned = DeploymentState {
            spec: Spec {
                bento: Value::Value("my_bento".into()),
                ..Default::default()
            },
            ..Default::default()
        };
        assert_eq!(
            update_bento(&planned, &d, Some("my_bento:def456")),
            "my_bento:def456"
        );
        // ... unless CI owns the bento.
        let planned = DeploymentState {
            settings: Settings {
                bento_managed_externally: Value::Value(true),
                ..Default::default()
            },
            ..planned
        };
        assert_eq!(
            update_bento(&planned, &d, Some("my_bento:def456")),
            "my_bento:abc123"
        );
    }
    fn with_services(services: BTreeMap<String, ServiceConfig>) -> Deployment {
        let mut d = sample();
        let target = d
            .latest_revision
            .as_mut()
            .and_then(|r| r.targets.first_mut())
            .and_then(Option::as_mut)
            .expect("main target");
        target.config.as_mut().expect("config").services = services;
        d
    }

    #[test]
    fn a_deployment_created_with_no_service_settings_reads_none() {
        // `POST /api/v2/deployments` with `services: {}`: the server reports no settings for
        // the entry service, so state claims none, whatever the prior said.
        let d = with_services(BTreeMap::new());
        let prior = state_from_server(&sample(), &DeploymentState::default(), false);
        assert!(prior.spec.entry.instance_type.is_value());
        let s = state_from_server(&d, &prior, false);
        assert_eq!(s.spec.entry, ServiceSettings::default());
        let imported = state_from_server(&d, &DeploymentState::default(), true);
        assert_eq!(imported.spec.entry, ServiceSettings::default());
        // A document without any configuration says nothing: the prior values stay.
        let mut bare = sample();
        if let Some(t) = bare
            .latest_revision
            .as_mut()
            .and_then(|r| r.targets.first_mut())
            .and_then(Option::as_mut)
        {
            t.config = None;
        }
        assert_eq!(
            state_from_server(&bare, &prior, false).spec.entry,
            prior.spec.entry
        );
    }

    #[test]
    fn scaling_the_server_lacks_takes_the_platform_defaults_around_the_configured_bound() {
        let mut svc = ServiceConfig::default();
        let settings = |min: Value<i64>, max: Value<i64>| ServiceSettings {
            min_replicas: min,
            max_replicas: max,
            ..Default::default()
        };
        let scaled = |svc: &ServiceConfig| {
            let s = svc.scaling.clone().expect("scaling");
            (s.min_replicas, s.max_replicas)
        };
        apply_service_settings(&mut svc, &settings(Value::Value(2), Value::Unknown));
        assert_eq!(scaled(&svc), (Some(2), Some(2)));
        let mut svc = ServiceConfig::default();
        apply_service_settings(&mut svc, &settings(Value::Unknown, Value::Unknown));
        assert_eq!(scaled(&svc), (Some(1), Some(1)));
        let mut svc = ServiceConfig::default();
        apply_service_settings(&mut svc, &settings(Value::Null, Value::Value(3)));
        assert_eq!(scaled(&svc), (Some(1), Some(3)));
        let mut svc = ServiceConfig::default();
        apply_service_settings(&mut svc, &settings(Value::Value(0), Value::Null));
        assert_eq!(scaled(&svc), (Some(0), Some(1)));
        // What the server has stays where nothing is configured.
        let mut svc = ServiceConfig {
            scaling: Some(Scaling {
                min_replicas: Some(3),
                max_replicas: Some(5),
                policy: None,
            }),
            ..Default::default()
        };
        apply_service_settings(&mut svc, &settings(Value::Unknown, Value::Unknown));
        assert_eq!(scaled(&svc), (Some(3), Some(5)));
        assert_eq!(
            svc.instance_type, None,
            "an unknown instance type is the server's"
        );
    }
}
