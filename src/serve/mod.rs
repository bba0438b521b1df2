//! Sockets: UDP and TCP on every listen address, each loop calling the responder.
//!
//! UDP is served by `udp` (one worker per socket, batched); one task per TCP connection
//! answers its queries in order, so pipelined queries are answered in the order sent. Every
//! loop watches the shutdown signal; a TCP connection finishes the query it is answering.

pub mod affinity;
pub mod answer;
pub mod certs;
mod chase;
pub mod connections;
pub mod https;
pub mod notify;
pub mod probes;
mod response_records;
pub mod tcp;
pub mod tls;
pub mod transfer;
pub mod udp;
pub mod zones;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::metrics::{Metrics, Proto};
use answer::Responder;

/// The sockets of one listen address.
pub struct Listener {
    /// One UDP socket per worker, all on the same address (`SO_REUSEPORT`).
    pub udp: Vec<std::net::UdpSocket>,
    pub tcp: TcpListener,
    /// With socket affinity, the CPU of each UDP worker (the socket of the same index).
    pub worker_cpus: Option<Vec<usize>>,
}

impl Listener {
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.tcp.local_addr()
    }
}

/// Binds `workers` UDP sockets and one TCP listener on `addr`. With port 0 they all get the
/// same free port, so a client retries a truncated answer over TCP where it asked over UDP.
/// With `worker_cpus` (one per worker), the kernel hands each datagram to socket
/// `cpu % workers` and [`spawn`] pins that socket's worker to its CPU (see
/// [`affinity`]).
pub async fn bind(
    addr: SocketAddr,
    workers: usize,
    worker_cpus: Option<&[usize]>,
) -> std::io::Result<Listener> {
    let mut last_error = None;
    // With port 0, another process may take the UDP port's TCP twin: try a few ports.
    for _ in 0..16 {
        let first = udp::reuseport_socket(addr)?;
        let bound = first.local_addr()?;
        let tcp = match tcp::listen(bound) {
            Ok(tcp) => tcp,
            Err(e) if addr.port() == 0 => {
                last_error = Some(e);
                continue;
            }
            Err(e) => return Err(e),
        };
        if worker_cpus.is_some() {
            // The program belongs to the group: the sockets bound next are steered too.
            affinity::steer_by_cpu(&first, workers.max(1))?;
        }
        let mut sockets = vec![first];
        for _ in 1..workers.max(1) {
            sockets.push(udp::reuseport_socket(bound)?);
        }
        return Ok(Listener {
            udp: sockets,
            tcp,
            worker_cpus: worker_cpus.map(<[usize]>::to_vec),
        });
    }
    Err(last_error.unwrap_or_else(|| std::io::Error::other("no free port")))
}

/// Limits of the TCP-based listeners (TCP, TLS, HTTPS), each applied per listener.
#[derive(Debug, Clone, Copy)]
pub struct TcpSettings {
    /// A connection without a complete query (or HTTP request) this long is closed.
    pub idle_timeout: Duration,
    /// A TLS handshake must be done within this.
    pub handshake_timeout: Duration,
    /// Connections open at once; a newcomer beyond takes the place of the oldest that is
    /// in its handshake or idle (`connections`).
    pub max_connections: usize,
    /// Connections open at once from one client address.
    pub max_per_client: usize,
}

/// Limits of every listener.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest UDP response.
    pub max_udp_response: usize,
    pub tcp: TcpSettings,
}

/// The UDP worker threads of a server, stopped by a flag they poll (every `udp::POLL`).
#[derive(Debug, Default)]
pub struct UdpWorkers {
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl UdpWorkers {
    /// Asks every worker to stop and waits until they have.
    pub async fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let threads = std::mem::take(&mut self.threads);
        let _ = tokio::task::spawn_blocking(move || {
            for thread in threads {
                let _ = thread.join();
            }
        })
        .await;
    }
}

impl Drop for UdpWorkers {
    /// A server dropped without a shutdown still stops its threads (without waiting).
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Starts the loops of one listener: its UDP threads into `udp`, its TCP task on `tasks`.
pub fn spawn(
    listener: Listener,
    responder: Responder,
    limits: Limits,
    shutdown: watch::Receiver<bool>,
    tasks: &mut JoinSet<()>,
    udp: &mut UdpWorkers,
    metrics: &Metrics,
) -> std::io::Result<()> {
    let worker_cpus = listener.worker_cpus.unwrap_or_default();
    for (k, socket) in listener.udp.into_iter().enumerate() {
        let (responder, stop) = (responder.clone(), udp.stop.clone());
        let stats = metrics.query_stats(Proto::Udp);
        let cpu = worker_cpus.get(k).copied();
        let thread = std::thread::Builder::new()
            .name(format!("dns-udp-{}", udp.threads.len()))
            .spawn(move || {
                let _span = tracing::info_span!("udp", worker = k, cpu).entered();
                if let Some(cpu) = cpu
                    && let Err(error) = affinity::pin_current_thread(cpu)
                {
                    // Still correct, only not local: the kernel steers to this socket anyway.
                    tracing::warn!(cpu, %error, "cannot pin a UDP worker to its CPU");
                }
                udp::serve(socket, responder, limits.max_udp_response, stop, stats)
            })?;
        udp.threads.push(thread);
    }
    tasks.spawn(tcp::serve(
        listener.tcp,
        responder,
        limits.tcp,
        shutdown,
        metrics.query_stats(Proto::Tcp),
    ));
    Ok(())
}

/// An encrypted transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encrypted {
    /// DNS over TLS (RFC 7858).
    Tls,
    /// DNS over HTTPS (RFC 8484).
    Https,
}

impl Encrypted {
    /// The ALPN protocol it is offered under.
    pub fn alpn(self) -> &'static [u8] {
        match self {
            Encrypted::Tls => b"dot",
            Encrypted::Https => b"h2",
        }
    }

    /// The flag of its listen addresses.
    pub fn flag(self) -> &'static str {
        match self {
            Encrypted::Tls => "--tls-listen",
            Encrypted::Https => "--https-listen",
        }
    }
}

/// The loop of `transport` on `listener`, to run until shutdown.
pub fn serve_encrypted(
    transport: Encrypted,
    listener: TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    responder: Responder,
    settings: TcpSettings,
    shutdown: watch::Receiver<bool>,
    metrics: &Metrics,
) -> impl Future<Output = ()> + Send + 'static {
    let stats = metrics.query_stats(match transport {
        Encrypted::Tls => Proto::Tls,
        Encrypted::Https => Proto::Https,
    });
    async move {
        match transport {
            Encrypted::Tls => {
                tls::serve(listener, acceptor, responder, settings, shutdown, stats).await
            }
            Encrypted::Https => {
                https::serve(listener, acceptor, responder, settings, shutdown, stats).await
            }
        }
    }
}
