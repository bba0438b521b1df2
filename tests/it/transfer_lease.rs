//! `--transfer-lease`: two replicas elect one zone-transfer primary through a Lease on the
//! API double. Exactly one answers AXFR and sends NOTIFY, and its pod carries the primary
//! label; when it stops (SIGTERM releases the Lease; a killed one's Lease expires) the
//! other takes over with a larger serial, and a Knot secondary that lists both replicas
//! follows a change made after the handover.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use hickory_net::proto::op::{Message, ResponseCode};
use hickory_net::proto::rr::{RData, RecordType};
use serde_json::json;
use tokio::net::TcpStream;

use crate::api_double::ApiDouble;
use crate::support::{Binary, dig, eventually, free_port, knot, query, tcp_receive, tcp_send};

const NAMESPACE: &str = "headless-dns";

fn headless(name: &str, pods: u32) -> [serde_json::Value; 3] {
    let endpoints: Vec<_> = (0..pods)
        .map(|i| json!({"addresses": [format!("10.244.7.{}", i + 1)], "hostname": format!("{name}-{i}")}))
        .collect();
    [
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "demo"},
               "spec": {"clusterIP": "None", "ports": [{"name": "web", "port": 80}]}}),
        json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": name, "namespace": "demo"},
               "spec": {"serviceName": name, "replicas": pods, "selector": {}, "template": {}}}),
        json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
               "metadata": {"name": format!("{name}-x"), "namespace": "demo",
                            "labels": {"kubernetes.io/service-name": name}},
               "addressType": "IPv4", "endpoints": endpoints,
               "ports": [{"name": "web", "port": 80, "protocol": "TCP"}]}),
    ]
}

/// The first AXFR message's RCODE and, when it is NOERROR, the SOA serial it starts with.
async fn axfr_start(addr: SocketAddr) -> (ResponseCode, Option<u32>) {
    let Ok(mut stream) = TcpStream::connect(addr).await else {
        return (ResponseCode::ServFail, None);
    };
    let request = query("cluster.local.", RecordType::AXFR, None);
    tcp_send(&mut stream, &request.to_vec().expect("encodes")).await;
    let bytes = tcp_receive(&mut stream).await;
    let message = Message::from_vec(&bytes).expect("a transfer answer parses");
    let serial = message.answers.first().and_then(|r| match &r.data {
        RData::SOA(soa) => Some(soa.serial),
        _ => None,
    });
    (message.metadata.response_code, serial)
}

/// One replica: the binary watching the double, its identity its pod's name.
async fn replica(kubeconfig: &Path, pod: &str, notify: SocketAddr) -> Binary {
    let notify = notify.to_string();
    Binary::start(
        &[
            "--kubeconfig",
            kubeconfig.to_str().expect("UTF-8"),
            "--transfer-allow",
            "127.0.0.1",
            "--transfer-lease",
            &format!("{NAMESPACE}/transfer"),
            "--transfer-lease-duration",
            "2s",
            "--notify",
            &notify,
        ],
        &[("POD_NAME", pod), ("POD_NAMESPACE", NAMESPACE)],
    )
    .await
}

/// The replica that answers AXFR, once exactly one does: its index and serial.
async fn primary(replicas: &[&Binary]) -> Option<(usize, u32)> {
    let mut found = None;
    for (i, binary) in replicas.iter().enumerate() {
        match axfr_start(binary.addr).await {
            (ResponseCode::NoError, Some(serial)) if found.is_none() => found = Some((i, serial)),
            (ResponseCode::Refused, _) => {}
            _ => return None,
        }
    }
    found
}

/// Polls [`primary`] until one is found, within `limit`.
async fn until_primary(replicas: &[&Binary], limit: Duration) -> Option<(usize, u32)> {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(found) = primary(replicas).await {
            return Some(found);
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Polls the AXFR of `addr` until it is answered, within `limit`: its serial.
async fn until_answered(addr: SocketAddr, limit: Duration) -> Option<u32> {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let (ResponseCode::NoError, Some(serial)) = axfr_start(addr).await {
            return Some(serial);
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn labelled(double: &ApiDouble, pod: &str) -> bool {
    double.object("pods", NAMESPACE, pod).and_then(|p| {
        p.pointer("/metadata/labels/headless-dns.io~1transfer-primary")
            .cloned()
    }) == Some(json!("true"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_replica_serves_transfers_and_the_other_takes_over_with_a_larger_serial() {
    let dir = tempfile::tempdir().unwrap();
    let double = ApiDouble::start().await;
    for object in headless("web", 2) {
        double.apply(object);
    }
    for pod in ["replica-a", "replica-b"] {
        double.apply(json!({"apiVersion": "v1", "kind": "Pod",
                            "metadata": {"name": pod, "namespace": NAMESPACE}}));
    }
    let kubeconfig = double.write_kubeconfig(dir.path());
    let knot_port = free_port();
    let knot_addr = SocketAddr::from(([127, 0, 0, 1], knot_port));
    let a = replica(&kubeconfig, "replica-a", knot_addr).await;
    let b = replica(&kubeconfig, "replica-b", knot_addr).await;
    let pods = ["replica-a", "replica-b"];

    // Exactly one primary, and its pod labelled (the other's not).
    let (first, first_serial) = until_primary(&[&a, &b], Duration::from_secs(10))
        .await
        .expect("exactly one replica answers AXFR");
    assert!(
        eventually(Duration::from_secs(5), || async {
            labelled(&double, pods[first]) && !labelled(&double, pods[1 - first])
        })
        .await,
        "the primary's pod, only, carries the label"
    );

    // Knot lists both replicas; it takes the zone from the primary.
    let knot_dir = dir.path().join("knot");
    std::fs::create_dir_all(&knot_dir).unwrap();
    let _knot = knot(&knot_dir, knot_port, &[a.addr, b.addr], &["cluster.local"]);
    let web1 = "web-1.web.demo.svc.cluster.local";
    let served = eventually(Duration::from_secs(20), || async {
        dig(knot_addr, &["+short", web1]).await == "10.244.7.2\n"
    })
    .await;
    assert!(
        served,
        "knot follows the primary:\n{}",
        std::fs::read_to_string(knot_dir.join("knot.log")).unwrap_or_default()
    );

    // The primary stops (SIGTERM releases the Lease): the other takes over well within
    // the 2 s lease, with a serial above the first primary's.
    let (stopped, survivor) = if first == 0 { (a, b) } else { (b, a) };
    let stopping = std::time::Instant::now();
    let log = stopped.stop().await;
    assert!(log.contains("transfer lease released"), "{log}");
    let second_serial = until_answered(survivor.addr, Duration::from_secs(4))
        .await
        .unwrap_or_else(|| panic!("the other replica serves transfers: {}", survivor.log()));
    // Reported, not asserted: how long the handover took.
    eprintln!("handover after SIGTERM: {:?}", stopping.elapsed());
    assert!(
        second_serial != first_serial && second_serial.wrapping_sub(first_serial) < 1 << 31,
        "the serial moves on: {first_serial} then {second_serial}"
    );
    assert!(
        eventually(Duration::from_secs(5), || async {
            labelled(&double, pods[1 - first])
        })
        .await,
        "the label follows the primary"
    );

    // A change after the handover reaches Knot (NOTIFY from the new primary, IXFR or AXFR).
    for object in headless("web", 3) {
        double.apply(object);
    }
    let followed = eventually(Duration::from_secs(20), || async {
        dig(knot_addr, &["+short", "web-2.web.demo.svc.cluster.local"]).await == "10.244.7.3\n"
    })
    .await;
    assert!(
        followed,
        "knot follows the new primary:\n{}",
        std::fs::read_to_string(knot_dir.join("knot.log")).unwrap_or_default()
    );
    survivor.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_primary_is_replaced_once_its_lease_expires() {
    let dir = tempfile::tempdir().unwrap();
    let double = ApiDouble::start().await;
    for object in headless("web", 1) {
        double.apply(object);
    }
    let kubeconfig = double.write_kubeconfig(dir.path());
    let nowhere = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let a = replica(&kubeconfig, "replica-a", nowhere).await;
    let b = replica(&kubeconfig, "replica-b", nowhere).await;
    let (first, _) = until_primary(&[&a, &b], Duration::from_secs(10))
        .await
        .expect("a primary");
    let (killed, survivor) = if first == 0 { (a, b) } else { (b, a) };
    // SIGKILL: no release. The survivor waits out the 2 s lease, then takes it.
    std::process::Command::new("kill")
        .args(["-KILL", &killed.pid().to_string()])
        .status()
        .expect("kill runs");
    let killing = std::time::Instant::now();
    let took = until_answered(survivor.addr, Duration::from_secs(6)).await;
    eprintln!(
        "handover after SIGKILL (2 s lease): {:?}",
        killing.elapsed()
    );
    assert!(took.is_some(), "{}", survivor.log());
    assert!(
        survivor.log().contains("transfer lease taken"),
        "{}",
        survivor.log()
    );
    survivor.stop().await;
}
