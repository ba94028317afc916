//! Real replicas and the deployment endpoints: the [`Runtime`] the server runs with.
//!
//! Each replica is an HTTP/1.1 server on its own loopback port (`127.0.0.1:0`, the port is
//! stored in the replica row), running as tasks of this process: it answers BentoML's
//! `/readyz` (200 once the bento's startup time has passed, never for an `unready` bento),
//! `/livez`, `/healthz`, `/metrics` (Prometheus text: requests served, in flight) and any
//! other route with JSON naming the deployment, bento tag, revision, replica, target (`main` or
//! the canary version) and service.
//! `?sleep_ms=N` (at most 10 000) makes an API route answer after N ms, to create load;
//! `?env=NAME` and `?file=PATH` add what the replica's environment held when it started
//! (config `envs`, `env` secrets as variables, `mountfile` secrets as files), so a test can
//! see that a rotated secret reaches only replicas started after a redeploy.
//! A bento with `crash_after` closes its listener and every connection that long after it
//! became ready: after `startup`, when `/readyz` starts answering 200, which is when the
//! replica itself is ready (the kubelet's probe and the reconciler see it up to
//! `Timing::probe_ms` and one tick later), not from its start.
//! A bento with `fail_paths` answers a request whose path is one of them with 500 and
//! BentoML's body for an API that raised, `{"error": "An unexpected error has occurred, please
//! check the server log."}` (bentoml/BentoML `src/_bentoml_impl/server/app.py`,
//! `api_endpoint_wrapper`, `except Exception`), after `?sleep_ms` like any request; its probes
//! and every other path answer as usual, so it is ready and routed to while it fails them (a
//! service raising in its API stays Ready on the platform too: nothing in BentoML ties the
//! readiness or liveness probe to an API's errors).
//!
//! A prober task per replica (the kubelet) really probes `/readyz` every `Timing::probe_ms`
//! until it passes, then `/livez`; two failed liveness probes mean the replica crashed. The
//! reconciler reads those results through [`Runtime`]; a replica row whose process does not
//! exist (the server restarted, or was killed) is started again by the reconciler.
//!
//! Endpoint design: the deployment URL keeps its shape `{endpoint}/endpoints/{org}/{cluster}/
//! {name}/`, served by the main server as a reverse proxy. After every reconcile the route
//! table is replaced with the deployment's READY replicas (any revision), in one pool per
//! target: `main`, and each canary version (by name) with the canary's split
//! ([`super::split`]). Each request picks its target once ([`super::split::pick`]: by weight,
//! header or query parameter; a version with no ready replica falls back to `main`); the proxy
//! balances round robin over that target's pool with a keep-alive connection pool (hyper-util
//! legacy client), never touching the database. A request that fails to reach a replica (it
//! stopped or crashed between the routing decision and the connection) is retried on another
//! ready replica of its target, then of `main` when none is left; the body is buffered (at most
//! 16 MiB) so it can be replayed. Answers carry `x-bentocloud-replica` and
//! `x-bentocloud-target` (`main` or the version). A deployment that may scale to
//! zero (`min_replicas = 0`) holds requests while it has no ready `main` replica (at most
//! `Timing::wake_timeout_ms`) and the held requests count as load, which wakes it. Other
//! deployments without a ready replica answer 503 (e.g. during a `Recreate`).
//!
//! Load: the proxy counts in-flight requests per deployment (every target: the endpoint's
//! load); each reconcile samples the peak since the previous sample ([`Runtime::load`]), which
//! drives the autoscaler of `main`. Per service it also counts the requests sent to the
//! service's replicas and those in flight there, and per deployment the requests waiting in its
//! queue ([`Runtime::service_load`]: the `qps` and `queue` of a `scaling.policy`, see
//! `crate::autoscale`).
//!
//! Traffic settings (the entry service's `config_overrides.traffic`, published with the route):
//! `timeout` answers 504 when a request is not answered that long after it arrived;
//! `max_concurrency` caps the requests in flight per ready replica, beyond which a request waits
//! for a free slot with `external_queue` (bounded by `timeout`, else `Timing::wake_timeout_ms`),
//! else is refused with 429, as BentoML's own middlewares answer. `cold_start_timeout` replaces
//! `Timing::wake_timeout_ms` as the wait for a scaled-to-zero deployment.

use std::collections::{HashMap, HashSet, VecDeque};
use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{header, HeaderValue, Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use super::clock::Clock;
use super::config::Timing;
use super::error::json_error;
use super::runtime::{Environment, Load, RouteUpdate, Runtime};
use super::split::{self, Split};
use super::store::{BentoRow, DeploymentRow, ReplicaRow};
use super::vocab::ReplicaState;

/// Largest request body the endpoint proxies.
pub const MAX_PROXY_BODY: usize = 16 * 1024 * 1024;

type HttpClient = Client<HttpConnector, Full<Bytes>>;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// What a replica serves (fixed at start).
#[derive(Debug, Clone)]
struct Spec {
    deployment: String,
    cluster: String,
    tag: String,
    revision: String,
    replica: String,
    /// `main` or the canary version.
    target: String,
    service: String,
    startup: Duration,
    unready: bool,
    crash_after: Option<Duration>,
    /// Paths answered with 500 (see the module doc).
    fail_paths: Vec<String>,
    /// Environment variables and files, as resolved when the replica started.
    env: Environment,
}

/// One running replica.
pub struct Proc {
    spec: Spec,
    port: u16,
    /// When it started, on the control plane's clock.
    started_ms: i64,
    clock: Clock,
    /// Requests the replica is handling.
    in_flight: AtomicUsize,
    served: AtomicU64,
    /// Requests the proxy has sent to it and not yet got an answer for.
    proxied: AtomicUsize,
    probe_ready: AtomicBool,
    live_failures: AtomicU32,
    crashed: AtomicBool,
    stop: CancellationToken,
}

impl Proc {
    /// A replica of `spec` listening on `port`, started now on `clock`, nothing served yet.
    fn new(spec: Spec, port: u16, clock: Clock, stop: CancellationToken) -> Proc {
        Proc {
            spec,
            port,
            started_ms: clock.now_ms(),
            clock,
            in_flight: AtomicUsize::new(0),
            served: AtomicU64::new(0),
            proxied: AtomicUsize::new(0),
            probe_ready: AtomicBool::new(false),
            live_failures: AtomicU32::new(0),
            crashed: AtomicBool::new(false),
            stop,
        }
    }

    /// Takes one of the replica's `limit` request slots, if one is free.
    fn try_reserve(&self, limit: usize) -> bool {
        self.proxied
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < limit).then_some(n + 1)
            })
            .is_ok()
    }

    /// When `/readyz` starts answering 200 (never for an `unready` bento).
    fn ready_at_ms(&self) -> Option<i64> {
        (!self.spec.unready).then(|| self.started_ms + as_ms(self.spec.startup))
    }

    fn is_ready_now(&self) -> bool {
        self.ready_at_ms()
            .is_some_and(|at| self.clock.now_ms() >= at)
    }

    /// When a `crash_after` bento crashes: that long after it became ready.
    fn crash_at_ms(&self) -> Option<i64> {
        Some(self.ready_at_ms()? + as_ms(self.spec.crash_after?))
    }
}

fn as_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Proxy counters of one deployment.
#[derive(Default)]
struct DepStats {
    in_flight: AtomicUsize,
    peak: AtomicUsize,
    last_request_ms: AtomicI64,
    /// Requests waiting in the endpoint's queue for a free replica (`external_queue`).
    queued: AtomicUsize,
    /// Per service: what its replicas were sent.
    services: Mutex<HashMap<String, Arc<SvcStats>>>,
    /// Woken whenever a request leaves a replica: queued requests look for a free one again.
    freed: tokio::sync::Notify,
}

/// Proxy counters of one service of a deployment (the autoscaler's `qps` and `queue`).
struct SvcStats {
    in_flight: AtomicUsize,
    /// Requests sent to the service's replicas, ever.
    dispatched: AtomicU64,
    /// `(at, dispatched)` at the previous sample: `qps` is measured since then.
    last: Mutex<(i64, u64)>,
}

impl DepStats {
    fn service(&self, service: &str, now: i64) -> Arc<SvcStats> {
        lock(&self.services)
            .entry(service.to_string())
            .or_insert_with(|| {
                Arc::new(SvcStats {
                    in_flight: AtomicUsize::new(0),
                    dispatched: AtomicU64::new(0),
                    last: Mutex::new((now, 0)),
                })
            })
            .clone()
    }
}

/// One request's slot at a replica: released (and queued requests woken) when dropped, even
/// when the client goes away mid-request.
struct Slot {
    proc: Arc<Proc>,
    svc: Arc<SvcStats>,
    stats: Arc<DepStats>,
}

impl Slot {
    fn new(proc: Arc<Proc>, stats: &Arc<DepStats>, now: i64) -> Slot {
        let svc = stats.service(&proc.spec.service, now);
        svc.in_flight.fetch_add(1, Ordering::AcqRel);
        svc.dispatched.fetch_add(1, Ordering::Relaxed);
        Slot {
            proc,
            svc,
            stats: stats.clone(),
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.proc.proxied.fetch_sub(1, Ordering::AcqRel);
        self.svc.in_flight.fetch_sub(1, Ordering::AcqRel);
        self.stats.freed.notify_waiters();
    }
}

/// Counts one request waiting in the endpoint's queue while alive.
struct Queued(Arc<DepStats>);

impl Queued {
    fn enter(s: &Arc<DepStats>) -> Queued {
        s.queued.fetch_add(1, Ordering::AcqRel);
        Queued(s.clone())
    }
}

impl Drop for Queued {
    fn drop(&mut self) {
        self.0.queued.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Where a deployment's endpoint sends requests.
struct Route {
    deployment_id: i64,
    /// Ready replicas of the `main` target.
    ready: Vec<Arc<Proc>>,
    /// Ready replicas of each canary version, by name.
    canary: HashMap<String, Vec<Arc<Proc>>>,
    /// The canary's split; `None`: everything to `main`.
    split: Option<Split>,
    /// `min_replicas = 0`: hold requests while nothing is ready.
    wake: bool,
    /// The entry service's `config_overrides.traffic`.
    traffic: bentocloud_api::settings::Traffic,
    /// The entry service's `cold_start_timeout`, in ms.
    cold_start_ms: Option<i64>,
    stats: Arc<DepStats>,
}

impl Route {
    /// Ready replicas of `target` (`None`: `main`).
    fn pool(&self, target: Option<&str>) -> &[Arc<Proc>] {
        match target {
            None => &self.ready,
            Some(v) => self.canary.get(v).map(Vec::as_slice).unwrap_or(&[]),
        }
    }
}

type RouteKey = (String, String, String);

/// The real runtime: replica servers, probers, routes and load counters.
pub struct Fleet {
    timing: Timing,
    /// The control plane's clock (replica start-up, crashes, idleness).
    clock: Clock,
    client: HttpClient,
    procs: Mutex<HashMap<String, Arc<Proc>>>,
    routes: RwLock<HashMap<RouteKey, Arc<Route>>>,
    stats: Mutex<HashMap<i64, Arc<DepStats>>>,
    windows: Mutex<HashMap<i64, VecDeque<(i64, usize)>>>,
    rr: AtomicUsize,
    shutdown: CancellationToken,
    /// Bumped on every route change: a request held for a waking deployment awaits it
    /// instead of polling.
    route_changes: tokio::sync::watch::Sender<u64>,
}

impl Fleet {
    pub fn new(timing: Timing, clock: Clock) -> Self {
        let mut conn = HttpConnector::new();
        conn.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(64)
            .build(conn);
        Self {
            timing,
            clock,
            client,
            procs: Mutex::new(HashMap::new()),
            routes: RwLock::new(HashMap::new()),
            stats: Mutex::new(HashMap::new()),
            windows: Mutex::new(HashMap::new()),
            rr: AtomicUsize::new(0),
            shutdown: CancellationToken::new(),
            route_changes: tokio::sync::watch::Sender::new(0),
        }
    }

    /// Stops every replica (the server is going away).
    pub fn shutdown(&self) {
        self.shutdown.cancel();
        lock(&self.procs).clear();
        if let Ok(mut r) = self.routes.write() {
            r.clear();
        }
    }

    fn proc(&self, uid: &str) -> Option<Arc<Proc>> {
        lock(&self.procs).get(uid).cloned()
    }

    fn dep_stats(&self, id: i64) -> Arc<DepStats> {
        lock(&self.stats)
            .entry(id)
            .or_insert_with(|| {
                let s = DepStats::default();
                s.last_request_ms
                    .store(self.clock.now_ms(), Ordering::Relaxed);
                Arc::new(s)
            })
            .clone()
    }

    fn route(&self, key: &RouteKey) -> Option<Arc<Route>> {
        self.routes.read().ok().and_then(|r| r.get(key).cloned())
    }

    /// Proxies `req` to a ready replica of deployment `org/cluster/name`. `None` when the
    /// deployment has no route (unknown, terminated, or not reconciled yet).
    pub async fn forward(
        &self,
        org: &str,
        cluster: &str,
        name: &str,
        rest: &str,
        req: Request<Body>,
    ) -> Option<Response<Body>> {
        let key = (org.to_string(), cluster.to_string(), name.to_string());
        let route = self.route(&key)?;
        let stats = route.stats.clone();
        let _busy = InFlight::enter(&stats, &self.clock);
        let (parts, body) = req.into_parts();
        let bytes = match read_proxied_body(body).await {
            Ok(b) => b,
            Err(resp) => return Some(resp),
        };
        let path_q = match parts.uri.query() {
            Some(q) => format!("/{rest}?{q}"),
            None => format!("/{rest}"),
        };
        // The target is chosen once; retries stay on it while it has untried ready replicas.
        let roll = rand::random::<u32>() % 100;
        let target: Option<String> = split::pick(
            route.split.as_ref(),
            &parts.headers,
            parts.uri.query(),
            roll,
            |v| !route.pool(Some(v)).is_empty(),
        )
        .map(str::to_string);
        let start = Instant::now();
        // `cold_start_timeout` bounds the wait for a scaled-to-zero deployment to wake.
        let wake_ms = route
            .cold_start_ms
            .unwrap_or(self.timing.wake_timeout_ms)
            .max(0);
        let wake_limit = Duration::from_millis(wake_ms as u64);
        // `traffic.timeout`: from the request's arrival at the endpoint (time in the queue
        // included) to its answer.
        let timeout = route.traffic.timeout.filter(|t| t.is_finite() && *t > 0.0);
        let deadline = timeout.map(|t| start + Duration::from_secs_f64(t.min(86_400.0)));
        let mut tried: Vec<u16> = Vec::new();
        let mut last_err = String::new();
        let mut route = route;
        let mut changes = self.route_changes.subscribe();
        loop {
            // Armed before looking for a free replica: a slot freed after the look wakes the
            // wait below.
            let freed = stats.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            // The current route; any route published after this read wakes the wait below.
            changes.mark_unchanged();
            route = self.route(&key).unwrap_or(route);
            let mut cands = untried(route.pool(target.as_deref()), &tried);
            if cands.is_empty() && target.is_some() {
                // The version has no ready replica left: fall back to `main`.
                cands = untried(&route.ready, &tried);
            }
            if cands.is_empty() {
                let holding = route.wake && route.ready.is_empty() && start.elapsed() < wake_limit;
                if !holding {
                    // Past `cold_start_timeout` (or with nothing to wake): 503, as without one.
                    // What BentoCloud answers then is not documented (API doc §3.2 only names
                    // the setting); 503 says "not available now, retry", which a client of a
                    // waking deployment must handle anyway.
                    let msg =
                        self.unavailable(name, cluster, route.wake, wake_ms, &tried, &last_err);
                    return Some(json_error(StatusCode::SERVICE_UNAVAILABLE, msg));
                }
                // Scaled to zero: hold the request until a route with a ready replica is
                // published (the wake), or the wake timeout.
                let left = wake_limit.saturating_sub(start.elapsed());
                let _ = tokio::time::timeout(left, changes.changed()).await;
                continue;
            }
            let i = self.rr.fetch_add(1, Ordering::Relaxed);
            let limit = route
                .traffic
                .max_concurrency
                .filter(|n| *n > 0)
                .map(|n| usize::try_from(n).unwrap_or(usize::MAX));
            let picked = match limit {
                None => {
                    let p = cands[i % cands.len()].clone();
                    p.proxied.fetch_add(1, Ordering::AcqRel);
                    Some(p)
                }
                Some(limit) => (0..cands.len())
                    .map(|k| cands[(i + k) % cands.len()])
                    .find(|p| p.try_reserve(limit))
                    .cloned(),
            };
            let Some(p) = picked else {
                // Every ready replica serves `max_concurrency` requests already.
                if route.traffic.external_queue != Some(true) {
                    // Refused at once, as BentoML's server does past `max_concurrency`:
                    // `MaxConcurrencyMiddleware` answers 429 `{"error": "Too many requests"}`
                    // (bentoml/BentoML src/bentoml/_internal/server/http/traffic.py, read at
                    // 1090cfbe; not 503).
                    return Some(json_error(
                        StatusCode::TOO_MANY_REQUESTS,
                        "Too many requests".into(),
                    ));
                }
                // `external_queue`: wait for a free replica (a slot freed, or a new route),
                // counted as `queue` load; bounded by `timeout`, else by the wake timeout.
                let _queued = Queued::enter(&stats);
                let until = deadline.unwrap_or(
                    start + Duration::from_millis(self.timing.wake_timeout_ms.max(0) as u64),
                );
                let left = until.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Some(match timeout {
                        Some(t) => timed_out(t),
                        None => json_error(
                            StatusCode::SERVICE_UNAVAILABLE,
                            format!(
                                "deployment {name:?}: no replica was free within {} ms (every ready replica serves max_concurrency requests)",
                                self.timing.wake_timeout_ms
                            ),
                        ),
                    });
                }
                tokio::select! {
                    _ = &mut freed => {}
                    _ = changes.changed() => {}
                    _ = tokio::time::sleep(left) => {}
                }
                continue;
            };
            let slot = Slot::new(p.clone(), &stats, self.clock.now_ms());
            let out = match upstream_request(&parts, &path_q, p.port, &bytes) {
                Ok(r) => r,
                Err(msg) => return Some(json_error(StatusCode::BAD_REQUEST, msg)),
            };
            let call = self.client.request(out);
            let res = match deadline {
                None => call.await,
                Some(at) => match tokio::time::timeout_at(at.into(), call).await {
                    Ok(r) => r,
                    // BentoML's `TimeoutMiddleware`: 504 `{"error": "Not able to process the
                    // request in {timeout} seconds"}` (same file as above).
                    Err(_) => return Some(timed_out(timeout.unwrap_or_default())),
                },
            };
            drop(slot);
            match res {
                Ok(resp) => return Some(tagged(resp.map(Body::new), &p)),
                Err(e) => {
                    last_err = format!("replica {} (port {}): {e}", p.spec.replica, p.port);
                    tracing::debug!(error = %last_err, "proxy retries on another replica");
                    tried.push(p.port);
                }
            }
        }
    }
}

/// The answer to a request that ran past `traffic.timeout` (BentoML's `TimeoutMiddleware`).
fn timed_out(timeout_s: f64) -> Response<Body> {
    json_error(
        StatusCode::GATEWAY_TIMEOUT,
        format!("Not able to process the request in {timeout_s} seconds"),
    )
}

impl Fleet {
    /// Why a request got no answer: nothing woke up, nothing was ready, or every replica
    /// tried failed (the last failure).
    fn unavailable(
        &self,
        name: &str,
        cluster: &str,
        wake: bool,
        wake_ms: i64,
        tried: &[u16],
        last_err: &str,
    ) -> String {
        if !tried.is_empty() {
            return format!("no replica of deployment {name:?} could answer: {last_err}");
        }
        if wake {
            format!(
                "deployment {name:?} did not wake up within {wake_ms} ms (scaled to zero; no replica became ready)"
            )
        } else {
            format!("deployment {name:?} in cluster {cluster:?} has no ready replica")
        }
    }
}

/// Reads a proxied request's body, at most [`MAX_PROXY_BODY`] bytes (413 past it).
async fn read_proxied_body(body: Body) -> Result<Bytes, Response<Body>> {
    match http_body_util::Limited::new(body, MAX_PROXY_BODY)
        .collect()
        .await
    {
        Ok(b) => Ok(b.to_bytes()),
        Err(e) => Err(json_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("cannot read the request body (limit {MAX_PROXY_BODY} bytes): {e}"),
        )),
    }
}

/// The request to send to the replica on `port`: same method, path, query and headers
/// (but the hop-by-hop ones), same body. The error says why it cannot be built (a 400).
fn upstream_request(
    parts: &axum::http::request::Parts,
    path_q: &str,
    port: u16,
    bytes: &Bytes,
) -> Result<Request<Full<Bytes>>, String> {
    let uri: Uri = format!("http://127.0.0.1:{port}{path_q}")
        .parse()
        .map_err(|e| format!("invalid path: {e}"))?;
    let mut out = Request::builder().method(parts.method.clone()).uri(uri);
    for (k, v) in parts.headers.iter() {
        if k != header::HOST && k != header::CONNECTION && k.as_str() != "keep-alive" {
            out = out.header(k, v);
        }
    }
    out.body(Full::new(bytes.clone()))
        .map_err(|e| format!("cannot forward the request: {e}"))
}

/// A replica's answer, with which replica and target gave it.
fn tagged(mut resp: Response<Body>, p: &Proc) -> Response<Body> {
    if let Ok(v) = HeaderValue::from_str(&p.spec.replica) {
        resp.headers_mut().insert("x-bentocloud-replica", v);
    }
    if let Ok(v) = HeaderValue::from_str(&p.spec.target) {
        resp.headers_mut().insert("x-bentocloud-target", v);
    }
    resp
}

/// The replicas of `pool` not tried yet by this request and not stopping.
fn untried<'a>(pool: &'a [Arc<Proc>], tried: &[u16]) -> Vec<&'a Arc<Proc>> {
    pool.iter()
        .filter(|p| !tried.contains(&p.port) && !p.stop.is_cancelled())
        .collect()
}

/// Counts one proxied request of a deployment while alive.
struct InFlight(Arc<DepStats>, Clock);

impl InFlight {
    fn enter(s: &Arc<DepStats>, clock: &Clock) -> Self {
        let n = s.in_flight.fetch_add(1, Ordering::AcqRel) + 1;
        s.peak.fetch_max(n, Ordering::AcqRel);
        s.last_request_ms.store(clock.now_ms(), Ordering::Relaxed);
        Self(s.clone(), clock.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
        self.0
            .last_request_ms
            .store(self.1.now_ms(), Ordering::Relaxed);
    }
}

impl Runtime for Fleet {
    fn start(
        &self,
        d: &DeploymentRow,
        r: &ReplicaRow,
        b: &BentoRow,
        env: &Environment,
    ) -> Option<i64> {
        let handle = tokio::runtime::Handle::try_current().ok()?;
        let listener = match std::net::TcpListener::bind("127.0.0.1:0") {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "cannot bind a replica port");
                return None;
            }
        };
        let port = listener.local_addr().ok()?.port();
        listener.set_nonblocking(true).ok()?;
        let beh = &b.behaviour;
        let ms = |v: i64| Duration::from_millis(u64::try_from(v.max(0)).unwrap_or(0));
        let p = Arc::new(Proc::new(
            Spec {
                deployment: d.name.clone(),
                cluster: d.cluster.clone(),
                tag: b.tag(),
                revision: r.revision_uid.clone(),
                replica: r.uid.clone(),
                target: r.target.clone(),
                service: r.service.clone(),
                startup: ms(beh.startup_ms),
                unready: beh.unready,
                crash_after: beh.crash_after_ms.map(ms),
                fail_paths: beh.fail_paths.clone(),
                env: env.clone(),
            },
            port,
            self.clock.clone(),
            self.shutdown.child_token(),
        ));
        if let Some(old) = lock(&self.procs).insert(r.uid.clone(), p.clone()) {
            old.stop.cancel();
        }
        handle.spawn(serve_replica(listener, p.clone()));
        handle.spawn(probe(
            self.client.clone(),
            p,
            Duration::from_millis(self.timing.probe_ms.max(5)),
            Duration::from_millis(self.timing.liveness_probe_ms.max(5)),
        ));
        tracing::debug!(replica = %r.uid, port, "replica started");
        Some(i64::from(port))
    }

    fn exists(&self, r: &ReplicaRow) -> bool {
        self.proc(&r.uid).is_some()
    }

    fn ready(&self, r: &ReplicaRow, _: &BentoRow, _: i64) -> bool {
        self.proc(&r.uid)
            .map(|p| p.probe_ready.load(Ordering::Acquire))
            .unwrap_or(false)
    }

    fn crashed(&self, r: &ReplicaRow, _: &BentoRow, _: i64) -> bool {
        match self.proc(&r.uid) {
            None => true,
            Some(p) => p.live_failures.load(Ordering::Acquire) >= 2,
        }
    }

    fn drained(&self, r: &ReplicaRow, now: i64, _drain_ms: i64) -> bool {
        let Some(p) = self.proc(&r.uid) else {
            return true;
        };
        let since = now - r.drain_started_at.unwrap_or(now);
        let idle =
            p.in_flight.load(Ordering::Acquire) == 0 && p.proxied.load(Ordering::Acquire) == 0;
        // One tick of grace: the route without this replica is published right after the
        // transaction that marked it draining, so nothing new is sent to it after that.
        (idle && since >= self.timing.tick_ms as i64) || since >= self.timing.drain_timeout_ms
    }

    fn stop(&self, r: &ReplicaRow) {
        if let Some(p) = lock(&self.procs).remove(&r.uid) {
            p.stop.cancel();
        }
    }

    /// Replaces the route of one deployment with its READY replicas, one pool per target.
    fn publish(&self, u: RouteUpdate) {
        let d = u.deployment;
        let key = (u.org.to_string(), d.cluster.clone(), d.name.clone());
        let procs = lock(&self.procs);
        let mut ready: Vec<Arc<Proc>> = Vec::new();
        let mut canary: HashMap<String, Vec<Arc<Proc>>> = HashMap::new();
        for r in u.replicas.iter().filter(|r| r.state == ReplicaState::Ready) {
            let Some(p) = procs
                .get(&r.uid)
                .filter(|p| !p.crashed.load(Ordering::Relaxed))
            else {
                continue;
            };
            if r.is_main() {
                ready.push(p.clone());
            } else {
                canary.entry(r.target.clone()).or_default().push(p.clone());
            }
        }
        drop(procs);
        let route = Arc::new(Route {
            deployment_id: d.id,
            ready,
            canary,
            split: u.split,
            wake: u.wake,
            traffic: u.traffic,
            cold_start_ms: u.cold_start_ms,
            stats: self.dep_stats(d.id),
        });
        if let Ok(mut r) = self.routes.write() {
            r.insert(key, route);
        }
        self.route_changes.send_modify(|v| *v = v.wrapping_add(1));
    }

    /// Drops routes, counters and processes of everything not in `deployments` / `replicas`.
    fn retain(&self, deployments: &HashSet<i64>, replicas: &HashSet<String>) {
        if let Ok(mut r) = self.routes.write() {
            r.retain(|_, v| deployments.contains(&v.deployment_id));
        }
        lock(&self.stats).retain(|id, _| deployments.contains(id));
        lock(&self.windows).retain(|id, _| deployments.contains(id));
        lock(&self.procs).retain(|uid, p| {
            let keep = replicas.contains(uid);
            if !keep {
                p.stop.cancel();
            }
            keep
        });
    }

    fn service_load(
        &self,
        deployment_id: i64,
        service: &str,
        now: i64,
    ) -> Option<crate::autoscale::ServiceLoad> {
        let s = self.dep_stats(deployment_id);
        let svc = s.service(service, now);
        let count = svc.dispatched.load(Ordering::Acquire);
        let (t0, c0) = std::mem::replace(&mut *lock(&svc.last), (now, count));
        let qps = if now > t0 {
            count.saturating_sub(c0) as f64 * 1000.0 / (now - t0) as f64
        } else {
            0.0
        };
        Some(crate::autoscale::ServiceLoad {
            qps,
            in_flight: svc.in_flight.load(Ordering::Acquire),
            queued: s.queued.load(Ordering::Acquire),
        })
    }

    fn load(&self, deployment_id: i64, now: i64) -> Option<Load> {
        let s = self.dep_stats(deployment_id);
        let in_flight = s.in_flight.load(Ordering::Acquire);
        let peak = s.peak.swap(in_flight, Ordering::AcqRel).max(in_flight);
        let mut w = lock(&self.windows);
        let q = w.entry(deployment_id).or_default();
        q.push_back((now, peak));
        while q
            .front()
            .map(|(t, _)| *t < now - self.timing.scale_down_window_ms)
            .unwrap_or(false)
        {
            q.pop_front();
        }
        let window_peak = q.iter().map(|(_, p)| *p).max().unwrap_or(peak);
        let idle_ms = if in_flight > 0 {
            0
        } else {
            now - s.last_request_ms.load(Ordering::Relaxed)
        };
        Some(Load {
            in_flight,
            peak,
            window_peak,
            idle_ms,
        })
    }
}

/// The kubelet of one replica: `/readyz` every `readiness` until it passes, then `/livez`
/// every `liveness` (slower, as Kubernetes' periodic liveness probes are: a fleet of hundreds of
/// ready replicas must not spend a core probing itself).
async fn probe(client: HttpClient, p: Arc<Proc>, readiness: Duration, liveness: Duration) {
    let timeout = Duration::from_secs(1);
    loop {
        let every = if p.probe_ready.load(Ordering::Acquire) {
            liveness
        } else {
            readiness
        };
        tokio::select! {
            _ = p.stop.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        let ready = p.probe_ready.load(Ordering::Acquire);
        let path = if ready { "/livez" } else { "/readyz" };
        let Ok(uri) = format!("http://127.0.0.1:{}{path}", p.port).parse::<Uri>() else {
            return;
        };
        let Ok(req) = Request::get(uri).body(Full::new(Bytes::new())) else {
            return;
        };
        let ok = matches!(
            tokio::time::timeout(timeout, client.request(req)).await,
            Ok(Ok(resp)) if resp.status() == StatusCode::OK
        );
        if !ready {
            if ok {
                p.probe_ready.store(true, Ordering::Release);
            }
        } else if ok {
            p.live_failures.store(0, Ordering::Release);
        } else {
            p.live_failures.fetch_add(1, Ordering::AcqRel);
        }
    }
}

/// Accepts connections until stopped or crashed; dropping the task set closes them all.
async fn serve_replica(listener: std::net::TcpListener, p: Arc<Proc>) {
    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
        return;
    };
    let crash = async {
        match p.crash_at_ms() {
            Some(at) => p.clock.sleep_until(at).await,
            None => std::future::pending::<()>().await,
        }
    };
    tokio::pin!(crash);
    let mut conns = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            _ = p.stop.cancelled() => break,
            _ = &mut crash => {
                tracing::info!(replica = %p.spec.replica, "replica crashed (bento crash_after)");
                p.crashed.store(true, Ordering::Release);
                break;
            }
            acc = listener.accept() => match acc {
                Ok((stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    let p = p.clone();
                    conns.spawn(async move {
                        let svc = hyper::service::service_fn(move |req| handle(p.clone(), req));
                        let _ = hyper::server::conn::http1::Builder::new()
                            .keep_alive(true)
                            .serve_connection(TokioIo::new(stream), svc)
                            .await;
                    });
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
}

fn reply(status: StatusCode, ctype: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    r
}

struct Busy<'a>(&'a AtomicUsize);

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// One request to a replica.
async fn handle(p: Arc<Proc>, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path().to_string();
    let json_ct = "application/json";
    let text_ct = "text/plain; charset=utf-8";
    Ok(match path.as_str() {
        "/readyz" => {
            if p.is_ready_now() {
                reply(StatusCode::OK, text_ct, "ok".into())
            } else {
                reply(
                    StatusCode::SERVICE_UNAVAILABLE,
                    text_ct,
                    "runners are not ready".into(),
                )
            }
        }
        "/livez" | "/healthz" => reply(StatusCode::OK, text_ct, "ok".into()),
        "/metrics" => metrics(&p),
        _ => serve_request(&p, req, path, json_ct).await,
    })
}

/// `/metrics`: the replica's request counters in Prometheus text format.
fn metrics(p: &Proc) -> Response<Full<Bytes>> {
    let labels = format!(
        "service=\"{}\",bento=\"{}\",revision=\"{}\",replica=\"{}\"",
        p.spec.service, p.spec.tag, p.spec.revision, p.spec.replica
    );
    let body = format!(
        "# HELP bentoml_service_request_total Requests served by this replica.\n\
                 # TYPE bentoml_service_request_total counter\n\
                 bentoml_service_request_total{{{labels}}} {}\n\
                 # HELP bentoml_service_request_in_progress Requests in flight in this replica.\n\
                 # TYPE bentoml_service_request_in_progress gauge\n\
                 bentoml_service_request_in_progress{{{labels}}} {}\n",
        p.served.load(Ordering::Relaxed),
        p.in_flight.load(Ordering::Relaxed),
    );
    reply(StatusCode::OK, "text/plain; version=0.0.4", body)
}

/// Any other path: the service's answer (who served it; `?sleep_ms=N` waits first, `?env=`
/// and `?file=` report what the service would read).
async fn serve_request(
    p: &Proc,
    req: Request<Incoming>,
    path: String,
    json_ct: &'static str,
) -> Response<Full<Bytes>> {
    p.in_flight.fetch_add(1, Ordering::AcqRel);
    let _busy = Busy(&p.in_flight);
    let sleep_ms = req
        .uri()
        .query()
        .and_then(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .find(|(k, _)| k == "sleep_ms")
                .and_then(|(_, v)| v.parse::<u64>().ok())
        })
        .unwrap_or(0)
        .min(10_000);
    if sleep_ms > 0 {
        tokio::time::sleep(Duration::from_millis(sleep_ms)).await;
    }
    p.served.fetch_add(1, Ordering::Relaxed);
    if p.spec.fail_paths.contains(&path) {
        return reply(
            StatusCode::INTERNAL_SERVER_ERROR,
            json_ct,
            json!({"error": "An unexpected error has occurred, please check the server log."})
                .to_string(),
        );
    }
    let mut body = json!({
        "deployment": p.spec.deployment,
        "cluster": p.spec.cluster,
        "bento": p.spec.tag,
        "revision": p.spec.revision,
        "replica": p.spec.replica,
        "target": p.spec.target,
        "service": p.spec.service,
        "method": req.method().as_str(),
        "path": path,
        "status": "ok",
    });
    // `?env=NAME` / `?file=PATH` (repeatable): what the service's code would read from
    // its environment, as fixed when the replica started (`null` when unset).
    let asked = req
        .uri()
        .query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    for (k, v) in asked {
        let (field, source) = match k.as_str() {
            "env" => ("env", &p.spec.env.vars),
            "file" => ("files", &p.spec.env.files),
            _ => continue,
        };
        body[field][v.as_str()] = source.get(&v).map_or(Value::Null, |x| json!(x));
    }
    reply(StatusCode::OK, json_ct, body.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A replica server of a bento with these behaviours, started at `clock`'s now; returns it
    /// and its serving task (which ends when it crashes or stops).
    fn replica(
        clock: &Clock,
        startup_ms: u64,
        unready: bool,
        crash_after_ms: Option<u64>,
        fail_paths: &[&str],
    ) -> (Arc<Proc>, tokio::task::JoinHandle<()>) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let port = listener.local_addr().expect("addr").port();
        let p = Arc::new(Proc::new(
            Spec {
                deployment: "d".into(),
                cluster: "c".into(),
                tag: "iris:v1".into(),
                revision: "rev".into(),
                replica: "r1".into(),
                target: "v2".into(),
                service: "apiserver".into(),
                startup: Duration::from_millis(startup_ms),
                unready,
                crash_after: crash_after_ms.map(Duration::from_millis),
                fail_paths: fail_paths.iter().map(|s| s.to_string()).collect(),
                env: Environment::default(),
            },
            port,
            clock.clone(),
            CancellationToken::new(),
        ));
        let task = tokio::spawn(serve_replica(listener, p.clone()));
        (p, task)
    }

    /// `GET path` on the replica (a new connection each time): status and body.
    async fn get(p: &Proc, path: &str) -> Result<(u16, String), reqwest::Error> {
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .build()?;
        let r = http
            .get(format!("http://127.0.0.1:{}{path}", p.port))
            .send()
            .await?;
        Ok((r.status().as_u16(), r.text().await?))
    }

    #[tokio::test]
    async fn fail_paths_answer_500_while_the_probes_and_other_paths_pass() {
        let clock = Clock::manual(1_000_000);
        let (p, _task) = replica(&clock, 0, false, None, &["/predict", "/v1/embed"]);
        for path in ["/readyz", "/livez", "/healthz"] {
            assert_eq!(get(&p, path).await.expect(path).0, 200, "{path}");
        }
        for path in ["/predict", "/v1/embed", "/predict?sleep_ms=1"] {
            let (status, body) = get(&p, path).await.expect(path);
            assert_eq!(status, 500, "{path}: {body}");
            let v: Value = serde_json::from_str(&body).expect("json");
            // BentoML's answer for an API that raised, nothing of the emulator's own.
            assert_eq!(
                v,
                json!({"error": "An unexpected error has occurred, please check the server log."})
            );
        }
        // Exact paths only: anything else is served as usual.
        for path in ["/other", "/predict/", "/predictx", "/"] {
            let (status, body) = get(&p, path).await.expect(path);
            assert_eq!(status, 200, "{path}: {body}");
            let v: Value = serde_json::from_str(&body).expect("json");
            assert_eq!((&v["status"], &v["target"]), (&json!("ok"), &json!("v2")));
        }
        // The failed requests were served (and counted), not refused.
        assert_eq!(p.served.load(Ordering::Relaxed), 7);
        let (_, metrics) = get(&p, "/metrics").await.expect("metrics");
        assert!(
            metrics.contains("bentoml_service_request_total{"),
            "{metrics}"
        );
        assert!(!p.crashed.load(Ordering::Relaxed));
    }

    #[tokio::test]
    async fn crash_after_counts_from_ready_not_from_start() {
        let clock = Clock::manual(1_000_000);
        let step = |ms: u64| clock.advance(Duration::from_millis(ms)).expect("manual");
        // Ready 2 s after start, crashes 3 s after that.
        let (p, task) = replica(&clock, 2_000, false, Some(3_000), &[]);
        assert_eq!(p.ready_at_ms(), Some(1_002_000));
        assert_eq!(p.crash_at_ms(), Some(1_005_000));
        assert_eq!(get(&p, "/readyz").await.expect("readyz").0, 503);
        step(2_000);
        assert_eq!(get(&p, "/readyz").await.expect("readyz").0, 200);
        // 3 s after it became ready, less 1 ms: still serving (3 s from start would be gone).
        step(2_999);
        assert_eq!(get(&p, "/predict").await.expect("serving").0, 200);
        assert!(!task.is_finished() && !p.crashed.load(Ordering::Acquire));
        step(1);
        // The crash: its server ends and takes its listener with it.
        tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .expect("crashed at its time")
            .expect("joined");
        assert!(p.crashed.load(Ordering::Acquire));
        assert!(
            get(&p, "/livez").await.is_err(),
            "a crashed replica answered"
        );

        // An unready bento never becomes ready, so never crashes.
        let (q, _task) = replica(&clock, 0, true, Some(1), &[]);
        assert_eq!((q.ready_at_ms(), q.crash_at_ms()), (None, None));
    }
}
