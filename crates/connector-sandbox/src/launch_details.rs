//! What a simulated launch answers about each VM's groups and volumes
//! (EC2's `groupSet` and `blockDeviceMapping`): the groups it was launched
//! in, by id and name; a root volume `/dev/sda1` (deleted on termination),
//! unless `BlockDeviceMapping.N` names the root device itself; and one volume
//! per other mapping, deleted on termination unless the mapping says not
//! (EC2's default). Volume ids are derived from the VM's number, so they
//! are stable and distinct; the simulation does not list them as volumes.

use super::world::World;
use cloudbroker_connector_api::{RunRequest, VmVolume};

/// The device a simulated VM boots from.
pub(crate) const ROOT_DEVICE: &str = "/dev/sda1";

impl World {
    /// The (id, name) of each of `group_ids`, as a launch answers them.
    pub(crate) fn launch_group_names(&self, group_ids: &[String]) -> Vec<(String, String)> {
        group_ids
            .iter()
            .map(|id| (id.clone(), self.groups.get(id).map(|g| g.name.clone()).unwrap_or_default()))
            .collect()
    }
}

/// The volumes the `n`th VM of the simulation gets from launch `req`.
pub(crate) fn launch_volumes(n: u64, req: &RunRequest) -> Vec<VmVolume> {
    let id = |i: u64| format!("vol-{:017x}", ((n << 8) | i) ^ 0x0a5a_5000_0000_0000);
    let mut out = Vec::with_capacity(req.block_devices.len() + 1);
    if !req.block_devices.iter().any(|b| b.device_name == ROOT_DEVICE) {
        out.push(VmVolume { device_name: ROOT_DEVICE.to_string(), volume_id: id(0), delete_on_termination: true });
    }
    for (i, b) in req.block_devices.iter().enumerate() {
        out.push(VmVolume {
            device_name: b.device_name.clone(),
            volume_id: id(i as u64 + 1),
            delete_on_termination: b.delete_on_termination.unwrap_or(true),
        });
    }
    out
}
