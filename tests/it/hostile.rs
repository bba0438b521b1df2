//! Malformed and abusive queries over real sockets. Each case checks the exact response (or
//! that none came) and that the server still answers a normal query afterwards.

use std::time::Duration;

use hickory_net::proto::op::{Message, ResponseCode};
use hickory_net::proto::rr::RecordType;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::{TestServer, data, loopback_config, raw_query, udp_exchange};

const POD: &str = "web-0.nginx.demo.svc.cluster.local";

/// The server still answers a normal query.
async fn still_serving(server: &TestServer) {
    let response = server.ask(&format!("{POD}."), RecordType::A).await;
    assert_eq!(data(&response), ["10.244.1.10"]);
}

/// Header fields of a raw response: (id, flags, qdcount, ancount, nscount, arcount).
fn header(bytes: &[u8]) -> (u16, u16, u16, u16, u16, u16) {
    let at = |i: usize| u16::from_be_bytes([bytes[i], bytes[i + 1]]);
    (at(0), at(2), at(4), at(6), at(8), at(10))
}

/// A query with `qdcount` set by hand and `body` after the header.
fn with_header(id: u16, flags: u16, counts: [u16; 4], body: &[u8]) -> Vec<u8> {
    let mut msg = Vec::new();
    msg.extend_from_slice(&id.to_be_bytes());
    msg.extend_from_slice(&flags.to_be_bytes());
    for c in counts {
        msg.extend_from_slice(&c.to_be_bytes());
    }
    msg.extend_from_slice(body);
    msg
}

/// The question section of `raw_query` (everything after its header).
fn question(name: &str, qtype: u16) -> Vec<u8> {
    raw_query(0, name, qtype)[12..].to_vec()
}

#[tokio::test]
async fn malformed_questions_get_formerr() {
    let server = TestServer::demo().await;
    let q = question(POD, 1);
    let long_label = format!("{}.demo.svc.cluster.local", "a".repeat(64));
    let mut long_label_q = Vec::new();
    for label in long_label.split('.') {
        long_label_q.push(label.len() as u8);
        long_label_q.extend_from_slice(label.as_bytes());
    }
    long_label_q.extend_from_slice(&[0, 0, 1, 0, 1]);
    let long_name: Vec<u8> = {
        let mut n = Vec::new();
        for _ in 0..26 {
            n.extend_from_slice(b"\x09abcdefghi");
        }
        n.extend_from_slice(&[0, 0, 1, 0, 1]);
        n
    };
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        ("QDCOUNT 0", with_header(1, 0x0100, [0, 0, 0, 0], &[]), 0),
        (
            "QDCOUNT 2",
            with_header(2, 0x0100, [2, 0, 0, 0], &[q.clone(), q.clone()].concat()),
            0,
        ),
        (
            "label over 63",
            with_header(3, 0x0100, [1, 0, 0, 0], &long_label_q),
            0,
        ),
        (
            "name over 255",
            with_header(4, 0x0100, [1, 0, 0, 0], &long_name),
            0,
        ),
        (
            "pointer as question",
            with_header(5, 0x0100, [1, 0, 0, 0], b"\xc0\x0c\x00\x01\x00\x01"),
            0,
        ),
        (
            "truncated question",
            with_header(6, 0x0100, [1, 0, 0, 0], &q[..q.len() - 2]),
            0,
        ),
        (
            "pointer loop in additional",
            with_header(
                7,
                0x0100,
                [1, 0, 0, 1],
                &[q.clone(), b"\xc0\x00".to_vec()].concat(),
            ),
            1,
        ),
        (
            "answer section in a query",
            with_header(8, 0x0100, [1, 1, 0, 0], &q),
            1,
        ),
    ];
    for (what, bytes, qdcount) in cases {
        let response = udp_exchange(server.addr, &bytes)
            .await
            .unwrap_or_else(|| panic!("{what}: no answer"));
        let (id, flags, qd, an, ns, ar) = header(&response);
        assert_eq!(id, u16::from_be_bytes([bytes[0], bytes[1]]), "{what}");
        assert_eq!(flags & 0x800f, 0x8001, "{what}: QR and FORMERR");
        assert_eq!((qd, an, ns, ar), (qdcount, 0, 0, 0), "{what}");
    }
    still_serving(&server).await;
    server.handle.shutdown().await;
}

#[tokio::test]
async fn opcodes_classes_and_transfers() {
    let server = TestServer::demo().await;
    // RD (0x0100) and CD (0x0010) set: under another opcode neither means anything here,
    // so the response clears them (as Knot and NSD do); QR, the opcode and NOTIMP only.
    for (opcode, name) in [(1u16, "IQUERY"), (4, "NOTIFY"), (5, "UPDATE")] {
        let bytes = with_header(9, opcode << 11 | 0x0110, [1, 0, 0, 0], &question(POD, 1));
        let response = udp_exchange(server.addr, &bytes).await.expect("answer");
        let (_, flags, qd, an, _, _) = header(&response);
        assert_eq!(flags, 0x8000 | opcode << 11 | 4, "{name}: {flags:#06x}");
        assert_eq!((qd, an), (1, 0), "{name}");
    }
    // A QUERY's own errors still echo RD and CD (RFC 1035 4.1.1).
    let bytes = with_header(9, 0x0110, [1, 1, 0, 0], &question(POD, 1));
    let response = udp_exchange(server.addr, &bytes).await.expect("answer");
    assert_eq!(header(&response).1, 0x8000 | 0x0110 | 1, "FORMERR");
    // Class CH (version.bind and friends) and an unknown class: REFUSED.
    for class in [3u16, 1234] {
        let mut q = question(POD, 1);
        let at = q.len() - 2;
        q[at..].copy_from_slice(&class.to_be_bytes());
        let response = udp_exchange(server.addr, &with_header(10, 0, [1, 0, 0, 0], &q))
            .await
            .expect("answer");
        assert_eq!(header(&response).1 & 0x000f, 5, "class {class}");
    }
    // Zone transfers, over UDP and TCP alike: REFUSED, never a zone dump.
    for qtype in [252u16, 251] {
        let bytes = raw_query(11, "cluster.local", qtype);
        let response = udp_exchange(server.addr, &bytes).await.expect("answer");
        let (_, flags, _, an, ns, _) = header(&response);
        assert_eq!((flags & 0x000f, an, ns), (5, 0, 0), "qtype {qtype}");
    }
    still_serving(&server).await;
    server.handle.shutdown().await;
}

#[tokio::test]
async fn any_gets_one_rrset_and_edns_options_are_ignored() {
    let server = TestServer::demo().await;
    // RFC 8482: one RRset, not everything the name has.
    let any = raw_query(12, "cluster.local", 255);
    let response = Message::from_vec(&udp_exchange(server.addr, &any).await.unwrap()).unwrap();
    assert_eq!(response.answers.len(), 1);
    assert_eq!(response.answers[0].record_type(), RecordType::SOA);
    // EDNS with a cookie and an unknown option: a normal answer with a plain OPT.
    let mut q = raw_query(13, POD, 1);
    q[11] = 1; // ARCOUNT
    q.extend_from_slice(b"\x00\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x14");
    q.extend_from_slice(b"\x00\x0a\x00\x08clientck"); // COOKIE, client part only
    q.extend_from_slice(b"\xfd\xe9\x00\x04test"); // an unassigned option code
    let bytes = udp_exchange(server.addr, &q).await.unwrap();
    let response = Message::from_vec(&bytes).unwrap();
    assert_eq!(response.metadata.response_code, ResponseCode::NoError);
    assert_eq!(data(&response), ["10.244.1.10"]);
    let edns = response.edns.expect("OPT echoed");
    assert!(edns.options().as_ref().is_empty(), "no options sent back");
    still_serving(&server).await;
    server.handle.shutdown().await;
}

/// Asks for web-0 on an open DNS-over-TCP connection.
async fn ask(stream: &mut TcpStream) -> Message {
    crate::support::tcp_send(stream, &raw_query(14, POD, 1)).await;
    Message::from_vec(&crate::support::tcp_receive(stream).await).unwrap()
}

#[tokio::test]
async fn tcp_abuse_is_contained() {
    let mut config = loopback_config();
    config.tcp_idle_timeout = Duration::from_millis(300);
    config.max_tcp_connections = 2;
    config.max_connections_per_client = 2;
    let server = TestServer::demo_with(config).await;
    let closed = |mut stream: TcpStream| async move {
        let mut buf = [0u8; 64];
        let read = tokio::time::timeout(Duration::from_secs(3), stream.read(&mut buf)).await;
        matches!(read, Ok(Ok(0)) | Ok(Err(_)))
    };
    // A 64 KB length prefix with a short body: closed once the idle timeout passes.
    let mut short = TcpStream::connect(server.addr).await.unwrap();
    short.write_all(&[0xff, 0xff, 1, 2, 3]).await.unwrap();
    assert!(closed(short).await, "short body");
    // Slowloris: one byte of the length, then nothing.
    let mut slow = TcpStream::connect(server.addr).await.unwrap();
    slow.write_all(&[0]).await.unwrap();
    assert!(closed(slow).await, "slowloris");

    // Two connections per client: a third from the same address is closed at once, the
    // first two served.
    let mut first = TcpStream::connect(server.addr).await.unwrap();
    let mut second = TcpStream::connect(server.addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let third = TcpStream::connect(server.addr).await.unwrap();
    assert!(closed(third).await, "third connection refused");
    for stream in [&mut first, &mut second] {
        assert_eq!(data(&ask(stream).await), ["10.244.1.10"]);
    }
    // Two in all: a client from another address takes the place of the connection idle
    // the longest (the first), and is answered; the second stays.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(([127, 0, 0, 2], 0).into()).unwrap();
    let mut newcomer = socket.connect(server.addr).await.unwrap();
    assert_eq!(data(&ask(&mut newcomer).await), ["10.244.1.10"]);
    assert!(closed(first).await, "the longest idle connection is closed");
    assert_eq!(data(&ask(&mut second).await), ["10.244.1.10"]);
    still_serving(&server).await;
    server.handle.shutdown().await;
}
