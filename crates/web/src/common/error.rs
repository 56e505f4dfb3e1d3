//! The base mapping from [`ServiceError`] to an HTTP status and a stable
//! error code, shared by the JSON API and the web UI (the EC2 front-end maps
//! to EC2 codes on top of the same cases). Internal causes are logged here,
//! never sent.

use actix_web::http::StatusCode;
use cloudbroker_connector_api::ConnectorError;
use cloudbroker_core::ServiceError;
use std::borrow::Cow;

/// Status and code of a service error.
pub fn status_and_code(e: &ServiceError) -> (StatusCode, Cow<'static, str>) {
    let s = |c: StatusCode, code: &'static str| (c, Cow::Borrowed(code));
    match e {
        ServiceError::Unauthenticated(_) => s(StatusCode::UNAUTHORIZED, "unauthenticated"),
        ServiceError::Forbidden(_) => s(StatusCode::FORBIDDEN, "forbidden"),
        ServiceError::NotFound(_) => s(StatusCode::NOT_FOUND, "not_found"),
        ServiceError::Conflict(_) => s(StatusCode::CONFLICT, "conflict"),
        ServiceError::NotPermitted(_) => s(StatusCode::CONFLICT, "not_permitted"),
        ServiceError::Invalid { .. } => s(StatusCode::BAD_REQUEST, "invalid_request"),
        ServiceError::InvalidDocument(_) => s(StatusCode::BAD_REQUEST, "invalid_document"),
        // A deployment's node refused: as its refusal.
        ServiceError::InNode { error, .. } => status_and_code(error),
        // Well-formed, but naming what the configuration lacks.
        ServiceError::Unresolved { .. } => s(StatusCode::CONFLICT, "conflict"),
        ServiceError::Unavailable(_) => s(StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
        ServiceError::DatabaseUnavailable(_) => s(StatusCode::SERVICE_UNAVAILABLE, "database_unavailable"),
        // A replica whose key file lacks the key of stored data (names the key id, never the key).
        ServiceError::MasterKeyUnknown { .. } => s(StatusCode::SERVICE_UNAVAILABLE, "master_key_unknown"),
        ServiceError::Throttled { .. } => s(StatusCode::TOO_MANY_REQUESTS, "throttled"),
        ServiceError::QuotaExceeded { .. } => s(StatusCode::CONFLICT, "quota_exceeded"),
        // A launch that would pass a monthly budget.
        ServiceError::BudgetExceeded(_) => s(StatusCode::CONFLICT, "budget_exceeded"),
        ServiceError::LimitExceeded { .. } => s(StatusCode::CONFLICT, "limit_exceeded"),
        // A launch refused by one of its connector instance's launch policies.
        ServiceError::PolicyViolation { .. } => s(StatusCode::CONFLICT, "policy_violation"),
        ServiceError::Cloud(e) => {
            let status = match e {
                ConnectorError::Auth { .. } | ConnectorError::Forbidden { .. } => StatusCode::FORBIDDEN,
                ConnectorError::NotFound { .. } => StatusCode::NOT_FOUND,
                // The VM's state does not allow the action: a conflict, not a bad request.
                // So is any refusal of the cloud about the state of what it has
                // (an address already associated, a volume in use, a duplicate).
                ConnectorError::InvalidRequest { code, .. } if is_conflict_code(code) => StatusCode::CONFLICT,
                ConnectorError::InvalidRequest { .. } => StatusCode::BAD_REQUEST,
                ConnectorError::Unsupported { .. } => StatusCode::NOT_IMPLEMENTED,
                ConnectorError::Throttled { .. } | ConnectorError::Capacity { .. } | ConnectorError::Limit { .. } => {
                    StatusCode::SERVICE_UNAVAILABLE
                }
                ConnectorError::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
                _ => StatusCode::BAD_GATEWAY,
            };
            (status, e.code().map(|c| Cow::Owned(format!("cloud.{c}"))).unwrap_or(Cow::Borrowed("cloud_error")))
        }
        ServiceError::Store(_) | ServiceError::Internal(_) => s(StatusCode::INTERNAL_SERVER_ERROR, "internal"),
    }
}

/// A cloud's client error code that says the request conflicts with the
/// state of what the cloud has, rather than being malformed.
fn is_conflict_code(code: &str) -> bool {
    matches!(
        code,
        "IncorrectInstanceState" | "IncorrectState" | "Resource.AlreadyAssociated" | "VolumeInUse" | "DependencyViolation" | "InvalidState"
    ) || code.ends_with(".Duplicate")
        || code.ends_with(".InUse")
        || code.ends_with(".AlreadyAssociated")
}

/// The message a caller may see: internal causes are logged and replaced.
pub fn public_message(e: &ServiceError) -> String {
    if let ServiceError::DatabaseUnavailable(source) = e {
        tracing::warn!(error = %source, "database unavailable");
        e.to_string()
    } else if e.is_internal() {
        tracing::error!(error = %e, source = ?std::error::Error::source(e), "internal error");
        "internal error (see the broker's log)".to_string()
    } else {
        e.to_string()
    }
}
