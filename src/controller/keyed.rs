//! Objects looked up by the key they carry.
//!
//! The controller keeps every Service, EndpointSlice and StatefulSet it is told about. A map
//! from key to object stores each key twice, once as the map's key and once inside the
//! object: 32 bytes per object, a few per Service, so a per-endpoint cost at a few pods per
//! Service. A [`KeyedSet`] stores each object once and finds it by the key inside it.

use std::borrow::Borrow;
use std::collections::HashSet;
use std::hash::{Hash, Hasher};

use crate::hash::FastHash;
use crate::model::{EndpointSlice, ObjectKey, Service, ServiceImport, StatefulSet};

/// An object that carries its own key.
pub trait Keyed {
    fn key(&self) -> &ObjectKey;
}

impl Keyed for Service {
    fn key(&self) -> &ObjectKey {
        &self.key
    }
}

impl Keyed for EndpointSlice {
    fn key(&self) -> &ObjectKey {
        &self.key
    }
}

impl Keyed for StatefulSet {
    fn key(&self) -> &ObjectKey {
        &self.key
    }
}

impl Keyed for ServiceImport {
    fn key(&self) -> &ObjectKey {
        &self.key
    }
}

/// An object hashed and compared by its key alone, so that a set of them is looked up by
/// key. `Borrow` requires that the key hashes and compares as the object does, which it
/// does: both are the key's.
#[derive(Debug)]
struct ByKey<T>(T);

impl<T: Keyed> Keyed for Box<T> {
    fn key(&self) -> &ObjectKey {
        T::key(self)
    }
}

impl<T: Keyed> Borrow<ObjectKey> for ByKey<T> {
    fn borrow(&self) -> &ObjectKey {
        self.0.key()
    }
}

impl<T: Keyed> Hash for ByKey<T> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.key().hash(state);
    }
}

impl<T: Keyed> PartialEq for ByKey<T> {
    fn eq(&self, other: &Self) -> bool {
        self.0.key() == other.0.key()
    }
}

impl<T: Keyed> Eq for ByKey<T> {}

/// Objects by their own key, each key stored once.
///
/// Boxed: a hash table has a power-of-two capacity at most 7/8 full, so up to half of its
/// slots are empty, and a slot holding the object itself (56 to 112 bytes) would cost that
/// much empty. With 8,896 Services, 16,384 slots held 42 bytes per endpoint; boxed, 27.
#[derive(Debug)]
pub struct KeyedSet<T>(HashSet<ByKey<Box<T>>, FastHash>);

impl<T> Default for KeyedSet<T> {
    fn default() -> Self {
        Self(HashSet::default())
    }
}

impl<T: Keyed> KeyedSet<T> {
    pub fn get(&self, key: &ObjectKey) -> Option<&T> {
        self.0.get(key).map(|object| &*object.0)
    }

    /// Adds `object`, replacing the one with its key, which is returned.
    pub fn insert(&mut self, object: T) -> Option<T> {
        self.0.replace(ByKey(Box::new(object))).map(|old| *old.0)
    }

    pub fn remove(&mut self, key: &ObjectKey) -> Option<T> {
        self.0.take(key).map(|old| *old.0)
    }

    pub fn keys(&self) -> impl Iterator<Item = &ObjectKey> {
        self.0.iter().map(|object| object.0.key())
    }

    /// The objects, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.0.iter().map(|object| &*object.0)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sts(name: &str, replicas: u32) -> StatefulSet {
        StatefulSet {
            key: ObjectKey::new("demo", name),
            service_name: "nginx".into(),
            replicas,
            ordinal_start: 0,
        }
    }

    #[test]
    fn objects_are_found_replaced_and_removed_by_their_key() {
        let mut set = KeyedSet::default();
        assert!(set.insert(sts("web", 3)).is_none());
        assert!(set.insert(sts("db", 1)).is_none());
        let web = ObjectKey::new("demo", "web");
        assert_eq!(set.get(&web).map(|s| s.replicas), Some(3));
        // Same key: replaced, and the old object handed back.
        assert_eq!(set.insert(sts("web", 5)).map(|s| s.replicas), Some(3));
        assert_eq!(set.get(&web).map(|s| s.replicas), Some(5));
        assert_eq!(set.len(), 2);
        // Another namespace is another key.
        assert!(set.get(&ObjectKey::new("other", "web")).is_none());
        let mut keys: Vec<String> = set.keys().map(|k| k.to_string()).collect();
        keys.sort();
        assert_eq!(keys, ["demo/db", "demo/web"]);
        assert_eq!(set.remove(&web).map(|s| s.replicas), Some(5));
        assert!(set.get(&web).is_none() && set.remove(&web).is_none());
        assert_eq!(set.len(), 1);
    }
}
