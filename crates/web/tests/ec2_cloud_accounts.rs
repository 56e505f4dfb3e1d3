//! Several cloud accounts behind one project (issue 22), with boto3
//! (tests/ec2/boto3_cloud_accounts.py) on a broker whose regions are a
//! sandbox instance (one account per user) and an `ec2` instance in front
//! of moto (bob's credential a role of another account, from moto's STS),
//! on SQLite and PostgreSQL: an image made from a VM shared with a user of
//! another account is granted to that account at the cloud and revoked on
//! removal; a member launches into a teammate's subnet (and group) of
//! another account, the VM recorded with the teammate's credential; a
//! member of another account launches the team's image. And VMs the
//! reconciler adopts carry their subnet and VPC in DescribeInstances.

// Test code: panicking on an unexpected result is the point.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[macro_use]
mod common;

use cloudbroker_core::domain::VmId;
use cloudbroker_core::testing::{instance, user};
use common::{TestApp, SUPER_PW};
use reqwest::Method;
use serde_json::{json, Value};

/// moto's account for keys it does not know (alice's).
const ACCOUNT_A: &str = "123456789012";
/// The account bob's role is in.
const ACCOUNT_B: &str = "222222222222";

fn run(program: std::path::PathBuf, args: Vec<String>, env: Vec<(String, String)>) -> (bool, String, String) {
    let out = std::process::Command::new(program).args(args).envs(env).output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// Keys of a role in `account` from moto's STS (AssumeRole): moto treats
/// them as that account's.
fn assumed_role(moto: &str, account: &str) -> (String, String) {
    let code = format!(
        "import boto3\n\
         c = boto3.client('sts', endpoint_url='{moto}', region_name='us-east-1', aws_access_key_id='AKIASTSCALLER000001', aws_secret_access_key='x')\n\
         k = c.assume_role(RoleArn='arn:aws:iam::{account}:role/broker', RoleSessionName='broker')['Credentials']\n\
         print(k['AccessKeyId'], k['SecretAccessKey'])\n"
    );
    let (ok, stdout, stderr) = run(cloudbroker_testkit::venv_python(), vec!["-c".into(), code], vec![]);
    assert!(ok, "AssumeRole failed: {stderr}");
    let mut parts = stdout.split_whitespace();
    (parts.next().unwrap().to_string(), parts.next().unwrap().to_string())
}

async fn key(app: &TestApp, token: &str, who: &str, project: Option<&str>) -> (String, String) {
    let body = project.map(|p| json!({ "project": p }));
    let (s, k) = app.call(Method::POST, &format!("/api/v1/users/{who}/access-keys"), token, body).await;
    assert_eq!(s, 201, "{k}");
    (k["access_key_id"].as_str().unwrap().to_string(), k["secret_access_key"].as_str().unwrap().to_string())
}

async fn cloud_accounts(db_url: Option<String>) {
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
    let (bob_cloud_ak, bob_cloud_sk) = assumed_role(&moto.endpoint(), ACCOUNT_B);
    let mut env = vec![
        ("EP".to_string(), app.url("/ec2")),
        ("REGIONS".into(), "sb=ubuntu,aws=moto-linux".into()),
        ("MOTO_REGIONS".into(), "aws".into()),
        ("MOTO".into(), moto.endpoint()),
        ("MOTO_ALICE_AK".into(), "AKIAALICEMOTO000001".into()),
        ("MOTO_ALICE_SK".into(), "alice-moto-secret".into()),
        ("AWS_EC2_METADATA_DISABLED".into(), "true".into()),
    ];
    let mut tokens = Vec::new();
    for u in ["alice", "bob", "carol"] {
        let t = app.user(&admin, u).await;
        let (ak, sk) = key(&app, &t, u, None).await;
        env.push((format!("{}_AK", u.to_uppercase()), ak));
        env.push((format!("{}_SK", u.to_uppercase()), sk));
        tokens.push(t);
    }
    let (alice, bob) = (tokens[0].clone(), tokens[1].clone());
    for (u, t, cloud_key) in [
        ("alice", &alice, ("AKIAALICEMOTO000001".to_string(), "alice-moto-secret".to_string())),
        ("bob", &bob, (bob_cloud_ak, bob_cloud_sk)),
    ] {
        let body = json!({"access_key_id": cloud_key.0, "secret_access_key": cloud_key.1});
        let (s, b) = app.call(Method::PUT, &format!("/api/v1/users/{u}/credentials/aws"), t, Some(body)).await;
        assert_eq!(s, 200, "{b}");
    }
    let (s, b) = app.call(Method::POST, "/api/v1/projects", &alice, Some(json!({"name": "team"}))).await;
    assert_eq!(s, 201, "{b}");
    let (s, b) = app.call(Method::PUT, "/api/v1/projects/team/members/bob", &alice, Some(json!({"role": "member"}))).await;
    assert!(s == 200 || s == 201 || s == 204, "{s} {b}");
    for (u, t) in [("alice", &alice), ("bob", &bob)] {
        let (ak, sk) = key(&app, t, u, Some("team")).await;
        env.push((format!("{}_TEAM_AK", u.to_uppercase()), ak));
        env.push((format!("{}_TEAM_SK", u.to_uppercase()), sk));
    }
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ec2/boto3_cloud_accounts.py");
    // States move on as the reconciler sees them (as the broker's worker would).
    let broker = app.broker.clone();
    let reconciler = tokio::spawn(async move {
        loop {
            let _ = broker.provisioning.reconcile("ec2-cloud-accounts-test").await;
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
        assert_eq!(o["bob_launched"], true, "{region}: {o}");
        assert_eq!(o["bob_after_remove"], "InvalidAMIID.NotFound", "{region}: {o}");
        assert_eq!(o["carol_sees"].as_array().map(Vec::len), Some(1), "{region}: {o}");
        assert_eq!(o["team_placed"], json!([true, true, true]), "{region}: {o}");
        assert_eq!(o["team_acted"], true, "{region}: {o}");
        assert_eq!(o["team_image_launched"], true, "{region}: {o}");
    }
    // At moto: bob's account granted on share (carol has no credential
    // there: nothing for her), revoked on removal.
    let aws = &out["aws"];
    assert_eq!(aws["cloud_before"], json!([]), "{aws}");
    assert_eq!(aws["cloud_shared"], json!([ACCOUNT_B]), "{aws}");
    assert_eq!(aws["cloud_removed"], json!([]), "{aws}");
    // bob's VM in alice's subnet is in alice's cloud account, recorded with her credential.
    let snap = app.broker.registry.snapshot();
    let alice_name = user("alice");
    for (region, account) in [("aws", ACCOUNT_A), ("sb", "sandbox-alice")] {
        let instance = instance(region);
        let conn = snap.instance(region).unwrap().connector.clone().unwrap();
        let (creds, cred_id) = app.broker.vault.credentials_for(&alice_name, &instance).await.unwrap();
        assert_eq!(conn.account_id(&creds).await.unwrap(), account, "{region}");
        let ec2_id = out[region]["team_cloud_id"].as_str().unwrap();
        let vm = VmId::parse(&format!("vm-{}", ec2_id.trim_start_matches("i-"))).unwrap();
        let row = app.broker.store().get_vm(&vm).await.unwrap().unwrap_or_else(|| panic!("{region}: no record {vm}"));
        assert_eq!((row.user.as_str(), row.project.as_str()), ("bob", "team"), "{region}: the launcher's VM (quotas, costs)");
        assert_eq!(row.credential_id, cred_id, "{region}: recorded with alice's credential");
        let cloud_ids: Vec<String> = conn
            .describe_instances(&creds, &cloudbroker_connector_api::DescribeFilter::default())
            .await
            .unwrap()
            .into_iter()
            .map(|v| v.id)
            .collect();
        assert!(cloud_ids.contains(row.cloud_id.as_ref().unwrap()), "{region}: in alice's account: {cloud_ids:?}");
    }
    let (s, log) = app.call(Method::GET, "/api/v1/audit?limit=500", &admin, None).await;
    assert_eq!(s, 200, "{log}");
    assert!(log.to_string().contains("\"image.share\""), "image.share missing from the audit log");
    assert!(moto.action_count("ModifyImageAttribute").await >= 2, "grant and revoke reached moto");
}

db_url_test!(images_and_networks_across_cloud_accounts, crate::cloud_accounts);

/// The text of the first `<tag>` in `xml`.
fn element(xml: &str, tag: &str) -> String {
    let start = xml.find(&format!("<{tag}>")).unwrap_or_else(|| panic!("no {tag} in {xml}")) + tag.len() + 2;
    let end = xml[start..].find(&format!("</{tag}>")).unwrap() + start;
    xml[start..end].to_string()
}

app_test!(adopted_vms_carry_their_subnet_and_vpc, |app: TestApp| async move {
    let admin = app.token("super", SUPER_PW).await;
    let alice = app.user(&admin, "alice").await;
    let alice_key = key(&app, &alice, "alice", None).await;
    app.call(Method::PUT, "/api/v1/system/config", &admin, Some(json!({"images.allow.raw": true}))).await;
    let (s, b) = app.call(Method::POST, "/api/v1/vms", &alice, Some(json!({"instance": "sb", "image": "ami-sandbox-debian-12"}))).await;
    assert_eq!(s, 201, "{b}");
    // A VM launched with the broker's tags whose record is lost (a restored backup).
    let snap = app.broker.registry.snapshot();
    let conn = snap.instance("sb").unwrap().connector.clone().unwrap();
    let sb = instance("sb");
    let (creds, _) = app.broker.vault.credentials_for(&user("alice"), &sb).await.unwrap();
    let run = cloudbroker_connector_api::RunRequest {
        image_id: "ami-sandbox-debian-12".into(),
        instance_type: "t2.micro".into(),
        count: 1,
        tags: vec![
            ("cloudbroker:broker".into(), app.broker.provisioning.broker_id().into()),
            ("cloudbroker:user".into(), "alice".into()),
            ("cloudbroker:launch".into(), "lost-launch".into()),
        ],
        client_token: "lost".into(),
        ..Default::default()
    };
    let orphan = conn.run_instances(&creds, &run).await.unwrap().remove(0);
    let (subnet, vpc) = (orphan.subnet_id.clone().unwrap(), orphan.vpc_id.clone().unwrap());
    let r = app.broker.provisioning.reconcile("adopt-test").await.unwrap();
    assert_eq!(r.adopted, 1, "{r:?}");
    let row = app.broker.store().vm_by_cloud_id(&sb, &orphan.id).await.unwrap().unwrap();
    let got = app.broker.store().vm_networks(std::slice::from_ref(&row.id)).await.unwrap();
    assert_eq!(got.get(&row.id), Some(&(subnet.clone(), vpc.clone())));
    let ec2_id = format!("i-{}", row.id.as_str().trim_start_matches("vm-"));
    let (s, xml) = app.ec2_call(&alice_key, "sb", &format!("Action=DescribeInstances&Version=2016-11-15&InstanceId.1={ec2_id}")).await;
    assert_eq!(s, 200, "{xml}");
    assert_eq!((element(&xml, "subnetId"), element(&xml, "vpcId")), (subnet, vpc), "{xml}");
    // A second pass writes nothing new (the record is there).
    let r = app.broker.provisioning.reconcile("adopt-test").await.unwrap();
    assert_eq!(r.adopted, 0, "{r:?}");
});

/// A launch whose answer never came (a timeout) is adopted by the
/// reconciler with its subnet and VPC (moto's description).
async fn adopted_after_a_timeout(db_url: Option<String>) {
    let moto = cloudbroker_testkit::MotoServer::start(cloudbroker_testkit::MotoOptions::default());
    let app = TestApp::on_moto(db_url, &moto, "aws.timeout.seconds = 1\n").await;
    let admin = app.token("super", SUPER_PW).await;
    let creds = json!({"access_key_id": "AKIATIMEOUT00000001", "secret_access_key": "t-secret"});
    assert_eq!(app.call(Method::PUT, "/api/v1/users/super/credentials/aws", &admin, Some(creds)).await.0, 200);
    app.call(Method::POST, "/api/v1/images", &admin, Some(json!({"name": "img", "mappings": {"aws": {"image_id": "ami-12c6146b"}}}))).await;
    moto.set_faults(json!({"delay_ms": 1500, "delay_actions": ["RunInstances"]})).await;
    let (s, b) = app.call(Method::POST, "/api/v1/vms", &admin, Some(json!({"instance": "aws", "image": "img"}))).await;
    assert_eq!(s, 504, "{b}");
    tokio::time::sleep(std::time::Duration::from_millis(1000)).await;
    moto.set_faults(json!({})).await;
    let r = app.broker.provisioning.reconcile("adopt-test").await.unwrap();
    assert_eq!(r.adopted, 1, "{r:?}");
    let (_, l) = app.call(Method::GET, "/api/v1/vms", &admin, None).await;
    let id = VmId::parse(l["vms"][0]["id"].as_str().unwrap()).unwrap();
    let got = app.broker.store().vm_networks(std::slice::from_ref(&id)).await.unwrap();
    let (subnet, vpc) = got.get(&id).cloned().unwrap_or_else(|| panic!("no network recorded: {l}"));
    assert!(subnet.starts_with("subnet-") && vpc.starts_with("vpc-"), "{subnet} {vpc}");
}

db_url_test!(a_timed_out_launch_is_adopted_with_its_network, crate::adopted_after_a_timeout);
