//! The EC2 Query API over HTTP: one signed, form-encoded POST per call, and
//! the answer's XML (or error) classified into [`ConnectorError`]s.
//!
//! This is one *attempt*; retries, the concurrency bound and the per-call
//! timeout are the connector's [`CallGate`](cloudbroker_connector_api::retry::CallGate).

use crate::xml::{self, Element};
use chrono::Utc;
use cloudbroker_connector_api::{ConnectorError, Credentials};
use cloudbroker_sigv::{encode_query, sign_v2_params, sign_v4_headers, SigningParams};
use std::fmt;
use std::time::{Duration, Instant};
use url::Url;

/// `Content-Type` of every request (what the AWS SDKs send).
pub const CONTENT_TYPE: &str = "application/x-www-form-urlencoded; charset=utf-8";

/// The largest answer read from a cloud. A DescribeInstances page of 1,000
/// VMs is a few MiB; anything far larger is refused rather than buffered.
pub const MAX_ANSWER_BYTES: usize = 32 * 1024 * 1024;

/// The form body: [`encode_query`] (RFC 3986) with spaces as `+`, as HTML
/// forms and the AWS SDKs encode them. `encode_query` never leaves a literal
/// `+` (it becomes `%2B`) nor a `%20` that is not a space (`%` becomes `%25`),
/// so the replacement is exact. Servers decode both; moto re-encodes the
/// form this way when it checks SigV4 payload hashes, so `%20` would not match.
pub fn form_body(pairs: &[(String, String)]) -> String {
    encode_query(pairs).replace("%20", "+")
}

/// How requests are signed (`signature.version`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignatureVersion {
    /// `SignatureVersion=2`, `SignatureMethod=HmacSHA256`, signature in the form body.
    V2,
    /// AWS SigV4 in the `Authorization` header, service `ec2`.
    V4,
}

impl SignatureVersion {
    /// `"2"` or `"4"`.
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim() {
            "2" => Some(SignatureVersion::V2),
            "4" => Some(SignatureVersion::V4),
            _ => None,
        }
    }
}

impl fmt::Display for SignatureVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SignatureVersion::V2 => "2",
            SignatureVersion::V4 => "4",
        })
    }
}

/// Error codes meaning "this cloud does not implement the action".
const UNSUPPORTED_CODES: &[&str] =
    &["InvalidAction", "UnsupportedOperation", "NotImplemented", "Unsupported", "UnknownOperation", "UnknownAction"];

/// Whether an error code says the action does not exist on this cloud.
pub fn is_unsupported_code(code: &str) -> bool {
    UNSUPPORTED_CODES.contains(&code)
}

/// The endpoint as requests need it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// Where to POST (scheme, host, port and path; no query).
    pub url: Url,
    /// The `Host` header: lowercase host, `:port` only when not the scheme's default.
    pub host: String,
    /// The path, `/` at least, as sent (already percent-encoded).
    pub path: String,
}

impl Endpoint {
    /// Parses and checks an `endpoint` parameter value.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let url = Url::parse(raw.trim()).map_err(|e| format!("endpoint '{raw}' is not a URL: {e}"))?;
        if url.scheme() != "http" && url.scheme() != "https" {
            return Err(format!("endpoint '{raw}' must be an http:// or https:// URL"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err("endpoint must not contain a user name or password; credentials are per user".into());
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(format!("endpoint '{raw}' must not have a query string or fragment"));
        }
        let host = match url.host_str() {
            Some(h) if !h.is_empty() => h.to_ascii_lowercase(),
            _ => return Err(format!("endpoint '{raw}' has no host")),
        };
        let host = match url.port() {
            Some(p) => format!("{host}:{p}"),
            None => host,
        };
        let path = if url.path().is_empty() { "/".to_string() } else { url.path().to_string() };
        Ok(Self { url, host, path })
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.url.as_str())
    }
}

/// Settings of the HTTP client.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    pub endpoint: Endpoint,
    pub region: String,
    pub signature: SignatureVersion,
    pub api_version: String,
    pub timeout: Duration,
    pub tls_verify: bool,
}

/// A Query API client for one endpoint. Holds no credentials.
#[derive(Clone, Debug)]
pub struct QueryClient {
    http: reqwest::Client,
    cfg: ClientConfig,
}

/// The encoded request of one attempt (exposed for tests).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedRequest {
    /// Headers to send: `Host` (exactly as signed), `Content-Type` and, for
    /// SigV4, `X-Amz-Date` and `Authorization`.
    pub headers: Vec<(String, String)>,
    /// The form body.
    pub body: String,
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(a)) => a.is_loopback(),
        Some(url::Host::Ipv6(a)) => a.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

impl QueryClient {
    /// Builds the HTTP client (rustls; `tls_verify=false` accepts any certificate).
    pub fn new(cfg: ClientConfig) -> Result<Self, ConnectorError> {
        let mut b = reqwest::Client::builder()
            .use_rustls_tls()
            .timeout(cfg.timeout)
            .connect_timeout(cfg.timeout.min(Duration::from_secs(10)))
            .user_agent(concat!("cloudbroker-connector-ec2query/", env!("CARGO_PKG_VERSION")))
            .danger_accept_invalid_certs(!cfg.tls_verify)
            // A redirect would resend the signed body to another host, or over
            // plain HTTP: an EC2 endpoint never redirects, so follow none.
            .redirect(reqwest::redirect::Policy::none());
        if is_loopback(&cfg.endpoint.url) {
            // A local cloud (or test server) is never behind the system proxy.
            b = b.no_proxy();
        }
        let http = b.build().map_err(|e| ConnectorError::Transport { message: format!("cannot build the HTTP client: {e}") })?;
        Ok(Self { http, cfg })
    }

    /// The configuration.
    pub fn config(&self) -> &ClientConfig {
        &self.cfg
    }

    /// Encodes and signs one request of `action`.
    pub fn sign(
        &self,
        creds: &Credentials,
        action: &str,
        params: &[(String, String)],
        now: chrono::DateTime<Utc>,
    ) -> Result<SignedRequest, ConnectorError> {
        let ep = &self.cfg.endpoint;
        let mut all: Vec<(String, String)> = Vec::with_capacity(params.len() + 7);
        all.push(("Action".into(), action.into()));
        all.push(("Version".into(), self.cfg.api_version.clone()));
        all.extend(params.iter().cloned());
        let secret = creds.secret_access_key.expose();
        match self.cfg.signature {
            SignatureVersion::V2 => {
                sign_v2_params("POST", &ep.host, &ep.path, &mut all, &creds.access_key_id, secret, now);
                let headers = vec![("Host".to_string(), ep.host.clone()), ("Content-Type".to_string(), CONTENT_TYPE.to_string())];
                Ok(SignedRequest { headers, body: form_body(&all) })
            }
            SignatureVersion::V4 => {
                let body = form_body(&all);
                let mut headers = vec![("Host".to_string(), ep.host.clone()), ("Content-Type".to_string(), CONTENT_TYPE.to_string())];
                let sp = SigningParams::new(&creds.access_key_id, secret, &self.cfg.region, "ec2", now);
                let added = sign_v4_headers("POST", &ep.path, &[], &headers, body.as_bytes(), &sp)
                    .map_err(|e| ConnectorError::InvalidRequest { code: "SigningFailed".into(), message: e.to_string() })?;
                headers.extend(added);
                Ok(SignedRequest { headers, body })
            }
        }
    }

    /// One attempt of `action`: the answer's root element, or the classified error.
    pub async fn call(&self, creds: &Credentials, action: &str, params: &[(String, String)]) -> Result<Element, ConnectorError> {
        let signed = self.sign(creds, action, params, Utc::now())?;
        let started = Instant::now();
        let mut req = self.http.post(self.cfg.endpoint.url.clone());
        for (k, v) in &signed.headers {
            req = req.header(k.as_str(), v.as_str());
        }
        let result = req.body(signed.body).send().await;
        let resp = match result {
            Ok(r) => r,
            Err(e) => {
                let err = self.transport_error(&e);
                tracing::debug!(action, endpoint = %self.cfg.endpoint, access_key = %creds.masked_access_key(), error = %err, "EC2 Query call failed");
                return Err(err);
            }
        };
        let status = resp.status().as_u16();
        if resp.status().is_redirection() {
            let to = resp.headers().get(reqwest::header::LOCATION).and_then(|v| v.to_str().ok()).unwrap_or("?").to_string();
            return Err(ConnectorError::Cloud {
                code: "Redirect".into(),
                message: format!("{} answered {action} with a redirect (HTTP {status} to {}); redirects are not followed: set the endpoint to the final URL", self.cfg.endpoint, excerpt(&to)),
            });
        }
        let body = self.read_capped(resp).await?;
        let body = String::from_utf8_lossy(&body);
        let out = classify(action, status, &body);
        tracing::debug!(
            action,
            endpoint = %self.cfg.endpoint,
            access_key = %creds.masked_access_key(),
            status,
            elapsed_ms = started.elapsed().as_millis() as u64,
            error = out.as_ref().err().map(|e| e.to_string()),
            "EC2 Query call"
        );
        out
    }

    /// Reads an answer of at most [`MAX_ANSWER_BYTES`].
    async fn read_capped(&self, mut resp: reqwest::Response) -> Result<Vec<u8>, ConnectorError> {
        let too_large = || ConnectorError::Cloud {
            code: "AnswerTooLarge".into(),
            message: format!("{} sent an answer larger than {MAX_ANSWER_BYTES} bytes; refused", self.cfg.endpoint),
        };
        if resp.content_length().is_some_and(|n| n > MAX_ANSWER_BYTES as u64) {
            return Err(too_large());
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| self.transport_error(&e))? {
            if body.len() + chunk.len() > MAX_ANSWER_BYTES {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    fn transport_error(&self, e: &reqwest::Error) -> ConnectorError {
        if e.is_timeout() {
            return ConnectorError::Timeout { seconds: self.cfg.timeout.as_secs().max(1) };
        }
        let mut msg = e.to_string();
        let mut src = std::error::Error::source(e);
        while let Some(s) = src {
            msg.push_str(": ");
            msg.push_str(&s.to_string());
            src = s.source();
        }
        let what = if e.is_connect() { "cannot connect to" } else { "request failed to" };
        ConnectorError::Transport { message: format!("{what} {}: {msg}", self.cfg.endpoint) }
    }
}

/// A short, printable excerpt of a body for error messages.
fn excerpt(body: &str) -> String {
    let flat: String = body.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    let flat = flat.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() > 200 {
        format!("{}...", flat.chars().take(200).collect::<String>())
    } else if flat.is_empty() {
        "(empty body)".into()
    } else {
        flat
    }
}

/// The connector error of an unsupported action.
pub fn unsupported(action: &str, why: &str) -> ConnectorError {
    ConnectorError::Unsupported { operation: format!("{action} on this cloud ({why})") }
}

/// Turns an HTTP answer into the root element or a typed error.
pub fn classify(action: &str, status: u16, body: &str) -> Result<Element, ConnectorError> {
    let parsed = xml::parse(body);
    let code = parsed.as_ref().ok().and_then(xml::error_code);
    if let Some((code, message)) = code {
        if status == 501 || is_unsupported_code(&code) {
            return Err(unsupported(action, &format!("the cloud answered {code}: {message}")));
        }
        return Err(ConnectorError::from_ec2_code(&code, &message));
    }
    match status {
        200..=299 => {
            parsed.map_err(|e| ConnectorError::Transport { message: format!("unreadable {action} answer ({e}): {}", excerpt(body)) })
        }
        501 => Err(unsupported(action, &format!("the cloud answered HTTP 501: {}", excerpt(body)))),
        503 => Err(ConnectorError::Throttled {
            code: "ServiceUnavailable".into(),
            message: format!("HTTP 503 without an error code: {}", excerpt(body)),
        }),
        401 | 403 => Err(ConnectorError::Auth { code: format!("HTTP{status}"), message: excerpt(body) }),
        500 | 502 | 504 => {
            Err(ConnectorError::Transport { message: format!("HTTP {status} without an EC2 error from {action}: {}", excerpt(body)) })
        }
        _ => Err(ConnectorError::Cloud { code: format!("HTTP{status}"), message: excerpt(body) }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use cloudbroker_sigv::{parse_authorization_header, parse_form_urlencoded, sha256_hex, verify_v2, verify_v4, SigV4Request};

    fn client(sig: SignatureVersion, endpoint: &str) -> QueryClient {
        QueryClient::new(ClientConfig {
            endpoint: Endpoint::parse(endpoint).unwrap(),
            region: "opennebula".into(),
            signature: sig,
            api_version: "2016-11-15".into(),
            timeout: Duration::from_secs(5),
            tls_verify: true,
        })
        .unwrap()
    }

    fn now() -> chrono::DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 4, 5, 6, 7).unwrap()
    }

    #[test]
    fn endpoints() {
        let e = Endpoint::parse("https://One.Example.ORG:8443/econe/").unwrap();
        assert_eq!((e.host.as_str(), e.path.as_str()), ("one.example.org:8443", "/econe/"));
        let e = Endpoint::parse("https://one.example.org:443").unwrap();
        assert_eq!((e.host.as_str(), e.path.as_str()), ("one.example.org", "/"));
        let e = Endpoint::parse("http://[::1]:4567/a%20b").unwrap();
        assert_eq!((e.host.as_str(), e.path.as_str()), ("[::1]:4567", "/a%20b"));
        assert!(Endpoint::parse("ftp://x").is_err());
        assert!(Endpoint::parse("https://u:p@x/").is_err());
        assert!(Endpoint::parse("https://x/?a=1").is_err());
        assert!(Endpoint::parse("nope").is_err());
    }

    #[test]
    fn form_bodies_use_plus_for_spaces() {
        let pairs = vec![("GroupDescription".to_string(), "a b+c%20d (e)".to_string()), ("Filter.1.Name".to_string(), "tag:k".to_string())];
        let body = form_body(&pairs);
        assert_eq!(body, "GroupDescription=a+b%2Bc%2520d+%28e%29&Filter.1.Name=tag%3Ak");
        assert_eq!(cloudbroker_sigv::parse_form_urlencoded(&body).unwrap(), pairs);
    }

    #[test]
    fn signs_v2_in_the_body() {
        let c = client(SignatureVersion::V2, "http://One.example.org:4567/ec2/");
        let creds = Credentials::new("oneuser", "secret-sha1-of-password");
        let s = c.sign(&creds, "DescribeInstances", &[("InstanceId.1".into(), "i-1".into())], now()).unwrap();
        assert_eq!(
            s.headers,
            vec![("Host".to_string(), "one.example.org:4567".to_string()), ("Content-Type".to_string(), CONTENT_TYPE.to_string())]
        );
        let sig = "Signature=";
        let (head, tail) = s.body.split_at(s.body.find(sig).unwrap());
        assert_eq!(
            head,
            "Action=DescribeInstances&Version=2016-11-15&InstanceId.1=i-1&AWSAccessKeyId=oneuser\
             &SignatureVersion=2&SignatureMethod=HmacSHA256&Timestamp=2026-03-04T05%3A06%3A07Z&"
        );
        assert!(tail.len() > sig.len() + 20);
        let params = parse_form_urlencoded(&s.body).unwrap();
        // The canonical string covers POST, the lowercase host:port and the endpoint's path.
        verify_v2("POST", "one.example.org:4567", "/ec2/", &params, "secret-sha1-of-password").unwrap();
        assert!(verify_v2("POST", "one.example.org:4567", "/", &params, "secret-sha1-of-password").is_err());
        assert!(verify_v2("GET", "one.example.org:4567", "/ec2/", &params, "secret-sha1-of-password").is_err());
        assert!(!format!("{s:?}").contains("secret-sha1"));
    }

    #[test]
    fn signs_v4_in_headers() {
        let c = client(SignatureVersion::V4, "https://one.example.org:8443/ec2");
        let creds = Credentials::new("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY");
        let s = c.sign(&creds, "DescribeRegions", &[], now()).unwrap();
        assert_eq!(s.body, "Action=DescribeRegions&Version=2016-11-15");
        let names: Vec<&str> = s.headers.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, ["Host", "Content-Type", "X-Amz-Date", "Authorization"]);
        assert_eq!(s.headers[0].1, "one.example.org:8443");
        assert_eq!(s.headers[2].1, "20260304T050607Z");
        let auth = parse_authorization_header(&s.headers[3].1).unwrap();
        assert_eq!((auth.access_key.as_str(), auth.scope()), ("AKIDEXAMPLE", "20260304/opennebula/ec2/aws4_request".to_string()));
        assert_eq!(auth.signed_headers, ["content-type", "host", "x-amz-date"]);
        let headers = s.headers.clone();
        let payload = sha256_hex(s.body.as_bytes());
        verify_v4(&SigV4Request::new("POST", "/ec2", &[], &headers, &payload), &auth, "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY").unwrap();
        assert!(
            verify_v4(&SigV4Request::new("POST", "/", &[], &headers, &payload), &auth, "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY").is_err()
        );
        assert!(!format!("{s:?} {c:?}").contains("wJalr"));
    }

    #[test]
    fn classifies_answers() {
        let err = |code: &str| {
            format!("<Response><Errors><Error><Code>{code}</Code><Message>m</Message></Error></Errors><RequestID>r</RequestID></Response>")
        };
        assert!(classify("DescribeRegions", 200, "<DescribeRegionsResponse><regionInfo/></DescribeRegionsResponse>").is_ok());
        assert_eq!(classify("X", 401, &err("AuthFailure")), Err(ConnectorError::Auth { code: "AuthFailure".into(), message: "m".into() }));
        assert_eq!(classify("X", 403, &err("SignatureDoesNotMatch")).unwrap_err().code(), Some("SignatureDoesNotMatch"));
        assert!(matches!(classify("X", 503, &err("RequestLimitExceeded")), Err(ConnectorError::Throttled { .. })));
        assert!(matches!(classify("RunInstances", 500, &err("InsufficientInstanceCapacity")), Err(ConnectorError::Capacity { .. })));
        assert!(matches!(classify("X", 400, &err("InvalidInstanceID.NotFound")), Err(ConnectorError::NotFound { .. })));
        for code in ["InvalidAction", "UnsupportedOperation", "NotImplemented"] {
            assert_eq!(
                classify("DescribeInstanceTypes", 400, &err(code)),
                Err(ConnectorError::Unsupported {
                    operation: format!("DescribeInstanceTypes on this cloud (the cloud answered {code}: m)")
                })
            );
        }
        assert!(matches!(classify("CreateTags", 501, "<html>Not Implemented</html>"), Err(ConnectorError::Unsupported { .. })));
        assert_eq!(
            classify("X", 503, ""),
            Err(ConnectorError::Throttled {
                code: "ServiceUnavailable".into(),
                message: "HTTP 503 without an error code: (empty body)".into()
            })
        );
        assert!(classify("X", 503, "").unwrap_err().is_retryable());
        assert!(matches!(classify("X", 502, "<html><body>Bad Gateway</body></html>"), Err(ConnectorError::Transport { .. })));
        assert!(matches!(classify("X", 404, "Not Found"), Err(ConnectorError::Cloud { .. })));
        assert!(matches!(classify("X", 200, "not xml <"), Err(ConnectorError::Transport { .. })));
        // An error document with a 200 status is still an error.
        assert!(matches!(classify("X", 200, &err("UnauthorizedOperation")), Err(ConnectorError::Forbidden { .. })));
    }
}
