//! The audit log as a service: admins read it newest first, page by page,
//! filtered by actor, action and time. Services write their own entries
//! (nothing at the HTTP edges does).

use crate::domain::{Cursor, Page, PageRequest};
use crate::error::ServiceResult;
use crate::identity::Actor;
use chrono::{DateTime, Utc};
use cloudbroker_store::audit::{AuditFilter, AuditRow};
use cloudbroker_store::Store;
use serde::Serialize;

/// Which entries to read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuditQuery {
    /// The actor as recorded: a user name, or `system`.
    pub actor: Option<String>,
    /// e.g. `vm.launch`, `login`.
    pub action: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
}

/// One entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditEntry {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub outcome: String,
    pub detail: String,
}

impl From<AuditRow> for AuditEntry {
    fn from(r: AuditRow) -> Self {
        Self { id: r.id, at: r.at, actor: r.actor, action: r.action, target: r.target, outcome: r.outcome, detail: r.detail }
    }
}

/// The audit service.
pub struct Audit {
    store: Store,
}

impl Audit {
    /// A new service.
    pub fn new(store: Store) -> Self {
        Self { store }
    }

    /// One page of entries, newest first (admin).
    pub async fn list(&self, actor: &Actor, q: AuditQuery, page: PageRequest) -> ServiceResult<Page<AuditEntry>> {
        actor.require_admin()?;
        let filter = AuditFilter {
            actor: q.actor,
            action: q.action,
            since_ms: q.since.map(|t| t.timestamp_millis()),
            until_ms: q.until.map(|t| t.timestamp_millis()),
            before_id: page.after.as_ref().map(|c| c.num),
        };
        let rows = self.store.audit_page(&filter, i64::from(page.limit) + 1).await?;
        Ok(Page::from_fetched(rows.into_iter().map(AuditEntry::from).collect(), page.limit, |e| Cursor::new(e.id, "")))
    }

    /// Records an entry (for the edges' own events, e.g. a refused CSRF token).
    pub async fn record(&self, actor: &str, action: &str, target: &str, outcome: &str, detail: &str) -> ServiceResult<()> {
        Ok(self.store.audit(actor, action, target, outcome, detail).await?)
    }
}
