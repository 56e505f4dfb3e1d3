//! Security groups of projects. A group the broker makes belongs to the
//! project the actor acts in, recorded in the shared record of cloud
//! objects (kind `security-group`, parent its VPC): members see and act on
//! it, a viewer sees it, everyone else finds nothing (another project's
//! group is "not found", as for volumes). It is acted on with the
//! credential it was made with.
//!
//! Rules are kept in the record (`attrs.rules`, EC2's flat form with rule
//! ids): the cloud's answer to create/authorize/revoke updates them, so a
//! listing or a describe costs no cloud call. Rules changed at the cloud
//! behind the broker's back are not seen (the broker is the only way users
//! reach the account's groups).
//!
//! Launches may name groups ([`Provisioning::launch_groups`]): by id, a
//! group the actor sees, or one the broker did not make (a VPC's `default`
//! group, one an admin made at the cloud: the cloud decides); by name, the
//! project's own (sent as its id), `default`, or the instance's configured
//! `security.group`. A rule naming a peer group follows the same rule.

use super::Provisioning;
use crate::audit::{self, AuditAction, AuditEvent, AuditTarget};
use crate::auth::Actor;
use crate::domain::{InstanceName, Tags};
use crate::error::{Resource, ServiceError, ServiceResult};
use chrono::{DateTime, Utc};
use cloudbroker_connector_api::security_groups::permissions_of;
use cloudbroker_connector_api::{
    ConnectorError, CreateSecurityGroupRequest, IpPermission, RuleDirection, SecurityGroupInfo, SecurityGroupRule,
};
use cloudbroker_store::cloud_objects::{Attrs, CloudObjectRow, ObjectKind};
use serde::Serialize;
use std::collections::BTreeMap;

const KIND: ObjectKind = ObjectKind::SecurityGroup;

/// The name every VPC's own group has.
pub const DEFAULT_GROUP: &str = "default";

/// A security group as a project member sees it.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct SecurityGroup {
    #[serde(skip)]
    pub instance: InstanceName,
    pub group_id: String,
    pub name: String,
    pub description: String,
    pub vpc_id: Option<String>,
    /// The project it belongs to (EC2's owner id).
    pub project: String,
    /// Who made it.
    pub user: String,
    /// Its rules, EC2's flat form.
    pub rules: Vec<SecurityGroupRule>,
    pub tags: BTreeMap<String, String>,
    pub created_at: DateTime<Utc>,
}

impl SecurityGroup {
    fn from_row(r: CloudObjectRow, instance: &InstanceName) -> Self {
        let text = |k: &str| r.attrs.get(k).and_then(|v| v.as_str()).unwrap_or_default().to_string();
        let rules = r.attrs.get("rules").cloned().and_then(|v| serde_json::from_value(v).ok()).unwrap_or_default();
        Self {
            instance: instance.clone(),
            name: text("name"),
            description: text("description"),
            vpc_id: r.parent.clone(),
            group_id: r.cloud_id,
            project: r.project,
            user: r.user,
            rules,
            tags: r.tags,
            created_at: r.created_at,
        }
    }

    /// Inbound rules in EC2's grouped form.
    pub fn ingress(&self) -> Vec<IpPermission> {
        permissions_of(&self.rules, false)
    }

    /// Outbound rules in EC2's grouped form.
    pub fn egress(&self) -> Vec<IpPermission> {
        permissions_of(&self.rules, true)
    }
}

fn attrs_of(name: &str, description: &str, rules: &[SecurityGroupRule]) -> Attrs {
    let mut a = Attrs::new();
    a.insert("name".into(), name.into());
    a.insert("description".into(), description.into());
    a.insert("rules".into(), serde_json::to_value(rules).unwrap_or_default());
    a
}

fn target<'a>(instance: &'a InstanceName, id: &'a str) -> AuditTarget<'a> {
    AuditTarget::CloudResource { instance: instance.as_str(), id }
}

fn not_found(id: &str) -> ServiceError {
    ServiceError::NotFound(Resource::CloudObject { kind: KIND, id: id.to_string() })
}

/// The audit detail of a rule change: direction, then one line per permission.
fn detail(direction: RuleDirection, perms: &[IpPermission]) -> String {
    let mut parts = vec![direction.as_str().to_string()];
    for p in perms {
        let ports = match (p.from_port, p.to_port) {
            (Some(f), Some(t)) => format!(" {f}-{t}"),
            _ => String::new(),
        };
        let peers: Vec<&str> = p
            .ipv4_ranges
            .iter()
            .map(|r| r.cidr.as_str())
            .chain(p.ipv6_ranges.iter().map(|r| r.cidr.as_str()))
            .chain(p.groups.iter().map(|g| g.group_id.as_str()))
            .collect();
        parts.push(format!("{}{ports} {}", p.protocol, peers.join(",")));
    }
    parts.join(" ")
}

/// The flat rules of a group from the cloud's grouped answer (no rule ids).
fn flat(info: &SecurityGroupInfo) -> Vec<SecurityGroupRule> {
    info.ingress
        .iter()
        .flat_map(|p| p.rules(&info.group_id, false))
        .chain(info.egress.iter().flat_map(|p| p.rules(&info.group_id, true)))
        .collect()
}

impl Provisioning {
    /// A group id the actor may use (in a launch, as a rule's peer): one it
    /// sees, or one the broker did not make; another project's is "not found".
    async fn usable_group(&self, actor: &Actor, instance: &InstanceName, id: &str) -> ServiceResult<()> {
        match self.store.cloud_object(instance.as_str(), KIND, id).await? {
            None => Ok(()),
            Some(r) if actor.sees(&r.project) && r.ended_at.is_none() => Ok(()),
            Some(_) => Err(not_found(id)),
        }
    }

    /// Makes a security group in the actor's project (in `vpc_id`, else the
    /// account's default VPC; a VPC of another project is "not found").
    pub async fn create_security_group(
        &self,
        actor: &Actor,
        instance: &InstanceName,
        name: &str,
        description: &str,
        vpc_id: Option<&str>,
        tags: &Tags,
    ) -> ServiceResult<SecurityGroup> {
        let mut vpc = None;
        if let Some(v) = vpc_id {
            if let Some(r) = self.store.cloud_object(instance.as_str(), ObjectKind::Vpc, v).await? {
                if !actor.sees(&r.project) || r.ended_at.is_some() {
                    return Err(ServiceError::NotFound(Resource::CloudObject { kind: ObjectKind::Vpc, id: v.to_string() }));
                }
                vpc = Some(r);
            }
        }
        let (connector, mut creds, mut cred_id) = self.for_new_object(actor, instance, KIND).await?;
        if let Some(vpc) = vpc {
            // The group is made in the VPC's cloud account, whichever member asks.
            (_, creds) = self.for_object(actor, instance, &vpc).await?;
            cred_id = crate::domain::CredentialId::from_stored(vpc.credential_id);
        }
        let req =
            CreateSecurityGroupRequest { name: name.to_string(), description: description.to_string(), vpc_id: vpc_id.map(str::to_string) };
        let info = connector.create_security_group(&creds, &req).await?;
        let rules = match connector.describe_security_group_rules(&creds, std::slice::from_ref(&info.group_id)).await {
            Ok(r) => r,
            Err(e) => {
                tracing::info!(instance = %instance, group = %info.group_id, error = %e, "rules of a new group taken from its description");
                flat(&info)
            }
        };
        let attrs = attrs_of(&info.name, &info.description, &rules);
        let new = super::NewObject {
            kind: KIND,
            cloud_id: &info.group_id,
            credential_id: &cred_id,
            parent: info.vpc_id.as_deref().or(vpc_id),
            state: "available",
            attrs,
            tags,
        };
        let row = match self.record_object(actor, instance, &new).await {
            Ok(r) => r,
            Err(e) => {
                // Not recorded: give it back.
                if let Err(de) = connector.delete_security_group(&creds, &info.group_id).await {
                    tracing::error!(instance = %instance, group = %info.group_id, error = %de, "a security group the broker could not record was not deleted");
                }
                return Err(e);
            }
        };
        if !tags.is_empty() {
            let pairs: Vec<(String, String)> = tags.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            match connector.create_tags(&creds, std::slice::from_ref(&info.group_id), &pairs).await {
                Ok(()) | Err(ConnectorError::Unsupported { .. }) => {}
                Err(e) => tracing::info!(instance = %instance, group = %info.group_id, error = %e, "group tags kept by the broker only"),
            }
        }
        let event = AuditEvent::ok(AuditAction::SecurityGroupCreate, target(instance, &info.group_id))
            .detail(info.name.as_str())
            .in_project(actor.project.as_str());
        audit::record_by(&self.store, actor, &event).await?;
        Ok(SecurityGroup::from_row(row, instance))
    }

    /// The groups of the actor's project on `instance`, oldest first (no cloud call).
    pub async fn security_groups(&self, actor: &Actor, instance: &InstanceName) -> ServiceResult<Vec<SecurityGroup>> {
        Ok(self.objects(actor, instance, KIND).await?.into_iter().map(|r| SecurityGroup::from_row(r, instance)).collect())
    }

    /// One group the actor sees.
    pub async fn security_group(&self, actor: &Actor, instance: &InstanceName, id: &str) -> ServiceResult<SecurityGroup> {
        Ok(SecurityGroup::from_row(self.visible_object(actor, instance, KIND, id).await?, instance))
    }

    /// A group of the actor's project by name (the oldest, if several VPCs have one).
    pub async fn security_group_named(&self, actor: &Actor, instance: &InstanceName, name: &str) -> ServiceResult<SecurityGroup> {
        self.security_groups(actor, instance).await?.into_iter().find(|g| g.name == name).ok_or_else(|| not_found(name))
    }

    /// Deletes a group of the actor's project (the cloud refuses one in use:
    /// `DependencyViolation`).
    pub async fn delete_security_group(&self, actor: &Actor, instance: &InstanceName, id: &str) -> ServiceResult<()> {
        let row = self.actable_object(actor, instance, KIND, id).await?;
        let (connector, creds) = self.for_object(actor, instance, &row).await?;
        match connector.delete_security_group(&creds, id).await {
            Ok(()) => {}
            // Gone at the cloud already: end the record too.
            Err(ConnectorError::NotFound { code, .. }) if code == "InvalidGroup.NotFound" => {}
            Err(e) => return Err(e.into()),
        }
        self.end_object(instance, KIND, id, "deleted").await?;
        let event = AuditEvent::ok(AuditAction::SecurityGroupDelete, target(instance, id)).in_project(&row.project);
        audit::record_by(&self.store, actor, &event).await?;
        Ok(())
    }

    /// Adds rules to a group of the actor's project; answers the rules added.
    pub async fn authorize_security_group(
        &self,
        actor: &Actor,
        instance: &InstanceName,
        id: &str,
        direction: RuleDirection,
        permissions: &[IpPermission],
    ) -> ServiceResult<Vec<SecurityGroupRule>> {
        let row = self.actable_object(actor, instance, KIND, id).await?;
        let perms = self.checked_permissions(actor, instance, permissions).await?;
        let mut group = SecurityGroup::from_row(row.clone(), instance);
        // What the record says exists already is refused as the cloud would (nothing is added).
        let asked: Vec<SecurityGroupRule> = perms.iter().flat_map(|p| p.rules(id, direction == RuleDirection::Egress)).collect();
        for (i, r) in asked.iter().enumerate() {
            if group.rules.iter().chain(&asked[..i]).any(|e| e.same_rule(r)) {
                return Err(ConnectorError::InvalidRequest {
                    code: "InvalidPermission.Duplicate".into(),
                    message: format!("the specified rule \"{}\" already exists", r.describe()),
                }
                .into());
            }
        }
        let (connector, creds) = self.for_object(actor, instance, &row).await?;
        let added = connector.authorize_security_group(&creds, id, direction, &perms).await?;
        group.rules.extend(added.iter().cloned());
        self.keep_rules(instance, &group).await?;
        let event = AuditEvent::ok(AuditAction::SecurityGroupAuthorize, target(instance, id))
            .detail(detail(direction, &perms))
            .in_project(&row.project);
        audit::record_by(&self.store, actor, &event).await?;
        Ok(added)
    }

    /// Removes rules from a group of the actor's project.
    pub async fn revoke_security_group(
        &self,
        actor: &Actor,
        instance: &InstanceName,
        id: &str,
        direction: RuleDirection,
        permissions: &[IpPermission],
    ) -> ServiceResult<()> {
        let row = self.actable_object(actor, instance, KIND, id).await?;
        let perms = self.checked_permissions(actor, instance, permissions).await?;
        let gone: Vec<SecurityGroupRule> = perms.iter().flat_map(|p| p.rules(id, direction == RuleDirection::Egress)).collect();
        let mut group = SecurityGroup::from_row(row.clone(), instance);
        // A rule the record does not have is refused as the cloud would (nothing is removed).
        if gone.iter().any(|r| !group.rules.iter().any(|e| e.same_rule(r))) {
            return Err(ConnectorError::NotFound {
                code: "InvalidPermission.NotFound".into(),
                message: "The specified rule does not exist in this security group.".into(),
            }
            .into());
        }
        let (connector, creds) = self.for_object(actor, instance, &row).await?;
        connector.revoke_security_group(&creds, id, direction, &perms).await?;
        group.rules.retain(|r| !gone.iter().any(|g| g.same_rule(r)));
        self.keep_rules(instance, &group).await?;
        let event = AuditEvent::ok(AuditAction::SecurityGroupRevoke, target(instance, id))
            .detail(detail(direction, &perms))
            .in_project(&row.project);
        audit::record_by(&self.store, actor, &event).await?;
        Ok(())
    }

    /// Permissions checked as EC2 does, their peer groups usable by the actor.
    async fn checked_permissions(
        &self,
        actor: &Actor,
        instance: &InstanceName,
        permissions: &[IpPermission],
    ) -> ServiceResult<Vec<IpPermission>> {
        if permissions.is_empty() {
            return Err(ConnectorError::InvalidRequest {
                code: "MissingParameter".into(),
                message: "The request must contain the parameter ipPermissions".into(),
            }
            .into());
        }
        let mut out = Vec::new();
        for p in permissions {
            let p = p.normalized()?;
            for g in &p.groups {
                self.usable_group(actor, instance, &g.group_id).await?;
            }
            out.push(p);
        }
        Ok(out)
    }

    async fn keep_rules(&self, instance: &InstanceName, g: &SecurityGroup) -> ServiceResult<()> {
        let attrs = attrs_of(&g.name, &g.description, &g.rules);
        self.store.update_cloud_object(instance.as_str(), KIND, &g.group_id, "available", Some(&attrs)).await?;
        Ok(())
    }

    /// The groups a launch names, checked: `None` when it names none (the
    /// instance's configured group applies). Answers the names and ids to
    /// pass to the cloud (the project's own groups go by id).
    pub(super) async fn launch_groups(
        &self,
        actor: &Actor,
        instance: &InstanceName,
        names: &[String],
        ids: &[String],
        configured: Option<&str>,
    ) -> ServiceResult<Option<(Vec<String>, Vec<String>)>> {
        if names.is_empty() && ids.is_empty() {
            return Ok(None);
        }
        let mut out_names = Vec::new();
        let mut out_ids: Vec<String> = Vec::new();
        for id in ids {
            self.usable_group(actor, instance, id).await?;
            if !out_ids.contains(id) {
                out_ids.push(id.clone());
            }
        }
        let own = if names.is_empty() { Vec::new() } else { self.security_groups(actor, instance).await? };
        for n in names {
            if let Some(g) = own.iter().find(|g| &g.name == n) {
                if !out_ids.contains(&g.group_id) {
                    out_ids.push(g.group_id.clone());
                }
            } else if n == DEFAULT_GROUP || configured == Some(n.as_str()) {
                if !out_names.contains(n) {
                    out_names.push(n.clone());
                }
            } else {
                return Err(not_found(n));
            }
        }
        Ok(Some((out_names, out_ids)))
    }
}
