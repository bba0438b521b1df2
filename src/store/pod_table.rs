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
//! The bits of a slot its offset does not need hold a few bits of its key's hash (a tag),
//! so a probe reads only the entries whose tag matches: each entry read is a cache miss
//! when the table is not in cache, as under load it is not (see `SlotFormat`).
//! Entries and both tables are one heap block, and each table has exactly the slots it
//! needs (half as many again as its keys, not a power of two).
//! The flags say whether the name is an ordinal slot, whether its first record set is
//! AAAA, and whether its label is an endpoint's hostname. A name whose entry would not fit
//! this format (more than 255 addresses of one family) stays in the general form
//! (`compile::NameAnswers`).

use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::LazyLock;

use crate::dns::wire::rtype;
use crate::hash::FastHash;

/// A free slot of the offset table (either width: its bytes are all 0xff).
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
    /// `[entries][offsets by label][offsets by address]`: the offset tables find an entry
    /// by the hash of its label and by the hash of each of its addresses (for reverse
    /// lookups). Never full, so a probe always ends.
    bytes: Box<[u8]>,
    /// Length of the entries part; the offsets are 16-bit when it is below 64 KiB.
    entries_len: u32,
    /// Number of names (entries).
    len: u32,
}

/// Hashes labels and addresses for every table: one seed per process.
static HASHER: LazyLock<FastHash> = LazyLock::new(FastHash::default);

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
        let len = self.offsets.len();
        let (Ok(len_u32), Ok(entries_len)) =
            (u32::try_from(len), u32::try_from(self.entries.len()))
        else {
            // `add` refuses entries past a 32-bit offset, so this cannot happen.
            return PodTable::default();
        };
        if len == 0 {
            return PodTable::default();
        }
        let format = SlotFormat::for_entries(entries_len);
        let width = format.width;
        let label_slots = slots_for(len);
        let address_slots = slots_for(self.addresses);
        let mut bytes = self.entries;
        let table_start = bytes.len();
        // Every free slot reads as `EMPTY` in either width.
        bytes.resize(table_start + (label_slots + address_slots) * width, 0xff);
        let (entries, tables) = bytes.split_at_mut(table_start);
        let (by_label, by_address) = tables.split_at_mut(label_slots * width);
        for offset in self.offsets {
            let Some((label, entry)) = entry_at(entries, offset) else {
                continue;
            };
            insert(by_label, format, HASHER.hash_one(label), offset);
            for (addresses, address_width) in
                [entry.addresses(rtype::A), entry.addresses(rtype::AAAA)]
            {
                for address in addresses.chunks_exact(address_width) {
                    insert(by_address, format, HASHER.hash_one(address), offset);
                }
            }
        }
        PodTable {
            bytes: bytes.into_boxed_slice(),
            entries_len,
            len: len_u32,
        }
    }
}

/// How the slots of a table whose entries take `entries_len` bytes hold an entry's offset:
/// in 2 bytes while the entries take less than 64 KiB (a Service of up to a few thousand
/// pods; it halves both tables), else in 4; the bits above the offset hold a tag of the
/// key's hash, which lets a probe skip the entries of other keys without reading them.
/// The tag takes only bits the offset does not need, so it costs no memory: 4 bits while
/// the entries take less than 4 KiB (a Service of up to 150 to 270 pods, by the length of
/// their names), none up to 64 KiB, 8 up to 16 MiB. A valid slot is never all ones
/// (`EMPTY`): its offset is below the entries' length, which is below the offset field's
/// largest value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct SlotFormat {
    /// Bytes per slot, 2 or 4.
    width: usize,
    /// Low bits of a slot that hold the offset; the rest (up to `8 * width`) hold the tag.
    offset_bits: u32,
}

impl SlotFormat {
    fn for_entries(entries_len: u32) -> Self {
        let (width, offset_bits) = match entries_len {
            0..0x1000 => (2, 12),
            0x1000..0xffff => (2, 16),
            0xffff..0xff_ffff => (4, 24),
            _ => (4, 32),
        };
        Self { width, offset_bits }
    }

    /// The slot's value for `offset` of a key hashed to `hash`.
    fn encode(self, hash: u64, offset: u32) -> u32 {
        offset | self.tag(hash)
    }

    /// The tag of `hash`, in the bits a slot's offset does not use. The probe's start slot
    /// is taken from the hash's high bits; the tag from its low ones.
    fn tag(self, hash: u64) -> u32 {
        let slot_bits = 8 * self.width as u32;
        if self.offset_bits >= slot_bits {
            return 0;
        }
        let tag_mask = (1u32 << (slot_bits - self.offset_bits)) - 1;
        (hash as u32 & tag_mask) << self.offset_bits
    }

    /// The offset in a slot's value, if the slot's tag is `tag` (from [`SlotFormat::tag`]).
    fn offset_if_tagged(self, value: u32, tag: u32) -> Option<u32> {
        let offset_mask = u32::MAX.checked_shr(32 - self.offset_bits).unwrap_or(0);
        (value & !offset_mask == tag).then_some(value & offset_mask)
    }
}

/// Slots of an offset table for `n` keys: at most two thirds full, so probes are short and
/// always meet a free slot.
fn slots_for(n: usize) -> usize {
    if n == 0 { 0 } else { n + n / 2 + 1 }
}

/// The slots a probe for `hash` visits in a table of `slots`, in order: from a start slot
/// found by multiplying and keeping the high bits (the table's size is not a power of
/// two, and the high bits are as well mixed as the low ones), wrapping once.
fn probe_order(hash: u64, slots: usize) -> impl Iterator<Item = usize> {
    let start = ((u128::from(hash) * slots as u128) >> 64) as usize;
    (start..slots).chain(0..start)
}

/// Stores `offset` at the first free slot from `hash` in `table` (slots of `format`,
/// little-endian). The table has a free slot (it is sized by `slots_for`).
fn insert(table: &mut [u8], format: SlotFormat, hash: u64, offset: u32) {
    let width = format.width;
    for at in probe_order(hash, table.len() / width) {
        let slot = &mut table[at * width..(at + 1) * width];
        if slot.iter().all(|&b| b == 0xff) {
            slot.copy_from_slice(&format.encode(hash, offset).to_le_bytes()[..width]);
            return;
        }
    }
}

/// One of a table's two offset tables, borrowed.
#[derive(Debug, Clone, Copy)]
struct Offsets<'a> {
    table: &'a [u8],
    format: SlotFormat,
}

impl<'a> Offsets<'a> {
    /// The value in slot `at`; `EMPTY` for a free slot (or past the end).
    fn get(&self, at: usize) -> u32 {
        let width = self.format.width;
        match self.table.get(at * width..(at + 1) * width) {
            Some(&[low, high]) => match u16::from_le_bytes([low, high]) {
                u16::MAX => EMPTY,
                value => u32::from(value),
            },
            Some(&[a, b, c, d]) => u32::from_le_bytes([a, b, c, d]),
            _ => EMPTY,
        }
    }

    /// The offsets where an entry hashed to `hash` may be, in probe order, up to the first
    /// free slot: those whose tag matches.
    fn probe(self, hash: u64) -> impl Iterator<Item = u32> + 'a {
        let tag = self.format.tag(hash);
        probe_order(hash, self.table.len() / self.format.width)
            .map(move |at| self.get(at))
            .take_while(|&value| value != EMPTY)
            .filter_map(move |value| self.format.offset_if_tagged(value, tag))
    }
}

/// The label and the rest of the entry at `offset`.
fn entry_at(entries: &[u8], offset: u32) -> Option<(&[u8], PodEntry<'_>)> {
    let at = usize::try_from(offset).ok()?;
    let len = usize::from(*entries.get(at)?);
    let label = entries.get(at + 1..at + 1 + len)?;
    Some((label, PodEntry::parse(entries.get(at + 1 + len..)?)?))
}

impl PodTable {
    /// The entries, and the offset tables by label and by address.
    fn parts(&self) -> (&[u8], Offsets<'_>, Offsets<'_>) {
        let (entries, tables) = self
            .bytes
            .split_at_checked(self.entries_len as usize)
            .unwrap_or_default();
        let format = SlotFormat::for_entries(self.entries_len);
        let label_bytes = slots_for(self.len as usize) * format.width;
        let (by_label, by_address) = tables.split_at_checked(label_bytes).unwrap_or_default();
        (
            entries,
            Offsets {
                table: by_label,
                format,
            },
            Offsets {
                table: by_address,
                format,
            },
        )
    }

    /// The entry of `label`, if the Service has that name here.
    pub fn get(&self, label: &[u8]) -> Option<PodEntry<'_>> {
        let (entries, by_label, _) = self.parts();
        by_label
            .probe(HASHER.hash_one(label))
            .filter_map(|offset| entry_at(entries, offset))
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
        let (entries, _, by_address) = self.parts();
        by_address
            .probe(HASHER.hash_one(address))
            .filter_map(|offset| entry_at(entries, offset))
            .find(|(_, entry)| {
                let (addresses, entry_width) =
                    entry.addresses(if width == 4 { rtype::A } else { rtype::AAAA });
                entry_width == width && addresses.chunks_exact(width).any(|a| a == address)
            })
    }

    /// Every name's label and entry, in the order they were added (a Service's: ordinal
    /// order): what a zone transfer lists.
    pub fn entries(&self) -> impl Iterator<Item = (&[u8], PodEntry<'_>)> {
        let (mut entries, _, _) = self.parts();
        std::iter::from_fn(move || {
            let (label, entry) = entry_at(entries, 0)?;
            let len = 1 + label.len() + 3 + entry.v4.len() + entry.v6.len();
            entries = entries.get(len..).unwrap_or_default();
            Some((label, entry))
        })
    }

    /// Number of names in the table.
    pub fn len(&self) -> usize {
        self.len as usize
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

    /// Its addresses, IPv4 first.
    pub fn ips(&self) -> impl Iterator<Item = IpAddr> + 'a {
        let v4 = self
            .v4
            .chunks_exact(4)
            .filter_map(|a| <[u8; 4]>::try_from(a).ok());
        let v6 = self
            .v6
            .chunks_exact(16)
            .filter_map(|a| <[u8; 16]>::try_from(a).ok());
        v4.map(IpAddr::from).chain(v6.map(IpAddr::from))
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
        assert_eq!(SlotFormat::for_entries(table.entries_len).width, 4);
        // One block: entries, then 6,001 label slots and 6,001 address slots.
        assert_eq!(
            table.bytes.len(),
            table.entries_len as usize + 2 * slots_for(4000) * 4
        );
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
        assert_eq!(SlotFormat::for_entries(table.entries_len).width, 2);
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
    fn slots_carry_a_tag_in_the_bits_their_offset_does_not_need() {
        let format = |len| {
            let f = SlotFormat::for_entries(len);
            (f.width, f.offset_bits)
        };
        assert_eq!(format(0), (2, 12));
        assert_eq!(format(0xfff), (2, 12));
        assert_eq!(format(0x1000), (2, 16));
        assert_eq!(format(0xfffe), (2, 16));
        assert_eq!(format(0xffff), (4, 24));
        assert_eq!(format(0xff_fffe), (4, 24));
        assert_eq!(format(0xff_ffff), (4, 32));
        for entries_len in [
            1,
            0xfff,
            0x1000,
            0xfffe,
            0xffff,
            0xff_fffe,
            0xff_ffff,
            u32::MAX,
        ] {
            let format = SlotFormat::for_entries(entries_len);
            let largest = u32::MAX >> (32 - 8 * format.width as u32);
            for hash in [0, 1, 0xabcd_ef01_2345_6789, u64::MAX] {
                for offset in [0, entries_len / 2, entries_len - 1] {
                    let value = format.encode(hash, offset);
                    assert!(value <= largest, "{value:#x} fits {} bytes", format.width);
                    assert_ne!(value, largest, "a valid slot is never free");
                    assert_eq!(
                        format.offset_if_tagged(value, format.tag(hash)),
                        Some(offset)
                    );
                }
            }
            let tag_bits = 8 * format.width as u32 - format.offset_bits;
            if tag_bits > 0 {
                // A key whose hash differs in the tag's bits is passed over.
                let slot = format.encode(0, 7);
                assert_eq!(format.offset_if_tagged(slot, format.tag(1)), None);
                assert_eq!(
                    format.offset_if_tagged(slot, format.tag(1 << tag_bits)),
                    Some(7)
                );
            }
        }
    }

    #[test]
    fn small_tables_with_tags_find_every_entry_by_label_and_address() {
        let mut builder = PodTableBuilder::default();
        for n in 0..100u32 {
            let address = IpAddr::from([10, 0, 0, n as u8]);
            assert!(builder.add(format!("db-{n}").as_bytes(), &[address], false, true));
        }
        let table = builder.build();
        assert_eq!(SlotFormat::for_entries(table.entries_len).offset_bits, 12);
        for n in 0..100u32 {
            let entry = table.get(format!("db-{n}").as_bytes()).unwrap();
            assert_eq!(entry.addresses(rtype::A).0, [10, 0, 0, n as u8]);
            assert_eq!(
                table.label_of(IpAddr::from([10, 0, 0, n as u8])),
                Some(format!("db-{n}").as_bytes())
            );
        }
        for missing in [&b"db-100"[..], b"db-", b"db-1 ", b"DB-1"] {
            assert!(table.get(missing).is_none(), "{missing:?}");
        }
        assert_eq!(table.label_of(IpAddr::from([10, 0, 0, 100])), None);
    }

    #[test]
    fn entries_come_back_in_the_order_they_were_added() {
        let mut builder = PodTableBuilder::default();
        for (label, ip) in [
            ("web-0", "10.0.0.1"),
            ("web-1", "fd00::2"),
            ("web-2", "10.0.0.3"),
        ] {
            assert!(builder.add(label.as_bytes(), &ips(&[ip]), false, true));
        }
        assert!(builder.add(b"web-3", &[], true, true));
        let table = builder.build();
        let listed: Vec<(String, usize, usize)> = table
            .entries()
            .map(|(label, e)| {
                let (v4, v6) = (
                    e.addresses(rtype::A).0.len(),
                    e.addresses(rtype::AAAA).0.len(),
                );
                (String::from_utf8_lossy(label).into_owned(), v4, v6)
            })
            .collect();
        assert_eq!(
            listed,
            [
                ("web-0".into(), 4, 0),
                ("web-1".into(), 0, 16),
                ("web-2".into(), 4, 0),
                ("web-3".into(), 0, 0)
            ]
        );
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
