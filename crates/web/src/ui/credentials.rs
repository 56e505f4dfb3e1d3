//! The user's cloud credentials, one form per connector instance: checked
//! with the connector when saved (the reason shown when that fails, "save
//! anyway" storing them unverified), shown masked, deleted unless live VMs,
//! Elastic IPs or volumes made with them remain. A secret is never rendered back, not even after a failed save.

use super::form::FormErrors;
use super::session::{csrf_ok, csrf_refused, SignedIn};
use super::{errors, html, redirect_with, Chrome};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use cloudbroker_core::domain::InstanceName;
use cloudbroker_core::registry::Status;
use cloudbroker_core::vault::{MaskedCredential, Scope};
use cloudbroker_core::Broker;
use serde::Deserialize;

pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/credentials", web::get().to(list))
        .route("/credentials/{instance}", web::post().to(save))
        .route("/credentials/{instance}/delete", web::post().to(delete));
}

struct CredRow {
    instance: String,
    kind: String,
    ready: bool,
    stored: Option<MaskedCredential>,
    /// The form's values and messages when this instance's submit failed.
    typed_key: String,
    errors: FormErrors,
    offer_force: bool,
}

#[derive(Template)]
#[template(path = "credentials.html")]
struct CredentialsPage {
    c: Chrome,
    rows: Vec<CredRow>,
}

async fn render(me: &SignedIn, broker: &Broker, failed: Option<(&str, String, FormErrors, bool)>) -> HttpResponse {
    let actor = &me.session.actor;
    let stored = broker.vault.list_user(actor, &actor.name).await.unwrap_or_default();
    let mut status = StatusCode::OK;
    let rows = broker
        .system
        .connectors(actor)
        .into_iter()
        .map(|i| {
            let name = i.name.to_string();
            let mut row = CredRow {
                stored: stored.iter().find(|c| c.instance == name).cloned(),
                kind: i.kind.to_string(),
                ready: i.status == Status::Ready,
                instance: name,
                typed_key: String::new(),
                errors: FormErrors::none(),
                offer_force: false,
            };
            if let Some((inst, key, errs, force)) = &failed {
                if *inst == row.instance {
                    row.typed_key = key.clone();
                    row.errors = errs.clone();
                    row.offer_force = *force;
                    status = StatusCode::BAD_REQUEST;
                }
            }
            row
        })
        .collect::<Vec<_>>();
    html(status, &CredentialsPage { c: Chrome::new(me, "credentials", "Cloud credentials"), rows })
}

async fn list(me: SignedIn, broker: web::Data<Broker>) -> HttpResponse {
    render(&me, &broker, None).await
}

fn instance_in_path(req: &HttpRequest, s: &str) -> Result<InstanceName, Box<HttpResponse>> {
    InstanceName::parse(s)
        .map_err(|_| Box::new(errors::error_page(Some(req), StatusCode::NOT_FOUND, "Not found", "No such connector instance.")))
}

#[derive(Deserialize)]
pub(super) struct CredForm {
    csrf: Option<String>,
    access_key_id: String,
    secret_access_key: String,
    force: Option<String>,
}

async fn save(
    req: HttpRequest,
    me: SignedIn,
    broker: web::Data<Broker>,
    instance: web::Path<String>,
    form: web::Form<CredForm>,
) -> HttpResponse {
    let s = &me.session;
    if !csrf_ok(s, form.csrf.as_deref()) {
        return csrf_refused();
    }
    let instance = match instance_in_path(&req, &instance) {
        Ok(i) => i,
        Err(r) => return *r,
    };
    let force = form.force.is_some();
    match broker.vault.put(&s.actor, Scope::User(&s.actor.name), &instance, &form.access_key_id, &form.secret_access_key, force).await {
        Ok(c) => {
            let msg = if c.status == "verified" {
                format!("Credentials for {instance} saved and verified ({})", c.access_key_id)
            } else {
                format!("Credentials for {instance} saved UNVERIFIED ({}): {}", c.access_key_id, c.status_message)
            };
            redirect_with(&req, &broker, "/credentials", &msg)
        }
        Err(e) => {
            let failed_check = e.to_string().contains("failed validation");
            let errs = FormErrors::from_service(&e, &["access_key_id", "secret_access_key"]);
            render(&me, &broker, Some((instance.as_str(), form.access_key_id.clone(), errs, failed_check))).await
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
    instance: web::Path<String>,
    form: web::Form<CsrfOnly>,
) -> HttpResponse {
    let s = &me.session;
    if !csrf_ok(s, form.csrf.as_deref()) {
        return csrf_refused();
    }
    let instance = match instance_in_path(&req, &instance) {
        Ok(i) => i,
        Err(r) => return *r,
    };
    match broker.vault.delete(&s.actor, Scope::User(&s.actor.name), &instance).await {
        Ok(()) => redirect_with(&req, &broker, "/credentials", &format!("Credentials for {instance} deleted")),
        Err(e) => {
            let errs = FormErrors::general(format!("Not deleted: {}", super::form::friendly(&e)));
            render(&me, &broker, Some((instance.as_str(), String::new(), errs, false))).await
        }
    }
}
