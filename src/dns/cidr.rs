//! Address ranges in CIDR notation (`10.0.0.0/8`, `fd00::/8`) and the reverse zones that
//! cover them, as CoreDNS's kubernetes plugin turns the CIDRs of its server block into
//! zones: `10.in-addr.arpa` for `10.0.0.0/8`, and, for a prefix between label boundaries
//! (octets in `in-addr.arpa`, nibbles in `ip6.arpa`), every zone of the next boundary that
//! the range covers (`10.0.0.0/9` is `0.10` to `127.10`).

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use crate::dns::name::{RelativeName, reverse_name};

/// An address range: the network address and its prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    pub fn network(&self) -> IpAddr {
        self.network
    }

    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// Whether `address` is in the range.
    pub fn contains(&self, address: IpAddr) -> bool {
        let width = if self.network.is_ipv4() { 32 } else { 128 };
        if address.is_ipv4() != self.network.is_ipv4() {
            return false;
        }
        let host_bits = width - u32::from(self.prefix);
        let mask = u128::MAX.checked_shl(host_bits).unwrap_or(0);
        address_bits(address) & mask == address_bits(self.network) & mask
    }

    /// The reverse zones that cover exactly this range, relative to `in-addr.arpa` or
    /// `ip6.arpa` (the root of that tree when the prefix is 0), in address order.
    pub fn reverse_zones(&self) -> Vec<RelativeName> {
        // Bits per label of the reverse tree, and labels in a full reverse name.
        let (label_bits, labels) = match self.network {
            IpAddr::V4(_) => (8u32, 4usize),
            IpAddr::V6(_) => (4, 32),
        };
        let prefix = u32::from(self.prefix);
        let zone_labels = prefix.div_ceil(label_bits);
        // Zones at the next label boundary below the prefix: 2^(spare bits) of them.
        let spare = zone_labels * label_bits - prefix;
        let width = labels as u32 * label_bits;
        let base = address_bits(self.network);
        (0..1u128 << spare)
            .map(|n| {
                let network = base | n.checked_shl(width - zone_labels * label_bits).unwrap_or(0);
                // The full name has one label per `label_bits`, least significant first: the
                // zone is its last `zone_labels` labels.
                let mut zone = reverse_name(from_bits(network, self.network.is_ipv6()));
                for _ in zone_labels as usize..labels {
                    zone = zone.parent().unwrap_or_else(RelativeName::apex);
                }
                zone
            })
            .collect()
    }
}

/// The address as an integer, IPv4 in the low 32 bits.
fn address_bits(address: IpAddr) -> u128 {
    match address {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

fn from_bits(bits: u128, v6: bool) -> IpAddr {
    if v6 {
        IpAddr::V6(bits.into())
    } else {
        // Only ever built from an IPv4 address and bits below its prefix: 32 bits.
        IpAddr::V4(u32::try_from(bits).unwrap_or(u32::MAX).into())
    }
}

/// Why a CIDR was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CidrError(String);

impl FromStr for Cidr {
    type Err = CidrError;

    fn from_str(text: &str) -> Result<Self, CidrError> {
        let fail = |why: &str| CidrError(format!("{text:?}: {why}"));
        // A lone address is the range of it alone.
        let (address, prefix) = match text.split_once('/') {
            Some(parts) => parts,
            None if text.parse::<IpAddr>().is_ok_and(|a| a.is_ipv4()) => (text, "32"),
            None if text.parse::<IpAddr>().is_ok() => (text, "128"),
            None => return Err(fail("not ADDRESS/PREFIX, e.g. 10.0.0.0/8 or fd00::/8")),
        };
        let network: IpAddr = address.parse().map_err(|_| fail("not an IP address"))?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix: u8 = prefix
            .parse()
            .ok()
            .filter(|p| *p <= max)
            .ok_or_else(|| fail(&format!("the prefix length is not 0 to {max}")))?;
        let host_bits = u32::from(max - prefix);
        let mask = u128::MAX.checked_shl(host_bits).unwrap_or(0);
        let bits = address_bits(network);
        if bits & !mask != 0 {
            let masked = from_bits(bits & mask, network.is_ipv6());
            return Err(fail(&format!(
                "the address has bits past the prefix; did you mean {masked}/{prefix}?"
            )));
        }
        Ok(Self { network, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zones(text: &str) -> Vec<String> {
        let cidr: Cidr = text.parse().unwrap();
        cidr.reverse_zones()
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn prefixes_on_a_boundary_are_one_zone() {
        assert_eq!(zones("10.0.0.0/8"), ["10"]);
        assert_eq!(zones("10.244.0.0/16"), ["244.10"]);
        assert_eq!(zones("192.168.1.0/24"), ["1.168.192"]);
        assert_eq!(zones("10.0.0.7/32"), ["7.0.0.10"]);
        assert_eq!(zones("0.0.0.0/0"), ["@"]);
        assert_eq!(zones("fd00::/8"), ["d.f"]);
        assert_eq!(zones("fd00:10::/32"), ["0.1.0.0.0.0.d.f"]);
    }

    #[test]
    fn other_prefixes_are_every_zone_of_the_next_boundary() {
        assert_eq!(zones("10.96.0.0/12").len(), 16);
        assert_eq!(zones("10.96.0.0/12")[0], "96.10");
        assert_eq!(zones("10.96.0.0/12")[15], "111.10");
        let halves = zones("10.0.0.0/9");
        assert_eq!(
            (halves.len(), &halves[0][..], &halves[127][..]),
            (128, "0.10", "127.10")
        );
        assert_eq!(zones("fc00::/7"), ["c.f", "d.f"]);
        assert_eq!(zones("0.0.0.0/1").len(), 128);
    }

    #[test]
    fn a_range_holds_its_addresses_and_a_lone_address_is_a_range() {
        let range: Cidr = "10.244.0.0/16".parse().unwrap();
        assert!(range.contains("10.244.9.9".parse().unwrap()));
        assert!(!range.contains("10.245.0.1".parse().unwrap()));
        assert!(!range.contains("fd00::1".parse().unwrap()));
        let one: Cidr = "127.0.0.1".parse().unwrap();
        assert_eq!(one.to_string(), "127.0.0.1/32");
        assert!(one.contains("127.0.0.1".parse().unwrap()));
        assert!(!one.contains("127.0.0.2".parse().unwrap()));
        let all: Cidr = "::/0".parse().unwrap();
        assert!(all.contains("fd00::1".parse().unwrap()));
    }

    #[test]
    fn bad_cidrs_say_why() {
        fn check(text: &str, needle: &str) {
            let error = text.parse::<Cidr>().expect_err(text).to_string();
            assert!(error.contains(needle), "{text}: {error}");
        }
        check("ten", "ADDRESS/PREFIX");
        check("ten/8", "not an IP address");
        check("10.0.0.0/33", "0 to 32");
        check("fd00::/129", "0 to 128");
        check("10.0.0.1/8", "did you mean 10.0.0.0/8");
    }
}
