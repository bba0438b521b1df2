//! Joining the objects: each Service with the EndpointSlices (or legacy Endpoints) and
//! StatefulSets that name it. A change marks the Services it touches dirty; unchanged
//! objects mark nothing, so a relist of an unchanged cluster republishes nothing.

use std::collections::{BTreeSet, HashMap, HashSet};

use crate::controller::Controller;
use crate::controller::publish::Published;
use crate::model::{EndpointSlice, Kind, Object, ObjectKey, StatefulSet};

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

    pub(super) fn upsert(&mut self, object: Object, dirty: &mut BTreeSet<ObjectKey>) {
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

    pub(super) fn delete(&mut self, kind: Kind, key: &ObjectKey, dirty: &mut BTreeSet<ObjectKey>) {
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
        if let Some(entry) = self.per_service.get_mut(&slice.service) {
            entry.slices.remove(&slice.key);
            if entry.is_empty() {
                self.per_service.remove(&slice.service);
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
