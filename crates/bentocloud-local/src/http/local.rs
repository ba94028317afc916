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

/// The replicas' own routes (probes and metrics, see `crate::fleet`): a bento that failed them
/// would not be "ready but failing requests" but unready or crashing, which `unready` and
/// `crash_after_seconds` already say.
const PROBE_PATHS: [&str; 4] = ["/readyz", "/livez", "/healthz", "/metrics"];

/// Most `fail_paths` one bento may list.
const MAX_FAIL_PATHS: usize = 64;

/// `fail_paths`, checked: each an absolute path (no query), not a probe route, not repeated.
fn fail_paths(paths: &[String]) -> Result<Vec<String>> {
    if paths.len() > MAX_FAIL_PATHS {
        return Err(ApiError::bad(format!(
            "fail_paths lists {} paths: at most {MAX_FAIL_PATHS}",
            paths.len()
        )));
    }
    for (i, p) in paths.iter().enumerate() {
        if !p.starts_with('/') || p.len() > 1024 || p.contains(['?', '#']) {
            return Err(ApiError::bad(format!(
                "fail_paths: {p:?} is not a request path: use one starting with / (no query), e.g. /predict"
            )));
        }
        if PROBE_PATHS.contains(&p.as_str()) {
            return Err(ApiError::bad(format!(
                "fail_paths: {p:?} is a probe route the replicas must answer (use unready or crash_after_seconds for a bento that fails its probes)"
            )));
        }
        if paths[..i].contains(p) {
            return Err(ApiError::bad(format!("fail_paths: {p:?} is repeated")));
        }
    }
    Ok(paths.to_vec())
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
        fail_paths: fail_paths(&req.fail_paths)?,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn fail_paths_are_request_paths_other_than_the_probes() {
        let ok = strings(&["/predict", "/v1/embed", "/"]);
        assert_eq!(fail_paths(&ok).expect("valid"), ok);
        assert_eq!(fail_paths(&[]).expect("none"), Vec::<String>::new());
        for (bad, why) in [
            (strings(&["predict"]), "not a request path"),
            (strings(&[""]), "not a request path"),
            (strings(&["/predict?x=1"]), "not a request path"),
            (strings(&["/readyz"]), "probe route"),
            (strings(&["/metrics"]), "probe route"),
            (strings(&["/a", "/a"]), "repeated"),
        ] {
            let e = fail_paths(&bad).expect_err("invalid");
            assert!(e.to_string().contains(why), "{bad:?}: {e}");
        }
        let many: Vec<String> = (0..=MAX_FAIL_PATHS).map(|i| format!("/p{i}")).collect();
        assert!(fail_paths(&many).is_err());
        // A bento stored before fail_paths existed fails nothing.
        let old: Behaviour = serde_json::from_str(r#"{"startup_ms": 1, "unready": false}"#)
            .expect("an old behaviour row");
        assert!(old.fail_paths.is_empty());
    }
}
