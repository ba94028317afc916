//! When a status speaks for the submitted revision (rules 1 and 2 of the module doc:
//! [`Submitted`], [`Evidence`]), and what it then says ([`classify`], rule 3). Pure.

use std::time::Duration;

use crate::api::{Deployment, DeploymentStatus};
use crate::duration::format_go_duration;

use super::short;

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

/// What a submit asks of the replicas: decides what the pods must show
/// ([`judge_pods`](super::judge_pods)).
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

    /// Whether the pods should judge `d` ([`judge_pods`](super::judge_pods)): an update (a create's
    /// statuses count at once) whose revision `d` names as the latest, and whose status alone
    /// cannot end the wait: not yet evidence (rule 2 has not held), or shown synced but in
    /// progress.
    pub fn wants_pods(&self, d: &Deployment) -> bool {
        self.submitted.stale_status.is_some()
            && d.revision_uid() == Some(self.submitted.revision.as_str())
            && (self.synced.is_none() || d.status.is_in_progress())
    }

    /// The revision the submit created.
    pub fn revision(&self) -> &str {
        &self.submitted.revision
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
