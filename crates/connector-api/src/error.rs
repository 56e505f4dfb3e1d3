//! Typed connector errors.

use serde::Serialize;

/// What went wrong talking to a cloud. The variants say what the caller can
/// do about it: fix credentials, wait and retry, pick another size, fix the
/// request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ConnectorError {
    /// The cloud rejected the credentials or denied the action.
    #[error("authentication failed ({code}): {message}")]
    Auth { code: String, message: String },
    /// The action is not permitted for these credentials.
    #[error("permission denied ({code}): {message}")]
    Forbidden { code: String, message: String },
    /// The named resource does not exist.
    #[error("not found ({code}): {message}")]
    NotFound { code: String, message: String },
    /// A limit of the cloud account was reached.
    #[error("cloud limit reached ({code}): {message}")]
    Limit { code: String, message: String },
    /// The cloud throttled the request; retry later.
    #[error("throttled by the cloud ({code}): {message}")]
    Throttled { code: String, message: String },
    /// The cloud has no capacity for this request.
    #[error("insufficient capacity ({code}): {message}")]
    Capacity { code: String, message: String },
    /// The cloud refused the request as invalid.
    #[error("invalid request ({code}): {message}")]
    InvalidRequest { code: String, message: String },
    /// This connector instance does not support the operation.
    #[error("{operation} is not supported by this connector instance")]
    Unsupported { operation: String },
    /// The call did not finish in time.
    #[error("timed out after {seconds}s waiting for the cloud")]
    Timeout { seconds: u64 },
    /// The cloud could not be reached, or answered something unreadable.
    #[error("transport error: {message}")]
    Transport { message: String },
    /// Any other error the cloud reported.
    #[error("cloud error ({code}): {message}")]
    Cloud { code: String, message: String },
}

impl ConnectorError {
    /// Whether retrying the same call later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, ConnectorError::Throttled { .. } | ConnectorError::Transport { .. } | ConnectorError::Timeout { .. })
            || matches!(self, ConnectorError::Cloud { code, .. } if is_transient_code(code))
    }

    /// A short, fixed name of the variant (`throttled`, `timeout`, ...): a
    /// metrics label value, never carrying the cloud's message.
    pub fn kind(&self) -> &'static str {
        match self {
            ConnectorError::Auth { .. } => "auth",
            ConnectorError::Forbidden { .. } => "forbidden",
            ConnectorError::NotFound { .. } => "not_found",
            ConnectorError::Limit { .. } => "limit",
            ConnectorError::Throttled { .. } => "throttled",
            ConnectorError::Capacity { .. } => "capacity",
            ConnectorError::InvalidRequest { .. } => "invalid_request",
            ConnectorError::Unsupported { .. } => "unsupported",
            ConnectorError::Timeout { .. } => "timeout",
            ConnectorError::Transport { .. } => "transport",
            ConnectorError::Cloud { .. } => "cloud",
        }
    }

    /// The cloud's error code, where there is one.
    pub fn code(&self) -> Option<&str> {
        match self {
            ConnectorError::Auth { code, .. }
            | ConnectorError::Forbidden { code, .. }
            | ConnectorError::NotFound { code, .. }
            | ConnectorError::Limit { code, .. }
            | ConnectorError::Throttled { code, .. }
            | ConnectorError::Capacity { code, .. }
            | ConnectorError::InvalidRequest { code, .. }
            | ConnectorError::Cloud { code, .. } => Some(code),
            _ => None,
        }
    }

    /// Classifies an EC2 API error code (shared by the EC2-family connectors).
    pub fn from_ec2_code(code: &str, message: &str) -> Self {
        let (code, message) = (code.to_string(), message.to_string());
        match code.as_str() {
            "AuthFailure"
            | "InvalidClientTokenId"
            | "SignatureDoesNotMatch"
            | "IncompleteSignature"
            | "MissingAuthenticationToken"
            | "InvalidAccessKeyId"
            | "OptInRequired"
            | "PendingVerification"
            | "Blocked"
            | "AuthFailure.ServiceLinkedRoleCreationNotPermitted" => ConnectorError::Auth { code, message },
            "UnauthorizedOperation" | "AccessDenied" | "AccessDeniedException" => ConnectorError::Forbidden { code, message },
            "RequestLimitExceeded"
            | "Throttling"
            | "ThrottlingException"
            | "RequestThrottled"
            | "TooManyRequestsException"
            | "SlowDown" => ConnectorError::Throttled { code, message },
            "InsufficientInstanceCapacity"
            | "InsufficientCapacity"
            | "InsufficientHostCapacity"
            | "InsufficientReservedInstanceCapacity"
            | "InsufficientAddressCapacity"
            | "Unsupported.InsufficientCapacity" => ConnectorError::Capacity { code, message },
            "InstanceLimitExceeded"
            | "VcpuLimitExceeded"
            | "MaxSpotInstanceCountExceeded"
            | "ResourceLimitExceeded"
            | "AddressLimitExceeded"
            | "SecurityGroupLimitExceeded"
            | "KeyPairLimitExceeded"
            | "VolumeLimitExceeded" => ConnectorError::Limit { code, message },
            c if c.ends_with(".NotFound")
                || c.ends_with(".Malformed") && c.starts_with("InvalidInstanceID")
                || c == "InvalidAMIID.Unavailable" =>
            {
                if c.ends_with(".NotFound") {
                    ConnectorError::NotFound { code, message }
                } else {
                    ConnectorError::InvalidRequest { code, message }
                }
            }
            c if c.starts_with("Invalid")
                || c.starts_with("Missing")
                || c == "UnknownParameter"
                || c == "UnsupportedOperation"
                || c == "DependencyViolation"
                || c == "CannotDelete"
                || c == "DryRunOperation" =>
            {
                ConnectorError::InvalidRequest { code, message }
            }
            // EC2's server errors (its documented list): the cloud's own failure.
            c if is_server_code(c) => ConnectorError::Cloud { code, message },
            // Every other code is a client error (`IncorrectState`,
            // `Resource.AlreadyAssociated`, `VolumeInUse`...): the cloud
            // refused this request, and says why.
            _ => ConnectorError::InvalidRequest { code, message },
        }
    }
}

/// EC2's server error codes (HTTP 5xx): the cloud's own failure, not the request's.
pub fn is_server_code(code: &str) -> bool {
    is_transient_code(code)
        || matches!(code, "InsufficientVolumeCapacity" | "InsufficientFreeAddressesInSubnet")
        || code.starts_with("HTTP5")
}

fn is_transient_code(code: &str) -> bool {
    matches!(code, "InternalError" | "InternalFailure" | "ServiceUnavailable" | "Unavailable" | "RequestExpired" | "RequestTimeout")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_ec2_codes() {
        assert!(matches!(ConnectorError::from_ec2_code("AuthFailure", "x"), ConnectorError::Auth { .. }));
        assert!(matches!(ConnectorError::from_ec2_code("RequestLimitExceeded", "x"), ConnectorError::Throttled { .. }));
        assert!(matches!(ConnectorError::from_ec2_code("InsufficientInstanceCapacity", "x"), ConnectorError::Capacity { .. }));
        assert!(matches!(ConnectorError::from_ec2_code("InstanceLimitExceeded", "x"), ConnectorError::Limit { .. }));
        assert!(matches!(ConnectorError::from_ec2_code("InvalidInstanceID.NotFound", "x"), ConnectorError::NotFound { .. }));
        assert!(matches!(ConnectorError::from_ec2_code("InvalidInstanceID.Malformed", "x"), ConnectorError::InvalidRequest { .. }));
        assert!(matches!(ConnectorError::from_ec2_code("InvalidParameterValue", "x"), ConnectorError::InvalidRequest { .. }));
        assert!(matches!(ConnectorError::from_ec2_code("UnauthorizedOperation", "x"), ConnectorError::Forbidden { .. }));
        let e = ConnectorError::from_ec2_code("InternalError", "boom");
        assert!(e.is_retryable());
        assert!(!ConnectorError::from_ec2_code("InsufficientInstanceCapacity", "x").is_retryable());
        assert_eq!(e.to_string(), "cloud error (InternalError): boom");
    }

    #[test]
    fn every_code_but_a_server_one_is_the_requests_fault() {
        for code in ["Resource.AlreadyAssociated", "IncorrectState", "VolumeInUse", "IdempotentParameterMismatch"] {
            let e = ConnectorError::from_ec2_code(code, "m");
            assert!(matches!(&e, ConnectorError::InvalidRequest { code: c, message } if c == code && message == "m"), "{e:?}");
            assert!(!e.is_retryable());
        }
        assert!(matches!(ConnectorError::from_ec2_code("InvalidZone.NotFound", "x"), ConnectorError::NotFound { .. }));
        for code in ["InternalError", "ServiceUnavailable", "Unavailable", "InsufficientVolumeCapacity"] {
            let e = ConnectorError::from_ec2_code(code, "x");
            assert!(matches!(e, ConnectorError::Cloud { .. } | ConnectorError::Capacity { .. }), "{code}");
        }
    }
}
