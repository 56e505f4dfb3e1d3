//! Where VMs are in their cloud's network (migration 0036): the subnet and
//! VPC the cloud placed each in, as it answered the launch. Kept apart from
//! the VM records (most clouds the broker fronts have no VPCs); read by id
//! for the EC2 front's `subnetId` and `vpcId`.

use crate::sqlite_read::Bind;
use crate::{Store, StoreError};
use cloudbroker_model::VmId;
use sqlx::Row;
use std::collections::HashMap;

impl Store {
    /// Records VM `id`'s subnet and VPC (replacing what was recorded).
    pub async fn set_vm_network(&self, id: &VmId, subnet_id: &str, vpc_id: &str) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO vm_networks (vm_id, subnet_id, vpc_id) VALUES ($1, $2, $3) \
             ON CONFLICT (vm_id) DO UPDATE SET subnet_id = excluded.subnet_id, vpc_id = excluded.vpc_id",
        )
        .bind(id)
        .bind(subnet_id)
        .bind(vpc_id)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// The (subnet, VPC) of each of `ids` that has them recorded.
    pub async fn vm_networks(&self, ids: &[VmId]) -> Result<HashMap<VmId, (String, String)>, StoreError> {
        let mut out = HashMap::new();
        for chunk in ids.chunks(500) {
            if chunk.is_empty() {
                continue;
            }
            let marks = (1..=chunk.len()).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ");
            let sql = format!("SELECT vm_id, subnet_id, vpc_id FROM vm_networks WHERE vm_id IN ({marks})");
            // Read directly where the VM records are (`sqlite_read`,
            // `pg_read`: one call, or one round trip without the pool's
            // ping); the pool's path otherwise, or if that failed.
            let binds: Vec<Bind<'_>> = chunk.iter().map(|i| Bind::Text(i.as_str())).collect();
            let mut rows = None;
            if let Some(reader) = self.sqlite_reader() {
                rows = reader.rows(&sql, &binds, 0, |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)));
            } else if let Some(reader) = self.pg_reader() {
                rows = reader.rows_with(&sql, &binds, 0, |r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?))).await;
            }
            let rows: Vec<(String, String, String)> = match rows {
                Some(rows) => rows,
                None => {
                    let mut q = sqlx::query_as::<_, (String, String, String)>(&sql);
                    for id in chunk {
                        q = q.bind(id);
                    }
                    q.fetch_all(self.pool()).await?
                }
            };
            for (vm, subnet, vpc) in rows {
                out.insert(VmId::from_stored(vm), (subnet, vpc));
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

    store_test!(networks_are_recorded_and_read_by_id, |store: Store| async move {
        let (a, b) = (VmId::parse("vm-0000000000000001").unwrap(), VmId::parse("vm-0000000000000002").unwrap());
        store.set_vm_network(&a, "subnet-1", "vpc-1").await.unwrap();
        store.set_vm_network(&a, "subnet-2", "vpc-1").await.unwrap();
        let got = store.vm_networks(&[a.clone(), b.clone()]).await.unwrap();
        assert_eq!(got.get(&a), Some(&("subnet-2".to_string(), "vpc-1".to_string())));
        assert!(!got.contains_key(&b));
    });
}
