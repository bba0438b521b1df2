//! The TLS writer of DNS over HTTPS: every HTTP/2 response leaves in TLS records of its own.
//!
//! Why: h2 writes the frames it has ready in one buffer (the HEADERS of several streams, then
//! their DATA), and a TLS stream seals one write into one record, so several responses shared
//! a record. That is valid HTTP/2, but dnsperf 2.10's DoH client (the load tool this project
//! is measured with) reads one TLS record at a time and keeps one response buffer: a second
//! DATA frame that ends a stream in the same read is paused and its payload dropped, so those
//! queries are never answered (`-c 1 -q 20`: 20 of 47 lost). unbound and Knot write each
//! frame as it is produced and never meet this.
//!
//! So this writer keeps h2's frames until h2 flushes, then hands them to rustls one response
//! at a time, cut after each frame that ends a stream (DATA with END_STREAM, or a header
//! block with END_STREAM): each response is sealed in its own record(s), and the records of
//! a flush still leave in one system call (rustls queues them; the flush writes them
//! vectored). It also merges the HEADERS and DATA of a response, which h2 writes as two
//! slices, into one record, as the `BufWriter` it replaces did.
//!
//! Reading, it acknowledges at once a request whose body has not come with its headers. A
//! client that sends a POST's HEADERS and DATA in two writes without TCP_NODELAY (dnsperf)
//! holds the DATA back until the HEADERS are acknowledged (Nagle), and Linux delays that
//! acknowledgement up to 40 ms hoping to send it with an answer that cannot come before the
//! body: 20 POSTs/s on one connection. TCP_QUICKACK sends the pending ACK now; it costs a
//! system call only on reads that end on such a request.

use std::collections::VecDeque;
use std::io::{self, IoSlice, Write as _};
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

/// Frames kept before a write waits for the socket: h2 writes at most its own buffer between
/// flushes, so this bounds a connection's output when the client reads nothing.
const MAX_PENDING: usize = 64 * 1024;

/// The length of an HTTP/2 frame header (RFC 9113 4.1).
const FRAME_HEADER_LEN: usize = 9;
const DATA: u8 = 0x0;
const HEADERS: u8 = 0x1;
const CONTINUATION: u8 = 0x9;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;

/// What every HTTP/2 client sends before its first frame (RFC 9113 3.4).
const CLIENT_PREFACE_LEN: usize = 24;

/// Finds where streams end in a sequence of HTTP/2 frames: the responses a server writes,
/// the requests that still wait for their body in what it reads.
#[derive(Debug, Default)]
struct FrameScanner {
    /// Bytes still to pass over before the first frame (the client preface).
    skip: usize,
    /// The frame header being read, and how much of it is.
    header: [u8; FRAME_HEADER_LEN],
    header_len: usize,
    /// Payload bytes of the current frame not yet seen.
    payload_left: usize,
    /// The current frame ends a stream when its payload is through.
    ends_response: bool,
    /// The header block being read (HEADERS, then CONTINUATION) began with END_STREAM.
    block_ends_stream: bool,
    /// The last complete frame ended a header block without END_STREAM: a request whose
    /// body is still to come.
    awaiting_body: bool,
}

impl FrameScanner {
    /// Reads `bytes`, which start at offset `at` of the output, and pushes the offset just
    /// past each frame that ends a response onto `ends`.
    fn scan(&mut self, mut bytes: &[u8], mut at: usize, ends: &mut VecDeque<usize>) {
        while !bytes.is_empty() {
            if self.skip > 0 {
                let step = self.skip.min(bytes.len());
                self.skip -= step;
                bytes = &bytes[step..];
                at += step;
                continue;
            }
            if self.payload_left > 0 {
                let step = self.payload_left.min(bytes.len());
                self.payload_left -= step;
                bytes = &bytes[step..];
                at += step;
            } else {
                let step = (FRAME_HEADER_LEN - self.header_len).min(bytes.len());
                self.header[self.header_len..self.header_len + step]
                    .copy_from_slice(&bytes[..step]);
                self.header_len += step;
                bytes = &bytes[step..];
                at += step;
                if self.header_len < FRAME_HEADER_LEN {
                    return;
                }
                self.header_len = 0;
                self.start_frame();
            }
            if self.payload_left == 0 && self.header_len == 0 && self.ends_response {
                self.ends_response = false;
                ends.push_back(at);
            }
        }
    }

    /// The bytes read so far end on a frame boundary, after the headers of a request whose
    /// body has not come.
    fn waits_for_body(&self) -> bool {
        self.awaiting_body && self.skip == 0 && self.header_len == 0 && self.payload_left == 0
    }

    /// A frame header is complete: its payload follows.
    fn start_frame(&mut self) {
        let [l0, l1, l2, kind, flags, ..] = self.header;
        self.payload_left = usize::from(l0) << 16 | usize::from(l1) << 8 | usize::from(l2);
        let block_ends = match kind {
            HEADERS => {
                self.block_ends_stream = flags & END_STREAM != 0;
                flags & END_HEADERS != 0
            }
            CONTINUATION => flags & END_HEADERS != 0,
            _ => false,
        };
        self.ends_response = match kind {
            DATA => flags & END_STREAM != 0,
            _ => block_ends && self.block_ends_stream,
        };
        self.awaiting_body = block_ends && !self.block_ends_stream;
    }
}

/// A TLS stream whose writes are sealed one HTTP/2 response per record.
pub struct ResponseRecords {
    tls: TlsStream<TcpStream>,
    /// Frames written by h2 and not yet handed to rustls in full.
    pending: Vec<u8>,
    /// How much of `pending` rustls has sealed.
    sealed: usize,
    /// Offsets in `pending` just past each response, in order.
    ends: VecDeque<usize>,
    frames: FrameScanner,
    /// The frames read, for requests that wait for their body.
    requests: FrameScanner,
}

impl ResponseRecords {
    pub fn new(tls: TlsStream<TcpStream>) -> Self {
        Self {
            tls,
            pending: Vec::new(),
            sealed: 0,
            ends: VecDeque::new(),
            frames: FrameScanner::default(),
            requests: FrameScanner {
                skip: CLIENT_PREFACE_LEN,
                ..FrameScanner::default()
            },
        }
    }

    fn append(&mut self, bytes: &[u8]) {
        let at = self.pending.len();
        self.pending.extend_from_slice(bytes);
        self.frames.scan(bytes, at, &mut self.ends);
    }

    /// Seals what is pending, a response at a time, and writes the records out.
    fn poll_send(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            while self.sealed < self.pending.len() {
                while self.ends.front().is_some_and(|&end| end <= self.sealed) {
                    self.ends.pop_front();
                }
                let end = self.ends.front().copied().unwrap_or(self.pending.len());
                let (_, session) = self.tls.get_mut();
                let taken = session.writer().write(&self.pending[self.sealed..end])?;
                if taken == 0 {
                    break; // rustls's output queue is full: send it first
                }
                self.sealed += taken;
            }
            ready!(Pin::new(&mut self.tls).poll_flush(cx))?;
            if self.sealed == self.pending.len() {
                self.pending.clear();
                self.ends.clear();
                self.sealed = 0;
                return Poll::Ready(Ok(()));
            }
        }
    }
}

impl AsyncRead for ResponseRecords {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        ready!(Pin::new(&mut self.tls).poll_read(cx, buf))?;
        let this = &mut *self;
        // Only the frame boundaries matter here: no offsets are kept.
        let mut no_ends = VecDeque::new();
        this.requests.scan(&buf.filled()[before..], 0, &mut no_ends);
        #[cfg(target_os = "linux")]
        if this.requests.waits_for_body() {
            // Best effort: without it the body comes all the same, only later.
            let _ = socket2::SockRef::from(this.tls.get_ref().0).set_tcp_quickack(true);
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for ResponseRecords {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.pending.len() >= MAX_PENDING {
            ready!(self.poll_send(cx))?;
        }
        self.append(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if self.pending.len() >= MAX_PENDING {
            ready!(self.poll_send(cx))?;
        }
        let mut written = 0;
        for buf in bufs {
            self.append(buf);
            written += buf.len();
        }
        Poll::Ready(Ok(written))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_send(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_send(cx))?;
        Pin::new(&mut self.tls).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let len = payload.len() as u32;
        let mut out = len.to_be_bytes()[1..].to_vec();
        out.extend_from_slice(&[kind, flags]);
        out.extend_from_slice(&stream.to_be_bytes());
        out.extend_from_slice(payload);
        out
    }

    /// The response ends found in `frames` when it is written in pieces of `piece` bytes.
    fn ends(frames: &[u8], piece: usize) -> Vec<usize> {
        let mut scanner = FrameScanner::default();
        let mut ends = VecDeque::new();
        for (n, chunk) in frames.chunks(piece).enumerate() {
            scanner.scan(chunk, n * piece, &mut ends);
        }
        ends.into()
    }

    #[test]
    fn responses_end_after_the_frame_that_ends_their_stream() {
        let settings = frame(0x4, 0, 0, &[0; 6]);
        let headers = |stream, flags| frame(HEADERS, flags, stream, b"hpack");
        let data = |stream, flags| frame(DATA, flags, stream, &[7; 40]);
        // What h2 writes for three answers: SETTINGS, the HEADERS of all, then their DATA;
        // an empty-bodied answer (HEADERS with END_STREAM) split into HEADERS and
        // CONTINUATION; a WINDOW_UPDATE last.
        let parts = [
            settings,
            headers(1, END_HEADERS),
            headers(3, END_HEADERS),
            data(1, END_STREAM),
            data(3, 0),
            data(3, END_STREAM),
            headers(5, END_STREAM),
            frame(CONTINUATION, END_HEADERS, 5, b"more"),
            frame(0x8, 0, 0, &[0, 0, 1, 0]),
        ];
        let mut at = 0;
        let offsets: Vec<usize> = parts
            .iter()
            .map(|p| {
                at += p.len();
                at
            })
            .collect();
        let expected = vec![offsets[3], offsets[5], offsets[7]];
        let all = parts.concat();
        for piece in [1, 2, 5, 9, 10, 17, 64, all.len()] {
            assert_eq!(
                ends(&all, piece),
                expected,
                "written {piece} bytes at a time"
            );
        }
        // A frame without payload that ends a stream ends where its header does; one whose
        // payload has not come yet has not ended.
        assert_eq!(ends(&data(7, END_STREAM)[..9], 3), Vec::<usize>::new());
        assert_eq!(ends(&frame(DATA, END_STREAM, 7, &[]), 4), vec![9]);
    }

    #[test]
    fn a_request_waits_for_its_body_after_headers_without_end_stream() {
        let mut reader = FrameScanner {
            skip: CLIENT_PREFACE_LEN,
            ..FrameScanner::default()
        };
        let mut ends = VecDeque::new();
        let mut read = |bytes: &[u8]| {
            reader.scan(bytes, 0, &mut ends);
            reader.waits_for_body()
        };
        let preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
        assert!(!read(
            &[preface.as_slice(), &frame(0x4, 0, 0, &[])].concat()
        ));
        // A GET: its headers end the stream.
        assert!(!read(&frame(HEADERS, END_HEADERS | END_STREAM, 1, b"get")));
        // A POST's headers alone: waiting; the header read in part: not yet a boundary.
        let post = frame(HEADERS, END_HEADERS, 3, b"post");
        assert!(!read(&post[..5]));
        assert!(read(&post[5..]));
        // Its body, then a POST whose headers and body came together.
        assert!(!read(&frame(DATA, END_STREAM, 3, b"query")));
        let together = [post.clone(), frame(DATA, END_STREAM, 5, b"query")].concat();
        assert!(!read(&together));
        // Headers continued: waiting once the block ends.
        assert!(!read(&frame(HEADERS, 0, 7, b"a")));
        assert!(read(&frame(CONTINUATION, END_HEADERS, 7, b"b")));
    }
}
