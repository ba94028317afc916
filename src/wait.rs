//! Waiting for a rollout: pure acceptors ([`classify`]: one deployment document → a
//! [`Verdict`]; [`judge_pods`]: the deployment's pods → a [`PodsVerdict`]), the [`Evidence`]
//! that decides when a status may speak for the revision we submitted, and one generic poll
//! loop that owns the interval, jitter, deadline, tolerance of transient errors and
//! cancellation.
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
//!      cycle) has passed since the submit, so at least one sync ran after it. This is the
//!      last resort: a rollout that finishes between two syncs (a fast bento; an env-only or
//!      scaling-only change often shows no `deploying` at all) is judged on its pods first
//!      (below), and the window decides only when the pods cannot.
//!
//!    A status *change* alone is not evidence: `deploying` → `running` may be the previous
//!    rollout finishing, `running` → `unhealthy` an old replica crashing.
//! 3. After that, [`classify`] decides: `running` (and `scaled-to-zero` when allowed) is
//!    ready, `failed`/`image-build-failed`/`terminat*` fail at once, `unhealthy` fails after a
//!    grace window, anything else keeps waiting. A `running` is confirmed with one read of the
//!    pods: none of another bento may still serve ([`pods_serving_another_bento`]). The pods
//!    may end an update's wait before the status does (next section).
//!
//! # When the pods show that the rollout is done
//!
//! After an update (not a create, whose statuses count at once), while the status alone
//! cannot end the wait (rule 2 has not held for the latest revision, or the status shown
//! synced is still an in-progress one, which the next sync may report done up to a sync
//! period late), every poll also reads the deployment's pods from the pods stream the official
//! client reads (`ws/v2/deployments/{name}/pods`; a websocket per read, so only then), and
//! [`judge_pods`] judges them on what the real API gives (API doc §10): each pod's
//! `yatai.ai/bento-version` label, `status.start_time`, `ready`, `is_old`, `is_canary`, its
//! terminating state (`pod_status.status == "Terminating"`), and the revision's
//! `latest_revision.created_at`. A poll that reads the pods counts as two requests: the next
//! one comes twice the interval later, so a wait stays at or under two requests per second.
//! Both times are the server's (its database and its kubelets): they are compared with each
//! other, never with the provider's clock. Pods carry no revision label, so a **pod of this
//! revision** is one that is not a canary's, not marked `is_old`, runs the revision's bento
//! (the main target's bento version) and started at or after the revision was created
//! (Kubernetes gives `start_time` to the second: a pod started within the revision's second
//! counts as started after it). A pod **serves** when it is ready and not terminating (a
//! terminating pod is out of the endpoints).
//!
//! - **A change that restarts replicas** ([`Change::Restart`]: bento, envs, secrets, instance
//!   type, strategy, labels, a `void_update` redeploy, a rollback, a stopped deployment
//!   started again, and a resumed wait, which does not know what changed): done when every
//!   serving non-canary pod is of this revision (no older pod is left serving) and enough of
//!   them serve: each service's `min_replicas` from the revision's config, at least 1 unless
//!   it is 0 (the platform's default scaling is `{1, 1}`, API doc §5.3).
//! - **A scaling-only change** ([`Change::Scale`]: only `min_replicas`/`max_replicas`):
//!   replicas are added or removed, not replaced. Done when no non-canary pod is pending or
//!   terminating, every one runs the revision's bento (none `is_old`), and each service's
//!   ready count is within its new `min_replicas`..`max_replicas`.
//!
//! Canary pods (`is_canary`) run their version's bento by design: they are not matched
//! against the revision, but one still starting (not ready, not terminating) keeps the wait
//! going, as it keeps the platform's status at `deploying`.
//!
//! Services: pods are counted per service when every non-canary pod names a service of the
//! revision in [`POD_SERVICE_LABEL`] (`bentocloud-local` sends it). The ancestor's operator
//! labels pods by deployment, bento repository, bento version and component type, not by
//! service (`yatai-deployment` bentodeployment_controller.go:1375-1404), so the real platform
//! may not: then all non-canary pods are counted together against the summed bounds.
//!
//! Once the pods show it done, the status read with them is taken as `running`
//! (`scaled-to-zero` when no pod serves, with `min_replicas = 0`): a stale `running`, or a
//! stale `failed`/`unhealthy` left by the previous revision, neither fails nor delays it,
//! and the state does not record it.
//!
//! A failure is judged only on evidence that belongs to the submitted revision: pods of this
//! revision in a crash loop (`pod_status.status` `CrashLoopBackOff`/`Error`/`Failed`, or phase
//! `Failed`) for longer than `unhealthy_grace`; pods of this revision not ready, with
//! Kubernetes' warnings saying why, for longer than `unready_grace` (default
//! [`DEFAULT_UNREADY_GRACE`], Kubernetes' default progress deadline, so a bento loading a
//! large model is not failed for probing unready while it loads); and, once rule 2 held, the
//! status (rule 3). Durations of what the provider saw are measured on its own clock.
//!
//! Pods that cannot be read ([`POD_READ_ATTEMPTS`] failed reads in a row), or that cannot be
//! dated or matched (no readable `created_at`, no bento version on the revision or on a
//! serving pod), leave the status alone to decide, with the settle window. Known limit: a pod
//! of the previous revision started again after the submit (a node lost mid-rollout), with
//! the same bento and not marked `is_old`, is taken for one of this revision.
//!
//! When the deadline passes first, the error says what was seen and which evidence was
//! missing. The provider reads nothing the real API lacks: no rollout-progress extension.
//!
//! This module does not send requests itself (it reads through [`DeploymentSource`]) and knows
//! nothing about Terraform; it logs progress with `tracing` (target `bentocloud::wait`), never
//! to stdout.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, FixedOffset, Timelike};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::api::{Deployment, DeploymentStatus, KubePod, Scaling, POD_BENTO_VERSION_LABEL};
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

/// Default `unready_grace` of [`WaitOptions`]: how long pods of the submitted revision may stay
/// not ready, with Kubernetes' warnings saying why, before the wait fails. Kubernetes' default
/// progress deadline (`progressDeadlineSeconds: 600`): long enough for a bento that loads a
/// large model (its readiness probe fails while it loads).
pub const DEFAULT_UNREADY_GRACE: Duration = Duration::from_secs(600);

/// After this many pods reads in a row that give nothing (the stream refused, closed or
/// unreadable), a wait stops reading the pods and leaves the status alone to decide.
pub const POD_READ_ATTEMPTS: u32 = 3;

/// The pod label naming the service (deployment target) a pod runs, when the platform sends
/// it: `bentocloud-local` does; the ancestor's operator does not (see the module doc), so the
/// pods rule counts per service only when every pod has it.
pub const POD_SERVICE_LABEL: &str = "yatai.ai/bento-deployment-target-name";

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

/// What a submit asks of the replicas: decides what the pods must show ([`judge_pods`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Every replica is replaced by one of the new revision: a change of the bento, envs,
    /// secrets, instance type, strategy or labels, a `void_update` redeploy, a rollback, a
    /// stopped deployment started again; also a resumed wait (what changed is not known) and
    /// a create.
    Restart,
    /// Only `min_replicas`/`max_replicas` changed: replicas are added or removed, the ones
    /// that serve keep serving.
    Scale,
}

/// What a create or update submitted, as its response showed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submitted {
    /// The revision the submit created (`latest_revision.uid` of the response).
    pub revision: String,
    /// The status in the submit's response: the previous revision's (see the module doc).
    /// `None` when the submit created the deployment.
    pub stale_status: Option<DeploymentStatus>,
    /// What the submit changed (a [`Change::Restart`] unless told otherwise).
    pub change: Change,
}

impl Submitted {
    /// A submit that created the deployment.
    pub fn created(revision: impl Into<String>) -> Submitted {
        Submitted {
            revision: revision.into(),
            stale_status: None,
            change: Change::Restart,
        }
    }

    /// A submit (update, rollback) of an existing deployment whose response was `d`; also a
    /// resumed wait, with `d` read when the wait resumes. A [`Change::Restart`]: see
    /// [`Submitted::with_change`].
    pub fn updated(d: &Deployment) -> Submitted {
        Submitted {
            revision: d.revision_uid().unwrap_or_default().to_string(),
            stale_status: Some(d.status),
            change: Change::Restart,
        }
    }

    /// The same submit, known to make `change`.
    pub fn with_change(self, change: Change) -> Submitted {
        Submitted { change, ..self }
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

    /// Whether the pods should judge `d` ([`judge_pods`]): an update (a create's statuses
    /// count at once) whose revision `d` names as the latest, and whose status alone cannot end
    /// the wait: not yet evidence (rule 2 has not held), or shown synced but in progress.
    pub fn wants_pods(&self, d: &Deployment) -> bool {
        self.submitted.stale_status.is_some()
            && d.revision_uid() == Some(self.submitted.revision.as_str())
            && (self.synced.is_none() || d.status.is_in_progress())
    }

    /// What the submit changed.
    pub fn change(&self) -> Change {
        self.submitted.change
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
    /// How long `unhealthy`, or pods of the submitted revision in a crash loop, may last
    /// before the wait fails. Default 60 s.
    pub unhealthy_grace: Duration,
    /// How long pods of the submitted revision may stay not ready, with Kubernetes' warnings
    /// saying why, before the wait fails. Default [`DEFAULT_UNREADY_GRACE`].
    pub unready_grace: Duration,
    /// Floor of the time between two polls (start to start). Default 250 ms.
    pub min_interval: Duration,
    /// Ceiling of the interval, reached when backing off after API errors. Default 5 s.
    pub max_interval: Duration,
    /// Cancelling it stops the wait at once with [`WaitError::Cancelled`].
    pub cancel: CancellationToken,
    /// The settle window of [`Evidence`] (provider attribute `status_sync_period`).
    pub status_sync_period: Duration,
    /// Whether the pods judge a rollout while the status alone is not yet evidence
    /// ([`judge_pods`]). Default `true`; `false` leaves the status and the settle window alone
    /// (the benchmark's baseline).
    pub pod_evidence: bool,
}

impl WaitOptions {
    pub fn new(timeout: Duration, cancel: CancellationToken) -> WaitOptions {
        WaitOptions {
            timeout,
            unhealthy_grace: Duration::from_secs(60),
            unready_grace: DEFAULT_UNREADY_GRACE,
            min_interval: Duration::from_millis(250),
            max_interval: Duration::from_secs(5),
            cancel,
            status_sync_period: DEFAULT_STATUS_SYNC_PERIOD,
            pod_evidence: true,
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

    /// The deployment's pods: the evidence of [`judge_pods`] while the status alone is not
    /// yet, the confirmation of a `running`, and the reason of a failure (best effort: `None`
    /// when they cannot be read).
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

/// The replica bounds of one service, as the platform normalises them (API doc §5.3, the
/// official client's `_fix_scaling`): no scaling is `{1, 1}`, a missing `min` is 1, a missing
/// `max` is `max(min, 1)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    pub min: u32,
    pub max: u32,
}

impl Bounds {
    /// The bounds `scaling` asks for.
    pub fn of(scaling: Option<&Scaling>) -> Bounds {
        let min = scaling.and_then(|s| s.min_replicas).unwrap_or(1).max(0);
        let max = scaling
            .and_then(|s| s.max_replicas)
            .unwrap_or(min.max(1))
            .max(min);
        let cv = |v: i64| u32::try_from(v).unwrap_or(u32::MAX);
        Bounds {
            min: cv(min),
            max: cv(max),
        }
    }

    /// How many pods of a restarted revision must serve: `min_replicas` (a missing one is 1,
    /// see [`Bounds::of`]; 0 asks for none: the deployment may be scaled to zero).
    fn wanted(self) -> u32 {
        self.min
    }
}

/// What the submitted revision asks of the pods, read from its deployment document.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RolloutTarget {
    /// `latest_revision.created_at` (the server's clock).
    pub created_at: String,
    /// The main target's bento version.
    pub bento_version: Option<String>,
    /// The main target's services and their bounds; empty when the config names none (one
    /// service, bounds `{1, 1}`).
    pub services: BTreeMap<String, Bounds>,
}

impl RolloutTarget {
    /// The target of `d`'s latest revision.
    pub fn of(d: &Deployment) -> RolloutTarget {
        let created_at = d
            .latest_revision
            .as_ref()
            .map(|r| r.meta.created_at.clone())
            .unwrap_or_default();
        let services = d
            .main_target()
            .and_then(|t| t.config.as_ref())
            .map(|c| {
                c.services
                    .iter()
                    .map(|(name, s)| (name.clone(), Bounds::of(s.scaling.as_ref())))
                    .collect()
            })
            .unwrap_or_default();
        RolloutTarget {
            created_at,
            bento_version: main_bento_version(d).map(str::to_string),
            services,
        }
    }

    /// The bounds of all services together.
    fn summed(&self) -> Bounds {
        if self.services.is_empty() {
            return Bounds::of(None);
        }
        self.services
            .values()
            .fold(Bounds { min: 0, max: 0 }, |a, b| Bounds {
                min: a.min.saturating_add(b.min),
                max: a.max.saturating_add(b.max),
            })
    }
}

/// What the pods say about the rollout of a revision ([`judge_pods`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PodsVerdict {
    /// The rollout is done: `serving` pods of the revision serve; `why` says what showed it.
    Done { serving: usize, why: String },
    /// Not yet, or the pods cannot tell: what is missing.
    Waiting(String),
    /// Pods of the revision crash (a crash loop, or phase `Failed`): fails after the
    /// unhealthy grace.
    Crashing(String),
    /// Pods of the revision are not ready and Kubernetes' warnings say why: fails after the
    /// unready grace.
    Unready(String),
}

/// A server timestamp (RFC 3339).
fn server_time(s: &str) -> Option<DateTime<FixedOffset>> {
    DateTime::parse_from_rfc3339(s.trim()).ok()
}

/// Whether a pod that started at `start` started at or after `created`, at the precision of
/// `start`: Kubernetes' `metav1.Time` has whole seconds, so `created` is then taken to its
/// second.
fn started_at_or_after(start: &DateTime<FixedOffset>, created: &DateTime<FixedOffset>) -> bool {
    let created = if start.nanosecond() == 0 {
        created.with_nanosecond(0).unwrap_or(*created)
    } else {
        *created
    };
    *start >= created
}

/// Serving: ready and not terminating (a terminating pod is out of the endpoints).
fn serves(p: &KubePod) -> bool {
    p.status.ready && !p.is_terminating()
}

/// A crash loop or a failed pod: what Kubernetes (and so `pod_status`) reports for it.
fn crashing(p: &KubePod) -> bool {
    let runtime = p.pod_status.as_ref().map(|r| r.status.as_str());
    matches!(runtime, Some("CrashLoopBackOff" | "Error" | "Failed")) || p.status.phase == "Failed"
}

/// Why `p` is not a pod of the revision (see the module doc), or `None` when it is.
fn not_of_revision(
    p: &KubePod,
    created: &DateTime<FixedOffset>,
    bento_version: &str,
) -> Option<String> {
    if p.status.is_old {
        return Some("marked is_old".into());
    }
    match p.labels.get(POD_BENTO_VERSION_LABEL) {
        None => return Some("no bento version label".into()),
        Some(v) if v != bento_version => return Some(format!("bento version {v}")),
        Some(_) => {}
    }
    let Some(start) = p.status.start_time.as_deref() else {
        return Some("no start time".into());
    };
    match server_time(start) {
        None => Some(format!("unreadable start time {start:?}")),
        Some(t) if !started_at_or_after(&t, created) => {
            Some(format!("started {start}, before the revision"))
        }
        Some(_) => None,
    }
}

/// At most three items, then how many more.
fn some_of(items: &[String]) -> String {
    let mut out = items.iter().take(3).cloned().collect::<Vec<_>>().join(", ");
    if items.len() > 3 {
        out.push_str(&format!(" and {} more", items.len() - 3));
    }
    out
}

/// The groups the pods are counted in: per service when every pod in `main` names a service
/// of `target` in [`POD_SERVICE_LABEL`], else one group of all of them against the summed
/// bounds. Each group: its name (empty for all), its bounds, and its pods.
fn groups<'a>(
    target: &RolloutTarget,
    main: &[&'a KubePod],
) -> Vec<(String, Bounds, Vec<&'a KubePod>)> {
    let labelled = !main.is_empty()
        && !target.services.is_empty()
        && main.iter().all(|p| {
            p.labels
                .get(POD_SERVICE_LABEL)
                .is_some_and(|s| target.services.contains_key(s))
        });
    if labelled {
        target
            .services
            .iter()
            .map(|(name, b)| {
                let of: Vec<&KubePod> = main
                    .iter()
                    .copied()
                    .filter(|p| p.labels.get(POD_SERVICE_LABEL) == Some(name))
                    .collect();
                (name.clone(), *b, of)
            })
            .collect()
    } else {
        vec![(String::new(), target.summed(), main.to_vec())]
    }
}

/// "service X: " or nothing for the group of all pods.
fn group_name(name: &str) -> String {
    if name.is_empty() {
        String::new()
    } else {
        format!("service {name}: ")
    }
}

/// Judges whether the rollout of `target` (the submitted revision, making `change`) is done,
/// from the deployment's `pods` alone. Pure; the rule and its evidence are in the module doc
/// ("When the pods show that the rollout is done"). Canary pods are not matched against the
/// revision; one not ready (and not terminating) keeps it waiting.
///
/// - Pods of the revision that crash: [`PodsVerdict::Crashing`], whatever else holds.
/// - [`Change::Restart`]: [`PodsVerdict::Done`] when every serving pod is of the revision and
///   each group has at least its `min_replicas` of them serving.
/// - [`Change::Scale`]: done when no pod is pending or terminating, every pod runs the
///   revision's bento and is not `is_old`, and each group's ready count is within its bounds.
/// - Otherwise pods of the revision not ready with warnings: [`PodsVerdict::Unready`]; else
///   [`PodsVerdict::Waiting`], saying what is missing (also when the revision has no bento
///   version or no readable `created_at`: the pods cannot be matched or dated).
pub fn judge_pods(change: Change, target: &RolloutTarget, pods: &[KubePod]) -> PodsVerdict {
    let Some(created) = server_time(&target.created_at) else {
        return PodsVerdict::Waiting(format!(
            "the revision's created_at ({:?}) is not a time: its pods cannot be dated",
            target.created_at
        ));
    };
    let Some(bento) = target.bento_version.as_deref() else {
        return PodsVerdict::Waiting("the revision names no bento version".into());
    };
    let main: Vec<&KubePod> = pods.iter().filter(|p| !p.status.is_canary).collect();
    let of_revision = |p: &KubePod| not_of_revision(p, &created, bento).is_none();
    let crashes: Vec<String> = main
        .iter()
        .filter(|p| of_revision(p) && crashing(p))
        .map(|p| p.name.clone())
        .collect();
    if !crashes.is_empty() {
        let reason = pods_reason(
            &main
                .iter()
                .filter(|p| of_revision(p) && crashing(p))
                .map(|p| (*p).clone())
                .collect::<Vec<_>>(),
            Some(bento),
        )
        .unwrap_or_else(|| some_of(&crashes));
        return PodsVerdict::Crashing(format!("pods of this revision crash: {reason}"));
    }
    let mut missing: Vec<String> = Vec::new();
    let mut serving_total = 0usize;
    for (name, bounds, of) in groups(target, &main) {
        let label = group_name(&name);
        match change {
            Change::Restart => {
                let older: Vec<String> = of
                    .iter()
                    .filter(|p| serves(p))
                    .filter_map(|p| {
                        not_of_revision(p, &created, bento).map(|why| format!("{} ({why})", p.name))
                    })
                    .collect();
                let new = of.iter().filter(|p| serves(p) && of_revision(p)).count();
                serving_total += new;
                if !older.is_empty() {
                    missing.push(format!(
                        "{label}older pods still serve: {}",
                        some_of(&older)
                    ));
                }
                if new < bounds.wanted() as usize {
                    missing.push(format!(
                        "{label}{new} of {} pods of this revision serve",
                        bounds.wanted()
                    ));
                }
            }
            Change::Scale => {
                let unsettled: Vec<String> = of
                    .iter()
                    .filter(|p| !serves(p))
                    .map(|p| {
                        let state = if p.is_terminating() {
                            "terminating"
                        } else {
                            "pending"
                        };
                        format!("{} ({state})", p.name)
                    })
                    .collect();
                let other: Vec<String> = of
                    .iter()
                    .filter(|p| serves(p))
                    .filter_map(|p| {
                        let why = match p.labels.get(POD_BENTO_VERSION_LABEL) {
                            _ if p.status.is_old => "marked is_old".to_string(),
                            None => "no bento version label".to_string(),
                            Some(v) if v != bento => format!("bento version {v}"),
                            Some(_) => return None,
                        };
                        Some(format!("{} ({why})", p.name))
                    })
                    .collect();
                let ready = of.iter().filter(|p| serves(p)).count();
                serving_total += ready;
                if !unsettled.is_empty() {
                    missing.push(format!("{label}pods not settled: {}", some_of(&unsettled)));
                }
                if !other.is_empty() {
                    missing.push(format!(
                        "{label}pods of another bento serve: {}",
                        some_of(&other)
                    ));
                }
                if !(bounds.min as usize..=bounds.max as usize).contains(&ready) {
                    missing.push(format!(
                        "{label}{ready} ready pods, wanted {}..{}",
                        bounds.min, bounds.max
                    ));
                }
            }
        }
    }
    // Canary versions run other bentos by design, so their pods are not matched; but a canary
    // pod still starting is part of the rollout (the platform's status counts every pod).
    let canaries_starting: Vec<String> = pods
        .iter()
        .filter(|p| p.status.is_canary && !p.status.ready && !p.is_terminating())
        .map(|p| p.name.clone())
        .collect();
    if !canaries_starting.is_empty() {
        missing.push(format!(
            "canary pods not ready: {}",
            some_of(&canaries_starting)
        ));
    }
    if missing.is_empty() {
        let why = match change {
            Change::Restart => format!(
                "{serving_total} serving pods, all of bento version {bento} started since the \
                 revision was created ({}), none older",
                target.created_at
            ),
            Change::Scale => format!(
                "{serving_total} ready pods of bento version {bento} within the new scaling \
                 bounds, none pending or terminating"
            ),
        };
        return PodsVerdict::Done {
            serving: serving_total,
            why,
        };
    }
    let unready: Vec<KubePod> = main
        .iter()
        .filter(|p| of_revision(p) && !p.status.ready && !p.is_terminating())
        .filter(|p| p.warnings.as_ref().is_some_and(|w| !w.is_empty()))
        .map(|p| (*p).clone())
        .collect();
    if let Some(reason) = pods_reason(&unready, Some(bento)) {
        return PodsVerdict::Unready(format!("{}; {reason}", missing.join("; ")));
    }
    PodsVerdict::Waiting(missing.join("; "))
}

/// `d` as the pods showed it rolled out: its status taken as `running`, or `scaled-to-zero`
/// when no pod serves (the status read with it may be the previous revision's).
fn rolled_out(mut d: Deployment, serving: usize) -> Deployment {
    d.status = if serving == 0 {
        DeploymentStatus::ScaledToZero
    } else {
        DeploymentStatus::Running
    };
    d
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
                tracing::debug!(target: LOG, "cannot read the pods: {e}");
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

/// Waits until `submitted.revision` is rolled out, judged by [`Evidence`] and, while the
/// status alone is not yet evidence, by [`judge_pods`] (see the module doc), and returns the
/// deployment. The wait is taken to start right after the submit.
pub async fn wait_for_revision(
    src: &impl DeploymentSource,
    submitted: &Submitted,
    allow_scaled_to_zero: bool,
    opts: &WaitOptions,
) -> Result<Deployment, WaitError> {
    let mut judge = RolloutJudge {
        evidence: Evidence::new(submitted.clone(), opts.status_sync_period),
        allow_scaled_to_zero,
        unhealthy_grace: opts.unhealthy_grace,
        unready_grace: opts.unready_grace,
        started: Instant::now(),
        unhealthy_since: None,
        crashing_since: None,
        unready_since: None,
        pod_misses: if opts.pod_evidence {
            0
        } else {
            POD_READ_ATTEMPTS
        },
        logged_evidence: false,
        failed_on_pods: false,
    };
    let result = poll(src, opts, &mut judge).await;
    match result {
        Err(WaitError::Failed {
            status,
            reason,
            last,
        }) if !judge.failed_on_pods => {
            // The status alone says little: the pods say why (probe failures, crashes).
            let from_pods = match status {
                DeploymentStatus::Failed | DeploymentStatus::Unhealthy => src
                    .pods()
                    .await
                    .and_then(|p| pods_reason(&p, main_bento_version(&last))),
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

/// What a [`RolloutJudge`] asks the pods.
enum Ask {
    /// The status says the revision is ready: no pod of another bento may still serve.
    Confirm(Deployment),
    /// The status alone is not evidence yet: do the pods show the rollout done? `phase` is
    /// what the status alone still waits for.
    Judge { d: Deployment, phase: String },
}

/// The wait of [`wait_for_revision`]: the rules of the module doc, and the graces, which it
/// measures on the provider's clock (how long it saw a state, never against a server time).
struct RolloutJudge {
    evidence: Evidence,
    allow_scaled_to_zero: bool,
    unhealthy_grace: Duration,
    unready_grace: Duration,
    started: Instant,
    /// Since when the status is `unhealthy` (after rule 2 held).
    unhealthy_since: Option<Instant>,
    /// Since when pods of the revision crash.
    crashing_since: Option<Instant>,
    /// Since when pods of the revision are not ready with warnings.
    unready_since: Option<Instant>,
    /// Pods reads in a row that gave nothing; at [`POD_READ_ATTEMPTS`] they are no longer read.
    pod_misses: u32,
    logged_evidence: bool,
    /// The wait failed on the pods' evidence (its reason already names them).
    failed_on_pods: bool,
}

/// A failure once `reason` (seen since `since`) has lasted `grace`, else keep waiting.
fn after_grace(
    since: Instant,
    grace: Duration,
    now: Instant,
    status: DeploymentStatus,
    reason: String,
    d: &Deployment,
    pending: &mut String,
) -> Step<Deployment, Ask> {
    let lasted = now.duration_since(since);
    if lasted >= grace {
        Step::Fail(WaitError::Failed {
            status,
            reason: format!("{reason} (for {})", format_go_duration(lasted)),
            last: Box::new(d.clone()),
        })
    } else {
        *pending = format!(
            "{reason}, for less than the grace period ({}) so far",
            format_go_duration(grace)
        );
        Step::Continue
    }
}

impl Judge for RolloutJudge {
    type Out = Deployment;
    type Ask = Ask;

    fn on_fetch(
        &mut self,
        fetched: Result<&Deployment, &ClientError>,
        now: Instant,
        pending: &mut String,
    ) -> Option<Step<Deployment, Ask>> {
        let d = fetched.ok()?;
        let verdict = self.evidence.observe(
            d,
            now.duration_since(self.started),
            self.allow_scaled_to_zero,
        );
        if let (Some(why), false) = (self.evidence.synced(), self.logged_evidence) {
            tracing::info!(target: LOG, "statuses of {} now count for revision {}: {why}", who(Some(d)), short(&self.evidence.submitted.revision));
            self.logged_evidence = true;
        }
        Some(match verdict {
            Verdict::Ready => Step::Pods(Ask::Confirm(d.clone())),
            Verdict::Failed { status, reason } => Step::Fail(WaitError::Failed {
                status,
                reason,
                last: Box::new(d.clone()),
            }),
            Verdict::Unhealthy { reason } => {
                let since = *self.unhealthy_since.get_or_insert(now);
                after_grace(
                    since,
                    self.unhealthy_grace,
                    now,
                    DeploymentStatus::Unhealthy,
                    reason,
                    d,
                    pending,
                )
            }
            Verdict::Pending { phase } => {
                self.unhealthy_since = None;
                if self.evidence.wants_pods(d) && self.pod_misses < POD_READ_ATTEMPTS {
                    Step::Pods(Ask::Judge {
                        d: d.clone(),
                        phase,
                    })
                } else {
                    *pending = phase;
                    Step::Continue
                }
            }
        })
    }

    fn on_pods(
        &mut self,
        ask: Ask,
        pods: Option<&[KubePod]>,
        now: Instant,
        pending: &mut String,
    ) -> Step<Deployment, Ask> {
        match ask {
            Ask::Confirm(d) => {
                // Pods that cannot be read leave the status to judge alone.
                let Some(why) =
                    pods.and_then(|p| pods_serving_another_bento(p, main_bento_version(&d)?))
                else {
                    return Step::Done(d);
                };
                if why != *pending {
                    tracing::info!(target: LOG, "{why}");
                }
                *pending = why;
                Step::Continue
            }
            Ask::Judge { d, phase } => {
                let Some(pods) = pods else {
                    self.pod_misses += 1;
                    if self.pod_misses == POD_READ_ATTEMPTS {
                        tracing::info!(target: LOG, "the pods of {} cannot be read ({POD_READ_ATTEMPTS} attempts): the status alone decides", who(Some(&d)));
                    }
                    *pending = phase;
                    return Step::Continue;
                };
                self.pod_misses = 0;
                let verdict = judge_pods(self.evidence.change(), &RolloutTarget::of(&d), pods);
                if !matches!(verdict, PodsVerdict::Crashing(_)) {
                    self.crashing_since = None;
                }
                if !matches!(verdict, PodsVerdict::Unready(_)) {
                    self.unready_since = None;
                }
                match verdict {
                    PodsVerdict::Done { serving, why } => {
                        tracing::info!(target: LOG, "deployment {} revision {} is rolled out, on its pods' evidence: {why}", who(Some(&d)), short(&self.evidence.submitted.revision));
                        Step::Done(rolled_out(d, serving))
                    }
                    PodsVerdict::Waiting(why) => {
                        let line = format!("{phase}; the pods show: {why}");
                        *pending = line;
                        Step::Continue
                    }
                    PodsVerdict::Crashing(reason) => {
                        let since = *self.crashing_since.get_or_insert(now);
                        let step = after_grace(
                            since,
                            self.unhealthy_grace,
                            now,
                            DeploymentStatus::Unhealthy,
                            reason,
                            &d,
                            pending,
                        );
                        self.failed_on_pods = matches!(step, Step::Fail(_));
                        step
                    }
                    PodsVerdict::Unready(reason) => {
                        let since = *self.unready_since.get_or_insert(now);
                        let step = after_grace(
                            since,
                            self.unready_grace,
                            now,
                            DeploymentStatus::Failed,
                            format!("pods of this revision are not ready: {reason}"),
                            &d,
                            pending,
                        );
                        self.failed_on_pods = matches!(step, Step::Fail(_));
                        step
                    }
                }
            }
        }
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
    poll(src, opts, &mut TerminationJudge).await
}

/// The wait of [`wait_for_terminated`]: the status alone (a gone deployment is terminated).
struct TerminationJudge;

impl Judge for TerminationJudge {
    type Out = ();
    type Ask = ();

    fn on_fetch(
        &mut self,
        fetched: Result<&Deployment, &ClientError>,
        _: Instant,
        _: &mut String,
    ) -> Option<Step<(), ()>> {
        match fetched {
            Ok(d) if d.status == DeploymentStatus::Terminated => Some(Step::Done(())),
            Ok(_) => Some(Step::Continue),
            Err(e) if e.is_not_found() => Some(Step::Done(())),
            Err(_) => None,
        }
    }

    fn on_pods(
        &mut self,
        _: (),
        _: Option<&[KubePod]>,
        _: Instant,
        _: &mut String,
    ) -> Step<(), ()> {
        Step::Continue
    }
}

/// What the poll loop does after a read.
enum Step<T, A> {
    Done(T),
    /// Read the pods, then let [`Judge::on_pods`] decide with them.
    Pods(A),
    Continue,
    Fail(WaitError),
}

/// What a wait decides; the poll loop ([`poll`]) does the reading, pacing and stopping.
trait Judge {
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
async fn poll<J: Judge>(
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

#[cfg(test)]
mod tests;
