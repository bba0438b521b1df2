//! Whose records a store slot holds: a Service, a ServiceImport, or one cluster of an import.
//! The controller keys what it published, and the claims on addresses, by it.

use std::sync::Arc;

use crate::controller::records;
use crate::dns::name::{NameError, RelativeName};
use crate::model::ObjectKey;
use crate::store::ZoneKind;

/// Whose records a store slot holds: a Service's, in the cluster zones, or a
/// ServiceImport's, in the clusterset zone. The two may share a key (an exported Service
/// and its import usually do).
///
/// An import's names below one cluster's (`<host>.<cluster>.<svc>.<ns>.svc`) have an owner
/// of their own, [`Owner::ImportCluster`], whose slot holds that cluster's endpoints in a pod
/// table, as a Service's slot holds its pods: found through their parent, their reverse
/// names through the address map, no index entry each. The first cluster's slot holds the
/// import's own names too; [`Owner::Import`] holds them only when no cluster has a name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(super) enum Owner {
    Service(ObjectKey),
    Import(ObjectKey),
    ImportCluster(ObjectKey, Arc<str>),
}

impl Owner {
    pub(super) fn key(&self) -> &ObjectKey {
        match self {
            Owner::Service(key) | Owner::Import(key) | Owner::ImportCluster(key, _) => key,
        }
    }

    /// The tree its names are in.
    pub(super) fn zone_kind(&self) -> ZoneKind {
        match self {
            Owner::Service(_) => ZoneKind::Forward,
            Owner::Import(_) | Owner::ImportCluster(..) => ZoneKind::ClusterSet,
        }
    }

    /// The name every name of it is at or below: `<svc>.<ns>.svc`, or for a cluster of an
    /// import `<cluster>.<svc>.<ns>.svc`.
    pub(super) fn base_name(&self) -> Result<RelativeName, NameError> {
        let service = records::service_name(self.key())?;
        match self {
            Owner::ImportCluster(_, cluster) => service.child(cluster),
            _ => Ok(service),
        }
    }
}

impl std::fmt::Display for Owner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Owner::Service(key) => write!(f, "{key}"),
            Owner::Import(key) => write!(f, "ServiceImport {key}"),
            Owner::ImportCluster(key, cluster) => {
                write!(f, "ServiceImport {key} (cluster {cluster})")
            }
        }
    }
}
