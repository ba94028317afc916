//! Waiting for a rollout: a pure acceptor ([`classify`]: one deployment document → a
//! [`Verdict`]), the [`Evidence`] that decides when a read may speak for the revision we
//! submitted, and one generic poll loop that owns the interval, jitter, deadline, tolerance of
//! transient errors and cancellation.
//!
//! # When a status belongs to the submitted revision
//!
//! BentoCloud reports `status` per deployment, not per revision, and refreshes it after the
//! fact (API doc §10, from its open-source ancestor Yatai: the update's transaction writes the
//! new revision and its response still carries the previous status; status is recomputed
//! from *all* the deployment's pods by a goroutine after deploy, pod events, the operator's
//! sync and a one-minute cron; no field ties a status to a revision). So a `running`, or a
//! `failed` left by the previous attempt, read right after a create/update may describe the
//! previous revision. The rule, chosen from what the real API offers:
//!
//! 1. The submitted revision must be the latest (`latest_revision.uid`); else nothing counts.
//! 2. A read speaks for it only once the platform has shown that it recomputed the status
//!    after the submit ([`Evidence`]), by one of:
//!    - **a new deployment** (create): it has no earlier status to confuse with;
//!    - **a move into an in-progress status** (`deploying`, `image-building`, ...) from a
//!      submit-time status that was not in progress: nothing but a sync after the submit
//!      can produce it, and every later status comes from a later sync;
//!    - **the settle window**: `status_sync_period` (a provider attribute; default
//!      [`DEFAULT_STATUS_SYNC_PERIOD`], longer than the ancestor's one-minute cron plus a
//!      cycle) has passed since the submit, so at least one sync ran after it. This is what
//!      judges a change whose rollout finishes between two syncs (an env-only or scaling-only
//!      change on a fast bento shows no `deploying` at all).
//!
//!    A status *change* alone is not evidence: `deploying` → `running` may be the previous
//!    rollout finishing, `running` → `unhealthy` an old replica crashing.
//! 3. After that, [`classify`] decides: `running` (and `scaled-to-zero` when allowed) is
//!    ready, `failed`/`image-build-failed`/`terminat*` fail at once, `unhealthy` fails after a
//!    grace window, anything else keeps waiting.
//!
//! When the deadline passes first, the error says what was seen and which evidence was
//! missing. The provider reads nothing the real API lacks: no rollout-progress extension.
//!
//! This module does not send requests itself (it reads through [`DeploymentSource`]) and knows
//! nothing about Terraform; it logs progress with `tracing` (target `bentocloud::wait`), never
//! to stdout.

use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::api::{Deployment, DeploymentStatus, KubePod, POD_BENTO_VERSION_LABEL};
use crate::client::{Client, ClientError};
use crate::duration::format_go_duration;

const LOG: &str = "bentocloud::wait";

/// Nominal time between two polls of one deployment: completion is noticed within this long of
/// the server reporting it.
pub const POLL_INTERVAL: Duration = Duration::from_millis(500);

/// Each interval is lengthened by a random amount up to this, so deployments waited on
/// together do not poll in lockstep.
pub const POLL_JITTER: Duration = Duration::from_millis(25);

/// How long "not found" is tolerated after the wait starts (a just-created deployment may not
/// be readable everywhere yet).
pub const NOT_FOUND_GRACE: Duration = Duration::from_secs(30);

/// Default settle window (provider attribute `status_sync_period`): how long after a submit a
/// status read is taken to be recomputed, when nothing else showed it. The ancestor's cron
/// re-syncs rows not synced within a minute, every minute (API doc §10), so a status can be
/// up to about two minutes old.
pub const DEFAULT_STATUS_SYNC_PERIOD: Duration = Duration::from_secs(120);

/// What one deployment document says about the revision being waited for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The revision is rolled out and serving.
    Ready,
    /// Still in progress (or no evidence yet); `phase` says where, or what is missing.
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

/// Classifies `d` against the revision we submitted, trusting its status (callers check
/// [`Evidence`] first). Pure.
///
/// - Nothing counts unless `d.revision_uid() == Some(want_revision)`.
/// - `running` is Ready; `scaled-to-zero` is Ready when `allow_scaled_to_zero`.
/// - `unhealthy` is Unhealthy (a rollout failure that may still recover).
/// - Every other rollout failure ([`DeploymentStatus::is_rollout_failure`]: `failed`,
///   `image-build-failed`), and `terminated`, `terminating`, are Failed at once.
/// - Everything else is Pending.
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
    match d.status {
        DeploymentStatus::Running => Verdict::Ready,
        DeploymentStatus::ScaledToZero if allow_scaled_to_zero => Verdict::Ready,
        DeploymentStatus::Unhealthy => Verdict::Unhealthy {
            reason: "BentoCloud reports unhealthy".into(),
        },
        s if s.is_rollout_failure()
            || matches!(
                s,
                DeploymentStatus::Terminated | DeploymentStatus::Terminating
            ) =>
        {
            Verdict::Failed {
                status: s,
                reason: format!("BentoCloud reports {s}"),
            }
        }
        s => Verdict::Pending {
            phase: s.as_str().to_string(),
        },
    }
}

/// What a create or update submitted, as its response showed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submitted {
    /// The revision the submit created (`latest_revision.uid` of the response).
    pub revision: String,
    /// The status in the submit's response: the previous revision's (see the module doc).
    /// `None` when the submit created the deployment.
    pub stale_status: Option<DeploymentStatus>,
}

impl Submitted {
    /// A submit that created the deployment.
    pub fn created(revision: impl Into<String>) -> Submitted {
        Submitted {
            revision: revision.into(),
            stale_status: None,
        }
    }

    /// A submit (update, rollback) of an existing deployment whose response was `d`; also a
    /// resumed wait, with `d` read when the wait resumes.
    pub fn updated(d: &Deployment) -> Submitted {
        Submitted {
            revision: d.revision_uid().unwrap_or_default().to_string(),
            stale_status: Some(d.status),
        }
    }
}

/// Decides when reads speak for the submitted revision (rule 2 of the module doc), then
/// classifies them. Feed it every read in order with the time since the submit.
#[derive(Debug, Clone)]
pub struct Evidence {
    submitted: Submitted,
    settle: Duration,
    /// Why reads count, once they do.
    synced: Option<String>,
}

impl Evidence {
    pub fn new(submitted: Submitted, settle: Duration) -> Evidence {
        let synced = submitted
            .stale_status
            .is_none()
            .then(|| "a new deployment has no earlier status".to_string());
        Evidence {
            submitted,
            settle,
            synced,
        }
    }

    /// Why reads count for the submitted revision, once they do.
    pub fn synced(&self) -> Option<&str> {
        self.synced.as_deref()
    }

    /// The verdict on `d`, read `since_submit` after the submit.
    pub fn observe(
        &mut self,
        d: &Deployment,
        since_submit: Duration,
        allow_scaled_to_zero: bool,
    ) -> Verdict {
        let want = self.submitted.revision.as_str();
        if d.revision_uid() != Some(want) {
            return classify(d, want, allow_scaled_to_zero);
        }
        if self.synced.is_none() {
            let stale = self.submitted.stale_status.unwrap_or_default();
            if d.status.is_in_progress() && !stale.is_in_progress() {
                self.synced = Some(format!(
                    "the status moved from {stale} to {} after the submit",
                    d.status
                ));
            } else if since_submit >= self.settle {
                self.synced = Some(format!(
                    "status_sync_period ({}) has passed since the submit",
                    format_go_duration(self.settle)
                ));
            }
        }
        if self.synced.is_none() {
            return Verdict::Pending {
                phase: format!(
                    "status {} may still describe the previous revision (BentoCloud refreshes \
                     status after an update); waiting for it to show revision {} in progress, \
                     or for status_sync_period ({}) to pass since the submit ({} so far)",
                    d.status,
                    short(want),
                    format_go_duration(self.settle),
                    format_go_duration(since_submit)
                ),
            };
        }
        classify(d, want, allow_scaled_to_zero)
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
    /// The settle window of [`Evidence`] (provider attribute `status_sync_period`).
    pub status_sync_period: Duration,
}

impl WaitOptions {
    pub fn new(timeout: Duration, cancel: CancellationToken) -> WaitOptions {
        WaitOptions {
            timeout,
            unhealthy_grace: Duration::from_secs(60),
            min_interval: Duration::from_millis(250),
            max_interval: Duration::from_secs(5),
            cancel,
            status_sync_period: DEFAULT_STATUS_SYNC_PERIOD,
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

    /// The deployment's pods, for the reason of a failure (best effort: `None` when they
    /// cannot be read).
    async fn pods(&self) -> Option<Vec<KubePod>> {
        None
    }
}

/// Why the pods contradict a `running` for the revision whose main bento is `bento_version`:
/// a pod that still serves another bento (ready, not a canary's, not terminating). `None`
/// when they agree, or say nothing (no version label). Pure.
///
/// The status is computed from all pods by a periodic sync; a sync that falls between two
/// steps of a rolling update, when no pod is pending, reports `running` while old pods still
/// serve (API doc §10). The pods stream is the evidence that settles it for a bento change.
/// An env-only change keeps the bento version, so pods cannot tell old from new there (they
/// carry no revision label): the status alone judges it.
pub fn pods_serving_another_bento(pods: &[KubePod], bento_version: &str) -> Option<String> {
    let stale: Vec<String> = pods
        .iter()
        .filter(|p| p.status.ready && !p.status.is_canary && !p.is_terminating())
        .filter_map(|p| {
            let v = p.labels.get(POD_BENTO_VERSION_LABEL)?;
            (v != bento_version).then(|| format!("{} (bento version {v})", p.name))
        })
        .collect();
    (!stale.is_empty()).then(|| {
        format!(
            "BentoCloud reports running, but pods of another bento still serve: {}; waiting \
             for them to be replaced by bento version {bento_version}",
            stale.join(", ")
        )
    })
}

/// The reason a failed rollout's pods give: the pods that are not ready, those of the latest
/// revision's bento (`bento_version`) first, with their warnings (Kubernetes events such as a
/// failing readiness probe). `None` when no pod says anything. Pure.
pub fn pods_reason(pods: &[KubePod], bento_version: Option<&str>) -> Option<String> {
    let mut unready: Vec<&KubePod> = pods.iter().filter(|p| !p.status.ready).collect();
    if let Some(v) = bento_version {
        let of_new: Vec<&KubePod> = unready
            .iter()
            .copied()
            .filter(|p| p.labels.get(POD_BENTO_VERSION_LABEL).map(String::as_str) == Some(v))
            .collect();
        if !of_new.is_empty() {
            unready = of_new;
        }
    }
    let lines: Vec<String> = unready
        .iter()
        .take(3)
        .map(|p| {
            let version = p
                .labels
                .get(POD_BENTO_VERSION_LABEL)
                .map(|v| format!(" (bento version {v})"))
                .unwrap_or_default();
            let events: Vec<String> = p
                .warnings
                .iter()
                .flatten()
                .map(|e| format!("{}: {}", e.reason, e.message))
                .collect();
            if events.is_empty() {
                format!(
                    "pod {}{version} is not ready (phase {})",
                    p.name, p.status.phase
                )
            } else {
                format!(
                    "pod {}{version} is not ready: {}",
                    p.name,
                    events.join("; ")
                )
            }
        })
        .collect();
    (!lines.is_empty()).then(|| lines.join(". "))
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

    async fn pods(&self) -> Option<Vec<KubePod>> {
        match self.client.deployment_pods(&self.cluster, &self.name).await {
            Ok(p) => Some(p),
            Err(e) => {
                tracing::debug!(target: LOG, "cannot read the pods for the failure's reason: {e}");
                None
            }
        }
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
        /// What the last read was still waiting for (missing evidence, or the phase).
        pending: String,
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

/// The status as read, e.g. `deploying`.
fn state_of(d: &Deployment) -> String {
    d.status.as_str().to_string()
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
            WaitError::TimedOut {
                last,
                waited,
                pending,
            } => {
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
                if !pending.is_empty() {
                    write!(f, "; still missing: {pending}")?;
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

/// Waits until `submitted.revision` is rolled out, judged by [`Evidence`] (see the module
/// doc), and returns the deployment. The wait is taken to start right after the submit.
pub async fn wait_for_revision(
    src: &impl DeploymentSource,
    submitted: &Submitted,
    allow_scaled_to_zero: bool,
    opts: &WaitOptions,
) -> Result<Deployment, WaitError> {
    let mut unhealthy_since: Option<Instant> = None;
    let mut evidence = Evidence::new(submitted.clone(), opts.status_sync_period);
    let mut logged_evidence = false;
    let started = Instant::now();
    let result = poll(src, opts, |fetched, now, pending| {
        let d = fetched.ok()?;
        let verdict = evidence.observe(d, now.duration_since(started), allow_scaled_to_zero);
        if let (Some(why), false) = (evidence.synced(), logged_evidence) {
            tracing::info!(target: LOG, "statuses of {} now count for revision {}: {why}", who(Some(d)), short(&submitted.revision));
            logged_evidence = true;
        }
        Some(match verdict {
            Verdict::Ready => Step::Confirm(d.clone()),
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
                    *pending = format!("{reason}, for less than the grace period so far");
                    Step::Continue
                }
            }
            Verdict::Pending { phase } => {
                unhealthy_since = None;
                *pending = phase;
                Step::Continue
            }
        })
    },
    |d, pods| pods_serving_another_bento(pods, main_bento_version(d)?),
    )
    .await;
    match result {
        Err(WaitError::Failed {
            status,
            reason,
            last,
        }) => {
            // The status alone says little: the pods say why (probe failures, crashes).
            let version = last
                .main_target()
                .and_then(|t| t.bento.as_ref())
                .map(|b| b.version.clone());
            let from_pods = match status {
                DeploymentStatus::Failed | DeploymentStatus::Unhealthy => src
                    .pods()
                    .await
                    .and_then(|p| pods_reason(&p, version.as_deref())),
                _ => None,
            };
            Err(WaitError::Failed {
                status,
                reason: match from_pods {
                    Some(p) => format!("{reason}; {p}"),
                    None => reason,
                },
                last,
            })
        }
        other => other,
    }
}

/// The version of the main target's bento of `d`.
fn main_bento_version(d: &Deployment) -> Option<&str> {
    Some(d.main_target()?.bento.as_ref()?.version.as_str())
}

/// Waits until the deployment is `terminated` or no longer exists.
pub async fn wait_for_terminated(
    src: &impl DeploymentSource,
    opts: &WaitOptions,
) -> Result<(), WaitError> {
    poll(
        src,
        opts,
        |fetched, _, _| match fetched {
            Ok(d) if d.status == DeploymentStatus::Terminated => Some(Step::Done(())),
            Ok(_) => Some(Step::Continue),
            Err(e) if e.is_not_found() => Some(Step::Done(())),
            Err(_) => None,
        },
        |_, _| None,
    )
    .await
}

enum Step<T> {
    Done(T),
    /// Done by the status: confirm with the pods first (see [`pods_serving_another_bento`]).
    Confirm(T),
    Continue,
    Fail(WaitError),
}

/// The poll loop. `accept` sees each fetch result (and may say in its third argument what it
/// still waits for, reported on timeout); `None` (only for errors) applies the default
/// policy: retryable errors and early not-found are tolerated, others end the wait.
async fn poll<T>(
    src: &impl DeploymentSource,
    opts: &WaitOptions,
    mut accept: impl FnMut(Result<&Deployment, &ClientError>, Instant, &mut String) -> Option<Step<T>>,
    mut confirm: impl FnMut(&T, &[KubePod]) -> Option<String>,
) -> Result<T, WaitError> {
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
        let step = match accept(fetched.as_ref(), now, &mut pending) {
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
            Step::Confirm(t) => {
                let pods = tokio::select! {
                    biased;
                    _ = opts.cancel.cancelled() => return Err(WaitError::Cancelled { last }),
                    p = src.pods() => p,
                };
                // Pods that cannot be read leave the status to judge alone.
                match pods.as_deref().and_then(|p| confirm(&t, p)) {
                    None => return Ok(t),
                    Some(why) => {
                        if why != pending {
                            tracing::info!(target: LOG, "{why}");
                        }
                        pending = why;
                    }
                }
            }
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
