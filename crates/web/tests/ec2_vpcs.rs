//! VPCs and subnets with boto3 (tests/ec2/boto3_vpcs.py) on a broker whose
//! regions are a sandbox instance and an `ec2` instance in front of moto,
//! on SQLite and PostgreSQL: VPCs and subnets made, described with filters
//! and refused with EC2's codes; launches into a subnet (the private
//! address inside its block, SubnetId and VpcId shown) and by the
//! instance's `subnet.id` / `vpc.id`; another project's VPCs and subnets
//! never seen nor used; the account's default VPC seen by all but not
//! deleted; the audit log records each change.

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

async fn vpcs(db_url: Option<String>) {
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
        ("API".into(), app.url("")),
        ("ADMIN".into(), admin.clone()),
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
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ec2/boto3_vpcs.py");
    let (ok, stdout, stderr) =
        tokio::task::spawn_blocking(move || run(cloudbroker_testkit::venv_python(), vec![script.display().to_string()], env))
            .await
            .unwrap();
    assert!(ok, "boto3 script failed:\n{stderr}\n{stdout}");
    let out: Value = serde_json::from_str(stdout.lines().last().unwrap_or("")).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    for region in ["sb", "aws"] {
        let o = &out[region];
        let is = |k: &str, want: Value| assert_eq!(o[k], want, "{region} {k}: {o}");
        is("vpc", json!([true, "10.42.0.0/16", false]));
        is("vpc_range", json!("InvalidVpc.Range"));
        is("vpc_cidr", json!("InvalidParameterValue"));
        is("vpc_tenancy", json!("UnsupportedOperation"));
        is("vpc_dry", json!("DryRunOperation"));
        is("subnet", json!([true, true, "10.42.1.0/24", 251, false]));
        is("subnet_outside", json!("InvalidSubnet.Range"));
        is("subnet_small", json!("InvalidSubnet.Range"));
        is("subnet_conflict", json!("InvalidSubnet.Conflict"));
        is("subnet_no_vpc", json!("InvalidVpcID.NotFound"));
        is("vpc_malformed", json!("InvalidVpcID.Malformed"));
        is("vpc_unknown", json!("InvalidVpcID.NotFound"));
        is("subnet_malformed", json!("InvalidSubnetID.Malformed"));
        is("subnet_unknown", json!("InvalidSubnetID.NotFound"));
        is("delete_unknown", json!(["InvalidVpcID.NotFound", "InvalidSubnetID.NotFound"]));
        is("vpc_filters", json!([1, 1, 1, 1, 1, 1]));
        is("subnet_filters", json!([1, 1, 1, 1, 1, 1]));
        is("bad_filter", json!(["InvalidParameterValue", "InvalidParameterValue"]));
        is("map_public", json!(true));
        is("modify_missing", json!("MissingParameter"));
        is("modify_default", json!("UnauthorizedOperation"));
        is("launched", json!([true, true, true]));
        is("instance_filter", json!(1));
        is("run_unknown", json!("InvalidSubnetID.NotFound"));
        is("run_malformed", json!("InvalidSubnetID.Malformed"));
        is("run_dry", json!("DryRunOperation"));
        is("delete_vpc_busy", json!("DependencyViolation"));
        is("bob_list", json!([]));
        is(
            "bob",
            json!([
                "InvalidVpcID.NotFound",
                "InvalidSubnetID.NotFound",
                "InvalidVpcID.NotFound",
                "InvalidSubnetID.NotFound",
                "InvalidVpcID.NotFound",
                "InvalidSubnetID.NotFound",
                "InvalidSubnetID.NotFound"
            ]),
        );
        is("bob_default", json!(1));
        is("delete_default", json!("UnauthorizedOperation"));
        is("subnet_default", json!([true, true]));
        is("subnet_default_bob", json!("InvalidSubnetID.NotFound"));
        is("vpc_default", json!([true, true]));
        is("vpc_elsewhere", json!("InvalidParameterValue"));
        is("deleted", json!(["InvalidSubnetID.NotFound", "InvalidVpcID.NotFound"]));
    }
    assert_eq!(out["sb"]["delete_subnet_busy"], "DependencyViolation", "{out}");
    // The audit log has each step.
    let (s, log) = app.call(Method::GET, "/api/v1/audit?limit=500", &admin, None).await;
    assert_eq!(s, 200, "{log}");
    let text = log.to_string();
    for action in ["vpc.create", "vpc.delete", "subnet.create", "subnet.delete"] {
        assert!(text.contains(&format!("\"{action}\"")), "{action} missing from the audit log");
    }
    // moto saw the calls.
    for action in ["CreateVpc", "CreateSubnet", "ModifySubnetAttribute", "DeleteSubnet", "DeleteVpc"] {
        assert!(moto.action_count(action).await >= 1, "{action} never reached moto");
    }
}

crate::db_url_test!(boto3_vpcs, super::vpcs);
