//! Sessions in the UI: cookies, the guards of the signed-in and admin
//! scopes (the signed-in one also renders handlers' `UiError`s), the flash
//! message, and the CSRF comparison (done for every form by
//! [`super::context::CsrfForm`]). A session id is only ever
//! compared by the identity service (as a hash); CSRF tokens are compared in
//! constant time.

use super::{errors, read_flash, redirect, FLASH_COOKIE};
use actix_web::body::{EitherBody, MessageBody};
use actix_web::cookie::{Cookie, SameSite};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{web, FromRequest, HttpMessage, HttpRequest};
use cloudbroker_core::identity::Session;
use cloudbroker_core::Broker;
use std::future::{ready, Ready};
use subtle::ConstantTimeEq;

/// Session cookie name.
pub const SESSION_COOKIE: &str = "cb_session";

/// The signed-in user of a request in the guarded scope.
#[derive(Clone)]
pub struct SignedIn {
    /// The raw session id (to end it).
    pub raw: String,
    pub session: Session,
    /// The message the previous action left (shown once).
    pub flash: Option<String>,
}

impl FromRequest for SignedIn {
    type Error = actix_web::Error;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(
            req.extensions()
                .get::<SignedIn>()
                .cloned()
                .ok_or_else(|| actix_web::error::ErrorInternalServerError("page outside the signed-in scope")),
        )
    }
}

/// Whether cookies get `Secure`: when the configured public URL is https, or
/// the request itself came over https (directly, or through a proxy that says
/// so in `Forwarded` / `X-Forwarded-Proto`). A client can only make its own
/// cookie stricter this way, never looser.
pub fn secure(req: &HttpRequest, broker: &Broker) -> bool {
    broker.config.secure_cookies() || req.connection_info().scheme().eq_ignore_ascii_case("https")
}

/// A cookie with the broker's settings (HttpOnly, SameSite=Strict, Secure behind https).
pub fn cookie<'a>(req: &HttpRequest, broker: &Broker, name: &'a str, value: String) -> Cookie<'a> {
    Cookie::build(name, value).path("/").http_only(true).same_site(SameSite::Strict).secure(secure(req, broker)).finish()
}

/// A cookie that removes `name`.
pub fn removal<'a>(req: &HttpRequest, broker: &Broker, name: &'a str) -> Cookie<'a> {
    let mut c = cookie(req, broker, name, String::new());
    c.make_removal();
    c
}

/// The session of a request, if any.
pub async fn session(req: &HttpRequest, broker: &Broker) -> Option<SignedIn> {
    let raw = req.cookie(SESSION_COOKIE)?.value().to_string();
    match broker.identity.resolve_session(&raw).await {
        Ok(Some(session)) => Some(SignedIn { raw, session, flash: None }),
        _ => None,
    }
}

/// The guard of the signed-in scope: no session, no page (a redirect to sign-in).
pub async fn require_session(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let Some(broker) = req.app_data::<web::Data<Broker>>().cloned() else {
        return Err(actix_web::error::ErrorInternalServerError("no broker"));
    };
    match session(req.request(), &broker).await {
        Some(mut s) => {
            let had_flash = req.cookie(FLASH_COOKIE).is_some();
            s.flash = read_flash(req.cookie(FLASH_COOKIE));
            req.extensions_mut().insert(s);
            // A handler's `UiError` becomes its page here, where the request is.
            let mut res = errors::rendered(next.call(req).await?);
            // Shown once: cleared unless this response leaves a new one.
            if had_flash && !res.response().cookies().any(|c| c.name() == FLASH_COOKIE) {
                let removal = removal(res.request(), &broker, FLASH_COOKIE);
                let _ = res.response_mut().add_cookie(&removal);
            }
            Ok(res.map_into_left_body())
        }
        None => Ok(req.into_response(redirect("/login")).map_into_right_body()),
    }
}

/// The guard of the admin scope (inside the signed-in one): others get 403.
pub async fn require_admin(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let is_admin = req.extensions().get::<SignedIn>().is_some_and(|s| s.session.actor.is_admin);
    if is_admin {
        next.call(req).await.map(ServiceResponse::map_into_left_body)
    } else {
        let page = errors::error_page(
            Some(req.request()),
            actix_web::http::StatusCode::FORBIDDEN,
            "Not allowed",
            "This page is for administrators.",
        );
        Ok(req.into_response(page).map_into_right_body())
    }
}

/// Constant-time comparison of two tokens.
pub fn tokens_equal(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// Whether a form's CSRF token is the session's.
pub fn csrf_ok(s: &Session, given: Option<&str>) -> bool {
    given.is_some_and(|g| tokens_equal(&s.csrf_token, g))
}
