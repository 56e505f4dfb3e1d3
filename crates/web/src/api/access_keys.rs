//! `/users/{user}/access-keys`: the keys EC2 clients sign with against the
//! broker's EC2 front-end (`/ec2`). The secret is in the creation answer
//! only; listing shows id, state, creation and last use.

use super::actor::ApiActor;
use super::error::ApiResult;
use super::users::user_in_path;
use super::{no_content, ok};
use actix_web::{web, HttpResponse};
use cloudbroker_core::Broker;
use serde_json::json;

pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/users/{user}/access-keys", web::post().to(create))
        .route("/users/{user}/access-keys", web::get().to(list))
        .route("/users/{user}/access-keys/{id}", web::delete().to(delete))
        .route("/users/{user}/access-keys/{id}/disable", web::post().to(disable))
        .route("/users/{user}/access-keys/{id}/enable", web::post().to(enable));
}

async fn create(a: ApiActor, broker: web::Data<Broker>, user: web::Path<String>) -> ApiResult {
    let (key, secret) = broker.vault.create_access_key(&a.0, &user_in_path(&user)?).await?;
    Ok(HttpResponse::Created().json(json!({
        "access_key_id": key.access_key_id,
        "secret_access_key": secret.expose(),
        "user": key.user,
        "state": key.state,
        "created_at": key.created_at,
    })))
}

async fn list(a: ApiActor, broker: web::Data<Broker>, user: web::Path<String>) -> ApiResult {
    ok(json!({ "access_keys": broker.vault.list_access_keys(&a.0, &user_in_path(&user)?).await? }))
}

async fn delete(a: ApiActor, broker: web::Data<Broker>, path: web::Path<(String, String)>) -> ApiResult {
    let (user, id) = path.into_inner();
    broker.vault.delete_access_key(&a.0, &user_in_path(&user)?, &id).await?;
    no_content()
}

async fn disable(a: ApiActor, broker: web::Data<Broker>, path: web::Path<(String, String)>) -> ApiResult {
    let (user, id) = path.into_inner();
    ok(broker.vault.set_access_key_active(&a.0, &user_in_path(&user)?, &id, false).await?)
}

async fn enable(a: ApiActor, broker: web::Data<Broker>, path: web::Path<(String, String)>) -> ApiResult {
    let (user, id) = path.into_inner();
    ok(broker.vault.set_access_key_active(&a.0, &user_in_path(&user)?, &id, true).await?)
}
