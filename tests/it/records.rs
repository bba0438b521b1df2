//! Every record kind of the specification, asked with hickory's client against the demo
//! cluster in config/.

use hickory_net::proto::op::ResponseCode;
use hickory_net::proto::rr::{RData, RecordType};

use crate::support::{TestServer, answers, data};

#[tokio::test]
async fn pod_a_record() {
    let server = TestServer::demo().await;
    let response = server
        .ask("web-0.nginx.demo.svc.cluster.local.", RecordType::A)
        .await;
    assert_eq!(response.metadata.response_code, ResponseCode::NoError);
    assert!(
        response.metadata.authoritative,
        "AA on authoritative answers"
    );
    assert_eq!(
        answers(&response),
        ["web-0.nginx.demo.svc.cluster.local. A 10.244.1.10"]
    );
    assert_eq!(response.answers[0].ttl, 5);
    server.handle.shutdown().await;
}

#[tokio::test]
async fn headless_service_lists_ready_endpoints_in_ordinal_order() {
    let server = TestServer::demo().await;
    let response = server
        .ask("nginx.demo.svc.cluster.local.", RecordType::A)
        .await;
    assert_eq!(
        data(&response),
        ["10.244.1.10", "10.244.2.11", "10.244.3.12"]
    );
    server.handle.shutdown().await;
}

#[tokio::test]
async fn srv_targets_in_ordinal_order_with_addresses() {
    let server = TestServer::demo().await;
    let response = server
        .ask("_web._tcp.nginx.demo.svc.cluster.local.", RecordType::SRV)
        .await;
    assert_eq!(
        data(&response),
        [
            "0 33 80 web-0.nginx.demo.svc.cluster.local.",
            "0 33 80 web-1.nginx.demo.svc.cluster.local.",
            "0 33 80 web-2.nginx.demo.svc.cluster.local."
        ]
    );
    let additional: Vec<String> = response
        .additionals
        .iter()
        .map(|r| format!("{} {}", r.name, r.data))
        .collect();
    assert_eq!(
        additional,
        [
            "web-0.nginx.demo.svc.cluster.local. 10.244.1.10",
            "web-1.nginx.demo.svc.cluster.local. 10.244.2.11",
            "web-2.nginx.demo.svc.cluster.local. 10.244.3.12"
        ]
    );
    // A ClusterIP Service's SRV targets the Service name, on the Service port.
    let api = server
        .ask("_http._tcp.api.demo.svc.cluster.local.", RecordType::SRV)
        .await;
    assert_eq!(data(&api), ["0 100 80 api.demo.svc.cluster.local."]);
    server.handle.shutdown().await;
}

#[tokio::test]
async fn reverse_lookups() {
    let server = TestServer::demo().await;
    let web1 = server
        .ask("11.2.244.10.in-addr.arpa.", RecordType::PTR)
        .await;
    assert_eq!(data(&web1), ["web-1.nginx.demo.svc.cluster.local."]);
    let cluster_ip = server
        .ask("20.0.96.10.in-addr.arpa.", RecordType::PTR)
        .await;
    assert_eq!(data(&cluster_ip), ["api.demo.svc.cluster.local."]);
    // An endpoint without a hostname reverses to its dashed-IP name.
    let legacy = server
        .ask("50.7.244.10.in-addr.arpa.", RecordType::PTR)
        .await;
    assert_eq!(
        data(&legacy),
        ["10-244-7-50.legacy.demo.svc.cluster.local."]
    );
    // Full-nibble ip6.arpa.
    let v6 = server
        .ask(
            "1.4.0.0.0.0.0.0.0.0.0.0.0.0.0.0.6.0.0.0.4.4.2.0.0.1.0.0.0.0.d.f.ip6.arpa.",
            RecordType::PTR,
        )
        .await;
    assert_eq!(data(&v6), ["cache-1.cache.demo.svc.cluster.local."]);
    // Unknown address: NXDOMAIN with the reverse zone's SOA; its parents are NODATA.
    let unknown = server
        .ask("99.7.244.10.in-addr.arpa.", RecordType::PTR)
        .await;
    assert_eq!(unknown.metadata.response_code, ResponseCode::NXDomain);
    assert_eq!(unknown.authorities[0].name.to_string(), "in-addr.arpa.");
    let parent = server.ask("7.244.10.in-addr.arpa.", RecordType::PTR).await;
    assert_eq!(parent.metadata.response_code, ResponseCode::NoError);
    assert!(parent.answers.is_empty());
    server.handle.shutdown().await;
}

#[tokio::test]
async fn cluster_ip_external_name_and_version() {
    let server = TestServer::demo().await;
    let api = server
        .ask("api.demo.svc.cluster.local.", RecordType::A)
        .await;
    assert_eq!(data(&api), ["10.96.0.20"]);
    let search = server
        .ask("search.demo.svc.cluster.local.", RecordType::A)
        .await;
    assert_eq!(
        answers(&search),
        ["search.demo.svc.cluster.local. CNAME search.example.com."]
    );
    let version = server
        .ask("dns-version.cluster.local.", RecordType::TXT)
        .await;
    assert_eq!(data(&version), ["1.1.0"]);
    server.handle.shutdown().await;
}

#[tokio::test]
async fn zone_apex_soa_and_ns() {
    let server = TestServer::demo().await;
    let soa = server.ask("cluster.local.", RecordType::SOA).await;
    // The serial follows the clock (README.md, "Secondaries").
    let serial = server.handle.serial();
    assert_eq!(
        data(&soa),
        [format!(
            "ns.dns.cluster.local. hostmaster.cluster.local. {serial} 7200 1800 86400 5"
        )]
    );
    let ns = server.ask("cluster.local.", RecordType::NS).await;
    assert_eq!(data(&ns), ["ns.dns.cluster.local."]);
    server.handle.shutdown().await;
}

#[tokio::test]
async fn not_ready_endpoints_follow_publish_not_ready_addresses() {
    let server = TestServer::demo().await;
    // zk publishes not-ready addresses: zk-2 (not ready) is listed and resolves.
    let zk = server
        .ask("zk.demo.svc.cluster.local.", RecordType::A)
        .await;
    assert_eq!(data(&zk), ["10.244.4.30", "10.244.4.31", "10.244.4.32"]);
    let zk2 = server
        .ask("zk-2.zk.demo.svc.cluster.local.", RecordType::A)
        .await;
    assert_eq!(data(&zk2), ["10.244.4.32"]);
    // legacy does not: its not-ready address is left out and has no name.
    let legacy = server
        .ask("legacy.demo.svc.cluster.local.", RecordType::A)
        .await;
    assert_eq!(data(&legacy), ["10.244.7.50", "10.244.7.51"]);
    let hidden = server
        .ask("10-244-7-52.legacy.demo.svc.cluster.local.", RecordType::A)
        .await;
    assert_eq!(hidden.metadata.response_code, ResponseCode::NXDomain);
    server.handle.shutdown().await;
}

#[tokio::test]
async fn dual_stack_service() {
    let server = TestServer::demo().await;
    let a = server
        .ask("cache.demo.svc.cluster.local.", RecordType::A)
        .await;
    assert_eq!(data(&a), ["10.244.6.40", "10.244.6.41"]);
    let aaaa = server
        .ask("cache.demo.svc.cluster.local.", RecordType::AAAA)
        .await;
    assert_eq!(data(&aaaa), ["fd00:10:244:6::40", "fd00:10:244:6::41"]);
    let pod = server
        .ask("cache-0.cache.demo.svc.cluster.local.", RecordType::AAAA)
        .await;
    assert_eq!(data(&pod), ["fd00:10:244:6::40"]);
    server.handle.shutdown().await;
}

#[tokio::test]
async fn negative_answers_carry_the_soa() {
    let server = TestServer::demo().await;
    let check = |name: &'static str, rtype, rcode| {
        let server = &server;
        async move {
            let response = server.ask(name, rtype).await;
            assert_eq!(response.metadata.response_code, rcode, "{name} {rtype}");
            assert!(response.answers.is_empty(), "{name} {rtype}");
            assert!(response.metadata.authoritative, "{name} {rtype}");
            let soa = response
                .authorities
                .first()
                .unwrap_or_else(|| panic!("{name}: SOA"));
            assert_eq!(soa.name.to_string(), "cluster.local.", "{name}");
            assert_eq!(soa.ttl, 5, "negative TTL");
            match &soa.data {
                RData::SOA(soa) => assert_eq!(soa.minimum, 5),
                other => panic!("{name}: authority is {other:?}"),
            }
        }
    };
    // NXDOMAIN: names that do not exist, scaled-away pods included.
    check(
        "web-9.nginx.demo.svc.cluster.local.",
        RecordType::A,
        ResponseCode::NXDomain,
    )
    .await;
    check(
        "nope.demo.svc.cluster.local.",
        RecordType::A,
        ResponseCode::NXDomain,
    )
    .await;
    check(
        "other.svc.cluster.local.",
        RecordType::A,
        ResponseCode::NXDomain,
    )
    .await;
    // NODATA: the name exists without that type (busybox and musl ask AAAA alongside A;
    // the MongoDB driver asks TXT), and empty non-terminals.
    check(
        "web-0.nginx.demo.svc.cluster.local.",
        RecordType::AAAA,
        ResponseCode::NoError,
    )
    .await;
    check(
        "nginx.demo.svc.cluster.local.",
        RecordType::TXT,
        ResponseCode::NoError,
    )
    .await;
    check(
        "demo.svc.cluster.local.",
        RecordType::A,
        ResponseCode::NoError,
    )
    .await;
    check("svc.cluster.local.", RecordType::A, ResponseCode::NoError).await;
    check(
        "_tcp.nginx.demo.svc.cluster.local.",
        RecordType::SRV,
        ResponseCode::NoError,
    )
    .await;
    server.handle.shutdown().await;
}

#[tokio::test]
async fn every_zone_serves_the_same_records() {
    let mut config = crate::support::loopback_config();
    config
        .zones
        .push(headless_dns::config::parse_zone("sts.example.internal").unwrap());
    let server = TestServer::demo_with(config).await;
    let stub = server
        .ask("web-1.nginx.demo.svc.sts.example.internal.", RecordType::A)
        .await;
    assert_eq!(data(&stub), ["10.244.2.11"]);
    let srv = server
        .ask(
            "_web._tcp.nginx.demo.svc.sts.example.internal.",
            RecordType::SRV,
        )
        .await;
    assert_eq!(
        data(&srv)[0],
        "0 33 80 web-0.nginx.demo.svc.sts.example.internal."
    );
    let missing = server
        .ask("nope.sts.example.internal.", RecordType::A)
        .await;
    assert_eq!(
        missing.authorities[0].name.to_string(),
        "sts.example.internal."
    );
    // Reverse answers name into the primary (first) zone.
    let ptr = server
        .ask("11.2.244.10.in-addr.arpa.", RecordType::PTR)
        .await;
    assert_eq!(data(&ptr), ["web-1.nginx.demo.svc.cluster.local."]);
    server.handle.shutdown().await;
}
