//! `/tokens`: API tokens. Minting one takes HTTP Basic (user and password)
//! or an existing bearer token; the token is shown once.

use super::actor::ApiActor;
use super::body::{object, opt_integer};
use super::doc::PageParams;
use super::error::{ApiError, ApiResult};
use super::users::TokenPage;
use super::{no_content, ok};
use crate::common::auth::{basic_credentials, client_ip};
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use cloudbroker_core::domain::{TokenId, UserName};
use cloudbroker_core::{Broker, ServiceError};
use serde::{Deserialize, Serialize};
use std::time::Duration;
use utoipa::ToSchema;

/// `POST /tokens` (the body is optional).
#[derive(Deserialize, Default, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct TokenRequest {
    /// 1-64 characters, no control characters (default `api`).
    #[schema(min_length = 1, max_length = 64, pattern = r"^[^\x00-\x1f\x7f-\x9f]*$")]
    name: Option<String>,
    /// Lifetime in seconds (at most about 10 years); never longer than the
    /// bearer token used to mint it.
    #[schema(minimum = 1, maximum = 316_224_000)]
    #[serde(default, deserialize_with = "opt_integer")]
    expires_in_secs: Option<u64>,
}

/// A new token: shown once.
#[derive(Serialize, ToSchema)]
pub(super) struct NewToken {
    /// The bearer token; only its hash is kept.
    token: String,
    id: String,
    user: String,
    expires_at: Option<DateTime<Utc>>,
}

/// Mints an API token with HTTP Basic auth (or a bearer token).
#[utoipa::path(post, path = "/api/v1/tokens", tag = "tokens", security(("basic" = []), ("bearer" = [])),
    request_body(content = Option<TokenRequest>, description = "optional"),
    responses((status = 201, body = NewToken), (status = 429, description = "`throttled`: too many failed logins; see Retry-After", body = super::doc::ErrorBody)))]
pub(super) async fn create_token(req: HttpRequest, broker: web::Data<Broker>, body: web::Bytes) -> ApiResult {
    let actor = match basic_credentials(&req) {
        Some((u, p)) => {
            // A malformed name cannot be a user: the same answer as a wrong password.
            let name = UserName::parse(&u).map_err(|_| ServiceError::Unauthenticated("wrong user name or password".into()))?;
            broker.identity.authenticate(&name, &p, client_ip(&req)).await?
        }
        None => ApiActor::of(&req).await?.0,
    };
    // No body, or `null`, takes the defaults.
    let r: TokenRequest = match serde_json::from_slice(&body) {
        _ if body.is_empty() => TokenRequest::default(),
        Ok(serde_json::Value::Null) => TokenRequest::default(),
        Ok(v) => object(v)?,
        Err(e) => return Err(ApiError::invalid(format!("body: {e}"))),
    };
    let (token, t) = broker
        .identity
        .create_token(&actor, &actor.name, r.name.as_deref().unwrap_or("api"), r.expires_in_secs.map(Duration::from_secs))
        .await?;
    Ok(HttpResponse::Created().json(NewToken { token, id: t.id.to_string(), user: t.user_name.to_string(), expires_at: t.expires_at }))
}

/// The caller's API tokens, newest first, paginated.
#[utoipa::path(get, path = "/api/v1/tokens", tag = "tokens", params(PageParams), responses((status = 200, body = TokenPage)))]
pub(super) async fn list_tokens(a: ApiActor, broker: web::Data<Broker>, q: web::Query<PageParams>) -> ApiResult {
    let page = super::body::page(q.limit.as_deref(), q.cursor.as_deref())?;
    let p = broker.identity.page_tokens(&a.0, &a.0.name, &page).await?;
    ok(TokenPage { tokens: p.items, next_cursor: p.next_cursor })
}

/// Revokes one of the caller's tokens.
#[utoipa::path(delete, path = "/api/v1/tokens/{id}", tag = "tokens", params(("id" = String, Path, description = "token id")),
    responses((status = 204, description = "Revoked")))]
pub(super) async fn revoke_token(a: ApiActor, broker: web::Data<Broker>, id: web::Path<String>) -> ApiResult {
    let id = TokenId::parse(&id).map_err(|_| {
        ServiceError::NotFound(cloudbroker_core::Resource::Record(format!("token '{}'", id.chars().take(64).collect::<String>())))
    })?;
    broker.identity.revoke_token(&a.0, &a.0.name, &id).await?;
    no_content()
}
