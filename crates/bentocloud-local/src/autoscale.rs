//! A service's autoscaling policy (`scaling.policy`, API doc §3.2), evaluated the way the
//! Kubernetes HorizontalPodAutoscaler the platform builds from it does (its ancestor Yatai turns
//! `HPAPolicy` into an HPA: `bentoml/yatai-deployment`; BentoCloud inferred to do the same).
//!
//! **Evaluation.** Every [`Timing::scale_eval_ms`] (the HPA controller's
//! `--horizontal-pod-autoscaler-sync-period`, 15 s by default) per service, on the control
//! plane's clock. Each metric gives a recommendation, `ceil(ready * measured / target)` where
//! `measured` is the per-replica average over the service's ready replicas (the HPA's
//! `ceil(currentReplicas * currentMetricValue / desiredMetricValue)`); a ratio within the HPA's
//! 10 % tolerance keeps the current count; the service's recommendation is the largest over its
//! metrics, clamped to `[min_replicas, max_replicas]`.
//!
//! **What is measured** ([`ServiceLoad`], sampled at the endpoint by the runtime):
//! - `qps`: requests the endpoint sent to the service's replicas per second, averaged over the
//!   time since the previous evaluation (one evaluation period), per ready replica.
//! - `queue`: requests in flight at the service's replicas plus requests waiting in the
//!   endpoint's queue (`config_overrides.traffic.external_queue`), per ready replica.
//! - `cpu`, `gpu` (percent) and `memory` (bytes) are **simulated** from the load, since replicas
//!   here do no real work: utilisation % = 100 × in-flight per replica / the nominal capacity of a
//!   replica ([`Timing::scale_target_in_flight`], the target of the policy-less autoscaler), for
//!   `gpu` as for `cpu`; memory = that utilisation × the instance type's memory (`cpu.1`: 2Gi).
//!
//! **Behaviours and stabilization windows** ([`stabilize`], HPA `behavior` semantics):
//! `disabled` never scales that way; `fast` acts on the evaluation that recommends it; `stable`
//! scales up only to the *lowest* recommendation of the whole up window, down only to the
//! *highest* of the whole down window, so a recommendation must have held for the whole window.
//! A window the history does not cover yet (recommendations only began within it) counts the
//! current count as the recommendation before them: nothing moves before a window has passed.
//! Unset behaviours and windows take the HPA's defaults: `stable` both ways, up window 0 s (acts
//! at once), down window 300 s.
//!
//! Scaling to and from zero (`min_replicas = 0`) is BentoCloud's own mechanism, not the HPA's,
//! and stays as without a policy: zero after `Timing::scale_to_zero_idle_ms` idle, one replica at
//! once when a request arrives.
//!
//! **History.** Recommendations (table `scale_history`) and decisions (table `scale_events`, shown
//! on the timeline with the metric and measured value that caused them) are rows in the same
//! transaction as the scale they set, so a restart keeps the windows.

use rusqlite::{params, Connection};
use serde::{Deserialize, Serialize};

use super::config::Timing;
use super::render::ts;
use super::store::Result;
use bentocloud_api::settings::{quantity_value, ScalingPolicy};

/// HPA's default tolerance: a ratio within 10 % of 1 keeps the current count.
pub const TOLERANCE: f64 = 0.1;
/// HPA's default scale-down stabilization window.
pub const DEFAULT_DOWN_WINDOW_S: i64 = 300;
/// HPA's default scale-up stabilization window.
pub const DEFAULT_UP_WINDOW_S: i64 = 0;
/// Memory of a replica whose instance type is unknown (`cpu.1`'s).
pub const DEFAULT_REPLICA_MEMORY: f64 = 2.0 * 1024.0 * 1024.0 * 1024.0;
/// Decisions kept per deployment.
pub const MAX_EVENTS: i64 = 200;

/// What the endpoint measured for one service of a deployment.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ServiceLoad {
    /// Requests per second sent to the service's replicas since the previous sample.
    pub qps: f64,
    /// Requests in flight at the service's replicas now.
    pub in_flight: usize,
    /// Requests waiting in the endpoint's queue for a free replica now.
    pub queued: usize,
}

/// One metric of a policy, its target as a number.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    pub kind: String,
    pub value: f64,
}

/// A behaviour word (`SCALE_BEHAVIORS`); unset is `stable` (the HPA's default behaviour).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behavior {
    Disabled,
    Stable,
    Fast,
}

impl Behavior {
    fn of(word: Option<&str>) -> Behavior {
        match word {
            Some("disabled") => Behavior::Disabled,
            Some("fast") => Behavior::Fast,
            _ => Behavior::Stable,
        }
    }
}

/// A policy as the autoscaler applies it.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub targets: Vec<Target>,
    pub up: Behavior,
    pub down: Behavior,
    pub up_window_ms: i64,
    pub down_window_ms: i64,
}

impl Policy {
    /// The policy of a service's `scaling.policy`; `None` without metrics (the policy-less
    /// autoscaler applies). Metrics whose target is not a quantity are left out (the API refuses
    /// them on create and update).
    pub fn of(policy: Option<&serde_json::Value>) -> Option<Policy> {
        let p = ScalingPolicy::of(policy);
        let targets: Vec<Target> = p
            .metrics
            .iter()
            .flatten()
            .filter_map(|m| {
                Some(Target {
                    kind: m.kind.clone(),
                    value: quantity_value(&m.value_text())?,
                })
            })
            .collect();
        if targets.is_empty() {
            return None;
        }
        let secs = |w: Option<i64>, d: i64| w.unwrap_or(d).clamp(0, 3600) * 1000;
        Some(Policy {
            targets,
            up: Behavior::of(p.scale_up_behavior.as_deref()),
            down: Behavior::of(p.scale_down_behavior.as_deref()),
            up_window_ms: secs(p.scale_up_stabilization_window, DEFAULT_UP_WINDOW_S),
            down_window_ms: secs(p.scale_down_stabilization_window, DEFAULT_DOWN_WINDOW_S),
        })
    }
}

/// A recommendation and the metric that made it.
#[derive(Debug, Clone, PartialEq)]
pub struct Recommendation {
    pub replicas: usize,
    pub metric: String,
    /// Per ready replica.
    pub measured: f64,
    pub target: f64,
}

/// The measured per-replica value of `kind` (see the module doc for the simulated ones).
pub fn measure(kind: &str, load: &ServiceLoad, ready: usize, timing: &Timing, memory: f64) -> f64 {
    let n = ready.max(1) as f64;
    let capacity = f64::from(timing.scale_target_in_flight.max(1));
    let utilisation = load.in_flight as f64 / n / capacity;
    match kind {
        "qps" => load.qps / n,
        "queue" => (load.in_flight + load.queued) as f64 / n,
        "memory" => utilisation * memory,
        // cpu, gpu: percent.
        _ => utilisation * 100.0,
    }
}

/// The HPA's recommendation from `current` (the service's replica count) and `ready` (replicas
/// the metrics are averaged over), largest over the metrics; `None` without targets.
pub fn recommend(
    policy: &Policy,
    current: usize,
    ready: usize,
    load: &ServiceLoad,
    timing: &Timing,
    memory: f64,
) -> Option<Recommendation> {
    let mut best: Option<Recommendation> = None;
    for t in &policy.targets {
        let measured = measure(&t.kind, load, ready, timing, memory);
        let ratio = measured / t.value;
        let replicas = if (ratio - 1.0).abs() <= TOLERANCE {
            current
        } else {
            (ready.max(1) as f64 * ratio).ceil().max(0.0) as usize
        };
        if best.as_ref().is_none_or(|b| replicas > b.replicas) {
            best = Some(Recommendation {
                replicas,
                metric: t.kind.clone(),
                measured,
                target: t.value,
            });
        }
    }
    best
}

/// The count to scale to from `current`, given the recommendations `history` (`(at, replicas)`,
/// oldest first, the latest being this evaluation's) and the policy's behaviours and windows.
pub fn stabilize(policy: &Policy, current: usize, history: &[(i64, usize)], now: i64) -> usize {
    let Some(&(_, rec)) = history.last() else {
        return current;
    };
    // The recommendations in force during the window: those made within it, and the one in
    // force at its start (`current` when the history does not reach that far back).
    let in_window = |w: i64| {
        let start = now - w;
        let before = history
            .iter()
            .rev()
            .find(|(at, _)| *at <= start)
            .map_or(current, |(_, r)| *r);
        history
            .iter()
            .filter(move |(at, _)| *at > start)
            .map(|(_, r)| *r)
            .chain(std::iter::once(before))
    };
    if rec > current {
        match policy.up {
            Behavior::Disabled => current,
            Behavior::Fast => rec,
            Behavior::Stable => in_window(policy.up_window_ms)
                .min()
                .unwrap_or(current)
                .max(current),
        }
    } else if rec < current {
        match policy.down {
            Behavior::Disabled => current,
            Behavior::Fast => rec,
            Behavior::Stable => in_window(policy.down_window_ms)
                .max()
                .unwrap_or(current)
                .min(current),
        }
    } else {
        current
    }
}

/// When the service was last evaluated.
pub fn last_eval(c: &Connection, deployment_id: i64, service: &str) -> Result<Option<i64>> {
    Ok(c.query_row(
        "SELECT MAX(at) FROM scale_history WHERE deployment_id = ?1 AND service = ?2",
        params![deployment_id, service],
        |r| r.get::<_, Option<i64>>(0),
    )?)
}

/// Records this evaluation's recommendation, forgets what no window can reach any more (the
/// last one before the longest window is kept), and returns the history, oldest first.
pub fn push_history(
    c: &Connection,
    deployment_id: i64,
    service: &str,
    now: i64,
    replicas: usize,
    longest_window_ms: i64,
) -> Result<Vec<(i64, usize)>> {
    c.execute(
        "INSERT OR REPLACE INTO scale_history (deployment_id, service, at, replicas)
         VALUES (?1, ?2, ?3, ?4)",
        params![deployment_id, service, now, replicas as i64],
    )?;
    c.execute(
        "DELETE FROM scale_history WHERE deployment_id = ?1 AND service = ?2 AND at < (
           SELECT COALESCE(MAX(at), 0) FROM scale_history
           WHERE deployment_id = ?1 AND service = ?2 AND at <= ?3)",
        params![deployment_id, service, now - longest_window_ms],
    )?;
    let mut st = c.prepare(
        "SELECT at, replicas FROM scale_history WHERE deployment_id = ?1 AND service = ?2
         ORDER BY at",
    )?;
    let rows = st
        .query_map(params![deployment_id, service], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?.max(0) as usize))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

/// One scaling decision, as the timeline shows it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ScaleEvent {
    /// RFC 3339.
    pub at: String,
    pub at_ms: i64,
    pub service: String,
    pub from: u32,
    pub to: u32,
    /// The metric that decided (`qps`, `queue`, `cpu`, `memory`, `gpu`; `in_flight` for the
    /// policy-less autoscaler, `idle` for a scale to zero, `wake` for a scale from zero).
    pub metric: String,
    /// Its measured value per ready replica.
    pub measured: f64,
    /// Its target per replica (0 when there is none).
    pub target: f64,
}

/// Records a decision; keeps the latest [`MAX_EVENTS`] of the deployment.
pub fn record_event(c: &Connection, deployment_id: i64, e: &ScaleEvent) -> Result<()> {
    c.execute(
        "INSERT INTO scale_events (deployment_id, at, service, from_replicas, to_replicas, metric,
           measured, target) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            deployment_id,
            e.at_ms,
            e.service,
            e.from,
            e.to,
            e.metric,
            e.measured,
            e.target
        ],
    )?;
    c.execute(
        "DELETE FROM scale_events WHERE deployment_id = ?1 AND id < (
           SELECT id FROM scale_events WHERE deployment_id = ?1 ORDER BY id DESC LIMIT 1 OFFSET ?2)",
        params![deployment_id, MAX_EVENTS - 1],
    )?;
    Ok(())
}

/// Decisions of a deployment at or after `since`, oldest first.
pub fn events(c: &Connection, deployment_id: i64, since: i64) -> Result<Vec<ScaleEvent>> {
    let mut st = c.prepare(
        "SELECT at, service, from_replicas, to_replicas, metric, measured, target
         FROM scale_events WHERE deployment_id = ?1 AND at >= ?2 ORDER BY id",
    )?;
    let rows = st
        .query_map(params![deployment_id, since], |r| {
            let at: i64 = r.get(0)?;
            Ok(ScaleEvent {
                at: ts(at),
                at_ms: at,
                service: r.get(1)?,
                from: r.get(2)?,
                to: r.get(3)?,
                metric: r.get(4)?,
                measured: r.get(5)?,
                target: r.get(6)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn policy(v: serde_json::Value) -> Policy {
        Policy::of(Some(&v)).expect("a policy with metrics")
    }

    #[test]
    fn no_metrics_no_policy_and_defaults_are_the_hpas() {
        assert_eq!(Policy::of(None), None);
        assert_eq!(Policy::of(Some(&json!({"metrics": null}))), None);
        assert_eq!(Policy::of(Some(&json!({"metrics": []}))), None);
        let p = policy(json!({"metrics": [{"type": "qps", "value": 5}]}));
        assert_eq!((p.up, p.down), (Behavior::Stable, Behavior::Stable));
        assert_eq!((p.up_window_ms, p.down_window_ms), (0, 300_000));
        let p = policy(json!({"metrics": [{"type": "memory", "value": "1Gi"}]}));
        assert_eq!(p.targets[0].value, 1024.0 * 1024.0 * 1024.0);
    }

    #[test]
    fn recommendation_is_the_hpa_formula_with_its_tolerance() {
        let t = Timing::default();
        let p = policy(json!({"metrics": [{"type": "qps", "value": 10}]}));
        let load = |qps| ServiceLoad {
            qps,
            ..Default::default()
        };
        // 30 qps on one replica, 10 each: 3.
        let r = recommend(&p, 1, 1, &load(30.0), &t, 0.0).expect("rec");
        assert_eq!(
            (r.replicas, r.metric.as_str(), r.measured),
            (3, "qps", 30.0)
        );
        // 10.5 per replica is within 10 %: keep 2.
        assert_eq!(
            recommend(&p, 2, 2, &load(21.0), &t, 0.0)
                .expect("r")
                .replicas,
            2
        );
        // Idle: 0 (the caller clamps to min).
        assert_eq!(
            recommend(&p, 3, 3, &load(0.0), &t, 0.0)
                .expect("r")
                .replicas,
            0
        );
        // The largest over the metrics wins.
        let p = policy(
            json!({"metrics": [{"type": "qps", "value": 100}, {"type": "queue", "value": 2}]}),
        );
        let l = ServiceLoad {
            qps: 50.0,
            in_flight: 6,
            queued: 2,
        };
        let r = recommend(&p, 2, 2, &l, &t, 0.0).expect("rec");
        assert_eq!(
            (r.replicas, r.metric.as_str(), r.measured),
            (4, "queue", 4.0)
        );
        // cpu: 4 in flight per replica at a nominal capacity of 4 is 100 %.
        let p = policy(json!({"metrics": [{"type": "cpu", "value": 50}]}));
        let l = ServiceLoad {
            in_flight: 8,
            ..Default::default()
        };
        let r = recommend(&p, 2, 2, &l, &t, 0.0).expect("rec");
        assert_eq!((r.replicas, r.measured), (4, 100.0));
    }

    #[test]
    fn behaviours_and_windows() {
        let fast = policy(json!({"metrics": [{"type": "qps", "value": 1}],
            "scale_up_behavior": "fast", "scale_down_behavior": "fast"}));
        assert_eq!(stabilize(&fast, 1, &[(0, 3)], 0), 3);
        assert_eq!(stabilize(&fast, 3, &[(0, 1)], 0), 1);
        let off = policy(json!({"metrics": [{"type": "qps", "value": 1}],
            "scale_up_behavior": "disabled", "scale_down_behavior": "disabled"}));
        assert_eq!(stabilize(&off, 1, &[(0, 3)], 0), 1);
        assert_eq!(stabilize(&off, 3, &[(0, 1)], 0), 3);
        let stable = policy(json!({"metrics": [{"type": "qps", "value": 1}],
            "scale_up_stabilization_window": 10, "scale_down_stabilization_window": 20}));
        // Up: the lowest of the window, and the window must be covered.
        assert_eq!(stabilize(&stable, 1, &[(0, 3)], 0), 1);
        assert_eq!(stabilize(&stable, 1, &[(0, 3), (5_000, 4)], 5_000), 1);
        assert_eq!(
            stabilize(&stable, 1, &[(0, 3), (5_000, 4), (10_000, 5)], 10_000),
            3
        );
        assert_eq!(
            stabilize(&stable, 1, &[(0, 3), (5_000, 4), (15_000, 5)], 15_000),
            4
        );
        // Down: the highest of the window.
        let h = [(0, 5), (10_000, 2), (20_000, 1)];
        assert_eq!(stabilize(&stable, 5, &h, 20_000), 5);
        assert_eq!(
            stabilize(&stable, 5, &[(0, 2), (10_000, 3), (20_000, 1)], 20_000),
            3
        );
        // The default up window is 0: at once.
        let dflt = policy(json!({"metrics": [{"type": "qps", "value": 1}]}));
        assert_eq!(stabilize(&dflt, 1, &[(0, 3)], 0), 3);
    }
}
