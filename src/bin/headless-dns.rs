//! The `headless-dns` binary: flags in, library call, wait for a signal, graceful stop.

use std::io::IsTerminal;

use anyhow::Context;
use clap::Parser;
use headless_dns::cli::{Args, SourceArgs};
use headless_dns::logging::{self, RateLimit};
use headless_dns::source::kubernetes;
use headless_dns::{KubernetesSource, Source, start};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer as _};

fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            // The message and every cause, on one line: "cannot listen on ...: Address in use".
            eprintln!("error: {error:#}");
            // What the flags got wrong exits 2, as clap's own errors do.
            let bad_flag = matches!(
                error.downcast_ref::<headless_dns::Error>(),
                Some(
                    headless_dns::Error::Config(_)
                        | headless_dns::Error::Certificate(_)
                        | headless_dns::Error::LabelSelector(_)
                )
            );
            std::process::ExitCode::from(if bad_flag { 2 } else { 1 })
        }
    }
}

fn run() -> anyhow::Result<()> {
    let args = Args::parse();
    let config = match args.config() {
        Ok(config) => config,
        Err(error) => {
            // Same shape and exit code as clap's own errors.
            let error = anyhow::Error::new(error);
            eprintln!("error: {error:#}\n\nFor more information, try '--help'.");
            std::process::exit(2);
        }
    };
    let filter = EnvFilter::try_new(&args.log)
        .with_context(|| format!("--log {:?}: not a level or tracing filter", args.log))?;
    // Lines written per misbehaving connection are rate-limited (`logging`).
    let rate_limit = RateLimit::new();
    let output = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_filter(rate_limit.clone());
    tracing_subscriber::registry()
        .with(filter)
        .with(output)
        .init();

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads())
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        // First, so that a SIGTERM while the client or the sockets are set up is not lost
        // (as PID 1 in a container, the process would otherwise ignore it).
        let mut signals = Signals::new()?;
        tokio::spawn(async move {
            let mut every = tokio::time::interval(logging::WINDOW);
            loop {
                every.tick().await;
                rate_limit.report();
            }
        });
        let setup = async {
            let source = match args.source() {
                SourceArgs::Manifests(path) => Source::Manifests(path),
                SourceArgs::Kubernetes {
                    kubeconfig,
                    context,
                    namespaces,
                    label_selector,
                    endpoints_api,
                } => {
                    let client =
                        kubernetes::client(kubeconfig.as_deref(), context.as_deref()).await?;
                    let mut source = KubernetesSource::new(client)
                        .namespaces(namespaces)
                        .endpoints_api(endpoints_api);
                    if let Some(selector) = label_selector {
                        source = source.label_selector(selector);
                    }
                    Source::Kubernetes(source)
                }
            };
            anyhow::Ok(start(config, source).await?)
        };
        // A signal during a long start (a large manifests folder) stops it there.
        let server = tokio::select! {
            server = setup => server?,
            _ = signals.next() => {
                tracing::info!("signal while starting; stopping");
                return Ok(());
            }
        };
        signals.next().await;
        tracing::info!("shutting down");
        // A second signal during the grace period stops at once.
        tokio::select! {
            _ = server.shutdown_after(args.shutdown_grace) => {}
            _ = signals.next() => tracing::info!("second signal: stopping now"),
        }
        Ok(())
    })
}

/// SIGTERM (Kubernetes stopping the pod) and SIGINT (Ctrl-C).
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> anyhow::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Self {
            term: signal(SignalKind::terminate()).context("cannot watch SIGTERM")?,
            int: signal(SignalKind::interrupt()).context("cannot watch SIGINT")?,
        })
    }

    async fn next(&mut self) {
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
        }
    }
}
