//! Security: who can read and change what, and what never leaks.
//!
//! Provider: the API key and secret values never appear in Terraform's output, in
//! `TF_LOG=TRACE` logs (`TF_LOG_PATH`), in the provider's own log file (`PLUGIN_LOG_FILE`), in
//! state, or in error messages, across plan, apply, a failing plan, a failing apply and destroy.
//!
//! Control plane (the real `bentocloud-local` process over real sockets): loopback by default;
//! 401 for a missing or wrong token, identical for deployments that exist and ones that do not;
//! organisations isolated; 413 above the body limit; 400 with a message for malformed JSON and
//! wrong types, never 5xx, and the server stays up.

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value as Json};

// `tf_test!` names `harness::TfVersion`.
use crate::harness;
use crate::harness::*;

tf_test!(
    api_key_and_secret_values_never_leak,
    api_key_and_secret_values_never_leak_tf1_11,
    api_key_and_secret_values_never_leak_tf1_0
);

// ------------------------------------------------------------------------------------------
// The provider leaks nothing
// ------------------------------------------------------------------------------------------

/// Every place a secret could end up, with its text.
struct Scan {
    token: String,
    secret: String,
    seen: Vec<(String, String)>,
}

impl Scan {
    fn add(&mut self, what: impl Into<String>, text: impl Into<String>) {
        self.seen.push((what.into(), text.into()));
    }

    fn out(&mut self, out: &TfOutput) {
        let what = format!("terraform {}", out.args.join(" "));
        self.add(format!("{what} (stdout)"), out.stdout.clone());
        self.add(format!("{what} (stderr)"), out.stderr.clone());
    }

    fn file(&mut self, path: &Path) {
        let text = String::from_utf8_lossy(&fs::read(path).unwrap_or_default()).to_string();
        self.add(path.display().to_string(), text);
    }

    /// Panics naming every place that holds the token or the secret value, with context.
    fn assert_clean(&self) {
        let mut leaks = Vec::new();
        for (what, text) in &self.seen {
            for (kind, needle) in [("API token", &self.token), ("secret value", &self.secret)] {
                if let Some(at) = text.find(needle.as_str()) {
                    let from = text[..at]
                        .char_indices()
                        .rev()
                        .nth(200)
                        .map(|(i, _)| i)
                        .unwrap_or(0);
                    let to = (at + needle.len() + 200).min(text.len());
                    let to = (to..=text.len())
                        .find(|i| text.is_char_boundary(*i))
                        .unwrap_or(text.len());
                    leaks.push(format!(
                        "the {kind} appears in {what}:\n...{}...",
                        &text[from..to]
                    ));
                }
            }
        }
        assert!(
            leaks.is_empty(),
            "{} leak(s):\n\n{}",
            leaks.len(),
            leaks.join("\n\n")
        );
    }
}

pub fn api_key_and_secret_values_never_leak(v: TfVersion) {
    let token = format!("bcl-token-{}-Qx7vZ3kP9w", v.version().replace('.', ""));
    let secret = "secret-value-Mz4t8Lr2Wn-must-not-leak".to_string();
    let server = Server::start_with(&["--api-token", &token]);
    assert_eq!(server.token, token, "the server uses the token given");
    server.register_bentos(&["iris:v1"]);
    server.create_secret("leak-check", "HF_TOKEN", &secret);
    server.bentos_add(
        "broken:v1",
        &BentoBehaviour {
            image_build_fails: true,
            ..Default::default()
        },
    );

    let logs = temp_dir("leak-logs-");
    let tf_log = logs.path().join("terraform-trace.log");
    let plugin_log = logs.path().join("provider.log");
    let mut tf = Tf::new(v, &server).with_provider_cluster("local-east");
    tf.env = vec![
        ("TF_LOG".into(), "TRACE".into()),
        ("TF_LOG_PATH".into(), tf_log.display().to_string()),
        ("PLUGIN_LOG_FILE".into(), plugin_log.display().to_string()),
        // The key through the provider block too (a variable, as a CI pipeline would pass it).
        ("TF_VAR_bentocloud_api_key".into(), token.clone()),
    ];
    let mut scan = Scan {
        token: token.clone(),
        secret: secret.clone(),
        seen: vec![],
    };
    let name = dep_name("leak", v);
    let config = |bento: &str, instance_type: &str| {
        format!(
            r#"variable "bentocloud_api_key" {{
  type      = string
  sensitive = true
}}

provider "bentocloud" {{
  cluster = "local-east"
  api_key = var.bentocloud_api_key
}}

resource "bentocloud_deployment" "app" {{
  name          = "{name}"
  bento         = "{bento}"
  instance_type = "{instance_type}"
  secrets       = ["leak-check"]
  envs          = {{ LOG_LEVEL = "debug" }}
}}

data "bentocloud_deployment" "same" {{
  name       = bentocloud_deployment.app.name
  depends_on = [bentocloud_deployment.app]
}}

output "url" {{
  value = bentocloud_deployment.app.url
}}
"#
        )
    };

    tf.write(&config("iris:v1", "cpu.1"));
    let out = tf.init();
    scan.out(&out);
    let out = tf.run_ok(&["plan", "-input=false", "-no-color", "-out=tfplan"]);
    scan.out(&out);
    let out = tf.run_ok(&["show", "-json", "-no-color", "tfplan"]);
    // Terraform records input variables in the plan, values included, even `sensitive` ones
    // (its own documented behaviour, not the provider's): scan everything else.
    let mut plan: Json = serde_json::from_str(&out.stdout).expect("plan JSON");
    if let Some(vars) = plan.get_mut("variables") {
        *vars = Json::Null;
    }
    scan.add(
        "terraform show -json tfplan (without `variables`)",
        plan.to_string(),
    );
    scan.add("terraform show -json tfplan (stderr)", out.stderr.clone());
    let out = tf.apply();
    scan.out(&out);
    let (_, out) = tf.plan_detailed_exitcode();
    scan.out(&out);
    let out = tf.run_ok(&["show", "-json", "-no-color"]);
    scan.out(&out);
    assert!(
        out.stdout.contains("leak-check"),
        "the state holds the secret's name (so the scan is not vacuous):\n{}",
        out.stdout
    );
    let out = tf.run_ok(&["output", "-json", "-no-color"]);
    scan.out(&out);
    let out = tf.run_ok(&["state", "pull"]);
    scan.out(&out);

    // A failing plan (an instance type the cluster does not offer) ...
    tf.write(&config("iris:v1", "cpu.64"));
    let out = tf.run_err(&["apply", "-input=false", "-no-color", "-auto-approve"]);
    assert!(
        out.stderr.contains("Unknown instance type"),
        "{}",
        out.describe()
    );
    scan.out(&out);
    // ... and a failing apply (the new bento's image build fails).
    tf.write(&config("broken:v1", "cpu.1"));
    let out = tf.apply_err();
    scan.out(&out);
    // Back to a good config, then destroy.
    tf.write(&config("iris:v1", "cpu.1"));
    let out = tf.apply();
    scan.out(&out);
    let out = tf.destroy();
    scan.out(&out);
    assert!(
        server.all_deployment_ids().is_empty(),
        "destroy left deployments"
    );

    // The same with the key only in the environment (the harness's BENTO_CLOUD_API_KEY), and a
    // request the server rejects mid-run is not possible with a fixed token: cover the
    // configure-time rejection path with a token that differs only in its last character.
    let mut bad = Tf::new(v, &server).with_provider_cluster("local-east");
    let near_miss = format!("{}X", &token[..token.len() - 1]);
    bad.env = vec![
        ("TF_LOG".into(), "TRACE".into()),
        ("TF_LOG_PATH".into(), tf_log.display().to_string()),
        ("PLUGIN_LOG_FILE".into(), plugin_log.display().to_string()),
        ("BENTO_CLOUD_API_KEY".into(), near_miss.clone()),
    ];
    bad.write(&Dep::new("app", &name, "iris:v1").hcl());
    bad.init();
    let out = bad.run_err(&["plan", "-input=false", "-no-color"]);
    assert!(
        out.stderr.contains("rejected the API key"),
        "{}",
        out.describe()
    );
    assert!(
        !format!("{}{}", out.stdout, out.stderr).contains(&near_miss),
        "a rejected token is echoed in the error:\n{}",
        out.describe()
    );
    scan.out(&out);

    // The logs were written, at trace level, and hold the provider's own lines: the scan of
    // them means something.
    let trace = fs::read_to_string(&tf_log).unwrap_or_default();
    assert!(
        trace.contains("[TRACE]"),
        "TF_LOG_PATH {} has no TRACE lines ({} bytes)",
        tf_log.display(),
        trace.len()
    );
    assert!(
        trace.contains("terraform-provider-bentocloud"),
        "the Terraform trace log has no provider lines"
    );
    let plog = fs::read_to_string(&plugin_log).unwrap_or_default();
    assert!(
        plog.contains("configuring bentocloud provider"),
        "PLUGIN_LOG_FILE {} lacks the provider's lines ({} bytes):\n{}",
        plugin_log.display(),
        plog.len(),
        &plog[..plog.len().min(2000)]
    );
    scan.file(&tf_log);
    scan.file(&plugin_log);
    for entry in fs::read_dir(tf.dir.path()).expect("read workdir").flatten() {
        let p = entry.path();
        let fname = p.file_name().map(|n| n.to_string_lossy().to_string());
        // tfplan is Terraform's own (zipped) record of variable values, by design; `.cmdN.*`
        // are the captured outputs, scanned above (`show -json tfplan` without `variables`).
        let captured = fname.as_deref().is_some_and(|f| f.starts_with(".cmd"));
        if p.is_file() && fname.as_deref() != Some("tfplan") && !captured {
            scan.file(&p);
        }
    }
    scan.assert_clean();
}

// ------------------------------------------------------------------------------------------
// The control plane
// ------------------------------------------------------------------------------------------

/// Raw HTTP to a server with any token (or none).
struct Http {
    rt: tokio::runtime::Runtime,
    client: reqwest::Client,
    endpoint: String,
}

impl Http {
    fn new(endpoint: &str) -> Http {
        Http {
            rt: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime"),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("client"),
            endpoint: endpoint.to_string(),
        }
    }

    /// (status, content-type, body)
    fn call(
        &self,
        token: Option<&str>,
        method: &str,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> (u16, String, String) {
        let url = format!("{}{}", self.endpoint, path);
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        self.rt.block_on(async {
            let mut req = self.client.request(method.clone(), &url);
            if let Some(t) = token {
                req = req.header("X-YATAI-API-TOKEN", t);
            }
            if let Some(b) = body {
                req = req.header("content-type", "application/json").body(b);
            }
            let resp = req
                .send()
                .await
                .unwrap_or_else(|e| panic!("{method} {url}: the server did not answer: {e}"));
            let status = resp.status().as_u16();
            let ct = resp
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string();
            (status, ct, resp.text().await.unwrap_or_default())
        })
    }

    fn json(&self, token: &str, method: &str, path: &str, body: Option<Json>) -> (u16, Json) {
        let (st, _, text) = self.call(
            Some(token),
            method,
            path,
            body.map(|b| serde_json::to_vec(&b).expect("json")),
        );
        (st, serde_json::from_str(&text).unwrap_or(Json::Null))
    }
}

fn dep_body(name: &str, bento: &str) -> Json {
    json!({
        "name": name,
        "bento": bento,
        "access_authorization": false,
        "secrets": ["org-secret"],
        "services": {"apiserver": {
            "instance_type": "cpu.1",
            "scaling": {"min_replicas": 1, "max_replicas": 1},
            "deployment_strategy": "RollingUpdate",
            "config_overrides": {}
        }}
    })
}

/// Sends `len` bytes of body over a plain socket, ignoring write errors once the server has
/// answered (as curl does), and returns the status line and the body of the response.
fn raw_post(endpoint: &str, token: &str, method: &str, path: &str, len: usize) -> (String, String) {
    use std::io::{Read, Write};
    let addr = endpoint.trim_start_matches("http://");
    let mut sock = std::net::TcpStream::connect(addr).expect("connect");
    sock.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    sock.set_write_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nX-YATAI-API-TOKEN: {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n"
    );
    sock.write_all(head.as_bytes()).expect("write head");
    let chunk = vec![b'x'; 64 * 1024];
    let mut sent = 0;
    while sent < len {
        let n = chunk.len().min(len - sent);
        if sock.write_all(&chunk[..n]).is_err() {
            break;
        }
        sent += n;
    }
    let mut resp = Vec::new();
    let _ = sock.read_to_end(&mut resp);
    let text = String::from_utf8_lossy(&resp).to_string();
    let status = text.lines().next().unwrap_or("").to_string();
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

fn assert_no_panic(server: &Server) {
    let log = server.log();
    assert!(
        !log.contains("panicked"),
        "bentocloud-local panicked:\n{log}"
    );
}

/// `bentocloud-local serve` without `--listen` binds 127.0.0.1 only.
#[test]
fn control_plane_binds_loopback_by_default() {
    let help = Command::new(server_bin())
        .args(["serve", "--help"])
        .output()
        .expect("run bentocloud-local serve --help");
    let text = String::from_utf8_lossy(&help.stdout);
    assert!(
        text.contains("[default: 127.0.0.1:4780]"),
        "the documented default listen address is not loopback:\n{text}"
    );
    // And really: start it without --listen. The default port may be taken by another
    // bentocloud-local on this machine; then the help text above is the evidence.
    let dir = temp_dir("loopback-");
    let log = dir.path().join("server.log");
    let logf = fs::File::create(&log).expect("log");
    let mut child = Command::new(server_bin())
        .args(["serve", "--data-dir"])
        .arg(dir.path())
        .stdin(Stdio::null())
        .stdout(logf.try_clone().expect("log"))
        .stderr(logf)
        .spawn()
        .expect("start bentocloud-local");
    let end = Instant::now() + Duration::from_secs(30);
    let endpoint = loop {
        let ep = fs::read_to_string(dir.path().join("endpoint")).unwrap_or_default();
        if !ep.trim().is_empty() {
            break Some(ep.trim().to_string());
        }
        if let Ok(Some(_)) = child.try_wait() {
            let text = fs::read_to_string(&log).unwrap_or_default();
            assert!(
                text.contains("127.0.0.1:4780"),
                "bentocloud-local exited without binding the default address:\n{text}"
            );
            break None;
        }
        if Instant::now() >= end {
            let _ = child.kill();
            panic!("bentocloud-local did not start");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let _ = child.kill();
    let _ = child.wait();
    if let Some(ep) = endpoint {
        assert!(
            ep.starts_with("http://127.0.0.1:"),
            "default endpoint {ep} is not loopback"
        );
    }
}

/// 401 for a missing or wrong token, before anything else: the answer for a deployment that
/// exists is byte-for-byte the answer for one that does not, for every method and route.
#[test]
fn unauthenticated_callers_learn_nothing() {
    // A process: its output shows a panic, if any.
    let server = Server::start_process(&[]);
    server.register_bentos(&["iris:v1"]);
    server.create_secret("org-secret", "K", "v");
    server.create_deployment(
        "local-east",
        &Spec::new("exists", "iris:v1").create_request(),
    );
    let http = Http::new(&server.endpoint);
    let near_miss = format!("{}x", server.token);
    for token in [None, Some(""), Some("wrong"), Some(near_miss.as_str())] {
        for (method, exists, ghost, body) in [
            (
                "GET",
                "/api/v2/deployments/exists?cluster=local-east",
                "/api/v2/deployments/ghost?cluster=local-east",
                None,
            ),
            (
                "PUT",
                "/api/v2/deployments/exists?cluster=local-east",
                "/api/v2/deployments/ghost?cluster=local-east",
                Some(dep_body("x", "iris:v1")),
            ),
            (
                "DELETE",
                "/api/v2/deployments/exists?cluster=local-east",
                "/api/v2/deployments/ghost?cluster=local-east",
                None,
            ),
            (
                "POST",
                "/api/v2/deployments/exists/terminate?cluster=local-east",
                "/api/v2/deployments/ghost/terminate?cluster=local-east",
                None,
            ),
            (
                "PUT",
                "/api/v2/deployments/exists/void_update?cluster=local-east",
                "/api/v2/deployments/ghost/void_update?cluster=local-east",
                None,
            ),
            (
                "GET",
                "/api/v1/org_secrets/org-secret",
                "/api/v1/org_secrets/ghost",
                None,
            ),
            (
                "DELETE",
                "/api/v1/org_secrets/org-secret",
                "/api/v1/org_secrets/ghost",
                None,
            ),
            (
                "GET",
                "/api/v1/bento_repositories/iris/bentos/v1",
                "/api/v1/bento_repositories/ghost/bentos/v1",
                None,
            ),
            (
                "GET",
                "/api/v1/clusters/local-east",
                "/api/v1/clusters/mars",
                None,
            ),
            (
                "GET",
                "/api/v2/deployments?cluster=local-east",
                "/api/v2/nonexistent-route",
                None,
            ),
            (
                "GET",
                "/ws/v2/deployments/exists/pods?cluster=local-east",
                "/ws/v2/deployments/ghost/pods?cluster=local-east",
                None,
            ),
        ] {
            let b = body.map(|b: Json| serde_json::to_vec(&b).expect("json"));
            let a = http.call(token, method, exists, b.clone());
            let g = http.call(token, method, ghost, b);
            assert_eq!(a.0, 401, "{method} {exists} with token {token:?}: {a:?}");
            assert_eq!(
                a, g,
                "{method} with token {token:?}: an existing object ({exists}) and a missing one \
                 ({ghost}) must get the same answer"
            );
            let v: Json = serde_json::from_str(&a.2).unwrap_or(Json::Null);
            assert!(
                v["error"].is_string(),
                "401 body is JSON with an error: {a:?}"
            );
        }
    }
    // Nothing changed through all those requests.
    assert_eq!(
        server.all_deployment_ids(),
        set_of(&["local-east/exists"]),
        "unauthenticated requests changed the server"
    );
    assert!(
        server.must_get("local-east", "exists").status
            != bentocloud::api::DeploymentStatus::Terminating
    );
    assert_no_panic(&server);
}

/// A token of another organisation sees none of the first one's deployments, secrets or
/// bentos, and cannot read, change, terminate or delete them.
#[test]
fn organisations_are_isolated() {
    // Strict: an unknown bento is a 404, not registered on the fly for whoever asks (which
    // would hide whether the other organisation's bento leaks).
    let server = Server::start_process(&["--strict-bentos"]);
    server.create_secret("org-secret", "K", "first-org-secret-value");
    server.bentos_add("private:v1", &BentoBehaviour::default());
    server.create_deployment(
        "local-east",
        &Spec::new("mine", "private:v1").create_request(),
    );
    let out = Command::new(server_bin())
        .args(["tokens", "add", "--org", "other", "--data-dir"])
        .arg(server.data_dir.path())
        .output()
        .expect("run bentocloud-local tokens add");
    assert!(out.status.success(), "tokens add failed: {out:?}");
    let other = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(
        !other.is_empty() && other != server.token,
        "tokens add printed {other:?}"
    );
    let http = Http::new(&server.endpoint);

    // The other org is a real, authenticated caller.
    let (st, me) = http.json(&other, "GET", "/api/v1/current_org", None);
    assert_eq!(st, 200, "{me}");
    let (_, mine) = http.json(&server.token, "GET", "/api/v1/current_org", None);
    assert_ne!(
        me["name"], mine["name"],
        "the two tokens are in different organisations"
    );

    // Lists are empty.
    for path in [
        "/api/v2/deployments?cluster=&all=true&count=100",
        "/api/v2/deployments?cluster=local-east&count=100",
        "/api/v2/deployments?cluster=local-east&count=100&search=mine",
        "/api/v1/org_secrets?count=100",
        "/api/v1/org_secrets?count=100&search=org-secret",
        "/api/v1/bento_repositories/private/bentos?count=100",
    ] {
        let (st, v) = http.json(&other, "GET", path, None);
        let items = v["items"].as_array().map(Vec::len).unwrap_or(0);
        assert!(
            st == 404 || (st == 200 && items == 0 && v["total"] == 0),
            "GET {path} as the other org shows the first org's objects ({st}): {v}"
        );
    }
    // Single objects: the same answer as for objects that do not exist at all.
    let same_as_missing = |method: &str, path: &str, ghost: &str, body: Option<Json>| {
        let (st, v) = http.json(&other, method, path, body.clone());
        let (gst, gv) = http.json(&other, method, ghost, body);
        assert!(
            (400..500).contains(&st),
            "{method} {path} as the other org must fail, got {st}: {v}"
        );
        assert_eq!(
            st, gst,
            "{method} {path}: the other org can tell the object exists ({v} vs {gv})"
        );
        let text = v.to_string();
        assert!(
            !text.contains("first-org-secret-value"),
            "{method} {path} reveals the secret: {text}"
        );
        assert!(v["error"].is_string(), "{method} {path}: {v}");
    };
    same_as_missing(
        "GET",
        "/api/v2/deployments/mine?cluster=local-east",
        "/api/v2/deployments/ghost?cluster=local-east",
        None,
    );
    same_as_missing(
        "PUT",
        "/api/v2/deployments/mine?cluster=local-east",
        "/api/v2/deployments/ghost?cluster=local-east",
        Some(dep_body("mine", "iris:v1")),
    );
    same_as_missing(
        "PUT",
        "/api/v2/deployments/mine/void_update?cluster=local-east",
        "/api/v2/deployments/ghost/void_update?cluster=local-east",
        None,
    );
    same_as_missing(
        "POST",
        "/api/v2/deployments/mine/terminate?cluster=local-east",
        "/api/v2/deployments/ghost/terminate?cluster=local-east",
        None,
    );
    same_as_missing(
        "DELETE",
        "/api/v2/deployments/mine?cluster=local-east",
        "/api/v2/deployments/ghost?cluster=local-east",
        None,
    );
    same_as_missing(
        "GET",
        "/api/v1/org_secrets/org-secret",
        "/api/v1/org_secrets/ghost",
        None,
    );
    same_as_missing(
        "PATCH",
        "/api/v1/org_secrets/org-secret",
        "/api/v1/org_secrets/ghost",
        Some(json!({"content": {"type": "env", "items": [{"key": "K", "value": "stolen"}]}})),
    );
    same_as_missing(
        "DELETE",
        "/api/v1/org_secrets/org-secret",
        "/api/v1/org_secrets/ghost",
        None,
    );
    same_as_missing(
        "GET",
        "/api/v1/bento_repositories/private/bentos/v1",
        "/api/v1/bento_repositories/ghost/bentos/v1",
        None,
    );
    same_as_missing(
        "GET",
        "/api/v1/bento_repositories/private",
        "/api/v1/bento_repositories/ghost",
        None,
    );

    // A same-named deployment in the other org is its own object and leaves the first alone.
    let (st, v) = http.json(
        &other,
        "POST",
        "/api/v2/deployments?cluster=local-east",
        Some(json!({"name": "mine", "bento": "iris:v1", "services": {"apiserver": {"config_overrides": {}}}})),
    );
    assert!(st == 200 || (400..500).contains(&st), "{st}: {v}");

    // The first org still has exactly what it had.
    let d = server.must_get("local-east", "mine");
    assert_eq!(
        d.bento_tag().as_deref(),
        Some("private:v1"),
        "the other org changed it"
    );
    assert!(
        !matches!(
            d.status,
            bentocloud::api::DeploymentStatus::Terminating
                | bentocloud::api::DeploymentStatus::Terminated
        ),
        "the other org terminated it: {:?}",
        d.status
    );
    let (st, v) = http.json(&server.token, "GET", "/api/v1/org_secrets/org-secret", None);
    assert_eq!(st, 200, "the other org deleted the secret: {v}");
    assert!(
        !v.to_string().contains("stolen"),
        "the other org changed the secret: {v}"
    );
    // And the first org does not see the other org's deployment.
    let (_, list) = http.json(
        &server.token,
        "GET",
        "/api/v2/deployments?cluster=&all=true&count=100",
        None,
    );
    assert_eq!(list["total"], 1, "{list}");
    assert_no_panic(&server);
}

/// Every body-taking route: 413 above 1 MiB, 400 with a message for malformed JSON and wrong
/// types, never 5xx, and the server answers afterwards.
#[test]
fn bodies_are_limited_and_validated() {
    // A process: its output shows a panic, if any.
    let server = Server::start_process(&[]);
    server.register_bentos(&["iris:v1"]);
    server.create_secret("org-secret", "K", "v");
    server.create_deployment(
        "local-east",
        &Spec::new("exists", "iris:v1").create_request(),
    );
    let http = Http::new(&server.endpoint);
    let t = server.token.clone();
    let routes = [
        ("POST", "/api/v2/deployments?cluster=local-east"),
        ("PUT", "/api/v2/deployments/exists?cluster=local-east"),
        ("POST", "/api/v1/org_secrets"),
        ("PATCH", "/api/v1/org_secrets/org-secret"),
        ("POST", "/api/local/v1/bentos"),
    ];
    // Just over the limit (through reqwest, like the provider), and far over it (raw TCP, a
    // client that keeps sending while the server answers).
    let over = format!("{{\"name\": \"{}\"}}", "x".repeat(1024 * 1024 + 1024));
    let huge = 8 * 1024 * 1024;
    let bad_bodies: Vec<(&str, Vec<u8>)> = vec![
        ("not JSON", b"{not json".to_vec()),
        ("truncated", b"{\"name\": \"x\", \"bento\": ".to_vec()),
        ("empty", b"".to_vec()),
        ("null", b"null".to_vec()),
        ("array", b"[1, 2]".to_vec()),
        ("number", b"42".to_vec()),
        ("bad UTF-8", vec![b'{', b'"', 0xff, 0xfe, b'"', b':', b'1', b'}']),
        ("deep nesting", "[".repeat(100_000).into_bytes()),
        (
            "wrong types",
            br#"{"name": 7, "bento": ["a"], "services": "x", "content": 3, "tag": {}, "secrets": "s", "labels": 1, "envs": true}"#.to_vec(),
        ),
        (
            "huge number",
            br#"{"name": "x", "bento": "iris:v1", "services": {"apiserver": {"scaling": {"min_replicas": 1e400}}}}"#.to_vec(),
        ),
    ];
    for (method, path) in routes {
        let (st, ct, text) = http.call(Some(&t), method, path, Some(over.clone().into_bytes()));
        assert_eq!(
            st, 413,
            "{method} {path} with a 1 MiB + 1 KiB body: {st} {text}"
        );
        assert!(
            ct.starts_with("application/json"),
            "{method} {path} 413 is JSON: {ct}"
        );
        let (head, text) = raw_post(&server.endpoint, &t, method, path, huge);
        assert!(
            head.starts_with("HTTP/1.1 413"),
            "{method} {path} with an 8 MiB body: {head}\n{text}"
        );
        assert!(text.contains("\"error\""), "{method} {path} 8 MiB: {text}");
        for (what, body) in &bad_bodies {
            let (st, ct, text) = http.call(Some(&t), method, path, Some(body.clone()));
            assert_eq!(st, 400, "{method} {path} with a {what} body: {st} {text}");
            assert!(
                ct.starts_with("application/json"),
                "{method} {path} {what}: {ct}"
            );
            let v: Json = serde_json::from_str(&text).unwrap_or(Json::Null);
            assert!(
                v["error"].as_str().is_some_and(|m| !m.is_empty()),
                "{method} {path} with a {what} body: no error message: {text}"
            );
        }
    }
    // Wrong types field by field in a create body: each one a 400 naming the problem.
    let base = dep_body("typed", "iris:v1");
    let fields: &[(&str, Json)] = &[
        ("/name", json!(7)),
        ("/bento", json!({"a": 1})),
        ("/access_authorization", json!("yes")),
        ("/secrets", json!("org-secret")),
        ("/services", json!([])),
        ("/services/apiserver", json!("cpu.1")),
        ("/services/apiserver/instance_type", json!(1)),
        ("/services/apiserver/scaling", json!(3)),
        ("/services/apiserver/scaling/min_replicas", json!("1")),
        ("/services/apiserver/scaling/max_replicas", json!(-1.5)),
        ("/services/apiserver/deployment_strategy", json!(false)),
    ];
    for (ptr, bad) in fields {
        let mut b = base.clone();
        if let Some(slot) = b.pointer_mut(ptr) {
            *slot = bad.clone();
        }
        for (method, path) in [routes[0], routes[1]] {
            if *ptr == "/name" && method == "PUT" {
                continue; // an update body has no name (the path names the deployment)
            }
            let (st, v) = http.json(&t, method, path, Some(b.clone()));
            assert_eq!(st, 400, "{method} {path} with {ptr} = {bad}: {st} {v}");
            assert!(v["error"].is_string(), "{method} {path} {ptr}: {v}");
        }
    }
    // Still up, still the same.
    let (st, _, _) = http.call(None, "GET", "/healthz", None);
    assert_eq!(st, 200, "the server is down after bad bodies");
    assert_eq!(server.all_deployment_ids(), set_of(&["local-east/exists"]));
    assert_no_panic(&server);
}
