//! Application versions (migration 0028). A row, once inserted, is never
//! updated but for `deleted_at` (set on every version of a deleted name):
//! a published version never changes. A new version is N+1 of the name's
//! highest; saving the text of the latest version (same hash) inserts
//! nothing. Two replicas saving at once: the primary key refuses the second
//! insert, which re-reads and retries. Times are ms from the store's clock.

use crate::{ms_to_time, Store, StoreError};
use chrono::{DateTime, Utc};

/// One stored version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredApplication {
    pub name: String,
    pub version: i64,
    pub source: String,
    /// SHA-256 hex of `source`.
    pub hash: String,
    pub origin: String,
    pub created_by: Option<String>,
    pub created_at: DateTime<Utc>,
    pub deleted_at: Option<DateTime<Utc>>,
}

type AppRow = (String, i64, String, String, String, Option<String>, i64, Option<i64>);

const COLUMNS: &str = "name, version, source, hash, origin, created_by, created_at, deleted_at";

fn from_row((name, version, source, hash, origin, created_by, at, deleted): AppRow) -> StoredApplication {
    StoredApplication { name, version, source, hash, origin, created_by, created_at: ms_to_time(at), deleted_at: deleted.map(ms_to_time) }
}

/// States of a deployment that still uses its application.
const LIVE_DEPLOYMENT_STATES: &str = "('provisioning', 'executing', 'ready', 'terminating')";

impl Store {
    /// The latest version of every name that is not deleted, by name.
    pub async fn list_applications(&self) -> Result<Vec<StoredApplication>, StoreError> {
        let rows: Vec<AppRow> = sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM applications a \
             WHERE a.version = (SELECT MAX(b.version) FROM applications b WHERE b.name = a.name) AND a.deleted_at IS NULL \
             ORDER BY {}",
            self.bytewise("a.name")
        ))
        .fetch_all(self.pool())
        .await?;
        Ok(rows.into_iter().map(from_row).collect())
    }

    /// One version of a name (`None`: its latest), deleted or not.
    pub async fn get_application(&self, name: &str, version: Option<i64>) -> Result<Option<StoredApplication>, StoreError> {
        let row: Option<AppRow> = match version {
            Some(v) => {
                sqlx::query_as(&format!("SELECT {COLUMNS} FROM applications WHERE name = $1 AND version = $2"))
                    .bind(name)
                    .bind(v)
                    .fetch_optional(self.pool())
                    .await?
            }
            None => {
                sqlx::query_as(&format!("SELECT {COLUMNS} FROM applications WHERE name = $1 ORDER BY version DESC LIMIT 1"))
                    .bind(name)
                    .fetch_optional(self.pool())
                    .await?
            }
        };
        Ok(row.map(from_row))
    }

    /// Every version of a name, oldest first.
    pub async fn application_versions(&self, name: &str) -> Result<Vec<StoredApplication>, StoreError> {
        let rows: Vec<AppRow> = sqlx::query_as(&format!("SELECT {COLUMNS} FROM applications WHERE name = $1 ORDER BY version"))
            .bind(name)
            .fetch_all(self.pool())
            .await?;
        Ok(rows.into_iter().map(from_row).collect())
    }

    /// Saves `source` under `name`: the latest version when its hash is
    /// `hash` and the name is not deleted (`false`: nothing new), else a new
    /// version N+1 (`true`).
    pub async fn put_application(
        &self,
        name: &str,
        source: &str,
        hash: &str,
        origin: &str,
        created_by: Option<&str>,
    ) -> Result<(StoredApplication, bool), StoreError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.try_put_application(name, source, hash, origin, created_by).await {
                Err(e) if e.is_unique_violation() && attempt < 5 => continue,
                other => return other,
            }
        }
    }

    async fn try_put_application(
        &self,
        name: &str,
        source: &str,
        hash: &str,
        origin: &str,
        created_by: Option<&str>,
    ) -> Result<(StoredApplication, bool), StoreError> {
        let mut tx = self.pool().begin().await?;
        let latest: Option<AppRow> =
            sqlx::query_as(&format!("SELECT {COLUMNS} FROM applications WHERE name = $1 ORDER BY version DESC LIMIT 1"))
                .bind(name)
                .fetch_optional(&mut *tx)
                .await?;
        let latest = latest.map(from_row);
        if let Some(l) = latest.as_ref().filter(|l| l.hash == hash && l.deleted_at.is_none()) {
            tx.commit().await?;
            return Ok((l.clone(), false));
        }
        let version = latest.map_or(1, |l| l.version + 1);
        let now = self.clock_ms();
        sqlx::query(
            "INSERT INTO applications (name, version, source, hash, origin, created_by, created_at, deleted_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, NULL)",
        )
        .bind(name)
        .bind(version)
        .bind(source)
        .bind(hash)
        .bind(origin)
        .bind(created_by)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        let row = StoredApplication {
            name: name.to_string(),
            version,
            source: source.to_string(),
            hash: hash.to_string(),
            origin: origin.to_string(),
            created_by: created_by.map(str::to_string),
            created_at: ms_to_time(now),
            deleted_at: None,
        };
        Ok((row, true))
    }

    /// How many deployments not yet ended (provisioning, executing, ready,
    /// terminating) use any version of `name`.
    pub async fn live_deployments_of_application(&self, name: &str) -> Result<i64, StoreError> {
        let (n,): (i64,) =
            sqlx::query_as(&format!("SELECT COUNT(*) FROM deployments WHERE app_name = $1 AND state IN {LIVE_DEPLOYMENT_STATES}"))
                .bind(name)
                .fetch_one(self.pool())
                .await?;
        Ok(n)
    }

    /// Marks every version of `name` deleted, unless a deployment not yet
    /// ended uses it (`Conflict`, counted in the same transaction). Whether
    /// there was a live name to delete.
    pub async fn delete_application(&self, name: &str) -> Result<bool, StoreError> {
        let mut tx = self.pool().begin().await?;
        let (n,): (i64,) =
            sqlx::query_as(&format!("SELECT COUNT(*) FROM deployments WHERE app_name = $1 AND state IN {LIVE_DEPLOYMENT_STATES}"))
                .bind(name)
                .fetch_one(&mut *tx)
                .await?;
        if n > 0 {
            return Err(StoreError::Conflict(format!(
                "application '{name}' is used by {n} deployment(s) not yet terminated: terminate them first"
            )));
        }
        let r = sqlx::query("UPDATE applications SET deleted_at = $2 WHERE name = $1 AND deleted_at IS NULL")
            .bind(name)
            .bind(self.clock_ms())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(r.rows_affected() > 0)
    }
}
