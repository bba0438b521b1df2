//! The Kubernetes source: watches Services, EndpointSlices (or legacy Endpoints) and
//! StatefulSets through the API and feeds the controller; with `--clusterset-zone`, also
//! ServiceImports and the ClusterProperty of this cluster's id, custom resources whose
//! version is found by discovery at start (`discover`).
//!
//! Watchers, not reflectors: each object is converted into the model's small structs the
//! moment it arrives and the API object is dropped, so no second copy of the cluster lives
//! here (the controller's joined state is the only one). A (re)list is buffered as model
//! objects and handed over whole on `InitDone`, as kube's reflector store swaps its
//! buffer, so a relist after `410 Gone` or a reconnect never makes names disappear.

use std::fmt::Debug;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use futures::stream::{BoxStream, SelectAll};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{Endpoints, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Resource;
use kube::api::Api;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::core::{ApiResource, DynamicObject, GroupVersionKind, TypeMeta};
use kube::runtime::watcher::{self, Event, watcher};
use serde::de::DeserializeOwned;
use tokio::sync::{mpsc, watch};

use crate::metrics::Metrics;
use crate::model::{Change, Kind, Object, Timed};
use crate::source::backoff::WatchBackoff;
use crate::source::convert::ConvertOptions;
use crate::source::manifest::Manifest;
use crate::source::multicluster;
use crate::source::selector::{self, SelectorError};

/// Why no client could be made for the cluster: which setting was at fault, and kube's
/// error.
#[derive(Debug, thiserror::Error)]
#[error("{context}")]
pub struct KubernetesError {
    context: String,
    #[source]
    source: Box<dyn std::error::Error + Send + Sync>,
}

impl KubernetesError {
    fn new(
        context: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Self {
            context: context.into(),
            source: source.into(),
        }
    }
}

/// Which API lists a Service's endpoints.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum EndpointsApi {
    /// `discovery.k8s.io/v1` EndpointSlices (Kubernetes 1.21 and later).
    #[default]
    EndpointSlices,
    /// Legacy `v1` Endpoints, for clusters older than EndpointSlices.
    Endpoints,
}

/// What to watch, and with which client: hand it to `start` as `Source::Kubernetes`.
#[derive(Clone)]
pub struct KubernetesSource {
    client: kube::Client,
    namespaces: Vec<String>,
    label_selector: Option<String>,
    endpoints_api: EndpointsApi,
    /// How objects are converted: set by `start` from the server's configuration.
    options: ConvertOptions,
}

impl KubernetesSource {
    /// Every namespace, every Service, EndpointSlices.
    pub fn new(client: kube::Client) -> Self {
        Self {
            client,
            namespaces: Vec::new(),
            label_selector: None,
            endpoints_api: EndpointsApi::default(),
            options: ConvertOptions::default(),
        }
    }

    /// The client it watches with (the transfer lease uses it too).
    pub(crate) fn client(&self) -> kube::Client {
        self.client.clone()
    }

    /// Converts objects with `options` (the server's flags; `start` sets them).
    pub(crate) fn convert_options(mut self, options: ConvertOptions) -> Self {
        self.options = options;
        self
    }

    /// Watches only these namespaces (each with its own watch, as CoreDNS does); none
    /// means all.
    pub fn namespaces(mut self, namespaces: impl IntoIterator<Item = impl Into<String>>) -> Self {
        let mut namespaces: Vec<String> = namespaces.into_iter().map(Into::into).collect();
        namespaces.sort();
        namespaces.dedup();
        self.namespaces = namespaces;
        self
    }

    /// Serves only the Services that match this label selector, filtered by the API server.
    /// `start` refuses a selector the API server would (see [`Self::check`]).
    pub fn label_selector(mut self, selector: impl Into<String>) -> Self {
        self.label_selector = Some(selector.into()).filter(|s| !s.is_empty());
        self
    }

    /// Checks what the API server would refuse on every list: the label selector.
    pub fn check(&self) -> Result<(), SelectorError> {
        self.label_selector
            .as_deref()
            .map_or(Ok(()), selector::check)
    }

    /// EndpointSlices (the default) or, for clusters older than 1.21, legacy Endpoints.
    pub fn endpoints_api(mut self, api: EndpointsApi) -> Self {
        self.endpoints_api = api;
        self
    }
}

/// A client from `kubeconfig` (and `context`), else `$KUBECONFIG` or `~/.kube/config`, else
/// the in-cluster service account: kube's standard inference.
pub async fn client(
    kubeconfig: Option<&Path>,
    context: Option<&str>,
) -> Result<kube::Client, KubernetesError> {
    let options = KubeConfigOptions {
        context: context.map(String::from),
        ..KubeConfigOptions::default()
    };
    let config = match kubeconfig {
        Some(path) => {
            let flag = || format!("--kubeconfig {}", path.display());
            let file = Kubeconfig::read_from(path).map_err(|e| KubernetesError::new(flag(), e))?;
            kube::Config::from_custom_kubeconfig(file, &options)
                .await
                .map_err(|e| KubernetesError::new(flag(), e))?
        }
        None if context.is_some() => kube::Config::from_kubeconfig(&options)
            .await
            .map_err(|e| KubernetesError::new("--context", e))?,
        None => kube::Config::infer().await.map_err(|e| {
            KubernetesError::new(
                "no cluster to watch; give --kubeconfig PATH, set KUBECONFIG, run in a pod \
                 with a service account, or serve a folder with --manifests PATH",
                e,
            )
        })?,
    };
    kube::Client::try_from(config).map_err(|e| KubernetesError::new("cannot build the client", e))
}

/// Objects per page of a list: 100 EndpointSlices hold at most 10,000 endpoints, a few MB
/// decoded.
const LIST_PAGE: u32 = 100;

/// One watch: a kind in one namespace (or all).
struct Scope {
    kind: Kind,
    namespace: Option<String>,
    /// Entered while the watch's events are handled: its log lines carry kind and namespace.
    span: tracing::Span,
}

impl Scope {
    fn new(kind: Kind, namespace: Option<&str>) -> Self {
        Self {
            kind,
            namespace: namespace.map(String::from),
            span: tracing::info_span!(
                "watch",
                kind = kind.as_str(),
                namespace = namespace.unwrap_or("*")
            ),
        }
    }

    fn label(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{} in {ns}", self.kind.as_str()),
            None => self.kind.as_str().to_string(),
        }
    }
}

/// A watch event with the object already a [`Manifest`], so every kind shares one stream.
type Item = Result<Event<Manifest>, watcher::Error>;

fn watch_stream<K>(api: Api<K>, config: watcher::Config, seed: u64) -> BoxStream<'static, Item>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + 'static,
    Manifest: From<K>,
{
    watch_as(api, config, seed, Manifest::from)
}

/// A watch whose objects become manifests by `into`.
fn watch_as<K>(
    api: Api<K>,
    config: watcher::Config,
    seed: u64,
    into: impl Fn(K) -> Manifest + Send + 'static,
) -> BoxStream<'static, Item>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + 'static,
{
    // A 410 relists at once, other errors back off briefly (`backoff`).
    WatchBackoff::new(watcher(api, config).boxed(), seed)
        .map_ok(move |event| match event {
            Event::Apply(o) => Event::Apply(into(o)),
            Event::Delete(o) => Event::Delete(into(o)),
            Event::Init => Event::Init,
            Event::InitApply(o) => Event::InitApply(into(o)),
            Event::InitDone => Event::InitDone,
        })
        .boxed()
}

/// A watch of a custom resource found by discovery. Its objects carry their `apiVersion`
/// and `kind` (list items may leave them out), which the converter reads the version from.
fn dynamic_watch(
    client: &kube::Client,
    resource: &ApiResource,
    namespace: Option<&str>,
    config: watcher::Config,
    seed: u64,
    wrap: fn(Box<DynamicObject>) -> Manifest,
) -> BoxStream<'static, Item> {
    let api: Api<DynamicObject> = match namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, resource),
        None => Api::all_with(client.clone(), resource),
    };
    let types = TypeMeta {
        api_version: resource.api_version.clone(),
        kind: resource.kind.clone(),
    };
    watch_as(api, config, seed, move |mut object: DynamicObject| {
        if object
            .types
            .as_ref()
            .is_none_or(|t| t.api_version.is_empty())
        {
            object.types = Some(types.clone());
        }
        wrap(Box::new(object))
    })
}

/// The Multi-Cluster Services resources the API server serves, in the version it prefers
/// among those this server reads.
#[derive(Debug, Default)]
struct Multicluster {
    service_imports: Option<ApiResource>,
    cluster_properties: Option<ApiResource>,
}

/// The served version of `group` to read: the API server's preferred one when this server
/// reads it, else the first of `versions` it serves. `None` when the group is not served
/// (its CRD is not installed).
fn pick_version(
    groups: &k8s_openapi::apimachinery::pkg::apis::meta::v1::APIGroupList,
    group: &str,
    versions: &[&str],
) -> Option<(String, bool)> {
    let served = groups.groups.iter().find(|g| g.name == group)?;
    if let Some(preferred) = &served.preferred_version
        && versions.contains(&preferred.version.as_str())
    {
        return Some((preferred.version.clone(), true));
    }
    versions
        .iter()
        .find(|v| served.versions.iter().any(|s| s.version == **v))
        .map(|v| ((*v).to_owned(), false))
}

/// Asks the API server which Multi-Cluster Services resources it serves (its group list),
/// retrying until it answers: the watches start after. Logs what it found, once.
async fn discover(
    client: &kube::Client,
    shutdown: &mut watch::Receiver<bool>,
) -> Option<Multicluster> {
    let mut delay = std::time::Duration::from_millis(200);
    let groups = loop {
        match client.list_api_groups().await {
            Ok(groups) => break groups,
            Err(error) => {
                tracing::warn!(
                    error = &error as &dyn std::error::Error,
                    "API discovery failed; retrying before watching"
                );
                tokio::select! {
                    _ = shutdown.changed() => return None,
                    _ = tokio::time::sleep(delay) => {}
                }
                delay = (delay * 2).min(std::time::Duration::from_secs(5));
            }
        }
    };
    let resource = |group: &str, versions: &[&str], kind: &str, plural: &str| {
        let (version, preferred) = pick_version(&groups, group, versions)?;
        tracing::info!(
            group,
            version,
            kind,
            preferred,
            "reading {kind} in {group}/{version}{}",
            if preferred {
                ", the version the API server prefers"
            } else {
                " (the API server prefers a version this build does not read)"
            }
        );
        let gvk = GroupVersionKind::gvk(group, &version, kind);
        Some(ApiResource::from_gvk_with_plural(&gvk, plural))
    };
    let found = Multicluster {
        service_imports: resource(
            multicluster::GROUP,
            &multicluster::VERSIONS,
            "ServiceImport",
            "serviceimports",
        ),
        cluster_properties: resource(
            multicluster::ABOUT_GROUP,
            &multicluster::ABOUT_VERSIONS,
            "ClusterProperty",
            "clusterproperties",
        ),
    };
    if found.service_imports.is_none() {
        tracing::info!(
            "no ServiceImport resource ({}): the clusterset zone serves its fixed names only; restart after installing the Multi-Cluster Services CRDs",
            multicluster::GROUP
        );
    }
    if found.cluster_properties.is_none() {
        tracing::info!(
            "no ClusterProperty resource ({}): this cluster's id is --cluster-id",
            multicluster::ABOUT_GROUP
        );
    }
    Some(found)
}

fn api<K>(client: &kube::Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    <K as Resource>::DynamicType: Default,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// The watches `source` asks for, in a fixed order.
fn watches(
    source: &KubernetesSource,
    multicluster: &Multicluster,
) -> Vec<(Scope, BoxStream<'static, Item>)> {
    let namespaces: Vec<Option<&str>> = if source.namespaces.is_empty() {
        vec![None]
    } else {
        source.namespaces.iter().map(|n| Some(n.as_str())).collect()
    };
    // Lists in pages of LIST_PAGE objects (`limit`, `continue`), each a consistent read of
    // the latest state: an unpaged list (from the watch cache, resourceVersion=0, as
    // client-go informers list) arrives as one body that kube decodes whole into API
    // objects before the first is converted, which made the first list peak at 2.4 times
    // the settled memory at 100k endpoints (2.8 times in a relist; bench/relist_memory.rs).
    // The trade-off: API servers before 1.31 serve a paged list from etcd rather than from
    // their watch cache.
    let base = watcher::Config::default().page_size(LIST_PAGE);
    let services = match &source.label_selector {
        Some(selector) => base.clone().labels(selector),
        None => base.clone(),
    };
    // The jitter's seed: random per process (the standard library's hasher keys), so that
    // replicas and watches do not retry in step.
    let random = std::hash::RandomState::new();
    let mut watch = 0u64;
    let mut seed = || {
        watch += 1;
        std::hash::BuildHasher::hash_one(&random, watch)
    };
    let mut out = Vec::new();
    for ns in namespaces {
        let scope = |kind| Scope::new(kind, ns);
        let c = &source.client;
        out.push((
            scope(Kind::Service),
            watch_stream(api::<Service>(c, ns), services.clone(), seed()),
        ));
        out.push(match source.endpoints_api {
            EndpointsApi::EndpointSlices => (
                scope(Kind::EndpointSlice),
                watch_stream(api::<EndpointSlice>(c, ns), base.clone(), seed()),
            ),
            EndpointsApi::Endpoints => (
                scope(Kind::Endpoints),
                watch_stream(api::<Endpoints>(c, ns), base.clone(), seed()),
            ),
        });
        out.push((
            scope(Kind::StatefulSet),
            watch_stream(api::<StatefulSet>(c, ns), base.clone(), seed()),
        ));
        if let Some(resource) = &multicluster.service_imports {
            out.push((
                scope(Kind::ServiceImport),
                dynamic_watch(
                    c,
                    resource,
                    ns,
                    base.clone(),
                    seed(),
                    Manifest::ServiceImport,
                ),
            ));
        }
    }
    // Cluster-scoped: one watch whatever the namespaces.
    if let Some(resource) = &multicluster.cluster_properties {
        out.push((
            Scope::new(Kind::ClusterProperty, None),
            dynamic_watch(
                &source.client,
                resource,
                None,
                base.clone(),
                seed(),
                Manifest::ClusterProperty,
            ),
        ));
    }
    out
}

/// Per-watch state: the relist being buffered, and whether the first list is complete.
#[derive(Default)]
struct WatchState {
    relist: Option<Vec<Object>>,
    synced: bool,
}

/// Runs until shutdown: every watch, merged, turned into controller changes. Sends
/// [`Change::Synced`] once every watch has completed its first list; until then the server
/// answers SERVFAIL rather than a false NXDOMAIN.
pub async fn run(
    source: KubernetesSource,
    changes: mpsc::UnboundedSender<Timed>,
    metrics: Arc<Metrics>,
    mut shutdown: watch::Receiver<bool>,
) {
    let multicluster = if source.options.multicluster {
        match discover(&source.client, &mut shutdown).await {
            Some(found) => found,
            None => return,
        }
    } else {
        Multicluster::default()
    };
    let (scopes, streams): (Vec<Scope>, Vec<_>) =
        watches(&source, &multicluster).into_iter().unzip();
    let mut merged: SelectAll<_> = futures::stream::select_all(
        streams
            .into_iter()
            .enumerate()
            .map(|(i, s)| s.map(move |item| (i, item))),
    );
    let mut states: Vec<WatchState> = scopes.iter().map(|_| WatchState::default()).collect();
    let mut all_synced = false;
    tracing::info!(
        watches = ?scopes.iter().map(Scope::label).collect::<Vec<_>>(),
        label_selector = source.label_selector.as_deref().unwrap_or(""),
        "watching the Kubernetes API"
    );
    loop {
        let (index, item) = tokio::select! {
            biased;
            _ = shutdown.changed() => return,
            next = merged.next() => match next {
                Some(next) => next,
                None => return,
            },
        };
        let received = Instant::now();
        let scope = &scopes[index];
        let entered = scope.span.enter();
        let state = &mut states[index];
        let kind = scope.kind.as_str();
        let event = match item {
            Ok(event) => event,
            Err(error) => {
                metrics
                    .watch_restarts
                    .get_or_create(&[("kind", kind)])
                    .inc();
                tracing::warn!(
                    error = &error as &dyn std::error::Error,
                    "watch failed; retrying with backoff, serving the last known records"
                );
                continue;
            }
        };
        let change = match event {
            Event::Init => {
                count(&metrics, kind, "init");
                state.relist = Some(Vec::new());
                None
            }
            Event::InitApply(manifest) => {
                count(&metrics, kind, "init_apply");
                if let Some(object) = convert(&manifest, &source.options, &metrics) {
                    state.relist.get_or_insert_with(Vec::new).push(object);
                }
                None
            }
            Event::InitDone => {
                count(&metrics, kind, "init_done");
                match state.relist.take() {
                    Some(objects) => {
                        metrics.synced(kind);
                        let first = !state.synced;
                        state.synced = true;
                        tracing::info!(
                            objects = objects.len(),
                            "{}",
                            if first {
                                "initial list complete"
                            } else {
                                "relist complete; swapped in whole"
                            }
                        );
                        Some(Change::ReplaceKind {
                            kind: scope.kind,
                            namespace: scope.namespace.clone(),
                            objects,
                        })
                    }
                    // kube's watcher always sends Init first; without it there is no list to
                    // swap in (an empty one would delete every object of the kind), and the
                    // kind does not count as synced.
                    None => {
                        tracing::warn!("list completed without a start; nothing replaced");
                        None
                    }
                }
            }
            Event::Apply(manifest) => {
                count(&metrics, kind, "apply");
                metrics.synced(kind);
                // An object that no longer converts (a slice that lost its Service label)
                // is gone for DNS, as a relist would find it: delete rather than keep the
                // last version, which only suits half-edited files.
                match convert(&manifest, &source.options, &metrics) {
                    Some(object) => Some(Change::Apply(object)),
                    None => manifest
                        .key()
                        .ok()
                        .map(|key| Change::Delete(scope.kind, key)),
                }
            }
            Event::Delete(manifest) => {
                count(&metrics, kind, "delete");
                metrics.synced(kind);
                match manifest.key() {
                    Ok(key) => Some(Change::Delete(scope.kind, key)),
                    Err(error) => {
                        tracing::warn!(
                            error = &error as &dyn std::error::Error,
                            "deleted object skipped"
                        );
                        None
                    }
                }
            }
        };
        if let Some(change) = change
            && changes.send(Timed { change, received }).is_err()
        {
            return;
        }
        drop(entered);
        if !all_synced && states.iter().all(|s| s.synced) {
            all_synced = true;
            tracing::info!("every watched kind is synced; answering");
            if changes.send(Change::Synced.into()).is_err() {
                return;
            }
        }
    }
}

fn count(metrics: &Metrics, kind: &'static str, event: &'static str) {
    metrics
        .watch_events
        .get_or_create(&[("kind", kind), ("type", event)])
        .inc();
}

/// The model object, or `None` (logged with the object's name, counted) when the object is
/// invalid or has nothing for DNS (FQDN EndpointSlices).
fn convert(manifest: &Manifest, options: &ConvertOptions, metrics: &Metrics) -> Option<Object> {
    match manifest.convert_with(options) {
        Ok(object) => object,
        Err(error) => {
            metrics
                .invalid_objects
                .get_or_create(&[("kind", manifest.kind().as_str())])
                .inc();
            tracing::warn!(
                error = &error as &dyn std::error::Error,
                "object skipped; the rest keeps serving"
            );
            None
        }
    }
}
