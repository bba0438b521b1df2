//! `--endpoint-pod-names` (CoreDNS's `endpoint_pod_names`): endpoints without a hostname,
//! such as a Deployment's pods behind a headless Service, are named after their pod in
//! A/AAAA, SRV and PTR records instead of by dashed IP. From a manifests folder and from
//! the API double; an endpoint with a hostname keeps it either way.

use std::time::Duration;

use headless_dns::{Config, KubernetesSource, Source};
use serde_json::{Value, json};

use crate::api_double::ApiDouble;
use crate::support::{TestServer, dig, eventually, loopback_config};

/// Headless Service `api` in `demo`: two Deployment pods (no hostname) and one pod with a
/// hostname, as an EndpointSlice.
fn objects() -> Vec<Value> {
    let endpoint = |ip: &str, pod: &str, hostname: Option<&str>| {
        let mut endpoint = json!({
            "addresses": [ip],
            "conditions": {"ready": true},
            "targetRef": {"kind": "Pod", "name": pod, "namespace": "demo"}
        });
        if let Some(hostname) = hostname {
            endpoint["hostname"] = json!(hostname);
        }
        endpoint
    };
    vec![
        json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "api", "namespace": "demo"},
            "spec": {"clusterIP": "None", "ports": [{"name": "http", "port": 8080}]}
        }),
        json!({
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": "api-x1", "namespace": "demo",
                         "labels": {"kubernetes.io/service-name": "api"}},
            "addressType": "IPv4",
            "endpoints": [
                endpoint("10.244.9.1", "api-7d9f8b-x2k4p", None),
                endpoint("10.244.9.2", "api-7d9f8b-q8w1z", None),
                endpoint("10.244.9.3", "api-7d9f8b-zzzzz", Some("primary")),
            ],
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]
        }),
    ]
}

/// What dig says for the names the flag changes.
async fn names(server: &TestServer) -> [String; 4] {
    let short = |args: &'static [&'static str]| {
        let addr = server.addr;
        async move {
            let mut all = vec!["+short"];
            all.extend_from_slice(args);
            dig(addr, &all).await
        }
    };
    [
        short(&["api-7d9f8b-x2k4p.api.demo.svc.cluster.local"]).await,
        short(&["10-244-9-2.api.demo.svc.cluster.local"]).await,
        short(&["SRV", "_http._tcp.api.demo.svc.cluster.local"]).await,
        short(&["-x", "10.244.9.1"]).await,
    ]
}

/// The answers with the flag: pods by name, dashed IPs gone, the hostname kept.
fn by_pod_name() -> [String; 4] {
    [
        "10.244.9.1\n".into(),
        String::new(),
        // Names without an ordinal are listed by address.
        "0 33 8080 api-7d9f8b-x2k4p.api.demo.svc.cluster.local.\n\
         0 33 8080 api-7d9f8b-q8w1z.api.demo.svc.cluster.local.\n\
         0 33 8080 primary.api.demo.svc.cluster.local.\n"
            .into(),
        "api-7d9f8b-x2k4p.api.demo.svc.cluster.local.\n".into(),
    ]
}

/// The answers without it (the default): dashed IPs.
fn by_dashed_ip() -> [String; 4] {
    [
        String::new(),
        "10.244.9.2\n".into(),
        "0 33 8080 10-244-9-1.api.demo.svc.cluster.local.\n\
         0 33 8080 10-244-9-2.api.demo.svc.cluster.local.\n\
         0 33 8080 primary.api.demo.svc.cluster.local.\n"
            .into(),
        "10-244-9-1.api.demo.svc.cluster.local.\n".into(),
    ]
}

async fn from_manifests(endpoint_pod_names: bool) -> [String; 4] {
    let dir = tempfile::tempdir().unwrap();
    let yaml: Vec<String> = objects()
        .iter()
        .map(|o| serde_json::to_string(o).unwrap())
        .collect();
    std::fs::write(dir.path().join("api.yaml"), yaml.join("\n---\n")).unwrap();
    let config = Config {
        endpoint_pod_names,
        ..loopback_config()
    };
    let server = TestServer::start(config, Source::Manifests(dir.path().to_path_buf())).await;
    let got = names(&server).await;
    server.handle.shutdown().await;
    got
}

#[tokio::test]
async fn manifests_name_endpoints_after_their_pods_with_the_flag() {
    assert_eq!(from_manifests(true).await, by_pod_name());
    assert_eq!(from_manifests(false).await, by_dashed_ip());
}

#[tokio::test]
async fn the_kubernetes_source_names_endpoints_after_their_pods_with_the_flag() {
    for (flag, expected) in [(true, by_pod_name()), (false, by_dashed_ip())] {
        let double = ApiDouble::start().await;
        for object in objects() {
            double.apply(object);
        }
        let config = Config {
            endpoint_pod_names: flag,
            ..loopback_config()
        };
        let server = TestServer::start(
            config,
            Source::Kubernetes(KubernetesSource::new(double.client())),
        )
        .await;
        let ready = eventually(Duration::from_secs(20), || async {
            server.handle.is_ready()
        })
        .await;
        assert!(ready, "the first list completes");
        assert_eq!(
            names(&server).await,
            expected,
            "--endpoint-pod-names {flag}"
        );
        server.handle.shutdown().await;
    }
}

#[tokio::test]
async fn an_embedding_programs_feed_converts_with_the_flag_too() {
    let (feed, source) = headless_dns::Feed::new();
    let config = Config {
        endpoint_pod_names: true,
        ..loopback_config()
    };
    let server = TestServer::start(config, source).await;
    let manifests = objects()
        .into_iter()
        .map(|o| headless_dns::Manifest::from_document(o).unwrap().unwrap());
    feed.replace_all(manifests).unwrap();
    let ready = eventually(Duration::from_secs(10), || async {
        server.handle.is_ready()
    })
    .await;
    assert!(ready);
    assert_eq!(names(&server).await, by_pod_name());
    server.handle.shutdown().await;
}
