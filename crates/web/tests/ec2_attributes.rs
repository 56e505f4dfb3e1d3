//! Instance attributes (Describe/ModifyInstanceAttribute), GetConsoleOutput,
//! DescribeInstanceTypeOfferings, AllowReassociation and the reconciler of
//! addresses and volumes (issue 22), driven by boto3
//! (tests/ec2/boto3_attributes.py) on a sandbox region and an `ec2` region
//! in front of moto, on SQLite and PostgreSQL. Termination protection is
//! the broker's: checked here on the JSON API too.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::zombie_processes)]

mod common;

use common::{TestApp, SUPER_PW};
use reqwest::Method;
use serde_json::{json, Value};

fn run(program: std::path::PathBuf, args: Vec<String>, env: Vec<(String, String)>) -> (bool, String, String) {
    let out = std::process::Command::new(program).args(args).envs(env).output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// The admin's token and alice's and bob's access keys.
async fn setup(app: &TestApp) -> (String, (String, String), (String, String)) {
    let admin = app.token("super", SUPER_PW).await;
    let image = json!({"name": "ubuntu", "mappings": {"sb": {"image_id": "ami-sandbox-ubuntu-2204", "instance_type": "t2.small"}}});
    assert_eq!(app.call(Method::POST, "/api/v1/images", &admin, Some(image)).await.0, 201);
    let image = json!({"name": "moto-linux", "mappings": {"aws": {"image_id": "ami-12c6146b", "instance_type": "t2.micro"}}});
    assert_eq!(app.call(Method::POST, "/api/v1/images", &admin, Some(image)).await.0, 201);
    let mut keys = Vec::new();
    for (u, moto_key) in [("alice", "AKIAALICEMOTO000001"), ("bob", "AKIABOBMOTO0000001")] {
        let t = app.user(&admin, u).await;
        let (s, k) = app.call(Method::POST, &format!("/api/v1/users/{u}/access-keys"), &t, None).await;
        assert_eq!(s, 201, "{k}");
        keys.push((k["access_key_id"].as_str().unwrap().to_string(), k["secret_access_key"].as_str().unwrap().to_string()));
        let body = json!({"access_key_id": moto_key, "secret_access_key": format!("{u}-moto-secret")});
        let (s, b) = app.call(Method::PUT, &format!("/api/v1/users/{u}/credentials/aws"), &t, Some(body)).await;
        assert_eq!(s, 200, "{b}");
    }
    (admin, keys[0].clone(), keys[1].clone())
}

async fn attributes(db_url: Option<String>) {
    let moto = cloudbroker_testkit::MotoServer::start(cloudbroker_testkit::MotoOptions::default());
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("connectors.d")).unwrap();
    std::fs::write(
        dir.path().join("connectors.d/sb.conf"),
        format!(
            "cloud.connector.class = sb:sandbox, sb2:sandbox, aws:ec2\nsb.boot.delay.ms = 0\nsb2.boot.delay.ms = 0\n\
             aws.region = us-east-1\naws.endpoint = {}\n",
            moto.endpoint()
        ),
    )
    .unwrap();
    let app = TestApp::start(db_url, dir).await.unwrap();
    let (_admin, alice, bob) = setup(&app).await;
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ec2/boto3_attributes.py");
    let env = vec![
        ("EP".to_string(), app.url("/ec2")),
        ("ALICE_AK".into(), alice.0.clone()),
        ("ALICE_SK".into(), alice.1.clone()),
        ("BOB_AK".into(), bob.0.clone()),
        ("BOB_SK".into(), bob.1.clone()),
        ("REGIONS".into(), "sb=sba=ubuntu,aws=us-east-1a=moto-linux".into()),
        ("AWS_EC2_METADATA_DISABLED".into(), "true".into()),
    ];
    // The background reconciler's job, done here: records follow the cloud.
    let broker = app.broker.clone();
    let reconciler = tokio::spawn(async move {
        loop {
            let _ = broker.provisioning.reconcile("ec2-attributes-test").await;
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    });
    let (ok, stdout, stderr) =
        tokio::task::spawn_blocking(move || run(cloudbroker_testkit::venv_python(), vec![script.display().to_string()], env))
            .await
            .unwrap();
    reconciler.abort();
    assert!(ok, "boto3 script failed:\n{stderr}\n{stdout}");
    let out: Value = serde_json::from_str(stdout.lines().last().unwrap_or("")).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    let state = json!(["IncorrectInstanceState", 400]);
    let not_found = json!(["InvalidInstanceID.NotFound", 400]);
    for (region, zone, launched) in [("sb", "sba", "t2.small"), ("aws", "awsa", "t2.micro")] {
        let a = &out[region]["attributes"];
        assert_eq!(a["type"], launched, "{region}: {a}");
        assert_eq!(a["protected_default"], false, "{region}: {a}");
        assert_eq!((&a["type_running"], &a["user_data_running"]), (&state, &state), "{region}: {a}");
        for k in ["bob_describe", "bob_modify", "bob_console"] {
            assert_eq!(a[k], not_found, "{region} {k}: {a}");
        }
        assert_eq!(a["unsupported"], json!(["UnsupportedOperation", 400]), "{region}: {a}");
        assert_eq!(a["two_at_once"], json!(["InvalidParameterCombination", 400]), "{region}: {a}");
        assert_eq!(a["console"], json!([true, true, true]), "{region}: {a}");
        assert_eq!(a["protected"], true, "{region}: {a}");
        assert_eq!(a["terminate_protected"], json!(["OperationNotPermitted", 400]), "{region}: {a}");
        assert_eq!(a["dry_run_protected"], json!(["OperationNotPermitted", 400]), "{region}: {a}");
        assert_eq!(a["still_running"], "running", "{region}: {a}");
        assert_eq!(a["unprotected"], false, "{region}: {a}");
        assert_eq!(a["shutdown"], "terminate", "{region}: {a}");
        assert_eq!(a["bad_shutdown"], json!(["InvalidParameterValue", 400]), "{region}: {a}");
        assert_eq!(a["dry_run_type"], json!(["DryRunOperation", 412]), "{region}: {a}");
        assert_eq!(a["type_after_dry_run"], launched, "{region}: {a}");
        for k in ["type_stopped", "described_type", "type_after_start"] {
            assert_eq!(a[k], "t2.medium", "{region} {k}: {a}");
        }
        assert_eq!(a["user_data"], "#!/bin/sh\necho hi\n", "{region}: {a}");
        assert_eq!(a["offer_locations"], json!([zone]), "{region}: {a}");
        assert_eq!(a["offer_has_medium"], true, "{region}: {a}");
        assert_eq!(a["offer_region"], json!([["t2.micro", "region", region]]), "{region}: {a}");
        assert_eq!(a["offer_bad_location_type"], json!(["InvalidParameterValue", 400]), "{region}: {a}");
        assert_eq!(a["offer_bad_filter"], json!(["InvalidParameterValue", 400]), "{region}: {a}");

        let r = &out[region]["reconcile"];
        assert_eq!(r["reassociate_refused"], json!(["Resource.AlreadyAssociated", 400]), "{region}: {r}");
        assert_eq!((&r["still_on_vm1"], &r["moved"], &r["vm1_lost_ip"]), (&json!(true), &json!(true), &json!(true)), "{region}: {r}");
        assert_eq!(r["address_after"], false, "{region}: {r}");
        assert!(r["volume_after"] == json!(["available"]) || r["volume_after"] == json!([]), "{region}: {r}");
    }
    // The sandbox simulates a boot log; the cloud behind the ec2 region says what it says.
    assert_eq!(out["sb"]["attributes"]["console_login"], true, "{out}");
    assert_eq!(out["sb"]["attributes"]["source_dest"], false, "{out}");
    // Every attribute change and read reached moto, with the caller's keys.
    for action in ["ModifyInstanceAttribute", "DescribeInstanceAttribute", "GetConsoleOutput"] {
        assert!(moto.action_count(action).await >= 1, "{action} never reached moto");
    }
    app.stop().await;
}

db_url_test!(boto3_attributes, super::attributes);

/// Termination protection on the JSON API.
async fn protection_on_every_front(db_url: Option<String>) {
    let app = TestApp::start(db_url, tempfile::tempdir().unwrap()).await.unwrap();
    let admin = app.token("super", SUPER_PW).await;
    let image = json!({"name": "ubuntu", "mappings": {"sb": {"image_id": "ami-sandbox-ubuntu-2204", "instance_type": "t2.small"}}});
    assert_eq!(app.call(Method::POST, "/api/v1/images", &admin, Some(image)).await.0, 201);
    let alice = app.user(&admin, "alice").await;
    let (s, b) = app.call(Method::POST, "/api/v1/vms", &alice, Some(json!({"instance": "sb", "image": "ubuntu", "count": 2}))).await;
    assert_eq!(s, 201, "{b}");
    let ids: Vec<String> = b["vms"].as_array().unwrap().iter().map(|v| v["id"].as_str().unwrap().to_string()).collect();
    for _ in 0..20 {
        if app.broker.provisioning.watch_transitional("t").await.unwrap().groups == 0 {
            break;
        }
    }
    let actor = cloudbroker_core::Actor::new(cloudbroker_core::testing::user("alice"), false);
    let value = cloudbroker_core::provisioning::VmAttributeValue::DisableApiTermination(true);
    for id in &ids {
        let id = cloudbroker_core::domain::VmId::parse(id).unwrap();
        app.broker.provisioning.modify_vm_attribute(&actor, &id, &value).await.unwrap();
    }
    // The JSON API refuses: 409 not_permitted, and the VM keeps running.
    let (s, b) = app.call(Method::POST, &format!("/api/v1/vms/{}/terminate", ids[0]), &alice, None).await;
    assert_eq!((s, b["error"]["code"].as_str()), (409, Some("not_permitted")), "{b}");
    assert!(b["error"]["message"].as_str().unwrap().contains("disableApiTermination"), "{b}");
    let (_, vm) = app.call(Method::GET, &format!("/api/v1/vms/{}", ids[0]), &alice, None).await;
    assert_eq!(vm["state"], "running", "{vm}");
    // Off again: terminated.
    let id0 = cloudbroker_core::domain::VmId::parse(&ids[0]).unwrap();
    let off = cloudbroker_core::provisioning::VmAttributeValue::DisableApiTermination(false);
    app.broker.provisioning.modify_vm_attribute(&actor, &id0, &off).await.unwrap();
    let (s, b) = app.call(Method::POST, &format!("/api/v1/vms/{}/terminate", ids[0]), &alice, None).await;
    assert!(s == 200 || s == 202, "{s} {b}");
    app.stop().await;
}

db_url_test!(protection, super::protection_on_every_front);
