//! `/audit`: the audit log, newest first, paginated and filtered: admins
//! read every entry (or one project's, `?project=`); a team project's owners
//! read that project's entries (`?project=` entered it: see `ApiActor`).

use super::actor::ApiActor;
use super::error::{ApiError, ApiResult};
use super::ok;
use actix_web::web;
use cloudbroker_core::audit::{AuditEntry, AuditQuery};
use cloudbroker_core::Broker;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct AuditParams {
    /// Items per page (default 100).
    #[param(minimum = 1, maximum = 1000, value_type = Option<u32>)]
    limit: Option<String>,
    /// The previous page's `next_cursor`.
    #[param(pattern = r"^(-?[0-9]{1,18}\.([0-9a-f]{2}){0,240})?$")]
    cursor: Option<String>,
    /// Only this actor's entries.
    actor: Option<String>,
    /// Only this action (e.g. `login`, `credential.save`).
    action: Option<String>,
    /// Only entries at or after this time.
    #[param(value_type = Option<chrono::DateTime<chrono::Utc>>)]
    since: Option<String>,
    /// Only entries before this time.
    #[param(value_type = Option<chrono::DateTime<chrono::Utc>>)]
    until: Option<String>,
    /// Only this project's entries: admins read any project's; an owner of
    /// a team project reads that project's (and needs to name it).
    #[param(pattern = "^[a-z0-9][a-z0-9._-]{0,63}$")]
    project: Option<String>,
}

/// One page of the audit log, newest first.
#[derive(Serialize, ToSchema)]
pub(super) struct AuditPage {
    entries: Vec<AuditEntry>,
    /// The cursor of the next page; absent on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(required = false, nullable = false)]
    next_cursor: Option<String>,
}

fn time(field: &'static str, v: Option<&str>) -> Result<Option<chrono::DateTime<chrono::Utc>>, ApiError> {
    v.map(|s| {
        chrono::DateTime::parse_from_rfc3339(s)
            .map(|t| t.with_timezone(&chrono::Utc))
            .map_err(|_| ApiError::field(field, format!("{field} must be an RFC 3339 time, e.g. 2026-01-31T12:00:00Z")))
    })
    .transpose()
}

/// The audit log, newest first, paginated: admins read every entry (or one
/// project's); owners of a team project read that project's (`?project=`).
#[utoipa::path(get, path = "/api/v1/audit", tag = "system", params(AuditParams), responses((status = 200, body = AuditPage),
    (status = 404, description = "`not_found`: no project by that name, or one the caller is no member of", body = super::doc::ErrorBody)))]
pub(super) async fn audit(a: ApiActor, broker: web::Data<Broker>, q: web::Query<AuditParams>) -> ApiResult {
    let page = super::body::page(q.limit.as_deref(), q.cursor.as_deref())?;
    let query = AuditQuery {
        actor: q.actor.clone().filter(|s| !s.is_empty()),
        action: q.action.clone().filter(|s| !s.is_empty()),
        since: time("since", q.since.as_deref())?,
        until: time("until", q.until.as_deref())?,
        // Already parsed and entered by the extractor (a member of it, or an admin).
        project: q.project.as_ref().map(|_| a.0.project.clone()),
        ..AuditQuery::default()
    };
    let p = broker.audit.list(&a.0, query, page).await?;
    ok(AuditPage { entries: p.items, next_cursor: p.next_cursor })
}
