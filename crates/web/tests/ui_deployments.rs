//! Deployments in the UI (issue 27), through the real server without a
//! browser, on SQLite and PostgreSQL, with the shipped `lamp` application:
//! the Deploy form (a field per input not filled by a mapping, the secret
//! one a password field, a select per node of the instances the user may
//! use); a refused submit comes back with the messages at the top and next
//! to the fields, what was typed kept but the secret; the dry run shows
//! what would be launched where; Deploy opens the deployment's page with
//! its SVG diagram (every node and VM), the parameters with the secret
//! masked, the timeline, refreshing itself while in progress; Scale shows
//! the plan, then applies it; Abort wants a message; Terminate asks first.
//! A viewer sees the page with no action and a forged one is refused;
//! another user gets a 404.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use reqwest::redirect::Policy;
use serde_json::{json, Value};
use std::time::Duration;

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
        let jar = std::sync::Arc::new(reqwest::cookie::Jar::default());
        let http = reqwest::Client::builder().cookie_provider(jar).redirect(Policy::limited(5)).build().unwrap();
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

    /// Posts a form with the session's CSRF token; the final page's status, address and body.
    async fn post(&self, path: &str, fields: &[(&str, &str)]) -> (u16, String, String) {
        let mut f: Vec<(&str, &str)> = fields.to_vec();
        f.push(("csrf", &self.csrf));
        let r = self.http.post(format!("{}{path}", self.base)).form(&f).send().await.unwrap();
        let status = r.status().as_u16();
        let url = r.url().path().to_string();
        (status, url, r.text().await.unwrap())
    }
}

fn between<'a>(body: &'a str, start: &str, end: &str) -> &'a str {
    body.split(start).nth(1).and_then(|r| r.split(end).next()).unwrap_or_else(|| panic!("no {start} in {body}"))
}

fn field_error<'a>(body: &'a str, id: &str) -> Option<&'a str> {
    let at = body.find(&format!("class=\"field-error\" id=\"{id}\">"))?;
    let rest = &body[at..];
    let start = rest.find('>')? + 1;
    Some(rest[start..].split("</span>").next().unwrap())
}

fn flash(body: &str) -> &str {
    between(body, "id=\"flash\">", "</p>")
}

fn lamp_yaml() -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../connectors.d/applications/lamp.yaml");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

async fn with_lamp(db_url: Option<String>) -> common::TestApp {
    let dir = tempfile::tempdir().unwrap();
    let apps = dir.path().join("connectors.d/applications");
    std::fs::create_dir_all(&apps).unwrap();
    std::fs::write(apps.join("lamp.yaml"), lamp_yaml()).unwrap();
    common::TestApp::start(db_url, dir).await.unwrap()
}

const SECRET: &str = "ui-secret-pw-0b1d";

/// Runs the passes the background workers would until the deployment's
/// state (read through the API as `token`) is `state`.
async fn drive_to(app: &common::TestApp, token: &str, id: &str, state: &str) {
    let mut last = Value::Null;
    for _ in 0..150 {
        app.broker.provisioning.reconcile("test").await.unwrap();
        app.broker.deployments.drive_pass().await.unwrap();
        let (_, d) = app.call(reqwest::Method::GET, &format!("/api/v1/deployments/{id}"), token, None).await;
        if d["state"] == state && d["operation"].is_null() {
            return;
        }
        last = d;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("never {state}: {last:#}");
}

async fn deploy_from_the_form(db_url: Option<String>) {
    let app = with_lamp(db_url).await;
    let admin = app.token("super", common::SUPER_PW).await;
    let image = json!({"name": "ubuntu-22.04", "mappings": {"sb": {"image_id": "ami-sandbox-ubuntu-2204"}, "sb2": {"image_id": "ami-sandbox-ubuntu-2204"}}});
    let (s, b) = app.call(reqwest::Method::POST, "/api/v1/images", &admin, Some(image)).await;
    assert_eq!(s, 201, "{b}");
    let alice_token = app.user(&admin, "alice").await;
    app.user(&admin, "bob").await;
    let ui = Ui::sign_in(&app, "alice", "alice-password").await;

    // The nav link, the list (empty) with the application and its Deploy link.
    let (s, list) = ui.get("/deployments").await;
    assert_eq!(s, 200, "{list}");
    assert!(list.contains("href=\"/deployments\" aria-current=\"page\">Deployments</a>"), "{list}");
    assert!(list.contains("href=\"/applications/lamp/deploy\""), "{list}");

    // The form: a field per input not mapped; the secret a password field; a select per node.
    let (s, form) = ui.get("/applications/lamp/deploy").await;
    assert_eq!(s, 200, "{form}");
    assert!(form.contains("name=\"in.site_title\" value=\"\" placeholder=\"Hello\""), "{form}");
    assert!(form.contains("type=\"password\" id=\"in-db-db_password\" name=\"in.db.db_password\""), "{form}");
    assert!(!form.contains("name=\"in.web.db_host\"") && !form.contains("name=\"in.web.db_port\""), "mapped inputs are not asked");
    assert!(form.contains("db_host ← db.hostname"), "{form}");
    for node in ["db", "web"] {
        let select = between(&form, &format!("name=\"place.{node}\""), "</select>");
        assert!(select.contains("<option value=\"sb\">") && select.contains("<option value=\"sb2\">"), "{select}");
    }
    assert!(form.contains("name=\"mult.web\" value=\"2\""), "{form}");

    // Refused: no password, no placement for web: messages at the top and next to the fields, the rest kept.
    let (s, _, page) = ui
        .post(
            "/applications/lamp/deploy",
            &[("name", "my-lamp"), ("in.site_title", "Hi <there>"), ("place.db", "sb"), ("mult.web", "2"), ("action", "deploy")],
        )
        .await;
    assert_eq!(s, 400, "{page}");
    assert!(page.contains("id=\"form-error\""), "{page}");
    assert!(field_error(&page, "in-db-db_password-error").is_some_and(|e| e.contains("required")), "{page}");
    assert!(field_error(&page, "place-web-error").is_some(), "{page}");
    assert!(page.contains("value=\"my-lamp\"") && page.contains("value=\"Hi &lt;there&gt;\""), "typed values kept, escaped: {page}");
    assert!(between(&page, "name=\"place.db\"", "</select>").contains("<option value=\"sb\" selected>"), "{page}");
    // A bad number of VMs, with the secret typed: the secret is not sent back.
    let (s, _, page) = ui
        .post(
            "/applications/lamp/deploy",
            &[("in.db.db_password", SECRET), ("place.db", "sb"), ("place.web", "sb2"), ("mult.web", "lots"), ("action", "deploy")],
        )
        .await;
    assert_eq!(s, 400, "{page}");
    assert!(field_error(&page, "mult-web-error").is_some(), "{page}");
    assert!(!page.contains(SECRET), "the secret is never rendered back");

    // The dry run: what would be launched where.
    let full = [
        ("name", "my-lamp"),
        ("in.site_title", "Hi"),
        ("in.db.db_password", SECRET),
        ("place.db", "sb"),
        ("place.web", "sb2"),
        ("mult.db", "1"),
        ("mult.web", "2"),
        ("on_failure", "terminate"),
    ];
    let mut preview = full.to_vec();
    preview.push(("action", "preview"));
    let (s, _, page) = ui.post("/applications/lamp/deploy", &preview).await;
    assert_eq!(s, 200, "{page}");
    let table = between(&page, "id=\"preview\"", "</section>");
    assert!(table.contains("<tr data-node=\"db\"><td>db</td><td>sb</td><td>1</td></tr>"), "{table}");
    assert!(table.contains("<tr data-node=\"web\"><td>web</td><td>sb2</td><td>2</td></tr>"), "{table}");
    let (_, vms) = app.call(reqwest::Method::GET, "/api/v1/vms", &alice_token, None).await;
    assert_eq!(vms["vms"].as_array().unwrap().len(), 0, "a dry run launches nothing");

    // Deploy: the deployment's page, with its diagram.
    let mut go = full.to_vec();
    go.push(("action", "deploy"));
    let (s, url, page) = ui.post("/applications/lamp/deploy", &go).await;
    assert_eq!(s, 200, "{page}");
    assert!(url.starts_with("/deployments/dep-"), "{url}");
    let id = url.trim_start_matches("/deployments/").to_string();
    assert!(flash(&page).contains("Deployed my-lamp"), "{page}");
    assert!(page.contains("<svg") && page.contains("data-node=\"db\"") && page.contains("data-node=\"web\""), "{page}");
    for m in ["db.1", "web.1", "web.2"] {
        assert!(page.contains(&format!("data-member=\"{m}\"")), "{m}: {page}");
    }
    assert!(page.contains("class=\"mapping\" data-from=\"db\" data-to=\"web\" data-param=\"db_host\""), "{page}");
    assert!(page.contains("id=\"refreshing\"") && page.contains("http-equiv=\"refresh\""), "in progress: refreshes");
    assert!(!page.contains(SECRET), "the secret is never rendered");
    assert!(page.contains("•••••• (secret)"), "{page}");

    drive_to(&app, &alice_token, &id, "ready").await;
    let (s, page) = ui.get(&format!("/deployments/{id}")).await;
    assert_eq!(s, 200);
    assert!(page.contains("id=\"dep-state\">ready</span>"), "{page}");
    assert!(!page.contains("http-equiv=\"refresh\""), "settled: no refresh");
    assert!(page.contains("<code>db.1.hostname</code>"), "{page}");
    assert!(page.contains("id=\"dep-scale\"") && page.contains("id=\"dep-terminate\""), "{page}");
    assert!(!between(&page, "id=\"dep-events\"", "</section>").contains("Nothing yet"), "{page}");
    let (_, list) = ui.get("/deployments").await;
    assert!(list.contains(&format!("<tr id=\"dep-{id}\" data-state=\"ready\">")), "{list}");

    // Scale: the plan, then applied.
    let (s, plan) = ui.get(&format!("/deployments/{id}/scale?node=web&multiplicity=3")).await;
    assert_eq!(s, 200, "{plan}");
    assert!(between(&plan, "id=\"scale-launch\">", "</p>").contains("#3"), "{plan}");
    assert!(plan.contains("id=\"scale-confirm\""), "{plan}");
    let (s, _, page) = ui.post(&format!("/deployments/{id}/scale"), &[("node", "web"), ("multiplicity", "3")]).await;
    assert_eq!(s, 200, "{page}");
    assert!(flash(&page).contains("Scaling web from 2 to 3: 1 VM(s) admitted"), "held until released, not yet launched: {page}");
    // The new VM is launched once the driver runs, and the deployment is ready again.
    let mut web = Value::Null;
    for _ in 0..150 {
        app.broker.provisioning.reconcile("test").await.unwrap();
        app.broker.deployments.drive_pass().await.unwrap();
        let (_, d) = app.call(reqwest::Method::GET, &format!("/api/v1/deployments/{id}"), &alice_token, None).await;
        web = d["nodes"].as_array().unwrap().iter().find(|n| n["name"] == "web").unwrap().clone();
        if d["state"] == "ready" && web["vms"].as_array().unwrap().iter().filter(|m| m["vm_state"] == "running").count() == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(web["vms"].as_array().unwrap().iter().filter(|m| m["vm_state"] == "running").count(), 3, "{web}");
    let (_, page) = ui.get(&format!("/deployments/{id}")).await;
    assert!(page.contains("data-member=\"web.3\" data-state=\"ready\""), "{page}");
    let (s, bad) = ui.get(&format!("/deployments/{id}/scale?node=web&multiplicity=many")).await;
    assert_eq!(s, 400);
    assert!(field_error(&bad, "multiplicity-error").is_some(), "{bad}");

    // Abort wants a message.
    let (s, confirm) = ui.get(&format!("/deployments/{id}/abort")).await;
    assert_eq!(s, 200);
    assert!(confirm.contains("id=\"confirm-abort\""), "{confirm}");
    let (s, _, page) = ui.post(&format!("/deployments/{id}/abort"), &[("message", "  ")]).await;
    assert_eq!(s, 400);
    assert!(field_error(&page, "message-error").is_some(), "{page}");

    // Someone else: not found.
    let bob = Ui::sign_in(&app, "bob", "bob-password").await;
    let (s, _) = bob.get(&format!("/deployments/{id}")).await;
    assert_eq!(s, 404);
    let (_, list) = bob.get("/deployments").await;
    assert!(!list.contains(&id), "{list}");

    // Terminate asks first.
    let (s, confirm) = ui.get(&format!("/deployments/{id}/terminate")).await;
    assert_eq!(s, 200);
    assert!(confirm.contains("id=\"confirm-terminate\""), "{confirm}");
    let (s, _, page) = ui.post(&format!("/deployments/{id}/terminate"), &[]).await;
    assert_eq!(s, 200, "{page}");
    assert!(flash(&page).starts_with("Terminating my-lamp"), "{page}");
    app.stop().await;
}
db_url_test!(deploy_from_the_form, super::deploy_from_the_form);

async fn a_viewer_looks_but_does_not_touch(db_url: Option<String>) {
    let app = with_lamp(db_url).await;
    let admin = app.token("super", common::SUPER_PW).await;
    let image = json!({"name": "ubuntu-22.04", "mappings": {"sb": {"image_id": "ami-sandbox-ubuntu-2204"}}});
    let (s, b) = app.call(reqwest::Method::POST, "/api/v1/images", &admin, Some(image)).await;
    assert_eq!(s, 201, "{b}");
    let alice = app.user(&admin, "alice").await;
    app.user(&admin, "vic").await;
    let (s, b) = app.call(reqwest::Method::POST, "/api/v1/projects", &alice, Some(json!({"name": "team-a"}))).await;
    assert_eq!(s, 201, "{b}");
    let (s, b) = app.call(reqwest::Method::PUT, "/api/v1/projects/team-a/members/vic", &alice, Some(json!({"role": "viewer"}))).await;
    assert!(s == 200 || s == 201, "{b}");
    let body = json!({"application": "lamp", "inputs": {"db.db_password": SECRET},
        "placement": {"db": {"instance": "sb"}, "web": {"instance": "sb"}}});
    let (s, d) = app.call(reqwest::Method::POST, "/api/v1/deployments?project=team-a", &alice, Some(body)).await;
    assert_eq!(s, 201, "{d}");
    let id = d["id"].as_str().unwrap().to_string();

    let vic = Ui::sign_in(&app, "vic", "vic-password").await;
    let (s, _, _) = vic.post("/project", &[("project", "team-a"), ("back", "/deployments")]).await;
    assert_eq!(s, 200);
    let (s, page) = vic.get(&format!("/deployments/{id}")).await;
    assert_eq!(s, 200, "{page}");
    assert!(page.contains("data-node=\"web\""), "{page}");
    assert!(!page.contains("id=\"dep-actions\""), "no action for a viewer: {page}");
    assert!(!page.contains(SECRET));
    let (s, _) = vic.get(&format!("/deployments/{id}/terminate")).await;
    assert_eq!(s, 403);
    let (s, _, page) = vic.post(&format!("/deployments/{id}/terminate"), &[]).await;
    assert_eq!(s, 200);
    assert!(flash(&page).starts_with("Not allowed:"), "{page}");
    let (s, form) = vic.get("/applications/lamp/deploy").await;
    assert_eq!(s, 200);
    assert!(form.contains("id=\"viewer-note\"") && !form.contains("id=\"deploy-submit\""), "{form}");
    let (_, list) = vic.get("/deployments").await;
    assert!(list.contains(&format!("<tr id=\"dep-{id}\"")), "{list}");
    assert!(!list.contains("id=\"deploy-lamp\""), "no Deploy button for a viewer: {list}");
    let (_, d) = app.call(reqwest::Method::GET, &format!("/api/v1/deployments/{id}?project=team-a"), &alice, None).await;
    assert!(!["terminating", "terminated"].contains(&d["state"].as_str().unwrap()), "the forged terminate changed nothing: {d}");
    app.stop().await;
}
db_url_test!(a_viewer_looks_but_does_not_touch, super::a_viewer_looks_but_does_not_touch);
