//! Tests of the refresh snapshot: when reads batch, list or fall back to a GET, against a
//! fake lister with a simulated round trip.

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
async fn wave(core: &Arc<Core<String>>, fake: &Fake, names: &[String]) -> Vec<(bool, Duration)> {
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
