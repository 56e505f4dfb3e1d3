//! Signing in and out. The sign-in form uses a double-submit CSRF token from
//! a pre-session cookie; a malformed user name gets the same answer as a
//! wrong password. Both forget the project chosen in the browser: a session
//! starts in the user's personal project.

use super::context::{CsrfForm, Ctx};
use super::session::{cookie, removal, session, tokens_equal, PROJECT_COOKIE, SESSION_COOKIE};
use super::{errors, html, read_flash, redirect, Chrome, FLASH_COOKIE};
use crate::common::auth::client_ip;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use cloudbroker_connector_api::SecretString;
use cloudbroker_core::auth::random_token;
use cloudbroker_core::domain::UserName;
use cloudbroker_core::{Broker, ServiceError};
use serde::Deserialize;

const LOGIN_CSRF_COOKIE: &str = "cb_login_csrf";

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage<'a> {
    c: Chrome,
    csrf: &'a str,
    username: &'a str,
    error: Option<String>,
}

pub(super) async fn login_form(req: HttpRequest, broker: web::Data<Broker>) -> HttpResponse {
    if session(&req, &broker).await.is_some() {
        return redirect("/");
    }
    let token = req.cookie(LOGIN_CSRF_COOKIE).map(|c| c.value().to_string()).filter(|v| v.len() >= 32).unwrap_or_else(|| random_token(""));
    let mut c = Chrome::anonymous("Sign in");
    c.flash = read_flash(req.cookie(FLASH_COOKIE));
    let had_flash = c.flash.is_some();
    let mut r = html(StatusCode::OK, &LoginPage { c, csrf: &token, username: "", error: None });
    let _ = r.add_cookie(&cookie(&req, &broker, LOGIN_CSRF_COOKIE, token));
    if had_flash {
        let _ = r.add_cookie(&removal(&req, &broker, FLASH_COOKIE));
    }
    r
}

#[derive(Deserialize)]
pub(super) struct LoginForm {
    username: String,
    password: String,
    csrf: String,
}

pub(super) async fn login(req: HttpRequest, broker: web::Data<Broker>, form: web::Form<LoginForm>) -> HttpResponse {
    let expected = req.cookie(LOGIN_CSRF_COOKIE).map(|c| c.value().to_string()).unwrap_or_default();
    if expected.is_empty() || !tokens_equal(&expected, &form.csrf) {
        return errors::forbidden_page(
            &req,
            "The sign-in form's security token is missing or out of date (invalid CSRF token): reload the sign-in page and try again.",
        );
    }
    let outcome = match UserName::parse(form.username.trim()) {
        Ok(name) => broker.identity.authenticate(&name, &SecretString::new(form.password.clone()), client_ip(&req)).await,
        Err(_) => Err(ServiceError::Unauthenticated("wrong user name or password".into())),
    };
    match outcome {
        Ok(actor) => match broker.identity.create_session(&actor).await {
            Ok((raw, _)) => {
                let mut r = redirect("/");
                let _ = r.add_cookie(&cookie(&req, &broker, SESSION_COOKIE, raw));
                let _ = r.add_cookie(&removal(&req, &broker, LOGIN_CSRF_COOKIE));
                // A new session starts in the personal project (not the one
                // someone else chose in this browser).
                let _ = r.add_cookie(&removal(&req, &broker, PROJECT_COOKIE));
                r
            }
            Err(e) => {
                tracing::error!(error = %e, "session");
                errors::error_page(
                    Some(&req),
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Something went wrong",
                    "Could not start a session; try again.",
                )
            }
        },
        Err(e) => {
            let status = match e {
                ServiceError::Throttled { .. } => StatusCode::TOO_MANY_REQUESTS,
                ServiceError::Forbidden(_) => StatusCode::FORBIDDEN,
                _ => StatusCode::UNAUTHORIZED,
            };
            let username: String = form.username.chars().take(64).collect();
            html(status, &LoginPage { c: Chrome::anonymous("Sign in"), csrf: &expected, username: &username, error: Some(e.to_string()) })
        }
    }
}

pub(super) async fn logout(ui: Ctx, _: CsrfForm) -> HttpResponse {
    let _ = ui.broker.identity.logout(&ui.me.raw).await;
    let mut r = redirect("/login");
    let _ = r.add_cookie(&removal(&ui.req, &ui.broker, SESSION_COOKIE));
    let _ = r.add_cookie(&removal(&ui.req, &ui.broker, PROJECT_COOKIE));
    r
}
