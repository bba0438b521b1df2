//! Prometheus metrics, named after CoreDNS's so its dashboards translate
//! (`coredns_dns_requests_total` -> `headless_dns_dns_requests_total`).
//!
//! The query path never touches a lock or a shared cache line: each UDP thread counts into
//! its own [`QueryStats`] (TCP connections share one), and a scrape sums them. Everything
//! else (controller, sources) is rare and uses prometheus-client's own metric types.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::dns::wire::rtype;
use crate::dns::wire::{qtype, rcode};

/// Query types counted by name; everything else is `other` (as CoreDNS does), so a client
/// cannot create label values.
const QTYPES: [(u16, &str); 10] = [
    (rtype::A, "A"),
    (rtype::AAAA, "AAAA"),
    (rtype::SRV, "SRV"),
    (rtype::PTR, "PTR"),
    (rtype::CNAME, "CNAME"),
    (rtype::TXT, "TXT"),
    (rtype::SOA, "SOA"),
    (rtype::NS, "NS"),
    (qtype::ANY, "ANY"),
    (qtype::AXFR, "AXFR"),
];
const QTYPE_SLOTS: usize = QTYPES.len() + 1;

/// Response codes counted by name; the last slot is `other`.
const RCODES: [(u16, &str); 7] = [
    (rcode::NOERROR, "NOERROR"),
    (rcode::FORMERR, "FORMERR"),
    (rcode::SERVFAIL, "SERVFAIL"),
    (rcode::NXDOMAIN, "NXDOMAIN"),
    (rcode::NOTIMP, "NOTIMP"),
    (rcode::REFUSED, "REFUSED"),
    (rcode::BADVERS, "BADVERS"),
];
const RCODE_SLOTS: usize = RCODES.len() + 1;

/// Upper bounds of the response-time buckets, in nanoseconds: answers take microseconds, so
/// CoreDNS's 0.25 ms first bucket would hide everything.
const LATENCY_BOUNDS_NS: [u64; 14] = [
    5_000,
    10_000,
    25_000,
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
];
const LATENCY_SLOTS: usize = LATENCY_BOUNDS_NS.len() + 1;

/// How a query arrived, a label of every query metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    Udp,
    Tcp,
    /// DNS over TLS (RFC 7858).
    Tls,
    /// DNS over HTTPS (RFC 8484).
    Https,
}

impl Proto {
    const ALL: [Proto; 4] = [Proto::Udp, Proto::Tcp, Proto::Tls, Proto::Https];

    fn label(self) -> &'static str {
        match self {
            Proto::Udp => "udp",
            Proto::Tcp => "tcp",
            Proto::Tls => "tls",
            Proto::Https => "https",
        }
    }
}

/// Query counters of one answering thread (or of all TCP connections). Relaxed atomics:
/// a scrape may see one query counted in `requests` and not yet in `responses`. Aligned so
/// that two threads' counters never share a cache line.
#[derive(Debug)]
#[repr(align(128))]
pub struct QueryStats {
    proto: Proto,
    /// Written by several tasks (TCP connections): locked adds. A UDP worker's stats have
    /// one writer, its thread, so a plain load and store suffices and costs no bus lock.
    shared: bool,
    requests: [AtomicU64; QTYPE_SLOTS],
    responses: [AtomicU64; RCODE_SLOTS],
    /// Messages that got no response (QR=1, unparseable header).
    dropped: AtomicU64,
    latency: [AtomicU64; LATENCY_SLOTS],
    latency_sum_ns: AtomicU64,
}

/// Slot of each query type below 256 (all the named ones are), built from `QTYPES`: one
/// load per query instead of a search.
const QTYPE_SLOT: [u8; 256] = {
    let mut table = [QTYPES.len() as u8; 256];
    let mut i = 0;
    while i < QTYPES.len() {
        table[QTYPES[i].0 as usize] = i as u8;
        i += 1;
    }
    table
};

/// Slot of each response code below 32 (all the named ones are), built from `RCODES`.
const RCODE_SLOT: [u8; 32] = {
    let mut table = [RCODES.len() as u8; 32];
    let mut i = 0;
    while i < RCODES.len() {
        table[RCODES[i].0 as usize] = i as u8;
        i += 1;
    }
    table
};

fn qtype_slot(qtype: u16) -> usize {
    QTYPE_SLOT
        .get(usize::from(qtype))
        .map_or(QTYPES.len(), |slot| usize::from(*slot))
}

fn rcode_slot(rcode: u16) -> usize {
    RCODE_SLOT
        .get(usize::from(rcode))
        .map_or(RCODES.len(), |slot| usize::from(*slot))
}

impl QueryStats {
    fn new(proto: Proto) -> Self {
        Self {
            proto,
            // Every transport but UDP is served by tasks on several threads.
            shared: proto != Proto::Udp,
            requests: Default::default(),
            responses: Default::default(),
            dropped: AtomicU64::new(0),
            latency: Default::default(),
            latency_sum_ns: AtomicU64::new(0),
        }
    }

    #[inline]
    fn add(&self, counter: &AtomicU64, n: u64) {
        if self.shared {
            counter.fetch_add(n, Ordering::Relaxed);
        } else {
            counter.store(
                counter.load(Ordering::Relaxed).wrapping_add(n),
                Ordering::Relaxed,
            );
        }
    }

    /// Counts one answered query.
    #[inline]
    pub fn answered(&self, qtype: u16, rcode: u16) {
        self.add(&self.requests[qtype_slot(qtype)], 1);
        self.add(&self.responses[rcode_slot(rcode)], 1);
    }

    /// Counts one message that got no response.
    #[inline]
    pub fn dropped(&self) {
        self.add(&self.dropped, 1);
    }

    /// Records `count` responses that each took `elapsed` (a UDP batch is timed as a whole,
    /// receive to send, so the clock is read twice per batch, not per query).
    #[inline]
    pub fn timed(&self, elapsed: Duration, count: u64) {
        if count == 0 {
            return;
        }
        let ns = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        let slot = LATENCY_BOUNDS_NS
            .iter()
            .position(|bound| ns <= *bound)
            .unwrap_or(LATENCY_BOUNDS_NS.len());
        self.add(&self.latency[slot], count);
        self.add(&self.latency_sum_ns, ns.saturating_mul(count));
    }
}

/// Every [`QueryStats`], summed on scrape.
#[derive(Debug, Default)]
struct QueryCollector {
    stats: Mutex<Vec<Arc<QueryStats>>>,
}

fn load(a: &AtomicU64) -> u64 {
    a.load(Ordering::Relaxed)
}

impl Collector for QueryCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let stats = self.stats.lock().map_err(|_| std::fmt::Error)?.clone();
        let protos = Proto::ALL;
        let of = |proto: Proto| stats.iter().filter(move |s| s.proto == proto);

        let mut requests = encoder.encode_descriptor(
            "headless_dns_dns_requests",
            "DNS queries received, by transport and query type.",
            None,
            MetricType::Counter,
        )?;
        for proto in protos {
            for (slot, name) in QTYPES.iter().map(|(_, n)| *n).chain(["other"]).enumerate() {
                let total: u64 = of(proto).map(|s| load(&s.requests[slot])).sum();
                let labels = [("proto", proto.label()), ("type", name)];
                ConstCounter::new(total).encode(requests.encode_family(&labels)?)?;
            }
        }

        let mut responses = encoder.encode_descriptor(
            "headless_dns_dns_responses",
            "DNS responses sent, by transport and response code.",
            None,
            MetricType::Counter,
        )?;
        for proto in protos {
            for (slot, name) in RCODES.iter().map(|(_, n)| *n).chain(["other"]).enumerate() {
                let total: u64 = of(proto).map(|s| load(&s.responses[slot])).sum();
                let labels = [("proto", proto.label()), ("rcode", name)];
                ConstCounter::new(total).encode(responses.encode_family(&labels)?)?;
            }
        }

        let mut dropped = encoder.encode_descriptor(
            "headless_dns_dns_dropped",
            "DNS messages that got no response (responses, unparseable headers).",
            None,
            MetricType::Counter,
        )?;
        for proto in protos {
            let total: u64 = of(proto).map(|s| load(&s.dropped)).sum();
            ConstCounter::new(total).encode(dropped.encode_family(&[("proto", proto.label())])?)?;
        }

        let mut duration = encoder.encode_descriptor(
            "headless_dns_dns_request_duration_seconds",
            "Time from receiving a query to sending its response (UDP: per receive batch).",
            None,
            MetricType::Histogram,
        )?;
        for proto in protos {
            let mut buckets = [(0.0, 0u64); LATENCY_SLOTS];
            let mut sum_ns = 0u64;
            for s in of(proto) {
                for (slot, bucket) in buckets.iter_mut().enumerate() {
                    bucket.1 += load(&s.latency[slot]);
                }
                sum_ns = sum_ns.saturating_add(load(&s.latency_sum_ns));
            }
            for (slot, bucket) in buckets.iter_mut().enumerate() {
                bucket.0 = LATENCY_BOUNDS_NS
                    .get(slot)
                    .map_or(f64::MAX, |ns| *ns as f64 / 1e9);
            }
            let count = buckets.iter().map(|b| b.1).sum();
            let labels = [("proto", proto.label())];
            duration
                .encode_family(&labels)?
                .encode_histogram::<NoLabelSet>(sum_ns as f64 / 1e9, count, &buckets, None)?;
        }
        Ok(())
    }
}

/// Time since each source last proved in sync (a completed list, a watch event, a
/// manifests load), computed at scrape time.
#[derive(Debug, Default)]
struct SyncAgeCollector {
    last: Mutex<Vec<(&'static str, Instant)>>,
}

impl Collector for SyncAgeCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let last = self.last.lock().map_err(|_| std::fmt::Error)?.clone();
        let mut age = encoder.encode_descriptor(
            "headless_dns_last_sync_age_seconds",
            "Seconds since each watched kind (or the manifests folder) was last known in sync.",
            None,
            MetricType::Gauge,
        )?;
        for (kind, at) in last {
            ConstGauge::new(at.elapsed().as_secs_f64())
                .encode(age.encode_family(&[("kind", kind)])?)?;
        }
        Ok(())
    }
}

/// How old the state served from a `--snapshot` file is, until the source has listed.
#[derive(Debug, Default)]
struct SnapshotAgeCollector {
    /// When the snapshot being served was written (Unix seconds); `None` once the source's
    /// own state is served.
    written_at: Mutex<Option<u64>>,
}

impl Collector for SnapshotAgeCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let written_at = *self.written_at.lock().map_err(|_| std::fmt::Error)?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let age = written_at.map_or(0, |at| now.saturating_sub(at));
        let gauge = encoder.encode_descriptor(
            "headless_dns_snapshot_age_seconds",
            "Age of the state served from --snapshot until the source has listed; 0 when the served state is the source's own.",
            None,
            MetricType::Gauge,
        )?;
        ConstGauge::new(age as f64).encode(gauge)
    }
}

type KindLabels = [(&'static str, &'static str); 1];
type KindEventLabels = [(&'static str, &'static str); 2];
type ResultLabels = [(&'static str, &'static str); 1];

/// The server's metrics and their registry.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    queries: Arc<QueryCollector>,
    sync_age: Arc<SyncAgeCollector>,
    snapshot_age: Arc<SnapshotAgeCollector>,
    /// `--snapshot` files written, by result (`ok`, `error`).
    pub snapshot_writes: Family<ResultLabels, Counter>,
    /// Watch event arrival (or manifests change) to answer live in the store.
    pub programming_latency: Histogram,
    /// Controller batches: with `changes`, shows how bursts coalesce.
    pub controller_batches: Counter,
    pub controller_changes: Counter,
    pub services: Gauge,
    pub endpoints: Gauge,
    pub names: Gauge,
    pub watch_events: Family<KindEventLabels, Counter>,
    pub watch_restarts: Family<KindLabels, Counter>,
    pub invalid_objects: Family<KindLabels, Counter>,
    /// Zone transfers by type (`axfr`, `ixfr`, `ixfr_axfr`: an IXFR answered with the whole
    /// zone) and result (`ok`, `refused`, `notauth`, `formerr`, `servfail`, `aborted`, `busy`).
    pub transfers: Family<KindEventLabels, Counter>,
    /// Bytes of transfer messages sent.
    pub transfer_bytes: Counter,
    /// NOTIFY messages sent (every try), and those a secondary answered NOERROR.
    pub notify_sent: Counter,
    pub notify_acknowledged: Counter,
    /// Bytes held by the journal of changes (IXFR).
    pub journal_bytes: Gauge,
    /// The zones' SOA serial.
    pub serial: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let queries = Arc::new(QueryCollector::default());
        let sync_age = Arc::new(SyncAgeCollector::default());
        let snapshot_age = Arc::new(SnapshotAgeCollector::default());
        registry.register_collector(Box::new(queries.clone()));
        registry.register_collector(Box::new(sync_age.clone()));
        registry.register_collector(Box::new(snapshot_age.clone()));
        // 100 us to ~3 s: a change is live within milliseconds, a relist of 1M endpoints
        // takes seconds.
        let programming_latency = Histogram::new([
            0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
            2.5,
        ]);
        let mut metrics = Self {
            registry,
            queries,
            sync_age,
            snapshot_age,
            snapshot_writes: Family::default(),
            programming_latency,
            controller_batches: Counter::default(),
            controller_changes: Counter::default(),
            services: Gauge::default(),
            endpoints: Gauge::default(),
            names: Gauge::default(),
            watch_events: Family::default(),
            watch_restarts: Family::default(),
            invalid_objects: Family::default(),
            transfers: Family::default(),
            transfer_bytes: Counter::default(),
            notify_sent: Counter::default(),
            notify_acknowledged: Counter::default(),
            journal_bytes: Gauge::default(),
            serial: Gauge::default(),
        };
        let r = &mut metrics.registry;
        r.register(
            "headless_dns_programming_latency_seconds",
            "Time from a watch event (or manifests change) arriving to its answers being served",
            metrics.programming_latency.clone(),
        );
        r.register(
            "headless_dns_controller_batches",
            "Batches the controller applied; each publishes every Service it touched once",
            metrics.controller_batches.clone(),
        );
        r.register(
            "headless_dns_controller_changes",
            "Object changes the controller applied (changes / batches = coalescing)",
            metrics.controller_changes.clone(),
        );
        r.register(
            "headless_dns_services",
            "Services known",
            metrics.services.clone(),
        );
        r.register(
            "headless_dns_endpoints",
            "Endpoint addresses known, over all EndpointSlices and Endpoints",
            metrics.endpoints.clone(),
        );
        r.register(
            "headless_dns_names",
            "Names in the store (every zone serves the same names)",
            metrics.names.clone(),
        );
        r.register(
            "headless_dns_watch_events",
            "Kubernetes watch events received, by kind and event type",
            metrics.watch_events.clone(),
        );
        r.register(
            "headless_dns_watch_restarts",
            "Kubernetes watch errors after which the watch restarts (with backoff)",
            metrics.watch_restarts.clone(),
        );
        r.register(
            "headless_dns_invalid_objects",
            "Objects skipped because they cannot be converted, by kind",
            metrics.invalid_objects.clone(),
        );
        r.register(
            "headless_dns_transfers",
            "Zone transfers, by type (axfr, ixfr, ixfr_axfr) and result",
            metrics.transfers.clone(),
        );
        r.register(
            "headless_dns_transfer_bytes",
            "Bytes of zone transfer messages sent",
            metrics.transfer_bytes.clone(),
        );
        r.register(
            "headless_dns_notify_sent",
            "NOTIFY messages sent to secondaries, each try",
            metrics.notify_sent.clone(),
        );
        r.register(
            "headless_dns_notify_acknowledged",
            "NOTIFY messages a secondary answered with NOERROR",
            metrics.notify_acknowledged.clone(),
        );
        r.register(
            "headless_dns_journal_bytes",
            "Bytes the journal of zone changes (IXFR) holds",
            metrics.journal_bytes.clone(),
        );
        r.register(
            "headless_dns_zone_serial",
            "The zones' SOA serial",
            metrics.serial.clone(),
        );
        r.register(
            "headless_dns_snapshot_writes",
            "--snapshot files written, by result (ok, error)",
            metrics.snapshot_writes.clone(),
        );
        metrics
    }

    /// The state served comes from a snapshot written at `written_at` (Unix seconds), or,
    /// with `None`, from the source itself.
    pub fn serving_snapshot(&self, written_at: Option<u64>) {
        if let Ok(mut at) = self.snapshot_age.written_at.lock() {
            *at = written_at;
        }
    }

    /// Counts one zone transfer of `kind` that ended as `result`.
    pub fn transfer(&self, kind: &'static str, result: &'static str) {
        self.transfers
            .get_or_create(&[("type", kind), ("result", result)])
            .inc();
    }

    /// Counters for one more answering thread (or the TCP connections of one address).
    /// `Proto::Udp` counters are written with plain stores: give each to one thread only.
    pub fn query_stats(&self, proto: Proto) -> Arc<QueryStats> {
        let stats = Arc::new(QueryStats::new(proto));
        if let Ok(mut all) = self.queries.stats.lock() {
            all.push(stats.clone());
        }
        stats
    }

    /// Notes that `kind` is in sync now.
    pub fn synced(&self, kind: &'static str) {
        if let Ok(mut last) = self.sync_age.last.lock() {
            match last.iter_mut().find(|(k, _)| *k == kind) {
                Some(entry) => entry.1 = Instant::now(),
                None => last.push((kind, Instant::now())),
            }
        }
    }

    /// The Prometheus (OpenMetrics) text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail; an encoder error would be a bug in a collector.
        if let Err(error) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::warn!(%error, "metrics encoding failed");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slot_tables_follow_the_label_lists() {
        for (slot, (qtype, _)) in QTYPES.iter().enumerate() {
            assert_eq!(qtype_slot(*qtype), slot);
        }
        for (slot, (rcode, _)) in RCODES.iter().enumerate() {
            assert_eq!(rcode_slot(*rcode), slot);
        }
        assert_eq!(qtype_slot(15), QTYPES.len(), "MX is other");
        assert_eq!(qtype_slot(65535), QTYPES.len());
        assert_eq!(rcode_slot(9), RCODES.len());
        assert_eq!(rcode_slot(4095), RCODES.len());
    }

    #[test]
    fn query_stats_are_summed_per_label() {
        let metrics = Metrics::new();
        let a = metrics.query_stats(Proto::Udp);
        let b = metrics.query_stats(Proto::Udp);
        a.answered(rtype::A, rcode::NOERROR);
        b.answered(rtype::A, rcode::NXDOMAIN);
        b.answered(99, 12);
        a.timed(Duration::from_micros(7), 3);
        let text = metrics.encode();
        for line in [
            "headless_dns_dns_requests_total{proto=\"udp\",type=\"A\"} 2",
            "headless_dns_dns_requests_total{proto=\"udp\",type=\"other\"} 1",
            "headless_dns_dns_responses_total{proto=\"udp\",rcode=\"NXDOMAIN\"} 1",
            "headless_dns_dns_responses_total{proto=\"udp\",rcode=\"other\"} 1",
            "headless_dns_dns_request_duration_seconds_count{proto=\"udp\"} 3",
            "headless_dns_dns_request_duration_seconds_bucket{le=\"0.00001\",proto=\"udp\"} 3",
            "headless_dns_dns_requests_total{proto=\"tcp\",type=\"A\"} 0",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
    }
}
