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

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use rusqlite::Connection;

use super::config::Timing;
use super::render::{desired, desired_for, run_services, scaling_bounds};
use super::runtime::{Environment, Load, RouteUpdate, Runtime};
use super::split::Split;
use super::store::{self, BentoRow, DeploymentRow, ReplicaRow, Result, Store, MAIN_TARGET};
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
/// deployment's route is published, and at the end anything no longer live is forgotten.
pub fn tick(s: &Store, rt: &dyn Runtime, timing: &Timing, now: i64) -> Result<()> {
    let ids: Vec<i64> =
        s.with(|c| Ok(store::active_deployments(c)?.iter().map(|d| d.id).collect()))?;
    let mut deps = HashSet::new();
    let mut live = HashSet::new();
    for id in ids {
        // The route is published inside the transaction, before the commit: by the time the
        // API shows a status, the endpoint already routes accordingly.
        let res = s.tx(|c| {
            reconcile(c, rt, timing, id, now)?;
            let d = store::deployment_by_id(c, id)?;
            if d.deleted_at.is_some() || d.phase == Phase::Terminated {
                return Ok(());
            }
            let reps = store::live_replicas(c, id)?;
            let org = store::org_name(c, d.org_id)?;
            let wake = wakeable(c, &d)?;
            let split = routing(c, &d)?;
            rt.publish(RouteUpdate {
                deployment: &d,
                org: &org,
                replicas: &reps,
                wake,
                split,
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

/// The traffic split the endpoint applies: the canary of the revision being rolled out while
/// a rollout runs (its versions get traffic as soon as they have a ready replica, and a removed
/// canary stops getting any at once), else the canary of the serving revision (while a new
/// revision's image builds, and after a failed rollout).
fn routing(c: &Connection, d: &DeploymentRow) -> Result<Option<Split>> {
    let uid = if d.phase == Phase::Rolling {
        &d.target_revision
    } else {
        &d.serving_revision
    };
    if uid.is_empty() {
        return Ok(None);
    }
    Ok(store::revision(c, uid)?
        .canary
        .as_ref()
        .and_then(Split::from_canary))
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
/// serves (called by `emulator::prepare`): every replica process died with that process, so
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
/// `emulator::run` and by kill -9 alike); making them outlive it would mean separate processes
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
                autoscale(cx, d, load)?;
            }
            maintain(cx, d, reps)?;
            if d.phase == Phase::Complete {
                d.status = serving_status(cx, d, reps, before_status)?;
            }
        }
    }
    Ok(())
}

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
pub fn synced_status(d: &DeploymentRow, reps: &[ReplicaRow]) -> DeploymentStatus {
    if d.phase != Phase::Rolling {
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

fn serving_note(d: &DeploymentRow) -> String {
    if d.serving_revision.is_empty() {
        "; no previous revision is serving".into()
    } else {
        format!("; revision {} keeps serving", d.serving_revision)
    }
}

/// Every service of `rev`'s main target has its desired count of ready replicas.
fn serving_healthy(
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
        let ready = reps
            .iter()
            .filter(|x| {
                x.is_main()
                    && x.revision_uid == rev
                    && x.service == s
                    && x.state == ReplicaState::Ready
            })
            .count();
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
fn serving_status(
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
        let ready = reps
            .iter()
            .filter(|x| {
                x.is_main()
                    && x.revision_uid == rev
                    && x.service == s
                    && x.state == ReplicaState::Ready
            })
            .count();
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

/// Sets the desired count of each service of the serving revision from the endpoint load.
fn autoscale(cx: &mut Ctx, d: &DeploymentRow, load: Load) -> Result<()> {
    let rev = d.serving_revision.clone();
    if rev.is_empty() {
        return Ok(());
    }
    let (cfg, bento) = {
        let r = cx.rev(&rev)?;
        (r.config.clone(), r.bento.clone())
    };
    let target = cx.timing.scale_target_in_flight.max(1) as usize;
    let need = |n: usize| n.div_ceil(target);
    for s in run_services(&cfg, &bento) {
        let (min, max) = scaling_bounds(&cfg, &s);
        let (min, max) = (min as usize, max as usize);
        let cur = cx.desired(d, &cfg, &s, false)?;
        let idle = load.in_flight == 0 && load.idle_ms >= cx.timing.scale_to_zero_idle_ms;
        let floor = if min == 0 && idle { 0 } else { min.max(1) };
        let up = need(load.peak);
        let next = if up > cur {
            up
        } else {
            need(load.window_peak).max(floor)
        };
        let next = next.clamp(floor.min(max), max);
        if next != cur {
            tracing::info!(deployment = %d.name, service = %s, from = cur, to = next, in_flight = load.peak, "autoscaling");
            store::scale_set(cx.c, d.id, &s, next as i64, cx.now)?;
        }
    }
    Ok(())
}

/// Keeps the serving revision at its desired count (replaces crashed replicas) and, once it
/// is healthy, drains `main` replicas of any other revision; its canary versions are kept by
/// [`canary`].
fn maintain(cx: &mut Ctx, d: &DeploymentRow, reps: &mut [ReplicaRow]) -> Result<()> {
    let rev = d.serving_revision.clone();
    if rev.is_empty() {
        for r in reps.iter_mut() {
            cx.drain(r)?;
        }
        return Ok(());
    }
    let (cfg, bento) = {
        let r = cx.rev(&rev)?;
        (r.config.clone(), r.bento.clone())
    };
    for s in run_services(&cfg, &bento) {
        let desired = cx.desired(d, &cfg, &s, false)?;
        let live: Vec<usize> = (0..reps.len())
            .filter(|&i| {
                reps[i].is_main()
                    && reps[i].revision_uid == rev
                    && reps[i].service == s
                    && reps[i].state != ReplicaState::Draining
            })
            .collect();
        for _ in live.len()..desired {
            cx.start(d, &rev, MAIN_TARGET, &s)?;
        }
        // Surplus: drain starting replicas first, then the newest.
        let mut live = live;
        live.sort_by_key(|&i| {
            (
                reps[i].state == ReplicaState::Ready,
                std::cmp::Reverse(reps[i].id),
            )
        });
        let extra = live.len().saturating_sub(desired);
        for &i in live.iter().take(extra) {
            cx.drain(&mut reps[i])?;
        }
    }
    if serving_healthy(cx, d, &rev, reps)? {
        for r in reps
            .iter_mut()
            .filter(|r| r.is_main() && r.revision_uid != rev)
        {
            cx.drain(r)?;
        }
    }
    canary(cx, d, &rev, reps, false)?;
    Ok(())
}

/// Is every service of every canary version of `rev` at its desired count of ready replicas?
fn canary_ready(cx: &mut Ctx, rev: &str, reps: &[ReplicaRow]) -> Result<bool> {
    let versions = cx.rev(rev)?.versions.clone();
    for (name, v) in &versions {
        for s in run_services(&v.config, &v.bento) {
            let ready = reps
                .iter()
                .filter(|r| {
                    r.revision_uid == rev
                        && r.target == *name
                        && r.service == s
                        && r.state == ReplicaState::Ready
                })
                .count();
            if ready < desired_for(&v.config, &s) as usize {
                return Ok(false);
            }
        }
    }
    Ok(true)
}

/// Canary replicas, for the revision `rev` whose routing the endpoint applies (the target of a
/// rollout, else the serving revision; see [`routing`]). Each service of each version runs its
/// version's base count, `max(min_replicas, 1)` of the version's own scaling (canary versions do
/// not autoscale); all are started at once, surplus ones drained (starting first, newest
/// first). Replicas of the same version from other revisions keep serving its traffic until
/// every service of the version has its count ready in `rev`, then drain; replicas of a version
/// `rev` does not have (removed with `canary: null`, or renamed) drain at once, as the endpoint
/// stops sending them traffic. With `rolling`, a canary replica not ready within the progress
/// deadline fails the rollout, like a `main` one: returns the reason.
fn canary(
    cx: &mut Ctx,
    d: &DeploymentRow,
    rev: &str,
    reps: &mut [ReplicaRow],
    rolling: bool,
) -> Result<Option<String>> {
    let versions = cx.rev(rev)?.versions.clone();
    for r in reps
        .iter_mut()
        .filter(|r| !r.is_main() && !versions.iter().any(|(name, _)| *name == r.target))
    {
        cx.drain(r)?;
    }
    let now = cx.now;
    for (name, v) in &versions {
        let mut all_ready = true;
        for s in run_services(&v.config, &v.bento) {
            let want = desired_for(&v.config, &s) as usize;
            let of = |r: &ReplicaRow| r.revision_uid == rev && r.target == *name && r.service == s;
            if rolling {
                if let Some(stuck) = reps.iter().find(|r| {
                    of(r)
                        && r.state == ReplicaState::Starting
                        && now - r.started_at > cx.timing.progress_deadline_ms
                }) {
                    return Ok(Some(format!(
                        "rollout of revision {rev} failed: replica {} of canary version {name:?}, service {s:?} (bento {}) did not become ready within {}s (readiness probe /readyz kept failing){}",
                        stuck.uid,
                        v.bento.tag(),
                        cx.timing.progress_deadline_ms as f64 / 1000.0,
                        serving_note(d)
                    )));
                }
            }
            let mut live: Vec<usize> = (0..reps.len())
                .filter(|&i| of(&reps[i]) && reps[i].state != ReplicaState::Draining)
                .collect();
            for _ in live.len()..want {
                cx.start(d, rev, name, &s)?;
            }
            live.sort_by_key(|&i| {
                (
                    reps[i].state == ReplicaState::Ready,
                    std::cmp::Reverse(reps[i].id),
                )
            });
            let extra = live.len().saturating_sub(want);
            for &i in live.iter().take(extra) {
                cx.drain(&mut reps[i])?;
            }
            let ready = reps
                .iter()
                .filter(|r| of(r) && r.state == ReplicaState::Ready)
                .count();
            all_ready &= ready >= want;
        }
        if all_ready {
            for r in reps
                .iter_mut()
                .filter(|r| r.target == *name && r.revision_uid != rev)
            {
                cx.drain(r)?;
            }
        }
    }
    Ok(None)
}

/// A rollout that failed: the new revision's starting replicas (every target) are drained, the
/// serving revision keeps serving.
fn fail(cx: &mut Ctx, d: &mut DeploymentRow, reps: &mut [ReplicaRow], msg: String) -> Result<()> {
    for r in reps
        .iter_mut()
        .filter(|r| r.revision_uid == d.target_revision && r.state == ReplicaState::Starting)
    {
        cx.drain(r)?;
    }
    d.phase = Phase::Failed;
    d.status = DeploymentStatus::Failed;
    d.message = msg;
    d.phase_since = cx.now;
    Ok(())
}

/// One step of the rollout of `d.target_revision`: its `main` target service by service per
/// strategy ([`roll_service`]), its canary versions by [`canary`]; complete once both are.
fn roll(cx: &mut Ctx, d: &mut DeploymentRow, reps: &mut [ReplicaRow]) -> Result<()> {
    let target = d.target_revision.clone();
    let (cfg, bento) = {
        let r = cx.rev(&target)?;
        (r.config.clone(), r.bento.clone())
    };
    let services = run_services(&cfg, &bento);
    let mut all_done = true;
    for s in &services {
        match roll_service(cx, d, &cfg, &bento, s, reps)? {
            ServiceRoll::Done => {}
            ServiceRoll::Rolling => all_done = false,
            ServiceRoll::Stuck(msg) => return fail(cx, d, reps, msg),
        }
    }
    if let Some(msg) = canary(cx, d, &target, reps, true)? {
        return fail(cx, d, reps, msg);
    }
    if all_done && canary_ready(cx, &target, reps)? {
        for r in reps
            .iter_mut()
            .filter(|r| r.revision_uid != target || r.is_main() && !services.contains(&r.service))
        {
            cx.drain(r)?;
        }
        d.phase = Phase::Complete;
        d.status = DeploymentStatus::Running;
        d.serving_revision = target;
        d.message = String::new();
        d.phase_since = cx.now;
    } else {
        d.status = DeploymentStatus::Deploying;
    }
    Ok(())
}

/// Where one service of a rollout's `main` target stands after a pass.
enum ServiceRoll {
    /// Every new replica is ready and no old one is left serving.
    Done,
    Rolling,
    /// A new replica missed the progress deadline: the rollout fails with this reason.
    Stuck(String),
}

/// One pass of the rollout of `service`'s `main` replicas: the progress deadline, then what the
/// strategy decides from the counts ([`strategy::step`]), then what every strategy shares:
/// old replicas still starting are drained (unless the serving revision still needs them), and
/// so are new ones beyond the desired count.
fn roll_service(
    cx: &mut Ctx,
    d: &DeploymentRow,
    cfg: &DeploymentConfig,
    bento: &BentoRow,
    service: &str,
    reps: &mut [ReplicaRow],
) -> Result<ServiceRoll> {
    let target = d.target_revision.as_str();
    let now = cx.now;
    let desired = cx.desired(d, cfg, service, true)?;
    let is = |r: &ReplicaRow, new: bool, states: &[ReplicaState]| {
        r.is_main()
            && (r.revision_uid == target) == new
            && r.service == service
            && states.contains(&r.state)
    };
    if let Some(stuck) = reps.iter().find(|r| {
        is(r, true, &[ReplicaState::Starting])
            && now - r.started_at > cx.timing.progress_deadline_ms
    }) {
        return Ok(ServiceRoll::Stuck(format!(
            "rollout of revision {target} failed: replica {} of service {service:?} (bento {}) did not become ready within {}s (readiness probe /readyz kept failing){}",
            stuck.uid,
            bento.tag(),
            cx.timing.progress_deadline_ms as f64 / 1000.0,
            serving_note(d)
        )));
    }
    let n = |new: bool, state: ReplicaState| reps.iter().filter(|r| is(r, new, &[state])).count();
    let counts = Counts {
        desired,
        new_ready: n(true, ReplicaState::Ready),
        new_starting: n(true, ReplicaState::Starting),
        old_ready: n(false, ReplicaState::Ready),
        old_starting: n(false, ReplicaState::Starting),
        old_draining: n(false, ReplicaState::Draining),
        since_new_ready_ms: reps
            .iter()
            .filter(|r| is(r, true, &[ReplicaState::Ready]))
            .filter_map(|r| r.ready_at)
            .max()
            .map(|t| now - t),
    };
    let step = strategy::step(strategy(cfg, service), &counts, cx.timing.ramp_pause_ms);
    let old_live = [ReplicaState::Starting, ReplicaState::Ready];
    if step.drain == Drain::All {
        for r in reps.iter_mut().filter(|r| is(r, false, &old_live)) {
            cx.drain(r)?;
        }
    }
    for _ in 0..step.start {
        cx.start(d, target, MAIN_TARGET, service)?;
    }
    // Old replicas still starting go, unless they belong to the serving revision and are
    // needed (restarted after a control-plane restart).
    for r in reps
        .iter_mut()
        .filter(|r| is(r, false, &[ReplicaState::Starting]))
        .filter(|r| r.revision_uid != d.serving_revision || counts.new_ready >= desired)
    {
        cx.drain(r)?;
    }
    if let Drain::Ready(oldest) = step.drain {
        for r in reps
            .iter_mut()
            .filter(|r| is(r, false, &[ReplicaState::Ready]))
            .take(oldest)
        {
            cx.drain(r)?;
        }
    }
    // Surplus new replicas (fewer desired than running): starting ones first, oldest first.
    let mut surplus: Vec<usize> = (0..reps.len())
        .filter(|&i| is(&reps[i], true, &old_live))
        .collect();
    surplus.sort_by_key(|&i| (reps[i].state == ReplicaState::Ready, reps[i].id));
    let extra = surplus.len().saturating_sub(desired);
    for &i in surplus.iter().take(extra) {
        cx.drain(&mut reps[i])?;
    }
    let old_left = reps.iter().filter(|r| is(r, false, &old_live)).count();
    Ok(if counts.new_ready < desired || old_left > 0 {
        ServiceRoll::Rolling
    } else {
        ServiceRoll::Done
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{CreateDeploymentRequest, Scaling, ServiceConfig, UpdateDeploymentRequest};
    use crate::emulator::config::PlatformConfig;
    use crate::emulator::deployments::{self, Caller};
    use crate::emulator::runtime::Simulated;
    use crate::emulator::store::Behaviour;
    use DeploymentStatus as S;

    struct World {
        _dir: tempfile::TempDir,
        s: Store,
        p: store::Principal,
        t: Timing,
        rt: Recording,
    }

    /// [`Simulated`], recording the target and bento of every replica it starts.
    #[derive(Default)]
    struct Recording(std::sync::Mutex<Vec<(String, String)>>);

    impl Recording {
        fn started(&self) -> Vec<(String, String)> {
            self.0.lock().expect("lock").clone()
        }
    }

    impl Runtime for Recording {
        fn start(
            &self,
            d: &DeploymentRow,
            r: &ReplicaRow,
            b: &BentoRow,
            env: &Environment,
        ) -> Option<i64> {
            self.0
                .lock()
                .expect("lock")
                .push((r.target.clone(), b.tag()));
            Simulated.start(d, r, b, env)
        }
        fn ready(&self, r: &ReplicaRow, b: &BentoRow, now: i64) -> bool {
            Simulated.ready(r, b, now)
        }
        fn crashed(&self, r: &ReplicaRow, b: &BentoRow, now: i64) -> bool {
            Simulated.crashed(r, b, now)
        }
        fn drained(&self, r: &ReplicaRow, now: i64, drain_ms: i64) -> bool {
            Simulated.drained(r, now, drain_ms)
        }
        fn stop(&self, r: &ReplicaRow) {
            Simulated.stop(r)
        }
    }

    fn world() -> World {
        let dir = tempfile::tempdir().expect("tmp");
        let s = Store::open(&dir.path().join("state.db")).expect("open");
        let p = s
            .tx(|c| {
                store::sync_platform(c, &PlatformConfig::default(), 0)?;
                store::add_token(c, "org", "tok", "me", 0)?;
                Ok(store::principal(c, "tok")?.expect("p"))
            })
            .expect("seed");
        World {
            _dir: dir,
            s,
            p,
            t: Timing::default(),
            rt: Recording::default(),
        }
    }

    fn spec(bento: &str, strategy: &str, replicas: i64) -> UpdateDeploymentRequest {
        let mut u = UpdateDeploymentRequest {
            bento: bento.into(),
            ..Default::default()
        };
        u.services.insert(
            "apiserver".into(),
            ServiceConfig {
                scaling: Some(Scaling {
                    min_replicas: Some(replicas),
                    max_replicas: Some(replicas),
                    policy: None,
                }),
                deployment_strategy: Some(strategy.into()),
                ..Default::default()
            },
        );
        u
    }

    impl World {
        fn bento(&self, tag: &str, beh: Behaviour) {
            let (repo, ver) = tag.split_once(':').expect("tag");
            self.s
                .tx(|c| store::put_bento(c, self.p.org.id, repo, ver, &beh, 0).map(|_| ()))
                .expect("bento");
        }
        fn create(&self, name: &str, spec: UpdateDeploymentRequest, now: i64) -> i64 {
            let caller = Caller {
                principal: &self.p,
                auto_register_bentos: false,
            };
            let req = CreateDeploymentRequest {
                name: Some(name.into()),
                dev: false,
                spec,
            };
            self.s
                .tx(|c| deployments::create(c, &caller, None, req, now))
                .expect("create")
                .id
        }
        fn update(&self, name: &str, spec: UpdateDeploymentRequest, now: i64) {
            let caller = Caller {
                principal: &self.p,
                auto_register_bentos: false,
            };
            self.s
                .tx(|c| deployments::update(c, &caller, None, name, spec, now))
                .expect("update");
        }
        /// Ticks from `from` to `to` every 50 ms; returns the deployment and checks an
        /// invariant on every tick.
        fn run(
            &self,
            id: i64,
            from: i64,
            to: i64,
            check: impl FnMut(&DeploymentRow, &[ReplicaRow]),
        ) -> DeploymentRow {
            self.run_on(&self.rt, id, from, to, check)
        }
        /// [`World::run`] with replicas run by `rt`.
        fn run_on(
            &self,
            rt: &dyn Runtime,
            id: i64,
            from: i64,
            to: i64,
            mut check: impl FnMut(&DeploymentRow, &[ReplicaRow]),
        ) -> DeploymentRow {
            let mut now = from;
            while now <= to {
                self.s
                    .tx(|c| reconcile(c, rt, &self.t, id, now))
                    .expect("reconcile");
                let (d, reps) = self
                    .s
                    .with(|c| {
                        Ok((
                            store::deployment_by_id(c, id)?,
                            store::live_replicas(c, id)?,
                        ))
                    })
                    .expect("read");
                check(&d, &reps);
                now += 50;
            }
            self.s
                .with(|c| store::deployment_by_id(c, id))
                .expect("read")
        }
    }

    #[test]
    fn a_status_synced_mid_rollout_never_reports_running_with_old_replicas_left() {
        // A sync on every tick: each one sees the pods as the tick left them. A sync that ran
        // before the tick's new replica was counted reported `running` while old replicas
        // still served (the provider then returned early).
        let mut w = world();
        w.t.status_sync_ms = 0;
        w.bento("app:v1", Behaviour::default());
        w.bento("app:v2", Behaviour::default());
        let id = w.create("roll", spec("app:v1", "RollingUpdate", 3), 0);
        let d = w.run(id, 0, 5_000, |_, _| {});
        assert_eq!((d.phase, d.reported_status), (Phase::Complete, S::Running));
        w.update("roll", spec("app:v2", "RollingUpdate", 3), 5_000);
        let mut saw_deploying = false;
        let d = w.run(id, 5_000, 12_000, |d, reps| {
            let old_serving = reps
                .iter()
                .any(|r| r.revision_uid != d.target_revision && r.state == ReplicaState::Ready);
            if d.phase == Phase::Rolling {
                saw_deploying |= d.reported_status == S::Deploying;
                assert!(
                    !(d.reported_status == S::Running && old_serving && d.status_synced_at > 5_000),
                    "reported running mid-rollout with old replicas ready: {d:?} {reps:?}"
                );
            }
        });
        assert!(saw_deploying);
        assert_eq!((d.phase, d.reported_status), (Phase::Complete, S::Running));
    }

    /// `spec` plus a canary: one version `name` of `bento`, weight 30, `replicas` replicas.
    fn with_canary(
        mut u: UpdateDeploymentRequest,
        name: &str,
        bento: &str,
        replicas: i64,
    ) -> UpdateDeploymentRequest {
        let mut services = std::collections::BTreeMap::new();
        services.insert(
            "apiserver".to_string(),
            ServiceConfig {
                scaling: Some(Scaling {
                    min_replicas: Some(replicas),
                    max_replicas: Some(replicas),
                    policy: None,
                }),
                ..Default::default()
            },
        );
        let mut versions = std::collections::BTreeMap::new();
        versions.insert(
            name.to_string(),
            crate::api::CanaryVersion {
                bento: Some(bento.into()),
                weight: Some(30),
                services,
                ..Default::default()
            },
        );
        u.canary = Some(crate::api::Canary {
            route_type: Some("random".into()),
            route_by: None,
            versions: Some(versions),
        });
        u
    }

    fn of_target<'a>(
        reps: &'a [ReplicaRow],
        target: &str,
        state: ReplicaState,
    ) -> Vec<&'a ReplicaRow> {
        reps.iter()
            .filter(|r| r.target == target && r.state == state)
            .collect()
    }

    fn ready_of<'a>(reps: &'a [ReplicaRow], rev: &'a str) -> usize {
        reps.iter()
            .filter(|r| r.state == ReplicaState::Ready && r.revision_uid == rev)
            .count()
    }

    #[test]
    fn a_service_without_a_strategy_recreates() {
        let mut cfg = DeploymentConfig::default();
        for (name, set) in [
            ("none", None),
            ("ramped", Some("RampedSlowRollout")),
            ("bogus", Some("Bogus")),
        ] {
            cfg.services.insert(
                name.into(),
                ServiceConfig {
                    deployment_strategy: set.map(str::to_string),
                    ..Default::default()
                },
            );
        }
        assert_eq!(strategy(&cfg, "none"), Strategy::Recreate);
        assert_eq!(strategy(&cfg, "not-configured"), Strategy::Recreate);
        assert_eq!(strategy(&cfg, "ramped"), Strategy::RampedSlowRollout);
        assert_eq!(strategy(&cfg, "bogus"), Strategy::RollingUpdate);
    }

    #[test]
    fn rolling_update_never_drops_below_desired_ready() {
        let w = world();
        w.bento("iris:v1", Behaviour::default());
        w.bento("iris:v2", Behaviour::default());
        let id = w.create("a", spec("iris:v1", "RollingUpdate", 3), 0);
        let d = w.run(id, 0, 5_000, |_, _| {});
        assert_eq!(d.status, S::Running);
        let v1 = d.serving_revision.clone();
        w.update("a", spec("iris:v2", "RollingUpdate", 3), 5_000);
        let mut min_ready = usize::MAX;
        let d = w.run(id, 5_000, 15_000, |_, reps| {
            let ready = reps
                .iter()
                .filter(|r| r.state == ReplicaState::Ready)
                .count();
            min_ready = min_ready.min(ready);
        });
        assert_eq!(d.status, S::Running);
        assert_ne!(d.serving_revision, v1);
        assert!(min_ready >= 3, "ready dropped to {min_ready}");
    }

    #[test]
    fn recreate_has_a_gap_and_unready_fails_keeping_old() {
        let w = world();
        w.bento("iris:v1", Behaviour::default());
        w.bento("iris:v2", Behaviour::default());
        w.bento(
            "iris:bad",
            Behaviour {
                unready: true,
                ..Default::default()
            },
        );
        let id = w.create("a", spec("iris:v1", "Recreate", 2), 0);
        let d = w.run(id, 0, 3_000, |_, _| {});
        assert_eq!(d.status, S::Running);
        w.update("a", spec("iris:v2", "Recreate", 2), 3_000);
        let mut saw_zero = false;
        let d = w.run(id, 3_000, 6_000, |_, reps| {
            saw_zero |= reps.iter().all(|r| r.state != ReplicaState::Ready);
        });
        assert!(saw_zero);
        assert_eq!(d.status, S::Running);
        let v2 = d.serving_revision.clone();
        w.update("a", spec("iris:bad", "RollingUpdate", 2), 6_000);
        let d = w.run(id, 6_000, 18_000, |_, reps| {
            assert!(ready_of(reps, &v2) >= 2);
        });
        assert_eq!(d.status, S::Failed);
        assert_eq!(d.serving_revision, v2);
        assert!(d.message.contains("did not become ready"), "{}", d.message);
        assert!(d.message.contains("keeps serving"), "{}", d.message);
    }

    #[test]
    fn image_build_failure_and_terminate() {
        let w = world();
        w.bento(
            "iris:v1",
            Behaviour {
                image_build_ms: 500,
                ..Default::default()
            },
        );
        w.bento(
            "iris:broken",
            Behaviour {
                image_build_fails: true,
                image_build_ms: 200,
                ..Default::default()
            },
        );
        let id = w.create("a", spec("iris:v1", "RollingUpdate", 1), 0);
        let mut seen = Vec::new();
        let d = w.run(id, 0, 2_000, |d, _| {
            if seen.last() != Some(&d.status) {
                seen.push(d.status);
            }
        });
        assert_eq!(seen, [S::ImageBuilding, S::Deploying, S::Running]);
        assert_eq!(d.status, S::Running);
        w.update("a", spec("iris:broken", "RollingUpdate", 1), 2_000);
        let d = w.run(id, 2_000, 3_000, |_, _| {});
        assert_eq!(d.status, S::ImageBuildFailed);
        w.s.tx(|c| deployments::terminate(c, &w.p, None, "a", 3_000))
            .expect("term");
        let d = w.run(id, 3_000, 4_000, |_, _| {});
        assert_eq!(d.status, S::Terminated);
        assert!(w
            .s
            .with(|c| store::live_replicas(c, id))
            .expect("r")
            .is_empty());
    }

    #[test]
    fn crashing_bento_is_unhealthy_then_restarted() {
        let w = world();
        w.bento(
            "iris:v1",
            Behaviour {
                crash_after_ms: Some(1_000),
                ..Default::default()
            },
        );
        let id = w.create("a", spec("iris:v1", "RollingUpdate", 1), 0);
        let mut seen = Vec::new();
        w.run(id, 0, 4_000, |d, _| {
            if seen.last() != Some(&d.status) {
                seen.push(d.status);
            }
        });
        assert!(
            seen.starts_with(&[S::Deploying, S::Running, S::Unhealthy, S::Running]),
            "{seen:?}"
        );
    }

    /// The replicas of a control plane started again: none of the previous process's exists;
    /// each one it starts is ready `startup_ms` after it started it.
    #[derive(Default)]
    struct Restarted(std::sync::Mutex<HashMap<String, i64>>);

    impl Runtime for Restarted {
        fn start(
            &self,
            _: &DeploymentRow,
            r: &ReplicaRow,
            _: &BentoRow,
            _: &Environment,
        ) -> Option<i64> {
            self.0
                .lock()
                .expect("lock")
                .insert(r.uid.clone(), r.started_at);
            None
        }
        fn exists(&self, r: &ReplicaRow) -> bool {
            self.0.lock().expect("lock").contains_key(&r.uid)
        }
        fn ready(&self, r: &ReplicaRow, b: &BentoRow, now: i64) -> bool {
            let started = self.0.lock().expect("lock").get(&r.uid).copied();
            started.is_some_and(|t| !b.behaviour.unready && now >= t + b.behaviour.startup_ms)
        }
        fn crashed(&self, r: &ReplicaRow, b: &BentoRow, now: i64) -> bool {
            Simulated.crashed(r, b, now)
        }
        fn drained(&self, r: &ReplicaRow, now: i64, drain_ms: i64) -> bool {
            Simulated.drained(r, now, drain_ms)
        }
        fn stop(&self, _: &ReplicaRow) {}
    }

    #[test]
    fn after_a_restart_the_status_is_deploying_until_replicas_serve_again() {
        let mut w = world();
        w.t.status_sync_ms = 1_000;
        w.bento(
            "app:v1",
            Behaviour {
                startup_ms: 2_000,
                ..Default::default()
            },
        );
        let id = w.create("r", spec("app:v1", "RollingUpdate", 2), 0);
        let d = w.run(id, 0, 8_000, |_, _| {});
        assert_eq!(
            (d.phase, d.status, d.reported_status),
            (Phase::Complete, S::Running, S::Running)
        );

        // The control plane starts again at 60 s: the state says at once that nothing serves.
        let restart = 60_000;
        let n =
            w.s.tx(|c| after_restart(c, restart))
                .expect("after_restart");
        assert_eq!(n, 1);
        let (d, reps) =
            w.s.with(|c| {
                Ok((
                    store::deployment_by_id(c, id)?,
                    store::live_replicas(c, id)?,
                ))
            })
            .expect("read");
        assert_eq!(
            (d.phase, d.status, d.reported_status, d.status_synced_at),
            (Phase::Complete, S::Deploying, S::Deploying, restart)
        );
        assert_eq!(reps.len(), 2);
        assert!(
            reps.iter().all(|r| r.state == ReplicaState::Starting),
            "{reps:?}"
        );

        // Its replicas start again: `deploying` (never `running`, never `unhealthy`) while
        // none is ready, `running` once they serve, reported at the next sync.
        let rt = Restarted::default();
        let mut seen = vec![d.reported_status];
        let mut live_seen = vec![d.status];
        let d = w.run_on(&rt, id, restart, restart + 6_000, |d, reps| {
            let ready = reps
                .iter()
                .filter(|r| r.state == ReplicaState::Ready)
                .count();
            if ready < 2 {
                assert_ne!(
                    d.status,
                    S::Running,
                    "live running with {ready} ready: {reps:?}"
                );
            }
            if ready == 0 {
                assert_ne!(
                    d.reported_status,
                    S::Running,
                    "reported running with none ready"
                );
            }
            if seen.last() != Some(&d.reported_status) {
                seen.push(d.reported_status);
            }
            if live_seen.last() != Some(&d.status) {
                live_seen.push(d.status);
            }
        });
        assert_eq!(seen, [S::Deploying, S::Running]);
        assert_eq!(live_seen, [S::Deploying, S::Running]);
        assert_eq!(d.phase, Phase::Complete);
        assert_eq!(
            rt.0.lock().expect("lock").len(),
            2,
            "both replicas started again"
        );

        // A second start with nothing live (a terminated deployment) changes nothing.
        w.s.tx(|c| terminate_all(c, id, restart + 7_000))
            .expect("terminate");
        w.run(id, restart + 7_000, restart + 9_000, |_, _| {});
        let before = w.s.with(|c| store::deployment_by_id(c, id)).expect("read");
        assert_eq!(before.phase, Phase::Terminated);
        assert_eq!(
            w.s.tx(|c| after_restart(c, restart + 10_000))
                .expect("again"),
            0
        );
        let after = w.s.with(|c| store::deployment_by_id(c, id)).expect("read");
        assert_eq!(after, before);
    }

    fn terminate_all(c: &Connection, id: i64, now: i64) -> Result<()> {
        let d = store::deployment_by_id(c, id)?;
        let p = store::principal(c, "tok")?.expect("p");
        deployments::terminate(c, &p, Some(&d.cluster), &d.name, now).map(|_| ())
    }

    #[test]
    fn canary_versions_run_their_own_bento_and_gate_the_rollout() {
        let w = world();
        w.bento("iris:v1", Behaviour::default());
        w.bento(
            "iris:v2",
            Behaviour {
                startup_ms: 2_000,
                ..Default::default()
            },
        );
        let id = w.create(
            "a",
            with_canary(spec("iris:v1", "RollingUpdate", 2), "v2", "iris:v2", 2),
            0,
        );
        // `main` is ready long before the canary: the rollout waits for both.
        let d = w.run(id, 0, 1_500, |_, _| {});
        assert_eq!((d.phase, d.status), (Phase::Rolling, S::Deploying));
        let d = w.run(id, 1_550, 4_000, |_, _| {});
        assert_eq!(d.status, S::Running);
        let reps = w.s.with(|c| store::live_replicas(c, id)).expect("reps");
        assert_eq!(of_target(&reps, "main", ReplicaState::Ready).len(), 2);
        assert_eq!(of_target(&reps, "v2", ReplicaState::Ready).len(), 2);
        let mut started = w.rt.started();
        started.sort();
        assert_eq!(
            started,
            [
                ("main".to_string(), "iris:v1".to_string()),
                ("main".into(), "iris:v1".into()),
                ("v2".into(), "iris:v2".into()),
                ("v2".into(), "iris:v2".into()),
            ]
        );
        let view =
            w.s.with(|c| {
                let org = store::ensure_org(c, "org", 0)?;
                super::super::render::local_deployment(c, &org, &d, "http://x")
            })
            .expect("view");
        assert_eq!(
            (
                view.rollout.desired_replicas,
                view.rollout.ready_replicas,
                view.rollout.updated_replicas
            ),
            (4, 4, 4)
        );
        let v2 = &view.rollout.canary["v2"];
        assert_eq!(
            (v2.bento.as_str(), v2.desired_replicas, v2.ready_replicas),
            ("iris:v2", 2, 2)
        );

        // `canary: null`: the canary replicas drain at once, `main` rolls as usual.
        w.update("a", spec("iris:v1", "RollingUpdate", 2), 5_000);
        let mut main_ready_min = usize::MAX;
        let d = w.run(id, 5_000, 5_050, |_, reps| {
            assert!(
                of_target(reps, "v2", ReplicaState::Ready).is_empty(),
                "{reps:?}"
            );
        });
        assert_eq!(d.phase, Phase::Rolling);
        let d = w.run(id, 5_100, 9_000, |_, reps| {
            main_ready_min = main_ready_min.min(of_target(reps, "main", ReplicaState::Ready).len());
        });
        assert_eq!(d.status, S::Running);
        assert!(main_ready_min >= 2, "main dropped to {main_ready_min}");
        let reps = w.s.with(|c| store::live_replicas(c, id)).expect("reps");
        assert!(reps.iter().all(ReplicaRow::is_main), "{reps:?}");
    }

    #[test]
    fn a_never_ready_canary_fails_the_rollout_and_a_crashed_one_is_unhealthy() {
        let w = world();
        w.bento("iris:v1", Behaviour::default());
        w.bento(
            "iris:never",
            Behaviour {
                unready: true,
                ..Default::default()
            },
        );
        w.bento(
            "iris:crashy",
            Behaviour {
                crash_after_ms: Some(1_000),
                ..Default::default()
            },
        );
        let id = w.create("a", spec("iris:v1", "RollingUpdate", 1), 0);
        let d = w.run(id, 0, 2_000, |_, _| {});
        assert_eq!(d.status, S::Running);
        let v1 = d.serving_revision.clone();
        w.update(
            "a",
            with_canary(spec("iris:v1", "RollingUpdate", 1), "v2", "iris:never", 1),
            2_000,
        );
        let d = w.run(id, 2_000, 14_000, |_, reps| {
            assert!(!of_target(reps, "main", ReplicaState::Ready).is_empty());
        });
        assert_eq!(d.status, S::Failed);
        assert_eq!(d.serving_revision, v1);
        assert!(
            d.message.contains("canary version \"v2\"") && d.message.contains("keeps serving"),
            "{}",
            d.message
        );
        // The failed revision's replicas go; the serving one (no canary) runs alone.
        let d = w.run(id, 14_050, 16_000, |_, _| {});
        let reps = w.s.with(|c| store::live_replicas(c, id)).expect("reps");
        assert!(
            reps.iter().all(|r| r.revision_uid == v1 && r.is_main()),
            "{reps:?}"
        );
        assert_eq!(d.status, S::Failed);

        // A canary replica that crashes makes a complete deployment unhealthy until replaced.
        w.update(
            "a",
            with_canary(spec("iris:v1", "RollingUpdate", 1), "v2", "iris:crashy", 1),
            16_000,
        );
        let mut seen = Vec::new();
        w.run(id, 16_000, 20_000, |d, _| {
            if seen.last() != Some(&d.status) {
                seen.push(d.status);
            }
        });
        assert!(
            seen.starts_with(&[S::Deploying, S::Running, S::Unhealthy, S::Running]),
            "{seen:?}"
        );
    }

    /// Ready replicas of `rev` in a timeline sample (a revision without live replicas is
    /// absent from it: zero).
    fn ready_in(s: &crate::emulator::timeline::Sample, rev: &str) -> u32 {
        s.revisions
            .iter()
            .find(|r| r.uid == rev)
            .map_or(0, |r| r.ready)
    }

    #[test]
    fn the_timeline_records_every_step_of_a_rolling_update_and_nothing_when_idle() {
        use crate::emulator::timeline;
        let w = world();
        w.bento("iris:v1", Behaviour::default());
        w.bento("iris:v2", Behaviour::default());
        let id = w.create("a", spec("iris:v1", "RollingUpdate", 3), 0);
        let d = w.run(id, 0, 5_000, |_, _| {});
        let v1 = d.serving_revision.clone();
        w.update("a", spec("iris:v2", "RollingUpdate", 3), 5_000);
        // Every change of the ready counts the reconciler made, as seen tick by tick.
        let mut steps: Vec<(u32, u32)> = Vec::new();
        let d = w.run(id, 5_000, 15_000, |d, reps| {
            let step = (
                ready_of(reps, &v1) as u32,
                ready_of(reps, &d.target_revision) as u32,
            );
            if steps.last() != Some(&step) {
                steps.push(step);
            }
        });
        assert_eq!((d.phase, d.status), (Phase::Complete, S::Running));
        let v2 = d.target_revision.clone();
        let tl = w.s.with(|c| timeline::read(c, &d, 15_000)).expect("read");
        assert_eq!(tl.revision_uid, v2);
        assert_eq!(
            tl.revisions
                .iter()
                .map(|r| (r.uid.as_str(), r.bento.as_str(), r.role.as_str()))
                .collect::<Vec<_>>(),
            [
                (v1.as_str(), "iris:v1", "old"),
                (v2.as_str(), "iris:v2", "new")
            ]
        );
        // The window starts from the state before the update: 3 old ready, no new.
        let first = &tl.samples[0];
        assert!(first.at_ms <= 5_000, "{first:?}");
        assert_eq!((ready_in(first, &v1), ready_in(first, &v2)), (3, 0));
        let last = tl.samples.last().expect("samples");
        assert_eq!((ready_in(last, &v1), ready_in(last, &v2)), (0, 3));
        assert_eq!(last.phase, "complete");
        // The samples hold every step the ticks saw, in order: old down while new goes up.
        let mut recorded: Vec<(u32, u32)> = Vec::new();
        for s in &tl.samples {
            let step = (ready_in(s, &v1), ready_in(s, &v2));
            if recorded.last() != Some(&step) {
                recorded.push(step);
            }
        }
        assert_eq!(recorded, steps, "recorded vs seen tick by tick");
        assert!(
            recorded
                .windows(2)
                .all(|w| w[1].0 <= w[0].0 && w[1].1 >= w[0].1),
            "{recorded:?}"
        );
        assert!(
            recorded
                .iter()
                .any(|&(old, new)| old > 0 && new > 0 && old < 3),
            "no step with both revisions ready: {recorded:?}"
        );
        // Idle ticks write nothing.
        let n = tl.samples.len();
        let d = w.run(id, 15_000, 20_000, |_, _| {});
        let tl = w.s.with(|c| timeline::read(c, &d, 20_000)).expect("read");
        assert_eq!(tl.samples.len(), n);
    }

    #[test]
    fn the_timeline_keeps_the_latest_samples_only() {
        use crate::emulator::timeline::{self, MAX_SAMPLES};
        let w = world();
        w.bento("iris:v1", Behaviour::default());
        let id = w.create("a", spec("iris:v1", "RollingUpdate", 1), 0);
        let d = w.run(id, 0, 2_000, |_, _| {});
        let extra = 30;
        for i in 0..(MAX_SAMPLES + extra) as i64 {
            w.s.tx(|c| timeline::record(c, &d, 10_000 + i))
                .expect("record");
        }
        let all = w.s.with(|c| timeline::samples(c, id, 0)).expect("read");
        assert_eq!(all.len(), MAX_SAMPLES);
        assert_eq!(all[0].at_ms, 10_000 + extra as i64);
        assert_eq!(
            all.last().map(|s| s.at_ms),
            Some(10_000 + (MAX_SAMPLES + extra) as i64 - 1)
        );
    }
}
