//! The JSON API, `/api/v1`: one module per resource. Handlers parse input
//! into domain types, call one core service, and render JSON; errors go
//! through [`error::ApiError`], so every failure has the same shape.
//!
//! One list, [`operations!`] below, names every handler. From it come both
//! the OpenAPI document (each handler's `#[utoipa::path]` gives its method,
//! path, parameters, body and responses) and the router: each path of the
//! document becomes one actix resource holding its methods, so a path and a
//! method are served exactly when the document lists them. A known path with
//! another method answers 405 with `Allow`; an unknown path under `/api/v1`
//! answers a JSON 404. `/api/docs` renders the document for people.

pub mod access_keys;
pub mod actor;
pub mod applications;
pub mod audit;
pub mod body;
pub mod budgets;
pub mod costs;
pub mod credentials;
pub mod deployments;
pub mod doc;
pub mod error;
pub mod exchange;
pub mod image_sharing;
pub mod images;
pub mod prices;
pub mod projects;
pub mod quotas;
pub mod reference;
pub mod security_groups;
pub mod system;
pub mod tokens;
pub mod users;
pub mod vms;

use actix_web::http::Method;
use actix_web::{web, HttpResponse, Route};
use doc::Finish;
use error::ApiResult;
use std::sync::OnceLock;
use utoipa::OpenApi as _;

/// The prefix of every API path.
pub const PREFIX: &str = "/api/v1";

macro_rules! operations {
    ($($module:ident :: $handler:ident),* $(,)?) => {
        /// The API's OpenAPI document, derived from the handlers.
        #[derive(utoipa::OpenApi)]
        #[openapi(
            info(
                title = "cloudbroker JSON API",
                description = "Every call but `POST /tokens` (HTTP Basic, or a bearer token) takes `Authorization: Bearer <token>`. \
                    Errors are `{\"error\": {\"code\", \"message\", \"field\"}}`. Lists take `limit` (1-1000, default 100) and \
                    `cursor` (the previous page's `next_cursor`, absent on the last page).",
            ),
            paths($($module::$handler),*),
            components(schemas(doc::ErrorBody)),
            security(("bearer" = [])),
            modifiers(&Finish),
        )]
        pub struct ApiDoc;

        /// The actix route of an operation of the document.
        fn route(operation_id: &str, method: Method) -> Option<Route> {
            match operation_id {
                $(stringify!($handler) => Some(web::method(method).to($module::$handler)),)*
                _ => None,
            }
        }
    };
}

operations![
    tokens::create_token,
    tokens::list_tokens,
    tokens::revoke_token,
    users::create_user,
    users::list_users,
    users::get_user,
    users::set_password,
    users::set_role,
    users::disable_user,
    users::enable_user,
    users::list_user_tokens,
    users::revoke_user_token,
    users::set_ssh_key,
    users::set_default_ec2_region,
    access_keys::create_access_key,
    access_keys::list_access_keys,
    access_keys::delete_access_key,
    access_keys::disable_access_key,
    access_keys::enable_access_key,
    credentials::list_credentials,
    credentials::put_credentials,
    credentials::get_credentials,
    credentials::delete_credentials,
    credentials::list_shared,
    credentials::put_shared,
    credentials::get_shared,
    credentials::delete_shared,
    credentials::grant_shared,
    credentials::list_project_credentials,
    credentials::put_project_credentials,
    credentials::delete_project_credentials,
    credentials::rotate_keys,
    projects::create_project,
    projects::list_projects,
    projects::get_project,
    projects::update_project,
    projects::delete_project,
    projects::list_members,
    projects::put_member,
    projects::remove_member,
    projects::list_project_policies,
    projects::put_project_policy,
    projects::delete_project_policy,
    quotas::get_quotas,
    quotas::put_quota,
    quotas::get_project_quotas,
    quotas::put_project_quota,
    system::get_config,
    system::put_config,
    system::list_connectors,
    system::reload_connectors,
    system::reconcile,
    audit::audit,
    images::list_images,
    images::create_image,
    images::get_image,
    images::put_image,
    images::delete_image,
    image_sharing::create_vm_image,
    image_sharing::get_launch_permissions,
    image_sharing::change_launch_permissions,
    applications::list_applications,
    applications::get_application,
    applications::list_application_versions,
    applications::put_application,
    applications::delete_application,
    deployments::deploy,
    deployments::list_deployments,
    deployments::get_deployment,
    deployments::deployment_params,
    deployments::deployment_events,
    deployments::scale_deployment,
    deployments::abort_deployment,
    deployments::terminate_deployment,
    vms::launch,
    vms::list_vms,
    vms::get_vm,
    vms::start_vm,
    vms::stop_vm,
    vms::reboot_vm,
    vms::terminate_vm,
    vms::set_lease,
    vms::clear_lease,
    costs::list_prices,
    prices::put_price,
    prices::delete_price,
    prices::put_markup,
    prices::list_unpriced,
    costs::vm_cost,
    costs::cost_report,
    budgets::list_budgets,
    budgets::put_budget,
    budgets::delete_budget,
    exchange::exchange_self,
    exchange::exchange_get,
    exchange::exchange_set,
    exchange::exchange_ready,
    exchange::exchange_abort,
    security_groups::list_security_groups,
    security_groups::create_security_group,
    security_groups::get_security_group,
    security_groups::delete_security_group,
    security_groups::add_security_group_rule,
    security_groups::remove_security_group_rule,
    self::openapi,
];

/// The document, built anew at each call: nothing keeps it. It is large
/// (every schema, and the errors of every operation, in many small
/// allocations), and only its JSON ([`document_json`], made when first
/// asked for) and the router's [`route_table`] are needed once it is built.
pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// The document as served.
fn document_json() -> &'static str {
    static JSON: OnceLock<String> = OnceLock::new();
    JSON.get_or_init(|| document().to_pretty_json().unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}")))
}

/// One path of the document, as the router needs it.
struct RoutedPath {
    path: String,
    /// Its methods and their operations' ids, in the document's order.
    operations: Vec<(Method, String)>,
}

/// The document's paths and operations, in its order (the router's table),
/// read from a document built and dropped on a thread of its own: that
/// thread's allocator pages (the document's) go back to the system when it
/// ends. Kept in a static, the document held 8 MB of an idle broker's 16
/// MB of anonymous memory (bench/README.md, "Issue 28, session 39").
fn route_table() -> &'static [RoutedPath] {
    static TABLE: OnceLock<Vec<RoutedPath>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let read = || {
            document()
                .paths
                .paths
                .iter()
                .map(|(path, item)| RoutedPath {
                    path: path.clone(),
                    operations: operations_of(item).into_iter().map(|(m, op)| (m, op.operation_id.clone().unwrap_or_default())).collect(),
                })
                .collect::<Vec<_>>()
        };
        // Should no thread start, the table is read here (same table).
        match std::thread::Builder::new().name("api-routes".into()).spawn(read) {
            Ok(t) => t.join().unwrap_or_else(|_| read()),
            Err(_) => read(),
        }
    })
}

/// The methods of a path item, with their operation ids.
pub fn operations_of(item: &utoipa::openapi::PathItem) -> Vec<(Method, &utoipa::openapi::path::Operation)> {
    [(Method::GET, &item.get), (Method::PUT, &item.put), (Method::POST, &item.post), (Method::DELETE, &item.delete)]
        .into_iter()
        .filter_map(|(m, op)| op.as_ref().map(|op| (m, op)))
        .collect()
}

/// Routes under `/api/v1`.
pub fn routes(cfg: &mut web::ServiceConfig) {
    let mut scope = web::scope(PREFIX)
        .app_data(web::JsonConfig::default().limit(1 << 20).error_handler(error::json_error))
        .app_data(web::QueryConfig::default().error_handler(error::query_error))
        .app_data(web::PathConfig::default().error_handler(error::path_error))
        .default_service(web::to(error::unknown_path));
    // One nested scope per first segment (`/vms`, `/users`, ...), each with
    // its paths in the document's order: a request is matched against its
    // segment's few paths only, not against every path before it (each
    // path with a `{param}` is a regex match, which was a tenth of the cost
    // of `GET /vms/{id}`). Paths of different first segments never overlap,
    // so what a request matches is unchanged.
    let mut groups: Vec<(&str, actix_web::Scope)> = Vec::new();
    for RoutedPath { path, operations: ops } in route_table() {
        let Some(local) = path.strip_prefix(PREFIX) else { continue };
        let allow = ops.iter().map(|(m, _)| m.as_str()).collect::<Vec<_>>().join(", ");
        let rest = local.strip_prefix('/').unwrap_or(local);
        let (first, tail) = match rest.find('/') {
            Some(at) => (&rest[..at], &rest[at..]),
            None => (rest, ""),
        };
        let mut resource = web::resource(tail.to_string());
        for (method, id) in ops {
            // Every operation of the document is one of `operations!`: a unit test checks it.
            if let Some(r) = route(id, method.clone()) {
                resource = resource.route(r);
            }
        }
        let resource = resource.default_service(web::to(move || error::method_not_allowed(allow.clone())));
        match groups.iter_mut().find(|(f, _)| *f == first) {
            Some((_, group)) => *group = std::mem::replace(group, web::scope("")).service(resource),
            None => groups.push((first, web::scope(&format!("/{first}")).default_service(web::to(error::unknown_path)).service(resource))),
        }
    }
    for (_, group) in groups {
        scope = scope.service(group);
    }
    // A module whose handlers are not (yet) in `operations!` could be added
    // here with `scope = scope.configure(m::routes)`; it would then be served
    // but not documented, nor checked by schemathesis: prefer `operations!`.
    cfg.service(scope).route("/api/docs", web::get().to(reference::page));
}

/// 200 with a JSON body.
pub(crate) fn ok(v: impl serde::Serialize) -> ApiResult {
    Ok(HttpResponse::Ok().json(v))
}

/// 200 with `v` as JSON, written into a buffer of about `size` bytes (a
/// page of VMs knows its size to within a factor: no regrowing on the way).
pub(crate) fn ok_sized(v: &impl serde::Serialize, size: usize) -> ApiResult {
    let mut body = Vec::with_capacity(size);
    serde_json::to_writer(&mut body, v).map_err(|e| error::ApiError(cloudbroker_core::ServiceError::Internal(format!("answer: {e}"))))?;
    Ok(HttpResponse::Ok().content_type(actix_web::http::header::ContentType::json()).body(body))
}

/// 204.
pub(crate) fn no_content() -> ApiResult {
    Ok(HttpResponse::NoContent().finish())
}

/// This document (OpenAPI 3.1).
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "meta", security(()),
    responses((status = 200, description = "The OpenAPI 3.1 document of this API", content_type = "application/json", body = Object)))]
async fn openapi() -> HttpResponse {
    HttpResponse::Ok().content_type("application/json").body(document_json())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_route_table_is_the_documents_paths_and_operations_in_order() {
        let doc = document();
        let table = route_table();
        assert_eq!(table.len(), doc.paths.paths.len());
        for (routed, (path, item)) in table.iter().zip(&doc.paths.paths) {
            assert_eq!(&routed.path, path);
            let ops: Vec<(Method, String)> =
                operations_of(item).into_iter().map(|(m, op)| (m, op.operation_id.clone().unwrap_or_default())).collect();
            assert!(!ops.is_empty(), "{path}");
            assert_eq!(routed.operations, ops, "{path}");
        }
    }

    #[test]
    fn every_operation_has_a_handler_and_declares_its_path_parameters() {
        let doc = document();
        assert!(doc.paths.paths.len() > 20);
        for (path, item) in &doc.paths.paths {
            assert!(path.starts_with(PREFIX), "{path}");
            for (method, op) in operations_of(item) {
                let id = op.operation_id.as_deref().unwrap_or_default();
                assert!(route(id, method.clone()).is_some(), "{method} {path}: no handler '{id}'");
                let declared: Vec<&str> = op
                    .parameters
                    .iter()
                    .flatten()
                    .filter_map(|p| match p {
                        utoipa::openapi::RefOr::T(p) if p.parameter_in == utoipa::openapi::path::ParameterIn::Path => Some(p.name.as_str()),
                        _ => None,
                    })
                    .collect();
                let in_path: Vec<&str> = path.split('/').filter_map(|s| s.strip_prefix('{')?.strip_suffix('}')).collect();
                assert_eq!(declared, in_path, "{method} {path}");
            }
        }
    }
}
