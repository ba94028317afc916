//! The HTTP surface: routes of the BentoCloud API, token auth (checked before anything else),
//! bodies read by hand (1 MiB limit → 413, bad JSON → 400 naming the problem), every error as
//! `{"error": ...}` JSON, plus the admin route, the pods websockets and deployment endpoints.

use std::collections::HashMap;

use axum::body::Body;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post, put};
use axum::{Extension, Json, Router};
use http_body_util::BodyExt;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::json;

use super::deployments::{self, Caller};
use super::error::{json_error, trace_id, ApiError};
use super::query::{self, Candidate, Filter};
use super::store::{self, Behaviour, Principal, Result, SecretRow};
use super::vocab::{Phase, ReplicaState};
use super::{render, AppState, RegisterBento};
use crate::api::{
    CreateDeploymentRequest, CreateSecretRequest, ListResponse, UpdateDeploymentRequest,
    UpdateSecretRequest,
};

/// Largest request body accepted.
pub const MAX_BODY: usize = 1024 * 1024;

type Params = HashMap<String, String>;

fn params(q: Option<String>) -> Params {
    url::form_urlencoded::parse(q.unwrap_or_default().as_bytes())
        .into_owned()
        .collect()
}

fn opt<'a>(p: &'a Params, key: &str) -> Option<&'a str> {
    p.get(key).map(String::as_str).filter(|s| !s.is_empty())
}

/// How much of a too-large body is read and discarded before answering 413 (see
/// [`read_request_body`]). Past this much, the server answers 413 and closes the connection.
const MAX_DRAINED_BODY: usize = 64 * 1024 * 1024;

/// Outermost layer: reads every API request's body before routing, keeping at most
/// [`MAX_BODY`] + 1 bytes (so [`read_json`] still answers 413) and discarding the rest.
///
/// Without it, a response to a request whose body was not (fully) read (a 401 before the
/// handler, an unknown route, a route that takes no body, a 413) closed the connection with
/// unread data and no `Connection: close`: the kernel reset it, so clients saw a broken pipe
/// instead of the answer, and keep-alive clients (reqwest, as the provider uses) failed their
/// *next* request on that pooled connection. Deployment URLs (`/endpoints/...`) are streamed
/// to the replicas untouched.
async fn read_request_body(req: Request, next: Next) -> Response {
    if req.uri().path().starts_with("/endpoints/") {
        return next.run(req).await;
    }
    let (parts, mut body) = req.into_parts();
    let mut kept: Vec<u8> = Vec::new();
    let mut seen: usize = 0;
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else {
            return json_error(
                StatusCode::BAD_REQUEST,
                "cannot read the request body".into(),
            );
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        seen = seen.saturating_add(data.len());
        if seen > MAX_DRAINED_BODY {
            let mut resp = json_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("request body is larger than {MAX_BODY} bytes (1 MiB)"),
            );
            resp.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            return resp;
        }
        let room = (MAX_BODY + 1).saturating_sub(kept.len());
        kept.extend_from_slice(&data[..data.len().min(room)]);
    }
    next.run(Request::from_parts(parts, Body::from(kept))).await
}

/// Reads the whole body (at most [`MAX_BODY`]) and parses it as `T`.
async fn read_json<T: DeserializeOwned>(body: Body) -> Result<T> {
    let bytes = http_body_util::Limited::new(body, MAX_BODY)
        .collect()
        .await
        .map_err(|e| {
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                ApiError::TooLarge(format!(
                    "request body is larger than {MAX_BODY} bytes (1 MiB)"
                ))
            } else {
                ApiError::bad(format!("cannot read the request body: {e}"))
            }
        })?
        .to_bytes();
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad(
            "the request body is empty: send a JSON object",
        ));
    }
    serde_json::from_slice(&bytes).map_err(|e| ApiError::bad(format!("invalid JSON body: {e}")))
}

fn ok<T: Serialize>(v: T) -> Response {
    Json(v).into_response()
}

/// Runs `f` on the blocking pool with the store (SQLite calls block).
async fn db<T: Send + 'static>(
    s: &AppState,
    f: impl FnOnce(&store::Store) -> Result<T> + Send + 'static,
) -> Result<T> {
    let st = s.store.clone();
    tokio::task::spawn_blocking(move || f(&st))
        .await
        .map_err(|e| ApiError::internal(format!("worker failed: {e}")))?
}

/// Builds the router.
pub fn app(state: AppState) -> Router {
    let api = Router::new()
        .route(
            "/api/v2/deployments",
            get(list_deployments).post(create_deployment),
        )
        .route(
            "/api/v2/deployments/:name",
            get(get_deployment)
                .put(update_deployment)
                .delete(delete_deployment),
        )
        .route("/api/v2/deployments/:name/void_update", put(void_update))
        .route("/api/v2/deployments/:name/terminate", post(terminate))
        .route("/api/v1/auth/current", get(current_user))
        .route("/api/v1/current_org", get(current_org))
        .route("/api/v1/clusters", get(list_clusters))
        .route("/api/v1/clusters/:name", get(get_cluster))
        .route("/api/v1/instance_types", get(instance_types))
        .route("/api/v1/bento_repositories/:repo", get(get_repo))
        .route("/api/v1/bento_repositories/:repo/bentos", get(list_bentos))
        .route(
            "/api/v1/bento_repositories/:repo/bentos/:version",
            get(get_bento),
        )
        .route("/api/v1/org_secrets", get(list_secrets).post(create_secret))
        .route(
            "/api/v1/org_secrets/:name",
            get(get_secret).patch(update_secret).delete(delete_secret),
        )
        .route("/api/local/v1/bentos", post(register_bento))
        .route("/api/local/v1/deployments", get(list_local_deployments))
        .route("/api/local/v1/deployments/:name", get(get_local_deployment))
        .route(
            "/api/local/v1/deployments/:name/revisions",
            get(get_local_revisions),
        )
        .route(
            "/api/local/v1/deployments/:name/timeline",
            get(get_local_timeline),
        )
        .route(
            super::faults::ADMIN_PATH,
            get(super::faults::get_faults)
                .put(super::faults::put_faults)
                .delete(super::faults::delete_faults),
        )
        .route("/ws/v2/deployments/:name/pods", get(deployment_pods_ws))
        .route("/ws/v1/clusters/:cluster/pods", get(builder_pods_ws))
        // Inner layer: faults apply to authenticated requests only.
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            super::faults::layer,
        ))
        .route_layer(middleware::from_fn_with_state(state.clone(), auth));
    Router::new()
        .merge(api)
        .route("/endpoints/:org/:cluster/:name", any(endpoint_root))
        .route("/endpoints/:org/:cluster/:name/", any(endpoint_root))
        .route("/endpoints/:org/:cluster/:name/*rest", any(endpoint))
        .route("/healthz", get(|| async { ok(json!({"status": "ok"})) }))
        // The web page holds no data (it asks for the token itself), so it needs none.
        .route("/", get(super::ui::index))
        .fallback(fallback)
        .layer(middleware::from_fn(json_errors))
        .layer(middleware::from_fn(read_request_body))
        .with_state(state)
}

/// Unknown routes: 404 JSON, but under `/api` and `/ws` only after the token was checked
/// (so an unauthenticated caller learns nothing).
async fn fallback(State(s): State<AppState>, req: Request) -> Response {
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    if path.starts_with("/api/") || path.starts_with("/ws/") {
        if let Err(e) = principal_of(&s, token_of(&req)).await {
            return e.into_response();
        }
    }
    json_error(
        StatusCode::NOT_FOUND,
        format!("no route for {method} {path}"),
    )
}

fn token_of(req: &Request) -> String {
    req.headers()
        .get("x-yatai-api-token")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .unwrap_or("")
        .to_string()
}

async fn principal_of(s: &AppState, token: String) -> Result<Principal> {
    if token.is_empty() {
        return Err(ApiError::Unauthorized);
    }
    db(s, move |st| st.with(|c| store::principal(c, &token)))
        .await?
        .ok_or(ApiError::Unauthorized)
}

async fn auth(State(s): State<AppState>, mut req: Request, next: Next) -> Response {
    match principal_of(&s, token_of(&req)).await {
        Ok(p) => {
            req.extensions_mut().insert(p);
            next.run(req).await
        }
        Err(e) => e.into_response(),
    }
}

/// Turns any non-JSON error (axum rejections, 405) into `{"error": ...}` and gives every 5xx
/// an `x-trace-id`.
async fn json_errors(req: Request, next: Next) -> Response {
    let resp = next.run(req).await;
    let status = resp.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return resp;
    }
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.starts_with("application/json"))
        .unwrap_or(false);
    if is_json {
        let mut resp = resp;
        if status.is_server_error() && !resp.headers().contains_key("x-trace-id") {
            if let Ok(v) = HeaderValue::from_str(&trace_id()) {
                resp.headers_mut().insert("x-trace-id", v);
            }
        }
        return resp;
    }
    let text = match http_body_util::Limited::new(resp.into_body(), 64 * 1024)
        .collect()
        .await
    {
        Ok(b) => String::from_utf8_lossy(&b.to_bytes()).trim().to_string(),
        Err(_) => String::new(),
    };
    let msg = if text.is_empty() {
        status.canonical_reason().unwrap_or("error").to_lowercase()
    } else {
        text
    };
    json_error(status, msg)
}

// ---------------------------------------------------------------- deployments

/// Renders a deployment row of `p`'s org.
fn render_dep(
    c: &rusqlite::Connection,
    s_base: &str,
    p: &Principal,
    d: &store::DeploymentRow,
) -> Result<crate::api::Deployment> {
    Ok(render::deployment(c, &p.org, d, s_base)?.doc)
}

/// A list item: the full document without `urls`, which the real API returns only in full
/// responses (get, create, update, terminate, delete; API doc §3.3 "List items have no
/// `urls`"): a client that reads a URL from a list must not work here either.
fn render_list_item(
    c: &rusqlite::Connection,
    s_base: &str,
    p: &Principal,
    d: &store::DeploymentRow,
) -> Result<crate::api::Deployment> {
    let mut doc = render_dep(c, s_base, p, d)?;
    doc.urls = None;
    Ok(doc)
}

async fn create_deployment(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    RawQuery(q): RawQuery,
    body: Body,
) -> Result<Response> {
    let req: CreateDeploymentRequest = read_json(body).await?;
    let q = params(q);
    let cluster = opt(&q, "cluster").map(str::to_string);
    let (auto, base) = (s.auto_register_bentos, s.base_url.clone());
    let now = s.clock.now_ms();
    let doc = db(&s, move |st| {
        st.tx(|c| {
            let caller = Caller {
                principal: &p,
                auto_register_bentos: auto,
            };
            let d = deployments::create(c, &caller, cluster.as_deref(), req, now)?;
            render_dep(c, &base, &p, &d)
        })
    })
    .await?;
    Ok(ok(doc))
}

async fn get_deployment(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(name): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Response> {
    get_as(s, p, name, q, render_dep).await
}

/// One deployment of `p`'s org (by name, in `cluster` or the default one), rendered by `item`.
async fn get_as<T: Serialize + Send + 'static>(
    s: AppState,
    p: Principal,
    name: String,
    q: Option<String>,
    item: fn(&rusqlite::Connection, &str, &Principal, &store::DeploymentRow) -> Result<T>,
) -> Result<Response> {
    let cluster = opt(&params(q), "cluster").map(str::to_string);
    let base = s.base_url.clone();
    let doc = db(&s, move |st| {
        st.with(|c| {
            let d = deployments::get(c, &p, cluster.as_deref(), &name)?;
            item(c, &base, &p, &d)
        })
    })
    .await?;
    Ok(ok(doc))
}

async fn update_deployment(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(name): Path<String>,
    RawQuery(q): RawQuery,
    body: Body,
) -> Result<Response> {
    let spec: UpdateDeploymentRequest = read_json(body).await?;
    let cluster = opt(&params(q), "cluster").map(str::to_string);
    let (auto, base) = (s.auto_register_bentos, s.base_url.clone());
    let now = s.clock.now_ms();
    let doc = db(&s, move |st| {
        st.tx(|c| {
            let caller = Caller {
                principal: &p,
                auto_register_bentos: auto,
            };
            let d = deployments::update(c, &caller, cluster.as_deref(), &name, spec, now)?;
            render_dep(c, &base, &p, &d)
        })
    })
    .await?;
    Ok(ok(doc))
}

/// void_update / terminate / delete share a shape: no body, one command.
type Cmd =
    fn(&rusqlite::Connection, &Principal, Option<&str>, &str, i64) -> Result<store::DeploymentRow>;

async fn command(
    s: AppState,
    p: Principal,
    name: String,
    q: Option<String>,
    cmd: Cmd,
) -> Result<Response> {
    let cluster = opt(&params(q), "cluster").map(str::to_string);
    let base = s.base_url.clone();
    let now = s.clock.now_ms();
    let doc = db(&s, move |st| {
        st.tx(|c| {
            let d = cmd(c, &p, cluster.as_deref(), &name, now)?;
            render_dep(c, &base, &p, &d)
        })
    })
    .await?;
    Ok(ok(doc))
}

async fn void_update(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(name): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Response> {
    command(s, p, name, q, deployments::void_update).await
}

async fn terminate(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(name): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Response> {
    command(s, p, name, q, deployments::terminate).await
}

async fn delete_deployment(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(name): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Response> {
    command(s, p, name, q, deployments::delete).await
}

async fn list_deployments(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    RawQuery(q): RawQuery,
) -> Result<Response> {
    list_as(s, p, q, render_list_item).await
}

/// `GET /api/local/v1/deployments`: the same list (same parameters) with each deployment's
/// rollout progress, for the web page, the demo and tests; never used by the provider.
async fn list_local_deployments(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    RawQuery(q): RawQuery,
) -> Result<Response> {
    list_as(s, p, q, local_dep).await
}

/// `GET /api/local/v1/deployments/{name}`: one deployment with its rollout progress.
async fn get_local_deployment(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(name): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Response> {
    get_as(s, p, name, q, local_dep).await
}

/// `GET /api/local/v1/deployments/{name}/revisions`: its revisions, newest first (the web
/// page's detail view; see [`super::timeline`]).
async fn get_local_revisions(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(name): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Response> {
    get_as(s, p, name, q, |c, _, _, d| super::timeline::revisions(c, d)).await
}

/// `GET /api/local/v1/deployments/{name}/timeline`: replica counts per revision over its last
/// rollout, as the reconciler recorded them (see [`super::timeline`]).
async fn get_local_timeline(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(name): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Response> {
    let cluster = opt(&params(q), "cluster").map(str::to_string);
    let now = s.clock.now_ms();
    let doc = db(&s, move |st| {
        st.with(|c| {
            let d = deployments::get(c, &p, cluster.as_deref(), &name)?;
            super::timeline::read(c, &d, now)
        })
    })
    .await?;
    Ok(ok(doc))
}

/// Renders a deployment row of `p`'s org with its rollout progress (the local-only view).
fn local_dep(
    c: &rusqlite::Connection,
    base: &str,
    p: &Principal,
    d: &store::DeploymentRow,
) -> Result<render::LocalDeployment> {
    render::local_deployment(c, &p.org, d, base)
}

/// The list endpoint's filtering and paging, rendering each item of the page with `item`.
async fn list_as<T: Serialize + Send + 'static>(
    s: AppState,
    p: Principal,
    q: Option<String>,
    item: fn(&rusqlite::Connection, &str, &Principal, &store::DeploymentRow) -> Result<T>,
) -> Result<Response> {
    let q = params(q);
    let mut filter = Filter::parse(opt(&q, "q").unwrap_or("")).map_err(ApiError::bad)?;
    filter.search = opt(&q, "search").map(str::to_string);
    let start = query::uint_param("start", opt(&q, "start"), 0).map_err(ApiError::bad)?;
    let count = query::uint_param("count", opt(&q, "count"), 20).map_err(ApiError::bad)?;
    let cluster = opt(&q, "cluster").map(str::to_string);
    let base = s.base_url.clone();
    let out = db(&s, move |st| {
        st.with(|c| {
            if let Some(cl) = &cluster {
                store::cluster(c, Some(cl))?;
            }
            let rows: Vec<_> = store::org_deployments(c, p.org.id)?
                .into_iter()
                .filter(|d| cluster.as_ref().map(|cl| cl == &d.cluster).unwrap_or(true))
                .collect();
            // The bento of every row is looked up only when the query filters on it: a page of
            // a 10,000-deployment fleet otherwise cost 20,000 lookups to render 500 items.
            let needs_bento = !filter.bentos.is_empty();
            let mut cands = Vec::with_capacity(rows.len());
            for d in &rows {
                let (bento_repo, bento_version) = if needs_bento {
                    let rev = store::revision(c, &d.target_revision)?;
                    let b = store::bento_by_id(c, rev.bento_id)?;
                    (b.repo, b.version)
                } else {
                    (String::new(), String::new())
                };
                cands.push(Candidate {
                    name: d.name.clone(),
                    cluster: d.cluster.clone(),
                    labels: d.labels.clone(),
                    // `status:` filters on what the API reports.
                    status: d.reported_status.as_str().to_string(),
                    dev: d.dev,
                    bento_repo,
                    bento_version,
                    created_at: d.created_at,
                });
            }
            let (total, page) = query::select(&cands, &filter, start, count);
            let mut items = Vec::with_capacity(page.len());
            for i in page {
                items.push(item(c, &base, &p, &rows[i])?);
            }
            Ok(ListResponse {
                start: start as u64,
                count: items.len() as u64,
                total: total as u64,
                items,
            })
        })
    })
    .await?;
    Ok(ok(out))
}

// ---------------------------------------------------------------- org, clusters, bentos

async fn current_user(Extension(p): Extension<Principal>) -> Response {
    ok(render::user(&p.user_name, &p.org))
}

async fn current_org(Extension(p): Extension<Principal>) -> Response {
    ok(render::organization(&p.org))
}

async fn list_clusters(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
) -> Result<Response> {
    let items = db(&s, move |st| st.with(|c| store::clusters(c))).await?;
    let items: Vec<_> = items
        .iter()
        .map(|c| render::cluster(c, &p.org, &p.user_name))
        .collect();
    Ok(ok(ListResponse {
        start: 0,
        count: items.len() as u64,
        total: items.len() as u64,
        items,
    }))
}

async fn get_cluster(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(name): Path<String>,
) -> Result<Response> {
    let c = db(&s, move |st| st.with(|c| store::cluster(c, Some(&name)))).await?;
    Ok(ok(render::cluster(&c, &p.org, &p.user_name)))
}

async fn instance_types(State(s): State<AppState>, RawQuery(q): RawQuery) -> Result<Response> {
    let cluster = opt(&params(q), "cluster").map(str::to_string);
    let items = db(&s, move |st| {
        st.with(|c| {
            let cl = store::cluster(c, cluster.as_deref())?;
            Ok(store::instance_types(c, &cl.name)?
                .iter()
                .map(|t| render::instance_type(t, cl.created_at))
                .collect::<Vec<_>>())
        })
    })
    .await?;
    Ok(ok(items))
}

async fn get_repo(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(repo): Path<String>,
) -> Result<Response> {
    let r = db(&s, move |st| {
        st.with(|c| {
            let (uid, created) = store::find_repo(c, p.org.id, &repo)?.ok_or_else(|| {
                ApiError::not_found(format!("bento repository {repo:?} not found"))
            })?;
            render::repository(c, p.org.id, &repo, &uid, created)
        })
    })
    .await?;
    Ok(ok(r))
}

async fn list_bentos(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(repo): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Response> {
    let q = params(q);
    let start = query::uint_param("start", opt(&q, "start"), 0).map_err(ApiError::bad)?;
    let count = query::uint_param("count", opt(&q, "count"), 20).map_err(ApiError::bad)?;
    let all = db(&s, move |st| {
        st.with(|c| {
            if store::find_repo(c, p.org.id, &repo)?.is_none() {
                return Err(ApiError::not_found(format!(
                    "bento repository {repo:?} not found"
                )));
            }
            store::repo_bentos(c, p.org.id, &repo)
        })
    })
    .await?;
    let total = all.len() as u64;
    let items: Vec<_> = all
        .iter()
        .skip(start)
        .take(count)
        .map(render::bento)
        .collect();
    Ok(ok(ListResponse {
        start: start as u64,
        count: items.len() as u64,
        total,
        items,
    }))
}

/// An unknown bento is a 404, as on BentoCloud. With `--auto-register-bentos` an unknown
/// `repo:version` is registered on first sight instead, so the official client's existence
/// check before `deploy` passes.
async fn get_bento(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Path((repo, version)): Path<(String, String)>,
) -> Result<Response> {
    let auto = s.auto_register_bentos;
    let now = s.clock.now_ms();
    let b = db(&s, move |st| {
        st.tx(|c| {
            let caller = Caller {
                principal: &p,
                auto_register_bentos: auto,
            };
            let tag = format!("{repo}:{version}");
            deployments::resolve_bento(c, &caller, &tag, &[], now)
        })
    })
    .await?;
    Ok(ok(render::bento(&b)))
}

fn secs_to_ms(what: &str, v: f64) -> Result<i64> {
    if !v.is_finite() || !(0.0..=86_400.0).contains(&v) {
        return Err(ApiError::bad(format!(
            "{what} is {v}: use 0 to 86400 seconds"
        )));
    }
    Ok((v * 1000.0).round() as i64)
}

async fn register_bento(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    body: Body,
) -> Result<Response> {
    let req: RegisterBento = read_json(body).await?;
    let (repo, version) = crate::rules::bento_tag(&req.tag).map_err(ApiError::bad)?;
    let version = version.ok_or_else(|| {
        ApiError::bad(format!(
            "bento {:?} has no version: use repo:version",
            req.tag
        ))
    })?;
    let mut services = req.services.clone();
    if services.is_empty() {
        services.push(store::DEFAULT_SERVICE.into());
    }
    for (i, svc) in services.iter().enumerate() {
        if svc.is_empty() || services[..i].contains(svc) {
            return Err(ApiError::bad(format!(
                "service name {svc:?} is empty or repeated"
            )));
        }
    }
    let beh = Behaviour {
        startup_ms: secs_to_ms("startup_seconds", req.startup_seconds)?,
        unready: req.unready,
        crash_after_ms: req
            .crash_after_seconds
            .map(|v| secs_to_ms("crash_after_seconds", v))
            .transpose()?,
        image_build_ms: secs_to_ms("image_build_seconds", req.image_build_seconds)?,
        image_build_fails: req.image_build_fails,
        services,
        auto: false,
    };
    let now = s.clock.now_ms();
    let b = db(&s, move |st| {
        st.tx(|c| store::put_bento(c, p.org.id, &repo, &version, &beh, now))
    })
    .await?;
    Ok(ok(render::bento(&b)))
}

// ---------------------------------------------------------------- secrets

fn validate_secret_content(content: &crate::api::SecretContent) -> Result<()> {
    match content.kind.as_str() {
        "env" | "mountfile" => {}
        k => {
            return Err(ApiError::bad(format!(
                "secret content type {k:?} is invalid: use \"env\" or \"mountfile\""
            )))
        }
    }
    if content.items.is_empty() {
        return Err(ApiError::bad(
            "secret content has no items: give at least one key",
        ));
    }
    for item in &content.items {
        if content.kind == "env" {
            crate::rules::env_name(&item.key).map_err(ApiError::bad)?;
        } else if item.key.is_empty() {
            return Err(ApiError::bad("secret item key is empty"));
        }
    }
    if let Some(stage) = &content.stage {
        if !["build", "runtime", "all"].contains(&stage.as_str()) {
            return Err(ApiError::bad(format!(
                "secret stage {stage:?} is invalid: use build, runtime or all"
            )));
        }
    }
    Ok(())
}

fn render_secret(
    c: &rusqlite::Connection,
    p: &Principal,
    s: &SecretRow,
) -> Result<crate::api::Secret> {
    // The official client's `SecretSchema.cluster` is a required, non-null `ClusterSchema`
    // (`secret list/create` crash on null), so an org-wide secret shows the default cluster.
    let cl = if s.cluster.is_empty() {
        store::clusters(c)?.into_iter().next()
    } else {
        store::clusters(c)?
            .into_iter()
            .find(|x| x.name == s.cluster)
    };
    let values = store::meta_get(c, store::SECRET_VALUES_IN_READS)?.as_deref() == Some("true");
    Ok(render::secret(s, &p.org, cl.as_ref(), values))
}

fn secret_not_found(name: &str) -> ApiError {
    ApiError::not_found(format!("secret {name:?} not found"))
}

async fn list_secrets(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    RawQuery(q): RawQuery,
) -> Result<Response> {
    let q = params(q);
    let start = query::uint_param("start", opt(&q, "start"), 0).map_err(ApiError::bad)?;
    let all = opt(&q, "all") == Some("true");
    let count = if all {
        usize::MAX
    } else {
        query::uint_param("count", opt(&q, "count"), 20).map_err(ApiError::bad)?
    };
    let search = opt(&q, "search").map(str::to_string);
    let words: Vec<String> = opt(&q, "q")
        .unwrap_or("")
        .split_whitespace()
        .filter(|w| !w.contains(':'))
        .map(str::to_string)
        .collect();
    let out = db(&s, move |st| {
        st.with(|c| {
            let rows: Vec<SecretRow> = store::secrets(c, p.org.id)?
                .into_iter()
                .filter(|x| {
                    search
                        .as_ref()
                        .map(|s| x.name.contains(s.as_str()))
                        .unwrap_or(true)
                })
                .filter(|x| words.iter().all(|w| x.name.contains(w.as_str())))
                .collect();
            let total = rows.len() as u64;
            let items = rows
                .iter()
                .skip(start)
                .take(count)
                .map(|x| render_secret(c, &p, x))
                .collect::<Result<Vec<_>>>()?;
            Ok(ListResponse {
                start: start as u64,
                count: items.len() as u64,
                total,
                items,
            })
        })
    })
    .await?;
    Ok(ok(out))
}

async fn create_secret(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    RawQuery(q): RawQuery,
    body: Body,
) -> Result<Response> {
    let req: CreateSecretRequest = read_json(body).await?;
    crate::rules::deployment_name(&req.name)
        .map_err(|e| ApiError::bad(format!("secret name: {e}")))?;
    validate_secret_content(&req.content)?;
    let cluster = opt(&params(q), "cluster").map(str::to_string);
    let now = s.clock.now_ms();
    let out = db(&s, move |st| {
        st.tx(|c| {
            let cl = match &cluster {
                Some(n) => store::cluster(c, Some(n))?.name,
                None => String::new(),
            };
            if store::find_secret(c, p.org.id, &req.name)?.is_some() {
                return Err(ApiError::bad(format!(
                    "secret {:?} already exists",
                    req.name
                )));
            }
            let row = SecretRow {
                id: 0,
                org_id: p.org.id,
                name: req.name.clone(),
                uid: store::new_uid(),
                cluster: cl,
                description: req.description.clone().unwrap_or_default(),
                content: req.content.clone(),
                creator: p.user_name.clone(),
                created_at: now,
                updated_at: now,
            };
            store::insert_secret(c, &row)?;
            render_secret(c, &p, &row)
        })
    })
    .await?;
    Ok(ok(out))
}

async fn get_secret(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(name): Path<String>,
) -> Result<Response> {
    let out = db(&s, move |st| {
        st.with(|c| {
            let row =
                store::find_secret(c, p.org.id, &name)?.ok_or_else(|| secret_not_found(&name))?;
            render_secret(c, &p, &row)
        })
    })
    .await?;
    Ok(ok(out))
}

async fn update_secret(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(name): Path<String>,
    body: Body,
) -> Result<Response> {
    let req: UpdateSecretRequest = read_json(body).await?;
    validate_secret_content(&req.content)?;
    let now = s.clock.now_ms();
    let out = db(&s, move |st| {
        st.tx(|c| {
            let mut row =
                store::find_secret(c, p.org.id, &name)?.ok_or_else(|| secret_not_found(&name))?;
            row.content = req.content.clone();
            if let Some(d) = req.description.clone() {
                row.description = d;
            }
            row.updated_at = now;
            store::update_secret(c, &row)?;
            render_secret(c, &p, &row)
        })
    })
    .await?;
    Ok(ok(out))
}

async fn delete_secret(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(name): Path<String>,
) -> Result<Response> {
    let out = db(&s, move |st| {
        st.tx(|c| {
            let row =
                store::find_secret(c, p.org.id, &name)?.ok_or_else(|| secret_not_found(&name))?;
            store::delete_secret(c, row.id)?;
            render_secret(c, &p, &row)
        })
    })
    .await?;
    Ok(ok(out))
}

// ---------------------------------------------------------------- websockets

/// One `KubePod` document per live replica, in the shape of the platform's ancestor (Yatai's
/// `schemasv1.KubePodSchema`; API doc §10): the operator's labels
/// (`yatai.ai/bento-deployment`, `yatai.ai/bento-repository`, `yatai.ai/bento-version`,
/// `yatai.ai/bento-deployment-component-type`) plus the deployment's own labels, start time
/// and readiness. Old replicas still draining are listed too. There is no revision label:
/// from pods a client can tell which bento a pod runs and when it started, not its revision.
/// A canary version's pod has `status.is_canary: true` and its version's bento in
/// `yatai.ai/bento-version`; it `is_old` when the revision being rolled out runs another bento
/// for that version, or no such version.
fn pods(
    c: &rusqlite::Connection,
    p: &Principal,
    d: &store::DeploymentRow,
) -> Result<Vec<serde_json::Value>> {
    let reps = store::live_replicas(c, d.id)?;
    let target = store::revision(c, &d.target_revision)?;
    let target_bento = store::bento_by_id(c, target.bento_id)?;
    let mut out = Vec::new();
    // The bento of a target (`main` or a canary version) of a revision.
    let bento_id = |rev: &store::RevisionRow, target: &str| {
        if target == store::MAIN_TARGET {
            Some(rev.bento_id)
        } else {
            rev.canary
                .as_ref()
                .and_then(|c| c.versions.get(target))
                .map(|v| v.bento_id)
        }
    };
    for r in reps {
        let rev = store::revision(c, &r.revision_uid)?;
        let id = bento_id(&rev, &r.target).ok_or_else(|| {
            ApiError::internal(format!(
                "replica {} runs canary version {:?}, which its revision does not have",
                r.uid, r.target
            ))
        })?;
        let b = store::bento_by_id(c, id)?;
        let is_old = bento_id(&target, &r.target) != Some(b.id);
        let canary_part = if r.is_main() {
            String::new()
        } else {
            format!("{}-", r.target.to_lowercase())
        };
        let phase = match r.state {
            ReplicaState::Starting => "Pending",
            _ => "Running",
        };
        let ready = r.state == ReplicaState::Ready;
        let terminating = r.state == ReplicaState::Draining;
        let mut labels = serde_json::Map::new();
        for l in &d.labels {
            labels.insert(l.key.clone(), json!(l.value));
        }
        for (k, v) in [
            ("yatai.ai/bento-deployment", d.name.clone()),
            ("yatai.ai/bento-repository", b.repo.clone()),
            ("yatai.ai/bento-version", b.version.clone()),
            (
                "yatai.ai/bento-deployment-component-type",
                "api-server".to_string(),
            ),
            ("yatai.ai/bento-deployment-target-name", r.service.clone()),
        ] {
            labels.insert(k.to_string(), json!(v));
        }
        out.push(json!({
            "name": format!("{}-{canary_part}{}-{}", d.name, r.service.to_lowercase(), &r.uid[..8.min(r.uid.len())]),
            "namespace": format!("bcl-{}", p.org.name),
            "node_name": "localhost",
            "labels": labels,
            "annotations": {},
            "runner_name": null,
            "status": {
                "phase": phase,
                "ready": ready,
                "start_time": render::ts(r.started_at),
                "is_old": is_old,
                "is_canary": !r.is_main(),
                "host_ip": "127.0.0.1",
                "pod_ip": "127.0.0.1",
            },
            "pod_status": {
                "status": if terminating { "Terminating" } else { phase },
                "phase": phase,
                "container_states": [],
            },
            "warnings": null,
        }));
    }
    // A rollout that failed its progress deadline: Kubernetes keeps the new revision's pods,
    // not ready, with the probe failures as events; the emulator has already stopped those
    // replicas (so the old revision serves alone), and lists one such pod per service in their
    // place, so a client reads the reason where the platform gives it.
    if d.phase == Phase::Failed {
        for service in render::run_services(&target.config, &target_bento) {
            let mut labels = serde_json::Map::new();
            for l in &d.labels {
                labels.insert(l.key.clone(), json!(l.value));
            }
            labels.insert("yatai.ai/bento-deployment".into(), json!(d.name));
            labels.insert("yatai.ai/bento-repository".into(), json!(target_bento.repo));
            labels.insert("yatai.ai/bento-version".into(), json!(target_bento.version));
            labels.insert(
                "yatai.ai/bento-deployment-component-type".into(),
                json!("api-server"),
            );
            out.push(json!({
                "name": format!("{}-{}-{}", d.name, service.to_lowercase(), &target.uid[..8.min(target.uid.len())]),
                "namespace": format!("bcl-{}", p.org.name),
                "node_name": "localhost",
                "labels": labels,
                "annotations": {},
                "runner_name": null,
                "status": {
                    "phase": "Running",
                    "ready": false,
                    "start_time": render::ts(target.created_at),
                    "is_old": false,
                    "is_canary": false,
                },
                "pod_status": { "status": "NotReady", "phase": "Running", "container_states": [] },
                "warnings": [
                    { "reason": "Unhealthy", "message": "Readiness probe failed: HTTP probe failed with statuscode: 503" },
                    { "reason": "ProgressDeadlineExceeded", "message": d.message },
                ],
            }));
        }
    }
    Ok(out)
}

async fn deployment_pods_ws(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(name): Path<String>,
    RawQuery(q): RawQuery,
    ws: Option<WebSocketUpgrade>,
) -> Result<Response> {
    let cluster = opt(&params(q), "cluster").map(str::to_string);
    let (p2, n2, c2) = (p.clone(), name.clone(), cluster.clone());
    db(&s, move |st| {
        st.with(|c| deployments::get(c, &p2, c2.as_deref(), &n2))
    })
    .await?;
    let ws =
        ws.ok_or_else(|| ApiError::bad("this is a websocket endpoint: send an upgrade request"))?;
    Ok(ws.on_upgrade(move |sock| pods_loop(sock, s, p, cluster, name)))
}

async fn pods_loop(
    mut sock: WebSocket,
    s: AppState,
    p: Principal,
    cluster: Option<String>,
    name: String,
) {
    let mut last: Option<String> = None;
    loop {
        let (p2, n2, c2) = (p.clone(), name.clone(), cluster.clone());
        let payload = db(&s, move |st| {
            st.with(|c| {
                let d = deployments::get(c, &p2, c2.as_deref(), &n2)?;
                pods(c, &p2, &d)
            })
        })
        .await;
        let msg = match payload {
            Ok(pods) => json!({"message": "", "type": "success", "payload": pods}),
            Err(e) => json!({"message": e.message(), "type": "error", "payload": null}),
        }
        .to_string();
        // The full list first, then again on every change (like the ancestor's pod informer).
        if last.as_deref() != Some(msg.as_str()) {
            if sock.send(Message::Text(msg.clone())).await.is_err() {
                return;
            }
            last = Some(msg);
        }
        tokio::select! {
            m = sock.recv() => match m {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                _ => {}
            },
            _ = tokio::time::sleep(std::time::Duration::from_millis(200)) => {}
        }
    }
}

/// The image-builder pods stream: image builds are instantaneous pods we do not model, so
/// one empty list is sent, then the socket is closed.
async fn builder_pods_ws(
    Path(_cluster): Path<String>,
    ws: Option<WebSocketUpgrade>,
) -> Result<Response> {
    let ws =
        ws.ok_or_else(|| ApiError::bad("this is a websocket endpoint: send an upgrade request"))?;
    Ok(ws.on_upgrade(|mut sock| async move {
        let msg = json!({"message": "", "type": "success", "payload": []});
        let _ = sock.send(Message::Text(msg.to_string())).await;
        let _ = sock.send(Message::Close(None)).await;
    }))
}

// ---------------------------------------------------------------- deployment endpoints

async fn endpoint_root(
    State(s): State<AppState>,
    Path((org, cluster, name)): Path<(String, String, String)>,
    req: Request,
) -> Result<Response> {
    serve_endpoint(s, org, cluster, name, String::new(), req).await
}

async fn endpoint(
    State(s): State<AppState>,
    Path((org, cluster, name, rest)): Path<(String, String, String, String)>,
    req: Request,
) -> Result<Response> {
    serve_endpoint(s, org, cluster, name, rest, req).await
}

/// A deployment's URL: a reverse proxy to its ready replicas (see [`super::fleet`]). No token
/// needed (like a public BentoCloud endpoint). Without a route (not reconciled yet, or
/// terminated) the answer is 503 when the deployment exists, 404 otherwise.
async fn serve_endpoint(
    s: AppState,
    org: String,
    cluster: String,
    name: String,
    rest: String,
    req: Request,
) -> Result<Response> {
    if let Some(resp) = s.fleet.forward(&org, &cluster, &name, &rest, req).await {
        return Ok(resp);
    }
    let unavailable = format!("deployment {name:?} in cluster {cluster:?} has no ready replica");
    let missing = ApiError::not_found(format!("deployment {name:?} not found"));
    let found = db(&s, move |st| {
        st.with(|c| {
            let Some(o) = c
                .query_row("SELECT id FROM orgs WHERE name = ?1", [&org], |r| {
                    r.get::<_, i64>(0)
                })
                .ok()
            else {
                return Ok(false);
            };
            Ok(store::find_deployment(c, o, &cluster, &name)?.is_some())
        })
    })
    .await?;
    if found {
        Err(ApiError::Unavailable(unavailable))
    } else {
        Err(missing)
    }
}
