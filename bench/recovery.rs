//! How soon the server is back in step after the API server was away.
//!
//!     cargo bench --bench recovery
//!     cargo bench --bench recovery -- --services 10 --pods 10 --outages 5,30
//!     HEADLESS_DNS_BIN=/path/to/old/headless-dns cargo bench --bench recovery
//!
//! The release binary (or `HEADLESS_DNS_BIN`) watches the API double of tests/it/api_double.rs
//! on loopback, loaded with `services` headless Services of `pods` StatefulSet pods each.
//! For each outage length: the double refuses every connection for that long and comes back
//! with its history compacted (as a restarted API server: every watch's resourceVersion is
//! too old, 410 Gone); at the moment it accepts requests again, one StatefulSet is scaled up
//! by a pod with its endpoint, and the time until that pod's name answers over UDP is
//! printed, with the time until every watch has relisted.

#[path = "../tests/it/api_double.rs"]
#[allow(dead_code)]
mod api_double;
#[path = "common.rs"]
#[allow(dead_code)]
mod common;

use std::time::{Duration, Instant};

use serde_json::Value;

use api_double::ApiDouble;
use common::{a_query, arg, free_port, http_get as get, init_done};

fn ips(s: usize, pods: usize, first: usize) -> Vec<String> {
    (first..pods)
        .map(|i| {
            let n = s * 1000 + i;
            format!("10.{}.{}.{}", (n >> 16) & 255, (n >> 8) & 255, n & 255)
        })
        .collect()
}

/// Whether `name` has an A record at `dns` now.
async fn answers(socket: &tokio::net::UdpSocket, dns: u16, name: &str) -> bool {
    let query = a_query(7, name);
    if socket.send_to(&query, ("127.0.0.1", dns)).await.is_err() {
        return false;
    }
    let mut buf = [0u8; 512];
    match tokio::time::timeout(Duration::from_millis(200), socket.recv(&mut buf)).await {
        // RCODE 0 and one answer.
        Ok(Ok(len)) => len > 12 && buf[3] & 0x0f == 0 && buf[7] == 1,
        _ => false,
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let services = arg("--services", 1000);
    let pods = arg("--pods", 100);
    let outages: String = arg("--outages", "5,30".to_string());
    let double = ApiDouble::start().await;
    for s in 0..services {
        for object in common::headless("load", &format!("s{s}"), &ips(s, pods, 0)) {
            double.apply(object);
        }
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let kubeconfig = double.write_kubeconfig(dir.path());
    let (http, dns) = (free_port(), free_port());
    let binary = std::env::var("HEADLESS_DNS_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_headless-dns").to_owned());
    let mut child = tokio::process::Command::new(&binary)
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .args(["--listen", &format!("127.0.0.1:{dns}"), "--log", "error"])
        .args(["--http", &format!("127.0.0.1:{http}")])
        .kill_on_drop(true)
        .spawn()
        .expect("the binary starts");
    let started = Instant::now();
    common::wait_ready(http).await;
    println!(
        "{binary}: {services} Services x {pods} pods = {} endpoints, synced in {:.2} s",
        services * pods,
        started.elapsed().as_secs_f64()
    );
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("bind");
    for (round, outage) in outages
        .split(',')
        .filter_map(|o| o.parse::<u64>().ok())
        .enumerate()
    {
        let lists_before = init_done(&get(http, "/metrics").await.unwrap_or_default());
        double.set_outage(true);
        double.expire_history();
        tokio::time::sleep(Duration::from_secs(outage)).await;
        // Back: the change made at once.
        let grown = pods + 1 + round;
        let name = format!("s{round}");
        let [_, sts, slice]: [Value; 3] = common::headless("load", &name, &ips(round, grown, 0));
        double.set_outage(false);
        let back = Instant::now();
        double.apply(sts);
        double.apply(slice);
        let pod = format!("{name}-{}.{name}.load.svc.cluster.local.", grown - 1);
        let mut served = None;
        let mut relisted = None;
        while back.elapsed() < Duration::from_secs(120) && (served.is_none() || relisted.is_none())
        {
            if served.is_none() && answers(&socket, dns, &pod).await {
                served = Some(back.elapsed());
            }
            if relisted.is_none()
                && init_done(&get(http, "/metrics").await.unwrap_or_default()) >= lists_before + 3
            {
                relisted = Some(back.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let secs = |d: Option<Duration>| {
            d.map_or("not within 120 s".to_owned(), |d| {
                format!("{:.2} s", d.as_secs_f64())
            })
        };
        println!(
            "outage of {outage} s, history compacted: every watch relisted after {}, the scale-up served after {}",
            secs(relisted),
            secs(served)
        );
    }
    let _ = child.kill().await;
}
