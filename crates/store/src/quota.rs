//! Quota admission: VMs are recorded (state `requested`) in the same
//! transaction that checks the quota, so concurrent launches, on one broker
//! or on several replicas sharing PostgreSQL, can never push a user past the
//! limit.
//!
//! The transaction first writes the (user, instance) lock row: on PostgreSQL
//! the row lock makes every other admission for that pair wait until commit
//! (and, under READ COMMITTED, the count that follows sees the winner's rows);
//! on SQLite the first write takes the database's write lock, so admissions
//! are serialised the same way.

use crate::{now_ms, Store, StoreError};

/// States that count against the quota: everything that holds (or may soon
/// hold) cloud resources. `requested` covers launches in flight.
pub const COUNTED_STATES: &[&str] = &["requested", "pending", "running", "stopping", "stopped"];

/// One VM to record.
#[derive(Clone, Debug)]
pub struct NewVm {
    pub id: String,
    pub launch_index: i64,
    pub name: String,
    pub image: String,
    pub image_id: String,
    pub instance_type: String,
    /// User tags, as a JSON object.
    pub tags: String,
}

/// The launch being admitted.
#[derive(Clone, Debug)]
pub struct Admission<'a> {
    pub launch_id: &'a str,
    pub user: &'a str,
    pub instance: &'a str,
    pub credential_id: &'a str,
    pub client_token: &'a str,
    /// `None`: no quota enforced.
    pub limit: Option<i64>,
    pub vms: &'a [NewVm],
}

/// Why a launch was not admitted.
#[derive(Debug)]
pub enum AdmitError {
    Quota { limit: i64, current: i64, requested: i64 },
    Store(StoreError),
}

impl From<sqlx::Error> for AdmitError {
    fn from(e: sqlx::Error) -> Self {
        AdmitError::Store(e.into())
    }
}

fn counted_list() -> String {
    COUNTED_STATES.iter().map(|s| format!("'{s}'")).collect::<Vec<_>>().join(", ")
}

impl Store {
    /// The user's override for an instance.
    pub async fn quota_override(&self, user: &str, instance: &str) -> Result<Option<i64>, StoreError> {
        let r: Option<(i64,)> = sqlx::query_as("SELECT vm_limit FROM quota_overrides WHERE user_name = $1 AND instance = $2")
            .bind(user)
            .bind(instance)
            .fetch_optional(self.pool())
            .await?;
        Ok(r.map(|r| r.0))
    }

    /// Sets (`Some`) or removes a user's override.
    pub async fn set_quota_override(&self, user: &str, instance: &str, limit: Option<i64>) -> Result<(), StoreError> {
        match limit {
            Some(l) => {
                sqlx::query("INSERT INTO quota_overrides (user_name, instance, vm_limit) VALUES ($1, $2, $3) ON CONFLICT (user_name, instance) DO UPDATE SET vm_limit = excluded.vm_limit")
                    .bind(user)
                    .bind(instance)
                    .bind(l)
                    .execute(self.pool())
                    .await?;
            }
            None => {
                sqlx::query("DELETE FROM quota_overrides WHERE user_name = $1 AND instance = $2")
                    .bind(user)
                    .bind(instance)
                    .execute(self.pool())
                    .await?;
            }
        }
        Ok(())
    }

    /// VMs of a user on an instance in counted states.
    pub async fn quota_usage(&self, user: &str, instance: &str) -> Result<i64, StoreError> {
        let (n,): (i64,) =
            sqlx::query_as(&format!("SELECT COUNT(*) FROM vms WHERE user_name = $1 AND instance = $2 AND state IN ({})", counted_list()))
                .bind(user)
                .bind(instance)
                .fetch_one(self.pool())
                .await?;
        Ok(n)
    }

    /// Atomically checks the quota and records the VMs (state `requested`).
    pub async fn admit_launch(&self, a: &Admission<'_>) -> Result<(), AdmitError> {
        let mut tx = self.pool().begin().await?;
        // Lock first: the first statement writes, so waiting happens here.
        sqlx::query("INSERT INTO quota_locks (user_name, instance, version) VALUES ($1, $2, 0) ON CONFLICT (user_name, instance) DO UPDATE SET version = quota_locks.version + 1")
            .bind(a.user)
            .bind(a.instance)
            .execute(&mut *tx)
            .await?;
        let requested = a.vms.len() as i64;
        if let Some(limit) = a.limit {
            let (current,): (i64,) = sqlx::query_as(&format!(
                "SELECT COUNT(*) FROM vms WHERE user_name = $1 AND instance = $2 AND state IN ({})",
                counted_list()
            ))
            .bind(a.user)
            .bind(a.instance)
            .fetch_one(&mut *tx)
            .await?;
            if current + requested > limit {
                tx.rollback().await?;
                return Err(AdmitError::Quota { limit, current, requested });
            }
        }
        let now = now_ms();
        for v in a.vms {
            sqlx::query(
                "INSERT INTO vms (id, launch_id, launch_index, user_name, instance, credential_id, client_token, name, image, image_id, instance_type, state, created_at, updated_at, tags) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 'requested', $12, $12, $13)",
            )
            .bind(&v.id)
            .bind(a.launch_id)
            .bind(v.launch_index)
            .bind(a.user)
            .bind(a.instance)
            .bind(a.credential_id)
            .bind(a.client_token)
            .bind(&v.name)
            .bind(&v.image)
            .bind(&v.image_id)
            .bind(&v.instance_type)
            .bind(now)
            .bind(&v.tags)
            .execute(&mut *tx)
            .await
            .map_err(|e| match StoreError::from(e) {
                e if e.is_unique_violation() => AdmitError::Store(StoreError::Conflict(format!("client token '{}' was already used", a.client_token))),
                e => AdmitError::Store(e),
            })?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Sets the state (and, when given, cloud id and addresses) of a VM.
    pub async fn update_vm(
        &self,
        id: &str,
        state: &str,
        cloud_id: Option<&str>,
        private_ip: Option<&str>,
        public_ip: Option<&str>,
        error: Option<&str>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE vms SET state = $1, cloud_id = COALESCE($2, cloud_id), private_ip = $3, public_ip = $4, error = $5, updated_at = $6 WHERE id = $7",
        )
        .bind(state)
        .bind(cloud_id)
        .bind(private_ip)
        .bind(public_ip)
        .bind(error)
        .bind(now_ms())
        .bind(id)
        .execute(self.pool())
        .await?;
        Ok(())
    }
}
