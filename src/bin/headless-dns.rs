//! The `headless-dns` binary: flags in, library call, wait for a signal, graceful stop.

use std::io::IsTerminal;

use anyhow::Context;
use clap::Parser;
use headless_dns::cli::Args;
use headless_dns::{Source, start};
use tracing_subscriber::EnvFilter;

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let config = match args.config() {
        Ok(config) => config,
        Err(error) => {
            // Same shape and exit code as clap's own errors.
            eprintln!("error: {error}\n\nFor more information, try '--help'.");
            std::process::exit(2);
        }
    };
    let filter = EnvFilter::try_new(&args.log)
        .with_context(|| format!("--log {:?}: not a level or tracing filter", args.log))?;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads())
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let server = start(config, Source::Manifests(args.manifests.clone())).await?;
        wait_for_signal().await?;
        tracing::info!("shutting down");
        server.shutdown().await;
        Ok(())
    })
}

/// SIGTERM (Kubernetes stopping the pod) or SIGINT (Ctrl-C).
async fn wait_for_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;
    tokio::select! {
        _ = term.recv() => {}
        result = tokio::signal::ctrl_c() => result.context("cannot watch SIGINT")?,
    }
    Ok(())
}
