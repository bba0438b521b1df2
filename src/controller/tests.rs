//! The controller fed plain objects, checked through the store it publishes into.

use std::net::IpAddr;

use super::*;
use crate::dns::name::{RelativeName, zone_wire};
use crate::dns::wire::rtype;
use crate::model::{Kind, Object};
use crate::store::Lookup;
use crate::store::answers::ANY_ZONE;

/// Encoding for `cluster.local`.
fn context() -> CompileContext {
    let zone = RelativeName::from_labels(["cluster", "local"]).unwrap();
    CompileContext {
        ttl: 5,
        forward_zones: vec![zone_wire(&zone)],
        primary_zone: zone_wire(&zone),
        clusterset_zone: Box::new([0]),
        slot_negative_ttl: 1,
    }
}

fn controller() -> (Arc<Store>, Controller) {
    let store = Arc::new(Store::new());
    let ctx = context();
    (
        store.clone(),
        Controller::new(
            store,
            ctx,
            ZoneSettings {
                negative_ttl: 5,
                ..ZoneSettings::default()
            },
            RecordOptions::default(),
            Default::default(),
        ),
    )
}

fn types_at(store: &Store, kind: ZoneKind, name: &str) -> Option<Vec<u16>> {
    let name = if name.is_empty() {
        RelativeName::apex()
    } else {
        RelativeName::from_labels(name.split('.')).unwrap()
    };
    store.lookup(&store::key(kind, &name), |l| match l {
        Lookup::NoName => None,
        Lookup::EmptyNonTerminal => Some(vec![]),
        Lookup::Name(a) => Some(a.rrsets().map(|r| r.rtype).collect()),
        Lookup::Addresses(a) => Some(
            [rtype::A, rtype::AAAA]
                .into_iter()
                .filter(|t| !a.entry.addresses(*t).0.is_empty())
                .collect(),
        ),
        Lookup::Ptr(_) => Some(vec![rtype::PTR]),
    })
}

fn headless(name: &str, pods: &[(&str, &str)]) -> Vec<Change> {
    use crate::model::{Endpoint, Port, Protocol, Service, ServiceKind};
    let service = ObjectKey::new("demo", name);
    vec![
        Change::Apply(Object::Service(Service {
            key: service.clone(),
            kind: ServiceKind::Headless,
            ports: vec![],
            publish_not_ready: false,
        })),
        Change::Apply(Object::EndpointSlice(EndpointSlice {
            key: ObjectKey::new("demo", format!("{name}-x")),
            service,
            of: Default::default(),
            endpoints: pods
                .iter()
                .map(|(host, ip)| Endpoint {
                    ip: ip.parse().unwrap(),
                    hostname: (!host.is_empty()).then(|| host.to_string()),
                    ready: true,
                    terminating: false,
                })
                .collect(),
            ports: vec![Port {
                name: "web".into(),
                protocol: Protocol::Tcp,
                port: 80,
            }],
        })),
    ]
}

fn ptr(store: &Store, reversed: &str) -> Option<Vec<u16>> {
    types_at(store, ZoneKind::ReverseV4, reversed)
}

/// Dotted wire name.
fn dotted(wire: &[u8]) -> String {
    let mut labels = Vec::new();
    let mut at = 0;
    while let Some(&len) = wire.get(at).filter(|&&l| l != 0) {
        let label = &wire[at + 1..at + 1 + usize::from(len)];
        labels.push(String::from_utf8_lossy(label).into_owned());
        at += 1 + usize::from(len);
    }
    labels.join(".")
}

/// The targets of a reverse name's PTR records, and whether they come from a pod table.
fn ptr_targets(store: &Store, reversed: &str) -> Option<(bool, Vec<String>)> {
    let name = RelativeName::from_labels(reversed.split('.')).unwrap();
    store.lookup(&store::key(ZoneKind::ReverseV4, &name), |l| match l {
        Lookup::Ptr(p) => Some((
            true,
            vec![format!(
                "{}.{}",
                dotted(&[&[p.label.len() as u8], p.label].concat()),
                dotted(p.suffix)
            )],
        )),
        Lookup::Name(a) => {
            let rrset = a.find(rtype::PTR, ANY_ZONE)?;
            let mut targets = Vec::new();
            let mut rest = rrset.answer;
            // Each record: owner pointer (2), type, class, TTL, RDLENGTH, the target.
            while rest.len() > 12 {
                let rdlen = usize::from(u16::from_be_bytes([rest[10], rest[11]]));
                targets.push(dotted(&rest[12..12 + rdlen]));
                rest = &rest[12 + rdlen..];
            }
            Some((false, targets))
        }
        _ => None,
    })
}

#[test]
fn reverse_names_follow_every_claim() {
    let (store, mut controller) = controller();
    // One pod in a StatefulSet's Service (hostname) and in a second headless Service.
    controller.apply(headless("nginx", &[("web-0", "10.0.0.1")]));
    let web_0 = "web-0.nginx.demo.svc.cluster.local".to_string();
    controller.apply([Change::Synced]);
    assert_eq!(
        ptr_targets(&store, "1.0.0.10"),
        Some((true, vec![web_0.clone()])),
        "one claim: answered from the pod table"
    );
    controller.apply(headless("other", &[("", "10.0.0.1"), ("", "10.0.0.2")]));
    assert_eq!(ptr(&store, "1.0.0.10"), Some(vec![rtype::PTR]));
    assert_eq!(ptr(&store, "2.0.0.10"), Some(vec![rtype::PTR]));
    assert_eq!(
        ptr_targets(&store, "1.0.0.10"),
        Some((false, vec![web_0.clone()])),
        "two claims: compiled, the hostname's name wins"
    );
    assert_eq!(
        ptr_targets(&store, "2.0.0.10"),
        Some((
            true,
            vec!["10-0-0-2.other.demo.svc.cluster.local".to_string()]
        ))
    );
    assert_eq!(ptr(&store, "0.0.10"), Some(vec![]), "empty non-terminal");
    // The pod leaves `other`: its address stays claimed by nginx.
    controller.apply(headless("other", &[("", "10.0.0.2")]));
    assert_eq!(ptr(&store, "1.0.0.10"), Some(vec![rtype::PTR]));
    assert_eq!(ptr_targets(&store, "1.0.0.10"), Some((true, vec![web_0])));
    let ip: IpAddr = "10.0.0.1".parse().unwrap();
    assert!(
        controller.reverse.get(&ip).is_none() && store.ptr_slot(ip).is_some(),
        "back to one claim: the controller keeps nothing for it"
    );
    // The pod is renamed at the same address: the new label is the target.
    controller.apply(headless("nginx", &[("web-5", "10.0.0.1")]));
    assert_eq!(
        ptr_targets(&store, "1.0.0.10"),
        Some((true, vec!["web-5.nginx.demo.svc.cluster.local".to_string()]))
    );
    // Two Services without hostnames: both names.
    controller.apply(headless("third", &[("", "10.0.0.2")]));
    assert_eq!(
        ptr_targets(&store, "2.0.0.10"),
        Some((
            false,
            vec![
                "10-0-0-2.other.demo.svc.cluster.local".to_string(),
                "10-0-0-2.third.demo.svc.cluster.local".to_string()
            ]
        ))
    );
    controller.apply([Change::Delete(
        Kind::Service,
        ObjectKey::new("demo", "third"),
    )]);
    // Deleting both Services removes every reverse name and the empty non-terminals.
    controller.apply([
        Change::Delete(Kind::Service, ObjectKey::new("demo", "nginx")),
        Change::Delete(Kind::Service, ObjectKey::new("demo", "other")),
    ]);
    for name in ["1.0.0.10", "2.0.0.10", "0.0.10", "0.10", "10"] {
        assert_eq!(ptr(&store, name), None, "{name}");
    }
    assert_eq!(types_at(&store, ZoneKind::Forward, "demo.svc"), None);
    assert_eq!(
        types_at(&store, ZoneKind::ReverseV4, ""),
        Some(vec![rtype::SOA, rtype::NS])
    );
}

#[test]
fn a_deleted_services_slot_number_goes_to_the_next_service() {
    let (store, mut controller) = controller();
    controller.apply(headless("nginx", &[("web-0", "10.0.0.1")]));
    controller.apply([Change::Synced]);
    let web_0 = "web-0.nginx.demo.svc.cluster.local".to_string();
    assert_eq!(
        ptr_targets(&store, "1.0.0.10"),
        Some((true, vec![web_0.clone()]))
    );
    controller.apply([Change::Delete(
        Kind::Service,
        ObjectKey::new("demo", "nginx"),
    )]);
    assert_eq!(ptr(&store, "1.0.0.10"), None);
    // db's slot takes the number nginx's had; only db's own address answers through it.
    controller.apply(headless("db", &[("db-0", "10.0.0.7")]));
    assert_eq!(
        ptr_targets(&store, "7.0.0.10"),
        Some((true, vec!["db-0.db.demo.svc.cluster.local".to_string()]))
    );
    assert_eq!(ptr(&store, "1.0.0.10"), None);
    let owner = |controller: &Controller, ip: &str| {
        let slot = store.ptr_slot(ip.parse().unwrap())?;
        controller.slot_owners.get(&slot).map(ToString::to_string)
    };
    assert_eq!(owner(&controller, "10.0.0.7").as_deref(), Some("demo/db"));
    assert_eq!(owner(&controller, "10.0.0.1"), None);
    // nginx back: a new number, its reverse name again.
    controller.apply(headless("nginx", &[("web-0", "10.0.0.1")]));
    assert_eq!(ptr_targets(&store, "1.0.0.10"), Some((true, vec![web_0])));
    assert_eq!(
        owner(&controller, "10.0.0.1").as_deref(),
        Some("demo/nginx")
    );
    assert_eq!(owner(&controller, "10.0.0.7").as_deref(), Some("demo/db"));
}

#[test]
fn a_claim_the_pod_table_would_read_back_differently_stays_listed() {
    let (store, mut controller) = controller();
    // `10-0-0-2` is one endpoint's hostname and the other's dashed address: one name,
    // one table entry flagged as a hostname, but 10.0.0.2's claim is not a hostname's.
    controller.apply(headless(
        "nginx",
        &[("10-0-0-2", "10.0.0.1"), ("", "10.0.0.2")],
    ));
    controller.apply([Change::Synced]);
    let name = "10-0-0-2.nginx.demo.svc.cluster.local".to_string();
    assert_eq!(
        ptr_targets(&store, "1.0.0.10"),
        Some((true, vec![name.clone()]))
    );
    assert_eq!(
        ptr_targets(&store, "2.0.0.10"),
        Some((false, vec![name.clone()]))
    );
    // A second Service without hostnames claims 10.0.0.2: neither claim is a
    // hostname's, so both names answer.
    controller.apply(headless("other", &[("", "10.0.0.2")]));
    assert_eq!(
        ptr_targets(&store, "2.0.0.10"),
        Some((
            false,
            vec![name, "10-0-0-2.other.demo.svc.cluster.local".to_string()]
        ))
    );
}

fn service_in(namespace: &str, name: &str) -> Object {
    use crate::model::ServiceKind;
    Object::Service(Service {
        key: ObjectKey::new(namespace, name),
        kind: ServiceKind::Headless,
        ports: vec![],
        publish_not_ready: false,
    })
}

#[test]
fn pod_names_are_counted_and_go_with_their_service_though_not_indexed() {
    let (store, mut controller) = controller();
    let fixed = controller.stats().names;
    controller.apply(headless(
        "nginx",
        &[("web-0", "10.0.0.1"), ("web-1", "10.0.0.2")],
    ));
    // nginx, web-0, web-1, _tcp and _web._tcp under it, demo.svc; two reverse names and
    // their ancestors 0.0.10, 0.10 and 10.
    assert_eq!(controller.stats().names, fixed + 11);
    assert_eq!(
        store.len(),
        fixed + 11 - 3,
        "web-0, web-1 and _tcp are not indexed"
    );
    assert_eq!(
        types_at(&store, ZoneKind::Forward, "web-1.nginx.demo.svc"),
        Some(vec![rtype::A])
    );
    assert_eq!(
        types_at(&store, ZoneKind::Forward, "_tcp.nginx.demo.svc"),
        Some(vec![])
    );
    assert_eq!(
        types_at(&store, ZoneKind::Forward, "_web._tcp.nginx.demo.svc"),
        Some(vec![rtype::SRV])
    );
    controller.apply([Change::Delete(
        Kind::Service,
        ObjectKey::new("demo", "nginx"),
    )]);
    assert_eq!(
        types_at(&store, ZoneKind::Forward, "web-0.nginx.demo.svc"),
        None
    );
    assert_eq!(types_at(&store, ZoneKind::Forward, "nginx.demo.svc"), None);
    assert_eq!(controller.stats().names, fixed);
    assert_eq!(store.len(), fixed);
}

#[test]
fn a_relist_replaces_one_kind_in_one_namespace() {
    let (store, mut controller) = controller();
    controller.apply(headless("nginx", &[("web-0", "10.0.0.1")]));
    controller.apply(headless("other", &[("", "10.0.0.2")]));
    controller.apply([Change::Apply(service_in("data", "zk"))]);
    assert_eq!(controller.stats().endpoints, 2);
    // The relist of Services in demo no longer has `other`; data's are untouched, and
    // an unchanged nginx is not even republished.
    controller.apply([Change::ReplaceKind {
        kind: Kind::Service,
        namespace: Some("demo".into()),
        objects: vec![service_in("demo", "nginx"), service_in("data", "ignored")],
    }]);
    assert_eq!(controller.stats().services, 2);
    assert!(
        controller
            .services
            .get(&ObjectKey::new("data", "zk"))
            .is_some()
    );
    assert!(
        controller
            .services
            .get(&ObjectKey::new("data", "ignored"))
            .is_none()
    );
    assert_eq!(types_at(&store, ZoneKind::Forward, "other.demo.svc"), None);
    assert_eq!(ptr(&store, "2.0.0.10"), None);
    assert_eq!(
        types_at(&store, ZoneKind::Forward, "web-0.nginx.demo.svc"),
        Some(vec![rtype::A])
    );
    // An empty relist of every namespace's EndpointSlices empties the Services.
    controller.apply([Change::ReplaceKind {
        kind: Kind::EndpointSlice,
        namespace: None,
        objects: vec![],
    }]);
    assert_eq!(controller.stats().endpoints, 0);
    assert_eq!(
        types_at(&store, ZoneKind::Forward, "web-0.nginx.demo.svc"),
        None
    );
    assert!(
        !store.is_ready(),
        "only Synced or ReplaceAll mark the store ready"
    );
}

#[test]
fn a_renamed_pod_moves_its_names() {
    let (store, mut controller) = controller();
    controller.apply(headless("nginx", &[("web-0", "10.0.0.1")]));
    controller.apply(headless("nginx", &[("web-0", "10.0.0.9")]));
    assert_eq!(ptr(&store, "1.0.0.10"), None);
    assert_eq!(ptr(&store, "9.0.0.10"), Some(vec![rtype::PTR]));
    assert_eq!(
        types_at(&store, ZoneKind::Forward, "web-0.nginx.demo.svc"),
        Some(vec![rtype::A])
    );
}

#[test]
fn static_names() {
    let (store, mut controller) = controller();
    controller.apply(headless("nginx", &[("web-0", "10.0.0.1")]));
    controller.apply([Change::Synced]);
    assert_eq!(
        types_at(&store, ZoneKind::Forward, ""),
        Some(vec![rtype::SOA, rtype::NS])
    );
    assert_eq!(
        types_at(&store, ZoneKind::Forward, "dns-version"),
        Some(vec![rtype::TXT])
    );
    assert_eq!(types_at(&store, ZoneKind::Forward, "svc"), Some(vec![]));
    assert_eq!(
        types_at(&store, ZoneKind::ReverseV4, ""),
        Some(vec![rtype::SOA, rtype::NS])
    );
}

#[test]
fn a_named_reverse_zones_apex_outlives_the_names_below_it() {
    let store = Arc::new(Store::new());
    let ctx = context();
    let ten = RelativeName::from_labels(["10"]).unwrap();
    let settings = ZoneSettings {
        negative_ttl: 5,
        ns_addresses: vec![],
        reverse_apexes: vec![(ZoneKind::ReverseV4, ten)],
        ..ZoneSettings::default()
    };
    let mut controller = Controller::new(
        store.clone(),
        ctx,
        settings,
        RecordOptions::default(),
        Default::default(),
    );
    let apex = Some(vec![rtype::SOA, rtype::NS]);
    assert_eq!(ptr(&store, "10"), apex);
    // A pod's reverse name holds up 0.0.10 and 0.10; `10` is the zone's apex, not one of
    // them, and stays when the pod goes.
    controller.apply(headless("nginx", &[("web-0", "10.0.0.1")]));
    assert_eq!(ptr(&store, "0.0.10"), Some(vec![]));
    assert_eq!(ptr(&store, "10"), apex);
    controller.apply([Change::Delete(
        Kind::Service,
        ObjectKey::new("demo", "nginx"),
    )]);
    assert_eq!(ptr(&store, "0.0.10"), None);
    assert_eq!(ptr(&store, "10"), apex);
    assert!(
        store
            .negative_soa(ZoneKind::ReverseV4)
            .is_some_and(|soa| soa.is_some())
    );
}

/// A controller serving `clusterset.local` too, this cluster being `east`.
fn clusterset_controller() -> (Arc<Store>, Controller) {
    let (store, mut controller) = controller();
    let zone = RelativeName::from_labels(["clusterset", "local"]).unwrap();
    controller.serve_clusterset(ClusterSetSettings {
        compile: CompileContext {
            forward_zones: vec![zone_wire(&zone)],
            clusterset_zone: zone_wire(&zone),
            ..context()
        },
        cluster_id: Some("east".into()),
    });
    (store, controller)
}

/// A headless import `db` and one slice of it from `cluster`.
fn import(cluster: &str, pods: &[(&str, &str)]) -> Vec<Change> {
    use crate::model::{ImportKind, ServiceImport, SliceOf};
    let key = ObjectKey::new("demo", "db");
    let mut changes = headless("db", pods);
    let Some(Change::Apply(Object::EndpointSlice(mut slice))) = changes.pop() else {
        unreachable!("headless ends with its slice");
    };
    slice.key = ObjectKey::new("demo", format!("db-{cluster}"));
    slice.of = SliceOf::Import {
        cluster: Some(cluster.into()),
    };
    vec![
        Change::Apply(Object::ServiceImport(ServiceImport {
            key,
            kind: ImportKind::Headless,
            ports: vec![],
        })),
        Change::Apply(Object::EndpointSlice(slice)),
    ]
}

#[test]
fn an_imports_endpoints_are_found_through_their_clusters_pod_table() {
    let (store, mut controller) = clusterset_controller();
    controller.apply(import(
        "west",
        &[("db-0", "10.9.0.1"), ("db-1", "10.9.0.2")],
    ));
    let cs = |name: &str| types_at(&store, ZoneKind::ClusterSet, name);
    assert_eq!(cs("db.demo.svc"), Some(vec![rtype::A]));
    assert_eq!(cs("west.db.demo.svc"), Some(vec![]), "NODATA");
    let pod = store.lookup(
        &store::key(
            ZoneKind::ClusterSet,
            &RelativeName::from_labels(["db-1", "west", "db", "demo", "svc"]).unwrap(),
        ),
        |l| matches!(l, Lookup::Addresses(_)),
    );
    assert!(
        pod,
        "an endpoint's name is in its cluster's pod table, not indexed"
    );
    assert_eq!(cs("db-9.west.db.demo.svc"), None);
    // Its reverse name answers from that table, naming it in the clusterset zone.
    assert_eq!(
        ptr_targets(&store, "2.0.9.10"),
        Some((
            true,
            vec!["db-1.west.db.demo.svc.clusterset.local".to_string()]
        ))
    );
    // A cluster-local name of the same address wins (specification 2.4.3).
    controller.apply(headless("local", &[("x-0", "10.9.0.2")]));
    assert_eq!(
        ptr_targets(&store, "2.0.9.10"),
        Some((false, vec!["x-0.local.demo.svc.cluster.local".to_string()]))
    );
    // The slice moves to another cluster: the old cluster's names go.
    controller.apply(import("central", &[("db-0", "10.9.0.1")]));
    controller.apply([Change::Delete(
        crate::model::Kind::EndpointSlice,
        ObjectKey::new("demo", "db-west"),
    )]);
    assert_eq!(cs("west.db.demo.svc"), None);
    assert_eq!(cs("db-0.central.db.demo.svc"), Some(vec![rtype::A]));
    assert_eq!(
        ptr_targets(&store, "1.0.9.10").map(|(_, t)| t),
        Some(vec![
            "db-0.central.db.demo.svc.clusterset.local".to_string()
        ])
    );
    // The import deleted: nothing of it is left.
    controller.apply([Change::Delete(
        crate::model::Kind::ServiceImport,
        ObjectKey::new("demo", "db"),
    )]);
    assert_eq!(cs("db.demo.svc"), None);
    assert_eq!(cs("db-0.central.db.demo.svc"), None);
    assert_eq!(ptr(&store, "1.0.9.10"), None);
    assert_eq!(
        cs("demo.svc"),
        None,
        "the namespace's empty non-terminal went too"
    );
}

/// How many records of `rtype` a name of the clusterset zone answers.
fn count_at(store: &Store, name: &str, rtype: u16) -> Option<u16> {
    let name = RelativeName::from_labels(name.split('.')).unwrap();
    store.lookup(&store::key(ZoneKind::ClusterSet, &name), |l| match l {
        Lookup::Name(a) => Some(
            a.rrsets()
                .find(|r| r.rtype == rtype)
                .map_or(0, |r| r.ancount),
        ),
        _ => None,
    })
}

#[test]
fn an_imports_own_names_live_with_its_first_cluster_and_follow_it() {
    let (store, mut controller) = clusterset_controller();
    let cs = |name: &str| types_at(&store, ZoneKind::ClusterSet, name);
    controller.apply(import("west", &[("db-0", "10.9.0.1")]));
    assert_eq!(count_at(&store, "db.demo.svc", rtype::A), Some(1));
    assert_eq!(
        count_at(&store, "_web._tcp.db.demo.svc", rtype::SRV),
        Some(1)
    );
    assert_eq!(cs("_tcp.db.demo.svc"), Some(vec![]), "NODATA");
    // The import's own names share west's slot; a name below `_tcp` is not looked up in
    // west's pod table, whose labels are west's endpoints.
    assert_eq!(cs("db-0._tcp.db.demo.svc"), None);
    assert_eq!(cs("db-0.db.demo.svc"), None);
    assert_eq!(cs("db-0.west.db.demo.svc"), Some(vec![rtype::A]));

    // A cluster sorting first: the own names move to its slot, whole.
    controller.apply(import("central", &[("db-5", "10.9.0.5")]));
    assert_eq!(count_at(&store, "db.demo.svc", rtype::A), Some(2));
    assert_eq!(
        count_at(&store, "_web._tcp.db.demo.svc", rtype::SRV),
        Some(2)
    );
    assert_eq!(cs("_tcp.db.demo.svc"), Some(vec![]));
    assert_eq!(cs("db-5._tcp.db.demo.svc"), None);
    assert_eq!(cs("db-5.central.db.demo.svc"), Some(vec![rtype::A]));
    assert_eq!(cs("db-0.west.db.demo.svc"), Some(vec![rtype::A]));

    // It goes: they move back to west, and west's names stay.
    controller.apply([Change::Delete(
        crate::model::Kind::EndpointSlice,
        ObjectKey::new("demo", "db-central"),
    )]);
    assert_eq!(count_at(&store, "db.demo.svc", rtype::A), Some(1));
    assert_eq!(
        count_at(&store, "_web._tcp.db.demo.svc", rtype::SRV),
        Some(1)
    );
    assert_eq!(cs("central.db.demo.svc"), None);
    assert_eq!(cs("db-0.west.db.demo.svc"), Some(vec![rtype::A]));

    // West's slice gone too: no cluster has names, the import has none either (NXDOMAIN,
    // specification 2.4.1), and nothing is left routed to a slot.
    controller.apply([Change::Delete(
        crate::model::Kind::EndpointSlice,
        ObjectKey::new("demo", "db-west"),
    )]);
    assert_eq!(cs("db.demo.svc"), None);
    assert_eq!(cs("_web._tcp.db.demo.svc"), None);
    assert_eq!(cs("_tcp.db.demo.svc"), None);
    assert_eq!(cs("db-0.west.db.demo.svc"), None);
    let names = store.names(ZoneKind::ClusterSet);
    assert!(
        names
            .iter()
            .all(|name| !name.ends_with(b"\x02db\x04demo\x03svc")),
        "no route of the import is left: {names:?}"
    );
}
