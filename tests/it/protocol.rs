//! The protocol around the records: truncation and TCP, EDNS, case, error codes, and what
//! never gets an answer. Raw messages over real sockets, parsed by hickory-proto.

use std::time::Duration;

use hickory_net::proto::op::{Message, OpCode, ResponseCode};
use hickory_net::proto::rr::RecordType;
use tokio::net::TcpStream;

use crate::support::{
    TestServer, data, encode, query, tcp_message, tcp_receive, tcp_send, udp_exchange, udp_message,
};

/// db-N's address in config/db.yaml: deliberately in reverse of ordinal order.
fn db_ip(ordinal: u32) -> String {
    format!("10.244.{}.{}", 20 + ordinal % 4, 200 - ordinal)
}

#[tokio::test]
async fn large_answer_truncates_over_udp_and_is_complete_over_tcp() {
    let server = TestServer::demo().await;
    let name = "db.demo.svc.cluster.local.";
    // Without EDNS a UDP answer is at most 512 bytes: TC, and the 29 records that fit
    // after the 43-byte header and question (16 bytes each), db-0 first.
    let udp = udp_message(server.addr, &query(name, RecordType::A, None)).await;
    assert!(udp.metadata.truncation);
    let first: Vec<String> = (0..29).map(db_ip).collect();
    assert_eq!(data(&udp), first);
    // With EDNS at 1232 bytes, 100 A records (1.7 KB) still do not fit: 73 do, with OPT.
    let edns = udp_message(server.addr, &query(name, RecordType::A, Some(1232))).await;
    assert!(edns.metadata.truncation);
    assert_eq!(edns.edns.as_ref().map(|e| e.max_payload()), Some(1232));
    let more: Vec<String> = (0..73).map(db_ip).collect();
    assert_eq!(data(&edns), more);
    // Over TCP: all 100, db-0 .. db-99 in ordinal order.
    let tcp = tcp_message(server.addr, &query(name, RecordType::A, None)).await;
    assert!(!tcp.metadata.truncation);
    let expected: Vec<String> = (0..100).map(db_ip).collect();
    assert_eq!(data(&tcp), expected);
    // A client that allows 4096 bytes is held to the server's --max-udp-size (1232).
    let capped = udp_message(server.addr, &query(name, RecordType::A, Some(4096))).await;
    assert!(capped.metadata.truncation);
    server.handle.shutdown().await;
}

/// The demo cluster on a server that allows large UDP answers.
async fn large_udp_server() -> TestServer {
    let mut config = crate::support::loopback_config();
    config.max_udp_size = 8192;
    TestServer::demo_with(config).await
}

#[tokio::test]
async fn large_udp_answers_when_both_sides_allow_them() {
    let server = large_udp_server().await;
    let big = udp_message(
        server.addr,
        &query("db.demo.svc.cluster.local.", RecordType::A, Some(4096)),
    )
    .await;
    assert!(!big.metadata.truncation);
    assert_eq!(big.answers.len(), 100);
    assert_eq!(big.edns.as_ref().map(|e| e.max_payload()), Some(8192));
    server.handle.shutdown().await;
}

#[tokio::test]
async fn no_udp_answer_exceeds_what_the_query_allowed() {
    let server = TestServer::demo().await;
    for (edns, limit) in [
        (None, 512),
        (Some(512), 512),
        (Some(1232), 1232),
        (Some(100), 512),
    ] {
        for name in [
            "db.demo.svc.cluster.local.",
            "_postgres._tcp.db.demo.svc.cluster.local.",
        ] {
            for rtype in [RecordType::A, RecordType::SRV, RecordType::ANY] {
                let bytes = udp_exchange(server.addr, &encode(&query(name, rtype, edns)))
                    .await
                    .expect("answer");
                assert!(
                    bytes.len() <= limit,
                    "{name} {rtype} {edns:?}: {} bytes",
                    bytes.len()
                );
            }
        }
    }
    server.handle.shutdown().await;
}

#[tokio::test]
async fn srv_drops_additional_before_truncating() {
    let server = large_udp_server().await;
    // 100 SRV records (about 5 KB) fit in 6000 bytes; their 100 addresses do not as well.
    let name = "_postgres._tcp.db.demo.svc.cluster.local.";
    let response = udp_message(server.addr, &query(name, RecordType::SRV, Some(6000))).await;
    assert!(!response.metadata.truncation);
    assert_eq!(response.answers.len(), 100);
    assert_eq!(
        response.additionals.len(),
        0,
        "OPT is not listed with the records"
    );
    assert!(response.edns.is_some());
    let tcp = tcp_message(server.addr, &query(name, RecordType::SRV, None)).await;
    assert_eq!(tcp.answers.len(), 100);
    assert_eq!(tcp.additionals.len(), 100);
    assert_eq!(
        tcp.answers[10].data.to_string(),
        "0 1 5432 db-10.db.demo.svc.cluster.local."
    );
    server.handle.shutdown().await;
}

#[tokio::test]
async fn pipelined_tcp_queries_are_answered_in_order() {
    let server = TestServer::demo().await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    let names = ["web-0", "web-1", "web-2", "web-0"];
    let mut batch = Vec::new();
    for (i, host) in names.iter().enumerate() {
        let mut q = query(
            &format!("{host}.nginx.demo.svc.cluster.local."),
            RecordType::A,
            None,
        );
        q.metadata.id = i as u16;
        let bytes = encode(&q);
        batch.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
        batch.extend_from_slice(&bytes);
    }
    // All four in one write, before reading any answer.
    tokio::io::AsyncWriteExt::write_all(&mut stream, &batch)
        .await
        .unwrap();
    let mut got = Vec::new();
    for _ in &names {
        let response = Message::from_vec(&tcp_receive(&mut stream).await).unwrap();
        got.push((response.metadata.id, data(&response)[0].clone()));
    }
    assert_eq!(
        got,
        [
            (0, "10.244.1.10".to_string()),
            (1, "10.244.2.11".to_string()),
            (2, "10.244.3.12".to_string()),
            (3, "10.244.1.10".to_string())
        ]
    );
    server.handle.shutdown().await;
}

#[tokio::test]
async fn idle_tcp_connections_are_closed() {
    let mut config = crate::support::loopback_config();
    config.tcp_idle_timeout = Duration::from_millis(300);
    let server = TestServer::demo_with(config).await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    tcp_send(
        &mut stream,
        &encode(&query(
            "web-0.nginx.demo.svc.cluster.local.",
            RecordType::A,
            None,
        )),
    )
    .await;
    let _ = tcp_receive(&mut stream).await;
    let mut buf = [0u8; 1];
    let closed = tokio::time::timeout(
        Duration::from_secs(3),
        tokio::io::AsyncReadExt::read(&mut stream, &mut buf),
    )
    .await;
    assert!(
        matches!(closed, Ok(Ok(0))),
        "closed after idling: {closed:?}"
    );
    server.handle.shutdown().await;
}

#[tokio::test]
async fn question_is_echoed_as_asked() {
    let server = TestServer::demo().await;
    let name = "WeB-1.NGINX.Demo.svc.CLUSTER.local.";
    let bytes = udp_exchange(server.addr, &crate::support::raw_query(0x4242, name, 1))
        .await
        .unwrap();
    // The exact bytes of the question come back, case and all.
    assert!(bytes.windows(6).any(|w| w == b"\x05WeB-1"), "case kept");
    let response = Message::from_vec(&bytes).unwrap();
    assert_eq!(response.queries[0].name().to_string(), name);
    assert_eq!(data(&response), ["10.244.2.11"]);
    assert_eq!(response.metadata.id, 0x4242);
    assert!(response.metadata.recursion_desired, "RD copied");
    assert!(!response.metadata.recursion_available);
    server.handle.shutdown().await;
}

#[tokio::test]
async fn out_of_zone_is_refused() {
    let server = TestServer::demo().await;
    for (name, rtype) in [
        (".", RecordType::NS), // CoreDNS forward's health check
        ("example.com.", RecordType::A),
        ("local.", RecordType::SOA),
        ("cluster.local.example.", RecordType::A),
    ] {
        let response = udp_message(server.addr, &query(name, rtype, None)).await;
        assert_eq!(
            response.metadata.response_code,
            ResponseCode::Refused,
            "{name}"
        );
        assert!(!response.metadata.authoritative, "{name}");
    }
    server.handle.shutdown().await;
}

#[tokio::test]
async fn errors_and_silence() {
    let server = TestServer::demo().await;
    // Garbage with a readable header: FORMERR.
    let mut garbage = encode(&query(
        "web-0.nginx.demo.svc.cluster.local.",
        RecordType::A,
        None,
    ));
    garbage.truncate(20);
    let response = udp_exchange(server.addr, &garbage).await.expect("FORMERR");
    let parsed = Message::from_vec(&response).unwrap();
    assert_eq!(parsed.metadata.response_code, ResponseCode::FormErr);
    assert_eq!(parsed.metadata.id, 0x4242);
    // Shorter than a header: dropped.
    assert_eq!(udp_exchange(server.addr, b"\x12\x34\x00").await, None);
    // A response (QR=1) is never answered.
    let mut response_bit = query("web-0.nginx.demo.svc.cluster.local.", RecordType::A, None);
    response_bit.metadata.message_type = hickory_net::proto::op::MessageType::Response;
    assert_eq!(
        udp_exchange(server.addr, &encode(&response_bit)).await,
        None
    );
    // Opcodes other than QUERY: NOTIMP.
    let mut notify = query("cluster.local.", RecordType::SOA, None);
    notify.metadata.op_code = OpCode::Notify;
    let parsed = udp_message(server.addr, &notify).await;
    assert_eq!(parsed.metadata.response_code, ResponseCode::NotImp);
    assert_eq!(parsed.metadata.op_code, OpCode::Notify);
    // EDNS version 1: BADVERS.
    let mut v1 = query(
        "web-0.nginx.demo.svc.cluster.local.",
        RecordType::A,
        Some(1232),
    );
    if let Some(edns) = v1.edns.as_mut() {
        edns.set_version(1);
    }
    let parsed = udp_message(server.addr, &v1).await;
    // 16 is BADVERS in an OPT (hickory names the number BADSIG, its TSIG meaning).
    assert_eq!(u16::from(parsed.metadata.response_code), 16);
    assert_eq!(parsed.edns.as_ref().map(|e| e.version()), Some(0));
    // No zone transfers.
    let axfr = tcp_message(
        server.addr,
        &query("cluster.local.", RecordType::AXFR, None),
    )
    .await;
    assert_eq!(axfr.metadata.response_code, ResponseCode::Refused);
    // Still answering normally after all that.
    let ok = udp_message(
        server.addr,
        &query("web-0.nginx.demo.svc.cluster.local.", RecordType::A, None),
    )
    .await;
    assert_eq!(data(&ok), ["10.244.1.10"]);
    server.handle.shutdown().await;
}
