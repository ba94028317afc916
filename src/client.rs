//! The BentoCloud HTTP client: one async method per API endpoint, returning the wire types of
//! [`crate::api`] or a typed [`ClientError`].
//!
//! It owns the wire rules (auth header, JSON bodies, "only 200 is success", not-found detection,
//! percent-encoded paths), resilience (retries with capped exponential backoff and full jitter,
//! `Retry-After`, safe handling of creates whose outcome is unknown) and the provider-wide
//! request limit shared by every clone. It is not the rollout wait (`crate::wait`) and knows
//! nothing about Terraform. It never writes to stdout, and never logs the API token or the
//! bodies of the secrets endpoints.

mod error;
mod limit;
mod retry;
pub mod snapshot;
#[cfg(test)]
pub(crate) mod stub;
mod transport;

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
    /// Bento manifests by `repo:version`, see [`Client::with_bento_manifest`].
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

/// One request as the retry loop sees it.
struct Call {
    op: String,
    method: Method,
    url: Url,
    body: Option<Vec<u8>>,
    /// Repeating it cannot create a second object (GET, PUT, DELETE, terminate).
    idempotent: bool,
    /// Its bodies may hold secret values: never echo them in decode errors.
    sensitive: bool,
}

/// A failed [`Call`] after the retry loop.
struct Failure {
    err: ClientError,
    /// The last attempt may have been applied by the server (sent, then timeout, reset,
    /// 500/502/504).
    maybe_applied: bool,
    /// Some earlier attempt may have been applied (so a 404 on a retried delete means done).
    earlier_maybe_applied: bool,
}

/// What one attempt produced.
enum Attempt {
    Ok(Vec<u8>),
    Status {
        err: ClientError,
        retry: StatusRetry,
        retry_after: Option<Duration>,
    },
    Transport {
        err: ClientError,
        sent: bool,
    },
}

/// The main target of `d`, as [`api::Deployment::main_target`] picks it: `main`, else the first.
fn main_target_mut(d: &mut api::Deployment) -> Option<&mut api::Target> {
    let targets = &mut d.latest_revision.as_mut()?.targets;
    let i = targets
        .iter()
        .position(|t| t.as_ref().is_some_and(|t| t.meta.name == "main"))
        .or_else(|| targets.iter().position(Option::is_some))?;
    targets.get_mut(i)?.as_mut()
}

/// One item of a deployments list page as the server sent it: its name and cluster, and its
/// JSON, parsed into an [`api::Deployment`] only when asked for ([`Self::deployment`]). The
/// items of a page share the page's body, so a listing held in memory costs about its size on
/// the wire instead of that of parsed documents (about twice as much), and only the items
/// actually read are ever parsed.
#[derive(Clone)]
pub struct ListedDeployment {
    pub name: String,
    pub cluster: String,
    page: Arc<Vec<u8>>,
    span: std::ops::Range<usize>,
}

impl ListedDeployment {
    /// The item's JSON, as the server sent it.
    pub fn json(&self) -> &[u8] {
        self.page.get(self.span.clone()).unwrap_or_default()
    }

    /// The item as a deployment document (without the bento manifest lookup of
    /// [`Client::get_deployment`]; see `Client::with_bento_manifest`).
    pub fn deployment(&self) -> Result<api::Deployment, serde_json::Error> {
        serde_json::from_slice(self.json())
    }
}

impl fmt::Debug for ListedDeployment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ListedDeployment")
            .field("name", &self.name)
            .field("cluster", &self.cluster)
            .field("bytes", &self.span.len())
            .finish()
    }
}

/// A list page with its items left unparsed (borrowed from the body).
#[derive(Deserialize)]
struct RawList<'a> {
    #[serde(default)]
    start: u64,
    #[serde(default)]
    count: u64,
    #[serde(default)]
    total: u64,
    #[serde(borrow, default)]
    items: Vec<&'a RawValue>,
}

/// What a listing is indexed by: the deployment's name and its cluster's (the keys
/// [`api::Deployment`] reads them from, with the same defaults).
#[derive(Deserialize, Default)]
#[serde(default)]
struct ListedKey {
    name: String,
    cluster: ListedCluster,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ListedCluster {
    name: String,
}

/// The body of `resp`, read chunk by chunk into one buffer sized from `Content-Length`, so a
/// large body (a list page) is held once: `Response::bytes` gathers the chunks and then copies
/// them into one buffer, which was copied once more into a `Vec`.
async fn read_body(mut resp: reqwest::Response) -> Result<Vec<u8>, reqwest::Error> {
    /// A `Content-Length` is trusted this far for the first allocation.
    const PREALLOCATE_AT_MOST: u64 = 16 << 20;
    let hint = resp.content_length().unwrap_or(0).min(PREALLOCATE_AT_MOST);
    let mut body = Vec::with_capacity(usize::try_from(hint).unwrap_or(0));
    while let Some(chunk) = resp.chunk().await? {
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

fn in_cluster(cluster: &str) -> String {
    if cluster.is_empty() {
        "in the default cluster".to_string()
    } else {
        format!("in cluster {cluster:?}")
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

    // ----- auth and organisation -----

    /// `GET /api/v1/auth/current`: the token's user (validates the token).
    pub async fn current_user(&self) -> Result<api::User, ClientError> {
        let url = self.url(&["api", "v1", "auth", "current"], &[])?;
        self.run(self.get("get the current user", url)).await
    }

    /// `GET /api/v1/current_org`.
    pub async fn current_org(&self) -> Result<api::Organization, ClientError> {
        let url = self.url(&["api", "v1", "current_org"], &[])?;
        self.run(self.get("get the current organization", url))
            .await
    }

    // ----- clusters, instance types, bentos -----

    /// `GET /api/v1/clusters`, every page.
    pub async fn list_clusters(&self) -> Result<Vec<api::Cluster>, ClientError> {
        self.collect_pages(|start, count| async move {
            let (s, c) = (start.to_string(), count.to_string());
            let url = self.url(
                &["api", "v1", "clusters"],
                &[("start", s.as_str()), ("count", c.as_str())],
            )?;
            self.run(self.get("list clusters", url)).await
        })
        .await
    }

    /// `GET /api/v1/clusters/{name}`.
    pub async fn get_cluster(&self, name: &str) -> Result<api::Cluster, ClientError> {
        let url = self.url(&["api", "v1", "clusters", name], &[])?;
        self.run(self.get(format!("get cluster {name:?}"), url))
            .await
    }

    /// `GET /api/v1/instance_types?cluster=X` (a bare JSON array).
    pub async fn list_instance_types(
        &self,
        cluster: &str,
    ) -> Result<Vec<api::InstanceType>, ClientError> {
        let url = self.url(&["api", "v1", "instance_types"], &[("cluster", cluster)])?;
        let op = format!("list instance types {}", in_cluster(cluster));
        self.run(self.get(op, url)).await
    }

    /// `GET /api/v1/bento_repositories/{repo}/bentos/{version}`.
    pub async fn get_bento(&self, repo: &str, version: &str) -> Result<api::Bento, ClientError> {
        let url = self.url(
            &["api", "v1", "bento_repositories", repo, "bentos", version],
            &[],
        )?;
        self.run(self.get(format!("get bento \"{repo}:{version}\""), url))
            .await
    }

    /// `GET /api/v1/bento_repositories/{repo}/bentos?count=1`: the newest bento of a repository.
    /// An empty repository is `NotFound`.
    pub async fn latest_bento(&self, repo: &str) -> Result<api::Bento, ClientError> {
        let op = format!("get the latest bento of repository {repo:?}");
        let url = self.url(
            &["api", "v1", "bento_repositories", repo, "bentos"],
            &[("count", "1")],
        )?;
        let page: api::ListResponse<api::Bento> = self.run(self.get(op.clone(), url)).await?;
        page.items.into_iter().next().ok_or_else(|| {
            ClientError::new(
                op,
                ErrorKind::NotFound,
                None,
                format!("repository {repo:?} has no bentos: push one with `bentoml push`"),
            )
        })
    }

    /// The bento a tag names, as the official client resolves one (bento.py:565-584): the
    /// given version, else the repository's newest ([`Client::latest_bento`]).
    pub async fn resolve_bento(
        &self,
        repo: &str,
        version: Option<&str>,
    ) -> Result<api::Bento, ClientError> {
        match version {
            Some(v) => self.get_bento(repo, v).await,
            None => self.latest_bento(repo).await,
        }
    }

    // ----- deployments -----

    /// `POST /api/v2/deployments?cluster=X`.
    ///
    /// If the outcome of an attempt is unknown (timeout or connection error after sending,
    /// 500/502/504), the create is not blindly repeated: the deployment is looked up by name and
    /// returned if it exists (its bento must match the request), else the POST is repeated. A
    /// repeated POST answered "already exists" also returns the existing deployment.
    pub async fn create_deployment(
        &self,
        cluster: &str,
        req: &api::CreateDeploymentRequest,
    ) -> Result<api::Deployment, ClientError> {
        let name = req.name.clone().filter(|n| !n.is_empty());
        if let Some(n) = &name {
            self.note_write(cluster, n);
        }
        let op = match &name {
            Some(n) => format!("create deployment {n:?} {}", in_cluster(cluster)),
            None => format!("create deployment {}", in_cluster(cluster)),
        };
        let url = self.url(&["api", "v2", "deployments"], &[("cluster", cluster)])?;
        let call = self.with_body(Method::POST, op.clone(), url, req, false, false)?;
        let Some(name) = name else {
            // Without a name there is nothing to look up: never repeat an unknown outcome.
            let d = self.run(call).await?;
            return Ok(self.with_bento_manifest(d).await);
        };
        let want_bento = req.spec.bento.clone();
        let d = self.create_reconciled(call, || {
            let (name, op, want_bento) = (name.clone(), op.clone(), want_bento.clone());
            async move {
                let found = self.get_deployment_opt(cluster, &name).await?;
                match found {
                    Some(d) if !bento_matches(&want_bento, d.bento_tag().as_deref()) => {
                        Err(ClientError::new(
                            op,
                            ErrorKind::Conflict,
                            None,
                            format!(
                                "a deployment named {name:?} exists but runs bento {:?}, not {want_bento:?}: it was not created by this request; import it or choose another name",
                                d.bento_tag().unwrap_or_default()
                            ),
                        ))
                    }
                    other => Ok(other),
                }
            }
        })
        .await?;
        // `cluster` may be empty (the default cluster): note the one the server chose too.
        self.note_write(&d.cluster.meta.name, &d.meta.name);
        Ok(self.with_bento_manifest(d).await)
    }

    /// Whether this client asked to write `cluster/name` (create, update, terminate, delete),
    /// whatever the outcome: a listing taken before may not show that write (see
    /// [`snapshot`]).
    pub fn has_written(&self, cluster: &str, name: &str) -> bool {
        self.inner
            .written
            .lock()
            .map(|w| w.contains(&(cluster.to_string(), name.to_string())))
            .unwrap_or(true)
    }

    fn note_write(&self, cluster: &str, name: &str) {
        if let Ok(mut w) = self.inner.written.lock() {
            w.insert((cluster.to_string(), name.to_string()));
        }
    }

    /// `GET /api/v2/deployments/{name}?cluster=X`.
    pub async fn get_deployment(
        &self,
        cluster: &str,
        name: &str,
    ) -> Result<api::Deployment, ClientError> {
        let url = self.url(&["api", "v2", "deployments", name], &[("cluster", cluster)])?;
        let op = format!("get deployment {name:?} {}", in_cluster(cluster));
        let d = self.run(self.get(op, url)).await?;
        Ok(self.with_bento_manifest(d).await)
    }

    /// Like [`Client::get_deployment`], with not-found (404, or 400 "record not found") as
    /// `Ok(None)`.
    pub async fn get_deployment_opt(
        &self,
        cluster: &str,
        name: &str,
    ) -> Result<Option<api::Deployment>, ClientError> {
        match self.get_deployment(cluster, name).await {
            Ok(d) => Ok(Some(d)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `PUT /api/v2/deployments/{name}?cluster=X` with the whole desired configuration.
    pub async fn update_deployment(
        &self,
        cluster: &str,
        name: &str,
        req: &api::UpdateDeploymentRequest,
    ) -> Result<api::Deployment, ClientError> {
        let url = self.url(&["api", "v2", "deployments", name], &[("cluster", cluster)])?;
        let op = format!("update deployment {name:?} {}", in_cluster(cluster));
        self.note_write(cluster, name);
        let call = self.with_body(Method::PUT, op, url, req, true, false)?;
        let d = self.run(call).await?;
        Ok(self.with_bento_manifest(d).await)
    }

    /// `PUT /api/v2/deployments/{name}/void_update?cluster=X` (no body): a new revision of the
    /// deployment's current configuration, rolled out like any other (client.py:632-640).
    /// Retried like the other calls without a body when its outcome is unknown: a repeat is one
    /// more redeploy of the same configuration, and the caller waits for the revision the
    /// answered attempt names, which is then the latest.
    pub async fn redeploy_deployment(
        &self,
        cluster: &str,
        name: &str,
    ) -> Result<api::Deployment, ClientError> {
        let url = self.url(
            &["api", "v2", "deployments", name, "void_update"],
            &[("cluster", cluster)],
        )?;
        let op = format!("redeploy deployment {name:?} {}", in_cluster(cluster));
        self.note_write(cluster, name);
        let d = self.run(self.empty(Method::PUT, op, url)).await?;
        Ok(self.with_bento_manifest(d).await)
    }

    /// `POST /api/v2/deployments/{name}/terminate?cluster=X` (no body). Idempotent.
    pub async fn terminate_deployment(
        &self,
        cluster: &str,
        name: &str,
    ) -> Result<api::Deployment, ClientError> {
        let url = self.url(
            &["api", "v2", "deployments", name, "terminate"],
            &[("cluster", cluster)],
        )?;
        let op = format!("terminate deployment {name:?} {}", in_cluster(cluster));
        self.note_write(cluster, name);
        self.run(self.empty(Method::POST, op, url)).await
    }

    /// `DELETE /api/v2/deployments/{name}?cluster=X` (no body). The server may require the
    /// deployment to be terminated first. A not-found after a retried attempt whose outcome was
    /// unknown is returned as `NotFound`: callers deleting treat it as "already gone".
    pub async fn delete_deployment(
        &self,
        cluster: &str,
        name: &str,
    ) -> Result<api::Deployment, ClientError> {
        let url = self.url(&["api", "v2", "deployments", name], &[("cluster", cluster)])?;
        let op = format!("delete deployment {name:?} {}", in_cluster(cluster));
        self.note_write(cluster, name);
        self.run(self.empty(Method::DELETE, op, url)).await
    }

    /// One page of `GET /api/v2/deployments`.
    pub async fn list_deployments_page(
        &self,
        q: &ListQuery,
        start: u64,
        count: u64,
    ) -> Result<api::ListResponse<api::Deployment>, ClientError> {
        let call = self.list_deployments_call(q, start, count)?;
        let mut page: api::ListResponse<api::Deployment> = self.run(call).await?;
        for d in page.items.iter_mut() {
            *d = self.with_bento_manifest(std::mem::take(d)).await;
        }
        Ok(page)
    }

    /// One page of `GET /api/v2/deployments`, its items left as the JSON the server sent
    /// (see [`ListedDeployment`]). A page whose items lack a name or a cluster where a
    /// [`api::Deployment`] has them fails as [`Self::list_deployments_page`] would.
    pub async fn list_deployments_page_listed(
        &self,
        q: &ListQuery,
        start: u64,
        count: u64,
    ) -> Result<api::ListResponse<ListedDeployment>, ClientError> {
        let call = self.list_deployments_call(q, start, count)?;
        let body = Arc::new(self.send(&call).await.map_err(|f| f.err)?);
        let page: RawList<'_> = self.decode(&call, &body)?;
        let mut items = Vec::with_capacity(page.items.len());
        for raw in page.items {
            let key: ListedKey = self.decode(&call, raw.get().as_bytes())?;
            // `raw` borrows from `body`: its offset there, without copying it out.
            let at = raw.get().as_ptr() as usize - body.as_ptr() as usize;
            items.push(ListedDeployment {
                name: key.name,
                cluster: key.cluster.name,
                page: body.clone(),
                span: at..at + raw.get().len(),
            });
        }
        Ok(api::ListResponse {
            start: page.start,
            count: page.count,
            total: page.total,
            items,
        })
    }

    fn list_deployments_call(
        &self,
        q: &ListQuery,
        start: u64,
        count: u64,
    ) -> Result<Call, ClientError> {
        let cluster = q.cluster().unwrap_or("");
        let all = if q.cluster().is_some() { "" } else { "true" };
        let (start_s, count_s, q_s) = (start.to_string(), count.to_string(), q.q_param());
        let search = q.search.as_deref().unwrap_or("");
        let url = self.url(
            &["api", "v2", "deployments"],
            &[
                ("cluster", cluster),
                ("all", all),
                ("count", &count_s),
                ("q", &q_s),
                ("search", search),
                ("start", &start_s),
            ],
        )?;
        let op = match q.cluster() {
            Some(c) => format!("list deployments {}", in_cluster(c)),
            None => "list deployments in all clusters".to_string(),
        };
        Ok(self.get(op, url))
    }

    /// `d` with the main target's `bento.manifest` replaced by the bento's own manifest, from
    /// `GET /api/v1/bento_repositories/{repo}/bentos/{version}`, when the main target configures
    /// more than one service.
    ///
    /// Why: the entry service of a multi-service bento decides which service the top-level
    /// settings (instance type, scaling, strategy) belong to. The official client reads it from
    /// the bento endpoint (`ensure_bento(...).entry_service`, cdep.py:267-278; API doc §5.2
    /// step 4), never from the deployment document, whose `bento.manifest` is optional in the
    /// client's schema (§3.3) and may be absent. With a single service there is nothing to
    /// choose, so no request is made. A bento version does not change once pushed, so each is
    /// asked once per client. If the lookup fails, `d` is returned as it came (the caller falls
    /// back to the document's manifest, then to the official client's `apiserver` default).
    async fn with_bento_manifest(&self, mut d: api::Deployment) -> api::Deployment {
        let Some(target) = main_target_mut(&mut d) else {
            return d;
        };
        let multi = target.config.as_ref().is_some_and(|c| c.services.len() > 1);
        let Some(bento) = target.bento.as_mut().filter(|_| multi) else {
            return d;
        };
        let (repo, version) = (bento.repository.meta.name.clone(), bento.version.clone());
        let tag = format!("{repo}:{version}");
        let cached = self
            .inner
            .manifests
            .lock()
            .ok()
            .and_then(|m| m.get(&tag).cloned());
        let manifest = match cached {
            Some(m) => m,
            None => match self.get_bento(&repo, &version).await {
                Ok(b) => {
                    if let Ok(mut cache) = self.inner.manifests.lock() {
                        cache.insert(tag, b.manifest.clone());
                    }
                    b.manifest
                }
                Err(e) => {
                    tracing::debug!(target: LOG, "cannot read the manifest of bento {tag:?}: {e}");
                    return d;
                }
            },
        };
        if manifest.is_some() {
            bento.manifest = manifest;
        }
        d
    }

    /// Every deployment matching `q`, page by page ([`PAGE_SIZE`] per page).
    pub async fn list_deployments(
        &self,
        q: &ListQuery,
    ) -> Result<Vec<api::Deployment>, ClientError> {
        self.collect_pages(|start, count| self.list_deployments_page(q, start, count))
            .await
    }

    /// Every page of [`Self::list_deployments`], each deployment turned into `U` as its page
    /// arrives (a 10,000-deployment fleet never sits in memory as full documents).
    pub async fn list_deployments_map<U>(
        &self,
        q: &ListQuery,
        map: impl FnMut(api::Deployment) -> U,
    ) -> Result<Vec<U>, ClientError> {
        self.collect_pages_map(
            |start, count| self.list_deployments_page(q, start, count),
            map,
        )
        .await
    }

    /// Every deployment matching `q` as [`ListedDeployment`]s (the JSON of each, parsed when
    /// asked for), but after the first page `proceed(total)` decides whether the rest is worth
    /// fetching: `None` when it declined (one request spent).
    pub async fn list_deployments_listed_if(
        &self,
        q: &ListQuery,
        proceed: impl FnOnce(u64) -> bool,
    ) -> Result<Option<Vec<ListedDeployment>>, ClientError> {
        self.walk_pages(
            |start, count| self.list_deployments_page_listed(q, start, count),
            |d| d,
            proceed,
        )
        .await
    }

    // ----- secrets (bodies never logged) -----

    /// `GET /api/v1/org_secrets?all=true`, every page.
    pub async fn list_secrets(&self) -> Result<Vec<api::Secret>, ClientError> {
        self.collect_pages(|start, count| async move {
            let (s, c) = (start.to_string(), count.to_string());
            let url = self.url(
                &["api", "v1", "org_secrets"],
                &[
                    ("count", c.as_str()),
                    ("q", ""),
                    ("search", ""),
                    ("start", s.as_str()),
                    ("all", "true"),
                ],
            )?;
            let mut call = self.get("list secrets", url);
            call.sensitive = true;
            self.run(call).await
        })
        .await
    }

    /// `GET /api/v1/org_secrets/{name}[?cluster=X]` (the parameter only when `cluster` is not
    /// empty, as the official client sends it, client.py:545-551).
    pub async fn get_secret(&self, cluster: &str, name: &str) -> Result<api::Secret, ClientError> {
        let url = self.url(&["api", "v1", "org_secrets", name], &secret_query(cluster))?;
        let mut call = self.get(format!("get secret {name:?}"), url);
        call.sensitive = true;
        self.run(call).await
    }

    /// Like [`Client::get_secret`], with not-found as `Ok(None)`.
    pub async fn get_secret_opt(
        &self,
        cluster: &str,
        name: &str,
    ) -> Result<Option<api::Secret>, ClientError> {
        match self.get_secret(cluster, name).await {
            Ok(s) => Ok(Some(s)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `POST /api/v1/org_secrets[?cluster=X]`, with the same unknown-outcome handling as
    /// [`Client::create_deployment`] (looked up by name). The body is never logged.
    pub async fn create_secret(
        &self,
        cluster: &str,
        req: &api::CreateSecretRequest,
    ) -> Result<api::Secret, ClientError> {
        let op = format!("create secret {:?}", req.name);
        let url = self.url(&["api", "v1", "org_secrets"], &secret_query(cluster))?;
        let call = self.with_body(Method::POST, op, url, req, false, true)?;
        let name = req.name.clone();
        self.create_reconciled(call, || {
            let name = name.clone();
            async move { self.get_secret_opt(cluster, &name).await }
        })
        .await
    }

    /// `PATCH /api/v1/org_secrets/{name}[?cluster=X]` with the whole content (it replaces the
    /// stored content, API doc §10). Repeatable: the same body gives the same content. The body
    /// is never logged.
    pub async fn update_secret(
        &self,
        cluster: &str,
        name: &str,
        req: &api::UpdateSecretRequest,
    ) -> Result<api::Secret, ClientError> {
        let url = self.url(&["api", "v1", "org_secrets", name], &secret_query(cluster))?;
        let op = format!("update secret {name:?}");
        let call = self.with_body(Method::PATCH, op, url, req, true, true)?;
        self.run(call).await
    }

    /// `DELETE /api/v1/org_secrets/{name}[?cluster=X]`. A not-found after an earlier attempt
    /// that may have deleted it counts as success.
    pub async fn delete_secret(&self, cluster: &str, name: &str) -> Result<(), ClientError> {
        let url = self.url(&["api", "v1", "org_secrets", name], &secret_query(cluster))?;
        let mut call = self.empty(Method::DELETE, format!("delete secret {name:?}"), url);
        call.sensitive = true;
        match self.send(&call).await {
            Ok(_) => Ok(()),
            Err(f) if f.err.is_not_found() && f.earlier_maybe_applied => Ok(()),
            Err(f) => Err(f.err),
        }
    }

    // ----- pods -----

    /// The pods of a deployment: the first frame of the pods stream the official client reads
    /// (`ws(s)://HOST/ws/v2/deployments/{name}/pods?organization_name=&cluster=`,
    /// client.py:747-774), then the stream is closed. The websocket handshake goes through
    /// reqwest's HTTP/1 upgrade, so it uses the same TLS trust, proxy and token as every other
    /// call. One attempt, no retries: callers use it for diagnostics.
    pub async fn deployment_pods(
        &self,
        cluster: &str,
        name: &str,
    ) -> Result<Vec<api::KubePod>, ClientError> {
        use futures::StreamExt;
        use tokio_tungstenite::tungstenite::{protocol::Role, Message};

        let what = format!("list the pods of deployment {name:?}");
        let url = self.url(
            &["ws", "v2", "deployments", name, "pods"],
            &[("organization_name", ""), ("cluster", cluster)],
        )?;
        let transport = |e: &dyn std::fmt::Display| {
            ClientError::new(what.clone(), ErrorKind::Transport, None, e.to_string())
        };
        let key = tokio_tungstenite::tungstenite::handshake::client::generate_key();
        let resp = self
            .inner
            .http
            .get(url)
            .header(TOKEN_HEADER, self.inner.token.clone())
            .header(reqwest::header::CONNECTION, "Upgrade")
            .header(reqwest::header::UPGRADE, "websocket")
            .header(reqwest::header::SEC_WEBSOCKET_VERSION, "13")
            .header(reqwest::header::SEC_WEBSOCKET_KEY, key)
            .send()
            .await
            .map_err(|e| transport(&e))?;
        let status = resp.status().as_u16();
        if status != 101 {
            let body = resp.bytes().await.unwrap_or_default();
            return Err(ClientError::from_response(what, status, &body));
        }
        let upgraded = resp.upgrade().await.map_err(|e| transport(&e))?;
        let mut ws =
            tokio_tungstenite::WebSocketStream::from_raw_socket(upgraded, Role::Client, None).await;
        let first = tokio::time::timeout(self.inner.request_timeout, async {
            loop {
                match ws.next().await {
                    Some(Ok(Message::Text(t))) => return Ok(t),
                    Some(Ok(Message::Close(_))) | None => {
                        return Err("the stream closed before sending the pods".to_string())
                    }
                    Some(Ok(_)) => continue,
                    Some(Err(e)) => return Err(e.to_string()),
                }
            }
        })
        .await;
        let _ = ws.close(None).await;
        let text = match first {
            Ok(Ok(t)) => t,
            Ok(Err(e)) => return Err(transport(&e)),
            Err(_) => return Err(transport(&"no pods frame within the request timeout")),
        };
        let frame: api::PodsFrame = serde_json::from_str(&text)
            .map_err(|e| ClientError::new(what.clone(), ErrorKind::Decode, None, e.to_string()))?;
        if frame.kind != "success" {
            return Err(ClientError::new(
                what,
                ErrorKind::Unexpected,
                None,
                format!("the pods stream said {}: {}", frame.kind, frame.message),
            ));
        }
        Ok(frame.payload.unwrap_or_default())
    }

    // ----- plumbing -----

    /// `endpoint` + percent-encoded `segments` + `query` pairs (form-encoded, in order).
    fn url(&self, segments: &[&str], query: &[(&str, &str)]) -> Result<Url, ClientError> {
        let mut url = self.inner.endpoint.clone();
        url.path_segments_mut()
            .map_err(|_| config_error("the endpoint cannot take a path"))?
            .pop_if_empty()
            .extend(segments);
        if !query.is_empty() {
            let mut pairs = url.query_pairs_mut();
            for (k, v) in query {
                pairs.append_pair(k, v);
            }
        }
        Ok(url)
    }

    fn get(&self, op: impl Into<String>, url: Url) -> Call {
        Call {
            op: op.into(),
            method: Method::GET,
            url,
            body: None,
            idempotent: true,
            sensitive: false,
        }
    }

    /// A bodiless POST/DELETE (terminate, delete): idempotent.
    fn empty(&self, method: Method, op: String, url: Url) -> Call {
        Call {
            op,
            method,
            url,
            body: None,
            idempotent: true,
            sensitive: false,
        }
    }

    fn with_body(
        &self,
        method: Method,
        op: String,
        url: Url,
        body: &impl serde::Serialize,
        idempotent: bool,
        sensitive: bool,
    ) -> Result<Call, ClientError> {
        let body = serde_json::to_vec(body).map_err(|e| {
            ClientError::new(
                op.clone(),
                ErrorKind::Decode,
                None,
                format!("cannot encode the request body: {e}"),
            )
        })?;
        Ok(Call {
            op,
            method,
            url,
            body: Some(body),
            idempotent,
            sensitive,
        })
    }

    async fn run<T: DeserializeOwned>(&self, call: Call) -> Result<T, ClientError> {
        let bytes = self.send(&call).await.map_err(|f| f.err)?;
        self.decode(&call, &bytes)
    }

    fn decode<'de, T: Deserialize<'de>>(
        &self,
        call: &Call,
        bytes: &'de [u8],
    ) -> Result<T, ClientError> {
        serde_json::from_slice(bytes).map_err(|e| {
            let message = if call.sensitive {
                format!(
                    "the response is not the expected JSON (line {}, column {})",
                    e.line(),
                    e.column()
                )
            } else {
                format!("the response is not the expected JSON: {e}")
            };
            ClientError::new(call.op.clone(), ErrorKind::Decode, Some(200), message)
        })
    }

    /// Fetches pages of [`PAGE_SIZE`] until `total` items were fetched or a page comes back
    /// empty.
    async fn collect_pages<T, F, Fut>(&self, fetch: F) -> Result<Vec<T>, ClientError>
    where
        F: FnMut(u64, u64) -> Fut,
        Fut: Future<Output = Result<api::ListResponse<T>, ClientError>>,
    {
        self.collect_pages_map(fetch, |t| t).await
    }

    /// [`Self::collect_pages`], turning each item into `U` as its page arrives, so only one
    /// page of full documents is held at a time.
    async fn collect_pages_map<T, U, F, Fut>(
        &self,
        fetch: F,
        map: impl FnMut(T) -> U,
    ) -> Result<Vec<U>, ClientError>
    where
        F: FnMut(u64, u64) -> Fut,
        Fut: Future<Output = Result<api::ListResponse<T>, ClientError>>,
    {
        Ok(self
            .walk_pages(fetch, map, |_| true)
            .await?
            .unwrap_or_default())
    }

    /// [`Self::collect_pages_map`], asking `proceed(total)` after the first page.
    async fn walk_pages<T, U, F, Fut>(
        &self,
        mut fetch: F,
        mut map: impl FnMut(T) -> U,
        proceed: impl FnOnce(u64) -> bool,
    ) -> Result<Option<Vec<U>>, ClientError>
    where
        F: FnMut(u64, u64) -> Fut,
        Fut: Future<Output = Result<api::ListResponse<T>, ClientError>>,
    {
        let first = fetch(0, PAGE_SIZE).await?;
        if !proceed(first.total) {
            return Ok(None);
        }
        let got = first.items.len() as u64;
        let mut total = first.total;
        let mut all: Vec<U> = Vec::with_capacity(total.min(100_000) as usize);
        all.extend(first.items.into_iter().map(&mut map));
        let mut start = got;
        if got == 0 || start >= total {
            return Ok(Some(all));
        }
        if got == PAGE_SIZE {
            // The server honours our page size and told us the total: the remaining pages are
            // known, so a few are fetched at once (the shared limiter still bounds the
            // provider's requests). Results are consumed in order; an empty page ends the walk.
            use futures::StreamExt;
            let starts: Vec<u64> = (got..total).step_by(PAGE_SIZE as usize).collect();
            let mut pages = futures::stream::iter(starts.into_iter().map(|s| fetch(s, PAGE_SIZE)))
                .buffered(PARALLEL_PAGES);
            while let Some(page) = pages.next().await {
                let page = page?;
                let n = page.items.len() as u64;
                total = total.max(page.total);
                all.extend(page.items.into_iter().map(&mut map));
                start += n;
                if n == 0 {
                    return Ok(Some(all));
                }
            }
            if start >= total {
                return Ok(Some(all));
            }
        }
        // A server that caps the page below what we asked for, or a fleet that grew while we
        // read it: one page after another, until an empty page or `total`.
        loop {
            let page = fetch(start, PAGE_SIZE).await?;
            let n = page.items.len() as u64;
            let total = page.total;
            all.extend(page.items.into_iter().map(&mut map));
            start += n;
            if n == 0 || start >= total {
                return Ok(Some(all));
            }
        }
    }

    /// Runs a non-idempotent create, resolving unknown outcomes with `lookup` (by name) instead
    /// of repeating the POST blindly.
    async fn create_reconciled<T, F, Fut>(&self, call: Call, lookup: F) -> Result<T, ClientError>
    where
        T: DeserializeOwned,
        F: Fn() -> Fut,
        Fut: Future<Output = Result<Option<T>, ClientError>>,
    {
        let policy = self.inner.policy;
        let mut uncertain = false;
        let mut round = 0u32;
        loop {
            let failure = match self.send(&call).await {
                Ok(bytes) => return self.decode(&call, &bytes),
                Err(f) => f,
            };
            uncertain |= failure.earlier_maybe_applied;
            if failure.maybe_applied && round < policy.max_retries {
                tracing::warn!(target: LOG, operation = %call.op, error = %failure.err,
                    "the create may or may not have been applied; looking it up before trying again");
                match lookup().await {
                    Ok(Some(found)) => {
                        tracing::info!(target: LOG, operation = %call.op,
                            "the create had been applied; using the existing object");
                        return Ok(found);
                    }
                    Ok(None) => uncertain = true,
                    // The lookup found something that is not ours: that is the answer.
                    Err(e) if e.kind == ErrorKind::Conflict => return Err(e),
                    Err(e) => {
                        let mut err = failure.err;
                        err.message = format!(
                            "{}; the request may have been applied, and looking it up failed: {e}",
                            err.message
                        );
                        return Err(err);
                    }
                }
                tokio::time::sleep(policy.backoff(round)).await;
                round += 1;
                continue;
            }
            if uncertain && failure.err.is_already_exists() {
                if let Ok(Some(found)) = lookup().await {
                    tracing::info!(target: LOG, operation = %call.op,
                        "a repeated create found the object an earlier attempt created");
                    return Ok(found);
                }
            }
            let mut err = failure.err;
            if failure.maybe_applied {
                err.message = format!(
                    "{}; the request may have been applied: refresh before trying again",
                    err.message
                );
            }
            return Err(err);
        }
    }

    /// The retry loop: attempts `call` until success, a final answer, or `max_retries`.
    async fn send(&self, call: &Call) -> Result<Vec<u8>, Failure> {
        let policy = self.inner.policy;
        let mut earlier_maybe_applied = false;
        let mut attempt = 0u32;
        loop {
            let (err, repeatable, maybe_applied, retry_after) =
                match self.attempt(call, attempt).await {
                    Attempt::Ok(bytes) => return Ok(bytes),
                    Attempt::Status {
                        err,
                        retry,
                        retry_after,
                    } => match retry {
                        // "Not processed" is what 429/503 promise; a proxy or an overloaded
                        // server can still have applied the request, so a later "already
                        // exists" is resolved by a lookup (see `create_reconciled`).
                        StatusRetry::NotProcessed => {
                            earlier_maybe_applied |= !call.idempotent;
                            (err, true, false, retry_after)
                        }
                        StatusRetry::OutcomeUnknown => (err, call.idempotent, true, retry_after),
                        StatusRetry::Final => (err, false, false, None),
                    },
                    Attempt::Transport { err, sent } => {
                        // A rejected certificate or an endpoint that never answered: final.
                        let repeatable = err.is_retryable() && (call.idempotent || !sent);
                        (err, repeatable, sent, None)
                    }
                };
            if !repeatable || attempt >= policy.max_retries {
                return Err(Failure {
                    err,
                    maybe_applied,
                    earlier_maybe_applied,
                });
            }
            earlier_maybe_applied |= maybe_applied;
            let delay = policy.delay(attempt, retry_after);
            tracing::debug!(target: LOG, operation = %call.op, attempt, error = %err,
                delay_ms = delay.as_millis() as u64, "retrying");
            tokio::time::sleep(delay).await;
            attempt += 1;
        }
    }

    /// One attempt, within the shared request limit.
    async fn attempt(&self, call: &Call, attempt: u32) -> Attempt {
        let path = match call.url.query() {
            Some(q) => format!("{}?{q}", call.url.path()),
            None => call.url.path().to_string(),
        };
        let Some(permit) = self.inner.limiter.acquire().await else {
            let err = ClientError::new(
                call.op.clone(),
                ErrorKind::Transport,
                None,
                "the client is shut down",
            );
            return Attempt::Transport { err, sent: false };
        };
        self.inner.attempts.fetch_add(1, Ordering::Relaxed);
        let started = Instant::now();
        let mut rb = self
            .inner
            .http
            .request(call.method.clone(), call.url.clone())
            .header(TOKEN_HEADER, self.inner.token.clone());
        rb = match &call.body {
            Some(body) => rb
                .header(CONTENT_TYPE, "application/json")
                .body(body.clone()),
            // A bodiless POST/DELETE says so (`Content-Length: 0`), as the official client does;
            // some proxies answer 411 otherwise.
            None if call.method != Method::GET => {
                rb.header(CONTENT_LENGTH, "0").body(Vec::<u8>::new())
            }
            None => rb,
        };
        let result = match rb.send().await {
            Ok(resp) => {
                let status = resp.status().as_u16();
                let retry_after = resp
                    .headers()
                    .get(RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| retry::parse_retry_after(v, SystemTime::now()));
                let trace_id = resp
                    .headers()
                    .get("x-trace-id")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
                read_body(resp)
                    .await
                    .map(|b| (status, retry_after, trace_id, b))
            }
            Err(e) => Err(e),
        };
        drop(permit);
        let elapsed_ms = started.elapsed().as_millis() as u64;
        match result {
            Ok((status, retry_after, trace_id, bytes)) => {
                self.inner.answered.store(true, Ordering::Relaxed);
                tracing::debug!(target: LOG, method = %call.method, path = %path, status,
                    elapsed_ms, attempt, "request");
                if status == 200 {
                    return Attempt::Ok(bytes);
                }
                let mut err = ClientError::from_response(call.op.clone(), status, &bytes);
                if let Some(id) = trace_id.filter(|_| status >= 500) {
                    err.message = format!("{} (trace ID {id})", err.message);
                }
                let err = self.scrub(err);
                Attempt::Status {
                    err,
                    retry: retry::classify_status(status),
                    retry_after,
                }
            }
            Err(e) => {
                tracing::debug!(target: LOG, method = %call.method, path = %path,
                    status = "none", elapsed_ms, attempt, error = %describe(&e, self.inner.request_timeout), "request failed");
                let sent = !e.is_connect();
                let (kind, message) = self.transport_failure(&e);
                let err = self.scrub(ClientError::new(call.op.clone(), kind, None, message));
                Attempt::Transport { err, sent }
            }
        }
    }

    /// The kind and message of a failed attempt without a response. A rejected certificate,
    /// and a DNS failure or refused connection before the endpoint ever answered, are final
    /// ([`ErrorKind::Certificate`], [`ErrorKind::Unreachable`]) with the fix in the message;
    /// the rest is a retryable [`ErrorKind::Transport`].
    fn transport_failure(&self, e: &reqwest::Error) -> (ErrorKind, String) {
        let endpoint = &self.inner.endpoint;
        let cause_text = describe(e, self.inner.request_timeout);
        let env = |k: &str| std::env::var(k).ok();
        let cause = transport::cause_of(e);
        match cause {
            transport::Cause::Certificate(c) => (
                ErrorKind::Certificate,
                transport::certificate_message(&c, endpoint, &cause_text, &env),
            ),
            transport::Cause::Dns | transport::Cause::Refused
                if !self.inner.answered.load(Ordering::Relaxed) =>
            {
                (
                    ErrorKind::Unreachable,
                    transport::unreachable_message(&cause, endpoint, &cause_text, &env),
                )
            }
            _ if e.is_connect() => (
                ErrorKind::Transport,
                format!("cannot connect to {endpoint}: {cause_text}"),
            ),
            _ => (ErrorKind::Transport, cause_text),
        }
    }

    /// Defence in depth: a server echoing the token must not put it in an error.
    fn scrub(&self, mut err: ClientError) -> ClientError {
        let token = &self.inner.token_text;
        if token.len() >= 4 && err.message.contains(token.as_str()) {
            err.message = err.message.replace(token.as_str(), "<redacted>");
        }
        err
    }
}

/// A transport error as one line: what happened and its causes, without the URL (the operation
/// already names the object).
fn describe(e: &reqwest::Error, timeout: Duration) -> String {
    let mut parts: Vec<String> = Vec::new();
    if e.is_timeout() {
        parts.push(format!(
            "no response within {} (request timeout)",
            crate::duration::format_go_duration(timeout)
        ));
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(s) = source {
        let text = s.to_string();
        if !text.is_empty() && !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    if parts.is_empty() {
        parts.push(e.to_string());
    }
    parts.join(": ")
}

/// Whether an existing deployment's bento (`repo:version`) is the one a create asked for
/// (`repo:version`, or `repo` / `repo:latest` meaning any version of it).
fn bento_matches(wanted: &str, actual: Option<&str>) -> bool {
    let Some(actual) = actual else {
        return true;
    };
    let wanted = wanted.trim();
    wanted.is_empty() || BentoTag::of(wanted).accepts(&BentoTag::of(actual))
}

/// The secret endpoints' query: `cluster` only when given (client.py:535-568 adds it only when
/// non-empty, unlike the deployment endpoints, which always send it).
fn secret_query(cluster: &str) -> Vec<(&'static str, &str)> {
    if cluster.is_empty() {
        Vec::new()
    } else {
        vec![("cluster", cluster)]
    }
}

#[cfg(test)]
mod tests;
