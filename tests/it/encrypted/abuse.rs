//! DNS over TLS and HTTPS under abuse: the known HTTP/2 attacks (sent by
//! tests/it/h2_attack.py with Python's `h2` package) and floods of silent or abandoned TLS
//! connections, against the real binary. Each test checks what stops the attack, that other
//! clients are answered while it runs, and that the server's memory stays bounded.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpSocket;

use super::TestCa;
use crate::support::{Binary, free_port};

/// The binary with DNS over TLS and HTTPS on free loopback ports, the demo cluster, and
/// `extra` flags.
async fn encrypted_binary(ca: &TestCa, extra: &[&str]) -> (Binary, SocketAddr, SocketAddr) {
    let leaf = ca.leaf("leaf-1").await;
    let (tls, https) = (
        SocketAddr::from(([127, 0, 0, 1], free_port())),
        SocketAddr::from(([127, 0, 0, 1], free_port())),
    );
    let demo = crate::support::demo_manifests();
    let (tls_flag, https_flag) = (tls.to_string(), https.to_string());
    let mut args = vec![
        "--manifests",
        demo.to_str().expect("UTF-8 path"),
        "--tls-listen",
        &tls_flag,
        "--https-listen",
        &https_flag,
        "--tls-cert",
        leaf.chain.to_str().expect("UTF-8 path"),
        "--tls-key",
        leaf.key.to_str().expect("UTF-8 path"),
    ];
    args.extend_from_slice(extra);
    (Binary::start(&args, &[]).await, tls, https)
}

/// Resident memory of process `pid`, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS")
}

/// Runs `attack` from h2_attack.py against `https` and returns its report.
async fn h2_attack(ca: &TestCa, https: SocketAddr, attack: &str, count: u64) -> serde_json::Value {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/h2_attack.py");
    let output = tokio::process::Command::new("python3")
        .args([
            script,
            attack,
            "--port",
            &https.port().to_string(),
            "--ca",
            ca.path("ca.pem").to_str().expect("UTF-8 path"),
            "--count",
            &count.to_string(),
            "--seconds",
            "3",
        ])
        .output()
        .await
        .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{attack}: {stdout}{} (`bash .ci/run` installs Python's h2)",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{attack}: {e}: {stdout}"))
}

/// Other clients meanwhile: kdig over TLS and over HTTPS, each given 1 s, in turns until
/// `stop`; returns (asked, answered) and the peak resident memory of `pid` seen.
fn bystander(
    ca: &TestCa,
    tls: SocketAddr,
    https: SocketAddr,
    pid: u32,
    stop: Arc<AtomicBool>,
) -> impl Future<Output = (u32, u32, u64)> + use<> {
    let ca_pem = ca.path("ca.pem");
    async move {
        let (mut asked, mut answered, mut peak) = (0, 0, 0);
        while !stop.load(Ordering::Relaxed) {
            for (addr, transport) in [(tls, "+tls"), (https, "+https")] {
                peak = peak.max(rss_kib(pid));
                let output = kdig_once(&ca_pem, addr, transport).await;
                asked += 1;
                answered += u32::from(output == "10.244.1.10\n");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        (asked, answered, peak)
    }
}

/// One kdig question for web-0 over `transport` with a 1 s limit; its short answer.
async fn kdig_once(ca_pem: &std::path::Path, addr: SocketAddr, transport: &str) -> String {
    let output = tokio::process::Command::new("kdig")
        .args([
            &format!("@{}", addr.ip()),
            "-p",
            &addr.port().to_string(),
            transport,
            &format!("+tls-ca={}", ca_pem.display()),
            "+tls-hostname=dns.test",
            "+time=1",
            "+retry=0",
            "+short",
            "web-0.nginx.demo.svc.cluster.local",
        ])
        .output()
        .await
        .expect("kdig runs");
    let answer = String::from_utf8_lossy(&output.stdout).into_owned();
    if answer.is_empty() {
        eprintln!(
            "kdig {transport} {addr}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    answer
}

/// Lets the binary open as many sockets as the tests do: the soft limit raised to the hard.
fn raise_open_files_limit() {
    // SAFETY: plain system calls on a local struct.
    unsafe {
        let mut limit = std::mem::zeroed::<libc::rlimit>();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

const GOAWAY_PROTOCOL_ERROR: u64 = 0x1;
const REFUSED_STREAM: &str = "7";
const ENHANCE_YOUR_CALM: u64 = 0xb;

#[tokio::test]
async fn http2_attacks_are_stopped_and_other_clients_answered_in_bounded_memory() {
    let ca = TestCa::new().await;
    let (binary, tls, https) = encrypted_binary(&ca, &[]).await;
    let pid = binary.pid();
    let start = rss_kib(pid);
    for (attack, count) in [
        ("rapid-reset", 100_000),
        ("continuation", 100_000),
        ("settings-flood", 1_000_000),
        ("ping-flood", 1_000_000),
        ("streams", 2_000),
        ("zero-window", 0),
    ] {
        let stop = Arc::new(AtomicBool::new(false));
        let others = tokio::spawn(bystander(&ca, tls, https, pid, stop.clone()));
        let report = h2_attack(&ca, https, attack, count).await;
        stop.store(true, Ordering::Relaxed);
        let (asked, answered, peak) = others.await.unwrap();
        let goaway = report["goaway"].as_u64();
        let sent = report["sent"].as_u64().unwrap_or(0);
        match attack {
            // h2's max_pending_accept_reset_streams (20): GOAWAY after a few hundred, and
            // the connection closed (the GOAWAY is lost when the close resets it first).
            "rapid-reset" => assert!(
                report["closed"] == true
                    && matches!(goaway, None | Some(ENHANCE_YOUR_CALM))
                    && sent < count / 10,
                "{attack}: {report}"
            ),
            // The header block outgrows max_header_list_size (16 KiB, PROTOCOL_ERROR) or
            // h2's count of CONTINUATION frames per block (ENHANCE_YOUR_CALM), whichever
            // its decoder meets first: the connection ends long before the 1.6 GB the
            // flood holds.
            "continuation" => assert!(
                report["closed"] == true
                    && matches!(
                        goaway,
                        None | Some(GOAWAY_PROTOCOL_ERROR) | Some(ENHANCE_YOUR_CALM)
                    )
                    && sent < 1_000,
                "{attack}: {report}"
            ),
            // One SETTINGS or PING acknowledgement pending at a time: unread, they stop the
            // server reading (the flood blocks) or are all sent; never queued without end.
            "settings-flood" | "ping-flood" => assert!(
                report["blocked"] == true || report["closed"] == false,
                "{attack}: {report}"
            ),
            // SETTINGS_MAX_CONCURRENT_STREAMS 100: the rest refused, and after h2's
            // max_local_error_reset_streams (1024) refusals the connection ends.
            "streams" => assert!(
                report["resets"][REFUSED_STREAM].as_u64() >= Some(1_000)
                    && goaway == Some(ENHANCE_YOUR_CALM),
                "{attack}: {report}"
            ),
            // The window never opens: no answer sent, 100 held, the rest refused.
            "zero-window" => assert!(
                report["data"] == 0 && report["resets"][REFUSED_STREAM].as_u64() >= Some(1),
                "{attack}: {report}"
            ),
            _ => unreachable!(),
        }
        assert!(
            asked >= 2 && answered == asked,
            "{attack}: {answered} of {asked} answered"
        );
        // Bounded: a few MB at most above the start (the demo is served in ~15 MB).
        assert!(
            peak < start + 32 * 1024,
            "{attack}: {peak} KiB resident, {start} KiB at the start"
        );
    }
    let log = binary.stop().await;
    assert!(!log.contains("panicked"), "{log}");
}

/// Opens `count` connections to `addr` from `from` that never send anything.
async fn silent(addr: SocketAddr, from: [u8; 4], count: usize) -> Vec<tokio::net::TcpStream> {
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        let socket = TcpSocket::new_v4().expect("socket");
        socket.bind(SocketAddr::from((from, 0))).expect("bind");
        if let Ok(stream) = socket.connect(addr).await {
            out.push(stream);
        }
    }
    out
}

#[tokio::test]
async fn silent_and_abandoned_connections_do_not_lock_new_clients_out() {
    raise_open_files_limit();
    let ca = TestCa::new().await;
    // The defaults: 1,024 connections per listener, 256 per client, 3 s handshakes.
    let (binary, tls, https) = encrypted_binary(&ca, &[]).await;
    let ca_pem = ca.path("ca.pem");
    for addr in [tls, https] {
        // 2,000 sockets that never send a ClientHello, from eight addresses: the table is
        // full many times over (one address alone gets 256 in).
        let mut held = Vec::new();
        for last in 2..10u8 {
            held.extend(silent(addr, [127, 0, 0, last], 250).await);
        }
        // And the attacker keeps at it while the client asks: new silent sockets, and
        // handshakes begun (a ClientHello's first bytes) then abandoned.
        let stop = Arc::new(AtomicBool::new(false));
        let flood = {
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut rounds = 0u32;
                while !stop.load(Ordering::Relaxed) && rounds < 2_000 {
                    let mut more = silent(addr, [127, 0, 0, 10 + (rounds % 4) as u8], 20).await;
                    for stream in more.iter_mut().take(10) {
                        let _ = stream
                            .write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01])
                            .await;
                    }
                    drop(more);
                    rounds += 1;
                }
            })
        };
        // A new client, given 1 s by kdig, is answered: it took the place of the oldest
        // silent connection rather than waiting for one to time out.
        let transport = if addr == tls { "+tls" } else { "+https" };
        for _ in 0..3 {
            assert_eq!(
                kdig_once(&ca_pem, addr, transport).await,
                "10.244.1.10\n",
                "{transport} during the flood"
            );
        }
        stop.store(true, Ordering::Relaxed);
        flood.await.unwrap();
        drop(held);
    }
    // Memory stayed bounded and nothing broke.
    assert!(rss_kib(binary.pid()) < 96 * 1024);
    let log = binary.stop().await;
    assert!(!log.contains("panicked"), "{log}");
}

#[tokio::test]
async fn the_log_line_of_each_reset_connection_is_rate_limited() {
    let ca = TestCa::new().await;
    let (binary, _tls, https) = encrypted_binary(&ca, &[]).await;
    // 30 connections, each ended for resetting streams too fast: h2 warns for each.
    for _ in 0..30 {
        let report = h2_attack(&ca, https, "rapid-reset", 10_000).await;
        assert!(report["closed"] == true, "{report}");
    }
    // Five lines written per 10 s window, and at the end of it one saying how many were
    // left out.
    fn tally(log: &str) -> (u64, u64) {
        let written = log.lines().filter(|l| l.contains(" WARN h2::")).count() as u64;
        let left_out = log
            .lines()
            .filter(|l| l.contains("log lines left out") && l.contains("from=h2::"))
            .filter_map(|l| l.split("suppressed=").nth(1))
            .filter_map(|n| n.trim().parse::<u64>().ok())
            .sum();
        (written, left_out)
    }
    // Under load a few connections end another way (no line at all); most write one.
    let accounted = crate::support::eventually(Duration::from_secs(25), || {
        let (written, left_out) = tally(&binary.log());
        async move { written + left_out >= 20 && left_out > 0 }
    })
    .await;
    let log = binary.log();
    let (written, left_out) = tally(&log);
    assert!(accounted, "{written} written, {left_out} left out: {log}");
    // The 30 take about a second: one window, two if they straddle its end.
    assert!((5..=10).contains(&written), "{log}");
    binary.stop().await;
}
