//! The zones this server is authoritative for, and the records at their apexes.
//!
//! Every forward zone (`--zone`, `cluster.local` by default) serves the same records, so a
//! stub domain such as `sts.example.internal` answers like `cluster.local`. The reverse zones
//! `in-addr.arpa` and `ip6.arpa` answer PTR queries for Service and endpoint addresses.

use crate::compile::{ANY_ZONE, zone_wire};
use crate::name::RelativeName;
use crate::records::{NameRecords, RData, RrSet, SPEC_VERSION, Target, rtype};
use crate::store::ZoneKind;
use crate::wire::{CLASS_IN, QuestionName};

/// SOA timers, as CoreDNS sets them. No zone transfers are offered, so they only inform.
const SOA_REFRESH: u32 = 7200;
const SOA_RETRY: u32 = 1800;
const SOA_EXPIRE: u32 = 86400;
/// The SOA serial is constant: nothing transfers the zone, and a serial that moved with time
/// or events would make replicas answer differently for the same records.
const SOA_SERIAL: u32 = 1;

/// One zone.
#[derive(Debug, Clone)]
pub struct Zone {
    /// Lowercase wire form, root label included.
    pub wire: Box<[u8]>,
    pub kind: ZoneKind,
    /// Index among the forward zones (selects per-zone SRV answers); [`ANY_ZONE`] for the
    /// reverse zones.
    pub index: u8,
}

/// The zones, longest first so that the most specific zone matches.
#[derive(Debug, Clone)]
pub struct ZoneTable {
    zones: Vec<Zone>,
    /// The first forward zone: reverse answers name their targets in it.
    primary: Box<[u8]>,
    /// RDATA of the reverse zones' SOA up to the serial: `ns.dns.<primary>` and
    /// `hostmaster.<primary>` in full.
    reverse_soa_names: Box<[u8]>,
}

impl ZoneTable {
    /// `forward` must hold at least one zone; the first is the primary.
    pub fn new(forward: &[RelativeName]) -> Self {
        let mut zones: Vec<Zone> = forward
            .iter()
            .enumerate()
            .map(|(i, name)| Zone {
                wire: zone_wire(name),
                kind: ZoneKind::Forward,
                index: u8::try_from(i).unwrap_or(ANY_ZONE - 1),
            })
            .collect();
        for (labels, kind) in [
            (["in-addr", "arpa"], ZoneKind::ReverseV4),
            (["ip6", "arpa"], ZoneKind::ReverseV6),
        ] {
            zones.push(Zone {
                wire: zone_wire(&fixed(&labels)),
                kind,
                index: ANY_ZONE,
            });
        }
        let primary = forward
            .first()
            .map(zone_wire)
            .unwrap_or_else(|| Box::new([0]));
        let mut reverse_soa_names = Vec::new();
        reverse_soa_names.extend_from_slice(b"\x02ns\x03dns");
        reverse_soa_names.extend_from_slice(&primary);
        reverse_soa_names.extend_from_slice(b"\x0ahostmaster");
        reverse_soa_names.extend_from_slice(&primary);
        zones.sort_by_key(|z| std::cmp::Reverse(z.wire.len()));
        Self {
            zones,
            primary,
            reverse_soa_names: reverse_soa_names.into_boxed_slice(),
        }
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

    pub fn primary(&self) -> &[u8] {
        &self.primary
    }

    /// The zone `name` is in, and where within the name that zone starts; `None` when this
    /// server is not authoritative for it.
    pub fn find(&self, name: &QuestionName) -> Option<(&Zone, usize)> {
        let lower = name.lower();
        self.zones.iter().find_map(|zone| {
            let start = lower.len().checked_sub(zone.wire.len())?;
            let on_label_boundary = name.label_starts().contains(&(start as u8));
            (on_label_boundary && lower[start..] == *zone.wire).then_some((zone, start))
        })
    }

    /// Writes the zone's SOA for the authority section of a negative answer (RFC 2308 3):
    /// owner and names point at the zone inside the question (`zone_at`, a message offset);
    /// TTL and MINIMUM are the negative TTL. Returns the record's length.
    pub fn write_negative_soa(
        &self,
        out: &mut Vec<u8>,
        zone: &Zone,
        zone_at: u16,
        negative_ttl: u32,
    ) {
        let pointer = (0xC000 | zone_at).to_be_bytes();
        out.extend_from_slice(&pointer);
        out.extend_from_slice(&rtype::SOA.to_be_bytes());
        out.extend_from_slice(&CLASS_IN.to_be_bytes());
        out.extend_from_slice(&negative_ttl.to_be_bytes());
        let rdlen_at = out.len();
        out.extend_from_slice(&[0, 0]);
        if zone.kind == ZoneKind::Forward {
            out.extend_from_slice(b"\x02ns\x03dns");
            out.extend_from_slice(&pointer);
            out.extend_from_slice(b"\x0ahostmaster");
            out.extend_from_slice(&pointer);
        } else {
            out.extend_from_slice(&self.reverse_soa_names);
        }
        for value in [SOA_SERIAL, SOA_REFRESH, SOA_RETRY, SOA_EXPIRE, negative_ttl] {
            out.extend_from_slice(&value.to_be_bytes());
        }
        let rdlen = (out.len() - rdlen_at - 2) as u16;
        out[rdlen_at..rdlen_at + 2].copy_from_slice(&rdlen.to_be_bytes());
    }
}

/// The names every forward zone has whatever the cluster holds: the apex (SOA, NS),
/// `dns-version` (TXT, spec 2.2) and `svc`.
pub fn forward_static_records(negative_ttl: u32) -> Vec<NameRecords> {
    let apex = apex_records(
        Target::InZone(fixed(&["ns", "dns"])),
        Target::InZone(fixed(&["hostmaster"])),
        negative_ttl,
    );
    let version = NameRecords {
        name: fixed(&["dns-version"]),
        rrsets: vec![RrSet {
            rtype: rtype::TXT,
            records: vec![RData::Txt(SPEC_VERSION.to_owned())],
            additional: vec![],
        }],
        slot: false,
    };
    let svc = NameRecords {
        name: fixed(&["svc"]),
        rrsets: vec![],
        slot: false,
    };
    vec![apex, version, svc]
}

/// The apex of a reverse zone.
pub fn reverse_apex_records(negative_ttl: u32) -> NameRecords {
    apex_records(
        Target::Primary(fixed(&["ns", "dns"])),
        Target::Primary(fixed(&["hostmaster"])),
        negative_ttl,
    )
}

/// A name spelled out in this file.
fn fixed(labels: &[&str]) -> RelativeName {
    // Every caller passes a few short, non-empty labels, which is all `from_labels` checks.
    RelativeName::from_labels(labels.iter().copied()).expect("fixed names are valid")
}

fn apex_records(ns: Target, hostmaster: Target, negative_ttl: u32) -> NameRecords {
    NameRecords {
        name: RelativeName::apex(),
        rrsets: vec![
            RrSet {
                rtype: rtype::SOA,
                records: vec![RData::Soa {
                    mname: ns.clone(),
                    rname: hostmaster,
                    serial: SOA_SERIAL,
                    refresh: SOA_REFRESH,
                    retry: SOA_RETRY,
                    expire: SOA_EXPIRE,
                    minimum: negative_ttl,
                }],
                additional: vec![],
            },
            RrSet {
                rtype: rtype::NS,
                records: vec![RData::Ns(ns)],
                additional: vec![],
            },
        ],
        slot: false,
    }
}
