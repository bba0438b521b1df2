//! The UDP hot path: one socket per worker, all bound to the same address with
//! `SO_REUSEPORT` so the kernel spreads clients over them, each drained in batches with
//! `recvmmsg` and answered with one `sendmmsg` per batch (Linux). Each worker owns its
//! buffers, allocated once: answering a batch allocates nothing.
//!
//! Each worker is a dedicated thread blocked in `recvmmsg`, as in Knot DNS and NSD: an
//! async runtime would add a readiness poll and a wake-up per batch, which measurably costs
//! CPU per query (see bench/). The threads wake every [`POLL`] to check for shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};

use crate::metrics::QueryStats;
use crate::serve::answer::{Responder, Transport};

/// How often an idle worker checks whether it should stop.
pub const POLL: Duration = Duration::from_millis(100);

/// Receive buffer the kernel keeps per socket; absorbs bursts while a batch is answered.
/// Linux caps it at `net.core.rmem_max` without complaint.
const SOCKET_BUFFER: usize = 4 << 20;

/// Opens a UDP socket on `addr` that other workers can share.
pub fn reuseport_socket(addr: SocketAddr) -> std::io::Result<std::net::UdpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    #[cfg(unix)]
    socket.set_reuse_port(true)?;
    let _ = socket.set_recv_buffer_size(SOCKET_BUFFER);
    socket.set_read_timeout(Some(POLL))?;
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

/// Answers on `socket` until `stop` is set: the body of a worker thread.
pub fn serve(
    socket: std::net::UdpSocket,
    responder: Responder,
    max_response: usize,
    stop: Arc<AtomicBool>,
    stats: Arc<QueryStats>,
) {
    #[cfg(target_os = "linux")]
    batched::serve(socket, responder, max_response, stop, &stats);
    #[cfg(not(target_os = "linux"))]
    portable::serve(socket, responder, max_response, stop, &stats);
}

fn is_timeout(error: &std::io::Error) -> bool {
    matches!(
        error.kind(),
        std::io::ErrorKind::WouldBlock
            | std::io::ErrorKind::TimedOut
            | std::io::ErrorKind::Interrupted
    )
}

#[cfg(not(target_os = "linux"))]
mod portable {
    //! One datagram at a time, for systems without `recvmmsg`.
    use super::*;

    pub fn serve(
        socket: std::net::UdpSocket,
        responder: Responder,
        max_response: usize,
        stop: Arc<AtomicBool>,
        stats: &QueryStats,
    ) {
        let mut query = vec![0u8; 65535];
        let mut response = Vec::with_capacity(max_response);
        while !stop.load(Ordering::Relaxed) {
            let (len, peer) = match socket.recv_from(&mut query) {
                Ok(r) => r,
                Err(e) if is_timeout(&e) => continue,
                Err(error) => {
                    tracing::debug!(%error, "UDP receive error");
                    continue;
                }
            };
            let started = Instant::now();
            match responder.respond(&query[..len], Transport::Udp, &mut response) {
                Some(outcome) => {
                    let _ = socket.send_to(&response, peer);
                    stats.answered(outcome.qtype, outcome.rcode);
                    stats.timed(started.elapsed(), 1);
                }
                None => stats.dropped(),
            }
        }
    }
}

#[cfg(target_os = "linux")]
mod batched {
    use std::io;
    use std::os::fd::AsRawFd;

    use super::*;

    /// Datagrams read or written per system call.
    const BATCH: usize = 64;
    /// Largest query read; a longer one arrives truncated (MSG_TRUNC) and is dropped. DNS
    /// queries are a few hundred bytes; 4 KiB leaves room for EDNS options.
    const MAX_QUERY: usize = 4096;

    /// A worker's buffers: BATCH queries in, BATCH responses out, and the kernel's message
    /// headers pointing into them. Built once per worker.
    struct Batch {
        queries: Box<[[u8; MAX_QUERY]]>,
        responses: Vec<Vec<u8>>,
        peers: Box<[libc::sockaddr_storage]>,
        recv_iov: Box<[libc::iovec]>,
        recv_msgs: Box<[libc::mmsghdr]>,
        send_iov: Box<[libc::iovec]>,
        send_msgs: Box<[libc::mmsghdr]>,
    }

    fn zeroed<T>() -> T {
        // SAFETY: used only for plain C structs (iovec, mmsghdr, sockaddr_storage), for
        // which all-zero bytes are a valid value.
        unsafe { std::mem::zeroed() }
    }

    impl Batch {
        fn new(max_response: usize) -> Self {
            let mut batch = Batch {
                queries: vec![[0u8; MAX_QUERY]; BATCH].into_boxed_slice(),
                responses: (0..BATCH)
                    .map(|_| Vec::with_capacity(max_response))
                    .collect(),
                peers: (0..BATCH).map(|_| zeroed()).collect(),
                recv_iov: (0..BATCH).map(|_| zeroed()).collect(),
                recv_msgs: (0..BATCH).map(|_| zeroed()).collect(),
                send_iov: (0..BATCH).map(|_| zeroed()).collect(),
                send_msgs: (0..BATCH).map(|_| zeroed()).collect(),
            };
            for i in 0..BATCH {
                batch.recv_iov[i] = libc::iovec {
                    iov_base: batch.queries[i].as_mut_ptr().cast(),
                    iov_len: MAX_QUERY,
                };
            }
            batch
        }

        /// Points the receive headers at the buffers again (the kernel overwrote lengths).
        fn arm_receive(&mut self) {
            for i in 0..BATCH {
                let hdr = &mut self.recv_msgs[i].msg_hdr;
                hdr.msg_name = (&raw mut self.peers[i]).cast();
                hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
                hdr.msg_iov = &raw mut self.recv_iov[i];
                hdr.msg_iovlen = 1;
                hdr.msg_control = std::ptr::null_mut();
                hdr.msg_controllen = 0;
                hdr.msg_flags = 0;
                self.recv_msgs[i].msg_len = 0;
            }
        }
    }

    pub fn serve(
        socket: std::net::UdpSocket,
        responder: Responder,
        max_response: usize,
        stop: Arc<AtomicBool>,
        stats: &QueryStats,
    ) {
        let mut batch = Batch::new(max_response);
        while !stop.load(Ordering::Relaxed) {
            match receive_and_answer(&socket, &mut batch, &responder, stats) {
                Ok(()) => {}
                Err(e) if is_timeout(&e) => {}
                Err(error) => {
                    // ICMP errors from earlier sends surface here (ECONNREFUSED); they
                    // concern one client, not the socket.
                    tracing::debug!(%error, "UDP receive error");
                }
            }
        }
    }
    /// One `recvmmsg`, the answers, one `sendmmsg` (repeated on partial sends).
    fn receive_and_answer(
        socket: &std::net::UdpSocket,
        batch: &mut Batch,
        responder: &Responder,
        stats: &QueryStats,
    ) -> io::Result<()> {
        let fd = socket.as_raw_fd();
        batch.arm_receive();
        // SAFETY: recv_msgs holds BATCH headers whose buffers (queries, peers, recv_iov)
        // live in `batch` for the whole call.
        let received = unsafe {
            libc::recvmmsg(
                fd,
                batch.recv_msgs.as_mut_ptr(),
                BATCH as libc::c_uint,
                // Block for the first datagram (up to the socket's read timeout), then take
                // whatever else is queued without waiting.
                libc::MSG_WAITFORONE,
                std::ptr::null_mut(),
            )
        };
        if received < 0 {
            return Err(io::Error::last_os_error());
        }
        let started = Instant::now();
        let received = received as usize;
        let mut outgoing = 0;
        for i in 0..received.min(BATCH) {
            let msg = &batch.recv_msgs[i];
            if msg.msg_hdr.msg_flags & libc::MSG_TRUNC != 0 {
                continue; // larger than any query this server answers
            }
            let len = (msg.msg_len as usize).min(MAX_QUERY);
            let peer_len = msg.msg_hdr.msg_namelen;
            let response = &mut batch.responses[outgoing];
            match responder.respond(&batch.queries[i][..len], Transport::Udp, response) {
                Some(outcome) => stats.answered(outcome.qtype, outcome.rcode),
                None => {
                    stats.dropped();
                    continue;
                }
            }
            batch.send_iov[outgoing] = libc::iovec {
                iov_base: response.as_mut_ptr().cast(),
                iov_len: response.len(),
            };
            if outgoing != i {
                batch.peers[outgoing] = batch.peers[i];
            }
            let hdr = &mut batch.send_msgs[outgoing].msg_hdr;
            hdr.msg_name = (&raw mut batch.peers[outgoing]).cast();
            hdr.msg_namelen = peer_len;
            hdr.msg_iov = &raw mut batch.send_iov[outgoing];
            hdr.msg_iovlen = 1;
            hdr.msg_control = std::ptr::null_mut();
            hdr.msg_controllen = 0;
            hdr.msg_flags = 0;
            outgoing += 1;
        }
        let mut sent = 0;
        while sent < outgoing {
            // SAFETY: send_msgs[sent..outgoing] point at responses, peers and send_iov
            // entries that live in `batch` for the whole call.
            let n = unsafe {
                libc::sendmmsg(
                    fd,
                    batch.send_msgs[sent..].as_mut_ptr(),
                    (outgoing - sent) as libc::c_uint,
                    0,
                )
            };
            if n <= 0 {
                let error = io::Error::last_os_error();
                if error.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                // The kernel refused the first remaining message (a bad peer address, a
                // full buffer): skip it rather than spin.
                sent += 1;
                continue;
            }
            sent += n as usize;
        }
        stats.timed(started.elapsed(), outgoing as u64);
        Ok(())
    }
}
