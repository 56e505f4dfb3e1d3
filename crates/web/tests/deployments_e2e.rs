//! A three-node deployment end to end on the sandbox, on both backends: one
//! `db` and two `web` that wait for `db.hostname` and `db.port`. The broker
//! deploys and drives it (the test runs the reconciler's and the driver's
//! passes itself); the
//! test plays the VMs through the exchange's HTTP API, each with its own
//! credential (computed as the driver computes it: `Exchange::vm_token`
//! of its slot), as their boot scripts' client would.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use cloudbroker_core::deployments::{AppName, DeployRequest, DeploymentId, DeploymentState, OnFailure, Placement};
use cloudbroker_core::domain::{InstanceName, UserName};
use cloudbroker_core::Actor;
use common::{TestApp, SUPER_PW};
use reqwest::Method;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::Duration;

const LAMP: &str = r#"
description: A database and two web servers that find it at boot
inputs:
  - {name: site_title, default: Hello}
nodes:
  db:
    image: linux
    inputs:
      - {name: db_password, secret: true}
    outputs:
      - {name: port}
    user_data: |
      #!/bin/sh
      cloudbroker-client set port 5432
      cloudbroker-client ready
  web:
    image: linux
    multiplicity: 2
    inputs:
      - {name: db_host}
      - {name: db_port}
    outputs:
      - {name: url}
    user_data: |
      #!/bin/sh
      DB=$(cloudbroker-client get db_host)
      cloudbroker-client ready
mappings:
  web.db_host: db.hostname
  web.db_port: db.port
"#;

/// Runs reconcile and driver passes (the broker's workers do both) until
/// `done` holds for the deployment (at most ~20 s).
async fn drive_until(
    app: &TestApp,
    actor: &Actor,
    id: &DeploymentId,
    what: &str,
    done: impl Fn(&cloudbroker_core::deployments::Deployment) -> bool,
) {
    for _ in 0..100 {
        app.broker.provisioning.reconcile("test").await.unwrap();
        app.broker.deployments.drive_pass().await.unwrap();
        let d = app.broker.deployments.get(actor, id).await.unwrap();
        if done(&d) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let d = app.broker.deployments.get(actor, id).await.unwrap();
    panic!("{what}: never happened; the deployment is {d:?}");
}

app_test!(three_nodes_find_each_other_through_the_exchange, |app: TestApp| async move { scenario(app, "sb").await });

/// The same with the web nodes on an `ec2` instance in front of moto.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn across_the_sandbox_and_ec2_in_front_of_moto() {
    let moto = cloudbroker_testkit::MotoServer::start(cloudbroker_testkit::MotoOptions::default());
    let app = TestApp::on_moto(None, &moto, "").await;
    scenario(app, "aws").await;
}

/// db on the sandbox `sb`, web on `web_on`.
async fn scenario(app: TestApp, web_on: &str) {
    let admin = app.token("super", SUPER_PW).await;
    let mut mappings = json!({"sb": {"image_id": "ami-sandbox-debian-12", "instance_type": "t2.small"}});
    if web_on == "aws" {
        mappings["aws"] = json!({"image_id": "ami-12c6146b", "instance_type": "t2.micro"});
    }
    let (s, b) = app.call(Method::POST, "/api/v1/images", &admin, Some(json!({"name": "linux", "mappings": mappings}))).await;
    assert_eq!(s, 201, "{b}");
    let alice_token = app.user(&admin, "alice").await;
    if web_on == "aws" {
        let (s, b) = app
            .call(
                Method::PUT,
                "/api/v1/users/alice/credentials/aws",
                &alice_token,
                Some(json!({"access_key_id": "AKIAALICE0000000001", "secret_access_key": "alice-secret"})),
            )
            .await;
        assert!(s == 200 || s == 201, "{s} {b}");
    }
    let alice = Actor::new(UserName::parse("alice").unwrap(), false);
    let name = AppName::parse("lamp3").unwrap();
    app.broker.applications.save(&alice, &name, LAMP).await.unwrap();
    let on = |i: &str| Placement { instance: InstanceName::parse(i).unwrap(), multiplicity: None, instance_type: None };
    let req = DeployRequest {
        application: name.clone(),
        version: None,
        name: None,
        inputs: BTreeMap::from([("db.db_password".to_string(), "pw-very-secret".to_string())]),
        placement: BTreeMap::from([("db".to_string(), on("sb")), ("web".to_string(), on(web_on))]),
        on_failure: OnFailure::Terminate,
        timeout: None,
    };
    let d = app.broker.deployments.deploy(&alice, req).await.unwrap();
    let id = d.id.clone();
    // Every VM launched (no dependencies) and running.
    drive_until(&app, &alice, &id, "every VM running", |d| {
        d.nodes.iter().all(|n| n.members.len() == n.multiplicity as usize && n.members.iter().all(|m| m.state == "running"))
    })
    .await;
    let d = app.broker.deployments.get(&alice, &id).await.unwrap();
    assert_eq!(d.state, DeploymentState::Executing, "{d:?}");
    // Each VM's credential, as its user data carries it.
    let mut vms: BTreeMap<(String, i64), String> = BTreeMap::new();
    for n in &d.nodes {
        for m in &n.members {
            vms.insert((n.name.clone(), m.idx), app.broker.exchange.vm_token(&id, &n.name, m.idx, m.attempt).unwrap());
        }
    }
    assert_eq!(vms.len(), 3);
    let token = |node: &str, idx: i64| vms[&(node.to_string(), idx)].clone();
    // The broker published db's hostname; its port is not set yet.
    let (s, v) = app.call(Method::GET, "/api/v1/exchange/params/db_host", &token("web", 1), None).await;
    assert_eq!(s, 200, "{v}");
    assert!(!v["value"].as_str().unwrap().is_empty(), "{v}");
    let (s, v) = app.call(Method::GET, "/api/v1/exchange/params/db_port", &token("web", 2), None).await;
    assert_eq!((s, &v["error"]["code"]), (404, &json!("not_set")), "{v}");
    // Both web VMs wait on db.port (long poll) while db boots.
    let waits: Vec<_> = [1, 2]
        .into_iter()
        .map(|i| {
            let http = app.http.clone();
            let url = app.url("/api/v1/exchange/params/db_port?wait=30");
            let t = token("web", i);
            tokio::spawn(async move {
                let r = http.get(url).bearer_auth(t).header("accept", "text/plain").send().await.unwrap();
                (r.status().as_u16(), r.text().await.unwrap())
            })
        })
        .collect();
    // The deployment shows who waits on what.
    let mut waiting = Vec::new();
    for _ in 0..50 {
        let d = app.broker.deployments.get(&alice, &id).await.unwrap();
        waiting = d.nodes.iter().flat_map(|n| n.members.iter().map(move |m| (n.name.clone(), m.idx, m.waiting_on.clone()))).collect();
        if waiting.iter().filter(|(_, _, w)| !w.is_empty()).count() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        waiting,
        [
            ("db".to_string(), 1, vec![]),
            ("web".to_string(), 1, vec!["db_port".to_string()]),
            ("web".to_string(), 2, vec!["db_port".to_string()])
        ]
    );
    // db: reads its secret input, publishes its port, says it is ready.
    let (s, v) = app.call(Method::GET, "/api/v1/exchange/params/db_password", &token("db", 1), None).await;
    assert_eq!((s, &v["value"]), (200, &json!("pw-very-secret")), "{v}");
    let (s, v) = app.call(Method::PUT, "/api/v1/exchange/params/port", &token("db", 1), Some(json!({"value": "5432"}))).await;
    assert_eq!(s, 204, "{v}");
    for w in waits {
        assert_eq!(w.await.unwrap(), (200, "5432".to_string()));
    }
    assert_eq!(app.call(Method::POST, "/api/v1/exchange/ready", &token("db", 1), None).await.0, 204);
    // A web VM cannot read another deployment's parameters nor act as a user.
    let (s, _) = app.call(Method::GET, "/api/v1/vms", &token("web", 1), None).await;
    assert_eq!(s, 401);
    for i in [1, 2] {
        let (s, v) = app
            .call(Method::PUT, "/api/v1/exchange/params/url", &token("web", i), Some(json!({"value": format!("http://web-{i}/")})))
            .await;
        assert_eq!(s, 204, "{v}");
        assert_eq!(app.call(Method::POST, "/api/v1/exchange/ready", &token("web", i), None).await.0, 204);
    }
    drive_until(&app, &alice, &id, "the deployment ready", |d| d.state == DeploymentState::Ready).await;
    // What the user sees: every parameter, the secret masked; nobody waits.
    let params = app.broker.deployments.params(&alice, &id).await.unwrap();
    let shown: BTreeMap<&str, Option<&str>> = params.iter().map(|p| (p.name.as_str(), p.value.as_deref())).collect();
    assert_eq!(shown["db.1.port"], Some("5432"));
    assert_eq!(shown["web.2.url"], Some("http://web-2/"));
    assert_eq!(shown["db.input.db_password"], None, "a secret is never shown: {params:?}");
    assert!(shown.contains_key("db.1.hostname") && shown.contains_key("web.1.instanceid"), "{params:?}");
    let (s, v) = app.call(Method::GET, &format!("/api/v1/deployments/{id}/params"), &alice_token, None).await;
    if s == 200 {
        assert!(!v.to_string().contains("pw-very-secret"), "{v}");
    }
    let d = app.broker.deployments.get(&alice, &id).await.unwrap();
    assert!(d.nodes.iter().all(|n| n.members.iter().all(|m| m.waiting_on.is_empty())), "{d:?}");
    // Terminated: every credential stops working.
    app.broker.deployments.terminate(&alice, &id).await.unwrap();
    drive_until(&app, &alice, &id, "the deployment terminated", |d| d.state == DeploymentState::Terminated).await;
    for t in vms.values() {
        let (s, v): (u16, Value) = app.call(Method::GET, "/api/v1/exchange/self", t, None).await;
        assert_eq!(s, 401, "{v}");
    }
    app.stop().await;
}
