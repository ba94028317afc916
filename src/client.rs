//! The BentoCloud HTTP client: one async method per API endpoint, returning the wire types of
//! [`crate::api`] or a typed [`ClientError`].
//!
//! It owns the wire rules (auth header, JSON bodies, "only 200 is success", not-found detection,
//! percent-encoded paths), resilience (retries with capped exponential backoff and full jitter,
//! `Retry-After`, safe handling of creates whose outcome is unknown) and the provider-wide
//! request limit shared by every clone. It is not the rollout wait (`crate::wait`) and knows
//! nothing about Terraform. It never writes to stdout, and never logs the API token or the
//! bodies of the secrets endpoints.
//!
//! One file per job: `send` (one request: URL, auth, retries, the request budget, pages),
//! one per API area (`catalog`: user, organisation, clusters, instance types, bentos;
//! `deployments`; `secrets`; `pods`: the pods websocket), `error`, `retry`, `limit` and
//! `transport` (what a failure means), and `snapshot` (the refresh snapshot: a Terraform
//! refresh's reads answered from listings).
//!
//! One method, one request (retries aside): the deployment methods return documents as the
//! server sent them. The one extra read a caller may need, a deployment's bento manifest for
//! its entry service, is its own explicit step, [`Client::with_bento_manifest`] (one GET per
//! bento not yet cached), called only where the entry service is read.

mod catalog;
mod deployments;
mod error;
mod limit;
mod pods;
mod probe;
mod retry;
mod secrets;
mod send;
pub mod snapshot;
pub use probe::ProbeRoute;
#[cfg(test)]
pub(crate) mod stub;
mod transport;

pub use deployments::ListedDeployment;
pub use error::{ClientError, ErrorKind};

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use reqwest::header::{HeaderValue, CONTENT_LENGTH, CONTENT_TYPE, RETRY_AFTER};
use reqwest::Method;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::value::RawValue;
use tokio::time::Instant;
use url::Url;

use crate::api;
use crate::rules::BentoTag;
use limit::Limiter;
use retry::{RetryPolicy, StatusRetry};

/// BentoCloud's public endpoint (the official client's default).
pub const DEFAULT_ENDPOINT: &str = "https://cloud.bentoml.com";

/// The header carrying the API token on every request.
pub const TOKEN_HEADER: &str = "X-YATAI-API-TOKEN";

/// Items requested per page by the list methods that fetch every page.
pub const PAGE_SIZE: u64 = 500;
/// Pages of a list fetched at once once the total is known.
const PARALLEL_PAGES: usize = 2;

const LOG: &str = "bentocloud::client";

/// How to build a [`Client`]. [`ClientConfig::new`] fills in the defaults.
#[derive(Clone)]
pub struct ClientConfig {
    /// The origin, e.g. `https://myorg.cloud.bentoml.com` (a trailing slash is fine).
    pub endpoint: Url,
    pub api_token: String,
    pub user_agent: String,
    /// Per request, including reading the body. Default 60 s.
    pub request_timeout: Duration,
    /// Requests in flight at once, across every clone of the client. Default 16.
    pub max_concurrent_requests: usize,
    /// Requests started per second, across every clone (0 or infinity: no limit). Default 500.
    pub requests_per_second: f64,
    /// Retries after the first attempt. Default 8.
    pub max_retries: u32,
    /// Cap of one backoff delay and of an honoured `Retry-After`. Default 30 s.
    pub max_retry_delay: Duration,
}

impl ClientConfig {
    pub fn new(endpoint: Url, api_token: impl Into<String>) -> ClientConfig {
        ClientConfig {
            endpoint,
            api_token: api_token.into(),
            user_agent: format!(
                "terraform-provider-bentocloud/{}",
                env!("CARGO_PKG_VERSION")
            ),
            request_timeout: Duration::from_secs(60),
            max_concurrent_requests: 16,
            requests_per_second: 500.0,
            max_retries: 8,
            max_retry_delay: Duration::from_secs(30),
        }
    }
}

impl fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientConfig")
            .field("endpoint", &self.endpoint.as_str())
            .field("api_token", &"<redacted>")
            .field("user_agent", &self.user_agent)
            .field("request_timeout", &self.request_timeout)
            .field("max_concurrent_requests", &self.max_concurrent_requests)
            .field("requests_per_second", &self.requests_per_second)
            .field("max_retries", &self.max_retries)
            .field("max_retry_delay", &self.max_retry_delay)
            .finish()
    }
}

/// Filters of [`Client::list_deployments`].
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ListQuery {
    /// One cluster (`cluster=X`); `None` lists every cluster (`all=true`).
    pub cluster: Option<String>,
    /// Free-text name search.
    pub search: Option<String>,
    /// Structured query tokens (`key:value`, space-separated), e.g. `is:dev`.
    pub q: Option<String>,
    /// Sent as `label:k=v` tokens appended to `q` (the API has no label parameter).
    pub labels: BTreeMap<String, String>,
}

impl ListQuery {
    /// The `q` parameter: the given tokens followed by one `label:k=v` token per label.
    pub fn q_param(&self) -> String {
        let mut tokens: Vec<String> = Vec::new();
        if let Some(q) = self.q.as_deref().map(str::trim).filter(|q| !q.is_empty()) {
            tokens.push(q.to_string());
        }
        tokens.extend(self.labels.iter().map(|(k, v)| format!("label:{k}={v}")));
        tokens.join(" ")
    }

    fn cluster(&self) -> Option<&str> {
        self.cluster.as_deref().filter(|c| !c.is_empty())
    }
}

/// The BentoCloud API client. Cheap to clone; clones share the connection pool and the
/// request limit.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    endpoint: Url,
    token: HeaderValue,
    /// Kept only to scrub it from any message that might echo it.
    token_text: String,
    limiter: Limiter,
    policy: RetryPolicy,
    request_timeout: Duration,
    /// Some response (any status) came back from the endpoint: from then on a refused
    /// connection or a failed DNS lookup is a restart or a hiccup, retried like any transport
    /// error; before, it is a wrong endpoint and fails at once.
    answered: AtomicBool,
    /// Attempts started (each try of each request), for the retry tests.
    attempts: AtomicU64,
    /// Bento manifests by `repo:version`, see [`Client::with_bento_manifest`] (the only
    /// reader and writer: a bento version does not change once pushed).
    manifests: Mutex<HashMap<String, Option<api::BentoManifest>>>,
    /// Deployments (cluster, name) this client asked to create, update, terminate or delete,
    /// see [`Client::has_written`].
    written: Mutex<std::collections::HashSet<(String, String)>>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("endpoint", &self.inner.endpoint.as_str())
            .finish_non_exhaustive()
    }
}

fn in_cluster(cluster: &str) -> String {
    if cluster.is_empty() {
        "in the default cluster".to_string()
    } else {
        format!("in cluster {cluster:?}")
    }
}

/// `read`, with a not-found (see [`ClientError::is_not_found`]) as `Ok(None)`.
fn found<T>(read: Result<T, ClientError>) -> Result<Option<T>, ClientError> {
    match read {
        Ok(t) => Ok(Some(t)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e),
    }
}

fn config_error(message: impl Into<String>) -> ClientError {
    ClientError::new(
        "configure the BentoCloud client",
        ErrorKind::Config,
        None,
        message,
    )
}

impl Client {
    pub fn new(cfg: ClientConfig) -> Result<Client, ClientError> {
        let endpoint = cfg.endpoint;
        if !matches!(endpoint.scheme(), "http" | "https") || endpoint.cannot_be_a_base() {
            return Err(config_error(format!(
                "endpoint {:?} must be an http:// or https:// URL such as \"{DEFAULT_ENDPOINT}\"",
                endpoint.as_str()
            )));
        }
        if endpoint.host_str().filter(|h| !h.is_empty()).is_none() {
            return Err(config_error(format!(
                "endpoint {:?} has no host",
                endpoint.as_str()
            )));
        }
        if endpoint.query().is_some() || endpoint.fragment().is_some() {
            return Err(config_error(format!(
                "endpoint {:?} must not have a query or fragment: give only the origin, e.g. \"{DEFAULT_ENDPOINT}\"",
                endpoint.as_str()
            )));
        }
        let token_text = cfg.api_token.trim().to_string();
        if token_text.is_empty() {
            return Err(config_error("the API token is empty"));
        }
        let mut token = HeaderValue::from_str(&token_text).map_err(|_| {
            config_error("the API token contains characters not allowed in an HTTP header")
        })?;
        token.set_sensitive(true);
        if cfg.max_concurrent_requests == 0 {
            return Err(config_error("max_concurrent_requests must be at least 1"));
        }
        if cfg.requests_per_second.is_nan() || cfg.requests_per_second < 0.0 {
            return Err(config_error(
                "requests_per_second must be positive (0 means no limit)",
            ));
        }
        if cfg.request_timeout.is_zero() {
            return Err(config_error("request_timeout must be greater than zero"));
        }
        // TLS trust, like Go providers (crypto/x509): reqwest's `rustls-tls-native-roots`
        // feature loads the operating system's store through rustls-native-certs 0.8, which
        // reads SSL_CERT_FILE (a PEM bundle) and SSL_CERT_DIR (`:`-separated directories)
        // instead of the platform store when either is set (checked in rustls-native-certs
        // 0.8.5 `load_native_certs` / `CertPaths::from_env`); `rustls-tls-webpki-roots` adds
        // the public roots on top, so a bundle holding only a corporate CA does not break
        // public endpoints. Proxies: reqwest reads HTTPS_PROXY / HTTP_PROXY / ALL_PROXY /
        // NO_PROXY from the environment unless `.no_proxy()` is called, so it is not.
        let http = reqwest::Client::builder()
            .user_agent(cfg.user_agent)
            .timeout(cfg.request_timeout)
            .connect_timeout(cfg.request_timeout.min(Duration::from_secs(30)))
            .build()
            .map_err(|e| config_error(format!("cannot build the HTTP client: {e}")))?;
        Ok(Client {
            inner: Arc::new(Inner {
                http,
                endpoint,
                token,
                token_text,
                limiter: Limiter::new(cfg.max_concurrent_requests, cfg.requests_per_second),
                policy: RetryPolicy {
                    max_retries: cfg.max_retries,
                    max_delay: cfg.max_retry_delay,
                },
                request_timeout: cfg.request_timeout,
                answered: AtomicBool::new(false),
                attempts: AtomicU64::new(0),
                manifests: Mutex::new(HashMap::new()),
                written: Mutex::new(Default::default()),
            }),
        })
    }

    pub fn endpoint(&self) -> &Url {
        &self.inner.endpoint
    }

    /// Attempts sent so far by this client and its clones (retries included).
    #[cfg(test)]
    pub(crate) fn attempts(&self) -> u64 {
        self.inner.attempts.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests;
