//! Security groups as every connector speaks them: a group holds rules,
//! each rule one (direction, protocol, port range, peer) with EC2's
//! meaning; [`IpPermission`] is EC2's grouped form (one protocol and port
//! range, several peers) and [`SecurityGroupRule`] the flat form with a rule
//! id. [`IpPermission::normalized`] checks a permission as EC2 does
//! (protocols `-1`/`tcp`/`udp`/`icmp`/`icmpv6` or a number, ports
//! 0-65535 for tcp and udp, ICMP type and code -1-255, CIDR blocks) and
//! answers EC2's `InvalidParameterValue` otherwise, so every connector and
//! the EC2 front refuse alike.

use crate::error::ConnectorError;
use serde::{Deserialize, Serialize};
use std::net::{Ipv4Addr, Ipv6Addr};

/// A CIDR peer with its optional description.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CidrRange {
    pub cidr: String,
    #[serde(default)]
    pub description: Option<String>,
}

/// A security group peer (by id) with its optional description.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupPair {
    pub group_id: String,
    #[serde(default)]
    pub description: Option<String>,
}

/// EC2's `IpPermission`: one protocol and port range, any number of peers.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct IpPermission {
    /// `-1` (all), `tcp`, `udp`, `icmp`, `icmpv6` or a protocol number.
    pub protocol: String,
    /// First port (tcp/udp) or ICMP type; `None` for `-1`.
    #[serde(default)]
    pub from_port: Option<i32>,
    /// Last port (tcp/udp) or ICMP code; `None` for `-1`.
    #[serde(default)]
    pub to_port: Option<i32>,
    #[serde(default)]
    pub ipv4_ranges: Vec<CidrRange>,
    #[serde(default)]
    pub ipv6_ranges: Vec<CidrRange>,
    #[serde(default)]
    pub groups: Vec<GroupPair>,
}

/// Which way a rule lets traffic through.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RuleDirection {
    Ingress,
    Egress,
}

impl RuleDirection {
    /// `ingress` or `egress`.
    pub fn as_str(self) -> &'static str {
        match self {
            RuleDirection::Ingress => "ingress",
            RuleDirection::Egress => "egress",
        }
    }
}

/// A security group as the cloud describes it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecurityGroupInfo {
    /// The cloud's id (`sg-...`).
    pub group_id: String,
    pub name: String,
    pub description: String,
    #[serde(default)]
    pub vpc_id: Option<String>,
    #[serde(default)]
    pub owner_id: Option<String>,
    #[serde(default)]
    pub ingress: Vec<IpPermission>,
    #[serde(default)]
    pub egress: Vec<IpPermission>,
    #[serde(default)]
    pub tags: Vec<(String, String)>,
}

/// One rule in EC2's flat form (DescribeSecurityGroupRules).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecurityGroupRule {
    /// The cloud's rule id (`sgr-...`).
    pub rule_id: String,
    pub group_id: String,
    pub egress: bool,
    pub protocol: String,
    #[serde(default)]
    pub from_port: Option<i32>,
    #[serde(default)]
    pub to_port: Option<i32>,
    #[serde(default)]
    pub cidr_ipv4: Option<String>,
    #[serde(default)]
    pub cidr_ipv6: Option<String>,
    #[serde(default)]
    pub referenced_group_id: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
}

impl SecurityGroupRule {
    /// Whether two rules are the same rule (descriptions and rule ids aside).
    pub fn same_rule(&self, other: &SecurityGroupRule) -> bool {
        self.egress == other.egress
            && self.protocol == other.protocol
            && self.from_port == other.from_port
            && self.to_port == other.to_port
            && self.cidr_ipv4 == other.cidr_ipv4
            && self.cidr_ipv6 == other.cidr_ipv6
            && self.referenced_group_id == other.referenced_group_id
    }

    /// EC2's words for the rule in `InvalidPermission.Duplicate`.
    pub fn describe(&self) -> String {
        let peer = self.cidr_ipv4.as_deref().or(self.cidr_ipv6.as_deref()).or(self.referenced_group_id.as_deref()).unwrap_or("");
        let proto = if self.protocol == "-1" { "ALL".to_string() } else { self.protocol.to_uppercase() };
        match (self.from_port, self.to_port) {
            (Some(f), Some(t)) if self.protocol != "-1" => format!("peer: {peer}, {proto}, from port: {f}, to port: {t}, ALLOW"),
            _ => format!("peer: {peer}, {proto}, ALLOW"),
        }
    }
}

/// A request for a new security group.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct CreateSecurityGroupRequest {
    pub name: String,
    pub description: String,
    /// The VPC (the account's default VPC when absent).
    pub vpc_id: Option<String>,
}

fn invalid(message: String) -> ConnectorError {
    ConnectorError::InvalidRequest { code: "InvalidParameterValue".into(), message }
}

/// Whether `s` is an IPv4 CIDR block (`a.b.c.d/n`, n ≤ 32).
pub fn is_cidr_v4(s: &str) -> bool {
    let Some((addr, len)) = s.split_once('/') else { return false };
    addr.parse::<Ipv4Addr>().is_ok() && len.parse::<u8>().is_ok_and(|n| n <= 32) && !len.starts_with('+')
}

/// Whether `s` is an IPv6 CIDR block (`addr/n`, n ≤ 128).
pub fn is_cidr_v6(s: &str) -> bool {
    let Some((addr, len)) = s.split_once('/') else { return false };
    addr.parse::<Ipv6Addr>().is_ok() && len.parse::<u8>().is_ok_and(|n| n <= 128) && !len.starts_with('+')
}

/// EC2's canonical protocol name: `tcp`/`6`, `udp`/`17`, `icmp`/`1`,
/// `icmpv6`/`58`, `-1`/`all`, or another number 0-255.
pub fn normalize_protocol(p: &str) -> Option<String> {
    let p = p.trim().to_ascii_lowercase();
    Some(match p.as_str() {
        "tcp" | "6" => "tcp".into(),
        "udp" | "17" => "udp".into(),
        "icmp" | "1" => "icmp".into(),
        "icmpv6" | "58" => "icmpv6".into(),
        "-1" | "all" => "-1".into(),
        n => match n.parse::<u8>() {
            Ok(v) => v.to_string(),
            Err(_) => return None,
        },
    })
}

impl IpPermission {
    /// The permission checked and put in EC2's canonical form, or EC2's
    /// `InvalidParameterValue` naming what is wrong.
    pub fn normalized(&self) -> Result<IpPermission, ConnectorError> {
        let protocol = normalize_protocol(&self.protocol)
            .ok_or_else(|| invalid(format!("Invalid value '{}' for IP protocol. Unknown protocol.", self.protocol)))?;
        let (from_port, to_port) = match protocol.as_str() {
            "tcp" | "udp" => {
                let (Some(f), Some(t)) = (self.from_port, self.to_port) else {
                    return Err(invalid(format!("Invalid value for portRange. Must specify both from and to ports with {protocol}.")));
                };
                if !(0..=65535).contains(&f) || !(0..=65535).contains(&t) || f > t {
                    return Err(invalid(format!("Invalid value for portRange. Must specify both from and to ports with {protocol}.")));
                }
                (Some(f), Some(t))
            }
            "icmp" | "icmpv6" => {
                let (f, t) = (self.from_port.unwrap_or(-1), self.to_port.unwrap_or(-1));
                if !(-1..=255).contains(&f) || !(-1..=255).contains(&t) {
                    return Err(invalid(format!("Invalid value '{f}' for ICMP type or '{t}' for ICMP code.")));
                }
                (Some(f), Some(t))
            }
            // All protocols (and other numbers): no ports.
            _ => (None, None),
        };
        for r in &self.ipv4_ranges {
            if !is_cidr_v4(&r.cidr) {
                return Err(invalid(format!("Value ({}) for parameter cidrIp is invalid. This is not a valid CIDR block.", r.cidr)));
            }
        }
        for r in &self.ipv6_ranges {
            if !is_cidr_v6(&r.cidr) {
                return Err(invalid(format!("Value ({}) for parameter cidrIpv6 is invalid. This is not a valid CIDR block.", r.cidr)));
            }
        }
        for g in &self.groups {
            if !g.group_id.starts_with("sg-") {
                return Err(ConnectorError::InvalidRequest {
                    code: "InvalidGroupId.Malformed".into(),
                    message: format!("Invalid id: \"{}\" (expecting \"sg-...\")", g.group_id),
                });
            }
        }
        if self.ipv4_ranges.is_empty() && self.ipv6_ranges.is_empty() && self.groups.is_empty() {
            return Err(ConnectorError::InvalidRequest {
                code: "MissingParameter".into(),
                message: "The request must contain the parameter ipPermissions (a CIDR range or a security group)".into(),
            });
        }
        Ok(IpPermission { protocol, from_port, to_port, ..self.clone() })
    }

    /// The flat rules of this permission for `group_id` (rule ids empty).
    pub fn rules(&self, group_id: &str, egress: bool) -> Vec<SecurityGroupRule> {
        let base = SecurityGroupRule {
            rule_id: String::new(),
            group_id: group_id.to_string(),
            egress,
            protocol: self.protocol.clone(),
            from_port: self.from_port,
            to_port: self.to_port,
            cidr_ipv4: None,
            cidr_ipv6: None,
            referenced_group_id: None,
            description: None,
        };
        let mut out = Vec::new();
        for r in &self.ipv4_ranges {
            out.push(SecurityGroupRule { cidr_ipv4: Some(r.cidr.clone()), description: r.description.clone(), ..base.clone() });
        }
        for r in &self.ipv6_ranges {
            out.push(SecurityGroupRule { cidr_ipv6: Some(r.cidr.clone()), description: r.description.clone(), ..base.clone() });
        }
        for g in &self.groups {
            out.push(SecurityGroupRule {
                referenced_group_id: Some(g.group_id.clone()),
                description: g.description.clone(),
                ..base.clone()
            });
        }
        out
    }
}

/// Flat rules of one direction grouped back into EC2's permissions (one per
/// protocol and port range, in the order first seen).
pub fn permissions_of(rules: &[SecurityGroupRule], egress: bool) -> Vec<IpPermission> {
    let mut out: Vec<IpPermission> = Vec::new();
    for r in rules.iter().filter(|r| r.egress == egress) {
        let idx = match out.iter().position(|p| p.protocol == r.protocol && p.from_port == r.from_port && p.to_port == r.to_port) {
            Some(i) => i,
            None => {
                out.push(IpPermission {
                    protocol: r.protocol.clone(),
                    from_port: r.from_port,
                    to_port: r.to_port,
                    ..IpPermission::default()
                });
                out.len() - 1
            }
        };
        let p = &mut out[idx];
        if let Some(c) = &r.cidr_ipv4 {
            p.ipv4_ranges.push(CidrRange { cidr: c.clone(), description: r.description.clone() });
        }
        if let Some(c) = &r.cidr_ipv6 {
            p.ipv6_ranges.push(CidrRange { cidr: c.clone(), description: r.description.clone() });
        }
        if let Some(g) = &r.referenced_group_id {
            p.groups.push(GroupPair { group_id: g.clone(), description: r.description.clone() });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp(from: i32, to: i32, cidr: &str) -> IpPermission {
        IpPermission {
            protocol: "6".into(),
            from_port: Some(from),
            to_port: Some(to),
            ipv4_ranges: vec![CidrRange { cidr: cidr.into(), description: None }],
            ..IpPermission::default()
        }
    }

    #[test]
    fn cidrs_and_protocols() {
        assert!(is_cidr_v4("10.0.0.0/8") && is_cidr_v4("0.0.0.0/0"));
        assert!(!is_cidr_v4("10.0.0.0/33") && !is_cidr_v4("10.0.0/8") && !is_cidr_v4("10.0.0.0") && !is_cidr_v4("10.0.0.0/+8"));
        assert!(is_cidr_v6("::/0") && is_cidr_v6("2001:db8::/32") && !is_cidr_v6("2001:db8::/129"));
        assert_eq!(normalize_protocol("TCP").as_deref(), Some("tcp"));
        assert_eq!(normalize_protocol("all").as_deref(), Some("-1"));
        assert_eq!(normalize_protocol("47").as_deref(), Some("47"));
        assert_eq!(normalize_protocol("tcpx"), None);
    }

    #[test]
    fn permissions_are_checked_and_round_trip() {
        let p = tcp(22, 22, "10.0.0.0/8").normalized().unwrap();
        assert_eq!(p.protocol, "tcp");
        let e = tcp(22, 22, "10.0.0.0/33").normalized().unwrap_err();
        assert_eq!(e.code(), Some("InvalidParameterValue"));
        assert!(tcp(23, 22, "10.0.0.0/8").normalized().is_err());
        assert!(tcp(0, 70000, "10.0.0.0/8").normalized().is_err());
        let all = IpPermission { protocol: "-1".into(), from_port: Some(5), ..tcp(0, 0, "0.0.0.0/0") }.normalized().unwrap();
        assert_eq!((all.from_port, all.to_port), (None, None));
        let rules = p.rules("sg-1", false);
        assert_eq!(rules.len(), 1);
        assert_eq!(rules[0].describe(), "peer: 10.0.0.0/8, TCP, from port: 22, to port: 22, ALLOW");
        assert_eq!(permissions_of(&rules, false), vec![p]);
        assert!(permissions_of(&rules, true).is_empty());
    }
}
