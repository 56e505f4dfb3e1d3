//! Liveness and readiness probes. `/healthz` answers while the process runs;
//! `/readyz` answers 200 only while the database does and the master key
//! file holds every key stored secrets are sealed with (503 `master_keys`
//! naming the missing key ids otherwise), and reports the connectors and the
//! background workers; it answers 503 `draining` once shutdown has begun, so
//! load balancers send new requests elsewhere.

use actix_web::{web, HttpResponse};
use cloudbroker_core::Broker;
use serde_json::json;

/// `GET /healthz`: the process answers.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// `GET /readyz`: the database answers; also reports connector and worker status.
pub async fn readyz(broker: web::Data<Broker>, draining: Option<web::Data<crate::observe::Draining>>) -> HttpResponse {
    if draining.is_some_and(|d| d.is_draining()) {
        return HttpResponse::ServiceUnavailable().json(json!({"status": "draining"}));
    }
    let r = broker.readiness().await;
    let connectors = json!({"declared": r.declared, "ready": r.ready_connectors});
    if r.ready {
        HttpResponse::Ok().json(json!({"status": "ready", "database": r.database, "connectors": connectors, "workers": r.workers}))
    } else if let Some(why) = &r.master_keys {
        tracing::warn!(error = %why, "readiness check failed: master key file");
        HttpResponse::ServiceUnavailable()
            .json(json!({"status": "unavailable", "database": r.database, "master_keys": why, "workers": r.workers}))
    } else {
        tracing::warn!(error = r.error.as_deref().unwrap_or(""), "readiness check failed");
        HttpResponse::ServiceUnavailable().json(json!({"status": "unavailable", "database": "unreachable", "workers": r.workers}))
    }
}
