//! What the benchmarks that drive a server share: flags, the objects of a headless Service
//! as the API serves them, a raw A query, and reading a process from /proc and HTTP.
//! Included with `#[path = "common.rs"] mod common;` (benchmarks are separate crates).

use std::str::FromStr;

use serde_json::{Value, json};

/// `--flag VALUE` from the command line, else `default`.
pub fn arg<T: FromStr>(flag: &str, default: T) -> T {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == flag)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A headless Service `ns/name` with port `web`, its StatefulSet and one EndpointSlice of
/// ready pods `name-0 ..` at `ips`.
pub fn headless(ns: &str, name: &str, ips: &[String]) -> [Value; 3] {
    [
        json!({"apiVersion": "v1", "kind": "Service",
               "metadata": {"name": name, "namespace": ns},
               "spec": {"clusterIP": "None",
                        "ports": [{"name": "web", "port": 80, "protocol": "TCP"}]}}),
        json!({"apiVersion": "apps/v1", "kind": "StatefulSet",
               "metadata": {"name": name, "namespace": ns},
               "spec": {"serviceName": name, "replicas": ips.len(),
                        "selector": {"matchLabels": {"app": name}},
                        "template": {"metadata": {"labels": {"app": name}},
                                     "spec": {"containers": []}}}}),
        slice(ns, name, ips),
    ]
}

/// The EndpointSlice of [`headless`]: pod `name-i` at `ips[i]`, ready.
pub fn slice(ns: &str, name: &str, ips: &[String]) -> Value {
    let endpoints: Vec<Value> = ips
        .iter()
        .enumerate()
        .map(|(i, ip)| {
            json!({"addresses": [ip], "hostname": format!("{name}-{i}"),
                   "conditions": {"ready": true}})
        })
        .collect();
    json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
           "metadata": {"name": format!("{name}-x"), "namespace": ns,
                        "labels": {"kubernetes.io/service-name": name}},
           "addressType": "IPv4", "endpoints": endpoints,
           "ports": [{"name": "web", "port": 80, "protocol": "TCP"}]})
}

/// An A query for `name`, RD set, no EDNS.
pub fn a_query(id: u16, name: &str) -> Vec<u8> {
    let mut msg = id.to_be_bytes().to_vec();
    msg.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.split('.').filter(|l| !l.is_empty()) {
        msg.push(label.len() as u8);
        msg.extend_from_slice(label.as_bytes());
    }
    msg.extend_from_slice(&[0, 0, 1, 0, 1]);
    msg
}

/// A field of /proc/PID/status in KiB (`VmRSS:`, `VmHWM:`); 0 when unreadable.
pub fn status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// A loopback port free for UDP and, in practice, TCP too (the server binds both).
pub fn free_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// `GET path` on loopback; the body, or `None` unless the server answers 200.
pub async fn http_get(port: u16, path: &str) -> Option<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut raw = String::new();
    stream.read_to_string(&mut raw).await.ok()?;
    raw.starts_with("HTTP/1.1 200")
        .then(|| raw.split_once("\r\n\r\n").map(|(_, b)| b.to_string()))
        .flatten()
}

/// Waits until the server on `port` says `/readyz` 200; panics after 300 s.
pub async fn wait_ready(port: u16) {
    let started = std::time::Instant::now();
    while http_get(port, "/readyz").await.is_none() {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(300),
            "not ready in 300 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// How many watch lists have completed (`init_done` events), from a /metrics text.
pub fn init_done(metrics: &str) -> u64 {
    metrics
        .lines()
        .filter(|l| l.starts_with("headless_dns_watch_events_total") && l.contains("init_done"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}
