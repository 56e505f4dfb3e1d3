//! The error type shared by every function of this crate.

/// Everything that can go wrong while parsing or verifying a signed request.
///
/// Each variant names *what* is malformed so a front-end can map it to the
/// matching AWS error code (`IncompleteSignature`, `AuthFailure`,
/// `SignatureDoesNotMatch`, `RequestExpired`, ...).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SigError {
    /// The algorithm (`AWS4-HMAC-SHA256`, or a SigV2 `SignatureMethod`) is not
    /// supported.
    #[error("unsupported signing algorithm `{0}`")]
    UnsupportedAlgorithm(String),

    /// The SigV2 `SignatureVersion` parameter is not `2`.
    #[error("unsupported signature version `{0}`")]
    UnsupportedSignatureVersion(String),

    /// The `Authorization` header does not have the
    /// `ALGORITHM Key=Value, Key=Value, ...` shape.
    #[error("malformed Authorization header: {0}")]
    MalformedAuthorization(String),

    /// A required `Authorization` component (`Credential`, `SignedHeaders`,
    /// `Signature`) is missing.
    #[error("Authorization header is missing the `{0}` component")]
    MissingComponent(&'static str),

    /// An `Authorization` component appears more than once.
    #[error("Authorization header has `{0}` more than once")]
    DuplicateComponent(String),

    /// The credential (`AKID/YYYYMMDD/region/service/aws4_request`) is
    /// malformed.
    #[error("malformed credential: {0}")]
    MalformedCredential(String),

    /// The signed-header list is empty, not lowercase, or not sorted.
    #[error("malformed SignedHeaders: {0}")]
    MalformedSignedHeaders(String),

    /// The signature is not 64 lowercase hex digits (SigV4) or not base64
    /// (SigV2).
    #[error("malformed signature: {0}")]
    MalformedSignature(String),

    /// A date or timestamp could not be parsed.
    #[error("malformed date or timestamp `{0}`")]
    MalformedDate(String),

    /// A required query (or form) parameter is absent.
    #[error("missing parameter `{0}`")]
    MissingQueryParam(&'static str),

    /// A parameter that must be unique appears more than once.
    #[error("parameter `{0}` appears more than once")]
    DuplicateQueryParam(String),

    /// `X-Amz-Expires` is not an integer in `1..=604800`.
    #[error("invalid X-Amz-Expires: {0}")]
    InvalidExpires(String),

    /// A header that is required (or listed in `SignedHeaders`) is absent.
    #[error("missing header `{0}`")]
    MissingHeader(String),

    /// A header that must be covered by the signature is not listed in
    /// `SignedHeaders`.
    #[error("header `{0}` must be signed")]
    UnsignedHeader(String),

    /// A request signed in the `Authorization` header carries a presigned-URL
    /// parameter (`X-Amz-*`) in its query: a signature travels in one place
    /// only.
    #[error("query parameter `{0}` is not allowed in a request signed in the Authorization header")]
    SigningParamInQuery(String),

    /// A request handed to a signer already carries a header the signer adds.
    #[error("request already has a `{0}` header")]
    ConflictingHeader(String),

    /// The date of the credential scope differs from the request timestamp.
    #[error("credential scope date {scope_date} does not match request date {request_date}")]
    ScopeDateMismatch {
        /// `YYYYMMDD` from the credential.
        scope_date: String,
        /// `YYYYMMDD` prefix of the request's `X-Amz-Date`.
        request_date: String,
    },

    /// The credential scope names a region or service this endpoint does not
    /// serve.
    #[error("credential scope {actual} does not match expected {expected}")]
    ScopeMismatch {
        /// `region/service` the endpoint expects.
        expected: String,
        /// `region/service` the client signed for.
        actual: String,
    },

    /// The request time is further from the server clock than allowed.
    #[error("request time differs from server time by {skew_secs}s (max {max_skew_secs}s)")]
    RequestTimeTooSkewed {
        /// `request_time - now`, in seconds (positive: request is in the future).
        skew_secs: i64,
        /// The allowed absolute skew.
        max_skew_secs: i64,
    },

    /// A SigV2 `Expires` lies further ahead of the server's time than allowed.
    #[error("Expires is {ahead_secs}s ahead of the server's time (at most {max_ahead_secs}s allowed)")]
    ExpiresTooFarAhead {
        /// `Expires - now`, in seconds.
        ahead_secs: i64,
        /// The allowed lead.
        max_ahead_secs: i64,
    },

    /// A presigned URL (or SigV2 `Expires`) is past its expiry.
    #[error("request has expired")]
    Expired,

    /// Percent-encoding in the input is invalid (or decodes to invalid UTF-8).
    #[error("invalid percent-encoding: {0}")]
    InvalidEncoding(String),

    /// Any other inconsistency in the request handed to this crate.
    #[error("invalid request: {0}")]
    InvalidRequest(String),

    /// The recomputed signature differs from the one supplied.
    ///
    /// Like AWS's `SignatureDoesNotMatch`, it carries what the server signed so
    /// that a client author can diff it against their own canonical request.
    #[error("signature does not match")]
    SignatureMismatch {
        /// The canonical request (SigV4) or string to sign (SigV2) the server
        /// computed.
        canonical_request: String,
        /// The SigV4 string to sign (equal to `canonical_request` for SigV2).
        string_to_sign: String,
    },
}
