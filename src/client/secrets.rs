//! The organisation secrets endpoints (`/api/v1/org_secrets`); their bodies are never logged.

use super::send::{Bodies, Repeat};
use super::*;

impl Client {
    // ----- secrets (bodies never logged) -----

    /// `GET /api/v1/org_secrets?all=true`, every page.
    pub async fn list_secrets(&self) -> Result<Vec<api::Secret>, ClientError> {
        self.collect_pages(|start, count| async move {
            let (s, c) = (start.to_string(), count.to_string());
            let url = self.url(
                &["api", "v1", "org_secrets"],
                &[
                    ("count", c.as_str()),
                    ("q", ""),
                    ("search", ""),
                    ("start", s.as_str()),
                    ("all", "true"),
                ],
            )?;
            let mut call = self.get("list secrets", url);
            call.bodies = Bodies::MayHoldSecrets;
            self.run(call).await
        })
        .await
    }

    /// `GET /api/v1/org_secrets/{name}[?cluster=X]` (the parameter only when `cluster` is not
    /// empty, as the official client sends it, client.py:545-551).
    pub async fn get_secret(&self, cluster: &str, name: &str) -> Result<api::Secret, ClientError> {
        let url = self.url(&["api", "v1", "org_secrets", name], &secret_query(cluster))?;
        let mut call = self.get(format!("get secret {name:?}"), url);
        call.bodies = Bodies::MayHoldSecrets;
        self.run(call).await
    }

    /// Like [`Client::get_secret`], with not-found as `Ok(None)`.
    pub async fn get_secret_opt(
        &self,
        cluster: &str,
        name: &str,
    ) -> Result<Option<api::Secret>, ClientError> {
        found(self.get_secret(cluster, name).await)
    }

    /// `POST /api/v1/org_secrets[?cluster=X]`, with the same unknown-outcome handling as
    /// [`Client::create_deployment`] (looked up by name). The body is never logged.
    pub async fn create_secret(
        &self,
        cluster: &str,
        req: &api::CreateSecretRequest,
    ) -> Result<api::Secret, ClientError> {
        let op = format!("create secret {:?}", req.name);
        let url = self.url(&["api", "v1", "org_secrets"], &secret_query(cluster))?;
        let call = self.with_body(
            Method::POST,
            op,
            url,
            req,
            Repeat::CreatesEachTime,
            Bodies::MayHoldSecrets,
        )?;
        let name = req.name.clone();
        self.create_reconciled(call, || {
            let name = name.clone();
            async move { self.get_secret_opt(cluster, &name).await }
        })
        .await
    }

    /// `PATCH /api/v1/org_secrets/{name}[?cluster=X]` with the whole content (it replaces the
    /// stored content, API doc §10). Repeatable: the same body gives the same content. The body
    /// is never logged.
    pub async fn update_secret(
        &self,
        cluster: &str,
        name: &str,
        req: &api::UpdateSecretRequest,
    ) -> Result<api::Secret, ClientError> {
        let url = self.url(&["api", "v1", "org_secrets", name], &secret_query(cluster))?;
        let op = format!("update secret {name:?}");
        let call = self.with_body(
            Method::PATCH,
            op,
            url,
            req,
            Repeat::Idempotent,
            Bodies::MayHoldSecrets,
        )?;
        self.run(call).await
    }

    /// `DELETE /api/v1/org_secrets/{name}[?cluster=X]`. A not-found after an earlier attempt
    /// that may have deleted it counts as success.
    pub async fn delete_secret(&self, cluster: &str, name: &str) -> Result<(), ClientError> {
        let url = self.url(&["api", "v1", "org_secrets", name], &secret_query(cluster))?;
        let mut call = self.empty(Method::DELETE, format!("delete secret {name:?}"), url);
        call.bodies = Bodies::MayHoldSecrets;
        match self.send(&call).await {
            Ok(_) => Ok(()),
            Err(f) if f.err.is_not_found() && f.earlier_maybe_applied => Ok(()),
            Err(f) => Err(f.err),
        }
    }
}

/// The secret endpoints' query: `cluster` only when given (client.py:535-568 adds it only when
/// non-empty, unlike the deployment endpoints, which always send it).
pub(super) fn secret_query(cluster: &str) -> Vec<(&'static str, &str)> {
    if cluster.is_empty() {
        Vec::new()
    } else {
        vec![("cluster", cluster)]
    }
}
