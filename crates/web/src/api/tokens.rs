//! `/tokens`: API tokens. Minting one takes HTTP Basic (user and password)
//! or an existing bearer token; the token is shown once.

use super::actor::ApiActor;
use super::error::{ApiError, ApiResult};
use super::{no_content, ok};
use crate::common::auth::{basic_credentials, client_ip};
use actix_web::{web, HttpRequest, HttpResponse};
use cloudbroker_core::domain::{TokenId, UserName};
use cloudbroker_core::{Broker, ServiceError};
use serde::Deserialize;
use serde_json::json;
use std::time::Duration;

pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/tokens", web::post().to(create_token))
        .route("/tokens", web::get().to(list_tokens))
        .route("/tokens/{id}", web::delete().to(revoke_token));
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct TokenRequest {
    name: Option<String>,
    expires_in_secs: Option<u64>,
}

/// `POST /api/v1/tokens` with HTTP Basic auth (or a bearer token) → `{"token": ...}`.
async fn create_token(req: HttpRequest, broker: web::Data<Broker>, body: web::Bytes) -> ApiResult {
    let actor = match basic_credentials(&req) {
        Some((u, p)) => {
            // A malformed name cannot be a user: the same answer as a wrong password.
            let name = UserName::parse(&u).map_err(|_| ServiceError::Unauthenticated("wrong user name or password".into()))?;
            broker.identity.authenticate(&name, &p, client_ip(&req)).await?
        }
        None => ApiActor::of(&req).await?.0,
    };
    let r: TokenRequest = if body.is_empty() {
        TokenRequest::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| ApiError::invalid(format!("body: {e}")))?
    };
    let (token, t) = broker
        .identity
        .create_token(&actor, &actor.name, r.name.as_deref().unwrap_or("api"), r.expires_in_secs.map(Duration::from_secs))
        .await?;
    Ok(HttpResponse::Created().json(json!({"token": token, "id": t.id, "user": t.user_name, "expires_at": t.expires_at})))
}

async fn list_tokens(a: ApiActor, broker: web::Data<Broker>) -> ApiResult {
    ok(broker.identity.list_tokens(&a.0, &a.0.name).await?)
}

async fn revoke_token(a: ApiActor, broker: web::Data<Broker>, id: web::Path<String>) -> ApiResult {
    let id = TokenId::parse(&id).map_err(|_| ServiceError::NotFound(cloudbroker_core::Resource::Record(format!("token '{id}'"))))?;
    broker.identity.revoke_token(&a.0, &a.0.name, &id).await?;
    no_content()
}
