//! The UDP hot path: one socket per worker, all bound to the same address with
//! `SO_REUSEPORT` so the kernel spreads clients over them, each drained in batches with
//! `recvmmsg` and answered with one `sendmmsg` per batch (Linux). Each worker owns its
//! buffers, allocated once: answering a batch allocates nothing.
//!
//! The sockets are driven by the caller's tokio runtime through `AsyncFd`: a worker sleeps
//! until its socket is readable, then reads until the queue is empty.

use std::net::SocketAddr;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::sync::watch;

use crate::answer::Responder;

/// Receive buffer the kernel keeps per socket; absorbs bursts while a batch is answered.
/// Linux caps it at `net.core.rmem_max` without complaint.
const SOCKET_BUFFER: usize = 4 << 20;

/// Opens a non-blocking UDP socket on `addr` that other workers can share.
pub fn reuseport_socket(addr: SocketAddr) -> std::io::Result<std::net::UdpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    #[cfg(unix)]
    socket.set_reuse_port(true)?;
    let _ = socket.set_recv_buffer_size(SOCKET_BUFFER);
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

/// Answers on `socket` until shutdown.
pub async fn serve(
    socket: std::net::UdpSocket,
    responder: Responder,
    max_response: usize,
    shutdown: watch::Receiver<bool>,
) {
    #[cfg(target_os = "linux")]
    batched::serve(socket, responder, max_response, shutdown).await;
    #[cfg(not(target_os = "linux"))]
    portable::serve(socket, responder, max_response, shutdown).await;
}

#[cfg(not(target_os = "linux"))]
mod portable {
    //! One datagram at a time, for systems without `recvmmsg`.
    use super::*;
    use crate::answer::Transport;

    pub async fn serve(
        socket: std::net::UdpSocket,
        responder: Responder,
        max_response: usize,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let Ok(socket) = tokio::net::UdpSocket::from_std(socket) else {
            tracing::error!("cannot register the UDP socket with the runtime");
            return;
        };
        let mut query = vec![0u8; 65535];
        let mut response = Vec::with_capacity(max_response);
        loop {
            let received = tokio::select! {
                biased;
                _ = shutdown.changed() => return,
                received = socket.recv_from(&mut query) => received,
            };
            let Ok((len, peer)) = received else { continue };
            if responder
                .respond(&query[..len], Transport::Udp, &mut response)
                .is_some()
            {
                let _ = socket.send_to(&response, peer).await;
            }
        }
    }
}

#[cfg(target_os = "linux")]
mod batched {
    use std::io;
    use std::os::fd::AsRawFd;

    use tokio::io::Interest;
    use tokio::io::unix::AsyncFd;

    use super::*;
    use crate::answer::Transport;

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

    // SAFETY: the raw pointers in the headers point into the batch's own boxed buffers,
    // which move with it; nothing else holds them.
    unsafe impl Send for Batch {}

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

    pub async fn serve(
        socket: std::net::UdpSocket,
        responder: Responder,
        max_response: usize,
        mut shutdown: watch::Receiver<bool>,
    ) {
        // SAFETY: the std socket owns its descriptor and moves into the AsyncFd, so the
        // descriptor stays open and the same for the AsyncFd's whole life.
        let registered = unsafe { AsyncFd::register_with_interest(socket, Interest::READABLE) };
        let socket = match registered {
            Ok(s) => s,
            Err(error) => {
                tracing::error!(error = %error, "cannot register the UDP socket with the runtime");
                return;
            }
        };
        let mut batch = Batch::new(max_response);
        loop {
            let mut ready = tokio::select! {
                biased;
                _ = shutdown.changed() => return,
                ready = socket.readable() => match ready {
                    Ok(r) => r,
                    Err(error) => {
                        tracing::error!(%error, "UDP socket failed; this worker stops");
                        return;
                    }
                },
            };
            // Drain the queue: read batches until the kernel has nothing more.
            loop {
                match receive_and_answer(socket.get_ref(), &mut batch, &responder) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        ready.clear_ready();
                        break;
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(error) => {
                        // ICMP errors from earlier sends surface here (ECONNREFUSED); they
                        // concern one client, not the socket.
                        tracing::debug!(%error, "UDP receive error");
                    }
                }
            }
        }
    }

    /// One `recvmmsg`, the answers, one `sendmmsg` (repeated on partial sends).
    fn receive_and_answer(
        socket: &std::net::UdpSocket,
        batch: &mut Batch,
        responder: &Responder,
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
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if received < 0 {
            return Err(io::Error::last_os_error());
        }
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
            if responder
                .respond(&batch.queries[i][..len], Transport::Udp, response)
                .is_none()
            {
                continue;
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
        Ok(())
    }
}
