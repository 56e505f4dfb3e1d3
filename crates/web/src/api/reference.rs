//! `GET /api/docs`: the API reference for people, rendered on the server from
//! the same OpenAPI document the API serves (no script, no CDN): every
//! operation with its parameters, body and answers, then every schema.

use actix_web::HttpResponse;
use askama::Template;
use serde_json::Value;

/// One operation.
struct Operation {
    method: String,
    path: String,
    summary: String,
    auth: String,
    params: Vec<Field>,
    body: String,
    responses: Vec<(String, String, String)>,
}

/// A parameter or a schema property.
struct Field {
    name: String,
    place: String,
    ty: String,
    required: bool,
    description: String,
}

/// One schema.
struct Schema {
    name: String,
    description: String,
    fields: Vec<Field>,
}

#[derive(Template)]
#[template(path = "api_docs.html")]
struct Reference {
    /// The page layout (shown to nobody in particular: the page is public).
    c: crate::ui::Chrome,
    title: String,
    description: String,
    operations: Vec<Operation>,
    schemas: Vec<Schema>,
}

fn text(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_string()
}

/// A short type: `User`, `array of Vm`, `string (pattern ...)`, `integer 1..1000`.
fn ty(s: &Value) -> String {
    if let Some(r) = s["$ref"].as_str() {
        return r.rsplit('/').next().unwrap_or(r).to_string();
    }
    if let Some(all) = s["oneOf"].as_array().or(s["anyOf"].as_array()).or(s["allOf"].as_array()) {
        return all.iter().map(ty).collect::<Vec<_>>().join(" | ");
    }
    let base = match &s["type"] {
        Value::Array(ts) => ts.iter().map(text).collect::<Vec<_>>().join(" | "),
        Value::String(t) => t.clone(),
        _ => "any".into(),
    };
    let mut out = match base.as_str() {
        b if b.starts_with("array") => format!("{b} of {}", ty(&s["items"])),
        b if b.starts_with("object") && s["additionalProperties"].is_object() => {
            format!("{b} of {}", ty(&s["additionalProperties"]))
        }
        b => b.to_string(),
    };
    if let Some(e) = s["enum"].as_array() {
        out.push_str(&format!(" ({})", e.iter().map(|v| v.to_string()).collect::<Vec<_>>().join(", ")));
    }
    for (k, label) in [("pattern", "pattern"), ("format", "format")] {
        if let Some(p) = s[k].as_str() {
            out.push_str(&format!(", {label} {p}"));
        }
    }
    for (k, label) in
        [("minimum", "min"), ("maximum", "max"), ("minLength", "min length"), ("maxLength", "max length"), ("maxItems", "max items")]
    {
        if let Some(n) = s[k].as_number() {
            out.push_str(&format!(", {label} {n}"));
        }
    }
    out
}

fn reference(doc: &Value) -> Reference {
    let mut operations = Vec::new();
    for (path, item) in doc["paths"].as_object().into_iter().flatten() {
        for (method, op) in item.as_object().into_iter().flatten() {
            let params = op["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|p| Field {
                    name: text(&p["name"]),
                    place: text(&p["in"]),
                    ty: ty(&p["schema"]),
                    required: p["required"].as_bool().unwrap_or(false),
                    description: text(&p["description"]),
                })
                .collect();
            let body = op["requestBody"]["content"]["application/json"]["schema"].clone();
            let auth = match op["security"].as_array() {
                Some(s) if s.iter().all(|r| r.as_object().is_some_and(|o| o.is_empty())) => "none".to_string(),
                Some(s) => s.iter().filter_map(|r| r.as_object()?.keys().next().cloned()).collect::<Vec<_>>().join(" or "),
                None => "bearer".to_string(),
            };
            let responses = op["responses"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(status, r)| {
                    let schema = r["content"]["application/json"]["schema"].clone();
                    (status.clone(), text(&r["description"]), if schema.is_null() { String::new() } else { ty(&schema) })
                })
                .collect();
            operations.push(Operation {
                method: method.to_uppercase(),
                path: path.clone(),
                summary: text(&op["summary"]),
                auth,
                params,
                body: if body.is_null() { String::new() } else { ty(&body) },
                responses,
            });
        }
    }
    let mut schemas = Vec::new();
    for (name, s) in doc["components"]["schemas"].as_object().into_iter().flatten() {
        let required: Vec<&str> = s["required"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
        let mut description = text(&s["description"]);
        if s["additionalProperties"] == Value::Bool(false) {
            description.push_str(" Other fields are refused.");
        }
        let fields = s["properties"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(f, p)| Field {
                name: f.clone(),
                place: String::new(),
                ty: ty(p),
                required: required.contains(&f.as_str()),
                description: text(&p["description"]),
            })
            .collect::<Vec<_>>();
        let description = if fields.is_empty() { format!("{} {}", ty(s), description) } else { description };
        schemas.push(Schema { name: name.clone(), description: description.trim().to_string(), fields });
    }
    Reference {
        c: crate::ui::Chrome::anonymous("JSON API reference"),
        title: text(&doc["info"]["title"]),
        description: text(&doc["info"]["description"]),
        operations,
        schemas,
    }
}

/// `GET /api/docs`.
pub async fn page() -> HttpResponse {
    let doc: Value = serde_json::from_str(super::document_json()).unwrap_or_default();
    match reference(&doc).render() {
        Ok(html) => HttpResponse::Ok().content_type("text/html; charset=utf-8").body(html),
        Err(e) => {
            tracing::error!(error = %e, "rendering the API reference");
            HttpResponse::InternalServerError().body("internal error (see the broker's log)")
        }
    }
}
