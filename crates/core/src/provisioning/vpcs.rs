//! VPCs and subnets. Those the broker makes belong to the project the
//! actor acts in, recorded in the shared record of cloud objects (kinds
//! `vpc` and `subnet`, a subnet's parent its VPC): members see and act on
//! them, a viewer sees them, everyone else finds nothing ("not found", as
//! for volumes), so no project ever sees another's VPC or subnet. What the
//! cloud account has that the broker did not make (the default VPC and its
//! default subnets, networks an admin made at the cloud and names in
//! `vpc.id` / `subnet.id`) is seen by everyone whose credential reaches
//! that account, and is launched into, but is neither deleted nor changed
//! through the broker (403). Listings ask the cloud about the project's
//! objects with the credential each was made with (so a viewer sees them
//! too), about the account's own with the credential a launch in the
//! project would use, and leave out other projects' objects.
//! A launch names a subnet (or takes the instance's `subnet.id`, else a
//! subnet of `vpc.id`) that the actor sees and the cloud has
//! ([`Provisioning::launch_subnet`]).

use super::Provisioning;
use crate::audit::{self, AuditAction, AuditEvent, AuditTarget};
use crate::auth::Actor;
use crate::domain::{InstanceName, Tags};
use crate::error::{Resource, ServiceError, ServiceResult};
use cloudbroker_connector_api::network::Cidr;
use cloudbroker_connector_api::{Connector, ConnectorError, CreateSubnetRequest, Credentials, SubnetInfo, VpcInfo};
use cloudbroker_store::cloud_objects::{Attrs, CloudObjectRow, ObjectKind};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;

/// A VPC as a project member sees it.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Vpc {
    pub vpc_id: String,
    pub cidr_block: String,
    /// `pending` or `available`.
    pub state: String,
    /// The cloud account's default VPC.
    pub is_default: bool,
    pub instance_tenancy: String,
    /// The project it belongs to; `None`: the cloud account's own (not made by the broker).
    pub project: Option<String>,
    pub tags: BTreeMap<String, String>,
}

/// A subnet as a project member sees it.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Subnet {
    pub subnet_id: String,
    pub vpc_id: String,
    pub cidr_block: String,
    pub availability_zone: String,
    pub state: String,
    pub available_ip_address_count: u32,
    pub default_for_az: bool,
    pub map_public_ip_on_launch: bool,
    /// The project it belongs to; `None`: the cloud account's own.
    pub project: Option<String>,
    pub tags: BTreeMap<String, String>,
}

fn vpc_view(info: VpcInfo, row: Option<CloudObjectRow>) -> Vpc {
    let (project, tags) = match row {
        Some(r) => (Some(r.project), r.tags),
        None => (None, info.tags.into_iter().collect()),
    };
    Vpc {
        vpc_id: info.vpc_id,
        cidr_block: info.cidr_block,
        state: info.state,
        is_default: info.is_default,
        instance_tenancy: info.instance_tenancy,
        project,
        tags,
    }
}

fn subnet_view(info: SubnetInfo, row: Option<CloudObjectRow>) -> Subnet {
    let (project, tags) = match row {
        Some(r) => (Some(r.project), r.tags),
        None => (None, info.tags.into_iter().collect()),
    };
    Subnet {
        subnet_id: info.subnet_id,
        vpc_id: info.vpc_id,
        cidr_block: info.cidr_block,
        availability_zone: info.availability_zone,
        state: info.state,
        available_ip_address_count: info.available_ip_address_count,
        default_for_az: info.default_for_az,
        map_public_ip_on_launch: info.map_public_ip_on_launch,
        project,
        tags,
    }
}

/// Asks a connector, with credentials, about some ids (all when empty).
type Describe<'a, T> = dyn Fn(Arc<dyn Connector>, Credentials, Vec<String>) -> futures::future::BoxFuture<'a, Result<Vec<T>, ConnectorError>>
    + Send
    + Sync
    + 'a;

fn not_found(kind: ObjectKind, id: &str) -> ServiceError {
    ServiceError::NotFound(Resource::CloudObject { kind, id: id.to_string() })
}

fn target<'a>(instance: &'a InstanceName, id: &'a str) -> AuditTarget<'a> {
    AuditTarget::CloudResource { instance: instance.as_str(), id }
}

/// What the broker knows of a cloud id: `Ok(None)` the account's own (not
/// the broker's), `Ok(Some(row))` a record the actor sees, `Err` another
/// project's (as "not found").
async fn seen_by(
    p: &Provisioning,
    actor: &Actor,
    instance: &InstanceName,
    kind: ObjectKind,
    id: &str,
) -> ServiceResult<Option<CloudObjectRow>> {
    match p.store.cloud_object(instance.as_str(), kind, id).await? {
        None => Ok(None),
        Some(r) if actor.sees(&r.project) => Ok(Some(r)),
        Some(_) => Err(not_found(kind, id)),
    }
}

impl Provisioning {
    /// The connector and the credentials a launch in the actor's project would use.
    async fn network_access(&self, actor: &Actor, instance: &InstanceName) -> ServiceResult<(Arc<dyn Connector>, Credentials)> {
        let (connector, _, _) = self.connector(instance)?;
        let (creds, _) = self.vault.credentials_for_launch(actor, instance).await?;
        Ok((connector, creds))
    }

    /// The VPCs the actor sees on `instance` (those named; all when empty).
    pub async fn vpcs(&self, actor: &Actor, instance: &InstanceName, ids: &[String]) -> ServiceResult<Vec<Vpc>> {
        let describe: &Describe<'_, VpcInfo> = &|c, creds, ids| Box::pin(async move { c.describe_vpcs(&creds, &ids).await });
        let seen = self.seen_at_cloud(actor, instance, ObjectKind::Vpc, ids, describe, |v| &v.vpc_id).await?;
        Ok(seen.into_iter().map(|(info, row)| vpc_view(info, row)).collect())
    }

    /// The subnets the actor sees on `instance` (those named; all when empty).
    pub async fn subnets(&self, actor: &Actor, instance: &InstanceName, ids: &[String]) -> ServiceResult<Vec<Subnet>> {
        let describe: &Describe<'_, SubnetInfo> = &|c, creds, ids| Box::pin(async move { c.describe_subnets(&creds, &ids).await });
        let seen = self.seen_at_cloud(actor, instance, ObjectKind::Subnet, ids, describe, |s| &s.subnet_id).await?;
        Ok(seen.into_iter().map(|(info, row)| subnet_view(info, row)).collect())
    }

    /// What the cloud says of `ids` (all when empty) as the actor sees them:
    /// the project's recorded objects asked with the credential each was made
    /// with (so every member and viewer sees them, whoever made them), the
    /// account's own (not the broker's) with the credential a launch in the
    /// project would use; another project's are left out (named: "not
    /// found"). An actor without launch credentials lists the project's
    /// objects only.
    async fn seen_at_cloud<T>(
        &self,
        actor: &Actor,
        instance: &InstanceName,
        kind: ObjectKind,
        ids: &[String],
        describe: &Describe<'_, T>,
        id_of: fn(&T) -> &String,
    ) -> ServiceResult<Vec<(T, Option<CloudObjectRow>)>> {
        let (connector, _, _) = self.connector(instance)?;
        let (mut by_credential, mut rows, mut unrecorded) = (BTreeMap::<String, Vec<String>>::new(), BTreeMap::new(), Vec::new());
        let recorded = if ids.is_empty() {
            self.store.cloud_objects(actor.project.as_str(), instance.as_str(), kind).await?
        } else {
            let mut named = Vec::new();
            for id in ids {
                match seen_by(self, actor, instance, kind, id).await? {
                    Some(r) => named.push(r),
                    None => unrecorded.push(id.clone()),
                }
            }
            named
        };
        for r in recorded {
            by_credential.entry(r.credential_id.clone()).or_default().push(r.cloud_id.clone());
            rows.insert(r.cloud_id.clone(), r);
        }
        let mut out = Vec::new();
        for (credential, ids) in by_credential {
            let what = format!("{kind} '{}'", ids.first().map(String::as_str).unwrap_or_default());
            let creds = self.vault.credentials_to_act(actor, &crate::domain::CredentialId::from_stored(credential), &what).await?;
            for info in describe(connector.clone(), creds, ids).await? {
                let row = rows.get(id_of(&info)).cloned();
                out.push((info, row));
            }
        }
        if ids.is_empty() || !unrecorded.is_empty() {
            match self.network_access(actor, instance).await {
                Ok((connector, creds)) => {
                    for info in describe(connector, creds, unrecorded).await? {
                        // The project's own are listed above; another project's are not shown.
                        if !rows.contains_key(id_of(&info)) && matches!(seen_by(self, actor, instance, kind, id_of(&info)).await, Ok(None))
                        {
                            out.push((info, None));
                        }
                    }
                }
                Err(ServiceError::NotFound(_) | ServiceError::Forbidden(_)) if ids.is_empty() => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// Makes a VPC in the actor's project.
    pub async fn create_vpc(&self, actor: &Actor, instance: &InstanceName, cidr: &str, tags: &Tags) -> ServiceResult<Vpc> {
        let (connector, creds, cred_id) = self.for_new_object(actor, instance, ObjectKind::Vpc).await?;
        let info = connector.create_vpc(&creds, cidr).await?;
        let mut attrs = Attrs::new();
        attrs.insert("cidr".into(), info.cidr_block.clone().into());
        let new = super::NewObject {
            kind: ObjectKind::Vpc,
            cloud_id: &info.vpc_id,
            credential_id: &cred_id,
            parent: None,
            state: &info.state,
            attrs,
            tags,
        };
        let row = match self.record_object(actor, instance, &new).await {
            Ok(r) => r,
            Err(e) => {
                if let Err(de) = connector.delete_vpc(&creds, &info.vpc_id).await {
                    tracing::error!(instance = %instance, vpc = %info.vpc_id, error = %de, "a VPC the broker could not record was not deleted");
                }
                return Err(e);
            }
        };
        self.tag_at_cloud(connector.as_ref(), &creds, &info.vpc_id, tags).await;
        let event = AuditEvent::ok(AuditAction::VpcCreate, target(instance, &info.vpc_id)).detail(info.cidr_block.clone());
        audit::record_by(&self.store, actor, &event).await?;
        Ok(vpc_view(info, Some(row)))
    }

    /// Deletes a VPC of the actor's project.
    pub async fn delete_vpc(&self, actor: &Actor, instance: &InstanceName, id: &str) -> ServiceResult<()> {
        let row = self.own_object(actor, instance, ObjectKind::Vpc, id).await?;
        let (connector, creds) = self.for_object(actor, instance, &row).await?;
        connector.delete_vpc(&creds, id).await?;
        self.end_object(instance, ObjectKind::Vpc, id, "deleted").await?;
        audit::record_by(&self.store, actor, &AuditEvent::ok(AuditAction::VpcDelete, target(instance, id))).await?;
        Ok(())
    }

    /// Makes a subnet in a VPC the actor sees (its project's, or the account's own).
    pub async fn create_subnet(
        &self,
        actor: &Actor,
        instance: &InstanceName,
        req: &CreateSubnetRequest,
        tags: &Tags,
    ) -> ServiceResult<Subnet> {
        let vpc = seen_by(self, actor, instance, ObjectKind::Vpc, &req.vpc_id).await?;
        let (connector, mut creds, mut cred_id) = self.for_new_object(actor, instance, ObjectKind::Subnet).await?;
        if let Some(vpc) = vpc {
            // The subnet is made in the VPC's cloud account, whichever member asks.
            (_, creds) = self.for_object(actor, instance, &vpc).await?;
            cred_id = crate::domain::CredentialId::from_stored(vpc.credential_id);
        }
        let info = connector.create_subnet(&creds, req).await?;
        let mut attrs = Attrs::new();
        attrs.insert("cidr".into(), info.cidr_block.clone().into());
        attrs.insert("zone".into(), info.availability_zone.clone().into());
        let new = super::NewObject {
            kind: ObjectKind::Subnet,
            cloud_id: &info.subnet_id,
            credential_id: &cred_id,
            parent: Some(&info.vpc_id),
            state: &info.state,
            attrs,
            tags,
        };
        let row = match self.record_object(actor, instance, &new).await {
            Ok(r) => r,
            Err(e) => {
                if let Err(de) = connector.delete_subnet(&creds, &info.subnet_id).await {
                    tracing::error!(instance = %instance, subnet = %info.subnet_id, error = %de, "a subnet the broker could not record was not deleted");
                }
                return Err(e);
            }
        };
        self.tag_at_cloud(connector.as_ref(), &creds, &info.subnet_id, tags).await;
        let event = AuditEvent::ok(AuditAction::SubnetCreate, target(instance, &info.subnet_id))
            .detail(format!("{} in {}", info.cidr_block, info.vpc_id));
        audit::record_by(&self.store, actor, &event).await?;
        Ok(subnet_view(info, Some(row)))
    }

    /// Deletes a subnet of the actor's project.
    pub async fn delete_subnet(&self, actor: &Actor, instance: &InstanceName, id: &str) -> ServiceResult<()> {
        let row = self.own_object(actor, instance, ObjectKind::Subnet, id).await?;
        let (connector, creds) = self.for_object(actor, instance, &row).await?;
        connector.delete_subnet(&creds, id).await?;
        self.end_object(instance, ObjectKind::Subnet, id, "deleted").await?;
        audit::record_by(&self.store, actor, &AuditEvent::ok(AuditAction::SubnetDelete, target(instance, id))).await?;
        Ok(())
    }

    /// Sets whether VMs launched into a subnet of the actor's project get a public address.
    pub async fn set_subnet_public_ips(&self, actor: &Actor, instance: &InstanceName, id: &str, map: bool) -> ServiceResult<()> {
        let row = self.own_object(actor, instance, ObjectKind::Subnet, id).await?;
        let (connector, creds) = self.for_object(actor, instance, &row).await?;
        connector.modify_subnet_map_public_ip(&creds, id, map).await?;
        Ok(())
    }

    /// A recorded object of the actor's project it may act on; the
    /// account's own (not the broker's) exist for everyone but are not
    /// changed through the broker (403); unknown ids are "not found".
    async fn own_object(&self, actor: &Actor, instance: &InstanceName, kind: ObjectKind, id: &str) -> ServiceResult<CloudObjectRow> {
        match self.actable_object(actor, instance, kind, id).await {
            Err(ServiceError::NotFound(_)) if self.store.cloud_object(instance.as_str(), kind, id).await?.is_none() => {
                let (connector, creds) = self.network_access(actor, instance).await?;
                let ids = [id.to_string()];
                let exists = match kind {
                    ObjectKind::Vpc => !connector.describe_vpcs(&creds, &ids).await?.is_empty(),
                    _ => !connector.describe_subnets(&creds, &ids).await?.is_empty(),
                };
                if exists {
                    Err(ServiceError::Forbidden(format!(
                        "the {} '{id}' belongs to the cloud account, not to a project: it is changed at the cloud, not through the broker",
                        kind.noun()
                    )))
                } else {
                    Err(not_found(kind, id))
                }
            }
            other => other,
        }
    }

    /// Puts a new object's tags on it at the cloud too (the broker's record keeps them either way).
    async fn tag_at_cloud(&self, connector: &dyn Connector, creds: &Credentials, id: &str, tags: &Tags) {
        if tags.is_empty() {
            return;
        }
        let pairs: Vec<(String, String)> = tags.as_map().iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        match connector.create_tags(creds, &[id.to_string()], &pairs).await {
            Ok(()) | Err(cloudbroker_connector_api::ConnectorError::Unsupported { .. }) => {}
            Err(e) => tracing::info!(id, error = %e, "tags kept by the broker only"),
        }
    }

    /// Fills each VM's `network` (its subnet and VPC) from the records (one query).
    pub async fn fill_networks(&self, vms: &mut [super::Vm]) -> ServiceResult<()> {
        if vms.is_empty() {
            return Ok(());
        }
        let ids: Vec<crate::domain::VmId> = vms.iter().map(|v| v.id.clone()).collect();
        let mut known = self.store.vm_networks(&ids).await?;
        for vm in vms {
            vm.network = known.remove(&vm.id);
        }
        Ok(())
    }

    /// The subnet a launch goes into: the one asked for, else the
    /// instance's `subnet.id`, else (with `vpc.id`) the VPC's first subnet
    /// (the instance's `subnet.id` and `vpc.id` are the pair given);
    /// `None`: the cloud's default. The subnet must be one the actor sees
    /// (not another project's) and the cloud must have it (an unknown one is
    /// "not found"); under `vpc.id` it must be in that VPC.
    pub(super) async fn launch_subnet(
        &self,
        actor: &Actor,
        instance: &InstanceName,
        connector: &dyn Connector,
        creds: &Credentials,
        asked: Option<&str>,
        (configured_subnet, vpc): (Option<String>, Option<String>),
    ) -> ServiceResult<Option<String>> {
        let subnet = asked.map(str::to_string).or(configured_subnet);
        let Some(subnet) = subnet else {
            let Some(vpc) = vpc else { return Ok(None) };
            let subnets = connector.describe_subnets(creds, &[]).await?;
            return match subnets.into_iter().find(|s| s.vpc_id == vpc) {
                Some(s) => Ok(Some(s.subnet_id)),
                None => Err(ServiceError::invalid_field("subnet_id", format!("the VPC '{vpc}' (vpc.id) has no subnet to launch into"))),
            };
        };
        seen_by(self, actor, instance, ObjectKind::Subnet, &subnet).await?;
        let found = connector.describe_subnets(creds, std::slice::from_ref(&subnet)).await?;
        let Some(info) = found.into_iter().next() else { return Err(not_found(ObjectKind::Subnet, &subnet)) };
        if let Some(vpc) = vpc.filter(|v| *v != info.vpc_id) {
            return Err(ServiceError::invalid_field(
                "subnet_id",
                format!("the subnet '{subnet}' is in '{}', not in this instance's VPC '{vpc}' (vpc.id)", info.vpc_id),
            ));
        }
        Ok(Some(subnet))
    }
}

/// Whether `cidr` is an IPv4 block EC2 takes for a VPC or a subnet (`/16` to `/28`).
pub fn valid_block(cidr: &str) -> bool {
    Cidr::parse(cidr).is_some_and(|c| cloudbroker_connector_api::network::PREFIX_RANGE.contains(&c.prefix()))
}
