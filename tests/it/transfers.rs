//! Zone transfers on the wire, read with hickory's decoder: an AXFR's framing and order,
//! and a transfer of 100k endpoints while the UDP path is under load.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use hickory_net::proto::op::{Message, ResponseCode};
use hickory_net::proto::rr::{RData, RecordType};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use tokio::net::{TcpStream, UdpSocket};

use headless_dns::Feed;

use crate::support::{TestServer, loopback_config, query, raw_query, tcp_receive, tcp_send};

/// The AXFR of `zone` from `addr`: every message, until the SOA that closes it.
async fn axfr(addr: SocketAddr, zone: &str) -> Vec<Message> {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let request = query(zone, RecordType::AXFR, None);
    tcp_send(&mut stream, &request.to_vec().expect("encodes")).await;
    let mut messages = Vec::new();
    let mut soas = 0;
    while soas < 2 {
        let bytes = tcp_receive(&mut stream).await;
        let message = Message::from_vec(&bytes).expect("a transfer message parses");
        assert_eq!(message.metadata.response_code, ResponseCode::NoError);
        soas += message
            .answers
            .iter()
            .filter(|r| r.record_type() == RecordType::SOA)
            .count();
        messages.push(message);
    }
    messages
}

fn records(messages: &[Message]) -> Vec<String> {
    messages
        .iter()
        .flat_map(|m| m.answers.iter())
        .map(|r| format!("{} {} {} {}", r.name, r.ttl, r.record_type(), r.data))
        .collect()
}

#[tokio::test]
async fn an_axfr_is_framed_and_ordered_as_rfc_5936_asks() {
    let mut config = loopback_config();
    config.transfer_allow = vec!["127.0.0.1/32".parse().expect("literal")];
    let server = TestServer::demo_with(config).await;
    let first = axfr(server.addr, "cluster.local.").await;
    let lines = records(&first);
    // The SOA first and last, and nowhere else.
    assert!(lines[0].contains(" SOA "), "{lines:?}");
    assert!(lines[lines.len() - 1].contains(" SOA "), "{lines:?}");
    assert_eq!(lines.iter().filter(|l| l.contains(" SOA ")).count(), 2);
    // What a query answers is in the zone: a pod, a Service's members, SRV, the apex NS.
    for expected in [
        "web-0.nginx.demo.svc.cluster.local. 5 A 10.244.1.10",
        "nginx.demo.svc.cluster.local. 5 A 10.244.1.10",
        "_web._tcp.nginx.demo.svc.cluster.local. 5 SRV",
        "cluster.local. 5 NS ns.dns.cluster.local.",
    ] {
        assert!(
            lines.iter().any(|l| l.starts_with(expected)),
            "{expected} in {lines:#?}"
        );
    }
    // The first message carries the question, every message the request's ID.
    assert_eq!(first[0].queries.len(), 1);
    assert!(first.iter().all(|m| m.metadata.id == 0x4242));
    // The same objects, the same transfer.
    let again = axfr(server.addr, "cluster.local.").await;
    assert_eq!(records(&again), lines);
    server.handle.shutdown().await;
}

/// `services` headless Services of `pods` pods each in namespace `load`: `s<i>-<ordinal>`
/// at 10.<i / 256>.<i % 256>.<ordinal + 1> (data only, never a target).
fn load_cluster(feed: &Feed, services: u32, pods: u32) {
    let mut manifests = Vec::new();
    for s in 0..services {
        let name = format!("s{s}");
        let service: Service = crate::support::object(serde_json::json!({
            "metadata": {"name": name, "namespace": "load"},
            "spec": {"clusterIP": "None", "ports": [{"name": "web", "port": 80}]}
        }));
        let endpoints: Vec<serde_json::Value> = (0..pods)
            .map(|o| {
                serde_json::json!({
                    "addresses": [format!("10.{}.{}.{}", s / 256, s % 256, o + 1)],
                    "hostname": format!("s{s}-{o}"),
                })
            })
            .collect();
        let slice: EndpointSlice = crate::support::object(serde_json::json!({
            "metadata": {
                "name": format!("{name}-x"),
                "namespace": "load",
                "labels": {"kubernetes.io/service-name": name}
            },
            "addressType": "IPv4",
            "endpoints": endpoints,
            "ports": [{"name": "web", "port": 80}]
        }));
        manifests.push(service.into());
        manifests.push(slice.into());
    }
    feed.replace_all(manifests).expect("valid objects");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transfer_of_100k_endpoints_completes_while_every_udp_query_is_answered() {
    const SERVICES: u32 = 1000;
    let (feed, source) = Feed::new();
    let mut config = loopback_config();
    config.transfer_allow = vec!["127.0.0.1/32".parse().expect("literal")];
    let server = TestServer::start(config, source).await;
    load_cluster(&feed, SERVICES, 100);
    let loaded = crate::support::eventually(Duration::from_secs(120), || async {
        server.handle.is_ready()
    })
    .await;
    assert!(loaded, "100k endpoints load");

    // One UDP client asks pod names, one query at a time, until the transfer is done
    // (bounded: 60 s). A query without an answer within 2 s is lost.
    let done = Arc::new(AtomicBool::new(false));
    let (answered, lost) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let addr = server.addr;
    let load = tokio::spawn({
        let (done, answered, lost) = (done.clone(), answered.clone(), lost.clone());
        async move {
            let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
            let started = std::time::Instant::now();
            let mut buf = vec![0u8; 4096];
            let mut n: u32 = 0;
            while !done.load(Ordering::Relaxed) && started.elapsed() < Duration::from_secs(60) {
                let s = n % SERVICES;
                let name = format!("s{s}-{}.s{s}.load.svc.cluster.local.", n % 100);
                let id = (n % 65536) as u16;
                socket
                    .send_to(&raw_query(id, &name, 1), addr)
                    .await
                    .expect("send");
                let wanted = [10, (s / 256) as u8, (s % 256) as u8, (n % 100 + 1) as u8];
                match tokio::time::timeout(Duration::from_secs(2), socket.recv(&mut buf)).await {
                    Ok(Ok(len))
                        if buf[..len].ends_with(&wanted) && buf[..2] == id.to_be_bytes() =>
                    {
                        answered.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {
                        lost.fetch_add(1, Ordering::Relaxed);
                    }
                }
                n += 1;
            }
        }
    });
    // Let the load start, then transfer the whole zone.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = answered.load(Ordering::Relaxed);
    let messages = axfr(server.addr, "cluster.local.").await;
    let during = answered.load(Ordering::Relaxed) - before;
    done.store(true, Ordering::Relaxed);
    load.await.expect("the load task ends");

    let pods = messages
        .iter()
        .flat_map(|m| m.answers.iter())
        .filter(|r| {
            matches!(r.data, RData::A(_))
                && r.name.num_labels() == 6
                && r.name.to_ascii().starts_with('s')
        })
        .count();
    assert_eq!(pods, 100_000, "every pod's own A record is in the transfer");
    assert_eq!(lost.load(Ordering::Relaxed), 0, "no UDP query lost");
    assert!(
        during > 0,
        "the UDP load ran while the zone was transferred"
    );
    server.handle.shutdown().await;
}

/// An IXFR for `zone` whose authority SOA carries `serial` (none: no authority at all).
fn ixfr(zone: &str, serial: Option<u32>) -> Vec<u8> {
    let mut msg = raw_query(0x5151, zone, 251);
    if let Some(serial) = serial {
        msg[9] = 1; // NSCOUNT
        msg.extend_from_slice(&[0xC0, 0x0C, 0, 6, 0, 1, 0, 0, 0, 0, 0, 22, 0, 0]);
        msg.extend_from_slice(&serial.to_be_bytes());
        msg.extend_from_slice(&[0; 16]);
    }
    msg
}

/// The first message of the answer to `request` over a new TCP connection.
async fn first_message(addr: SocketAddr, request: &[u8]) -> Message {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    tcp_send(&mut stream, request).await;
    Message::from_vec(&tcp_receive(&mut stream).await).expect("the response parses")
}

#[tokio::test]
async fn odd_transfer_requests_get_the_rfc_error_and_the_server_keeps_serving() {
    let mut config = loopback_config();
    config.transfer_allow = vec!["127.0.0.1/32".parse().expect("literal")];
    let server = TestServer::demo_with(config).await;
    let serial = server.handle.serial();
    // IXFR without the client's SOA: FORMERR (RFC 1995 3).
    let bare = first_message(server.addr, &ixfr("cluster.local", None)).await;
    assert_eq!(bare.metadata.response_code, ResponseCode::FormErr);
    // A serial from the future (or garbage that reads as one): up to date, the SOA alone.
    let ahead = first_message(
        server.addr,
        &ixfr("cluster.local", Some(serial.wrapping_add(1000))),
    )
    .await;
    assert_eq!(ahead.metadata.response_code, ResponseCode::NoError);
    assert_eq!(ahead.answers.len(), 1);
    assert_eq!(ahead.answers[0].record_type(), RecordType::SOA);
    // A serial the journal does not hold: the whole zone, SOA first.
    let old = first_message(
        server.addr,
        &ixfr("cluster.local", Some(serial.wrapping_sub(1000))),
    )
    .await;
    assert_eq!(old.answers[0].record_type(), RecordType::SOA);
    assert!(old.answers.len() > 100, "the whole zone");
    // A transfer of a name below the apex, or outside every zone: NOTAUTH (RFC 5936 2.2.1).
    for name in ["demo.svc.cluster.local", "example.com"] {
        let response = first_message(server.addr, &raw_query(0x5252, name, 252)).await;
        assert_eq!(
            response.metadata.response_code,
            ResponseCode::NotAuth,
            "{name}"
        );
    }
    // IXFR over UDP: the SOA alone at a zone's apex, NOTAUTH below it.
    for (zone, rcode, answers) in [("cluster.local", 0, 1), ("demo.svc.cluster.local", 9, 0)] {
        let bytes =
            crate::support::udp_exchange(server.addr, &ixfr(zone, Some(serial.wrapping_sub(1000))))
                .await
                .expect("an answer");
        let response = Message::from_vec(&bytes).expect("parses");
        assert_eq!(u16::from(response.metadata.response_code), rcode, "{zone}");
        assert_eq!(response.answers.len(), answers, "{zone}");
    }
    // AXFR over UDP: REFUSED (RFC 5936 4.2: TCP only).
    let udp = crate::support::udp_exchange(server.addr, &raw_query(0x5353, "cluster.local", 252))
        .await
        .expect("an answer");
    assert_eq!(udp[3] & 0x0F, 5);
    // A request cut short inside its question: FORMERR, and the connection still serves.
    let mut stream = TcpStream::connect(server.addr).await.expect("connect");
    let full = raw_query(0x5454, "cluster.local", 252);
    tcp_send(&mut stream, &full[..full.len() - 3]).await;
    let cut = Message::from_vec(&tcp_receive(&mut stream).await).expect("parses");
    assert_eq!(cut.metadata.response_code, ResponseCode::FormErr);
    tcp_send(
        &mut stream,
        &raw_query(0x5555, "web-0.nginx.demo.svc.cluster.local", 1),
    )
    .await;
    let after = Message::from_vec(&tcp_receive(&mut stream).await).expect("parses");
    assert_eq!(crate::support::data(&after), ["10.244.1.10"]);
    server.handle.shutdown().await;
}

/// A NOTIFY as a secondary reads it: its zone, the serial of the SOA it carries, whether
/// it is signed, and the answer that acknowledges it.
struct Notify {
    zone: String,
    serial: u32,
    signed: bool,
    acknowledgement: Vec<u8>,
}

async fn next_notify(socket: &UdpSocket) -> Option<(Notify, SocketAddr)> {
    let mut buf = vec![0u8; 4096];
    let (len, from) = tokio::time::timeout(Duration::from_secs(3), socket.recv_from(&mut buf))
        .await
        .ok()?
        .ok()?;
    let bytes = &buf[..len];
    let message = Message::from_vec(bytes).expect("a NOTIFY parses");
    assert_eq!(u8::from(message.metadata.op_code), 4, "opcode NOTIFY");
    let serial = message.answers.iter().find_map(|r| match &r.data {
        RData::SOA(soa) => Some(soa.serial),
        _ => None,
    })?;
    let signed = message.signature.is_some()
        || message
            .additionals
            .iter()
            .any(|r| r.record_type() == RecordType::TSIG);
    // The acknowledgement: the header with QR set and the question, nothing else.
    let question_end = 12 + bytes[12..].iter().position(|b| *b == 0)? + 1 + 4;
    let mut acknowledgement = bytes[..question_end].to_vec();
    acknowledgement[2] |= 0x80;
    acknowledgement[6..12].fill(0);
    let notify = Notify {
        zone: message.queries[0].name.to_ascii(),
        serial,
        signed,
        acknowledgement,
    };
    Some((notify, from))
}

#[tokio::test]
async fn notify_is_signed_retried_until_answered_and_one_per_burst() {
    let secondary = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let (feed, source) = Feed::new();
    let mut config = loopback_config();
    config.reverse_zones = vec!["10.0.0.0/8".parse().expect("literal")];
    config.transfer_allow = vec!["127.0.0.1/32".parse().expect("literal")];
    config.tsig_keys = vec![
        "xfr-key:hmac-sha256:aGVhZGxlc3MtZG5zIHRlc3Qga2V5IDEyMzQ1Njc4OTA="
            .parse()
            .expect("literal"),
    ];
    config.notify = vec![secondary.local_addr().expect("bound")];
    let server = TestServer::start(config, source).await;
    load_cluster(&feed, 1, 100);

    // The first load's NOTIFYs: one per zone, signed, with the serial served. Left
    // unanswered, each comes again (after 1 s); answered then, it stops.
    let mut first = std::collections::BTreeMap::new();
    while first.len() < 2 {
        let (notify, _) = next_notify(&secondary).await.expect("a NOTIFY per zone");
        assert!(notify.signed, "NOTIFY carries the TSIG");
        assert_eq!(notify.serial, server.handle.serial());
        first.insert(notify.zone, notify.serial);
    }
    assert_eq!(
        first.keys().collect::<Vec<_>>(),
        ["10.in-addr.arpa.", "cluster.local."]
    );
    let mut retried = std::collections::BTreeSet::new();
    while retried.len() < 2 {
        let (notify, from) = next_notify(&secondary).await.expect("a retry per zone");
        assert_eq!(
            first.get(&notify.zone),
            Some(&notify.serial),
            "the same NOTIFY"
        );
        secondary
            .send_to(&notify.acknowledgement, from)
            .await
            .expect("send");
        retried.insert(notify.zone);
    }
    let quiet = next_notify(&secondary).await;
    assert!(quiet.is_none(), "answered NOTIFYs are not sent again");

    // A burst of twenty changes: the NOTIFYs that follow carry the last serial, about
    // one per zone, not twenty.
    let before = server.handle.serial();
    for ordinal in 0..20u8 {
        let slice: EndpointSlice = crate::support::object(serde_json::json!({
            "metadata": {"name": "s0-x", "namespace": "load",
                         "labels": {"kubernetes.io/service-name": "s0"}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": [format!("10.9.9.{}", ordinal + 1)], "hostname": "s0-0"}],
            "ports": [{"name": "web", "port": 80}]
        }));
        feed.apply(slice).expect("valid");
    }
    let mut notifies = Vec::new();
    while let Some((notify, from)) = next_notify(&secondary).await {
        secondary
            .send_to(&notify.acknowledgement, from)
            .await
            .expect("send");
        notifies.push((notify.zone, notify.serial));
    }
    let last = server.handle.serial();
    assert_ne!(last, before, "the burst moved the serial");
    assert!(
        (2..=4).contains(&notifies.len()),
        "a NOTIFY or two per zone: {notifies:?}"
    );
    for zone in ["cluster.local.", "10.in-addr.arpa."] {
        assert!(
            notifies.contains(&(zone.to_owned(), last)),
            "{zone}: {notifies:?}"
        );
    }
    server.handle.shutdown().await;
}

#[tokio::test]
async fn a_signed_answer_that_cannot_carry_its_tsig_over_udp_is_the_question_and_tc() {
    let (feed, source) = Feed::new();
    let mut config = loopback_config();
    config.tsig_keys = vec![
        "xfr-key:hmac-sha256:aGVhZGxlc3MtZG5zIHRlc3Qga2V5IDEyMzQ1Njc4OTA="
            .parse()
            .expect("literal"),
    ];
    let server = TestServer::start(config, source).await;
    // 26 addresses: 470 octets with EDNS, which fit 512, and the TSIG's 80 do not.
    load_cluster(&feed, 1, 26);
    let ready = crate::support::eventually(Duration::from_secs(10), || async {
        server.handle.is_ready()
    })
    .await;
    assert!(ready);
    let key = "hmac-sha256:xfr-key:aGVhZGxlc3MtZG5zIHRlc3Qga2V5IDEyMzQ1Njc4OTA=";
    let name = "s0.load.svc.cluster.local";
    for edns in ["+bufsize=512", "+noedns"] {
        // RFC 8945 5.3: the question and the TSIG, TC set, NOERROR; dig checks the MAC.
        let udp =
            crate::support::dig(server.addr, &["-y", key, "+notcp", "+ignore", edns, name]).await;
        assert!(
            udp.contains(" tc ") || udp.contains(" tc;"),
            "{edns}: {udp}"
        );
        assert!(
            udp.contains("ANSWER: 0") && udp.contains("status: NOERROR"),
            "{edns}: {udp}"
        );
        assert!(
            !udp.contains("Couldn't verify") && udp.contains("TSIG"),
            "{edns}: {udp}"
        );
        let size: usize = udp
            .split("MSG SIZE  rcvd: ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .expect("dig prints the size");
        assert!(size <= 512, "{edns}: {size} octets");
        // Without +ignore, dig asks again over TCP: all 26, signed.
        let tcp = crate::support::dig(server.addr, &["-y", key, edns, name]).await;
        assert!(
            tcp.contains("ANSWER: 26") && !tcp.contains("Couldn't verify"),
            "{tcp}"
        );
    }
    server.handle.shutdown().await;
}
