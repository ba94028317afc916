use super::*;
use crate::api::{LabelItem, ServiceConfig};
use crate::config::PlatformConfig;

fn setup() -> (tempfile::TempDir, store::Store, Principal) {
    store::test_store()
}

/// A caller that registers unknown bentos on first use.
fn auto(p: &Principal) -> Caller<'_> {
    Caller {
        principal: p,
        auto_register_bentos: true,
    }
}

/// A service's settings with only its scaling bounds.
fn scaled(min_replicas: Option<i64>, max_replicas: Option<i64>) -> ServiceConfig {
    ServiceConfig {
        scaling: Some(Scaling {
            min_replicas,
            max_replicas,
            policy: None,
        }),
        ..Default::default()
    }
}

fn req(name: &str, bento: &str) -> CreateDeploymentRequest {
    let mut r = CreateDeploymentRequest {
        name: Some(name.into()),
        ..Default::default()
    };
    r.spec.bento = bento.into();
    r
}

#[test]
fn create_validates_and_rejects_duplicates() {
    let (_d, s, p) = setup();
    let caller = auto(&p);
    s.tx(|c| {
        let d = create(c, &caller, Some(""), req("a", "iris:v1"), 1)?;
        assert_eq!(d.cluster, "local-east");
        assert_eq!(store::revision_count(c, d.id)?, 1);
        let dup = create(c, &caller, None, req("a", "iris:v1"), 2).expect_err("dup");
        assert!(
            dup.message()
                .contains("already exists in cluster \"local-east\""),
            "{dup}"
        );
        assert!(create(c, &caller, Some("local-west"), req("a", "iris:v1"), 2).is_ok());
        let e = create(c, &caller, Some("nowhere"), req("b", "iris:v1"), 2).expect_err("cl");
        assert_eq!(
            e.message(),
            "cluster \"nowhere\" not found: record not found"
        );
        let e = create(c, &caller, None, req("Bad_Name", "iris:v1"), 2).expect_err("name");
        assert_eq!(e.status(), axum::http::StatusCode::BAD_REQUEST);
        let mut r = req("c", "iris:v1");
        r.spec.services.insert(
            "apiserver".into(),
            ServiceConfig {
                instance_type: Some("cpu.99".into()),
                ..Default::default()
            },
        );
        let e = create(c, &caller, None, r, 2).expect_err("it");
        assert!(e.message().contains("cpu.1, cpu.2"), "{e}");
        let mut r = req("c", "iris:v1");
        r.spec
            .services
            .insert("svc".into(), scaled(Some(3), Some(1)));
        assert!(create(c, &caller, None, r, 2).is_err());
        let mut r = req("c", "iris:v1");
        r.spec.labels = Some(vec![LabelItem {
            key: "bad key".into(),
            value: "x".into(),
        }]);
        assert!(create(c, &caller, None, r, 2).is_err());
        Ok::<_, crate::error::ApiError>(())
    })
    .expect("tx");
}

#[test]
fn null_instance_type_and_scaling_get_server_defaults() {
    let (_d, s, p) = setup();
    let caller = auto(&p);
    s.tx(|c| {
        let mut r = req("a", "iris:v1");
        r.spec
            .services
            .insert("apiserver".into(), ServiceConfig::default());
        r.spec
            .services
            .insert("other".into(), scaled(Some(3), None));
        let d = create(c, &caller, None, r, 1)?;
        let cfg = store::revision(c, &d.target_revision)?.config;
        let a = &cfg.services["apiserver"];
        assert_eq!(a.instance_type.as_deref(), Some("cpu.1"));
        let sc = a.scaling.clone().expect("scaling");
        assert_eq!((sc.min_replicas, sc.max_replicas), (Some(1), Some(1)));
        let sc = cfg.services["other"].scaling.clone().expect("scaling");
        assert_eq!((sc.min_replicas, sc.max_replicas), (Some(3), Some(3)));
        Ok::<_, crate::error::ApiError>(())
    })
    .expect("tx");
}

#[test]
fn unknown_bentos_are_404_unless_auto_registering_and_declared_services() {
    let (_d, s, p) = setup();
    let strict = Caller {
        principal: &p,
        auto_register_bentos: false,
    };
    let auto = auto(&p);
    s.tx(|c| {
        // The default: an unknown bento is BentoCloud's 404 on create, update and lookup,
        // and nothing gets registered by asking.
        let e = create(c, &strict, None, req("a", "ghost:v1"), 1).expect_err("strict");
        assert_eq!(e.status(), axum::http::StatusCode::NOT_FOUND);
        assert_eq!(
            e.message(),
            "bento \"ghost:v1\" not found: record not found"
        );
        let e = resolve_bento(c, &strict, "ghost", &[], 1).expect_err("repo");
        assert_eq!(
            (e.status(), e.message()),
            (
                axum::http::StatusCode::NOT_FOUND,
                "bento repository \"ghost\" not found: record not found".to_string()
            )
        );
        assert_eq!(store::find_repo(c, p.org.id, "ghost")?, None);
        store::put_bento(c, p.org.id, "known", "v1", &Behaviour::default(), 0)?;
        create(c, &strict, None, req("k", "known:v1"), 1)?;
        let spec = UpdateDeploymentRequest {
            bento: "known:v2".into(),
            ..Default::default()
        };
        let e = update(c, &strict, None, "k", spec, 2).expect_err("update");
        assert_eq!(e.status(), axum::http::StatusCode::NOT_FOUND);
        assert_eq!(store::find_bento(c, p.org.id, "known", Some("v2"))?, None);
        // Opted in: registered on first sight, with the services the body names.
        let mut r = req("g", "ghost:v1");
        r.spec
            .services
            .insert("Anything".into(), ServiceConfig::default());
        create(c, &auto, None, r, 3)?;
        let b = store::find_bento(c, p.org.id, "ghost", Some("v1"))?.expect("registered");
        assert!(b.behaviour.auto);
        assert_eq!(b.behaviour.services, ["Anything"]);
        let beh = Behaviour {
            services: vec!["Front".into(), "Back".into()],
            ..Default::default()
        };
        store::put_bento(c, p.org.id, "multi", "v1", &beh, 0)?;
        let mut r = req("a", "multi");
        r.spec
            .services
            .insert("Nope".into(), ServiceConfig::default());
        let e = create(c, &strict, None, r, 1).expect_err("svc");
        assert!(e.message().contains("valid services: Front, Back"), "{e}");
        let mut r = req("a", "multi:latest");
        r.spec
            .services
            .insert("Back".into(), ServiceConfig::default());
        let d = create(c, &strict, None, r, 1)?;
        let rev = store::revision(c, &d.target_revision)?;
        assert_eq!(store::bento_by_id(c, rev.bento_id)?.version, "v1");
        Ok::<_, crate::error::ApiError>(())
    })
    .expect("tx");
}

#[test]
fn update_keeps_labels_on_null_and_makes_revisions() {
    let (_d, s, p) = setup();
    let caller = auto(&p);
    s.tx(|c| {
        let mut r = req("a", "iris:v1");
        r.spec.labels = Some(vec![LabelItem {
            key: "team".into(),
            value: "ml".into(),
        }]);
        let d0 = create(c, &caller, None, r, 1)?;
        let spec = UpdateDeploymentRequest {
            bento: "iris:v2".into(),
            ..Default::default()
        };
        let d1 = update(c, &caller, Some(""), "a", spec, 2)?;
        assert_eq!(d1.labels.len(), 1);
        assert_ne!(d1.target_revision, d0.target_revision);
        let d2 = void_update(c, &p, None, "a", 3)?;
        assert_ne!(d2.target_revision, d1.target_revision);
        assert_eq!(store::revision_count(c, d2.id)?, 3);
        let t = terminate(c, &p, None, "a", 4)?;
        assert_eq!(t.status, DeploymentStatus::Terminating);
        let del = delete(c, &p, None, "a", 5)?;
        assert!(del.deleted_at.is_some());
        assert!(get(c, &p, None, "a").is_err());
        assert!(create(c, &caller, None, req("a", "iris:v1"), 6).is_ok());
        Ok::<_, crate::error::ApiError>(())
    })
    .expect("tx");
}

fn canary(route_type: &str, versions: &[(&str, &str, i64)]) -> Canary {
    Canary {
        route_type: Some(route_type.into()),
        route_by: (route_type != "random").then(|| "X-Canary".to_string()),
        versions: Some(
            versions
                .iter()
                .map(|(name, bento, weight)| {
                    let mut services = BTreeMap::new();
                    services.insert(
                        "apiserver".to_string(),
                        ServiceConfig {
                            instance_type: Some("cpu.2".into()),
                            ..Default::default()
                        },
                    );
                    (
                        name.to_string(),
                        crate::api::CanaryVersion {
                            bento: Some(bento.to_string()),
                            weight: Some(*weight),
                            envs: None,
                            secrets: None,
                            services,
                        },
                    )
                })
                .collect(),
        ),
    }
}

#[test]
fn canary_is_stored_per_version_and_served_as_targets_and_routing() {
    let (_d, s, p) = setup();
    let caller = auto(&p);
    s.tx(|c| {
        store::put_bento(c, p.org.id, "iris", "v1", &Behaviour::default(), 0)?;
        let mut r = req("a", "iris:v1");
        r.spec.canary = Some(canary("random", &[("v2", "iris:v2", 20)]));
        let d = create(c, &caller, None, r, 1)?;
        let rev = store::revision(c, &d.target_revision)?;
        let row = rev.canary.clone().expect("canary stored");
        let v2 = &row.versions["v2"];
        assert_eq!(store::bento_by_id(c, v2.bento_id)?.tag(), "iris:v2");
        assert_eq!(v2.weight, 20);
        let sc = v2.config.services["apiserver"].scaling.clone();
        assert_eq!(
            sc.and_then(|s| s.max_replicas),
            Some(1),
            "server defaults apply to canary services too"
        );

        let doc = super::super::render::deployment(c, &p.org, &d, "http://x")?.doc;
        let targets: Vec<&str> = doc
            .latest_revision
            .as_ref()
            .expect("rev")
            .targets
            .iter()
            .flatten()
            .map(|t| t.meta.name.as_str())
            .collect();
        assert_eq!(targets, ["main", "v2"]);
        assert_eq!(doc.bento_tag().as_deref(), Some("iris:v1"));
        let json = serde_json::to_value(&doc)?;
        for t in json["latest_revision"]["targets"]
            .as_array()
            .expect("targets")
        {
            assert!(t["config"].get("canary").is_none(), "canary in config: {t}");
        }
        assert_eq!(
            json["latest_revision"]["targets"][1]["bento"]["version"],
            "v2"
        );
        assert_eq!(json["manifest"]["routing"]["route_type"], "random");
        assert_eq!(json["manifest"]["routing"]["weights"]["v2"], 20);
        let back = doc.canary().expect("canary read back");
        assert_eq!(back.versions.expect("versions")["v2"].weight, Some(20));

        // A void update keeps it; an update whose canary is null removes it.
        let d = void_update(c, &p, None, "a", 2)?;
        assert!(store::revision(c, &d.target_revision)?.canary.is_some());
        let spec = UpdateDeploymentRequest {
            bento: "iris:v1".into(),
            ..Default::default()
        };
        let d = update(c, &caller, None, "a", spec, 3)?;
        assert_eq!(store::revision(c, &d.target_revision)?.canary, None);
        let doc = super::super::render::deployment(c, &p.org, &d, "http://x")?.doc;
        assert_eq!(doc.canary(), None);
        assert_eq!(doc.manifest.and_then(|m| m.routing), None);
        Ok::<_, crate::error::ApiError>(())
    })
    .expect("tx");
}

#[test]
fn invalid_canaries_are_rejected() {
    let (_d, s, p) = setup();
    let caller = auto(&p);
    s.tx(|c| {
        let cases: Vec<(Canary, &str)> = vec![
            (canary("roundrobin", &[]), "route_type"),
            (
                Canary {
                    route_by: None,
                    ..canary("header", &[])
                },
                "route_by",
            ),
            (canary("random", &[("main", "iris:v2", 10)]), "main"),
            (canary("random", &[("v2", "", 10)]), "bento is required"),
            (canary("random", &[("v2", "iris:v2", 101)]), "0 to 100"),
            (
                canary("random", &[("v2", "iris:v2", 60), ("v3", "iris:v3", 50)]),
                "add up to 110",
            ),
        ];
        for (cn, want) in cases {
            let mut r = req("a", "iris:v1");
            r.spec.canary = Some(cn.clone());
            let e = create(c, &caller, None, r, 1).expect_err(want);
            assert!(e.message().contains(want), "{want}: {e} for {cn:?}");
        }
        let mut r = req("a", "iris:v1");
        let mut cn = canary("query", &[("v2", "iris:v2", 10)]);
        if let Some(v) = cn.versions.as_mut().and_then(|v| v.get_mut("v2")) {
            if let Some(svc) = v.services.get_mut("apiserver") {
                svc.instance_type = Some("cpu.99".into());
            }
        }
        r.spec.canary = Some(cn);
        let e = create(c, &caller, None, r, 1).expect_err("instance type");
        assert!(
            e.message()
                .contains("canary version \"v2\": service \"apiserver\""),
            "{e}"
        );
        Ok::<_, crate::error::ApiError>(())
    })
    .expect("tx");
}

#[test]
fn omit_bento_manifest_leaves_it_out_of_deployment_documents_only() {
    let (_d, s, p) = setup();
    let caller = auto(&p);
    let render = super::super::render::deployment;
    s.tx(|c| {
        let beh = Behaviour {
            services: vec!["Web".into(), "Model".into()],
            ..Default::default()
        };
        let b = store::put_bento(c, p.org.id, "multi", "v1", &beh, 0)?;
        let d = create(c, &caller, None, req("a", "multi:v1"), 1)?;
        let manifest_of = |doc: crate::api::Deployment| {
            doc.main_target()
                .and_then(|t| t.bento.clone())
                .and_then(|b| b.manifest)
        };
        let embedded = manifest_of(render(c, &p.org, &d, "http://x")?.doc);
        assert_eq!(embedded.map(|m| m.entry_service).as_deref(), Some("Web"));
        let omit = PlatformConfig {
            omit_bento_manifest: true,
            ..Default::default()
        };
        store::sync_platform(c, &omit, 1)?;
        assert_eq!(manifest_of(render(c, &p.org, &d, "http://x")?.doc), None);
        let from_bento = super::super::render::bento(&b).manifest;
        assert_eq!(from_bento.map(|m| m.entry_service).as_deref(), Some("Web"));
        Ok::<_, crate::error::ApiError>(())
    })
    .expect("tx");
}
