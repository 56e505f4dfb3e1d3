//! `/users`: accounts, roles, passwords and SSH keys.

use super::actor::ApiActor;
use super::error::{parse, ApiResult};
use super::{no_content, ok};
use actix_web::{web, HttpResponse};
use cloudbroker_connector_api::SecretString;
use cloudbroker_core::domain::UserName;
use cloudbroker_core::Broker;
use serde::Deserialize;

pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/users", web::post().to(create_user))
        .route("/users", web::get().to(list_users))
        .route("/users/{user}", web::get().to(get_user))
        .route("/users/{user}/password", web::put().to(set_password))
        .route("/users/{user}/role", web::put().to(set_role))
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
}

async fn set_password(a: ApiActor, broker: web::Data<Broker>, user: web::Path<String>, body: web::Json<Password>) -> ApiResult {
    broker.identity.set_password(&a.0, &user_in_path(&user)?, &SecretString::new(body.password.clone())).await?;
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
