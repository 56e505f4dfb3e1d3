//! The append-only audit log: who did what to which target, with what
//! outcome. Rows are only ever inserted; reads page by id, newest first.

use crate::{ms_to_time, Store, StoreError};
use chrono::{DateTime, Utc};
use serde::Serialize;

/// One audit record.
#[derive(Clone, Debug, Serialize)]
pub struct AuditRow {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub outcome: String,
    pub detail: String,
    /// The project the record belongs to (`''` for the broker's own).
    pub project: String,
    /// The user whose resource was acted on (`''`: none recorded).
    pub subject: String,
}

/// Which audit records to read.
#[derive(Clone, Debug, Default)]
pub struct AuditFilter {
    pub actor: Option<String>,
    /// Only one project's records.
    pub project: Option<String>,
    pub action: Option<String>,
    /// Only records about this user's resources (their subject).
    pub subject: Option<String>,
    /// Only records at or after this time (ms).
    pub since_ms: Option<i64>,
    /// Only records before this time (ms).
    pub until_ms: Option<i64>,
    /// Only records with an id below this (the previous page's last).
    pub before_id: Option<i64>,
}

type AuditTuple = (i64, i64, String, String, String, String, String, String, String);

fn audit_row((id, at, actor, action, target, outcome, detail, project, subject): AuditTuple) -> AuditRow {
    AuditRow { id, at: ms_to_time(at), actor, action, target, outcome, detail, project, subject }
}

/// One audit record to append: who (`actor`: a user name, or `system`) did
/// what (`action`) to which `target`, with what `outcome`, and the details.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NewAudit<'a> {
    pub actor: &'a str,
    pub action: &'a str,
    pub target: &'a str,
    pub outcome: &'a str,
    pub detail: &'a str,
    /// The project it belongs to (`""` for the broker's own).
    pub project: &'a str,
    /// The user whose resource was acted on (`""`: none).
    pub subject: &'a str,
}

/// Appends one audit record at `at` through `exec` (the pool, or a
/// transaction whose change the record belongs to).
pub(crate) async fn insert_audit<'e, E>(exec: E, at: i64, r: &NewAudit<'_>) -> Result<(), StoreError>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    sqlx::query(
        "INSERT INTO audit_log (at, actor, action, target, outcome, detail, project, subject) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(at)
    .bind(r.actor)
    .bind(r.action)
    .bind(r.target)
    .bind(r.outcome)
    .bind(r.detail)
    .bind(r.project)
    .bind(r.subject)
    .execute(exec)
    .await?;
    Ok(())
}

impl Store {
    /// Appends one record to the audit log, stamped by the store's clock
    /// (as VM states and deployment members are, so that their times compare).
    pub async fn append_audit(&self, r: &NewAudit<'_>) -> Result<(), StoreError> {
        insert_audit(self.pool(), self.clock_ms(), r).await
    }

    /// The newest audit records, newest first.
    pub async fn audit_log(&self, limit: i64) -> Result<Vec<AuditRow>, StoreError> {
        let r: Vec<AuditTuple> = sqlx::query_as(
            "SELECT id, at, actor, action, target, outcome, detail, project, subject FROM audit_log ORDER BY id DESC LIMIT $1",
        )
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        Ok(r.into_iter().map(audit_row).collect())
    }

    /// Audit records matching a filter, newest first, at most `limit`.
    pub async fn audit_page(&self, f: &AuditFilter, limit: i64) -> Result<Vec<AuditRow>, StoreError> {
        let mut sql = String::from("SELECT id, at, actor, action, target, outcome, detail, project, subject FROM audit_log WHERE 1 = 1");
        let mut n = 0;
        let mut next = || {
            n += 1;
            n
        };
        if f.actor.is_some() {
            sql.push_str(&format!(" AND actor = ${}", next()));
        }
        if f.project.is_some() {
            sql.push_str(&format!(" AND project = ${}", next()));
        }
        if f.action.is_some() {
            sql.push_str(&format!(" AND action = ${}", next()));
        }
        if f.subject.is_some() {
            sql.push_str(&format!(" AND subject = ${}", next()));
        }
        if f.since_ms.is_some() {
            sql.push_str(&format!(" AND at >= ${}", next()));
        }
        if f.until_ms.is_some() {
            sql.push_str(&format!(" AND at < ${}", next()));
        }
        if f.before_id.is_some() {
            sql.push_str(&format!(" AND id < ${}", next()));
        }
        sql.push_str(&format!(" ORDER BY id DESC LIMIT ${}", next()));
        let mut q = sqlx::query_as::<_, AuditTuple>(&sql);
        if let Some(a) = &f.actor {
            q = q.bind(a);
        }
        if let Some(p) = &f.project {
            q = q.bind(p);
        }
        if let Some(a) = &f.action {
            q = q.bind(a);
        }
        if let Some(s) = &f.subject {
            q = q.bind(s);
        }
        for v in [f.since_ms, f.until_ms, f.before_id].into_iter().flatten() {
            q = q.bind(v);
        }
        Ok(q.bind(limit).fetch_all(self.pool()).await?.into_iter().map(audit_row).collect())
    }
}
