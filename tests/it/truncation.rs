//! UDP answers too large for the client (`--udp-truncation`): by default TC and the records
//! that fit, in ordinal order, so that resolvers without TCP (busybox nslookup, musl before
//! 1.2.4) get part of a big headless Service instead of nothing; `empty` sends TC alone.
//! Clients with TCP still get everything.

use headless_dns::serve::answer::UdpTruncation;

use crate::support::{TestServer, dig, loopback_config, run};

/// db-N's address in config/db.yaml: deliberately in reverse of ordinal order.
fn db_ip(ordinal: u32) -> String {
    format!("10.244.{}.{}", 20 + ordinal % 4, 200 - ordinal)
}

/// The addresses of the A records in dig's answer section, in order.
fn addresses(dig_output: &str) -> Vec<String> {
    let mut in_answer = false;
    let mut out = Vec::new();
    for line in dig_output.lines() {
        if line.starts_with(";; ANSWER SECTION") {
            in_answer = true;
        } else if line.trim().is_empty() {
            in_answer = false;
        } else if in_answer && let Some(ip) = line.split_whitespace().nth(4) {
            out.push(ip.to_owned());
        }
    }
    out
}

#[tokio::test]
async fn busybox_nslookup_prints_the_addresses_that_fit_of_a_100_pod_service() {
    let server = TestServer::demo().await;
    let target = server.addr.to_string();
    // busybox asks without EDNS and has no TCP fallback: 512 bytes, 29 addresses.
    let output = run(
        "busybox",
        &["nslookup", "db.demo.svc.cluster.local", &target],
    )
    .await;
    let printed: Vec<&str> = output
        .lines()
        .filter_map(|l| l.strip_prefix("Address: "))
        .collect();
    let expected: Vec<String> = (0..29).map(db_ip).collect();
    assert_eq!(printed, expected, "{output}");
    server.handle.shutdown().await;
}

#[tokio::test]
async fn dig_sees_tc_and_the_first_records_in_ordinal_order() {
    let server = TestServer::demo().await;
    let name = "db.demo.svc.cluster.local";
    // +ignore keeps the truncated UDP answer: without EDNS, 512 bytes.
    let plain = dig(server.addr, &["+ignore", "+noedns", name]).await;
    assert!(plain.contains("flags: qr aa tc rd;"), "{plain}");
    assert!(
        plain.contains("ANSWER: 29, AUTHORITY: 0, ADDITIONAL: 0"),
        "{plain}"
    );
    let first: Vec<String> = (0..29).map(db_ip).collect();
    assert_eq!(addresses(&plain), first);
    // With EDNS (dig offers 1232 bytes): more of them, the same order.
    let edns = dig(server.addr, &["+ignore", name]).await;
    assert!(edns.contains("flags: qr aa tc rd;"), "{edns}");
    let more: Vec<String> = (0..73).map(db_ip).collect();
    assert_eq!(addresses(&edns), more);
    // Without +ignore dig retries over TCP: all 100.
    let whole = dig(server.addr, &[name]).await;
    assert!(!whole.contains(" tc "), "{whole}");
    let all: Vec<String> = (0..100).map(db_ip).collect();
    assert_eq!(addresses(&whole), all);
    // SRV: the records that fit, in ordinal order, and no additional section.
    let srv = dig(
        server.addr,
        &[
            "+ignore",
            "+noedns",
            "SRV",
            "_postgres._tcp.db.demo.svc.cluster.local",
        ],
    )
    .await;
    assert!(srv.contains("flags: qr aa tc rd;"), "{srv}");
    assert!(srv.contains("ADDITIONAL: 0"), "{srv}");
    let targets: Vec<&str> = srv
        .lines()
        .filter(|l| !l.starts_with(';') && l.split_whitespace().nth(3) == Some("SRV"))
        .filter_map(|l| l.split_whitespace().last())
        .collect();
    assert!(targets.len() > 5, "{srv}");
    for (ordinal, target) in targets.iter().enumerate() {
        assert_eq!(*target, format!("db-{ordinal}.db.demo.svc.cluster.local."));
    }
    server.handle.shutdown().await;
}

#[tokio::test]
async fn udp_truncation_empty_sends_tc_alone() {
    let mut config = loopback_config();
    config.udp_truncation = UdpTruncation::Empty;
    let server = TestServer::demo_with(config).await;
    let name = "db.demo.svc.cluster.local";
    let plain = dig(server.addr, &["+ignore", "+noedns", name]).await;
    assert!(plain.contains("flags: qr aa tc rd;"), "{plain}");
    assert!(plain.contains("ANSWER: 0, AUTHORITY: 0"), "{plain}");
    // Which is why busybox prints no address for it.
    let target = server.addr.to_string();
    let output = run("busybox", &["nslookup", name, &target]).await;
    assert!(!output.contains("Address: 10."), "{output}");
    // dig still gets all 100 over TCP.
    let whole = dig(server.addr, &[name]).await;
    assert_eq!(addresses(&whole).len(), 100);
    server.handle.shutdown().await;
}
