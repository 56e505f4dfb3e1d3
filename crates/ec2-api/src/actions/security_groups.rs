//! Security groups: `CreateSecurityGroup`, `DeleteSecurityGroup`,
//! `DescribeSecurityGroups`, `AuthorizeSecurityGroupIngress/Egress`,
//! `RevokeSecurityGroupIngress/Egress`, `DescribeSecurityGroupRules`, and
//! the group parameters of RunInstances (`SecurityGroup.N`,
//! `SecurityGroupId.N`). Groups are the cloud's, kept by the broker for the
//! project the access key acts in (rules included: Describe answers from
//! the broker's records); another project's group does not exist
//! (`InvalidGroup.NotFound`); a viewer's change is `UnauthorizedOperation`.
//! Permissions come as `IpPermissions.N.*` (`IpProtocol`, `FromPort`,
//! `ToPort`, `IpRanges.M.CidrIp`/`Description`,
//! `Ipv6Ranges.M.CidrIpv6`/`Description`, `Groups.M.GroupId`/`Description`)
//! or EC2's older flat form (`IpProtocol`, `FromPort`, `ToPort`, `CidrIp`);
//! they are checked as EC2 does ([`IpPermission::normalized`]).

use super::Ctx;
use crate::error::Ec2Error;
use crate::filter::Filter;
use crate::ids::shown;
use crate::request::Params;
use crate::xml::Xml;
use cloudbroker_connector_api::{CidrRange, GroupPair, IpPermission, RuleDirection, SecurityGroupRule};
use cloudbroker_core::domain::Tags;
use cloudbroker_core::provisioning::SecurityGroup;
use std::collections::BTreeMap;

/// A `sg-` id, or EC2's `InvalidGroupId.Malformed`.
pub fn group_id(raw: &str) -> Result<String, Ec2Error> {
    let hex = raw.strip_prefix("sg-").unwrap_or("");
    if hex.is_empty() || hex.len() > 64 || !hex.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(Ec2Error::client("InvalidGroupId.Malformed", format!("Invalid id: \"{}\" (expecting \"sg-...\")", shown(raw))));
    }
    Ok(raw.to_string())
}

/// `{prefix}.N` group ids, each well formed.
pub fn group_ids(params: &Params, prefix: &str) -> Result<Vec<String>, Ec2Error> {
    params.list(prefix)?.iter().map(|s| group_id(s)).collect()
}

/// `{prefix}.N` group names, each 1-255 characters.
pub fn group_names(params: &Params, prefix: &str) -> Result<Vec<String>, Ec2Error> {
    let names = params.list(prefix)?;
    for n in &names {
        if n.is_empty() || n.chars().count() > 255 || n.chars().any(char::is_control) {
            return Err(Ec2Error::invalid(format!(
                "Value ({}) for parameter {prefix} is invalid: a group name of 1-255 characters",
                shown(n)
            )));
        }
    }
    Ok(names)
}

/// `CreateSecurityGroup`'s parameters.
pub struct CreateSecurityGroupInput {
    pub name: String,
    pub description: String,
    pub vpc_id: Option<String>,
    pub tags: Tags,
}

impl CreateSecurityGroupInput {
    pub fn parse(params: &Params) -> Result<Self, Ec2Error> {
        let name = params.required("GroupName")?.to_string();
        let description = params.required("GroupDescription")?.to_string();
        if name.chars().count() > 255 || name.chars().any(char::is_control) {
            return Err(Ec2Error::invalid(format!("Value ({}) for parameter GroupName is invalid: 1-255 characters", shown(&name))));
        }
        if name.to_ascii_lowercase().starts_with("sg-") {
            return Err(Ec2Error::invalid("Group names may not be in the format sg-*"));
        }
        if description.chars().count() > 255 || description.chars().any(char::is_control) {
            return Err(Ec2Error::invalid("Value for parameter GroupDescription is invalid: 1-255 characters"));
        }
        let vpc_id = match params.get("VpcId").filter(|v| !v.is_empty()) {
            Some(v) if v.starts_with("vpc-") && v.len() <= 64 => Some(v.to_string()),
            Some(v) => {
                return Err(Ec2Error::client("InvalidVpcID.Malformed", format!("Invalid id: \"{}\" (expecting \"vpc-...\")", shown(v))))
            }
            None => None,
        };
        let tags = Tags::parse_resource(params.tag_specifications("security-group")?.into_iter().collect())
            .map_err(|e| Ec2Error::invalid(format!("TagSpecification: {}", e.message)))?;
        Ok(Self { name, description, vpc_id, tags })
    }
}

/// A group named by `GroupId` or `GroupName` (DeleteSecurityGroup, Authorize/Revoke).
pub enum GroupRef {
    Id(String),
    Name(String),
}

impl GroupRef {
    fn parse(params: &Params) -> Result<Self, Ec2Error> {
        if let Some(id) = params.get("GroupId").filter(|v| !v.is_empty()) {
            return Ok(GroupRef::Id(group_id(id)?));
        }
        match params.get("GroupName").filter(|v| !v.is_empty()) {
            Some(n) => Ok(GroupRef::Name(n.to_string())),
            None => Err(Ec2Error::missing("GroupId")),
        }
    }
}

/// `DeleteSecurityGroup`'s parameters.
pub struct DeleteSecurityGroupInput {
    pub group: GroupRef,
}

impl DeleteSecurityGroupInput {
    pub fn parse(params: &Params) -> Result<Self, Ec2Error> {
        Ok(Self { group: GroupRef::parse(params)? })
    }
}

/// `Authorize/RevokeSecurityGroupIngress/Egress`' parameters.
pub struct RulesInput {
    pub group: GroupRef,
    pub permissions: Vec<IpPermission>,
    /// Peer groups given by name (`IpPermissions.N.Groups.M.GroupName`,
    /// `SourceSecurityGroupName`): `(permission, group)` positions in
    /// `permissions` holding [`NAMED`], and the name to resolve there.
    pub group_names: NamedPeers,
    /// `SourceSecurityGroupOwnerId` (ingress only): the caller's own.
    pub source_owner: Option<String>,
    /// `SecurityGroupRuleId.N` (revokes only; not with permissions).
    pub rule_ids: Vec<String>,
}

/// Peer groups given by name: `(permission, group)` positions and names.
type NamedPeers = Vec<(usize, usize, String)>;

/// The place of a peer group given by name until it is resolved (a valid
/// `sg-` prefix for the permission's checks, never a real id).
const NAMED: &str = "sg-";

fn unknown(name: &str) -> Ec2Error {
    Ec2Error::client("UnknownParameter", format!("The parameter {} is not recognized", shown(name)))
}

fn index_of(name: &str, n: &str) -> Result<usize, Ec2Error> {
    match n.parse::<usize>() {
        Ok(i) if (1..=1_000).contains(&i) && !n.starts_with('0') => Ok(i),
        _ => Err(Ec2Error::invalid(format!("parameter {}: list index must be 1 to 1000", shown(name)))),
    }
}

fn port(name: &str, v: &str) -> Result<i32, Ec2Error> {
    v.parse::<i32>().map_err(|_| Ec2Error::invalid(format!("Value ({}) for parameter {} is invalid: a port number", shown(v), shown(name))))
}

#[derive(Default)]
struct PermParts {
    protocol: Option<String>,
    from: Option<i32>,
    to: Option<i32>,
    v4: BTreeMap<usize, (Option<String>, Option<String>)>,
    v6: BTreeMap<usize, (Option<String>, Option<String>)>,
    groups: BTreeMap<usize, (Option<String>, Option<String>)>,
    /// `Groups.M.GroupName`, by M.
    group_names: BTreeMap<usize, String>,
}

/// `IpPermissions.N.*`, in index order.
pub fn permissions(params: &Params) -> Result<Vec<IpPermission>, Ec2Error> {
    Ok(permissions_named(params)?.0)
}

/// `IpPermissions.N.*`, in index order, with the positions of the peer
/// groups given by name (`Groups.M.GroupName` without a `GroupId`).
fn permissions_named(params: &Params) -> Result<(Vec<IpPermission>, NamedPeers), Ec2Error> {
    let mut parts: BTreeMap<usize, PermParts> = BTreeMap::new();
    let names: Vec<String> = params.names_under("IpPermissions").into_iter().map(str::to_string).collect();
    for name in &names {
        let value = params.get(name).unwrap_or_default().to_string();
        let rest = &name["IpPermissions.".len()..];
        let (n, field) = rest.split_once('.').ok_or_else(|| unknown(name))?;
        let p = parts.entry(index_of(name, n)?).or_default();
        match field {
            "IpProtocol" => p.protocol = Some(value),
            "FromPort" => p.from = Some(port(name, &value)?),
            "ToPort" => p.to = Some(port(name, &value)?),
            _ => {
                let (list, rest) = field.split_once('.').ok_or_else(|| unknown(name))?;
                let (m, member) = rest.split_once('.').ok_or_else(|| unknown(name))?;
                let m = index_of(name, m)?;
                let (slot, key) = match list {
                    "IpRanges" => (&mut p.v4, "CidrIp"),
                    "Ipv6Ranges" => (&mut p.v6, "CidrIpv6"),
                    "Groups" => (&mut p.groups, "GroupId"),
                    _ => return Err(unknown(name)),
                };
                if list == "Groups" && member == "GroupName" {
                    p.group_names.insert(m, value);
                    p.groups.entry(m).or_default();
                    continue;
                }
                let e = slot.entry(m).or_default();
                if member == key {
                    e.0 = Some(value);
                } else if member == "Description" {
                    e.1 = Some(value);
                } else {
                    return Err(unknown(name));
                }
            }
        }
    }
    let mut out = Vec::with_capacity(parts.len());
    let mut named = Vec::new();
    for (n, mut p) in parts {
        // A group given by name only holds its place until it is resolved.
        for (m, name) in &p.group_names {
            if let Some(e) = p.groups.get_mut(m).filter(|e| e.0.is_none()) {
                e.0 = Some(NAMED.to_string());
                let at = p.groups.range(..m).count();
                named.push((out.len(), at, name.clone()));
            }
        }
        let protocol = p.protocol.ok_or_else(|| Ec2Error::missing(&format!("IpPermissions.{n}.IpProtocol")))?;
        let take = |m: BTreeMap<usize, (Option<String>, Option<String>)>, list: &str, key: &str| {
            m.into_iter()
                .map(|(i, (v, d))| {
                    let v = v.ok_or_else(|| Ec2Error::missing(&format!("IpPermissions.{n}.{list}.{i}.{key}")))?;
                    Ok((v, d))
                })
                .collect::<Result<Vec<_>, Ec2Error>>()
        };
        let ipv4_ranges =
            take(p.v4, "IpRanges", "CidrIp")?.into_iter().map(|(cidr, description)| CidrRange { cidr, description }).collect();
        let ipv6_ranges =
            take(p.v6, "Ipv6Ranges", "CidrIpv6")?.into_iter().map(|(cidr, description)| CidrRange { cidr, description }).collect();
        let groups = take(p.groups, "Groups", "GroupId")?
            .into_iter()
            .map(|(g, description)| Ok(GroupPair { group_id: if g == NAMED { g } else { group_id(&g)? }, description }))
            .collect::<Result<Vec<_>, Ec2Error>>()?;
        out.push(IpPermission { protocol, from_port: p.from, to_port: p.to, ipv4_ranges, ipv6_ranges, groups });
    }
    Ok((out, named))
}

/// `SourceSecurityGroupName` (and `SourceSecurityGroupOwnerId`), ingress
/// only: full ICMP, TCP and UDP access from that group, as EC2 grants; not
/// with the flat form's protocol, ports or CIDR.
fn source_group(params: &Params, out: &mut RulesInput) -> Result<(), Ec2Error> {
    let name = params.get("SourceSecurityGroupName").filter(|n| !n.is_empty()).map(str::to_string);
    out.source_owner = params.get("SourceSecurityGroupOwnerId").filter(|n| !n.is_empty()).map(str::to_string);
    let Some(name) = name else {
        if out.source_owner.is_some() {
            return Err(Ec2Error::missing("SourceSecurityGroupName"));
        }
        return Ok(());
    };
    if let Some(flat) = ["IpProtocol", "FromPort", "ToPort", "CidrIp"].into_iter().find(|p| params.get(p).is_some()) {
        return Err(Ec2Error::client(
            "InvalidParameterCombination",
            format!("The parameter SourceSecurityGroupName cannot be used with the parameter {flat}"),
        ));
    }
    for (protocol, from, to) in [("icmp", -1, -1), ("tcp", 0, 65535), ("udp", 0, 65535)] {
        out.group_names.push((out.permissions.len(), 0, name.clone()));
        out.permissions.push(IpPermission {
            protocol: protocol.into(),
            from_port: Some(from),
            to_port: Some(to),
            groups: vec![GroupPair { group_id: NAMED.into(), description: None }],
            ..IpPermission::default()
        });
    }
    Ok(())
}

/// `SecurityGroupRuleId.N` (revokes): well-formed `sgr-` ids, not with permissions.
fn rule_ids(params: &Params, out: &mut RulesInput) -> Result<(), Ec2Error> {
    let ids = params.list("SecurityGroupRuleId")?;
    if let Some(bad) = ids.iter().find(|r| {
        let hex = r.strip_prefix("sgr-").unwrap_or("");
        hex.is_empty() || hex.len() > 64 || !hex.chars().all(|c| c.is_ascii_alphanumeric())
    }) {
        return Err(Ec2Error::client(
            "InvalidSecurityGroupRuleId.Malformed",
            format!("Invalid id: \"{}\" (expecting \"sgr-...\")", shown(bad)),
        ));
    }
    if !ids.is_empty() && !out.permissions.is_empty() {
        return Err(Ec2Error::client(
            "InvalidParameterCombination",
            "The parameter SecurityGroupRuleId cannot be used with the parameter IpPermissions",
        ));
    }
    out.rule_ids = ids;
    Ok(())
}

/// EC2's older flat form: `IpProtocol`, `FromPort`, `ToPort`, `CidrIp`.
fn flat_permission(params: &Params) -> Result<Option<IpPermission>, Ec2Error> {
    let protocol = params.get("IpProtocol").map(str::to_string);
    let from = params.get("FromPort").map(|v| port("FromPort", v)).transpose()?;
    let to = params.get("ToPort").map(|v| port("ToPort", v)).transpose()?;
    let cidr = params.get("CidrIp").map(str::to_string);
    if protocol.is_none() && from.is_none() && to.is_none() && cidr.is_none() {
        return Ok(None);
    }
    let protocol = protocol.ok_or_else(|| Ec2Error::missing("IpProtocol"))?;
    let cidr = cidr.ok_or_else(|| Ec2Error::missing("CidrIp"))?;
    Ok(Some(IpPermission {
        protocol,
        from_port: from,
        to_port: to,
        ipv4_ranges: vec![CidrRange { cidr, description: None }],
        ..IpPermission::default()
    }))
}

impl RulesInput {
    /// `AuthorizeSecurityGroupEgress`'s parameters (the other three add theirs).
    pub fn parse(params: &Params) -> Result<Self, Ec2Error> {
        Self::parse_as(params, false, false)
    }

    /// `AuthorizeSecurityGroupIngress`': also `SourceSecurityGroupName`/`OwnerId`.
    pub fn parse_ingress(params: &Params) -> Result<Self, Ec2Error> {
        Self::parse_as(params, true, false)
    }

    /// `RevokeSecurityGroupEgress`': also `SecurityGroupRuleId.N`.
    pub fn parse_revoke_egress(params: &Params) -> Result<Self, Ec2Error> {
        Self::parse_as(params, false, true)
    }

    /// `RevokeSecurityGroupIngress`': both.
    pub fn parse_revoke_ingress(params: &Params) -> Result<Self, Ec2Error> {
        Self::parse_as(params, true, true)
    }

    fn parse_as(params: &Params, ingress: bool, revoke: bool) -> Result<Self, Ec2Error> {
        let group = GroupRef::parse(params)?;
        let (permissions, group_names) = permissions_named(params)?;
        let mut out = Self { group, permissions, group_names, source_owner: None, rule_ids: Vec::new() };
        if ingress {
            source_group(params, &mut out)?;
        }
        if let Some(p) = flat_permission(params)? {
            out.permissions.push(p);
        }
        if revoke {
            rule_ids(params, &mut out)?;
        }
        if out.permissions.is_empty() && out.rule_ids.is_empty() {
            return Err(Ec2Error::missing("IpPermissions"));
        }
        for p in &mut out.permissions {
            *p = p.normalized().map_err(cloudbroker_core::ServiceError::from)?;
        }
        Ok(out)
    }

    /// The peer groups given by name, resolved among the groups the caller
    /// sees in `group`'s VPC (else `InvalidGroup.NotFound`), and the rules
    /// named by id, as permissions (else `InvalidSecurityGroupRuleId.NotFound`).
    fn resolve(
        mut self,
        ctx: &Ctx<'_>,
        group: &SecurityGroup,
        seen: &[SecurityGroup],
        egress: bool,
    ) -> Result<Vec<IpPermission>, Ec2Error> {
        if let Some(owner) = &self.source_owner {
            if *owner != ctx.caller.actor.project.as_str() {
                return Err(Ec2Error::invalid(format!(
                    "Value ({}) for parameter SourceSecurityGroupOwnerId is invalid: only your own groups (owner id {}) can be named",
                    shown(owner),
                    ctx.caller.actor.project
                )));
            }
        }
        for (p, g, name) in &self.group_names {
            let found = seen.iter().find(|s| &s.name == name && s.vpc_id == group.vpc_id).ok_or_else(|| {
                Ec2Error::client(
                    "InvalidGroup.NotFound",
                    format!("The security group '{}' does not exist in VPC '{}'", shown(name), group.vpc_id.as_deref().unwrap_or("")),
                )
            })?;
            if let Some(pair) = self.permissions.get_mut(*p).and_then(|perm| perm.groups.get_mut(*g)) {
                pair.group_id = found.group_id.clone();
            }
        }
        for id in &self.rule_ids {
            let r = group.rules.iter().find(|r| &r.rule_id == id && r.egress == egress).ok_or_else(|| {
                Ec2Error::client(
                    "InvalidSecurityGroupRuleId.NotFound",
                    format!("The security group rule ID '{}' does not exist", shown(id)),
                )
            })?;
            let range = |c: &Option<String>| c.iter().map(|cidr| CidrRange { cidr: cidr.clone(), description: None }).collect();
            self.permissions.push(IpPermission {
                protocol: r.protocol.clone(),
                from_port: r.from_port,
                to_port: r.to_port,
                ipv4_ranges: range(&r.cidr_ipv4),
                ipv6_ranges: range(&r.cidr_ipv6),
                groups: r.referenced_group_id.iter().map(|g| GroupPair { group_id: g.clone(), description: None }).collect(),
            });
        }
        Ok(self.permissions)
    }
}

/// The filters DescribeSecurityGroups takes (besides `tag:<key>`, `tag-key`, `tag-value`).
pub const GROUP_FILTERS: &[&str] = &[
    "group-id",
    "group-name",
    "description",
    "vpc-id",
    "owner-id",
    "ip-permission.protocol",
    "ip-permission.from-port",
    "ip-permission.to-port",
    "ip-permission.cidr",
    "ip-permission.ipv6-cidr",
    "ip-permission.group-id",
    "egress.ip-permission.protocol",
    "egress.ip-permission.from-port",
    "egress.ip-permission.to-port",
    "egress.ip-permission.cidr",
    "egress.ip-permission.ipv6-cidr",
    "egress.ip-permission.group-id",
];

/// `DescribeSecurityGroups`' parameters.
pub struct DescribeSecurityGroupsInput {
    pub ids: Vec<String>,
    pub names: Vec<String>,
    pub filters: Vec<Filter>,
    pub page: crate::filter::Page,
}

impl DescribeSecurityGroupsInput {
    pub fn parse(params: &Params) -> Result<Self, Ec2Error> {
        let filters = crate::filter::parse(params)?;
        crate::filter::check_names(&filters, GROUP_FILTERS, true)?;
        let ids = group_ids(params, "GroupId")?;
        let names = params.list("GroupName")?;
        let page = crate::filter::Page::parse(params, 5..=1000)?;
        if page.max.is_some() && !(ids.is_empty() && names.is_empty()) {
            return Err(Ec2Error::client(
                "InvalidParameterCombination",
                "The parameter groupIds cannot be used with the parameter maxResults",
            ));
        }
        Ok(Self { ids, names, filters, page })
    }
}

/// The filters DescribeSecurityGroupRules takes (besides tags).
pub const RULE_FILTERS: &[&str] = &["group-id", "security-group-rule-id"];

/// `DescribeSecurityGroupRules`' parameters.
pub struct DescribeSecurityGroupRulesInput {
    pub rule_ids: Vec<String>,
    pub filters: Vec<Filter>,
    pub page: crate::filter::Page,
}

impl DescribeSecurityGroupRulesInput {
    pub fn parse(params: &Params) -> Result<Self, Ec2Error> {
        let filters = crate::filter::parse(params)?;
        crate::filter::check_names(&filters, RULE_FILTERS, true)?;
        let rule_ids = params.list("SecurityGroupRuleId")?;
        if let Some(bad) = rule_ids.iter().find(|r| !r.starts_with("sgr-")) {
            return Err(Ec2Error::client(
                "InvalidSecurityGroupRuleId.Malformed",
                format!("Invalid id: \"{}\" (expecting \"sgr-...\")", shown(bad)),
            ));
        }
        let page = crate::filter::Page::parse(params, 5..=1000)?;
        Ok(Self { rule_ids, filters, page })
    }
}

fn tags_xml(x: &mut Xml, tags: &BTreeMap<String, String>) {
    x.open("tagSet");
    for (k, v) in tags {
        x.open("item").leaf("key", k).leaf("value", v).close("item");
    }
    x.close("tagSet");
}

fn permissions_xml(x: &mut Xml, tag: &str, perms: &[IpPermission], owner: &str) {
    x.open(tag);
    for p in perms {
        x.open("item").leaf("ipProtocol", &p.protocol);
        if let (Some(f), Some(t)) = (p.from_port, p.to_port) {
            x.leaf_display("fromPort", f).leaf_display("toPort", t);
        }
        x.open("groups");
        for g in &p.groups {
            x.open("item").leaf("userId", owner).leaf("groupId", &g.group_id).opt("description", g.description.as_deref()).close("item");
        }
        x.close("groups").open("ipRanges");
        for r in &p.ipv4_ranges {
            x.open("item").leaf("cidrIp", &r.cidr).opt("description", r.description.as_deref()).close("item");
        }
        x.close("ipRanges").open("ipv6Ranges");
        for r in &p.ipv6_ranges {
            x.open("item").leaf("cidrIpv6", &r.cidr).opt("description", r.description.as_deref()).close("item");
        }
        x.close("ipv6Ranges").open("prefixListIds").close("prefixListIds").close("item");
    }
    x.close(tag);
}

fn rules_xml(x: &mut Xml, rules: &[SecurityGroupRule], owner: &str) {
    x.open("securityGroupRuleSet");
    for r in rules {
        rule_item(x, r, owner);
    }
    x.close("securityGroupRuleSet");
}

async fn resolve(ctx: &Ctx<'_>, group: &GroupRef) -> Result<SecurityGroup, Ec2Error> {
    let instance = ctx.instance()?;
    let p = &ctx.broker.provisioning;
    Ok(match group {
        GroupRef::Id(id) => p.security_group(&ctx.caller.actor, &instance, id).await?,
        GroupRef::Name(n) => p.security_group_named(&ctx.caller.actor, &instance, n).await?,
    })
}

pub async fn create_security_group(ctx: &Ctx<'_>, input: CreateSecurityGroupInput) -> Result<String, Ec2Error> {
    let instance = ctx.instance()?;
    if ctx.dry_run {
        ctx.caller.actor.require_act()?;
        return Err(Ec2Error::dry_run());
    }
    let g = ctx
        .broker
        .provisioning
        .create_security_group(&ctx.caller.actor, &instance, &input.name, &input.description, input.vpc_id.as_deref(), &input.tags)
        .await?;
    let (mut x, root) = ctx.doc("CreateSecurityGroup");
    x.leaf("return", "true").leaf("groupId", &g.group_id);
    if !g.tags.is_empty() {
        tags_xml(&mut x, &g.tags);
    }
    Ok(x.finish(&root))
}

pub async fn delete_security_group(ctx: &Ctx<'_>, input: DeleteSecurityGroupInput) -> Result<String, Ec2Error> {
    let instance = ctx.instance()?;
    if let GroupRef::Name(n) = &input.group {
        if n == "default" {
            // Every VPC's own group stays, as at EC2.
            return Err(Ec2Error::client("CannotDelete", "the specified group: \"default\" name: \"default\" cannot be deleted by a user"));
        }
    }
    let g = resolve(ctx, &input.group).await?;
    if ctx.dry_run {
        ctx.caller.actor.require_act()?;
        return Err(Ec2Error::dry_run());
    }
    ctx.broker.provisioning.delete_security_group(&ctx.caller.actor, &instance, &g.group_id).await?;
    let (mut x, root) = ctx.doc("DeleteSecurityGroup");
    x.leaf("return", "true").leaf("groupId", &g.group_id);
    Ok(x.finish(&root))
}

async fn change_rules(
    ctx: &Ctx<'_>,
    action: &str,
    direction: RuleDirection,
    authorize: bool,
    input: RulesInput,
) -> Result<String, Ec2Error> {
    let instance = ctx.instance()?;
    let g = resolve(ctx, &input.group).await?;
    let p = &ctx.broker.provisioning;
    let seen = if input.group_names.is_empty() { Vec::new() } else { p.security_groups(&ctx.caller.actor, &instance).await? };
    let permissions = input.resolve(ctx, &g, &seen, direction == RuleDirection::Egress)?;
    if ctx.dry_run {
        ctx.caller.actor.require_act()?;
        return Err(Ec2Error::dry_run());
    }
    let (mut x, root) = ctx.doc(action);
    x.leaf("return", "true");
    if authorize {
        let added = p.authorize_security_group(&ctx.caller.actor, &instance, &g.group_id, direction, &permissions).await?;
        rules_xml(&mut x, &added, &g.project);
    } else {
        p.revoke_security_group(&ctx.caller.actor, &instance, &g.group_id, direction, &permissions).await?;
    }
    Ok(x.finish(&root))
}

pub async fn authorize_ingress(ctx: &Ctx<'_>, input: RulesInput) -> Result<String, Ec2Error> {
    change_rules(ctx, "AuthorizeSecurityGroupIngress", RuleDirection::Ingress, true, input).await
}

pub async fn authorize_egress(ctx: &Ctx<'_>, input: RulesInput) -> Result<String, Ec2Error> {
    change_rules(ctx, "AuthorizeSecurityGroupEgress", RuleDirection::Egress, true, input).await
}

pub async fn revoke_ingress(ctx: &Ctx<'_>, input: RulesInput) -> Result<String, Ec2Error> {
    change_rules(ctx, "RevokeSecurityGroupIngress", RuleDirection::Ingress, false, input).await
}

pub async fn revoke_egress(ctx: &Ctx<'_>, input: RulesInput) -> Result<String, Ec2Error> {
    change_rules(ctx, "RevokeSecurityGroupEgress", RuleDirection::Egress, false, input).await
}

fn keep(g: &SecurityGroup, filters: &[Filter]) -> bool {
    filters.iter().all(|f| {
        if let Some(m) = f.tags(g.tags.iter().map(|(k, v)| (k.as_str(), v.as_str()))) {
            return m;
        }
        let (egress, field) = match f.name.strip_prefix("egress.") {
            Some(rest) => (true, rest),
            None => (false, f.name.as_str()),
        };
        let rules = || g.rules.iter().filter(move |r| r.egress == egress);
        let num = |v: Option<i32>| v.unwrap_or(-1).to_string();
        match field {
            "group-id" => f.any(Some(&g.group_id)),
            "group-name" => f.any(Some(&g.name)),
            "description" => f.any(Some(&g.description)),
            "vpc-id" => f.any(g.vpc_id.as_deref()),
            "owner-id" => f.any(Some(&g.project)),
            "ip-permission.protocol" => rules().any(|r| f.any(Some(&r.protocol))),
            "ip-permission.from-port" => rules().any(|r| f.any(Some(&num(r.from_port)))),
            "ip-permission.to-port" => rules().any(|r| f.any(Some(&num(r.to_port)))),
            "ip-permission.cidr" => rules().any(|r| f.any(r.cidr_ipv4.as_deref())),
            "ip-permission.ipv6-cidr" => rules().any(|r| f.any(r.cidr_ipv6.as_deref())),
            "ip-permission.group-id" => rules().any(|r| f.any(r.referenced_group_id.as_deref())),
            _ => false,
        }
    })
}

pub async fn describe_security_groups(ctx: &Ctx<'_>, input: DescribeSecurityGroupsInput) -> Result<String, Ec2Error> {
    let DescribeSecurityGroupsInput { ids, names, filters, page } = input;
    let instance = ctx.instance()?;
    let mine = ctx.broker.provisioning.security_groups(&ctx.caller.actor, &instance).await?;
    if let Some(missing) = ids.iter().find(|id| !mine.iter().any(|g| &g.group_id == *id)) {
        return Err(crate::error::object_not_found(cloudbroker_core::ObjectKind::SecurityGroup, missing));
    }
    if let Some(missing) = names.iter().find(|n| !mine.iter().any(|g| &g.name == *n)) {
        return Err(crate::error::object_not_found(cloudbroker_core::ObjectKind::SecurityGroup, missing));
    }
    let mine: Vec<SecurityGroup> = mine
        .into_iter()
        .filter(|g| (ids.is_empty() || ids.contains(&g.group_id)) && (names.is_empty() || names.contains(&g.name)))
        .collect();
    let cost = crate::filter::cost(&filters).saturating_mul(1 + cloudbroker_core::domain::MAX_TAGS);
    let mine = crate::filter::retain(mine, cost, move |g| keep(g, &filters)).await?;
    let (mine, next) = page.cut(mine);
    let (mut x, root) = ctx.doc("DescribeSecurityGroups");
    x.open("securityGroupInfo");
    for g in &mine {
        x.open("item")
            .leaf("ownerId", &g.project)
            .leaf("groupId", &g.group_id)
            .leaf("groupName", &g.name)
            .leaf("groupDescription", &g.description)
            .opt("vpcId", g.vpc_id.as_deref());
        permissions_xml(&mut x, "ipPermissions", &g.ingress(), &g.project);
        permissions_xml(&mut x, "ipPermissionsEgress", &g.egress(), &g.project);
        tags_xml(&mut x, &g.tags);
        x.close("item");
    }
    x.close("securityGroupInfo");
    x.opt("nextToken", next.as_deref());
    Ok(x.finish(&root))
}

pub async fn describe_security_group_rules(ctx: &Ctx<'_>, input: DescribeSecurityGroupRulesInput) -> Result<String, Ec2Error> {
    let DescribeSecurityGroupRulesInput { rule_ids, filters, page } = input;
    let instance = ctx.instance()?;
    let mine = ctx.broker.provisioning.security_groups(&ctx.caller.actor, &instance).await?;
    let all: Vec<(SecurityGroupRule, String)> =
        mine.iter().flat_map(|g| g.rules.iter().map(move |r| (r.clone(), g.project.clone()))).collect();
    if let Some(missing) = rule_ids.iter().find(|id| !all.iter().any(|(r, _)| &r.rule_id == *id)) {
        return Err(Ec2Error::client(
            "InvalidSecurityGroupRuleId.NotFound",
            format!("The security group rule ID '{}' does not exist", shown(missing)),
        ));
    }
    let rules: Vec<(SecurityGroupRule, String)> = all
        .into_iter()
        .filter(|(r, _)| rule_ids.is_empty() || rule_ids.contains(&r.rule_id))
        .filter(|(r, _)| {
            filters.iter().all(|f| match f.name.as_str() {
                "group-id" => f.any(Some(&r.group_id)),
                "security-group-rule-id" => f.any(Some(&r.rule_id)),
                // Rules carry no tags of their own.
                _ => false,
            })
        })
        .collect();
    let (rules, next) = page.cut(rules);
    let (mut x, root) = ctx.doc("DescribeSecurityGroupRules");
    x.open("securityGroupRuleSet");
    for (r, owner) in &rules {
        rule_item(&mut x, r, owner);
    }
    x.close("securityGroupRuleSet");
    x.opt("nextToken", next.as_deref());
    Ok(x.finish(&root))
}

fn rule_item(x: &mut Xml, r: &SecurityGroupRule, owner: &str) {
    x.open("item")
        .leaf("securityGroupRuleId", &r.rule_id)
        .leaf("groupId", &r.group_id)
        .leaf("groupOwnerId", owner)
        .leaf("isEgress", if r.egress { "true" } else { "false" })
        .leaf("ipProtocol", &r.protocol)
        .leaf_display("fromPort", r.from_port.unwrap_or(-1))
        .leaf_display("toPort", r.to_port.unwrap_or(-1))
        .opt("cidrIpv4", r.cidr_ipv4.as_deref())
        .opt("cidrIpv6", r.cidr_ipv6.as_deref());
    if let Some(g) = &r.referenced_group_id {
        x.open("referencedGroupInfo").leaf("groupId", g).leaf("userId", owner).close("referencedGroupInfo");
    }
    x.opt("description", r.description.as_deref()).open("tagSet").close("tagSet").close("item");
}
