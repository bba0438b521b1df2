//! Domain names as the record store keys them, and the naming rules of the Kubernetes DNS
//! specification (dashed IPs, reverse names, StatefulSet ordinals).

use std::fmt;
use std::net::IpAddr;

/// Longest label the wire format allows (RFC 1035 2.3.4).
pub const MAX_LABEL_LEN: usize = 63;
/// Longest name on the wire, root label included (RFC 1035 2.3.4).
pub const MAX_NAME_LEN: usize = 255;

/// A name relative to the zone it is served in, in wire form without the zone and without
/// the root label: each lowercase label prefixed by its length. `web-0.nginx.demo.svc` under
/// `cluster.local` is `\x05web-0\x05nginx\x04demo\x03svc`.
///
/// Wire form, because that is what a query carries: a lookup lowercases the question into a
/// stack buffer and compares bytes, with no parsing into labels and no allocation.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RelativeName(Box<[u8]>);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("empty label in {0:?}")]
    EmptyLabel(String),
    #[error("label {0:?} is longer than 63 octets")]
    LabelTooLong(String),
    #[error("name {0:?} is longer than 255 octets")]
    NameTooLong(String),
}

impl RelativeName {
    /// The zone apex itself.
    pub fn apex() -> Self {
        Self(Box::new([]))
    }

    /// Builds a name from labels, most specific first; labels are lowercased.
    pub fn from_labels<'a>(labels: impl IntoIterator<Item = &'a str>) -> Result<Self, NameError> {
        let mut wire = Vec::new();
        for label in labels {
            push_label(&mut wire, label)?;
        }
        if wire.len() >= MAX_NAME_LEN {
            return Err(NameError::NameTooLong(format_wire(&wire)));
        }
        Ok(Self(wire.into_boxed_slice()))
    }

    /// A name spelled out in the source (`["ns", "dns"]`): a few short, non-empty labels.
    ///
    /// # Panics
    ///
    /// On an empty label or one over 63 octets: a mistake in the source, never input.
    pub fn literal(labels: &[&str]) -> Self {
        Self::from_labels(labels.iter().copied()).expect("literal names are valid")
    }

    /// This name with `label` in front: `web-0` + `nginx.demo.svc`.
    pub fn child(&self, label: &str) -> Result<Self, NameError> {
        let mut wire = Vec::with_capacity(self.0.len() + label.len() + 1);
        push_label(&mut wire, label)?;
        wire.extend_from_slice(&self.0);
        if wire.len() >= MAX_NAME_LEN {
            return Err(NameError::NameTooLong(format_wire(&wire)));
        }
        Ok(Self(wire.into_boxed_slice()))
    }

    /// The wire bytes: length-prefixed labels, no root label.
    pub fn wire(&self) -> &[u8] {
        &self.0
    }

    /// Labels, most specific first.
    pub fn labels(&self) -> Labels<'_> {
        Labels { rest: &self.0 }
    }

    /// The enclosing name (`nginx.demo.svc` for `web-0.nginx.demo.svc`); `None` at the apex.
    pub fn parent(&self) -> Option<Self> {
        let first = *self.0.first()? as usize;
        Some(Self(self.0[1 + first..].into()))
    }

    pub fn is_apex(&self) -> bool {
        self.0.is_empty()
    }
}

/// Iterator over the labels of a wire name.
pub struct Labels<'a> {
    rest: &'a [u8],
}

impl<'a> Labels<'a> {
    /// The labels of `wire`, a name in wire form (a root label ends them).
    pub fn of(wire: &'a [u8]) -> Self {
        Self { rest: wire }
    }
}

impl<'a> Iterator for Labels<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let (&len, tail) = self.rest.split_first().filter(|(len, _)| **len != 0)?;
        let len = usize::from(len);
        // A RelativeName is built only by push_label, so every length byte is followed by
        // that many bytes; `get` keeps this total even so.
        let label = tail.get(..len)?;
        self.rest = &tail[len..];
        Some(label)
    }
}

fn push_label(wire: &mut Vec<u8>, label: &str) -> Result<(), NameError> {
    if label.is_empty() {
        return Err(NameError::EmptyLabel(label.to_owned()));
    }
    if label.len() > MAX_LABEL_LEN {
        return Err(NameError::LabelTooLong(label.to_owned()));
    }
    // Checked just above: 1..=63 fits a u8.
    wire.push(label.len() as u8);
    wire.extend(label.bytes().map(|b| b.to_ascii_lowercase()));
    Ok(())
}

fn format_wire(wire: &[u8]) -> String {
    let labels = Labels { rest: wire };
    let mut out = String::new();
    for label in labels {
        if !out.is_empty() {
            out.push('.');
        }
        out.push_str(&String::from_utf8_lossy(label));
    }
    out
}

impl fmt::Display for RelativeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_apex() {
            return f.write_str("@");
        }
        f.write_str(&format_wire(&self.0))
    }
}

impl fmt::Debug for RelativeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RelativeName({self})")
    }
}

/// A zone name in wire form, lowercase, root label included.
pub fn zone_wire(zone: &RelativeName) -> Box<[u8]> {
    let mut wire = zone.wire().to_vec();
    wire.push(0);
    wire.into_boxed_slice()
}

/// The label CoreDNS gives an endpoint that has no hostname: `10-244-0-7`, or for IPv6 the
/// address with `:` replaced by `-` (`fd00--7`).
pub fn dashed_ip(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string().replace('.', "-"),
        IpAddr::V6(v6) => v6.to_string().replace(':', "-"),
    }
}

/// The reverse-lookup name of `ip` relative to `in-addr.arpa` (IPv4: `7.0.244.10`) or
/// `ip6.arpa` (IPv6: 32 nibbles, least significant first).
pub fn reverse_name(ip: IpAddr) -> RelativeName {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut wire = Vec::with_capacity(64);
    match ip {
        IpAddr::V4(v4) => {
            for octet in v4.octets().iter().rev() {
                let text = octet.to_string();
                wire.push(text.len() as u8);
                wire.extend_from_slice(text.as_bytes());
            }
        }
        IpAddr::V6(v6) => {
            for byte in v6.octets().iter().rev() {
                for nibble in [byte & 0x0f, byte >> 4] {
                    wire.push(1);
                    wire.push(HEX[usize::from(nibble)]);
                }
            }
        }
    }
    RelativeName(wire.into_boxed_slice())
}

/// The address whose reverse name (relative to `in-addr.arpa` or `ip6.arpa`, by `v6`) is
/// `wire`, lowercase: the inverse of [`reverse_name`], and only for the names it writes
/// (`010` or an uppercase nibble is another name, not this address).
pub fn parse_reverse_name(wire: &[u8], v6: bool) -> Option<IpAddr> {
    let mut rest = wire;
    let mut next_label = move || -> Option<&[u8]> {
        let (&len, tail) = rest.split_first()?;
        let (label, tail) = tail.split_at_checked(usize::from(len))?;
        rest = tail;
        Some(label)
    };
    if v6 {
        let mut octets = [0u8; 16];
        for i in (0..16).rev() {
            let low = nibble(next_label()?)?;
            let high = nibble(next_label()?)?;
            octets[i] = high << 4 | low;
        }
        next_label().is_none().then_some(IpAddr::from(octets))
    } else {
        let mut octets = [0u8; 4];
        for i in (0..4).rev() {
            octets[i] = decimal_octet(next_label()?)?;
        }
        next_label().is_none().then_some(IpAddr::from(octets))
    }
}

/// A one-digit lowercase hex label.
fn nibble(label: &[u8]) -> Option<u8> {
    match label {
        [d @ b'0'..=b'9'] => Some(d - b'0'),
        [h @ b'a'..=b'f'] => Some(h - b'a' + 10),
        _ => None,
    }
}

/// A canonical decimal label of at most 255 (`0`, `7`, `255`; not `007` or `256`).
fn decimal_octet(label: &[u8]) -> Option<u8> {
    if label.is_empty() || label.len() > 3 || (label.len() > 1 && label[0] == b'0') {
        return None;
    }
    let mut value = 0u16;
    for &b in label {
        if !b.is_ascii_digit() {
            return None;
        }
        value = value * 10 + u16::from(b - b'0');
    }
    u8::try_from(value).ok()
}

/// The StatefulSet ordinal of a pod hostname: `web-10` is (`web`, 10). Only canonical decimal
/// numbers count (`web-01` has no ordinal), so that the order is exact and unambiguous.
pub fn ordinal(hostname: &str) -> Option<(&str, u32)> {
    let (prefix, digits) = hostname.rsplit_once('-')?;
    if prefix.is_empty() || digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if digits.len() > 1 && digits.starts_with('0') {
        return None;
    }
    Some((prefix, digits.parse().ok()?))
}

/// A DNS-1123 label as Kubernetes validates names and hostnames: 1-63 of `[a-z0-9-]`,
/// starting and ending with an alphanumeric.
pub fn is_dns1123_label(s: &str) -> bool {
    let bytes = s.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= MAX_LABEL_LEN
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes[0] != b'-'
        && bytes[bytes.len() - 1] != b'-'
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinals() {
        fn check(hostname: &str, expected: Option<(&str, u32)>) {
            assert_eq!(ordinal(hostname), expected, "{hostname}");
        }
        check("web-0", Some(("web", 0)));
        check("web-10", Some(("web", 10)));
        check("my-db-7", Some(("my-db", 7)));
        check("web-01", None);
        check("web", None);
        check("web-", None);
        check("-3", None);
        check("web-x1", None);
        check("web-99999999999", None);
    }

    #[test]
    fn dashed_ips() {
        fn check(ip: &str, expected: &str) {
            assert_eq!(dashed_ip(ip.parse().unwrap()), expected);
        }
        check("10.244.0.7", "10-244-0-7");
        check("fd00::7", "fd00--7");
        check("2001:db8:0:1::a", "2001-db8-0-1--a");
    }

    #[test]
    fn reverse_names() {
        fn check(ip: &str, expected: &str) {
            assert_eq!(reverse_name(ip.parse().unwrap()).to_string(), expected);
        }
        check("10.244.0.7", "7.0.244.10");
        check(
            "fd00::7",
            "7.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f",
        );
    }

    #[test]
    fn reverse_names_parse_back_and_only_those() {
        for ip in [
            "10.244.0.7",
            "0.0.0.0",
            "255.255.255.255",
            "fd00::7",
            "2001:db8::ab:cdef",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            let name = reverse_name(ip);
            assert_eq!(
                parse_reverse_name(name.wire(), ip.is_ipv6()),
                Some(ip),
                "{ip}"
            );
            assert_eq!(parse_reverse_name(name.wire(), !ip.is_ipv6()), None, "{ip}");
        }
        let v4 = |s: &str| RelativeName::from_labels(s.split('.')).unwrap();
        for other in [
            "7.0.244.010",
            "7.0.244.256",
            "7.0.244",
            "7.0.244.10.1",
            "7.0.x.10",
            "7.0.-1.10",
        ] {
            assert_eq!(parse_reverse_name(v4(other).wire(), false), None, "{other}");
        }
        let upper = reverse_name("fd00::7".parse().unwrap())
            .to_string()
            .to_uppercase();
        let upper: Vec<u8> = upper
            .split('.')
            .flat_map(|l| [1, l.as_bytes()[0]])
            .collect();
        assert_eq!(parse_reverse_name(&upper, true), None, "uppercase nibbles");
        for bad in [&b""[..], b"\x05\x01", b"\x017\x010\x03244\x0210\x00"] {
            assert_eq!(parse_reverse_name(bad, false), None, "{bad:?}");
        }
    }

    #[test]
    fn relative_names() {
        let svc = RelativeName::from_labels(["Nginx", "demo", "svc"]).unwrap();
        assert_eq!(svc.wire(), b"\x05nginx\x04demo\x03svc");
        let pod = svc.child("web-0").unwrap();
        assert_eq!(pod.to_string(), "web-0.nginx.demo.svc");
        assert_eq!(pod.parent(), Some(svc.clone()));
        assert_eq!(pod.labels().count(), 4);
        assert_eq!(RelativeName::apex().parent(), None);
        assert!(RelativeName::from_labels(["a", ""]).is_err());
        assert!(RelativeName::from_labels([&*"x".repeat(64)]).is_err());
    }

    #[test]
    fn dns1123_labels() {
        fn check(s: &str, expected: bool) {
            assert_eq!(is_dns1123_label(s), expected, "{s}");
        }
        check("web-0", true);
        check("0abc", true);
        check("Web", false);
        check("-a", false);
        check("a-", false);
        check("", false);
        check("a_b", false);
        check(&"a".repeat(64), false);
    }
}
