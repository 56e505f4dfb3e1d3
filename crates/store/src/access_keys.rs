//! EC2 API access keys, in the `access_keys` table (migration 0021 moved
//! them there from `credentials`): the public key id, its owner, the secret
//! sealed with the master key (bound to [`ACCESS_KEY_SCOPE`], the owner and
//! the key id), the id of the sealing key, its state and times. The store
//! sees sealed bytes and the public id only; key rotation re-seals the
//! secrets ([`Store::reseal_access_keys`]). A key's expiry (`expires_at`,
//! ms) is stored here; whether a key is usable at a given time is the
//! services' rule (crates/core/src/access_keys.rs). Each key acts in one
//! project (`project`, chosen at creation; the owner's personal project by
//! default); whether its owner is still a member there is checked by the
//! services on every (uncached) lookup.

use crate::{ms_to_time, now_ms, Store, StoreError};
use chrono::{DateTime, Utc};

/// The scope the secrets of EC2 API access keys are sealed under (the
/// additional data of their sealing, unchanged since they were credential
/// rows of this scope).
pub const ACCESS_KEY_SCOPE: &str = "ec2-access-key";

/// The state of a usable key.
pub const KEY_ACTIVE: &str = "active";
/// The state of a key its owner or an admin disabled.
pub const KEY_DISABLED: &str = "disabled";

/// A stored access key (secret sealed).
#[derive(Clone, Debug)]
pub struct AccessKeyRow {
    /// The public key id (`AKIA...`).
    pub access_key_id: String,
    pub user_name: String,
    /// The project the key acts in.
    pub project: String,
    pub secret_sealed: Vec<u8>,
    /// The master key the secret is sealed with.
    pub master_key_id: String,
    /// [`KEY_ACTIVE`] or [`KEY_DISABLED`].
    pub state: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    /// When it stops working (`None`: never).
    pub expires_at: Option<DateTime<Utc>>,
}

type KeyTuple = (String, String, Vec<u8>, String, String, i64, i64, Option<i64>, Option<i64>, String);

/// A key's columns, then its holder's `is_admin`, `disabled_at` and role in the key's project.
type HolderTuple = (String, String, Vec<u8>, String, String, i64, i64, Option<i64>, Option<i64>, String, i64, Option<i64>, Option<String>);

const KEY_COLS: &str =
    "access_key_id, user_name, secret_sealed, master_key_id, state, created_at, updated_at, last_used_at, expires_at, project";

fn key(t: KeyTuple) -> AccessKeyRow {
    AccessKeyRow {
        access_key_id: t.0,
        user_name: t.1,
        secret_sealed: t.2,
        master_key_id: t.3,
        state: t.4,
        created_at: ms_to_time(t.5),
        updated_at: ms_to_time(t.6),
        last_used_at: t.7.map(ms_to_time),
        expires_at: t.8.map(ms_to_time),
        project: t.9,
    }
}

/// An access key with its holder's state ([`Store::access_key_holder`]).
#[derive(Clone, Debug)]
pub struct AccessKeyHolderRow {
    pub key: AccessKeyRow,
    /// The holder is an admin.
    pub is_admin: bool,
    /// The holder is disabled.
    pub disabled: bool,
    /// The holder's role in the key's project, as stored (`None`: no member).
    pub role: Option<String>,
}

/// What to store for a new access key.
#[derive(Clone, Debug)]
pub struct NewAccessKey<'a> {
    pub access_key_id: &'a str,
    pub user_name: &'a str,
    /// The project the key acts in.
    pub project: &'a str,
    pub secret_sealed: &'a [u8],
    pub master_key_id: &'a str,
    /// `None`: never expires.
    pub expires_at_ms: Option<i64>,
}

/// An access key's secret re-sealed under another master key.
#[derive(Clone, Debug)]
pub struct ResealKey {
    pub access_key_id: String,
    /// The sealed secret that was read: the row is changed only if it still holds it.
    pub previous_secret_sealed: Vec<u8>,
    pub secret_sealed: Vec<u8>,
    pub master_key_id: String,
}

impl Store {
    /// Stores a new, active access key with no recorded use.
    pub async fn insert_access_key(&self, k: &NewAccessKey<'_>) -> Result<(), StoreError> {
        let now = now_ms();
        sqlx::query(&format!("INSERT INTO access_keys ({KEY_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $6, NULL, $7, $8)"))
            .bind(k.access_key_id)
            .bind(k.user_name)
            .bind(k.secret_sealed)
            .bind(k.master_key_id)
            .bind(KEY_ACTIVE)
            .bind(now)
            .bind(k.expires_at_ms)
            .bind(k.project)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// The access key with this public id, whoever owns it.
    pub async fn access_key(&self, key_id: &str) -> Result<Option<AccessKeyRow>, StoreError> {
        let r: Option<KeyTuple> = sqlx::query_as(&format!("SELECT {KEY_COLS} FROM access_keys WHERE access_key_id = $1"))
            .bind(key_id)
            .fetch_optional(self.pool())
            .await?;
        Ok(r.map(key))
    }

    /// The access key with this public id and, in the same query, what
    /// checking its holder needs: the holder's admin flag, whether they are
    /// disabled, and their role in the key's project (`None`: no member).
    pub async fn access_key_holder(&self, key_id: &str) -> Result<Option<AccessKeyHolderRow>, StoreError> {
        let cols = KEY_COLS.split(", ").map(|c| format!("k.{c}")).collect::<Vec<_>>().join(", ");
        let r: Option<HolderTuple> = sqlx::query_as(&format!(
            "SELECT {cols}, u.is_admin, u.disabled_at, m.role FROM access_keys k JOIN users u ON u.name = k.user_name \
                 LEFT JOIN project_members m ON m.project = k.project AND m.user_name = k.user_name WHERE k.access_key_id = $1"
        ))
        .bind(key_id)
        .fetch_optional(self.pool())
        .await?;
        Ok(r.map(|t| AccessKeyHolderRow {
            key: key((t.0, t.1, t.2, t.3, t.4, t.5, t.6, t.7, t.8, t.9)),
            is_admin: t.10 != 0,
            disabled: t.11.is_some(),
            role: t.12,
        }))
    }

    /// A user's access keys, by key id.
    pub async fn list_access_keys(&self, user: &str) -> Result<Vec<AccessKeyRow>, StoreError> {
        let r: Vec<KeyTuple> = sqlx::query_as(&format!("SELECT {KEY_COLS} FROM access_keys WHERE user_name = $1 ORDER BY access_key_id"))
            .bind(user)
            .fetch_all(self.pool())
            .await?;
        Ok(r.into_iter().map(key).collect())
    }

    /// The access keys acting in a project (whoever holds them), by key id.
    pub async fn list_project_access_keys(&self, project: &str) -> Result<Vec<AccessKeyRow>, StoreError> {
        let r: Vec<KeyTuple> = sqlx::query_as(&format!("SELECT {KEY_COLS} FROM access_keys WHERE project = $1 ORDER BY access_key_id"))
            .bind(project)
            .fetch_all(self.pool())
            .await?;
        Ok(r.into_iter().map(key).collect())
    }

    /// Every access key (for key rotation and start-up checks).
    pub async fn all_access_keys(&self) -> Result<Vec<AccessKeyRow>, StoreError> {
        let r: Vec<KeyTuple> =
            sqlx::query_as(&format!("SELECT {KEY_COLS} FROM access_keys ORDER BY access_key_id")).fetch_all(self.pool()).await?;
        Ok(r.into_iter().map(key).collect())
    }

    /// Sets an access key's state ([`KEY_ACTIVE`] / [`KEY_DISABLED`]);
    /// false when the user has no such key.
    pub async fn set_access_key_state(&self, user: &str, key_id: &str, state: &str) -> Result<bool, StoreError> {
        let r = sqlx::query("UPDATE access_keys SET state = $1, updated_at = $2 WHERE user_name = $3 AND access_key_id = $4")
            .bind(state)
            .bind(now_ms())
            .bind(user)
            .bind(key_id)
            .execute(self.pool())
            .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Records a use of an access key.
    pub async fn touch_access_key(&self, key_id: &str, at_ms: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE access_keys SET last_used_at = $1 WHERE access_key_id = $2")
            .bind(at_ms)
            .bind(key_id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Forgets an access key's last use.
    pub async fn clear_access_key_use(&self, key_id: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE access_keys SET last_used_at = NULL WHERE access_key_id = $1").bind(key_id).execute(self.pool()).await?;
        Ok(())
    }

    /// Moves every access key of `user` in state `from` to state `to`
    /// (e.g. disables them all); returns how many changed.
    pub async fn set_user_access_keys_state(&self, user: &str, from: &str, to: &str) -> Result<u64, StoreError> {
        let r = sqlx::query("UPDATE access_keys SET state = $1, updated_at = $2 WHERE user_name = $3 AND state = $4")
            .bind(to)
            .bind(now_ms())
            .bind(user)
            .bind(from)
            .execute(self.pool())
            .await?;
        Ok(r.rows_affected())
    }

    /// Deletes a user's access key; false when there is none.
    pub async fn delete_access_key(&self, user: &str, key_id: &str) -> Result<bool, StoreError> {
        let r = sqlx::query("DELETE FROM access_keys WHERE user_name = $1 AND access_key_id = $2")
            .bind(user)
            .bind(key_id)
            .execute(self.pool())
            .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Re-seals access-key secrets in one transaction; returns how many rows changed.
    pub async fn reseal_access_keys(&self, rows: &[ResealKey]) -> Result<u64, StoreError> {
        let mut tx = self.pool().begin().await?;
        let mut n = 0;
        for r in rows {
            // Only if nobody wrote the row since it was read.
            n += sqlx::query(
                "UPDATE access_keys SET secret_sealed = $1, master_key_id = $2 WHERE access_key_id = $3 AND secret_sealed = $4",
            )
            .bind(&r.secret_sealed)
            .bind(&r.master_key_id)
            .bind(&r.access_key_id)
            .bind(&r.previous_secret_sealed)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        }
        tx.commit().await?;
        Ok(n)
    }

    /// Master key ids the access-key secrets are sealed with.
    pub async fn access_key_master_key_ids(&self) -> Result<Vec<String>, StoreError> {
        let r: Vec<(String,)> =
            sqlx::query_as("SELECT DISTINCT master_key_id FROM access_keys ORDER BY master_key_id").fetch_all(self.pool()).await?;
        Ok(r.into_iter().map(|r| r.0).collect())
    }
}
