//! `/applications`: named, versioned application documents (read by
//! everyone signed in; saved by members, a name's later versions by its
//! creator or an admin; file-declared ones are read-only). A document is
//! sent as JSON (stored pretty-printed) or as YAML text
//! (`Content-Type: application/yaml` or `text/yaml`, stored as sent); its
//! errors come back all at once: 400 `invalid_document` with
//! `errors: [{path, message, line}]`.

use super::actor::ApiActor;
use super::doc::ErrorBody;
use super::error::{ApiError, ApiResult};
use super::{no_content, ok};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use cloudbroker_core::deployments::{AppDoc, AppError, AppName, Application, ApplicationSummary};
use cloudbroker_core::{Broker, Resource, ServiceError};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::{IntoParams, ToSchema};

/// One application (its latest version), in a list.
#[derive(Serialize, ToSchema)]
pub(super) struct ApplicationItem {
    #[schema(value_type = String)]
    name: AppName,
    version: i64,
    description: String,
    /// Its nodes, by name.
    nodes: Vec<String>,
    /// The file that declared the version, or `saved by <user>`.
    origin: String,
    created_by: Option<String>,
    created_at: DateTime<Utc>,
    /// The file that declares it now: read-only through the API and UI.
    declared_in: Option<String>,
}

impl From<ApplicationSummary> for ApplicationItem {
    fn from(s: ApplicationSummary) -> Self {
        Self {
            name: s.name,
            version: s.version,
            description: s.description,
            nodes: s.nodes,
            origin: s.origin,
            created_by: s.created_by,
            created_at: s.created_at,
            declared_in: s.declared_in,
        }
    }
}

/// Every application.
#[derive(Serialize, ToSchema)]
pub(super) struct ApplicationList {
    applications: Vec<ApplicationItem>,
}

/// A parameter of the document.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub(super) struct ParamDoc {
    /// A lowercase letter, then lowercase letters, digits or `_` (at most 32).
    #[schema(pattern = r"^[a-z][a-z0-9_]{0,31}$")]
    name: String,
    /// Inputs only: the value when none is given.
    default: Option<String>,
    #[schema(max_length = 1000)]
    description: Option<String>,
    /// Never shown back in the API or UI.
    secret: Option<bool>,
}

/// A node of the document: VMs of one image.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub(super) struct NodeDoc {
    /// A native image (must exist when deployed, not when saved).
    image: String,
    /// Default: the image's or the connector's, as for launches.
    instance_type: Option<String>,
    /// VMs of this node (default 1; all nodes together at most 100).
    #[schema(minimum = 0, maximum = 100)]
    multiplicity: Option<u32>,
    /// The connector instances it may run on; empty: any the user may use.
    instances: Option<Vec<String>>,
    /// `client` (default: each VM calls `cloudbroker-client ready`) or `running`.
    #[schema(pattern = "^(client|running)$")]
    ready_when: Option<String>,
    /// From launch to ready (e.g. `10m`).
    timeout: Option<String>,
    /// Nodes launched (and ready) before this one; no cycle.
    depends_on: Option<Vec<String>>,
    inputs: Option<Vec<ParamDoc>>,
    /// Besides the built-in `hostname` and `instanceid`.
    outputs: Option<Vec<ParamDoc>>,
    /// A shell script or `#cloud-config` (at most 16 KiB).
    user_data: Option<String>,
}

/// An application document (as JSON; the same fields in YAML). Unknown
/// fields are refused.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub(super) struct AppDocument {
    #[schema(max_length = 1000)]
    description: Option<String>,
    /// Deployment-wide inputs.
    inputs: Option<Vec<ParamDoc>>,
    /// Node name -> node (1 to 20 nodes).
    nodes: BTreeMap<String, NodeDoc>,
    /// `"<node>.<input>"` -> `"<node>.<output>"` (an output declared by that node, or `hostname` / `instanceid`).
    mappings: Option<BTreeMap<String, String>>,
    /// The deployment's overall timeout (default 30m).
    timeout: Option<String>,
}

/// One version of an application.
#[derive(Serialize, ToSchema)]
pub(super) struct ApplicationView {
    #[schema(value_type = String)]
    name: AppName,
    version: i64,
    /// The document as validated.
    #[schema(value_type = AppDocument)]
    document: AppDoc,
    /// The text as saved.
    source: String,
    origin: String,
    created_by: Option<String>,
    created_at: DateTime<Utc>,
    /// The file that declares it now: read-only through the API and UI.
    declared_in: Option<String>,
}

impl ApplicationView {
    fn new(a: Application, declared_in: Option<String>) -> Self {
        Self {
            name: a.name,
            version: a.version,
            document: a.doc,
            source: a.source,
            origin: a.origin,
            created_by: a.created_by,
            created_at: a.created_at,
            declared_in,
        }
    }
}

/// One version, in the list of versions.
#[derive(Serialize, ToSchema)]
pub(super) struct VersionItem {
    version: i64,
    created_at: DateTime<Utc>,
    origin: String,
}

/// Every version of an application, oldest first.
#[derive(Serialize, ToSchema)]
pub(super) struct VersionList {
    versions: Vec<VersionItem>,
}

/// One error of a document.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub(super) struct DocumentError {
    /// Where: `nodes.web.depends_on[0]`; empty for the whole document.
    path: String,
    message: String,
    /// The line of the source, where known.
    line: Option<usize>,
}

/// The error of a 400: `invalid_document` with every error of the
/// document, or `invalid_request` (a bad name, a body that is not an
/// object, a bad `project`) with the `field` at fault.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub(super) struct InvalidDocumentDetail {
    #[schema(pattern = "^(invalid_document|invalid_request)$")]
    code: String,
    message: String,
    /// `invalid_request`: the input at fault, when one was.
    #[schema(required = false, nullable = false)]
    field: Option<String>,
    /// `invalid_document`: every error, each naming its path.
    #[schema(required = false, nullable = false)]
    errors: Option<Vec<DocumentError>>,
}

/// A 400 of `PUT /applications/{name}`.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub(super) struct InvalidDocumentBody {
    error: InvalidDocumentDetail,
}

/// `?version=N`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct VersionQuery {
    /// A version number (default: the latest).
    #[param(minimum = 1)]
    version: Option<i64>,
}

/// An application named in a path: an invalid name cannot exist.
fn name_in_path(s: &str) -> Result<AppName, ApiError> {
    AppName::parse(s).map_err(|_| {
        ApiError(ServiceError::NotFound(Resource::Record(format!("application '{}'", s.chars().take(64).collect::<String>()))))
    })
}

/// Every application (its latest version), by name.
#[utoipa::path(get, path = "/api/v1/applications", tag = "applications", responses((status = 200, body = ApplicationList)))]
pub(super) async fn list_applications(a: ApiActor, broker: web::Data<Broker>) -> ApiResult {
    let apps = broker.applications.list(&a.0).await?;
    ok(ApplicationList { applications: apps.into_iter().map(ApplicationItem::from).collect() })
}

/// One version of an application (default: the latest).
#[utoipa::path(get, path = "/api/v1/applications/{name}", tag = "applications",
    params(("name" = String, Path, description = "application name", pattern = r"^[a-z][a-z0-9_-]{0,63}$"), VersionQuery),
    responses((status = 200, body = ApplicationView)))]
pub(super) async fn get_application(
    a: ApiActor,
    broker: web::Data<Broker>,
    name: web::Path<String>,
    q: web::Query<VersionQuery>,
) -> ApiResult {
    let name = name_in_path(&name)?;
    if q.version.is_some_and(|v| v < 1) {
        return Err(ApiError::field("version", "a version is a whole number from 1"));
    }
    let app = broker.applications.get(&a.0, &name, q.version).await?;
    ok(ApplicationView::new(app, broker.applications.declared_in(&name)))
}

/// Every version of an application, oldest first.
#[utoipa::path(get, path = "/api/v1/applications/{name}/versions", tag = "applications",
    params(("name" = String, Path, description = "application name", pattern = r"^[a-z][a-z0-9_-]{0,63}$")),
    responses((status = 200, body = VersionList)))]
pub(super) async fn list_application_versions(a: ApiActor, broker: web::Data<Broker>, name: web::Path<String>) -> ApiResult {
    let name = name_in_path(&name)?;
    let versions = broker.applications.versions(&a.0, &name).await?;
    ok(VersionList {
        versions: versions.into_iter().map(|(version, created_at, origin)| VersionItem { version, created_at, origin }).collect(),
    })
}

/// The document's text from a request body: JSON (an object, stored
/// pretty-printed) or YAML text as sent.
fn document_text(req: &HttpRequest, body: &[u8]) -> Result<String, Box<HttpResponse>> {
    let ct = req
        .headers()
        .get(actix_web::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let refuse = |status: StatusCode, code: &str, message: String| {
        Box::new(HttpResponse::build(status).json(serde_json::json!({"error": {"code": code, "message": message}})))
    };
    let text = std::str::from_utf8(body)
        .map_err(|_| refuse(StatusCode::BAD_REQUEST, "invalid_request", "body: the document is not UTF-8 text".into()))?;
    match ct.as_str() {
        "application/json" => {
            let v: serde_json::Value = serde_json::from_str(text).map_err(|e| {
                let err = AppError { path: String::new(), message: format!("body: {e}"), line: Some(e.line()) };
                Box::new(invalid_document(vec![err]))
            })?;
            if !v.is_object() {
                return Err(refuse(StatusCode::BAD_REQUEST, "invalid_request", "body: send the document as a JSON object".into()));
            }
            Ok(serde_json::to_string_pretty(&v).unwrap_or_default() + "\n")
        }
        "application/yaml" | "application/x-yaml" | "text/yaml" | "text/x-yaml" | "text/plain" => Ok(text.to_string()),
        _ => Err(refuse(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "body: send the document as application/json, or as YAML text with Content-Type: application/yaml".into(),
        )),
    }
}

fn invalid_document(errors: Vec<AppError>) -> HttpResponse {
    use actix_web::ResponseError;
    ApiError(ServiceError::InvalidDocument(errors)).error_response()
}

/// Saves a document under a name: the same text as the latest version
/// makes nothing new, a changed one the next version. A file-declared
/// application is read-only (409).
#[utoipa::path(put, path = "/api/v1/applications/{name}", tag = "applications",
    params(("name" = String, Path, description = "application name", pattern = r"^[a-z][a-z0-9_-]{0,63}$")),
    request_body(content((AppDocument = "application/json"), (String = "application/yaml"), (String = "text/yaml")),
        description = "The document, as JSON or as YAML text"),
    responses((status = 200, description = "The version saved (the latest, when the text is unchanged)", body = ApplicationView),
        (status = 400, description = "`invalid_document`: every error of the document, each naming its path; `invalid_request`: a bad name or body", body = InvalidDocumentBody),
        (status = 409, description = "`conflict`: the application is declared by a file (edit the file)", body = ErrorBody)))]
pub(super) async fn put_application(
    a: ApiActor,
    broker: web::Data<Broker>,
    name: web::Path<String>,
    req: HttpRequest,
    body: web::Bytes,
) -> ApiResult {
    let name = AppName::parse(&name).map_err(|m| ApiError::field("name", m))?;
    if body.len() > cloudbroker_core::deployments::app::MAX_DOC_BYTES {
        return Ok(HttpResponse::PayloadTooLarge().json(serde_json::json!({"error": {"code": "too_large", "message": format!(
            "body: the document is {} bytes; at most {}", body.len(), cloudbroker_core::deployments::app::MAX_DOC_BYTES)}})));
    }
    let text = match document_text(&req, &body) {
        Ok(t) => t,
        Err(resp) => return Ok(*resp),
    };
    let app = broker.applications.save(&a.0, &name, &text).await?;
    ok(ApplicationView::new(app, None))
}

/// Deletes an application (the versions deployments reference stay
/// readable by number). Refused (409) while a deployment not yet
/// terminated uses it, or when a file declares it.
#[utoipa::path(delete, path = "/api/v1/applications/{name}", tag = "applications",
    params(("name" = String, Path, description = "application name", pattern = r"^[a-z][a-z0-9_-]{0,63}$")),
    responses((status = 204, description = "Deleted"),
        (status = 409, description = "`conflict`: a deployment uses it, or a file declares it", body = ErrorBody)))]
pub(super) async fn delete_application(a: ApiActor, broker: web::Data<Broker>, name: web::Path<String>) -> ApiResult {
    broker.applications.delete(&a.0, &name_in_path(&name)?).await?;
    no_content()
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_documented_pattern_is_the_core_rule() {
        // The paths' `pattern`: ^[a-z][a-z0-9_-]{0,63}$
        assert!(cloudbroker_core::deployments::AppName::parse("lamp-2").is_ok());
        assert!(cloudbroker_core::deployments::AppName::parse("2lamp").is_err());
    }
}
