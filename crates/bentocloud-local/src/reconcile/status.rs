//! The statuses a deployment reports: the periodic status sync from its pods, and the
//! status of a deployment that is serving outside a rollout.

use super::*;

/// The status sync: once `Timing::status_sync_ms` has passed since the last one, the reported
/// status is recomputed the way the platform's ancestor does it (Yatai `getStatusFromK8s`,
/// API doc §10): from *all* of the deployment's pods, not from the revision being rolled
/// out. While a rollout runs, a pending (starting) pod makes it `deploying` and otherwise any
/// ready pod makes it `running`, so a rollout that pauses with no pod starting (a
/// `RampedSlowRollout` between steps) reads `running` before it is complete, as it would
/// there. Outside a rollout the reconciler's status stands (`running`, `unhealthy`,
/// `scaled-to-zero`, `failed`, the image-build and termination states).
pub fn sync_status(d: &mut DeploymentRow, reps: &[ReplicaRow], timing: &Timing, now: i64) {
    if !sync_due(d, timing, now) {
        return;
    }
    d.status_synced_at = now;
    d.reported_status = synced_status(d, reps);
}

/// Whether the status sync period has passed since `d`'s last sync.
pub fn sync_due(d: &DeploymentRow, timing: &Timing, now: i64) -> bool {
    now >= d
        .status_synced_at
        .saturating_add(timing.status_sync_ms.max(0))
}

/// What a status sync computes (see [`sync_status`]).
///
/// Outside a rollout, a `running` deployment with a replica starting (an autoscaler's
/// scale-up, or a replica added back) syncs as `deploying`: the platform's ancestor reports
/// `deploying` while any of the deployment's pods is pending, whatever made it (Yatai
/// `services/deployment.go` `getStatusFromK8s`, API doc §4 and §10; there is no "scaling"
/// status in the platform's list). `unhealthy` (a crash), `scaled-to-zero` (waking) and the
/// others stand.
pub fn synced_status(d: &DeploymentRow, reps: &[ReplicaRow]) -> DeploymentStatus {
    if d.phase != Phase::Rolling {
        let scaling = reps.iter().any(|r| r.state == ReplicaState::Starting);
        if d.status == DeploymentStatus::Running && scaling {
            return DeploymentStatus::Deploying;
        }
        return d.status;
    }
    let live = |state: ReplicaState| reps.iter().any(|r| r.state == state);
    if live(ReplicaState::Starting) {
        DeploymentStatus::Deploying
    } else if live(ReplicaState::Ready) {
        DeploymentStatus::Running
    } else {
        DeploymentStatus::Deploying
    }
}

pub(super) fn serving_note(d: &DeploymentRow) -> String {
    if d.serving_revision.is_empty() {
        "; no previous revision is serving".into()
    } else {
        format!("; revision {} keeps serving", d.serving_revision)
    }
}

/// Every service of `rev`'s main target has its desired count of ready replicas.
pub(super) fn serving_healthy(
    cx: &mut Ctx,
    d: &DeploymentRow,
    rev: &str,
    reps: &[ReplicaRow],
) -> Result<bool> {
    if rev.is_empty() {
        return Ok(false);
    }
    let (cfg, bento) = {
        let r = cx.rev(rev)?;
        (r.config.clone(), r.bento.clone())
    };
    for s in run_services(&cfg, &bento) {
        let ready = ready_main(reps, rev, &s);
        if ready < cx.desired(d, &cfg, &s, false)? {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Status of a deployment whose rollout is complete: `running` while every service has its
/// base count (`max(min, 1)`, or all it wants when fewer) of ready replicas — replicas added
/// by a scale-up that are still starting do not make it unhealthy; `scaled-to-zero` when it
/// wants no replica (and while it wakes from zero); `unhealthy` otherwise (a replica crashed
/// and its replacement is not ready yet), or `deploying` while replicas start again after a
/// restart of the control plane (`previous` is then `deploying`, see [`after_restart`]).
/// Canary versions count like `main` for `running` and `unhealthy` (each service of each
/// version needs its desired count ready); scaling to zero concerns `main` only (canary
/// versions do not autoscale, see [`canary`]).
pub(super) fn serving_status(
    cx: &mut Ctx,
    d: &DeploymentRow,
    reps: &[ReplicaRow],
    previous: DeploymentStatus,
) -> Result<DeploymentStatus> {
    let rev = d.serving_revision.clone();
    let (cfg, bento) = {
        let r = cx.rev(&rev)?;
        (r.config.clone(), r.bento.clone())
    };
    let mut all_zero = true;
    let mut healthy = true;
    let mut any_ready = false;
    for s in run_services(&cfg, &bento) {
        let want = cx.desired(d, &cfg, &s, false)?;
        let base = (scaling_bounds(&cfg, &s).0.max(1) as usize).min(want);
        let ready = ready_main(reps, &rev, &s);
        all_zero &= want == 0;
        any_ready |= ready > 0;
        healthy &= ready >= base;
    }
    healthy &= canary_ready(cx, &rev, reps)?;
    let live = reps
        .iter()
        .any(|x| x.is_main() && x.revision_uid == rev && x.state != ReplicaState::Draining);
    Ok(if all_zero && !live {
        DeploymentStatus::ScaledToZero
    } else if healthy && !all_zero {
        DeploymentStatus::Running
    } else if previous == DeploymentStatus::ScaledToZero && !any_ready {
        DeploymentStatus::ScaledToZero
    } else if healthy {
        // Scaling down to zero: replicas still draining.
        DeploymentStatus::Running
    } else if previous == DeploymentStatus::Deploying {
        // Replicas starting again after a restart of the control plane ([`after_restart`]; a
        // rollout completes as `running`, so nothing else is `deploying` in this phase).
        DeploymentStatus::Deploying
    } else {
        DeploymentStatus::Unhealthy
    })
}

/// How many `main` replicas of revision `rev` run `service` and are ready.
fn ready_main(reps: &[ReplicaRow], rev: &str, service: &str) -> usize {
    reps.iter()
        .filter(|x| {
            x.is_main()
                && x.revision_uid == rev
                && x.service == service
                && x.state == ReplicaState::Ready
        })
        .count()
}
