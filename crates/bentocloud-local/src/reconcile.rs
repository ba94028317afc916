//! The reconciler: a task that ticks (every `Timing::tick_ms`) and moves each deployment's
//! replicas and rollout forward from durable state, so a restart resumes where it stopped.
//!
//! Replica lifecycle: `starting` → `ready` (readiness probe passes) → `draining` (no new
//! traffic, in-flight requests finish) → `stopped`; a ready replica may `crash`. Deployment
//! phases: `image-building` → `image-build-failed` | `rolling` → `complete` | `failed`, and
//! `terminating` → `terminated`. The statuses the API shows are derived from them.
//!
//! What a replica *is* lives behind [`Runtime`] (see [`super::runtime`]): through it the
//! reconciler starts and stops replicas, reads their probes and the endpoint load, and
//! publishes each deployment's routes.
//!
//! Restart: replica processes die with the server. A live replica row whose process does not
//! exist ([`Runtime::exists`]) is started again (state `starting`, fresh `started_at`); a
//! draining one is marked stopped. The rollout then continues from the rows: old-revision
//! replicas that were serving are kept (not drained) while they start again, so a
//! `RollingUpdate` interrupted by a restart completes without dropping the old revision.
//! Before the restarted server answers anything, [`after_restart`] makes its state say so:
//! no replica is ready, and a `running` status becomes `deploying` until they are ready again
//! (see there for why the status tells the truth rather than replicas outliving the server).
//!
//! Autoscaling (phases `complete` and `failed`, on the serving revision): the desired count of
//! each service is stored in the `scale` table, clamped to `[min_replicas, max_replicas]`.
//! From [`Runtime::load`]: scale up at once to `ceil(peak in-flight / target)`; scale down to
//! the need of the whole `scale_down_window_ms`; with `min_replicas = 0`, scale to zero after
//! `scale_to_zero_idle_ms` without requests (status `scaled-to-zero`). A rollout never targets
//! zero replicas.
//!
//! Strategies (per service, `deployment_strategy`, default `Recreate` as documented upstream);
//! each pass's decision is a pure function of the service's replica counts,
//! [`super::strategy::step`], whose module details them:
//! - `RollingUpdate`: start one new replica (surge 1), wait until ready, drain one old, repeat;
//!   ready replicas never drop below the desired count.
//! - `Recreate`: drain every old replica, wait until they stopped, then start all new ones
//!   (downtime: the endpoint answers 503 between the two).
//! - `RampedSlowRollout`: like `RollingUpdate`, with a pause (`Timing::ramp_pause_ms`) after
//!   each new replica becomes ready.
//! - `BestEffortControlledRollout`: the platform's maxSurge 0 / maxUnavailable 20% (at least
//!   one): old replicas drain within that budget and new ones start in their places, so
//!   capacity dips by up to the budget (see [`super::strategy`]).
//!
//! A new replica not ready within `Timing::progress_deadline_ms` fails the rollout: the new
//! replicas are drained, the previously serving revision keeps serving, and the deployment
//! reports `failed` with the reason in `rollout.message`.
//!
//! Canary (API doc §3.2, §10): a revision runs one *target* per canary version besides `main`.
//! Every replica row names its target ([`ReplicaRow::target`]: `main` or the version's name);
//! a canary replica runs its version's bento and config. What is above concerns `main` only,
//! unchanged by a canary. The canary versions of the revision whose routing the endpoint applies
//! (`routing`: the one being rolled out, else the serving one) are kept by `canary`: each
//! service of each version runs `max(min_replicas, 1)` of its version's scaling (no
//! autoscaling), started at once; replicas of the same version from the previous revision keep
//! serving its traffic until the new ones are all ready; a version the revision no longer has
//! (an update with `canary: null`) is drained at once. A rollout completes when `main` has
//! (per its strategy) and every canary version is ready; a canary replica not ready within
//! the progress deadline fails it like a `main` one. Outside a rollout, a canary version short
//! of ready replicas makes the deployment `unhealthy` (`serving_status`); the status sync
//! ([`sync_status`]) looks at every pod, canary ones included, as the platform's does.

mod rollout;
mod status;

use rollout::*;
pub use status::*;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use rusqlite::Connection;

use super::config::{Timing, CRASH_MEMORY_MS};
use super::error::Result;
use super::render::{desired, desired_for, run_services, scaling_bounds};
use super::runtime::{Environment, Load, RouteUpdate, Runtime};
use super::split::Split;
use super::store::{self, BentoRow, DeploymentRow, ReplicaRow, Store, MAIN_TARGET};
use super::strategy::{self, Counts, Drain};
use super::vocab::{Phase, ReplicaState};
use crate::api::{DeploymentConfig, DeploymentStatus, Strategy};

/// Runs the reconciler until `shutdown` resolves.
pub async fn run(
    store: Arc<Store>,
    runtime: Arc<dyn Runtime>,
    timing: Timing,
    clock: super::clock::Clock,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let mut every = tokio::time::interval(std::time::Duration::from_millis(timing.tick_ms.max(5)));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = every.tick() => {}
            _ = shutdown.changed() => return,
        }
        let (s, rt, t) = (store.clone(), runtime.clone(), timing.clone());
        let now = clock.now_ms();
        let res = tokio::task::spawn_blocking(move || tick(&s, rt.as_ref(), &t, now)).await;
        match res {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "reconciler tick failed"),
            Err(e) => tracing::warn!(error = %e, "reconciler tick panicked"),
        }
    }
}

/// One pass over every active deployment, each in its own transaction; after each commit the
/// deployment's route is published (and a change of its canary routing recorded on the
/// timeline, `crate::timeline::record_routing`), and at the end anything no longer live is
/// forgotten.
pub fn tick(s: &Store, rt: &dyn Runtime, timing: &Timing, now: i64) -> Result<()> {
    let ids: Vec<i64> = s.with(|c| -> Result<_> {
        Ok(store::active_deployments(c)?.iter().map(|d| d.id).collect())
    })?;
    let mut deps = HashSet::new();
    let mut live = HashSet::new();
    for id in ids {
        // The route is published inside the transaction, before the commit: by the time the
        // API shows a status, the endpoint already routes accordingly.
        let res = s.tx(|c| -> Result<()> {
            reconcile(c, rt, timing, id, now)?;
            let d = store::deployment_by_id(c, id)?;
            if d.deleted_at.is_some() || d.phase == Phase::Terminated {
                return Ok(());
            }
            let reps = store::live_replicas(c, id)?;
            let org = store::org_name(c, d.org_id)?;
            let wake = wakeable(c, &d)?;
            let (routing_rev, split) = routing(c, &d)?;
            super::timeline::record_routing(c, id, &routing_rev, split.as_ref(), now)?;
            let (traffic, cold_start_ms) = traffic(c, &d)?;
            rt.publish(RouteUpdate {
                deployment: &d,
                org: &org,
                replicas: &reps,
                wake,
                split,
                traffic,
                cold_start_ms,
            });
            deps.insert(id);
            live.extend(reps.into_iter().map(|r| r.uid));
            Ok(())
        });
        if let Err(e) = res {
            tracing::warn!(deployment = id, error = %e, "reconcile failed");
        }
    }
    rt.retain(&deps, &live);
    Ok(())
}

/// The endpoint holds requests while nothing is ready: the serving revision may scale to zero
/// and no rollout is under way.
fn wakeable(c: &Connection, d: &DeploymentRow) -> Result<bool> {
    if d.phase != Phase::Complete && d.phase != Phase::Failed || d.serving_revision.is_empty() {
        return Ok(false);
    }
    let rev = store::revision(c, &d.serving_revision)?;
    let b = store::bento_by_id(c, rev.bento_id)?;
    Ok(run_services(&rev.config, &b)
        .iter()
        .any(|s| scaling_bounds(&rev.config, s).0 == 0))
}

/// The traffic settings the endpoint applies: `config_overrides.traffic` and
/// `cold_start_timeout` of the entry service (the first the revision runs) of the serving
/// revision, else of the revision being rolled out.
fn traffic(
    c: &Connection,
    d: &DeploymentRow,
) -> Result<(bentocloud_api::settings::Traffic, Option<i64>)> {
    let uid = if d.serving_revision.is_empty() {
        &d.target_revision
    } else {
        &d.serving_revision
    };
    if uid.is_empty() {
        return Ok(Default::default());
    }
    let rev = store::revision(c, uid)?;
    let b = store::bento_by_id(c, rev.bento_id)?;
    let entry = run_services(&rev.config, &b).into_iter().next();
    let svc = entry.and_then(|s| rev.config.services.get(&s).cloned());
    Ok(svc.map_or_else(Default::default, |s| {
        (
            bentocloud_api::settings::Traffic::of(&s.config_overrides),
            s.cold_start_timeout.map(|t| t.saturating_mul(1000)),
        )
    }))
}

/// The traffic split the endpoint applies: the canary of the revision being rolled out while
/// a rollout runs (its versions get traffic as soon as they have a ready replica, and a removed
/// canary stops getting any at once), else the canary of the serving revision (while a new
/// revision's image builds, and after a failed rollout). Returns that revision's uid with it
/// (`""` and `None` before anything served).
fn routing(c: &Connection, d: &DeploymentRow) -> Result<(String, Option<Split>)> {
    let uid = if d.phase == Phase::Rolling {
        &d.target_revision
    } else {
        &d.serving_revision
    };
    if uid.is_empty() {
        return Ok((String::new(), None));
    }
    let split = store::revision(c, uid)?
        .canary
        .as_ref()
        .and_then(Split::from_canary);
    Ok((uid.clone(), split))
}

/// Revision data the rollout needs, cached per tick.
struct Rev {
    config: DeploymentConfig,
    bento: BentoRow,
    /// The canary versions, by name (empty without a canary).
    versions: Vec<(String, Version)>,
}

/// What a canary version runs: its own bento and config.
#[derive(Clone)]
struct Version {
    config: DeploymentConfig,
    bento: BentoRow,
}

struct Ctx<'a> {
    c: &'a Connection,
    rt: &'a dyn Runtime,
    timing: &'a Timing,
    now: i64,
    revs: HashMap<String, Rev>,
    /// A replica was started or changed state in this pass (the timeline records a sample).
    changed: bool,
}

impl Ctx<'_> {
    fn rev(&mut self, uid: &str) -> Result<&Rev> {
        if !self.revs.contains_key(uid) {
            let r = store::revision(self.c, uid)?;
            let bento = store::bento_by_id(self.c, r.bento_id)?;
            let mut versions = Vec::new();
            for (name, v) in r.canary.iter().flat_map(|c| c.versions.iter()) {
                versions.push((
                    name.clone(),
                    Version {
                        config: v.config.clone(),
                        bento: store::bento_by_id(self.c, v.bento_id)?,
                    },
                ));
            }
            self.revs.insert(
                uid.to_string(),
                Rev {
                    config: r.config,
                    bento,
                    versions,
                },
            );
        }
        self.revs
            .get(uid)
            .ok_or_else(|| super::error::ApiError::internal("revision cache"))
    }

    /// The bento a replica runs: its revision's, or its canary version's.
    fn bento_of(&mut self, r: &ReplicaRow) -> Result<BentoRow> {
        let rev = self.rev(&r.revision_uid)?;
        if r.is_main() {
            return Ok(rev.bento.clone());
        }
        rev.versions
            .iter()
            .find(|(name, _)| *name == r.target)
            .map(|(_, v)| v.bento.clone())
            .ok_or_else(|| {
                super::error::ApiError::internal(format!(
                    "replica {} runs canary version {:?}, which revision {} does not have",
                    r.uid, r.target, r.revision_uid
                ))
            })
    }

    /// What the replica's process sees, fixed when it starts: the config's `envs` (the
    /// service's own over the deployment's), then the items of its `secrets` as they are now
    /// (`env` secrets as variables, `mountfile` secrets as files at `path/key`). A secret
    /// changed later does not reach a running replica, only the replicas started after it
    /// (BentoCloud's docs: restart the deployments that use a changed secret; API doc §10).
    fn environment_of(&mut self, d: &DeploymentRow, r: &ReplicaRow) -> Result<Environment> {
        let rev = self.rev(&r.revision_uid)?;
        let config = if r.is_main() {
            rev.config.clone()
        } else {
            rev.versions
                .iter()
                .find(|(name, _)| *name == r.target)
                .map(|(_, v)| v.config.clone())
                .unwrap_or_else(|| rev.config.clone())
        };
        let mut env = Environment::default();
        let service_envs = config.services.get(&r.service).and_then(|s| s.envs.clone());
        for e in config
            .envs
            .iter()
            .flatten()
            .chain(service_envs.iter().flatten())
        {
            env.vars.insert(e.name.clone(), e.value.clone());
        }
        for name in config.secrets.iter().flatten() {
            let Some(secret) = store::find_secret(self.c, d.org_id, name)? else {
                continue;
            };
            for item in &secret.content.items {
                let value = item.value.clone().unwrap_or_default();
                if secret.content.kind == "mountfile" {
                    let dir = secret.content.path.clone().unwrap_or_default();
                    let file = item.sub_path.clone().unwrap_or_else(|| item.key.clone());
                    let path = format!("{}/{}", dir.trim_end_matches('/'), file);
                    env.files.insert(path, value);
                } else {
                    env.vars.insert(item.key.clone(), value);
                }
            }
        }
        Ok(env)
    }

    /// Starts a replica of `service` of `target` (`main` or a canary version) of `rev`.
    fn start(&mut self, d: &DeploymentRow, rev: &str, target: &str, service: &str) -> Result<()> {
        let mut r = ReplicaRow {
            id: 0,
            uid: store::new_uid(),
            deployment_id: d.id,
            revision_uid: rev.to_string(),
            target: target.to_string(),
            service: service.to_string(),
            state: ReplicaState::Starting,
            started_at: self.now,
            ready_at: None,
            drain_started_at: None,
            stopped_at: None,
            port: None,
        };
        let bento = self.bento_of(&r)?;
        let env = self.environment_of(d, &r)?;
        r.port = self.rt.start(d, &r, &bento, &env);
        store::insert_replica(self.c, &r)?;
        self.changed = true;
        Ok(())
    }

    /// Is a replacement for crashed replicas of this service still in its crash back-off?
    fn crash_backing_off(
        &self,
        d: &DeploymentRow,
        rev: &str,
        target: &str,
        service: &str,
    ) -> Result<bool> {
        let key = store::ReplicaKey {
            deployment_id: d.id,
            revision: rev,
            target,
            service,
        };
        let since = self.now - CRASH_MEMORY_MS;
        let (crashes, last) = store::crashes_since(self.c, &key, since)?;
        let wait = self.timing.crash_backoff(crashes);
        Ok(last.is_some_and(|at| self.now < at + wait))
    }

    /// Desired replicas of `service` in `cfg` (`rolling`: the target of a rollout).
    fn desired(
        &self,
        d: &DeploymentRow,
        cfg: &DeploymentConfig,
        s: &str,
        rolling: bool,
    ) -> Result<usize> {
        Ok(desired(self.c, d.id, cfg, s, rolling)? as usize)
    }

    fn drain(&mut self, r: &mut ReplicaRow) -> Result<()> {
        if r.state == ReplicaState::Starting || r.state == ReplicaState::Ready {
            r.state = ReplicaState::Draining;
            r.drain_started_at = Some(self.now);
            store::save_replica(self.c, r)?;
            self.changed = true;
        }
        Ok(())
    }
}

/// The rollout strategy of `service`: `Recreate` when none is set (as documented upstream). The
/// API rejects a name it does not know, so only a database edited by hand can hold one; such a
/// service rolls like `RollingUpdate`, as it always has.
fn strategy(cfg: &DeploymentConfig, service: &str) -> Strategy {
    match cfg
        .services
        .get(service)
        .and_then(|s| s.deployment_strategy.as_deref())
    {
        None => Strategy::Recreate,
        Some(name) => Strategy::parse(name).unwrap_or(Strategy::RollingUpdate),
    }
}

/// Moves one deployment forward. Public for tests that drive time by hand.
pub fn reconcile(
    c: &Connection,
    rt: &dyn Runtime,
    timing: &Timing,
    id: i64,
    now: i64,
) -> Result<()> {
    let mut d = store::deployment_by_id(c, id)?;
    if d.deleted_at.is_some() {
        return Ok(());
    }
    if d.phase == Phase::Terminated {
        let before = d.clone();
        sync_status(&mut d, &[], timing, now);
        if d != before {
            store::save_deployment(c, &d)?;
        }
        return Ok(());
    }
    let before = d.clone();
    let mut cx = Ctx {
        c,
        rt,
        timing,
        now,
        revs: HashMap::new(),
        changed: false,
    };

    let mut reps = store::live_replicas(c, d.id)?;
    replica_lifecycle(&mut cx, &d, &mut reps)?;
    advance_phase(&mut cx, &mut d, &mut reps, before.status)?;
    // The sync looks at the pods as they are now: the replicas this pass started are rows
    // already, not yet in `reps` (a sync from `reps` saw no pending pod in the pass that starts
    // the next new replica, and reported `running` mid-rollout).
    if sync_due(&d, timing, now) {
        let pods_now = store::live_replicas(c, d.id)?;
        sync_status(&mut d, &pods_now, timing, now);
    }
    if d != before {
        if d.reported_status != before.reported_status {
            tracing::debug!(deployment = %d.name, cluster = %d.cluster, reported = %d.reported_status, "status synced");
        }
        if d.status != before.status || d.phase != before.phase {
            tracing::info!(deployment = %d.name, cluster = %d.cluster, status = %d.status, phase = %d.phase, "status changed");
        }
        store::save_deployment(c, &d)?;
    }
    if cx.changed || d.phase != before.phase || d.target_revision != before.target_revision {
        super::timeline::record(c, &d, now)?;
    }
    Ok(())
}

/// What a start of the control plane does to the state a previous process left, before it
/// serves (called by `crate::prepare`): every replica process died with that process, so
/// each live replica row is no longer ready (`starting`: the first pass starts it again, see
/// [`replica_lifecycle`]; a draining one is `stopped`), and a deployment that had live
/// replicas and reported `running` reports `deploying` (and, in phase `complete`, is
/// `deploying` live too: [`serving_status`] keeps it so until its replicas are ready again,
/// then `running`). Other statuses already say it is not serving, or say why (`failed`,
/// `unhealthy`, the image-build and termination ones), and are kept. Returns how many
/// deployments it touched.
///
/// Why the status tells the truth instead of replicas outliving the control plane: on the real
/// platform pods outlive a restart of the control plane, and its status never claims `running`
/// with no ready replica (Yatai's `getStatusFromK8s` reports `deploying` while any pod is
/// pending, API doc §10). Here replicas are tasks of the server process (`fleet`, stopped by
/// `crate::run` and by kill -9 alike); making them outlive it would mean separate processes
/// adopted again on restart (ports, probes, in-flight drains), a different runtime. Until
/// then the endpoint answers 503 after a restart, and the one honest status for that is one
/// the official client and the provider keep waiting on: `deploying`, as the ancestor reports
/// pods that are all starting. The reported status is set at once (a restart is a sync: the
/// next one follows `Timing::status_sync_ms` later), never left at a stale `running`.
pub fn after_restart(c: &Connection, now: i64) -> Result<usize> {
    let mut touched = 0;
    for mut d in store::active_deployments(c)? {
        if d.phase == Phase::Terminated {
            continue;
        }
        let reps = store::live_replicas(c, d.id)?;
        if reps.is_empty() {
            continue;
        }
        for mut r in reps {
            if r.state == ReplicaState::Draining {
                r.state = ReplicaState::Stopped;
                r.stopped_at = Some(now);
            } else {
                r.state = ReplicaState::Starting;
                r.ready_at = None;
            }
            store::save_replica(c, &r)?;
        }
        let before = d.clone();
        if d.reported_status == DeploymentStatus::Running {
            d.reported_status = DeploymentStatus::Deploying;
            d.status_synced_at = now;
        }
        if d.phase == Phase::Complete && d.status == DeploymentStatus::Running {
            d.status = DeploymentStatus::Deploying;
        }
        if d != before {
            store::save_deployment(c, &d)?;
        }
        touched += 1;
    }
    Ok(touched)
}

/// Step 1 of a pass: each live replica's process checked (restarted after a control-plane
/// restart), and moved on when it became ready, crashed or finished draining.
fn replica_lifecycle(cx: &mut Ctx, d: &DeploymentRow, reps: &mut Vec<ReplicaRow>) -> Result<()> {
    for r in reps.iter_mut() {
        let bento = cx.bento_of(r)?;
        if !cx.rt.exists(r) {
            // The process died with a previous server: start it again (or finish its drain).
            if r.state == ReplicaState::Draining {
                r.state = ReplicaState::Stopped;
                r.stopped_at = Some(cx.now);
            } else {
                tracing::info!(deployment = %d.name, replica = %r.uid, "replica process missing (control plane restarted): starting it again");
                r.state = ReplicaState::Starting;
                r.started_at = cx.now;
                r.ready_at = None;
                let env = cx.environment_of(d, r)?;
                r.port = cx.rt.start(d, r, &bento, &env);
            }
            store::save_replica(cx.c, r)?;
            cx.changed = true;
            continue;
        }
        let old_state = r.state;
        match r.state {
            ReplicaState::Starting if cx.rt.ready(r, &bento, cx.now) => {
                r.state = ReplicaState::Ready;
                r.ready_at = Some(cx.now);
            }
            ReplicaState::Ready if cx.rt.crashed(r, &bento, cx.now) => {
                cx.rt.stop(r);
                r.state = ReplicaState::Crashed;
                r.stopped_at = Some(cx.now);
            }
            ReplicaState::Draining if cx.rt.drained(r, cx.now, cx.timing.drain_ms) => {
                cx.rt.stop(r);
                r.state = ReplicaState::Stopped;
                r.stopped_at = Some(cx.now);
            }
            _ => {}
        }
        if r.state != old_state {
            store::save_replica(cx.c, r)?;
            cx.changed = true;
        }
    }
    reps.retain(ReplicaRow::is_live);

    Ok(())
}

/// Step 2 of a pass: the deployment's phase moves on (termination, image build, rollout, or
/// steady state with autoscaling).
fn advance_phase(
    cx: &mut Ctx,
    d: &mut DeploymentRow,
    reps: &mut [ReplicaRow],
    before_status: DeploymentStatus,
) -> Result<()> {
    match d.phase {
        Phase::Terminating => {
            for r in reps.iter_mut() {
                cx.drain(r)?;
            }
            if reps.is_empty() {
                d.phase = Phase::Terminated;
                d.status = DeploymentStatus::Terminated;
                d.phase_since = cx.now;
            }
        }
        Phase::ImageBuilding => {
            let beh = cx.rev(&d.target_revision)?.bento.behaviour.clone();
            if cx.now >= d.phase_since + beh.image_build_ms {
                if beh.image_build_fails {
                    let tag = cx.rev(&d.target_revision)?.bento.tag();
                    d.phase = Phase::ImageBuildFailed;
                    d.status = DeploymentStatus::ImageBuildFailed;
                    d.message = format!(
                        "image build of bento {tag} for revision {} failed: the image builder exited with an error{}",
                        d.target_revision,
                        serving_note(d)
                    );
                } else {
                    d.phase = Phase::Rolling;
                    d.status = DeploymentStatus::Deploying;
                }
                d.phase_since = cx.now;
            } else {
                maintain(cx, d, reps)?;
            }
        }
        Phase::Rolling => roll(cx, d, reps)?,
        _ => {
            if let Some(load) = cx.rt.load(d.id, cx.now) {
                autoscale(cx, d, load, reps)?;
            }
            maintain(cx, d, reps)?;
            if d.phase == Phase::Complete {
                d.status = serving_status(cx, d, reps, before_status)?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
