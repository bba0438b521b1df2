//! SRV record sets of headless Services, kept compact and written per query.
//!
//! A headless Service's SRV answer names every endpoint (`<pod>.<svc>.<ns>.svc.<zone>`,
//! uncompressed as RFC 2782 requires) and adds its address: pre-encoded, that is about 90
//! bytes per endpoint, per port and per zone. Every target is one label below the Service's
//! name, which the question ends with, so the set is kept as the targets' labels, ports and
//! addresses (about 12 bytes per endpoint, for every zone) and written against the question
//! when asked.
//!
//! Layout of the answer part: a head, then the records. The head: the length of the
//! owner's labels before the Service's name (u8), the TTL (u32), the total length of the
//! target labels (u32) and of the additional records' labels and addresses (u32), and a
//! layout byte. Then, with [`SHARED_FIELDS`], the priority, weight and port of every record
//! (u16 each) once; and per record `[priority u16][weight u16][port u16]` unless shared,
//! `[label length][label]`, and with [`PAIRED`] the target's one address `[address
//! length][address]`. Without [`PAIRED`], the additional part holds per record `[label
//! length][label][address length][address]`.
//!
//! A headless Service's set is both: one weight for all (RFC 2782 spreads the load evenly),
//! usually one port, and one address per target in target order. Each record is then its
//! label and its address, about 12 bytes.
//!
//! A headless ServiceImport's targets are two labels below its name
//! (`<host>.<cluster>.<svc>.<ns>.svc`): the layout byte's high bits hold that depth, and a
//! record's "label" is then that many length-prefixed labels, written as they are stored
//! (for one label, the `[label length][label]` above). Targets in cluster order share
//! their labels after the first in runs ([`RUNS`]): each run is `[records in it u16][the
//! shared labels]` before its records, which keep their first label only, so a remote
//! endpoint's SRV record costs what a local one's does.

use crate::dns::name::{Labels, RelativeName};
use crate::dns::rdata::{RData, RrSet};
use crate::dns::wire::{self, HEADER_LEN, QUESTION_POINTER, RECORD_HEAD_LEN, rtype};
use crate::store::answers::{ANY_ZONE, CompiledRrset, Rrset, SRV as FORM};

/// Bytes before the records: prefix length, TTL, the total length of the records' labels
/// and that of the additional records' labels and addresses, the layout.
const HEAD_LEN: usize = 1 + 4 + 4 + 4 + 1;

/// Layout bit: every record has the same priority, weight and port, stored once.
const SHARED_FIELDS: u8 = 1;
/// Layout bit: the additional records are the targets' addresses, one per record in record
/// order, each stored after its record's label.
const PAIRED: u8 = 2;
/// Layout bit (targets more than one label down): records come in runs that share the
/// labels after the first, stored once per run.
const RUNS: u8 = 4;
/// The layout byte's bits from here: how many labels each target has below the name the
/// question ends with, less one.
const DEPTH_SHIFT: u8 = 4;
/// Targets at most this many labels below that name.
const MAX_DEPTH: usize = 3;

/// Appends an address record's address as `[length][octets]` and returns the length, or
/// `None` if the record is not an address.
fn push_address(out: &mut Vec<u8>, record: &RData) -> Option<usize> {
    let octets: &[u8] = match record {
        RData::A(ip) => &ip.octets(),
        RData::Aaaa(ip) => &ip.octets(),
        _ => return None,
    };
    out.push(octets.len() as u8);
    out.extend_from_slice(octets);
    Some(octets.len())
}

/// `rrset` (the SRV records at `owner`) in compact form, when every target and every
/// additional owner is the same number of labels (one, or up to [`MAX_DEPTH`]) below one
/// name that `owner` is below too; `None` keeps the encoded form.
pub fn compact(owner: &RelativeName, rrset: &RrSet, ttl: u32) -> Option<CompiledRrset> {
    let first = match rrset.records.first()? {
        RData::Srv { target, .. } => target,
        _ => return None,
    };
    // The nearest ancestor of the first target that the owner is below.
    let mut base = first.parent()?;
    let mut depth = 1;
    while !(owner.wire().len() > base.wire().len() && is_suffix(owner, &base)) {
        base = base.parent()?;
        depth += 1;
        if depth > MAX_DEPTH {
            return None;
        }
    }
    let prefix = owner.wire().len() - base.wire().len();
    // The target's labels above `base`, as stored: `depth` length-prefixed labels.
    let label_of = |name: &RelativeName| -> Option<Vec<u8>> {
        let cut = name.wire().len().checked_sub(base.wire().len())?;
        let (labels, rest) = name.wire().split_at_checked(cut)?;
        (rest == base.wire() && Labels::of(labels).count() == depth && labels_end_at(labels))
            .then(|| labels.to_vec())
    };
    let mut records = Vec::with_capacity(rrset.records.len());
    for record in &rrset.records {
        let RData::Srv {
            priority,
            weight,
            port,
            target,
        } = record
        else {
            return None;
        };
        let mut fields = [0; 6];
        fields[..2].copy_from_slice(&priority.to_be_bytes());
        fields[2..4].copy_from_slice(&weight.to_be_bytes());
        fields[4..].copy_from_slice(&port.to_be_bytes());
        records.push((fields, target));
    }
    let shared = records.windows(2).all(|pair| pair[0].0 == pair[1].0);
    let paired = rrset.additional.len() == records.len()
        && records
            .iter()
            .zip(&rrset.additional)
            .all(|((_, target), (owner, record))| {
                *target == owner && matches!(record, RData::A(_) | RData::Aaaa(_))
            });
    let labels_of = records
        .iter()
        .map(|(_, target)| label_of(target))
        .collect::<Option<Vec<_>>>()?;
    // Runs of records whose targets share the labels after the first: (first record, how
    // many), when targets have more than one label and some share them.
    let mut runs: Vec<(usize, usize)> = Vec::new();
    if depth > 1 {
        for (n, label) in labels_of.iter().enumerate() {
            match runs.last_mut() {
                Some((first, count))
                    if *count < usize::from(u16::MAX)
                        && upper_labels(&labels_of[*first]) == upper_labels(label) =>
                {
                    *count += 1
                }
                _ => runs.push((n, 1)),
            }
        }
    }
    let use_runs = depth > 1 && runs.len() < records.len();
    let mut layout = u8::try_from(depth - 1).ok()? << DEPTH_SHIFT;
    if shared {
        layout |= SHARED_FIELDS;
    }
    if paired {
        layout |= PAIRED;
    }
    if use_runs {
        layout |= RUNS;
    }
    let mut answer = vec![u8::try_from(prefix).ok()?];
    answer.extend_from_slice(&ttl.to_be_bytes());
    // The sizes of the labels and addresses, filled in below: the writer sizes the sections
    // from them without a pass over the records.
    answer.extend_from_slice(&[0; 8]);
    answer.push(layout);
    if shared {
        answer.extend_from_slice(&records.first()?.0);
    }
    let (mut labels, mut extra) = (0usize, 0usize);
    let mut run_starts = runs.iter().peekable();
    for (n, ((fields, _), label)) in records.iter().zip(&labels_of).enumerate() {
        if use_runs && let Some(&(_, count)) = run_starts.next_if(|(first, _)| *first == n) {
            answer.extend_from_slice(&u16::try_from(count).ok()?.to_be_bytes());
            answer.extend_from_slice(upper_labels(label));
        }
        if !shared {
            answer.extend_from_slice(fields);
        }
        // Stored sizes count one length byte fewer per target: the writer adds one per
        // record with the fixed part. They count every label a target is written with,
        // shared in a run or not.
        labels += label.len() - 1;
        let stored = if use_runs { first_label(label) } else { label };
        answer.extend_from_slice(stored);
        if paired {
            let address_len = push_address(&mut answer, &rrset.additional.get(n)?.1)?;
            extra += label.len() - 1 + address_len;
        }
    }
    let mut additional = Vec::new();
    if !paired {
        for (name, record) in &rrset.additional {
            let label = label_of(name)?;
            additional.extend_from_slice(&label);
            extra += label.len() - 1 + push_address(&mut additional, record)?;
        }
    }
    answer[5..9].copy_from_slice(&u32::try_from(labels).ok()?.to_be_bytes());
    answer[9..13].copy_from_slice(&u32::try_from(extra).ok()?.to_be_bytes());
    Some(CompiledRrset {
        rtype: rtype::SRV,
        zone: ANY_ZONE,
        form: FORM,
        ancount: u16::try_from(rrset.records.len()).ok()?,
        arcount: u16::try_from(rrset.additional.len()).ok()?,
        answer,
        additional,
    })
}

/// The first length-prefixed label of `labels`, length byte included.
fn first_label(labels: &[u8]) -> &[u8] {
    let end = labels.first().map_or(0, |&len| 1 + usize::from(len));
    labels.get(..end).unwrap_or(labels)
}

/// The labels of `labels` after its first.
fn upper_labels(labels: &[u8]) -> &[u8] {
    labels.get(first_label(labels).len()..).unwrap_or_default()
}

/// Whether `base` is `name`'s suffix on a label boundary.
fn is_suffix(name: &RelativeName, base: &RelativeName) -> bool {
    let Some(cut) = name.wire().len().checked_sub(base.wire().len()) else {
        return false;
    };
    let (labels, rest) = name.wire().split_at(cut);
    rest == base.wire() && labels_end_at(labels)
}

/// Whether `labels` (wire form) is whole labels: the last one ends exactly at its end.
fn labels_end_at(labels: &[u8]) -> bool {
    let mut at = 0;
    while at < labels.len() {
        at += 1 + usize::from(labels[at]);
    }
    at == labels.len()
}

/// What [`write`] put in the response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    pub ancount: u16,
    pub arcount: u16,
    /// The answer did not fit: nothing was written (the caller sets TC).
    pub truncated: bool,
}

/// Splits a length-prefixed label off the front of `bytes`.
fn split_label(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let (&len, rest) = bytes.split_first()?;
    rest.split_at_checked(usize::from(len))
}

/// Splits `depth` length-prefixed labels, length bytes included, off the front of `bytes`.
#[inline]
fn split_labels(bytes: &[u8], depth: usize) -> Option<(&[u8], &[u8])> {
    let mut at = 0;
    for _ in 0..depth {
        at += 1 + usize::from(*bytes.get(at)?);
    }
    bytes.split_at_checked(at)
}

/// How many labels each target of a set of `layout` has above the question's name.
fn depth_of(layout: u8) -> usize {
    usize::from(layout >> DEPTH_SHIFT) + 1
}

/// One record of a compact record set: priority, weight and port, the target's labels
/// above the Service's name (length bytes included, as written: `label`, then `upper`, the
/// labels its run shares, empty without [`RUNS`]), and the target's address when the set
/// is [`PAIRED`].
struct Record<'a> {
    fields: [u8; 6],
    label: &'a [u8],
    upper: &'a [u8],
    address: Option<&'a [u8]>,
}

/// The records of a compact record set, from the bytes after its head.
fn records(layout: u8, mut bytes: &[u8]) -> impl Iterator<Item = Record<'_>> {
    let depth = depth_of(layout);
    let shared = if layout & SHARED_FIELDS != 0 {
        match bytes.split_first_chunk::<6>() {
            Some((fields, rest)) => {
                bytes = rest;
                Some(*fields)
            }
            None => {
                bytes = &[];
                None
            }
        }
    } else {
        None
    };
    let runs = layout & RUNS != 0;
    // With runs, the records left in the current run and the labels they share.
    let (mut left_in_run, mut upper): (u16, &[u8]) = (0, &[]);
    std::iter::from_fn(move || {
        if runs && left_in_run == 0 {
            let (count, rest) = bytes.split_first_chunk::<2>()?;
            let (shared_labels, rest) = split_labels(rest, depth - 1)?;
            (left_in_run, upper, bytes) = (u16::from_be_bytes(*count), shared_labels, rest);
        }
        left_in_run = left_in_run.saturating_sub(1);
        let fields = match shared {
            Some(fields) => fields,
            None => {
                let (fields, rest) = bytes.split_first_chunk::<6>()?;
                bytes = rest;
                *fields
            }
        };
        let (label, rest) = split_labels(bytes, if runs { 1 } else { depth })?;
        bytes = rest;
        let address = if layout & PAIRED != 0 {
            let (address, rest) = split_label(bytes)?;
            bytes = rest;
            Some(address)
        } else {
            None
        };
        Some(Record {
            fields,
            label,
            upper,
            address,
        })
    })
}

/// The additional records of a compact record set that is not [`PAIRED`]: (owner labels,
/// address).
fn additional(layout: u8, mut bytes: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    let depth = depth_of(layout);
    std::iter::from_fn(move || {
        let (label, rest) = split_labels(bytes, depth)?;
        let (address, rest) = split_label(rest)?;
        bytes = rest;
        Some((label, address))
    })
}

/// Writes one SRV record owned by the question: its fields, then its target (its label,
/// the Service's name `base` and the `zone`, uncompressed as RFC 2782 asks).
fn write_record(
    out: &mut Vec<u8>,
    record: &Record<'_>,
    ttl: u32,
    base: &[u8],
    zone: &[u8],
    suffix_len: usize,
) {
    let rdata_len = 6 + record.label.len() + record.upper.len() + suffix_len;
    out.extend_from_slice(&wire::record_head(
        QUESTION_POINTER,
        rtype::SRV,
        ttl,
        rdata_len,
    ));
    out.extend_from_slice(&record.fields);
    out.extend_from_slice(record.label);
    out.extend_from_slice(record.upper);
    out.extend_from_slice(base);
    out.extend_from_slice(zone);
}

/// Writes one additional address record: the target's labels (`label`, then `upper`), a
/// pointer to the Service's name, and the address.
fn write_address(
    out: &mut Vec<u8>,
    (label, upper): (&[u8], &[u8]),
    base_pointer: u16,
    ttl: u32,
    address: &[u8],
) {
    let rtype = if address.len() == 4 {
        rtype::A
    } else {
        rtype::AAAA
    };
    out.extend_from_slice(label);
    out.extend_from_slice(upper);
    out.extend_from_slice(&wire::record_head(base_pointer, rtype, ttl, address.len()));
    out.extend_from_slice(address);
}

/// Writes the compact record set `rrset` as the answer (and, if it fits too, additional)
/// section of a response to a question whose name is `relative` (lowercase wire, up to its
/// zone) in `zone` (lowercase wire, root included), within `limit` octets with `reserve`
/// more kept free (OPT). An answer that does not fit is `truncated`: with `partial`, its
/// first records that fit are written, else none.
pub fn write(
    out: &mut Vec<u8>,
    rrset: &Rrset<'_>,
    relative: &[u8],
    zone: &[u8],
    limit: usize,
    reserve: usize,
    partial: bool,
) -> Written {
    let nothing = |truncated| Written {
        ancount: 0,
        arcount: 0,
        truncated,
    };
    let Some((head, body)) = rrset.answer.split_first_chunk::<HEAD_LEN>() else {
        return nothing(false);
    };
    let prefix = usize::from(head[0]);
    let u32_at = |i: usize| u32::from_be_bytes([head[i], head[i + 1], head[i + 2], head[i + 3]]);
    let ttl = u32_at(1);
    let Some(base) = relative.get(prefix..) else {
        return nothing(false);
    };
    // Each record: the head, priority, weight and port, the target's first label (length
    // and bytes), then the Service's name and the zone.
    let suffix_len = base.len() + zone.len();
    let fixed_len = RECORD_HEAD_LEN + 6 + 1 + suffix_len;
    let answer_len = usize::from(rrset.ancount) * fixed_len + u32_at(5) as usize;
    let layout = head[13];
    if out.len() + answer_len + reserve > limit {
        if !partial {
            return nothing(true);
        }
        // The records that fit, in order; no additional records.
        let mut ancount = 0;
        for record in records(layout, body) {
            // `fixed_len` counts one length byte, `record.label` holds them all.
            if out.len() + fixed_len - 1 + record.label.len() + record.upper.len() + reserve > limit
            {
                break;
            }
            write_record(out, &record, ttl, base, zone, suffix_len);
            ancount += 1;
        }
        return Written {
            ancount,
            arcount: 0,
            truncated: true,
        };
    }
    out.reserve(answer_len);
    for record in records(layout, body) {
        write_record(out, &record, ttl, base, zone, suffix_len);
    }
    // Additional owners: the target's first label, then a pointer to the Service's name
    // inside the question.
    let base_pointer = 0xC000 | (HEADER_LEN + prefix) as u16;
    let additional_len = usize::from(rrset.arcount) * (1 + RECORD_HEAD_LEN) + u32_at(9) as usize;
    let mut arcount = 0;
    // Optional: left out whole rather than set TC (RFC 2181 9).
    if out.len() + additional_len + reserve <= limit {
        if layout & PAIRED != 0 {
            for record in records(layout, body) {
                if let Some(address) = record.address {
                    write_address(
                        out,
                        (record.label, record.upper),
                        base_pointer,
                        ttl,
                        address,
                    );
                }
            }
        } else {
            for (label, address) in additional(layout, rrset.additional) {
                write_address(out, (label, &[]), base_pointer, ttl, address);
            }
        }
        arcount = rrset.arcount;
    }
    Written {
        ancount: rrset.ancount,
        arcount,
        truncated: false,
    }
}
