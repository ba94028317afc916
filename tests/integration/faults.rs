//! The provider against a failing control plane: a fleet of 30 deployments
//! applied through 30% injected faults of every kind, and kill -9 of the control plane in the
//! middle of an apply (from outside, and by the server aborting right after it committed a
//! create, so the create's answer is lost), then a restart on the same data dir and address.
//!
//! Faults come from `bentocloud-local`'s own injector (`PUT /api/local/v1/faults`, seeded);
//! every assertion reads the server with faults off.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use serde_json::{json, Value as Json};

// `tf_test!` names `harness::TfVersion`.
use crate::background::Background;
use crate::harness;
use crate::harness::*;

const CLUSTER: &str = "local-east";
const BENTO: &str = "tiny:v1";
const FAULTS_PATH: &str = "/api/local/v1/faults";

tf_test!(
    fleet_of_30_under_faults_of_every_kind,
    fleet_of_30_under_faults_of_every_kind_tf1_11,
    fleet_of_30_under_faults_of_every_kind_tf1_0
);
tf_test!(
    fleet_of_30_under_retryable_faults,
    fleet_of_30_under_retryable_faults_tf1_11,
    fleet_of_30_under_retryable_faults_tf1_0
);
tf_test!(
    kill9_mid_apply_loses_nothing_and_converges,
    kill9_mid_apply_loses_nothing_and_converges_tf1_11,
    kill9_mid_apply_loses_nothing_and_converges_tf1_0
);
tf_test!(
    abort_after_committed_create_loses_nothing_and_converges,
    abort_after_committed_create_loses_nothing_and_converges_tf1_11,
    abort_after_committed_create_loses_nothing_and_converges_tf1_0
);

// ------------------------------------------------------------------------------------------
// Helpers
// ------------------------------------------------------------------------------------------

fn tiny() -> BentoBehaviour {
    BentoBehaviour {
        startup_seconds: Some(0.1),
        ..Default::default()
    }
}

/// `count = n` deployments named `{prefix}-{index}` of [`BENTO`], with the provider's
/// request limits set.
fn fleet_hcl(prefix: &str, n: usize) -> String {
    format!(
        r#"provider "bentocloud" {{
  cluster                 = "{CLUSTER}"
  max_concurrent_requests = 8
  requests_per_second     = 50
}}

resource "bentocloud_deployment" "d" {{
  count = {n}
  name  = "{prefix}-${{count.index}}"
  bento = "{BENTO}"
}}
"#
    )
}

fn fleet_ids(prefix: &str, n: usize) -> BTreeSet<String> {
    (0..n).map(|i| format!("{CLUSTER}/{prefix}-{i}")).collect()
}

/// `PUT /api/local/v1/faults`; panics unless the server accepts it.
fn set_faults(server: &Server, cfg: &Json) {
    let (status, text) = server.request(reqwest::Method::PUT, FAULTS_PATH, Some(cfg));
    assert_eq!(status, 200, "PUT {FAULTS_PATH} {cfg}: {status}: {text}");
}

/// Faults off; returns how many were injected (all rules) until now.
fn faults_off(server: &Server) -> u64 {
    let (status, text) = server.request(reqwest::Method::GET, FAULTS_PATH, None);
    assert_eq!(status, 200, "GET {FAULTS_PATH}: {status}: {text}");
    let v: Json = serde_json::from_str(&text).expect("fault status is JSON");
    let injected = v["injected"]
        .as_array()
        .map(|a| a.iter().filter_map(Json::as_u64).sum())
        .unwrap_or(0);
    let (status, text) = server.request(reqwest::Method::DELETE, FAULTS_PATH, None);
    assert_eq!(status, 200, "DELETE {FAULTS_PATH}: {status}: {text}");
    injected
}

/// Removes ANSI colour sequences (the server's log is coloured).
fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // ESC [ ... final byte in @..~
            for d in chars.by_ref() {
                if ('@'..='~').contains(&d) && d != '[' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// How many injections of each kind/phase/method the server logged (`injecting a fault`).
fn injected_kinds(log: &str) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for line in strip_ansi(log)
        .lines()
        .filter(|l| l.contains("injecting a fault"))
    {
        let field = |key: &str| {
            line.split_once(&format!("{key}="))
                .map(|(_, rest)| rest.split(' ').next().unwrap_or_default().to_string())
                .unwrap_or_default()
        };
        let fault = line
            .split_once("fault=")
            .map(|(_, rest)| rest.split(" phase=").next().unwrap_or_default().to_string())
            .unwrap_or_default();
        let key = format!("{} {} {}", field("method"), fault, field("phase"));
        *out.entry(key).or_insert(0) += 1;
    }
    out
}

/// State == server for every deployment in the state, and the state holds exactly `want`.
fn assert_state_equals_server(tf: &Tf, server: &Server, want: &BTreeSet<String>, context: &str) {
    let state = tf.show_json();
    let resources = state["values"]["root_module"]["resources"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut in_state = BTreeSet::new();
    for r in resources
        .iter()
        .filter(|r| r["type"] == "bentocloud_deployment")
    {
        let st = &r["values"];
        let name = st["name"].as_str().unwrap_or_default().to_string();
        let cluster = st["cluster"].as_str().unwrap_or_default().to_string();
        let sv = server.settled_view(&cluster, &name);
        assert_eq!(
            sv.bento, BENTO,
            "{context}: {cluster}/{name} bento on the server"
        );
        assert_state_matches_server(st, &sv, &format!("{context} ({})", r["address"]));
        assert!(
            in_state.insert(format!("{cluster}/{name}")),
            "{context}: {cluster}/{name} twice in the state"
        );
    }
    assert_eq!(&in_state, want, "{context}: deployments in the state");
}

/// Deployments in the state (cluster/name), without asserting anything about the server.
fn state_ids(tf: &Tf) -> BTreeSet<String> {
    let state = tf.show_json();
    state["values"]["root_module"]["resources"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|r| r["type"] == "bentocloud_deployment")
                .map(|r| {
                    format!(
                        "{}/{}",
                        r["values"]["cluster"].as_str().unwrap_or_default(),
                        r["values"]["name"].as_str().unwrap_or_default()
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The 30-deployment apply through 30% faults drawn from `faults`.
fn fleet_under(v: TfVersion, prefix: &str, rules: Json, seed: u64) {
    let server = Server::start();
    server.bentos_add(BENTO, &tiny());
    let tf = Tf::new(v, &server);
    let prefix = dep_name(prefix, v);
    const N: usize = 30;
    tf.write(&fleet_hcl(&prefix, N));
    tf.init();

    set_faults(&server, &json!({"seed": seed, "rules": rules}));
    let out = tf.run(&["apply", "-input=false", "-no-color", "-auto-approve"]);
    let injected = faults_off(&server);
    let kinds = injected_kinds(&server.log());
    eprintln!("[faults] {injected} faults injected during the apply: {kinds:?}");
    assert_eq!(
        out.code,
        0,
        "apply under 30% injected faults failed ({injected} injected: {kinds:?}):\n{}",
        out.describe()
    );
    assert!(injected > 0, "no fault was injected");

    let want = fleet_ids(&prefix, N);
    assert_eq!(
        server.all_deployment_ids(),
        want,
        "the server has exactly the {N} deployments (no duplicate, none missing)"
    );
    assert_state_equals_server(&tf, &server, &want, "after the apply under faults");
    tf.assert_no_changes("plan after the apply under faults (faults off)");
}

// ------------------------------------------------------------------------------------------
// Scenarios
// ------------------------------------------------------------------------------------------

/// 30 deployments, 30% of the API requests faulted with 500, 502, 503, 429 + Retry-After,
/// 300 ms of latency and dropped connections, each before or after the handler: the apply
/// succeeds, the server has exactly the 30, and the state equals the server.
pub fn fleet_of_30_under_faults_of_every_kind(v: TfVersion) {
    fleet_under(
        v,
        "flt",
        json!([{"rate": 0.3, "phase": "both", "faults": [
            {"kind": "error", "status": 500},
            {"kind": "error", "status": 502},
            {"kind": "error", "status": 503},
            {"kind": "rate_limit", "retry_after_seconds": 1},
            {"kind": "latency", "ms": 300},
            {"kind": "drop"}
        ]}]),
        4242,
    );
}

/// The faults the client documents as retryable, each where its meaning holds: 429 and 503
/// only before the handler ("not processed"), 502, dropped connections and latency before or
/// after it (outcome unknown). About 30% of the requests in all (1 - 0.85 * 0.82). Separates
/// "the provider survives what it promises to" from the full mix above (500, and 429/503
/// after a commit).
pub fn fleet_of_30_under_retryable_faults(v: TfVersion) {
    fleet_under(
        v,
        "flr",
        json!([
            {"rate": 0.15, "phase": "before", "faults": [
                {"kind": "error", "status": 503},
                {"kind": "rate_limit", "retry_after_seconds": 1}
            ]},
            {"rate": 0.18, "phase": "both", "faults": [
                {"kind": "error", "status": 502},
                {"kind": "latency", "ms": 300},
                {"kind": "drop"}
            ]}
        ]),
        4243,
    );
}

/// How the control plane dies in the middle of the apply.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Death {
    /// SIGKILL from the test once a few deployments exist.
    Kill9,
    /// The server aborts itself right after committing a create (its answer is lost).
    AbortAfterCommit,
}

fn server_is_down(server: &Server) -> bool {
    let addr = server.endpoint.trim_start_matches("http://");
    std::net::TcpStream::connect(addr).is_err()
}

fn killed_mid_apply(v: TfVersion, death: Death) {
    const N: usize = 20;
    // A process: it is killed (or aborts itself) and restarted.
    let mut server = Server::start_process(&[]);
    // Slow enough that the apply is still creating and waiting when the server dies.
    server.bentos_add(
        BENTO,
        &BentoBehaviour {
            startup_seconds: Some(1.5),
            ..Default::default()
        },
    );
    let tf = Tf::new(v, &server);
    let prefix = dep_name(
        match death {
            Death::Kill9 => "k9",
            Death::AbortAfterCommit => "ab",
        },
        v,
    );
    tf.write(&fleet_hcl(&prefix, N));
    tf.init();
    if death == Death::AbortAfterCommit {
        // The 6th create is committed, then the process aborts without answering.
        set_faults(
            &server,
            &json!({"seed": 1, "rules": [{
                "method": "POST", "path_prefix": "/api/v2/deployments", "rate": 1.0,
                "phase": "after", "skip": 5, "limit": 1, "faults": [{"kind": "abort"}]}]}),
        );
    }

    let apply = Background::apply(&tf, "bg-apply");
    // Acknowledged writes: deployments the server listed (so committed) before it died.
    let mut acknowledged = BTreeSet::new();
    let end = Instant::now() + Duration::from_secs(300);
    loop {
        match death {
            Death::Kill9 => {
                acknowledged = server.all_deployment_ids();
                if acknowledged.len() >= 6 {
                    server.kill9();
                    break;
                }
            }
            Death::AbortAfterCommit => {
                if server_is_down(&server) {
                    server.kill9(); // reaps the aborted process
                    break;
                }
                // The server may die during the listing: keep the last complete one.
                if let Ok(ids) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    server.all_deployment_ids()
                })) {
                    acknowledged = ids;
                }
            }
        }
        assert!(
            Instant::now() < end,
            "the control plane was not killed within 5 minutes ({death:?}); server has {acknowledged:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!(
        "[faults] {death:?} with {} deployments acknowledged",
        acknowledged.len()
    );
    // Down for a moment: the provider meets refused connections, then the same endpoint again.
    std::thread::sleep(Duration::from_secs(2));
    server.restart_same_address(&[]);
    let after_restart = server.all_deployment_ids();
    let lost: Vec<_> = acknowledged.difference(&after_restart).collect();
    assert!(
        lost.is_empty(),
        "acknowledged deployments lost by the restart: {lost:?}"
    );

    let out = apply.finish(Duration::from_secs(600));
    let (code, output) = (out.code, out.describe());
    eprintln!("[faults] the apply during the {death:?} exited {code}");
    let want = fleet_ids(&prefix, N);
    let on_server = server.all_deployment_ids();
    let stray: Vec<_> = on_server.difference(&want).collect();
    assert!(stray.is_empty(), "deployments nobody asked for: {stray:?}");
    let in_state = state_ids(&tf);
    let phantom: Vec<_> = in_state.difference(&on_server).collect();
    assert!(
        phantom.is_empty(),
        "the state holds deployments the server does not have: {phantom:?}\n{output}"
    );
    if code == 0 {
        assert_eq!(
            on_server, want,
            "the apply succeeded, so every deployment exists"
        );
        assert_state_equals_server(&tf, &server, &want, "after the apply that converged");
    }

    // Whatever the first apply did, a second one converges from its state.
    let second = tf.run(&["apply", "-input=false", "-no-color", "-auto-approve"]);
    assert_eq!(
        second.code,
        0,
        "the second apply after the {death:?} failed (first apply exited {code}):\n{}\n\
         ---- first apply ----\n{output}",
        second.describe()
    );
    assert_eq!(
        server.all_deployment_ids(),
        want,
        "after the second apply the server has exactly the {N} deployments"
    );
    assert_state_equals_server(&tf, &server, &want, "after the second apply");
    tf.assert_no_changes("plan after the second apply");
}

/// kill -9 of the control plane while an apply of 20 deployments runs, then a restart on the
/// same data dir and address: no acknowledged deployment is lost; the apply converges or a
/// second apply does (then the plan is empty and the state equals the server).
pub fn kill9_mid_apply_loses_nothing_and_converges(v: TfVersion) {
    killed_mid_apply(v, Death::Kill9);
}

/// The control plane aborts right after committing a create, before answering it (the
/// outcome-unknown create), then restarts: same guarantees, and no duplicate.
pub fn abort_after_committed_create_loses_nothing_and_converges(v: TfVersion) {
    killed_mid_apply(v, Death::AbortAfterCommit);
}
