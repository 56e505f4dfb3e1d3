//! The audit log: the whole log for admins (`/admin/audit`, filters by
//! user, subject (whose resource), project, action (a select of every
//! action the core knows) and date in UTC days, inclusive) and one
//! project's log for its owners (`/projects/{name}/audit`, the same page
//! with the project fixed); newest first, keyset pages. Times show the
//! second and never wrap; a configuration change shows each key's old →
//! new value (from the record's details).

use super::context::Ctx;
use super::errors::{UiError, UiResult};
use super::form::FormErrors;
use super::{html, urlencode, Chrome};
use actix_web::web;
use askama::Template;
use chrono::{NaiveDate, TimeZone, Utc};
use cloudbroker_core::audit::{AuditAction, AuditQuery};
use cloudbroker_core::domain::{PageRequest, ProjectName};
use cloudbroker_core::{Actor, ServiceError};
use serde::Deserialize;

pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/audit", web::get().to(list));
}

/// One row of the page.
pub(super) struct Row {
    pub at: String,
    pub actor: String,
    pub project: String,
    /// Whose resource it was (empty: not recorded).
    pub subject: String,
    pub action: String,
    pub target: String,
    pub outcome: String,
    pub detail: String,
    /// A configuration change's values, per key: (key, old, new).
    pub changes: Vec<(String, String, String)>,
}

/// A time to the second, in UTC.
pub(super) fn at_second(t: &chrono::DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// The `key: old → new` lines of a `config.change` record's details, when
/// every line is one (else none: the details are shown as written).
fn changes(detail: &str) -> Vec<(String, String, String)> {
    let parsed: Option<Vec<_>> = detail
        .lines()
        .map(|l| {
            let (key, values) = l.split_once(": ")?;
            let (old, new) = values.split_once(" → ").unwrap_or(("", values));
            Some((key.to_string(), old.to_string(), new.to_string()))
        })
        .collect();
    parsed.unwrap_or_default()
}

impl From<cloudbroker_core::audit::AuditEntry> for Row {
    fn from(e: cloudbroker_core::audit::AuditEntry) -> Self {
        let changes = if e.action == AuditAction::ConfigChange.as_str() && e.outcome == "ok" { changes(&e.detail) } else { Vec::new() };
        Row {
            at: at_second(&e.at),
            actor: e.actor,
            project: e.project,
            subject: e.subject,
            action: e.action,
            target: e.target,
            outcome: e.outcome,
            detail: e.detail,
            changes,
        }
    }
}

#[derive(Template)]
#[template(path = "admin_audit.html")]
struct AuditPage {
    c: Chrome,
    /// Where the filter form and the pages go.
    base: String,
    /// The project of a project's log (no project filter then).
    only_project: Option<String>,
    rows: Vec<Row>,
    user: String,
    subject: String,
    project: String,
    action: String,
    /// Every action the core records, for the select (and a typed unknown
    /// one, kept).
    actions: Vec<String>,
    since: String,
    until: String,
    next: Option<String>,
    paged: bool,
    errors: FormErrors,
}

#[derive(Deserialize)]
pub(super) struct Filters {
    user: Option<String>,
    subject: Option<String>,
    project: Option<String>,
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
    let actor = ui.actor().clone();
    render(&ui, &actor, "/admin/audit".into(), None, f.into_inner()).await
}

/// The audit log of project `name` (its owners and admins).
pub(super) async fn project_log(ui: Ctx, name: web::Path<String>, f: web::Query<Filters>) -> UiResult {
    let project = ProjectName::parse(&name).map_err(|_| UiError::NotFound("No such project."))?;
    let actor = ui.actor_in(&project).await?;
    actor.require_manage()?;
    let base = format!("/projects/{project}/audit");
    let mut f = f.into_inner();
    f.project = Some(project.to_string());
    render(&ui, &actor, base, Some(project.to_string()), f).await
}

async fn render(ui: &Ctx, actor: &Actor, base: String, only_project: Option<String>, f: Filters) -> UiResult {
    let (user, action) = (f.user.unwrap_or_default(), f.action.unwrap_or_default());
    let subject = f.subject.unwrap_or_default();
    let mut actions: Vec<String> = AuditAction::ALL.iter().map(|a| a.as_str().to_string()).collect();
    actions.sort();
    if !action.trim().is_empty() && !actions.iter().any(|a| a == action.trim()) {
        actions.push(action.trim().to_string());
    }
    let project = f.project.unwrap_or_default();
    let (since_s, until_s) = (f.since.unwrap_or_default(), f.until.unwrap_or_default());
    let active = if only_project.is_some() { "projects" } else { "admin/audit" };
    let title = match &only_project {
        Some(p) => format!("Audit log of {p}"),
        None => "Audit log".into(),
    };
    let mut page = AuditPage {
        c: ui.chrome(active, title),
        base,
        only_project,
        rows: vec![],
        next: None,
        paged: f.cursor.as_deref().is_some_and(|c| !c.is_empty()),
        errors: FormErrors::none(),
        user: user.clone(),
        subject: subject.clone(),
        project: project.clone(),
        action: action.clone(),
        actions,
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
    let project_filter = match project.trim() {
        "" => None,
        p => match ProjectName::parse(p) {
            Ok(p) => Some(p),
            Err(e) => {
                page.errors = FormErrors::field("project", e.message);
                return Ok(html(page.errors.status(), &page));
            }
        },
    };
    let q = AuditQuery {
        actor: (!user.trim().is_empty()).then(|| user.trim().to_string()),
        action: (!action.trim().is_empty()).then(|| action.trim().to_string()),
        since,
        until,
        project: project_filter,
        subject: (!subject.trim().is_empty()).then(|| subject.trim().to_string()),
    };
    let pr = PageRequest::parse(Some("50"), f.cursor.as_deref()).map_err(ServiceError::from)?;
    let p = ui.broker.audit.list(actor, q, pr).await?;
    page.next = p.next_cursor.map(|c| {
        format!(
            "{}?user={}&subject={}&project={}&action={}&since={}&until={}&cursor={}",
            page.base,
            urlencode(&user),
            urlencode(&subject),
            urlencode(&project),
            urlencode(&action),
            urlencode(&since_s),
            urlencode(&until_s),
            urlencode(&c)
        )
    });
    page.rows = p.items.into_iter().map(Row::from).collect();
    Ok(html(page.errors.status(), &page))
}
