//! Refresh at fleet size: `ReadResource` answered from one listing of a cluster instead of one
//! `GET` per deployment.
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

/// The listings of one provider process, per cluster.
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

    /// The deployment from a listing of its cluster, or `None`: the caller GETs it (see the
    /// module docs for when).
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
            Ok(d) => Some(client.with_bento_manifest(d).await),
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
mod tests {
    use super::*;

    #[test]
    fn the_first_two_reads_never_wait() {
        assert!(!should_batch(Mode::Auto, 1));
        assert!(!should_batch(Mode::Auto, BATCH_AFTER_READS));
        assert!(should_batch(Mode::Auto, BATCH_AFTER_READS + 1));
        assert!(should_batch(Mode::Always, 1));
        assert!(!should_batch(Mode::Never, 1_000));
    }

    #[test]
    fn the_first_read_and_the_waiting_ones_start_a_listing() {
        assert!(starts_listing(Mode::Auto, 1), "next to its own GET");
        assert!(
            !starts_listing(Mode::Auto, 2),
            "a second read alone lists nothing"
        );
        assert!(starts_listing(Mode::Auto, BATCH_AFTER_READS + 1));
        assert!(starts_listing(Mode::Always, 2));
        assert!(!starts_listing(Mode::Never, 1));
        assert!(!starts_listing(Mode::Never, 1_000));
    }

    #[test]
    fn listing_must_cost_no_more_than_the_reads_it_saves() {
        let p = PAGE_SIZE;
        // One page: already fetched, nothing more to pay.
        assert!(worth_listing(Mode::Auto, 0, 0));
        assert!(worth_listing(Mode::Auto, p, 0));
        // Two pages: one more request, worth it after one read.
        assert!(!worth_listing(Mode::Auto, p + 1, 0));
        assert!(worth_listing(Mode::Auto, p + 1, 1));
        // 50,000 deployments (100 pages) for three reads: not worth it.
        assert!(!worth_listing(Mode::Auto, 50_000, 3));
        assert!(worth_listing(Mode::Auto, 50_000, 99));
        assert!(!worth_listing(Mode::Auto, 50_000, 98));
        assert!(worth_listing(Mode::Always, 50_000, 0));
        assert!(!worth_listing(Mode::Never, 1, 1_000));
    }

    #[test]
    fn a_listing_answers_for_max_age() {
        let t = Instant::now();
        assert!(fresh(t, t));
        assert!(fresh(t, t + MAX_AGE));
        assert!(!fresh(t, t + MAX_AGE + Duration::from_millis(1)));
        // A clock that went backwards (it cannot, for tokio's Instant) is not "old".
        assert!(fresh(t + Duration::from_secs(1), t));
    }

    // ----- the rule in virtual time: a fake lister whose pages take one round trip -------

    const RTT: Duration = Duration::from_millis(50);

    /// A cluster `east` of `n` deployments `d0..`, pages of [`PAGE_SIZE`] after one [`RTT`];
    /// every request noted with its (virtual) time.
    #[derive(Clone)]
    struct Fake(Arc<FakeInner>);

    struct FakeInner {
        n: u64,
        fail: bool,
        calls: Mutex<Vec<(String, u64, Instant)>>,
    }

    impl Fake {
        fn new(n: u64) -> Fake {
            Fake(Arc::new(FakeInner {
                n,
                fail: false,
                calls: Mutex::default(),
            }))
        }

        fn failing() -> Fake {
            Fake(Arc::new(FakeInner {
                n: 10,
                fail: true,
                calls: Mutex::default(),
            }))
        }

        fn calls(&self) -> Vec<(String, u64, Instant)> {
            self.0.calls.lock().expect("calls").clone()
        }
    }

    impl Lister<String> for Fake {
        fn page(
            &self,
            cluster: String,
            start: u64,
        ) -> BoxFuture<'static, Result<Page<String>, String>> {
            let f = self.0.clone();
            f.calls
                .lock()
                .expect("calls")
                .push((cluster.clone(), start, Instant::now()));
            async move {
                tokio::time::sleep(RTT).await;
                if f.fail {
                    return Err("503".to_string());
                }
                let end = f.n.min(start + PAGE_SIZE);
                let items: Vec<(String, String)> = if cluster == "east" {
                    (start..end)
                        .map(|i| (format!("d{i}"), format!("d{i}")))
                        .collect()
                } else {
                    Vec::new()
                };
                Ok(Page {
                    total: if cluster == "east" { f.n } else { 0 },
                    got: items.len() as u64,
                    items,
                })
            }
            .boxed()
        }

        fn default_cluster(&self) -> BoxFuture<'static, Option<String>> {
            let f = self.0.clone();
            f.calls
                .lock()
                .expect("calls")
                .push(("(clusters)".to_string(), 0, Instant::now()));
            async move {
                tokio::time::sleep(RTT).await;
                Some("east".to_string())
            }
            .boxed()
        }
    }

    /// One `ReadResource` as the resource does it: the listing, else a GET (one [`RTT`]).
    /// Returns whether the listing answered and how long the read took (virtual time).
    async fn read(core: &Core<String>, fake: &Fake, name: &str) -> (bool, Duration) {
        let t0 = Instant::now();
        let listed = match core.take(fake, "east", name).await {
            Some(e) => {
                assert_eq!(e, name, "the entry of the name asked for");
                true
            }
            None => {
                tokio::time::sleep(RTT).await;
                false
            }
        };
        (listed, t0.elapsed())
    }

    /// `names` read at once (Terraform's `-parallelism` reads arrive together), in order.
    async fn wave(
        core: &Arc<Core<String>>,
        fake: &Fake,
        names: &[String],
    ) -> Vec<(bool, Duration)> {
        let reads = names.iter().map(|n| {
            let (core, fake, n) = (core.clone(), fake.clone(), n.clone());
            tokio::spawn(async move { read(&core, &fake, &n).await })
        });
        futures::future::join_all(reads)
            .await
            .into_iter()
            .map(|r| r.expect("read task"))
            .collect()
    }

    fn names(range: std::ops::Range<u64>) -> Vec<String> {
        range.map(|i| format!("d{i}")).collect()
    }

    /// A plan of one deployment: its read is a GET, not delayed; the listing it starts is one
    /// more request, in the background.
    #[tokio::test(start_paused = true)]
    async fn one_read_is_a_get_that_waits_for_nothing() {
        let (core, fake) = (Arc::new(Core::new(Mode::Auto)), Fake::new(200));
        let got = read(&core, &fake, "d7").await;
        assert_eq!(got, (false, RTT), "a GET, one round trip");
        assert_eq!(fake.calls().len(), 1, "plus one listing page");
    }

    /// Reads arriving together with no warm-up: the first two GET, the others wait for the
    /// listing the first one started at the same moment; none waits longer than a GET.
    #[tokio::test(start_paused = true)]
    async fn reads_arriving_together_wait_no_longer_than_a_get() {
        let (core, fake) = (Arc::new(Core::new(Mode::Auto)), Fake::new(200));
        let got = wave(&core, &fake, &names(0..10)).await;
        assert_eq!(
            got.iter().filter(|(listed, _)| *listed).count(),
            10 - BATCH_AFTER_READS
        );
        assert!(got.iter().all(|(_, took)| *took == RTT), "{got:?}");
        assert_eq!(fake.calls().len(), 1, "one listing page");
        // The next reads find the listing there: no wait, no request.
        let got = wave(&core, &fake, &names(10..30)).await;
        assert!(got.iter().all(|r| *r == (true, Duration::ZERO)), "{got:?}");
        assert_eq!(fake.calls().len(), 1);
    }

    /// The warm-up at configure time: when Terraform's first reads come, the listing is there
    /// and answers all of them at once, the first two included.
    #[tokio::test(start_paused = true)]
    async fn a_warm_listing_answers_every_read_at_once() {
        let (core, fake) = (Arc::new(Core::new(Mode::Auto)), Fake::new(200));
        core.warm_up(&fake, Some("east"));
        // Terraform between ConfigureProvider and its first ReadResource.
        tokio::time::sleep(2 * RTT).await;
        let got = wave(&core, &fake, &names(0..10)).await;
        assert!(got.iter().all(|r| *r == (true, Duration::ZERO)), "{got:?}");
        assert_eq!(fake.calls().len(), 1);

        // Without a provider cluster: the default cluster, then its first page.
        let (core, fake) = (Arc::new(Core::new(Mode::Auto)), Fake::new(200));
        core.warm_up(&fake, None);
        tokio::time::sleep(2 * RTT).await;
        let got = wave(&core, &fake, &names(0..10)).await;
        assert!(got.iter().all(|r| *r == (true, Duration::ZERO)), "{got:?}");
        let calls: Vec<(String, u64)> = fake.calls().into_iter().map(|(c, s, _)| (c, s)).collect();
        assert_eq!(
            calls,
            [("(clusters)".to_string(), 0), ("east".to_string(), 0)]
        );
    }

    /// A warm-up still under way when the reads come: the first two do not wait for it (a GET
    /// each), the others wait for it, and it was sent before them: no read takes longer than
    /// a GET would.
    #[tokio::test(start_paused = true)]
    async fn a_late_warm_up_delays_no_read() {
        let (core, fake) = (Arc::new(Core::new(Mode::Auto)), Fake::new(200));
        core.warm_up(&fake, Some("east"));
        tokio::time::sleep(RTT / 2).await;
        let got = wave(&core, &fake, &names(0..10)).await;
        assert_eq!(&got[..BATCH_AFTER_READS], [(false, RTT), (false, RTT)]);
        assert!(
            got[BATCH_AFTER_READS..]
                .iter()
                .all(|r| *r == (true, RTT / 2)),
            "{got:?}"
        );
        assert_eq!(fake.calls().len(), 1, "no second listing");
    }

    /// A cluster of two pages: reads the first page answers come at once; the first read it
    /// cannot answer fetches the second page (worth it: one request for the reads seen), which
    /// answers the rest.
    #[tokio::test(start_paused = true)]
    async fn the_rest_of_a_cluster_is_fetched_by_the_first_read_that_needs_it() {
        let (core, fake) = (Arc::new(Core::new(Mode::Auto)), Fake::new(PAGE_SIZE + 100));
        core.warm_up(&fake, Some("east"));
        tokio::time::sleep(2 * RTT).await;
        let mut ten = names(0..5);
        ten.extend(names(PAGE_SIZE..PAGE_SIZE + 5));
        let got = wave(&core, &fake, &ten).await;
        assert!(
            got[..5].iter().all(|r| *r == (true, Duration::ZERO)),
            "{got:?}"
        );
        // d500.. are on the second page; they are the 6th to 10th reads, so they wait for it,
        // and one round trip brings it.
        assert!(got[5..].iter().all(|r| *r == (true, RTT)), "{got:?}");
        let starts: Vec<u64> = fake.calls().into_iter().map(|(_, s, _)| s).collect();
        assert_eq!(starts, [0, PAGE_SIZE], "each page once");
    }

    /// A few reads in a cluster of thousands: one page spent, then GETs; the rest is listed
    /// once the reads seen make it worth it.
    #[tokio::test(start_paused = true)]
    async fn a_huge_cluster_is_listed_only_once_it_is_worth_it() {
        let (core, fake) = (Arc::new(Core::new(Mode::Auto)), Fake::new(5_000));
        core.warm_up(&fake, Some("east"));
        tokio::time::sleep(2 * RTT).await;
        // Nine more pages are worth nine reads: the reads 1..=8 beyond the first page GET.
        for i in 0..8 {
            assert_eq!(
                read(&core, &fake, &format!("d{}", 4_000 + i)).await,
                (false, RTT)
            );
        }
        assert_eq!(fake.calls().len(), 1, "the first page only");
        assert!(read(&core, &fake, "d4008").await.0, "the ninth read lists");
        assert_eq!(fake.calls().len(), 10, "all ten pages, each once");
        assert_eq!(read(&core, &fake, "d10").await, (true, Duration::ZERO));
    }

    /// A listing older than MAX_AGE is not used: the next read that may list fetches a new one.
    #[tokio::test(start_paused = true)]
    async fn an_old_listing_is_fetched_again() {
        let (core, fake) = (Arc::new(Core::new(Mode::Always)), Fake::new(20));
        // The listing is sent at the read, which waits one round trip for it.
        assert_eq!(read(&core, &fake, "d1").await, (true, RTT));
        tokio::time::advance(MAX_AGE - RTT).await;
        assert!(read(&core, &fake, "d2").await.0, "still fresh");
        assert_eq!(fake.calls().len(), 1);
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(read(&core, &fake, "d3").await.0);
        assert_eq!(fake.calls().len(), 2, "a new listing");
    }

    /// `never`: no warm-up, no listing; a failed first page: GETs, no second try.
    #[tokio::test(start_paused = true)]
    async fn never_lists_and_a_failed_listing_is_not_retried() {
        let (core, fake) = (Arc::new(Core::new(Mode::Never)), Fake::new(20));
        core.warm_up(&fake, None);
        let got = wave(&core, &fake, &names(0..10)).await;
        assert!(got.iter().all(|r| *r == (false, RTT)), "{got:?}");
        assert!(fake.calls().is_empty());

        let (core, fake) = (Arc::new(Core::new(Mode::Auto)), Fake::failing());
        core.warm_up(&fake, Some("east"));
        let got = wave(&core, &fake, &names(0..10)).await;
        assert!(got.iter().all(|(listed, _)| !listed), "{got:?}");
        assert_eq!(fake.calls().len(), 1);
    }

    // ----- through the client, against a stub server ----------------------------------------

    use crate::client::stub::{serve, StubRequest, StubResponse};
    use crate::client::ClientConfig;

    fn deployment(cluster: &str, name: &str) -> Deployment {
        let mut d = Deployment::default();
        d.meta.name = name.into();
        d.cluster.meta.name = cluster.into();
        d
    }

    /// A stub cluster `east` of `n` deployments `d0..`, listed by pages (no `urls`), and GETs.
    async fn fleet(n: usize) -> (crate::client::stub::Stub, Client) {
        let stub = serve(move |req: StubRequest| async move {
            if req.path == "/api/v2/deployments" {
                let start: usize = req.param("start").and_then(|s| s.parse().ok()).unwrap_or(0);
                let count: usize = req.param("count").and_then(|s| s.parse().ok()).unwrap_or(20);
                let items: Vec<Deployment> = (start..n.min(start + count))
                    .map(|i| deployment("east", &format!("d{i}")))
                    .collect();
                StubResponse::json(
                    200,
                    serde_json::json!({"start": start, "count": items.len(), "total": n, "items": items}),
                )
            } else if req.path == "/api/v1/clusters" {
                StubResponse::json(
                    200,
                    serde_json::json!({"start": 0, "count": 1, "total": 1, "items": [
                        {"name": "east", "is_first": true}
                    ]}),
                )
            } else {
                let name = req.path.rsplit('/').next().unwrap_or_default().to_string();
                StubResponse::json(200, deployment("east", &name))
            }
        })
        .await;
        let mut cfg = ClientConfig::new(stub.url.clone(), "tok");
        cfg.requests_per_second = 0.0;
        (stub, Client::new(cfg).expect("client"))
    }

    fn lists(s: &crate::client::stub::Stub) -> usize {
        s.requests()
            .iter()
            .filter(|r| r.path == "/api/v2/deployments")
            .count()
    }

    /// Many reads at once (as Terraform sends them): the first two are left to GETs, the rest
    /// share one listing, and the requests stay within ceil(N / page) + 2.
    #[tokio::test]
    async fn concurrent_reads_share_one_listing() {
        let n = PAGE_SIZE as usize + 100; // two pages
        let (stub, client) = fleet(n).await;
        let snaps = Arc::new(Snapshots::new(Mode::Auto));
        let mut reads = Vec::new();
        // Names on both pages.
        let name = |i: usize| format!("d{}", i * 15);
        for i in 0..40 {
            let (snaps, client) = (snaps.clone(), client.clone());
            reads.push(tokio::spawn(async move {
                let name = name(i);
                match snaps.lookup(&client, "east", &name).await {
                    Some(d) => (true, d.meta.name),
                    None => {
                        let d = client.get_deployment("east", &name).await.expect("get");
                        (false, d.meta.name)
                    }
                }
            }));
        }
        let mut from_listing = 0;
        for (i, r) in reads.into_iter().enumerate() {
            let (listed, got) = r.await.expect("joined");
            assert_eq!(got, name(i));
            from_listing += usize::from(listed);
        }
        assert_eq!(
            from_listing,
            40 - BATCH_AFTER_READS,
            "all but the first reads"
        );
        let reqs = stub.requests();
        assert_eq!(lists(&stub), 2, "one listing of two pages, shared");
        assert!(
            reqs.len() <= n.div_ceil(PAGE_SIZE as usize) + 2,
            "{} requests",
            reqs.len()
        );
        assert!(reqs
            .iter()
            .filter(|r| r.path == "/api/v2/deployments")
            .all(|r| r.param("cluster").as_deref() == Some("east")));
    }

    /// The warm-up through the client: the default cluster from `GET /api/v1/clusters`, then
    /// its first page, which answers the reads (the first ones included) without a GET.
    #[tokio::test]
    async fn the_warm_up_lists_the_default_cluster() {
        let (stub, client) = fleet(30).await;
        let snaps = Snapshots::new(Mode::Auto);
        snaps.warm_up(&client, None);
        // The warm-up's listing once the default cluster is known (a test's stand-in for
        // Terraform's own work between configuring the provider and reading).
        let end = std::time::Instant::now() + Duration::from_secs(30);
        let warm = loop {
            let listing = snaps
                .core
                .listings
                .lock()
                .expect("listings")
                .get("east")
                .cloned();
            if let Some(l) = listing {
                break l.first.clone();
            }
            assert!(std::time::Instant::now() < end, "no warm-up listing");
            tokio::task::yield_now().await;
        };
        assert_eq!(
            warm.await,
            Some(First { total: 30, got: 30 }),
            "the whole cluster"
        );
        for i in 0..3 {
            let d = snaps.lookup(&client, "east", &format!("d{i}")).await;
            assert_eq!(d.map(|d| d.meta.name), Some(format!("d{i}")));
        }
        let paths: Vec<String> = stub.requests().iter().map(|r| r.path.clone()).collect();
        assert_eq!(paths, ["/api/v1/clusters", "/api/v2/deployments"]);
    }

    /// What a listing cannot answer goes to a GET: a name it lacks, a deployment this process
    /// wrote, another cluster, and a cluster too large for the reads seen.
    #[tokio::test]
    async fn a_listing_answers_only_what_it_knows() {
        let (stub, client) = fleet(3).await;
        let snaps = Snapshots::new(Mode::Always);
        assert_eq!(
            snaps
                .lookup(&client, "east", "d1")
                .await
                .map(|d| d.meta.name),
            Some("d1".to_string())
        );
        assert!(snaps.lookup(&client, "east", "gone").await.is_none());
        // A write through the client (whatever its outcome) sends the next read to a GET.
        let _ = client.terminate_deployment("east", "d2").await;
        assert!(snaps.lookup(&client, "east", "d2").await.is_none());
        assert!(snaps.lookup(&client, "", "d0").await.is_none());
        assert_eq!(lists(&stub), 1, "one listing for all of them");

        let (stub, client) = fleet(5_000).await;
        let snaps = Snapshots::new(Mode::Auto);
        // The first read starts the first page (and GETs), the second GETs, the next wait for
        // the page, which answers them.
        let first = names(0..5);
        let got: Vec<bool> =
            futures::future::join_all(first.iter().map(|n| snaps.lookup(&client, "east", n)))
                .await
                .iter()
                .map(Option::is_some)
                .collect();
        assert_eq!(got, [false, false, true, true, true]);
        assert_eq!(stub.requests().len(), 1, "one page");
        // d4000.. are not on it: 9 more pages are not worth 6..8 reads ...
        for i in 0..3 {
            assert!(snaps
                .lookup(&client, "east", &format!("d{}", 4_000 + i))
                .await
                .is_none());
        }
        assert_eq!(stub.requests().len(), 1, "then no more: GETs");
        // ... but worth 9: then the rest of the cluster, once.
        assert!(snaps.lookup(&client, "east", "d4003").await.is_some());
        assert_eq!(lists(&stub), 10, "the first page, then the other nine");
        assert!(snaps.lookup(&client, "east", "d42").await.is_some());
        assert_eq!(lists(&stub), 10);

        let (stub, client) = fleet(10).await;
        let snaps = Snapshots::new(Mode::Never);
        snaps.warm_up(&client, Some("east"));
        for i in 0..5 {
            assert!(snaps
                .lookup(&client, "east", &format!("d{i}"))
                .await
                .is_none());
        }
        assert!(stub.requests().is_empty());
    }

    /// An entry serves one read (the next read of it is a GET), and an item the listing holds
    /// but that does not decode as a deployment is read alone, as is every read when the
    /// listing fails.
    #[tokio::test]
    async fn an_entry_serves_one_read_and_what_does_not_decode_is_read_alone() {
        let (stub, client) = fleet(3).await;
        let snaps = Snapshots::new(Mode::Always);
        assert!(snaps.lookup(&client, "east", "d1").await.is_some());
        assert!(snaps.lookup(&client, "east", "d1").await.is_none());
        assert!(snaps.lookup(&client, "east", "d2").await.is_some());
        assert_eq!(stub.requests().len(), 1, "one listing");

        let stub = serve(|req: StubRequest| async move {
            let good = serde_json::to_value(deployment("east", "good")).expect("json");
            let mut bad = good.clone();
            bad["name"] = "bad".into();
            bad["status"] = 5.into();
            if req.path == "/api/v2/deployments" {
                StubResponse::json(200, serde_json::json!({"total": 2, "items": [good, bad]}))
            } else {
                StubResponse::json(404, serde_json::json!({"message": "not found"}))
            }
        })
        .await;
        let mut cfg = ClientConfig::new(stub.url.clone(), "tok");
        cfg.requests_per_second = 0.0;
        let client = Client::new(cfg).expect("client");
        let snaps = Snapshots::new(Mode::Always);
        assert!(snaps.lookup(&client, "east", "bad").await.is_none());
        let good = snaps.lookup(&client, "east", "good").await;
        assert_eq!(good.map(|d| d.meta.name), Some("good".to_string()));
        assert_eq!(stub.requests().len(), 1, "one listing");
    }

    #[test]
    fn mode_parses_and_names_the_accepted_values() {
        assert_eq!(Mode::parse(""), Ok(Mode::Auto));
        assert_eq!(Mode::parse("auto"), Ok(Mode::Auto));
        assert_eq!(Mode::parse(" always "), Ok(Mode::Always));
        assert_eq!(Mode::parse("never"), Ok(Mode::Never));
        let e = Mode::parse("sometimes").expect_err("refused");
        assert!(
            e.contains("auto") && e.contains("always") && e.contains("never"),
            "{e}"
        );
    }
}
