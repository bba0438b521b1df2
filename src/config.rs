//! The server's configuration: one type, filled from flags and environment by `cli` or built
//! directly by an embedding program, and checked in one place.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use crate::dns::cidr::Cidr;
use crate::dns::name::RelativeName;
use crate::dns::tsig::TsigKeySpec;
use crate::serve::affinity;
use crate::serve::answer::UdpTruncation;
use crate::serve::certs::CertificateFiles;

/// Everything the server needs besides its record source.
#[derive(Debug, Clone)]
pub struct Config {
    /// Addresses to serve on, UDP and TCP each. Port 0 picks a free port (the same for UDP
    /// and TCP); `ServerHandle` reports what was bound.
    pub listen: Vec<SocketAddr>,
    /// Forward zones, lowercase; the first is the primary (reverse answers name into it).
    pub zones: Vec<RelativeName>,
    /// The address ranges whose reverse zones are served (`10.0.0.0/8` is
    /// `10.in-addr.arpa`), each with its own SOA; empty serves `in-addr.arpa` and
    /// `ip6.arpa` whole.
    pub reverse_zones: Vec<Cidr>,
    /// The addresses of the name server the zones' NS record names, `ns.dns.<zone>` (the
    /// Service in front of the replicas, as CoreDNS answers with kube-dns's cluster IP);
    /// empty leaves that name without records.
    pub ns_addresses: Vec<IpAddr>,
    /// TTL of positive answers, in seconds (CoreDNS's default is 5).
    pub ttl: u32,
    /// TTL and SOA MINIMUM of negative answers (NXDOMAIN, NODATA), in seconds.
    pub negative_ttl: u32,
    /// Largest UDP response, and the payload size advertised in EDNS. 1232 is the DNS flag
    /// day 2020 value: it fits the IPv6 minimum MTU, so no answer is fragmented.
    pub max_udp_size: u16,
    /// What a UDP answer that does not fit holds, besides TC: the records that fit
    /// (`Partial`, for stub resolvers that cannot retry over TCP) or none.
    pub udp_truncation: UdpTruncation,
    /// A TCP connection with no complete query for this long is closed.
    pub tcp_idle_timeout: Duration,
    /// Connections open at once on each TCP, TLS and HTTPS listener; a newcomer beyond
    /// takes the place of the connection longest in its TLS handshake, else of the one idle
    /// longest, and is refused only when all are answering.
    pub max_tcp_connections: usize,
    /// Connections open at once on each such listener from one client address.
    pub max_connections_per_client: usize,
    /// A TLS handshake (DNS over TLS or HTTPS) not done in this long is abandoned.
    pub tls_handshake_timeout: Duration,
    /// How often the manifests folder is checked for changes even without a file event.
    pub reload_interval: Duration,
    /// Negative TTL (and SOA MINIMUM) of a StatefulSet ordinal whose pod has no address
    /// right now: short, so a pod that comes back is found again at once.
    pub slot_negative_ttl: u32,
    /// Answer NODATA for the ordinals a StatefulSet owns while their pod has no address,
    /// instead of NXDOMAIN (kubernetes issue 92559).
    pub ordinal_slots: bool,
    /// Name pods as soon as they have an address and are not terminating, ready or not;
    /// the Service's own answers stay ready-only.
    pub publish_unready_pod_names: bool,
    /// Name an endpoint without a hostname after its pod (`targetRef.name`, when that is a
    /// DNS label) in A/AAAA, SRV and PTR records, as CoreDNS's `endpoint_pod_names`,
    /// instead of by its dashed address.
    pub endpoint_pod_names: bool,
    /// The Multicluster Services zone (`clusterset.local`, the only one the MCS API allows
    /// today): ServiceImports and their EndpointSlices are read and served there; `None`
    /// reads none of them.
    pub clusterset_zone: Option<RelativeName>,
    /// This cluster's id in its clusterset when the API serves no `cluster.clusterset.k8s.io`
    /// ClusterProperty: it names this cluster's own imported endpoints and its StatefulSet
    /// pods' ordinal slots under `<id>.<svc>.<ns>.svc.<clusterset zone>`.
    pub cluster_id: Option<String>,
    /// Addresses to serve DNS over TLS on (RFC 7858; 853 is its port); needs
    /// `tls_certificate`.
    pub tls_listen: Vec<SocketAddr>,
    /// Addresses to serve DNS over HTTPS on (RFC 8484, HTTP/2, `/dns-query`); needs
    /// `tls_certificate`.
    pub https_listen: Vec<SocketAddr>,
    /// The certificate chain and key of both, PEM; re-read when the files change.
    pub tls_certificate: Option<CertificateFiles>,
    /// Addresses allowed zone transfers (AXFR, IXFR); none refuses every transfer, as before
    /// transfers were offered.
    pub transfer_allow: Vec<Cidr>,
    /// TSIG keys (RFC 8945). With any, a transfer must be signed with one of them; a signed
    /// query of any kind is checked and its response signed.
    pub tsig_keys: Vec<TsigKeySpec>,
    /// Secondaries to send a NOTIFY (RFC 1996) on each new serial.
    pub notify: Vec<SocketAddr>,
    /// The Lease (namespace, name) through which replicas elect the one that serves zone
    /// transfers and sends NOTIFY (Kubernetes source only); `None`: every replica does.
    pub transfer_lease: Option<(String, String)>,
    /// How long a transfer primary that stopped renewing keeps the role.
    pub transfer_lease_duration: Duration,
    /// This replica's identity in the Lease; `None`: `$POD_NAME`, else the host name.
    pub lease_identity: Option<String>,
    /// Bytes of recent changes kept for incremental transfers (IXFR); a secondary older than
    /// them gets the whole zone.
    pub ixfr_journal_size: usize,
    /// Zone transfers served at once; more are refused until one ends.
    pub max_transfers: usize,
    /// Where to serve `/healthz`, `/readyz` and `/metrics` over HTTP; `None` serves none.
    pub http: Option<SocketAddr>,
    /// Where the served state is saved (atomically, at most once per `snapshot_interval`,
    /// and on shutdown) and served from at the next start until the source has listed.
    pub snapshot: Option<PathBuf>,
    /// How often the snapshot is written at most.
    pub snapshot_interval: Duration,
    /// UDP sockets per listen address (`SO_REUSEPORT`), each served by its own task; match
    /// the runtime's worker threads.
    pub udp_workers: usize,
    /// Pin each UDP worker to one CPU and have the kernel hand a datagram to the worker on
    /// the CPU that received it ([`crate::affinity`]). Needs one worker per CPU this process
    /// may use, and a contiguous set of them (Linux only).
    pub socket_affinity: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: vec![SocketAddr::from(([127, 0, 0, 1], 5353))],
            zones: vec![parse_zone("cluster.local").unwrap_or_else(|_| RelativeName::apex())],
            reverse_zones: Vec::new(),
            clusterset_zone: None,
            cluster_id: None,
            ns_addresses: Vec::new(),
            ttl: 5,
            negative_ttl: 5,
            max_udp_size: 1232,
            udp_truncation: UdpTruncation::Partial,
            tcp_idle_timeout: Duration::from_secs(10),
            max_tcp_connections: 1024,
            max_connections_per_client: 256,
            tls_handshake_timeout: Duration::from_secs(3),
            reload_interval: Duration::from_secs(5),
            udp_workers: 1,
            snapshot: None,
            snapshot_interval: Duration::from_secs(10),
            http: None,
            tls_listen: Vec::new(),
            https_listen: Vec::new(),
            tls_certificate: None,
            transfer_allow: Vec::new(),
            tsig_keys: Vec::new(),
            notify: Vec::new(),
            transfer_lease: None,
            transfer_lease_duration: Duration::from_secs(15),
            lease_identity: None,
            ixfr_journal_size: 4 << 20,
            max_transfers: 4,
            slot_negative_ttl: 1,
            ordinal_slots: true,
            publish_unready_pod_names: false,
            endpoint_pod_names: false,
            socket_affinity: false,
        }
    }
}

/// A configuration that cannot work: the flag and what to change; the source, when there
/// is one, is the error that showed it (the CPU mask that could not be read).
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ConfigError {
    message: String,
    #[source]
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl ConfigError {
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            source: None,
        }
    }

    pub fn caused_by(
        message: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self {
            message: message.into(),
            source: Some(Box::new(source)),
        }
    }
}

/// Longest TTL RFC 2181 8 allows.
pub const MAX_TTL: u32 = 0x7FFF_FFFF;

impl Config {
    /// Checks the values that types alone cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let fail = |msg: String| Err(ConfigError::new(msg));
        if self.listen.is_empty() {
            return fail("--listen: give at least one ADDR:PORT".into());
        }
        if self.zones.is_empty() {
            return fail("--zone: give at least one zone, e.g. cluster.local".into());
        }
        for (i, zone) in self.zones.iter().enumerate() {
            if zone.is_apex() {
                return fail(
                    "--zone: the root zone cannot be served; give e.g. cluster.local".into(),
                );
            }
            if self.zones[..i].contains(zone) {
                return fail(format!("--zone {zone} is given twice"));
            }
            if zone.labels().last() == Some(b"arpa") {
                return fail(format!(
                    "--zone {zone}: reverse zones (in-addr.arpa, ip6.arpa) are served already; name them with --reverse-zone CIDR"
                ));
            }
        }
        if let Some(zone) = &self.clusterset_zone {
            if zone.is_apex() || zone.labels().last() == Some(b"arpa") {
                return fail(format!(
                    "--clusterset-zone {zone}: give a forward zone, clusterset.local as the MCS API defines it"
                ));
            }
            if self.zones.contains(zone) {
                return fail(format!(
                    "--clusterset-zone {zone} is also a --zone: the clusterset zone serves ServiceImports, the cluster zones Services; give each its own name"
                ));
            }
        }
        if let Some(id) = &self.cluster_id {
            if !crate::dns::name::is_dns1123_label(id) {
                return fail(format!(
                    "--cluster-id {id:?}: a cluster id is a DNS label (lowercase a-z, 0-9, '-', at most 63), e.g. the kube-system namespace's uid"
                ));
            }
            if self.clusterset_zone.is_none() {
                return fail(
                    "--cluster-id names this cluster in the clusterset zone: give --clusterset-zone clusterset.local too"
                        .into(),
                );
            }
        }
        let reverse_zones: usize = self
            .reverse_zones
            .iter()
            .map(|range| range.reverse_zones().len())
            .sum();
        if reverse_zones > 1024 {
            return fail(format!(
                "--reverse-zone: the ranges make {reverse_zones} zones; at most 1024 (a prefix on an octet boundary, /8, /16, /24, is one zone)"
            ));
        }
        if self.zones.len() > 200 {
            return fail("--zone: at most 200 zones".into());
        }
        if self.ttl > MAX_TTL || self.negative_ttl > MAX_TTL || self.slot_negative_ttl > MAX_TTL {
            return fail(format!(
                "--ttl, --negative-ttl and --slot-negative-ttl: at most {MAX_TTL} seconds"
            ));
        }
        if !(512..=65535).contains(&self.max_udp_size) {
            return fail(format!(
                "--max-udp-size {}: use 512 to 65535 (1232 avoids fragmentation)",
                self.max_udp_size
            ));
        }
        if !(1..=1024).contains(&self.udp_workers) {
            return fail(format!("--threads {}: use 1 to 1024", self.udp_workers));
        }
        self.worker_cpus()?;
        let encrypted = !self.tls_listen.is_empty() || !self.https_listen.is_empty();
        if encrypted && self.tls_certificate.is_none() {
            return fail(
                "--tls-listen and --https-listen need --tls-cert PATH and --tls-key PATH (PEM)"
                    .into(),
            );
        }
        if self.max_transfers == 0 {
            return fail("--max-transfers: at least 1".into());
        }
        if !self.notify.is_empty() && self.transfer_allow.is_empty() {
            return fail(
                "--notify tells secondaries to transfer the zones: allow them with --transfer-allow CIDR"
                    .into(),
            );
        }
        for spec in &self.tsig_keys {
            spec.key()
                .map_err(|e| ConfigError::new(format!("--tsig-key {spec:?}: {e}")))?;
        }
        if self.max_tcp_connections == 0 || self.max_connections_per_client == 0 {
            return fail(
                "--max-tcp-connections and --max-connections-per-client: at least 1".into(),
            );
        }
        if self.transfer_lease.is_some() && self.transfer_allow.is_empty() {
            return fail(
                "--transfer-lease elects who serves zone transfers: allow them with --transfer-allow CIDR"
                    .into(),
            );
        }
        if self.transfer_lease_duration < Duration::from_secs(1) {
            return fail("--transfer-lease-duration: at least 1s".into());
        }
        if self.snapshot_interval.is_zero() {
            return fail("--snapshot-interval must be longer than 0".into());
        }
        if let Some(path) = &self.snapshot {
            let folder = path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(std::path::Path::new("."));
            if !folder.is_dir() {
                return fail(format!(
                    "--snapshot {}: folder {} does not exist; create it or pick another path",
                    path.display(),
                    folder.display()
                ));
            }
        }
        if self.tls_handshake_timeout.is_zero() {
            return fail("--tls-handshake-timeout must be longer than 0".into());
        }
        if self.tcp_idle_timeout.is_zero() || self.reload_interval.is_zero() {
            return fail("--tcp-idle-timeout and --reload-interval must be longer than 0".into());
        }
        Ok(())
    }

    /// The election's settings, with `transfer_lease`: the identity from the configuration,
    /// `$POD_NAME` or the host name, and the pod to label from `$POD_NAMESPACE` and
    /// `$POD_NAME` (the downward API) when both are set.
    pub fn lease_settings(&self) -> Option<crate::source::lease::LeaseSettings> {
        let (namespace, name) = self.transfer_lease.clone()?;
        let pod_name = std::env::var("POD_NAME").ok().filter(|n| !n.is_empty());
        let pod_namespace = std::env::var("POD_NAMESPACE")
            .ok()
            .filter(|n| !n.is_empty());
        let identity = self
            .lease_identity
            .clone()
            .or_else(|| pod_name.clone())
            .or_else(|| {
                std::fs::read_to_string("/proc/sys/kernel/hostname")
                    .ok()
                    .map(|h| h.trim().to_owned())
            })
            .unwrap_or_else(|| format!("headless-dns-{}", std::process::id()));
        Some(crate::source::lease::LeaseSettings {
            namespace,
            name,
            identity,
            duration: self.transfer_lease_duration,
            pod: pod_namespace.zip(pod_name),
        })
    }

    /// With `socket_affinity`, the CPU each UDP worker of a listen address is pinned to
    /// (worker `k` gets `cpus[k]`); `None` without it.
    pub fn worker_cpus(&self) -> Result<Option<Vec<usize>>, ConfigError> {
        if !self.socket_affinity {
            return Ok(None);
        }
        let allowed = affinity::allowed_cpus().map_err(|e| {
            ConfigError::caused_by("--socket-affinity: cannot read this process's CPUs", e)
        })?;
        affinity::plan(&allowed, self.udp_workers)
            .map(Some)
            .map_err(|e| ConfigError::new(e.to_string()))
    }
}

/// A zone name such as `cluster.local` or `sts.example.internal.`: a valid domain name,
/// case-folded.
pub fn parse_zone(text: &str) -> Result<RelativeName, String> {
    let trimmed = text.trim_end_matches('.');
    let name = hickory_proto::rr::Name::from_ascii(trimmed)
        .map_err(|e| format!("{text:?} is not a domain name ({e}); e.g. cluster.local"))?;
    if trimmed.is_empty() || name.num_labels() == 0 {
        return Err(format!(
            "{text:?}: the root zone cannot be served; e.g. cluster.local"
        ));
    }
    let labels: Vec<String> = trimmed.split('.').map(str::to_owned).collect();
    RelativeName::from_labels(labels.iter().map(String::as_str))
        .map_err(|e| format!("{text:?}: {e}"))
}

/// A duration such as `10s`, `500ms`, `2m` or `10` (seconds).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration; e.g. 10s, 500ms, 2m"))?;
    match unit {
        "" | "s" => Ok(Duration::from_secs(value)),
        "ms" => Ok(Duration::from_millis(value)),
        "m" => Ok(Duration::from_secs(value.saturating_mul(60))),
        _ => Err(format!("{text:?}: unit {unit:?} is not one of ms, s, m")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zones() {
        fn check(text: &str, expected: Result<&str, ()>) {
            let got = parse_zone(text).map(|z| z.to_string()).map_err(|_| ());
            assert_eq!(got.as_deref().map_err(|_| ()), expected, "{text}");
        }
        check("cluster.local", Ok("cluster.local"));
        check("Cluster.Local.", Ok("cluster.local"));
        check("sts.example.internal", Ok("sts.example.internal"));
        check(".", Err(()));
        check("", Err(()));
        check("a..b", Err(()));
        check(&format!("{}.local", "x".repeat(64)), Err(()));
    }

    #[test]
    fn durations() {
        fn check(text: &str, expected: Option<Duration>) {
            assert_eq!(parse_duration(text).ok(), expected, "{text}");
        }
        check("10", Some(Duration::from_secs(10)));
        check("10s", Some(Duration::from_secs(10)));
        check("250ms", Some(Duration::from_millis(250)));
        check("2m", Some(Duration::from_secs(120)));
        check("ten", None);
        check("5h", None);
        check("-1", None);
    }

    #[test]
    fn validation() {
        assert!(Config::default().validate().is_ok());
        let mut twice = Config::default();
        twice.zones.push(twice.zones[0].clone());
        assert!(
            twice
                .validate()
                .unwrap_err()
                .to_string()
                .contains("given twice")
        );
        let small = Config {
            max_udp_size: 100,
            ..Config::default()
        };
        assert!(
            small
                .validate()
                .unwrap_err()
                .to_string()
                .contains("--max-udp-size")
        );
    }
}
