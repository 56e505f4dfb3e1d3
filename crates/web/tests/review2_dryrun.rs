//! `DryRun` on the EC2 front-end (issue 20, item 0), and `DeleteTags`
//! without `Tag.N` on a VM with reserved client tags (item 15), driven by
//! boto3 (tests/ec2/boto3_dryrun.py) against a real broker whose region
//! `aws` is moto, on SQLite and PostgreSQL. Every action that takes
//! `DryRun` answers 412 `DryRunOperation` when its checks pass, or the error
//! a check finds, and changes nothing: the broker's listings and audit log,
//! moto's own listings and the changing actions moto served are the same
//! before and after.

// Test code: panicking on an unexpected result is the point.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{TestApp, SUPER_PW};
use reqwest::Method;
use serde_json::{json, Value};

/// A broker on moto with alice and bob (EC2 keys and moto credentials on
/// `aws`) and the public image `moto-linux`; returns it with the admin token
/// and both EC2 keys.
async fn setup(db_url: Option<String>, moto: &cloudbroker_testkit::MotoServer) -> (TestApp, String, [(String, String); 2]) {
    let app = TestApp::on_moto(db_url, moto, "").await;
    let admin = app.token("super", SUPER_PW).await;
    let image = json!({"name": "moto-linux", "mappings": {"aws": {"image_id": "ami-12c6146b", "instance_type": "t2.micro"}}});
    assert_eq!(app.call(Method::POST, "/api/v1/images", &admin, Some(image)).await.0, 201);
    let mut keys = Vec::new();
    for (u, cloud_key) in [("alice", "AKIAALICEMOTO000001"), ("bob", "AKIABOBMOTO0000001")] {
        let t = app.user(&admin, u).await;
        let body = json!({"access_key_id": cloud_key, "secret_access_key": format!("{u}-moto-secret")});
        let (s, b) = app.call(Method::PUT, &format!("/api/v1/users/{u}/credentials/aws"), &t, Some(body)).await;
        assert_eq!(s, 200, "{b}");
        let (s, k) = app.call(Method::POST, &format!("/api/v1/users/{u}/access-keys"), &t, None).await;
        assert_eq!(s, 201, "{k}");
        keys.push((k["access_key_id"].as_str().unwrap().to_string(), k["secret_access_key"].as_str().unwrap().to_string()));
    }
    let keys = [keys[0].clone(), keys[1].clone()];
    (app, admin, keys)
}

/// Runs boto3_dryrun.py in `mode`; its JSON summary.
async fn script(app: &TestApp, moto: &cloudbroker_testkit::MotoServer, admin: &str, keys: &[(String, String); 2], mode: &str) -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ec2/boto3_dryrun.py");
    let env = [
        ("EP", app.url("/ec2")),
        ("MOTO", moto.endpoint()),
        ("BASE", app.base.clone()),
        ("ADMIN_TOKEN", admin.to_string()),
        ("ALICE_AK", keys[0].0.clone()),
        ("ALICE_SK", keys[0].1.clone()),
        ("BOB_AK", keys[1].0.clone()),
        ("BOB_SK", keys[1].1.clone()),
        ("AWS_EC2_METADATA_DISABLED", "true".into()),
        ("AWS_CONFIG_FILE", "/dev/null".into()),
        ("AWS_SHARED_CREDENTIALS_FILE", "/dev/null".into()),
    ];
    let mode = mode.to_string();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(cloudbroker_testkit::venv_python()).arg(path).arg(mode).envs(env).output().unwrap()
    })
    .await
    .unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "boto3 script failed:\n{stderr}\n{stdout}\nmoto log:\n{}", moto.log());
    serde_json::from_str(stdout.lines().last().unwrap_or("")).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

/// RunInstances (image, quota, key pair checked; nothing reserved),
/// Start/Stop/Reboot/TerminateInstances, DescribeInstances and
/// DescribeInstanceStatus.
async fn instances(db_url: Option<String>) {
    let moto = cloudbroker_testkit::MotoServer::start(cloudbroker_testkit::MotoOptions::default());
    let (app, admin, keys) = setup(db_url, &moto).await;
    assert_eq!(app.call(Method::PUT, "/api/v1/system/config", &admin, Some(json!({"quota.enable": true}))).await.0, 200);
    assert_eq!(app.call(Method::PUT, "/api/v1/users/alice/quotas/aws", &admin, Some(json!({"vm": 2}))).await.0, 200);
    let out = script(&app, &moto, &admin, &keys, "instances").await;
    assert_eq!(out["dry_runs"], 9, "{out}");
    for (k, want) in [
        ("run_over_quota", "InstanceLimitExceeded"),
        ("run_bad_ami", "InvalidAMIID.NotFound"),
        ("run_unknown_key", "InvalidKeyPair.NotFound"),
        ("terminate_unknown", "InvalidInstanceID.NotFound"),
        ("terminate_partly_unknown", "InvalidInstanceID.NotFound"),
        ("bob_terminate", "InvalidInstanceID.NotFound"),
        ("bob_stop", "InvalidInstanceID.NotFound"),
        ("describe_unknown", "InvalidInstanceID.NotFound"),
    ] {
        assert_eq!(out[k], want, "{k}: {out}");
    }
    // DryRun=false acts: the instance really ends, in the cloud too.
    assert_eq!(out["terminated"], true, "{out}");
    assert!(out["moto_states"].as_array().unwrap().iter().all(|s| s == "shutting-down" || s == "terminated"), "{out}");
    // Nothing reserved: alice's one launch is the only record.
    let (_, vms) = app.call(Method::GET, "/api/v1/vms", &admin, None).await;
    assert_eq!(vms["vms"].as_array().map(Vec::len), Some(1), "{vms}");
    app.stop().await;
}

/// CreateTags, DeleteTags, DescribeTags, CreateKeyPair, ImportKeyPair,
/// DeleteKeyPair, DescribeKeyPairs; then DeleteTags without `Tag.N` (for
/// real) on a VM carrying a reserved client tag removes the user's tags
/// only, on the broker's record and on the cloud instance.
async fn tags_and_key_pairs(db_url: Option<String>) {
    let moto = cloudbroker_testkit::MotoServer::start(cloudbroker_testkit::MotoOptions::default());
    let (app, admin, keys) = setup(db_url, &moto).await;
    let out = script(&app, &moto, &admin, &keys, "tags_keys").await;
    assert_eq!(out["dry_runs"], 8, "{out}");
    for (k, want) in [
        ("bob_create_tags", "InvalidInstanceID.NotFound"),
        ("bob_delete_tags", "InvalidVolume.NotFound"),
        ("reserved_tag", "InvalidParameterValue"),
        ("reserved_delete", "InvalidParameterValue"),
        ("duplicate_key", "InvalidKeyPair.Duplicate"),
        ("bad_key", "InvalidKeyPair.Format"),
        ("unknown_key_pair", "InvalidKeyPair.NotFound"),
    ] {
        assert_eq!(out[k], want, "{k}: {out}");
    }
    assert_eq!(out["instance_tags_left"], json!([["cloudbroker:upstream", "b1"]]), "{out}");
    assert_eq!(out["volume_tags_left"], json!([]), "{out}");
    assert_eq!(out["cloud_user_tags_left"], json!([]), "{out}");
    app.stop().await;
}

/// AllocateAddress, AssociateAddress, DisassociateAddress, ReleaseAddress,
/// DescribeAddresses, CreateVolume, AttachVolume, DetachVolume,
/// DeleteVolume, DescribeVolumes.
async fn addresses_and_volumes(db_url: Option<String>) {
    let moto = cloudbroker_testkit::MotoServer::start(cloudbroker_testkit::MotoOptions::default());
    let (app, admin, keys) = setup(db_url, &moto).await;
    let out = script(&app, &moto, &admin, &keys, "resources").await;
    assert_eq!(out["dry_runs"], 10, "{out}");
    for (k, want) in [
        ("release_unknown", "InvalidAllocationID.NotFound"),
        ("bob_release", "InvalidAllocationID.NotFound"),
        ("bob_associate", "InvalidAllocationID.NotFound"),
        ("associate_unknown_instance", "InvalidInstanceID.NotFound"),
        ("disassociate_unassociated", "InvalidAddress.NotFound"),
        ("bob_delete_volume", "InvalidVolume.NotFound"),
        ("delete_unknown_volume", "InvalidVolume.NotFound"),
        ("attach_bad_device", "InvalidParameterValue"),
        ("bob_attach", "InvalidVolume.NotFound"),
        ("create_volume_bad_type", "InvalidParameterValue"),
    ] {
        assert_eq!(out[k], want, "{k}: {out}");
    }
    app.stop().await;
}

/// RegisterImage, DeregisterImage and the remaining Describe* actions; a
/// `DryRun` that is neither true nor false is refused before anything runs.
async fn images_and_regions(db_url: Option<String>) {
    let moto = cloudbroker_testkit::MotoServer::start(cloudbroker_testkit::MotoOptions::default());
    let (app, admin, keys) = setup(db_url, &moto).await;
    let out = script(&app, &moto, &admin, &keys, "images").await;
    assert_eq!(out["dry_runs"], 7, "{out}");
    for (k, want) in [
        ("register_duplicate", "InvalidAMIName.Duplicate"),
        ("register_unknown", "InvalidAMIID.NotFound"),
        ("deregister_public", "UnauthorizedOperation"),
        ("bob_deregister", "InvalidAMIID.NotFound"),
        ("describe_unknown_image", "InvalidAMIID.NotFound"),
    ] {
        assert_eq!(out[k], want, "{k}: {out}");
    }
    assert_eq!(out["regions"], json!(["aws", "sb", "sb2"]), "{out}");
    // Not true/false: refused, and nothing allocated.
    for value in ["yes", "", "1"] {
        let body = format!("Action=AllocateAddress&Version=2016-11-15&DryRun={value}");
        let (s, text) = app.ec2_call(&keys[0], "aws", &body).await;
        assert_eq!(s, 400, "{text}");
        assert!(text.contains("InvalidParameterValue") && text.contains("DryRun"), "{text}");
    }
    let (s, text) = app.ec2_call(&keys[0], "aws", "Action=DescribeAddresses&Version=2016-11-15&DryRun=TRUE").await;
    assert!(s == 412 && text.contains("<Code>DryRunOperation</Code>"), "{s} {text}");
    let (s, text) = app.ec2_call(&keys[0], "aws", "Action=DescribeAddresses&Version=2016-11-15&DryRun=false").await;
    assert!(s == 200 && !text.contains("<item>"), "{s} {text}");
    assert_eq!(moto.action_count("AllocateAddress").await, 0);
    app.stop().await;
}

db_url_test!(dry_run_instances, super::instances);
db_url_test!(dry_run_tags_and_key_pairs, super::tags_and_key_pairs);
db_url_test!(dry_run_addresses_and_volumes, super::addresses_and_volumes);
db_url_test!(dry_run_images_and_regions, super::images_and_regions);
