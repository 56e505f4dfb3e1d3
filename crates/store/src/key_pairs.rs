//! Users' named SSH public keys. Names are unique per user.
//!
//! The owner is a [`UserName`] both ways: bound as one, and read back
//! through its rules (a stored name that breaks them is a decode error
//! naming the `user_name` column).

use crate::{ms_to_time, now_ms, Store, StoreError};
use chrono::{DateTime, Utc};
use cloudbroker_model::UserName;

/// A stored key pair (public half).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyPairRow {
    pub user: UserName,
    pub name: String,
    pub public_key: String,
    pub fingerprint: String,
    pub created_at: DateTime<Utc>,
}

/// A key pair as the database holds it.
#[derive(sqlx::FromRow)]
struct KeyPairDb {
    user_name: UserName,
    name: String,
    public_key: String,
    fingerprint: String,
    created_at: i64,
}

fn row(t: KeyPairDb) -> KeyPairRow {
    KeyPairRow {
        user: t.user_name,
        name: t.name,
        public_key: t.public_key,
        fingerprint: t.fingerprint,
        created_at: ms_to_time(t.created_at),
    }
}

const COLS: &str = "user_name, name, public_key, fingerprint, created_at";

/// Inserts a key pair through `db` (the pool, or a transaction: [`crate::limits`]).
pub(crate) async fn insert_key_pair_on<'e, E: sqlx::Executor<'e, Database = sqlx::Any>>(
    db: E,
    user: &UserName,
    name: &str,
    public_key: &str,
    fingerprint: &str,
    now: i64,
) -> Result<KeyPairRow, StoreError> {
    sqlx::query("INSERT INTO key_pairs (user_name, name, public_key, fingerprint, created_at) VALUES ($1, $2, $3, $4, $5)")
        .bind(user)
        .bind(name)
        .bind(public_key)
        .bind(fingerprint)
        .bind(now)
        .execute(db)
        .await
        .map_err(|e| match StoreError::from(e) {
            e if e.is_unique_violation() => StoreError::Conflict(format!("key pair '{name}' already exists")),
            e => e,
        })?;
    Ok(KeyPairRow {
        user: user.clone(),
        name: name.into(),
        public_key: public_key.into(),
        fingerprint: fingerprint.into(),
        created_at: ms_to_time(now),
    })
}

impl Store {
    /// Stores a key pair; a duplicate name for the user is a conflict.
    pub async fn insert_key_pair(
        &self,
        user: &UserName,
        name: &str,
        public_key: &str,
        fingerprint: &str,
    ) -> Result<KeyPairRow, StoreError> {
        insert_key_pair_on(self.pool(), user, name, public_key, fingerprint, now_ms()).await
    }

    /// A user's key pairs, by name.
    pub async fn key_pairs(&self, user: &UserName) -> Result<Vec<KeyPairRow>, StoreError> {
        let r: Vec<KeyPairDb> = sqlx::query_as(&format!("SELECT {COLS} FROM key_pairs WHERE user_name = $1 ORDER BY name"))
            .bind(user)
            .fetch_all(self.pool())
            .await?;
        Ok(r.into_iter().map(row).collect())
    }

    /// One key pair of a user.
    pub async fn key_pair(&self, user: &UserName, name: &str) -> Result<Option<KeyPairRow>, StoreError> {
        let r: Option<KeyPairDb> = sqlx::query_as(&format!("SELECT {COLS} FROM key_pairs WHERE user_name = $1 AND name = $2"))
            .bind(user)
            .bind(name)
            .fetch_optional(self.pool())
            .await?;
        Ok(r.map(row))
    }

    /// Deletes a key pair; false when there was none.
    pub async fn delete_key_pair(&self, user: &UserName, name: &str) -> Result<bool, StoreError> {
        let r = sqlx::query("DELETE FROM key_pairs WHERE user_name = $1 AND name = $2").bind(user).bind(name).execute(self.pool()).await?;
        Ok(r.rows_affected() == 1)
    }
}
