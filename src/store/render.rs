//! What a name holds as plain resource records of one zone: owner and names in RDATA
//! uncompressed, each record on its own. Zone transfers list these, and their journal
//! compares them. The query path never needs this: it writes answers straight from the
//! stored forms (`answers`), against the question.

use crate::dns::wire::{HEADER_LEN, RECORD_HEAD_LEN, rtype};
use crate::store::Lookup;
use crate::store::answers::{ADDRESSES, ANY_ZONE, Answers, Rrset, SRV, WIRE};
use crate::store::key::Zone;
use crate::store::srv;

/// One resource record, class IN.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Record {
    /// Wire form, lowercase, root label included.
    pub owner: Box<[u8]>,
    pub rtype: u16,
    pub ttl: u32,
    /// Names in it uncompressed.
    pub rdata: Box<[u8]>,
}

impl Record {
    /// Octets it takes written uncompressed.
    pub fn wire_len(&self) -> usize {
        self.owner.len() + 10 + self.rdata.len()
    }

    /// Appends it to a message, uncompressed.
    pub fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.owner);
        out.extend_from_slice(&self.rtype.to_be_bytes());
        out.extend_from_slice(&crate::dns::wire::CLASS_IN.to_be_bytes());
        out.extend_from_slice(&self.ttl.to_be_bytes());
        out.extend_from_slice(&(self.rdata.len() as u16).to_be_bytes());
        out.extend_from_slice(&self.rdata);
    }
}

/// Appends the records of `lookup` (the lookup of the name `name`, a store key's name
/// without its kind byte) as they are in `zone`.
pub fn records(lookup: Lookup<'_>, name: &[u8], zone: &Zone, out: &mut Vec<Record>) {
    // The question a stored answer was encoded against: header, the name, the zone's base.
    let mut question = vec![0u8; HEADER_LEN];
    question.extend_from_slice(name);
    question.extend_from_slice(zone.base());
    let owner: Box<[u8]> = question[HEADER_LEN..].into();
    let mut push = |rtype, ttl, rdata: Vec<u8>| {
        out.push(Record {
            owner: owner.clone(),
            rtype,
            ttl,
            rdata: rdata.into_boxed_slice(),
        })
    };
    match lookup {
        Lookup::NoName | Lookup::EmptyNonTerminal => {}
        Lookup::Addresses(found) => {
            for rtype in [rtype::A, rtype::AAAA] {
                let (addresses, width) = found.entry.addresses(rtype);
                for address in addresses.chunks_exact(width.max(1)) {
                    push(rtype, found.ttl, address.to_vec());
                }
            }
        }
        Lookup::Ptr(ptr) => {
            let mut rdata = vec![ptr.label.len() as u8];
            rdata.extend_from_slice(ptr.label);
            rdata.extend_from_slice(ptr.suffix);
            push(rtype::PTR, ptr.ttl, rdata);
        }
        Lookup::Name(answers) => name_records(answers, &question, name, zone, &mut push),
    }
}

/// The records of a name's packed answers.
fn name_records(
    answers: Answers<'_>,
    question: &[u8],
    name: &[u8],
    zone: &Zone,
    push: &mut impl FnMut(u16, u32, Vec<u8>),
) {
    for rrset in answers.rrsets() {
        if rrset.zone != ANY_ZONE && rrset.zone != zone.index {
            continue;
        }
        match rrset.form {
            ADDRESSES => {
                if let Some(set) = rrset.address_set() {
                    for address in set.addresses.chunks_exact(set.width) {
                        push(rrset.rtype, set.ttl, address.to_vec());
                    }
                }
            }
            SRV => {
                // Written as the query path writes it, then read back.
                let mut message = question.to_vec();
                let start = message.len();
                srv::write(
                    &mut message,
                    &rrset,
                    name,
                    zone.base(),
                    usize::MAX,
                    0,
                    false,
                );
                wire_records(
                    &rrset_from(&message[start..], rrset.ancount),
                    question,
                    push,
                );
            }
            WIRE => wire_records(&rrset, question, push),
            _ => {}
        }
    }
}

/// `ancount` records written as an answer section, as a record set to read.
fn rrset_from(answer: &[u8], ancount: u16) -> Rrset<'_> {
    Rrset {
        rtype: 0,
        zone: ANY_ZONE,
        form: WIRE,
        ancount,
        arcount: 0,
        answer,
        additional: &[],
    }
}

/// The answer records of `rrset` (each owned by the question), names expanded against
/// `question`.
fn wire_records(rrset: &Rrset<'_>, question: &[u8], push: &mut impl FnMut(u16, u32, Vec<u8>)) {
    let mut rest = rrset.answer;
    for _ in 0..rrset.ancount {
        let Some((head, body)) = rest.split_first_chunk::<RECORD_HEAD_LEN>() else {
            return;
        };
        let rtype = u16::from_be_bytes([head[2], head[3]]);
        let ttl = u32::from_be_bytes([head[6], head[7], head[8], head[9]]);
        let rdlen = usize::from(u16::from_be_bytes([head[10], head[11]]));
        let Some((rdata, next)) = body.split_at_checked(rdlen) else {
            return;
        };
        rest = next;
        if let Some(rdata) = expand(rtype, rdata, question) {
            push(rtype, ttl, rdata);
        }
    }
}

/// RDATA with its names written out (they may point into the question).
fn expand(rtype: u16, rdata: &[u8], question: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(rdata.len() + 32);
    match rtype {
        rtype::NS | rtype::CNAME | rtype::PTR => {
            expand_name(rdata, 0, question, &mut out)?;
        }
        rtype::SOA => {
            let at = expand_name(rdata, 0, question, &mut out)?;
            let at = expand_name(rdata, at, question, &mut out)?;
            out.extend_from_slice(rdata.get(at..)?);
        }
        rtype::SRV => {
            out.extend_from_slice(rdata.get(..6)?);
            expand_name(rdata, 6, question, &mut out)?;
        }
        _ => out.extend_from_slice(rdata),
    }
    Some(out)
}

/// Writes the name at `at` of `rdata` out, following a pointer into `question`; returns
/// where it ends in `rdata`.
fn expand_name(rdata: &[u8], mut at: usize, question: &[u8], out: &mut Vec<u8>) -> Option<usize> {
    loop {
        let len = *rdata.get(at)?;
        match len {
            0 => {
                out.push(0);
                return Some(at + 1);
            }
            1..=63 => {
                out.extend_from_slice(rdata.get(at..at + 1 + usize::from(len))?);
                at += 1 + usize::from(len);
            }
            0xC0..=0xFF => {
                let pointer = usize::from(u16::from_be_bytes([len, *rdata.get(at + 1)?]) & 0x3FFF);
                // Stored answers point into the question only, which holds no pointer.
                let mut from = pointer;
                loop {
                    let len = usize::from(*question.get(from)?);
                    out.extend_from_slice(question.get(from..from + 1 + len)?);
                    if len == 0 {
                        return Some(at + 2);
                    }
                    from += 1 + len;
                }
            }
            _ => return None,
        }
    }
}
