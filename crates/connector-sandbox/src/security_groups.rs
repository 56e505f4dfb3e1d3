//! Security groups with EC2's rules and codes. Every VPC of an account
//! (its default VPC is made by `vpcs`) has a group called `default` (made when
//! first needed; it lets in everything from itself and out everything, and
//! cannot be deleted: `CannotDelete`). A name is unique in its VPC
//! (`InvalidGroup.Duplicate`); another account's group is
//! `InvalidGroup.NotFound`; a rule that exists already is
//! `InvalidPermission.Duplicate`, a missing one on revoke
//! `InvalidPermission.NotFound` (either way nothing changes); a group that
//! a live VM uses or another group's rule names is a `DependencyViolation`.
//! New groups let out everything, as EC2's do. Launches name groups by name
//! or id, in the VPC of the launch's subnet (another VPC's group is
//! `InvalidParameter`); none means that VPC's default group.

use super::*;
use cloudbroker_connector_api::security_groups::permissions_of;
use cloudbroker_connector_api::{CreateSecurityGroupRequest, IpPermission, RuleDirection, SecurityGroupInfo, SecurityGroupRule};

/// The name of a VPC's own group.
pub const DEFAULT_GROUP: &str = "default";

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct SimGroup {
    pub(crate) group_id: String,
    pub(crate) name: String,
    pub(crate) description: String,
    pub(crate) vpc_id: String,
    pub(crate) account: String,
    pub(crate) rules: Vec<SecurityGroupRule>,
}

impl SimGroup {
    fn info(&self) -> SecurityGroupInfo {
        SecurityGroupInfo {
            group_id: self.group_id.clone(),
            name: self.name.clone(),
            description: self.description.clone(),
            vpc_id: Some(self.vpc_id.clone()),
            owner_id: Some(self.account.clone()),
            ingress: permissions_of(&self.rules, false),
            egress: permissions_of(&self.rules, true),
            tags: Vec::new(),
        }
    }
}

fn group_not_found(id: &str) -> ConnectorError {
    err_not_found("InvalidGroup.NotFound", format!("The security group '{id}' does not exist"))
}

fn all_out(group_id: &str, rule_id: String) -> SecurityGroupRule {
    SecurityGroupRule {
        rule_id,
        group_id: group_id.to_string(),
        egress: true,
        protocol: "-1".into(),
        from_port: None,
        to_port: None,
        cidr_ipv4: Some("0.0.0.0/0".into()),
        cidr_ipv6: None,
        referenced_group_id: None,
        description: None,
    }
}

impl World {
    fn next_id(&mut self, prefix: &str, salt: u64) -> String {
        self.next += 1;
        format!("{prefix}-{:017x}", self.next ^ salt)
    }

    /// The account's default VPC (made with its network when first needed).
    pub(crate) fn default_vpc(&mut self, account: &str, zone: &str) -> String {
        self.ensure_default_network(account, zone);
        self.vpcs.values().find(|v| v.account == account && v.info.is_default).map(|v| v.info.vpc_id.clone()).unwrap_or_default()
    }

    /// Makes the `default` group of every VPC of the account.
    pub(crate) fn default_groups(&mut self, account: &str, zone: &str) {
        self.default_vpc(account, zone);
        let vpcs: Vec<String> = self.vpcs.values().filter(|v| v.account == account).map(|v| v.info.vpc_id.clone()).collect();
        for v in vpcs {
            self.default_group(account, &v);
        }
    }

    /// The VPC a launch lands in: its subnet's, else the default VPC.
    pub(crate) fn launch_vpc(&mut self, account: &str, zone: &str, subnet_id: Option<&str>) -> Result<String, ConnectorError> {
        let default = self.default_vpc(account, zone);
        match subnet_id {
            Some(id) => Ok(self.subnet(account, id)?.info.vpc_id.clone()),
            None => Ok(default),
        }
    }

    /// The id of the `default` group of the account's VPC, made when first needed.
    pub(crate) fn default_group(&mut self, account: &str, vpc_id: &str) -> String {
        if let Some(g) = self.groups.values().find(|g| g.account == account && g.vpc_id == vpc_id && g.name == DEFAULT_GROUP) {
            return g.group_id.clone();
        }
        let id = self.next_id("sg", 0x5e60_0000_0000);
        let mut rules = vec![SecurityGroupRule {
            rule_id: self.next_id("sgr", 0x5e61_0000_0000),
            group_id: id.clone(),
            egress: false,
            protocol: "-1".into(),
            from_port: None,
            to_port: None,
            cidr_ipv4: None,
            cidr_ipv6: None,
            referenced_group_id: Some(id.clone()),
            description: None,
        }];
        rules.push(all_out(&id, self.next_id("sgr", 0x5e61_0000_0000)));
        self.groups.insert(
            id.clone(),
            SimGroup {
                group_id: id.clone(),
                name: DEFAULT_GROUP.into(),
                description: "default VPC security group".into(),
                vpc_id: vpc_id.to_string(),
                account: account.to_string(),
                rules,
            },
        );
        id
    }

    pub(crate) fn group<'w>(&'w mut self, account: &str, id: &str) -> Result<&'w mut SimGroup, ConnectorError> {
        if !id.starts_with("sg-") {
            return Err(err_invalid("InvalidGroupId.Malformed", format!("Invalid id: \"{id}\" (expecting \"sg-...\")")));
        }
        match self.groups.get_mut(id) {
            Some(g) if g.account == account => Ok(g),
            _ => Err(group_not_found(id)),
        }
    }

    /// The group ids a launch into `vpc` uses: names and ids (of that VPC),
    /// or its default group when none is given.
    pub(crate) fn launch_groups(
        &mut self,
        account: &str,
        vpc: &str,
        names: &[String],
        ids: &[String],
    ) -> Result<Vec<String>, ConnectorError> {
        let default = self.default_group(account, vpc);
        if names.is_empty() && ids.is_empty() {
            return Ok(vec![default]);
        }
        let mut out: Vec<String> = Vec::new();
        for n in names {
            let id = self
                .groups
                .values()
                .find(|g| g.account == account && g.vpc_id == vpc && &g.name == n)
                .map(|g| g.group_id.clone())
                .ok_or_else(|| group_not_found(n))?;
            if !out.contains(&id) {
                out.push(id);
            }
        }
        for id in ids {
            if self.group(account, id)?.vpc_id != vpc {
                return Err(err_invalid(
                    "InvalidParameter",
                    format!("Security group {id} and the instance's subnet belong to different networks."),
                ));
            }
            if !out.contains(id) {
                out.push(id.clone());
            }
        }
        Ok(out)
    }

    /// The permissions as flat rules of `group_id`, checked (peers must be
    /// groups of the account).
    fn flat_rules(
        &mut self,
        account: &str,
        group_id: &str,
        direction: RuleDirection,
        permissions: &[IpPermission],
    ) -> Result<Vec<SecurityGroupRule>, ConnectorError> {
        self.group(account, group_id)?;
        let mut rules = Vec::new();
        for p in permissions {
            let p = p.normalized()?;
            for g in &p.groups {
                self.group(account, &g.group_id)?;
            }
            rules.extend(p.rules(group_id, direction == RuleDirection::Egress));
        }
        Ok(rules)
    }
}

impl SandboxConnector {
    pub(crate) async fn do_create_security_group(
        &self,
        creds: &Credentials,
        req: &CreateSecurityGroupRequest,
    ) -> Result<SecurityGroupInfo, ConnectorError> {
        let zone = format!("{}a", self.instance);
        self.enter(creds, |w, acct| {
            let default = w.default_vpc(acct, &zone);
            let vpc = req.vpc_id.clone().unwrap_or(default);
            let name = req.name.trim();
            if name.is_empty() || name.len() > 255 {
                return Err(err_invalid("InvalidParameterValue", "Group name must be 1 to 255 characters long"));
            }
            if name.to_ascii_lowercase().starts_with("sg-") {
                return Err(err_invalid("InvalidParameterValue", "Group names may not be in the format sg-*"));
            }
            if req.description.trim().is_empty() || req.description.len() > 255 {
                return Err(err_invalid("InvalidParameterValue", "Group description must be 1 to 255 characters long"));
            }
            w.vpc(acct, &vpc)?;
            w.default_group(acct, &vpc);
            if name == DEFAULT_GROUP {
                return Err(err_invalid("InvalidGroup.Reserved", "The security group 'default' is reserved"));
            }
            if w.groups.values().any(|g| g.account == acct && g.vpc_id == vpc && g.name == name) {
                return Err(err_invalid("InvalidGroup.Duplicate", format!("The security group '{name}' already exists for VPC '{vpc}'")));
            }
            let id = w.next_id("sg", 0x5e60_0000_0000);
            let rule = all_out(&id, w.next_id("sgr", 0x5e61_0000_0000));
            let g = SimGroup {
                group_id: id.clone(),
                name: name.to_string(),
                description: req.description.clone(),
                vpc_id: vpc,
                account: acct.to_string(),
                rules: vec![rule],
            };
            let info = g.info();
            w.groups.insert(id, g);
            Ok(info)
        })
        .await
    }

    pub(crate) async fn do_delete_security_group(&self, creds: &Credentials, group_id: &str) -> Result<(), ConnectorError> {
        self.enter(creds, |w, acct| {
            let g = w.group(acct, group_id)?;
            if g.name == DEFAULT_GROUP {
                return Err(err_invalid(
                    "CannotDelete",
                    format!("the specified group: \"{group_id}\" name: \"default\" cannot be deleted by a user"),
                ));
            }
            let used =
                w.vms.values().any(|s| s.account == acct && s.vm.state != VmState::Terminated && s.groups.iter().any(|g| g == group_id));
            let named = w.groups.values().any(|g| {
                g.group_id != group_id && g.account == acct && g.rules.iter().any(|r| r.referenced_group_id.as_deref() == Some(group_id))
            });
            if used || named {
                return Err(err_invalid("DependencyViolation", format!("resource {group_id} has a dependent object")));
            }
            w.groups.remove(group_id);
            Ok(())
        })
        .await
    }

    pub(crate) async fn do_describe_security_groups(
        &self,
        creds: &Credentials,
        group_ids: &[String],
    ) -> Result<Vec<SecurityGroupInfo>, ConnectorError> {
        let zone = format!("{}a", self.instance);
        self.enter(creds, |w, acct| {
            w.default_groups(acct, &zone);
            for id in group_ids {
                w.group(acct, id)?;
            }
            Ok(w.groups
                .values()
                .filter(|g| g.account == acct && (group_ids.is_empty() || group_ids.contains(&g.group_id)))
                .map(SimGroup::info)
                .collect())
        })
        .await
    }

    pub(crate) async fn do_authorize_security_group(
        &self,
        creds: &Credentials,
        group_id: &str,
        direction: RuleDirection,
        permissions: &[IpPermission],
    ) -> Result<Vec<SecurityGroupRule>, ConnectorError> {
        self.enter(creds, |w, acct| {
            let mut new = w.flat_rules(acct, group_id, direction, permissions)?;
            let existing = w.group(acct, group_id)?.rules.clone();
            for (i, r) in new.iter().enumerate() {
                if existing.iter().chain(&new[..i]).any(|e| e.same_rule(r)) {
                    return Err(err_invalid(
                        "InvalidPermission.Duplicate",
                        format!("the specified rule \"{}\" already exists", r.describe()),
                    ));
                }
            }
            for r in &mut new {
                r.rule_id = w.next_id("sgr", 0x5e61_0000_0000);
            }
            w.group(acct, group_id)?.rules.extend(new.iter().cloned());
            Ok(new)
        })
        .await
    }

    pub(crate) async fn do_revoke_security_group(
        &self,
        creds: &Credentials,
        group_id: &str,
        direction: RuleDirection,
        permissions: &[IpPermission],
    ) -> Result<(), ConnectorError> {
        self.enter(creds, |w, acct| {
            let gone = w.flat_rules(acct, group_id, direction, permissions)?;
            let g = w.group(acct, group_id)?;
            if gone.iter().any(|r| !g.rules.iter().any(|e| e.same_rule(r))) {
                return Err(err_not_found("InvalidPermission.NotFound", "The specified rule does not exist in this security group."));
            }
            g.rules.retain(|e| !gone.iter().any(|r| r.same_rule(e)));
            Ok(())
        })
        .await
    }

    pub(crate) async fn do_describe_security_group_rules(
        &self,
        creds: &Credentials,
        group_ids: &[String],
    ) -> Result<Vec<SecurityGroupRule>, ConnectorError> {
        let zone = format!("{}a", self.instance);
        self.enter(creds, |w, acct| {
            w.default_groups(acct, &zone);
            for id in group_ids {
                w.group(acct, id)?;
            }
            Ok(w.groups
                .values()
                .filter(|g| g.account == acct && (group_ids.is_empty() || group_ids.contains(&g.group_id)))
                .flat_map(|g| g.rules.iter().cloned())
                .collect())
        })
        .await
    }

    /// The broker's configured group: made in the default VPC when missing.
    pub(crate) async fn do_ensure_security_group(&self, creds: &Credentials, name: &str) -> Result<(), ConnectorError> {
        let zone = format!("{}a", self.instance);
        self.enter(creds, |w, acct| {
            let vpc = w.default_vpc(acct, &zone);
            w.default_group(acct, &vpc);
            if w.groups.values().any(|g| g.account == acct && g.vpc_id == vpc && g.name == name) {
                return Ok(());
            }
            let id = w.next_id("sg", 0x5e60_0000_0000);
            let rule = all_out(&id, w.next_id("sgr", 0x5e61_0000_0000));
            w.groups.insert(
                id.clone(),
                SimGroup {
                    group_id: id,
                    name: name.to_string(),
                    description: format!("{name} (created by cloudbroker)"),
                    vpc_id: vpc,
                    account: acct.to_string(),
                    rules: vec![rule],
                },
            );
            Ok(())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cloudbroker_connector_api::CidrRange;

    fn sandbox() -> SandboxConnector {
        SandboxConnector::new(
            InstanceName::parse("sg").unwrap(),
            SandboxSettings {
                boot_delay: Duration::ZERO,
                failure_rate: 0.0,
                capacity: None,
                public_ips: true,
                keep_tags: true,
                api_latency: Duration::ZERO,
                workers: 4,
            },
        )
    }

    fn tcp(port: i32, cidr: &str) -> IpPermission {
        IpPermission {
            protocol: "tcp".into(),
            from_port: Some(port),
            to_port: Some(port),
            ipv4_ranges: vec![CidrRange { cidr: cidr.into(), description: None }],
            ..IpPermission::default()
        }
    }

    fn code<T: std::fmt::Debug>(r: Result<T, ConnectorError>) -> String {
        r.unwrap_err().code().unwrap_or_default().to_string()
    }

    #[tokio::test]
    async fn groups_follow_ec2s_rules() {
        let sb = sandbox();
        let (a, b) = (Credentials::new("alice", "s"), Credentials::new("bob", "s"));
        let req = |name: &str| CreateSecurityGroupRequest { name: name.into(), description: "d".into(), vpc_id: None };
        let web = sb.create_security_group(&a, &req("web")).await.unwrap();
        assert!(web.group_id.starts_with("sg-") && web.vpc_id.is_some());
        assert_eq!(web.egress.len(), 1, "new groups let everything out");
        assert_eq!(code(sb.create_security_group(&a, &req("web")).await), "InvalidGroup.Duplicate");
        assert_eq!(code(sb.create_security_group(&a, &req("default")).await), "InvalidGroup.Reserved");
        // Another account may take the name; it does not see alice's group.
        sb.create_security_group(&b, &req("web")).await.unwrap();
        assert_eq!(code(sb.describe_security_groups(&b, std::slice::from_ref(&web.group_id)).await), "InvalidGroup.NotFound");
        let bad = CreateSecurityGroupRequest { vpc_id: Some("vpc-0nope".into()), ..req("x") };
        assert_eq!(code(sb.create_security_group(&a, &bad).await), "InvalidVpcID.NotFound");

        let id = web.group_id.clone();
        let added = sb.authorize_security_group(&a, &id, RuleDirection::Ingress, &[tcp(22, "10.0.0.0/8")]).await.unwrap();
        assert!(added[0].rule_id.starts_with("sgr-"));
        let dup = sb.authorize_security_group(&a, &id, RuleDirection::Ingress, &[tcp(22, "10.0.0.0/8")]).await;
        assert_eq!(code(dup), "InvalidPermission.Duplicate");
        let bad = sb.authorize_security_group(&a, &id, RuleDirection::Ingress, &[tcp(22, "10.0.0.0/33")]).await;
        assert_eq!(code(bad), "InvalidParameterValue");
        assert_eq!(
            code(sb.authorize_security_group(&b, &id, RuleDirection::Ingress, &[tcp(80, "0.0.0.0/0")]).await),
            "InvalidGroup.NotFound"
        );
        sb.revoke_security_group(&a, &id, RuleDirection::Ingress, &[tcp(22, "10.0.0.0/8")]).await.unwrap();
        let gone = sb.revoke_security_group(&a, &id, RuleDirection::Ingress, &[tcp(22, "10.0.0.0/8")]).await;
        assert_eq!(code(gone), "InvalidPermission.NotFound");

        // The default group: listed, kept.
        let all = sb.describe_security_groups(&a, &[]).await.unwrap();
        let default = all.iter().find(|g| g.name == "default").unwrap().group_id.clone();
        assert_eq!(code(sb.delete_security_group(&a, &default).await), "CannotDelete");
        let rules = sb.describe_security_group_rules(&a, std::slice::from_ref(&default)).await.unwrap();
        assert_eq!(rules.len(), 2, "in from itself, out to all: {rules:?}");

        // In use by a VM: a DependencyViolation until it is gone.
        let run = RunRequest {
            image_id: "ami-sandbox-debian-12".into(),
            instance_type: "t2.micro".into(),
            count: 1,
            security_group_ids: vec![id.clone()],
            ..RunRequest::default()
        };
        let vm = sb.run_instances(&a, &run).await.unwrap().remove(0);
        assert_eq!(code(sb.delete_security_group(&a, &id).await), "DependencyViolation");
        let unknown = RunRequest { security_groups: vec!["nope".into()], security_group_ids: vec![], ..run.clone() };
        assert_eq!(code(sb.run_instances(&a, &unknown).await), "InvalidGroup.NotFound");
        sb.terminate_instances(&a, std::slice::from_ref(&vm.id)).await.unwrap();
        sb.describe_instances(&a, &DescribeFilter::default()).await.unwrap();
        sb.delete_security_group(&a, &id).await.unwrap();
        assert_eq!(code(sb.delete_security_group(&a, &id).await), "InvalidGroup.NotFound");

        // The broker's configured group is made when missing, once.
        sb.ensure_security_group(&a, "cloudbroker").await.unwrap();
        sb.ensure_security_group(&a, "cloudbroker").await.unwrap();
        let named: Vec<_> = sb.describe_security_groups(&a, &[]).await.unwrap().into_iter().filter(|g| g.name == "cloudbroker").collect();
        assert_eq!(named.len(), 1);
    }
}
