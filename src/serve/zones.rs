//! The zones this server is authoritative for, and which one a question is in.
//!
//! Every forward zone (`--zone`, `cluster.local` by default) serves the same records, so a
//! stub domain such as `sts.example.internal` answers like `cluster.local`. The reverse
//! zones answer PTR queries for Service and endpoint addresses: `in-addr.arpa` and
//! `ip6.arpa` whole, or, with `--reverse-zone`, only the zones that cover the given ranges
//! (`10.in-addr.arpa` for `10.0.0.0/8`), each with its own SOA apex, so that a resolver
//! with a stub zone for the range accepts the negative answers' SOA as in bailiwick.

use crate::dns::cidr::Cidr;
use crate::dns::name::{RelativeName, zone_wire};
use crate::dns::wire::QuestionName;
use crate::store::answers::ANY_ZONE;
use crate::store::{Zone, ZoneKind};

/// Where a question's name falls: its zone, where the zone starts in the name, and how much
/// of the name is the store key's.
#[derive(Debug, Clone, Copy)]
pub struct ZoneMatch<'a> {
    pub zone: &'a Zone,
    /// Offset of the zone's first label within the name.
    pub start: usize,
    /// Length of the name's part before the zone kind's base: the store key's name.
    pub key_len: usize,
}

/// The zones, longest first so that the most specific zone matches.
#[derive(Debug, Clone)]
pub struct ZoneTable {
    zones: Vec<Zone>,
    /// The first forward zone: reverse answers name their targets in it.
    primary: Box<[u8]>,
}

/// The base of each reverse tree, relative to the root.
const REVERSE_BASES: [(&[&str], ZoneKind); 2] = [
    (&["in-addr", "arpa"], ZoneKind::ReverseV4),
    (&["ip6", "arpa"], ZoneKind::ReverseV6),
];

/// The reverse zones `ranges` ask for (relative to their tree's base, with the tree's kind),
/// or, with no range, the two trees whole. Duplicates are served once.
pub fn reverse_zones(ranges: &[Cidr]) -> Vec<(ZoneKind, RelativeName)> {
    if ranges.is_empty() {
        return REVERSE_BASES
            .iter()
            .map(|(_, kind)| (*kind, RelativeName::apex()))
            .collect();
    }
    let mut zones: Vec<(ZoneKind, RelativeName)> = Vec::new();
    for range in ranges {
        let kind = if range.network().is_ipv4() {
            ZoneKind::ReverseV4
        } else {
            ZoneKind::ReverseV6
        };
        for name in range.reverse_zones() {
            if !zones.iter().any(|(k, n)| *k == kind && *n == name) {
                zones.push((kind, name));
            }
        }
    }
    zones
}

impl ZoneTable {
    /// `forward` must hold at least one zone; the first is the primary. `reverse` are the
    /// reverse zones, as [`reverse_zones`] gives them.
    pub fn new(forward: &[RelativeName], reverse: &[(ZoneKind, RelativeName)]) -> Self {
        let mut zones: Vec<Zone> = forward
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let wire = zone_wire(name);
                Zone {
                    base_len: wire.len(),
                    wire,
                    kind: ZoneKind::Forward,
                    index: u8::try_from(i).unwrap_or(ANY_ZONE - 1),
                }
            })
            .collect();
        for (kind, name) in reverse {
            let Some((labels, _)) = REVERSE_BASES.iter().find(|(_, k)| k == kind) else {
                continue;
            };
            let base = zone_wire(&RelativeName::literal(labels));
            zones.push(Zone {
                wire: [name.wire(), &base].concat().into_boxed_slice(),
                kind: *kind,
                index: ANY_ZONE,
                base_len: base.len(),
            });
        }
        let primary = forward
            .first()
            .map(zone_wire)
            .unwrap_or_else(|| Box::new([0]));
        zones.sort_by_key(|z| std::cmp::Reverse(z.wire.len()));
        Self { zones, primary }
    }

    /// The forward zones in index order, for encoding per-zone answers.
    pub fn forward_zones(&self) -> Vec<Box<[u8]>> {
        let mut forward: Vec<&Zone> = self
            .zones
            .iter()
            .filter(|z| z.kind == ZoneKind::Forward)
            .collect();
        forward.sort_by_key(|z| z.index);
        forward.iter().map(|z| z.wire.clone()).collect()
    }

    /// Every zone, in a fixed order (longest first): what zone transfers and their journal
    /// number zones by.
    pub fn zones(&self) -> &[Zone] {
        &self.zones
    }

    pub fn primary(&self) -> &[u8] {
        &self.primary
    }

    /// Serves `zone` as the Multicluster Services zone (`--clusterset-zone`): a tree of its
    /// own, whose SRV answers are encoded for it as zone 0 of that tree.
    pub fn with_clusterset(mut self, zone: &RelativeName) -> Self {
        let wire = zone_wire(zone);
        self.zones.push(Zone {
            base_len: wire.len(),
            wire,
            kind: ZoneKind::ClusterSet,
            index: 0,
        });
        self.zones.sort_by_key(|z| std::cmp::Reverse(z.wire.len()));
        self
    }

    /// The Multicluster Services zone, when one is served.
    pub fn clusterset(&self) -> Option<&Zone> {
        self.zones.iter().find(|z| z.kind == ZoneKind::ClusterSet)
    }

    /// The zone `name` is in; `None` when this server is not authoritative for it.
    pub fn find(&self, name: &QuestionName) -> Option<ZoneMatch<'_>> {
        let lower = name.lower();
        self.zones.iter().find_map(|zone| {
            let start = lower.len().checked_sub(zone.wire.len())?;
            let on_label_boundary = name.label_starts().contains(&(start as u8));
            (on_label_boundary && lower[start..] == *zone.wire).then(|| ZoneMatch {
                zone,
                start,
                key_len: lower.len() - zone.base_len,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::name::Labels;

    fn question(dotted: &str) -> QuestionName {
        let mut msg = vec![0u8; 12];
        msg[5] = 1;
        for label in dotted.split('.').filter(|l| !l.is_empty()) {
            msg.push(label.len() as u8);
            msg.extend_from_slice(label.as_bytes());
        }
        msg.extend_from_slice(&[0, 0, 1, 0, 1]);
        let mut name = QuestionName::new();
        crate::dns::wire::parse(&msg, &mut name);
        name
    }

    fn table(reverse: &[&str]) -> ZoneTable {
        let ranges: Vec<Cidr> = reverse.iter().map(|r| r.parse().unwrap()).collect();
        let forward = [RelativeName::literal(&["cluster", "local"])];
        ZoneTable::new(&forward, &reverse_zones(&ranges))
    }

    fn dotted(wire: &[u8]) -> String {
        let labels: Vec<String> = Labels::of(wire)
            .map(|l| String::from_utf8_lossy(l).into_owned())
            .collect();
        labels.join(".")
    }

    /// The zone `name` falls in, and the store key's name: `zone|key`, or `refused`.
    fn found(table: &ZoneTable, name: &str) -> String {
        let q = question(name);
        match table.find(&q) {
            Some(m) => format!(
                "{}|{}",
                dotted(&m.zone.wire),
                dotted(&q.lower()[..m.key_len])
            ),
            None => "refused".into(),
        }
    }

    #[test]
    fn the_most_specific_zone_matches_and_keys_stay_relative_to_the_tree() {
        let whole = table(&[]);
        assert_eq!(
            found(&whole, "web-0.nginx.demo.svc.cluster.local"),
            "cluster.local|web-0.nginx.demo.svc"
        );
        assert_eq!(
            found(&whole, "7.0.244.10.in-addr.arpa"),
            "in-addr.arpa|7.0.244.10"
        );
        assert_eq!(found(&whole, "example.com"), "refused");
        let named = table(&["10.244.0.0/16", "fd00::/8"]);
        assert_eq!(
            found(&named, "7.0.244.10.in-addr.arpa"),
            "244.10.in-addr.arpa|7.0.244.10"
        );
        assert_eq!(
            found(&named, "244.10.in-addr.arpa"),
            "244.10.in-addr.arpa|244.10"
        );
        assert_eq!(found(&named, "7.0.96.10.in-addr.arpa"), "refused");
        assert_eq!(found(&named, "in-addr.arpa"), "refused");
        assert_eq!(found(&named, "d.f.ip6.arpa"), "d.f.ip6.arpa|d.f");
    }

    #[test]
    fn the_clusterset_zone_is_a_tree_of_its_own() {
        let table = table(&[]).with_clusterset(&RelativeName::literal(&["clusterset", "local"]));
        assert_eq!(
            found(&table, "web-0.east.db.demo.svc.clusterset.local"),
            "clusterset.local|web-0.east.db.demo.svc"
        );
        assert_eq!(found(&table, "clusterset.local"), "clusterset.local|");
        assert_eq!(found(&table, "x.cluster.local"), "cluster.local|x");
        let zone = table.clusterset().map(|z| (z.kind, z.index));
        assert_eq!(zone, Some((ZoneKind::ClusterSet, 0)));
        assert_eq!(table.forward_zones().len(), 1, "not a forward zone");
        assert!(self::table(&[]).clusterset().is_none());
    }
}
