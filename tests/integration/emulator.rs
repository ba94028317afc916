//! Integration tests of `bentocloud-local` over real HTTP: the server runs in-process on
//! 127.0.0.1:0 with a temp data dir; `serve` returns its endpoint and token as it starts.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bentocloud::api::{Bento, Deployment, InstanceType, ListResponse};
use bentocloud_local::{self as emulator, Clock, Config, LocalDeployment, PlatformConfig};
use reqwest::{Client, Method, StatusCode};
use serde_json::{json, Value};

struct Server {
    endpoint: String,
    token: String,
    dir: PathBuf,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<Result<(), String>>>,
    http: Client,
    /// The control plane's clock: `Clock::Real` unless the test steps it.
    clock: Clock,
}

/// The control plane's timings for these tests. The status sync runs on every tick: these
/// tests check how replicas and rollouts behave; the lag of the reported status has its own
/// test (`reported_status_lags_the_revision_like_the_platform`).
fn platform() -> PlatformConfig {
    let mut p = platform_with_lag();
    p.timing.status_sync_ms = 0;
    p
}

/// [`platform`] with the default status sync period (the real-platform default).
fn platform_with_lag() -> PlatformConfig {
    let mut p = PlatformConfig::default();
    p.timing.progress_deadline_ms = 1_500;
    p.timing.drain_ms = 100;
    p.timing.scale_to_zero_idle_ms = 1_000;
    p.timing.scale_down_window_ms = 1_000;
    p
}

/// Starts the control plane as it runs by default: unknown bentos are BentoCloud's 404, so a
/// test registers what it deploys ([`Server::register`]).
async fn start(dir: &Path) -> Server {
    start_with(dir, false, None, Client::new(), platform(), Clock::Real).await
}

/// `auto_register_bentos`: the opt-in of `serve --auto-register-bentos`.
async fn start_with(
    dir: &Path,
    auto_register_bentos: bool,
    tls: Option<emulator::TlsFiles>,
    http: Client,
    platform: PlatformConfig,
    clock: Clock,
) -> Server {
    // Stale files from a previous run must not be mistaken for this one.
    let _ = std::fs::remove_file(dir.join("endpoint"));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let cfg = Config {
        data_dir: dir.to_path_buf(),
        api_token: None,
        auto_register_bentos,
        platform,
        tls,
        clock: clock.clone(),
    };
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let (started, serving) = emulator::serve(listener, &cfg, async {
        let _ = rx.await;
    })
    .expect("start bentocloud-local");
    // What a process would read from the files agrees with what serve returned.
    let endpoint_file = std::fs::read_to_string(dir.join("endpoint")).expect("endpoint file");
    assert_eq!(endpoint_file, started.endpoint, "DIR/endpoint");
    let token_file = std::fs::read_to_string(dir.join("token")).expect("token file");
    assert_eq!(token_file, started.token, "DIR/token");
    let task = tokio::spawn(serving);
    let emulator::Started {
        endpoint, token, ..
    } = started;
    Server {
        endpoint,
        token,
        dir: dir.to_path_buf(),
        stop: Some(tx),
        task: Some(task),
        http,
        clock,
    }
}

impl Server {
    async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            t.await.expect("join").expect("serve ok");
        }
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        self.call_as(&self.token.clone(), method, path, body).await
    }

    async fn call_as(
        &self,
        token: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.endpoint))
            .header("X-YATAI-API-TOKEN", token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("send");
        let status = resp.status();
        let text = resp.text().await.expect("text");
        let v =
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON ({status}): {text}"));
        (status, v)
    }

    async fn raw(&self, method: Method, path: &str, body: Vec<u8>) -> (StatusCode, Value) {
        let resp = self
            .http
            .request(method, format!("{}{path}", self.endpoint))
            .header("X-YATAI-API-TOKEN", &self.token)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("send");
        let status = resp.status();
        let v = resp.json().await.expect("json");
        (status, v)
    }

    async fn create(&self, cluster: &str, body: Value) -> Deployment {
        let (st, v) = self
            .call(
                Method::POST,
                &format!("/api/v2/deployments?cluster={cluster}"),
                Some(body),
            )
            .await;
        assert_eq!(st, StatusCode::OK, "{v}");
        check_shape(&v);
        serde_json::from_value(v).expect("Deployment")
    }

    async fn get(&self, name: &str, cluster: &str) -> (StatusCode, Value) {
        self.call(
            Method::GET,
            &format!("/api/v2/deployments/{name}?cluster={cluster}"),
            None,
        )
        .await
    }

    /// The deployment with its rollout progress (`/api/local/v1`, not the real API).
    async fn get_local(&self, name: &str, cluster: &str) -> (StatusCode, Value) {
        self.call(
            Method::GET,
            &format!("/api/local/v1/deployments/{name}?cluster={cluster}"),
            None,
        )
        .await
    }

    /// Polls until the deployment's reported status is `want`; returns the deployment with
    /// its rollout progress and every distinct status seen.
    async fn wait_status(
        &self,
        name: &str,
        cluster: &str,
        want: &str,
        secs: u64,
    ) -> (LocalDeployment, Vec<String>) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        let mut seen: Vec<String> = Vec::new();
        loop {
            let (st, v) = self.get_local(name, cluster).await;
            assert_eq!(st, StatusCode::OK, "{v}");
            let s = v["status"].as_str().expect("status").to_string();
            if seen.last() != Some(&s) {
                seen.push(s.clone());
            }
            if s == want {
                return (serde_json::from_value(v).expect("parse"), seen);
            }
            assert!(
                Instant::now() < deadline,
                "{name} never reached {want}; saw {seen:?}"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

/// The resource keys every document carries.
const BASE_KEYS: [&str; 7] = bentocloud::api::ResourceMeta::KEYS;

/// What the official client needs from a deployment document (api doc §8).
/// A full document (get, create, update, ...): exactly one URL.
fn check_shape(v: &Value) {
    check_item_shape(v);
    assert_eq!(
        v["urls"].as_array().map(Vec::len),
        Some(1),
        "exactly one url"
    );
}

/// A list item: the full document's keys but no `urls` (API doc §3.3), like the real API.
fn check_list_item_shape(v: &Value) {
    check_item_shape(v);
    assert!(v.get("urls").is_none(), "a list item has no urls: {v}");
}

fn check_item_shape(v: &Value) {
    for k in BASE_KEYS.iter().chain(&[
        "status",
        "kube_namespace",
        "creator",
        "cluster",
        "latest_revision",
    ]) {
        assert!(v.get(*k).is_some(), "deployment lacks {k}: {v}");
    }
    assert!(v["created_at"].is_string());
    assert!(v["labels"].is_array());
    assert!(v["creator"]["name"].is_string() && v["creator"]["email"].is_string());
    for k in BASE_KEYS {
        assert!(v["cluster"].get(k).is_some(), "cluster lacks {k}");
        assert!(v["latest_revision"].get(k).is_some(), "revision lacks {k}");
    }
    assert!(v["cluster"]["creator"].is_object());
    let t = &v["latest_revision"]["targets"][0];
    assert!(t["config"].is_object(), "target config null");
    let b = &t["bento"];
    assert!(b.is_object(), "target bento null");
    assert_eq!(b["name"], b["version"]);
    for k in BASE_KEYS {
        assert!(t.get(k).is_some(), "target lacks {k}");
        assert!(b.get(k).is_some(), "bento lacks {k}");
        assert!(b["repository"].get(k).is_some(), "repository lacks {k}");
    }
    for k in [
        "description",
        "image_build_status",
        "upload_status",
        "upload_finished_reason",
        "presigned_upload_url",
        "presigned_download_url",
    ] {
        assert!(b[k].is_string(), "bento.{k} is not a string");
    }
}

fn dep_body(name: &str, bento: &str, labels: &[(&str, &str)]) -> Value {
    json!({
        "name": name, "bento": bento, "dev": false, "access_authorization": false,
        "envs": [{"name": "GLOBAL", "value": "1"}],
        "labels": labels.iter().map(|(k, v)| json!({"key": k, "value": v})).collect::<Vec<_>>(),
        "secrets": null,
        "services": {"apiserver": {"instance_type": "cpu.2",
            "scaling": {"min_replicas": 1, "max_replicas": 2, "policy": null},
            "envs": null, "deployment_strategy": "RollingUpdate", "extras": null,
            "cold_start_timeout": null, "config_overrides": {}}},
        "canary": null,
    })
}

#[tokio::test]
async fn auth_is_checked_first_and_reveals_nothing() {
    let dir = tempfile::tempdir().expect("tmp");
    let s = start(dir.path()).await;
    s.register("iris:v1", json!({})).await;
    s.create("", dep_body("exists", "iris:v1", &[])).await;
    for token in ["", "wrong"] {
        for path in [
            "/api/v2/deployments/exists",
            "/api/v2/deployments/ghost",
            "/api/v1/nope",
            "/api/v2/deployments",
        ] {
            let (st, v) = s.call_as(token, Method::GET, path, None).await;
            assert_eq!(st, StatusCode::UNAUTHORIZED, "{path}");
            assert_eq!(v, json!({"error": "invalid api token"}));
        }
        let (st, _) = s
            .call_as(token, Method::POST, "/api/v2/deployments", Some(json!({})))
            .await;
        assert_eq!(st, StatusCode::UNAUTHORIZED);
    }
    let (st, v) = s.call(Method::GET, "/api/v1/auth/current", None).await;
    assert_eq!(st, StatusCode::OK);
    for k in ["name", "email", "first_name", "last_name"] {
        assert!(v[k].is_string());
    }
    let (st, v) = s.call(Method::GET, "/api/v1/current_org", None).await;
    assert_eq!(st, StatusCode::OK);
    for k in BASE_KEYS.iter().chain(&["description"]) {
        assert!(v.get(*k).is_some(), "org lacks {k}");
    }
    // Another organisation sees nothing of this one.
    let other = emulator::add_org_token(&s.dir, "acme").expect("token");
    let (st, v) = s
        .call_as(
            &other,
            Method::GET,
            "/api/v2/deployments/exists?cluster=",
            None,
        )
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND, "{v}");
    let (_, v) = s
        .call_as(&other, Method::GET, "/api/v2/deployments?count=100", None)
        .await;
    assert_eq!(v["total"], 0);
    let (st, v) = s.call(Method::GET, "/api/v1/unknown", None).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    assert!(v["error"].is_string());
    s.stop().await;
}

#[tokio::test]
async fn create_get_update_terminate_delete() {
    let dir = tempfile::tempdir().expect("tmp");
    let s = start(dir.path()).await;
    s.register("iris:v1", json!({})).await;
    s.register("iris:v2", json!({})).await;
    let d = s
        .create("", dep_body("demo", "iris:v1", &[("team", "ml")]))
        .await;
    assert_eq!(d.meta.name, "demo");
    assert_eq!(d.cluster.meta.name, "local-east");
    assert_eq!(d.cluster.is_first, Some(true));
    assert_eq!(d.bento_tag().as_deref(), Some("iris:v1"));
    let rev1 = d.revision_uid().expect("rev").to_string();
    let url = d.urls.clone().expect("urls")[0].clone();
    assert!(url.starts_with(&s.endpoint));

    let (st, v) = s
        .call(
            Method::POST,
            "/api/v2/deployments?cluster=",
            Some(dep_body("demo", "iris:v1", &[])),
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert_eq!(
        v["error"],
        "deployment \"demo\" already exists in cluster \"local-east\""
    );

    let (d, seen) = s.wait_status("demo", "", "running", 10).await;
    assert!(
        seen.iter().any(|x| x == "deploying")
            && ["non-deployed", "deploying"].contains(&seen[0].as_str()),
        "{seen:?}"
    );
    let ro = d.rollout.clone();
    assert_eq!(
        (ro.revision_uid.as_str(), ro.serving_revision_uid.as_str()),
        (rev1.as_str(), rev1.as_str())
    );
    assert_eq!(ro.ready_replicas, 1);

    // The endpoint answers from a ready replica of this revision.
    let body: Value = reqwest::get(format!("{url}predict"))
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert_eq!(body["bento"], "iris:v1");
    assert_eq!(body["revision"], rev1.as_str());

    // Full PUT with labels: null keeps labels and makes a new revision.
    let mut upd = dep_body("demo", "iris:v2", &[]);
    upd["labels"] = Value::Null;
    let (st, v) = s
        .call(
            Method::PUT,
            "/api/v2/deployments/demo?cluster=local-east",
            Some(upd),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    check_shape(&v);
    let d: Deployment = serde_json::from_value(v).expect("parse");
    assert_eq!(d.meta.labels.len(), 1);
    let rev2 = d.revision_uid().expect("rev").to_string();
    assert_ne!(rev2, rev1);
    // `running` right after the update is the previous revision's: wait for it on rev2.
    let v = s.wait_serving("demo", &rev2, "running", 10).await;
    let d: LocalDeployment = serde_json::from_value(v).expect("parse");
    assert_eq!(d.deployment.bento_tag().as_deref(), Some("iris:v2"));

    let (st, v) = s
        .call(
            Method::PUT,
            "/api/v2/deployments/demo/void_update?cluster=",
            None,
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_ne!(v["latest_revision"]["uid"].as_str(), Some(rev2.as_str()));

    let (st, v) = s
        .call(
            Method::POST,
            "/api/v2/deployments/demo/terminate?cluster=",
            None,
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(v["status"], "terminating");
    let t0 = Instant::now();
    s.wait_status("demo", "", "terminated", 5).await;
    assert!(
        t0.elapsed() < Duration::from_secs(2),
        "terminate took {:?}",
        t0.elapsed()
    );

    let (st, v) = s
        .call(Method::DELETE, "/api/v2/deployments/demo?cluster=", None)
        .await;
    assert_eq!(st, StatusCode::OK);
    check_shape(&v);
    let (st, v) = s.get("demo", "").await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    assert!(v["error"]
        .as_str()
        .expect("msg")
        .contains("record not found"));
    let (st, _) = s
        .call(Method::DELETE, "/api/v2/deployments/demo?cluster=", None)
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    s.stop().await;
}

/// Keys of a deployment document on the real API (API doc §3.3, `api-samples/`): the
/// emulator must not add any (the provider could otherwise come to depend on them): its own
/// keys, beside the resource keys ([`BASE_KEYS`]).
const REAL_DEPLOYMENT_KEYS: [&str; 7] = [
    "status",
    "kube_namespace",
    "creator",
    "cluster",
    "latest_revision",
    "manifest",
    "urls",
];

fn assert_only_real_keys(v: &Value, what: &str) {
    let obj = v.as_object().expect("object");
    for k in obj.keys() {
        assert!(
            BASE_KEYS.contains(&k.as_str()) || REAL_DEPLOYMENT_KEYS.contains(&k.as_str()),
            "{what}: key {k:?} is not in the real API's deployment document"
        );
    }
    for t in v["latest_revision"]["targets"].as_array().expect("targets") {
        for k in t.as_object().expect("target").keys() {
            assert!(
                BASE_KEYS.contains(&k.as_str())
                    || [
                        "creator",
                        "config",
                        "bento",
                        "kube_resource_uid",
                        "kube_resource_version"
                    ]
                    .contains(&k.as_str()),
                "{what}: target key {k:?} is not in the real API"
            );
        }
    }
}

#[tokio::test]
async fn reported_status_lags_the_revision_like_the_platform() {
    // A manual clock: the API's status moves exactly when the clock passes a sync, never
    // because the test was slow or fast.
    let dir = tempfile::tempdir().expect("tmp");
    let mut p = platform_with_lag();
    p.timing.status_sync_ms = 1_500;
    // Revision 2's replica needs 5 s: well within the deadline.
    p.timing.progress_deadline_ms = 60_000;
    let clock = Clock::manual(chrono::Utc::now().timestamp_millis());
    let s = start_with(dir.path(), false, None, Client::new(), p, clock.clone()).await;
    let step = |ms: u64| {
        clock
            .advance(Duration::from_millis(ms))
            .expect("a manual clock")
    };
    s.register("lag:v1", json!({"startup_seconds": 0})).await;
    s.register("lag:v2", json!({"startup_seconds": 5})).await;
    let d = s.create("", dep_body("lag", "lag:v1", &[])).await;
    assert_eq!(
        d.status.as_str(),
        "non-deployed",
        "a new deployment reports non-deployed until its first sync"
    );
    // The controller has it running (its replica needs no time), but the clock has not
    // passed a sync: the API still says non-deployed.
    s.wait_for("lag", "revision 1 running live", 15, |v| {
        v["rollout"]["live_status"] == "running" && v["rollout"]["phase"] == "complete"
    })
    .await;
    let (_, api) = s.get("lag", "").await;
    assert_eq!(api["status"], "non-deployed", "no sync yet: {api}");
    step(1_500);
    let (running, _) = s.wait_status("lag", "", "running", 15).await;
    let rev1 = running.deployment.revision_uid().expect("rev").to_string();

    // The update's response names the new revision and still carries the previous status,
    // and reads keep reporting it while the controller already rolls out.
    let (st, v) = s
        .call(
            Method::PUT,
            "/api/v2/deployments/lag?cluster=",
            Some(dep_body("lag", "lag:v2", &[])),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_only_real_keys(&v, "update response");
    let rev2 = v["latest_revision"]["uid"]
        .as_str()
        .expect("rev")
        .to_string();
    assert_ne!(rev2, rev1);
    assert_eq!(
        v["status"], "running",
        "the response carries the previous status"
    );
    let live = s
        .wait_for("lag", "the controller rolling out revision 2", 10, |v| {
            v["rollout"]["live_status"] == "deploying"
        })
        .await;
    assert_eq!(
        live["latest_revision"]["uid"], rev2,
        "the revision is written at once"
    );
    let (st, api) = s.get("lag", "").await;
    assert_eq!(st, StatusCode::OK);
    assert_only_real_keys(&api, "get");
    assert_eq!(
        api["status"], "running",
        "the API still reports the last synced status while the controller deploys"
    );
    // The next sync (the new replica still starting: it needs 5 s) reports the rollout.
    step(1_500);
    s.wait_status("lag", "", "deploying", 15).await;
    // A later sync reports the rollout's end: start-up, drain and sync as the clock moves.
    let done = s
        .advance_until("lag", 250, 30, |v| {
            v["status"] == "running"
                && v["rollout"]["serving_revision_uid"] == rev2.as_str()
                && v["rollout"]["phase"] == "complete"
        })
        .await;
    assert_eq!(done["rollout"]["live_status"], "running");

    // Lists carry no private fields either.
    let (st, list) = s
        .call(Method::GET, "/api/v2/deployments?all=true&count=10", None)
        .await;
    assert_eq!(st, StatusCode::OK, "{list}");
    for item in list["items"].as_array().expect("items") {
        assert_only_real_keys(item, "list item");
    }
    s.stop().await;
}

#[tokio::test]
async fn validation_errors_are_400_404_413_never_500() {
    let dir = tempfile::tempdir().expect("tmp");
    let s = start(dir.path()).await;
    let p = "/api/v2/deployments?cluster=";
    for (body, needle) in [
        (b"{not json".to_vec(), "invalid JSON"),
        (b"".to_vec(), "empty"),
        (
            br#"{"name": "x", "bento": 7}"#.to_vec(),
            "expected a string",
        ),
        (
            br#"{"name": "x", "bento": "a:b", "services": []}"#.to_vec(),
            "expected a map",
        ),
        (b"null".to_vec(), "invalid"),
    ] {
        let (st, v) = s.raw(Method::POST, p, body).await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
        assert!(v["error"].as_str().expect("msg").contains(needle), "{v}");
    }
    let big = format!("{{\"name\": \"{}\"}}", "x".repeat(1024 * 1024 + 10));
    let (st, v) = s.raw(Method::POST, p, big.into_bytes()).await;
    assert_eq!(st, StatusCode::PAYLOAD_TOO_LARGE, "{v}");

    // Strict bentos: unknown tag is the real API's 404.
    let (st, v) = s
        .call(Method::POST, p, Some(dep_body("a", "ghost:v1", &[])))
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    assert_eq!(v["error"], "bento \"ghost:v1\" not found: record not found");
    let (st, _) = s
        .call(
            Method::GET,
            "/api/v1/bento_repositories/ghost/bentos/v1",
            None,
        )
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND);

    let (st, v) = s
        .call(
            Method::POST,
            "/api/local/v1/bentos",
            Some(json!({"tag": "multi:v1", "services": ["Front", "Back"]})),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let b: Bento = serde_json::from_value(v).expect("bento");
    assert_eq!(b.manifest.expect("m").service_names(), ["Front", "Back"]);
    let (st, v) = s
        .call(
            Method::GET,
            "/api/v1/bento_repositories/multi/bentos?count=1",
            None,
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    let l: ListResponse<Bento> = serde_json::from_value(v).expect("list");
    assert_eq!(l.items[0].version, "v1");

    let bad = |f: &dyn Fn(&mut Value)| {
        let mut b = dep_body("a", "multi:v1", &[]);
        b["services"] = json!({"Front": b["services"]["apiserver"].clone()});
        f(&mut b);
        b
    };
    let cases: Vec<(Value, StatusCode, &str)> = vec![
        (
            bad(&|b| b["name"] = json!("Not_A_DNS")),
            StatusCode::BAD_REQUEST,
            "name",
        ),
        (
            bad(&|b| b["labels"] = json!([{"key": "bad key", "value": "x"}])),
            StatusCode::BAD_REQUEST,
            "label key",
        ),
        (
            bad(&|b| b["envs"] = json!([{"name": "1BAD", "value": "x"}])),
            StatusCode::BAD_REQUEST,
            "environment variable",
        ),
        (
            bad(&|b| {
                b["services"]["Front"]["scaling"] = json!({"min_replicas": 3, "max_replicas": 1})
            }),
            StatusCode::BAD_REQUEST,
            "greater",
        ),
        (
            bad(&|b| b["services"]["Front"]["deployment_strategy"] = json!("Yolo")),
            StatusCode::BAD_REQUEST,
            "RollingUpdate",
        ),
        (
            bad(&|b| b["services"]["Front"]["instance_type"] = json!("cpu.64")),
            StatusCode::BAD_REQUEST,
            "cpu.1, cpu.2, cpu.4, gpu.t4.1, gpu.l4.1",
        ),
        (
            bad(&|b| b["services"] = json!({"Nope": {}})),
            StatusCode::BAD_REQUEST,
            "valid services: Front, Back",
        ),
        (
            bad(&|b| b["bento"] = json!("a b")),
            StatusCode::BAD_REQUEST,
            "bento",
        ),
    ];
    for (body, code, needle) in cases {
        let (st, v) = s.call(Method::POST, p, Some(body)).await;
        assert_eq!(st, code, "{v}");
        assert!(
            v["error"].as_str().expect("msg").contains(needle),
            "want {needle:?}: {v}"
        );
    }
    let (st, v) = s
        .call(
            Method::POST,
            "/api/v2/deployments?cluster=mars",
            Some(bad(&|_| {})),
        )
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    assert_eq!(v["error"], "cluster \"mars\" not found: record not found");
    let (st, _) = s.call(Method::POST, p, Some(bad(&|_| {}))).await;
    assert_eq!(st, StatusCode::OK);

    let (st, v) = s
        .call(Method::GET, "/api/v1/instance_types?cluster=", None)
        .await;
    assert_eq!(st, StatusCode::OK);
    let types: Vec<InstanceType> = serde_json::from_value(v).expect("types");
    assert_eq!(types.len(), 5);
    let (st, v) = s.call(Method::GET, "/api/v1/clusters", None).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(v["total"], 2);
    let (st, _) = s.call(Method::GET, "/api/v1/clusters/mars", None).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    s.stop().await;
}

/// Unknown bentos are BentoCloud's 404 by default, on create, update and every bento lookup,
/// and asking registers nothing; `--auto-register-bentos` (the demo's opt-in) registers an
/// unknown `repo:version` on first sight instead, and what it registered stays registered.
#[tokio::test]
async fn unknown_bentos_are_404_unless_auto_registering_is_opted_into() {
    let dir = tempfile::tempdir().expect("tmp");
    let s = start(dir.path()).await;
    let p = "/api/v2/deployments?cluster=";
    let not_found = |v: &Value, what: &str| {
        assert_eq!(
            v,
            &json!({"error": format!("{what} not found: record not found")})
        );
    };
    let (st, v) = s
        .call(Method::POST, p, Some(dep_body("a", "ghost:v1", &[])))
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND, "{v}");
    not_found(&v, "bento \"ghost:v1\"");
    s.register("iris:v1", json!({})).await;
    s.create("", dep_body("a", "iris:v1", &[])).await;
    let (st, v) = s
        .call(
            Method::PUT,
            "/api/v2/deployments/a?cluster=",
            Some(dep_body("a", "iris:v9", &[])),
        )
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND, "{v}");
    not_found(&v, "bento \"iris:v9\"");
    for (path, what) in [
        (
            "/api/v1/bento_repositories/ghost",
            "bento repository \"ghost\"",
        ),
        (
            "/api/v1/bento_repositories/ghost/bentos",
            "bento repository \"ghost\"",
        ),
        (
            "/api/v1/bento_repositories/ghost/bentos/v1",
            "bento \"ghost:v1\"",
        ),
        (
            "/api/v1/bento_repositories/iris/bentos/v9",
            "bento \"iris:v9\"",
        ),
    ] {
        let (st, v) = s.call(Method::GET, path, None).await;
        assert_eq!(st, StatusCode::NOT_FOUND, "{path}: {v}");
        not_found(&v, what);
    }
    let (st, v) = s
        .call(Method::GET, "/api/v1/bento_repositories/iris/bentos", None)
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["total"], 1, "lookups registered nothing: {v}");
    s.stop().await;

    // Opted in, on the same data dir: a lookup or a deploy registers the tag.
    let s = start_with(
        dir.path(),
        true,
        None,
        Client::new(),
        platform(),
        Clock::Real,
    )
    .await;
    let (st, v) = s
        .call(
            Method::GET,
            "/api/v1/bento_repositories/ghost/bentos/v1",
            None,
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["version"], "v1");
    let d = s.create("", dep_body("g", "ghost:v2", &[])).await;
    assert_eq!(d.bento_tag().as_deref(), Some("ghost:v2"));
    s.stop().await;

    // Strict again: what was registered stays, anything else is still a 404.
    let s = start(dir.path()).await;
    for (version, want) in [
        ("v1", StatusCode::OK),
        ("v2", StatusCode::OK),
        ("v3", StatusCode::NOT_FOUND),
    ] {
        let (st, v) = s
            .call(
                Method::GET,
                &format!("/api/v1/bento_repositories/ghost/bentos/{version}"),
                None,
            )
            .await;
        assert_eq!(st, want, "ghost:{version}: {v}");
    }
    s.stop().await;
}

/// kill -9 of the control plane, then a start on the same data dir and address: its replicas
/// died with it, and the API says so at once (the real platform's pods outlive a restart of
/// its control plane, and its status never claims `running` with no ready replica). Right
/// after the restart the deployment is not `running` while its endpoint answers 503, and it is
/// `running` once its replicas serve again; at no point `running` while the endpoint is 503.
#[test]
fn after_kill9_no_running_status_while_the_endpoint_answers_503() {
    use crate::harness::{self, BentoBehaviour, Spec};
    let (cluster, name) = ("local-east", "restarted");
    let mut server = harness::Server::start_process(&[]);
    // Slow to start: right after the restart, no replica can be ready yet.
    server.bentos_add(
        "restart:v1",
        &BentoBehaviour {
            startup_seconds: Some(5.0),
            ..Default::default()
        },
    );
    let mut spec = Spec::new(name, "restart:v1");
    (spec.min, spec.max) = (2, 2);
    let d = server.create_deployment(cluster, &spec.create_request());
    let url = d.urls.clone().expect("urls")[0].clone();
    let path = url
        .strip_prefix(&server.endpoint)
        .expect("the deployment URL is on the endpoint")
        .to_string();
    server.wait_rolled_out(cluster, name);
    let (code, body) = server.request(Method::GET, &path, None);
    assert_eq!(code, 200, "before the kill: {body}");

    server.kill9();
    server.restart_same_address(&[]);
    let status = |s: &harness::Server| s.must_get(cluster, name).status.as_str().to_string();
    // At once, before any replica could start: not running, and the endpoint says why.
    let first = status(&server);
    let (code, body) = server.request(Method::GET, &path, None);
    assert_eq!(code, 503, "no replica can be ready yet: {body}");
    assert_eq!(first, "deploying", "the API status right after the restart");
    assert_eq!(
        server.local(cluster, name)["rollout"]["live_status"],
        "deploying"
    );
    let pods = server.pods(cluster, name);
    assert_eq!(pods.len(), 2, "{pods:?}");
    assert!(pods.iter().all(|p| !p.status.ready), "{pods:?}");

    // The status read first, then the endpoint: a replica that is ready stays ready, so a
    // `running` followed by a 503 would be a status claiming what nothing serves.
    harness::poll_until_seen(
        "the restarted deployment to report running",
        Duration::from_secs(60),
        || {
            let now = status(&server);
            let (code, body) = server.request(Method::GET, &path, None);
            assert!(
                !(now == "running" && code == 503),
                "reported running while the endpoint answers 503: {body}"
            );
            if now == "running" {
                Ok(())
            } else {
                Err(format!("status {now}, endpoint {code}"))
            }
        },
    );
    let (code, body) = server.request(Method::GET, &path, None);
    assert_eq!(code, 200, "running and serving: {body}");
    let body: Value = serde_json::from_str(&body).expect("replica JSON");
    assert_eq!(body["bento"], "restart:v1");
    assert!(server.pods(cluster, name).iter().all(|p| p.status.ready));
}

#[tokio::test]
async fn list_filters_and_paging_across_clusters() {
    let dir = tempfile::tempdir().expect("tmp");
    let s = start(dir.path()).await;
    s.register("iris:v1", json!({})).await;
    s.register("other:v1", json!({})).await;
    let mut made = Vec::new();
    for i in 0..7 {
        let cluster = if i % 2 == 0 {
            "local-east"
        } else {
            "local-west"
        };
        let team = if i < 4 { "ml" } else { "web" };
        let name = format!("svc-{i}");
        s.create(
            cluster,
            dep_body(&name, "iris:v1", &[("team", team), ("env", "prod")]),
        )
        .await;
        made.push((name, cluster, team));
    }
    // Same name in both clusters is allowed.
    s.create("local-west", dep_body("svc-0", "other:v1", &[]))
        .await;
    let list = |q: &str| {
        let q = q.to_string();
        let s = &s;
        async move {
            let (st, v) = s
                .call(Method::GET, &format!("/api/v2/deployments?{q}"), None)
                .await;
            assert_eq!(st, StatusCode::OK, "{q}: {v}");
            for item in v["items"].as_array().expect("items") {
                check_list_item_shape(item);
            }
            serde_json::from_value::<ListResponse<Deployment>>(v).expect("list")
        }
    };
    let all = list("cluster=&all=true&count=&q=&search=&start=").await;
    assert_eq!(all.total, 8);
    assert_eq!(all.items.len(), 8);
    let names: Vec<String> = all.items.iter().map(|d| d.meta.name.clone()).collect();
    assert_eq!(names[0], "svc-0", "newest first");
    assert_eq!(names[1], "svc-6");
    let west = list("cluster=local-west&all=&count=&q=&search=&start=").await;
    assert_eq!(west.total, 4);
    assert!(west
        .items
        .iter()
        .all(|d| d.cluster.meta.name == "local-west"));
    let ml = list("cluster=&all=true&count=100&q=label%3Ateam%3Dml+label%3Aenv%3Dprod").await;
    assert_eq!(ml.total, 4);
    let ml_east = list("q=label%3Ateam%3Dml+cluster%3Alocal-east").await;
    assert_eq!(ml_east.total, 2);
    let bento = list("q=bento%3Aother").await;
    assert_eq!(bento.total, 1);
    let search = list("search=svc-1").await;
    assert_eq!(search.total, 1);
    let kw = list("q=svc-").await;
    assert_eq!(kw.total, 8);
    assert_eq!(list("q=is%3Adev").await.total, 0);
    assert_eq!(list("q=not%3Adev").await.total, 8);
    // Paging: pages are disjoint, ordered, and add up.
    let mut paged = Vec::new();
    for start in (0..8).step_by(3) {
        let page = list(&format!("start={start}&count=3")).await;
        assert_eq!(page.total, 8);
        assert_eq!(page.start, start);
        paged.extend(
            page.items
                .into_iter()
                .map(|d| (d.meta.name, d.cluster.meta.name)),
        );
    }
    let full: Vec<(String, String)> = all
        .items
        .into_iter()
        .map(|d| (d.meta.name, d.cluster.meta.name))
        .collect();
    assert_eq!(paged, full);
    assert_eq!(list("count=10000").await.items.len(), 8);
    let (st, _) = s
        .call(Method::GET, "/api/v2/deployments?count=abc", None)
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    let (st, _) = s
        .call(Method::GET, "/api/v2/deployments?q=colour%3Ared", None)
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    let (st, _) = s
        .call(Method::GET, "/api/v2/deployments?cluster=mars", None)
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    s.stop().await;
}

#[tokio::test]
async fn restart_on_the_same_data_dir_keeps_everything() {
    let dir = tempfile::tempdir().expect("tmp");
    let s = start(dir.path()).await;
    s.register("iris:v1", json!({})).await;
    let token = s.token.clone();
    let d = s
        .create("local-west", dep_body("keep", "iris:v1", &[("a", "b")]))
        .await;
    let (st, _) = s.call(Method::POST, "/api/v1/org_secrets", Some(json!({"name": "db", "content": {"type": "env", "items": [{"key": "PASSWORD", "value": "x"}]}}))).await;
    assert_eq!(st, StatusCode::OK);
    s.stop().await;

    let s = start(dir.path()).await;
    assert_eq!(s.token, token, "the generated token is reused");
    let d2 = s
        .wait_status("keep", "local-west", "running", 10)
        .await
        .0
        .deployment;
    assert_eq!(d2.meta.uid, d.meta.uid);
    assert_eq!(d2.revision_uid(), d.revision_uid());
    assert_eq!(d2.meta.labels, d.meta.labels);
    let (st, v) = s.call(Method::GET, "/api/v1/org_secrets/db", None).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(v["content"]["items"][0]["key"], "PASSWORD");
    let (st, v) = s
        .call(
            Method::GET,
            "/api/v1/org_secrets?count=10&q=&search=&start=0&all=true",
            None,
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(v["total"], 1);
    s.stop().await;
}

#[tokio::test]
async fn statuses_follow_bento_behaviour() {
    let dir = tempfile::tempdir().expect("tmp");
    let s = start(dir.path()).await;
    let reg = |tag: &str, extra: Value| {
        let mut b = json!({"tag": tag, "startup_seconds": 0.3});
        if let (Some(b), Some(e)) = (b.as_object_mut(), extra.as_object()) {
            b.extend(e.clone());
        }
        b
    };
    for body in [
        reg("app:v1", json!({"image_build_seconds": 0.4})),
        reg("app:never", json!({"unready": true})),
        reg("app:nobuild", json!({"image_build_fails": true})),
    ] {
        let (st, v) = s
            .call(Method::POST, "/api/local/v1/bentos", Some(body))
            .await;
        assert_eq!(st, StatusCode::OK, "{v}");
    }
    s.create("", dep_body("tl", "app:v1", &[])).await;
    let (d, seen) = s.wait_status("tl", "", "running", 10).await;
    assert_eq!(
        seen.iter()
            .filter(|x| *x != "non-deployed")
            .collect::<Vec<_>>(),
        ["image-building", "deploying", "running"]
    );
    let good = d.deployment.revision_uid().expect("rev").to_string();

    // A never-ready bento: the rollout fails with a reason, the old revision keeps serving.
    let (st, v) = s
        .call(
            Method::PUT,
            "/api/v2/deployments/tl?cluster=",
            Some(dep_body("tl", "app:never", &[])),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let (d, _) = s.wait_status("tl", "", "failed", 10).await;
    let ro = d.rollout.clone();
    assert_eq!(ro.serving_revision_uid, good);
    assert_ne!(ro.revision_uid, good);
    assert!(
        ro.message.contains("did not become ready"),
        "{}",
        ro.message
    );
    // The pods stream, read by the provider's client: the operator's labels, no revision
    // label, and the failed revision's pods not ready with the reason.
    let client = bentocloud::client::Client::new(bentocloud::client::ClientConfig::new(
        s.endpoint.parse().expect("url"),
        s.token.clone(),
    ))
    .expect("client");
    let pods = client.deployment_pods("", "tl").await.expect("pods");
    assert!(!pods.is_empty());
    for p in &pods {
        assert_eq!(p.labels["yatai.ai/bento-deployment"], "tl", "{p:?}");
        assert!(p.labels.contains_key("yatai.ai/bento-version"), "{p:?}");
        assert!(
            !p.labels.keys().any(|k| k.contains("revision")),
            "pods name no revision: {p:?}"
        );
        assert!(p.status.start_time.is_some(), "{p:?}");
    }
    assert!(
        pods.iter()
            .any(|p| p.labels["yatai.ai/bento-version"] == "v1" && p.status.ready),
        "the old revision's pods serve: {pods:?}"
    );
    let reason = bentocloud::wait::pods_reason(&pods, Some("never")).expect("reason");
    assert!(reason.contains("did not become ready"), "{reason}");
    let missing = client.deployment_pods("", "ghost").await.expect_err("404");
    assert!(missing.is_not_found(), "{missing}");

    let url = d.deployment.urls.clone().expect("urls")[0].clone();
    let body: Value = reqwest::get(format!("{url}x"))
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert_eq!(body["revision"], good.as_str());

    let (st, _) = s
        .call(
            Method::PUT,
            "/api/v2/deployments/tl?cluster=",
            Some(dep_body("tl", "app:nobuild", &[])),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    let (d, _) = s.wait_status("tl", "", "image-build-failed", 10).await;
    assert!(d.rollout.message.contains("image build"));
    s.stop().await;
}

// ---------------------------------------------------------------- real replicas and rollouts

impl Server {
    async fn register(&self, tag: &str, extra: Value) {
        let mut b = json!({"tag": tag, "startup_seconds": 0.3});
        if let (Some(b), Some(e)) = (b.as_object_mut(), extra.as_object()) {
            b.extend(e.clone());
        }
        let (st, v) = self
            .call(Method::POST, "/api/local/v1/bentos", Some(b))
            .await;
        assert_eq!(st, StatusCode::OK, "{v}");
    }

    async fn put(&self, name: &str, body: Value) -> Deployment {
        let (st, v) = self
            .call(
                Method::PUT,
                &format!("/api/v2/deployments/{name}?cluster="),
                Some(body),
            )
            .await;
        assert_eq!(st, StatusCode::OK, "{v}");
        serde_json::from_value(v).expect("Deployment")
    }

    /// Polls the deployment until `ok` holds (deadline `secs`); returns the document.
    async fn wait_for(
        &self,
        name: &str,
        what: &str,
        secs: u64,
        ok: impl Fn(&Value) -> bool,
    ) -> Value {
        self.poll(name, what, secs, None, ok).await
    }

    /// Steps the manual clock by `step_ms` between reads until `ok` holds (deadline `secs` of
    /// real time): time-based transitions happen because the test moved the clock.
    async fn advance_until(
        &self,
        name: &str,
        step_ms: u64,
        secs: u64,
        ok: impl Fn(&Value) -> bool,
    ) -> Value {
        self.poll(name, "the clock to get there", secs, Some(step_ms), ok)
            .await
    }

    async fn poll(
        &self,
        name: &str,
        what: &str,
        secs: u64,
        step_ms: Option<u64>,
        ok: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let (st, v) = self.get_local(name, "").await;
            assert_eq!(st, StatusCode::OK, "{v}");
            if ok(&v) {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "{name}: {what} did not happen within {secs}s; last: status {} rollout {}",
                v["status"],
                v["rollout"]
            );
            if let Some(ms) = step_ms {
                self.clock
                    .advance(Duration::from_millis(ms))
                    .expect("a manual clock");
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Waits until `rev` is the serving revision and the status is `status`.
    async fn wait_serving(&self, name: &str, rev: &str, status: &str, secs: u64) -> Value {
        self.wait_for(name, &format!("{status} on revision {rev}"), secs, |v| {
            v["status"] == status && v["rollout"]["serving_revision_uid"] == rev
        })
        .await
    }

    fn ports(&self, state: &str) -> Vec<u16> {
        let c = rusqlite::Connection::open(self.dir.join("state.db")).expect("db");
        let mut st = c
            .prepare("SELECT port FROM replicas WHERE state = ?1 AND port IS NOT NULL")
            .expect("prepare");
        let rows = st
            .query_map([state], |r| r.get::<_, i64>(0))
            .expect("query");
        rows.map(|r| u16::try_from(r.expect("row")).expect("port"))
            .collect()
    }
}

fn svc_body(name: &str, bento: &str, strategy: &str, min: i64, max: i64) -> Value {
    json!({
        "name": name, "bento": bento,
        "services": {"apiserver": {
            "scaling": {"min_replicas": min, "max_replicas": max},
            "deployment_strategy": strategy}},
    })
}

/// Outcome of one request through an endpoint: HTTP status (0: no response) and the bento
/// and replica that answered.
#[derive(Debug, Clone)]
struct Hit {
    status: u16,
    bento: String,
    replica: String,
}

/// A bounded load generator on loopback: `workers` loops sending GETs until stopped (or 60 s).
struct LoadGen {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<Vec<Hit>>>,
    /// Answers received so far, by every worker.
    answers: std::sync::Arc<tokio::sync::watch::Sender<usize>>,
}

fn load(url: &str, workers: usize, query: &str) -> LoadGen {
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let answers = std::sync::Arc::new(tokio::sync::watch::Sender::new(0usize));
    let tasks = (0..workers)
        .map(|w| {
            let (stop, url) = (stop.clone(), format!("{url}predict?worker={w}{query}"));
            let answers = answers.clone();
            tokio::spawn(async move {
                let http = Client::new();
                let deadline = Instant::now() + Duration::from_secs(60);
                let mut hits = Vec::new();
                while !stop.load(std::sync::atomic::Ordering::Relaxed) && Instant::now() < deadline
                {
                    let hit = match http.get(&url).send().await {
                        Ok(r) => {
                            let status = r.status().as_u16();
                            let v: Value = r.json().await.unwrap_or(Value::Null);
                            Hit {
                                status,
                                bento: v["bento"].as_str().unwrap_or("").to_string(),
                                replica: v["replica"].as_str().unwrap_or("").to_string(),
                            }
                        }
                        Err(_) => Hit {
                            status: 0,
                            bento: String::new(),
                            replica: String::new(),
                        },
                    };
                    hits.push(hit);
                    answers.send_modify(|n| *n += 1);
                    // Pacing between two requests of one worker.
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                hits
            })
        })
        .collect();
    LoadGen {
        stop,
        tasks,
        answers,
    }
}

impl LoadGen {
    /// Returns once `more` further answers arrived (any status), so a test lets traffic run
    /// across a state change by counting requests, not by sleeping.
    async fn wait_answers(&self, more: usize) {
        let mut rx = self.answers.subscribe();
        let target = *rx.borrow_and_update() + more;
        tokio::time::timeout(Duration::from_secs(30), rx.wait_for(|n| *n >= target))
            .await
            .unwrap_or_else(|_| panic!("{more} more answers did not arrive within 30 s"))
            .expect("load generator alive");
    }

    async fn finish(self) -> Vec<Hit> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let mut all = Vec::new();
        for t in self.tasks {
            all.extend(t.await.expect("load worker"));
        }
        all
    }
}

async fn hit(url: &str) -> Hit {
    let r = reqwest::get(format!("{url}predict"))
        .await
        .expect("request");
    let status = r.status().as_u16();
    let v: Value = r.json().await.expect("json");
    Hit {
        status,
        bento: v["bento"].as_str().unwrap_or("").to_string(),
        replica: v["replica"].as_str().unwrap_or("").to_string(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_update_under_load_has_zero_failed_requests() {
    let dir = tempfile::tempdir().expect("tmp");
    let s = start(dir.path()).await;
    s.register("app:v1", json!({})).await;
    s.register("app:v2", json!({})).await;
    let d = s
        .create("", svc_body("roll", "app:v1", "RollingUpdate", 3, 3))
        .await;
    let rev1 = d.revision_uid().expect("rev").to_string();
    let url = d.urls.clone().expect("urls")[0].clone();
    let v = s.wait_serving("roll", &rev1, "running", 20).await;
    assert_eq!(v["rollout"]["ready_replicas"], 3);

    // Each replica is a real HTTP server on a loopback port.
    let ports = s.ports("ready");
    assert_eq!(ports.len(), 3, "{ports:?}");
    let http = Client::new();
    for port in &ports {
        let base = format!("http://127.0.0.1:{port}");
        for path in ["/readyz", "/livez", "/healthz"] {
            let r = http
                .get(format!("{base}{path}"))
                .send()
                .await
                .expect("probe");
            assert_eq!(r.status(), StatusCode::OK, "{path}");
        }
        let v: Value = http
            .get(format!("{base}/classify"))
            .send()
            .await
            .expect("api")
            .json()
            .await
            .expect("json");
        assert_eq!(v["bento"], "app:v1");
        assert_eq!(v["revision"], rev1.as_str());
        let m = http
            .get(format!("{base}/metrics"))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text");
        assert!(m.contains("bentoml_service_request_total{"), "{m}");
        assert!(m.contains("bentoml_service_request_in_progress{"), "{m}");
    }

    let gen = load(&url, 4, "");
    gen.wait_answers(40).await;
    let d2 = s
        .put("roll", svc_body("roll", "app:v2", "RollingUpdate", 3, 3))
        .await;
    let rev2 = d2.revision_uid().expect("rev").to_string();
    assert_ne!(rev1, rev2);
    let v = s.wait_serving("roll", &rev2, "running", 30).await;
    assert_eq!(v["rollout"]["updated_replicas"], 3);
    gen.wait_answers(20).await;
    let hits = gen.finish().await;
    let failed: Vec<&Hit> = hits.iter().filter(|h| h.status != 200).collect();
    assert!(
        failed.is_empty(),
        "{} of {} requests failed: {:?}",
        failed.len(),
        hits.len(),
        &failed[..failed.len().min(5)]
    );
    let first_v2 = hits.iter().position(|h| h.bento == "app:v2");
    assert!(hits.iter().any(|h| h.bento == "app:v1"), "never saw v1");
    assert!(first_v2.is_some(), "never saw v2");
    // Once the new revision is running, every response comes from it.
    for _ in 0..30 {
        let h = hit(&url).await;
        assert_eq!((h.status, h.bento.as_str()), (200, "app:v2"));
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recreate_has_downtime_and_never_ready_keeps_the_old_revision() {
    let dir = tempfile::tempdir().expect("tmp");
    let s = start(dir.path()).await;
    s.register("app:v1", json!({})).await;
    s.register("app:v2", json!({"startup_seconds": 0.5})).await;
    s.register("app:never", json!({"unready": true})).await;
    let d = s
        .create("", svc_body("rec", "app:v1", "Recreate", 2, 2))
        .await;
    let url = d.urls.clone().expect("urls")[0].clone();
    s.wait_serving("rec", d.revision_uid().expect("rev"), "running", 20)
        .await;
    let gen = load(&url, 2, "");
    gen.wait_answers(20).await;
    let d2 = s
        .put("rec", svc_body("rec", "app:v2", "Recreate", 2, 2))
        .await;
    let rev2 = d2.revision_uid().expect("rev").to_string();
    s.wait_serving("rec", &rev2, "running", 30).await;
    let hits = gen.finish().await;
    assert!(
        hits.iter().any(|h| h.status == 503),
        "Recreate had no downtime over {} requests",
        hits.len()
    );
    assert!(hits.iter().all(|h| h.status == 200 || h.status == 503));
    assert_eq!(hit(&url).await.bento, "app:v2");

    // A never-ready bento through RollingUpdate: the rollout fails with a reason and the old
    // revision answers every request meanwhile.
    let gen = load(&url, 2, "");
    let d3 = s
        .put("rec", svc_body("rec", "app:never", "RollingUpdate", 2, 2))
        .await;
    let rev3 = d3.revision_uid().expect("rev").to_string();
    let v = s
        .wait_for("rec", "a failed rollout", 30, |v| v["status"] == "failed")
        .await;
    let hits = gen.finish().await;
    assert!(
        hits.iter().all(|h| h.status == 200 && h.bento == "app:v2"),
        "{:?}",
        hits.iter().find(|h| h.status != 200 || h.bento != "app:v2")
    );
    let ro = &v["rollout"];
    assert_eq!(ro["revision_uid"], rev3.as_str());
    assert_eq!(ro["serving_revision_uid"], rev2.as_str());
    assert_eq!(ro["phase"], "failed");
    let msg = ro["message"].as_str().expect("message");
    assert!(
        msg.contains("did not become ready") && msg.contains("keeps serving"),
        "{msg}"
    );
    assert_eq!(hit(&url).await.bento, "app:v2");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn min_zero_scales_to_zero_and_a_request_wakes_it() {
    let dir = tempfile::tempdir().expect("tmp");
    let s = start(dir.path()).await;
    s.register("app:v1", json!({})).await;
    let d = s
        .create("", svc_body("idle", "app:v1", "RollingUpdate", 0, 2))
        .await;
    let url = d.urls.clone().expect("urls")[0].clone();
    let rev = d.revision_uid().expect("rev").to_string();
    // A rollout always proves one replica gets ready, then idles down to zero.
    s.wait_serving("idle", &rev, "running", 20).await;
    let v = s.wait_serving("idle", &rev, "scaled-to-zero", 20).await;
    assert_eq!(v["rollout"]["ready_replicas"], 0);
    assert_eq!(v["rollout"]["desired_replicas"], 0);
    assert!(s.ports("ready").is_empty());
    // The endpoint holds the request while a replica starts, instead of failing it.
    let h = hit(&url).await;
    assert_eq!((h.status, h.bento.as_str()), (200, "app:v1"));
    let v = s.wait_serving("idle", &rev, "running", 20).await;
    assert_eq!(v["rollout"]["ready_replicas"], 1);
    // And it goes back to zero once idle again.
    s.wait_serving("idle", &rev, "scaled-to-zero", 20).await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scales_up_under_concurrent_load_and_back_down() {
    let dir = tempfile::tempdir().expect("tmp");
    let s = start(dir.path()).await;
    s.register("app:v1", json!({"startup_seconds": 0.2})).await;
    let d = s
        .create("", svc_body("busy", "app:v1", "RollingUpdate", 1, 4))
        .await;
    let url = d.urls.clone().expect("urls")[0].clone();
    let rev = d.revision_uid().expect("rev").to_string();
    s.wait_serving("busy", &rev, "running", 20).await;
    // 12 concurrent slow requests: 4 in flight per replica wants 3 replicas.
    let gen = load(&url, 12, "&sleep_ms=200");
    let v = s
        .wait_for("busy", "scale-up to 3+ ready replicas", 30, |v| {
            v["rollout"]["ready_replicas"].as_u64().unwrap_or(0) >= 3
        })
        .await;
    assert!(v["rollout"]["desired_replicas"].as_u64().unwrap_or(0) <= 4);
    // Traffic on the scaled-up deployment: 12 workers, 200 ms each.
    gen.wait_answers(36).await;
    let hits = gen.finish().await;
    assert!(
        hits.iter().all(|h| h.status == 200),
        "a request failed during scale-up"
    );
    let replicas: std::collections::HashSet<&str> =
        hits.iter().map(|h| h.replica.as_str()).collect();
    assert!(
        replicas.len() >= 3,
        "load went to {} replicas",
        replicas.len()
    );
    s.wait_for("busy", "scale-down to 1", 30, |v| {
        v["rollout"]["desired_replicas"] == 1 && v["rollout"]["ready_replicas"] == 1
    })
    .await;
    assert_eq!(s.get("busy", "").await.1["status"], "running");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_mid_rollout_resumes_and_completes() {
    let dir = tempfile::tempdir().expect("tmp");
    let s = start(dir.path()).await;
    s.register("app:v1", json!({})).await;
    s.register("app:v2", json!({"startup_seconds": 0.8})).await;
    let d = s
        .create("", svc_body("rs", "app:v1", "RollingUpdate", 2, 2))
        .await;
    s.wait_serving("rs", d.revision_uid().expect("rev"), "running", 20)
        .await;
    let d2 = s
        .put("rs", svc_body("rs", "app:v2", "RollingUpdate", 2, 2))
        .await;
    let rev2 = d2.revision_uid().expect("rev").to_string();
    // Stop while the rollout is under way (v2 takes 0.8 s to start).
    let v = s.get_local("rs", "").await.1;
    assert_eq!(v["rollout"]["phase"], "rolling", "{v}");
    s.stop().await;
    {
        let c = rusqlite::Connection::open(dir.path().join("state.db")).expect("db");
        let status: String = c
            .query_row(
                "SELECT status FROM deployments WHERE name = 'rs'",
                [],
                |r| r.get(0),
            )
            .expect("status");
        assert_eq!(status, "deploying", "the rollout was interrupted mid-way");
    }

    // The restarted server starts the replicas the database says exist, then completes.
    let s = start(dir.path()).await;
    let v = s.wait_serving("rs", &rev2, "running", 30).await;
    assert_eq!(v["rollout"]["updated_replicas"], 2);
    let url = v["urls"][0].as_str().expect("url").to_string();
    for _ in 0..10 {
        let h = hit(&url).await;
        assert_eq!((h.status, h.bento.as_str()), (200, "app:v2"));
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crashing_replica_is_unhealthy_then_replaced() {
    let dir = tempfile::tempdir().expect("tmp");
    let s = start(dir.path()).await;
    s.register("app:crashy", json!({"crash_after_seconds": 0.6}))
        .await;
    s.create("", svc_body("crashy", "app:crashy", "RollingUpdate", 1, 1))
        .await;
    // The replacement waits for the crash back-off (10 s); meanwhile the pods list the crashed
    // one as `CrashLoopBackOff`.
    let deadline = Instant::now() + Duration::from_secs(40);
    let mut seen: Vec<String> = Vec::new();
    let mut backoff_pod = None;
    while !seen.ends_with(&["running".into(), "unhealthy".into(), "running".into()]) {
        assert!(Instant::now() < deadline, "statuses seen: {seen:?}");
        let v = s.get("crashy", "").await.1;
        let st = v["status"].as_str().expect("status").to_string();
        if st == "unhealthy" && backoff_pod.is_none() {
            let pods = s.raw_pods("crashy").await;
            backoff_pod = pods
                .iter()
                .find(|p| p["pod_status"]["status"] == "CrashLoopBackOff")
                .cloned();
        }
        if seen.last() != Some(&st) {
            seen.push(st);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let pod = backoff_pod.expect("a CrashLoopBackOff pod while unhealthy");
    assert_eq!(pod["status"]["ready"], false, "{pod}");
    assert_eq!(pod["warnings"][0]["reason"], "BackOff", "{pod}");
    let pods = s.raw_pods("crashy").await;
    assert!(
        pods.iter()
            .all(|p| p["pod_status"]["status"] != "CrashLoopBackOff"),
        "replaced: no crash-looping pod is left: {pods:?}"
    );
    s.stop().await;
}

// ---------------------------------------------------------------- HTTPS (`serve --tls-cert/--tls-key`)

/// With `Config::tls` the API and the deployment endpoints are served over TLS, every URL the
/// server hands out is `https://`, plain HTTP is not answered, and graceful shutdown returns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_https_with_the_given_certificate() {
    let dir = tempfile::tempdir().expect("tmp");
    let pki = tempfile::tempdir().expect("tmp");
    let ca_key = rcgen::KeyPair::generate().expect("ca key");
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("ca params");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).expect("ca");
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()])
        .expect("params")
        .signed_by(&key, &ca, &ca_key)
        .expect("cert");
    let files = emulator::TlsFiles {
        cert: pki.path().join("server.pem"),
        key: pki.path().join("server-key.pem"),
    };
    std::fs::write(&files.cert, cert.pem()).expect("write cert");
    std::fs::write(&files.key, key.serialize_pem()).expect("write key");
    let http = Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(ca.pem().as_bytes()).expect("ca"))
        .build()
        .expect("client");
    let s = start_with(
        dir.path(),
        false,
        Some(files),
        http,
        platform(),
        Clock::Real,
    )
    .await;
    assert!(
        s.endpoint.starts_with("https://127.0.0.1:"),
        "{}",
        s.endpoint
    );

    let (st, _) = s.call(Method::GET, "/api/v1/auth/current", None).await;
    assert_eq!(st, StatusCode::OK);
    s.register("tls:v1", json!({})).await;
    let d = s
        .create("", svc_body("secure", "tls:v1", "RollingUpdate", 1, 1))
        .await;
    let url = d.urls.clone().expect("urls")[0].clone();
    assert!(
        url.starts_with(&format!("{}/endpoints/", s.endpoint)),
        "{url}"
    );
    let rev = d.revision_uid().expect("rev").to_string();
    s.wait_serving("secure", &rev, "running", 30).await;
    let resp = s
        .http
        .get(format!("{url}predict"))
        .send()
        .await
        .expect("endpoint over TLS");
    assert_eq!(resp.status(), StatusCode::OK);
    let v: Value = resp.json().await.expect("json");
    assert_eq!(v["bento"], "tls:v1", "{v}");

    // Plain HTTP on the TLS port gets no answer; a client without the CA is refused.
    let plain = s.endpoint.replacen("https://", "http://", 1);
    let r = Client::new().get(format!("{plain}/healthz")).send().await;
    assert!(r.is_err() || r.is_ok_and(|r| !r.status().is_success()));
    let untrusted = Client::builder()
        .tls_built_in_root_certs(false)
        .build()
        .expect("client")
        .get(format!("{}/healthz", s.endpoint))
        .send()
        .await;
    assert!(untrusted.is_err(), "{untrusted:?}");
    s.stop().await;
}

// ---------------------------------------------------------------- canary: replicas and traffic split

/// A RollingUpdate deployment of `bento` (1 replica) with a canary: version `v2` of `canary_bento`
/// (1 replica) at `weight`, routed by `route_type`/`route_by`.
fn canary_body(
    name: &str,
    bento: &str,
    canary_bento: &str,
    weight: i64,
    route_type: &str,
    route_by: Option<&str>,
) -> Value {
    let mut b = svc_body(name, bento, "RollingUpdate", 1, 1);
    b["canary"] = json!({
        "route_type": route_type,
        "route_by": route_by,
        "versions": {"v2": {
            "bento": canary_bento, "weight": weight,
            "services": {"apiserver": {"scaling": {"min_replicas": 1, "max_replicas": 1}}},
        }},
    });
    b
}

impl Server {
    /// The first frame of the pods stream, as JSON (the typed `KubePod` leaves `is_canary` out).
    async fn raw_pods(&self, name: &str) -> Vec<Value> {
        use futures::StreamExt;
        use tokio_tungstenite::tungstenite::{protocol::Role, Message};
        let resp = self
            .http
            .get(format!(
                "{}/ws/v2/deployments/{name}/pods?cluster=",
                self.endpoint
            ))
            .header("X-YATAI-API-TOKEN", &self.token)
            .header("connection", "Upgrade")
            .header("upgrade", "websocket")
            .header("sec-websocket-version", "13")
            .header(
                "sec-websocket-key",
                tokio_tungstenite::tungstenite::handshake::client::generate_key(),
            )
            .send()
            .await
            .expect("pods handshake");
        assert_eq!(resp.status().as_u16(), 101);
        let upgraded = resp.upgrade().await.expect("upgrade");
        let mut ws =
            tokio_tungstenite::WebSocketStream::from_raw_socket(upgraded, Role::Client, None).await;
        let text = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                match ws.next().await {
                    Some(Ok(Message::Text(t))) => return t,
                    Some(Ok(_)) => continue,
                    other => panic!("pods stream ended: {other:?}"),
                }
            }
        })
        .await
        .expect("a pods frame");
        let frame: Value = serde_json::from_str(&text).expect("frame");
        assert_eq!(frame["type"], "success", "{frame}");
        frame["payload"].as_array().expect("payload").clone()
    }
}

/// Sends `n` GETs through an endpoint (`headers` on each); returns `(status, bento, target)`.
async fn hits(url: &str, n: usize, headers: &[(&str, &str)]) -> Vec<(u16, String, String)> {
    let http = Client::new();
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let mut req = http.get(format!("{url}predict"));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let r = req.send().await.expect("request");
        let status = r.status().as_u16();
        let v: Value = r.json().await.expect("json");
        out.push((
            status,
            v["bento"].as_str().unwrap_or("").to_string(),
            v["target"].as_str().unwrap_or("").to_string(),
        ));
    }
    out
}

/// Counts answers by `(status, bento, target)`.
fn tally(hits: &[(u16, String, String)]) -> std::collections::BTreeMap<String, usize> {
    let mut m = std::collections::BTreeMap::new();
    for (status, bento, target) in hits {
        *m.entry(format!("{status} {bento} {target}")).or_insert(0) += 1;
    }
    m
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canary_random_split_follows_the_weight() {
    let dir = tempfile::tempdir().expect("tmp");
    let s = start(dir.path()).await;
    s.register("app:v1", json!({})).await;
    s.register("app:v2", json!({})).await;
    let d = s
        .create(
            "",
            canary_body("split", "app:v1", "app:v2", 30, "random", None),
        )
        .await;
    let url = d.urls.clone().expect("urls")[0].clone();
    let rev = d.revision_uid().expect("rev").to_string();
    // The rollout completes once main and the canary version are both ready.
    let v = s.wait_serving("split", &rev, "running", 30).await;
    let ro = &v["rollout"];
    assert_eq!(
        (&ro["desired_replicas"], &ro["ready_replicas"]),
        (&json!(2), &json!(2)),
        "{ro}"
    );
    assert_eq!(ro["canary"]["v2"]["bento"], "app:v2", "{ro}");
    assert_eq!(ro["canary"]["v2"]["ready_replicas"], 1, "{ro}");

    // The pods stream lists the canary pod with its own bento.
    let pods = s.raw_pods("split").await;
    assert_eq!(pods.len(), 2, "{pods:?}");
    let canary: Vec<&Value> = pods
        .iter()
        .filter(|p| p["status"]["is_canary"] == true)
        .collect();
    assert_eq!(canary.len(), 1, "{pods:?}");
    assert_eq!(canary[0]["labels"]["yatai.ai/bento-version"], "v2");
    assert_eq!(canary[0]["labels"]["yatai.ai/bento-repository"], "app");
    assert_eq!(canary[0]["status"]["is_old"], false);
    let main: Vec<&Value> = pods
        .iter()
        .filter(|p| p["status"]["is_canary"] == false)
        .collect();
    assert_eq!(main.len(), 1, "{pods:?}");
    assert_eq!(main[0]["labels"]["yatai.ai/bento-version"], "v1");

    // N = 400 requests; the count sent to v2 is Binomial(400, 0.3): mean 120, standard
    // deviation sqrt(400 * 0.3 * 0.7) = 9.17. Accepting 120 ± 36 (about 4 sigma) fails a correct
    // split with probability ~6e-5, while a split off by 10 points (80 or 160) fails it.
    let n = 400;
    let got = hits(&url, n, &[]).await;
    let t = tally(&got);
    let to_v2 = t.get("200 app:v2 v2").copied().unwrap_or(0);
    let to_main = t.get("200 app:v1 main").copied().unwrap_or(0);
    assert_eq!(to_v2 + to_main, n, "an answer from elsewhere: {t:?}");
    assert!((84..=156).contains(&to_v2), "v2 got {to_v2} of {n}: {t:?}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canary_header_and_query_routing_pick_the_version_by_name() {
    let dir = tempfile::tempdir().expect("tmp");
    let s = start(dir.path()).await;
    s.register("app:v1", json!({})).await;
    s.register("app:v2", json!({})).await;
    // Weight 50: header and query routing ignore it.
    let h = s
        .create(
            "",
            canary_body(
                "byheader",
                "app:v1",
                "app:v2",
                50,
                "header",
                Some("X-Canary"),
            ),
        )
        .await;
    let q = s
        .create(
            "",
            canary_body("byquery", "app:v1", "app:v2", 50, "query", Some("canary")),
        )
        .await;
    for d in [&h, &q] {
        s.wait_serving(&d.meta.name, d.revision_uid().expect("rev"), "running", 30)
            .await;
    }
    let all = |hits: &[(u16, String, String)], want: &str| {
        let t = tally(hits);
        assert_eq!(t.len(), 1, "want only {want}: {t:?}");
        assert!(t.contains_key(want), "want only {want}: {t:?}");
    };
    let url = h.urls.clone().expect("urls")[0].clone();
    all(
        &hits(&url, 50, &[("X-Canary", "v2")]).await,
        "200 app:v2 v2",
    );
    all(
        &hits(&url, 50, &[("x-canary", "v2")]).await,
        "200 app:v2 v2",
    );
    all(&hits(&url, 50, &[]).await, "200 app:v1 main");
    all(
        &hits(&url, 20, &[("X-Canary", "v3")]).await,
        "200 app:v1 main",
    );

    let url = q.urls.clone().expect("urls")[0].clone();
    let http = Client::new();
    for (query, want) in [
        ("?canary=v2", "200 app:v2 v2"),
        ("?a=1&canary=v2", "200 app:v2 v2"),
        ("", "200 app:v1 main"),
        ("?canary=main", "200 app:v1 main"),
    ] {
        let mut got = Vec::new();
        for _ in 0..20 {
            let r = http
                .get(format!("{url}predict{query}"))
                .header("X-Canary", "v2")
                .send()
                .await
                .expect("request");
            let status = r.status().as_u16();
            let v: Value = r.json().await.expect("json");
            got.push((
                status,
                v["bento"].as_str().unwrap_or("").to_string(),
                v["target"].as_str().unwrap_or("").to_string(),
            ));
        }
        all(&got, want);
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canary_null_drains_the_canary_and_only_main_answers() {
    let dir = tempfile::tempdir().expect("tmp");
    let s = start(dir.path()).await;
    s.register("app:v1", json!({})).await;
    s.register("app:v2", json!({})).await;
    let d = s
        .create(
            "",
            canary_body("drop", "app:v1", "app:v2", 50, "random", None),
        )
        .await;
    let url = d.urls.clone().expect("urls")[0].clone();
    s.wait_serving("drop", d.revision_uid().expect("rev"), "running", 30)
        .await;
    // Both answer (each of 100 requests goes to v2 with probability 1/2).
    let t = tally(&hits(&url, 100, &[]).await);
    assert!(
        t.contains_key("200 app:v2 v2") && t.contains_key("200 app:v1 main"),
        "{t:?}"
    );

    // The same body with `canary: null`, under load: no request fails while the canary goes.
    let gen = load(&url, 2, "");
    let mut body = canary_body("drop", "app:v1", "app:v2", 50, "random", None);
    body["canary"] = Value::Null;
    let d2 = s.put("drop", body).await;
    let rev2 = d2.revision_uid().expect("rev").to_string();
    let v = s
        .wait_for("drop", "the canary drained", 30, |v| {
            v["status"] == "running"
                && v["rollout"]["serving_revision_uid"] == rev2.as_str()
                && v["rollout"]["ready_replicas"] == 1
        })
        .await;
    let hits_during = gen.finish().await;
    assert!(
        hits_during.iter().all(|h| h.status == 200),
        "{:?}",
        hits_during.iter().find(|h| h.status != 200)
    );
    assert_eq!(v["rollout"]["canary"], json!({}), "{}", v["rollout"]);
    assert_eq!(v["rollout"]["desired_replicas"], 1);
    let t = tally(&hits(&url, 100, &[]).await);
    assert_eq!(t.keys().collect::<Vec<_>>(), ["200 app:v1 main"], "{t:?}");
    // The pods stream lists draining pods too: the canary pod goes once its drain ends.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let pods = s.raw_pods("drop").await;
        if pods.iter().all(|p| p["status"]["is_canary"] == false) {
            break;
        }
        assert!(Instant::now() < deadline, "a canary pod stays: {pods:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    s.stop().await;
}

// ---------------------------------------------------------------- canary: what progressive delivery probes rely on

/// One answer of an endpoint: HTTP status, the `x-bentocloud-target` header, and the body.
async fn probe(http: &Client, url: &str, headers: &[(&str, &str)]) -> (u16, String, Value) {
    let mut req = http.get(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let r = req.send().await.expect("request");
    let status = r.status().as_u16();
    let target = r
        .headers()
        .get("x-bentocloud-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let body: Value = r.json().await.expect("json");
    (status, target, body)
}

/// BentoML's answer for an API that raised (what a `fail_paths` bento answers).
fn bentoml_500() -> Value {
    json!({"error": "An unexpected error has occurred, please check the server log."})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ready_canary_failing_its_requests_answers_500_and_every_answer_names_its_target() {
    let dir = tempfile::tempdir().expect("tmp");
    let s = start(dir.path()).await;
    s.register("app:v1", json!({})).await;
    s.register("app:bad", json!({"fail_paths": ["/predict"]}))
        .await;
    // Refused: a probe route, or something that is not a path.
    for bad in [json!(["/readyz"]), json!(["predict"])] {
        let (st, v) = s
            .call(
                Method::POST,
                "/api/local/v1/bentos",
                Some(json!({"tag": "app:worse", "fail_paths": bad})),
            )
            .await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
    }
    let d = s
        .create(
            "",
            canary_body("fails", "app:v1", "app:bad", 50, "random", None),
        )
        .await;
    let url = d.urls.clone().expect("urls")[0].clone();
    // Ready: the rollout completes with the failing version's replica ready, like a service
    // whose API raises but whose probes pass.
    let v = s
        .wait_serving("fails", d.revision_uid().expect("rev"), "running", 30)
        .await;
    assert_eq!(v["rollout"]["canary"]["v2"]["ready_replicas"], 1, "{v}");

    // Random routing: the header names who answered; v2 fails /predict, main serves it.
    let http = Client::new();
    let mut by_target = std::collections::BTreeMap::<String, usize>::new();
    for _ in 0..200 {
        let (status, target, body) = probe(&http, &format!("{url}predict"), &[]).await;
        match target.as_str() {
            "main" => {
                assert_eq!(status, 200, "{body}");
                assert_eq!(
                    (&body["target"], &body["bento"]),
                    (&json!("main"), &json!("app:v1"))
                );
            }
            "v2" => assert_eq!((status, &body), (500, &bentoml_500())),
            other => panic!("answer from target {other:?}: {status} {body}"),
        }
        *by_target.entry(target).or_insert(0) += 1;
    }
    // Each target gets Binomial(200, 1/2) requests: none at all has probability 2^-200.
    assert_eq!(by_target.len(), 2, "{by_target:?}");
    // Any other path of the failing version is served, and the header agrees with the body.
    for _ in 0..40 {
        let (status, target, body) = probe(&http, &format!("{url}healthy"), &[]).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["target"], target.as_str(), "{body}");
    }

    // Header and query routing: a value equal to a version's name goes to that version.
    let h = s
        .create(
            "",
            canary_body(
                "fails-h",
                "app:v1",
                "app:bad",
                0,
                "header",
                Some("X-Canary"),
            ),
        )
        .await;
    let q = s
        .create(
            "",
            canary_body("fails-q", "app:v1", "app:bad", 0, "query", Some("canary")),
        )
        .await;
    for d in [&h, &q] {
        s.wait_serving(&d.meta.name, d.revision_uid().expect("rev"), "running", 30)
            .await;
    }
    let hurl = h.urls.clone().expect("urls")[0].clone();
    let qurl = q.urls.clone().expect("urls")[0].clone();
    for _ in 0..10 {
        let got = probe(&http, &format!("{hurl}predict"), &[("X-Canary", "v2")]).await;
        assert_eq!((got.0, got.1.as_str(), &got.2), (500, "v2", &bentoml_500()));
        let got = probe(&http, &format!("{hurl}predict"), &[]).await;
        assert_eq!((got.0, got.1.as_str()), (200, "main"), "{}", got.2);
        let got = probe(&http, &format!("{hurl}other"), &[("x-canary", "v2")]).await;
        assert_eq!(
            (got.0, got.1.as_str(), &got.2["target"]),
            (200, "v2", &json!("v2"))
        );
        let got = probe(&http, &format!("{qurl}predict?canary=v2"), &[]).await;
        assert_eq!((got.0, got.1.as_str(), &got.2), (500, "v2", &bentoml_500()));
        let got = probe(&http, &format!("{qurl}predict?canary=main"), &[]).await;
        assert_eq!((got.0, got.1.as_str()), (200, "main"), "{}", got.2);
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_crashing_3s_after_ready_gets_traffic_until_then_and_main_after() {
    // A manual clock: the canary is ready at once and crashes exactly when the test moves the
    // clock 3 s past that, never because the test was slow.
    let dir = tempfile::tempdir().expect("tmp");
    let clock = Clock::manual(chrono::Utc::now().timestamp_millis());
    let s = start_with(
        dir.path(),
        false,
        None,
        Client::new(),
        platform(),
        clock.clone(),
    )
    .await;
    s.register("app:v1", json!({"startup_seconds": 0})).await;
    s.register(
        "app:crashy",
        json!({"startup_seconds": 0, "crash_after_seconds": 3}),
    )
    .await;
    let d = s
        .create(
            "",
            canary_body("crash3", "app:v1", "app:crashy", 100, "random", None),
        )
        .await;
    let url = format!("{}predict", d.urls.clone().expect("urls")[0]);
    s.wait_serving("crash3", d.revision_uid().expect("rev"), "running", 30)
        .await;
    let http = Client::new();
    // Weight 100: all to v2 while it lives, 2.999 s after it became ready included.
    clock
        .advance(Duration::from_millis(2_999))
        .expect("a manual clock");
    for _ in 0..20 {
        let (status, target, body) = probe(&http, &url, &[]).await;
        assert_eq!((status, target.as_str()), (200, "v2"), "{body}");
    }
    // At 3 s it crashes: every request is answered by main (the proxy retries a replica it
    // cannot reach on main; then the route drops it), none fails.
    clock
        .advance(Duration::from_millis(1))
        .expect("a manual clock");
    s.wait_for("crash3", "the canary replica to be seen crashed", 30, |v| {
        v["rollout"]["canary"]["v2"]["ready_replicas"] == 0
    })
    .await;
    for _ in 0..20 {
        let (status, target, body) = probe(&http, &url, &[]).await;
        assert_eq!((status, target.as_str()), (200, "main"), "{body}");
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_version_without_a_ready_replica_sends_its_share_to_main() {
    let dir = tempfile::tempdir().expect("tmp");
    let s = start(dir.path()).await;
    s.register("app:v1", json!({})).await;
    s.register("app:slow", json!({"startup_seconds": 600}))
        .await;
    let d = s
        .create(
            "",
            canary_body("slowc", "app:v1", "app:slow", 100, "random", None),
        )
        .await;
    let url = format!("{}predict", d.urls.clone().expect("urls")[0]);
    // main is ready; the canary version is still starting (the rollout waits for it).
    s.wait_for("slowc", "main ready, v2 starting", 30, |v| {
        v["rollout"]["ready_replicas"] == 1 && v["rollout"]["canary"]["v2"]["ready_replicas"] == 0
    })
    .await;
    let http = Client::new();
    for _ in 0..20 {
        let (status, target, body) = probe(&http, &url, &[]).await;
        assert_eq!((status, target.as_str()), (200, "main"), "{body}");
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_timeline_lists_every_canary_weight_step() {
    let dir = tempfile::tempdir().expect("tmp");
    let s = start(dir.path()).await;
    s.register("app:v1", json!({})).await;
    s.register("app:v2", json!({})).await;
    let mut revs = Vec::new();
    let d = s
        .create(
            "",
            canary_body("steps", "app:v1", "app:v2", 10, "random", None),
        )
        .await;
    revs.push(d.revision_uid().expect("rev").to_string());
    s.wait_serving("steps", &revs[0], "running", 30).await;
    for weight in [50, 100] {
        let d = s
            .put(
                "steps",
                canary_body("steps", "app:v1", "app:v2", weight, "random", None),
            )
            .await;
        revs.push(d.revision_uid().expect("rev").to_string());
        s.wait_serving("steps", &revs[revs.len() - 1], "running", 30)
            .await;
    }
    let mut body = canary_body("steps", "app:v1", "app:v2", 0, "random", None);
    body["canary"] = Value::Null;
    let d = s.put("steps", body).await;
    revs.push(d.revision_uid().expect("rev").to_string());
    s.wait_serving("steps", &revs[3], "running", 30).await;

    let (st, tl) = s
        .call(
            Method::GET,
            "/api/local/v1/deployments/steps/timeline?cluster=",
            None,
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{tl}");
    // The keys the page already draws are all there.
    for k in [
        "name",
        "cluster",
        "revision_uid",
        "serving_revision_uid",
        "phase",
        "started_at",
        "started_at_ms",
        "now_ms",
        "revisions",
        "samples",
        "scaling",
    ] {
        assert!(tl.get(k).is_some(), "timeline lacks {k}: {tl}");
    }
    let routing = tl["routing"].as_array().expect("routing");
    let steps: Vec<(String, Value, Value, Value)> = routing
        .iter()
        .map(|r| {
            (
                r["revision_uid"]
                    .as_str()
                    .expect("revision_uid")
                    .to_string(),
                r["route_type"].clone(),
                r["route_by"].clone(),
                r["weights"].clone(),
            )
        })
        .collect();
    assert_eq!(
        steps,
        [
            (
                revs[0].clone(),
                json!("random"),
                Value::Null,
                json!({"v2": 10})
            ),
            (
                revs[1].clone(),
                json!("random"),
                Value::Null,
                json!({"v2": 50})
            ),
            (
                revs[2].clone(),
                json!("random"),
                Value::Null,
                json!({"v2": 100})
            ),
            (revs[3].clone(), Value::Null, Value::Null, json!({})),
        ],
        "{tl:#}"
    );
    let at: Vec<i64> = routing
        .iter()
        .map(|r| r["at_ms"].as_i64().expect("at_ms"))
        .collect();
    assert!(at.windows(2).all(|w| w[0] < w[1]), "{at:?}");
    assert!(routing.iter().all(|r| r["at"].is_string()), "{tl:#}");
    s.stop().await;
}

/// `bentocloud-local bentos add --fail-paths` (what `harness::BentoBehaviour::fail_paths`
/// sends): the deployed bento is ready and answers 500 on those paths only.
#[test]
fn bentos_add_fail_paths_registers_a_ready_bento_failing_those_paths() {
    use crate::harness::{self, BentoBehaviour, Spec};
    let (cluster, name) = ("local-east", "failing");
    let server = harness::Server::start();
    server.bentos_add(
        "failing:v1",
        &BentoBehaviour {
            startup_seconds: Some(0.2),
            fail_paths: vec!["/predict".into(), "/v1/classify".into()],
            ..Default::default()
        },
    );
    let d = server.create_deployment(cluster, &Spec::new(name, "failing:v1").create_request());
    server.wait_rolled_out(cluster, name);
    assert_eq!(server.must_get(cluster, name).status.as_str(), "running");
    let url = d.urls.clone().expect("urls")[0].clone();
    let base = url
        .strip_prefix(&server.endpoint)
        .expect("the deployment URL is on the endpoint")
        .to_string();
    for (path, want) in [("predict", 500), ("v1/classify", 500), ("other", 200)] {
        let (code, body) = server.request(Method::GET, &format!("{base}{path}"), None);
        assert_eq!(code, want, "{path}: {body}");
        if want == 500 {
            let v: Value = serde_json::from_str(&body).expect("json");
            assert_eq!(v, bentoml_500(), "{path}");
        }
    }
}
