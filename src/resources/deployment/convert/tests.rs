use super::*;
use crate::api::Scaling;
use crate::resources::deployment::model::{
    JsonText, Location, ServiceBlock, ServiceSettings, Settings, Spec, StringMap,
};

fn sample() -> Deployment {
    serde_json::from_str(include_str!(
        "../../../../tests/fixtures/deployment-full.json"
    ))
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
            serde_json::to_value(update_request(p, &server, &entry, None, &Value::Null))
                .expect("ser"),
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
        let req = update_request(&changed, &server, &entry, None, &Value::Null);
        let target = took
            .latest_revision
            .as_mut()
            .and_then(|r| r.targets.first_mut())
            .and_then(Option::as_mut)
            .expect("main target");
        if let Some(b) = target.bento.as_mut() {
            b.version = req.bento.split(':').nth(1).unwrap_or_default().to_string();
            b.repository.meta.name = req.bento.split(':').next().unwrap_or_default().to_string();
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
    let req = update_request(&s, &d, "MyService", None, &Value::Null);
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
    let req = update_request(&s, &d, "MyService", None, &Value::Null);
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
                ..Default::default()
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
            ..Default::default()
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
        "../../../../tests/fixtures/create-multiservice-canary.json"
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
    update_request(&s, d, "Gateway", None, &Value::Null)
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
        "../../../../tests/fixtures/create-multiservice-canary.json"
    ))
    .expect("fixture");
    let req = envs_change_on(&d);
    assert_eq!(
        req.canary, body.spec.canary,
        "the canary the official client set is sent back whole"
    );
    assert_eq!(req.bento, "my_bento:abc123", "the main target's bento");
    // Without routing and extra targets there is no canary to send.
    let req = update_request(
        &DeploymentState::default(),
        &sample(),
        "MyService",
        None,
        &Value::Null,
    );
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
    let req = update_request(&planned, &d, "Gateway", None, &Value::Null);
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
        let mut doc: Json = serde_json::from_str(include_str!(
            "../../../../tests/fixtures/deployment-full.json"
        ))
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
            update_request(&planned, &d, "MyService", None, &Value::Null).bento,
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

#[test]
fn policy_and_traffic_travel_as_the_official_client_sends_them_and_read_back_as_written() {
    let d = sample();
    let mut s = state_from_server(&d, &DeploymentState::default(), true);
    let text = |x: &str| Value::Value(x.to_string());
    s.spec.entry.autoscaling.autoscaling_metrics =
        Value::Value(StringMap::from([("qps".to_string(), text("10"))]));
    s.spec.entry.autoscaling.scale_down_behavior = text("disabled");
    s.spec.entry.traffic.traffic_max_concurrency = Value::Value(4);
    s.spec.entry.traffic.config_overrides = JsonText(text(r#"{ "resources": {"gpu": 1} }"#));
    let req = update_request(&s, &d, "MyService", None, &Value::Null);
    let svc = &req.services["MyService"];
    let policy = svc
        .scaling
        .as_ref()
        .and_then(|x| x.policy.clone())
        .expect("policy");
    assert_eq!(
        policy["metrics"],
        serde_json::json!([{"type": "qps", "value": 10}])
    );
    assert_eq!(policy["scale_down_behavior"], "disabled");
    for k in [
        "scale_up_behavior",
        "scale_up_stabilization_window",
        "scale_down_stabilization_window",
    ] {
        assert!(
            policy.get(k).is_some(),
            "{k} is sent (null when unset), as HPAPolicy is"
        );
    }
    // The escape hatch replaced the free-form part; the server's typed traffic key stayed.
    assert_eq!(svc.config_overrides["resources"]["gpu"], 1);
    assert_eq!(svc.config_overrides["traffic"]["timeout"], 10);
    assert_eq!(svc.config_overrides["traffic"]["max_concurrency"], 4);

    // Read back from a server that took it: the texts as written, whatever their JSON form.
    let mut took = d.clone();
    if let Some(t) = took
        .latest_revision
        .as_mut()
        .and_then(|r| r.targets.first_mut())
        .and_then(|t| t.as_mut())
    {
        if let Some(c) = t.config.as_mut() {
            c.services.insert("MyService".into(), svc.clone());
        }
    }
    let back = state_from_server(&took, &s, false);
    let e = &back.spec.entry;
    assert_eq!(
        e.autoscaling.autoscaling_metrics,
        s.spec.entry.autoscaling.autoscaling_metrics
    );
    assert_eq!(
        e.traffic.config_overrides.0, s.spec.entry.traffic.config_overrides.0,
        "prior text kept"
    );
    assert_eq!(e.traffic.traffic_timeout, Value::Value(10.0));
    assert_eq!(e.traffic.traffic_max_concurrency, Value::Value(4));
    // Without a prior text: the canonical form (what `jsonencode` writes).
    let fresh = state_from_server(&took, &DeploymentState::default(), true);
    assert_eq!(
        fresh.spec.entry.traffic.config_overrides.0,
        text(r#"{"resources":{"gpu":1}}"#)
    );
    assert_eq!(
        canonical_json(&serde_json::json!({"b": [{"d": 1, "c": 2}], "a": null})),
        r#"{"a":null,"b":[{"c":2,"d":1}]}"#
    );
}

#[test]
fn a_canary_is_read_only_when_managed_or_imported_and_keeps_the_configured_order() {
    use crate::resources::deployment::model::{CanaryBlock, CanaryVersionBlock};
    let d = multi_service_with_canary(true);
    // Not managed: not read (kept on the server without showing as drift).
    let s = state_from_server(&d, &DeploymentState::default(), false);
    assert!(s.canary.canary.is_null());
    // Imported: adopted as the client reads it.
    let s = state_from_server(&d, &DeploymentState::default(), true);
    let c = s.canary.canary.as_ref_option().expect("adopted");
    assert_eq!(c.route_type, Value::Value("header".into()));
    assert_eq!(c.route_by, Value::Value("X-User".into()));
    assert_eq!(c.versions()[0].name, Value::Value("v2".into()));
    assert_eq!(c.versions()[0].weight, Value::Value(20));
    assert_eq!(
        c.versions()[0].bento,
        Value::Value("my_bento:def456".into())
    );
    // Managed: read back, a configured `repo` stays as written, and the configured order of
    // versions is kept (Terraform matches list blocks by index).
    let version = |name: &str, bento: &str| CanaryVersionBlock {
        name: Value::Value(name.into()),
        bento: Value::Value(bento.into()),
        weight: Value::Value(0),
        envs: Value::Null,
    };
    let mut prior = DeploymentState::default();
    prior.canary.canary = Value::Value(CanaryBlock {
        route_type: Value::Value("header".into()),
        route_by: Value::Value("X-User".into()),
        version: Value::Value(vec![version("zz", "other:v1"), version("v2", "my_bento")]),
    });
    let s = state_from_server(&d, &prior, false);
    let c = s.canary.canary.as_ref_option().expect("read");
    assert_eq!(c.versions().len(), 1, "a version the server lacks is drift");
    assert_eq!(c.versions()[0].bento, Value::Value("my_bento".into()));
    // Sent as the body's canary, weights defaulting to 0.
    let mut b = prior.canary.canary.as_ref_option().cloned().expect("block");
    if let Value::Value(vs) = &mut b.version {
        vs[0].weight = Value::Null;
    }
    let sent = canary_from_block(&b);
    let versions = sent.versions.expect("versions");
    assert_eq!(versions["zz"].weight, Some(0));
    assert_eq!(versions["v2"].bento.as_deref(), Some("my_bento"));
    assert_eq!(sent.route_by.as_deref(), Some("X-User"));
}
