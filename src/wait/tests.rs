//! Tests of the acceptor and the poll loop, on paused time with a scripted source.

use std::sync::{Arc, Mutex};

use super::*;
use crate::api::{KubePod, Revision, POD_BENTO_VERSION_LABEL};
use crate::client::ErrorKind;

fn dep(rev: &str, status: DeploymentStatus) -> Deployment {
    let mut d = Deployment::default();
    d.meta.name = "iris".into();
    d.cluster.meta.name = "local-east".into();
    d.status = status;
    let mut r = Revision::default();
    r.meta.uid = rev.into();
    d.latest_revision = Some(r);
    d
}

/// An update whose response carried `stale` (the previous revision's status).
fn updated(rev: &str, stale: DeploymentStatus) -> Submitted {
    Submitted::updated(&dep(rev, stale))
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn api_err(kind: ErrorKind, status: u16) -> ClientError {
    ClientError::new("get deployment \"iris\"", kind, Some(status), "scripted")
}

/// Answers each fetch with the latest scripted entry whose time has come.
struct Script {
    t0: Instant,
    events: Vec<(u64, Result<Deployment, ClientError>)>,
    fetch_delay: Duration,
    fetches: Mutex<Vec<Duration>>,
}

impl Script {
    fn new(events: Vec<(u64, Result<Deployment, ClientError>)>) -> Script {
        Script {
            t0: Instant::now(),
            events,
            fetch_delay: Duration::ZERO,
            fetches: Mutex::new(Vec::new()),
        }
    }

    fn fetch_count(&self) -> usize {
        self.fetches.lock().expect("lock").len()
    }
}

#[async_trait]
impl DeploymentSource for Script {
    async fn fetch(&self) -> Result<Deployment, ClientError> {
        if !self.fetch_delay.is_zero() {
            tokio::time::sleep(self.fetch_delay).await;
        }
        let now = self.t0.elapsed();
        self.fetches.lock().expect("lock").push(now);
        self.events
            .iter()
            .rev()
            .find(|(at_ms, _)| Duration::from_millis(*at_ms) <= now)
            .map(|(_, r)| r.clone())
            .unwrap_or_else(|| Err(api_err(ErrorKind::NotFound, 404)))
    }
}

fn opts(timeout_secs: u64) -> WaitOptions {
    WaitOptions::new(Duration::from_secs(timeout_secs), CancellationToken::new())
}

#[test]
fn stale_revision_never_counts() {
    for s in DeploymentStatus::ALL {
        let v = classify(&dep("old", s), "new", true);
        assert!(
            matches!(&v, Verdict::Pending { phase } if phase.contains("waiting for revision new")),
            "{s}: {v:?}"
        );
        // Not even once the settle window passed.
        let mut ev = Evidence::new(Submitted::created("new"), secs(1));
        let v = ev.observe(&dep("old", s), secs(100), true);
        assert!(matches!(v, Verdict::Pending { .. }), "{s}: {v:?}");
    }
    let mut none = dep("x", DeploymentStatus::Running);
    none.latest_revision = None;
    assert!(matches!(
        classify(&none, "x", false),
        Verdict::Pending { .. }
    ));
}

#[test]
fn every_status_is_classified() {
    use DeploymentStatus as S;
    for s in S::ALL {
        let v = classify(&dep("r1", s), "r1", false);
        let v_stz = classify(&dep("r1", s), "r1", true);
        match s {
            S::Running => assert_eq!(v, Verdict::Ready),
            S::ScaledToZero => {
                assert_eq!(v_stz, Verdict::Ready);
                assert!(matches!(v, Verdict::Pending { .. }), "{v:?}");
            }
            S::ImageBuildFailed | S::Failed | S::Terminated | S::Terminating => assert_eq!(
                v,
                Verdict::Failed {
                    status: s,
                    reason: format!("BentoCloud reports {s}")
                }
            ),
            S::Unhealthy => assert!(matches!(v, Verdict::Unhealthy { .. })),
            S::Unknown
            | S::NonDeployed
            | S::Deploying
            | S::ImageBuilding
            | S::ImageBuildSucceeded => {
                assert!(s.is_in_progress());
                assert_eq!(
                    v,
                    Verdict::Pending {
                        phase: s.as_str().to_string()
                    }
                )
            }
        }
        assert_eq!(
            s.is_rollout_failure(),
            matches!(s, S::Failed | S::ImageBuildFailed | S::Unhealthy),
            "{s}"
        );
        if !matches!(
            s,
            S::Unknown | S::NonDeployed | S::Deploying | S::ImageBuilding | S::ImageBuildSucceeded
        ) {
            assert!(!s.is_in_progress(), "{s}");
        }
    }
}

#[test]
fn a_stale_running_after_an_update_counts_only_after_the_status_moved_to_in_progress() {
    let mut ev = Evidence::new(updated("r2", DeploymentStatus::Running), secs(120));
    let v = ev.observe(&dep("r2", DeploymentStatus::Running), secs(1), false);
    assert!(
        matches!(&v, Verdict::Pending { phase } if phase.contains("may still describe the previous revision") && phase.contains("status_sync_period (2m0s)")),
        "{v:?}"
    );
    assert_eq!(ev.synced(), None);
    assert_eq!(
        ev.observe(&dep("r2", DeploymentStatus::Deploying), secs(2), false),
        Verdict::Pending {
            phase: "deploying".into()
        }
    );
    assert!(ev
        .synced()
        .is_some_and(|w| w.contains("from running to deploying")));
    assert_eq!(
        ev.observe(&dep("r2", DeploymentStatus::Running), secs(3), false),
        Verdict::Ready
    );
}

#[test]
fn a_failure_left_by_the_previous_attempt_is_not_the_new_revisions_verdict() {
    for stale in [
        DeploymentStatus::Failed,
        DeploymentStatus::Unhealthy,
        DeploymentStatus::ImageBuildFailed,
    ] {
        let mut ev = Evidence::new(updated("fix", stale), secs(10));
        let v = ev.observe(&dep("fix", stale), secs(1), false);
        assert!(matches!(v, Verdict::Pending { .. }), "{stale}: {v:?}");
        // A change to `running` alone proves nothing (it may come from a sync that started
        // before the submit), so it waits for the settle window.
        let v = ev.observe(&dep("fix", DeploymentStatus::Running), secs(5), false);
        assert!(matches!(v, Verdict::Pending { .. }), "{stale}: {v:?}");
        assert_eq!(
            ev.observe(&dep("fix", DeploymentStatus::Running), secs(10), false),
            Verdict::Ready
        );
    }
    // A fresh failure after a visible sync is the new revision's.
    let mut ev = Evidence::new(updated("bad", DeploymentStatus::Failed), secs(120));
    ev.observe(&dep("bad", DeploymentStatus::Deploying), secs(1), false);
    assert!(matches!(
        ev.observe(&dep("bad", DeploymentStatus::Failed), secs(2), false),
        Verdict::Failed { .. }
    ));
}

#[test]
fn the_settle_window_judges_changes_that_finish_between_two_syncs() {
    let mut ev = Evidence::new(updated("r2", DeploymentStatus::Running), secs(120));
    assert!(matches!(
        ev.observe(
            &dep("r2", DeploymentStatus::Running),
            Duration::from_millis(119_999),
            false
        ),
        Verdict::Pending { .. }
    ));
    assert_eq!(
        ev.observe(&dep("r2", DeploymentStatus::Running), secs(120), false),
        Verdict::Ready
    );
    assert!(ev
        .synced()
        .is_some_and(|w| w.contains("status_sync_period (2m0s)")));
    let mut ev = Evidence::new(updated("r2", DeploymentStatus::Running), secs(3));
    assert!(matches!(
        ev.observe(&dep("r2", DeploymentStatus::Failed), secs(3), false),
        Verdict::Failed { .. }
    ));
}

#[test]
fn leaving_an_in_progress_status_is_not_evidence() {
    // The previous rollout was still running when this one was submitted: its `running` may be
    // the old rollout finishing, and `deploying` does not show a new sync either.
    let mut ev = Evidence::new(updated("r3", DeploymentStatus::Deploying), secs(30));
    for (status, at) in [
        (DeploymentStatus::Running, 5),
        (DeploymentStatus::Deploying, 6),
        (DeploymentStatus::Running, 29),
    ] {
        let v = ev.observe(&dep("r3", status), secs(at), false);
        assert!(matches!(v, Verdict::Pending { .. }), "{status}@{at}: {v:?}");
    }
    assert_eq!(
        ev.observe(&dep("r3", DeploymentStatus::Running), secs(30), false),
        Verdict::Ready
    );
}

#[test]
fn a_created_deployment_trusts_its_statuses_at_once() {
    let mut ev = Evidence::new(Submitted::created("r1"), secs(120));
    assert!(ev.synced().is_some());
    assert_eq!(
        ev.observe(&dep("r1", DeploymentStatus::Running), secs(0), false),
        Verdict::Ready
    );
    let mut ev = Evidence::new(Submitted::created("r1"), secs(120));
    assert!(matches!(
        ev.observe(&dep("r1", DeploymentStatus::Failed), secs(0), false),
        Verdict::Failed { .. }
    ));
}

#[tokio::test(start_paused = true)]
async fn stale_running_is_not_success_in_the_loop() {
    let src = Script::new(vec![
        (0, Ok(dep("old", DeploymentStatus::Running))),
        (2_000, Ok(dep("new", DeploymentStatus::Running))),
        (3_000, Ok(dep("new", DeploymentStatus::Deploying))),
        (6_000, Ok(dep("new", DeploymentStatus::Running))),
    ]);
    let t0 = Instant::now();
    let d = wait_for_revision(
        &src,
        &updated("new", DeploymentStatus::Running),
        false,
        &opts(60),
    )
    .await
    .expect("ready");
    assert_eq!(d.revision_uid(), Some("new"));
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_secs(6)
            && took <= Duration::from_secs(6) + POLL_INTERVAL + POLL_JITTER,
        "{took:?}"
    );

    // Never a visible sync: ready only once the settle window passed.
    let src = Script::new(vec![(0, Ok(dep("new", DeploymentStatus::Running)))]);
    let mut o = opts(60);
    o.status_sync_period = secs(7);
    let t0 = Instant::now();
    wait_for_revision(&src, &updated("new", DeploymentStatus::Running), false, &o)
        .await
        .expect("ready after the settle window");
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_secs(7) && took <= Duration::from_millis(7_525),
        "{took:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn unhealthy_fails_only_after_the_grace_window() {
    let src = Script::new(vec![(0, Ok(dep("r1", DeploymentStatus::Unhealthy)))]);
    let t0 = Instant::now();
    let e = wait_for_revision(&src, &Submitted::created("r1"), false, &opts(600))
        .await
        .expect_err("unhealthy too long");
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_secs(60)
            && took <= Duration::from_secs(60) + POLL_INTERVAL + POLL_JITTER,
        "{took:?}"
    );
    assert!(
        matches!(
            &e,
            WaitError::Failed {
                status: DeploymentStatus::Unhealthy,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(e.to_string().contains("unhealthy"), "{e}");

    // Unhealthy for a while, then recovered: success.
    let src = Script::new(vec![
        (0, Ok(dep("r1", DeploymentStatus::Unhealthy))),
        (40_000, Ok(dep("r1", DeploymentStatus::Deploying))),
        (45_000, Ok(dep("r1", DeploymentStatus::Unhealthy))),
        (90_000, Ok(dep("r1", DeploymentStatus::Running))),
    ]);
    wait_for_revision(&src, &Submitted::created("r1"), false, &opts(600))
        .await
        .expect("the grace restarts after a healthy phase");
}

#[tokio::test(start_paused = true)]
async fn failure_statuses_end_the_wait_at_once() {
    let src = Script::new(vec![
        (0, Ok(dep("r1", DeploymentStatus::ImageBuilding))),
        (2_000, Ok(dep("r1", DeploymentStatus::ImageBuildFailed))),
    ]);
    let t0 = Instant::now();
    let e = wait_for_revision(&src, &Submitted::created("r1"), false, &opts(600))
        .await
        .expect_err("failed");
    assert!(t0.elapsed() <= Duration::from_secs(2) + POLL_INTERVAL + POLL_JITTER);
    let WaitError::Failed {
        status,
        reason,
        last,
    } = &e
    else {
        panic!("{e:?}");
    };
    assert_eq!(*status, DeploymentStatus::ImageBuildFailed);
    assert_eq!(reason, "BentoCloud reports image-build-failed");
    assert_eq!(last.meta.name, "iris");
    let shown = e.to_string();
    assert!(
        shown.contains("local-east/iris") && shown.contains("image-build-failed"),
        "{shown}"
    );
    assert!(shown.contains("terraform apply"), "{shown}");
}

#[tokio::test(start_paused = true)]
async fn transient_errors_are_tolerated_until_the_deadline() {
    let src = Script::new(vec![
        (0, Err(api_err(ErrorKind::NotFound, 404))),
        (2_000, Err(api_err(ErrorKind::Server, 503))),
        (4_000, Err(api_err(ErrorKind::RateLimited, 429))),
        (
            6_000,
            Err(ClientError::new("get", ErrorKind::Transport, None, "reset")),
        ),
        (8_000, Ok(dep("r1", DeploymentStatus::Deploying))),
        (10_000, Ok(dep("r1", DeploymentStatus::Running))),
    ]);
    wait_for_revision(&src, &Submitted::created("r1"), false, &opts(60))
        .await
        .expect("tolerated");

    // Tolerated until the deadline, not beyond: errors that never stop end in a timeout that
    // says nothing could be read, at the deadline, after backing off (not a poll per 500 ms).
    let src = Script::new(vec![(0, Err(api_err(ErrorKind::Server, 503)))]);
    let t0 = Instant::now();
    let e = wait_for_revision(&src, &Submitted::created("r1"), false, &opts(30))
        .await
        .expect_err("errors past the deadline");
    assert_eq!(t0.elapsed(), Duration::from_secs(30));
    assert!(
        matches!(&e, WaitError::TimedOut { last: None, .. }),
        "{e:?}"
    );
    assert!(e.to_string().contains("no status could be read"), "{e}");
    let polls = src.fetch_count();
    assert!(
        (6..=20).contains(&polls),
        "backs off to at most one poll per 5 s: {polls} polls in 30 s"
    );
}

#[tokio::test(start_paused = true)]
async fn permanent_errors_end_the_wait() {
    let src = Script::new(vec![(0, Err(api_err(ErrorKind::Unauthorized, 401)))]);
    let e = wait_for_revision(&src, &Submitted::created("r1"), false, &opts(60))
        .await
        .expect_err("401");
    assert!(
        matches!(&e, WaitError::Api(c) if c.kind == ErrorKind::Unauthorized),
        "{e:?}"
    );
    assert_eq!(src.fetch_count(), 1);
    assert!(e.to_string().contains("HTTP 401"), "{e}");

    // Not found is tolerated only at first.
    let src = Script::new(vec![
        (0, Ok(dep("r1", DeploymentStatus::Deploying))),
        (40_000, Err(api_err(ErrorKind::NotFound, 404))),
    ]);
    let t0 = Instant::now();
    let e = wait_for_revision(&src, &Submitted::created("r1"), false, &opts(600))
        .await
        .expect_err("gone");
    assert!(matches!(&e, WaitError::Api(c) if c.is_not_found()), "{e:?}");
    // The 404 comes at 40 s; the poll that sees it is at most one interval plus jitter later.
    assert!(t0.elapsed() <= Duration::from_millis(40_000) + POLL_INTERVAL + POLL_JITTER);
}

#[tokio::test(start_paused = true)]
async fn timeout_says_the_rollout_continues_and_how_to_resume() {
    let src = Script::new(vec![(
        0,
        Ok(dep("r1abcdef99", DeploymentStatus::Deploying)),
    )]);
    let t0 = Instant::now();
    let e = wait_for_revision(&src, &Submitted::created("r1abcdef99"), false, &opts(10))
        .await
        .expect_err("timeout");
    assert_eq!(t0.elapsed(), Duration::from_secs(10));
    let WaitError::TimedOut {
        last,
        waited,
        pending,
    } = &e
    else {
        panic!("{e:?}");
    };
    assert_eq!(*waited, Duration::from_secs(10));
    assert!(last.is_some());
    assert_eq!(pending, "deploying");
    let shown = e.to_string();
    for part in [
        "timed out after 10s",
        "local-east/iris",
        "last status deploying",
        "revision r1abcdef",
        "server-side",
        "terraform apply",
        "timeouts.update",
    ] {
        assert!(shown.contains(part), "missing {part:?} in {shown}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_timeout_without_evidence_says_what_was_seen_and_what_was_missing() {
    let src = Script::new(vec![(0, Ok(dep("r2", DeploymentStatus::Running)))]);
    let e = wait_for_revision(
        &src,
        &updated("r2", DeploymentStatus::Running),
        false,
        &opts(10),
    )
    .await
    .expect_err("no evidence within the deadline");
    let shown = e.to_string();
    for part in [
        "last status running (revision r2)",
        "still missing",
        "may still describe the previous revision",
        "status_sync_period (2m0s)",
    ] {
        assert!(shown.contains(part), "missing {part:?} in {shown}");
    }
}

#[tokio::test(start_paused = true)]
async fn cancellation_stops_the_wait_promptly_with_the_last_deployment() {
    let cancel = CancellationToken::new();
    let mut o = opts(600);
    o.cancel = cancel.clone();
    let src = Script::new(vec![(0, Ok(dep("r1", DeploymentStatus::Deploying)))]);
    let c = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(3_030)).await;
        c.cancel();
    });
    let t0 = Instant::now();
    let e = wait_for_revision(&src, &Submitted::created("r1"), false, &o)
        .await
        .expect_err("cancelled");
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_millis(3_030) && took <= Duration::from_millis(3_130),
        "{took:?}"
    );
    assert!(
        matches!(&e, WaitError::Cancelled { last: Some(d) } if d.meta.name == "iris"),
        "{e:?}"
    );
    assert!(e.to_string().contains("terraform apply"), "{e}");

    // Also while a fetch hangs (e.g. the client is retrying inside).
    let cancel = CancellationToken::new();
    let mut o = opts(600);
    o.cancel = cancel.clone();
    let mut slow = Script::new(vec![(0, Ok(dep("r1", DeploymentStatus::Deploying)))]);
    slow.fetch_delay = Duration::from_secs(30);
    let c = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(1)).await;
        c.cancel();
    });
    let t0 = Instant::now();
    let e = wait_for_revision(&slow, &Submitted::created("r1"), false, &o)
        .await
        .expect_err("cancelled");
    assert!(t0.elapsed() <= Duration::from_millis(1_100));
    assert!(matches!(e, WaitError::Cancelled { last: None }));
}

#[tokio::test(start_paused = true)]
async fn polls_at_about_two_per_second_and_notices_completion_within_half_a_second() {
    let src = Script::new(vec![
        (0, Ok(dep("r1", DeploymentStatus::Deploying))),
        (10_000, Ok(dep("r1", DeploymentStatus::Running))),
    ]);
    let t0 = Instant::now();
    wait_for_revision(&src, &Submitted::created("r1"), false, &opts(60))
        .await
        .expect("ready");
    let noticed = t0.elapsed();
    assert!(noticed >= Duration::from_secs(10), "{noticed:?}");
    assert!(noticed <= Duration::from_millis(10_525), "{noticed:?}");
    let polls = src.fetch_count();
    // At most 2 per second over the wait (plus the immediate first check).
    assert!(polls <= 21, "{polls} polls");
    assert!(polls >= 19, "{polls} polls");
    let times = src.fetches.lock().expect("lock").clone();
    assert_eq!(times[0], Duration::ZERO, "checks at once");
    for w in times.windows(2) {
        let gap = w[1] - w[0];
        assert!(
            gap >= Duration::from_millis(500) && gap <= Duration::from_millis(525),
            "{gap:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn min_interval_is_a_floor() {
    let mut o = opts(5);
    o.min_interval = Duration::from_secs(1);
    let src = Script::new(vec![(0, Ok(dep("r1", DeploymentStatus::Deploying)))]);
    let _ = wait_for_revision(&src, &Submitted::created("r1"), false, &o).await;
    assert!(src.fetch_count() <= 6, "{}", src.fetch_count());
}

#[tokio::test(start_paused = true)]
async fn terminated_or_gone_ends_the_termination_wait() {
    let src = Script::new(vec![
        (0, Ok(dep("r1", DeploymentStatus::Terminating))),
        (2_000, Ok(dep("r1", DeploymentStatus::Terminated))),
    ]);
    wait_for_terminated(&src, &opts(60))
        .await
        .expect("terminated");
    let src = Script::new(vec![
        (0, Ok(dep("r1", DeploymentStatus::Terminating))),
        (2_000, Err(api_err(ErrorKind::NotFound, 404))),
    ]);
    wait_for_terminated(&src, &opts(60)).await.expect("gone");
    let src = Script::new(vec![(0, Ok(dep("r1", DeploymentStatus::Terminating)))]);
    let e = wait_for_terminated(&src, &opts(5))
        .await
        .expect_err("timeout");
    assert!(matches!(e, WaitError::TimedOut { .. }));
    // Another error is not taken for "gone": a permanent one ends the wait as an error.
    let src = Script::new(vec![
        (0, Ok(dep("r1", DeploymentStatus::Terminating))),
        (2_000, Err(api_err(ErrorKind::Unauthorized, 401))),
    ]);
    let e = wait_for_terminated(&src, &opts(60))
        .await
        .expect_err("401 is not gone");
    assert!(
        matches!(&e, WaitError::Api(c) if c.kind == ErrorKind::Unauthorized),
        "{e:?}"
    );
}

fn pod(name: &str, version: &str, ready: bool, warnings: &[(&str, &str)]) -> KubePod {
    let mut p = KubePod {
        name: name.into(),
        ..Default::default()
    };
    p.labels
        .insert(POD_BENTO_VERSION_LABEL.to_string(), version.to_string());
    p.status.ready = ready;
    p.status.phase = "Running".into();
    p.warnings = (!warnings.is_empty()).then(|| {
        warnings
            .iter()
            .map(|(r, m)| crate::api::KubeEvent {
                reason: r.to_string(),
                message: m.to_string(),
            })
            .collect()
    });
    p
}

#[test]
fn pods_give_the_reason_of_a_failure_new_bento_first() {
    let pods = vec![
        pod("old-1", "v1", true, &[]),
        pod("old-2", "v1", false, &[("BackOff", "old crash")]),
        pod(
            "new-1",
            "v2",
            false,
            &[("Unhealthy", "Readiness probe failed: 503")],
        ),
    ];
    let r = pods_reason(&pods, Some("v2")).expect("a reason");
    assert_eq!(
        r,
        "pod new-1 (bento version v2) is not ready: Unhealthy: Readiness probe failed: 503"
    );
    // Without the new bento's pods, any unready pod speaks.
    let r = pods_reason(&pods, Some("v9")).expect("a reason");
    assert!(r.contains("old-2") && r.contains("new-1"), "{r}");
    assert!(!r.contains("old-1"), "ready pods say nothing: {r}");
    // A pod without events still says it is not ready.
    let r = pods_reason(&[pod("p", "v2", false, &[])], None).expect("a reason");
    assert_eq!(r, "pod p (bento version v2) is not ready (phase Running)");
    assert_eq!(pods_reason(&[pod("ok", "v2", true, &[])], Some("v2")), None);
    assert_eq!(pods_reason(&[], None), None);
}

/// A scripted source whose pods say why.
struct WithPods(Script, Vec<KubePod>);

#[async_trait]
impl DeploymentSource for WithPods {
    async fn fetch(&self) -> Result<Deployment, ClientError> {
        self.0.fetch().await
    }
    async fn pods(&self) -> Option<Vec<KubePod>> {
        Some(self.1.clone())
    }
}

#[tokio::test(start_paused = true)]
async fn a_failure_carries_the_pods_reason() {
    let src = WithPods(
        Script::new(vec![(0, Ok(dep("r1", DeploymentStatus::Failed)))]),
        vec![pod("p1", "v2", false, &[("Unhealthy", "probe failed")])],
    );
    let e = wait_for_revision(&src, &Submitted::created("r1"), false, &opts(60))
        .await
        .expect_err("failed");
    let shown = e.to_string();
    assert!(
        shown.contains("BentoCloud reports failed; pod p1") && shown.contains("probe failed"),
        "{shown}"
    );
}

#[test]
fn pods_of_another_bento_contradict_running_unless_canary_or_terminating() {
    let mut canary = pod("c1", "v9", true, &[]);
    canary.status.is_canary = true;
    let mut leaving = pod("old-2", "v1", true, &[]);
    leaving.pod_status = Some(crate::api::KubePodRuntime {
        status: "Terminating".into(),
        phase: "Running".into(),
    });
    let settled = vec![pod("new-1", "v2", true, &[]), canary, leaving];
    assert_eq!(pods_serving_another_bento(&settled, "v2"), None);
    let mut mixed = settled.clone();
    mixed.push(pod("old-1", "v1", true, &[]));
    let why = pods_serving_another_bento(&mixed, "v2").expect("old pod serves");
    assert!(
        why.contains("old-1 (bento version v1)") && !why.contains("old-2"),
        "{why}"
    );
    // An unready old pod serves nothing; a pod without the label says nothing.
    let mut quiet = pod("x", "v1", false, &[]);
    quiet.labels.clear();
    assert_eq!(
        pods_serving_another_bento(&[pod("old-3", "v1", false, &[]), quiet], "v2"),
        None
    );
}

/// A scripted source whose pods change over time too.
struct PodsOverTime(Script, Vec<(u64, Vec<KubePod>)>);

#[async_trait]
impl DeploymentSource for PodsOverTime {
    async fn fetch(&self) -> Result<Deployment, ClientError> {
        self.0.fetch().await
    }
    async fn pods(&self) -> Option<Vec<KubePod>> {
        let now = self.0.t0.elapsed();
        self.1
            .iter()
            .rev()
            .find(|(at, _)| Duration::from_millis(*at) <= now)
            .map(|(_, p)| p.clone())
    }
}

fn with_bento(mut d: Deployment, version: &str) -> Deployment {
    let mut t = crate::api::Target::default();
    t.meta.name = "main".into();
    t.bento = Some(crate::api::Bento {
        version: version.into(),
        ..Default::default()
    });
    if let Some(r) = d.latest_revision.as_mut() {
        r.targets = vec![Some(t)];
    }
    d
}

#[tokio::test(start_paused = true)]
async fn running_waits_until_no_pod_of_the_old_bento_serves() {
    let running = with_bento(dep("r2", DeploymentStatus::Running), "v2");
    let src = PodsOverTime(
        Script::new(vec![(0, Ok(running))]),
        vec![
            (
                0,
                vec![pod("new-1", "v2", true, &[]), pod("old-1", "v1", true, &[])],
            ),
            (
                4_000,
                vec![pod("new-1", "v2", true, &[]), pod("new-2", "v2", true, &[])],
            ),
        ],
    );
    let t0 = Instant::now();
    let d = wait_for_revision(&src, &Submitted::created("r2"), false, &opts(60))
        .await
        .expect("ready once the old pod is gone");
    assert_eq!(d.revision_uid(), Some("r2"));
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_secs(4) && took <= Duration::from_millis(4_525),
        "{took:?}"
    );
    // Timing out meanwhile says which pod still serves.
    let running = with_bento(dep("r2", DeploymentStatus::Running), "v2");
    let src = PodsOverTime(
        Script::new(vec![(0, Ok(running))]),
        vec![(0, vec![pod("old-1", "v1", true, &[])])],
    );
    let e = wait_for_revision(&src, &Submitted::created("r2"), false, &opts(5))
        .await
        .expect_err("old pod serves past the deadline");
    assert!(e.to_string().contains("old-1 (bento version v1)"), "{e}");
}

#[test]
fn wait_errors_keep_the_last_deployment_and_only_api_errors_have_a_source() {
    use std::error::Error as _;
    let d = dep("r1", DeploymentStatus::Deploying);
    let read = [
        WaitError::Failed {
            status: DeploymentStatus::Failed,
            reason: "BentoCloud reports failed".into(),
            last: Box::new(d.clone()),
        },
        WaitError::TimedOut {
            last: Some(Box::new(d.clone())),
            waited: secs(10),
            pending: "deploying".into(),
        },
        WaitError::Cancelled {
            last: Some(Box::new(d.clone())),
        },
    ];
    for e in &read {
        assert_eq!(e.last(), Some(&d), "{e:?}");
        assert!(e.source().is_none(), "{e:?}");
    }
    let nothing_read = [
        WaitError::TimedOut {
            last: None,
            waited: secs(10),
            pending: String::new(),
        },
        WaitError::Cancelled { last: None },
        WaitError::Api(api_err(ErrorKind::Unauthorized, 401)),
    ];
    for e in &nothing_read {
        assert_eq!(e.last(), None, "{e:?}");
    }
    let source = nothing_read[2].source().expect("the client's error");
    assert_eq!(
        source.to_string(),
        api_err(ErrorKind::Unauthorized, 401).to_string()
    );
}

#[test]
fn a_timeout_names_what_is_still_missing_only_when_something_is() {
    let shown = |pending: &str| {
        WaitError::TimedOut {
            last: None,
            waited: secs(10),
            pending: pending.into(),
        }
        .to_string()
    };
    let nothing = shown("");
    assert!(
        nothing.contains("no status could be read. BentoCloud continues"),
        "{nothing}"
    );
    assert!(!nothing.contains("still missing"), "{nothing}");
    let phase = shown("deploying");
    assert!(
        phase.contains("no status could be read; still missing: deploying. BentoCloud continues"),
        "{phase}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_source_that_cannot_list_pods_leaves_the_reason_to_the_status() {
    // `Script` keeps the trait's default `pods`: nothing to add to the status's reason.
    let src = Script::new(vec![(0, Ok(dep("r1", DeploymentStatus::Failed)))]);
    let e = wait_for_revision(&src, &Submitted::created("r1"), false, &opts(60))
        .await
        .expect_err("failed");
    assert!(
        matches!(&e, WaitError::Failed { reason, .. } if reason == "BentoCloud reports failed"),
        "{e:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn not_found_is_tolerated_for_the_grace_period_from_the_start_and_no_longer() {
    // A fetch that hangs stands in for the time passing: its 404 comes just before the grace
    // period ends, so the wait reads again (and the deployment is there by then).
    let mut src = Script::new(vec![
        (0, Err(api_err(ErrorKind::NotFound, 404))),
        (30_000, Ok(dep("r1", DeploymentStatus::Running))),
    ]);
    src.fetch_delay = NOT_FOUND_GRACE - Duration::from_millis(1);
    wait_for_revision(&src, &Submitted::created("r1"), false, &opts(600))
        .await
        .expect("a 404 within the grace period is tolerated");
    assert_eq!(src.fetch_count(), 2);

    // A 404 read when the grace period has just ended ends the wait, without another read.
    let mut src = Script::new(vec![(0, Err(api_err(ErrorKind::NotFound, 404)))]);
    src.fetch_delay = NOT_FOUND_GRACE;
    let t0 = Instant::now();
    let e = wait_for_revision(&src, &Submitted::created("r1"), false, &opts(600))
        .await
        .expect_err("a 404 at the end of the grace period");
    assert!(matches!(&e, WaitError::Api(c) if c.is_not_found()), "{e:?}");
    assert_eq!(t0.elapsed(), NOT_FOUND_GRACE);
    assert_eq!(src.fetch_count(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_timeout_too_large_for_the_clock_means_no_practical_deadline() {
    // `Duration::MAX` cannot be added to an instant: the wait falls back to a deadline a
    // century away. One fetch that hangs for 400 days stands in for a very long rollout
    // (without polling 70 million times).
    let mut o = opts(0);
    o.timeout = Duration::MAX;
    let mut src = Script::new(vec![(0, Ok(dep("r1", DeploymentStatus::Running)))]);
    src.fetch_delay = secs(400 * 24 * 3600);
    let t0 = Instant::now();
    wait_for_revision(&src, &Submitted::created("r1"), false, &o)
        .await
        .expect("no deadline within 400 days");
    assert_eq!(t0.elapsed(), src.fetch_delay);
}

/// Records the messages of the events of target `bentocloud::wait` while it is the default
/// subscriber of the test's thread.
#[derive(Debug, Clone, Default)]
struct Logged(Arc<Mutex<Vec<String>>>);

impl Logged {
    /// How many logged messages contain `part`.
    fn count(&self, part: &str) -> usize {
        self.0
            .lock()
            .expect("lock")
            .iter()
            .filter(|m| m.contains(part))
            .count()
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Logged {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        struct Message(String);
        impl tracing::field::Visit for Message {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                if field.name() == "message" {
                    self.0 = format!("{value:?}");
                }
            }
        }
        if event.metadata().target() != LOG {
            return;
        }
        let mut m = Message(String::new());
        event.record(&mut m);
        self.0.lock().expect("lock").push(m.0);
    }
}

/// The global subscriber of the lib tests: interested "sometimes" in every callsite, enabling
/// nothing itself. tracing caches per callsite whether any subscriber is interested; a callsite
/// first hit by a test on another thread, while no subscriber cares, can be cached as "never"
/// even as [`capture_logs`] installs its thread-local subscriber (a race seen about one run in
/// five). With this one always asking, every event checks the current subscriber.
struct AskEveryTime;

impl tracing::Subscriber for AskEveryTime {
    fn register_callsite(
        &self,
        _: &'static tracing::Metadata<'static>,
    ) -> tracing::subscriber::Interest {
        tracing::subscriber::Interest::sometimes()
    }
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        false
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, _: &tracing::Event<'_>) {}
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

/// The `bentocloud::wait` messages logged on this thread while the guard lives.
fn capture_logs() -> (Logged, tracing::subscriber::DefaultGuard) {
    use tracing_subscriber::layer::SubscriberExt;
    static GLOBAL: std::sync::Once = std::sync::Once::new();
    GLOBAL.call_once(|| {
        let _ = tracing::subscriber::set_global_default(AskEveryTime);
    });
    let logged = Logged::default();
    let guard =
        tracing::subscriber::set_default(tracing_subscriber::registry().with(logged.clone()));
    (logged, guard)
}

#[tokio::test(start_paused = true)]
async fn progress_is_logged_once_per_change_not_once_per_poll() {
    let (logged, _default) = capture_logs();
    let src = PodsOverTime(
        Script::new(vec![
            (
                0,
                Ok(with_bento(dep("r2", DeploymentStatus::Deploying), "v2")),
            ),
            (
                2_000,
                Ok(with_bento(dep("r2", DeploymentStatus::Running), "v2")),
            ),
        ]),
        vec![
            (
                0,
                vec![pod("new-1", "v2", true, &[]), pod("old-1", "v1", true, &[])],
            ),
            (4_000, vec![pod("new-1", "v2", true, &[])]),
        ],
    );
    wait_for_revision(&src, &Submitted::created("r2"), false, &opts(60))
        .await
        .expect("ready once the old pod is gone");
    let polls = src.0.fetch_count();
    assert!(polls >= 8, "{polls} polls");
    for line in [
        "deployment local-east/iris revision r2: deploying",
        "deployment local-east/iris revision r2: running",
        "pods of another bento still serve: old-1 (bento version v1)",
    ] {
        assert_eq!(logged.count(line), 1, "{line:?} in {logged:?}");
    }
}

/// A client of `url` that sends each request once.
fn client_of(url: &url::Url) -> Client {
    let mut cfg = crate::client::ClientConfig::new(url.clone(), "tok");
    cfg.max_retries = 0;
    cfg.requests_per_second = 0.0;
    Client::new(cfg).expect("client")
}

#[tokio::test]
async fn client_sources_read_the_named_deployment_in_its_cluster() {
    use crate::client::stub::{serve, StubRequest, StubResponse};
    // The stub answers with a deployment named after the path and the `cluster` parameter.
    let stub = serve(|req: StubRequest| async move {
        let mut d = dep("r1", DeploymentStatus::Running);
        d.cluster.meta.name = req.param("cluster").unwrap_or_default();
        d.meta.name = req.path.rsplit('/').next().unwrap_or_default().to_string();
        StubResponse::json(200, d)
    })
    .await;
    let client = client_of(&stub.url);
    let d = ClientSource::new(client.clone(), "east", "iris")
        .fetch()
        .await
        .expect("read");
    assert_eq!(who(Some(&d)), "east/iris");
    let d = (client, "west".to_string(), "sentiment".to_string())
        .fetch()
        .await
        .expect("read");
    assert_eq!(who(Some(&d)), "west/sentiment");
    let asked: Vec<String> = stub
        .requests()
        .iter()
        .map(|r| format!("{} {}?{}", r.method, r.path, r.query))
        .collect();
    assert_eq!(
        asked,
        [
            "GET /api/v2/deployments/iris?cluster=east",
            "GET /api/v2/deployments/sentiment?cluster=west"
        ]
    );
}

/// Records the URI of a WebSocket handshake (its error type is tungstenite's to choose).
struct RecordUri(Arc<Mutex<Vec<String>>>);

impl tokio_tungstenite::tungstenite::handshake::server::Callback for RecordUri {
    fn on_request(
        self,
        request: &tokio_tungstenite::tungstenite::handshake::server::Request,
        response: tokio_tungstenite::tungstenite::handshake::server::Response,
    ) -> Result<
        tokio_tungstenite::tungstenite::handshake::server::Response,
        tokio_tungstenite::tungstenite::handshake::server::ErrorResponse,
    > {
        self.0.lock().expect("lock").push(request.uri().to_string());
        Ok(response)
    }
}

/// A pods stream: every connection gets `frame` as its one WebSocket text message. Returns
/// the endpoint and the request URIs seen.
async fn pods_stream(
    frame: crate::api::PodsFrame,
) -> (
    url::Url,
    Arc<Mutex<Vec<String>>>,
    tokio::task::JoinHandle<()>,
) {
    use futures::SinkExt;
    use tokio_tungstenite::tungstenite::Message;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url =
        url::Url::parse(&format!("http://{}/", listener.local_addr().expect("addr"))).expect("url");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let text = serde_json::to_string(&frame).expect("json");
    let uris = seen.clone();
    let server = tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (text, record) = (text.clone(), RecordUri(uris.clone()));
            tokio::spawn(async move {
                if let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(tcp, record).await {
                    let _ = ws.send(Message::Text(text)).await;
                    let _ = ws.close(None).await;
                }
            });
        }
    });
    (url, seen, server)
}

#[tokio::test]
async fn a_client_source_reads_the_pods_stream_and_gives_none_when_it_cannot() {
    let pods = vec![
        pod(
            "new-1",
            "v2",
            false,
            &[("Unhealthy", "Readiness probe failed")],
        ),
        pod("old-1", "v1", true, &[]),
    ];
    let (url, seen, server) = pods_stream(crate::api::PodsFrame {
        kind: "success".into(),
        message: String::new(),
        payload: Some(pods.clone()),
    })
    .await;
    let src = ClientSource::new(client_of(&url), "east", "iris");
    assert_eq!(src.pods().await, Some(pods));
    assert_eq!(
        *seen.lock().expect("lock"),
        ["/ws/v2/deployments/iris/pods?organization_name=&cluster=east"]
    );
    server.abort();

    // A stream that reports an error gives no pods: the status alone explains a failure.
    let (url, _, server) = pods_stream(crate::api::PodsFrame {
        kind: "error".into(),
        message: "no such deployment".into(),
        payload: None,
    })
    .await;
    let src = ClientSource::new(client_of(&url), "east", "iris");
    assert_eq!(src.pods().await, None);
    server.abort();
}
