//! The API server double against the real kube client and kube-runtime's `watcher`: proof
//! that it speaks the protocol well enough for the Kubernetes source's tests to trust it.

use std::fmt::Debug;
use std::time::Duration;

use futures::{Stream, StreamExt};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, ListParams, PostParams, WatchEvent, WatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::{Instant, timeout};

use crate::api_double::ApiDouble;

/// Long enough for the watcher's default backoff (0.8 s doubling, jittered) after an outage.
const WAIT: Duration = Duration::from_secs(20);

fn service(namespace: &str, name: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"clusterIP": "None", "ports": [{"name": "web", "port": 80}]}
    })
}

fn slice(namespace: &str, name: &str, service: &str) -> Value {
    json!({
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {"kubernetes.io/service-name": service}
        },
        "addressType": "IPv4",
        "endpoints": [{"addresses": ["10.1.0.1"], "hostname": format!("{service}-0")}],
        "ports": [{"name": "web", "port": 80}]
    })
}

fn stateful_set(namespace: &str, name: &str, labels: Value) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {
            "serviceName": name,
            "replicas": 3,
            "selector": {"matchLabels": {"pod": name}},
            "template": {"metadata": {"labels": {"pod": name}}}
        }
    })
}

fn id<K: ResourceExt>(object: &K) -> String {
    format!(
        "{}/{}",
        object.namespace().unwrap_or_default(),
        object.name_any()
    )
}

/// A watcher event as a short line, so a test compares a sequence with one `assert_eq`.
fn describe<K: ResourceExt>(event: &watcher::Event<K>) -> String {
    match event {
        watcher::Event::Init => "Init".into(),
        watcher::Event::InitApply(object) => format!("InitApply {}", id(object)),
        watcher::Event::InitDone => "InitDone".into(),
        watcher::Event::Apply(object) => format!("Apply {}", id(object)),
        watcher::Event::Delete(object) => format!("Delete {}", id(object)),
    }
}

/// Runs `watcher` with the default backoff, as the Kubernetes source will, in a task; its
/// events arrive described. Errors (a cut watch, an outage) are retried by the watcher and
/// left out: what a test checks is what the consumer finally sees.
fn watch_events<K>(api: Api<K>, config: watcher::Config) -> mpsc::UnboundedReceiver<String>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + 'static,
{
    let (sender, events) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut stream = std::pin::pin!(watcher(api, config).default_backoff());
        while let Some(item) = stream.next().await {
            if let Ok(event) = item
                && sender.send(describe(&event)).is_err()
            {
                return;
            }
        }
    });
    events
}

/// The next `n` events, each within `WAIT`.
async fn take(events: &mut mpsc::UnboundedReceiver<String>, n: usize) -> Vec<String> {
    let mut taken = Vec::new();
    for _ in 0..n {
        match timeout(WAIT, events.recv()).await {
            Ok(Some(event)) => taken.push(event),
            _ => panic!("no watcher event within {WAIT:?}; so far {taken:?}"),
        }
    }
    taken
}

/// The next item of a raw watch stream, within `WAIT`.
async fn next_raw<S: Stream + Unpin>(stream: &mut S) -> Option<S::Item> {
    timeout(WAIT, stream.next())
        .await
        .expect("a raw watch item within the wait")
}

fn lists(requests: &[String]) -> usize {
    requests
        .iter()
        .filter(|r| !r.contains("watch=true"))
        .count()
}

fn watches(requests: &[String]) -> Vec<&String> {
    requests
        .iter()
        .filter(|r| r.contains("watch=true"))
        .collect()
}

/// The status code of a kube API error.
fn api_error_code<T: Debug>(result: Result<T, kube::Error>) -> u16 {
    match result {
        Err(kube::Error::Api(status)) => status.code,
        other => panic!("expected an API error Status, got {other:?}"),
    }
}

#[tokio::test]
async fn watcher_lists_then_follows_live_changes() {
    let api = ApiDouble::start().await;
    api.apply(service("demo", "nginx"));
    api.apply(service("apps", "db"));
    // Other kinds do not appear in a Service watch.
    api.apply(slice("demo", "nginx-abc", "nginx"));
    api.apply(stateful_set("demo", "web", json!({"app": "web"})));

    let mut events = watch_events(
        Api::<Service>::all(api.client()),
        watcher::Config::default(),
    );
    assert_eq!(
        take(&mut events, 4).await,
        [
            "Init",
            "InitApply apps/db",
            "InitApply demo/nginx",
            "InitDone"
        ]
    );

    assert!(api.wait_for_watches(1, WAIT).await);
    api.apply(service("demo", "cache"));
    api.apply(slice("demo", "cache-abc", "cache"));
    api.delete("v1", "Service", "apps", "db");
    api.delete("v1", "Service", "apps", "never-existed");
    assert_eq!(
        take(&mut events, 2).await,
        ["Apply demo/cache", "Delete apps/db"]
    );

    // On the wire: one list, then a watch from the list's resourceVersion.
    let requests = api.requests();
    assert_eq!(requests[0], "GET /api/v1/services?limit=500");
    assert_eq!(
        requests[1],
        "GET /api/v1/services?watch=true&timeoutSeconds=290&allowWatchBookmarks=true&resourceVersion=4"
    );
    assert_eq!(requests.len(), 2, "{requests:?}");
}

#[tokio::test]
async fn expired_history_makes_the_watcher_relist() {
    let api = ApiDouble::start().await;
    api.apply(stateful_set("demo", "web", json!({"app": "web"})));
    let mut events = watch_events(
        Api::<StatefulSet>::all(api.client()),
        watcher::Config::default(),
    );
    assert_eq!(
        take(&mut events, 3).await,
        ["Init", "InitApply demo/web", "InitDone"]
    );
    assert!(api.wait_for_watches(1, WAIT).await);

    api.expire_history();
    assert_eq!(api.open_watches(), 0);
    assert_eq!(
        take(&mut events, 3).await,
        ["Init", "InitApply demo/web", "InitDone"]
    );

    // After the relist, live changes flow again.
    assert!(api.wait_for_watches(1, WAIT).await);
    api.apply(stateful_set("demo", "db", json!({"app": "db"})));
    assert_eq!(take(&mut events, 1).await, ["Apply demo/db"]);
    assert_eq!(lists(&api.requests()), 2, "{:?}", api.requests());
}

#[tokio::test]
async fn a_watch_from_compacted_history_gets_410_expired() {
    let api = ApiDouble::start().await;
    api.apply(service("demo", "nginx"));
    api.expire_history();
    let services = Api::<Service>::all(api.client());
    let stream = services
        .watch(&WatchParams::default(), "1")
        .await
        .expect("the watch is answered 200");
    let mut stream = std::pin::pin!(stream);
    match next_raw(&mut stream).await {
        Some(Ok(WatchEvent::Error(status))) => {
            assert_eq!((status.code, status.reason.as_str()), (410, "Expired"));
        }
        other => panic!("expected a 410 ERROR event, got {other:?}"),
    }
    assert!(next_raw(&mut stream).await.is_none(), "the stream ends");
}

#[tokio::test]
async fn a_namespaced_selector_watch_asks_for_and_sees_only_its_objects() {
    let api = ApiDouble::start().await;
    api.apply(slice("demo", "web-abc", "web"));
    api.apply(slice("demo", "db-abc", "db"));
    api.apply(slice("other", "web-xyz", "web"));

    let slices: Api<EndpointSlice> = Api::namespaced(api.client(), "demo");
    let config = watcher::Config::default().labels("kubernetes.io/service-name=web");
    let mut events = watch_events(slices, config);
    assert_eq!(
        take(&mut events, 3).await,
        ["Init", "InitApply demo/web-abc", "InitDone"]
    );

    assert!(api.wait_for_watches(1, WAIT).await);
    api.apply(slice("demo", "db-def", "db"));
    api.apply(slice("other", "web-uvw", "web"));
    api.apply(slice("demo", "web-def", "web"));
    // Events arrive in order, so anything unfiltered would come first.
    assert_eq!(take(&mut events, 1).await, ["Apply demo/web-def"]);

    let requests = api.requests();
    assert_eq!(requests.len(), 2, "{requests:?}");
    for request in &requests {
        assert!(
            request.starts_with("GET /apis/discovery.k8s.io/v1/namespaces/demo/endpointslices?"),
            "{request}"
        );
        assert!(
            request.contains("labelSelector=kubernetes.io/service-name=web"),
            "{request}"
        );
    }
}

#[tokio::test]
async fn label_selectors_follow_kubernetes_semantics() {
    let api = ApiDouble::start().await;
    api.apply(stateful_set(
        "demo",
        "web",
        json!({"app": "web", "tier": "front"}),
    ));
    api.apply(stateful_set("demo", "db", json!({"app": "db"})));
    api.apply(stateful_set("demo", "cache", json!({})));
    api.apply(stateful_set("other", "web", json!({"app": "web"})));

    let in_demo: Api<StatefulSet> = Api::namespaced(api.client(), "demo");
    let everywhere: Api<StatefulSet> = Api::all(api.client());
    let cases: [(&Api<StatefulSet>, &str, &[&str]); 11] = [
        (&in_demo, "", &["demo/cache", "demo/db", "demo/web"]),
        (&in_demo, "app=web", &["demo/web"]),
        (&in_demo, "app==web", &["demo/web"]),
        (&in_demo, "app!=web", &["demo/cache", "demo/db"]),
        (&in_demo, "tier", &["demo/web"]),
        (&in_demo, "!tier", &["demo/cache", "demo/db"]),
        (&in_demo, "app in (web, db)", &["demo/db", "demo/web"]),
        (&in_demo, "app notin (web)", &["demo/cache", "demo/db"]),
        (&in_demo, "app=web,tier=front", &["demo/web"]),
        (&in_demo, "app=web,!tier", &[]),
        (&everywhere, "app=web", &["demo/web", "other/web"]),
    ];
    for (sets, selector, expected) in cases {
        let list = sets
            .list(&ListParams::default().labels(selector))
            .await
            .expect("list");
        let found: Vec<String> = list.items.iter().map(id).collect();
        assert_eq!(found, expected, "selector {selector:?}");
        // The collection's resourceVersion: four applies so far.
        assert_eq!(list.metadata.resource_version.as_deref(), Some("4"));
    }

    let bad = in_demo
        .list(&ListParams::default().labels("app in (web"))
        .await;
    assert_eq!(api_error_code(bad), 400);
}

/// A double with Service demo/nginx and a Service watcher that has listed it and is
/// watching.
async fn watching_one_service() -> (ApiDouble, mpsc::UnboundedReceiver<String>) {
    let api = ApiDouble::start().await;
    api.apply(service("demo", "nginx"));
    let mut events = watch_events(
        Api::<Service>::all(api.client()),
        watcher::Config::default(),
    );
    assert_eq!(
        take(&mut events, 3).await,
        ["Init", "InitApply demo/nginx", "InitDone"]
    );
    assert!(api.wait_for_watches(1, WAIT).await);
    (api, events)
}

#[tokio::test]
async fn a_cut_watch_resumes_without_relisting() {
    let (api, mut events) = watching_one_service().await;

    api.cut_watches();
    assert_eq!(api.open_watches(), 0);
    api.apply(service("demo", "cache"));
    assert_eq!(take(&mut events, 1).await, ["Apply demo/cache"]);

    let requests = api.requests();
    assert_eq!(lists(&requests), 1, "{requests:?}");
    let watches = watches(&requests);
    assert_eq!(watches.len(), 2, "{requests:?}");
    assert!(watches[1].ends_with("resourceVersion=1"), "{requests:?}");
}

#[tokio::test]
async fn after_an_outage_the_watcher_resumes() {
    let (api, mut events) = watching_one_service().await;

    api.set_outage(true);
    assert_eq!(api.open_watches(), 0);
    // A new connection is accepted and closed without a response.
    let addr = api.url().trim_start_matches("http://").to_owned();
    let mut raw = TcpStream::connect(&addr).await.expect("connect");
    let _ = raw
        .write_all(b"GET /api/v1/services HTTP/1.1\r\nHost: double\r\n\r\n")
        .await;
    let mut answer = Vec::new();
    let _ = timeout(WAIT, raw.read_to_end(&mut answer))
        .await
        .expect("closed at once");
    assert!(answer.is_empty(), "{}", String::from_utf8_lossy(&answer));
    let list = Api::<Service>::all(api.client())
        .list(&ListParams::default())
        .await;
    assert!(list.is_err(), "a list during the outage fails");

    tokio::time::sleep(Duration::from_secs(1)).await;
    api.set_outage(false);
    api.apply(service("demo", "cache"));
    // History survived the outage: the watch resumes, no relist.
    assert_eq!(take(&mut events, 1).await, ["Apply demo/cache"]);
    // The list refused during the outage never got as far as a request line.
    assert_eq!(lists(&api.requests()), 1, "{:?}", api.requests());
}

#[tokio::test]
async fn kubeconfig_contexts_point_at_the_double_and_at_a_closed_port() {
    let api = ApiDouble::start().await;
    api.apply(service("demo", "nginx"));
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = api.write_kubeconfig(dir.path());
    let kubeconfig = Kubeconfig::read_from(&path).expect("the kubeconfig parses");
    assert_eq!(kubeconfig.current_context.as_deref(), Some("double"));

    let config = kube::Config::from_custom_kubeconfig(kubeconfig.clone(), &Default::default())
        .await
        .expect("current context");
    let client = kube::Client::try_from(config).expect("client");
    let list = Api::<Service>::all(client)
        .list(&ListParams::default())
        .await
        .expect("list through the kubeconfig");
    assert_eq!(list.items.len(), 1);

    let options = KubeConfigOptions {
        context: Some("other".into()),
        ..Default::default()
    };
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &options)
        .await
        .expect("context other");
    let client = kube::Client::try_from(config).expect("client");
    let refused = timeout(
        WAIT,
        Api::<Service>::all(client).list(&ListParams::default()),
    )
    .await
    .expect("a closed port answers at once");
    assert!(refused.is_err());
}

#[tokio::test]
async fn bookmarks_timeouts_and_delays() {
    let api = ApiDouble::start().await;
    api.apply(service("demo", "nginx"));
    let services = Api::<Service>::all(api.client());

    // A watch from "now" starts with the current objects; a bookmark carries the current
    // resourceVersion; timeoutSeconds ends the stream cleanly.
    let stream = services
        .watch(&WatchParams::default().timeout(1), "0")
        .await
        .expect("watch");
    let mut stream = std::pin::pin!(stream);
    match next_raw(&mut stream).await {
        Some(Ok(WatchEvent::Added(object))) => assert_eq!(id(&object), "demo/nginx"),
        other => panic!("expected ADDED, got {other:?}"),
    }
    assert_eq!(api.open_watches(), 1);
    api.send_bookmarks();
    match next_raw(&mut stream).await {
        Some(Ok(WatchEvent::Bookmark(bookmark))) => {
            assert_eq!(bookmark.types.kind, "Service");
            assert_eq!(bookmark.metadata.resource_version, "1");
        }
        other => panic!("expected BOOKMARK, got {other:?}"),
    }
    assert!(next_raw(&mut stream).await.is_none(), "ends after 1 s");

    api.set_delay(Duration::from_millis(300));
    let start = Instant::now();
    services.list(&ListParams::default()).await.expect("list");
    assert!(start.elapsed() >= Duration::from_millis(300));
}

#[tokio::test]
async fn streaming_lists_end_their_initial_events_with_a_bookmark() {
    let api = ApiDouble::start().await;
    api.apply(stateful_set("demo", "web", json!({})));
    let config = watcher::Config::default().streaming_lists();
    let mut events = watch_events(Api::<StatefulSet>::all(api.client()), config);
    assert_eq!(
        take(&mut events, 3).await,
        ["Init", "InitApply demo/web", "InitDone"]
    );
    assert_eq!(lists(&api.requests()), 0);
}

#[tokio::test]
async fn bad_requests_get_a_status_not_a_panic() {
    let api = ApiDouble::start().await;
    let client = api.client();
    // Not served: 404, as a Status body kube parses.
    let config_maps = Api::<k8s_openapi::api::core::v1::ConfigMap>::all(client.clone())
        .list(&ListParams::default())
        .await;
    assert_eq!(api_error_code(config_maps), 404);
    // Writes: a second create of one name is 409 AlreadyExists, a replace from a stale
    // resourceVersion 409 Conflict, a merge patch merges.
    let services = Api::<Service>::namespaced(client.clone(), "demo");
    let service: Service = serde_json::from_value(service("demo", "nginx")).expect("service");
    let created = services
        .create(&PostParams::default(), &service)
        .await
        .expect("created");
    assert!(created.metadata.resource_version.is_some());
    let again = services.create(&PostParams::default(), &service).await;
    assert_eq!(api_error_code(again), 409);
    let mut stale = created.clone();
    stale.metadata.resource_version = Some("1".into());
    api.apply(serde_json::to_value(&created).expect("serializes"));
    let conflict = services
        .replace("nginx", &PostParams::default(), &stale)
        .await;
    assert_eq!(api_error_code(conflict), 409);
    let patched = services
        .patch(
            "nginx",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(serde_json::json!({"metadata": {"labels": {"role": "x"}}})),
        )
        .await
        .expect("patched");
    assert_eq!(
        patched.metadata.labels.as_ref().and_then(|l| l.get("role")),
        Some(&"x".to_owned())
    );

    // Malformed HTTP and bad query encoding: 400.
    let addr = api.url().trim_start_matches("http://").to_owned();
    for request in [
        "NONSENSE\r\n\r\n".to_owned(),
        "GET /api/v1/services?labelSelector=%zz HTTP/1.1\r\nConnection: close\r\n\r\n".to_owned(),
        format!("GET /{} HTTP/1.1\r\n\r\n", "x".repeat(70_000)),
    ] {
        let mut raw = TcpStream::connect(&addr).await.expect("connect");
        let _ = raw.write_all(request.as_bytes()).await;
        let mut answer = Vec::new();
        let _ = timeout(WAIT, raw.read_to_end(&mut answer)).await;
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 400 "), "{answer}");
    }
}
