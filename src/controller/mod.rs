//! The controller: the store's single writer.
//!
//! It owns the joined state of every source (Services x EndpointSlices x StatefulSets), and
//! when any input of a Service changes it recomputes that Service's records, compiles them
//! and publishes the Service to the store whole. Reverse names and empty non-terminals,
//! which several Services share, are kept by reference counts. It does not know where the
//! objects come from: the manifests folder, an embedding operator and the API watch all send
//! the same [`Change`]s.
//!
//! Split along its seams: [`join`] keeps the objects and which Service each names,
//! [`publish`] turns a Service's records into its snapshot and routes, [`reverse`] keeps
//! the claims on addresses and publishes PTR answers, [`names`] counts the empty
//! non-terminals, [`records`] is the specification as pure functions and [`zone_records`]
//! the names every zone has. [`imports`] does for ServiceImports what `join` and
//! `republish` do for Services, with [`clusterset_records`] as their specification (the
//! Multicluster Services DNS names, `--clusterset-zone`). This file holds the state and the
//! loop that applies batches.
//!
//! May import [`crate::model`], [`crate::store`], [`crate::dns`], [`crate::hash`] and
//! [`crate::metrics`]; never a source or the query path.

mod cluster_ids;
pub mod clusterset_records;
mod imports;
mod join;
pub mod keyed;
mod names;
mod owner;
pub mod persist;
mod publish;
pub mod records;
mod reverse;
mod serial;
#[cfg(test)]
mod tests;
pub mod zone_records;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{mpsc, watch};

use crate::dns::rdata::NameRecords;
use crate::metrics::Metrics;
use crate::model::{
    Change, ClusterProperty, EndpointSlice, ObjectKey, Service, ServiceImport, StatefulSet, Timed,
};
use crate::store::compile::{self, CompileContext, compile_name};
use crate::store::{self, Route, Store, ZoneKind};
use cluster_ids::ClusterIds;
pub use imports::ClusterSetSettings;
use imports::ImportEntry;
use join::{Dirty, ServiceEntry};
use keyed::KeyedSet;
use publish::SlotOwners;
use records::RecordOptions;
use reverse::{AddressMap, ListedClaims};
use zone_records::ZoneSettings;

/// What the controller publishes, for logs and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    pub services: usize,
    pub endpoints: usize,
    pub names: usize,
}

pub struct Controller {
    store: Arc<Store>,
    compile: CompileContext,
    /// Longest forward zone, root label included: names longer than 255 octets with it are
    /// not published.
    longest_zone: usize,
    services: KeyedSet<Service>,
    slices: KeyedSet<EndpointSlice>,
    /// The slices and StatefulSets of each Service, and what it published.
    per_service: BTreeMap<ObjectKey, ServiceEntry>,
    /// Legacy Endpoints, by Service; used only while a Service has no EndpointSlice.
    legacy_endpoints: BTreeMap<ObjectKey, Vec<EndpointSlice>>,
    stateful_sets: KeyedSet<StatefulSet>,
    /// ServiceImports, kept only when the clusterset zone is served.
    imports: KeyedSet<ServiceImport>,
    /// The imported slices of each ServiceImport, and what it published.
    per_import: BTreeMap<ObjectKey, ImportEntry>,
    /// The cluster ids of imported slices and of import slots, shared.
    cluster_ids: ClusterIds,
    /// The `cluster.clusterset.k8s.io` ClusterProperty: this cluster's id, over the flag's.
    cluster_property: Option<ClusterProperty>,
    /// The clusterset zone's encoding and this cluster's id by flag (`--clusterset-zone`);
    /// `None`: ServiceImports are not served.
    clusterset: Option<ClusterSetSettings>,
    /// Which records a Service has (ordinal slots, unready pod names).
    options: RecordOptions,
    /// The claims on addresses that are not answered from one Service's pod table, and
    /// whether their names are in the store (see [`ListedClaims`]).
    reverse: AddressMap<ListedClaims>,
    /// Empty non-terminals and how many names hold each up.
    ent_refs: HashMap<Box<[u8]>, u32>,
    /// The names every zone has (`set_static`): never counted as empty non-terminals.
    static_keys: HashSet<Box<[u8]>>,
    /// Addresses over all slices and legacy Endpoints (with duplicates), for the gauge.
    endpoints: usize,
    /// Names in Service snapshots that the index leaves out (pod names), for the gauge.
    unindexed_names: usize,
    /// The Service of each store slot.
    slot_owners: SlotOwners,
    /// What the zones' fixed names and the journal of changes are made from.
    zones: ZoneSettings,
    /// The records of the names this batch changes, as they were before it (`serial`).
    before: BTreeMap<Box<[u8]>, serial::ZoneRecords>,
    /// Told each new serial: the NOTIFY sender watches it.
    notify: Option<watch::Sender<u32>>,
    /// Where `--snapshot` states go, and when (`persist`).
    snapshots: Option<persist::SnapshotSink>,
    metrics: Arc<Metrics>,
}

impl Controller {
    /// A controller publishing into `store`, which it fills with the zones' fixed names.
    pub fn new(
        store: Arc<Store>,
        compile: CompileContext,
        zones: ZoneSettings,
        options: RecordOptions,
        metrics: Arc<Metrics>,
    ) -> Self {
        let longest_zone = compile
            .forward_zones
            .iter()
            .map(|z| z.len())
            .max()
            .unwrap_or(1);
        let mut controller = Self {
            store,
            compile,
            longest_zone,
            services: KeyedSet::default(),
            slices: KeyedSet::default(),
            per_service: BTreeMap::new(),
            legacy_endpoints: BTreeMap::new(),
            stateful_sets: KeyedSet::default(),
            imports: KeyedSet::default(),
            per_import: BTreeMap::new(),
            cluster_ids: ClusterIds::default(),
            cluster_property: None,
            clusterset: None,
            options,
            reverse: AddressMap::default(),
            ent_refs: HashMap::new(),
            static_keys: HashSet::new(),
            endpoints: 0,
            unindexed_names: 0,
            slot_owners: SlotOwners::default(),
            zones,
            before: BTreeMap::new(),
            notify: None,
            snapshots: None,
            metrics,
        };
        let serial = serial::now();
        for records in zone_records::forward_static_records(
            controller.zones.negative_ttl,
            &controller.zones.ns_addresses,
            serial,
        ) {
            controller.set_static(ZoneKind::Forward, &records);
        }
        controller.publish_apexes(serial);
        controller.store.set_serial(serial);
        controller
            .store
            .set_journal_limit(controller.zones.journal_bytes);
        controller
    }

    /// Sends each new serial to `notify` from now on (the NOTIFY sender's trigger).
    pub fn notify_serials(&mut self, notify: watch::Sender<u32>) {
        self.notify = Some(notify);
    }

    /// Publishes one of the names every zone has (an apex, `dns-version`, `svc`); an apex's
    /// SOA also becomes the authority record of its zones' negative answers. Empty
    /// non-terminal counting leaves these names alone.
    fn set_static(&mut self, kind: ZoneKind, records: &NameRecords) {
        let key = store::key(kind, &records.name);
        let route = if records.rrsets.is_empty() {
            Route::EmptyNonTerminal
        } else {
            Route::Name(compile_name(records, &self.compile))
        };
        self.store.set_route(&key, route);
        if let Some(soa) = compile::negative_soa(records, &self.compile)
            && records.name.is_apex()
        {
            self.store.set_negative_soa(kind, soa);
        }
        self.static_keys.insert(key);
    }

    /// Applies a batch of changes, then republishes every Service they touched, each once.
    pub fn apply(&mut self, changes: impl IntoIterator<Item = Change>) -> Stats {
        let mut dirty = Dirty::default();
        let mut synced = false;
        for change in changes {
            self.take(change, &mut dirty, &mut synced);
        }
        if !dirty.is_empty() || synced {
            self.snapshot_dirty();
        }
        if !dirty.is_empty() {
            // Records first, then the serial that announces them: a zone transfer in
            // between would see new records under the old serial, so it waits this out.
            let store = self.store.clone();
            let change = store.change();
            for service in &dirty.services {
                self.republish(service);
            }
            for import in &dirty.imports {
                self.republish_import(import);
            }
            self.next_serial();
            drop(change);
        }
        if synced {
            self.store.mark_ready();
            // The source's own state replaces a saved one from here on.
            self.metrics.serving_snapshot(None);
        }
        let stats = self.stats();
        self.metrics.services.set(stats.services as i64);
        self.metrics.endpoints.set(stats.endpoints as i64);
        self.metrics.names.set(stats.names as i64);
        stats
    }

    /// Takes one change into the model, marking the Services it touches.
    fn take(&mut self, change: Change, dirty: &mut Dirty, synced: &mut bool) {
        match change {
            Change::ReplaceAll(objects) => {
                self.replace(None, None, objects, dirty);
                *synced = true;
            }
            Change::ReplaceKind {
                kind,
                namespace,
                objects,
            } => self.replace(Some(kind), namespace.as_deref(), objects, dirty),
            Change::Apply(object) => self.upsert(object, dirty),
            Change::Delete(kind, key) => self.delete(kind, &key, dirty),
            Change::Synced => *synced = true,
            Change::RaiseSerial(floor) => self.raise_serial(floor),
            Change::Batch(changes) => {
                for change in changes {
                    self.take(change, dirty, synced);
                }
            }
        }
    }

    pub fn stats(&self) -> Stats {
        Stats {
            services: self.services.len(),
            endpoints: self.endpoints,
            names: self.store.len() + self.unindexed_names,
        }
    }

    /// Runs until every sender is gone, applying each burst of changes as one batch: a burst
    /// (a rolling restart) costs one publish per Service, and a lone change is applied at
    /// once.
    pub async fn run(
        mut self,
        mut changes: mpsc::UnboundedReceiver<Timed>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let mut batch = Vec::new();
        loop {
            // A snapshot due waits for its time, unless changes come first.
            let due = self.snapshot_due().map(tokio::time::Instant::from_std);
            let first = tokio::select! {
                biased;
                _ = shutdown.changed() => break,
                first = changes.recv() => match first {
                    Some(change) => change,
                    None => break,
                },
                _ = tokio::time::sleep_until(due.unwrap_or_else(tokio::time::Instant::now)), if due.is_some() => {
                    self.snapshot_if_due(false);
                    continue;
                }
            };
            batch.push(first);
            // Coalescing takes what is already queued and waits for nothing more: a lone
            // change is published at once, a burst as one batch.
            while let Ok(next) = changes.try_recv() {
                batch.push(next);
            }
            self.apply_timed(&mut batch);
            self.snapshot_if_due(false);
        }
        // Stopping: the last state, written before the process exits.
        self.snapshot_if_due(true);
    }

    /// Applies a batch and records each change's programming latency.
    pub fn apply_timed(&mut self, batch: &mut Vec<Timed>) -> Stats {
        let started = Instant::now();
        let size = batch.len();
        // What the batch logs (a Service left out, an invalid name) says which batch.
        let _batch = tracing::info_span!("batch", changes = size).entered();
        let oldest = batch.iter().map(|t| t.received).min().unwrap_or(started);
        // Object changes only: `Synced` publishes nothing and would skew the histogram.
        let received: Vec<Instant> = batch
            .iter()
            .filter(|t| !matches!(t.change, Change::Synced))
            .map(|t| t.received)
            .collect();
        let bulk = batch
            .iter()
            .any(|t| matches!(t.change, Change::ReplaceAll(_) | Change::ReplaceKind { .. }));
        let stats = self.apply(batch.drain(..).map(|t| t.change));
        let live = Instant::now();
        if bulk {
            release_freed_memory();
        }
        for at in &received {
            self.metrics
                .programming_latency
                .observe(live.saturating_duration_since(*at).as_secs_f64());
        }
        self.metrics.controller_batches.inc();
        self.metrics
            .controller_changes
            .inc_by(received.len() as u64);
        tracing::debug!(
            changes = size,
            services = stats.services,
            endpoints = stats.endpoints,
            names = stats.names,
            publish_us = live.duration_since(started).as_micros() as u64,
            latency_us = live.saturating_duration_since(oldest).as_micros() as u64,
            "records published"
        );
        stats
    }
}

/// Hands the heap pages freed by a bulk load back to the kernel. A list or relist (or a
/// manifests load) decodes every object of a kind, and the decoded objects, JSON or YAML
/// included, are freed once converted; glibc's malloc keeps those pages resident until
/// asked, so without this the resident size after a load stays at the load's peak (the
/// relist memory that got CoreDNS replicas OOM-killed). Runs after the answers are live,
/// so it delays no answer, and only after bulk changes.
fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let started = Instant::now();
        // SAFETY: malloc_trim has no preconditions; it only releases memory that malloc
        // holds free, in every arena.
        let released = unsafe { libc::malloc_trim(0) };
        tracing::debug!(
            released = released != 0,
            took_us = started.elapsed().as_micros() as u64,
            "freed heap pages returned to the kernel"
        );
    }
}
