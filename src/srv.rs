//! SRV record sets of headless Services, kept compact and written per query.
//!
//! A headless Service's SRV answer names every endpoint (`<pod>.<svc>.<ns>.svc.<zone>`,
//! uncompressed as RFC 2782 requires) and adds its address: pre-encoded, that is about 90
//! bytes per endpoint, per port and per zone. Every target is one label below the Service's
//! name, which the question ends with, so the set is kept as the targets' labels, ports and
//! addresses (about 25 bytes per endpoint, for every zone) and written against the question
//! when asked.
//!
//! Layout of the answer part: the length of the owner's labels before the Service's name
//! (u8), the TTL (u32), the total length of the target labels (u32) and of the additional
//! records' labels and addresses (u32), then per record `[priority u16][weight u16]
//! [port u16][label length][label]`. The additional part: per record `[label length][label]
//! [address length][address]`.

use crate::compile::{ANY_ZONE, CompiledRrset, Rrset};
use crate::name::RelativeName;
use crate::records::{RData, RrSet, rtype};
use crate::wire::{self, HEADER_LEN, QUESTION_POINTER, RECORD_HEAD_LEN};

/// The form byte of a compact SRV record set (see `compile::Rrset::form`).
pub const FORM: u8 = 1;

/// Bytes before the records: prefix length, TTL, the total length of the records' labels
/// and that of the additional records' labels and addresses.
const HEAD_LEN: usize = 1 + 4 + 4 + 4;

/// `rrset` (the SRV records at `owner`) in compact form, when every target and every
/// additional owner is one label below one name that `owner` is below too; `None` keeps
/// the encoded form.
pub fn compact(owner: &RelativeName, rrset: &RrSet, ttl: u32) -> Option<CompiledRrset> {
    let base = match rrset.records.first()? {
        RData::Srv { target, .. } => target.parent()?,
        _ => return None,
    };
    let prefix = owner.wire().len().checked_sub(base.wire().len())?;
    if prefix == 0 || !owner.wire().ends_with(base.wire()) {
        return None;
    }
    let label_of = |name: &RelativeName| -> Option<Vec<u8>> {
        if name.parent().as_ref() != Some(&base) {
            return None;
        }
        let label = name.labels().next()?;
        Some([&[u8::try_from(label.len()).ok()?][..], label].concat())
    };
    let mut answer = vec![u8::try_from(prefix).ok()?];
    answer.extend_from_slice(&ttl.to_be_bytes());
    // The sizes of the labels and addresses, filled in below: the writer sizes the sections
    // from them without a pass over the records.
    answer.extend_from_slice(&[0; 8]);
    let (mut labels, mut extra) = (0usize, 0usize);
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
        for value in [priority, weight, port] {
            answer.extend_from_slice(&value.to_be_bytes());
        }
        let label = label_of(target)?;
        labels += label.len() - 1;
        answer.extend_from_slice(&label);
    }
    let mut additional = Vec::new();
    for (name, record) in &rrset.additional {
        let label = label_of(name)?;
        extra += label.len() - 1;
        additional.extend_from_slice(&label);
        let address = match record {
            RData::A(ip) => &ip.octets()[..],
            RData::Aaaa(ip) => &ip.octets()[..],
            _ => return None,
        };
        extra += address.len();
        additional.push(address.len() as u8);
        additional.extend_from_slice(address);
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

/// The SRV records of a compact record set: (priority, weight, port, target label).
fn records<'a>(mut bytes: &'a [u8]) -> impl Iterator<Item = ([u8; 6], &'a [u8])> + 'a {
    std::iter::from_fn(move || {
        let (fixed, rest) = bytes.split_first_chunk::<6>()?;
        let (label, rest) = split_label(rest)?;
        bytes = rest;
        Some((*fixed, label))
    })
}

/// The additional records of a compact record set: (owner label, address).
fn additional<'a>(mut bytes: &'a [u8]) -> impl Iterator<Item = (&'a [u8], &'a [u8])> + 'a {
    std::iter::from_fn(move || {
        let (label, rest) = split_label(bytes)?;
        let (address, rest) = split_label(rest)?;
        bytes = rest;
        Some((label, address))
    })
}

/// Writes the compact record set `rrset` as the answer (and, if it fits too, additional)
/// section of a response to a question whose name is `relative` (lowercase wire, up to its
/// zone) in `zone` (lowercase wire, root included), within `limit` octets with `reserve`
/// more kept free (OPT).
pub fn write(
    out: &mut Vec<u8>,
    rrset: &Rrset<'_>,
    relative: &[u8],
    zone: &[u8],
    limit: usize,
    reserve: usize,
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
    if out.len() + answer_len + reserve > limit {
        return nothing(true);
    }
    out.reserve(answer_len);
    for (fields, label) in records(body) {
        let rdata_len = 6 + 1 + label.len() + suffix_len;
        out.extend_from_slice(&wire::record_head(
            QUESTION_POINTER,
            rtype::SRV,
            ttl,
            rdata_len,
        ));
        out.extend_from_slice(&fields);
        out.push(label.len() as u8);
        out.extend_from_slice(label);
        out.extend_from_slice(base);
        out.extend_from_slice(zone);
    }
    // Additional owners: the target's first label, then a pointer to the Service's name
    // inside the question.
    let base_pointer = 0xC000 | (HEADER_LEN + prefix) as u16;
    let additional_len = usize::from(rrset.arcount) * (1 + RECORD_HEAD_LEN) + u32_at(9) as usize;
    let mut arcount = 0;
    // Optional: left out whole rather than set TC (RFC 2181 9).
    if out.len() + additional_len + reserve <= limit {
        for (label, address) in additional(rrset.additional) {
            let rtype = if address.len() == 4 {
                rtype::A
            } else {
                rtype::AAAA
            };
            out.push(label.len() as u8);
            out.extend_from_slice(label);
            out.extend_from_slice(&wire::record_head(base_pointer, rtype, ttl, address.len()));
            out.extend_from_slice(address);
        }
        arcount = rrset.arcount;
    }
    Written {
        ancount: rrset.ancount,
        arcount,
        truncated: false,
    }
}
