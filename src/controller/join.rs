//! Joining the objects: each Service with the EndpointSlices (or legacy Endpoints) and
//! StatefulSets that name it. A change marks the Services it touches dirty; unchanged
//! objects mark nothing, so a relist of an unchanged cluster republishes nothing.

use std::collections::{BTreeSet, HashMap, HashSet};

use crate::controller::Controller;
use crate::controller::owner::Owner;
use crate::controller::publish::Published;
use crate::model::{EndpointSlice, Kind, Object, ObjectKey, SliceOf, StatefulSet};

/// What a batch's changes touched: the Services and the ServiceImports to republish.
#[derive(Debug, Default)]
pub(super) struct Dirty {
    pub(super) services: BTreeSet<ObjectKey>,
    pub(super) imports: BTreeSet<ObjectKey>,
}

impl Dirty {
    pub(super) fn is_empty(&self) -> bool {
        self.services.is_empty() && self.imports.is_empty()
    }

    /// Marks what `owner` names.
    pub(super) fn mark(&mut self, owner: Owner) {
        match owner {
            Owner::Service(key) => self.services.insert(key),
            Owner::Import(key) | Owner::ImportCluster(key, _) => self.imports.insert(key),
        };
    }
}

/// What a slice's endpoints serve: its Service, or its ServiceImport.
pub(super) fn slice_owner(slice: &EndpointSlice) -> Owner {
    match slice.of {
        SliceOf::Service => Owner::Service(slice.service.clone()),
        SliceOf::Import { .. } => Owner::Import(slice.service.clone()),
    }
}

/// A small ordered set of object keys (the slices or StatefulSets of one Service: usually
/// one). A `BTreeSet` would allocate a node for eleven keys for each of them.
#[derive(Debug, Default)]
pub(super) struct SortedKeys(Box<[ObjectKey]>);

impl SortedKeys {
    pub(super) fn insert(&mut self, key: ObjectKey) {
        if let Err(at) = self.0.binary_search(&key) {
            let mut keys = std::mem::take(&mut self.0).into_vec();
            keys.insert(at, key);
            self.0 = keys.into_boxed_slice();
        }
    }

    pub(super) fn remove(&mut self, key: &ObjectKey) {
        if let Ok(at) = self.0.binary_search(key) {
            let mut keys = std::mem::take(&mut self.0).into_vec();
            keys.remove(at);
            self.0 = keys.into_boxed_slice();
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = &ObjectKey> {
        self.0.iter()
    }
}

/// What the controller keeps per Service key besides the Service itself: the objects that
/// name it, each set in name order (slices merge in that order, which is part of
/// determinism), and what it published. One map entry for both: a map entry per Service
/// is a per-endpoint cost at a few pods per Service.
#[derive(Debug, Default)]
pub(super) struct ServiceEntry {
    /// EndpointSlices naming it in `kubernetes.io/service-name`.
    pub(super) slices: SortedKeys,
    /// StatefulSets naming it in `spec.serviceName`.
    pub(super) stateful_sets: SortedKeys,
    pub(super) published: Option<Published>,
}

impl ServiceEntry {
    /// Nothing names the Service and it has nothing in the store: the entry can go.
    pub(super) fn is_empty(&self) -> bool {
        self.slices.is_empty() && self.stateful_sets.is_empty() && self.published.is_none()
    }
}

impl Controller {
    /// Upserts `objects`, then deletes what is known of `kind` (every kind when `None`) in
    /// `namespace` (every namespace when `None`) and was not among them. Unchanged objects
    /// leave their Service clean, so a relist of an unchanged cluster republishes nothing.
    pub(super) fn replace(
        &mut self,
        kind: Option<Kind>,
        namespace: Option<&str>,
        objects: Vec<Object>,
        dirty: &mut Dirty,
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
                Kind::ServiceImport => Box::new(self.imports.keys()),
                Kind::ClusterProperty => Box::new(self.cluster_property.iter().map(|p| &p.key)),
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

    pub(super) fn upsert(&mut self, object: Object, dirty: &mut Dirty) {
        match object {
            Object::Service(service) => {
                if self.services.get(&service.key) != Some(&service) {
                    dirty.services.insert(service.key.clone());
                    self.services.insert(service);
                }
            }
            Object::EndpointSlice(mut slice) => {
                if let SliceOf::Import {
                    cluster: Some(cluster),
                } = &mut slice.of
                {
                    *cluster = self.cluster_ids.intern(cluster);
                }
                if self.slices.get(&slice.key) == Some(&slice) {
                    return;
                }
                let owner = slice_owner(&slice);
                match &owner {
                    Owner::Service(service) => self
                        .per_service
                        .entry(service.clone())
                        .or_default()
                        .slices
                        .insert(slice.key.clone()),
                    Owner::Import(import) | Owner::ImportCluster(import, _) => self
                        .per_import
                        .entry(import.clone())
                        .or_default()
                        .slices
                        .insert(slice.key.clone()),
                }
                self.endpoints += slice.endpoints.len();
                if let Some(old) = self.slices.insert(slice) {
                    self.endpoints -= old.endpoints.len();
                    let old_owner = slice_owner(&old);
                    if old_owner != owner {
                        self.unlink_slice(&old);
                        dirty.mark(old_owner);
                    }
                }
                dirty.mark(owner);
            }
            Object::Endpoints { service, subsets } => {
                if self.legacy_endpoints.get(&service) != Some(&subsets) {
                    dirty.services.insert(service.clone());
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
                self.mark_governed(service, dirty);
                let service_name = sts.service_name.clone();
                if let Some(old) = self.stateful_sets.insert(sts)
                    && old.service_name != service_name
                {
                    self.unlink_stateful_set(&old);
                    self.mark_governed(governing_service(&old), dirty);
                }
            }
            Object::ServiceImport(import) => self.upsert_import(import, dirty),
            Object::ClusterProperty(property) => self.set_cluster_property(Some(property), dirty),
        }
    }

    pub(super) fn delete(&mut self, kind: Kind, key: &ObjectKey, dirty: &mut Dirty) {
        match kind {
            Kind::Service => {
                if self.services.remove(key).is_some() {
                    dirty.services.insert(key.clone());
                }
            }
            Kind::EndpointSlice => {
                if let Some(old) = self.slices.remove(key) {
                    self.endpoints -= old.endpoints.len();
                    self.unlink_slice(&old);
                    dirty.mark(slice_owner(&old));
                }
            }
            Kind::Endpoints => {
                if let Some(old) = self.legacy_endpoints.remove(key) {
                    self.endpoints -= count_endpoints(&old);
                    dirty.services.insert(key.clone());
                }
            }
            Kind::StatefulSet => {
                if let Some(old) = self.stateful_sets.remove(key) {
                    self.unlink_stateful_set(&old);
                    self.mark_governed(governing_service(&old), dirty);
                }
            }
            Kind::ServiceImport => self.delete_import(key, dirty),
            Kind::ClusterProperty => {
                if self
                    .cluster_property
                    .as_ref()
                    .is_some_and(|p| p.key == *key)
                {
                    self.set_cluster_property(None, dirty);
                }
            }
        }
    }

    /// Marks the Service a StatefulSet governs, and the ServiceImport of the same name,
    /// whose local pods keep their ordinal slots.
    fn mark_governed(&self, service: ObjectKey, dirty: &mut Dirty) {
        if self.clusterset.is_some() {
            dirty.imports.insert(service.clone());
        }
        dirty.services.insert(service);
    }

    pub(super) fn unlink_stateful_set(&mut self, sts: &StatefulSet) {
        let service = governing_service(sts);
        if let Some(entry) = self.per_service.get_mut(&service) {
            entry.stateful_sets.remove(&sts.key);
            if entry.is_empty() {
                self.per_service.remove(&service);
            }
        }
    }

    /// The StatefulSets a Service governs, in name order.
    pub(super) fn stateful_sets_of(&self, service: &ObjectKey) -> Vec<&StatefulSet> {
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

    pub(super) fn unlink_slice(&mut self, slice: &EndpointSlice) {
        match slice_owner(slice) {
            Owner::Service(service) => {
                if let Some(entry) = self.per_service.get_mut(&service) {
                    entry.slices.remove(&slice.key);
                    if entry.is_empty() {
                        self.per_service.remove(&service);
                    }
                }
            }
            Owner::Import(import) | Owner::ImportCluster(import, _) => {
                if let Some(entry) = self.per_import.get_mut(&import) {
                    entry.slices.remove(&slice.key);
                    if entry.is_empty() {
                        self.per_import.remove(&import);
                    }
                }
            }
        }
    }

    /// The endpoint groups of a Service: its EndpointSlices in name order, else its legacy
    /// Endpoints subsets.
    pub(super) fn endpoint_groups(&self, service: &ObjectKey) -> Vec<&EndpointSlice> {
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
