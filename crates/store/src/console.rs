//! What the admin console reads in aggregate (besides
//! [`Store::vm_counts_by_instance`]): quota usage per user and instance, every quota
//! override, the failed launches since a time, and the volumes, addresses
//! a user made in any project. Each is one query whose cost follows the rows
//! it reports, not the VMs kept: the grouped counts read the `(state, ...)`
//! indexes one state at a time (migration 0033), the failed launches a range
//! of `(state, updated_at)`; none walks the ended VMs.

use crate::resources::{address, volume, AddressDb, AddressRow, VolumeDb, VolumeRow, ADDRESS_COLS, VOLUME_COLS};
use crate::{ms_to_time, Store, StoreError};
use chrono::{DateTime, Utc};

/// How many VMs one user has on one instance (in the states asked for).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserUsage {
    pub user: String,
    pub instance: String,
    pub count: i64,
}

/// A quota override: `user`'s limit on `instance`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuotaOverride {
    pub user: String,
    pub instance: String,
    pub limit: i64,
}

/// A failed launch: one VM in state `failed`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FailedVm {
    pub id: String,
    pub name: String,
    pub user: String,
    pub project: String,
    pub instance: String,
    pub error: Option<String>,
    /// When it was recorded as failed (its last update).
    pub at: DateTime<Utc>,
}

/// `$from, $from+1, ...`: `n` placeholders.
fn placeholders(from: usize, n: usize) -> String {
    (from..from + n).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ")
}

/// The statement of [`Store::vm_counts_by_instance`] (for its plan).
#[cfg(feature = "testing")]
fn counts_sql(n: usize) -> String {
    format!("SELECT instance, state, COUNT(*) FROM vms WHERE state IN ({}) GROUP BY instance, state", placeholders(1, n))
}

fn usage_sql(n: usize) -> String {
    format!("SELECT user_name, instance, COUNT(*) FROM vms WHERE state IN ({}) GROUP BY user_name, instance", placeholders(1, n))
}

const FAILED_COUNT_SQL: &str = "SELECT COUNT(*) FROM vms WHERE state = 'failed' AND updated_at >= $1";
const FAILED_LATEST_SQL: &str = "SELECT id, name, user_name, project, instance, error, updated_at FROM vms \
     WHERE state = 'failed' AND updated_at >= $1 ORDER BY updated_at DESC, id DESC LIMIT $2";

impl Store {
    /// VM counts per user and instance, over the states given (what quotas count).
    pub async fn usage_by_user(&self, states: &[&str]) -> Result<Vec<UserUsage>, StoreError> {
        if states.is_empty() {
            return Ok(Vec::new());
        }
        let sql = usage_sql(states.len());
        let mut q = sqlx::query_as::<_, (String, String, i64)>(&sql);
        for s in states {
            q = q.bind(*s);
        }
        let rows = q.fetch_all(self.pool()).await?;
        Ok(rows.into_iter().map(|(user, instance, count)| UserUsage { user, instance, count }).collect())
    }

    /// Every user quota override.
    pub async fn quota_overrides(&self) -> Result<Vec<QuotaOverride>, StoreError> {
        let rows: Vec<(String, String, i64)> =
            sqlx::query_as("SELECT user_name, instance, vm_limit FROM quota_overrides").fetch_all(self.pool()).await?;
        Ok(rows.into_iter().map(|(user, instance, limit)| QuotaOverride { user, instance, limit }).collect())
    }

    /// How many launches failed at or after `since`, and the latest `limit` of them.
    pub async fn failed_since(&self, since: DateTime<Utc>, limit: i64) -> Result<(i64, Vec<FailedVm>), StoreError> {
        let since = since.timestamp_millis();
        let (count,): (i64,) = sqlx::query_as(FAILED_COUNT_SQL).bind(since).fetch_one(self.pool()).await?;
        type Failed = (String, String, String, String, String, Option<String>, i64);
        let rows: Vec<Failed> = sqlx::query_as(FAILED_LATEST_SQL).bind(since).bind(limit).fetch_all(self.pool()).await?;
        let latest = rows
            .into_iter()
            .map(|(id, name, user, project, instance, error, at)| FailedVm { id, name, user, project, instance, error, at: ms_to_time(at) })
            .collect();
        Ok((count, latest))
    }

    /// The live volumes `user` made, in every project, oldest first.
    pub async fn volumes_made_by(&self, user: &str) -> Result<Vec<VolumeRow>, StoreError> {
        let r: Vec<VolumeDb> = sqlx::query_as(&format!(
            "SELECT {VOLUME_COLS} FROM volumes WHERE user_name = $1 AND ended_at IS NULL ORDER BY created_at, instance, volume_id"
        ))
        .bind(user)
        .fetch_all(self.pool())
        .await?;
        Ok(r.into_iter().map(volume).collect())
    }

    /// The live addresses `user` allocated, in every project, oldest first.
    pub async fn addresses_made_by(&self, user: &str) -> Result<Vec<AddressRow>, StoreError> {
        let r: Vec<AddressDb> = sqlx::query_as(&format!(
            "SELECT {ADDRESS_COLS} FROM addresses WHERE user_name = $1 AND ended_at IS NULL ORDER BY created_at, instance, allocation_id"
        ))
        .bind(user)
        .fetch_all(self.pool())
        .await?;
        Ok(r.into_iter().map(address).collect())
    }
}

#[cfg(feature = "testing")]
impl Store {
    /// Test support: the database's plan of each of the overview's VM
    /// queries ((name, plan text)), to check that each reads an index.
    /// PostgreSQL is asked with sequential scans discouraged (a test table is
    /// small enough for one to look cheaper); SQLite as is.
    pub async fn console_query_plans(&self, states: &[&str]) -> Result<Vec<(&'static str, String)>, StoreError> {
        let quoted: Vec<String> = states.iter().map(|s| format!("'{s}'")).collect();
        let with_states = |sql: String| {
            let mut sql = sql;
            // Highest first, so `$1` does not eat the start of `$10`.
            for (i, s) in quoted.iter().enumerate().rev() {
                sql = sql.replace(&format!("${}", i + 1), s);
            }
            sql
        };
        let queries = [
            ("counts by instance", with_states(counts_sql(states.len()))),
            ("usage by user", with_states(usage_sql(states.len()))),
            ("failed count", FAILED_COUNT_SQL.replace("$1", "1000")),
            ("failed latest", FAILED_LATEST_SQL.replace("$1", "1000").replace("$2", "5")),
        ];
        self.query_plans(&queries, crate::plans::PlanKind::IndexesPreferred).await
    }
}
