//! Where VMs are in their cloud's network, for VMs the launch's answer did
//! not record it for: VMs the reconciler adopts, and any VM whose network
//! record is missing (launched before the broker kept them, or recorded by
//! another path). The cloud's description of the VM (its `subnetId` and
//! `vpcId`) is written to the VM's network record, never replacing one
//! (a VM does not change subnet); a cloud that names none writes nothing.

use super::Provisioning;
use crate::domain::{InstanceName, VmId};
use crate::error::ServiceResult;

impl Provisioning {
    /// Records the subnet and VPC of each listed cloud VM (`seen`) that has
    /// a record on `instance` (`recorded`: cloud id to record id, as read
    /// before the listing; VMs recorded since are looked up) and no network
    /// record yet. One query for those known, a write per missing one.
    pub(super) async fn record_missing_networks(
        &self,
        instance: &InstanceName,
        seen: &[cloudbroker_connector_api::Vm],
        recorded: &std::collections::BTreeMap<&str, VmId>,
    ) -> ServiceResult<usize> {
        let mut placed: Vec<(VmId, &str, &str)> = Vec::new();
        for vm in seen {
            let (Some(subnet), Some(vpc)) = (vm.subnet_id.as_deref(), vm.vpc_id.as_deref()) else { continue };
            if vm.state == cloudbroker_connector_api::VmState::Terminated {
                continue;
            }
            let id = match recorded.get(vm.id.as_str()) {
                Some(id) => id.clone(),
                None => match self.store.vm_by_cloud_id(instance, &vm.id).await? {
                    Some(r) => r.id,
                    None => continue,
                },
            };
            placed.push((id, subnet, vpc));
        }
        if placed.is_empty() {
            return Ok(0);
        }
        let ids: Vec<VmId> = placed.iter().map(|(id, _, _)| id.clone()).collect();
        let known = self.store.vm_networks(&ids).await?;
        let mut written = 0;
        for (id, subnet, vpc) in placed {
            if !known.contains_key(&id) {
                self.store.set_vm_network(&id, subnet, vpc).await?;
                written += 1;
            }
        }
        Ok(written)
    }
}
