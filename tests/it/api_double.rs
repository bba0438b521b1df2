//! A Kubernetes API server double: kube-apiserver's list and watch protocol over HTTP/1.1 on
//! loopback, so the real kube client and kube-runtime's `watcher` run against it unchanged,
//! with faults on demand (compacted history, cut watches, outages, slow responses).
//!
//! The HTTP server is hand-rolled on a `TcpListener` rather than built on hyper's server so a
//! fault does exactly what a broken network or a restarting apiserver does: a socket closed
//! mid-stream, a connection accepted and closed without a word.
//!
//! Layout: the public handle; the resource table; the object store with its change history and
//! open watches; label selectors; routing a request to a reply; the HTTP/1.1 connection loop.
//!
//! Protocol points copied from kube-apiserver, because kube-rs depends on them:
//! - resourceVersions are decimal strings of one global counter (etcd's revision);
//! - a list carries the collection's resourceVersion, and a watch from it sends every later
//!   change; a watch from `""` or `"0"` starts with a synthetic ADDED for each object;
//! - a watch from a compacted resourceVersion is answered 200 with one ERROR event (a 410
//!   `Expired` Status), which is what makes `watcher` relist;
//! - watch events are newline-terminated JSON in a chunked body; BOOKMARKs only when asked for.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde::Serialize;
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

// ---------------------------------------------------------------------------------------------
// The public handle
// ---------------------------------------------------------------------------------------------

/// A running API server double. Clones share one server; dropping the last stops it.
#[derive(Clone)]
pub struct ApiDouble {
    inner: Arc<Inner>,
}

struct Inner {
    /// Objects, history, watches and fault switches, shared with every connection task.
    shared: Arc<Shared>,
    /// Where the server listens (127.0.0.1, a free port).
    addr: SocketAddr,
    /// The accept loop; aborting it also ends every connection (they live in its `JoinSet`).
    server: JoinHandle<()>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl ApiDouble {
    /// Starts a server on a free loopback port. Call within a Tokio runtime.
    pub async fn start() -> ApiDouble {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port for the API double");
        let addr = listener
            .local_addr()
            .expect("a bound listener has an address");
        let shared = Arc::new(Shared::default());
        let server = tokio::spawn(serve(listener, shared.clone()));
        ApiDouble {
            inner: Arc::new(Inner {
                shared,
                addr,
                server,
            }),
        }
    }

    /// The base URL, `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.inner.addr)
    }

    /// A kube client for this server (no auth, default namespace `default`). Call within a Tokio
    /// runtime: the client spawns its request buffer task.
    pub fn client(&self) -> kube::Client {
        let url = self.url().parse().expect("the double's URL is a valid URI");
        kube::Client::try_from(kube::Config::new(url)).expect("a kube client for the double")
    }

    /// Writes `dir/kubeconfig`: context `double` (current) points at this server, context
    /// `other` at a loopback port nobody listens on. Returns the file's path.
    pub fn write_kubeconfig(&self, dir: &Path) -> PathBuf {
        let path = dir.join("kubeconfig");
        std::fs::write(&path, kubeconfig_yaml(&self.url(), &closed_port_url()))
            .expect("write the double's kubeconfig");
        path
    }

    /// Creates or updates an object (by apiVersion, kind, namespace and name): bumps the
    /// resourceVersion, stores it in `metadata.resourceVersion` and sends ADDED or MODIFIED to
    /// matching watches. A missing namespace means `default`.
    ///
    /// Panics on an object the double cannot serve (unknown kind, no name): a test's mistake.
    pub fn apply(&self, object: Value) {
        self.inner.shared.lock().apply(object);
    }

    /// Serves the custom resources of `group` (`multicluster.x-k8s.io`, `about.k8s.io`) in
    /// `versions`, the first the preferred one, and lists them in discovery (`GET /apis`),
    /// as installing their CRDs does. Objects stored in one version are served as they are
    /// in every version (the double converts nothing): apply them in the preferred one.
    pub fn install_crd(&self, group: &str, versions: &[&str]) {
        let mut state = self.inner.shared.lock();
        state.installed.retain(|g| g.name != group);
        state.installed.push(InstalledGroup {
            name: group.to_owned(),
            versions: versions.iter().map(|v| (*v).to_owned()).collect(),
        });
    }

    /// Deletes an object and sends DELETED (the last state, with a new resourceVersion) to
    /// matching watches; nothing happens if it does not exist.
    pub fn delete(&self, api_version: &str, kind: &str, namespace: &str, name: &str) {
        let resource = ResourceType::by_kind(api_version, kind)
            .unwrap_or_else(|| panic!("ApiDouble::delete: {api_version} {kind} is not served"));
        let key = ObjectKey::new(resource, namespace, name);
        self.inner.shared.lock().delete(resource, &key);
    }

    /// Compacts the history: a watch resuming from any resourceVersion seen so far gets 410
    /// Expired. Every open watch is ended, so watchers must relist.
    pub fn expire_history(&self) {
        let mut state = self.inner.shared.lock();
        // Compaction happens at a revision newer than any client has seen, so a watcher
        // resuming from its last resourceVersion, even one just bookmarked, is too old.
        state.revision += 1;
        state.compacted = state.revision;
        state.history.clear();
        // Dropping the senders ends each stream cleanly, as an apiserver ends a watch.
        state.watches.clear();
    }

    /// Drops every open watch connection mid-stream, without an error event: the client
    /// resumes from its last resourceVersion.
    pub fn cut_watches(&self) {
        self.inner.shared.lock().cut_watches();
    }

    /// While down, every new connection is accepted and closed at once, a request on a
    /// kept-alive connection closes it unanswered, and open watches are cut.
    pub fn set_outage(&self, down: bool) {
        let mut state = self.inner.shared.lock();
        state.outage = down;
        if down {
            state.cut_watches();
        }
    }

    /// Delays every response (a list's, a watch's headers) by `delay`.
    pub fn set_delay(&self, delay: Duration) {
        self.inner.shared.lock().delay = delay;
    }

    /// Holds every request for one resource (its plural, e.g. `"statefulsets"`) unanswered
    /// until `hold(None)`, at most a minute: one kind's list stays pending while the others
    /// complete.
    pub fn hold(&self, plural: Option<&'static str>) {
        self.inner.shared.lock().hold = plural;
    }

    /// Sends a BOOKMARK with the current resourceVersion to every watch that allowed them.
    pub fn send_bookmarks(&self) {
        self.inner.shared.lock().send_bookmarks();
    }

    /// Every request received, as `"GET /path?query"` with the query percent-decoded
    /// (`labelSelector=app=web`), oldest first.
    pub fn requests(&self) -> Vec<String> {
        self.inner.shared.lock().requests.clone()
    }

    /// How many watches are streaming now.
    pub fn open_watches(&self) -> usize {
        self.inner.shared.lock().watches.len()
    }

    /// Waits until at least `n` watches are open; false if `timeout` passes first.
    pub async fn wait_for_watches(&self, n: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.open_watches() >= n {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

fn kubeconfig_yaml(server: &str, other_server: &str) -> String {
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: double
  cluster:
    server: {server}
- name: other
  cluster:
    server: {other_server}
users:
- name: anonymous
  user: {{}}
contexts:
- name: double
  context:
    cluster: double
    user: anonymous
- name: other
  context:
    cluster: other
    user: anonymous
current-context: double
"
    )
}

/// A loopback URL whose port was free a moment ago: connections to it are refused.
fn closed_port_url() -> String {
    let listener =
        std::net::TcpListener::bind("127.0.0.1:0").expect("bind a loopback port to free it");
    let addr = listener
        .local_addr()
        .expect("a bound listener has an address");
    format!("http://{addr}")
}

// ---------------------------------------------------------------------------------------------
// Resources served
// ---------------------------------------------------------------------------------------------

/// One kind the double serves, and how it appears in URLs.
struct ResourceType {
    api_version: &'static str,
    kind: &'static str,
    plural: &'static str,
}

/// The kinds headless-dns watches, and those it writes (Leases for the transfer primary,
/// its own Pod's labels). The custom resources (ServiceImport in each version, and
/// ClusterProperty) are served only once a test installs their group (`install_crd`).
static RESOURCES: [ResourceType; 10] = [
    ResourceType {
        api_version: "v1",
        kind: "Service",
        plural: "services",
    },
    ResourceType {
        api_version: "v1",
        kind: "Endpoints",
        plural: "endpoints",
    },
    ResourceType {
        api_version: "discovery.k8s.io/v1",
        kind: "EndpointSlice",
        plural: "endpointslices",
    },
    ResourceType {
        api_version: "apps/v1",
        kind: "StatefulSet",
        plural: "statefulsets",
    },
    ResourceType {
        api_version: "coordination.k8s.io/v1",
        kind: "Lease",
        plural: "leases",
    },
    ResourceType {
        api_version: "v1",
        kind: "Pod",
        plural: "pods",
    },
    ResourceType {
        api_version: "multicluster.x-k8s.io/v1alpha1",
        kind: "ServiceImport",
        plural: "serviceimports",
    },
    ResourceType {
        api_version: "multicluster.x-k8s.io/v1beta1",
        kind: "ServiceImport",
        plural: "serviceimports",
    },
    ResourceType {
        api_version: "multicluster.x-k8s.io/v1alpha2",
        kind: "ServiceImport",
        plural: "serviceimports",
    },
    ResourceType {
        api_version: "about.k8s.io/v1alpha1",
        kind: "ClusterProperty",
        plural: "clusterproperties",
    },
];

/// The groups of the custom resources above: served only when installed.
const CUSTOM_GROUPS: [&str; 2] = ["multicluster.x-k8s.io", "about.k8s.io"];

/// A custom resource group a test installed: its versions, the preferred one first.
#[derive(Clone)]
struct InstalledGroup {
    name: String,
    versions: Vec<String>,
}

impl ResourceType {
    fn by_kind(api_version: &str, kind: &str) -> Option<&'static ResourceType> {
        RESOURCES
            .iter()
            .find(|r| r.api_version == api_version && r.kind == kind)
    }

    fn by_plural(api_version: &str, plural: &str) -> Option<&'static ResourceType> {
        RESOURCES
            .iter()
            .find(|r| r.api_version == api_version && r.plural == plural)
    }
}

// ---------------------------------------------------------------------------------------------
// The store: objects, history, watches
// ---------------------------------------------------------------------------------------------

/// The state every task shares. A plain mutex: it is never held across an await.
#[derive(Default)]
struct Shared(Mutex<State>);

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A test that panicked while holding the lock must not wedge the others' servers.
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[derive(Default)]
struct State {
    /// The global resourceVersion: bumped by every change, as etcd's revision is.
    revision: u64,
    /// Watches from a resourceVersion older than this get 410 Expired.
    compacted: u64,
    /// Current objects; the key's order is a list's order (namespace, then name).
    objects: BTreeMap<ObjectKey, Arc<Value>>,
    /// Every change since the last compaction, oldest first, for resuming watches.
    history: Vec<Change>,
    /// Open watches. Removing one drops its sender, which ends its stream cleanly.
    watches: Vec<Subscriber>,
    /// Identifies a watch so its connection can unregister it.
    next_watch_id: u64,
    /// `set_outage`: refuse every connection and request.
    outage: bool,
    /// `set_delay`: wait this long before each response.
    delay: Duration,
    /// `hold`: requests for this resource (plural) wait until it is cleared.
    hold: Option<&'static str>,
    /// `requests()`: every request line received.
    requests: Vec<String>,
    /// `install_crd`: the custom resource groups served, as discovery lists them.
    installed: Vec<InstalledGroup>,
}

#[derive(Clone, PartialEq, Eq, PartialOrd, Ord)]
struct ObjectKey {
    plural: &'static str,
    namespace: String,
    name: String,
}

impl ObjectKey {
    fn new(resource: &ResourceType, namespace: &str, name: &str) -> Self {
        Self {
            plural: resource.plural,
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        }
    }
}

/// One entry of the history.
struct Change {
    revision: u64,
    resource: &'static ResourceType,
    /// The object as the event carries it, for matching a resumed watch's filter.
    object: Arc<Value>,
    /// The event, encoded once for every watch that gets it.
    line: Arc<str>,
}

/// An open watch, as the store sees it.
struct Subscriber {
    id: u64,
    filter: WatchFilter,
    sender: mpsc::UnboundedSender<WatchMessage>,
}

/// What a watch asked for.
struct WatchFilter {
    resource: &'static ResourceType,
    /// `None` for a cluster-wide watch.
    namespace: Option<String>,
    selector: Selector,
    /// `allowWatchBookmarks=true`.
    bookmarks: bool,
}

impl WatchFilter {
    /// Whether an event about `object` goes to this watch. As in kube-apiserver's simple
    /// case, the labels of the object in the event decide.
    fn matches(&self, resource: &ResourceType, object: &Value) -> bool {
        self.resource.plural == resource.plural
            && self
                .namespace
                .as_deref()
                .is_none_or(|namespace| namespace_of(object) == namespace)
            && self.selector.matches(object)
    }
}

/// From the store to a watch's connection.
enum WatchMessage {
    /// An encoded event line to send.
    Event(Arc<str>),
    /// Drop the connection mid-stream.
    Cut,
}

fn namespace_of(object: &Value) -> &str {
    object
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// A watch event line: `{"type":..,"object":..}` and a newline.
fn event_line(event_type: &str, object: &Value) -> Arc<str> {
    // `Value`'s Display is compact JSON; formatting avoids cloning the object into a new Value.
    format!("{{\"type\":\"{event_type}\",\"object\":{object}}}\n").into()
}

/// A BOOKMARK line; `initial_events_end` marks the end of a streaming list's initial events.
fn bookmark_line(resource: &ResourceType, revision: u64, initial_events_end: bool) -> Arc<str> {
    let mut metadata = json!({"resourceVersion": revision.to_string()});
    if initial_events_end {
        metadata["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    let object = json!({
        "apiVersion": resource.api_version,
        "kind": resource.kind,
        "metadata": metadata,
    });
    event_line("BOOKMARK", &object)
}

/// What kube-apiserver sends on a watch from a compacted resourceVersion.
fn expired_line() -> Arc<str> {
    let status = json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": "too old resource version",
        "reason": "Expired",
        "code": 410,
    });
    event_line("ERROR", &status)
}

impl State {
    fn apply(&mut self, mut object: Value) {
        let api_version = object["apiVersion"].as_str().unwrap_or_default();
        let kind = object["kind"].as_str().unwrap_or_default();
        let resource = ResourceType::by_kind(api_version, kind)
            .unwrap_or_else(|| panic!("ApiDouble::apply: {api_version} {kind} is not served"));
        let name = object
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .expect("ApiDouble::apply: the object needs metadata.name")
            .to_owned();
        let namespace = namespace_of(&object);
        let namespace = if namespace.is_empty() {
            "default".to_owned()
        } else {
            namespace.to_owned()
        };

        self.revision += 1;
        let metadata = object
            .pointer_mut("/metadata")
            .and_then(Value::as_object_mut)
            .expect("ApiDouble::apply: metadata is an object");
        metadata.insert("namespace".into(), namespace.clone().into());
        metadata.insert("resourceVersion".into(), self.revision.to_string().into());

        let key = ObjectKey::new(resource, &namespace, &name);
        let object = Arc::new(object);
        let event_type = match self.objects.insert(key, object.clone()) {
            Some(_) => "MODIFIED",
            None => "ADDED",
        };
        self.publish(resource, event_type, object);
    }

    fn delete(&mut self, resource: &'static ResourceType, key: &ObjectKey) {
        let Some(last) = self.objects.remove(key) else {
            return;
        };
        self.revision += 1;
        let mut object = (*last).clone();
        object["metadata"]["resourceVersion"] = self.revision.to_string().into();
        self.publish(resource, "DELETED", Arc::new(object));
    }

    /// Records a change and sends it to the watches it matches.
    fn publish(&mut self, resource: &'static ResourceType, event_type: &str, object: Arc<Value>) {
        let line = event_line(event_type, &object);
        // A failed send means the watch's connection is gone; forget it.
        self.watches.retain(|watch| {
            !watch.filter.matches(resource, &object)
                || watch.sender.send(WatchMessage::Event(line.clone())).is_ok()
        });
        self.history.push(Change {
            revision: self.revision,
            resource,
            object,
            line,
        });
    }

    fn cut_watches(&mut self) {
        for watch in self.watches.drain(..) {
            // The stream reads Cut before it sees the sender dropped.
            let _ = watch.sender.send(WatchMessage::Cut);
        }
    }

    fn send_bookmarks(&mut self) {
        let revision = self.revision;
        self.watches.retain(|watch| {
            !watch.filter.bookmarks
                || watch
                    .sender
                    .send(WatchMessage::Event(bookmark_line(
                        watch.filter.resource,
                        revision,
                        false,
                    )))
                    .is_ok()
        });
    }

    /// The current objects of one resource in list order, filtered.
    fn select<'a>(
        &'a self,
        resource: &'a ResourceType,
        namespace: Option<&'a str>,
        selector: &'a Selector,
    ) -> impl Iterator<Item = &'a Value> + 'a {
        self.objects
            .iter()
            .filter(move |(key, _)| {
                key.plural == resource.plural
                    && namespace.is_none_or(|namespace| key.namespace == namespace)
            })
            .map(|(_, object)| object.as_ref())
            .filter(move |object| selector.matches(object))
    }

    /// The changes after `since` that a watch's filter matches.
    fn changes_after(&self, since: u64, filter: &WatchFilter) -> Vec<Arc<str>> {
        self.history
            .iter()
            .filter(|change| change.revision > since)
            .filter(|change| filter.matches(change.resource, &change.object))
            .map(|change| change.line.clone())
            .collect()
    }
}

// ---------------------------------------------------------------------------------------------
// Label selectors
// ---------------------------------------------------------------------------------------------

/// A parsed `labelSelector`: every requirement must hold (a comma means AND).
#[derive(Default)]
struct Selector(Vec<Requirement>);

enum Requirement {
    Equals(String, String),
    /// True when the label is absent too, as in Kubernetes.
    NotEquals(String, String),
    Exists(String),
    Absent(String),
    In(String, Vec<String>),
    /// True when the label is absent too, as in Kubernetes.
    NotIn(String, Vec<String>),
}

impl Selector {
    /// Parses `k=v`, `k==v`, `k!=v`, `k`, `!k`, `k in (a,b)`, `k notin (a,b)`, comma-separated.
    fn parse(text: &str) -> Result<Self, String> {
        if text.trim().is_empty() {
            return Ok(Self::default());
        }
        split_requirements(text)
            .into_iter()
            .map(parse_requirement)
            .collect::<Result<_, _>>()
            .map(Self)
    }

    fn matches(&self, object: &Value) -> bool {
        let labels = object
            .pointer("/metadata/labels")
            .and_then(Value::as_object);
        let label = |key: &str| labels.and_then(|l| l.get(key)).and_then(Value::as_str);
        self.0.iter().all(|requirement| match requirement {
            Requirement::Equals(key, value) => label(key) == Some(value.as_str()),
            Requirement::NotEquals(key, value) => label(key) != Some(value.as_str()),
            Requirement::Exists(key) => label(key).is_some(),
            Requirement::Absent(key) => label(key).is_none(),
            Requirement::In(key, values) => {
                label(key).is_some_and(|v| values.iter().any(|x| x == v))
            }
            Requirement::NotIn(key, values) => {
                !label(key).is_some_and(|v| values.iter().any(|x| x == v))
            }
        })
    }
}

/// Splits at the commas outside parentheses (`a in (x,y),b` is two requirements).
fn split_requirements(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    for (at, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                parts.push(&text[start..at]);
                start = at + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

fn parse_requirement(text: &str) -> Result<Requirement, String> {
    let text = text.trim();
    if let Some(key) = text.strip_prefix('!') {
        return Ok(Requirement::Absent(label_key(key)?));
    }
    if let Some(open) = text.find('(') {
        return parse_set_requirement(text, open);
    }
    if let Some((key, value)) = text.split_once("!=") {
        return Ok(Requirement::NotEquals(label_key(key)?, label_value(value)?));
    }
    if let Some((key, value)) = text.split_once("==").or_else(|| text.split_once('=')) {
        return Ok(Requirement::Equals(label_key(key)?, label_value(value)?));
    }
    Ok(Requirement::Exists(label_key(text)?))
}

/// `key in (a,b)` or `key notin (a,b)`; `open` is the index of the parenthesis.
fn parse_set_requirement(text: &str, open: usize) -> Result<Requirement, String> {
    let inside = text[open + 1..]
        .strip_suffix(')')
        .ok_or_else(|| format!("unclosed set in label selector requirement {text:?}"))?;
    let values = inside
        .split(',')
        .map(label_value)
        .collect::<Result<Vec<_>, _>>()?;
    let (key, operator) = text[..open]
        .trim()
        .rsplit_once(char::is_whitespace)
        .ok_or_else(|| format!("no operator in label selector requirement {text:?}"))?;
    match operator {
        "in" => Ok(Requirement::In(label_key(key)?, values)),
        "notin" => Ok(Requirement::NotIn(label_key(key)?, values)),
        _ => Err(format!("unknown set operator {operator:?} in {text:?}")),
    }
}

fn label_key(text: &str) -> Result<String, String> {
    let key = text.trim();
    let valid = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c));
    if valid {
        Ok(key.to_owned())
    } else {
        Err(format!("invalid label key {key:?}"))
    }
}

fn label_value(text: &str) -> Result<String, String> {
    let value = text.trim();
    if value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        Ok(value.to_owned())
    } else {
        Err(format!("invalid label value {value:?}"))
    }
}

// ---------------------------------------------------------------------------------------------
// Routing: a request to a reply
// ---------------------------------------------------------------------------------------------

/// A complete response: a status code and a JSON body.
struct Response {
    status: u16,
    body: Vec<u8>,
}

impl Response {
    fn ok(body: &impl Serialize) -> Self {
        Self {
            status: 200,
            body: serde_json::to_vec(body).expect("JSON values serialize"),
        }
    }

    /// A `Status` object, the body kube-apiserver gives every error.
    fn failure(code: u16, reason: &str, message: &str) -> Self {
        let status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": message,
            "reason": reason,
            "code": code,
        });
        Self {
            status: code,
            body: status.to_string().into_bytes(),
        }
    }

    fn bad_request(message: &str) -> Self {
        Self::failure(400, "BadRequest", message)
    }
}

/// What a request gets: a complete response, or a stream of watch events.
enum Reply {
    Full(Response),
    Watch(WatchStart),
}

/// A watch about to stream.
struct WatchStart {
    /// Events to send before live ones: history after the client's resourceVersion, the
    /// current objects for a watch from "now", or the 410 error.
    backlog: Vec<Arc<str>>,
    /// Live events; `None` ends the stream after the backlog.
    live: Option<LiveWatch>,
    /// `timeoutSeconds`: end the stream cleanly after this long.
    timeout: Option<Duration>,
}

struct LiveWatch {
    messages: mpsc::UnboundedReceiver<WatchMessage>,
    /// Unregisters the watch when the stream ends, however it ends.
    _registration: Registration,
}

struct Registration {
    shared: Arc<Shared>,
    id: u64,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.shared
            .lock()
            .watches
            .retain(|watch| watch.id != self.id);
    }
}

/// The list body, serialized from borrowed items so a list does not copy the store.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ListBody<'a> {
    api_version: &'static str,
    kind: String,
    metadata: ListMeta,
    items: Vec<&'a Value>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ListMeta {
    resource_version: String,
    /// The token of the next page, when `limit` cut the list.
    #[serde(rename = "continue", skip_serializing_if = "Option::is_none")]
    continue_token: Option<String>,
}

/// A request's URL path, resolved.
struct Route {
    resource: &'static ResourceType,
    /// `None` for a cluster-wide collection.
    namespace: Option<String>,
    /// `Some` for one object (`.../services/web`).
    name: Option<String>,
}

impl Route {
    /// `/api/v1[/namespaces/NS]/PLURAL[/NAME]` or the same under `/apis/GROUP/VERSION`.
    fn parse(path: &str) -> Option<Route> {
        let segments: Vec<&str> = path.strip_prefix('/')?.split('/').collect();
        let (api_version, rest) = match segments.as_slice() {
            ["api", "v1", rest @ ..] => ("v1".to_owned(), rest),
            ["apis", group, version, rest @ ..] => (format!("{group}/{version}"), rest),
            _ => return None,
        };
        let (namespace, plural, name) = match rest {
            [plural] => (None, *plural, None),
            ["namespaces", namespace, plural] => (Some(*namespace), *plural, None),
            ["namespaces", namespace, plural, name] => (Some(*namespace), *plural, Some(*name)),
            _ => return None,
        };
        if [namespace, name].iter().flatten().any(|s| s.is_empty()) {
            return None;
        }
        Some(Route {
            resource: ResourceType::by_plural(&api_version, plural)?,
            namespace: namespace.map(str::to_owned),
            name: name.map(str::to_owned),
        })
    }
}

/// Decoded query parameters, in order.
struct Query(Vec<(String, String)>);

impl Query {
    /// Parses `application/x-www-form-urlencoded`, as kube's client writes it.
    fn parse(raw: &str) -> Result<Self, String> {
        raw.split('&')
            .filter(|pair| !pair.is_empty())
            .map(|pair| {
                let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
                Ok((percent_decode(name)?, percent_decode(value)?))
            })
            .collect::<Result<_, String>>()
            .map(Self)
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// A boolean parameter; absent means false.
    fn flag(&self, name: &str) -> Result<bool, String> {
        match self.get(name) {
            None | Some("" | "false" | "0") => Ok(false),
            Some("true" | "1") => Ok(true),
            Some(other) => Err(format!("{name}: not a boolean: {other:?}")),
        }
    }

    fn selector(&self) -> Result<Selector, String> {
        Selector::parse(self.get("labelSelector").unwrap_or_default())
    }

    /// A watch's starting point: `None` for "now" (absent, `""` or `"0"`).
    fn resource_version(&self) -> Result<Option<u64>, String> {
        match self.get("resourceVersion") {
            None | Some("" | "0") => Ok(None),
            Some(text) => text
                .parse()
                .map(Some)
                .map_err(|_| format!("invalid resourceVersion {text:?}")),
        }
    }

    /// `timeoutSeconds`; absent or 0 means no limit.
    fn timeout(&self) -> Result<Option<Duration>, String> {
        match self.get("timeoutSeconds") {
            None => Ok(None),
            Some(text) => match text.parse::<u64>() {
                Ok(0) => Ok(None),
                Ok(seconds) => Ok(Some(Duration::from_secs(seconds))),
                Err(_) => Err(format!("invalid timeoutSeconds {text:?}")),
            },
        }
    }
}

fn percent_decode(text: &str) -> Result<String, String> {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while at < bytes.len() {
        match bytes[at] {
            b'+' => decoded.push(b' '),
            b'%' => {
                let hex = bytes
                    .get(at + 1..at + 3)
                    .filter(|hex| hex.iter().all(u8::is_ascii_hexdigit))
                    .ok_or_else(|| format!("bad percent-encoding in {text:?}"))?;
                let hex = std::str::from_utf8(hex).expect("hex digits are ASCII");
                decoded.push(u8::from_str_radix(hex, 16).expect("two hex digits fit a byte"));
                at += 2;
            }
            byte => decoded.push(byte),
        }
        at += 1;
    }
    String::from_utf8(decoded).map_err(|_| format!("query is not UTF-8 once decoded: {text:?}"))
}

/// Answers one request. Never panics on what a client sent: bad input is a 400 Status.
fn respond(shared: &Arc<Shared>, request: &Request) -> Reply {
    if request.method != "GET" {
        return Reply::Full(write(shared, request));
    }
    if request.path == "/apis" {
        return Reply::Full(Response::ok(&api_groups(&shared.lock())));
    }
    let query = match Query::parse(&request.query) {
        Ok(query) => query,
        Err(message) => return Reply::Full(Response::bad_request(&message)),
    };
    let Some(route) = Route::parse(&request.path).filter(|r| served(&shared.lock(), r)) else {
        let message = "the server could not find the requested resource";
        return Reply::Full(Response::failure(404, "NotFound", message));
    };
    let reply = match (&route.name, query.flag("watch")) {
        (_, Err(message)) => Err(message),
        (Some(name), _) => Ok(Reply::Full(get(shared, &route, name))),
        (None, Ok(false)) => list(shared, &route, &query).map(Reply::Full),
        (None, Ok(true)) => open_watch(shared, &route, &query).map(Reply::Watch),
    };
    reply.unwrap_or_else(|message| Reply::Full(Response::bad_request(&message)))
}

/// Whether `route`'s resource is served: built-in, or of an installed custom group and
/// version.
fn served(state: &State, route: &Route) -> bool {
    let (group, version) = route
        .resource
        .api_version
        .split_once('/')
        .unwrap_or(("", route.resource.api_version));
    !CUSTOM_GROUPS.contains(&group)
        || state
            .installed
            .iter()
            .any(|g| g.name == group && g.versions.iter().any(|v| v == version))
}

/// `GET /apis`: the API groups, as discovery (`APIGroupList`) lists them: the built-in
/// groups the double serves and the installed custom ones.
fn api_groups(state: &State) -> Value {
    let group = |name: &str, versions: &[String]| {
        let entry = |v: &String| json!({"groupVersion": format!("{name}/{v}"), "version": v});
        json!({
            "name": name,
            "versions": versions.iter().map(entry).collect::<Vec<_>>(),
            "preferredVersion": versions.first().map(entry),
        })
    };
    let mut groups: Vec<Value> = ["apps", "discovery.k8s.io", "coordination.k8s.io"]
        .iter()
        .map(|name| group(name, &["v1".to_owned()]))
        .collect();
    groups.extend(state.installed.iter().map(|g| group(&g.name, &g.versions)));
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// A write: POST creates (409 if the object exists), PUT replaces (409 unless the body's
/// resourceVersion is the object's, as optimistic concurrency asks), PATCH merges a JSON
/// merge patch (RFC 7386) into the object, DELETE removes it. What is written goes to the
/// watches as any change does.
fn write(shared: &Shared, request: &Request) -> Response {
    let Some(route) = Route::parse(&request.path) else {
        return Response::failure(
            404,
            "NotFound",
            "the server could not find the requested resource",
        );
    };
    let namespace = route.namespace.clone().unwrap_or_else(|| "default".into());
    let body: Option<Value> = serde_json::from_slice(&request.body).ok();
    let mut state = shared.lock();
    let resource = route.resource;
    let current = |state: &State, name: &str| {
        state
            .objects
            .get(&ObjectKey::new(resource, &namespace, name))
            .cloned()
    };
    match (request.method.as_str(), &route.name, body) {
        ("POST", None, Some(mut object)) => {
            let Some(name) = object.pointer("/metadata/name").and_then(Value::as_str) else {
                return Response::bad_request("metadata.name is required");
            };
            if current(&state, name).is_some() {
                let message = format!("{} \"{name}\" already exists", resource.plural);
                return Response::failure(409, "AlreadyExists", &message);
            }
            let name = name.to_owned();
            object["apiVersion"] = resource.api_version.into();
            object["kind"] = resource.kind.into();
            object["metadata"]["namespace"] = namespace.clone().into();
            state.apply(object);
            let stored = current(&state, &name).expect("just stored");
            Response {
                status: 201,
                body: stored.to_string().into_bytes(),
            }
        }
        ("PUT", Some(name), Some(mut object)) => {
            let Some(existing) = current(&state, name) else {
                let message = format!("{} \"{name}\" not found", resource.plural);
                return Response::failure(404, "NotFound", &message);
            };
            let sent = object.pointer("/metadata/resourceVersion").cloned();
            if sent.is_some() && sent.as_ref() != existing.pointer("/metadata/resourceVersion") {
                let message = format!(
                    "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; please apply your changes to the latest version and try again",
                    resource.plural
                );
                return Response::failure(409, "Conflict", &message);
            }
            object["apiVersion"] = resource.api_version.into();
            object["kind"] = resource.kind.into();
            object["metadata"]["namespace"] = namespace.clone().into();
            state.apply(object);
            Response::ok(current(&state, name).expect("just stored").as_ref())
        }
        ("PATCH", Some(name), Some(patch)) => {
            let Some(existing) = current(&state, name) else {
                let message = format!("{} \"{name}\" not found", resource.plural);
                return Response::failure(404, "NotFound", &message);
            };
            let mut object = (*existing).clone();
            merge_patch(&mut object, &patch);
            state.apply(object);
            Response::ok(current(&state, name).expect("just stored").as_ref())
        }
        ("DELETE", Some(name), _) => {
            let key = ObjectKey::new(resource, &namespace, name);
            match state.objects.get(&key).cloned() {
                Some(object) => {
                    state.delete(resource, &key);
                    Response::ok(object.as_ref())
                }
                None => {
                    let message = format!("{} \"{name}\" not found", resource.plural);
                    Response::failure(404, "NotFound", &message)
                }
            }
        }
        (method, _, _) => Response::failure(
            405,
            "MethodNotAllowed",
            &format!("{method} {}: not served by the double", request.path),
        ),
    }
}

/// RFC 7386: objects merge key by key, `null` removes, anything else replaces.
fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = json!({});
    }
    let Value::Object(target) = target else {
        return;
    };
    for (key, value) in patch {
        if value.is_null() {
            target.remove(key);
        } else {
            merge_patch(target.entry(key.clone()).or_insert(Value::Null), value);
        }
    }
}

/// The objects the double holds of `plural` in `namespace`, for assertions.
impl ApiDouble {
    pub fn object(&self, plural: &str, namespace: &str, name: &str) -> Option<Value> {
        let state = self.inner.shared.lock();
        state
            .objects
            .iter()
            .find(|(key, _)| key.plural == plural && key.namespace == namespace && key.name == name)
            .map(|(_, object)| (**object).clone())
    }
}

fn get(shared: &Shared, route: &Route, name: &str) -> Response {
    let namespace = route.namespace.as_deref().unwrap_or_default();
    let key = ObjectKey::new(route.resource, namespace, name);
    match shared.lock().objects.get(&key) {
        Some(object) => Response::ok(object.as_ref()),
        None => {
            let message = format!("{} \"{name}\" not found", route.resource.plural);
            Response::failure(404, "NotFound", &message)
        }
    }
}

/// A list, in pages of `limit` objects when asked: `continue` carries the key of the last
/// object sent (`namespace/name`), and the next page starts after it. Pages are read from
/// the current objects in key order, as etcd range reads.
fn list(shared: &Shared, route: &Route, query: &Query) -> Result<Response, String> {
    let selector = query.selector()?;
    let limit: usize = match query.get("limit") {
        None | Some("") => 0,
        Some(text) => text
            .parse()
            .map_err(|_| format!("limit: not a number: {text:?}"))?,
    };
    let after = match query.get("continue") {
        None | Some("") => None,
        Some(token) => Some(
            token
                .split_once('/')
                .map(|(ns, name)| ObjectKey::new(route.resource, ns, name))
                .ok_or_else(|| format!("continue: not a token of this double: {token:?}"))?,
        ),
    };
    let state = shared.lock();
    let resource = route.resource;
    let mut items: Vec<&Value> = Vec::new();
    let mut continue_token = None;
    let start = match &after {
        Some(key) => std::ops::Bound::Excluded(key.clone()),
        None => std::ops::Bound::Included(ObjectKey::new(resource, "", "")),
    };
    for (key, object) in state.objects.range((start, std::ops::Bound::Unbounded)) {
        if key.plural != resource.plural {
            break;
        }
        if route
            .namespace
            .as_deref()
            .is_some_and(|ns| key.namespace != ns)
            || !selector.matches(object)
        {
            continue;
        }
        if limit > 0 && items.len() == limit {
            // More follow: the token names the last one sent.
            let last = items.last().map(|o| {
                format!(
                    "{}/{}",
                    namespace_of(o),
                    o.pointer("/metadata/name")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                )
            });
            continue_token = last;
            break;
        }
        items.push(object.as_ref());
    }
    let body = ListBody {
        api_version: resource.api_version,
        kind: format!("{}List", resource.kind),
        metadata: ListMeta {
            resource_version: state.revision.to_string(),
            continue_token,
        },
        items,
    };
    Ok(Response::ok(&body))
}

fn open_watch(shared: &Arc<Shared>, route: &Route, query: &Query) -> Result<WatchStart, String> {
    let filter = WatchFilter {
        resource: route.resource,
        namespace: route.namespace.clone(),
        selector: query.selector()?,
        bookmarks: query.flag("allowWatchBookmarks")?,
    };
    let since = query.resource_version()?;
    let initial_events = query.flag("sendInitialEvents")?;
    let timeout = query.timeout()?;

    // Backlog and registration under one lock: no change is missed or sent twice.
    let mut state = shared.lock();
    let backlog = match since {
        Some(since) if since < state.compacted => {
            return Ok(WatchStart {
                backlog: vec![expired_line()],
                live: None,
                timeout,
            });
        }
        Some(since) if !initial_events => state.changes_after(since, &filter),
        _ => initial_events_of(&state, &filter, initial_events),
    };
    state.next_watch_id += 1;
    let id = state.next_watch_id;
    let (sender, messages) = mpsc::unbounded_channel();
    state.watches.push(Subscriber { id, filter, sender });
    Ok(WatchStart {
        backlog,
        live: Some(LiveWatch {
            messages,
            _registration: Registration {
                shared: shared.clone(),
                id,
            },
        }),
        timeout,
    })
}

/// A watch from "now" starts with an ADDED per current object; a streaming list
/// (`sendInitialEvents=true`) then marks their end with an annotated BOOKMARK.
fn initial_events_of(state: &State, filter: &WatchFilter, streaming_list: bool) -> Vec<Arc<str>> {
    let mut lines: Vec<Arc<str>> = state
        .select(
            filter.resource,
            filter.namespace.as_deref(),
            &filter.selector,
        )
        .map(|object| event_line("ADDED", object))
        .collect();
    if streaming_list {
        lines.push(bookmark_line(filter.resource, state.revision, true));
    }
    lines
}

// ---------------------------------------------------------------------------------------------
// HTTP/1.1
// ---------------------------------------------------------------------------------------------

/// The most a request head may take; hyper's client sends a few hundred bytes.
const MAX_HEAD: usize = 64 * 1024;
/// The most a request body may take; a GET has none.
const MAX_BODY: usize = 1024 * 1024;

/// A request's head, split up.
struct Request {
    method: String,
    path: String,
    /// The raw query string, without the `?`.
    query: String,
    /// Whether the connection stays open after the response.
    keep_alive: bool,
    /// The body (a created or replaced object, a patch).
    body: Vec<u8>,
}

impl Request {
    /// `"GET /path?query"`, query decoded for readable assertions (raw if it does not decode).
    fn log_line(&self) -> String {
        let query = match Query::parse(&self.query) {
            Ok(Query(pairs)) => pairs
                .iter()
                .map(|(name, value)| format!("{name}={value}"))
                .collect::<Vec<_>>()
                .join("&"),
            Err(_) => self.query.clone(),
        };
        let separator = if query.is_empty() { "" } else { "?" };
        format!("{} {}{separator}{query}", self.method, self.path)
    }
}

async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    // Connections live in this set, so aborting this task (the last handle dropped) ends them.
    let mut connections = JoinSet::new();
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(_) => {
                // Out of file descriptors or similar: wait instead of spinning.
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        while connections.try_join_next().is_some() {}
        if shared.lock().outage {
            drop(stream);
            continue;
        }
        connections.spawn(connection(stream, shared.clone()));
    }
}

/// One client connection: requests in turn until the client closes (hyper pools connections).
async fn connection(mut stream: TcpStream, shared: Arc<Shared>) {
    // Watch events are small writes that should leave at once.
    let _ = stream.set_nodelay(true);
    let (mut reader, mut writer) = stream.split();
    let mut buffer = Vec::new();
    loop {
        let request = match read_request(&mut reader, &mut buffer).await {
            Ok(Some(request)) => request,
            Ok(None) => return,
            Err(message) => {
                // The framing is lost, so the connection cannot continue after this.
                let _ = write_response(&mut writer, &Response::bad_request(&message), false).await;
                linger_close(&mut reader, &mut writer).await;
                return;
            }
        };
        let line = request.log_line();
        let delay = {
            let mut state = shared.lock();
            state.requests.push(line.clone());
            if state.outage {
                return;
            }
            state.delay
        };
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
            if shared.lock().outage {
                return;
            }
        }
        let held = |shared: &Shared| {
            let state = shared.lock();
            state
                .hold
                .is_some_and(|plural| line.contains(&format!("/{plural}")))
        };
        let holding = Instant::now();
        while held(&shared) && holding.elapsed() < Duration::from_secs(60) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let keep_alive = match respond(&shared, &request) {
            Reply::Full(response) => {
                write_response(&mut writer, &response, request.keep_alive)
                    .await
                    .is_ok()
                    && request.keep_alive
            }
            Reply::Watch(watch) => {
                let end = stream_watch(&mut reader, &mut writer, watch, request.keep_alive).await;
                end == WatchEnd::Finished && request.keep_alive
            }
        };
        if !keep_alive {
            return;
        }
    }
}

/// Reads one request head (and discards any body). `Ok(None)`: the client closed or the
/// socket failed. `Err`: malformed, answer 400 and close.
async fn read_request(
    reader: &mut (impl AsyncRead + Unpin),
    buffer: &mut Vec<u8>,
) -> Result<Option<Request>, String> {
    let head_end = loop {
        // Only the first MAX_HEAD bytes may hold the head's end, however much has arrived.
        let window = &buffer[..buffer.len().min(MAX_HEAD)];
        if let Some(at) = window.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        if buffer.len() >= MAX_HEAD {
            return Err("request head too large".into());
        }
        if !read_more(reader, buffer).await {
            return Ok(None);
        }
    };
    let head: Vec<u8> = buffer.drain(..head_end).collect();
    let (mut request, body_length) = parse_head(&head)?;
    while buffer.len() < body_length {
        if !read_more(reader, buffer).await {
            return Ok(None);
        }
    }
    request.body = buffer.drain(..body_length).collect();
    Ok(Some(request))
}

/// Appends what the socket has; false at end of stream or on an error.
async fn read_more(reader: &mut (impl AsyncRead + Unpin), buffer: &mut Vec<u8>) -> bool {
    let mut chunk = [0u8; 8192];
    match reader.read(&mut chunk).await {
        Ok(0) | Err(_) => false,
        Ok(n) => {
            buffer.extend_from_slice(&chunk[..n]);
            true
        }
    }
}

/// Closes after an early answer the way hyper does: send FIN, then read what the client is
/// still sending. Closing with unread input would send RST, which can destroy the answer
/// before the client reads it.
async fn linger_close(
    reader: &mut (impl AsyncRead + Unpin),
    writer: &mut (impl AsyncWrite + Unpin),
) {
    let _ = writer.shutdown().await;
    let mut sink = Vec::new();
    let drain = async {
        while read_more(reader, &mut sink).await {
            sink.clear();
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), drain).await;
}

/// The request line and the headers that matter; returns the request and its body length.
fn parse_head(head: &[u8]) -> Result<(Request, usize), String> {
    let text = std::str::from_utf8(head).map_err(|_| "request head is not UTF-8")?;
    let mut lines = text.split("\r\n");
    let request_line = lines.next().unwrap_or_default();
    let parts: Vec<&str> = request_line.split(' ').collect();
    let [method, target, version] = parts.as_slice() else {
        return Err(format!("malformed request line {request_line:?}"));
    };
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(format!("malformed method {method:?}"));
    }
    let mut keep_alive = match *version {
        "HTTP/1.1" => true,
        "HTTP/1.0" => false,
        _ => return Err(format!("unsupported version {version:?}")),
    };
    let target = target
        .strip_prefix('/')
        .ok_or_else(|| format!("request target must be a path: {target:?}"))?;
    let (path, query) = target.split_once('?').unwrap_or((target, ""));

    let mut body_length = 0;
    for line in lines.filter(|line| !line.is_empty()) {
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| format!("malformed header line {line:?}"))?;
        let value = value.trim();
        match name.to_ascii_lowercase().as_str() {
            "content-length" => {
                body_length = value
                    .parse()
                    .ok()
                    .filter(|length| *length <= MAX_BODY)
                    .ok_or_else(|| format!("bad Content-Length {value:?}"))?;
            }
            // kube sends bodies with a length: no chunked request decoder here.
            "transfer-encoding" => return Err("chunked request bodies are not supported".into()),
            "connection" if value.eq_ignore_ascii_case("close") => keep_alive = false,
            "connection" if value.eq_ignore_ascii_case("keep-alive") => keep_alive = true,
            _ => {}
        }
    }
    let request = Request {
        method: (*method).to_owned(),
        path: format!("/{path}"),
        query: query.to_owned(),
        keep_alive,
        body: Vec::new(),
    };
    Ok((request, body_length))
}

fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        _ => "Unknown",
    }
}

fn connection_header(keep_alive: bool) -> &'static str {
    if keep_alive {
        ""
    } else {
        "Connection: close\r\n"
    }
}

async fn write_response(
    writer: &mut (impl AsyncWrite + Unpin),
    response: &Response,
    keep_alive: bool,
) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{}\r\n",
        response.status,
        reason_phrase(response.status),
        response.body.len(),
        connection_header(keep_alive),
    );
    // One write: the head and the body in one segment.
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(&response.body);
    writer.write_all(&bytes).await
}

/// How a watch stream ended.
#[derive(PartialEq, Eq)]
enum WatchEnd {
    /// The body was terminated properly; the connection can take another request.
    Finished,
    /// Cut on purpose, or the client went away: close the connection.
    Dropped,
}

/// Streams a watch as a chunked body, one event per chunk.
async fn stream_watch(
    reader: &mut (impl AsyncRead + Unpin),
    writer: &mut (impl AsyncWrite + Unpin),
    watch: WatchStart,
    keep_alive: bool,
) -> WatchEnd {
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n{}\r\n",
        connection_header(keep_alive)
    );
    if writer.write_all(head.as_bytes()).await.is_err() {
        return WatchEnd::Dropped;
    }
    for line in &watch.backlog {
        if write_chunk(writer, line).await.is_err() {
            return WatchEnd::Dropped;
        }
    }
    if let Some(live) = watch.live {
        let deadline = watch.timeout.map(|timeout| Instant::now() + timeout);
        if follow(reader, writer, live, deadline).await == WatchEnd::Dropped {
            return WatchEnd::Dropped;
        }
    }
    match writer.write_all(b"0\r\n\r\n").await {
        Ok(()) => WatchEnd::Finished,
        Err(_) => WatchEnd::Dropped,
    }
}

/// Sends live events until the double ends the watch, the deadline passes, or the client
/// goes away. `Finished` means the caller should terminate the body.
async fn follow(
    reader: &mut (impl AsyncRead + Unpin),
    writer: &mut (impl AsyncWrite + Unpin),
    mut live: LiveWatch,
    deadline: Option<Instant>,
) -> WatchEnd {
    let mut scratch = [0u8; 1024];
    loop {
        tokio::select! {
            message = live.messages.recv() => match message {
                Some(WatchMessage::Event(line)) => {
                    if write_chunk(writer, &line).await.is_err() {
                        return WatchEnd::Dropped;
                    }
                }
                Some(WatchMessage::Cut) => return WatchEnd::Dropped,
                // Unregistered by the double (expire_history): end cleanly.
                None => return WatchEnd::Finished,
            },
            () = tokio::time::sleep_until(deadline.unwrap_or_else(Instant::now)),
                if deadline.is_some() => return WatchEnd::Finished,
            // Reading is how a client that went away is noticed while no event is due; hyper
            // sends nothing on a connection whose response is still streaming.
            read = reader.read(&mut scratch) => {
                if matches!(read, Ok(0) | Err(_)) {
                    return WatchEnd::Dropped;
                }
            }
        }
    }
}

async fn write_chunk(writer: &mut (impl AsyncWrite + Unpin), data: &str) -> std::io::Result<()> {
    let mut bytes = format!("{:x}\r\n", data.len()).into_bytes();
    bytes.extend_from_slice(data.as_bytes());
    bytes.extend_from_slice(b"\r\n");
    writer.write_all(&bytes).await
}
