//! `/system/config`, `/connectors`, `/reconcile`: the configuration service's face.

use super::actor::ApiActor;
use super::doc::{ErrorBody, MAX_CONFIG_CHANGES, MAX_CONFIG_VALUE};
use super::error::{ApiError, ApiResult};
use super::ok;
use actix_web::web;
use cloudbroker_core::provisioning::ReconcileReport;
use cloudbroker_core::Broker;
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use utoipa::ToSchema;

/// Every parameter with value and origin (`GET /system/config`): describes
/// the core's `ConfigView`, which is what is sent.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub(super) struct ConfigView {
    /// System parameters, then every instance's: `key`, `value` (null when
    /// unset; secrets masked), `origin` (`{"source": "file"|"ui"|"default", ...}`), `spec`.
    #[schema(value_type = Vec<Object>)]
    params: Vec<Value>,
    file_errors: Vec<String>,
    errors: Vec<String>,
    files: Vec<String>,
    version: i64,
}

/// What a configuration change left.
#[derive(Serialize, ToSchema)]
pub(super) struct ConfigChanged {
    version: i64,
    errors: Vec<String>,
}

/// The connector instances.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub(super) struct Connectors {
    /// `name`, `kind` and `status` (`{"state": "ready"}` or `{"state": "error"}`); for admins also
    /// `declared_by`, `params` (with their origins) and the status's `errors`.
    #[schema(value_type = Vec<Object>)]
    connectors: Vec<Value>,
}

/// What a reload found.
#[derive(Serialize, ToSchema)]
pub(super) struct Reloaded {
    /// How many instances are declared.
    connectors: usize,
    file_errors: Vec<String>,
    errors: Vec<String>,
}

/// Every parameter with value and origin (admin).
#[utoipa::path(get, path = "/api/v1/system/config", tag = "system", responses((status = 200, body = ConfigView)))]
pub(super) async fn get_config(a: ApiActor, broker: web::Data<Broker>) -> ApiResult {
    ok(broker.system.config(&a.0)?)
}

/// Sets parameters (admin): `{"key": "value" | number | boolean | null, ...}`, all or nothing; null unsets.
#[utoipa::path(put, path = "/api/v1/system/config", tag = "system",
    request_body(content = super::doc::ConfigChanges, description = "parameter -> new value (a string, number or boolean), or null to unset"),
    responses((status = 200, body = ConfigChanged), (status = 409, description = "`conflict`: a connectors.d file manages that key", body = ErrorBody)))]
pub(super) async fn put_config(a: ApiActor, broker: web::Data<Broker>, body: web::Json<BTreeMap<String, Value>>) -> ApiResult {
    a.0.require_admin()?;
    let body = body.into_inner();
    if body.len() > MAX_CONFIG_CHANGES {
        return Err(ApiError::field("params", format!("at most {MAX_CONFIG_CHANGES} parameters in one change")));
    }
    let mut changes = Vec::new();
    for (k, v) in body {
        if v.as_str().is_some_and(|s| s.chars().count() > MAX_CONFIG_VALUE) {
            return Err(ApiError::field("params", format!("value of '{k}': at most {MAX_CONFIG_VALUE} characters")));
        }
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
    ok(ConfigChanged { version: out.version, errors: out.errors })
}

/// Connector instances with kind, parameters and status.
#[utoipa::path(get, path = "/api/v1/connectors", tag = "system", responses((status = 200, body = Connectors)))]
pub(super) async fn list_connectors(a: ApiActor, broker: web::Data<Broker>) -> ApiResult {
    ok(json!({"connectors": broker.system.connectors_view(&a.0)}))
}

/// Reloads `connectors.d` (admin).
#[utoipa::path(post, path = "/api/v1/connectors/reload", tag = "system", responses((status = 200, body = Reloaded)))]
pub(super) async fn reload_connectors(a: ApiActor, broker: web::Data<Broker>) -> ApiResult {
    let out = broker.system.reload(&a.0).await?;
    ok(Reloaded { connectors: out.connectors, file_errors: out.file_errors, errors: out.errors })
}

/// One reconciliation pass now (admin).
#[utoipa::path(post, path = "/api/v1/reconcile", tag = "system", responses((status = 200, body = ReconcileReport)))]
pub(super) async fn reconcile(a: ApiActor, broker: web::Data<Broker>) -> ApiResult {
    ok(broker.provisioning.reconcile_now(&a.0, &broker.replica_id).await?)
}
