//! The fast path against a reference: generated queries (names that exist, do not exist,
//! empty non-terminals, mixed case, every query type, with and without EDNS, odd sizes,
//! UDP and TCP) are answered by the server's responder, and each response, parsed by
//! hickory-proto, must say what a plain hickory-proto-built response says: same RCODE,
//! flags, sections, TTLs, EDNS.
//!
//! The reference shares only the record model with the server (the `records` and
//! `clusterset_records` functions: which records a Service or a ServiceImport has is the
//! specification, tested on its own); it joins objects,
//! indexes names, picks the answer, builds the message and sizes it with hickory-proto, with
//! none of the server's encoding, compression, store, zone matching or truncation code.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::str::FromStr;

use headless_dns::Config;
use headless_dns::controller::clusterset_records::{self, ClusterSlices, LocalCluster};
use headless_dns::controller::records::{self, PtrSource, RecordOptions};
use headless_dns::controller::zone_records;
use headless_dns::dns::name::RelativeName;
use headless_dns::dns::rdata::{NameRecords, RData, RrSet, Target};
use headless_dns::dns::wire::rtype;
use headless_dns::embed::Core;
use headless_dns::model::{
    Change, EndpointSlice, Object, ObjectKey, Service, ServiceImport, SliceOf, StatefulSet,
};
use headless_dns::serve::answer::{Transport, UdpTruncation};
use headless_dns::source::manifests::ManifestSet;
use hickory_net::proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_net::proto::rr::rdata::{A, AAAA, CNAME, NS, PTR, SOA, SRV, TXT};
use hickory_net::proto::rr::{self, DNSClass, Name, Record, RecordType};
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestRunner};

use crate::support::demo_manifests;

const ZONES: [&str; 2] = ["cluster.local", "sts.example.internal"];
const CLUSTERSET_ZONE: &str = "clusterset.local";
// Three different TTLs, so that using one where another belongs shows.
const TTL: u32 = 30;
const NEGATIVE_TTL: u32 = 7;
const SLOT_NEGATIVE_TTL: u32 = 1;
const MAX_UDP: u16 = 1232;

/// What a reference name holds.
enum Node {
    EmptyNonTerminal,
    Records(NameRecords),
}

/// Which table a zone's names are in.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
enum Table {
    Forward,
    ReverseV4,
    ReverseV6,
    ClusterSet,
}

struct Reference {
    /// Lowercase relative name text (`web-0.nginx.demo.svc`, `""` for the apex) per table.
    names: HashMap<(Table, String), Node>,
    /// (zone, table), forward zones first.
    zones: Vec<(Name, Table)>,
}

fn relative_text(name: &RelativeName) -> String {
    name.labels()
        .map(|l| String::from_utf8_lossy(l).to_ascii_lowercase())
        .collect::<Vec<_>>()
        .join(".")
}

fn name_in(relative: &RelativeName, zone: &Name) -> Name {
    let labels: Vec<&[u8]> = relative.labels().collect();
    let relative = Name::from_labels(labels).expect("relative name");
    relative.append_domain(zone).expect("fits 255 octets")
}

impl Reference {
    /// The reference of `objects`, its SOA serial `serial` (the server's own: it follows
    /// the clock).
    fn new(objects: &[Object], serial: u32) -> Self {
        let mut services: BTreeMap<ObjectKey, &Service> = BTreeMap::new();
        let mut slices: BTreeMap<ObjectKey, Vec<&EndpointSlice>> = BTreeMap::new();
        let mut legacy: BTreeMap<ObjectKey, Vec<&EndpointSlice>> = BTreeMap::new();
        let mut sets: BTreeMap<ObjectKey, Vec<&StatefulSet>> = BTreeMap::new();
        let mut imports: BTreeMap<ObjectKey, &ServiceImport> = BTreeMap::new();
        // By import, then cluster (`None`: this cluster's own), in slice-name order.
        let mut imported: BTreeMap<ObjectKey, BTreeMap<Option<String>, Vec<&EndpointSlice>>> =
            BTreeMap::new();
        let mut local_id: Option<String> = None;
        let mut sorted: Vec<&Object> = objects.iter().collect();
        sorted.sort_by(|a, b| a.key().cmp(b.key()));
        for object in sorted {
            match object {
                Object::Service(s) => {
                    services.insert(s.key.clone(), s);
                }
                Object::EndpointSlice(s) => match &s.of {
                    SliceOf::Service => slices.entry(s.service.clone()).or_default().push(s),
                    SliceOf::Import { cluster } => imported
                        .entry(s.service.clone())
                        .or_default()
                        .entry(cluster.as_deref().map(str::to_owned))
                        .or_default()
                        .push(s),
                },
                Object::Endpoints { service, subsets } => {
                    legacy.insert(service.clone(), subsets.iter().collect());
                }
                Object::StatefulSet(s) => sets
                    .entry(ObjectKey::new(&s.key.namespace, &s.service_name))
                    .or_default()
                    .push(s),
                Object::ServiceImport(i) => {
                    imports.insert(i.key.clone(), i);
                }
                Object::ClusterProperty(p) => local_id = Some(p.value.to_string()),
            }
        }
        let mut names = HashMap::new();
        let mut reverse: BTreeMap<IpAddr, Vec<PtrSource>> = BTreeMap::new();
        let options = RecordOptions {
            ordinal_slots: true,
            publish_unready_pod_names: false,
        };
        for (key, service) in &services {
            let groups = match slices.get(key) {
                Some(s) if !s.is_empty() => s.clone(),
                _ => legacy.get(key).cloned().unwrap_or_default(),
            };
            let sets = sets.get(key).cloned().unwrap_or_default();
            let Ok(built) = records::service_records(service, &groups, &sets, options) else {
                continue;
            };
            for (ip, source) in built.reverse {
                reverse.entry(ip).or_default().push(source);
            }
            for name in built.names {
                names.insert(
                    (Table::Forward, relative_text(&name.name)),
                    Node::Records(name),
                );
            }
        }
        for (key, import) in &imports {
            // Clusters by id: this cluster's own slices under its id.
            let mut by_cluster: BTreeMap<String, Vec<&EndpointSlice>> = BTreeMap::new();
            for (cluster, list) in imported.get(key).into_iter().flatten() {
                let Some(id) = cluster.clone().or_else(|| local_id.clone()) else {
                    continue;
                };
                let slot = by_cluster.entry(id).or_default();
                slot.extend(list.iter().copied());
                slot.sort_by(|a, b| a.key.cmp(&b.key));
            }
            let clusters: Vec<ClusterSlices> = by_cluster
                .iter()
                .map(|(cluster, slices)| ClusterSlices { cluster, slices })
                .collect();
            let local_sets = sets.get(key).cloned().unwrap_or_default();
            let local = local_id.as_deref().map(|cluster| LocalCluster {
                cluster,
                stateful_sets: &local_sets,
            });
            let Ok(built) = clusterset_records::import_records(import, &clusters, local, options)
            else {
                continue;
            };
            for (ip, source) in built.reverse {
                reverse.entry(ip).or_default().push(source);
            }
            for name in built.names {
                names.insert(
                    (Table::ClusterSet, relative_text(&name.name)),
                    Node::Records(name),
                );
            }
        }
        for (ip, sources) in reverse {
            let (clusterset, targets) = records::ptr_answer(sources.iter());
            let table = if ip.is_ipv4() {
                Table::ReverseV4
            } else {
                Table::ReverseV6
            };
            // hickory's own reverse name, less `in-addr.arpa` / `ip6.arpa`.
            let full = Name::from(ip);
            let relative: Vec<String> = full
                .iter()
                .take(usize::from(full.num_labels()) - 2)
                .map(|l| String::from_utf8_lossy(l).into_owned())
                .collect();
            let name = RelativeName::from_labels(relative.iter().map(String::as_str))
                .expect("a reverse name");
            let rrset = RrSet {
                rtype: rtype::PTR,
                records: targets
                    .into_iter()
                    .map(|t| {
                        RData::Ptr(if clusterset {
                            Target::ClusterSet(t)
                        } else {
                            Target::Primary(t)
                        })
                    })
                    .collect(),
                additional: vec![],
            };
            names.insert(
                (table, relative_text(&name)),
                Node::Records(NameRecords {
                    name,
                    rrsets: vec![rrset],
                    slot: false,
                }),
            );
        }
        for records in zone_records::forward_static_records(NEGATIVE_TTL, &[], serial) {
            names.insert(
                (Table::Forward, relative_text(&records.name)),
                Node::Records(records),
            );
        }
        for records in zone_records::clusterset_static_records(NEGATIVE_TTL, &[], serial) {
            names.insert(
                (Table::ClusterSet, relative_text(&records.name)),
                Node::Records(records),
            );
        }
        for table in [Table::ReverseV4, Table::ReverseV6] {
            names.insert(
                (table, String::new()),
                Node::Records(zone_records::reverse_apex_records(
                    RelativeName::apex(),
                    NEGATIVE_TTL,
                    serial,
                )),
            );
        }
        // Every ancestor of a name that is not a name itself is an empty non-terminal.
        let mut ancestors = BTreeSet::new();
        for (table, text) in names.keys() {
            let labels: Vec<&str> = text.split('.').filter(|l| !l.is_empty()).collect();
            for skip in 1..labels.len() {
                ancestors.insert((*table, labels[skip..].join(".")));
            }
        }
        for key in ancestors {
            names.entry(key).or_insert(Node::EmptyNonTerminal);
        }
        let mut zones: Vec<(Name, Table)> = ZONES
            .iter()
            .map(|z| {
                (
                    Name::from_ascii(format!("{z}.")).expect("zone"),
                    Table::Forward,
                )
            })
            .collect();
        zones.push((
            Name::from_ascii("in-addr.arpa.").expect("zone"),
            Table::ReverseV4,
        ));
        zones.push((
            Name::from_ascii("ip6.arpa.").expect("zone"),
            Table::ReverseV6,
        ));
        zones.push((
            Name::from_ascii(format!("{CLUSTERSET_ZONE}.")).expect("zone"),
            Table::ClusterSet,
        ));
        Self { names, zones }
    }

    /// Names worth asking about: every name and non-terminal in every zone.
    fn known_names(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (table, text) in self.names.keys() {
            for (zone, zone_table) in &self.zones {
                if zone_table == table {
                    let zone = zone.to_ascii();
                    out.push(if text.is_empty() {
                        zone
                    } else {
                        format!("{text}.{zone}")
                    });
                }
            }
        }
        out.sort();
        out
    }

    fn rdata(&self, data: &RData, zone: &Name) -> rr::RData {
        let primary = &self.zones[0].0;
        let target = |t: &Target| match t {
            Target::InZone(n) => name_in(n, zone),
            Target::Primary(n) => name_in(n, primary),
            Target::ClusterSet(n) => name_in(n, &self.zone_of_table(Table::ClusterSet)),
        };
        match data {
            RData::A(ip) => rr::RData::A(A(*ip)),
            RData::Aaaa(ip) => rr::RData::AAAA(AAAA(*ip)),
            RData::Srv {
                priority,
                weight,
                port,
                target,
            } => rr::RData::SRV(SRV::new(*priority, *weight, *port, name_in(target, zone))),
            RData::Ptr(t) => rr::RData::PTR(PTR(target(t))),
            RData::Cname(text) => {
                rr::RData::CNAME(CNAME(Name::from_ascii(text).expect("CNAME target")))
            }
            RData::Txt(text) => rr::RData::TXT(TXT::new(vec![text.clone()])),
            RData::Ns(t) => rr::RData::NS(NS(target(t))),
            RData::Soa {
                mname,
                rname,
                serial,
                refresh,
                retry,
                expire,
                minimum,
            } => rr::RData::SOA(SOA::new(
                target(mname),
                target(rname),
                *serial,
                *refresh as i32,
                *retry as i32,
                *expire as i32,
                *minimum,
            )),
        }
    }

    /// The (first) zone of `table`.
    fn zone_of_table(&self, table: Table) -> Name {
        self.zones
            .iter()
            .find(|(_, t)| *t == table)
            .map(|(zone, _)| zone.clone())
            .expect("every table has a zone")
    }

    /// The zone's SOA for a negative answer: TTL and MINIMUM are the negative TTL.
    fn negative_soa(&self, zone: &Name, table: Table, ttl: u32) -> Record {
        let Some(Node::Records(apex)) = self.names.get(&(table, String::new())) else {
            panic!("every zone has an apex");
        };
        let soa = apex.rrsets[0].records[0].clone();
        let RData::Soa {
            mname,
            rname,
            serial,
            refresh,
            retry,
            expire,
            ..
        } = soa
        else {
            panic!("the apex's first record is its SOA");
        };
        let soa = RData::Soa {
            mname,
            rname,
            serial,
            refresh,
            retry,
            expire,
            minimum: ttl,
        };
        Record::from_rdata(zone.clone(), ttl, self.rdata(&soa, zone))
    }

    /// The full response (before any size limit) to `query`, and the limit that applies.
    fn respond(&self, query: &Message, transport: Transport) -> (Message, usize, &'static str) {
        let mut response = Message::new(query.metadata.id, MessageType::Response, OpCode::Query);
        response.metadata.recursion_desired = query.metadata.recursion_desired;
        response.metadata.checking_disabled = query.metadata.checking_disabled;
        response.queries = query.queries.clone();
        if let Some(edns) = &query.edns {
            let mut opt = Edns::new();
            opt.set_max_payload(MAX_UDP);
            opt.set_dnssec_ok(edns.flags().dnssec_ok);
            response.edns = Some(opt);
        }
        let limit = match (transport, &query.edns) {
            (Transport::Tcp | Transport::Tls | Transport::Https, _) => 65535,
            (Transport::Udp, None) => 512,
            (Transport::Udp, Some(e)) => usize::from(e.max_payload().clamp(512, MAX_UDP)),
        };
        let question = &query.queries[0];
        let asked = question.name.to_lowercase();
        let Some((zone, table)) = self.zones.iter().find(|(zone, _)| zone.zone_of(&asked)) else {
            response.metadata.response_code = ResponseCode::Refused;
            return (response, limit, "refused");
        };
        let qtype = u16::from(question.query_type);
        if question.query_class != DNSClass::IN || qtype == 252 || qtype == 251 {
            response.metadata.response_code = ResponseCode::Refused;
            return (response, limit, "refused");
        }
        response.metadata.authoritative = true;
        let relative_labels = usize::from(asked.num_labels() - zone.num_labels());
        let text = asked
            .iter()
            .take(relative_labels)
            .map(|l| String::from_utf8_lossy(l).into_owned())
            .collect::<Vec<_>>()
            .join(".");
        // The question's own zone, as asked: owner names are the question's.
        let asked_zone = question.name.trim_to(zone.num_labels() as usize);
        let negative = |response: &mut Message, rcode, ttl: u32| {
            response.metadata.response_code = rcode;
            response
                .authorities
                .push(self.negative_soa(&asked_zone, *table, ttl));
        };
        let branch = match self.names.get(&(*table, text)) {
            None => {
                negative(&mut response, ResponseCode::NXDomain, NEGATIVE_TTL);
                "nxdomain"
            }
            Some(Node::EmptyNonTerminal) => {
                negative(&mut response, ResponseCode::NoError, NEGATIVE_TTL);
                "empty non-terminal"
            }
            Some(Node::Records(records)) => {
                let rrset = if qtype == 255 {
                    records.rrsets.first()
                } else {
                    // An alias answers every type with its CNAME (RFC 1034 3.6.2).
                    let find = |t: u16| records.rrsets.iter().find(|r| r.rtype == t);
                    find(qtype).or_else(|| find(rtype::CNAME))
                };
                match rrset {
                    None if records.slot => {
                        negative(&mut response, ResponseCode::NoError, SLOT_NEGATIVE_TTL);
                        "slot NODATA"
                    }
                    None => {
                        negative(&mut response, ResponseCode::NoError, NEGATIVE_TTL);
                        "NODATA"
                    }
                    Some(rrset) if rrset.rtype == rtype::CNAME && matches!(qtype, 1 | 28) => {
                        response.answers.push(Record::from_rdata(
                            question.name.clone(),
                            TTL,
                            self.rdata(&rrset.records[0], &asked_zone),
                        ));
                        self.follow(&mut response, &rrset.records[0], qtype)
                    }
                    Some(rrset) => {
                        for data in &rrset.records {
                            response.answers.push(Record::from_rdata(
                                question.name.clone(),
                                TTL,
                                self.rdata(data, &asked_zone),
                            ));
                        }
                        for (owner, data) in &rrset.additional {
                            response.additionals.push(Record::from_rdata(
                                name_in(owner, &asked_zone),
                                TTL,
                                self.rdata(data, &asked_zone),
                            ));
                        }
                        match rrset.rtype {
                            rtype::CNAME => "CNAME",
                            rtype::PTR if *table == Table::ReverseV4 => "PTR v4",
                            rtype::PTR => "PTR v6",
                            rtype::SRV => "SRV",
                            _ => "answer",
                        }
                    }
                }
            }
        };
        (response, limit, branch)
    }
}

impl Reference {
    /// RFC 1034 4.3.2: an alias whose target is in a served zone is followed for address
    /// queries, up to eight more names; a target that is not there, or has no address of
    /// the type, makes the answer negative with the target zone's SOA.
    fn follow(&self, response: &mut Message, alias: &RData, qtype: u16) -> &'static str {
        let RData::Cname(text) = alias else {
            return "CNAME";
        };
        let mut target = Name::from_ascii(text).expect("CNAME target").to_lowercase();
        for _ in 0..8 {
            let Some((zone, table)) = self.zones.iter().find(|(z, _)| z.zone_of(&target)) else {
                return "CNAME out of zone";
            };
            let relative_labels = usize::from(target.num_labels() - zone.num_labels());
            let text = target
                .iter()
                .take(relative_labels)
                .map(|l| String::from_utf8_lossy(l).into_owned())
                .collect::<Vec<_>>()
                .join(".");
            let target_zone = target.trim_to(zone.num_labels() as usize);
            let mut negative = |rcode, ttl| {
                response.metadata.response_code = rcode;
                response
                    .authorities
                    .push(self.negative_soa(&target_zone, *table, ttl));
            };
            let records = match self.names.get(&(*table, text)) {
                None => {
                    negative(ResponseCode::NXDomain, NEGATIVE_TTL);
                    return "CNAME to nothing";
                }
                Some(Node::EmptyNonTerminal) => {
                    negative(ResponseCode::NoError, NEGATIVE_TTL);
                    return "CNAME to NODATA";
                }
                Some(Node::Records(records)) => records,
            };
            let find = |t: u16| records.rrsets.iter().find(|r| r.rtype == t);
            if let Some(rrset) = find(qtype) {
                for data in &rrset.records {
                    response.answers.push(Record::from_rdata(
                        target.clone(),
                        TTL,
                        self.rdata(data, &target_zone),
                    ));
                }
                return "CNAME followed";
            }
            let Some(next) = find(rtype::CNAME) else {
                let ttl = if records.slot {
                    SLOT_NEGATIVE_TTL
                } else {
                    NEGATIVE_TTL
                };
                negative(ResponseCode::NoError, ttl);
                return "CNAME to NODATA";
            };
            let data = &next.records[0];
            response.answers.push(Record::from_rdata(
                target.clone(),
                TTL,
                self.rdata(data, &target_zone),
            ));
            let RData::Cname(next) = data else {
                return "CNAME";
            };
            target = Name::from_ascii(next).expect("CNAME target").to_lowercase();
        }
        "CNAME chain cut"
    }
}

/// A record as comparable text (DNS names compare case-insensitively).
fn render(records: &[Record]) -> Vec<String> {
    records
        .iter()
        .map(|r| {
            format!(
                "{} {} {} {} {}",
                r.name,
                r.dns_class,
                r.ttl,
                r.record_type(),
                r.data
            )
            .to_ascii_lowercase()
        })
        .collect()
}

/// One generated query.
#[derive(Debug, Clone)]
struct Case {
    name: String,
    flip_case: Vec<bool>,
    qtype: u16,
    qclass: u16,
    edns: Option<(u16, bool)>,
    rd: bool,
    cd: bool,
    tcp: bool,
}

fn qtypes() -> impl Strategy<Value = u16> {
    prop_oneof![
        8 => prop::sample::select(vec![1u16, 28, 33, 12, 5, 16, 6, 2, 255, 15, 99, 252, 251, 65535]),
        1 => any::<u16>().prop_filter("not OPT", |t| *t != 41),
    ]
}

fn names(known: Vec<String>) -> impl Strategy<Value = String> {
    let base = prop::sample::select(known);
    prop_oneof![
        6 => base.clone(),
        // One label more: mostly NXDOMAIN, sometimes under a name with records.
        2 => (base.clone(), prop::sample::select(vec!["x", "web-9", "_tcp", "db-100", "1"]))
            .prop_map(|(name, label)| format!("{label}.{name}")),
        1 => prop::sample::select(vec![
            "example.com.".to_string(),
            "local.".to_string(),
            ".".to_string(),
            "svc.cluster.local.".to_string(),
            "10.in-addr.arpa.".to_string(),
            "99.99.99.10.in-addr.arpa.".to_string(),
        ]),
    ]
}

fn cases(known: Vec<String>) -> impl Strategy<Value = Case> {
    (
        names(known),
        prop::collection::vec(any::<bool>(), 64),
        qtypes(),
        prop_oneof![10 => Just(1u16), 1 => Just(3u16), 1 => Just(255u16)],
        prop::option::of((
            prop_oneof![
                Just(512u16),
                Just(1232),
                Just(4096),
                Just(65535),
                Just(0),
                Just(100),
                600u16..1000,
                0u16..2000
            ],
            any::<bool>(),
        )),
        any::<bool>(),
        any::<bool>(),
        prop::bool::weighted(0.2),
    )
        .prop_map(|(name, flip_case, qtype, qclass, edns, rd, cd, tcp)| Case {
            name,
            flip_case,
            qtype,
            qclass,
            edns,
            rd,
            cd,
            tcp,
        })
}

fn encode(case: &Case) -> Vec<u8> {
    let name: String = case
        .name
        .chars()
        .zip(case.flip_case.iter().cycle())
        .map(|(c, flip)| if *flip { c.to_ascii_uppercase() } else { c })
        .collect();
    let mut message = Message::new(0x5A5A, MessageType::Query, OpCode::Query);
    message.metadata.recursion_desired = case.rd;
    message.metadata.checking_disabled = case.cd;
    let mut query = Query::query(
        Name::from_str(&name).expect("generated name"),
        RecordType::from(case.qtype),
    );
    query.set_query_class(DNSClass::from(case.qclass));
    message.add_query(query);
    if let Some((_, dnssec_ok)) = case.edns {
        let mut edns = Edns::new();
        edns.set_dnssec_ok(dnssec_ok);
        message.edns = Some(edns);
    }
    let mut bytes = message.to_vec().expect("query encodes");
    if let Some((payload, _)) = case.edns {
        // hickory raises a payload under 512 to 512; put the raw value in the OPT's CLASS
        // (the OPT, without options, is the last 11 bytes).
        let at = bytes.len() - 8;
        bytes[at..at + 2].copy_from_slice(&payload.to_be_bytes());
    }
    bytes
}

/// How often each kind of response came up, so the test can show it covered them all.
type Branches = std::cell::RefCell<BTreeMap<&'static str, u32>>;

fn check(
    reference: &Reference,
    core: &Core,
    case: &Case,
    branches: &Branches,
    partial: bool,
) -> Result<(), TestCaseError> {
    let query_bytes = encode(case);
    let query = Message::from_vec(&query_bytes).expect("our own query parses");
    let transport = if case.tcp {
        Transport::Tcp
    } else {
        Transport::Udp
    };
    let mut out = Vec::new();
    let outcome = core.responder.respond(&query_bytes, transport, &mut out);
    prop_assert!(outcome.is_some(), "every well-formed query is answered");
    // Over TCP nothing is cut: the fast path's full response, for the size decisions.
    let mut full = Vec::new();
    core.responder
        .respond(&query_bytes, Transport::Tcp, &mut full);
    let fast = Message::from_vec(&out)
        .map_err(|e| TestCaseError::fail(format!("fast path response does not parse: {e}")))?;
    let (expected, limit, branch) = reference.respond(&query, transport);
    prop_assert!(
        out.len() <= limit,
        "{} bytes over a {limit}-byte limit",
        out.len()
    );
    // The question's bytes as sent, case included.
    let question_end = 12 + query.queries[0].name.len() + 4;
    prop_assert_eq!(&out[12..question_end], &query_bytes[12..question_end]);

    let (f, e) = (&fast.metadata, &expected.metadata);
    prop_assert_eq!(f.id, e.id);
    prop_assert_eq!(f.message_type, MessageType::Response);
    prop_assert_eq!(f.op_code, OpCode::Query);
    prop_assert_eq!(f.response_code, e.response_code);
    prop_assert_eq!(f.authoritative, e.authoritative);
    prop_assert_eq!(f.recursion_desired, e.recursion_desired);
    prop_assert!(!f.recursion_available);
    prop_assert_eq!(f.checking_disabled, e.checking_disabled);
    prop_assert_eq!(&fast.queries, &expected.queries);
    match (&fast.edns, &expected.edns) {
        (None, None) => {}
        (Some(f), Some(e)) => {
            prop_assert_eq!(f.max_payload(), e.max_payload());
            prop_assert_eq!(f.version(), 0);
            prop_assert_eq!(f.flags().dnssec_ok, e.flags().dnssec_ok);
        }
        (f, e) => prop_assert!(false, "EDNS {f:?} where the reference has {e:?}"),
    }
    prop_assert_eq!(render(&fast.authorities), render(&expected.authorities));

    // Does the answer section fit? hickory writes owners as pointers to the question and
    // SRV targets uncompressed, as the fast path does, so the lengths agree exactly.
    let mut answers_only = expected.clone();
    answers_only.additionals.clear();
    let answers_len = answers_only
        .to_vec()
        .map_err(|e| TestCaseError::fail(e.to_string()))?
        .len();
    let count = |label: &'static str| *branches.borrow_mut().entry(label).or_default() += 1;
    count(branch);
    if case.tcp {
        count("TCP");
    }
    if let Some((payload, _)) = case.edns {
        count(match payload {
            0..512 => "EDNS under 512",
            512..=1232 => "EDNS 512-1232",
            _ => "EDNS over 1232",
        });
    }
    prop_assert_eq!(
        f.truncation,
        answers_len > limit,
        "TC for a {}-byte answer section within {}",
        answers_len,
        limit
    );
    if f.truncation {
        count("TC");
        prop_assert!(fast.additionals.is_empty());
        // The reference's answers that fit, whole and in order (none when not partial).
        let mut kept = expected.clone();
        kept.additionals.clear();
        while !kept.answers.is_empty()
            && (!partial
                || kept
                    .to_vec()
                    .map_err(|e| TestCaseError::fail(e.to_string()))?
                    .len()
                    > limit)
        {
            kept.answers.pop();
        }
        if !kept.answers.is_empty() {
            count("TC partial");
        }
        prop_assert_eq!(render(&fast.answers), render(&kept.answers));
    } else {
        prop_assert_eq!(render(&fast.answers), render(&expected.answers));
        // The additional section is optional (RFC 2181 9): all of it when it fits, else
        // none of it.
        let additionals = render(&fast.additionals);
        if !expected.additionals.is_empty() && full.len() > limit {
            count("additional left out");
            prop_assert!(additionals.is_empty());
        } else {
            prop_assert_eq!(additionals, render(&expected.additionals));
        }
    }
    Ok(())
}

/// Objects the demo lacks, so every branch is reached: answers between 512 and 1232 bytes
/// (40 A records; 12 SRV targets with their addresses), a StatefulSet whose ordinals
/// start at 3 with pods missing and not ready, and addresses two Services claim.
fn edge_objects() -> Vec<Object> {
    use headless_dns::model::{Endpoint, Port, Protocol, ServiceKind};
    let mut out = Vec::new();
    let port = Port {
        name: "web".into(),
        protocol: Protocol::Tcp,
        port: 80,
    };
    let mut add = |name: &str, replicas: u32, start: u32, pods: &[(u32, bool)], base: u32| {
        let key = ObjectKey::new("edge", name);
        out.push(Object::Service(Service {
            key: key.clone(),
            kind: ServiceKind::Headless,
            ports: vec![port.clone()],
            publish_not_ready: false,
        }));
        out.push(Object::StatefulSet(StatefulSet {
            key: key.clone(),
            service_name: name.into(),
            replicas,
            ordinal_start: start,
        }));
        out.push(Object::EndpointSlice(EndpointSlice {
            key: ObjectKey::new("edge", format!("{name}-x")),
            service: key,
            of: Default::default(),
            endpoints: pods
                .iter()
                .map(|(ordinal, ready)| Endpoint {
                    ip: IpAddr::V4(std::net::Ipv4Addr::from(base + ordinal)),
                    hostname: Some(format!("{name}-{ordinal}")),
                    ready: *ready,
                    terminating: false,
                })
                .collect(),
            ports: vec![port.clone()],
        }));
    };
    let all = |n: u32| (0..n).map(|i| (i, true)).collect::<Vec<_>>();
    add("mid", 40, 0, &all(40), 0x0a63_0000);
    add("srv12", 12, 0, &all(12), 0x0a63_0100);
    add(
        "slots",
        5,
        3,
        &[(3, true), (4, false), (6, true)],
        0x0a63_0200,
    );
    // Addresses claimed twice: `twin` names the first pods of `mid` with hostnames of its
    // own (two PTR targets), `plain` two pods of `srv12` without hostnames (the hostname's
    // name wins). Reverse names answered from one pod table elsewhere, compiled here.
    add("twin", 3, 0, &all(3), 0x0a63_0000);
    let plain = ObjectKey::new("edge", "plain");
    out.push(Object::Service(Service {
        key: plain.clone(),
        kind: ServiceKind::Headless,
        ports: vec![],
        publish_not_ready: false,
    }));
    out.push(Object::EndpointSlice(EndpointSlice {
        key: ObjectKey::new("edge", "plain-x"),
        service: plain,
        of: Default::default(),
        endpoints: (0..2)
            .map(|i| Endpoint {
                ip: IpAddr::V4(std::net::Ipv4Addr::from(0x0a63_0100 + i)),
                hostname: None,
                ready: true,
                terminating: false,
            })
            .collect(),
        ports: vec![],
    }));
    // Aliases (ExternalName Services) into the served zones, followed for A and AAAA: to a
    // pod, to a Service's addresses, through another alias, to nothing, to an ordinal slot
    // without its pod, into the other zone, to themselves, and out of every zone.
    // A headless import over two clusters, 20 endpoints each (some named by address):
    // clusterset answers between 512 and 1232 bytes, SRV targets two labels down.
    let wide = ObjectKey::new("edge", "wide");
    out.push(Object::ServiceImport(ServiceImport {
        key: wide.clone(),
        kind: headless_dns::model::ImportKind::Headless,
        ports: vec![],
    }));
    for (n, cluster) in ["east", "west"].into_iter().enumerate() {
        out.push(Object::EndpointSlice(EndpointSlice {
            key: ObjectKey::new("edge", format!("wide-{cluster}")),
            service: wide.clone(),
            of: SliceOf::Import {
                cluster: Some(cluster.into()),
            },
            endpoints: (0..20u32)
                .map(|i| Endpoint {
                    ip: IpAddr::V4(std::net::Ipv4Addr::from(0x0a62_0000 + (n as u32) * 256 + i)),
                    hostname: (i % 5 != 4).then(|| format!("wide-{i}")),
                    ready: i != 7,
                    terminating: false,
                })
                .collect(),
            ports: vec![port.clone()],
        }));
    }
    for (name, target) in [
        ("alias-pod", "mid-0.mid.edge.svc.cluster.local."),
        ("alias-svc", "srv12.edge.svc.cluster.local."),
        ("alias-chain", "alias-pod.edge.svc.cluster.local."),
        ("alias-missing", "nobody.edge.svc.cluster.local."),
        ("alias-slot", "slots-5.slots.edge.svc.cluster.local."),
        ("alias-zone", "mid-1.mid.edge.svc.sts.example.internal."),
        ("alias-loop", "alias-loop.edge.svc.cluster.local."),
        ("alias-ext", "db.example.com."),
    ] {
        out.push(Object::Service(Service {
            key: ObjectKey::new("edge", name),
            kind: ServiceKind::ExternalName(target.into()),
            ports: vec![],
            publish_not_ready: false,
        }));
    }
    out
}

#[test]
fn the_fast_path_answers_what_hickory_would() {
    let options = headless_dns::source::convert::ConvertOptions {
        multicluster: true,
        ..Default::default()
    };
    let (_, mut objects) =
        ManifestSet::load_with(demo_manifests(), options).expect("demo manifests load");
    objects.extend(edge_objects());
    let config = Config {
        clusterset_zone: Some(headless_dns::config::parse_zone(CLUSTERSET_ZONE).expect("zone")),
        zones: ZONES
            .iter()
            .map(|z| headless_dns::config::parse_zone(z).expect("zone"))
            .collect(),
        ttl: TTL,
        negative_ttl: NEGATIVE_TTL,
        slot_negative_ttl: SLOT_NEGATIVE_TTL,
        max_udp_size: MAX_UDP,
        ..Config::default()
    };
    let mut core = Core::new(&config);
    core.controller.apply([Change::ReplaceAll(objects.clone())]);
    let reference = Reference::new(&objects, core.store.serial());
    let known = reference.known_names();
    assert!(
        known.len() > 400,
        "the demo has names to ask: {}",
        known.len()
    );
    let clusterset = known
        .iter()
        .filter(|n| n.ends_with(".clusterset.local."))
        .count();
    assert!(clusterset > 50, "clusterset names to ask: {clusterset}");

    let mut runner = TestRunner::new(ProptestConfig {
        cases: 4000,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    let branches = Branches::default();
    let result = runner.run(&cases(known.clone()), |case| {
        check(&reference, &core, &case, &branches, true)
    });
    if let Err(error) = result {
        panic!("{error}");
    }
    // And every known name once, for every common type, plainly.
    for name in &known {
        for qtype in [1u16, 28, 33, 12, 16, 6, 2, 255] {
            let case = Case {
                name: name.clone(),
                flip_case: vec![false],
                qtype,
                qclass: 1,
                edns: Some((1232, false)),
                rd: true,
                cd: false,
                tcp: false,
            };
            if let Err(error) = check(&reference, &core, &case, &branches, true) {
                panic!("{case:?}: {error}");
            }
        }
    }
    // Every size around the limits, for the answers that cross them.
    for (name, qtype) in [
        ("_web._tcp.srv12.edge.svc.cluster.local.", 33u16),
        ("srv12.edge.svc.sts.example.internal.", 1),
        ("mid.edge.svc.cluster.local.", 1),
        ("_web._tcp.nginx.demo.svc.cluster.local.", 33),
    ] {
        for payload in (0..1400u16).step_by(8) {
            let case = Case {
                name: name.into(),
                flip_case: vec![true, false, false],
                qtype,
                qclass: 1,
                edns: Some((payload, false)),
                rd: false,
                cd: true,
                tcp: false,
            };
            if let Err(error) = check(&reference, &core, &case, &branches, true) {
                panic!("{case:?}: {error}");
            }
        }
    }
    // `--udp-truncation empty`: an answer that does not fit holds no record at all.
    let mut empty = Core::new(&Config {
        udp_truncation: UdpTruncation::Empty,
        ..config.clone()
    });
    empty
        .controller
        .apply([Change::ReplaceAll(objects.clone())]);
    for payload in (0..1400u16).step_by(8) {
        let case = Case {
            name: "mid.edge.svc.cluster.local.".into(),
            flip_case: vec![false],
            qtype: 1,
            qclass: 1,
            edns: Some((payload, false)),
            rd: false,
            cd: false,
            tcp: false,
        };
        if let Err(error) = check(&reference, &empty, &case, &branches, false) {
            panic!("--udp-truncation empty, {case:?}: {error}");
        }
    }
    // Every kind of response was met.
    let branches = branches.into_inner();
    for label in [
        "answer",
        "SRV",
        "CNAME",
        "CNAME followed",
        "CNAME to nothing",
        "CNAME to NODATA",
        "CNAME out of zone",
        "CNAME chain cut",
        "PTR v4",
        "PTR v6",
        "NODATA",
        "slot NODATA",
        "empty non-terminal",
        "nxdomain",
        "refused",
        "TC",
        "TC partial",
        "additional left out",
        "TCP",
        "EDNS under 512",
        "EDNS 512-1232",
        "EDNS over 1232",
    ] {
        let seen = branches.get(label).copied().unwrap_or(0);
        assert!(seen >= 3, "{label}: {seen} cases in {branches:?}");
    }
}
