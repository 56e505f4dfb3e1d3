//! The reconciler's part for addresses and volumes: records follow what
//! the cloud did without the broker (a volume detached, or deleted, when
//! its VM terminated; an address let go by a terminated VM, moved or
//! released out of band). One full pass asks each (instance, credential)
//! that has a live record the cloud may change (an associated address; a
//! volume attached or not `available`) for one DescribeAddresses and one
//! DescribeVolumes listing of the account, and nothing at all of a group
//! (or a broker) with none: an idle account of VMs alone costs no call here.
//! Each group works under its own lease, as the VMs' do. What a listing
//! reports is written only while the record is as it was read before the
//! listing ([`cloudbroker_store::resource_sync`]): an action written in
//! between is newer and is kept.

use super::reconcile::ReconcileReport;
use super::Provisioning;
use crate::domain::{CredentialId, InstanceName};
use crate::error::ServiceResult;
use cloudbroker_connector_api::{AddressInfo, VolumeInfo, VolumeState};
use cloudbroker_store::resource_sync::ObservedVolume;
use cloudbroker_store::resources::{AddressRow, VolumeRow};
use std::collections::BTreeMap;

/// The records of one (instance, credential).
#[derive(Default)]
struct Group {
    addresses: Vec<AddressRow>,
    volumes: Vec<VolumeRow>,
}

impl Provisioning {
    /// Brings the live address and volume records the cloud may have
    /// changed in line with it; adds what it did to `report`.
    pub(super) async fn reconcile_resources(&self, holder: &str, report: &mut ReconcileReport) -> ServiceResult<()> {
        let mut groups: BTreeMap<(String, String), Group> = BTreeMap::new();
        for a in self.store.addresses_to_sync().await? {
            groups.entry((a.instance.clone(), a.credential_id.clone())).or_default().addresses.push(a);
        }
        for v in self.store.volumes_to_sync().await? {
            groups.entry((v.instance.clone(), v.credential_id.clone())).or_default().volumes.push(v);
        }
        let ttl = self.lease_ttl().as_millis() as i64;
        for ((instance, cred), group) in groups {
            report.resource_groups += 1;
            let lease = format!("reconcile-resources:{instance}:{cred}");
            if !self.store.try_lease(&lease, holder, ttl).await? {
                report.skipped_locked += 1;
                continue;
            }
            let Ok(instance) = InstanceName::parse(&instance) else { continue };
            if let Err(e) = self.reconcile_resource_group(&instance, &CredentialId::from_stored(cred), &group, report).await {
                report.errors.push(format!("{instance} (addresses, volumes): {e}"));
            }
        }
        Ok(())
    }

    async fn reconcile_resource_group(
        &self,
        instance: &InstanceName,
        cred: &CredentialId,
        group: &Group,
        report: &mut ReconcileReport,
    ) -> ServiceResult<()> {
        let (connector, _, _) = self.connector(instance)?;
        let creds = self.vault.credentials_by_id(cred).await?;
        if !group.addresses.is_empty() {
            let seen = connector.describe_addresses(&creds, &[]).await?;
            for row in &group.addresses {
                if self.sync_address(instance, row, seen.iter().find(|a| a.allocation_id == row.allocation_id)).await? {
                    report.addresses_updated += 1;
                }
            }
        }
        if !group.volumes.is_empty() {
            let seen = connector.describe_volumes(&creds, &[]).await?;
            for row in &group.volumes {
                if self.sync_volume(instance, row, seen.iter().find(|v| v.volume_id == row.volume_id)).await? {
                    report.volumes_updated += 1;
                }
            }
        }
        Ok(())
    }

    /// The broker's VM (its id) recorded for cloud instance `cloud_id` of `instance`.
    async fn vm_of_cloud(&self, instance: &InstanceName, cloud_id: &str) -> ServiceResult<Option<String>> {
        Ok(self.store.vm_by_cloud_id(instance, cloud_id).await?.map(|v| v.id.to_string()))
    }

    /// Writes what the cloud says of one address; whether anything changed.
    async fn sync_address(&self, instance: &InstanceName, row: &AddressRow, seen: Option<&AddressInfo>) -> ServiceResult<bool> {
        let Some(info) = seen else {
            return Ok(self.store.observe_address_gone(row).await?);
        };
        let vm = match info.instance_id.as_deref() {
            Some(cloud_vm) => self.vm_of_cloud(instance, cloud_vm).await?,
            None => None,
        };
        // Associated with an instance the broker does not record: not ours to show.
        let association = if vm.is_some() { info.association_id.as_deref() } else { None };
        let private_ip = if vm.is_some() { info.private_ip.as_deref() } else { None };
        if vm.as_deref() == row.vm_id.as_deref() && association == row.association_id.as_deref() {
            return Ok(false);
        }
        Ok(self.store.observe_address(row, vm.as_deref(), association, private_ip).await?)
    }

    /// Writes what the cloud says of one volume; whether anything changed.
    async fn sync_volume(&self, instance: &InstanceName, row: &VolumeRow, seen: Option<&VolumeInfo>) -> ServiceResult<bool> {
        let info = match seen {
            None => return Ok(self.store.observe_volume_gone(row).await?),
            Some(i) if i.state == VolumeState::Deleted => return Ok(self.store.observe_volume_gone(row).await?),
            Some(i) => i,
        };
        let attachment = info.attachments.iter().find(|a| a.state != "detached");
        let vm = match attachment {
            Some(a) => self.vm_of_cloud(instance, &a.instance_id).await?,
            None => None,
        };
        let attachment = attachment.filter(|_| vm.is_some());
        let state = match (info.state, attachment) {
            // Attached to an instance the broker does not record: in use, by nobody it shows.
            (VolumeState::InUse, None) if !info.attachments.is_empty() => VolumeState::InUse,
            (s, _) => s,
        };
        let seen = ObservedVolume {
            state: state.as_str(),
            vm_id: vm.as_deref(),
            device: attachment.map(|a| a.device.as_str()),
            attach_state: attachment.map(|a| a.state.as_str()),
        };
        let recorded = ObservedVolume {
            state: row.state.as_str(),
            vm_id: row.vm_id.as_deref(),
            device: row.device.as_deref(),
            attach_state: row.attach_state.as_deref(),
        };
        if seen == recorded {
            return Ok(false);
        }
        Ok(self.store.observe_volume(row, &seen).await?)
    }
}
