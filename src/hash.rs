//! The hasher of the maps that are read per query or per object: foldhash, several times
//! faster than the default SipHash on short keys and still seeded per process (hashbrown's
//! own default). A leaf: every stage may use it, it uses nothing of the crate.

/// The `BuildHasher` of the name index, the pod tables, the controller's object sets and
/// the manifests folder's index.
pub type FastHash = foldhash::fast::RandomState;
