//! What VMs were launched with, as the cloud answered the launch (migration
//! 0043): their security groups (id and name) and the volumes the launch
//! made (the root volume, and those of EC2's `BlockDeviceMapping.N`). One
//! row per VM launched since; a VM without one has empty sets. Read for a
//! page of VMs at once (one query per 500 ids), never per VM; a page that
//! needs the VMs' networks too reads both in that one query
//! ([`Store::vm_page_details`]), where the VM rows are read (`sqlite_read`,
//! `pg_read`: no hop to the pool's worker), through the pool otherwise.

use crate::sqlite_read::Bind;
use crate::{Store, StoreError};
use cloudbroker_model::VmId;
use serde::{Deserialize, Serialize};
use sqlx::Row;
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

/// A page of VMs' networks and launch details ([`Store::vm_page_details`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PageDetails {
    /// (subnet, VPC) of each VM that has them recorded (migration 0036).
    pub networks: HashMap<VmId, (String, String)>,
    /// What each VM that has a record was launched with.
    pub launch: HashMap<VmId, LaunchDetails>,
}

/// [`Store::vm_page_details`]' query on PostgreSQL's direct reader: the
/// ids as one `text[]` parameter. The pool's path (sqlx's `Any` driver has
/// no arrays) and SQLite list them (`IN ($1, ...)`).
const PG_PAGE_DETAILS: &str = "SELECT vm_id, 'n', subnet_id, vpc_id FROM vm_networks WHERE vm_id = ANY($1) \
     UNION ALL SELECT vm_id, 'l', sec_groups, devices FROM vm_launch_details WHERE vm_id = ANY($1)";

/// One row of [`Store::vm_page_details`]' query: (VM, which table, two values).
type DetailRow = (String, String, String, String);

impl LaunchDetails {
    /// Decoded from the two stored JSON lists (an unreadable one is empty:
    /// what was recorded is a display aid, never a reason to fail a page).
    fn decode(groups: &str, devices: &str) -> Self {
        Self { groups: serde_json::from_str(groups).unwrap_or_default(), devices: serde_json::from_str(devices).unwrap_or_default() }
    }
}

impl Store {
    /// The networks and launch details of each of `ids` that has them: one
    /// query per 500 ids over both tables (`UNION ALL`), instead of a query
    /// per table.
    pub async fn vm_page_details(&self, ids: &[VmId]) -> Result<PageDetails, StoreError> {
        let mut out = PageDetails::default();
        for chunk in ids.chunks(500) {
            if chunk.is_empty() {
                continue;
            }
            // The ids listed (`IN ($1, ...)`): SQLite and the pool's path.
            let listed = || {
                let marks = (1..=chunk.len()).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ");
                format!(
                    "SELECT vm_id, 'n', subnet_id, vpc_id FROM vm_networks WHERE vm_id IN ({marks}) \
                     UNION ALL SELECT vm_id, 'l', sec_groups, devices FROM vm_launch_details WHERE vm_id IN ({marks})"
                )
            };
            let mut rows: Option<Vec<DetailRow>> = None;
            if let Some(reader) = self.sqlite_reader() {
                let binds: Vec<Bind<'_>> = chunk.iter().map(|i| Bind::Text(i.as_str())).collect();
                rows = reader.rows(&listed(), &binds, chunk.len(), |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)));
            } else if let Some(reader) = self.pg_reader() {
                // The ids as one array: one statement (prepared and
                // planned once per connection) for any number of ids, where
                // a list of N parameters is a statement of its own per N.
                let ids: Vec<&str> = chunk.iter().map(VmId::as_str).collect();
                rows = reader
                    .rows_with(PG_PAGE_DETAILS, &[Bind::Texts(&ids)], chunk.len(), |r| {
                        Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?))
                    })
                    .await;
            }
            let rows = match rows {
                Some(rows) => rows,
                None => {
                    let sql = listed();
                    let mut q = sqlx::query_as::<_, DetailRow>(&sql);
                    for id in chunk {
                        q = q.bind(id);
                    }
                    q.fetch_all(self.pool()).await?
                }
            };
            for (vm, table, a, b) in rows {
                let vm = VmId::from_stored(vm);
                if table == "n" {
                    out.networks.insert(vm, (a, b));
                } else {
                    out.launch.insert(vm, LaunchDetails::decode(&a, &b));
                }
            }
        }
        Ok(out)
    }

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
                out.insert(VmId::from_stored(vm), LaunchDetails::decode(&groups, &devices));
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
