//! The UDP hot path allocates nothing per query, for positive and negative answers alike,
//! and for answers truncated to the records that fit.
//!
//! Its own test binary, because it replaces the global allocator with one that counts.
//! The real server runs in-process on loopback, fed its records through the embedding API;
//! queries go over real UDP sockets from the test's own thread, the one thread not counted.

use std::alloc::{GlobalAlloc, Layout, System};
use std::net::UdpSocket;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use headless_dns::{Config, Feed, Manifest, start};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;

/// The demo's nginx (3 pods) and db (100 pods) Services.
fn demo() -> Vec<Manifest> {
    let mut objects = Vec::new();
    for (name, size, net) in [("nginx", 3u32, 2), ("db", 100, 20)] {
        let service: Service = serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "namespace": "demo"},
            "spec": {"clusterIP": "None", "ports": [{"name": "web", "port": 80}]}
        }))
        .unwrap();
        let endpoints: Vec<serde_json::Value> = (0..size)
            .map(|i| {
                let host = if name == "nginx" { format!("web-{i}") } else { format!("db-{i}") };
                serde_json::json!({"addresses": [format!("10.244.{}.{}", net + i / 200, 10 + i % 200)], "hostname": host})
            })
            .collect();
        let slice: EndpointSlice = serde_json::from_value(serde_json::json!({
            "metadata": {"name": format!("{name}-x"), "namespace": "demo",
                         "labels": {"kubernetes.io/service-name": name}},
            "addressType": "IPv4",
            "endpoints": endpoints,
            "ports": [{"name": "web", "port": 80}]
        }))
        .unwrap();
        objects.push(service.into());
        objects.push(slice.into());
    }
    // `nginx` imported from cluster `west` too (the clusterset zone).
    let documents = [
        serde_json::json!({"apiVersion": "multicluster.x-k8s.io/v1alpha1", "kind": "ServiceImport",
            "metadata": {"name": "nginx", "namespace": "demo"}, "spec": {"type": "Headless"}}),
        serde_json::json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": "nginx-west", "namespace": "demo", "labels": {
                "multicluster.kubernetes.io/service-name": "nginx",
                "multicluster.kubernetes.io/source-cluster": "west"}},
            "addressType": "IPv4",
            "endpoints": (0..3).map(|i| serde_json::json!({
                "addresses": [format!("10.245.2.{}", 10 + i)], "hostname": format!("web-{i}")}))
                .collect::<Vec<_>>(),
            "ports": [{"name": "web", "port": 80}]}),
    ];
    for document in documents {
        objects.extend(Manifest::from_document(document).unwrap());
    }
    objects
}

struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// Set on the test's own thread, the client.
    static EXEMPT: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

fn count() {
    if !EXEMPT.with(|c| c.get()) {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
    }
}

// SAFETY: forwards to the system allocator; the counter has no effect on memory.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// A query for `name` (dotted) and `qtype`, with or without EDNS, into `out`.
fn encode_query(out: &mut Vec<u8>, id: u16, name: &str, qtype: u16, edns: bool) {
    out.clear();
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, u8::from(edns)]);
    for label in name.split('.').filter(|l| !l.is_empty()) {
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
    }
    out.extend_from_slice(&[0, (qtype >> 8) as u8, qtype as u8, 0, 1]);
    if edns {
        out.extend_from_slice(&[0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0]);
    }
}

#[test]
fn answering_allocates_nothing() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let config = Config {
        listen: vec!["127.0.0.1:0".parse().unwrap()],
        udp_workers: 2,
        clusterset_zone: Some(headless_dns::config::parse_zone("clusterset.local").unwrap()),
        ..Config::default()
    };
    let (feed, source) = Feed::new();
    let server = runtime.block_on(start(config, source)).unwrap();
    feed.replace_all(demo()).unwrap();
    let addr = server.local_addrs()[0];

    EXEMPT.with(|e| e.set(true));
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let mut query = Vec::with_capacity(512);
    let mut response = vec![0u8; 65535];
    let cases: &[(&str, u16, bool, u8)] = &[
        ("web-0.nginx.demo.svc.cluster.local", 1, false, 0), // pod A
        ("nginx.demo.svc.cluster.local", 1, true, 0),        // multi-A, EDNS
        ("db.demo.svc.cluster.local", 1, true, 0),           // 100 A: truncated, 73 kept
        ("db.demo.svc.cluster.local", 1, false, 0),          // the same in 512 bytes
        ("_web._tcp.db.demo.svc.cluster.local", 33, true, 0), // 100 SRV: truncated
        ("_web._tcp.nginx.demo.svc.cluster.local", 33, true, 0), // SRV + additional
        ("web-0.nginx.demo.svc.cluster.local", 28, false, 0), // NODATA
        ("web-9.nginx.demo.svc.cluster.local", 1, true, 3),  // NXDOMAIN
        ("11.2.244.10.in-addr.arpa", 12, false, 0),          // PTR
        ("web-1.west.nginx.demo.svc.clusterset.local", 1, false, 0), // an imported pod's A
        ("nginx.demo.svc.clusterset.local", 1, true, 0),     // an import's multi-A
        ("_web._tcp.nginx.demo.svc.clusterset.local", 33, true, 0), // its SRV, two labels
        ("west.nginx.demo.svc.clusterset.local", 1, true, 0), // a cluster's name: NODATA
        ("11.2.245.10.in-addr.arpa", 12, false, 0),          // an imported pod's PTR
        ("example.com", 1, false, 5),                        // REFUSED
    ];
    // The response's RCODE, TC flag and answer count.
    let mut exchange = |name: &str, qtype: u16, edns: bool, id: u16| -> (u8, bool, u16) {
        encode_query(&mut query, id, name, qtype, edns);
        client.send_to(&query, addr).unwrap();
        let (len, _) = client.recv_from(&mut response).unwrap();
        assert!(len >= 12 && response[..2] == id.to_be_bytes(), "{name}");
        let tc = response[2] & 0x02 != 0;
        (
            response[3] & 0x0f,
            tc,
            u16::from_be_bytes([response[6], response[7]]),
        )
    };
    let mut ask = |name: &str, qtype: u16, edns: bool, id: u16| exchange(name, qtype, edns, id).0;
    // The feed is applied by the controller task: wait until it is served.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while ask(cases[0].0, 1, false, 0) != 0 {
        assert!(std::time::Instant::now() < deadline, "records never served");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Warm up: each worker's thread-local state (arc-swap's debt list, the runtime's)
    // is set up on first use; from different source ports to reach both workers.
    for round in 0..50u16 {
        for &(name, qtype, edns, _) in cases {
            ask(name, qtype, edns, round);
        }
    }
    let before = ALLOCATIONS.load(Ordering::SeqCst);
    // The counter is live on the server's threads: setting up the workers allocated.
    assert!(
        before > 0,
        "no allocation counted on the server runtime at all"
    );
    let (mut answered, mut truncated) = (0, 0);
    for round in 0..200u16 {
        for &(name, qtype, edns, rcode) in cases {
            let (code, tc, ancount) = exchange(name, qtype, edns, round);
            assert_eq!(code, rcode, "{name} {qtype}");
            // A truncated answer carries the records that fit.
            assert!(!tc || ancount > 0, "{name} {qtype}: TC with no record");
            answered += 1;
            truncated += usize::from(tc);
        }
    }
    assert_eq!(truncated, 3 * 200, "the three large answers are truncated");
    let during = ALLOCATIONS.load(Ordering::SeqCst) - before;
    assert_eq!(during, 0, "{during} allocations over {answered} queries");
    runtime.block_on(server.shutdown());
}
