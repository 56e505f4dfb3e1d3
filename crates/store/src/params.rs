//! System parameters set through the UI or the API (values from
//! `connectors.d` files are not stored: they are read from the files).

use crate::{ms_to_time, now_ms, Store, StoreError};
use chrono::{DateTime, Utc};
use serde::Serialize;

/// One stored parameter.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StoredParam {
    pub key: String,
    pub value: String,
    pub updated_at: DateTime<Utc>,
    pub updated_by: String,
}

impl Store {
    /// Every stored parameter, sorted by key.
    pub async fn list_params(&self) -> Result<Vec<StoredParam>, StoreError> {
        let rows: Vec<(String, String, i64, String)> =
            sqlx::query_as("SELECT key, value, updated_at, updated_by FROM system_params ORDER BY key").fetch_all(self.pool()).await?;
        Ok(rows.into_iter().map(|(key, value, at, by)| StoredParam { key, value, updated_at: ms_to_time(at), updated_by: by }).collect())
    }

    /// Sets (`Some`) or removes (`None`) parameters, all in one transaction,
    /// and bumps the configuration version so other replicas reload.
    pub async fn put_params(&self, changes: &[(String, Option<String>)], by: &str) -> Result<i64, StoreError> {
        let mut tx = self.pool().begin().await?;
        let now = now_ms();
        for (key, value) in changes {
            match value {
                Some(v) => {
                    sqlx::query(
                        "INSERT INTO system_params (key, value, updated_at, updated_by) VALUES ($1, $2, $3, $4) \
                         ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at, updated_by = excluded.updated_by",
                    )
                    .bind(key)
                    .bind(v)
                    .bind(now)
                    .bind(by)
                    .execute(&mut *tx)
                    .await?;
                }
                None => {
                    sqlx::query("DELETE FROM system_params WHERE key = $1").bind(key).execute(&mut *tx).await?;
                }
            }
        }
        sqlx::query(
            "INSERT INTO broker_meta (key, value) VALUES ('config_version', '1') \
             ON CONFLICT (key) DO UPDATE SET value = CAST(CAST(broker_meta.value AS BIGINT) + 1 AS TEXT)",
        )
        .execute(&mut *tx)
        .await?;
        let (v,): (String,) = sqlx::query_as("SELECT value FROM broker_meta WHERE key = 'config_version'").fetch_one(&mut *tx).await?;
        tx.commit().await?;
        Ok(v.parse().unwrap_or(0))
    }

    /// The configuration version: bumped on every parameter change.
    pub async fn config_version(&self) -> Result<i64, StoreError> {
        let r: Option<(String,)> =
            sqlx::query_as("SELECT value FROM broker_meta WHERE key = 'config_version'").fetch_optional(self.pool()).await?;
        Ok(r.and_then(|r| r.0.parse().ok()).unwrap_or(0))
    }
}
