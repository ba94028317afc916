//! Where a wait reads the deployment and its pods: [`DeploymentSource`], and
//! [`ClientSource`], which reads them through the client.

use async_trait::async_trait;

use crate::api::{Deployment, KubePod};
use crate::client::{Client, ClientError};

use super::LOG;

/// Where the poll loop reads the deployment from.
#[async_trait]
pub trait DeploymentSource: Send + Sync {
    async fn fetch(&self) -> Result<Deployment, ClientError>;

    /// The deployment's pods: the evidence of [`judge_pods`](super::judge_pods) while the status
    /// alone is not yet, the confirmation of a `running`, and the reason of a failure (best effort:
    /// `None` when they cannot be read).
    async fn pods(&self) -> Option<Vec<KubePod>> {
        None
    }
}

/// The deployment `name` in `cluster`, read with [`Client::get_deployment`] (as the server sent
/// it: a wait reads statuses, revisions and pods, never the bento manifest, so no poll looks a
/// bento up; see [`Client::with_bento_manifest`]), and its pods, read with
/// [`Client::deployment_pods`].
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
