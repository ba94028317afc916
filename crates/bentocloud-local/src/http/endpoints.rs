//! Deployment endpoints (`/endpoints/ORG/CLUSTER/NAME/...`): no token, proxied to the
//! deployment's ready replicas by [`crate::fleet`].

use axum::extract::{Path, Request, State};
use axum::response::Response;

use super::db;
use crate::error::ApiError;
use crate::error::Result;
use crate::store::{self};
use crate::AppState;
use axum::routing::any;
use axum::Router;

/// Deployment URLs (served without a token).
pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/endpoints/:org/:cluster/:name", any(endpoint_root))
        .route("/endpoints/:org/:cluster/:name/", any(endpoint_root))
        .route("/endpoints/:org/:cluster/:name/*rest", any(endpoint))
}

pub(super) async fn endpoint_root(
    State(s): State<AppState>,
    Path((org, cluster, name)): Path<(String, String, String)>,
    req: Request,
) -> Result<Response> {
    serve_endpoint(s, org, cluster, name, String::new(), req).await
}

pub(super) async fn endpoint(
    State(s): State<AppState>,
    Path((org, cluster, name, rest)): Path<(String, String, String, String)>,
    req: Request,
) -> Result<Response> {
    serve_endpoint(s, org, cluster, name, rest, req).await
}

/// A deployment's URL: a reverse proxy to its ready replicas (see [`crate::fleet`]). No token
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
        st.with(|c| -> Result<_> {
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
