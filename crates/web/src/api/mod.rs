//! The JSON API, `/api/v1`: one module per resource. Handlers parse input
//! into domain types, call one core service, and render JSON; errors go
//! through [`error::ApiError`], so every failure has the same shape.

pub mod access_keys;
pub mod actor;
pub mod audit;
pub mod credentials;
pub mod error;
pub mod images;
pub mod quotas;
pub mod system;
pub mod tokens;
pub mod users;
pub mod vms;

use actix_web::{web, HttpResponse};
use error::ApiResult;

/// Routes under `/api/v1`.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/api/v1")
            .app_data(web::JsonConfig::default().limit(1 << 20).error_handler(error::json_error))
            .app_data(web::QueryConfig::default().error_handler(error::query_error))
            .app_data(web::PathConfig::default().error_handler(error::path_error))
            .configure(tokens::routes)
            .configure(access_keys::routes)
            .configure(users::routes)
            .configure(credentials::routes)
            .configure(system::routes)
            .configure(audit::routes)
            .configure(images::routes)
            .configure(quotas::routes)
            .configure(vms::routes)
            .route("/openapi.json", web::get().to(openapi)),
    );
}

/// 200 with a JSON body.
pub(crate) fn ok(v: impl serde::Serialize) -> ApiResult {
    Ok(HttpResponse::Ok().json(v))
}

/// 204.
pub(crate) fn no_content() -> ApiResult {
    Ok(HttpResponse::NoContent().finish())
}

async fn openapi() -> HttpResponse {
    HttpResponse::Ok().content_type("application/json").body(include_str!("../openapi.json"))
}
