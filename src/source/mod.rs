//! The sources: where objects come from. Each turns what it reads into model objects
//! ([`crate::model`]) and sends the controller [`Change`](crate::model::Change)s; none keeps
//! a second copy of the cluster.
//!
//! - [`manifests`]: a folder of manifests (reading, which file defines what, reloading on
//!   file events);
//! - [`kubernetes`]: the API watch (kube-runtime watchers, relists swapped in whole), and
//!   [`backoff`]: how its watches retry;
//! - [`feed`]: objects an embedding operator pushes;
//! - [`lease`]: not a source of objects but of a role: the zone-transfer primary elected
//!   among replicas through a Lease;
//! - [`manifest`]: one object of any kind DNS reads, and [`convert`]: such an object into
//!   the model, held to the same rules whatever the source; [`selector`] checks a label
//!   selector before the API server would refuse it.
//!
//! May import [`crate::model`], [`crate::dns`], [`crate::hash`] and [`crate::metrics`];
//! never the controller, the store or the query path.

pub mod backoff;
pub mod convert;
pub mod feed;
pub mod kubernetes;
pub mod lease;
pub mod manifest;
pub mod manifests;
pub mod multicluster;
pub mod selector;
