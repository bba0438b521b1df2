//! The per-query function: query bytes in, response bytes out.
//!
//! One parse, one case-folded lookup in a stack buffer, and copies of pre-encoded sections
//! (or of the addresses, labels and ports that per-endpoint records are written from, in a
//! pod table, a Service's address set or a compact SRV set): no allocation (the caller's
//! output buffer is reused), no logging, no error boxes. Every outcome is an RCODE.

use std::sync::Arc;

use crate::dns::padding::{self, PADDING_BLOCK};
use crate::dns::tsig::{self, Checked, Signer, TsigKey};
use crate::dns::wire::TsigAt;
use crate::dns::wire::{
    self, CLASS_IN, Edns, HEADER_LEN, MIN_UDP_PAYLOAD, OPT_LEN, Parsed, QUESTION_POINTER, Query,
    Question, QuestionName, RECORD_HEAD_LEN, flags, qtype, rcode, rtype,
};
use crate::serve::chase::{self, Chase};
use crate::serve::transfer::{Transfers, unix_now};
use crate::serve::zones::{ZoneMatch, ZoneTable};
use crate::store::answers::{Rrset, SRV};
use crate::store::srv;
use crate::store::{Lookup, PtrAnswer, Store};

/// How the query arrived: it decides the response size limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Udp,
    /// No size limit but the message's own; zone transfers streamed.
    Tcp,
    /// DNS over TLS: as TCP, and padded when the query is (RFC 8467).
    Tls,
    /// DNS over HTTPS: as TLS, without zone transfers.
    Https,
}

impl Transport {
    /// Zone transfers are streamed over it.
    fn streams(self) -> bool {
        matches!(self, Transport::Tcp | Transport::Tls)
    }

    /// Encrypted: a padded query gets a padded response (RFC 8467; never in clear, where
    /// padding hides nothing and costs bytes).
    fn pads(self) -> bool {
        matches!(self, Transport::Tls | Transport::Https)
    }
}

/// What a response said, for the query counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// The question's type (0 when there was no readable question).
    pub qtype: u16,
    pub rcode: u16,
    /// A zone transfer to stream (TCP and TLS, transfers served): nothing was written, the
    /// connection hands the query to `transfer`.
    pub transfer: bool,
}

/// What an answer that does not fit the client's UDP payload size holds (`--udp-truncation`).
/// Either way TC is set, and a client with TCP asks again over it for the whole answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UdpTruncation {
    /// As many whole answer records as fit, in the answer's order (ordinal order), the
    /// additional section left out: what CoreDNS's kubernetes plugin sends (`request.Scrub`),
    /// and all that stub resolvers without TCP (busybox nslookup, musl before 1.2.4) see.
    #[default]
    Partial,
    /// No records at all.
    Empty,
}

/// Limits and TTLs the responder applies.
#[derive(Debug, Clone, Copy)]
pub struct ResponderSettings {
    /// Largest UDP payload this server sends or advertises (EDNS), `--max-udp-size`.
    pub max_udp_size: u16,
    /// TTL (and SOA MINIMUM) of negative answers.
    pub negative_ttl: u32,
    /// What an answer that does not fit holds.
    pub udp_truncation: UdpTruncation,
}

/// Answers queries from the store.
#[derive(Debug, Clone)]
pub struct Responder {
    store: Arc<Store>,
    zones: Arc<ZoneTable>,
    settings: ResponderSettings,
    /// The TSIG keys signed queries are checked against.
    keys: Arc<[TsigKey]>,
    /// Zone transfers, when served.
    transfers: Option<Arc<Transfers>>,
}

/// The body chosen for a response before it is assembled.
enum Body<'a> {
    Positive(Rrset<'a>),
    /// A compact SRV record set (`srv`), written against the question's name up to its
    /// zone (`relative`, lowercase wire).
    CompactSrv {
        rrset: Rrset<'a>,
        relative: &'a [u8],
    },
    /// Address records written from a pod table or a compact address set: `addresses` back
    /// to back, `width` octets each, of type `rtype`.
    Addresses {
        rtype: u16,
        addresses: &'a [u8],
        width: usize,
        ttl: u32,
    },
    /// A pod's reverse name: one PTR record.
    Ptr(PtrAnswer<'a>),
    /// NXDOMAIN or NODATA: the zone's SOA goes in the authority section.
    /// With the name's own negative TTL when it has one (ordinal slots).
    Negative {
        rcode: u16,
        ttl: Option<u32>,
    },
    /// An error without records (REFUSED, SERVFAIL).
    Bare {
        rcode: u16,
        authoritative: bool,
    },
}

impl Responder {
    pub fn new(store: Arc<Store>, zones: Arc<ZoneTable>, settings: ResponderSettings) -> Self {
        Self {
            store,
            zones,
            settings,
            keys: Arc::new([]),
            transfers: None,
        }
    }

    /// Checks signed queries against `keys` (and signs their answers).
    pub fn with_keys(mut self, keys: Arc<[TsigKey]>) -> Self {
        self.keys = keys;
        self
    }

    /// Serves zone transfers through `transfers`.
    pub fn with_transfers(mut self, transfers: Arc<Transfers>) -> Self {
        self.transfers = Some(transfers);
        self
    }

    /// Zone transfers, when served.
    pub fn transfers(&self) -> Option<&Transfers> {
        self.transfers.as_deref()
    }

    /// Writes the response to `query` into `out` (cleared first) and returns what it said,
    /// or `None` when the message gets no response.
    pub fn respond(
        &self,
        query: &[u8],
        transport: Transport,
        out: &mut Vec<u8>,
    ) -> Option<Outcome> {
        out.clear();
        let mut name = QuestionName::new();
        match wire::parse(query, &mut name) {
            Parsed::Drop => None,
            Parsed::Error {
                id,
                flags: query_flags,
                rcode,
                question,
                edns,
            } => {
                // RD and CD belong to QUERY: under another opcode (NOTIFY, UPDATE) this
                // server implements neither, so they are not echoed, as Knot and NSD do.
                let echoed = if query_flags & flags::OPCODE_MASK == 0 {
                    flags::RD | flags::CD
                } else {
                    0
                };
                let response_flags =
                    flags::QR | (query_flags & (flags::OPCODE_MASK | echoed)) | (rcode & 0x0F);
                let qdcount = u16::from(question.is_some());
                let arcount = u16::from(edns.is_some());
                wire::write_header(out, id, response_flags, [qdcount, 0, 0, arcount]);
                if let Some(q) = &question {
                    out.extend_from_slice(q.raw_name);
                    out.extend_from_slice(&q.qtype.to_be_bytes());
                    out.extend_from_slice(&q.qclass.to_be_bytes());
                }
                if let Some(e) = edns {
                    wire::write_opt(
                        out,
                        self.settings.max_udp_size,
                        (rcode >> 4) as u8,
                        e.dnssec_ok,
                    );
                    if e.padding && transport.pads() {
                        padding::pad(out, PADDING_BLOCK);
                    }
                }
                Some(Outcome {
                    qtype: question.as_ref().map_or(0, |q| q.qtype),
                    rcode,
                    transfer: false,
                })
            }
            Parsed::Query(q) => {
                let transfer = matches!(q.question.qtype, qtype::AXFR | qtype::IXFR)
                    && q.question.qclass == CLASS_IN
                    && transport.streams()
                    && self.transfers.is_some();
                let outcome = |rcode, transfer| Outcome {
                    qtype: q.question.qtype,
                    rcode,
                    transfer,
                };
                Some(match q.tsig {
                    Some(at) => self.signed(&q, at, &mut name, query, transport, transfer, out),
                    None if transfer => outcome(rcode::NOERROR, true),
                    None => {
                        let rcode = self.answer(&q, &mut name, query, transport, out);
                        // A signed response is not padded: its TSIG covers what it holds
                        // and is its last record.
                        if q.edns.is_some_and(|e| e.padding) && transport.pads() {
                            padding::pad(out, PADDING_BLOCK);
                        }
                        outcome(rcode, false)
                    }
                })
            }
        }
    }

    /// Answers a signed query (RFC 8945 5): NOTAUTH with the TSIG error when the signature
    /// does not check (BADKEY, BADSIG unsigned; BADTIME signed), else the answer, signed.
    /// Out of line and cold: signed queries are transfers and their tools, not the load.
    #[cold]
    #[inline(never)]
    #[allow(
        clippy::too_many_arguments,
        reason = "respond's, plus the TSIG's place"
    )]
    fn signed(
        &self,
        q: &Query<'_>,
        at: TsigAt,
        name: &mut QuestionName,
        msg: &[u8],
        transport: Transport,
        transfer: bool,
        out: &mut Vec<u8>,
    ) -> Outcome {
        let now = unix_now();
        let outcome = |rcode, transfer| Outcome {
            qtype: q.question.qtype,
            rcode,
            transfer,
        };
        match tsig::check(&self.keys, msg, at, now) {
            Some(Checked::Valid { .. }) if transfer => outcome(rcode::NOERROR, true),
            Some(Checked::Valid { key, mac }) => {
                let mut rcode = self.answer(q, name, msg, transport, out);
                if out.len() + key.response_len() > self.size_limit(q.edns, transport) {
                    // RFC 8945 5.3: when the TSIG does not fit, the response is the
                    // question and the TSIG alone, TC set, RCODE 0; the client retries
                    // over TCP.
                    rcode = rcode::NOERROR;
                    let response_flags =
                        flags::QR | flags::AA | flags::TC | (q.flags & (flags::RD | flags::CD));
                    out.truncate(HEADER_LEN + q.question.wire_len());
                    wire::patch_header(out, response_flags, [1, 0, 0, u16::from(q.edns.is_some())]);
                    if let Some(e) = q.edns {
                        wire::write_opt(out, self.settings.max_udp_size, 0, e.dnssec_ok);
                    }
                }
                Signer::new(key, mac, q.id).sign(out, now);
                outcome(rcode, false)
            }
            checked => {
                let code = if checked.is_some() {
                    rcode::NOTAUTH
                } else {
                    rcode::FORMERR
                };
                let arcount = u16::from(q.edns.is_some());
                let response_flags = flags::QR | (q.flags & (flags::RD | flags::CD)) | code;
                wire::write_header(out, q.id, response_flags, [1, 0, 0, arcount]);
                out.extend_from_slice(&msg[HEADER_LEN..HEADER_LEN + q.question.wire_len()]);
                if let Some(e) = q.edns {
                    wire::write_opt(out, self.settings.max_udp_size, 0, e.dnssec_ok);
                }
                if let Some(Checked::Invalid { error, record, key }) = checked {
                    match key {
                        Some((key, mac)) if error == tsig::error::BADTIME => {
                            // Signed, with the client's time and ours as Other Data.
                            let ours = now.to_be_bytes();
                            Signer::new(key, mac, record.original_id).sign_with(
                                out,
                                record.time,
                                error,
                                &ours[2..8],
                            );
                        }
                        _ => tsig::append_error(out, &record, error),
                    }
                }
                outcome(code, false)
            }
        }
    }

    /// An IXFR over UDP: the zone's SOA alone (RFC 1995 2), with which the client asks
    /// over TCP; NOTAUTH below a zone's apex. Answered as the SOA query it amounts to.
    #[cold]
    #[inline(never)]
    fn ixfr_over_udp(
        &self,
        q: &Query<'_>,
        name: &mut QuestionName,
        msg: &[u8],
        found: ZoneMatch<'_>,
        out: &mut Vec<u8>,
    ) -> u16 {
        if found.key_len != found.zone.apex_name().len() {
            let not_a_zone = Body::Bare {
                rcode: rcode::NOTAUTH,
                authoritative: false,
            };
            return self.assemble(q, msg, Transport::Udp, Some(found), not_a_zone, out);
        }
        let soa = Query {
            question: Question {
                qtype: rtype::SOA,
                ..q.question
            },
            ..*q
        };
        self.answer(&soa, name, msg, Transport::Udp, out)
    }

    fn size_limit(&self, edns: Option<Edns>, transport: Transport) -> usize {
        match (transport, edns) {
            (Transport::Tcp | Transport::Tls | Transport::Https, _) => usize::from(u16::MAX),
            (Transport::Udp, None) => usize::from(MIN_UDP_PAYLOAD),
            (Transport::Udp, Some(e)) => usize::from(e.udp_size.clamp(
                MIN_UDP_PAYLOAD,
                self.settings.max_udp_size.max(MIN_UDP_PAYLOAD),
            )),
        }
    }

    /// The answer to an unsigned query, or to a signed one once its TSIG checks. Inlined
    /// into `respond` (the hot path): called from two places, the compiler would otherwise
    /// keep it out of line and the store's lookup with it, 76 instructions more per answer
    /// under callgrind.
    #[inline(always)]
    fn answer(
        &self,
        q: &Query<'_>,
        name: &mut QuestionName,
        msg: &[u8],
        transport: Transport,
        out: &mut Vec<u8>,
    ) -> u16 {
        let question = &q.question;
        let refused = Body::Bare {
            rcode: rcode::REFUSED,
            authoritative: false,
        };
        let Some(found) = self.zones.find(name) else {
            return self.assemble(q, msg, transport, None, refused, out);
        };
        let (zone, in_zone) = (found.zone, Some(found));
        // Zone transfers over TCP and TLS are streamed by the connection (`transfer`): what
        // reaches here is refused, but for an IXFR over UDP when transfers are served.
        if question.qclass != CLASS_IN || matches!(question.qtype, qtype::AXFR | qtype::IXFR) {
            if question.qtype == qtype::IXFR
                && question.qclass == CLASS_IN
                && transport == Transport::Udp
                && self.transfers.is_some()
            {
                return self.ixfr_over_udp(q, name, msg, found, out);
            }
            return self.assemble(q, msg, transport, in_zone, refused, out);
        }
        let qtype = question.qtype;
        if !self.store.is_ready() {
            let servfail = Body::Bare {
                rcode: rcode::SERVFAIL,
                authoritative: false,
            };
            return self.assemble(q, msg, transport, in_zone, servfail, out);
        }
        // The store key: zone kind, then the lowercase name up to the zone.
        let key = name.key(zone.kind as u8, found.key_len);
        // An alias whose target may be in a served zone: followed once the lookup's guard
        // is released (a second lookup under the first could wait on a writer forever).
        let mut alias = None;
        let rcode = self.store.lookup(key, |lookup| {
            let body = match lookup {
                Lookup::NoName => Body::Negative {
                    rcode: rcode::NXDOMAIN,
                    ttl: None,
                },
                Lookup::EmptyNonTerminal => Body::Negative {
                    rcode: rcode::NOERROR,
                    ttl: None,
                },
                Lookup::Name(answers) => {
                    let rrset = if qtype == qtype::ANY {
                        answers.first(zone.index)
                    } else {
                        answers.find(qtype, zone.index)
                    };
                    match rrset {
                        Some(rrset) if rrset.form == SRV => Body::CompactSrv {
                            rrset,
                            relative: key.get(1..).unwrap_or_default(),
                        },
                        Some(rrset) => match rrset.address_set() {
                            Some(set) => Body::Addresses {
                                rtype: rrset.rtype,
                                addresses: set.addresses,
                                width: set.width,
                                ttl: set.ttl,
                            },
                            None => Body::Positive(rrset),
                        },
                        None => Body::Negative {
                            rcode: rcode::NOERROR,
                            ttl: answers.negative_ttl(),
                        },
                    }
                }
                Lookup::Ptr(ptr) if matches!(qtype, rtype::PTR | qtype::ANY) => Body::Ptr(ptr),
                Lookup::Ptr(_) => Body::Negative {
                    rcode: rcode::NOERROR,
                    ttl: None,
                },
                Lookup::Addresses(found) => {
                    let rtype = if qtype == qtype::ANY {
                        found.entry.first_type().unwrap_or(qtype::ANY)
                    } else {
                        qtype
                    };
                    match found.entry.addresses(rtype) {
                        (addresses, width) if !addresses.is_empty() => Body::Addresses {
                            rtype,
                            addresses,
                            width,
                            ttl: found.ttl,
                        },
                        _ => Body::Negative {
                            rcode: rcode::NOERROR,
                            ttl: found.negative_ttl,
                        },
                    }
                }
            };
            if let Body::Positive(rrset) = &body
                && chase::follows(rrset, qtype)
            {
                alias = chase::target_of(rrset.answer);
            }
            self.assemble(q, msg, transport, in_zone, body, out)
        });
        match alias {
            Some(target) => {
                let chase = Chase {
                    store: &self.store,
                    zones: &self.zones,
                    limit: self.size_limit(q.edns, transport),
                    max_udp_size: self.settings.max_udp_size,
                    opt_len: if q.edns.is_some() { OPT_LEN } else { 0 },
                    negative_ttl: self.settings.negative_ttl,
                    partial: self.settings.udp_truncation == UdpTruncation::Partial,
                };
                chase.follow(q, target, out)
            }
            None => rcode,
        }
    }

    /// How many records of `record_len` octets a truncated answer keeps when `used` octets
    /// of the `limit` are taken: as many as fit, or none (`--udp-truncation empty`). Every
    /// address record has the same length, so this is arithmetic, not a walk.
    #[cold]
    fn fitting(&self, limit: usize, used: usize, record_len: usize) -> usize {
        match self.settings.udp_truncation {
            UdpTruncation::Partial => limit.saturating_sub(used) / record_len,
            UdpTruncation::Empty => 0,
        }
    }

    /// Writes the response: header, the question as asked, the chosen body within the size
    /// limit, OPT.
    fn assemble(
        &self,
        q: &Query<'_>,
        msg: &[u8],
        transport: Transport,
        zone: Option<ZoneMatch<'_>>,
        body: Body<'_>,
        out: &mut Vec<u8>,
    ) -> u16 {
        let question_end = HEADER_LEN + q.question.wire_len();
        let (rcode, authoritative) = match &body {
            Body::Positive(_) | Body::CompactSrv { .. } | Body::Addresses { .. } | Body::Ptr(_) => {
                (rcode::NOERROR, true)
            }
            Body::Negative { rcode, .. } => (*rcode, true),
            Body::Bare {
                rcode,
                authoritative,
            } => (*rcode, *authoritative),
        };
        let mut response_flags = flags::QR | (q.flags & (flags::RD | flags::CD)) | rcode;
        if authoritative {
            response_flags |= flags::AA;
        }
        wire::write_header(out, q.id, response_flags, [1, 0, 0, 0]);
        out.extend_from_slice(&msg[HEADER_LEN..question_end]);

        let limit = self.size_limit(q.edns, transport);
        let opt_len = if q.edns.is_some() { OPT_LEN } else { 0 };
        let (mut ancount, mut nscount, mut arcount) = (0u16, 0u16, 0u16);
        match body {
            Body::Positive(rrset) => {
                let answer = rrset.answer;
                if out.len() + answer.len() + opt_len > limit {
                    // Does not fit: TC, so the client asks over TCP; the records that fit
                    // for those that cannot.
                    response_flags |= flags::TC;
                    if self.settings.udp_truncation == UdpTruncation::Partial {
                        let room = limit.saturating_sub(out.len() + opt_len);
                        let (len, count) = wire::whole_records(answer, room);
                        out.extend_from_slice(&answer[..len]);
                        ancount = count;
                    }
                } else {
                    out.extend_from_slice(answer);
                    ancount = rrset.ancount;
                    // The additional section is optional: leave it out rather than set TC
                    // (RFC 2181 9).
                    let additional = rrset.additional;
                    if out.len() + additional.len() + opt_len <= limit {
                        out.extend_from_slice(additional);
                        arcount = rrset.arcount;
                    }
                }
            }
            Body::CompactSrv { rrset, relative } => {
                let zone_wire = zone.map(|m| &m.zone.wire[..]).unwrap_or(&[0]);
                let partial = self.settings.udp_truncation == UdpTruncation::Partial;
                let written = srv::write(out, &rrset, relative, zone_wire, limit, opt_len, partial);
                if written.truncated {
                    response_flags |= flags::TC;
                }
                ancount = written.ancount;
                arcount = written.arcount;
            }
            Body::Addresses {
                rtype,
                addresses,
                width,
                ttl,
            } => {
                let record_len = RECORD_HEAD_LEN + width;
                let mut count = addresses.len() / width;
                if out.len() + count * record_len + opt_len > limit {
                    response_flags |= flags::TC;
                    count = self.fitting(limit, out.len() + opt_len, record_len);
                }
                if count > 0 {
                    let head = wire::record_head(QUESTION_POINTER, rtype, ttl, width);
                    wire::write_address_records(out, &head, &addresses[..count * width], width);
                    ancount = u16::try_from(count).unwrap_or(u16::MAX);
                }
            }
            Body::Ptr(ptr) => {
                // The target is written whole: nothing in the question (a reverse name) is
                // a suffix of it.
                let rdata_len = 1 + ptr.label.len() + ptr.suffix.len();
                if out.len() + RECORD_HEAD_LEN + rdata_len + opt_len > limit {
                    response_flags |= flags::TC;
                } else {
                    let head = wire::record_head(QUESTION_POINTER, rtype::PTR, ptr.ttl, rdata_len);
                    out.extend_from_slice(&head);
                    // Labels are at most 63 octets.
                    out.push(ptr.label.len() as u8);
                    out.extend_from_slice(ptr.label);
                    out.extend_from_slice(ptr.suffix);
                    ancount = 1;
                }
            }
            Body::Negative { ttl, .. } => {
                if let Some(found) = zone
                    && let Some(soa) = self.store.negative_soa(found.zone.kind)
                    && let Some(soa) = &*soa
                {
                    if out.len() + soa.len() + opt_len > limit {
                        response_flags |= flags::TC;
                    } else {
                        // The zone starts within the question, which starts at the header's
                        // end.
                        let zone_at = (HEADER_LEN + found.start) as u16;
                        soa.write(out, zone_at, ttl.unwrap_or(self.settings.negative_ttl));
                        nscount = 1;
                    }
                }
            }
            Body::Bare { .. } => {}
        }
        if let Some(e) = q.edns {
            wire::write_opt(out, self.settings.max_udp_size, 0, e.dnssec_ok);
            arcount += 1;
        }
        wire::patch_header(out, response_flags, [1, ancount, nscount, arcount]);
        rcode
    }
}
