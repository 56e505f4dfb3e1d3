//! Who signed a request: SigV4 in the `Authorization` header, SigV4
//! presigned (`X-Amz-*` in the query), or SigV2 (`Signature` with
//! HmacSHA256 or HmacSHA1).
//!
//! Invariants:
//! * Every check that needs no secret comes first (algorithm, service `ec2`,
//!   request time within 15 minutes, a SigV2 `Expires` at most 15 minutes
//!   ahead, scope date, presign expiry, required headers and parameters,
//!   `host` signed, where the signature travels): a malformed or stale
//!   request gets its own clear error and costs no key lookup. After the
//!   lookup every refusal is the one `AuthFailure`, whether the key is
//!   unknown, disabled, its user disabled, or the signature wrong; an
//!   unknown key is checked against a dummy secret, so it costs the same
//!   signature work as a known one. (The one exception needs a valid
//!   signature, so it tells nothing about keys: a presigned URL that signed
//!   no body, sent with one.)
//! * Only what the signature covers is acted on ([`Caller::covered`]): a
//!   SigV2 POST signs its form body, so it may carry no query parameter; a
//!   SigV2 GET and a presigned URL sign the query, and a presigned URL may
//!   carry a body only if it signed the body's hash; a SigV4 header
//!   signature covers query and body, and may not carry a presigned URL's
//!   `X-Amz-*` parameters (their time and expiry would go unchecked).
//!
//! * The caller acts as the key's holder ([`Caller::actor`]) in the key's
//!   project, with the holder's current role there, exactly as the access
//!   key service answers it: nothing here changes the actor's project or
//!   role (a holder who left the project gets `AuthFailure`, like an
//!   unknown key; a viewer's key reads and cannot act).
//!
//! Every request is verified in full. What is cached is only what does not
//! depend on the request: the key's holder (in the vault's access-key cache,
//! which forgets a disabled or deleted key at once) and, with it, the SigV4
//! signing key per (date, region, service).

use crate::error::Ec2Error;
use chrono::{DateTime, Utc};
use cloudbroker_core::{Actor, Broker};
use cloudbroker_sigv as sigv;
use sigv::{ParsedAuthorization, ParsedV2, PreparedV4, SigError, SigV4Request, SignatureLocation};

/// Clock skew tolerated (AWS's 15 minutes).
pub const MAX_SKEW_SECS: i64 = sigv::MAX_CLOCK_SKEW_SECS;

/// The secret an unknown access key's signature is computed with, so that
/// refusing an unknown key takes the same work as refusing a wrong signature.
const DUMMY_SECRET: &str = "cloudbroker/unknown-access-key/0000000000000000000000";

/// Which parts of the request the signature covers (the parameters an
/// action may read come from these only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Covered {
    /// The URL's query parameters.
    pub query: bool,
    /// The form body.
    pub body: bool,
}

/// An authenticated caller.
pub struct Caller {
    /// The key's holder, entered in the key's project.
    pub actor: Actor,
    /// The SigV4 scope's region (the connector instance to act on), when signed with SigV4.
    pub region: Option<String>,
    pub access_key: String,
    /// What the signature covers.
    pub covered: Covered,
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
        SigError::ExpiresTooFarAhead { ahead_secs, max_ahead_secs } => Some(Ec2Error::client(
            "RequestExpired",
            format!(
                "Expires is {ahead_secs} seconds ahead of the server's time; at most {max_ahead_secs} seconds (15 minutes) are allowed"
            ),
        )),
        _ => None,
    }
}

fn malformed(e: SigError) -> Ec2Error {
    expired(&e).unwrap_or_else(|| Ec2Error::client("IncompleteSignature", format!("The request signature is malformed: {e}")))
}

/// One way the client may have signed the request (a host and path view,
/// and for presigned URLs a payload hash), checked for all but the secret.
struct V4Candidate {
    prepared: PreparedV4,
    /// Whether this form of the signature covers the body (an empty body is covered by any).
    covers_body: bool,
}

/// A request checked for everything but its signature.
enum Plan {
    V4 { auth: ParsedAuthorization, candidates: Vec<V4Candidate>, covered_query: bool },
    V2 { parsed: ParsedV2, strings: Vec<String>, covered: Covered },
}

/// Checks the request's signature; the caller and the region it signed for.
pub async fn authenticate(broker: &Broker, r: &Signed<'_>, now: DateTime<Utc>) -> Result<Caller, Ec2Error> {
    let plan = plan(broker, r, now)?;
    match plan {
        Plan::V4 { auth, candidates, covered_query } => {
            let holder = broker.access_keys.holder_at(&auth.access_key, now).await?;
            let derived;
            let dummy;
            let key: &[u8; 32] = match &holder {
                Some(h) => {
                    let label = format!("aws4/{}/{}/{}", auth.date, auth.region, auth.service);
                    derived = h.derived(&label, |secret| sigv::signing_key(secret, &auth.date, &auth.region, &auth.service));
                    &derived
                }
                None => {
                    dummy = sigv::signing_key(DUMMY_SECRET, &auth.date, &auth.region, &auth.service);
                    &dummy
                }
            };
            // Every candidate is compared, whatever the others gave: the same work for any key.
            let hits: Vec<bool> = candidates.iter().map(|c| c.prepared.matches(key, &auth.signature)).collect();
            let Some(holder) = holder else { return Err(Ec2Error::auth_failure()) };
            if candidates.iter().zip(&hits).any(|(c, hit)| *hit && c.covers_body) {
                let covered = Covered { query: covered_query, body: true };
                return done(broker, holder.actor, Some(auth.region.clone()), auth.access_key.clone(), covered).await;
            }
            if hits.iter().any(|hit| *hit) {
                // A valid presigned URL (so nothing is told about keys) sent with a body it did not sign.
                return Err(Ec2Error::client(
                    "IncompleteSignature",
                    "This presigned URL was signed with UNSIGNED-PAYLOAD, which covers no body: put every parameter in the URL, \
                     or presign with the body's SHA-256",
                ));
            }
            Err(Ec2Error::auth_failure())
        }
        Plan::V2 { parsed, strings, covered } => {
            let holder = broker.access_keys.holder_at(&parsed.access_key, now).await?;
            let secret = holder.as_ref().map_or(DUMMY_SECRET, |h| h.secret.expose());
            let hits = strings.iter().filter(|sts| parsed.matches(secret, sts)).count();
            match holder {
                Some(h) if hits > 0 => done(broker, h.actor, None, parsed.access_key.clone(), covered).await,
                _ => Err(Ec2Error::auth_failure()),
            }
        }
    }
}

/// Every check that needs no secret (see the module's invariants).
fn plan(broker: &Broker, r: &Signed<'_>, now: DateTime<Utc>) -> Result<Plan, Ec2Error> {
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
        let candidates = candidates(broker, r, &auth, SignatureLocation::Header, &[(payload.as_str(), true)])?;
        return Ok(Plan::V4 { auth, candidates, covered_query: true });
    }
    if r.query.iter().any(|(k, _)| k == "X-Amz-Signature") {
        let pre = sigv::parse_presigned_query(r.query).map_err(malformed)?;
        if pre.auth.service != "ec2" {
            return Err(Ec2Error::client("IncompleteSignature", "Credential should be scoped to service 'ec2'"));
        }
        pre.check_expiry(now, MAX_SKEW_SECS).map_err(malformed)?;
        let payload = sigv::sha256_hex(r.body);
        // UNSIGNED-PAYLOAD (what botocore presigns with) covers an empty body only.
        let payloads = [(payload.as_str(), true), (sigv::UNSIGNED_PAYLOAD, r.body.is_empty())];
        let candidates = candidates(broker, r, &pre.auth, SignatureLocation::Query, &payloads)?;
        return Ok(Plan::V4 { auth: pre.auth, candidates, covered_query: true });
    }
    let post = r.method == "POST";
    let v2 = if post { r.form } else { r.query };
    if v2.iter().any(|(k, _)| k == "Signature") {
        if post {
            if let Some((name, _)) = r.query.first() {
                return Err(Ec2Error::client(
                    "InvalidParameter",
                    format!(
                        "The query parameter '{}' is not covered by the signature: a SigV2 POST signs its form body only, \
                         so send every parameter in the body",
                        crate::ids::shown(name)
                    ),
                ));
            }
        }
        sigv::check_v2_time(v2, now, MAX_SKEW_SECS).map_err(malformed)?;
        let parsed = sigv::parse_v2(v2).map_err(malformed)?;
        let strings = views(broker, r).iter().map(|(host, path)| sigv::canonical_query_v2(r.method, host, path, v2)).collect();
        return Ok(Plan::V2 { parsed, strings, covered: Covered { query: !post, body: post } });
    }
    Err(Ec2Error::new(401, "MissingAuthenticationToken", "The request must be signed (SigV4 or SigV2) with a broker access key"))
}

/// The request prepared for each (host, path) view and each payload hash
/// the client may have signed (with whether that hash covers the body).
fn candidates(
    broker: &Broker,
    r: &Signed<'_>,
    auth: &ParsedAuthorization,
    location: SignatureLocation,
    payloads: &[(&str, bool)],
) -> Result<Vec<V4Candidate>, Ec2Error> {
    let mut out = Vec::new();
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
        for (payload, covers_body) in payloads {
            let req = SigV4Request::new(r.method, &path, r.query, headers, payload);
            let prepared = sigv::prepare_v4(&req, auth, location).map_err(malformed)?;
            out.push(V4Candidate { prepared, covers_body: *covers_body });
        }
    }
    Ok(out)
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

async fn done(broker: &Broker, actor: Actor, region: Option<String>, access_key: String, covered: Covered) -> Result<Caller, Ec2Error> {
    if let Err(e) = broker.access_keys.record_use(&access_key).await {
        tracing::warn!(error = %e, "could not record an access key's use");
    }
    Ok(Caller { actor, region, access_key, covered })
}
