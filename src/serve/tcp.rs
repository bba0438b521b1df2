//! DNS over TCP: one task per connection, answering its queries in order (pipelined queries
//! are answered in the order sent), with an idle timeout, a write timeout and a table of
//! open connections (`connections`). The loops are shared: [`serve_connections`] accepts for
//! every TCP-based transport (TCP, TLS, HTTPS), [`serve_stream`] answers length-prefixed
//! queries over TCP and TLS alike, [`accept_next`] is the accept loop the HTTP probes use
//! too.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::Instrument;

use crate::metrics::QueryStats;
use crate::serve::TcpSettings;
use crate::serve::answer::{Responder, Transport};
use crate::serve::connections::{Connection, ConnectionTable, Phase, Refused, TableLimits};

/// Connections the kernel completes before they are accepted. tokio's `bind` listens with
/// 128 here, and a burst of connections (a flood, or many clients at once) overflows it:
/// the kernel drops the overflow's SYNs and those clients retry a second later. The kernel
/// caps it at `net.core.somaxconn`.
const BACKLOG: i32 = 4096;

/// A TCP listener on `addr` with a backlog of [`BACKLOG`] (DNS over TCP, TLS and HTTPS).
pub fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    TcpListener::from_std(socket.into())
}

/// Largest DNS message (the TCP length prefix is 16 bits).
const MAX_MESSAGE: usize = 65535;
/// A client that does not take its response in this long is dropped.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// DNS over TCP on `listener` until shutdown.
pub(super) async fn serve(
    listener: TcpListener,
    responder: Responder,
    settings: TcpSettings,
    shutdown: watch::Receiver<bool>,
    stats: Arc<QueryStats>,
) {
    serve_connections(
        listener,
        settings,
        Phase::Idle,
        shutdown,
        "tcp",
        move |stream, peer, shutdown, connection| {
            serve_stream(
                stream,
                Transport::Tcp,
                peer,
                responder.clone(),
                settings.idle_timeout,
                shutdown,
                stats.clone(),
                connection,
            )
        },
    )
    .await;
}

/// Accepts connections on `listener` until shutdown, each admitted to the listener's
/// connection table in `phase` and served by `connection` in a task of its own (one the
/// table closes for a newcomer ends there), then lets the open ones finish the query they
/// are on. `transport` names the server in logs.
pub(super) async fn serve_connections<F, Fut>(
    listener: TcpListener,
    settings: TcpSettings,
    phase: Phase,
    mut shutdown: watch::Receiver<bool>,
    transport: &'static str,
    connection: F,
) where
    F: Fn(TcpStream, IpAddr, watch::Receiver<bool>, Arc<Connection>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let table = ConnectionTable::new(TableLimits {
        max_connections: settings.max_connections,
        max_per_client: settings.max_per_client,
    });
    let mut open = JoinSet::new();
    while let Some((stream, peer)) =
        accept_next(&listener, &mut shutdown, &mut open, transport).await
    {
        let admitted = match table.admit(peer.ip(), phase) {
            Ok(admitted) => Arc::new(admitted),
            Err(refused) => {
                let reason = match refused {
                    Refused::PerClient => "--max-connections-per-client reached",
                    Refused::AllBusy => "--max-tcp-connections reached, all answering",
                };
                tracing::debug!(%peer, transport, reason, "connection refused");
                drop(stream);
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let evicted = admitted.evicted();
        let served = connection(stream, peer.ip(), shutdown.clone(), admitted);
        // A span per connection, at debug: what a connection logs names its peer, and at
        // the default level it costs nothing.
        let span = tracing::debug_span!("connection", transport, %peer);
        open.spawn(
            async move {
                tokio::select! {
                    () = served => {}
                    () = evicted => tracing::debug!("closed for a new connection: the table is full"),
                }
            }
            .instrument(span),
        );
    }
    // Every open connection sees the same signal and finishes the query it is on.
    while open.join_next().await.is_some() {}
}

/// The next accepted connection of a TCP server (DNS or HTTP), reaping the tasks in `open`
/// that have finished while waiting; `None` once shutdown is signalled.
pub async fn accept_next<T: 'static>(
    listener: &TcpListener,
    shutdown: &mut watch::Receiver<bool>,
    open: &mut JoinSet<T>,
    server: &'static str,
) -> Option<(TcpStream, SocketAddr)> {
    loop {
        let accepted = tokio::select! {
            biased;
            _ = shutdown.changed() => return None,
            Some(_) = open.join_next(), if !open.is_empty() => continue,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok(connection) => return Some(connection),
            Err(error) => {
                // EMFILE and friends: back off a little instead of spinning.
                tracing::warn!(%error, server, "TCP accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Answers the length-prefixed queries of one connection (plain TCP or TLS) in order until
/// the client closes it, sends nothing for `idle_timeout`, or the server stops; then closes
/// it (TLS: with close_notify).
#[allow(clippy::too_many_arguments, reason = "a connection's whole context")]
pub(super) async fn serve_stream<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    transport: Transport,
    peer: IpAddr,
    responder: Responder,
    idle_timeout: Duration,
    shutdown: watch::Receiver<bool>,
    stats: Arc<QueryStats>,
    connection: Arc<Connection>,
) {
    answer_queries(
        &mut stream,
        transport,
        peer,
        &responder,
        idle_timeout,
        shutdown,
        &stats,
        &connection,
    )
    .await;
    let _ = tokio::time::timeout(WRITE_TIMEOUT, stream.shutdown()).await;
}

#[allow(clippy::too_many_arguments, reason = "a connection's whole context")]
async fn answer_queries<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    transport: Transport,
    peer: IpAddr,
    responder: &Responder,
    idle_timeout: Duration,
    mut shutdown: watch::Receiver<bool>,
    stats: &QueryStats,
    connection: &Connection,
) {
    let mut query = vec![0u8; MAX_MESSAGE];
    let mut response = Vec::with_capacity(MAX_MESSAGE);
    let mut framed = Vec::with_capacity(MAX_MESSAGE + 2);
    loop {
        let mut prefix = [0u8; 2];
        let read = tokio::select! {
            biased;
            _ = shutdown.changed() => return,
            read = tokio::time::timeout(idle_timeout, stream.read_exact(&mut prefix)) => read,
        };
        if !matches!(read, Ok(Ok(_))) {
            return; // idle, closed or broken
        }
        let len = usize::from(u16::from_be_bytes(prefix));
        // The body must follow within the idle timeout too: a slow sender holds no
        // connection slot for longer than that.
        let body = tokio::time::timeout(idle_timeout, stream.read_exact(&mut query[..len])).await;
        if !matches!(body, Ok(Ok(_))) {
            return;
        }
        // Busy until the answer is written: not closed for a newcomer meanwhile.
        let _busy = connection.busy();
        let started = std::time::Instant::now();
        match responder.respond(&query[..len], transport, &mut response) {
            Some(outcome) if outcome.transfer => {
                stats.answered(outcome.qtype, outcome.rcode);
                // A zone transfer: its messages go out as the zone is read.
                let Some(transfers) = responder.transfers() else {
                    return;
                };
                if transfers.serve(&query[..len], peer, stream).await.is_err() {
                    return;
                }
                continue;
            }
            Some(outcome) => stats.answered(outcome.qtype, outcome.rcode),
            None => {
                stats.dropped();
                continue;
            }
        }
        // One write per response (length prefix and message together), buffers reused;
        // the flush sends what a TLS stream buffered (a no-op over plain TCP).
        let out_len = u16::try_from(response.len()).unwrap_or(u16::MAX);
        framed.clear();
        framed.extend_from_slice(&out_len.to_be_bytes());
        framed.extend_from_slice(&response);
        let written = async {
            stream.write_all(&framed).await?;
            stream.flush().await
        };
        match tokio::time::timeout(WRITE_TIMEOUT, written).await {
            Ok(Ok(())) => stats.timed(started.elapsed(), 1),
            _ => return,
        }
    }
}
