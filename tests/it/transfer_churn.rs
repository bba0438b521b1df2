//! A zone transfer of 100k endpoints while the manifests change every 100 ms: the AXFR
//! completes with the zone of its serial (pinned, `store::pinned`), and a secondary that
//! took it follows by IXFR to exactly what a later AXFR holds.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use hickory_net::proto::op::{Message, ResponseCode};
use hickory_net::proto::rr::{RData, Record, RecordType};
use serde_json::json;
use tokio::net::TcpStream;

use headless_dns::Source;

use crate::support::{TestServer, eventually, loopback_config, query, tcp_receive, tcp_send};

const SERVICES: u32 = 1000;
const PODS: u32 = 100;

/// The manifests of `SERVICES` headless Services of `PODS` pods in namespace `load`, as one
/// `kind: List` (data only: the addresses are never targets).
fn cluster() -> serde_json::Value {
    let mut items = Vec::new();
    for s in 0..SERVICES {
        let name = format!("s{s}");
        items.push(json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": "load"},
            "spec": {"clusterIP": "None", "ports": [{"name": "web", "port": 80}]}
        }));
        let endpoints: Vec<_> = (0..PODS)
            .map(|o| {
                json!({
                    "addresses": [format!("10.{}.{}.{}", s / 256, s % 256, o + 1)],
                    "hostname": format!("s{s}-{o}")
                })
            })
            .collect();
        items.push(json!({
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": format!("{name}-x"), "namespace": "load",
                         "labels": {"kubernetes.io/service-name": name}},
            "addressType": "IPv4",
            "endpoints": endpoints,
            "ports": [{"name": "web", "port": 80}]
        }));
    }
    json!({"apiVersion": "v1", "kind": "List", "items": items})
}

/// Service `churn` whose two pods' addresses carry the change's number `n`: a rolling
/// restart's worth of change, one per write.
fn churn(n: u32) -> serde_json::Value {
    let address = |net: u32| format!("10.{net}.{}.{}", (n / 250) % 250, n % 250);
    json!({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "v1", "kind": "Service",
         "metadata": {"name": "churn", "namespace": "load"},
         "spec": {"clusterIP": "None", "ports": [{"name": "web", "port": 80}]}},
        {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
         "metadata": {"name": "churn-x", "namespace": "load",
                      "labels": {"kubernetes.io/service-name": "churn"}},
         "addressType": "IPv4",
         "endpoints": [
             {"addresses": [address(250)], "hostname": "churn-0"},
             {"addresses": [address(251)], "hostname": "churn-1"}
         ],
         "ports": [{"name": "web", "port": 80}]}
    ]})
}

/// Sends `request` and reads the messages of a transfer until the SOA that ends it: the
/// second SOA of an AXFR, or the closing SOA of an IXFR (whose first record is the new SOA).
async fn transfer(addr: SocketAddr, request: &Message) -> Vec<Record> {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    tcp_send(&mut stream, &request.to_vec().expect("encodes")).await;
    let mut records: Vec<Record> = Vec::new();
    loop {
        let bytes = tokio::time::timeout(Duration::from_secs(60), tcp_receive(&mut stream))
            .await
            .expect("the transfer goes on");
        let message = Message::from_vec(&bytes).expect("a transfer message parses");
        assert_eq!(message.metadata.response_code, ResponseCode::NoError);
        records.extend(message.answers.iter().cloned());
        let first = records.first().and_then(soa_serial);
        let soas = records.iter().filter_map(soa_serial).collect::<Vec<_>>();
        // Done when the first SOA comes back, last (AXFR, or IXFR's whole sequence), or an
        // IXFR that is only the SOA (up to date).
        if soas.len() >= 2 && records.last().and_then(soa_serial) == first {
            return records;
        }
    }
}

fn soa_serial(record: &Record) -> Option<u32> {
    match &record.data {
        RData::SOA(soa) => Some(soa.serial),
        _ => None,
    }
}

fn text(record: &Record) -> String {
    format!("{} {} {}", record.name, record.record_type(), record.data)
}

/// The records of an AXFR without its SOAs, as text.
fn zone(records: &[Record]) -> BTreeSet<String> {
    records
        .iter()
        .filter(|r| r.record_type() != RecordType::SOA)
        .map(text)
        .collect()
}

/// Applies an IXFR's difference sequences (RFC 1995 4) to `zone`; returns the new serial.
fn apply_ixfr(zone: &mut BTreeSet<String>, records: &[Record]) -> u32 {
    let new_serial = soa_serial(&records[0]).expect("an IXFR starts with the new SOA");
    // Between the first and last SOA: [SOA old, deleted..., SOA new, added...]*.
    let body = &records[1..records.len() - 1];
    // Each sequence's first SOA opens its deletions, its second its additions.
    let mut adding = true;
    for record in body {
        if soa_serial(record).is_some() {
            adding = !adding;
            continue;
        }
        let line = text(record);
        if adding {
            zone.insert(line);
        } else {
            assert!(
                zone.remove(&line),
                "IXFR deletes what the zone held: {line}"
            );
        }
    }
    new_serial
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_axfr_of_100k_endpoints_completes_under_churn_and_ixfr_follows() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("cluster.json"), cluster().to_string()).unwrap();
    let churn_file = dir.path().join("churn.json");
    std::fs::write(&churn_file, churn(0).to_string()).unwrap();
    let mut config = loopback_config();
    config.transfer_allow = vec!["127.0.0.1/32".parse().expect("literal")];
    config.reload_interval = Duration::from_millis(200);
    let server = TestServer::start(config, Source::Manifests(dir.path().to_path_buf())).await;
    assert!(
        server.handle.is_ready(),
        "the manifests are loaded before start returns"
    );

    // A change every 100 ms, written as an editor would (a new file renamed over the old).
    let stop = Arc::new(AtomicBool::new(false));
    let written = Arc::new(AtomicU32::new(0));
    let churner = tokio::spawn({
        let (stop, written, churn_file) = (stop.clone(), written.clone(), churn_file.clone());
        async move {
            let mut n = 1;
            while !stop.load(Ordering::Relaxed) && n < 6000 {
                let staged = churn_file.with_extension("new");
                std::fs::write(&staged, churn(n).to_string()).unwrap();
                std::fs::rename(&staged, &churn_file).unwrap();
                written.store(n, Ordering::Relaxed);
                n += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    });
    // Let the churn reach the zone, then transfer it whole while it goes on.
    let serial_before = server.handle.serial();
    let moving = eventually(Duration::from_secs(10), || async {
        server.handle.serial() != serial_before
    })
    .await;
    assert!(moving, "the churn changes the zone");
    let axfr = transfer(
        server.addr,
        &query("cluster.local.", RecordType::AXFR, None),
    )
    .await;
    let axfr_serial = soa_serial(&axfr[0]).expect("an AXFR starts with the SOA");
    let serial_after_axfr = server.handle.serial();
    stop.store(true, Ordering::Relaxed);
    churner.await.unwrap();
    assert_ne!(
        serial_after_axfr, axfr_serial,
        "the zone changed while it was transferred"
    );
    let mut held = zone(&axfr);
    let pods = held
        .iter()
        .filter(|r| r.starts_with('s') && r.contains(".load.svc.cluster.local. A "))
        .filter(|r| r.split('.').next().is_some_and(|l| l.contains('-')))
        .count();
    assert_eq!(pods, (SERVICES * PODS) as usize, "every pod's A record");
    // The churn has stopped: let its last change land, then follow by IXFR as a secondary
    // does, and compare with a fresh AXFR.
    let settled = eventually(Duration::from_secs(10), || async {
        let a = server.handle.serial();
        tokio::time::sleep(Duration::from_millis(700)).await;
        server.handle.serial() == a
    })
    .await;
    assert!(settled, "the zone settles once the churn stops");
    let mut request = query("cluster.local.", RecordType::IXFR, None);
    let mut soa = axfr[0].clone();
    if let RData::SOA(data) = &mut soa.data {
        data.serial = axfr_serial;
    }
    request.authorities.push(soa);
    let ixfr = transfer(server.addr, &request).await;
    let followed = apply_ixfr(&mut held, &ixfr);
    let fresh = transfer(
        server.addr,
        &query("cluster.local.", RecordType::AXFR, None),
    )
    .await;
    assert_eq!(followed, soa_serial(&fresh[0]).unwrap());
    assert!(
        held == zone(&fresh),
        "the AXFR plus the IXFR is the zone now"
    );
    server.handle.shutdown().await;
}
