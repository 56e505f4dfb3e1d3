//! The dashboard and the profile: password (the current one required; the
//! change can disable every EC2 access key in the same step), SSH
//! public key, API tokens and EC2 API access keys (creating one is
//! post/redirect/get: the secret is held for the session that made it and
//! shown once on the page the redirect leads to, never again, so reloading
//! that page creates nothing), and the default EC2 region that
//! SigV2 clients use. Every action goes through the same core service as
//! the JSON API's.

use super::context::{CsrfForm, Ctx};
use super::errors::{UiError, UiResult};
use super::form::{friendly, when, FormErrors};
use super::one_time::OneTime;
use super::{html, page, Chrome};
use crate::common::auth::client_ip;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use cloudbroker_connector_api::SecretString;
use cloudbroker_core::domain::{ProjectName, TokenId};
use cloudbroker_core::registry::Status;
use cloudbroker_core::{Broker, ServiceError};
use serde::Deserialize;
use std::time::Duration;

pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/profile", web::get().to(profile))
        .route("/profile/password", web::post().to(change_password))
        .route("/profile/ssh-key", web::post().to(set_ssh_key))
        .route("/profile/tokens", web::post().to(create_token))
        .route("/profile/tokens/{id}/revoke", web::post().to(revoke_token))
        .route("/profile/default-region", web::post().to(set_default_region))
        .route("/profile/access-keys", web::post().to(create_access_key))
        .route("/profile/access-keys/{id}/{op}", web::post().to(access_key_op));
}

/// One connector instance on the dashboard.
struct InstanceRow {
    name: String,
    kind: String,
    ready: bool,
    problem: String,
    running: i64,
    live: i64,
    quota: String,
    credential: String,
    /// The CSS class of `credential` (`cred-<class>`).
    class: String,
}

impl InstanceRow {
    fn credential_class(&self) -> String {
        self.class.replace(' ', "-")
    }
}

#[derive(Template)]
#[template(path = "home.html")]
struct HomePage {
    c: Chrome,
    rows: Vec<InstanceRow>,
    /// Admins: instances in error and configuration problems.
    problems: Vec<String>,
    /// This month's spend, burn rate and forecast (none if it could not be read).
    spend: Option<Spend>,
}

/// The dashboard's cost figures (the project's; admins: everyone's).
struct Spend {
    currency: String,
    /// Rounded to cents, the exact figures in `title`s.
    month_to_date: super::costs::Money,
    per_hour: super::costs::Money,
    forecast: super::costs::Money,
    running: u32,
    unpriced_running: u32,
    month: String,
}

pub(super) async fn home(ui: Ctx) -> UiResult {
    let (actor, broker) = (ui.actor(), &ui.broker);
    // The current project's VMs (in the personal one: the user's own there).
    let counts = broker.provisioning.project_vm_counts(actor, &actor.project).await?;
    let quotas = broker.provisioning.quotas(actor, &actor.name).await.unwrap_or_default();
    let team = !actor.in_personal_project();
    let project_quotas =
        if team { broker.provisioning.project_quotas(actor, &actor.project).await.unwrap_or_default() } else { Vec::new() };
    let creds = broker.vault.list_user(actor, &actor.name).await.unwrap_or_default();
    let project_creds = if team { broker.vault.list_project(actor, &actor.project).await.unwrap_or_default() } else { Vec::new() };
    let mut rows = Vec::new();
    let mut problems = Vec::new();
    for i in broker.system.connectors(actor) {
        let name = i.name.to_string();
        let (ready, problem) = match &i.status {
            Status::Ready => (true, String::new()),
            Status::Error { errors } => (false, errors.join("; ")),
        };
        if !ready && actor.is_admin {
            problems.push(format!("{name}: {problem}"));
        }
        let mine = counts.iter().filter(|c| c.instance == name);
        let running = mine.clone().filter(|c| c.state == "running").map(|c| c.count).sum();
        let live = mine.map(|c| c.count).sum();
        let mut quota = quotas
            .iter()
            .find(|q| q.instance == i.name)
            .map(|q| if q.enforced { format!("{} of {}", q.usage, q.limit) } else { format!("{} (quotas off)", q.usage) })
            .unwrap_or_default();
        if let Some(pq) = project_quotas.iter().find(|q| q.instance == i.name) {
            quota = match pq.limit {
                Some(l) if pq.enforced => format!("you: {quota}; project: {} of {l}", pq.usage),
                _ => format!("you: {quota}; project: {} (no limit)", pq.usage),
            };
        }
        // The same order as a launch picks them (and the Credentials page says).
        let shared = broker.vault.shared_for(actor, &i.name).await.ok().flatten();
        let (credential, class) = match (creds.iter().find(|c| c.instance == name), project_creds.iter().find(|c| c.instance == name)) {
            (Some(c), _) => (c.status.clone(), c.status.clone()),
            (None, Some(p)) => (format!("project's, {}", p.status), p.status.clone()),
            (None, None) if shared.is_some() => (format!("shared: {}", shared.unwrap_or_default()), "shared".into()),
            (None, None) if !i.kind.needs_credentials() => ("not needed".into(), "not needed".into()),
            (None, None) => ("missing".into(), "missing".into()),
        };
        rows.push(InstanceRow { name, kind: i.kind.to_string(), ready, problem, running, live, quota, credential, class });
    }
    if actor.is_admin {
        if let Ok(cfg) = broker.system.config(actor) {
            problems.extend(cfg.file_errors.into_iter().chain(cfg.errors));
        }
    }
    let spend = match broker.costs.burn(actor).await {
        Ok(b) => Some(Spend {
            month: b.period.from.format("%B %Y").to_string(),
            currency: b.currency,
            month_to_date: super::costs::Money::of(b.month_to_date),
            per_hour: super::costs::Money::of(b.per_hour),
            forecast: super::costs::Money::of(b.forecast),
            running: b.running,
            unpriced_running: b.unpriced_running,
        }),
        Err(e) => {
            tracing::warn!(error = %e, "dashboard: costs");
            None
        }
    };
    Ok(page(&HomePage { c: ui.chrome("home", "Dashboard"), rows, problems, spend }))
}

struct TokenRow {
    id: String,
    name: String,
    created: String,
    expires: String,
    last_used: String,
    revoked: bool,
}

struct KeyRow {
    id: String,
    /// The project the key acts in.
    project: String,
    created: String,
    last_used: String,
    expires: String,
    /// `active`, `disabled` or `expired`.
    state: String,
}

/// An access key just created: its secret, shown this once, with an awscli example.
#[derive(Clone)]
struct NewKey {
    id: String,
    secret: String,
    example: String,
}

#[derive(Template)]
#[template(path = "profile.html")]
struct ProfilePage {
    c: Chrome,
    ssh_key: String,
    tokens: Vec<TokenRow>,
    /// A token just created: its secret, shown this once.
    new_token: Option<String>,
    access_keys: Vec<KeyRow>,
    new_key: Option<NewKey>,
    /// The connector instances (EC2 regions) to choose the default from.
    regions: Vec<String>,
    /// The default EC2 region chosen (or being submitted).
    default_region: String,
    /// The project a new access key is for (the current one by default).
    key_project: String,
    token_name: String,
    token_days: String,
    errors: FormErrors,
    /// Which form `errors` belong to (`password`, `ssh`, `token`, `region`, `keys`).
    form: &'static str,
}

impl ProfilePage {
    fn err(&self, form: &str, field: &str) -> Option<&str> {
        if self.form == form {
            self.errors.of(field)
        } else {
            None
        }
    }
}

async fn render(ui: &Ctx, mut p: ProfilePage) -> HttpResponse {
    let (actor, broker) = (ui.actor(), &ui.broker);
    if p.ssh_key.is_empty() && p.form != "ssh" {
        p.ssh_key = broker.identity.get_user(actor, &actor.name).await.ok().and_then(|u| u.ssh_public_key).unwrap_or_default();
    }
    p.tokens = broker
        .identity
        .list_tokens(actor, &actor.name)
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|t| TokenRow {
            id: t.id.to_string(),
            name: t.name,
            created: when(&t.created_at),
            expires: t.expires_at.as_ref().map(when).unwrap_or_else(|| "never".into()),
            last_used: t.last_used_at.as_ref().map(when).unwrap_or_else(|| "never".into()),
            revoked: t.revoked_at.is_some(),
        })
        .collect();
    p.access_keys = broker
        .access_keys
        .list(actor, &actor.name)
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|k| KeyRow {
            id: k.access_key_id,
            project: k.project.to_string(),
            created: when(&k.created_at),
            last_used: k.last_used_at.as_ref().map(when).unwrap_or_else(|| "never".into()),
            expires: k.expires_at.as_ref().map(when).unwrap_or_else(|| "no expiry".into()),
            state: k.state,
        })
        .collect();
    p.regions = broker.system.connectors(actor).into_iter().map(|i| i.name.to_string()).collect();
    if p.form != "region" {
        p.default_region = broker.identity.get_user(actor, &actor.name).await.ok().and_then(|u| u.default_ec2_region).unwrap_or_default();
    }
    html(p.errors.status(), &p)
}

fn blank(ui: &Ctx) -> ProfilePage {
    ProfilePage {
        c: ui.chrome("profile", "Profile"),
        ssh_key: String::new(),
        tokens: vec![],
        new_token: None,
        access_keys: vec![],
        new_key: None,
        regions: vec![],
        default_region: String::new(),
        key_project: ui.actor().project.to_string(),
        token_name: String::new(),
        token_days: "30".into(),
        errors: FormErrors::none(),
        form: "",
    }
}

async fn profile(ui: Ctx) -> HttpResponse {
    let mut p = blank(&ui);
    p.new_key = NEW_KEYS.take(&ui.me.raw);
    render(&ui, p).await
}

/// The secrets of access keys just created (shown once).
static NEW_KEYS: OneTime<NewKey> = OneTime::new();

#[derive(Deserialize)]
pub(super) struct PasswordForm {
    current_password: String,
    new_password: String,
    confirm_password: String,
    /// The "also disable my EC2 access keys" box (present when ticked).
    disable_access_keys: Option<String>,
}

async fn change_password(ui: Ctx, form: CsrfForm<PasswordForm>) -> HttpResponse {
    let actor = ui.actor();
    let mut p = blank(&ui);
    p.form = "password";
    if form.new_password != form.confirm_password {
        p.errors = FormErrors::field("confirm_password", "the two new passwords differ");
        return render(&ui, p).await;
    }
    let current = SecretString::new(form.current_password.clone());
    let new = SecretString::new(form.new_password.clone());
    let disable_keys = form.disable_access_keys.is_some();
    match ui.broker.identity.change_password(actor, &actor.name, Some(&current), &new, client_ip(&ui.req), disable_keys).await {
        // Every session ended with the change: sign in again with the new password.
        Ok(()) => ui.redirect_with("/login", "Password changed: sign in with the new one"),
        Err(e) => {
            let mut e = FormErrors::from_service(&e, &["current_password", "password"]);
            if let Some(m) = e.of("password").map(str::to_string) {
                e.add("new_password", m);
            }
            p.errors = e;
            render(&ui, p).await
        }
    }
}

#[derive(Deserialize)]
pub(super) struct SshKeyForm {
    ssh_public_key: String,
}

async fn set_ssh_key(ui: Ctx, form: CsrfForm<SshKeyForm>) -> HttpResponse {
    let actor = ui.actor();
    let key = form.ssh_public_key.trim();
    match ui.broker.identity.set_ssh_key(actor, &actor.name, (!key.is_empty()).then_some(key)).await {
        Ok(()) => ui.redirect_with("/profile", if key.is_empty() { "SSH key removed" } else { "SSH key saved" }),
        Err(e) => {
            let mut p = blank(&ui);
            p.form = "ssh";
            p.ssh_key = form.ssh_public_key.clone();
            p.errors = FormErrors::from_service(&e, &[]);
            if p.errors.general.is_some() {
                p.errors = FormErrors::field("ssh_public_key", friendly(&e));
            }
            render(&ui, p).await
        }
    }
}

#[derive(Deserialize)]
pub(super) struct TokenForm {
    name: String,
    days: String,
}

async fn create_token(ui: Ctx, form: CsrfForm<TokenForm>) -> HttpResponse {
    let actor = ui.actor();
    let mut p = blank(&ui);
    p.form = "token";
    p.token_name = form.name.clone();
    p.token_days = form.days.clone();
    let days = form.days.trim();
    let expires = if days.is_empty() {
        None
    } else {
        match days.parse::<u64>() {
            Ok(d) if (1..=3650).contains(&d) => Some(Duration::from_secs(d * 86_400)),
            _ => {
                p.errors = FormErrors::field("days", "give a whole number of days from 1 to 3650, or leave empty for no expiry");
                return render(&ui, p).await;
            }
        }
    };
    match ui.broker.identity.create_token(actor, &actor.name, form.name.trim(), expires).await {
        Ok((raw, _)) => {
            p.form = "";
            p.token_name = String::new();
            p.c.flash = Some("Token created: copy it now, it is not shown again".into());
            p.new_token = Some(raw);
            render(&ui, p).await
        }
        Err(e) => {
            let mut errs = FormErrors::from_service(&e, &["name"]);
            if let Some(m) = errs.of("expires_in_secs").map(str::to_string) {
                errs.add("days", m);
            }
            p.errors = errs;
            render(&ui, p).await
        }
    }
}

async fn revoke_token(ui: Ctx, id: web::Path<String>, _: CsrfForm) -> UiResult {
    let id = TokenId::parse(&id).map_err(|_| UiError::NotFound("No such token."))?;
    let actor = ui.actor();
    ui.broker.identity.revoke_token(actor, &actor.name, &id).await?;
    Ok(ui.redirect_with("/profile", "Token revoked"))
}

#[derive(Deserialize)]
pub(super) struct RegionForm {
    default_ec2_region: String,
}

async fn set_default_region(ui: Ctx, form: CsrfForm<RegionForm>) -> HttpResponse {
    let actor = ui.actor();
    let region = form.default_ec2_region.trim();
    match ui.broker.set_default_ec2_region(actor, &actor.name, Some(region)).await {
        Ok(()) if region.is_empty() => ui.redirect_with("/profile", "Default EC2 region cleared"),
        Ok(()) => ui.redirect_with("/profile", &format!("Default EC2 region set to {region}")),
        Err(e) => {
            let mut p = blank(&ui);
            p.form = "region";
            p.default_region = form.default_ec2_region.clone();
            p.errors = FormErrors::from_service(&e, &["default_ec2_region"]);
            render(&ui, p).await
        }
    }
}

/// `scheme://host` of this broker as clients reach it (the configured public URL first).
fn base_url(req: &HttpRequest, broker: &Broker) -> String {
    match &broker.config.public_url {
        Some(u) => u.trim_end_matches('/').to_string(),
        None => {
            let info = req.connection_info();
            format!("{}://{}", info.scheme(), info.host())
        }
    }
}

#[derive(Deserialize, Default)]
pub(super) struct AccessKeyForm {
    /// The project the key acts in (empty: the personal project).
    #[serde(default)]
    project: String,
}

async fn create_access_key(ui: Ctx, form: CsrfForm<AccessKeyForm>) -> HttpResponse {
    let (actor, broker) = (ui.actor(), &ui.broker);
    let mut p = blank(&ui);
    p.form = "keys";
    let project = match form.project.trim() {
        "" => None,
        name => match ProjectName::parse(name) {
            Ok(n) => Some(n),
            Err(e) => {
                p.key_project = form.project.clone();
                p.errors = FormErrors::field("project", e.message);
                return render(&ui, p).await;
            }
        },
    };
    p.key_project = project.as_ref().map(ToString::to_string).unwrap_or_else(|| actor.name.to_string());
    match broker.access_keys.create_in(actor, &actor.name, project.as_ref(), None).await {
        Ok((key, secret)) => {
            let default = broker.identity.get_user(actor, &actor.name).await.ok().and_then(|u| u.default_ec2_region);
            let region = default
                .or_else(|| broker.system.connectors(actor).into_iter().next().map(|i| i.name.to_string()))
                .unwrap_or_else(|| "REGION".into());
            let example = format!(
                "AWS_ACCESS_KEY_ID={} AWS_SECRET_ACCESS_KEY={} aws --endpoint-url {}/ec2 --region {region} ec2 describe-instances",
                key.access_key_id,
                secret.expose(),
                base_url(&ui.req, broker)
            );
            // Post/redirect/get: reloading the page that shows the secret creates nothing.
            // Every page is sent `no-store` (see `html`): no cache keeps the secret.
            NEW_KEYS.put(&ui.me.raw, NewKey { id: key.access_key_id, secret: secret.expose().to_string(), example });
            ui.redirect_with("/profile", "Access key created: copy its secret now, it is not shown again")
        }
        Err(e) => {
            p.errors = FormErrors::from_service(&e, &["project"]);
            if let ServiceError::NotFound(_) = e {
                p.errors = FormErrors::field("project", format!("You are not a member of a project named {}.", p.key_project));
            }
            render(&ui, p).await
        }
    }
}

async fn access_key_op(ui: Ctx, path: web::Path<(String, String)>, _: CsrfForm) -> UiResult {
    let (id, op) = path.into_inner();
    let (actor, broker) = (ui.actor(), &ui.broker);
    let user = &actor.name;
    let done = match op.as_str() {
        "disable" => broker.access_keys.set_active(actor, user, &id, false).await.map(|_| "Access key disabled"),
        "enable" => broker.access_keys.set_active(actor, user, &id, true).await.map(|_| "Access key enabled"),
        "delete" => broker.access_keys.delete(actor, user, &id).await.map(|()| "Access key deleted"),
        _ => return Err(UiError::NotFound("No such action.")),
    };
    Ok(ui.redirect_with("/profile", done?))
}
