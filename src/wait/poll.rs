//! The poll loop shared by every wait: it reads the deployment (and its pods when the
//! [`Judge`] asks), and owns the interval, jitter, deadline, tolerance of transient errors and
//! cancellation; the judge decides.

use std::future::Future;
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
    let mut run = Run::new(opts);
    loop {
        let fetch_started = Instant::now();
        let fetched = run.within(src.fetch()).await?;
        let now = Instant::now();
        let step = match judge.on_fetch(fetched.as_ref(), now, &mut run.pending) {
            Some(step) => step,
            None => run.by_default(&fetched, now),
        };
        run.saw(fetched, &step);
        let (step, requests) = match step {
            Step::Pods(ask) => {
                let pods = run.within(src.pods()).await?;
                let requests = if pods.is_some() { 2 } else { 1 };
                let now = Instant::now();
                let step = judge.on_pods(ask, pods.as_deref(), now, &mut run.pending);
                (step, requests)
            }
            other => (other, 1),
        };
        match step {
            Step::Done(t) => return Ok(t),
            Step::Fail(e) => return Err(e),
            Step::Pods(_) | Step::Continue => {}
        }
        run.pause(fetch_started, requests).await?;
    }
}

/// What one run of the poll loop has seen so far, and when it must stop.
struct Run<'a> {
    opts: &'a WaitOptions,
    started: Instant,
    deadline: Instant,
    /// The last deployment read.
    last: Option<Box<Deployment>>,
    /// What the judge still waits for, reported on timeout.
    pending: String,
    /// The last progress line logged.
    last_line: String,
    /// Failed fetches in a row (the interval backs off after them).
    errors: u32,
}

impl<'a> Run<'a> {
    fn new(opts: &'a WaitOptions) -> Run<'a> {
        let started = Instant::now();
        let deadline = started
            .checked_add(opts.timeout)
            .unwrap_or_else(|| started + Duration::from_secs(100 * 365 * 24 * 3600));
        Run {
            opts,
            started,
            deadline,
            last: None,
            pending: String::new(),
            last_line: String::new(),
            errors: 0,
        }
    }

    /// The output of `read`, unless the token is cancelled or the deadline passes first.
    async fn within<T>(&mut self, read: impl Future<Output = T>) -> Result<T, WaitError> {
        let (opts, deadline) = (self.opts, self.deadline);
        tokio::select! {
            biased;
            _ = opts.cancel.cancelled() => Err(WaitError::Cancelled { last: self.last.take() }),
            _ = tokio::time::sleep_until(deadline) => Err(WaitError::TimedOut {
                last: self.last.take(),
                waited: self.started.elapsed(),
                pending: std::mem::take(&mut self.pending),
            }),
            r = read => Ok(r),
        }
    }

    /// The default policy, for a fetch the judge left to it: retryable errors and an early
    /// not-found are tolerated, other errors end the wait.
    fn by_default<T, A>(
        &self,
        fetched: &Result<Deployment, ClientError>,
        now: Instant,
    ) -> Step<T, A> {
        match fetched {
            Ok(_) => Step::Continue,
            Err(e) if e.is_retryable() => Step::Continue,
            Err(e) if e.is_not_found() && now.duration_since(self.started) < NOT_FOUND_GRACE => {
                Step::Continue
            }
            Err(e) => Step::Fail(WaitError::Api(e.clone())),
        }
    }

    /// Logs what the fetch showed when it changed (or a tolerated error), counts failed
    /// fetches in a row, and keeps the deployment read.
    fn saw<T, A>(&mut self, fetched: Result<Deployment, ClientError>, step: &Step<T, A>) {
        match fetched {
            Ok(d) => {
                let line = progress_line(&d);
                if line != self.last_line {
                    tracing::info!(target: LOG, "{line}");
                    self.last_line = line;
                }
                self.errors = 0;
                self.last = Some(Box::new(d));
            }
            Err(e) => {
                if matches!(step, Step::Continue) {
                    tracing::warn!(target: LOG, error = %e, "reading the deployment failed; will retry until the deadline");
                }
                self.errors += 1;
            }
        }
    }

    /// Waits until the next poll: the interval (backed off after errors) times the requests
    /// the last poll sent, from when it started, and never past the deadline.
    async fn pause(&mut self, poll_started: Instant, requests: u32) -> Result<(), WaitError> {
        let interval = self.opts.interval(self.errors).saturating_mul(requests);
        let next = (poll_started + interval).min(self.deadline);
        let opts = self.opts;
        tokio::select! {
            biased;
            _ = opts.cancel.cancelled() => Err(WaitError::Cancelled { last: self.last.take() }),
            _ = tokio::time::sleep_until(next) => Ok(()),
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
