//! A launch into an EC2 cloud is one cloud call: the security group and the
//! user's key pair are made sure of once per cloud account (and again after
//! `PREPARED_TTL`), not before every RunInstances, and once for a burst of
//! launches arriving together. When one of them vanishes
//! behind the broker's back, the next launch still succeeds: RunInstances is
//! refused with the cloud's not-found code, the broker makes sure again and
//! asks once more, and no VM is launched twice. Against moto, counting the
//! calls it receives; on SQLite and PostgreSQL. moto itself does not refuse
//! a RunInstances naming a deleted group (it fails with an HTML 500) or key
//! pair (it launches): the fault wrapper answers what EC2 answers there.
//!
//! The transition watch (every few seconds while VMs are pending) asks the
//! cloud for the moving VMs' states by id (DescribeInstanceStatus), never
//! for a listing of the whole account (which costs the cloud as much as the
//! account is big); it describes a VM in full only when its addresses may
//! have changed, and falls back to describing when the credential may not
//! ask for states.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::zombie_processes)]

mod common;

use cloudbroker_core::domain::{VmId, VmStatus};
use cloudbroker_store::vms::VmUpdate;
use cloudbroker_testkit::{MotoOptions, MotoServer};
use common::{TestApp, SUPER_PW};
use reqwest::Method;
use serde_json::{json, Value};

const GROUP: &str = "cb-prep-group";
const SSH_KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFQpWmwNDw+/viwoFdeIlYgFCWnA/NgoR/X5ICtefgTf alice@laptop";

/// An EC2 Query call straight to moto (behind the broker's back); the
/// EC2-only moto takes any signature.
async fn moto_call(moto: &MotoServer, params: &[(&str, &str)]) -> (u16, String) {
    let mut form: Vec<(&str, &str)> = vec![("Version", "2016-11-15")];
    form.extend_from_slice(params);
    let r = reqwest::Client::new()
        .post(format!("{}/", moto.endpoint()))
        .header(
            "authorization",
            "AWS4-HMAC-SHA256 Credential=AKIAALICEMOTO000001/20260101/us-east-1/ec2/aws4_request, SignedHeaders=host, Signature=00",
        )
        .form(&form)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// Counters back to zero, and the next RunInstances refused with the EC2
/// error `code` (what EC2 answers where moto does not).
async fn refuse_next_run(moto: &MotoServer, code: &str, message: &str) {
    moto.reset().await;
    moto.set_faults(json!({"error_first": 1, "error_actions": ["RunInstances"], "error_code": code, "error_message": message})).await;
}

async fn counts(moto: &MotoServer) -> Value {
    moto.stats().await["actions"].clone()
}

fn n(actions: &Value, action: &str) -> u64 {
    actions[action].as_u64().unwrap_or(0)
}

async fn launch(app: &TestApp, moto: &MotoServer, token: &str, name: &str) -> Value {
    let body = json!({"instance": "aws", "image": "ubuntu", "name": name});
    let (s, b) = app.call(Method::POST, "/api/v1/vms", token, Some(body)).await;
    assert_eq!(s, 201, "launch {name}: {b}\nmoto's log:\n{}", moto.log());
    b["vms"][0].clone()
}

/// moto (EC2 only), a broker with an `aws` instance on it (`extra_conf`
/// lines added), the image `ubuntu` and alice with her moto credentials.
/// Returns moto, the broker and alice's token.
async fn start(db_url: Option<String>, extra_conf: &str) -> (MotoServer, TestApp, String) {
    let moto = MotoServer::start(MotoOptions { ec2_only: true, ..MotoOptions::default() });
    let app = TestApp::on_moto(db_url, &moto, extra_conf).await;
    let admin = app.token("super", SUPER_PW).await;
    let alice = app.user(&admin, "alice").await;
    let image = json!({"name": "ubuntu", "mappings": {"aws": {"image_id": "ami-12c6146b", "instance_type": "t3.micro"}}});
    assert_eq!(app.call(Method::POST, "/api/v1/images", &admin, Some(image)).await.0, 201);
    let creds = json!({"access_key_id": "AKIAALICEMOTO000001", "secret_access_key": "alice-moto-secret"});
    assert_eq!(app.call(Method::PUT, "/api/v1/users/alice/credentials/aws", &alice, Some(creds)).await.0, 200);
    (moto, app, alice)
}

async fn launches_prepare_once(db_url: Option<String>) {
    let (moto, app, alice) = start(db_url, &format!("aws.security.group = {GROUP}\n")).await;
    assert_eq!(app.call(Method::PUT, "/api/v1/users/alice/ssh-key", &alice, Some(json!({"ssh_public_key": SSH_KEY}))).await.0, 204);

    // Four launches at once (a burst into an account not prepared yet), then
    // two more: the group and the key pair are made sure of once in all.
    moto.reset().await;
    let names: Vec<String> = (0..4).map(|i| format!("p{i}")).collect();
    let burst = futures::future::join_all(names.iter().map(|name| launch(&app, &moto, &alice, name))).await;
    let mut cloud_ids: Vec<String> = burst.iter().map(|vm| vm["cloud_id"].as_str().unwrap().to_string()).collect();
    for i in 4..6 {
        cloud_ids.push(launch(&app, &moto, &alice, &format!("p{i}")).await["cloud_id"].as_str().unwrap().to_string());
    }
    let a = counts(&moto).await;
    assert_eq!(n(&a, "RunInstances"), 6, "{a}");
    assert_eq!(
        (n(&a, "DescribeSecurityGroups"), n(&a, "CreateSecurityGroup")),
        (1, 1),
        "the group was made sure of per launch (or per launch of the burst): {a}"
    );
    assert_eq!(
        (n(&a, "DescribeKeyPairs"), n(&a, "ImportKeyPair")),
        (1, 1),
        "the key pair was made sure of per launch (or per launch of the burst): {a}"
    );

    // The group vanishes behind the broker's back: the next launch is
    // refused once by the cloud, the group made again, and the launch lands.
    let (s, body) = moto_call(&moto, &[("Action", "DeleteSecurityGroup"), ("GroupName", GROUP)]).await;
    assert_eq!(s, 200, "{body}");
    refuse_next_run(&moto, "InvalidGroup.NotFound", &format!("The security group '{GROUP}' does not exist in default VPC 'vpc-1'")).await;
    let vm = launch(&app, &moto, &alice, "after-group-gone").await;
    assert_eq!(vm["state"], "pending", "launched, not failed: {vm}");
    let a = counts(&moto).await;
    assert_eq!(n(&a, "RunInstances"), 2, "one refused for the missing group, one launched: {a}");
    assert_eq!(n(&a, "CreateSecurityGroup"), 1, "{a}");
    let (_, groups) = moto_call(&moto, &[("Action", "DescribeSecurityGroups")]).await;
    assert!(groups.contains(&format!("<groupName>{GROUP}</groupName>")), "the group was not made again: {groups}");
    cloud_ids.push(vm["cloud_id"].as_str().unwrap().to_string());

    // Same for the key pair.
    let (_, keys) = moto_call(&moto, &[("Action", "DescribeKeyPairs")]).await;
    let key_name = keys.split("<keyName>").nth(1).and_then(|r| r.split("</keyName>").next()).unwrap().to_string();
    assert!(key_name.starts_with("cloudbroker-alice-"), "{keys}");
    let (s, body) = moto_call(&moto, &[("Action", "DeleteKeyPair"), ("KeyName", &key_name)]).await;
    assert_eq!(s, 200, "{body}");
    refuse_next_run(&moto, "InvalidKeyPair.NotFound", &format!("The key pair '{key_name}' does not exist")).await;
    let vm = launch(&app, &moto, &alice, "after-key-gone").await;
    let a = counts(&moto).await;
    assert_eq!(n(&a, "RunInstances"), 2, "one refused for the missing key pair, one launched: {a}");
    assert_eq!(n(&a, "ImportKeyPair"), 1, "{a}");
    let (_, keys) = moto_call(&moto, &[("Action", "DescribeKeyPairs")]).await;
    assert!(keys.contains(&format!("<keyName>{key_name}</keyName>")), "the key pair was not imported again: {keys}");
    cloud_ids.push(vm["cloud_id"].as_str().unwrap().to_string());

    // Any other refusal is not asked again: one RunInstances, the launch failed with the cloud's code.
    moto.reset().await;
    moto.set_faults(json!({"capacity_error_actions": ["RunInstances"]})).await;
    let (s, b) = app.call(Method::POST, "/api/v1/vms", &alice, Some(json!({"instance": "aws", "image": "ubuntu"}))).await;
    assert_eq!((s, b["error"]["code"].as_str()), (503, Some("cloud.InsufficientInstanceCapacity")), "{b}");
    assert_eq!(n(&counts(&moto).await, "RunInstances"), 1);
    moto.set_faults(json!({})).await;

    // Nothing launched twice: the cloud holds exactly the eight VMs recorded.
    let (_, all) = moto_call(&moto, &[("Action", "DescribeInstances")]).await;
    let in_cloud = all.matches("<instanceId>").count();
    assert_eq!(in_cloud, 8, "{all}");
    cloud_ids.sort();
    cloud_ids.dedup();
    assert_eq!(cloud_ids.len(), 8);
    app.stop().await;
}

async fn the_watch_asks_by_id(db_url: Option<String>) {
    let (moto, app, alice) = start(db_url, "").await;
    // Five VMs the account already runs (settled), three just launched (pending).
    let mut settled = Vec::new();
    for i in 0..5 {
        settled.push(launch(&app, &moto, &alice, &format!("old{i}")).await["id"].as_str().unwrap().to_string());
    }
    app.broker.provisioning.reconcile("t").await.unwrap();
    let mut moving = Vec::new();
    for i in 0..3 {
        moving.push(launch(&app, &moto, &alice, &format!("new{i}")).await["id"].as_str().unwrap().to_string());
    }
    moto.reset().await;
    let r = app.broker.provisioning.watch_transitional("t").await.unwrap();
    assert_eq!((r.groups, r.updated), (1, 3), "{r:?}");
    let stats = moto.stats().await;
    let log = stats["log"].as_array().unwrap();
    let calls = |action: &str| log.iter().filter(|e| e["action"] == action).cloned().collect::<Vec<Value>>();
    // Only the states of the three, in one call: their addresses came with the launch.
    assert_eq!(calls("DescribeInstances").len(), 0, "{stats}");
    let status = calls("DescribeInstanceStatus");
    assert_eq!(status.len(), 1, "{stats}");
    assert_eq!(status[0]["instance_ids"].as_u64(), Some(3), "{stats}");
    for id in &moving {
        let (_, vm) = app.call(Method::GET, &format!("/api/v1/vms/{id}"), &alice, None).await;
        assert_eq!(vm["state"], "running", "{vm}");
    }

    // A VM whose public address the cloud gave after the launch (as EC2
    // does): described in full once it runs, so the record has the address.
    let store = cloudbroker_store::Store::connect(&app.db_url).await.unwrap();
    let row = store.get_vm(&VmId::parse(&moving[0]).unwrap()).await.unwrap().unwrap();
    let public_ip = row.public_ip.clone().unwrap();
    store.update_vm(&VmUpdate { private_ip: row.private_ip.as_deref(), ..VmUpdate::state(&row.id, VmStatus::Pending) }).await.unwrap();
    moto.reset().await;
    let r = app.broker.provisioning.watch_transitional("t").await.unwrap();
    assert_eq!(r.updated, 1, "{r:?}");
    let stats = moto.stats().await;
    let log = stats["log"].as_array().unwrap();
    let described: Vec<&Value> = log.iter().filter(|e| e["action"] == "DescribeInstances").collect();
    assert_eq!(described.len(), 1, "{stats}");
    assert_eq!((described[0]["instance_ids"].as_u64(), described[0]["filters"].as_u64()), (Some(1), Some(0)), "{stats}");
    let row = store.get_vm(&VmId::parse(&moving[0]).unwrap()).await.unwrap().unwrap();
    assert_eq!((row.state.as_str(), row.public_ip.as_deref()), ("running", Some(public_ip.as_str())));

    // A credential whose policy does not allow DescribeInstanceStatus: the
    // watch falls back to describing the VMs (by id), and still settles them.
    store
        .update_vm(&VmUpdate {
            private_ip: row.private_ip.as_deref(),
            public_ip: row.public_ip.as_deref(),
            ..VmUpdate::state(&row.id, VmStatus::Pending)
        })
        .await
        .unwrap();
    moto.reset().await;
    moto.set_faults(json!({"error_first": 1, "error_actions": ["DescribeInstanceStatus"], "error_code": "UnauthorizedOperation",
        "error_status": 403, "error_message": "You are not authorized to perform this operation."}))
        .await;
    let r = app.broker.provisioning.watch_transitional("t").await.unwrap();
    assert!(r.errors.is_empty() && r.updated == 1, "{r:?}");
    let stats = moto.stats().await;
    assert_eq!(
        (stats["actions"]["DescribeInstanceStatus"].as_u64(), stats["actions"]["DescribeInstances"].as_u64()),
        (Some(1), Some(1)),
        "{stats}"
    );
    assert_eq!(store.get_vm(&row.id).await.unwrap().unwrap().state.as_str(), "running");
    moto.set_faults(json!({})).await;
    store.close().await;

    // Nothing on the move: the watch asks the cloud nothing.
    moto.reset().await;
    let r = app.broker.provisioning.watch_transitional("t").await.unwrap();
    assert_eq!(r.groups, 0, "{r:?}");
    assert_eq!(moto.stats().await["requests"], 0);
    app.stop().await;
}

/// A burst of launches into an account whose check fails (here: the
/// credential may not describe security groups, after a slow answer): one
/// check, and every launch of the burst gets its answer, instead of each
/// asking in turn (a timing-out cloud would make the last wait one timeout
/// per launch before it). The next launch asks afresh and succeeds.
async fn a_burst_shares_one_failed_check(db_url: Option<String>) {
    let (moto, app, alice) = start(db_url, &format!("aws.security.group = {GROUP}\n")).await;
    moto.reset().await;
    moto.set_faults(json!({
        "delay_ms": 500, "delay_actions": ["DescribeSecurityGroups"],
        "error_first": 100, "error_actions": ["DescribeSecurityGroups"],
        "error_code": "UnauthorizedOperation", "error_status": 403,
        "error_message": "You are not authorized to perform this operation.",
    }))
    .await;
    let body = json!({"instance": "aws", "image": "ubuntu"});
    let burst = futures::future::join_all((0..4).map(|_| app.call(Method::POST, "/api/v1/vms", &alice, Some(body.clone())))).await;
    for (s, b) in &burst {
        assert_ne!(*s, 201, "{b}");
        assert!(b["error"]["code"].as_str().is_some_and(|c| c.contains("UnauthorizedOperation")), "{b}");
    }
    let a = counts(&moto).await;
    assert_eq!(n(&a, "DescribeSecurityGroups"), 1, "each launch of the burst asked: {a}");
    assert_eq!(n(&a, "RunInstances"), 0, "{a}");

    moto.set_faults(json!({})).await;
    moto.reset().await;
    launch(&app, &moto, &alice, "after").await;
    let a = counts(&moto).await;
    assert_eq!((n(&a, "DescribeSecurityGroups"), n(&a, "RunInstances")), (1, 1), "a failure is not remembered as done: {a}");
    app.stop().await;
}

db_url_test!(burst, super::a_burst_shares_one_failed_check);

db_url_test!(watch, super::the_watch_asks_by_id);

db_url_test!(prepare_once, super::launches_prepare_once);
