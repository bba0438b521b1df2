//! The open connections of one TCP-based listener (TCP, TLS or HTTPS), bounded in number
//! and per client address, and what happens when the table is full.
//!
//! A connection is admitted unless its client address already holds
//! `--max-connections-per-client` of them. When the table holds `--max-tcp-connections`,
//! the newcomer does not wait for a slot: the connection that has been in its TLS handshake
//! the longest is closed for it, else the one idle the longest (no query in progress), and
//! only when every connection is busy answering is the newcomer refused. So sockets that
//! open and never speak (or never finish the handshake) cannot lock clients out until they
//! time out: each new client takes the place of the oldest of them, while connections in
//! use are never cut.
//!
//! The table is touched when a connection opens, closes, or changes phase (two atomic
//! stores per query); it is searched for a victim only when it is full.

use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use tokio::sync::Notify;

/// Where a connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Phase {
    /// Accepted, TLS handshake not finished: the first to go when the table is full.
    Handshake = 0,
    /// Ready for a query (or between queries): goes, oldest first, after the handshakes.
    Idle = 1,
}

/// Limits of a connection table.
#[derive(Debug, Clone, Copy)]
pub struct TableLimits {
    /// Connections open at once.
    pub max_connections: usize,
    /// Connections open at once from one client address.
    pub max_per_client: usize,
}

/// Why a connection was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Its address holds `max_per_client` connections already.
    PerClient,
    /// The table is full and every connection in it is answering a query.
    AllBusy,
}

/// What the table knows of one open connection, shared with its task.
#[derive(Debug)]
struct Entry {
    id: u64,
    peer: IpAddr,
    /// A [`Phase`].
    phase: AtomicU8,
    /// Queries (or HTTP requests) being answered: a busy connection is never closed for a
    /// newcomer.
    in_flight: AtomicU32,
    /// Milliseconds since the table's start of the last phase change or finished query.
    since: AtomicU64,
    /// Set, and `closed` notified, when the table closes this connection for a newcomer.
    evicted: AtomicBool,
    closed: Notify,
}

#[derive(Debug, Default)]
struct Open {
    by_id: HashMap<u64, Arc<Entry>>,
    per_client: HashMap<IpAddr, usize>,
    next_id: u64,
}

impl Open {
    fn remove(&mut self, id: u64) -> Option<Arc<Entry>> {
        let entry = self.by_id.remove(&id)?;
        if let Some(count) = self.per_client.get_mut(&entry.peer) {
            *count -= 1;
            if *count == 0 {
                self.per_client.remove(&entry.peer);
            }
        }
        Some(entry)
    }
}

/// The connections of one listener.
#[derive(Debug)]
pub struct ConnectionTable {
    limits: TableLimits,
    open: Mutex<Open>,
    started: Instant,
}

impl ConnectionTable {
    pub fn new(limits: TableLimits) -> Arc<Self> {
        Arc::new(Self {
            limits,
            open: Mutex::new(Open::default()),
            started: Instant::now(),
        })
    }

    fn now(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Connections open now.
    pub fn len(&self) -> usize {
        self.lock().by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Open> {
        // Nothing panics while holding it; a poisoned table is still consistent.
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Admits a connection from `peer` starting in `phase`, closing another for it when the
    /// table is full; the slot is freed when the returned handle drops.
    pub fn admit(self: &Arc<Self>, peer: IpAddr, phase: Phase) -> Result<Connection, Refused> {
        let now = self.now();
        let mut open = self.lock();
        if open.per_client.get(&peer).copied().unwrap_or(0) >= self.limits.max_per_client {
            return Err(Refused::PerClient);
        }
        if open.by_id.len() >= self.limits.max_connections {
            let victim = victim(open.by_id.values()).ok_or(Refused::AllBusy)?;
            if let Some(entry) = open.remove(victim) {
                entry.evicted.store(true, Ordering::Release);
                entry.closed.notify_one();
            }
        }
        let id = open.next_id;
        open.next_id += 1;
        let entry = Arc::new(Entry {
            id,
            peer,
            phase: AtomicU8::new(phase as u8),
            in_flight: AtomicU32::new(0),
            since: AtomicU64::new(now),
            evicted: AtomicBool::new(false),
            closed: Notify::new(),
        });
        open.by_id.insert(id, entry.clone());
        *open.per_client.entry(peer).or_default() += 1;
        Ok(Connection {
            entry,
            table: self.clone(),
        })
    }
}

/// The connection to close for a newcomer: the longest in its handshake, else the longest
/// idle; never one answering a query.
fn victim<'a>(entries: impl Iterator<Item = &'a Arc<Entry>>) -> Option<u64> {
    entries
        .filter(|e| e.in_flight.load(Ordering::Acquire) == 0)
        .min_by_key(|e| {
            let handshaking = e.phase.load(Ordering::Acquire) == Phase::Handshake as u8;
            (!handshaking, e.since.load(Ordering::Acquire), e.id)
        })
        .map(|e| e.id)
}

/// An admitted connection's place in its table, held by its task.
#[derive(Debug)]
pub struct Connection {
    entry: Arc<Entry>,
    table: Arc<ConnectionTable>,
}

impl Connection {
    /// The TLS handshake is done: idle until the first query.
    pub fn handshake_done(&self) {
        self.entry.since.store(self.table.now(), Ordering::Release);
        self.entry.phase.store(Phase::Idle as u8, Ordering::Release);
    }

    /// A query (or request) is being answered.
    pub fn begin(&self) {
        self.entry.in_flight.fetch_add(1, Ordering::AcqRel);
    }

    /// A query's answer is written: idle from now unless others are in progress.
    pub fn end(&self) {
        self.entry.since.store(self.table.now(), Ordering::Release);
        self.entry.in_flight.fetch_sub(1, Ordering::AcqRel);
    }

    /// Completes when the table closes this connection for a newcomer.
    pub fn evicted(&self) -> impl Future<Output = ()> + Send + 'static {
        let entry = self.entry.clone();
        async move {
            loop {
                let notified = entry.closed.notified();
                if entry.evicted.load(Ordering::Acquire) {
                    return;
                }
                notified.await;
            }
        }
    }

    /// One query in progress until the returned guard drops: a TCP or TLS query, answered
    /// on the connection's own task.
    pub fn busy(&self) -> Busy<'_> {
        self.begin();
        Busy(self)
    }

    /// A handle that marks one query in progress until it drops, wherever it goes (an HTTP
    /// request, which ends in hyper's hands).
    pub fn request(&self) -> InFlight {
        self.begin();
        InFlight {
            entry: self.entry.clone(),
            table: self.table.clone(),
        }
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.table.lock().remove(self.entry.id);
    }
}

/// One query in progress on a connection, borrowed; see [`Connection::busy`].
#[derive(Debug)]
pub struct Busy<'a>(&'a Connection);

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.0.end();
    }
}

/// One query in progress on a connection; see [`Connection::request`].
#[derive(Debug)]
pub struct InFlight {
    entry: Arc<Entry>,
    table: Arc<ConnectionTable>,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.entry.since.store(self.table.now(), Ordering::Release);
        self.entry.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, last])
    }

    fn table(max_connections: usize, max_per_client: usize) -> Arc<ConnectionTable> {
        ConnectionTable::new(TableLimits {
            max_connections,
            max_per_client,
        })
    }

    fn evicted(connection: &Connection) -> bool {
        connection.entry.evicted.load(Ordering::Acquire)
    }

    #[test]
    fn a_client_address_holds_at_most_its_share() {
        let table = table(10, 2);
        let a = table.admit(ip(1), Phase::Handshake).unwrap();
        let _b = table.admit(ip(1), Phase::Handshake).unwrap();
        assert_eq!(
            table.admit(ip(1), Phase::Handshake).unwrap_err(),
            Refused::PerClient
        );
        // Another address is admitted; a closed connection frees its address's share.
        let _c = table.admit(ip(2), Phase::Handshake).unwrap();
        drop(a);
        assert!(table.admit(ip(1), Phase::Handshake).is_ok());
    }

    #[test]
    fn a_full_table_closes_the_oldest_handshake_then_the_oldest_idle_never_a_busy_one() {
        let table = table(3, 10);
        let idle = table.admit(ip(1), Phase::Idle).unwrap();
        let busy = table.admit(ip(2), Phase::Idle).unwrap();
        busy.begin();
        let handshaking = table.admit(ip(3), Phase::Handshake).unwrap();
        // Full: the handshake goes first, though it is the youngest.
        let newcomer = table.admit(ip(4), Phase::Handshake).unwrap();
        assert!(evicted(&handshaking) && !evicted(&idle) && !evicted(&busy));
        assert_eq!(table.len(), 3);
        // Then the newcomer's handshake, the only one left.
        newcomer.handshake_done();
        std::thread::sleep(std::time::Duration::from_millis(5));
        let second = table.admit(ip(5), Phase::Handshake).unwrap();
        // Both idle now: the one idle longest goes.
        assert!(evicted(&idle) && !evicted(&newcomer));
        second.handshake_done();
        newcomer.begin();
        second.begin();
        // Every connection busy: the newcomer is refused, nobody is closed.
        assert_eq!(
            table.admit(ip(6), Phase::Handshake).unwrap_err(),
            Refused::AllBusy
        );
        // A finished query makes its connection idle again, and closable.
        second.end();
        let _third = table.admit(ip(6), Phase::Handshake).unwrap();
        assert!(evicted(&second));
        // An evicted connection's handle dropping later frees nothing twice.
        drop(handshaking);
        drop(idle);
        assert_eq!(table.len(), 3);
    }

    #[tokio::test]
    async fn an_evicted_connection_is_told() {
        let table = table(1, 1);
        let first = table.admit(ip(1), Phase::Handshake).unwrap();
        let told = first.evicted();
        let _second = table.admit(ip(2), Phase::Handshake).unwrap();
        tokio::time::timeout(std::time::Duration::from_secs(5), told)
            .await
            .expect("the evicted connection hears of it");
        // A request handle keeps its connection busy until it drops.
        let table = self::table(1, 1);
        let held = table.admit(ip(1), Phase::Idle).unwrap();
        let request = held.request();
        assert_eq!(
            table.admit(ip(2), Phase::Idle).unwrap_err(),
            Refused::AllBusy
        );
        drop(request);
        assert!(table.admit(ip(2), Phase::Idle).is_ok());
    }
}
