//! ServiceImports (the Multi-Cluster Services API, `--clusterset-zone`): each import joined
//! with its imported EndpointSlices, and with this cluster's StatefulSets of the same name
//! (their pods keep ordinal slots under this cluster's id), published into the clusterset
//! zone through the same snapshot, routes and reverse claims as a Service
//! ([`publish`](super::publish)).
//!
//! This cluster's id names its own slices (those without a source-cluster label) and its
//! slots: the `cluster.clusterset.k8s.io` ClusterProperty when there is one, else
//! `--cluster-id`. A change of id republishes every import.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::controller::Controller;
use crate::controller::clusterset_records::{self, ClusterSlices, LocalCluster};
use crate::controller::join::{Dirty, SortedKeys};
use crate::controller::owner::Owner;
use crate::controller::publish::Published;
use crate::controller::records::ServiceRecords;
use crate::controller::zone_records;
use crate::model::{ClusterProperty, EndpointSlice, ObjectKey, ServiceImport, SliceOf};
use crate::store::ZoneKind;
use crate::store::compile::CompileContext;

/// How the clusterset zone is served.
#[derive(Debug, Clone)]
pub struct ClusterSetSettings {
    /// Encoding for the clusterset zone: its wire name as the one forward zone (SRV targets
    /// are written in it), the TTLs of the cluster zones.
    pub compile: CompileContext,
    /// `--cluster-id`: this cluster's id when no ClusterProperty gives one.
    pub cluster_id: Option<Arc<str>>,
}

/// What the controller keeps per ServiceImport key besides the import: its imported slices
/// in name order, and what it published: each cluster's names (`Owner::ImportCluster`, the
/// first cluster's with the import's own), or the import's own names alone
/// (`Owner::Import`) when it has no cluster names.
#[derive(Debug, Default)]
pub(super) struct ImportEntry {
    pub(super) slices: SortedKeys,
    pub(super) published: Option<Published>,
    /// By cluster id, in order. A small sorted list: an import has a few clusters, and a
    /// map's node (room for eleven) would cost more than its endpoints at a few pods per
    /// cluster.
    pub(super) clusters: ClusterSlots,
}

/// What each cluster of an import published, by cluster id, in order.
#[derive(Debug, Default)]
pub(super) struct ClusterSlots(Vec<(Arc<str>, Option<Published>)>);

impl ClusterSlots {
    pub(super) fn get(&self, cluster: &str) -> Option<&Option<Published>> {
        let at = self.0.binary_search_by(|(c, _)| (**c).cmp(cluster)).ok()?;
        self.0.get(at).map(|(_, published)| published)
    }

    pub(super) fn get_mut(&mut self, cluster: &str) -> Option<&mut Option<Published>> {
        let at = self.0.binary_search_by(|(c, _)| (**c).cmp(cluster)).ok()?;
        self.0.get_mut(at).map(|(_, published)| published)
    }

    pub(super) fn insert(&mut self, cluster: Arc<str>, published: Option<Published>) {
        match self.0.binary_search_by(|(c, _)| (**c).cmp(&*cluster)) {
            Ok(at) => self.0[at].1 = published,
            Err(at) => self.0.insert(at, (cluster, published)),
        }
        self.0.shrink_to_fit();
    }

    pub(super) fn remove(&mut self, cluster: &str) {
        if let Ok(at) = self.0.binary_search_by(|(c, _)| (**c).cmp(cluster)) {
            self.0.remove(at);
            self.0.shrink_to_fit();
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub(super) fn keys(&self) -> impl Iterator<Item = &Arc<str>> {
        self.0.iter().map(|(cluster, _)| cluster)
    }
}

impl ImportEntry {
    pub(super) fn is_empty(&self) -> bool {
        self.slices.is_empty() && self.published.is_none() && self.clusters.is_empty()
    }
}

impl Controller {
    /// Serves ServiceImports in the clusterset zone from now on: its fixed names (apex,
    /// `dns-version` 1.0.0, `svc`) are published at once.
    pub fn serve_clusterset(&mut self, settings: ClusterSetSettings) {
        let serial = self.store.serial();
        self.clusterset = Some(settings);
        let names = zone_records::clusterset_static_records(
            self.zones.negative_ttl,
            &self.zones.ns_addresses,
            serial,
        );
        for records in &names {
            self.set_static(ZoneKind::ClusterSet, records);
        }
    }

    /// How names of `kind` are encoded, and the longest zone they are written in.
    pub(super) fn encoding(&self, kind: ZoneKind) -> Option<(&CompileContext, usize)> {
        match kind {
            ZoneKind::ClusterSet => self.clusterset.as_ref().map(|settings| {
                let longest = settings.compile.forward_zones.iter().map(|z| z.len());
                (&settings.compile, longest.max().unwrap_or(1))
            }),
            _ => Some((&self.compile, self.longest_zone)),
        }
    }

    /// This cluster's id: the ClusterProperty's, else the flag's.
    fn local_cluster_id(&self) -> Option<&Arc<str>> {
        self.cluster_property
            .as_ref()
            .map(|property| &property.value)
            .or_else(|| self.clusterset.as_ref()?.cluster_id.as_ref())
    }

    pub(super) fn upsert_import(&mut self, import: ServiceImport, dirty: &mut Dirty) {
        if self.clusterset.is_none() || self.imports.get(&import.key) == Some(&import) {
            return;
        }
        dirty.imports.insert(import.key.clone());
        self.imports.insert(import);
    }

    pub(super) fn delete_import(&mut self, key: &ObjectKey, dirty: &mut Dirty) {
        if self.imports.remove(key).is_some() {
            dirty.imports.insert(key.clone());
        }
    }

    /// A new (or no) ClusterProperty: when this cluster's id changes, every import
    /// republishes (its local slices and slots move).
    pub(super) fn set_cluster_property(
        &mut self,
        property: Option<ClusterProperty>,
        dirty: &mut Dirty,
    ) {
        if self.cluster_property == property {
            return;
        }
        let before = self.local_cluster_id().cloned();
        self.cluster_property = property;
        if self.local_cluster_id() != before.as_ref() {
            tracing::info!(
                cluster_id = self.local_cluster_id().map(|id| &**id).unwrap_or(""),
                previous = before.as_deref().unwrap_or(""),
                "this cluster's id in the clusterset (ClusterProperty cluster.clusterset.k8s.io, else --cluster-id)"
            );
            dirty.imports.extend(self.imports.keys().cloned());
        }
    }

    /// Recomputes one ServiceImport's records and publishes them: each cluster's names
    /// (`<cluster>.<svc>.<ns>.svc` and below) whole into that cluster's slot, and the
    /// import's own names (its addresses, SRV records naming the clusters' names) whole with
    /// the first cluster's, so a headless import takes one slot per cluster and no more. An
    /// import without cluster names (a ClusterSetIP import, one with no endpoint) keeps its
    /// own names in a slot of its own.
    ///
    /// The slot that receives the import's own names publishes first: a name moving there
    /// from another slot is routed to it before the other drops it, and never goes missing.
    pub(super) fn republish_import(&mut self, key: &ObjectKey) {
        if self.clusterset.is_none() {
            return;
        }
        let records = match self.imports.get(key) {
            None => ServiceRecords::default(),
            Some(import) => self.import_records(import).unwrap_or_else(|error| {
                tracing::warn!(import = %key, %error, "ServiceImport not published: a name is invalid");
                ServiceRecords::default()
            }),
        };
        let (own, clusters) = split_by_cluster(key, records);
        let mut publishes: Vec<(Owner, ServiceRecords)> = clusters
            .into_iter()
            .map(|(cluster, records)| {
                let cluster = self.cluster_ids.intern(&cluster);
                (Owner::ImportCluster(key.clone(), cluster), records)
            })
            .collect();
        // A cluster that published before and has no name now is emptied.
        if let Some(entry) = self.per_import.get(key) {
            for cluster in entry.clusters.keys() {
                if !publishes
                    .iter()
                    .any(|(owner, _)| matches!(owner, Owner::ImportCluster(_, c) if c == cluster))
                {
                    publishes.push((
                        Owner::ImportCluster(key.clone(), cluster.clone()),
                        ServiceRecords::default(),
                    ));
                }
            }
        }
        publishes.push((Owner::Import(key.clone()), ServiceRecords::default()));
        // The receiver: the first cluster with names (clusters are in id order), else the
        // import's own slot (the last entry).
        let receiver = publishes
            .iter()
            .position(|(_, records)| !records.names.is_empty())
            .unwrap_or(publishes.len() - 1);
        let (owner, mut records) = publishes.remove(receiver);
        records.names.extend(own.names);
        records.reverse.extend(own.reverse);
        self.publish(&owner, records);
        for (owner, records) in publishes {
            self.publish(&owner, records);
        }
    }

    fn import_records(
        &self,
        import: &ServiceImport,
    ) -> Result<ServiceRecords, crate::dns::name::NameError> {
        let local = self.local_cluster_id().map(|id| &**id);
        // Slices by cluster id, then name (SortedKeys keeps names in order).
        let mut by_cluster: Vec<(&str, &EndpointSlice)> = Vec::new();
        let keys = self
            .per_import
            .get(&import.key)
            .map(|entry| entry.slices.iter());
        for slice in keys
            .into_iter()
            .flatten()
            .filter_map(|k| self.slices.get(k))
        {
            let cluster = match &slice.of {
                SliceOf::Import {
                    cluster: Some(cluster),
                } => &**cluster,
                _ => match local {
                    Some(local) => local,
                    None => {
                        tracing::warn!(
                            slice = %slice.key,
                            "imported EndpointSlice without a source cluster skipped: this \
                             cluster's id is unknown (no cluster.clusterset.k8s.io \
                             ClusterProperty; set --cluster-id)"
                        );
                        continue;
                    }
                },
            };
            by_cluster.push((cluster, slice));
        }
        by_cluster.sort_by(|a, b| (a.0, &a.1.key).cmp(&(b.0, &b.1.key)));
        let slices: Vec<&EndpointSlice> = by_cluster.iter().map(|(_, slice)| *slice).collect();
        let mut clusters = Vec::new();
        let mut at = 0;
        while at < by_cluster.len() {
            let cluster = by_cluster[at].0;
            let end = at
                + by_cluster[at..]
                    .iter()
                    .take_while(|(c, _)| *c == cluster)
                    .count();
            clusters.push(ClusterSlices {
                cluster,
                slices: &slices[at..end],
            });
            at = end;
        }
        let stateful_sets = self.stateful_sets_of(&import.key);
        let local = local.map(|cluster| LocalCluster {
            cluster,
            stateful_sets: &stateful_sets,
        });
        clusterset_records::import_records(import, &clusters, local, self.options)
    }
}

/// An import's records split by owner: the names at or below `<cluster>.<svc>.<ns>.svc` (and
/// the reverse claims naming them) by cluster, the rest (the import's own name, SRV, `_tcp`,
/// a ClusterSetIP's claims) the import's.
fn split_by_cluster(
    key: &ObjectKey,
    records: ServiceRecords,
) -> (ServiceRecords, BTreeMap<Arc<str>, ServiceRecords>) {
    let mut own = ServiceRecords::default();
    let mut clusters: BTreeMap<Arc<str>, ServiceRecords> = BTreeMap::new();
    let Ok(base) = crate::controller::records::service_name(key) else {
        return (records, clusters);
    };
    // The label right below the import's name, when `name` is a cluster's name or below it
    // (`_tcp` and `_<port>` are the import's own).
    let base_labels: Vec<&[u8]> = base.labels().collect();
    let cluster_of = |name: &crate::dns::name::RelativeName| -> Option<Arc<str>> {
        let labels: Vec<&[u8]> = name.labels().collect();
        let at = labels.len().checked_sub(base_labels.len() + 1)?;
        let label = labels.get(at)?;
        (!label.starts_with(b"_") && labels[at + 1..] == base_labels[..])
            .then(|| Arc::from(String::from_utf8_lossy(label).as_ref()))
    };
    for name in records.names {
        match cluster_of(&name.name) {
            Some(cluster) => clusters.entry(cluster).or_default().names.push(name),
            None => own.names.push(name),
        }
    }
    for (ip, source) in records.reverse {
        match cluster_of(&source.target) {
            Some(cluster) => clusters
                .entry(cluster)
                .or_default()
                .reverse
                .push((ip, source)),
            None => own.reverse.push((ip, source)),
        }
    }
    (own, clusters)
}
