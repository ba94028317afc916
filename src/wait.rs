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
//!
//! One file per job: `evidence` (when a status speaks for the submitted revision, and what it
//! says), `pods` (what the pods say), `rollout` and `termination` (the two waits: their
//! judges), `poll` (the loop they share), `options` (pacing), `source` (where reads come
//! from) and `error` (why a wait failed).

mod error;
mod evidence;
mod options;
mod pods;
mod poll;
mod rollout;
mod source;
mod termination;

pub use error::WaitError;
pub use evidence::{classify, Change, Evidence, Submitted, Verdict};
pub use options::{
    WaitOptions, DEFAULT_STATUS_SYNC_PERIOD, DEFAULT_UNREADY_GRACE, POLL_INTERVAL, POLL_JITTER,
};
pub use pods::{
    judge_pods, pod_crashes, pod_serves, pods_by_service, pods_reason, pods_serving_another_bento,
    Bounds, PodsVerdict, RolloutTarget, POD_SERVICE_LABEL,
};
pub use poll::NOT_FOUND_GRACE;
pub use rollout::{wait_for_revision, POD_READ_ATTEMPTS};
pub use source::{ClientSource, DeploymentSource};
pub use termination::wait_for_terminated;

use crate::api::Deployment;

const LOG: &str = "bentocloud::wait";

/// A revision UID as messages show it: its first 8 characters.
fn short(rev: &str) -> &str {
    rev.get(..8).unwrap_or(rev)
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

#[cfg(test)]
mod tests;
