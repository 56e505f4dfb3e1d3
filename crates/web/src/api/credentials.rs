//! Cloud credentials: a user's own per connector instance
//! (`/users/{user}/credentials/{instance}`) and shared ones
//! (`/system/credentials/{instance}/{name}`, admin) with their grants.
//! Secrets go in and never come back out.

use super::actor::ApiActor;
use super::error::{parse, ApiError, ApiResult};
use super::users::user_in_path;
use super::{no_content, ok};
use actix_web::web;
use cloudbroker_core::domain::{CredentialName, InstanceName, UserName};
use cloudbroker_core::vault::Scope;
use cloudbroker_core::{Broker, Resource, ServiceError};
use serde::Deserialize;

pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/users/{user}/credentials", web::get().to(list_credentials))
        .route("/users/{user}/credentials/{instance}", web::put().to(put_credentials))
        .route("/users/{user}/credentials/{instance}", web::get().to(get_credentials))
        .route("/users/{user}/credentials/{instance}", web::delete().to(delete_credentials))
        .route("/system/credentials", web::get().to(list_shared))
        .route("/system/credentials/{instance}/{name}", web::put().to(put_shared))
        .route("/system/credentials/{instance}/{name}", web::get().to(get_shared))
        .route("/system/credentials/{instance}/{name}", web::delete().to(delete_shared))
        .route("/system/credentials/{instance}/{name}/grants", web::put().to(grant_shared))
        .route("/system/keys/rotate", web::post().to(rotate_keys));
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CredentialBody {
    access_key_id: String,
    secret_access_key: String,
    #[serde(default)]
    force: bool,
}

/// An instance named in a path: an invalid name cannot exist.
fn instance_in_path(s: &str) -> Result<InstanceName, ApiError> {
    InstanceName::parse(s).map_err(|_| {
        ApiError(ServiceError::NotFound(Resource::Record(format!("connector instance '{}'", s.chars().take(64).collect::<String>()))))
    })
}

fn user_and_instance(p: &(String, String)) -> Result<(UserName, InstanceName), ApiError> {
    Ok((user_in_path(&p.0)?, instance_in_path(&p.1)?))
}

fn instance_and_name(p: &(String, String)) -> Result<(InstanceName, CredentialName), ApiError> {
    Ok((instance_in_path(&p.0)?, parse(CredentialName::parse(&p.1))?))
}

async fn list_credentials(a: ApiActor, broker: web::Data<Broker>, user: web::Path<String>) -> ApiResult {
    ok(broker.vault.list_user(&a.0, &user_in_path(&user)?).await?)
}

async fn put_credentials(
    a: ApiActor,
    broker: web::Data<Broker>,
    path: web::Path<(String, String)>,
    body: web::Json<CredentialBody>,
) -> ApiResult {
    let (user, instance) = user_and_instance(&path)?;
    ok(broker.vault.put(&a.0, Scope::User(&user), &instance, &body.access_key_id, &body.secret_access_key, body.force).await?)
}

async fn get_credentials(a: ApiActor, broker: web::Data<Broker>, path: web::Path<(String, String)>) -> ApiResult {
    let (user, instance) = user_and_instance(&path)?;
    ok(broker.vault.get(&a.0, Scope::User(&user), &instance).await?)
}

async fn delete_credentials(a: ApiActor, broker: web::Data<Broker>, path: web::Path<(String, String)>) -> ApiResult {
    let (user, instance) = user_and_instance(&path)?;
    broker.vault.delete(&a.0, Scope::User(&user), &instance).await?;
    no_content()
}

async fn list_shared(a: ApiActor, broker: web::Data<Broker>) -> ApiResult {
    ok(broker.vault.list_shared(&a.0).await?)
}

async fn put_shared(
    a: ApiActor,
    broker: web::Data<Broker>,
    path: web::Path<(String, String)>,
    body: web::Json<CredentialBody>,
) -> ApiResult {
    a.0.require_admin()?;
    let (instance, name) = instance_and_name(&path)?;
    ok(broker.vault.put(&a.0, Scope::System(&name), &instance, &body.access_key_id, &body.secret_access_key, body.force).await?)
}

async fn get_shared(a: ApiActor, broker: web::Data<Broker>, path: web::Path<(String, String)>) -> ApiResult {
    a.0.require_admin()?;
    let (instance, name) = instance_and_name(&path)?;
    ok(broker.vault.get(&a.0, Scope::System(&name), &instance).await?)
}

async fn delete_shared(a: ApiActor, broker: web::Data<Broker>, path: web::Path<(String, String)>) -> ApiResult {
    a.0.require_admin()?;
    let (instance, name) = instance_and_name(&path)?;
    broker.vault.delete(&a.0, Scope::System(&name), &instance).await?;
    no_content()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Grants {
    users: Vec<String>,
}

async fn grant_shared(a: ApiActor, broker: web::Data<Broker>, path: web::Path<(String, String)>, body: web::Json<Grants>) -> ApiResult {
    a.0.require_admin()?;
    let (instance, name) = instance_and_name(&path)?;
    if body.users.len() > 10_000 {
        return Err(ApiError::field("users", "at most 10000 users in one grant"));
    }
    let users = body
        .users
        .iter()
        .map(|u| UserName::parse(u).map_err(|_| ApiError::field("users", format!("user '{u}' is not a valid user name"))))
        .collect::<Result<Vec<_>, _>>()?;
    ok(broker.vault.grant(&a.0, &name, &instance, &users).await?)
}

async fn rotate_keys(a: ApiActor, broker: web::Data<Broker>) -> ApiResult {
    ok(broker.vault.rotate(&a.0).await?)
}
