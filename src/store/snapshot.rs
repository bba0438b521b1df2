//! What one Service answers, swapped in whole: its [`ServiceSnapshot`] (the pod table and
//! the compiled answers of its other names) behind a [`ServiceSlot`], which the index
//! routes its names to.

use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::store::answers::{Answers, NameAnswers};
use crate::store::pod_table::PodTable;

/// The compiled answers of the names of one Service that are not in its [`PodTable`]: the
/// Service's own name, its SRV names, the odd name the table cannot hold. A few per
/// Service, so they are kept sorted by key in one exact-size block and found by binary
/// search; a hash set would add its control bytes, spare slots and hasher to every Service.
#[derive(Debug, Default)]
pub struct ServiceAnswers(Box<[SnapshotEntry]>);

impl ServiceAnswers {
    pub fn get(&self, key: &[u8]) -> Option<&SnapshotEntry> {
        let at = self.0.binary_search_by(|entry| entry.key().cmp(key)).ok()?;
        self.0.get(at)
    }

    pub fn contains(&self, key: &[u8]) -> bool {
        self.get(key).is_some()
    }

    pub fn iter(&self) -> impl Iterator<Item = &SnapshotEntry> {
        self.0.iter()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Of two entries with one key, the first is kept.
impl FromIterator<SnapshotEntry> for ServiceAnswers {
    fn from_iter<I: IntoIterator<Item = SnapshotEntry>>(entries: I) -> Self {
        let mut entries: Vec<SnapshotEntry> = entries.into_iter().collect();
        entries.sort_by(|a, b| a.key().cmp(b.key()));
        entries.dedup_by(|later, earlier| later.key() == earlier.key());
        Self(entries.into_boxed_slice())
    }
}

/// Everything one Service answers, swapped in whole: its pods' names (and the other
/// address-only names one label below its own) in a compact table, every other name with
/// its compiled answers.
#[derive(Debug, Default)]
pub struct ServiceSnapshot {
    pub names: ServiceAnswers,
    pub pods: PodTable,
    /// TTL of the records written from `pods`.
    pub ttl: u32,
    /// Negative TTL of the ordinal slots in `pods`.
    pub slot_negative_ttl: u32,
    /// The Service's name in the primary zone, in wire form, root label included: what
    /// follows a pod's label in the target of its reverse name.
    pub name_in_primary_zone: Box<[u8]>,
}

/// One name of a Service's snapshot with its answers, in one allocation:
/// `[key length: u16][key][packed answers]`. A Service snapshot holds one per name its pod
/// table does not, so the key and the answers share a heap block and the list holds a
/// single pointer.
#[derive(Debug, Clone)]
pub struct SnapshotEntry(Box<[u8]>);

impl SnapshotEntry {
    pub fn new(key: &[u8], answers: &NameAnswers) -> Self {
        let packed = answers.packed();
        // Keys are at most 256 bytes (a kind byte and a name): the length always fits.
        let key_len = u16::try_from(key.len()).unwrap_or(u16::MAX);
        let key = &key[..usize::from(key_len)];
        let mut bytes = Vec::with_capacity(2 + key.len() + packed.len());
        bytes.extend_from_slice(&key_len.to_be_bytes());
        bytes.extend_from_slice(key);
        bytes.extend_from_slice(packed);
        Self(bytes.into_boxed_slice())
    }

    fn key_len(&self) -> usize {
        match self.0.get(..2) {
            Some(&[high, low]) => usize::from(u16::from_be_bytes([high, low])),
            _ => 0,
        }
    }

    pub fn key(&self) -> &[u8] {
        self.0.get(2..2 + self.key_len()).unwrap_or_default()
    }

    pub fn answers(&self) -> Answers<'_> {
        Answers(self.0.get(2 + self.key_len()..).unwrap_or_default())
    }
}

/// The current snapshot of one Service's answers.
#[derive(Debug)]
pub struct ServiceSlot {
    pub(crate) answers: ArcSwap<ServiceSnapshot>,
    /// Its number in the store's map of slots, which reverse routes hold.
    pub(crate) number: u32,
}

impl ServiceSlot {
    /// The slot's number: unique among the slots in the store, reused after
    /// `Store::release_slot`. The writer keys what it knows of a slot's Service by it.
    pub fn number(&self) -> u32 {
        self.number
    }

    /// Makes `snapshot` the Service's answers, atomically for every reader.
    pub fn publish(&self, snapshot: ServiceSnapshot) {
        self.answers.store(Arc::new(snapshot));
    }

    /// The current answers (for the writer, to diff against the next ones).
    pub fn snapshot(&self) -> Arc<ServiceSnapshot> {
        self.answers.load_full()
    }
}
