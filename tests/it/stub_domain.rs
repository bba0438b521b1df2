//! Stub-domain forwarding through a real resolver: unbound, configured the way a CoreDNS
//! stub domain (or kube-dns `stubDomains`) forwards a zone to headless-dns.

use std::time::Duration;

use crate::support::{TestServer, Unbound, dig, eventually, loopback_config};

#[tokio::test]
async fn unbound_forwards_stub_zones_to_headless_dns() {
    let mut config = loopback_config();
    config
        .zones
        .push(headless_dns::config::parse_zone("sts.example.internal").unwrap());
    let server = TestServer::demo_with(config).await;
    let upstream = format!("{}@{}", server.addr.ip(), server.addr.port());
    let unbound = Unbound::start(
        r#"    local-zone: "10.in-addr.arpa." nodefault"#,
        &format!(
            "stub-zone:\n    name: \"cluster.local\"\n    stub-addr: {upstream}\n\
             stub-zone:\n    name: \"sts.example.internal\"\n    stub-addr: {upstream}\n\
             stub-zone:\n    name: \"10.in-addr.arpa\"\n    stub-addr: {upstream}\n"
        ),
    );
    let resolver = unbound.addr;
    let up = eventually(Duration::from_secs(10), || async move {
        dig(resolver, &["+short", "web-0.nginx.demo.svc.cluster.local"]).await == "10.244.1.10\n"
    })
    .await;
    assert!(up, "unbound answers the stub zone");
    // Recursion through the resolver: RA set by unbound, answers from headless-dns.
    assert_eq!(
        dig(
            resolver,
            &["+short", "web-1.nginx.demo.svc.sts.example.internal"]
        )
        .await,
        "10.244.2.11\n"
    );
    assert_eq!(
        dig(resolver, &["+short", "nginx.demo.svc.cluster.local"]).await,
        "10.244.1.10\n10.244.2.11\n10.244.3.12\n"
    );
    assert_eq!(
        dig(
            resolver,
            &["+short", "SRV", "_web._tcp.nginx.demo.svc.cluster.local"]
        )
        .await,
        "0 33 80 web-0.nginx.demo.svc.cluster.local.\n0 33 80 web-1.nginx.demo.svc.cluster.local.\n0 33 80 web-2.nginx.demo.svc.cluster.local.\n"
    );
    assert_eq!(
        dig(resolver, &["+short", "-x", "10.244.3.12"]).await,
        "web-2.nginx.demo.svc.cluster.local.\n"
    );
    let missing = dig(resolver, &["web-9.nginx.demo.svc.cluster.local"]).await;
    assert!(missing.contains("status: NXDOMAIN"), "{missing}");
    // 100 records: unbound takes the truncated UDP answer over TCP itself.
    let db = dig(resolver, &["+short", "db.demo.svc.cluster.local"]).await;
    assert_eq!(db.lines().count(), 100, "{db}");
    assert_eq!(db.lines().next(), Some("10.244.20.200"));
    drop(unbound);
    server.handle.shutdown().await;
}
