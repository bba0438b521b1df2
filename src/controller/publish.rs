//! Publishing one Service (or one ServiceImport, in the clusterset zone): its records
//! compiled into a snapshot (pods' names in the pod table, the rest as packed answers),
//! routes added before the swap and removed after it, the namespace's empty non-terminal,
//! then its reverse claims.

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;

use crate::controller::Controller;
use crate::controller::owner::Owner;
use crate::controller::records::{self, ServiceRecords};
use crate::controller::reverse::Addresses;
use crate::dns::name::{MAX_NAME_LEN, RelativeName};
use crate::model::ObjectKey;
use crate::store::compile::compile_name;
use crate::store::pod_table::PodTableBuilder;
use crate::store::{
    self, Route, ServiceAnswers, ServiceSlot, ServiceSnapshot, SnapshotEntry, ZoneKind,
};

/// What one Service has in the store, so the next publish can remove what disappeared.
#[derive(Debug)]
pub(super) struct Published {
    /// The Service's snapshot; its keys are the names the Service has in the store.
    pub(super) slot: Arc<ServiceSlot>,
    /// The addresses it claims for reverse lookups.
    pub(super) reverse_ips: Addresses,
}

/// Which Service each of the store's slots holds, by slot number: the store keeps answers,
/// not whose they are, and a reverse name answered from a slot's pod table is that
/// Service's claim. Numbers are dense (released ones are reused first), so a vector.
#[derive(Debug, Default)]
pub(super) struct SlotOwners(Vec<Option<Owner>>);

impl SlotOwners {
    fn set(&mut self, slot: &ServiceSlot, owner: Owner) {
        let at = slot.number() as usize;
        if self.0.len() <= at {
            self.0.resize(at + 1, None);
        }
        self.0[at] = Some(owner);
    }

    fn clear(&mut self, slot: &ServiceSlot) {
        if let Some(owner) = self.0.get_mut(slot.number() as usize) {
            *owner = None;
        }
    }

    /// The Service (or import) whose answers `slot` holds.
    pub(super) fn get(&self, slot: &ServiceSlot) -> Option<&Owner> {
        self.0.get(slot.number() as usize)?.as_ref()
    }
}

impl Controller {
    /// Recomputes one Service's records and publishes them whole.
    pub(super) fn republish(&mut self, key: &ObjectKey) {
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
        self.publish(&Owner::Service(key.clone()), records);
    }

    fn published_mut(&mut self, owner: &Owner) -> Option<&mut Option<Published>> {
        match owner {
            Owner::Service(key) => self.per_service.get_mut(key).map(|e| &mut e.published),
            Owner::Import(key) => self.per_import.get_mut(key).map(|e| &mut e.published),
            Owner::ImportCluster(key, cluster) => self
                .per_import
                .get_mut(key)
                .and_then(|e| e.clusters.get_mut(cluster)),
        }
    }

    fn set_published(&mut self, owner: &Owner, published: Option<Published>) {
        match owner {
            Owner::Service(key) => {
                let entry = self.per_service.entry(key.clone()).or_default();
                entry.published = published;
                if entry.is_empty() {
                    self.per_service.remove(key);
                }
            }
            Owner::Import(key) => {
                let entry = self.per_import.entry(key.clone()).or_default();
                entry.published = published;
                if entry.is_empty() {
                    self.per_import.remove(key);
                }
            }
            Owner::ImportCluster(key, cluster) => {
                let entry = self.per_import.entry(key.clone()).or_default();
                match published {
                    Some(published) => {
                        entry.clusters.insert(cluster.clone(), Some(published));
                    }
                    None => {
                        entry.clusters.remove(cluster);
                    }
                }
                if entry.is_empty() {
                    self.per_import.remove(key);
                }
            }
        }
    }

    /// Publishes `records`, everything `owner` has, whole: compiled into its slot's new
    /// snapshot, routes added before the swap and removed after it, then its reverse claims.
    pub(super) fn publish(&mut self, owner: &Owner, records: ServiceRecords) {
        let key = owner.key();
        let kind = owner.zone_kind();
        let published = self.published_mut(owner).is_some_and(|p| p.is_some());
        if !published && records.names.is_empty() && records.reverse.is_empty() {
            // Nothing before, nothing now: no slot to take and give back.
            return;
        }
        let Some((compile, longest_zone)) = self.encoding(kind) else {
            return;
        };
        // Names one label below the Service's name are found through it, unindexed (see
        // `store`); every other name of the Service is routed to its slot. Those with
        // addresses alone (pods' names) go in the compact table.
        // The Service's own name; `None` when it is not a valid name (then the Service has
        // no records either).
        let service_name = owner.base_name().ok();
        let base = service_name.as_ref().map(|name| store::key(kind, name));
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
            if name.name.wire().len() + longest_zone > MAX_NAME_LEN {
                tracing::warn!(service = %owner, name = %name.name, "name left out: longer than 255 octets in the longest zone");
                continue;
            }
            let name_key = store::key(kind, &name.name);
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
            answers.push(SnapshotEntry::new(&name_key, &compile_name(name, compile)));
        }
        // A pod table's reverse answers name its pods in the zone the owner's names are in.
        let own_zone = match kind {
            ZoneKind::ClusterSet => compile.forward_zones.first().cloned().unwrap_or_default(),
            _ => compile.primary_zone.clone(),
        };
        let snapshot = ServiceSnapshot {
            names: ServiceAnswers::from_iter(answers),
            pods: pods.build(),
            ttl: compile.ttl,
            slot_negative_ttl: compile.slot_negative_ttl,
            name_in_primary_zone: service_name
                .as_ref()
                .map(|name| [name.wire(), &own_zone].concat().into())
                .unwrap_or_default(),
        };
        let old = self.published_mut(owner).and_then(Option::take);
        let old_snapshot = old.as_ref().map(|o| o.slot.snapshot());
        let old_keys: BTreeSet<&[u8]> = old_snapshot
            .iter()
            .flat_map(|snapshot| snapshot.names.iter().map(SnapshotEntry::key))
            .collect();
        let slot = old.as_ref().map(|o| o.slot.clone()).unwrap_or_else(|| {
            let slot = self.store.new_slot();
            self.slot_owners.set(&slot, owner.clone());
            slot
        });
        let unindexed = |s: &ServiceSnapshot| {
            s.pods.len() + s.names.iter().filter(|e| !indexed(e.key())).count()
        };
        self.unindexed_names -= old_snapshot.as_deref().map_or(0, unindexed);
        self.unindexed_names += unindexed(&snapshot);
        // For the journal: every name the swap may change, as it is before.
        if self.journaling()
            && let Some(service_key) = base.as_deref()
        {
            let names: Vec<Box<[u8]>> = old_snapshot
                .iter()
                .flat_map(|s| s.names.iter().map(|e| Box::from(e.key())))
                .chain(snapshot.names.iter().map(|e| Box::from(e.key())))
                .collect();
            if let Some(old) = old_snapshot.as_deref() {
                self.touch_snapshot(service_key, std::iter::empty(), &old.pods);
            }
            self.touch_snapshot(service_key, names.into_iter(), &snapshot.pods);
        }
        // Route new names first (they answer NXDOMAIN from the old snapshot, as before),
        // swap the snapshot, then drop routes of names that are gone. A new name another
        // slot routes now (an import's own names, moving to another cluster's slot) is
        // routed here after the swap, when this snapshot has it.
        let route = |k: &[u8]| match base.as_deref() == Some(k) {
            true => Route::Service(slot.clone()),
            false => Route::SlotName(slot.clone()),
        };
        let mut moved_here = Vec::new();
        for k in snapshot.names.iter().map(SnapshotEntry::key) {
            if !old_keys.contains(k) && indexed(k) {
                if self.store.has_route(k) {
                    moved_here.push(k.to_vec());
                } else {
                    self.store.set_route(k, route(k));
                }
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
        for k in &moved_here {
            self.store.set_route(k, route(k));
        }
        for k in gone {
            self.store.remove_if_routed_to(k, &slot);
        }
        let namespace_ent = RelativeName::from_labels([&*key.namespace, "svc"]);
        if let Ok(ent) = namespace_ent {
            match (had_names, has_names) {
                // `svc` above it is always there (a static name).
                (false, true) => self.ent_ref(kind, &ent, false),
                (true, false) => self.ent_unref(kind, &ent, false),
                _ => {}
            }
        }
        let old_ips = old.map(|o| o.reverse_ips).unwrap_or_default();
        // Published before its reverse names, which may be answered through its slot.
        self.set_published(
            owner,
            Some(Published {
                slot,
                reverse_ips: Addresses::default(),
            }),
        );
        let reverse_ips = self.update_reverse(
            owner,
            service_name.as_ref(),
            old_ips,
            old_snapshot.as_deref(),
            records.reverse,
        );
        let Some(published) = self.published_mut(owner) else {
            return;
        };
        if has_names || !reverse_ips.is_empty() {
            if let Some(published) = published {
                published.reverse_ips = reverse_ips;
            }
        } else if let Some(gone) = published.take() {
            // No name of its own and no reverse claim: nothing routes to the slot.
            self.store.release_slot(&gone.slot);
            self.slot_owners.clear(&gone.slot);
            self.set_published(owner, None);
        }
    }
}
