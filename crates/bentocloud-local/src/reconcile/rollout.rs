//! What one pass does to a deployment's replicas: autoscaling the serving revision, keeping
//! its replicas and canary versions up, and rolling a new revision out per strategy (or
//! failing it).

use super::*;

/// Sets the desired count of each service of the serving revision from the endpoint load: a
/// service with an autoscaling policy by [`autoscale_policy`], the others on every pass from
/// the in-flight target ([`Timing::scale_target_in_flight`]). Each change is recorded with the
/// load that caused it (the timeline's scaling decisions).
pub(super) fn autoscale(
    cx: &mut Ctx,
    d: &DeploymentRow,
    load: Load,
    reps: &[ReplicaRow],
) -> Result<()> {
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
        let policy = cfg
            .services
            .get(&s)
            .and_then(|c| c.scaling.as_ref())
            .and_then(|sc| crate::autoscale::Policy::of(sc.policy.as_ref()));
        if let Some(policy) = policy {
            autoscale_policy(cx, d, &cfg, &s, &policy, (cur, floor, max), load, reps)?;
            continue;
        }
        let up = need(load.peak);
        let next = if up > cur {
            up
        } else {
            need(load.window_peak).max(floor)
        };
        let next = next.clamp(floor.min(max), max);
        if next != cur {
            tracing::info!(deployment = %d.name, service = %s, from = cur, to = next, in_flight = load.peak, "autoscaling");
            let per = load.peak as f64 / cur.max(1) as f64;
            let (metric, measured) = if next == 0 {
                ("idle", 0.0)
            } else {
                ("in_flight", per)
            };
            scale(cx, d, &s, cur, next, metric, measured, target as f64)?;
        }
    }
    Ok(())
}

/// Sets a service's count and records the decision.
#[allow(clippy::too_many_arguments)]
fn scale(
    cx: &mut Ctx,
    d: &DeploymentRow,
    service: &str,
    from: usize,
    to: usize,
    metric: &str,
    measured: f64,
    target: f64,
) -> Result<()> {
    store::scale_set(cx.c, d.id, service, to as i64, cx.now)?;
    crate::autoscale::record_event(
        cx.c,
        d.id,
        &crate::autoscale::ScaleEvent {
            at: String::new(),
            at_ms: cx.now,
            service: service.to_string(),
            from: u32::try_from(from).unwrap_or(u32::MAX),
            to: u32::try_from(to).unwrap_or(u32::MAX),
            metric: metric.to_string(),
            measured,
            target,
        },
    )?;
    cx.changed = true;
    Ok(())
}

/// One service with an autoscaling policy (see [`crate::autoscale`]): evaluated once per
/// [`Timing::scale_eval_ms`]; the recommendation (largest over the metrics, clamped to
/// `[floor, max]`) goes through the behaviours and stabilization windows. Scaling to zero
/// (idle, `min_replicas = 0`) and waking from zero are the platform's own and act at once, as
/// without a policy.
#[allow(clippy::too_many_arguments)]
fn autoscale_policy(
    cx: &mut Ctx,
    d: &DeploymentRow,
    cfg: &DeploymentConfig,
    s: &str,
    policy: &crate::autoscale::Policy,
    (cur, floor, max): (usize, usize, usize),
    load: Load,
    reps: &[ReplicaRow],
) -> Result<()> {
    use crate::autoscale as hpa;
    if cur == 0 {
        if load.peak > 0 || floor > 0 {
            tracing::info!(deployment = %d.name, service = %s, "waking from zero");
            scale(
                cx,
                d,
                s,
                0,
                floor.max(1).min(max),
                "wake",
                load.peak as f64,
                0.0,
            )?;
        }
        return Ok(());
    }
    if floor == 0 {
        tracing::info!(deployment = %d.name, service = %s, "idle: scaling to zero");
        return scale(cx, d, s, cur, 0, "idle", 0.0, 0.0);
    }
    if let Some(last) = hpa::last_eval(cx.c, d.id, s)? {
        if cx.now < last + cx.timing.scale_eval_ms.max(0) {
            return Ok(());
        }
    }
    let Some(sl) = cx.rt.service_load(d.id, s, cx.now) else {
        return Ok(());
    };
    let ready = reps
        .iter()
        .filter(|r| {
            r.is_main()
                && r.revision_uid == d.serving_revision
                && r.service == s
                && r.state == ReplicaState::Ready
        })
        .count();
    let memory = replica_memory(cx, d, cfg, s)?;
    let Some(mut rec) = hpa::recommend(policy, cur, ready, &sl, cx.timing, memory) else {
        return Ok(());
    };
    rec.replicas = rec.replicas.clamp(floor.min(max), max);
    let longest = policy.up_window_ms.max(policy.down_window_ms);
    let history = hpa::push_history(cx.c, d.id, s, cx.now, rec.replicas, longest)?;
    let next = hpa::stabilize(policy, cur, &history, cx.now).clamp(floor.min(max), max);
    if next != cur {
        tracing::info!(deployment = %d.name, service = %s, from = cur, to = next, metric = %rec.metric, measured = rec.measured, target = rec.target, "autoscaling (policy)");
        scale(cx, d, s, cur, next, &rec.metric, rec.measured, rec.target)?;
    }
    Ok(())
}

/// Memory of one replica of `service`: its instance type's (the cluster's default type when it
/// names none), for the simulated `memory` metric.
fn replica_memory(
    cx: &Ctx,
    d: &DeploymentRow,
    cfg: &DeploymentConfig,
    service: &str,
) -> Result<f64> {
    let wanted = cfg
        .services
        .get(service)
        .and_then(|c| c.instance_type.clone());
    let types = store::instance_types(cx.c, &d.cluster)?;
    let t = types.iter().find(|t| match &wanted {
        Some(name) => t.spec.name == *name,
        None => t.spec.default,
    });
    Ok(
        t.and_then(|t| bentocloud_api::settings::quantity_value(&t.spec.memory))
            .unwrap_or(crate::autoscale::DEFAULT_REPLICA_MEMORY),
    )
}

/// Keeps the serving revision at its desired count (replaces crashed replicas, after the crash
/// back-off: [`Timing::crash_backoff_ms`]) and, once it
/// is healthy, drains `main` replicas of any other revision; its canary versions are kept by
/// [`canary`].
pub(super) fn maintain(cx: &mut Ctx, d: &DeploymentRow, reps: &mut [ReplicaRow]) -> Result<()> {
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
        if live.len() < desired && !cx.crash_backing_off(d, &rev, MAIN_TARGET, &s)? {
            for _ in live.len()..desired {
                cx.start(d, &rev, MAIN_TARGET, &s)?;
            }
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
pub(super) fn canary_ready(cx: &mut Ctx, rev: &str, reps: &[ReplicaRow]) -> Result<bool> {
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
/// stops sending them traffic. A crashed one is replaced after the crash back-off, as `main`
/// replicas are. With `rolling`, a canary replica not ready within the progress
/// deadline fails the rollout, like a `main` one: returns the reason.
pub(super) fn canary(
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
            // A crashed canary replica is replaced after the same crash back-off as a `main`
            // one (Kubernetes restarts any container in a `CrashLoopBackOff`; a canary pod is
            // no exception): meanwhile the pods stream lists it crash-looping, not a fresh pod.
            if live.len() < want && !cx.crash_backing_off(d, rev, name, &s)? {
                for _ in live.len()..want {
                    cx.start(d, rev, name, &s)?;
                }
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
pub(super) fn fail(
    cx: &mut Ctx,
    d: &mut DeploymentRow,
    reps: &mut [ReplicaRow],
    msg: String,
) -> Result<()> {
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
pub(super) fn roll(cx: &mut Ctx, d: &mut DeploymentRow, reps: &mut [ReplicaRow]) -> Result<()> {
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
pub(super) enum ServiceRoll {
    /// Every new replica is ready and no old one is left serving.
    Done,
    Rolling,
    /// A new replica missed the progress deadline: the rollout fails with this reason.
    Stuck(String),
}

/// The `main` replicas of one service in a rollout to revision `target`.
struct MainOf<'a> {
    target: &'a str,
    service: &'a str,
}

impl MainOf<'_> {
    /// `r` is one of them, of the new revision (`new`) or an older one, in one of `states`.
    fn is(&self, r: &ReplicaRow, new: bool, states: &[ReplicaState]) -> bool {
        r.is_main()
            && (r.revision_uid == self.target) == new
            && r.service == self.service
            && states.contains(&r.state)
    }

    /// What the strategy decides from.
    fn counts(&self, reps: &[ReplicaRow], desired: usize, now: i64) -> Counts {
        let n = |new: bool, state: ReplicaState| {
            reps.iter().filter(|r| self.is(r, new, &[state])).count()
        };
        Counts {
            desired,
            new_ready: n(true, ReplicaState::Ready),
            new_starting: n(true, ReplicaState::Starting),
            old_ready: n(false, ReplicaState::Ready),
            old_starting: n(false, ReplicaState::Starting),
            old_draining: n(false, ReplicaState::Draining),
            since_new_ready_ms: reps
                .iter()
                .filter(|r| self.is(r, true, &[ReplicaState::Ready]))
                .filter_map(|r| r.ready_at)
                .max()
                .map(|t| now - t),
        }
    }

    /// Surplus new replicas (fewer desired than running) drain: starting ones first, oldest
    /// first.
    fn drain_surplus(&self, cx: &mut Ctx, reps: &mut [ReplicaRow], desired: usize) -> Result<()> {
        let live = [ReplicaState::Starting, ReplicaState::Ready];
        let mut surplus: Vec<usize> = (0..reps.len())
            .filter(|&i| self.is(&reps[i], true, &live))
            .collect();
        surplus.sort_by_key(|&i| (reps[i].state == ReplicaState::Ready, reps[i].id));
        let extra = surplus.len().saturating_sub(desired);
        for &i in surplus.iter().take(extra) {
            cx.drain(&mut reps[i])?;
        }
        Ok(())
    }
}

/// One pass of the rollout of `service`'s `main` replicas: the progress deadline, then what the
/// strategy decides from the counts ([`strategy::step`]), then what every strategy shares:
/// old replicas still starting are drained (unless the serving revision still needs them), and
/// so are new ones beyond the desired count.
pub(super) fn roll_service(
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
    let main = MainOf { target, service };
    let is = |r: &ReplicaRow, new: bool, states: &[ReplicaState]| main.is(r, new, states);
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
    let counts = main.counts(reps, desired, now);
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
    main.drain_surplus(cx, reps, desired)?;
    let old_left = reps.iter().filter(|r| is(r, false, &old_live)).count();
    Ok(if counts.new_ready < desired || old_left > 0 {
        ServiceRoll::Rolling
    } else {
        ServiceRoll::Done
    })
}
