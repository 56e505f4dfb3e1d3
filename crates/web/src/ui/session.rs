//! Sessions in the UI: cookies, the guards of the signed-in and admin
//! scopes (the signed-in one also enters the project the `cb_project`
//! cookie names, membership checked on every request, and renders
//! handlers' `UiError`s), the flash message, and the CSRF comparison (done for every form by
//! [`super::context::CsrfForm`]). A session id is only ever
//! compared by the identity service (as a hash); CSRF tokens are compared in
//! constant time.

use super::{errors, flash_cookie, read_flash, redirect, FLASH_COOKIE};
use actix_web::body::{EitherBody, MessageBody};
use actix_web::cookie::{Cookie, SameSite};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{web, FromRequest, HttpMessage, HttpRequest};
use cloudbroker_core::domain::ProjectName;
use cloudbroker_core::identity::Session;
use cloudbroker_core::{Broker, ServiceError};
use std::future::{ready, Ready};
use subtle::ConstantTimeEq;

/// Session cookie name.
pub const SESSION_COOKIE: &str = "cb_session";

/// The project cookie: which project the pages act in (the user's personal
/// project when absent). Entered again on every request, so a membership
/// that ended stops counting at once.
pub const PROJECT_COOKIE: &str = "cb_project";

/// The signed-in user of a request in the guarded scope.
#[derive(Clone)]
pub struct SignedIn {
    /// The raw session id (to end it).
    pub raw: String,
    /// The session; its actor is entered in the request's project (the
    /// `cb_project` cookie's, membership checked) before any handler runs.
    pub session: Session,
    /// The message the previous action left (shown once).
    pub flash: Option<String>,
    /// The projects the header's switcher offers (the user's memberships).
    pub projects: Vec<ProjectChoice>,
    /// This month's budget alerts of the user and of the team project it
    /// acts in (the banner; read for pages only: GET requests).
    pub budget_alerts: Vec<cloudbroker_core::costs::watch::AlertView>,
}

/// A project of the switcher: its name and the user's role there.
#[derive(Clone, Debug)]
pub struct ProjectChoice {
    pub name: String,
    pub role: String,
    pub personal: bool,
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

/// The project cookie: `SameSite=Lax` (a link from elsewhere opens the page
/// in the project last chosen), HttpOnly, for the whole site.
pub fn project_cookie<'a>(req: &HttpRequest, broker: &Broker, project: &str) -> Cookie<'a> {
    Cookie::build(PROJECT_COOKIE, project.to_string())
        .path("/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(secure(req, broker))
        .finish()
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
        Ok(Some(session)) => Some(SignedIn { raw, session, flash: None, projects: Vec::new(), budget_alerts: Vec::new() }),
        _ => None,
    }
}

/// Enters the session's actor in `wanted` (the project cookie's; the
/// personal project when absent) and fills the switcher's projects. When
/// `wanted` cannot be entered (no such project, no longer a member) the
/// actor stays in its personal project and the answer is the message that
/// says so, and whether to forget the cookie (not for a passing failure).
async fn enter_project(broker: &Broker, s: &mut SignedIn, wanted: Option<&str>) -> Option<(String, bool)> {
    let actor = s.session.actor.clone();
    let mut fell_back = None;
    if let Some(w) = wanted.filter(|w| *w != actor.name.as_str()) {
        let shown: String = w.chars().take(64).collect();
        let entered = match ProjectName::parse(w) {
            Ok(p) => broker.projects.enter(actor.clone(), &p).await,
            Err(e) => Err(e.into()),
        };
        match entered {
            Ok(a) => s.session.actor = a,
            Err(e) if e.is_internal() || matches!(e, ServiceError::DatabaseUnavailable(_)) => {
                tracing::warn!(error = %e, "UI: entering the chosen project");
                fell_back = Some((
                    format!(
                        "Project {shown} could not be opened just now: this page shows your personal project {}. Try again in a few seconds.",
                        actor.name
                    ),
                    false,
                ));
            }
            Err(_) => {
                fell_back = Some((
                    format!("You are not a member of project {shown} (any more): you are back in your personal project {}.", actor.name),
                    true,
                ));
            }
        }
    }
    let mine = broker.projects.list_mine(&actor).await.unwrap_or_default();
    let mut projects: Vec<ProjectChoice> = mine
        .into_iter()
        .map(|p| ProjectChoice { role: p.role.map(|r| r.to_string()).unwrap_or_default(), personal: p.personal, name: p.name.to_string() })
        .collect();
    let current = &s.session.actor;
    if !projects.iter().any(|p| p.name == current.project.as_str()) {
        // An admin in a project they are no member of, or a failed list.
        projects.push(ProjectChoice {
            name: current.project.to_string(),
            role: current.role.to_string(),
            personal: current.in_personal_project(),
        });
    }
    // The personal project first, then by name.
    projects.sort_by(|a, b| (!a.personal, &a.name).cmp(&(!b.personal, &b.name)));
    s.projects = projects;
    fell_back
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
            let wanted = req.cookie(PROJECT_COOKIE).map(|c| c.value().to_string()).filter(|v| !v.is_empty());
            let fell_back = enter_project(&broker, &mut s, wanted.as_deref()).await;
            if let Some((message, _)) = &fell_back {
                s.flash = Some(message.clone());
            }
            if req.method() == actix_web::http::Method::GET {
                s.budget_alerts = super::budgets::alerts(&broker, &s.session.actor).await;
            }
            // A form sent for a project that cannot be entered changes
            // nothing (it would otherwise act in the personal project).
            let refused =
                fell_back.is_some() && req.method() == actix_web::http::Method::POST && !["/project", "/logout"].contains(&req.path());
            req.extensions_mut().insert(s);
            // A handler's `UiError` becomes its page here, where the request is.
            let mut res = if refused {
                req.into_response(redirect("/")).map_into_right_body()
            } else {
                errors::rendered(next.call(req).await?).map_into_left_body()
            };
            if let Some((mut message, forget)) = fell_back {
                if refused {
                    message.push_str(" Nothing was changed.");
                }
                // A redirect carries the message to the page it leads to.
                if res.status().is_redirection() && !res.response().cookies().any(|c| c.name() == FLASH_COOKIE) {
                    let flash = flash_cookie(res.request(), &broker, &message);
                    let _ = res.response_mut().add_cookie(&flash);
                }
                // A project that cannot be entered any more is forgotten (said once).
                if forget && !res.response().cookies().any(|c| c.name() == PROJECT_COOKIE) {
                    let removal = removal(res.request(), &broker, PROJECT_COOKIE);
                    let _ = res.response_mut().add_cookie(&removal);
                }
            }
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
