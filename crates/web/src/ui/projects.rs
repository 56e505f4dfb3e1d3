//! Projects in the UI: the header's switcher (`POST /project` sets the
//! `cb_project` cookie once the project could be entered; the session
//! guard enters it again on every request), the list of one's projects
//! (admins: all) with a create form, and a project's page: description,
//! members and roles (the owners' "invitation" is adding a user by name),
//! the project's cloud credentials (masked; owners store and delete them,
//! the secret never rendered back), its quotas (admins set overrides), its
//! own launch policies per instance (owners and admins set them, next to
//! the instance's they tighten; every bad value is shown at its field and
//! what was typed is kept), its live VMs, and for owners its recent audit entries. Every page acts as
//! the user entered in the page's project (membership checked by the
//! projects service), so a non-member gets the same 404 as for a project
//! that does not exist.

use super::context::{CsrfForm, Ctx};
use super::errors::{UiError, UiResult};
use super::form::{friendly, shown, when, FormErrors};
use super::session::{project_cookie, removal, PROJECT_COOKIE};
use super::{audit, html, Chrome};
use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use askama::Template;
use cloudbroker_core::audit::AuditQuery;
use cloudbroker_core::domain::{InstanceName, PageRequest, ProjectName, ProjectRole, UserName};
use cloudbroker_core::provisioning::{validate_project_policy, ProjectPolicy, ProjectQuotaSource, PROJECT_POLICY_SPECS};
use cloudbroker_core::registry::Status;
use cloudbroker_core::vault::{MaskedCredential, Scope};
use cloudbroker_core::{Actor, ServiceError};
use serde::Deserialize;
use std::collections::BTreeMap;

pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/project", web::post().to(switch))
        .route("/projects", web::get().to(list))
        .route("/projects", web::post().to(create))
        .route("/projects/{name}", web::get().to(show))
        .route("/projects/{name}", web::post().to(describe))
        .route("/projects/{name}/delete", web::post().to(delete))
        .route("/projects/{name}/audit", web::get().to(audit::project_log))
        .route("/projects/{name}/members", web::post().to(add_member))
        .route("/projects/{name}/members/{user}", web::post().to(set_role))
        .route("/projects/{name}/members/{user}/remove", web::post().to(remove_member))
        .route("/projects/{name}/credentials/{instance}", web::post().to(save_credential))
        .route("/projects/{name}/credentials/{instance}/delete", web::post().to(delete_credential))
        .route("/projects/{name}/quotas/{instance}", web::post().to(set_quota))
        .route("/projects/{name}/policies/{instance}", web::post().to(set_policy));
}

fn project_in_path(s: &str) -> Result<ProjectName, UiError> {
    ProjectName::parse(s).map_err(|_| UiError::NotFound("No such project."))
}

fn instance_in_path(s: &str) -> Result<InstanceName, UiError> {
    InstanceName::parse(s).map_err(|_| UiError::NotFound("No such connector instance."))
}

// ---------------------------------------------------------------- switcher

#[derive(Deserialize)]
pub(super) struct SwitchForm {
    #[serde(default)]
    project: String,
    /// Where to go once switched (a page of this site); the dashboard otherwise.
    #[serde(default)]
    back: String,
}

/// Where a switch may send the browser: a path of this site's pages, never
/// another site (`//host`, `/\host`) nor a page of one project's resource.
fn back_to(back: &str) -> &str {
    let ok = back.starts_with('/')
        && !back.starts_with("//")
        && !back.contains('\\')
        && back.len() <= 200
        && ["/vms", "/projects", "/credentials", "/profile"]
            .iter()
            .any(|p| back == *p || back.starts_with(&format!("{p}/")) || back.starts_with(&format!("{p}?")))
        && !back.starts_with("/vms/");
    if ok {
        back
    } else {
        "/"
    }
}

async fn switch(ui: Ctx, form: CsrfForm<SwitchForm>) -> UiResult {
    let wanted = form.project.trim();
    let me = ui.actor();
    let to = back_to(&form.back).to_string();
    let entered = match ProjectName::parse(wanted) {
        Ok(p) => ui.broker.projects.enter(me.clone(), &p).await,
        Err(e) => Err(e.into()),
    };
    match entered {
        Ok(a) => {
            let mut r = ui.redirect_with(&to, &format!("Now working in project {} as {}", a.project, a.role));
            let c = if a.in_personal_project() {
                removal(&ui.req, &ui.broker, PROJECT_COOKIE)
            } else {
                project_cookie(&ui.req, &ui.broker, a.project.as_str())
            };
            let _ = r.add_cookie(&c);
            Ok(r)
        }
        Err(e @ ServiceError::NotFound(_)) | Err(e @ ServiceError::Invalid { .. }) => {
            let shown: String = wanted.chars().take(64).collect();
            tracing::info!(error = %e, "UI: switch to a project refused");
            Ok(ui.redirect_with("/projects", &format!("You are not a member of a project named {shown}: nothing changed.")))
        }
        Err(e) => Err(e.into()),
    }
}

// ---------------------------------------------------------------- the list

struct ListRow {
    name: String,
    description: String,
    role: String,
    personal: bool,
    members: String,
}

#[derive(Deserialize, Default)]
pub(super) struct CreateForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    owner: String,
}

#[derive(Template)]
#[template(path = "projects.html")]
struct ListPage {
    c: Chrome,
    rows: Vec<ListRow>,
    form: CreateForm,
    errors: FormErrors,
}

async fn render_list(ui: &Ctx, form: CreateForm, errors: FormErrors) -> UiResult {
    let actor = ui.actor();
    let projects = ui.broker.projects.list(actor).await?;
    let mut rows = Vec::with_capacity(projects.len());
    for p in projects {
        // A personal project has its one member; a team's are counted.
        let members = if p.personal {
            "1".to_string()
        } else {
            ui.broker.projects.members(actor, &p.name).await.map(|m| m.len().to_string()).unwrap_or_else(|_| "?".into())
        };
        rows.push(ListRow {
            name: p.name.to_string(),
            description: p.description,
            role: p.role.map(|r| r.to_string()).unwrap_or_default(),
            personal: p.personal,
            members,
        });
    }
    let page = ListPage { c: ui.chrome("projects", "Projects"), rows, form, errors };
    Ok(html(page.errors.status(), &page))
}

async fn list(ui: Ctx) -> UiResult {
    render_list(&ui, CreateForm::default(), FormErrors::none()).await
}

async fn create(ui: Ctx, form: CsrfForm<CreateForm>) -> UiResult {
    let form = form.into_inner();
    let name = match ProjectName::parse(form.name.trim()) {
        Ok(n) => n,
        Err(e) => return render_list(&ui, form, FormErrors::field("name", e.message)).await,
    };
    let owner = match form.owner.trim() {
        "" => None,
        o => match UserName::parse(o) {
            Ok(u) => Some(u),
            Err(e) => return render_list(&ui, form, FormErrors::field("owner", e.message)).await,
        },
    };
    match ui.broker.projects.create(ui.actor(), &name, &form.description, owner.as_ref()).await {
        Ok(p) => Ok(ui.redirect_with(&format!("/projects/{}", p.name), &format!("Project {} created", p.name))),
        Err(e) => {
            let mut errs = FormErrors::from_service(&e, &["name", "description", "owner"]);
            match &e {
                ServiceError::Conflict(m) => errs = FormErrors::field("name", m.clone()),
                ServiceError::NotFound(_) if owner.is_some() => errs = FormErrors::field("owner", friendly(&e)),
                _ => {}
            }
            render_list(&ui, form, errs).await
        }
    }
}

// ---------------------------------------------------------------- one project

struct MemberRow {
    user: String,
    role: String,
    added: String,
    added_by: String,
}

struct CredRow {
    instance: String,
    kind: String,
    stored: Option<MaskedCredential>,
    typed_key: String,
    errors: FormErrors,
    offer_force: bool,
}

struct QuotaRow {
    instance: String,
    usage: i64,
    limit: String,
    source: String,
    /// The override field's value (as typed after a failed submit).
    typed: String,
    error: Option<String>,
}

/// One instance's launch policies: the instance's values and the project's own.
struct PolicyRow {
    instance: String,
    fields: Vec<PolicyField>,
    /// Who last set the project's values, and when (empty: never).
    updated: String,
}

struct PolicyField {
    /// The parameter (the form field's name).
    name: &'static str,
    /// Its position, for element ids (a parameter name has dots).
    index: usize,
    help: &'static str,
    /// The instance's value (empty: none).
    instance_value: String,
    /// The project's value, or what was typed after a failed submit.
    value: String,
    error: Option<String>,
}

struct ResourceRow {
    instance: String,
    state: String,
    count: i64,
}

#[derive(Template)]
#[template(path = "project.html")]
struct ProjectPage {
    c: Chrome,
    name: String,
    description: String,
    personal: bool,
    created: String,
    created_by: String,
    /// The user's role here (empty: an admin who is no member).
    my_role: String,
    can_manage: bool,
    /// The recent activity section and the link to the project's log.
    show_audit: bool,
    is_current: bool,
    members: Vec<MemberRow>,
    roles: Vec<String>,
    member_user: String,
    member_role: String,
    creds: Vec<CredRow>,
    quotas: Vec<QuotaRow>,
    quotas_enforced: bool,
    policies: Vec<PolicyRow>,
    resources: Vec<ResourceRow>,
    audit: Vec<audit::Row>,
    /// Which form `errors` belong to (`describe`, `member`, `cred`, `quota`, `delete`; empty: the page).
    form: &'static str,
    errors: FormErrors,
}

impl ProjectPage {
    fn err(&self, form: &str, field: &str) -> Option<&str> {
        if self.form == form {
            self.errors.of(field)
        } else {
            None
        }
    }
}

/// What a failed submit brings back to the page.
#[derive(Default)]
struct Failed {
    form: &'static str,
    errors: FormErrors,
    description: Option<String>,
    member: Option<(String, String)>,
    /// (instance, typed access key id, offer "save anyway").
    cred: Option<(String, String, bool)>,
    /// (instance, typed value).
    quota: Option<(String, String)>,
    /// (instance, typed values by parameter).
    policy: Option<(String, BTreeMap<String, String>)>,
}

impl Failed {
    fn on(form: &'static str, errors: FormErrors) -> Self {
        Self { form, errors, ..Self::default() }
    }
}

/// The live VMs of `project` per instance and state.
async fn live_vms(ui: &Ctx, actor: &Actor, project: &ProjectName) -> Vec<ResourceRow> {
    let mut counts: BTreeMap<(String, String), i64> = BTreeMap::new();
    for c in ui.broker.provisioning.project_vm_counts(actor, project).await.unwrap_or_default() {
        *counts.entry((c.instance, c.state)).or_default() += c.count;
    }
    counts.into_iter().map(|((instance, state), count)| ResourceRow { instance, state, count }).collect()
}

async fn render(ui: &Ctx, name: &ProjectName, failed: Failed) -> UiResult {
    let actor = ui.actor_in(name).await?;
    let broker = &ui.broker;
    let detail = broker.projects.get(&actor, name).await?;
    let p = detail.project;
    let can_manage = actor.is_admin || p.role.is_some_and(ProjectRole::can_manage);
    let members = detail
        .members
        .into_iter()
        .map(|m| MemberRow { user: m.user.to_string(), role: m.role.to_string(), added: when(&m.added_at), added_by: m.added_by })
        .collect();
    let stored = if p.personal { Vec::new() } else { broker.vault.list_project(&actor, name).await.unwrap_or_default() };
    let connectors = broker.system.connectors(&actor);
    let mut status = failed.errors.status();
    let creds = if p.personal {
        Vec::new()
    } else {
        connectors
            .iter()
            .map(|i| {
                let instance = i.name.to_string();
                let mut row = CredRow {
                    stored: stored.iter().find(|c| c.instance == instance).cloned().map(shown),
                    kind: format!(
                        "{}{}{}",
                        i.kind,
                        if i.kind.needs_credentials() { "" } else { ", works without credentials" },
                        if i.status == Status::Ready { "" } else { ", not ready" }
                    ),
                    instance,
                    typed_key: String::new(),
                    errors: FormErrors::none(),
                    offer_force: false,
                };
                if let Some((inst, key, force)) = &failed.cred {
                    if *inst == row.instance {
                        row.typed_key = key.clone();
                        row.errors = failed.errors.clone();
                        row.offer_force = *force;
                    }
                }
                row
            })
            .collect::<Vec<_>>()
    };
    let quotas_list = broker.provisioning.project_quotas(&actor, name).await.unwrap_or_default();
    let quotas_enforced = quotas_list.first().is_some_and(|q| q.enforced);
    let quotas = quotas_list
        .into_iter()
        .map(|q| {
            let instance = q.instance.to_string();
            let overridden = q.source == ProjectQuotaSource::Override;
            let (typed, error) = match &failed.quota {
                Some((inst, typed)) if *inst == instance => (typed.clone(), failed.errors.of("vm").map(str::to_string)),
                _ => (if overridden { q.limit.map(|l| l.to_string()).unwrap_or_default() } else { String::new() }, None),
            };
            QuotaRow {
                limit: q.limit.map(|l| l.to_string()).unwrap_or_else(|| "none".into()),
                source: match q.source {
                    ProjectQuotaSource::Override => "this project's override".into(),
                    ProjectQuotaSource::Instance => format!("{instance}.quota.project.vm"),
                    ProjectQuotaSource::None => "no project limit".into(),
                },
                usage: q.usage,
                instance,
                typed,
                error,
            }
        })
        .collect();
    let policies = policy_rows(broker.provisioning.project_policies(&actor, name).await.unwrap_or_default(), &failed);
    let resources = live_vms(ui, &actor, name).await;
    // A personal project's log is the admins' (the audit service refuses
    // its owner): no section, and no link to a page that would say 403.
    let show_audit = actor.is_admin || (can_manage && !p.personal);
    let audit = if show_audit {
        let q = AuditQuery { project: Some(name.clone()), ..AuditQuery::default() };
        match PageRequest::parse(Some("10"), None) {
            Ok(pr) => {
                broker.audit.list(&actor, q, pr).await.map(|p| p.items.into_iter().map(audit::Row::from).collect()).unwrap_or_default()
            }
            Err(_) => Vec::new(),
        }
    } else {
        Vec::new()
    };
    if failed.form == "quota" && failed.errors.any() {
        status = StatusCode::BAD_REQUEST;
    }
    let (member_user, member_role) = failed.member.unwrap_or_else(|| (String::new(), ProjectRole::Member.to_string()));
    let page = ProjectPage {
        c: ui.chrome("projects", format!("Project {name}")),
        name: name.to_string(),
        description: failed.description.unwrap_or(p.description),
        personal: p.personal,
        created: when(&p.created_at),
        created_by: p.created_by,
        my_role: p.role.map(|r| r.to_string()).unwrap_or_default(),
        can_manage,
        show_audit,
        is_current: ui.actor().project == *name,
        members,
        roles: ProjectRole::ALL.iter().rev().map(|r| r.to_string()).collect(),
        member_user,
        member_role,
        creds,
        quotas,
        quotas_enforced,
        policies,
        resources,
        audit,
        form: failed.form,
        errors: failed.errors,
    };
    Ok(html(status, &page))
}

async fn show(ui: Ctx, name: web::Path<String>) -> UiResult {
    let name = project_in_path(&name)?;
    render(&ui, &name, Failed::default()).await
}

#[derive(Deserialize)]
pub(super) struct DescribeForm {
    #[serde(default)]
    description: String,
}

async fn describe(ui: Ctx, name: web::Path<String>, form: CsrfForm<DescribeForm>) -> UiResult {
    let name = project_in_path(&name)?;
    let actor = ui.actor_in(&name).await?;
    match ui.broker.projects.update(&actor, &name, &form.description).await {
        Ok(_) => Ok(ui.redirect_with(&format!("/projects/{name}"), "Description saved")),
        Err(e @ ServiceError::Forbidden(_)) => Err(e.into()),
        Err(e) => {
            let mut f = Failed::on("describe", FormErrors::from_service(&e, &["description"]));
            f.description = Some(form.description.clone());
            render(&ui, &name, f).await.map(|r| with_status(r, &e))
        }
    }
}

/// A refused change's page gets the refusal's status (409 for a conflict,
/// 404 for a user or member not found), a bad value 400.
fn with_status(mut r: HttpResponse, e: &ServiceError) -> HttpResponse {
    let status = match e {
        ServiceError::Forbidden(_) => StatusCode::FORBIDDEN,
        ServiceError::Conflict(_) => StatusCode::CONFLICT,
        ServiceError::NotFound(_) => StatusCode::NOT_FOUND,
        _ => StatusCode::BAD_REQUEST,
    };
    *r.status_mut() = status;
    r
}

async fn delete(ui: Ctx, name: web::Path<String>, _: CsrfForm) -> UiResult {
    let name = project_in_path(&name)?;
    let actor = ui.actor_in(&name).await?;
    match ui.broker.projects.delete(&actor, &name).await {
        Ok(()) => {
            let mut r = ui.redirect_with("/projects", &format!("Project {name} deleted"));
            if ui.actor().project == name {
                let _ = r.add_cookie(&removal(&ui.req, &ui.broker, PROJECT_COOKIE));
            }
            Ok(r)
        }
        Err(e @ ServiceError::Forbidden(_)) => Err(e.into()),
        Err(e) => {
            let f = Failed::on("delete", FormErrors::general(format!("Not deleted: {}", friendly(&e))));
            render(&ui, &name, f).await.map(|r| with_status(r, &e))
        }
    }
}

#[derive(Deserialize)]
pub(super) struct MemberForm {
    #[serde(default)]
    user: String,
    #[serde(default)]
    role: String,
}

async fn add_member(ui: Ctx, name: web::Path<String>, form: CsrfForm<MemberForm>) -> UiResult {
    let name = project_in_path(&name)?;
    let form = form.into_inner();
    let failed = |errors: FormErrors| {
        let mut f = Failed::on("member", errors);
        f.member = Some((form.user.clone(), form.role.clone()));
        f
    };
    let user = match UserName::parse(form.user.trim()) {
        Ok(u) => u,
        Err(e) => return render(&ui, &name, failed(FormErrors::field("user", e.message))).await,
    };
    let role = match ProjectRole::parse(form.role.trim()) {
        Ok(r) => r,
        Err(e) => return render(&ui, &name, failed(FormErrors::field("role", e.message))).await,
    };
    let actor = ui.actor_in(&name).await?;
    actor.require_manage()?;
    // Adding is for someone not yet a member; a member's role is changed in the table.
    if let Ok(members) = ui.broker.projects.members(&actor, &name).await {
        if let Some(m) = members.iter().find(|m| m.user == user) {
            let errs = FormErrors::field("user", format!("{user} is already a {} of {name}: change the role in the table", m.role));
            return render(&ui, &name, failed(errs)).await.map(|r| with_status(r, &ServiceError::Conflict(String::new())));
        }
    }
    match ui.broker.projects.set_member(&actor, &name, &user, role).await {
        Ok(m) => Ok(ui.redirect_with(&format!("/projects/{name}"), &format!("{} added to {name} as {}", m.user, m.role))),
        Err(e @ ServiceError::Forbidden(_)) => Err(e.into()),
        Err(e) => {
            let errs = match &e {
                ServiceError::NotFound(_) => FormErrors::field("user", format!("There is no user named {user}.")),
                ServiceError::Conflict(m) if m.contains("disabled") => FormErrors::field("user", m.clone()),
                _ => FormErrors::from_service(&e, &["user", "role"]),
            };
            render(&ui, &name, failed(errs)).await.map(|r| with_status(r, &e))
        }
    }
}

#[derive(Deserialize)]
pub(super) struct RoleForm {
    #[serde(default)]
    role: String,
}

async fn set_role(ui: Ctx, path: web::Path<(String, String)>, form: CsrfForm<RoleForm>) -> UiResult {
    let (name, user) = path.into_inner();
    let name = project_in_path(&name)?;
    let user = UserName::parse(&user).map_err(|_| UiError::NotFound("No such member."))?;
    let role = match ProjectRole::parse(form.role.trim()) {
        Ok(r) => r,
        Err(e) => return render(&ui, &name, Failed::on("member", FormErrors::general(e.message))).await,
    };
    let actor = ui.actor_in(&name).await?;
    actor.require_manage()?;
    let members = ui.broker.projects.members(&actor, &name).await?;
    if !members.iter().any(|m| m.user == user) {
        return Err(UiError::NotFound("No such member."));
    }
    match ui.broker.projects.set_member(&actor, &name, &user, role).await {
        Ok(m) => Ok(ui.redirect_with(&format!("/projects/{name}"), &format!("{} is now a {} of {name}", m.user, m.role))),
        Err(e @ ServiceError::Forbidden(_)) => Err(e.into()),
        Err(e) => {
            let f = Failed::on("member", FormErrors::general(format!("Role of {user} not changed: {}", friendly(&e))));
            render(&ui, &name, f).await.map(|r| with_status(r, &e))
        }
    }
}

async fn remove_member(ui: Ctx, path: web::Path<(String, String)>, _: CsrfForm) -> UiResult {
    let (name, user) = path.into_inner();
    let name = project_in_path(&name)?;
    let user = UserName::parse(&user).map_err(|_| UiError::NotFound("No such member."))?;
    let actor = ui.actor_in(&name).await?;
    match ui.broker.projects.remove_member(&actor, &name, &user).await {
        Ok(()) if user == ui.actor().name && !ui.actor().is_admin => {
            // Left the project: back to the personal one.
            let mut r = ui.redirect_with("/projects", &format!("You left project {name}"));
            let _ = r.add_cookie(&removal(&ui.req, &ui.broker, PROJECT_COOKIE));
            Ok(r)
        }
        Ok(()) => Ok(ui.redirect_with(&format!("/projects/{name}"), &format!("{user} removed from {name}"))),
        Err(e @ ServiceError::Forbidden(_)) => Err(e.into()),
        Err(e) => {
            let f = Failed::on("member", FormErrors::general(format!("{user} not removed: {}", friendly(&e))));
            render(&ui, &name, f).await.map(|r| with_status(r, &e))
        }
    }
}

#[derive(Deserialize)]
pub(super) struct CredForm {
    #[serde(default)]
    access_key_id: String,
    #[serde(default)]
    secret_access_key: String,
    force: Option<String>,
}

async fn save_credential(ui: Ctx, path: web::Path<(String, String)>, form: CsrfForm<CredForm>) -> UiResult {
    let (name, instance) = path.into_inner();
    let (name, instance) = (project_in_path(&name)?, instance_in_path(&instance)?);
    let actor = ui.actor_in(&name).await?;
    let force = form.force.is_some();
    match ui.broker.vault.put(&actor, Scope::Project(&name), &instance, &form.access_key_id, &form.secret_access_key, force).await {
        Ok(c) => {
            let msg = if c.status == "verified" {
                format!("Credentials of {name} for {instance} saved and verified ({})", c.access_key_id)
            } else {
                format!("Credentials of {name} for {instance} saved UNVERIFIED ({}): {}", c.access_key_id, c.status_message)
            };
            Ok(ui.redirect_with(&format!("/projects/{name}"), &msg))
        }
        Err(e @ ServiceError::Forbidden(_)) => Err(e.into()),
        Err(e) => {
            let failed_check = e.to_string().contains("failed validation");
            let mut f = Failed::on("cred", FormErrors::from_service(&e, &["access_key_id", "secret_access_key"]));
            // Only the access key id comes back; the secret is never rendered.
            f.cred = Some((instance.to_string(), form.access_key_id.clone(), failed_check));
            render(&ui, &name, f).await.map(|r| with_status(r, &e))
        }
    }
}

async fn delete_credential(ui: Ctx, path: web::Path<(String, String)>, _: CsrfForm) -> UiResult {
    let (name, instance) = path.into_inner();
    let (name, instance) = (project_in_path(&name)?, instance_in_path(&instance)?);
    let actor = ui.actor_in(&name).await?;
    match ui.broker.vault.delete(&actor, Scope::Project(&name), &instance).await {
        Ok(()) => Ok(ui.redirect_with(&format!("/projects/{name}"), &format!("Credentials of {name} for {instance} deleted"))),
        Err(e @ ServiceError::Forbidden(_)) => Err(e.into()),
        Err(e) => {
            let mut f = Failed::on("cred", FormErrors::general(format!("Not deleted: {}", friendly(&e))));
            f.cred = Some((instance.to_string(), String::new(), false));
            render(&ui, &name, f).await.map(|r| with_status(r, &e))
        }
    }
}

#[derive(Deserialize)]
pub(super) struct QuotaForm {
    #[serde(default)]
    vm: String,
}

async fn set_quota(ui: Ctx, path: web::Path<(String, String)>, form: CsrfForm<QuotaForm>) -> UiResult {
    let (name, instance) = path.into_inner();
    let (name, instance) = (project_in_path(&name)?, instance_in_path(&instance)?);
    let actor = ui.actor_in(&name).await?;
    let failed = |errors: FormErrors| {
        let mut f = Failed::on("quota", errors);
        f.quota = Some((instance.to_string(), form.vm.clone()));
        f
    };
    let limit = match form.vm.trim() {
        "" => None,
        v => match v.parse::<i64>() {
            Ok(n) => Some(n),
            Err(_) => return render(&ui, &name, failed(FormErrors::field("vm", "a whole number of VMs, or empty for no override"))).await,
        },
    };
    match ui.broker.provisioning.set_project_quota(&actor, &name, &instance, limit).await {
        Ok(q) => {
            let shown = q.limit.map(|l| format!("{l} VMs")).unwrap_or_else(|| "no limit".into());
            Ok(ui.redirect_with(&format!("/projects/{name}"), &format!("Quota of project {name} on {instance}: {shown}")))
        }
        Err(e @ ServiceError::Forbidden(_)) => Err(e.into()),
        Err(e) => {
            let msg = match &e {
                ServiceError::Invalid { message, .. } => message.clone(),
                _ => friendly(&e),
            };
            render(&ui, &name, failed(FormErrors::field("vm", msg))).await.map(|r| with_status(r, &e))
        }
    }
}

// ---------------------------------------------------------------- launch policies

/// The policy rows of the page: the stored values, or on the instance a
/// failed submit was for, what was typed with the errors at their fields.
fn policy_rows(stored: Vec<ProjectPolicy>, failed: &Failed) -> Vec<PolicyRow> {
    stored
        .into_iter()
        .map(|p| {
            let instance = p.instance.to_string();
            let typed = failed.policy.as_ref().filter(|(i, _)| *i == instance).map(|(_, t)| t);
            let fields = PROJECT_POLICY_SPECS
                .iter()
                .enumerate()
                .map(|(index, spec)| PolicyField {
                    name: spec.name,
                    index,
                    help: spec.description,
                    instance_value: p.instance_values.get(spec.name).cloned().unwrap_or_default(),
                    value: match typed {
                        Some(t) => t.get(spec.name).cloned().unwrap_or_default(),
                        None => p.values.get(spec.name).cloned().unwrap_or_default(),
                    },
                    error: typed.and_then(|_| failed.errors.of(spec.name)).map(str::to_string),
                })
                .collect();
            let updated = match (&p.updated_by, &p.updated_at) {
                (Some(by), Some(at)) => format!("set by {by}, {}", when(at)),
                _ => String::new(),
            };
            PolicyRow { instance, fields, updated }
        })
        .collect()
}

async fn set_policy(ui: Ctx, path: web::Path<(String, String)>, form: CsrfForm<BTreeMap<String, String>>) -> UiResult {
    let (name, instance) = path.into_inner();
    let (name, instance) = (project_in_path(&name)?, instance_in_path(&instance)?);
    let actor = ui.actor_in(&name).await?;
    let typed = form.into_inner();
    let failed = |errors: FormErrors| {
        let mut f = Failed::on("policy", errors);
        f.policy = Some((instance.to_string(), typed.clone()));
        f
    };
    // Every bad value at its field at once (the service stops at the first).
    let mut errors = FormErrors::none();
    for (k, v) in &typed {
        match validate_project_policy(&BTreeMap::from([(k.clone(), v.clone())])) {
            Ok(_) => {}
            Err(ServiceError::Invalid { field: Some(f), message }) => errors.add(f, message),
            Err(e) => errors.general = Some(friendly(&e)),
        }
    }
    if errors.any() {
        return render(&ui, &name, failed(errors)).await;
    }
    match ui.broker.provisioning.set_project_policy(&actor, &name, &instance, &typed).await {
        Ok(p) => {
            let shown = if p.values.is_empty() {
                "none of its own (the instance's apply)".to_string()
            } else {
                p.values.iter().map(|(k, v)| format!("{k} = {v}")).collect::<Vec<_>>().join("; ")
            };
            Ok(ui.redirect_with(&format!("/projects/{name}"), &format!("Launch policies of {name} on {instance}: {shown}")))
        }
        Err(e @ ServiceError::Forbidden(_)) => Err(e.into()),
        Err(e) => {
            let names: Vec<&str> = PROJECT_POLICY_SPECS.iter().map(|s| s.name).collect();
            render(&ui, &name, failed(FormErrors::from_service(&e, &names))).await.map(|r| with_status(r, &e))
        }
    }
}
