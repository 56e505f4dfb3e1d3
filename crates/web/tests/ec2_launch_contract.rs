//! The launch contract through the EC2 front, driven by boto3
//! (tests/ec2/boto3_count_range.py), on SQLite and PostgreSQL: MinCount and
//! MaxCount are one request and one admission (as many instances as the
//! quota leaves room for, never a second launch), the dry run agrees, and
//! a client token replays a range's launch.

// Test code: panicking on an unexpected result is the point.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use cloudbroker_core::domain::PageRequest;
use cloudbroker_core::Actor;
use common::{TestApp, SUPER_PW};
use reqwest::Method;
use serde_json::{json, Value};

app_test!(min_and_max_count_are_admitted_once_with_boto3, |app: TestApp| async move {
    let admin = app.token("super", SUPER_PW).await;
    let image = json!({"name": "ubuntu", "mappings": {"sb": {"image_id": "ami-sandbox-ubuntu-2204", "instance_type": "t2.small"}}});
    assert_eq!(app.call(Method::POST, "/api/v1/images", &admin, Some(image)).await.0, 201);
    let t = app.user(&admin, "alice").await;
    let (s, k) = app.call(Method::POST, "/api/v1/users/alice/access-keys", &t, None).await;
    assert_eq!(s, 201, "{k}");
    assert_eq!(app.call(Method::PUT, "/api/v1/system/config", &admin, Some(json!({"quota.enable": "true"}))).await.0, 200);
    assert_eq!(app.call(Method::PUT, "/api/v1/users/alice/quotas/sb", &admin, Some(json!({"vm": 3}))).await.0, 200);
    let env = vec![
        ("EP".to_string(), app.url("/ec2")),
        ("ALICE_AK".into(), k["access_key_id"].as_str().unwrap().to_string()),
        ("ALICE_SK".into(), k["secret_access_key"].as_str().unwrap().to_string()),
        ("AWS_EC2_METADATA_DISABLED".into(), "true".into()),
        ("AWS_CONFIG_FILE".into(), "/dev/null".into()),
        ("AWS_SHARED_CREDENTIALS_FILE".into(), "/dev/null".into()),
    ];
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ec2/boto3_count_range.py");
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(cloudbroker_testkit::venv_python()).arg(script).envs(env).output().unwrap()
    })
    .await
    .unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "boto3 script failed:\n{stderr}\n{stdout}");
    let out: Value = serde_json::from_str(stdout.lines().last().unwrap_or("")).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    assert_eq!(
        (&out["first"], &out["dry_two"], &out["dry_one"]),
        (&json!(2), &json!("InstanceLimitExceeded"), &json!("DryRunOperation")),
        "{out}"
    );
    assert_eq!((&out["second"], &out["replayed"]), (&json!(1), &json!(true)), "{out}");
    // Two reservations (launches) of 2 and 1: 3 instances.
    assert_eq!((&out["full"], &out["described"]), (&json!("InstanceLimitExceeded"), &json!([2, 3])), "{out}");
    // Three launches admitted, one refusal (the last): the range was never tried twice.
    let log = app.broker.audit.list(&Actor::system(), Default::default(), PageRequest::default()).await.unwrap();
    let outcomes: Vec<&str> =
        log.items.iter().filter(|e| e.action == "vm.launch" && e.actor == "alice").map(|e| e.outcome.as_str()).collect();
    assert_eq!(outcomes.iter().filter(|o| **o == "requested").count(), 2, "{outcomes:?}");
    assert_eq!(outcomes.iter().filter(|o| **o == "over-quota").count(), 1, "{outcomes:?}");
});
