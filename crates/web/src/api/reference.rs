//! `GET /api/docs`: the API reference for people, rendered on the server from
//! the same OpenAPI document the API serves (no script, no CDN): every
//! operation with its parameters, body and answers, then every schema. The
//! document's descriptions are Markdown: they are rendered (code spans,
//! emphasis, links, paragraphs and lists), everything else escaped.

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

/// HTML-escapes `s`.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#x27;"),
            c => out.push(c),
        }
    }
    out
}

/// One line of Markdown as HTML: `code`, **strong**, *emphasis* and
/// [links](https://…) (http, https, relative and `#` targets only);
/// everything else escaped.
pub(crate) fn inline_markdown(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 16);
    let mut rest = s;
    while let Some(c) = rest.chars().next() {
        let after = &rest[c.len_utf8()..];
        if c == '`' {
            if let Some(end) = after.find('`') {
                out.push_str(&format!("<code>{}</code>", escape(&after[..end])));
                rest = &after[end + 1..];
                continue;
            }
        }
        if rest.starts_with("**") {
            if let Some(end) = rest[2..].find("**").filter(|e| *e > 0) {
                out.push_str(&format!("<strong>{}</strong>", inline_markdown(&rest[2..2 + end])));
                rest = &rest[2 + end + 2..];
                continue;
            }
        }
        if c == '*' || c == '_' {
            let boundary = out.is_empty() || out.ends_with([' ', '(', '>']);
            if let Some(end) = after.find(c).filter(|e| *e > 0 && boundary && !after.starts_with(' ')) {
                out.push_str(&format!("<em>{}</em>", inline_markdown(&after[..end])));
                rest = &after[end + 1..];
                continue;
            }
        }
        if c == '[' {
            if let Some((label, tail)) = after.split_once("](") {
                if let Some((url, tail)) = tail.split_once(')') {
                    let safe = url.starts_with("https://") || url.starts_with("http://") || url.starts_with('/') || url.starts_with('#');
                    if safe && !label.contains(']') && !url.contains(char::is_whitespace) {
                        out.push_str(&format!("<a href=\"{}\">{}</a>", escape(url), inline_markdown(label)));
                        rest = tail;
                        continue;
                    }
                }
            }
        }
        out.push_str(&escape(&c.to_string()));
        rest = after;
    }
    out
}

/// A Markdown text as HTML: paragraphs (blank lines), `- ` lists, and
/// [`inline_markdown`] within.
pub(crate) fn markdown(s: &str) -> String {
    let mut out = String::new();
    for block in s.split("\n\n").map(str::trim).filter(|b| !b.is_empty()) {
        let lines: Vec<&str> = block.lines().map(str::trim).collect();
        if lines.iter().all(|l| l.starts_with("- ") || l.starts_with("* ")) {
            out.push_str("<ul>");
            for l in lines {
                out.push_str(&format!("<li>{}</li>", inline_markdown(&l[2..])));
            }
            out.push_str("</ul>");
        } else {
            out.push_str(&format!("<p>{}</p>", inline_markdown(&lines.join(" "))));
        }
    }
    out
}

/// A description as inline HTML (for table cells and headings).
fn md(v: &Value) -> String {
    inline_markdown(&text(v))
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
                    description: md(&p["description"]),
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
                    (status.clone(), md(&r["description"]), if schema.is_null() { String::new() } else { ty(&schema) })
                })
                .collect();
            operations.push(Operation {
                method: method.to_uppercase(),
                path: path.clone(),
                summary: md(&op["summary"]),
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
                description: md(&p["description"]),
            })
            .collect::<Vec<_>>();
        let description = if fields.is_empty() { format!("{} {}", ty(s), description) } else { description };
        schemas.push(Schema { name: name.clone(), description: inline_markdown(description.trim()), fields });
    }
    Reference {
        c: crate::ui::Chrome::anonymous("JSON API reference"),
        title: text(&doc["info"]["title"]),
        description: markdown(&text(&doc["info"]["description"])),
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
