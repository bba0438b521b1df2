//! The zones' serial and the recent changes to them, for incremental transfers (IXFR, RFC
//! 1995): each published batch that changed something is a step from one serial to the
//! next with the records it deleted and added, per zone. Bounded in bytes: the oldest steps
//! go first, and a client older than the journal gets the whole zone instead.

use std::collections::VecDeque;
use std::sync::Arc;

use crate::store::render::Record;

/// What one batch changed in one zone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ZoneChange {
    /// The zone's number among the transferred zones.
    pub zone: usize,
    pub deleted: Vec<Record>,
    pub added: Vec<Record>,
}

/// One step of the serial, and what it changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub from: u32,
    pub to: u32,
    pub zones: Vec<ZoneChange>,
}

impl Step {
    /// Bytes it holds, roughly: the records' wire size.
    pub fn size(&self) -> usize {
        self.zones
            .iter()
            .flat_map(|z| z.deleted.iter().chain(&z.added))
            .map(|r| r.wire_len() + 32)
            .sum::<usize>()
            + 64
    }

    /// What it changed in `zone`.
    pub fn zone(&self, zone: usize) -> Option<&ZoneChange> {
        self.zones.iter().find(|z| z.zone == zone)
    }
}

pub use crate::dns::wire::serial_after;

/// The recent steps, oldest first.
#[derive(Debug, Default)]
pub struct Journal {
    steps: VecDeque<Arc<Step>>,
    bytes: usize,
    /// Bytes the steps may hold; 0 keeps none.
    limit: usize,
}

impl Journal {
    pub fn new(limit: usize) -> Self {
        Self {
            limit,
            ..Self::default()
        }
    }

    /// Adds the newest step, dropping the oldest beyond the limit. A step larger than the
    /// limit empties the journal: nothing before it can be given as changes any more.
    pub fn push(&mut self, step: Step) {
        let size = step.size();
        if size > self.limit {
            self.steps.clear();
            self.bytes = 0;
            return;
        }
        // A gap (a step not from the last one's serial) breaks the chain.
        if self.steps.back().is_some_and(|last| last.to != step.from) {
            self.steps.clear();
            self.bytes = 0;
        }
        self.bytes += size;
        self.steps.push_back(Arc::new(step));
        while self.bytes > self.limit {
            match self.steps.pop_front() {
                Some(old) => self.bytes -= old.size(),
                None => break,
            }
        }
    }

    /// The steps from `serial` to the newest, if the journal reaches back to it.
    pub fn since(&self, serial: u32) -> Option<Vec<Arc<Step>>> {
        let start = self.steps.iter().position(|s| s.from == serial)?;
        Some(self.steps.iter().skip(start).cloned().collect())
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(from: u32, to: u32, records: usize) -> Step {
        let record = Record {
            owner: b"\x01a\x00".as_slice().into(),
            rtype: 1,
            ttl: 5,
            rdata: vec![10, 0, 0, 1].into_boxed_slice(),
        };
        Step {
            from,
            to,
            zones: vec![ZoneChange {
                zone: 0,
                deleted: vec![],
                added: vec![record; records],
            }],
        }
    }

    #[test]
    fn steps_are_found_from_a_serial_and_the_oldest_go_past_the_limit() {
        let one = step(1, 2, 1).size();
        let mut journal = Journal::new(3 * one);
        for n in 1..=3 {
            journal.push(step(n, n + 1, 1));
        }
        assert_eq!(journal.since(1).map(|s| s.len()), Some(3));
        assert_eq!(journal.since(3).map(|s| s.len()), Some(1));
        assert!(
            journal.since(4).is_none(),
            "the newest serial has no step from it"
        );
        journal.push(step(4, 5, 1));
        assert!(journal.since(1).is_none(), "the oldest step went");
        assert_eq!(journal.since(2).map(|s| s.len()), Some(3));
        // A gap, or a step larger than the whole journal, leaves nothing to chain from.
        journal.push(step(9, 10, 1));
        assert!(journal.since(2).is_none());
        journal.push(step(10, 11, 100));
        assert!(journal.since(10).is_none() && journal.bytes() == 0);
    }

    #[test]
    fn serials_compare_in_rfc_1982_arithmetic() {
        assert!(serial_after(2, 1));
        assert!(!serial_after(1, 2));
        assert!(!serial_after(7, 7));
        assert!(serial_after(3, u32::MAX), "past the wrap");
        assert!(!serial_after(u32::MAX, 3));
    }
}
