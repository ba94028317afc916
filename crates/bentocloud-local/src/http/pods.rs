//! The pods websockets: a deployment's pods as `KubePod` documents, sent again on every
//! change, and the image-builder stream (always empty).

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, RawQuery, State};
use axum::response::Response;
use axum::Extension;
use serde_json::json;

use super::{db, opt, params};
use crate::config::{Timing, CRASH_MEMORY_MS};
use crate::deployments;
use crate::error::ApiError;
use crate::error::Result;
use crate::store::{self, Principal};
use crate::vocab::{Phase, ReplicaState};
use crate::{render, AppState};
use axum::routing::get;
use axum::Router;

/// The two pods websockets.
pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/ws/v2/deployments/:name/pods", get(deployment_pods_ws))
        .route("/ws/v1/clusters/:cluster/pods", get(builder_pods_ws))
}

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
    timing: &Timing,
    now: i64,
) -> Result<Vec<serde_json::Value>> {
    let reps = store::live_replicas(c, d.id)?;
    let target = store::revision(c, &d.target_revision)?;
    let target_bento = store::bento_by_id(c, target.bento_id)?;
    let mut out = Vec::new();
    for r in &reps {
        out.push(replica_pod(c, p, d, &target, r)?);
    }
    for r in crash_looping(c, d, &reps, timing, now)? {
        out.push(crash_looping_pod(replica_pod(c, p, d, &target, &r)?));
    }
    // A rollout that failed its progress deadline: Kubernetes keeps the new revision's pods,
    // not ready, with the probe failures as events; the emulator has already stopped those
    // replicas (so the old revision serves alone), and lists one such pod per service in their
    // place, so a client reads the reason where the platform gives it.
    if d.phase == Phase::Failed {
        out.extend(failed_rollout_pods(p, d, &target, &target_bento));
    }
    Ok(out)
}

/// The bento of a target (`main` or a canary version) of a revision.
fn target_bento_id(rev: &store::RevisionRow, target: &str) -> Option<i64> {
    if target == store::MAIN_TARGET {
        Some(rev.bento_id)
    } else {
        rev.canary
            .as_ref()
            .and_then(|c| c.versions.get(target))
            .map(|v| v.bento_id)
    }
}

/// A pod's labels: the deployment's own, then the operator's (with the service's target name
/// when the pod is a replica's).
fn pod_labels(
    d: &store::DeploymentRow,
    b: &store::BentoRow,
    service: Option<&str>,
) -> serde_json::Map<String, serde_json::Value> {
    let mut labels = serde_json::Map::new();
    for l in &d.labels {
        labels.insert(l.key.clone(), json!(l.value));
    }
    labels.insert("yatai.ai/bento-deployment".into(), json!(d.name));
    labels.insert("yatai.ai/bento-repository".into(), json!(b.repo));
    labels.insert("yatai.ai/bento-version".into(), json!(b.version));
    labels.insert(
        "yatai.ai/bento-deployment-component-type".into(),
        json!("api-server"),
    );
    if let Some(service) = service {
        labels.insert(
            "yatai.ai/bento-deployment-target-name".into(),
            json!(service),
        );
    }
    labels
}

/// The pod of live replica `r` (`target` is the revision being rolled out).
fn replica_pod(
    c: &rusqlite::Connection,
    p: &Principal,
    d: &store::DeploymentRow,
    target: &store::RevisionRow,
    r: &store::ReplicaRow,
) -> Result<serde_json::Value> {
    let rev = store::revision(c, &r.revision_uid)?;
    let id = target_bento_id(&rev, &r.target).ok_or_else(|| {
        ApiError::internal(format!(
            "replica {} runs canary version {:?}, which its revision does not have",
            r.uid, r.target
        ))
    })?;
    let b = store::bento_by_id(c, id)?;
    let is_old = target_bento_id(target, &r.target) != Some(b.id);
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
    Ok(json!({
        "name": format!("{}-{canary_part}{}-{}", d.name, r.service.to_lowercase(), &r.uid[..8.min(r.uid.len())]),
        "namespace": format!("bcl-{}", p.org.name),
        "node_name": "localhost",
        "labels": pod_labels(d, &b, Some(&r.service)),
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
    }))
}

/// Crashed replicas still waiting for their replacement (the reconciler's crash back-off,
/// [`Timing::crash_backoff`]): per service of a revision's target, those that crashed after
/// its newest live replica started, while the back-off of its latest crash runs. Kubernetes
/// restarts the container in place and keeps the pod, which the emulator's replacement
/// replicas do not; these stand for such pods.
fn crash_looping(
    c: &rusqlite::Connection,
    d: &store::DeploymentRow,
    live: &[store::ReplicaRow],
    timing: &Timing,
    now: i64,
) -> Result<Vec<store::ReplicaRow>> {
    let crashed = store::crashed_replicas(c, d.id, now - CRASH_MEMORY_MS)?;
    let same = |a: &store::ReplicaRow, b: &store::ReplicaRow| {
        (&a.revision_uid, &a.target, &a.service) == (&b.revision_uid, &b.target, &b.service)
    };
    Ok(crashed
        .iter()
        .filter(|r| {
            let of_key = crashed.iter().filter(|o| same(o, r));
            let last = of_key.clone().filter_map(|o| o.stopped_at).max();
            let backoff = timing.crash_backoff(of_key.count() as i64);
            let newest_start = live
                .iter()
                .filter(|l| same(l, r))
                .map(|l| l.started_at)
                .max();
            let stopped = r.stopped_at.unwrap_or(i64::MIN);
            last.is_some_and(|last| now < last + backoff)
                && newest_start.is_none_or(|start| stopped > start)
        })
        .cloned()
        .collect())
}

/// The pod of a crashed replica in its back-off: not ready, `CrashLoopBackOff`, with the
/// kubelet's `BackOff` event.
fn crash_looping_pod(mut pod: serde_json::Value) -> serde_json::Value {
    let name = pod["name"].as_str().unwrap_or_default().to_string();
    pod["status"]["phase"] = json!("Running");
    pod["status"]["ready"] = json!(false);
    pod["pod_status"] = json!({
        "status": "CrashLoopBackOff",
        "phase": "Running",
        "container_states": [],
    });
    pod["warnings"] = json!([{
        "reason": "BackOff",
        "message": format!("Back-off restarting failed container main in pod {name} (the container crashed: exited with an error)"),
    }]);
    pod
}

/// One not-ready pod per service of the failed revision `target`, with the probe failure and
/// the deadline as warnings.
fn failed_rollout_pods(
    p: &Principal,
    d: &store::DeploymentRow,
    target: &store::RevisionRow,
    target_bento: &store::BentoRow,
) -> Vec<serde_json::Value> {
    render::run_services(&target.config, target_bento)
        .into_iter()
        .map(|service| {
            json!({
                "name": format!("{}-{}-{}", d.name, service.to_lowercase(), &target.uid[..8.min(target.uid.len())]),
                "namespace": format!("bcl-{}", p.org.name),
                "node_name": "localhost",
                "labels": pod_labels(d, target_bento, None),
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
            })
        })
        .collect()
}

pub(super) async fn deployment_pods_ws(
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
        let (timing, now) = (s.timing.clone(), s.clock.now_ms());
        let payload = db(&s, move |st| {
            st.with(|c| {
                let d = deployments::get(c, &p2, c2.as_deref(), &n2)?;
                pods(c, &p2, &d, &timing, now)
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
pub(super) async fn builder_pods_ws(
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
