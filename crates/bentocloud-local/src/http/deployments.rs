//! `/api/v2/deployments`: create, read, update, list and the commands (void_update,
//! terminate, delete), each a call into [`crate::deployments`], rendered as
//! `crate::api` documents. The list's filtering and paging serve the local view too.

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::response::Response;
use axum::Extension;
use serde::Serialize;

use super::{db, ok, opt, params, read_json};
use crate::api::{CreateDeploymentRequest, ListResponse, UpdateDeploymentRequest};
use crate::deployments::{self, Caller};
use crate::error::ApiError;
use crate::error::Result;
use crate::query::{self, Candidate, Filter};
use crate::store::{self, Principal};
use crate::{render, AppState};
use axum::routing::{get, post, put};
use axum::Router;

/// `/api/v2/deployments` and its commands.
pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/api/v2/deployments",
            get(list_deployments).post(create_deployment),
        )
        .route(
            "/api/v2/deployments/:name",
            get(get_deployment)
                .put(update_deployment)
                .delete(command_route(deployments::delete)),
        )
        .route(
            "/api/v2/deployments/:name/void_update",
            put(command_route(deployments::void_update)),
        )
        .route(
            "/api/v2/deployments/:name/terminate",
            post(command_route(deployments::terminate)),
        )
}

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

pub(super) async fn create_deployment(
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

pub(super) async fn get_deployment(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(name): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Response> {
    get_as(s, p, name, q, render_dep).await
}

/// One deployment of `p`'s org (by name, in `cluster` or the default one), rendered by `item`.
pub(super) async fn get_as<T: Serialize + Send + 'static>(
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

pub(super) async fn update_deployment(
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

/// What a command route's handler returns.
type Answer = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Response>> + Send>>;

/// The handler of a command route: runs `cmd` on the deployment the path names.
fn command_route(
    cmd: Cmd,
) -> impl Fn(State<AppState>, Extension<Principal>, Path<String>, RawQuery) -> Answer
       + Clone
       + Send
       + Sync
       + 'static {
    move |State(s), Extension(p), Path(name), RawQuery(q)| Box::pin(command(s, p, name, q, cmd))
}

pub(super) async fn list_deployments(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    RawQuery(q): RawQuery,
) -> Result<Response> {
    list_as(s, p, q, render_list_item).await
}

/// The list endpoint's filtering and paging, rendering each item of the page with `item`.
pub(super) async fn list_as<T: Serialize + Send + 'static>(
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
        st.with(|c| -> Result<_> {
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
