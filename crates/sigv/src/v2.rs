//! AWS Signature Version 2, as used by the EC2 Query API
//! (`SignatureVersion=2`, `SignatureMethod=HmacSHA256` or `HmacSHA1`).
//!
//! The string to sign is
//!
//! ```text
//! METHOD\nhost[:port]\n/path\nk1=v1&k2=v2...
//! ```
//!
//! with every parameter except `Signature`, sorted by the byte order of the
//! (unencoded) key, keys and values RFC 3986-encoded with [`uri_encode`]. The
//! signature is the base64 of `HMAC(secret, string_to_sign)`; the secret is
//! used directly (no derived key, no scope).

use std::str::FromStr;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use chrono::{DateTime, NaiveDateTime, Utc};
use subtle::ConstantTimeEq;

use crate::crypto::{hmac_sha1, hmac_sha256};
use crate::encoding::uri_encode;
use crate::v4::check_clock_skew;
use crate::SigError;

/// `strftime` format of the `Timestamp` parameter this crate emits.
const TIMESTAMP_FORMAT: &str = "%Y-%m-%dT%H:%M:%SZ";

/// Parameters written by [`sign_v2_params`] (any previous values are replaced).
const AUTH_PARAMS: [&str; 5] = ["AWSAccessKeyId", "SignatureVersion", "SignatureMethod", "Timestamp", "Signature"];

/// The SigV2 `SignatureMethod`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SigV2Method {
    /// `HmacSHA256` (what this crate signs with).
    HmacSha256,
    /// `HmacSHA1` (legacy; accepted when verifying).
    HmacSha1,
}

impl SigV2Method {
    /// The wire name (`HmacSHA256` / `HmacSHA1`).
    pub fn as_str(self) -> &'static str {
        match self {
            SigV2Method::HmacSha256 => "HmacSHA256",
            SigV2Method::HmacSha1 => "HmacSHA1",
        }
    }
}

impl FromStr for SigV2Method {
    type Err = SigError;

    /// Parses the wire name, case-sensitively as AWS does.
    fn from_str(s: &str) -> Result<Self, SigError> {
        match s {
            "HmacSHA256" => Ok(SigV2Method::HmacSha256),
            "HmacSHA1" => Ok(SigV2Method::HmacSha1),
            other => Err(SigError::UnsupportedAlgorithm(other.to_string())),
        }
    }
}

/// The SigV2 string to sign.
///
/// `host` is the `Host` header as sent (it is lowercased here; keep a
/// non-default `:port`), `path` the raw request path (`/` if empty). A
/// `Signature` entry in `params`, if any, is ignored.
pub fn canonical_query_v2(method: &str, host: &str, path: &str, params: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> = params.iter().filter(|(k, _)| k != "Signature").collect();
    // Byte order of the key; value as tie-breaker so the result is
    // deterministic even with repeated keys.
    sorted.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()).then_with(|| a.1.as_bytes().cmp(b.1.as_bytes())));
    let query = sorted.iter().map(|(k, v)| format!("{}={}", uri_encode(k, true), uri_encode(v, true))).collect::<Vec<_>>().join("&");
    let path = if path.is_empty() { "/" } else { path };
    format!("{method}\n{}\n{path}\n{query}", host.to_ascii_lowercase())
}

fn mac(secret: &str, string_to_sign: &str, method: SigV2Method) -> Vec<u8> {
    match method {
        SigV2Method::HmacSha256 => hmac_sha256(secret.as_bytes(), string_to_sign.as_bytes()).to_vec(),
        SigV2Method::HmacSha1 => hmac_sha1(secret.as_bytes(), string_to_sign.as_bytes()).to_vec(),
    }
}

/// Base64 (standard alphabet, padded) `HMAC(secret, string_to_sign)`.
pub fn sign_v2(secret: &str, string_to_sign: &str, method: SigV2Method) -> String {
    BASE64.encode(mac(secret, string_to_sign, method))
}

/// `Timestamp` representation of `time` (`2011-10-03T15:19:30Z`).
pub fn format_v2_timestamp(time: DateTime<Utc>) -> String {
    time.format(TIMESTAMP_FORMAT).to_string()
}

/// Parses a SigV2 `Timestamp`/`Expires` value: RFC 3339 (`Z`, offsets and
/// fractional seconds allowed) or, as some clients send, without zone (taken
/// as UTC).
///
/// # Errors
///
/// [`SigError::MalformedDate`].
pub fn parse_v2_timestamp(s: &str) -> Result<DateTime<Utc>, SigError> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    ["%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M:%S%.f"]
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(s, f).ok())
        .map(|t| t.and_utc())
        .ok_or_else(|| SigError::MalformedDate(s.to_string()))
}

/// Signs an EC2 Query API parameter list in place.
///
/// Removes any existing `AWSAccessKeyId`, `SignatureVersion`,
/// `SignatureMethod`, `Timestamp` and `Signature`, then appends
/// `AWSAccessKeyId`, `SignatureVersion=2`, `SignatureMethod=HmacSHA256`,
/// `Timestamp` (from `now`, unless the caller supplied an `Expires` parameter
/// — AWS accepts only one of the two) and finally `Signature`. Send the result
/// with [`crate::encode_query`] (URL query for GET, form body for POST).
pub fn sign_v2_params(
    method: &str,
    host: &str,
    path: &str,
    params: &mut Vec<(String, String)>,
    access_key: &str,
    secret: &str,
    now: DateTime<Utc>,
) {
    params.retain(|(k, _)| !AUTH_PARAMS.contains(&k.as_str()));
    let has_expires = params.iter().any(|(k, _)| k == "Expires");
    params.push(("AWSAccessKeyId".into(), access_key.into()));
    params.push(("SignatureVersion".into(), "2".into()));
    params.push(("SignatureMethod".into(), SigV2Method::HmacSha256.as_str().into()));
    if !has_expires {
        params.push(("Timestamp".into(), format_v2_timestamp(now)));
    }
    let sts = canonical_query_v2(method, host, path, params);
    params.push(("Signature".into(), sign_v2(secret, &sts, SigV2Method::HmacSha256)));
}

fn single<'p>(params: &'p [(String, String)], name: &'static str) -> Result<&'p str, SigError> {
    let mut found = params.iter().filter(|(k, _)| k == name).map(|(_, v)| v.as_str());
    let first = found.next().ok_or(SigError::MissingQueryParam(name))?;
    if found.next().is_some() {
        return Err(SigError::DuplicateQueryParam(name.to_string()));
    }
    Ok(first)
}

/// The `AWSAccessKeyId` of a SigV2 parameter list (to look up the secret).
///
/// # Errors
///
/// [`SigError::MissingQueryParam`] or [`SigError::DuplicateQueryParam`].
pub fn v2_access_key(params: &[(String, String)]) -> Result<&str, SigError> {
    single(params, "AWSAccessKeyId")
}

/// The signature material of a SigV2 request, checked for everything that
/// needs no secret ([`parse_v2`]), so a server can refuse a malformed
/// request before it looks up a key and spend the same work on an unknown
/// key as on a known one.
#[derive(Clone, PartialEq, Eq)]
pub struct ParsedV2 {
    /// `AWSAccessKeyId`.
    pub access_key: String,
    /// `SignatureMethod`.
    pub method: SigV2Method,
    /// The decoded `Signature`.
    signature: Vec<u8>,
}

impl std::fmt::Debug for ParsedV2 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParsedV2").field("access_key", &self.access_key).field("method", &self.method).finish_non_exhaustive()
    }
}

impl ParsedV2 {
    /// Whether the signature is `HMAC(secret, string_to_sign)` (a
    /// [`canonical_query_v2`]), compared in constant time.
    pub fn matches(&self, secret: &str, string_to_sign: &str) -> bool {
        bool::from(mac(secret, string_to_sign, self.method).ct_eq(&self.signature))
    }
}

/// `Signature`, `SignatureVersion` (must be `2`) and `SignatureMethod`.
fn parse_signature(params: &[(String, String)]) -> Result<(SigV2Method, Vec<u8>), SigError> {
    let provided = single(params, "Signature")?;
    let version = single(params, "SignatureVersion")?;
    if version != "2" {
        return Err(SigError::UnsupportedSignatureVersion(version.to_string()));
    }
    let sig_method: SigV2Method = single(params, "SignatureMethod")?.parse()?;
    let provided = BASE64.decode(provided).map_err(|e| SigError::MalformedSignature(format!("not base64: {e}")))?;
    Ok((sig_method, provided))
}

/// Every check of a SigV2 parameter list that needs no secret: the
/// signature's shape, its version and method, and the access key id.
///
/// # Errors
///
/// As [`verify_v2`] (but never [`SigError::SignatureMismatch`]), and
/// [`SigError::MissingQueryParam`] / [`SigError::DuplicateQueryParam`] for
/// `AWSAccessKeyId`.
pub fn parse_v2(params: &[(String, String)]) -> Result<ParsedV2, SigError> {
    let (method, signature) = parse_signature(params)?;
    let access_key = v2_access_key(params)?.to_string();
    Ok(ParsedV2 { access_key, method, signature })
}

/// Verifies a SigV2-signed parameter list (decoded query or form body,
/// including `Signature`) in constant time.
///
/// `host` and `path` as in [`canonical_query_v2`]. Accepts `HmacSHA256` and
/// `HmacSHA1`. Freshness is checked separately with [`check_v2_time`].
///
/// # Errors
///
/// [`SigError::MissingQueryParam`] / [`SigError::DuplicateQueryParam`] for
/// `Signature`, `SignatureVersion`, `SignatureMethod`;
/// [`SigError::UnsupportedSignatureVersion`] unless version `2`;
/// [`SigError::UnsupportedAlgorithm`]; [`SigError::MalformedSignature`] if
/// not base64; [`SigError::SignatureMismatch`].
pub fn verify_v2(method: &str, host: &str, path: &str, params: &[(String, String)], secret: &str) -> Result<(), SigError> {
    let (sig_method, provided) = parse_signature(params)?;
    let sts = canonical_query_v2(method, host, path, params);
    let expected = mac(secret, &sts, sig_method);
    if bool::from(expected.ct_eq(&provided)) {
        Ok(())
    } else {
        Err(SigError::SignatureMismatch { canonical_request: sts.clone(), string_to_sign: sts })
    }
}

/// Checks the freshness of a SigV2 request: `Timestamp` within
/// `max_skew_secs` of `now` (use [`crate::MAX_CLOCK_SKEW_SECS`]), or `now`
/// not after `Expires` and `Expires` at most `max_skew_secs` ahead of `now`
/// (a signed request lives 15 minutes at most, whichever way it says when).
/// Exactly one of the two must be present.
///
/// # Errors
///
/// [`SigError::MissingQueryParam`]`("Timestamp")` if neither is present,
/// [`SigError::InvalidRequest`] if both are, [`SigError::MalformedDate`],
/// [`SigError::RequestTimeTooSkewed`], [`SigError::Expired`],
/// [`SigError::ExpiresTooFarAhead`].
pub fn check_v2_time(params: &[(String, String)], now: DateTime<Utc>, max_skew_secs: i64) -> Result<(), SigError> {
    let has = |name: &str| params.iter().any(|(k, _)| k == name);
    match (has("Timestamp"), has("Expires")) {
        (true, true) => Err(SigError::InvalidRequest("Timestamp and Expires are mutually exclusive".into())),
        (false, false) => Err(SigError::MissingQueryParam("Timestamp")),
        (true, false) => check_clock_skew(parse_v2_timestamp(single(params, "Timestamp")?)?, now, max_skew_secs),
        (false, true) => {
            let expires = parse_v2_timestamp(single(params, "Expires")?)?;
            let ahead_secs = (expires - now).num_seconds();
            if now > expires {
                Err(SigError::Expired)
            } else if ahead_secs > max_skew_secs {
                Err(SigError::ExpiresTooFarAhead { ahead_secs, max_ahead_secs: max_skew_secs })
            } else {
                Ok(())
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn method_names() {
        assert_eq!("HmacSHA256".parse::<SigV2Method>().unwrap(), SigV2Method::HmacSha256);
        assert_eq!("HmacSHA1".parse::<SigV2Method>().unwrap(), SigV2Method::HmacSha1);
        assert!(matches!("hmacsha256".parse::<SigV2Method>(), Err(SigError::UnsupportedAlgorithm(_))));
    }

    #[test]
    fn timestamps() {
        let want = parse_v2_timestamp("2011-10-03T15:19:30Z").unwrap();
        assert_eq!(format_v2_timestamp(want), "2011-10-03T15:19:30Z");
        assert_eq!(parse_v2_timestamp("2011-10-03T15:19:30.000Z").unwrap(), want);
        assert_eq!(parse_v2_timestamp("2011-10-03T17:19:30+02:00").unwrap(), want);
        assert_eq!(parse_v2_timestamp("2011-10-03T15:19:30").unwrap(), want);
        assert!(parse_v2_timestamp("yesterday").is_err());
    }
}
