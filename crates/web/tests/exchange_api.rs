//! Parameter exchange (issue 27), through a real server on port 0, on both
//! backends: a VM's credential reads only its own deployment's parameters,
//! sets only its node's declared outputs, long-polls, stops working when its
//! VM ends, and opens nothing else; a user's token does not open the
//! exchange. The served shell client runs for real with `sh` and curl.
//!
//! The deployments here are seeded directly (rows of migration 0029 around
//! VMs launched through the API), so these tests check the exchange alone;
//! the end-to-end deployment is in `deployments_e2e.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use cloudbroker_core::domain::{DeploymentId, UserName};
use cloudbroker_core::Actor;
use common::{TestApp, SUPER_PW};
use reqwest::Method;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const APP: &str = r#"
description: exchange test
inputs:
  - {name: site_title, default: Hello}
nodes:
  db:
    image: linux
    inputs:
      - {name: db_password, secret: true}
    outputs:
      - {name: port}
      - {name: root_key, secret: true}
  web:
    image: linux
    multiplicity: 2
    depends_on: [db]
    inputs:
      - {name: db_host}
      - {name: db_port}
      - {name: key}
    outputs:
      - {name: url}
mappings:
  web.db_host: db.hostname
  web.db_port: db.port
  web.key: db.root_key
"#;

/// A seeded deployment VM: its id and credential.
struct Vm {
    id: String,
    token: String,
}

async fn setup(app: &TestApp) -> String {
    let admin = app.token("super", SUPER_PW).await;
    let (s, b) = app
        .call(
            Method::POST,
            "/api/v1/images",
            &admin,
            Some(json!({"name": "linux", "mappings": {"sb": {"image_id": "ami-sandbox-debian-12", "instance_type": "t2.small"}}})),
        )
        .await;
    assert_eq!(s, 201, "{b}");
    let actor = Actor::new(UserName::parse("super").unwrap(), true);
    let name = cloudbroker_core::deployments::AppName::parse("exch").unwrap();
    app.broker.applications.save(&actor, &name, APP).await.unwrap();
    app.user(&admin, "alice").await
}

async fn pool(app: &TestApp) -> sqlx::AnyPool {
    sqlx::any::install_default_drivers();
    sqlx::AnyPool::connect(&app.db_url).await.unwrap()
}

/// Seeds deployment `dep` of alice with one VM per (node, idx), launched
/// through the API; returns them with their registered credentials. It is
/// `ready`, so that no driver acts on it.
async fn seed(app: &TestApp, alice: &str, dep: &str, members: &[(&str, i64)]) -> Vec<Vm> {
    let db = pool(app).await;
    let now = chrono::Utc::now().timestamp_millis();
    sqlx::query(
        "INSERT INTO deployments (id, name, app_name, app_version, user_name, project, state, on_failure, placement, created_at, updated_at) \
         VALUES ($1, $1, 'exch', 1, 'alice', 'alice', 'ready', 'keep', '{}', $2, $2)",
    )
    .bind(dep)
    .bind(now)
    .execute(&db)
    .await
    .unwrap();
    let mut out = Vec::new();
    for (node, idx) in members {
        let (s, b) = app
            .call(Method::POST, "/api/v1/vms", alice, Some(json!({"instance": "sb", "image": "linux", "name": format!("{node}-{idx}")})))
            .await;
        assert_eq!(s, 201, "{b}");
        let id = b["vms"][0]["id"].as_str().unwrap().to_string();
        sqlx::query(
            "INSERT INTO deployment_members (deployment_id, node, idx, attempt, vm_id, state, updated_at) VALUES ($1, $2, $3, 1, $4, 'running', $5)",
        )
        .bind(dep)
        .bind(*node)
        .bind(*idx)
        .bind(&id)
        .bind(now)
        .execute(&db)
        .await
        .unwrap();
        let token = app.broker.exchange.register_token(&DeploymentId::parse(dep).unwrap(), node, *idx, 1).await.unwrap();
        out.push(Vm { id, token });
    }
    db.close().await;
    out
}

async fn get(app: &TestApp, vm: &Vm, name: &str, wait: u64) -> (u16, Value) {
    app.call(Method::GET, &format!("/api/v1/exchange/params/{name}?wait={wait}"), &vm.token, None).await
}

async fn set(app: &TestApp, vm: &Vm, name: &str, value: &str) -> (u16, Value) {
    app.call(Method::PUT, &format!("/api/v1/exchange/params/{name}"), &vm.token, Some(json!({"value": value}))).await
}

const DEP_A: &str = "dep-00000000000000aa";
const DEP_B: &str = "dep-00000000000000bb";

app_test!(a_token_reads_only_its_own_deployment, |app: TestApp| async move {
    let alice = setup(&app).await;
    let a = seed(&app, &alice, DEP_A, &[("db", 1), ("web", 1), ("web", 2)]).await;
    let b = seed(&app, &alice, DEP_B, &[("db", 1), ("web", 1)]).await;
    assert_eq!(set(&app, &a[0], "port", "5432").await.0, 204);
    assert_eq!(set(&app, &b[0], "port", "6543").await.0, 204);
    // Each web VM reads its own deployment's db, by every name that leads there.
    for (vm, want) in [(&a[1], "5432"), (&a[2], "5432"), (&b[1], "6543")] {
        for name in ["db_port", "db.port", "db.1.port"] {
            let (s, v) = get(&app, vm, name, 0).await;
            assert_eq!((s, &v["value"]), (200, &json!(want)), "{name}: {v}");
            assert_eq!(v["name"], name);
        }
    }
    // The bare value with Accept: text/plain.
    let r = app
        .http
        .get(app.url("/api/v1/exchange/params/db.port"))
        .bearer_auth(&a[1].token)
        .header("accept", "text/plain")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
    assert_eq!(r.text().await.unwrap(), "5432");
    // Deployment inputs and defaults; a name that is nothing is a 400 naming it.
    assert_eq!(get(&app, &a[0], "site_title", 0).await.1["value"], "Hello");
    for bad in ["nope", "dbx.port", "db.9.nope", "web.0.url", "db.input.db_password", "Db.port"] {
        let (s, v) = get(&app, &a[1], bad, 0).await;
        assert_eq!((s, &v["error"]["field"]), (400, &json!("name")), "{bad}: {v}");
    }
    // Self: what the VM is.
    let (s, me) = app.call(Method::GET, "/api/v1/exchange/self", &a[2].token, None).await;
    assert_eq!(s, 200, "{me}");
    assert_eq!((&me["deployment"], &me["node"], &me["index"], &me["vm_id"]), (&json!(DEP_A), &json!("web"), &json!(2), &json!(a[2].id)));
    assert_eq!(me["inputs"][0]["mapped_from"], "db.hostname", "{me}");
    // A VM token opens nothing else: 401 on the user API, whatever the route.
    for (m, path) in
        [(Method::GET, "/api/v1/vms"), (Method::GET, "/api/v1/tokens"), (Method::GET, &format!("/api/v1/vms/{}", a[0].id) as &str)]
    {
        let (s, v) = app.call(m, path, &a[0].token, None).await;
        assert_eq!((s, &v["error"]["code"]), (401, &json!("unauthenticated")), "{path}: {v}");
    }
    let (s, _) = app.call(Method::POST, &format!("/api/v1/vms/{}/terminate", a[0].id), &a[0].token, None).await;
    assert_eq!(s, 401);
    // A user's token (even an admin's), none, or a made-up one, does not open the exchange.
    let admin = app.token("super", SUPER_PW).await;
    for t in [alice.as_str(), admin.as_str(), "cbvm_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"] {
        let (s, v) = app.call(Method::GET, "/api/v1/exchange/params/db.port", t, None).await;
        assert_eq!((s, &v["error"]["code"]), (401, &json!("unauthenticated")), "{v}");
        let (s, _) = app.call(Method::PUT, "/api/v1/exchange/params/port", t, Some(json!({"value": "1"}))).await;
        assert_eq!(s, 401);
    }
    let r = app.http.get(app.url("/api/v1/exchange/self")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    // Nothing of B changed through A.
    assert_eq!(get(&app, &b[1], "db.port", 0).await.1["value"], "6543");
    app.stop().await;
});

app_test!(set_refuses_what_the_node_does_not_declare, |app: TestApp| async move {
    let alice = setup(&app).await;
    let a = seed(&app, &alice, DEP_A, &[("db", 1), ("web", 1)]).await;
    for (vm, name) in
        [(&a[0], "nope"), (&a[0], "hostname"), (&a[0], "db_password"), (&a[1], "port"), (&a[1], "db.1.port"), (&a[0], "db.1.port")]
    {
        let (s, v) = set(&app, vm, name, "x").await;
        assert_eq!((s, &v["error"]["field"]), (400, &json!("name")), "{name}: {v}");
    }
    // Text bodies work too; a value over 32 KiB does not.
    let r = app
        .http
        .put(app.url("/api/v1/exchange/params/url"))
        .bearer_auth(&a[1].token)
        .header("content-type", "text/plain")
        .body("http://web-1/ \"quoted\"\nline 2")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(get(&app, &a[0], "web.1.url", 0).await.1["value"], "http://web-1/ \"quoted\"\nline 2");
    let (s, v) = set(&app, &a[1], "url", &"x".repeat(32 * 1024 + 1)).await;
    assert_eq!((s, &v["error"]["field"]), (400, &json!("value")), "{v}");
    // Nothing undeclared was stored.
    let names: Vec<String> = app.broker.store().deployment_params(DEP_A).await.unwrap().into_iter().map(|p| p.name).collect();
    assert_eq!(names, ["web.1.url"]);
    app.stop().await;
});

app_test!(a_long_poll_answers_as_soon_as_the_value_is_set, |app: TestApp| async move {
    let alice = setup(&app).await;
    let a = seed(&app, &alice, DEP_A, &[("db", 1), ("web", 1)]).await;
    // Not set, no wait: 404 not_set at once; a wait over 60 s is refused.
    let (s, v) = get(&app, &a[1], "db_host", 0).await;
    assert_eq!((s, &v["error"]["code"]), (404, &json!("not_set")), "{v}");
    assert_eq!(get(&app, &a[1], "db_host", 61).await.0, 400);
    let started = Instant::now();
    let waiting = {
        let http = app.http.clone();
        let url = app.url("/api/v1/exchange/params/db_host?wait=30");
        let token = a[1].token.clone();
        tokio::spawn(async move {
            let r = http.get(url).bearer_auth(token).send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap(), Instant::now())
        })
    };
    // The wait is listed while it waits.
    let mut listed = Vec::new();
    for _ in 0..50 {
        listed = app.broker.store().deployment_waits(DEP_A).await.unwrap();
        if !listed.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(listed.iter().map(|w| (w.node.as_str(), w.idx, w.param.as_str())).collect::<Vec<_>>(), [("web", 1, "db_host")]);
    assert!(!waiting.is_finished());
    // The broker publishes db's hostname: the waiting VM gets it at once.
    let set_at = Instant::now();
    app.broker.exchange.put_param(&DeploymentId::parse(DEP_A).unwrap(), "db.1.hostname", "10.0.0.7", false, "broker").await.unwrap();
    let (s, v, answered) = waiting.await.unwrap();
    assert_eq!((s, &v["value"]), (200, &json!("10.0.0.7")), "{v}");
    assert!(answered.duration_since(set_at) < Duration::from_secs(2), "answered {:?} after the set", answered.duration_since(set_at));
    assert!(started.elapsed() < Duration::from_secs(20));
    // Done waiting: no longer listed.
    assert!(app.broker.store().deployment_waits(DEP_A).await.unwrap().is_empty());
    // A wait that runs out: 404 not_set after about `wait`, and the wait is gone.
    let t = Instant::now();
    let (s, v) = get(&app, &a[1], "db_port", 1).await;
    assert_eq!((s, &v["error"]["code"]), (404, &json!("not_set")), "{v}");
    assert!(t.elapsed() >= Duration::from_millis(900), "{:?}", t.elapsed());
    assert!(app.broker.store().deployment_waits(DEP_A).await.unwrap().is_empty());
    // Set through the API by the db VM (another request) also wakes a waiter.
    let waiting = {
        let http = app.http.clone();
        let url = app.url("/api/v1/exchange/params/db_port?wait=30");
        let token = a[1].token.clone();
        tokio::spawn(async move { http.get(url).bearer_auth(token).send().await.unwrap().json::<Value>().await.unwrap() })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let set_at = Instant::now();
    assert_eq!(set(&app, &a[0], "port", "5432").await.0, 204);
    assert_eq!(waiting.await.unwrap()["value"], "5432");
    assert!(set_at.elapsed() < Duration::from_secs(2));
    app.stop().await;
});

app_test!(secrets_are_sealed_and_read_back_by_vms_only, |app: TestApp| async move {
    let alice = setup(&app).await;
    let a = seed(&app, &alice, DEP_A, &[("db", 1), ("web", 1)]).await;
    let secret = "s3cret-root-key-0xDEADBEEF";
    assert_eq!(set(&app, &a[0], "root_key", secret).await.0, 204);
    let p = app.broker.store().deployment_param(DEP_A, "db.1.root_key").await.unwrap().unwrap();
    assert!(p.secret && p.value != secret, "{p:?}");
    assert!(!app.database_text().await.contains(secret), "a secret is stored in clear");
    // A VM reads it back in clear, by the mapped input or the output's name.
    assert_eq!(get(&app, &a[1], "key", 0).await.1["value"], secret);
    assert_eq!(get(&app, &a[1], "db.root_key", 0).await.1["value"], secret);
    // A secret input given at deploy, sealed by put_param.
    let dep = DeploymentId::parse(DEP_A).unwrap();
    app.broker.exchange.put_param(&dep, "db.input.db_password", "pw-123456", true, "alice").await.unwrap();
    assert_eq!(get(&app, &a[0], "db_password", 0).await.1["value"], "pw-123456");
    assert!(!app.database_text().await.contains("pw-123456"));
    // The rotation keeps the key the sealed values need.
    let ids = app.broker.exchange.sealing_key_ids().await.unwrap();
    assert_eq!(ids, app.broker.vault.key_ids());
    app.stop().await;
});

app_test!(a_token_stops_working_once_its_vm_ends, |app: TestApp| async move {
    let alice = setup(&app).await;
    let a = seed(&app, &alice, DEP_A, &[("db", 1), ("web", 1), ("web", 2)]).await;
    assert_eq!(app.call(Method::GET, "/api/v1/exchange/self", &a[0].token, None).await.0, 200);
    // The user terminates db's VM: its token is refused at once.
    let (s, v) = app.call(Method::POST, &format!("/api/v1/vms/{}/terminate", a[0].id), &alice, None).await;
    assert!(s == 200 || s == 204, "{s} {v}");
    let (s, v) = app.call(Method::GET, "/api/v1/exchange/self", &a[0].token, None).await;
    assert_eq!((s, &v["error"]["code"]), (401, &json!("unauthenticated")), "{v}");
    assert_eq!(set(&app, &a[0], "port", "1").await.0, 401);
    // The others still work; revoking one slot's credentials (a scale down) ends that one only.
    assert_eq!(app.call(Method::POST, "/api/v1/exchange/ready", &a[1].token, None).await.0, 204);
    assert_eq!(app.broker.store().revoke_deployment_tokens(DEP_A, Some("web"), Some(2)).await.unwrap(), 1);
    assert_eq!(app.call(Method::GET, "/api/v1/exchange/self", &a[2].token, None).await.0, 401);
    assert_eq!(app.call(Method::GET, "/api/v1/exchange/self", &a[1].token, None).await.0, 200);
    // Registering again (user data rebuilt) does not bring a revoked one back.
    let again = app.broker.exchange.register_token(&DeploymentId::parse(DEP_A).unwrap(), "web", 2, 1).await.unwrap();
    assert_eq!(again, a[2].token);
    assert_eq!(app.call(Method::GET, "/api/v1/exchange/self", &a[2].token, None).await.0, 401);
    app.stop().await;
});

app_test!(ready_and_abort_reach_the_driver, |app: TestApp| async move {
    let alice = setup(&app).await;
    let a = seed(&app, &alice, DEP_A, &[("db", 1), ("web", 1)]).await;
    assert_eq!(app.call(Method::POST, "/api/v1/exchange/ready", &a[0].token, None).await.0, 204);
    let db = pool(&app).await;
    let ready: Vec<(String, Option<i64>)> =
        sqlx::query_as("SELECT node, ready_at FROM deployment_members WHERE deployment_id = $1 ORDER BY node")
            .bind(DEP_A)
            .fetch_all(&db)
            .await
            .unwrap();
    assert!(ready[0].1.is_some() && ready[1].1.is_none(), "{ready:?}");
    let (s, v) = app.call(Method::POST, "/api/v1/exchange/abort", &a[1].token, Some(json!({"message": ""}))).await;
    assert_eq!((s, &v["error"]["field"]), (400, &json!("message")), "{v}");
    let (s, v) = app.call(Method::POST, "/api/v1/exchange/abort", &a[1].token, Some(json!({"message": "db unreachable"}))).await;
    assert_eq!(s, 204, "{v}");
    // The first abort wins.
    let r = app
        .http
        .post(app.url("/api/v1/exchange/abort"))
        .bearer_auth(&a[0].token)
        .header("content-type", "text/plain")
        .body("later")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let (abort,): (Option<String>,) =
        sqlx::query_as("SELECT abort_requested FROM deployments WHERE id = $1").bind(DEP_A).fetch_one(&db).await.unwrap();
    assert_eq!(abort.as_deref(), Some("web.1: db unreachable"));
    db.close().await;
    app.stop().await;
});

app_test!(the_served_client_runs_for_real, |app: TestApp| async move {
    // The script is served without auth, as a shell script.
    let r = app.http.get(app.url("/client/cloudbroker-client.sh")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/x-shellscript"));
    let script = r.text().await.unwrap();
    assert!(script.starts_with("#!/bin/sh\n"));
    if std::process::Command::new("sh").args(["-c", "command -v curl"]).output().map(|o| !o.status.success()).unwrap_or(true) {
        eprintln!("NOTICE: curl is not installed: the served client was not run (SKIPPED)");
        app.stop().await;
        return;
    }
    let alice = setup(&app).await;
    let a = seed(&app, &alice, DEP_A, &[("db", 1), ("web", 1)]).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cloudbroker-client");
    std::fs::write(&path, &script).unwrap();
    // Each VM's env file, as its boot script writes it.
    let env_of = |vm: &Vm, name: &str| {
        let f = dir.path().join(name);
        std::fs::write(&f, format!("CLOUDBROKER_URL='{}'\nCLOUDBROKER_TOKEN='{}'\n", app.base, vm.token)).unwrap();
        f
    };
    let (db_env, web_env) = (env_of(&a[0], "db.env"), env_of(&a[1], "web.env"));
    let run = |env: std::path::PathBuf, args: Vec<String>| {
        let path = path.clone();
        tokio::task::spawn_blocking(move || {
            std::process::Command::new("sh")
                .arg(&path)
                .args(&args)
                .env("CLOUDBROKER_ENV_FILE", &env)
                .env_remove("CLOUDBROKER_URL")
                .env_remove("CLOUDBROKER_TOKEN")
                .output()
                .unwrap()
        })
    };
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    // web waits for db.port while db sets it.
    let waiting = run(web_env.clone(), s(&["get", "db_port", "30"]));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let out = run(db_env.clone(), s(&["set", "port", "5432"])).await.unwrap();
    assert!(out.status.success(), "set: {}", String::from_utf8_lossy(&out.stderr));
    let out = waiting.await.unwrap();
    assert!(out.status.success(), "get: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "5432\n");
    // Values with spaces and quotes travel unchanged.
    let odd = "it's \"odd\" $HOME \\n";
    let out = run(web_env.clone(), s(&["set", "url", odd])).await.unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = run(db_env.clone(), s(&["get", "web.1.url"])).await.unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), format!("{odd}\n"));
    // A refused set: exit 2 with the broker's message; a timeout: exit 1.
    let out = run(web_env.clone(), s(&["set", "port", "1"])).await.unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not an output"), "{}", String::from_utf8_lossy(&out.stderr));
    let out = run(web_env.clone(), s(&["get", "db.root_key", "1"])).await.unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not set within 1s"));
    // ready and abort.
    let out = run(web_env.clone(), s(&["ready"])).await.unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = run(db_env.clone(), s(&["abort", "disk", "full"])).await.unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let db = pool(&app).await;
    let (abort,): (Option<String>,) =
        sqlx::query_as("SELECT abort_requested FROM deployments WHERE id = $1").bind(DEP_A).fetch_one(&db).await.unwrap();
    assert_eq!(abort.as_deref(), Some("db.1: disk full"));
    db.close().await;
    app.stop().await;
});
