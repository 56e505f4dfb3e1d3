//! Parameters the EC2 front used to refuse or drop (issue 22), driven by
//! boto3 (tests/ec2/boto3_params.py) on a sandbox region and an `ec2` region
//! in front of moto, on SQLite and PostgreSQL: CreateVolume's ClientToken
//! makes one volume per token and project (one cloud call, even for
//! concurrent requests), and RunInstances' DisableApiTermination protects
//! every VM of the launch; security group rules name peer groups by name
//! and are revoked by rule id. The JSON launch's `disable_api_termination` and
//! the UI launch form's "Termination protection" box are checked here too.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::zombie_processes)]

mod common;

use common::{TestApp, SUPER_PW};
use reqwest::Method;
use serde_json::{json, Value};

fn run(program: std::path::PathBuf, args: Vec<String>, env: Vec<(String, String)>) -> (bool, String, String) {
    let out = std::process::Command::new(program).args(args).envs(env).output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// Alice's and Bob's keys in project `team`, and Alice's personal key.
async fn setup(app: &TestApp) -> [(String, String); 3] {
    let admin = app.token("super", SUPER_PW).await;
    let image = json!({"name": "ubuntu", "mappings": {"sb": {"image_id": "ami-sandbox-ubuntu-2204", "instance_type": "t2.small"}}});
    assert_eq!(app.call(Method::POST, "/api/v1/images", &admin, Some(image)).await.0, 201);
    let image = json!({"name": "moto-linux", "mappings": {"aws": {"image_id": "ami-12c6146b", "instance_type": "t2.micro"}}});
    assert_eq!(app.call(Method::POST, "/api/v1/images", &admin, Some(image)).await.0, 201);
    let alice = app.user(&admin, "alice").await;
    let bob = app.user(&admin, "bob").await;
    let (s, b) = app.call(Method::POST, "/api/v1/projects", &alice, Some(json!({"name": "team"}))).await;
    assert_eq!(s, 201, "{b}");
    let (s, b) = app.call(Method::PUT, "/api/v1/projects/team/members/bob", &alice, Some(json!({"role": "member"}))).await;
    assert!(s == 200 || s == 201, "{b}");
    for (u, t, moto_key) in [("alice", &alice, "AKIAALICEMOTO000001"), ("bob", &bob, "AKIABOBMOTO0000001")] {
        let body = json!({"access_key_id": moto_key, "secret_access_key": format!("{u}-moto-secret")});
        let (s, b) = app.call(Method::PUT, &format!("/api/v1/users/{u}/credentials/aws"), t, Some(body)).await;
        assert_eq!(s, 200, "{b}");
    }
    let mut keys = Vec::new();
    for (u, t, project) in [("alice", &alice, Some("team")), ("bob", &bob, Some("team")), ("alice", &alice, None)] {
        let (s, k) = app.call(Method::POST, &format!("/api/v1/users/{u}/access-keys"), t, project.map(|p| json!({"project": p}))).await;
        assert_eq!(s, 201, "{k}");
        keys.push((k["access_key_id"].as_str().unwrap().to_string(), k["secret_access_key"].as_str().unwrap().to_string()));
    }
    [keys[0].clone(), keys[1].clone(), keys[2].clone()]
}

async fn params(db_url: Option<String>) {
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
    let [alice, bob, solo] = setup(&app).await;
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ec2/boto3_params.py");
    let env = vec![
        ("EP".to_string(), app.url("/ec2")),
        ("ALICE_AK".into(), alice.0),
        ("ALICE_SK".into(), alice.1),
        ("BOB_AK".into(), bob.0),
        ("BOB_SK".into(), bob.1),
        ("SOLO_AK".into(), solo.0),
        ("SOLO_SK".into(), solo.1),
        ("REGIONS".into(), "sb=sba=ubuntu,aws=us-east-1a=moto-linux".into()),
        ("AWS_EC2_METADATA_DISABLED".into(), "true".into()),
    ];
    let (ok, stdout, stderr) =
        tokio::task::spawn_blocking(move || run(cloudbroker_testkit::venv_python(), vec![script.display().to_string()], env))
            .await
            .unwrap();
    assert!(ok, "boto3 script failed:\n{stderr}\n{stdout}");
    let out: Value = serde_json::from_str(stdout.lines().last().unwrap_or("")).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    for region in ["sb", "aws"] {
        let v = &out[region]["volumes"];
        assert_eq!(v["same"], json!([true, true, 1, true]), "{region}: {v}");
        assert_eq!(v["mismatch"], json!(["IdempotentParameterMismatch", 400]), "{region}: {v}");
        assert_eq!(v["mismatch_tags"], json!(["IdempotentParameterMismatch", 400]), "{region}: {v}");
        assert_eq!(v["too_long"], json!(["InvalidParameterValue", 400]), "{region}: {v}");
        assert_eq!((&v["max_len"], &v["other_project"]), (&json!(true), &json!(true)), "{region}: {v}");
        assert_eq!(v["race"], json!([4, 1]), "{region}: four answers, one volume: {v}");
        assert!(v["failed"][1] == json!(400), "{region}: {v}");
        assert_eq!((&v["after_failure"], &v["auto_tokens"]), (&json!(true), &json!(true)), "{region}: {v}");
        assert_eq!(v["replay_deleted"], json!([true, "deleted"]), "{region}: {v}");
        // The team's live volumes: y*64, race, after-failure and botocore's two (tok's is deleted).
        assert_eq!(v["team_volumes"], 5, "{region}: {v}");

        let t = &out[region]["termination"];
        assert_eq!(t["protected"], json!([true, true]), "{region}: {t}");
        assert_eq!(t["terminate"], json!(["OperationNotPermitted", 400]), "{region}: {t}");
        assert_eq!(t["dry_run"], json!(["DryRunOperation", 412]), "{region}: {t}");
        assert_eq!(t["plain"], false, "{region}: {t}");
        assert_eq!(t["terminated_after"], json!([true]), "{region}: {t}");

        let g = &out[region]["groups"];
        assert_eq!(g["by_name"], json!([["tcp", 5432, true]]), "{region}: {g}");
        assert_eq!(
            g["source"],
            json!([["icmp", -1, -1, true], ["tcp", 0, 65535, true], ["tcp", 5432, 5432, true], ["udp", 0, 65535, true]]),
            "{region}: {g}"
        );
        assert_eq!(g["source_flat"], json!(["InvalidParameterCombination", 400]), "{region}: {g}");
        assert_eq!(g["source_other_owner"], json!(["InvalidParameterValue", 400]), "{region}: {g}");
        for k in ["source_unknown", "name_unknown", "other_project"] {
            assert_eq!(g[k], json!(["InvalidGroup.NotFound", 400]), "{region} {k}: {g}");
        }
        assert_eq!(g["after_source_revoke"], json!([["tcp", 5432]]), "{region}: {g}");
        assert_eq!(g["mixed"], json!(["InvalidParameterCombination", 400]), "{region}: {g}");
        assert_eq!(g["unknown_rule"], json!(["InvalidSecurityGroupRuleId.NotFound", 400]), "{region}: {g}");
        assert_eq!(g["malformed_rule"], json!(["InvalidSecurityGroupRuleId.Malformed", 400]), "{region}: {g}");
        assert_eq!(g["wrong_direction"], json!(["InvalidSecurityGroupRuleId.NotFound", 400]), "{region}: {g}");
        assert_eq!(g["after_id_revoke"][0], json!([["tcp", 5432]]), "{region}: {g}");
        assert!(!g["after_id_revoke"][1].as_array().unwrap().contains(&json!("10.2.0.0/16")), "{region}: {g}");
        assert_eq!(g["described"], 1, "{region}: {g}");
    }
    // One cloud call per token: tok, y*64, the personal project's, race,
    // the refused one and its retry, and botocore's two.
    assert_eq!(moto.action_count("CreateVolume").await, 8);
    app.stop().await;
}

db_url_test!(boto3_params, super::params);

/// The JSON launch's `disable_api_termination`: on every VM of the launch,
/// off by default.
async fn json_launch_protection(db_url: Option<String>) {
    let app = TestApp::start(db_url, tempfile::tempdir().unwrap()).await.unwrap();
    let admin = app.token("super", SUPER_PW).await;
    let image = json!({"name": "ubuntu", "mappings": {"sb": {"image_id": "ami-sandbox-ubuntu-2204", "instance_type": "t2.small"}}});
    assert_eq!(app.call(Method::POST, "/api/v1/images", &admin, Some(image)).await.0, 201);
    let alice = app.user(&admin, "alice").await;
    let body = json!({"instance": "sb", "image": "ubuntu", "count": 2, "disable_api_termination": true});
    let (s, b) = app.call(Method::POST, "/api/v1/vms", &alice, Some(body)).await;
    assert_eq!(s, 201, "{b}");
    let ids: Vec<String> = b["vms"].as_array().unwrap().iter().map(|v| v["id"].as_str().unwrap().to_string()).collect();
    assert_eq!(ids.len(), 2);
    for id in &ids {
        let (s, b) = app.call(Method::POST, &format!("/api/v1/vms/{id}/terminate"), &alice, None).await;
        assert_eq!((s, b["error"]["code"].as_str()), (409, Some("not_permitted")), "{b}");
    }
    let (s, b) = app.call(Method::POST, "/api/v1/vms", &alice, Some(json!({"instance": "sb", "image": "ubuntu"}))).await;
    assert_eq!(s, 201, "{b}");
    let plain = b["vms"][0]["id"].as_str().unwrap().to_string();
    let (s, b) = app.call(Method::POST, &format!("/api/v1/vms/{plain}/terminate"), &alice, None).await;
    assert!(s == 200 || s == 202, "{s} {b}");
    let bad = json!({"instance": "sb", "image": "ubuntu", "disable_api_termination": "yes"});
    assert_eq!(app.call(Method::POST, "/api/v1/vms", &alice, Some(bad)).await.0, 400);
    app.stop().await;
}

db_url_test!(json_protection, super::json_launch_protection);

/// The UI launch form's "Termination protection" box: ticked, every VM of
/// the launch is protected; kept ticked when the form comes back with an
/// error; unticked, none is.
async fn ui_launch_protection(db_url: Option<String>) {
    use common::ui::Ui;
    let app = TestApp::start(db_url, tempfile::tempdir().unwrap()).await.unwrap();
    let admin = app.token("super", SUPER_PW).await;
    let image = json!({"name": "ubuntu", "mappings": {"sb": {"image_id": "ami-sandbox-ubuntu-2204", "instance_type": "t2.small"}}});
    assert_eq!(app.call(Method::POST, "/api/v1/images", &admin, Some(image)).await.0, 201);
    let token = app.user(&admin, "alice").await;
    let alice = Ui::sign_in(&app, "alice", "alice-password").await;
    let (_, page) = alice.get("/vms").await;
    assert!(page.contains("id=\"launch-protect\" name=\"termination_protection\"") && page.contains("Termination protection"), "{page}");
    assert!(!page.contains("name=\"termination_protection\" value=\"on\" checked"), "unticked by default");
    let (s, page) = alice
        .post("/vms", &[("instance", "sb"), ("image", "ubuntu"), ("count", "two"), ("name", "guarded"), ("termination_protection", "on")])
        .await;
    assert_eq!(s, 400, "{page}");
    assert!(page.contains("name=\"termination_protection\" value=\"on\" checked"), "kept ticked: {page}");
    let (s, page) = alice
        .post("/vms", &[("instance", "sb"), ("image", "ubuntu"), ("count", "2"), ("name", "guarded"), ("termination_protection", "on")])
        .await;
    assert!(s == 200 && page.contains("Launched 2 VM(s)"), "{s} {page}");
    let (s, page) = alice.post("/vms", &[("instance", "sb"), ("image", "ubuntu"), ("name", "open")]).await;
    assert!(s == 200 && page.contains("Launched 1 VM(s)"), "{s} {page}");
    let (_, list) = app.call(Method::GET, "/api/v1/vms", &token, None).await;
    let vms = list["vms"].as_array().unwrap();
    assert_eq!(vms.len(), 3, "{list}");
    for vm in vms {
        let (s, b) = app.call(Method::POST, &format!("/api/v1/vms/{}/terminate", vm["id"].as_str().unwrap()), &token, None).await;
        if vm["name"].as_str().unwrap().starts_with("guarded") {
            assert_eq!((s, b["error"]["code"].as_str()), (409, Some("not_permitted")), "{vm} {b}");
        } else {
            assert!(s == 200 || s == 202, "{vm}: {s} {b}");
        }
    }
    app.stop().await;
}

db_url_test!(ui_protection, super::ui_launch_protection);
