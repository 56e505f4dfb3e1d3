//! Confirmations of destructive actions, without JavaScript: the page's
//! button is a link to a GET of the action's own address, which shows what
//! will happen and a form that POSTs to that same address (the handler
//! that acts, unchanged). A GET never changes anything. The confirmation
//! page looks the thing up with the same service call the page listing it
//! makes, so another user's (or project's) thing is 404 here as there, and
//! a viewer who may not act gets the 403 the action would give.
//!
//! [`Confirm`] and [`page`] are the one confirmation page; this module
//! also holds the GET handlers for the destructive forms of the other
//! pages (profile, credentials, projects, applications, admin users,
//! shared credentials, images, prices), registered by [`routes`] and
//! [`admin_routes`] beside those pages' own routes.

use super::context::Ctx;
use super::errors::{UiError, UiResult};
use super::form::when;
use super::{page as render, Chrome};
use actix_web::{web, HttpResponse};
use askama::Template;
use cloudbroker_core::deployments::AppName;
use cloudbroker_core::domain::{CredentialName, ImageName, InstanceName, ProjectName, TokenId, UserName};
use serde::Deserialize;

/// What a confirmation page asks.
pub struct Confirm {
    /// The question (`Delete key pair deploy?`).
    pub heading: String,
    /// What will happen, one paragraph each.
    pub lines: Vec<String>,
    /// Where the form posts (the action's own address).
    pub action: String,
    /// Hidden fields the action takes (name, value).
    pub fields: Vec<(String, String)>,
    /// The button's words (`Delete`).
    pub button: String,
    /// Where Cancel leads.
    pub cancel: String,
    /// Whether to say it cannot be undone.
    pub lasting: bool,
}

impl Confirm {
    /// A confirmation of `heading`, posting to `action`, Cancel back to `cancel`.
    pub fn new(heading: impl Into<String>, action: impl Into<String>, button: impl Into<String>, cancel: impl Into<String>) -> Self {
        Self {
            heading: heading.into(),
            lines: Vec::new(),
            action: action.into(),
            fields: Vec::new(),
            button: button.into(),
            cancel: cancel.into(),
            lasting: true,
        }
    }

    /// Adds a paragraph saying what will happen.
    pub fn line(mut self, text: impl Into<String>) -> Self {
        self.lines.push(text.into());
        self
    }

    /// Adds a hidden field the action takes.
    pub fn field(mut self, name: &str, value: impl Into<String>) -> Self {
        self.fields.push((name.to_string(), value.into()));
        self
    }

    /// Marks it as undoable (no "cannot be undone").
    pub fn undoable(mut self) -> Self {
        self.lasting = false;
        self
    }
}

#[derive(Template)]
#[template(path = "confirm.html")]
struct ConfirmPage {
    c: Chrome,
    q: Confirm,
}

/// The confirmation page of `q`, in navigation entry `active`.
pub fn page(ui: &Ctx, active: &'static str, q: Confirm) -> HttpResponse {
    let c = ui.chrome(active, q.heading.clone());
    render(&ConfirmPage { c, q })
}

/// The confirmations of the signed-in pages' destructive forms.
pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/profile/tokens/{id}/revoke", web::get().to(revoke_token))
        .route("/profile/access-keys/{id}/delete", web::get().to(delete_access_key))
        .route("/credentials/{instance}/delete", web::get().to(delete_credential))
        .route("/projects/{name}/delete", web::get().to(delete_project))
        .route("/projects/{name}/members/{user}/remove", web::get().to(remove_member))
        .route("/projects/{name}/credentials/{instance}/delete", web::get().to(delete_project_credential))
        .route("/applications/{name}/delete", web::get().to(delete_application));
}

/// The confirmations of the admin pages' destructive forms (in the `/admin` scope).
pub(super) fn admin_routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/users/{name}/admin", web::get().to(set_admin))
        .route("/users/{name}/disabled", web::get().to(set_disabled))
        .route("/users/{name}/tokens/revoke", web::get().to(revoke_all_tokens))
        .route("/users/{name}/access-keys/{id}/delete", web::get().to(admin_delete_access_key))
        .route("/credentials/{instance}/{name}/delete", web::get().to(delete_shared))
        .route("/images/{name}/delete", web::get().to(delete_image))
        .route("/prices/delete", web::get().to(delete_price));
}

fn user_in_path(s: &str) -> Result<UserName, UiError> {
    UserName::parse(s).map_err(|_| UiError::NotFound("No such user."))
}

fn instance_in_path(s: &str) -> Result<InstanceName, UiError> {
    InstanceName::parse(s).map_err(|_| UiError::NotFound("No such connector instance."))
}

fn project_in_path(s: &str) -> Result<ProjectName, UiError> {
    ProjectName::parse(s).map_err(|_| UiError::NotFound("No such project."))
}

async fn revoke_token(ui: Ctx, id: web::Path<String>) -> UiResult {
    let id = TokenId::parse(&id).map_err(|_| UiError::NotFound("No such token."))?;
    let actor = ui.actor();
    let tokens = ui.broker.identity.list_tokens(actor, &actor.name).await?;
    let t = tokens.into_iter().find(|t| t.id == id && t.revoked_at.is_none()).ok_or(UiError::NotFound("No such token."))?;
    let q = Confirm::new(format!("Revoke token {}?", t.name), format!("/profile/tokens/{id}/revoke"), "Revoke token", "/profile")
        .line(format!("API token {} (made {}) stops working at once, with every token minted with it.", t.name, when(&t.created_at)));
    Ok(page(&ui, "profile", q))
}

/// One access key of `user`'s (404 for any other), as the pages list them.
async fn access_key(ui: &Ctx, user: &UserName, id: &str) -> Result<cloudbroker_core::access_keys::AccessKey, UiError> {
    let keys = ui.broker.access_keys.list(ui.actor(), user).await?;
    keys.into_iter().find(|k| k.access_key_id == id).ok_or(UiError::NotFound("No such access key."))
}

async fn delete_access_key(ui: Ctx, id: web::Path<String>) -> UiResult {
    let k = access_key(&ui, &ui.actor().name, &id).await?;
    let id = k.access_key_id;
    let q = Confirm::new(format!("Delete access key {id}?"), format!("/profile/access-keys/{id}/delete"), "Delete access key", "/profile")
        .line(format!("EC2 clients signing with {id} (acting in project {}) are refused from now on.", k.project))
        .line("To stop it for a while instead, disable it: that can be undone.");
    Ok(page(&ui, "profile", q))
}

async fn delete_credential(ui: Ctx, instance: web::Path<String>) -> UiResult {
    let instance = instance_in_path(&instance)?;
    let actor = ui.actor();
    let creds = ui.broker.vault.list_user(actor, &actor.name).await?;
    let c = creds.into_iter().find(|c| c.instance == instance.as_str()).ok_or(UiError::NotFound("No such credentials."))?;
    let q = Confirm::new(
        format!("Delete your credentials for {instance}?"),
        format!("/credentials/{instance}/delete"),
        "Delete credentials",
        "/credentials",
    )
    .line(format!("The cloud credentials for {instance} (access key {}) are deleted from the broker.", c.access_key_id))
    .line("Launches on it then use the project's or a shared credential, if any; VMs already running keep running.");
    Ok(page(&ui, "credentials", q))
}

async fn delete_project(ui: Ctx, name: web::Path<String>) -> UiResult {
    let name = project_in_path(&name)?;
    let actor = ui.actor_in(&name).await?;
    ui.broker.projects.get(&actor, &name).await?;
    actor.require_manage()?;
    let q =
        Confirm::new(format!("Delete project {name}?"), format!("/projects/{name}/delete"), "Delete project", format!("/projects/{name}"))
            .line(format!("Project {name} and its memberships, credentials, quotas and policies are deleted."))
            .line("The broker refuses while the project holds live VMs, addresses or volumes.");
    Ok(page(&ui, "projects", q))
}

async fn remove_member(ui: Ctx, path: web::Path<(String, String)>) -> UiResult {
    let (name, user) = path.into_inner();
    let name = project_in_path(&name)?;
    let user = UserName::parse(&user).map_err(|_| UiError::NotFound("No such member."))?;
    let actor = ui.actor_in(&name).await?;
    let members = ui.broker.projects.members(&actor, &name).await?;
    let m = members.into_iter().find(|m| m.user == user).ok_or(UiError::NotFound("No such member."))?;
    let leaving = user == ui.actor().name;
    if !leaving {
        actor.require_manage()?;
    }
    let action = format!("/projects/{name}/members/{user}/remove");
    let q = if leaving {
        Confirm::new(format!("Leave project {name}?"), action, "Leave project", format!("/projects/{name}"))
            .line(format!("You lose access to {name}'s VMs, volumes, addresses and key pairs at once; an owner can add you again."))
    } else {
        Confirm::new(format!("Remove {user} from {name}?"), action, "Remove member", format!("/projects/{name}"))
            .line(format!("{user} ({}) loses access to {name} at once; their VMs there stay in the project.", m.role))
    };
    Ok(page(&ui, "projects", q.undoable()))
}

async fn delete_project_credential(ui: Ctx, path: web::Path<(String, String)>) -> UiResult {
    let (name, instance) = path.into_inner();
    let (name, instance) = (project_in_path(&name)?, instance_in_path(&instance)?);
    let actor = ui.actor_in(&name).await?;
    let creds = ui.broker.vault.list_project(&actor, &name).await?;
    actor.require_manage()?;
    let c = creds.into_iter().find(|c| c.instance == instance.as_str()).ok_or(UiError::NotFound("No such credentials."))?;
    let q = Confirm::new(
        format!("Delete the credentials of {name} for {instance}?"),
        format!("/projects/{name}/credentials/{instance}/delete"),
        "Delete credentials",
        format!("/projects/{name}"),
    )
    .line(format!("The project's cloud credentials for {instance} (access key {}) are deleted from the broker.", c.access_key_id))
    .line("Members' launches on it then use their own or a shared credential, if any.");
    Ok(page(&ui, "projects", q))
}

async fn delete_application(ui: Ctx, name: web::Path<String>) -> UiResult {
    let name = AppName::parse(&name).map_err(|_| UiError::NotFound("No such application."))?;
    ui.broker.applications.get(ui.actor(), &name, None).await?;
    let q = Confirm::new(
        format!("Delete application {name}?"),
        format!("/applications/{name}/delete"),
        "Delete application",
        format!("/applications/{name}"),
    )
    .line(format!("Application {name} and its versions are removed from the catalogue."))
    .line("Deployments keep the versions they use.");
    Ok(page(&ui, "applications", q))
}

async fn set_admin(ui: Ctx, name: web::Path<String>) -> UiResult {
    let name = user_in_path(&name)?;
    let u = ui.broker.identity.get_user(ui.actor(), &name).await?;
    let back = format!("/admin/users/{name}");
    let action = format!("/admin/users/{name}/admin");
    let q = if u.is_admin {
        Confirm::new(format!("Remove the admin role of {name}?"), action, "Remove admin role", back)
            .field("value", "false")
            .line(format!("{name} no longer reaches the admin pages and API, and sees only their own projects."))
    } else {
        Confirm::new(format!("Make {name} an admin?"), action, "Make admin", back).field("value", "true").line(format!(
            "{name} gets every power: every user's VMs, credentials and projects, the system configuration, and other admins."
        ))
    };
    Ok(page(&ui, "admin/users", q.undoable()))
}

async fn set_disabled(ui: Ctx, name: web::Path<String>) -> UiResult {
    let name = user_in_path(&name)?;
    let u = ui.broker.identity.get_user(ui.actor(), &name).await?;
    let back = format!("/admin/users/{name}");
    let action = format!("/admin/users/{name}/disabled");
    let q = if u.disabled_at.is_some() {
        Confirm::new(format!("Enable {name}?"), action, "Enable", back).field("value", "false").line(format!("{name} may sign in again."))
    } else {
        Confirm::new(format!("Disable {name}?"), action, "Disable user", back)
            .field("value", "true")
            .line(format!("{name} is signed out everywhere and their API tokens are revoked; they cannot sign in until enabled again."))
            .line("Their VMs, volumes and addresses stay.")
    };
    Ok(page(&ui, "admin/users", q.undoable()))
}

async fn revoke_all_tokens(ui: Ctx, name: web::Path<String>) -> UiResult {
    let name = user_in_path(&name)?;
    let tokens = ui.broker.identity.list_tokens(ui.actor(), &name).await?;
    let live = tokens.iter().filter(|t| t.revoked_at.is_none()).count();
    let q = Confirm::new(
        format!("Revoke every token of {name}?"),
        format!("/admin/users/{name}/tokens/revoke"),
        "Revoke all tokens",
        format!("/admin/users/{name}"),
    )
    .line(format!("{name}'s {live} live API token(s) stop working at once; scripts using them are refused."));
    Ok(page(&ui, "admin/users", q))
}

async fn admin_delete_access_key(ui: Ctx, path: web::Path<(String, String)>) -> UiResult {
    let (name, id) = path.into_inner();
    let name = user_in_path(&name)?;
    let k = access_key(&ui, &name, &id).await?;
    let id = k.access_key_id;
    let q = Confirm::new(
        format!("Delete access key {id} of {name}?"),
        format!("/admin/users/{name}/access-keys/{id}/delete"),
        "Delete access key",
        format!("/admin/users/{name}"),
    )
    .line(format!("EC2 clients signing with {id} (acting in project {}) are refused from now on.", k.project));
    Ok(page(&ui, "admin/users", q))
}

async fn delete_shared(ui: Ctx, path: web::Path<(String, String)>) -> UiResult {
    let (instance, name) = path.into_inner();
    let not_found = || UiError::NotFound("No such shared credential.");
    let (instance, name) =
        (InstanceName::parse(&instance).map_err(|_| not_found())?, CredentialName::parse(&name).map_err(|_| not_found())?);
    let all = ui.broker.vault.list_shared(ui.actor()).await?;
    let c = all.into_iter().find(|c| c.instance == instance.as_str() && c.owner == name.as_str()).ok_or_else(not_found)?;
    let q = Confirm::new(
        format!("Delete shared credential {name} for {instance}?"),
        format!("/admin/credentials/{instance}/{name}/delete"),
        "Delete shared credential",
        "/admin/credentials",
    )
    .line(format!("Shared credential {name} (access key {}) is deleted with its grants.", c.access_key_id))
    .line("Projects granted it can no longer launch with it, nor act on addresses and volumes made with it.");
    Ok(page(&ui, "admin/credentials", q))
}

async fn delete_image(ui: Ctx, name: web::Path<String>) -> UiResult {
    let name = ImageName::parse(&name).map_err(|_| UiError::NotFound("No such image."))?;
    ui.broker.images.get(&name).await?;
    let q = Confirm::new(
        format!("Delete image {name}?"),
        format!("/admin/images/{name}/delete"),
        "Delete image",
        format!("/admin/images/{name}"),
    )
    .line(format!("Native image {name} is removed: new launches can no longer name it; VMs launched from it keep running."));
    Ok(page(&ui, "admin/images", q))
}

/// The price a price's Delete button names (the form's hidden fields).
#[derive(Deserialize, Default)]
pub(super) struct PriceQuery {
    #[serde(default)]
    instance: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    effective: String,
}

async fn delete_price(ui: Ctx, q: web::Query<PriceQuery>) -> UiResult {
    let p = q.into_inner();
    let effective = chrono::DateTime::parse_from_rfc3339(p.effective.trim()).map_err(|_| UiError::NotFound("No such price."))?;
    let what = format!("{} {} on {}", p.kind, p.name, p.instance);
    let q = Confirm::new(format!("Delete the price of {what}?"), "/admin/prices/delete", "Delete price", "/admin/prices")
        .field("instance", p.instance.clone())
        .field("kind", p.kind.clone())
        .field("name", p.name.clone())
        .field("effective", p.effective.clone())
        .line(format!(
            "The price of {what} from {} is deleted; the price before it (or the catalogue's) applies again from then.",
            when(&effective.with_timezone(&chrono::Utc))
        ));
    Ok(page(&ui, "admin/prices", q))
}
