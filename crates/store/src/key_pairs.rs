//! Named SSH public keys of projects. Names are unique per project; each
//! pair records the user who made it (`user_name`) and its tags (a JSON
//! object, EC2's tags on `key-…` ids).
//!
//! The project and the creator are typed ([`ProjectName`], [`UserName`])
//! both ways: bound as such, and read back through their rules (a stored
//! name that breaks them is a decode error naming its column).

use crate::{ms_to_time, now_ms, Store, StoreError};
use chrono::{DateTime, Utc};
use cloudbroker_model::{ProjectName, UserName};
use std::collections::BTreeMap;

/// A stored key pair (public half).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyPairRow {
    /// The project it belongs to (its name is unique there).
    pub project: ProjectName,
    /// Who made (or imported) it.
    pub created_by: UserName,
    pub name: String,
    pub public_key: String,
    pub fingerprint: String,
    pub created_at: DateTime<Utc>,
    pub tags: BTreeMap<String, String>,
}

/// A key pair as the database holds it.
#[derive(sqlx::FromRow)]
struct KeyPairDb {
    project: ProjectName,
    user_name: UserName,
    name: String,
    public_key: String,
    fingerprint: String,
    created_at: i64,
    tags: String,
}

fn row(t: KeyPairDb) -> KeyPairRow {
    KeyPairRow {
        project: t.project,
        created_by: t.user_name,
        name: t.name,
        public_key: t.public_key,
        fingerprint: t.fingerprint,
        created_at: ms_to_time(t.created_at),
        tags: serde_json::from_str(&t.tags).unwrap_or_default(),
    }
}

const COLS: &str = "project, user_name, name, public_key, fingerprint, created_at, tags";

/// Inserts a key pair through `db` (the pool, or a transaction: [`crate::limits`]).
pub(crate) async fn insert_key_pair_on<'e, E: sqlx::Executor<'e, Database = sqlx::Any>>(
    db: E,
    project: &ProjectName,
    created_by: &UserName,
    name: &str,
    public_key: &str,
    fingerprint: &str,
    now: i64,
) -> Result<KeyPairRow, StoreError> {
    sqlx::query("INSERT INTO key_pairs (project, user_name, name, public_key, fingerprint, created_at) VALUES ($1, $2, $3, $4, $5, $6)")
        .bind(project)
        .bind(created_by)
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
        project: project.clone(),
        created_by: created_by.clone(),
        name: name.into(),
        public_key: public_key.into(),
        fingerprint: fingerprint.into(),
        created_at: ms_to_time(now),
        tags: BTreeMap::new(),
    })
}

impl Store {
    /// Stores a key pair of `project` made by `created_by`; a duplicate
    /// name in the project is a conflict.
    pub async fn insert_key_pair(
        &self,
        project: &ProjectName,
        created_by: &UserName,
        name: &str,
        public_key: &str,
        fingerprint: &str,
    ) -> Result<KeyPairRow, StoreError> {
        insert_key_pair_on(self.pool(), project, created_by, name, public_key, fingerprint, now_ms()).await
    }

    /// A project's key pairs, by name.
    pub async fn key_pairs(&self, project: &ProjectName) -> Result<Vec<KeyPairRow>, StoreError> {
        let r: Vec<KeyPairDb> = sqlx::query_as(&format!("SELECT {COLS} FROM key_pairs WHERE project = $1 ORDER BY name"))
            .bind(project)
            .fetch_all(self.pool())
            .await?;
        Ok(r.into_iter().map(row).collect())
    }

    /// One key pair of a project.
    pub async fn key_pair(&self, project: &ProjectName, name: &str) -> Result<Option<KeyPairRow>, StoreError> {
        let r: Option<KeyPairDb> = sqlx::query_as(&format!("SELECT {COLS} FROM key_pairs WHERE project = $1 AND name = $2"))
            .bind(project)
            .bind(name)
            .fetch_optional(self.pool())
            .await?;
        Ok(r.map(row))
    }

    /// The key pairs `user` made, in every project, by project and name.
    pub async fn key_pairs_made_by(&self, user: &UserName) -> Result<Vec<KeyPairRow>, StoreError> {
        let r: Vec<KeyPairDb> = sqlx::query_as(&format!("SELECT {COLS} FROM key_pairs WHERE user_name = $1 ORDER BY project, name"))
            .bind(user)
            .fetch_all(self.pool())
            .await?;
        Ok(r.into_iter().map(row).collect())
    }

    /// Replaces a key pair's tags; false when there is no such pair.
    pub async fn set_key_pair_tags(&self, project: &ProjectName, name: &str, tags: &BTreeMap<String, String>) -> Result<bool, StoreError> {
        let r = sqlx::query("UPDATE key_pairs SET tags = $3 WHERE project = $1 AND name = $2")
            .bind(project)
            .bind(name)
            .bind(serde_json::to_string(tags).unwrap_or_else(|_| "{}".into()))
            .execute(self.pool())
            .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Deletes a key pair; false when there was none.
    pub async fn delete_key_pair(&self, project: &ProjectName, name: &str) -> Result<bool, StoreError> {
        let r = sqlx::query("DELETE FROM key_pairs WHERE project = $1 AND name = $2").bind(project).bind(name).execute(self.pool()).await?;
        Ok(r.rows_affected() == 1)
    }
}
