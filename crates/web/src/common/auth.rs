//! Credentials carried in request headers, and the client's address (the
//! peer, or what a trusted proxy says it is). Values are only extracted
//! here; checking them is the identity service's job.

use actix_web::HttpRequest;
use base64::Engine;
use cloudbroker_connector_api::SecretString;

/// Parses `Authorization: Basic ...` into (user, password); `None` when absent or malformed.
pub fn basic_credentials(req: &HttpRequest) -> Option<(String, SecretString)> {
    let h = req.headers().get("authorization")?.to_str().ok()?;
    let b64 = h.strip_prefix("Basic ").or_else(|| h.strip_prefix("basic "))?;
    let raw = base64::engine::general_purpose::STANDARD.decode(b64.trim()).ok()?;
    let s = String::from_utf8(raw).ok()?;
    let (u, p) = s.split_once(':')?;
    Some((u.to_string(), SecretString::new(p)))
}

/// The token of `Authorization: Bearer <token>`, if that is the header's scheme.
pub fn bearer_token(req: &HttpRequest) -> Option<String> {
    let h = req.headers().get("authorization")?.to_str().ok()?;
    h.strip_prefix("Bearer ").or_else(|| h.strip_prefix("bearer ")).map(|t| t.trim().to_string())
}

/// The client's address: the TCP peer, or, when the peer is one of the
/// configured `trusted_proxies`, the address its `Forwarded` /
/// `X-Forwarded-For` headers name (see `Config::client_address`). Those
/// headers are never believed from anyone else.
pub fn client_ip(req: &HttpRequest) -> Option<std::net::IpAddr> {
    let peer = req.peer_addr().map(|a| a.ip());
    let Some(broker) = req.app_data::<actix_web::web::Data<cloudbroker_core::Broker>>() else { return peer };
    if broker.config.trusted_proxies.is_empty() {
        return peer;
    }
    let values = |name: &str| req.headers().get_all(name).filter_map(|v| v.to_str().ok()).collect::<Vec<_>>();
    broker.config.client_address(peer, &values("forwarded"), &values("x-forwarded-for"))
}
