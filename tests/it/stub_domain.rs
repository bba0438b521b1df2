//! Stub-domain forwarding through a real resolver: unbound, configured the way a CoreDNS
//! stub domain (or kube-dns `stubDomains`) forwards a zone to headless-dns.

use std::time::Duration;

use crate::support::{TestServer, dig, eventually, loopback_config};

/// A port free for both UDP and TCP right now.
fn free_port() -> u16 {
    loop {
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        let port = udp.local_addr().expect("addr").port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

#[tokio::test]
async fn unbound_forwards_stub_zones_to_headless_dns() {
    let mut config = loopback_config();
    config
        .zones
        .push(headless_dns::config::parse_zone("sts.example.internal").unwrap());
    let server = TestServer::demo_with(config).await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let upstream = format!("{}@{}", server.addr.ip(), server.addr.port());
    let conf = format!(
        r#"server:
    interface: 127.0.0.1
    port: {port}
    do-daemonize: no
    use-syslog: no
    logfile: ""
    username: ""
    chroot: ""
    directory: "{dir}"
    pidfile: ""
    do-ip6: no
    access-control: 127.0.0.0/8 allow
    module-config: "iterator"
    rrset-roundrobin: no
    do-not-query-localhost: no
    local-zone: "10.in-addr.arpa." nodefault
stub-zone:
    name: "cluster.local"
    stub-addr: {upstream}
stub-zone:
    name: "sts.example.internal"
    stub-addr: {upstream}
stub-zone:
    name: "10.in-addr.arpa"
    stub-addr: {upstream}
remote-control:
    control-enable: no
"#,
        dir = dir.path().display()
    );
    let conf_path = dir.path().join("unbound.conf");
    std::fs::write(&conf_path, conf).unwrap();
    let mut unbound = tokio::process::Command::new("unbound")
        .args(["-d", "-c", conf_path.to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("unbound runs (`bash .ci/run` installs it)");
    let resolver: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
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
    unbound.kill().await.ok();
    server.handle.shutdown().await;
}
