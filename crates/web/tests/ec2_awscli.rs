//! One scripted awscli session (tests/ec2/awscli_session.sh, AWS's exact CLI
//! syntax) against a sandbox region, on SQLite and PostgreSQL: a VPC, a
//! subnet and a security group, an instance launched into them, a volume
//! created, attached and snapshotted, an image made from the instance and
//! launched, and everything cleaned up. A step whose action the front does
//! not implement yet prints `SKIPPED: <Action> not implemented`; every step
//! whose action is in the tree must pass (`tests/ec2/session.rs` runs it and is
//! shared with ec2_chain.rs, which runs the same session through two brokers).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::zombie_processes)]

mod common;
#[path = "ec2/session.rs"]
mod session;

use common::{TestApp, SUPER_PW};
use reqwest::Method;
use serde_json::json;
use session::session_steps;

async fn awscli_session(db_url: Option<String>) {
    let app = TestApp::start(db_url, tempfile::tempdir().unwrap()).await.unwrap();
    let admin = app.token("super", SUPER_PW).await;
    let image = json!({"name": "ubuntu", "mappings": {"sb": {"image_id": "ami-sandbox-ubuntu-2204", "instance_type": "t2.small"}}});
    assert_eq!(app.call(Method::POST, "/api/v1/images", &admin, Some(image)).await.0, 201);
    let t = app.user(&admin, "alice").await;
    let (s, k) = app.call(Method::POST, "/api/v1/users/alice/access-keys", &t, None).await;
    assert_eq!(s, 201, "{k}");
    let key = (k["access_key_id"].as_str().unwrap().to_string(), k["secret_access_key"].as_str().unwrap().to_string());
    let broker = app.broker.clone();
    let reconciler = tokio::spawn(async move {
        loop {
            let _ = broker.provisioning.reconcile("awscli").await;
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    });
    let out = session_steps(app.url("/ec2"), "sb", "sba", "ubuntu", &key).await;
    reconciler.abort();
    // Launched, attached, terminated and cleaned up, whatever else was skipped.
    for step in ["OK: RunInstances ", "OK: AttachVolume ", "OK: TerminateInstances ", "OK: DeleteVolume "] {
        assert!(out.contains(step), "{step}: {out}");
    }
    // Nothing of the session is left live.
    let (_, vms) = app.call(Method::GET, "/api/v1/vms?limit=10", &t, None).await;
    assert!(vms["vms"].as_array().unwrap().iter().all(|v| v["state"] == "terminated" || v["state"] == "shutting-down"), "{vms}");
    app.stop().await;
}

db_url_test!(awscli, super::awscli_session);
