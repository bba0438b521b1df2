//! Command-line flags (each also read from a `HEADLESS_DNS_*` environment variable) into a
//! [`Config`]. The binary is this plus a call to the library.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use crate::config::{Config, ConfigError, MAX_TTL, parse_duration, parse_zone};
use crate::dns::cidr::Cidr;
use crate::dns::name::{RelativeName, is_dns1123_label};
use crate::dns::tsig::TsigKeySpec;
use crate::serve::answer::UdpTruncation;
use crate::serve::certs::CertificateFiles;
use crate::source::kubernetes::EndpointsApi;
use crate::source::selector;

/// Authoritative DNS for Kubernetes headless Services and StatefulSet pods.
///
/// Serves the Kubernetes DNS specification 1.1.0 (A/AAAA, SRV, PTR, CNAME, TXT) for the
/// Services, EndpointSlices and StatefulSets of a cluster (watched through the API) or of
/// a folder of manifests (reloaded when the files change). Answers list StatefulSet pods in
/// ordinal order.
#[derive(Debug, Clone, Parser)]
#[command(name = "headless-dns", version, about, long_about)]
pub struct Args {
    /// Serve a YAML or JSON manifest, or a folder of them (Services, EndpointSlices,
    /// Endpoints, StatefulSets; multi-document and `kind: List` files too), reloaded on
    /// change, instead of watching a cluster.
    #[arg(long, env = "HEADLESS_DNS_MANIFESTS", value_name = "PATH",
          conflicts_with_all = ["kubeconfig", "context", "namespaces", "label_selector", "endpoints_api"])]
    pub manifests: Option<PathBuf>,

    /// Kubeconfig of the cluster to watch. Default: $KUBECONFIG, then ~/.kube/config, then
    /// the in-cluster service account.
    #[arg(long, env = "HEADLESS_DNS_KUBECONFIG", value_name = "PATH")]
    pub kubeconfig: Option<PathBuf>,

    /// Kubeconfig context to use instead of the current one.
    #[arg(long, env = "HEADLESS_DNS_CONTEXT", value_name = "NAME")]
    pub context: Option<String>,

    /// Watch only this namespace. Repeat (or separate with commas) for several; default all.
    #[arg(long = "namespace", env = "HEADLESS_DNS_NAMESPACE", value_name = "NS",
          value_delimiter = ',', value_parser = parse_namespace)]
    pub namespaces: Vec<String>,

    /// Serve only Services matching this label selector (e.g. `app=db,tier!=test`),
    /// filtered by the API server.
    #[arg(long, env = "HEADLESS_DNS_LABEL_SELECTOR", value_name = "SELECTOR",
          value_parser = parse_label_selector)]
    pub label_selector: Option<String>,

    /// Where endpoints come from: `endpointslices` (discovery.k8s.io/v1) or `endpoints`
    /// (legacy v1, for clusters older than 1.21).
    #[arg(long, env = "HEADLESS_DNS_ENDPOINTS_API", value_name = "API",
          value_parser = ["endpointslices", "endpoints"])]
    pub endpoints_api: Option<String>,

    /// Address to serve DNS on, UDP and TCP. Repeat (or separate with commas) for several.
    #[arg(
        long,
        env = "HEADLESS_DNS_LISTEN",
        value_name = "ADDR:PORT",
        value_delimiter = ',',
        default_value = "127.0.0.1:5353"
    )]
    pub listen: Vec<SocketAddr>,

    /// Serve DNS over TLS (RFC 7858) here; 853 is its port. Repeat (or separate with
    /// commas) for several. Needs --tls-cert and --tls-key.
    #[arg(
        long,
        env = "HEADLESS_DNS_TLS_LISTEN",
        value_name = "ADDR:PORT",
        value_delimiter = ','
    )]
    pub tls_listen: Vec<SocketAddr>,

    /// Serve DNS over HTTPS (RFC 8484, HTTP/2, path /dns-query) here; 443 is its port.
    /// Repeat (or separate with commas) for several. Needs --tls-cert and --tls-key.
    #[arg(
        long,
        env = "HEADLESS_DNS_HTTPS_LISTEN",
        value_name = "ADDR:PORT",
        value_delimiter = ','
    )]
    pub https_listen: Vec<SocketAddr>,

    /// Certificate chain of --tls-listen and --https-listen, PEM, leaf first. Re-read when
    /// the file changes (cert-manager, a Secret volume): new handshakes use the new one.
    #[arg(
        long,
        env = "HEADLESS_DNS_TLS_CERT",
        value_name = "PATH",
        requires = "tls_key"
    )]
    pub tls_cert: Option<PathBuf>,

    /// Private key of --tls-cert, PEM (PKCS#8, PKCS#1 or SEC1).
    #[arg(
        long,
        env = "HEADLESS_DNS_TLS_KEY",
        value_name = "PATH",
        requires = "tls_cert"
    )]
    pub tls_key: Option<PathBuf>,

    /// Allow zone transfers (AXFR, IXFR) to these addresses (CIDRs, or lone addresses).
    /// Repeat (or separate with commas) for several. Default: none, every transfer refused.
    #[arg(
        long = "transfer-allow",
        env = "HEADLESS_DNS_TRANSFER_ALLOW",
        value_name = "CIDR",
        value_delimiter = ','
    )]
    pub transfer_allow: Vec<Cidr>,

    /// TSIG key (RFC 8945) as NAME:ALGORITHM:BASE64SECRET (hmac-sha256, -sha384, -sha512;
    /// `dig -y` takes the same key as ALGORITHM:NAME:SECRET). With one, transfers must be
    /// signed with it, and NOTIFYs are. Repeat for several.
    #[arg(
        long = "tsig-key",
        env = "HEADLESS_DNS_TSIG_KEY",
        value_name = "NAME:ALG:SECRET"
    )]
    pub tsig_keys: Vec<TsigKeySpec>,

    /// Send a NOTIFY here (a secondary) each time the zones change, retried until it is
    /// answered. Repeat (or separate with commas) for several.
    #[arg(
        long,
        env = "HEADLESS_DNS_NOTIFY",
        value_name = "ADDR:PORT",
        value_delimiter = ','
    )]
    pub notify: Vec<SocketAddr>,

    /// Elect one replica to serve zone transfers and send NOTIFY through this
    /// coordination.k8s.io Lease (Kubernetes source); the others refuse transfers, so a
    /// secondary may list every replica as its primary. As NAMESPACE/NAME.
    #[arg(long, env = "HEADLESS_DNS_TRANSFER_LEASE", value_name = "NAMESPACE/NAME",
          value_parser = parse_lease)]
    pub transfer_lease: Option<(String, String)>,

    /// How long a transfer primary that stopped renewing keeps the role (the Lease's
    /// leaseDurationSeconds); it renews every fifth of it.
    #[arg(long, env = "HEADLESS_DNS_TRANSFER_LEASE_DURATION", value_name = "DURATION",
          default_value = "15s", value_parser = parse_duration)]
    pub transfer_lease_duration: Duration,

    /// This replica's identity in the transfer Lease. Default: $POD_NAME, else the host name.
    #[arg(
        long,
        env = "HEADLESS_DNS_TRANSFER_LEASE_IDENTITY",
        value_name = "NAME"
    )]
    pub transfer_lease_identity: Option<String>,

    /// Bytes of recent changes kept for incremental transfers (IXFR); older secondaries get
    /// the whole zone (AXFR).
    #[arg(long, env = "HEADLESS_DNS_IXFR_JOURNAL_SIZE", value_name = "BYTES",
          default_value_t = 4 << 20)]
    pub ixfr_journal_size: usize,

    /// Zone transfers served at once; more are refused until one ends.
    #[arg(long, env = "HEADLESS_DNS_MAX_TRANSFERS", value_name = "N", default_value_t = 4,
          value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub max_transfers: u32,

    /// Serve /healthz, /readyz and /metrics over HTTP here; `off` serves none.
    #[arg(long, env = "HEADLESS_DNS_HTTP", value_name = "ADDR:PORT", default_value = "127.0.0.1:8080",
          value_parser = parse_http)]
    pub http: HttpListen,

    /// On SIGTERM, fail /readyz but keep answering this long before stopping (lameduck),
    /// so Kubernetes routes no new queries here. A second signal stops at once.
    #[arg(long, env = "HEADLESS_DNS_SHUTDOWN_GRACE", value_name = "DURATION",
          default_value = "0s", value_parser = parse_duration)]
    pub shutdown_grace: Duration,

    /// Zone to be authoritative for; every zone serves the same records. Repeat (or separate
    /// with commas) for stub domains; the first is the primary, used in reverse answers.
    #[arg(
        long = "zone",
        env = "HEADLESS_DNS_ZONE",
        value_name = "ZONE",
        value_delimiter = ',',
        default_value = "cluster.local",
        value_parser = parse_zone
    )]
    pub zones: Vec<RelativeName>,

    /// Serve only the reverse zones of these address ranges (CIDRs such as 10.0.0.0/8 or
    /// fd00::/8; between octet or nibble boundaries, every zone of the next boundary), each
    /// with its own SOA, instead of all of in-addr.arpa and ip6.arpa. Repeat (or separate
    /// with commas) for several.
    #[arg(
        long = "reverse-zone",
        env = "HEADLESS_DNS_REVERSE_ZONE",
        value_name = "CIDR",
        value_delimiter = ','
    )]
    pub reverse_zones: Vec<Cidr>,

    /// Address of ns.dns.<zone>, the name server the zones' NS record names: the cluster IP
    /// of the Service in front of the replicas. Repeat for IPv4 and IPv6. Default: none,
    /// and that name has no records.
    #[arg(
        long = "ns-address",
        env = "HEADLESS_DNS_NS_ADDRESS",
        value_name = "IP",
        value_delimiter = ','
    )]
    pub ns_addresses: Vec<IpAddr>,

    /// TTL of answers, in seconds.
    #[arg(long, env = "HEADLESS_DNS_TTL", value_name = "SECONDS", default_value_t = 5,
          value_parser = clap::value_parser!(u32).range(0..=i64::from(MAX_TTL)))]
    pub ttl: u32,

    /// TTL of negative answers (NXDOMAIN, NODATA) and the SOA MINIMUM, in seconds.
    #[arg(long, env = "HEADLESS_DNS_NEGATIVE_TTL", value_name = "SECONDS", default_value_t = 5,
          value_parser = clap::value_parser!(u32).range(0..=i64::from(MAX_TTL)))]
    pub negative_ttl: u32,

    /// Negative TTL of a StatefulSet pod name whose pod has no address right now (being
    /// created, restarted, rescheduled): it answers NODATA with this TTL, not NXDOMAIN.
    #[arg(long, env = "HEADLESS_DNS_SLOT_NEGATIVE_TTL", value_name = "SECONDS", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(0..=i64::from(MAX_TTL)))]
    pub slot_negative_ttl: u32,

    /// Answer NXDOMAIN, as the specification does, for StatefulSet pods without an address,
    /// instead of NODATA with --slot-negative-ttl.
    #[arg(long, env = "HEADLESS_DNS_NO_ORDINAL_SLOTS")]
    pub no_ordinal_slots: bool,

    /// Resolve a pod's own name as soon as it has an address and is not terminating, ready
    /// or not; the Service name still lists ready pods only.
    #[arg(long, env = "HEADLESS_DNS_PUBLISH_UNREADY_POD_NAMES")]
    pub publish_unready_pod_names: bool,

    /// Name endpoints that have no hostname (Deployment pods behind a headless Service)
    /// after their pod, `<pod>.<svc>.<ns>.svc.<zone>`, in A/AAAA, SRV and PTR records, as
    /// CoreDNS's `endpoint_pod_names`; without it they are named by dashed IP.
    #[arg(long, env = "HEADLESS_DNS_ENDPOINT_POD_NAMES")]
    pub endpoint_pod_names: bool,

    /// Serve the Multicluster Services DNS names (KEP-1645) in this zone: ServiceImports
    /// (multicluster.x-k8s.io) and their EndpointSlices become
    /// `<svc>.<ns>.svc.<ZONE>` and `<hostname>.<cluster-id>.<svc>.<ns>.svc.<ZONE>`.
    /// The MCS API defines it as clusterset.local. Default: off, none of them is read.
    #[arg(long, env = "HEADLESS_DNS_CLUSTERSET_ZONE", value_name = "ZONE", value_parser = parse_zone)]
    pub clusterset_zone: Option<RelativeName>,

    /// This cluster's id in its clusterset (a DNS label), when the API serves no
    /// cluster.clusterset.k8s.io ClusterProperty: it names this cluster's own imported
    /// endpoints (slices without a source-cluster label) and its StatefulSet pods' slots.
    #[arg(long, env = "HEADLESS_DNS_CLUSTER_ID", value_name = "ID")]
    pub cluster_id: Option<String>,

    /// Largest UDP response in bytes, also advertised in EDNS; larger answers set TC so
    /// clients retry over TCP.
    #[arg(long, env = "HEADLESS_DNS_MAX_UDP_SIZE", value_name = "BYTES", default_value_t = 1232,
          value_parser = clap::value_parser!(u16).range(512..))]
    pub max_udp_size: u16,

    /// What a UDP answer too large for the client holds, besides TC: `partial`, the records
    /// that fit, in order (for resolvers that cannot retry over TCP: busybox nslookup, musl
    /// before 1.2.4), or `empty`, none.
    #[arg(long, env = "HEADLESS_DNS_UDP_TRUNCATION", value_name = "MODE",
          default_value = "partial", value_parser = ["partial", "empty"])]
    pub udp_truncation: String,

    /// Close a TCP connection after this long without a complete query (e.g. 10s, 500ms).
    #[arg(long, env = "HEADLESS_DNS_TCP_IDLE_TIMEOUT", value_name = "DURATION",
          default_value = "10s", value_parser = parse_duration)]
    pub tcp_idle_timeout: Duration,

    /// Connections open at once on each TCP, TLS and HTTPS listener. A new one beyond takes
    /// the place of the connection longest in its TLS handshake, else of the one idle
    /// longest; it is refused only when all of them are answering.
    #[arg(long, env = "HEADLESS_DNS_MAX_TCP_CONNECTIONS", value_name = "N", default_value_t = 1024,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_tcp_connections: u32,

    /// Connections open at once on each TCP, TLS and HTTPS listener from one client address;
    /// more from it are refused.
    #[arg(long, env = "HEADLESS_DNS_MAX_CONNECTIONS_PER_CLIENT", value_name = "N",
          default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections_per_client: u32,

    /// A TLS handshake (DNS over TLS or HTTPS) not done in this long is abandoned (e.g. 3s).
    #[arg(long, env = "HEADLESS_DNS_TLS_HANDSHAKE_TIMEOUT", value_name = "DURATION",
          default_value = "3s", value_parser = parse_duration)]
    pub tls_handshake_timeout: Duration,

    /// Save the served state to this file (what DNS keeps of each object), at most once
    /// per --snapshot-interval and on shutdown, and at start serve it at once, before the
    /// first list, so a replica restarted during an API outage is not empty.
    #[arg(long, env = "HEADLESS_DNS_SNAPSHOT", value_name = "PATH")]
    pub snapshot: Option<PathBuf>,

    /// How often the snapshot is written at most (e.g. 10s).
    #[arg(long, env = "HEADLESS_DNS_SNAPSHOT_INTERVAL", value_name = "DURATION",
          default_value = "10s", value_parser = parse_duration)]
    pub snapshot_interval: Duration,

    /// Check the manifests for changes this often even without a file event (e.g. 5s).
    #[arg(long, env = "HEADLESS_DNS_RELOAD_INTERVAL", value_name = "DURATION",
          default_value = "5s", value_parser = parse_duration)]
    pub reload_interval: Duration,

    /// Threads answering queries: the runtime's worker threads, and UDP sockets per listen
    /// address (SO_REUSEPORT). Default: the CPUs this process may run on.
    #[arg(long, env = "HEADLESS_DNS_THREADS", value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub threads: Option<u32>,

    /// Pin each UDP worker to one CPU and steer each datagram to the worker on the CPU that
    /// received it (as Knot DNS's socket-affinity). Needs one worker per CPU, on a
    /// contiguous set of CPUs (a cpuset); a network card with fewer receive queues than
    /// workers leaves some workers idle.
    #[arg(long, env = "HEADLESS_DNS_SOCKET_AFFINITY")]
    pub socket_affinity: bool,

    /// Log filter: a level (error, warn, info, debug, trace) or tracing directives such as
    /// `info,headless_dns=debug`.
    #[arg(
        long,
        env = "HEADLESS_DNS_LOG",
        value_name = "FILTER",
        default_value = "info"
    )]
    pub log: String,
}

/// `--http`: an address, or off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpListen(pub Option<SocketAddr>);

fn parse_http(text: &str) -> Result<HttpListen, String> {
    if text.eq_ignore_ascii_case("off") {
        return Ok(HttpListen(None));
    }
    text.parse()
        .map(|addr| HttpListen(Some(addr)))
        .map_err(|_| format!("{text:?} is not ADDR:PORT (e.g. 0.0.0.0:8080) or off"))
}

/// `--transfer-lease`: NAMESPACE/NAME, both DNS labels (a Lease name may be a subdomain).
fn parse_lease(text: &str) -> Result<(String, String), String> {
    let bad =
        || format!("{text:?} is not NAMESPACE/NAME (e.g. headless-dns/headless-dns-transfer)");
    let (namespace, name) = text.split_once('/').ok_or_else(bad)?;
    let name_ok = !name.is_empty() && name.len() <= 253 && name.split('.').all(is_dns1123_label);
    if !is_dns1123_label(namespace) || !name_ok {
        return Err(bad());
    }
    Ok((namespace.to_owned(), name.to_owned()))
}

fn parse_namespace(text: &str) -> Result<String, String> {
    if is_dns1123_label(text) {
        Ok(text.to_string())
    } else {
        Err(format!(
            "{text:?} is not a namespace name (lowercase letters, digits, '-')"
        ))
    }
}

/// A label selector the API server accepts (checked here: it would refuse every list).
fn parse_label_selector(text: &str) -> Result<String, String> {
    selector::check(text)
        .map(|()| text.to_owned())
        .map_err(|e| e.to_string())
}

/// Where the records come from, as the flags say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceArgs {
    Manifests(PathBuf),
    Kubernetes {
        kubeconfig: Option<PathBuf>,
        context: Option<String>,
        namespaces: Vec<String>,
        label_selector: Option<String>,
        endpoints_api: EndpointsApi,
    },
}

impl Args {
    /// `--manifests`, else the Kubernetes API with the watch flags.
    pub fn source(&self) -> SourceArgs {
        match &self.manifests {
            Some(path) => SourceArgs::Manifests(path.clone()),
            None => SourceArgs::Kubernetes {
                kubeconfig: self.kubeconfig.clone(),
                context: self.context.clone(),
                namespaces: self.namespaces.clone(),
                label_selector: self.label_selector.clone(),
                endpoints_api: match self.endpoints_api.as_deref() {
                    Some("endpoints") => EndpointsApi::Endpoints,
                    _ => EndpointsApi::EndpointSlices,
                },
            },
        }
    }

    /// `--threads`, else the CPUs available to this process (its affinity mask, so
    /// `taskset -c 0` means one).
    pub fn threads(&self) -> usize {
        match self.threads {
            Some(n) => n as usize,
            None => std::thread::available_parallelism().map_or(1, |n| n.get()),
        }
    }

    /// The configuration these flags describe, checked.
    pub fn config(&self) -> Result<Config, ConfigError> {
        let config = Config {
            listen: self.listen.clone(),
            zones: self.zones.clone(),
            reverse_zones: self.reverse_zones.clone(),
            clusterset_zone: self.clusterset_zone.clone(),
            cluster_id: self.cluster_id.clone(),
            ns_addresses: self.ns_addresses.clone(),
            ttl: self.ttl,
            negative_ttl: self.negative_ttl,
            max_udp_size: self.max_udp_size,
            udp_truncation: match self.udp_truncation.as_str() {
                "empty" => UdpTruncation::Empty,
                _ => UdpTruncation::Partial,
            },
            tcp_idle_timeout: self.tcp_idle_timeout,
            max_tcp_connections: self.max_tcp_connections as usize,
            max_connections_per_client: self.max_connections_per_client as usize,
            tls_handshake_timeout: self.tls_handshake_timeout,
            reload_interval: self.reload_interval,
            transfer_lease: self.transfer_lease.clone(),
            transfer_lease_duration: self.transfer_lease_duration,
            lease_identity: self.transfer_lease_identity.clone(),
            snapshot: self.snapshot.clone(),
            snapshot_interval: self.snapshot_interval,
            udp_workers: self.threads(),
            http: self.http.0,
            tls_listen: self.tls_listen.clone(),
            https_listen: self.https_listen.clone(),
            transfer_allow: self.transfer_allow.clone(),
            tsig_keys: self.tsig_keys.clone(),
            notify: self.notify.clone(),
            ixfr_journal_size: self.ixfr_journal_size,
            max_transfers: self.max_transfers as usize,
            tls_certificate: self
                .tls_cert
                .clone()
                .zip(self.tls_key.clone())
                .map(|(chain, key)| CertificateFiles { chain, key }),
            slot_negative_ttl: self.slot_negative_ttl,
            ordinal_slots: !self.no_ordinal_slots,
            publish_unready_pod_names: self.publish_unready_pod_names,
            endpoint_pod_names: self.endpoint_pod_names,
            socket_affinity: self.socket_affinity,
        };
        config.validate()?;
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Args, String> {
        Args::try_parse_from(["headless-dns"].iter().chain(args)).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_and_repeats() {
        let args = parse(&[
            "--manifests",
            "config/",
            "--zone",
            "cluster.local",
            "--zone",
            "sts.example.internal",
        ])
        .unwrap();
        let config = args.config().unwrap();
        assert_eq!(config.zones.len(), 2);
        assert_eq!(config.listen, vec!["127.0.0.1:5353".parse().unwrap()]);
        assert_eq!(config.ttl, 5);
    }

    #[test]
    fn bad_values_name_the_flag() {
        fn check(args: &[&str], needle: &str) {
            let err = parse(args).unwrap_err();
            assert!(err.contains(needle), "{err:?} lacks {needle:?}");
        }
        check(&["--manifests", "x", "--listen", "localhost"], "--listen");
        check(&["--manifests", "x", "--zone", "a..b"], "--zone");
        check(
            &["--manifests", "x", "--max-udp-size", "100"],
            "--max-udp-size",
        );
        check(
            &["--manifests", "x", "--tcp-idle-timeout", "soon"],
            "--tcp-idle-timeout",
        );
        check(&["--manifests", "x", "--ttl=-1"], "--ttl");
        check(&["--namespace", "Demo"], "--namespace");
        check(&["--http", "8080"], "--http");
        check(&["--manifests", "x", "--namespace", "demo"], "--namespace");
        check(&["--endpoints-api", "slices"], "--endpoints-api");
        check(&["--label-selector", "app in prod"], "--label-selector");
    }

    #[test]
    fn source_follows_the_flags() {
        let args = parse(&["--manifests", "config/"]).unwrap();
        assert_eq!(args.source(), SourceArgs::Manifests("config/".into()));
        let args = parse(&[
            "--namespace",
            "demo,data",
            "--namespace",
            "web",
            "--label-selector",
            "dns=on",
            "--endpoints-api",
            "endpoints",
            "--http",
            "off",
        ])
        .unwrap();
        assert_eq!(
            args.source(),
            SourceArgs::Kubernetes {
                kubeconfig: None,
                context: None,
                namespaces: vec!["demo".into(), "data".into(), "web".into()],
                label_selector: Some("dns=on".into()),
                endpoints_api: EndpointsApi::Endpoints,
            }
        );
        assert_eq!(args.config().unwrap().http, None);
    }
}
