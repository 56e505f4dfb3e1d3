//! What the store keeps of VMs' instance attributes (migration 0038): the
//! termination protection (a row while on), and a stopped VM's instance
//! type when it is changed (the record follows the cloud), with the change
//! (migration 0046).

use crate::{Store, StoreError};
use cloudbroker_model::VmId;

impl Store {
    /// Turns VM `id`'s termination protection on or off.
    pub async fn set_vm_termination_protection(&self, id: &VmId, on: bool) -> Result<(), StoreError> {
        if on {
            sqlx::query("INSERT INTO vm_termination_protection (vm_id, set_at) VALUES ($1, $2) ON CONFLICT (vm_id) DO NOTHING")
                .bind(id)
                .bind(self.clock_ms())
                .execute(self.pool())
                .await?;
        } else {
            sqlx::query("DELETE FROM vm_termination_protection WHERE vm_id = $1").bind(id).execute(self.pool()).await?;
        }
        Ok(())
    }

    /// Whether VM `id` is protected from termination.
    pub async fn vm_termination_protected(&self, id: &VmId) -> Result<bool, StoreError> {
        let row: Option<(String,)> =
            sqlx::query_as("SELECT vm_id FROM vm_termination_protection WHERE vm_id = $1").bind(id).fetch_optional(self.pool()).await?;
        Ok(row.is_some())
    }

    /// Records VM `id`'s new instance type, only while it is `stopped`
    /// (the only state a type changes in), and, when it differs from the
    /// type before, the change with the store's clock's time (migration
    /// 0046, what metering prices each running span by), in one
    /// transaction. Returns whether it was written.
    pub async fn set_stopped_vm_instance_type(&self, id: &VmId, instance_type: &str) -> Result<bool, StoreError> {
        let at = self.clock_ms();
        let mut tx = self.pool().begin().await?;
        // Written first, so the row is this transaction's (locked on
        // PostgreSQL) before its type is read: concurrent changes queue.
        let r = sqlx::query("UPDATE vms SET updated_at = $2, version = version + 1 WHERE id = $1 AND state = 'stopped'")
            .bind(id)
            .bind(at)
            .execute(&mut *tx)
            .await?;
        if r.rows_affected() != 1 {
            return Ok(false);
        }
        let (before,): (String,) = sqlx::query_as("SELECT instance_type FROM vms WHERE id = $1").bind(id).fetch_one(&mut *tx).await?;
        if before != instance_type {
            sqlx::query("UPDATE vms SET instance_type = $2 WHERE id = $1").bind(id).bind(instance_type).execute(&mut *tx).await?;
            sqlx::query("INSERT INTO vm_type_changes (vm_id, at, from_type, to_type) VALUES ($1, $2, $3, $4)")
                .bind(id)
                .bind(at)
                .bind(&before)
                .bind(instance_type)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(true)
    }
}
