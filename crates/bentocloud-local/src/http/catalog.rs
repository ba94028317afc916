//! The catalog: the caller's user and organisation, clusters, instance types, bento
//! repositories and bentos.

use axum::extract::{Path, RawQuery, State};
use axum::response::Response;
use axum::Extension;

use super::{db, ok, opt, params};
use crate::api::ListResponse;
use crate::deployments::{self, Caller};
use crate::error::ApiError;
use crate::error::Result;
use crate::query;
use crate::store::{self, Principal};
use crate::{render, AppState};
use axum::routing::get;
use axum::Router;

/// The user, organisation, cluster, instance type and bento routes.
pub(super) fn routes() -> Router<AppState> {
    Router::new()
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
}

pub(super) async fn current_user(Extension(p): Extension<Principal>) -> Response {
    ok(render::user(&p.user_name, &p.org))
}

pub(super) async fn current_org(Extension(p): Extension<Principal>) -> Response {
    ok(render::organization(&p.org))
}

pub(super) async fn list_clusters(
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

pub(super) async fn get_cluster(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(name): Path<String>,
) -> Result<Response> {
    let c = db(&s, move |st| st.with(|c| store::cluster(c, Some(&name)))).await?;
    Ok(ok(render::cluster(&c, &p.org, &p.user_name)))
}

pub(super) async fn instance_types(
    State(s): State<AppState>,
    RawQuery(q): RawQuery,
) -> Result<Response> {
    let cluster = opt(&params(q), "cluster").map(str::to_string);
    let items = db(&s, move |st| {
        st.with(|c| -> Result<_> {
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

pub(super) async fn get_repo(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(repo): Path<String>,
) -> Result<Response> {
    let r = db(&s, move |st| {
        st.with(|c| -> Result<_> {
            let (uid, created) = store::find_repo(c, p.org.id, &repo)?.ok_or_else(|| {
                ApiError::not_found(format!("bento repository {repo:?} not found"))
            })?;
            Ok(render::repository(c, p.org.id, &repo, &uid, created)?)
        })
    })
    .await?;
    Ok(ok(r))
}

pub(super) async fn list_bentos(
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
            Ok(store::repo_bentos(c, p.org.id, &repo)?)
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
pub(super) async fn get_bento(
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
