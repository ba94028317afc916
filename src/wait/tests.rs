//! Tests of the acceptor and the poll loop, on paused time with a scripted source.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::*;
use crate::api::{Deployment, DeploymentStatus, KubePod, Revision, POD_BENTO_VERSION_LABEL};
use crate::client::{Client, ClientError, ErrorKind};

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

/// The wait after an update to revision `r2` whose response carried `running` (the previous
/// revision's status).
async fn wait_r2(src: &impl DeploymentSource, o: &WaitOptions) -> Result<Deployment, WaitError> {
    wait_for_revision(src, &updated("r2", DeploymentStatus::Running), false, o).await
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
    let e = wait_r2(&src, &opts(10))
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

#[test]
fn the_default_min_interval_is_the_poll_interval() {
    // A default below POLL_INTERVAL would be a floor that never acts, one above it would slow
    // every wait: it is the floor the loop keeps anyway.
    let o = WaitOptions::default();
    assert_eq!(o.min_interval, POLL_INTERVAL);
    assert_eq!(opts(60).min_interval, POLL_INTERVAL);
    for errors in [0, 0, 0, 1, 3] {
        let i = o.interval(errors);
        assert!(i >= POLL_INTERVAL, "{i:?}");
        if errors == 0 {
            assert!(i <= POLL_INTERVAL + POLL_JITTER, "{i:?}");
        }
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
            (8_000, vec![pod("new-1", "v2", true, &[])]),
        ],
    );
    wait_for_revision(&src, &Submitted::created("r2"), false, &opts(60))
        .await
        .expect("ready once the old pod is gone");
    // Polls that read the pods come once a second (a GET and a pods read each).
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
    let d = ClientSource::new(client, "west", "sentiment")
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

// ------------------------------------------------------------------------------------------
// The pods rule (`judge_pods`) and the waits it ends
// ------------------------------------------------------------------------------------------

/// The revision's `created_at` in the pods tests (server time, milliseconds).
const CREATED: &str = "2026-01-01T10:00:00.500Z";
/// A start before the revision.
const BEFORE: &str = "2026-01-01T09:59:00Z";
/// A start after the revision.
const AFTER: &str = "2026-01-01T10:00:03Z";

/// A pod of the `main` target: bento `version`, started at `start`, ready or not, of
/// `service` (the per-service label) when given.
fn spod(name: &str, version: &str, start: &str, ready: bool, service: Option<&str>) -> KubePod {
    let mut p = pod(name, version, ready, &[]);
    p.status.start_time = Some(start.to_string());
    if let Some(s) = service {
        p.labels
            .insert(POD_SERVICE_LABEL.to_string(), s.to_string());
    }
    p
}

fn terminating(mut p: KubePod) -> KubePod {
    p.pod_status = Some(crate::api::KubePodRuntime {
        status: "Terminating".into(),
        phase: "Running".into(),
    });
    p
}

fn canary(mut p: KubePod) -> KubePod {
    p.status.is_canary = true;
    p
}

fn old_marked(mut p: KubePod) -> KubePod {
    p.status.is_old = true;
    p
}

fn crash_looping(mut p: KubePod) -> KubePod {
    p.status.ready = false;
    p.pod_status = Some(crate::api::KubePodRuntime {
        status: "CrashLoopBackOff".into(),
        phase: "Running".into(),
    });
    p.warnings = Some(vec![crate::api::KubeEvent {
        reason: "BackOff".into(),
        message: "Back-off restarting failed container".into(),
    }]);
    p
}

fn bounds(min: u32, max: u32) -> Bounds {
    Bounds { min, max }
}

/// A target of bento `v2` created at [`CREATED`], with `services`.
fn target(services: &[(&str, Bounds)]) -> RolloutTarget {
    RolloutTarget {
        created_at: CREATED.into(),
        bento_version: Some("v2".into()),
        services: services.iter().map(|(n, b)| (n.to_string(), *b)).collect(),
    }
}

fn is_done(v: &PodsVerdict) -> bool {
    matches!(v, PodsVerdict::Done { .. })
}

fn waiting_for(v: &PodsVerdict, part: &str) -> bool {
    matches!(v, PodsVerdict::Waiting(w) if w.contains(part))
}

#[test]
fn bounds_follow_the_platforms_scaling_normalisation() {
    let sc = |min: Option<i64>, max: Option<i64>| crate::api::Scaling {
        min_replicas: min,
        max_replicas: max,
        policy: None,
    };
    assert_eq!(Bounds::of(None), bounds(1, 1));
    assert_eq!(Bounds::of(Some(&sc(None, None))), bounds(1, 1));
    assert_eq!(Bounds::of(Some(&sc(Some(3), None))), bounds(3, 3));
    assert_eq!(Bounds::of(Some(&sc(Some(0), None))), bounds(0, 1));
    assert_eq!(Bounds::of(Some(&sc(None, Some(4)))), bounds(1, 4));
    assert_eq!(Bounds::of(Some(&sc(Some(2), Some(5)))), bounds(2, 5));
    assert_eq!(Bounds::of(Some(&sc(Some(-1), Some(2)))), bounds(0, 2));
    assert_eq!(Bounds::of(Some(&sc(Some(3), Some(1)))), bounds(3, 3));
}

#[test]
fn a_rollout_target_is_read_from_the_latest_revision() {
    let mut d = with_bento(dep("r2", DeploymentStatus::Running), "v2");
    let rev = d.latest_revision.as_mut().expect("revision");
    rev.meta.created_at = CREATED.into();
    let mut cfg = crate::api::DeploymentConfig::default();
    cfg.services.insert(
        "api".into(),
        crate::api::ServiceConfig {
            scaling: Some(crate::api::Scaling {
                min_replicas: Some(2),
                max_replicas: Some(3),
                policy: None,
            }),
            ..Default::default()
        },
    );
    cfg.services
        .insert("worker".into(), crate::api::ServiceConfig::default());
    if let Some(Some(t)) = rev.targets.first_mut() {
        t.config = Some(cfg);
    }
    assert_eq!(
        RolloutTarget::of(&d),
        target(&[("api", bounds(2, 3)), ("worker", bounds(1, 1))])
    );
    assert_eq!(
        RolloutTarget::of(&dep("r1", DeploymentStatus::Running)),
        RolloutTarget::default()
    );
}

#[test]
fn a_restart_is_done_when_every_serving_pod_is_of_the_revision_and_enough_serve() {
    let t = target(&[("api", bounds(2, 4))]);
    let new = |n: &str| spod(n, "v2", AFTER, true, None);
    // Done: two new pods serve; an old one terminating, an old one not ready, a canary of
    // another bento and a new one still starting change nothing.
    let pods = vec![
        new("n1"),
        new("n2"),
        terminating(spod("o1", "v1", BEFORE, true, None)),
        spod("o2", "v2", BEFORE, false, None),
        canary(spod("c1", "v9", BEFORE, true, None)),
        spod("n3", "v2", AFTER, false, None),
    ];
    let v = judge_pods(Change::Restart, &t, &pods);
    assert!(
        matches!(&v, PodsVerdict::Done { serving: 2, why } if why.contains("none older") && why.contains(CREATED)),
        "{v:?}"
    );
    // Too few of the revision serve.
    let v = judge_pods(Change::Restart, &t, &[new("n1")]);
    assert!(
        waiting_for(&v, "1 of 2 pods of this revision serve"),
        "{v:?}"
    );
    // An older pod still serving, whatever tells it apart.
    for (older, why) in [
        (spod("o", "v2", BEFORE, true, None), "before the revision"),
        (spod("o", "v1", AFTER, true, None), "bento version v1"),
        (
            old_marked(spod("o", "v2", AFTER, true, None)),
            "marked is_old",
        ),
        (
            {
                let mut p = spod("o", "v2", AFTER, true, None);
                p.status.start_time = None;
                p
            },
            "no start time",
        ),
        (
            spod("o", "v2", "yesterday", true, None),
            "unreadable start time",
        ),
        (
            {
                let mut p = spod("o", "v2", AFTER, true, None);
                p.labels.clear();
                p
            },
            "no bento version label",
        ),
    ] {
        let v = judge_pods(Change::Restart, &t, &[new("n1"), new("n2"), older]);
        assert!(
            waiting_for(&v, "older pods still serve: o (") && waiting_for(&v, why),
            "{why}: {v:?}"
        );
    }
}

#[test]
fn a_restart_wants_min_replicas_at_least_one_unless_min_is_zero() {
    let new = spod("n1", "v2", AFTER, true, None);
    // No services in the config: the platform's default, one replica.
    assert!(waiting_for(
        &judge_pods(Change::Restart, &target(&[]), &[]),
        "0 of 1"
    ));
    assert!(is_done(&judge_pods(
        Change::Restart,
        &target(&[]),
        std::slice::from_ref(&new)
    )));
    // min 0: nothing needs to serve (scaled to zero), but nothing older may.
    let zero = target(&[("api", bounds(0, 2))]);
    assert_eq!(
        judge_pods(Change::Restart, &zero, &[]),
        PodsVerdict::Done {
            serving: 0,
            why: format!(
                "0 serving pods, all of bento version v2 started since the revision was created ({CREATED}), none older"
            )
        }
    );
    assert!(waiting_for(
        &judge_pods(
            Change::Restart,
            &zero,
            &[spod("o", "v1", BEFORE, true, None)]
        ),
        "older pods still serve"
    ));
}

#[test]
fn a_pod_started_within_the_revisions_second_counts_as_started_after_it() {
    let t = target(&[]);
    // Kubernetes' start_time has whole seconds: 10:00:00 is the revision's second.
    let same_second = spod("n", "v2", "2026-01-01T10:00:00Z", true, None);
    assert!(is_done(&judge_pods(Change::Restart, &t, &[same_second])));
    // With sub-second precision, it is compared as given.
    let before = spod("o", "v2", "2026-01-01T10:00:00.499Z", true, None);
    assert!(waiting_for(
        &judge_pods(Change::Restart, &t, &[before]),
        "before the revision"
    ));
    let after = spod("n", "v2", "2026-01-01T10:00:00.500Z", true, None);
    assert!(is_done(&judge_pods(Change::Restart, &t, &[after])));
    // Another offset is the same instant.
    let offset = spod("n", "v2", "2026-01-01T12:00:01+02:00", true, None);
    assert!(is_done(&judge_pods(Change::Restart, &t, &[offset])));
}

#[test]
fn a_canary_pod_still_starting_keeps_the_rollout_going() {
    let t = target(&[]);
    let new = spod("n", "v2", AFTER, true, None);
    for change in [Change::Restart, Change::Scale] {
        let starting = canary(spod("c", "v9", AFTER, false, None));
        let v = judge_pods(change, &t, &[new.clone(), starting]);
        assert!(waiting_for(&v, "canary pods not ready: c"), "{v:?}");
        let leaving = terminating(canary(spod("c", "v9", BEFORE, false, None)));
        let ready = canary(spod("c2", "v8", BEFORE, true, None));
        assert!(is_done(&judge_pods(
            change,
            &t,
            &[new.clone(), leaving, ready]
        )));
    }
}

#[test]
fn pods_are_counted_per_service_when_every_pod_names_one() {
    let t = target(&[("api", bounds(2, 2)), ("worker", bounds(1, 1))]);
    let p = |n: &str, svc: &str| spod(n, "v2", AFTER, true, Some(svc));
    // Three new pods, but all of `api`: `worker` has none.
    let v = judge_pods(
        Change::Restart,
        &t,
        &[p("a1", "api"), p("a2", "api"), p("a3", "api")],
    );
    assert!(waiting_for(&v, "service worker: 0 of 1"), "{v:?}");
    assert!(is_done(&judge_pods(
        Change::Restart,
        &t,
        &[p("a1", "api"), p("a2", "api"), p("w1", "worker")]
    )));
    // An older pod is named with its service.
    let v = judge_pods(
        Change::Restart,
        &t,
        &[
            p("a1", "api"),
            p("a2", "api"),
            p("w1", "worker"),
            spod("w0", "v2", BEFORE, true, Some("worker")),
        ],
    );
    assert!(
        waiting_for(&v, "service worker: older pods still serve: w0"),
        "{v:?}"
    );
    // A pod without the label, or naming no service of the revision: all pods together,
    // against the summed minimum (3).
    for odd in [
        spod("x", "v2", AFTER, true, None),
        spod("x", "v2", AFTER, true, Some("other")),
    ] {
        let pods = [p("a1", "api"), p("a2", "api"), odd];
        assert!(
            is_done(&judge_pods(Change::Restart, &t, &pods)),
            "{:?}",
            judge_pods(Change::Restart, &t, &pods)
        );
        let v = judge_pods(Change::Restart, &t, &pods[1..]);
        assert!(waiting_for(&v, "2 of 3 pods"), "{v:?}");
        assert!(!waiting_for(&v, "service "), "{v:?}");
    }
}

#[test]
fn pods_that_cannot_be_dated_or_matched_leave_the_status_to_decide() {
    let pods = [spod("n", "v2", AFTER, true, None)];
    let mut t = target(&[]);
    t.created_at = String::new();
    for change in [Change::Restart, Change::Scale] {
        assert!(waiting_for(
            &judge_pods(change, &t, &pods),
            "cannot be dated"
        ));
    }
    let mut t = target(&[]);
    t.bento_version = None;
    assert!(waiting_for(
        &judge_pods(Change::Restart, &t, &pods),
        "no bento version"
    ));
}

#[test]
fn a_scaling_change_is_done_when_the_ready_count_is_within_bounds_and_nothing_moves() {
    let t = target(&[("api", bounds(2, 3))]);
    // Pods from before the revision serve on: a scaling change does not replace them.
    let old = |n: &str| spod(n, "v2", BEFORE, true, None);
    let v = judge_pods(Change::Scale, &t, &[old("a"), old("b")]);
    assert!(
        matches!(&v, PodsVerdict::Done { serving: 2, why } if why.contains("within the new scaling bounds")),
        "{v:?}"
    );
    assert!(is_done(&judge_pods(
        Change::Scale,
        &t,
        &[
            old("a"),
            old("b"),
            old("c"),
            canary(spod("c", "v9", BEFORE, true, None))
        ]
    )));
    for (pods, why) in [
        (vec![old("a")], "1 ready pods, wanted 2..3"),
        (
            vec![old("a"), old("b"), old("c"), old("d")],
            "4 ready pods, wanted 2..3",
        ),
        (
            vec![old("a"), old("b"), spod("n", "v2", AFTER, false, None)],
            "pods not settled: n (pending)",
        ),
        (
            vec![old("a"), old("b"), terminating(old("c"))],
            "pods not settled: c (terminating)",
        ),
        (
            vec![old("a"), spod("b", "v1", BEFORE, true, None)],
            "pods of another bento serve: b (bento version v1)",
        ),
        (vec![old("a"), old_marked(old("b"))], "b (marked is_old)"),
        (
            vec![old("a"), {
                let mut p = old("b");
                p.labels.clear();
                p
            }],
            "b (no bento version label)",
        ),
    ] {
        let v = judge_pods(Change::Scale, &t, &pods);
        assert!(waiting_for(&v, why), "{why}: {v:?}");
    }
    // Per service.
    let t = target(&[("api", bounds(1, 1)), ("worker", bounds(2, 2))]);
    let p = |n: &str, svc: &str| spod(n, "v2", BEFORE, true, Some(svc));
    assert!(is_done(&judge_pods(
        Change::Scale,
        &t,
        &[p("a", "api"), p("w1", "worker"), p("w2", "worker")]
    )));
    let v = judge_pods(
        Change::Scale,
        &t,
        &[p("a", "api"), p("a2", "api"), p("w1", "worker")],
    );
    assert!(
        waiting_for(&v, "service api: 2 ready pods, wanted 1..1")
            && waiting_for(&v, "service worker: 1 ready pods, wanted 2..2"),
        "{v:?}"
    );
    // min 0: no pod at all is within bounds.
    assert!(is_done(&judge_pods(
        Change::Scale,
        &target(&[("api", bounds(0, 2))]),
        &[]
    )));
}

#[test]
fn only_pods_of_the_revision_make_a_failure() {
    let t = target(&[("api", bounds(2, 2))]);
    let new = |n: &str| spod(n, "v2", AFTER, true, None);
    // A crash loop of a pod of this revision: crashing, even with enough pods serving.
    let v = judge_pods(
        Change::Restart,
        &t,
        &[new("n1"), new("n2"), crash_looping(new("n3"))],
    );
    assert!(
        matches!(&v, PodsVerdict::Crashing(r) if r.contains("pods of this revision crash: pod n3") && r.contains("Back-off restarting")),
        "{v:?}"
    );
    let mut failed = new("n3");
    failed.status.phase = "Failed".into();
    failed.status.ready = false;
    assert!(matches!(
        judge_pods(Change::Scale, &t, &[new("n1"), new("n2"), failed]),
        PodsVerdict::Crashing(_)
    ));
    // An old pod crashing, or a canary's: not this revision's failure (a canary pod not
    // ready keeps the wait going, no more).
    let old_crash = crash_looping(spod("o", "v1", BEFORE, true, None));
    let v = judge_pods(
        Change::Restart,
        &t,
        &[new("n1"), new("n2"), old_crash.clone()],
    );
    assert!(is_done(&v), "{v:?}");
    let canary_crash = canary(crash_looping(new("c")));
    let v = judge_pods(
        Change::Restart,
        &t,
        &[new("n1"), new("n2"), old_crash, canary_crash],
    );
    assert!(waiting_for(&v, "canary pods not ready: c"), "{v:?}");
    // Not ready with warnings, before the rollout is done: unready (the longer grace).
    let mut probing = spod("n2", "v2", AFTER, false, None);
    probing.warnings = Some(vec![crate::api::KubeEvent {
        reason: "Unhealthy".into(),
        message: "Readiness probe failed: 503".into(),
    }]);
    let v = judge_pods(Change::Restart, &t, &[new("n1"), probing.clone()]);
    assert!(
        matches!(&v, PodsVerdict::Unready(r) if r.contains("1 of 2") && r.contains("Readiness probe failed")),
        "{v:?}"
    );
    // Without warnings it is only starting; once enough serve, an unready extra is no failure.
    let v = judge_pods(
        Change::Restart,
        &t,
        &[new("n1"), spod("n2", "v2", AFTER, false, None)],
    );
    assert!(waiting_for(&v, "1 of 2"), "{v:?}");
    let mut extra = probing;
    extra.name = "n3".into();
    assert!(is_done(&judge_pods(
        Change::Restart,
        &t,
        &[new("n1"), new("n2"), extra]
    )));
    // Warnings on an old pod's unreadiness are not this revision's.
    let mut old_probing = spod("o", "v1", BEFORE, false, None);
    old_probing.warnings = Some(vec![crate::api::KubeEvent {
        reason: "Unhealthy".into(),
        message: "probe".into(),
    }]);
    assert!(matches!(
        judge_pods(Change::Restart, &t, &[new("n1"), old_probing]),
        PodsVerdict::Waiting(_)
    ));
}

mod generated {
    //! Generated pod sets against a direct statement of the rule.
    use super::*;
    use proptest::prelude::*;

    /// One generated pod: (bento is v2, started after, ready, terminating, canary, is_old,
    /// service index 0..=1).
    type Gen = (bool, bool, bool, bool, bool, bool, u8);

    fn build(i: usize, g: &Gen, per_service: bool) -> KubePod {
        let (v2, after, ready, term, can, old, svc) = *g;
        let service = ["api", "worker"][usize::from(svc % 2)];
        let mut p = spod(
            &format!("p{i}"),
            if v2 { "v2" } else { "v1" },
            if after { AFTER } else { BEFORE },
            ready,
            per_service.then_some(service),
        );
        if term {
            p = terminating(p);
        }
        if can {
            p = canary(p);
        }
        if old {
            p = old_marked(p);
        }
        p
    }

    fn pods_of(gens: &[Gen], per_service: bool) -> Vec<KubePod> {
        gens.iter()
            .enumerate()
            .map(|(i, g)| build(i, g, per_service))
            .collect()
    }

    proptest! {
        #[test]
        fn restart_is_done_exactly_when_no_older_pod_serves_and_enough_new_ones_do(
            gens in proptest::collection::vec(any::<Gen>(), 0..8),
            min_api in 0u32..3,
            min_worker in 0u32..3,
            per_service in any::<bool>(),
        ) {
            let t = target(&[("api", bounds(min_api, 3)), ("worker", bounds(min_worker, 3))]);
            let pods = pods_of(&gens, per_service);
            let main: Vec<&Gen> = gens.iter().filter(|g| !g.4).collect();
            let serving = |g: &Gen| g.2 && !g.3;
            let new = |g: &Gen| g.0 && g.1 && !g.5;
            let older_serves = main.iter().any(|g| serving(g) && !new(g));
            let canary_starting = gens.iter().any(|g| g.4 && !g.2 && !g.3);
            let enough = if per_service && !main.is_empty() {
                (0..2u8).all(|s| {
                    let want = [min_api, min_worker][usize::from(s)] as usize;
                    main.iter().filter(|g| g.6 % 2 == s && serving(g) && new(g)).count() >= want
                })
            } else {
                main.iter().filter(|g| serving(g) && new(g)).count() >= (min_api + min_worker) as usize
            };
            let v = judge_pods(Change::Restart, &t, &pods);
            prop_assert_eq!(is_done(&v), !older_serves && enough && !canary_starting, "{:?}", v);
            if let PodsVerdict::Done { serving: n, .. } = v {
                prop_assert_eq!(n, main.iter().filter(|g| serving(g) && new(g)).count());
            }
        }

        #[test]
        fn scale_is_done_exactly_when_nothing_moves_and_the_count_is_within_bounds(
            gens in proptest::collection::vec(any::<Gen>(), 0..8),
            min in 0u32..3,
            extra in 0u32..3,
        ) {
            let t = target(&[("api", bounds(min, min + extra))]);
            let pods = pods_of(&gens, false);
            let main: Vec<&Gen> = gens.iter().filter(|g| !g.4).collect();
            let settled = main.iter().all(|g| g.2 && !g.3);
            let our_bento = main.iter().all(|g| g.0 && !g.5);
            let ready = main.len() as u32;
            let canary_starting = gens.iter().any(|g| g.4 && !g.2 && !g.3);
            let v = judge_pods(Change::Scale, &t, &pods);
            prop_assert_eq!(
                is_done(&v),
                settled && our_bento && (min..=min + extra).contains(&ready) && !canary_starting,
                "{:?}", v
            );
        }

        #[test]
        fn the_verdict_never_depends_on_ready_or_terminating_canary_pods(
            gens in proptest::collection::vec(any::<Gen>(), 0..6),
            canaries in proptest::collection::vec(any::<Gen>(), 0..4),
            scale in any::<bool>(),
        ) {
            let change = if scale { Change::Scale } else { Change::Restart };
            let t = target(&[("api", bounds(1, 2))]);
            let main: Vec<Gen> = gens.iter().map(|g| (g.0, g.1, g.2, g.3, false, g.5, g.6)).collect();
            let mut with: Vec<Gen> = main.clone();
            // Ready or terminating: never a canary pod still starting.
            with.extend(canaries.iter().map(|g| (g.0, g.1, g.2 || !g.3, g.3, true, g.5, g.6)));
            prop_assert_eq!(
                is_done(&judge_pods(change, &t, &pods_of(&main, false))),
                is_done(&judge_pods(change, &t, &pods_of(&with, false)))
            );
        }
    }
}

/// A deployment of revision `rev` (created at [`CREATED`], bento `v2`, min = max = `n` on
/// service `api`) with `status`.
fn rolled(rev: &str, status: DeploymentStatus, n: i64) -> Deployment {
    let mut d = with_bento(dep(rev, status), "v2");
    let r = d.latest_revision.as_mut().expect("revision");
    r.meta.created_at = CREATED.into();
    let mut cfg = crate::api::DeploymentConfig::default();
    cfg.services.insert(
        "api".into(),
        crate::api::ServiceConfig {
            scaling: Some(crate::api::Scaling {
                min_replicas: Some(n),
                max_replicas: Some(n),
                policy: None,
            }),
            ..Default::default()
        },
    );
    if let Some(Some(t)) = r.targets.first_mut() {
        t.config = Some(cfg);
    }
    d
}

/// [`PodsOverTime`] that records when its pods are read.
struct CountingPods(PodsOverTime, Mutex<Vec<Duration>>);

impl CountingPods {
    fn new(script: Script, pods: Vec<(u64, Vec<KubePod>)>) -> CountingPods {
        CountingPods(PodsOverTime(script, pods), Mutex::new(Vec::new()))
    }

    /// `pods` over time, read while revision `r2` (rolled out to 1 replica) reads `running`.
    fn running_r2(pods: Vec<(u64, Vec<KubePod>)>) -> CountingPods {
        let script = Script::new(vec![(0, Ok(rolled("r2", DeploymentStatus::Running, 1)))]);
        CountingPods::new(script, pods)
    }
    fn pods_reads(&self) -> usize {
        self.1.lock().expect("lock").len()
    }
    fn read_at(&self) -> Vec<Duration> {
        self.1.lock().expect("lock").clone()
    }
}

#[async_trait]
impl DeploymentSource for CountingPods {
    async fn fetch(&self) -> Result<Deployment, ClientError> {
        self.0.fetch().await
    }
    async fn pods(&self) -> Option<Vec<KubePod>> {
        let at = self.0 .0.t0.elapsed();
        self.1.lock().expect("lock").push(at);
        self.0.pods().await
    }
}

#[tokio::test(start_paused = true)]
async fn a_stale_status_does_not_delay_a_rollout_the_pods_show_done() {
    for stale in [
        DeploymentStatus::Running,
        DeploymentStatus::Failed,
        DeploymentStatus::Unhealthy,
    ] {
        let (logged, _default) = capture_logs();
        // The status never moves (the platform's sync lags); the new pods serve from 3 s.
        let src = CountingPods::new(
            Script::new(vec![(0, Ok(rolled("r2", stale, 2)))]),
            vec![
                (
                    0,
                    vec![
                        spod("o1", "v1", BEFORE, true, None),
                        spod("o2", "v1", BEFORE, true, None),
                        spod("n1", "v2", AFTER, false, None),
                    ],
                ),
                (
                    3_000,
                    vec![
                        terminating(spod("o1", "v1", BEFORE, true, None)),
                        spod("n1", "v2", AFTER, true, None),
                        spod("n2", "v2", AFTER, true, None),
                    ],
                ),
            ],
        );
        let t0 = Instant::now();
        let d = wait_for_revision(&src, &updated("r2", stale), false, &opts(600))
            .await
            .unwrap_or_else(|e| panic!("{stale}: {e}"));
        let took = t0.elapsed();
        assert!(
            took >= secs(3) && took <= Duration::from_millis(4_100),
            "{stale}: {took:?}"
        );
        assert_eq!(d.status, DeploymentStatus::Running, "taken as running");
        assert_eq!(d.revision_uid(), Some("r2"));
        assert_eq!(
            logged.count("is rolled out, on its pods' evidence: 2 serving pods"),
            1,
            "{logged:?}"
        );
        assert_eq!(logged.count("has passed"), 0, "{logged:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_scaling_change_ends_when_the_new_count_serves() {
    let d = rolled("r2", DeploymentStatus::Running, 3);
    let src = CountingPods::new(
        Script::new(vec![(0, Ok(d))]),
        vec![
            (0, vec![spod("a", "v2", BEFORE, true, None)]),
            (
                1_000,
                vec![
                    spod("a", "v2", BEFORE, true, None),
                    spod("b", "v2", AFTER, false, None),
                    spod("c", "v2", AFTER, true, None),
                ],
            ),
            (
                5_000,
                vec![
                    spod("a", "v2", BEFORE, true, None),
                    spod("b", "v2", AFTER, true, None),
                    spod("c", "v2", AFTER, true, None),
                ],
            ),
        ],
    );
    let submitted = updated("r2", DeploymentStatus::Running).with_change(Change::Scale);
    let t0 = Instant::now();
    wait_for_revision(&src, &submitted, false, &opts(600))
        .await
        .expect("scaled");
    let took = t0.elapsed();
    assert!(
        took >= secs(5) && took <= Duration::from_millis(6_100),
        "{took:?}"
    );
    // The same pods under the restart rule: `a` is older and serves, so it never ends
    // before the settle window.
    let d = rolled("r2", DeploymentStatus::Running, 3);
    let src = CountingPods::new(
        Script::new(vec![(0, Ok(d))]),
        vec![(
            0,
            vec![
                spod("a", "v2", BEFORE, true, None),
                spod("b", "v2", AFTER, true, None),
                spod("c", "v2", AFTER, true, None),
            ],
        )],
    );
    let mut o = opts(600);
    o.status_sync_period = secs(30);
    let t0 = Instant::now();
    wait_r2(&src, &o).await.expect("after the settle window");
    assert!(t0.elapsed() >= secs(30));
}

#[tokio::test(start_paused = true)]
async fn pods_are_read_only_while_the_status_alone_cannot_end_an_updates_wait() {
    // Read while the status is not yet evidence, and while the status shown synced is still
    // in progress (deploying); with a synced `running`, only to confirm it.
    let src = CountingPods::new(
        Script::new(vec![
            (0, Ok(rolled("r2", DeploymentStatus::Running, 1))),
            (1_000, Ok(rolled("r2", DeploymentStatus::Deploying, 1))),
            (10_000, Ok(rolled("r2", DeploymentStatus::Running, 1))),
        ]),
        vec![(0, vec![spod("o", "v1", BEFORE, true, None)])],
    );
    let e = wait_r2(&src, &opts(20))
        .await
        .expect_err("the old pod serves on");
    let at = src.read_at();
    // About once a second throughout (each read doubles the interval).
    assert!((18..=21).contains(&at.len()), "{at:?}");
    assert!(e.to_string().contains("o (bento version v1)"), "{e}");
    // A synced in-progress status does not keep the pods from ending the wait.
    let src = CountingPods::new(
        Script::new(vec![
            (0, Ok(rolled("r2", DeploymentStatus::Running, 1))),
            (1_000, Ok(rolled("r2", DeploymentStatus::Deploying, 1))),
        ]),
        vec![
            (0, vec![spod("o", "v1", BEFORE, true, None)]),
            (4_000, vec![spod("n", "v2", AFTER, true, None)]),
        ],
    );
    let t0 = Instant::now();
    let d = wait_r2(&src, &opts(60)).await.expect("done on the pods");
    assert!(
        t0.elapsed() <= Duration::from_millis(5_100),
        "{:?}",
        t0.elapsed()
    );
    assert_eq!(d.status, DeploymentStatus::Running);

    // Another revision is the latest: the pods are not read.
    let src = CountingPods::new(
        Script::new(vec![(0, Ok(rolled("other", DeploymentStatus::Running, 1)))]),
        vec![(0, vec![spod("n", "v2", AFTER, true, None)])],
    );
    let _ = wait_r2(&src, &opts(5)).await.expect_err("never the latest");
    assert_eq!(src.pods_reads(), 0);

    // A create's statuses count at once: its pods only confirm a `running`.
    let src = CountingPods::new(
        Script::new(vec![
            (0, Ok(rolled("r1", DeploymentStatus::Deploying, 1))),
            (3_000, Ok(rolled("r1", DeploymentStatus::Running, 1))),
        ]),
        vec![(0, vec![spod("n", "v2", AFTER, true, None)])],
    );
    wait_for_revision(&src, &Submitted::created("r1"), false, &opts(60))
        .await
        .expect("created");
    assert_eq!(src.pods_reads(), 1);

    // Disabled (the benchmark's baseline): the settle window decides.
    let src = CountingPods::running_r2(vec![(0, vec![spod("n", "v2", AFTER, true, None)])]);
    let mut o = opts(60);
    o.status_sync_period = secs(7);
    o.pod_evidence = false;
    let t0 = Instant::now();
    wait_r2(&src, &o).await.expect("after the settle window");
    assert!(t0.elapsed() >= secs(7));
    assert_eq!(src.pods_reads(), 1, "only the confirmation");
}

#[tokio::test(start_paused = true)]
async fn unreadable_pods_are_given_up_after_a_few_reads_and_the_settle_window_decides() {
    let (logged, _default) = capture_logs();
    // `PodsOverTime` with no entry yet gives `None` (a read that failed).
    let src = CountingPods::running_r2(vec![(60_000, vec![])]);
    let mut o = opts(60);
    o.status_sync_period = secs(10);
    let t0 = Instant::now();
    wait_r2(&src, &o).await.expect("after the settle window");
    assert!(t0.elapsed() >= secs(10));
    // Three attempts, then one more to confirm the `running`.
    assert_eq!(src.pods_reads(), POD_READ_ATTEMPTS as usize + 1);
    assert_eq!(logged.count("cannot be read (3 attempts)"), 1, "{logged:?}");
    assert_eq!(logged.count("status_sync_period (10s) has passed"), 1);
}

#[tokio::test(start_paused = true)]
async fn polls_that_read_the_pods_keep_to_two_requests_a_second() {
    let src = CountingPods::running_r2(vec![
        (0, vec![spod("o", "v2", BEFORE, true, None)]),
        (10_000, vec![spod("n", "v2", AFTER, true, None)]),
    ]);
    let t0 = Instant::now();
    wait_r2(&src, &opts(60)).await.expect("done at 10 s");
    let took = t0.elapsed();
    assert!(
        took >= secs(10) && took <= Duration::from_millis(11_100),
        "{took:?}"
    );
    // Requests after the first poll's two, per second until the last poll.
    let requests = src.0 .0.fetch_count() + src.pods_reads();
    assert_eq!(
        src.pods_reads(),
        src.0 .0.fetch_count(),
        "a pods read per poll"
    );
    let per_s = (requests - 2) as f64 / took.as_secs_f64();
    assert!(per_s <= 2.0, "{requests} requests in {took:?}");
}

#[tokio::test(start_paused = true)]
async fn pods_of_the_revision_that_crash_or_stay_unready_fail_the_wait_after_their_grace() {
    let crashing = crash_looping(spod("n1", "v2", AFTER, true, None));
    let src = CountingPods::running_r2(vec![(
        0,
        vec![spod("o", "v1", BEFORE, true, None), crashing.clone()],
    )]);
    let t0 = Instant::now();
    let e = wait_r2(&src, &opts(600)).await.expect_err("crash loop");
    let took = t0.elapsed();
    assert!(
        took >= secs(60) && took <= Duration::from_millis(61_100),
        "{took:?}"
    );
    let WaitError::Failed { status, reason, .. } = &e else {
        panic!("{e:?}");
    };
    assert_eq!(*status, DeploymentStatus::Unhealthy);
    assert_eq!(
        reason
            .matches("Back-off restarting failed container")
            .count(),
        1,
        "the pods' reason once: {reason}"
    );
    assert!(reason.contains("pods of this revision crash"), "{reason}");

    // Not ready, with warnings: the unready grace (10 minutes by default).
    let mut probing = spod("n1", "v2", AFTER, false, None);
    probing.warnings = Some(vec![crate::api::KubeEvent {
        reason: "Unhealthy".into(),
        message: "Readiness probe failed: 503".into(),
    }]);
    let src = CountingPods::new(
        Script::new(vec![(0, Ok(rolled("r2", DeploymentStatus::Failed, 1)))]),
        vec![(0, vec![spod("o", "v1", BEFORE, true, None), probing])],
    );
    let mut o = opts(3_600);
    o.status_sync_period = secs(3_600);
    let t0 = Instant::now();
    let e = wait_for_revision(&src, &updated("r2", DeploymentStatus::Failed), false, &o)
        .await
        .expect_err("unready too long");
    let took = t0.elapsed();
    assert!(
        took >= DEFAULT_UNREADY_GRACE && took <= DEFAULT_UNREADY_GRACE + secs(2),
        "{took:?}"
    );
    assert!(e.to_string().contains("Readiness probe failed: 503"), "{e}");

    // A crash that stops within the grace is no failure.
    let src = CountingPods::running_r2(vec![
        (0, vec![spod("o", "v1", BEFORE, true, None), crashing]),
        (30_000, vec![spod("n1", "v2", AFTER, true, None)]),
    ]);
    wait_r2(&src, &opts(600))
        .await
        .expect("recovered within the grace");
}

#[tokio::test(start_paused = true)]
async fn a_resumed_wait_is_a_restart_and_a_min_zero_deployment_scaled_to_zero_is_done() {
    // Resumed long after the rollout: every pod started after the revision.
    let src = CountingPods::new(
        Script::new(vec![(0, Ok(rolled("r2", DeploymentStatus::Deploying, 1)))]),
        vec![(0, vec![spod("n", "v2", AFTER, true, None)])],
    );
    let resumed = updated("r2", DeploymentStatus::Unknown);
    assert_eq!(resumed.change, Change::Restart);
    let d = wait_for_revision(&src, &resumed, false, &opts(60))
        .await
        .expect("done at once");
    assert_eq!(d.status, DeploymentStatus::Running);
    // min 0 and no pod: scaled to zero.
    let src = CountingPods::new(
        Script::new(vec![(0, Ok(rolled("r2", DeploymentStatus::Running, 0)))]),
        vec![(0, vec![])],
    );
    let d = wait_for_revision(
        &src,
        &updated("r2", DeploymentStatus::Running),
        true,
        &opts(60),
    )
    .await
    .expect("done at once");
    assert_eq!(d.status, DeploymentStatus::ScaledToZero);
}

#[test]
fn only_a_change_of_replica_bounds_alone_is_a_scaling_change() {
    use crate::resources::deployment::model::{ServiceBlock, Spec};
    use tf_provider::value::Value;
    let mut prior = Spec {
        bento: Value::Value("iris:v1".into()),
        ..Default::default()
    };
    prior.entry.min_replicas = Value::Value(1);
    prior.entry.max_replicas = Value::Value(2);
    let mut block = ServiceBlock {
        name: Value::Value("worker".into()),
        ..Default::default()
    };
    block.settings.min_replicas = Value::Value(1);
    prior.service = Value::Value(vec![block]);

    let mut scaled = prior.clone();
    scaled.entry.max_replicas = Value::Value(4);
    assert!(!prior.restarts_replicas(&scaled, false));
    let mut block_scaled = prior.clone();
    if let Value::Value(b) = &mut block_scaled.service {
        b[0].settings.max_replicas = Value::Value(3);
    }
    assert!(!prior.restarts_replicas(&block_scaled, false));
    // Nothing changed (a re-submit), or anything else with or without scaling: a restart.
    assert!(prior.restarts_replicas(&prior, false));
    for change in [
        |s: &mut Spec| s.bento = Value::Value("iris:v2".into()),
        |s: &mut Spec| s.envs = Value::Value([("A".into(), Value::Value("b".into()))].into()),
        |s: &mut Spec| s.entry.instance_type = Value::Value("cpu.2".into()),
        |s: &mut Spec| s.entry.deployment_strategy = Value::Value("Recreate".into()),
        |s: &mut Spec| s.labels = Value::Value([("t".into(), Value::Value("x".into()))].into()),
    ] {
        let mut planned = scaled.clone();
        change(&mut planned);
        assert!(prior.restarts_replicas(&planned, false), "{planned:?}");
    }
    // A bento CI manages is not sent: with scaling, it is a scaling change.
    let mut ci = scaled.clone();
    ci.bento = Value::Value("iris:ci-7".into());
    assert!(!prior.restarts_replicas(&ci, true));
    assert!(prior.restarts_replicas(&ci, false));
}

#[test]
fn some_of_names_three_and_counts_the_rest() {
    let items = |n: usize| (1..=n).map(|i| format!("p{i}")).collect::<Vec<_>>();
    assert_eq!(pods::some_of(&items(2)), "p1, p2");
    assert_eq!(pods::some_of(&items(3)), "p1, p2, p3");
    assert_eq!(pods::some_of(&items(5)), "p1, p2, p3 and 2 more");
}
