//! What the zones themselves answer, asked with dig and through unbound: aliases followed
//! within the served zones, the name server's own address (`--ns-address`), and reverse
//! zones named by the ranges they cover (`--reverse-zone`).

use std::time::Duration;

use headless_dns::Source;

use crate::support::{TestServer, Unbound, dig, eventually, loopback_config};

/// The demo cluster plus `extra` (one more manifest file), served with `config`.
async fn demo_plus(extra: &str, config: headless_dns::Config) -> (TestServer, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    for entry in std::fs::read_dir(crate::support::demo_manifests()).expect("config/") {
        let path = entry.expect("entry").path();
        std::fs::copy(&path, dir.path().join(path.file_name().expect("file name")))
            .expect("copy demo manifest");
    }
    std::fs::write(dir.path().join("extra.yaml"), extra).expect("write extra.yaml");
    let server = TestServer::start(config, Source::Manifests(dir.path().to_owned())).await;
    (server, dir)
}

/// dig's answer section, one record per line, whitespace collapsed.
fn records(output: &str, section: &str) -> Vec<String> {
    let header = format!(";; {section} SECTION:");
    output
        .lines()
        .skip_while(|l| *l != header)
        .skip(1)
        .take_while(|l| !l.is_empty())
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect()
}

const ALIASES: &str = "\
apiVersion: v1
kind: Service
metadata: {name: primary, namespace: demo}
spec: {type: ExternalName, externalName: web-0.nginx.demo.svc.cluster.local}
---
apiVersion: v1
kind: Service
metadata: {name: frontend, namespace: demo}
spec: {type: ExternalName, externalName: primary.demo.svc.cluster.local}
---
apiVersion: v1
kind: Service
metadata: {name: gone, namespace: demo}
spec: {type: ExternalName, externalName: nothing.demo.svc.cluster.local}
";

#[tokio::test]
async fn an_alias_into_a_served_zone_is_followed() {
    let (server, _dir) = demo_plus(ALIASES, loopback_config()).await;
    // RFC 1034 4.3.2: the CNAME and the target's address in one answer.
    let primary = dig(server.addr, &["primary.demo.svc.cluster.local"]).await;
    assert!(primary.contains("status: NOERROR"), "{primary}");
    assert_eq!(
        records(&primary, "ANSWER"),
        [
            "primary.demo.svc.cluster.local. 5 IN CNAME web-0.nginx.demo.svc.cluster.local.",
            "web-0.nginx.demo.svc.cluster.local. 5 IN A 10.244.1.10"
        ]
    );
    // Through a second alias.
    let frontend = dig(server.addr, &["+short", "frontend.demo.svc.cluster.local"]).await;
    assert_eq!(
        frontend,
        "primary.demo.svc.cluster.local.\nweb-0.nginx.demo.svc.cluster.local.\n10.244.1.10\n"
    );
    // A target that does not exist: the alias, then NXDOMAIN with the zone's SOA.
    let gone = dig(server.addr, &["gone.demo.svc.cluster.local"]).await;
    assert!(gone.contains("status: NXDOMAIN"), "{gone}");
    assert_eq!(records(&gone, "ANSWER").len(), 1, "{gone}");
    assert!(
        records(&gone, "AUTHORITY")[0].starts_with("cluster.local. 5 IN SOA"),
        "{gone}"
    );
    // Asked for the CNAME itself, or out of zone (the demo's `search`): the alias alone.
    let cname = dig(
        server.addr,
        &["+short", "CNAME", "primary.demo.svc.cluster.local"],
    )
    .await;
    assert_eq!(cname, "web-0.nginx.demo.svc.cluster.local.\n");
    let outside = dig(server.addr, &["+short", "search.demo.svc.cluster.local"]).await;
    assert_eq!(outside, "search.example.com.\n");
    server.handle.shutdown().await;
}

#[tokio::test]
async fn the_name_servers_name_has_the_address_given() {
    let mut config = loopback_config();
    config.ns_addresses = vec!["10.96.0.53".parse().unwrap(), "fd00::53".parse().unwrap()];
    let server = TestServer::demo_with(config).await;
    let ns = dig(server.addr, &["NS", "cluster.local"]).await;
    assert_eq!(
        records(&ns, "ANSWER"),
        ["cluster.local. 5 IN NS ns.dns.cluster.local."]
    );
    assert_eq!(
        records(&ns, "ADDITIONAL"),
        [
            "ns.dns.cluster.local. 5 IN A 10.96.0.53",
            "ns.dns.cluster.local. 5 IN AAAA fd00::53"
        ]
    );
    let a = dig(server.addr, &["+short", "ns.dns.cluster.local"]).await;
    assert_eq!(a, "10.96.0.53\n");
    let aaaa = dig(server.addr, &["+short", "AAAA", "ns.dns.cluster.local"]).await;
    assert_eq!(aaaa, "fd00::53\n");
    let dns = dig(server.addr, &["dns.cluster.local"]).await;
    assert!(dns.contains("status: NOERROR"), "empty non-terminal: {dns}");
    server.handle.shutdown().await;

    // Without the flag the name has nothing, as before.
    let server = TestServer::demo().await;
    let a = dig(server.addr, &["ns.dns.cluster.local"]).await;
    assert!(a.contains("status: NXDOMAIN"), "{a}");
    server.handle.shutdown().await;
}

#[tokio::test]
async fn reverse_zones_named_by_range_answer_with_their_own_soa() {
    let mut config = loopback_config();
    config.reverse_zones = vec!["10.244.0.0/16".parse().unwrap()];
    let server = TestServer::demo_with(config).await;
    let serial = server.handle.serial();
    let soa = dig(server.addr, &["SOA", "244.10.in-addr.arpa"]).await;
    assert!(soa.contains("flags: qr aa"), "{soa}");
    assert_eq!(
        records(&soa, "ANSWER"),
        [format!(
            "244.10.in-addr.arpa. 5 IN SOA ns.dns.cluster.local. hostmaster.cluster.local. {serial} 7200 1800 86400 5"
        )]
    );
    assert_eq!(
        dig(server.addr, &["+short", "-x", "10.244.2.11"]).await,
        "web-1.nginx.demo.svc.cluster.local.\n"
    );
    // A missing address in the range: the SOA of the zone it is in, not in-addr.arpa's.
    let missing = dig(server.addr, &["-x", "10.244.99.99"]).await;
    assert!(missing.contains("status: NXDOMAIN"), "{missing}");
    assert_eq!(
        records(&missing, "AUTHORITY"),
        [format!(
            "244.10.in-addr.arpa. 5 IN SOA ns.dns.cluster.local. hostmaster.cluster.local. {serial} 7200 1800 86400 5"
        )]
    );
    // Outside every named range (the ClusterIPs of the demo are in 10.96.0.0/12): not this
    // server's zone.
    let outside = dig(server.addr, &["-x", "10.96.0.10"]).await;
    assert!(outside.contains("status: REFUSED"), "{outside}");
    server.handle.shutdown().await;
}

/// What unbound, with a stub zone for the pods' range, tells a client about a missing
/// address under a server started with `config`: its whole dig output.
async fn through_a_stub_zone(config: headless_dns::Config) -> String {
    let server = TestServer::demo_with(config).await;
    let upstream = format!("{}@{}", server.addr.ip(), server.addr.port());
    let unbound = Unbound::start(
        r#"    local-zone: "10.in-addr.arpa." nodefault"#,
        &format!("stub-zone:\n    name: \"244.10.in-addr.arpa\"\n    stub-addr: {upstream}\n"),
    );
    let resolver = unbound.addr;
    let up = eventually(Duration::from_secs(10), || async move {
        dig(resolver, &["+short", "-x", "10.244.2.11"]).await
            == "web-1.nginx.demo.svc.cluster.local.\n"
    })
    .await;
    assert!(up, "unbound answers the reverse stub zone");
    let missing = dig(resolver, &["-x", "10.244.99.99"]).await;
    drop(unbound);
    server.handle.shutdown().await;
    missing
}

#[tokio::test]
async fn a_stub_resolver_keeps_the_negative_answers_soa_only_from_the_named_zone() {
    // With the range named, unbound accepts the SOA (it is in the stub zone) and hands it
    // on, so its clients cache the NXDOMAIN for the negative TTL.
    let mut config = loopback_config();
    config.reverse_zones = vec!["10.244.0.0/16".parse().unwrap()];
    let named = through_a_stub_zone(config).await;
    assert!(named.contains("status: NXDOMAIN"), "{named}");
    let authority = records(&named, "AUTHORITY");
    assert_eq!(authority.len(), 1, "{named}");
    assert!(
        authority[0].starts_with("244.10.in-addr.arpa.") && authority[0].contains(" SOA "),
        "{named}"
    );
    // Without it, the SOA of in-addr.arpa is outside the stub zone: unbound drops it.
    let whole = through_a_stub_zone(loopback_config()).await;
    assert!(whole.contains("status: NXDOMAIN"), "{whole}");
    assert!(records(&whole, "AUTHORITY").is_empty(), "{whole}");
}
