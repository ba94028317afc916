//! `bentocloud-local`: command line of the local BentoCloud control plane (serve, register
//! bentos, add organisation tokens). All logic lives in the `bentocloud_local` library.

use std::path::PathBuf;

use bentocloud_local::faults::{FaultConfig, FaultKind, FaultRule, PhaseSpec};
use bentocloud_local::{Config, PlatformConfig, RegisterBento, TlsFiles};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "bentocloud-local",
    version,
    about = "A local BentoCloud control plane"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Serve the BentoCloud API from a data directory.
    Serve(ServeArgs),
    /// Manage bentos of a running server.
    Bentos {
        #[command(subcommand)]
        cmd: BentosCmd,
    },
    /// Manage API tokens in a data directory.
    Tokens {
        #[command(subcommand)]
        cmd: TokensCmd,
    },
}

#[derive(clap::Args)]
// A repeated flag keeps its last value (so a wrapper can override e.g. `--listen`).
#[command(args_override_self = true)]
struct ServeArgs {
    /// Address to listen on (port 0 picks a free port; the real address is printed and
    /// written to DIR/endpoint).
    #[arg(long, default_value = "127.0.0.1:4780")]
    listen: String,
    /// Directory holding state.db, endpoint and token.
    #[arg(long)]
    data_dir: PathBuf,
    /// Main API token (default: generated on first start and kept in the data dir).
    #[arg(long, env = "BENTOCLOUD_LOCAL_API_TOKEN")]
    api_token: Option<String>,
    /// Register an unknown repo:version on first sight (create, update, bento lookup)
    /// instead of answering 404 like the real API. Off by default: for demos that deploy
    /// bentos nobody pushed; otherwise register them with `bentos add`.
    #[arg(long)]
    auto_register_bentos: bool,
    /// Unknown bentos are a 404, like the real API: the default, so this does nothing (kept
    /// so that scripts written when auto-registering was the default still start).
    #[arg(long, hide = true, conflicts_with = "auto_register_bentos")]
    strict_bentos: bool,
    /// JSON or YAML file defining clusters, instance types and timings.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Inject faults on the API routes (repeatable; the first matching rule decides), e.g.
    /// "on=POST:/api/v2/deployments rate=0.3 kinds=500,502,503,429,latency,drop phase=both".
    /// Keys: on (all | METHOD | PREFIX | METHOD:PREFIX), rate (0..1), kinds (5xx codes, 429,
    /// latency, drop, abort), phase (before | after | both), latency_ms, retry_after, skip,
    /// limit. Off by default; also settable at run time with PUT /api/local/v1/faults.
    #[arg(long = "fault", value_name = "RULE", action = clap::ArgAction::Append)]
    faults: Vec<String>,
    /// Seed of the fault decisions (deterministic in request order); default random.
    #[arg(long)]
    fault_seed: Option<u64>,
    /// Abort the process (like kill -9) after this many API requests were answered: the
    /// request after them is processed and committed, then the process dies without answering
    /// (checked before the --fault rules). The process id is in DIR/pid.
    #[arg(long, value_name = "N")]
    exit_after_requests: Option<u64>,
    /// Serve HTTPS with this PEM certificate (chain) instead of plain HTTP; needs --tls-key.
    /// DIR/endpoint and every deployment URL are then https://. Clients must trust its CA
    /// (for the provider: SSL_CERT_FILE=ca.pem).
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
}

#[derive(Subcommand)]
enum BentosCmd {
    /// Register a bento (repo:version) and how it behaves when deployed.
    Add(AddBentoArgs),
}

#[derive(clap::Args)]
struct AddBentoArgs {
    /// Bento tag, repo:version.
    tag: String,
    /// Server URL (e.g. the content of DIR/endpoint).
    #[arg(long, env = "BENTO_CLOUD_API_ENDPOINT")]
    endpoint: String,
    /// API token (e.g. the content of DIR/token).
    #[arg(long, env = "BENTO_CLOUD_API_KEY")]
    api_token: String,
    /// Seconds a replica takes to become ready.
    #[arg(long, default_value_t = 0.5)]
    startup_seconds: f64,
    /// Replicas never become ready (rollouts of this bento fail).
    #[arg(long)]
    unready: bool,
    /// Replicas crash this many seconds after they became ready.
    #[arg(long)]
    crash_after_seconds: Option<f64>,
    /// Request paths (exact, comma-separated, e.g. /predict) the replicas answer with HTTP 500
    /// while passing their probes and answering every other path.
    #[arg(long, value_delimiter = ',')]
    fail_paths: Vec<String>,
    /// Seconds the image build takes (status image-building meanwhile).
    #[arg(long, default_value_t = 0.0)]
    image_build_seconds: f64,
    /// The image build fails (status image-build-failed).
    #[arg(long)]
    image_build_fails: bool,
    /// Service names, comma-separated; the first is the entry service (default: apiserver).
    #[arg(long, value_delimiter = ',')]
    services: Vec<String>,
}

#[derive(Subcommand)]
enum TokensCmd {
    /// Create a token for an organisation (created if missing); prints the token.
    Add {
        /// Data directory of the server.
        #[arg(long)]
        data_dir: PathBuf,
        /// Organisation name.
        #[arg(long)]
        org: String,
    },
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}

async fn serve(a: ServeArgs) -> Result<(), String> {
    let platform = match &a.config {
        Some(p) => PlatformConfig::from_file(p)?,
        None => PlatformConfig::default(),
    };
    if a.strict_bentos {
        tracing::info!(
            "--strict-bentos is the default now (unknown bentos are a 404); it does nothing"
        );
    }
    let cfg = Config {
        data_dir: a.data_dir,
        api_token: a.api_token,
        auto_register_bentos: a.auto_register_bentos,
        platform,
        tls: match (a.tls_cert, a.tls_key) {
            (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
            _ => None,
        },
        clock: bentocloud_local::Clock::Real,
    };
    let listener = tokio::net::TcpListener::bind(&a.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", a.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let (state, s) = bentocloud_local::prepare(&cfg, addr)?;
    let faults = fault_config(&a.faults, a.fault_seed, a.exit_after_requests)?;
    if !faults.is_off() {
        println!("fault injection on: {} rule(s)", faults.rules.len());
    }
    state.faults().set(faults)?;
    // For tools that kill the server (e.g. kill -9 in tests) without knowing how it started.
    let pid_file = cfg.data_dir.join("pid");
    std::fs::write(&pid_file, std::process::id().to_string())
        .map_err(|e| format!("cannot write {}: {e}", pid_file.display()))?;
    println!("bentocloud-local listening on {}", s.endpoint);
    println!("organization: {}", s.organization);
    println!("api token:    {}", s.token);
    println!(
        "web UI:       {}",
        bentocloud_local::ui::url(&s.endpoint, &s.token)
    );
    println!(
        "(also written to {}/endpoint and {}/token)",
        cfg.data_dir.display(),
        cfg.data_dir.display()
    );
    println!();
    println!("Terraform provider:");
    println!("  export BENTO_CLOUD_API_ENDPOINT={}", s.endpoint);
    println!("  export BENTO_CLOUD_API_KEY={}", s.token);
    if cfg.tls.is_some() {
        println!("  export SSL_CERT_FILE=<the PEM file of the CA that signed --tls-cert>");
    }
    println!("bentoml CLI:");
    println!(
        "  bentoml cloud login --endpoint {} --api-token {}",
        s.endpoint, s.token
    );
    bentocloud_local::run(listener, state, shutdown_signal()).await?;
    println!("bentocloud-local stopped");
    Ok(())
}

fn fault_config(
    rules: &[String],
    seed: Option<u64>,
    exit_after: Option<u64>,
) -> Result<FaultConfig, String> {
    let mut cfg = FaultConfig {
        seed,
        rules: Vec::new(),
    };
    if let Some(n) = exit_after {
        cfg.rules.push(FaultRule {
            faults: vec![FaultKind::Abort],
            phase: PhaseSpec::After,
            skip: n,
            ..FaultRule::default()
        });
    }
    for r in rules {
        cfg.rules.push(FaultRule::parse(r)?);
    }
    cfg.validate()?;
    Ok(cfg)
}

async fn add_bento(a: AddBentoArgs) -> Result<(), String> {
    let body = RegisterBento {
        tag: a.tag,
        startup_seconds: a.startup_seconds,
        unready: a.unready,
        crash_after_seconds: a.crash_after_seconds,
        fail_paths: a.fail_paths,
        image_build_seconds: a.image_build_seconds,
        image_build_fails: a.image_build_fails,
        services: a.services,
    };
    let url = format!("{}/api/local/v1/bentos", a.endpoint.trim_end_matches('/'));
    let resp = reqwest::Client::new()
        .post(&url)
        .header("X-YATAI-API-TOKEN", a.api_token)
        .json(&body)
        .send()
        .await
        .map_err(|e| format!("cannot reach {url}: {e}"))?;
    let status = resp.status();
    let text = resp.text().await.unwrap_or_default();
    if !status.is_success() {
        return Err(format!(
            "registering the bento failed: HTTP {status}: {text}"
        ));
    }
    println!("registered bento {}", body.tag);
    Ok(())
}

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(tracing::Level::INFO)
        .init();
    let cli = Cli::parse();
    let res = match cli.cmd {
        Cmd::Serve(a) => serve(a).await,
        Cmd::Bentos {
            cmd: BentosCmd::Add(a),
        } => add_bento(a).await,
        Cmd::Tokens {
            cmd: TokensCmd::Add { data_dir, org },
        } => bentocloud_local::add_org_token(&data_dir, &org).map(|t| println!("{t}")),
    };
    if let Err(e) = res {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serve_args(extra: &[&str]) -> Result<ServeArgs, clap::Error> {
        let args = ["bentocloud-local", "serve", "--data-dir", "d"];
        match Cli::try_parse_from(args.iter().chain(extra))?.cmd {
            Cmd::Serve(a) => Ok(a),
            _ => unreachable!("serve parses as serve"),
        }
    }

    #[test]
    fn unknown_bentos_are_refused_unless_auto_registering_is_asked_for() {
        let a = serve_args(&[]).expect("parse");
        assert!(
            !a.auto_register_bentos,
            "strict by default, like BentoCloud"
        );
        assert!(
            serve_args(&["--auto-register-bentos"])
                .expect("parse")
                .auto_register_bentos
        );
        // The old flag still starts the server, and changes nothing.
        let a = serve_args(&["--strict-bentos"]).expect("parse");
        assert!(!a.auto_register_bentos);
        assert!(serve_args(&["--strict-bentos", "--auto-register-bentos"]).is_err());
    }
}
