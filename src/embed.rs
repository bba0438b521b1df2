//! The embedding API: build a server from a [`Config`] and a [`Source`], run it on the
//! caller's tokio runtime, and get a [`ServerHandle`] that reports the bound addresses and
//! stops it gracefully. The `headless-dns` binary is this plus flag parsing.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinSet;
use tracing::Instrument;

use crate::config::Config;
use crate::controller::persist::SnapshotSink;
use crate::controller::records::RecordOptions;
use crate::controller::zone_records::ZoneSettings;
use crate::controller::{ClusterSetSettings, Controller};
use crate::dns::tsig::TsigKey;
use crate::error::Error;
use crate::metrics::Metrics;
use crate::model::Change;
use crate::serve::answer::{Responder, ResponderSettings};
use crate::serve::certs::{self, Certificate};
use crate::serve::notify::Notifier;
use crate::serve::probes::{self, HttpState};
use crate::serve::transfer::Transfers;
use crate::serve::zones::{self, ZoneTable};
use crate::serve::{self, Encrypted, Limits, TcpSettings, UdpWorkers, tls};
use crate::source::convert::ConvertOptions;
use crate::source::feed::{Feed, FeedSource};
use crate::source::kubernetes::{self, KubernetesSource};
use crate::source::lease::Election;
use crate::source::manifests::{self, ManifestSet};
use crate::store::Store;
use crate::store::compile::CompileContext;

/// Where the records come from.
pub enum Source {
    /// A manifest file or folder, reloaded when it changes.
    Manifests(PathBuf),
    /// Objects pushed by the embedding program through a [`Feed`].
    Feed(FeedSource),
    /// The Kubernetes API, watched.
    Kubernetes(KubernetesSource),
}

impl Feed {
    /// A feed and the source to start a server with.
    pub fn new() -> (Feed, Source) {
        let (feed, source) = Feed::channel();
        (feed, Source::Feed(source))
    }
}

/// The parts of a server before any socket or task: the store, its one writer and its
/// reader, wired for one configuration. `start` runs them; benchmarks and fuzz targets use
/// them directly.
pub struct Core {
    /// The name index both sides share.
    pub store: Arc<Store>,
    /// Its one writer: feed it changes.
    pub controller: Controller,
    /// Its reader: turns query bytes into response bytes.
    pub responder: Responder,
    pub metrics: Arc<Metrics>,
    /// The zones served, and the TSIG keys (NOTIFYs are signed with the first).
    pub zones: Arc<ZoneTable>,
    pub keys: Arc<[TsigKey]>,
    /// With `--transfer-lease`: whether this replica is the transfer primary, set by the
    /// election; transfers and NOTIFY follow it.
    pub transfer_role: Option<watch::Sender<bool>>,
}

impl Core {
    pub fn new(config: &Config) -> Self {
        let reverse_zones = zones::reverse_zones(&config.reverse_zones);
        let mut zones = ZoneTable::new(&config.zones, &reverse_zones);
        if let Some(clusterset) = &config.clusterset_zone {
            zones = zones.with_clusterset(clusterset);
        }
        let zones = Arc::new(zones);
        let store = Arc::new(Store::new());
        let clusterset_zone: Box<[u8]> = zones
            .clusterset()
            .map_or_else(|| Box::from([0u8]), |z| z.wire.clone());
        let compile = CompileContext {
            ttl: config.ttl,
            forward_zones: zones.forward_zones(),
            primary_zone: zones.primary().into(),
            clusterset_zone: clusterset_zone.clone(),
            slot_negative_ttl: config.slot_negative_ttl,
        };
        let options = RecordOptions {
            ordinal_slots: config.ordinal_slots,
            publish_unready_pod_names: config.publish_unready_pod_names,
        };
        let metrics = Arc::new(Metrics::new());
        let zone_settings = ZoneSettings {
            negative_ttl: config.negative_ttl,
            ns_addresses: config.ns_addresses.clone(),
            // The trees themselves have their apex whatever the configuration.
            reverse_apexes: reverse_zones
                .into_iter()
                .filter(|(_, apex)| !apex.is_apex())
                .collect(),
            transfer_zones: zones.zones().to_vec(),
            // The journal serves IXFR: kept only when transfers are.
            journal_bytes: if config.transfer_allow.is_empty() {
                0
            } else {
                config.ixfr_journal_size
            },
        };
        let clusterset = config.clusterset_zone.as_ref().map(|_| ClusterSetSettings {
            compile: CompileContext {
                forward_zones: vec![clusterset_zone],
                ..compile.clone()
            },
            cluster_id: config.cluster_id.as_deref().map(Arc::from),
        });
        let mut controller = Controller::new(
            store.clone(),
            compile,
            zone_settings,
            options,
            metrics.clone(),
        );
        if let Some(clusterset) = clusterset {
            controller.serve_clusterset(clusterset);
        }
        // Validated with the configuration: a key that does not build is left out.
        let keys: Arc<[TsigKey]> = config
            .tsig_keys
            .iter()
            .filter_map(|spec| spec.key().ok())
            .collect();
        // Not the primary until elected.
        let transfer_role = config
            .transfer_lease
            .as_ref()
            .map(|_| watch::channel(false).0);
        let mut responder = Responder::new(
            store.clone(),
            zones.clone(),
            ResponderSettings {
                max_udp_size: config.max_udp_size,
                negative_ttl: config.negative_ttl,
                udp_truncation: config.udp_truncation,
            },
        )
        .with_keys(keys.clone());
        if !config.transfer_allow.is_empty() {
            responder = responder.with_transfers(Arc::new(Transfers {
                store: store.clone(),
                zones: zones.clone(),
                allow: config.transfer_allow.clone(),
                keys: keys.clone(),
                metrics: metrics.clone(),
                slots: Arc::new(Semaphore::new(config.max_transfers)),
                primary: transfer_role.as_ref().map(watch::Sender::subscribe),
            }));
        }
        Self {
            store,
            controller,
            responder,
            metrics,
            zones,
            keys,
            transfer_role,
        }
    }
}

/// A running server.
pub struct ServerHandle {
    addrs: Vec<SocketAddr>,
    tls_addrs: Vec<SocketAddr>,
    https_addrs: Vec<SocketAddr>,
    http_addr: Option<SocketAddr>,
    metrics: Arc<Metrics>,
    draining: Arc<AtomicBool>,
    /// Stopped when the handle is dropped, even without `shutdown`.
    udp: UdpWorkers,
    store: Arc<Store>,
    shutdown: watch::Sender<bool>,
    tasks: JoinSet<()>,
    /// The controller's thread; it ends when `shutdown` is sent or dropped.
    controller: Option<std::thread::JoinHandle<()>>,
    /// The `--snapshot` writer's thread; it ends after the controller's, with the last
    /// state written.
    snapshot_writer: Option<std::thread::JoinHandle<()>>,
}

impl ServerHandle {
    /// The bound addresses, one per `--listen`, each serving UDP and TCP (port 0 resolved).
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// The bound addresses of DNS over TLS, one per `Config::tls_listen`.
    pub fn tls_addrs(&self) -> &[SocketAddr] {
        &self.tls_addrs
    }

    /// The bound addresses of DNS over HTTPS, one per `Config::https_listen`.
    pub fn https_addrs(&self) -> &[SocketAddr] {
        &self.https_addrs
    }

    /// Where `/healthz`, `/readyz` and `/metrics` are served, if `Config::http` is set.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http_addr
    }

    /// Whether the first complete set of records is published (what `/readyz` says, short
    /// of draining).
    pub fn is_ready(&self) -> bool {
        self.store.is_ready()
    }

    /// The zones' SOA serial now (it follows the clock, and moves with every change).
    pub fn serial(&self) -> u32 {
        self.store.serial()
    }

    /// The Prometheus text `/metrics` serves.
    pub fn metrics_text(&self) -> String {
        self.metrics.encode()
    }

    /// Lameduck, then stop: `/readyz` fails at once so Kubernetes takes this replica out of
    /// its Service, queries keep being answered for `grace`, then [`Self::shutdown`].
    pub async fn shutdown_after(self, grace: Duration) {
        if !grace.is_zero() {
            self.draining.store(true, Ordering::Relaxed);
            tracing::info!(
                grace_ms = grace.as_millis() as u64,
                "draining: /readyz fails, still answering"
            );
            tokio::time::sleep(grace).await;
        }
        self.shutdown().await;
    }

    /// Stops accepting, lets TCP connections finish the query they are on, and returns when
    /// every task has ended.
    pub async fn shutdown(mut self) {
        self.draining.store(true, Ordering::Relaxed);
        let _ = self.shutdown.send(true);
        self.udp.stop().await;
        while self.tasks.join_next().await.is_some() {}
        if let Some(controller) = self.controller.take() {
            let _ = tokio::task::spawn_blocking(move || controller.join()).await;
        }
        if let Some(writer) = self.snapshot_writer.take() {
            let _ = tokio::task::spawn_blocking(move || writer.join()).await;
        }
    }
}

/// Starts a server on the current tokio runtime.
///
/// With [`Source::Manifests`] the manifests are loaded before this returns, so an unreadable
/// path is an error here, and the server is ready at once.
///
/// ```
/// use headless_dns::{Config, Feed, start};
/// use k8s_openapi::api::core::v1::Service;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let config = Config {
///     listen: vec!["127.0.0.1:0".parse()?],
///     ..Config::default()
/// };
/// let (feed, source) = Feed::new();
/// let server = start(config, source).await?;
/// let service: Service = serde_json::from_value(serde_json::json!({
///     "metadata": {"name": "api", "namespace": "demo"},
///     "spec": {"clusterIP": "10.96.0.20"}
/// }))?;
/// feed.replace_all([service.into()])?;
/// println!("api.demo.svc.cluster.local is served on {:?}", server.local_addrs());
/// server.shutdown().await;
/// # Ok(())
/// # }
/// ```
pub async fn start(config: Config, source: Source) -> Result<ServerHandle, Error> {
    config.validate()?;
    let Core {
        store,
        mut controller,
        responder,
        metrics,
        zones,
        keys,
        transfer_role,
    } = Core::new(&config);
    let (shutdown, shutdown_rx) = watch::channel(false);
    let mut tasks = JoinSet::new();
    // A warm start: the saved state, served until the source has listed.
    let mut snapshot_writer = None;
    if let Some(path) = &config.snapshot {
        if let Some(saved) = crate::persist::load(path) {
            controller.load_snapshot(saved);
        }
        let (sink, thread) =
            crate::persist::spawn_writer(path.clone(), metrics.clone()).map_err(Error::Thread)?;
        controller.write_snapshots(SnapshotSink::new(sink, config.snapshot_interval));
        snapshot_writer = Some(thread);
    }

    if !config.notify.is_empty() {
        let (serials, watching) = watch::channel(store.serial());
        controller.notify_serials(serials);
        let notifier = Notifier {
            targets: config.notify.clone(),
            zones: zones.zones().to_vec(),
            store: store.clone(),
            key: keys.first().map(|k| Arc::new(k.clone())),
            metrics: metrics.clone(),
            random: ring::rand::SystemRandom::new(),
            primary: transfer_role.as_ref().map(watch::Sender::subscribe),
        };
        tasks.spawn(
            notifier
                .run(watching, shutdown_rx.clone())
                .instrument(tracing::info_span!("notify")),
        );
    }
    let convert_options = ConvertOptions {
        endpoint_pod_names: config.endpoint_pod_names,
        multicluster: config.clusterset_zone.is_some(),
    };
    if config.transfer_lease.is_some() && !matches!(source, Source::Kubernetes(_)) {
        return Err(Error::Config(crate::config::ConfigError::new(
            "--transfer-lease elects among replicas through the Kubernetes API: it needs the Kubernetes source, not --manifests",
        )));
    }
    let changes = match source {
        Source::Feed(feed) => {
            // Set once: a second server on the same feed converts as the first.
            let _ = feed.options.set(convert_options);
            feed.changes
        }
        Source::Kubernetes(source) => {
            source.check().map_err(Error::LabelSelector)?;
            let source = source.convert_options(convert_options);
            let (tx, rx) = mpsc::unbounded_channel();
            if let (Some(role), Some(lease)) = (transfer_role, config.lease_settings()) {
                let serial = store.clone();
                let election = Election {
                    client: source.client(),
                    settings: lease,
                    role,
                    serial: Box::new(move || serial.serial()),
                    changes: tx.clone(),
                };
                tasks.spawn(
                    election
                        .run(shutdown_rx.clone())
                        .instrument(tracing::info_span!("lease")),
                );
            }
            tasks.spawn(
                kubernetes::run(source, tx, metrics.clone(), shutdown_rx.clone())
                    .instrument(tracing::info_span!("kubernetes")),
            );
            rx
        }
        Source::Manifests(path) => {
            let span = tracing::info_span!("manifests", path = %path.display());
            // Watching first: an edit while the folder loads is seen.
            let files = span.in_scope(|| manifests::watch::FileEvents::watch(&path));
            let (manifests, objects) =
                span.in_scope(|| ManifestSet::load_with(path, convert_options))?;
            metrics.synced("manifests");
            let stats = controller.apply_timed(&mut vec![Change::ReplaceAll(objects).into()]);
            span.in_scope(|| {
                tracing::info!(
                    services = stats.services,
                    names = stats.names,
                    "manifests loaded"
                )
            });
            let (tx, rx) = mpsc::unbounded_channel();
            tasks.spawn(
                manifests::watch::run(
                    manifests,
                    files,
                    tx,
                    config.reload_interval,
                    metrics.clone(),
                    shutdown_rx.clone(),
                )
                .instrument(span),
            );
            rx
        }
    };

    let limits = Limits {
        max_udp_response: usize::from(config.max_udp_size),
        tcp: TcpSettings {
            idle_timeout: config.tcp_idle_timeout,
            handshake_timeout: config.tls_handshake_timeout,
            max_connections: config.max_tcp_connections,
            max_per_client: config.max_connections_per_client,
        },
    };
    let mut addrs = Vec::new();
    let mut listeners = Vec::new();
    let worker_cpus = config.worker_cpus()?;
    for addr in &config.listen {
        let listener = serve::bind(*addr, config.udp_workers, worker_cpus.as_deref())
            .await
            .map_err(|source| Error::Bind {
                addr: *addr,
                flag: "--listen",
                source,
            })?;
        let bound = listener.local_addr().map_err(|source| Error::Bind {
            addr: *addr,
            flag: "--listen",
            source,
        })?;
        addrs.push(bound);
        listeners.push(listener);
    }
    let mut udp = UdpWorkers::default();
    for (listener, addr) in listeners.into_iter().zip(&config.listen) {
        serve::spawn(
            listener,
            responder.clone(),
            limits,
            shutdown_rx.clone(),
            &mut tasks,
            &mut udp,
            &metrics,
        )
        .map_err(|source| Error::Bind {
            addr: *addr,
            flag: "--listen",
            source,
        })?;
    }
    let encrypted = spawn_encrypted(
        &config,
        &responder,
        limits.tcp,
        &shutdown_rx,
        &mut tasks,
        &metrics,
    )
    .await?;
    let draining = Arc::new(AtomicBool::new(false));
    let http_addr = match config.http {
        None => None,
        Some(addr) => {
            let bind_error = |source| Error::HttpBind { addr, source };
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(bind_error)?;
            let bound = listener.local_addr().map_err(bind_error)?;
            let state = HttpState {
                store: store.clone(),
                metrics: metrics.clone(),
                draining: draining.clone(),
            };
            tasks.spawn(probes::serve(listener, state, shutdown_rx.clone()));
            tracing::info!(addr = %bound, "serving /healthz, /readyz, /metrics");
            Some(bound)
        }
    };
    // The controller gets a thread of its own: a relist of a large cluster is seconds of
    // CPU, which on the runtime would hold up TCP answers, the HTTP probes and the
    // watches themselves.
    let controller = std::thread::Builder::new()
        .name("controller".into())
        .spawn(move || {
            match tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build()
            {
                Ok(runtime) => runtime.block_on(controller.run(changes, shutdown_rx)),
                Err(error) => tracing::error!(%error, "cannot start the controller's runtime"),
            }
        })
        .map_err(Error::Thread)?;
    tracing::info!(addrs = ?addrs, "serving DNS over UDP and TCP");
    Ok(ServerHandle {
        addrs,
        tls_addrs: encrypted.tls,
        https_addrs: encrypted.https,
        http_addr,
        metrics,
        draining,
        udp,
        store,
        shutdown,
        tasks,
        controller: Some(controller),
        snapshot_writer,
    })
}

/// The bound addresses of the encrypted transports.
#[derive(Default)]
struct EncryptedAddrs {
    tls: Vec<SocketAddr>,
    https: Vec<SocketAddr>,
}

/// Loads the certificate, starts following its files, and binds and starts DNS over TLS
/// and over HTTPS on their addresses; nothing without them.
async fn spawn_encrypted(
    config: &Config,
    responder: &Responder,
    settings: TcpSettings,
    shutdown: &watch::Receiver<bool>,
    tasks: &mut JoinSet<()>,
    metrics: &Arc<Metrics>,
) -> Result<EncryptedAddrs, Error> {
    let mut bound = EncryptedAddrs::default();
    let Some(files) = &config.tls_certificate else {
        return Ok(bound);
    };
    if config.tls_listen.is_empty() && config.https_listen.is_empty() {
        return Ok(bound);
    }
    let provider = certs::provider();
    let certificate = Arc::new(Certificate::new(certs::load(files, &provider)?));
    tasks.spawn(
        certs::follow(
            files.clone(),
            certificate.clone(),
            provider.clone(),
            config.reload_interval,
            shutdown.clone(),
        )
        .instrument(tracing::info_span!("certificate", path = %files.chain.display())),
    );
    for (transport, addrs, out) in [
        (Encrypted::Tls, &config.tls_listen, &mut bound.tls),
        (Encrypted::Https, &config.https_listen, &mut bound.https),
    ] {
        if addrs.is_empty() {
            continue;
        }
        let acceptor = tls::acceptor(certificate.clone(), provider.clone(), transport.alpn())
            .map_err(Error::Tls)?;
        for addr in addrs {
            let bind_error = |source| Error::Bind {
                addr: *addr,
                flag: transport.flag(),
                source,
            };
            let listener = serve::tcp::listen(*addr).map_err(bind_error)?;
            let addr_bound = listener.local_addr().map_err(bind_error)?;
            tasks.spawn(serve::serve_encrypted(
                transport,
                listener,
                acceptor.clone(),
                responder.clone(),
                settings,
                shutdown.clone(),
                metrics,
            ));
            out.push(addr_bound);
        }
        let name = match transport {
            Encrypted::Tls => "serving DNS over TLS",
            Encrypted::Https => "serving DNS over HTTPS",
        };
        tracing::info!(addrs = ?out, "{name}");
    }
    Ok(bound)
}
