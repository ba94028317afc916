//! The refresh snapshot: during a Terraform refresh, `ReadResource` answered at fleet size
//! from one listing of a cluster instead of one `GET` per deployment. It serves only the
//! refresh's reads (the deployment resource's `ReadResource` asks [`Snapshots::lookup`] first,
//! and GETs what it cannot answer); it lives with the client because it is made of the
//! client's list requests and knows which deployments this client wrote.
//!
//! Terraform refreshes every resource with its own `ReadResource`, ten at a time by default,
//! and starts one provider process per operation. At internet latency (50-100 ms a request)
//! a GET per deployment makes a 1,000-deployment plan pay 5-10 s of reads. A list page
//! carries 500 full deployment documents (API doc §2.3, §3.3), so a cluster of N deployments
//! reads in `ceil(N / 500)` requests.
//!
//! When to list, decided from what this process sees (never from a guess about the state):
//!
//! - **Warm-up.** When the provider is configured, the first page of its cluster (the
//!   provider's `cluster`, else the organisation's default one) is asked for in the
//!   background ([`Snapshots::warm_up`]). Terraform spends 0.1 s or more between configuring
//!   the provider and its first `ReadResource` (98-284 ms measured on a 200-deployment plan,
//!   BENCHMARKS.md), so at internet latency the page is usually there before the first read, and no
//!   read waits for it. It costs one request (and, without a provider `cluster`, the cluster
//!   list), never latency: nothing waits for it but reads that would have waited for a
//!   listing anyway.
//! - Otherwise the first read starts its cluster's first page in the background, alongside its
//!   own GET.
//! - A listing that has arrived answers any read at once. While it is under way, the first
//!   [`BATCH_AFTER_READS`] reads do not wait for it (a GET each: a plan of one or two
//!   deployments never waits behind a listing); from the third read on, Terraform is
//!   refreshing many (its reads arrive together, `-parallelism` at a time), and a read waits
//!   for the listing, which was sent no later than its own GET would be.
//! - The first page says the cluster's `total`. The rest is fetched only when it costs no more
//!   requests than the reads already seen ([`worth_listing`]), by the first read the first page
//!   could not answer: a handful of deployments in a cluster of thousands goes on with GETs,
//!   having spent one request; the rest is asked for once the reads seen make it worth it.
//! - One listing per cluster is shared by every read.
//!
//! What a listing cannot answer goes to a GET, so drift, out-of-band deletes and imports show
//! exactly as with GETs: a deployment absent from it (deleted, or created after it, or already
//! read from it once: an entry serves one read; absent from a partial listing too); one whose
//! listed JSON does not decode; a deployment this process wrote (`Client::has_written`: any
//! create, update, terminate or delete through the client, whatever its outcome, which a
//! listing may predate); a listing older than [`MAX_AGE`]; and (decided by the caller) a state
//! without a known URL, since list items carry no `urls` (API doc §3.3).
//!
//! Freshness: Terraform starts the provider for each operation, so a listing is never older
//! than the operation's start (the warm-up is sent when the operation configures the
//! provider): no older than what a GET issued at the first read would show.
//!
//! Memory: a listing is kept as the pages' bodies plus an index by name (`ListedDeployment`),
//! not as parsed documents; an entry is parsed when its read comes, and dropped then.
//!
//! `BENTOCLOUD_REFRESH_BATCH`: `auto` (default), `always` (every read waits for a listing: the
//! acceptance tests force it to show drift and deletes read the same), `never` (GETs only, no
//! warm-up).

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::{BoxFuture, FutureExt, Shared};
use tokio::time::Instant;

use super::{Client, ListQuery, ListedDeployment, PAGE_SIZE};
use crate::api::Deployment;

/// Reads that never wait for a listing under way (a GET each, unless a listing that has
/// arrived answers them).
pub const BATCH_AFTER_READS: usize = 2;
/// A listing this old is fetched again (a long apply: its refresh and later reads).
pub const MAX_AGE: Duration = Duration::from_secs(60);
/// Pages after the first fetched at once (the shared limiter still bounds the requests).
const PARALLEL_PAGES: usize = 2;

/// How refresh reads are served (`BENTOCLOUD_REFRESH_BATCH`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    #[default]
    Auto,
    Always,
    Never,
}

impl Mode {
    /// `auto`, `always` or `never`; `Err` names the accepted values.
    pub fn parse(s: &str) -> Result<Mode, String> {
        match s.trim() {
            "" | "auto" => Ok(Mode::Auto),
            "always" => Ok(Mode::Always),
            "never" => Ok(Mode::Never),
            other => Err(format!(
                "BENTOCLOUD_REFRESH_BATCH is {other:?}: use auto (the default), always or never"
            )),
        }
    }
}

/// Whether the `reads_seen`-th read (counting from 1) waits for a listing under way.
pub fn should_batch(mode: Mode, reads_seen: usize) -> bool {
    match mode {
        Mode::Always => true,
        Mode::Never => false,
        Mode::Auto => reads_seen > BATCH_AFTER_READS,
    }
}

/// Whether the `reads_seen`-th read starts a listing of its cluster when none is under way:
/// the first read (in the background, next to its own GET), and every read that would wait
/// for one.
pub fn starts_listing(mode: Mode, reads_seen: usize) -> bool {
    mode != Mode::Never && (reads_seen == 1 || should_batch(mode, reads_seen))
}

/// Whether listing the rest of a cluster of `total` deployments (its first page already
/// fetched) is worth it after `reads_seen` reads: the pages still to fetch cost no more
/// requests than the reads seen so far, each of which a listing would have saved.
pub fn worth_listing(mode: Mode, total: u64, reads_seen: usize) -> bool {
    match mode {
        Mode::Always => true,
        Mode::Never => false,
        Mode::Auto => {
            let pages = total.div_ceil(PAGE_SIZE).max(1);
            pages - 1 <= reads_seen as u64
        }
    }
}

/// Whether a listing started at `started` may still answer reads at `now`.
pub fn fresh(started: Instant, now: Instant) -> bool {
    now.saturating_duration_since(started) <= MAX_AGE
}

/// One page of a cluster's deployments: the cluster's `total`, how many items the server
/// sent (`got`, for paging), and those of this cluster by name (a server that ignored the
/// filter must not answer for another cluster's namesake).
pub(crate) struct Page<E> {
    pub total: u64,
    pub got: u64,
    pub items: Vec<(String, E)>,
}

/// Where listings come from. Futures are `'static`: they run in the background.
pub(crate) trait Lister<E>: Clone + Send + Sync + 'static {
    /// The page of `cluster` from `start` ([`PAGE_SIZE`] asked for); `Err` says why not.
    fn page(&self, cluster: String, start: u64) -> BoxFuture<'static, Result<Page<E>, String>>;
    /// The organisation's default cluster, when it can be told.
    fn default_cluster(&self) -> BoxFuture<'static, Option<String>>;
}

/// What the first page said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct First {
    total: u64,
    got: u64,
}

impl First {
    /// The first page held the whole cluster.
    fn complete(&self) -> bool {
        self.got == 0 || self.got >= self.total
    }
}

type Pending<T> = Shared<BoxFuture<'static, T>>;
type Entries<E> = Arc<Mutex<HashMap<String, E>>>;

/// One cluster's listing as it arrives: the first page, then (once a read finds it worth it)
/// the rest. Entries are taken out by the read they serve.
struct Listing<E> {
    started: Instant,
    entries: Entries<E>,
    /// `None` once the first page failed (every read of the cluster is then a GET).
    first: Pending<Option<First>>,
    rest: Mutex<Option<Pending<()>>>,
}

impl<E> Listing<E> {
    fn take(&self, name: &str) -> Option<E> {
        self.entries.lock().ok()?.remove(name)
    }
}

/// `fut` running on its own (a spawned task) when a runtime is there, else driven by whoever
/// awaits it; `lost` if the task does not finish (the runtime shutting down).
fn in_background<T>(fut: impl Future<Output = T> + Send + 'static, lost: T) -> Pending<T>
where
    T: Clone + Send + Sync + 'static,
{
    match tokio::runtime::Handle::try_current() {
        Ok(rt) => {
            let task = rt.spawn(fut);
            async move { task.await.unwrap_or(lost) }.boxed().shared()
        }
        Err(_) => fut.boxed().shared(),
    }
}

/// The decisions and the shared listings, whatever the listings come from.
struct Core<E> {
    mode: Mode,
    reads: AtomicUsize,
    listings: Mutex<HashMap<String, Arc<Listing<E>>>>,
}

impl<E: Send + 'static> Core<E> {
    fn new(mode: Mode) -> Self {
        Self {
            mode,
            reads: AtomicUsize::new(0),
            listings: Mutex::new(HashMap::new()),
        }
    }

    /// Counts a read that no listing may answer.
    fn count_read(&self) {
        self.reads.fetch_add(1, Ordering::AcqRel);
    }

    /// The entry of `cluster/name` from a listing, or `None`: the caller GETs it.
    async fn take<L: Lister<E>>(&self, lister: &L, cluster: &str, name: &str) -> Option<E> {
        let seen = self.reads.fetch_add(1, Ordering::AcqRel) + 1;
        if self.mode == Mode::Never || cluster.is_empty() {
            return None;
        }
        let waits = should_batch(self.mode, seen);
        let listing = self.listing(lister, cluster, starts_listing(self.mode, seen))?;
        // Polled once, not peeked: a page that came in the background is ready although
        // nothing has awaited it yet.
        let first = match listing.first.clone().now_or_never() {
            Some(first) => first,
            None if waits => listing.first.clone().await,
            None => return None,
        }?;
        if let Some(e) = listing.take(name) {
            return Some(e);
        }
        if first.complete() || !waits {
            return None;
        }
        let rest = self.rest(lister, cluster, &listing, first)?;
        rest.await;
        listing.take(name)
    }

    /// The cluster's current listing; a new one (its first page under way) when there is none
    /// or it is older than [`MAX_AGE`], if `start`.
    fn listing<L: Lister<E>>(
        &self,
        lister: &L,
        cluster: &str,
        start: bool,
    ) -> Option<Arc<Listing<E>>> {
        let mut listings = self.listings.lock().ok()?;
        let now = Instant::now();
        if let Some(l) = listings.get(cluster).filter(|l| fresh(l.started, now)) {
            return Some(l.clone());
        }
        if !start {
            return None;
        }
        let entries: Entries<E> = Arc::default();
        let first = {
            let (page, entries, cluster) = (
                lister.page(cluster.to_string(), 0),
                entries.clone(),
                cluster.to_string(),
            );
            in_background(
                async move {
                    match page.await {
                        Ok(p) => {
                            if let Ok(mut e) = entries.lock() {
                                e.extend(p.items);
                            }
                            Some(First {
                                total: p.total,
                                got: p.got,
                            })
                        }
                        Err(e) => {
                            tracing::debug!(
                                "cannot list cluster {cluster} for refresh, reading one by one: {e}"
                            );
                            None
                        }
                    }
                },
                None,
            )
        };
        let l = Arc::new(Listing {
            started: now,
            entries,
            first,
            rest: Mutex::new(None),
        });
        listings.insert(cluster.to_string(), l.clone());
        Some(l)
    }

    /// The pages after the first, shared: started by the first read that finds them worth it
    /// ([`worth_listing`]), `None` while they are not.
    fn rest<L: Lister<E>>(
        &self,
        lister: &L,
        cluster: &str,
        listing: &Listing<E>,
        first: First,
    ) -> Option<Pending<()>> {
        let mut rest = listing.rest.lock().ok()?;
        if let Some(r) = rest.as_ref() {
            return Some(r.clone());
        }
        let seen = self.reads.load(Ordering::Acquire);
        let worth = worth_listing(self.mode, first.total, seen);
        tracing::debug!(
            "refresh of cluster {cluster}: {} deployments, {seen} reads so far: {}",
            first.total,
            if worth {
                "listing the rest"
            } else {
                "reading one by one"
            }
        );
        if !worth {
            return None;
        }
        let r = in_background(
            fetch_rest(
                lister.clone(),
                cluster.to_string(),
                first,
                listing.entries.clone(),
            ),
            (),
        );
        *rest = Some(r.clone());
        Some(r)
    }

    /// Lists `cluster` (or the default cluster) in the background, unless a listing is there.
    fn warm_up<L: Lister<E>>(self: &Arc<Self>, lister: &L, cluster: Option<&str>) {
        if self.mode == Mode::Never {
            return;
        }
        if let Some(c) = cluster {
            let _ = self.listing(lister, c, true);
            return;
        }
        let (core, lister) = (self.clone(), lister.clone());
        // Detached: nothing waits for it; reads find the listing it starts.
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            drop(rt.spawn(async move {
                if let Some(c) = lister.default_cluster().await {
                    let _ = core.listing(&lister, &c, true);
                }
            }));
        }
    }
}

/// Every page of `cluster` after the first, [`PARALLEL_PAGES`] at a time, into `entries`. A
/// page that fails or comes back short leaves the rest to GETs (a listing only ever answers
/// what it holds).
async fn fetch_rest<E: Send + 'static, L: Lister<E>>(
    lister: L,
    cluster: String,
    first: First,
    entries: Entries<E>,
) {
    use futures::StreamExt;
    // The server's page size: what it sent for the first page (at most PAGE_SIZE).
    let step = first.got.clamp(1, PAGE_SIZE) as usize;
    let starts: Vec<u64> = (first.got..first.total).step_by(step).collect();
    let mut pages =
        futures::stream::iter(starts.into_iter().map(|s| lister.page(cluster.clone(), s)))
            .buffered(PARALLEL_PAGES);
    while let Some(page) = pages.next().await {
        match page {
            Ok(p) => {
                if let Ok(mut e) = entries.lock() {
                    e.extend(p.items);
                }
                if p.got == 0 {
                    return;
                }
            }
            Err(e) => {
                tracing::debug!("cannot list the rest of cluster {cluster}: {e}");
                return;
            }
        }
    }
}

/// Pages of deployments through the client.
#[derive(Clone)]
struct ClientLister(Client);

impl Lister<ListedDeployment> for ClientLister {
    fn page(
        &self,
        cluster: String,
        start: u64,
    ) -> BoxFuture<'static, Result<Page<ListedDeployment>, String>> {
        let client = self.0.clone();
        async move {
            let q = ListQuery {
                cluster: Some(cluster.clone()),
                ..ListQuery::default()
            };
            let page = client
                .list_deployments_page_listed(&q, start, PAGE_SIZE)
                .await
                .map_err(|e| e.to_string())?;
            Ok(Page {
                total: page.total,
                got: page.items.len() as u64,
                items: page
                    .items
                    .into_iter()
                    .filter(|d| d.cluster == cluster)
                    .map(|d| (d.name.clone(), d))
                    .collect(),
            })
        }
        .boxed()
    }

    fn default_cluster(&self) -> BoxFuture<'static, Option<String>> {
        let client = self.0.clone();
        async move {
            let clusters = client.list_clusters().await.ok()?;
            crate::api::default_cluster(&clusters).map(|c| c.meta.name.clone())
        }
        .boxed()
    }
}

/// The refresh snapshot of one provider process: its listings, per cluster.
pub struct Snapshots {
    core: Arc<Core<ListedDeployment>>,
}

impl Default for Snapshots {
    fn default() -> Self {
        Self::new(Mode::default())
    }
}

impl Snapshots {
    pub fn new(mode: Mode) -> Self {
        Self {
            core: Arc::new(Core::new(mode)),
        }
    }

    /// Starts listing `cluster` (the provider's), else the organisation's default cluster, in
    /// the background: called when the provider is configured (see the module docs).
    pub fn warm_up(&self, client: &Client, cluster: Option<&str>) {
        self.core.warm_up(
            &ClientLister(client.clone()),
            cluster.filter(|c| !c.is_empty()),
        );
    }

    /// The deployment from a listing of its cluster, as listed, or `None`: the caller GETs it
    /// (see the module docs for when). Like a GET's, the document is the server's: a caller that
    /// needs its bento manifest asks [`Client::with_bento_manifest`].
    pub async fn lookup(&self, client: &Client, cluster: &str, name: &str) -> Option<Deployment> {
        if client.has_written(cluster, name) {
            self.core.count_read();
            return None;
        }
        let listed = self
            .core
            .take(&ClientLister(client.clone()), cluster, name)
            .await?;
        match listed.deployment() {
            Ok(d) => Some(d),
            Err(e) => {
                tracing::debug!(
                    "deployment {cluster}/{name} as listed does not decode ({e}); reading it alone"
                );
                None
            }
        }
    }
}

#[cfg(test)]
mod tests;
