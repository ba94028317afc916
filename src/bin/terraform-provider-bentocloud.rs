//! The `bentocloud` Terraform provider binary: a thin main around `bentocloud::provider`.
//!
//! Order matters here, and each step works around a measured tf-provider 0.2.2 behaviour:
//! 1. `RUST_BACKTRACE` / `RUST_LIB_BACKTRACE` are removed, or every diagnostic would carry a
//!    backtrace and Terraform 1.0.3 would print a crash banner.
//! 2. Logging is installed (hclog JSON on stderr; `PLUGIN_LOG_FILE` taken over, see `logging`).
//! 3. SIGINT is caught: Ctrl-C in a terminal reaches the whole process group, and a provider
//!    killed mid-apply loses state. The signal instead cancels long waits (Go providers ignore
//!    it; Terraform stops us with the StopProvider RPC).
//! 4. stdout is intercepted for the handshake so TCP_NODELAY can be set (`handshake`).

use bentocloud::provider::BentoCloudProvider;

/// go-plugin's magic cookie for Terraform providers.
const MAGIC_COOKIE_KEY: &str = "TF_PLUGIN_MAGIC_COOKIE";
const MAGIC_COOKIE_VALUE: &str = "d602bf8f470bc67ca7faa0386276bbdd4330efaf76d1a219cb4d6991ca9872b2";

fn main() {
    std::env::remove_var("RUST_BACKTRACE");
    std::env::remove_var("RUST_LIB_BACKTRACE");

    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--version" || a == "-v") {
        eprintln!(
            "terraform-provider-bentocloud {}",
            env!("CARGO_PKG_VERSION")
        );
        return;
    }
    if std::env::var(MAGIC_COOKIE_KEY).as_deref() != Ok(MAGIC_COOKIE_VALUE) {
        eprintln!(
            "This binary is a plugin for Terraform (provider bentocloud/bentocloud {}).\n\
             It is not meant to be run directly: install it where Terraform finds providers\n\
             and run `terraform init`. See the README.",
            env!("CARGO_PKG_VERSION")
        );
        std::process::exit(1);
    }

    bentocloud::logging::init();

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!("cannot start the async runtime: {e}");
            std::process::exit(1);
        }
    };

    let code = runtime.block_on(async {
        let provider = BentoCloudProvider::new();
        let cancel = provider.cancellation();
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt()) {
            Ok(mut sigint) => {
                tokio::spawn(async move {
                    while sigint.recv().await.is_some() {
                        tracing::warn!(
                            "interrupt received: stopping rollout waits; rollouts continue server-side"
                        );
                        cancel.cancel();
                    }
                });
            }
            Err(e) => tracing::warn!("cannot catch SIGINT ({e}); Ctrl-C will kill the provider"),
        }
        bentocloud::handshake::install();
        match tf_provider::serve("bentocloud", provider).await {
            Ok(()) => 0,
            Err(e) => {
                tracing::error!("provider server stopped: {e}");
                1
            }
        }
    });
    std::process::exit(code);
}
