//! Deployments in the UI (issue 27): the Deploy form of an application
//! (`/applications/{name}/deploy`: a field per input not filled by a
//! mapping, secret ones as password fields that are never sent back; per
//! node a select of the connector instances the user may use — those the
//! VM launch form offers, narrowed to the node's `instances` — and its
//! number of VMs; on failure and timeout; a dry run that says what would
//! be launched where; a refusal comes back at the top or next to its field
//! with everything typed kept but secrets), the list `/deployments`, and a
//! deployment's page `/deployments/{id}`: the server-rendered SVG diagram
//! ([`super::deploy_diagram`]), its nodes and VMs, who waits on what, the
//! parameters (secrets masked), the event timeline. The list and the page
//! refresh themselves while something is in progress; they hold no form
//! (Scale, Abort and Terminate are pages of their own: scale shows the
//! plan, then applies it on a confirm; terminate and abort ask first), so
//! nothing typed is lost to a refresh. A viewer gets no form nor button,
//! and a forged one is refused with the reason as the flash.

use super::context::{CsrfForm, Ctx};
use super::deploy_diagram::{self, Diagram, DiagramMapping, DiagramMember, DiagramNode};
use super::errors::{UiError, UiResult};
use super::form::{friendly, when, FormErrors};
use super::{html, page, Chrome};
use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use askama::Template;
use cloudbroker_core::deployments::{AppDoc, AppName, Application, DeployRequest, Deployment, DeploymentState, OnFailure, Placement};
use cloudbroker_core::domain::{DeploymentId, InstanceName};
use cloudbroker_core::ServiceError;
use serde::Deserialize;
use std::collections::BTreeMap;

pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/applications/{name}/deploy", web::get().to(deploy_form))
        .route("/applications/{name}/deploy", web::post().to(deploy))
        .route("/deployments", web::get().to(list))
        .route("/deployments/{id}", web::get().to(detail))
        .route("/deployments/{id}/scale", web::get().to(scale_form))
        .route("/deployments/{id}/scale", web::post().to(scale))
        .route("/deployments/{id}/terminate", web::get().to(confirm_terminate))
        .route("/deployments/{id}/terminate", web::post().to(terminate))
        .route("/deployments/{id}/abort", web::get().to(confirm_abort))
        .route("/deployments/{id}/abort", web::post().to(abort));
}

/// How a refused change (a viewer's) starts its flash (shown as a refusal).
const REFUSED: &str = "Not allowed:";

fn app_in_path(s: &str) -> Result<AppName, UiError> {
    AppName::parse(s).map_err(|_| UiError::NotFound("No such application."))
}

fn deployment_in_path(s: &str) -> Result<DeploymentId, UiError> {
    DeploymentId::parse(s).map_err(|_| UiError::NotFound("No such deployment."))
}

// ---------------------------------------------------------------- deploy

/// One input field of the Deploy form.
struct InputField {
    /// The form field: `in.<name>` (deployment input) or `in.<node>.<name>`.
    field: String,
    /// The element id.
    id: String,
    label: String,
    description: String,
    default: String,
    secret: bool,
    required: bool,
    /// As typed (never a secret's).
    value: String,
}

/// One node of the Deploy form.
struct NodeField {
    name: String,
    image: String,
    instance_type: String,
    ready_when: &'static str,
    /// `db, cache`.
    depends_on: String,
    /// The instances offered.
    choices: Vec<String>,
    /// The instances the node may run on, in words.
    allowed: String,
    chosen: String,
    mult: String,
    place_field: String,
    mult_field: String,
    inputs: Vec<InputField>,
    /// `db_host ← db.hostname`.
    mapped: Vec<String>,
}

#[derive(Template)]
#[template(path = "deploy.html")]
struct DeployPage {
    c: Chrome,
    app: String,
    description: String,
    /// Newest first, with whether it is the one shown.
    versions: Vec<(i64, bool)>,
    can_act: bool,
    name: String,
    on_failure: String,
    timeout: String,
    default_timeout: String,
    inputs: Vec<InputField>,
    nodes: Vec<NodeField>,
    preview: Option<Vec<(String, String, u32)>>,
    errors: FormErrors,
}

/// The Deploy form as sent: every field by name (`name`, `version`,
/// `on_failure`, `timeout`, `action`, `in.*`, `place.<node>`, `mult.<node>`).
#[derive(Deserialize, Default)]
pub(super) struct DeployForm {
    #[serde(flatten)]
    f: BTreeMap<String, String>,
}

impl DeployForm {
    fn get(&self, k: &str) -> &str {
        self.f.get(k).map(|s| s.trim()).unwrap_or_default()
    }
}

#[derive(Deserialize)]
pub(super) struct VersionQuery {
    version: Option<String>,
}

/// The instances the user may launch on (as the VM launch form offers them).
fn open_instances(ui: &Ctx) -> Vec<String> {
    ui.broker.system.connectors(ui.actor()).iter().map(|i| i.name.to_string()).collect()
}

/// The inputs a form shows: deployment inputs, then node inputs not filled by a mapping.
fn form_fields(app: &Application, form: &DeployForm, open: &[String], fresh: bool) -> (Vec<InputField>, Vec<NodeField>) {
    let doc = &app.doc;
    let field = |key: String, label: String, p: &cloudbroker_core::deployments::ParamSpec| {
        let default = p.default.clone().unwrap_or_default();
        InputField {
            id: key.replace('.', "-"),
            value: if p.secret { String::new() } else { form.get(&key).to_string() },
            field: key,
            label,
            description: p.description.clone(),
            required: p.default.is_none(),
            secret: p.secret,
            default,
        }
    };
    let inputs = doc.inputs.iter().map(|p| field(format!("in.{}", p.name), p.name.clone(), p)).collect();
    let mut nodes = Vec::new();
    for name in doc.launch_order() {
        let Some(n) = doc.nodes.get(name) else { continue };
        let choices: Vec<String> = open.iter().filter(|i| n.instances.is_empty() || n.instances.iter().any(|a| a == *i)).cloned().collect();
        let place_field = format!("place.{name}");
        let mult_field = format!("mult.{name}");
        let chosen = match form.get(&place_field) {
            "" if choices.len() == 1 => choices[0].clone(),
            c => c.to_string(),
        };
        let mult = if fresh { n.multiplicity.to_string() } else { form.get(&mult_field).to_string() };
        let mut node_inputs = Vec::new();
        let mut mapped = Vec::new();
        for p in &n.inputs {
            match doc.mapping_of(name, &p.name) {
                Some((from, out)) => mapped.push(format!("{} ← {from}.{out}", p.name)),
                None => node_inputs.push(field(format!("in.{name}.{}", p.name), p.name.clone(), p)),
            }
        }
        nodes.push(NodeField {
            name: name.to_string(),
            image: n.image.clone(),
            instance_type: n.instance_type.clone().unwrap_or_default(),
            ready_when: n.ready_when.as_str(),
            depends_on: n.depends_on.join(", "),
            allowed: if n.instances.is_empty() { "any".into() } else { n.instances.join(", ") },
            choices,
            chosen,
            mult,
            place_field,
            mult_field,
            inputs: node_inputs,
            mapped,
        });
    }
    (inputs, nodes)
}

#[allow(clippy::too_many_arguments)]
async fn render_deploy(
    ui: &Ctx,
    app: &Application,
    form: &DeployForm,
    fresh: bool,
    preview: Option<Vec<(String, String, u32)>>,
    errors: FormErrors,
    status: StatusCode,
) -> HttpResponse {
    let mut versions: Vec<i64> =
        ui.broker.applications.versions(ui.actor(), &app.name).await.unwrap_or_default().into_iter().map(|(v, _, _)| v).collect();
    if !versions.contains(&app.version) {
        versions.push(app.version);
    }
    versions.sort_unstable_by(|a, b| b.cmp(a));
    let (inputs, nodes) = form_fields(app, form, &open_instances(ui), fresh);
    let on_failure = match form.get("on_failure") {
        "keep" => "keep",
        _ => "terminate",
    };
    let default_timeout = format!("default {}", cloudbroker_core::deployments::app::format_duration(app.doc.effective_timeout()));
    html(
        status,
        &DeployPage {
            c: ui.chrome("deployments", format!("Deploy {}", app.name)),
            app: app.name.to_string(),
            description: app.doc.description.clone(),
            versions: versions.into_iter().map(|v| (v, v == app.version)).collect(),
            can_act: ui.actor().require_act().is_ok(),
            name: form.get("name").to_string(),
            on_failure: on_failure.to_string(),
            timeout: form.get("timeout").to_string(),
            default_timeout,
            inputs,
            nodes,
            preview,
            errors,
        },
    )
}

/// The version a form or query names (`None`: the latest).
fn version_of(s: Option<&str>) -> Result<Option<i64>, UiError> {
    match s.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(v) => v.parse::<i64>().map(Some).map_err(|_| UiError::NotFound("No such version.")),
    }
}

async fn deploy_form(ui: Ctx, name: web::Path<String>, q: web::Query<VersionQuery>) -> UiResult {
    let name = app_in_path(&name)?;
    let app = ui.broker.applications.get(ui.actor(), &name, version_of(q.version.as_deref())?).await?;
    Ok(render_deploy(&ui, &app, &DeployForm::default(), true, None, FormErrors::none(), StatusCode::OK).await)
}

/// The request a Deploy form makes, or the messages next to its fields.
fn deploy_request(app: &Application, form: &DeployForm, open: &[String]) -> Result<DeployRequest, FormErrors> {
    let doc: &AppDoc = &app.doc;
    let mut errs = FormErrors::none();
    let mut inputs = BTreeMap::new();
    for p in &doc.inputs {
        let key = format!("in.{}", p.name);
        match form.get(&key) {
            "" if p.default.is_none() => errs.add(&key, format!("{} is required", p.name)),
            "" => {}
            v => {
                inputs.insert(p.name.clone(), v.to_string());
            }
        }
    }
    let mut placement = BTreeMap::new();
    for (name, n) in &doc.nodes {
        for p in &n.inputs {
            if doc.mapping_of(name, &p.name).is_some() {
                continue;
            }
            let key = format!("in.{name}.{}", p.name);
            match form.get(&key) {
                "" if p.default.is_none() => errs.add(&key, format!("{name}.{} is required", p.name)),
                "" => {}
                v => {
                    inputs.insert(format!("{name}.{}", p.name), v.to_string());
                }
            }
        }
        let place = format!("place.{name}");
        let instance = match form.get(&place) {
            "" => {
                errs.add(&place, format!("choose where {name} runs"));
                None
            }
            i => match InstanceName::parse(i) {
                Ok(i) if open.iter().any(|o| o == i.as_str()) => Some(i),
                _ => {
                    errs.add(&place, format!("'{}' is not a connector instance you may use", i.chars().take(64).collect::<String>()));
                    None
                }
            },
        };
        let mult_key = format!("mult.{name}");
        let multiplicity = match form.get(&mult_key) {
            "" => None,
            m => match m.parse::<u32>() {
                Ok(k) if k <= 100 => Some(k),
                _ => {
                    errs.add(&mult_key, "a whole number from 0 to 100");
                    None
                }
            },
        };
        if let Some(instance) = instance {
            placement.insert(name.clone(), Placement { instance, multiplicity, instance_type: None });
        }
    }
    let timeout = match crate::api::deployments::timeout_of(Some(form.get("timeout"))) {
        Ok(t) => t,
        Err(e) => {
            if let ServiceError::Invalid { message, .. } = e.0 {
                errs.add("timeout", message);
            }
            None
        }
    };
    let name = form.get("name");
    if name.chars().count() > 64 {
        errs.add("name", "at most 64 characters");
    }
    if errs.any() {
        errs.general.get_or_insert_with(|| "Some fields need your attention: see below. Nothing was launched.".to_string());
        return Err(errs);
    }
    Ok(DeployRequest {
        application: app.name.clone(),
        version: Some(app.version),
        name: (!name.is_empty()).then(|| name.to_string()),
        inputs,
        placement,
        on_failure: if form.get("on_failure") == "keep" { OnFailure::Keep } else { OnFailure::Terminate },
        timeout,
    })
}

async fn deploy(ui: Ctx, name: web::Path<String>, form: CsrfForm<DeployForm>) -> UiResult {
    let name = app_in_path(&name)?;
    let form = form.into_inner();
    let version = version_of(Some(form.get("version")))?;
    let app = ui.broker.applications.get(ui.actor(), &name, version).await?;
    if let Err(e) = ui.actor().require_act() {
        let errs = FormErrors::general(format!("{REFUSED} {}. Nothing was launched.", friendly(&e)));
        return Ok(render_deploy(&ui, &app, &form, false, None, errs, StatusCode::FORBIDDEN).await);
    }
    let request = match deploy_request(&app, &form, &open_instances(&ui)) {
        Ok(r) => r,
        Err(errs) => return Ok(render_deploy(&ui, &app, &form, false, None, errs, StatusCode::BAD_REQUEST).await),
    };
    let result = if form.get("action") == "preview" {
        ui.broker.deployments.preview(ui.actor(), &request).await.map(Err)
    } else {
        ui.broker.deployments.deploy(ui.actor(), request).await.map(Ok)
    };
    match result {
        Ok(Ok(d)) => {
            let vms: u32 = d.nodes.iter().map(|n| n.multiplicity).sum();
            Ok(ui.redirect_with(&format!("/deployments/{}", d.id), &format!("Deployed {} ({}): {vms} VM(s) admitted", d.name, d.id)))
        }
        Ok(Err(plan)) => Ok(render_deploy(&ui, &app, &form, false, Some(plan), FormErrors::none(), StatusCode::OK).await),
        Err(e) => {
            let status = match &e {
                ServiceError::Forbidden(_) => StatusCode::FORBIDDEN,
                ServiceError::NotFound(_) => StatusCode::NOT_FOUND,
                ServiceError::Invalid { .. } => StatusCode::BAD_REQUEST,
                _ => StatusCode::CONFLICT,
            };
            let mut errs = FormErrors::from_service(&e, &["name", "timeout", "on_failure", "version"]);
            if let Some(g) = errs.general.as_mut() {
                if !g.contains("Nothing was launched") {
                    g.push_str(" Nothing was launched.");
                }
            }
            Ok(render_deploy(&ui, &app, &form, false, None, errs, status).await)
        }
    }
}

// ---------------------------------------------------------------- list

struct DeploymentRow {
    id: String,
    name: String,
    application: String,
    version: i64,
    state: String,
    operation: String,
    message: String,
    nodes: usize,
    vms: usize,
    user: String,
    created: String,
}

impl DeploymentRow {
    fn of(d: &Deployment) -> Self {
        Self {
            id: d.id.to_string(),
            name: d.name.clone(),
            application: d.application.clone(),
            version: d.version,
            state: d.state.as_str().to_string(),
            operation: d.op.clone().unwrap_or_default(),
            message: d.message.clone().unwrap_or_default(),
            nodes: d.nodes.len(),
            vms: d.nodes.iter().map(|n| n.members.len()).sum(),
            user: d.user.clone(),
            created: when(&d.created_at),
        }
    }
}

/// Whether `d` is still moving (the pages showing it refresh themselves).
fn in_progress(d: &Deployment) -> bool {
    d.op.is_some() || matches!(d.state, DeploymentState::Provisioning | DeploymentState::Executing | DeploymentState::Terminating)
}

#[derive(Template)]
#[template(path = "deployments.html")]
struct ListPage {
    c: Chrome,
    rows: Vec<DeploymentRow>,
    /// (name, version, nodes, description).
    apps: Vec<(String, i64, String, String)>,
}

async fn list(ui: Ctx) -> UiResult {
    let actor = ui.actor();
    let mut all = ui.broker.deployments.list(actor).await?;
    // The current project's (admins too: theirs is the project they work in).
    all.retain(|d| d.project == actor.project.as_str());
    all.sort_by(|a, b| b.created_at.cmp(&a.created_at).then_with(|| b.id.as_str().cmp(a.id.as_str())));
    let apps = ui
        .broker
        .applications
        .list(actor)
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|a| (a.name.to_string(), a.version, a.nodes.join(", "), a.description))
        .collect();
    let mut c = ui.chrome("deployments", "Deployments");
    c.refresh = all.iter().any(in_progress);
    Ok(page(&ListPage { c, rows: all.iter().map(DeploymentRow::of).collect(), apps }))
}

// ---------------------------------------------------------------- detail

struct DepView {
    id: String,
    name: String,
    application: String,
    version: i64,
    state: String,
    on_failure: String,
    message: String,
    operation: String,
    user: String,
    project: String,
    created: String,
    deadline: String,
}

impl DepView {
    fn of(d: &Deployment) -> Self {
        Self {
            id: d.id.to_string(),
            name: d.name.clone(),
            application: d.application.clone(),
            version: d.version,
            state: d.state.as_str().to_string(),
            on_failure: d.on_failure.as_str().to_string(),
            message: d.message.clone().unwrap_or_default(),
            operation: d.op.clone().unwrap_or_default(),
            user: d.user.clone(),
            project: d.project.clone(),
            created: when(&d.created_at),
            deadline: d.deadline_at.as_ref().map(when).unwrap_or_default(),
        }
    }
}

struct MemberRow {
    idx: i64,
    attempt: i64,
    vm_id: String,
    vm_state: String,
    state: String,
}

struct NodeRow {
    name: String,
    instance: String,
    instance_type: String,
    state: String,
    depends_on: String,
    members: Vec<MemberRow>,
}

struct ParamRow {
    name: String,
    value: String,
    secret: bool,
    set_by: String,
    set_at: String,
}

struct EventRow {
    at: String,
    kind: String,
    message: String,
}

#[derive(Template)]
#[template(path = "deployment.html")]
struct DetailPage {
    c: Chrome,
    d: DepView,
    svg: String,
    nodes: Vec<NodeRow>,
    /// (`web #2`, `db_host`).
    waits: Vec<(String, String)>,
    params: Vec<ParamRow>,
    events: Vec<EventRow>,
    can_act: bool,
    can_scale: bool,
    can_abort: bool,
    can_terminate: bool,
}

/// The state a VM of a deployment shows in the diagram: `ready` once it
/// said so, `stopped` or `ended` once stopped or ended outside the
/// deployment, else its VM's state, else the member's.
fn member_state(m: &cloudbroker_core::deployments::MemberView) -> String {
    if matches!(m.state.as_str(), "ready" | "failed" | "stopped" | "ended") {
        return m.state.clone();
    }
    m.vm_state.map(|s| s.as_str().to_string()).unwrap_or_else(|| m.state.clone())
}

/// The diagram of `d` (its mappings from the application version it runs).
pub(super) fn diagram_of(d: &Deployment, doc: Option<&AppDoc>) -> Diagram {
    let nodes = d
        .nodes
        .iter()
        .map(|n| DiagramNode {
            name: n.name.clone(),
            placement: if n.instance_type.is_empty() { n.instance.clone() } else { format!("{} · {}", n.instance, n.instance_type) },
            state: n.state.clone(),
            depends_on: n.depends_on.clone(),
            members: n
                .members
                .iter()
                .map(|m| {
                    let mut title = m.vm_id.as_ref().map(ToString::to_string).unwrap_or_else(|| "no VM yet".into());
                    if !m.waiting_on.is_empty() {
                        title.push_str(&format!("; waits on {}", m.waiting_on.join(", ")));
                    }
                    DiagramMember { idx: m.idx, state: member_state(m), title }
                })
                .collect(),
        })
        .collect();
    let mappings = doc
        .map(|doc| {
            doc.mappings
                .iter()
                .filter_map(|(to, from)| {
                    let (to, input) = to.split_once('.')?;
                    let (from, output) = from.split_once('.')?;
                    Some(DiagramMapping { from: from.into(), output: output.into(), to: to.into(), input: input.into() })
                })
                .collect()
        })
        .unwrap_or_default();
    Diagram { nodes, mappings }
}

async fn detail(ui: Ctx, id: web::Path<String>) -> UiResult {
    let id = deployment_in_path(&id)?;
    let actor = ui.actor();
    let d = ui.broker.deployments.get(actor, &id).await?;
    let params = ui.broker.deployments.params(actor, &id).await?;
    let events = ui.broker.deployments.events(actor, &id).await?;
    let app = match AppName::parse(&d.application) {
        Ok(name) => ui.broker.applications.get(actor, &name, Some(d.version)).await.ok(),
        Err(_) => None,
    };
    let svg = deploy_diagram::render(&diagram_of(&d, app.as_ref().map(|a| &a.doc)));
    let nodes = d
        .nodes
        .iter()
        .map(|n| NodeRow {
            name: n.name.clone(),
            instance: n.instance.clone(),
            instance_type: n.instance_type.clone(),
            state: n.state.clone(),
            depends_on: n.depends_on.join(", "),
            members: n
                .members
                .iter()
                .map(|m| MemberRow {
                    idx: m.idx,
                    attempt: m.attempt,
                    vm_id: m.vm_id.as_ref().map(ToString::to_string).unwrap_or_default(),
                    vm_state: m.vm_state.map(|s| s.as_str().to_string()).unwrap_or_default(),
                    state: m.state.clone(),
                })
                .collect(),
        })
        .collect();
    let waits = d
        .nodes
        .iter()
        .flat_map(|n| n.members.iter().flat_map(move |m| m.waiting_on.iter().map(move |p| (format!("{} #{}", n.name, m.idx), p.clone()))))
        .collect();
    let params = params
        .into_iter()
        .map(|p| ParamRow {
            name: p.name,
            // A secret's value is never rendered, whatever the service gave.
            value: if p.secret { String::new() } else { p.value.unwrap_or_default() },
            secret: p.secret,
            set_by: p.set_by,
            set_at: when(&p.set_at),
        })
        .collect();
    let events = events
        .into_iter()
        .map(|e| EventRow { at: e.at.format("%Y-%m-%d %H:%M:%S UTC").to_string(), kind: e.kind, message: e.message })
        .collect();
    let ended = matches!(d.state, DeploymentState::Terminated | DeploymentState::Terminating);
    let can_act = actor.require_act().is_ok();
    let mut c = ui.chrome("deployments", format!("Deployment {}", d.name));
    c.refresh = in_progress(&d);
    let page_ = DetailPage {
        c,
        can_act,
        can_scale: !ended && d.op.is_none() && d.state != DeploymentState::Failed,
        can_abort: matches!(d.state, DeploymentState::Provisioning | DeploymentState::Executing | DeploymentState::Ready),
        can_terminate: d.state != DeploymentState::Terminated,
        d: DepView::of(&d),
        svg,
        nodes,
        waits,
        params,
        events,
    };
    Ok(page(&page_))
}

// ---------------------------------------------------------------- scale

struct PlanView {
    node: String,
    from: u32,
    to: u32,
    launch: Vec<i64>,
    terminate: Vec<(i64, String)>,
}

#[derive(Template)]
#[template(path = "deployment_scale.html")]
struct ScalePage {
    c: Chrome,
    id: String,
    name: String,
    /// (node, its VMs now in words).
    nodes: Vec<(String, String)>,
    node: String,
    multiplicity: String,
    plan: Option<PlanView>,
    errors: FormErrors,
}

/// The scale form's fields (as a query to see the plan, as a form to apply it).
#[derive(Deserialize, Default)]
pub(super) struct ScaleForm {
    #[serde(default)]
    node: String,
    #[serde(default)]
    multiplicity: String,
}

async fn render_scale(
    ui: &Ctx,
    d: &Deployment,
    form: &ScaleForm,
    plan: Option<PlanView>,
    errors: FormErrors,
    status: StatusCode,
) -> HttpResponse {
    let nodes = d
        .nodes
        .iter()
        .map(|n| (n.name.clone(), if n.multiplicity == 1 { "1 VM".to_string() } else { format!("{} VMs", n.multiplicity) }))
        .collect();
    html(
        status,
        &ScalePage {
            c: ui.chrome("deployments", format!("Scale {}", d.name)),
            id: d.id.to_string(),
            name: d.name.clone(),
            nodes,
            node: form.node.clone(),
            multiplicity: form.multiplicity.clone(),
            plan,
            errors,
        },
    )
}

fn multiplicity_of(s: &str) -> Result<u32, FormErrors> {
    match s.trim().parse::<u32>() {
        Ok(k) if k <= 100 => Ok(k),
        _ => Err(FormErrors::field("multiplicity", "a whole number from 0 to 100")),
    }
}

async fn scale_form(ui: Ctx, id: web::Path<String>, q: web::Query<ScaleForm>) -> UiResult {
    let id = deployment_in_path(&id)?;
    let d = ui.broker.deployments.get(ui.actor(), &id).await?;
    ui.actor().require_act()?;
    let form = q.into_inner();
    if form.node.is_empty() && form.multiplicity.is_empty() {
        let first = d.nodes.first().map(|n| (n.name.clone(), n.multiplicity.to_string())).unwrap_or_default();
        let form = ScaleForm { node: first.0, multiplicity: first.1 };
        return Ok(render_scale(&ui, &d, &form, None, FormErrors::none(), StatusCode::OK).await);
    }
    let to = match multiplicity_of(&form.multiplicity) {
        Ok(k) => k,
        Err(errs) => return Ok(render_scale(&ui, &d, &form, None, errs, StatusCode::BAD_REQUEST).await),
    };
    match ui.broker.deployments.plan_scale(ui.actor(), &id, &form.node, to).await {
        Ok(p) => {
            let plan = PlanView {
                node: p.node,
                from: p.from,
                to: p.to,
                launch: p.launch,
                terminate: p.terminate.into_iter().map(|(i, v)| (i, v.to_string())).collect(),
            };
            Ok(render_scale(&ui, &d, &form, Some(plan), FormErrors::none(), StatusCode::OK).await)
        }
        Err(e) => {
            let status = if matches!(e, ServiceError::Invalid { .. }) { StatusCode::BAD_REQUEST } else { StatusCode::CONFLICT };
            let errs = FormErrors::from_service(&e, &["node", "multiplicity"]);
            Ok(render_scale(&ui, &d, &form, None, errs, status).await)
        }
    }
}

async fn scale(ui: Ctx, id: web::Path<String>, form: CsrfForm<ScaleForm>) -> UiResult {
    let id = deployment_in_path(&id)?;
    let form = form.into_inner();
    let back = format!("/deployments/{id}");
    if let Err(e) = ui.actor().require_act() {
        return Ok(ui.redirect_with(&back, &format!("{REFUSED} {}. Nothing was changed.", friendly(&e))));
    }
    let to = match multiplicity_of(&form.multiplicity) {
        Ok(k) => k,
        Err(errs) => {
            let d = ui.broker.deployments.get(ui.actor(), &id).await?;
            return Ok(render_scale(&ui, &d, &form, None, errs, StatusCode::BAD_REQUEST).await);
        }
    };
    match ui.broker.deployments.scale(ui.actor(), &id, &form.node, to).await {
        Ok(p) => Ok(ui.redirect_with(
            &back,
            &format!(
                "Scaling {} from {} to {}: {} VM(s) admitted (launched as soon as what the node depends on is ready), {} being terminated",
                p.node,
                p.from,
                p.to,
                p.launch.len(),
                p.terminate.len()
            ),
        )),
        Err(e @ ServiceError::Forbidden(_)) => Ok(ui.redirect_with(&back, &format!("{REFUSED} {}. Nothing was changed.", friendly(&e)))),
        Err(e @ ServiceError::NotFound(_)) => Err(e.into()),
        Err(e) => {
            let d = ui.broker.deployments.get(ui.actor(), &id).await?;
            let status = if matches!(e, ServiceError::Invalid { .. }) { StatusCode::BAD_REQUEST } else { StatusCode::CONFLICT };
            let mut errs = FormErrors::from_service(&e, &["node", "multiplicity"]);
            if let Some(g) = errs.general.as_mut() {
                g.push_str(" Nothing was changed.");
            }
            Ok(render_scale(&ui, &d, &form, None, errs, status).await)
        }
    }
}

// ---------------------------------------------------------------- terminate, abort

#[derive(Template)]
#[template(path = "deployment_confirm.html")]
struct ConfirmPage {
    c: Chrome,
    id: String,
    name: String,
    /// `terminate` or `abort`.
    action: &'static str,
    on_failure: String,
    /// Its live VMs.
    vms: usize,
    message: String,
    errors: FormErrors,
}

fn confirm_page(ui: &Ctx, d: &Deployment, action: &'static str, message: String, errors: FormErrors, status: StatusCode) -> HttpResponse {
    let title = if action == "terminate" { "Terminate" } else { "Abort" };
    let vms = d.nodes.iter().flat_map(|n| &n.members).filter(|m| m.vm_state.is_some_and(|s| s.is_live())).count();
    html(
        status,
        &ConfirmPage {
            c: ui.chrome("deployments", format!("{title} {}", d.name)),
            id: d.id.to_string(),
            name: d.name.clone(),
            action,
            on_failure: d.on_failure.as_str().to_string(),
            vms,
            message,
            errors,
        },
    )
}

async fn confirm_terminate(ui: Ctx, id: web::Path<String>) -> UiResult {
    let d = ui.broker.deployments.get(ui.actor(), &deployment_in_path(&id)?).await?;
    ui.actor().require_act()?;
    Ok(confirm_page(&ui, &d, "terminate", String::new(), FormErrors::none(), StatusCode::OK))
}

async fn confirm_abort(ui: Ctx, id: web::Path<String>) -> UiResult {
    let d = ui.broker.deployments.get(ui.actor(), &deployment_in_path(&id)?).await?;
    ui.actor().require_act()?;
    Ok(confirm_page(&ui, &d, "abort", String::new(), FormErrors::none(), StatusCode::OK))
}

async fn terminate(ui: Ctx, id: web::Path<String>, _: CsrfForm) -> UiResult {
    let id = deployment_in_path(&id)?;
    let back = format!("/deployments/{id}");
    if let Err(e) = ui.actor().require_act() {
        return Ok(ui.redirect_with(&back, &format!("{REFUSED} {}. Nothing was changed.", friendly(&e))));
    }
    match ui.broker.deployments.terminate(ui.actor(), &id).await {
        Ok(d) => Ok(ui.redirect_with(&back, &format!("Terminating {}: now {}", d.name, d.state.as_str()))),
        Err(e @ ServiceError::Forbidden(_)) => Ok(ui.redirect_with(&back, &format!("{REFUSED} {}. Nothing was changed.", friendly(&e)))),
        Err(e @ ServiceError::Conflict(_)) => {
            let d = ui.broker.deployments.get(ui.actor(), &id).await?;
            Ok(confirm_page(&ui, &d, "terminate", String::new(), FormErrors::general(friendly(&e)), StatusCode::CONFLICT))
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(Deserialize, Default)]
pub(super) struct AbortForm {
    #[serde(default)]
    message: String,
}

async fn abort(ui: Ctx, id: web::Path<String>, form: CsrfForm<AbortForm>) -> UiResult {
    let id = deployment_in_path(&id)?;
    let back = format!("/deployments/{id}");
    let message = form.into_inner().message.trim().to_string();
    if let Err(e) = ui.actor().require_act() {
        return Ok(ui.redirect_with(&back, &format!("{REFUSED} {}. Nothing was changed.", friendly(&e))));
    }
    if message.is_empty() || message.chars().count() > 1000 {
        let d = ui.broker.deployments.get(ui.actor(), &id).await?;
        let errs = FormErrors::field("message", "say why, in 1 to 1000 characters");
        return Ok(confirm_page(&ui, &d, "abort", message, errs, StatusCode::BAD_REQUEST));
    }
    match ui.broker.deployments.abort(ui.actor(), &id, &message).await {
        Ok(d) => Ok(ui.redirect_with(&back, &format!("Aborting {}: {message}", d.name))),
        Err(e @ ServiceError::Forbidden(_)) => Ok(ui.redirect_with(&back, &format!("{REFUSED} {}. Nothing was changed.", friendly(&e)))),
        Err(e @ ServiceError::Conflict(_)) => {
            let d = ui.broker.deployments.get(ui.actor(), &id).await?;
            Ok(confirm_page(&ui, &d, "abort", message, FormErrors::general(friendly(&e)), StatusCode::CONFLICT))
        }
        Err(e) => Err(e.into()),
    }
}
