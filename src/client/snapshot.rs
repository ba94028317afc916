//! Refresh at fleet size: `ReadResource` answered from one listing of a cluster instead of one
//! `GET` per deployment.
//!
//! Terraform refreshes every resource with its own `ReadResource`, ten at a time by default,
//! and starts one provider process per operation. At internet latency (50-100 ms a request)
//! a GET per deployment makes a 1,000-deployment plan pay 5-10 s of reads. A list page
//! carries 500 full deployment documents (API doc §2.3, §3.3), so a cluster of N deployments
//! reads in `ceil(N / 500)` requests.
//!
//! When to batch, decided from what this process sees (never from a guess about the state):
//!
//! - The first [`BATCH_AFTER_READS`] reads are plain GETs: a plan of one or two deployments
//!   in a large organisation never lists it. A third read means Terraform is refreshing many
//!   (its reads arrive together, `-parallelism` at a time).
//! - The first page of the cluster's list says its `total`. The rest is fetched only when it
//!   costs no more requests than the reads already seen ([`worth_listing`]): a handful of
//!   deployments in a cluster of thousands goes on with GETs, having spent one request.
//! - One listing per cluster is shared by every read that waits for it.
//!
//! What a snapshot cannot answer goes to a GET, so drift, out-of-band deletes and imports show
//! exactly as with GETs: a deployment absent from the listing (deleted, or created after it, or
//! already read from it once: an entry serves one read); one whose listed JSON does not decode;
//! a deployment this process wrote (`Client::has_written`: any create, update, terminate or
//! delete through the client, whatever its outcome, which a listing may predate); a snapshot
//! older than [`MAX_AGE`]; and (decided by the caller) a state without a known URL, since list
//! items carry no `urls` (API doc §3.3).
//!
//! Freshness: Terraform starts the provider for each operation, so a snapshot is never older
//! than the operation's start, and the state it shows is the server's at the first batched
//! read or later: no older than what a GET issued then would show.
//!
//! Memory: a listing is kept as the pages' bodies plus an index by name (`ListedDeployment`),
//! not as parsed documents; an entry is parsed when its read comes, and dropped then.
//!
//! `BENTOCLOUD_REFRESH_BATCH`: `auto` (default), `always` (every read from a snapshot: the
//! acceptance tests force it to show drift and deletes read the same), `never` (GETs only).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::OnceCell;

use super::{Client, ListQuery, ListedDeployment, PAGE_SIZE};
use crate::api::Deployment;

/// Reads served by GET before a snapshot is considered.
pub const BATCH_AFTER_READS: usize = 2;
/// A snapshot this old is fetched again (a long apply: its refresh and later reads).
pub const MAX_AGE: Duration = Duration::from_secs(60);

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

/// Whether the `reads_seen`-th read (counting from 1) may come from a snapshot.
pub fn should_batch(mode: Mode, reads_seen: usize) -> bool {
    match mode {
        Mode::Always => true,
        Mode::Never => false,
        Mode::Auto => reads_seen > BATCH_AFTER_READS,
    }
}

/// Whether listing a cluster of `total` deployments (its first page already fetched) is worth
/// it after `reads_seen` reads: the pages still to fetch cost no more requests than the reads
/// seen so far, each of which a snapshot would have saved.
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

/// One cluster's listing: each deployment's JSON as listed, parsed only when read (a parsed
/// document takes about twice its JSON; a listing of 200 held as documents cost 2.3 MB more than
/// reading them one by one, issue 11).
struct Snapshot {
    taken: Instant,
    by_name: Mutex<HashMap<String, ListedDeployment>>,
}

type Cell = Arc<OnceCell<Option<Arc<Snapshot>>>>;

/// The snapshots of one provider process, per cluster.
#[derive(Default)]
pub struct Snapshots {
    mode: Mode,
    reads: AtomicUsize,
    cells: Mutex<HashMap<String, Cell>>,
    /// Clusters whose listing was not worth it yet, with their `total`: asked again once the
    /// reads seen make it worth it (a plan of thousands in an organisation of tens of
    /// thousands).
    declined: Mutex<HashMap<String, u64>>,
}

impl Snapshots {
    pub fn new(mode: Mode) -> Self {
        Self {
            mode,
            ..Self::default()
        }
    }

    /// The deployment from a snapshot of its cluster, or `None`: the caller GETs it (see the
    /// module docs for when).
    pub async fn lookup(&self, client: &Client, cluster: &str, name: &str) -> Option<Deployment> {
        let seen = self.reads.fetch_add(1, Ordering::AcqRel) + 1;
        if cluster.is_empty() || !should_batch(self.mode, seen) || client.has_written(cluster, name)
        {
            return None;
        }
        let snap = self.snapshot(client, cluster).await?;
        // Taken out: an entry serves one read, and a page's body is freed once all of its
        // entries were (a second read of the same deployment in this process is a GET).
        let listed = snap.by_name.lock().ok()?.remove(name)?;
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

    /// The cluster's snapshot: one listing shared by every read that waits for it, fetched
    /// again once older than [`MAX_AGE`]. `None` when listing was not worth it or failed.
    async fn snapshot(&self, client: &Client, cluster: &str) -> Option<Arc<Snapshot>> {
        let cell = self.cell(cluster, false)?;
        let got = cell
            .get_or_init(|| self.fetch(client, cluster))
            .await
            .clone();
        match got {
            None if self.worth_now(cluster) => {
                let again = self.cell(cluster, true)?;
                again
                    .get_or_init(|| self.fetch(client, cluster))
                    .await
                    .clone()
            }
            Some(s) if s.taken.elapsed() > MAX_AGE => {
                let fresh = self.cell(cluster, true)?;
                fresh
                    .get_or_init(|| self.fetch(client, cluster))
                    .await
                    .clone()
            }
            other => other,
        }
    }

    /// A declined cluster has become worth listing (and is taken off the declined list, so
    /// one read only asks again).
    fn worth_now(&self, cluster: &str) -> bool {
        let Ok(mut declined) = self.declined.lock() else {
            return false;
        };
        let seen = self.reads.load(Ordering::Acquire);
        match declined.get(cluster) {
            Some(&total) if worth_listing(self.mode, total, seen) => {
                declined.remove(cluster);
                true
            }
            _ => false,
        }
    }

    fn cell(&self, cluster: &str, renew: bool) -> Option<Cell> {
        let mut cells = self.cells.lock().ok()?;
        if renew {
            cells.remove(cluster);
        }
        Some(cells.entry(cluster.to_string()).or_default().clone())
    }

    async fn fetch(&self, client: &Client, cluster: &str) -> Option<Arc<Snapshot>> {
        let q = ListQuery {
            cluster: Some(cluster.to_string()),
            ..ListQuery::default()
        };
        let mode = self.mode;
        let reads = &self.reads;
        let taken = Instant::now();
        let listed =
            client
                .list_deployments_listed_if(&q, |total| {
                    let seen = reads.load(Ordering::Acquire);
                    let worth = worth_listing(mode, total, seen);
                    if !worth {
                        if let Ok(mut d) = self.declined.lock() {
                            d.insert(cluster.to_string(), total);
                        }
                    }
                    tracing::debug!(
                    "refresh of cluster {cluster}: {total} deployments, {seen} reads so far: {}",
                    if worth { "listing it" } else { "reading one by one" }
                );
                    worth
                })
                .await;
        match listed {
            Ok(Some(items)) => {
                let by_name = items
                    .into_iter()
                    // Only this cluster's: a server that ignored the filter must not answer
                    // for another cluster's namesake.
                    .filter(|d| d.cluster == cluster)
                    .map(|d| (d.name.clone(), d))
                    .collect();
                Some(Arc::new(Snapshot {
                    taken,
                    by_name: Mutex::new(by_name),
                }))
            }
            Ok(None) => None,
            Err(e) => {
                tracing::debug!(
                    "cannot list cluster {cluster} for refresh, reading one by one: {e}"
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
    fn one_or_two_reads_never_list() {
        assert!(!should_batch(Mode::Auto, 1));
        assert!(!should_batch(Mode::Auto, BATCH_AFTER_READS));
        assert!(should_batch(Mode::Auto, BATCH_AFTER_READS + 1));
        assert!(should_batch(Mode::Always, 1));
        assert!(!should_batch(Mode::Never, 1_000));
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

    /// Many reads at once (as Terraform sends them): the first two are left to GETs, the rest
    /// share one listing, and the requests stay within ceil(N / page) + 2.
    #[tokio::test]
    async fn concurrent_reads_share_one_listing() {
        let n = PAGE_SIZE as usize + 100; // two pages
        let (stub, client) = fleet(n).await;
        let snaps = Arc::new(Snapshots::new(Mode::Auto));
        let mut reads = Vec::new();
        for i in 0..40 {
            let (snaps, client) = (snaps.clone(), client.clone());
            reads.push(tokio::spawn(async move {
                let name = format!("d{i}");
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
            let (listed, name) = r.await.expect("joined");
            assert_eq!(name, format!("d{i}"));
            from_listing += usize::from(listed);
        }
        assert_eq!(
            from_listing,
            40 - BATCH_AFTER_READS,
            "all but the first reads"
        );
        let reqs = stub.requests();
        let lists = reqs
            .iter()
            .filter(|r| r.path == "/api/v2/deployments")
            .count();
        assert_eq!(lists, 2, "one listing of two pages, shared");
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
        let lists = |s: &crate::client::stub::Stub| {
            s.requests()
                .iter()
                .filter(|r| r.path == "/api/v2/deployments")
                .count()
        };
        assert_eq!(lists(&stub), 1, "one listing for all of them");

        let (stub, client) = fleet(5_000).await;
        let snaps = Snapshots::new(Mode::Auto);
        for i in 0..5 {
            assert!(snaps
                .lookup(&client, "east", &format!("d{i}"))
                .await
                .is_none());
        }
        assert_eq!(
            stub.requests().len(),
            1,
            "a first page, then no more: 10 pages are not worth 5 reads"
        );
        // ... until the reads seen make it worth it: then the listing is asked for again.
        for i in 5..30 {
            let _ = snaps.lookup(&client, "east", &format!("d{i}")).await;
        }
        let lists = stub.requests().len();
        assert_eq!(
            lists,
            1 + 10,
            "the first page once more, then the whole cluster"
        );
        assert!(snaps.lookup(&client, "east", "d42").await.is_some());
        let (stub, client) = fleet(10).await;
        let snaps = Snapshots::new(Mode::Never);
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
