//! The one mapping from service errors to HTTP for the JSON API:
//! `{"error": {"code": "...", "message": "..."}}` with a fitting status.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use cloudbroker_connector_api::ConnectorError;
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
        ApiError(ServiceError::Invalid(msg.into()))
    }

    fn code(&self) -> (StatusCode, String) {
        let s = |c: StatusCode, code: &str| (c, code.to_string());
        match &self.0 {
            ServiceError::Unauthenticated(_) => s(StatusCode::UNAUTHORIZED, "unauthenticated"),
            ServiceError::Forbidden(_) => s(StatusCode::FORBIDDEN, "forbidden"),
            ServiceError::NotFound(_) => s(StatusCode::NOT_FOUND, "not_found"),
            ServiceError::Conflict(_) => s(StatusCode::CONFLICT, "conflict"),
            ServiceError::Invalid(_) => s(StatusCode::BAD_REQUEST, "invalid_request"),
            ServiceError::Throttled { .. } => s(StatusCode::TOO_MANY_REQUESTS, "throttled"),
            ServiceError::QuotaExceeded { .. } => s(StatusCode::CONFLICT, "quota_exceeded"),
            ServiceError::Connector(e) => {
                let status = match e {
                    ConnectorError::Auth { .. } | ConnectorError::Forbidden { .. } => StatusCode::FORBIDDEN,
                    ConnectorError::NotFound { .. } => StatusCode::NOT_FOUND,
                    ConnectorError::InvalidRequest { .. } => StatusCode::BAD_REQUEST,
                    ConnectorError::Unsupported { .. } => StatusCode::NOT_IMPLEMENTED,
                    ConnectorError::Throttled { .. } | ConnectorError::Capacity { .. } | ConnectorError::Limit { .. } => {
                        StatusCode::SERVICE_UNAVAILABLE
                    }
                    ConnectorError::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
                    ConnectorError::Transport { .. } | ConnectorError::Cloud { .. } => StatusCode::BAD_GATEWAY,
                };
                (status, e.code().map(|c| format!("cloud.{c}")).unwrap_or_else(|| "cloud_error".into()))
            }
            ServiceError::Internal(_) => s(StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.code().0
    }

    fn error_response(&self) -> HttpResponse {
        let (status, code) = self.code();
        let message = match &self.0 {
            ServiceError::Internal(m) => {
                tracing::error!(error = %m, "internal error");
                "internal error (see the broker's log)".to_string()
            }
            other => other.to_string(),
        };
        let mut r = HttpResponse::build(status);
        if let ServiceError::Throttled { retry_after_secs } = &self.0 {
            r.insert_header(("Retry-After", retry_after_secs.to_string()));
        }
        if status == StatusCode::UNAUTHORIZED {
            r.insert_header(("WWW-Authenticate", "Bearer realm=\"cloudbroker\""));
        }
        r.json(json!({"error": {"code": code, "message": message}}))
    }
}

/// Result of a handler.
pub type ApiResult<T = HttpResponse> = Result<T, ApiError>;
