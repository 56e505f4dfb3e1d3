//! Shared credentials (admin): system-scope keys per connector instance,
//! stored like a user's (checked on save, "save anyway" unverified, sealed),
//! never shown back in clear, granted to users who can launch with them
//! but never read them.

use super::form::{friendly, FormErrors};
use super::session::{csrf_ok, csrf_refused, SignedIn};
use super::{errors, html, redirect_with, Chrome};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use cloudbroker_core::domain::{CredentialName, InstanceName, UserName};
use cloudbroker_core::vault::{MaskedCredential, Scope};
use cloudbroker_core::Broker;
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
    csrf: Option<String>,
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
}

async fn render(req: &HttpRequest, me: &SignedIn, broker: &Broker, form: SaveForm, errs: FormErrors, offer_force: bool) -> HttpResponse {
    let actor = &me.session.actor;
    let creds = match broker.vault.list_shared(actor).await {
        Ok(c) => c,
        Err(e) => return errors::service_error_page(req, &e),
    };
    let rows = creds.into_iter().map(|c| Row { grants: c.granted_to.clone().unwrap_or_default().join(", "), cred: c }).collect();
    let page = SharedPage {
        c: Chrome::new(me, "admin/credentials", "Shared credentials"),
        rows,
        instances: broker.system.connectors(actor).iter().map(|i| i.name.to_string()).collect(),
        form,
        offer_force,
        errors: errs,
    };
    html(page.errors.status(), &page)
}

async fn list(req: HttpRequest, me: SignedIn, broker: web::Data<Broker>) -> HttpResponse {
    render(&req, &me, &broker, SaveForm::default(), FormErrors::none(), false).await
}

async fn save(req: HttpRequest, me: SignedIn, broker: web::Data<Broker>, form: web::Form<SaveForm>) -> HttpResponse {
    if !csrf_ok(&me.session, form.csrf.as_deref()) {
        return csrf_refused();
    }
    let mut form = form.into_inner();
    let secret = std::mem::take(&mut form.secret_access_key);
    let Ok(instance) = InstanceName::parse(form.instance.trim()) else {
        return render(&req, &me, &broker, form, FormErrors::field("instance", "choose a connector instance"), false).await;
    };
    let name = match CredentialName::parse(form.name.trim()) {
        Ok(n) => n,
        Err(e) => return render(&req, &me, &broker, form, FormErrors::field("name", e.message), false).await,
    };
    let force = form.force.is_some();
    match broker.vault.put(&me.session.actor, Scope::System(&name), &instance, &form.access_key_id, &secret, force).await {
        Ok(c) => {
            redirect_with(&req, &broker, "/admin/credentials", &format!("Shared credential {name} for {instance} saved ({})", c.status))
        }
        Err(e) => {
            let offer = e.to_string().contains("failed validation");
            let errs = FormErrors::from_service(&e, &["access_key_id", "secret_access_key", "name"]);
            render(&req, &me, &broker, form, errs, offer).await
        }
    }
}

fn parse_path(req: &HttpRequest, p: &(String, String)) -> Result<(InstanceName, CredentialName), Box<HttpResponse>> {
    match (InstanceName::parse(&p.0), CredentialName::parse(&p.1)) {
        (Ok(i), Ok(n)) => Ok((i, n)),
        _ => Err(Box::new(errors::error_page(Some(req), StatusCode::NOT_FOUND, "Not found", "No such shared credential."))),
    }
}

#[derive(Deserialize)]
pub(super) struct GrantForm {
    csrf: Option<String>,
    users: String,
}

async fn grant(
    req: HttpRequest,
    me: SignedIn,
    broker: web::Data<Broker>,
    path: web::Path<(String, String)>,
    form: web::Form<GrantForm>,
) -> HttpResponse {
    if !csrf_ok(&me.session, form.csrf.as_deref()) {
        return csrf_refused();
    }
    let (instance, name) = match parse_path(&req, &path) {
        Ok(x) => x,
        Err(r) => return *r,
    };
    let mut users = Vec::new();
    for u in form.users.split([',', ' ', '\n']).map(str::trim).filter(|u| !u.is_empty()) {
        match UserName::parse(u) {
            Ok(n) => users.push(n),
            Err(_) => {
                let errs = FormErrors::general(format!("Grants of {name} not changed: '{u}' is not a valid user name"));
                return render(&req, &me, &broker, SaveForm::default(), errs, false).await;
            }
        }
    }
    match broker.vault.grant(&me.session.actor, &name, &instance, &users).await {
        Ok(_) => redirect_with(&req, &broker, "/admin/credentials", &format!("{name} for {instance} granted to {} user(s)", users.len())),
        Err(e) => {
            let errs = FormErrors::general(format!("Grants of {name} not changed: {}", friendly(&e)));
            render(&req, &me, &broker, SaveForm::default(), errs, false).await
        }
    }
}

#[derive(Deserialize)]
pub(super) struct CsrfOnly {
    csrf: Option<String>,
}

async fn delete(
    req: HttpRequest,
    me: SignedIn,
    broker: web::Data<Broker>,
    path: web::Path<(String, String)>,
    form: web::Form<CsrfOnly>,
) -> HttpResponse {
    if !csrf_ok(&me.session, form.csrf.as_deref()) {
        return csrf_refused();
    }
    let (instance, name) = match parse_path(&req, &path) {
        Ok(x) => x,
        Err(r) => return *r,
    };
    match broker.vault.delete(&me.session.actor, Scope::System(&name), &instance).await {
        Ok(()) => redirect_with(&req, &broker, "/admin/credentials", &format!("Shared credential {name} for {instance} deleted")),
        Err(e) => {
            let errs = FormErrors::general(format!("Not deleted: {}", friendly(&e)));
            render(&req, &me, &broker, SaveForm::default(), errs, false).await
        }
    }
}
