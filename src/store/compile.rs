//! Records into wire-format answer sections, ready to copy into a response.
//!
//! This is where the per-query work goes instead: every answer is encoded once, when its
//! records change, against the layout of the response it will be sent in. A response starts
//! with the 12-byte header and the question, and the question name is the owner of every
//! answer record, so the owner is always the pointer `0xC00C`. The question name is the
//! relative name followed by the zone that was asked; the relative part has a fixed length,
//! so the zone starts at a fixed offset too, and names in record data can point into the
//! question whichever zone was asked. Only SRV targets, which RFC 2782 forbids compressing,
//! depend on the zone: a headless Service's SRV set is kept compact and written per query
//! (`srv`), any other is encoded once per configured zone. Address record sets (a headless
//! Service's endpoints, a ClusterIP) are kept as their addresses (`answers::ADDRESSES`): every
//! record is the question pointer, the type, class and TTL, and one address, so the rest is
//! written per query as a pod's addresses are. Pods' names are not compiled here at all:
//! they go in their Service's pod table (`pod_table`).

use crate::dns::name::RelativeName;
use crate::dns::rdata::{NameRecords, RData, RrSet, Target};
use crate::dns::wire::{CLASS_IN, HEADER_LEN, rtype};
use crate::store::answers::{
    ADDRESSES, ANY_ZONE, CompiledRrset, NameAnswers, NegativeSoa, WIRE, address_width,
};
use crate::store::srv;

/// What encoding needs to know beyond the records.
#[derive(Debug, Clone)]
pub struct CompileContext {
    /// TTL of every positive record.
    pub ttl: u32,
    /// Every forward zone in wire form (lowercase, root label included), by zone index.
    pub forward_zones: Vec<Box<[u8]>>,
    /// The primary zone, for names in reverse answers.
    pub primary_zone: Box<[u8]>,
    /// The clusterset zone (`--clusterset-zone`), for reverse answers naming an import's
    /// names; the root when none is served.
    pub clusterset_zone: Box<[u8]>,
    /// Negative TTL of an ordinal slot without a pod address (`--slot-negative-ttl`).
    pub slot_negative_ttl: u32,
}

/// Encodes every record set of one name.
pub fn compile_name(records: &NameRecords, ctx: &CompileContext) -> NameAnswers {
    let mut rrsets = Vec::with_capacity(records.rrsets.len());
    for rrset in &records.rrsets {
        if rrset.rtype == rtype::SRV {
            // Kept compact when it can be: one copy for every zone, a fraction of the size.
            if let Some(compact) = srv::compact(&records.name, rrset, ctx.ttl) {
                rrsets.push(compact);
                continue;
            }
            for (index, zone) in ctx.forward_zones.iter().enumerate() {
                let index = u8::try_from(index).unwrap_or(ANY_ZONE - 1);
                rrsets.push(compile_rrset(&records.name, rrset, Some(zone), index, ctx));
            }
        } else if let Some(addresses) = compact_addresses(rrset, ctx.ttl) {
            rrsets.push(addresses);
        } else {
            rrsets.push(compile_rrset(&records.name, rrset, None, ANY_ZONE, ctx));
        }
    }
    NameAnswers::new(&rrsets, records.slot.then_some(ctx.slot_negative_ttl))
}

/// `rrset` in the [`ADDRESSES`] form, when it is an A or AAAA record set with nothing in
/// the additional section.
fn compact_addresses(rrset: &RrSet, ttl: u32) -> Option<CompiledRrset> {
    if !rrset.additional.is_empty() {
        return None;
    }
    let width = address_width(rrset.rtype)?;
    let mut answer = Vec::with_capacity(4 + width * rrset.records.len());
    answer.extend_from_slice(&ttl.to_be_bytes());
    for record in &rrset.records {
        match (record, width) {
            (RData::A(ip), 4) => answer.extend_from_slice(&ip.octets()),
            (RData::Aaaa(ip), 16) => answer.extend_from_slice(&ip.octets()),
            _ => return None,
        }
    }
    Some(CompiledRrset {
        rtype: rrset.rtype,
        zone: ANY_ZONE,
        form: ADDRESSES,
        ancount: u16::try_from(rrset.records.len()).ok()?,
        arcount: 0,
        answer,
        additional: Vec::new(),
    })
}

fn compile_rrset(
    owner: &RelativeName,
    rrset: &RrSet,
    zone: Option<&[u8]>,
    zone_index: u8,
    ctx: &CompileContext,
) -> CompiledRrset {
    let question = QuestionLayout::new(owner);
    let mut answer = Vec::new();
    for record in &rrset.records {
        write_record(&mut answer, &[0xC0, 0x0C], record, ctx, &question, zone);
    }
    let mut additional = Vec::new();
    for (name, record) in &rrset.additional {
        let mut owner_bytes = Vec::new();
        question.write_name(&mut owner_bytes, name);
        write_record(&mut additional, &owner_bytes, record, ctx, &question, zone);
    }
    CompiledRrset {
        rtype: rrset.rtype,
        zone: zone_index,
        form: WIRE,
        ancount: clamp_u16(rrset.records.len()),
        arcount: clamp_u16(rrset.additional.len()),
        answer,
        additional,
    }
}

/// The SOA of the zone whose apex records are `apex`, as negative answers carry it: encoded
/// by the same code as the apex's SOA answer.
pub fn negative_soa(apex: &NameRecords, ctx: &CompileContext) -> Option<NegativeSoa> {
    let soa = apex.rrsets.iter().find(|r| r.rtype == rtype::SOA)?;
    NegativeSoa::from_record(compile_rrset(&apex.name, soa, None, ANY_ZONE, ctx).answer)
}

fn clamp_u16(n: usize) -> u16 {
    u16::try_from(n).unwrap_or(u16::MAX)
}

/// Where each label of the question name sits in a response, for compression pointers.
struct QuestionLayout<'a> {
    owner: &'a RelativeName,
    /// Offset of each owner label, most specific first.
    label_offsets: Vec<u16>,
    /// Offset of the zone's first label (or of the root label at the apex of the root).
    zone_offset: u16,
}

impl<'a> QuestionLayout<'a> {
    fn new(owner: &'a RelativeName) -> Self {
        let mut offset = HEADER_LEN as u16;
        let mut label_offsets = Vec::new();
        for label in owner.labels() {
            label_offsets.push(offset);
            offset += 1 + label.len() as u16;
        }
        Self {
            owner,
            label_offsets,
            zone_offset: offset,
        }
    }

    /// Writes `name` (in the asked zone) as its labels not shared with the question name,
    /// then a pointer to the longest suffix the question shares, at worst the zone.
    fn write_name(&self, out: &mut Vec<u8>, name: &RelativeName) {
        let target: Vec<&[u8]> = name.labels().collect();
        let owner: Vec<&[u8]> = self.owner.labels().collect();
        let shared = target
            .iter()
            .rev()
            .zip(owner.iter().rev())
            .take_while(|(a, b)| a == b)
            .count();
        for label in &target[..target.len() - shared] {
            out.push(label.len() as u8);
            out.extend_from_slice(label);
        }
        let pointer = if shared == 0 {
            self.zone_offset
        } else {
            self.label_offsets[owner.len() - shared]
        };
        out.extend_from_slice(&(0xC000 | pointer).to_be_bytes());
    }
}

fn write_target(
    out: &mut Vec<u8>,
    target: &Target,
    question: &QuestionLayout,
    ctx: &CompileContext,
) {
    match target {
        Target::InZone(name) => question.write_name(out, name),
        Target::Primary(name) => {
            out.extend_from_slice(name.wire());
            out.extend_from_slice(&ctx.primary_zone);
        }
        Target::ClusterSet(name) => {
            out.extend_from_slice(name.wire());
            out.extend_from_slice(&ctx.clusterset_zone);
        }
    }
}

fn write_record(
    out: &mut Vec<u8>,
    owner: &[u8],
    record: &RData,
    ctx: &CompileContext,
    question: &QuestionLayout,
    zone: Option<&[u8]>,
) {
    out.extend_from_slice(owner);
    out.extend_from_slice(&record.rtype().to_be_bytes());
    out.extend_from_slice(&CLASS_IN.to_be_bytes());
    out.extend_from_slice(&ctx.ttl.to_be_bytes());
    let rdlen_at = out.len();
    out.extend_from_slice(&[0, 0]);
    match record {
        RData::A(ip) => out.extend_from_slice(&ip.octets()),
        RData::Aaaa(ip) => out.extend_from_slice(&ip.octets()),
        RData::Srv {
            priority,
            weight,
            port,
            target,
        } => {
            out.extend_from_slice(&priority.to_be_bytes());
            out.extend_from_slice(&weight.to_be_bytes());
            out.extend_from_slice(&port.to_be_bytes());
            out.extend_from_slice(target.wire());
            // Uncompressed (RFC 2782): the zone's own labels. Compiled per zone, so a
            // missing zone cannot happen; the root label keeps the name well formed anyway.
            out.extend_from_slice(zone.unwrap_or(&[0]));
        }
        RData::Ptr(target) | RData::Ns(target) => write_target(out, target, question, ctx),
        RData::Cname(text) => write_text_name(out, text),
        RData::Txt(text) => {
            for chunk in text.as_bytes().chunks(255) {
                out.push(chunk.len() as u8);
                out.extend_from_slice(chunk);
            }
        }
        RData::Soa {
            mname,
            rname,
            serial,
            refresh,
            retry,
            expire,
            minimum,
        } => {
            write_target(out, mname, question, ctx);
            write_target(out, rname, question, ctx);
            for value in [serial, refresh, retry, expire, minimum] {
                out.extend_from_slice(&value.to_be_bytes());
            }
        }
    }
    let rdlen = clamp_u16(out.len() - rdlen_at - 2);
    out[rdlen_at..rdlen_at + 2].copy_from_slice(&rdlen.to_be_bytes());
}

/// A dotted name (validated by the converter) in wire form.
fn write_text_name(out: &mut Vec<u8>, text: &str) {
    for label in text
        .trim_end_matches('.')
        .split('.')
        .filter(|l| !l.is_empty())
    {
        let label = &label.as_bytes()[..label.len().min(63)];
        out.push(label.len() as u8);
        out.extend_from_slice(label);
    }
    out.push(0);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::name::zone_wire;

    fn name(s: &str) -> RelativeName {
        RelativeName::from_labels(s.split('.')).unwrap()
    }

    fn ctx() -> CompileContext {
        CompileContext {
            ttl: 5,
            forward_zones: vec![zone_wire(&name("cluster.local"))],
            primary_zone: zone_wire(&name("cluster.local")),
            clusterset_zone: Box::new([0]),
            slot_negative_ttl: 1,
        }
    }

    #[test]
    fn names_point_into_the_question() {
        // Question: _web._tcp.nginx.demo.svc.<zone>; labels at 12, 17, 22, 28, 33; zone 37.
        let layout_owner = name("_web._tcp.nginx.demo.svc");
        let layout = QuestionLayout::new(&layout_owner);
        assert_eq!(layout.zone_offset, 37);
        fn check(layout: &QuestionLayout, target: &str, expected: &[u8]) {
            let mut out = Vec::new();
            layout.write_name(&mut out, &name(target));
            assert_eq!(out, expected, "{target}");
        }
        check(&layout, "web-0.nginx.demo.svc", b"\x05web-0\xC0\x16");
        check(&layout, "dns-version", b"\x0bdns-version\xC0\x25");
        check(&layout, "_web._tcp.nginx.demo.svc", b"\xC0\x0C");
        check(&layout, "other.svc", b"\x05other\xC0\x21");
    }

    /// Checks that `rrset` at `owner` is kept compact and written exactly as encoded, whole,
    /// without its additional records, and not at all; returns the compact size.
    fn check_compact_srv(owner: &RelativeName, rrset: &RrSet) -> usize {
        let ctx = ctx();
        let zone = &ctx.forward_zones[0];
        let encoded = compile_rrset(owner, rrset, Some(zone), 0, &ctx);
        let compact = crate::store::srv::compact(owner, rrset, ctx.ttl).unwrap();
        let size = compact.answer.len() + compact.additional.len();
        assert!(size < (encoded.answer.len() + encoded.additional.len()) / 2);
        let packed = NameAnswers::new(&[compact], None);
        let view = packed.view().find(rtype::SRV, 0).unwrap();
        let question_end = HEADER_LEN + owner.wire().len() + zone.len() + 4;
        let write_as = |limit, partial| {
            let mut out = vec![0; question_end];
            let written =
                crate::store::srv::write(&mut out, &view, owner.wire(), zone, limit, 11, partial);
            (written, out.split_off(question_end))
        };
        let write = |limit| write_as(limit, false);
        let counts = (rrset.records.len() as u16, rrset.additional.len() as u16);
        let (written, bytes) = write(usize::MAX);
        assert_eq!(
            (written.ancount, written.arcount, written.truncated),
            (counts.0, counts.1, false)
        );
        assert_eq!(
            bytes,
            [encoded.answer.clone(), encoded.additional.clone()].concat()
        );
        // Room for the answer but not the additional records: those are left out whole.
        let (written, bytes) = write(question_end + encoded.answer.len() + 11);
        assert_eq!(
            (written.ancount, written.arcount, written.truncated),
            (counts.0, 0, false)
        );
        assert_eq!(bytes, encoded.answer);
        // No room for the answer: nothing, truncated.
        let (written, bytes) = write(question_end + encoded.answer.len() + 10);
        assert!(written.truncated && bytes.is_empty());
        // Partial: the records that fit, whole and in order, and no additional ones.
        let (first, _) = crate::dns::wire::whole_records(&encoded.answer, usize::MAX);
        assert_eq!(first, encoded.answer.len());
        for room in [0, encoded.answer.len() - 1] {
            let (len, count) = crate::dns::wire::whole_records(&encoded.answer, room);
            let (written, bytes) = write_as(question_end + room + 11, true);
            assert!(written.truncated, "room {room}");
            assert_eq!(
                (written.ancount, written.arcount),
                (count, 0),
                "room {room}"
            );
            assert_eq!(bytes, encoded.answer[..len], "room {room}");
        }
        size
    }

    #[test]
    fn compact_srv_writes_what_the_encoded_form_holds() {
        let service = name("nginx.demo.svc");
        let owner = name("_web._tcp.nginx.demo.svc");
        let target = |label: &str| service.child(label).unwrap();
        let srv = |label: &str, port| RData::Srv {
            priority: 0,
            weight: 50,
            port,
            target: target(label),
        };
        let a = |label: &str, ip: &str| (target(label), RData::A(ip.parse().unwrap()));
        let aaaa = |label: &str, ip: &str| (target(label), RData::Aaaa(ip.parse().unwrap()));
        let set = |records, additional| RrSet {
            rtype: rtype::SRV,
            records,
            additional,
        };
        // One port, one address per target in target order (a headless Service): the
        // fields once, each address after its label.
        let headless = set(
            vec![srv("web-0", 80), srv("web-1", 80), srv("web-2", 80)],
            vec![
                a("web-0", "10.0.0.1"),
                aaaa("web-1", "fd00::1"),
                a("web-2", "10.0.0.3"),
            ],
        );
        let paired_and_shared = check_compact_srv(&owner, &headless);
        // Per record: label (6) and address (1 + 4 or 16), after a 14-byte head and the
        // shared fields.
        assert_eq!(paired_and_shared, 14 + 6 + 3 * 6 + 5 + 17 + 5);
        // Fields that differ are kept per record.
        let mut ports = headless.clone();
        ports.records[1] = srv("web-1", 8080);
        assert_eq!(check_compact_srv(&owner, &ports), paired_and_shared + 2 * 6);
        // Additional records that do not follow the targets one to one (a dual-stack pod,
        // another order) keep their own labels.
        let mut dual_stack = headless.clone();
        dual_stack.additional.insert(1, aaaa("web-0", "fd00::9"));
        check_compact_srv(&owner, &dual_stack);
        let mut reordered = ports.clone();
        reordered.additional.swap(0, 2);
        check_compact_srv(&owner, &reordered);
        // A target elsewhere keeps the encoded form.
        let mut elsewhere = headless.clone();
        elsewhere.records.push(RData::Srv {
            priority: 0,
            weight: 50,
            port: 80,
            target: name("x.other.demo.svc"),
        });
        assert!(crate::store::srv::compact(&owner, &elsewhere, 5).is_none());
    }

    #[test]
    fn compact_srv_of_an_import_names_targets_two_labels_below() {
        // A headless ServiceImport: targets `<host>.<cluster>.db.demo.svc` in two clusters.
        let owner = name("_sql._tcp.db.demo.svc");
        let target = |host: &str| name(&format!("{host}.db.demo.svc"));
        let srv = |host: &str| RData::Srv {
            priority: 0,
            weight: 33,
            port: 26257,
            target: target(host),
        };
        let hosts = ["db-0.east", "db-1.east", "db-0.west"];
        let set = RrSet {
            rtype: rtype::SRV,
            records: hosts.iter().map(|h| srv(h)).collect(),
            additional: hosts
                .iter()
                .enumerate()
                .map(|(i, h)| (target(h), RData::A([10, 1, 0, i as u8].into())))
                .collect(),
        };
        let size = check_compact_srv(&owner, &set);
        // After the 14-byte head and the shared fields, a run per cluster (its record count,
        // 2, and its label, 5) and per record its first label (5) and address (1 + 4).
        assert_eq!(size, 14 + 6 + 2 * (2 + 5) + 3 * (5 + 5));
        // Targets that share nothing after their first label are stored whole, without runs.
        let lone_hosts = ["db-0.east", "db-0.west", "db-0.zone"];
        let mut lone = set.clone();
        lone.records = lone_hosts.iter().map(|h| srv(h)).collect();
        for (n, (target_name, _)) in lone.additional.iter_mut().enumerate() {
            *target_name = target(lone_hosts[n]);
        }
        assert_eq!(check_compact_srv(&owner, &lone), 14 + 6 + 3 * (5 + 5 + 5));
        // Per-record fields with runs: each record's fields follow its run's head.
        let mut ports = set.clone();
        if let RData::Srv { port, .. } = &mut ports.records[1] {
            *port = 26258;
        }
        check_compact_srv(&owner, &ports);
        let mut unpaired = set.clone();
        unpaired.additional.swap(0, 1);
        check_compact_srv(&owner, &unpaired);
        // Targets at different depths keep the encoded form.
        let mut mixed = set.clone();
        mixed.records.push(srv("db-9"));
        assert!(crate::store::srv::compact(&owner, &mixed, 5).is_none());
    }

    #[test]
    fn address_sets_are_kept_as_addresses_and_write_what_the_encoded_form_holds() {
        let owner = name("nginx.demo.svc");
        let rrset = |rtype, records: &[&str]| RrSet {
            rtype,
            records: records
                .iter()
                .map(|ip| RData::address(ip.parse().unwrap()))
                .collect(),
            additional: vec![],
        };
        let ctx = ctx();
        for set in [
            rrset(rtype::A, &["10.244.1.5", "10.244.2.7", "10.244.3.9"]),
            rrset(rtype::AAAA, &["fd00::1", "fd00::2"]),
        ] {
            let records = NameRecords {
                name: owner.clone(),
                rrsets: vec![set.clone()],
                slot: false,
            };
            let compiled = compile_name(&records, &ctx);
            let rr = compiled.view().find(set.rtype, 0).unwrap();
            assert_eq!(
                (rr.form, rr.ancount, rr.arcount),
                (ADDRESSES, set.records.len() as u16, 0)
            );
            let found = rr.address_set().unwrap();
            assert_eq!(found.ttl, ctx.ttl);
            // What the query path writes from it: the encoded records, byte for byte.
            let mut written = Vec::new();
            for address in found.addresses.chunks_exact(found.width) {
                written.extend_from_slice(&crate::dns::wire::record_head(
                    crate::dns::wire::QUESTION_POINTER,
                    set.rtype,
                    found.ttl,
                    found.width,
                ));
                written.extend_from_slice(address);
            }
            let encoded = compile_rrset(&owner, &set, None, ANY_ZONE, &ctx);
            assert_eq!(written, encoded.answer);
            // The TTL once, then the addresses alone: 12 octets less per record.
            assert_eq!(
                rr.answer.len() + 12 * set.records.len(),
                encoded.answer.len() + 4
            );
        }
        // The wire bytes of one A record, for the record above.
        let encoded = compile_rrset(
            &owner,
            &rrset(rtype::A, &["10.244.1.5"]),
            None,
            ANY_ZONE,
            &ctx,
        );
        assert_eq!(
            encoded.answer,
            b"\xC0\x0C\x00\x01\x00\x01\x00\x00\x00\x05\x00\x04\x0a\xf4\x01\x05"
        );
        // An address set with additional records (none are built today) keeps the encoded form.
        let mut with_additional = rrset(rtype::A, &["10.0.0.1"]);
        with_additional
            .additional
            .push((owner.clone(), RData::A("10.0.0.2".parse().unwrap())));
        assert!(compact_addresses(&with_additional, 5).is_none());
    }
}
