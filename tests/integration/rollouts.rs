//! Rollouts through real `terraform apply` and real traffic: zero downtime of a
//! rolling update under load, the downtime of `Recreate`, a never-ready bento (fail fast, old
//! revision keeps serving, the change shows again), `rollback_on_failure`, Ctrl-C mid-wait,
//! scale to zero and wake, a kill -9 of the control plane mid-rollout, and a bento managed by
//! CI (`bento_managed_externally`).
//!
//! Traffic comes from a bounded load generator in the test (a few concurrent loops of GET
//! requests to the deployment URL, loopback only, stopped by the test or after a cap on count
//! and time). Every wait polls the server with a deadline; no assertion is about speed except
//! "fails well before the timeout", which compares with the configured 5-minute timeout.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value as Json;

// `tf_test!` names `harness::TfVersion`.
use crate::background::Background;
use crate::harness;
use crate::harness::*;

const CLUSTER: &str = "local-east";

tf_test_lagged!(
    zero_downtime_rolling_update,
    zero_downtime_rolling_update_tf1_11,
    zero_downtime_rolling_update_tf1_0,
    zero_downtime_rolling_update_lag10s_tf1_11,
    zero_downtime_rolling_update_lag10s_tf1_0
);
tf_test!(
    recreate_shows_downtime,
    recreate_shows_downtime_tf1_11,
    recreate_shows_downtime_tf1_0
);
tf_test_lagged!(
    never_ready_fails_fast_old_keeps_serving,
    never_ready_fails_fast_old_keeps_serving_tf1_11,
    never_ready_fails_fast_old_keeps_serving_tf1_0,
    never_ready_fails_fast_old_keeps_serving_lag10s_tf1_11,
    never_ready_fails_fast_old_keeps_serving_lag10s_tf1_0
);
tf_test_lagged!(
    rollback_on_failure_restores_old_bento,
    rollback_on_failure_restores_old_bento_tf1_11,
    rollback_on_failure_restores_old_bento_tf1_0,
    rollback_on_failure_restores_old_bento_lag10s_tf1_11,
    rollback_on_failure_restores_old_bento_lag10s_tf1_0
);
tf_test_lagged!(
    ctrl_c_mid_wait_then_second_apply_converges,
    ctrl_c_mid_wait_then_second_apply_converges_tf1_11,
    ctrl_c_mid_wait_then_second_apply_converges_tf1_0,
    ctrl_c_mid_wait_then_second_apply_converges_lag10s_tf1_11,
    ctrl_c_mid_wait_then_second_apply_converges_lag10s_tf1_0
);
tf_test!(
    ctrl_c_with_rollback_on_interrupt_puts_the_previous_bento_back,
    ctrl_c_with_rollback_on_interrupt_puts_the_previous_bento_back_tf1_11,
    ctrl_c_with_rollback_on_interrupt_puts_the_previous_bento_back_tf1_0
);
tf_test!(
    scale_to_zero_wakes_on_request,
    scale_to_zero_wakes_on_request_tf1_11,
    scale_to_zero_wakes_on_request_tf1_0
);
tf_test_lagged!(
    control_plane_kill9_mid_rollout_completes,
    control_plane_kill9_mid_rollout_completes_tf1_11,
    control_plane_kill9_mid_rollout_completes_tf1_0,
    control_plane_kill9_mid_rollout_completes_lag10s_tf1_11,
    control_plane_kill9_mid_rollout_completes_lag10s_tf1_0
);
tf_test_lagged!(
    env_only_change_waits_for_the_new_revision,
    env_only_change_waits_for_the_new_revision_tf1_11,
    env_only_change_waits_for_the_new_revision_tf1_0,
    env_only_change_waits_for_the_new_revision_lag10s_tf1_11,
    env_only_change_waits_for_the_new_revision_lag10s_tf1_0
);
tf_test_lagged!(
    scaling_only_change_waits_for_the_new_scale,
    scaling_only_change_waits_for_the_new_scale_tf1_11,
    scaling_only_change_waits_for_the_new_scale_tf1_0,
    scaling_only_change_waits_for_the_new_scale_lag10s_tf1_11,
    scaling_only_change_waits_for_the_new_scale_lag10s_tf1_0
);
tf_test!(
    bento_managed_externally_keeps_ci_bento,
    bento_managed_externally_keeps_ci_bento_tf1_11,
    bento_managed_externally_keeps_ci_bento_tf1_0
);
// Through a 10 s status lag only (the scenario asserts it), with the default settle window.
#[test]
fn changes_end_on_pod_evidence_lag10s_tf1_11() {
    harness::with_status_sync(10_000, || {
        changes_end_on_pod_evidence_through_a_lagging_status(harness::TfVersion::V1_11)
    })
}
#[test]
fn changes_end_on_pod_evidence_lag10s_tf1_0() {
    harness::with_status_sync(10_000, || {
        changes_end_on_pod_evidence_through_a_lagging_status(harness::TfVersion::V1_0)
    })
}

// ------------------------------------------------------------------------------------------
// Helpers
// ------------------------------------------------------------------------------------------

/// One `bentocloud_deployment "app"` block: `name`, `bento`, then `extra` lines verbatim.
fn app(name: &str, bento: &str, extra: &str) -> String {
    format!(
        "resource \"bentocloud_deployment\" \"app\" {{\n  name  = {name:?}\n  bento = {bento:?}\n{extra}}}\n"
    )
}

const ADDR: &str = "bentocloud_deployment.app";

fn fast() -> BentoBehaviour {
    BentoBehaviour::default()
}

fn starting_in(seconds: f64) -> BentoBehaviour {
    BentoBehaviour {
        startup_seconds: Some(seconds),
        ..Default::default()
    }
}

fn never_ready() -> BentoBehaviour {
    BentoBehaviour {
        unready: true,
        ..Default::default()
    }
}

/// The server's view (status, revision, bento, ...) of the test's deployment.
fn sv(server: &Server, name: &str) -> ServerView {
    view(&server.must_get(CLUSTER, name))
}

/// The control plane's own view of the rollout (`/api/local/v1`): live status, phase, and
/// whether the latest revision is the one serving. The tests' assertions only: the API's
/// `status` lags (a `running` right after an update may be the previous revision's).
fn live(server: &Server, name: &str) -> (String, String, bool) {
    let v = server.local(CLUSTER, name);
    let ro = &v["rollout"];
    (
        ro["live_status"].as_str().unwrap_or_default().to_string(),
        ro["phase"].as_str().unwrap_or_default().to_string(),
        ro["serving_revision_uid"] == v["latest_revision"]["uid"],
    )
}

/// Polls until the API reports `status` for a latest revision running `bento` and, for
/// `running`/`scaled-to-zero`, that revision is the one serving (not a stale status).
fn wait_server(server: &Server, name: &str, status: &str, bento: &str, deadline: Duration) {
    let what = format!("{CLUSTER}/{name} to be {status} on {bento}");
    let end = Instant::now() + deadline;
    loop {
        let last = sv(server, name);
        let serving = !matches!(status, "running" | "scaled-to-zero") || live(server, name).2;
        if last.status == status && last.bento == bento && serving {
            return;
        }
        if Instant::now() >= end {
            panic!("timed out after {deadline:?} waiting for {what}; last seen: {last:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// When an update's apply returned: the control plane serves the latest revision (complete,
/// live `running`), which runs `bento`, and the state says `running`. The API's own `status` is
/// the one of its last sync, which lags by design (API doc §10) and may still be the previous
/// revision's when the wait ends on the pods' evidence: it is checked to catch up (polled,
/// with a deadline), not asserted at once.
fn assert_rolled_out(server: &Server, tf: &Tf, name: &str, bento: &str, context: &str) {
    let (live_status, phase, serving) = live(server, name);
    let d = sv(server, name);
    assert!(
        d.bento == bento && live_status == "running" && phase == "complete" && serving,
        "{context}: the control plane serves the latest revision on {bento} (live status \
         {live_status}, phase {phase}, latest serving {serving}): {d:?}"
    );
    assert_eq!(tf.resource(ADDR)["status"], "running", "{context}: state");
    wait_server(server, name, "running", bento, Duration::from_secs(60));
}

/// The deployment URL from Terraform's state, with an API route appended.
fn predict_url(tf: &Tf) -> String {
    let st = tf.resource(ADDR);
    let url = st["url"]
        .as_str()
        .unwrap_or_else(|| panic!("no url in state: {st}"))
        .to_string();
    assert!(url.starts_with("http://127.0.0.1:"), "loopback url: {url}");
    format!("{}/predict", url.trim_end_matches('/'))
}

/// One answer of the endpoint: HTTP status (0 = no HTTP answer) and the bento it names.
#[derive(Debug, Clone)]
struct Sample {
    started: Instant,
    status: u16,
    bento: Option<String>,
    /// The revision of the replica that answered.
    revision: Option<String>,
    detail: String,
}

impl Sample {
    fn ok(&self) -> bool {
        self.status == 200 && self.bento.is_some()
    }
}

async fn one_request(client: &reqwest::Client, url: &str) -> Sample {
    let started = Instant::now();
    match client.get(url).send().await {
        Ok(resp) => {
            let status = resp.status().as_u16();
            let text = resp.text().await.unwrap_or_default();
            let body = serde_json::from_str::<Json>(&text).ok();
            let field = |k: &str| body.as_ref().and_then(|j| j[k].as_str().map(String::from));
            Sample {
                started,
                status,
                bento: field("bento"),
                revision: field("revision"),
                detail: text.chars().take(300).collect(),
            }
        }
        Err(e) => Sample {
            started,
            status: 0,
            bento: None,
            revision: None,
            detail: e.to_string(),
        },
    }
}

/// A few single requests (outside any load generator), for "who serves now" checks.
fn sample_now(url: &str, n: usize) -> Vec<Sample> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .expect("client");
        let mut out = Vec::new();
        for _ in 0..n {
            out.push(one_request(&client, url).await);
        }
        out
    })
}

/// Asserts that `n` requests are all answered 200 by `bento`.
fn assert_served_by(url: &str, bento: &str, n: usize, context: &str) {
    for s in sample_now(url, n) {
        assert!(
            s.ok() && s.bento.as_deref() == Some(bento),
            "{context}: expected {bento} to answer {url}, got status {} bento {:?}: {}",
            s.status,
            s.bento,
            s.detail
        );
    }
}

/// Upper bounds of one load generator: it stops by itself after these even if never told to.
const LOAD_MAX_REQUESTS: usize = 50_000;
const LOAD_MAX_TIME: Duration = Duration::from_secs(300);

/// `workers` loops of sequential GETs to `url` (a short pause between two requests of one
/// loop), recording every answer, until `stop()` or the caps above.
struct LoadGen {
    stop: Arc<AtomicBool>,
    samples: Arc<Mutex<Vec<Sample>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl LoadGen {
    fn start(url: String, workers: usize) -> LoadGen {
        let stop = Arc::new(AtomicBool::new(false));
        let samples = Arc::new(Mutex::new(Vec::new()));
        let (stop2, samples2) = (stop.clone(), samples.clone());
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let client = reqwest::Client::builder()
                    .timeout(Duration::from_secs(30))
                    .build()
                    .expect("client");
                let begun = Instant::now();
                let mut tasks = Vec::new();
                for _ in 0..workers {
                    let (client, url, stop, samples) =
                        (client.clone(), url.clone(), stop2.clone(), samples2.clone());
                    tasks.push(tokio::spawn(async move {
                        while !stop.load(Ordering::SeqCst)
                            && begun.elapsed() < LOAD_MAX_TIME
                            && samples.lock().unwrap().len() < LOAD_MAX_REQUESTS
                        {
                            let s = one_request(&client, &url).await;
                            samples.lock().unwrap().push(s);
                            tokio::time::sleep(Duration::from_millis(10)).await;
                        }
                    }));
                }
                for t in tasks {
                    let _ = t.await;
                }
            });
        });
        LoadGen {
            stop,
            samples,
            thread: Some(thread),
        }
    }

    fn snapshot(&self) -> Vec<Sample> {
        self.samples.lock().unwrap().clone()
    }

    /// Stops the loops and returns every answer, in the order the requests started.
    fn finish(mut self) -> Vec<Sample> {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            t.join().expect("load generator thread");
        }
        let mut v = self.samples.lock().unwrap().clone();
        v.sort_by_key(|s| s.started);
        v
    }
}

impl Drop for LoadGen {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Waits until the load generator has at least `n` successful answers from `bento`.
fn wait_for_answers(load: &LoadGen, bento: &str, n: usize) {
    poll_until(
        &format!("{n} answers from {bento}"),
        Duration::from_secs(60),
        || {
            let s = load.snapshot();
            (s.iter()
                .filter(|s| s.ok() && s.bento.as_deref() == Some(bento))
                .count()
                >= n)
                .then_some(())
        },
    );
}

fn summary(samples: &[Sample]) -> String {
    let mut by: std::collections::BTreeMap<String, usize> = Default::default();
    for s in samples {
        let k = format!("{} {}", s.status, s.bento.as_deref().unwrap_or("-"));
        *by.entry(k).or_default() += 1;
    }
    format!("{} requests: {by:?}", samples.len())
}

/// Writes a `--config` JSON document into `dir` and returns its path.
fn config_file(dir: &Path, json: &str) -> String {
    let p = dir.join("platform.json");
    std::fs::write(&p, json).expect("write server config");
    p.to_string_lossy().to_string()
}

fn assert_plan_exit(tf: &Tf, want: i32, context: &str) {
    let (code, out) = tf.plan_detailed_exitcode();
    assert_eq!(
        code,
        want,
        "{context}: plan -detailed-exitcode (Terraform {}):\n{}",
        tf.version.version(),
        out.describe()
    );
}

// ------------------------------------------------------------------------------------------
// Scenarios
// ------------------------------------------------------------------------------------------

/// Scenario 1: A 3-replica RollingUpdate deployment moves from v1 to v2 through `terraform apply` while
/// three request loops hit its URL: not one request fails, the answers switch from v1 to v2,
/// and every request started after apply returned is answered by v2.
pub fn zero_downtime_rolling_update(v: TfVersion) {
    let server = Server::start();
    server.bentos_add("zdt:v1", &fast());
    // A startup time makes the rollout last a few seconds of traffic.
    server.bentos_add("zdt:v2", &starting_in(1.0));
    let tf = Tf::new(v, &server).with_provider_cluster(CLUSTER);
    let name = dep_name("zdt", v);
    let extra = "  min_replicas        = 3\n  max_replicas        = 3\n  deployment_strategy = \"RollingUpdate\"\n";
    tf.write(&app(&name, "zdt:v1", extra));
    tf.init();
    tf.apply();
    wait_server(&server, &name, "running", "zdt:v1", Duration::from_secs(60));
    let url = predict_url(&tf);

    let load = LoadGen::start(url.clone(), 3);
    wait_for_answers(&load, "zdt:v1", 20);
    let apply_started = Instant::now();
    tf.write(&app(&name, "zdt:v2", extra));
    tf.apply();
    let apply_returned = Instant::now();
    // Keep the traffic going a little after apply returned.
    poll_until(
        "40 requests started after apply returned",
        Duration::from_secs(60),
        || {
            (load
                .snapshot()
                .iter()
                .filter(|s| s.started > apply_returned)
                .count()
                >= 40)
                .then_some(())
        },
    );
    let samples = load.finish();
    let sum = summary(&samples);
    eprintln!("zero downtime: {sum}");

    let failed: Vec<&Sample> = samples.iter().filter(|s| !s.ok()).collect();
    assert!(
        failed.is_empty(),
        "a RollingUpdate must not fail a single request; {} failed ({sum}); first: {:?}",
        failed.len(),
        failed.first()
    );
    let before: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.started < apply_started)
        .collect();
    assert!(
        before.iter().all(|s| s.bento.as_deref() == Some("zdt:v1")),
        "before the apply only v1 answers ({sum})"
    );
    assert!(
        samples
            .iter()
            .any(|s| s.bento.as_deref() == Some("zdt:v2") && s.started < apply_returned),
        "v2 starts answering during the apply, while v1 is still there ({sum})"
    );
    let after: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.started > apply_returned)
        .collect();
    let stale: Vec<&&Sample> = after
        .iter()
        .filter(|s| s.bento.as_deref() != Some("zdt:v2"))
        .collect();
    assert!(
        stale.is_empty(),
        "once apply returned every answer comes from v2; {} of {} did not, first: {:?}",
        stale.len(),
        after.len(),
        stale.first()
    );
    assert_rolled_out(&server, &tf, &name, "zdt:v2", "after the rolling update");
    assert_plan_exit(&tf, 0, "after the rolling update");
}

/// Scenario 2: `Recreate` stops every old replica before starting the new ones: during the apply the
/// endpoint has no ready replica for a while and answers 503 ("has no ready replica"). This is
/// the documented downtime of the strategy; the test asserts it is visible to clients, and that
/// after apply returned v2 answers everything.
pub fn recreate_shows_downtime(v: TfVersion) {
    let server = Server::start();
    server.bentos_add("rec:v1", &fast());
    server.bentos_add("rec:v2", &starting_in(2.0));
    let tf = Tf::new(v, &server).with_provider_cluster(CLUSTER);
    let name = dep_name("rec", v);
    let extra = "  min_replicas        = 2\n  max_replicas        = 2\n  deployment_strategy = \"Recreate\"\n";
    tf.write(&app(&name, "rec:v1", extra));
    tf.init();
    tf.apply();
    let url = predict_url(&tf);

    let load = LoadGen::start(url.clone(), 2);
    wait_for_answers(&load, "rec:v1", 10);
    tf.write(&app(&name, "rec:v2", extra));
    tf.apply();
    let apply_returned = Instant::now();
    poll_until(
        "20 requests started after apply returned",
        Duration::from_secs(60),
        || {
            (load
                .snapshot()
                .iter()
                .filter(|s| s.started > apply_returned)
                .count()
                >= 20)
                .then_some(())
        },
    );
    let samples = load.finish();
    let sum = summary(&samples);
    eprintln!("recreate: {sum}");

    let during: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.started < apply_returned)
        .collect();
    let failed: Vec<&&Sample> = during.iter().filter(|s| !s.ok()).collect();
    assert!(
        !failed.is_empty(),
        "Recreate has downtime: some requests during the apply must fail ({sum})"
    );
    assert!(
        failed.iter().all(|s| s.status == 503),
        "the downtime shows as 503 from the endpoint ({sum}); e.g. {:?}",
        failed.iter().find(|s| s.status != 503)
    );
    // v1 and v2 never answer side by side: no v1 answer after the first v2 answer.
    let first_v2 = samples
        .iter()
        .position(|s| s.bento.as_deref() == Some("rec:v2"))
        .unwrap_or_else(|| panic!("v2 never answered ({sum})"));
    let first_failure = samples
        .iter()
        .position(|s| !s.ok())
        .expect("a failure exists");
    assert!(
        first_failure < first_v2,
        "the gap comes before v2 serves ({sum})"
    );
    let after: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.started > apply_returned)
        .collect();
    assert!(
        after
            .iter()
            .all(|s| s.ok() && s.bento.as_deref() == Some("rec:v2")),
        "after apply returned v2 answers everything ({})",
        summary(&after.into_iter().cloned().collect::<Vec<_>>())
    );
}

/// The server config of the failure scenarios: a 3 s progress deadline.
const SHORT_DEADLINE: &str = r#"{"timing":{"progress_deadline_ms":3000}}"#;

/// Scenario 3: A never-ready bento: apply fails long before `timeouts.update` (5m) with the server's
/// reason, the old revision keeps answering on the URL, and the next plan shows the change.
pub fn never_ready_fails_fast_old_keeps_serving(v: TfVersion) {
    let server = Server::start_with_config(SHORT_DEADLINE);
    server.bentos_add("nr:v1", &fast());
    server.bentos_add("nr:v2", &never_ready());
    let tf = Tf::new(v, &server).with_provider_cluster(CLUSTER);
    let name = dep_name("nr", v);
    let extra = "  min_replicas        = 2\n  max_replicas        = 2\n  deployment_strategy = \"RollingUpdate\"\n  timeouts {\n    update = \"5m\"\n  }\n";
    tf.write(&app(&name, "nr:v1", extra));
    tf.init();
    tf.apply();
    let url = predict_url(&tf);
    assert_served_by(&url, "nr:v1", 5, "before the failed rollout");

    tf.write(&app(&name, "nr:v2", extra));
    let started = Instant::now();
    let out = tf.apply_err();
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(150),
        "apply must fail well before the 5m timeout, took {took:?}:\n{}",
        out.describe()
    );
    let text = format!("{}{}", out.stdout, out.stderr);
    assert!(
        text.contains("did not become ready"),
        "the error carries the platform's reason (\"did not become ready\"):\n{}",
        out.describe()
    );
    assert!(
        !text.to_lowercase().contains("timed out"),
        "the failure is the rollout's, not a timeout:\n{}",
        out.describe()
    );
    let d = sv(&server, &name);
    assert_eq!(d.status, "failed", "server status after the failed rollout");
    assert_served_by(
        &url,
        "nr:v1",
        10,
        "after the failed rollout, v1 keeps serving",
    );
    let (code, plan) = tf.plan_detailed_exitcode();
    assert_eq!(
        code,
        2,
        "the next plan shows the bento change again:\n{}",
        plan.describe()
    );
    assert!(
        plan.stdout.contains("nr:v2"),
        "the plan names the wanted bento:\n{}",
        plan.describe()
    );

    // A fix applied right after the failure succeeds (the `failed` still reported for the
    // previous attempt is not taken as its verdict), and when apply returns the fix serves
    // every request.
    server.bentos_add("nr:v3", &starting_in(1.0));
    tf.write(&app(&name, "nr:v3", extra));
    let fixed = tf.apply();
    assert_rolled_out(
        &server,
        &tf,
        &name,
        "nr:v3",
        &format!(
            "the fix is running when apply returns:\n{}",
            fixed.describe()
        ),
    );
    let st = tf.resource(ADDR);
    let answers = sample_now(&url, 10);
    assert!(
        answers.iter().all(|s| s.ok()
            && s.bento.as_deref() == Some("nr:v3")
            && s.revision.as_ref() == st["revision"].as_str().map(String::from).as_ref()),
        "every answer after the fix's apply comes from its revision: {}",
        summary(&answers)
    );
    assert_plan_exit(&tf, 0, "after the fix");
}

/// Scenario 4: `rollback_on_failure = true` and a never-ready bento: apply fails, the server's latest
/// revision runs the old bento again, and the URL serves it.
pub fn rollback_on_failure_restores_old_bento(v: TfVersion) {
    let server = Server::start_with_config(SHORT_DEADLINE);
    server.bentos_add("rb:v1", &fast());
    server.bentos_add("rb:v2", &never_ready());
    let tf = Tf::new(v, &server).with_provider_cluster(CLUSTER);
    let name = dep_name("rb", v);
    let extra = "  rollback_on_failure = true\n  timeouts {\n    update = \"5m\"\n  }\n";
    tf.write(&app(&name, "rb:v1", extra));
    tf.init();
    tf.apply();
    let url = predict_url(&tf);
    let first_revision = sv(&server, &name).revision;

    tf.write(&app(&name, "rb:v2", extra));
    let out = tf.apply_err();
    let text = format!("{}{}", out.stdout, out.stderr);
    assert!(
        text.contains("did not become ready"),
        "the failure is still reported with its reason:\n{}",
        out.describe()
    );
    let d = sv(&server, &name);
    assert_eq!(
        d.bento,
        "rb:v1",
        "after the rollback the latest revision runs the old bento: {d:?}\n{}",
        out.describe()
    );
    assert_ne!(d.revision, first_revision, "the rollback is a new revision");
    wait_server(&server, &name, "running", "rb:v1", Duration::from_secs(60));
    assert_served_by(&url, "rb:v1", 10, "after the rollback");
    let st = tf.resource(ADDR);
    assert_eq!(st["bento"], "rb:v1", "state records what runs: {st}");
    assert_plan_exit(&tf, 2, "the wanted bento is still rb:v2");
}

/// Scenario 5: Ctrl-C (SIGINT to Terraform's process group) while apply waits for a slow rollout: the
/// apply exits while the rollout is still going on server-side, the state is readable and holds
/// the deployment, and a second apply converges (empty plan afterwards).
pub fn ctrl_c_mid_wait_then_second_apply_converges(v: TfVersion) {
    // A long progress deadline: the slow bento must not fail the rollout.
    let server = Server::start_with_config(r#"{"timing":{"progress_deadline_ms":300000}}"#);
    server.bentos_add("cc:v1", &fast());
    server.bentos_add("cc:v2", &starting_in(25.0));
    let tf = Tf::new(v, &server).with_provider_cluster(CLUSTER);
    let name = dep_name("cc", v);
    tf.write(&app(&name, "cc:v1", ""));
    tf.init();
    tf.apply();
    let old_revision = sv(&server, &name).revision;

    tf.write(&app(&name, "cc:v2", ""));
    let bg = Background::apply(&tf, "apply-ctrl-c");
    poll_until(
        "the server to roll out a new revision on cc:v2",
        Duration::from_secs(120),
        || {
            let d = sv(&server, &name);
            (d.revision != old_revision
                && d.bento == "cc:v2"
                && live(&server, &name).0 == "deploying")
                .then_some(())
        },
    );
    // SIGINT once the provider waits: it logs the revision it rolls out, then waits for it.
    bg.await_provider_waiting(Duration::from_secs(60));
    bg.sigint_group();
    let out = bg
        .wait(Duration::from_secs(120))
        .unwrap_or_else(|text| panic!("apply did not exit after SIGINT:\n{text}"));
    let (code, text) = (out.code, out.describe());
    eprintln!("apply after SIGINT exited {code}:\n{text}");
    let d = sv(&server, &name);
    assert_eq!(
        live(&server, &name).0,
        "deploying",
        "apply exited while the rollout still goes on server-side (it needs ~25 s): {d:?}\n{text}"
    );
    // State is consistent: readable, and it holds the deployment.
    let state = tf.show_json();
    let st = find_resource(&state, ADDR).unwrap_or_else(|| {
        panic!("the deployment is still in state after Ctrl-C:\n{state}\n{text}")
    });
    assert_eq!(st["id"], format!("{CLUSTER}/{name}"), "state id: {st}");
    assert!(
        !tf.dir.path().join(".terraform.tfstate.lock.info").exists(),
        "the state lock was released"
    );

    // "Run `terraform apply` again to converge", says the provider: the second apply must
    // leave the deployment converged, i.e. the new revision running when it returns (not
    // merely an empty plan while the server is still rolling out).
    let second = tf.apply();
    assert_rolled_out(
        &server,
        &tf,
        &name,
        "cc:v2",
        &format!(
            "when the second apply returns the rollout has converged:\n{}",
            second.describe()
        ),
    );
    let st = tf.resource(ADDR);
    assert_eq!(st["bento"], "cc:v2");
    assert_eq!(
        st["status"], "running",
        "state after the second apply: {st}"
    );
    assert_plan_exit(&tf, 0, "after the second apply");
}

/// Scenario 5b: like scenario 5, with `rollback_on_interrupt = true`: after Ctrl-C the provider
/// puts the previous configuration back before it stops, waits for it (bounded), and says so;
/// the server ends on the old bento with a newer revision, the state records what serves, and
/// the next plan shows the wanted change again.
pub fn ctrl_c_with_rollback_on_interrupt_puts_the_previous_bento_back(v: TfVersion) {
    let server = Server::start_with_config(r#"{"timing":{"progress_deadline_ms":300000}}"#);
    server.bentos_add("ri:v1", &fast());
    server.bentos_add("ri:v2", &starting_in(120.0));
    let tf = Tf::new(v, &server).with_provider_cluster(CLUSTER);
    let name = dep_name("ri", v);
    let extra = "  rollback_on_interrupt = true\n";
    tf.write(&app(&name, "ri:v1", extra));
    tf.init();
    tf.apply();
    let first_revision = sv(&server, &name).revision;

    tf.write(&app(&name, "ri:v2", extra));
    let bg = Background::apply(&tf, "apply-rollback-on-interrupt");
    bg.await_provider_waiting(Duration::from_secs(60));
    let v2_revision = sv(&server, &name).revision;
    assert_ne!(v2_revision, first_revision, "v2 was submitted");
    bg.sigint_group();
    let out = bg
        .wait(Duration::from_secs(150))
        .unwrap_or_else(|text| panic!("apply did not exit after SIGINT:\n{text}"));
    let (code, text) = (out.code, out.describe());
    assert_ne!(code, 0, "an interrupted apply fails:\n{text}");
    assert!(
        text.contains("Rolled back"),
        "the diagnostic reports the rollback:\n{text}"
    );
    // The rollback is a new revision on the old bento, already serving when apply returned.
    let d = sv(&server, &name);
    assert_eq!(
        d.bento, "ri:v1",
        "the previous bento is back: {d:?}\n{text}"
    );
    assert_ne!(d.revision, v2_revision, "the rollback is a newer revision");
    let (_, phase, latest_serves) = live(&server, &name);
    assert!(
        latest_serves && phase == "complete",
        "the rollback had rolled out when apply returned: phase {phase}\n{text}"
    );
    let st = tf.resource(ADDR);
    assert_eq!(st["bento"], "ri:v1", "state records what serves: {st}");
    assert_eq!(st["revision"], d.revision.as_str(), "state: {st}");
    assert_plan_exit(&tf, 2, "the wanted bento is still ri:v2");
}

/// Scenario 6: `min_replicas = 0`: the deployment scales to zero when idle (`scaled-to-zero`), and a
/// request to its URL wakes it and is answered.
pub fn scale_to_zero_wakes_on_request(v: TfVersion) {
    let server = Server::start();
    server.bentos_add("stz:v1", &starting_in(1.0));
    let tf = Tf::new(v, &server).with_provider_cluster(CLUSTER);
    let name = dep_name("stz", v);
    tf.write(&app(
        &name,
        "stz:v1",
        "  min_replicas = 0\n  max_replicas = 2\n",
    ));
    tf.init();
    tf.apply();
    let st = tf.resource(ADDR);
    let status = st["status"].as_str().unwrap_or_default().to_string();
    assert!(
        status == "running" || status == "scaled-to-zero",
        "apply accepts running or scaled-to-zero with min 0: {st}"
    );
    let url = predict_url(&tf);
    wait_server(
        &server,
        &name,
        "scaled-to-zero",
        "stz:v1",
        Duration::from_secs(120),
    );
    let s = sample_now(&url, 1).remove(0);
    assert!(
        s.ok() && s.bento.as_deref() == Some("stz:v1"),
        "a request wakes the deployment and is answered: status {} {:?} {}",
        s.status,
        s.bento,
        s.detail
    );
    assert_eq!(
        live(&server, &name).0,
        "running",
        "the deployment is awake after the request (the control plane's view; the API reports it at its next status sync)"
    );
    assert_plan_exit(&tf, 0, "scale to zero and wake are not drift");
}

/// Scenario 7: kill -9 of the control plane mid-rollout (apply with `wait_for_rollout = false`), then a
/// restart on the same data dir and address: the rollout completes with the same revision,
/// nothing of the deployment is lost, the URL serves the new bento, and the plan is empty.
pub fn control_plane_kill9_mid_rollout_completes(v: TfVersion) {
    let cfg_dir = temp_dir("rollouts-cfg-");
    let cfg = config_file(
        cfg_dir.path(),
        r#"{"timing":{"progress_deadline_ms":120000}}"#,
    );
    let mut server = Server::start_process(&["--config", &cfg]);
    server.bentos_add("k9:v1", &fast());
    server.bentos_add("k9:v2", &starting_in(6.0));
    let tf = Tf::new(v, &server).with_provider_cluster(CLUSTER);
    let name = dep_name("k9", v);
    let extra = "  min_replicas        = 2\n  max_replicas        = 2\n  deployment_strategy = \"RollingUpdate\"\n  wait_for_rollout    = false\n  labels = { team = \"ml\" }\n  envs   = { MODE = \"fast\" }\n";
    tf.write(&app(&name, "k9:v1", extra));
    tf.init();
    tf.apply();
    wait_server(&server, &name, "running", "k9:v1", Duration::from_secs(60));
    let old_revision = sv(&server, &name).revision;

    tf.write(&app(&name, "k9:v2", extra));
    tf.apply();
    let before = sv(&server, &name);
    assert_ne!(
        before.revision, old_revision,
        "apply submitted a new revision"
    );
    assert_eq!(before.bento, "k9:v2");
    assert_eq!(
        live(&server, &name).1,
        "rolling",
        "the rollout is under way: {before:?}"
    );
    // Mid-rollout: a replica of the new bento exists and is starting (it needs 6 s).
    poll_until(
        "a replica of k9:v2 to be starting",
        Duration::from_secs(60),
        || {
            server
                .pods(CLUSTER, &name)
                .iter()
                .any(|p| {
                    !p.status.ready
                        && p.labels.get("yatai.ai/bento-version").map(String::as_str) == Some("v2")
                })
                .then_some(())
        },
    );
    assert_eq!(
        live(&server, &name).0,
        "deploying",
        "still mid-rollout before the kill"
    );
    server.kill9();
    server.restart_same_address(&["--config", &cfg]);

    wait_server(&server, &name, "running", "k9:v2", Duration::from_secs(180));
    let after = sv(&server, &name);
    assert_eq!(
        after.revision, before.revision,
        "the same revision completed"
    );
    let comparable = |s: &ServerView| ServerView {
        status: String::new(),
        ..s.clone()
    };
    assert_eq!(
        comparable(&after),
        comparable(&before),
        "nothing of the deployment was lost across kill -9"
    );
    assert!(
        server
            .all_deployment_ids()
            .contains(&format!("{CLUSTER}/{name}")),
        "the deployment is listed"
    );
    let url = predict_url(&tf);
    poll_until(
        "v1 replicas drained after the rollout",
        Duration::from_secs(60),
        || {
            sample_now(&url, 6)
                .iter()
                .all(|s| s.ok() && s.bento.as_deref() == Some("k9:v2"))
                .then_some(())
        },
    );
    assert_plan_exit(&tf, 0, "after the restart the rollout is complete");
}

/// Scenario 8: `bento_managed_externally = true`: CI changes the bento through the API; the plan shows
/// no change, and an apply of another change (labels) keeps the CI-deployed bento.
pub fn bento_managed_externally_keeps_ci_bento(v: TfVersion) {
    let server = Server::start();
    server.bentos_add("ci:v1", &fast());
    server.bentos_add("ci:v2", &fast());
    let tf = Tf::new(v, &server).with_provider_cluster(CLUSTER);
    let name = dep_name("ci", v);
    let cfg = |team: &str| {
        app(
            &name,
            "ci:v1",
            &format!("  bento_managed_externally = true\n  labels = {{ team = {team:?} }}\n"),
        )
    };
    tf.write(&cfg("a"));
    tf.init();
    tf.apply();

    // CI deploys v2 out of band.
    server.update_from(CLUSTER, &name, |req| req.bento = "ci:v2".into());
    wait_server(&server, &name, "running", "ci:v2", Duration::from_secs(60));
    assert_plan_exit(&tf, 0, "a CI-deployed bento is not drift");

    tf.write(&cfg("b"));
    let plan = tf.plan_json();
    let (before, after) = planned_change(&plan, ADDR);
    assert_eq!(
        before["bento"], after["bento"],
        "the plan does not touch bento"
    );
    tf.apply();
    let d = sv(&server, &name);
    assert_eq!(d.bento, "ci:v2", "apply kept the CI-deployed bento: {d:?}");
    assert_eq!(d.labels, map_of(&[("team", "b")]), "labels applied");
    let st = tf.resource(ADDR);
    assert_eq!(st["deployed_bento"], "ci:v2", "state: {st}");
    let url = predict_url(&tf);
    wait_server(&server, &name, "running", "ci:v2", Duration::from_secs(60));
    assert_served_by(&url, "ci:v2", 5, "after the labels apply");
    assert_plan_exit(&tf, 0, "after the labels apply");
}

/// Asserts that when an apply returned, the revision in state is the one the control plane
/// serves (its own view) and that every request is answered by it.
fn assert_new_revision_serves_everything(server: &Server, tf: &Tf, name: &str, context: &str) {
    let st = tf.resource(ADDR);
    let revision = st["revision"].as_str().unwrap_or_default().to_string();
    let local = server.local(CLUSTER, name);
    assert_eq!(
        local["latest_revision"]["uid"], revision,
        "{context}: state names the latest revision"
    );
    assert_eq!(
        local["rollout"]["serving_revision_uid"], revision,
        "{context}: the control plane serves that revision when apply returned: {}",
        local["rollout"]
    );
    let answers = sample_now(&predict_url(tf), 10);
    assert!(
        answers
            .iter()
            .all(|s| s.ok() && s.revision.as_deref() == Some(revision.as_str())),
        "{context}: every answer comes from revision {revision}: {:?}",
        answers
            .iter()
            .map(|s| (s.status, s.revision.clone()))
            .collect::<Vec<_>>()
    );
}

/// Scenario 9: an env-only change (same bento): the bento version cannot tell the new replicas
/// from the old, yet apply returns only once the new revision serves every request.
pub fn env_only_change_waits_for_the_new_revision(v: TfVersion) {
    let server = Server::start();
    server.bentos_add("env:v1", &starting_in(1.0));
    let tf = Tf::new(v, &server).with_provider_cluster(CLUSTER);
    let name = dep_name("env", v);
    let cfg = |mode: &str| {
        app(
            &name,
            "env:v1",
            &format!("  min_replicas        = 2\n  max_replicas        = 2\n  deployment_strategy = \"RollingUpdate\"\n  envs = {{ MODE = {mode:?} }}\n"),
        )
    };
    tf.write(&cfg("a"));
    tf.init();
    tf.apply();
    let first = tf.resource(ADDR)["revision"].clone();
    tf.write(&cfg("b"));
    tf.apply();
    assert_ne!(tf.resource(ADDR)["revision"], first, "a new revision");
    assert_eq!(sv(&server, &name).envs, map_of(&[("MODE", "b")]));
    assert_new_revision_serves_everything(&server, &tf, &name, "after the env-only change");
    assert_plan_exit(&tf, 0, "after the env-only change");
}

/// Scenario 10: a scaling-only change: apply returns once the new scale serves.
pub fn scaling_only_change_waits_for_the_new_scale(v: TfVersion) {
    let server = Server::start();
    server.bentos_add("sc:v1", &starting_in(1.0));
    let tf = Tf::new(v, &server).with_provider_cluster(CLUSTER);
    let name = dep_name("sc", v);
    let cfg = |n: i64| {
        app(
            &name,
            "sc:v1",
            &format!("  min_replicas = {n}\n  max_replicas = {n}\n  deployment_strategy = \"RollingUpdate\"\n"),
        )
    };
    tf.write(&cfg(1));
    tf.init();
    tf.apply();
    tf.write(&cfg(3));
    tf.apply();
    let local = server.local(CLUSTER, &name);
    assert!(
        local["rollout"]["ready_replicas"].as_u64().unwrap_or(0) >= 3,
        "three replicas ready when apply returned: {}",
        local["rollout"]
    );
    assert_new_revision_serves_everything(&server, &tf, &name, "after the scaling-only change");
    assert_plan_exit(&tf, 0, "after the scaling-only change");
}

/// The configuration of [`changes_end_on_pod_evidence_through_a_lagging_status`]: a secret
/// (value from `var.pw`) and a 2-or-more-replica RollingUpdate deployment using it, redeployed
/// when it changes.
fn evidence_config(name: &str, bento: &str, mode: &str, replicas: i64) -> String {
    format!(
        r#"variable "pw" {{
  type      = string
  sensitive = true
}}

resource "bentocloud_secret" "db" {{
  name  = "{name}-db"
  items = {{
    DB_PASSWORD = var.pw
  }}
}}

resource "bentocloud_deployment" "app" {{
  name                = "{name}"
  bento               = "{bento}"
  min_replicas        = {replicas}
  max_replicas        = {replicas}
  deployment_strategy = "RollingUpdate"
  envs                = {{ MODE = "{mode}" }}
  secrets             = [bentocloud_secret.db.name]
  redeploy_triggers   = {{ db = bentocloud_secret.db.version }}
}}
"#
    )
}

/// What every replica behind the endpoint answers to `?env=MODE&env=DB_PASSWORD` (`n`
/// requests): the set of (bento, MODE, DB_PASSWORD) seen, and the replicas that answered.
fn replicas_serve(
    url: &str,
    n: usize,
) -> (
    std::collections::BTreeSet<(String, String, String)>,
    std::collections::BTreeSet<String>,
) {
    let target = format!(
        "{}/whoami?env=MODE&env=DB_PASSWORD",
        url.trim_end_matches('/')
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("client");
        let (mut seen, mut replicas) = (
            std::collections::BTreeSet::new(),
            std::collections::BTreeSet::new(),
        );
        for _ in 0..n {
            let resp = client
                .get(&target)
                .send()
                .await
                .unwrap_or_else(|e| panic!("GET {target}: {e}"));
            assert_eq!(resp.status().as_u16(), 200, "GET {target}");
            let body: Json = resp.json().await.expect("JSON answer");
            let s = |v: &Json| v.as_str().unwrap_or("<unset>").to_string();
            seen.insert((
                s(&body["bento"]),
                s(&body["env"]["MODE"]),
                s(&body["env"]["DB_PASSWORD"]),
            ));
            replicas.insert(s(&body["replica"]));
        }
        (seen, replicas)
    })
}

/// Scenario 11: through a status that lags 10 s and a provider settle window
/// left at its default (2 minutes), a bento change, an env-only change, a secret rotation
/// redeploy and a scaling-only change each apply, and when apply returns every replica
/// serves the change and nothing else is left serving. None may be decided by the settle
/// window: the provider's log must not say `status_sync_period ... has passed` (the rollouts
/// end on their pods' evidence, or on a status shown synced).
pub fn changes_end_on_pod_evidence_through_a_lagging_status(v: TfVersion) {
    let server = Server::start();
    assert_eq!(
        server.status_sync_ms, 10_000,
        "run through with_status_sync"
    );
    server.bentos_add("pe:v1", &starting_in(1.0));
    server.bentos_add("pe:v2", &starting_in(1.0));
    let logs = temp_dir("pod-evidence-logs-");
    let plugin_log = logs.path().join("provider.log");
    let mut tf = Tf::new(v, &server)
        .with_provider_cluster(CLUSTER)
        .with_default_status_sync_period();
    assert!(
        !tf.env
            .iter()
            .any(|(k, _)| k == "BENTOCLOUD_STATUS_SYNC_PERIOD"),
        "the settle window stays at its default"
    );
    tf.env
        .push(("PLUGIN_LOG_FILE".into(), plugin_log.display().to_string()));
    let name = dep_name("pe", v);
    let tfvars = |pw: &str| {
        std::fs::write(
            tf.dir.path().join("terraform.tfvars"),
            format!("pw = \"{pw}\"\n"),
        )
        .expect("write tfvars");
    };
    let log_len = || std::fs::metadata(&plugin_log).map_or(0, |m| m.len() as usize);
    // One apply: the change it makes, then what every replica must answer, and how many
    // replicas must serve.
    let step = |what: &str, want: (&str, &str, &str), replicas: usize| {
        let from = log_len();
        let before = sv(&server, &name).revision;
        tf.apply();
        let log = std::fs::read_to_string(&plugin_log).unwrap_or_default();
        let log = log.get(from..).unwrap_or_default();
        // hclog lines, module `bentocloud.wait` (see `bentocloud::logging`).
        let waited: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("\"bentocloud.wait\""))
            .collect();
        assert!(!waited.is_empty(), "{what}: the provider logged its wait");
        eprintln!("{what}: the wait logged:\n{}", waited.join("\n"));
        for line in log.lines() {
            assert!(
                !(line.contains("status_sync_period") && line.contains("has passed")),
                "{what}: the settle window decided, not the evidence: {line}"
            );
        }
        let after = sv(&server, &name);
        assert_ne!(after.revision, before, "{what}: a new revision");
        assert_eq!(
            tf.resource(ADDR)["revision"],
            after.revision.as_str(),
            "{what}: state names it"
        );
        let url = tf.resource(ADDR)["url"]
            .as_str()
            .expect("url in state")
            .to_string();
        let want = (want.0.to_string(), want.1.to_string(), want.2.to_string());
        let (seen, answered) = replicas_serve(&url, 10 * replicas);
        assert_eq!(
            seen,
            [want].into(),
            "{what}: every replica serves the change when apply returned"
        );
        assert_eq!(
            answered.len(),
            replicas,
            "{what}: {replicas} replicas answer: {answered:?}"
        );
        // The pods: exactly the wanted replicas serve, nothing older is left serving.
        let pods = server.pods(CLUSTER, &name);
        let serving: Vec<_> = pods
            .iter()
            .filter(|p| p.status.ready && !p.is_terminating())
            .collect();
        assert_eq!(serving.len(), replicas, "{what}: serving pods {pods:?}");
        let local = server.local(CLUSTER, &name);
        assert_eq!(
            local["rollout"]["serving_revision_uid"],
            after.revision.as_str(),
            "{what}: the control plane serves the new revision: {}",
            local["rollout"]
        );
    };

    tf.write(&evidence_config(&name, "pe:v1", "a", 2));
    tfvars("pw-one");
    tf.init();
    tf.apply();
    tf.write(&evidence_config(&name, "pe:v2", "a", 2));
    step("bento change", ("pe:v2", "a", "pw-one"), 2);
    tf.write(&evidence_config(&name, "pe:v2", "b", 2));
    step("env-only change", ("pe:v2", "b", "pw-one"), 2);
    tfvars("pw-two");
    step("secret rotation redeploy", ("pe:v2", "b", "pw-two"), 2);
    tf.write(&evidence_config(&name, "pe:v2", "b", 3));
    step("scaling-only change", ("pe:v2", "b", "pw-two"), 3);
    assert_plan_exit(&tf, 0, "after the four changes");
}
