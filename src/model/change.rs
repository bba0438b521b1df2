//! What a source tells the controller: a [`Change`] to the objects it knows, and when it
//! arrived ([`Timed`]). Every source (the manifests folder, the embedding API's feed, the
//! Kubernetes watch) speaks only this, so the controller does not know where objects come
//! from and the sources do not know the controller.

use std::time::Instant;

use crate::model::{Kind, Object, ObjectKey};

/// A change from a source.
#[derive(Debug, Clone)]
pub enum Change {
    /// The complete set of objects (a manifests load): whatever is not in it is gone. Marks
    /// the store ready.
    ReplaceAll(Vec<Object>),
    /// Every object of one kind (in one namespace, or in all): a Kubernetes list or relist,
    /// swapped in whole so that no name disappears in between. Objects of the kind (in the
    /// namespace) that are not in it are gone.
    ReplaceKind {
        kind: Kind,
        namespace: Option<String>,
        objects: Vec<Object>,
    },
    /// An object was created or updated.
    Apply(Object),
    /// An object was deleted.
    Delete(Kind, ObjectKey),
    /// The source has delivered its initial state: start answering.
    Synced,
    /// The zones' serial must move above this one, if it is not already (a new zone-transfer
    /// primary continuing from the last one's serial).
    RaiseSerial(u32),
    /// Changes taken together, in order, before anything is republished: each Service they
    /// touch is published once, with all of them (a manifest edit that moves an object from
    /// one file to another deletes and applies it, and its names never go away in between).
    /// Services are swapped one after another, so a query may see one Service of a batch
    /// updated and another not yet.
    Batch(Vec<Change>),
}

/// A change and when it reached the server (a watch event, a file event): the start of its
/// programming latency.
#[derive(Debug, Clone)]
pub struct Timed {
    pub change: Change,
    pub received: Instant,
}

impl From<Change> for Timed {
    fn from(change: Change) -> Self {
        Self {
            change,
            received: Instant::now(),
        }
    }
}
