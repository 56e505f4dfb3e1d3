//! Elastic IP addresses of projects: allocated (in the project the actor
//! acts in), associated with one of the project's VMs, disassociated and
//! released through the cloud, and recorded so that listings answer from
//! the broker's records without calling the cloud. Every member of the
//! project sees and acts on its addresses, whoever allocated them; a
//! viewer sees them but cannot act (403); another project's addresses and
//! VMs are "not found" (admins see every project's). An address is only
//! associated with a VM of its own project. A project has at most
//! [`MAX_ADDRESSES`] live addresses. A new address is allocated with the
//! credential a launch in the project would use; an address made with a
//! shared credential is acted on only while that credential may still be
//! used there (else 403, see [`crate::vault`]).

use super::{Provisioning, Vm};
use crate::audit::{self, AuditAction, AuditEvent, AuditTarget};
use crate::auth::Actor;
use crate::domain::{AllocationId, CredentialId, InstanceName, VmId, VmStatus};
use crate::error::{Resource, ServiceError, ServiceResult};
use crate::limits::MAX_ADDRESSES;
use chrono::{DateTime, Utc};
use cloudbroker_store::limits::Owned;
use cloudbroker_store::resources::AddressRow;
use serde::Serialize;

/// An Elastic IP as the broker knows it.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Address {
    #[serde(skip)]
    pub instance: InstanceName,
    pub allocation_id: AllocationId,
    pub public_ip: String,
    /// The project's VM it is associated with.
    pub vm: Option<VmId>,
    pub association_id: Option<String>,
    pub private_ip: Option<String>,
    /// User tags (EC2's tags on the `eipalloc-…` id), kept by the broker.
    #[serde(skip)]
    pub tags: std::collections::BTreeMap<String, String>,
    pub created_at: DateTime<Utc>,
}

impl Address {
    pub(super) fn from_row(r: AddressRow, instance: &InstanceName) -> Self {
        Self {
            instance: instance.clone(),
            allocation_id: AllocationId::from_stored(r.allocation_id),
            public_ip: r.public_ip,
            vm: r.vm_id.map(VmId::from_stored),
            association_id: r.association_id,
            private_ip: r.private_ip,
            tags: r.tags,
            created_at: r.created_at,
        }
    }
}

/// An address in the audit log.
fn target<'a>(instance: &'a InstanceName, id: &'a AllocationId) -> AuditTarget<'a> {
    AuditTarget::CloudResource { instance: instance.as_str(), id: id.as_str() }
}

impl Provisioning {
    /// A VM of `project` on `instance`, seen by the actor, that can take an
    /// address or a volume of that project: one the actor does not see, of
    /// another project (admins' included: an address or a volume stays in
    /// its project) or on another instance is "not found"; one with no cloud
    /// instance or terminated is a conflict.
    pub(super) async fn project_vm_on(
        &self,
        actor: &Actor,
        instance: &InstanceName,
        project: &str,
        id: &VmId,
    ) -> ServiceResult<(Vm, String)> {
        let vm = self.owned(actor, id).await?;
        if vm.project.as_str() != project || &vm.instance != instance {
            return Err(ServiceError::NotFound(Resource::Vm(id.clone())));
        }
        match vm.cloud_id.clone() {
            Some(c) if vm.status.is_live() => Ok((vm, c)),
            _ => Err(ServiceError::Conflict(format!("VM '{id}' is {} and cannot take an address or a volume", vm.status))),
        }
    }

    /// A live address the actor sees (its project's; any for admins).
    pub(super) async fn visible_address(&self, actor: &Actor, instance: &InstanceName, id: &AllocationId) -> ServiceResult<AddressRow> {
        match self.store.address(instance.as_str(), id.as_str()).await? {
            Some(r) if actor.sees(&r.project) && r.ended_at.is_none() => Ok(r),
            _ => Err(ServiceError::NotFound(Resource::Address(id.clone()))),
        }
    }

    /// A live address the actor sees and may act on (a viewer may not: 403).
    pub(super) async fn actable_address(&self, actor: &Actor, instance: &InstanceName, id: &AllocationId) -> ServiceResult<AddressRow> {
        let row = self.visible_address(actor, instance, id).await?;
        actor.require_act()?;
        Ok(row)
    }

    /// Allocates an address on `instance` in the actor's project, with the
    /// credentials a launch there would use.
    pub async fn allocate_address(&self, actor: &Actor, instance: &InstanceName) -> ServiceResult<Address> {
        actor.require_act()?;
        let (connector, _, _) = self.connector(instance)?;
        let (creds, cred_id) = self.vault.credentials_for_launch(actor, instance).await?;
        crate::limits::check(&self.store, Owned::Addresses, actor.project.as_str(), MAX_ADDRESSES).await?;
        let info = connector.allocate_address(&creds).await?;
        let id = AllocationId::parse(&info.allocation_id)
            .map_err(|e| ServiceError::Internal(format!("the cloud answered an odd allocation id: {e}")))?;
        let row = match self
            .store
            .insert_address_capped(
                MAX_ADDRESSES,
                instance.as_str(),
                id.as_str(),
                actor.project.as_str(),
                actor.name.as_str(),
                cred_id.as_str(),
                &info.public_ip,
            )
            .await
        {
            Ok(r) => r,
            Err(e) => {
                // Not recorded (the cap was reached meanwhile, or the store
                // failed) means nobody could ever release it: give it back.
                if let Err(re) = connector.release_address(&creds, id.as_str()).await {
                    tracing::error!(instance = %instance, allocation = %id, error = %re, "an address the broker could not record was not released");
                }
                return Err(crate::limits::capped(e));
            }
        };
        audit::record_by(
            &self.store,
            actor,
            &AuditEvent::ok(AuditAction::AddressAllocate, target(instance, &id)).detail(info.public_ip.as_str()),
        )
        .await?;
        Ok(Address::from_row(row, instance))
    }

    /// Associates an address with a VM of its project (moving it from
    /// another VM is refused by the cloud; a VM's previous address lets go).
    pub async fn associate_address(&self, actor: &Actor, instance: &InstanceName, id: &AllocationId, vm: &VmId) -> ServiceResult<Address> {
        self.associate_address_moving(actor, instance, id, vm, false).await
    }

    /// [`Self::associate_address`]; with `allow_reassociation` (EC2's
    /// `AllowReassociation`) an address associated with another VM moves
    /// to this one (that VM loses it), else the cloud refuses
    /// (`Resource.AlreadyAssociated`).
    pub async fn associate_address_moving(
        &self,
        actor: &Actor,
        instance: &InstanceName,
        id: &AllocationId,
        vm: &VmId,
        allow_reassociation: bool,
    ) -> ServiceResult<Address> {
        let row = self.actable_address(actor, instance, id).await?;
        let (v, cloud_vm) = self.project_vm_on(actor, instance, &row.project, vm).await?;
        let (connector, _, _) = self.connector(instance)?;
        let cred = CredentialId::from_stored(row.credential_id.clone());
        let creds = self.vault.credentials_to_act(actor, &cred, &format!("address '{id}'")).await?;
        let association = connector.associate_address(&creds, id.as_str(), &cloud_vm, allow_reassociation).await?;
        // Moved: the VM it leaves no longer has it.
        if let Some(left) = row.vm_id.as_deref().filter(|left| *left != vm.as_str()).map(|l| VmId::from_stored(l.to_string())) {
            if let Some(l) = self.store.get_vm(&left).await?.filter(|l| l.public_ip.as_deref() == Some(row.public_ip.as_str())) {
                self.store.set_vm_public_ip(&l.id, None).await?;
            }
        }
        if let Some(previous) = self.store.address_of_vm(instance.as_str(), vm.as_str()).await? {
            if previous.allocation_id != id.as_str() {
                self.store.set_address_association(instance.as_str(), &previous.allocation_id, None, None, None).await?;
            }
        }
        self.store
            .set_address_association(instance.as_str(), id.as_str(), Some(vm.as_str()), Some(&association), v.private_ip.as_deref())
            .await?;
        // Only the address: the state read before the cloud call may be
        // stale by now (a terminate in between must not be undone).
        self.store.set_vm_public_ip(&v.id, Some(&row.public_ip)).await?;
        audit::record_by(
            &self.store,
            actor,
            &AuditEvent::ok(AuditAction::AddressAssociate, target(instance, id)).detail(vm.as_str()).in_project(&row.project),
        )
        .await?;
        self.address(actor, instance, id).await
    }

    /// Ends an address's association.
    pub async fn disassociate_address(&self, actor: &Actor, instance: &InstanceName, id: &AllocationId) -> ServiceResult<Address> {
        let row = self.actable_address(actor, instance, id).await?;
        let Some(association) = row.association_id.clone() else {
            return Err(ServiceError::Conflict(format!("address '{id}' is not associated")));
        };
        let (connector, _, _) = self.connector(instance)?;
        let cred = CredentialId::from_stored(row.credential_id.clone());
        let creds = self.vault.credentials_to_act(actor, &cred, &format!("address '{id}'")).await?;
        connector.disassociate_address(&creds, &association).await?;
        self.store.set_address_association(instance.as_str(), id.as_str(), None, None, None).await?;
        if let Some(vm) = row.vm_id.clone().map(VmId::from_stored) {
            if let Some(v) = self.store.get_vm(&vm).await?.filter(|v| v.public_ip.as_deref() == Some(row.public_ip.as_str())) {
                self.store.set_vm_public_ip(&v.id, None).await?;
            }
        }
        audit::record_by(
            &self.store,
            actor,
            &AuditEvent::ok(AuditAction::AddressDisassociate, target(instance, id)).detail(association.as_str()).in_project(&row.project),
        )
        .await?;
        self.address(actor, instance, id).await
    }

    /// Releases an address (the cloud refuses while it is associated).
    pub async fn release_address(&self, actor: &Actor, instance: &InstanceName, id: &AllocationId) -> ServiceResult<()> {
        let row = self.actable_address(actor, instance, id).await?;
        let (connector, _, _) = self.connector(instance)?;
        let cred = CredentialId::from_stored(row.credential_id.clone());
        let creds = self.vault.credentials_to_act(actor, &cred, &format!("address '{id}'")).await?;
        connector.release_address(&creds, id.as_str()).await?;
        self.store.end_address(instance.as_str(), id.as_str()).await?;
        audit::record_by(
            &self.store,
            actor,
            &AuditEvent::ok(AuditAction::AddressRelease, target(instance, id))
                .detail(row.public_ip.as_str())
                .in_project(&row.project)
                .about(&row.user),
        )
        .await?;
        Ok(())
    }

    /// What tagging an address checks (EC2's `DryRun`, and CreateTags/DeleteTags
    /// before any change): it is the project's, the actor may act, the tags
    /// are valid. Answers the tags it would have.
    pub async fn check_tag_address(
        &self,
        actor: &Actor,
        instance: &InstanceName,
        id: &AllocationId,
        set: &std::collections::BTreeMap<String, String>,
        remove: &[String],
    ) -> ServiceResult<std::collections::BTreeMap<String, String>> {
        let row = self.actable_address(actor, instance, id).await?;
        crate::key_pairs::retag(&row.tags, set, remove)
    }

    /// Sets and removes user tags of an address (kept by the broker).
    pub async fn tag_address(
        &self,
        actor: &Actor,
        instance: &InstanceName,
        id: &AllocationId,
        set: &std::collections::BTreeMap<String, String>,
        remove: &[String],
    ) -> ServiceResult<Address> {
        let merged = self.check_tag_address(actor, instance, id, set, remove).await?;
        self.store.set_address_tags(instance.as_str(), id.as_str(), &merged).await?;
        self.address(actor, instance, id).await
    }

    /// One address the caller sees, from the records.
    pub async fn address(&self, actor: &Actor, instance: &InstanceName, id: &AllocationId) -> ServiceResult<Address> {
        let row = self.visible_address(actor, instance, id).await?;
        self.settle_address(row, instance).await
    }

    /// The addresses of the caller's project on `instance`, oldest first,
    /// from the records.
    pub async fn addresses(&self, actor: &Actor, instance: &InstanceName) -> ServiceResult<Vec<Address>> {
        let mut out = Vec::new();
        for row in self.store.addresses(actor.project.as_str(), instance.as_str()).await? {
            out.push(self.settle_address(row, instance).await?);
        }
        Ok(out)
    }

    /// An address whose VM has ended is no longer associated (the cloud let
    /// it go when the VM terminated): the record says so from now on.
    async fn settle_address(&self, mut row: AddressRow, instance: &InstanceName) -> ServiceResult<Address> {
        if let Some(vm) = row.vm_id.clone() {
            let ended = match self.store.get_vm(&VmId::from_stored(vm.clone())).await? {
                Some(v) => {
                    matches!(v.state, VmStatus::Terminated | VmStatus::ShuttingDown | VmStatus::Failed)
                }
                None => true,
            };
            if ended {
                self.store.set_address_association(instance.as_str(), &row.allocation_id, None, None, None).await?;
                row.vm_id = None;
                row.association_id = None;
                row.private_ip = None;
            }
        }
        Ok(Address::from_row(row, instance))
    }
}
