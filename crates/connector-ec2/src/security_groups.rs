//! Security groups mapped one to one onto EC2's calls through aws-sdk-ec2
//! (CreateSecurityGroup, DeleteSecurityGroup, DescribeSecurityGroups,
//! Authorize/RevokeSecurityGroupIngress/Egress, DescribeSecurityGroupRules)
//! with the caller's credentials; the cloud's codes come back unchanged.
//! An authorize answer that does not list every rule added (moto lists
//! only the last permission's) has them looked up with
//! DescribeSecurityGroupRules.

use super::*;
use aws_sdk_ec2::types::{IpPermission as SdkPermission, IpRange, Ipv6Range, SecurityGroup, SecurityGroupRule as SdkRule, UserIdGroupPair};
use cloudbroker_connector_api::{
    CidrRange, CreateSecurityGroupRequest, GroupPair, IpPermission, RuleDirection, SecurityGroupInfo, SecurityGroupRule,
};

fn to_sdk(p: &IpPermission) -> SdkPermission {
    SdkPermission::builder()
        .ip_protocol(p.protocol.clone())
        .set_from_port(p.from_port)
        .set_to_port(p.to_port)
        .set_ip_ranges(Some(
            p.ipv4_ranges
                .iter()
                .map(|r| IpRange::builder().cidr_ip(r.cidr.clone()).set_description(r.description.clone()).build())
                .collect(),
        ))
        .set_ipv6_ranges(Some(
            p.ipv6_ranges
                .iter()
                .map(|r| Ipv6Range::builder().cidr_ipv6(r.cidr.clone()).set_description(r.description.clone()).build())
                .collect(),
        ))
        .set_user_id_group_pairs(Some(
            p.groups
                .iter()
                .map(|g| UserIdGroupPair::builder().group_id(g.group_id.clone()).set_description(g.description.clone()).build())
                .collect(),
        ))
        .build()
}

fn from_sdk(p: &SdkPermission) -> IpPermission {
    let protocol = p.ip_protocol().unwrap_or("-1").to_string();
    let all = protocol == "-1";
    IpPermission {
        from_port: if all { None } else { p.from_port() },
        to_port: if all { None } else { p.to_port() },
        protocol,
        ipv4_ranges: p
            .ip_ranges()
            .iter()
            .filter_map(|r| Some(CidrRange { cidr: r.cidr_ip()?.to_string(), description: r.description().map(str::to_string) }))
            .collect(),
        ipv6_ranges: p
            .ipv6_ranges()
            .iter()
            .filter_map(|r| Some(CidrRange { cidr: r.cidr_ipv6()?.to_string(), description: r.description().map(str::to_string) }))
            .collect(),
        groups: p
            .user_id_group_pairs()
            .iter()
            .filter_map(|g| Some(GroupPair { group_id: g.group_id()?.to_string(), description: g.description().map(str::to_string) }))
            .collect(),
    }
}

fn group_of(g: &SecurityGroup) -> Option<SecurityGroupInfo> {
    Some(SecurityGroupInfo {
        group_id: g.group_id()?.to_string(),
        name: g.group_name().unwrap_or_default().to_string(),
        description: g.description().unwrap_or_default().to_string(),
        vpc_id: g.vpc_id().map(str::to_string),
        owner_id: g.owner_id().map(str::to_string),
        ingress: g.ip_permissions().iter().map(from_sdk).collect(),
        egress: g.ip_permissions_egress().iter().map(from_sdk).collect(),
        tags: g.tags().iter().filter_map(|t| Some((t.key()?.to_string(), t.value().unwrap_or_default().to_string()))).collect(),
    })
}

fn rule_of(r: &SdkRule) -> Option<SecurityGroupRule> {
    let protocol = r.ip_protocol().unwrap_or("-1").to_string();
    let all = protocol == "-1";
    Some(SecurityGroupRule {
        rule_id: r.security_group_rule_id()?.to_string(),
        group_id: r.group_id().unwrap_or_default().to_string(),
        egress: r.is_egress().unwrap_or(false),
        from_port: if all { None } else { r.from_port() },
        to_port: if all { None } else { r.to_port() },
        protocol,
        cidr_ipv4: r.cidr_ipv4().map(str::to_string),
        cidr_ipv6: r.cidr_ipv6().map(str::to_string),
        referenced_group_id: r.referenced_group_info().and_then(|g| g.group_id()).map(str::to_string),
        description: r.description().map(str::to_string),
    })
}

impl Ec2Connector {
    pub(crate) async fn do_create_security_group(
        &self,
        creds: &Credentials,
        req: &CreateSecurityGroupRequest,
    ) -> Result<SecurityGroupInfo, ConnectorError> {
        let b = self
            .client(creds)?
            .create_security_group()
            .group_name(req.name.clone())
            .description(req.description.clone())
            .set_vpc_id(req.vpc_id.clone());
        let out = self.call("CreateSecurityGroup", || b.clone().send()).await?;
        let id = out.group_id().unwrap_or_default().to_string();
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
        let b = self.client(creds)?.delete_security_group().group_id(group_id);
        self.call("DeleteSecurityGroup", || b.clone().send()).await?;
        Ok(())
    }

    pub(crate) async fn do_describe_security_groups(
        &self,
        creds: &Credentials,
        group_ids: &[String],
    ) -> Result<Vec<SecurityGroupInfo>, ConnectorError> {
        let base = self.client(creds)?.describe_security_groups().set_group_ids(if group_ids.is_empty() {
            None
        } else {
            Some(group_ids.to_vec())
        });
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        for _ in 0..1000 {
            let b = base.clone().set_next_token(token.clone());
            let page = self.call("DescribeSecurityGroups", || b.clone().send()).await?;
            out.extend(page.security_groups().iter().filter_map(group_of));
            match page.next_token().filter(|t| !t.is_empty()) {
                Some(t) if token.as_deref() != Some(t) => token = Some(t.to_string()),
                _ => break,
            }
        }
        Ok(out)
    }

    pub(crate) async fn do_authorize_security_group(
        &self,
        creds: &Credentials,
        group_id: &str,
        direction: RuleDirection,
        permissions: &[IpPermission],
    ) -> Result<Vec<SecurityGroupRule>, ConnectorError> {
        let client = self.client(creds)?;
        let perms: Vec<SdkPermission> = permissions.iter().map(to_sdk).collect();
        let added: Vec<SecurityGroupRule> = match direction {
            RuleDirection::Ingress => {
                let b = client.authorize_security_group_ingress().group_id(group_id).set_ip_permissions(Some(perms));
                let out = self.call("AuthorizeSecurityGroupIngress", || b.clone().send()).await?;
                out.security_group_rules().iter().filter_map(rule_of).collect()
            }
            RuleDirection::Egress => {
                let b = client.authorize_security_group_egress().group_id(group_id).set_ip_permissions(Some(perms));
                let out = self.call("AuthorizeSecurityGroupEgress", || b.clone().send()).await?;
                out.security_group_rules().iter().filter_map(rule_of).collect()
            }
        };
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
        let client = self.client(creds)?;
        let perms: Vec<SdkPermission> = permissions.iter().map(to_sdk).collect();
        match direction {
            RuleDirection::Ingress => {
                let b = client.revoke_security_group_ingress().group_id(group_id).set_ip_permissions(Some(perms));
                self.call("RevokeSecurityGroupIngress", || b.clone().send()).await?;
            }
            RuleDirection::Egress => {
                let b = client.revoke_security_group_egress().group_id(group_id).set_ip_permissions(Some(perms));
                self.call("RevokeSecurityGroupEgress", || b.clone().send()).await?;
            }
        }
        Ok(())
    }

    pub(crate) async fn do_describe_security_group_rules(
        &self,
        creds: &Credentials,
        group_ids: &[String],
    ) -> Result<Vec<SecurityGroupRule>, ConnectorError> {
        let mut base = self.client(creds)?.describe_security_group_rules();
        if !group_ids.is_empty() {
            base = base.filters(Filter::builder().name("group-id").set_values(Some(group_ids.to_vec())).build());
        }
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        for _ in 0..1000 {
            let b = base.clone().set_next_token(token.clone());
            let page = self.call("DescribeSecurityGroupRules", || b.clone().send()).await?;
            out.extend(page.security_group_rules().iter().filter_map(rule_of));
            match page.next_token().filter(|t| !t.is_empty()) {
                Some(t) if token.as_deref() != Some(t) => token = Some(t.to_string()),
                _ => break,
            }
        }
        Ok(out)
    }
}
