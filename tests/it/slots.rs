//! Ordinal stability: a StatefulSet pod that is being replaced answers NODATA with a short
//! negative TTL, never NXDOMAIN; names above the StatefulSet's ordinals do not exist.

use hickory_net::proto::op::{Message, ResponseCode};
use hickory_net::proto::rr::{RData, RecordType};

use headless_dns::{Config, Source};

use crate::support::{TestServer, data, loopback_config};

/// web: 3 replicas (ordinals 0-2) behind nginx; web-0 ready, web-1 starting (not ready,
/// not terminating), web-2 terminating.
const CLUSTER: &str = "\
apiVersion: v1
kind: Service
metadata: {name: nginx, namespace: demo}
spec: {clusterIP: None, ports: [{name: web, port: 80}]}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: web, namespace: demo}
spec: {serviceName: nginx, replicas: 3, selector: {}, template: {}}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: nginx-a, namespace: demo, labels: {kubernetes.io/service-name: nginx}}
addressType: IPv4
endpoints:
- {addresses: [10.1.0.10], hostname: web-0, conditions: {ready: true}}
- {addresses: [10.1.0.11], hostname: web-1, conditions: {ready: false, serving: false, terminating: false}}
- {addresses: [10.1.0.12], hostname: web-2, conditions: {ready: false, serving: true, terminating: true}}
ports: [{name: web, port: 80}]
";

async fn serve(config: Config, manifests: &str) -> (TestServer, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("cluster.yaml"), manifests).unwrap();
    let server = TestServer::start(config, Source::Manifests(dir.path().to_owned())).await;
    (server, dir)
}

/// RCODE, answers, and the negative TTL (SOA TTL and MINIMUM) of a negative answer.
fn negative(response: &Message) -> (ResponseCode, usize, Option<(u32, u32)>) {
    let soa = response.authorities.first().and_then(|r| match &r.data {
        RData::SOA(soa) => Some((r.ttl, soa.minimum)),
        _ => None,
    });
    (response.metadata.response_code, response.answers.len(), soa)
}

#[tokio::test]
async fn missing_pods_of_a_stateful_set_are_nodata_with_the_slot_ttl() {
    let (server, _dir) = serve(loopback_config(), CLUSTER).await;
    let ask = |host: &'static str| {
        let server = &server;
        async move {
            server
                .ask(
                    &format!("{host}.nginx.demo.svc.cluster.local."),
                    RecordType::A,
                )
                .await
        }
    };
    assert_eq!(data(&ask("web-0").await), ["10.1.0.10"]);
    // Starting and terminating pods: the names exist, without an address for now.
    assert_eq!(
        negative(&ask("web-1").await),
        (ResponseCode::NoError, 0, Some((1, 1)))
    );
    assert_eq!(
        negative(&ask("web-2").await),
        (ResponseCode::NoError, 0, Some((1, 1)))
    );
    // Above the StatefulSet's ordinals: no such pod (the zone's negative TTL).
    assert_eq!(
        negative(&ask("web-3").await),
        (ResponseCode::NXDomain, 0, Some((5, 5)))
    );
    // The Service itself lists ready pods only.
    assert_eq!(
        data(
            &server
                .ask("nginx.demo.svc.cluster.local.", RecordType::A)
                .await
        ),
        ["10.1.0.10"]
    );
    server.handle.shutdown().await;
}

#[tokio::test]
async fn slots_can_be_turned_off() {
    let config = Config {
        ordinal_slots: false,
        ..loopback_config()
    };
    let (server, _dir) = serve(config, CLUSTER).await;
    let web1 = server
        .ask("web-1.nginx.demo.svc.cluster.local.", RecordType::A)
        .await;
    assert_eq!(web1.metadata.response_code, ResponseCode::NXDomain);
    server.handle.shutdown().await;
}

#[tokio::test]
async fn unready_pod_names_resolve_when_asked_for() {
    let config = Config {
        publish_unready_pod_names: true,
        ..loopback_config()
    };
    let (server, _dir) = serve(config, CLUSTER).await;
    // The starting pod is named at once; the terminating one is not.
    let web1 = server
        .ask("web-1.nginx.demo.svc.cluster.local.", RecordType::A)
        .await;
    assert_eq!(data(&web1), ["10.1.0.11"]);
    let web2 = server
        .ask("web-2.nginx.demo.svc.cluster.local.", RecordType::A)
        .await;
    assert_eq!(negative(&web2), (ResponseCode::NoError, 0, Some((1, 1))));
    // The Service's answers and SRV stay ready-only.
    assert_eq!(
        data(
            &server
                .ask("nginx.demo.svc.cluster.local.", RecordType::A)
                .await
        ),
        ["10.1.0.10"]
    );
    let srv = server
        .ask("_web._tcp.nginx.demo.svc.cluster.local.", RecordType::SRV)
        .await;
    assert_eq!(data(&srv), ["0 100 80 web-0.nginx.demo.svc.cluster.local."]);
    server.handle.shutdown().await;
}

#[tokio::test]
async fn a_service_whose_pods_are_all_away_still_exists() {
    let all_away = CLUSTER.replace(
        "conditions: {ready: true}",
        "conditions: {ready: false, terminating: true}",
    );
    let (server, _dir) = serve(loopback_config(), &all_away).await;
    let service = server
        .ask("nginx.demo.svc.cluster.local.", RecordType::A)
        .await;
    assert_eq!(negative(&service).0, ResponseCode::NoError);
    assert_eq!(negative(&service).1, 0);
    let web0 = server
        .ask("web-0.nginx.demo.svc.cluster.local.", RecordType::A)
        .await;
    assert_eq!(negative(&web0), (ResponseCode::NoError, 0, Some((1, 1))));
    server.handle.shutdown().await;
}

#[tokio::test]
async fn ordinals_start_where_the_stateful_set_says() {
    let shifted = CLUSTER.replace("replicas: 3,", "replicas: 3, ordinals: {start: 1},");
    let (server, _dir) = serve(loopback_config(), &shifted).await;
    // Slots are web-1..web-3 now: web-0 still answers (it has an address), web-3 is a slot,
    // web-4 does not exist.
    let web3 = server
        .ask("web-3.nginx.demo.svc.cluster.local.", RecordType::A)
        .await;
    assert_eq!(negative(&web3), (ResponseCode::NoError, 0, Some((1, 1))));
    let web4 = server
        .ask("web-4.nginx.demo.svc.cluster.local.", RecordType::A)
        .await;
    assert_eq!(web4.metadata.response_code, ResponseCode::NXDomain);
    server.handle.shutdown().await;
}
