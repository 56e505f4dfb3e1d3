//! Users (admin): the list with role, state and live VM counts; create;
//! per user: admin role, disable / enable (a disabled user cannot sign in
//! or use tokens; their VMs stay), reset password (which also disables
//! their EC2 access keys), revoke tokens, their EC2 access keys (disable,
//! enable, delete), and quota overrides per instance next to usage and the
//! effective limit with its origin (override / instance `quota.vm` / default).

use super::form::{when, FormErrors};
use super::session::{csrf_ok, csrf_refused, SignedIn};
use super::{errors, html, redirect_with, Chrome};
use crate::common::auth::client_ip;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use cloudbroker_connector_api::SecretString;
use cloudbroker_core::domain::{InstanceName, UserName};
use cloudbroker_core::provisioning::QuotaSource;
use cloudbroker_core::Broker;
use serde::Deserialize;

pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/users", web::get().to(list))
        .route("/users", web::post().to(create))
        .route("/users/{name}", web::get().to(detail))
        .route("/users/{name}/admin", web::post().to(set_admin))
        .route("/users/{name}/disabled", web::post().to(set_disabled))
        .route("/users/{name}/password", web::post().to(reset_password))
        .route("/users/{name}/tokens/revoke", web::post().to(revoke_tokens))
        .route("/users/{name}/access-keys/{id}/{op}", web::post().to(access_key_op))
        .route("/users/{name}/quotas", web::post().to(set_quota));
}

struct UserRow {
    name: String,
    admin: bool,
    disabled: bool,
    created: String,
    live: i64,
}

#[derive(Deserialize, Default)]
pub(super) struct NewUserForm {
    csrf: Option<String>,
    #[serde(default)]
    name: String,
    #[serde(default)]
    password: String,
    admin: Option<String>,
}

#[derive(Template)]
#[template(path = "admin_users.html")]
struct ListPage {
    c: Chrome,
    rows: Vec<UserRow>,
    new_name: String,
    new_admin: bool,
    errors: FormErrors,
}

async fn render_list(req: &HttpRequest, me: &SignedIn, broker: &Broker, form: NewUserForm, errs: FormErrors) -> HttpResponse {
    let actor = &me.session.actor;
    let users = match broker.identity.list_users(actor).await {
        Ok(u) => u,
        Err(e) => return errors::service_error_page(req, &e),
    };
    let counts = broker.provisioning.vm_counts(actor, None).await.unwrap_or_default();
    let rows = users
        .into_iter()
        .map(|u| UserRow {
            live: counts.iter().filter(|c| c.user == u.name.as_str()).map(|c| c.count).sum(),
            name: u.name.to_string(),
            admin: u.is_admin,
            disabled: u.disabled_at.is_some(),
            created: when(&u.created_at),
        })
        .collect();
    let page =
        ListPage { c: Chrome::new(me, "admin/users", "Users"), rows, new_name: form.name, new_admin: form.admin.is_some(), errors: errs };
    html(page.errors.status(), &page)
}

async fn list(req: HttpRequest, me: SignedIn, broker: web::Data<Broker>) -> HttpResponse {
    render_list(&req, &me, &broker, NewUserForm::default(), FormErrors::none()).await
}

async fn create(req: HttpRequest, me: SignedIn, broker: web::Data<Broker>, form: web::Form<NewUserForm>) -> HttpResponse {
    let s = &me.session;
    if !csrf_ok(s, form.csrf.as_deref()) {
        return csrf_refused();
    }
    let form = form.into_inner();
    let name = match UserName::parse(form.name.trim()) {
        Ok(n) => n,
        Err(e) => return render_list(&req, &me, &broker, form, FormErrors::field("name", e.message)).await,
    };
    let pw = SecretString::new(form.password.clone());
    match broker.identity.create_user(&s.actor, &name, &pw, form.admin.is_some()).await {
        Ok(_) => redirect_with(&req, &broker, &format!("/admin/users/{name}"), &format!("User {name} created")),
        Err(e) => {
            let errs = FormErrors::from_service(&e, &["name", "password"]);
            render_list(&req, &me, &broker, form, errs).await
        }
    }
}

struct QuotaRow {
    instance: String,
    usage: i64,
    limit: i64,
    source: &'static str,
    override_value: String,
}

struct TokenRow {
    name: String,
    created: String,
    revoked: bool,
}

struct KeyRow {
    id: String,
    /// `active`, `disabled` or `expired`.
    state: String,
    created: String,
    last_used: String,
    expires: String,
}

#[derive(Template)]
#[template(path = "admin_user.html")]
struct DetailPage {
    c: Chrome,
    name: String,
    admin: bool,
    disabled: bool,
    created: String,
    ssh_key: String,
    quotas_enforced: bool,
    quotas: Vec<QuotaRow>,
    tokens: Vec<TokenRow>,
    access_keys: Vec<KeyRow>,
    errors: FormErrors,
    /// The quota form that failed: (instance, typed value).
    typed_quota: Option<(String, String)>,
}

impl DetailPage {
    fn quota_value(&self, instance: &str, stored: &str) -> String {
        match &self.typed_quota {
            Some((i, v)) if i == instance => v.clone(),
            _ => stored.to_string(),
        }
    }
    fn quota_error(&self, instance: &str) -> Option<&str> {
        match &self.typed_quota {
            Some((i, _)) if i == instance => self.errors.of("vm"),
            _ => None,
        }
    }
}

fn user_in_path(req: &HttpRequest, s: &str) -> Result<UserName, Box<HttpResponse>> {
    UserName::parse(s).map_err(|_| Box::new(errors::error_page(Some(req), StatusCode::NOT_FOUND, "Not found", "No such user.")))
}

async fn render_detail(
    req: &HttpRequest,
    me: &SignedIn,
    broker: &Broker,
    name: &UserName,
    errs: FormErrors,
    typed_quota: Option<(String, String)>,
) -> HttpResponse {
    let actor = &me.session.actor;
    let u = match broker.identity.get_user(actor, name).await {
        Ok(u) => u,
        Err(e) => return errors::service_error_page(req, &e),
    };
    let quotas = broker.provisioning.quotas(actor, name).await.unwrap_or_default();
    let enforced = quotas.first().is_some_and(|q| q.enforced);
    let quotas = quotas
        .into_iter()
        .map(|q| QuotaRow {
            instance: q.instance.to_string(),
            usage: q.usage,
            limit: q.limit,
            source: match q.source {
                QuotaSource::Override => "override",
                QuotaSource::Instance => "instance quota.vm",
                QuotaSource::Default => "default",
            },
            override_value: if q.source == QuotaSource::Override { q.limit.to_string() } else { String::new() },
        })
        .collect();
    let tokens = broker
        .identity
        .list_tokens(actor, name)
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|t| TokenRow { name: t.name, created: when(&t.created_at), revoked: t.revoked_at.is_some() })
        .collect();
    let access_keys = match broker.vault.list_access_keys(actor, name).await {
        Ok(k) => k,
        Err(e) => return errors::service_error_page(req, &e),
    };
    let access_keys = access_keys
        .into_iter()
        .map(|k| KeyRow {
            id: k.access_key_id,
            state: k.state,
            created: when(&k.created_at),
            last_used: k.last_used_at.as_ref().map(when).unwrap_or_else(|| "never".into()),
            expires: k.expires_at.as_ref().map(when).unwrap_or_else(|| "no expiry".into()),
        })
        .collect();
    let page = DetailPage {
        c: Chrome::new(me, "admin/users", format!("User {name}")),
        name: name.to_string(),
        admin: u.is_admin,
        disabled: u.disabled_at.is_some(),
        created: when(&u.created_at),
        ssh_key: u.ssh_public_key.unwrap_or_default(),
        quotas_enforced: enforced,
        quotas,
        tokens,
        access_keys,
        errors: errs,
        typed_quota,
    };
    html(page.errors.status(), &page)
}

async fn detail(req: HttpRequest, me: SignedIn, broker: web::Data<Broker>, name: web::Path<String>) -> HttpResponse {
    match user_in_path(&req, &name) {
        Ok(n) => render_detail(&req, &me, &broker, &n, FormErrors::none(), None).await,
        Err(r) => *r,
    }
}

#[derive(Deserialize)]
pub(super) struct FlagForm {
    csrf: Option<String>,
    value: String,
}

async fn set_admin(
    req: HttpRequest,
    me: SignedIn,
    broker: web::Data<Broker>,
    name: web::Path<String>,
    form: web::Form<FlagForm>,
) -> HttpResponse {
    if !csrf_ok(&me.session, form.csrf.as_deref()) {
        return csrf_refused();
    }
    let name = match user_in_path(&req, &name) {
        Ok(n) => n,
        Err(r) => return *r,
    };
    let on = form.value == "true";
    match broker.identity.set_admin(&me.session.actor, &name, on).await {
        Ok(()) => redirect_with(
            &req,
            &broker,
            &format!("/admin/users/{name}"),
            &format!("{name} is {}", if on { "now an admin" } else { "no longer an admin" }),
        ),
        Err(e) => render_detail(&req, &me, &broker, &name, FormErrors::general(super::form::friendly(&e)), None).await,
    }
}

async fn set_disabled(
    req: HttpRequest,
    me: SignedIn,
    broker: web::Data<Broker>,
    name: web::Path<String>,
    form: web::Form<FlagForm>,
) -> HttpResponse {
    if !csrf_ok(&me.session, form.csrf.as_deref()) {
        return csrf_refused();
    }
    let name = match user_in_path(&req, &name) {
        Ok(n) => n,
        Err(r) => return *r,
    };
    let off = form.value == "true";
    match broker.identity.set_disabled(&me.session.actor, &name, off).await {
        Ok(_) => redirect_with(
            &req,
            &broker,
            &format!("/admin/users/{name}"),
            &if off {
                format!("{name} disabled: signed out everywhere, tokens revoked; their VMs stay")
            } else {
                format!("{name} enabled")
            },
        ),
        Err(e) => render_detail(&req, &me, &broker, &name, FormErrors::general(super::form::friendly(&e)), None).await,
    }
}

#[derive(Deserialize)]
pub(super) struct PasswordForm {
    csrf: Option<String>,
    password: String,
}

async fn reset_password(
    req: HttpRequest,
    me: SignedIn,
    broker: web::Data<Broker>,
    name: web::Path<String>,
    form: web::Form<PasswordForm>,
) -> HttpResponse {
    if !csrf_ok(&me.session, form.csrf.as_deref()) {
        return csrf_refused();
    }
    let name = match user_in_path(&req, &name) {
        Ok(n) => n,
        Err(r) => return *r,
    };
    if name == me.session.actor.name {
        return render_detail(
            &req,
            &me,
            &broker,
            &name,
            FormErrors::field("password", "change your own password in your profile (it needs the current one)"),
            None,
        )
        .await;
    }
    let pw = SecretString::new(form.password.clone());
    match broker.identity.set_password(&me.session.actor, &name, None, &pw, client_ip(&req)).await {
        Ok(()) => redirect_with(
            &req,
            &broker,
            &format!("/admin/users/{name}"),
            &format!("Password of {name} reset; their sessions and tokens ended and their access keys are disabled"),
        ),
        Err(e) => render_detail(&req, &me, &broker, &name, FormErrors::from_service(&e, &["password"]), None).await,
    }
}

#[derive(Deserialize)]
pub(super) struct CsrfOnly {
    csrf: Option<String>,
}

async fn revoke_tokens(
    req: HttpRequest,
    me: SignedIn,
    broker: web::Data<Broker>,
    name: web::Path<String>,
    form: web::Form<CsrfOnly>,
) -> HttpResponse {
    if !csrf_ok(&me.session, form.csrf.as_deref()) {
        return csrf_refused();
    }
    let name = match user_in_path(&req, &name) {
        Ok(n) => n,
        Err(r) => return *r,
    };
    let actor = &me.session.actor;
    let tokens = match broker.identity.list_tokens(actor, &name).await {
        Ok(t) => t,
        Err(e) => return errors::service_error_page(&req, &e),
    };
    let mut n = 0;
    for t in tokens.iter().filter(|t| t.revoked_at.is_none()) {
        if let Err(e) = broker.identity.revoke_token(actor, &name, &t.id).await {
            return errors::service_error_page(&req, &e);
        }
        n += 1;
    }
    redirect_with(&req, &broker, &format!("/admin/users/{name}"), &format!("{n} token(s) of {name} revoked"))
}

/// Disables, enables or deletes one of the user's EC2 access keys.
async fn access_key_op(
    req: HttpRequest,
    me: SignedIn,
    broker: web::Data<Broker>,
    path: web::Path<(String, String, String)>,
    form: web::Form<CsrfOnly>,
) -> HttpResponse {
    if !csrf_ok(&me.session, form.csrf.as_deref()) {
        return csrf_refused();
    }
    let (name, id, op) = path.into_inner();
    let name = match user_in_path(&req, &name) {
        Ok(n) => n,
        Err(r) => return *r,
    };
    let actor = &me.session.actor;
    let done = match op.as_str() {
        "disable" => broker.vault.set_access_key_active(actor, &name, &id, false).await.map(|_| "disabled"),
        "enable" => broker.vault.set_access_key_active(actor, &name, &id, true).await.map(|_| "enabled"),
        "delete" => broker.vault.delete_access_key(actor, &name, &id).await.map(|()| "deleted"),
        _ => return errors::error_page(Some(&req), StatusCode::NOT_FOUND, "Not found", "No such action."),
    };
    match done {
        Ok(what) => redirect_with(&req, &broker, &format!("/admin/users/{name}"), &format!("Access key {id} of {name} {what}")),
        Err(e) => errors::service_error_page(&req, &e),
    }
}

#[derive(Deserialize)]
pub(super) struct QuotaForm {
    csrf: Option<String>,
    instance: String,
    vm: String,
}

async fn set_quota(
    req: HttpRequest,
    me: SignedIn,
    broker: web::Data<Broker>,
    name: web::Path<String>,
    form: web::Form<QuotaForm>,
) -> HttpResponse {
    if !csrf_ok(&me.session, form.csrf.as_deref()) {
        return csrf_refused();
    }
    let name = match user_in_path(&req, &name) {
        Ok(n) => n,
        Err(r) => return *r,
    };
    let typed = Some((form.instance.clone(), form.vm.clone()));
    let Ok(instance) = InstanceName::parse(&form.instance) else {
        return render_detail(&req, &me, &broker, &name, FormErrors::general("no such connector instance"), None).await;
    };
    let limit = match form.vm.trim() {
        "" => None,
        v => match v.parse::<i64>() {
            Ok(n) => Some(n),
            Err(_) => {
                return render_detail(
                    &req,
                    &me,
                    &broker,
                    &name,
                    FormErrors::field("vm", "a whole number, or empty to remove the override"),
                    typed,
                )
                .await
            }
        },
    };
    match broker.provisioning.set_quota(&me.session.actor, &name, &instance, limit).await {
        Ok(q) => redirect_with(&req, &broker, &format!("/admin/users/{name}"), &format!("Quota of {name} on {instance}: {} VMs", q.limit)),
        Err(e) => render_detail(&req, &me, &broker, &name, FormErrors::from_service(&e, &["vm"]), typed).await,
    }
}
