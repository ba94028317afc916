//! The poll loop shared by every wait: it reads the deployment (and its pods when the
//! [`Judge`] asks), and owns the interval, jitter, deadline, tolerance of transient errors and
//! cancellation; the judge decides.

use std::time::Duration;

use tokio::time::Instant;

use crate::api::{Deployment, KubePod};
use crate::client::ClientError;

use super::{short, state_of, who, DeploymentSource, WaitError, WaitOptions, LOG};

/// How long "not found" is tolerated after the wait starts (a just-created deployment may not
/// be readable everywhere yet).
pub const NOT_FOUND_GRACE: Duration = Duration::from_secs(30);

/// What the poll loop does after a read.
pub(super) enum Step<T, A> {
    Done(T),
    /// Read the pods, then let [`Judge::on_pods`] decide with them.
    Pods(A),
    Continue,
    Fail(WaitError),
}

/// What a wait decides; the poll loop ([`poll`]) does the reading, pacing and stopping.
pub(super) trait Judge {
    type Out;
    type Ask;

    /// Decides on each fetch result (and may say in `pending` what it still waits for,
    /// reported on timeout). `None` (only for errors) applies the default policy: retryable
    /// errors and early not-found are tolerated, others end the wait.
    fn on_fetch(
        &mut self,
        fetched: Result<&Deployment, &ClientError>,
        now: Instant,
        pending: &mut String,
    ) -> Option<Step<Self::Out, Self::Ask>>;

    /// Decides with the pods read after `on_fetch` asked for them (`None`: they could not be
    /// read). A [`Step::Pods`] here is a [`Step::Continue`].
    fn on_pods(
        &mut self,
        ask: Self::Ask,
        pods: Option<&[KubePod]>,
        now: Instant,
        pending: &mut String,
    ) -> Step<Self::Out, Self::Ask>;
}

/// The poll loop: reads the deployment, and the pods when the judge asks, until the judge
/// decides, the deadline passes or the token is cancelled. A poll that read the pods counts
/// as two requests: the next one waits twice the interval, so a wait stays at or under two
/// requests per second.
pub(super) async fn poll<J: Judge>(
    src: &impl DeploymentSource,
    opts: &WaitOptions,
    judge: &mut J,
) -> Result<J::Out, WaitError> {
    let mut pending = String::new();
    let started = Instant::now();
    let deadline = started
        .checked_add(opts.timeout)
        .unwrap_or_else(|| started + Duration::from_secs(100 * 365 * 24 * 3600));
    let mut last: Option<Box<Deployment>> = None;
    let mut last_line = String::new();
    let mut errors = 0u32;
    loop {
        let fetch_started = Instant::now();
        let fetched = tokio::select! {
            biased;
            _ = opts.cancel.cancelled() => return Err(WaitError::Cancelled { last }),
            _ = tokio::time::sleep_until(deadline) => {
                return Err(WaitError::TimedOut { last, waited: started.elapsed(), pending });
            }
            r = src.fetch() => r,
        };
        let now = Instant::now();
        let step = match judge.on_fetch(fetched.as_ref(), now, &mut pending) {
            Some(step) => step,
            None => match &fetched {
                Ok(_) => Step::Continue,
                Err(e) if e.is_retryable() => Step::Continue,
                Err(e) if e.is_not_found() && now.duration_since(started) < NOT_FOUND_GRACE => {
                    Step::Continue
                }
                Err(e) => Step::Fail(WaitError::Api(e.clone())),
            },
        };
        match &fetched {
            Ok(d) => {
                let line = progress_line(d);
                if line != last_line {
                    tracing::info!(target: LOG, "{line}");
                    last_line = line;
                }
                errors = 0;
            }
            Err(e) => {
                if matches!(step, Step::Continue) {
                    tracing::warn!(target: LOG, error = %e, "reading the deployment failed; will retry until the deadline");
                }
                errors += 1;
            }
        }
        if let Ok(d) = fetched {
            last = Some(Box::new(d));
        }
        let mut requests = 1u32;
        let step = match step {
            Step::Pods(ask) => {
                let pods = tokio::select! {
                    biased;
                    _ = opts.cancel.cancelled() => return Err(WaitError::Cancelled { last }),
                    _ = tokio::time::sleep_until(deadline) => {
                        return Err(WaitError::TimedOut { last, waited: started.elapsed(), pending });
                    }
                    p = src.pods() => p,
                };
                if pods.is_some() {
                    requests = 2;
                }
                judge.on_pods(ask, pods.as_deref(), Instant::now(), &mut pending)
            }
            other => other,
        };
        match step {
            Step::Done(t) => return Ok(t),
            Step::Fail(e) => return Err(e),
            Step::Pods(_) | Step::Continue => {}
        }
        let next = (fetch_started + opts.interval(errors).saturating_mul(requests)).min(deadline);
        tokio::select! {
            biased;
            _ = opts.cancel.cancelled() => return Err(WaitError::Cancelled { last }),
            _ = tokio::time::sleep_until(next) => {}
        }
    }
}

/// The progress line: `deployment local-east/iris revision 3f2a: deploying, 1/3 ...`.
fn progress_line(d: &Deployment) -> String {
    format!(
        "deployment {} revision {}: {}",
        who(Some(d)),
        d.revision_uid().map(short).unwrap_or("none"),
        state_of(d)
    )
}
