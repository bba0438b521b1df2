//! Command-line flags (each also read from a `HEADLESS_DNS_*` environment variable) into a
//! [`Config`]. The binary is this plus a call to the library.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use crate::config::{Config, ConfigError, MAX_TTL, parse_duration, parse_zone};
use crate::name::RelativeName;

/// Authoritative DNS for Kubernetes headless Services and StatefulSet pods.
///
/// Serves the Kubernetes DNS specification 1.1.0 (A/AAAA, SRV, PTR, CNAME, TXT) for the
/// objects in a folder of manifests, reloaded when the files change. Answers list
/// StatefulSet pods in ordinal order.
#[derive(Debug, Clone, Parser)]
#[command(name = "headless-dns", version, about, long_about)]
pub struct Args {
    /// A YAML or JSON manifest, or a folder of them (Services, EndpointSlices, Endpoints,
    /// StatefulSets; multi-document and `kind: List` files too), reloaded on change.
    #[arg(long, env = "HEADLESS_DNS_MANIFESTS", value_name = "PATH")]
    pub manifests: PathBuf,

    /// Address to serve DNS on, UDP and TCP. Repeat (or separate with commas) for several.
    #[arg(
        long,
        env = "HEADLESS_DNS_LISTEN",
        value_name = "ADDR:PORT",
        value_delimiter = ',',
        default_value = "127.0.0.1:5353"
    )]
    pub listen: Vec<SocketAddr>,

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

    /// Largest UDP response in bytes, also advertised in EDNS; larger answers set TC so
    /// clients retry over TCP.
    #[arg(long, env = "HEADLESS_DNS_MAX_UDP_SIZE", value_name = "BYTES", default_value_t = 1232,
          value_parser = clap::value_parser!(u16).range(512..))]
    pub max_udp_size: u16,

    /// Close a TCP connection after this long without a complete query (e.g. 10s, 500ms).
    #[arg(long, env = "HEADLESS_DNS_TCP_IDLE_TIMEOUT", value_name = "DURATION",
          default_value = "10s", value_parser = parse_duration)]
    pub tcp_idle_timeout: Duration,

    /// TCP connections served at once; further ones are closed at once.
    #[arg(long, env = "HEADLESS_DNS_MAX_TCP_CONNECTIONS", value_name = "N", default_value_t = 1024,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_tcp_connections: u32,

    /// Check the manifests for changes this often even without a file event (e.g. 5s).
    #[arg(long, env = "HEADLESS_DNS_RELOAD_INTERVAL", value_name = "DURATION",
          default_value = "5s", value_parser = parse_duration)]
    pub reload_interval: Duration,

    /// Threads answering queries: the runtime's worker threads, and UDP sockets per listen
    /// address (SO_REUSEPORT). Default: the CPUs this process may run on.
    #[arg(long, env = "HEADLESS_DNS_THREADS", value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub threads: Option<u32>,

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

impl Args {
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
            ttl: self.ttl,
            negative_ttl: self.negative_ttl,
            max_udp_size: self.max_udp_size,
            tcp_idle_timeout: self.tcp_idle_timeout,
            max_tcp_connections: self.max_tcp_connections as usize,
            reload_interval: self.reload_interval,
            udp_workers: self.threads(),
            slot_negative_ttl: self.slot_negative_ttl,
            ordinal_slots: !self.no_ordinal_slots,
            publish_unready_pod_names: self.publish_unready_pod_names,
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
        check(&[], "--manifests");
    }
}
