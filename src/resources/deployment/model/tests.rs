use super::*;

#[test]
fn an_unconfirmed_revision_round_trips_through_private_state() {
    assert_eq!(unconfirmed_revision(&unconfirmed("r1")), Some("r1"));
    assert_eq!(unconfirmed_revision(&Value::Null), None);
    assert_eq!(
        unconfirmed_revision(&unconfirmed("")),
        None,
        "empty is none"
    );
    assert_eq!(
        unconfirmed_revision(&Value::Value(Unconfirmed {
            revision: Value::Null,
            failed: Value::Value(true),
        })),
        None
    );
}

#[test]
fn a_failed_revision_is_told_apart_from_an_unconfirmed_one() {
    assert_eq!(last_apply(&Value::Null), LastApply::Settled);
    assert_eq!(last_apply(&unconfirmed("r1")), LastApply::Unconfirmed);
    assert_eq!(last_apply(&failed("r1")), LastApply::Failed);
    assert_eq!(
        last_apply(&failed("")),
        LastApply::Settled,
        "no revision, no marker"
    );
    assert_eq!(unconfirmed_revision(&failed("r1")), None);
    assert_eq!(marked_revision(&failed("r1")), Some("r1"));
    // A marker written before `failed` existed reads as unconfirmed.
    let old: Private = serde_json::from_str(r#"{"revision":"r0"}"#).expect("old marker");
    assert_eq!(last_apply(&old), LastApply::Unconfirmed);
    let explicit_false = Value::Value(Unconfirmed {
        revision: Value::Value("r2".into()),
        failed: Value::Value(false),
    });
    assert_eq!(last_apply(&explicit_false), LastApply::Unconfirmed);
}

#[test]
fn refresh_keeps_a_marker_only_while_its_revision_is_the_latest() {
    assert_eq!(
        private_after_refresh(failed("r1"), Some("r1")),
        failed("r1")
    );
    assert_eq!(
        private_after_refresh(unconfirmed("r1"), Some("r1")),
        unconfirmed("r1")
    );
    assert_eq!(private_after_refresh(failed("r1"), Some("r2")), Value::Null);
    assert_eq!(private_after_refresh(unconfirmed("r1"), None), Value::Null);
    assert_eq!(private_after_refresh(Value::Null, Some("r1")), Value::Null);
}

#[test]
fn maps_and_sets_are_optional_not_computed() {
    // A map or set left out of the configuration means "none" (the update sends it empty),
    // not "whatever the server has".
    let schema = resource_schema();
    for k in ["labels", "envs", "secrets", "redeploy_triggers"] {
        assert_eq!(
            schema.block.attributes[k].constraint,
            AttributeConstraint::Optional,
            "{k}"
        );
    }
    assert_eq!(
        schema.block.attributes["instance_type"].constraint,
        AttributeConstraint::OptionalComputed
    );
}

#[test]
fn every_state_field_is_in_the_schema_and_back() {
    let schema = resource_schema();
    let state = serde_json::to_value(DeploymentState::default()).expect("ser");
    let fields: BTreeSet<String> = state.as_object().expect("object").keys().cloned().collect();
    let mut in_schema: BTreeSet<String> = schema.block.attributes.keys().cloned().collect();
    in_schema.extend(schema.block.blocks.keys().cloned());
    assert_eq!(fields, in_schema);
}

fn unknown_settings() -> ServiceSettings {
    ServiceSettings {
        instance_type: Value::Unknown,
        min_replicas: Value::Unknown,
        max_replicas: Value::Unknown,
        deployment_strategy: Value::Unknown,
        autoscaling: Autoscaling {
            autoscaling_metrics: Value::Value(StringMap::from([(
                "qps".to_string(),
                Value::Unknown,
            )])),
            scale_up_behavior: Value::Unknown,
            scale_down_behavior: Value::Unknown,
            scale_up_stabilization_window: Value::Unknown,
            scale_down_stabilization_window: Value::Unknown,
        },
        traffic: TrafficSettings {
            cold_start_timeout: Value::Unknown,
            traffic_timeout: Value::Unknown,
            traffic_max_concurrency: Value::Unknown,
            traffic_external_queue: Value::Unknown,
            config_overrides: JsonText(Value::Unknown),
        },
    }
}

/// Every leaf unknown (nested ones too), or every leaf set: the two states a plan carries.
fn states() -> Vec<DeploymentState> {
    vec![
        every_leaf_unknown(),
        every_leaf_set(),
        DeploymentState::default(),
    ]
}

/// A state whose every leaf is unknown, nested ones too.
fn every_leaf_unknown() -> DeploymentState {
    DeploymentState {
        location: Location {
            id: Value::Unknown,
            name: Value::Unknown,
            cluster: Value::Unknown,
        },
        spec: Spec {
            bento: Value::Unknown,
            access_authorization: Value::Unknown,
            labels: Value::Unknown,
            envs: Value::Value(StringMap::from([("A".to_string(), Value::Unknown)])),
            secrets: Value::Value(BTreeSet::from([Value::Unknown])),
            entry: unknown_settings(),
            service: Value::Value(vec![ServiceBlock {
                name: Value::Unknown,
                settings: unknown_settings(),
                envs: Value::Unknown,
            }]),
        },
        settings: Settings {
            wait_for_rollout: Value::Unknown,
            rollback_on_failure: Value::Unknown,
            bento_managed_externally: Value::Unknown,
            rollback_on_interrupt: Value::Unknown,
            redeploy_triggers: Value::Value(StringMap::from([("db".to_string(), Value::Unknown)])),
            timeouts: Value::Value(Timeouts {
                create: Value::Unknown,
                update: Value::Unknown,
                delete: Value::Unknown,
            }),
            progressive_rollout: Value::Value(ProgressiveRollout {
                steps: Value::Value(vec![Value::Unknown]),
                bake_time: Value::Unknown,
                route_type: Value::Unknown,
                route_by: Value::Unknown,
                analysis: Value::Value(Analysis {
                    unready_grace: Value::Unknown,
                    max_restarts: Value::Unknown,
                    probe_path: Value::Unknown,
                    probe_interval: Value::Unknown,
                    max_failure_rate: Value::Unknown,
                    max_latency: Value::Unknown,
                }),
            }),
        },
        reported: Reported::unknown(),
        label_sets: LabelSets {
            terraform_labels: Value::Unknown,
            effective_labels: Value::Value(StringMap::from([("a".to_string(), Value::Unknown)])),
        },
        canary: CanaryPart {
            canary: Value::Value(CanaryBlock {
                route_type: Value::Unknown,
                route_by: Value::Unknown,
                version: Value::Value(vec![CanaryVersionBlock {
                    name: Value::Unknown,
                    bento: Value::Unknown,
                    weight: Value::Unknown,
                    envs: Value::Unknown,
                }]),
            }),
        },
    }
}

/// A state whose every leaf is set.
fn every_leaf_set() -> DeploymentState {
    let s = |x: &str| Value::Value(x.to_string());
    let settings = ServiceSettings {
        instance_type: s("cpu.2"),
        min_replicas: Value::Value(0),
        max_replicas: Value::Value(3),
        deployment_strategy: s("Recreate"),
        autoscaling: Autoscaling {
            autoscaling_metrics: Value::Value(StringMap::from([("cpu".to_string(), s("80"))])),
            scale_up_behavior: s("stable"),
            scale_down_behavior: s("stable"),
            scale_up_stabilization_window: Value::Value(0),
            scale_down_stabilization_window: Value::Value(300),
        },
        traffic: TrafficSettings {
            cold_start_timeout: Value::Value(900),
            traffic_timeout: Value::Value(30.0),
            traffic_max_concurrency: Value::Value(8),
            traffic_external_queue: Value::Value(false),
            config_overrides: JsonText(s(r#"{"resources":{"gpu":1}}"#)),
        },
    };
    DeploymentState {
        location: Location {
            id: s("c/n"),
            name: s("n"),
            cluster: s("c"),
        },
        spec: Spec {
            bento: s("iris:v1"),
            access_authorization: Value::Value(true),
            labels: Value::Value(StringMap::from([("team".to_string(), s("ml"))])),
            envs: Value::Value(StringMap::new()),
            secrets: Value::Value(BTreeSet::from([s("token")])),
            entry: settings.clone(),
            service: Value::Value(vec![ServiceBlock {
                name: s("Model"),
                settings,
                envs: Value::Value(StringMap::from([("B".to_string(), s("2"))])),
            }]),
        },
        settings: Settings {
            wait_for_rollout: Value::Value(false),
            rollback_on_failure: Value::Value(true),
            bento_managed_externally: Value::Value(true),
            rollback_on_interrupt: Value::Value(true),
            redeploy_triggers: Value::Value(StringMap::from([("db".to_string(), s("3"))])),
            timeouts: Value::Value(Timeouts {
                create: s("1m"),
                update: Value::Null,
                delete: s("2m"),
            }),
            progressive_rollout: Value::Value(ProgressiveRollout {
                steps: Value::Value(vec![Value::Value(5), Value::Value(50)]),
                bake_time: s("1m"),
                route_type: s("header"),
                route_by: s("x-canary"),
                analysis: Value::Value(Analysis {
                    unready_grace: s("30s"),
                    max_restarts: Value::Value(1),
                    probe_path: s("/healthz"),
                    probe_interval: s("2s"),
                    max_failure_rate: Value::Value(0.25),
                    max_latency: s("1s"),
                }),
            }),
        },
        reported: Reported {
            status: s("running"),
            url: s("http://x"),
            revision: s("r1"),
            deployed_bento: s("iris:v1"),
            created_at: s("t0"),
            updated_at: s("t1"),
            creator: s("me"),
        },
        label_sets: LabelSets {
            terraform_labels: Value::Value(StringMap::from([("team".to_string(), s("ml"))])),
            effective_labels: Value::Value(StringMap::from([("x".to_string(), s("y"))])),
        },
        canary: CanaryPart {
            canary: Value::Value(CanaryBlock {
                route_type: s("random"),
                route_by: Value::Null,
                version: Value::Value(vec![CanaryVersionBlock {
                    name: s("v2"),
                    bento: s("iris:v2"),
                    weight: Value::Value(10),
                    envs: Value::Value(StringMap::from([("A".to_string(), s("1"))])),
                }]),
            }),
        },
    }
}

/// The parts are flattened into one object; tf-provider decodes states from MessagePack
/// (`rmp_serde`, named) and sometimes JSON, and `Value` is an untagged enum whose unknown
/// is a MessagePack extension: every leaf must come back as it went, unknowns included.
#[test]
fn every_part_round_trips_unknown_values() {
    for state in states() {
        let bytes = rmp_serde::to_vec_named(&state).expect("encode");
        let back: DeploymentState = rmp_serde::from_slice(&bytes).expect("decode");
        assert_eq!(back, state, "MessagePack");
        if state.reported.status.is_unknown() {
            continue; // JSON has no unknown; tf-provider uses it for known values only.
        }
        let text = serde_json::to_string(&state).expect("json");
        let back: DeploymentState = serde_json::from_str(&text).expect("json back");
        assert_eq!(back, state, "JSON");
    }
}

/// The parts do not share an attribute name: flattening would otherwise fill both from one
/// key.
#[test]
fn parts_have_disjoint_attributes() {
    fn keys<T: Serialize + Default>() -> BTreeSet<String> {
        let v = serde_json::to_value(T::default()).expect("ser");
        v.as_object().expect("object").keys().cloned().collect()
    }
    let parts = [
        keys::<Location>(),
        keys::<Spec>(),
        keys::<Settings>(),
        keys::<Reported>(),
        keys::<LabelSets>(),
        keys::<CanaryPart>(),
    ];
    let total: usize = parts.iter().map(BTreeSet::len).sum();
    let union: BTreeSet<&String> = parts.iter().flatten().collect();
    assert_eq!(union.len(), total, "{parts:?}");
    assert_eq!(union.len(), keys::<DeploymentState>().len());
}

#[test]
fn reported_parts_are_computed_and_the_others_configurable() {
    let schema = resource_schema();
    let attr = |k: &str| schema.block.attributes.get(k).map(|a| a.constraint.clone());
    for v in [
        serde_json::to_value(Reported::default()).expect("ser"),
        serde_json::to_value(LabelSets::default()).expect("ser"),
    ] {
        for k in v.as_object().expect("object").keys() {
            assert_eq!(attr(k), Some(AttributeConstraint::Computed), "{k}");
        }
    }
    for part in [
        serde_json::to_value(Spec::default()).expect("ser"),
        serde_json::to_value(Settings::default()).expect("ser"),
    ] {
        for k in part.as_object().expect("object").keys() {
            if schema.block.blocks.contains_key(k) {
                continue;
            }
            assert_ne!(attr(k), Some(AttributeConstraint::Computed), "{k}");
            assert!(attr(k).is_some(), "{k} is not in the schema");
        }
    }
}

#[test]
fn a_rollout_leaves_where_and_who_alone() {
    let known = states().swap_remove(1).reported;
    let after = known.after_rollout();
    assert_eq!(
        (&after.url, &after.created_at, &after.creator),
        (&known.url, &known.created_at, &known.creator)
    );
    for changed in [
        &after.status,
        &after.revision,
        &after.deployed_bento,
        &after.updated_at,
    ] {
        assert!(changed.is_unknown());
    }
}

#[test]
fn spec_differs_on_every_attribute_and_ignores_an_external_bento() {
    let known = states().swap_remove(1).spec;
    for (k, changed) in one_attribute_changes(&known) {
        assert!(known.differs(&changed, false), "a change of {k} alone");
        assert_eq!(
            known.differs(&changed, true),
            k != "bento",
            "{k} with an external bento"
        );
    }
    assert!(!known.differs(&known.clone(), false));
}

#[test]
fn name_and_bento_are_required_and_outputs_computed() {
    let s = resource_schema();
    assert_eq!(
        s.block.attributes["name"].constraint,
        AttributeConstraint::Required
    );
    assert_eq!(
        s.block.attributes["bento"].constraint,
        AttributeConstraint::Required
    );
    for c in [
        "id",
        "status",
        "url",
        "revision",
        "created_at",
        "updated_at",
        "creator",
    ] {
        assert_eq!(
            s.block.attributes[c].constraint,
            AttributeConstraint::Computed,
            "{c}"
        );
    }
    for d in s.block.attributes.values() {
        assert!(d.description.content.len() > 20);
    }
}
