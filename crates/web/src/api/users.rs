//! `/users`: accounts, roles, passwords and SSH keys.

use super::actor::ApiActor;
use super::error::{parse, ApiResult};
use super::{no_content, ok};
use crate::common::auth::client_ip;
use actix_web::{web, HttpRequest, HttpResponse};
use cloudbroker_connector_api::SecretString;
use cloudbroker_core::domain::{TokenId, UserName};
use cloudbroker_core::{Broker, ServiceError};
use serde::Deserialize;

pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/users", web::post().to(create_user))
        .route("/users", web::get().to(list_users))
        .route("/users/{user}", web::get().to(get_user))
        .route("/users/{user}/password", web::put().to(set_password))
        .route("/users/{user}/role", web::put().to(set_role))
        .route("/users/{user}/disable", web::post().to(disable_user))
        .route("/users/{user}/enable", web::post().to(enable_user))
        .route("/users/{user}/tokens", web::get().to(list_user_tokens))
        .route("/users/{user}/tokens/{id}", web::delete().to(revoke_user_token))
        .route("/users/{user}/ssh-key", web::put().to(set_ssh_key));
}

/// A user named in a path: an invalid name cannot exist.
pub(super) fn user_in_path(s: &str) -> Result<UserName, super::error::ApiError> {
    UserName::parse(s).map_err(|_| {
        super::error::ApiError(cloudbroker_core::ServiceError::NotFound(cloudbroker_core::Resource::Record(format!(
            "user '{}'",
            s.chars().take(64).collect::<String>()
        ))))
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewUser {
    name: String,
    password: String,
    #[serde(default)]
    admin: bool,
}

async fn create_user(a: ApiActor, broker: web::Data<Broker>, body: web::Json<NewUser>) -> ApiResult {
    a.0.require_admin()?;
    let name = parse(UserName::parse(&body.name))?;
    let u = broker.identity.create_user(&a.0, &name, &SecretString::new(body.password.clone()), body.admin).await?;
    Ok(HttpResponse::Created().json(u))
}

async fn list_users(a: ApiActor, broker: web::Data<Broker>) -> ApiResult {
    ok(broker.identity.list_users(&a.0).await?)
}

async fn get_user(a: ApiActor, broker: web::Data<Broker>, user: web::Path<String>) -> ApiResult {
    ok(broker.identity.get_user(&a.0, &user_in_path(&user)?).await?)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Password {
    password: String,
    /// Required to change one's own password.
    current_password: Option<String>,
}

/// Sets a password; every session and token of the user ends.
async fn set_password(
    req: HttpRequest,
    a: ApiActor,
    broker: web::Data<Broker>,
    user: web::Path<String>,
    body: web::Json<Password>,
) -> ApiResult {
    let current = body.current_password.clone().map(SecretString::new);
    broker
        .identity
        .set_password(&a.0, &user_in_path(&user)?, current.as_ref(), &SecretString::new(body.password.clone()), client_ip(&req))
        .await?;
    no_content()
}

async fn disable_user(a: ApiActor, broker: web::Data<Broker>, user: web::Path<String>) -> ApiResult {
    ok(broker.identity.set_disabled(&a.0, &user_in_path(&user)?, true).await?)
}

async fn enable_user(a: ApiActor, broker: web::Data<Broker>, user: web::Path<String>) -> ApiResult {
    ok(broker.identity.set_disabled(&a.0, &user_in_path(&user)?, false).await?)
}

async fn list_user_tokens(a: ApiActor, broker: web::Data<Broker>, user: web::Path<String>) -> ApiResult {
    ok(broker.identity.list_tokens(&a.0, &user_in_path(&user)?).await?)
}

async fn revoke_user_token(a: ApiActor, broker: web::Data<Broker>, path: web::Path<(String, String)>) -> ApiResult {
    let (user, id) = path.into_inner();
    let id = TokenId::parse(&id).map_err(|_| {
        ServiceError::NotFound(cloudbroker_core::Resource::Record(format!("token '{}'", id.chars().take(64).collect::<String>())))
    })?;
    broker.identity.revoke_token(&a.0, &user_in_path(&user)?, &id).await?;
    no_content()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Role {
    admin: bool,
}

async fn set_role(a: ApiActor, broker: web::Data<Broker>, user: web::Path<String>, body: web::Json<Role>) -> ApiResult {
    broker.identity.set_admin(&a.0, &user_in_path(&user)?, body.admin).await?;
    no_content()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SshKey {
    ssh_public_key: Option<String>,
}

async fn set_ssh_key(a: ApiActor, broker: web::Data<Broker>, user: web::Path<String>, body: web::Json<SshKey>) -> ApiResult {
    broker.identity.set_ssh_key(&a.0, &user_in_path(&user)?, body.ssh_public_key.as_deref()).await?;
    no_content()
}
