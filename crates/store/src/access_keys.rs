//! EC2 API access keys, stored as credential rows of scope `ec2-access-key`
//! (owner: the user; instance column: the public key id), so that the
//! secret is sealed, bound to its owner and re-sealed by key rotation like
//! every other secret. The store sees sealed bytes and the public id only.
//! A key's expiry (`expires_at`, ms) is stored here; whether a key is usable
//! at a given time is the services' rule (crates/core/src/access_keys.rs).

use crate::credentials::{cred, CredTuple, CredentialRow, CRED_COLS};
use crate::{now_ms, Store, StoreError};

/// The credential scope of EC2 API access keys.
pub const ACCESS_KEY_SCOPE: &str = "ec2-access-key";

impl Store {
    /// The access key with this public id, whoever owns it.
    pub async fn access_key(&self, key_id: &str) -> Result<Option<CredentialRow>, StoreError> {
        let r: Option<CredTuple> = sqlx::query_as(&format!("SELECT {CRED_COLS} FROM credentials WHERE scope = $1 AND instance = $2"))
            .bind(ACCESS_KEY_SCOPE)
            .bind(key_id)
            .fetch_optional(self.pool())
            .await?;
        Ok(r.map(cred))
    }

    /// Sets an access key's state (`active` / `disabled`); false when the
    /// user has no such key.
    pub async fn set_access_key_state(&self, user: &str, key_id: &str, state: &str) -> Result<bool, StoreError> {
        let r = sqlx::query("UPDATE credentials SET status = $1, updated_at = $2 WHERE scope = $3 AND owner = $4 AND instance = $5")
            .bind(state)
            .bind(now_ms())
            .bind(ACCESS_KEY_SCOPE)
            .bind(user)
            .bind(key_id)
            .execute(self.pool())
            .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Records a use of an access key (`checked_at` holds the last use).
    pub async fn touch_access_key(&self, key_id: &str, at_ms: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE credentials SET checked_at = $1 WHERE scope = $2 AND instance = $3")
            .bind(at_ms)
            .bind(ACCESS_KEY_SCOPE)
            .bind(key_id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Forgets an access key's last use (a new key has none: storing it set `checked_at`).
    pub async fn clear_access_key_use(&self, key_id: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE credentials SET checked_at = NULL WHERE scope = $1 AND instance = $2")
            .bind(ACCESS_KEY_SCOPE)
            .bind(key_id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Finishes storing a new key: no last use (storing it set
    /// `checked_at`) and its expiry (`None`: never).
    pub async fn finish_new_access_key(&self, key_id: &str, expires_at_ms: Option<i64>) -> Result<(), StoreError> {
        sqlx::query("UPDATE credentials SET checked_at = NULL, expires_at = $1 WHERE scope = $2 AND instance = $3")
            .bind(expires_at_ms)
            .bind(ACCESS_KEY_SCOPE)
            .bind(key_id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Moves every access key of `user` in state `from` to state `to`
    /// (e.g. disables them all); returns how many changed.
    pub async fn set_user_access_keys_state(&self, user: &str, from: &str, to: &str) -> Result<u64, StoreError> {
        let r = sqlx::query("UPDATE credentials SET status = $1, updated_at = $2 WHERE scope = $3 AND owner = $4 AND status = $5")
            .bind(to)
            .bind(now_ms())
            .bind(ACCESS_KEY_SCOPE)
            .bind(user)
            .bind(from)
            .execute(self.pool())
            .await?;
        Ok(r.rows_affected())
    }

    /// Deletes a user's access key; false when there is none.
    pub async fn delete_access_key(&self, user: &str, key_id: &str) -> Result<bool, StoreError> {
        let r = sqlx::query("DELETE FROM credentials WHERE scope = $1 AND owner = $2 AND instance = $3")
            .bind(ACCESS_KEY_SCOPE)
            .bind(user)
            .bind(key_id)
            .execute(self.pool())
            .await?;
        Ok(r.rows_affected() == 1)
    }
}
