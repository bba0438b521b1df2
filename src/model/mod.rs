//! The few fields of each Kubernetes object that DNS needs.
//!
//! Every source (the manifests folder, an embedding operator's feed, the API watch)
//! converts its objects into these structs on arrival and drops the rest, as CoreDNS's
//! `plugin/kubernetes/object` package does. Keep them small: a field added here is kept in
//! memory once per object for the life of the process, so add one only when a record needs it.
//!
//! The stage below the sources and the controller: [`change`] is what a source sends the
//! controller, [`intern`] shares the strings objects repeat. It imports only [`crate::dns`]
//! and [`crate::hash`]; no Kubernetes client or API type appears here.

pub mod change;
pub mod intern;
pub mod multicluster;
pub mod persist;

pub use change::{Change, Timed};
pub use multicluster::{CLUSTER_ID_PROPERTY, ClusterProperty, ImportKind, ServiceImport};

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
    pub name: Arc<str>,
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
    /// The Service named by the `kubernetes.io/service-name` label, or for an imported
    /// slice the ServiceImport named by `multicluster.kubernetes.io/service-name`.
    pub service: ObjectKey,
    /// Whether `service` is a Service or a ServiceImport.
    pub of: SliceOf,
    /// Packed in one block, shared rather than copied when the object is cloned:
    /// endpoints are most of a cluster's model.
    pub endpoints: EndpointList,
    pub ports: Vec<Port>,
}

/// What an EndpointSlice's endpoints serve.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum SliceOf {
    /// A Service of this cluster (`kubernetes.io/service-name`).
    #[default]
    Service,
    /// A ServiceImport (`multicluster.kubernetes.io/service-name`): the endpoints cluster
    /// `cluster` exports (`multicluster.kubernetes.io/source-cluster`, a DNS label); `None`
    /// when the label is absent: this cluster's own, named by its cluster id.
    Import { cluster: Option<Arc<str>> },
}

/// One address of an endpoint, with the conditions that decide whether DNS publishes it.
/// What sources build; an [`EndpointList`] keeps it packed.
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

/// The endpoints of a slice in one shared block, each `[flags][address][hostname length]
/// [hostname]`: an address takes 4 or 16 bytes and a hostname its length, where an
/// [`Endpoint`] each (48 bytes, and an allocation for its hostname) would be most of the
/// model's memory. Built from `Endpoint`s (`collect`, `From<Vec<Endpoint>>`), read back as
/// [`EndpointRef`]s.
#[derive(Clone, PartialEq, Eq)]
pub struct EndpointList {
    bytes: Arc<[u8]>,
    len: u32,
}

/// One endpoint of an [`EndpointList`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EndpointRef<'a> {
    pub ip: IpAddr,
    pub hostname: Option<&'a str>,
    pub ready: bool,
    pub terminating: bool,
}

const READY: u8 = 1;
const TERMINATING: u8 = 2;
const IPV6: u8 = 4;
const HOSTNAME: u8 = 8;
/// A hostname length byte of this value is followed by the length as a `u32`: hostnames
/// from the API are labels (63 octets at most), but the model does not rely on it.
const LONG_HOSTNAME: u8 = u8::MAX;

impl EndpointList {
    pub fn len(&self) -> usize {
        self.len as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn iter(&self) -> EndpointIter<'_> {
        EndpointIter { rest: &self.bytes }
    }
}

impl Default for EndpointList {
    fn default() -> Self {
        Self {
            bytes: Arc::new([]),
            len: 0,
        }
    }
}

impl FromIterator<Endpoint> for EndpointList {
    fn from_iter<I: IntoIterator<Item = Endpoint>>(endpoints: I) -> Self {
        let mut bytes = Vec::new();
        let mut len = 0u32;
        for ep in endpoints {
            let mut flags = 0;
            flags |= if ep.ready { READY } else { 0 };
            flags |= if ep.terminating { TERMINATING } else { 0 };
            flags |= if ep.ip.is_ipv6() { IPV6 } else { 0 };
            flags |= if ep.hostname.is_some() { HOSTNAME } else { 0 };
            bytes.push(flags);
            match ep.ip {
                IpAddr::V4(ip) => bytes.extend_from_slice(&ip.octets()),
                IpAddr::V6(ip) => bytes.extend_from_slice(&ip.octets()),
            }
            if let Some(hostname) = &ep.hostname {
                match u8::try_from(hostname.len())
                    .ok()
                    .filter(|&n| n < LONG_HOSTNAME)
                {
                    Some(n) => bytes.push(n),
                    None => {
                        bytes.push(LONG_HOSTNAME);
                        // A `String` longer than 4 GiB cannot come from an API object.
                        let n = u32::try_from(hostname.len()).unwrap_or(u32::MAX);
                        bytes.extend_from_slice(&n.to_be_bytes());
                    }
                }
                bytes.extend_from_slice(hostname.as_bytes());
            }
            len += 1;
        }
        Self {
            bytes: bytes.into(),
            len,
        }
    }
}

impl From<Vec<Endpoint>> for EndpointList {
    fn from(endpoints: Vec<Endpoint>) -> Self {
        endpoints.into_iter().collect()
    }
}

impl std::fmt::Debug for EndpointList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl<'a> IntoIterator for &'a EndpointList {
    type Item = EndpointRef<'a>;
    type IntoIter = EndpointIter<'a>;

    fn into_iter(self) -> EndpointIter<'a> {
        self.iter()
    }
}

/// Reads an [`EndpointList`] back.
pub struct EndpointIter<'a> {
    rest: &'a [u8],
}

impl<'a> EndpointIter<'a> {
    fn read_bytes(&mut self, n: usize) -> Option<&'a [u8]> {
        let (taken, rest) = self.rest.split_at_checked(n)?;
        self.rest = rest;
        Some(taken)
    }

    fn read_array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.read_bytes(N)?.try_into().ok()
    }
}

impl<'a> Iterator for EndpointIter<'a> {
    type Item = EndpointRef<'a>;

    /// The list is only built by `from_iter`, so it always reads back whole; a short read
    /// ends the list rather than panicking.
    fn next(&mut self) -> Option<EndpointRef<'a>> {
        let [flags] = self.read_array()?;
        let ip = if flags & IPV6 != 0 {
            IpAddr::from(self.read_array::<16>()?)
        } else {
            IpAddr::from(self.read_array::<4>()?)
        };
        let hostname = if flags & HOSTNAME != 0 {
            let [n] = self.read_array()?;
            let n = if n == LONG_HOSTNAME {
                u32::from_be_bytes(self.read_array()?) as usize
            } else {
                usize::from(n)
            };
            Some(std::str::from_utf8(self.read_bytes(n)?).ok()?)
        } else {
            None
        };
        Some(EndpointRef {
            ip,
            hostname,
            ready: flags & READY != 0,
            terminating: flags & TERMINATING != 0,
        })
    }
}

/// A StatefulSet: which Service governs its pod names and which ordinals it owns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatefulSet {
    pub key: ObjectKey,
    /// `spec.serviceName`: the headless Service its pods are named under.
    pub service_name: Arc<str>,
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
    /// A Multi-Cluster Services import (`--clusterset-zone`).
    ServiceImport(ServiceImport),
    /// This cluster's id in its clusterset.
    ClusterProperty(ClusterProperty),
}

/// The kinds a source can deliver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    Service,
    EndpointSlice,
    Endpoints,
    StatefulSet,
    ServiceImport,
    ClusterProperty,
}

impl Kind {
    /// Every kind, in declaration order: `kind as usize` is its index here.
    pub const ALL: [Kind; 6] = [
        Kind::Service,
        Kind::EndpointSlice,
        Kind::Endpoints,
        Kind::StatefulSet,
        Kind::ServiceImport,
        Kind::ClusterProperty,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Service => "Service",
            Kind::EndpointSlice => "EndpointSlice",
            Kind::Endpoints => "Endpoints",
            Kind::StatefulSet => "StatefulSet",
            Kind::ServiceImport => "ServiceImport",
            Kind::ClusterProperty => "ClusterProperty",
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
            Object::ServiceImport(_) => Kind::ServiceImport,
            Object::ClusterProperty(_) => Kind::ClusterProperty,
        }
    }

    pub fn key(&self) -> &ObjectKey {
        match self {
            Object::Service(s) => &s.key,
            Object::EndpointSlice(s) => &s.key,
            Object::Endpoints { service, .. } => service,
            Object::StatefulSet(s) => &s.key,
            Object::ServiceImport(s) => &s.key,
            Object::ClusterProperty(p) => &p.key,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_is_at_its_own_index() {
        for (index, kind) in Kind::ALL.into_iter().enumerate() {
            assert_eq!(kind as usize, index, "{}", kind.as_str());
        }
    }

    #[test]
    fn endpoint_lists_read_back_what_they_were_built_from() {
        let long = "h".repeat(300);
        let built = vec![
            Endpoint {
                ip: "10.0.0.1".parse().unwrap(),
                hostname: Some("web-0".into()),
                ready: true,
                terminating: false,
            },
            Endpoint {
                ip: "fd00::1".parse().unwrap(),
                hostname: None,
                ready: false,
                terminating: true,
            },
            Endpoint {
                ip: "10.0.0.3".parse().unwrap(),
                hostname: Some(long.clone()),
                ready: false,
                terminating: false,
            },
            Endpoint {
                ip: "10.0.0.4".parse().unwrap(),
                hostname: Some(String::new()),
                ready: true,
                terminating: true,
            },
        ];
        let list = EndpointList::from(built.clone());
        assert_eq!(list.len(), 4);
        let read: Vec<Endpoint> = list
            .iter()
            .map(|e| Endpoint {
                ip: e.ip,
                hostname: e.hostname.map(str::to_owned),
                ready: e.ready,
                terminating: e.terminating,
            })
            .collect();
        assert_eq!(read, built);
        assert_eq!(
            list.iter().take(1).count(),
            1,
            "the iterator's own methods are not shadowed"
        );
        assert_eq!(list.clone(), list);
        assert_ne!(list, EndpointList::from(built[..3].to_vec()));
        assert!(EndpointList::default().is_empty());
        assert_eq!(EndpointList::default().iter().count(), 0);
    }
}
