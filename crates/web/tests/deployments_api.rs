//! Deployments through the JSON API (issue 27), on SQLite and on
//! PostgreSQL, against the real server on port 0 with the shipped `lamp`
//! application (connectors.d/applications/lamp.yaml, copied into the test's
//! configuration): deploy it on the sandbox (a dry run first), read it and
//! list it, its parameters (the secret input never shown back) and events;
//! scale `web` (the plan, then applied), terminate (twice: the same), a
//! second operation while one is in progress refused with 409; a viewer
//! reads but is refused any change (403); another project does not see it
//! (404, empty list); bad bodies are 400s naming the field; a quota too small
//! for the whole deployment refuses it with nothing launched. The broker's
//! background workers do not run in tests: the test drives the passes
//! (reconcile, then the deployments' pass) until the state it waits for.

// Test code: panicking on an unexpected result is the point.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{TestApp, SUPER_PW};
use reqwest::Method;
use serde_json::{json, Value};
use std::time::Duration;

/// The shipped example application.
fn lamp_yaml() -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../connectors.d/applications/lamp.yaml");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A broker whose configuration declares `lamp` (as the shipped one does).
pub async fn with_lamp(db_url: Option<String>) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let apps = dir.path().join("connectors.d/applications");
    std::fs::create_dir_all(&apps).unwrap();
    std::fs::write(apps.join("lamp.yaml"), lamp_yaml()).unwrap();
    TestApp::start(db_url, dir).await.unwrap()
}

/// super's token and alice's, with `ubuntu-22.04` on `sb` and `sb2`.
async fn setup(app: &TestApp) -> (String, String) {
    let admin = app.token("super", SUPER_PW).await;
    let image = json!({"name": "ubuntu-22.04", "mappings": {"sb": {"image_id": "ami-sandbox-ubuntu-2204"}, "sb2": {"image_id": "ami-sandbox-ubuntu-2204"}}});
    let (s, b) = app.call(Method::POST, "/api/v1/images", &admin, Some(image)).await;
    assert_eq!(s, 201, "{b}");
    let alice = app.user(&admin, "alice").await;
    (admin, alice)
}

const SECRET: &str = "db-pw-never-shown-7f3a";

fn lamp_body() -> Value {
    json!({
        "application": "lamp",
        "inputs": {"site_title": "Hi there", "db.db_password": SECRET},
        "placement": {"db": {"instance": "sb"}, "web": {"instance": "sb2"}},
        "on_failure": "terminate",
    })
}

/// Runs the passes the background workers would (the VMs' transitions,
/// then the deployments' driver) until `done` holds for the deployment's
/// JSON (read as `token` at `path`), or panics with the last one.
async fn drive_until(app: &TestApp, token: &str, path: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let mut last = Value::Null;
    for _ in 0..150 {
        app.broker.provisioning.reconcile("test").await.unwrap();
        app.broker.deployments.drive_pass().await.unwrap();
        let (s, b) = app.call(Method::GET, path, token, None).await;
        assert_eq!(s, 200, "{b}");
        if done(&b) {
            return b;
        }
        last = b;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("never {what}: {last:#}");
}

fn node<'a>(d: &'a Value, name: &str) -> &'a Value {
    d["nodes"].as_array().unwrap().iter().find(|n| n["name"] == name).unwrap_or_else(|| panic!("no node {name}: {d}"))
}

/// (status, code, field) of an answer.
fn error(s: u16, b: &Value) -> (u16, String, String) {
    let e = &b["error"];
    (s, e["code"].as_str().unwrap_or_default().to_string(), e["field"].as_str().unwrap_or_default().to_string())
}

async fn deploy_drive_scale_terminate(db_url: Option<String>) {
    let app = with_lamp(db_url).await;
    let (_admin, alice) = setup(&app).await;

    // A dry run: what would be launched where, nothing admitted.
    let mut dry = lamp_body();
    dry["dry_run"] = json!(true);
    let (s, b) = app.call(Method::POST, "/api/v1/deployments", &alice, Some(dry)).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["dry_run"], json!(true));
    let mut plan: Vec<(String, String, u64)> = b["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| (n["node"].as_str().unwrap().to_string(), n["instance"].as_str().unwrap().to_string(), n["vms"].as_u64().unwrap()))
        .collect();
    plan.sort();
    assert_eq!(plan, vec![("db".into(), "sb".into(), 1), ("web".into(), "sb2".into(), 2)]);
    let (_, vms) = app.call(Method::GET, "/api/v1/vms", &alice, None).await;
    assert_eq!(vms["vms"].as_array().unwrap().len(), 0, "a dry run launches nothing: {vms}");

    // Deploy: 201, every VM admitted at once (web's held until db is ready).
    let (s, d) = app.call(Method::POST, "/api/v1/deployments", &alice, Some(lamp_body())).await;
    assert_eq!(s, 201, "{d}");
    let id = d["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("dep-") && id.len() == 20, "{id}");
    assert_eq!((d["application"].as_str(), d["user"].as_str(), d["project"].as_str()), (Some("lamp"), Some("alice"), Some("alice")));
    assert!(d["version"].as_i64().unwrap() >= 1);
    assert_eq!(d["on_failure"], "terminate");
    assert!(["provisioning", "executing"].contains(&d["state"].as_str().unwrap()), "{d}");
    assert_eq!(node(&d, "db")["vms"].as_array().unwrap().len(), 1, "{d}");
    assert_eq!(node(&d, "web")["vms"].as_array().unwrap().len(), 2, "{d}");
    assert_eq!(node(&d, "web")["instance"], "sb2");
    assert_eq!(node(&d, "web")["depends_on"], json!(["db"]));
    let (_, vms) = app.call(Method::GET, "/api/v1/vms", &alice, None).await;
    assert_eq!(vms["vms"].as_array().unwrap().len(), 3, "all three admitted: {vms}");

    // Driven to ready: db runs, then web is released and runs.
    let path = format!("/api/v1/deployments/{id}");
    let d = drive_until(&app, &alice, &path, "ready", |d| d["state"] == "ready").await;
    for n in d["nodes"].as_array().unwrap() {
        assert_eq!(n["state"], "ready", "{d}");
        for m in n["vms"].as_array().unwrap() {
            assert!(m["vm_id"].as_str().unwrap().starts_with("vm-"), "{m}");
            assert_eq!(m["vm_state"], "running", "{m}");
        }
    }
    assert_eq!(d["operation"], Value::Null);

    // Listed; read with its parameters and events; the secret never shown.
    let (s, list) = app.call(Method::GET, "/api/v1/deployments", &alice, None).await;
    assert_eq!(s, 200, "{list}");
    assert_eq!(list["deployments"].as_array().unwrap().iter().filter(|x| x["id"] == id.as_str()).count(), 1, "{list}");
    let (s, full) = app.call(Method::GET, &format!("{path}?include=params,events"), &alice, None).await;
    assert_eq!(s, 200, "{full}");
    let params = full["params"].as_array().unwrap();
    let secret = params.iter().find(|p| p["secret"] == true).unwrap_or_else(|| panic!("the secret input is listed: {full}"));
    assert_eq!(secret["value"], Value::Null, "{secret}");
    assert!(params.iter().any(|p| p["name"] == "db.1.hostname" && p["value"].is_string()), "db's hostname published: {full}");
    assert!(!full["events"].as_array().unwrap().is_empty(), "{full}");
    let (s, p2) = app.call(Method::GET, &format!("{path}/params"), &alice, None).await;
    assert_eq!((s, p2["params"].as_array().unwrap().len()), (200, params.len()), "{p2}");
    let (s, ev) = app.call(Method::GET, &format!("{path}/events"), &alice, None).await;
    assert_eq!(s, 200, "{ev}");
    assert!(ev["events"].as_array().unwrap().iter().all(|e| e["at"].is_string() && e["kind"].is_string()), "{ev}");
    for body in [&full, &p2, &ev, &list] {
        assert!(!body.to_string().contains(SECRET), "the secret is never shown back: {body}");
    }
    let (_, doc) = app.call(Method::GET, "/api/v1/openapi.json", &alice, None).await;
    for p in ["/api/v1/deployments", "/api/v1/deployments/{id}", "/api/v1/deployments/{id}/scale", "/api/v1/deployments/{id}/abort"] {
        assert!(doc["paths"][p].is_object(), "{p} is in the OpenAPI document");
    }

    // Scale web up: the plan first (nothing changes), then applied.
    let scale = |n: u32, apply: bool| json!({"node": "web", "multiplicity": n, "apply": apply});
    let (s, plan) = app.call(Method::POST, &format!("{path}/scale"), &alice, Some(scale(3, false))).await;
    assert_eq!(s, 200, "{plan}");
    assert_eq!(
        (&plan["from"], &plan["to"], &plan["launch"], &plan["terminate"], &plan["applied"]),
        (&json!(2), &json!(3), &json!([3]), &json!([]), &json!(false))
    );
    let (_, same) = app.call(Method::GET, &path, &alice, None).await;
    assert_eq!(node(&same, "web")["vms"].as_array().unwrap().len(), 2, "a plan changes nothing");
    let (s, applied) = app.call(Method::POST, &format!("{path}/scale"), &alice, Some(scale(3, true))).await;
    assert_eq!((s, &applied["launch"], &applied["applied"]), (200, &json!([3]), &json!(true)), "{applied}");
    let d = drive_until(&app, &alice, &path, "web has 3 running VMs", |d| {
        d["state"] == "ready" && node(d, "web")["vms"].as_array().unwrap().iter().filter(|m| m["vm_state"] == "running").count() == 3
    })
    .await;
    // Down to 1: the highest-numbered go.
    let (s, down) = app.call(Method::POST, &format!("{path}/scale"), &alice, Some(scale(1, false))).await;
    assert_eq!(s, 200, "{down}");
    let gone: Vec<i64> = down["terminate"].as_array().unwrap().iter().map(|t| t["index"].as_i64().unwrap()).collect();
    let mut gone_sorted = gone.clone();
    gone_sorted.sort_unstable();
    assert_eq!(gone_sorted, vec![2, 3], "{down}");
    let web3 = node(&d, "web")["vms"].as_array().unwrap().iter().find(|m| m["index"] == 3).unwrap()["vm_id"].clone();
    assert!(down["terminate"].as_array().unwrap().iter().any(|t| t["vm_id"] == web3), "{down}");

    // Bad bodies: 400 naming the field; unknown ids 404.
    let (s, b) = app.call(Method::POST, &format!("{path}/scale"), &alice, Some(json!({"node": "web", "multiplicity": 101}))).await;
    assert_eq!(error(s, &b).0, 400, "{b}");
    let (s, b) = app.call(Method::POST, &format!("{path}/scale"), &alice, Some(json!({"node": "nope", "multiplicity": 1}))).await;
    assert!(s == 400 || s == 404, "{s} {b}");
    let (s, b) = app.call(Method::GET, "/api/v1/deployments/dep-0000000000000000", &alice, None).await;
    assert_eq!(error(s, &b), (404, "not_found".into(), String::new()));
    let (s, b) = app.call(Method::GET, "/api/v1/deployments/not-an-id", &alice, None).await;
    assert_eq!(error(s, &b).0, 404, "{b}");
    let (s, b) = app.call(Method::GET, &format!("{path}?include=everything"), &alice, None).await;
    assert_eq!(error(s, &b).0, 400, "{b}");

    // Terminate: terminating; a second operation meanwhile is refused with 409; terminating again is the same.
    let (s, t) = app.call(Method::DELETE, &path, &alice, None).await;
    assert_eq!(s, 204, "{t}");
    let (_, t) = app.call(Method::GET, &path, &alice, None).await;
    // The driver (not run in tests but by hand) has not finished it: still terminating.
    assert_eq!((&t["state"], &t["operation"]), (&json!("terminating"), &json!("terminate")), "{t}");
    let (s, b) = app.call(Method::POST, &format!("{path}/scale"), &alice, Some(scale(2, true))).await;
    assert_eq!(error(s, &b), (409, "conflict".into(), String::new()), "{b}");
    assert!(b["error"]["message"].as_str().unwrap().contains("terminat"), "names the operation in progress: {b}");
    let (s, b) = app.call(Method::POST, &format!("{path}/abort"), &alice, Some(json!({"message": "stop"}))).await;
    assert_eq!(error(s, &b).0, 409, "{b}");
    let (s, again) = app.call(Method::DELETE, &path, &alice, None).await;
    assert_eq!(s, 204, "{again}");
    let d = drive_until(&app, &alice, &path, "terminated", |d| d["state"] == "terminated").await;
    assert_eq!(d["operation"], Value::Null);
    let (_, vms) = app.call(Method::GET, "/api/v1/vms", &alice, None).await;
    for v in vms["vms"].as_array().unwrap() {
        assert!(["terminated", "shutting-down"].contains(&v["state"].as_str().unwrap()), "no VM left live: {v}");
    }
    app.stop().await;
}
db_url_test!(deploy_drive_scale_terminate, super::deploy_drive_scale_terminate);

async fn projects_viewers_and_refusals(db_url: Option<String>) {
    let app = with_lamp(db_url).await;
    let (admin, alice) = setup(&app).await;
    let bob = app.user(&admin, "bob").await;
    let vic = app.user(&admin, "vic").await;
    let (s, b) = app.call(Method::POST, "/api/v1/projects", &alice, Some(json!({"name": "team-a"}))).await;
    assert_eq!(s, 201, "{b}");
    let (s, b) = app.call(Method::PUT, "/api/v1/projects/team-a/members/vic", &alice, Some(json!({"role": "viewer"}))).await;
    assert!(s == 200 || s == 201, "{b}");

    // alice deploys in team-a.
    let (s, d) = app.call(Method::POST, "/api/v1/deployments?project=team-a", &alice, Some(lamp_body())).await;
    assert_eq!(s, 201, "{d}");
    assert_eq!(d["project"], "team-a");
    let id = d["id"].as_str().unwrap().to_string();
    let path = format!("/api/v1/deployments/{id}?project=team-a");

    // The viewer reads it, and is refused any change.
    let (s, b) = app.call(Method::GET, &path, &vic, None).await;
    assert_eq!((s, b["id"].as_str()), (200, Some(id.as_str())), "{b}");
    let (s, b) = app.call(Method::GET, "/api/v1/deployments?project=team-a", &vic, None).await;
    assert_eq!((s, b["deployments"].as_array().unwrap().len()), (200, 1), "{b}");
    let (s, b) = app.call(Method::DELETE, &path, &vic, None).await;
    assert_eq!(error(s, &b).0, 403, "{b}");
    let (s, b) = app
        .call(
            Method::POST,
            &format!("/api/v1/deployments/{id}/scale?project=team-a"),
            &vic,
            Some(json!({"node": "web", "multiplicity": 3, "apply": true})),
        )
        .await;
    assert_eq!(error(s, &b).0, 403, "{b}");
    let (s, b) =
        app.call(Method::POST, &format!("/api/v1/deployments/{id}/abort?project=team-a"), &vic, Some(json!({"message": "no"}))).await;
    assert_eq!(error(s, &b).0, 403, "{b}");
    let (s, b) = app.call(Method::POST, "/api/v1/deployments?project=team-a", &vic, Some(lamp_body())).await;
    assert_eq!(error(s, &b).0, 403, "{b}");

    // Another project does not see it: 404, and an empty list; nor does alice's personal project list it.
    for (who, t) in [("bob", &bob), ("vic outside team-a", &vic)] {
        let (s, b) = app.call(Method::GET, &format!("/api/v1/deployments/{id}"), t, None).await;
        assert_eq!(error(s, &b).0, 404, "{who}: {b}");
        let (s, b) = app.call(Method::DELETE, &format!("/api/v1/deployments/{id}"), t, None).await;
        assert_eq!(error(s, &b).0, 404, "{who}: {b}");
        let (s, b) = app.call(Method::GET, "/api/v1/deployments", t, None).await;
        assert_eq!((s, b["deployments"].as_array().unwrap().len()), (200, 0), "{who}: {b}");
    }
    let (s, b) = app.call(Method::GET, "/api/v1/deployments?project=team-a", &bob, None).await;
    assert_eq!(error(s, &b).0, 404, "bob is no member of team-a: {b}");

    // Bad bodies: 400 naming the field; no such application 404.
    let mut bad = lamp_body();
    bad["on_failure"] = json!("explode");
    let (s, b) = app.call(Method::POST, "/api/v1/deployments", &alice, Some(bad)).await;
    assert_eq!(error(s, &b), (400, "invalid_request".into(), "on_failure".into()), "{b}");
    let mut bad = lamp_body();
    bad["timeout"] = json!("soon");
    let (s, b) = app.call(Method::POST, "/api/v1/deployments", &alice, Some(bad)).await;
    assert_eq!(error(s, &b), (400, "invalid_request".into(), "timeout".into()), "{b}");
    let mut bad = lamp_body();
    bad["placement"]["db"]["instance"] = json!("Not An Instance");
    let (s, b) = app.call(Method::POST, "/api/v1/deployments", &alice, Some(bad)).await;
    assert_eq!(error(s, &b), (400, "invalid_request".into(), "placement".into()), "{b}");
    let mut bad = lamp_body();
    bad["surprise"] = json!(1);
    let (s, b) = app.call(Method::POST, "/api/v1/deployments", &alice, Some(bad)).await;
    assert_eq!(error(s, &b).0, 400, "{b}");
    let mut bad = lamp_body();
    bad["application"] = json!("nothing-here");
    let (s, b) = app.call(Method::POST, "/api/v1/deployments", &alice, Some(bad)).await;
    assert_eq!(error(s, &b).0, 404, "{b}");

    // A quota too small for the whole deployment: 409, nothing launched.
    let (s, b) = app.call(Method::PUT, "/api/v1/system/config", &admin, Some(json!({"quota.enable": true}))).await;
    assert_eq!(s, 200, "{b}");
    let (s, b) = app.call(Method::PUT, "/api/v1/users/bob/quotas/sb2", &admin, Some(json!({"vm": 1}))).await;
    assert_eq!(s, 200, "{b}");
    let (s, b) = app.call(Method::POST, "/api/v1/deployments", &bob, Some(lamp_body())).await;
    assert_eq!(error(s, &b).1, "quota_exceeded", "{b}");
    assert_eq!(s, 409);
    let (_, vms) = app.call(Method::GET, "/api/v1/vms", &bob, None).await;
    assert_eq!(vms["vms"].as_array().unwrap().len(), 0, "nothing launched: {vms}");
    let (_, list) = app.call(Method::GET, "/api/v1/deployments", &bob, None).await;
    assert_eq!(list["deployments"].as_array().unwrap().len(), 0, "{list}");
    app.stop().await;
}
db_url_test!(projects_viewers_and_refusals, super::projects_viewers_and_refusals);
