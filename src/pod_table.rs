//! The names one label below a Service's name whose answers are addresses alone: its pods'
//! names, the ordinal slots waiting for a pod, and empty names such as `_tcp`. They are most
//! of a cluster's names, so each Service keeps them in one table (three allocations
//! whatever its size) instead of one heap block per name, and their A and AAAA records are
//! written per query from the stored addresses: 16 or 28 bytes each, a copy either way.
//! The same table answers the reverse names of those addresses (see `store`).
//!
//! An entry is `[label length][label][flags][IPv4 count][IPv6 count][IPv4 addresses][IPv6
//! addresses]`, entries back to back; open-addressing tables of entry offsets (16-bit while
//! the entries take less than 64 KiB), one hashed by label and one by address, find one.
//! The flags say whether the name is an ordinal slot, whether its first record set is
//! AAAA, and whether its label is an endpoint's hostname. A name whose entry would not fit
//! this format (more than 255 addresses of one family) stays in the general form
//! (`compile::NameAnswers`).

use std::hash::BuildHasher;
use std::net::IpAddr;

use crate::records::rtype;
use crate::store::FastHash;

/// A free slot of the offset table.
const EMPTY: u32 = u32::MAX;
/// Flag: an ordinal slot, whose negative answers have the slot's own TTL.
const SLOT: u8 = 1;
/// Flag: the first record set is AAAA (what a QTYPE=ANY query gets, RFC 8482).
const AAAA_FIRST: u8 = 2;
/// Flag: the label is an endpoint's hostname (a StatefulSet pod's stable name), not its
/// dashed address: such names win the reverse answer over other claims (records.rs).
const HOSTNAME: u8 = 4;

/// The address-only names of one Service. Built once per publish, then read only.
#[derive(Debug, Default)]
pub struct PodTable {
    entries: Box<[u8]>,
    /// Offsets of entries in `entries`, by hash of the label; a power of two in size and
    /// never full, so a probe always ends.
    offsets: OffsetTable,
    /// Offsets of entries by hash of each of their addresses (for reverse lookups).
    by_address: OffsetTable,
    hasher: FastHash,
    len: usize,
}

/// Collects entries for a [`PodTable`].
#[derive(Debug, Default)]
pub struct PodTableBuilder {
    entries: Vec<u8>,
    offsets: Vec<u32>,
    addresses: usize,
}

impl PodTableBuilder {
    /// Adds the name `label` (lowercase, 1 to 63 octets, not added before) with `addresses`
    /// in answer order; `slot`: an ordinal slot; `hostname`: the label is an endpoint's
    /// hostname. Returns false and adds nothing when the entry does not fit the format; the
    /// caller keeps that name in the general form.
    pub fn add(&mut self, label: &[u8], addresses: &[IpAddr], slot: bool, hostname: bool) -> bool {
        let v4 = addresses.iter().filter(|a| a.is_ipv4()).count();
        let v6 = addresses.len() - v4;
        let (Ok(label_len), Ok(v4_count), Ok(v6_count), Ok(offset)) = (
            u8::try_from(label.len()),
            u8::try_from(v4),
            u8::try_from(v6),
            u32::try_from(self.entries.len()),
        ) else {
            return false;
        };
        if label.is_empty() || label.len() > 63 || offset == EMPTY {
            return false;
        }
        let mut flags = 0;
        if slot {
            flags |= SLOT;
        }
        if hostname {
            flags |= HOSTNAME;
        }
        if addresses.first().is_some_and(IpAddr::is_ipv6) {
            flags |= AAAA_FIRST;
        }
        self.offsets.push(offset);
        self.addresses += addresses.len();
        self.entries.push(label_len);
        self.entries.extend_from_slice(label);
        self.entries.extend_from_slice(&[flags, v4_count, v6_count]);
        for address in addresses {
            if let IpAddr::V4(ip) = address {
                self.entries.extend_from_slice(&ip.octets());
            }
        }
        for address in addresses {
            if let IpAddr::V6(ip) = address {
                self.entries.extend_from_slice(&ip.octets());
            }
        }
        true
    }

    pub fn build(self) -> PodTable {
        let entries = self.entries.into_boxed_slice();
        let len = self.offsets.len();
        if len == 0 {
            return PodTable::default();
        }
        let hasher = FastHash::default();
        // Every offset is below the entries' length: 16 bits hold them for a Service of up
        // to a few thousand pods, and halve both tables.
        let narrow = entries.len() < usize::from(EMPTY_NARROW);
        let mut by_label = OffsetTable::new(len, narrow);
        let mut by_address = OffsetTable::new(self.addresses, narrow);
        for offset in self.offsets {
            let Some((label, entry)) = entry_at(&entries, offset) else {
                continue;
            };
            by_label.insert(hasher.hash_one(label), offset);
            for (addresses, width) in [entry.addresses(rtype::A), entry.addresses(rtype::AAAA)] {
                for address in addresses.chunks_exact(width) {
                    by_address.insert(hasher.hash_one(address), offset);
                }
            }
        }
        PodTable {
            entries,
            offsets: by_label,
            by_address,
            hasher,
            len,
        }
    }
}

/// A free slot of a 16-bit offset table.
const EMPTY_NARROW: u16 = u16::MAX;

/// An open-addressing table of entry offsets, 16-bit when every offset fits (the entries
/// take less than 64 KiB), else 32-bit.
#[derive(Debug)]
enum OffsetTable {
    Narrow(Box<[u16]>),
    Wide(Box<[u32]>),
}

impl Default for OffsetTable {
    fn default() -> Self {
        OffsetTable::Narrow(Box::default())
    }
}

impl OffsetTable {
    /// A table for `n` entries: at most two thirds full, so probes are short and always
    /// meet a free slot.
    fn new(n: usize, narrow: bool) -> Self {
        let size = if n == 0 {
            0
        } else {
            (n + n / 2 + 1).next_power_of_two()
        };
        if narrow {
            OffsetTable::Narrow(vec![EMPTY_NARROW; size].into_boxed_slice())
        } else {
            OffsetTable::Wide(vec![EMPTY; size].into_boxed_slice())
        }
    }

    fn len(&self) -> usize {
        match self {
            OffsetTable::Narrow(table) => table.len(),
            OffsetTable::Wide(table) => table.len(),
        }
    }

    /// The offset in slot `at`; `EMPTY` for a free slot (or past the end).
    fn get(&self, at: usize) -> u32 {
        match self {
            OffsetTable::Narrow(table) => match table.get(at) {
                Some(&offset) if offset != EMPTY_NARROW => u32::from(offset),
                _ => EMPTY,
            },
            OffsetTable::Wide(table) => table.get(at).copied().unwrap_or(EMPTY),
        }
    }

    /// Stores `offset` (below the entries' length, so it fits the table's width) at the
    /// first free slot from `hash`.
    fn insert(&mut self, hash: u64, offset: u32) {
        match self {
            OffsetTable::Narrow(table) => {
                let offset = u16::try_from(offset).unwrap_or(EMPTY_NARROW);
                insert_into(table, hash, offset, EMPTY_NARROW);
            }
            OffsetTable::Wide(table) => insert_into(table, hash, offset, EMPTY),
        }
    }

    /// The offsets where an entry hashed to `hash` may be, in probe order, up to the first
    /// free slot.
    fn probe(&self, hash: u64) -> impl Iterator<Item = u32> + '_ {
        let len = self.len();
        let mask = len.wrapping_sub(1);
        let start = hash as usize & mask;
        // The table is never full; the bound only guards against a broken invariant.
        (0..len)
            .map(move |i| self.get((start + i) & mask))
            .take_while(|&offset| offset != EMPTY)
    }
}

fn insert_into<T: Copy + PartialEq>(table: &mut [T], hash: u64, value: T, empty: T) {
    let mask = table.len() - 1;
    let mut at = hash as usize & mask;
    while table[at] != empty {
        at = (at + 1) & mask;
    }
    table[at] = value;
}

/// The label and the rest of the entry at `offset`.
fn entry_at(entries: &[u8], offset: u32) -> Option<(&[u8], PodEntry<'_>)> {
    let at = usize::try_from(offset).ok()?;
    let len = usize::from(*entries.get(at)?);
    let label = entries.get(at + 1..at + 1 + len)?;
    Some((label, PodEntry::parse(entries.get(at + 1 + len..)?)?))
}

impl PodTable {
    /// The entry of `label`, if the Service has that name here.
    pub fn get(&self, label: &[u8]) -> Option<PodEntry<'_>> {
        self.offsets
            .probe(self.hasher.hash_one(label))
            .filter_map(|offset| entry_at(&self.entries, offset))
            .find(|(found, _)| *found == label)
            .map(|(_, entry)| entry)
    }

    /// The label of the name that has `address`, for its reverse name.
    pub fn label_of(&self, address: IpAddr) -> Option<&[u8]> {
        self.entry_of(address).map(|(label, _)| label)
    }

    /// The label and entry of the name that has `address`.
    pub fn entry_of(&self, address: IpAddr) -> Option<(&[u8], PodEntry<'_>)> {
        let (v4, v6);
        let address: &[u8] = match address {
            IpAddr::V4(ip) => {
                v4 = ip.octets();
                &v4
            }
            IpAddr::V6(ip) => {
                v6 = ip.octets();
                &v6
            }
        };
        let width = address.len();
        self.by_address
            .probe(self.hasher.hash_one(address))
            .filter_map(|offset| entry_at(&self.entries, offset))
            .find(|(_, entry)| {
                let (addresses, entry_width) =
                    entry.addresses(if width == 4 { rtype::A } else { rtype::AAAA });
                entry_width == width && addresses.chunks_exact(width).any(|a| a == address)
            })
    }

    /// Number of names in the table.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// One name's addresses, borrowed from a [`PodTable`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PodEntry<'a> {
    flags: u8,
    v4: &'a [u8],
    v6: &'a [u8],
}

impl<'a> PodEntry<'a> {
    /// Reads the part of an entry after its label.
    fn parse(bytes: &'a [u8]) -> Option<Self> {
        let (&[flags, v4_count, v6_count], rest) = bytes.split_first_chunk::<3>()?;
        let (v4, rest) = rest.split_at_checked(4 * usize::from(v4_count))?;
        let v6 = rest.get(..16 * usize::from(v6_count))?;
        Some(Self { flags, v4, v6 })
    }

    /// Whether the name is an ordinal slot (negative answers with the slot's TTL).
    pub fn is_slot(&self) -> bool {
        self.flags & SLOT != 0
    }

    /// Whether the label is an endpoint's hostname.
    pub fn is_hostname(&self) -> bool {
        self.flags & HOSTNAME != 0
    }

    /// The record type a QTYPE=ANY query is answered with, if the name has records.
    pub fn first_type(&self) -> Option<u16> {
        if self.flags & AAAA_FIRST != 0 {
            Some(rtype::AAAA)
        } else if !self.v4.is_empty() {
            Some(rtype::A)
        } else if !self.v6.is_empty() {
            Some(rtype::AAAA)
        } else {
            None
        }
    }

    /// The addresses of record type `qtype` back to back (4 or 16 octets each, in answer
    /// order) with that width; empty for any other type.
    pub fn addresses(&self, qtype: u16) -> (&'a [u8], usize) {
        match qtype {
            rtype::A => (self.v4, 4),
            rtype::AAAA => (self.v6, 16),
            _ => (&[], 4),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ips(list: &[&str]) -> Vec<IpAddr> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn tables_past_64_kib_use_wide_offsets_and_find_everything() {
        // 4,000 entries of 1 + 24 + 3 + 4 bytes: past the 16-bit offsets.
        let label = |n: u32| format!("statefulset-pod-name-{n:03}");
        let address = |n: u32| IpAddr::from([10, 9, (n >> 8) as u8, n as u8]);
        let mut builder = PodTableBuilder::default();
        for n in 0..4000 {
            assert!(builder.add(label(n).as_bytes(), &[address(n)], false, true));
        }
        let table = builder.build();
        assert!(matches!(table.offsets, OffsetTable::Wide(_)));
        assert!(matches!(table.by_address, OffsetTable::Wide(_)));
        for n in 0..4000 {
            let entry = table.get(label(n).as_bytes()).unwrap();
            assert_eq!(
                entry.addresses(rtype::A).0,
                [10, 9, (n >> 8) as u8, n as u8]
            );
            assert_eq!(table.label_of(address(n)), Some(label(n).as_bytes()));
        }
        assert!(table.get(b"statefulset-pod-name-4000").is_none());
        assert_eq!(table.label_of(IpAddr::from([10, 9, 200, 0])), None);
    }

    #[test]
    fn every_entry_is_found_by_its_label_and_nothing_else() {
        let mut builder = PodTableBuilder::default();
        for n in 0..300u32 {
            let label = format!("web-{n}");
            let address = IpAddr::from([10, 0, (n >> 8) as u8, n as u8]);
            assert!(builder.add(label.as_bytes(), &[address], false, n % 2 == 0));
        }
        assert!(builder.add(b"slot-0", &[], true, false));
        assert!(builder.add(
            b"dual",
            &ips(&["fd00::1", "10.1.1.1", "fd00::2"]),
            false,
            false
        ));
        let table = builder.build();
        assert_eq!(table.len(), 302);
        assert!(matches!(table.offsets, OffsetTable::Narrow(_)));
        for n in 0..300u32 {
            let entry = table.get(format!("web-{n}").as_bytes()).unwrap();
            assert_eq!(
                entry.addresses(rtype::A),
                (&[10, 0, (n >> 8) as u8, n as u8][..], 4)
            );
            assert_eq!(entry.addresses(rtype::AAAA).0, &[] as &[u8]);
            assert_eq!(entry.first_type(), Some(rtype::A));
            assert!(!entry.is_slot());
        }
        let slot = table.get(b"slot-0").unwrap();
        assert!(slot.is_slot());
        assert_eq!(slot.first_type(), None);
        let dual = table.get(b"dual").unwrap();
        assert_eq!(
            dual.first_type(),
            Some(rtype::AAAA),
            "the first record's type"
        );
        assert_eq!(dual.addresses(rtype::AAAA).0.len(), 32);
        assert_eq!(dual.addresses(rtype::A).0, &[10, 1, 1, 1]);
        for missing in [&b"web-300"[..], b"web-", b"", b"WEB-1"] {
            assert!(table.get(missing).is_none(), "{missing:?}");
        }
        assert!(PodTable::default().get(b"web-0").is_none());
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(table.label_of(ip("10.0.1.2")), Some(&b"web-258"[..]));
        assert_eq!(table.label_of(ip("fd00::2")), Some(&b"dual"[..]));
        assert_eq!(table.label_of(ip("10.1.1.1")), Some(&b"dual"[..]));
        assert_eq!(table.label_of(ip("10.0.9.9")), None);
        let hostname = |address| table.entry_of(ip(address)).map(|(_, e)| e.is_hostname());
        assert_eq!(hostname("10.0.1.2"), Some(true), "web-258");
        assert_eq!(hostname("10.0.1.3"), Some(false), "web-259");
        assert_eq!(PodTable::default().label_of(ip("10.0.0.1")), None);
    }

    #[test]
    fn what_does_not_fit_is_refused_whole() {
        let mut builder = PodTableBuilder::default();
        let many: Vec<IpAddr> = (0..256u32)
            .map(|n| IpAddr::from([10, 0, (n >> 8) as u8, n as u8]))
            .collect();
        assert!(!builder.add(b"many", &many, false, false));
        assert!(!builder.add(&[b'a'; 64], &[], false, false));
        assert!(!builder.add(b"", &[], false, false));
        assert!(builder.add(b"fits", &many[..255], false, false));
        let table = builder.build();
        assert_eq!(table.len(), 1);
        assert!(table.get(b"many").is_none());
        assert_eq!(
            table.get(b"fits").unwrap().addresses(rtype::A).0.len(),
            4 * 255
        );
    }
}
