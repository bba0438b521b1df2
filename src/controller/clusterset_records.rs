//! The records of one ServiceImport, as the Multicluster Services DNS specification (KEP-1645
//! `specification.md`, schema 1.0.0) defines them, under `<svc>.<ns>.svc` of the clusterset
//! zone. Pure functions of the model, like [`records`](super::records), whose rules they
//! share: slices merged by address, per-endpoint names from hostnames (else the dashed
//! address), ordinal order, SRV weights, ordinal slots.
//!
//! Order, beyond the specification: clusters by id, then ordinal order within a cluster, so
//! every replica that holds the same objects answers byte for byte alike.

use std::collections::{BTreeMap, BTreeSet};

use crate::controller::records::{
    self, MergedEndpoint, PtrSource, RecordOptions, ServiceRecords, add, endpoint_srv_records,
    finish, merge_endpoints, ordinal_order, ordinal_slots, virtual_ip_records,
};
use crate::dns::name::{NameError, RelativeName};
use crate::dns::rdata::{RData, RrSet};
use crate::model::{EndpointSlice, ImportKind, ServiceImport, StatefulSet};

/// The version of the Multicluster Services DNS specification served at
/// `dns-version.<clusterset zone>`.
pub const MCS_SPEC_VERSION: &str = "1.0.0";

/// The slices of one cluster for an import.
#[derive(Debug, Clone, Copy)]
pub struct ClusterSlices<'a> {
    /// The cluster's id: a DNS label.
    pub cluster: &'a str,
    /// Its slices, in slice-name order.
    pub slices: &'a [&'a EndpointSlice],
}

/// This cluster's part in an import: its id and the StatefulSets of the same-named Service
/// here, whose pods keep their ordinal slots under `<id>.<svc>.<ns>.svc`.
#[derive(Debug, Clone, Copy)]
pub struct LocalCluster<'a> {
    pub cluster: &'a str,
    pub stateful_sets: &'a [&'a StatefulSet],
}

/// Every record of one ServiceImport. `clusters` in cluster-id order, each id once.
pub fn import_records(
    import: &ServiceImport,
    clusters: &[ClusterSlices<'_>],
    local: Option<LocalCluster<'_>>,
    options: RecordOptions,
) -> Result<ServiceRecords, NameError> {
    let base = records::service_name(&import.key)?;
    let mut names: BTreeMap<RelativeName, Vec<RrSet>> = BTreeMap::new();
    let mut reverse = Vec::new();
    let mut slots = BTreeSet::new();
    match &import.kind {
        // 2.3: the clusterset IPs, SRV per named port; never a name per cluster (2.3.4).
        ImportKind::ClusterSetIp(ips) => {
            virtual_ip_records(&mut names, &mut reverse, &base, ips, &import.ports, true)?;
        }
        // 2.4: every ready endpoint of every cluster.
        ImportKind::Headless => {
            let mut endpoints: Vec<(RelativeName, MergedEndpoint)> = Vec::new();
            for cluster in clusters {
                let parent = base.child(cluster.cluster)?;
                let mut named: Vec<MergedEndpoint> = merge_endpoints(cluster.slices)
                    .into_iter()
                    .filter(|e| e.ready || (options.publish_unready_pod_names && !e.terminating))
                    .collect();
                named.sort_by(ordinal_order);
                for ep in named {
                    let name = parent.child(&ep.label())?;
                    add(&mut names, &name, RData::address(ep.ip), &[]);
                    reverse.push((
                        ep.ip,
                        PtrSource {
                            clusterset: true,
                            from_hostname: ep.hostname.is_some(),
                            target: name.clone(),
                        },
                    ));
                    endpoints.push((name, ep));
                }
            }
            // The import's own name and its SRV records: ready endpoints only.
            let ready: Vec<&(RelativeName, MergedEndpoint)> =
                endpoints.iter().filter(|(_, ep)| ep.ready).collect();
            for (_, ep) in &ready {
                add(&mut names, &base, RData::address(ep.ip), &[]);
            }
            let ready_endpoints: Vec<&MergedEndpoint> = ready.iter().map(|(_, ep)| ep).collect();
            let ready_names: Vec<RelativeName> =
                ready.iter().map(|(name, _)| name.clone()).collect();
            endpoint_srv_records(&mut names, &base, &ready_endpoints, &ready_names)?;
            if options.ordinal_slots
                && let Some(local) = local
            {
                let parent = base.child(local.cluster)?;
                slots = ordinal_slots(&mut names, &parent, local.stateful_sets);
            }
        }
    }
    Ok(finish(names, base, &slots, reverse))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Endpoint, ObjectKey, Port, Protocol, SliceOf};

    fn slice(name: &str, cluster: &str, eps: &[(&str, Option<&str>, bool)]) -> EndpointSlice {
        EndpointSlice {
            key: ObjectKey::new("demo", name),
            service: ObjectKey::new("demo", "db"),
            of: SliceOf::Import {
                cluster: Some(cluster.into()),
            },
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
                name: "sql".into(),
                protocol: Protocol::Tcp,
                port: 26257,
            }],
        }
    }

    fn import(kind: ImportKind) -> ServiceImport {
        ServiceImport {
            key: ObjectKey::new("demo", "db"),
            kind,
            ports: vec![Port {
                name: "sql".into(),
                protocol: Protocol::Tcp,
                port: 26257,
            }],
        }
    }

    /// Every name with its records, one line each: `name TYPE data`; names sorted as text,
    /// records in answer order.
    fn lines(records: &ServiceRecords) -> Vec<String> {
        let mut out = Vec::new();
        let mut names: Vec<_> = records.names.iter().collect();
        names.sort_by_key(|n| n.name.to_string());
        for name in names {
            if name.rrsets.is_empty() {
                out.push(format!("{} -", name.name));
            }
            for rrset in &name.rrsets {
                for record in &rrset.records {
                    let data = match record {
                        RData::A(ip) => format!("A {ip}"),
                        RData::Aaaa(ip) => format!("AAAA {ip}"),
                        RData::Srv { port, target, .. } => format!("SRV {port} {target}"),
                        RData::Txt(_) => "TXT".into(),
                        other => format!("{other:?}"),
                    };
                    out.push(format!("{} {data}", name.name));
                }
            }
        }
        out
    }

    #[test]
    fn a_headless_import_names_every_ready_endpoint_of_every_cluster_in_order() {
        let east = slice(
            "db-east",
            "east",
            &[
                ("10.1.0.11", Some("db-1"), true),
                ("10.1.0.10", Some("db-0"), true),
                ("10.1.0.12", Some("db-2"), false),
            ],
        );
        let west = slice("db-west", "west", &[("10.2.0.10", None, true)]);
        let clusters = [
            ClusterSlices {
                cluster: "east",
                slices: &[&east],
            },
            ClusterSlices {
                cluster: "west",
                slices: &[&west],
            },
        ];
        let records = import_records(
            &import(ImportKind::Headless),
            &clusters,
            None,
            RecordOptions::default(),
        )
        .unwrap();
        assert_eq!(
            lines(&records),
            [
                "10-2-0-10.west.db.demo.svc A 10.2.0.10",
                "_sql._tcp.db.demo.svc SRV 26257 db-0.east.db.demo.svc",
                "_sql._tcp.db.demo.svc SRV 26257 db-1.east.db.demo.svc",
                "_sql._tcp.db.demo.svc SRV 26257 10-2-0-10.west.db.demo.svc",
                "_tcp.db.demo.svc -",
                "db-0.east.db.demo.svc A 10.1.0.10",
                "db-1.east.db.demo.svc A 10.1.0.11",
                "db.demo.svc A 10.1.0.10",
                "db.demo.svc A 10.1.0.11",
                "db.demo.svc A 10.2.0.10",
                "east.db.demo.svc -",
                "west.db.demo.svc -",
            ]
        );
        assert!(records.reverse.iter().all(|(_, s)| s.clusterset));
    }

    #[test]
    fn a_clusterset_ip_import_has_no_name_per_cluster() {
        let east = slice("db-east", "east", &[("10.1.0.10", Some("db-0"), true)]);
        let records = import_records(
            &import(ImportKind::ClusterSetIp(vec!["10.42.0.1".parse().unwrap()])),
            &[ClusterSlices {
                cluster: "east",
                slices: &[&east],
            }],
            None,
            RecordOptions::default(),
        )
        .unwrap();
        assert_eq!(
            lines(&records),
            [
                "_sql._tcp.db.demo.svc SRV 26257 db.demo.svc",
                "_tcp.db.demo.svc -",
                "db.demo.svc A 10.42.0.1",
            ]
        );
    }

    #[test]
    fn no_ready_endpoint_no_name_but_local_pods_keep_their_slots() {
        let east = slice("db-east", "east", &[("10.1.0.10", Some("db-0"), false)]);
        let clusters = [ClusterSlices {
            cluster: "east",
            slices: &[&east],
        }];
        let headless = import(ImportKind::Headless);
        let none = import_records(&headless, &clusters, None, RecordOptions::default()).unwrap();
        assert!(none.names.is_empty(), "NXDOMAIN: {:?}", lines(&none));
        let sts = StatefulSet {
            key: ObjectKey::new("demo", "db"),
            service_name: "db".into(),
            replicas: 1,
            ordinal_start: 0,
        };
        let local = LocalCluster {
            cluster: "east",
            stateful_sets: &[&sts],
        };
        let slotted =
            import_records(&headless, &clusters, Some(local), RecordOptions::default()).unwrap();
        assert_eq!(
            lines(&slotted),
            [
                "_slot.db-0.east.db.demo.svc TXT",
                "db-0.east.db.demo.svc -",
                "db.demo.svc -",
                "east.db.demo.svc -",
            ]
        );
        assert!(slotted.names.iter().any(|n| n.slot));
    }
}
