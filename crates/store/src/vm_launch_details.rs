//! What VMs were launched with, as the cloud answered the launch (migration
//! 0043): their security groups (id and name) and the volumes the launch
//! made (the root volume, and those of EC2's `BlockDeviceMapping.N`). One
//! row per VM launched since; a VM without one has empty sets. Read for a
//! page of VMs at once (one query per 500 ids), never per VM.

use crate::{Store, StoreError};
use cloudbroker_model::VmId;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// A security group a VM was launched in.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LaunchGroup {
    pub id: String,
    pub name: String,
}

/// A volume a launch made for a VM.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LaunchDevice {
    /// `/dev/sda1`, `/dev/sdf`...
    pub device: String,
    pub volume_id: String,
    #[serde(default)]
    pub delete_on_termination: bool,
    /// The root volume (the VM's `rootDeviceName`).
    #[serde(default)]
    pub root: bool,
}

/// What one VM was launched with.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LaunchDetails {
    pub groups: Vec<LaunchGroup>,
    pub devices: Vec<LaunchDevice>,
}

impl LaunchDetails {
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty() && self.devices.is_empty()
    }
}

impl Store {
    /// Records what VM `id` was launched with (replacing what was recorded).
    pub async fn set_vm_launch_details(&self, id: &VmId, details: &LaunchDetails) -> Result<(), StoreError> {
        let groups = serde_json::to_string(&details.groups).unwrap_or_else(|_| "[]".into());
        let devices = serde_json::to_string(&details.devices).unwrap_or_else(|_| "[]".into());
        sqlx::query(
            "INSERT INTO vm_launch_details (vm_id, sec_groups, devices) VALUES ($1, $2, $3) \
             ON CONFLICT (vm_id) DO UPDATE SET sec_groups = excluded.sec_groups, devices = excluded.devices",
        )
        .bind(id)
        .bind(groups)
        .bind(devices)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// What each of `ids` that has a record was launched with.
    pub async fn vm_launch_details(&self, ids: &[VmId]) -> Result<HashMap<VmId, LaunchDetails>, StoreError> {
        let mut out = HashMap::new();
        for chunk in ids.chunks(500) {
            if chunk.is_empty() {
                continue;
            }
            let marks = (1..=chunk.len()).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ");
            let sql = format!("SELECT vm_id, sec_groups, devices FROM vm_launch_details WHERE vm_id IN ({marks})");
            let mut q = sqlx::query_as::<_, (String, String, String)>(&sql);
            for id in chunk {
                q = q.bind(id);
            }
            for (vm, groups, devices) in q.fetch_all(self.pool()).await? {
                if let Some(id) = chunk.iter().find(|i| i.as_str() == vm) {
                    let details = LaunchDetails {
                        groups: serde_json::from_str(&groups).unwrap_or_default(),
                        devices: serde_json::from_str(&devices).unwrap_or_default(),
                    };
                    out.insert(id.clone(), details);
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use crate::store_test;

    store_test!(launch_details_are_recorded_and_read_by_id, |store: Store| async move {
        let (a, b) = (VmId::parse("vm-0000000000000001").unwrap(), VmId::parse("vm-0000000000000002").unwrap());
        let first = LaunchDetails { groups: vec![LaunchGroup { id: "sg-1".into(), name: "web".into() }], devices: vec![] };
        store.set_vm_launch_details(&a, &first).await.unwrap();
        let second = LaunchDetails {
            groups: vec![LaunchGroup { id: "sg-1".into(), name: "web".into() }, LaunchGroup { id: "sg-2".into(), name: "db".into() }],
            devices: vec![
                LaunchDevice { device: "/dev/sda1".into(), volume_id: "vol-r".into(), delete_on_termination: true, root: true },
                LaunchDevice { device: "/dev/sdf".into(), volume_id: "vol-f".into(), delete_on_termination: false, root: false },
            ],
        };
        store.set_vm_launch_details(&a, &second).await.unwrap();
        let got = store.vm_launch_details(&[a.clone(), b.clone()]).await.unwrap();
        assert_eq!(got.get(&a), Some(&second));
        assert!(!got.contains_key(&b));
    });
}
