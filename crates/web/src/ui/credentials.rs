//! The user's cloud credentials, one form per connector instance: checked
//! with the connector when saved (the reason shown when that fails, "save
//! anyway" storing them unverified), shown masked, deleted unless live VMs,
//! Elastic IPs or volumes made with them remain. A secret is never rendered back, not even after a failed save.
//! In a team project the page also shows the project's credentials
//! (masked; its owners manage them on the project's page), which launches
//! use when the user has none of their own for an instance. Each instance
//! says what a launch there uses, in the order a launch picks: the user's
//! own keys, the project's, a shared credential an administrator granted,
//! none at all (a kind that needs none), or that keys are missing: the
//! same words as the dashboard's.

use super::context::{CsrfForm, Ctx};
use super::errors::{UiError, UiResult};
use super::form::FormErrors;
use super::{html, Chrome};
use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use askama::Template;
use cloudbroker_core::domain::InstanceName;
use cloudbroker_core::registry::Status;
use cloudbroker_core::vault::{MaskedCredential, Scope};
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
    /// The current team project's credential for the instance, masked.
    project: Option<MaskedCredential>,
    /// The shared credential granted to the project a launch falls back to (its name).
    shared: Option<String>,
    /// Whether the instance's kind needs credentials at all (the sandbox does not).
    needed: bool,
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

async fn render(ui: &Ctx, failed: Option<(&str, String, FormErrors, bool)>) -> HttpResponse {
    let (actor, broker) = (ui.actor(), &ui.broker);
    let stored = broker.vault.list_user(actor, &actor.name).await.unwrap_or_default();
    let of_project =
        if actor.in_personal_project() { Vec::new() } else { broker.vault.list_project(actor, &actor.project).await.unwrap_or_default() };
    let mut status = StatusCode::OK;
    let mut shared = std::collections::BTreeMap::new();
    for i in broker.system.connectors(actor) {
        if let Ok(Some(s)) = broker.vault.shared_for(actor, &i.name).await {
            shared.insert(i.name.to_string(), s);
        }
    }
    let rows = broker
        .system
        .connectors(actor)
        .into_iter()
        .map(|i| {
            let name = i.name.to_string();
            let mut row = CredRow {
                shared: shared.get(&name).cloned(),
                needed: i.kind.needs_credentials(),
                stored: stored.iter().find(|c| c.instance == name).cloned().map(super::form::shown),
                project: of_project.iter().find(|c| c.instance == name).cloned(),
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
    html(status, &CredentialsPage { c: ui.chrome("credentials", "Cloud credentials"), rows })
}

async fn list(ui: Ctx) -> HttpResponse {
    render(&ui, None).await
}

fn instance_in_path(s: &str) -> Result<InstanceName, UiError> {
    InstanceName::parse(s).map_err(|_| UiError::NotFound("No such connector instance."))
}

#[derive(Deserialize)]
pub(super) struct CredForm {
    access_key_id: String,
    secret_access_key: String,
    force: Option<String>,
}

async fn save(ui: Ctx, instance: web::Path<String>, form: CsrfForm<CredForm>) -> UiResult {
    let instance = instance_in_path(&instance)?;
    let actor = ui.actor();
    let force = form.force.is_some();
    Ok(match ui.broker.vault.put(actor, Scope::User(&actor.name), &instance, &form.access_key_id, &form.secret_access_key, force).await {
        Ok(c) => {
            let msg = if c.status == "verified" {
                format!("Credentials for {instance} saved and verified ({})", c.access_key_id)
            } else {
                format!("Credentials for {instance} saved UNVERIFIED ({}): {}", c.access_key_id, c.status_message)
            };
            ui.redirect_with("/credentials", &msg)
        }
        Err(e) => {
            let failed_check = e.to_string().contains("failed validation");
            let errs = FormErrors::from_service(&e, &["access_key_id", "secret_access_key"]);
            render(&ui, Some((instance.as_str(), form.access_key_id.clone(), errs, failed_check))).await
        }
    })
}

async fn delete(ui: Ctx, instance: web::Path<String>, _: CsrfForm) -> UiResult {
    let instance = instance_in_path(&instance)?;
    let actor = ui.actor();
    Ok(match ui.broker.vault.delete(actor, Scope::User(&actor.name), &instance).await {
        Ok(()) => ui.redirect_with("/credentials", &format!("Credentials for {instance} deleted")),
        Err(e) => {
            let errs = FormErrors::general(format!("Not deleted: {}", super::form::friendly(&e)));
            render(&ui, Some((instance.as_str(), String::new(), errs, false))).await
        }
    })
}
