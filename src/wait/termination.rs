//! The wait for a deployment to stop ([`wait_for_terminated`]): the status alone decides.

use tokio::time::Instant;

use crate::api::{Deployment, DeploymentStatus, KubePod};
use crate::client::ClientError;

use super::poll::{poll, Judge, Step};
use super::{DeploymentSource, WaitError, WaitOptions};

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
