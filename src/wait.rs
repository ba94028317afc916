//! Waiting for a rollout: a pure acceptor ([`classify`]: one deployment document → a
//! [`Verdict`] about the revision we submitted) and one generic poll loop that owns the
//! interval, jitter, deadline, tolerance of transient errors and cancellation.
//!
//! The acceptor trusts a status only when it belongs to the revision we submitted (like
//! Kubernetes' `observedGeneration`): a `running` left over from the previous revision is not
//! success. This module does not send requests itself (it reads through [`DeploymentSource`])
//! and knows nothing about Terraform; it logs progress with `tracing` (target
//! `bentocloud::wait`), never to stdout.

use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::api::{Deployment, DeploymentStatus};
use crate::client::{Client, ClientError};
use crate::duration::format_go_duration;

const LOG: &str = "bentocloud::wait";

/// Nominal time between two polls of one deployment: completion is noticed within this long of
/// the server reporting it.
pub const POLL_INTERVAL: Duration = Duration::from_millis(500);

/// Each interval is shortened by a random amount up to this, so deployments waited on together
/// do not poll in lockstep.
pub const POLL_JITTER: Duration = Duration::from_millis(25);

/// How long "not found" is tolerated after the wait starts (a just-created deployment may not
/// be readable everywhere yet).
pub const NOT_FOUND_GRACE: Duration = Duration::from_secs(30);

/// What one deployment document says about the revision being waited for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The revision is rolled out and serving.
    Ready,
    /// Still in progress; `phase` says where.
    Pending { phase: String },
    /// The rollout of this revision failed for good.
    Failed {
        status: DeploymentStatus,
        reason: String,
    },
    /// Replicas are unhealthy: may recover, so the loop fails only after a grace window.
    Unhealthy { reason: String },
}

fn short(rev: &str) -> &str {
    rev.get(..8).unwrap_or(rev)
}

/// Classifies `d` against the revision we submitted. Pure.
///
/// - The status counts only if `d.revision_uid() == Some(want_revision)` and, when the
///   `rollout` extension is present, `rollout.revision_uid == want_revision`.
/// - `running` is Ready once (with `rollout`) `updated_replicas >= desired_replicas`;
///   `scaled-to-zero` is Ready when `allow_scaled_to_zero`.
/// - `image-build-failed`, `failed`, `terminated`, `terminating` are Failed at once; the reason
///   is `rollout.message` when present, else the status.
/// - `unhealthy` is Unhealthy; everything else Pending.
pub fn classify(d: &Deployment, want_revision: &str, allow_scaled_to_zero: bool) -> Verdict {
    if d.revision_uid() != Some(want_revision) {
        return Verdict::Pending {
            phase: format!(
                "waiting for revision {} to become the latest (latest is {})",
                short(want_revision),
                d.revision_uid().map(short).unwrap_or("none")
            ),
        };
    }
    let rollout = d.rollout.as_ref();
    if let Some(r) = rollout {
        if r.revision_uid != want_revision {
            return Verdict::Pending {
                phase: format!(
                    "waiting for revision {} to start rolling out",
                    short(want_revision)
                ),
            };
        }
    }
    let reason = |status: DeploymentStatus| -> String {
        rollout
            .map(|r| r.message.trim())
            .filter(|m| !m.is_empty())
            .map(str::to_string)
            .unwrap_or_else(|| status.as_str().to_string())
    };
    let phase = |fallback: &str| -> String {
        rollout
            .map(|r| r.phase.trim())
            .filter(|p| !p.is_empty())
            .unwrap_or(fallback)
            .to_string()
    };
    match d.status {
        DeploymentStatus::Running => match rollout {
            Some(r) if r.desired_replicas > 0 && r.updated_replicas < r.desired_replicas => {
                Verdict::Pending {
                    phase: phase("rolling"),
                }
            }
            _ => Verdict::Ready,
        },
        DeploymentStatus::ScaledToZero if allow_scaled_to_zero => Verdict::Ready,
        s @ (DeploymentStatus::ImageBuildFailed
        | DeploymentStatus::Failed
        | DeploymentStatus::Terminated
        | DeploymentStatus::Terminating) => Verdict::Failed {
            status: s,
            reason: reason(s),
        },
        DeploymentStatus::Unhealthy => Verdict::Unhealthy {
            reason: reason(DeploymentStatus::Unhealthy),
        },
        s => Verdict::Pending {
            phase: phase(s.as_str()),
        },
    }
}

/// How long and how often to wait.
#[derive(Debug, Clone)]
pub struct WaitOptions {
    /// Overall deadline, measured from the start of the wait.
    pub timeout: Duration,
    /// How long `unhealthy` may last before the wait fails. Default 60 s.
    pub unhealthy_grace: Duration,
    /// Floor of the time between two polls (start to start). Default 250 ms.
    pub min_interval: Duration,
    /// Ceiling of the interval, reached when backing off after API errors. Default 5 s.
    pub max_interval: Duration,
    /// Cancelling it stops the wait at once with [`WaitError::Cancelled`].
    pub cancel: CancellationToken,
}

impl WaitOptions {
    pub fn new(timeout: Duration, cancel: CancellationToken) -> WaitOptions {
        WaitOptions {
            timeout,
            unhealthy_grace: Duration::from_secs(60),
            min_interval: Duration::from_millis(250),
            max_interval: Duration::from_secs(5),
            cancel,
        }
    }

    /// The interval before the next poll, after `errors` consecutive failed fetches.
    fn interval(&self, errors: u32) -> Duration {
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

/// Where the poll loop reads the deployment from.
#[async_trait]
pub trait DeploymentSource: Send + Sync {
    async fn fetch(&self) -> Result<Deployment, ClientError>;
}

/// `(client, cluster, name)`: the deployment `name` in `cluster`, read with
/// [`Client::get_deployment`].
#[async_trait]
impl DeploymentSource for (Client, String, String) {
    async fn fetch(&self) -> Result<Deployment, ClientError> {
        self.0.get_deployment(&self.1, &self.2).await
    }
}

/// The deployment `name` in `cluster`, read with [`Client::get_deployment`] (the same as the
/// tuple impl, with names).
#[derive(Debug, Clone)]
pub struct ClientSource {
    pub client: Client,
    pub cluster: String,
    pub name: String,
}

impl ClientSource {
    pub fn new(client: Client, cluster: impl Into<String>, name: impl Into<String>) -> Self {
        ClientSource {
            client,
            cluster: cluster.into(),
            name: name.into(),
        }
    }
}

#[async_trait]
impl DeploymentSource for ClientSource {
    async fn fetch(&self) -> Result<Deployment, ClientError> {
        self.client.get_deployment(&self.cluster, &self.name).await
    }
}

/// Why a wait ended without success.
#[derive(Debug, Clone)]
pub enum WaitError {
    /// The rollout failed (or stayed unhealthy past the grace window).
    Failed {
        status: DeploymentStatus,
        reason: String,
        last: Box<Deployment>,
    },
    /// The deadline passed; the server keeps working.
    TimedOut {
        last: Option<Box<Deployment>>,
        waited: Duration,
    },
    /// The cancellation token fired (Terraform asked the provider to stop).
    Cancelled { last: Option<Box<Deployment>> },
    /// A non-transient API error (or not-found past the grace window).
    Api(ClientError),
}

impl WaitError {
    /// The last deployment document seen, if any.
    pub fn last(&self) -> Option<&Deployment> {
        match self {
            WaitError::Failed { last, .. } => Some(last),
            WaitError::TimedOut { last, .. } | WaitError::Cancelled { last } => last.as_deref(),
            WaitError::Api(_) => None,
        }
    }
}

/// `cluster/name`, or a placeholder when nothing was read.
fn who(d: Option<&Deployment>) -> String {
    match d {
        Some(d) => format!("{}/{}", d.cluster.meta.name, d.meta.name),
        None => "the deployment".to_string(),
    }
}

/// `deploying, 1/3 replicas ready (phase rolling)`.
fn state_of(d: &Deployment) -> String {
    let mut s = d.status.as_str().to_string();
    if let Some(r) = &d.rollout {
        if r.desired_replicas > 0 || r.updated_replicas > 0 {
            s.push_str(&format!(
                ", {}/{} replicas ready",
                r.updated_replicas, r.desired_replicas
            ));
        }
        if !r.phase.is_empty() {
            s.push_str(&format!(" (phase {})", r.phase));
        }
        if !r.message.is_empty() {
            s.push_str(&format!(": {}", r.message));
        }
    }
    s
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

impl std::fmt::Display for WaitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WaitError::Failed {
                status,
                reason,
                last,
            } => write!(
                f,
                "deployment {} revision {} failed: status {status}: {reason}. The deployment still \
                 exists in BentoCloud; see its events and logs in the BentoCloud console, fix the \
                 cause, then run `terraform apply` again",
                who(Some(last)),
                last.revision_uid().map(short).unwrap_or("none"),
            ),
            WaitError::TimedOut { last, waited } => {
                write!(
                    f,
                    "timed out after {} waiting for {}: ",
                    format_go_duration(*waited),
                    who(last.as_deref())
                )?;
                match last {
                    Some(d) => write!(
                        f,
                        "last status {} (revision {})",
                        state_of(d),
                        d.revision_uid().map(short).unwrap_or("none")
                    )?,
                    None => write!(f, "no status could be read")?,
                }
                write!(
                    f,
                    ". BentoCloud continues the rollout server-side; only the wait stopped. Run \
                     `terraform apply` again to resume waiting, or raise the operation's timeout \
                     (e.g. `timeouts.update`, `timeouts.create`)"
                )
            }
            WaitError::Cancelled { last } => {
                write!(f, "stopped waiting for {}", who(last.as_deref()))?;
                if let Some(d) = last {
                    write!(f, " (last status {})", state_of(d))?;
                }
                write!(
                    f,
                    " because Terraform asked the provider to stop. BentoCloud continues \
                     server-side; run `terraform apply` again to converge"
                )
            }
            WaitError::Api(e) => write!(f, "while waiting for the rollout: {e}"),
        }
    }
}

impl std::error::Error for WaitError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            WaitError::Api(e) => Some(e),
            _ => None,
        }
    }
}

/// Waits until `want_revision` is rolled out (see [`classify`]) and returns the deployment.
pub async fn wait_for_revision(
    src: &impl DeploymentSource,
    want_revision: &str,
    allow_scaled_to_zero: bool,
    opts: &WaitOptions,
) -> Result<Deployment, WaitError> {
    let mut unhealthy_since: Option<Instant> = None;
    poll(src, opts, |fetched, now| {
        let d = fetched.ok()?;
        Some(match classify(d, want_revision, allow_scaled_to_zero) {
            Verdict::Ready => Step::Done(d.clone()),
            Verdict::Failed { status, reason } => Step::Fail(WaitError::Failed {
                status,
                reason,
                last: Box::new(d.clone()),
            }),
            Verdict::Unhealthy { reason } => {
                let since = *unhealthy_since.get_or_insert(now);
                if now.duration_since(since) >= opts.unhealthy_grace {
                    Step::Fail(WaitError::Failed {
                        status: DeploymentStatus::Unhealthy,
                        reason: format!(
                            "{reason} (unhealthy for {})",
                            format_go_duration(now.duration_since(since))
                        ),
                        last: Box::new(d.clone()),
                    })
                } else {
                    Step::Continue
                }
            }
            Verdict::Pending { .. } => {
                unhealthy_since = None;
                Step::Continue
            }
        })
    })
    .await
}

/// Waits until the deployment is `terminated` or no longer exists.
pub async fn wait_for_terminated(
    src: &impl DeploymentSource,
    opts: &WaitOptions,
) -> Result<(), WaitError> {
    poll(src, opts, |fetched, _| match fetched {
        Ok(d) if d.status == DeploymentStatus::Terminated => Some(Step::Done(())),
        Ok(_) => Some(Step::Continue),
        Err(e) if e.is_not_found() => Some(Step::Done(())),
        Err(_) => None,
    })
    .await
}

enum Step<T> {
    Done(T),
    Continue,
    Fail(WaitError),
}

/// The poll loop. `accept` sees each fetch result; `None` (only for errors) applies the
/// default policy: retryable errors and early not-found are tolerated, others end the wait.
async fn poll<T>(
    src: &impl DeploymentSource,
    opts: &WaitOptions,
    mut accept: impl FnMut(Result<&Deployment, &ClientError>, Instant) -> Option<Step<T>>,
) -> Result<T, WaitError> {
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
                return Err(WaitError::TimedOut { last, waited: started.elapsed() });
            }
            r = src.fetch() => r,
        };
        let now = Instant::now();
        let step = match accept(fetched.as_ref(), now) {
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
        match step {
            Step::Done(t) => return Ok(t),
            Step::Fail(e) => return Err(e),
            Step::Continue => {}
        }
        if let Ok(d) = fetched {
            last = Some(Box::new(d));
        }
        let next = (fetch_started + opts.interval(errors)).min(deadline);
        tokio::select! {
            biased;
            _ = opts.cancel.cancelled() => return Err(WaitError::Cancelled { last }),
            _ = tokio::time::sleep_until(next) => {}
        }
    }
}

#[cfg(test)]
mod tests;
