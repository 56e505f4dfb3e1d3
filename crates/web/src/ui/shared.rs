//! Shared credentials (admin): system-scope keys per connector instance,
//! stored like a user's (checked on save, "save anyway" unverified, sealed),
//! never shown back in clear, granted to projects (a user's name is their
//! personal project: the names share one namespace) whose members launch
//! with them but never read them.

use super::context::{CsrfForm, Ctx};
use super::errors::{UiError, UiResult};
use super::form::{friendly, FormErrors};
use super::{html, Chrome};
use actix_web::web;
use askama::Template;
use cloudbroker_core::domain::{CredentialName, InstanceName, ProjectName};
use cloudbroker_core::vault::{MaskedCredential, Scope};
use serde::Deserialize;

pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/credentials", web::get().to(list))
        .route("/credentials", web::post().to(save))
        .route("/credentials/{instance}/{name}/grants", web::post().to(grant))
        .route("/credentials/{instance}/{name}/delete", web::post().to(delete));
}

struct Row {
    cred: MaskedCredential,
    grants: String,
}

#[derive(Deserialize, Default)]
pub(super) struct SaveForm {
    #[serde(default)]
    instance: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    access_key_id: String,
    #[serde(default)]
    secret_access_key: String,
    force: Option<String>,
}

#[derive(Template)]
#[template(path = "admin_shared.html")]
struct SharedPage {
    c: Chrome,
    rows: Vec<Row>,
    instances: Vec<String>,
    form: SaveForm,
    offer_force: bool,
    errors: FormErrors,
    /// A refused grant: the row's instance and name, and what was typed (kept).
    typed_grants: Option<(String, String, String)>,
}

impl SharedPage {
    /// What a row's grants field shows: what was typed when its change was
    /// refused, else the grants stored.
    fn grants_of(&self, r: &Row) -> String {
        match &self.typed_grants {
            Some((i, n, typed)) if *i == r.cred.instance && *n == r.cred.owner => typed.clone(),
            _ => r.grants.clone(),
        }
    }

    /// Whether a row's grants field holds a refused change.
    fn grants_refused(&self, r: &Row) -> bool {
        self.typed_grants.as_ref().is_some_and(|(i, n, _)| *i == r.cred.instance && *n == r.cred.owner)
    }
}

async fn render(ui: &Ctx, form: SaveForm, errs: FormErrors, offer_force: bool) -> UiResult {
    render_with(ui, form, errs, offer_force, None).await
}

async fn render_with(
    ui: &Ctx,
    form: SaveForm,
    errs: FormErrors,
    offer_force: bool,
    typed_grants: Option<(String, String, String)>,
) -> UiResult {
    let (actor, broker) = (ui.actor(), &ui.broker);
    let creds = broker.vault.list_shared(actor).await?;
    let rows = creds.into_iter().map(|c| Row { grants: c.granted_to.clone().unwrap_or_default().join(", "), cred: c }).collect();
    let page = SharedPage {
        c: ui.chrome("admin/credentials", "Shared credentials"),
        rows,
        instances: broker.system.connectors(actor).iter().map(|i| i.name.to_string()).collect(),
        form,
        offer_force,
        errors: errs,
        typed_grants,
    };
    Ok(html(page.errors.status(), &page))
}

async fn list(ui: Ctx) -> UiResult {
    render(&ui, SaveForm::default(), FormErrors::none(), false).await
}

async fn save(ui: Ctx, form: CsrfForm<SaveForm>) -> UiResult {
    let mut form = form.into_inner();
    let secret = std::mem::take(&mut form.secret_access_key);
    let Ok(instance) = InstanceName::parse(form.instance.trim()) else {
        return render(&ui, form, FormErrors::field("instance", "choose a connector instance"), false).await;
    };
    let name = match CredentialName::parse(form.name.trim()) {
        Ok(n) => n,
        Err(e) => return render(&ui, form, FormErrors::field("name", e.message), false).await,
    };
    let force = form.force.is_some();
    match ui.broker.vault.put(ui.actor(), Scope::System(&name), &instance, &form.access_key_id, &secret, force).await {
        Ok(c) => Ok(ui.redirect_with("/admin/credentials", &format!("Shared credential {name} for {instance} saved ({})", c.status))),
        Err(e) => {
            let offer = e.to_string().contains("failed validation");
            let errs = FormErrors::from_service(&e, &["access_key_id", "secret_access_key", "name"]);
            render(&ui, form, errs, offer).await
        }
    }
}

fn parse_path(p: &(String, String)) -> Result<(InstanceName, CredentialName), UiError> {
    match (InstanceName::parse(&p.0), CredentialName::parse(&p.1)) {
        (Ok(i), Ok(n)) => Ok((i, n)),
        _ => Err(UiError::NotFound("No such shared credential.")),
    }
}

#[derive(Deserialize)]
pub(super) struct GrantForm {
    users: String,
}

async fn grant(ui: Ctx, path: web::Path<(String, String)>, form: CsrfForm<GrantForm>) -> UiResult {
    let (instance, name) = parse_path(&path)?;
    // Project names; a user's name is their personal project.
    let typed = Some((instance.to_string(), name.to_string(), form.users.clone()));
    let mut projects = Vec::new();
    let mut bad = Vec::new();
    for u in form.users.split([',', ' ', '\n']).map(str::trim).filter(|u| !u.is_empty()) {
        match ProjectName::parse(u) {
            Ok(n) => projects.push(n),
            Err(_) => bad.push(format!("'{u}'")),
        }
    }
    // Every bad name at once, what was typed kept.
    if !bad.is_empty() {
        let what = if bad.len() == 1 { "is not a valid project or user name" } else { "are not valid project or user names" };
        let errs = FormErrors::general(format!("Grants of {name} not changed: {} {what}", bad.join(", ")));
        return render_with(&ui, SaveForm::default(), errs, false, typed).await;
    }
    match ui.broker.vault.grant(ui.actor(), &name, &instance, &projects).await {
        Ok(_) => Ok(ui.redirect_with(
            "/admin/credentials",
            &format!("{name} for {instance} granted to {} user(s)/project(s): {}", projects.len(), join(&projects)),
        )),
        Err(e) => {
            let errs = FormErrors::general(format!("Grants of {name} not changed: {}", friendly(&e)));
            render_with(&ui, SaveForm::default(), errs, false, typed).await
        }
    }
}

async fn delete(ui: Ctx, path: web::Path<(String, String)>, _: CsrfForm) -> UiResult {
    let (instance, name) = parse_path(&path)?;
    match ui.broker.vault.delete(ui.actor(), Scope::System(&name), &instance).await {
        Ok(()) => Ok(ui.redirect_with("/admin/credentials", &format!("Shared credential {name} for {instance} deleted"))),
        Err(e) => {
            let errs = FormErrors::general(format!("Not deleted: {}", friendly(&e)));
            render(&ui, SaveForm::default(), errs, false).await
        }
    }
}

fn join(projects: &[ProjectName]) -> String {
    projects.iter().map(ProjectName::as_str).collect::<Vec<_>>().join(", ")
}
