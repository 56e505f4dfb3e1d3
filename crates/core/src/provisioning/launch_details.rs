//! What VMs were launched with, as the cloud answered their launch: the
//! security groups (id and name) and the volumes the launch made (the root
//! volume, marked so, and those of EC2's `BlockDeviceMapping.N`). Recorded
//! once, when the launch's answer is recorded (migration 0043); read for a
//! page of VMs in one query, with their networks
//! ([`Provisioning::fill_page_details`]). A VM
//! launched before, or whose cloud said nothing, has empty sets.

use super::Provisioning;
use crate::domain::VmId;
use crate::error::ServiceResult;
use cloudbroker_store::vm_launch_details::{LaunchDetails, LaunchDevice, LaunchGroup};

/// The root device a VM is taken to boot from when its cloud does not say.
pub const DEFAULT_ROOT_DEVICE: &str = "/dev/sda1";

/// What the cloud's answer about `vm` says it was launched with.
pub(super) fn details_of(vm: &cloudbroker_connector_api::Vm) -> LaunchDetails {
    let root = vm.root_device_name.as_deref().unwrap_or(DEFAULT_ROOT_DEVICE);
    LaunchDetails {
        groups: vm.security_groups.iter().map(|(id, name)| LaunchGroup { id: id.clone(), name: name.clone() }).collect(),
        devices: vm
            .volumes
            .iter()
            .map(|v| LaunchDevice {
                device: v.device_name.clone(),
                volume_id: v.volume_id.clone(),
                delete_on_termination: v.delete_on_termination,
                root: v.device_name == root,
            })
            .collect(),
    }
}

impl Provisioning {
    /// Records what VM `id` was launched with, when the cloud said anything.
    pub(super) async fn record_launch_details(&self, id: &VmId, vm: &cloudbroker_connector_api::Vm) -> ServiceResult<()> {
        let details = details_of(vm);
        if !details.is_empty() {
            self.store.set_vm_launch_details(id, &details).await?;
        }
        Ok(())
    }

    /// Fills each VM's `network` and `launch_details` from the records, in
    /// one read (a page that shows both; [`Provisioning::fill_networks`]
    /// fills the network alone).
    pub async fn fill_page_details(&self, vms: &mut [super::Vm]) -> ServiceResult<()> {
        if vms.is_empty() {
            return Ok(());
        }
        let ids: Vec<VmId> = vms.iter().map(|v| v.id.clone()).collect();
        let mut known = self.store.vm_page_details(&ids).await?;
        for vm in vms {
            vm.network = known.networks.remove(&vm.id);
            vm.launch_details = known.launch.remove(&vm.id).unwrap_or_default();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use cloudbroker_connector_api::{Vm, VmState, VmVolume};

    #[test]
    fn the_root_volume_is_the_one_on_the_root_device() {
        let vm = Vm {
            id: "i-1".into(),
            state: VmState::Running,
            image_id: String::new(),
            instance_type: String::new(),
            private_ip: None,
            public_ip: None,
            key_name: None,
            launch_time: None,
            client_token: None,
            tags: vec![],
            state_since: None,
            subnet_id: None,
            vpc_id: None,
            security_groups: vec![("sg-1".into(), "web".into())],
            volumes: vec![
                VmVolume { device_name: "/dev/xvda".into(), volume_id: "vol-r".into(), delete_on_termination: true },
                VmVolume { device_name: "/dev/sdf".into(), volume_id: "vol-f".into(), delete_on_termination: false },
            ],
            root_device_name: Some("/dev/xvda".into()),
        };
        let d = details_of(&vm);
        assert_eq!(d.groups, vec![LaunchGroup { id: "sg-1".into(), name: "web".into() }]);
        assert_eq!(d.devices.iter().map(|d| d.root).collect::<Vec<_>>(), vec![true, false]);
        let bare = Vm { volumes: vec![], security_groups: vec![], ..vm };
        assert!(details_of(&bare).is_empty());
    }
}
