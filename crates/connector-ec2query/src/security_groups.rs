//! Security groups over the Query API: Create/Delete/DescribeSecurityGroups,
//! Authorize/Revoke ingress and egress (`IpPermissions.N.*` with
//! `IpRanges`, `Ipv6Ranges` and `Groups` peers) and
//! DescribeSecurityGroupRules, passed to the cloud with the caller's
//! credentials; the cloud's codes come back unchanged. A cloud whose
//! authorize answer does not list every rule added (older APIs list none,
//! moto only the last permission's) has them looked up with
//! DescribeSecurityGroupRules.

use crate::parse::check_return;
use crate::request::{indexed, Params};
use crate::xml::Element;
use crate::Ec2QueryConnector;
use cloudbroker_connector_api::{
    CidrRange, ConnectorError, CreateSecurityGroupRequest, Credentials, GroupPair, IpPermission, RuleDirection, SecurityGroupInfo,
    SecurityGroupRule,
};

fn push(p: &mut Params, k: String, v: impl Into<String>) {
    p.push((k, v.into()));
}

/// CreateSecurityGroup.
pub fn create_params(req: &CreateSecurityGroupRequest) -> Params {
    let mut p: Params = vec![("GroupName".into(), req.name.clone()), ("GroupDescription".into(), req.description.clone())];
    if let Some(v) = &req.vpc_id {
        push(&mut p, "VpcId".into(), v.clone());
    }
    p
}

/// `GroupId` and `IpPermissions.N.*` of Authorize/Revoke.
pub fn permission_params(group_id: &str, permissions: &[IpPermission]) -> Params {
    let mut p: Params = vec![("GroupId".into(), group_id.to_string())];
    for (i, perm) in permissions.iter().enumerate() {
        let k = format!("IpPermissions.{}", i + 1);
        push(&mut p, format!("{k}.IpProtocol"), perm.protocol.clone());
        if let Some(f) = perm.from_port {
            push(&mut p, format!("{k}.FromPort"), f.to_string());
        }
        if let Some(t) = perm.to_port {
            push(&mut p, format!("{k}.ToPort"), t.to_string());
        }
        for (j, r) in perm.ipv4_ranges.iter().enumerate() {
            push(&mut p, format!("{k}.IpRanges.{}.CidrIp", j + 1), r.cidr.clone());
            if let Some(d) = &r.description {
                push(&mut p, format!("{k}.IpRanges.{}.Description", j + 1), d.clone());
            }
        }
        for (j, r) in perm.ipv6_ranges.iter().enumerate() {
            push(&mut p, format!("{k}.Ipv6Ranges.{}.CidrIpv6", j + 1), r.cidr.clone());
            if let Some(d) = &r.description {
                push(&mut p, format!("{k}.Ipv6Ranges.{}.Description", j + 1), d.clone());
            }
        }
        for (j, g) in perm.groups.iter().enumerate() {
            push(&mut p, format!("{k}.Groups.{}.GroupId", j + 1), g.group_id.clone());
            if let Some(d) = &g.description {
                push(&mut p, format!("{k}.Groups.{}.Description", j + 1), d.clone());
            }
        }
    }
    p
}

fn port(e: &Element, name: &str) -> Option<i32> {
    e.child_text(name).and_then(|v| v.parse().ok())
}

fn permission_of(e: &Element) -> IpPermission {
    let desc = |i: &Element| i.child_text("description").map(str::to_string);
    let protocol = e.child_text("ipProtocol").unwrap_or("-1").to_string();
    let all = protocol == "-1";
    IpPermission {
        from_port: if all { None } else { port(e, "fromPort") },
        to_port: if all { None } else { port(e, "toPort") },
        protocol,
        ipv4_ranges: e
            .items("ipRanges")
            .filter_map(|i| Some(CidrRange { cidr: i.child_text("cidrIp")?.to_string(), description: desc(i) }))
            .collect(),
        ipv6_ranges: e
            .items("ipv6Ranges")
            .filter_map(|i| Some(CidrRange { cidr: i.child_text("cidrIpv6")?.to_string(), description: desc(i) }))
            .collect(),
        groups: e
            .items("groups")
            .filter_map(|i| Some(GroupPair { group_id: i.child_text("groupId")?.to_string(), description: desc(i) }))
            .collect(),
    }
}

/// The `securityGroupInfo` items of DescribeSecurityGroups.
pub fn groups(root: &Element) -> Vec<SecurityGroupInfo> {
    root.items("securityGroupInfo")
        .filter_map(|g| {
            Some(SecurityGroupInfo {
                group_id: g.child_text("groupId")?.to_string(),
                name: g.child_text("groupName").unwrap_or_default().to_string(),
                description: g.child_text("groupDescription").unwrap_or_default().to_string(),
                vpc_id: g.child_text("vpcId").map(str::to_string),
                owner_id: g.child_text("ownerId").map(str::to_string),
                ingress: g.items("ipPermissions").map(permission_of).collect(),
                egress: g.items("ipPermissionsEgress").map(permission_of).collect(),
                tags: g
                    .items("tagSet")
                    .filter_map(|t| Some((t.child_text("key")?.to_string(), t.child_text("value").unwrap_or_default().to_string())))
                    .collect(),
            })
        })
        .collect()
}

/// The `securityGroupRuleSet` items (DescribeSecurityGroupRules, Authorize*).
pub fn rules(root: &Element) -> Vec<SecurityGroupRule> {
    root.items("securityGroupRuleSet")
        .filter_map(|r| {
            let protocol = r.child_text("ipProtocol").unwrap_or("-1").to_string();
            let all = protocol == "-1";
            Some(SecurityGroupRule {
                rule_id: r.child_text("securityGroupRuleId")?.to_string(),
                group_id: r.child_text("groupId").unwrap_or_default().to_string(),
                egress: r.child_text("isEgress") == Some("true"),
                from_port: if all { None } else { port(r, "fromPort") },
                to_port: if all { None } else { port(r, "toPort") },
                protocol,
                cidr_ipv4: r.child_text("cidrIpv4").map(str::to_string),
                cidr_ipv6: r.child_text("cidrIpv6").map(str::to_string),
                referenced_group_id: r.path(&["referencedGroupInfo", "groupId"]).map(|e| e.text.clone()).filter(|t| !t.is_empty()),
                description: r.child_text("description").map(str::to_string),
            })
        })
        .collect()
}

fn action(direction: RuleDirection, authorize: bool) -> &'static str {
    match (direction, authorize) {
        (RuleDirection::Ingress, true) => "AuthorizeSecurityGroupIngress",
        (RuleDirection::Egress, true) => "AuthorizeSecurityGroupEgress",
        (RuleDirection::Ingress, false) => "RevokeSecurityGroupIngress",
        (RuleDirection::Egress, false) => "RevokeSecurityGroupEgress",
    }
}

impl Ec2QueryConnector {
    pub(crate) async fn do_create_security_group(
        &self,
        creds: &Credentials,
        req: &CreateSecurityGroupRequest,
    ) -> Result<SecurityGroupInfo, ConnectorError> {
        let root = self.call(creds, "CreateSecurityGroup", create_params(req)).await?;
        let id = root.child_text("groupId").ok_or_else(|| ConnectorError::Transport {
            message: "unreadable CreateSecurityGroup answer from the cloud: no groupId".into(),
        })?;
        let id = id.to_string();
        match self.do_describe_security_groups(creds, std::slice::from_ref(&id)).await {
            Ok(mut g) if !g.is_empty() => Ok(g.remove(0)),
            _ => Ok(SecurityGroupInfo {
                group_id: id,
                name: req.name.clone(),
                description: req.description.clone(),
                vpc_id: req.vpc_id.clone(),
                owner_id: None,
                ingress: Vec::new(),
                egress: Vec::new(),
                tags: Vec::new(),
            }),
        }
    }

    pub(crate) async fn do_delete_security_group(&self, creds: &Credentials, group_id: &str) -> Result<(), ConnectorError> {
        let root = self.call(creds, "DeleteSecurityGroup", vec![("GroupId".into(), group_id.to_string())]).await?;
        // Some clouds answer an empty document; a `false` return is a refusal.
        if root.child_text("return").is_some() {
            check_return(&root, "DeleteSecurityGroup")?;
        }
        Ok(())
    }

    pub(crate) async fn do_describe_security_groups(
        &self,
        creds: &Credentials,
        group_ids: &[String],
    ) -> Result<Vec<SecurityGroupInfo>, ConnectorError> {
        let mut p = Params::new();
        indexed(&mut p, "GroupId", group_ids);
        let root = self.call(creds, "DescribeSecurityGroups", p).await?;
        Ok(groups(&root))
    }

    pub(crate) async fn do_authorize_security_group(
        &self,
        creds: &Credentials,
        group_id: &str,
        direction: RuleDirection,
        permissions: &[IpPermission],
    ) -> Result<Vec<SecurityGroupRule>, ConnectorError> {
        let root = self.call(creds, action(direction, true), permission_params(group_id, permissions)).await?;
        if root.child_text("return").is_some() {
            check_return(&root, action(direction, true))?;
        }
        let added = rules(&root);
        let wanted: Vec<SecurityGroupRule> =
            permissions.iter().flat_map(|p| p.rules(group_id, direction == RuleDirection::Egress)).collect();
        // Some clouds (moto) list only part of what was added: then ask.
        if added.len() == wanted.len() {
            return Ok(added);
        }
        let all = self.do_describe_security_group_rules(creds, &[group_id.to_string()]).await?;
        Ok(all.into_iter().filter(|r| wanted.iter().any(|w| w.same_rule(r))).collect())
    }

    pub(crate) async fn do_revoke_security_group(
        &self,
        creds: &Credentials,
        group_id: &str,
        direction: RuleDirection,
        permissions: &[IpPermission],
    ) -> Result<(), ConnectorError> {
        let root = self.call(creds, action(direction, false), permission_params(group_id, permissions)).await?;
        if root.child_text("return").is_some() {
            check_return(&root, action(direction, false))?;
        }
        Ok(())
    }

    pub(crate) async fn do_describe_security_group_rules(
        &self,
        creds: &Credentials,
        group_ids: &[String],
    ) -> Result<Vec<SecurityGroupRule>, ConnectorError> {
        let mut p = Params::new();
        if !group_ids.is_empty() {
            p.push(("Filter.1.Name".into(), "group-id".into()));
            indexed(&mut p, "Filter.1.Value", group_ids);
        }
        match self.call(creds, "DescribeSecurityGroupRules", p).await {
            Ok(root) => Ok(rules(&root)),
            // A cloud without the action: the rules of the groups, without ids.
            Err(ConnectorError::Unsupported { .. }) => {
                let gs = self.do_describe_security_groups(creds, group_ids).await?;
                Ok(gs
                    .iter()
                    .flat_map(|g| {
                        g.ingress
                            .iter()
                            .flat_map(|p| p.rules(&g.group_id, false))
                            .chain(g.egress.iter().flat_map(|p| p.rules(&g.group_id, true)))
                    })
                    .collect())
            }
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cloudbroker_sigv::encode_query;

    #[test]
    fn builds_permissions_and_parses_groups_and_rules() {
        let perm = IpPermission {
            protocol: "tcp".into(),
            from_port: Some(22),
            to_port: Some(22),
            ipv4_ranges: vec![CidrRange { cidr: "10.0.0.0/8".into(), description: Some("ssh".into()) }],
            ipv6_ranges: vec![],
            groups: vec![GroupPair { group_id: "sg-2".into(), description: None }],
        };
        assert_eq!(
            encode_query(&permission_params("sg-1", &[perm])),
            "GroupId=sg-1&IpPermissions.1.IpProtocol=tcp&IpPermissions.1.FromPort=22&IpPermissions.1.ToPort=22\
             &IpPermissions.1.IpRanges.1.CidrIp=10.0.0.0%2F8&IpPermissions.1.IpRanges.1.Description=ssh\
             &IpPermissions.1.Groups.1.GroupId=sg-2"
        );
        let doc = r#"<DescribeSecurityGroupsResponse><securityGroupInfo><item><ownerId>1</ownerId><groupId>sg-1</groupId>
            <groupName>web</groupName><groupDescription>d</groupDescription><vpcId>vpc-1</vpcId>
            <ipPermissions><item><ipProtocol>tcp</ipProtocol><fromPort>22</fromPort><toPort>22</toPort>
            <groups><item><groupId>sg-2</groupId></item></groups><ipRanges><item><cidrIp>10.0.0.0/8</cidrIp></item></ipRanges>
            <ipv6Ranges/></item></ipPermissions>
            <ipPermissionsEgress><item><ipProtocol>-1</ipProtocol><ipRanges><item><cidrIp>0.0.0.0/0</cidrIp></item></ipRanges></item></ipPermissionsEgress>
            </item></securityGroupInfo></DescribeSecurityGroupsResponse>"#;
        let g = groups(&crate::xml::parse(doc).unwrap());
        assert_eq!(g.len(), 1);
        assert_eq!((g[0].name.as_str(), g[0].vpc_id.as_deref()), ("web", Some("vpc-1")));
        assert_eq!(g[0].ingress[0].groups[0].group_id, "sg-2");
        assert_eq!(g[0].egress[0].from_port, None);
        let doc = r#"<X><securityGroupRuleSet><item><securityGroupRuleId>sgr-1</securityGroupRuleId><groupId>sg-1</groupId>
            <isEgress>false</isEgress><ipProtocol>tcp</ipProtocol><fromPort>80</fromPort><toPort>80</toPort>
            <referencedGroupInfo><groupId>sg-2</groupId></referencedGroupInfo></item></securityGroupRuleSet></X>"#;
        let r = rules(&crate::xml::parse(doc).unwrap());
        assert_eq!(r[0].referenced_group_id.as_deref(), Some("sg-2"));
        assert!(!r[0].egress);
    }
}
