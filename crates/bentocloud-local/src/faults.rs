//! Fault injection for the API routes (off by default): per endpoint pattern (method + path
//! prefix, or all), a rate of injected failures chosen among 5xx errors, 429 with
//! `Retry-After`, added latency, dropped connections (closed without any response byte) and
//! killing the process (`std::process::abort`), each applied either **before** the handler
//! runs (the request is not processed) or **after** it ran and committed (the response is
//! lost), so clients meet every "outcome unknown" case.
//!
//! Configured by `serve --fault RULE` (see [`FaultRule::parse`]) and `--fault-seed N`, or at
//! run time by the token-authenticated admin endpoint `PUT /api/local/v1/faults` (body: a
//! [`FaultConfig`]; `GET` shows the config and counters, `DELETE` turns faults off). The admin
//! endpoint itself is never faulted. With a seed, the sequence of decisions is deterministic
//! (in request arrival order).

use std::sync::Mutex;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use super::error::json_error;
use super::AppState;

/// Path of the admin endpoint; requests under it are never faulted.
pub const ADMIN_PATH: &str = "/api/local/v1/faults";
/// Header naming the injected fault on injected responses (errors, 429).
pub const FAULT_HEADER: &str = "x-bentocloud-local-fault";

/// What is injected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum FaultKind {
    /// A 5xx answer (`{"error": ...}`).
    Error { status: u16 },
    /// 429 with `Retry-After: retry_after_seconds`.
    RateLimit { retry_after_seconds: u64 },
    /// The request waits this long (before or after the handler), then proceeds normally.
    Latency { ms: u64 },
    /// The connection is closed without a response.
    Drop,
    /// The process aborts (like `kill -9`: no cleanup, no response).
    Abort,
}

/// When the fault applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PhaseSpec {
    /// Before the handler: the request is not processed.
    Before,
    /// After the handler committed: the response is lost or replaced.
    After,
    /// Either, chosen at random per injection.
    #[default]
    Both,
}

/// The phase chosen for one injection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Before,
    After,
}

/// One rule: which requests it matches, how often it fires and what it injects.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FaultRule {
    /// HTTP method (case-insensitive); `None` or `"*"` matches every method.
    pub method: Option<String>,
    /// Path prefix (e.g. `/api/v2/deployments`); empty matches every path.
    pub path_prefix: String,
    /// Probability in `[0, 1]` that a matching request gets a fault.
    pub rate: f64,
    /// The faults to choose from, uniformly.
    pub faults: Vec<FaultKind>,
    pub phase: PhaseSpec,
    /// The first `skip` matching requests are never faulted (e.g. abort on request N+1).
    pub skip: u64,
    /// At most this many injections by this rule.
    pub limit: Option<u64>,
}

impl Default for FaultRule {
    fn default() -> Self {
        Self {
            method: None,
            path_prefix: String::new(),
            rate: 1.0,
            faults: Vec::new(),
            phase: PhaseSpec::Both,
            skip: 0,
            limit: None,
        }
    }
}

/// Every rule, in order (the first rule matching a request decides), and the seed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FaultConfig {
    /// Seed of the decisions; without one, a random seed.
    pub seed: Option<u64>,
    pub rules: Vec<FaultRule>,
}

/// One decision of the injector.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    pub fault: FaultKind,
    pub phase: Phase,
    /// Index of the rule that fired.
    pub rule: usize,
}

/// `GET /api/local/v1/faults`: the config and, per rule, how many requests matched and how
/// many got a fault.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaultStatus {
    pub config: FaultConfig,
    pub matched: Vec<u64>,
    pub injected: Vec<u64>,
}

const MAX_LATENCY_MS: u64 = 600_000;
const MAX_RETRY_AFTER: u64 = 3_600;

impl FaultRule {
    /// Parses the compact form of `serve --fault`: space-separated `key=value` pairs.
    ///
    /// - `on=all` | `on=METHOD` | `on=PREFIX` | `on=METHOD:PREFIX` (default all), e.g.
    ///   `on=POST:/api/v2/deployments`
    /// - `rate=0.3` (default 1)
    /// - `kinds=500,502,503,429,latency,drop,abort` (any 5xx code is an error status)
    /// - `phase=before|after|both` (default both)
    /// - `latency_ms=N` (default 200), `retry_after=SECONDS` (default 1)
    /// - `skip=N`, `limit=N`
    pub fn parse(text: &str) -> Result<FaultRule, String> {
        let mut rule = FaultRule::default();
        let mut kinds: Vec<String> = Vec::new();
        let mut latency_ms = 200u64;
        let mut retry_after = 1u64;
        for part in text.split_whitespace() {
            let (k, v) = part
                .split_once('=')
                .ok_or_else(|| format!("fault rule {text:?}: {part:?} is not key=value"))?;
            let num = |v: &str| {
                v.parse::<u64>()
                    .map_err(|_| format!("fault rule {text:?}: {k}={v:?} is not a whole number"))
            };
            match k {
                "on" => {
                    let (m, p) = parse_on(v);
                    rule.method = m;
                    rule.path_prefix = p;
                }
                "rate" => {
                    rule.rate = v
                        .parse::<f64>()
                        .map_err(|_| format!("fault rule {text:?}: rate={v:?} is not a number"))?
                }
                "kinds" | "kind" => kinds.extend(
                    v.split(',')
                        .filter(|s| !s.is_empty())
                        .map(|s| s.to_lowercase()),
                ),
                "phase" => {
                    rule.phase = match v {
                        "before" => PhaseSpec::Before,
                        "after" => PhaseSpec::After,
                        "both" | "either" => PhaseSpec::Both,
                        _ => {
                            return Err(format!(
                                "fault rule {text:?}: phase={v:?}: use before, after or both"
                            ))
                        }
                    }
                }
                "latency_ms" => latency_ms = num(v)?,
                "retry_after" => retry_after = num(v)?,
                "skip" => rule.skip = num(v)?,
                "limit" => rule.limit = Some(num(v)?),
                _ => {
                    return Err(format!(
                        "fault rule {text:?}: unknown key {k:?} (on, rate, kinds, phase, latency_ms, retry_after, skip, limit)"
                    ))
                }
            }
        }
        for k in kinds {
            let f = match k.as_str() {
                "429" | "rate_limit" => FaultKind::RateLimit {
                    retry_after_seconds: retry_after,
                },
                "latency" => FaultKind::Latency { ms: latency_ms },
                "drop" => FaultKind::Drop,
                "abort" | "kill" => FaultKind::Abort,
                other => match other.parse::<u16>() {
                    Ok(status) => FaultKind::Error { status },
                    Err(_) => {
                        return Err(format!(
                            "fault rule {text:?}: unknown kind {other:?} (5xx codes, 429, latency, drop, abort)"
                        ))
                    }
                },
            };
            rule.faults.push(f);
        }
        rule.validate()?;
        Ok(rule)
    }

    pub fn validate(&self) -> Result<(), String> {
        if !(0.0..=1.0).contains(&self.rate) || self.rate.is_nan() {
            return Err(format!("fault rate {} must be between 0 and 1", self.rate));
        }
        if self.faults.is_empty() {
            return Err("a fault rule needs at least one fault kind".into());
        }
        if let Some(m) = &self.method {
            if m != "*" && (m.is_empty() || !m.chars().all(|c| c.is_ascii_alphabetic())) {
                return Err(format!("fault method {m:?} is not an HTTP method"));
            }
        }
        if !self.path_prefix.is_empty() && !self.path_prefix.starts_with('/') {
            return Err(format!(
                "fault path prefix {:?} must start with /",
                self.path_prefix
            ));
        }
        for f in &self.faults {
            match f {
                FaultKind::Error { status } if !(500..=599).contains(status) => {
                    return Err(format!(
                        "injected error status {status} must be a 5xx (use 429 for rate limits)"
                    ))
                }
                FaultKind::RateLimit {
                    retry_after_seconds,
                } if *retry_after_seconds > MAX_RETRY_AFTER => {
                    return Err(format!(
                        "retry_after_seconds {retry_after_seconds} is over {MAX_RETRY_AFTER}"
                    ))
                }
                FaultKind::Latency { ms } if *ms > MAX_LATENCY_MS => {
                    return Err(format!("latency {ms} ms is over {MAX_LATENCY_MS} ms"))
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn matches(&self, method: &str, path: &str) -> bool {
        let method_ok = match self.method.as_deref() {
            None | Some("*") => true,
            Some(m) => m.eq_ignore_ascii_case(method),
        };
        method_ok && path.starts_with(&self.path_prefix)
    }
}

fn parse_on(v: &str) -> (Option<String>, String) {
    if v.eq_ignore_ascii_case("all") || v.is_empty() {
        return (None, String::new());
    }
    match v.split_once(':') {
        Some((m, p)) => {
            let m = if m.is_empty() || m == "*" {
                None
            } else {
                Some(m.to_uppercase())
            };
            (m, p.to_string())
        }
        None if v.starts_with('/') => (None, v.to_string()),
        None => (Some(v.to_uppercase()), String::new()),
    }
}

impl FaultConfig {
    pub fn validate(&self) -> Result<(), String> {
        for (i, r) in self.rules.iter().enumerate() {
            r.validate().map_err(|e| format!("fault rule {i}: {e}"))?;
        }
        Ok(())
    }

    pub fn is_off(&self) -> bool {
        self.rules.is_empty()
    }
}

struct Inner {
    cfg: FaultConfig,
    rng: StdRng,
    matched: Vec<u64>,
    injected: Vec<u64>,
}

impl Inner {
    fn new(cfg: FaultConfig) -> Inner {
        let rng = match cfg.seed {
            Some(s) => StdRng::seed_from_u64(s),
            None => StdRng::from_entropy(),
        };
        let n = cfg.rules.len();
        Inner {
            cfg,
            rng,
            matched: vec![0; n],
            injected: vec![0; n],
        }
    }
}

/// The injector shared by the fault layer and the admin endpoint.
pub struct Faults {
    inner: Mutex<Inner>,
}

impl Default for Faults {
    fn default() -> Self {
        Self {
            inner: Mutex::new(Inner::new(FaultConfig::default())),
        }
    }
}

impl std::fmt::Debug for Faults {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Faults")
            .field("status", &self.status())
            .finish()
    }
}

impl Faults {
    pub fn new(cfg: FaultConfig) -> Result<Faults, String> {
        cfg.validate()?;
        Ok(Faults {
            inner: Mutex::new(Inner::new(cfg)),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Replaces the config; counters and the random sequence start over.
    pub fn set(&self, cfg: FaultConfig) -> Result<(), String> {
        cfg.validate()?;
        *self.lock() = Inner::new(cfg);
        Ok(())
    }

    pub fn status(&self) -> FaultStatus {
        let g = self.lock();
        FaultStatus {
            config: g.cfg.clone(),
            matched: g.matched.clone(),
            injected: g.injected.clone(),
        }
    }

    /// Whether (and how) to fault one request. Every matching rule counts the request; the
    /// first one that fires decides.
    pub fn decide(&self, method: &str, path: &str) -> Option<Decision> {
        if path.starts_with(ADMIN_PATH) {
            return None;
        }
        let mut g = self.lock();
        if g.cfg.is_off() {
            return None;
        }
        let mut decision = None;
        for i in 0..g.cfg.rules.len() {
            if !g.cfg.rules[i].matches(method, path) {
                continue;
            }
            g.matched[i] += 1;
            if decision.is_none() {
                decision = Self::roll(&mut g, i);
            }
        }
        decision
    }

    fn roll(g: &mut Inner, i: usize) -> Option<Decision> {
        let rule = &g.cfg.rules[i];
        if g.matched[i] <= rule.skip
            || rule.limit.is_some_and(|l| g.injected[i] >= l)
            || rule.faults.is_empty()
        {
            return None;
        }
        let (rate, n, phase_spec) = (rule.rate, rule.faults.len(), rule.phase);
        let roll: f64 = g.rng.gen();
        if roll >= rate {
            return None;
        }
        let k = g.rng.gen_range(0..n);
        let fault = g.cfg.rules[i].faults[k].clone();
        let phase = match phase_spec {
            PhaseSpec::Before => Phase::Before,
            PhaseSpec::After => Phase::After,
            PhaseSpec::Both => {
                if g.rng.gen_bool(0.5) {
                    Phase::Before
                } else {
                    Phase::After
                }
            }
        };
        g.injected[i] += 1;
        Some(Decision {
            fault,
            phase,
            rule: i,
        })
    }
}

impl AppState {
    /// The fault injector of this server (off unless configured).
    pub fn faults(&self) -> &Faults {
        &self.faults
    }
}

/// A body whose first poll fails: hyper then closes the connection before flushing the
/// buffered head, so the client sees the connection end without a single response byte.
fn dropped_body() -> Body {
    Body::from_stream(futures::stream::once(async {
        Err::<Bytes, std::io::Error>(std::io::Error::new(
            std::io::ErrorKind::ConnectionAborted,
            "bentocloud-local: injected dropped connection",
        ))
    }))
}

fn injected(fault: &FaultKind, phase: Phase) -> Response {
    let when = match phase {
        Phase::Before => "before the request was processed",
        Phase::After => "after the request was processed",
    };
    match fault {
        FaultKind::Error { status } => {
            let code = StatusCode::from_u16(*status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let mut r = json_error(code, format!("injected fault: HTTP {status} {when}"));
            r.headers_mut()
                .insert(FAULT_HEADER, HeaderValue::from_static("error"));
            r
        }
        FaultKind::RateLimit {
            retry_after_seconds,
        } => {
            let mut r = json_error(
                StatusCode::TOO_MANY_REQUESTS,
                format!("injected fault: rate limited {when}; retry after {retry_after_seconds}s"),
            );
            if let Ok(v) = HeaderValue::from_str(&retry_after_seconds.to_string()) {
                r.headers_mut().insert(axum::http::header::RETRY_AFTER, v);
            }
            r.headers_mut()
                .insert(FAULT_HEADER, HeaderValue::from_static("rate_limit"));
            r
        }
        FaultKind::Drop => {
            // 200 so that no error-rewriting layer reads (and so swallows) the failing body.
            let mut r = Response::new(dropped_body());
            *r.status_mut() = StatusCode::OK;
            r
        }
        FaultKind::Abort => {
            eprintln!("bentocloud-local: injected fault: aborting the process {when}");
            std::process::abort()
        }
        // Latency is handled by the layer; here only for completeness.
        FaultKind::Latency { .. } => json_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "injected latency has no response".into(),
        ),
    }
}

/// The middleware on the API routes.
pub(crate) async fn layer(State(s): State<AppState>, req: Request, next: Next) -> Response {
    let Some(d) = s.faults.decide(req.method().as_str(), req.uri().path()) else {
        return next.run(req).await;
    };
    tracing::info!(
        method = %req.method(),
        path = %req.uri().path(),
        fault = ?d.fault,
        phase = ?d.phase,
        "injecting a fault"
    );
    match (d.phase, &d.fault) {
        (Phase::Before, FaultKind::Latency { ms }) => {
            tokio::time::sleep(Duration::from_millis(*ms)).await;
            next.run(req).await
        }
        (Phase::Before, f) => injected(f, d.phase),
        (Phase::After, f) => {
            let resp = next.run(req).await;
            if let FaultKind::Latency { ms } = f {
                tokio::time::sleep(Duration::from_millis(*ms)).await;
                return resp;
            }
            // The handler ran to completion (its transaction committed); its answer is lost.
            drop(resp);
            injected(f, d.phase)
        }
    }
}

// ---------------------------------------------------------------- admin endpoint

/// `GET /api/local/v1/faults`.
pub(crate) async fn get_faults(State(s): State<AppState>) -> Response {
    Json(s.faults.status()).into_response()
}

/// `PUT /api/local/v1/faults`: replaces the config (an empty `rules` turns faults off).
pub(crate) async fn put_faults(State(s): State<AppState>, body: Bytes) -> Response {
    let cfg: FaultConfig = match serde_json::from_slice(&body) {
        Ok(c) => c,
        Err(e) => {
            return json_error(
                StatusCode::BAD_REQUEST,
                format!("invalid fault config: {e}"),
            )
        }
    };
    match s.faults.set(cfg) {
        Ok(()) => Json(s.faults.status()).into_response(),
        Err(e) => json_error(StatusCode::BAD_REQUEST, e),
    }
}

/// `DELETE /api/local/v1/faults`: faults off.
pub(crate) async fn delete_faults(State(s): State<AppState>) -> Response {
    // An empty config always validates.
    let _ = s.faults.set(FaultConfig::default());
    Json(s.faults.status()).into_response()
}

#[cfg(test)]
mod tests;
