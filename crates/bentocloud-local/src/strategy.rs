//! What one reconcile pass does for one service of a rollout's `main` target, per rollout
//! strategy: a pure decision from replica counts, so each strategy is testable without a store,
//! a runtime or a clock. The reconciler ([`super::reconcile`]) counts, calls [`step`], and
//! starts and drains replicas accordingly.
//!
//! "New" replicas run the revision being rolled out; "old" ones any other revision. Each pass:
//! - `RollingUpdate`: start one new replica when none is starting and fewer than desired exist
//!   (surge 1); drain old ready replicas only as new ones are ready to replace them, so ready
//!   replicas never drop below the desired count.
//! - `Recreate`: drain every old replica; once none is left (draining ones included), start
//!   every new one at once. Nothing is ready in between: the endpoint answers 503.
//! - `RampedSlowRollout`: like `RollingUpdate`, and the next new replica starts only
//!   `ramp_pause_ms` after the last new one became ready.
//! - `BestEffortControlledRollout`: no surge, up to 20% unavailable (at least one): drain old
//!   ready replicas while the ready count stays within that budget of the desired count, and
//!   start a new replica in each freed place. Never more than the desired replicas; capacity
//!   dips by up to the budget.
//!
//! On the platform these are Kubernetes rolling-update settings: Yatai maps `RampedSlowRollout`
//! to maxSurge 1 / maxUnavailable 0 and `BestEffortControlledRollout` to maxSurge 0 /
//! maxUnavailable 20% (what the provider's `deployment_strategy` attribute describes).
//! The emulator follows that dip rather than surging, so it is never more agreeable than
//! the platform (Kubernetes rounds the percentage down and takes at least one when maxSurge is
//! 0).

use crate::api::Strategy;

/// Replica counts of one service of the `main` target, at the start of a rollout pass.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Replicas the service wants.
    pub desired: usize,
    pub new_ready: usize,
    pub new_starting: usize,
    pub old_ready: usize,
    pub old_starting: usize,
    pub old_draining: usize,
    /// Milliseconds since the last new replica became ready; `None` while none is ready.
    pub since_new_ready_ms: Option<i64>,
}

/// What to do in this pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    /// New replicas to start.
    pub start: usize,
    /// Old replicas to drain.
    pub drain: Drain,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drain {
    /// Every old replica, starting or ready.
    All,
    /// This many old ready replicas, oldest first.
    Ready(usize),
}

/// The pass of `strategy` given `c` (see the module doc).
pub fn step(strategy: Strategy, c: &Counts, ramp_pause_ms: i64) -> Step {
    let new = c.new_ready + c.new_starting;
    let missing = c.desired.saturating_sub(new);
    // One old ready replica goes for each ready one beyond the desired count: the new ready
    // replicas replace them one for one.
    let replaced = Drain::Ready(
        c.old_ready
            .min((c.old_ready + c.new_ready).saturating_sub(c.desired)),
    );
    let one_at_a_time = usize::from(c.new_starting == 0 && missing > 0);
    match strategy {
        Strategy::RollingUpdate => Step {
            start: one_at_a_time,
            drain: replaced,
        },
        Strategy::Recreate => Step {
            start: if c.old_ready + c.old_starting + c.old_draining == 0 {
                missing
            } else {
                0
            },
            drain: Drain::All,
        },
        Strategy::RampedSlowRollout => {
            let paused = c.since_new_ready_ms.is_some_and(|t| t < ramp_pause_ms);
            Step {
                start: if paused { 0 } else { one_at_a_time },
                drain: replaced,
            }
        }
        Strategy::BestEffortControlledRollout => {
            // maxUnavailable 20%, at least one (maxSurge is 0).
            let budget = (c.desired / 5).max(1);
            let unavailable = c.desired.saturating_sub(c.old_ready + c.new_ready);
            let freed = budget.saturating_sub(unavailable).min(c.old_ready);
            let Drain::Ready(surplus) = replaced else {
                return Step {
                    start: 0,
                    drain: replaced,
                };
            };
            let drain = freed.max(surplus);
            // No surge: new replicas only in places the old ones left.
            let old_after = c.old_ready - drain + c.old_starting;
            Step {
                start: c.desired.saturating_sub(new + old_after),
                drain: Drain::Ready(drain),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(desired: usize, new: (usize, usize), old: (usize, usize, usize)) -> Counts {
        Counts {
            desired,
            new_ready: new.0,
            new_starting: new.1,
            old_ready: old.0,
            old_starting: old.1,
            old_draining: old.2,
            since_new_ready_ms: None,
        }
    }

    /// One service rolled out pass after pass, every 100 ms: a new replica is ready `startup`
    /// ms after it started; an old one drained in a pass is still draining in the next one,
    /// then gone. Returns every pass.
    fn rollout(strategy: Strategy, desired: usize, startup: i64, pause: i64) -> Vec<Pass> {
        let mut old_ready = desired;
        let mut drained = 0;
        let mut starting: Vec<i64> = Vec::new();
        let mut ready_at: Vec<i64> = Vec::new();
        let mut out = Vec::new();
        let mut now = 0;
        while !(ready_at.len() == desired && old_ready == 0) {
            assert!(now <= 60_000, "{strategy} did not complete: {out:?}");
            let (now_ready, still): (Vec<i64>, Vec<i64>) =
                starting.iter().partition(|&&t| now >= t + startup);
            ready_at.extend(now_ready.iter().map(|_| now));
            starting = still;
            let c = Counts {
                desired,
                new_ready: ready_at.len(),
                new_starting: starting.len(),
                old_ready,
                old_starting: 0,
                old_draining: drained,
                since_new_ready_ms: ready_at.iter().max().map(|t| now - t),
            };
            let s = step(strategy, &c, pause);
            drained = match s.drain {
                Drain::All => old_ready,
                Drain::Ready(n) => n,
            };
            assert!(drained <= old_ready, "{c:?} {s:?}");
            old_ready -= drained;
            starting.resize(starting.len() + s.start, now);
            out.push(Pass {
                now,
                before: c,
                step: s,
                ready_after: old_ready + ready_at.len(),
                starting_after: starting.len(),
            });
            now += 100;
        }
        out
    }

    #[derive(Debug)]
    struct Pass {
        now: i64,
        before: Counts,
        step: Step,
        /// Old and new ready replicas left serving after the pass.
        ready_after: usize,
        starting_after: usize,
    }

    #[test]
    fn rolling_update_surges_one_and_never_dips() {
        let s = Strategy::RollingUpdate;
        assert_eq!(
            step(s, &counts(3, (0, 0), (3, 0, 0)), 0),
            Step {
                start: 1,
                drain: Drain::Ready(0)
            }
        );
        // One is starting: wait for it.
        assert_eq!(step(s, &counts(3, (0, 1), (3, 0, 0)), 0).start, 0);
        // It is ready: one old goes, the next new one starts.
        assert_eq!(
            step(s, &counts(3, (1, 0), (3, 0, 0)), 0),
            Step {
                start: 1,
                drain: Drain::Ready(1)
            }
        );
        // All new ones ready: the rest of the old ones go, nothing starts.
        assert_eq!(
            step(s, &counts(3, (3, 0), (2, 0, 1)), 0),
            Step {
                start: 0,
                drain: Drain::Ready(2)
            }
        );
        let passes = rollout(s, 4, 300, 0);
        for p in &passes {
            assert!(p.starting_after <= 1, "surge above 1: {p:?}");
            assert!(p.ready_after >= 4, "capacity dip: {p:?}");
        }
    }

    #[test]
    fn recreate_drains_every_old_replica_before_starting() {
        let s = Strategy::Recreate;
        assert_eq!(
            step(s, &counts(2, (0, 0), (2, 0, 0)), 0),
            Step {
                start: 0,
                drain: Drain::All
            }
        );
        // Old ones still draining (or starting again after a restart): nothing starts yet.
        assert_eq!(step(s, &counts(2, (0, 0), (0, 0, 2)), 0).start, 0);
        assert_eq!(step(s, &counts(2, (0, 0), (0, 1, 0)), 0).start, 0);
        // None left: every new one at once.
        assert_eq!(step(s, &counts(2, (0, 0), (0, 0, 0)), 0).start, 2);
        assert_eq!(step(s, &counts(3, (1, 1), (0, 0, 0)), 0).start, 1);
        let passes = rollout(s, 3, 300, 0);
        let first_start = passes
            .iter()
            .position(|p| p.step.start > 0)
            .expect("starts");
        assert_eq!(passes[first_start].step.start, 3);
        // The gap: nothing ready while the old ones drain.
        assert!(passes[..first_start].iter().all(|p| p.ready_after == 0));
        assert!(passes[first_start - 1].before.old_draining > 0);
        let b = passes[first_start].before;
        assert_eq!((b.old_ready, b.old_starting, b.old_draining), (0, 0, 0));
    }

    #[test]
    fn ramped_slow_rollout_pauses_after_each_ready_replica() {
        let s = Strategy::RampedSlowRollout;
        let mut c = counts(3, (1, 0), (2, 0, 0));
        c.since_new_ready_ms = Some(999);
        assert_eq!(
            step(s, &c, 1_000),
            Step {
                start: 0,
                drain: Drain::Ready(0)
            }
        );
        c.since_new_ready_ms = Some(1_000);
        assert_eq!(step(s, &c, 1_000).start, 1);
        // Nothing ready yet: no pause to wait for.
        assert_eq!(step(s, &counts(3, (0, 0), (3, 0, 0)), 1_000).start, 1);
        let passes = rollout(s, 3, 300, 1_000);
        let starts: Vec<&Pass> = passes.iter().filter(|p| p.step.start > 0).collect();
        assert_eq!(starts.len(), 3);
        for p in &starts {
            assert_eq!(p.step.start, 1);
            if let Some(since) = p.before.since_new_ready_ms {
                assert!(
                    since >= 1_000,
                    "started {since} ms after a replica got ready"
                );
            }
        }
        // Each start after the first waits for the previous one to be ready, then the pause.
        for w in starts.windows(2) {
            assert!(w[1].now - w[0].now >= 300 + 1_000, "{w:?}");
        }
        for p in &passes {
            assert!(p.starting_after <= 1 && p.ready_after >= 3, "{p:?}");
        }
    }

    #[test]
    fn best_effort_replaces_within_a_20_percent_unavailability_budget_without_surge() {
        let s = Strategy::BestEffortControlledRollout;
        // 5 desired: budget 1 (20%); 10 desired: budget 2; 3 desired: at least 1.
        for (desired, budget) in [(5, 1), (10, 2), (3, 1)] {
            assert_eq!(
                step(s, &counts(desired, (0, 0), (desired, 0, 0)), 0),
                Step {
                    start: budget,
                    drain: Drain::Ready(budget)
                },
                "{desired}"
            );
        }
        // The budget is spent while a new replica starts: nothing more drains or starts.
        assert_eq!(
            step(s, &counts(5, (0, 1), (4, 0, 1)), 0),
            Step {
                start: 0,
                drain: Drain::Ready(0)
            }
        );
        // An old replica still starting (restarted after a control-plane restart) holds its
        // place: nothing new starts beyond the desired count.
        assert_eq!(
            step(s, &counts(5, (0, 0), (4, 1, 0)), 0),
            Step {
                start: 0,
                drain: Drain::Ready(0)
            }
        );
        // Once it is ready, the next old replica goes and a new one takes its place.
        assert_eq!(
            step(s, &counts(5, (1, 0), (4, 0, 0)), 0),
            Step {
                start: 1,
                drain: Drain::Ready(1)
            }
        );
        for desired in [3, 5, 10] {
            let budget = (desired / 5).max(1);
            for p in rollout(s, desired, 300, 0) {
                assert!(
                    p.ready_after + p.starting_after <= desired,
                    "surge at {desired}: {p:?}"
                );
                assert!(
                    p.ready_after + budget >= desired,
                    "more than the budget unavailable at {desired}: {p:?}"
                );
            }
        }
    }

    #[test]
    fn fewer_desired_than_old_ready_drains_the_surplus() {
        // Fewer desired than old ready replicas (scaled down mid-rollout): the surplus goes at
        // once, and one more for each new ready one.
        for s in [
            Strategy::RollingUpdate,
            Strategy::RampedSlowRollout,
            Strategy::BestEffortControlledRollout,
        ] {
            assert_eq!(
                step(s, &counts(2, (1, 0), (4, 0, 0)), 0).drain,
                Drain::Ready(3),
                "{s}"
            );
            assert_eq!(
                step(s, &counts(2, (0, 0), (4, 0, 0)), 0).drain,
                Drain::Ready(2),
                "{s}"
            );
        }
    }
}
