//! The services' error type; the HTTP edges map it to status codes, EC2
//! error codes or form messages in one place each.

use cloudbroker_connector_api::ConnectorError;
use cloudbroker_store::StoreError;

/// What a service call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("authentication required: {0}")]
    Unauthenticated(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Invalid(String),
    #[error("too many failed attempts; try again in {retry_after_secs}s")]
    Throttled { retry_after_secs: u64 },
    #[error("Concurrent VM quota exceeded (quota={quota}, current={current}, requested={requested})")]
    QuotaExceeded { quota: i64, current: i64, requested: i64 },
    #[error("cloud error: {0}")]
    Connector(#[from] ConnectorError),
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<StoreError> for ServiceError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(what) => ServiceError::NotFound(what),
            StoreError::Conflict(m) => ServiceError::Conflict(m),
            other => ServiceError::Internal(other.to_string()),
        }
    }
}

/// Shorthand.
pub type ServiceResult<T> = Result<T, ServiceError>;
