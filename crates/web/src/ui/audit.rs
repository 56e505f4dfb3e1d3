//! The audit log (admin): newest first, keyset pages, filters by user,
//! action and date (UTC days, inclusive).

use super::context::Ctx;
use super::errors::UiResult;
use super::form::{when, FormErrors};
use super::{html, urlencode, Chrome};
use actix_web::web;
use askama::Template;
use chrono::{NaiveDate, TimeZone, Utc};
use cloudbroker_core::audit::AuditQuery;
use cloudbroker_core::domain::PageRequest;
use cloudbroker_core::ServiceError;
use serde::Deserialize;

pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/audit", web::get().to(list));
}

struct Row {
    at: String,
    actor: String,
    action: String,
    target: String,
    outcome: String,
    detail: String,
}

#[derive(Template)]
#[template(path = "admin_audit.html")]
struct AuditPage {
    c: Chrome,
    rows: Vec<Row>,
    user: String,
    action: String,
    since: String,
    until: String,
    next: Option<String>,
    paged: bool,
    errors: FormErrors,
}

#[derive(Deserialize)]
pub(super) struct Filters {
    user: Option<String>,
    action: Option<String>,
    since: Option<String>,
    until: Option<String>,
    cursor: Option<String>,
}

fn day(field: &str, s: &str, end: bool) -> Result<Option<chrono::DateTime<Utc>>, FormErrors> {
    if s.trim().is_empty() {
        return Ok(None);
    }
    let d = NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d").map_err(|_| FormErrors::field(field, "a date as YYYY-MM-DD"))?;
    let t = if end { d.and_hms_opt(23, 59, 59) } else { d.and_hms_opt(0, 0, 0) };
    Ok(t.map(|t| Utc.from_utc_datetime(&t)))
}

async fn list(ui: Ctx, f: web::Query<Filters>) -> UiResult {
    let f = f.into_inner();
    let (user, action) = (f.user.unwrap_or_default(), f.action.unwrap_or_default());
    let (since_s, until_s) = (f.since.unwrap_or_default(), f.until.unwrap_or_default());
    let mut page = AuditPage {
        c: ui.chrome("admin/audit", "Audit log"),
        rows: vec![],
        next: None,
        paged: f.cursor.as_deref().is_some_and(|c| !c.is_empty()),
        errors: FormErrors::none(),
        user: user.clone(),
        action: action.clone(),
        since: since_s.clone(),
        until: until_s.clone(),
    };
    let (since, until) = match (day("since", &since_s, false), day("until", &until_s, true)) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => {
            page.errors = e;
            return Ok(html(page.errors.status(), &page));
        }
    };
    let q = AuditQuery {
        actor: (!user.trim().is_empty()).then(|| user.trim().to_string()),
        action: (!action.trim().is_empty()).then(|| action.trim().to_string()),
        since,
        until,
    };
    let pr = PageRequest::parse(Some("50"), f.cursor.as_deref()).map_err(ServiceError::from)?;
    let p = ui.broker.audit.list(ui.actor(), q, pr).await?;
    page.next = p.next_cursor.map(|c| {
        format!(
            "/admin/audit?user={}&action={}&since={}&until={}&cursor={}",
            urlencode(&user),
            urlencode(&action),
            urlencode(&since_s),
            urlencode(&until_s),
            urlencode(&c)
        )
    });
    page.rows = p
        .items
        .into_iter()
        .map(|e| Row { at: when(&e.at), actor: e.actor, action: e.action, target: e.target, outcome: e.outcome, detail: e.detail })
        .collect();
    Ok(html(page.errors.status(), &page))
}
