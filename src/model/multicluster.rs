//! What DNS keeps of the Multi-Cluster Services API (KEP-1645, kubernetes-sigs/mcs-api): a
//! `ServiceImport` (a Service exported from the clusters of a clusterset, as this cluster
//! imports it) and the `cluster.clusterset.k8s.io` ClusterProperty (KEP-2149: this
//! cluster's id). The imports' endpoints are EndpointSlices ([`super::SliceOf::Import`]).

use std::net::IpAddr;
use std::sync::Arc;

use super::{ObjectKey, Port};

/// A ServiceImport: what `<svc>.<ns>.svc.<clusterset zone>` resolves to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceImport {
    pub key: ObjectKey,
    pub kind: ImportKind,
    /// Its ports (`spec.ports`, or `ports` from v1alpha2): the SRV records of a ClusterSetIP
    /// import. A headless import's SRV records come from its slices' ports, as a headless
    /// Service's do.
    pub ports: Vec<Port>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImportKind {
    /// `type: ClusterSetIP`: one or two (dual-stack) clusterset IPs.
    ClusterSetIp(Vec<IpAddr>),
    /// `type: Headless`: the name resolves to the ready endpoints of every cluster.
    Headless,
}

/// The ClusterProperty whose value is this cluster's id in the clusterset (KEP-2149).
pub const CLUSTER_ID_PROPERTY: &str = "cluster.clusterset.k8s.io";

/// A ClusterProperty DNS reads: [`CLUSTER_ID_PROPERTY`], a DNS label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterProperty {
    /// Cluster-scoped: the namespace is the model's default for objects without one.
    pub key: ObjectKey,
    pub value: Arc<str>,
}
