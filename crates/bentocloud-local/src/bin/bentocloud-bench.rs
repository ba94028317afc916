//! `bentocloud-bench`: the measuring parts of `scripts/bench.sh` that need precise timing.
//!
//! - `handshake --bin PATH [--runs N]`: starts a Terraform provider binary the way Terraform
//!   does (magic cookie, protocols "5,6" offered) and times the start until its first stdout
//!   line (the go-plugin handshake line); prints one JSON object with every run in milliseconds.
//! - `load --url URL --rate R --workers W --duration-s S --out PREFIX [--sample-url U --token T]`:
//!   paced HTTP GETs at `R` requests/s over `W` keep-alive connections for `S` seconds; writes
//!   `PREFIX.json` (counts, failures, latency percentiles in microseconds), `PREFIX.requests.csv`
//!   (one row per 100 ms bucket: ok, failed) and, with `--sample-url`, `PREFIX.samples.csv`
//!   (the deployment's rollout every 50 ms: ready and updated replicas, phase). Also
//!   `PREFIX.targets.csv`: per 100 ms bucket and `x-bentocloud-target` value of the answer
//!   (`main`, a canary version, `-` when there was no answer or no such header), the requests
//!   answered with a success and those that failed (`t_ms,target,ok,failed`). With
//!   `--header NAME:VALUE` every request carries that header (e.g. to route to a canary);
//!   with `--stop-file PATH` the load stops early once PATH exists (checked every 50 ms), and
//!   the outputs describe the requests sent until then.
//!
//! Only loopback addresses are accepted as targets; every loop is bounded in time.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const COOKIE: &str = "d602bf8f470bc67ca7faa0386276bbdd4330efaf76d1a219cb4d6991ca9872b2";

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

fn need(args: &[String], name: &str) -> String {
    arg(args, name).unwrap_or_else(|| {
        eprintln!("bentocloud-bench: missing {name}");
        std::process::exit(2)
    })
}

fn num<T: std::str::FromStr>(args: &[String], name: &str, default: T) -> T {
    match arg(args, name) {
        Some(v) => v.parse().unwrap_or_else(|_| {
            eprintln!("bentocloud-bench: {name} {v:?} is not a number");
            std::process::exit(2)
        }),
        None => default,
    }
}

fn loopback_only(u: &str) {
    let url = url::Url::parse(u).unwrap_or_else(|e| {
        eprintln!("bentocloud-bench: bad URL {u:?}: {e}");
        std::process::exit(2)
    });
    let ok = matches!(
        url.host_str(),
        Some("127.0.0.1") | Some("localhost") | Some("[::1]")
    );
    if !ok {
        eprintln!("bentocloud-bench: {u} is not a loopback address; refusing to send load there");
        std::process::exit(2)
    }
}

fn unix_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("handshake") => handshake(&args[1..]),
        Some("load") => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("tokio runtime");
            rt.block_on(load(&args[1..]));
        }
        _ => {
            eprintln!(
                "usage: bentocloud-bench handshake --bin PATH [--runs N] | load --url URL ..."
            );
            std::process::exit(2)
        }
    }
}

fn handshake(args: &[String]) {
    let bin = need(args, "--bin");
    let runs: usize = num(args, "--runs", 20);
    let mut ms = Vec::with_capacity(runs);
    let mut line = String::new();
    for _ in 0..runs {
        let t0 = Instant::now();
        let mut child = Command::new(&bin)
            .env("TF_PLUGIN_MAGIC_COOKIE", COOKIE)
            .env("PLUGIN_PROTOCOL_VERSIONS", "5,6")
            .env("PLUGIN_MIN_PORT", "10000")
            .env("PLUGIN_MAX_PORT", "25000")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                eprintln!("bentocloud-bench: cannot start {bin}: {e}");
                std::process::exit(1)
            });
        line.clear();
        let mut out = BufReader::new(child.stdout.take().expect("stdout"));
        let n = out.read_line(&mut line).unwrap_or(0);
        let el = t0.elapsed().as_secs_f64() * 1000.0;
        let _ = child.kill();
        let _ = child.wait();
        if n == 0 {
            eprintln!("bentocloud-bench: {bin} printed no handshake line");
            std::process::exit(1)
        }
        ms.push(el);
    }
    println!(
        "{}",
        serde_json::json!({"bin": bin, "handshake_line": line.trim(), "ms": ms})
    );
}

#[derive(Default)]
struct Recorder {
    latencies_us: Vec<u64>,
    failures: u64,
    /// bucket (100 ms) -> (ok, failed)
    buckets: BTreeMap<u64, (u64, u64)>,
    statuses: BTreeMap<String, u64>,
    first_errors: Vec<String>,
    /// bucket (100 ms) -> `x-bentocloud-target` value -> (ok, failed)
    targets: BTreeMap<u64, BTreeMap<String, (u64, u64)>>,
}

impl Recorder {
    /// One request's outcome (`t0` its start, `us` its latency).
    fn record(&mut self, res: Result<u16, String>, us: u64, bucket: u64) {
        let b = self.buckets.entry(bucket).or_default();
        match res {
            Ok(code) => {
                b.0 += 1;
                self.latencies_us.push(us);
                *self.statuses.entry(code.to_string()).or_default() += 1;
            }
            Err(e) => {
                b.1 += 1;
                self.failures += 1;
                *self.statuses.entry("error".into()).or_default() += 1;
                if self.first_errors.len() < 5 {
                    self.first_errors.push(e);
                }
            }
        }
    }

    /// The target that answered a request of `bucket` (`-`: none), and whether it succeeded.
    fn record_target(&mut self, target: Option<String>, ok: bool, bucket: u64) {
        let t = self
            .targets
            .entry(bucket)
            .or_default()
            .entry(target.unwrap_or_else(|| "-".into()))
            .or_default();
        if ok {
            t.0 += 1;
        } else {
            t.1 += 1;
        }
    }

    /// The latency at percentile `p` (latencies sorted).
    fn percentile(&self, p: f64) -> u64 {
        let l = &self.latencies_us;
        if l.is_empty() {
            return 0;
        }
        let i = ((p / 100.0) * (l.len() as f64 - 1.0)).round() as usize;
        l[i.min(l.len() - 1)]
    }
}

/// What `load` is asked to do.
struct Load {
    url: String,
    rate: f64,
    workers: usize,
    duration: Duration,
    prefix: String,
    sample_url: Option<String>,
    token: String,
    /// `--header NAME:VALUE`: sent with every request.
    header: Option<(String, String)>,
    /// `--stop-file PATH`: the load stops once it exists.
    stop_file: Option<String>,
}

impl Load {
    fn parse(args: &[String]) -> Load {
        let load = Load {
            url: need(args, "--url"),
            rate: num(args, "--rate", 400.0),
            workers: num(args, "--workers", 4),
            duration: Duration::from_secs_f64(num::<f64>(args, "--duration-s", 10.0).min(120.0)),
            prefix: need(args, "--out"),
            sample_url: arg(args, "--sample-url"),
            token: arg(args, "--token").unwrap_or_default(),
            header: arg(args, "--header").map(|h| match h.split_once(':') {
                Some((n, v)) => (n.trim().to_string(), v.trim().to_string()),
                None => {
                    eprintln!("--header wants NAME:VALUE, got {h:?}");
                    std::process::exit(2)
                }
            }),
            stop_file: arg(args, "--stop-file"),
        };
        loopback_only(&load.url);
        if let Some(u) = &load.sample_url {
            loopback_only(u);
        }
        load
    }
}

/// One GET with `header`: its status when it succeeded (body read), else why not; and the
/// answer's `x-bentocloud-target`, when it had one.
async fn one_request_tagged(
    client: &reqwest::Client,
    url: &str,
    header: Option<&(String, String)>,
) -> (Result<u16, String>, Option<String>) {
    let mut req = client.get(url);
    if let Some((n, v)) = header {
        req = req.header(n.as_str(), v.as_str());
    }
    let r = match req.send().await {
        Ok(r) => r,
        Err(e) => return (Err(format!("{e}")), None),
    };
    let target = r
        .headers()
        .get("x-bentocloud-target")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let st = r.status();
    let res = match r.bytes().await {
        Ok(_) if st.is_success() => Ok(st.as_u16()),
        Ok(_) => Err(format!("HTTP {st}")),
        Err(e) => Err(format!("body: {e}")),
    };
    (res, target)
}

/// Worker `w` of `load.workers`: its share of the paced requests, each at its due time.
fn paced_worker(
    load: &Load,
    w: usize,
    client: reqwest::Client,
    rec: Arc<Mutex<Recorder>>,
    start: Instant,
    stopped: Arc<std::sync::atomic::AtomicBool>,
) -> tokio::task::JoinHandle<()> {
    let (url, workers, duration) = (load.url.clone(), load.workers, load.duration);
    let header = load.header.clone();
    let interval = workers as f64 / load.rate;
    tokio::spawn(async move {
        let mut k: u64 = 0;
        loop {
            let due = Duration::from_secs_f64(interval * (k as f64 + w as f64 / workers as f64));
            if due >= duration || stopped.load(std::sync::atomic::Ordering::Relaxed) {
                break;
            }
            k += 1;
            let now = start.elapsed();
            if due > now {
                tokio::time::sleep(due - now).await;
            }
            let t0 = Instant::now();
            let (res, target) = one_request_tagged(&client, &url, header.as_ref()).await;
            let us = t0.elapsed().as_micros() as u64;
            let bucket = (t0 - start).as_millis() as u64 / 100;
            let mut r = rec.lock().expect("recorder");
            r.record_target(target, res.is_ok(), bucket);
            r.record(res, us, bucket);
        }
    })
}

/// Every 50 ms while the load runs: the deployment's rollout progress from `sample_url` (the
/// control plane's local route), as CSV rows.
fn sampler(
    load: &Load,
    client: reqwest::Client,
    samples: Arc<Mutex<Vec<String>>>,
    start: Instant,
    stopped: Arc<std::sync::atomic::AtomicBool>,
) -> Option<tokio::task::JoinHandle<()>> {
    let u = load.sample_url.clone()?;
    let (token, duration) = (load.token.clone(), load.duration);
    Some(tokio::spawn(async move {
        while start.elapsed() < duration && !stopped.load(std::sync::atomic::Ordering::Relaxed) {
            let t = start.elapsed().as_millis();
            if let Ok(r) = client
                .get(&u)
                .header("X-YATAI-API-TOKEN", &token)
                .send()
                .await
            {
                if let Ok(v) = r.json::<serde_json::Value>().await {
                    let ro = &v["rollout"];
                    let row = format!(
                        "{t},{},{},{},{},{}",
                        ro["ready_replicas"].as_u64().unwrap_or(0),
                        ro["updated_replicas"].as_u64().unwrap_or(0),
                        ro["desired_replicas"].as_u64().unwrap_or(0),
                        ro["phase"].as_str().unwrap_or(""),
                        v["status"].as_str().unwrap_or("")
                    );
                    samples.lock().expect("samples").push(row);
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }))
}

/// Paced GETs at `--rate` from `--workers` tasks for `--duration-s`, optionally sampling a
/// deployment's rollout; writes `<out>.json` (summary), `<out>.requests.csv` and
/// `<out>.samples.csv`, and prints the summary.
async fn load(args: &[String]) {
    let load = Load::parse(args);
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(load.workers * 2)
        .timeout(Duration::from_secs(5))
        .tcp_nodelay(true)
        .build()
        .expect("client");
    let rec = Arc::new(Mutex::new(Recorder::default()));
    let samples = Arc::new(Mutex::new(Vec::<String>::new()));
    let start = Instant::now();
    let start_unix_ms = unix_ms();
    let stopped = Arc::new(std::sync::atomic::AtomicBool::new(false));
    if let Some(path) = load.stop_file.clone() {
        let (stopped, duration) = (stopped.clone(), load.duration);
        tokio::spawn(async move {
            while start.elapsed() < duration {
                if std::path::Path::new(&path).exists() {
                    stopped.store(true, std::sync::atomic::Ordering::Relaxed);
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
    }
    let tasks: Vec<_> = (0..load.workers)
        .map(|w| {
            paced_worker(
                &load,
                w,
                client.clone(),
                rec.clone(),
                start,
                stopped.clone(),
            )
        })
        .collect();
    let sampling = sampler(
        &load,
        client.clone(),
        samples.clone(),
        start,
        stopped.clone(),
    );
    for t in tasks {
        let _ = t.await;
    }
    if let Some(s) = sampling {
        let _ = s.await;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let mut r = rec.lock().expect("recorder");
    r.latencies_us.sort_unstable();
    let summary = summary(&load, &r, start_unix_ms, elapsed);
    write_results(
        &load.prefix,
        &summary,
        &r,
        &samples.lock().expect("samples"),
    );
    println!("{summary}");
}

fn summary(load: &Load, r: &Recorder, start_unix_ms: u128, elapsed: f64) -> serde_json::Value {
    let ok = r.latencies_us.len() as u64;
    serde_json::json!({
        "url": load.url,
        "start_unix_ms": start_unix_ms as u64,
        "elapsed_s": elapsed,
        "rate_target": load.rate,
        "workers": load.workers,
        "requests": ok + r.failures,
        "ok": ok,
        "failures": r.failures,
        "statuses": r.statuses,
        "first_errors": r.first_errors,
        "p50_us": r.percentile(50.0),
        "p90_us": r.percentile(90.0),
        "p99_us": r.percentile(99.0),
        "p999_us": r.percentile(99.9),
        "max_us": r.latencies_us.last().copied().unwrap_or(0),
    })
}

fn write_results(prefix: &str, summary: &serde_json::Value, r: &Recorder, samples: &[String]) {
    std::fs::write(format!("{prefix}.json"), summary.to_string()).expect("write summary");
    let mut csv = String::from("t_ms,ok,failed\n");
    for (b, (o, f)) in &r.buckets {
        csv.push_str(&format!("{},{o},{f}\n", b * 100));
    }
    std::fs::write(format!("{prefix}.requests.csv"), csv).expect("write requests csv");
    let mut csv = String::from("t_ms,target,ok,failed\n");
    for (b, per) in &r.targets {
        for (t, (o, f)) in per {
            csv.push_str(&format!("{},{t},{o},{f}\n", b * 100));
        }
    }
    std::fs::write(format!("{prefix}.targets.csv"), csv).expect("write targets csv");
    if !samples.is_empty() {
        let mut csv = String::from("t_ms,ready,updated,desired,phase,status\n");
        for row in samples {
            csv.push_str(row);
            csv.push('\n');
        }
        std::fs::write(format!("{prefix}.samples.csv"), csv).expect("write samples csv");
    }
}
