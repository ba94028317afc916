use super::*;
use crate::api::{CreateDeploymentRequest, Scaling, ServiceConfig, UpdateDeploymentRequest};
use crate::deployments::{self, Caller};
use crate::runtime::Simulated;
use crate::store::Behaviour;
use DeploymentStatus as S;

struct World {
    _dir: tempfile::TempDir,
    s: Store,
    p: store::Principal,
    t: Timing,
    rt: Recording,
}

/// [`Simulated`], recording the target and bento of every replica it starts.
#[derive(Default)]
struct Recording(std::sync::Mutex<Vec<(String, String)>>);

impl Recording {
    fn started(&self) -> Vec<(String, String)> {
        self.0.lock().expect("lock").clone()
    }
}

impl Runtime for Recording {
    fn start(
        &self,
        d: &DeploymentRow,
        r: &ReplicaRow,
        b: &BentoRow,
        env: &Environment,
    ) -> Option<i64> {
        self.0
            .lock()
            .expect("lock")
            .push((r.target.clone(), b.tag()));
        Simulated.start(d, r, b, env)
    }
    fn ready(&self, r: &ReplicaRow, b: &BentoRow, now: i64) -> bool {
        Simulated.ready(r, b, now)
    }
    fn crashed(&self, r: &ReplicaRow, b: &BentoRow, now: i64) -> bool {
        Simulated.crashed(r, b, now)
    }
    fn drained(&self, r: &ReplicaRow, now: i64, drain_ms: i64) -> bool {
        Simulated.drained(r, now, drain_ms)
    }
    fn stop(&self, r: &ReplicaRow) {
        Simulated.stop(r)
    }
}

fn world() -> World {
    let (dir, s, p) = store::test_store();
    World {
        _dir: dir,
        s,
        p,
        t: Timing::default(),
        rt: Recording::default(),
    }
}

fn spec(bento: &str, strategy: &str, replicas: i64) -> UpdateDeploymentRequest {
    let mut u = UpdateDeploymentRequest {
        bento: bento.into(),
        ..Default::default()
    };
    u.services.insert(
        "apiserver".into(),
        ServiceConfig {
            scaling: Some(Scaling {
                min_replicas: Some(replicas),
                max_replicas: Some(replicas),
                policy: None,
            }),
            deployment_strategy: Some(strategy.into()),
            ..Default::default()
        },
    );
    u
}

impl World {
    fn bento(&self, tag: &str, beh: Behaviour) {
        let (repo, ver) = tag.split_once(':').expect("tag");
        self.s
            .tx(|c| store::put_bento(c, self.p.org.id, repo, ver, &beh, 0).map(|_| ()))
            .expect("bento");
    }
    fn create(&self, name: &str, spec: UpdateDeploymentRequest, now: i64) -> i64 {
        let caller = Caller {
            principal: &self.p,
            auto_register_bentos: false,
        };
        let req = CreateDeploymentRequest {
            name: Some(name.into()),
            dev: false,
            spec,
        };
        self.s
            .tx(|c| deployments::create(c, &caller, None, req, now))
            .expect("create")
            .id
    }
    fn update(&self, name: &str, spec: UpdateDeploymentRequest, now: i64) {
        let caller = Caller {
            principal: &self.p,
            auto_register_bentos: false,
        };
        self.s
            .tx(|c| deployments::update(c, &caller, None, name, spec, now))
            .expect("update");
    }
    /// Ticks from `from` to `to` every 50 ms; returns the deployment and checks an
    /// invariant on every tick.
    fn run(
        &self,
        id: i64,
        from: i64,
        to: i64,
        check: impl FnMut(&DeploymentRow, &[ReplicaRow]),
    ) -> DeploymentRow {
        self.run_on(&self.rt, id, from, to, check)
    }
    /// [`World::run`] with replicas run by `rt`.
    fn run_on(
        &self,
        rt: &dyn Runtime,
        id: i64,
        from: i64,
        to: i64,
        mut check: impl FnMut(&DeploymentRow, &[ReplicaRow]),
    ) -> DeploymentRow {
        let mut now = from;
        while now <= to {
            self.s
                .tx(|c| reconcile(c, rt, &self.t, id, now))
                .expect("reconcile");
            let (d, reps) = self
                .s
                .with(|c| {
                    Ok::<_, crate::error::ApiError>((
                        store::deployment_by_id(c, id)?,
                        store::live_replicas(c, id)?,
                    ))
                })
                .expect("read");
            check(&d, &reps);
            now += 50;
        }
        self.s
            .with(|c| store::deployment_by_id(c, id))
            .expect("read")
    }
}

#[test]
fn a_status_synced_mid_rollout_never_reports_running_with_old_replicas_left() {
    // A sync on every tick: each one sees the pods as the tick left them. A sync that ran
    // before the tick's new replica was counted reported `running` while old replicas
    // still served (the provider then returned early).
    let mut w = world();
    w.t.status_sync_ms = 0;
    w.bento("app:v1", Behaviour::default());
    w.bento("app:v2", Behaviour::default());
    let id = w.create("roll", spec("app:v1", "RollingUpdate", 3), 0);
    let d = w.run(id, 0, 5_000, |_, _| {});
    assert_eq!((d.phase, d.reported_status), (Phase::Complete, S::Running));
    w.update("roll", spec("app:v2", "RollingUpdate", 3), 5_000);
    let mut saw_deploying = false;
    let d = w.run(id, 5_000, 12_000, |d, reps| {
        let old_serving = reps
            .iter()
            .any(|r| r.revision_uid != d.target_revision && r.state == ReplicaState::Ready);
        if d.phase == Phase::Rolling {
            saw_deploying |= d.reported_status == S::Deploying;
            assert!(
                !(d.reported_status == S::Running && old_serving && d.status_synced_at > 5_000),
                "reported running mid-rollout with old replicas ready: {d:?} {reps:?}"
            );
        }
    });
    assert!(saw_deploying);
    assert_eq!((d.phase, d.reported_status), (Phase::Complete, S::Running));
}

/// `spec` plus a canary: one version `name` of `bento`, weight 30, `replicas` replicas.
fn with_canary(
    mut u: UpdateDeploymentRequest,
    name: &str,
    bento: &str,
    replicas: i64,
) -> UpdateDeploymentRequest {
    let mut services = std::collections::BTreeMap::new();
    services.insert(
        "apiserver".to_string(),
        ServiceConfig {
            scaling: Some(Scaling {
                min_replicas: Some(replicas),
                max_replicas: Some(replicas),
                policy: None,
            }),
            ..Default::default()
        },
    );
    let mut versions = std::collections::BTreeMap::new();
    versions.insert(
        name.to_string(),
        crate::api::CanaryVersion {
            bento: Some(bento.into()),
            weight: Some(30),
            services,
            ..Default::default()
        },
    );
    u.canary = Some(crate::api::Canary {
        route_type: Some("random".into()),
        route_by: None,
        versions: Some(versions),
    });
    u
}

fn of_target<'a>(reps: &'a [ReplicaRow], target: &str, state: ReplicaState) -> Vec<&'a ReplicaRow> {
    reps.iter()
        .filter(|r| r.target == target && r.state == state)
        .collect()
}

fn ready_of<'a>(reps: &'a [ReplicaRow], rev: &'a str) -> usize {
    reps.iter()
        .filter(|r| r.state == ReplicaState::Ready && r.revision_uid == rev)
        .count()
}

#[test]
fn a_service_without_a_strategy_recreates() {
    let mut cfg = DeploymentConfig::default();
    for (name, set) in [
        ("none", None),
        ("ramped", Some("RampedSlowRollout")),
        ("bogus", Some("Bogus")),
    ] {
        cfg.services.insert(
            name.into(),
            ServiceConfig {
                deployment_strategy: set.map(str::to_string),
                ..Default::default()
            },
        );
    }
    assert_eq!(strategy(&cfg, "none"), Strategy::Recreate);
    assert_eq!(strategy(&cfg, "not-configured"), Strategy::Recreate);
    assert_eq!(strategy(&cfg, "ramped"), Strategy::RampedSlowRollout);
    assert_eq!(strategy(&cfg, "bogus"), Strategy::RollingUpdate);
}

#[test]
fn rolling_update_never_drops_below_desired_ready() {
    let w = world();
    w.bento("iris:v1", Behaviour::default());
    w.bento("iris:v2", Behaviour::default());
    let id = w.create("a", spec("iris:v1", "RollingUpdate", 3), 0);
    let d = w.run(id, 0, 5_000, |_, _| {});
    assert_eq!(d.status, S::Running);
    let v1 = d.serving_revision.clone();
    w.update("a", spec("iris:v2", "RollingUpdate", 3), 5_000);
    let mut min_ready = usize::MAX;
    let d = w.run(id, 5_000, 15_000, |_, reps| {
        let ready = reps
            .iter()
            .filter(|r| r.state == ReplicaState::Ready)
            .count();
        min_ready = min_ready.min(ready);
    });
    assert_eq!(d.status, S::Running);
    assert_ne!(d.serving_revision, v1);
    assert!(min_ready >= 3, "ready dropped to {min_ready}");
}

#[test]
fn recreate_has_a_gap_and_unready_fails_keeping_old() {
    let w = world();
    w.bento("iris:v1", Behaviour::default());
    w.bento("iris:v2", Behaviour::default());
    w.bento(
        "iris:bad",
        Behaviour {
            unready: true,
            ..Default::default()
        },
    );
    let id = w.create("a", spec("iris:v1", "Recreate", 2), 0);
    let d = w.run(id, 0, 3_000, |_, _| {});
    assert_eq!(d.status, S::Running);
    w.update("a", spec("iris:v2", "Recreate", 2), 3_000);
    let mut saw_zero = false;
    let d = w.run(id, 3_000, 6_000, |_, reps| {
        saw_zero |= reps.iter().all(|r| r.state != ReplicaState::Ready);
    });
    assert!(saw_zero);
    assert_eq!(d.status, S::Running);
    let v2 = d.serving_revision.clone();
    w.update("a", spec("iris:bad", "RollingUpdate", 2), 6_000);
    let d = w.run(id, 6_000, 18_000, |_, reps| {
        assert!(ready_of(reps, &v2) >= 2);
    });
    assert_eq!(d.status, S::Failed);
    assert_eq!(d.serving_revision, v2);
    assert!(d.message.contains("did not become ready"), "{}", d.message);
    assert!(d.message.contains("keeps serving"), "{}", d.message);
}

#[test]
fn image_build_failure_and_terminate() {
    let w = world();
    w.bento(
        "iris:v1",
        Behaviour {
            image_build_ms: 500,
            ..Default::default()
        },
    );
    w.bento(
        "iris:broken",
        Behaviour {
            image_build_fails: true,
            image_build_ms: 200,
            ..Default::default()
        },
    );
    let id = w.create("a", spec("iris:v1", "RollingUpdate", 1), 0);
    let mut seen = Vec::new();
    let d = w.run(id, 0, 2_000, |d, _| {
        if seen.last() != Some(&d.status) {
            seen.push(d.status);
        }
    });
    assert_eq!(seen, [S::ImageBuilding, S::Deploying, S::Running]);
    assert_eq!(d.status, S::Running);
    w.update("a", spec("iris:broken", "RollingUpdate", 1), 2_000);
    let d = w.run(id, 2_000, 3_000, |_, _| {});
    assert_eq!(d.status, S::ImageBuildFailed);
    w.s.tx(|c| deployments::terminate(c, &w.p, None, "a", 3_000))
        .expect("term");
    let d = w.run(id, 3_000, 4_000, |_, _| {});
    assert_eq!(d.status, S::Terminated);
    assert!(w
        .s
        .with(|c| store::live_replicas(c, id))
        .expect("r")
        .is_empty());
}

#[test]
fn crashing_bento_is_unhealthy_for_its_crash_backoff_then_restarted() {
    let w = world();
    w.bento(
        "iris:v1",
        Behaviour {
            crash_after_ms: Some(1_000),
            ..Default::default()
        },
    );
    let id = w.create("a", spec("iris:v1", "RollingUpdate", 1), 0);
    // (status, since when) of each status change the reconciler made.
    let mut seen: Vec<(S, i64)> = Vec::new();
    let mut now = 0;
    w.run(id, 0, 40_000, |d, _| {
        if seen.last().map(|s| s.0) != Some(d.status) {
            seen.push((d.status, now));
        }
        now += 50;
    });
    let statuses: Vec<S> = seen.iter().map(|s| s.0).collect();
    assert!(
        statuses.starts_with(&[
            S::Deploying,
            S::Running,
            S::Unhealthy,
            S::Running,
            S::Unhealthy,
            S::Running
        ]),
        "{seen:?}"
    );
    // The first replacement waits the base back-off, the second twice that.
    let base = Timing::default().crash_backoff_ms;
    let unhealthy_for = |i: usize| seen[i + 1].1 - seen[i].1;
    let startup = Behaviour::default().startup_ms;
    for (i, backoff) in [(2, base), (4, 2 * base)] {
        let took = unhealthy_for(i);
        assert!(
            took >= backoff && took <= backoff + startup + 200,
            "unhealthy #{i} for {took} ms, back-off {backoff} ms: {seen:?}"
        );
    }
}

#[test]
fn crash_backoff_doubles_per_crash_and_caps_at_thirty_times_the_base() {
    let t = |base| Timing {
        crash_backoff_ms: base,
        ..Timing::default()
    };
    assert_eq!(t(10_000).crash_backoff(0), 0);
    assert_eq!(t(0).crash_backoff(3), 0);
    assert_eq!(t(10_000).crash_backoff(1), 10_000);
    assert_eq!(t(10_000).crash_backoff(2), 20_000);
    assert_eq!(t(10_000).crash_backoff(5), 160_000);
    assert_eq!(t(10_000).crash_backoff(6), 300_000);
    assert_eq!(t(10_000).crash_backoff(1_000), 300_000);
    assert_eq!(t(i64::MAX / 2).crash_backoff(3), i64::MAX);
}

/// The replicas of a control plane started again: none of the previous process's exists;
/// each one it starts is ready `startup_ms` after it started it.
#[derive(Default)]
struct Restarted(std::sync::Mutex<HashMap<String, i64>>);

impl Runtime for Restarted {
    fn start(
        &self,
        _: &DeploymentRow,
        r: &ReplicaRow,
        _: &BentoRow,
        _: &Environment,
    ) -> Option<i64> {
        self.0
            .lock()
            .expect("lock")
            .insert(r.uid.clone(), r.started_at);
        None
    }
    fn exists(&self, r: &ReplicaRow) -> bool {
        self.0.lock().expect("lock").contains_key(&r.uid)
    }
    fn ready(&self, r: &ReplicaRow, b: &BentoRow, now: i64) -> bool {
        let started = self.0.lock().expect("lock").get(&r.uid).copied();
        started.is_some_and(|t| !b.behaviour.unready && now >= t + b.behaviour.startup_ms)
    }
    fn crashed(&self, r: &ReplicaRow, b: &BentoRow, now: i64) -> bool {
        Simulated.crashed(r, b, now)
    }
    fn drained(&self, r: &ReplicaRow, now: i64, drain_ms: i64) -> bool {
        Simulated.drained(r, now, drain_ms)
    }
    fn stop(&self, _: &ReplicaRow) {}
}

#[test]
fn after_a_restart_the_status_is_deploying_until_replicas_serve_again() {
    let mut w = world();
    w.t.status_sync_ms = 1_000;
    let id = running_with_two_replicas(&w);
    // The control plane starts again at 60 s.
    let restart = 60_000;
    let d = restart_says_at_once_that_nothing_serves(&w, id, restart);
    deploying_until_the_restarted_replicas_serve(&w, id, restart, &d);
    a_second_restart_leaves_a_terminated_deployment_alone(&w, id, restart);
}

/// A deployment of two replicas, each starting in 2 s, running and reported so at 8 s.
fn running_with_two_replicas(w: &World) -> i64 {
    w.bento(
        "app:v1",
        Behaviour {
            startup_ms: 2_000,
            ..Default::default()
        },
    );
    let id = w.create("r", spec("app:v1", "RollingUpdate", 2), 0);
    let d = w.run(id, 0, 8_000, |_, _| {});
    assert_eq!(
        (d.phase, d.status, d.reported_status),
        (Phase::Complete, S::Running, S::Running)
    );
    id
}

/// [`after_restart`] at `restart`: the state says at once that nothing serves (deploying,
/// live and reported, both replicas starting). Returns the deployment as it left it.
fn restart_says_at_once_that_nothing_serves(w: &World, id: i64, restart: i64) -> DeploymentRow {
    let n =
        w.s.tx(|c| after_restart(c, restart))
            .expect("after_restart");
    assert_eq!(n, 1);
    let (d, reps) =
        w.s.with(|c| {
            Ok::<_, crate::error::ApiError>((
                store::deployment_by_id(c, id)?,
                store::live_replicas(c, id)?,
            ))
        })
        .expect("read");
    assert_eq!(
        (d.phase, d.status, d.reported_status, d.status_synced_at),
        (Phase::Complete, S::Deploying, S::Deploying, restart)
    );
    assert_eq!(reps.len(), 2);
    assert!(
        reps.iter().all(|r| r.state == ReplicaState::Starting),
        "{reps:?}"
    );
    d
}

/// Its replicas start again: `deploying` (never `running`, never `unhealthy`) while none is
/// ready, `running` once they serve, reported at the next sync. `d`: the deployment as
/// [`after_restart`] left it.
fn deploying_until_the_restarted_replicas_serve(
    w: &World,
    id: i64,
    restart: i64,
    d: &DeploymentRow,
) {
    let rt = Restarted::default();
    let mut seen = vec![d.reported_status];
    let mut live_seen = vec![d.status];
    let d = w.run_on(&rt, id, restart, restart + 6_000, |d, reps| {
        let ready = reps
            .iter()
            .filter(|r| r.state == ReplicaState::Ready)
            .count();
        if ready < 2 {
            assert_ne!(
                d.status,
                S::Running,
                "live running with {ready} ready: {reps:?}"
            );
        }
        if ready == 0 {
            assert_ne!(
                d.reported_status,
                S::Running,
                "reported running with none ready"
            );
        }
        if seen.last() != Some(&d.reported_status) {
            seen.push(d.reported_status);
        }
        if live_seen.last() != Some(&d.status) {
            live_seen.push(d.status);
        }
    });
    assert_eq!(seen, [S::Deploying, S::Running]);
    assert_eq!(live_seen, [S::Deploying, S::Running]);
    assert_eq!(d.phase, Phase::Complete);
    assert_eq!(
        rt.0.lock().expect("lock").len(),
        2,
        "both replicas started again"
    );
}

/// A second start with nothing live (the deployment terminated after `restart`) changes
/// nothing.
fn a_second_restart_leaves_a_terminated_deployment_alone(w: &World, id: i64, restart: i64) {
    w.s.tx(|c| terminate_all(c, id, restart + 7_000))
        .expect("terminate");
    w.run(id, restart + 7_000, restart + 9_000, |_, _| {});
    let before = w.s.with(|c| store::deployment_by_id(c, id)).expect("read");
    assert_eq!(before.phase, Phase::Terminated);
    assert_eq!(
        w.s.tx(|c| after_restart(c, restart + 10_000))
            .expect("again"),
        0
    );
    let after = w.s.with(|c| store::deployment_by_id(c, id)).expect("read");
    assert_eq!(after, before);
}

fn terminate_all(c: &Connection, id: i64, now: i64) -> Result<()> {
    let d = store::deployment_by_id(c, id)?;
    let p = store::principal(c, "tok")?.expect("p");
    deployments::terminate(c, &p, Some(&d.cluster), &d.name, now).map(|_| ())
}

#[test]
fn canary_versions_run_their_own_bento_and_gate_the_rollout() {
    let w = world();
    w.bento("iris:v1", Behaviour::default());
    w.bento(
        "iris:v2",
        Behaviour {
            startup_ms: 2_000,
            ..Default::default()
        },
    );
    let id = w.create(
        "a",
        with_canary(spec("iris:v1", "RollingUpdate", 2), "v2", "iris:v2", 2),
        0,
    );
    // `main` is ready long before the canary: the rollout waits for both.
    let d = w.run(id, 0, 1_500, |_, _| {});
    assert_eq!((d.phase, d.status), (Phase::Rolling, S::Deploying));
    let d = w.run(id, 1_550, 4_000, |_, _| {});
    assert_eq!(d.status, S::Running);
    let reps = w.s.with(|c| store::live_replicas(c, id)).expect("reps");
    assert_eq!(of_target(&reps, "main", ReplicaState::Ready).len(), 2);
    assert_eq!(of_target(&reps, "v2", ReplicaState::Ready).len(), 2);
    let mut started = w.rt.started();
    started.sort();
    assert_eq!(
        started,
        [
            ("main".to_string(), "iris:v1".to_string()),
            ("main".into(), "iris:v1".into()),
            ("v2".into(), "iris:v2".into()),
            ("v2".into(), "iris:v2".into()),
        ]
    );
    let view =
        w.s.with(|c| {
            let org = store::ensure_org(c, "org", 0)?;
            super::super::render::local_deployment(c, &org, &d, "http://x")
        })
        .expect("view");
    assert_eq!(
        (
            view.rollout.desired_replicas,
            view.rollout.ready_replicas,
            view.rollout.updated_replicas
        ),
        (4, 4, 4)
    );
    let v2 = &view.rollout.canary["v2"];
    assert_eq!(
        (v2.bento.as_str(), v2.desired_replicas, v2.ready_replicas),
        ("iris:v2", 2, 2)
    );

    // `canary: null`: the canary replicas drain at once, `main` rolls as usual.
    w.update("a", spec("iris:v1", "RollingUpdate", 2), 5_000);
    let mut main_ready_min = usize::MAX;
    let d = w.run(id, 5_000, 5_050, |_, reps| {
        assert!(
            of_target(reps, "v2", ReplicaState::Ready).is_empty(),
            "{reps:?}"
        );
    });
    assert_eq!(d.phase, Phase::Rolling);
    let d = w.run(id, 5_100, 9_000, |_, reps| {
        main_ready_min = main_ready_min.min(of_target(reps, "main", ReplicaState::Ready).len());
    });
    assert_eq!(d.status, S::Running);
    assert!(main_ready_min >= 2, "main dropped to {main_ready_min}");
    let reps = w.s.with(|c| store::live_replicas(c, id)).expect("reps");
    assert!(reps.iter().all(ReplicaRow::is_main), "{reps:?}");
}

#[test]
fn a_never_ready_canary_fails_the_rollout_and_a_crashed_one_is_unhealthy() {
    let w = world();
    w.bento("iris:v1", Behaviour::default());
    w.bento(
        "iris:never",
        Behaviour {
            unready: true,
            ..Default::default()
        },
    );
    w.bento(
        "iris:crashy",
        Behaviour {
            crash_after_ms: Some(1_000),
            ..Default::default()
        },
    );
    let id = w.create("a", spec("iris:v1", "RollingUpdate", 1), 0);
    let d = w.run(id, 0, 2_000, |_, _| {});
    assert_eq!(d.status, S::Running);
    let v1 = d.serving_revision.clone();
    w.update(
        "a",
        with_canary(spec("iris:v1", "RollingUpdate", 1), "v2", "iris:never", 1),
        2_000,
    );
    let d = w.run(id, 2_000, 14_000, |_, reps| {
        assert!(!of_target(reps, "main", ReplicaState::Ready).is_empty());
    });
    assert_eq!(d.status, S::Failed);
    assert_eq!(d.serving_revision, v1);
    assert!(
        d.message.contains("canary version \"v2\"") && d.message.contains("keeps serving"),
        "{}",
        d.message
    );
    // The failed revision's replicas go; the serving one (no canary) runs alone.
    let d = w.run(id, 14_050, 16_000, |_, _| {});
    let reps = w.s.with(|c| store::live_replicas(c, id)).expect("reps");
    assert!(
        reps.iter().all(|r| r.revision_uid == v1 && r.is_main()),
        "{reps:?}"
    );
    assert_eq!(d.status, S::Failed);

    // A canary replica that crashes makes a complete deployment unhealthy until replaced,
    // after the same crash back-off as a `main` replica (not at once: Kubernetes restarts a
    // crash-looping canary container like any other).
    w.update(
        "a",
        with_canary(spec("iris:v1", "RollingUpdate", 1), "v2", "iris:crashy", 1),
        16_000,
    );
    let mut seen: Vec<(S, i64)> = Vec::new();
    let mut now = 16_000;
    let mut canary_starts = std::collections::BTreeSet::new();
    let base = w.t.crash_backoff_ms;
    w.run(id, 16_000, 16_000 + 4_000 + base, |d, reps| {
        if seen.last().map(|s| s.0) != Some(d.status) {
            seen.push((d.status, now));
        }
        for r in reps.iter().filter(|r| r.target == "v2") {
            canary_starts.insert(r.uid.clone());
        }
        now += 50;
    });
    let statuses: Vec<S> = seen.iter().map(|s| s.0).collect();
    assert!(
        statuses.starts_with(&[S::Deploying, S::Running, S::Unhealthy, S::Running]),
        "{seen:?}"
    );
    let unhealthy_for = seen[3].1 - seen[2].1;
    assert!(
        unhealthy_for >= base,
        "the crashed canary replica was replaced after {unhealthy_for} ms, within its {base} ms back-off: {seen:?}"
    );
    assert_eq!(
        canary_starts.len(),
        2,
        "one crash, one replacement: {canary_starts:?}"
    );
}

/// Ready replicas of `rev` in a timeline sample (a revision without live replicas is
/// absent from it: zero).
fn ready_in(s: &crate::timeline::Sample, rev: &str) -> u32 {
    s.revisions
        .iter()
        .find(|r| r.uid == rev)
        .map_or(0, |r| r.ready)
}

#[test]
fn the_timeline_records_every_step_of_a_rolling_update_and_nothing_when_idle() {
    use crate::timeline;
    let w = world();
    w.bento("iris:v1", Behaviour::default());
    w.bento("iris:v2", Behaviour::default());
    let id = w.create("a", spec("iris:v1", "RollingUpdate", 3), 0);
    let d = w.run(id, 0, 5_000, |_, _| {});
    let v1 = d.serving_revision.clone();
    w.update("a", spec("iris:v2", "RollingUpdate", 3), 5_000);
    // Every change of the ready counts the reconciler made, as seen tick by tick.
    let mut steps: Vec<(u32, u32)> = Vec::new();
    let d = w.run(id, 5_000, 15_000, |d, reps| {
        let step = (
            ready_of(reps, &v1) as u32,
            ready_of(reps, &d.target_revision) as u32,
        );
        if steps.last() != Some(&step) {
            steps.push(step);
        }
    });
    assert_eq!((d.phase, d.status), (Phase::Complete, S::Running));
    let v2 = d.target_revision.clone();
    let tl = w.s.with(|c| timeline::read(c, &d, 15_000)).expect("read");
    assert_eq!(tl.revision_uid, v2);
    assert_eq!(
        tl.revisions
            .iter()
            .map(|r| (r.uid.as_str(), r.bento.as_str(), r.role.as_str()))
            .collect::<Vec<_>>(),
        [
            (v1.as_str(), "iris:v1", "old"),
            (v2.as_str(), "iris:v2", "new")
        ]
    );
    // The window starts from the state before the update: 3 old ready, no new.
    let first = &tl.samples[0];
    assert!(first.at_ms <= 5_000, "{first:?}");
    assert_eq!((ready_in(first, &v1), ready_in(first, &v2)), (3, 0));
    let last = tl.samples.last().expect("samples");
    assert_eq!((ready_in(last, &v1), ready_in(last, &v2)), (0, 3));
    assert_eq!(last.phase, "complete");
    // The samples hold every step the ticks saw, in order: old down while new goes up.
    let mut recorded: Vec<(u32, u32)> = Vec::new();
    for s in &tl.samples {
        let step = (ready_in(s, &v1), ready_in(s, &v2));
        if recorded.last() != Some(&step) {
            recorded.push(step);
        }
    }
    assert_eq!(recorded, steps, "recorded vs seen tick by tick");
    assert!(
        recorded
            .windows(2)
            .all(|w| w[1].0 <= w[0].0 && w[1].1 >= w[0].1),
        "{recorded:?}"
    );
    assert!(
        recorded
            .iter()
            .any(|&(old, new)| old > 0 && new > 0 && old < 3),
        "no step with both revisions ready: {recorded:?}"
    );
    // Idle ticks write nothing.
    let n = tl.samples.len();
    let d = w.run(id, 15_000, 20_000, |_, _| {});
    let tl = w.s.with(|c| timeline::read(c, &d, 20_000)).expect("read");
    assert_eq!(tl.samples.len(), n);
}

#[test]
fn the_timeline_keeps_the_latest_samples_only() {
    use crate::timeline::{self, MAX_SAMPLES};
    let w = world();
    w.bento("iris:v1", Behaviour::default());
    let id = w.create("a", spec("iris:v1", "RollingUpdate", 1), 0);
    let d = w.run(id, 0, 2_000, |_, _| {});
    let extra = 30;
    for i in 0..(MAX_SAMPLES + extra) as i64 {
        w.s.tx(|c| timeline::record(c, &d, 10_000 + i))
            .expect("record");
    }
    let all = w.s.with(|c| timeline::samples(c, id, 0)).expect("read");
    assert_eq!(all.len(), MAX_SAMPLES);
    assert_eq!(all[0].at_ms, 10_000 + extra as i64);
    assert_eq!(
        all.last().map(|s| s.at_ms),
        Some(10_000 + (MAX_SAMPLES + extra) as i64 - 1)
    );
}

/// [`Simulated`] replicas with an endpoint load the test sets: `in_flight` for the policy-less
/// autoscaler, the service load for a policy.
#[derive(Default)]
struct Loaded {
    load: std::sync::Mutex<(Load, crate::autoscale::ServiceLoad)>,
}

impl Loaded {
    fn set_qps(&self, qps: f64) {
        self.load.lock().expect("lock").1.qps = qps;
    }
    fn set_in_flight(&self, n: usize) {
        let mut l = self.load.lock().expect("lock");
        l.0.in_flight = n;
        l.0.peak = n;
        l.0.window_peak = n;
    }
}

impl Runtime for Loaded {
    fn start(
        &self,
        d: &DeploymentRow,
        r: &ReplicaRow,
        b: &BentoRow,
        e: &Environment,
    ) -> Option<i64> {
        Simulated.start(d, r, b, e)
    }
    fn ready(&self, r: &ReplicaRow, b: &BentoRow, now: i64) -> bool {
        Simulated.ready(r, b, now)
    }
    fn crashed(&self, r: &ReplicaRow, b: &BentoRow, now: i64) -> bool {
        Simulated.crashed(r, b, now)
    }
    fn drained(&self, r: &ReplicaRow, now: i64, drain_ms: i64) -> bool {
        Simulated.drained(r, now, drain_ms)
    }
    fn stop(&self, r: &ReplicaRow) {
        Simulated.stop(r)
    }
    fn load(&self, _: i64, _: i64) -> Option<Load> {
        Some(self.load.lock().expect("lock").0)
    }
    fn service_load(&self, _: i64, _: &str, _: i64) -> Option<crate::autoscale::ServiceLoad> {
        Some(self.load.lock().expect("lock").1)
    }
}

/// One `apiserver` between `min` and `max`, with `policy` as `scaling.policy`.
fn policy_spec(min: i64, max: i64, policy: Option<serde_json::Value>) -> UpdateDeploymentRequest {
    let mut u = spec("app:v1", "RollingUpdate", 1);
    let svc = u.services.get_mut("apiserver").expect("service");
    svc.scaling = Some(Scaling {
        min_replicas: Some(min),
        max_replicas: Some(max),
        policy,
    });
    u
}

/// A world whose policies evaluate every second, with a running deployment `a` of
/// `policy_spec(min, max, policy)` at t = 5 s.
fn scaling_world(min: i64, max: i64, policy: Option<serde_json::Value>) -> (World, Loaded, i64) {
    let mut w = world();
    w.t.scale_eval_ms = 1_000;
    w.bento("app:v1", Behaviour::default());
    let id = w.create("a", policy_spec(min, max, policy), 0);
    let rt = Loaded::default();
    let d = w.run_on(&rt, id, 0, 5_000, |_, _| {});
    assert_eq!((d.phase, d.status), (Phase::Complete, S::Running));
    (w, rt, id)
}

fn scale_of(w: &World, id: i64) -> Option<i64> {
    w.s.with(|c| store::scale_get(c, id, "apiserver"))
        .expect("scale")
}

/// Runs from `from` to `to`; returns when (the first tick) the desired count became `n`.
fn when_scale_is(w: &World, rt: &Loaded, id: i64, from: i64, to: i64, n: i64) -> Option<i64> {
    let mut at = None;
    let mut now = from;
    while now <= to {
        w.run_on(rt, id, now, now, |_, _| {});
        if at.is_none() && scale_of(w, id) == Some(n) {
            at = Some(now);
        }
        now += 50;
    }
    at
}

#[test]
fn a_fast_qps_policy_scales_one_to_three_on_the_next_evaluation() {
    use serde_json::json;
    let (w, rt, id) = scaling_world(
        1,
        5,
        Some(json!({"metrics": [{"type": "qps", "value": 10}], "scale_up_behavior": "fast"})),
    );
    // 30 requests/s on one replica, 10 each: 3 replicas, decided within one evaluation.
    rt.set_qps(30.0);
    let at = when_scale_is(&w, &rt, id, 5_050, 8_000, 3).expect("scaled to 3");
    assert!(at <= 5_050 + 1_000, "scaled at {at}");
    // The decision is on the timeline with the load that caused it.
    let d = w.s.with(|c| store::deployment_by_id(c, id)).expect("d");
    let tl =
        w.s.with(|c| crate::timeline::read(c, &d, 8_000))
            .expect("tl");
    let e = tl.scaling.iter().find(|e| e.to == 3).expect("decision");
    assert_eq!(
        (e.from, e.metric.as_str(), e.measured, e.target),
        (1, "qps", 30.0, 10.0)
    );
    // The replicas follow: three ready.
    let d = w.run_on(&rt, id, 8_000, 10_000, |_, _| {});
    let reps = w.s.with(|c| store::live_replicas(c, id)).expect("reps");
    assert_eq!(ready_of(&reps, &d.serving_revision), 3);
    // And the autoscaler changed nothing else: no scale history without a policy elsewhere.
    assert_eq!(d.status, S::Running);
}

#[test]
fn a_stable_policy_scales_up_only_after_its_window() {
    use serde_json::json;
    let (w, rt, id) = scaling_world(
        1,
        5,
        Some(json!({"metrics": [{"type": "qps", "value": 10}],
                    "scale_up_behavior": "stable", "scale_up_stabilization_window": 3})),
    );
    rt.set_qps(30.0);
    // The first evaluation with the load is at most one period after it began; the window
    // (3 s) must then have held before scaling.
    let at = when_scale_is(&w, &rt, id, 5_050, 12_000, 3).expect("scaled to 3");
    assert!(at >= 5_050 + 3_000, "scaled before the window: {at}");
    assert!(at <= 5_050 + 1_000 + 3_000 + 50, "scaled late: {at}");
}

#[test]
fn a_disabled_scale_down_keeps_its_replicas_and_bounds_hold() {
    use serde_json::json;
    let (w, rt, id) = scaling_world(
        1,
        4,
        Some(json!({"metrics": [{"type": "qps", "value": 10}],
                    "scale_up_behavior": "fast", "scale_down_behavior": "disabled"})),
    );
    // 1000 requests/s wants 100 replicas: max_replicas (4) bounds it.
    rt.set_qps(1_000.0);
    assert!(when_scale_is(&w, &rt, id, 5_050, 7_000, 4).is_some());
    // Load gone: a disabled scale-down keeps the 4, evaluation after evaluation.
    rt.set_qps(0.0);
    w.run_on(&rt, id, 7_050, 20_000, |_, _| {});
    assert_eq!(scale_of(&w, id), Some(4));
}

#[test]
fn a_stable_scale_down_waits_its_window_and_stops_at_min_replicas() {
    use serde_json::json;
    let (w, rt, id) = scaling_world(
        2,
        5,
        Some(json!({"metrics": [{"type": "qps", "value": 10}],
                    "scale_up_behavior": "fast", "scale_down_stabilization_window": 4})),
    );
    rt.set_qps(50.0);
    assert!(when_scale_is(&w, &rt, id, 5_050, 7_000, 5).is_some());
    rt.set_qps(0.0);
    let at = when_scale_is(&w, &rt, id, 7_050, 20_000, 2).expect("scaled down to min");
    assert!(at >= 7_050 + 4_000, "scaled down before the window: {at}");
}

#[test]
fn without_a_policy_scaling_is_on_in_flight_every_tick_as_before() {
    let (w, rt, id) = scaling_world(1, 4, None);
    // 12 in flight at a target of 4 per replica: 3 at once (no evaluation period).
    rt.set_in_flight(12);
    assert_eq!(when_scale_is(&w, &rt, id, 5_050, 5_050, 3), Some(5_050));
    let history: i64 =
        w.s.with(|c| c.query_row("SELECT COUNT(*) FROM scale_history", [], |r| r.get(0)))
            .expect("count");
    assert_eq!(history, 0, "no policy, no HPA history");
    // The decision is recorded with the built-in metric.
    let events =
        w.s.with(|c| crate::autoscale::events(c, id, 0))
            .expect("events");
    assert_eq!(events.last().map(|e| e.metric.as_str()), Some("in_flight"));
}

#[test]
fn a_scale_up_syncs_as_deploying_while_its_replica_starts() {
    use serde_json::json;
    let (mut w, rt, id) = scaling_world(
        1,
        5,
        Some(json!({"metrics": [{"type": "qps", "value": 10}], "scale_up_behavior": "fast"})),
    );
    w.t.status_sync_ms = 0;
    rt.set_qps(30.0);
    let mut seen: Vec<S> = Vec::new();
    w.run_on(&rt, id, 5_050, 10_000, |d, _| {
        if seen.last() != Some(&d.reported_status) {
            seen.push(d.reported_status);
        }
    });
    // Yatai's getStatusFromK8s: a pending pod is `deploying` (API doc §10).
    assert_eq!(seen, [S::Running, S::Deploying, S::Running], "{seen:?}");
}

#[test]
fn the_api_refuses_what_the_platform_would() {
    use serde_json::json;
    let w = world();
    w.bento("app:v1", Behaviour::default());
    let caller = Caller {
        principal: &w.p,
        auto_register_bentos: false,
    };
    let create = |policy: serde_json::Value| {
        let req = CreateDeploymentRequest {
            name: Some("p".into()),
            dev: false,
            spec: policy_spec(1, 3, Some(policy)),
        };
        w.s.tx(|c| deployments::create(c, &caller, None, req, 0).map(|_| ()))
    };
    let e = create(json!({"metrics": [{"type": "latency", "value": 1}]})).expect_err("type");
    assert!(matches!(e, crate::error::ApiError::BadRequest(_)), "{e:?}");
    assert!(
        e.message().contains("cpu, memory, gpu, qps, queue"),
        "{}",
        e.message()
    );
    let e = create(json!({"metrics": [{"type": "qps", "value": 5}], "scale_up_behavior": "slow"}))
        .expect_err("behaviour");
    assert!(
        e.message().contains("disabled, stable, fast"),
        "{}",
        e.message()
    );
    assert!(create(json!({"metrics": [{"type": "memory", "value": "lots"}]})).is_err());
    assert!(create(json!({"metrics": [{"type": "qps", "value": 5}],
        "scale_down_stabilization_window": 4000}))
    .is_err());
    // A cpu target of 500 % may well be accepted by the platform: so it is here.
    create(json!({"metrics": [{"type": "cpu", "value": 500}]})).expect("accepted");
}

/// [`with_canary`] (version `v2` of `bento`, 1 replica) at `weight`, routed by `route_type`
/// and `route_by`.
fn canary_step(
    bento: &str,
    weight: i64,
    route_type: &str,
    route_by: Option<&str>,
) -> UpdateDeploymentRequest {
    let mut u = with_canary(spec("iris:v1", "RollingUpdate", 1), "v2", bento, 1);
    let c = u.canary.as_mut().expect("canary");
    c.route_type = Some(route_type.into());
    c.route_by = route_by.map(str::to_string);
    for v in c.versions.iter_mut().flat_map(|v| v.values_mut()) {
        v.weight = Some(weight);
    }
    u
}

/// Whole reconciler passes ([`tick`]: reconcile, route, record the routing) every 50 ms from
/// `from` to `to`.
fn ticks(w: &World, from: i64, to: i64) {
    let mut now = from;
    while now <= to {
        tick(&w.s, &w.rt, &w.t, now).expect("tick");
        now += 50;
    }
}

/// `(at_ms, revision, route_type, route_by, weights)` of every routing change in the timeline.
type Step = (
    i64,
    String,
    Option<String>,
    Option<String>,
    Vec<(String, u32)>,
);

fn routing_steps(w: &World, id: i64, now: i64) -> (DeploymentRow, Vec<Step>) {
    let d = w.s.with(|c| store::deployment_by_id(c, id)).expect("read");
    let tl =
        w.s.with(|c| crate::timeline::read(c, &d, now))
            .expect("timeline");
    let steps = tl
        .routing
        .into_iter()
        .map(|r| {
            (
                r.at_ms,
                r.revision_uid,
                r.route_type,
                r.route_by,
                r.weights.into_iter().collect(),
            )
        })
        .collect();
    (d, steps)
}

#[test]
fn the_timeline_records_each_change_of_the_canary_routing_when_the_endpoint_applies_it() {
    let w = world();
    w.bento("iris:v1", Behaviour::default());
    w.bento("iris:v2", Behaviour::default());
    w.bento(
        "iris:never",
        Behaviour {
            unready: true,
            ..Default::default()
        },
    );
    let random = || Some("random".to_string());
    let v2 = |w: u32| vec![("v2".to_string(), w)];

    // A deployment that never had a canary has no routing change.
    let plain = w.create("plain", spec("iris:v1", "RollingUpdate", 1), 0);
    // Canary steps, each an update: 10 %, then 50 %.
    let id = w.create("steps", canary_step("iris:v2", 10, "random", None), 0);
    ticks(&w, 0, 3_000);
    let (d, steps) = routing_steps(&w, id, 3_000);
    assert_eq!(d.phase, Phase::Complete);
    let rev1 = d.serving_revision.clone();
    assert_eq!(steps, [(0, rev1.clone(), random(), None, v2(10))]);
    assert!(routing_steps(&w, plain, 3_000).1.is_empty());

    w.update("steps", canary_step("iris:v2", 50, "random", None), 3_010);
    ticks(&w, 3_050, 6_000);
    let (d, steps) = routing_steps(&w, id, 6_000);
    let rev2 = d.serving_revision.clone();
    assert_ne!(rev2, rev1);
    // Recorded at the first pass after the update: when the endpoint began applying it.
    assert_eq!(steps[1..], [(3_050, rev2.clone(), random(), None, v2(50))]);

    // A redeploy with the same canary changes no routing: nothing recorded.
    w.s.tx(|c| deployments::void_update(c, &w.p, None, "steps", 6_010))
        .expect("void update");
    ticks(&w, 6_050, 9_000);
    let (d, steps) = routing_steps(&w, id, 9_000);
    assert_ne!(d.serving_revision, rev2);
    assert_eq!(steps.len(), 2, "{steps:?}");

    // A step whose canary never gets ready: 80 % while it rolls out, then the serving
    // revision's 50 % again once the rollout failed.
    w.update(
        "steps",
        canary_step("iris:never", 80, "random", None),
        9_010,
    );
    ticks(&w, 9_050, 21_000);
    let (d, steps) = routing_steps(&w, id, 21_000);
    assert_eq!(d.phase, Phase::Failed);
    let failed = d.target_revision.clone();
    let serving = d.serving_revision.clone();
    assert_eq!(steps.len(), 4, "{steps:?}");
    assert_eq!(steps[2], (9_050, failed, random(), None, v2(80)));
    let back = &steps[3];
    assert!(back.0 >= 9_050 + w.t.progress_deadline_ms, "{back:?}");
    assert_eq!(
        (&back.1, &back.2, &back.4),
        (&serving, &random(), &v2(50)),
        "{back:?}"
    );

    // Header routing (the weight no longer matters), then no canary: everything to main.
    w.update(
        "steps",
        canary_step("iris:v2", 50, "header", Some("X-Canary")),
        21_010,
    );
    ticks(&w, 21_050, 24_000);
    w.update("steps", spec("iris:v1", "RollingUpdate", 1), 24_010);
    ticks(&w, 24_050, 27_000);
    let (d, steps) = routing_steps(&w, id, 27_000);
    assert_eq!(d.phase, Phase::Complete);
    assert_eq!(steps.len(), 6, "{steps:?}");
    assert_eq!(
        (&steps[4].0, &steps[4].2, &steps[4].3, &steps[4].4),
        (
            &21_050,
            &Some("header".to_string()),
            &Some("X-Canary".to_string()),
            &v2(50)
        )
    );
    assert_eq!(
        steps[5],
        (24_050, d.serving_revision.clone(), None, None, vec![])
    );
    // Oldest first, and the window of the last rollout does not cut the earlier steps off.
    assert!(steps.windows(2).all(|s| s[0].0 < s[1].0), "{steps:?}");
}

#[test]
fn the_routing_history_keeps_the_latest_changes_only() {
    use crate::split::Split;
    use crate::timeline::{self, MAX_ROUTING};
    let w = world();
    w.bento("iris:v1", Behaviour::default());
    w.bento("iris:v2", Behaviour::default());
    let id = w.create("a", canary_step("iris:v2", 10, "random", None), 0);
    let rev =
        w.s.with(|c| store::deployment_by_id(c, id))
            .expect("read")
            .target_revision;
    let split = |weight: u32| Split {
        by: crate::split::RouteBy::Random,
        weights: vec![("v2".into(), weight)],
    };
    for i in 0..(MAX_ROUTING as i64 + 20) {
        let s = split(u32::try_from(i % 2).expect("small"));
        assert!(w
            .s
            .tx(|c| timeline::record_routing(c, id, &rev, Some(&s), 1_000 + i))
            .expect("record"));
        // The same split again is no change.
        assert!(!w
            .s
            .tx(|c| timeline::record_routing(c, id, &rev, Some(&s), 1_000 + i))
            .expect("record"));
    }
    let kept =
        w.s.with(|c| timeline::routing(c, id, usize::MAX))
            .expect("read");
    assert_eq!(kept.len(), MAX_ROUTING);
    assert_eq!(kept[0].at_ms, 1_020);
    assert_eq!(
        kept.last().map(|r| r.at_ms),
        Some(1_000 + MAX_ROUTING as i64 + 19)
    );
}
