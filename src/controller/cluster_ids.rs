//! Cluster ids, one allocation each: every imported slice of a cluster, and every slot of an
//! import from it, holds the same `Arc<str>` (a clusterset has a handful of ids and
//! thousands of slices: a copy each would cost more than a remote endpoint's records).

use std::collections::HashSet;
use std::sync::Arc;

/// The cluster ids in use. An id nothing else holds any more is dropped when the set has
/// doubled since it was last swept, so ids that come and go do not pile up.
#[derive(Debug, Default)]
pub(super) struct ClusterIds {
    ids: HashSet<Arc<str>>,
    swept_at: usize,
}

/// Below this many ids the set is never swept.
const SWEEP_FROM: usize = 16;

impl ClusterIds {
    /// The shared allocation of `id`.
    pub(super) fn intern(&mut self, id: &str) -> Arc<str> {
        if let Some(shared) = self.ids.get(id) {
            return shared.clone();
        }
        if self.ids.len() >= SWEEP_FROM.max(2 * self.swept_at) {
            self.ids.retain(|id| Arc::strong_count(id) > 1);
            self.swept_at = self.ids.len();
        }
        let shared: Arc<str> = Arc::from(id);
        self.ids.insert(shared.clone());
        shared
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_allocation_per_id_and_unused_ids_are_swept() {
        let mut ids = ClusterIds::default();
        let west = ids.intern("west");
        assert!(Arc::ptr_eq(&west, &ids.intern("west")));
        assert!(!Arc::ptr_eq(&west, &ids.intern("east")));
        // Ids nobody holds: the set sweeps them once it has grown.
        for n in 0..100 {
            ids.intern(&format!("c{n}"));
        }
        assert!(ids.ids.len() < 100, "swept: {}", ids.ids.len());
        assert!(Arc::ptr_eq(&west, &ids.intern("west")), "a held id stays");
    }
}
