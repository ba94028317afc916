//! Tests of the acceptor and the poll loop, on paused time with a scripted source.

use std::sync::Mutex;

use super::*;
use crate::api::{Revision, RolloutProgress};
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

fn with_rollout(
    mut d: Deployment,
    rev: &str,
    updated: u32,
    desired: u32,
    phase: &str,
) -> Deployment {
    d.rollout = Some(RolloutProgress {
        revision_uid: rev.into(),
        serving_revision_uid: rev.into(),
        phase: phase.into(),
        desired_replicas: desired,
        ready_replicas: updated,
        updated_replicas: updated,
        message: String::new(),
    });
    d
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
    }
    // The rollout extension must be about our revision too.
    let d = with_rollout(
        dep("new", DeploymentStatus::Running),
        "old",
        3,
        3,
        "complete",
    );
    assert!(matches!(
        classify(&d, "new", false),
        Verdict::Pending { .. }
    ));
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
                    reason: s.as_str().to_string()
                }
            ),
            S::Unhealthy => assert!(matches!(v, Verdict::Unhealthy { .. })),
            S::Unknown
            | S::NonDeployed
            | S::Deploying
            | S::ImageBuilding
            | S::ImageBuildSucceeded => {
                assert_eq!(
                    v,
                    Verdict::Pending {
                        phase: s.as_str().to_string()
                    }
                )
            }
        }
    }
}

#[test]
fn rollout_progress_gates_ready_and_gives_reasons() {
    let rolling = with_rollout(dep("r1", DeploymentStatus::Running), "r1", 1, 3, "rolling");
    assert_eq!(
        classify(&rolling, "r1", false),
        Verdict::Pending {
            phase: "rolling".into()
        }
    );
    let done = with_rollout(dep("r1", DeploymentStatus::Running), "r1", 3, 3, "complete");
    assert_eq!(classify(&done, "r1", false), Verdict::Ready);
    let zero = with_rollout(
        dep("r1", DeploymentStatus::ScaledToZero),
        "r1",
        0,
        0,
        "complete",
    );
    assert_eq!(classify(&zero, "r1", true), Verdict::Ready);
    let mut failed = with_rollout(
        dep("r1", DeploymentStatus::ImageBuildFailed),
        "r1",
        0,
        3,
        "failed",
    );
    if let Some(r) = failed.rollout.as_mut() {
        r.message = "pip install failed: no such package torchh".into();
    }
    assert_eq!(
        classify(&failed, "r1", false),
        Verdict::Failed {
            status: DeploymentStatus::ImageBuildFailed,
            reason: "pip install failed: no such package torchh".into()
        }
    );
}

#[tokio::test(start_paused = true)]
async fn stale_running_is_not_success_in_the_loop() {
    let src = Script::new(vec![
        (0, Ok(dep("old", DeploymentStatus::Running))),
        (3_000, Ok(dep("new", DeploymentStatus::Deploying))),
        (6_000, Ok(dep("new", DeploymentStatus::Running))),
    ]);
    let t0 = Instant::now();
    let d = wait_for_revision(&src, "new", false, &opts(60))
        .await
        .expect("ready");
    assert_eq!(d.revision_uid(), Some("new"));
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_secs(6) && took <= Duration::from_millis(6_500),
        "{took:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn unhealthy_fails_only_after_the_grace_window() {
    let src = Script::new(vec![(0, Ok(dep("r1", DeploymentStatus::Unhealthy)))]);
    let t0 = Instant::now();
    let e = wait_for_revision(&src, "r1", false, &opts(600))
        .await
        .expect_err("unhealthy too long");
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_secs(60) && took <= Duration::from_millis(60_500),
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
    wait_for_revision(&src, "r1", false, &opts(600))
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
    let e = wait_for_revision(&src, "r1", false, &opts(600))
        .await
        .expect_err("failed");
    assert!(t0.elapsed() <= Duration::from_millis(2_500));
    let WaitError::Failed {
        status,
        reason,
        last,
    } = &e
    else {
        panic!("{e:?}");
    };
    assert_eq!(*status, DeploymentStatus::ImageBuildFailed);
    assert_eq!(reason, "image-build-failed");
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
    wait_for_revision(&src, "r1", false, &opts(60))
        .await
        .expect("tolerated");
}

#[tokio::test(start_paused = true)]
async fn permanent_errors_end_the_wait() {
    let src = Script::new(vec![(0, Err(api_err(ErrorKind::Unauthorized, 401)))]);
    let e = wait_for_revision(&src, "r1", false, &opts(60))
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
    let e = wait_for_revision(&src, "r1", false, &opts(600))
        .await
        .expect_err("gone");
    assert!(matches!(&e, WaitError::Api(c) if c.is_not_found()), "{e:?}");
    assert!(t0.elapsed() <= Duration::from_millis(40_500));
}

#[tokio::test(start_paused = true)]
async fn timeout_says_the_rollout_continues_and_how_to_resume() {
    let src = Script::new(vec![(
        0,
        Ok(with_rollout(
            dep("r1abcdef99", DeploymentStatus::Deploying),
            "r1abcdef99",
            1,
            3,
            "rolling",
        )),
    )]);
    let t0 = Instant::now();
    let e = wait_for_revision(&src, "r1abcdef99", false, &opts(10))
        .await
        .expect_err("timeout");
    assert_eq!(t0.elapsed(), Duration::from_secs(10));
    let WaitError::TimedOut { last, waited } = &e else {
        panic!("{e:?}");
    };
    assert_eq!(*waited, Duration::from_secs(10));
    assert!(last.is_some());
    let shown = e.to_string();
    for part in [
        "timed out after 10s",
        "local-east/iris",
        "deploying, 1/3 replicas ready (phase rolling)",
        "revision r1abcdef",
        "server-side",
        "terraform apply",
        "timeouts.update",
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
    let e = wait_for_revision(&src, "r1", false, &o)
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
    let e = wait_for_revision(&slow, "r1", false, &o)
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
    wait_for_revision(&src, "r1", false, &opts(60))
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
    let _ = wait_for_revision(&src, "r1", false, &o).await;
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
}
