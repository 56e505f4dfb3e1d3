//! The audit log (admin): newest first, keyset pages, filters by user,
//! action and date (UTC days, inclusive).

use super::form::{when, FormErrors};
use super::session::SignedIn;
use super::{errors, html, urlencode, Chrome};
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use chrono::{NaiveDate, TimeZone, Utc};
use cloudbroker_core::audit::AuditQuery;
use cloudbroker_core::domain::PageRequest;
use cloudbroker_core::Broker;
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

async fn list(req: HttpRequest, me: SignedIn, broker: web::Data<Broker>, f: web::Query<Filters>) -> HttpResponse {
    let f = f.into_inner();
    let (user, action) = (f.user.unwrap_or_default(), f.action.unwrap_or_default());
    let (since_s, until_s) = (f.since.unwrap_or_default(), f.until.unwrap_or_default());
    let mut page = AuditPage {
        c: Chrome::new(&me, "admin/audit", "Audit log"),
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
            return html(page.errors.status(), &page);
        }
    };
    let q = AuditQuery {
        actor: (!user.trim().is_empty()).then(|| user.trim().to_string()),
        action: (!action.trim().is_empty()).then(|| action.trim().to_string()),
        since,
        until,
    };
    let pr = match PageRequest::parse(Some("50"), f.cursor.as_deref()) {
        Ok(p) => p,
        Err(e) => return errors::service_error_page(&req, &e.into()),
    };
    let p = match broker.audit.list(&me.session.actor, q, pr).await {
        Ok(p) => p,
        Err(e) => return errors::service_error_page(&req, &e),
    };
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
    html(page.errors.status(), &page)
}
