//! The Kubernetes source end to end: the real kube client and watchers against the API
//! double on loopback, answers asked over real sockets.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use headless_dns::{Config, EndpointsApi, KubernetesSource, Source};
use hickory_net::proto::op::{Message, ResponseCode};
use hickory_net::proto::rr::RecordType;
use serde_json::{Value, json};

use crate::api_double::ApiDouble;
use crate::support::{
    Binary, TestServer, data, encode, eventually, http_get, loopback_config, query, udp_exchange,
    udp_message,
};

/// Long enough for a watch event, a reconnect after a short outage, or a relist.
const WAIT: Duration = Duration::from_secs(20);

fn service(ns: &str, name: &str, publish_not_ready: bool) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": ns, "labels": {"app": name}},
        "spec": {
            "clusterIP": "None",
            "selector": {"app": name},
            "publishNotReadyAddresses": publish_not_ready,
            "ports": [{"name": "web", "port": 80, "protocol": "TCP"}]
        }
    })
}

fn stateful_set(ns: &str, name: &str, service: &str, replicas: u32) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "serviceName": service,
            "replicas": replicas,
            "selector": {"matchLabels": {"app": service}},
            "template": {"metadata": {"labels": {"app": service}}, "spec": {"containers": []}}
        }
    })
}

/// One pod's endpoint.
#[derive(Clone, Copy)]
struct Ep<'a> {
    hostname: &'a str,
    ip: &'a str,
    ready: bool,
    serving: bool,
    terminating: bool,
}

fn ready<'a>(hostname: &'a str, ip: &'a str) -> Ep<'a> {
    Ep {
        hostname,
        ip,
        ready: true,
        serving: true,
        terminating: false,
    }
}

fn slice(ns: &str, name: &str, service: &str, endpoints: &[Ep<'_>]) -> Value {
    let endpoints: Vec<Value> = endpoints
        .iter()
        .map(|e| {
            json!({
                "addresses": [e.ip],
                "hostname": e.hostname,
                "conditions": {"ready": e.ready, "serving": e.serving, "terminating": e.terminating},
                "targetRef": {"kind": "Pod", "name": e.hostname, "namespace": ns}
            })
        })
        .collect();
    json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {
            "name": name, "namespace": ns,
            "labels": {"kubernetes.io/service-name": service}
        },
        "addressType": "IPv4",
        "endpoints": endpoints,
        "ports": [{"name": "web", "port": 80, "protocol": "TCP"}]
    })
}

/// nginx headless Service, StatefulSet web of 3, one EndpointSlice.
fn demo_cluster(double: &ApiDouble) {
    double.apply(service("demo", "nginx", false));
    double.apply(stateful_set("demo", "web", "nginx", 3));
    double.apply(slice(
        "demo",
        "nginx-abc",
        "nginx",
        &[
            ready("web-0", "10.244.1.10"),
            ready("web-1", "10.244.2.11"),
            ready("web-2", "10.244.3.12"),
        ],
    ));
}

/// zk Service and StatefulSet of 3 in `data`: zk-0 ready, zk-1 starting (not ready, not
/// serving), zk-2 terminating (not ready, still serving).
fn zk_ensemble(double: &ApiDouble) {
    double.apply(service("data", "zk", false));
    double.apply(stateful_set("data", "zk", "zk", 3));
    double.apply(slice(
        "data",
        "zk-1",
        "zk",
        &[
            ready("zk-0", "10.244.4.10"),
            Ep {
                hostname: "zk-1",
                ip: "10.244.4.11",
                ready: false,
                serving: false,
                terminating: false,
            },
            Ep {
                hostname: "zk-2",
                ip: "10.244.4.12",
                ready: false,
                serving: true,
                terminating: true,
            },
        ],
    ));
}

fn kube_config() -> Config {
    Config {
        http: Some("127.0.0.1:0".parse().expect("literal address")),
        ..loopback_config()
    }
}

async fn start_with(config: Config, source: KubernetesSource) -> TestServer {
    TestServer::start(config, Source::Kubernetes(source)).await
}

async fn start(double: &ApiDouble) -> TestServer {
    let server = start_with(kube_config(), KubernetesSource::new(double.client())).await;
    assert!(
        eventually(WAIT, || async { server.handle.is_ready() }).await,
        "the server syncs with the API double"
    );
    server
}

/// The response code and answer data of an A (or other) query over UDP.
async fn lookup(server: &TestServer, name: &str, rtype: RecordType) -> (ResponseCode, Vec<String>) {
    // A lost datagram on a loaded machine is retried, as a resolver would.
    for _ in 0..5 {
        if let Some(bytes) =
            udp_exchange(server.addr, &encode(&query(name, rtype, Some(1232)))).await
        {
            let response = Message::from_vec(&bytes).expect("response parses");
            return (response.metadata.response_code, data(&response));
        }
    }
    panic!("{name}: no response in 5 tries");
}

/// Waits until `/metrics` has exactly this line.
async fn until_metric(server: &TestServer, line: &str) {
    let reached = eventually(WAIT, || async {
        server.handle.metrics_text().lines().any(|l| l == line)
    })
    .await;
    assert!(
        reached,
        "{line:?} never in\n{}",
        server.handle.metrics_text()
    );
}

async fn a(server: &TestServer, name: &str) -> (ResponseCode, Vec<String>) {
    lookup(server, name, RecordType::A).await
}

fn ok(ips: &[&str]) -> (ResponseCode, Vec<String>) {
    (
        ResponseCode::NoError,
        ips.iter().map(|s| s.to_string()).collect(),
    )
}

fn nodata() -> (ResponseCode, Vec<String>) {
    (ResponseCode::NoError, vec![])
}

fn nxdomain() -> (ResponseCode, Vec<String>) {
    (ResponseCode::NXDomain, vec![])
}

/// Waits until `name` answers `expected`; fails with the last answer seen.
async fn until(server: &TestServer, name: &str, expected: (ResponseCode, Vec<String>)) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let seen = a(server, name).await;
        if seen == expected {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{name}: expected {expected:?}, last answer {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Queries `name` in the background until stopped; returns every response code seen.
struct Watcher {
    stop: Arc<AtomicBool>,
    answers: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<Vec<ResponseCode>>,
}

impl Watcher {
    fn start(server: &TestServer, name: &'static str) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let answers = Arc::new(AtomicUsize::new(0));
        let addr = server.addr;
        let (flag, count) = (stop.clone(), answers.clone());
        let task = tokio::spawn(async move {
            let mut seen = Vec::new();
            // Bounded: at most ~60 s of queries at one per 5 ms.
            for _ in 0..12_000 {
                if flag.load(Ordering::Relaxed) {
                    break;
                }
                // A datagram lost under load is not an answer; only answers are judged.
                let bytes =
                    udp_exchange(addr, &encode(&query(name, RecordType::A, Some(1232)))).await;
                if let Some(response) = bytes.and_then(|b| Message::from_vec(&b).ok()) {
                    seen.push(response.metadata.response_code);
                    count.fetch_add(1, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            seen
        });
        Self {
            stop,
            answers,
            task,
        }
    }

    /// Waits until the watcher has judged `n` more answers, so every phase of a scenario is
    /// observed however quickly the server follows it (a fast machine must not make the
    /// watcher see too little to prove anything).
    async fn observe(&self, n: usize) {
        let target = self.answers.load(Ordering::Relaxed) + n;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while self.answers.load(Ordering::Relaxed) < target {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the watcher got no answers for 30 s"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    async fn finish(self) -> Vec<ResponseCode> {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.expect("watcher task")
    }
}

const WEB0: &str = "web-0.nginx.demo.svc.cluster.local.";
const NGINX: &str = "nginx.demo.svc.cluster.local.";

#[tokio::test]
async fn serves_every_kind_from_the_api_and_follows_scaling() {
    let double = ApiDouble::start().await;
    demo_cluster(&double);
    let server = start(&double).await;
    assert_eq!(a(&server, WEB0).await, ok(&["10.244.1.10"]));
    assert_eq!(
        a(&server, NGINX).await,
        ok(&["10.244.1.10", "10.244.2.11", "10.244.3.12"])
    );
    let srv = lookup(
        &server,
        "_web._tcp.nginx.demo.svc.cluster.local.",
        RecordType::SRV,
    )
    .await;
    assert_eq!(srv.1.len(), 3, "{srv:?}");
    assert!(
        srv.1[0].ends_with("web-0.nginx.demo.svc.cluster.local."),
        "{srv:?}"
    );

    // Scale 3 -> 5: the new ordinals exist (NODATA) before their pods have addresses...
    double.apply(stateful_set("demo", "web", "nginx", 5));
    until(&server, "web-4.nginx.demo.svc.cluster.local.", nodata()).await;
    assert_eq!(
        a(&server, "web-3.nginx.demo.svc.cluster.local.").await,
        nodata()
    );
    assert_eq!(
        a(&server, "web-5.nginx.demo.svc.cluster.local.").await,
        nxdomain()
    );
    // ...and resolve, in ordinal order, once they do.
    double.apply(slice(
        "demo",
        "nginx-abc",
        "nginx",
        &[
            ready("web-4", "10.244.1.14"),
            ready("web-0", "10.244.1.10"),
            ready("web-3", "10.244.3.13"),
            ready("web-1", "10.244.2.11"),
            ready("web-2", "10.244.3.12"),
        ],
    ));
    until(
        &server,
        NGINX,
        ok(&[
            "10.244.1.10",
            "10.244.2.11",
            "10.244.3.12",
            "10.244.3.13",
            "10.244.1.14",
        ]),
    )
    .await;
    assert_eq!(
        a(&server, "web-4.nginx.demo.svc.cluster.local.").await,
        ok(&["10.244.1.14"])
    );

    // Scale 5 -> 2: names above the ordinals are gone.
    double.apply(stateful_set("demo", "web", "nginx", 2));
    double.apply(slice(
        "demo",
        "nginx-abc",
        "nginx",
        &[ready("web-0", "10.244.1.10"), ready("web-1", "10.244.2.11")],
    ));
    until(&server, "web-2.nginx.demo.svc.cluster.local.", nxdomain()).await;
    until(&server, NGINX, ok(&["10.244.1.10", "10.244.2.11"])).await;
    assert_eq!(
        a(&server, "web-4.nginx.demo.svc.cluster.local.").await,
        nxdomain()
    );

    // A deleted Service takes its names along.
    double.delete("v1", "Service", "demo", "nginx");
    until(&server, WEB0, nxdomain()).await;
}

#[tokio::test]
async fn a_replaced_pod_is_nodata_in_between_never_nxdomain() {
    let double = ApiDouble::start().await;
    demo_cluster(&double);
    let server = start(&double).await;
    let watcher = Watcher::start(&server, WEB0);
    let others = [ready("web-1", "10.244.2.11"), ready("web-2", "10.244.3.12")];
    let with = |web0: Option<Ep<'static>>| {
        let mut eps: Vec<Ep<'_>> = web0.into_iter().collect();
        eps.extend_from_slice(&others);
        slice("demo", "nginx-abc", "nginx", &eps)
    };

    // Terminating: not ready, still serving.
    double.apply(with(Some(Ep {
        hostname: "web-0",
        ip: "10.244.1.10",
        ready: false,
        serving: true,
        terminating: true,
    })));
    until(&server, WEB0, nodata()).await;
    watcher.observe(5).await;
    // Gone from the slice: the pod is deleted.
    double.apply(with(None));
    until_metric(&server, "headless_dns_endpoints 2").await;
    assert_eq!(a(&server, WEB0).await, nodata());
    watcher.observe(5).await;
    // Recreated on another node: an address, not ready yet.
    double.apply(with(Some(Ep {
        hostname: "web-0",
        ip: "10.244.7.70",
        ready: false,
        serving: false,
        terminating: false,
    })));
    until_metric(&server, "headless_dns_endpoints 3").await;
    assert_eq!(a(&server, WEB0).await, nodata());
    watcher.observe(5).await;
    // Ready: the new address.
    double.apply(with(Some(ready("web-0", "10.244.7.70"))));
    until(&server, WEB0, ok(&["10.244.7.70"])).await;
    watcher.observe(5).await;
    assert_eq!(
        a(&server, NGINX).await,
        ok(&["10.244.7.70", "10.244.2.11", "10.244.3.12"])
    );

    let seen = watcher.finish().await;
    assert!(
        seen.len() >= 20,
        "the watcher saw every phase: {}",
        seen.len()
    );
    assert!(
        !seen.contains(&ResponseCode::NXDomain) && !seen.contains(&ResponseCode::ServFail),
        "web-0 flapped: {seen:?}"
    );
}

#[tokio::test]
async fn slices_of_one_service_are_merged_and_deduplicated() {
    let double = ApiDouble::start().await;
    double.apply(service("demo", "nginx", false));
    double.apply(stateful_set("demo", "web", "nginx", 3));
    double.apply(slice(
        "demo",
        "nginx-c",
        "nginx",
        &[ready("web-1", "10.244.2.11")],
    ));
    // web-2 listed in two slices, as during a slice rebalance.
    double.apply(slice(
        "demo",
        "nginx-a",
        "nginx",
        &[ready("web-2", "10.244.3.12")],
    ));
    double.apply(slice(
        "demo",
        "nginx-b",
        "nginx",
        &[ready("web-0", "10.244.1.10"), ready("web-2", "10.244.3.12")],
    ));
    let server = start(&double).await;
    assert_eq!(
        a(&server, NGINX).await,
        ok(&["10.244.1.10", "10.244.2.11", "10.244.3.12"])
    );
    double.delete("discovery.k8s.io/v1", "EndpointSlice", "demo", "nginx-c");
    until(&server, NGINX, ok(&["10.244.1.10", "10.244.3.12"])).await;
    assert_eq!(
        a(&server, "web-1.nginx.demo.svc.cluster.local.").await,
        nodata(),
        "its ordinal still exists"
    );
    double.delete("discovery.k8s.io/v1", "EndpointSlice", "demo", "nginx-a");
    until_metric(&server, "headless_dns_endpoints 2").await;
    assert_eq!(
        a(&server, "web-2.nginx.demo.svc.cluster.local.").await,
        ok(&["10.244.3.12"]),
        "still listed by nginx-b"
    );
}

#[tokio::test]
async fn not_ready_and_terminating_endpoints_follow_publish_not_ready_addresses() {
    let double = ApiDouble::start().await;
    zk_ensemble(&double);
    let server = start(&double).await;
    let zk = "zk.data.svc.cluster.local.";
    assert_eq!(a(&server, zk).await, ok(&["10.244.4.10"]));
    assert_eq!(
        a(&server, "zk-1.zk.data.svc.cluster.local.").await,
        nodata()
    );

    double.apply(service("data", "zk", true));
    until(
        &server,
        zk,
        ok(&["10.244.4.10", "10.244.4.11", "10.244.4.12"]),
    )
    .await;
    assert_eq!(
        a(&server, "zk-1.zk.data.svc.cluster.local.").await,
        ok(&["10.244.4.11"])
    );

    // The pod becomes ready with publishNotReadyAddresses off again.
    double.apply(service("data", "zk", false));
    double.apply(slice(
        "data",
        "zk-1",
        "zk",
        &[ready("zk-0", "10.244.4.10"), ready("zk-1", "10.244.4.11")],
    ));
    until(&server, zk, ok(&["10.244.4.10", "10.244.4.11"])).await;
}

#[tokio::test]
async fn unready_pod_names_resolve_with_the_flag_and_the_service_stays_ready_only() {
    let double = ApiDouble::start().await;
    zk_ensemble(&double);
    let config = Config {
        publish_unready_pod_names: true,
        ..kube_config()
    };
    let server = start_with(config, KubernetesSource::new(double.client())).await;
    assert!(eventually(WAIT, || async { server.handle.is_ready() }).await);
    assert_eq!(
        a(&server, "zk.data.svc.cluster.local.").await,
        ok(&["10.244.4.10"])
    );
    assert_eq!(
        a(&server, "zk-1.zk.data.svc.cluster.local.").await,
        ok(&["10.244.4.11"])
    );
    assert_eq!(
        a(&server, "zk-2.zk.data.svc.cluster.local.").await,
        nodata(),
        "terminating pods are not named"
    );
}

#[tokio::test]
async fn answers_keep_serving_through_cut_watches_and_an_api_outage_and_catch_up_after() {
    let double = ApiDouble::start().await;
    demo_cluster(&double);
    let server = start(&double).await;
    let watcher = Watcher::start(&server, WEB0);
    // A watch connection dropped mid-stream: the watchers resume, the next change arrives.
    double.cut_watches();
    double.apply(stateful_set("demo", "web", "nginx", 4));
    until(&server, "web-3.nginx.demo.svc.cluster.local.", nodata()).await;
    double.set_outage(true);
    tokio::time::sleep(Duration::from_secs(2)).await;
    watcher.observe(5).await;
    assert_eq!(a(&server, WEB0).await, ok(&["10.244.1.10"]));
    let http = server.handle.http_addr().expect("http is on");
    assert_eq!(http_get(http, "/readyz").await.0, 200, "still ready");
    double.set_outage(false);
    double.apply(slice(
        "demo",
        "nginx-abc",
        "nginx",
        &[
            ready("web-0", "10.244.1.10"),
            ready("web-1", "10.244.2.11"),
            ready("web-2", "10.244.9.12"),
        ],
    ));
    until(
        &server,
        "web-2.nginx.demo.svc.cluster.local.",
        ok(&["10.244.9.12"]),
    )
    .await;
    let seen = watcher.finish().await;
    assert!(
        seen.iter().all(|r| *r == ResponseCode::NoError),
        "web-0 answered throughout: {seen:?}"
    );
    let metrics = server.handle.metrics_text();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("headless_dns_watch_restarts_total") && !l.ends_with(" 0")),
        "restarts counted:\n{metrics}"
    );
}

#[tokio::test]
async fn lists_come_in_pages_and_every_object_is_served() {
    // 250 Services with a slice each: three pages of 100 per kind.
    let double = ApiDouble::start().await;
    for n in 0..250 {
        let name = format!("s{n}");
        double.apply(service("paged", &name, false));
        let ip = format!("10.250.{}.{}", n / 200, n % 200 + 1);
        double.apply(slice(
            "paged",
            &format!("{name}-x"),
            &name,
            &[ready(&name, &ip)],
        ));
    }
    let server = start(&double).await;
    for n in [0, 99, 100, 199, 249] {
        let ip = format!("10.250.{}.{}", n / 200, n % 200 + 1);
        assert_eq!(
            a(&server, &format!("s{n}.paged.svc.cluster.local.")).await,
            ok(&[&ip]),
            "s{n}"
        );
    }
    let pages = |plural: &str| {
        double
            .requests()
            .iter()
            .filter(|r| r.contains(&format!("/{plural}?")) && !r.contains("watch=true"))
            .filter(|r| r.contains("limit=100"))
            .count()
    };
    assert_eq!(pages("services"), 3, "{:#?}", double.requests());
    assert_eq!(pages("endpointslices"), 3, "{:#?}", double.requests());
    server.handle.shutdown().await;
}

#[tokio::test]
async fn after_a_long_outage_and_a_compacted_history_the_first_change_is_served_promptly() {
    let double = ApiDouble::start().await;
    demo_cluster(&double);
    let server = start(&double).await;
    // The API server goes away for 12 s and comes back with its history compacted (a
    // restart): under kube's default backoff the watches would wait up to 12.8 s more, and
    // back the 410 off again before relisting.
    double.set_outage(true);
    double.expire_history();
    tokio::time::sleep(Duration::from_secs(12)).await;
    assert_eq!(
        a(&server, WEB0).await,
        ok(&["10.244.1.10"]),
        "served meanwhile"
    );
    double.set_outage(false);
    let back = tokio::time::Instant::now();
    double.apply(stateful_set("demo", "web", "nginx", 4));
    // A retry at most every 500 ms, and the relist at once after the 410.
    let deadline = back + Duration::from_secs(3);
    loop {
        if a(&server, "web-3.nginx.demo.svc.cluster.local.").await == nodata() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the scale-up is served within 3 s of the API's return"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.handle.shutdown().await;
}

#[tokio::test]
async fn a_relist_after_410_swaps_in_whole_and_drops_what_was_deleted_unseen() {
    let double = ApiDouble::start().await;
    demo_cluster(&double);
    double.apply(service("demo", "gone", false));
    double.apply(slice(
        "demo",
        "gone-1",
        "gone",
        &[ready("gone-0", "10.244.5.1")],
    ));
    let server = start(&double).await;
    assert_eq!(
        a(&server, "gone.demo.svc.cluster.local.").await,
        ok(&["10.244.5.1"])
    );
    let watcher = Watcher::start(&server, WEB0);
    // Deleted while no watch is connected, then the history is compacted: the watchers
    // resume from an expired resourceVersion, get 410 and relist.
    double.set_outage(true);
    double.delete("v1", "Service", "demo", "gone");
    double.expire_history();
    tokio::time::sleep(Duration::from_millis(500)).await;
    double.set_outage(false);
    until(&server, "gone.demo.svc.cluster.local.", nxdomain()).await;
    // A relist storm: expired three more times in a row.
    for _ in 0..3 {
        double.expire_history();
        tokio::time::sleep(Duration::from_millis(300)).await;
        watcher.observe(5).await;
    }
    double.apply(stateful_set("demo", "web", "nginx", 4));
    until(&server, "web-3.nginx.demo.svc.cluster.local.", nodata()).await;
    let seen = watcher.finish().await;
    assert!(
        seen.iter().all(|r| *r == ResponseCode::NoError),
        "web-0 answered throughout the relists: {seen:?}"
    );
    assert_eq!(a(&server, WEB0).await, ok(&["10.244.1.10"]));
    let metrics = server.handle.metrics_text();
    let relists = metrics
        .lines()
        .find(|l| {
            l.starts_with("headless_dns_watch_events_total")
                && l.contains("kind=\"Service\"")
                && l.contains("type=\"init_done\"")
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<u64>().ok());
    assert!(
        relists.is_some_and(|n| n >= 2),
        "relists counted:\n{metrics}"
    );
}

#[tokio::test]
async fn namespace_and_label_filters_are_applied_by_the_api_server() {
    let double = ApiDouble::start().await;
    demo_cluster(&double);
    let mut hidden = service("demo", "hidden", false);
    hidden["metadata"]["labels"] = json!({"dns": "off"});
    double.apply(hidden);
    double.apply(slice(
        "demo",
        "hidden-1",
        "hidden",
        &[ready("h-0", "10.244.6.1")],
    ));
    let mut nginx = service("demo", "nginx", false);
    nginx["metadata"]["labels"] = json!({"dns": "on"});
    double.apply(nginx);
    double.apply(service("other", "elsewhere", false));
    double.apply(slice(
        "other",
        "elsewhere-1",
        "elsewhere",
        &[ready("e-0", "10.244.6.2")],
    ));

    let source = KubernetesSource::new(double.client())
        .namespaces(["demo"])
        .label_selector("dns=on");
    let server = start_with(kube_config(), source).await;
    assert!(eventually(WAIT, || async { server.handle.is_ready() }).await);
    assert_eq!(a(&server, WEB0).await, ok(&["10.244.1.10"]));
    assert_eq!(
        a(&server, "hidden.demo.svc.cluster.local.").await,
        nxdomain()
    );
    assert_eq!(
        a(&server, "elsewhere.other.svc.cluster.local.").await,
        nxdomain()
    );
    let requests = double.requests();
    assert!(
        requests.iter().all(|r| r.contains("/namespaces/demo/")),
        "every request is namespaced: {requests:?}"
    );
    assert!(
        requests
            .iter()
            .filter(|r| r.contains("/services"))
            .all(|r| r.contains("labelSelector=dns")),
        "Services are filtered by the API server: {requests:?}"
    );
}

#[tokio::test]
async fn legacy_endpoints_serve_old_clusters() {
    let double = ApiDouble::start().await;
    double.apply(service("demo", "nginx", false));
    double.apply(stateful_set("demo", "web", "nginx", 2));
    double.apply(json!({
        "apiVersion": "v1", "kind": "Endpoints",
        "metadata": {"name": "nginx", "namespace": "demo"},
        "subsets": [{
            "addresses": [
                {"ip": "10.244.2.11", "hostname": "web-1"},
                {"ip": "10.244.1.10", "hostname": "web-0"}
            ],
            "ports": [{"name": "web", "port": 80, "protocol": "TCP"}]
        }]
    }));
    let source = KubernetesSource::new(double.client()).endpoints_api(EndpointsApi::Endpoints);
    let server = start_with(kube_config(), source).await;
    assert!(eventually(WAIT, || async { server.handle.is_ready() }).await);
    assert_eq!(a(&server, NGINX).await, ok(&["10.244.1.10", "10.244.2.11"]));
    assert!(
        double.requests().iter().any(|r| r.contains("/endpoints"))
            && !double
                .requests()
                .iter()
                .any(|r| r.contains("endpointslices")),
        "{:?}",
        double.requests()
    );
}

#[tokio::test]
async fn servfail_and_not_ready_until_every_kind_is_listed() {
    let double = ApiDouble::start().await;
    demo_cluster(&double);
    // Services and EndpointSlices list at once; StatefulSets are held back.
    double.hold(Some("statefulsets"));
    let server = start_with(kube_config(), KubernetesSource::new(double.client())).await;
    let http = server.handle.http_addr().expect("http is on");
    for kind in ["Service", "EndpointSlice"] {
        until_metric(
            &server,
            &format!("headless_dns_watch_events_total{{kind=\"{kind}\",type=\"init_done\"}} 1"),
        )
        .await;
    }
    assert_eq!(
        a(&server, WEB0).await.0,
        ResponseCode::ServFail,
        "no false NXDOMAIN before every kind is listed"
    );
    assert_eq!(http_get(http, "/readyz").await.0, 503);
    assert_eq!(http_get(http, "/healthz").await.0, 200);
    double.hold(None);
    assert!(eventually(WAIT, || async { server.handle.is_ready() }).await);
    assert_eq!(http_get(http, "/readyz").await.0, 200);
    assert_eq!(a(&server, WEB0).await, ok(&["10.244.1.10"]));

    // A slow API server: changes still arrive, answers stay.
    double.set_delay(Duration::from_millis(500));
    double.apply(stateful_set("demo", "web", "nginx", 4));
    until(&server, "web-3.nginx.demo.svc.cluster.local.", nodata()).await;
    assert_eq!(a(&server, WEB0).await, ok(&["10.244.1.10"]));
}

#[tokio::test]
async fn the_binary_watches_a_kubeconfig_cluster_serves_metrics_and_drains_on_sigterm() {
    let double = ApiDouble::start().await;
    demo_cluster(&double);
    let dir = tempfile::tempdir().expect("temp dir");
    let kubeconfig = double.write_kubeconfig(dir.path());
    let binary = Binary::start(
        &[
            "--kubeconfig",
            kubeconfig.to_str().expect("utf-8 path"),
            "--namespace",
            "demo",
            "--shutdown-grace",
            "3s",
        ],
        &[],
    )
    .await;
    let http = binary.http.expect("the binary serves HTTP");
    assert!(
        eventually(WAIT, || async { http_get(http, "/readyz").await.0 == 200 }).await,
        "ready after the first sync: {}",
        binary.log()
    );
    let response = udp_message(binary.addr, &query(WEB0, RecordType::A, None)).await;
    assert_eq!(data(&response), ["10.244.1.10"]);
    double.apply(stateful_set("demo", "web", "nginx", 4));
    let web3 = "web-3.nginx.demo.svc.cluster.local.";
    assert!(
        eventually(WAIT, || async {
            let r = udp_message(binary.addr, &query(web3, RecordType::A, None)).await;
            r.metadata.response_code == ResponseCode::NoError
        })
        .await
    );

    let (status, metrics) = http_get(http, "/metrics").await;
    assert_eq!(status, 200);
    for needle in [
        "headless_dns_dns_requests_total{proto=\"udp\",type=\"A\"}",
        "headless_dns_dns_responses_total{proto=\"udp\",rcode=\"NOERROR\"}",
        "headless_dns_dns_request_duration_seconds_count{proto=\"udp\"}",
        "headless_dns_programming_latency_seconds_count",
        "headless_dns_services 1",
        "headless_dns_endpoints 3",
        "headless_dns_watch_events_total{kind=\"StatefulSet\",type=\"apply\"} 1",
        "headless_dns_last_sync_age_seconds{kind=\"Service\"}",
    ] {
        assert!(metrics.contains(needle), "{needle} missing from\n{metrics}");
    }
    let answered = metrics
        .lines()
        .find(|l| l.starts_with("headless_dns_dns_requests_total{proto=\"udp\",type=\"A\"}"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<u64>().ok());
    assert!(answered.is_some_and(|n| n >= 2), "{metrics}");

    // SIGTERM: /readyz fails at once while queries are still answered, then a clean exit.
    let pid = binary.pid();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
    assert!(
        eventually(Duration::from_secs(3), || async {
            http_get(http, "/readyz").await.0 == 503
        })
        .await,
        "lameduck: /readyz fails first"
    );
    let response = udp_message(binary.addr, &query(WEB0, RecordType::A, None)).await;
    assert_eq!(
        data(&response),
        ["10.244.1.10"],
        "still answering while draining"
    );
    let (code, log) = binary.wait_exit(Duration::from_secs(10)).await;
    assert_eq!(code, Some(0), "{log}");
    assert!(log.contains("draining"), "{log}");
}

#[tokio::test]
async fn a_context_without_a_reachable_api_stays_not_ready() {
    let double = ApiDouble::start().await;
    demo_cluster(&double);
    let dir = tempfile::tempdir().expect("temp dir");
    let kubeconfig = double.write_kubeconfig(dir.path());
    let binary = Binary::start(
        &[
            "--kubeconfig",
            kubeconfig.to_str().expect("utf-8 path"),
            "--context",
            "other",
        ],
        &[],
    )
    .await;
    let http = binary.http.expect("the binary serves HTTP");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(http_get(http, "/readyz").await.0, 503);
    let response = udp_message(binary.addr, &query(WEB0, RecordType::A, None)).await;
    assert_eq!(response.metadata.response_code, ResponseCode::ServFail);
    let log = binary.stop().await;
    assert!(log.contains("watch failed"), "{log}");
}

/// A minute without the API server (as in a control-plane upgrade): every answer keeps
/// coming from the last known state, and the first change after it is served once the
/// watches are back (kube's backoff caps retries at about 30 s apart).
#[tokio::test]
async fn a_minute_long_api_outage_changes_nothing_that_is_served() {
    let double = ApiDouble::start().await;
    demo_cluster(&double);
    let server = start(&double).await;
    let watcher = Watcher::start(&server, NGINX);
    double.set_outage(true);
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(
        a(&server, NGINX).await,
        ok(&["10.244.1.10", "10.244.2.11", "10.244.3.12"])
    );
    double.set_outage(false);
    double.apply(stateful_set("demo", "web", "nginx", 4));
    let web3 = "web-3.nginx.demo.svc.cluster.local.";
    let back = eventually(Duration::from_secs(90), || async {
        a(&server, web3).await == nodata()
    })
    .await;
    assert!(back, "the change after the outage was never served");
    let seen = watcher.finish().await;
    assert!(seen.len() > 100, "asked often enough: {}", seen.len());
    assert!(
        seen.iter().all(|r| *r == ResponseCode::NoError),
        "answers changed during the outage: {seen:?}"
    );
}
