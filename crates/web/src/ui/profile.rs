//! The dashboard and the profile: password (the current one required), SSH
//! public key, API tokens (the secret shown once, on the page that created
//! it, never again).

use super::form::{friendly, when, FormErrors};
use super::session::{csrf_ok, csrf_refused, SignedIn};
use super::{errors, html, page, redirect_with, Chrome};
use crate::common::auth::client_ip;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use cloudbroker_connector_api::SecretString;
use cloudbroker_core::domain::TokenId;
use cloudbroker_core::registry::Status;
use cloudbroker_core::Broker;
use serde::Deserialize;
use std::time::Duration;

pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/profile", web::get().to(profile))
        .route("/profile/password", web::post().to(change_password))
        .route("/profile/ssh-key", web::post().to(set_ssh_key))
        .route("/profile/tokens", web::post().to(create_token))
        .route("/profile/tokens/{id}/revoke", web::post().to(revoke_token));
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
}

impl InstanceRow {
    fn credential_class(&self) -> String {
        self.credential.replace(' ', "-")
    }
}

#[derive(Template)]
#[template(path = "home.html")]
struct HomePage {
    c: Chrome,
    rows: Vec<InstanceRow>,
    /// Admins: instances in error and configuration problems.
    problems: Vec<String>,
}

pub(super) async fn home(req: HttpRequest, me: SignedIn, broker: web::Data<Broker>) -> HttpResponse {
    let actor = &me.session.actor;
    let counts = match broker.provisioning.vm_counts(actor, Some(&actor.name)).await {
        Ok(c) => c,
        Err(e) => return errors::service_error_page(&req, &e),
    };
    let quotas = broker.provisioning.quotas(actor, &actor.name).await.unwrap_or_default();
    let creds = broker.vault.list_user(actor, &actor.name).await.unwrap_or_default();
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
        let quota = quotas
            .iter()
            .find(|q| q.instance == i.name)
            .map(|q| if q.enforced { format!("{} of {}", q.usage, q.limit) } else { format!("{} (quotas off)", q.usage) })
            .unwrap_or_default();
        let credential = match creds.iter().find(|c| c.instance == name) {
            Some(c) => c.status.clone(),
            None if !i.kind.needs_credentials() => "not needed".into(),
            None => "missing".into(),
        };
        rows.push(InstanceRow { name, kind: i.kind.to_string(), ready, problem, running, live, quota, credential });
    }
    if actor.is_admin {
        if let Ok(cfg) = broker.system.config(actor) {
            problems.extend(cfg.file_errors.into_iter().chain(cfg.errors));
        }
    }
    page(&HomePage { c: Chrome::new(&me, "home", "Dashboard"), rows, problems })
}

struct TokenRow {
    id: String,
    name: String,
    created: String,
    expires: String,
    last_used: String,
    revoked: bool,
}

#[derive(Template)]
#[template(path = "profile.html")]
struct ProfilePage {
    c: Chrome,
    ssh_key: String,
    tokens: Vec<TokenRow>,
    /// A token just created: its secret, shown this once.
    new_token: Option<String>,
    token_name: String,
    token_days: String,
    errors: FormErrors,
    /// Which form `errors` belong to (`password`, `ssh`, `token`).
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

async fn render(me: &SignedIn, broker: &Broker, mut p: ProfilePage) -> HttpResponse {
    let actor = &me.session.actor;
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
    html(p.errors.status(), &p)
}

fn blank(me: &SignedIn) -> ProfilePage {
    ProfilePage {
        c: Chrome::new(me, "profile", "Profile"),
        ssh_key: String::new(),
        tokens: vec![],
        new_token: None,
        token_name: String::new(),
        token_days: "30".into(),
        errors: FormErrors::none(),
        form: "",
    }
}

async fn profile(me: SignedIn, broker: web::Data<Broker>) -> HttpResponse {
    render(&me, &broker, blank(&me)).await
}

#[derive(Deserialize)]
pub(super) struct PasswordForm {
    csrf: Option<String>,
    current_password: String,
    new_password: String,
    confirm_password: String,
}

async fn change_password(req: HttpRequest, me: SignedIn, broker: web::Data<Broker>, form: web::Form<PasswordForm>) -> HttpResponse {
    let s = &me.session;
    if !csrf_ok(s, form.csrf.as_deref()) {
        return csrf_refused();
    }
    let mut p = blank(&me);
    p.form = "password";
    if form.new_password != form.confirm_password {
        p.errors = FormErrors::field("confirm_password", "the two new passwords differ");
        return render(&me, &broker, p).await;
    }
    let current = SecretString::new(form.current_password.clone());
    let new = SecretString::new(form.new_password.clone());
    match broker.identity.set_password(&s.actor, &s.actor.name, Some(&current), &new, client_ip(&req)).await {
        // Every session ended with the change: sign in again with the new password.
        Ok(()) => redirect_with(&req, &broker, "/login", "Password changed: sign in with the new one"),
        Err(e) => {
            let mut e = FormErrors::from_service(&e, &["current_password", "password"]);
            if let Some(m) = e.of("password").map(str::to_string) {
                e.add("new_password", m);
            }
            p.errors = e;
            render(&me, &broker, p).await
        }
    }
}

#[derive(Deserialize)]
pub(super) struct SshKeyForm {
    csrf: Option<String>,
    ssh_public_key: String,
}

async fn set_ssh_key(req: HttpRequest, me: SignedIn, broker: web::Data<Broker>, form: web::Form<SshKeyForm>) -> HttpResponse {
    let s = &me.session;
    if !csrf_ok(s, form.csrf.as_deref()) {
        return csrf_refused();
    }
    let key = form.ssh_public_key.trim();
    match broker.identity.set_ssh_key(&s.actor, &s.actor.name, (!key.is_empty()).then_some(key)).await {
        Ok(()) => redirect_with(&req, &broker, "/profile", if key.is_empty() { "SSH key removed" } else { "SSH key saved" }),
        Err(e) => {
            let mut p = blank(&me);
            p.form = "ssh";
            p.ssh_key = form.ssh_public_key.clone();
            p.errors = FormErrors::from_service(&e, &[]);
            if p.errors.general.is_some() {
                p.errors = FormErrors::field("ssh_public_key", friendly(&e));
            }
            render(&me, &broker, p).await
        }
    }
}

#[derive(Deserialize)]
pub(super) struct TokenForm {
    csrf: Option<String>,
    name: String,
    days: String,
}

async fn create_token(me: SignedIn, broker: web::Data<Broker>, form: web::Form<TokenForm>) -> HttpResponse {
    let s = &me.session;
    if !csrf_ok(s, form.csrf.as_deref()) {
        return csrf_refused();
    }
    let mut p = blank(&me);
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
                return render(&me, &broker, p).await;
            }
        }
    };
    match broker.identity.create_token(&s.actor, &s.actor.name, form.name.trim(), expires).await {
        Ok((raw, _)) => {
            p.form = "";
            p.token_name = String::new();
            p.c.flash = Some("Token created: copy it now, it is not shown again".into());
            p.new_token = Some(raw);
            render(&me, &broker, p).await
        }
        Err(e) => {
            let mut errs = FormErrors::from_service(&e, &["name"]);
            if let Some(m) = errs.of("expires_in_secs").map(str::to_string) {
                errs.add("days", m);
            }
            p.errors = errs;
            render(&me, &broker, p).await
        }
    }
}

#[derive(Deserialize)]
pub(super) struct CsrfOnly {
    csrf: Option<String>,
}

async fn revoke_token(
    req: HttpRequest,
    me: SignedIn,
    broker: web::Data<Broker>,
    id: web::Path<String>,
    form: web::Form<CsrfOnly>,
) -> HttpResponse {
    let s = &me.session;
    if !csrf_ok(s, form.csrf.as_deref()) {
        return csrf_refused();
    }
    let Ok(id) = TokenId::parse(&id) else {
        return errors::error_page(Some(&req), actix_web::http::StatusCode::NOT_FOUND, "Not found", "No such token.");
    };
    match broker.identity.revoke_token(&s.actor, &s.actor.name, &id).await {
        Ok(()) => redirect_with(&req, &broker, "/profile", "Token revoked"),
        Err(e) => errors::service_error_page(&req, &e),
    }
}
