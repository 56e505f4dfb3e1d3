//! The server-rendered UI (askama): sign-in, sessions and CSRF. Every
//! state-changing form carries the session's CSRF token; the sign-in form
//! uses a double-submit token from a pre-session cookie. Errors become form
//! messages, never stack traces.

use crate::auth::client_ip;
use actix_web::cookie::{Cookie, SameSite};
use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use base64::Engine;
use cloudbroker_connector_api::SecretString;
use cloudbroker_core::identity::Session;
use cloudbroker_core::{Broker, ServiceError};
use serde::Deserialize;
use subtle_eq::ct_eq;

/// Session cookie name.
pub const SESSION_COOKIE: &str = "cb_session";
const LOGIN_CSRF_COOKIE: &str = "cb_login_csrf";

mod subtle_eq {
    /// Constant-time string comparison.
    pub fn ct_eq(a: &str, b: &str) -> bool {
        a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

/// UI routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(home))
        .route("/login", web::get().to(login_form))
        .route("/login", web::post().to(login))
        .route("/logout", web::post().to(logout))
        .route("/profile/ssh-key", web::post().to(set_ssh_key))
        .route("/static/style.css", web::get().to(style));
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage<'a> {
    csrf: &'a str,
    username: &'a str,
    error: Option<String>,
}

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

fn html(status: actix_web::http::StatusCode, t: &impl Template) -> HttpResponse {
    match t.render() {
        Ok(body) => {
            HttpResponse::build(status).content_type("text/html; charset=utf-8").insert_header(("Cache-Control", "no-store")).body(body)
        }
        Err(e) => {
            tracing::error!(error = %e, "template");
            HttpResponse::InternalServerError().body("template error")
        }
    }
}

fn redirect(to: &str) -> HttpResponse {
    HttpResponse::SeeOther().insert_header((header::LOCATION, to)).finish()
}

fn cookie<'a>(broker: &Broker, name: &'a str, value: String) -> Cookie<'a> {
    Cookie::build(name, value).path("/").http_only(true).same_site(SameSite::Strict).secure(broker.config.secure_cookies()).finish()
}

fn random() -> String {
    use rand::RngCore;
    let mut b = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut b);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

/// The session of a request, if any.
pub async fn session(req: &HttpRequest, broker: &Broker) -> Option<(String, Session)> {
    let raw = req.cookie(SESSION_COOKIE)?.value().to_string();
    match broker.identity.resolve_session(&raw).await {
        Ok(Some(s)) => Some((raw, s)),
        _ => None,
    }
}

async fn login_form(req: HttpRequest, broker: web::Data<Broker>) -> HttpResponse {
    if session(&req, &broker).await.is_some() {
        return redirect("/");
    }
    let token = req.cookie(LOGIN_CSRF_COOKIE).map(|c| c.value().to_string()).filter(|v| v.len() >= 32).unwrap_or_else(random);
    let mut r = html(actix_web::http::StatusCode::OK, &LoginPage { csrf: &token, username: "", error: None });
    let _ = r.add_cookie(&cookie(&broker, LOGIN_CSRF_COOKIE, token));
    r
}

#[derive(Deserialize)]
struct LoginForm {
    username: String,
    password: String,
    csrf: String,
}

async fn login(req: HttpRequest, broker: web::Data<Broker>, form: web::Form<LoginForm>) -> HttpResponse {
    let expected = req.cookie(LOGIN_CSRF_COOKIE).map(|c| c.value().to_string()).unwrap_or_default();
    if expected.is_empty() || !ct_eq(&expected, &form.csrf) {
        return HttpResponse::Forbidden().content_type("text/plain").body("invalid CSRF token: reload the sign-in page and try again");
    }
    match broker.identity.authenticate(&form.username, &SecretString::new(form.password.clone()), client_ip(&req)).await {
        Ok(actor) => match broker.identity.create_session(&actor).await {
            Ok((raw, _)) => {
                let mut r = redirect("/");
                let _ = r.add_cookie(&cookie(&broker, SESSION_COOKIE, raw));
                let mut gone = cookie(&broker, LOGIN_CSRF_COOKIE, String::new());
                gone.make_removal();
                let _ = r.add_cookie(&gone);
                r
            }
            Err(e) => {
                tracing::error!(error = %e, "session");
                HttpResponse::InternalServerError().body("could not start a session")
            }
        },
        Err(e) => {
            let status = match e {
                ServiceError::Throttled { .. } => actix_web::http::StatusCode::TOO_MANY_REQUESTS,
                _ => actix_web::http::StatusCode::UNAUTHORIZED,
            };
            html(status, &LoginPage { csrf: &expected, username: &form.username, error: Some(e.to_string()) })
        }
    }
}

#[derive(Deserialize)]
struct CsrfForm {
    csrf: Option<String>,
}

fn csrf_ok(s: &Session, given: Option<&str>) -> bool {
    given.is_some_and(|g| ct_eq(&s.csrf_token, g))
}

async fn logout(req: HttpRequest, broker: web::Data<Broker>, form: web::Form<CsrfForm>) -> HttpResponse {
    let Some((raw, s)) = session(&req, &broker).await else { return redirect("/login") };
    if !csrf_ok(&s, form.csrf.as_deref()) {
        return HttpResponse::Forbidden().content_type("text/plain").body("invalid CSRF token");
    }
    let _ = broker.identity.logout(&raw).await;
    let mut r = redirect("/login");
    let mut gone = cookie(&broker, SESSION_COOKIE, String::new());
    gone.make_removal();
    let _ = r.add_cookie(&gone);
    r
}

async fn home(req: HttpRequest, broker: web::Data<Broker>) -> HttpResponse {
    let Some((_, s)) = session(&req, &broker).await else { return redirect("/login") };
    render_home(&broker, &s, None, None).await
}

async fn render_home(broker: &Broker, s: &Session, notice: Option<String>, error: Option<String>) -> HttpResponse {
    let key = broker.identity.get_user(&s.actor, &s.actor.name).await.ok().and_then(|u| u.ssh_public_key).unwrap_or_default();
    let status = if error.is_some() { actix_web::http::StatusCode::BAD_REQUEST } else { actix_web::http::StatusCode::OK };
    html(status, &HomePage { user: &s.actor.name, is_admin: s.actor.is_admin, csrf: &s.csrf_token, ssh_key: &key, notice, error })
}

#[derive(Deserialize)]
struct SshKeyForm {
    csrf: Option<String>,
    ssh_public_key: String,
}

async fn set_ssh_key(req: HttpRequest, broker: web::Data<Broker>, form: web::Form<SshKeyForm>) -> HttpResponse {
    let Some((_, s)) = session(&req, &broker).await else { return redirect("/login") };
    if !csrf_ok(&s, form.csrf.as_deref()) {
        return HttpResponse::Forbidden().content_type("text/plain").body("invalid CSRF token");
    }
    let key = form.ssh_public_key.trim();
    match broker.identity.set_ssh_key(&s.actor, &s.actor.name, (!key.is_empty()).then_some(key)).await {
        Ok(()) => render_home(&broker, &s, Some("SSH key saved".into()), None).await,
        Err(e) => render_home(&broker, &s, None, Some(e.to_string())).await,
    }
}

async fn style() -> HttpResponse {
    HttpResponse::Ok().content_type("text/css").body(include_str!("../../../web/static/style.css"))
}
