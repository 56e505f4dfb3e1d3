//! What the reconciler reads and writes of addresses and volumes: the live
//! records that the cloud may change without the broker (an address
//! associated, a volume attached or on its way somewhere), read through the
//! partial indexes of migration 0038 so an account without any costs one
//! index probe; and writes of what the cloud reported, each only while the
//! record is as it was read (its `updated_at`), so an action written in
//! between is newer than the report and is kept.

use crate::resources::{address, volume, AddressDb, VolumeDb, ADDRESS_COLS, VOLUME_COLS};
use crate::resources::{AddressRow, VolumeRow};
use crate::{Store, StoreError};

/// A volume's state and attachment as a cloud reported it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObservedVolume<'a> {
    pub state: &'a str,
    pub vm_id: Option<&'a str>,
    pub device: Option<&'a str>,
    pub attach_state: Option<&'a str>,
}

impl Store {
    /// Live addresses that are associated.
    pub async fn addresses_to_sync(&self) -> Result<Vec<AddressRow>, StoreError> {
        let r: Vec<AddressDb> = sqlx::query_as(&format!(
            "SELECT {ADDRESS_COLS} FROM addresses WHERE ended_at IS NULL AND vm_id IS NOT NULL ORDER BY instance, credential_id"
        ))
        .fetch_all(self.pool())
        .await?;
        Ok(r.into_iter().map(address).collect())
    }

    /// Live volumes that are attached, or in a state other than `available`.
    pub async fn volumes_to_sync(&self) -> Result<Vec<VolumeRow>, StoreError> {
        let r: Vec<VolumeDb> = sqlx::query_as(&format!(
            "SELECT {VOLUME_COLS} FROM volumes WHERE ended_at IS NULL AND (vm_id IS NOT NULL OR state <> 'available') \
             ORDER BY instance, credential_id"
        ))
        .fetch_all(self.pool())
        .await?;
        Ok(r.into_iter().map(volume).collect())
    }

    /// Records an address's association as the cloud reported it, only
    /// while the record is as read (`read`). Returns whether it was written.
    pub async fn observe_address(
        &self,
        read: &AddressRow,
        vm_id: Option<&str>,
        association_id: Option<&str>,
        private_ip: Option<&str>,
    ) -> Result<bool, StoreError> {
        let r = sqlx::query(
            "UPDATE addresses SET vm_id = $3, association_id = $4, private_ip = $5, updated_at = $6 \
             WHERE instance = $1 AND allocation_id = $2 AND updated_at = $7 AND ended_at IS NULL",
        )
        .bind(&read.instance)
        .bind(&read.allocation_id)
        .bind(vm_id)
        .bind(association_id)
        .bind(private_ip)
        .bind(self.clock_ms())
        .bind(read.updated_at.timestamp_millis())
        .execute(self.pool())
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Ends an address the cloud no longer has, only while the record is as read.
    pub async fn observe_address_gone(&self, read: &AddressRow) -> Result<bool, StoreError> {
        let now = self.clock_ms();
        let r = sqlx::query(
            "UPDATE addresses SET state = 'released', vm_id = NULL, association_id = NULL, private_ip = NULL, updated_at = $3, ended_at = $3 \
             WHERE instance = $1 AND allocation_id = $2 AND updated_at = $4 AND ended_at IS NULL",
        )
        .bind(&read.instance)
        .bind(&read.allocation_id)
        .bind(now)
        .bind(read.updated_at.timestamp_millis())
        .execute(self.pool())
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Records a volume's state and attachment as the cloud reported them,
    /// only while the record is as read. Returns whether it was written.
    pub async fn observe_volume(&self, read: &VolumeRow, seen: &ObservedVolume<'_>) -> Result<bool, StoreError> {
        let r = sqlx::query(
            "UPDATE volumes SET state = $3, vm_id = $4, device = $5, attach_state = $6, updated_at = $7 \
             WHERE instance = $1 AND volume_id = $2 AND updated_at = $8 AND ended_at IS NULL",
        )
        .bind(&read.instance)
        .bind(&read.volume_id)
        .bind(seen.state)
        .bind(seen.vm_id)
        .bind(seen.device)
        .bind(seen.attach_state)
        .bind(self.clock_ms())
        .bind(read.updated_at.timestamp_millis())
        .execute(self.pool())
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Ends a volume the cloud no longer has (deleted with its instance, or
    /// out of band), only while the record is as read.
    pub async fn observe_volume_gone(&self, read: &VolumeRow) -> Result<bool, StoreError> {
        let now = self.clock_ms();
        let r = sqlx::query(
            "UPDATE volumes SET state = 'deleted', vm_id = NULL, device = NULL, attach_state = NULL, updated_at = $3, ended_at = $3 \
             WHERE instance = $1 AND volume_id = $2 AND updated_at = $4 AND ended_at IS NULL",
        )
        .bind(&read.instance)
        .bind(&read.volume_id)
        .bind(now)
        .bind(read.updated_at.timestamp_millis())
        .execute(self.pool())
        .await?;
        Ok(r.rows_affected() == 1)
    }
}
