//! Configuration → System (admin): *Basics* (`cloud.connector.class`),
//! *Advanced* (the broker-wide parameters), then one section per connector
//! instance built from its connector's parameter descriptions, each value
//! with its origin (set here by whom and when / a `connectors.d` file and
//! line, read-only / the default). A save sends only what changed, all or
//! nothing; a refused value comes back next to its field with everything
//! typed kept. *Reload configuration files* says what changed and what
//! failed. The connectors overview shows kind, status and VM counts.

use super::context::{CsrfForm, Ctx};
use super::errors::UiResult;
use super::form::{when, FormErrors};
use super::{html, page, Chrome};
use actix_web::web;
use askama::Template;
use cloudbroker_connector_api::params::{ParamSpec, ParamType};
use cloudbroker_core::registry::{EffectiveParam, InstanceEntry, Origin, Status, SYSTEM_PARAMS};
use cloudbroker_core::ServiceError;
use std::collections::BTreeMap;

pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/system", web::get().to(show))
        .route("/system", web::post().to(save))
        .route("/system/reload", web::post().to(reload))
        .route("/connectors", web::get().to(connectors));
}

/// The name of a parameter's form field.
fn field_name(key: &str) -> String {
    format!("p.{key}")
}

/// One parameter as a form field.
struct Field {
    key: String,
    name: String,
    label: String,
    help: String,
    /// `text`, `select`.
    widget: &'static str,
    options: Vec<String>,
    value: String,
    placeholder: String,
    required: bool,
    secret: bool,
    readonly: bool,
    origin: String,
    overridden: String,
    error: Option<String>,
}

struct Section {
    id: String,
    title: String,
    kind: String,
    declared_by: String,
    errors: Vec<String>,
    fields: Vec<Field>,
}

#[derive(Template)]
#[template(path = "admin_system.html")]
struct SystemPage {
    c: Chrome,
    basics: Vec<Field>,
    advanced: Vec<Field>,
    instances: Vec<Section>,
    problems: Vec<String>,
    files: Vec<String>,
    /// The connector kinds this broker was built with (`ec2, ec2query, sandbox`).
    kinds: String,
    errors: FormErrors,
}

pub(super) fn origin_text(o: &Origin) -> String {
    match o {
        Origin::File { file, line } => format!("from {}:{line} (read-only here: edit that file, then reload)", file.display()),
        Origin::Ui { updated_by, updated_at } => format!("set here by {updated_by} on {}", when(updated_at)),
        Origin::Default => "default".into(),
    }
}

fn type_help(spec: &ParamSpec) -> String {
    match &spec.ty {
        ParamType::String => "text".into(),
        ParamType::Int { min, max } => format!("whole number {min}–{max}"),
        ParamType::Float { min, max } => format!("number {min}–{max}"),
        ParamType::Bool => "true or false".into(),
        ParamType::Url => "http:// or https:// URL".into(),
        ParamType::Enum { values } => format!("one of {}", values.join(", ")),
        ParamType::List => "comma-separated list".into(),
        ParamType::TagRules => "comma-separated tag keys, each optionally key=(a|b|c)".into(),
        ParamType::Duration => "a duration such as 8h, 90m or 1d12h".into(),
        ParamType::Amount => "an amount in the broker's currency, e.g. 25 or 99.50".into(),
    }
}

/// What the form shows for a stored value: set values, empty for defaults
/// and for secrets (never rendered back).
fn shown_value(p: &EffectiveParam) -> String {
    match (&p.origin, p.spec.secret) {
        (_, true) | (Origin::Default, _) => String::new(),
        _ => p.value.clone().unwrap_or_default(),
    }
}

fn field(p: &EffectiveParam, typed: &BTreeMap<String, String>, errs: &FormErrors) -> Field {
    let name = field_name(&p.key);
    let readonly = matches!(p.origin, Origin::File { .. });
    let (widget, options) = match &p.spec.ty {
        ParamType::Bool => ("select", vec!["true".to_string(), "false".to_string()]),
        ParamType::Enum { values } => ("select", values.iter().map(|v| v.to_string()).collect()),
        _ => ("text", vec![]),
    };
    let value = if readonly {
        p.value.clone().unwrap_or_default()
    } else {
        typed.get(&name).cloned().filter(|_| !p.spec.secret).unwrap_or_else(|| shown_value(p))
    };
    let placeholder = match (p.spec.secret, p.spec.default) {
        (true, _) if p.value.is_some() => "(set — leave empty to keep)".to_string(),
        (_, Some(d)) => format!("default: {d}"),
        _ if p.spec.required => "required".into(),
        _ => "unset".into(),
    };
    Field {
        key: p.key.clone(),
        label: p.spec.name.to_string(),
        help: format!("{} ({}{})", p.spec.description, type_help(&p.spec), if p.spec.required { ", required" } else { "" }),
        widget,
        options,
        value,
        placeholder,
        required: p.spec.required,
        secret: p.spec.secret,
        readonly,
        origin: origin_text(&p.origin),
        overridden: p.overridden_ui_value.clone().map(|v| format!("a value set here ({v}) is overridden by the file")).unwrap_or_default(),
        error: errs.of(&name).map(str::to_string),
        name,
    }
}

fn section(i: &InstanceEntry, typed: &BTreeMap<String, String>, errs: &FormErrors) -> Section {
    Section {
        id: i.name.to_string(),
        title: i.name.to_string(),
        kind: i.kind.to_string(),
        declared_by: match &i.declared_by {
            Origin::File { file, line } => format!("declared in {}:{line}", file.display()),
            Origin::Ui { updated_by, updated_at } => format!("declared here by {updated_by} on {}", when(updated_at)),
            Origin::Default => "declared by default".into(),
        },
        errors: match &i.status {
            Status::Ready => vec![],
            Status::Error { errors } => errors.clone(),
        },
        fields: i.params.iter().map(|p| field(p, typed, errs)).collect(),
    }
}

fn render(ui: &Ctx, typed: &BTreeMap<String, String>, errs: FormErrors) -> UiResult {
    let (actor, broker) = (ui.actor(), &ui.broker);
    let cfg = broker.system.config(actor)?;
    let system: Vec<&EffectiveParam> =
        cfg.params.iter().filter(|p| p.key == "cloud.connector.class" || SYSTEM_PARAMS.iter().any(|s| s.name == p.key)).collect();
    let basics = system.iter().filter(|p| p.key == "cloud.connector.class").map(|p| field(p, typed, &errs)).collect();
    let advanced = system.iter().filter(|p| p.key != "cloud.connector.class").map(|p| field(p, typed, &errs)).collect();
    let instances = broker.system.connectors(actor).iter().map(|i| section(i, typed, &errs)).collect();
    let problems = cfg.file_errors.iter().chain(cfg.errors.iter()).cloned().collect();
    Ok(html(
        errs.status(),
        &SystemPage {
            c: ui.chrome("admin/system", "Configuration → System"),
            basics,
            advanced,
            instances,
            problems,
            files: cfg.files.iter().map(|f| f.display().to_string()).collect(),
            kinds: ui.broker.registry.kinds().iter().map(|k| k.as_str()).collect::<Vec<_>>().join(", "),
            errors: errs,
        },
    ))
}

async fn show(ui: Ctx) -> UiResult {
    render(&ui, &BTreeMap::new(), FormErrors::none())
}

/// The key a configuration error names (its first quoted word), when the form sent it.
fn key_of_error(message: &str, sent: &BTreeMap<String, String>) -> Option<String> {
    let start = message.find('\'')? + 1;
    let len = message[start..].find('\'')?;
    let key = &message[start..start + len];
    sent.contains_key(&field_name(key)).then(|| field_name(key))
}

async fn save(ui: Ctx, form: CsrfForm<BTreeMap<String, String>>) -> UiResult {
    let typed: BTreeMap<String, String> = form.into_inner().into_iter().filter(|(k, _)| k.starts_with("p.")).collect();
    let cfg = ui.broker.system.config(ui.actor())?;
    // Only what changed: fields left as shown are not sent.
    let mut changes = Vec::new();
    for p in &cfg.params {
        let Some(v) = typed.get(&field_name(&p.key)) else { continue };
        let v = v.trim();
        // A file's value has no named field; a forged one that differs is sent to be refused.
        let unchanged = match p.origin {
            Origin::File { .. } => Some(v) == p.value.as_deref(),
            _ => (p.spec.secret && v.is_empty()) || v == shown_value(p),
        };
        if unchanged {
            continue;
        }
        changes.push((p.key.clone(), (!v.is_empty()).then(|| v.to_string())));
    }
    // A new declaration's parameters are not in the configuration yet: nothing to compare.
    for (k, v) in &typed {
        let key = &k[2..];
        if !cfg.params.iter().any(|p| p.key == key) && !v.trim().is_empty() {
            changes.push((key.to_string(), Some(v.trim().to_string())));
        }
    }
    if changes.is_empty() {
        return Ok(ui.redirect_with("/admin/system", "Nothing changed"));
    }
    match ui.broker.system.set(ui.actor(), &changes).await {
        Ok(out) => {
            let mut msg =
                format!("Saved {} value(s): {}", changes.len(), changes.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>().join(", "));
            if !out.errors.is_empty() || !out.file_errors.is_empty() {
                msg.push_str(&format!(
                    "; the configuration has {} problem(s), listed at the top",
                    out.errors.len() + out.file_errors.len()
                ));
            }
            Ok(ui.redirect_with("/admin/system", &msg))
        }
        Err(e) => {
            let errs = match &e {
                ServiceError::Invalid { .. } | ServiceError::Conflict(_) => match key_of_error(&e.to_string(), &typed) {
                    Some(f) => FormErrors::field(&f, e.to_string()),
                    None => FormErrors::general(e.to_string()),
                },
                _ if e.is_internal() => return Err(e.into()),
                _ => FormErrors::general(super::form::friendly(&e)),
            };
            let mut errs = errs;
            if errs.general.is_none() {
                errs.general = Some("Nothing was saved: fix the value marked below and save again.".into());
            }
            render(&ui, &typed, errs)
        }
    }
}

async fn reload(ui: Ctx, _: CsrfForm) -> UiResult {
    let (actor, broker) = (ui.actor(), &ui.broker);
    let describe = |v: &[InstanceEntry]| -> BTreeMap<String, (String, bool, Vec<String>)> {
        v.iter()
            .map(|i| {
                let vals = i.params.iter().map(|p| format!("{}={:?}", p.key, p.value)).collect();
                (i.name.to_string(), (i.kind.to_string(), i.status == Status::Ready, vals))
            })
            .collect()
    };
    let before = describe(&broker.system.connectors(actor));
    let out = broker.system.reload(actor).await?;
    let after = describe(&broker.system.connectors(actor));
    let mut said = Vec::new();
    for (name, (kind, ready, _)) in &after {
        match before.get(name) {
            None => said.push(format!("added {name} ({kind}{})", if *ready { "" } else { ", in error" })),
            Some(b) if b.2 != after[name].2 || b.1 != *ready => {
                said.push(format!("changed {name}{}", if *ready { "" } else { " (now in error)" }))
            }
            _ => {}
        }
    }
    for name in before.keys().filter(|n| !after.contains_key(*n)) {
        said.push(format!("removed {name}"));
    }
    let mut msg = format!("Configuration files reloaded: {}", if said.is_empty() { "nothing changed".into() } else { said.join(", ") });
    if !out.file_errors.is_empty() {
        msg.push_str(&format!(". Failed: {}", out.file_errors.join("; ")));
    }
    Ok(ui.redirect_with("/admin/system", &msg))
}

struct ConnectorRow {
    name: String,
    kind: String,
    declared_by: String,
    ready: bool,
    problem: String,
    by_state: String,
    live: i64,
}

#[derive(Template)]
#[template(path = "admin_connectors.html")]
struct ConnectorsPage {
    c: Chrome,
    rows: Vec<ConnectorRow>,
}

async fn connectors(ui: Ctx) -> UiResult {
    let (actor, broker) = (ui.actor(), &ui.broker);
    let counts = broker.provisioning.vm_counts(actor, None).await?;
    let rows = broker
        .system
        .connectors(actor)
        .iter()
        .map(|i| {
            let name = i.name.to_string();
            let mut by: BTreeMap<&str, i64> = BTreeMap::new();
            for c in counts.iter().filter(|c| c.instance == name) {
                *by.entry(c.state.as_str()).or_default() += c.count;
            }
            let (ready, problem) = match &i.status {
                Status::Ready => (true, String::new()),
                Status::Error { errors } => (false, errors.join("; ")),
            };
            ConnectorRow {
                kind: i.kind.to_string(),
                declared_by: origin_text(&i.declared_by).replace(" (read-only here: edit that file, then reload)", ""),
                ready,
                problem,
                live: by.values().sum(),
                by_state: by.iter().map(|(s, n)| format!("{s} {n}")).collect::<Vec<_>>().join(", "),
                name,
            }
        })
        .collect();
    Ok(page(&ConnectorsPage { c: ui.chrome("admin/connectors", "Connectors"), rows }))
}
