//! Zone transfers over TCP (and TLS): AXFR (RFC 5936) streamed from the store name by
//! name, and IXFR (RFC 1995) from the journal of changes, or the whole zone when the
//! client's serial is older than the journal. Only to the addresses `--transfer-allow`
//! names, signed (TSIG) when keys are configured, a few at a time.
//!
//! The zone is never built whole: one version of it is pinned between two changes of the
//! controller (`store::pinned`: the index's names and the `Arc`s of the Service snapshots
//! they route to), then each name is rendered and written into messages of up to
//! [`MESSAGE`] octets sent as they fill. Changes go on meanwhile and do not disturb it: a
//! transfer always completes with the records of its serial, however busy the zone.
//! Before the first complete load, transfers get SERVFAIL.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::Semaphore;

use crate::dns::cidr::Cidr;
use crate::dns::tsig::{self, Checked, Signer, TsigKey};
use crate::dns::wire::{self, Parsed, Query, QuestionName, flags, qtype, rcode};
use crate::metrics::Metrics;
use crate::serve::zones::{ZoneMatch, ZoneTable};
use crate::store::journal::serial_after;
use crate::store::pinned::PinnedZone;
use crate::store::render::{self, Record};
use crate::store::{Store, Zone};

/// Octets of a transfer message at most, before its TSIG (RFC 5936 allows 64 KiB).
const MESSAGE: usize = 60_000;
/// A client that does not take a message in this long is dropped.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// What zone transfers need: the zones, where they come from, who may have them.
pub struct Transfers {
    pub store: Arc<Store>,
    pub zones: Arc<ZoneTable>,
    pub allow: Vec<Cidr>,
    pub keys: Arc<[TsigKey]>,
    pub metrics: Arc<Metrics>,
    /// Transfers in progress, at most `--max-transfers`.
    pub slots: Arc<Semaphore>,
    /// With `--transfer-lease`: whether this replica is the elected primary now; the others
    /// refuse transfers. `None`: every replica serves them.
    pub primary: Option<tokio::sync::watch::Receiver<bool>>,
}

impl std::fmt::Debug for Transfers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transfers")
            .field("allow", &self.allow)
            .field("keys", &self.keys)
            .finish_non_exhaustive()
    }
}

/// The Unix time.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A transfer's messages as they are written: header, question, records, OPT, TSIG.
struct Stream<'a, 'k, S> {
    out: &'a mut S,
    query: &'a Query<'a>,
    signer: Option<Signer<'k>>,
    message: Vec<u8>,
    records: u16,
    first: bool,
    bytes: u64,
}

impl<'a, 'k, S: AsyncWrite + Unpin> Stream<'a, 'k, S> {
    fn new(out: &'a mut S, query: &'a Query<'a>, signer: Option<Signer<'k>>) -> Self {
        let mut stream = Self {
            out,
            query,
            signer,
            message: Vec::with_capacity(MESSAGE + 512),
            records: 0,
            first: true,
            bytes: 0,
        };
        stream.start();
        stream
    }

    /// A new message: the header and, in the first, the question.
    fn start(&mut self) {
        self.message.clear();
        let response_flags = flags::QR | flags::AA | (self.query.flags & flags::RD);
        wire::write_header(&mut self.message, self.query.id, response_flags, [0; 4]);
        if self.first {
            self.message.extend_from_slice(self.query.question.raw_name);
            self.message
                .extend_from_slice(&self.query.question.qtype.to_be_bytes());
            self.message
                .extend_from_slice(&self.query.question.qclass.to_be_bytes());
        }
        self.records = 0;
    }

    async fn push(&mut self, record: &Record) -> std::io::Result<()> {
        if self.records > 0 && self.message.len() + record.wire_len() > MESSAGE {
            self.flush().await?;
        }
        record.write(&mut self.message);
        self.records += 1;
        Ok(())
    }

    /// Sends the message being filled.
    async fn flush(&mut self) -> std::io::Result<()> {
        let mut arcount = 0;
        if self.first
            && let Some(edns) = self.query.edns
        {
            wire::write_opt(&mut self.message, u16::MAX, 0, edns.dnssec_ok);
            arcount = 1;
        }
        let response_flags = u16::from_be_bytes([self.message[2], self.message[3]]);
        let qdcount = u16::from(self.first);
        wire::patch_header(
            &mut self.message,
            response_flags,
            [qdcount, self.records, 0, arcount],
        );
        if let Some(signer) = &mut self.signer {
            signer.sign(&mut self.message, unix_now());
        }
        let len = u16::try_from(self.message.len()).unwrap_or(u16::MAX);
        let mut framed = Vec::with_capacity(self.message.len() + 2);
        framed.extend_from_slice(&len.to_be_bytes());
        framed.extend_from_slice(&self.message);
        send(self.out, &framed).await?;
        self.bytes += framed.len() as u64;
        self.first = false;
        self.start();
        Ok(())
    }
}

/// How a transfer request is answered.
enum Answer {
    Refused,
    NotAuth,
    Go,
}

impl Transfers {
    /// Answers the AXFR or IXFR `query` from `peer` on `out`: the zone's messages, or one
    /// message with the error. An error of the connection ends it.
    pub async fn serve<S: AsyncWrite + Unpin>(
        &self,
        query: &[u8],
        peer: IpAddr,
        out: &mut S,
    ) -> std::io::Result<()> {
        let mut name = QuestionName::new();
        let Parsed::Query(q) = wire::parse(query, &mut name) else {
            return Ok(()); // the responder answered what does not parse
        };
        let kind = if q.question.qtype == qtype::AXFR {
            "axfr"
        } else {
            "ixfr"
        };
        let zone = self.zones.find(&name);
        // The key that signs the answer, from the request's valid TSIG.
        let now = unix_now();
        let mut signer = None;
        if let Some(at) = q.tsig {
            match tsig::check(&self.keys, query, at, now) {
                Some(Checked::Valid { key, mac }) => signer = Some(Signer::new(key, mac, q.id)),
                // The responder answered bad signatures already; one that went stale
                // since (the fudge ran out in between) gets NOTAUTH.
                _ => return error(out, &q, rcode::NOTAUTH, None).await,
            }
        }
        if q.question.qtype == qtype::IXFR && q.ixfr_serial.is_none() {
            // RFC 1995 3: an IXFR names the client's version in its authority section.
            self.metrics.transfer(kind, "formerr");
            return error(out, &q, rcode::FORMERR, signer).await;
        }
        let answer = match zone {
            _ if !self.allow.iter().any(|range| range.contains(peer)) => Answer::Refused,
            // Another replica holds the transfer lease: the secondary tries it next.
            _ if self.primary.as_ref().is_some_and(|p| !*p.borrow()) => Answer::Refused,
            // With keys configured, only a signed request gets the zone.
            _ if !self.keys.is_empty() && signer.is_none() => Answer::Refused,
            Some(found) if is_apex(&found) => Answer::Go,
            _ => Answer::NotAuth,
        };
        let Some(found) = zone.filter(|_| matches!(answer, Answer::Go)) else {
            let code = if matches!(answer, Answer::Refused) {
                rcode::REFUSED
            } else {
                rcode::NOTAUTH
            };
            self.metrics.transfer(
                kind,
                if code == rcode::REFUSED {
                    "refused"
                } else {
                    "notauth"
                },
            );
            tracing::debug!(%peer, kind, code, "zone transfer refused");
            return error(out, &q, code, signer).await;
        };
        let Ok(_permit) = self.slots.clone().try_acquire_owned() else {
            self.metrics.transfer(kind, "busy");
            return error(out, &q, rcode::REFUSED, signer).await;
        };
        let zone_number = self.zones.zones().iter().position(|z| z == found.zone);
        // One version of the zone: its serial, its SOA, and the journal's steps to it or
        // the whole zone pinned, read between two changes (off the runtime's threads: it
        // may wait for a change, and a pin copies the index's names).
        let (store, zone_kind, apex) = (
            self.store.clone(),
            found.zone.kind,
            found.zone.apex_name().to_vec(),
        );
        let client = q.ixfr_serial;
        let version = tokio::task::spawn_blocking(move || store.version(zone_kind, &apex, client))
            .await
            .ok()
            .flatten();
        let Some((version, soa)) = version.and_then(|v| {
            let soa = soa_of(&v.apex, found.zone)?;
            Some((v, soa))
        }) else {
            self.metrics.transfer(kind, "servfail");
            return error(out, &q, rcode::SERVFAIL, signer).await;
        };
        let serial = version.serial;
        let up_to_date = q
            .ixfr_serial
            .is_some_and(|client| !serial_after(serial, client));
        let mut stream = Stream::new(out, &q, signer);
        let (label, result) = if up_to_date {
            stream.push(&soa).await?;
            (kind, Ok(()))
        } else if let (Some(steps), Some(number)) = (version.steps, zone_number) {
            stream.push(&soa).await?;
            for step in &steps {
                stream.push(&with_serial(&soa, step.from)).await?;
                if let Some(change) = step.zone(number) {
                    for record in &change.deleted {
                        stream.push(record).await?;
                    }
                }
                stream.push(&with_serial(&soa, step.to)).await?;
                if let Some(change) = step.zone(number) {
                    for record in &change.added {
                        stream.push(record).await?;
                    }
                }
            }
            stream.push(&soa).await?;
            ("ixfr", Ok(()))
        } else if let Some(pinned) = version.zone {
            let kind = if kind == "ixfr" { "ixfr_axfr" } else { "axfr" };
            (
                kind,
                whole_zone(&mut stream, &pinned, found.zone, &soa).await,
            )
        } else {
            // A version without steps is pinned; nothing else reaches here.
            self.metrics.transfer(kind, "servfail");
            return Err(std::io::Error::other("no version of the zone to send"));
        };
        if let Err(error) = result {
            self.metrics.transfer(label, "aborted");
            tracing::info!(%peer, kind = label, %error, "zone transfer stopped");
            return Err(error);
        }
        stream.flush().await?;
        self.metrics.transfer(label, "ok");
        self.metrics.transfer_bytes.inc_by(stream.bytes);
        tracing::debug!(%peer, kind = label, serial, bytes = stream.bytes, "zone transferred");
        Ok(())
    }
}

/// Every record of the pinned `zone`, between its SOA first and last (RFC 5936 2.2): the
/// indexed names in order, each Service's pods after it, then in a reverse zone the pods'
/// addresses.
async fn whole_zone<S: AsyncWrite + Unpin>(
    stream: &mut Stream<'_, '_, S>,
    pinned: &PinnedZone,
    zone: &Zone,
    soa: &Record,
) -> std::io::Result<()> {
    stream.push(soa).await?;
    // One name (with its Service's pods) rendered at a time, then written.
    let mut records = Vec::new();
    for at in 0..pinned.len() {
        records.clear();
        pinned.visit_name(at, |key, found| {
            let name = &key[1..];
            if zone.contains(zone.kind, name) {
                render::records(found, name, zone, &mut records);
            }
        });
        for record in records.iter().filter(|r| r.rtype != soa.rtype) {
            stream.push(record).await?;
        }
    }
    if zone.kind.is_reverse() {
        for at in 0..pinned.addresses() {
            records.clear();
            pinned.visit_address(at, |address, found| {
                let key = crate::store::reverse_key(address);
                if zone.contains(zone.kind, &key[1..]) {
                    render::records(found, &key[1..], zone, &mut records);
                }
            });
            for record in &records {
                stream.push(record).await?;
            }
        }
    }
    stream.push(soa).await
}

/// The SOA record among a zone apex's answers, as a secondary stores it.
fn soa_of(apex: &crate::store::answers::NameAnswers, zone: &Zone) -> Option<Record> {
    let mut records = Vec::new();
    render::records(
        crate::store::Lookup::Name(apex.view()),
        zone.apex_name(),
        zone,
        &mut records,
    );
    records
        .into_iter()
        .find(|r| r.rtype == crate::dns::wire::rtype::SOA)
}

/// The zone's SOA record, as a secondary stores it.
pub fn apex_soa(store: &Store, zone: &Zone) -> Option<Record> {
    let key = [&[zone.kind as u8][..], zone.apex_name()].concat();
    let mut records = Vec::new();
    store.lookup(&key, |found| {
        render::records(found, zone.apex_name(), zone, &mut records)
    });
    records
        .into_iter()
        .find(|r| r.rtype == crate::dns::wire::rtype::SOA)
}

/// Whether the question names the zone's apex: transfers are of whole zones.
fn is_apex(found: &ZoneMatch<'_>) -> bool {
    found.key_len == found.zone.apex_name().len()
}

/// The SOA `soa` with another serial.
fn with_serial(soa: &Record, serial: u32) -> Record {
    let mut record = soa.clone();
    let len = record.rdata.len();
    if let Some(at) = len.checked_sub(20) {
        record.rdata[at..at + 4].copy_from_slice(&serial.to_be_bytes());
    }
    record
}

/// One message with `code`, the question, and a TSIG when the request was signed.
async fn error<S: AsyncWrite + Unpin>(
    out: &mut S,
    q: &Query<'_>,
    code: u16,
    signer: Option<Signer<'_>>,
) -> std::io::Result<()> {
    let mut message = Vec::with_capacity(512);
    // An OPT when the request had one (RFC 6891 7), before any TSIG.
    let arcount = u16::from(q.edns.is_some());
    wire::write_header(
        &mut message,
        q.id,
        flags::QR | (q.flags & flags::RD) | code,
        [1, 0, 0, arcount],
    );
    message.extend_from_slice(q.question.raw_name);
    message.extend_from_slice(&q.question.qtype.to_be_bytes());
    message.extend_from_slice(&q.question.qclass.to_be_bytes());
    if let Some(edns) = q.edns {
        wire::write_opt(&mut message, u16::MAX, 0, edns.dnssec_ok);
    }
    if let Some(mut signer) = signer {
        signer.sign(&mut message, unix_now());
    }
    let len = u16::try_from(message.len()).unwrap_or(u16::MAX);
    let mut framed = len.to_be_bytes().to_vec();
    framed.extend_from_slice(&message);
    send(out, &framed).await
}

/// Writes a framed message and flushes it (a TLS stream holds what it encrypted until
/// then), within [`WRITE_TIMEOUT`].
async fn send<S: AsyncWrite + Unpin>(out: &mut S, framed: &[u8]) -> std::io::Result<()> {
    let write = async {
        out.write_all(framed).await?;
        out.flush().await
    };
    tokio::time::timeout(WRITE_TIMEOUT, write)
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "client too slow"))?
}
