//! `--snapshot`: a replica restarted while the API server is away serves its last known
//! state at once, then the first list replaces it whole; files that do not read start it
//! cold, never half loaded.

use std::path::Path;
use std::time::Duration;

use headless_dns::{Config, KubernetesSource, Source};
use hickory_net::proto::op::ResponseCode;
use hickory_net::proto::rr::RecordType;
use serde_json::json;

use crate::api_double::ApiDouble;
use crate::support::{TestServer, data, eventually, loopback_config};

const WAIT: Duration = Duration::from_secs(20);

fn service(name: &str) -> serde_json::Value {
    json!({"apiVersion": "v1", "kind": "Service",
           "metadata": {"name": name, "namespace": "demo"},
           "spec": {"clusterIP": "None", "ports": [{"name": "web", "port": 80}]}})
}

fn slice(service: &str, pods: &[(&str, &str)]) -> serde_json::Value {
    let endpoints: Vec<_> = pods
        .iter()
        .map(|(host, ip)| json!({"addresses": [ip], "hostname": host, "conditions": {"ready": true}}))
        .collect();
    json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
           "metadata": {"name": format!("{service}-x"), "namespace": "demo",
                        "labels": {"kubernetes.io/service-name": service}},
           "addressType": "IPv4", "endpoints": endpoints,
           "ports": [{"name": "web", "port": 80, "protocol": "TCP"}]})
}

fn config(path: &Path) -> Config {
    Config {
        snapshot: Some(path.to_path_buf()),
        snapshot_interval: Duration::from_millis(100),
        http: Some("127.0.0.1:0".parse().unwrap()),
        ..loopback_config()
    }
}

async fn start(double: &ApiDouble, path: &Path) -> TestServer {
    TestServer::start(
        config(path),
        Source::Kubernetes(KubernetesSource::new(double.client())),
    )
    .await
}

/// (RCODE, addresses) of an A query.
async fn a(server: &TestServer, name: &str) -> (ResponseCode, Vec<String>) {
    let response = crate::support::udp_message(
        server.addr,
        &crate::support::query(name, RecordType::A, Some(1232)),
    )
    .await;
    (response.metadata.response_code, data(&response))
}

fn metric(server: &TestServer, name: &str) -> Option<f64> {
    server
        .handle
        .metrics_text()
        .lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

#[tokio::test]
async fn a_restart_during_an_api_outage_serves_the_snapshot_then_the_first_list() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state");
    let double = ApiDouble::start().await;
    double.apply(service("web"));
    double.apply(slice(
        "web",
        &[("web-0", "10.244.1.10"), ("web-1", "10.244.2.11")],
    ));
    double.apply(service("gone"));
    double.apply(slice("gone", &[("gone-0", "10.244.3.1")]));

    // A first life: synced, saved, stopped (the last state is written on the way out).
    let first = start(&double, &path).await;
    assert!(eventually(WAIT, || async { first.handle.is_ready() }).await);
    // Written while it runs (every 100 ms here, once something changed)...
    assert!(
        eventually(WAIT, || async { path.exists() }).await,
        "written while running"
    );
    let serial = first.handle.serial();
    // ...and once more on the way out.
    first.handle.shutdown().await;
    assert!(path.exists(), "the snapshot is written");
    tokio::time::sleep(Duration::from_millis(1100)).await;

    // The API server goes away, and while it is, `gone` is deleted and web-1 moves.
    double.set_outage(true);
    double.delete("v1", "Service", "demo", "gone");
    double.delete("discovery.k8s.io/v1", "EndpointSlice", "demo", "gone-x");
    double.apply(slice(
        "web",
        &[("web-0", "10.244.1.10"), ("web-1", "10.244.9.11")],
    ));

    // The restart: ready at once, serving what was saved, its serial not going back.
    let second = start(&double, &path).await;
    assert!(second.handle.is_ready(), "ready before any list");
    let http = second.handle.http_addr().unwrap();
    assert_eq!(crate::support::http_get(http, "/readyz").await.0, 200);
    assert_eq!(
        a(&second, "web-1.web.demo.svc.cluster.local.").await,
        (ResponseCode::NoError, vec!["10.244.2.11".to_owned()])
    );
    assert_eq!(
        a(&second, "gone-0.gone.demo.svc.cluster.local.").await.0,
        ResponseCode::NoError
    );
    assert!(second.handle.serial() >= serial, "the serial continues");
    let age = metric(&second, "headless_dns_snapshot_age_seconds").unwrap();
    assert!(age >= 1.0, "the served state is a second old: {age}");

    // The API server returns: the first list replaces the snapshot whole.
    double.set_outage(false);
    let caught_up = eventually(WAIT, || async {
        a(&second, "web-1.web.demo.svc.cluster.local.").await
            == (ResponseCode::NoError, vec!["10.244.9.11".to_owned()])
    })
    .await;
    assert!(caught_up, "the change made during the outage is served");
    let deleted = eventually(WAIT, || async {
        a(&second, "gone-0.gone.demo.svc.cluster.local.").await.0 == ResponseCode::NXDomain
    })
    .await;
    assert!(deleted, "what was deleted during the outage is gone");
    assert!(
        eventually(WAIT, || async {
            metric(&second, "headless_dns_snapshot_age_seconds") == Some(0.0)
        })
        .await,
        "no longer serving the snapshot"
    );
    // And the snapshot follows: a third life without an API server serves the new state.
    second.handle.shutdown().await;
    double.set_outage(true);
    let third = start(&double, &path).await;
    assert_eq!(
        a(&third, "web-1.web.demo.svc.cluster.local.").await,
        (ResponseCode::NoError, vec!["10.244.9.11".to_owned()])
    );
    assert_eq!(
        a(&third, "gone-0.gone.demo.svc.cluster.local.").await.0,
        ResponseCode::NXDomain
    );
    third.handle.shutdown().await;
}

#[tokio::test]
async fn a_truncated_corrupt_or_foreign_snapshot_starts_cold() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state");
    let double = ApiDouble::start().await;
    double.apply(service("web"));
    double.apply(slice("web", &[("web-0", "10.244.1.10")]));
    let first = start(&double, &path).await;
    assert!(eventually(WAIT, || async { first.handle.is_ready() }).await);
    first.handle.shutdown().await;
    let good = std::fs::read(&path).unwrap();
    double.set_outage(true);

    let mut corrupt = good.clone();
    let last = corrupt.len() - 1;
    corrupt[last] ^= 0xff;
    let mut other_version = good.clone();
    other_version[10] = 99;
    for (what, bytes) in [
        ("truncated", good[..good.len() / 2].to_vec()),
        ("corrupt", corrupt),
        ("another version", other_version),
        ("not a snapshot", b"apiVersion: v1\nkind: List\n".to_vec()),
        ("empty", Vec::new()),
    ] {
        std::fs::write(&path, &bytes).unwrap();
        let server = start(&double, &path).await;
        // Cold: nothing served until a list, never a false NXDOMAIN.
        assert!(!server.handle.is_ready(), "{what}: not ready");
        assert_eq!(
            a(&server, "web-0.web.demo.svc.cluster.local.").await.0,
            ResponseCode::ServFail,
            "{what}"
        );
        server.handle.shutdown().await;
    }
    // And a good one still loads.
    std::fs::write(&path, &good).unwrap();
    let server = start(&double, &path).await;
    assert!(server.handle.is_ready());
    assert_eq!(
        a(&server, "web-0.web.demo.svc.cluster.local.").await,
        (ResponseCode::NoError, vec!["10.244.1.10".to_owned()])
    );
    server.handle.shutdown().await;
}
