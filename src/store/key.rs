//! Keys of the name index: which tree a name belongs to ([`ZoneKind`]), the key's bytes
//! ([`key`]), which names are found through their parent instead of being indexed
//! ([`found_through_parent`]), and how the index stores a key ([`NameKey`]).

use std::hash::Hash;

use crate::dns::name::RelativeName;

/// Which tree of names a key belongs to: every forward zone serves the same records, the
/// reverse zones their own. The first byte of every key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ZoneKind {
    /// The cluster zone(s): `cluster.local` and any extra `--zone`.
    Forward = 0,
    /// `in-addr.arpa`.
    ReverseV4 = 1,
    /// `ip6.arpa`.
    ReverseV6 = 2,
    /// The Multicluster Services zone (`--clusterset-zone`, `clusterset.local`): the
    /// ServiceImports' names, a tree of its own because its records are not the cluster
    /// zones' (KEP-1645's DNS specification).
    ClusterSet = 3,
}

impl ZoneKind {
    /// How many kinds there are: the store keeps a map per kind.
    pub const COUNT: usize = 4;

    /// `in-addr.arpa` or `ip6.arpa`: names are addresses, some answered from pod tables.
    pub fn is_reverse(self) -> bool {
        matches!(self, ZoneKind::ReverseV4 | ZoneKind::ReverseV6)
    }
}

/// One zone this server is authoritative for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Zone {
    /// Lowercase wire form, root label included.
    pub wire: Box<[u8]>,
    pub kind: ZoneKind,
    /// Index among the forward zones (selects per-zone SRV answers); `answers::ANY_ZONE`
    /// for the reverse zones.
    pub index: u8,
    /// Length of the end of `wire` that store keys are relative to: the zone itself for a
    /// forward zone, `in-addr.arpa.` or `ip6.arpa.` for a reverse one (the store keys every
    /// reverse name from there, whichever zone it is served in).
    pub base_len: usize,
}

impl Zone {
    /// The wire name store keys of this zone are relative to.
    pub fn base(&self) -> &[u8] {
        &self.wire[self.wire.len() - self.base_len..]
    }

    /// The zone's apex as a store key's name: its labels above the base.
    pub fn apex_name(&self) -> &[u8] {
        &self.wire[..self.wire.len() - self.base_len]
    }

    /// Whether the name of store key `name` (kind byte left out) of `kind` is in this zone.
    pub fn contains(&self, kind: ZoneKind, name: &[u8]) -> bool {
        let apex = self.apex_name();
        kind == self.kind
            && name.ends_with(apex)
            && (apex.is_empty() || {
                // On a label boundary: the labels before the apex end where it starts.
                let mut at = 0;
                while at < name.len() - apex.len() {
                    at += 1 + usize::from(name[at]);
                }
                at == name.len() - apex.len()
            })
    }
}

/// A store key: the zone kind, then the lowercase relative name in wire form.
pub fn key(kind: ZoneKind, name: &RelativeName) -> Box<[u8]> {
    let mut key = Vec::with_capacity(1 + name.wire().len());
    key.push(kind as u8);
    key.extend_from_slice(name.wire());
    key.into_boxed_slice()
}

/// The store key of an address's reverse name (`in-addr.arpa` or `ip6.arpa`).
pub fn reverse_key(ip: std::net::IpAddr) -> Box<[u8]> {
    let kind = if ip.is_ipv4() {
        ZoneKind::ReverseV4
    } else {
        ZoneKind::ReverseV6
    };
    key(kind, &crate::dns::name::reverse_name(ip))
}

/// The wire name one label above `name` (a key without its zone-kind byte); `None` at the
/// apex or when the first label runs past the end.
pub(crate) fn parent_name(name: &[u8]) -> Option<&[u8]> {
    let (&first_label, rest) = name.split_first()?;
    rest.get(usize::from(first_label)..)
}

/// How many labels an unindexed name has, by zone kind: a pod's name is one label below
/// its Service's (`<pod>.<svc>.<ns>.svc`), and in the clusterset zone an endpoint's name one
/// label below its cluster's (`<host>.<cluster>.<svc>.<ns>.svc`); 0: none (reverse trees).
/// Only names of exactly this many labels are looked up through their parent, so every
/// other name costs one index lookup as before.
pub(crate) const UNINDEXED_LABELS: [usize; ZoneKind::COUNT] = [4, 0, 0, 5];

/// The number of labels of the unindexed names of kind byte `kind` (0: none).
#[inline(always)]
pub(crate) fn unindexed_labels(kind: u8) -> usize {
    UNINDEXED_LABELS
        .get(usize::from(kind))
        .copied()
        .unwrap_or(0)
}

/// Whether `name` has exactly `n` labels (stops counting past `n`).
pub(crate) fn has_labels(name: &[u8], n: usize) -> bool {
    let (mut at, mut count) = (0usize, 0usize);
    while let Some(&len) = name.get(at) {
        count += 1;
        if count > n {
            return false;
        }
        at += 1 + usize::from(len);
    }
    count == n && at == name.len()
}

/// Whether the controller leaves `key` out of the index because its parent, `service` (a
/// Service's name, or an import's cluster's), routes to the snapshot that holds it: `key`
/// is a name exactly one label below `service` with [`UNINDEXED_LABELS`] labels.
pub fn found_through_parent(key: &[u8], service: &[u8]) -> bool {
    match (key.split_first(), service.split_first()) {
        (Some((&kind, name)), Some((&service_kind, service_name))) => {
            let depth = unindexed_labels(kind);
            depth != 0
                && service_kind == kind
                && has_labels(name, depth)
                && parent_name(name) == Some(service_name)
        }
        _ => false,
    }
}

/// Whether `service` (a key) is a name whose children may be found through it.
pub(crate) fn has_unindexed_children(service: &[u8]) -> bool {
    service.split_first().is_some_and(|(&kind, name)| {
        let depth = unindexed_labels(kind);
        depth != 0 && has_labels(name, depth - 1)
    })
}

/// Bytes of a name kept in the index's own slot (a Service's name is `<svc>.<ns>.svc`:
/// 15 bytes for `nginx.demo`), chosen so that a key takes 24 bytes, 8 more than a boxed
/// slice.
pub(crate) const INLINE_NAME: usize = 22;

/// A key of the name index. A short name is stored in the map's slot itself, next to its
/// route: comparing it costs no second memory access. On the query path that access is a
/// cache miss, one of the few a pod's answer costs (bench/uncached.rs), and a slot holds a
/// short name in fewer bytes than a boxed slice and its heap block. Longer names are boxed.
#[derive(Debug, Clone)]
pub(crate) enum NameKey {
    Inline { len: u8, bytes: [u8; INLINE_NAME] },
    Boxed(Box<[u8]>),
}

impl NameKey {
    pub(crate) fn new(name: &[u8]) -> Self {
        match u8::try_from(name.len()) {
            Ok(len) if name.len() <= INLINE_NAME => {
                let mut bytes = [0; INLINE_NAME];
                bytes[..name.len()].copy_from_slice(name);
                Self::Inline { len, bytes }
            }
            _ => Self::Boxed(name.into()),
        }
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        match self {
            Self::Inline { len, bytes } => bytes.get(..usize::from(*len)).unwrap_or_default(),
            Self::Boxed(bytes) => bytes,
        }
    }
}

/// The map finds a key by the bytes of a name: hashing and equality must be the slice's.
impl std::borrow::Borrow<[u8]> for NameKey {
    fn borrow(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl Hash for NameKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_bytes().hash(state);
    }
}

impl PartialEq for NameKey {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for NameKey {}

// What `INLINE_NAME` is chosen for: a key no larger than a boxed slice and a tag.
const _: () = assert!(std::mem::size_of::<NameKey>() == 24);
