//! `bentocloud-bench`: the measuring parts of `scripts/bench.sh` that need precise timing.
//!
//! - `handshake --bin PATH [--runs N]`: starts a Terraform provider binary the way Terraform
//!   does (magic cookie, protocols "5,6" offered) and times the start until its first stdout
//!   line (the go-plugin handshake line); prints one JSON object with every run in milliseconds.
//! - `load --url URL --rate R --workers W --duration-s S --out PREFIX [--sample-url U --token T]`:
//!   paced HTTP GETs at `R` requests/s over `W` keep-alive connections for `S` seconds; writes
//!   `PREFIX.json` (counts, failures, latency percentiles in microseconds), `PREFIX.requests.csv`
//!   (one row per 100 ms bucket: ok, failed) and, with `--sample-url`, `PREFIX.samples.csv`
//!   (the deployment's rollout every 50 ms: ready and updated replicas, phase).
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
}

async fn load(args: &[String]) {
    let url = need(args, "--url");
    loopback_only(&url);
    let rate: f64 = num(args, "--rate", 400.0);
    let workers: usize = num(args, "--workers", 4);
    let duration = Duration::from_secs_f64(num::<f64>(args, "--duration-s", 10.0).min(120.0));
    let prefix = need(args, "--out");
    let sample_url = arg(args, "--sample-url");
    let token = arg(args, "--token").unwrap_or_default();
    if let Some(u) = &sample_url {
        loopback_only(u);
    }

    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(workers * 2)
        .timeout(Duration::from_secs(5))
        .tcp_nodelay(true)
        .build()
        .expect("client");
    let rec = Arc::new(Mutex::new(Recorder::default()));
    let start = Instant::now();
    let start_unix_ms = unix_ms();
    let interval = workers as f64 / rate;

    let mut tasks = Vec::new();
    for w in 0..workers {
        let (client, rec, url) = (client.clone(), rec.clone(), url.clone());
        tasks.push(tokio::spawn(async move {
            let mut k: u64 = 0;
            loop {
                let due =
                    Duration::from_secs_f64(interval * (k as f64 + w as f64 / workers as f64));
                if due >= duration {
                    break;
                }
                k += 1;
                let now = start.elapsed();
                if due > now {
                    tokio::time::sleep(due - now).await;
                }
                let t0 = Instant::now();
                let res = client.get(&url).send().await;
                let res = match res {
                    Ok(r) => {
                        let st = r.status();
                        match r.bytes().await {
                            Ok(_) if st.is_success() => Ok(st.as_u16()),
                            Ok(_) => Err(format!("HTTP {st}")),
                            Err(e) => Err(format!("body: {e}")),
                        }
                    }
                    Err(e) => Err(format!("{e}")),
                };
                let us = t0.elapsed().as_micros() as u64;
                let bucket = (t0 - start).as_millis() as u64 / 100;
                let mut r = rec.lock().expect("recorder");
                let b = r.buckets.entry(bucket).or_default();
                match res {
                    Ok(code) => {
                        b.0 += 1;
                        r.latencies_us.push(us);
                        *r.statuses.entry(code.to_string()).or_default() += 1;
                    }
                    Err(e) => {
                        b.1 += 1;
                        r.failures += 1;
                        *r.statuses.entry("error".into()).or_default() += 1;
                        if r.first_errors.len() < 5 {
                            r.first_errors.push(e);
                        }
                    }
                }
            }
        }));
    }

    let samples = Arc::new(Mutex::new(Vec::<String>::new()));
    let sampler = sample_url.map(|u| {
        let (client, samples) = (client.clone(), samples.clone());
        tokio::spawn(async move {
            while start.elapsed() < duration {
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
        })
    });

    for t in tasks {
        let _ = t.await;
    }
    if let Some(s) = sampler {
        let _ = s.await;
    }
    let elapsed = start.elapsed().as_secs_f64();

    let mut r = rec.lock().expect("recorder");
    r.latencies_us.sort_unstable();
    let pct = |p: f64| -> u64 {
        let l = &r.latencies_us;
        if l.is_empty() {
            return 0;
        }
        let i = ((p / 100.0) * (l.len() as f64 - 1.0)).round() as usize;
        l[i.min(l.len() - 1)]
    };
    let ok = r.latencies_us.len() as u64;
    let summary = serde_json::json!({
        "url": url,
        "start_unix_ms": start_unix_ms as u64,
        "elapsed_s": elapsed,
        "rate_target": rate,
        "workers": workers,
        "requests": ok + r.failures,
        "ok": ok,
        "failures": r.failures,
        "statuses": r.statuses,
        "first_errors": r.first_errors,
        "p50_us": pct(50.0),
        "p90_us": pct(90.0),
        "p99_us": pct(99.0),
        "p999_us": pct(99.9),
        "max_us": r.latencies_us.last().copied().unwrap_or(0),
    });
    std::fs::write(format!("{prefix}.json"), summary.to_string()).expect("write summary");
    let mut csv = String::from("t_ms,ok,failed\n");
    for (b, (o, f)) in &r.buckets {
        csv.push_str(&format!("{},{o},{f}\n", b * 100));
    }
    std::fs::write(format!("{prefix}.requests.csv"), csv).expect("write requests csv");
    let s = samples.lock().expect("samples");
    if !s.is_empty() {
        let mut csv = String::from("t_ms,ready,updated,desired,phase,status\n");
        for row in s.iter() {
            csv.push_str(row);
            csv.push('\n');
        }
        std::fs::write(format!("{prefix}.samples.csv"), csv).expect("write samples csv");
    }
    println!("{summary}");
}
