//! `--snapshot` at 100k endpoints: the file's size, the time to encode and write it, and the
//! time a restarted server takes from reading it to serving it (decode, then the
//! controller's load), to set against the first list from the API (bench/relist_memory.rs:
//! 0.54 s for the same cluster against the API double).
//!
//!     cargo bench --bench snapshot
//!     cargo bench --bench snapshot -- --services 10000 --pods 10

#[path = "common.rs"]
#[allow(dead_code)]
mod common;
#[path = "objects.rs"]
mod objects;

use std::time::{Duration, Instant};

/// One run: bytes, then the times to encode, encode and write, read and decode, serve.
type Run = (usize, Duration, Duration, Duration, Duration);

use headless_dns::Config;
use headless_dns::embed::Core;
use headless_dns::model::persist::Snapshot;

fn main() {
    let services: u32 = common::arg("--services", 1000);
    let pods: u32 = common::arg("--pods", 100);
    let objects: Vec<_> = (0..services)
        .flat_map(|s| {
            objects::headless(&format!("ns{}", s % 100), &format!("s{s}"), pods, s * pods)
        })
        .collect();
    let snapshot = Snapshot {
        serial: 1,
        written_at: 1,
        objects,
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("state");
    let mut runs: Vec<Run> = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        let bytes = snapshot.encode();
        let encoded = started.elapsed();
        std::fs::write(&path, &bytes).expect("write");
        let written = started.elapsed();

        let started = Instant::now();
        let loaded = headless_dns::persist::load(&path).expect("the snapshot reads");
        let decoded = started.elapsed();
        let mut core = Core::new(&Config::default());
        core.controller.load_snapshot(loaded);
        let served = started.elapsed();
        assert!(core.store.is_ready());
        runs.push((bytes.len(), encoded, written, decoded, served));
    }
    let median = |pick: fn(&Run) -> f64| {
        let mut v: Vec<f64> = runs.iter().map(pick).collect();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    println!(
        "{services} Services x {pods} pods = {} endpoints: snapshot {:.1} MB; encode {:.0} ms, with the write {:.0} ms; read and decode {:.0} ms, served (controller load) after {:.0} ms (medians of {})",
        services * pods,
        runs[0].0 as f64 / 1e6,
        median(|r| r.1.as_secs_f64() * 1e3),
        median(|r| r.2.as_secs_f64() * 1e3),
        median(|r| r.3.as_secs_f64() * 1e3),
        median(|r| r.4.as_secs_f64() * 1e3),
        runs.len()
    );
}
