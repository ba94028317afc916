//! `/api/local/v1`: the emulator's own routes, never used by the provider: the deployment
//! views with rollout progress, revisions and timeline (for the web page, the demo and tests)
//! and the admin route that registers a bento and how it behaves.

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::response::Response;
use axum::Extension;

use super::deployments::{get_as, list_as};
use super::{db, ok, opt, params, read_json};
use crate::deployments;
use crate::error::ApiError;
use crate::error::Result;
use crate::faults;
use crate::store::{self, Behaviour, Principal};
use crate::{render, AppState, RegisterBento};
use axum::routing::{get, post};
use axum::Router;

/// The `/api/local/v1` routes (the fault injection admin route of [`faults`] included).
pub(super) fn routes() -> Router<AppState> {
    Router::new()
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
            faults::ADMIN_PATH,
            get(faults::get_faults)
                .put(faults::put_faults)
                .delete(faults::delete_faults),
        )
}

/// `GET /api/local/v1/deployments`: the same list (same parameters) with each deployment's
/// rollout progress, for the web page, the demo and tests; never used by the provider.
pub(super) async fn list_local_deployments(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    RawQuery(q): RawQuery,
) -> Result<Response> {
    list_as(s, p, q, local_dep).await
}

/// `GET /api/local/v1/deployments/{name}`: one deployment with its rollout progress.
pub(super) async fn get_local_deployment(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(name): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Response> {
    get_as(s, p, name, q, local_dep).await
}

/// `GET /api/local/v1/deployments/{name}/revisions`: its revisions, newest first (the web
/// page's detail view; see [`crate::timeline`]).
pub(super) async fn get_local_revisions(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(name): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Response> {
    get_as(s, p, name, q, |c, _, _, d| {
        Ok(crate::timeline::revisions(c, d)?)
    })
    .await
}

/// `GET /api/local/v1/deployments/{name}/timeline`: replica counts per revision over its last
/// rollout, as the reconciler recorded them (see [`crate::timeline`]).
pub(super) async fn get_local_timeline(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(name): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Response> {
    let cluster = opt(&params(q), "cluster").map(str::to_string);
    let now = s.clock.now_ms();
    let doc = db(&s, move |st| {
        st.with(|c| -> Result<_> {
            let d = deployments::get(c, &p, cluster.as_deref(), &name)?;
            Ok(crate::timeline::read(c, &d, now)?)
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
    Ok(render::local_deployment(c, &p.org, d, base)?)
}

fn secs_to_ms(what: &str, v: f64) -> Result<i64> {
    if !v.is_finite() || !(0.0..=86_400.0).contains(&v) {
        return Err(ApiError::bad(format!(
            "{what} is {v}: use 0 to 86400 seconds"
        )));
    }
    Ok((v * 1000.0).round() as i64)
}

pub(super) async fn register_bento(
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
