//! [`summarise`]: pods frames → per-service health, on hand-written frames (a rolling update, a
//! crash loop, a multi-service deployment with and without service labels) and on generated
//! ones (its invariants).

use std::collections::BTreeMap;

use super::*;
use crate::api::{KubeEvent, KubePodRuntime, PodsFrame};
use crate::wait::{Bounds, POD_SERVICE_LABEL};

/// A target whose services have `min` replicas each.
fn target(services: &[(&str, u32)]) -> RolloutTarget {
    RolloutTarget {
        created_at: "2024-05-01T10:00:00Z".into(),
        bento_version: Some("v2".into()),
        services: services
            .iter()
            .map(|(n, min)| {
                (
                    n.to_string(),
                    Bounds {
                        min: *min,
                        max: (*min).max(1),
                    },
                )
            })
            .collect::<BTreeMap<_, _>>(),
    }
}

/// A pod of bento `iris:{version}`, started at second `start` of the revision's minute.
fn pod(name: &str, version: &str, ready: bool, start: u32) -> KubePod {
    let mut p = KubePod {
        name: name.into(),
        ..Default::default()
    };
    p.labels
        .insert(POD_BENTO_VERSION_LABEL.into(), version.into());
    p.labels
        .insert(POD_BENTO_REPOSITORY_LABEL.into(), "iris".into());
    p.status.ready = ready;
    p.status.phase = "Running".into();
    p.status.start_time = Some(format!("2024-05-01T10:00:{start:02}Z"));
    p.pod_status = Some(KubePodRuntime {
        status: "Running".into(),
        phase: "Running".into(),
    });
    p
}

fn in_service(mut p: KubePod, service: &str) -> KubePod {
    p.labels.insert(POD_SERVICE_LABEL.into(), service.into());
    p
}

fn warned(mut p: KubePod, events: &[(&str, &str)]) -> KubePod {
    p.warnings = Some(
        events
            .iter()
            .map(|(r, m)| KubeEvent {
                reason: r.to_string(),
                message: m.to_string(),
            })
            .collect(),
    );
    p
}

/// The kubelet's crash loop, as the pods stream shows it.
fn crash_looping(mut p: KubePod) -> KubePod {
    p.status.ready = false;
    p.pod_status = Some(KubePodRuntime {
        status: "CrashLoopBackOff".into(),
        phase: "Running".into(),
    });
    warned(
        p,
        &[(
            "BackOff",
            "Back-off restarting failed container main in pod x",
        )],
    )
}

fn terminating(mut p: KubePod) -> KubePod {
    p.pod_status = Some(KubePodRuntime {
        status: "Terminating".into(),
        phase: "Running".into(),
    });
    p
}

fn version(bento: &str, ready: u32, total: u32) -> VersionHealth {
    VersionHealth {
        bento: Some(bento.into()),
        ready,
        total,
    }
}

#[test]
fn a_rolling_update_shows_the_old_and_the_new_bento() {
    let t = target(&[("apiserver", 2)]);
    let pods = vec![
        pod("old-a", "v1", true, 1),
        terminating(pod("old-b", "v1", true, 2)),
        pod("new-a", "v2", true, 30),
        pod("new-b", "v2", false, 40),
    ];
    let h = summarise(&t, None, false, &pods);
    assert_eq!(
        h,
        vec![ServiceHealth {
            service: Some("apiserver".into()),
            desired: 2,
            // A terminating pod no longer serves; a starting one does not yet.
            ready: 2,
            total: 4,
            restarts: 0,
            versions: vec![version("iris:v1", 1, 2), version("iris:v2", 1, 2)],
            warnings: vec![],
        }]
    );
}

#[test]
fn a_crash_loop_shows_its_restart_and_the_kubelets_warning() {
    let t = target(&[("apiserver", 1)]);
    let pods = vec![
        crash_looping(pod("crashy-1", "v2", false, 10)),
        pod("crashy-2", "v2", false, 20),
    ];
    let h = summarise(&t, None, false, &pods);
    assert_eq!(h.len(), 1, "{h:?}");
    let s = &h[0];
    assert_eq!((s.desired, s.ready, s.total, s.restarts), (1, 0, 2, 1));
    assert_eq!(
        s.warnings,
        vec![
            "pod crashy-1 (bento version v2) is not ready: BackOff: Back-off restarting failed \
             container main in pod x"
                .to_string()
        ],
        "only pods with Kubernetes events warn; the starting one has none"
    );
}

#[test]
fn a_ready_pod_that_restarted_counts_as_a_restart_but_does_not_warn() {
    let t = target(&[("apiserver", 1)]);
    let pods = vec![warned(
        pod("back", "v2", true, 10),
        &[("BackOff", "Back-off restarting failed container")],
    )];
    let s = &summarise(&t, None, false, &pods)[0];
    assert_eq!((s.ready, s.restarts), (1, 1));
    assert!(s.warnings.is_empty(), "{s:?}");
}

#[test]
fn warnings_come_newest_pods_first_and_are_capped() {
    let t = target(&[("apiserver", 1)]);
    let pods: Vec<KubePod> = (0..MAX_WARNINGS as u32 + 3)
        .map(|i| {
            warned(
                pod(&format!("p{i:02}"), "v2", false, i),
                &[("Unhealthy", "Readiness probe failed: 503")],
            )
        })
        .collect();
    let s = &summarise(&t, None, false, &pods)[0];
    assert_eq!(s.warnings.len(), MAX_WARNINGS);
    assert!(s.warnings[0].starts_with("pod p12 "), "{:?}", s.warnings);
    assert!(s.warnings[MAX_WARNINGS - 1].starts_with("pod p03 "));
}

#[test]
fn services_are_told_apart_by_their_label_and_canaries_are_left_out() {
    let t = target(&[("api", 2), ("worker", 1)]);
    let mut canary = in_service(pod("canary", "v9", false, 5), "api");
    canary.status.is_canary = true;
    let pods = vec![
        in_service(pod("api-1", "v2", true, 1), "api"),
        in_service(pod("api-2", "v2", true, 2), "api"),
        in_service(crash_looping(pod("worker-1", "v2", false, 3)), "worker"),
        canary,
    ];
    let h = summarise(&t, None, false, &pods);
    let names: Vec<Option<&str>> = h.iter().map(|s| s.service.as_deref()).collect();
    assert_eq!(names, [Some("api"), Some("worker")]);
    assert_eq!((h[0].desired, h[0].ready, h[0].total), (2, 2, 2));
    assert_eq!((h[1].desired, h[1].ready, h[1].restarts), (1, 0, 1));
}

#[test]
fn pods_without_a_service_label_are_counted_together() {
    let t = target(&[("api", 2), ("worker", 1)]);
    let pods = vec![
        pod("a", "v2", true, 1),
        pod("b", "v2", true, 2),
        pod("c", "v2", false, 3),
    ];
    let h = summarise(&t, None, false, &pods);
    assert_eq!(h.len(), 1, "{h:?}");
    assert_eq!(h[0].service, None, "the pods do not say which service");
    assert_eq!((h[0].desired, h[0].ready, h[0].total), (3, 2, 3));
}

#[test]
fn one_service_needs_no_label_and_a_config_without_services_takes_the_entry_one() {
    let pods = vec![pod("a", "v2", true, 1)];
    let one = summarise(&target(&[("apiserver", 1)]), None, false, &pods);
    assert_eq!(one[0].service.as_deref(), Some("apiserver"));
    let none = summarise(&target(&[]), Some("MyService"), false, &pods);
    assert_eq!(none[0].service.as_deref(), Some("MyService"));
    assert_eq!(
        none[0].desired, 1,
        "no scaling: the platform's default of 1"
    );
}

#[test]
fn no_pods_lists_every_service_empty_and_a_stopped_deployment_desires_none() {
    let t = target(&[("api", 2), ("worker", 1)]);
    let h = summarise(&t, None, false, &[]);
    let got: Vec<(Option<&str>, u32, u32)> = h
        .iter()
        .map(|s| (s.service.as_deref(), s.desired, s.total))
        .collect();
    assert_eq!(got, [(Some("api"), 2, 0), (Some("worker"), 1, 0)]);
    assert!(h
        .iter()
        .all(|s| s.versions.is_empty() && s.warnings.is_empty()));
    let stopped = summarise(&t, None, true, &[]);
    assert!(stopped.iter().all(|s| s.desired == 0), "{stopped:?}");
}

#[test]
fn pods_without_a_repository_or_version_label_still_count() {
    let mut bare = pod("bare", "v2", true, 1);
    bare.labels.remove(POD_BENTO_REPOSITORY_LABEL);
    let mut unnamed = pod("unnamed", "v2", false, 2);
    unnamed.labels.clear();
    let s = &summarise(&target(&[("apiserver", 1)]), None, false, &[bare, unnamed])[0];
    assert_eq!(
        s.versions,
        vec![
            VersionHealth {
                bento: None,
                ready: 0,
                total: 1
            },
            version("v2", 1, 1),
        ]
    );
}

/// A frame as the pods stream sends it (Yatai's `KubePodSchema`, with fields the provider does
/// not read) summarises like the typed pods.
#[test]
fn a_pods_frame_from_the_stream_summarises() {
    let text = r#"{"type":"success","message":"","payload":[
      {"name":"d-apiserver-1","namespace":"yatai","node_name":"n1","commit_id":"",
       "labels":{"yatai.ai/bento-deployment":"d","yatai.ai/bento-repository":"iris",
                 "yatai.ai/bento-version":"v1","yatai.ai/bento-deployment-component-type":"api-server"},
       "status":{"phase":"Running","ready":true,"start_time":"2024-05-01T09:00:00Z","is_old":false,"is_canary":false,"host_ip":"10.0.0.1"},
       "raw_status":{"containerStatuses":[{"name":"main","restartCount":0}]},
       "pod_status":{"status":"Running","phase":"Running","container_states":[]},
       "warnings":null},
      {"name":"d-apiserver-2","labels":{"yatai.ai/bento-repository":"iris","yatai.ai/bento-version":"v2"},
       "status":{"phase":"Running","ready":false,"start_time":"2024-05-01T10:00:05Z","is_old":false,"is_canary":false},
       "pod_status":{"status":"CrashLoopBackOff","phase":"Running","container_states":[]},
       "warnings":[{"reason":"BackOff","message":"Back-off restarting failed container","type":"Warning","count":4}]}
    ]}"#;
    let frame: PodsFrame = serde_json::from_str(text).expect("frame");
    let pods = frame.payload.expect("pods");
    let s = &summarise(&target(&[("apiserver", 1)]), None, false, &pods)[0];
    assert_eq!((s.ready, s.total, s.restarts), (1, 2, 1));
    assert_eq!(
        s.versions,
        vec![version("iris:v1", 1, 1), version("iris:v2", 0, 1)]
    );
    assert_eq!(s.warnings.len(), 1, "{s:?}");
}

#[test]
fn terraform_values_carry_every_count() {
    let h = HealthData::from(ServiceHealth {
        service: None,
        desired: 2,
        ready: 1,
        total: 3,
        restarts: 1,
        versions: vec![version("iris:v1", 1, 3)],
        warnings: vec!["w".into()],
    });
    assert_eq!(h.service, Value::Null);
    assert_eq!(
        (
            h.desired_replicas,
            h.ready_replicas,
            h.total_replicas,
            h.restarts
        ),
        (
            Value::Value(2),
            Value::Value(1),
            Value::Value(3),
            Value::Value(1)
        )
    );
    let json = serde_json::to_value(&h).expect("ser");
    let keys: Vec<&String> = json.as_object().expect("object").keys().collect();
    let mut want: Vec<String> = health_fields().into_keys().collect();
    want.sort();
    let mut keys: Vec<String> = keys.into_iter().cloned().collect();
    keys.sort();
    assert_eq!(
        keys, want,
        "the state type and the schema name the same fields"
    );
    let v = serde_json::to_value(VersionData::default()).expect("ser");
    let mut vk: Vec<String> = v.as_object().expect("object").keys().cloned().collect();
    vk.sort();
    let mut vw: Vec<String> = version_fields().into_keys().collect();
    vw.sort();
    assert_eq!(vk, vw);
}

/// A pods stream the token may not read (403, as a proxy or a permission would answer): the
/// read gives `health` null and one warning on `health` that names the deployment and the
/// server's answer, after one attempt.
#[tokio::test]
async fn an_unreadable_pods_stream_leaves_health_null_with_a_warning() {
    use crate::client::stub::{serve, StubRequest, StubResponse};
    use crate::client::ClientConfig;

    let stub = serve(|_req: StubRequest| async move {
        StubResponse::json(403, serde_json::json!({"error": "pods: permission denied"}))
    })
    .await;
    let mut cfg = ClientConfig::new(stub.url.clone(), "tok");
    cfg.requests_per_second = 0.0;
    let client = Client::new(cfg).expect("client");
    let mut d = Deployment::default();
    d.meta.name = "iris".into();
    d.cluster.meta.name = "local-east".into();
    let mut diags = Diagnostics::default();
    let health = read_health(&client, &d, None, &mut diags).await;
    assert_eq!(health, Value::Null);
    assert!(diags.errors.is_empty(), "{diags:?}");
    assert_eq!(diags.warnings.len(), 1, "{diags:?}");
    let text = format!("{:?}", diags.warnings[0]);
    for want in ["iris", "403", "permission denied", "websocket"] {
        assert!(text.contains(want), "the warning names {want}: {text}");
    }
    let reqs = stub.requests();
    assert_eq!(reqs.len(), 1, "one attempt: {reqs:?}");
    assert_eq!(reqs[0].path, "/ws/v2/deployments/iris/pods");
}

mod generated {
    //! Generated pods frames: the invariants of [`summarise`].
    use super::*;
    use proptest::prelude::*;

    /// One generated pod: (bento version index, ready, terminating, crash loop, BackOff
    /// event, unhealthy event, canary, service index, start second).
    type Gen = (u8, bool, bool, bool, bool, bool, bool, u8, u8);

    fn build(i: usize, g: &Gen, labelled: bool) -> KubePod {
        let (v, ready, term, crash, backoff, unhealthy, can, svc, start) = *g;
        let mut p = pod(
            &format!("p{i}"),
            ["v1", "v2", "v3"][usize::from(v % 3)],
            ready,
            u32::from(start % 60),
        );
        if crash {
            p = crash_looping(p);
        }
        if term {
            p = terminating(p);
        }
        let mut events = Vec::new();
        if backoff {
            events.push(("BackOff", "Back-off restarting failed container"));
        }
        if unhealthy {
            events.push(("Unhealthy", "Readiness probe failed"));
        }
        if !events.is_empty() {
            let mut all = p.warnings.take().unwrap_or_default();
            all.extend(events.iter().map(|(r, m)| KubeEvent {
                reason: r.to_string(),
                message: m.to_string(),
            }));
            p.warnings = Some(all);
        }
        p.status.is_canary = can;
        if labelled {
            p = in_service(p, ["api", "worker"][usize::from(svc % 2)]);
        }
        p
    }

    proptest! {
        #[test]
        fn counts_add_up(
            gens in proptest::collection::vec(any::<Gen>(), 0..12),
            labelled in any::<bool>(),
            two_services in any::<bool>(),
            min_api in 0u32..4,
            min_worker in 0u32..4,
            stopped in any::<bool>(),
        ) {
            let t = if two_services {
                target(&[("api", min_api), ("worker", min_worker)])
            } else {
                target(&[("api", min_api)])
            };
            // One service: its pods name it or none.
            let labelled = labelled && (two_services || gens.iter().all(|g| g.7 % 2 == 0));
            let pods: Vec<KubePod> = gens.iter().enumerate().map(|(i, g)| build(i, g, labelled)).collect();
            let h = summarise(&t, None, stopped, &pods);
            let main: Vec<&KubePod> = pods.iter().filter(|p| !p.status.is_canary).collect();

            for s in &h {
                prop_assert!(s.ready <= s.total, "{:?}", s);
                prop_assert_eq!(s.versions.iter().map(|v| v.total).sum::<u32>(), s.total, "{:?}", s);
                prop_assert_eq!(s.versions.iter().map(|v| v.ready).sum::<u32>(), s.ready, "{:?}", s);
                prop_assert!(s.versions.iter().all(|v| v.ready <= v.total && v.total > 0), "{:?}", s);
                prop_assert!(s.restarts <= s.total, "{:?}", s);
                prop_assert!(s.warnings.len() <= MAX_WARNINGS);
                prop_assert!(s.warnings.len() as u32 <= s.total - s.ready, "{:?}", s);
                if stopped {
                    prop_assert_eq!(s.desired, 0);
                }
            }
            // Every non-canary pod is counted once, in one service.
            prop_assert_eq!(h.iter().map(|s| s.total).sum::<u32>(), main.len() as u32);
            prop_assert_eq!(
                h.iter().map(|s| s.ready).sum::<u32>(),
                main.iter().filter(|p| pod_serves(p)).count() as u32
            );
            prop_assert_eq!(
                h.iter().map(|s| s.restarts).sum::<u32>(),
                main.iter().filter(|p| shows_restart(p)).count() as u32
            );
            // Desired is the configuration's floor, however the pods are grouped.
            if !stopped {
                prop_assert_eq!(
                    h.iter().map(|s| s.desired).sum::<u32>(),
                    t.services.values().map(|b| b.min).sum::<u32>()
                );
            }
            // Per service when the pods say which, or there are none; else one entry.
            let per_service = labelled || main.is_empty() || !two_services;
            prop_assert_eq!(h.len(), if per_service { t.services.len() } else { 1 });
        }
    }
}
