//! The JSON API's errors: `{"error": {"code": "...", "message": "..."}}` (and
//! `"field"` when one input was at fault), with the status of the shared
//! mapping in [`crate::common::error`]. Also the error handlers that give
//! query, path and body deserialisation failures this same shape, and the
//! answers for an unknown path (404) or method (405) under `/api/v1`.

use crate::common::error::{public_message, status_and_code};
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, ResponseError};
use cloudbroker_core::domain::InvalidValue;
use cloudbroker_core::ServiceError;
use serde_json::json;

/// A JSON API error.
#[derive(Debug)]
pub struct ApiError(pub ServiceError);

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl<E: Into<ServiceError>> From<E> for ApiError {
    fn from(e: E) -> Self {
        ApiError(e.into())
    }
}

impl ApiError {
    /// A 400 with a message.
    pub fn invalid(msg: impl Into<String>) -> Self {
        ApiError(ServiceError::invalid(msg))
    }

    /// A 400 naming the offending field.
    pub fn field(field: &'static str, msg: impl Into<String>) -> Self {
        ApiError(ServiceError::invalid_field(field, msg))
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        status_and_code(&self.0).0
    }

    fn error_response(&self) -> HttpResponse {
        let (status, code) = status_and_code(&self.0);
        let message = public_message(&self.0);
        let mut r = HttpResponse::build(status);
        if let ServiceError::Throttled { retry_after_secs } = &self.0 {
            r.insert_header(("Retry-After", retry_after_secs.to_string()));
        }
        if let ServiceError::DatabaseUnavailable(_) = &self.0 {
            r.insert_header(("Retry-After", "5"));
        }
        if status == StatusCode::UNAUTHORIZED {
            r.insert_header(("WWW-Authenticate", "Bearer realm=\"cloudbroker\""));
        }
        let mut err = json!({"code": code, "message": message});
        if let ServiceError::Invalid { field: Some(f), .. }
        | ServiceError::Unresolved { field: f, .. }
        | ServiceError::PolicyViolation { field: f, .. } = &self.0
        {
            err["field"] = json!(f);
        }
        // Every error of an application document, each naming its path.
        if let ServiceError::InvalidDocument(errors) = &self.0 {
            err["errors"] = json!(errors);
        }
        // The figures of a budget refusal, as decimal amounts in its currency.
        if let ServiceError::BudgetExceeded(b) = &self.0 {
            err["budget"] = json!({
                "scope": b.scope, "owner": b.owner, "instance": b.instance, "currency": b.currency,
                "budget": b.budget.to_decimal(6), "spent": b.spent.to_decimal(6), "requested": b.requested.to_decimal(6),
            });
        }
        r.json(json!({ "error": err }))
    }
}

/// Result of a handler.
pub type ApiResult<T = HttpResponse> = Result<T, ApiError>;

/// Parses a path segment or query value into a domain type, as a 400 naming the field.
pub fn parse<T>(r: Result<T, InvalidValue>) -> Result<T, ApiError> {
    r.map_err(|e| ApiError(e.into()))
}

/// A JSON body that could not be read: 400 (413 when too large), in the API's shape.
pub fn json_error(err: actix_web::error::JsonPayloadError, _req: &HttpRequest) -> actix_web::Error {
    use actix_web::error::JsonPayloadError as J;
    let (status, code, msg) = match &err {
        J::OverflowKnownLength { .. } | J::Overflow { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "too_large", format!("body: {err}")),
        J::ContentType => {
            (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", "body: send Content-Type: application/json".into())
        }
        _ => (StatusCode::BAD_REQUEST, "invalid_request", format!("body: {err}")),
    };
    let resp = HttpResponse::build(status).json(json!({"error": {"code": code, "message": msg}}));
    actix_web::error::InternalError::from_response(err, resp).into()
}

/// A query string that could not be read: 400 in the API's shape.
pub fn query_error(err: actix_web::error::QueryPayloadError, _req: &HttpRequest) -> actix_web::Error {
    let resp = HttpResponse::BadRequest().json(json!({"error": {"code": "invalid_request", "message": format!("query: {err}")}}));
    actix_web::error::InternalError::from_response(err, resp).into()
}

/// A path that could not be read: 404 in the API's shape.
pub fn path_error(err: actix_web::error::PathError, _req: &HttpRequest) -> actix_web::Error {
    let resp = HttpResponse::NotFound().json(json!({"error": {"code": "not_found", "message": format!("path: {err}")}}));
    actix_web::error::InternalError::from_response(err, resp).into()
}

/// A path under `/api/v1` that names no resource: 404 in the API's shape.
pub async fn unknown_path(req: HttpRequest) -> HttpResponse {
    let path: String = req.path().chars().take(200).collect();
    HttpResponse::NotFound()
        .json(json!({"error": {"code": "not_found", "message": format!("no API resource at {path} (see /api/v1/openapi.json)")}}))
}

/// A method the resource does not have: 405 with `Allow`, in the API's shape.
pub async fn method_not_allowed(allow: String) -> HttpResponse {
    HttpResponse::MethodNotAllowed()
        .insert_header(("Allow", allow.clone()))
        .json(json!({"error": {"code": "method_not_allowed", "message": format!("this resource takes {allow}")}}))
}
