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
//! records' labels and addresses (u32), then per record `[priority u16][weight u16][port u16][label length]
//! [label]`. The additional part: per record `[label length][label][address length][address]`.

use std::net::IpAddr;

use crate::compile::{ANY_ZONE, CompiledRrset, Rrset};
use crate::name::RelativeName;
use crate::records::{RData, RrSet, rtype};
use crate::wire::{CLASS_IN, HEADER_LEN};

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
        answer.extend_from_slice(&label_of(target)?);
    }
    let mut additional = Vec::new();
    for (name, record) in &rrset.additional {
        additional.extend_from_slice(&label_of(name)?);
        match record {
            RData::A(ip) => write_address(&mut additional, IpAddr::V4(*ip)),
            RData::Aaaa(ip) => write_address(&mut additional, IpAddr::V6(*ip)),
            _ => return None,
        }
    }
    let labels: usize = records(answer.get(HEAD_LEN..)?).map(|(_, l)| l.len()).sum();
    let extra: usize = self::additional(&additional)
        .map(|(l, a)| l.len() + a.len())
        .sum();
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

fn write_address(out: &mut Vec<u8>, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            out.push(4);
            out.extend_from_slice(&v4.octets());
        }
        IpAddr::V6(v6) => {
            out.push(16);
            out.extend_from_slice(&v6.octets());
        }
    }
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
    let ttl = &head[1..5];
    let u32_at =
        |i: usize| u32::from_be_bytes([head[i], head[i + 1], head[i + 2], head[i + 3]]) as usize;
    let Some(base) = relative.get(prefix..) else {
        return nothing(false);
    };
    let suffix_len = base.len() + zone.len();
    let answer_len = usize::from(rrset.ancount) * (12 + 6 + 1 + suffix_len) + u32_at(5);
    if out.len() + answer_len + reserve > limit {
        return nothing(true);
    }
    out.reserve(answer_len);
    for (fixed, label) in records(body) {
        // Owner (a pointer to the question), type, class, TTL, RDLENGTH, priority, weight,
        // port and the target's first label length: one copy.
        let rdata_len = u16::try_from(6 + 1 + label.len() + suffix_len).unwrap_or(u16::MAX);
        let mut head = [0u8; 19];
        head[..2].copy_from_slice(&[0xC0, 0x0C]);
        head[2..4].copy_from_slice(&rtype::SRV.to_be_bytes());
        head[4..6].copy_from_slice(&CLASS_IN.to_be_bytes());
        head[6..10].copy_from_slice(ttl);
        head[10..12].copy_from_slice(&rdata_len.to_be_bytes());
        head[12..18].copy_from_slice(&fixed);
        head[18] = label.len() as u8;
        out.extend_from_slice(&head);
        out.extend_from_slice(label);
        out.extend_from_slice(base);
        out.extend_from_slice(zone);
    }
    // Additional owners point at the Service's name inside the question.
    let base_pointer = 0xC000 | (HEADER_LEN + prefix) as u16;
    let additional_len = usize::from(rrset.arcount) * (1 + 2 + 10) + u32_at(9);
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
            // Pointer to the Service's name, type, class, TTL, RDLENGTH: one copy.
            let mut head = [0u8; 12];
            head[..2].copy_from_slice(&base_pointer.to_be_bytes());
            head[2..4].copy_from_slice(&rtype.to_be_bytes());
            head[4..6].copy_from_slice(&CLASS_IN.to_be_bytes());
            head[6..10].copy_from_slice(ttl);
            head[10..12].copy_from_slice(&(address.len() as u16).to_be_bytes());
            out.extend_from_slice(&head);
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
