//! The few fields of each Kubernetes object that DNS needs.
//!
//! Every source (the manifests folder, an embedding operator's feed, the API watch)
//! converts its objects into these structs on arrival and drops the rest, as CoreDNS's
//! `plugin/kubernetes/object` package does. Keep them small: a field added here is kept in
//! memory once per object for the life of the process, so add one only when a record needs it.

use std::net::IpAddr;
use std::sync::Arc;

/// `namespace/name` of a namespaced object. Ordered so that every map keyed by it iterates
/// the same way on every replica.
///
/// The controller keeps a key in several maps (by Service, by slice, by StatefulSet, what
/// it published) and the manifests folder keeps its own copies: the strings are shared, so
/// a copy costs two pointers, not two allocations.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectKey {
    /// Namespace; `default` when the manifest leaves it out, as `kubectl apply` does.
    pub namespace: Arc<str>,
    /// `metadata.name`.
    pub name: Arc<str>,
}

impl ObjectKey {
    pub fn new(namespace: impl AsRef<str>, name: impl AsRef<str>) -> Self {
        Self {
            namespace: namespace.as_ref().into(),
            name: name.as_ref().into(),
        }
    }
}

impl std::fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// A Service: what its name resolves to and which ports get SRV records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    pub key: ObjectKey,
    pub kind: ServiceKind,
    /// Service ports; SRV records of ClusterIP Services come from these.
    pub ports: Vec<Port>,
    /// `spec.publishNotReadyAddresses`: not-ready endpoints are published too.
    pub publish_not_ready: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceKind {
    /// `clusterIP: None`: the name resolves to the endpoints themselves.
    Headless,
    /// One or two (dual-stack) virtual IPs.
    ClusterIp(Vec<IpAddr>),
    /// `type: ExternalName`: a CNAME to this lowercase, dot-terminated name.
    ExternalName(String),
}

/// A named or unnamed port of a Service or of an EndpointSlice.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Port {
    /// Empty for an unnamed port, which gets no SRV record.
    pub name: String,
    pub protocol: Protocol,
    pub port: u16,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
}

impl Protocol {
    /// The SRV label without its underscore (`tcp` for `_tcp`).
    pub fn srv_label(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Sctp => "sctp",
        }
    }
}

/// One EndpointSlice (or one subset of a legacy Endpoints object): a group of addresses that
/// share a port list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointSlice {
    /// The slice's own name; slices of one Service are merged in name order.
    pub key: ObjectKey,
    /// The Service named by the `kubernetes.io/service-name` label.
    pub service: ObjectKey,
    /// Shared, not copied, when the object is cloned: the manifests folder keeps each
    /// file's last good objects while the controller holds the same ones, and endpoints
    /// are most of a cluster's model.
    pub endpoints: Arc<[Endpoint]>,
    pub ports: Vec<Port>,
}

/// One address of an endpoint, with the conditions that decide whether DNS publishes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub ip: IpAddr,
    /// `hostname` (StatefulSet pods: the pod name, e.g. `web-0`).
    pub hostname: Option<String>,
    /// `conditions.ready`; an absent condition means ready, as the API documents.
    pub ready: bool,
    /// `conditions.terminating`: the pod is going away. A pod that is neither ready nor
    /// terminating is starting: `--publish-unready-pod-names` names it already.
    pub terminating: bool,
}

/// A StatefulSet: which Service governs its pod names and which ordinals it owns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatefulSet {
    pub key: ObjectKey,
    /// `spec.serviceName`: the headless Service its pods are named under.
    pub service_name: String,
    pub replicas: u32,
    /// `spec.ordinals.start`.
    pub ordinal_start: u32,
}

/// Any object a source can hand to the controller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Object {
    Service(Service),
    EndpointSlice(EndpointSlice),
    /// A legacy `v1/Endpoints`, one slice per subset. Used only for a Service that has no
    /// EndpointSlice.
    Endpoints {
        service: ObjectKey,
        subsets: Vec<EndpointSlice>,
    },
    StatefulSet(StatefulSet),
}

/// The kinds a source can deliver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    Service,
    EndpointSlice,
    Endpoints,
    StatefulSet,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Service => "Service",
            Kind::EndpointSlice => "EndpointSlice",
            Kind::Endpoints => "Endpoints",
            Kind::StatefulSet => "StatefulSet",
        }
    }
}

impl Object {
    pub fn kind(&self) -> Kind {
        match self {
            Object::Service(_) => Kind::Service,
            Object::EndpointSlice(_) => Kind::EndpointSlice,
            Object::Endpoints { .. } => Kind::Endpoints,
            Object::StatefulSet(_) => Kind::StatefulSet,
        }
    }

    pub fn key(&self) -> &ObjectKey {
        match self {
            Object::Service(s) => &s.key,
            Object::EndpointSlice(s) => &s.key,
            Object::Endpoints { service, .. } => service,
            Object::StatefulSet(s) => &s.key,
        }
    }
}
