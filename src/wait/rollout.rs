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
            tracing::info!(target: LOG, "statuses of {} now count for revision {}: {why}", who(Some(d)), short(self.evidence.revision()));
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
                        tracing::info!(target: LOG, "deployment {} revision {} is rolled out, on its pods' evidence: {why}", who(Some(&d)), short(self.evidence.revision()));
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
