//! `bentocloud-local` honouring a service's autoscaling policy (`scaling.policy`), traffic
//! settings (`config_overrides.traffic`) and `cold_start_timeout` with its real replicas, over
//! real sockets: deployments are created with raw API bodies, load comes from the bench's load
//! generator (`bentocloud-bench load`, a separate process), and every wait polls the API with a
//! deadline. The control plane evaluates policies every 500 ms (`timing.scale_eval_ms`) so the
//! windows stay short.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value as Json};

use crate::harness::{self, poll_until, poll_until_seen, BentoBehaviour, Server};

/// Policy evaluation period of these tests' control plane.
const EVAL_MS: u64 = 500;

fn server() -> Server {
    Server::start_with_config(
        &json!({"timing": {
            "scale_eval_ms": EVAL_MS,
            "status_sync_ms": 0,
            "scale_to_zero_idle_ms": 1_000,
            "progress_deadline_ms": 20_000,
        }})
        .to_string(),
    )
}

/// Creates `name` from a raw API body: one `apiserver` with `service` merged in.
fn create(s: &Server, name: &str, bento: &str, service: Json) -> Json {
    let mut svc = json!({"deployment_strategy": "RollingUpdate"});
    for (k, v) in service.as_object().expect("object") {
        svc[k] = v.clone();
    }
    let body = json!({"name": name, "bento": bento, "services": {"apiserver": svc}});
    let (status, text) = s.request(
        reqwest::Method::POST,
        "/api/v2/deployments?cluster=local-east",
        Some(&body),
    );
    assert_eq!(status, 200, "create {name}: {text}");
    serde_json::from_str(&text).expect("deployment")
}

/// Waits until `name` is `running` with `ready` ready replicas; returns its endpoint URL.
fn wait_running(s: &Server, name: &str, ready: u64) -> String {
    poll_until_seen(&format!("{name} running"), Duration::from_secs(30), || {
        let v = s.local("local-east", name);
        let ok = v["status"] == "running" && v["rollout"]["ready_replicas"] == ready;
        if ok {
            Ok(v["urls"][0].as_str().expect("url").to_string())
        } else {
            Err(format!("{} {}", v["status"], v["rollout"]))
        }
    })
}

fn desired(s: &Server, name: &str) -> u64 {
    s.local("local-east", name)["rollout"]["desired_replicas"]
        .as_u64()
        .unwrap_or(0)
}

fn ready(s: &Server, name: &str) -> u64 {
    s.local("local-east", name)["rollout"]["ready_replicas"]
        .as_u64()
        .unwrap_or(0)
}

/// The autoscaler's decisions on the deployment's timeline.
fn decisions(s: &Server, name: &str) -> Vec<Json> {
    let (status, text) = s.request(
        reqwest::Method::GET,
        &format!("/api/local/v1/deployments/{name}/timeline?cluster=local-east"),
        None,
    );
    assert_eq!(status, 200, "{text}");
    let v: Json = serde_json::from_str(&text).expect("timeline");
    v["scaling"].as_array().cloned().unwrap_or_default()
}

/// `bentocloud-bench load` against `url` in the background.
fn start_load(url: &str, rate: u32, workers: u32, secs: f64, out: &Path) -> Child {
    Command::new(harness::bench_bin())
        .args(["load", "--url", url, "--rate", &rate.to_string()])
        .args([
            "--workers",
            &workers.to_string(),
            "--duration-s",
            &secs.to_string(),
        ])
        .arg("--out")
        .arg(out)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start bentocloud-bench load")
}

/// Waits for the load generator; returns its summary.
fn finish_load(mut child: Child, out: &Path) -> Json {
    let status = harness::wait_with_deadline(&mut child, Duration::from_secs(60))
        .expect("the load generator finished");
    assert!(status.success(), "bentocloud-bench load failed: {status}");
    let text = std::fs::read_to_string(out.with_extension("json")).expect("summary");
    serde_json::from_str(&text).expect("summary JSON")
}

fn unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[test]
fn a_qps_policy_scales_up_under_load_without_failures_and_back_down_after_its_window() {
    let s = server();
    s.bentos_add(
        "app:v1",
        &BentoBehaviour {
            startup_seconds: Some(0.2),
            ..Default::default()
        },
    );
    create(
        &s,
        "qps",
        "app:v1",
        json!({"scaling": {"min_replicas": 1, "max_replicas": 4, "policy": {
            "metrics": [{"type": "qps", "value": 20}],
            "scale_up_behavior": "fast", "scale_down_behavior": "stable",
            "scale_up_stabilization_window": null, "scale_down_stabilization_window": 3}}}),
    );
    let url = wait_running(&s, "qps", 1);
    // Built (when stale) before the clock starts.
    harness::bench_bin();
    let dir = harness::temp_dir("autoscaling-");
    let out = dir.path().join("qps");
    // 100 requests/s at 20 per replica wants 5: max_replicas bounds it to 4.
    let began = Instant::now();
    let gen = start_load(&url, 100, 8, 6.0, &out);
    poll_until("a scale-up to 3+ replicas", Duration::from_secs(20), || {
        (desired(&s, "qps") >= 3).then_some(())
    });
    let decided = began.elapsed();
    // One evaluation measures a whole period of load, the next acts on it (up window 0):
    // within two periods, plus the load generator's own start.
    assert!(
        decided <= Duration::from_millis(2 * EVAL_MS + 1_500),
        "scaled up {decided:?} after the load began"
    );
    poll_until("3+ ready replicas", Duration::from_secs(20), || {
        (ready(&s, "qps") >= 3).then_some(())
    });
    let summary = finish_load(gen, &out);
    assert_eq!(
        summary["failures"], 0,
        "requests failed while scaling: {summary}"
    );
    assert!(summary["ok"].as_u64().unwrap_or(0) > 300, "{summary}");
    let load_end = unix_ms();
    // After the load: down to min_replicas, not before the 3 s down window has passed.
    poll_until("a scale-down to 1", Duration::from_secs(30), || {
        (desired(&s, "qps") == 1).then_some(())
    });
    let down = decisions(&s, "qps")
        .into_iter()
        .rev()
        .find(|e| e["to"].as_u64() < e["from"].as_u64())
        .expect("a scale-down decision");
    let up = decisions(&s, "qps")
        .into_iter()
        .find(|e| e["to"].as_u64() > e["from"].as_u64())
        .expect("a scale-up decision");
    assert_eq!(up["metric"], "qps", "{up}");
    assert!(up["measured"].as_f64().unwrap_or(0.0) > 20.0, "{up}");
    assert!(
        down["at_ms"].as_i64().unwrap_or(0) >= load_end - 500 + 3_000,
        "scaled down before the 3 s window: {down} (load ended at {load_end})"
    );
}

#[test]
fn a_disabled_scale_down_keeps_its_replicas_after_the_load() {
    let s = server();
    s.bentos_add("app:v1", &BentoBehaviour::default());
    create(
        &s,
        "keep",
        "app:v1",
        json!({"scaling": {"min_replicas": 1, "max_replicas": 3, "policy": {
            "metrics": [{"type": "qps", "value": 10}],
            "scale_up_behavior": "fast", "scale_down_behavior": "disabled"}}}),
    );
    let url = wait_running(&s, "keep", 1);
    let dir = harness::temp_dir("autoscaling-");
    let out = dir.path().join("keep");
    let gen = start_load(&url, 60, 4, 2.5, &out);
    poll_until("a scale-up to 3", Duration::from_secs(20), || {
        (desired(&s, "keep") == 3).then_some(())
    });
    let summary = finish_load(gen, &out);
    assert_eq!(summary["failures"], 0, "{summary}");
    // Idle now: ten evaluations later it still wants (and has) its three.
    let until = Instant::now() + Duration::from_millis(10 * EVAL_MS);
    while Instant::now() < until {
        assert_eq!(desired(&s, "keep"), 3, "a disabled scale-down scaled down");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(ready(&s, "keep"), 3);
}

/// Sends `n` concurrent GETs to `url`; returns (status, body, latency) of each.
fn concurrent(url: &str, n: usize) -> Vec<(u16, String, Duration)> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let client = reqwest::Client::new();
        let tasks: Vec<_> = (0..n)
            .map(|_| {
                let (client, url) = (client.clone(), url.to_string());
                tokio::spawn(async move {
                    let t = Instant::now();
                    let r = client.get(&url).send().await.expect("answer");
                    let status = r.status().as_u16();
                    (status, r.text().await.unwrap_or_default(), t.elapsed())
                })
            })
            .collect();
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.expect("joined"));
        }
        out
    })
}

#[test]
fn traffic_timeout_and_max_concurrency_with_and_without_the_external_queue() {
    let s = server();
    s.bentos_add("app:v1", &BentoBehaviour::default());
    let one = json!({"min_replicas": 1, "max_replicas": 1});
    create(
        &s,
        "slow",
        "app:v1",
        json!({"scaling": one, "config_overrides": {"traffic": {"timeout": 1}}}),
    );
    create(
        &s,
        "refuse",
        "app:v1",
        json!({"scaling": one, "config_overrides": {"traffic": {"max_concurrency": 1}}}),
    );
    create(
        &s,
        "queue",
        "app:v1",
        json!({"scaling": one,
               "config_overrides": {"traffic": {"max_concurrency": 1, "external_queue": true}}}),
    );
    // A request longer than `timeout` gets BentoML's 504, at the timeout.
    let url = wait_running(&s, "slow", 1);
    let hits = concurrent(&format!("{url}work?sleep_ms=3000"), 1);
    let (status, body, took) = &hits[0];
    assert_eq!(*status, 504, "{body}");
    assert!(
        body.contains("Not able to process the request in 1 seconds"),
        "{body}"
    );
    assert!(
        *took < Duration::from_millis(2_500),
        "answered after {took:?}"
    );
    assert_eq!(concurrent(&format!("{url}work?sleep_ms=100"), 1)[0].0, 200);

    // Beyond max_concurrency without a queue: refused at once with BentoML's 429.
    let url = wait_running(&s, "refuse", 1);
    let hits = concurrent(&format!("{url}work?sleep_ms=1000"), 3);
    let ok = hits.iter().filter(|h| h.0 == 200).count();
    let refused: Vec<_> = hits.iter().filter(|h| h.0 == 429).collect();
    assert_eq!((ok, refused.len()), (1, 2), "{hits:?}");
    assert!(refused
        .iter()
        .all(|h| h.1.contains("Too many requests") && h.2 < Duration::from_millis(900)));

    // With the external queue they wait their turn: all served, one after the other.
    let url = wait_running(&s, "queue", 1);
    let hits = concurrent(&format!("{url}work?sleep_ms=600"), 3);
    assert!(hits.iter().all(|h| h.0 == 200), "{hits:?}");
    let slowest = hits.iter().map(|h| h.2).max().unwrap_or_default();
    assert!(
        slowest >= Duration::from_millis(1_700),
        "not queued: {hits:?}"
    );
}

#[test]
fn cold_start_timeout_bounds_the_wait_for_a_scaled_to_zero_deployment() {
    let s = server();
    s.bentos_add(
        "app:slow-start",
        &BentoBehaviour {
            startup_seconds: Some(3.0),
            ..Default::default()
        },
    );
    create(
        &s,
        "cold",
        "app:slow-start",
        json!({"scaling": {"min_replicas": 0, "max_replicas": 1}, "cold_start_timeout": 1}),
    );
    let url = poll_until("cold scaled to zero", Duration::from_secs(30), || {
        let v = s.local("local-east", "cold");
        (v["status"] == "scaled-to-zero").then(|| v["urls"][0].as_str().expect("url").to_string())
    });
    // The replica needs 3 s to start; the request waits 1 s (cold_start_timeout), then 503.
    let hits = concurrent(&format!("{url}work"), 1);
    let (status, body, took) = &hits[0];
    assert_eq!(*status, 503, "{body}");
    assert!(body.contains("did not wake up within 1000 ms"), "{body}");
    assert!(
        *took >= Duration::from_millis(900) && *took < Duration::from_millis(2_500),
        "{took:?}"
    );
}
