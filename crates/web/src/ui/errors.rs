//! Error pages of the UI: 403, 404, a malformed form or query (400), and a
//! failure of the broker (500) — friendly words and a request id that the
//! log also carries, never an internal cause.

use super::session::SignedIn;
use super::{html, Chrome};
use actix_web::error::InternalError;
use actix_web::http::StatusCode;
use actix_web::{web, HttpMessage, HttpRequest, HttpResponse};
use askama::Template;
use cloudbroker_core::ServiceError;

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    c: Chrome,
    status: u16,
    heading: String,
    message: String,
    request_id: String,
}

fn request_id() -> String {
    uuid::Uuid::new_v4().simple().to_string().chars().take(12).collect()
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

/// An error page.
pub fn error_page(req: Option<&HttpRequest>, status: StatusCode, heading: &str, message: &str) -> HttpResponse {
    let request_id = request_id();
    if status.is_server_error() {
        tracing::error!(request_id = %request_id, status = status.as_u16(), "UI error page");
    } else {
        tracing::info!(request_id = %request_id, status = status.as_u16(), message, "UI error page");
    }
    html(
        status,
        &ErrorPage { c: chrome_of(req, heading), status: status.as_u16(), heading: heading.into(), message: message.into(), request_id },
    )
}

/// 403.
pub fn forbidden_page(message: &str) -> HttpResponse {
    error_page(None, StatusCode::FORBIDDEN, "Not allowed", message)
}

/// 404 for any unknown path in the signed-in scope.
pub async fn not_found(req: HttpRequest) -> HttpResponse {
    error_page(Some(&req), StatusCode::NOT_FOUND, "Page not found", "There is no page at this address.")
}

/// The page for a service error that is not about one form field.
pub fn service_error_page(req: &HttpRequest, e: &ServiceError) -> HttpResponse {
    let (status, heading) = match e {
        ServiceError::NotFound(_) => (StatusCode::NOT_FOUND, "Not found"),
        ServiceError::Forbidden(_) => (StatusCode::FORBIDDEN, "Not allowed"),
        ServiceError::Unauthenticated(_) => (StatusCode::UNAUTHORIZED, "Sign in again"),
        ServiceError::Conflict(_) | ServiceError::Unresolved { .. } => (StatusCode::CONFLICT, "Not possible now"),
        ServiceError::Invalid { .. } => (StatusCode::BAD_REQUEST, "Bad request"),
        ServiceError::DatabaseUnavailable(_) | ServiceError::Unavailable(_) | ServiceError::MasterKeyUnknown { .. } => {
            (StatusCode::SERVICE_UNAVAILABLE, "Unavailable just now")
        }
        _ if e.is_internal() => (StatusCode::INTERNAL_SERVER_ERROR, "Something went wrong"),
        _ => (StatusCode::BAD_GATEWAY, "The cloud did not do it"),
    };
    if e.is_internal() {
        let request_id = request_id();
        tracing::error!(request_id = %request_id, error = %e, "UI: internal error");
        return html(
            status,
            &ErrorPage {
                c: chrome_of(Some(req), heading),
                status: status.as_u16(),
                heading: heading.into(),
                message: "The broker failed to do this. Try again; if it keeps failing, give the administrator the request id below."
                    .into(),
                request_id,
            },
        );
    }
    error_page(Some(req), status, heading, &super::form::friendly(e))
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
