//! `/api/v1/org_secrets`: parses the request, runs the command of [`crate::secrets`]
//! and renders the row.

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::response::Response;
use axum::Extension;

use super::{db, ok, opt, params, read_json};
use crate::api::{CreateSecretRequest, ListResponse, UpdateSecretRequest};
use crate::error::ApiError;
use crate::error::Result;
use crate::query;
use crate::secrets::{self, ListQuery};
use crate::store::{self, Principal, SecretRow};
use crate::{render, AppState};
use axum::routing::get;
use axum::Router;

/// `/api/v1/org_secrets` and `/api/v1/org_secrets/{name}`.
pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/org_secrets", get(list_secrets).post(create_secret))
        .route(
            "/api/v1/org_secrets/:name",
            get(get_secret).patch(update_secret).delete(delete_secret),
        )
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

/// The list's parameters: `start`, `count` (or `all=true`), `search`, and the words of `q`
/// that are not `key:value` filters.
fn list_query(q: Option<String>) -> Result<ListQuery> {
    let q = params(q);
    let start = query::uint_param("start", opt(&q, "start"), 0).map_err(ApiError::bad)?;
    let all = opt(&q, "all") == Some("true");
    let count = if all {
        usize::MAX
    } else {
        query::uint_param("count", opt(&q, "count"), 20).map_err(ApiError::bad)?
    };
    let words = opt(&q, "q")
        .unwrap_or("")
        .split_whitespace()
        .filter(|w| !w.contains(':'))
        .map(str::to_string)
        .collect();
    Ok(ListQuery {
        start,
        count,
        search: opt(&q, "search").map(str::to_string),
        words,
    })
}

pub(super) async fn list_secrets(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    RawQuery(q): RawQuery,
) -> Result<Response> {
    let lq = list_query(q)?;
    let out = db(&s, move |st| {
        st.with(|c| -> Result<_> {
            let (total, rows) = secrets::list(c, p.org.id, &lq)?;
            let items = rows
                .iter()
                .map(|x| render_secret(c, &p, x))
                .collect::<Result<Vec<_>>>()?;
            Ok(ListResponse {
                start: lq.start as u64,
                count: items.len() as u64,
                total,
                items,
            })
        })
    })
    .await?;
    Ok(ok(out))
}

pub(super) async fn create_secret(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    RawQuery(q): RawQuery,
    body: Body,
) -> Result<Response> {
    let req: CreateSecretRequest = read_json(body).await?;
    secrets::check_create(&req)?;
    let cluster = opt(&params(q), "cluster").map(str::to_string);
    let now = s.clock.now_ms();
    let out = db(&s, move |st| {
        st.tx(|c| {
            let row = secrets::create(c, &p, cluster.as_deref(), req, now)?;
            render_secret(c, &p, &row)
        })
    })
    .await?;
    Ok(ok(out))
}

pub(super) async fn get_secret(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(name): Path<String>,
) -> Result<Response> {
    let out = db(&s, move |st| {
        st.with(|c| {
            let row = secrets::get(c, &p, &name)?;
            render_secret(c, &p, &row)
        })
    })
    .await?;
    Ok(ok(out))
}

pub(super) async fn update_secret(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(name): Path<String>,
    body: Body,
) -> Result<Response> {
    let req: UpdateSecretRequest = read_json(body).await?;
    secrets::validate_content(&req.content)?;
    let now = s.clock.now_ms();
    let out = db(&s, move |st| {
        st.tx(|c| {
            let row = secrets::update(c, &p, &name, req, now)?;
            render_secret(c, &p, &row)
        })
    })
    .await?;
    Ok(ok(out))
}

pub(super) async fn delete_secret(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(name): Path<String>,
) -> Result<Response> {
    let out = db(&s, move |st| {
        st.tx(|c| {
            let row = secrets::delete(c, &p, &name)?;
            render_secret(c, &p, &row)
        })
    })
    .await?;
    Ok(ok(out))
}
