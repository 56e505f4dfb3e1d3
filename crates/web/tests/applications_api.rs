//! Applications through the real server: the JSON API (create as JSON or
//! YAML text, versions, `?version=N`, delete; 400 `invalid_document` with
//! every error's path; a viewer refused with 403; a file-declared
//! application read-only with 409) and the UI (list, view, the editor that
//! keeps the typed text and shows the errors at the top and next to their
//! lines). On SQLite and PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use reqwest::Method;
use serde_json::{json, Value};

const YAML_V1: &str = "description: one node\nnodes:\n  main:\n    image: ubuntu-22.04\n";
const YAML_V2: &str = "description: one node, twice\nnodes:\n  main:\n    image: ubuntu-22.04\n    multiplicity: 2\n";

async fn put_text(app: &common::TestApp, path: &str, token: &str, content_type: &str, text: &str) -> (u16, Value) {
    let r =
        app.http.put(app.url(path)).bearer_auth(token).header("Content-Type", content_type).body(text.to_string()).send().await.unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

app_test!(the_api_saves_versions_and_reports_every_error, |app: common::TestApp| async move {
    let admin = app.token("super", common::SUPER_PW).await;
    let alice = app.user(&admin, "alice").await;
    let bob = app.user(&admin, "bob").await;

    // YAML text: version 1, stored as sent.
    let (s, b) = put_text(&app, "/api/v1/applications/web", &alice, "application/yaml", YAML_V1).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!((b["name"].as_str(), b["version"].as_i64(), b["source"].as_str()), (Some("web"), Some(1), Some(YAML_V1)));
    assert_eq!(b["document"]["nodes"]["main"]["multiplicity"], 1);
    assert_eq!(b["origin"], "saved by alice");
    // The same text: still version 1.
    let (s, b) = put_text(&app, "/api/v1/applications/web", &alice, "text/yaml", YAML_V1).await;
    assert_eq!((s, b["version"].as_i64()), (200, Some(1)), "{b}");
    // A change: version 2.
    let (s, b) = put_text(&app, "/api/v1/applications/web", &alice, "application/yaml; charset=utf-8", YAML_V2).await;
    assert_eq!((s, b["version"].as_i64()), (200, Some(2)), "{b}");
    // As JSON.
    let doc = json!({"description": "json", "nodes": {"db": {"image": "debian-12", "outputs": [{"name": "port"}]},
        "app": {"image": "debian-12", "depends_on": ["db"], "inputs": [{"name": "db_port"}]}},
        "mappings": {"app.db_port": "db.port"}, "timeout": "1h"});
    let (s, b) = app.call(Method::PUT, "/api/v1/applications/stack", &bob, Some(doc.clone())).await;
    assert_eq!((s, b["version"].as_i64()), (200, Some(1)), "{b}");
    assert_eq!(b["document"]["timeout"], "1h");
    assert_eq!(b["document"]["mappings"]["app.db_port"], "db.port");
    let (s, b) = app.call(Method::PUT, "/api/v1/applications/stack", &bob, Some(doc)).await;
    assert_eq!((s, b["version"].as_i64()), (200, Some(1)), "the same JSON makes no version: {b}");

    // Read: the list, one application, a version, the versions.
    let (s, b) = app.call(Method::GET, "/api/v1/applications", &bob, None).await;
    assert_eq!(s, 200, "{b}");
    let names: Vec<(&str, i64)> =
        b["applications"].as_array().unwrap().iter().map(|a| (a["name"].as_str().unwrap(), a["version"].as_i64().unwrap())).collect();
    assert!(names.contains(&("web", 2)) && names.contains(&("stack", 1)), "{b}");
    let (s, b) = app.call(Method::GET, "/api/v1/applications/web", &bob, None).await;
    assert_eq!((s, b["version"].as_i64(), b["source"].as_str()), (200, Some(2), Some(YAML_V2)), "{b}");
    let (s, b) = app.call(Method::GET, "/api/v1/applications/web?version=1", &bob, None).await;
    assert_eq!((s, b["version"].as_i64(), b["source"].as_str()), (200, Some(1), Some(YAML_V1)), "{b}");
    let (s, b) = app.call(Method::GET, "/api/v1/applications/web/versions", &bob, None).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["versions"].as_array().unwrap().iter().map(|v| v["version"].as_i64().unwrap()).collect::<Vec<_>>(), vec![1, 2]);
    let (s, b) = app.call(Method::GET, "/api/v1/applications/web?version=7", &bob, None).await;
    assert_eq!((s, b["error"]["code"].as_str()), (404, Some("not_found")), "{b}");
    let (s, _) = app.call(Method::GET, "/api/v1/applications/nothing", &bob, None).await;
    assert_eq!(s, 404);

    // Every error at once, each with its path.
    let bad = "nodes:\n  web:\n    image: ubuntu-22.04\n    depends_on: [dbx]\n    multiplicity: 101\n  Bad:\n    image: x\n";
    let (s, b) = put_text(&app, "/api/v1/applications/broken", &alice, "application/yaml", bad).await;
    assert_eq!((s, b["error"]["code"].as_str()), (400, Some("invalid_document")), "{b}");
    let errors = b["error"]["errors"].as_array().unwrap();
    let paths: Vec<&str> = errors.iter().map(|e| e["path"].as_str().unwrap()).collect();
    assert_eq!(paths.len(), 3, "{b}");
    for p in ["nodes.web.depends_on[0]", "nodes.web.multiplicity", "nodes.Bad"] {
        assert!(paths.contains(&p), "{p} in {b}");
    }
    let dep = errors.iter().find(|e| e["path"] == "nodes.web.depends_on[0]").unwrap();
    assert_eq!((dep["message"].as_str(), dep["line"].as_i64()), (Some("no node 'dbx'"), Some(4)));
    let (s, _) = app.call(Method::GET, "/api/v1/applications/broken", &alice, None).await;
    assert_eq!(s, 404, "nothing stored");
    let (s, b) = app.call(Method::PUT, "/api/v1/applications/broken", &alice, Some(json!({"nodes": {}, "extra": 1}))).await;
    assert_eq!((s, b["error"]["code"].as_str()), (400, Some("invalid_document")), "{b}");
    let (s, b) = put_text(&app, "/api/v1/applications/broken", &alice, "application/json", "{\"nodes\": ").await;
    assert_eq!((s, b["error"]["code"].as_str()), (400, Some("invalid_document")), "{b}");
    let (s, b) = put_text(&app, "/api/v1/applications/broken", &alice, "application/xml", YAML_V1).await;
    assert_eq!((s, b["error"]["code"].as_str()), (415, Some("unsupported_media_type")), "{b}");
    let (s, b) = put_text(&app, "/api/v1/applications/Bad%20Name", &alice, "application/yaml", YAML_V1).await;
    assert_eq!(s, 400, "{b}");

    // Only the creator (or an admin) adds versions or deletes.
    let (s, b) = put_text(&app, "/api/v1/applications/web", &bob, "application/yaml", YAML_V1).await;
    assert_eq!((s, b["error"]["code"].as_str()), (403, Some("forbidden")), "{b}");
    let (s, _) = app.call(Method::DELETE, "/api/v1/applications/web", &bob, None).await;
    assert_eq!(s, 403);
    let (s, b) = put_text(&app, "/api/v1/applications/web", &admin, "application/yaml", YAML_V1).await;
    assert_eq!((s, b["version"].as_i64()), (200, Some(3)), "{b}");

    // A viewer of the project it acts in reads, and saves nothing.
    let (s, b) = app.call(Method::POST, "/api/v1/projects", &alice, Some(json!({"name": "team"}))).await;
    assert_eq!(s, 201, "{b}");
    let (s, b) = app.call(Method::PUT, "/api/v1/projects/team/members/bob", &alice, Some(json!({"role": "viewer"}))).await;
    assert_eq!(s, 200, "{b}");
    let (s, b) = put_text(&app, "/api/v1/applications/bobs?project=team", &bob, "application/yaml", YAML_V1).await;
    assert_eq!((s, b["error"]["code"].as_str()), (403, Some("forbidden")), "{b}");
    let (s, _) = app.call(Method::GET, "/api/v1/applications/web?project=team", &bob, None).await;
    assert_eq!(s, 200);
    let (s, _) = app.call(Method::GET, "/api/v1/applications", "not-a-token", None).await;
    assert_eq!(s, 401);

    // Delete: gone by name, a version by number stays readable.
    let (s, b) = app.call(Method::DELETE, "/api/v1/applications/web", &alice, None).await;
    assert_eq!(s, 204, "{b}");
    let (s, _) = app.call(Method::GET, "/api/v1/applications/web", &alice, None).await;
    assert_eq!(s, 404);
    let (s, b) = app.call(Method::GET, "/api/v1/applications/web?version=2", &alice, None).await;
    assert_eq!((s, b["source"].as_str()), (200, Some(YAML_V2)), "{b}");
});

app_test!(file_declared_applications_are_read_only, |app: common::TestApp| async move {
    let admin = app.token("super", common::SUPER_PW).await;
    let dir = app.dir.path().join("connectors.d/applications");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("lamp.yaml"), include_str!("../../../connectors.d/applications/lamp.yaml")).unwrap();
    app.broker.registry.reload().await.unwrap();
    let file = dir.join("lamp.yaml").display().to_string();
    let (s, b) = app.call(Method::GET, "/api/v1/applications/lamp", &admin, None).await;
    assert_eq!(
        (s, b["version"].as_i64(), b["origin"].as_str(), b["declared_in"].as_str()),
        (200, Some(1), Some(file.as_str()), Some(file.as_str())),
        "{b}"
    );
    assert_eq!(b["document"]["nodes"]["web"]["depends_on"], json!(["db"]));
    let (s, b) = put_text(&app, "/api/v1/applications/lamp", &admin, "application/yaml", YAML_V1).await;
    assert_eq!((s, b["error"]["code"].as_str()), (409, Some("conflict")), "{b}");
    assert!(b["error"]["message"].as_str().unwrap().contains("edit the file"), "{b}");
    let (s, _) = app.call(Method::DELETE, "/api/v1/applications/lamp", &admin, None).await;
    assert_eq!(s, 409);
    // The OpenAPI document lists the routes.
    let (s, b) = app.call(Method::GET, "/api/v1/openapi.json", &admin, None).await;
    assert_eq!(s, 200);
    for p in ["/api/v1/applications", "/api/v1/applications/{name}", "/api/v1/applications/{name}/versions"] {
        assert!(b["paths"].get(p).is_some(), "{p} missing from the OpenAPI document");
    }
    assert!(b["paths"]["/api/v1/applications/{name}"]["put"]["requestBody"]["content"].get("application/yaml").is_some());
});

/// A signed-in browser session (cookies, the CSRF token of its pages).
struct Ui {
    http: reqwest::Client,
    base: String,
    csrf: String,
}

fn csrf_of(body: &str) -> String {
    let at = body.find("name=\"csrf\" value=\"").expect("a form with a CSRF token") + "name=\"csrf\" value=\"".len();
    body[at..].split('"').next().unwrap().to_string()
}

impl Ui {
    async fn sign_in(app: &common::TestApp, user: &str, pw: &str) -> Self {
        let http = reqwest::Client::builder().cookie_store(true).build().unwrap();
        let page = http.get(app.url("/login")).send().await.unwrap().text().await.unwrap();
        let csrf = csrf_of(&page);
        let r = http.post(app.url("/login")).form(&[("username", user), ("password", pw), ("csrf", &csrf)]).send().await.unwrap();
        assert_eq!(r.status(), 200, "sign-in of {user}");
        let home = r.text().await.unwrap();
        Self { http, base: app.base.clone(), csrf: csrf_of(&home) }
    }

    async fn get(&self, path: &str) -> (u16, String) {
        let r = self.http.get(format!("{}{path}", self.base)).send().await.unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    async fn post(&self, path: &str, fields: &[(&str, &str)]) -> (u16, String) {
        let mut f: Vec<(&str, &str)> = fields.to_vec();
        f.push(("csrf", &self.csrf));
        let r = self.http.post(format!("{}{path}", self.base)).form(&f).send().await.unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }
}

fn escaped(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&#x27;")
}

app_test!(the_editor_keeps_the_text_and_shows_errors_at_their_lines, |app: common::TestApp| async move {
    let admin = app.token("super", common::SUPER_PW).await;
    let _ = app.user(&admin, "alice").await;
    let ui = Ui::sign_in(&app, "alice", "alice-password").await;
    let (s, page) = ui.get("/applications").await;
    assert_eq!(s, 200);
    assert!(page.contains("href=\"/applications\" aria-current=\"page\">Applications</a>"), "nav link");
    assert!(page.contains("id=\"new-application\""));
    let (s, page) = ui.get("/applications/new").await;
    assert_eq!(s, 200);
    assert!(page.contains("<textarea id=\"source\""));

    // A document with two errors: the page comes back with the text as typed.
    let typed = "description: mine\nnodes:\n  web:\n    image: ubuntu-22.04\n    depends_on: [dbx]\n    colour: blue\n";
    let (s, page) = ui.post("/applications/new", &[("name", "mine"), ("source", typed)]).await;
    assert_eq!(s, 400, "{page}");
    assert!(page.contains(&escaped(typed)), "the typed text is kept: {page}");
    assert!(page.contains("value=\"mine\""), "the typed name is kept");
    assert!(page.contains("id=\"document-errors\""));
    assert!(page.contains("<a href=\"#line-5\">line 5</a>: <code>nodes.web.depends_on[0]</code>: no node &#x27;dbx&#x27;"), "{page}");
    // ...and each error again next to its line.
    let line5 = page.split("id=\"line-5\"").nth(1).unwrap().split("</tr>").next().unwrap();
    assert!(line5.contains("class=\"has-error\"") || page.contains("id=\"line-5\" class=\"has-error\""));
    assert!(line5.contains("nodes.web.depends_on[0]: no node &#x27;dbx&#x27;"), "{line5}");
    let line6 = page.split("id=\"line-6\"").nth(1).unwrap().split("</tr>").next().unwrap();
    assert!(line6.contains("nodes.web.colour: unknown field"), "{line6}");
    let (s, _) = ui.get("/applications/mine").await;
    assert_eq!(s, 404, "nothing saved");

    // A bad name: next to the name field, the text kept.
    let (s, page) = ui.post("/applications/new", &[("name", "Mine!"), ("source", YAML_V1)]).await;
    assert_eq!(s, 400);
    assert!(page.contains("id=\"name-error\""), "{page}");
    assert!(page.contains(&escaped(YAML_V1)));

    // Saved: the view shows the nodes, the versions and the source.
    let (s, page) = ui.post("/applications/new", &[("name", "mine"), ("source", YAML_V1)]).await;
    assert_eq!(s, 200, "{page}");
    assert!(page.contains("Application mine saved: version 1"), "{page}");
    assert!(page.contains("id=\"node-main\""));
    assert!(page.contains("href=\"/applications/mine/deploy\""));
    let (s, page) = ui.get("/applications/mine/edit").await;
    assert_eq!(s, 200);
    assert!(page.contains(&escaped(YAML_V1)));
    // CRLF from the browser is stored as LF: the same text, no new version.
    let (s, page) = ui.post("/applications/mine/edit", &[("source", &YAML_V2.replace('\n', "\r\n"))]).await;
    assert_eq!(s, 200, "{page}");
    assert!(page.contains("version 2"), "{page}");
    let (_, b) = app.call(Method::GET, "/api/v1/applications/mine", &admin, None).await;
    assert_eq!(b["source"].as_str(), Some(YAML_V2));
    let (s, page) = ui.get("/applications").await;
    assert_eq!(s, 200);
    let row = page.split("id=\"application-mine\"").nth(1).unwrap().split("</tr>").next().unwrap();
    assert!(
        row.contains("<td class=\"version\">2</td>") && row.contains("saved by alice") && row.contains("/applications/mine/deploy"),
        "{row}"
    );
    let (s, page) = ui.get("/applications/mine?version=1").await;
    assert_eq!(s, 200);
    assert!(page.contains("the latest is"), "{page}");
});
