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
mod tests {
    use super::*;

    fn rule(text: &str) -> FaultRule {
        FaultRule::parse(text).expect("valid rule")
    }

    #[test]
    fn parses_the_compact_form() {
        let r = rule("on=POST:/api/v2/deployments rate=0.3 kinds=500,429,latency,drop,abort phase=after latency_ms=50 retry_after=2 skip=3 limit=4");
        assert_eq!(r.method.as_deref(), Some("POST"));
        assert_eq!(r.path_prefix, "/api/v2/deployments");
        assert_eq!(r.rate, 0.3);
        assert_eq!(r.phase, PhaseSpec::After);
        assert_eq!((r.skip, r.limit), (3, Some(4)));
        assert_eq!(
            r.faults,
            vec![
                FaultKind::Error { status: 500 },
                FaultKind::RateLimit {
                    retry_after_seconds: 2
                },
                FaultKind::Latency { ms: 50 },
                FaultKind::Drop,
                FaultKind::Abort,
            ]
        );
        let all = rule("kinds=503");
        assert_eq!((all.method.clone(), all.path_prefix.as_str()), (None, ""));
        assert_eq!(all.rate, 1.0);
        assert_eq!(all.phase, PhaseSpec::Both);
        assert_eq!(rule("on=get kinds=502").method.as_deref(), Some("GET"));
        assert_eq!(rule("on=/api/v1 kinds=502").path_prefix, "/api/v1");
        for bad in [
            "kinds=404",
            "kinds=teapot",
            "rate=1.5 kinds=500",
            "rate=x kinds=500",
            "kinds=500 phase=during",
            "kinds=500 colour=red",
            "rate=0.5",
            "kinds=latency latency_ms=9999999",
            "nonsense",
        ] {
            assert!(FaultRule::parse(bad).is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn matching_by_method_and_prefix_first_firing_rule_wins() {
        let f = Faults::new(FaultConfig {
            seed: Some(1),
            rules: vec![
                rule("on=POST:/api/v2/deployments kinds=503"),
                rule("on=all kinds=500 phase=before"),
            ],
        })
        .expect("config");
        let d = f.decide("POST", "/api/v2/deployments").expect("fault");
        assert_eq!((d.rule, d.fault), (0, FaultKind::Error { status: 503 }));
        let d = f.decide("GET", "/api/v2/deployments").expect("fault");
        assert_eq!(
            (d.rule, d.fault, d.phase),
            (1, FaultKind::Error { status: 500 }, Phase::Before)
        );
        // The admin endpoint is never faulted.
        assert!(f.decide("PUT", ADMIN_PATH).is_none());
        // Every matching rule counts the request; only the first that fires injects.
        let s = f.status();
        assert_eq!((s.matched, s.injected), (vec![1, 2], vec![1, 1]));
    }

    #[test]
    fn off_by_default_and_rate_zero_never_fires() {
        let f = Faults::default();
        assert!((0..100).all(|_| f.decide("GET", "/api/v1/clusters").is_none()));
        f.set(FaultConfig {
            seed: None,
            rules: vec![rule("rate=0 kinds=500")],
        })
        .expect("set");
        assert!((0..1000).all(|_| f.decide("GET", "/api/v1/clusters").is_none()));
        assert_eq!(f.status().matched, vec![1000]);
    }

    #[test]
    fn the_same_seed_gives_the_same_decisions_and_the_rate_holds() {
        let cfg = FaultConfig {
            seed: Some(42),
            rules: vec![rule("rate=0.3 kinds=500,502,503,429,latency,drop")],
        };
        let run = || {
            let f = Faults::new(cfg.clone()).expect("config");
            (0..2000)
                .map(|_| f.decide("GET", "/api/v2/deployments"))
                .collect::<Vec<_>>()
        };
        let a = run();
        assert_eq!(a, run(), "deterministic with a seed");
        let fired = a.iter().flatten().count();
        assert!((500..700).contains(&fired), "about 30% of 2000: {fired}");
        // Every kind and both phases occur.
        for k in &cfg.rules[0].faults {
            assert!(
                a.iter().flatten().any(|d| &d.fault == k),
                "{k:?} never chosen"
            );
        }
        assert!(a.iter().flatten().any(|d| d.phase == Phase::Before));
        assert!(a.iter().flatten().any(|d| d.phase == Phase::After));
        let other = Faults::new(FaultConfig {
            seed: Some(43),
            ..cfg.clone()
        })
        .expect("config");
        let b: Vec<_> = (0..2000)
            .map(|_| other.decide("GET", "/api/v2/deployments"))
            .collect();
        assert_ne!(a, b, "another seed, another sequence");
    }

    #[test]
    fn skip_and_limit() {
        let f = Faults::new(FaultConfig {
            seed: Some(7),
            rules: vec![rule("on=POST kinds=abort phase=after skip=3 limit=2")],
        })
        .expect("config");
        let got: Vec<bool> = (0..8)
            .map(|_| f.decide("POST", "/api/v2/deployments").is_some())
            .collect();
        assert_eq!(
            got,
            [false, false, false, true, true, false, false, false],
            "fires on requests 4 and 5 only"
        );
        // A new config resets the counters.
        f.set(FaultConfig {
            seed: Some(7),
            rules: vec![rule("on=POST kinds=drop limit=1")],
        })
        .expect("set");
        assert!(f.decide("POST", "/x").is_some());
        assert!(f.decide("POST", "/x").is_none());
    }

    #[test]
    fn config_json_round_trip_and_validation() {
        let json = r#"{"seed": 5, "rules": [{"method": "POST", "path_prefix": "/api/v2",
            "rate": 0.5, "phase": "before",
            "faults": [{"kind": "error", "status": 502},
                       {"kind": "rate_limit", "retry_after_seconds": 1},
                       {"kind": "latency", "ms": 10}, {"kind": "drop"}, {"kind": "abort"}]}]}"#;
        let cfg: FaultConfig = serde_json::from_str(json).expect("parse");
        assert!(cfg.validate().is_ok());
        assert_eq!(cfg.rules[0].faults.len(), 5);
        let back: FaultConfig =
            serde_json::from_str(&serde_json::to_string(&cfg).expect("ser")).expect("de");
        assert_eq!(back, cfg);
        let bad: FaultConfig = serde_json::from_str(
            r#"{"rules": [{"rate": 0.5, "faults": [{"kind": "error", "status": 200}]}]}"#,
        )
        .expect("parse");
        assert!(Faults::new(bad).is_err());
        assert!(serde_json::from_str::<FaultConfig>(r#"{"rulez": []}"#).is_err());
    }

    /// Serves a tiny router through the fault layer over a real socket.
    async fn serve_with(cfg: FaultConfig) -> (std::net::SocketAddr, std::sync::Arc<Faults>) {
        use axum::routing::get;
        let faults = std::sync::Arc::new(Faults::new(cfg).expect("config"));
        let f2 = faults.clone();
        let app = axum::Router::new()
            .route("/api/v1/x", get(|| async { "hello" }))
            .layer(axum::middleware::from_fn(
                move |req: Request, next: Next| {
                    let f = f2.clone();
                    async move {
                        match f.decide(req.method().as_str(), req.uri().path()) {
                            None => next.run(req).await,
                            Some(d) => match d.fault {
                                FaultKind::Latency { ms } => {
                                    tokio::time::sleep(Duration::from_millis(ms)).await;
                                    next.run(req).await
                                }
                                _ => injected(&d.fault, d.phase),
                            },
                        }
                    }
                },
            ));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        (addr, faults)
    }

    async fn raw_get(addr: std::net::SocketAddr) -> std::io::Result<Vec<u8>> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(addr).await?;
        s.write_all(b"GET /api/v1/x HTTP/1.1\r\nhost: x\r\n\r\n")
            .await?;
        let mut buf = vec![0u8; 4096];
        let mut out = Vec::new();
        loop {
            let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
                .await
                .map_err(|_| std::io::Error::other("timeout"))??;
            if n == 0 {
                return Ok(out);
            }
            out.extend_from_slice(&buf[..n]);
            if out.windows(5).any(|w| w == b"hello") || out.windows(5).any(|w| w == b"error") {
                return Ok(out);
            }
        }
    }

    #[tokio::test]
    async fn drop_closes_the_connection_without_a_response_byte() {
        let (addr, _) = serve_with(FaultConfig {
            seed: Some(1),
            rules: vec![rule("kinds=drop")],
        })
        .await;
        match raw_get(addr).await {
            Ok(bytes) => assert!(
                bytes.is_empty(),
                "expected no response byte, got {:?}",
                String::from_utf8_lossy(&bytes)
            ),
            Err(e) => assert_ne!(e.to_string(), "timeout", "the connection stayed open"),
        }
    }

    #[tokio::test]
    async fn errors_rate_limits_and_latency_over_http() {
        let (addr, faults) = serve_with(FaultConfig {
            seed: Some(1),
            rules: vec![rule("kinds=503")],
        })
        .await;
        let url = format!("http://{addr}/api/v1/x");
        let r = reqwest::get(&url).await.expect("request");
        assert_eq!(r.status(), 503);
        assert_eq!(r.headers()[FAULT_HEADER], "error");
        assert!(r.text().await.expect("body").contains("injected fault"));

        faults
            .set(FaultConfig {
                seed: Some(1),
                rules: vec![rule("kinds=429 retry_after=7")],
            })
            .expect("set");
        let r = reqwest::get(&url).await.expect("request");
        assert_eq!(r.status(), 429);
        assert_eq!(r.headers()["retry-after"], "7");

        faults
            .set(FaultConfig {
                seed: Some(1),
                rules: vec![rule("kinds=latency latency_ms=300")],
            })
            .expect("set");
        let t = std::time::Instant::now();
        let r = reqwest::get(&url).await.expect("request");
        assert_eq!(r.status(), 200);
        assert!(t.elapsed() >= Duration::from_millis(300));
        assert_eq!(r.text().await.expect("body"), "hello");

        faults.set(FaultConfig::default()).expect("off");
        assert_eq!(reqwest::get(&url).await.expect("request").status(), 200);
    }
}
