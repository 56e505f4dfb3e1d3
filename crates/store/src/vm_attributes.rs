//! What the store keeps of VMs' instance attributes (migration 0038): the
//! termination protection (a row while on), and a stopped VM's instance
//! type when it is changed (the record follows the cloud).

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
    /// (the only state a type changes in). Returns whether it was written.
    pub async fn set_stopped_vm_instance_type(&self, id: &VmId, instance_type: &str) -> Result<bool, StoreError> {
        let r =
            sqlx::query("UPDATE vms SET instance_type = $2, updated_at = $3, version = version + 1 WHERE id = $1 AND state = 'stopped'")
                .bind(id)
                .bind(instance_type)
                .bind(self.clock_ms())
                .execute(self.pool())
                .await?;
        Ok(r.rows_affected() == 1)
    }
}
