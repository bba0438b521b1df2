//! DNS over HTTPS under dnsperf, the load tool the project is measured with: every query
//! answered, by GET and by POST, several connections with many streams each.
//!
//! dnsperf 2.10 reads one TLS record at a time and holds one response: it lost every
//! response that shared a record with another (20 of 47 at `-c 1 -q 20`), which h2 wrote
//! when several were ready at once. The server now seals each response in its own records
//! (`src/serve/response_records.rs`); without that, these runs lose queries.

use std::net::SocketAddr;

use super::{TestCa, encrypted_server};

/// dnsperf's statistics of one run: (sent, completed, lost).
async fn dnsperf(addr: SocketAddr, method: &str, queries: &std::path::Path) -> (u64, u64, u64) {
    let uri = format!("doh-uri=https://127.0.0.1:{}/dns-query", addr.port());
    let method = format!("doh-method={method}");
    let port = addr.port().to_string();
    // Each query once (-n 1), 4 connections, 50 in flight, a 5 s timeout per query.
    let args = [
        "-m",
        "doh",
        "-s",
        "127.0.0.1",
        "-p",
        &port,
        "-O",
        &uri,
        "-O",
        &method,
        "-d",
        queries.to_str().expect("UTF-8 path"),
        "-n",
        "1",
        "-c",
        "4",
        "-q",
        "50",
        "-t",
        "5",
    ];
    let output = tokio::process::Command::new("dnsperf")
        .args(args)
        .output()
        .await
        .expect("dnsperf runs (`bash .ci/run` installs it)");
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let field = |label: &str| -> u64 {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(label))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("dnsperf reports {label}: {text}"))
    };
    (
        field("Queries sent:"),
        field("Queries completed:"),
        field("Queries lost:"),
    )
}

#[tokio::test]
async fn dnsperf_gets_every_answer_by_get_and_post() {
    let ca = TestCa::new().await;
    let leaf = ca.leaf("leaf-1").await;
    let server = encrypted_server(&leaf, |_| {}).await;
    let https = server.handle.https_addrs()[0];
    // 2,000 questions: pods, Services (3 and 100 addresses), SRV, a miss.
    let queries = ca.path("queries.txt");
    let mut text = String::new();
    for n in 0..400 {
        text.push_str(&format!("web-{}.nginx.demo.svc.cluster.local A\n", n % 3));
        text.push_str("nginx.demo.svc.cluster.local A\n");
        text.push_str(&format!("db-{}.db.demo.svc.cluster.local A\n", n % 100));
        text.push_str("_web._tcp.nginx.demo.svc.cluster.local SRV\n");
        text.push_str("web-9.nginx.demo.svc.cluster.local A\n");
    }
    std::fs::write(&queries, text).unwrap();
    for method in ["GET", "POST"] {
        let (sent, completed, lost) = dnsperf(https, method, &queries).await;
        assert_eq!(
            (sent, completed, lost),
            (2000, 2000, 0),
            "{method}: every query answered"
        );
    }
    server.handle.shutdown().await;
}
