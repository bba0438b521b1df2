//! The Multicluster Services DNS names (`--clusterset-zone clusterset.local`): every record
//! kind of the specification (KEP-1645 `specification.md`, schema 1.0.0) from the demo's
//! manifests, each ServiceImport version from the API double (list, watch, relist) with the
//! changes an MCS controller makes, two replicas answering byte for byte alike, a real
//! resolver (unbound with a stub zone, busybox nslookup) and Knot as a secondary.

use std::net::SocketAddr;
use std::time::Duration;

use headless_dns::config::parse_zone;
use headless_dns::{Config, KubernetesSource, Source};
use hickory_net::proto::op::{Message, ResponseCode};
use hickory_net::proto::rr::{RData, RecordType};
use serde_json::{Value, json};

use crate::api_double::ApiDouble;
use crate::support::{
    TestServer, Unbound, dig, eventually, free_port, knot, loopback_config, query, run,
    udp_exchange, udp_message,
};

const ZONE: &str = "clusterset.local";

fn clusterset_config() -> Config {
    Config {
        clusterset_zone: Some(parse_zone(ZONE).unwrap()),
        ..loopback_config()
    }
}

/// `dig +short` of `args`.
async fn short(addr: SocketAddr, args: &[&str]) -> String {
    let mut all = vec!["+short"];
    all.extend_from_slice(args);
    dig(addr, &all).await
}

/// The RCODE and the answer count of a query over UDP.
async fn status(addr: SocketAddr, name: &str, rtype: RecordType) -> (ResponseCode, usize) {
    let response = udp_message(addr, &query(name, rtype, Some(1232))).await;
    (response.metadata.response_code, response.answers.len())
}

/// The authority section's SOA owner of a negative answer.
async fn negative_soa(addr: SocketAddr, name: &str) -> Option<String> {
    let response = udp_message(addr, &query(name, RecordType::A, Some(1232))).await;
    response
        .authorities
        .iter()
        .find(|r| r.record_type() == RecordType::SOA)
        .map(|r| r.name.to_string())
}

#[tokio::test]
async fn the_demo_answers_every_record_kind_of_the_specification() {
    let server = TestServer::demo_with(clusterset_config()).await;
    let addr = server.addr;
    // 2.2: the schema version.
    assert_eq!(
        short(addr, &["TXT", "dns-version.clusterset.local"]).await,
        "\"1.0.0\"\n"
    );
    // 2.4.1: every ready endpoint of every cluster, clusters by id, ordinals in order.
    assert_eq!(
        short(addr, &["cockroach.demo.svc.clusterset.local"]).await,
        "10.244.40.10\n10.244.40.11\n10.244.40.12\n10.245.40.10\n10.245.40.11\n10.245.40.12\n"
    );
    // ... and `<hostname>.<clusterid>.<svc>.<ns>.svc.<zone>` per endpoint.
    assert_eq!(
        short(
            addr,
            &["cockroach-1.west.cockroach.demo.svc.clusterset.local"]
        )
        .await,
        "10.245.40.11\n"
    );
    assert_eq!(
        short(
            addr,
            &["cockroach-1.east.cockroach.demo.svc.clusterset.local"]
        )
        .await,
        "10.244.40.11\n"
    );
    // 2.4.2: SRV per (endpoint, named port), targeting those names, their addresses in the
    // additional section.
    let srv = "_grpc._tcp.cockroach.demo.svc.clusterset.local";
    let targets: String = ["east", "west"]
        .iter()
        .flat_map(|c| {
            (0..3).map(move |i| {
                format!("0 16 26257 cockroach-{i}.{c}.cockroach.demo.svc.clusterset.local.\n")
            })
        })
        .collect();
    assert_eq!(short(addr, &["SRV", srv]).await, targets);
    let additional = dig(addr, &["+noall", "+additional", "SRV", srv]).await;
    let additional = additional.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        additional
            .contains("cockroach-2.west.cockroach.demo.svc.clusterset.local. 5 IN A 10.245.40.12"),
        "{additional}"
    );
    // 2.4.3: PTR for an address with no cluster-local name; a local pod keeps its own.
    assert_eq!(
        short(addr, &["-x", "10.245.40.11"]).await,
        "cockroach-1.west.cockroach.demo.svc.clusterset.local.\n"
    );
    assert_eq!(
        short(addr, &["-x", "10.244.40.11"]).await,
        "cockroach-1.cockroach.demo.svc.cluster.local.\n"
    );
    // 2.4.4: `<clusterid>.<svc>` holds no record: NODATA, the empty non-terminal it is.
    let cluster = "west.cockroach.demo.svc.clusterset.local";
    assert_eq!(
        status(addr, cluster, RecordType::A).await,
        (ResponseCode::NoError, 0)
    );
    assert_eq!(
        status(
            addr,
            "cockroach-9.west.cockroach.demo.svc.clusterset.local",
            RecordType::A
        )
        .await,
        (ResponseCode::NXDomain, 0)
    );
    assert_eq!(
        negative_soa(addr, "nothing.demo.svc.clusterset.local")
            .await
            .as_deref(),
        Some("clusterset.local.")
    );
    // 2.3: a ClusterSetIP import: its IP, SRV per named port to its own name, its PTR.
    let public = "cockroach-public.demo.svc.clusterset.local";
    assert_eq!(short(addr, &[public]).await, "10.43.0.26\n");
    assert_eq!(
        short(addr, &["SRV", &format!("_sql._tcp.{public}")]).await,
        format!("0 100 26257 {public}.\n")
    );
    assert_eq!(
        short(addr, &["SRV", &format!("_http._tcp.{public}")]).await,
        format!("0 100 8080 {public}.\n")
    );
    assert_eq!(
        short(addr, &["-x", "10.43.0.26"]).await,
        format!("{public}.\n")
    );
    // 2.3.4: no name per cluster for a ClusterSetIP import.
    assert_eq!(
        status(addr, &format!("east.{public}"), RecordType::A).await,
        (ResponseCode::NXDomain, 0)
    );
    // The cluster zone is what it was: the local Service and its pods.
    assert_eq!(
        short(addr, &["cockroach.demo.svc.cluster.local"]).await,
        "10.244.40.10\n10.244.40.11\n10.244.40.12\n"
    );
    // Over TCP too.
    assert_eq!(
        short(
            addr,
            &[
                "+tcp",
                "cockroach-0.west.cockroach.demo.svc.clusterset.local"
            ]
        )
        .await,
        "10.245.40.10\n"
    );
    server.handle.shutdown().await;
}

#[tokio::test]
async fn without_the_flag_the_imports_are_skipped_and_the_zone_is_not_served() {
    let server = TestServer::demo().await;
    assert_eq!(
        status(
            server.addr,
            "cockroach.demo.svc.clusterset.local",
            RecordType::A
        )
        .await,
        (ResponseCode::Refused, 0)
    );
    assert_eq!(
        short(server.addr, &["cockroach.demo.svc.cluster.local"]).await,
        "10.244.40.10\n10.244.40.11\n10.244.40.12\n"
    );
    server.handle.shutdown().await;
}

/// A local StatefulSet pod being replaced keeps its slot under this cluster's id: NODATA
/// with the slot's short negative TTL, never NXDOMAIN; the cluster id comes from
/// `--cluster-id` when no ClusterProperty names it.
#[tokio::test]
async fn a_local_pod_being_replaced_keeps_its_slot_under_the_flags_cluster_id() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(crate::support::demo_manifests().join("cockroach.yaml"))
        .unwrap()
        // No ClusterProperty: the flag names this cluster.
        .replace("kind: ClusterProperty", "kind: ConfigMap")
        // cockroach-2 is away: gone from this cluster's imported slice.
        .replace(
            "- addresses: [\"10.244.40.12\"]\n  hostname: cockroach-2\nports:\n- name: grpc\n  port: 26257\n  protocol: TCP\n---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: cockroach-west",
            "ports:\n- name: grpc\n  port: 26257\n  protocol: TCP\n---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: cockroach-west",
        );
    std::fs::write(dir.path().join("cockroach.yaml"), text).unwrap();
    let config = Config {
        cluster_id: Some("east".into()),
        ..clusterset_config()
    };
    let server = TestServer::start(config, Source::Manifests(dir.path().to_path_buf())).await;
    let addr = server.addr;
    let away = "cockroach-2.east.cockroach.demo.svc.clusterset.local";
    let response = udp_message(addr, &query(away, RecordType::A, Some(1232))).await;
    assert_eq!(response.metadata.response_code, ResponseCode::NoError);
    assert!(response.answers.is_empty());
    let ttl = response.authorities.first().map(|r| r.ttl);
    assert_eq!(ttl, Some(1), "the slot's negative TTL");
    assert_eq!(
        short(addr, &["cockroach.demo.svc.clusterset.local"]).await,
        "10.244.40.10\n10.244.40.11\n10.245.40.10\n10.245.40.11\n10.245.40.12\n"
    );
    // A west pod that is gone has no slot: StatefulSets are this cluster's only.
    assert_eq!(
        status(
            addr,
            "cockroach-3.west.cockroach.demo.svc.clusterset.local",
            RecordType::A
        )
        .await,
        (ResponseCode::NXDomain, 0)
    );
    server.handle.shutdown().await;
}

/// The demo's objects for the API double, the ServiceImports in `version`'s shape.
fn objects(version: &str) -> Vec<Value> {
    let slice = |name: &str, cluster: &str, subnet: u8, ready: [bool; 3]| {
        json!({
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": name, "namespace": "demo", "labels": {
                "multicluster.kubernetes.io/service-name": "cockroach",
                "multicluster.kubernetes.io/source-cluster": cluster}},
            "addressType": "IPv4",
            "endpoints": (0..3).map(|i| json!({
                "addresses": [format!("10.{subnet}.40.1{i}")],
                "hostname": format!("cockroach-{i}"),
                "conditions": {"ready": ready[i]}})).collect::<Vec<_>>(),
            "ports": [{"name": "grpc", "port": 26257, "protocol": "TCP"}]
        })
    };
    vec![
        import(
            version,
            "cockroach",
            json!({"type": "Headless",
            "ports": [{"name": "grpc", "port": 26257, "protocol": "TCP"}]}),
        ),
        slice("cockroach-east", "east", 244, [true; 3]),
        slice("cockroach-west", "west", 245, [true; 3]),
        json!({"apiVersion": "about.k8s.io/v1alpha1", "kind": "ClusterProperty",
            "metadata": {"name": "cluster.clusterset.k8s.io"}, "spec": {"value": "east"}}),
    ]
}

/// A ServiceImport of `version` with `fields` (`type`, `ips`, `ports`) where that version
/// keeps them: under `spec`, or at the top level from v1alpha2.
fn import(version: &str, name: &str, fields: Value) -> Value {
    let mut object = json!({"apiVersion": format!("multicluster.x-k8s.io/{version}"),
        "kind": "ServiceImport", "metadata": {"name": name, "namespace": "demo"}});
    if version == "v1alpha2" {
        for (k, v) in fields.as_object().unwrap() {
            object[k] = v.clone();
        }
    } else {
        object["spec"] = fields;
    }
    object
}

async fn until(addr: SocketAddr, args: &[&str], expected: &str) -> bool {
    eventually(Duration::from_secs(10), || async {
        short(addr, args).await == expected
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_serviceimport_version_is_read_from_the_api_with_every_change() {
    // The API server's versions, preferred first: the server reads the preferred one.
    for versions in [
        &["v1alpha1"][..],
        &["v1beta1", "v1alpha1"],
        &["v1alpha2", "v1beta1"],
    ] {
        let version = versions[0];
        let double = ApiDouble::start().await;
        double.install_crd("multicluster.x-k8s.io", versions);
        double.install_crd("about.k8s.io", &["v1alpha1"]);
        for object in objects(version) {
            double.apply(object);
        }
        let server = TestServer::start(
            clusterset_config(),
            Source::Kubernetes(KubernetesSource::new(double.client())),
        )
        .await;
        let addr = server.addr;
        let all =
            "10.244.40.10\n10.244.40.11\n10.244.40.12\n10.245.40.10\n10.245.40.11\n10.245.40.12\n";
        let name = "cockroach.demo.svc.clusterset.local";
        assert!(until(addr, &[name], all).await, "{version}: listed");
        let watched: Vec<String> = double
            .requests()
            .into_iter()
            .filter(|r| r.contains("/serviceimports"))
            .collect();
        let preferred = format!("/apis/multicluster.x-k8s.io/{version}/serviceimports");
        assert!(
            !watched.is_empty() && watched.iter().all(|r| r.contains(&preferred)),
            "{version} is the version read: {watched:?}"
        );
        // A remote endpoint turns not ready: out of every answer.
        let mut west = objects(version)[2].clone();
        west["endpoints"][2]["conditions"]["ready"] = json!(false);
        double.apply(west.clone());
        let five = "10.244.40.10\n10.244.40.11\n10.244.40.12\n10.245.40.10\n10.245.40.11\n";
        assert!(until(addr, &[name], five).await, "{version}: not ready");
        let gone = "cockroach-2.west.cockroach.demo.svc.clusterset.local";
        assert_eq!(
            status(addr, gone, RecordType::A).await.0,
            ResponseCode::NXDomain
        );
        // The slice moves to another cluster: its names move with it.
        west["metadata"]["labels"]["multicluster.kubernetes.io/source-cluster"] = json!("central");
        double.apply(west);
        let moved = "cockroach-0.central.cockroach.demo.svc.clusterset.local";
        assert!(
            until(addr, &[moved], "10.245.40.10\n").await,
            "{version}: moved"
        );
        assert_eq!(
            status(
                addr,
                "west.cockroach.demo.svc.clusterset.local",
                RecordType::A
            )
            .await
            .0,
            ResponseCode::NXDomain
        );
        // A relist (history compacted, watches cut) brings what changed meanwhile.
        double.expire_history();
        double.cut_watches();
        double.apply(import(
            version,
            "cockroach-public",
            json!({"type": "ClusterSetIP", "ips": ["10.43.0.26"], "ports": []}),
        ));
        let public = "cockroach-public.demo.svc.clusterset.local";
        assert!(
            until(addr, &[public], "10.43.0.26\n").await,
            "{version}: relisted"
        );
        // The import changes type: one clusterset IP, no name per cluster.
        double.apply(import(
            version,
            "cockroach",
            json!({"type": "ClusterSetIP", "ips": ["10.43.0.27"],
                "ports": [{"name": "grpc", "port": 26257, "protocol": "TCP"}]}),
        ));
        assert!(
            until(addr, &[name], "10.43.0.27\n").await,
            "{version}: retyped"
        );
        assert_eq!(
            status(addr, moved, RecordType::A).await.0,
            ResponseCode::NXDomain
        );
        assert_eq!(
            short(addr, &["-x", "10.43.0.27"]).await,
            format!("{name}.\n")
        );
        // The import deleted: its names go.
        double.delete(
            &format!("multicluster.x-k8s.io/{version}"),
            "ServiceImport",
            "demo",
            "cockroach",
        );
        let deleted = eventually(Duration::from_secs(10), || async {
            status(addr, name, RecordType::A).await.0 == ResponseCode::NXDomain
        })
        .await;
        assert!(deleted, "{version}: deleted");
        assert_eq!(short(addr, &["-x", "10.43.0.27"]).await, "");
        server.handle.shutdown().await;
    }
}

#[tokio::test]
async fn without_the_crds_the_rest_of_the_server_runs_as_before() {
    let double = ApiDouble::start().await;
    double.apply(json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "api", "namespace": "demo"},
        "spec": {"clusterIP": "10.96.0.5", "ports": [{"name": "http", "port": 80}]}}));
    let server = TestServer::start(
        clusterset_config(),
        Source::Kubernetes(KubernetesSource::new(double.client())),
    )
    .await;
    let addr = server.addr;
    assert!(until(addr, &["api.demo.svc.cluster.local"], "10.96.0.5\n").await);
    assert_eq!(
        short(addr, &["TXT", "dns-version.clusterset.local"]).await,
        "\"1.0.0\"\n"
    );
    assert!(
        !double
            .requests()
            .iter()
            .any(|r| r.contains("serviceimports")),
        "no watch of a resource the API server does not serve"
    );
    server.handle.shutdown().await;
}

/// Every name of the clusterset zone, with its types, as an AXFR of `addr` lists them.
async fn zone_names(addr: SocketAddr) -> Vec<(String, String)> {
    let axfr = dig(addr, &["+noall", "+answer", "AXFR", ZONE]).await;
    let mut names: Vec<(String, String)> = axfr
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let name = fields.next()?.to_owned();
            let rtype = fields.nth(2)?.to_owned();
            Some((name, rtype))
        })
        .collect();
    names.sort();
    names.dedup();
    names
}

/// Two replicas, one reading the demo folder, the other the same objects through an
/// embedding program's feed in the reverse order, answer every clusterset name with the same
/// bytes (negative answers alike but for the SOA serial, each replica's clock).
#[tokio::test]
async fn two_replicas_answer_every_clusterset_name_byte_for_byte() {
    let config = Config {
        transfer_allow: vec!["127.0.0.0/8".parse().unwrap()],
        ..clusterset_config()
    };
    let a = TestServer::demo_with(config.clone()).await;
    let (feed, source) = headless_dns::Feed::new();
    let b = TestServer::start(config, source).await;
    let text =
        std::fs::read_to_string(crate::support::demo_manifests().join("cockroach.yaml")).unwrap();
    let mut manifests = Vec::new();
    for document in text.split("\n---\n") {
        let value: Value = serde_saphyr::from_str(document).unwrap();
        manifests.extend(headless_dns::Manifest::from_document(value).unwrap());
    }
    manifests.reverse();
    // The rest of the demo (the cluster-local names the PTR choice depends on) as well.
    let dir = crate::support::demo_manifests();
    for file in std::fs::read_dir(&dir).unwrap() {
        let path = file.unwrap().path();
        if path.file_name().is_some_and(|n| n == "cockroach.yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        for document in text.split("\n---\n") {
            let value: Value = serde_saphyr::from_str(document).unwrap();
            manifests.extend(headless_dns::Manifest::from_document(value).unwrap());
        }
    }
    feed.replace_all(manifests).unwrap();
    let ready = eventually(Duration::from_secs(10), || async { b.handle.is_ready() }).await;
    assert!(ready);
    let mut questions = zone_names(a.addr).await;
    assert!(questions.len() > 10, "{questions:?}");
    for ip in ["10.245.40.10", "10.245.40.11", "10.245.40.12", "10.43.0.26"] {
        let reverse: Vec<&str> = ip.split('.').rev().collect();
        questions.push((format!("{}.in-addr.arpa.", reverse.join(".")), "PTR".into()));
    }
    questions.push((
        "west.cockroach.demo.svc.clusterset.local.".into(),
        "A".into(),
    ));
    questions.push((
        "nothing.cockroach.demo.svc.clusterset.local.".into(),
        "A".into(),
    ));
    for (name, rtype) in &questions {
        let rtype: RecordType = rtype.parse().unwrap();
        let bytes = crate::support::encode(&query(name, rtype, Some(1232)));
        let (x, y) = (
            udp_exchange(a.addr, &bytes).await.unwrap(),
            udp_exchange(b.addr, &bytes).await.unwrap(),
        );
        let (mx, my) = (
            Message::from_vec(&x).unwrap(),
            Message::from_vec(&y).unwrap(),
        );
        if mx.answers.is_empty() {
            assert_eq!(without_serial(mx), without_serial(my), "{name} {rtype}");
        } else {
            assert_eq!(x, y, "{name} {rtype}");
        }
    }
    a.handle.shutdown().await;
    b.handle.shutdown().await;
}

/// A negative answer with the SOA serial zeroed, as bytes.
fn without_serial(mut message: Message) -> Vec<u8> {
    for record in &mut message.authorities {
        if let RData::SOA(soa) = &mut record.data {
            soa.serial = 0;
        }
    }
    crate::support::encode(&message)
}

#[tokio::test]
async fn unbound_with_a_stub_zone_and_busybox_resolve_clusterset_names() {
    let server = TestServer::demo_with(clusterset_config()).await;
    let upstream = format!("{}@{}", server.addr.ip(), server.addr.port());
    let unbound = Unbound::start(
        "",
        &format!("stub-zone:\n    name: \"{ZONE}\"\n    stub-addr: {upstream}\n"),
    );
    let resolver = unbound.addr;
    let pod = "cockroach-2.west.cockroach.demo.svc.clusterset.local";
    assert!(
        until(resolver, &[pod], "10.245.40.12\n").await,
        "unbound answers"
    );
    assert_eq!(
        short(
            resolver,
            &["SRV", "_grpc._tcp.cockroach.demo.svc.clusterset.local"]
        )
        .await
        .lines()
        .count(),
        6
    );
    let target = server.addr.to_string();
    let service = run(
        "busybox",
        &["nslookup", "cockroach.demo.svc.clusterset.local", &target],
    )
    .await;
    for ip in ["10.244.40.10", "10.245.40.12"] {
        assert!(service.contains(&format!("Address: {ip}")), "{service}");
    }
    let one = run("busybox", &["nslookup", pod, &target]).await;
    assert!(
        one.contains(&format!("Name:\t{pod}\nAddress: 10.245.40.12")),
        "{one}"
    );
    drop(unbound);
    server.handle.shutdown().await;
}

#[tokio::test]
async fn knot_serves_the_clusterset_zone_as_a_secondary() {
    let config = Config {
        transfer_allow: vec!["127.0.0.0/8".parse().unwrap()],
        ..clusterset_config()
    };
    let server = TestServer::demo_with(config).await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _knot = knot(dir.path(), port, &[server.addr], &[ZONE]);
    let knot_addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let pod = "cockroach-1.west.cockroach.demo.svc.clusterset.local";
    let transferred = until(knot_addr, &[pod], "10.245.40.11\n").await;
    let log = std::fs::read_to_string(dir.path().join("knot.log")).unwrap_or_default();
    assert!(transferred, "knot answers after AXFR: {log}");
    for args in [
        &["cockroach.demo.svc.clusterset.local"][..],
        &["SRV", "_grpc._tcp.cockroach.demo.svc.clusterset.local"],
        &["TXT", "dns-version.clusterset.local"],
        &["cockroach-public.demo.svc.clusterset.local"],
    ] {
        let (ours, theirs) = (short(server.addr, args).await, short(knot_addr, args).await);
        let sorted = |text: &str| {
            let mut lines: Vec<&str> = text.lines().collect();
            lines.sort_unstable();
            lines.join("\n")
        };
        assert_eq!(sorted(&ours), sorted(&theirs), "{args:?}");
    }
    assert_eq!(
        status(
            knot_addr,
            "west.cockroach.demo.svc.clusterset.local",
            RecordType::A
        )
        .await,
        (ResponseCode::NoError, 0),
        "the empty non-terminal is one at the secondary too"
    );
    server.handle.shutdown().await;
}
