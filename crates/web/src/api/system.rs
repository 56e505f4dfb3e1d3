//! `/system/config`, `/connectors`: the configuration service's face.

use super::actor::ApiActor;
use super::error::{ApiError, ApiResult};
use super::ok;
use actix_web::web;
use cloudbroker_core::Broker;
use serde_json::{json, Value};
use std::collections::BTreeMap;

pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/system/config", web::get().to(get_config))
        .route("/system/config", web::put().to(put_config))
        .route("/connectors", web::get().to(list_connectors))
        .route("/connectors/reload", web::post().to(reload_connectors))
        .route("/reconcile", web::post().to(reconcile));
}

/// `GET /api/v1/system/config` (admin): every parameter with value and origin.
async fn get_config(a: ApiActor, broker: web::Data<Broker>) -> ApiResult {
    ok(broker.system.config(&a.0)?)
}

/// `PUT /api/v1/system/config` (admin): `{"key": "value" | null, ...}`, all or nothing.
async fn put_config(a: ApiActor, broker: web::Data<Broker>, body: web::Json<BTreeMap<String, Value>>) -> ApiResult {
    a.0.require_admin()?;
    let mut changes = Vec::new();
    for (k, v) in body.into_inner() {
        let v = match v {
            Value::Null => None,
            Value::String(s) => Some(s),
            Value::Bool(b) => Some(b.to_string()),
            Value::Number(n) => Some(n.to_string()),
            other => return Err(ApiError::invalid(format!("value of '{k}' must be a string, number, boolean or null, not {other}"))),
        };
        changes.push((k, v));
    }
    let out = broker.system.set(&a.0, &changes).await?;
    ok(json!({"version": out.version, "errors": out.errors}))
}

/// `GET /api/v1/connectors`: instances with kind, parameters and status.
async fn list_connectors(a: ApiActor, broker: web::Data<Broker>) -> ApiResult {
    ok(json!({"connectors": broker.system.connectors(&a.0)}))
}

async fn reload_connectors(a: ApiActor, broker: web::Data<Broker>) -> ApiResult {
    let out = broker.system.reload(&a.0).await?;
    ok(json!({"connectors": out.connectors, "file_errors": out.file_errors, "errors": out.errors}))
}

/// `POST /api/v1/reconcile` (admin): one reconciliation pass now.
async fn reconcile(a: ApiActor, broker: web::Data<Broker>) -> ApiResult {
    ok(broker.provisioning.reconcile_now(&a.0, &broker.replica_id).await?)
}
