//! Dry runs (EC2's `DryRun=true`): each `check_*` runs the checks of the
//! action it is named after, in the same order and with the same helpers
//! (the caller may act: a viewer may not; the target VMs, addresses and
//! volumes exist, are seen by the caller, are of one project, on this
//! instance, and can take the action; the connector
//! instance is ready and the caller has credentials for it; a launch's
//! fields, image and quota), and stops where the action would start
//! changing things. A check writes nothing, to the store or to a cloud, and
//! reserves nothing: it tells what the action would answer now, so a later
//! real call may still be refused (another launch took the quota meanwhile,
//! or the cloud refuses what only it checks). A launch's dry run,
//! [`Provisioning::check_launch`], lives with the launch: its plan and an
//! admission preview.

use super::{Provisioning, VolumeSpec};
use crate::auth::Actor;
use crate::domain::{AllocationId, CredentialId, ImageName, InstanceName, VmAction, VmId, VolumeId};
use crate::error::{ServiceError, ServiceResult};
use std::collections::BTreeMap;

impl Provisioning {
    /// Whether [`Self::action`] would act on VM `id`.
    pub async fn check_action(&self, actor: &Actor, id: &VmId, action: VmAction) -> ServiceResult<()> {
        let v = self.owned(actor, id).await?;
        actor.require_act()?;
        Self::actionable(&v, action)?;
        if action == VmAction::Terminate {
            self.refuse_protected(&v).await?;
        }
        self.connector(&v.instance)?;
        self.vault.credentials_to_act(actor, &v.credential_id, &format!("VM '{id}'")).await?;
        Ok(())
    }

    /// Whether [`Self::tag`] would set and remove these tags of VM `id`.
    pub async fn check_tag(&self, actor: &Actor, id: &VmId, set: &BTreeMap<String, String>, remove: &[String]) -> ServiceResult<()> {
        let (vm, _) = self.retagged(actor, id, set, remove).await?;
        if vm.cloud_id.is_some() && vm.status.is_live() {
            self.connector(&vm.instance)?;
            self.vault.credentials_to_act(actor, &vm.credential_id, &format!("VM '{id}'")).await?;
        }
        Ok(())
    }

    /// Whether [`Self::tag_volume`] would set and remove these tags of volume `id`.
    pub async fn check_tag_volume(
        &self,
        actor: &Actor,
        instance: &InstanceName,
        id: &VolumeId,
        set: &BTreeMap<String, String>,
        remove: &[String],
    ) -> ServiceResult<()> {
        let (row, _) = self.retagged_volume(actor, instance, id, set, remove).await?;
        self.ready_with(actor, instance, &row.credential_id, &format!("volume '{id}'")).await
    }

    /// Whether [`Self::allocate_address`] would ask the cloud for an address.
    pub async fn check_allocate_address(&self, actor: &Actor, instance: &InstanceName) -> ServiceResult<()> {
        actor.require_act()?;
        self.connector(instance)?;
        crate::limits::check(
            &self.store,
            cloudbroker_store::limits::Owned::Addresses,
            actor.project.as_str(),
            crate::limits::MAX_ADDRESSES,
        )
        .await?;
        self.vault.credentials_for_launch(actor, instance).await?;
        Ok(())
    }

    /// Whether [`Self::associate_address`] would associate address `id` with VM `vm`.
    pub async fn check_associate_address(&self, actor: &Actor, instance: &InstanceName, id: &AllocationId, vm: &VmId) -> ServiceResult<()> {
        let row = self.actable_address(actor, instance, id).await?;
        self.project_vm_on(actor, instance, &row.project, vm).await?;
        self.ready_with(actor, instance, &row.credential_id, &format!("address '{id}'")).await
    }

    /// Whether [`Self::disassociate_address`] would end address `id`'s association.
    pub async fn check_disassociate_address(&self, actor: &Actor, instance: &InstanceName, id: &AllocationId) -> ServiceResult<()> {
        let row = self.actable_address(actor, instance, id).await?;
        if row.association_id.is_none() {
            return Err(ServiceError::Conflict(format!("address '{id}' is not associated")));
        }
        self.ready_with(actor, instance, &row.credential_id, &format!("address '{id}'")).await
    }

    /// Whether [`Self::release_address`] would release address `id`.
    pub async fn check_release_address(&self, actor: &Actor, instance: &InstanceName, id: &AllocationId) -> ServiceResult<()> {
        let row = self.actable_address(actor, instance, id).await?;
        self.ready_with(actor, instance, &row.credential_id, &format!("address '{id}'")).await
    }

    /// Whether [`Self::create_volume`] would ask the cloud for this volume.
    pub async fn check_create_volume(&self, actor: &Actor, instance: &InstanceName, spec: &VolumeSpec) -> ServiceResult<()> {
        actor.require_act()?;
        spec.check()?;
        self.connector(instance)?;
        crate::limits::check(&self.store, cloudbroker_store::limits::Owned::Volumes, actor.project.as_str(), crate::limits::MAX_VOLUMES)
            .await?;
        self.vault.credentials_for_launch(actor, instance).await?;
        Ok(())
    }

    /// Whether [`Self::attach_volume`] would attach volume `id` to VM `vm` as `device`.
    pub async fn check_attach_volume(
        &self,
        actor: &Actor,
        instance: &InstanceName,
        id: &VolumeId,
        vm: &VmId,
        device: &str,
    ) -> ServiceResult<()> {
        super::volumes::check_device(device)?;
        let row = self.actable_volume(actor, instance, id).await?;
        self.project_vm_on(actor, instance, &row.project, vm).await?;
        self.ready_with(actor, instance, &row.credential_id, &format!("volume '{id}'")).await
    }

    /// Whether [`Self::detach_volume`] would detach volume `id` (from `vm` when given).
    pub async fn check_detach_volume(&self, actor: &Actor, instance: &InstanceName, id: &VolumeId, vm: Option<&VmId>) -> ServiceResult<()> {
        let row = self.actable_volume(actor, instance, id).await?;
        self.detach_from(actor, instance, &row.project, vm).await?;
        self.ready_with(actor, instance, &row.credential_id, &format!("volume '{id}'")).await
    }

    /// Whether [`Self::delete_volume`] would delete volume `id`.
    pub async fn check_delete_volume(&self, actor: &Actor, instance: &InstanceName, id: &VolumeId) -> ServiceResult<()> {
        let row = self.actable_volume(actor, instance, id).await?;
        self.ready_with(actor, instance, &row.credential_id, &format!("volume '{id}'")).await
    }

    /// Whether [`Self::register_image`] would register `cloud_image_id` as
    /// `name` (the cloud is asked whether it has the image: a read).
    pub async fn check_register_image(
        &self,
        actor: &Actor,
        instance: &InstanceName,
        cloud_image_id: &str,
        name: &ImageName,
        description: &str,
    ) -> ServiceResult<()> {
        actor.require_act()?;
        self.registrable(actor, instance, cloud_image_id).await?;
        self.images.check_register(actor, name, description)?;
        if self.images.catalogue().await?.get(name).is_some() {
            return Err(ServiceError::Conflict(format!("image '{name}' already exists")));
        }
        Ok(())
    }

    /// The connector of `instance` is ready and the stored credential a
    /// resource (`what`) was made with still opens for `actor` (a revoked
    /// grant refuses, as the real action does).
    async fn ready_with(&self, actor: &Actor, instance: &InstanceName, credential_id: &str, what: &str) -> ServiceResult<()> {
        self.connector(instance)?;
        self.vault.credentials_to_act(actor, &CredentialId::from_stored(credential_id.to_string()), what).await?;
        Ok(())
    }
}
