//! The official `bentoml` Python client (PyPI, 1.4.39, installed by `scripts/setup.sh` into
//! `.tools/py`) against a real `bentocloud-local serve` process.
//!
//! Every test runs the real CLI (`PYTHONPATH=.tools/py python3 -m bentoml ...`) or its Python
//! API (`python3 -c`), and checks three things: the client's exit code, what it printed (JSON
//! output is parsed), and the server's state read back directly over HTTP into
//! `bentocloud::api` types. A missing client is a loud failure, never a skip.
//!
//! The client keeps its context in `$BENTOML_HOME/.yatai.yaml`; each test has its own temp
//! `BENTOML_HOME` and logs in with `bentoml cloud login`, so the commands after it use the
//! saved context (no `BENTO_CLOUD_API_KEY` in their environment).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use bentocloud::api::{Deployment, DeploymentStatus, InstanceType, ListResponse, Secret};
use reqwest::StatusCode;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::harness::ControlPlane;

/// The bentoml release `scripts/setup.sh` installs (and the API reference was checked against).
const BENTOML_VERSION: &str = "1.4.39";

/// Longest any single client command may take (`terminate --wait` has no timeout of its own).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(180);

/// Where the bentoml package lives: `$BENTOCLOUD_BENTOML_PYTHONPATH` (exported by setup.sh),
/// else the project-local `.tools/py`.
fn bentoml_pythonpath() -> PathBuf {
    match std::env::var_os("BENTOCLOUD_BENTOML_PYTHONPATH") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => Path::new(env!("CARGO_MANIFEST_DIR")).join(".tools/py"),
    }
}

/// Panics with instructions when the client cannot be imported.
fn require_bentoml() {
    let pp = bentoml_pythonpath();
    let out = std::process::Command::new("python3")
        .args(["-c", "import bentoml; print(bentoml.__version__)"])
        .env("PYTHONPATH", &pp)
        .env("BENTOML_DO_NOT_TRACK", "True")
        .output()
        .unwrap_or_else(|e| panic!("cannot run python3 (needed for the bentoml client): {e}"));
    let version = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(
        out.status.success(),
        "the official bentoml client is not installed: `PYTHONPATH={} python3 -c 'import bentoml'` \
         failed:\n{}\nRun `bash scripts/setup.sh` (it installs bentoml=={BENTOML_VERSION} into \
         .tools/py), or set BENTOCLOUD_BENTOML_PYTHONPATH to a directory holding it.",
        pp.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        version,
        BENTOML_VERSION,
        "bentoml {version} is installed in {}, these tests expect {BENTOML_VERSION}: re-run \
         `bash scripts/setup.sh`",
        pp.display()
    );
}

/// Output of one client run.
struct Out {
    code: i32,
    stdout: String,
    stderr: String,
    what: String,
}

impl Out {
    fn ok(self) -> Self {
        assert_eq!(
            self.code, 0,
            "`{}` exited {}\n--- stdout\n{}\n--- stderr\n{}",
            self.what, self.code, self.stdout, self.stderr
        );
        self
    }

    fn failed(self) -> Self {
        assert_ne!(
            self.code, 0,
            "`{}` should have failed\n--- stdout\n{}\n--- stderr\n{}",
            self.what, self.stdout, self.stderr
        );
        self
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "`{}` did not print JSON ({e})\n--- stdout\n{}\n--- stderr\n{}",
                self.what, self.stdout, self.stderr
            )
        })
    }

    fn all(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }
}

/// The control plane (in-process, see `harness::ControlPlane`), and a temp `BENTOML_HOME` for
/// the client.
struct Server {
    endpoint: String,
    token: String,
    cp: ControlPlane,
    home: tempfile::TempDir,
    http: reqwest::Client,
}

/// Starts the control plane with `bentos` registered (default behaviour, one service
/// `apiserver`): the bentos the test deploys, pushed as on BentoCloud. Any other tag is the
/// real API's 404.
async fn start(bentos: &[&str]) -> Server {
    require_bentoml();
    let home = tempfile::tempdir().expect("tempdir");
    let cp = ControlPlane::start(&[], false);
    let s = Server {
        endpoint: cp.endpoint.clone(),
        token: cp.token.clone(),
        cp,
        home,
        http: reqwest::Client::new(),
    };
    for tag in bentos {
        let resp = s
            .http
            .post(format!("{}/api/local/v1/bentos", s.endpoint))
            .header("X-YATAI-API-TOKEN", &s.token)
            .json(&serde_json::json!({ "tag": tag }))
            .send()
            .await
            .expect("register a bento");
        assert!(resp.status().is_success(), "registering {tag}: {resp:?}");
    }
    s
}

impl Server {
    /// Runs `python3 <args>` with the client's environment: its PYTHONPATH, our BENTOML_HOME,
    /// tracking off, and none of the env vars that would override the saved context.
    async fn python(&self, args: &[&str], what: String) -> Out {
        let mut cmd = tokio::process::Command::new("python3");
        cmd.args(args)
            .current_dir(self.home.path())
            .env("PYTHONPATH", bentoml_pythonpath())
            .env("BENTOML_HOME", self.home.path())
            .env("BENTOML_DO_NOT_TRACK", "True")
            .env("NO_COLOR", "1")
            .env("COLUMNS", "200")
            .env_remove("BENTO_CLOUD_API_KEY")
            .env_remove("BENTO_CLOUD_API_ENDPOINT")
            .env_remove("BENTOML_CLOUD_CONTEXT")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let child = cmd.spawn().expect("spawn python3");
        let out = tokio::time::timeout(COMMAND_TIMEOUT, child.wait_with_output())
            .await
            .unwrap_or_else(|_| panic!("`{what}` did not end within {COMMAND_TIMEOUT:?}"))
            .expect("wait python3");
        Out {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            what,
        }
    }

    /// `bentoml ARGS...` (as `python3 -m bentoml`).
    async fn bentoml(&self, args: &[&str]) -> Out {
        let mut full = vec!["-m", "bentoml"];
        full.extend_from_slice(args);
        self.python(&full, format!("bentoml {}", args.join(" ")))
            .await
    }

    /// `bentoml cloud login` with the server's endpoint and token.
    async fn login(&self) {
        let out = self
            .bentoml(&[
                "cloud",
                "login",
                "--endpoint",
                &self.endpoint,
                "--api-token",
                &self.token,
            ])
            .await
            .ok();
        assert!(
            out.all().contains("Logged in"),
            "login output: {}",
            out.all()
        );
        let ctx = std::fs::read_to_string(self.home.path().join(".yatai.yaml"))
            .expect("bentoml cloud login writes $BENTOML_HOME/.yatai.yaml");
        assert!(
            ctx.contains(&self.endpoint) && ctx.contains(&self.token),
            "{ctx}"
        );
    }

    /// GET over HTTP with the server's token: (status, body).
    async fn get_raw(&self, path: &str) -> (StatusCode, String) {
        let resp = self
            .http
            .get(format!("{}{path}", self.endpoint))
            .header("X-YATAI-API-TOKEN", &self.token)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        let st = resp.status();
        (st, resp.text().await.expect("body"))
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> T {
        let (st, body) = self.get_raw(path).await;
        assert_eq!(st, StatusCode::OK, "GET {path}: {body}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: {e}: {body}"))
    }

    async fn deployment(&self, name: &str, cluster: &str) -> Deployment {
        self.get(&format!("/api/v2/deployments/{name}?cluster={cluster}"))
            .await
    }

    async fn stop(self) {
        // Stopping waits for the server's own runtime (another thread), not for this one.
        tokio::task::block_in_place(|| drop(self.cp));
    }
}

fn names(v: &Value) -> Vec<String> {
    let mut n: Vec<String> = v
        .as_array()
        .unwrap_or_else(|| panic!("not a JSON array: {v}"))
        .iter()
        .map(|d| d["name"].as_str().expect("name").to_string())
        .collect();
    n.sort();
    n
}

fn labels(d: &Deployment) -> Vec<(String, String)> {
    let mut l: Vec<(String, String)> = d
        .meta
        .labels
        .iter()
        .map(|l| (l.key.clone(), l.value.clone()))
        .collect();
    l.sort();
    l
}

fn pair(k: &str, v: &str) -> (String, String) {
    (k.to_string(), v.to_string())
}

/// (min, max) replicas of a service of the main target.
fn scaling(d: &Deployment, svc: &str) -> (Option<i64>, Option<i64>) {
    let cfg = d
        .main_target()
        .and_then(|t| t.config.as_ref())
        .unwrap_or_else(|| panic!("{} has no config", d.meta.name));
    let s = cfg.services[svc].scaling.as_ref().expect("scaling is set");
    (s.min_replicas, s.max_replicas)
}

fn envs(d: &Deployment) -> Vec<(String, String)> {
    let cfg = d.main_target().and_then(|t| t.config.as_ref()).unwrap();
    cfg.envs
        .iter()
        .flatten()
        .map(|e| (e.name.clone(), e.value.clone()))
        .collect()
}

/// Login, then the whole deployment lifecycle through the CLI: deploy with labels/cluster/env,
/// create in the default cluster, list (all, --cluster, --search, --label, -o json), get,
/// update (labels kept), apply (create, then overriding update), terminate --wait, delete.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_deployment_lifecycle() {
    let s = start(&["iris:v1"]).await;
    s.login().await;

    // `deploy` (it has --label; `deployment create` does not), in a non-default cluster.
    let out = s
        .bentoml(&[
            "deploy",
            "iris:v1",
            "-n",
            "dep-ml",
            "--cluster",
            "local-west",
            "--scaling-min",
            "1",
            "--scaling-max",
            "2",
            "--label",
            "team=ml",
            "--env",
            "A=1",
            "--no-wait",
        ])
        .await
        .ok();
    assert!(out.all().contains("dep-ml"), "{}", out.all());
    let d = s.deployment("dep-ml", "local-west").await;
    assert_eq!(d.cluster.meta.name, "local-west");
    assert_eq!(labels(&d), vec![pair("team", "ml")]);
    assert_eq!(scaling(&d, "apiserver"), (Some(1), Some(2)));
    assert_eq!(envs(&d), vec![pair("A", "1")]);
    assert_eq!(d.bento_tag().as_deref(), Some("iris:v1"));

    // `deployment create` without --cluster: the default cluster.
    s.bentoml(&[
        "deployment",
        "create",
        "iris:v1",
        "-n",
        "dep-plain",
        "--scaling-min",
        "1",
        "--scaling-max",
        "2",
        "--env",
        "B=2",
        "--no-wait",
    ])
    .await
    .ok();
    let d = s.deployment("dep-plain", "").await;
    assert_eq!(d.cluster.meta.name, "local-east");
    assert!(labels(&d).is_empty());

    // What the server lists, for comparison with the client's output.
    let all: ListResponse<Deployment> = s.get("/api/v2/deployments?all=true").await;
    assert_eq!(all.total, 2);

    // list: table, then JSON across clusters, one cluster, search, label.
    let out = s.bentoml(&["deployment", "list"]).await.ok();
    assert!(
        out.stdout.contains("dep-ml") && out.stdout.contains("dep-plain"),
        "{}",
        out.all()
    );
    let v = s
        .bentoml(&["deployment", "list", "-o", "json"])
        .await
        .ok()
        .json();
    assert_eq!(names(&v), vec!["dep-ml", "dep-plain"]);
    let by_name = |n: &str| {
        v.as_array()
            .unwrap()
            .iter()
            .find(|d| d["name"] == n)
            .unwrap()
            .clone()
    };
    assert_eq!(by_name("dep-ml")["cluster"], "local-west");
    assert_eq!(by_name("dep-ml")["bento"], "iris:v1");
    assert_eq!(by_name("dep-plain")["cluster"], "local-east");
    let v = s
        .bentoml(&[
            "deployment",
            "list",
            "--cluster",
            "local-west",
            "-o",
            "json",
        ])
        .await
        .ok()
        .json();
    assert_eq!(names(&v), vec!["dep-ml"]);
    let v = s
        .bentoml(&["deployment", "list", "--search", "plain", "-o", "json"])
        .await
        .ok()
        .json();
    assert_eq!(names(&v), vec!["dep-plain"]);
    let v = s
        .bentoml(&["deployment", "list", "--label", "team=ml", "-o", "json"])
        .await
        .ok()
        .json();
    assert_eq!(names(&v), vec!["dep-ml"]);
    let v = s
        .bentoml(&["deployment", "list", "--label", "team=nobody", "-o", "json"])
        .await
        .ok()
        .json();
    assert_eq!(names(&v), Vec::<String>::new());

    // get -o json.
    let v = s
        .bentoml(&[
            "deployment",
            "get",
            "dep-ml",
            "--cluster",
            "local-west",
            "-o",
            "json",
        ])
        .await
        .ok()
        .json();
    assert_eq!(v["name"], "dep-ml");
    assert_eq!(v["cluster"], "local-west");
    assert_eq!(v["bento"], "iris:v1");
    assert_eq!(
        v["config"]["services"]["apiserver"]["scaling"]["max_replicas"],
        2
    );
    let server_status = s.deployment("dep-ml", "local-west").await.status;
    assert!(
        v["status"]["status"] == server_status.as_str()
            || v["status"]["status"] == "running"
            || v["status"]["status"] == "deploying",
        "client status {} vs server {server_status}",
        v["status"]["status"]
    );
    // A missing deployment: exit 1 with the client's "not found" message.
    let out = s
        .bentoml(&["deployment", "get", "nope", "-o", "json"])
        .await
        .failed();
    assert!(out.all().contains("not found"), "{}", out.all());

    // update --scaling-max 3: the client PUTs the whole config with `labels: null`; the server
    // must keep the labels and the envs, and change only max.
    let before = s.deployment("dep-ml", "local-west").await;
    s.bentoml(&[
        "deployment",
        "update",
        "dep-ml",
        "--cluster",
        "local-west",
        "--scaling-max",
        "3",
    ])
    .await
    .ok();
    let d = s.deployment("dep-ml", "local-west").await;
    assert_eq!(scaling(&d, "apiserver"), (Some(1), Some(3)));
    assert_eq!(labels(&d), vec![pair("team", "ml")], "labels were dropped");
    assert_eq!(envs(&d), vec![pair("A", "1")]);
    assert_ne!(
        d.revision_uid(),
        before.revision_uid(),
        "update made no new revision"
    );

    // apply -f: a new name creates (GET 404 -> POST) ...
    let file = s.home.path().join("apply.yaml");
    let apply_yaml = |max: u32, with_env: bool| {
        let env = if with_env {
            "envs:\n  - name: C\n    value: \"3\"\n"
        } else {
            ""
        };
        format!(
            "name: dep-applied\nbento: iris:v1\ncluster: local-west\nlabels:\n  - key: team\n    value: ops\n{env}services:\n  apiserver:\n    instance_type: cpu.2\n    scaling:\n      min_replicas: 1\n      max_replicas: {max}\n"
        )
    };
    std::fs::write(&file, apply_yaml(2, true)).unwrap();
    let f = file.to_str().unwrap();
    s.bentoml(&["deployment", "apply", "-f", f]).await.ok();
    let d = s.deployment("dep-applied", "local-west").await;
    assert_eq!(labels(&d), vec![pair("team", "ops")]);
    assert_eq!(scaling(&d, "apiserver"), (Some(1), Some(2)));
    assert_eq!(envs(&d), vec![pair("C", "3")]);
    let cfg = d.main_target().unwrap().config.clone().unwrap();
    assert_eq!(
        cfg.services["apiserver"].instance_type.as_deref(),
        Some("cpu.2")
    );
    // ... and the same name again overrides (PUT as-is): max 4, envs gone.
    std::fs::write(&file, apply_yaml(4, false)).unwrap();
    s.bentoml(&["deployment", "apply", "-f", f]).await.ok();
    let d2 = s.deployment("dep-applied", "local-west").await;
    assert_eq!(d2.meta.uid, d.meta.uid, "apply replaced the deployment");
    assert_eq!(scaling(&d2, "apiserver"), (Some(1), Some(4)));
    assert!(envs(&d2).is_empty(), "apply merged envs: {:?}", envs(&d2));
    assert_eq!(labels(&d2), vec![pair("team", "ops")]);

    // terminate --wait must end, with the server at `terminated`.
    let out = s
        .bentoml(&["deployment", "terminate", "dep-plain", "--wait"])
        .await
        .ok();
    assert!(out.all().contains("terminated"), "{}", out.all());
    let d = s.deployment("dep-plain", "").await;
    assert_eq!(d.status, DeploymentStatus::Terminated);
    s.bentoml(&[
        "deployment",
        "terminate",
        "dep-applied",
        "--cluster",
        "local-west",
        "--wait",
    ])
    .await
    .ok();
    assert_eq!(
        s.deployment("dep-applied", "local-west").await.status,
        DeploymentStatus::Terminated
    );

    // delete: gone on the server; the other deployments stay.
    s.bentoml(&["deployment", "delete", "dep-plain"]).await.ok();
    let (st, body) = s.get_raw("/api/v2/deployments/dep-plain?cluster=").await;
    assert_eq!(st, StatusCode::NOT_FOUND, "{body}");
    s.bentoml(&[
        "deployment",
        "delete",
        "dep-applied",
        "--cluster",
        "local-west",
    ])
    .await
    .ok();
    let all: ListResponse<Deployment> = s.get("/api/v2/deployments?all=true").await;
    let left: Vec<&str> = all.items.iter().map(|d| d.meta.name.as_str()).collect();
    assert_eq!(left, vec!["dep-ml"]);
    let v = s
        .bentoml(&["deployment", "list", "-o", "json"])
        .await
        .ok()
        .json();
    assert_eq!(names(&v), vec!["dep-ml"]);

    s.stop().await;
}

/// `secret create/list/delete`, and a deployment that references a secret (`deploy --secret`
/// looks the secret up first).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_secrets() {
    let s = start(&["iris:v1"]).await;
    s.login().await;

    let out = s
        .bentoml(&[
            "secret",
            "create",
            "dbcreds",
            "USER=app",
            "PASSWORD=hunter2",
        ])
        .await
        .ok();
    assert!(out.all().contains("dbcreds"), "{}", out.all());
    let sec: Secret = s.get("/api/v1/org_secrets/dbcreds").await;
    assert_eq!(sec.content.kind, "env");
    let mut items: Vec<(String, Option<String>)> = sec
        .content
        .items
        .iter()
        .map(|i| (i.key.clone(), i.value.clone()))
        .collect();
    items.sort();
    // Keys come back, values do not (`secret_values_in_reads` is off by default: whether the
    // real API returns them is unknown, so nothing may depend on it).
    assert_eq!(
        items,
        vec![("PASSWORD".to_string(), None), ("USER".to_string(), None)]
    );
    s.bentoml(&["secret", "create", "other", "K=v"]).await.ok();

    let out = s.bentoml(&["secret", "list"]).await.ok();
    assert!(
        out.stdout.contains("dbcreds") && out.stdout.contains("other"),
        "{}",
        out.all()
    );
    let v = s
        .bentoml(&["secret", "list", "-o", "json"])
        .await
        .ok()
        .json();
    assert_eq!(names(&v), vec!["dbcreds", "other"]);
    let listed: ListResponse<Secret> = s
        .get("/api/v1/org_secrets?count=10&q=&search=&start=0&all=true")
        .await;
    assert_eq!(listed.total, 2);

    // A deployment using the secret.
    s.bentoml(&[
        "deploy",
        "iris:v1",
        "-n",
        "with-secret",
        "--cluster",
        "local-west",
        "--secret",
        "dbcreds",
        "--no-wait",
    ])
    .await
    .ok();
    let d = s.deployment("with-secret", "local-west").await;
    let cfg = d.main_target().unwrap().config.clone().unwrap();
    assert_eq!(cfg.secrets, Some(vec!["dbcreds".to_string()]));

    s.bentoml(&["secret", "delete", "other"]).await.ok();
    let (st, body) = s.get_raw("/api/v1/org_secrets/other").await;
    assert_eq!(st, StatusCode::NOT_FOUND, "{body}");
    let v = s
        .bentoml(&["secret", "list", "-o", "json"])
        .await
        .ok()
        .json();
    assert_eq!(names(&v), vec!["dbcreds"]);

    s.stop().await;
}

/// `deployment list-instance-types` shows exactly the server's instance types.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_instance_types() {
    let s = start(&[]).await;
    s.login().await;
    let server: Vec<InstanceType> = s.get("/api/v1/instance_types?cluster=").await;
    assert!(!server.is_empty());
    let mut want: Vec<String> = server.iter().map(|t| t.meta.name.clone()).collect();
    want.sort();

    let out = s.bentoml(&["deployment", "list-instance-types"]).await.ok();
    for n in &want {
        assert!(
            out.stdout.contains(n.as_str()),
            "{n} missing: {}",
            out.all()
        );
    }
    let v = s
        .bentoml(&[
            "deployment",
            "list-instance-types",
            "--cluster",
            "local-west",
            "-o",
            "json",
        ])
        .await
        .ok()
        .json();
    assert_eq!(names(&v), want);
    let cpu1 = v
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "cpu.1")
        .unwrap();
    let server_cpu1 = server.iter().find(|t| t.meta.name == "cpu.1").unwrap();
    assert_eq!(cpu1["price"], server_cpu1.config.price.as_str());

    s.stop().await;
}

/// The Python API: `bentoml.deployment.list(...)` (all clusters, one cluster, labels, search)
/// and `bentoml.deployment.get(...)`, using the context saved by `bentoml cloud login`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_api_list_and_get() {
    let s = start(&["iris:v2"]).await;
    s.login().await;
    for (name, cluster, label) in [
        ("py-a", "local-west", "team=ml"),
        ("py-b", "local-east", "team=web"),
    ] {
        s.bentoml(&[
            "deploy",
            "iris:v2",
            "-n",
            name,
            "--cluster",
            cluster,
            "--scaling-max",
            "2",
            "--label",
            label,
            "--no-wait",
        ])
        .await
        .ok();
    }

    let script = r#"
import json, bentoml
def names(ds):
    return sorted(d.name for d in ds)
out = {
    "all": names(bentoml.deployment.list()),
    "west": names(bentoml.deployment.list(cluster="local-west")),
    "ml": names(bentoml.deployment.list(labels=[{"key": "team", "value": "ml"}])),
    "search": names(bentoml.deployment.list(search="py-b")),
}
d = bentoml.deployment.get("py-a", cluster="local-west")
cfg = d.get_config()
out["get"] = {
    "name": d.name,
    "cluster": d.cluster,
    "status": d.get_status().status,
    "bento": str(d.get_bento()),
    "max": cfg.services["apiserver"].scaling.max_replicas,
}
print(json.dumps(out))
"#;
    let out = s
        .python(
            &["-c", script],
            "python3 -c <bentoml.deployment.list/get>".into(),
        )
        .await
        .ok();
    let v = out.json();
    assert_eq!(v["all"], serde_json::json!(["py-a", "py-b"]));
    assert_eq!(v["west"], serde_json::json!(["py-a"]));
    assert_eq!(v["ml"], serde_json::json!(["py-a"]));
    assert_eq!(v["search"], serde_json::json!(["py-b"]));
    assert_eq!(v["get"]["name"], "py-a");
    assert_eq!(v["get"]["cluster"], "local-west");
    assert_eq!(v["get"]["bento"], "iris:v2");
    assert_eq!(v["get"]["max"], 2);

    let d = s.deployment("py-a", "local-west").await;
    let st = v["get"]["status"].as_str().unwrap();
    assert!(
        DeploymentStatus::parse(st).is_some(),
        "client read an unknown status {st}"
    );
    assert_eq!(d.bento_tag().as_deref(), Some("iris:v2"));

    s.stop().await;
}

/// A wrong token fails login loudly; the client cannot deploy an unknown bento (the server's
/// 404, as on BentoCloud: no deployment is created), and can once `bentocloud-local bentos
/// add` registered it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_bad_token_and_strict_bentos() {
    let s = start(&[]).await;

    let out = s
        .bentoml(&[
            "cloud",
            "login",
            "--endpoint",
            &s.endpoint,
            "--api-token",
            "bcl_wrong",
        ])
        .await
        .failed();
    assert!(out.all().contains("401"), "{}", out.all());

    s.login().await;
    let out = s
        .bentoml(&["deploy", "ghost:v1", "-n", "ghost", "--no-wait"])
        .await
        .failed();
    assert!(out.all().contains("not found"), "{}", out.all());
    let all: ListResponse<Deployment> = s.get("/api/v2/deployments?all=true").await;
    assert_eq!(all.total, 0, "a deployment was created for a missing bento");

    let reg = tokio::process::Command::new(crate::harness::server_bin())
        .args(["bentos", "add", "ghost:v1", "--endpoint", &s.endpoint])
        .args(["--api-token", &s.token])
        .output()
        .await
        .expect("bentocloud-local bentos add");
    assert!(
        reg.status.success(),
        "bentos add: {}",
        String::from_utf8_lossy(&reg.stderr)
    );
    s.bentoml(&["deploy", "ghost:v1", "-n", "ghost", "--no-wait"])
        .await
        .ok();
    let d = s.deployment("ghost", "").await;
    assert_eq!(d.bento_tag().as_deref(), Some("ghost:v1"));

    s.stop().await;
}

/// A canary set with the official client (`deployment update --config-dict`) is stored in the
/// real shape (a target named `main`, one target per version, `manifest.routing`; never inside
/// `targets[].config`, API doc §3.3, §10), `deployment get -o json` shows it, a flag update
/// carries it over (the client rebuilds it from the targets), and `apply` without it (the
/// whole configuration, §5.4) removes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_canary_round_trips() {
    let s = start(&["iris:v1", "iris:v2"]).await;
    s.login().await;
    s.bentoml(&[
        "deployment",
        "create",
        "iris:v1",
        "-n",
        "dep-canary",
        "--no-wait",
    ])
    .await
    .ok();
    let canary = r#"{"name": "dep-canary", "canary": {"route_type": "header", "route_by": "X-Canary", "versions": {"v2": {"bento": "iris:v2", "weight": 20, "envs": [{"name": "C", "value": "1"}], "services": {"apiserver": {"instance_type": "cpu.2", "scaling": {"min_replicas": 1, "max_replicas": 2}}}}}}}"#;
    s.bentoml(&[
        "deployment",
        "update",
        "dep-canary",
        "--config-dict",
        canary,
    ])
    .await
    .ok();

    // On the wire: two targets and the routing; no canary inside any config.
    let (_, raw) = s.get_raw("/api/v2/deployments/dep-canary?cluster=").await;
    let raw: Value = serde_json::from_str(&raw).expect("json");
    let targets = raw["latest_revision"]["targets"]
        .as_array()
        .expect("targets");
    let names: Vec<&str> = targets
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["main", "v2"]);
    assert!(
        targets.iter().all(|t| t["config"].get("canary").is_none()),
        "canary inside targets[].config: {raw}"
    );
    assert_eq!(targets[0]["bento"]["version"], "v1");
    assert_eq!(targets[1]["bento"]["version"], "v2");
    assert_eq!(
        raw["manifest"]["routing"],
        serde_json::json!({"route_type": "header", "route_by": "X-Canary", "weights": {"v2": 20}})
    );

    // The official client shows it.
    async fn get(s: &Server) -> Value {
        s.bentoml(&["deployment", "get", "dep-canary", "-o", "json"])
            .await
            .ok()
            .json()
    }
    let v = get(&s).await;
    assert_eq!(v["bento"], "iris:v1");
    let c = &v["config"]["canary"];
    assert_eq!(c["route_type"], "header", "{v}");
    assert_eq!(c["route_by"], "X-Canary");
    assert_eq!(c["versions"]["v2"]["bento"], "iris:v2");
    assert_eq!(c["versions"]["v2"]["weight"], 20);
    assert_eq!(c["versions"]["v2"]["envs"][0]["name"], "C");
    assert_eq!(
        c["versions"]["v2"]["services"]["apiserver"]["instance_type"],
        "cpu.2"
    );

    // A flag update keeps it (read-modify-write through the targets).
    s.bentoml(&["deployment", "update", "dep-canary", "--scaling-max", "3"])
        .await
        .ok();
    let v = get(&s).await;
    assert_eq!(
        v["config"]["services"]["apiserver"]["scaling"]["max_replicas"],
        3
    );
    assert_eq!(v["config"]["canary"]["versions"]["v2"]["weight"], 20, "{v}");

    // `apply` sends the whole configuration: without a canary, it is gone.
    let file = s.home.path().join("apply.yaml");
    std::fs::write(
        &file,
        "name: dep-canary\nbento: iris:v1\ncluster: local-east\nservices:\n  apiserver:\n    scaling:\n      min_replicas: 1\n      max_replicas: 1\n",
    )
    .unwrap();
    s.bentoml(&["deployment", "apply", "-f", file.to_str().unwrap()])
        .await
        .ok();
    let v = get(&s).await;
    assert!(v["config"].get("canary").is_none(), "{v}");
    let d = s.deployment("dep-canary", "").await;
    assert_eq!(d.canary(), None);
    assert_eq!(
        d.latest_revision.map(|r| r.targets.len()),
        Some(1),
        "the canary target is gone"
    );

    s.stop().await;
}
