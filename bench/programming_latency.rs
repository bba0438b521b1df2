//! Programming latency: from a change in the Kubernetes API to the new answer being served.
//!
//!     cargo bench --bench programming_latency
//!     cargo bench --bench programming_latency -- --changes 1000 --services 1000
//!
//! The real server (in-process) watches the API double from tests/it on loopback through
//! the real kube client. For each change one pod of a StatefulSet gets a new address; the
//! clock starts just before the double emits the watch event and stops when a UDP query for
//! that pod returns the new address (so the figure includes the API double's encoding, the
//! HTTP stream, kube's decoding, the controller, and one DNS round trip). Then a rolling
//! restart of a 100-pod StatefulSet, all 100 events back to back, shows how bursts
//! coalesce. The server's own histogram (`headless_dns_programming_latency_seconds`, watch
//! event received -> answer live) is printed too.

#[path = "../tests/it/api_double.rs"]
#[allow(dead_code)]
mod api_double;
#[path = "common.rs"]
#[allow(dead_code)]
mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use headless_dns::{Config, KubernetesSource, Source, start};
use serde_json::Value;
use tokio::net::UdpSocket;

use api_double::ApiDouble;
use common::{a_query, arg};

struct Options {
    services: usize,
    changes: usize,
    /// Pause between changes: the figure is for a quiet machine, not a saturated one.
    gap: Duration,
}

fn options() -> Options {
    Options {
        services: arg("--services", 200usize).max(1),
        changes: arg("--changes", 500),
        gap: Duration::from_millis(arg("--gap-ms", 5)),
    }
}

fn ip(service: usize, ordinal: usize, generation: usize) -> String {
    format!(
        "10.{}.{}.{}",
        (generation % 200) + 1,
        service % 250,
        (ordinal % 250) + 1
    )
}

fn ips(service: usize, generation: &[usize]) -> Vec<String> {
    generation
        .iter()
        .enumerate()
        .map(|(i, g)| ip(service, i, *g))
        .collect()
}

/// A headless Service `s<service>` of `generation.len()` pods, each at its generation's
/// address.
fn objects(service: usize, generation: &[usize]) -> [Value; 3] {
    common::headless("bench", &format!("s{service}"), &ips(service, generation))
}

fn slice(service: usize, generation: &[usize]) -> Value {
    common::slice("bench", &format!("s{service}"), &ips(service, generation))
}

/// Whether the response's first answer is the A record `expected` (its last 4 bytes).
fn answers_with(response: &[u8], expected: [u8; 4]) -> bool {
    response.len() >= 16
        && u16::from_be_bytes([response[6], response[7]]) >= 1
        && response[response.len() - 4..] == expected
}

/// Queries `name` until it resolves to `expected`, at most `limit`.
async fn wait_for(socket: &UdpSocket, server: SocketAddr, name: &str, expected: &str) -> bool {
    let octets: Vec<u8> = expected.split('.').filter_map(|o| o.parse().ok()).collect();
    let Ok(expected) = <[u8; 4]>::try_from(octets) else {
        return false;
    };
    let query = a_query(7, name);
    let mut buf = [0u8; 512];
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        if socket.send_to(&query, server).await.is_err() {
            continue;
        }
        if let Ok(Ok(len)) =
            tokio::time::timeout(Duration::from_millis(200), socket.recv(&mut buf)).await
            && answers_with(&buf[..len], expected)
        {
            return true;
        }
    }
    false
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1e3)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let options = options();
    let pods = 10;
    let double = ApiDouble::start().await;
    let mut generations = vec![vec![0usize; pods]; options.services];
    for (s, generation) in generations.iter().enumerate() {
        for object in objects(s, generation) {
            double.apply(object);
        }
    }
    let big = options.services; // the 100-pod StatefulSet of the burst
    let mut big_generation = vec![0usize; 100];
    for object in objects(big, &big_generation) {
        double.apply(object);
    }

    let config = Config {
        listen: vec!["127.0.0.1:0".parse().expect("literal address")],
        ..Config::default()
    };
    let server = start(
        config,
        Source::Kubernetes(KubernetesSource::new(double.client())),
    )
    .await
    .expect("server starts");
    let addr = server.local_addrs()[0];
    let synced = Instant::now();
    while !server.is_ready() {
        assert!(
            synced.elapsed() < Duration::from_secs(30),
            "no sync in 30 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let socket = UdpSocket::bind("127.0.0.1:0").await.expect("client socket");

    // One change at a time.
    let mut latencies = Vec::with_capacity(options.changes);
    let mut missed = 0;
    for change in 0..options.changes {
        let s = change % options.services;
        let ordinal = (change / options.services) % pods;
        generations[s][ordinal] += 1;
        let expected = ip(s, ordinal, generations[s][ordinal]);
        let name = format!("s{s}-{ordinal}.s{s}.bench.svc.cluster.local.");
        let started = Instant::now();
        double.apply(slice(s, &generations[s]));
        if wait_for(&socket, addr, &name, &expected).await {
            latencies.push(started.elapsed());
        } else {
            missed += 1;
        }
        tokio::time::sleep(options.gap).await;
    }
    latencies.sort();
    let single = server.metrics_text();

    // A rolling restart: every pod of the 100-pod StatefulSet gets a new address, one
    // watch event each, back to back.
    let batches_before = metric(&single, "headless_dns_controller_batches_total");
    let changes_before = metric(&single, "headless_dns_controller_changes_total");
    let started = Instant::now();
    for ordinal in (0..100).rev() {
        big_generation[ordinal] += 1;
        double.apply(slice(big, &big_generation));
    }
    let last = format!("s{big}-0.s{big}.bench.svc.cluster.local.");
    let burst_live = wait_for(&socket, addr, &last, &ip(big, 0, big_generation[0])).await;
    let burst = started.elapsed();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let after = server.metrics_text();
    let batches = metric(&after, "headless_dns_controller_batches_total") - batches_before;
    let changes = metric(&after, "headless_dns_controller_changes_total") - changes_before;

    println!(
        "services: {} x {pods} pods + 1 x 100 pods, changes: {}, gap: {:?}",
        options.services, options.changes, options.gap
    );
    println!(
        "API change -> new answer served (end to end, {} changes, {missed} not seen within 2 s):",
        latencies.len()
    );
    println!(
        "  p50 {}  p90 {}  p99 {}  max {}",
        ms(percentile(&latencies, 50.0)),
        ms(percentile(&latencies, 90.0)),
        ms(percentile(&latencies, 99.0)),
        ms(latencies.last().copied().unwrap_or_default()),
    );
    println!(
        "rolling restart of 100 pods, 100 watch events back to back: last answer live after {} ({}), {changes} changes applied in {batches} controller batches",
        ms(burst),
        if burst_live { "seen" } else { "NOT seen" },
    );
    println!("server's histogram (watch event received -> answer live), all changes:");
    for line in after
        .lines()
        .filter(|l| l.starts_with("headless_dns_programming_latency_seconds"))
    {
        println!("  {line}");
    }
    server.shutdown().await;
}
