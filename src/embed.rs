//! The embedding API: build a server from a [`Config`] and a [`Source`], run it on the
//! caller's tokio runtime, and get a [`ServerHandle`] that reports the bound addresses and
//! stops it gracefully. The `headless-dns` binary is this plus flag parsing.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{Endpoints, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use crate::answer::{Responder, ResponderSettings};
use crate::compile::CompileContext;
use crate::config::Config;
use crate::controller::{Change, Controller, Timed};
use crate::error::Error;
use crate::http::{self, HttpState};
use crate::kube_source::{self, KubernetesSource};
use crate::manifests::ManifestSet;
use crate::metrics::Metrics;
use crate::model::{Kind, Object, ObjectKey};
use crate::records::RecordOptions;
use crate::server::{self, Limits, TcpSettings, UdpWorkers};
use crate::store::Store;
use crate::zones::ZoneTable;
use crate::{convert, manifest_watch};

/// Where the records come from.
pub enum Source {
    /// A manifest file or folder, reloaded when it changes.
    Manifests(PathBuf),
    /// Objects pushed by the embedding program through a [`Feed`].
    Feed(FeedSource),
    /// The Kubernetes API, watched.
    Kubernetes(KubernetesSource),
}

/// The receiving end of a [`Feed`]; hand it to [`start`] as [`Source::Feed`].
pub struct FeedSource {
    changes: mpsc::UnboundedReceiver<Timed>,
}

/// Pushes Kubernetes objects into a running server. Cheap to clone.
///
/// Answers are SERVFAIL until the first [`Feed::replace_all`] or [`Feed::synced`], so that
/// a half-fed server never claims a name does not exist.
#[derive(Clone)]
pub struct Feed {
    changes: mpsc::UnboundedSender<Timed>,
}

/// An object a [`Feed`] accepts.
pub enum Manifest {
    Service(Box<Service>),
    EndpointSlice(Box<EndpointSlice>),
    Endpoints(Box<Endpoints>),
    StatefulSet(Box<StatefulSet>),
}

impl From<Service> for Manifest {
    fn from(o: Service) -> Self {
        Manifest::Service(Box::new(o))
    }
}
impl From<EndpointSlice> for Manifest {
    fn from(o: EndpointSlice) -> Self {
        Manifest::EndpointSlice(Box::new(o))
    }
}
impl From<Endpoints> for Manifest {
    fn from(o: Endpoints) -> Self {
        Manifest::Endpoints(Box::new(o))
    }
}
impl From<StatefulSet> for Manifest {
    fn from(o: StatefulSet) -> Self {
        Manifest::StatefulSet(Box::new(o))
    }
}

impl Manifest {
    pub(crate) fn kind(&self) -> Kind {
        match self {
            Manifest::Service(_) => Kind::Service,
            Manifest::EndpointSlice(_) => Kind::EndpointSlice,
            Manifest::Endpoints(_) => Kind::Endpoints,
            Manifest::StatefulSet(_) => Kind::StatefulSet,
        }
    }

    fn metadata(&self) -> &ObjectMeta {
        match self {
            Manifest::Service(o) => &o.metadata,
            Manifest::EndpointSlice(o) => &o.metadata,
            Manifest::Endpoints(o) => &o.metadata,
            Manifest::StatefulSet(o) => &o.metadata,
        }
    }

    fn invalid(&self, reason: String) -> Error {
        let meta = self.metadata();
        Error::InvalidObject {
            kind: self.kind().as_str(),
            name: format!(
                "{}/{}",
                meta.namespace.as_deref().unwrap_or("default"),
                meta.name.as_deref().unwrap_or("?")
            ),
            reason,
        }
    }

    /// The object's namespace and name (legacy Endpoints: its Service's).
    pub(crate) fn key(&self) -> Result<ObjectKey, Error> {
        let meta = self.metadata();
        let name = meta
            .name
            .clone()
            .ok_or_else(|| self.invalid("metadata.name is missing".into()))?;
        Ok(ObjectKey::new(
            meta.namespace.as_deref().unwrap_or("default"),
            name,
        ))
    }

    /// The model object; `None` for what DNS ignores (FQDN EndpointSlices).
    pub(crate) fn convert(&self) -> Result<Option<Object>, Error> {
        let converted = match self {
            Manifest::Service(o) => convert::service(o).map(|s| Some(Object::Service(s))),
            Manifest::EndpointSlice(o) => {
                convert::endpoint_slice(o).map(|s| s.map(Object::EndpointSlice))
            }
            Manifest::Endpoints(o) => convert::endpoints(o).map(Some),
            Manifest::StatefulSet(o) => {
                convert::stateful_set(o).map(|s| Some(Object::StatefulSet(s)))
            }
        };
        converted.map_err(|e| self.invalid(e.0))
    }
}

impl Feed {
    /// A feed and the source to start a server with.
    pub fn new() -> (Feed, Source) {
        let (tx, rx) = mpsc::unbounded_channel();
        (
            Feed { changes: tx },
            Source::Feed(FeedSource { changes: rx }),
        )
    }

    fn send(&self, change: Change) -> Result<(), Error> {
        self.changes.send(change.into()).map_err(|_| Error::Stopped)
    }

    /// Creates or updates one object. Invalid objects are refused with the reason.
    pub fn apply(&self, manifest: impl Into<Manifest>) -> Result<(), Error> {
        match manifest.into().convert()? {
            Some(object) => self.send(Change::Apply(object)),
            None => Ok(()),
        }
    }

    /// Deletes one object (only its kind, namespace and name are read).
    pub fn delete(&self, manifest: impl Into<Manifest>) -> Result<(), Error> {
        let manifest = manifest.into();
        self.send(Change::Delete(manifest.kind(), manifest.key()?))
    }

    /// Replaces everything with `manifests` and marks the server ready. Refuses the whole
    /// set if any object is invalid.
    pub fn replace_all(&self, manifests: impl IntoIterator<Item = Manifest>) -> Result<(), Error> {
        let mut objects = Vec::new();
        for manifest in manifests {
            objects.extend(manifest.convert()?);
        }
        self.send(Change::ReplaceAll(objects))
    }

    /// Marks the initial state as delivered: the server starts answering.
    pub fn synced(&self) -> Result<(), Error> {
        self.send(Change::Synced)
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
}

impl Core {
    pub fn new(config: &Config) -> Self {
        let zones = Arc::new(ZoneTable::new(&config.zones));
        let store = Arc::new(Store::new());
        let compile = CompileContext {
            ttl: config.ttl,
            forward_zones: zones.forward_zones(),
            primary_zone: zones.primary().into(),
            slot_negative_ttl: config.slot_negative_ttl,
        };
        let options = RecordOptions {
            ordinal_slots: config.ordinal_slots,
            publish_unready_pod_names: config.publish_unready_pod_names,
        };
        let metrics = Arc::new(Metrics::new());
        let controller = Controller::new(
            store.clone(),
            compile,
            config.negative_ttl,
            options,
            metrics.clone(),
        );
        let responder = Responder::new(
            store.clone(),
            zones,
            ResponderSettings {
                max_udp_size: config.max_udp_size,
                negative_ttl: config.negative_ttl,
            },
        );
        Self {
            store,
            controller,
            responder,
            metrics,
        }
    }
}

/// A running server.
pub struct ServerHandle {
    addrs: Vec<SocketAddr>,
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
}

impl ServerHandle {
    /// The bound addresses, one per `--listen`, each serving UDP and TCP (port 0 resolved).
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.addrs
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
    } = Core::new(&config);
    let (shutdown, shutdown_rx) = watch::channel(false);
    let mut tasks = JoinSet::new();

    let changes = match source {
        Source::Feed(feed) => feed.changes,
        Source::Kubernetes(source) => {
            let (tx, rx) = mpsc::unbounded_channel();
            tasks.spawn(kube_source::run(
                source,
                tx,
                metrics.clone(),
                shutdown_rx.clone(),
            ));
            rx
        }
        Source::Manifests(path) => {
            let (manifests, objects) = ManifestSet::load(path)?;
            metrics.synced("manifests");
            let stats = controller.apply_timed(&mut vec![Change::ReplaceAll(objects).into()]);
            tracing::info!(
                path = %manifests.root().display(),
                services = stats.services,
                names = stats.names,
                "manifests loaded"
            );
            let (tx, rx) = mpsc::unbounded_channel();
            tasks.spawn(manifest_watch::run(
                manifests,
                tx,
                config.reload_interval,
                metrics.clone(),
                shutdown_rx.clone(),
            ));
            rx
        }
    };

    let limits = Limits {
        max_udp_response: usize::from(config.max_udp_size),
        tcp: TcpSettings {
            idle_timeout: config.tcp_idle_timeout,
            max_connections: config.max_tcp_connections,
        },
    };
    let mut addrs = Vec::new();
    let mut listeners = Vec::new();
    let worker_cpus = config.worker_cpus()?;
    for addr in &config.listen {
        let listener = server::bind(*addr, config.udp_workers, worker_cpus.as_deref())
            .await
            .map_err(|source| Error::Bind {
                addr: *addr,
                source,
            })?;
        let bound = listener.local_addr().map_err(|source| Error::Bind {
            addr: *addr,
            source,
        })?;
        addrs.push(bound);
        listeners.push(listener);
    }
    let mut udp = UdpWorkers::default();
    for (listener, addr) in listeners.into_iter().zip(&config.listen) {
        server::spawn(
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
            source,
        })?;
    }
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
            tasks.spawn(http::serve(listener, state, shutdown_rx.clone()));
            tracing::info!(addr = %bound, "serving /healthz, /readyz, /metrics");
            Some(bound)
        }
    };
    // The controller gets a thread of its own: a relist of a large cluster is seconds of
    // CPU, which on the runtime would hold up TCP answers, the HTTP probes and the
    // watches themselves.
    let controller = std::thread::Builder::new()
        .name("controller".into())
        .spawn(
            move || match tokio::runtime::Builder::new_current_thread().build() {
                Ok(runtime) => runtime.block_on(controller.run(changes, shutdown_rx)),
                Err(error) => tracing::error!(%error, "cannot start the controller's runtime"),
            },
        )
        .map_err(Error::Thread)?;
    tracing::info!(addrs = ?addrs, "serving DNS over UDP and TCP");
    Ok(ServerHandle {
        addrs,
        http_addr,
        metrics,
        draining,
        udp,
        store,
        shutdown,
        tasks,
        controller: Some(controller),
    })
}
