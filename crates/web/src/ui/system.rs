//! Configuration → System (admin): *Basics* (`cloud.connector.class`),
//! *Advanced* (the broker-wide parameters), then one section per connector
//! instance built from its connector's parameter descriptions, each value
//! with its origin (set here by whom and when / a `connectors.d` file and
//! line, read-only / the default). A save sends only what changed, all or
//! nothing; a refused value comes back next to its field with everything
//! typed kept. *Reload configuration files* says what changed and what
//! failed. The connectors overview shows kind, status and VM counts.
//!
//! With many instances the page stays usable without script: an index at
//! the top links every section (with its state), each section is a
//! `<details>` open when it has an error, was just saved (or declared), was
//! open when the form was sent (a hidden `open` field carries that across a
//! save), or is asked for (`?open=a,b`, `?open=all`); the others are closed
//! (their values are still sent). Basics is always open; Save sits in a
//! bar that stays at the bottom of the window.

use super::context::{CsrfForm, Ctx};
use super::errors::UiResult;
use super::form::{plain, when, FormErrors};
use super::{html, page, Chrome};
use actix_web::web;
use askama::Template;
use cloudbroker_connector_api::params::{validate_value, ParamSpec, ParamType};
use cloudbroker_core::registry::{EffectiveParam, InstanceEntry, Origin, Status, SYSTEM_PARAMS};
use cloudbroker_core::ServiceError;
use std::collections::{BTreeMap, BTreeSet};

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
    /// Shown open (see the module's doc).
    open: bool,
}

impl Section {
    /// How many of its fields have an error in this form.
    fn field_errors(&self) -> usize {
        self.fields.iter().filter(|f| f.error.is_some()).count()
    }

    /// How many values are set here (in the database, not by a file or default).
    fn set_here(&self) -> usize {
        self.fields.iter().filter(|f| f.origin.starts_with("set here")).count()
    }

    /// Whether anything in it needs fixing (its instance's state or a field).
    fn has_error(&self) -> bool {
        !self.errors.is_empty() || self.field_errors() > 0
    }
}

/// The sections shown open: `all`, `basics`, `advanced` or instance names.
type Open = BTreeSet<String>;

/// The section a parameter key belongs to.
fn section_of(key: &str) -> String {
    if key == "cloud.connector.class" {
        "basics".into()
    } else if SYSTEM_PARAMS.iter().any(|s| s.name == key) {
        "advanced".into()
    } else {
        key.split('.').next().unwrap_or_default().to_string()
    }
}

/// The sections a comma-separated list names (from `?open=` or the form's `open` field).
fn open_of(list: Option<&String>) -> Open {
    list.map(|l| l.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect()).unwrap_or_default()
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
    /// Advanced shown open.
    advanced_open: bool,
    /// Advanced's fields with an error.
    advanced_errors: usize,
    /// What the hidden `open` field carries (the sections open now).
    open_list: String,
}

impl SystemPage {
    /// Every section open (`?open=all`).
    fn all_open(&self) -> bool {
        self.open_list == "all"
    }
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
        ParamType::Percents { min, max } => format!("comma-separated whole percents {min}–{max}, e.g. 50,80,100"),
        ParamType::CloudId { prefix } => format!("a cloud id such as {prefix}-0a1b2c3d"),
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

fn section(i: &InstanceEntry, typed: &BTreeMap<String, String>, errs: &FormErrors, declared_here: &[String], open: &Open) -> Section {
    let twice = declared_here.iter().any(|n| n == i.name.as_str());
    let mut s = Section {
        id: i.name.to_string(),
        title: i.name.to_string(),
        kind: i.kind.to_string(),
        declared_by: match &i.declared_by {
            Origin::File { file, line } if twice => format!(
                "declared in {}:{line}, and in Basics here too: the file wins (files always win over what is set here)",
                file.display()
            ),
            Origin::File { file, line } => format!("declared in {}:{line}", file.display()),
            Origin::Ui { updated_by, updated_at } => format!("declared here by {updated_by} on {}", when(updated_at)),
            Origin::Default => "declared by default".into(),
        },
        errors: match &i.status {
            Status::Ready => vec![],
            Status::Error { errors } => errors.iter().map(|e| plain(e)).collect(),
        },
        fields: i.params.iter().map(|p| field(p, typed, errs)).collect(),
        open: false,
    };
    s.open = open.contains("all") || open.contains(&s.id) || s.has_error();
    s
}

fn render(ui: &Ctx, typed: &BTreeMap<String, String>, errs: FormErrors, open: &Open) -> UiResult {
    let (actor, broker) = (ui.actor(), &ui.broker);
    let cfg = broker.system.config(actor)?;
    let system: Vec<&EffectiveParam> =
        cfg.params.iter().filter(|p| p.key == "cloud.connector.class" || SYSTEM_PARAMS.iter().any(|s| s.name == p.key)).collect();
    let basics = system.iter().filter(|p| p.key == "cloud.connector.class").map(|p| field(p, typed, &errs)).collect();
    let advanced: Vec<Field> = system.iter().filter(|p| p.key != "cloud.connector.class").map(|p| field(p, typed, &errs)).collect();
    let advanced_errors = advanced.iter().filter(|f| f.error.is_some()).count();
    // The instances Basics declares here (a file may declare them too: the file wins).
    let declared_here: Vec<String> = system
        .iter()
        .find(|p| p.key == "cloud.connector.class" && matches!(p.origin, Origin::Ui { .. }))
        .and_then(|p| p.value.clone())
        .unwrap_or_default()
        .split(',')
        .filter_map(|e| e.split_once(':').map(|(n, _)| n.trim().to_string()))
        .collect();
    let instances: Vec<Section> = broker.system.connectors(actor).iter().map(|i| section(i, typed, &errs, &declared_here, open)).collect();
    let advanced_open = open.contains("all") || open.contains("advanced") || advanced_errors > 0;
    let open_list = if open.contains("all") {
        "all".to_string()
    } else {
        let mut names: Vec<String> = instances.iter().filter(|s| s.open).map(|s| s.id.clone()).collect();
        if advanced_open {
            names.insert(0, "advanced".into());
        }
        names.join(",")
    };
    let problems = cfg.file_errors.iter().chain(cfg.errors.iter()).map(|p| plain(p)).collect();
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
            advanced_open,
            advanced_errors,
            open_list,
        },
    ))
}

async fn show(ui: Ctx, q: web::Query<BTreeMap<String, String>>) -> UiResult {
    render(&ui, &BTreeMap::new(), FormErrors::none(), &open_of(q.get("open")))
}

/// The key a configuration error names (its first quoted word), when the form sent it.
fn key_of_error(message: &str, sent: &BTreeMap<String, String>) -> Option<String> {
    let start = message.find('\'')? + 1;
    let len = message[start..].find('\'')?;
    let key = &message[start..start + len];
    sent.contains_key(&field_name(key)).then(|| field_name(key))
}

async fn save(ui: Ctx, form: CsrfForm<BTreeMap<String, String>>) -> UiResult {
    let form = form.into_inner();
    // The sections open when the form was sent stay open.
    let mut open = open_of(form.get("open"));
    let typed: BTreeMap<String, String> = form.into_iter().filter(|(k, _)| k.starts_with("p.")).collect();
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
        return Ok(ui.redirect_with(&system_url(&open), "Nothing changed"));
    }
    // What this save touches is shown open, and the instances it declares.
    for (key, v) in &changes {
        open.insert(section_of(key));
        if key == "cloud.connector.class" {
            open.extend(v.iter().flat_map(|c| c.split(',')).filter_map(|e| e.split_once(':')).map(|(n, _)| n.trim().to_string()));
        }
    }
    // Every refused value at once (the service stops at the first).
    let mut errs = FormErrors::none();
    for (key, v) in &changes {
        let Some(p) = cfg.params.iter().find(|p| &p.key == key) else { continue };
        let problem = match (&p.origin, v) {
            (Origin::File { file, line }, _) => Some(format!("'{key}' is managed by {}:{line}; edit the file and reload", file.display())),
            (_, Some(v)) => validate_value(&p.spec, v).err().map(|m| format!("{key}: {m}")),
            (_, None) => None,
        };
        if let Some(m) = problem {
            errs.add(&field_name(key), m);
        }
    }
    if errs.any() {
        errs.general = Some("Nothing was saved; everything typed is kept.".into());
        return render(&ui, &typed, errs, &open);
    }
    match ui.broker.system.set(ui.actor(), &changes).await {
        Ok(out) => {
            let mut msg =
                format!("Saved {} value(s): {}", changes.len(), changes.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>().join(", "));
            for w in declared_twice(&ui, &changes) {
                msg.push_str(&format!(". {w}"));
            }
            if !out.errors.is_empty() || !out.file_errors.is_empty() {
                msg.push_str(&format!(
                    "; the configuration has {} problem(s), listed at the top",
                    out.errors.len() + out.file_errors.len()
                ));
            }
            Ok(ui.redirect_with(&system_url(&open), &msg))
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
            render(&ui, &typed, errs, &open)
        }
    }
}

/// The System page with `open` sections open.
fn system_url(open: &Open) -> String {
    let open: Vec<&str> = open.iter().map(String::as_str).filter(|s| *s != "basics").collect();
    if open.is_empty() {
        "/admin/system".into()
    } else {
        format!("/admin/system?open={}", super::urlencode(&open.join(",")))
    }
}

/// The instances a save of `cloud.connector.class` declares here that a
/// `connectors.d` file declares too, each said with which declaration wins
/// and why (files win: the one made here is ignored while the file declares it).
fn declared_twice(ui: &Ctx, changes: &[(String, Option<String>)]) -> Vec<String> {
    let Some((_, Some(class))) = changes.iter().find(|(k, _)| k == "cloud.connector.class") else { return Vec::new() };
    let snap = ui.broker.registry.snapshot();
    class
        .split(',')
        .filter_map(|entry| {
            let (name, kind) = entry.split_once(':')?;
            let (name, kind) = (name.trim(), kind.trim());
            let i = snap.instance(name)?;
            let Origin::File { file, line } = &i.declared_by else { return None };
            Some(if i.kind.as_str() == kind {
                format!(
                    "{name} is also declared in {}:{line}: the file's declaration wins (files always win over what is set here), so the one made here changes nothing",
                    file.display()
                )
            } else {
                format!(
                    "{name} is declared as {} in {}:{line}: the file wins (files always win over what is set here), so it stays {} and the {kind} declared here is ignored",
                    i.kind,
                    file.display(),
                    i.kind
                )
            })
        })
        .collect()
}

/// What a snapshot holds that a reload may change: instances (kind,
/// ready, values), the files read, and the images and applications files give.
struct Seen {
    instances: BTreeMap<String, (String, bool, Vec<String>)>,
    files: Vec<String>,
    images: Vec<String>,
    applications: usize,
}

impl Seen {
    fn of(s: &cloudbroker_core::registry::Snapshot) -> Self {
        Self {
            instances: s
                .instances
                .iter()
                .map(|i| {
                    let vals = i.params.iter().map(|p| format!("{}={:?}", p.key, p.value)).collect();
                    (i.name.to_string(), (i.kind.to_string(), i.status == Status::Ready, vals))
                })
                .collect(),
            files: s.files.iter().map(|f| f.display().to_string()).collect(),
            images: s.file_images.iter().map(|(name, on)| format!("{name}={on:?}")).collect(),
            applications: s.file_applications.len(),
        }
    }
}

/// How a reload's flash starts when something failed (shown amber).
pub(super) const RELOAD_FAILED: &str = "Reloaded with problems:";

async fn reload(ui: Ctx, _: CsrfForm) -> UiResult {
    let broker = &ui.broker;
    let before = Seen::of(&broker.registry.snapshot());
    let out = broker.system.reload(ui.actor()).await?;
    let snap = broker.registry.snapshot();
    let after = Seen::of(&snap);
    let mut said = Vec::new();
    for (name, (kind, ready, vals)) in &after.instances {
        match before.instances.get(name) {
            None => said.push(format!("added {name} ({kind}{})", if *ready { "" } else { ", in error" })),
            Some(b) if &b.2 != vals || b.1 != *ready => said.push(format!("changed {name}{}", if *ready { "" } else { " (now in error)" })),
            _ => {}
        }
    }
    for name in before.instances.keys().filter(|n| !after.instances.contains_key(*n)) {
        said.push(format!("removed {name}"));
    }
    for f in after.files.iter().filter(|f| !before.files.contains(f)) {
        said.push(format!("read the new file {f}"));
    }
    for f in before.files.iter().filter(|f| !after.files.contains(f)) {
        said.push(format!("no longer reads {f}"));
    }
    if before.images != after.images {
        said.push(format!("images from files: {} (were {})", after.images.len(), before.images.len()));
    }
    if before.applications != after.applications {
        said.push(format!("applications from files: {} (were {})", after.applications, before.applications));
    }
    let changed = if said.is_empty() { "nothing changed".to_string() } else { said.join(", ") };
    let failed = out.file_errors.len() + snap.rejected.len();
    let msg = if failed == 0 {
        format!("Configuration files reloaded: {changed}")
    } else {
        let mut m = format!("{RELOAD_FAILED} {} file error(s)", out.file_errors.len());
        if !snap.rejected.is_empty() {
            m.push_str(&format!(", instance(s) not loaded: {}", snap.rejected.join(", ")));
        }
        m.push_str(&format!(" (each listed under Problems below). Configuration files reloaded otherwise: {changed}"));
        m
    };
    Ok(ui.redirect_with("/admin/system", &msg))
}

struct ConnectorRow {
    name: String,
    kind: String,
    declared_by: String,
    /// `ready`, `error` or `not loaded` (its file has errors).
    state: &'static str,
    problem: String,
    by_state: String,
    live: i64,
}

impl ConnectorRow {
    fn ready(&self) -> bool {
        self.state == "ready"
    }
}

#[derive(Template)]
#[template(path = "admin_connectors.html")]
struct ConnectorsPage {
    c: Chrome,
    rows: Vec<ConnectorRow>,
    /// Problems of the files and of values set here (the System page's list).
    problems: Vec<String>,
}

async fn connectors(ui: Ctx) -> UiResult {
    let (actor, broker) = (ui.actor(), &ui.broker);
    let counts = broker.provisioning.vm_counts(actor, None).await?;
    let count_of = |name: &str| {
        let mut by: BTreeMap<String, i64> = BTreeMap::new();
        for c in counts.iter().filter(|c| c.instance == name) {
            *by.entry(c.state.clone()).or_default() += c.count;
        }
        (by.values().sum::<i64>(), by.iter().map(|(s, n)| format!("{s} {n}")).collect::<Vec<_>>().join(", "))
    };
    let mut rows: Vec<ConnectorRow> = broker
        .system
        .connectors(actor)
        .iter()
        .map(|i| {
            let name = i.name.to_string();
            let (state, problem) = match &i.status {
                Status::Ready => ("ready", String::new()),
                Status::Error { errors } => ("error", plain(&errors.join("; "))),
            };
            let (live, by_state) = count_of(&name);
            ConnectorRow {
                kind: i.kind.to_string(),
                declared_by: origin_text(&i.declared_by).replace(" (read-only here: edit that file, then reload)", ""),
                state,
                problem,
                live,
                by_state,
                name,
            }
        })
        .collect();
    let snap = broker.registry.snapshot();
    for name in &snap.rejected {
        // The file's errors that name this instance (or all of them, when none does).
        let about: Vec<&String> =
            snap.file_errors.iter().filter(|e| e.contains(&format!("{name}.")) || e.contains(&format!("'{name}'"))).collect();
        let problem =
            if about.is_empty() { snap.file_errors.join("; ") } else { about.iter().map(|e| e.as_str()).collect::<Vec<_>>().join("; ") };
        let (live, by_state) = count_of(name);
        rows.push(ConnectorRow {
            name: name.clone(),
            kind: String::new(),
            declared_by: "a file with errors".into(),
            state: "not loaded",
            problem: plain(&format!("its file has errors, so it serves nothing: {problem}")),
            live,
            by_state,
        });
    }
    rows.sort_by(|a, b| a.name.cmp(&b.name));
    let problems = snap.file_errors.iter().chain(snap.errors.iter()).map(|p| plain(p)).collect();
    Ok(page(&ConnectorsPage { c: ui.chrome("admin/connectors", "Connectors"), rows, problems }))
}
