use super::validate::check_scaling;
use super::*;
use crate::resources::deployment::model::{
    JsonText, Location, Reported, ServiceBlock, ServiceSettings, Settings, Spec,
};

fn v<T>(x: T) -> Value<T> {
    Value::Value(x)
}

fn base() -> DeploymentState {
    DeploymentState {
        location: Location {
            id: v("local-east/iris".into()),
            name: v("iris".into()),
            cluster: v("local-east".into()),
        },
        spec: Spec {
            bento: v("iris:v1".into()),
            access_authorization: v(false),
            service: v(vec![]),
            entry: ServiceSettings {
                instance_type: v("cpu.1".into()),
                min_replicas: v(1),
                max_replicas: v(1),
                deployment_strategy: v("RollingUpdate".into()),
                ..Default::default()
            },
            ..Default::default()
        },
        settings: Settings {
            wait_for_rollout: v(true),
            rollback_on_failure: v(false),
            bento_managed_externally: v(false),
            rollback_on_interrupt: v(false),
            ..Default::default()
        },
        reported: Reported {
            status: v("running".into()),
            url: v("http://x".into()),
            revision: v("r1".into()),
            deployed_bento: v("iris:v1".into()),
            created_at: v("t0".into()),
            updated_at: v("t0".into()),
            creator: v("me".into()),
        },
        label_sets: Default::default(),
        canary: Default::default(),
    }
}

#[test]
fn create_fills_defaults_and_leaves_server_values_unknown() {
    let proposed = DeploymentState {
        location: Location {
            name: v("iris".into()),
            ..Default::default()
        },
        spec: Spec {
            bento: v("iris:v1".into()),
            ..Default::default()
        },
        ..Default::default()
    };
    let p = plan_create(&proposed, Some("local-west"));
    assert_eq!(p.location.cluster, v("local-west".into()));
    assert_eq!(p.location.id, v("local-west/iris".into()));
    assert_eq!(
        (p.spec.entry.min_replicas, p.spec.entry.max_replicas),
        (v(1), v(1))
    );
    assert_eq!(p.spec.entry.deployment_strategy, v("RollingUpdate".into()));
    assert_eq!(p.settings.wait_for_rollout, v(true));
    assert!(
        p.spec.entry.instance_type.is_unknown()
            && p.reported.status.is_unknown()
            && p.reported.revision.is_unknown()
    );
    let p = plan_create(&proposed, None);
    assert!(p.location.cluster.is_unknown() && p.location.id.is_unknown());
}

#[test]
fn create_derives_max_from_min_and_min_from_max() {
    let mut proposed = DeploymentState {
        spec: Spec {
            entry: ServiceSettings {
                min_replicas: v(3),
                ..Default::default()
            },
            ..Default::default()
        },
        ..Default::default()
    };
    let p = plan_create(&proposed, None);
    assert_eq!(p.spec.entry.max_replicas, v(3));
    proposed = DeploymentState {
        spec: Spec {
            entry: ServiceSettings {
                min_replicas: v(0),
                ..Default::default()
            },
            ..Default::default()
        },
        ..Default::default()
    };
    assert_eq!(plan_create(&proposed, None).spec.entry.max_replicas, v(1));
    proposed = DeploymentState {
        spec: Spec {
            entry: ServiceSettings {
                max_replicas: v(4),
                ..Default::default()
            },
            ..Default::default()
        },
        ..Default::default()
    };
    assert_eq!(plan_create(&proposed, None).spec.entry.min_replicas, v(1));
}

#[test]
fn update_of_bento_marks_status_revision_updated_at_unknown_and_keeps_id() {
    let prior = base();
    let mut proposed = prior.clone();
    proposed.spec.bento = v("iris:v2".into());
    let (p, replace) = plan_update(&prior, &proposed, &proposed, LastApply::Settled);
    assert!(replace.is_empty());
    assert_eq!(p.location.id, prior.location.id);
    assert!(
        p.reported.status.is_unknown()
            && p.reported.revision.is_unknown()
            && p.reported.updated_at.is_unknown()
    );
    assert_eq!(p.reported.url, prior.reported.url);
    assert_eq!(p.reported.created_at, prior.reported.created_at);
}

#[test]
fn update_of_cluster_forces_replacement_but_default_cluster_does_not() {
    let prior = base();
    let mut proposed = prior.clone();
    proposed.location.cluster = v("local-west".into());
    let (p, replace) = plan_update(&prior, &proposed, &proposed, LastApply::Settled);
    assert_eq!(replace, vec![AttributePath::new("cluster")]);
    assert!(p.location.id.is_unknown());
    let mut config = prior.clone();
    config.location.cluster = Value::Null;
    let (_, replace) = plan_update(&prior, &prior, &config, LastApply::Settled);
    assert!(replace.is_empty());
}

#[test]
fn update_of_name_forces_replacement() {
    let prior = base();
    let mut proposed = prior.clone();
    proposed.location.name = v("iris2".into());
    let (_, replace) = plan_update(&prior, &proposed, &proposed, LastApply::Settled);
    assert_eq!(replace, vec![AttributePath::new("name")]);
}

#[test]
fn a_rollout_this_state_left_failed_is_resubmitted_even_without_changes() {
    let mut prior = base();
    prior.reported.status = v("failed".into());
    let (p, replace) = plan_update(&prior, &prior, &prior, LastApply::Failed);
    assert!(replace.is_empty());
    assert!(p.reported.status.is_unknown() && p.reported.revision.is_unknown());
    assert!(put_needed(&prior, &p, LastApply::Failed));
    // The marker decides, not the status: a `running` read after it is still re-submitted.
    let (p, _) = plan_update(&base(), &base(), &base(), LastApply::Failed);
    assert!(p.reported.revision.is_unknown());
}

#[test]
fn a_deployment_failing_on_its_own_plans_no_change() {
    for status in ["failed", "unhealthy", "image-build-failed"] {
        let mut prior = base();
        prior.reported.status = v(status.into());
        assert!(failing(&prior), "{status}");
        let (p, _) = plan_update(&prior, &prior, &prior, LastApply::Settled);
        assert_eq!(p, prior, "{status}: the status alone changes nothing");
        assert!(!put_needed(&prior, &p, LastApply::Settled));
    }
    assert!(!failing(&base()));
}

#[test]
fn an_interrupted_rollout_is_waited_for_by_the_next_apply() {
    let prior = base();
    let (p, _) = plan_update(&prior, &prior, &prior, LastApply::Unconfirmed);
    assert!(p.reported.status.is_unknown());
    assert!(!put_needed(&prior, &p, LastApply::Unconfirmed));
    assert!(
        !needs_api_update(&prior, &p),
        "no new revision is submitted"
    );
    // A status in progress alone (a stale `deploying` after a finished rollout, or a
    // rollout made elsewhere) is not ours to wait for.
    let mut deploying = base();
    deploying.reported.status = v("deploying".into());
    let (p, _) = plan_update(&deploying, &deploying, &deploying, LastApply::Settled);
    assert_eq!(p, deploying);
}

#[test]
fn terraform_only_settings_left_out_go_back_to_their_defaults_server_ones_stay() {
    let mut prior = base();
    prior.settings.rollback_on_failure = v(true);
    prior.settings.wait_for_rollout = v(false);
    prior.settings.bento_managed_externally = v(true);
    prior.settings.rollback_on_interrupt = v(true);
    prior.spec.access_authorization = v(true);
    // Terraform's proposed state carries the prior value of optional+computed attributes;
    // the configuration has them null.
    let proposed = prior.clone();
    let mut config = prior.clone();
    config.settings.rollback_on_failure = Value::Null;
    config.settings.wait_for_rollout = Value::Null;
    config.settings.bento_managed_externally = Value::Null;
    config.settings.rollback_on_interrupt = Value::Null;
    config.spec.access_authorization = Value::Null;
    config.spec.entry = ServiceSettings::default();
    let (p, _) = plan_update(&prior, &proposed, &config, LastApply::Settled);
    assert_eq!(p.settings.rollback_on_failure, v(false));
    assert_eq!(p.settings.wait_for_rollout, v(true));
    assert_eq!(p.settings.bento_managed_externally, v(false));
    assert_eq!(p.settings.rollback_on_interrupt, v(false));
    assert_eq!(
        p.spec.access_authorization,
        v(true),
        "a server setting stays"
    );
    assert_eq!(p.spec.entry, prior.spec.entry, "server settings stay");
    assert!(!needs_api_update(&prior, &p));
    // Configured, they are kept.
    let (p, _) = plan_update(&prior, &proposed, &proposed, LastApply::Settled);
    assert_eq!(p.settings, prior.settings);
}

#[test]
fn a_deployment_stopped_elsewhere_is_brought_back() {
    for status in ["terminated", "terminating"] {
        let mut prior = base();
        prior.reported.status = v(status.into());
        assert!(stopped(&prior), "{status}");
        let (p, replace) = plan_update(&prior, &prior, &prior, LastApply::Settled);
        assert!(replace.is_empty());
        assert!(put_needed(&prior, &p, LastApply::Settled), "{status}");
        assert!(p.reported.status.is_unknown() && p.reported.revision.is_unknown());
        // (The policy and traffic settings the server does not report are planned unknown.)
        let mut same = p.spec.clone();
        same.entry.autoscaling = prior.spec.entry.autoscaling.clone();
        same.entry.traffic = prior.spec.entry.traffic.clone();
        assert_eq!(same, prior.spec, "the configuration itself is unchanged");
    }
    assert!(!stopped(&base()));
}

#[test]
fn settings_the_server_does_not_report_are_unknown_when_a_put_may_fill_them() {
    // Imported from `services: {}`: the server reported no entry-service settings.
    let mut prior = base();
    prior.spec.entry = ServiceSettings::default();
    let mut proposed = prior.clone();
    proposed.spec.envs = v([("A".to_string(), v("1".to_string()))].into());
    let (p, _) = plan_update(&prior, &proposed, &proposed, LastApply::Settled);
    let e = &p.spec.entry;
    assert!(e.instance_type.is_unknown() && e.deployment_strategy.is_unknown());
    assert!(e.min_replicas.is_unknown() && e.max_replicas.is_unknown());
    assert!(e.autoscaling.scale_up_behavior.is_unknown());
    assert!(e.traffic.config_overrides.0.is_unknown() && e.traffic.traffic_timeout.is_unknown());
    // Without a PUT nothing can fill them: they stay null (no diff).
    let (p, _) = plan_update(&prior, &prior, &prior, LastApply::Settled);
    assert_eq!(p, prior);
    // A configured value is kept as configured.
    let mut configured = proposed.clone();
    configured.spec.entry.instance_type = v("cpu.2".into());
    let (p, _) = plan_update(&prior, &configured, &configured, LastApply::Settled);
    assert_eq!(p.spec.entry.instance_type, v("cpu.2".into()));
    assert!(p.spec.entry.min_replicas.is_unknown());
    // A known server value is kept, PUT or not.
    let prior = base();
    let mut proposed = prior.clone();
    proposed.spec.envs = v([("A".to_string(), v("1".to_string()))].into());
    let (p, _) = plan_update(&prior, &proposed, &proposed, LastApply::Settled);
    let mut known = p.spec.entry.clone();
    // The policy and traffic settings the server does not report may be filled by the PUT.
    known.autoscaling = prior.spec.entry.autoscaling.clone();
    known.traffic = prior.spec.entry.traffic.clone();
    assert_eq!(known, prior.spec.entry);
}

#[test]
fn provider_only_settings_change_no_computed_value() {
    let prior = base();
    let mut proposed = prior.clone();
    proposed.settings.wait_for_rollout = v(false);
    let (p, _) = plan_update(&prior, &proposed, &proposed, LastApply::Settled);
    assert!(!needs_api_update(&prior, &p));
    assert_eq!(p.reported.revision, prior.reported.revision);
    assert_eq!(p.reported.status, prior.reported.status);
}

fn triggers(kv: &[(&str, Value<String>)]) -> Value<crate::resources::deployment::model::StringMap> {
    v(kv.iter().map(|(k, x)| (k.to_string(), x.clone())).collect())
}

#[test]
fn changed_redeploy_triggers_roll_out_without_a_spec_change() {
    let mut prior = base();
    prior.settings.redeploy_triggers = triggers(&[("db", v("1".into()))]);
    let same = prior.clone();
    assert!(!prior.settings.redeploy_requested(&same.settings));
    let (p, _) = plan_update(&prior, &same, &same, LastApply::Settled);
    assert_eq!(
        p.reported.revision, prior.reported.revision,
        "no change, no rollout"
    );
    for now in [
        triggers(&[("db", v("2".into()))]),
        triggers(&[("db", v("1".into())), ("tls", v("1".into()))]),
        triggers(&[]),
        Value::Null,
        triggers(&[("db", Value::Unknown)]),
        Value::Unknown,
    ] {
        let mut proposed = prior.clone();
        proposed.settings.redeploy_triggers = now.clone();
        assert!(
            prior.settings.redeploy_requested(&proposed.settings),
            "{now:?}"
        );
        assert!(
            !needs_api_update(&prior, &proposed),
            "not a spec change: {now:?}"
        );
        let (p, _) = plan_update(&prior, &proposed, &proposed, LastApply::Settled);
        assert!(p.reported.revision.is_unknown(), "a new revision: {now:?}");
        assert!(p.reported.status.is_unknown());
        assert_eq!(p.reported.url, prior.reported.url);
    }
    // No triggers before (just added, or imported): recorded, not a redeploy.
    let mut fresh = base();
    fresh.settings.redeploy_triggers = Value::Null;
    let mut proposed = fresh.clone();
    proposed.settings.redeploy_triggers = triggers(&[("db", v("1".into()))]);
    assert!(!fresh.settings.redeploy_requested(&proposed.settings));
    // Empty before, empty or null now: nothing to redeploy for.
    let mut empty = base();
    empty.settings.redeploy_triggers = triggers(&[]);
    let mut none = empty.clone();
    none.settings.redeploy_triggers = Value::Null;
    assert!(!empty.settings.redeploy_requested(&none.settings));
}

#[test]
fn a_server_change_since_the_plan_is_a_conflict_only_if_it_touches_the_spec() {
    let prior = base();
    let mut server = prior.clone();
    assert!(
        changed_since_plan(&prior, &server).is_empty(),
        "same revision"
    );
    server.reported.revision = v("r2".into());
    assert!(
        changed_since_plan(&prior, &server).is_empty(),
        "a new revision of the same spec (a redeploy) is not a conflict"
    );
    server.spec.entry.min_replicas = v(3);
    server.spec.bento = v("iris:v2".into());
    assert_eq!(
        changed_since_plan(&prior, &server),
        vec!["bento".to_string(), "min_replicas".to_string()]
    );
    let mut same_revision = server.clone();
    same_revision.reported.revision = prior.reported.revision.clone();
    assert!(
        changed_since_plan(&prior, &same_revision).is_empty(),
        "the plan saw this revision"
    );
    let mut external = prior.clone();
    external.settings.bento_managed_externally = v(true);
    let mut ci = external.clone();
    ci.reported.revision = v("r3".into());
    ci.spec.bento = v("iris:v7".into());
    assert!(
        changed_since_plan(&external, &ci).is_empty(),
        "CI's bento is not a conflict with bento_managed_externally"
    );
    ci.spec.envs = triggers(&[("X", v("1".into()))]);
    assert_eq!(changed_since_plan(&external, &ci), vec!["envs".to_string()]);
    let mut unknown = prior.clone();
    unknown.reported.revision = Value::Unknown;
    assert!(changed_since_plan(&unknown, &server).is_empty());
    let mut blank = prior.clone();
    blank.reported.revision = v(String::new());
    assert!(changed_since_plan(&blank, &server).is_empty());
}

#[test]
fn externally_managed_bento_is_never_an_api_change() {
    let mut prior = base();
    prior.settings.bento_managed_externally = v(true);
    let mut proposed = prior.clone();
    proposed.spec.bento = v("iris:v9".into());
    assert!(!needs_api_update(&prior, &proposed));
}

#[test]
fn validation_names_the_attribute_for_each_bad_input() {
    let mut c = DeploymentState {
        location: Location {
            name: v("Bad_Name".into()),
            ..Default::default()
        },
        spec: Spec {
            bento: v("".into()),
            entry: ServiceSettings {
                min_replicas: v(3),
                max_replicas: v(2),
                deployment_strategy: v("Rolling".into()),
                ..Default::default()
            },
            ..Default::default()
        },
        ..Default::default()
    };
    let mut labels = StringMap::new();
    labels.insert("bad key!".into(), v("x".into()));
    c.spec.labels = v(labels);
    let mut envs = StringMap::new();
    envs.insert("1BAD".into(), v("x".into()));
    c.spec.envs = v(envs);
    c.spec.service = v(vec![
        ServiceBlock {
            name: v("Model".into()),
            ..Default::default()
        },
        ServiceBlock {
            name: v("Model".into()),
            ..Default::default()
        },
    ]);
    c.settings.timeouts = v(super::super::model::Timeouts {
        create: v("ten minutes".into()),
        ..Default::default()
    });
    let problems = validate(&c);
    // Exact paths: one problem per bad input, on its own attribute (a substring match let
    // the top-level `name` check go missing behind the service block's `name`).
    let want = [
        AttributePath::new("name"),
        AttributePath::new("bento"),
        AttributePath::new("labels").key("bad key!"),
        AttributePath::new("envs").key("1BAD"),
        AttributePath::new("min_replicas"),
        AttributePath::new("deployment_strategy"),
        AttributePath::new("service").index(1).attribute("name"),
        AttributePath::new("timeouts").index(0).attribute("create"),
    ];
    let got: Vec<&AttributePath> = problems.iter().map(|p| &p.path).collect();
    assert_eq!(got, want.iter().collect::<Vec<_>>(), "{problems:#?}");
    assert!(problems.iter().any(|p| p.summary == "Duplicate service"));
    assert!(validate(&base()).is_empty());
}

#[test]
fn unknown_values_are_not_validated_at_plan_time() {
    let c = DeploymentState {
        location: Location {
            name: Value::Unknown,
            ..Default::default()
        },
        spec: Spec {
            bento: Value::Unknown,
            entry: ServiceSettings {
                min_replicas: Value::Unknown,
                max_replicas: v(1),
                ..Default::default()
            },
            ..Default::default()
        },
        ..Default::default()
    };
    assert!(validate(&c).is_empty());
}

#[test]
fn each_managed_attribute_alone_needs_an_api_update_and_provider_settings_do_not() {
    let prior = base();
    assert!(!needs_api_update(&prior, &prior));
    let mut changes: Vec<(&str, DeploymentState)> = Vec::new();
    let mut s = base();
    s.spec.bento = v("iris:v2".into());
    changes.push(("bento", s));
    let mut s = base();
    s.spec.access_authorization = v(true);
    changes.push(("access_authorization", s));
    let mut s = base();
    s.spec.labels = v([("team".to_string(), v("ml".to_string()))].into());
    changes.push(("labels", s));
    let mut s = base();
    s.spec.envs = v([("A".to_string(), v("1".to_string()))].into());
    changes.push(("envs", s));
    let mut s = base();
    s.spec.secrets = v([v("db".to_string())].into());
    changes.push(("secrets", s));
    let mut s = base();
    s.spec.entry.instance_type = v("cpu.2".into());
    changes.push(("instance_type", s));
    let mut s = base();
    s.spec.entry.min_replicas = v(2);
    s.spec.entry.max_replicas = v(1);
    changes.push(("min_replicas", s));
    let mut s = base();
    s.spec.entry.max_replicas = v(3);
    changes.push(("max_replicas", s));
    let mut s = base();
    s.spec.entry.deployment_strategy = v("Recreate".into());
    changes.push(("deployment_strategy", s));
    let mut s = base();
    s.spec.service = v(vec![ServiceBlock {
        name: v("Model".into()),
        ..Default::default()
    }]);
    changes.push(("service", s));
    for (attr, planned) in &changes {
        assert!(needs_api_update(&prior, planned), "{attr} alone");
    }
    let mut settings = base();
    settings.settings.wait_for_rollout = v(false);
    settings.settings.rollback_on_failure = v(true);
    assert!(!needs_api_update(&prior, &settings));
    // An externally managed bento's change is recorded, not deployed.
    let mut ext = base();
    ext.settings.bento_managed_externally = v(true);
    let mut ext_planned = ext.clone();
    ext_planned.spec.bento = v("iris:v9".into());
    assert!(!needs_api_update(&ext, &ext_planned));
}

#[test]
fn invalid_scaling_blames_the_attribute_to_fix() {
    for (min, max, blamed) in [
        (None, Some(0), "max_replicas"),
        (Some(0), Some(0), "max_replicas"),
        (Some(-1), Some(0), "min_replicas"),
        (Some(3), Some(2), "min_replicas"),
        (Some(3), Some(1), "min_replicas"),
        (Some(-1), Some(2), "min_replicas"),
    ] {
        let mut out = Vec::new();
        let opt = |x: Option<i64>| x.map(Value::Value).unwrap_or(Value::Null);
        check_scaling(&opt(min), &opt(max), AttributePath::new, &mut out);
        assert_eq!(
            out.iter().map(|p| &p.path).collect::<Vec<_>>(),
            vec![&AttributePath::new(blamed)],
            "min {min:?} max {max:?}"
        );
    }
    let mut out = Vec::new();
    check_scaling(&v(1), &v(1), AttributePath::new, &mut out);
    assert!(out.is_empty());
}

#[test]
fn an_omitted_bound_follows_the_configured_one_past_the_prior_value() {
    let prior = base(); // min 1, max 1
    let mut config = prior.clone();
    config.spec.entry.max_replicas = Value::Null;
    config.spec.entry.min_replicas = v(3);
    let mut proposed = config.clone();
    proposed.spec.entry.max_replicas = v(1); // Terraform proposes the prior value
    let (p, _) = plan_update(&prior, &proposed, &config, LastApply::Settled);
    assert_eq!(
        (p.spec.entry.min_replicas, p.spec.entry.max_replicas),
        (v(3), v(3))
    );
    // Within the prior bound: the prior value stays.
    let mut wide = base();
    wide.spec.entry.max_replicas = v(5);
    let mut proposed = wide.clone();
    proposed.spec.entry.min_replicas = v(2);
    let mut cfg = proposed.clone();
    cfg.spec.entry.max_replicas = Value::Null;
    let (p, _) = plan_update(&wide, &proposed, &cfg, LastApply::Settled);
    assert_eq!(p.spec.entry.max_replicas, v(5));
    // Lowering max alone below the prior min takes min down with it.
    let mut proposed = wide.clone();
    proposed.spec.entry.min_replicas = v(4);
    proposed.spec.entry.max_replicas = v(2);
    let mut cfg = proposed.clone();
    cfg.spec.entry.min_replicas = Value::Null;
    let (p, _) = plan_update(&wide, &proposed, &cfg, LastApply::Settled);
    assert_eq!(
        (p.spec.entry.min_replicas, p.spec.entry.max_replicas),
        (v(2), v(2))
    );
    // Both configured: left as given, for validation to report.
    let mut cfg = proposed.clone();
    cfg.spec.entry.min_replicas = v(4);
    let (p, _) = plan_update(&wide, &proposed, &cfg, LastApply::Settled);
    assert_eq!(
        (p.spec.entry.min_replicas, p.spec.entry.max_replicas),
        (v(4), v(2))
    );
}

#[test]
fn scaling_defaults_follow_the_given_bound() {
    for (max, min_default) in [(0, 0), (5, 1)] {
        let (mut min, mut mx) = (Value::Null, v(max));
        default_scaling(&mut min, &mut mx);
        assert_eq!((min, mx), (v(min_default), v(max)), "max {max}");
    }
    let (mut min, mut max) = (v(3), Value::Null);
    default_scaling(&mut min, &mut max);
    assert_eq!((min, max), (v(3), v(3)));
}

/// A `service` block named `name` with `settings`.
fn block(name: &str, settings: ServiceSettings) -> ServiceBlock {
    ServiceBlock {
        name: v(name.into()),
        settings,
        envs: Value::Null,
    }
}

/// Settings that set `min_replicas` alone.
fn min_only(min: i64) -> ServiceSettings {
    ServiceSettings {
        min_replicas: v(min),
        ..Default::default()
    }
}

/// [`base`] with a `Model` service block of known settings.
fn with_a_model_block() -> DeploymentState {
    let mut prior = base();
    let settings = ServiceSettings {
        instance_type: v("gpu.l4.1".into()),
        min_replicas: v(2),
        max_replicas: v(3),
        deployment_strategy: v("Recreate".into()),
        ..Default::default()
    };
    prior.spec.service = v(vec![block("Model", settings)]);
    prior
}

#[test]
fn a_new_service_block_gets_defaults_and_a_known_one_keeps_its_scaling() {
    let prior = with_a_model_block();
    let mut proposed = prior.clone();
    proposed.spec.service = v(vec![
        block("Model", ServiceSettings::default()),
        block("Worker", ServiceSettings::default()),
    ]);
    let (p, _) = plan_update(&prior, &proposed, &proposed, LastApply::Settled);
    let blocks = p.spec.service.as_ref_option().expect("blocks");
    let model = &blocks[0];
    assert_eq!(
        (model.settings.min_replicas, model.settings.max_replicas),
        (v(2), v(3)),
        "the known block keeps its scaling"
    );
    assert_eq!(model.settings.instance_type, v("gpu.l4.1".to_string()));
    assert_eq!(
        model.settings.deployment_strategy,
        v("Recreate".to_string())
    );
    let worker = &blocks[1];
    assert_eq!(
        (worker.settings.min_replicas, worker.settings.max_replicas),
        (v(1), v(1))
    );
    assert_eq!(
        worker.settings.deployment_strategy,
        v(DEFAULT_STRATEGY.to_string())
    );
    assert_eq!(
        worker.settings.instance_type,
        Value::Unknown,
        "chosen by the server"
    );
    // A block's min raised alone above its running max takes the max with it; another
    // block's configuration does not.
    let mut config = proposed.clone();
    config.spec.service = v(vec![
        block("Worker", ServiceSettings::default()),
        block("Model", min_only(5)),
    ]);
    let mut raised = prior.clone();
    raised.spec.service = v(vec![block("Model", min_only(5))]);
    let (p, _) = plan_update(&prior, &raised, &config, LastApply::Settled);
    let model = &p.spec.service.as_ref_option().expect("blocks")[0];
    assert_eq!(
        (model.settings.min_replicas, model.settings.max_replicas),
        (v(5), v(5))
    );
}

fn labels(pairs: &[(&str, &str)]) -> Value<StringMap> {
    v(pairs
        .iter()
        .map(|(k, x)| (k.to_string(), v(x.to_string())))
        .collect())
}

#[test]
fn default_labels_merge_under_the_configured_ones() {
    let d = labels(&[("team", "platform"), ("env", "prod")]);
    let p = with_default_labels(base(), &d);
    assert_eq!(p.label_sets.terraform_labels, d);
    let mut own = base();
    own.spec.labels = labels(&[("team", "ml")]);
    let p = with_default_labels(own.clone(), &d);
    assert_eq!(
        p.label_sets.terraform_labels,
        labels(&[("team", "ml"), ("env", "prod")])
    );
    // Unknown defaults, or an unknown label value: not known until apply.
    assert!(with_default_labels(own.clone(), &Value::Unknown)
        .label_sets
        .terraform_labels
        .is_unknown());
    own.spec.labels = v([("x".to_string(), Value::Unknown)].into());
    assert!(with_default_labels(own, &d)
        .label_sets
        .terraform_labels
        .is_unknown());
    assert_eq!(
        with_default_labels(base(), &Value::Null)
            .label_sets
            .terraform_labels,
        labels(&[])
    );
}

#[test]
fn labels_set_elsewhere_are_kept_and_managed_ones_removed_when_dropped() {
    use crate::resources::deployment::model::labels_after;
    let current = labels(&[("team", "ml"), ("owner", "console"), ("old", "1")]);
    let current = current.as_ref_option().expect("map");
    let after = labels_after(
        current,
        &labels(&[("team", "ml"), ("old", "1")]),
        &labels(&[("team", "nlp")]),
    )
    .expect("known");
    assert_eq!(
        v(after),
        labels(&[("team", "nlp"), ("owner", "console")]),
        "`old` was Terraform's and is dropped; `owner` was set elsewhere and stays"
    );
    assert_eq!(
        labels_after(current, &Value::Null, &Value::Null).map(v),
        Some(labels(&[
            ("team", "ml"),
            ("owner", "console"),
            ("old", "1")
        ]))
    );
    assert!(labels_after(current, &Value::Null, &Value::Unknown).is_none());
}

#[test]
fn a_plan_that_only_adopts_labels_already_there_sends_nothing() {
    let mut prior = base();
    prior.label_sets.effective_labels = labels(&[("team", "ml"), ("owner", "console")]);
    prior.label_sets.terraform_labels = labels(&[]);
    let mut proposed = prior.clone();
    proposed.spec.labels = labels(&[("team", "ml")]);
    let proposed = with_default_labels(proposed, &Value::Null);
    let (p, _) = plan_update(&prior, &proposed, &proposed, LastApply::Settled);
    assert!(!needs_api_update(&prior, &p), "team=ml is already there");
    assert_eq!(
        p.label_sets.effective_labels,
        prior.label_sets.effective_labels
    );
    // A new value is sent, and what the deployment then has is known after apply.
    let mut changed = proposed.clone();
    changed.spec.labels = labels(&[("team", "nlp")]);
    let changed = with_default_labels(changed, &Value::Null);
    let (p, _) = plan_update(&prior, &changed, &changed, LastApply::Settled);
    assert!(needs_api_update(&prior, &p));
    assert!(p.label_sets.effective_labels.is_unknown());
}

#[test]
fn an_import_adopts_every_label_but_the_defaults() {
    let mut s = base();
    s.label_sets.effective_labels = labels(&[("team", "ml"), ("managed-by", "terraform")]);
    adopt_labels(&mut s, &labels(&[("managed-by", "terraform")]));
    assert_eq!(s.spec.labels, labels(&[("team", "ml")]));
    assert_eq!(s.label_sets.terraform_labels, s.label_sets.effective_labels);
    let mut s = base();
    s.label_sets.effective_labels = labels(&[("managed-by", "other")]);
    adopt_labels(&mut s, &labels(&[("managed-by", "terraform")]));
    assert_eq!(
        s.spec.labels,
        labels(&[("managed-by", "other")]),
        "another value is its own"
    );
    let mut s = base();
    s.label_sets.effective_labels = labels(&[]);
    adopt_labels(&mut s, &Value::Null);
    assert_eq!(s.spec.labels, Value::Null);
}

#[test]
fn policy_and_traffic_values_are_checked_at_plan_time_on_their_attribute() {
    let mut c = base();
    c.spec.entry.autoscaling.autoscaling_metrics = labels(&[("latency", "10"), ("qps", "0")]);
    c.spec.entry.autoscaling.scale_up_behavior = v("quick".into());
    c.spec.entry.autoscaling.scale_down_stabilization_window = v(-1);
    c.spec.entry.traffic.traffic_timeout = v(0.0);
    c.spec.entry.traffic.cold_start_timeout = v(0);
    c.spec.entry.traffic.traffic_max_concurrency = v(0);
    c.spec.entry.traffic.config_overrides = JsonText(v(r#"{"traffic":{"timeout":5}}"#.into()));
    let problems = validate(&c);
    let text = format!("{problems:?}");
    for needle in [
        "latency",
        "cpu, memory, gpu, qps, queue",
        "not a positive whole number",
        "disabled, stable, fast",
        "scale_down_stabilization_window",
        "traffic_timeout",
        "cold_start_timeout",
        "traffic_max_concurrency",
        "`traffic_timeout` attribute",
    ] {
        assert!(text.contains(needle), "{needle} missing from {text}");
    }
    assert_eq!(problems.len(), 8, "{text}");
    let mut ok = base();
    ok.spec.entry.autoscaling.autoscaling_metrics = labels(&[("qps", "10"), ("memory", "2Gi")]);
    ok.spec.entry.traffic.config_overrides = JsonText(v(r#"{"traffic":{"concurrency":2}}"#.into()));
    assert!(validate(&ok).is_empty());
    for bad in ["not json", "[1]"] {
        let mut c = base();
        c.spec.entry.traffic.config_overrides = JsonText(v(bad.into()));
        assert_eq!(validate(&c).len(), 1, "{bad}");
    }
}

#[test]
fn canary_and_progressive_blocks_are_checked_at_plan_time() {
    use crate::resources::deployment::model::{
        Analysis, CanaryBlock, CanaryVersionBlock, ProgressiveRollout,
    };
    let version = |name: &str, w: i64| CanaryVersionBlock {
        name: v(name.into()),
        bento: v("iris:v2".into()),
        weight: v(w),
        envs: Value::Null,
    };
    let mut c = base();
    c.canary.canary = v(CanaryBlock {
        route_type: v("header".into()),
        route_by: Value::Null,
        version: v(vec![version("main", 60), version("b", 50), version("b", 0)]),
    });
    let text = format!("{:?}", validate(&c));
    for needle in [
        "needs route_by",
        "`main` is the deployment's own",
        "configured twice",
        "add up to 110",
    ] {
        assert!(text.contains(needle), "{needle}: {text}");
    }
    let mut p = base();
    p.settings.progressive_rollout = v(ProgressiveRollout {
        steps: v(vec![v(50), v(25)]),
        bake_time: v("soon".into()),
        route_type: v("random".into()),
        route_by: Value::Null,
        analysis: v(Analysis {
            probe_path: v("healthz".into()),
            max_failure_rate: v(1.5),
            max_restarts: v(-1),
            ..Default::default()
        }),
    });
    let text = format!("{:?}", validate(&p));
    for needle in [
        "increasing",
        "bake_time",
        "must start with `/`",
        "header or query",
        "0 to 1",
        "0 or more",
    ] {
        assert!(text.contains(needle), "{needle}: {text}");
    }
    let mut both = p.clone();
    both.settings.progressive_rollout = v(ProgressiveRollout {
        steps: v(vec![v(5), v(50)]),
        ..Default::default()
    });
    assert!(validate(&both).is_empty(), "{:?}", validate(&both));
    both.canary.canary = v(CanaryBlock {
        route_type: Value::Null,
        route_by: Value::Null,
        version: v(vec![version("b", 10)]),
    });
    assert!(format!("{:?}", validate(&both)).contains("cannot be combined"));
}

#[test]
fn a_canary_change_is_sent_and_a_bento_change_with_progressive_rollout_is_delivered_so() {
    use crate::resources::deployment::model::{
        CanaryBlock, CanaryVersionBlock, ProgressiveRollout,
    };
    let prior = base();
    let mut with_canary = prior.clone();
    with_canary.canary.canary = v(CanaryBlock {
        route_type: Value::Null,
        route_by: Value::Null,
        version: v(vec![CanaryVersionBlock {
            name: v("v2".into()),
            bento: v("iris:v2".into()),
            weight: Value::Null,
            envs: Value::Null,
        }]),
    });
    let (p, _) = plan_update(&prior, &with_canary, &with_canary, LastApply::Settled);
    assert!(needs_api_update(&prior, &p));
    let c = p.canary.canary.as_ref_option().expect("canary");
    assert_eq!(c.route_type, v("random".into()), "default routing");
    assert_eq!(c.versions()[0].weight, v(0), "default weight");
    // Removing a managed canary is a change too.
    let (p, _) = plan_update(&p, &prior, &prior, LastApply::Settled);
    assert!(p.canary.canary.is_null());
    let mut progressive = prior.clone();
    progressive.settings.progressive_rollout = v(ProgressiveRollout {
        steps: v(vec![v(10)]),
        ..Default::default()
    });
    assert!(
        !delivers_progressively(&prior, &progressive),
        "no bento change"
    );
    progressive.spec.bento = v("iris:v2".into());
    assert!(delivers_progressively(&prior, &progressive));
    progressive.settings.bento_managed_externally = v(true);
    assert!(!delivers_progressively(&prior, &progressive), "CI's bento");
}
