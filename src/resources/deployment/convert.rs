//! Translation between Terraform state and BentoCloud documents, both ways.
//!
//! - server → state: [`state_from_server`] overlays what BentoCloud reports onto a prior state,
//!   normalising only where the two are the same thing said differently (an empty map vs. no
//!   map, `repo` vs. the `repo:version` it resolved to), so drift shows and nothing else does.
//! - state → server: [`create_request`] and [`update_request`]. Update is read-modify-write:
//!   start from the server's current configuration and overlay only what Terraform manages, so
//!   fields Terraform does not model (extras, config overrides, scaling policies, canary) are
//!   kept.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value as Json;
use tf_provider::value::Value;

use super::model::{DeploymentState, ServiceBlock, StringMap};
use crate::api::{
    CreateDeploymentRequest, Deployment, DeploymentConfig, EnvItem, LabelItem, Scaling,
    ServiceConfig, UpdateDeploymentRequest,
};

/// The entry service of a deployment: the bento manifest's `entry_service` when the config has
/// it, else the only service, else `apiserver` (the official client's fallback), else the first.
pub fn entry_service(d: &Deployment) -> Option<String> {
    let target = d.main_target()?;
    let services = &target.config.as_ref()?.services;
    let from_manifest = target
        .bento
        .as_ref()
        .and_then(|b| b.manifest.as_ref())
        .map(|m| m.entry_service.clone())
        .filter(|e| !e.is_empty() && services.contains_key(e));
    from_manifest
        .or_else(|| {
            (services.len() == 1)
                .then(|| services.keys().next().cloned())
                .flatten()
        })
        .or_else(|| {
            services
                .contains_key("apiserver")
                .then(|| "apiserver".to_string())
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
        let repo_only = !p.contains(':') || p.ends_with(":latest");
        let prior_repo = p.split(':').next().unwrap_or("");
        let server_repo = server_tag.split(':').next().unwrap_or("");
        if repo_only && prior_repo == server_repo {
            return prior.clone();
        }
    }
    Value::Value(server_tag)
}

fn scaling_of(svc: &ServiceConfig) -> (Option<i64>, Option<i64>) {
    let s = svc.scaling.clone().unwrap_or_default();
    let min = s.min_replicas.unwrap_or(1);
    let max = s.max_replicas.unwrap_or(min.max(1));
    (Some(min), Some(max))
}

fn opt_value<T>(o: Option<T>) -> Value<T> {
    o.map(Value::Value).unwrap_or(Value::Null)
}

fn service_block_from(
    name: &str,
    svc: &ServiceConfig,
    prior: Option<&ServiceBlock>,
) -> ServiceBlock {
    let (min, max) = scaling_of(svc);
    let prior_envs = prior.map(|p| p.envs.clone()).unwrap_or(Value::Null);
    ServiceBlock {
        name: Value::Value(name.to_string()),
        instance_type: opt_value(svc.instance_type.clone()),
        min_replicas: opt_value(min),
        max_replicas: opt_value(max),
        deployment_strategy: opt_value(svc.deployment_strategy.clone()),
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
    s.name = Value::Value(d.meta.name.clone());
    s.cluster = Value::Value(cluster.clone());
    s.id = Value::Value(format!("{cluster}/{}", d.meta.name));
    s.status = Value::Value(d.status.as_str().to_string());
    s.url = Value::Value(
        d.urls
            .as_ref()
            .and_then(|u| u.first().cloned())
            .unwrap_or_default(),
    );
    s.revision = Value::Value(d.revision_uid().unwrap_or_default().to_string());
    s.created_at = Value::Value(d.meta.created_at.clone());
    s.updated_at = Value::Value(d.meta.updated_at.clone());
    s.creator = Value::Value(d.creator.meta.name.clone());
    s.labels = normalise_map(map_from_labels(&d.meta.labels), &prior.labels);

    let server_tag = d.bento_tag();
    s.deployed_bento = Value::Value(server_tag.clone().unwrap_or_default());
    if prior.bento_managed_externally != Value::Value(true) || prior.bento.is_null() {
        s.bento = bento_for_state(server_tag, &prior.bento);
    }

    let config = d
        .main_target()
        .and_then(|t| t.config.clone())
        .unwrap_or_default();
    s.access_authorization = Value::Value(config.access_authorization);
    s.envs = normalise_map(map_from_envs(&config.envs), &prior.envs);
    let secrets: BTreeSet<Value<String>> = config
        .secrets
        .iter()
        .flatten()
        .map(|x| Value::Value(x.clone()))
        .collect();
    s.secrets = if secrets.is_empty() && !matches!(&prior.secrets, Value::Value(p) if p.is_empty())
    {
        Value::Null
    } else {
        Value::Value(secrets)
    };

    let entry = entry_service(d);
    if let Some(svc) = entry.as_ref().and_then(|e| config.services.get(e)) {
        let (min, max) = scaling_of(svc);
        s.instance_type = opt_value(svc.instance_type.clone());
        s.min_replicas = opt_value(min);
        s.max_replicas = opt_value(max);
        s.deployment_strategy = opt_value(svc.deployment_strategy.clone());
    }

    let prior_blocks = prior.service.as_ref_option().cloned().unwrap_or_default();
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
    s.service = Value::Value(blocks);
    s
}

fn service_config_from_block(base: Option<&ServiceConfig>, b: &ServiceBlock) -> ServiceConfig {
    let mut svc = base.cloned().unwrap_or_else(|| ServiceConfig {
        config_overrides: Json::Object(Default::default()),
        ..Default::default()
    });
    apply_service_settings(
        &mut svc,
        &b.instance_type,
        &b.min_replicas,
        &b.max_replicas,
        &b.deployment_strategy,
    );
    svc.envs = Some(envs_from_map(&b.envs));
    svc
}

fn apply_service_settings(
    svc: &mut ServiceConfig,
    instance_type: &Value<String>,
    min: &Value<i64>,
    max: &Value<i64>,
    strategy: &Value<String>,
) {
    if let Value::Value(it) = instance_type {
        svc.instance_type = Some(it.clone());
    }
    let mut scaling = svc.scaling.clone().unwrap_or(Scaling {
        min_replicas: Some(1),
        max_replicas: Some(1),
        policy: None,
    });
    if let Value::Value(m) = min {
        scaling.min_replicas = Some(*m);
    }
    if let Value::Value(m) = max {
        scaling.max_replicas = Some(*m);
    }
    svc.scaling = Some(scaling);
    if let Value::Value(st) = strategy {
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
    let mut entry_svc = services.remove(entry).unwrap_or_else(|| ServiceConfig {
        config_overrides: Json::Object(Default::default()),
        ..Default::default()
    });
    apply_service_settings(
        &mut entry_svc,
        &planned.instance_type,
        &planned.min_replicas,
        &planned.max_replicas,
        &planned.deployment_strategy,
    );
    services.insert(entry.to_string(), entry_svc);
    for b in planned.service.as_ref_option().into_iter().flatten() {
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
        name: planned.name.as_ref_option().cloned(),
        dev: false,
        spec: UpdateDeploymentRequest {
            bento: planned.bento.as_ref_option().cloned().unwrap_or_default(),
            access_authorization: planned.access_authorization == Value::Value(true),
            envs: Some(envs_from_map(&planned.envs)),
            labels: Some(labels_from_map(&planned.labels)),
            secrets: Some(secrets_from_set(&planned.secrets)),
            services: services_for(planned, entry, &BTreeMap::new()),
            canary: None,
        },
    }
}

/// The PUT body: the server's current configuration with Terraform's attributes overlaid.
/// With `bento_managed_externally`, the server's bento is kept.
pub fn update_request(planned: &DeploymentState, server: &Deployment) -> UpdateDeploymentRequest {
    let config: DeploymentConfig = server
        .main_target()
        .and_then(|t| t.config.clone())
        .unwrap_or_default();
    let entry = entry_service(server).unwrap_or_else(|| "apiserver".to_string());
    let server_bento = server.bento_tag().unwrap_or_default();
    let bento =
        if planned.bento_managed_externally == Value::Value(true) && !server_bento.is_empty() {
            server_bento
        } else {
            planned
                .bento
                .as_ref_option()
                .cloned()
                .unwrap_or(server_bento)
        };
    UpdateDeploymentRequest {
        bento,
        access_authorization: planned.access_authorization == Value::Value(true),
        envs: Some(envs_from_map(&planned.envs)),
        // Unlike the official client (which sends null = keep), Terraform owns the labels.
        labels: Some(labels_from_map(&planned.labels)),
        secrets: Some(secrets_from_set(&planned.secrets)),
        services: services_for(planned, &entry, &config.services),
        canary: server.canary(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Deployment {
        serde_json::from_str(include_str!("../../../tests/fixtures/deployment-full.json"))
            .expect("fixture")
    }

    #[test]
    fn reads_every_managed_attribute_from_the_server() {
        let d = sample();
        let s = state_from_server(&d, &DeploymentState::default(), true);
        assert_eq!(s.id, Value::Value("default-cluster/demo".into()));
        assert_eq!(s.bento, Value::Value("my_bento:abc123".into()));
        assert_eq!(s.instance_type, Value::Value("cpu.2".into()));
        assert_eq!(
            (s.min_replicas, s.max_replicas),
            (Value::Value(1), Value::Value(2))
        );
        assert_eq!(s.deployment_strategy, Value::Value("RollingUpdate".into()));
        assert_eq!(s.status, Value::Value("running".into()));
        assert_eq!(s.url, Value::Value("https://demo.stub.local".into()));
        assert_eq!(s.revision, Value::Value("ae47940179e85336".into()));
        let envs = s.envs.as_ref_option().expect("envs");
        assert_eq!(envs["GLOBAL"], Value::Value("1".into()));
        assert_eq!(
            s.labels,
            Value::Null,
            "no labels on the server and none before"
        );
        assert_eq!(s.service, Value::Value(vec![]));
    }

    #[test]
    fn repo_only_bento_does_not_drift_against_the_resolved_version() {
        let d = sample();
        let prior = DeploymentState {
            bento: Value::Value("my_bento".into()),
            ..Default::default()
        };
        assert_eq!(
            state_from_server(&d, &prior, false).bento,
            Value::Value("my_bento".into())
        );
        let prior = DeploymentState {
            bento: Value::Value("other:v1".into()),
            ..Default::default()
        };
        assert_eq!(
            state_from_server(&d, &prior, false).bento,
            Value::Value("my_bento:abc123".into())
        );
    }

    #[test]
    fn externally_managed_bento_keeps_the_configured_value_and_reports_the_deployed_one() {
        let d = sample();
        let prior = DeploymentState {
            bento: Value::Value("my_bento:v0".into()),
            bento_managed_externally: Value::Value(true),
            ..Default::default()
        };
        let s = state_from_server(&d, &prior, false);
        assert_eq!(s.bento, Value::Value("my_bento:v0".into()));
        assert_eq!(s.deployed_bento, Value::Value("my_bento:abc123".into()));
        let req = update_request(&s, &d);
        assert_eq!(
            req.bento, "my_bento:abc123",
            "update never reverts the CI-deployed bento"
        );
    }

    #[test]
    fn update_keeps_fields_terraform_does_not_manage() {
        let d = sample();
        let mut s = state_from_server(&d, &DeploymentState::default(), true);
        s.max_replicas = Value::Value(5);
        s.bento = Value::Value("my_bento:v2".into());
        let req = update_request(&s, &d);
        let svc = &req.services["MyService"];
        assert_eq!(svc.scaling.as_ref().and_then(|x| x.max_replicas), Some(5));
        assert_eq!(svc.config_overrides["traffic"]["timeout"], 10);
        assert_eq!(req.bento, "my_bento:v2");
        assert_eq!(req.envs.as_ref().map(Vec::len), Some(1));
    }

    #[test]
    fn create_puts_entry_settings_under_the_entry_service_and_blocks_under_theirs() {
        let mut planned = DeploymentState {
            name: Value::Value("x".into()),
            bento: Value::Value("b:1".into()),
            instance_type: Value::Value("cpu.2".into()),
            min_replicas: Value::Value(2),
            max_replicas: Value::Value(3),
            deployment_strategy: Value::Value("Recreate".into()),
            ..Default::default()
        };
        planned.service = Value::Value(vec![ServiceBlock {
            name: Value::Value("Model".into()),
            instance_type: Value::Value("gpu.l4.1".into()),
            min_replicas: Value::Value(1),
            max_replicas: Value::Value(1),
            deployment_strategy: Value::Value("RollingUpdate".into()),
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
}
