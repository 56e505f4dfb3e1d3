//! The JSON API's contract beyond single resources: every list is paginated
//! with keyset cursors (stable, no repeats, on both backends), a wrong method
//! is a JSON 405 with `Allow`, an unknown path under `/api/v1` a JSON 404, and
//! the generated document says what the server does (path parameters, 204,
//! nullable fields, closed bodies).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::zombie_processes)]

mod common;

use common::{TestApp, SUPER_PW};
use reqwest::Method;
use serde_json::{json, Value};

/// Every item of a list, page by page (`limit` items a page), with the number of pages.
async fn walk(app: &TestApp, token: &str, path: &str, key: &str, limit: u32) -> (Vec<Value>, usize) {
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let sep = if path.contains('?') { '&' } else { '?' };
        let url = match &cursor {
            Some(c) => format!("{path}{sep}limit={limit}&cursor={c}"),
            None => format!("{path}{sep}limit={limit}"),
        };
        let (s, b) = app.call(Method::GET, &url, token, None).await;
        assert_eq!(s, 200, "{url}: {b}");
        let page = b[key].as_array().unwrap_or_else(|| panic!("{url}: no '{key}' in {b}"));
        assert!(page.len() <= limit as usize, "{url}: {b}");
        items.extend(page.iter().cloned());
        pages += 1;
        match b.get("next_cursor") {
            None => break,
            Some(c) => cursor = Some(c.as_str().unwrap().to_string()),
        }
        assert!(pages < 100, "{url}: no end");
    }
    (items, pages)
}

fn names(items: &[Value], field: &str) -> Vec<String> {
    items.iter().map(|i| i[field].as_str().unwrap().to_string()).collect()
}

app_test!(every_list_is_paginated, |app: TestApp| async move {
    let admin = app.token("super", SUPER_PW).await;
    for n in ["u1", "u2", "u3", "u4", "u5"] {
        app.user(&admin, n).await;
    }
    // Users: by name, in pages of 2, each once.
    let (users, pages) = walk(&app, &admin, "/api/v1/users", "users", 2).await;
    assert_eq!(names(&users, "name"), ["super", "u1", "u2", "u3", "u4", "u5"]);
    assert_eq!(pages, 3);
    // Tokens: newest first; a token made between two pages shows on none of the later ones.
    for i in 0..4 {
        // Distinct creation times, so that the order is known.
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        let (s, b) = app.call(Method::POST, "/api/v1/tokens", &admin, Some(json!({"name": format!("t{i}")}))).await;
        assert_eq!(s, 201, "{b}");
    }
    let (_, first) = app.call(Method::GET, "/api/v1/tokens?limit=2", &admin, None).await;
    assert_eq!(names(first["tokens"].as_array().unwrap(), "name"), ["t3", "t2"]);
    let cursor = first["next_cursor"].as_str().unwrap().to_string();
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    app.call(Method::POST, "/api/v1/tokens", &admin, Some(json!({"name": "late"}))).await;
    let (_, rest) = app.call(Method::GET, &format!("/api/v1/tokens?limit=10&cursor={cursor}"), &admin, None).await;
    assert_eq!(names(rest["tokens"].as_array().unwrap(), "name"), ["t1", "t0", "api"]);
    assert!(rest.get("next_cursor").is_none(), "{rest}");
    let (all, _) = walk(&app, &admin, "/api/v1/users/super/tokens", "tokens", 3).await;
    assert_eq!(names(&all, "name"), ["late", "t3", "t2", "t1", "t0", "api"]);
    // Images: stored and from files merged by name.
    std::fs::create_dir_all(app.dir.path().join("connectors.d/images")).unwrap();
    std::fs::write(app.dir.path().join("connectors.d/images/f.conf"), "b-file.sb = ami-f1\nd-file.sb = ami-f2\n").unwrap();
    let (s, b) = app.call(Method::POST, "/api/v1/connectors/reload", &admin, None).await;
    assert_eq!(s, 200, "{b}");
    for n in ["a-api", "c-api", "e-api"] {
        let (s, b) =
            app.call(Method::POST, "/api/v1/images", &admin, Some(json!({"name": n, "mappings": {"sb": {"image_id": "ami-1"}}}))).await;
        assert_eq!(s, 201, "{b}");
    }
    for limit in [1, 2, 5] {
        let (images, _) = walk(&app, &admin, "/api/v1/images", "images", limit).await;
        assert_eq!(names(&images, "name"), ["a-api", "b-file", "c-api", "d-file", "e-api"], "limit {limit}");
        assert_eq!(images[1]["mappings"]["sb"]["image_id"], "ami-f1");
        assert_eq!(images[2]["mappings"]["sb"]["image_id"], "ami-1");
    }
    // Credentials: a user's by instance; shared ones by name then instance, with grants.
    for inst in ["sb2", "sb"] {
        let body = json!({"access_key_id": "AKIAEXAMPLE", "secret_access_key": "secret", "force": true});
        let (s, b) = app.call(Method::PUT, &format!("/api/v1/users/u1/credentials/{inst}"), &admin, Some(body)).await;
        assert_eq!(s, 200, "{b}");
    }
    let (creds, pages) = walk(&app, &admin, "/api/v1/users/u1/credentials", "credentials", 1).await;
    assert_eq!((names(&creds, "instance"), pages), (vec!["sb".to_string(), "sb2".to_string()], 2));
    assert!(creds.iter().all(|c| c["secret_access_key"] == "********"));
    for (inst, name) in [("sb", "team-b"), ("sb2", "team-a"), ("sb", "team-a")] {
        let body = json!({"access_key_id": "AKIAEXAMPLE", "secret_access_key": "secret", "force": true});
        let (s, b) = app.call(Method::PUT, &format!("/api/v1/system/credentials/{inst}/{name}"), &admin, Some(body)).await;
        assert_eq!(s, 200, "{b}");
    }
    app.call(Method::PUT, "/api/v1/system/credentials/sb2/team-a/grants", &admin, Some(json!({"users": ["u2"]}))).await;
    let (shared, _) = walk(&app, &admin, "/api/v1/system/credentials", "credentials", 2).await;
    let keys: Vec<String> =
        shared.iter().map(|c| format!("{}/{}", c["owner"].as_str().unwrap(), c["instance"].as_str().unwrap())).collect();
    assert_eq!(keys, ["team-a/sb", "team-a/sb2", "team-b/sb"]);
    assert_eq!(shared[1]["granted_to"], json!(["u2"]));
    // Bad limits and cursors are refused, naming the parameter.
    for q in ["limit=0", "limit=1001", "limit=", "limit=x", "cursor=abc", "cursor=1.zz"] {
        for list in ["/api/v1/users", "/api/v1/images", "/api/v1/tokens", "/api/v1/system/credentials", "/api/v1/users/u1/credentials"] {
            let (s, b) = app.call(Method::GET, &format!("{list}?{q}"), &admin, None).await;
            assert_eq!(s, 400, "{list}?{q}: {b}");
            assert_eq!(b["error"]["field"], if q.starts_with("limit") { "limit" } else { "cursor" }, "{list}?{q}: {b}");
        }
    }
});

app_test!(methods_and_paths_answer_in_the_api_shape, |app: TestApp| async move {
    let admin = app.token("super", SUPER_PW).await;
    for (m, path, allow) in [
        (Method::PATCH, "/api/v1/users", "GET, POST"),
        (Method::DELETE, "/api/v1/images", "GET, POST"),
        (Method::POST, "/api/v1/users/alice", "GET"),
        (Method::DELETE, "/api/v1/vms/vm-x", "GET"),
        (Method::GET, "/api/v1/system/keys/rotate", "POST"),
    ] {
        let r = app.http.request(m.clone(), app.url(path)).bearer_auth(&admin).send().await.unwrap();
        assert_eq!(r.status(), 405, "{m} {path}");
        assert_eq!(r.headers()["allow"], allow, "{m} {path}");
        let b: Value = r.json().await.unwrap();
        assert_eq!(b["error"]["code"], "method_not_allowed", "{m} {path}: {b}");
    }
    for path in ["/api/v1/nothing", "/api/v1/users/alice/nothing", "/api/v1/vms/vm-1/explode"] {
        let r = app.http.get(app.url(path)).bearer_auth(&admin).send().await.unwrap();
        assert_eq!(r.status(), 404, "{path}");
        let b: Value = r.json().await.unwrap();
        assert_eq!(b["error"]["code"], "not_found", "{path}: {b}");
    }
    // A body that is not an object is refused in the API's shape, and nothing is stored.
    for body in [json!([true]), json!("x"), json!(null)] {
        let (s, b) = app.call(Method::POST, "/api/v1/users", &admin, Some(body.clone())).await;
        assert_eq!((s, &b["error"]["code"]), (400, &json!("invalid_request")), "{body}: {b}");
    }
    let (_, users) = app.call(Method::GET, "/api/v1/users", &admin, None).await;
    assert_eq!(users["users"].as_array().unwrap().len(), 1);
    // Whole numbers may be written as floats; fractions are refused.
    app.user(&admin, "alice").await;
    let (s, b) = app.call(Method::PUT, "/api/v1/users/alice/quotas/sb", &admin, Some(json!({"vm": 3.0}))).await;
    assert_eq!((s, &b["limit"]), (200, &json!(3)), "{b}");
    let (s, b) = app.call(Method::PUT, "/api/v1/users/alice/quotas/sb", &admin, Some(json!({"vm": 3.5}))).await;
    assert_eq!(s, 400, "{b}");
});

#[tokio::test]
async fn the_document_describes_what_the_server_does() {
    let app = TestApp::sqlite().await;
    let r = app.http.get(app.url("/api/v1/openapi.json")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let doc: Value = r.json().await.unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    // Path parameters are declared.
    let params = &paths["/api/v1/users/{user}/credentials/{instance}"]["put"]["parameters"];
    let declared: Vec<&str> =
        params.as_array().unwrap().iter().filter(|p| p["in"] == "path").map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(declared, ["user", "instance"]);
    // Every DELETE answers 204; every operation documents 401 and its descriptions.
    for (path, item) in paths {
        for (method, op) in item.as_object().unwrap() {
            if method == "delete" {
                assert!(op["responses"].get("204").is_some(), "{method} {path}");
            }
            // Every operation but the open document says it refuses unknown callers.
            assert_eq!(op["responses"].get("401").is_some(), path != "/api/v1/openapi.json", "{method} {path}");
            for (status, resp) in op["responses"].as_object().unwrap() {
                assert!(resp["description"].as_str().is_some_and(|d| !d.is_empty()), "{method} {path} {status}");
            }
        }
    }
    assert!(paths["/api/v1/vms/{id}/start"]["post"]["responses"].get("409").is_some());
    // Nullable fields are nullable; required ones required; closed bodies closed.
    let schemas = &doc["components"]["schemas"];
    assert_eq!(schemas["Token"]["properties"]["expires_at"]["type"], json!(["string", "null"]));
    assert_eq!(schemas["NewImage"]["required"], json!(["name"]));
    assert_eq!(schemas["NewUser"]["properties"]["password"]["minLength"], 8);
    for body in ["NewUser", "NewImage", "LaunchBody", "CredentialBody", "QuotaBody", "Role", "Password"] {
        assert_eq!(schemas[body]["additionalProperties"], false, "{body}");
    }
    let code = schemas["ErrorDetail"]["properties"]["code"]["pattern"].as_str().unwrap();
    for c in ["invalid_request", "unauthenticated", "forbidden", "not_found", "method_not_allowed", "conflict", "too_large", "throttled"] {
        assert!(code.contains(c), "{c} in {code}");
    }
    // The human-readable reference lists every operation.
    let page = app.http.get(app.url("/api/docs")).send().await.unwrap().text().await.unwrap();
    for path in paths.keys() {
        assert!(page.contains(&path.replace('{', "&#123;").replace('}', "&#125;")) || page.contains(path.as_str()), "{path} on /api/docs");
    }
    app.stop().await;
}
