//! Reverse names: which Services claim each address, and the PTR answer published for it.
//! The common case, one pod of one Service, is answered from that Service's pod table
//! (`Store::ptr_slot`) and kept nowhere here; other addresses are listed with their claims
//! and get compiled answers.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use crate::controller::Controller;
use crate::controller::owner::Owner;
use crate::controller::records::{self, PtrSource};
use crate::dns::name::{RelativeName, reverse_name};
use crate::dns::rdata::{NameRecords, RData, RrSet, Target};
use crate::dns::wire::rtype;
use crate::store::answers::NameAnswers;
use crate::store::compile::compile_name;
use crate::store::{self, Route, ServiceSlot, ServiceSnapshot, ZoneKind};
use std::collections::HashMap;

/// A set of addresses held for a long time (what a Service claims): exact-size lists, and an
/// IPv4 address in 4 bytes rather than the 17 of an `IpAddr`.
#[derive(Debug, Default)]
pub(super) struct Addresses {
    v4: Box<[Ipv4Addr]>,
    v6: Box<[Ipv6Addr]>,
}

impl Addresses {
    pub(super) fn new(addresses: impl Iterator<Item = IpAddr>) -> Self {
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

    pub(super) fn iter(&self) -> impl Iterator<Item = IpAddr> + '_ {
        let v4 = self.v4.iter().map(|ip| IpAddr::V4(*ip));
        v4.chain(self.v6.iter().map(|ip| IpAddr::V6(*ip)))
    }

    pub(super) fn is_empty(&self) -> bool {
        self.v4.is_empty() && self.v6.is_empty()
    }
}

/// A map by address, one table per family: an IPv4 key takes 4 bytes, not 17, in a table
/// with an entry per address in the cluster.
#[derive(Debug)]
pub(super) struct AddressMap<V> {
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
    pub(super) fn get(&self, ip: &IpAddr) -> Option<&V> {
        match ip {
            IpAddr::V4(ip) => self.v4.get(ip),
            IpAddr::V6(ip) => self.v6.get(ip),
        }
    }

    pub(super) fn get_mut(&mut self, ip: &IpAddr) -> Option<&mut V> {
        match ip {
            IpAddr::V4(ip) => self.v4.get_mut(ip),
            IpAddr::V6(ip) => self.v6.get_mut(ip),
        }
    }

    pub(super) fn insert(&mut self, ip: IpAddr, value: V) {
        match ip {
            IpAddr::V4(ip) => self.v4.insert(ip, value),
            IpAddr::V6(ip) => self.v6.insert(ip, value),
        };
    }

    pub(super) fn remove(&mut self, ip: &IpAddr) {
        match ip {
            IpAddr::V4(ip) => self.v4.remove(ip),
            IpAddr::V6(ip) => self.v6.remove(ip),
        };
    }
}

impl<V: Default> AddressMap<V> {
    pub(super) fn get_or_default(&mut self, ip: IpAddr) -> &mut V {
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
fn answers_from_table(slot: &ServiceSlot, owner: &Owner, ip: IpAddr, source: &PtrSource) -> bool {
    table_claim(slot, owner, ip).is_some_and(|from_table| from_table == *source)
}

/// The claim on `ip` that `slot`'s current pod table answers, if the table has the address;
/// `owner` is the Service the slot holds.
fn table_claim(slot: &ServiceSlot, owner: &Owner, ip: IpAddr) -> Option<PtrSource> {
    let base = owner.base_name().ok()?;
    let mut source = table_source(&slot.snapshot(), &base, ip)?;
    source.clusterset = owner.zone_kind() == ZoneKind::ClusterSet;
    Some(source)
}

/// The claims on one address, listed with their targets. The common case, one Service whose
/// pod table answers the reverse name, is not listed: the store keys the address to that
/// Service's slot (`Store::ptr_slot`), and the table holds the claim's label and whether it
/// is a hostname. So the controller keeps nothing per address for most of them.
#[derive(Debug, Default)]
pub(super) struct ListedClaims {
    /// Exact-size: an address almost always has one claim.
    claims: Box<[(Arc<Owner>, PtrSource)]>,
    /// Whether the address's reverse name is in the store.
    published: bool,
}

impl ListedClaims {
    pub(super) fn push(&mut self, owner: Arc<Owner>, source: PtrSource) {
        let mut claims = std::mem::take(&mut self.claims).into_vec();
        claims.push((owner, source));
        self.claims = claims.into_boxed_slice();
    }

    pub(super) fn retain(&mut self, keep: impl Fn(&Owner) -> bool) {
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
        clusterset: false,
        from_hostname: entry.is_hostname(),
        target,
    })
}

impl Controller {
    /// Replaces the Service's claims on addresses with `new`, republishes the PTR answers of
    /// the addresses whose claims changed, and returns the addresses it claims now.
    /// `base` is the Service's own name; `old_snapshot` is what it published before this:
    /// its claims answered from its pod table are read there.
    pub(super) fn update_reverse(
        &mut self,
        service: &Owner,
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
                    Some(mut source) => {
                        source.clusterset = service.zone_kind() == ZoneKind::ClusterSet;
                        old.push((ip, source));
                    }
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
    pub(super) fn is_table_claim(&self, ip: IpAddr, service: &Owner) -> bool {
        self.store
            .ptr_slot(ip)
            .is_some_and(|slot| self.slot_owners.get(&slot) == Some(service))
    }

    /// The claims on `ip` as a list, to change them. A claim answered from a pod table is
    /// read back from its owner's current table.
    pub(super) fn listed_claims(&mut self, ip: IpAddr) -> &mut ListedClaims {
        if self.reverse.get(&ip).is_none()
            && let Some(slot) = self.store.ptr_slot(ip)
        {
            let owner = self.slot_owners.get(&slot);
            let claim = owner.and_then(|owner| Some((owner, table_claim(&slot, owner, ip)?)));
            let claims: Box<[(Arc<Owner>, PtrSource)]> = match claim {
                Some((owner, source)) => Box::new([(Arc::new(owner.clone()), source)]),
                None => {
                    // The owner republishes its claims with its table, so this is a bug.
                    let owner = owner.map(ToString::to_string).unwrap_or_default();
                    tracing::error!(%ip, owner, "reverse claim's pod table entry is gone; claim dropped");
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
    pub(super) fn republish_reverse(&mut self, ip: IpAddr) {
        let kind = if ip.is_ipv4() {
            ZoneKind::ReverseV4
        } else {
            ZoneKind::ReverseV6
        };
        let name = reverse_name(ip);
        let key = store::key(kind, &name);
        // Not listed: answered from a pod table, and unchanged (changes list it first).
        if self.reverse.get(&ip).is_none() {
            return;
        }
        self.touch(&key);
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
            [(owner, source)] => match &**owner {
                // The fields themselves: `listed` holds `self.reverse`.
                Owner::Service(key) => self.per_service.get(key).map(|e| &e.published),
                Owner::Import(key) => self.per_import.get(key).map(|e| &e.published),
                Owner::ImportCluster(key, cluster) => self
                    .per_import
                    .get(key)
                    .and_then(|e| e.clusters.get(cluster)),
            }
            .and_then(Option::as_ref)
            .map(|published| published.slot.clone())
            .filter(|slot| answers_from_table(slot, owner, ip, source)),
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
        let (clusterset, targets) =
            records::ptr_answer(listed.claims.iter().map(|(_, source)| source));
        let records = NameRecords {
            name: name.clone(),
            rrsets: vec![RrSet {
                rtype: rtype::PTR,
                records: targets
                    .into_iter()
                    .map(|t| {
                        RData::Ptr(if clusterset {
                            Target::ClusterSet(t)
                        } else {
                            Target::Primary(t)
                        })
                    })
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
}
