//! VPCs and subnets as a cloud describes them, and the checks every
//! connector and the EC2 front share: an IPv4 CIDR block is parsed once
//! ([`Cidr::parse`]) into its network address and prefix, with the host
//! bits zero, so containment and overlap are plain arithmetic.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::Ipv4Addr;

/// A VPC as the cloud describes it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VpcInfo {
    /// The cloud's VPC id (`vpc-...`).
    pub vpc_id: String,
    /// Its primary IPv4 CIDR block.
    pub cidr_block: String,
    /// `pending` or `available`.
    pub state: String,
    /// Whether it is the account's default VPC.
    pub is_default: bool,
    /// `default` (the only tenancy the broker asks for) or `dedicated`.
    pub instance_tenancy: String,
    pub tags: Vec<(String, String)>,
}

/// A subnet as the cloud describes it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubnetInfo {
    /// The cloud's subnet id (`subnet-...`).
    pub subnet_id: String,
    pub vpc_id: String,
    pub cidr_block: String,
    pub availability_zone: String,
    /// `pending` or `available`.
    pub state: String,
    /// Addresses still free (EC2 keeps five of every subnet).
    pub available_ip_address_count: u32,
    /// Whether it is the default subnet of its zone.
    pub default_for_az: bool,
    /// Whether VMs launched here get a public address.
    pub map_public_ip_on_launch: bool,
    pub tags: Vec<(String, String)>,
}

/// A request for a new subnet.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct CreateSubnetRequest {
    pub vpc_id: String,
    pub cidr_block: String,
    /// The zone (the cloud picks one when absent).
    pub availability_zone: Option<String>,
}

/// An IPv4 CIDR block: network address and prefix length, host bits zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    base: u32,
    prefix: u8,
}

impl Cidr {
    /// Parses `a.b.c.d/n` (n in 0..=32). Host bits set are refused, as EC2
    /// refuses them (`10.0.0.1/16` is not a network).
    pub fn parse(s: &str) -> Option<Self> {
        let (addr, prefix) = s.split_once('/')?;
        let addr: Ipv4Addr = addr.parse().ok()?;
        if prefix.is_empty() || prefix.len() > 2 || !prefix.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let prefix: u8 = prefix.parse().ok()?;
        if prefix > 32 {
            return None;
        }
        let base = u32::from(addr);
        let c = Cidr { base, prefix };
        (base & c.mask() == base).then_some(c)
    }

    fn mask(self) -> u32 {
        if self.prefix == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from(self.prefix))
        }
    }

    /// The prefix length.
    pub fn prefix(self) -> u8 {
        self.prefix
    }

    /// How many addresses the block holds.
    pub fn size(self) -> u64 {
        1u64 << (32 - u32::from(self.prefix))
    }

    /// Whether `other` lies wholly inside this block.
    pub fn contains(self, other: Cidr) -> bool {
        other.prefix >= self.prefix && other.base & self.mask() == self.base
    }

    /// Whether an address lies inside this block.
    pub fn contains_addr(self, addr: Ipv4Addr) -> bool {
        u32::from(addr) & self.mask() == self.base
    }

    /// Whether the two blocks share any address.
    pub fn overlaps(self, other: Cidr) -> bool {
        self.contains(other) || other.contains(self)
    }

    /// The `n`-th address of the block (no bound check beyond wrapping inside it).
    pub fn nth(self, n: u64) -> Ipv4Addr {
        let off = (n % self.size()) as u32;
        Ipv4Addr::from(self.base | off)
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", Ipv4Addr::from(self.base), self.prefix)
    }
}

/// The prefix lengths EC2 allows for a VPC's or a subnet's IPv4 block.
pub const PREFIX_RANGE: std::ops::RangeInclusive<u8> = 16..=28;

/// Addresses EC2 keeps in every subnet (network, router, DNS, future, broadcast).
pub const RESERVED_PER_SUBNET: u64 = 5;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs_parse_and_compare() {
        let vpc = Cidr::parse("10.1.0.0/16").unwrap();
        let a = Cidr::parse("10.1.2.0/24").unwrap();
        let b = Cidr::parse("10.1.2.128/25").unwrap();
        let c = Cidr::parse("10.2.0.0/24").unwrap();
        assert!(vpc.contains(a) && vpc.contains(b) && !vpc.contains(c));
        assert!(a.overlaps(b) && b.overlaps(a) && !a.overlaps(c));
        assert_eq!(a.size(), 256);
        assert_eq!(a.nth(4).to_string(), "10.1.2.4");
        assert!(a.contains_addr("10.1.2.200".parse().unwrap()));
        assert_eq!(vpc.to_string(), "10.1.0.0/16");
        for bad in ["10.1.0.1/16", "10.1.0.0", "10.1.0.0/33", "10.1.0.0/", "x/8", "10.1.0.0/+8", "300.1.0.0/16"] {
            assert_eq!(Cidr::parse(bad), None, "{bad}");
        }
    }
}
