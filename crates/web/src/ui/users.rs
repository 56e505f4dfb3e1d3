//! Users (admin): the list with role, state and live VM counts; create;
//! per user: admin role, disable / enable (a disabled user cannot sign in
//! or use tokens; their VMs stay), reset password (which also disables
//! their EC2 access keys), revoke tokens, their EC2 access keys (disable,
//! enable, delete), and quota overrides per instance next to usage and the
//! effective limit with its origin (override / instance `quota.vm` / default);
//! and what the user has in any project, with an admin's actions on it
//! (see [`super::user_resources`]).

use super::context::{CsrfForm, Ctx};
use super::errors::{UiError, UiResult};
use super::form::{when, FormErrors};
use super::{html, Chrome};
use crate::common::auth::client_ip;
use actix_web::web;
use askama::Template;
use cloudbroker_connector_api::SecretString;
use cloudbroker_core::domain::{InstanceName, UserName};
use cloudbroker_core::provisioning::QuotaSource;
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
        .route("/users/{name}/quotas", web::post().to(set_quota))
        .configure(super::user_resources::routes);
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

async fn render_list(ui: &Ctx, form: NewUserForm, errs: FormErrors) -> UiResult {
    let (actor, broker) = (ui.actor(), &ui.broker);
    let users = broker.identity.list_users(actor).await?;
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
    let page = ListPage { c: ui.chrome("admin/users", "Users"), rows, new_name: form.name, new_admin: form.admin.is_some(), errors: errs };
    Ok(html(page.errors.status(), &page))
}

async fn list(ui: Ctx) -> UiResult {
    render_list(&ui, NewUserForm::default(), FormErrors::none()).await
}

async fn create(ui: Ctx, form: CsrfForm<NewUserForm>) -> UiResult {
    let form = form.into_inner();
    let name = match UserName::parse(form.name.trim()) {
        Ok(n) => n,
        Err(e) => return render_list(&ui, form, FormErrors::field("name", e.message)).await,
    };
    let pw = SecretString::new(form.password.clone());
    match ui.broker.identity.create_user(ui.actor(), &name, &pw, form.admin.is_some()).await {
        Ok(_) => Ok(ui.redirect_with(&format!("/admin/users/{name}"), &format!("User {name} created"))),
        Err(e) => {
            let errs = FormErrors::from_service(&e, &["name", "password"]);
            render_list(&ui, form, errs).await
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
    /// Their VMs, volumes, addresses and key pairs, in any project.
    res: super::user_resources::Resources,
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

fn user_in_path(s: &str) -> Result<UserName, UiError> {
    UserName::parse(s).map_err(|_| UiError::NotFound("No such user."))
}

async fn render_detail(ui: &Ctx, name: &UserName, errs: FormErrors, typed_quota: Option<(String, String)>) -> UiResult {
    let (actor, broker) = (ui.actor(), &ui.broker);
    let u = broker.identity.get_user(actor, name).await?;
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
    let access_keys = broker.access_keys.list(actor, name).await?;
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
    let res = super::user_resources::load(ui, name).await?;
    let page = DetailPage {
        c: ui.chrome("admin/users", format!("User {name}")),
        name: name.to_string(),
        admin: u.is_admin,
        disabled: u.disabled_at.is_some(),
        created: when(&u.created_at),
        ssh_key: u.ssh_public_key.unwrap_or_default(),
        quotas_enforced: enforced,
        quotas,
        tokens,
        access_keys,
        res,
        errors: errs,
        typed_quota,
    };
    Ok(html(page.errors.status(), &page))
}

async fn detail(ui: Ctx, name: web::Path<String>) -> UiResult {
    render_detail(&ui, &user_in_path(&name)?, FormErrors::none(), None).await
}

#[derive(Deserialize)]
pub(super) struct FlagForm {
    value: String,
}

async fn set_admin(ui: Ctx, name: web::Path<String>, form: CsrfForm<FlagForm>) -> UiResult {
    let name = user_in_path(&name)?;
    let on = form.value == "true";
    match ui.broker.identity.set_admin(ui.actor(), &name, on).await {
        Ok(()) => Ok(ui.redirect_with(
            &format!("/admin/users/{name}"),
            &format!("{name} is {}", if on { "now an admin" } else { "no longer an admin" }),
        )),
        Err(e) => render_detail(&ui, &name, FormErrors::general(super::form::friendly(&e)), None).await,
    }
}

async fn set_disabled(ui: Ctx, name: web::Path<String>, form: CsrfForm<FlagForm>) -> UiResult {
    let name = user_in_path(&name)?;
    let off = form.value == "true";
    match ui.broker.identity.set_disabled(ui.actor(), &name, off).await {
        Ok(_) => Ok(ui.redirect_with(
            &format!("/admin/users/{name}"),
            &if off {
                format!("{name} disabled: signed out everywhere, tokens revoked; their VMs stay")
            } else {
                format!("{name} enabled")
            },
        )),
        Err(e) => render_detail(&ui, &name, FormErrors::general(super::form::friendly(&e)), None).await,
    }
}

#[derive(Deserialize)]
pub(super) struct PasswordForm {
    password: String,
}

async fn reset_password(ui: Ctx, name: web::Path<String>, form: CsrfForm<PasswordForm>) -> UiResult {
    let name = user_in_path(&name)?;
    if name == ui.actor().name {
        return render_detail(
            &ui,
            &name,
            FormErrors::field("password", "change your own password in your profile (it needs the current one)"),
            None,
        )
        .await;
    }
    let pw = SecretString::new(form.password.clone());
    match ui.broker.identity.set_password(ui.actor(), &name, None, &pw, client_ip(&ui.req)).await {
        Ok(()) => Ok(ui.redirect_with(
            &format!("/admin/users/{name}"),
            &format!("Password of {name} reset; their sessions and tokens ended and their access keys are disabled"),
        )),
        Err(e) => render_detail(&ui, &name, FormErrors::from_service(&e, &["password"]), None).await,
    }
}

async fn revoke_tokens(ui: Ctx, name: web::Path<String>, _: CsrfForm) -> UiResult {
    let name = user_in_path(&name)?;
    let (actor, broker) = (ui.actor(), &ui.broker);
    let tokens = broker.identity.list_tokens(actor, &name).await?;
    let mut n = 0;
    for t in tokens.iter().filter(|t| t.revoked_at.is_none()) {
        broker.identity.revoke_token(actor, &name, &t.id).await?;
        n += 1;
    }
    Ok(ui.redirect_with(&format!("/admin/users/{name}"), &format!("{n} token(s) of {name} revoked")))
}

/// Disables, enables or deletes one of the user's EC2 access keys.
async fn access_key_op(ui: Ctx, path: web::Path<(String, String, String)>, _: CsrfForm) -> UiResult {
    let (name, id, op) = path.into_inner();
    let name = user_in_path(&name)?;
    let (actor, broker) = (ui.actor(), &ui.broker);
    let done = match op.as_str() {
        "disable" => broker.access_keys.set_active(actor, &name, &id, false).await.map(|_| "disabled"),
        "enable" => broker.access_keys.set_active(actor, &name, &id, true).await.map(|_| "enabled"),
        "delete" => broker.access_keys.delete(actor, &name, &id).await.map(|()| "deleted"),
        _ => return Err(UiError::NotFound("No such action.")),
    };
    Ok(ui.redirect_with(&format!("/admin/users/{name}"), &format!("Access key {id} of {name} {}", done?)))
}

#[derive(Deserialize)]
pub(super) struct QuotaForm {
    instance: String,
    vm: String,
}

async fn set_quota(ui: Ctx, name: web::Path<String>, form: CsrfForm<QuotaForm>) -> UiResult {
    let name = user_in_path(&name)?;
    let typed = Some((form.instance.clone(), form.vm.clone()));
    let Ok(instance) = InstanceName::parse(&form.instance) else {
        return render_detail(&ui, &name, FormErrors::general("no such connector instance"), None).await;
    };
    let limit = match form.vm.trim() {
        "" => None,
        v => match v.parse::<i64>() {
            Ok(n) => Some(n),
            Err(_) => {
                return render_detail(&ui, &name, FormErrors::field("vm", "a whole number, or empty to remove the override"), typed).await
            }
        },
    };
    match ui.broker.provisioning.set_quota(ui.actor(), &name, &instance, limit).await {
        Ok(q) => Ok(ui.redirect_with(&format!("/admin/users/{name}"), &format!("Quota of {name} on {instance}: {} VMs", q.limit))),
        Err(e) => render_detail(&ui, &name, FormErrors::from_service(&e, &["vm"]), typed).await,
    }
}
