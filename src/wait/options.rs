//! How long and how often a wait polls: [`WaitOptions`] and the pacing constants.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// Nominal time between two polls of one deployment: completion is noticed within this long of
/// the server reporting it.
pub const POLL_INTERVAL: Duration = Duration::from_millis(500);

/// Each interval is lengthened by a random amount up to this, so deployments waited on
/// together do not poll in lockstep.
pub const POLL_JITTER: Duration = Duration::from_millis(25);

/// Default settle window (provider attribute `status_sync_period`): how long after a submit a
/// status read is taken to be recomputed, when nothing else showed it. The ancestor's cron
/// re-syncs rows not synced within a minute, every minute (API doc §10), so a status can be
/// up to about two minutes old.
pub const DEFAULT_STATUS_SYNC_PERIOD: Duration = Duration::from_secs(120);

/// Default `unready_grace` of [`WaitOptions`]: how long pods of the submitted revision may stay
/// not ready, with Kubernetes' warnings saying why, before the wait fails. Kubernetes' default
/// progress deadline (`progressDeadlineSeconds: 600`): long enough for a bento that loads a
/// large model (its readiness probe fails while it loads).
pub const DEFAULT_UNREADY_GRACE: Duration = Duration::from_secs(600);

/// How long and how often to wait.
#[derive(Debug, Clone)]
pub struct WaitOptions {
    /// Overall deadline, measured from the start of the wait.
    pub timeout: Duration,
    /// How long `unhealthy`, or pods of the submitted revision in a crash loop, may last
    /// before the wait fails. Default 60 s.
    pub unhealthy_grace: Duration,
    /// How long pods of the submitted revision may stay not ready, with Kubernetes' warnings
    /// saying why, before the wait fails. Default [`DEFAULT_UNREADY_GRACE`].
    pub unready_grace: Duration,
    /// Floor of the time between two polls (start to start), for a caller that wants to poll
    /// less often than every [`POLL_INTERVAL`]. Default [`POLL_INTERVAL`]: the floor the loop
    /// keeps anyway (the last poll before the deadline aside), so the default changes nothing.
    pub min_interval: Duration,
    /// Ceiling of the interval, reached when backing off after API errors. Default 5 s.
    pub max_interval: Duration,
    /// Cancelling it stops the wait at once with
    /// [`WaitError::Cancelled`](super::WaitError::Cancelled).
    pub cancel: CancellationToken,
    /// The settle window of [`Evidence`](super::Evidence) (provider attribute
    /// `status_sync_period`).
    pub status_sync_period: Duration,
    /// Whether the pods judge a rollout while the status alone is not yet evidence
    /// ([`judge_pods`](super::judge_pods)). Default `true`; `false` leaves the status and the
    /// settle window alone (the benchmark's baseline).
    pub pod_evidence: bool,
}

impl WaitOptions {
    pub fn new(timeout: Duration, cancel: CancellationToken) -> WaitOptions {
        WaitOptions {
            timeout,
            unhealthy_grace: Duration::from_secs(60),
            unready_grace: DEFAULT_UNREADY_GRACE,
            min_interval: POLL_INTERVAL,
            max_interval: Duration::from_secs(5),
            cancel,
            status_sync_period: DEFAULT_STATUS_SYNC_PERIOD,
            pod_evidence: true,
        }
    }

    /// The interval before the next poll, after `errors` consecutive failed fetches.
    pub(super) fn interval(&self, errors: u32) -> Duration {
        let jitter = POLL_JITTER.mul_f64(rand::random::<f64>());
        // Jitter is added, never subtracted, so the steady rate stays at or under 2 per second.
        let base = POLL_INTERVAL + jitter;
        let backed_off = if errors == 0 {
            base
        } else {
            let factor = 1u32 << errors.min(8);
            base.saturating_mul(factor).min(self.max_interval).max(base)
        };
        backed_off.max(self.min_interval)
    }
}

impl Default for WaitOptions {
    /// A 20-minute timeout and a token nobody cancels: set both for real waits.
    fn default() -> WaitOptions {
        WaitOptions::new(Duration::from_secs(20 * 60), CancellationToken::new())
    }
}
