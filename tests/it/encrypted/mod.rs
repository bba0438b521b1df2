//! DNS over TLS and over HTTPS, asked with kdig, curl, unbound (as a CoreDNS `forward . tls://`
//! stub domain forwards) and a raw TLS client, against a certificate made here at run time:
//! the same answers as over TCP, byte for byte; certificate rotation; and what hostile
//! clients get.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use headless_dns::Config;
use headless_dns::serve::certs::CertificateFiles;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::{TestServer, Unbound, eventually, loopback_config, raw_query, run};

mod abuse;
mod dnsperf;

/// A test CA and the certificates it signs, in a temporary folder.
struct TestCa {
    dir: tempfile::TempDir,
}

impl TestCa {
    async fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let ca = Self { dir };
        ca.openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=headless-dns test CA",
        ])
        .await;
        ca
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    async fn openssl(&self, args: &[&str]) {
        let status = tokio::process::Command::new("openssl")
            .args(args)
            .current_dir(self.dir.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .await
            .expect("openssl runs (`bash .ci/run` installs it)");
        assert!(status.success(), "openssl {args:?}");
    }

    /// A leaf certificate for `dns.test` and 127.0.0.1, its subject's CN `cn`, as
    /// `<cn>.pem` and `<cn>.key`.
    async fn leaf(&self, cn: &str) -> CertificateFiles {
        std::fs::write(
            self.path("ext.cnf"),
            "subjectAltName=DNS:dns.test,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
             keyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
        )
        .expect("write ext.cnf");
        let (key, csr, pem) = (
            format!("{cn}.key"),
            format!("{cn}.csr"),
            format!("{cn}.pem"),
        );
        let subject = format!("/CN={cn}");
        self.openssl(&[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &csr,
            "-subj",
            &subject,
        ])
        .await;
        self.openssl(&[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            &pem,
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
        ])
        .await;
        CertificateFiles {
            chain: self.path(&pem),
            key: self.path(&key),
        }
    }
}

/// A server with DNS over TLS and HTTPS on loopback, the certificate files at `files`.
async fn encrypted_server(
    files: &CertificateFiles,
    change: impl FnOnce(&mut Config),
) -> TestServer {
    let mut config = loopback_config();
    config.tls_listen = vec!["127.0.0.1:0".parse().unwrap()];
    config.https_listen = vec!["127.0.0.1:0".parse().unwrap()];
    config.tls_certificate = Some(files.clone());
    change(&mut config);
    TestServer::demo_with(config).await
}

/// The certificate's files copied where a test may replace them.
fn served_copy(ca: &TestCa, from: &CertificateFiles) -> CertificateFiles {
    let live = ca.path("live");
    std::fs::create_dir_all(&live).unwrap();
    let files = CertificateFiles {
        chain: live.join("tls.crt"),
        key: live.join("tls.key"),
    };
    std::fs::copy(&from.chain, &files.chain).unwrap();
    std::fs::copy(&from.key, &files.key).unwrap();
    files
}

/// kdig with `args` against `addr`; over TLS and HTTPS (`+tls`, `+https...` in `args`)
/// trusting the test CA and checking the name `dns.test`.
async fn kdig(ca: &TestCa, addr: SocketAddr, args: &[&str]) -> String {
    let server = format!("@{}", addr.ip());
    let port = addr.port().to_string();
    let ca_file = format!("+tls-ca={}", ca.path("ca.pem").display());
    let mut all = vec![server.as_str(), "-p", &port, "+time=3", "+retry=0"];
    // kdig turns TLS on for any +tls option: only where asked.
    if args
        .iter()
        .any(|a| a.starts_with("+tls") || a.starts_with("+https"))
    {
        all.extend_from_slice(&[&ca_file, "+tls-hostname=dns.test"]);
    }
    all.extend_from_slice(args);
    run("kdig", &all).await
}

/// What a response says, without kdig's timings: status, flags and the sections.
fn sections(kdig_output: &str) -> Vec<String> {
    kdig_output
        .lines()
        .filter(|l| {
            !l.starts_with(";; Received")
                && !l.starts_with(";; Time")
                && !l.starts_with(";; From")
                && !l.starts_with(";; TLS")
                && !l.starts_with(";; HTTP")
                && !l.starts_with(";; ->>HEADER<<-")
                && !l.trim().is_empty()
        })
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect()
}

#[tokio::test]
async fn kdig_gets_over_tls_and_https_what_it_gets_over_tcp() {
    let ca = TestCa::new().await;
    let leaf = ca.leaf("leaf-1").await;
    let server = encrypted_server(&leaf, |_| {}).await;
    let (tcp, tls, https) = (
        server.addr,
        server.handle.tls_addrs()[0],
        server.handle.https_addrs()[0],
    );
    for question in [
        &["web-0.nginx.demo.svc.cluster.local"][..],
        &["db.demo.svc.cluster.local"],
        &["SRV", "_web._tcp.nginx.demo.svc.cluster.local"],
        &["web-9.nginx.demo.svc.cluster.local"],
        &["AAAA", "web-0.nginx.demo.svc.cluster.local"],
        &["-x", "10.244.2.11"],
    ] {
        // EDNS on all four: kdig asks with it over TLS and HTTPS whatever it is told; and
        // no padding, which kdig asks for over TLS by default (tested on its own).
        let ca = &ca;
        let ask = |addr, transport| {
            let args = [&[transport, "+edns", "+nopadding"][..], question].concat();
            async move { kdig(ca, addr, &args).await }
        };
        let plain = ask(tcp, "+tcp").await;
        let over_tls = ask(tls, "+tls").await;
        let over_https = ask(https, "+https").await;
        let over_get = ask(https, "+https-get").await;
        assert!(plain.contains("status: "), "{question:?}: {plain}");
        assert!(
            !over_tls.contains(" tc"),
            "never truncated over TLS: {over_tls}"
        );
        assert_eq!(
            sections(&over_tls),
            sections(&plain),
            "{question:?} over TLS"
        );
        assert_eq!(
            sections(&over_https),
            sections(&plain),
            "{question:?} over HTTPS (POST)"
        );
        assert_eq!(
            sections(&over_get),
            sections(&plain),
            "{question:?} over HTTPS (GET)"
        );
    }
    // The details the comparison covers, once: 100 addresses in ordinal order, an
    // NXDOMAIN and a NODATA with the zone's SOA, SRV targets' addresses.
    let db = kdig(&ca, tls, &["+tls", "+short", "db.demo.svc.cluster.local"]).await;
    assert_eq!(db.lines().count(), 100, "{db}");
    assert_eq!(db.lines().next(), Some("10.244.20.200"));
    let missing = kdig(&ca, tls, &["+tls", "web-9.nginx.demo.svc.cluster.local"]).await;
    assert!(
        missing.contains("status: NXDOMAIN") && missing.contains("SOA"),
        "{missing}"
    );
    let nodata = kdig(
        &ca,
        https,
        &["+https", "AAAA", "web-0.nginx.demo.svc.cluster.local"],
    )
    .await;
    assert!(
        nodata.contains("status: NOERROR") && nodata.contains("SOA"),
        "{nodata}"
    );
    let srv = kdig(
        &ca,
        https,
        &["+https", "SRV", "_web._tcp.nginx.demo.svc.cluster.local"],
    )
    .await;
    assert!(
        srv.contains("ADDITIONAL SECTION") && srv.contains("10.244.3.12"),
        "{srv}"
    );
    // The query counters know the transports.
    let metrics = server.handle.metrics_text();
    for proto in ["tls", "https"] {
        let line = format!("headless_dns_dns_requests_total{{proto=\"{proto}\",type=\"A\"}}");
        let count = metrics
            .lines()
            .find(|l| l.starts_with(&line))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|n| n.parse::<u64>().ok());
        assert!(count.is_some_and(|n| n > 0), "{line}: {count:?}");
    }
    server.handle.shutdown().await;
}

/// A raw DNS-over-TLS exchange of `query`, trusting the test CA.
async fn dot_exchange(ca: &TestCa, addr: SocketAddr, query: &[u8]) -> Vec<u8> {
    let mut roots = rustls::RootCertStore::empty();
    let ca_pem = std::fs::read(ca.path("ca.pem")).unwrap();
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(&ca_pem) {
        roots.add(cert.unwrap()).unwrap();
    }
    use rustls::pki_types::pem::PemObject;
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("dns.test").unwrap();
    let mut tls = connector.connect(name, tcp).await.expect("TLS handshake");
    let mut framed = (query.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(query);
    tls.write_all(&framed).await.unwrap();
    let mut len = [0u8; 2];
    tls.read_exact(&mut len).await.unwrap();
    let mut response = vec![0; usize::from(u16::from_be_bytes(len))];
    tls.read_exact(&mut response).await.unwrap();
    response
}

#[tokio::test]
async fn the_bytes_over_tls_and_https_are_the_bytes_over_tcp() {
    let ca = TestCa::new().await;
    let leaf = ca.leaf("leaf-1").await;
    let server = encrypted_server(&leaf, |_| {}).await;
    for (id, name, qtype) in [
        (1, "web-0.nginx.demo.svc.cluster.local", 1),
        (2, "db.demo.svc.cluster.local", 1),
        (3, "_web._tcp.nginx.demo.svc.cluster.local", 33),
        (4, "nothing.demo.svc.cluster.local", 1),
    ] {
        let query = raw_query(id, name, qtype);
        let over_tcp = crate::support::tcp_exchange(server.addr, &query).await;
        let over_tls = dot_exchange(&ca, server.handle.tls_addrs()[0], &query).await;
        assert_eq!(over_tls, over_tcp, "{name} over TLS");
        let dir = tempfile::tempdir().unwrap();
        let (query_file, out_file) = (dir.path().join("q"), dir.path().join("r"));
        std::fs::write(&query_file, &query).unwrap();
        let https = server.handle.https_addrs()[0];
        let status = curl(
            &ca,
            https,
            &[
                "-H",
                "content-type: application/dns-message",
                "--data-binary",
                &format!("@{}", query_file.display()),
                "-o",
                out_file.to_str().unwrap(),
            ],
            "/dns-query",
        )
        .await;
        assert_eq!(status, "200 2", "{name}: HTTP status and version");
        assert_eq!(
            std::fs::read(&out_file).unwrap(),
            over_tcp,
            "{name} over HTTPS"
        );
    }
    server.handle.shutdown().await;
}

/// curl over HTTP/2 to `path` on `addr` as https://dns.test; returns the status and the
/// HTTP version (`200 2`).
async fn curl(ca: &TestCa, addr: SocketAddr, args: &[&str], path: &str) -> String {
    let resolve = format!("dns.test:{}:{}", addr.port(), addr.ip());
    let url = format!("https://dns.test:{}{path}", addr.port());
    let ca_file = ca.path("ca.pem");
    let mut all = vec![
        "-sS",
        "--http2",
        "--max-time",
        "5",
        "--cacert",
        ca_file.to_str().unwrap(),
        "--resolve",
        &resolve,
        "-w",
        "%{http_code} %{http_version}",
    ];
    all.extend_from_slice(args);
    if !args.contains(&"-o") {
        all.extend_from_slice(&["-o", "/dev/null"]);
    }
    all.push(&url);
    run("curl", &all).await
}

#[tokio::test]
async fn unbound_forwards_over_tls_as_a_coredns_tls_stub_domain_does() {
    let ca = TestCa::new().await;
    let leaf = ca.leaf("leaf-1").await;
    let server = encrypted_server(&leaf, |_| {}).await;
    let tls = server.handle.tls_addrs()[0];
    let unbound = Unbound::start(
        &format!("    tls-cert-bundle: \"{}\"", ca.path("ca.pem").display()),
        &format!(
            "forward-zone:\n    name: \"cluster.local\"\n    forward-tls-upstream: yes\n    \
             forward-addr: {}@{}#dns.test\n",
            tls.ip(),
            tls.port()
        ),
    );
    let resolver = unbound.addr;
    let up = eventually(Duration::from_secs(10), || async move {
        crate::support::dig(resolver, &["+short", "web-0.nginx.demo.svc.cluster.local"]).await
            == "10.244.1.10\n"
    })
    .await;
    assert!(up, "unbound answers through DNS over TLS");
    let nginx = crate::support::dig(resolver, &["+short", "nginx.demo.svc.cluster.local"]).await;
    assert_eq!(nginx, "10.244.1.10\n10.244.2.11\n10.244.3.12\n");
    let missing = crate::support::dig(resolver, &["web-9.nginx.demo.svc.cluster.local"]).await;
    assert!(missing.contains("status: NXDOMAIN"), "{missing}");
    // Nothing went over plain UDP or TCP: the answers came over TLS.
    let metrics = server.handle.metrics_text();
    let tls_queries = metrics
        .lines()
        .find(|l| l.starts_with("headless_dns_dns_requests_total{proto=\"tls\",type=\"A\"}"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse::<u64>().ok());
    assert!(tls_queries.is_some_and(|n| n >= 3), "{tls_queries:?}");
    drop(unbound);
    server.handle.shutdown().await;
}

/// The subject of the certificate `addr` presents.
async fn served_subject(addr: SocketAddr) -> String {
    let connect = addr.to_string();
    let output = tokio::process::Command::new("sh")
        .args([
            "-c",
            &format!(
                "openssl s_client -connect {connect} -alpn dot </dev/null 2>/dev/null \
                 | openssl x509 -noout -subject"
            ),
        ])
        .output()
        .await
        .expect("openssl runs");
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

#[tokio::test]
async fn a_replaced_certificate_serves_new_handshakes_and_a_broken_one_is_ignored() {
    let ca = TestCa::new().await;
    let first = ca.leaf("leaf-1").await;
    let second = ca.leaf("leaf-2").await;
    let live = served_copy(&ca, &first);
    let server = encrypted_server(&live, |config| {
        // Long enough that only the file event can explain a quick reload.
        config.reload_interval = Duration::from_secs(600);
    })
    .await;
    let tls = server.handle.tls_addrs()[0];
    assert!(served_subject(tls).await.ends_with("leaf-1"));
    // As a Secret volume does: the new files renamed into place.
    for (from, to) in [(&second.chain, &live.chain), (&second.key, &live.key)] {
        let staged = to.with_extension("new");
        std::fs::copy(from, &staged).unwrap();
        std::fs::rename(&staged, to).unwrap();
    }
    let rotated = eventually(Duration::from_secs(10), || async move {
        served_subject(tls).await.ends_with("leaf-2")
    })
    .await;
    assert!(rotated, "new handshakes get the new certificate");
    // A file that turns bad keeps the last good certificate.
    std::fs::write(&live.chain, "-----BEGIN CERTIFICATE-----\nnot base64\n").unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(served_subject(tls).await.ends_with("leaf-2"));
    let answer = kdig(
        &ca,
        tls,
        &["+tls", "+short", "web-0.nginx.demo.svc.cluster.local"],
    )
    .await;
    assert_eq!(answer, "10.244.1.10\n");
    server.handle.shutdown().await;
}

/// Whether the server closed `stream` (EOF or reset) without a DNS answer: at most a TLS
/// alert record (content type 21) before the end.
async fn closed(stream: &mut TcpStream) -> bool {
    let mut received = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut received));
    match read.await {
        Ok(Ok(_)) | Ok(Err(_)) => received.first().is_none_or(|&b| b == 21),
        Err(_) => false,
    }
}

#[tokio::test]
async fn hostile_clients_get_errors_and_the_server_keeps_serving() {
    let ca = TestCa::new().await;
    let leaf = ca.leaf("leaf-1").await;
    let server = encrypted_server(&leaf, |config| {
        config.tcp_idle_timeout = Duration::from_secs(3);
        config.tls_handshake_timeout = Duration::from_secs(1);
    })
    .await;
    let (tls, https) = (server.handle.tls_addrs()[0], server.handle.https_addrs()[0]);
    // Plain DNS over TCP to the TLS port: not a ClientHello, the connection is closed.
    let mut plain = TcpStream::connect(tls).await.unwrap();
    let query = raw_query(7, "web-0.nginx.demo.svc.cluster.local", 1);
    let mut framed = (query.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(&query);
    plain.write_all(&framed).await.unwrap();
    assert!(
        closed(&mut plain).await,
        "plain DNS on the TLS port is not answered"
    );
    // A client that never finishes its handshake is dropped after --tls-handshake-timeout.
    let mut stalled = TcpStream::connect(tls).await.unwrap();
    assert!(closed(&mut stalled).await, "a stalled handshake is dropped");
    // DNS over HTTPS: HTTP errors for what is not a DNS request.
    let bad_base64 = curl(&ca, https, &[], "/dns-query?dns=***not-base64***").await;
    assert_eq!(bad_base64, "400 2");
    let no_param = curl(&ca, https, &[], "/dns-query").await;
    assert_eq!(no_param, "400 2");
    let wrong_path = curl(&ca, https, &[], "/resolve?name=x").await;
    assert_eq!(wrong_path, "404 2");
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big");
    std::fs::write(&big, vec![0u8; 70_000]).unwrap();
    let big_arg = format!("@{}", big.display());
    let oversized = curl(
        &ca,
        https,
        &[
            "-H",
            "content-type: application/dns-message",
            "--data-binary",
            &big_arg,
        ],
        "/dns-query",
    )
    .await;
    assert_eq!(oversized, "413 2");
    let wrong_type = curl(&ca, https, &["--data-binary", "x=1"], "/dns-query").await;
    assert_eq!(wrong_type, "415 2");
    let put = curl(&ca, https, &["-X", "PUT"], "/dns-query").await;
    assert_eq!(put, "405 2");
    // Still answering, over every transport.
    let answer = kdig(
        &ca,
        tls,
        &["+tls", "+short", "web-0.nginx.demo.svc.cluster.local"],
    )
    .await;
    assert_eq!(answer, "10.244.1.10\n");
    let answer = kdig(
        &ca,
        https,
        &["+https", "+short", "web-1.nginx.demo.svc.cluster.local"],
    )
    .await;
    assert_eq!(answer, "10.244.2.11\n");
    server.handle.shutdown().await;
}

/// The size kdig received, and whether the response had a Padding option.
fn received(kdig_output: &str) -> (usize, bool) {
    let size = kdig_output
        .lines()
        .find_map(|l| l.strip_prefix(";; Received "))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("kdig says what it received: {kdig_output}"));
    (size, kdig_output.contains(";; PADDING:"))
}

#[tokio::test]
async fn padded_queries_over_tls_and_https_get_responses_padded_to_468_octets() {
    let ca = TestCa::new().await;
    let leaf = ca.leaf("leaf-1").await;
    let server = encrypted_server(&leaf, |_| {}).await;
    let (tls, https) = (server.handle.tls_addrs()[0], server.handle.https_addrs()[0]);
    let pod = "web-0.nginx.demo.svc.cluster.local";
    let service = "db.demo.svc.cluster.local";
    // RFC 8467's block policy: a pod's answer and a 100-address answer are each a multiple
    // of 468 octets, so their sizes on the wire tell little.
    for (addr, transport) in [(tls, "+tls"), (https, "+https"), (https, "+https-get")] {
        for name in [pod, service] {
            let output = kdig(&ca, addr, &[transport, "+padding", name]).await;
            let (size, padded) = received(&output);
            assert!(padded && size % 468 == 0, "{transport} {name}: {output}");
            assert!(output.contains("status: NOERROR"), "{output}");
        }
        // Not asked (kdig pads over TLS unless told not to), not padded.
        let plain = kdig(&ca, addr, &[transport, "+edns", "+nopadding", pod]).await;
        let (size, padded) = received(&plain);
        assert!(!padded && size % 468 != 0, "{transport} unpadded: {plain}");
    }
    // Never in clear: UDP and TCP ignore the option.
    for transport in ["+notcp", "+tcp"] {
        let output = kdig(&ca, server.addr, &[transport, "+padding", pod]).await;
        assert!(!received(&output).1, "{transport}: {output}");
    }
    server.handle.shutdown().await;
}

#[tokio::test]
async fn a_full_connection_table_closes_the_oldest_silent_connection_for_a_new_client() {
    let ca = TestCa::new().await;
    let leaf = ca.leaf("leaf-1").await;
    let server = encrypted_server(&leaf, |config| {
        config.max_tcp_connections = 2;
        config.max_connections_per_client = 2;
        config.tls_handshake_timeout = Duration::from_secs(30);
    })
    .await;
    for addr in [server.handle.tls_addrs()[0], server.handle.https_addrs()[0]] {
        // Two connections that never start their handshake fill the table.
        let mut first = TcpStream::connect(addr).await.unwrap();
        let second = TcpStream::connect(addr).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        // A third from the same address is over its share: refused, the two kept.
        let mut third = TcpStream::connect(addr).await.unwrap();
        assert!(
            closed(&mut third).await,
            "{addr}: over the per-client share"
        );
        let mut buf = [0u8; 8];
        assert!(second.try_read(&mut buf).is_err(), "{addr}: kept open");
        // A client from another address takes the place of the oldest, long before its
        // handshake would time out.
        let from = std::net::SocketAddr::from(([127, 0, 0, 2], 0));
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(from).unwrap();
        let newcomer = socket.connect(addr).await.unwrap();
        assert!(
            closed(&mut first).await,
            "{addr}: the oldest silent one is closed"
        );
        assert!(
            newcomer.try_read(&mut buf).is_err(),
            "{addr}: the newcomer is served"
        );
    }
    let answer = kdig(
        &ca,
        server.handle.tls_addrs()[0],
        &["+tls", "+short", "web-0.nginx.demo.svc.cluster.local"],
    )
    .await;
    assert_eq!(
        answer, "10.244.1.10\n",
        "a client still gets in and is answered"
    );
    server.handle.shutdown().await;
}

#[tokio::test]
async fn a_missing_or_bad_certificate_stops_the_start_naming_the_flag_and_file() {
    let ca = TestCa::new().await;
    let leaf = ca.leaf("leaf-1").await;
    let demo = crate::support::demo_manifests();
    let demo = demo.to_str().unwrap();
    let missing = ca.path("missing.pem");
    let garbage = ca.path("garbage.pem");
    std::fs::write(&garbage, "not a certificate").unwrap();
    let other = ca.leaf("other").await;
    let run = |cert: &Path, key: &Path, extra: &[&str]| {
        let mut args = vec![
            "--manifests".to_owned(),
            demo.to_owned(),
            "--listen".to_owned(),
            "127.0.0.1:0".to_owned(),
            "--http".to_owned(),
            "off".to_owned(),
            "--tls-listen".to_owned(),
            "127.0.0.1:0".to_owned(),
            "--tls-cert".to_owned(),
            cert.display().to_string(),
            "--tls-key".to_owned(),
            key.display().to_string(),
        ];
        args.extend(extra.iter().map(|a| a.to_string()));
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_headless-dns"))
            .args(&args)
            .output()
            .expect("binary runs");
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let (code, stderr) = run(&missing, &leaf.key, &[]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("--tls-cert") && stderr.contains("missing.pem"),
        "{stderr}"
    );
    let (code, stderr) = run(&garbage, &leaf.key, &[]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("--tls-cert") && stderr.contains("garbage.pem"),
        "{stderr}"
    );
    let (code, stderr) = run(&leaf.chain, &other.key, &[]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("does not fit"), "{stderr}");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_headless-dns"))
        .args(["--manifests", demo, "--tls-listen", "127.0.0.1:0"])
        .output()
        .expect("binary runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--tls-cert"), "{stderr}");
}
