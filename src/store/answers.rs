//! The packed form of a name's compiled answers: what the store keeps per name and the
//! query path copies from. One heap block per name ([`NameAnswers`]), read through a
//! borrowed view ([`Answers`]) wherever the bytes are stored; each record set is stored in
//! one of a few forms ([`WIRE`], [`ADDRESSES`], [`SRV`]) that say how it is written into a
//! response.

use crate::dns::wire::rtype;

/// A compiled record set that serves every zone alike.
pub const ANY_ZONE: u8 = u8::MAX;

/// One record set, encoded, while a name's answers are being built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompiledRrset {
    /// The record type it answers.
    pub rtype: u16,
    /// The index of the forward zone it was encoded for, or [`ANY_ZONE`].
    pub zone: u8,
    /// How the sections are stored: [`WIRE`], or a compact form written per query
    /// ([`ADDRESSES`], [`SRV`]).
    pub form: u8,
    /// Records in the answer section.
    pub ancount: u16,
    /// Records in the additional section.
    pub arcount: u16,
    /// The answer section.
    pub answer: Vec<u8>,
    /// The additional section.
    pub additional: Vec<u8>,
}

/// A record set inside a [`NameAnswers`], as the query path copies it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rrset<'a> {
    pub rtype: u16,
    pub zone: u8,
    pub form: u8,
    pub ancount: u16,
    pub arcount: u16,
    pub answer: &'a [u8],
    pub additional: &'a [u8],
}

/// The form of record sets whose sections are wire bytes, copied as they are.
pub const WIRE: u8 = 0;

/// The form of SRV record sets kept as their targets' labels, ports and addresses, written
/// per query against the question (`store::srv`).
pub const SRV: u8 = 1;

/// The form of A and AAAA record sets kept as the TTL (u32) and the addresses back to back:
/// a quarter of the encoded size for A records, and what the query path writes pod
/// addresses from anyway.
pub const ADDRESSES: u8 = 2;

/// Bytes before each record set's sections: rtype, zone, form, ancount, arcount, then the
/// lengths of the answer and additional sections (u32: a large Service's answers pass 64 KiB).
const RRSET_HEADER: usize = 2 + 1 + 1 + 2 + 2 + 4 + 4;

/// Everything a name answers, packed into one allocation: a cluster has a few names per
/// endpoint, so a name costs one heap block, not one per record set plus one for the list.
///
/// Layout: a flag byte (1: an own negative TTL follows), the TTL (u32) if so, then each
/// record set as [`RRSET_HEADER`] followed by its answer and additional sections. Only
/// [`NameAnswers::new`] writes it. No record sets: the name exists without data (NODATA).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NameAnswers(Box<[u8]>);

impl NameAnswers {
    /// Packs `rrsets`; `negative_ttl` is the TTL of this name's negative answers when it
    /// is not the zone's (ordinal slots).
    pub fn new(rrsets: &[CompiledRrset], negative_ttl: Option<u32>) -> Self {
        let size = 5 + rrsets
            .iter()
            .map(|r| RRSET_HEADER + r.answer.len() + r.additional.len())
            .sum::<usize>();
        let mut out = Vec::with_capacity(size);
        match negative_ttl {
            Some(ttl) => {
                out.push(1);
                out.extend_from_slice(&ttl.to_be_bytes());
            }
            None => out.push(0),
        }
        for r in rrsets {
            out.extend_from_slice(&r.rtype.to_be_bytes());
            out.push(r.zone);
            out.push(r.form);
            out.extend_from_slice(&r.ancount.to_be_bytes());
            out.extend_from_slice(&r.arcount.to_be_bytes());
            out.extend_from_slice(&clamp_u32(r.answer.len()).to_be_bytes());
            out.extend_from_slice(&clamp_u32(r.additional.len()).to_be_bytes());
            out.extend_from_slice(&r.answer);
            out.extend_from_slice(&r.additional);
        }
        Self(out.into_boxed_slice())
    }

    /// The packed bytes, to store elsewhere (see `SnapshotEntry`).
    pub fn packed(&self) -> &[u8] {
        &self.0
    }

    /// What the query path reads.
    pub fn view(&self) -> Answers<'_> {
        Answers(&self.0)
    }
}

/// A borrowed [`NameAnswers`], wherever its packed bytes are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Answers<'a>(pub(crate) &'a [u8]);

impl<'a> Answers<'a> {
    /// The TTL of this name's negative answers when it is not the zone's (ordinal slots).
    pub fn negative_ttl(&self) -> Option<u32> {
        match self.0.first() {
            Some(1) => self
                .0
                .get(1..5)
                .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]])),
            _ => None,
        }
    }

    /// The record sets, in the order they were packed.
    pub fn rrsets(&self) -> impl Iterator<Item = Rrset<'a>> + use<'a> {
        let start = match self.0.first() {
            Some(1) => 5,
            _ => 1,
        };
        let mut rest: &'a [u8] = self.0.get(start..).unwrap_or_default();
        std::iter::from_fn(move || {
            let (header, body) = rest.split_at_checked(RRSET_HEADER)?;
            let u16_at = |i: usize| u16::from_be_bytes([header[i], header[i + 1]]);
            let len_at = |i: usize| {
                u32::from_be_bytes([header[i], header[i + 1], header[i + 2], header[i + 3]])
                    as usize
            };
            let (answer, body) = body.split_at_checked(len_at(8))?;
            let (additional, body) = body.split_at_checked(len_at(12))?;
            rest = body;
            Some(Rrset {
                rtype: u16_at(0),
                zone: header[2],
                form: header[3],
                ancount: u16_at(4),
                arcount: u16_at(6),
                answer,
                additional,
            })
        })
    }

    /// The record set for `qtype` asked in forward zone `zone` (or a reverse zone:
    /// [`ANY_ZONE`]), or the CNAME when the name is an alias (RFC 1034 3.6.2).
    pub fn find(&self, qtype: u16, zone: u8) -> Option<Rrset<'a>> {
        let mut cname = None;
        for r in self.rrsets() {
            if r.zone != ANY_ZONE && r.zone != zone {
                continue;
            }
            if r.rtype == qtype {
                return Some(r);
            }
            if r.rtype == rtype::CNAME && cname.is_none() {
                cname = Some(r);
            }
        }
        cname
    }

    /// Any one record set, for a QTYPE=ANY query (RFC 8482: answer with one RRset).
    pub fn first(&self, zone: u8) -> Option<Rrset<'a>> {
        self.rrsets().find(|r| r.zone == ANY_ZONE || r.zone == zone)
    }
}

/// The octets of one address of record type `rtype`, if it is an address type.
pub(crate) fn address_width(rtype: u16) -> Option<usize> {
    match rtype {
        rtype::A => Some(4),
        rtype::AAAA => Some(16),
        _ => None,
    }
}

/// An address record set in the [`ADDRESSES`] form, as the query path writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddressSet<'a> {
    pub ttl: u32,
    /// The addresses back to back, `width` octets each.
    pub addresses: &'a [u8],
    pub width: usize,
}

impl<'a> Rrset<'a> {
    /// This record set's addresses, when it is in the [`ADDRESSES`] form.
    pub fn address_set(&self) -> Option<AddressSet<'a>> {
        if self.form != ADDRESSES {
            return None;
        }
        let width = address_width(self.rtype)?;
        let (ttl, addresses) = self.answer.split_first_chunk::<4>()?;
        Some(AddressSet {
            ttl: u32::from_be_bytes(*ttl),
            addresses,
            width,
        })
    }
}

fn clamp_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// A zone's SOA record as the authority section of a negative answer (RFC 2308 3), encoded
/// once with the zone's apex (`compile::negative_soa`) and written per answer: its owner, and
/// the server and mailbox names where they end in the zone, point at the zone inside the
/// question, and its TTL and MINIMUM are the answer's negative TTL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NegativeSoa {
    /// The record as encoded for a question at the zone apex: owner, type, class, TTL,
    /// RDLENGTH, then MNAME, RNAME, SERIAL, REFRESH, RETRY, EXPIRE, MINIMUM.
    record: Box<[u8]>,
    /// Offsets in `record` of the compression pointers to the zone: the owner's, then those
    /// ending MNAME and RNAME when they are in the zone.
    pointers: [u16; 3],
    pointer_count: u8,
}

impl NegativeSoa {
    /// Offset of the TTL in a record whose owner is a compression pointer.
    const TTL_AT: usize = 6;
    /// Offset of the RDATA, after owner, type, class, TTL and RDLENGTH.
    const RDATA_AT: usize = 12;

    /// Reads an encoded SOA record whose owner is a pointer and whose names are labels
    /// ending in a pointer or the root; `None` for anything else.
    pub fn from_record(record: Vec<u8>) -> Option<Self> {
        let mut pointers = [0u16; 3];
        let mut count = 0;
        if record.first()? & 0xC0 != 0xC0 {
            return None;
        }
        count += 1;
        let mut at = Self::RDATA_AT;
        for _ in 0..2 {
            loop {
                let len = *record.get(at)?;
                match len {
                    0 => {
                        at += 1;
                        break;
                    }
                    1..=63 => at += 1 + usize::from(len),
                    0xC0..=0xFF => {
                        pointers[count] = u16::try_from(at).ok()?;
                        count += 1;
                        at += 2;
                        break;
                    }
                    _ => return None,
                }
            }
        }
        // SERIAL, REFRESH, RETRY, EXPIRE and MINIMUM end the record.
        (record.len() == at + 20).then(|| Self {
            record: record.into_boxed_slice(),
            pointers,
            pointer_count: count as u8,
        })
    }

    /// Length of the record as written.
    pub fn len(&self) -> usize {
        self.record.len()
    }

    pub fn is_empty(&self) -> bool {
        self.record.is_empty()
    }

    /// Appends the record for a question whose zone starts at message offset `zone_at`,
    /// with `ttl` as its TTL and MINIMUM.
    pub fn write(&self, out: &mut Vec<u8>, zone_at: u16, ttl: u32) {
        let start = out.len();
        out.extend_from_slice(&self.record);
        let written = &mut out[start..];
        let pointer = (0xC000 | zone_at).to_be_bytes();
        for &at in &self.pointers[..usize::from(self.pointer_count)] {
            let at = usize::from(at);
            written[at..at + 2].copy_from_slice(&pointer);
        }
        let ttl = ttl.to_be_bytes();
        written[Self::TTL_AT..Self::TTL_AT + 4].copy_from_slice(&ttl);
        let minimum_at = written.len() - 4;
        written[minimum_at..].copy_from_slice(&ttl);
    }
}
