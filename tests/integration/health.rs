//! `health` of the `bentocloud_deployment` data source, read from the pods stream of a real
//! `bentocloud-local`: both bentos' replicas moving during a rolling update, a crash loop's
//! restarts and warning, the `check` block of `examples/health-check` warning on a plan when
//! ready replicas are below desired, and a pods stream that cannot be read.
//!
//! States are awaited by reading the data source until it shows them (each read is a
//! `terraform apply` of a configuration that only reads), never by sleeping.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value as Json};

use crate::harness::{self, *};

const CLUSTER: &str = "local-east";
const ADDR: &str = "data.bentocloud_deployment.watched";

tf_test!(
    rolling_update_shows_both_bentos_moving,
    health_rolling_update_shows_both_bentos_moving_tf1_11,
    health_rolling_update_shows_both_bentos_moving_tf1_0
);
tf_test!(
    crash_loop_shows_restarts_and_the_warning,
    health_crash_loop_shows_restarts_and_the_warning_tf1_11,
    health_crash_loop_shows_restarts_and_the_warning_tf1_0
);
tf_test!(
    health_check_example_warns_when_ready_is_below_desired,
    health_check_example_warns_when_ready_is_below_desired_tf1_11,
    health_check_example_warns_when_ready_is_below_desired_tf1_0
);
tf_test!(
    unreadable_pods_stream_leaves_health_null_with_a_warning,
    health_unreadable_pods_stream_leaves_health_null_with_a_warning_tf1_11,
    health_unreadable_pods_stream_leaves_health_null_with_a_warning_tf1_0
);

/// A configuration that only reads deployment `name`.
fn watch(name: &str) -> String {
    format!("data \"bentocloud_deployment\" \"watched\" {{\n  name    = {name:?}\n  cluster = {CLUSTER:?}\n}}\n")
}

/// One read of the data source: `health` as the state holds it after an apply that only reads.
fn read(tf: &Tf) -> Json {
    tf.apply();
    tf.resource(ADDR)["health"].clone()
}

/// The one entry of a single-service deployment's `health`.
fn only_service(health: &Json) -> Json {
    match health.as_array().map(Vec::as_slice) {
        Some([one]) => one.clone(),
        _ => panic!("one service expected in health: {health}"),
    }
}

fn n(h: &Json, key: &str) -> u64 {
    h[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} is not a count: {h}"))
}

/// `versions` as bento → (ready, total).
fn versions(h: &Json) -> BTreeMap<String, (u64, u64)> {
    h["versions"]
        .as_array()
        .unwrap_or_else(|| panic!("versions is not a list: {h}"))
        .iter()
        .map(|v| {
            let bento = v["bento"].as_str().unwrap_or("<none>").to_string();
            (bento, (n(v, "ready_replicas"), n(v, "total_replicas")))
        })
        .collect()
}

/// What holds at every read: counts add up, and the desired count is the configuration's.
fn assert_consistent(h: &Json, desired: u64, context: &str) {
    let vs = versions(h);
    assert_eq!(n(h, "desired_replicas"), desired, "{context}: {h}");
    assert!(
        n(h, "ready_replicas") <= n(h, "total_replicas"),
        "{context}: {h}"
    );
    assert_eq!(
        vs.values().map(|(_, t)| t).sum::<u64>(),
        n(h, "total_replicas"),
        "{context}: versions add up to the total: {h}"
    );
    assert_eq!(
        vs.values().map(|(r, _)| r).sum::<u64>(),
        n(h, "ready_replicas"),
        "{context}: versions add up to the ready count: {h}"
    );
}

/// A deployment of `bento` with `replicas` replicas, created through the API (as another tool
/// would), rolled out when `settle`.
fn deploy(server: &Server, name: &str, bento: &str, replicas: i64, settle: bool) {
    let mut spec = Spec::new(name, bento);
    spec.min = replicas;
    spec.max = replicas;
    server.create_deployment(CLUSTER, &spec.create_request());
    if settle {
        server.wait_rolled_out(CLUSTER, name);
    }
}

/// During a rolling update from `iris:v1` to `iris:v2` (2 replicas, surge 1, the new bento
/// slow to start), the data source shows the new bento's replica starting while both old ones
/// serve, then a new replica serving while an old one is still listed, then only the new bento.
pub fn rolling_update_shows_both_bentos_moving(v: TfVersion) {
    let server = Server::start();
    server.bentos_add("iris:v1", &BentoBehaviour::default());
    server.bentos_add(
        "iris:v2",
        &BentoBehaviour {
            startup_seconds: Some(8.0),
            ..Default::default()
        },
    );
    let name = dep_name("health-roll", v);
    deploy(&server, &name, "iris:v1", 2, true);
    let tf = Tf::new(v, &server);
    tf.write(&watch(&name));
    tf.init();

    let before = only_service(&read(&tf));
    assert_consistent(&before, 2, "settled on v1");
    assert_eq!(before["service"], "apiserver", "{before}");
    assert_eq!(
        versions(&before),
        BTreeMap::from([("iris:v1".to_string(), (2, 2))])
    );
    assert_eq!(n(&before, "restarts"), 0, "{before}");
    assert_eq!(before["warnings"], json!([]), "{before}");

    server.update_from(CLUSTER, &name, |r| r.bento = "iris:v2".into());

    // 1. The new bento's first replica starts; both old ones still serve.
    let starting = poll_until_seen(
        "the data source to show iris:v2 starting beside iris:v1",
        Duration::from_secs(120),
        || {
            let h = only_service(&read(&tf));
            let vs = versions(&h);
            let shown = vs.get("iris:v1") == Some(&(2, 2))
                && vs.get("iris:v2").is_some_and(|(r, t)| *r == 0 && *t >= 1);
            if shown {
                Ok(h)
            } else {
                Err(h)
            }
        },
    );
    assert_consistent(&starting, 2, "a new replica starting");
    assert_eq!(n(&starting, "ready_replicas"), 2, "{starting}");

    // 2. A new replica serves while an old one is still listed.
    let moving = poll_until_seen(
        "the data source to show iris:v2 serving while iris:v1 is still listed",
        Duration::from_secs(120),
        || {
            let h = only_service(&read(&tf));
            let vs = versions(&h);
            let shown = vs.get("iris:v2").is_some_and(|(r, _)| *r >= 1)
                && vs.get("iris:v1").is_some_and(|(_, t)| *t >= 1);
            if shown {
                Ok(h)
            } else {
                Err(h)
            }
        },
    );
    assert_consistent(&moving, 2, "mid-rollout");
    assert!(
        versions(&moving)["iris:v2"].0 > versions(&starting)["iris:v2"].0,
        "the new bento's ready replicas went up between the two reads: {starting} then {moving}"
    );

    // 3. Only the new bento.
    server.wait_rolled_out(CLUSTER, &name);
    let after = poll_until_seen(
        "the data source to show only iris:v2",
        Duration::from_secs(60),
        || {
            let h = only_service(&read(&tf));
            if versions(&h) == BTreeMap::from([("iris:v2".to_string(), (2, 2))]) {
                Ok(h)
            } else {
                Err(h)
            }
        },
    );
    assert_consistent(&after, 2, "rolled out");
}

/// A bento that crashes 2 s after it becomes ready: while the kubelet backs off (the
/// emulator's pods stream lists the pod `CrashLoopBackOff` with a `BackOff` event), the data
/// source shows the restart, the replica not ready, and the warning.
pub fn crash_loop_shows_restarts_and_the_warning(v: TfVersion) {
    let server = Server::start();
    server.bentos_add(
        "flaky:v1",
        &BentoBehaviour {
            crash_after_seconds: Some(2.0),
            ..Default::default()
        },
    );
    let name = dep_name("health-crash", v);
    deploy(&server, &name, "flaky:v1", 1, false);
    let tf = Tf::new(v, &server);
    tf.write(&watch(&name));
    tf.init();
    let h = poll_until_seen(
        "the data source to show the crash loop",
        Duration::from_secs(120),
        || {
            let h = only_service(&read(&tf));
            let warned = h["warnings"].as_array().is_some_and(|w| {
                w.iter()
                    .any(|l| l.as_str().is_some_and(|l| l.contains("BackOff")))
            });
            if n(&h, "restarts") >= 1 && warned {
                Ok(h)
            } else {
                Err(h)
            }
        },
    );
    assert_consistent(&h, 1, "crash loop");
    assert!(
        n(&h, "ready_replicas") < n(&h, "total_replicas"),
        "the crashing replica is listed and not ready: {h}"
    );
    let warning = h["warnings"][0].as_str().unwrap_or_default();
    assert!(
        warning.contains("Back-off restarting failed container")
            && warning.contains("bento version v1"),
        "the warning is the kubelet's, with the replica's bento: {h}"
    );
}

/// `examples/health-check`: with Terraform 1.5 and later, its `check.tf.example` (copied in as
/// `check.tf`) makes `terraform plan` warn when a deployment has fewer ready replicas than
/// desired, and stays quiet for a healthy one; every version outputs the services short of
/// replicas.
pub fn health_check_example_warns_when_ready_is_below_desired(v: TfVersion) {
    let server = Server::start();
    server.bentos_add("healthy:v1", &BentoBehaviour::default());
    server.bentos_add(
        "stuck:v1",
        &BentoBehaviour {
            unready: true,
            ..Default::default()
        },
    );
    let (fine, stuck) = (dep_name("health-fine", v), dep_name("health-stuck", v));
    deploy(&server, &fine, "healthy:v1", 1, true);
    deploy(&server, &stuck, "stuck:v1", 1, false);

    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/health-check");
    let read_example = |file: &str| {
        std::fs::read_to_string(example.join(file))
            .unwrap_or_else(|e| panic!("examples/health-check/{file}: {e}"))
    };
    let tf = Tf::new(v, &server);
    tf.write(&read_example("main.tf"));
    let checks = v == TfVersion::V1_11;
    if checks {
        std::fs::write(
            tf.dir.path().join("check.tf"),
            read_example("check.tf.example"),
        )
        .expect("write check.tf");
    }
    tf.init();
    let vars = |name: &str| [format!("deployment={name}"), format!("cluster={CLUSTER}")];
    let plan = |name: &str| {
        let [d, c] = vars(name);
        tf.run_ok(&["plan", "-input=false", "-no-color", "-var", &d, "-var", &c])
    };
    const FAILED: &str = "Check block assertion failed";

    let out = plan(&fine);
    let text = format!("{}{}", out.stdout, out.stderr);
    assert!(
        !text.contains(FAILED),
        "no warning for a healthy deployment:\n{}",
        out.describe()
    );

    if checks {
        let out = plan(&stuck);
        // Terraform wraps the message: compare with whitespace runs as single spaces.
        let text = format!("{}{}", out.stdout, out.stderr)
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        assert!(
            text.contains(FAILED)
                && text.contains(&format!("{CLUSTER}/{stuck} is short of ready replicas"))
                && text.contains("apiserver has 0 of 1 replicas ready"),
            "the check warns with the service and its counts:\n{}",
            out.describe()
        );
    }

    // Every version: the example's output names the service short of replicas.
    let [d, c] = vars(&stuck);
    tf.run_ok(&[
        "apply",
        "-input=false",
        "-no-color",
        "-auto-approve",
        "-var",
        &d,
        "-var",
        &c,
    ]);
    assert_eq!(
        tf.outputs()["short_of_replicas"],
        json!({"apiserver": "0 of 1 replicas ready"})
    );
}

/// A pods stream that cannot be read (every websocket request answered 502, as by a proxy
/// that does not pass websockets): the data source is still read, `health` is null, and
/// Terraform shows the provider's warning naming the cause; once the stream answers, `health`
/// is back.
pub fn unreadable_pods_stream_leaves_health_null_with_a_warning(v: TfVersion) {
    let server = Server::start();
    server.bentos_add("iris:v1", &BentoBehaviour::default());
    let name = dep_name("health-blind", v);
    deploy(&server, &name, "iris:v1", 1, true);
    let faults = "/api/local/v1/faults";
    let rule = json!({"seed": 1, "rules": [{
        "method": "GET",
        "path_prefix": "/ws/v2/deployments",
        "rate": 1.0,
        "faults": [{"kind": "error", "status": 502}],
        "phase": "before"
    }]});
    let (status, text) = server.request(reqwest::Method::PUT, faults, Some(&rule));
    assert_eq!(status, 200, "PUT {faults}: {text}");

    let tf = Tf::new(v, &server);
    tf.write(&watch(&name));
    tf.init();
    let out = tf.apply();
    let text = format!("{}{}", out.stdout, out.stderr);
    assert!(
        text.contains(&format!("Cannot read the health of deployment \"{name}\""))
            && text.contains("502")
            && text.contains("websockets"),
        "the warning names the deployment, the answer and what to check:\n{}",
        out.describe()
    );
    let d = tf.resource(ADDR);
    assert_eq!(d["health"], Json::Null, "{d}");
    assert_eq!(d["bento"], "iris:v1", "the rest is read: {d}");

    let (status, text) = server.request(reqwest::Method::DELETE, faults, None);
    assert_eq!(status, 200, "DELETE {faults}: {text}");
    let h = only_service(&read(&tf));
    assert_consistent(&h, 1, "stream back");
    assert_eq!(n(&h, "ready_replicas"), 1, "{h}");
}
