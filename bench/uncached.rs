//! Pod A answers (or, with `--mix`, the load benchmark's mix of query kinds) over a cluster
//! larger than the CPU's caches, names asked in a scrambled order as a load generator asks
//! them: the query path's cost when its memory is not in cache, which is what a real server
//! sees between kernel work (criterion's `answer` asks one name again and again). Prints
//! nanoseconds per answer.
//!
//!     cargo bench --bench uncached -- --services 10000 --pods 10 --queries 2000000
//!     cargo bench --bench uncached -- --mix
//!
//! The count of cache misses per answer is a steadier figure than the time on a shared
//! VM; callgrind counts them over the answer function alone (bench/README.md):
//!
//!     valgrind --tool=callgrind --cache-sim=yes --D1=65536,8,64 --LL=1048576,16,64 \
//!         --toggle-collect='headless_dns::serve::answer::Responder::respond' \
//!         target/release/deps/uncached-<hash> --queries 200000

use std::hint::black_box;
use std::time::Instant;

use headless_dns::Config;
use headless_dns::embed::Core;
use headless_dns::model::Change;
use headless_dns::serve::answer::Transport;
use objects::headless;

#[path = "common.rs"]
#[allow(dead_code)]
mod common;
#[path = "objects.rs"]
mod objects;

fn main() {
    let services: u32 = common::arg("--services", 10_000);
    let pods: u32 = common::arg("--pods", 10);
    let queries: usize = common::arg("--queries", 2_000_000);
    let mut core = Core::new(&Config::default());
    let objects = (0..services)
        .flat_map(|s| {
            headless(
                &format!("ns-{}", s / 100),
                &format!("s-{s}"),
                pods,
                s * pods,
            )
        })
        .collect();
    core.controller.apply([Change::ReplaceAll(objects)]);
    // Every pod once, in an order that jumps across the cluster (an odd multiplier prime
    // to the count walks all of them).
    let total = u64::from(services) * u64::from(pods);
    let step = (1..)
        .map(|k| 7_919 * k)
        .find(|m| gcd(*m, total) == 1)
        .unwrap_or(1);
    let mix = std::env::args().any(|a| a == "--mix");
    let names: Vec<Vec<u8>> = (0..total)
        .map(|n| {
            let at = (n * step) % total;
            let (s, pod) = (at / u64::from(pods), at % u64::from(pods));
            let service = format!("s-{s}.ns-{}.svc.cluster.local", s / 100);
            let pod_name = format!("s-{s}-{pod}.{service}");
            // The load benchmark's mix: 70% pod A, 15% Service A, 5% SRV, 5% AAAA (NODATA),
            // 5% NXDOMAIN.
            let kind = if mix { n % 20 } else { 0 };
            let (name, qtype) = match kind {
                0..14 => (pod_name, 1),
                14..17 => (service, 1),
                17 => (format!("_web._tcp.{service}"), 33),
                18 => (pod_name, 28),
                _ => (format!("nope-{pod}.{service}"), 1),
            };
            query(n as u16, &name, qtype)
        })
        .collect();
    let mut out = Vec::with_capacity(65535);
    for q in &names {
        responder_answer(&core, q, &mut out);
    }
    let started = Instant::now();
    let mut answered = 0usize;
    for q in names.iter().cycle().take(queries) {
        answered += usize::from(responder_answer(&core, q, &mut out));
    }
    let elapsed = started.elapsed();
    println!(
        "{answered} of {queries} {} answered over {total} pods: {:.1} ns per answer",
        if mix {
            "mixed queries"
        } else {
            "pod A queries"
        },
        elapsed.as_nanos() as f64 / queries as f64
    );
}

/// Answers `query` from a copy in a buffer used for every query, as the server answers from
/// the receive buffer the kernel has just written.
fn responder_answer(core: &Core, query: &[u8], out: &mut Vec<u8>) -> bool {
    thread_local! {
        static RECEIVED: std::cell::RefCell<[u8; 512]> = const { std::cell::RefCell::new([0; 512]) };
    }
    RECEIVED.with_borrow_mut(|received| {
        let len = query.len().min(received.len());
        received[..len].copy_from_slice(&query[..len]);
        answer_received(core, &received[..len], out)
    })
}

#[inline(never)]
fn answer_received(core: &Core, query: &[u8], out: &mut Vec<u8>) -> bool {
    core.responder
        .respond(black_box(query), Transport::Udp, out)
        .is_some_and(|_| out.len() > query.len())
}

/// A query for `name` of type `qtype`, RD set, no EDNS.
fn query(id: u16, name: &str, qtype: u16) -> Vec<u8> {
    let mut msg = common::a_query(id, name);
    let at = msg.len() - 4;
    msg[at..at + 2].copy_from_slice(&qtype.to_be_bytes());
    msg
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}
