//! The controller: the store's single writer.
//!
//! It owns the joined state of every source (Services x EndpointSlices x StatefulSets), and
//! when any input of a Service changes it recomputes that Service's records, compiles them
//! and publishes the Service to the store whole. Reverse names and empty non-terminals,
//! which several Services share, are kept by reference counts. It does not know where the
//! objects come from: the manifests folder, an embedding operator and the API watch all send
//! the same [`Change`]s.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{mpsc, watch};

use crate::compile::{CompileContext, NameAnswers, compile_name};
use crate::keyed::KeyedSet;
use crate::metrics::Metrics;
use crate::model::{EndpointSlice, Kind, Object, ObjectKey, Service, StatefulSet};
use crate::name::{MAX_NAME_LEN, RelativeName, reverse_name};
use crate::pod_table::PodTableBuilder;
use crate::records::{self, NameRecords, PtrSource, RData, RecordOptions, RrSet, Target, rtype};
use crate::store::{
    self, Route, ServiceAnswers, ServiceSlot, ServiceSnapshot, SnapshotEntry, Store, ZoneKind,
};
use crate::zones;

/// A change from a source.
#[derive(Debug, Clone)]
pub enum Change {
    /// The complete set of objects (a manifests load): whatever is not in it is gone. Marks
    /// the store ready.
    ReplaceAll(Vec<Object>),
    /// Every object of one kind (in one namespace, or in all): a Kubernetes list or relist,
    /// swapped in whole so that no name disappears in between. Objects of the kind (in the
    /// namespace) that are not in it are gone.
    ReplaceKind {
        kind: Kind,
        namespace: Option<String>,
        objects: Vec<Object>,
    },
    /// An object was created or updated.
    Apply(Object),
    /// An object was deleted.
    Delete(Kind, ObjectKey),
    /// The source has delivered its initial state: start answering.
    Synced,
    /// Changes applied together, in order: no answer sees some of them without the others
    /// (a manifest edit that moves an object from one file to another deletes and applies
    /// it).
    Batch(Vec<Change>),
}

/// A change and when it reached the server (a watch event, a file event): the start of its
/// programming latency.
#[derive(Debug, Clone)]
pub struct Timed {
    pub change: Change,
    pub received: Instant,
}

impl From<Change> for Timed {
    fn from(change: Change) -> Self {
        Self {
            change,
            received: Instant::now(),
        }
    }
}

/// What the controller publishes, for logs and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    pub services: usize,
    pub endpoints: usize,
    pub names: usize,
}

/// What one Service has in the store, so the next publish can remove what disappeared.
#[derive(Debug)]
struct Published {
    /// The Service's snapshot; its keys are the names the Service has in the store.
    slot: Arc<ServiceSlot>,
    /// The addresses it claims for reverse lookups.
    reverse_ips: Addresses,
}

/// A small ordered set of object keys (the slices or StatefulSets of one Service: usually
/// one). A `BTreeSet` would allocate a node for eleven keys for each of them.
#[derive(Debug, Default)]
struct SortedKeys(Box<[ObjectKey]>);

impl SortedKeys {
    fn insert(&mut self, key: ObjectKey) {
        if let Err(at) = self.0.binary_search(&key) {
            let mut keys = std::mem::take(&mut self.0).into_vec();
            keys.insert(at, key);
            self.0 = keys.into_boxed_slice();
        }
    }

    fn remove(&mut self, key: &ObjectKey) {
        if let Ok(at) = self.0.binary_search(key) {
            let mut keys = std::mem::take(&mut self.0).into_vec();
            keys.remove(at);
            self.0 = keys.into_boxed_slice();
        }
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn iter(&self) -> impl Iterator<Item = &ObjectKey> {
        self.0.iter()
    }
}

/// What the controller keeps per Service key besides the Service itself: the objects that
/// name it, each set in name order (slices merge in that order, which is part of
/// determinism), and what it published. One map entry for both: a map entry per Service
/// is a per-endpoint cost at a few pods per Service.
#[derive(Debug, Default)]
struct ServiceEntry {
    /// EndpointSlices naming it in `kubernetes.io/service-name`.
    slices: SortedKeys,
    /// StatefulSets naming it in `spec.serviceName`.
    stateful_sets: SortedKeys,
    published: Option<Published>,
}

impl ServiceEntry {
    /// Nothing names the Service and it has nothing in the store: the entry can go.
    fn is_empty(&self) -> bool {
        self.slices.is_empty() && self.stateful_sets.is_empty() && self.published.is_none()
    }
}

/// A set of addresses held for a long time (what a Service claims): exact-size lists, and an
/// IPv4 address in 4 bytes rather than the 17 of an `IpAddr`.
#[derive(Debug, Default)]
struct Addresses {
    v4: Box<[Ipv4Addr]>,
    v6: Box<[Ipv6Addr]>,
}

impl Addresses {
    fn new(addresses: impl Iterator<Item = IpAddr>) -> Self {
        let (mut v4, mut v6) = (Vec::new(), Vec::new());
        for address in addresses {
            match address {
                IpAddr::V4(ip) => v4.push(ip),
                IpAddr::V6(ip) => v6.push(ip),
            }
        }
        Self {
            v4: v4.into_boxed_slice(),
            v6: v6.into_boxed_slice(),
        }
    }

    fn iter(&self) -> impl Iterator<Item = IpAddr> + '_ {
        let v4 = self.v4.iter().map(|ip| IpAddr::V4(*ip));
        v4.chain(self.v6.iter().map(|ip| IpAddr::V6(*ip)))
    }

    fn is_empty(&self) -> bool {
        self.v4.is_empty() && self.v6.is_empty()
    }
}

/// A map by address, one table per family: an IPv4 key takes 4 bytes, not 17, in a table
/// with an entry per address in the cluster.
#[derive(Debug)]
struct AddressMap<V> {
    v4: HashMap<Ipv4Addr, V>,
    v6: HashMap<Ipv6Addr, V>,
}

impl<V> Default for AddressMap<V> {
    fn default() -> Self {
        Self {
            v4: HashMap::new(),
            v6: HashMap::new(),
        }
    }
}

impl<V> AddressMap<V> {
    fn get(&self, ip: &IpAddr) -> Option<&V> {
        match ip {
            IpAddr::V4(ip) => self.v4.get(ip),
            IpAddr::V6(ip) => self.v6.get(ip),
        }
    }

    fn get_mut(&mut self, ip: &IpAddr) -> Option<&mut V> {
        match ip {
            IpAddr::V4(ip) => self.v4.get_mut(ip),
            IpAddr::V6(ip) => self.v6.get_mut(ip),
        }
    }

    fn insert(&mut self, ip: IpAddr, value: V) {
        match ip {
            IpAddr::V4(ip) => self.v4.insert(ip, value),
            IpAddr::V6(ip) => self.v6.insert(ip, value),
        };
    }

    fn remove(&mut self, ip: &IpAddr) {
        match ip {
            IpAddr::V4(ip) => self.v4.remove(ip),
            IpAddr::V6(ip) => self.v6.remove(ip),
        };
    }
}

impl<V: Default> AddressMap<V> {
    fn get_or_default(&mut self, ip: IpAddr) -> &mut V {
        match ip {
            IpAddr::V4(ip) => self.v4.entry(ip).or_default(),
            IpAddr::V6(ip) => self.v6.entry(ip).or_default(),
        }
    }
}

/// Whether the reverse name of `ip` can be answered from `slot`'s pod table for the claim
/// `source`: the table gives back exactly that claim, target and hostname flag (a ClusterIP
/// Service's own name is not in the table; a hostname that is another endpoint's dashed
/// address names an entry whose flag is not this claim's). Claims answered from a table
/// are rebuilt from it later, so anything short of an exact match stays listed.
fn answers_from_table(slot: &ServiceSlot, ip: IpAddr, source: &PtrSource) -> bool {
    table_claim(slot, ip).is_some_and(|from_table| from_table == *source)
}

/// The claim on `ip` that `slot`'s current pod table answers, if the table has the address.
fn table_claim(slot: &ServiceSlot, ip: IpAddr) -> Option<PtrSource> {
    let base = records::service_name(slot.owner()).ok()?;
    table_source(&slot.snapshot(), &base, ip)
}

/// The claims on one address, listed with their targets. The common case, one Service whose
/// pod table answers the reverse name, is not listed: the store keys the address to that
/// Service's slot (`Store::ptr_slot`), and the table holds the claim's label and whether it
/// is a hostname. So the controller keeps nothing per address for most of them.
#[derive(Debug, Default)]
struct ListedClaims {
    /// Exact-size: an address almost always has one claim.
    claims: Box<[(Arc<ObjectKey>, PtrSource)]>,
    /// Whether the address's reverse name is in the store.
    published: bool,
}

impl ListedClaims {
    fn push(&mut self, owner: Arc<ObjectKey>, source: PtrSource) {
        let mut claims = std::mem::take(&mut self.claims).into_vec();
        claims.push((owner, source));
        self.claims = claims.into_boxed_slice();
    }

    fn retain(&mut self, keep: impl Fn(&ObjectKey) -> bool) {
        if self.claims.iter().any(|(owner, _)| !keep(owner)) {
            self.claims = self
                .claims
                .iter()
                .filter(|(owner, _)| keep(owner))
                .cloned()
                .collect();
        }
    }
}

/// The claim on `ip` answered from `snapshot`'s pod table: the table's label for the
/// address under the Service's name `base` (relative to the primary zone), and whether it
/// is a hostname.
fn table_source(snapshot: &ServiceSnapshot, base: &RelativeName, ip: IpAddr) -> Option<PtrSource> {
    let (label, entry) = snapshot.pods.entry_of(ip)?;
    let target = base.child(std::str::from_utf8(label).ok()?).ok()?;
    Some(PtrSource {
        from_hostname: entry.is_hostname(),
        target,
    })
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
    /// Which records a Service has (ordinal slots, unready pod names).
    options: RecordOptions,
    /// The claims on addresses that are not answered from one Service's pod table, and
    /// whether their names are in the store (see [`ListedClaims`]).
    reverse: AddressMap<ListedClaims>,
    /// Empty non-terminals and how many names hold each up.
    ent_refs: HashMap<Box<[u8]>, u32>,
    /// Addresses over all slices and legacy Endpoints (with duplicates), for the gauge.
    endpoints: usize,
    /// Names in Service snapshots that the index leaves out (pod names), for the gauge.
    unindexed_names: usize,
    metrics: Arc<Metrics>,
}

impl Controller {
    /// A controller publishing into `store`, which it fills with the zones' fixed names.
    pub fn new(
        store: Arc<Store>,
        compile: CompileContext,
        negative_ttl: u32,
        options: RecordOptions,
        metrics: Arc<Metrics>,
    ) -> Self {
        let longest_zone = compile
            .forward_zones
            .iter()
            .map(|z| z.len())
            .max()
            .unwrap_or(1);
        let controller = Self {
            store,
            compile,
            longest_zone,
            services: KeyedSet::default(),
            slices: KeyedSet::default(),
            per_service: BTreeMap::new(),
            legacy_endpoints: BTreeMap::new(),
            stateful_sets: KeyedSet::default(),
            options,
            reverse: AddressMap::default(),
            ent_refs: HashMap::new(),
            endpoints: 0,
            unindexed_names: 0,
            metrics,
        };
        for records in zones::forward_static_records(negative_ttl) {
            controller.set_static(ZoneKind::Forward, &records);
        }
        let reverse_apex = zones::reverse_apex_records(negative_ttl);
        controller.set_static(ZoneKind::ReverseV4, &reverse_apex);
        controller.set_static(ZoneKind::ReverseV6, &reverse_apex);
        controller
    }

    fn set_static(&self, kind: ZoneKind, records: &NameRecords) {
        let key = store::key(kind, &records.name);
        let route = if records.rrsets.is_empty() {
            Route::EmptyNonTerminal
        } else {
            Route::Name(compile_name(records, &self.compile))
        };
        self.store.set_route(&key, route);
    }

    /// Applies a batch of changes, then republishes every Service they touched, each once.
    pub fn apply(&mut self, changes: impl IntoIterator<Item = Change>) -> Stats {
        let mut dirty = BTreeSet::new();
        let mut synced = false;
        for change in changes {
            self.take(change, &mut dirty, &mut synced);
        }
        for service in &dirty {
            self.republish(service);
        }
        if synced {
            self.store.mark_ready();
        }
        let stats = self.stats();
        self.metrics.services.set(stats.services as i64);
        self.metrics.endpoints.set(stats.endpoints as i64);
        self.metrics.names.set(stats.names as i64);
        stats
    }

    /// Takes one change into the model, marking the Services it touches.
    fn take(&mut self, change: Change, dirty: &mut BTreeSet<ObjectKey>, synced: &mut bool) {
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

    /// Upserts `objects`, then deletes what is known of `kind` (every kind when `None`) in
    /// `namespace` (every namespace when `None`) and was not among them. Unchanged objects
    /// leave their Service clean, so a relist of an unchanged cluster republishes nothing.
    fn replace(
        &mut self,
        kind: Option<Kind>,
        namespace: Option<&str>,
        objects: Vec<Object>,
        dirty: &mut BTreeSet<ObjectKey>,
    ) {
        let in_scope = |k: Kind, key: &ObjectKey| {
            kind.is_none_or(|kind| kind == k) && namespace.is_none_or(|ns| &*key.namespace == ns)
        };
        let mut seen: HashMap<Kind, HashSet<ObjectKey>> = HashMap::new();
        for object in objects {
            if !in_scope(object.kind(), object.key()) {
                continue;
            }
            seen.entry(object.kind())
                .or_default()
                .insert(object.key().clone());
            self.upsert(object, dirty);
        }
        let mut gone: Vec<(Kind, ObjectKey)> = Vec::new();
        for k in Kind::ALL {
            if kind.is_some_and(|kind| kind != k) {
                continue; // a relist of one kind walks that kind's objects only
            }
            let keys: Box<dyn Iterator<Item = &ObjectKey>> = match k {
                Kind::Service => Box::new(self.services.keys()),
                Kind::EndpointSlice => Box::new(self.slices.keys()),
                Kind::Endpoints => Box::new(self.legacy_endpoints.keys()),
                Kind::StatefulSet => Box::new(self.stateful_sets.keys()),
            };
            let listed = seen.get(&k);
            gone.extend(
                keys.filter(|key| in_scope(k, key))
                    .filter(|key| !listed.is_some_and(|l| l.contains(*key)))
                    .map(|key| (k, key.clone())),
            );
        }
        for (kind, key) in gone {
            self.delete(kind, &key, dirty);
        }
    }

    fn upsert(&mut self, object: Object, dirty: &mut BTreeSet<ObjectKey>) {
        match object {
            Object::Service(service) => {
                if self.services.get(&service.key) != Some(&service) {
                    dirty.insert(service.key.clone());
                    self.services.insert(service);
                }
            }
            Object::EndpointSlice(slice) => {
                if self.slices.get(&slice.key) == Some(&slice) {
                    return;
                }
                dirty.insert(slice.service.clone());
                self.per_service
                    .entry(slice.service.clone())
                    .or_default()
                    .slices
                    .insert(slice.key.clone());
                self.endpoints += slice.endpoints.len();
                let service = slice.service.clone();
                if let Some(old) = self.slices.insert(slice) {
                    self.endpoints -= old.endpoints.len();
                    if old.service != service {
                        self.unlink_slice(&old);
                        dirty.insert(old.service);
                    }
                }
            }
            Object::Endpoints { service, subsets } => {
                if self.legacy_endpoints.get(&service) != Some(&subsets) {
                    dirty.insert(service.clone());
                    self.endpoints += count_endpoints(&subsets);
                    if let Some(old) = self.legacy_endpoints.insert(service, subsets) {
                        self.endpoints -= count_endpoints(&old);
                    }
                }
            }
            Object::StatefulSet(sts) => {
                if self.stateful_sets.get(&sts.key) == Some(&sts) {
                    return;
                }
                let service = governing_service(&sts);
                self.per_service
                    .entry(service.clone())
                    .or_default()
                    .stateful_sets
                    .insert(sts.key.clone());
                dirty.insert(service);
                let service_name = sts.service_name.clone();
                if let Some(old) = self.stateful_sets.insert(sts)
                    && old.service_name != service_name
                {
                    self.unlink_stateful_set(&old);
                    dirty.insert(governing_service(&old));
                }
            }
        }
    }

    fn delete(&mut self, kind: Kind, key: &ObjectKey, dirty: &mut BTreeSet<ObjectKey>) {
        match kind {
            Kind::Service => {
                if self.services.remove(key).is_some() {
                    dirty.insert(key.clone());
                }
            }
            Kind::EndpointSlice => {
                if let Some(old) = self.slices.remove(key) {
                    self.endpoints -= old.endpoints.len();
                    self.unlink_slice(&old);
                    dirty.insert(old.service);
                }
            }
            Kind::Endpoints => {
                if let Some(old) = self.legacy_endpoints.remove(key) {
                    self.endpoints -= count_endpoints(&old);
                    dirty.insert(key.clone());
                }
            }
            Kind::StatefulSet => {
                if let Some(old) = self.stateful_sets.remove(key) {
                    self.unlink_stateful_set(&old);
                    dirty.insert(governing_service(&old));
                }
            }
        }
    }

    fn unlink_stateful_set(&mut self, sts: &StatefulSet) {
        let service = governing_service(sts);
        if let Some(entry) = self.per_service.get_mut(&service) {
            entry.stateful_sets.remove(&sts.key);
            if entry.is_empty() {
                self.per_service.remove(&service);
            }
        }
    }

    /// The StatefulSets a Service governs, in name order.
    fn stateful_sets_of(&self, service: &ObjectKey) -> Vec<&StatefulSet> {
        self.per_service
            .get(service)
            .map(|entry| {
                entry
                    .stateful_sets
                    .iter()
                    .filter_map(|k| self.stateful_sets.get(k))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn unlink_slice(&mut self, slice: &EndpointSlice) {
        if let Some(entry) = self.per_service.get_mut(&slice.service) {
            entry.slices.remove(&slice.key);
            if entry.is_empty() {
                self.per_service.remove(&slice.service);
            }
        }
    }

    /// The endpoint groups of a Service: its EndpointSlices in name order, else its legacy
    /// Endpoints subsets.
    fn endpoint_groups(&self, service: &ObjectKey) -> Vec<&EndpointSlice> {
        match self.per_service.get(service) {
            Some(entry) if !entry.slices.is_empty() => entry
                .slices
                .iter()
                .filter_map(|k| self.slices.get(k))
                .collect(),
            _ => self
                .legacy_endpoints
                .get(service)
                .map(|subsets| subsets.iter().collect())
                .unwrap_or_default(),
        }
    }

    /// Recomputes one Service's records and publishes them whole.
    fn republish(&mut self, key: &ObjectKey) {
        let records = match self.services.get(key) {
            None => records::ServiceRecords::default(),
            Some(service) => match records::service_records(
                service,
                &self.endpoint_groups(key),
                &self.stateful_sets_of(key),
                self.options,
            ) {
                Ok(records) => records,
                Err(error) => {
                    tracing::warn!(service = %key, %error, "Service not published: a name is invalid");
                    records::ServiceRecords::default()
                }
            },
        };
        // Names one label below the Service's name are found through it, unindexed (see
        // `store`); every other name of the Service is routed to its slot. Those with
        // addresses alone (pods' names) go in the compact table.
        // The Service's own name; `None` when it is not a valid name (then the Service has
        // no records either).
        let service_name = records::service_name(key).ok();
        let base = service_name
            .as_ref()
            .map(|name| store::key(ZoneKind::Forward, name));
        let indexed = |k: &[u8]| {
            !base
                .as_deref()
                .is_some_and(|b| store::found_through_parent(k, b))
        };
        let mut answers = Vec::new();
        let mut pods = PodTableBuilder::default();
        // Names from endpoint hostnames: their table entries say so, for the reverse
        // answers read back from the table.
        let hostname_names: HashSet<&RelativeName> = records
            .reverse
            .iter()
            .filter(|(_, source)| source.from_hostname)
            .map(|(_, source)| &source.target)
            .collect();
        for name in &records.names {
            if name.name.wire().len() + self.longest_zone > MAX_NAME_LEN {
                tracing::warn!(service = %key, name = %name.name, "name left out: longer than 255 octets in the longest zone");
                continue;
            }
            let name_key = store::key(ZoneKind::Forward, &name.name);
            if !indexed(&name_key)
                && let Some(label) = name.name.labels().next()
                && let Some(addresses) = name.addresses_only()
                && pods.add(
                    label,
                    &addresses,
                    name.slot,
                    hostname_names.contains(&name.name),
                )
            {
                continue;
            }
            answers.push(SnapshotEntry::new(
                &name_key,
                &compile_name(name, &self.compile),
            ));
        }
        let snapshot = ServiceSnapshot {
            names: ServiceAnswers::from_iter(answers),
            pods: pods.build(),
            ttl: self.compile.ttl,
            slot_negative_ttl: self.compile.slot_negative_ttl,
            name_in_primary_zone: service_name
                .as_ref()
                .map(|name| [name.wire(), &self.compile.primary_zone].concat().into())
                .unwrap_or_default(),
        };
        let old = self
            .per_service
            .get_mut(key)
            .and_then(|entry| entry.published.take());
        let old_snapshot = old.as_ref().map(|o| o.slot.snapshot());
        let old_keys: BTreeSet<&[u8]> = old_snapshot
            .iter()
            .flat_map(|snapshot| snapshot.names.iter().map(SnapshotEntry::key))
            .collect();
        let slot = old
            .as_ref()
            .map(|o| o.slot.clone())
            .unwrap_or_else(|| self.store.new_slot(key.clone()));
        let unindexed = |s: &ServiceSnapshot| {
            s.pods.len() + s.names.iter().filter(|e| !indexed(e.key())).count()
        };
        self.unindexed_names -= old_snapshot.as_deref().map_or(0, unindexed);
        self.unindexed_names += unindexed(&snapshot);
        // Route new names first (they answer NXDOMAIN from the old snapshot, as before),
        // swap the snapshot, then drop routes of names that are gone.
        for k in snapshot.names.iter().map(SnapshotEntry::key) {
            if !old_keys.contains(k) && indexed(k) {
                self.store.set_route(k, Route::Service(slot.clone()));
            }
        }
        let had_names = old_snapshot
            .as_deref()
            .is_some_and(|s| !s.names.is_empty() || !s.pods.is_empty());
        let has_names = !snapshot.names.is_empty() || !snapshot.pods.is_empty();
        let gone: Vec<&[u8]> = old_keys
            .into_iter()
            .filter(|k| !snapshot.names.contains(k) && indexed(k))
            .collect();
        slot.publish(snapshot);
        for k in gone {
            self.store.remove(k);
        }
        let namespace_ent = RelativeName::from_labels([&*key.namespace, "svc"]);
        if let Ok(ent) = namespace_ent {
            match (had_names, has_names) {
                // `svc` above it is always there (a static name).
                (false, true) => self.ent_ref(ZoneKind::Forward, &ent, false),
                (true, false) => self.ent_unref(ZoneKind::Forward, &ent, false),
                _ => {}
            }
        }
        let old_ips = old.map(|o| o.reverse_ips).unwrap_or_default();
        // Published before its reverse names, which may be answered through its slot.
        self.per_service.entry(key.clone()).or_default().published = Some(Published {
            slot,
            reverse_ips: Addresses::default(),
        });
        let reverse_ips = self.update_reverse(
            key,
            service_name.as_ref(),
            old_ips,
            old_snapshot.as_deref(),
            records.reverse,
        );
        let Some(entry) = self.per_service.get_mut(key) else {
            return;
        };
        if has_names || !reverse_ips.is_empty() {
            if let Some(published) = &mut entry.published {
                published.reverse_ips = reverse_ips;
            }
        } else if let Some(gone) = entry.published.take() {
            // No name of its own and no reverse claim: nothing routes to the slot.
            self.store.release_slot(&gone.slot);
            if entry.is_empty() {
                self.per_service.remove(key);
            }
        }
    }

    /// Replaces the Service's claims on addresses with `new`, republishes the PTR answers of
    /// the addresses whose claims changed, and returns the addresses it claims now.
    /// `base` is the Service's own name; `old_snapshot` is what it published before this:
    /// its claims answered from its pod table are read there.
    fn update_reverse(
        &mut self,
        service: &ObjectKey,
        base: Option<&RelativeName>,
        old_ips: Addresses,
        old_snapshot: Option<&ServiceSnapshot>,
        mut new: Vec<(IpAddr, PtrSource)>,
    ) -> Addresses {
        new.sort();
        let mut old: Vec<(IpAddr, PtrSource)> = Vec::new();
        let mut old_known = true;
        // The Service's claims answered from its pod table: not listed here.
        let mut table_ips = Vec::new();
        for ip in old_ips.iter() {
            if let Some(listed) = self.reverse.get(&ip) {
                old.extend(
                    listed
                        .claims
                        .iter()
                        .filter(|(owner, _)| **owner == *service)
                        .map(|(_, source)| (ip, source.clone())),
                );
            } else if self.is_table_claim(ip, service) {
                table_ips.push(ip);
                let source = old_snapshot.zip(base);
                match source.and_then(|(snapshot, base)| table_source(snapshot, base, ip)) {
                    Some(source) => old.push((ip, source)),
                    None => old_known = false,
                }
            }
        }
        old.sort();
        old.dedup();
        if old_known && old == new {
            return old_ips;
        }
        let owner = Arc::new(service.clone());
        let mut affected: BTreeSet<IpAddr> = old_ips.iter().collect();
        for ip in old_ips.iter() {
            if let Some(listed) = self.reverse.get_mut(&ip) {
                listed.retain(|o| *o != *service);
            }
        }
        for ip in table_ips {
            // A table claim is its owner's only one: the address is left unclaimed.
            self.reverse.insert(
                ip,
                ListedClaims {
                    claims: Box::default(),
                    published: true,
                },
            );
        }
        let mut ips = Vec::with_capacity(new.len());
        for (ip, source) in new {
            affected.insert(ip);
            if ips.last() != Some(&ip) {
                ips.push(ip);
            }
            self.listed_claims(ip).push(owner.clone(), source);
        }
        for ip in affected {
            self.republish_reverse(ip);
        }
        Addresses::new(ips.into_iter())
    }

    /// Whether `service`'s pod table answers the reverse name of `ip`.
    fn is_table_claim(&self, ip: IpAddr, service: &ObjectKey) -> bool {
        self.store
            .ptr_slot(ip)
            .is_some_and(|slot| slot.owner() == service)
    }

    /// The claims on `ip` as a list, to change them. A claim answered from a pod table is
    /// read back from its owner's current table.
    fn listed_claims(&mut self, ip: IpAddr) -> &mut ListedClaims {
        if self.reverse.get(&ip).is_none()
            && let Some(slot) = self.store.ptr_slot(ip)
        {
            let claims: Box<[(Arc<ObjectKey>, PtrSource)]> = match table_claim(&slot, ip) {
                Some(source) => Box::new([(Arc::new(slot.owner().clone()), source)]),
                None => {
                    // The owner republishes its claims with its table, so this is a bug.
                    tracing::error!(%ip, owner = %slot.owner(), "reverse claim's pod table entry is gone; claim dropped");
                    Box::default()
                }
            };
            self.reverse.insert(
                ip,
                ListedClaims {
                    claims,
                    published: true,
                },
            );
        }
        self.reverse.get_or_default(ip)
    }

    /// Publishes the PTR answer of one address from every Service that claims it.
    fn republish_reverse(&mut self, ip: IpAddr) {
        let kind = if ip.is_ipv4() {
            ZoneKind::ReverseV4
        } else {
            ZoneKind::ReverseV6
        };
        let name = reverse_name(ip);
        let key = store::key(kind, &name);
        // Not listed: answered from a pod table, and unchanged (changes list it first).
        let Some(listed) = self.reverse.get_mut(&ip) else {
            return;
        };
        let was_published = listed.published;
        if listed.claims.is_empty() {
            self.reverse.remove(&ip);
            if was_published {
                self.store.set_ptr_slot(ip, None);
                self.store.remove(&key);
                if let Some(parent) = name.parent() {
                    self.ent_unref(kind, &parent, true);
                }
            }
            return;
        }
        listed.published = true;
        // The common case, one pod of one Service, is answered from that Service's pod
        // table: no answer of its own, no key, nothing kept here. The switch between the two
        // forms adds the new one before removing the old, and the pod table is looked at
        // first.
        let through_table = match &*listed.claims {
            [(owner, source)] => self
                .per_service
                .get(&**owner)
                .and_then(|entry| entry.published.as_ref())
                .map(|published| published.slot.clone())
                .filter(|slot| answers_from_table(slot, ip, source)),
            _ => None,
        };
        if let Some(slot) = through_table {
            self.reverse.remove(&ip);
            self.store.set_ptr_slot(ip, Some(&slot));
            self.store.remove(&key);
            if !was_published && let Some(parent) = name.parent() {
                self.ent_ref(kind, &parent, true);
            }
            return;
        }
        let targets = records::ptr_answer(listed.claims.iter().map(|(_, source)| source));
        let records = NameRecords {
            name: name.clone(),
            rrsets: vec![RrSet {
                rtype: rtype::PTR,
                records: targets
                    .into_iter()
                    .map(|t| RData::Ptr(Target::Primary(t)))
                    .collect(),
                additional: vec![],
            }],
            slot: false,
        };
        let answers: NameAnswers = compile_name(&records, &self.compile);
        self.store.set_route(&key, Route::Name(answers));
        self.store.set_ptr_slot(ip, None);
        if !was_published && let Some(parent) = name.parent() {
            self.ent_ref(kind, &parent, true);
        }
    }

    /// One more name below `name`, and with `ancestors` below each of its ancestors short
    /// of the apex too.
    fn ent_ref(&mut self, kind: ZoneKind, name: &RelativeName, ancestors: bool) {
        let mut current = Some(name.clone());
        while let Some(n) = current.filter(|n| !n.is_apex()) {
            let key = store::key(kind, &n);
            let count = self.ent_refs.entry(key.clone()).or_insert(0);
            *count += 1;
            if *count == 1 {
                self.store.set_route(&key, Route::EmptyNonTerminal);
            }
            current = if ancestors { n.parent() } else { None };
        }
    }

    fn ent_unref(&mut self, kind: ZoneKind, name: &RelativeName, ancestors: bool) {
        let mut current = Some(name.clone());
        while let Some(n) = current.filter(|n| !n.is_apex()) {
            let key = store::key(kind, &n);
            if let Some(count) = self.ent_refs.get_mut(&key) {
                *count = count.saturating_sub(1);
                if *count == 0 {
                    self.ent_refs.remove(&key);
                    self.store.remove(&key);
                }
            }
            current = if ancestors { n.parent() } else { None };
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
            let first = tokio::select! {
                biased;
                _ = shutdown.changed() => return,
                first = changes.recv() => match first {
                    Some(change) => change,
                    None => return,
                },
            };
            batch.push(first);
            // Coalescing takes what is already queued and waits for nothing more: a lone
            // change is published at once, a burst as one batch.
            while let Ok(next) = changes.try_recv() {
                batch.push(next);
            }
            self.apply_timed(&mut batch);
        }
    }

    /// Applies a batch and records each change's programming latency.
    pub fn apply_timed(&mut self, batch: &mut Vec<Timed>) -> Stats {
        let started = Instant::now();
        let size = batch.len();
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

fn count_endpoints(subsets: &[EndpointSlice]) -> usize {
    subsets.iter().map(|s| s.endpoints.len()).sum()
}

/// `namespace/spec.serviceName` of a StatefulSet.
fn governing_service(sts: &StatefulSet) -> ObjectKey {
    // Shares the strings: no allocation for a key kept in a map.
    ObjectKey {
        namespace: sts.key.namespace.clone(),
        name: sts.service_name.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compile::{ANY_ZONE, zone_wire};
    use crate::store::Lookup;

    fn controller() -> (Arc<Store>, Controller) {
        let zone = RelativeName::from_labels(["cluster", "local"]).unwrap();
        let store = Arc::new(Store::new());
        let ctx = CompileContext {
            ttl: 5,
            forward_zones: vec![zone_wire(&zone)],
            primary_zone: zone_wire(&zone),
            slot_negative_ttl: 1,
        };
        (
            store.clone(),
            Controller::new(store, ctx, 5, RecordOptions::default(), Default::default()),
        )
    }

    fn types_at(store: &Store, kind: ZoneKind, name: &str) -> Option<Vec<u16>> {
        let name = if name.is_empty() {
            RelativeName::apex()
        } else {
            RelativeName::from_labels(name.split('.')).unwrap()
        };
        store.lookup(&store::key(kind, &name), |l| match l {
            Lookup::NoName => None,
            Lookup::EmptyNonTerminal => Some(vec![]),
            Lookup::Name(a) => Some(a.rrsets().map(|r| r.rtype).collect()),
            Lookup::Addresses(a) => Some(
                [rtype::A, rtype::AAAA]
                    .into_iter()
                    .filter(|t| !a.entry.addresses(*t).0.is_empty())
                    .collect(),
            ),
            Lookup::Ptr(_) => Some(vec![rtype::PTR]),
        })
    }

    fn headless(name: &str, pods: &[(&str, &str)]) -> Vec<Change> {
        use crate::model::{Endpoint, Port, Protocol, Service, ServiceKind};
        let service = ObjectKey::new("demo", name);
        vec![
            Change::Apply(Object::Service(Service {
                key: service.clone(),
                kind: ServiceKind::Headless,
                ports: vec![],
                publish_not_ready: false,
            })),
            Change::Apply(Object::EndpointSlice(EndpointSlice {
                key: ObjectKey::new("demo", format!("{name}-x")),
                service,
                endpoints: pods
                    .iter()
                    .map(|(host, ip)| Endpoint {
                        ip: ip.parse().unwrap(),
                        hostname: (!host.is_empty()).then(|| host.to_string()),
                        ready: true,
                        terminating: false,
                    })
                    .collect(),
                ports: vec![Port {
                    name: "web".into(),
                    protocol: Protocol::Tcp,
                    port: 80,
                }],
            })),
        ]
    }

    fn ptr(store: &Store, reversed: &str) -> Option<Vec<u16>> {
        types_at(store, ZoneKind::ReverseV4, reversed)
    }

    /// Dotted wire name.
    fn dotted(wire: &[u8]) -> String {
        let mut labels = Vec::new();
        let mut at = 0;
        while let Some(&len) = wire.get(at).filter(|&&l| l != 0) {
            let label = &wire[at + 1..at + 1 + usize::from(len)];
            labels.push(String::from_utf8_lossy(label).into_owned());
            at += 1 + usize::from(len);
        }
        labels.join(".")
    }

    /// The targets of a reverse name's PTR records, and whether they come from a pod table.
    fn ptr_targets(store: &Store, reversed: &str) -> Option<(bool, Vec<String>)> {
        let name = RelativeName::from_labels(reversed.split('.')).unwrap();
        store.lookup(&store::key(ZoneKind::ReverseV4, &name), |l| match l {
            Lookup::Ptr(p) => Some((
                true,
                vec![format!(
                    "{}.{}",
                    dotted(&[&[p.label.len() as u8], p.label].concat()),
                    dotted(p.suffix)
                )],
            )),
            Lookup::Name(a) => {
                let rrset = a.find(rtype::PTR, ANY_ZONE)?;
                let mut targets = Vec::new();
                let mut rest = rrset.answer;
                // Each record: owner pointer (2), type, class, TTL, RDLENGTH, the target.
                while rest.len() > 12 {
                    let rdlen = usize::from(u16::from_be_bytes([rest[10], rest[11]]));
                    targets.push(dotted(&rest[12..12 + rdlen]));
                    rest = &rest[12 + rdlen..];
                }
                Some((false, targets))
            }
            _ => None,
        })
    }

    #[test]
    fn reverse_names_follow_every_claim() {
        let (store, mut controller) = controller();
        // One pod in a StatefulSet's Service (hostname) and in a second headless Service.
        controller.apply(headless("nginx", &[("web-0", "10.0.0.1")]));
        let web_0 = "web-0.nginx.demo.svc.cluster.local".to_string();
        controller.apply([Change::Synced]);
        assert_eq!(
            ptr_targets(&store, "1.0.0.10"),
            Some((true, vec![web_0.clone()])),
            "one claim: answered from the pod table"
        );
        controller.apply(headless("other", &[("", "10.0.0.1"), ("", "10.0.0.2")]));
        assert_eq!(ptr(&store, "1.0.0.10"), Some(vec![rtype::PTR]));
        assert_eq!(ptr(&store, "2.0.0.10"), Some(vec![rtype::PTR]));
        assert_eq!(
            ptr_targets(&store, "1.0.0.10"),
            Some((false, vec![web_0.clone()])),
            "two claims: compiled, the hostname's name wins"
        );
        assert_eq!(
            ptr_targets(&store, "2.0.0.10"),
            Some((
                true,
                vec!["10-0-0-2.other.demo.svc.cluster.local".to_string()]
            ))
        );
        assert_eq!(ptr(&store, "0.0.10"), Some(vec![]), "empty non-terminal");
        // The pod leaves `other`: its address stays claimed by nginx.
        controller.apply(headless("other", &[("", "10.0.0.2")]));
        assert_eq!(ptr(&store, "1.0.0.10"), Some(vec![rtype::PTR]));
        assert_eq!(ptr_targets(&store, "1.0.0.10"), Some((true, vec![web_0])));
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        assert!(
            controller.reverse.get(&ip).is_none() && store.ptr_slot(ip).is_some(),
            "back to one claim: the controller keeps nothing for it"
        );
        // The pod is renamed at the same address: the new label is the target.
        controller.apply(headless("nginx", &[("web-5", "10.0.0.1")]));
        assert_eq!(
            ptr_targets(&store, "1.0.0.10"),
            Some((true, vec!["web-5.nginx.demo.svc.cluster.local".to_string()]))
        );
        // Two Services without hostnames: both names.
        controller.apply(headless("third", &[("", "10.0.0.2")]));
        assert_eq!(
            ptr_targets(&store, "2.0.0.10"),
            Some((
                false,
                vec![
                    "10-0-0-2.other.demo.svc.cluster.local".to_string(),
                    "10-0-0-2.third.demo.svc.cluster.local".to_string()
                ]
            ))
        );
        controller.apply([Change::Delete(
            Kind::Service,
            ObjectKey::new("demo", "third"),
        )]);
        // Deleting both Services removes every reverse name and the empty non-terminals.
        controller.apply([
            Change::Delete(Kind::Service, ObjectKey::new("demo", "nginx")),
            Change::Delete(Kind::Service, ObjectKey::new("demo", "other")),
        ]);
        for name in ["1.0.0.10", "2.0.0.10", "0.0.10", "0.10", "10"] {
            assert_eq!(ptr(&store, name), None, "{name}");
        }
        assert_eq!(types_at(&store, ZoneKind::Forward, "demo.svc"), None);
        assert_eq!(
            types_at(&store, ZoneKind::ReverseV4, ""),
            Some(vec![rtype::SOA, rtype::NS])
        );
    }

    #[test]
    fn a_deleted_services_slot_number_goes_to_the_next_service() {
        let (store, mut controller) = controller();
        controller.apply(headless("nginx", &[("web-0", "10.0.0.1")]));
        controller.apply([Change::Synced]);
        let web_0 = "web-0.nginx.demo.svc.cluster.local".to_string();
        assert_eq!(
            ptr_targets(&store, "1.0.0.10"),
            Some((true, vec![web_0.clone()]))
        );
        controller.apply([Change::Delete(
            Kind::Service,
            ObjectKey::new("demo", "nginx"),
        )]);
        assert_eq!(ptr(&store, "1.0.0.10"), None);
        // db's slot takes the number nginx's had; only db's own address answers through it.
        controller.apply(headless("db", &[("db-0", "10.0.0.7")]));
        assert_eq!(
            ptr_targets(&store, "7.0.0.10"),
            Some((true, vec!["db-0.db.demo.svc.cluster.local".to_string()]))
        );
        assert_eq!(ptr(&store, "1.0.0.10"), None);
        let owner = |ip: &str| {
            let slot = store.ptr_slot(ip.parse().unwrap())?;
            Some(slot.owner().to_string())
        };
        assert_eq!(owner("10.0.0.7").as_deref(), Some("demo/db"));
        assert_eq!(owner("10.0.0.1"), None);
        // nginx back: a new number, its reverse name again.
        controller.apply(headless("nginx", &[("web-0", "10.0.0.1")]));
        assert_eq!(ptr_targets(&store, "1.0.0.10"), Some((true, vec![web_0])));
        assert_eq!(owner("10.0.0.1").as_deref(), Some("demo/nginx"));
        assert_eq!(owner("10.0.0.7").as_deref(), Some("demo/db"));
    }

    #[test]
    fn a_claim_the_pod_table_would_read_back_differently_stays_listed() {
        let (store, mut controller) = controller();
        // `10-0-0-2` is one endpoint's hostname and the other's dashed address: one name,
        // one table entry flagged as a hostname, but 10.0.0.2's claim is not a hostname's.
        controller.apply(headless(
            "nginx",
            &[("10-0-0-2", "10.0.0.1"), ("", "10.0.0.2")],
        ));
        controller.apply([Change::Synced]);
        let name = "10-0-0-2.nginx.demo.svc.cluster.local".to_string();
        assert_eq!(
            ptr_targets(&store, "1.0.0.10"),
            Some((true, vec![name.clone()]))
        );
        assert_eq!(
            ptr_targets(&store, "2.0.0.10"),
            Some((false, vec![name.clone()]))
        );
        // A second Service without hostnames claims 10.0.0.2: neither claim is a
        // hostname's, so both names answer.
        controller.apply(headless("other", &[("", "10.0.0.2")]));
        assert_eq!(
            ptr_targets(&store, "2.0.0.10"),
            Some((
                false,
                vec![name, "10-0-0-2.other.demo.svc.cluster.local".to_string()]
            ))
        );
    }

    fn service_in(namespace: &str, name: &str) -> Object {
        use crate::model::ServiceKind;
        Object::Service(Service {
            key: ObjectKey::new(namespace, name),
            kind: ServiceKind::Headless,
            ports: vec![],
            publish_not_ready: false,
        })
    }

    #[test]
    fn pod_names_are_counted_and_go_with_their_service_though_not_indexed() {
        let (store, mut controller) = controller();
        let fixed = controller.stats().names;
        controller.apply(headless(
            "nginx",
            &[("web-0", "10.0.0.1"), ("web-1", "10.0.0.2")],
        ));
        // nginx, web-0, web-1, _tcp and _web._tcp under it, demo.svc; two reverse names and
        // their ancestors 0.0.10, 0.10 and 10.
        assert_eq!(controller.stats().names, fixed + 11);
        assert_eq!(
            store.len(),
            fixed + 11 - 3,
            "web-0, web-1 and _tcp are not indexed"
        );
        assert_eq!(
            types_at(&store, ZoneKind::Forward, "web-1.nginx.demo.svc"),
            Some(vec![rtype::A])
        );
        assert_eq!(
            types_at(&store, ZoneKind::Forward, "_tcp.nginx.demo.svc"),
            Some(vec![])
        );
        assert_eq!(
            types_at(&store, ZoneKind::Forward, "_web._tcp.nginx.demo.svc"),
            Some(vec![rtype::SRV])
        );
        controller.apply([Change::Delete(
            Kind::Service,
            ObjectKey::new("demo", "nginx"),
        )]);
        assert_eq!(
            types_at(&store, ZoneKind::Forward, "web-0.nginx.demo.svc"),
            None
        );
        assert_eq!(types_at(&store, ZoneKind::Forward, "nginx.demo.svc"), None);
        assert_eq!(controller.stats().names, fixed);
        assert_eq!(store.len(), fixed);
    }

    #[test]
    fn a_relist_replaces_one_kind_in_one_namespace() {
        let (store, mut controller) = controller();
        controller.apply(headless("nginx", &[("web-0", "10.0.0.1")]));
        controller.apply(headless("other", &[("", "10.0.0.2")]));
        controller.apply([Change::Apply(service_in("data", "zk"))]);
        assert_eq!(controller.stats().endpoints, 2);
        // The relist of Services in demo no longer has `other`; data's are untouched, and
        // an unchanged nginx is not even republished.
        controller.apply([Change::ReplaceKind {
            kind: Kind::Service,
            namespace: Some("demo".into()),
            objects: vec![service_in("demo", "nginx"), service_in("data", "ignored")],
        }]);
        assert_eq!(controller.stats().services, 2);
        assert!(
            controller
                .services
                .get(&ObjectKey::new("data", "zk"))
                .is_some()
        );
        assert!(
            controller
                .services
                .get(&ObjectKey::new("data", "ignored"))
                .is_none()
        );
        assert_eq!(types_at(&store, ZoneKind::Forward, "other.demo.svc"), None);
        assert_eq!(ptr(&store, "2.0.0.10"), None);
        assert_eq!(
            types_at(&store, ZoneKind::Forward, "web-0.nginx.demo.svc"),
            Some(vec![rtype::A])
        );
        // An empty relist of every namespace's EndpointSlices empties the Services.
        controller.apply([Change::ReplaceKind {
            kind: Kind::EndpointSlice,
            namespace: None,
            objects: vec![],
        }]);
        assert_eq!(controller.stats().endpoints, 0);
        assert_eq!(
            types_at(&store, ZoneKind::Forward, "web-0.nginx.demo.svc"),
            None
        );
        assert!(
            !store.is_ready(),
            "only Synced or ReplaceAll mark the store ready"
        );
    }

    #[test]
    fn a_renamed_pod_moves_its_names() {
        let (store, mut controller) = controller();
        controller.apply(headless("nginx", &[("web-0", "10.0.0.1")]));
        controller.apply(headless("nginx", &[("web-0", "10.0.0.9")]));
        assert_eq!(ptr(&store, "1.0.0.10"), None);
        assert_eq!(ptr(&store, "9.0.0.10"), Some(vec![rtype::PTR]));
        assert_eq!(
            types_at(&store, ZoneKind::Forward, "web-0.nginx.demo.svc"),
            Some(vec![rtype::A])
        );
    }

    #[test]
    fn static_names() {
        let (store, mut controller) = controller();
        let (_, objects) =
            crate::manifests::ManifestSet::load(concat!(env!("CARGO_MANIFEST_DIR"), "/config"))
                .unwrap();
        controller.apply([Change::ReplaceAll(objects)]);
        assert_eq!(
            types_at(&store, ZoneKind::Forward, ""),
            Some(vec![rtype::SOA, rtype::NS])
        );
        assert_eq!(
            types_at(&store, ZoneKind::Forward, "dns-version"),
            Some(vec![rtype::TXT])
        );
        assert_eq!(types_at(&store, ZoneKind::Forward, "svc"), Some(vec![]));
        assert_eq!(
            types_at(&store, ZoneKind::ReverseV4, ""),
            Some(vec![rtype::SOA, rtype::NS])
        );
    }
}
