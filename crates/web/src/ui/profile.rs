//! The home page and profile: the signed-in user's SSH key.

use super::html;
use super::session::{csrf_ok, csrf_refused, SignedIn};
use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use askama::Template;
use cloudbroker_core::identity::Session;
use cloudbroker_core::Broker;
use serde::Deserialize;

#[derive(Template)]
#[template(path = "home.html")]
struct HomePage<'a> {
    user: &'a str,
    is_admin: bool,
    csrf: &'a str,
    ssh_key: &'a str,
    notice: Option<String>,
    error: Option<String>,
}

pub(super) async fn home(me: SignedIn, broker: web::Data<Broker>) -> HttpResponse {
    render_home(&broker, &me.session, None, None).await
}

async fn render_home(broker: &Broker, s: &Session, notice: Option<String>, error: Option<String>) -> HttpResponse {
    let key = broker.identity.get_user(&s.actor, &s.actor.name).await.ok().and_then(|u| u.ssh_public_key).unwrap_or_default();
    let status = if error.is_some() { StatusCode::BAD_REQUEST } else { StatusCode::OK };
    html(status, &HomePage { user: s.actor.name.as_str(), is_admin: s.actor.is_admin, csrf: &s.csrf_token, ssh_key: &key, notice, error })
}

#[derive(Deserialize)]
pub(super) struct SshKeyForm {
    csrf: Option<String>,
    ssh_public_key: String,
}

pub(super) async fn set_ssh_key(me: SignedIn, broker: web::Data<Broker>, form: web::Form<SshKeyForm>) -> HttpResponse {
    let s = &me.session;
    if !csrf_ok(s, form.csrf.as_deref()) {
        return csrf_refused();
    }
    let key = form.ssh_public_key.trim();
    match broker.identity.set_ssh_key(&s.actor, &s.actor.name, (!key.is_empty()).then_some(key)).await {
        Ok(()) => render_home(&broker, s, Some("SSH key saved".into()), None).await,
        Err(e) => render_home(&broker, s, None, Some(e.to_string())).await,
    }
}
