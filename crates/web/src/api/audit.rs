//! `/audit` (admin): the audit log, newest first, paginated and filtered.

use super::actor::ApiActor;
use super::error::{parse, ApiError, ApiResult};
use super::ok;
use actix_web::web;
use cloudbroker_core::audit::AuditQuery;
use cloudbroker_core::domain::PageRequest;
use cloudbroker_core::Broker;
use serde::Deserialize;
use serde_json::json;

pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/audit", web::get().to(audit));
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditParams {
    limit: Option<String>,
    cursor: Option<String>,
    actor: Option<String>,
    action: Option<String>,
    since: Option<String>,
    until: Option<String>,
}

fn time(field: &'static str, v: Option<&str>) -> Result<Option<chrono::DateTime<chrono::Utc>>, ApiError> {
    v.map(|s| {
        chrono::DateTime::parse_from_rfc3339(s)
            .map(|t| t.with_timezone(&chrono::Utc))
            .map_err(|_| ApiError::field(field, format!("{field} must be an RFC 3339 time, e.g. 2026-01-31T12:00:00Z")))
    })
    .transpose()
}

async fn audit(a: ApiActor, broker: web::Data<Broker>, q: web::Query<AuditParams>) -> ApiResult {
    let page = parse(PageRequest::parse(q.limit.as_deref(), q.cursor.as_deref()))?;
    let query = AuditQuery {
        actor: q.actor.clone().filter(|s| !s.is_empty()),
        action: q.action.clone().filter(|s| !s.is_empty()),
        since: time("since", q.since.as_deref())?,
        until: time("until", q.until.as_deref())?,
    };
    let p = broker.audit.list(&a.0, query, page).await?;
    ok(json!({"entries": p.items, "next_cursor": p.next_cursor}))
}
