//! Progressive delivery (`progressive_rollout`) end to end, under load from the bench's load
//! generator (`bentocloud-bench load`, a separate process that records, per 100 ms bucket, the
//! answers per `x-bentocloud-target`): a good bento promoted through its steps with the
//! canary's share of the traffic matching each step's weight; a bento crashing after it became
//! ready, and one answering 500 on the probed path, aborted at the first step without main
//! ever changing; Ctrl-C during a bake removing the canary, then a second apply delivering.
//!
//! Step windows are aligned on the control plane's timeline (`routing`: each change of the
//! split the endpoint applies, with the time it began, by the server's clock, which is this
//! machine's, as is the load generator's `start_unix_ms`). Every wait polls with a deadline.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value as Json;

use crate::background::Background;
use crate::harness::{self, *};

const CLUSTER: &str = "local-east";
const ADDR: &str = "bentocloud_deployment.app";
/// The canary version the provider runs (`PROGRESSIVE_VERSION`).
const CANARY: &str = "canary";
/// The load's rate (requests/s) and connections.
const RATE: u32 = 100;
const WORKERS: u32 = 4;

// ------------------------------------------------------------------------------------------
// The load generator
// ------------------------------------------------------------------------------------------

/// `bentocloud-bench load` in the background until its stop file exists (at most 115 s).
struct Load {
    child: Child,
    prefix: PathBuf,
    stop: PathBuf,
}

/// One 100 ms bucket of the load's answers for one target.
#[derive(Debug, Clone)]
struct Bucket {
    /// Start of the bucket, epoch milliseconds.
    at_ms: i64,
    target: String,
    ok: u64,
    failed: u64,
}

/// What the load generator recorded.
struct LoadResult {
    summary: Json,
    buckets: Vec<Bucket>,
}

impl Load {
    fn start(dir: &Path, tag: &str, url: &str, header: Option<&str>) -> Load {
        let prefix = dir.join(format!("load-{tag}"));
        let stop = dir.join(format!("load-{tag}.stop"));
        let mut cmd = Command::new(harness::bench_bin());
        cmd.args(["load", "--url", url, "--rate", &RATE.to_string()])
            .args(["--workers", &WORKERS.to_string(), "--duration-s", "115"])
            .arg("--out")
            .arg(&prefix)
            .arg("--stop-file")
            .arg(&stop);
        if let Some(h) = header {
            cmd.args(["--header", h]);
        }
        let child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start bentocloud-bench load");
        Load {
            child,
            prefix,
            stop,
        }
    }

    fn finish(mut self) -> LoadResult {
        std::fs::write(&self.stop, b"").expect("write the load's stop file");
        let status = wait_with_deadline(&mut self.child, Duration::from_secs(30))
            .expect("the load generator stops after its stop file");
        assert!(status.success(), "bentocloud-bench load failed: {status}");
        let json = self.prefix.with_extension("json");
        let text = std::fs::read_to_string(&json).expect("load summary");
        let summary: Json = serde_json::from_str(&text).expect("load summary JSON");
        let start = summary["start_unix_ms"].as_i64().expect("start_unix_ms");
        let csv = std::fs::read_to_string(self.prefix.with_extension("targets.csv"))
            .expect("targets.csv");
        let buckets = csv
            .lines()
            .skip(1)
            .filter_map(|l| {
                let f: Vec<&str> = l.split(',').collect();
                Some(Bucket {
                    at_ms: start + f.first()?.parse::<i64>().ok()?,
                    target: f.get(1)?.to_string(),
                    ok: f.get(2)?.parse().ok()?,
                    failed: f.get(3)?.parse().ok()?,
                })
            })
            .collect();
        LoadResult { summary, buckets }
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Answers and failures of the buckets in `[from_ms, to_ms)`: (per target ok+failed, failed
/// per target).
fn tally(
    buckets: &[Bucket],
    from_ms: i64,
    to_ms: i64,
) -> (
    std::collections::BTreeMap<String, u64>,
    std::collections::BTreeMap<String, u64>,
) {
    let mut all = std::collections::BTreeMap::new();
    let mut failed = std::collections::BTreeMap::new();
    for b in buckets
        .iter()
        .filter(|b| b.at_ms >= from_ms && b.at_ms < to_ms)
    {
        *all.entry(b.target.clone()).or_insert(0) += b.ok + b.failed;
        *failed.entry(b.target.clone()).or_insert(0) += b.failed;
    }
    (all, failed)
}

fn total(m: &std::collections::BTreeMap<String, u64>) -> u64 {
    m.values().sum()
}

// ------------------------------------------------------------------------------------------
// The server's side
// ------------------------------------------------------------------------------------------

fn app(name: &str, bento: &str, progressive: &str) -> String {
    format!(
        "resource \"bentocloud_deployment\" \"app\" {{\n  name  = {name:?}\n  bento = {bento:?}\n  min_replicas = 1\n  max_replicas = 1\n{progressive}}}\n"
    )
}

fn progressive(steps: &str, bake: &str, extra: &str) -> String {
    format!("  progressive_rollout {{\n    steps     = {steps}\n    bake_time = {bake:?}\n{extra}  }}\n")
}

fn server() -> Server {
    Server::start()
}

fn bento(startup: f64) -> BentoBehaviour {
    BentoBehaviour {
        startup_seconds: Some(startup),
        ..Default::default()
    }
}

/// One change of the split the endpoint applies (the timeline's `routing`).
#[derive(Debug, Clone)]
struct Routing {
    at_ms: i64,
    /// The canary's weight (`None`: no canary).
    canary: Option<u64>,
    route_type: Option<String>,
}

fn routing(server: &Server, name: &str) -> Vec<Routing> {
    let (status, text) = server.request(
        reqwest::Method::GET,
        &format!("/api/local/v1/deployments/{name}/timeline?cluster={CLUSTER}"),
        None,
    );
    assert_eq!(status, 200, "timeline: {text}");
    let v: Json = serde_json::from_str(&text).expect("timeline JSON");
    v["routing"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|r| Routing {
            at_ms: r["at_ms"].as_i64().unwrap_or(0),
            canary: r["weights"][CANARY].as_u64(),
            route_type: r["route_type"].as_str().map(str::to_string),
        })
        .collect()
}

fn url_of(server: &Server, name: &str) -> String {
    server.local(CLUSTER, name)["urls"][0]
        .as_str()
        .expect("deployment url")
        .trim_end_matches('/')
        .to_string()
}

fn unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The canary pods of `version` and whether every one is ready.
fn canary_pods(server: &Server, name: &str, version: &str) -> (usize, bool) {
    let pods: Vec<_> = server
        .pods(CLUSTER, name)
        .into_iter()
        .filter(|p| p.status.is_canary && !p.is_terminating())
        .filter(|p| {
            p.labels
                .get(bentocloud::api::POD_BENTO_VERSION_LABEL)
                .map(String::as_str)
                == Some(version)
        })
        .collect();
    (pods.len(), pods.iter().all(|p| p.status.ready))
}

/// Watches the deployment's pods (the pods websocket) every 200 ms until stopped: every
/// bento version a non-canary pod showed.
struct MainWatch {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<(std::collections::BTreeSet<String>, usize)>,
}

impl MainWatch {
    fn start(server: &Server, name: &str) -> MainWatch {
        let url = reqwest::Url::parse(&server.endpoint).expect("endpoint URL");
        let mut cfg = bentocloud::client::ClientConfig::new(url, server.token.clone());
        cfg.requests_per_second = 0.0;
        let client = bentocloud::client::Client::new(cfg).expect("client");
        let stop = Arc::new(AtomicBool::new(false));
        let (flag, name) = (stop.clone(), name.to_string());
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            let mut versions = std::collections::BTreeSet::new();
            let mut looks = 0;
            while !flag.load(Ordering::Relaxed) {
                if let Ok(pods) = rt.block_on(client.deployment_pods(CLUSTER, &name)) {
                    looks += 1;
                    for p in pods.iter().filter(|p| !p.status.is_canary) {
                        versions.insert(
                            p.labels
                                .get(bentocloud::api::POD_BENTO_VERSION_LABEL)
                                .cloned()
                                .unwrap_or_default(),
                        );
                    }
                }
                std::thread::sleep(Duration::from_millis(200));
            }
            (versions, looks)
        });
        MainWatch { stop, thread }
    }

    fn finish(self) -> (std::collections::BTreeSet<String>, usize) {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().expect("pods watcher")
    }
}

/// The deployment on `cluster/name` serves `bento` with no canary left.
fn assert_no_canary(server: &Server, name: &str, context: &str) {
    let d = server.must_get(CLUSTER, name);
    let versions = d.canary().and_then(|c| c.versions).unwrap_or_default();
    assert!(
        versions.is_empty(),
        "{context}: no canary version is left on the server: {versions:?}"
    );
    let last = routing(server, name);
    assert_eq!(
        last.last().and_then(|r| r.canary),
        None,
        "{context}: the endpoint's last split sends everything to main: {last:?}"
    );
}

/// A plan after an abort shows the bento change again.
fn assert_change_planned(tf: &Tf, context: &str) {
    let (code, out) = tf.plan_detailed_exitcode();
    assert_eq!(
        code,
        2,
        "{context}: the next plan shows the change again:\n{}",
        out.describe()
    );
}

/// The tolerance of a canary share measured over `n` requests routed at random with
/// probability `p`: 4 standard deviations of the binomial share (a false failure about once
/// in 16 000 steps), plus 1 point for requests of the window's edge buckets that were routed
/// under the neighbouring split.
fn tolerance(p: f64, n: u64) -> f64 {
    4.0 * (p * (1.0 - p) / n as f64).sqrt() + 0.01
}

// ------------------------------------------------------------------------------------------
// Scenarios
// ------------------------------------------------------------------------------------------

/// 1. A good bento goes through steps [10, 30, 60] (3 s bakes) and is promoted: no request
///    fails, and during each step's bake the share of answers from the canary is the step's
///    weight within [`tolerance`].
pub fn good_bento_promoted_through_its_steps(v: TfVersion) {
    let server = server();
    server.bentos_add("pg:v1", &bento(0.5));
    server.bentos_add("pg:v2", &bento(0.5));
    let tf = Tf::new(v, &server).with_provider_cluster(CLUSTER);
    let name = dep_name("pg", v);
    let steps = [10u64, 30, 60];
    let bake_ms = 3_000;
    let block = progressive("[10, 30, 60]", "3s", "");
    tf.write(&app(&name, "pg:v1", &block));
    tf.init();
    tf.apply();
    let url = url_of(&server, &name);
    harness::bench_bin();

    let load = Load::start(tf.dir.path(), "promote", &format!("{url}/"), None);
    let began = unix_ms();
    tf.write(&app(&name, "pg:v2", &block));
    let bg = Background::apply(&tf, "promote");
    let out = bg.finish(Duration::from_secs(180));
    let res = load.finish();
    let text = flat(&out.describe());
    assert_eq!(out.code, 0, "the progressive apply succeeds:\n{text}");
    for (i, w) in steps.iter().enumerate() {
        let line = format!("step {}/3: canary pg:v2 at {w}%", i + 1);
        assert!(
            out.stderr.contains(&line),
            "the INFO log names step {}: {line:?}\n{text}",
            i + 1
        );
    }
    assert_eq!(
        res.summary["failures"], 0,
        "no request fails through the steps and the promotion: {}",
        res.summary
    );

    // The endpoint applied each weight in order, then no canary (the promotion).
    let changes: Vec<Routing> = routing(&server, &name)
        .into_iter()
        .filter(|r| r.at_ms >= began - 1_000)
        .collect();
    let weights: Vec<Option<u64>> = changes.iter().map(|r| r.canary).collect();
    assert_eq!(
        weights,
        vec![Some(10), Some(30), Some(60), None],
        "the timeline's routing changes: {changes:?}"
    );
    for (i, w) in steps.iter().enumerate() {
        // The bake of step i ends when step i+1's split begins; the canary's pods were ready
        // (the provider saw them) for the whole bake before it. The window: the bake's last
        // 2.4 s, 200 ms off each end.
        let end = changes[i + 1].at_ms - 200;
        let start = changes[i + 1].at_ms - bake_ms + 400;
        let (all, failed) = tally(&res.buckets, start, end);
        let n = total(&all);
        let c = all.get(CANARY).copied().unwrap_or(0);
        let share = c as f64 / n as f64;
        let p = *w as f64 / 100.0;
        let tol = tolerance(p, n);
        eprintln!(
            "step {} ({w}%): {c} of {n} answers from the canary = {:.1}% (tolerance {:.1} points)",
            i + 1,
            share * 100.0,
            tol * 100.0
        );
        assert!(
            n >= 150,
            "step {}: enough requests in its window: {all:?}",
            i + 1
        );
        assert_eq!(total(&failed), 0, "step {}: no failure: {failed:?}", i + 1);
        assert!(
            (share - p).abs() <= tol,
            "step {} ({w}%): the canary served {:.1}% of {n} requests, outside {w}% ± {:.1}: {all:?}",
            i + 1,
            share * 100.0,
            tol * 100.0
        );
    }

    // Promoted: main serves v2 with no canary, state says v2, the plan is empty.
    server.wait_rolled_out(CLUSTER, &name);
    assert_no_canary(&server, &name, "after the promotion");
    let d = server.must_get(CLUSTER, &name);
    assert_eq!(
        view(&d).bento,
        "pg:v2",
        "the deployment itself serves the new bento"
    );
    assert_eq!(tf.resource(ADDR)["bento"], "pg:v2");
    tf.assert_no_changes("after the promotion");
}

/// Runs a progressive apply of `bad` over `good` that must abort at step 1, under load
/// (`header`: routed to the canary too), watching main's pods. Returns the apply's output,
/// the load's result and the time of the abort (the routing change removing the canary).
struct Aborted {
    out: TfOutput,
    res: LoadResult,
    abort_ms: i64,
    routed: Vec<Routing>,
}

fn abort_under_load(
    server: &Server,
    tf: &Tf,
    name: &str,
    bad: &str,
    block: &str,
    path: &str,
    header: Option<&str>,
) -> Aborted {
    let url = url_of(server, name);
    harness::bench_bin();
    let before = view(&server.must_get(CLUSTER, name)).bento;
    let watch = MainWatch::start(server, name);
    let load = Load::start(tf.dir.path(), "abort", &format!("{url}{path}"), header);
    let began = unix_ms();
    tf.write(&app(name, bad, block));
    let out = Background::apply(tf, "abort").finish(Duration::from_secs(180));
    // After the abort: 3 more seconds of load, which must all be answered by main.
    let after = unix_ms();
    poll_until(
        "3 s of load after the abort",
        Duration::from_secs(10),
        || (unix_ms() >= after + 3_000).then_some(()),
    );
    let res = load.finish();
    let (versions, looks) = watch.finish();
    let text = flat(&out.describe());
    assert_ne!(out.code, 0, "the progressive apply fails:\n{text}");
    assert!(looks >= 5, "the pods were watched ({looks} looks)");
    let good = tf.resource(ADDR)["bento"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let good_version = good.split(':').nth(1).unwrap_or_default().to_string();
    assert_eq!(
        versions,
        std::collections::BTreeSet::from([good_version]),
        "main's pods ran only the old bento throughout"
    );
    assert_eq!(
        view(&server.must_get(CLUSTER, name)).bento,
        before,
        "main's target still has the old bento"
    );
    assert!(
        text.contains("aborted at step 1 of"),
        "the error names the step:\n{text}"
    );
    assert_no_canary(server, name, "after the abort");
    let routed: Vec<Routing> = routing(server, name)
        .into_iter()
        .filter(|r| r.at_ms >= began - 1_000)
        .collect();
    let abort_ms = routed
        .iter()
        .rev()
        .find(|r| r.canary.is_none() && r.route_type.is_none())
        .map(|r| r.at_ms)
        .unwrap_or_else(|| panic!("a routing change removed the canary: {routed:?}"));
    // State keeps the old bento; the next plan shows the change again.
    assert_change_planned(tf, "after the abort");
    Aborted {
        out,
        res,
        abort_ms,
        routed,
    }
}

/// 2. A bento that crashes 3 s after it became ready is aborted at the first step (20%): main
///    never changed, no request to main failed, the failed share while the canary took traffic
///    stays within the step's weight, none failed after the abort; the error names the check
///    and the step; the next plan shows the change again.
pub fn crashing_bento_aborted_at_the_first_step(v: TfVersion) {
    let server = server();
    server.bentos_add("cr:v1", &bento(0.5));
    server.bentos_add(
        "cr:v2",
        &BentoBehaviour {
            startup_seconds: Some(0.5),
            crash_after_seconds: Some(3.0),
            ..Default::default()
        },
    );
    let tf = Tf::new(v, &server).with_provider_cluster(CLUSTER);
    let name = dep_name("cr", v);
    let block = progressive("[20, 60]", "30s", "");
    tf.write(&app(&name, "cr:v1", &block));
    tf.init();
    tf.apply();
    let a = abort_under_load(&server, &tf, &name, "cr:v2", &block, "/", None);
    let text = flat(&a.out.describe());
    assert!(
        [
            "check `crash loop`",
            "check `restarts`",
            "check `not ready`"
        ]
        .iter()
        .any(|c| text.contains(c)),
        "the error names a pod check:\n{text}"
    );
    let start = a.routed.first().map(|r| r.at_ms).unwrap_or(0);
    let (all, failed) = tally(&a.res.buckets, start, a.abort_ms + 500);
    let (n, f) = (total(&all), total(&failed));
    let tol = tolerance(0.2, n.max(1));
    eprintln!(
        "crash: {f} of {n} requests failed while the canary ran ({failed:?}); abort at {}",
        a.abort_ms
    );
    assert_eq!(
        failed.get("main").copied().unwrap_or(0),
        0,
        "no request answered by main failed: {failed:?}"
    );
    assert!(
        (f as f64) / (n.max(1) as f64) <= 0.2 + tol,
        "the failed share while the canary ran is at most its weight: {f} of {n}"
    );
    let (later, later_failed) = tally(&a.res.buckets, a.abort_ms + 500, i64::MAX);
    assert!(total(&later) >= 100, "load ran after the abort: {later:?}");
    assert_eq!(
        total(&later_failed),
        0,
        "no request failed after the abort: {later_failed:?}"
    );
    assert_eq!(
        tf.resource(ADDR)["bento"],
        "cr:v1",
        "state keeps the old bento"
    );
}

/// 3. A ready bento answering 500 on `/predict` is aborted by the probe analysis (header
///    routing, probes every second): the error names check `probe`; requests routed to main
///    (the load without the header, on the same path) never fail; a second load routed to the
///    canary by the header sees its first failure at most one probe interval and one poll
///    (plus the removal's round trip) before the abort.
pub fn failing_path_aborted_by_the_probes(v: TfVersion) {
    let server = server();
    server.bentos_add("fp:v1", &bento(0.5));
    server.bentos_add(
        "fp:v2",
        &BentoBehaviour {
            startup_seconds: Some(0.5),
            fail_paths: vec!["/predict".into()],
            ..Default::default()
        },
    );
    let tf = Tf::new(v, &server).with_provider_cluster(CLUSTER);
    let name = dep_name("fp", v);
    let block = progressive(
        "[20, 60]",
        "30s",
        "    route_type = \"header\"\n    route_by   = \"x-canary\"\n    analysis {\n      probe_path     = \"/predict\"\n      probe_interval = \"1s\"\n    }\n",
    );
    tf.write(&app(&name, "fp:v1", &block));
    tf.init();
    tf.apply();
    let url = url_of(&server, &name);
    harness::bench_bin();
    // Requests naming the canary: they fail once it serves.
    let to_canary = Load::start(
        tf.dir.path(),
        "to-canary",
        &format!("{url}/predict"),
        Some("x-canary:canary"),
    );
    let a = abort_under_load(&server, &tf, &name, "fp:v2", &block, "/predict", None);
    let canary_res = to_canary.finish();
    let text = flat(&a.out.describe());
    assert!(
        text.contains("check `probe` failed"),
        "the error names the probe check:\n{text}"
    );
    assert_eq!(
        a.res.summary["failures"], 0,
        "requests without the header go to main and never fail: {}",
        a.res.summary
    );
    let first_failure = canary_res
        .buckets
        .iter()
        .filter(|b| b.target == CANARY && b.failed > 0)
        .map(|b| b.at_ms)
        .min()
        .unwrap_or_else(|| panic!("the canary answered 500 to requests naming it"));
    let detect = a.abort_ms - first_failure;
    eprintln!("probe: first failed request to the abort: {detect} ms");
    assert!(
        detect <= 5_000,
        "the abort follows the canary's first failed request within a probe interval and a poll (with slack for 2 shared cores): {detect} ms"
    );
    let (later, later_failed) = tally(&canary_res.buckets, a.abort_ms + 500, i64::MAX);
    assert_eq!(
        total(&later_failed),
        0,
        "after the abort, requests naming the canary go to main: {later:?}"
    );
    assert_eq!(
        tf.resource(ADDR)["bento"],
        "fp:v1",
        "state keeps the old bento"
    );
}

/// 4. Ctrl-C during a bake removes the canary and the error says the apply was interrupted;
///    a later apply starts the progression again and succeeds.
pub fn ctrl_c_during_a_bake_removes_the_canary(v: TfVersion) {
    let server = server();
    server.bentos_add("cc:v1", &bento(0.5));
    server.bentos_add("cc:v2", &bento(0.5));
    let tf = Tf::new(v, &server).with_provider_cluster(CLUSTER);
    let name = dep_name("pcc", v);
    let block = progressive("[20, 50]", "3s", "");
    let long = progressive("[20, 50]", "60s", "");
    tf.write(&app(&name, "cc:v1", &long));
    tf.init();
    tf.apply();
    let url = url_of(&server, &name);
    harness::bench_bin();
    let load = Load::start(tf.dir.path(), "ctrl-c", &format!("{url}/"), None);

    tf.write(&app(&name, "cc:v2", &long));
    let bg = Background::apply(&tf, "ctrl-c");
    poll_until_seen(
        "the canary's pods ready",
        Duration::from_secs(60),
        || match canary_pods(&server, &name, "v2") {
            (n, true) if n > 0 => Ok(()),
            seen => Err(format!("{seen:?}")),
        },
    );
    // And the provider baking (it logs the step's bake once it saw them ready).
    let err = tf.dir.path().join(".ctrl-c.stderr");
    poll_until(
        "the provider to bake step 1",
        Duration::from_secs(30),
        || {
            std::fs::read_to_string(&err)
                .ok()
                .filter(|e| e.contains("canary pods ready; baking"))
                .map(|_| ())
        },
    );
    bg.sigint_group();
    let out = bg.finish(Duration::from_secs(60));
    let text = flat(&out.describe());
    assert_ne!(out.code, 0, "an interrupted apply fails:\n{text}");
    assert!(
        text.contains("interrupted"),
        "the error says it was interrupted:\n{text}"
    );
    assert!(
        text.contains("The canary was removed"),
        "the error says the canary was removed:\n{text}"
    );
    assert_no_canary(&server, &name, "after Ctrl-C");
    poll_until_seen(
        "the canary's pods gone",
        Duration::from_secs(60),
        || match canary_pods(&server, &name, "v2") {
            (0, _) => Ok(()),
            seen => Err(format!("{seen:?}")),
        },
    );
    assert_eq!(
        tf.resource(ADDR)["bento"],
        "cc:v1",
        "state keeps the old bento"
    );
    assert_change_planned(&tf, "after Ctrl-C");

    // Again, with short bakes: the progression starts over and succeeds.
    let again = unix_ms();
    tf.write(&app(&name, "cc:v2", &block));
    tf.apply();
    let res = load.finish();
    assert_eq!(
        res.summary["failures"], 0,
        "no request failed through Ctrl-C and the second apply: {}",
        res.summary
    );
    let weights: Vec<Option<u64>> = routing(&server, &name)
        .into_iter()
        .filter(|r| r.at_ms >= again)
        .map(|r| r.canary)
        .collect();
    assert_eq!(
        weights,
        vec![Some(20), Some(50), None],
        "the second apply went through every step again"
    );
    server.wait_rolled_out(CLUSTER, &name);
    assert_eq!(view(&server.must_get(CLUSTER, &name)).bento, "cc:v2");
    assert_eq!(tf.resource(ADDR)["bento"], "cc:v2");
    tf.assert_no_changes("after the second apply");
}
