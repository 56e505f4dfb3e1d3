//! Describe filters, pagination and fields of the EC2 front (issue 22,
//! items 3, 4 and 6) with boto3 (tests/ec2/boto3_filters.py), on a sandbox
//! region and on an `ec2` region in front of moto, on SQLite and
//! PostgreSQL: every documented filter matches and misses, unknown filters
//! and bad `MaxResults` are refused, pages add up to the whole answer, and
//! instances, zones, key pairs and Elastic IPs carry AWS's fields.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::zombie_processes)]

mod common;

use common::{TestApp, SUPER_PW};
use reqwest::Method;
use serde_json::{json, Value};

fn run(args: Vec<String>, env: Vec<(String, String)>) -> (bool, String, String) {
    let out = std::process::Command::new(cloudbroker_testkit::venv_python()).args(args).envs(env).output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

async fn filters_pages_and_fields(db_url: Option<String>) {
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
    let (s, b) = app.call(Method::PUT, "/api/v1/system/config", &admin, Some(json!({"images.allow.raw": true}))).await;
    assert!(s < 300, "{s} {b}");
    let t = app.user(&admin, "alice").await;
    let (s, k) = app.call(Method::POST, "/api/v1/users/alice/access-keys", &t, None).await;
    assert_eq!(s, 201, "{k}");
    let body = json!({"access_key_id": "AKIAALICEMOTO000001", "secret_access_key": "alice-moto-secret"});
    let (s, b) = app.call(Method::PUT, "/api/v1/users/alice/credentials/aws", &t, Some(body)).await;
    assert_eq!(s, 200, "{b}");
    let env = vec![
        ("ALICE_AK".to_string(), k["access_key_id"].as_str().unwrap().to_string()),
        ("ALICE_SK".into(), k["secret_access_key"].as_str().unwrap().to_string()),
        ("AWS_EC2_METADATA_DISABLED".into(), "true".into()),
    ];
    // The background reconciler's job, done here: records follow the cloud.
    let broker = app.broker.clone();
    let reconciler = tokio::spawn(async move {
        loop {
            let _ = broker.provisioning.reconcile("ec2-filters-test").await;
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    });
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ec2/boto3_filters.py").display().to_string();
    for (region, volume_zone, image, raw) in
        [("sb", "sba", "ubuntu", "ami-sandbox-ubuntu-2204"), ("aws", "us-east-1a", "moto-linux", "ami-12c6146b")]
    {
        let args: Vec<String> =
            [script.as_str(), &app.url("/ec2"), region, volume_zone, image, raw].iter().map(|s| s.to_string()).collect();
        let env = env.clone();
        let (ok, stdout, stderr) = tokio::task::spawn_blocking(move || run(args, env)).await.unwrap();
        assert!(ok, "{region}: boto3 script failed:\n{stderr}\n{stdout}");
        let out: Value = serde_json::from_str(stdout.lines().last().unwrap_or("")).unwrap_or_else(|e| panic!("{e}: {stdout}"));
        // A raw cloud image id comes back as given, at launch and described.
        assert_eq!((out["raw_image_id"].as_str(), out["raw_described"].as_str()), (Some(raw), Some(raw)), "{region}: {out}");
        assert_eq!(out["block_devices"], json!(["/dev/sdf"]), "{region}: {out}");
        assert_eq!(out["zone"], json!([format!("{region}a"), format!("{region}-az1")]), "{region}: {out}");
        for k in
            ["volumes_bad_max", "volumes_big_max", "volumes_bad_token", "status_bad_max", "tags_bad_max", "types_bad_max", "images_bad_max"]
        {
            assert_eq!(out[k], "InvalidParameterValue", "{region} {k}: {out}");
        }
        for k in ["volumes_max_with_ids", "status_max_with_ids"] {
            assert_eq!(out[k], "InvalidParameterCombination", "{region} {k}: {out}");
        }
        assert_eq!((out["volume_pages"].as_u64(), out["status_pages"].as_u64()), (Some(2), Some(2)), "{region}: {out}");
        assert!(out["tag_pages"].as_u64().unwrap() >= 2, "{region}: {out}");
        assert_eq!(out["unknown_key_pair_id"], "InvalidKeyPair.NotFound", "{region}: {out}");
        assert_eq!(out["tag_unknown_key_pair"], "InvalidKeyPair.NotFound", "{region}: {out}");
        // Every Describe action refused an unknown filter, and every filter was tried.
        let checked: Vec<&str> = out["checked"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
        for action in [
            "describe_instances",
            "describe_instance_status",
            "describe_instance_types",
            "describe_images",
            "describe_tags",
            "describe_key_pairs",
            "describe_addresses",
            "describe_volumes",
            "describe_regions",
            "describe_availability_zones",
        ] {
            assert!(checked.contains(&format!("{action}:unknown").as_str()), "{region}: {action} unknown filter not checked");
        }
        let names: std::collections::BTreeSet<&str> = checked.iter().filter_map(|c| c.split_once(':').map(|(_, n)| n)).collect();
        for f in
            ["tag-value", "tag-key", "tag:team", "instance-state-code", "launch-time", "key-pair-id", "zone-id", "vcpu-info.default-vcpus"]
        {
            assert!(names.contains(f), "{region}: filter {f} not checked: {names:?}");
        }
    }
    reconciler.abort();
    app.stop().await;
}

db_url_test!(boto3_filters, super::filters_pages_and_fields);
