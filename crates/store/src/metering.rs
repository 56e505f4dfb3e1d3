//! Reading VM state history (migration 0024): the states each VM took and
//! when, as the triggers appended them. Metering bills from these rows
//! alone, never from "now minus created_at".

use crate::{ms_to_time, Store, StoreError};
use chrono::{DateTime, Utc};
use cloudbroker_model::{VmId, VmStatus};

/// One recorded state change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateChange {
    pub state: VmStatus,
    pub at: DateTime<Utc>,
}

impl Store {
    /// The states VM `id` took, oldest first (ties in the order they were recorded).
    pub async fn vm_state_history(&self, id: &VmId) -> Result<Vec<StateChange>, StoreError> {
        let rows: Vec<(String, i64)> =
            sqlx::query_as("SELECT state, at FROM vm_state_history WHERE vm_id = $1 ORDER BY at, id").bind(id).fetch_all(self.pool()).await?;
        rows.into_iter()
            .map(|(state, at)| {
                let state = VmStatus::parse(&state).map_err(|e| {
                    StoreError::Db(sqlx::Error::Decode(format!("VM {id}: state history: {}", e.message).into()))
                })?;
                Ok(StateChange { state, at: ms_to_time(at) })
            })
            .collect()
    }
}
