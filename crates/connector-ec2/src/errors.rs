//! Errors: what the cloud answered, classified by its EC2 code with the
//! message kept verbatim; answers without a code by HTTP status; transport
//! failures and timeouts; what a user whose credentials failed is told.

use super::*;

/// Maps an SDK error to a [`ConnectorError`].
pub fn map_sdk_error<E>(err: SdkError<E, HttpResponse>, timeout_s: u64) -> ConnectorError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let status = err.raw_response().map(|r| r.status().as_u16());
    match &err {
        SdkError::ServiceError(ctx) => {
            let e = ctx.err();
            match e.code() {
                Some(code) => ConnectorError::from_ec2_code(code, e.message().unwrap_or("")),
                None => by_status(status, e.message().map(str::to_string).unwrap_or_else(|| describe(&err))),
            }
        }
        SdkError::TimeoutError(_) => ConnectorError::Timeout { seconds: timeout_s },
        SdkError::DispatchFailure(d) => {
            if d.is_timeout() {
                ConnectorError::Timeout { seconds: timeout_s }
            } else {
                ConnectorError::Transport { message: describe(&err) }
            }
        }
        SdkError::ResponseError(_) => by_status(status, describe(&err)),
        SdkError::ConstructionFailure(_) => ConnectorError::InvalidRequest { code: "ConstructionFailure".into(), message: describe(&err) },
        _ => ConnectorError::Transport { message: describe(&err) },
    }
}

/// An answer without an EC2 error code, by its HTTP status.
pub(crate) fn by_status(status: Option<u16>, message: String) -> ConnectorError {
    match status {
        Some(503) => ConnectorError::Throttled {
            code: "HTTP503".into(),
            message: if message.is_empty() { "HTTP 503 Service Unavailable".into() } else { message },
        },
        Some(s @ (401 | 403)) => ConnectorError::Auth { code: format!("HTTP{s}"), message },
        Some(s) if s >= 500 => ConnectorError::Transport { message: format!("HTTP {s} without an error code: {message}") },
        Some(s) => ConnectorError::Cloud { code: format!("HTTP{s}"), message },
        None => ConnectorError::Transport { message },
    }
}

/// The error and its sources, one line.
pub(crate) fn describe(err: &dyn std::error::Error) -> String {
    let mut s = err.to_string();
    let mut src = err.source();
    while let Some(e) = src {
        let m = e.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        src = e.source();
    }
    s
}

pub(crate) fn unreadable(action: &str, what: &str) -> ConnectorError {
    ConnectorError::Transport { message: format!("unreadable {action} answer from the cloud: {what}") }
}

pub(crate) fn check_ids(ids: &[String]) -> Result<(), ConnectorError> {
    if ids.is_empty() {
        return Err(invalid("MissingParameter", "no instance ids given"));
    }
    Ok(())
}

/// What to tell a user whose credentials failed validation.
pub(crate) fn validation_error(e: ConnectorError, region: &str, endpoint: &str) -> ConnectorError {
    let hint = match &e {
        ConnectorError::Auth { code, .. } => match code.as_str() {
            "InvalidClientTokenId" | "InvalidAccessKeyId" => "the access key id is not known to the cloud",
            "SignatureDoesNotMatch" => "the secret access key does not match the access key id",
            "AuthFailure" => "the access key id is unknown or the secret access key is wrong (EC2 does not say which)",
            "OptInRequired" => "the account is not subscribed to EC2 or has not opted in to this region",
            "PendingVerification" | "Blocked" => "the account is not active yet or is blocked",
            _ => "the cloud rejected the credentials",
        },
        ConnectorError::Forbidden { .. } => {
            "the credentials are valid but may not call ec2:DescribeRegions; give the user the connector's IAM policy"
        }
        _ => "",
    };
    match e {
        ConnectorError::Auth { code, message } => ConnectorError::Auth { code, message: format!("{hint}: {message}") },
        ConnectorError::Forbidden { code, message } => ConnectorError::Forbidden { code, message: format!("{hint}: {message}") },
        ConnectorError::Transport { message } => {
            ConnectorError::Transport { message: format!("the EC2 endpoint {endpoint} (region {region}) is unreachable: {message}") }
        }
        other => other,
    }
}
