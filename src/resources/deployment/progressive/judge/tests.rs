use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;
use crate::api::{KubeEvent, KubePodRuntime, KubePodStatus};

fn pod(name: &str, version: &str, canary: bool, ready: bool, status: &str) -> KubePod {
    KubePod {
        name: name.into(),
        labels: BTreeMap::from([(VERSION_LABEL.to_string(), version.to_string())]),
        status: KubePodStatus {
            phase: "Running".into(),
            ready,
            start_time: None,
            is_old: false,
            is_canary: canary,
        },
        pod_status: Some(KubePodRuntime {
            status: status.into(),
            phase: "Running".into(),
        }),
        warnings: None,
    }
}

const S: fn(u64) -> Duration = Duration::from_secs;

#[test]
fn settings_take_their_defaults() {
    let p = ProgressiveRollout {
        steps: Value::Value(vec![Value::Value(5), Value::Value(50)]),
        ..Default::default()
    };
    let s = Settings::of(&p).expect("settings");
    assert_eq!(s.steps, vec![5, 50]);
    assert_eq!(s.bake_time, S(300));
    assert_eq!(s.route_type, "random");
    assert_eq!(s.unready_grace, S(60));
    assert_eq!(s.max_restarts, 0);
    assert!(s.probe.is_none());
    let mut p = p;
    p.analysis = Value::Value(Analysis {
        probe_path: Value::Value("/healthz".into()),
        max_failure_rate: Value::Value(0.5),
        ..Default::default()
    });
    p.bake_time = Value::Value("30s".into());
    let s = Settings::of(&p).expect("settings");
    assert_eq!(s.bake_time, S(30));
    let probe = s.probe.expect("probe");
    assert_eq!((probe.interval, probe.max_latency), (S(5), S(2)));
    assert_eq!(probe.max_failure_rate, 0.5);
    assert!(Settings::of(&ProgressiveRollout::default()).is_none());
}

#[test]
fn only_the_canary_pods_of_the_new_version_are_judged() {
    let mut w = PodWatch::default();
    let pods = vec![
        pod("main-1", "v1", false, false, "CrashLoopBackOff"),
        pod("other-canary", "v0", true, false, "CrashLoopBackOff"),
        pod("c1", "v2", true, true, "Running"),
    ];
    assert_eq!(
        w.observe(&pods, "v2", S(0), S(60), 0),
        PodsSay::Ready { ready: 1 }
    );
    assert_eq!(
        w.observe(&[], "v2", S(0), S(60), 0),
        PodsSay::Starting { ready: 0, total: 0 }
    );
}

#[test]
fn a_crash_loop_fails_at_once_and_names_the_pod() {
    let mut w = PodWatch::default();
    let mut p = pod("c1", "v2", true, false, "CrashLoopBackOff");
    p.warnings = Some(vec![KubeEvent {
        reason: "BackOff".into(),
        message: "Back-off restarting failed container".into(),
    }]);
    let PodsSay::Failed(f) = w.observe(&[p], "v2", S(0), S(60), 5) else {
        panic!("a crash loop fails");
    };
    assert_eq!(f.check, "crash loop");
    assert!(
        f.evidence.contains("c1") && f.evidence.contains("Back-off restarting failed container"),
        "{f:?}"
    );
}

#[test]
fn a_pod_not_ready_fails_only_past_the_grace() {
    let mut w = PodWatch::default();
    let starting = [pod("c1", "v2", true, false, "Running")];
    assert!(matches!(
        w.observe(&starting, "v2", S(10), S(30), 0),
        PodsSay::Starting { .. }
    ));
    assert!(matches!(
        w.observe(&starting, "v2", S(40), S(30), 0),
        PodsSay::Starting { .. }
    ));
    let PodsSay::Failed(f) = w.observe(&starting, "v2", S(41), S(30), 0) else {
        panic!("past the grace");
    };
    assert_eq!(f.check, "not ready");
    // Ready again resets the clock.
    let mut w = PodWatch::default();
    w.observe(&starting, "v2", S(0), S(30), 0);
    w.observe(
        &[pod("c1", "v2", true, true, "Running")],
        "v2",
        S(20),
        S(30),
        0,
    );
    assert!(matches!(
        w.observe(&starting, "v2", S(45), S(30), 0),
        PodsSay::Starting { .. }
    ));
}

#[test]
fn restarts_beyond_the_tolerance_fail() {
    let mut restarted = pod("c1", "v2", true, true, "Running");
    restarted.warnings = Some(vec![KubeEvent {
        reason: "BackOff".into(),
        message: "Back-off restarting failed container".into(),
    }]);
    let mut w = PodWatch::default();
    assert!(matches!(
        w.observe(std::slice::from_ref(&restarted), "v2", S(1), S(60), 1),
        PodsSay::Ready { .. }
    ));
    let mut w = PodWatch::default();
    let PodsSay::Failed(f) = w.observe(&[restarted], "v2", S(1), S(60), 0) else {
        panic!("no restart tolerated");
    };
    assert_eq!(f.check, "restarts");
}

#[test]
fn probes_fail_on_5xx_errors_and_slowness() {
    let max = Duration::from_millis(500);
    let mut t = ProbeTally::default();
    t.record(
        &ProbeResult {
            outcome: Ok(200),
            took: Duration::from_millis(10),
        },
        max,
    );
    t.record(
        &ProbeResult {
            outcome: Ok(404),
            took: Duration::from_millis(10),
        },
        max,
    );
    assert_eq!(
        t.failed, 0,
        "a 4xx is the bento's answer, not a failure of the canary"
    );
    assert!(t.verdict(0.0).is_ok());
    t.record(
        &ProbeResult {
            outcome: Ok(500),
            took: Duration::from_millis(10),
        },
        max,
    );
    assert!(t.verdict(0.5).is_ok(), "1 of 3 is within 50%");
    let f = t.verdict(0.0).expect_err("any failure with 0 tolerated");
    assert!(f.evidence.contains("answered 500"), "{f:?}");
    t.record(
        &ProbeResult {
            outcome: Ok(200),
            took: Duration::from_millis(900),
        },
        max,
    );
    t.record(
        &ProbeResult {
            outcome: Err("refused".into()),
            took: Duration::ZERO,
        },
        max,
    );
    assert_eq!((t.sent, t.failed), (5, 3));
    assert!(t.verdict(0.5).is_err());
    assert!(t
        .last_failure
        .as_deref()
        .is_some_and(|l| l.contains("refused")));
    // Exactly at the limit passes.
    let mut t = ProbeTally::default();
    t.record(
        &ProbeResult {
            outcome: Ok(200),
            took: max,
        },
        max,
    );
    assert_eq!(t.failed, 0);
}

#[test]
fn terminating_canary_pods_and_the_deployments_own_pods_are_not_judged() {
    let mut w = PodWatch::default();
    let mut leaving = pod("old-canary", "v2", true, false, "CrashLoopBackOff");
    leaving.pod_status = Some(KubePodRuntime {
        status: "Terminating".into(),
        phase: "Running".into(),
    });
    // The deployment's own pod of the same bento version (e.g. after an earlier promotion).
    let own = pod("main-1", "v2", false, false, "CrashLoopBackOff");
    let ready = pod("c1", "v2", true, true, "Running");
    assert_eq!(
        w.observe(&[leaving, own, ready], "v2", S(0), S(60), 0),
        PodsSay::Ready { ready: 1 }
    );
}

#[test]
fn a_failed_share_exactly_at_the_tolerance_passes() {
    let max = Duration::from_millis(500);
    let mut t = ProbeTally::default();
    for code in [200, 503] {
        t.record(
            &ProbeResult {
                outcome: Ok(code),
                took: max,
            },
            max,
        );
    }
    assert!(t.verdict(0.5).is_ok(), "1 of 2 failed, 50% tolerated");
    assert!(t.verdict(0.49).is_err());
}

proptest! {
    /// The tally fails exactly when the failed share exceeds the tolerance.
    #[test]
    fn the_verdict_follows_the_failed_share(codes in proptest::collection::vec(prop_oneof![Just(200u16), Just(500u16)], 0..40), rate in 0.0f64..1.0) {
        let mut t = ProbeTally::default();
        for c in &codes {
            t.record(&ProbeResult { outcome: Ok(*c), took: Duration::ZERO }, Duration::from_secs(1));
        }
        let failed = codes.iter().filter(|c| **c >= 500).count();
        prop_assert_eq!(t.failed, failed);
        let over = !codes.is_empty() && failed as f64 / codes.len() as f64 > rate;
        prop_assert_eq!(t.verdict(rate).is_err(), over);
    }
}
