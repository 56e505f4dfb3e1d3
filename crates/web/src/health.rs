//! Liveness and readiness probes.

use actix_web::{web, HttpResponse};
use cloudbroker_core::registry::Status;
use cloudbroker_core::Broker;
use serde_json::json;

/// `GET /healthz`: the process answers.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// `GET /readyz`: the database answers; also reports connector readiness.
pub async fn readyz(broker: web::Data<Broker>) -> HttpResponse {
    let snap = broker.registry.snapshot();
    let ready = snap.instances.iter().filter(|i| i.status == Status::Ready).count();
    let connectors = json!({"declared": snap.instances.len(), "ready": ready});
    match broker.store.ping().await {
        Ok(()) => {
            HttpResponse::Ok().json(json!({"status": "ready", "database": broker.store.backend().as_str(), "connectors": connectors}))
        }
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            HttpResponse::ServiceUnavailable().json(json!({"status": "unavailable", "database": "unreachable"}))
        }
    }
}
