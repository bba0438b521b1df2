//! Records as DNS data, before they are encoded: what the controller computes from the
//! cluster and `store::compile` turns into wire-format answers. Plain values, no Kubernetes
//! types: a record set is its type, its records in answer order, and the records that ride
//! along in the additional section.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::dns::name::RelativeName;
use crate::dns::wire::rtype;

/// Where a name in record data lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// In the zone that was asked (`web-0.nginx.demo.svc` + the question's zone).
    InZone(RelativeName),
    /// In the primary (first) cluster zone: the targets of reverse lookups, which carry no
    /// forward zone of their own.
    Primary(RelativeName),
    /// In the clusterset zone: the reverse targets of ServiceImports' names.
    ClusterSet(RelativeName),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RData {
    A(Ipv4Addr),
    Aaaa(Ipv6Addr),
    /// RFC 2782; the target is never compressed on the wire.
    Srv {
        priority: u16,
        weight: u16,
        port: u16,
        target: RelativeName,
    },
    Ptr(Target),
    /// An ExternalName target: lowercase, dot-terminated.
    Cname(String),
    Txt(String),
    Ns(Target),
    Soa {
        mname: Target,
        rname: Target,
        serial: u32,
        refresh: u32,
        retry: u32,
        expire: u32,
        minimum: u32,
    },
}

impl RData {
    pub fn rtype(&self) -> u16 {
        match self {
            RData::A(_) => rtype::A,
            RData::Aaaa(_) => rtype::AAAA,
            RData::Srv { .. } => rtype::SRV,
            RData::Ptr(_) => rtype::PTR,
            RData::Cname(_) => rtype::CNAME,
            RData::Txt(_) => rtype::TXT,
            RData::Ns(_) => rtype::NS,
            RData::Soa { .. } => rtype::SOA,
        }
    }

    /// The A or AAAA record of `ip`.
    pub fn address(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => RData::A(v4),
            IpAddr::V6(v6) => RData::Aaaa(v6),
        }
    }
}

/// All records of one type at one name, in answer order, with the records that go in the
/// additional section alongside them (the addresses of SRV targets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RrSet {
    pub rtype: u16,
    pub records: Vec<RData>,
    pub additional: Vec<(RelativeName, RData)>,
}

/// One name and its record sets. No record sets: an empty non-terminal (NODATA).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameRecords {
    pub name: RelativeName,
    pub rrsets: Vec<RrSet>,
    /// An ordinal slot of a StatefulSet whose pod has no address right now: NODATA with the
    /// short slot negative TTL, so that nobody caches "does not exist" for a pod that is
    /// about to come back.
    pub slot: bool,
}

impl NameRecords {
    /// The name's addresses in answer order (its A and AAAA records, record sets in order),
    /// when addresses are all it has: a pod's name, an ordinal slot, an empty name.
    pub fn addresses_only(&self) -> Option<Vec<IpAddr>> {
        let mut addresses = Vec::new();
        for rrset in &self.rrsets {
            if !rrset.additional.is_empty() {
                return None;
            }
            for record in &rrset.records {
                match record {
                    RData::A(ip) => addresses.push(IpAddr::V4(*ip)),
                    RData::Aaaa(ip) => addresses.push(IpAddr::V6(*ip)),
                    _ => return None,
                }
            }
        }
        Some(addresses)
    }
}
