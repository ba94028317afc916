//! The deployments endpoints (`/api/v2/deployments`): create (reconciled when its outcome is
//! unknown), read, update, redeploy, terminate, delete and list, and a listing's items kept as
//! the JSON the server sent.

use super::send::{Bodies, Call, Repeat};
use super::*;

/// The main target of `d`, as [`api::Deployment::main_target`] picks it: `main`, else the first.
pub(super) fn main_target_mut(d: &mut api::Deployment) -> Option<&mut api::Target> {
    let targets = &mut d.latest_revision.as_mut()?.targets;
    let i = targets
        .iter()
        .position(|t| t.as_ref().is_some_and(|t| t.meta.name == "main"))
        .or_else(|| targets.iter().position(Option::is_some))?;
    targets.get_mut(i)?.as_mut()
}

/// One item of a deployments list page as the server sent it: its name and cluster, and its
/// JSON, parsed into an [`api::Deployment`] only when asked for ([`Self::deployment`]). The
/// items of a page share the page's body, so a listing held in memory costs about its size on
/// the wire instead of that of parsed documents (about twice as much), and only the items
/// actually read are ever parsed.
#[derive(Clone)]
pub struct ListedDeployment {
    pub name: String,
    pub cluster: String,
    page: Arc<Vec<u8>>,
    span: std::ops::Range<usize>,
}

impl ListedDeployment {
    /// The item's JSON, as the server sent it.
    pub fn json(&self) -> &[u8] {
        self.page.get(self.span.clone()).unwrap_or_default()
    }

    /// The item as a deployment document, as the server sent it (its `bento.manifest` may be
    /// absent: see [`Client::with_bento_manifest`]).
    pub fn deployment(&self) -> Result<api::Deployment, serde_json::Error> {
        serde_json::from_slice(self.json())
    }
}

impl fmt::Debug for ListedDeployment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ListedDeployment")
            .field("name", &self.name)
            .field("cluster", &self.cluster)
            .field("bytes", &self.span.len())
            .finish()
    }
}

/// A list page with its items left unparsed (borrowed from the body).
#[derive(Deserialize)]
pub(super) struct RawList<'a> {
    #[serde(default)]
    start: u64,
    #[serde(default)]
    count: u64,
    #[serde(default)]
    total: u64,
    #[serde(borrow, default)]
    items: Vec<&'a RawValue>,
}

/// What a listing is indexed by: the deployment's name and its cluster's (the keys
/// [`api::Deployment`] reads them from, with the same defaults).
#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct ListedKey {
    name: String,
    cluster: ListedCluster,
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct ListedCluster {
    name: String,
}

impl Client {
    // ----- deployments -----

    /// `POST /api/v2/deployments?cluster=X`.
    ///
    /// If the outcome of an attempt is unknown (timeout or connection error after sending,
    /// 500/502/504), the create is not blindly repeated: the deployment is looked up by name and
    /// returned if it exists (its bento must match the request), else the POST is repeated. A
    /// repeated POST answered "already exists" also returns the existing deployment.
    ///
    /// The document is returned as the server sent it (no bento lookup: see
    /// [`Client::with_bento_manifest`]).
    pub async fn create_deployment(
        &self,
        cluster: &str,
        req: &api::CreateDeploymentRequest,
    ) -> Result<api::Deployment, ClientError> {
        let name = req.name.clone().filter(|n| !n.is_empty());
        if let Some(n) = &name {
            self.note_write(cluster, n);
        }
        let op = match &name {
            Some(n) => format!("create deployment {n:?} {}", in_cluster(cluster)),
            None => format!("create deployment {}", in_cluster(cluster)),
        };
        let url = self.url(&["api", "v2", "deployments"], &[("cluster", cluster)])?;
        let call = self.with_body(
            Method::POST,
            op.clone(),
            url,
            req,
            Repeat::CreatesEachTime,
            Bodies::Plain,
        )?;
        let Some(name) = name else {
            // Without a name there is nothing to look up: never repeat an unknown outcome.
            return self.run(call).await;
        };
        let want_bento = req.spec.bento.clone();
        let d = self.create_reconciled(call, || {
            let (name, op, want_bento) = (name.clone(), op.clone(), want_bento.clone());
            async move {
                let found = self.get_deployment_opt(cluster, &name).await?;
                match found {
                    Some(d) if !bento_matches(&want_bento, d.bento_tag().as_deref()) => {
                        Err(ClientError::new(
                            op,
                            ErrorKind::Conflict,
                            None,
                            format!(
                                "a deployment named {name:?} exists but runs bento {:?}, not {want_bento:?}: it was not created by this request; import it or choose another name",
                                d.bento_tag().unwrap_or_default()
                            ),
                        ))
                    }
                    other => Ok(other),
                }
            }
        })
        .await?;
        // `cluster` may be empty (the default cluster): note the one the server chose too.
        self.note_write(&d.cluster.meta.name, &d.meta.name);
        Ok(d)
    }

    /// Whether this client asked to write `cluster/name` (create, update, terminate, delete),
    /// whatever the outcome: a listing taken before may not show that write (see
    /// [`snapshot`]).
    pub fn has_written(&self, cluster: &str, name: &str) -> bool {
        self.inner
            .written
            .lock()
            .map(|w| w.contains(&(cluster.to_string(), name.to_string())))
            .unwrap_or(true)
    }

    fn note_write(&self, cluster: &str, name: &str) {
        if let Ok(mut w) = self.inner.written.lock() {
            w.insert((cluster.to_string(), name.to_string()));
        }
    }

    /// `GET /api/v2/deployments/{name}?cluster=X`: the document as the server sent it (one
    /// request; no bento lookup, see [`Client::with_bento_manifest`]).
    pub async fn get_deployment(
        &self,
        cluster: &str,
        name: &str,
    ) -> Result<api::Deployment, ClientError> {
        let url = self.url(&["api", "v2", "deployments", name], &[("cluster", cluster)])?;
        let op = format!("get deployment {name:?} {}", in_cluster(cluster));
        self.run(self.get(op, url)).await
    }

    /// Like [`Client::get_deployment`], with not-found (404, or 400 "record not found") as
    /// `Ok(None)`.
    pub async fn get_deployment_opt(
        &self,
        cluster: &str,
        name: &str,
    ) -> Result<Option<api::Deployment>, ClientError> {
        found(self.get_deployment(cluster, name).await)
    }

    /// `PUT /api/v2/deployments/{name}?cluster=X` with the whole desired configuration. The
    /// response as the server sent it (see [`Client::with_bento_manifest`]).
    pub async fn update_deployment(
        &self,
        cluster: &str,
        name: &str,
        req: &api::UpdateDeploymentRequest,
    ) -> Result<api::Deployment, ClientError> {
        let url = self.url(&["api", "v2", "deployments", name], &[("cluster", cluster)])?;
        let op = format!("update deployment {name:?} {}", in_cluster(cluster));
        self.note_write(cluster, name);
        let call = self.with_body(Method::PUT, op, url, req, Repeat::Idempotent, Bodies::Plain)?;
        self.run(call).await
    }

    /// `PUT /api/v2/deployments/{name}/void_update?cluster=X` (no body): a new revision of the
    /// deployment's current configuration, rolled out like any other (client.py:632-640).
    /// Retried like the other calls without a body when its outcome is unknown: a repeat is one
    /// more redeploy of the same configuration, and the caller waits for the revision the
    /// answered attempt names, which is then the latest. The response as the server sent it
    /// (see [`Client::with_bento_manifest`]).
    pub async fn redeploy_deployment(
        &self,
        cluster: &str,
        name: &str,
    ) -> Result<api::Deployment, ClientError> {
        self.deployment_action(Method::PUT, cluster, name, "void_update", "redeploy")
            .await
    }

    /// `POST /api/v2/deployments/{name}/terminate?cluster=X` (no body). Idempotent.
    pub async fn terminate_deployment(
        &self,
        cluster: &str,
        name: &str,
    ) -> Result<api::Deployment, ClientError> {
        self.deployment_action(Method::POST, cluster, name, "terminate", "terminate")
            .await
    }

    /// `{method} /api/v2/deployments/{name}/{action}?cluster=X` (no body), noted as a write;
    /// its operation is "`{verb}` deployment `{name}` in ...".
    async fn deployment_action(
        &self,
        method: Method,
        cluster: &str,
        name: &str,
        action: &str,
        verb: &str,
    ) -> Result<api::Deployment, ClientError> {
        let url = self.url(
            &["api", "v2", "deployments", name, action],
            &[("cluster", cluster)],
        )?;
        let op = format!("{verb} deployment {name:?} {}", in_cluster(cluster));
        self.note_write(cluster, name);
        self.run(self.empty(method, op, url)).await
    }

    /// `DELETE /api/v2/deployments/{name}?cluster=X` (no body). The server may require the
    /// deployment to be terminated first. A not-found after a retried attempt whose outcome was
    /// unknown is returned as `NotFound`: callers deleting treat it as "already gone".
    pub async fn delete_deployment(
        &self,
        cluster: &str,
        name: &str,
    ) -> Result<api::Deployment, ClientError> {
        let url = self.url(&["api", "v2", "deployments", name], &[("cluster", cluster)])?;
        let op = format!("delete deployment {name:?} {}", in_cluster(cluster));
        self.note_write(cluster, name);
        self.run(self.empty(Method::DELETE, op, url)).await
    }

    /// One page of `GET /api/v2/deployments`, its items as the server sent them (one request;
    /// no bento lookup, see [`Client::with_bento_manifest`]).
    pub async fn list_deployments_page(
        &self,
        q: &ListQuery,
        start: u64,
        count: u64,
    ) -> Result<api::ListResponse<api::Deployment>, ClientError> {
        let call = self.list_deployments_call(q, start, count)?;
        self.run(call).await
    }

    /// One page of `GET /api/v2/deployments`, its items left as the JSON the server sent
    /// (see [`ListedDeployment`]). A page whose items lack a name or a cluster where a
    /// [`api::Deployment`] has them fails as [`Self::list_deployments_page`] would.
    pub async fn list_deployments_page_listed(
        &self,
        q: &ListQuery,
        start: u64,
        count: u64,
    ) -> Result<api::ListResponse<ListedDeployment>, ClientError> {
        let call = self.list_deployments_call(q, start, count)?;
        let body = Arc::new(self.send(&call).await.map_err(|f| f.err)?);
        let page: RawList<'_> = self.decode(&call, &body)?;
        let mut items = Vec::with_capacity(page.items.len());
        for raw in page.items {
            let key: ListedKey = self.decode(&call, raw.get().as_bytes())?;
            // `raw` borrows from `body`: its offset there, without copying it out.
            let at = raw.get().as_ptr() as usize - body.as_ptr() as usize;
            items.push(ListedDeployment {
                name: key.name,
                cluster: key.cluster.name,
                page: body.clone(),
                span: at..at + raw.get().len(),
            });
        }
        Ok(api::ListResponse {
            start: page.start,
            count: page.count,
            total: page.total,
            items,
        })
    }

    fn list_deployments_call(
        &self,
        q: &ListQuery,
        start: u64,
        count: u64,
    ) -> Result<Call, ClientError> {
        let cluster = q.cluster().unwrap_or("");
        let all = if q.cluster().is_some() { "" } else { "true" };
        let (start_s, count_s, q_s) = (start.to_string(), count.to_string(), q.q_param());
        let search = q.search.as_deref().unwrap_or("");
        let url = self.url(
            &["api", "v2", "deployments"],
            &[
                ("cluster", cluster),
                ("all", all),
                ("count", &count_s),
                ("q", &q_s),
                ("search", search),
                ("start", &start_s),
            ],
        )?;
        let op = match q.cluster() {
            Some(c) => format!("list deployments {}", in_cluster(c)),
            None => "list deployments in all clusters".to_string(),
        };
        Ok(self.get(op, url))
    }

    /// `d` with the main target's `bento.manifest` replaced by the bento's own manifest, from
    /// `GET /api/v1/bento_repositories/{repo}/bentos/{version}`, when the main target configures
    /// more than one service: **one GET per bento not yet cached** (none for a single service,
    /// or for a bento this client already read).
    ///
    /// The deployment methods ([`Client::get_deployment`], [`Client::create_deployment`],
    /// [`Client::update_deployment`], the listings, ...) return documents as the server sent
    /// them and never call this. A caller that reads the entry service
    /// ([`crate::resources::deployment::convert::entry_service`], hence anything that turns a
    /// document into Terraform state or data) calls it first, in plain sight; one that reads
    /// only the status, the revision or the bento tag (the rollout waits, a create's
    /// reconciliation) does not, and spends no request on it.
    ///
    /// Why: the entry service of a multi-service bento decides which service the top-level
    /// settings (instance type, scaling, strategy) belong to. The official client reads it from
    /// the bento endpoint (`ensure_bento(...).entry_service`, cdep.py:267-278; API doc §5.2
    /// step 4), never from the deployment document, whose `bento.manifest` is optional in the
    /// client's schema (§3.3) and may be absent. With a single service there is nothing to
    /// choose, so no request is made. A bento version does not change once pushed, so each is
    /// asked once per client. If the lookup fails, `d` is returned as it came (the caller falls
    /// back to the document's manifest, then to the official client's `apiserver` default).
    pub async fn with_bento_manifest(&self, mut d: api::Deployment) -> api::Deployment {
        let Some(target) = main_target_mut(&mut d) else {
            return d;
        };
        let multi = target.config.as_ref().is_some_and(|c| c.services.len() > 1);
        let Some(bento) = target.bento.as_mut().filter(|_| multi) else {
            return d;
        };
        let (repo, version) = (bento.repository.meta.name.clone(), bento.version.clone());
        let tag = format!("{repo}:{version}");
        let cached = self
            .inner
            .manifests
            .lock()
            .ok()
            .and_then(|m| m.get(&tag).cloned());
        let manifest = match cached {
            Some(m) => m,
            None => match self.get_bento(&repo, &version).await {
                Ok(b) => {
                    if let Ok(mut cache) = self.inner.manifests.lock() {
                        cache.insert(tag, b.manifest.clone());
                    }
                    b.manifest
                }
                Err(e) => {
                    tracing::debug!(target: LOG, "cannot read the manifest of bento {tag:?}: {e}");
                    return d;
                }
            },
        };
        if manifest.is_some() {
            bento.manifest = manifest;
        }
        d
    }

    /// Every deployment matching `q`, page by page ([`PAGE_SIZE`] per page).
    pub async fn list_deployments(
        &self,
        q: &ListQuery,
    ) -> Result<Vec<api::Deployment>, ClientError> {
        self.collect_pages(|start, count| self.list_deployments_page(q, start, count))
            .await
    }

    /// Every page of [`Self::list_deployments`], each deployment turned into `U` as its page
    /// arrives (a 10,000-deployment fleet never sits in memory as full documents).
    pub async fn list_deployments_map<U>(
        &self,
        q: &ListQuery,
        map: impl FnMut(api::Deployment) -> U,
    ) -> Result<Vec<U>, ClientError> {
        self.collect_pages_map(
            |start, count| self.list_deployments_page(q, start, count),
            map,
        )
        .await
    }

    /// [`Self::list_deployments_map`] of the deployments `keep` accepts, each given its bento's
    /// manifest ([`Self::with_bento_manifest`]: one GET per bento not yet cached) before `map`
    /// turns it into `U`, as its page arrives. Items `keep` refuses are dropped as they come,
    /// with no lookup.
    pub async fn list_deployments_with_manifest_map<U>(
        &self,
        q: &ListQuery,
        keep: impl Fn(&api::Deployment) -> bool,
        mut map: impl FnMut(api::Deployment) -> U,
    ) -> Result<Vec<U>, ClientError> {
        let keep = &keep;
        let kept = self
            .collect_pages_map(
                |start, count| async move {
                    let page = self.list_deployments_page(q, start, count).await?;
                    // Every item stays in the page (`None` when dropped): its length is what
                    // the page walk counts.
                    let mut items = Vec::with_capacity(page.items.len());
                    for d in page.items {
                        let kept = if keep(&d) {
                            Some(self.with_bento_manifest(d).await)
                        } else {
                            None
                        };
                        items.push(kept);
                    }
                    Ok(api::ListResponse {
                        start: page.start,
                        count: page.count,
                        total: page.total,
                        items,
                    })
                },
                |d| d.map(&mut map),
            )
            .await?;
        Ok(kept.into_iter().flatten().collect())
    }

    /// Every deployment matching `q` as [`ListedDeployment`]s (the JSON of each, parsed when
    /// asked for), but after the first page `proceed(total)` decides whether the rest is worth
    /// fetching: `None` when it declined (one request spent).
    pub async fn list_deployments_listed_if(
        &self,
        q: &ListQuery,
        proceed: impl FnOnce(u64) -> bool,
    ) -> Result<Option<Vec<ListedDeployment>>, ClientError> {
        self.walk_pages(
            |start, count| self.list_deployments_page_listed(q, start, count),
            |d| d,
            proceed,
        )
        .await
    }
}

/// Whether an existing deployment's bento (`repo:version`) is the one a create asked for
/// (`repo:version`, or `repo` / `repo:latest` meaning any version of it).
pub(super) fn bento_matches(wanted: &str, actual: Option<&str>) -> bool {
    let Some(actual) = actual else {
        return true;
    };
    let wanted = wanted.trim();
    wanted.is_empty() || BentoTag::of(wanted).accepts(&BentoTag::of(actual))
}
