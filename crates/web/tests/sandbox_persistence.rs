//! The sandbox keeps its simulated cloud in the broker's database: a VM
//! launched before a restart is still there (and running) after it, not
//! marked terminated by the first reconcile pass; two replicas on one
//! database see one sandbox, and a change made through one is seen by the
//! other at once. On SQLite and PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::zombie_processes)]

mod common;

use cloudbroker_core::testing::{instance, user};
use common::{TestApp, SUPER_PW};
use reqwest::Method;
use serde_json::json;

async fn cloud_states(app: &TestApp, who: &str) -> Vec<(String, String)> {
    let snap = app.broker.registry.snapshot();
    let conn = snap.instance("sb").unwrap().connector.clone().unwrap();
    let (creds, _) = app.broker.vault.credentials_for(&user(who), &instance("sb")).await.unwrap();
    let mut v: Vec<(String, String)> = conn
        .describe_instances(&creds, &cloudbroker_connector_api::DescribeFilter::default())
        .await
        .unwrap()
        .into_iter()
        .map(|v| (v.id, v.state.to_string()))
        .collect();
    v.sort();
    v
}

async fn sql(url: &str, q: &str) {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(url).await.unwrap();
    sqlx::query(q).execute(&pool).await.unwrap();
    pool.close().await;
}

async fn world_row(url: &str) -> String {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(url).await.unwrap();
    let (state,): (String,) = sqlx::query_as("SELECT state FROM sandbox_worlds WHERE instance = 'sb'").fetch_one(&pool).await.unwrap();
    pool.close().await;
    state
}

app_test!(the_sandbox_survives_a_restart_and_is_shared_by_replicas, |app: TestApp| async move {
    let admin = app.token("super", SUPER_PW).await;
    let image = json!({"name": "ubuntu", "mappings": {"sb": {"image_id": "ami-sandbox-ubuntu-2204"}}});
    assert_eq!(app.call(Method::POST, "/api/v1/images", &admin, Some(image)).await.0, 201);
    let alice = app.user(&admin, "alice").await;
    let (s, b) = app.call(Method::POST, "/api/v1/vms", &alice, Some(json!({"instance": "sb", "image": "ubuntu", "count": 2}))).await;
    assert_eq!(s, 201, "{b}");
    let ids: Vec<String> = b["vms"].as_array().unwrap().iter().map(|v| v["id"].as_str().unwrap().to_string()).collect();
    let (s, _) = app.call(Method::POST, &format!("/api/v1/vms/{}/terminate", ids[1]), &alice, None).await;
    assert_eq!(s, 200);
    let before = cloud_states(&app, "alice").await;
    assert_eq!(before.len(), 2, "{before:?}");
    // The sandbox's world is the database row, not this process's memory.
    let stored = world_row(&app.db_url).await;
    assert!(before.iter().all(|(id, _)| stored.contains(id.as_str())), "{stored}");

    // A second replica on the same database sees the same sandbox...
    let other = TestApp::start(Some(app.db_url.clone()), tempfile::tempdir().unwrap()).await.unwrap();
    assert_eq!(cloud_states(&other, "alice").await, before);
    // ...and what it changes is seen by the first at once.
    let other_alice = other.token("alice", "alice-password").await;
    let (s, b) = other.call(Method::POST, "/api/v1/vms", &other_alice, Some(json!({"instance": "sb", "image": "ubuntu"}))).await;
    assert_eq!(s, 201, "{b}");
    let third = b["vms"][0]["cloud_id"].as_str().unwrap().to_string();
    let now = cloud_states(&app, "alice").await;
    assert_eq!(now.len(), 3, "{now:?}");
    assert!(now.iter().any(|(id, _)| *id == third), "{now:?}");
    // Concurrent launches through both replicas: none is lost.
    let mut tasks = Vec::new();
    for i in 0..16 {
        let (http, url, token) = if i % 2 == 0 {
            (app.http.clone(), app.url("/api/v1/vms"), alice.clone())
        } else {
            (other.http.clone(), other.url("/api/v1/vms"), other_alice.clone())
        };
        tasks.push(tokio::spawn(async move {
            http.post(url).bearer_auth(token).json(&json!({"instance": "sb", "image": "ubuntu"})).send().await.unwrap().status().as_u16()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 201);
    }
    assert_eq!(cloud_states(&other, "alice").await.len(), 3 + 16);
    // Each sandbox account still sees only its own VMs.
    other.user(&admin, "bob").await;
    assert!(cloud_states(&app, "bob").await.is_empty());
    other.stop().await;

    // Restart: the same data directory and database, a new process state.
    let (dir, db_url) = app.stop().await;
    let again = TestApp::start(Some(db_url), dir).await.unwrap();
    let after = cloud_states(&again, "alice").await;
    assert_eq!(after.len(), 3 + 16, "{after:?}");
    let admin = again.token("super", SUPER_PW).await;
    let (s, r) = again.call(Method::POST, "/api/v1/reconcile", &admin, None).await;
    assert_eq!(s, 200, "{r}");
    let alice = again.token("alice", "alice-password").await;
    let (_, v) = again.call(Method::GET, &format!("/api/v1/vms/{}", ids[0]), &alice, None).await;
    assert_eq!(v["state"], "running", "the VM launched before the restart still runs: {v}");
    let (_, v) = again.call(Method::GET, &format!("/api/v1/vms/{}", ids[1]), &alice, None).await;
    assert_eq!(v["state"], "terminated", "{v}");
    // Without its row, the sandbox is empty: nothing is kept elsewhere.
    sql(&again.db_url, "DELETE FROM sandbox_worlds").await;
    assert!(cloud_states(&again, "alice").await.is_empty());
    again.stop().await;
});
