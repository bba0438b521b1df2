//! One shared copy of the strings that many objects repeat.
//!
//! Every Service, EndpointSlice and StatefulSet carries its namespace, and a Service's name
//! comes back in its slices (`kubernetes.io/service-name`) and StatefulSets
//! (`spec.serviceName`). Converted one object at a time, each would allocate its own copy:
//! about seven 32-byte blocks per Service where one or two are enough. Sources convert
//! through [`intern`], so equal strings share one `Arc<str>`.

use std::collections::HashSet;
use std::sync::{Arc, LazyLock, Mutex, PoisonError};

/// Interned strings. A string that only the set still holds is dropped at the next prune.
struct Strings {
    set: HashSet<Arc<str>>,
    /// Prune when the set grows past this: twice its size after the last prune, so that
    /// pruning costs O(1) per interned string over time.
    prune_at: usize,
}

/// Below this size the set is never pruned: a few hundred short strings are not worth a
/// scan.
const MIN_PRUNE_AT: usize = 1024;

static STRINGS: LazyLock<Mutex<Strings>> = LazyLock::new(|| {
    Mutex::new(Strings {
        set: HashSet::new(),
        prune_at: MIN_PRUNE_AT,
    })
});

/// The shared copy of `text`, made if no object holds one.
pub fn intern(text: &str) -> Arc<str> {
    // A panic while holding the lock cannot leave the set inconsistent (every operation on
    // it is one `HashSet` call), so a poisoned lock is used as is.
    let mut strings = STRINGS.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(shared) = strings.set.get(text) {
        return Arc::clone(shared);
    }
    if strings.set.len() >= strings.prune_at {
        strings.set.retain(|s| Arc::strong_count(s) > 1);
        strings.prune_at = (strings.set.len() * 2).max(MIN_PRUNE_AT);
    }
    let shared: Arc<str> = text.into();
    strings.set.insert(Arc::clone(&shared));
    shared
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_strings_share_one_copy() {
        let a = intern("intern-test-namespace");
        let b = intern(&String::from("intern-test-namespace"));
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(&*a, "intern-test-namespace");
        assert!(!Arc::ptr_eq(&a, &intern("intern-test-other")));
    }

    #[test]
    fn strings_no_object_holds_are_dropped_when_the_set_grows() {
        let kept = intern("intern-test-kept");
        // Interned and dropped at once: only the set holds these.
        for i in 0..3 * MIN_PRUNE_AT {
            intern(&format!("intern-test-dropped-{i}"));
        }
        let strings = STRINGS.lock().unwrap_or_else(PoisonError::into_inner);
        assert!(strings.set.len() < 2 * MIN_PRUNE_AT + 64);
        assert!(strings.set.contains("intern-test-kept"));
        drop(strings);
        assert!(Arc::ptr_eq(&kept, &intern("intern-test-kept")));
    }
}
