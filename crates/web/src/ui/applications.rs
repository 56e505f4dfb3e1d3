//! Applications, for everyone signed in: the list (name, latest version,
//! nodes, origin, a Deploy link), one application (its nodes as a table,
//! the mappings, the versions, the source text), and the editor: the
//! document as text in a textarea. A save with errors comes back with the
//! text as typed, every error listed at the top and, where its line is
//! known, again next to that line in a numbered listing of the text.
//! File-declared applications are read-only here (edit the file).

use super::context::{CsrfForm, Ctx};
use super::errors::{UiError, UiResult};
use super::form::{when, FormErrors};
use super::{html, Chrome};
use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use askama::Template;
use cloudbroker_core::deployments::{AppError, AppName, Application};
use cloudbroker_core::ServiceError;
use serde::Deserialize;

pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/applications", web::get().to(list))
        .route("/applications/new", web::get().to(new_form))
        .route("/applications/new", web::post().to(create))
        .route("/applications/{name}", web::get().to(view))
        .route("/applications/{name}/edit", web::get().to(edit_form))
        .route("/applications/{name}/edit", web::post().to(update))
        .route("/applications/{name}/delete", web::post().to(delete));
}

/// The starting text of a new application.
const TEMPLATE: &str = "description: \nnodes:\n  main:\n    image: ubuntu-22.04\n    multiplicity: 1\n";

struct Row {
    name: String,
    version: i64,
    description: String,
    nodes: String,
    origin: String,
    declared_in: String,
}

#[derive(Template)]
#[template(path = "applications.html")]
struct ListPage {
    c: Chrome,
    rows: Vec<Row>,
    can_create: bool,
}

async fn list(ui: Ctx) -> UiResult {
    let apps = ui.broker.applications.list(ui.actor()).await?;
    let rows = apps
        .into_iter()
        .map(|a| Row {
            name: a.name.to_string(),
            version: a.version,
            description: a.description,
            nodes: a.nodes.join(", "),
            origin: a.origin,
            declared_in: a.declared_in.unwrap_or_default(),
        })
        .collect();
    let can_create = ui.actor().require_act().is_ok();
    Ok(html(StatusCode::OK, &ListPage { c: ui.chrome("applications", "Applications"), rows, can_create }))
}

fn name_in_path(s: &str) -> Result<AppName, UiError> {
    AppName::parse(s).map_err(|_| UiError::NotFound("No such application."))
}

/// A node, as the view's table shows it.
struct NodeRow {
    name: String,
    image: String,
    instance_type: String,
    multiplicity: u32,
    instances: String,
    depends_on: String,
    ready_when: &'static str,
    timeout: String,
    inputs: String,
    outputs: String,
}

fn params(ps: &[cloudbroker_core::deployments::ParamSpec]) -> String {
    ps.iter()
        .map(|p| {
            let mut s = p.name.clone();
            if p.secret {
                s.push_str(" (secret)");
            }
            if let Some(d) = &p.default {
                if !p.secret {
                    s.push_str(&format!(" = {d}"));
                }
            }
            s
        })
        .collect::<Vec<_>>()
        .join(", ")
}

struct VersionRow {
    version: i64,
    at: String,
    origin: String,
}

#[derive(Template)]
#[template(path = "application.html")]
struct ViewPage {
    c: Chrome,
    name: String,
    version: i64,
    latest: i64,
    description: String,
    origin: String,
    at: String,
    declared_in: String,
    can_edit: bool,
    inputs: String,
    nodes: Vec<NodeRow>,
    mappings: Vec<(String, String)>,
    timeout: String,
    versions: Vec<VersionRow>,
    source: String,
}

#[derive(Deserialize)]
struct VersionQuery {
    version: Option<i64>,
}

async fn view(ui: Ctx, name: web::Path<String>, q: web::Query<VersionQuery>) -> UiResult {
    let name = name_in_path(&name)?;
    let apps = &ui.broker.applications;
    let app = apps.get(ui.actor(), &name, q.version).await?;
    let versions = apps.versions(ui.actor(), &name).await?;
    let latest = versions.last().map_or(app.version, |v| v.0);
    let declared_in = apps.declared_in(&name).unwrap_or_default();
    let can_edit = declared_in.is_empty() && ui.actor().require_act().is_ok();
    let Application { doc, source, origin, created_at, version, .. } = app;
    let nodes = doc
        .nodes
        .iter()
        .map(|(n, s)| NodeRow {
            name: n.clone(),
            image: s.image.clone(),
            instance_type: s.instance_type.clone().unwrap_or_default(),
            multiplicity: s.multiplicity,
            instances: if s.instances.is_empty() { "any".into() } else { s.instances.join(", ") },
            depends_on: s.depends_on.join(", "),
            ready_when: s.ready_when.as_str(),
            timeout: s.timeout.map(cloudbroker_core::deployments::app::format_duration).unwrap_or_default(),
            inputs: params(&s.inputs),
            outputs: params(&s.outputs),
        })
        .collect();
    let page = ViewPage {
        c: ui.chrome("applications", format!("Application {name}")),
        name: name.to_string(),
        version,
        latest,
        description: doc.description.clone(),
        origin,
        at: when(&created_at),
        declared_in,
        can_edit,
        inputs: params(&doc.inputs),
        nodes,
        mappings: doc.mappings.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        timeout: cloudbroker_core::deployments::app::format_duration(doc.effective_timeout()),
        versions: versions.into_iter().rev().map(|(v, at, origin)| VersionRow { version: v, at: when(&at), origin }).collect(),
        source,
    };
    Ok(html(StatusCode::OK, &page))
}

/// A line of the typed text, with the errors that name it.
pub(crate) struct SourceLine {
    number: usize,
    text: String,
    errors: Vec<String>,
}

#[derive(Template)]
#[template(path = "application_edit.html")]
struct EditPage {
    c: Chrome,
    /// Editing an existing application (its name is fixed).
    editing: bool,
    name: String,
    source: String,
    errors: FormErrors,
    doc_errors: Vec<AppError>,
    lines: Vec<SourceLine>,
}

/// The typed text's lines, with each error next to the line it names.
pub(crate) fn annotate(source: &str, errors: &[AppError]) -> Vec<SourceLine> {
    source
        .lines()
        .enumerate()
        .map(|(i, l)| SourceLine {
            number: i + 1,
            text: l.to_string(),
            errors: errors.iter().filter(|e| e.line == Some(i + 1)).map(ToString::to_string).collect(),
        })
        .collect()
}

fn edit_page(ui: &Ctx, editing: bool, name: String, source: String, errors: FormErrors, doc_errors: Vec<AppError>) -> HttpResponse {
    let title = if editing { format!("Edit application {name}") } else { "New application".into() };
    let lines = if doc_errors.is_empty() { Vec::new() } else { annotate(&source, &doc_errors) };
    let status = if errors.any() || !doc_errors.is_empty() { StatusCode::BAD_REQUEST } else { StatusCode::OK };
    html(status, &EditPage { c: ui.chrome("applications", title), editing, name, source, errors, doc_errors, lines })
}

async fn new_form(ui: Ctx) -> UiResult {
    ui.actor().require_act()?;
    Ok(edit_page(&ui, false, String::new(), TEMPLATE.into(), FormErrors::none(), vec![]))
}

async fn edit_form(ui: Ctx, name: web::Path<String>) -> UiResult {
    let name = name_in_path(&name)?;
    let app = ui.broker.applications.get(ui.actor(), &name, None).await?;
    if let Some(file) = ui.broker.applications.declared_in(&name) {
        return Err(UiError::Service(ServiceError::Conflict(format!(
            "Application {name} is declared in {file}: it is read-only here; edit the file and reload the configuration."
        ))));
    }
    Ok(edit_page(&ui, true, name.to_string(), app.source, FormErrors::none(), vec![]))
}

#[derive(Deserialize)]
struct EditForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    source: String,
}

/// Saves the text; on errors the form comes back with the text as typed.
async fn save(ui: &Ctx, editing: bool, name: String, source: String) -> HttpResponse {
    // Browsers send CRLF line ends from a textarea: store the text as typed, with LF.
    let source = source.replace("\r\n", "\n");
    let app_name = match AppName::parse(name.trim()) {
        Ok(n) => n,
        Err(m) => return edit_page(ui, editing, name, source, FormErrors::field("name", m), vec![]),
    };
    match ui.broker.applications.save(ui.actor(), &app_name, &source).await {
        Ok(a) => ui.redirect_with(&format!("/applications/{app_name}"), &format!("Application {app_name} saved: version {}", a.version)),
        Err(ServiceError::InvalidDocument(errs)) => {
            let n = errs.len();
            edit_page(
                ui,
                editing,
                name,
                source,
                FormErrors::general(format!("The document has {n} error(s), listed below: nothing was saved.")),
                errs,
            )
        }
        Err(e) => edit_page(ui, editing, name, source, FormErrors::from_service(&e, &["name"]), vec![]),
    }
}

async fn create(ui: Ctx, form: CsrfForm<EditForm>) -> UiResult {
    ui.actor().require_act()?;
    let f = form.into_inner();
    Ok(save(&ui, false, f.name, f.source).await)
}

async fn update(ui: Ctx, name: web::Path<String>, form: CsrfForm<EditForm>) -> UiResult {
    let name = name_in_path(&name)?;
    Ok(save(&ui, true, name.to_string(), form.into_inner().source).await)
}

async fn delete(ui: Ctx, name: web::Path<String>, _: CsrfForm) -> UiResult {
    let name = name_in_path(&name)?;
    ui.broker.applications.delete(ui.actor(), &name).await?;
    Ok(ui.redirect_with("/applications", &format!("Application {name} deleted")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_sit_next_to_their_lines() {
        let errs = vec![AppError { path: "nodes.web.depends_on[0]".into(), message: "no node 'dbx'".into(), line: Some(2) }];
        let lines = annotate("nodes:\n  web: {depends_on: [dbx]}\n", &errs);
        assert_eq!(lines.len(), 2);
        assert!(lines[0].errors.is_empty());
        assert_eq!(lines[1].errors, vec!["nodes.web.depends_on[0]: no node 'dbx'".to_string()]);
    }
}
