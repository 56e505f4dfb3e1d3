//! Snapshots and images made from instances with boto3
//! (tests/ec2/boto3_snapshots_images.py) on a broker whose regions are a
//! sandbox instance and an `ec2` instance in front of moto, on SQLite and
//! PostgreSQL: a snapshot of a volume and a volume from it, an image of an
//! instance launched by its maker and by a user it is shared with (and by
//! no one else), EC2's error codes; the audit log records each step.

// Test code: panicking on an unexpected result is the point.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{TestApp, SUPER_PW};
use reqwest::Method;
use serde_json::{json, Value};

fn run(program: std::path::PathBuf, args: Vec<String>, env: Vec<(String, String)>) -> (bool, String, String) {
    let out = std::process::Command::new(program).args(args).envs(env).output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

async fn snapshots_and_images(db_url: Option<String>) {
    let moto = cloudbroker_testkit::MotoServer::start(cloudbroker_testkit::MotoOptions::default());
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("connectors.d")).unwrap();
    std::fs::write(
        dir.path().join("connectors.d/sb.conf"),
        format!(
            "cloud.connector.class = sb:sandbox, aws:ec2\nsb.boot.delay.ms = 0\naws.region = us-east-1\naws.endpoint = {}\n",
            moto.endpoint()
        ),
    )
    .unwrap();
    let app = TestApp::start(db_url, dir).await.unwrap();
    let admin = app.token("super", SUPER_PW).await;
    for image in [
        json!({"name": "ubuntu", "mappings": {"sb": {"image_id": "ami-sandbox-ubuntu-2204", "instance_type": "t2.small"}}}),
        json!({"name": "moto-linux", "mappings": {"aws": {"image_id": "ami-12c6146b", "instance_type": "t2.micro"}}}),
    ] {
        assert_eq!(app.call(Method::POST, "/api/v1/images", &admin, Some(image)).await.0, 201);
    }
    let mut env = vec![
        ("EP".to_string(), app.url("/ec2")),
        ("REGIONS".into(), "sb=sba=ubuntu,aws=us-east-1a=moto-linux".into()),
        ("STRICT".into(), "sb".into()),
        ("AWS_EC2_METADATA_DISABLED".into(), "true".into()),
    ];
    for (u, cloud_key) in [("alice", "AKIAALICEMOTO000001"), ("bob", "AKIABOBMOTO0000001"), ("carol", "AKIACAROLMOTO00001")] {
        let t = app.user(&admin, u).await;
        let (s, k) = app.call(Method::POST, &format!("/api/v1/users/{u}/access-keys"), &t, None).await;
        assert_eq!(s, 201, "{k}");
        let up = u.to_uppercase();
        env.push((format!("{up}_AK"), k["access_key_id"].as_str().unwrap().to_string()));
        env.push((format!("{up}_SK"), k["secret_access_key"].as_str().unwrap().to_string()));
        let body = json!({"access_key_id": cloud_key, "secret_access_key": format!("{u}-moto-secret")});
        let (s, b) = app.call(Method::PUT, &format!("/api/v1/users/{u}/credentials/aws"), &t, Some(body)).await;
        assert_eq!(s, 200, "{b}");
    }
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ec2/boto3_snapshots_images.py");
    let broker = app.broker.clone();
    let reconciler = tokio::spawn(async move {
        loop {
            let _ = broker.provisioning.reconcile("ec2-snapshots-test").await;
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    });
    let (ok, stdout, stderr) =
        tokio::task::spawn_blocking(move || run(cloudbroker_testkit::venv_python(), vec![script.display().to_string()], env))
            .await
            .unwrap();
    reconciler.abort();
    assert!(ok, "boto3 script failed:\n{stderr}\n{stdout}");
    let out: Value = serde_json::from_str(stdout.lines().last().unwrap_or("")).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    for region in ["sb", "aws"] {
        let o = &out[region];
        assert_eq!(o["created"], json!([true, true, true, true, true]), "{region}: {o}");
        assert_eq!(o["completed"], json!([true, true]), "{region}: {o}");
        assert_eq!(o["own"], true, "{region}: {o}");
        assert_eq!(o["filters"], json!([1, 1, 1, 0, 1]), "{region}: {o}");
        assert_eq!(o["bad_filter"], "InvalidParameterValue", "{region}: {o}");
        assert_eq!(o["malformed"], "InvalidParameterValue", "{region}: {o}");
        assert_eq!(o["unknown"], "InvalidSnapshot.NotFound", "{region}: {o}");
        assert_eq!(o["unknown_volume"], "InvalidVolume.NotFound", "{region}: {o}");
        assert_eq!(o["from_snapshot_size"], 2, "{region}: {o}");
        assert_eq!(o["bob_list"], json!([]), "{region}: {o}");
        for k in ["bob_describe", "bob_delete", "bob_volume", "deleted", "deleted_again"] {
            assert_eq!(o[k], "InvalidSnapshot.NotFound", "{region} {k}: {o}");
        }
        assert_eq!(o["own_images"], json!([format!("alice-img-{region}")]), "{region}: {o}");
        assert_eq!(o["duplicate"], "InvalidAMIName.Duplicate", "{region}: {o}");
        for k in ["bob_before", "bob_run_before", "bob_share", "carol_describe", "carol_run", "bob_after_remove", "deregistered"] {
            assert_eq!(o[k], "InvalidAMIID.NotFound", "{region} {k}: {o}");
        }
        for k in ["bob_deregister", "bob_attribute", "group_all"] {
            assert_eq!(o[k], "UnauthorizedOperation", "{region} {k}: {o}");
        }
        assert_eq!(o["permissions"], json!([{"UserId": "bob"}]), "{region}: {o}");
        assert_eq!(o["after_remove"], json!([]), "{region}: {o}");
        assert_eq!(o["unknown_user"], "InvalidAMIAttributeItemValue", "{region}: {o}");
        assert_eq!(o["bad_attribute"], "InvalidParameterValue", "{region}: {o}");
        assert_eq!(o["bob_sees"], json!([format!("alice-img-{region}")]), "{region}: {o}");
        assert_eq!(o["bob_launched"], true, "{region}: {o}");
    }
    assert_eq!(out["sb"]["too_small"], "InvalidParameterValue", "{out}");
    // The audit log has each step.
    let (s, log) = app.call(Method::GET, "/api/v1/audit?limit=500", &admin, None).await;
    assert_eq!(s, 200, "{log}");
    let text = log.to_string();
    for action in ["snapshot.create", "snapshot.delete", "image.create", "image.share", "image.deregister"] {
        assert!(text.contains(&format!("\"{action}\"")), "{action} missing from the audit log");
    }
    // The image made on moto is gone from moto too.
    for action in ["CreateSnapshot", "DeleteSnapshot", "CreateImage", "DeregisterImage"] {
        assert!(moto.action_count(action).await >= 1, "{action} never reached moto");
    }
    let conn = app.broker.registry.snapshot().instance("aws").unwrap().connector.clone().unwrap();
    let creds = cloudbroker_connector_api::Credentials::new("AKIAALICEMOTO000001", "alice-moto-secret");
    let images = conn.list_images(&creds).await.unwrap();
    assert!(images.iter().all(|i| i.name.as_deref() != Some("alice-img-aws")), "{images:?}");
}

db_url_test!(boto3_snapshots_and_images, super::snapshots_and_images);
