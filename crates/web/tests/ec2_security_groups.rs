//! Security groups with boto3 (tests/ec2/boto3_security_groups.py) on a
//! broker whose regions are a sandbox instance and an `ec2` instance in
//! front of moto, on SQLite and PostgreSQL: groups made, described with
//! filters, their rules added and removed in every form EC2 takes, launches
//! into them by id and by name, EC2's error codes, and another user's
//! groups never seen nor touched; the audit log records each change.

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

async fn security_groups(db_url: Option<String>) {
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
        ("REGIONS".into(), "sb=ubuntu,aws=moto-linux".into()),
        ("STRICT".into(), "sb".into()),
        ("AWS_EC2_METADATA_DISABLED".into(), "true".into()),
    ];
    for (u, cloud_key) in [("alice", "AKIAALICEMOTO000001"), ("bob", "AKIABOBMOTO0000001")] {
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
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ec2/boto3_security_groups.py");
    let (ok, stdout, stderr) =
        tokio::task::spawn_blocking(move || run(cloudbroker_testkit::venv_python(), vec![script.display().to_string()], env))
            .await
            .unwrap();
    assert!(ok, "boto3 script failed:\n{stderr}\n{stdout}");
    let out: Value = serde_json::from_str(stdout.lines().last().unwrap_or("")).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    for region in ["sb", "aws"] {
        let o = &out[region];
        let is = |k: &str, want: Value| assert_eq!(o[k], want, "{region} {k}: {o}");
        is("ids", json!([true, true, true]));
        is("duplicate", json!("InvalidGroup.Duplicate"));
        is("sg_name", json!("InvalidParameterValue"));
        is("dry_run", json!("DryRunOperation"));
        is("described", json!([format!("web-{region}"), "web servers", {"team": "web"}]));
        is("egress_default", json!(true));
        is("vpc", json!(true));
        is("added", json!([["tcp", 22, "10.0.0.0/8", false], ["tcp", 443, "::/0", false]]));
        is("rule_ids", json!(true));
        is("dup_rule", json!("InvalidPermission.Duplicate"));
        for k in ["bad_cidr", "bad_port", "bad_protocol"] {
            is(k, json!("InvalidParameterValue"));
        }
        is("ingress", json!([["tcp", 22, 1, 0], ["tcp", 443, 0, 1], ["udp", 53, 1, 0]]));
        is("descriptions", json!(["ssh"]));
        is("source_group", json!([true]));
        is("egress_rule", json!(true));
        is("filters", json!([1, 1, 1, 1, 1, 2, 1]));
        is("bad_filter", json!("InvalidParameterValue"));
        is("malformed", json!("InvalidGroupId.Malformed"));
        is("unknown", json!("InvalidGroup.NotFound"));
        is("rules", json!([[false, "tcp", 22], [false, "tcp", 443], [false, "udp", 53], [true, "-1", -1]]));
        is("revoked_again", json!("InvalidPermission.NotFound"));
        is("after_revoke", json!([53, 443]));
        is("bob_list", json!([]));
        for k in ["bob_describe", "bob_delete", "bob_authorize", "bob_revoke", "bob_run", "bob_peer"] {
            is(k, json!("InvalidGroup.NotFound"));
        }
        is("launched", json!([true, true]));
        is("run_unknown", json!("InvalidGroup.NotFound"));
        is("run_malformed", json!("InvalidGroupId.Malformed"));
        is("run_dry", json!("DryRunOperation"));
        is("run_dry_unknown", json!("InvalidGroup.NotFound"));
        is("delete_default", json!("CannotDelete"));
        is("deleted", json!("InvalidGroup.NotFound"));
        is("deleted_again", json!("InvalidGroup.NotFound"));
        is("left", json!([]));
    }
    assert_eq!(out["sb"]["in_use"], "DependencyViolation", "{out}");
    // The audit log has each step.
    let (s, log) = app.call(Method::GET, "/api/v1/audit?limit=500", &admin, None).await;
    assert_eq!(s, 200, "{log}");
    let text = log.to_string();
    for action in ["security_group.create", "security_group.delete", "security_group.authorize", "security_group.revoke"] {
        assert!(text.contains(&format!("\"{action}\"")), "{action} missing from the audit log");
    }
    // moto saw the calls, with the groups' ids.
    for action in ["CreateSecurityGroup", "AuthorizeSecurityGroupIngress", "RevokeSecurityGroupIngress", "DeleteSecurityGroup"] {
        assert!(moto.action_count(action).await >= 1, "{action} never reached moto");
    }
}

db_url_test!(boto3_security_groups, super::security_groups);
