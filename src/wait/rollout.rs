//! The wait for a submitted revision ([`wait_for_revision`]): its judge applies the rules of
//! the module doc to each read, asks the pods when the status alone cannot decide, and
//! measures the grace windows on the provider's clock.

use std::time::Duration;

use tokio::time::Instant;

use crate::api::{Deployment, DeploymentStatus, KubePod};
use crate::client::ClientError;
use crate::duration::format_go_duration;

use super::pods::main_bento_version;
use super::poll::{poll, Judge, Step};
use super::{
    judge_pods, pods_reason, pods_serving_another_bento, short, who, DeploymentSource, Evidence,
    PodsVerdict, RolloutTarget, Submitted, Verdict, WaitError, WaitOptions, LOG,
};

/// After this many pods reads in a row that give nothing (the stream refused, closed or
/// unreadable), a wait stops reading the pods and leaves the status alone to decide.
pub const POD_READ_ATTEMPTS: u32 = 3;

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
        started: Instant::now(),
        unhealthy: Grace::new(opts.unhealthy_grace, DeploymentStatus::Unhealthy),
        crashing: Grace::new(opts.unhealthy_grace, DeploymentStatus::Unhealthy),
        unready: Grace::new(opts.unready_grace, DeploymentStatus::Failed),
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
    started: Instant,
    /// The status is `unhealthy` (after rule 2 held).
    unhealthy: Grace,
    /// Pods of the revision crash.
    crashing: Grace,
    /// Pods of the revision are not ready, with warnings.
    unready: Grace,
    /// Pods reads in a row that gave nothing; at [`POD_READ_ATTEMPTS`] they are no longer read.
    pod_misses: u32,
    logged_evidence: bool,
    /// The wait failed on the pods' evidence (its reason already names them).
    failed_on_pods: bool,
}

/// A state that fails the wait once it has lasted its grace window, as the provider saw it.
struct Grace {
    grace: Duration,
    /// The status the failure reports.
    status: DeploymentStatus,
    /// Since when the state is seen.
    since: Option<Instant>,
}

impl Grace {
    fn new(grace: Duration, status: DeploymentStatus) -> Grace {
        Grace {
            grace,
            status,
            since: None,
        }
    }

    /// The state is no longer seen: its window starts again when it is.
    fn clear(&mut self) {
        self.since = None;
    }

    /// The state is seen at `now`, for `reason`: a failure once it has lasted the grace, else
    /// keep waiting (saying so in `pending`).
    fn seen(
        &mut self,
        now: Instant,
        reason: String,
        d: &Deployment,
        pending: &mut String,
    ) -> Step<Deployment, Ask> {
        let lasted = now.duration_since(*self.since.get_or_insert(now));
        if lasted >= self.grace {
            Step::Fail(WaitError::Failed {
                status: self.status,
                reason: format!("{reason} (for {})", format_go_duration(lasted)),
                last: Box::new(d.clone()),
            })
        } else {
            *pending = format!(
                "{reason}, for less than the grace period ({}) so far",
                format_go_duration(self.grace)
            );
            Step::Continue
        }
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
        let since_submit = now.duration_since(self.started);
        let verdict = self
            .evidence
            .observe(d, since_submit, self.allow_scaled_to_zero);
        self.log_evidence_once(d);
        Some(match verdict {
            Verdict::Ready => Step::Pods(Ask::Confirm(d.clone())),
            Verdict::Failed { status, reason } => Step::Fail(WaitError::Failed {
                status,
                reason,
                last: Box::new(d.clone()),
            }),
            Verdict::Unhealthy { reason } => self.unhealthy.seen(now, reason, d, pending),
            Verdict::Pending { phase } => {
                self.unhealthy.clear();
                self.ask_pods_or_wait(d, phase, pending)
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
            Ask::Confirm(d) => confirm_running(d, pods, pending),
            Ask::Judge { d, phase } => match pods {
                Some(pods) => self.judge_on_pods(d, phase, pods, now, pending),
                None => self.pods_unread(&d, phase, pending),
            },
        }
    }
}

impl RolloutJudge {
    /// Logs, once, why statuses now count for the submitted revision.
    fn log_evidence_once(&mut self, d: &Deployment) {
        if let (Some(why), false) = (self.evidence.synced(), self.logged_evidence) {
            tracing::info!(target: LOG, "statuses of {} now count for revision {}: {why}", who(Some(d)), short(self.evidence.revision()));
            self.logged_evidence = true;
        }
    }

    /// While the status alone waits for `phase`: the pods judge, when they should and can be
    /// read; else keep waiting.
    fn ask_pods_or_wait(
        &self,
        d: &Deployment,
        phase: String,
        pending: &mut String,
    ) -> Step<Deployment, Ask> {
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

    /// The pods could not be read: after [`POD_READ_ATTEMPTS`] in a row the status alone
    /// decides.
    fn pods_unread(
        &mut self,
        d: &Deployment,
        phase: String,
        pending: &mut String,
    ) -> Step<Deployment, Ask> {
        self.pod_misses += 1;
        if self.pod_misses == POD_READ_ATTEMPTS {
            tracing::info!(target: LOG, "the pods of {} cannot be read ({POD_READ_ATTEMPTS} attempts): the status alone decides", who(Some(d)));
        }
        *pending = phase;
        Step::Continue
    }

    /// What the pods say about the rollout of `d`'s revision ([`judge_pods`]): done, still
    /// waiting, or crashing or unready (a failure once its grace has passed).
    fn judge_on_pods(
        &mut self,
        d: Deployment,
        phase: String,
        pods: &[KubePod],
        now: Instant,
        pending: &mut String,
    ) -> Step<Deployment, Ask> {
        self.pod_misses = 0;
        let verdict = judge_pods(self.evidence.change(), &RolloutTarget::of(&d), pods);
        if !matches!(verdict, PodsVerdict::Crashing(_)) {
            self.crashing.clear();
        }
        if !matches!(verdict, PodsVerdict::Unready(_)) {
            self.unready.clear();
        }
        let step = match verdict {
            PodsVerdict::Done { serving, why } => {
                tracing::info!(target: LOG, "deployment {} revision {} is rolled out, on its pods' evidence: {why}", who(Some(&d)), short(self.evidence.revision()));
                return Step::Done(rolled_out(d, serving));
            }
            PodsVerdict::Waiting(why) => {
                *pending = format!("{phase}; the pods show: {why}");
                return Step::Continue;
            }
            PodsVerdict::Crashing(reason) => self.crashing.seen(now, reason, &d, pending),
            PodsVerdict::Unready(reason) => {
                let reason = format!("pods of this revision are not ready: {reason}");
                self.unready.seen(now, reason, &d, pending)
            }
        };
        self.failed_on_pods = matches!(step, Step::Fail(_));
        step
    }
}

/// The status says `d` is ready: done, unless the pods show one of another bento still
/// serving (pods that cannot be read leave the status to judge alone).
fn confirm_running(
    d: Deployment,
    pods: Option<&[KubePod]>,
    pending: &mut String,
) -> Step<Deployment, Ask> {
    let Some(why) = pods.and_then(|p| pods_serving_another_bento(p, main_bento_version(&d)?))
    else {
        return Step::Done(d);
    };
    if why != *pending {
        tracing::info!(target: LOG, "{why}");
    }
    *pending = why;
    Step::Continue
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
