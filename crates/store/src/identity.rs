//! Users, sessions and API tokens. Secrets are never stored here in clear:
//! passwords as Argon2id PHC strings, session ids and tokens as SHA-256 hashes.
//! A token minted with another token records it (`parent_id`); revoking a
//! token revokes its descendants, and a token with a revoked ancestor is
//! not live (so a child minted while its parent was being revoked dies too).

use crate::{ms_to_time, now_ms, Store, StoreError};
use chrono::{DateTime, Utc};
use serde::Serialize;

/// A stored user.
#[derive(Clone, Debug, Serialize)]
pub struct UserRow {
    pub name: String,
    #[serde(skip)]
    pub password_hash: String,
    pub is_admin: bool,
    pub ssh_public_key: Option<String>,
    pub created_at: DateTime<Utc>,
    /// When an admin disabled the account; `None` while it is enabled.
    pub disabled_at: Option<DateTime<Utc>>,
    /// The connector instance SigV2 requests to plain `/ec2` act on.
    pub default_ec2_region: Option<String>,
}

type UserTuple = (String, String, i64, Option<String>, i64, Option<i64>, Option<String>);

fn user(t: UserTuple) -> UserRow {
    UserRow {
        name: t.0,
        password_hash: t.1,
        is_admin: t.2 != 0,
        ssh_public_key: t.3,
        created_at: ms_to_time(t.4),
        disabled_at: t.5.map(ms_to_time),
        default_ec2_region: t.6,
    }
}

/// A stored session.
#[derive(Clone, Debug)]
pub struct SessionRow {
    pub user_name: String,
    pub csrf_token: String,
    pub created_at: i64,
    pub last_seen_at: i64,
}

/// A stored API token (its hash is not exposed).
#[derive(Clone, Debug, Serialize)]
pub struct TokenRow {
    pub id: String,
    pub user_name: String,
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
    /// The token this one was minted with (`None`: minted with a password or a session).
    pub parent_id: Option<String>,
}

type TokenTuple = (String, String, String, i64, Option<i64>, Option<i64>, Option<i64>, Option<String>);

/// A token's columns and its user's `is_admin`.
type LiveTokenTuple = (String, String, String, i64, Option<i64>, Option<i64>, Option<i64>, Option<String>, i64);

/// How many generations of parents are followed (a bound, not a real depth).
const MAX_TOKEN_ANCESTRY: i64 = 64;

fn token(t: TokenTuple) -> TokenRow {
    TokenRow {
        id: t.0,
        user_name: t.1,
        name: t.2,
        created_at: ms_to_time(t.3),
        expires_at: t.4.map(ms_to_time),
        revoked_at: t.5.map(ms_to_time),
        last_used_at: t.6.map(ms_to_time),
        parent_id: t.7,
    }
}

const USER_COLS: &str = "name, password_hash, is_admin, ssh_public_key, created_at, disabled_at, default_ec2_region";
/// A token's `last_used_at` is exact to this much (ms).
pub const TOKEN_USE_RESOLUTION_MS: i64 = 60_000;

const TOKEN_COLS: &str = "id, user_name, name, created_at, expires_at, revoked_at, last_used_at, parent_id";

impl Store {
    /// Creates a user with their personal project (named after them, the
    /// user its only member, as owner) in one transaction; a duplicate name
    /// is a conflict, and so is a name a project has taken.
    pub async fn create_user(&self, name: &str, password_hash: &str, is_admin: bool) -> Result<(), StoreError> {
        let now = now_ms();
        let mut tx = self.pool().begin().await?;
        sqlx::query("INSERT INTO users (name, password_hash, is_admin, created_at, updated_at) VALUES ($1, $2, $3, $4, $4)")
            .bind(name)
            .bind(password_hash)
            .bind(i64::from(is_admin))
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(|e| match StoreError::from(e) {
                e if e.is_unique_violation() => StoreError::Conflict(format!("user '{name}' already exists")),
                e => e,
            })?;
        sqlx::query(
            "INSERT INTO projects (name, description, personal_of, created_by, created_at, updated_at) VALUES ($1, '', $1, $1, $2, $2)",
        )
        .bind(name)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(|e| match StoreError::from(e) {
            e if e.is_unique_violation() => StoreError::Conflict(format!("the name '{name}' is taken by a project")),
            e => e,
        })?;
        sqlx::query("INSERT INTO project_members (project, user_name, role, added_by, added_at) VALUES ($1, $1, 'owner', $1, $2)")
            .bind(name)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// A user by name.
    pub async fn get_user(&self, name: &str) -> Result<Option<UserRow>, StoreError> {
        let r: Option<UserTuple> =
            sqlx::query_as(&format!("SELECT {USER_COLS} FROM users WHERE name = $1")).bind(name).fetch_optional(self.pool()).await?;
        Ok(r.map(user))
    }

    /// All users, by name.
    pub async fn list_users(&self) -> Result<Vec<UserRow>, StoreError> {
        let r: Vec<UserTuple> = sqlx::query_as(&format!("SELECT {USER_COLS} FROM users ORDER BY name")).fetch_all(self.pool()).await?;
        Ok(r.into_iter().map(user).collect())
    }

    /// One page of users by name (byte order), after the name `after`.
    pub async fn page_users(&self, after: Option<&str>, limit: i64) -> Result<Vec<UserRow>, StoreError> {
        let name = self.bytewise("name");
        let r: Vec<UserTuple> = sqlx::query_as(&format!("SELECT {USER_COLS} FROM users WHERE {name} > $1 ORDER BY {name} LIMIT $2"))
            .bind(after.unwrap_or(""))
            .bind(limit)
            .fetch_all(self.pool())
            .await?;
        Ok(r.into_iter().map(user).collect())
    }

    /// Replaces a password hash.
    pub async fn set_password_hash(&self, name: &str, hash: &str) -> Result<(), StoreError> {
        let r = sqlx::query("UPDATE users SET password_hash = $1, updated_at = $2 WHERE name = $3")
            .bind(hash)
            .bind(now_ms())
            .bind(name)
            .execute(self.pool())
            .await?;
        if r.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("user '{name}'")));
        }
        Ok(())
    }

    /// Grants or removes the admin role.
    pub async fn set_admin(&self, name: &str, is_admin: bool) -> Result<(), StoreError> {
        let r = sqlx::query("UPDATE users SET is_admin = $1, updated_at = $2 WHERE name = $3")
            .bind(i64::from(is_admin))
            .bind(now_ms())
            .bind(name)
            .execute(self.pool())
            .await?;
        if r.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("user '{name}'")));
        }
        Ok(())
    }

    /// Sets the user's SSH public key.
    pub async fn set_ssh_key(&self, name: &str, key: Option<&str>) -> Result<(), StoreError> {
        sqlx::query("UPDATE users SET ssh_public_key = $1, updated_at = $2 WHERE name = $3")
            .bind(key)
            .bind(now_ms())
            .bind(name)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Sets (or clears) the user's default EC2 region (connector instance).
    pub async fn set_default_ec2_region(&self, name: &str, region: Option<&str>) -> Result<(), StoreError> {
        let r = sqlx::query("UPDATE users SET default_ec2_region = $1, updated_at = $2 WHERE name = $3")
            .bind(region)
            .bind(now_ms())
            .bind(name)
            .execute(self.pool())
            .await?;
        if r.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("user '{name}'")));
        }
        Ok(())
    }

    /// Stores a session (by the hash of its id).
    pub async fn create_session(&self, id_hash: &str, user_name: &str, csrf: &str) -> Result<(), StoreError> {
        let now = now_ms();
        sqlx::query("INSERT INTO sessions (id_hash, user_name, csrf_token, created_at, last_seen_at) VALUES ($1, $2, $3, $4, $4)")
            .bind(id_hash)
            .bind(user_name)
            .bind(csrf)
            .bind(now)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// A session by the hash of its id.
    pub async fn get_session(&self, id_hash: &str) -> Result<Option<SessionRow>, StoreError> {
        let r: Option<(String, String, i64, i64)> =
            sqlx::query_as("SELECT user_name, csrf_token, created_at, last_seen_at FROM sessions WHERE id_hash = $1")
                .bind(id_hash)
                .fetch_optional(self.pool())
                .await?;
        Ok(r.map(|(user_name, csrf_token, created_at, last_seen_at)| SessionRow { user_name, csrf_token, created_at, last_seen_at }))
    }

    /// Marks a session as used now.
    pub async fn touch_session(&self, id_hash: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE sessions SET last_seen_at = $1 WHERE id_hash = $2").bind(now_ms()).bind(id_hash).execute(self.pool()).await?;
        Ok(())
    }

    /// Deletes a session.
    pub async fn delete_session(&self, id_hash: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM sessions WHERE id_hash = $1").bind(id_hash).execute(self.pool()).await?;
        Ok(())
    }

    /// Deletes sessions idle since `idle_before` or created before `created_before`.
    pub async fn purge_sessions(&self, idle_before: i64, created_before: i64) -> Result<u64, StoreError> {
        let r = sqlx::query("DELETE FROM sessions WHERE last_seen_at < $1 OR created_at < $2")
            .bind(idle_before)
            .bind(created_before)
            .execute(self.pool())
            .await?;
        Ok(r.rows_affected())
    }

    /// Stores an API token by its hash; `parent_id` is the token it was
    /// minted with, if any.
    pub async fn create_token(
        &self,
        id: &str,
        user_name: &str,
        name: &str,
        token_hash: &str,
        expires_at: Option<i64>,
        parent_id: Option<&str>,
    ) -> Result<TokenRow, StoreError> {
        sqlx::query(
            "INSERT INTO api_tokens (id, user_name, name, token_hash, created_at, expires_at, parent_id) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(id)
        .bind(user_name)
        .bind(name)
        .bind(token_hash)
        .bind(now_ms())
        .bind(expires_at)
        .bind(parent_id)
        .execute(self.pool())
        .await?;
        self.get_token(id).await?.ok_or_else(|| StoreError::NotFound(format!("token {id}")))
    }

    /// A token by id.
    pub async fn get_token(&self, id: &str) -> Result<Option<TokenRow>, StoreError> {
        let r: Option<TokenTuple> =
            sqlx::query_as(&format!("SELECT {TOKEN_COLS} FROM api_tokens WHERE id = $1")).bind(id).fetch_optional(self.pool()).await?;
        Ok(r.map(token))
    }

    /// The live (unrevoked, unexpired) token with this hash whose user is
    /// enabled, with that user's admin role: one query (every API request
    /// asks). Does not record the use: see [`Self::touch_token`].
    pub async fn live_token(&self, token_hash: &str, now: i64) -> Result<Option<(TokenRow, bool)>, StoreError> {
        let cols = TOKEN_COLS.split(", ").map(|c| format!("t.{c}")).collect::<Vec<_>>().join(", ");
        let r: Option<LiveTokenTuple> = sqlx::query_as(&format!(
            "SELECT {cols}, u.is_admin FROM api_tokens t JOIN users u ON u.name = t.user_name \
             WHERE t.token_hash = $1 AND t.revoked_at IS NULL AND (t.expires_at IS NULL OR t.expires_at > $2) AND u.disabled_at IS NULL"
        ))
        .bind(token_hash)
        .bind(now)
        .fetch_optional(self.pool())
        .await?;
        Ok(r.map(|(a, b, c, d, e, f, g, h, admin)| (token((a, b, c, d, e, f, g, h)), admin != 0)))
    }

    /// Whether the token `id` or one of its ancestors (the tokens it was
    /// minted from, followed up to [`MAX_TOKEN_ANCESTRY`] generations) is revoked.
    pub async fn token_lineage_revoked(&self, id: &str) -> Result<bool, StoreError> {
        let (n,): (i64,) = sqlx::query_as(
            "WITH RECURSIVE lineage (id, parent_id, revoked_at, depth) AS ( \
               SELECT id, parent_id, revoked_at, 0 FROM api_tokens WHERE id = $1 \
               UNION ALL \
               SELECT p.id, p.parent_id, p.revoked_at, l.depth + 1 FROM api_tokens p JOIN lineage l ON p.id = l.parent_id \
               WHERE l.depth < $2) \
             SELECT COUNT(*) FROM lineage WHERE revoked_at IS NOT NULL",
        )
        .bind(id)
        .bind(MAX_TOKEN_ANCESTRY)
        .fetch_one(self.pool())
        .await?;
        Ok(n > 0)
    }

    /// Records a token's use at `now` unless one was recorded within
    /// [`TOKEN_USE_RESOLUTION_MS`] (the check is in the statement: replicas
    /// racing write once). A write: callers do it at most once a minute per
    /// token, so reads (every API request) do not queue on the database's writer.
    pub async fn touch_token(&self, id: &str, now: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE api_tokens SET last_used_at = $1 WHERE id = $2 AND (last_used_at IS NULL OR last_used_at < $3)")
            .bind(now)
            .bind(id)
            .bind(now - TOKEN_USE_RESOLUTION_MS)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// A user's tokens.
    pub async fn list_tokens(&self, user_name: &str) -> Result<Vec<TokenRow>, StoreError> {
        let r: Vec<TokenTuple> = sqlx::query_as(&format!("SELECT {TOKEN_COLS} FROM api_tokens WHERE user_name = $1 ORDER BY created_at"))
            .bind(user_name)
            .fetch_all(self.pool())
            .await?;
        Ok(r.into_iter().map(token).collect())
    }

    /// One page of a user's tokens, newest first (by creation time, then id),
    /// after `after` (the previous page's last token).
    pub async fn page_tokens(&self, user_name: &str, after: Option<(i64, &str)>, limit: i64) -> Result<Vec<TokenRow>, StoreError> {
        let r: Vec<TokenTuple> = match after {
            None => {
                sqlx::query_as(&format!(
                    "SELECT {TOKEN_COLS} FROM api_tokens WHERE user_name = $1 ORDER BY created_at DESC, id DESC LIMIT $2"
                ))
                .bind(user_name)
                .bind(limit)
                .fetch_all(self.pool())
                .await?
            }
            Some((ms, id)) => {
                sqlx::query_as(&format!(
                    "SELECT {TOKEN_COLS} FROM api_tokens WHERE user_name = $1 AND (created_at < $2 OR (created_at = $2 AND id < $3)) \
                     ORDER BY created_at DESC, id DESC LIMIT $4"
                ))
                .bind(user_name)
                .bind(ms)
                .bind(id)
                .bind(limit)
                .fetch_all(self.pool())
                .await?
            }
        };
        Ok(r.into_iter().map(token).collect())
    }

    /// Revokes a token of a user and every live token minted from it (at
    /// any depth, whoever's); false when the user has no such live token.
    pub async fn revoke_token(&self, user_name: &str, id: &str) -> Result<bool, StoreError> {
        Ok(self.revoke_token_tree(user_name, id).await?.is_some())
    }

    /// Revokes a token of a user and every live token minted from it;
    /// `None` when the user has no such live token, else how many
    /// descendants were revoked with it.
    pub async fn revoke_token_tree(&self, user_name: &str, id: &str) -> Result<Option<u64>, StoreError> {
        let now = now_ms();
        let r = sqlx::query("UPDATE api_tokens SET revoked_at = $1 WHERE id = $2 AND user_name = $3 AND revoked_at IS NULL")
            .bind(now)
            .bind(id)
            .bind(user_name)
            .execute(self.pool())
            .await?;
        if r.rows_affected() != 1 {
            return Ok(None);
        }
        // `UNION` (not `ALL`) stops on a cycle, which the ids (random, made
        // after their parent) cannot form anyway.
        let d = sqlx::query(
            "WITH RECURSIVE tree (id) AS ( \
               SELECT id FROM api_tokens WHERE parent_id = $1 \
               UNION SELECT t.id FROM api_tokens t JOIN tree ON t.parent_id = tree.id) \
             UPDATE api_tokens SET revoked_at = $2 WHERE id IN (SELECT id FROM tree) AND revoked_at IS NULL",
        )
        .bind(id)
        .bind(now)
        .execute(self.pool())
        .await?;
        Ok(Some(d.rows_affected()))
    }

    /// Revokes every live token of a user; returns how many.
    pub async fn revoke_all_tokens(&self, user_name: &str) -> Result<u64, StoreError> {
        let r = sqlx::query("UPDATE api_tokens SET revoked_at = $1 WHERE user_name = $2 AND revoked_at IS NULL")
            .bind(now_ms())
            .bind(user_name)
            .execute(self.pool())
            .await?;
        Ok(r.rows_affected())
    }

    /// Ends every session of a user; returns how many.
    pub async fn delete_user_sessions(&self, user_name: &str) -> Result<u64, StoreError> {
        let r = sqlx::query("DELETE FROM sessions WHERE user_name = $1").bind(user_name).execute(self.pool()).await?;
        Ok(r.rows_affected())
    }

    /// Disables (sets `disabled_at`) or enables a user; false when there is no such user.
    pub async fn set_user_disabled(&self, name: &str, disabled: bool) -> Result<bool, StoreError> {
        let now = now_ms();
        let r = sqlx::query("UPDATE users SET disabled_at = $1, updated_at = $2 WHERE name = $3")
            .bind(disabled.then_some(now))
            .bind(now)
            .bind(name)
            .execute(self.pool())
            .await?;
        Ok(r.rows_affected() == 1)
    }
}
