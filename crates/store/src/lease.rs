//! Leases: named locks with an expiry, so that a background job runs on
//! exactly one replica at a time and a dead replica's job is taken over once
//! its lease expires. Works the same on SQLite and PostgreSQL (one atomic
//! upsert).

use crate::{now_ms, Store, StoreError};

impl Store {
    /// Takes or renews the lease `name` for `holder` for `ttl_ms`. Returns
    /// whether `holder` now holds it.
    pub async fn try_lease(&self, name: &str, holder: &str, ttl_ms: i64) -> Result<bool, StoreError> {
        let now = now_ms();
        let r = sqlx::query(
            "INSERT INTO leases (name, holder, expires_at) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at \
             WHERE leases.holder = excluded.holder OR leases.expires_at < $4",
        )
        .bind(name)
        .bind(holder)
        .bind(now + ttl_ms)
        .bind(now)
        .execute(self.pool())
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Gives the lease up (if held by `holder`).
    pub async fn release_lease(&self, name: &str, holder: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM leases WHERE name = $1 AND holder = $2").bind(name).bind(holder).execute(self.pool()).await?;
        Ok(())
    }

    /// Gives up every lease `holder` holds (a replica stopping, so another
    /// takes its work over at once instead of when the leases expire).
    /// Returns how many there were.
    pub async fn release_leases_of(&self, holder: &str) -> Result<u64, StoreError> {
        let r = sqlx::query("DELETE FROM leases WHERE holder = $1").bind(holder).execute(self.pool()).await?;
        Ok(r.rows_affected())
    }

    /// Who holds a lease now, if anyone.
    pub async fn lease_holder(&self, name: &str) -> Result<Option<String>, StoreError> {
        let r: Option<(String,)> = sqlx::query_as("SELECT holder FROM leases WHERE name = $1 AND expires_at >= $2")
            .bind(name)
            .bind(now_ms())
            .fetch_optional(self.pool())
            .await?;
        Ok(r.map(|r| r.0))
    }

    /// Every lease held now (not expired), by name: (name, holder, expires at ms).
    pub async fn held_leases(&self) -> Result<Vec<(String, String, i64)>, StoreError> {
        Ok(sqlx::query_as("SELECT name, holder, expires_at FROM leases WHERE expires_at >= $1 ORDER BY name")
            .bind(now_ms())
            .fetch_all(self.pool())
            .await?)
    }
}
