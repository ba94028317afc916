//! What the organisation offers: the token's user and organisation, clusters, instance types
//! and bentos.

use super::*;

impl Client {
    // ----- auth and organisation -----

    /// `GET /api/v1/auth/current`: the token's user (validates the token).
    pub async fn current_user(&self) -> Result<api::User, ClientError> {
        let url = self.url(&["api", "v1", "auth", "current"], &[])?;
        self.run(self.get("get the current user", url)).await
    }

    /// `GET /api/v1/current_org`.
    pub async fn current_org(&self) -> Result<api::Organization, ClientError> {
        let url = self.url(&["api", "v1", "current_org"], &[])?;
        self.run(self.get("get the current organization", url))
            .await
    }

    // ----- clusters, instance types, bentos -----

    /// `GET /api/v1/clusters`, every page.
    pub async fn list_clusters(&self) -> Result<Vec<api::Cluster>, ClientError> {
        self.collect_pages(|start, count| async move {
            let (s, c) = (start.to_string(), count.to_string());
            let url = self.url(
                &["api", "v1", "clusters"],
                &[("start", s.as_str()), ("count", c.as_str())],
            )?;
            self.run(self.get("list clusters", url)).await
        })
        .await
    }

    /// `GET /api/v1/clusters/{name}`.
    pub async fn get_cluster(&self, name: &str) -> Result<api::Cluster, ClientError> {
        let url = self.url(&["api", "v1", "clusters", name], &[])?;
        self.run(self.get(format!("get cluster {name:?}"), url))
            .await
    }

    /// `GET /api/v1/instance_types?cluster=X` (a bare JSON array).
    pub async fn list_instance_types(
        &self,
        cluster: &str,
    ) -> Result<Vec<api::InstanceType>, ClientError> {
        let url = self.url(&["api", "v1", "instance_types"], &[("cluster", cluster)])?;
        let op = format!("list instance types {}", in_cluster(cluster));
        self.run(self.get(op, url)).await
    }

    /// `GET /api/v1/bento_repositories/{repo}/bentos/{version}`.
    pub async fn get_bento(&self, repo: &str, version: &str) -> Result<api::Bento, ClientError> {
        let url = self.url(
            &["api", "v1", "bento_repositories", repo, "bentos", version],
            &[],
        )?;
        self.run(self.get(format!("get bento \"{repo}:{version}\""), url))
            .await
    }

    /// `GET /api/v1/bento_repositories/{repo}/bentos?count=1`: the newest bento of a repository.
    /// An empty repository is `NotFound`.
    pub async fn latest_bento(&self, repo: &str) -> Result<api::Bento, ClientError> {
        let op = format!("get the latest bento of repository {repo:?}");
        let url = self.url(
            &["api", "v1", "bento_repositories", repo, "bentos"],
            &[("count", "1")],
        )?;
        let page: api::ListResponse<api::Bento> = self.run(self.get(op.clone(), url)).await?;
        page.items.into_iter().next().ok_or_else(|| {
            ClientError::new(
                op,
                ErrorKind::NotFound,
                None,
                format!("repository {repo:?} has no bentos: push one with `bentoml push`"),
            )
        })
    }

    /// The bento a tag names, as the official client resolves one (bento.py:565-584): the
    /// given version, else the repository's newest ([`Client::latest_bento`]).
    pub async fn resolve_bento(
        &self,
        repo: &str,
        version: Option<&str>,
    ) -> Result<api::Bento, ClientError> {
        match version {
            Some(v) => self.get_bento(repo, v).await,
            None => self.latest_bento(repo).await,
        }
    }
}
