//! Operations defects of the second review, over HTTP: a key rotation where
//! the key file cannot be written is refused (409, naming the file and why)
//! and changes nothing; a replica whose own key file lacks the key stored
//! credentials are sealed with answers 503 `master_key_unknown` naming the
//! key id and turns `/readyz` to 503; a cloud error that echoes the
//! caller's secret reaches the caller (and the VM's stored error) scrubbed.
//! On SQLite and PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::zombie_processes)]

mod common;

use common::{TestApp, SUPER_PW};
use reqwest::Method;
use serde_json::json;

async fn readyz(app: &TestApp) -> (u16, serde_json::Value) {
    let r = app.http.get(app.url("/readyz")).send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

async fn key_rotation_over_http(db_url: Option<String>) {
    let a = TestApp::start(db_url, tempfile::tempdir().unwrap()).await.unwrap();
    let admin = a.token("super", SUPER_PW).await;
    let alice = a.user(&admin, "alice").await;
    let image = json!({"name": "ubuntu", "mappings": {"sb": {"image_id": "ami-sandbox-ubuntu-2204"}}});
    assert_eq!(a.call(Method::POST, "/api/v1/images", &admin, Some(image)).await.0, 201);
    let creds = json!({"access_key_id": "AKIAALICESANDBOX0001", "secret_access_key": "alice-sandbox-secret"});
    let (s, b) = a.call(Method::PUT, "/api/v1/users/alice/credentials/sb", &alice, Some(creds)).await;
    assert_eq!(s, 200, "{b}");

    // A replica on the same database with its own copy of the key file.
    let dir_b = tempfile::tempdir().unwrap();
    std::fs::copy(a.dir.path().join("master.key"), dir_b.path().join("master.key")).unwrap();
    let b = TestApp::start(Some(a.db_url.clone()), dir_b).await.unwrap();
    let alice_b = b.token("alice", "alice-password").await;
    let launch = json!({"instance": "sb", "image": "ubuntu"});
    assert_eq!(b.call(Method::POST, "/api/v1/vms", &alice_b, Some(launch.clone())).await.0, 201);
    assert_eq!(readyz(&b).await.0, 200);

    // Where the key file cannot be written, rotation is refused and changes nothing.
    let key_file = a.dir.path().join("master.key");
    let before = std::fs::read(&key_file).unwrap();
    std::fs::create_dir(key_file.with_extension("tmp")).unwrap();
    let (s, e) = a.call(Method::POST, "/api/v1/system/keys/rotate", &admin, None).await;
    assert_eq!((s, e["error"]["code"].as_str()), (409, Some("conflict")), "{e}");
    let msg = e["error"]["message"].as_str().unwrap();
    assert!(msg.contains("cannot rotate") && msg.contains(&key_file.display().to_string()), "{msg}");
    assert_eq!(std::fs::read(&key_file).unwrap(), before);
    assert_eq!(b.call(Method::POST, "/api/v1/vms", &alice_b, Some(launch.clone())).await.0, 201, "B still serves");
    std::fs::remove_dir(key_file.with_extension("tmp")).unwrap();

    // A rotates (its file only): B cannot open what A re-sealed and says so.
    let (s, r) = a.call(Method::POST, "/api/v1/system/keys/rotate", &admin, None).await;
    assert_eq!(s, 200, "{r}");
    let new_key = r["current_key"].as_str().unwrap().to_string();
    let (s, e) = b.call(Method::POST, "/api/v1/vms", &alice_b, Some(launch.clone())).await;
    assert_eq!((s, e["error"]["code"].as_str()), (503, Some("master_key_unknown")), "{e}");
    assert!(e["error"]["message"].as_str().unwrap().contains(&new_key), "{e}");
    let key_text = std::fs::read_to_string(&key_file).unwrap();
    let secret_b64 = key_text.lines().last().unwrap().split_whitespace().nth(2).unwrap().to_string();
    assert!(!e.to_string().contains(&secret_b64), "the key itself was shown");
    let (s, ready) = readyz(&b).await;
    assert_eq!(s, 503, "{ready}");
    assert!(ready["master_keys"].as_str().unwrap().contains(&new_key), "{ready}");
    assert!(!ready.to_string().contains(&secret_b64));
    assert_eq!(readyz(&a).await.0, 200);
    assert_eq!(a.call(Method::POST, "/api/v1/vms", &alice, Some(launch.clone())).await.0, 201);
    // B given the current file serves again.
    std::fs::copy(&key_file, b.dir.path().join("master.key")).unwrap();
    assert_eq!(b.call(Method::POST, "/api/v1/vms", &alice_b, Some(launch)).await.0, 201);
    assert_eq!(readyz(&b).await.0, 200);
    b.stop().await;
    a.stop().await;
}

db_url_test!(rotation_refusal_and_replica_missing_key, super::key_rotation_over_http);

async fn cloud_errors_echoing_the_secret_are_scrubbed(db_url: Option<String>) {
    let moto = cloudbroker_testkit::MotoServer::start(cloudbroker_testkit::MotoOptions::default());
    let app = TestApp::on_moto(db_url, &moto, "").await;
    let admin = app.token("super", SUPER_PW).await;
    let alice = app.user(&admin, "alice").await;
    let image = json!({"name": "ubuntu", "mappings": {"aws": {"image_id": "ami-12c6146b", "instance_type": "t3.micro"}}});
    assert_eq!(app.call(Method::POST, "/api/v1/images", &admin, Some(image)).await.0, 201);
    let (key_id, secret) = ("AKIAALICEECHO0000042", "ech0ed/Secret+Key/wJalrXUtnFEMI0042");
    let creds = json!({"access_key_id": key_id, "secret_access_key": secret});
    let (s, b) = app.call(Method::PUT, "/api/v1/users/alice/credentials/aws", &alice, Some(creds)).await;
    assert_eq!(s, 200, "{b}");
    moto.set_faults(json!({
        "error_first": 5,
        "error_actions": ["RunInstances"],
        "error_code": "InvalidParameterValue",
        "error_message": format!("request signed by {key_id} with secret {secret} is refused"),
    }))
    .await;
    let (s, e) = app.call(Method::POST, "/api/v1/vms", &alice, Some(json!({"instance": "aws", "image": "ubuntu"}))).await;
    moto.set_faults(json!({})).await;
    assert_eq!(s, 400, "{e}");
    let shown = e.to_string();
    assert!(shown.contains("is refused") && shown.contains("cloud.InvalidParameterValue"), "not the cloud's error: {shown}");
    assert!(!shown.contains(secret) && !shown.contains(key_id), "a credential reached the caller: {shown}");
    assert!(shown.contains("********"), "{shown}");
    // Nor is it kept: the failed VM's error, and the audit log.
    let (_, vms) = app.call(Method::GET, "/api/v1/vms", &alice, None).await;
    assert!(!vms.to_string().contains(secret), "{vms}");
    let text = app.database_text().await;
    assert!(!text.contains(secret), "the secret reached the database in clear");
    app.stop().await;
}

db_url_test!(cloud_error_messages_are_scrubbed, super::cloud_errors_echoing_the_secret_are_scrubbed);
