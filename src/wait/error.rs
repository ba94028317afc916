//! Why a wait ended without success ([`WaitError`]), said so that the user knows what the
//! platform still does and what to run next.

use std::time::Duration;

use crate::api::{Deployment, DeploymentStatus};
use crate::client::ClientError;
use crate::duration::format_go_duration;

use super::{short, state_of, who};

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

    /// [`Self::last`], to change.
    pub fn last_mut(&mut self) -> Option<&mut Deployment> {
        match self {
            WaitError::Failed { last, .. } => Some(last),
            WaitError::TimedOut { last, .. } | WaitError::Cancelled { last } => last.as_deref_mut(),
            WaitError::Api(_) => None,
        }
    }
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
