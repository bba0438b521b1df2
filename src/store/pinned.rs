//! One version of a zone kind, held for a zone transfer while the controller goes on.
//!
//! A transfer of a large zone takes longer than the gap between two changes under churn (a
//! rolling restart changes a Service every 100 ms or so), so it cannot read the live store
//! name by name and hope nothing moves. Instead it pins the zone: under the store's change
//! lock (the controller waits that long, the query path never), it copies the index's names
//! of the kind and, for each, what it routes to: the compiled answers of a name of its own,
//! or the current snapshot of its Service (an `Arc`, not a copy); for a reverse kind, every
//! address a pod table answers and its Service's snapshot. Publishing replaces a Service's
//! snapshot with a new `Arc`, so the pinned ones stay as they were until the transfer drops
//! them.
//!
//! Memory: the names (a few per Service), 16 to 32 bytes per pinned address, and the
//! snapshots of Services that change while the transfer runs, kept alive beside their
//! successors: at worst one more copy of the store's Service answers per transfer, and
//! `--max-transfers` bounds the transfers.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use crate::store::answers::NameAnswers;
use crate::store::journal::{Step, serial_after};
use crate::store::key::{ZoneKind, found_through_parent, has_unindexed_children};
use crate::store::snapshot::ServiceSnapshot;
use crate::store::{AddressAnswers, Lookup, PtrAnswer, Route, Store};

/// What a pinned name routed to.
#[derive(Debug)]
enum Pinned {
    EmptyNonTerminal,
    /// The name's own answers (copied: these names are few: apexes, names several Services
    /// claim).
    Name(NameAnswers),
    /// Its slot's snapshot at the pin; `true` for the slot's own name (the names found
    /// through it follow it in a transfer).
    Service(Arc<ServiceSnapshot>, bool),
}

/// A zone kind's names and answers as of one version of the store.
#[derive(Debug)]
pub struct PinnedZone {
    kind: ZoneKind,
    /// The index's names of the kind (without the kind byte), sorted, and their routes.
    names: Vec<(Box<[u8]>, Pinned)>,
    /// Reverse kinds: the addresses pod tables answer, sorted, and their Service's snapshot.
    ptrs: Vec<(IpAddr, Arc<ServiceSnapshot>)>,
}

/// What a zone transfer reads of one version of the store: the serial, the zone's apex,
/// and what the client needs to reach that serial.
#[derive(Debug)]
pub struct ZoneVersion {
    pub serial: u32,
    /// The apex's answers, its SOA among them.
    pub apex: NameAnswers,
    /// The journal's steps from the client's serial to `serial`, when it asked for an
    /// increment and the journal holds them.
    pub steps: Option<Vec<Arc<Step>>>,
    /// The zone kind, pinned, when the client needs the whole zone.
    pub zone: Option<PinnedZone>,
}

impl Store {
    /// The version of the zone of `kind` whose apex is `apex` (its name without the kind
    /// byte) a transfer serves a client at serial `client` (`None`: AXFR), read between two
    /// changes. `None` before the first complete load, or without such an apex. Blocking:
    /// it waits for a change in progress, and a pin copies the index's names.
    pub fn version(&self, kind: ZoneKind, apex: &[u8], client: Option<u32>) -> Option<ZoneVersion> {
        let _between_changes = self
            .change_lock
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !self.is_ready() {
            return None;
        }
        let serial = self.serial();
        let apex = match self.index.get(kind as usize)?.get(apex)?.value() {
            Route::Name(answers) => answers.clone(),
            _ => return None,
        };
        let up_to_date = client.is_some_and(|client| !serial_after(serial, client));
        let steps = client
            .filter(|_| !up_to_date)
            .and_then(|client| self.steps_since(client))
            .filter(|steps| steps.last().is_some_and(|last| last.to == serial));
        let zone = (!up_to_date && steps.is_none()).then(|| self.pin_now(kind));
        Some(ZoneVersion {
            serial,
            apex,
            steps,
            zone,
        })
    }

    /// Pins `kind` as it is now, between two changes (see the module doc). Blocking.
    pub fn pin(&self, kind: ZoneKind) -> PinnedZone {
        let _between_changes = self
            .change_lock
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        self.pin_now(kind)
    }

    /// Pins `kind`; the caller holds the change lock.
    fn pin_now(&self, kind: ZoneKind) -> PinnedZone {
        let Some(index) = self.index.get(kind as usize) else {
            return PinnedZone {
                kind,
                names: Vec::new(),
                ptrs: Vec::new(),
            };
        };
        let mut names: Vec<(Box<[u8]>, Pinned)> = index
            .iter()
            .map(|entry| {
                let pinned = match entry.value() {
                    Route::EmptyNonTerminal => Pinned::EmptyNonTerminal,
                    Route::Name(answers) => Pinned::Name(answers.clone()),
                    Route::Service(slot) => Pinned::Service(slot.answers.load_full(), true),
                    Route::SlotName(slot) => Pinned::Service(slot.answers.load_full(), false),
                };
                (entry.key().as_bytes().into(), pinned)
            })
            .collect();
        names.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let mut ptrs = Vec::new();
        if kind.is_reverse() {
            // One load per Service, not per address.
            let mut snapshots: HashMap<u32, Arc<ServiceSnapshot>> = HashMap::new();
            let mut pin = |address: IpAddr, number: u32| {
                let snapshot = match snapshots.get(&number) {
                    Some(snapshot) => Some(snapshot.clone()),
                    None => self.slots.get(&number).map(|slot| {
                        let snapshot = slot.answers.load_full();
                        snapshots.insert(number, snapshot.clone());
                        snapshot
                    }),
                };
                if let Some(snapshot) = snapshot {
                    ptrs.push((address, snapshot));
                }
            };
            if kind == ZoneKind::ReverseV6 {
                for entry in self.ptr_v6.iter() {
                    pin(IpAddr::V6(*entry.key()), *entry.value());
                }
            } else {
                for entry in self.ptr_v4.iter() {
                    pin(IpAddr::V4(*entry.key()), *entry.value());
                }
            }
            ptrs.sort_unstable_by_key(|(address, _)| *address);
        }
        PinnedZone { kind, names, ptrs }
    }
}

impl PinnedZone {
    /// How many indexed names the pin holds.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// The `at`th indexed name (names in order) with what a lookup of it finds, then, after
    /// a Service's name, the names found through it (its pods'): `f` gets each key (kind
    /// byte first) and lookup. One name at a time, so a transfer writes as it goes.
    pub fn visit_name(&self, at: usize, mut f: impl FnMut(&[u8], Lookup<'_>)) {
        let Some((name, pinned)) = self.names.get(at) else {
            return;
        };
        let key = [&[self.kind as u8][..], name].concat();
        match pinned {
            Pinned::EmptyNonTerminal => f(&key, Lookup::EmptyNonTerminal),
            Pinned::Name(answers) => f(&key, Lookup::Name(answers.view())),
            Pinned::Service(snapshot, own_name) => {
                match snapshot.names.get(&key) {
                    Some(entry) => f(&key, Lookup::Name(entry.answers())),
                    None => f(&key, Lookup::NoName),
                }
                if *own_name {
                    children(&key, snapshot, &mut f);
                }
            }
        }
    }

    /// How many addresses pod tables answered at the pin (reverse kinds).
    pub fn addresses(&self) -> usize {
        self.ptrs.len()
    }

    /// The `at`th pinned address (in address order) and its reverse name's PTR answer.
    pub fn visit_address(&self, at: usize, mut f: impl FnMut(IpAddr, Lookup<'_>)) {
        let Some((address, snapshot)) = self.ptrs.get(at) else {
            return;
        };
        if let Some(label) = snapshot.pods.label_of(*address) {
            f(
                *address,
                Lookup::Ptr(PtrAnswer {
                    label,
                    suffix: &snapshot.name_in_primary_zone,
                    ttl: snapshot.ttl,
                }),
            );
        }
    }
}

/// The names one label below a slot's own name `service` (a key) that its snapshot answers,
/// found through it rather than indexed: its pod table's in table order, then the rest.
fn children(service: &[u8], snapshot: &ServiceSnapshot, f: &mut impl FnMut(&[u8], Lookup<'_>)) {
    let Some((&kind, name)) = service.split_first() else {
        return;
    };
    // Only names of the depth whose children are found through them (a Service's name, an
    // import cluster's) have names one label below them in the snapshot.
    if !has_unindexed_children(service) {
        return;
    }
    let mut key = Vec::with_capacity(1 + 64 + name.len());
    for (label, entry) in snapshot.pods.entries() {
        key.clear();
        key.push(kind);
        key.push(label.len() as u8);
        key.extend_from_slice(label);
        key.extend_from_slice(name);
        f(
            &key,
            Lookup::Addresses(AddressAnswers {
                entry,
                ttl: snapshot.ttl,
                negative_ttl: entry.is_slot().then_some(snapshot.slot_negative_ttl),
            }),
        );
    }
    for entry in snapshot.names.iter() {
        if found_through_parent(entry.key(), service) {
            f(entry.key(), Lookup::Name(entry.answers()));
        }
    }
}
