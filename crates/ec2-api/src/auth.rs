//! Who signed a request: SigV4 in the `Authorization` header, SigV4
//! presigned (`X-Amz-*` in the query), or SigV2 (`Signature` with
//! HmacSHA256 or HmacSHA1). Cheap checks come first (algorithm, service
//! `ec2`, request time within 15 minutes, scope date, presign expiry) so a
//! stale or malformed request costs no key lookup; then the key, then a
//! constant-time comparison (in `cloudbroker-sigv`). An unknown key, a
//! disabled key or user, and a wrong signature give the same `AuthFailure`.
//!
//! Every request is verified in full. What is cached is only what does not
//! depend on the request: the key's holder (in the vault's access-key cache,
//! which forgets a disabled or deleted key at once) and, with it, the SigV4
//! signing key per (date, region, service).

use crate::error::Ec2Error;
use chrono::{DateTime, Utc};
use cloudbroker_core::{Actor, Broker};
use cloudbroker_sigv as sigv;
use sigv::{SigError, SigV4Request};

/// Clock skew tolerated (AWS's 15 minutes).
pub const MAX_SKEW_SECS: i64 = sigv::MAX_CLOCK_SKEW_SECS;

/// An authenticated caller.
pub struct Caller {
    pub actor: Actor,
    /// The SigV4 scope's region (the connector instance to act on), when signed with SigV4.
    pub region: Option<String>,
    pub access_key: String,
}

/// The parts of the HTTP request the signature covers.
pub struct Signed<'a> {
    pub method: &'a str,
    /// The path as received (not decoded).
    pub path: &'a str,
    pub host: &'a str,
    pub query: &'a [(String, String)],
    pub headers: &'a [(String, String)],
    pub body: &'a [u8],
    /// The decoded form body (SigV2 signs these for POST).
    pub form: &'a [(String, String)],
}

fn expired(e: &SigError) -> Option<Ec2Error> {
    match e {
        SigError::RequestTimeTooSkewed { .. } => {
            Some(Ec2Error::client("RequestExpired", "Request has expired (more than 15 minutes from the server's time)"))
        }
        SigError::Expired => Some(Ec2Error::client("RequestExpired", "Request has expired")),
        _ => None,
    }
}

fn malformed(e: SigError) -> Ec2Error {
    expired(&e).unwrap_or_else(|| Ec2Error::client("IncompleteSignature", format!("The request signature is malformed: {e}")))
}

/// Checks the request's signature; the caller and the region it signed for.
pub async fn authenticate(broker: &Broker, r: &Signed<'_>, now: DateTime<Utc>) -> Result<Caller, Ec2Error> {
    let header = r.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case("authorization")).map(|(_, v)| v.as_str());
    if let Some(h) = header.filter(|h| h.trim_start().starts_with(sigv::ALGORITHM_V4)) {
        let auth = sigv::parse_authorization_header(h).map_err(malformed)?;
        if auth.service != "ec2" {
            return Err(Ec2Error::client(
                "IncompleteSignature",
                format!("Credential should be scoped to service 'ec2', not '{}'", crate::ids::shown(&auth.service)),
            ));
        }
        let date = r
            .headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("x-amz-date"))
            .map(|(_, v)| v.trim())
            .ok_or_else(|| Ec2Error::missing("X-Amz-Date"))?;
        let at = sigv::parse_amz_date(date).map_err(malformed)?;
        sigv::check_clock_skew(at, now, MAX_SKEW_SECS).map_err(malformed)?;
        if !date.starts_with(&auth.date) {
            return Err(Ec2Error::client("IncompleteSignature", "the credential scope date is not the request date"));
        }
        let payload = sigv::sha256_hex(r.body);
        return verify4(broker, r, &auth, &[payload.as_str()]).await;
    }
    if r.query.iter().any(|(k, _)| k == "X-Amz-Signature") {
        let pre = sigv::parse_presigned_query(r.query).map_err(malformed)?;
        if pre.auth.service != "ec2" {
            return Err(Ec2Error::client("IncompleteSignature", "Credential should be scoped to service 'ec2'"));
        }
        pre.check_expiry(now, MAX_SKEW_SECS).map_err(malformed)?;
        let payload = sigv::sha256_hex(r.body);
        return verify4(broker, r, &pre.auth, &[payload.as_str(), sigv::UNSIGNED_PAYLOAD]).await;
    }
    let v2 = if r.method == "POST" { r.form } else { r.query };
    if v2.iter().any(|(k, _)| k == "Signature") {
        sigv::check_v2_time(v2, now, MAX_SKEW_SECS).map_err(malformed)?;
        let key = sigv::v2_access_key(v2).map_err(malformed)?.to_string();
        let holder = broker.vault.access_key_holder(&key).await?.ok_or_else(Ec2Error::auth_failure)?;
        for (host, path) in views(broker, r) {
            match sigv::verify_v2(r.method, &host, &path, v2, holder.secret.expose()) {
                Ok(()) => return done(broker, holder.actor, None, key).await,
                Err(SigError::SignatureMismatch { .. }) => continue,
                Err(e) => return Err(malformed(e)),
            }
        }
        return Err(Ec2Error::auth_failure());
    }
    Err(Ec2Error::new(401, "MissingAuthenticationToken", "The request must be signed (SigV4 or SigV2) with a broker access key"))
}

async fn verify4(broker: &Broker, r: &Signed<'_>, auth: &sigv::ParsedAuthorization, payloads: &[&str]) -> Result<Caller, Ec2Error> {
    let holder = broker.vault.access_key_holder(&auth.access_key).await?.ok_or_else(Ec2Error::auth_failure)?;
    let label = format!("aws4/{}/{}/{}", auth.date, auth.region, auth.service);
    let key = holder.derived(&label, |secret| sigv::signing_key(secret, &auth.date, &auth.region, &auth.service));
    for (i, (host, path)) in views(broker, r).into_iter().enumerate() {
        // The request as received is checked with its own headers; a proxy's view with its host.
        let rewritten: Vec<(String, String)>;
        let headers = if i == 0 {
            r.headers
        } else {
            rewritten = r
                .headers
                .iter()
                .map(|(k, v)| if k.eq_ignore_ascii_case("host") { (k.clone(), host.clone()) } else { (k.clone(), v.clone()) })
                .collect();
            &rewritten
        };
        for payload in payloads {
            let req = SigV4Request::new(r.method, &path, r.query, headers, payload);
            match sigv::verify_v4_with_signing_key(&req, auth, &key) {
                Ok(()) => return done(broker, holder.actor, Some(auth.region.clone()), auth.access_key.clone()).await,
                Err(SigError::SignatureMismatch { .. }) => continue,
                Err(e) => return Err(malformed(e)),
            }
        }
    }
    Err(Ec2Error::auth_failure())
}

/// The (host, path) a client may have signed: the request as received, and,
/// behind a proxy that changes them, the configured public URL's host with
/// its path prefix (like econe's `ssl_server`).
fn views(broker: &Broker, r: &Signed<'_>) -> Vec<(String, String)> {
    let mut out = vec![(r.host.to_string(), r.path.to_string())];
    if let Some(public) = broker.config.public_url.as_deref() {
        let rest = public.strip_prefix("https://").or_else(|| public.strip_prefix("http://")).unwrap_or(public);
        let (host, prefix) = rest.split_once('/').map_or((rest, ""), |(h, p)| (h, p));
        let path = format!("/{}{}", prefix.trim_matches('/'), r.path).replace("//", "/");
        let view = (host.to_string(), path);
        if !host.is_empty() && view != out[0] {
            out.push(view);
        }
    }
    out
}

async fn done(broker: &Broker, actor: Actor, region: Option<String>, access_key: String) -> Result<Caller, Ec2Error> {
    if let Err(e) = broker.vault.access_key_used(&access_key).await {
        tracing::warn!(error = %e, "could not record an access key's use");
    }
    Ok(Caller { actor, region, access_key })
}
