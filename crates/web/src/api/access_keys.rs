//! `/users/{user}/access-keys`: the keys EC2 clients sign with against the
//! broker's EC2 front-end (`/ec2`). The secret is in the creation answer
//! only; listing shows id, state, creation and last use.

use super::actor::ApiActor;
use super::error::ApiResult;
use super::users::user_in_path;
use super::{no_content, ok};
use actix_web::{web, HttpResponse};
use cloudbroker_core::access_keys::AccessKey;
use cloudbroker_core::Broker;
use serde::Serialize;

/// A new access key, with its secret (shown this once).
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct NewAccessKey {
    access_key_id: String,
    secret_access_key: String,
    user: String,
    /// `active`
    state: String,
    created_at: chrono::DateTime<chrono::Utc>,
}

/// A user's access keys (at most a few; not paginated).
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct AccessKeyList {
    access_keys: Vec<AccessKey>,
}

/// Creates an EC2 API access key (self or admin); the secret is in this answer only.
#[utoipa::path(post, path = "/api/v1/users/{user}/access-keys", tag = "access-keys", params(("user" = String, Path, description = "user name")),
    responses((status = 201, body = NewAccessKey), (status = 409, description = "Too many active keys")))]
pub(super) async fn create_access_key(a: ApiActor, broker: web::Data<Broker>, user: web::Path<String>) -> ApiResult {
    let (key, secret) = broker.vault.create_access_key(&a.0, &user_in_path(&user)?).await?;
    Ok(HttpResponse::Created().json(NewAccessKey {
        access_key_id: key.access_key_id,
        secret_access_key: secret.expose().to_string(),
        user: key.user.to_string(),
        state: key.state,
        created_at: key.created_at,
    }))
}

/// A user's EC2 API access keys (self or admin), never their secrets.
#[utoipa::path(get, path = "/api/v1/users/{user}/access-keys", tag = "access-keys", params(("user" = String, Path, description = "user name")),
    responses((status = 200, body = AccessKeyList)))]
pub(super) async fn list_access_keys(a: ApiActor, broker: web::Data<Broker>, user: web::Path<String>) -> ApiResult {
    ok(AccessKeyList { access_keys: broker.vault.list_access_keys(&a.0, &user_in_path(&user)?).await? })
}

/// Deletes an access key (self or admin).
#[utoipa::path(delete, path = "/api/v1/users/{user}/access-keys/{id}", tag = "access-keys",
    params(("user" = String, Path, description = "user name"), ("id" = String, Path, description = "access key id")),
    responses((status = 204, description = "Deleted")))]
pub(super) async fn delete_access_key(a: ApiActor, broker: web::Data<Broker>, path: web::Path<(String, String)>) -> ApiResult {
    let (user, id) = path.into_inner();
    broker.vault.delete_access_key(&a.0, &user_in_path(&user)?, &id).await?;
    no_content()
}

/// Disables an access key (self or admin): EC2 requests signed with it are refused.
#[utoipa::path(post, path = "/api/v1/users/{user}/access-keys/{id}/disable", tag = "access-keys",
    params(("user" = String, Path, description = "user name"), ("id" = String, Path, description = "access key id")),
    responses((status = 200, body = AccessKey)))]
pub(super) async fn disable_access_key(a: ApiActor, broker: web::Data<Broker>, path: web::Path<(String, String)>) -> ApiResult {
    let (user, id) = path.into_inner();
    ok(broker.vault.set_access_key_active(&a.0, &user_in_path(&user)?, &id, false).await?)
}

/// Enables an access key again (self or admin).
#[utoipa::path(post, path = "/api/v1/users/{user}/access-keys/{id}/enable", tag = "access-keys",
    params(("user" = String, Path, description = "user name"), ("id" = String, Path, description = "access key id")),
    responses((status = 200, body = AccessKey)))]
pub(super) async fn enable_access_key(a: ApiActor, broker: web::Data<Broker>, path: web::Path<(String, String)>) -> ApiResult {
    let (user, id) = path.into_inner();
    ok(broker.vault.set_access_key_active(&a.0, &user_in_path(&user)?, &id, true).await?)
}
