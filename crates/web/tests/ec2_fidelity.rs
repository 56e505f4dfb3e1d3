//! Issue 22's items 1, 2 and 5 with boto3 (tests/ec2/boto3_fidelity.py) on a
//! sandbox region and an `ec2` region in front of moto, on SQLite and
//! PostgreSQL: tags kept verbatim on every VM of a launch and `Name`
//! renaming through CreateTags; placement, block devices, shutdown
//! behaviour, volume IOPS/encryption/throughput and key types reaching the
//! cloud, what the broker does not honour refused by name; a cloud's
//! refusal answered as HTTP 400 with the cloud's code.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::zombie_processes)]

mod common;

use common::{TestApp, SUPER_PW};
use reqwest::Method;
use serde_json::{json, Value};

fn run_script(args: Vec<String>, env: Vec<(String, String)>) -> Value {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ec2/boto3_fidelity.py");
    let out = std::process::Command::new(cloudbroker_testkit::venv_python()).arg(script).args(args).envs(env).output().unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "boto3 script failed:\n{stderr}\n{stdout}");
    serde_json::from_str(stdout.lines().last().unwrap_or("")).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

async fn fidelity(db_url: Option<String>) {
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
    let alice = app.user(&admin, "alice").await;
    let (s, k) = app.call(Method::POST, "/api/v1/users/alice/access-keys", &alice, None).await;
    assert_eq!(s, 201, "{k}");
    let body = json!({"access_key_id": "AKIAALICEMOTO000001", "secret_access_key": "alice-moto-secret"});
    let (s, b) = app.call(Method::PUT, "/api/v1/users/alice/credentials/aws", &alice, Some(body)).await;
    assert_eq!(s, 200, "{b}");
    let env = vec![
        ("EP".to_string(), app.url("/ec2")),
        ("ALICE_AK".into(), k["access_key_id"].as_str().unwrap().to_string()),
        ("ALICE_SK".into(), k["secret_access_key"].as_str().unwrap().to_string()),
        ("MOTO_AK".into(), "AKIAALICEMOTO000001".into()),
        ("MOTO_SK".into(), "alice-moto-secret".into()),
        ("AWS_EC2_METADATA_DISABLED".into(), "true".into()),
    ];
    // The background reconciler's job, done here: records follow the cloud.
    let broker = app.broker.clone();
    let reconciler = tokio::spawn(async move {
        loop {
            let _ = broker.provisioning.reconcile("ec2-fidelity-test").await;
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    });
    let runs = [
        ("sb", vec!["sb".to_string(), "sba".into(), "ubuntu".into()]),
        ("aws", vec!["aws".to_string(), "us-east-1b".into(), "moto-linux".into(), moto.endpoint()]),
    ];
    let mut outs = Vec::new();
    for (region, args) in runs {
        let env = env.clone();
        outs.push((region, tokio::task::spawn_blocking(move || run_script(args, env)).await.unwrap()));
    }
    reconciler.abort();
    let unsupported = json!([400, "UnsupportedOperation"]);
    for (region, out) in &outs {
        // 1. Name verbatim on both VMs; found by tag:Name and DescribeTags; CreateTags renames.
        assert_eq!(out["run_names"], json!(["chk", "chk"]), "{region}: {out}");
        assert_eq!(out["described_names"], json!(["chk", "chk"]), "{region}: {out}");
        assert_eq!(out["filter_name"], true, "{region}: {out}");
        assert_eq!(out["describe_tags_name"], json!([[true, "chk"], [true, "chk"]]), "{region}: {out}");
        assert_eq!(out["after_rename"], json!(["renamed", null]), "{region}: {out}");
        // The broker's name follows the Name tag; the JSON API shows it.
        let ids = out["renamed_ids"].as_array().unwrap();
        let vm = |i: usize| format!("/api/v1/vms/vm-{}", ids[i].as_str().unwrap().trim_start_matches("i-"));
        let (s, first) = app.call(Method::GET, &vm(0), &alice, None).await;
        assert_eq!((s, first["name"].as_str()), (200, Some("renamed")), "{region}: {first}");
        assert_eq!(first["tags"]["Name"], "renamed", "{region}: {first}");
        let (_, second) = app.call(Method::GET, &vm(1), &alice, None).await;
        assert_eq!(second["name"], "", "{region}: {second}");

        // 2. Honoured or refused by name.
        assert_eq!(out["placed"], true, "{region}: {out}");
        assert_eq!(out["volume"], true, "{region}: {out}");
        for k in ["ebs_optimized", "snapshot_in_mapping", "volume_tag_spec", "kms_key", "ppk"] {
            assert_eq!(out[k], unsupported, "{region} {k}: {out}");
        }
        assert_eq!(out["bad_shutdown"], json!([400, "InvalidParameterValue"]), "{region}: {out}");
        assert_eq!(out["rsa"], true, "{region}: {out}");
        assert_eq!(out["public_keys"], json!(["ssh-ed25519", "ssh-rsa"]), "{region}: {out}");

        // 5. The cloud's refusal as a client error with its code.
        assert_eq!(out["reassociate"], json!([400, "Resource.AlreadyAssociated"]), "{region}: {out}");
        assert_eq!(out["unknown_volume"], json!([400, "InvalidVolume.NotFound"]), "{region}: {out}");
        assert_eq!(out["unknown_volume_odd"], json!([400, "InvalidVolume.NotFound"]), "{region}: {out}");
        assert_eq!(out["malformed_volume"], json!([400, "InvalidVolumeID.Malformed"]), "{region}: {out}");
    }
    let sb = &outs[0].1;
    // The sandbox checks what it is given, as EC2 would.
    assert_eq!(sb["wrong_zone"], json!([400, "InvalidParameterValue"]), "{sb}");
    assert_eq!(sb["iops_on_gp2"], json!([400, "InvalidParameterCombination"]), "{sb}");
    assert_eq!(sb["throughput_on_gp2"], json!([400, "InvalidParameterCombination"]), "{sb}");
    assert_eq!(sb["detach_available"][0], 400, "{sb}");
    // Moto got what was asked for.
    let aws = &outs[1].1;
    assert_eq!(aws["cloud_names"], json!(["chk", "chk"]), "{aws}");
    assert_eq!(aws["cloud_renamed"], json!(["renamed"]), "{aws}");
    assert_eq!((aws["cloud_zone"].as_bool(), aws["cloud_device"].as_bool()), (Some(true), Some(true)), "{aws}");
    assert_eq!(aws["cloud_shutdown"], "terminate", "{aws}");
    assert_eq!(aws["cloud_volume"], json!([true, 4000, "gp3"]), "{aws}");
    app.stop().await;
}

db_url_test!(boto3_tags_parameters_and_error_codes, super::fidelity);
