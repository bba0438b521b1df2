//! The embedding API: an operator feeds objects to an in-process server.

use hickory_net::proto::op::ResponseCode;
use hickory_net::proto::rr::RecordType;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;

use headless_dns::{Feed, FeedError, InvalidObject};

use crate::support::{TestServer, data, loopback_config};

fn headless(name: &str) -> Service {
    crate::support::object(serde_json::json!({
        "metadata": {"name": name, "namespace": "ops"},
        "spec": {"clusterIP": "None", "ports": [{"name": "grpc", "port": 9000}]}
    }))
}

fn slice(service: &str, pods: &[(&str, &str)]) -> EndpointSlice {
    let endpoints: Vec<serde_json::Value> = pods
        .iter()
        .map(|(host, ip)| serde_json::json!({"addresses": [ip], "hostname": host}))
        .collect();
    crate::support::object(serde_json::json!({
        "metadata": {
            "name": format!("{service}-abc"),
            "namespace": "ops",
            "labels": {"kubernetes.io/service-name": service}
        },
        "addressType": "IPv4",
        "endpoints": endpoints,
        "ports": [{"name": "grpc", "port": 9000}]
    }))
}

#[tokio::test]
async fn a_feed_drives_the_answers() {
    let (feed, source) = Feed::new();
    let server = TestServer::start(loopback_config(), source).await;
    let name = "raft.ops.svc.cluster.local.";

    // Nothing delivered yet: SERVFAIL, never a false NXDOMAIN.
    let early = server.ask(name, RecordType::A).await;
    assert_eq!(early.metadata.response_code, ResponseCode::ServFail);
    assert!(!server.handle.is_ready());

    feed.replace_all([
        headless("raft").into(),
        slice("raft", &[("raft-1", "10.1.0.2"), ("raft-0", "10.1.0.1")]).into(),
    ])
    .unwrap();
    let addr = server.addr;
    assert!(
        crate::support::eventually(std::time::Duration::from_secs(5), || async move {
            data(&crate::support::ask(addr, name, RecordType::A).await) == ["10.1.0.1", "10.1.0.2"]
        })
        .await
    );
    assert!(server.handle.is_ready());

    // Scale up through an update of the slice.
    feed.apply(slice(
        "raft",
        &[
            ("raft-0", "10.1.0.1"),
            ("raft-1", "10.1.0.2"),
            ("raft-2", "10.1.0.3"),
        ],
    ))
    .unwrap();
    assert!(
        crate::support::eventually(std::time::Duration::from_secs(5), || async move {
            data(
                &crate::support::ask(addr, "raft-2.raft.ops.svc.cluster.local.", RecordType::A)
                    .await,
            ) == ["10.1.0.3"]
        })
        .await
    );

    // Deleting the Service removes every name, the namespace's included.
    feed.delete(headless("raft")).unwrap();
    assert!(
        crate::support::eventually(std::time::Duration::from_secs(5), || async move {
            crate::support::ask(addr, "ops.svc.cluster.local.", RecordType::A)
                .await
                .metadata
                .response_code
                == ResponseCode::NXDomain
        })
        .await
    );
    let gone = server
        .ask("raft-0.raft.ops.svc.cluster.local.", RecordType::A)
        .await;
    assert_eq!(gone.metadata.response_code, ResponseCode::NXDomain);
    server.handle.shutdown().await;
}

#[tokio::test]
async fn invalid_objects_are_refused_with_their_name() {
    let (feed, source) = Feed::new();
    let server = TestServer::start(loopback_config(), source).await;
    let bad: Service = crate::support::object(serde_json::json!({
        "metadata": {"name": "broken", "namespace": "ops"},
        "spec": {"clusterIP": "not-an-ip"}
    }));
    match feed.apply(bad) {
        Err(FeedError::Invalid(InvalidObject { kind, name, source })) => {
            assert_eq!((kind, name.as_str()), ("Service", "ops/broken"));
            let reason = source.to_string();
            assert!(reason.contains("spec.clusterIP"), "{reason}");
            // The address parser's own error is kept as the cause.
            assert!(std::error::Error::source(&source).is_some(), "{source:?}");
        }
        other => panic!("expected InvalidObject, got {other:?}"),
    }
    server.handle.shutdown().await;
    // After shutdown the feed says so instead of losing objects silently.
    assert!(matches!(feed.synced(), Err(FeedError::Stopped)));
}

#[test]
fn dropping_the_handle_stops_the_server() {
    // A server dropped without `shutdown` (an embedding program that panicked, say) must
    // not keep its threads alive and block its runtime from shutting down.
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let addr = runtime.block_on(async {
            let (_feed, source) = Feed::new();
            let handle = headless_dns::start(loopback_config(), source)
                .await
                .unwrap();
            handle.local_addrs()[0]
            // `handle` dropped here
        });
        drop(runtime);
        let _ = done_tx.send(addr);
    });
    let addr = done_rx
        .recv_timeout(std::time::Duration::from_secs(10))
        .expect("the runtime shut down within 10 s of the handle being dropped");
    // The port is free again: the UDP workers are gone.
    assert!(
        crate::support::eventually_blocking(std::time::Duration::from_secs(5), || {
            std::net::UdpSocket::bind(addr).is_ok()
        }),
        "{addr} still bound"
    );
}
