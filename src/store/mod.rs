//! The record store: the one bridge between the controller (its single writer) and the query
//! path (its many readers).
//!
//! An index maps each name to a [`Route`]. The names of one Service all route to that
//! Service's slot, which holds an immutable snapshot of all its compiled answers; publishing
//! a Service swaps the snapshot in one atomic store, so a reader sees all of the old Service
//! or all of the new one, never half an update. Names that no Service owns alone (reverse
//! names, the zone apex) route to their own answers directly.
//!
//! The names one label below a Service's name (its pods' names, most of the names in a
//! cluster) are not in the index at all: a lookup of a name of that depth asks the name's
//! parent first, and when that routes to a Service, finds the name in the Service's
//! snapshot (in its pod table: see `pod_table`). That saves an index entry and a copy of
//! the key per pod, and a pod's name appears and disappears in the same atomic swap as its
//! answers.
//!
//! Likewise the reverse name of a pod's address (one per pod) is not a name in the index
//! when one Service claims it: the address maps to that Service's slot, and the PTR record
//! is written from the label its pod table has for the address. Every other reverse name
//! (an address several Services claim, a ClusterIP) is indexed with compiled answers.

pub mod answers;
pub mod compile;
pub mod journal;
pub mod key;
pub mod pinned;
pub mod pod_table;
pub mod render;
pub mod snapshot;
pub mod srv;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock, RwLockWriteGuard};

use arc_swap::{ArcSwap, ArcSwapOption};
use dashmap::DashMap;

use crate::dns::name;
use crate::hash::FastHash;
use answers::{Answers, NameAnswers, NegativeSoa};
use journal::{Journal, Step};
use key::{NameKey, has_labels, parent_name, unindexed_labels};
use pod_table::PodEntry;

pub use key::{Zone, ZoneKind, found_through_parent, key, reverse_key};
pub use snapshot::{ServiceAnswers, ServiceSlot, ServiceSnapshot, SnapshotEntry};

/// Where the answers of one name live.
#[derive(Debug, Clone)]
pub enum Route {
    /// The name exists only because names below it do (`demo.svc`): NODATA for every type.
    EmptyNonTerminal,
    /// A name with answers of its own (the apex, a reverse name).
    Name(NameAnswers),
    /// A slot's own name (a Service's, one cluster's of an import): look it up in the slot's
    /// current snapshot, and look up the names one label below it in its pod table.
    Service(Arc<ServiceSlot>),
    /// Any other name of a slot (a Service's SRV names; an import's own names, published
    /// with its first cluster's): look it up in the slot's current snapshot. Names below it
    /// are not in the slot's pod table, so a lookup never asks it about them.
    SlotName(Arc<ServiceSlot>),
}

impl Route {
    /// The slot it sends lookups to, if any.
    pub fn slot(&self) -> Option<&Arc<ServiceSlot>> {
        match self {
            Route::Service(slot) | Route::SlotName(slot) => Some(slot),
            Route::EmptyNonTerminal | Route::Name(_) => None,
        }
    }
}

/// A name of a [`PodTable`]: addresses, written as records per query.
#[derive(Debug, Clone, Copy)]
pub struct AddressAnswers<'a> {
    pub entry: PodEntry<'a>,
    /// TTL of its records.
    pub ttl: u32,
    /// TTL of its negative answers, when it is not the zone's (ordinal slots).
    pub negative_ttl: Option<u32>,
}

/// What a lookup found.
#[derive(Debug, Clone, Copy)]
pub enum Lookup<'a> {
    /// No such name: NXDOMAIN.
    NoName,
    /// The name exists only because names below it do: NODATA for every type.
    EmptyNonTerminal,
    /// The name and its answers.
    Name(Answers<'a>),
    /// A name whose answers are addresses (a pod's name), and those addresses.
    Addresses(AddressAnswers<'a>),
    /// A pod's reverse name: one PTR record to `label` + `suffix`.
    Ptr(PtrAnswer<'a>),
}

/// The one PTR record of a pod's address, written per query from its Service's pod table.
#[derive(Debug, Clone, Copy)]
pub struct PtrAnswer<'a> {
    /// The pod's label (hostname or dashed address).
    pub label: &'a [u8],
    /// Its Service's name in the primary zone, root label included.
    pub suffix: &'a [u8],
    pub ttl: u32,
}

/// Which slot numbers are taken (see [`Store::new_slot`]); the writer's alone.
#[derive(Debug, Default)]
struct SlotNumbers {
    /// The lowest number never handed out.
    next: u32,
    /// Numbers of released slots, reused first.
    free: Vec<u32>,
}

/// The routes of the names of one zone kind, by wire name.
type NameIndex = DashMap<NameKey, Route, FastHash>;

/// The name index shared by the controller and every query worker.
#[derive(Debug, Default)]
pub struct Store {
    /// One map per [`ZoneKind`], keyed by the name without the kind byte, so that a name's
    /// parent is a suffix of the same bytes: the fallback lookup of a pod's name copies
    /// nothing.
    index: [NameIndex; ZoneKind::COUNT],
    /// Addresses whose reverse name answers one pod's name: the Service whose pod table
    /// has it. There is one per pod, so they are keyed by the address (no key allocation)
    /// and resolved through the table (no answer of their own). Other reverse names are in
    /// `index`.
    ptr_v4: DashMap<Ipv4Addr, u32, FastHash>,
    ptr_v6: DashMap<Ipv6Addr, u32, FastHash>,
    /// The slots that reverse routes name by number. A reverse route (one per pod) holds
    /// a slot's 4-byte number, not an 8-byte pointer: its map's entry is 8 bytes instead of
    /// 16, 10 bytes per endpoint counting the map's empty slots. Sharded like the other
    /// maps, so readers on many threads do not share one lock.
    slots: DashMap<u32, Arc<ServiceSlot>, FastHash>,
    numbers: Mutex<SlotNumbers>,
    /// The SOA record of negative answers, per [`ZoneKind`]: every forward zone has the
    /// same (its names are written relative to the zone asked), every reverse zone too (its
    /// names are in the primary zone), and the clusterset zone its own.
    negative_soas: [ArcSwapOption<NegativeSoa>; ZoneKind::COUNT],
    /// Set once the first complete set of records is published. Before that, in-zone queries
    /// get SERVFAIL: a resolver caches an NXDOMAIN, and would cache a false one.
    ready: AtomicBool,
    /// The zones' SOA serial (all zones share it), and the recent changes for IXFR.
    journal: Mutex<Journal>,
    serial: AtomicU32,
    /// Held for writing by the controller while it changes records and then the serial,
    /// for reading by a zone transfer while it pins one version (`pinned`).
    change_lock: RwLock<()>,
}

impl Store {
    pub fn new() -> Self {
        Self::default()
    }

    /// `key`'s zone kind, its map, and the name part of the key.
    fn split<'k>(&self, key: &'k [u8]) -> Option<(u8, &NameIndex, &'k [u8])> {
        let (&kind, name) = key.split_first()?;
        Some((kind, self.index.get(usize::from(kind))?, name))
    }

    /// Looks `key` up and hands what it found to `f`, without allocating.
    ///
    /// A name of [`key::UNINDEXED_LABELS`] labels for its kind (most queries: pods' names)
    /// asks its parent first: when the parent routes to a Service, the name is in that Service's
    /// snapshot if it exists at all, whether it is indexed or not. Any other name is
    /// indexed if it exists.
    /// Inlined: the query path calls it once per answer, and out of line (zone transfers
    /// and the journal call it too) it cost 48 instructions per answer under callgrind.
    #[inline(always)]
    pub fn lookup<R>(&self, key: &[u8], f: impl FnOnce(Lookup<'_>) -> R) -> R {
        let Some((kind, index, name)) = self.split(key) else {
            return f(Lookup::NoName);
        };
        let depth = unindexed_labels(kind);
        if depth != 0
            && has_labels(name, depth)
            && let Some(parent) = parent_name(name)
            && let Some(route) = index.get(parent)
            && let Route::Service(slot) = route.value()
        {
            let snapshot = slot.answers.load();
            // The name's first label, which is its entry's label in the table.
            let label = name.get(1..name.len() - parent.len()).unwrap_or_default();
            if let Some(entry) = snapshot.pods.get(label) {
                return f(Lookup::Addresses(AddressAnswers {
                    entry,
                    ttl: snapshot.ttl,
                    negative_ttl: entry.is_slot().then_some(snapshot.slot_negative_ttl),
                }));
            }
            return match snapshot.names.get(key) {
                Some(entry) => f(Lookup::Name(entry.answers())),
                None => f(Lookup::NoName),
            };
        }
        let reverse_v4 = kind == ZoneKind::ReverseV4 as u8;
        if (reverse_v4 || kind == ZoneKind::ReverseV6 as u8)
            && let Some(address) = name::parse_reverse_name(name, !reverse_v4)
            && let Some(snapshot) = self.ptr_snapshot(address)
            && let Some(label) = snapshot.pods.label_of(address)
        {
            return f(Lookup::Ptr(PtrAnswer {
                label,
                suffix: &snapshot.name_in_primary_zone,
                ttl: snapshot.ttl,
            }));
        }
        match index.get(name) {
            Some(route) => Self::resolve(route.value(), key, f),
            None => f(Lookup::NoName),
        }
    }

    /// A new slot for a Service's answers, empty, with a number reverse routes can hold.
    /// [`Store::release_slot`] gives the number back when nothing routes to it any more.
    pub fn new_slot(&self) -> Arc<ServiceSlot> {
        let mut numbers = self.numbers.lock().unwrap_or_else(PoisonError::into_inner);
        let number = numbers.free.pop().unwrap_or_else(|| {
            // More than 4 billion Services cannot fit in memory: `next` does not wrap.
            let number = numbers.next;
            numbers.next = numbers.next.saturating_add(1);
            number
        });
        let slot = Arc::new(ServiceSlot {
            answers: ArcSwap::default(),
            number,
        });
        self.slots.insert(number, slot.clone());
        slot
    }

    /// Frees `slot`'s number. The caller has removed every reverse route to it: the number
    /// goes to the next new slot.
    pub fn release_slot(&self, slot: &ServiceSlot) {
        let mut numbers = self.numbers.lock().unwrap_or_else(PoisonError::into_inner);
        if self
            .slots
            .remove_if(&slot.number, |_, held| std::ptr::eq(&**held, slot))
            .is_some()
        {
            numbers.free.push(slot.number);
        }
    }

    /// The number of the slot whose pod table answers the reverse name of `address`.
    fn ptr_number(&self, address: IpAddr) -> Option<u32> {
        match address {
            IpAddr::V4(ip) => self.ptr_v4.get(&ip).map(|number| *number),
            IpAddr::V6(ip) => self.ptr_v6.get(&ip).map(|number| *number),
        }
    }

    /// The current snapshot of the Service whose pod table answers the reverse name of
    /// `address`.
    fn ptr_snapshot(&self, address: IpAddr) -> Option<arc_swap::Guard<Arc<ServiceSnapshot>>> {
        let number = self.ptr_number(address)?;
        self.slots.get(&number).map(|slot| slot.answers.load())
    }

    /// The slot whose pod table answers the reverse name of `address`, if one does.
    pub fn ptr_slot(&self, address: IpAddr) -> Option<Arc<ServiceSlot>> {
        let number = self.ptr_number(address)?;
        self.slots.get(&number).map(|slot| slot.clone())
    }

    /// Makes the reverse name of `address` answer from `slot`'s pod table (its one pod
    /// with that address), or, with `None`, from the index again. `slot` comes from
    /// [`Store::new_slot`] and is not released while routed to.
    pub fn set_ptr_slot(&self, address: IpAddr, slot: Option<&ServiceSlot>) {
        match (address, slot) {
            (IpAddr::V4(ip), Some(slot)) => drop(self.ptr_v4.insert(ip, slot.number)),
            (IpAddr::V6(ip), Some(slot)) => drop(self.ptr_v6.insert(ip, slot.number)),
            (IpAddr::V4(ip), None) => drop(self.ptr_v4.remove(&ip)),
            (IpAddr::V6(ip), None) => drop(self.ptr_v6.remove(&ip)),
        }
    }

    /// What `route` holds for `key`.
    fn resolve<R>(route: &Route, key: &[u8], f: impl FnOnce(Lookup<'_>) -> R) -> R {
        match route {
            Route::EmptyNonTerminal => f(Lookup::EmptyNonTerminal),
            Route::Name(answers) => f(Lookup::Name(answers.view())),
            Route::Service(slot) | Route::SlotName(slot) => {
                let snapshot = slot.answers.load();
                match snapshot.names.get(key) {
                    Some(entry) => f(Lookup::Name(entry.answers())),
                    None => f(Lookup::NoName),
                }
            }
        }
    }

    /// Routes `key`; replaces whatever route it had. A key without a valid zone kind is
    /// ignored (keys come from [`key`]).
    pub fn set_route(&self, key: &[u8], route: Route) {
        if let Some((_, index, name)) = self.split(key) {
            index.insert(NameKey::new(name), route);
        }
    }

    pub fn remove(&self, key: &[u8]) {
        if let Some((_, index, name)) = self.split(key) {
            index.remove(name);
        }
    }

    /// Whether `key` has a route.
    pub fn has_route(&self, key: &[u8]) -> bool {
        self.split(key)
            .is_some_and(|(_, index, name)| index.contains_key(name))
    }

    /// Removes `key`'s route if it still sends lookups to `slot`: a name that moved to
    /// another slot (an import's own names, when its first cluster changes) keeps the
    /// route the other slot set.
    pub fn remove_if_routed_to(&self, key: &[u8], slot: &ServiceSlot) {
        if let Some((_, index, name)) = self.split(key) {
            index.remove_if(name, |_, route| {
                route.slot().is_some_and(|s| std::ptr::eq(&**s, slot))
            });
        }
    }

    /// The zones' SOA serial.
    pub fn serial(&self) -> u32 {
        self.serial.load(Ordering::Acquire)
    }

    /// Held by the writer through a change that ends with a new serial: while it is, the
    /// records and the serial disagree, and zone transfers wait to read one version
    /// (`pinned`). The query path never takes it.
    pub fn change(&self) -> RwLockWriteGuard<'_, ()> {
        self.change_lock
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Sets the serial without a journal step (the first load, or no change recorded).
    pub fn set_serial(&self, serial: u32) {
        self.serial.store(serial, Ordering::Release);
    }

    /// Bytes the journal may hold (0, the default: none, every IXFR gets the whole zone).
    pub fn set_journal_limit(&self, limit: usize) {
        *self.journal.lock().unwrap_or_else(PoisonError::into_inner) = Journal::new(limit);
    }

    /// Records `step` and makes its serial the zones'.
    pub fn push_step(&self, step: Step) {
        let to = step.to;
        self.journal
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(step);
        self.set_serial(to);
    }

    /// The steps from `serial` to now, if the journal reaches back to it.
    pub fn steps_since(&self, serial: u32) -> Option<Vec<Arc<Step>>> {
        self.journal
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .since(serial)
    }

    /// Bytes the journal holds.
    pub fn journal_bytes(&self) -> usize {
        self.journal
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .bytes()
    }

    /// The names of `kind` in the index, in order; a transfer walks them. Each of the
    /// index's shards is read-locked while its keys are copied, not longer.
    pub fn names(&self, kind: ZoneKind) -> Vec<Box<[u8]>> {
        let Some(index) = self.index.get(kind as usize) else {
            return Vec::new();
        };
        let mut names: Vec<Box<[u8]>> = index.iter().map(|e| e.key().as_bytes().into()).collect();
        names.sort_unstable();
        names
    }

    /// The addresses whose reverse names are answered from pod tables, in order.
    pub fn table_addresses(&self, v6: bool) -> Vec<IpAddr> {
        let mut addresses: Vec<IpAddr> = if v6 {
            self.ptr_v6.iter().map(|e| IpAddr::V6(*e.key())).collect()
        } else {
            self.ptr_v4.iter().map(|e| IpAddr::V4(*e.key())).collect()
        };
        addresses.sort_unstable();
        addresses
    }

    /// Makes `soa` the authority record of negative answers in the zones of `kind`.
    pub fn set_negative_soa(&self, kind: ZoneKind, soa: NegativeSoa) {
        if let Some(slot) = self.negative_soas.get(kind as usize) {
            slot.store(Some(Arc::new(soa)));
        }
    }

    /// The authority record of negative answers in the zones of `kind`, without a lock.
    pub fn negative_soa(
        &self,
        kind: ZoneKind,
    ) -> Option<arc_swap::Guard<Option<Arc<NegativeSoa>>>> {
        self.negative_soas
            .get(kind as usize)
            .map(ArcSwapOption::load)
    }

    /// Number of names in the index and of reverse names answered from pod tables.
    pub fn len(&self) -> usize {
        self.index.iter().map(DashMap::len).sum::<usize>() + self.ptr_v4.len() + self.ptr_v6.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    pub fn mark_ready(&self) {
        self.ready.store(true, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::answers::{ANY_ZONE, CompiledRrset, WIRE};
    use crate::store::key::INLINE_NAME;
    use crate::store::pod_table::PodTableBuilder;

    fn answers(tag: u8) -> NameAnswers {
        NameAnswers::new(
            &[CompiledRrset {
                rtype: 1,
                zone: ANY_ZONE,
                form: WIRE,
                ancount: 1,
                arcount: 0,
                answer: vec![tag],
                additional: vec![],
            }],
            None,
        )
    }

    fn found(store: &Store, key: &[u8]) -> Option<u8> {
        store.lookup(key, |l| match l {
            Lookup::NoName => None,
            Lookup::EmptyNonTerminal => Some(0),
            Lookup::Name(a) => Some(a.rrsets().next().map_or(0, |r| r.answer[0])),
            Lookup::Addresses(_) | Lookup::Ptr(_) => Some(u8::MAX),
        })
    }

    #[test]
    fn service_answers_find_each_key_and_keep_the_first_of_two() {
        let entry = |key: &[u8], tag| SnapshotEntry::new(key, &answers(tag));
        let set = ServiceAnswers::from_iter([
            entry(b"\x00\x05nginx", 1),
            entry(b"\x00\x04_web\x04_tcp\x05nginx", 2),
            entry(b"\x00\x05nginx", 3),
            entry(b"\x00\x01a", 4),
        ]);
        assert_eq!(set.len(), 3);
        let tag = |key: &[u8]| {
            set.get(key)
                .and_then(|e| e.answers().rrsets().next())
                .map(|r| r.answer[0])
        };
        assert_eq!(tag(b"\x00\x05nginx"), Some(1));
        assert_eq!(tag(b"\x00\x04_web\x04_tcp\x05nginx"), Some(2));
        assert_eq!(tag(b"\x00\x01a"), Some(4));
        assert_eq!(tag(b"\x00\x01b"), None);
        assert!(set.contains(b"\x00\x01a") && !set.contains(b""));
        assert!(ServiceAnswers::default().get(b"\x00\x05nginx").is_none());
    }

    #[test]
    fn index_keys_short_and_long_are_found_by_their_bytes() {
        let index: NameIndex = DashMap::default();
        let names: Vec<Vec<u8>> = [0, 1, INLINE_NAME, INLINE_NAME + 1, 255]
            .iter()
            .map(|&len| (0..len).map(|i| b'a' + (i % 26) as u8).collect())
            .collect();
        for (i, name) in names.iter().enumerate() {
            let key = NameKey::new(name);
            assert_eq!(key.as_bytes(), &name[..]);
            assert_eq!(
                matches!(key, NameKey::Inline { .. }),
                name.len() <= INLINE_NAME
            );
            index.insert(key, Route::Name(answers(i as u8)));
        }
        for (i, name) in names.iter().enumerate() {
            let found = index.get(&name[..]).map(|route| match route.value() {
                Route::Name(a) => a.view().rrsets().next().map(|r| r.answer[0]),
                _ => None,
            });
            assert_eq!(found, Some(Some(i as u8)), "{} bytes", name.len());
        }
        // A name that is a prefix of a stored one, or extends it, is another key.
        assert!(index.get(&names[2][..INLINE_NAME - 1]).is_none());
        assert!(index.get(&[&names[2][..], b"a"].concat()[..]).is_none());
    }

    #[test]
    fn a_service_snapshot_swaps_whole() {
        let store = Store::new();
        let slot = store.new_slot();
        let a: Box<[u8]> = Box::new(*b"\0a");
        let b: Box<[u8]> = Box::new(*b"\0b");
        store.set_route(&a, Route::Service(slot.clone()));
        store.set_route(&b, Route::Service(slot.clone()));
        assert_eq!(found(&store, &a), None, "routed but not yet published");
        let snapshot = |tag| ServiceSnapshot {
            names: ServiceAnswers::from_iter([
                SnapshotEntry::new(&a, &answers(tag)),
                SnapshotEntry::new(&b, &answers(tag)),
            ]),
            ..Default::default()
        };
        slot.publish(snapshot(1));
        assert_eq!((found(&store, &a), found(&store, &b)), (Some(1), Some(1)));
        slot.publish(snapshot(2));
        assert_eq!((found(&store, &a), found(&store, &b)), (Some(2), Some(2)));
        store.set_route(b"\0ent", Route::EmptyNonTerminal);
        assert_eq!(found(&store, b"\0ent"), Some(0));
        assert_eq!(found(&store, b"\0missing"), None);
    }

    #[test]
    fn reverse_routes_name_slots_by_number_and_numbers_are_reused() {
        let store = Store::new();
        let web = store.new_slot();
        let db = store.new_slot();
        assert_ne!(web.number(), db.number());
        let ip: IpAddr = "10.0.0.9".parse().unwrap();
        let v6: IpAddr = "fd00::9".parse().unwrap();
        assert!(store.ptr_slot(ip).is_none());
        store.set_ptr_slot(ip, Some(&db));
        store.set_ptr_slot(v6, Some(&web));
        let routed_to = |ip, slot: &Arc<ServiceSlot>| {
            store
                .ptr_slot(ip)
                .is_some_and(|found| Arc::ptr_eq(&found, slot))
        };
        assert!(routed_to(ip, &db) && routed_to(v6, &web));
        store.set_ptr_slot(ip, None);
        assert!(store.ptr_slot(ip).is_none());
        // A released number is free: nothing answers through it until a new slot takes it.
        store.set_ptr_slot(ip, Some(&db));
        store.release_slot(&db);
        assert!(store.ptr_slot(ip).is_none());
        let api = store.new_slot();
        assert_eq!(api.number(), db.number());
        assert!(routed_to(ip, &api), "db's number went to api");
        assert!(routed_to(v6, &web));
        // Releasing twice, or a slot whose number was reused, changes nothing.
        store.release_slot(&db);
        assert!(routed_to(ip, &api));
    }

    #[test]
    fn a_child_of_a_service_name_is_found_through_it_unindexed() {
        let store = Store::new();
        let slot = store.new_slot();
        let service: Box<[u8]> = Box::new(*b"\0\x01s\x02ns\x03svc");
        let pod: Box<[u8]> = Box::new(*b"\0\x03pod\x01s\x02ns\x03svc");
        let grandchild: &[u8] = b"\0\x01x\x03pod\x01s\x02ns\x03svc";
        store.set_route(&service, Route::Service(slot.clone()));
        let mut pods = PodTableBuilder::default();
        assert!(pods.add(b"web", &["10.0.0.9".parse().unwrap()], true, false));
        slot.publish(ServiceSnapshot {
            names: ServiceAnswers::from_iter([
                SnapshotEntry::new(&service, &answers(1)),
                SnapshotEntry::new(&pod, &answers(2)),
            ]),
            pods: pods.build(),
            ttl: 30,
            slot_negative_ttl: 1,
            name_in_primary_zone: Box::default(),
        });
        assert!(found_through_parent(&pod, &service));
        assert!(!found_through_parent(grandchild, &service));
        assert!(!found_through_parent(
            b"\x01\x03pod\x01s\x02ns\x03svc",
            b"\x01\x01s\x02ns\x03svc"
        ));
        assert_eq!(found(&store, &pod), Some(2), "found through the Service");
        let in_table = store.lookup(b"\0\x03web\x01s\x02ns\x03svc", |l| match l {
            Lookup::Addresses(a) => Some((a.entry.addresses(1).0.to_vec(), a.ttl, a.negative_ttl)),
            _ => None,
        });
        assert_eq!(
            in_table,
            Some((vec![10, 0, 0, 9], 30, Some(1))),
            "in the pod table"
        );
        assert_eq!(
            found(&store, b"\0\x03bad\x03svc"),
            None,
            "not in the snapshot"
        );
        assert_eq!(found(&store, grandchild), None, "two labels below");
        // A parent that is not a Service's name lends its children nothing.
        store.set_route(b"\0\x01e\x02ns\x03svc", Route::EmptyNonTerminal);
        assert_eq!(found(&store, b"\0\x03pod\x01e\x02ns\x03svc"), None);
        // Keys whose first label runs past the end are not keys: no parent, no panic.
        for bad in [&b""[..], b"\0", b"\0\x09ab", b"\0\xff"] {
            assert_eq!(found(&store, bad), None, "{bad:?}");
        }
    }
}
