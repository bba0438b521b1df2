//! Soak: dnsperf's mix load for minutes while a Service changes every 100 ms.
//!
//!     cargo bench --bench soak                       # 10 minutes
//!     cargo bench --bench soak -- --seconds 60
//!
//! The release binary watches the API double (tests/it/api_double.rs, loopback) loaded with
//! 1,000 headless Services of 10 StatefulSet pods. dnsperf (Debian `dnsperf`) sends the mix
//! (70% pod A, 15% Service A, 5% SRV, 5% AAAA NODATA, 5% NXDOMAIN) for `--seconds`, while
//! Service `churn` gets new pod addresses every 100 ms and a checker asks, every 20 ms, for
//! a churned pod (its answer must be one of the addresses it had in the last two seconds)
//! and for a stable pod (its answer must never change). Printed: dnsperf's summary, checks
//! and wrong answers, and the server's resident size at the start and the end.

#[path = "../tests/it/api_double.rs"]
#[allow(dead_code)]
mod api_double;
#[path = "common.rs"]
#[allow(dead_code)]
mod common;

use std::collections::VecDeque;
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::net::UdpSocket;

use api_double::ApiDouble;
use common::{a_query, arg, free_port, status_kib};

const SERVICES: usize = 1000;
const PODS: usize = 10;

fn pod_ip(service: usize, pod: usize) -> Ipv4Addr {
    let n = (service * PODS + pod) as u32;
    Ipv4Addr::from(0x0a00_0000 + n)
}

fn objects(ns: &str, name: &str, ips: &[Ipv4Addr]) -> [Value; 3] {
    let ips: Vec<String> = ips.iter().map(Ipv4Addr::to_string).collect();
    common::headless(ns, name, &ips)
}

fn name(service: usize) -> (String, String) {
    (format!("ns{}", service % 50), format!("s{service}"))
}

/// The dnsperf mix over the loaded names.
fn query_file(path: &std::path::Path) {
    let mut out = String::new();
    for i in 0..10_000usize {
        let s = (i * 7919) % SERVICES;
        let (ns, svc) = name(s);
        let pod = i % PODS;
        let line = match i % 20 {
            0..=13 => format!("{svc}-{pod}.{svc}.{ns}.svc.cluster.local A"),
            14..=16 => format!("{svc}.{ns}.svc.cluster.local A"),
            17 => format!("_web._tcp.{svc}.{ns}.svc.cluster.local SRV"),
            18 => format!("{svc}-{pod}.{svc}.{ns}.svc.cluster.local AAAA"),
            _ => format!("{svc}-{pod}.{svc}.{ns}.svc.cluster.local.cluster.local A"),
        };
        out.push_str(&line);
        out.push('\n');
    }
    std::fs::write(path, out).expect("write the query file");
}

/// What a checked query got.
#[derive(Debug, PartialEq, Eq)]
enum Answer {
    One(Ipv4Addr),
    /// An RCODE, or an answer count other than one.
    Other {
        rcode: u8,
        ancount: u16,
    },
    /// No response within 500 ms.
    Lost,
}

fn answer_of(response: &[u8]) -> Answer {
    if response.len() < 12 {
        return Answer::Other {
            rcode: 255,
            ancount: 0,
        };
    }
    let rcode = response[3] & 0x0F;
    let ancount = u16::from_be_bytes([response[6], response[7]]);
    if rcode != 0 || ancount != 1 {
        return Answer::Other { rcode, ancount };
    }
    let tail = &response[response.len() - 4..];
    Answer::One(Ipv4Addr::new(tail[0], tail[1], tail[2], tail[3]))
}

async fn ask(socket: &UdpSocket, server: SocketAddr, name: &str) -> Answer {
    static NEXT_ID: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(1);
    let id = NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    if socket.send_to(&a_query(id, name), server).await.is_err() {
        return Answer::Lost;
    }
    let mut buf = [0u8; 512];
    let deadline = tokio::time::Instant::now() + Duration::from_millis(500);
    // A late reply to an earlier check is skipped, not taken for this one's.
    loop {
        match tokio::time::timeout_at(deadline, socket.recv(&mut buf)).await {
            Ok(Ok(len)) if len >= 2 && buf[..2] == id.to_be_bytes() => {
                return answer_of(&buf[..len]);
            }
            Ok(Ok(_)) => continue,
            _ => return Answer::Lost,
        }
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let seconds: u64 = arg("--seconds", 600);
    let double = ApiDouble::start().await;
    for s in 0..SERVICES {
        let (ns, svc) = name(s);
        let ips: Vec<Ipv4Addr> = (0..PODS).map(|p| pod_ip(s, p)).collect();
        for object in objects(&ns, &svc, &ips) {
            double.apply(object);
        }
    }
    let churn_ip = |generation: u32, pod: u32| Ipv4Addr::from(0x0b00_0000 + generation * 4 + pod);
    for object in objects("soak", "churn", &[churn_ip(0, 0), churn_ip(0, 1)]) {
        double.apply(object);
    }

    let dir = tempfile::tempdir().expect("temp dir");
    let kubeconfig = double.write_kubeconfig(dir.path());
    let queries = dir.path().join("mix.txt");
    query_file(&queries);
    let dns_port = free_port();
    let http_port = free_port();
    let server: SocketAddr = ([127, 0, 0, 1], dns_port).into();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_headless-dns"))
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .args([
            "--listen",
            &server.to_string(),
            "--threads",
            "1",
            "--log",
            "warn",
        ])
        .args(["--http", &format!("127.0.0.1:{http_port}")])
        .kill_on_drop(true)
        .spawn()
        .expect("the release binary starts");
    let pid = child.id().expect("running");
    let socket = UdpSocket::bind("127.0.0.1:0").await.expect("client socket");
    let stable = "s1-3.s1.ns1.svc.cluster.local.";
    let started = Instant::now();
    while ask(&socket, server, stable).await != Answer::One(pod_ip(1, 3)) {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "not serving in 60 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_start = status_kib(pid, "VmRSS:");

    // Churn: every 100 ms, new addresses for churn-0 and churn-1; remember the recent ones.
    let recent: Arc<Mutex<VecDeque<(Instant, Ipv4Addr)>>> = Arc::new(Mutex::new(VecDeque::new()));
    recent
        .lock()
        .expect("lock")
        .push_back((Instant::now(), churn_ip(0, 0)));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let churner = {
        let double = double.clone();
        let recent = recent.clone();
        tokio::spawn(async move {
            let mut generation = 0u32;
            while Instant::now() < deadline {
                generation += 1;
                let ips = [churn_ip(generation, 0), churn_ip(generation, 1)];
                recent
                    .lock()
                    .expect("lock")
                    .push_back((Instant::now(), ips[0]));
                double.apply(objects("soak", "churn", &ips)[2].clone());
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            generation
        })
    };
    let perf = tokio::process::Command::new("dnsperf")
        // -e: EDNS (1232 bytes), as resolvers send; without it every 10-target SRV answer
        // (over 512 bytes) would come back truncated.
        .args(["-s", "127.0.0.1", "-p", &dns_port.to_string(), "-e", "-d"])
        .arg(&queries)
        .args([
            "-l",
            &seconds.to_string(),
            "-c",
            "4",
            "-Q",
            "20000",
            "-S",
            "60",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("dnsperf runs (apt-get install dnsperf)");

    let (mut checks, mut lost, mut wrong) = (0u64, 0u64, Vec::new());
    let mut rss_samples = vec![rss_start];
    let mut last_sample = Instant::now();
    while Instant::now() < deadline {
        let churned = ask(&socket, server, "churn-0.churn.soak.svc.cluster.local.").await;
        let now = Instant::now();
        let ok = {
            let mut recent = recent.lock().expect("lock");
            while recent.len() > 1
                && recent
                    .front()
                    .is_some_and(|(at, _)| now - *at > Duration::from_secs(2))
            {
                recent.pop_front();
            }
            match churned {
                Answer::One(ip) => recent.iter().any(|(_, r)| *r == ip),
                Answer::Lost => true,
                Answer::Other { .. } => false,
            }
        };
        lost += u64::from(churned == Answer::Lost);
        if !ok {
            wrong.push(format!("churn-0 answered {churned:?}"));
        }
        let stable_answer = ask(&socket, server, stable).await;
        lost += u64::from(stable_answer == Answer::Lost);
        if stable_answer != Answer::One(pod_ip(1, 3)) && stable_answer != Answer::Lost {
            wrong.push(format!("{stable} answered {stable_answer:?}"));
        }
        checks += 2;
        if last_sample.elapsed() > Duration::from_secs(30) {
            rss_samples.push(status_kib(pid, "VmRSS:"));
            last_sample = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let generations = churner.await.unwrap_or(0);
    let output = perf.wait_with_output().await.expect("dnsperf finishes");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_end = status_kib(pid, "VmRSS:");
    let _ = child.kill().await;

    let report = String::from_utf8_lossy(&output.stdout);
    let mut stdout = std::io::stdout();
    let _ = writeln!(stdout, "{report}");
    let _ = writeln!(
        stdout,
        "soak {seconds} s: {generations} churn updates, {checks} sampled checks, {} wrong, {lost} unanswered within 500 ms",
        wrong.len()
    );
    for w in wrong.iter().take(10) {
        let _ = writeln!(stdout, "  wrong: {w}");
    }
    let _ = writeln!(
        stdout,
        "resident: start {:.1} MiB, end {:.1} MiB; samples every 30 s (MiB): {}",
        rss_start as f64 / 1024.0,
        rss_end as f64 / 1024.0,
        rss_samples
            .iter()
            .map(|k| format!("{:.1}", *k as f64 / 1024.0))
            .collect::<Vec<_>>()
            .join(" ")
    );
}
