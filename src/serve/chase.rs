//! Following a CNAME within this server's own data (RFC 1034 4.3.2, step 3.b), as CoreDNS
//! does: an ExternalName Service whose target is another Service or pod of a served zone is
//! answered with the CNAME and the target's addresses, so that a stub resolver that does
//! not chase (or a forwarder that does not trust the alias) gets the addresses at once.
//!
//! Only address queries (A, AAAA) are followed: their records are written per query from
//! stored addresses, with the owner pointing at the CNAME's target, so no answer is encoded
//! again. A chain of aliases is followed up to [`MAX_HOPS`]; a target outside the served
//! zones ends the chase and is left to the resolver. A target that does not exist, or has
//! no address of the asked type, makes the answer negative after the chain (RCODE and the
//! zone's SOA from the last name, RFC 2308 and RFC 6604), as BIND and Knot answer.

use crate::dns::wire::{
    self, HEADER_LEN, Query, QuestionName, RECORD_HEAD_LEN, flags, rcode, rtype,
    write_address_records,
};
use crate::serve::zones::ZoneTable;
use crate::store::answers::Rrset;
use crate::store::{Lookup, Store};

/// Aliases followed in one answer at most; the rest of a longer chain is the resolver's.
const MAX_HOPS: usize = 8;

/// Offset of a record's RDATA after an owner that is a compression pointer: owner, type,
/// class, TTL, RDLENGTH.
const RDATA_AT: usize = RECORD_HEAD_LEN;

/// Largest message offset a compression pointer can hold.
const MAX_POINTER: usize = 0x3FFF;

/// Whether an answer of type `qtype` that found the CNAME `rrset` is followed.
pub(super) fn follows(rrset: &Rrset<'_>, qtype: u16) -> bool {
    rrset.rtype == rtype::CNAME && matches!(qtype, rtype::A | rtype::AAAA) && rrset.ancount == 1
}

/// The target of a CNAME record encoded with its owner as a pointer (a compiled alias),
/// lowercased into a question-name buffer; `None` when it cannot be read.
pub(super) fn target_of(record: &[u8]) -> Option<QuestionName> {
    let mut target = QuestionName::new();
    target.read(record.get(RDATA_AT..)?)?;
    Some(target)
}

/// What one step of the chase found.
enum Step {
    /// This many records were written: the chase is done.
    Answered(u16),
    /// Another alias was written; its target, read into the caller's buffer, is next.
    Alias,
    /// The name is not there, or has no address of the asked type: a negative answer with
    /// this RCODE and negative TTL (`None`: the zone's).
    Negative { rcode: u16, ttl: Option<u32> },
    /// The answer would not fit: TC, the client asks over TCP.
    Truncated,
    /// Only the first of the target's address records fit (`partial`): this many were
    /// written, TC.
    Partial(u16),
    /// Nothing this server can add (a target out of zone, a record it does not write per
    /// query): the CNAMEs written so far are the answer.
    Stop,
}

/// What following an alias needs of the responder.
pub(super) struct Chase<'a> {
    pub store: &'a Store,
    pub zones: &'a ZoneTable,
    /// The response's size limit.
    pub limit: usize,
    /// The payload size this server advertises in its OPT record.
    pub max_udp_size: u16,
    /// Room kept for the OPT record (0 without EDNS).
    pub opt_len: usize,
    /// TTL of negative answers where the name has none of its own.
    pub negative_ttl: u32,
    /// An answer that does not fit keeps the records that do (`--udp-truncation partial`);
    /// else it is the first CNAME alone.
    pub partial: bool,
}

impl Chase<'_> {
    /// Appends to `out`, the complete response to `q` whose answer is the one CNAME at the
    /// start of the answer section, what its target `target` has for the asked type, and
    /// rewrites the header. Returns the response's RCODE.
    pub(super) fn follow(&self, q: &Query<'_>, mut target: QuestionName, out: &mut Vec<u8>) -> u16 {
        let opt_len = self.opt_len;
        // The OPT record ends the message: taken off, put back after the new records.
        if out.len() < HEADER_LEN + opt_len || out[2] & (flags::TC >> 8) as u8 != 0 {
            return rcode::NOERROR;
        }
        out.truncate(out.len() - opt_len);
        let answered_len = out.len();
        // Where the current target's name is in the message: the RDATA of the last CNAME.
        let mut target_at = HEADER_LEN + q.question.wire_len() + RDATA_AT;
        let (mut ancount, mut nscount, mut code, mut truncated) =
            (1u16, 0u16, rcode::NOERROR, false);
        // The next alias's target is read here, then swapped in: no allocation per hop.
        let mut next = QuestionName::new();
        for _ in 0..MAX_HOPS {
            let step = self.step(q.question.qtype, &mut target, &mut next, target_at, out);
            match step {
                Step::Answered(count) => {
                    ancount = ancount.saturating_add(count);
                    break;
                }
                Step::Alias => {
                    ancount += 1;
                    // The new CNAME's RDATA ends the message.
                    target_at = out.len() - next.lower().len();
                    std::mem::swap(&mut target, &mut next);
                }
                Step::Negative { rcode, ttl } => {
                    code = rcode;
                    nscount = self.write_target_soa(&target, target_at, ttl, out);
                    if nscount == 0 {
                        truncated = true;
                    }
                    break;
                }
                Step::Truncated => {
                    truncated = true;
                    break;
                }
                Step::Partial(count) => {
                    ancount = ancount.saturating_add(count);
                    truncated = true;
                    break;
                }
                Step::Stop => break,
            }
        }
        if truncated && !self.partial {
            // Nothing half-followed: the CNAME as first answered, with TC.
            out.truncate(answered_len);
            (ancount, nscount, code) = (1, 0, rcode::NOERROR);
        }
        let mut arcount = 0;
        if let Some(e) = q.edns {
            wire::write_opt(out, self.max_udp_size, 0, e.dnssec_ok);
            arcount = 1;
        }
        let old_flags = u16::from_be_bytes([out[2], out[3]]);
        let mut new_flags = (old_flags & !0x000F) | code;
        if truncated {
            new_flags |= flags::TC;
        }
        wire::patch_header(out, new_flags, [1, ancount, nscount, arcount]);
        code
    }

    /// Looks `target` (at message offset `target_at`) up and writes what it has for `qtype`.
    fn step(
        &self,
        qtype: u16,
        target: &mut QuestionName,
        next: &mut QuestionName,
        target_at: usize,
        out: &mut Vec<u8>,
    ) -> Step {
        let (limit, opt_len) = (self.limit, self.opt_len);
        if target_at > MAX_POINTER {
            return Step::Stop;
        }
        let Some(found) = self.zones.find(target) else {
            return Step::Stop;
        };
        let index = found.zone.index;
        let key = target.key(found.zone.kind as u8, found.key_len);
        let pointer = 0xC000 | target_at as u16;
        let fits = |out: &Vec<u8>, len: usize| out.len() + len + opt_len <= limit;
        // Address records that do not all fit: those that do, when partial.
        let partly = |out: &mut Vec<u8>, rtype, ttl, addresses: &[u8], width| {
            let room = limit.saturating_sub(out.len() + opt_len);
            let count = if self.partial {
                room / (RECORD_HEAD_LEN + width)
            } else {
                0
            };
            if count == 0 {
                return Step::Truncated;
            }
            let head = wire::record_head(pointer, rtype, ttl, width);
            write_address_records(out, &head, &addresses[..count * width], width);
            Step::Partial(count_of(count))
        };
        self.store.lookup(key, |lookup| match lookup {
            Lookup::NoName => Step::Negative {
                rcode: rcode::NXDOMAIN,
                ttl: None,
            },
            Lookup::EmptyNonTerminal | Lookup::Ptr(_) => Step::Negative {
                rcode: rcode::NOERROR,
                ttl: None,
            },
            Lookup::Addresses(entry) => match entry.entry.addresses(qtype) {
                (addresses, width) if !addresses.is_empty() => {
                    if !fits(out, addresses.len() / width * (RECORD_HEAD_LEN + width)) {
                        return partly(out, qtype, entry.ttl, addresses, width);
                    }
                    let head = wire::record_head(pointer, qtype, entry.ttl, width);
                    write_address_records(out, &head, addresses, width);
                    Step::Answered(count_of(addresses.len() / width))
                }
                _ => Step::Negative {
                    rcode: rcode::NOERROR,
                    ttl: entry.negative_ttl,
                },
            },
            Lookup::Name(answers) => match answers.find(qtype, index) {
                Some(rrset) => {
                    if let Some(set) = rrset.address_set() {
                        let count = set.addresses.len() / set.width;
                        if !fits(out, count * (RECORD_HEAD_LEN + set.width)) {
                            return partly(out, rrset.rtype, set.ttl, set.addresses, set.width);
                        }
                        let head = wire::record_head(pointer, rrset.rtype, set.ttl, set.width);
                        write_address_records(out, &head, set.addresses, set.width);
                        return Step::Answered(count_of(count));
                    }
                    if !follows(&rrset, qtype) {
                        return Step::Stop;
                    }
                    // Another alias: its record again, owned by this target.
                    let Some(record) = rrset.answer.get(2..) else {
                        return Step::Stop;
                    };
                    if record
                        .get(RDATA_AT - 2..)
                        .and_then(|name| next.read(name))
                        .is_none()
                    {
                        return Step::Stop;
                    }
                    if !fits(out, 2 + record.len()) {
                        return Step::Truncated;
                    }
                    out.extend_from_slice(&pointer.to_be_bytes());
                    out.extend_from_slice(record);
                    Step::Alias
                }
                None => Step::Negative {
                    rcode: rcode::NOERROR,
                    ttl: answers.negative_ttl(),
                },
            },
        })
    }

    /// Writes the SOA of `target`'s zone into the authority section; returns how many
    /// records it wrote (0: it did not fit).
    fn write_target_soa(
        &self,
        target: &QuestionName,
        target_at: usize,
        ttl: Option<u32>,
        out: &mut Vec<u8>,
    ) -> u16 {
        let (limit, opt_len) = (self.limit, self.opt_len);
        let Some(found) = self.zones.find(target) else {
            return 0;
        };
        let Some(soa) = self.store.negative_soa(found.zone.kind) else {
            return 0;
        };
        let Some(soa) = &*soa else { return 0 };
        let zone_at = target_at + found.start;
        if zone_at > MAX_POINTER || out.len() + soa.len() + opt_len > limit {
            return 0;
        }
        soa.write(out, zone_at as u16, ttl.unwrap_or(self.negative_ttl));
        1
    }
}

fn count_of(records: usize) -> u16 {
    u16::try_from(records).unwrap_or(u16::MAX)
}
