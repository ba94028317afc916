//! The HTTP surface: the router, token auth (checked before anything else), bodies read by
//! hand (1 MiB limit → 413, bad JSON → 400 naming the problem), every error as
//! `{"error": ...}` JSON, and the helpers the handlers share. The handlers live in one module
//! per API area: [`deployments`] (`/api/v2/deployments`), [`secrets`] (`/api/v1/org_secrets`),
//! [`catalog`] (user, organisation, clusters, instance types, bentos), [`local`]
//! (`/api/local/v1`: the local views and the admin route), [`pods`] (the pods websockets) and
//! [`endpoints`] (deployment URLs, proxied to replicas).

mod catalog;
mod deployments;
mod endpoints;
mod local;
mod pods;
mod secrets;

use std::collections::HashMap;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use http_body_util::BodyExt;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::json;

use super::error::Result;
use super::error::{json_error, trace_id, ApiError};
use super::store::{self, Principal};
use super::AppState;

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
/// `f` may fail with the store's error or the API's; either becomes the API's.
async fn db<T: Send + 'static, E: Send + 'static>(
    s: &AppState,
    f: impl FnOnce(&store::Store) -> std::result::Result<T, E> + Send + 'static,
) -> Result<T>
where
    ApiError: From<E>,
{
    let st = s.store.clone();
    let out = tokio::task::spawn_blocking(move || f(&st))
        .await
        .map_err(|e| ApiError::internal(format!("worker failed: {e}")))?;
    Ok(out?)
}

/// Builds the router.
pub fn app(state: AppState) -> Router {
    let api = Router::new()
        .merge(deployments::routes())
        .merge(secrets::routes())
        .merge(catalog::routes())
        .merge(local::routes())
        .merge(pods::routes())
        // Inner layer: faults apply to authenticated requests only.
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            super::faults::layer,
        ))
        .route_layer(middleware::from_fn_with_state(state.clone(), auth));
    Router::new()
        .merge(api)
        .merge(endpoints::routes())
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
