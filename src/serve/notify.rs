//! NOTIFY (RFC 1996): each new serial is announced to every `--notify` secondary for every
//! zone, so they transfer the change at once instead of at their next refresh.
//!
//! Coalesced: a burst of changes (a rolling restart) waits [`SETTLE`] and sends one NOTIFY
//! per zone with the last serial; a serial that arrives while NOTIFYs are still retried
//! replaces them. Each is sent over UDP from a socket of its own (answers come back with
//! QR set, which the query path drops), carries the zone's SOA (NSD skips a serial it has),
//! is signed with the first `--tsig-key`, and is retried with a doubling timeout until the
//! secondary answers: NOERROR ends it; NOTAUTH, REFUSED, NOTIMP or FORMERR (a key or an ACL
//! the secondary does not accept, a zone it does not have, no NOTIFY at all) end it too,
//! logged; anything else (SERVFAIL) is retried. The answer's TSIG is not checked: an answer
//! only stops the retries, and its ID is random.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ring::rand::SecureRandom as _;
use tokio::net::UdpSocket;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::dns::tsig::{self, TsigKey};
use crate::dns::wire::{self, flags, rcode, rtype};
use crate::metrics::Metrics;
use crate::serve::transfer::{apex_soa, unix_now};
use crate::store::{Store, Zone};

/// How long changes are gathered before one NOTIFY goes out for all of them.
const SETTLE: Duration = Duration::from_millis(100);
/// The first wait for an answer; doubled on each retry.
const FIRST_TIMEOUT: Duration = Duration::from_secs(1);
/// Tries per NOTIFY (RFC 1996 3.6 suggests 5 retransmissions).
const TRIES: u32 = 6;
/// The NOTIFY opcode.
const NOTIFY: u16 = 4 << 11;

/// What the sender needs.
pub struct Notifier {
    pub targets: Vec<SocketAddr>,
    pub zones: Vec<Zone>,
    pub store: Arc<Store>,
    pub key: Option<Arc<TsigKey>>,
    pub metrics: Arc<Metrics>,
    /// The source of NOTIFY IDs.
    pub random: ring::rand::SystemRandom,
    /// With `--transfer-lease`: whether this replica is the primary, the only one that
    /// sends NOTIFY (at once when it becomes primary, for the serial it serves).
    pub primary: Option<watch::Receiver<bool>>,
}

impl Notifier {
    /// Runs until shutdown, announcing each serial `serials` sees.
    pub async fn run(
        mut self,
        mut serials: watch::Receiver<u32>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        // Without a lease, always primary: this one never changes.
        let (_always, always) = watch::channel(true);
        let mut primary = self.primary.take().unwrap_or(always);
        let this = Arc::new(self);
        let mut changed = false;
        loop {
            if !changed {
                tokio::select! {
                    biased;
                    _ = shutdown.changed() => return,
                    result = serials.changed() => if result.is_err() { return },
                    // Becoming primary: the secondaries learn the serial it serves.
                    result = primary.changed() => if result.is_err() { return },
                }
            }
            if !*primary.borrow_and_update() {
                changed = false;
                serials.borrow_and_update();
                continue;
            }
            tokio::select! {
                biased;
                _ = shutdown.changed() => return,
                _ = tokio::time::sleep(SETTLE) => {}
            }
            let serial = *serials.borrow_and_update();
            let mut round = JoinSet::new();
            for target in &this.targets {
                for zone in &this.zones {
                    let (this, zone, target) = (this.clone(), zone.clone(), *target);
                    round.spawn(async move { this.notify(target, &zone, serial).await });
                }
            }
            changed = loop {
                tokio::select! {
                    biased;
                    _ = shutdown.changed() => return,
                    result = serials.changed() => {
                        if result.is_err() {
                            return;
                        }
                        // A newer serial: what is still being retried is out of date.
                        round.abort_all();
                        break true;
                    }
                    next = round.join_next() => if next.is_none() { break false },
                }
            };
        }
    }

    /// Sends `zone`'s NOTIFY for `serial` to `target` until it is answered or the tries run
    /// out.
    async fn notify(&self, target: SocketAddr, zone: &Zone, serial: u32) {
        let Some(soa) = apex_soa(&self.store, zone) else {
            return;
        };
        let zone_name = crate::dns::name::Labels::of(&zone.wire)
            .map(|l| String::from_utf8_lossy(l).into_owned())
            .collect::<Vec<_>>()
            .join(".");
        let local: SocketAddr = if target.is_ipv4() {
            ([0, 0, 0, 0], 0).into()
        } else {
            (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
        };
        let socket = match UdpSocket::bind(local).await {
            Ok(socket) => socket,
            Err(error) => {
                tracing::warn!(%target, %error, "cannot open a socket to send NOTIFY");
                return;
            }
        };
        let mut timeout = FIRST_TIMEOUT;
        for _ in 0..TRIES {
            // A random ID: the answer that ends the retries must not be guessable.
            let mut id = [0u8; 2];
            if self.random.fill(&mut id).is_err() {
                id = (unix_now() as u16 ^ serial as u16).to_be_bytes();
            }
            let id = u16::from_be_bytes(id);
            let mut message = Vec::with_capacity(256);
            wire::write_header(&mut message, id, NOTIFY | flags::AA, [1, 1, 0, 0]);
            message.extend_from_slice(&zone.wire);
            message.extend_from_slice(&rtype::SOA.to_be_bytes());
            message.extend_from_slice(&wire::CLASS_IN.to_be_bytes());
            soa.write(&mut message);
            if let Some(key) = &self.key {
                tsig::sign_request(&mut message, key, unix_now());
            }
            self.metrics.notify_sent.inc();
            if let Err(error) = socket.send_to(&message, target).await {
                tracing::debug!(%target, %error, "NOTIFY not sent; retrying");
            }
            let mut buf = [0u8; 4096];
            let answer = tokio::time::timeout(timeout, async {
                loop {
                    let Ok((len, from)) = socket.recv_from(&mut buf).await else {
                        return None;
                    };
                    let reply = &buf[..len];
                    let matches = from == target
                        && reply.len() >= 12
                        && u16::from_be_bytes([reply[0], reply[1]]) == id
                        && reply[2] & 0x80 != 0;
                    if matches {
                        return Some(u16::from(reply[3] & 0x0F));
                    }
                }
            })
            .await;
            match answer {
                Ok(Some(rcode::NOERROR)) => {
                    self.metrics.notify_acknowledged.inc();
                    tracing::debug!(%target, zone = %zone_name, serial, "NOTIFY acknowledged");
                    return;
                }
                Ok(Some(
                    code @ (rcode::NOTAUTH | rcode::REFUSED | rcode::NOTIMP | rcode::FORMERR),
                )) => {
                    tracing::info!(%target, zone = %zone_name, serial, rcode = code,
                        "NOTIFY refused (the secondary's key, ACL or zones); not retried");
                    return;
                }
                _ => timeout *= 2,
            }
        }
        tracing::warn!(%target, zone = %zone_name, serial, "NOTIFY unanswered; the secondary refreshes on its own timer");
    }
}
