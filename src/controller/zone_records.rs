//! The names every zone has whatever the cluster holds: the apex (SOA, NS), `dns-version`
//! (TXT, spec 2.2) and `svc` in each forward zone and in the clusterset zone, and the apex
//! of each reverse zone. The
//! controller publishes them once; their SOA is also the authority record of every negative
//! answer (`Store::negative_soa`).

use std::net::IpAddr;

use crate::controller::clusterset_records::MCS_SPEC_VERSION;
use crate::controller::records::SPEC_VERSION;
use crate::dns::name::RelativeName;
use crate::dns::rdata::{NameRecords, RData, RrSet, Target};
use crate::dns::wire::rtype;
use crate::store::{Zone, ZoneKind};

/// What the names every zone has depend on, besides the zones themselves.
#[derive(Debug, Clone, Default)]
pub struct ZoneSettings {
    /// TTL of negative answers: the SOA's MINIMUM.
    pub negative_ttl: u32,
    /// `--ns-address`: the addresses of `ns.dns.<zone>`, the name server the NS record
    /// names; none leaves that name without records.
    pub ns_addresses: Vec<IpAddr>,
    /// `--reverse-zone`: the reverse zones below `in-addr.arpa` and `ip6.arpa` that get
    /// an apex of their own, relative to their tree (`10` for `10.in-addr.arpa`).
    pub reverse_apexes: Vec<(ZoneKind, RelativeName)>,
    /// Every zone served, numbered as zone transfers number them: what the journal of
    /// changes records per zone.
    pub transfer_zones: Vec<Zone>,
    /// Bytes the journal of changes may hold (`--ixfr-journal-size`); 0 records none.
    pub journal_bytes: usize,
}

/// SOA timers, as CoreDNS sets them: secondaries refresh every two hours without a NOTIFY,
/// retry after half an hour, and stop serving the zone after a day without reaching us.
const SOA_REFRESH: u32 = 7200;
const SOA_RETRY: u32 = 1800;
const SOA_EXPIRE: u32 = 86400;

/// The names every forward zone has whatever the cluster holds: the apex (SOA, NS),
/// `dns-version` (TXT, spec 2.2) and `svc`; with `ns_addresses`, the name server's own
/// name `ns.dns` with those addresses (as glue of the NS record too), and `dns` above it.
pub fn forward_static_records(
    negative_ttl: u32,
    ns_addresses: &[IpAddr],
    serial: u32,
) -> Vec<NameRecords> {
    static_records(SPEC_VERSION, negative_ttl, ns_addresses, serial)
}

/// The same names in the clusterset zone, whose `dns-version` is the Multicluster
/// Services DNS specification's (2.2).
pub fn clusterset_static_records(
    negative_ttl: u32,
    ns_addresses: &[IpAddr],
    serial: u32,
) -> Vec<NameRecords> {
    static_records(MCS_SPEC_VERSION, negative_ttl, ns_addresses, serial)
}

fn static_records(
    version: &str,
    negative_ttl: u32,
    ns_addresses: &[IpAddr],
    serial: u32,
) -> Vec<NameRecords> {
    let ns = RelativeName::literal(&["ns", "dns"]);
    let mut apex = apex_records(
        RelativeName::apex(),
        Target::InZone(ns.clone()),
        Target::InZone(RelativeName::literal(&["hostmaster"])),
        negative_ttl,
        serial,
    );
    let version = NameRecords {
        name: RelativeName::literal(&["dns-version"]),
        rrsets: vec![RrSet {
            rtype: rtype::TXT,
            records: vec![RData::Txt(version.to_owned())],
            additional: vec![],
        }],
        slot: false,
    };
    let svc = empty(RelativeName::literal(&["svc"]));
    if ns_addresses.is_empty() {
        return vec![apex, version, svc];
    }
    let glue: Vec<(RelativeName, RData)> = ns_addresses
        .iter()
        .map(|ip| (ns.clone(), RData::address(*ip)))
        .collect();
    if let Some(ns_rrset) = apex.rrsets.iter_mut().find(|r| r.rtype == rtype::NS) {
        ns_rrset.additional = glue;
    }
    let mut ns_rrsets: Vec<RrSet> = Vec::new();
    for ip in ns_addresses {
        let record = RData::address(*ip);
        match ns_rrsets.iter_mut().find(|r| r.rtype == record.rtype()) {
            Some(rrset) => rrset.records.push(record),
            None => ns_rrsets.push(RrSet {
                rtype: record.rtype(),
                records: vec![record],
                additional: vec![],
            }),
        }
    }
    let ns_name = NameRecords {
        name: ns,
        rrsets: ns_rrsets,
        slot: false,
    };
    vec![
        apex,
        version,
        svc,
        empty(RelativeName::literal(&["dns"])),
        ns_name,
    ]
}

/// The apex of a reverse zone: `in-addr.arpa` or `ip6.arpa` itself (`apex` is the root of
/// the tree), or a zone below it named by `--reverse-zone` (`10` for `10.in-addr.arpa`).
/// Its name server and mailbox are named in the primary forward zone.
pub fn reverse_apex_records(apex: RelativeName, negative_ttl: u32, serial: u32) -> NameRecords {
    apex_records(
        apex,
        Target::Primary(RelativeName::literal(&["ns", "dns"])),
        Target::Primary(RelativeName::literal(&["hostmaster"])),
        negative_ttl,
        serial,
    )
}

/// A name without records of its own: an empty non-terminal.
fn empty(name: RelativeName) -> NameRecords {
    NameRecords {
        name,
        rrsets: vec![],
        slot: false,
    }
}

fn apex_records(
    apex: RelativeName,
    ns: Target,
    hostmaster: Target,
    negative_ttl: u32,
    serial: u32,
) -> NameRecords {
    NameRecords {
        name: apex,
        rrsets: vec![
            RrSet {
                rtype: rtype::SOA,
                records: vec![RData::Soa {
                    mname: ns.clone(),
                    rname: hostmaster,
                    serial,
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
