//! Sealed cloud credentials and their grants. The store sees only sealed
//! bytes, a masked hint of the access key, and the id of the sealing key.
//!
//! A credential's `scope` says whose it is: `user` (owner = the user's
//! name), `project` (owner = the project's name), `system` (owner = the
//! shared credential's name). Shared (system) credentials are granted to
//! projects (`credential_project_grants`), never to users.

use crate::{ms_to_time, now_ms, Store, StoreError};
use chrono::{DateTime, Utc};
use serde::Serialize;

/// A stored credential (secrets sealed).
#[derive(Clone, Debug, Serialize)]
pub struct CredentialRow {
    pub id: String,
    pub scope: String,
    pub owner: String,
    pub instance: String,
    pub access_key_hint: String,
    #[serde(skip)]
    pub access_key_sealed: Vec<u8>,
    #[serde(skip)]
    pub secret_sealed: Vec<u8>,
    pub key_id: String,
    pub status: String,
    pub status_message: String,
    pub checked_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
    /// When the row was first stored (kept when it is replaced).
    pub created_at: DateTime<Utc>,
    /// When it stops working (EC2 access keys only; `None`: never).
    pub expires_at: Option<DateTime<Utc>>,
}

pub(crate) type CredTuple =
    (String, String, String, String, String, Vec<u8>, Vec<u8>, String, String, String, Option<i64>, i64, i64, Option<i64>);

pub(crate) fn cred(t: CredTuple) -> CredentialRow {
    CredentialRow {
        id: t.0,
        scope: t.1,
        owner: t.2,
        instance: t.3,
        access_key_hint: t.4,
        access_key_sealed: t.5,
        secret_sealed: t.6,
        key_id: t.7,
        status: t.8,
        status_message: t.9,
        checked_at: t.10.map(ms_to_time),
        updated_at: ms_to_time(t.11),
        created_at: ms_to_time(t.12),
        expires_at: t.13.map(ms_to_time),
    }
}

pub(crate) const CRED_COLS: &str = "id, scope, owner, instance, access_key_hint, access_key_sealed, secret_sealed, key_id, status, \
     status_message, checked_at, updated_at, created_at, expires_at";

/// What to store for a credential.
#[derive(Clone, Debug)]
pub struct NewCredential<'a> {
    pub id: &'a str,
    pub scope: &'a str,
    pub owner: &'a str,
    pub instance: &'a str,
    pub access_key_hint: &'a str,
    pub access_key_sealed: &'a [u8],
    pub secret_sealed: &'a [u8],
    pub key_id: &'a str,
    pub status: &'a str,
    pub status_message: &'a str,
}

impl Store {
    /// Inserts or replaces the credential of (scope, owner, instance).
    pub async fn put_credential(&self, c: &NewCredential<'_>) -> Result<(), StoreError> {
        let now = now_ms();
        sqlx::query(
            "INSERT INTO credentials (id, scope, owner, instance, access_key_hint, access_key_sealed, secret_sealed, key_id, status, status_message, checked_at, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11, $11) \
             ON CONFLICT (scope, owner, instance) DO UPDATE SET access_key_hint = excluded.access_key_hint, access_key_sealed = excluded.access_key_sealed, \
             secret_sealed = excluded.secret_sealed, key_id = excluded.key_id, status = excluded.status, status_message = excluded.status_message, \
             checked_at = excluded.checked_at, updated_at = excluded.updated_at",
        )
        .bind(c.id)
        .bind(c.scope)
        .bind(c.owner)
        .bind(c.instance)
        .bind(c.access_key_hint)
        .bind(c.access_key_sealed)
        .bind(c.secret_sealed)
        .bind(c.key_id)
        .bind(c.status)
        .bind(c.status_message)
        .bind(now)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// The credential of (scope, owner, instance).
    pub async fn get_credential(&self, scope: &str, owner: &str, instance: &str) -> Result<Option<CredentialRow>, StoreError> {
        let r: Option<CredTuple> =
            sqlx::query_as(&format!("SELECT {CRED_COLS} FROM credentials WHERE scope = $1 AND owner = $2 AND instance = $3"))
                .bind(scope)
                .bind(owner)
                .bind(instance)
                .fetch_optional(self.pool())
                .await?;
        Ok(r.map(cred))
    }

    /// A credential by id.
    pub async fn get_credential_by_id(&self, id: &str) -> Result<Option<CredentialRow>, StoreError> {
        let r: Option<CredTuple> =
            sqlx::query_as(&format!("SELECT {CRED_COLS} FROM credentials WHERE id = $1")).bind(id).fetch_optional(self.pool()).await?;
        Ok(r.map(cred))
    }

    /// Credentials of a scope and owner.
    pub async fn list_credentials(&self, scope: &str, owner: Option<&str>) -> Result<Vec<CredentialRow>, StoreError> {
        let r: Vec<CredTuple> = match owner {
            Some(o) => {
                sqlx::query_as(&format!("SELECT {CRED_COLS} FROM credentials WHERE scope = $1 AND owner = $2 ORDER BY instance"))
                    .bind(scope)
                    .bind(o)
                    .fetch_all(self.pool())
                    .await?
            }
            None => {
                sqlx::query_as(&format!("SELECT {CRED_COLS} FROM credentials WHERE scope = $1 ORDER BY owner, instance"))
                    .bind(scope)
                    .fetch_all(self.pool())
                    .await?
            }
        };
        Ok(r.into_iter().map(cred).collect())
    }

    /// One page of the credentials of a scope (and owner, when given), by
    /// owner then instance (byte order), after `after` = (owner, instance).
    pub async fn page_credentials(
        &self,
        scope: &str,
        owner: Option<&str>,
        after: Option<(&str, &str)>,
        limit: i64,
    ) -> Result<Vec<CredentialRow>, StoreError> {
        let (o, i) = (self.bytewise("owner"), self.bytewise("instance"));
        let (after_owner, after_instance) = after.unwrap_or(("", ""));
        let r: Vec<CredTuple> = sqlx::query_as(&format!(
            "SELECT {CRED_COLS} FROM credentials WHERE scope = $1 AND ($5 = '' OR owner = $5) AND ({o} > $2 OR ({o} = $2 AND {i} > $3)) \
             ORDER BY {o}, {i} LIMIT $4"
        ))
        .bind(scope)
        .bind(after_owner)
        .bind(after_instance)
        .bind(limit)
        .bind(owner.unwrap_or(""))
        .fetch_all(self.pool())
        .await?;
        Ok(r.into_iter().map(cred).collect())
    }

    /// Every credential (for key rotation and start-up checks).
    pub async fn all_credentials(&self) -> Result<Vec<CredentialRow>, StoreError> {
        let r: Vec<CredTuple> = sqlx::query_as(&format!("SELECT {CRED_COLS} FROM credentials ORDER BY id")).fetch_all(self.pool()).await?;
        Ok(r.into_iter().map(cred).collect())
    }

    /// Shared (system) credentials for an instance granted to `project`.
    pub async fn granted_credentials(&self, project: &str, instance: &str) -> Result<Vec<CredentialRow>, StoreError> {
        let cols = CRED_COLS.split(", ").map(|c| format!("c.{c}")).collect::<Vec<_>>().join(", ");
        let r: Vec<CredTuple> = sqlx::query_as(&format!(
            "SELECT {cols} FROM credentials c JOIN credential_project_grants g ON g.credential_id = c.id \
             WHERE c.scope = 'system' AND c.instance = $1 AND g.project = $2 ORDER BY c.owner"
        ))
        .bind(instance)
        .bind(project)
        .fetch_all(self.pool())
        .await?;
        Ok(r.into_iter().map(cred).collect())
    }

    /// Ids of VMs in one of `states` that use a credential.
    pub async fn vms_using_credential(&self, credential_id: &str, states: &[&str]) -> Result<Vec<(String, Option<String>)>, StoreError> {
        let list = (2..states.len() + 2).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ");
        let sql = format!("SELECT id, cloud_id FROM vms WHERE credential_id = $1 AND state IN ({list}) ORDER BY created_at");
        let mut q = sqlx::query_as::<_, (String, Option<String>)>(&sql).bind(credential_id);
        for st in states {
            q = q.bind(*st);
        }
        Ok(q.fetch_all(self.pool()).await?)
    }

    /// Replaces the projects a shared credential is granted to.
    pub async fn set_grants(&self, credential_id: &str, projects: &[String]) -> Result<(), StoreError> {
        let mut tx = self.pool().begin().await?;
        sqlx::query("DELETE FROM credential_project_grants WHERE credential_id = $1").bind(credential_id).execute(&mut *tx).await?;
        for p in projects {
            sqlx::query("INSERT INTO credential_project_grants (credential_id, project) VALUES ($1, $2) ON CONFLICT DO NOTHING")
                .bind(credential_id)
                .bind(p)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Projects a credential is granted to, by name.
    pub async fn grants(&self, credential_id: &str) -> Result<Vec<String>, StoreError> {
        let p = self.bytewise("project");
        let r: Vec<(String,)> =
            sqlx::query_as(&format!("SELECT project FROM credential_project_grants WHERE credential_id = $1 ORDER BY {p}"))
                .bind(credential_id)
                .fetch_all(self.pool())
                .await?;
        Ok(r.into_iter().map(|r| r.0).collect())
    }

    /// Re-seals credentials in one transaction; returns how many rows changed.
    pub async fn reseal_credentials(&self, rows: &[Reseal]) -> Result<u64, StoreError> {
        let mut tx = self.pool().begin().await?;
        let mut n = 0;
        for r in rows {
            // Only if nobody wrote the row since it was read: a concurrent save
            // (sealed by another process) is newer than our re-sealed copy.
            n += sqlx::query(
                "UPDATE credentials SET access_key_sealed = $1, secret_sealed = $2, key_id = $3 WHERE id = $4 AND secret_sealed = $5",
            )
            .bind(&r.access_key_sealed)
            .bind(&r.secret_sealed)
            .bind(&r.key_id)
            .bind(&r.id)
            .bind(&r.previous_secret_sealed)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        }
        tx.commit().await?;
        Ok(n)
    }

    /// Key ids still used by stored secrets (credentials and EC2 access keys).
    pub async fn key_ids_in_use(&self) -> Result<Vec<String>, StoreError> {
        let r: Vec<(String,)> = sqlx::query_as("SELECT key_id FROM credentials UNION SELECT master_key_id FROM access_keys ORDER BY 1")
            .fetch_all(self.pool())
            .await?;
        Ok(r.into_iter().map(|r| r.0).collect())
    }
}

/// A credential re-sealed under another key.
#[derive(Debug, Clone)]
pub struct Reseal {
    pub id: String,
    /// The sealed secret that was read: the row is changed only if it still holds it.
    pub previous_secret_sealed: Vec<u8>,
    pub access_key_sealed: Vec<u8>,
    pub secret_sealed: Vec<u8>,
    pub key_id: String,
}
