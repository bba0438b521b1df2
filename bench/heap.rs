//! Live heap per endpoint, by structure: what the server's own data costs, apart from what
//! the allocator keeps around (which `memory.sh` and `relist_memory.rs` see in VmRSS).
//!
//!     cargo bench --bench heap
//!     cargo bench --bench heap -- --services 10000 --pods 10
//!     cargo bench --bench heap -- --manifests bench/out/data-100000/manifests
//!     cargo bench --bench heap -- --manifests bench/out/data-100000/manifests-clusterset --clusterset 1
//!
//! With `--clusterset 1` the server serves `clusterset.local` and reads the folder's
//! ServiceImports and imported slices (`gen_dataset.py --clusterset`); every endpoint,
//! local or imported, counts once in the per-endpoint figures.
//!
//! A counting global allocator tracks live bytes (requested sizes, so malloc's own headers
//! and rounding are not in the figure). Model objects are built in memory (no YAML or API
//! decoding), then the store, controller and compiled answers are loaded, and the live
//! bytes after each step are divided by the endpoints.

#[path = "common.rs"]
#[allow(dead_code)]
mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use headless_dns::Config;
use headless_dns::embed::Core;
use headless_dns::model::Change;
use headless_dns::model::{
    Endpoint, EndpointSlice, Object, ObjectKey, Port, Protocol, Service, ServiceKind, StatefulSet,
};
use headless_dns::source::manifests::ManifestSet;

struct Counting;

static LIVE: AtomicI64 = AtomicI64::new(0);
static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards to the system allocator; the counters have no effect on memory.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as i64, Ordering::Relaxed);
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same layout, forwarded.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as i64, Ordering::Relaxed);
        ALLOCATIONS.fetch_sub(1, Ordering::Relaxed);
        // SAFETY: same pointer and layout, forwarded.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size as i64 - layout.size() as i64, Ordering::Relaxed);
        // SAFETY: same pointer and layout, forwarded.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn objects(services: u32, pods: u32) -> Vec<Object> {
    // Sized exactly, so no spare capacity counts as model bytes.
    let mut out = Vec::with_capacity(3 * services as usize);
    for s in 0..services {
        let ns = format!("ns{}", s % 100);
        let name = format!("s{s}");
        let key = ObjectKey::new(&ns, &name);
        let port = Port {
            name: "web".into(),
            protocol: Protocol::Tcp,
            port: 80,
        };
        out.push(Object::Service(Service {
            key: key.clone(),
            kind: ServiceKind::Headless,
            ports: vec![port.clone()],
            publish_not_ready: false,
        }));
        out.push(Object::StatefulSet(StatefulSet {
            key: key.clone(),
            service_name: name.as_str().into(),
            replicas: pods,
            ordinal_start: 0,
        }));
        out.push(Object::EndpointSlice(EndpointSlice {
            key: ObjectKey::new(&ns, format!("{name}-x")),
            service: key,
            of: Default::default(),
            endpoints: (0..pods)
                .map(|i| Endpoint {
                    ip: IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + s * pods + i)),
                    hostname: Some(format!("{name}-{i}")),
                    ready: true,
                    terminating: false,
                })
                .collect(),
            ports: vec![port],
        }));
    }
    out
}

fn live() -> i64 {
    LIVE.load(Ordering::Relaxed)
}

/// Addresses over every slice of `objects`.
fn count_endpoints(objects: &[Object]) -> usize {
    objects
        .iter()
        .map(|o| match o {
            Object::EndpointSlice(slice) => slice.endpoints.len(),
            Object::Endpoints { subsets, .. } => subsets.iter().map(|s| s.endpoints.len()).sum(),
            _ => 0,
        })
        .sum()
}

fn main() {
    let manifests: String = common::arg("--manifests", String::new());
    let clusterset = common::arg("--clusterset", 0u32) != 0;
    let empty = live();
    let config = Config {
        clusterset_zone: clusterset
            .then(|| headless_dns::config::parse_zone("clusterset.local").expect("a zone")),
        ..Config::default()
    };
    let mut core = Core::new(&config);
    let core_only = live();
    let allocations_before = ALLOCATIONS.load(Ordering::Relaxed);
    // The manifests folder, as the binary loads it (it keeps which file defines which
    // object for the life of the process), or model objects built in memory.
    let (folder, objects) = if manifests.is_empty() {
        let objects = objects(common::arg("--services", 10_000), common::arg("--pods", 10));
        (None, objects)
    } else {
        let options = headless_dns::source::convert::ConvertOptions {
            multicluster: clusterset,
            ..Default::default()
        };
        match ManifestSet::load_with(&manifests, options) {
            Ok((set, objects)) => (Some(set), objects),
            Err(error) => {
                eprintln!("{manifests}: {error}");
                std::process::exit(2);
            }
        }
    };
    let endpoints = count_endpoints(&objects) as f64;
    let services = objects
        .iter()
        .filter(|o| matches!(o, Object::Service(_)))
        .count();
    let per = |bytes: i64| bytes as f64 / endpoints;
    let with_objects = live();
    core.controller.apply([Change::ReplaceAll(objects)]);
    // The objects moved into the controller: what is live now is the folder's index, the
    // controller's model and bookkeeping, and the store.
    let loaded = live();
    let allocations = ALLOCATIONS.load(Ordering::Relaxed) - allocations_before;
    let stats = core.controller.stats();
    let Core {
        store,
        controller,
        responder,
        metrics,
        ..
    } = core;
    drop(controller);
    let without_controller = live();
    drop((store, responder, metrics));
    // Only the folder's index is left.
    let folder_bytes = live() - empty;
    drop(folder);
    let model = with_objects - core_only - folder_bytes;
    let controller = loaded - without_controller;
    let store = without_controller - core_only - folder_bytes;

    println!(
        "{services} Services, {} endpoints, {} names in the store",
        endpoints as u64, stats.names
    );
    println!(
        "  empty core:                         {:>10} bytes",
        core_only - empty
    );
    if !manifests.is_empty() {
        println!(
            "  manifests folder (which file defines which object): {:>6.0} bytes per endpoint",
            per(folder_bytes)
        );
    }
    println!(
        "  model objects as built:             {:>10.0} bytes per endpoint",
        per(model)
    );
    println!(
        "  loaded (model + records + store):   {:>10.0} bytes per endpoint",
        per(controller + store)
    );
    println!(
        "  of which store and bookkeeping:     {:>10.0} bytes per endpoint (loaded minus the model)",
        per(controller + store - model)
    );
    println!(
        "  live allocations (folder included): {:>10.1} per endpoint",
        allocations as f64 / endpoints
    );
    println!(
        "  controller (joined model, published names, reverse claims): {:>6.0} bytes per endpoint",
        per(controller)
    );
    println!(
        "  store (name index, snapshots, compiled answers):             {:>6.0} bytes per endpoint",
        per(store)
    );
}
