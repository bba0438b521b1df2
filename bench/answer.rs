//! Micro-benchmarks (criterion): the per-query answer function for each query kind, and
//! publishing one Service change with a small and a large cluster loaded.
//!
//!     cargo bench --bench answer
//!     HEADLESS_DNS_BENCH_LARGE=1000000 cargo bench --bench answer -- publish
//!
//! Built from plain model objects, no sockets: what is measured is the work per query (parse,
//! lookup, copy) and per change (records, compile, store), nothing of the kernel's.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use headless_dns::Config;
use headless_dns::embed::Core;
use headless_dns::model::Change;
use headless_dns::serve::answer::Transport;

#[path = "objects.rs"]
mod objects;

use objects::headless;

/// A cluster of about `endpoints` pods in Services of 10, and the demo-like Services the
/// answer benchmarks ask for; UDP answers up to 4096 bytes.
fn cluster(endpoints: u32) -> Core {
    let mut core = Core::new(&Config {
        max_udp_size: 4096,
        ..Config::default()
    });
    let mut objects = Vec::new();
    objects.extend(headless("demo", "nginx", 3, 1));
    objects.extend(headless("demo", "db", 100, 100));
    for s in 0..endpoints / 10 {
        objects.extend(headless(
            &format!("ns-{}", s / 100),
            &format!("s-{s}"),
            10,
            1000 + s * 10,
        ));
    }
    core.controller.apply([Change::ReplaceAll(objects)]);
    core
}

fn query(name: &str, qtype: u16, edns: bool) -> Vec<u8> {
    let mut q = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, u8::from(edns)];
    for label in name.split('.') {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, (qtype >> 8) as u8, qtype as u8, 0, 1]);
    if edns {
        q.extend_from_slice(&[0, 0, 41, 0x10, 0x00, 0, 0, 0, 0, 0, 0]);
    }
    q
}

fn answer(c: &mut Criterion) {
    let responder = cluster(10_000).responder;
    let cases = [
        (
            "pod A",
            query("nginx-1.nginx.demo.svc.cluster.local", 1, false),
        ),
        (
            "pod A, mixed case, EDNS",
            query("Nginx-1.NGINX.demo.svc.Cluster.local", 1, true),
        ),
        (
            "headless 3 A",
            query("nginx.demo.svc.cluster.local", 1, false),
        ),
        (
            "headless 100 A, EDNS",
            query("db.demo.svc.cluster.local", 1, true),
        ),
        (
            "SRV 3 + additional",
            query("_web._tcp.nginx.demo.svc.cluster.local", 33, true),
        ),
        (
            "AAAA NODATA",
            query("nginx-1.nginx.demo.svc.cluster.local", 28, false),
        ),
        (
            "NXDOMAIN",
            query("nginx-9.nginx.demo.svc.cluster.local", 1, false),
        ),
        ("PTR", query("2.0.0.10.in-addr.arpa", 12, false)),
        ("REFUSED", query("example.com", 1, false)),
    ];
    let mut group = c.benchmark_group("answer");
    let mut out = Vec::with_capacity(65535);
    for (name, q) in &cases {
        group.bench_with_input(BenchmarkId::from_parameter(name), q, |b, q| {
            b.iter(|| responder.respond(black_box(q), Transport::Udp, &mut out))
        });
    }
    group.finish();
}

/// What counting adds per query on a UDP thread: one answered query of the mix's kinds,
/// and one receive batch of 32 timed.
fn count(c: &mut Criterion) {
    use headless_dns::metrics::{Metrics, Proto};
    let metrics = Metrics::new();
    let stats = metrics.query_stats(Proto::Udp);
    let outcomes = [
        (1u16, 0u16),
        (1, 0),
        (1, 0),
        (28, 0),
        (33, 0),
        (1, 3),
        (12, 0),
        (99, 5),
    ];
    let mut group = c.benchmark_group("count");
    group.bench_function("answered query", |b| {
        let mut i = 0;
        b.iter(|| {
            let (qtype, rcode) = outcomes[i % outcomes.len()];
            i += 1;
            stats.answered(black_box(qtype), black_box(rcode));
        })
    });
    group.bench_function("timed batch of 32", |b| {
        b.iter(|| stats.timed(black_box(std::time::Duration::from_micros(40)), 32))
    });
    group.finish();
}

fn publish(c: &mut Criterion) {
    let large: u32 = std::env::var("HEADLESS_DNS_BENCH_LARGE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let mut group = c.benchmark_group("publish");
    group.sample_size(20);
    for loaded in [1_000, large] {
        let mut controller = cluster(loaded).controller;
        for size in [3u32, 100, 1000] {
            // Alternate between two address sets so every apply is a real change.
            let versions = [
                headless("bench", "changing", size, 5_000_000),
                headless("bench", "changing", size, 6_000_000),
            ];
            controller.apply(versions[0].iter().cloned().map(Change::Apply));
            let mut flip = 0;
            let id = BenchmarkId::new(format!("{size} endpoints"), format!("{loaded} loaded"));
            group.bench_function(id, |b| {
                b.iter(|| {
                    flip ^= 1;
                    controller.apply(versions[flip].iter().cloned().map(Change::Apply))
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, answer, count, publish);
criterion_main!(benches);
