//! AWS request signing and verification as pure functions.
//!
//! No I/O, no clock reads, no HTTP types: callers pass method, path, decoded
//! query pairs, headers, body hash, credentials and the time, and get strings
//! back. The same code therefore serves
//!
//! * a **client** that signs EC2 Query API calls ([`sign_v4_headers`],
//!   [`presign_v4`], [`sign_v2_params`]), and
//! * a **server** that verifies them ([`parse_authorization_header`],
//!   [`parse_presigned_query`], [`verify_v4`], [`check_clock_skew`],
//!   [`verify_v2`], [`check_v2_time`]). A server that refuses malformed
//!   requests before it looks up a key, and spends the same work on an
//!   unknown key as on a known one, uses the split forms: [`prepare_v4`]
//!   then [`PreparedV4::matches`], [`parse_v2`] then [`ParsedV2::matches`].
//!
//! # SigV4 vs SigV2
//!
//! **Signature Version 4** (`AWS4-HMAC-SHA256`, module [`v4`]) is what every
//! current AWS SDK sends. It signs a *canonical request* — method, normalized
//! and encoded path, sorted query, selected headers, SHA-256 of the body —
//! with a key derived from the secret, the date, the region and the service
//! (the *credential scope*), so a leaked signature or key is useless for
//! another day, region or service. The signature travels either in the
//! `Authorization` header or, for presigned URLs, in `X-Amz-*` query
//! parameters.
//!
//! **Signature Version 2** (module [`v2`]) is the older scheme still accepted
//! by the EC2 Query API (`SignatureVersion=2`). It signs only the method, the
//! host, the path and the sorted request parameters (body parameters for a
//! form POST), directly with the secret via `HmacSHA256` or `HmacSHA1`; there
//! is no scope and no header or payload hash. The signature, timestamp and
//! key id are themselves request parameters.
//!
//! Both use the same RFC 3986 percent-encoding ([`uri_encode`]).
//!
//! # Verifying a SigV4 request (server side)
//!
//! ```
//! use cloudbroker_sigv::*;
//! # fn lookup_secret(_: &str) -> Option<&'static str> { Some("secret") }
//! # fn run(method: &str, path: &str, raw_query: &str, headers: &[(String, String)], body: &[u8],
//! #        now: chrono::DateTime<chrono::Utc>) -> Result<(), SigError> {
//! let query = parse_query(raw_query)?;
//! let payload = sha256_hex(body);
//! let req = SigV4Request::new(method, path, &query, headers, &payload);
//! let auth = match headers.iter().find(|(n, _)| n.eq_ignore_ascii_case("authorization")) {
//!     Some((_, value)) => {
//!         let auth = parse_authorization_header(value)?;
//!         let date = headers.iter().find(|(n, _)| n.eq_ignore_ascii_case("x-amz-date"))
//!             .ok_or(SigError::MissingHeader("x-amz-date".into()))?;
//!         check_clock_skew(parse_amz_date(&date.1)?, now, MAX_CLOCK_SKEW_SECS)?;
//!         auth
//!     }
//!     None => {
//!         let presigned = parse_presigned_query(&query)?;
//!         presigned.check_expiry(now, MAX_CLOCK_SKEW_SECS)?;
//!         presigned.auth
//!     }
//! };
//! auth.check_scope("us-east-1", "ec2")?;
//! let secret = lookup_secret(&auth.access_key).ok_or(SigError::InvalidRequest("unknown key".into()))?;
//! verify_v4(&req, &auth, secret)
//! # }
//! ```

mod crypto;
mod encoding;
mod error;
pub mod v2;
pub mod v4;

pub use crypto::sha256_hex;
pub use encoding::{encode_query, parse_form_urlencoded, parse_query, uri_encode};
pub use error::SigError;
pub use v2::{
    canonical_query_v2, check_v2_time, format_v2_timestamp, parse_v2, parse_v2_timestamp, sign_v2, sign_v2_params, v2_access_key,
    verify_v2, ParsedV2, SigV2Method,
};
pub use v4::{
    canonical_headers, canonical_query_string, canonical_request, canonical_uri, check_clock_skew, credential_scope, format_amz_date,
    parse_amz_date, parse_authorization_header, parse_presigned_query, prepare_v4, presign_v4, sign_v4_headers, signature, signing_key,
    string_to_sign, verify_v4, verify_v4_with_signing_key, ParsedAuthorization, PathOptions, PreparedV4, PresignedQuery, SigV4Request,
    SignatureLocation, SigningParams, ALGORITHM_V4, EMPTY_PAYLOAD_SHA256, MAX_CLOCK_SKEW_SECS, MAX_PRESIGN_EXPIRES_SECS, SCOPE_TERMINATOR,
    UNSIGNED_PAYLOAD,
};
