//! `bentocloud-local`: a local BentoCloud control plane. It serves the BentoCloud REST API
//! (`/api/v1`, `/api/v2`, the pods websockets) from durable SQLite state, and a reconciler
//! moves deployments through the real statuses as time passes.
//!
//! Entry points: [`serve`] takes a bound listener and returns at once with the [`Started`]
//! address, endpoint and token, and the future that serves until shutdown (await it, or spawn
//! it and await its handle); [`prepare`] then [`run`] are its two halves, for a caller that
//! changes the state in between (the CLI sets injected faults); [`app`] builds the router.
//! On start the endpoint URL is written to `DIR/endpoint` and the token to `DIR/token`.
//! Plain HTTP by default; with [`Config::tls`] the API, the websockets and the deployment
//! endpoints are served over TLS (rustls) and every URL it hands out is `https://`.
//!
//! Module map, one job each:
//! - [`clock`]: what "now" is, the wall clock or a manual one a test steps.
//! - [`config`]: the platform (clusters, instance types, timings) and its validation.
//! - [`store`]: the SQLite schema and typed rows; fails with its own [`store::StoreError`].
//! - [`vocab`]: phases, replica states and statuses, typed and stored as text.
//! - [`deployments`]: the deployment commands (create, update, void_update, terminate,
//!   delete), validated against the platform.
//! - [`secrets`]: the organisation secret commands, validated.
//! - [`autoscale`]: a service's autoscaling policy, evaluated like the HPA it becomes.
//! - [`reconcile`]: moves deployments through rollouts, replicas and autoscaling over time.
//! - [`strategy`]: each rollout strategy's next step, a pure function.
//! - [`runtime`]: what the reconciler needs from whatever runs replicas.
//! - [`fleet`]: real replica servers, their probes, and the endpoint reverse proxy.
//! - [`split`]: which target (`main` or a canary version) a request goes to.
//! - [`render`]: rows to `crate::api` documents.
//! - [`query`]: the list endpoints' filters and paging.
//! - [`http`]: the router, auth, body limits, and one handler module per API area.
//! - [`error`]: the API's error type and its `{"error": ...}` responses.
//! - [`faults`]: injected faults on the API routes (off unless configured).
//! - [`tls`]: serving HTTPS with rustls.
//! - [`ui`]: the web page at `/`.
//! - [`timeline`]: each deployment's revisions, replica counts over its last rollout, and every
//!   change of the canary routing its endpoint applied.
//!
//! It depends on `bentocloud-api` (the wire types and rules it shares with the provider) and on
//! nothing of the provider: the crate graph, not a convention, keeps the two apart.

// No panicking shortcuts outside tests: errors become HTTP errors instead.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

// `crate::api::...` and `crate::rules::...` read as they do in the provider.
use bentocloud_api::{api, rules};

pub mod autoscale;
pub mod clock;
pub mod config;
pub mod deployments;
pub mod error;
pub mod faults;
pub mod fleet;
pub mod http;
pub mod query;
pub mod reconcile;
pub mod render;
pub mod runtime;
pub mod secrets;
pub mod split;
pub mod store;
pub mod strategy;
pub mod timeline;
pub mod tls;
pub mod ui;
pub mod vocab;

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

pub use clock::Clock;
pub use config::PlatformConfig;
pub use http::app;
pub use render::{CanaryProgress, LocalDeployment, RolloutProgress};

/// How to run the control plane.
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// Holds `state.db`, `endpoint` and `token`.
    pub data_dir: PathBuf,
    /// The main token. Without one, a random token is generated on first start and kept.
    pub api_token: Option<String>,
    /// Register an unknown `repo:version` on first sight (create, update, bento lookup)
    /// instead of answering 404 like the real API. Off by default: an opt-in for demos that
    /// deploy bentos nobody pushed (`serve --auto-register-bentos`).
    pub auto_register_bentos: bool,
    pub platform: PlatformConfig,
    /// Serve HTTPS with this certificate and key instead of plain HTTP.
    pub tls: Option<TlsFiles>,
    /// The wall clock, or a manual one a test steps (see [`clock`]).
    pub clock: Clock,
}

/// PEM files of the server's TLS identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The server certificate, optionally followed by intermediate CA certificates.
    pub cert: PathBuf,
    /// Its private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// Request body of the admin endpoint `POST /api/local/v1/bentos` (registers a bento and how
/// it behaves when deployed; same token auth, scoped to the caller's organisation).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RegisterBento {
    /// `repo:version` (a version is required).
    pub tag: String,
    pub startup_seconds: f64,
    /// Never passes its readiness probe.
    pub unready: bool,
    /// A replica crashes this long after it became ready (after `startup_seconds`: measured
    /// from the moment its readiness probe passes, not from its start).
    pub crash_after_seconds: Option<f64>,
    /// Request paths (exact, e.g. `/predict`) that the replicas answer with HTTP 500, as a
    /// BentoML service whose API raises does, while they pass their probes and answer every
    /// other path: a bento that is ready but fails its requests.
    pub fail_paths: Vec<String>,
    pub image_build_seconds: f64,
    pub image_build_fails: bool,
    /// Service names; the first is the entry service. Empty means one service `apiserver`.
    pub services: Vec<String>,
}

impl Default for RegisterBento {
    fn default() -> Self {
        Self {
            tag: String::new(),
            startup_seconds: 0.5,
            unready: false,
            crash_after_seconds: None,
            fail_paths: Vec::new(),
            image_build_seconds: 0.0,
            image_build_fails: false,
            services: Vec::new(),
        }
    }
}

/// What a started server tells its caller: how to reach it, known before it serves.
#[derive(Debug, Clone, PartialEq)]
pub struct Started {
    pub addr: SocketAddr,
    /// `http://ADDR`, or `https://ADDR` with TLS (no trailing slash).
    pub endpoint: String,
    pub token: String,
    pub organization: String,
}

/// Shared state of the HTTP handlers and the reconciler.
#[derive(Clone)]
pub struct AppState {
    pub(crate) store: Arc<store::Store>,
    pub(crate) auto_register_bentos: bool,
    pub(crate) base_url: String,
    pub(crate) fleet: Arc<fleet::Fleet>,
    pub(crate) timing: config::Timing,
    /// Injected faults on the API routes (off unless configured, see [`faults`]).
    pub(crate) faults: Arc<faults::Faults>,
    /// Set when serving HTTPS (see [`Config::tls`]); [`run`] terminates TLS with it.
    pub(crate) tls: Option<tokio_rustls::TlsAcceptor>,
    /// What every handler reads as now (see [`clock`]).
    pub(crate) clock: Clock,
}

fn write_atomic(path: &Path, text: &str) -> Result<(), String> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// Opens the data dir, syncs clusters from the config, marks what a previous run left as not
/// serving ([`reconcile::after_restart`]: its replicas died with it), settles the main token,
/// and writes `DIR/endpoint` and `DIR/token`. `addr` is the address the listener is bound to.
pub fn prepare(cfg: &Config, addr: SocketAddr) -> Result<(AppState, Started), String> {
    cfg.platform.validate()?;
    // Before touching the data dir: a bad certificate must not leave a stale endpoint file.
    let tls = cfg.tls.as_ref().map(tls::acceptor).transpose()?;
    std::fs::create_dir_all(&cfg.data_dir)
        .map_err(|e| format!("cannot create {}: {e}", cfg.data_dir.display()))?;
    let st = store::Store::open(&cfg.data_dir.join("state.db"))?;
    let org = cfg.platform.organization.clone();
    let token = st
        .tx(|c| -> error::Result<String> {
            let now = cfg.clock.now_ms();
            store::sync_platform(c, &cfg.platform, now)?;
            // Replicas died with any previous process: say so before answering anything.
            let restarted = reconcile::after_restart(c, now)?;
            if restarted > 0 {
                tracing::info!(
                    deployments = restarted,
                    "replicas of the previous run are gone and start again (running reported as deploying until they are ready)"
                );
            }
            let token = match &cfg.api_token {
                Some(t) => t.clone(),
                None => match store::meta_get(c, "main_token")? {
                    Some(t) => t,
                    None => store::new_token(),
                },
            };
            store::meta_set(c, "main_token", &token)?;
            store::add_token(c, &org, &token, "local-admin", now)?;
            Ok(token)
        })
        .map_err(|e| e.message())?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    let endpoint = format!("{scheme}://{addr}");
    write_atomic(&cfg.data_dir.join("token"), &token)?;
    write_atomic(&cfg.data_dir.join("endpoint"), &endpoint)?;
    let state = AppState {
        store: Arc::new(st),
        auto_register_bentos: cfg.auto_register_bentos,
        base_url: endpoint.clone(),
        fleet: Arc::new(fleet::Fleet::new(
            cfg.platform.timing.clone(),
            cfg.clock.clone(),
        )),
        clock: cfg.clock.clone(),
        timing: cfg.platform.timing.clone(),
        faults: Arc::new(faults::Faults::default()),
        tls,
    };
    Ok((
        state,
        Started {
            addr,
            endpoint,
            token,
            organization: org,
        },
    ))
}

/// Serves `state` on `listener` with the reconciler running, until `shutdown` resolves.
pub async fn run(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), String> {
    let (tx, rx) = tokio::sync::watch::channel(false);
    let fleet = state.fleet.clone();
    let reconciler = tokio::spawn(reconcile::run(
        state.store.clone(),
        fleet.clone(),
        state.timing.clone(),
        state.clock.clone(),
        rx.clone(),
    ));
    let acceptor = state.tls.clone();
    let router = app(state);
    let shutdown = async move {
        shutdown.await;
        let _ = tx.send(true);
    };
    let res = match acceptor {
        None => axum::serve(listener, router)
            .with_graceful_shutdown(shutdown)
            .await
            .map_err(|e| format!("server error: {e}")),
        Some(acceptor) => {
            tls::serve(listener, acceptor, router, shutdown).await;
            Ok(())
        }
    };
    let _ = reconciler.await;
    // Replicas are tasks of this process: they stop with it (a restart starts them again).
    fleet.shutdown();
    res
}

/// Prepares the data dir for `listener` (see [`prepare`]) and returns as soon as that is done,
/// before serving anything: what the caller needs to reach the server ([`Started`]: its bound
/// address, so port 0 works, its endpoint and token), and the future that serves, with the
/// reconciler, until `shutdown` resolves (see [`run`]). Await that future, or spawn it and
/// await its `JoinHandle` to learn when and how serving ended.
pub fn serve(
    listener: tokio::net::TcpListener,
    cfg: &Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<
    (
        Started,
        impl Future<Output = Result<(), String>> + Send + 'static,
    ),
    String,
> {
    let addr = listener
        .local_addr()
        .map_err(|e| format!("listener has no address: {e}"))?;
    let (state, started) = prepare(cfg, addr)?;
    tracing::info!(endpoint = %started.endpoint, "bentocloud-local serving");
    Ok((started, run(listener, state, shutdown)))
}

/// Adds a token for organisation `org` (created when missing) to the data dir's database;
/// works while a server runs on it. Returns the new token.
pub fn add_org_token(data_dir: &Path, org: &str) -> Result<String, String> {
    if org.is_empty() || org.len() > 63 {
        return Err("the organisation name must be 1 to 63 characters".into());
    }
    std::fs::create_dir_all(data_dir)
        .map_err(|e| format!("cannot create {}: {e}", data_dir.display()))?;
    let st = store::Store::open(&data_dir.join("state.db"))?;
    let token = store::new_token();
    let now = Clock::Real.now_ms();
    st.tx(|c| store::add_token(c, org, &token, &format!("{org}-admin"), now))
        .map_err(|e| error::ApiError::from(e).message())
}
