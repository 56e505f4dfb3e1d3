//! Error pages of the UI: 403, 404, a malformed form or query (400), and a
//! failure of the broker (500) — friendly words and the request's id (the
//! one its log lines and `X-Request-Id` carry), never an internal cause.
//! [`UiError`] is the one error type of the UI's handlers.

use super::context::request_id;
use super::session::SignedIn;
use super::{html, Chrome};
use crate::common::error::status_and_code;
use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::ServiceResponse;
use actix_web::error::InternalError;
use actix_web::http::StatusCode;
use actix_web::{web, HttpMessage, HttpRequest, HttpResponse, ResponseError};
use askama::Template;
use cloudbroker_core::{RequestId, ServiceError};

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    c: Chrome,
    status: u16,
    heading: String,
    message: String,
    request_id: String,
}

fn chrome_of(req: Option<&HttpRequest>, title: &str) -> Chrome {
    match req.and_then(|r| r.extensions().get::<SignedIn>().cloned()) {
        Some(me) => {
            let mut c = Chrome::new(&me, "", title);
            c.flash = None;
            c
        }
        None => Chrome::anonymous(title),
    }
}

/// What a page handler answers: a page, or the error page of a [`UiError`].
pub type UiResult = Result<HttpResponse, UiError>;

/// Why a UI request failed, as one type: handlers return it with `?`, and
/// [`rendered`] (run by the signed-in scope's guard) turns it into the
/// error page with the user's layout and the request's id. Statuses are the
/// common mapping ([`status_and_code`]) that the JSON API answers with.
#[derive(Debug)]
pub enum UiError {
    /// A service error that is not about one form field.
    Service(ServiceError),
    /// Nothing at this address; the message says what ("No such VM.").
    NotFound(&'static str),
    /// The form's CSRF token is missing or not the session's.
    Csrf,
    /// Any other page: its status, heading and message.
    Page { status: StatusCode, heading: &'static str, message: String },
}

impl From<ServiceError> for UiError {
    fn from(e: ServiceError) -> Self {
        UiError::Service(e)
    }
}

impl std::fmt::Display for UiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (status, heading) = self.status_and_heading();
        write!(f, "{}: {heading}", status.as_u16())
    }
}

/// What a refused form says.
pub(crate) const CSRF_REFUSED: &str =
    "The form's security token is missing or out of date (invalid CSRF token). Nothing was changed: reload the page and try again.";

/// The status and heading of a service error's page.
fn service_status_and_heading(e: &ServiceError) -> (StatusCode, &'static str) {
    let heading = match e {
        ServiceError::NotFound(_) => "Not found",
        ServiceError::Forbidden(_) => "Not allowed",
        ServiceError::Unauthenticated(_) => "Sign in again",
        ServiceError::Conflict(_) | ServiceError::NotPermitted(_) | ServiceError::Unresolved { .. } => "Not possible now",
        ServiceError::Invalid { .. } => "Bad request",
        ServiceError::DatabaseUnavailable(_) | ServiceError::Unavailable(_) | ServiceError::MasterKeyUnknown { .. } => {
            "Unavailable just now"
        }
        _ if e.is_internal() => "Something went wrong",
        _ => "The cloud did not do it",
    };
    (status_and_code(e).0, heading)
}

/// What a service error's page says (an internal cause is logged instead).
fn service_message(e: &ServiceError, request_id: &RequestId) -> String {
    if e.is_internal() {
        tracing::error!(request_id = %request_id, error = %e, "UI: internal error");
        "The broker failed to do this. Try again; if it keeps failing, give the administrator the request id below.".into()
    } else {
        super::form::friendly(e)
    }
}

/// Renders and logs an error page; the layout is `layout_of`'s user's.
fn render(layout_of: Option<&HttpRequest>, request_id: &RequestId, status: StatusCode, heading: &str, message: String) -> HttpResponse {
    if status.is_server_error() {
        tracing::error!(request_id = %request_id, status = status.as_u16(), "UI error page");
    } else {
        tracing::info!(request_id = %request_id, status = status.as_u16(), message, "UI error page");
    }
    html(
        status,
        &ErrorPage {
            c: chrome_of(layout_of, heading),
            status: status.as_u16(),
            heading: heading.into(),
            message,
            request_id: request_id.to_string(),
        },
    )
}

impl UiError {
    /// The page's status and heading.
    fn status_and_heading(&self) -> (StatusCode, &'static str) {
        match self {
            UiError::Service(e) => service_status_and_heading(e),
            UiError::NotFound(_) => (StatusCode::NOT_FOUND, "Not found"),
            UiError::Csrf => (StatusCode::FORBIDDEN, "Not allowed"),
            UiError::Page { status, heading, .. } => (*status, heading),
        }
    }

    /// The error page for `req`: its user's layout (none for a refused
    /// form) and its request id, logged with that id.
    pub fn page(&self, req: &HttpRequest) -> HttpResponse {
        let request_id = request_id(req);
        let (status, heading) = self.status_and_heading();
        let (layout_of, message) = match self {
            UiError::Service(e) => (Some(req), service_message(e, &request_id)),
            UiError::NotFound(m) => (Some(req), (*m).to_string()),
            // A refused form's page says nothing of the session it came with.
            UiError::Csrf => (None, CSRF_REFUSED.to_string()),
            UiError::Page { message, .. } => (Some(req), message.clone()),
        };
        render(layout_of, &request_id, status, heading, message)
    }

    /// As an extractor's error: the page already rendered for `req`.
    pub fn into_error(self, req: &HttpRequest) -> actix_web::Error {
        let page = self.page(req);
        InternalError::from_response(self, page).into()
    }
}

impl ResponseError for UiError {
    fn status_code(&self) -> StatusCode {
        self.status_and_heading().0
    }

    /// A stand-in only: [`rendered`] replaces it with the page.
    fn error_response(&self) -> HttpResponse {
        let (status, heading) = self.status_and_heading();
        HttpResponse::build(status).content_type("text/plain; charset=utf-8").insert_header(("Cache-Control", "no-store")).body(heading)
    }
}

/// Replaces the stand-in answer of a handler that failed with a [`UiError`]
/// by its page (for the guard of the signed-in scope, which has the request).
pub fn rendered<B: MessageBody>(res: ServiceResponse<B>) -> ServiceResponse<EitherBody<B>> {
    let page = res.response().error().and_then(|e| e.as_error::<UiError>()).map(|e| e.page(res.request()));
    match page {
        Some(page) => res.into_response(page).map_into_right_body(),
        None => res.map_into_left_body(),
    }
}

/// An error page (the request's layout and id when there is one).
pub fn error_page(req: Option<&HttpRequest>, status: StatusCode, heading: &'static str, message: &str) -> HttpResponse {
    match req {
        Some(req) => UiError::Page { status, heading, message: message.into() }.page(req),
        None => render(None, &RequestId::generate(), status, heading, message.into()),
    }
}

/// 403 for someone not signed in (the layout shows nobody).
pub fn forbidden_page(req: &HttpRequest, message: &str) -> HttpResponse {
    render(None, &request_id(req), StatusCode::FORBIDDEN, "Not allowed", message.into())
}

/// 404 for any unknown path in the signed-in scope.
pub async fn not_found(req: HttpRequest) -> HttpResponse {
    error_page(Some(&req), StatusCode::NOT_FOUND, "Page not found", "There is no page at this address.")
}

/// The page for a service error that is not about one form field.
pub fn service_error_page(req: &HttpRequest, e: &ServiceError) -> HttpResponse {
    let request_id = request_id(req);
    let (status, heading) = service_status_and_heading(e);
    render(Some(req), &request_id, status, heading, service_message(e, &request_id))
}

fn bad_input(err: impl std::fmt::Display + std::fmt::Debug + 'static, req: &HttpRequest, what: &str) -> actix_web::Error {
    let message = format!("The {what} sent could not be read: {err}. Nothing was changed; go back, check the fields and send again.");
    let page = error_page(Some(req), StatusCode::BAD_REQUEST, "That did not work", &message);
    InternalError::from_response(err, page).into()
}

/// Malformed form bodies get a page, not actix's plain text.
pub fn form_config() -> web::FormConfig {
    web::FormConfig::default().limit(256 * 1024).error_handler(|e, req| bad_input(e, req, "form"))
}

/// Malformed query strings get a page.
pub fn query_config() -> web::QueryConfig {
    web::QueryConfig::default().error_handler(|e, req| bad_input(e, req, "address (query string)"))
}

/// Malformed paths get a page.
pub fn path_config() -> web::PathConfig {
    web::PathConfig::default().error_handler(|e, req| bad_input(e, req, "address"))
}
