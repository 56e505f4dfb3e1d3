//! Request authentication for the JSON API: `Authorization: Bearer <token>`.

use crate::error::ApiError;
use actix_web::dev::Payload;
use actix_web::{web, FromRequest, HttpRequest};
use base64::Engine;
use cloudbroker_connector_api::SecretString;
use cloudbroker_core::{Actor, Broker, ServiceError};
use std::future::Future;
use std::pin::Pin;

/// The authenticated caller of an API request.
pub struct ApiActor(pub Actor);

impl FromRequest for ApiActor {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let broker = req.app_data::<web::Data<Broker>>().cloned();
        let header = req.headers().get("authorization").and_then(|v| v.to_str().ok()).map(str::to_string);
        Box::pin(async move {
            let broker = broker.ok_or_else(|| ApiError(ServiceError::Internal("no broker".into())))?;
            let token = header
                .as_deref()
                .and_then(|h| h.strip_prefix("Bearer ").or_else(|| h.strip_prefix("bearer ")))
                .map(str::trim)
                .ok_or_else(|| {
                    ApiError(ServiceError::Unauthenticated("send Authorization: Bearer <token> (get one with POST /api/v1/tokens)".into()))
                })?;
            match broker.identity.resolve_token(token).await? {
                Some(a) => Ok(ApiActor(a)),
                None => Err(ApiError(ServiceError::Unauthenticated("the token is unknown, expired or revoked".into()))),
            }
        })
    }
}

/// Parses `Authorization: Basic ...`.
pub fn basic_credentials(req: &HttpRequest) -> Option<(String, SecretString)> {
    let h = req.headers().get("authorization")?.to_str().ok()?;
    let b64 = h.strip_prefix("Basic ").or_else(|| h.strip_prefix("basic "))?;
    let raw = base64::engine::general_purpose::STANDARD.decode(b64.trim()).ok()?;
    let s = String::from_utf8(raw).ok()?;
    let (u, p) = s.split_once(':')?;
    Some((u.to_string(), SecretString::new(p)))
}

/// The client's address (the peer; proxies are not trusted).
pub fn client_ip(req: &HttpRequest) -> Option<std::net::IpAddr> {
    req.peer_addr().map(|a| a.ip())
}
