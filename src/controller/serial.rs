//! The zones' serial and the journal of changes: every batch that republishes something
//! moves the serial on, and, when zone transfers are served, records what it changed as
//! plain records per zone, for IXFR.
//!
//! The serial follows the clock as Knot's `serial-policy: unixtime` does: the Unix time of
//! the change, or one more than the last serial when changes come faster than one a second.
//! So it never goes back across restarts unless the server ran ahead of the clock just
//! before one (more than one change a second for a while). Replicas that saw the same
//! objects may have serials a second or so apart, and an equal serial on two replicas does
//! not mean equal journals: a secondary follows one replica (README.md, "Secondaries").
//!
//! The journal is computed from the store itself: before a batch changes a name, the name's
//! records are read as they are (`touch`); after the batch they are read again, and the
//! difference is the step. Only the names a batch touches are read, so a step costs what
//! the change costs, not what the cluster holds.

use std::collections::BTreeSet;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::controller::Controller;
use crate::controller::zone_records;
use crate::dns::name::RelativeName;
use crate::store::journal::{Step, ZoneChange, serial_after};
use crate::store::pod_table::PodTable;
use crate::store::render::{self, Record};
use crate::store::{self, ZoneKind};

/// The Unix time, as a serial.
pub(super) fn now() -> u32 {
    let seconds = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    // Serials wrap (RFC 1982): the low 32 bits keep counting.
    seconds as u32
}

/// The serial after `serial` at Unix time `now`.
pub(super) fn next(serial: u32, now: u32) -> u32 {
    if serial_after(now, serial) {
        now
    } else {
        serial.wrapping_add(1)
    }
}

/// Records of one name in each zone that holds it: (zone number, records).
pub(super) type ZoneRecords = Vec<(usize, Vec<Record>)>;

impl Controller {
    /// Whether this batch's changes are recorded: transfers are served and the store has
    /// its first complete load (the first load is no change to transfer incrementally).
    pub(super) fn journaling(&self) -> bool {
        self.zones.journal_bytes > 0 && self.store.is_ready()
    }

    /// Reads the records of the name of store key `key` as they are, before the batch
    /// changes it (once per batch).
    pub(super) fn touch(&mut self, key: &[u8]) {
        if !self.journaling() || self.before.contains_key(key) {
            return;
        }
        let records = self.records_of(key);
        self.before.insert(key.into(), records);
    }

    /// Touches every name of a Service's snapshot: its own names, its pods' names under
    /// `service` (the Service's key) and the reverse names of their addresses.
    pub(super) fn touch_snapshot(
        &mut self,
        service: &[u8],
        names: impl Iterator<Item = Box<[u8]>>,
        pods: &PodTable,
    ) {
        if !self.journaling() {
            return;
        }
        for key in names {
            self.touch(&key);
        }
        let Some((&kind, service_name)) = service.split_first() else {
            return;
        };
        for (label, entry) in pods.entries() {
            let mut key = vec![kind, label.len() as u8];
            key.extend_from_slice(label);
            key.extend_from_slice(service_name);
            self.touch(&key);
            for ip in entry.ips() {
                self.touch(&store::reverse_key(ip));
            }
        }
    }

    /// The records of the name of `key` in each zone that holds it.
    fn records_of(&self, key: &[u8]) -> ZoneRecords {
        let Some((&kind, name)) = key.split_first() else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (n, zone) in self.zones.transfer_zones.iter().enumerate() {
            if zone.kind as u8 != kind || !zone.contains(zone.kind, name) {
                continue;
            }
            let mut records = Vec::new();
            self.store.lookup(key, |found| {
                render::records(found, name, zone, &mut records)
            });
            out.push((n, records));
        }
        out
    }

    /// Ends a batch that republished something: the next serial in every apex SOA, and the
    /// step from the last one with what the touched names changed.
    pub(super) fn next_serial(&mut self) {
        let from = self.store.serial();
        let to = next(from, now());
        self.publish_apexes(to);
        let touched = std::mem::take(&mut self.before);
        if !self.journaling() {
            self.store.set_serial(to);
        } else {
            let mut zones: Vec<ZoneChange> = Vec::new();
            for (key, before) in touched {
                for (zone, after) in self.records_of(&key) {
                    let old = before
                        .iter()
                        .find(|(z, _)| *z == zone)
                        .map(|(_, records)| records.as_slice())
                        .unwrap_or_default();
                    let (deleted, added) = difference(old, &after);
                    if deleted.is_empty() && added.is_empty() {
                        continue;
                    }
                    let at = match zones.iter().position(|z| z.zone == zone) {
                        Some(at) => at,
                        None => {
                            zones.push(ZoneChange {
                                zone,
                                ..ZoneChange::default()
                            });
                            zones.len() - 1
                        }
                    };
                    zones[at].deleted.extend(deleted);
                    zones[at].added.extend(added);
                }
            }
            zones.sort_by_key(|z| z.zone);
            self.store.push_step(Step { from, to, zones });
            self.metrics
                .journal_bytes
                .set(i64::try_from(self.store.journal_bytes()).unwrap_or(i64::MAX));
        }
        self.metrics.serial.set(i64::from(to));
        if let Some(notify) = &self.notify {
            notify.send_replace(to);
        }
    }

    /// Publishes the apexes (SOA, NS) of every zone with `serial`, and their SOA as the
    /// authority record of negative answers.
    pub(super) fn publish_apexes(&mut self, serial: u32) {
        let ttl = self.zones.negative_ttl;
        let forward = zone_records::forward_static_records(ttl, &self.zones.ns_addresses, serial);
        for records in forward.iter().filter(|r| r.name.is_apex()) {
            self.set_static(ZoneKind::Forward, records);
        }
        if self.clusterset.is_some() {
            let names =
                zone_records::clusterset_static_records(ttl, &self.zones.ns_addresses, serial);
            for records in names.iter().filter(|r| r.name.is_apex()) {
                self.set_static(ZoneKind::ClusterSet, records);
            }
        }
        for kind in [ZoneKind::ReverseV4, ZoneKind::ReverseV6] {
            let tree = zone_records::reverse_apex_records(RelativeName::apex(), ttl, serial);
            self.set_static(kind, &tree);
        }
        for (kind, apex) in self.zones.reverse_apexes.clone() {
            let records = zone_records::reverse_apex_records(apex, ttl, serial);
            self.set_static(kind, &records);
        }
    }
}

/// The records of `old` not in `new`, and those of `new` not in `old` (a change of TTL
/// alone is none).
fn difference(old: &[Record], new: &[Record]) -> (Vec<Record>, Vec<Record>) {
    let new_set: BTreeSet<(u16, &[u8])> = new.iter().map(|r| (r.rtype, &*r.rdata)).collect();
    let old_set: BTreeSet<(u16, &[u8])> = old.iter().map(|r| (r.rtype, &*r.rdata)).collect();
    let deleted = old
        .iter()
        .filter(|r| !new_set.contains(&(r.rtype, &*r.rdata)))
        .cloned()
        .collect();
    let added = new
        .iter()
        .filter(|r| !old_set.contains(&(r.rtype, &*r.rdata)))
        .cloned()
        .collect();
    (deleted, added)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_serial_follows_the_clock_and_always_moves_on() {
        assert_eq!(next(100, 200), 200);
        assert_eq!(next(200, 200), 201, "two changes in one second");
        assert_eq!(next(205, 200), 206, "ahead of the clock: one more");
        assert_eq!(next(u32::MAX, 3), 3, "past the wrap, RFC 1982");
    }
}
