//! What the OpenAPI document says beyond the handlers' own annotations: the
//! error shape and its codes, the security schemes, and the error responses
//! every operation can give (added to each operation here, once, so that no
//! handler can forget one). The document itself is derived in `api/mod.rs`
//! from the same list of handlers that the router registers.

use serde::{Deserialize, Serialize};
use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, RefOr};
use utoipa::{IntoParams, Modify, ToSchema};

/// Every error answer: `{"error": {...}}`.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ErrorDetail {
    /// A stable code: `invalid_request` (400; `invalid_document`: an application document, with `errors`), `unauthenticated` (401),
    /// `forbidden` (403), `not_found` (404; `not_set`: an exchange parameter not set yet), `method_not_allowed` (405),
    /// `conflict`, `quota_exceeded` or `policy_violation` (409, the last with `field`), `too_large` (413),
    /// `unsupported_media_type` (415), `throttled` (429), `internal` (500),
    /// `unavailable`, `master_key_unknown` or `database_unavailable` (503, the last with `Retry-After`); a cloud's refusal is `cloud.<the cloud's code>`
    /// or `cloud_error` (400, 403, 404, 501, 502, 503, 504).
    #[schema(
        pattern = r"^(invalid_request|invalid_document|unauthenticated|forbidden|not_found|not_set|method_not_allowed|conflict|quota_exceeded|policy_violation|too_large|unsupported_media_type|throttled|internal|unavailable|master_key_unknown|database_unavailable|cloud_error|cloud\..+)$"
    )]
    pub code: String,
    /// For people; never a secret nor an internal cause.
    pub message: String,
    /// The input at fault, when one was.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(required = false, nullable = false)]
    pub field: Option<String>,
}

/// `limit` and `cursor` of every list.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// Items per page (default 100).
    #[param(minimum = 1, maximum = 1000, value_type = Option<u32>)]
    pub limit: Option<String>,
    /// Where to start: the `next_cursor` of the previous page, as it was given
    /// (empty or absent: the first page).
    #[param(value_type = Option<String>, pattern = r"^(-?[0-9]{1,18}\.([0-9a-f]{2}){0,240})?$")]
    pub cursor: Option<String>,
}

/// A user name in a body: 1-64 lowercase letters, digits, `.`, `_` or `-`,
/// starting with a letter or digit.
pub struct UserNameRef;

impl utoipa::PartialSchema for UserNameRef {
    fn schema() -> RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .pattern(Some("^[a-z0-9][a-z0-9._-]{0,63}$"))
            .into()
    }
}

impl ToSchema for UserNameRef {}

fn string(pattern: &str) -> utoipa::openapi::ObjectBuilder {
    utoipa::openapi::ObjectBuilder::new().schema_type(utoipa::openapi::schema::Type::String).pattern(Some(pattern))
}

/// A VM's tags: at most 40; keys 1-128 characters, values at most 256, no
/// control characters; keys `cloudbroker:*`, `aws:*` and `Name` are reserved.
pub struct TagMap;

impl utoipa::PartialSchema for TagMap {
    fn schema() -> RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::Object)
            .max_properties(Some(40))
            .property_names(Some(string(r"^[^\x00-\x1f\x7f-\x9f]{1,128}$")))
            .additional_properties(Some(string(r"^[^\x00-\x1f\x7f-\x9f]{0,256}$")))
            .into()
    }
}

impl ToSchema for TagMap {}

/// An image's cloud ids: connector instance -> mapping.
pub struct Mappings;

impl utoipa::PartialSchema for Mappings {
    fn schema() -> RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::Object)
            .property_names(Some(string("^[a-z0-9]+(-[a-z0-9]+)*$")))
            .additional_properties(Some(Ref::from_schema_name("ImageMapping")))
            .into()
    }
}

impl ToSchema for Mappings {}

/// The body of `PUT /system/config`: parameter -> new value (a string,
/// number or boolean), or null to unset. At most [`MAX_CONFIG_CHANGES`]
/// parameters, keys of at most 256 characters and values of at most
/// [`MAX_CONFIG_VALUE`]: every body within these limits fits the 1 MiB body
/// limit, however its characters are escaped.
pub struct ConfigChanges;

impl utoipa::PartialSchema for ConfigChanges {
    fn schema() -> RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{SchemaType, Type};
        let value = utoipa::openapi::ObjectBuilder::new()
            .schema_type(SchemaType::from_iter([Type::String, Type::Number, Type::Boolean, Type::Null]))
            .max_length(Some(MAX_CONFIG_VALUE));
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(Type::Object)
            .max_properties(Some(MAX_CONFIG_CHANGES))
            .property_names(Some(utoipa::openapi::ObjectBuilder::new().schema_type(Type::String).max_length(Some(256))))
            .additional_properties(Some(value))
            .into()
    }
}

impl ToSchema for ConfigChanges {}

/// The most parameters one `PUT /system/config` changes.
pub const MAX_CONFIG_CHANGES: usize = 50;
/// The longest value (in characters) `PUT /system/config` takes.
pub const MAX_CONFIG_VALUE: usize = 1024;

/// The standard responses added to every operation.
pub struct Finish;

fn error_response(description: &str) -> RefOr<utoipa::openapi::response::Response> {
    ResponseBuilder::new()
        .description(description)
        .content("application/json", ContentBuilder::new().schema(Some(Ref::from_schema_name("ErrorBody"))).build())
        .into()
}

impl Modify for Finish {
    fn modify(&self, doc: &mut OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme("bearer", SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)));
        components.add_security_scheme("basic", SecurityScheme::Http(Http::new(HttpAuthScheme::Basic)));
        let schemas = serde_json::to_value(&components.schemas).unwrap_or_default();
        for item in doc.paths.paths.values_mut() {
            for op in [&mut item.get, &mut item.put, &mut item.post, &mut item.delete].into_iter().flatten() {
                let open = op.security.as_ref().is_some_and(|reqs| {
                    reqs.iter().all(|r| serde_json::to_value(r).is_ok_and(|v| v.as_object().is_some_and(|o| o.is_empty())))
                });
                if !open {
                    add_project_param(op, &schemas);
                }
                add_errors(op);
            }
        }
    }
}

/// Operations that authenticate otherwise than through `ApiActor` (so do
/// not read `?project=`).
const NO_PROJECT_PARAM: &[&str] = &["create_token", "exchange_self", "exchange_get", "exchange_set", "exchange_ready", "exchange_abort"];

/// Whether an operation's body has a `project` field (looked up through
/// the component schemas it refers to): its project is documented there
/// (the query's is still read; when both are given they must agree).
fn body_names_project(op: &Operation, schemas: &serde_json::Value) -> bool {
    fn walk(v: &serde_json::Value, schemas: &serde_json::Value, depth: u8) -> bool {
        if depth > 8 {
            return false;
        }
        match v {
            serde_json::Value::Object(m) => {
                if m.get("properties").and_then(|p| p.get("project")).is_some() {
                    return true;
                }
                let referred = m
                    .get("$ref")
                    .and_then(serde_json::Value::as_str)
                    .and_then(|r| r.strip_prefix("#/components/schemas/"))
                    .and_then(|name| schemas.get(name));
                referred.is_some_and(|s| walk(s, schemas, depth + 1)) || m.values().any(|x| walk(x, schemas, depth + 1))
            }
            serde_json::Value::Array(a) => a.iter().any(|x| walk(x, schemas, depth + 1)),
            _ => false,
        }
    }
    op.request_body.as_ref().and_then(|b| serde_json::to_value(b).ok()).is_some_and(|b| walk(&b, schemas, 0))
}

/// Documents the `project` query parameter every bearer-authenticated
/// operation reads (`ApiActor` enters it), unless the operation declares a
/// `project` of its own (a parameter, or a field of its body).
fn add_project_param(op: &mut Operation, schemas: &serde_json::Value) {
    use utoipa::openapi::path::ParameterBuilder;
    use utoipa::openapi::Required;
    if NO_PROJECT_PARAM.contains(&op.operation_id.as_deref().unwrap_or_default()) || body_names_project(op, schemas) {
        return;
    }
    let params = op.parameters.get_or_insert_with(Vec::new);
    if params.iter().any(|p| matches!(p, RefOr::T(p) if p.name == "project")) {
        return;
    }
    params.push(RefOr::T(
        ParameterBuilder::new()
            .name("project")
            .parameter_in(ParameterIn::Query)
            .required(Required::False)
            .description(Some(
                "Act in this project (you must be a member; admins enter any): its resources are listed and new ones created in it. \
                 Absent: your personal project.",
            ))
            .schema(Some(string("^[a-z0-9][a-z0-9._-]{0,63}$")))
            .build(),
    ));
}

fn add_errors(op: &mut Operation) {
    // Every response has a description (OpenAPI requires one).
    for (status, r) in op.responses.responses.iter_mut() {
        if let RefOr::T(r) = r {
            if r.description.is_empty() {
                r.description = match status.as_str() {
                    "200" => "OK",
                    "201" => "Created",
                    "204" => "Done; no body",
                    _ => "See the body",
                }
                .to_string();
            }
        }
    }
    let has_body = op.request_body.is_some();
    let has_input = has_body || op.parameters.as_ref().is_some_and(|p| !p.is_empty());
    let has_path =
        op.parameters.as_ref().is_some_and(|ps| ps.iter().any(|p| matches!(p, RefOr::T(p) if p.parameter_in == ParameterIn::Path)));
    let mut add = |status: &str, why: &str| {
        op.responses.responses.entry(status.to_string()).or_insert_with(|| error_response(why));
    };
    if has_input {
        add("400", "`invalid_request`: a parameter or the body is malformed or breaks a rule; `field` names it");
    }
    // An operation open to all (`security: [{}]`, the document itself) refuses no one.
    let open = op
        .security
        .as_ref()
        .is_some_and(|reqs| reqs.iter().all(|r| serde_json::to_value(r).is_ok_and(|v| v.as_object().is_some_and(|o| o.is_empty()))));
    if !open {
        add("401", "`unauthenticated`: no credentials, or unknown, expired or revoked ones");
        add("403", "`forbidden`: the action needs the admin role, or a role in the project (`project`) the caller lacks");
        if op.parameters.as_ref().is_some_and(|ps| ps.iter().any(|p| matches!(p, RefOr::T(p) if p.name == "project"))) {
            add("404", "`not_found`: nothing by that name, or no project by the name in `project` that the caller may enter");
        }
    }
    if has_path || has_body {
        add("404", "`not_found`: nothing by that name (in the path, or named in the body), or nothing the caller may see");
    }
    if has_body {
        add("413", "`too_large`: the body is over 1 MiB");
        add("415", "`unsupported_media_type`: the body is not sent as application/json");
    }
    add("500", "`internal`: see the broker's log");
    add("503", "`database_unavailable`: the database cannot be reached just now (nothing was changed; retry after `Retry-After` seconds); `unavailable`: a connector instance cannot serve; `master_key_unknown`: this replica's master key file lacks the key (named by id) stored credentials are sealed with");
}

#[cfg(test)]
mod tests {
    use cloudbroker_core::domain::{CURSOR_PATTERN, MAX_PAGE};

    #[test]
    fn the_document_says_what_the_core_accepts() {
        // `PageParams` and the other lists' parameters spell these out.
        assert_eq!(CURSOR_PATTERN, r"^-?[0-9]{1,18}\.([0-9a-f]{2}){0,240}$");
        assert_eq!(MAX_PAGE, 1000);
    }
}
