//! The clients people actually type: `dig` and busybox `nslookup`.

use crate::support::{TestServer, dig, run};

#[tokio::test]
async fn dig_answers() {
    let server = TestServer::demo().await;
    let addr = server.addr;
    let short = |args: &'static [&'static str]| async move {
        let mut all = vec!["+short"];
        all.extend_from_slice(args);
        dig(addr, &all).await
    };
    assert_eq!(
        short(&["web-0.nginx.demo.svc.cluster.local"]).await,
        "10.244.1.10\n"
    );
    assert_eq!(
        short(&["nginx.demo.svc.cluster.local"]).await,
        "10.244.1.10\n10.244.2.11\n10.244.3.12\n"
    );
    assert_eq!(
        short(&["SRV", "_web._tcp.nginx.demo.svc.cluster.local"]).await,
        "0 33 80 web-0.nginx.demo.svc.cluster.local.\n\
         0 33 80 web-1.nginx.demo.svc.cluster.local.\n\
         0 33 80 web-2.nginx.demo.svc.cluster.local.\n"
    );
    assert_eq!(
        short(&["-x", "10.244.2.11"]).await,
        "web-1.nginx.demo.svc.cluster.local.\n"
    );

    let aaaa = dig(addr, &["AAAA", "web-0.nginx.demo.svc.cluster.local"]).await;
    assert!(aaaa.contains("status: NOERROR"), "{aaaa}");
    assert!(aaaa.contains("ANSWER: 0, AUTHORITY: 1"), "{aaaa}");
    assert!(aaaa.contains("flags: qr aa rd"), "{aaaa}");

    let missing = dig(addr, &["web-9.nginx.demo.svc.cluster.local"]).await;
    assert!(missing.contains("status: NXDOMAIN"), "{missing}");
    let serial = server.handle.serial();
    assert!(
        missing.contains(&format!("cluster.local.\t\t5\tIN\tSOA\tns.dns.cluster.local. hostmaster.cluster.local. {serial} 7200 1800 86400 5")),
        "{missing}"
    );

    // dig retries a truncated answer over TCP by itself and gets all 100, in order.
    let db = dig(
        addr,
        &["+noedns", "+noall", "+answer", "db.demo.svc.cluster.local"],
    )
    .await;
    let ips: Vec<&str> = db
        .lines()
        .filter_map(|l| l.split_whitespace().nth(4))
        .collect();
    assert_eq!(ips.len(), 100, "{db}");
    assert_eq!(
        (ips[0], ips[1], ips[99]),
        ("10.244.20.200", "10.244.21.199", "10.244.23.101")
    );
    server.handle.shutdown().await;
}

#[tokio::test]
async fn busybox_nslookup_answers() {
    let server = TestServer::demo().await;
    let target = server.addr.to_string();
    // busybox asks A and AAAA; the AAAA is NODATA, which it reports as no answer.
    let pod = run(
        "busybox",
        &["nslookup", "web-1.nginx.demo.svc.cluster.local", &target],
    )
    .await;
    assert!(
        pod.contains("Name:\tweb-1.nginx.demo.svc.cluster.local\nAddress: 10.244.2.11"),
        "{pod}"
    );
    assert!(!pod.contains("NXDOMAIN"), "{pod}");
    let service = run(
        "busybox",
        &["nslookup", "nginx.demo.svc.cluster.local", &target],
    )
    .await;
    for ip in ["10.244.1.10", "10.244.2.11", "10.244.3.12"] {
        assert!(service.contains(&format!("Address: {ip}")), "{service}");
    }
    let srv = run(
        "busybox",
        &[
            "nslookup",
            "-type=srv",
            "_web._tcp.nginx.demo.svc.cluster.local",
            &target,
        ],
    )
    .await;
    assert!(
        srv.contains("service = 0 33 80 web-2.nginx.demo.svc.cluster.local"),
        "{srv}"
    );
    let missing = run(
        "busybox",
        &["nslookup", "web-9.nginx.demo.svc.cluster.local", &target],
    )
    .await;
    assert!(missing.contains("NXDOMAIN"), "{missing}");
    server.handle.shutdown().await;
}
