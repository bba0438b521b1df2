//! Resident memory of the server through relists of a large cluster.
//!
//!     cargo bench --bench relist_memory
//!     cargo bench --bench relist_memory -- --services 10000 --pods 10 --relists 3
//!
//! The release binary watches the API double of tests/it/api_double.rs (loopback) loaded
//! with `services` headless Services of `pods` StatefulSet pods each (100k endpoints by
//! default). Once it is ready and settled, its resident size (VmRSS) is the steady state;
//! then the double's history is compacted `relists` times, so every watch gets 410 Gone
//! and relists everything, while VmRSS is sampled every 5 ms. Printed: steady, peak during
//! the relists, their ratio, and VmHWM (the peak of the whole run, initial list included).
//! CoreDNS replicas have been OOM-killed by relists (kubernetes issue 139117); the bar is a
//! peak below twice the steady state.

#[path = "../tests/it/api_double.rs"]
#[allow(dead_code)]
mod api_double;
#[path = "common.rs"]
#[allow(dead_code)]
mod common;

use std::time::{Duration, Instant};

use serde_json::Value;

use api_double::ApiDouble;
use common::{arg, free_port, http_get as get, init_done, status_kib};

fn service_objects(s: usize, pods: usize) -> [Value; 3] {
    let ips: Vec<String> = (0..pods)
        .map(|i| {
            let n = s * pods + i;
            format!("10.{}.{}.{}", (n >> 16) & 255, (n >> 8) & 255, n & 255)
        })
        .collect();
    common::headless(&format!("ns{}", s % 100), &format!("s{s}"), &ips)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let services = arg("--services", 10_000);
    let pods = arg("--pods", 10);
    let relists = arg("--relists", 3);
    let double = ApiDouble::start().await;
    for s in 0..services {
        for object in service_objects(s, pods) {
            double.apply(object);
        }
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let kubeconfig = double.write_kubeconfig(dir.path());
    let http = free_port();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_headless-dns"))
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .args(["--listen", "127.0.0.1:0", "--threads", "1", "--log", "warn"])
        .args(["--http", &format!("127.0.0.1:{http}")])
        .kill_on_drop(true)
        .spawn()
        .expect("the release binary starts");
    let pid = child.id().expect("running");
    let started = Instant::now();
    common::wait_ready(http).await;
    let synced = started.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let steady = status_kib(pid, "VmRSS:");

    // Reset the kernel's peak (VmHWM) to now, so that after the relists it is their peak
    // exactly, whatever the sampling below misses.
    let initial_hwm = status_kib(pid, "VmHWM:");
    let reset = std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok();
    let mut peak = steady;
    let before = init_done(&get(http, "/metrics").await.unwrap_or_default());
    let relisting = Instant::now();
    for _ in 0..relists {
        let target = init_done(&get(http, "/metrics").await.unwrap_or_default()) + 3;
        double.expire_history();
        loop {
            peak = peak.max(status_kib(pid, "VmRSS:"));
            if init_done(&get(http, "/metrics").await.unwrap_or_default()) >= target {
                break;
            }
            assert!(
                relisting.elapsed() < Duration::from_secs(600),
                "relists stalled"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    let relist_time = relisting.elapsed();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = status_kib(pid, "VmRSS:");
    let relist_hwm = status_kib(pid, "VmHWM:");
    let completed = init_done(&get(http, "/metrics").await.unwrap_or_default()) - before;
    let _ = child.kill().await;

    let endpoints = services * pods;
    println!(
        "{services} Services x {pods} pods = {endpoints} endpoints; first sync in {:.2} s",
        synced.as_secs_f64()
    );
    println!(
        "steady {:.1} MiB; during {relists} relists ({completed} watch lists in {:.2} s): sampled peak {:.1} MiB = {:.2}x steady, {} {:.1} MiB = {:.2}x steady; after {:.1} MiB",
        steady as f64 / 1024.0,
        relist_time.as_secs_f64(),
        peak as f64 / 1024.0,
        peak as f64 / steady.max(1) as f64,
        if reset {
            "VmHWM since the reset"
        } else {
            "VmHWM of the whole run (reset refused)"
        },
        relist_hwm as f64 / 1024.0,
        relist_hwm as f64 / steady.max(1) as f64,
        after as f64 / 1024.0,
    );
    println!(
        "first sync: VmHWM {:.1} MiB = {:.2}x steady",
        initial_hwm as f64 / 1024.0,
        initial_hwm as f64 / steady.max(1) as f64
    );
}
