//! Tags on every recorded cloud object and the fields instances and volumes
//! were missing, with boto3 (tests/ec2/boto3_tags_fields.py) on a broker
//! whose regions are a sandbox instance and an `ec2` instance in front of
//! moto, on SQLite and PostgreSQL: CreateTags/DeleteTags on VPCs, subnets,
//! security groups and snapshots (DescribeTags, tagSet and tag filters see
//! each change at once; the 40-tag cap; dry runs; another project's ids are
//! the kind's NotFound; a viewer is refused; a mixed CreateTags is
//! all-or-nothing); instances' groupSet and block devices (the root volume
//! and those of BlockDeviceMapping.N) with their filters; DescribeVolumes'
//! encrypted, iops, throughput and snapshotId with their filters.

// Test code: panicking on an unexpected result is the point.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use cloudbroker_core::domain::{ProjectName, ProjectRole};
use cloudbroker_core::testing::user;
use cloudbroker_core::Actor;
use common::{TestApp, SUPER_PW};
use reqwest::Method;
use serde_json::{json, Value};

fn run(program: std::path::PathBuf, args: Vec<String>, env: Vec<(String, String)>) -> (bool, String, String) {
    let out = std::process::Command::new(program).args(args).envs(env).output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// An access key of `who` (with its token), acting in `project` (`None`: the personal one).
async fn key(app: &TestApp, token: &str, who: &str, project: Option<&str>) -> (String, String) {
    let body = project.map(|p| json!({ "project": p }));
    let (s, k) = app.call(Method::POST, &format!("/api/v1/users/{who}/access-keys"), token, body).await;
    assert_eq!(s, 201, "{k}");
    (k["access_key_id"].as_str().unwrap().to_string(), k["secret_access_key"].as_str().unwrap().to_string())
}

async fn tags_fields(db_url: Option<String>) {
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
        ("AWS_EC2_METADATA_DISABLED".into(), "true".into()),
        ("AWS_CONFIG_FILE".into(), "/dev/null".into()),
        ("AWS_SHARED_CREDENTIALS_FILE".into(), "/dev/null".into()),
    ];
    let mut tokens = std::collections::BTreeMap::new();
    for (u, cloud_key) in [("alice", "AKIAALICEMOTO000001"), ("bob", "AKIABOBMOTO0000001"), ("vera", "AKIAVERAMOTO000001")] {
        let t = app.user(&admin, u).await;
        let body = json!({"access_key_id": cloud_key, "secret_access_key": format!("{u}-moto-secret")});
        let (s, b) = app.call(Method::PUT, &format!("/api/v1/users/{u}/credentials/aws"), &t, Some(body)).await;
        assert_eq!(s, 200, "{b}");
        tokens.insert(u, t);
    }
    // team-t: alice owns it, vera is a viewer.
    let team = ProjectName::parse("team-t").unwrap();
    let alice = Actor::new(user("alice"), false);
    app.broker.projects.create(&alice, &team, "team T", None).await.unwrap();
    app.broker.projects.set_member(&alice, &team, &user("vera"), ProjectRole::Viewer).await.unwrap();
    for (var, who, project) in
        [("ALICE", "alice", None), ("BOB", "bob", None), ("OWNER_TEAM", "alice", Some("team-t")), ("VERA_TEAM", "vera", Some("team-t"))]
    {
        let (ak, sk) = key(&app, &tokens[who], who, project).await;
        env.push((format!("{var}_AK"), ak));
        env.push((format!("{var}_SK"), sk));
    }
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ec2/boto3_tags_fields.py");
    let (ok, stdout, stderr) =
        tokio::task::spawn_blocking(move || run(cloudbroker_testkit::venv_python(), vec![script.display().to_string()], env))
            .await
            .unwrap();
    assert!(ok, "boto3 script failed:\n{stderr}\n{stdout}");
    let out: Value = serde_json::from_str(stdout.lines().last().unwrap_or("")).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    for region in ["sb", "aws"] {
        let o = &out[region];
        let is = |k: &str, want: Value| assert_eq!(o[k], want, "{region} {k}: {o}");
        // 1. Tags on VPCs, subnets, groups and snapshots.
        is("tag_sets", json!([true, true, true, true]));
        is("tag_filters", json!([1, 1, 1, 1]));
        is("describe_tags", json!([[true, "security-group"], [true, "snapshot"], [true, "subnet"], [true, "vpc"]]));
        is("describe_tags_count", json!(8));
        is("by_type", json!([1, 1, 1, 1]));
        is("deleted_one", json!([{"Name": "blue"}, 0]));
        is("deleted_all", json!({}));
        is("delete_value_mismatch", json!([null, {"Name": "blue", "env": "dev"}]));
        is("cap", json!([40, "TagLimitExceeded"]));
        is("reserved", json!("InvalidParameterValue"));
        is("dry", json!(["DryRunOperation", "DryRunOperation", 0, {"Name": "blue"}]));
        is("bob", json!(["InvalidVpcID.NotFound", "InvalidSubnetID.NotFound", "InvalidGroup.NotFound", "InvalidSnapshot.NotFound"]));
        is("bob_delete", json!(["InvalidVpcID.NotFound", "InvalidSubnetID.NotFound", "InvalidGroup.NotFound", "InvalidSnapshot.NotFound"]));
        is("bob_sees", json!(0));
        is("unknown", json!("InvalidVpcID.NotFound"));
        is("mixed", json!(["InvalidVpcID.NotFound", 0]));
        is("mixed_ok", json!(["instance", "volume", "vpc"]));
        is("team", json!(["UnauthorizedOperation", "UnauthorizedOperation", "UnauthorizedOperation", [["vpc", "Name", "team"]]]));
        // 2. groupSet, as the cloud answered the launch.
        is("run_groups", json!([[true, "web"]]));
        is("groups", json!([[true, "web"]]));
        is("plain_groups", json!(["default"]));
        // 3. Block devices: the root volume, and those of BlockDeviceMapping.N.
        is("sdf", json!([[true, false, "attached"]]));
        is("root", json!([["/dev/sda1", true, true]]));
        is("instance_filters", json!([[true], [true], [true], [], [true], [true]]));
        // 4. Volumes' options.
        is("create_answer", json!([true, 4000, 250]));
        is("volume_fields", json!([true, 4000, 250, "", true, false, ""]));
        is("volume_filters", json!([[true], [true]]));
        is("unencrypted_has_fast", json!(false));
    }
    // moto saw the tags.
    assert!(moto.action_count("CreateTags").await >= 1, "CreateTags never reached moto");
}

crate::db_url_test!(boto3_tags_fields, super::tags_fields);
