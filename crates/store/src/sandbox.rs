//! The sandbox connector's worlds (one JSON document per connector
//! instance). [`Store::update_sandbox_world`] runs a change in one
//! transaction that first writes the row, so concurrent callers, on any
//! replica and on both backends, take turns and none loses another's change.

use crate::{now_ms, Store, StoreError};

/// A change to a stored world: gets the stored JSON (if any), answers the
/// JSON to store (if anything changed).
pub type WorldChange<'a> = Box<dyn for<'b> FnOnce(Option<&'b [u8]>) -> Option<Vec<u8>> + Send + 'a>;

impl Store {
    /// Runs `f` on the stored world of `instance` (`None` when there is none
    /// yet) and stores what it returns, if anything, in one transaction.
    pub async fn update_sandbox_world<'a>(&self, instance: &str, f: WorldChange<'a>) -> Result<(), StoreError> {
        let mut tx = self.pool().begin().await?;
        // The write comes first: it takes the row lock (PostgreSQL) or the
        // database's write lock (SQLite) before anything is read.
        sqlx::query(
            "INSERT INTO sandbox_worlds (instance, state, updated_at) VALUES ($1, '', $2) \
             ON CONFLICT (instance) DO UPDATE SET updated_at = excluded.updated_at",
        )
        .bind(instance)
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
        let (state,): (String,) =
            sqlx::query_as("SELECT state FROM sandbox_worlds WHERE instance = $1").bind(instance).fetch_one(&mut *tx).await?;
        let current = (!state.is_empty()).then_some(state.as_bytes());
        if let Some(new) = f(current) {
            let text = String::from_utf8(new).map_err(|_| StoreError::Conflict("a sandbox world must be UTF-8 JSON".into()))?;
            sqlx::query("UPDATE sandbox_worlds SET state = $2 WHERE instance = $1").bind(instance).bind(text).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }
}
