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
        group_ids.iter().map(|id| (id.clone(), self.groups.get(id).map(|g| g.name.clone()).unwrap_or_default())).collect()
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use crate::{SandboxConnector, SandboxSettings};
    use cloudbroker_connector_api::{BlockDevice, Connector, CreateSecurityGroupRequest, Credentials, InstanceName, RunRequest};
    use std::time::Duration;

    fn sandbox() -> SandboxConnector {
        SandboxConnector::new(
            InstanceName::parse("ld").unwrap(),
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

    #[tokio::test]
    async fn a_launch_answers_its_groups_and_volumes_and_objects_take_tags() {
        let sb = sandbox();
        let (a, b) = (Credentials::new("alice", "s"), Credentials::new("bob", "s"));
        let req = CreateSecurityGroupRequest { name: "web".into(), description: "d".into(), vpc_id: None };
        let web = sb.create_security_group(&a, &req).await.unwrap();
        let sdf = BlockDevice { device_name: "/dev/sdf".into(), delete_on_termination: Some(false), ..BlockDevice::default() };
        let run = RunRequest {
            image_id: "ami-sandbox-debian-12".into(),
            instance_type: "t2.micro".into(),
            count: 2,
            security_group_ids: vec![web.group_id.clone()],
            block_devices: vec![sdf],
            ..RunRequest::default()
        };
        let vms = sb.run_instances(&a, &run).await.unwrap();
        assert_eq!(vms[0].security_groups, vec![(web.group_id.clone(), "web".to_string())]);
        let v: Vec<_> = vms[0].volumes.iter().map(|v| (v.device_name.as_str(), v.delete_on_termination)).collect();
        assert_eq!(v, vec![("/dev/sda1", true), ("/dev/sdf", false)], "the root volume first");
        assert_ne!(vms[0].volumes[0].volume_id, vms[1].volumes[0].volume_id, "each VM has its own volumes");
        let seen = sb.describe_instances(&a, &Default::default()).await.unwrap();
        assert_eq!(seen[0].volumes, vms[0].volumes, "described as launched");
        // A launch without groups is in the VPC's default group, by name.
        let plain = sb.run_instances(&a, &RunRequest { count: 1, security_group_ids: vec![], block_devices: vec![], ..run }).await.unwrap();
        assert_eq!(plain[0].security_groups.iter().map(|g| g.1.as_str()).collect::<Vec<_>>(), vec!["default"]);

        // Tags on the group: its account only.
        let ids = [web.group_id.clone()];
        sb.create_tags(&a, &ids, &[("Name".into(), "front".into())]).await.unwrap();
        let e = sb.create_tags(&b, &ids, &[("k".into(), "v".into())]).await.unwrap_err();
        assert_eq!(e.code(), Some("InvalidGroup.NotFound"));
        let e = sb.delete_tags(&a, &["vpc-0123456789abcdef0".to_string()], &["k".into()]).await.unwrap_err();
        assert_eq!(e.code(), Some("InvalidVpcID.NotFound"));
        let vpc = sb.create_vpc(&a, "10.9.0.0/16").await.unwrap();
        sb.create_tags(&a, std::slice::from_ref(&vpc.vpc_id), &[("env".into(), "dev".into())]).await.unwrap();
        let shown = sb.describe_vpcs(&a, std::slice::from_ref(&vpc.vpc_id)).await.unwrap();
        assert_eq!(shown[0].tags, vec![("env".to_string(), "dev".to_string())]);
        sb.delete_tags(&a, std::slice::from_ref(&vpc.vpc_id), &["env".into()]).await.unwrap();
        assert!(sb.describe_vpcs(&a, std::slice::from_ref(&vpc.vpc_id)).await.unwrap()[0].tags.is_empty());
    }
}
