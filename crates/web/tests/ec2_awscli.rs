//! One scripted awscli session (tests/ec2/awscli_session.sh, AWS's exact CLI
//! syntax) against a sandbox region, on SQLite and PostgreSQL: a VPC, a
//! subnet and a security group, an instance launched into them, a volume
//! created, attached and snapshotted, an image made from the instance and
//! launched, and everything cleaned up. A step whose action the front does
//! not implement yet prints `SKIPPED: <Action> not implemented`; every step
//! whose action is in the tree must pass (`session_steps` is shared with
//! ec2_chain.rs, which runs the same session through two brokers).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::zombie_processes)]

mod common;

use common::{TestApp, SUPER_PW};
use reqwest::Method;
use serde_json::json;

/// The session's actions, in the order it takes them.
pub const SESSION_ACTIONS: &[&str] = &[
    "CreateVpc",
    "CreateSubnet",
    "CreateSecurityGroup",
    "AuthorizeSecurityGroupIngress",
    "RunInstances",
    "CreateVolume",
    "AttachVolume",
    "CreateSnapshot",
    "CreateImage",
    "TerminateInstances",
    "DeleteVolume",
    "DeleteSnapshot",
    "DeregisterImage",
    "DeleteSecurityGroup",
    "DeleteSubnet",
    "DeleteVpc",
];

/// Runs the session against `ep` (region `region`, zone `zone`, image
/// `image`) with an access key; asserts that it finished, that each action
/// the front implements passed and each it does not was skipped as such.
/// Returns the script's output.
pub async fn session_steps(ep: String, region: &str, zone: &str, image: &str, key: &(String, String)) -> String {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ec2/awscli_session.sh");
    let env = vec![
        ("AWS".to_string(), cloudbroker_testkit::venv_dir().join("bin/aws").display().to_string()),
        ("EP".into(), ep),
        ("REGION".into(), region.to_string()),
        ("ZONE".into(), zone.to_string()),
        ("IMAGE".into(), image.to_string()),
        ("AWS_ACCESS_KEY_ID".into(), key.0.clone()),
        ("AWS_SECRET_ACCESS_KEY".into(), key.1.clone()),
        ("AWS_EC2_METADATA_DISABLED".into(), "true".into()),
        ("AWS_CONFIG_FILE".into(), "/dev/null".into()),
        ("AWS_SHARED_CREDENTIALS_FILE".into(), "/dev/null".into()),
        ("AWS_MAX_ATTEMPTS".into(), "1".into()),
    ];
    let out = tokio::task::spawn_blocking(move || std::process::Command::new("bash").arg(script).envs(env).output().unwrap())
        .await
        .unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned());
    assert!(out.status.success() && stdout.lines().any(|l| l == "DONE"), "the awscli session failed:\n{stdout}\n{stderr}");
    for action in SESSION_ACTIONS {
        let implemented = cloudbroker_ec2_api::action::Action::parse(action).is_ok();
        let passed = stdout.lines().any(|l| l.starts_with(&format!("OK: {action} ")));
        let skipped = stdout.lines().any(|l| l == format!("SKIPPED: {action} not implemented"));
        if implemented {
            // A step skipped only because an earlier one was (e.g. CreateSubnet
            // without CreateVpc) says so; anything else must pass.
            let waits = stdout.lines().any(|l| l.starts_with(&format!("SKIPPED: {action} needs ")));
            assert!(passed || waits, "{action} is implemented but its step did not pass:\n{stdout}\n{stderr}");
        } else {
            assert!(skipped && !passed, "{action} is not implemented and was not skipped as such:\n{stdout}");
        }
    }
    stdout
}

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
