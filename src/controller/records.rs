//! The records of one Service, as the Kubernetes DNS specification 1.1.0 defines them, in
//! ordinal order. Pure functions of the model: the same inputs give the same records on every
//! replica, which is what makes answers byte-identical across replicas.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use crate::dns::name::{NameError, RelativeName, dashed_ip, ordinal};
use crate::dns::rdata::{NameRecords, RData, RrSet};
use crate::model::{EndpointSlice, ObjectKey, Port, Service, ServiceKind, StatefulSet};

/// The version of the Kubernetes DNS specification served at `dns-version.<zone>`.
pub const SPEC_VERSION: &str = "1.1.0";

/// Choices that change which records a Service has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordOptions {
    /// Answer NODATA (not NXDOMAIN) for StatefulSet ordinals without a ready pod.
    pub ordinal_slots: bool,
    /// Name a pod as soon as it has an address and is not terminating, ready or not; the
    /// Service's own answers stay ready-only.
    pub publish_unready_pod_names: bool,
}

impl Default for RecordOptions {
    fn default() -> Self {
        Self {
            ordinal_slots: true,
            publish_unready_pod_names: false,
        }
    }
}

/// The label under an ordinal slot whose TXT record marks it (`_slot.web-3.nginx...`): the
/// name a zone can hold for a pod that is away (`_` cannot start a pod's hostname).
pub const SLOT_LABEL: &str = "_slot";
/// That record's text.
pub const SLOT_TEXT: &str = "ordinal slot: the pod is away and keeps its name";

/// Slots named per StatefulSet at most: a `replicas` typo of 2^31 must not take the memory.
pub const MAX_SLOTS: u32 = 100_000;

/// A name that a reverse lookup of an address may return.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct PtrSource {
    /// Whether the name is in the clusterset zone (a ServiceImport's): such names answer
    /// only for addresses no cluster-local name claims (MCS DNS specification 2.3.3, 2.4.3).
    pub clusterset: bool,
    /// Whether the name comes from an endpoint hostname (a StatefulSet pod's stable name):
    /// such names win over dashed-IP and Service names (spec 2.4).
    pub from_hostname: bool,
    /// Forward name, relative to the primary zone (or the clusterset zone).
    pub target: RelativeName,
}

/// Everything one Service publishes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceRecords {
    /// Every name under `<svc>.<ns>.svc`, in name order.
    pub names: Vec<NameRecords>,
    /// The reverse names this Service contributes.
    pub reverse: Vec<(IpAddr, PtrSource)>,
}

/// A Service's own name, `<svc>.<ns>.svc`, relative to the cluster zone.
pub fn service_name(service: &ObjectKey) -> Result<RelativeName, NameError> {
    RelativeName::from_labels([&*service.name, &*service.namespace, "svc"])
}

/// One endpoint address after merging all slices of a Service.
#[derive(Debug, Clone)]
pub(super) struct MergedEndpoint {
    pub(super) ip: IpAddr,
    pub(super) hostname: Option<String>,
    pub(super) ready: bool,
    pub(super) terminating: bool,
    pub(super) ports: BTreeSet<Port>,
}

impl MergedEndpoint {
    /// The label of its per-endpoint name: the hostname, else the dashed IP.
    pub(super) fn label(&self) -> String {
        self.hostname.clone().unwrap_or_else(|| dashed_ip(self.ip))
    }
}

/// Merges slices (already in slice-name order) by address: an address listed twice is one
/// endpoint, ready if any copy is, terminating if every copy is, named by the smallest
/// hostname any copy has. The result
/// depends only on the set of slices, not on the order they arrived in.
pub(super) fn merge_endpoints(slices: &[&EndpointSlice]) -> Vec<MergedEndpoint> {
    let mut by_ip: BTreeMap<IpAddr, MergedEndpoint> = BTreeMap::new();
    for slice in slices {
        for ep in slice.endpoints.iter() {
            let merged = by_ip.entry(ep.ip).or_insert_with(|| MergedEndpoint {
                ip: ep.ip,
                hostname: None,
                ready: false,
                terminating: true,
                ports: BTreeSet::new(),
            });
            merged.ready |= ep.ready;
            merged.terminating &= ep.terminating;
            merged.hostname = match (merged.hostname.take(), ep.hostname) {
                (Some(a), Some(b)) if b < a.as_str() => Some(b.to_owned()),
                (a, b) => a.or_else(|| b.map(str::to_owned)),
            };
            merged.ports.extend(slice.ports.iter().cloned());
        }
    }
    by_ip.into_values().collect()
}

/// StatefulSet ordinal order: `web-0, web-1, ..., web-10` (numerically, grouped by
/// StatefulSet name), then endpoints without an ordinal by IP.
pub(super) fn ordinal_order(a: &MergedEndpoint, b: &MergedEndpoint) -> std::cmp::Ordering {
    let key = |e: &MergedEndpoint| match e.hostname.as_deref().and_then(ordinal) {
        Some((prefix, n)) => (0u8, prefix.to_owned(), n),
        None => (1u8, String::new(), 0),
    };
    key(a).cmp(&key(b)).then(a.ip.cmp(&b.ip))
}

/// SRV weight: the share of each of `n` targets, as CoreDNS computes it, never 0 (which
/// RFC 2782 reserves for "almost never").
pub(super) fn srv_weight(n: usize) -> u16 {
    u16::try_from((100 / n.max(1)).max(1)).unwrap_or(1)
}

/// Builds every record of one Service from its merged endpoint slices (in slice-name order)
/// and the StatefulSets it governs.
pub fn service_records(
    service: &Service,
    slices: &[&EndpointSlice],
    stateful_sets: &[&StatefulSet],
    options: RecordOptions,
) -> Result<ServiceRecords, NameError> {
    let base = service_name(&service.key)?;
    let mut names: BTreeMap<RelativeName, Vec<RrSet>> = BTreeMap::new();
    let mut reverse = Vec::new();
    match &service.kind {
        ServiceKind::ExternalName(target) => {
            add(&mut names, &base, RData::Cname(target.clone()), &[]);
        }
        ServiceKind::ClusterIp(ips) => {
            virtual_ip_records(&mut names, &mut reverse, &base, ips, &service.ports, false)?;
        }
        ServiceKind::Headless => {
            let in_service = |e: &MergedEndpoint| e.ready || service.publish_not_ready;
            let mut named: Vec<MergedEndpoint> = merge_endpoints(slices)
                .into_iter()
                .filter(|e| in_service(e) || (options.publish_unready_pod_names && !e.terminating))
                .collect();
            named.sort_by(ordinal_order);
            // Only endpoints in service are in the Service's own answers and in SRV.
            let endpoints: Vec<&MergedEndpoint> = named.iter().filter(|e| in_service(e)).collect();
            for ep in &endpoints {
                add(&mut names, &base, RData::address(ep.ip), &[]);
            }
            // Per-endpoint names: SRV records point at them.
            for ep in &named {
                let name = base.child(&ep.label())?;
                add(&mut names, &name, RData::address(ep.ip), &[]);
                reverse.push((
                    ep.ip,
                    PtrSource {
                        clusterset: false,
                        from_hostname: ep.hostname.is_some(),
                        target: name,
                    },
                ));
            }
            let endpoint_names: Vec<RelativeName> = endpoints
                .iter()
                .map(|ep| base.child(&ep.label()))
                .collect::<Result<_, _>>()?;
            endpoint_srv_records(&mut names, &base, &endpoints, &endpoint_names)?;
        }
    }
    // Ordinal slots: every pod name a StatefulSet owns exists, with an address or without.
    let slots = if options.ordinal_slots && service.kind == ServiceKind::Headless {
        ordinal_slots(&mut names, &base, stateful_sets)
    } else {
        BTreeSet::new()
    };
    Ok(finish(names, base, &slots, reverse))
}

/// Ordinal slots: the name of every pod the StatefulSets own, under `parent`, that has no
/// records yet gets a slot (no address, a `_slot` marker below it). Returns the slots.
pub(super) fn ordinal_slots(
    names: &mut BTreeMap<RelativeName, Vec<RrSet>>,
    parent: &RelativeName,
    stateful_sets: &[&StatefulSet],
) -> BTreeSet<RelativeName> {
    let mut slots = BTreeSet::new();
    for sts in stateful_sets {
        let count = sts.replicas.min(MAX_SLOTS);
        for n in sts.ordinal_start..sts.ordinal_start.saturating_add(count) {
            // A name too long for DNS (a StatefulSet name near 63 octets) has no slot.
            let Ok(name) = parent.child(&format!("{}-{n}", sts.key.name)) else {
                break;
            };
            if !names.contains_key(&name) {
                names.insert(name.clone(), Vec::new());
                // A child record keeps the slot a name in zone transfers too: a
                // secondary answers it NODATA (an empty non-terminal), never NXDOMAIN.
                if let Ok(marker) = name.child(SLOT_LABEL) {
                    add(names, &marker, RData::Txt(SLOT_TEXT.to_owned()), &[]);
                }
                slots.insert(name);
            }
        }
    }
    slots
}

/// The names below `base` with the empty non-terminals between them and `base` (`_tcp`, a
/// cluster id), `base` itself when anything is below it, in name order.
pub(super) fn finish(
    mut names: BTreeMap<RelativeName, Vec<RrSet>>,
    base: RelativeName,
    slots: &BTreeSet<RelativeName>,
    reverse: Vec<(IpAddr, PtrSource)>,
) -> ServiceRecords {
    let mut ents = Vec::new();
    for name in names.keys().filter(|n| **n != base) {
        // Every other name is below `base`, so this walk ends there.
        let mut parent = name.parent();
        while let Some(p) = parent {
            if p == base || names.contains_key(&p) {
                break;
            }
            parent = p.parent();
            ents.push(p);
        }
    }
    for ent in ents {
        names.entry(ent).or_default();
    }
    // A Service whose pods are all away still has its slots below it: it exists (NODATA).
    if !names.is_empty() {
        names.entry(base).or_default();
    }
    ServiceRecords {
        names: names
            .into_iter()
            .map(|(name, rrsets)| NameRecords {
                slot: slots.contains(&name),
                name,
                rrsets,
            })
            .collect(),
        reverse,
    }
}

/// One SRV name per named port of `endpoints` (in answer order), each record targeting the
/// endpoint's name in `endpoint_names` (same order), their addresses in the additional
/// section of the first record.
pub(super) fn endpoint_srv_records(
    names: &mut BTreeMap<RelativeName, Vec<RrSet>>,
    base: &RelativeName,
    endpoints: &[&MergedEndpoint],
    endpoint_names: &[RelativeName],
) -> Result<(), NameError> {
    // One SRV name per named port, targets in ordinal order.
    let mut by_port: BTreeMap<(&str, &'static str), Vec<(usize, u16)>> = BTreeMap::new();
    for (i, ep) in endpoints.iter().enumerate() {
        for port in ep.ports.iter().filter(|p| !p.name.is_empty()) {
            by_port
                .entry((&*port.name, port.protocol.srv_label()))
                .or_default()
                .push((i, port.port));
        }
    }
    for ((port_name, proto), targets) in by_port {
        let srv_name = base
            .child(&format!("_{proto}"))?
            .child(&format!("_{port_name}"))?;
        let weight = srv_weight(targets.len());
        let mut additional = Vec::new();
        let mut seen = BTreeSet::new();
        for &(i, _) in &targets {
            if seen.insert(i) {
                let target = &endpoint_names[i];
                additional.push((target.clone(), RData::address(endpoints[i].ip)));
            }
        }
        for (n, &(i, port)) in targets.iter().enumerate() {
            let record = RData::Srv {
                priority: 0,
                weight,
                port,
                target: endpoint_names[i].clone(),
            };
            // The additional section rides on the first record only.
            let extra: &[(RelativeName, RData)] = if n == 0 { &additional } else { &[] };
            add(names, &srv_name, record, extra);
        }
    }
    Ok(())
}

/// The records of a name with virtual IPs (a ClusterIP Service, a ClusterSetIP import): its
/// addresses, the reverse claims on them, and an SRV record per named port targeting it,
/// with the addresses in the additional section.
pub(super) fn virtual_ip_records(
    names: &mut BTreeMap<RelativeName, Vec<RrSet>>,
    reverse: &mut Vec<(IpAddr, PtrSource)>,
    base: &RelativeName,
    ips: &[IpAddr],
    ports: &[Port],
    clusterset: bool,
) -> Result<(), NameError> {
    let addresses: Vec<RData> = ips.iter().map(|ip| RData::address(*ip)).collect();
    for address in &addresses {
        add(names, base, address.clone(), &[]);
    }
    for ip in ips {
        reverse.push((
            *ip,
            PtrSource {
                clusterset,
                from_hostname: false,
                target: base.clone(),
            },
        ));
    }
    let additional: Vec<(RelativeName, RData)> = addresses
        .iter()
        .map(|a| (base.clone(), a.clone()))
        .collect();
    for port in ports.iter().filter(|p| !p.name.is_empty()) {
        let record = RData::Srv {
            priority: 0,
            weight: 100,
            port: port.port,
            target: base.clone(),
        };
        add(names, &srv_name(base, port)?, record, &additional);
    }
    Ok(())
}

/// `_<port>._<proto>.<base>`.
pub(super) fn srv_name(base: &RelativeName, port: &Port) -> Result<RelativeName, NameError> {
    base.child(&format!("_{}", port.protocol.srv_label()))?
        .child(&format!("_{}", port.name))
}

/// Appends `record` (and its additional records) to the record set of its type at `name`.
pub(super) fn add(
    names: &mut BTreeMap<RelativeName, Vec<RrSet>>,
    name: &RelativeName,
    record: RData,
    additional: &[(RelativeName, RData)],
) {
    let rrsets = names.entry(name.clone()).or_default();
    let rtype = record.rtype();
    let rrset = match rrsets.iter_mut().position(|r| r.rtype == rtype) {
        Some(i) => &mut rrsets[i],
        None => {
            rrsets.push(RrSet {
                rtype,
                records: Vec::new(),
                additional: Vec::new(),
            });
            let last = rrsets.len() - 1;
            &mut rrsets[last]
        }
    };
    if !rrset.records.contains(&record) {
        rrset.records.push(record);
    }
    rrset.additional.extend_from_slice(additional);
}

/// The reverse answer for one address from every name that claims it: cluster-local names
/// only when any exists (a clusterset name answers only for an address without one: MCS
/// DNS specification 2.3.3 and 2.4.3), and of those, hostname names only when any exists (a
/// StatefulSet pod reverses to its stable name), else all of them. Returns whether the
/// targets are in the clusterset zone, and the targets.
pub fn ptr_answer<'a>(
    sources: impl Iterator<Item = &'a PtrSource> + Clone,
) -> (bool, Vec<RelativeName>) {
    let clusterset = sources.clone().all(|s| s.clusterset);
    let sources = sources.filter(|s| s.clusterset == clusterset);
    let any_hostname = sources.clone().any(|s| s.from_hostname);
    let mut targets: Vec<RelativeName> = sources
        .filter(|s| s.from_hostname || !any_hostname)
        .map(|s| s.target.clone())
        .collect();
    targets.sort();
    targets.dedup();
    (clusterset, targets)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Endpoint, ObjectKey, Protocol, SliceOf};

    fn headless(publish_not_ready: bool) -> Service {
        Service {
            key: ObjectKey::new("demo", "nginx"),
            kind: ServiceKind::Headless,
            ports: vec![],
            publish_not_ready,
        }
    }

    fn slice(name: &str, eps: &[(&str, Option<&str>, bool)]) -> EndpointSlice {
        EndpointSlice {
            key: ObjectKey::new("demo", name),
            service: ObjectKey::new("demo", "nginx"),
            of: SliceOf::Service,
            endpoints: eps
                .iter()
                .map(|(ip, host, ready)| Endpoint {
                    ip: ip.parse().unwrap(),
                    hostname: host.map(str::to_owned),
                    ready: *ready,
                    terminating: false,
                })
                .collect(),
            ports: vec![Port {
                name: "web".into(),
                protocol: Protocol::Tcp,
                port: 80,
            }],
        }
    }

    fn names_of(records: &ServiceRecords) -> Vec<String> {
        records.names.iter().map(|n| n.name.to_string()).collect()
    }

    fn a_records(records: &ServiceRecords, name: &str) -> Vec<String> {
        records
            .names
            .iter()
            .find(|n| n.name.to_string() == name)
            .map(|n| {
                n.rrsets
                    .iter()
                    .flat_map(|r| &r.records)
                    .map(|r| match r {
                        RData::A(ip) => ip.to_string(),
                        RData::Aaaa(ip) => ip.to_string(),
                        RData::Srv { target, .. } => target.to_string(),
                        other => format!("{other:?}"),
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    #[test]
    fn ordinal_order_is_numeric_then_by_ip() {
        let s = slice(
            "a",
            &[
                ("10.0.0.10", Some("web-10"), true),
                ("10.0.0.9", None, true),
                ("10.0.0.2", Some("web-2"), true),
                ("10.0.0.1", Some("web-1"), true),
                ("10.0.0.3", None, true),
            ],
        );
        let records =
            service_records(&headless(false), &[&s], &[], RecordOptions::default()).unwrap();
        assert_eq!(
            a_records(&records, "nginx.demo.svc"),
            ["10.0.0.1", "10.0.0.2", "10.0.0.10", "10.0.0.3", "10.0.0.9"]
        );
        assert_eq!(
            a_records(&records, "_web._tcp.nginx.demo.svc"),
            [
                "web-1.nginx.demo.svc",
                "web-2.nginx.demo.svc",
                "web-10.nginx.demo.svc",
                "10-0-0-3.nginx.demo.svc",
                "10-0-0-9.nginx.demo.svc"
            ]
        );
        let names = names_of(&records);
        assert!(names.contains(&"_tcp.nginx.demo.svc".to_string()));
        // Nothing above the Service: those names belong to the namespace and the zone.
        assert!(
            names.iter().all(|n| n.ends_with("nginx.demo.svc")),
            "{names:?}"
        );
    }

    #[test]
    fn not_ready_endpoints_need_publish_not_ready() {
        let s = slice(
            "a",
            &[
                ("10.0.0.1", Some("web-0"), true),
                ("10.0.0.2", Some("web-1"), false),
            ],
        );
        let strict =
            service_records(&headless(false), &[&s], &[], RecordOptions::default()).unwrap();
        assert_eq!(a_records(&strict, "nginx.demo.svc"), ["10.0.0.1"]);
        assert!(!names_of(&strict).contains(&"web-1.nginx.demo.svc".to_string()));
        let loose = service_records(&headless(true), &[&s], &[], RecordOptions::default()).unwrap();
        assert_eq!(
            a_records(&loose, "nginx.demo.svc"),
            ["10.0.0.1", "10.0.0.2"]
        );
    }

    #[test]
    fn no_ready_endpoint_means_no_names() {
        let s = slice("a", &[("10.0.0.1", Some("web-0"), false)]);
        let records =
            service_records(&headless(false), &[&s], &[], RecordOptions::default()).unwrap();
        assert!(records.names.is_empty());
    }

    #[test]
    fn slices_merge_without_duplicates_whatever_their_order() {
        let a = slice("a", &[("10.0.0.1", Some("web-0"), true)]);
        let b = slice(
            "b",
            &[
                ("10.0.0.1", Some("web-0"), true),
                ("10.0.0.2", Some("web-1"), true),
            ],
        );
        let ab =
            service_records(&headless(false), &[&a, &b], &[], RecordOptions::default()).unwrap();
        let ba =
            service_records(&headless(false), &[&b, &a], &[], RecordOptions::default()).unwrap();
        assert_eq!(ab, ba);
        assert_eq!(a_records(&ab, "nginx.demo.svc"), ["10.0.0.1", "10.0.0.2"]);
    }

    #[test]
    fn ptr_prefers_hostnames() {
        let name = |s: &str| RelativeName::from_labels(s.split('.')).unwrap();
        let sources = [
            PtrSource {
                clusterset: false,
                from_hostname: false,
                target: name("10-0-0-1.other.demo.svc"),
            },
            PtrSource {
                clusterset: false,
                from_hostname: true,
                target: name("web-0.nginx.demo.svc"),
            },
            PtrSource {
                clusterset: true,
                from_hostname: true,
                target: name("web-0.east.nginx.demo.svc"),
            },
        ];
        assert_eq!(
            ptr_answer(sources.iter()),
            (false, vec![name("web-0.nginx.demo.svc")])
        );
        assert_eq!(
            ptr_answer(sources[..1].iter()),
            (false, vec![name("10-0-0-1.other.demo.svc")])
        );
        assert_eq!(
            ptr_answer(sources[2..].iter()),
            (true, vec![name("web-0.east.nginx.demo.svc")]),
            "a clusterset name answers when no cluster-local one claims the address"
        );
    }

    #[test]
    fn srv_weights() {
        fn check(n: usize, expected: u16) {
            assert_eq!(srv_weight(n), expected, "{n}");
        }
        check(1, 100);
        check(3, 33);
        check(100, 1);
        check(250, 1);
    }
}
