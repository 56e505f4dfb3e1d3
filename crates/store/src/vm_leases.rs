//! VM leases in the store: the `lease_*` columns of `vms` (migration 0023).
//! A lease is set (or removed) only while no replica is acting on its
//! expiry; a replica acts only after claiming the expiry with one
//! conditional update, which succeeds for one replica alone and only while
//! the lease is still expired and not dealt with. So an extension that
//! commits first wins over the worker, and two replicas never both act.

use crate::{now_ms, Store, StoreError};
use cloudbroker_model::{NewLease, VmId};

impl Store {
    /// Sets VM `id`'s lease (`None`: removes it), forgetting any earlier
    /// warning, claim and outcome. Returns `false` (nothing written) while
    /// a replica holds a claim on the current lease's expiry and has not
    /// dealt with it (it is acting on the VM now).
    pub async fn set_vm_lease(&self, id: &VmId, lease: Option<&NewLease>) -> Result<bool, StoreError> {
        let r = sqlx::query(
            "UPDATE vms SET lease_expires_at = $2, lease_action = $3, lease_warn_at = $4, lease_warned_at = NULL, \
             lease_claimed_by = NULL, lease_claimed_at = NULL, lease_done_at = NULL, lease_note = NULL, \
             updated_at = $5, version = version + 1 \
             WHERE id = $1 AND (lease_claimed_by IS NULL OR lease_done_at IS NOT NULL)",
        )
        .bind(id)
        .bind(lease.map(|l| l.expires_at))
        .bind(lease.map(|l| l.action.as_str()))
        .bind(lease.map(|l| l.warn_at))
        .bind(now_ms())
        .execute(self.pool())
        .await?;
        Ok(r.rows_affected() == 1)
    }
}
