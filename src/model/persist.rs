//! The model on disk: what `--snapshot` writes and a restarted server serves before its
//! source has listed anything (a warm start through an API outage).
//!
//! The file holds the model's fields (what DNS keeps of each object), not API objects: a
//! tenth of their size. Layout, integers big-endian:
//!
//! ```text
//! magic "HDNS-SNAP" | version u16 | payload length u64 | SHA-256 of the payload (32)
//! payload: serial u32 | written at (Unix seconds) u64 | object count u32 | objects
//! ```
//!
//! An object is a tag byte and its fields; strings are `u16` length + UTF-8, lists a `u32`
//! count, addresses a length byte (4 or 16) + octets, and an endpoint its address, hostname
//! and a flags byte (ready, terminating, has a hostname). The Multi-Cluster Services kinds
//! came later with tags of their own (an imported slice is a slice and its cluster), so a
//! version 1 file from before them still reads.
//! A file that is short, corrupt (checksum), of another version, or holds anything out of
//! place is refused whole ([`SnapshotError`]): never half a state.

use std::net::IpAddr;
use std::sync::Arc;

use crate::model::intern::intern;
use crate::model::{
    ClusterProperty, Endpoint, EndpointList, EndpointSlice, ImportKind, Object, ObjectKey, Port,
    Protocol, Service, ServiceImport, ServiceKind, SliceOf, StatefulSet,
};

/// The first bytes of every snapshot file.
pub const MAGIC: &[u8; 9] = b"HDNS-SNAP";
/// The format this build writes and reads.
pub const VERSION: u16 = 1;
const HEADER_LEN: usize = MAGIC.len() + 2 + 8 + 32;

const SERVICE: u8 = 1;
const ENDPOINT_SLICE: u8 = 2;
const ENDPOINTS: u8 = 3;
const STATEFUL_SET: u8 = 4;
const IMPORT_SLICE: u8 = 5;
const SERVICE_IMPORT: u8 = 6;
const CLUSTER_PROPERTY: u8 = 7;

const HEADLESS: u8 = 0;
const CLUSTER_IP: u8 = 1;
const EXTERNAL_NAME: u8 = 2;

/// What a snapshot holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// The zones' serial when it was written: a restarted server continues above it.
    pub serial: u32,
    /// When it was written, Unix seconds: how old the state is that it serves.
    pub written_at: u64,
    pub objects: Vec<Object>,
}

/// Why a snapshot file was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotError {
    #[error(
        "not a headless-dns snapshot (no {:?} at its start)",
        String::from_utf8_lossy(MAGIC)
    )]
    NotASnapshot,
    #[error("snapshot format version {found}; this build reads version {VERSION}")]
    Version { found: u16 },
    #[error("truncated: {expected} bytes of payload announced, {found} present")]
    Truncated { expected: u64, found: u64 },
    #[error("checksum mismatch: the file is corrupt")]
    Checksum,
    #[error("malformed payload at byte {at}: {what}")]
    Malformed { at: usize, what: &'static str },
}

impl Snapshot {
    /// The file's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut payload = Vec::new();
        payload.extend_from_slice(&self.serial.to_be_bytes());
        payload.extend_from_slice(&self.written_at.to_be_bytes());
        payload.extend_from_slice(&count(self.objects.len()).to_be_bytes());
        for object in &self.objects {
            encode_object(&mut payload, object);
        }
        let digest = ring::digest::digest(&ring::digest::SHA256, &payload);
        let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&VERSION.to_be_bytes());
        out.extend_from_slice(&(payload.len() as u64).to_be_bytes());
        out.extend_from_slice(digest.as_ref());
        out.extend_from_slice(&payload);
        out
    }

    /// Reads a file's bytes, all or nothing.
    pub fn decode(bytes: &[u8]) -> Result<Self, SnapshotError> {
        if bytes.len() < MAGIC.len() || &bytes[..MAGIC.len()] != MAGIC {
            return Err(SnapshotError::NotASnapshot);
        }
        let header = bytes.get(..HEADER_LEN).ok_or(SnapshotError::Truncated {
            expected: HEADER_LEN as u64,
            found: bytes.len() as u64,
        })?;
        let version = u16::from_be_bytes([header[9], header[10]]);
        if version != VERSION {
            return Err(SnapshotError::Version { found: version });
        }
        let mut length = [0u8; 8];
        length.copy_from_slice(&header[11..19]);
        let length = u64::from_be_bytes(length);
        let payload = &bytes[HEADER_LEN..];
        if payload.len() as u64 != length {
            return Err(SnapshotError::Truncated {
                expected: length,
                found: payload.len() as u64,
            });
        }
        let digest = ring::digest::digest(&ring::digest::SHA256, payload);
        if digest.as_ref() != &header[19..51] {
            return Err(SnapshotError::Checksum);
        }
        let mut reader = Reader {
            bytes: payload,
            at: 0,
        };
        let serial = reader.u32()?;
        let written_at = reader.u64()?;
        let objects = reader.u32()?;
        let mut out = Vec::new();
        for _ in 0..objects {
            out.push(reader.object()?);
        }
        if reader.at != payload.len() {
            return Err(reader.malformed("bytes after the last object"));
        }
        Ok(Self {
            serial,
            written_at,
            objects: out,
        })
    }
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn put_str(out: &mut Vec<u8>, text: &str) {
    // Kubernetes names, ports and ExternalNames are far below 64 KiB.
    let bytes = &text.as_bytes()[..text.len().min(usize::from(u16::MAX))];
    out.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
    out.extend_from_slice(bytes);
}

fn put_key(out: &mut Vec<u8>, key: &ObjectKey) {
    put_str(out, &key.namespace);
    put_str(out, &key.name);
}

fn put_ip(out: &mut Vec<u8>, ip: &IpAddr) {
    match ip {
        IpAddr::V4(ip) => {
            out.push(4);
            out.extend_from_slice(&ip.octets());
        }
        IpAddr::V6(ip) => {
            out.push(16);
            out.extend_from_slice(&ip.octets());
        }
    }
}

fn put_ips(out: &mut Vec<u8>, ips: &[IpAddr]) {
    out.extend_from_slice(&count(ips.len()).to_be_bytes());
    for ip in ips {
        put_ip(out, ip);
    }
}

fn put_ports(out: &mut Vec<u8>, ports: &[Port]) {
    out.extend_from_slice(&count(ports.len()).to_be_bytes());
    for port in ports {
        put_str(out, &port.name);
        out.push(match port.protocol {
            Protocol::Tcp => 0,
            Protocol::Udp => 1,
            Protocol::Sctp => 2,
        });
        out.extend_from_slice(&port.port.to_be_bytes());
    }
}

fn put_slice(out: &mut Vec<u8>, slice: &EndpointSlice) {
    put_key(out, &slice.key);
    put_key(out, &slice.service);
    out.extend_from_slice(&count(slice.endpoints.len()).to_be_bytes());
    for endpoint in &slice.endpoints {
        put_ip(out, &endpoint.ip);
        put_str(out, endpoint.hostname.unwrap_or(""));
        let flags = u8::from(endpoint.hostname.is_some()) << 2
            | u8::from(endpoint.terminating) << 1
            | u8::from(endpoint.ready);
        out.push(flags);
    }
    put_ports(out, &slice.ports);
}

fn encode_object(out: &mut Vec<u8>, object: &Object) {
    match object {
        Object::Service(service) => {
            out.push(SERVICE);
            put_key(out, &service.key);
            match &service.kind {
                ServiceKind::Headless => out.push(HEADLESS),
                ServiceKind::ClusterIp(ips) => {
                    out.push(CLUSTER_IP);
                    put_ips(out, ips);
                }
                ServiceKind::ExternalName(name) => {
                    out.push(EXTERNAL_NAME);
                    put_str(out, name);
                }
            }
            put_ports(out, &service.ports);
            out.push(u8::from(service.publish_not_ready));
        }
        Object::EndpointSlice(slice) => match &slice.of {
            SliceOf::Service => {
                out.push(ENDPOINT_SLICE);
                put_slice(out, slice);
            }
            SliceOf::Import { cluster } => {
                out.push(IMPORT_SLICE);
                put_slice(out, slice);
                // A cluster id is a DNS label: never empty, so empty is "this cluster".
                put_str(out, cluster.as_deref().unwrap_or(""));
            }
        },
        Object::ServiceImport(import) => {
            out.push(SERVICE_IMPORT);
            put_key(out, &import.key);
            match &import.kind {
                ImportKind::Headless => out.push(HEADLESS),
                ImportKind::ClusterSetIp(ips) => {
                    out.push(CLUSTER_IP);
                    put_ips(out, ips);
                }
            }
            put_ports(out, &import.ports);
        }
        Object::ClusterProperty(property) => {
            out.push(CLUSTER_PROPERTY);
            put_key(out, &property.key);
            put_str(out, &property.value);
        }
        Object::Endpoints { service, subsets } => {
            out.push(ENDPOINTS);
            put_key(out, service);
            out.extend_from_slice(&count(subsets.len()).to_be_bytes());
            for subset in subsets {
                put_slice(out, subset);
            }
        }
        Object::StatefulSet(sts) => {
            out.push(STATEFUL_SET);
            put_key(out, &sts.key);
            put_str(out, &sts.service_name);
            out.extend_from_slice(&sts.replicas.to_be_bytes());
            out.extend_from_slice(&sts.ordinal_start.to_be_bytes());
        }
    }
}

/// Reads a payload, every read bounds-checked.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn malformed(&self, what: &'static str) -> SnapshotError {
        SnapshotError::Malformed { at: self.at, what }
    }

    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], SnapshotError> {
        let taken = self
            .bytes
            .get(self.at..self.at.saturating_add(n))
            .ok_or_else(|| self.malformed(what))?;
        self.at += n;
        Ok(taken)
    }

    fn u8(&mut self) -> Result<u8, SnapshotError> {
        Ok(self.take(1, "a byte")?[0])
    }

    fn u16(&mut self) -> Result<u16, SnapshotError> {
        let b = self.take(2, "a 16-bit number")?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32, SnapshotError> {
        let b = self.take(4, "a 32-bit number")?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self) -> Result<u64, SnapshotError> {
        let b = self.take(8, "a 64-bit number")?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_be_bytes(a))
    }

    fn str(&mut self) -> Result<&'a str, SnapshotError> {
        let len = usize::from(self.u16()?);
        let bytes = self.take(len, "a string")?;
        std::str::from_utf8(bytes).map_err(|_| self.malformed("a string that is not UTF-8"))
    }

    fn key(&mut self) -> Result<ObjectKey, SnapshotError> {
        let namespace = intern(self.str()?);
        let name: Arc<str> = self.str()?.into();
        Ok(ObjectKey { namespace, name })
    }

    fn ip(&mut self) -> Result<IpAddr, SnapshotError> {
        match self.u8()? {
            4 => {
                let b = self.take(4, "an IPv4 address")?;
                Ok(IpAddr::from([b[0], b[1], b[2], b[3]]))
            }
            16 => {
                let mut a = [0u8; 16];
                a.copy_from_slice(self.take(16, "an IPv6 address")?);
                Ok(IpAddr::from(a))
            }
            _ => Err(self.malformed("an address length other than 4 or 16")),
        }
    }

    /// A list's count, checked against what is left (each item takes at least a byte).
    fn count(&mut self) -> Result<usize, SnapshotError> {
        let n = self.u32()? as usize;
        if n > self.bytes.len() - self.at {
            return Err(self.malformed("a count larger than the file"));
        }
        Ok(n)
    }

    fn ports(&mut self) -> Result<Vec<Port>, SnapshotError> {
        let n = self.count()?;
        let mut ports = Vec::with_capacity(n);
        for _ in 0..n {
            let name = intern(self.str()?);
            let protocol = match self.u8()? {
                0 => Protocol::Tcp,
                1 => Protocol::Udp,
                2 => Protocol::Sctp,
                _ => return Err(self.malformed("an unknown protocol")),
            };
            let port = self.u16()?;
            ports.push(Port {
                name,
                protocol,
                port,
            });
        }
        Ok(ports)
    }

    fn slice(&mut self) -> Result<EndpointSlice, SnapshotError> {
        let key = self.key()?;
        let service = self.key()?;
        let n = self.count()?;
        let mut endpoints = Vec::with_capacity(n);
        for _ in 0..n {
            let ip = self.ip()?;
            let hostname = self.str()?;
            let flags = self.u8()?;
            if flags > 7 {
                return Err(self.malformed("unknown endpoint flags"));
            }
            endpoints.push(Endpoint {
                ip,
                hostname: (flags & 4 != 0).then(|| hostname.to_owned()),
                ready: flags & 1 != 0,
                terminating: flags & 2 != 0,
            });
        }
        let ports = self.ports()?;
        Ok(EndpointSlice {
            key,
            service,
            of: SliceOf::Service,
            endpoints: EndpointList::from(endpoints),
            ports,
        })
    }

    fn ips(&mut self) -> Result<Vec<IpAddr>, SnapshotError> {
        let n = self.count()?;
        let mut ips = Vec::with_capacity(n);
        for _ in 0..n {
            ips.push(self.ip()?);
        }
        Ok(ips)
    }

    fn object(&mut self) -> Result<Object, SnapshotError> {
        match self.u8()? {
            SERVICE => {
                let key = self.key()?;
                let kind = match self.u8()? {
                    HEADLESS => ServiceKind::Headless,
                    CLUSTER_IP => ServiceKind::ClusterIp(self.ips()?),
                    EXTERNAL_NAME => ServiceKind::ExternalName(self.str()?.to_owned()),
                    _ => return Err(self.malformed("an unknown Service type")),
                };
                let ports = self.ports()?;
                let publish_not_ready = match self.u8()? {
                    0 => false,
                    1 => true,
                    _ => return Err(self.malformed("a flag other than 0 or 1")),
                };
                Ok(Object::Service(Service {
                    key,
                    kind,
                    ports,
                    publish_not_ready,
                }))
            }
            ENDPOINT_SLICE => Ok(Object::EndpointSlice(self.slice()?)),
            ENDPOINTS => {
                let service = self.key()?;
                let n = self.count()?;
                let mut subsets = Vec::with_capacity(n);
                for _ in 0..n {
                    subsets.push(self.slice()?);
                }
                Ok(Object::Endpoints { service, subsets })
            }
            STATEFUL_SET => {
                let key = self.key()?;
                let service_name = intern(self.str()?);
                let replicas = self.u32()?;
                let ordinal_start = self.u32()?;
                Ok(Object::StatefulSet(StatefulSet {
                    key,
                    service_name,
                    replicas,
                    ordinal_start,
                }))
            }
            IMPORT_SLICE => {
                let mut slice = self.slice()?;
                let cluster = self.str()?;
                slice.of = SliceOf::Import {
                    cluster: (!cluster.is_empty()).then(|| intern(cluster)),
                };
                Ok(Object::EndpointSlice(slice))
            }
            SERVICE_IMPORT => {
                let key = self.key()?;
                let kind = match self.u8()? {
                    HEADLESS => ImportKind::Headless,
                    CLUSTER_IP => ImportKind::ClusterSetIp(self.ips()?),
                    _ => return Err(self.malformed("an unknown ServiceImport type")),
                };
                let ports = self.ports()?;
                Ok(Object::ServiceImport(ServiceImport { key, kind, ports }))
            }
            CLUSTER_PROPERTY => {
                let key = self.key()?;
                let value = self.str()?.into();
                Ok(Object::ClusterProperty(ClusterProperty { key, value }))
            }
            _ => Err(self.malformed("an unknown object type")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Snapshot {
        let key = |ns: &str, name: &str| ObjectKey::new(ns, name);
        let port = |name: &str, protocol, port| Port {
            name: name.into(),
            protocol,
            port,
        };
        let endpoint = |ip: &str, hostname: Option<&str>, ready, terminating| Endpoint {
            ip: ip.parse().unwrap(),
            hostname: hostname.map(str::to_owned),
            ready,
            terminating,
        };
        let slice = EndpointSlice {
            key: key("demo", "web-abc"),
            service: key("demo", "nginx"),
            of: SliceOf::Service,
            endpoints: vec![
                endpoint("10.244.1.10", Some("web-0"), true, false),
                endpoint("fd00::1", None, false, true),
                endpoint("10.244.1.12", Some(""), true, true),
            ]
            .into(),
            ports: vec![port("web", Protocol::Tcp, 80), port("", Protocol::Udp, 53)],
        };
        Snapshot {
            serial: 1_796_301_353,
            written_at: 1_796_301_360,
            objects: vec![
                Object::Service(Service {
                    key: key("demo", "nginx"),
                    kind: ServiceKind::Headless,
                    ports: vec![port("web", Protocol::Tcp, 80)],
                    publish_not_ready: true,
                }),
                Object::Service(Service {
                    key: key("demo", "api"),
                    kind: ServiceKind::ClusterIp(vec![
                        "10.96.0.10".parse().unwrap(),
                        "fd00::10".parse().unwrap(),
                    ]),
                    ports: vec![port("http", Protocol::Sctp, 8080)],
                    publish_not_ready: false,
                }),
                Object::Service(Service {
                    key: key("demo", "search"),
                    kind: ServiceKind::ExternalName("search.example.com.".into()),
                    ports: vec![],
                    publish_not_ready: false,
                }),
                Object::EndpointSlice(slice.clone()),
                Object::EndpointSlice(EndpointSlice {
                    key: key("demo", "db-west-1"),
                    service: key("demo", "db"),
                    of: SliceOf::Import {
                        cluster: Some("west".into()),
                    },
                    ..slice.clone()
                }),
                Object::EndpointSlice(EndpointSlice {
                    key: key("demo", "db-local"),
                    service: key("demo", "db"),
                    of: SliceOf::Import { cluster: None },
                    ..slice.clone()
                }),
                Object::ServiceImport(ServiceImport {
                    key: key("demo", "db"),
                    kind: ImportKind::Headless,
                    ports: vec![port("sql", Protocol::Tcp, 26257)],
                }),
                Object::ServiceImport(ServiceImport {
                    key: key("demo", "api"),
                    kind: ImportKind::ClusterSetIp(vec!["10.42.0.1".parse().unwrap()]),
                    ports: vec![],
                }),
                Object::ClusterProperty(ClusterProperty {
                    key: key("default", "cluster.clusterset.k8s.io"),
                    value: "east".into(),
                }),
                Object::Endpoints {
                    service: key("demo", "legacy"),
                    subsets: vec![slice],
                },
                Object::StatefulSet(StatefulSet {
                    key: key("demo", "web"),
                    service_name: "nginx".into(),
                    replicas: 3,
                    ordinal_start: 2,
                }),
            ],
        }
    }

    #[test]
    fn a_snapshot_reads_back_what_was_written() {
        let snapshot = sample();
        let bytes = snapshot.encode();
        assert_eq!(Snapshot::decode(&bytes), Ok(snapshot));
        let empty = Snapshot {
            serial: 1,
            written_at: 2,
            objects: vec![],
        };
        assert_eq!(Snapshot::decode(&empty.encode()), Ok(empty));
    }

    #[test]
    fn a_damaged_file_is_refused_whole() {
        let bytes = sample().encode();
        // Every truncation.
        for len in 0..bytes.len() {
            assert!(Snapshot::decode(&bytes[..len]).is_err(), "{len} bytes");
        }
        // Every single flipped byte: the header's fields, else the checksum.
        for at in 0..bytes.len() {
            let mut damaged = bytes.clone();
            damaged[at] ^= 0x20;
            assert!(Snapshot::decode(&damaged).is_err(), "byte {at}");
        }
        let mut other_version = bytes.clone();
        other_version[10] = 9;
        assert_eq!(
            Snapshot::decode(&other_version),
            Err(SnapshotError::Version { found: 9 })
        );
        assert_eq!(
            Snapshot::decode(b"apiVersion: v1\n"),
            Err(SnapshotError::NotASnapshot)
        );
        let mut corrupt = bytes.clone();
        let last = corrupt.len() - 1;
        corrupt[last] ^= 1;
        assert_eq!(Snapshot::decode(&corrupt), Err(SnapshotError::Checksum));
        // A payload that checks but does not parse (written by a broken writer).
        let mut payload = vec![0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 1, 99];
        let digest = ring::digest::digest(&ring::digest::SHA256, &payload);
        let mut forged = MAGIC.to_vec();
        forged.extend_from_slice(&VERSION.to_be_bytes());
        forged.extend_from_slice(&(payload.len() as u64).to_be_bytes());
        forged.extend_from_slice(digest.as_ref());
        forged.append(&mut payload);
        assert!(matches!(
            Snapshot::decode(&forged),
            Err(SnapshotError::Malformed { .. })
        ));
    }
}
