//! The `ec2` connector against a real moto server on loopback (see
//! `cloudbroker-testkit`). Needs the venv made by `scripts/python-venv`.
#![allow(clippy::unwrap_used, clippy::panic)]

use cloudbroker_connector_api::model::tags;
use cloudbroker_connector_api::params::ParamValues;
use cloudbroker_connector_api::{Connector, ConnectorError, Credentials, DescribeFilter, InstanceName, RunRequest, VmState};
use cloudbroker_connector_ec2::{Ec2Connector, Ec2Options};
use cloudbroker_testkit::{MotoOptions, MotoServer};
use serde_json::json;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// An image id moto knows (moto does not validate AMIs by default anyway).
const AMI: &str = "ami-12c6146b";
const PUBKEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFQpWmwNDw+/viwoFdeIlYgFCWnA/NgoR/X5ICtefgTf cloudbroker-test";
const REGION: &str = "us-east-1";

fn creds() -> Credentials {
    // moto without INITIAL_NO_AUTH_ACTION_COUNT accepts any key.
    Credentials::new("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
}

fn fast() -> Ec2Options {
    Ec2Options { base_delay: Duration::from_millis(20), ..Ec2Options::default() }
}

fn connector_with(moto: &MotoServer, extra: &[(&str, &str)], options: Ec2Options) -> Arc<Ec2Connector> {
    let mut values: std::collections::BTreeMap<String, String> =
        [("region", REGION), ("timeout.seconds", "20")].iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    values.insert("endpoint".into(), moto.endpoint());
    for (k, v) in extra {
        values.insert(k.to_string(), v.to_string());
    }
    Arc::new(Ec2Connector::new(InstanceName::parse("ec2-moto").unwrap(), &ParamValues::new(values), options).unwrap())
}

fn connector(moto: &MotoServer) -> Arc<Ec2Connector> {
    connector_with(moto, &[], fast())
}

fn run_request(broker: &str, launch: &str, count: u32) -> RunRequest {
    RunRequest {
        image_id: AMI.into(),
        instance_type: "t2.micro".into(),
        count,
        key_name: None,
        user_data: Some("#!/bin/sh\necho hello\n".into()),
        security_groups: vec![],
        tags: vec![(tags::BROKER.into(), broker.into()), (tags::LAUNCH.into(), launch.into()), (tags::USER.into(), "alice".into())],
        client_token: format!("{broker}-{launch}"),
        ..Default::default()
    }
}

fn ids_of(vms: &[cloudbroker_connector_api::Vm]) -> BTreeSet<String> {
    vms.iter().map(|v| v.id.clone()).collect()
}

#[tokio::test]
async fn validates_credentials() {
    let moto = MotoServer::start(MotoOptions::default());
    let c = connector(&moto);
    let check = c.validate_credentials(&creds()).await.unwrap();
    assert!(check.message.contains("us-east-1") && check.message.contains("****"), "{}", check.message);
    assert!(!check.message.contains("EXAMPLEKEY"));
    assert_eq!(moto.action_count("DescribeRegions").await, 1);

    // Missing credentials never reach the cloud.
    let e = c.validate_credentials(&Credentials::new("", "")).await.unwrap_err();
    assert!(matches!(e, ConnectorError::Auth { .. }), "{e:?}");
    assert_eq!(moto.action_count("DescribeRegions").await, 1);
}

#[tokio::test]
async fn unreachable_endpoint_is_a_transport_error() {
    // A loopback port nobody listens on (bound then released).
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let values = [("region", REGION.to_string()), ("endpoint", format!("http://127.0.0.1:{port}")), ("timeout.seconds", "5".into())];
    let params = ParamValues::new(values.iter().map(|(k, v)| (k.to_string(), v.clone())).collect());
    let c = Ec2Connector::new(InstanceName::parse("ec2-nowhere").unwrap(), &params, Ec2Options { max_attempts: 2, ..fast() }).unwrap();
    let e = c.validate_credentials(&creds()).await.unwrap_err();
    match &e {
        ConnectorError::Transport { message } => {
            assert!(message.contains("unreachable") && message.contains(&port.to_string()), "{message}")
        }
        other => panic!("expected Transport, got {other:?}"),
    }
}

#[tokio::test]
async fn runs_tagged_instances_with_key_pair_and_finds_them_by_tag() {
    let moto = MotoServer::start(MotoOptions::default());
    let c = connector(&moto);
    let cr = creds();
    let key = c.import_key_pair(&cr, "alice-key", PUBKEY).await.unwrap();
    assert_eq!(key.name, "alice-key");
    assert!(key.fingerprint.is_some());
    c.ensure_security_group(&cr, "cloudbroker-web").await.unwrap();

    let mut req = run_request("broker-a", "launch-1", 3);
    req.key_name = Some("alice-key".into());
    req.security_groups = vec!["cloudbroker-web".into()];
    req.tags.push((tags::NAME.into(), "web".into()));
    let launched = c.run_instances(&cr, &req).await.unwrap();
    assert_eq!(launched.len(), 3);
    // Noise: another broker's VM and an untagged one.
    c.run_instances(&cr, &run_request("broker-b", "launch-9", 1)).await.unwrap();
    c.run_instances(&cr, &RunRequest { tags: vec![], client_token: String::new(), ..run_request("x", "y", 1) }).await.unwrap();

    let found = c.describe_instances(&cr, &DescribeFilter::tag(tags::BROKER, "broker-a")).await.unwrap();
    assert_eq!(ids_of(&found), ids_of(&launched));
    for vm in &found {
        assert_eq!(vm.state, VmState::Running, "{vm:?}");
        assert!(vm.private_ip.as_deref().is_some_and(|ip| ip.parse::<std::net::Ipv4Addr>().is_ok()), "{vm:?}");
        assert_eq!(vm.key_name.as_deref(), Some("alice-key"));
        assert_eq!(vm.image_id, AMI);
        assert_eq!(vm.instance_type, "t2.micro");
        assert_eq!(vm.tag(tags::LAUNCH), Some("launch-1"));
        assert_eq!(vm.tag(tags::USER), Some("alice"));
        assert_eq!(vm.tag(tags::NAME), Some("web"));
        assert_eq!(vm.client_token.as_deref(), Some("broker-a-launch-1"));
        assert!(vm.launch_time.is_some());
    }

    // tag-key filter, tag AND tag, ids.
    let all_tagged =
        c.describe_instances(&cr, &DescribeFilter { tag_keys: vec![tags::BROKER.into()], ..Default::default() }).await.unwrap();
    assert_eq!(all_tagged.len(), 4);
    let both =
        DescribeFilter { tags: vec![(tags::BROKER.into(), "broker-a".into()), (tags::NAME.into(), "web".into())], ..Default::default() };
    assert_eq!(c.describe_instances(&cr, &both).await.unwrap().len(), 3);
    let none =
        DescribeFilter { tags: vec![(tags::BROKER.into(), "broker-a".into()), (tags::NAME.into(), "db".into())], ..Default::default() };
    assert!(c.describe_instances(&cr, &none).await.unwrap().is_empty());
    let one = vec![launched[0].id.clone()];
    let by_id = c.describe_instances(&cr, &DescribeFilter::ids(&one)).await.unwrap();
    assert_eq!(ids_of(&by_id), one.iter().cloned().collect());
    assert_eq!(c.describe_instances(&cr, &DescribeFilter::default()).await.unwrap().len(), 5);

    // The user data really went to the cloud, base64-encoded once.
    let sdk = c.client(&cr).unwrap();
    let attr = sdk
        .describe_instance_attribute()
        .instance_id(&launched[0].id)
        .attribute(aws_sdk_ec2::types::InstanceAttributeName::UserData)
        .send()
        .await
        .unwrap();
    let b64 = attr.user_data().and_then(|u| u.value()).unwrap().to_string();
    use base64::Engine as _;
    assert_eq!(base64::engine::general_purpose::STANDARD.decode(b64).unwrap(), b"#!/bin/sh\necho hello\n");
}

#[tokio::test]
async fn describe_follows_every_page() {
    let moto = MotoServer::start(MotoOptions::default());
    // moto pages DescribeInstances by reservation: 24 launches of 5 VMs, 5 reservations a page.
    let c = connector_with(&moto, &[], Ec2Options { describe_page_size: 5, ..fast() });
    let cr = creds();
    let mut launched = BTreeSet::new();
    for i in 0..24 {
        let vms = c.run_instances(&cr, &run_request("broker-p", &format!("launch-{i}"), 5)).await.unwrap();
        launched.extend(ids_of(&vms));
    }
    c.run_instances(&cr, &run_request("broker-other", "launch-x", 2)).await.unwrap();
    assert_eq!(launched.len(), 120);

    moto.reset().await;
    let found = c.describe_instances(&cr, &DescribeFilter::tag(tags::BROKER, "broker-p")).await.unwrap();
    assert_eq!(found.len(), 120);
    assert_eq!(ids_of(&found), launched);

    let stats = moto.stats().await;
    let pages: Vec<&serde_json::Value> = stats["log"].as_array().unwrap().iter().filter(|e| e["action"] == "DescribeInstances").collect();
    assert_eq!(pages.len(), 5, "{stats}");
    assert!(pages.iter().all(|p| p["max_results"] == "5"), "{stats}");
    assert_eq!(pages[0]["next_token"], false);
    assert!(pages[1..].iter().all(|p| p["next_token"] == true), "{stats}");

    // By ids: no MaxResults (EC2 forbids it with ids), still every VM.
    let ids: Vec<String> = launched.iter().cloned().collect();
    assert_eq!(ids_of(&c.describe_instances(&cr, &DescribeFilter::ids(&ids)).await.unwrap()), launched);
}

#[tokio::test]
async fn stops_starts_reboots_and_terminates() {
    let moto = MotoServer::start(MotoOptions::default());
    let c = connector(&moto);
    let cr = creds();
    let vms = c.run_instances(&cr, &run_request("broker-l", "l1", 2)).await.unwrap();
    let ids: Vec<String> = vms.iter().map(|v| v.id.clone()).collect();
    let states = |vms: Vec<cloudbroker_connector_api::Vm>| vms.into_iter().map(|v| v.state).collect::<BTreeSet<_>>();

    let stopped = c.stop_instances(&cr, &ids).await.unwrap();
    assert_eq!(stopped.len(), 2);
    assert!(
        stopped.iter().all(|s| s.previous == VmState::Running && matches!(s.current, VmState::Stopping | VmState::Stopped)),
        "{stopped:?}"
    );
    assert_eq!(states(c.describe_instances(&cr, &DescribeFilter::ids(&ids)).await.unwrap()), [VmState::Stopped].into());

    let started = c.start_instances(&cr, &ids).await.unwrap();
    assert!(
        started.iter().all(|s| s.previous == VmState::Stopped && matches!(s.current, VmState::Pending | VmState::Running)),
        "{started:?}"
    );
    assert_eq!(states(c.describe_instances(&cr, &DescribeFilter::ids(&ids)).await.unwrap()), [VmState::Running].into());

    c.reboot_instances(&cr, &ids).await.unwrap();
    assert_eq!(moto.action_count("RebootInstances").await, 1);
    assert_eq!(states(c.describe_instances(&cr, &DescribeFilter::ids(&ids)).await.unwrap()), [VmState::Running].into());

    let terminated = c.terminate_instances(&cr, &ids).await.unwrap();
    assert!(
        terminated.iter().all(|s| s.previous == VmState::Running && matches!(s.current, VmState::ShuttingDown | VmState::Terminated)),
        "{terminated:?}"
    );
    assert_eq!(states(c.describe_instances(&cr, &DescribeFilter::ids(&ids)).await.unwrap()), [VmState::Terminated].into());

    // Unknown ids: the cloud's code and message, classified.
    let e = c.start_instances(&cr, &["i-0123456789abcdef0".into()]).await.unwrap_err();
    match &e {
        ConnectorError::NotFound { code, message } => {
            assert_eq!(code, "InvalidInstanceID.NotFound");
            assert!(message.contains("i-0123456789abcdef0"), "{message}");
        }
        other => panic!("expected NotFound, got {other:?}"),
    }
    assert!(matches!(c.stop_instances(&cr, &[]).await, Err(ConnectorError::InvalidRequest { .. })));
}

#[tokio::test]
async fn key_pairs_import_list_delete() {
    let moto = MotoServer::start(MotoOptions::default());
    let c = connector(&moto);
    let cr = creds();
    assert!(c.list_key_pairs(&cr).await.unwrap().iter().all(|k| k.name != "k1"));
    let k1 = c.import_key_pair(&cr, "k1", PUBKEY).await.unwrap();
    let listed = c.list_key_pairs(&cr).await.unwrap();
    let found = listed.iter().find(|k| k.name == "k1").unwrap();
    assert_eq!(found.fingerprint, k1.fingerprint);

    let dup = c.import_key_pair(&cr, "k1", PUBKEY).await.unwrap_err();
    assert!(matches!(&dup, ConnectorError::InvalidRequest { code, .. } if code == "InvalidKeyPair.Duplicate"), "{dup:?}");
    // AWS answers InvalidKey.Format; moto fails with a bare HTTP 500 (retried, then Transport).
    let bad = connector_with(&moto, &[], Ec2Options { max_attempts: 1, ..fast() }).import_key_pair(&cr, "k2", "not a key").await;
    assert!(bad.is_err(), "{bad:?}");
    assert!(c.list_key_pairs(&cr).await.unwrap().iter().all(|k| k.name != "k2"));

    c.delete_key_pair(&cr, "k1").await.unwrap();
    assert!(c.list_key_pairs(&cr).await.unwrap().iter().all(|k| k.name != "k1"));
    // Deleting a missing key pair is not an error.
    c.delete_key_pair(&cr, "k1").await.unwrap();
}

#[tokio::test]
async fn ensure_security_group_is_idempotent() {
    let moto = MotoServer::start(MotoOptions::default());
    let c = connector(&moto);
    let cr = creds();
    c.ensure_security_group(&cr, "cb-sg").await.unwrap();
    c.ensure_security_group(&cr, "cb-sg").await.unwrap();
    c.ensure_security_group(&cr, "default").await.unwrap();
    assert_eq!(moto.action_count("CreateSecurityGroup").await, 1);
    assert_eq!(moto.action_count("DescribeSecurityGroups").await, 3);
    let sdk = c.client(&cr).unwrap();
    let groups = sdk.describe_security_groups().group_names("cb-sg").send().await.unwrap();
    assert_eq!(groups.security_groups().len(), 1);

    // Concurrent ensures of a new name: all succeed (Duplicate counts as success), one group.
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let c = c.clone();
            tokio::spawn(async move { c.ensure_security_group(&creds(), "cb-race").await })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let groups = sdk.describe_security_groups().group_names("cb-race").send().await.unwrap();
    assert_eq!(groups.security_groups().len(), 1);
}

#[tokio::test]
async fn lists_instance_types_and_own_images() {
    let moto = MotoServer::start(MotoOptions::default());
    let c = connector_with(&moto, &[("orchestrator.imageid", AMI)], fast());
    let cr = creds();
    let types = c.list_instance_types(&cr).await.unwrap();
    assert!(types.len() > 100, "{}", types.len());
    let micro = types.iter().find(|t| t.name == "t2.micro").unwrap();
    assert_eq!(micro.vcpus, Some(1));
    assert_eq!(micro.memory_mib, Some(1024));

    // Only the orchestrator image before the account has images of its own.
    let before = c.list_images(&cr).await.unwrap();
    assert_eq!(before.iter().map(|i| i.id.as_str()).collect::<Vec<_>>(), [AMI]);

    let vm = c.run_instances(&cr, &run_request("broker-i", "i1", 1)).await.unwrap().remove(0);
    let sdk = c.client(&cr).unwrap();
    let own = sdk.create_image().instance_id(&vm.id).name("golden-1").description("our image").send().await.unwrap();
    let own_id = own.image_id().unwrap().to_string();
    let after = c.list_images(&cr).await.unwrap();
    let ids: BTreeSet<&str> = after.iter().map(|i| i.id.as_str()).collect();
    assert_eq!(ids, [AMI, own_id.as_str()].into());
    let golden = after.iter().find(|i| i.id == own_id).unwrap();
    assert_eq!(golden.name.as_deref(), Some("golden-1"));
    assert_eq!(golden.description.as_deref(), Some("our image"));
    assert!(golden.state.is_some());

    // Without orchestrator.imageid: only the account's own image.
    let plain = connector(&moto);
    assert_eq!(plain.list_images(&cr).await.unwrap().len(), 1);
    // One image by id, a public one too (RegisterImage checks this way); an unknown id is none.
    assert_eq!(plain.describe_image(&cr, AMI).await.unwrap().map(|i| i.id), Some(AMI.to_string()));
    assert_eq!(plain.describe_image(&cr, &own_id).await.unwrap().and_then(|i| i.name), Some("golden-1".to_string()));
    assert!(plain.describe_image(&cr, "ami-0123456789abcdef0").await.unwrap().is_none());
}

#[tokio::test]
async fn throttling_is_retried_until_success() {
    let moto = MotoServer::start(MotoOptions::default());
    let c = connector(&moto);
    let cr = creds();
    c.run_instances(&cr, &run_request("broker-t", "t1", 2)).await.unwrap();
    moto.reset().await;
    moto.set_faults(json!({ "throttle_first": 3 })).await;
    let found = c.describe_instances(&cr, &DescribeFilter::tag(tags::BROKER, "broker-t")).await.unwrap();
    assert_eq!(found.len(), 2);
    let stats = moto.stats().await;
    assert_eq!(stats["actions"]["DescribeInstances"], 4, "{stats}");
    assert_eq!(stats["injected"]["throttle"], 3, "{stats}");

    // Throttling that outlasts the attempts surfaces as Throttled with the cloud's code.
    moto.reset().await;
    moto.set_faults(json!({ "throttle_first": 100 })).await;
    let c3 = connector_with(&moto, &[], Ec2Options { max_attempts: 3, ..fast() });
    let e = c3.describe_instances(&cr, &DescribeFilter::default()).await.unwrap_err();
    assert!(
        matches!(&e, ConnectorError::Throttled { code, message } if code == "RequestLimitExceeded" && message == "Request limit exceeded."),
        "{e:?}"
    );
    assert_eq!(moto.action_count("DescribeInstances").await, 3);
}

#[tokio::test]
async fn bare_503_is_throttling() {
    let moto = MotoServer::start(MotoOptions::default());
    let cr = creds();
    moto.set_faults(json!({ "bare_503_first": 1 })).await;
    let once = connector_with(&moto, &[], Ec2Options { max_attempts: 1, ..fast() });
    let e = once.list_key_pairs(&cr).await.unwrap_err();
    assert!(matches!(&e, ConnectorError::Throttled { code, .. } if code == "HTTP503"), "{e:?}");
    assert!(e.is_retryable());

    moto.set_faults(json!({ "bare_503_first": 2 })).await;
    connector(&moto).list_key_pairs(&cr).await.unwrap();
    assert_eq!(moto.action_count("DescribeKeyPairs").await, 4);
}

#[tokio::test]
async fn capacity_error_is_reported_not_retried() {
    let moto = MotoServer::start(MotoOptions::default());
    let c = connector(&moto);
    let cr = creds();
    moto.set_faults(json!({ "capacity_error_actions": ["RunInstances"] })).await;
    let e = c.run_instances(&cr, &run_request("broker-c", "c1", 2)).await.unwrap_err();
    match &e {
        ConnectorError::Capacity { code, message } => {
            assert_eq!(code, "InsufficientInstanceCapacity");
            assert!(
                message.starts_with("We currently do not have sufficient t2.micro capacity in the Availability Zone you requested"),
                "{message}"
            );
        }
        other => panic!("expected Capacity, got {other:?}"),
    }
    assert!(e.to_string().contains("insufficient capacity (InsufficientInstanceCapacity): We currently do not have sufficient t2.micro"));
    assert_eq!(moto.action_count("RunInstances").await, 1, "capacity errors must not be retried");
    // Nothing was launched.
    moto.reset().await;
    assert!(c.describe_instances(&cr, &DescribeFilter::tag(tags::BROKER, "broker-c")).await.unwrap().is_empty());
}

#[tokio::test]
async fn hanging_cloud_times_out() {
    let moto = MotoServer::start(MotoOptions::default());
    let cr = creds();
    moto.set_faults(json!({ "hang_actions": ["DescribeInstances"], "hang_seconds": 15 })).await;

    // One attempt: the error comes after timeout.seconds, not after the hang.
    let once = connector_with(&moto, &[("timeout.seconds", "1")], Ec2Options { max_attempts: 1, ..fast() });
    let t0 = Instant::now();
    let e = once.describe_instances(&cr, &DescribeFilter::default()).await.unwrap_err();
    let took = t0.elapsed();
    assert_eq!(e, ConnectorError::Timeout { seconds: 1 });
    assert!(took >= Duration::from_millis(950) && took < Duration::from_millis(1900), "{took:?}");

    // Timeouts are retryable: with the default attempts, each attempt is cut at 1 s.
    moto.reset().await;
    moto.set_faults(json!({ "hang_actions": ["DescribeInstances"], "hang_seconds": 15 })).await;
    let c = connector_with(&moto, &[("timeout.seconds", "1")], fast());
    let t0 = Instant::now();
    let e = c.describe_instances(&cr, &DescribeFilter::default()).await.unwrap_err();
    let took = t0.elapsed();
    assert_eq!(e, ConnectorError::Timeout { seconds: 1 });
    let attempts = fast().max_attempts;
    assert_eq!(moto.action_count("DescribeInstances").await, u64::from(attempts));
    assert!(took >= Duration::from_secs(u64::from(attempts)) && took < Duration::from_secs(u64::from(attempts) + 3), "{took:?}");

    // Other actions are unaffected.
    c.list_key_pairs(&cr).await.unwrap();
}

#[tokio::test]
async fn max_iaas_workers_bounds_concurrent_calls() {
    let moto = MotoServer::start(MotoOptions::default());
    let c = connector_with(&moto, &[("max.iaas.workers", "2")], fast());
    let cr = creds();
    c.run_instances(&cr, &run_request("broker-w", "w1", 1)).await.unwrap();
    moto.reset().await;
    moto.set_faults(json!({ "delay_ms": 300 })).await;
    let t0 = Instant::now();
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let c = c.clone();
            tokio::spawn(async move { c.describe_instances(&creds(), &DescribeFilter::tag(tags::BROKER, "broker-w")).await })
        })
        .collect();
    for t in futures::future::join_all(tasks).await {
        assert_eq!(t.unwrap().unwrap().len(), 1);
    }
    let took = t0.elapsed();
    let stats = moto.stats().await;
    assert_eq!(stats["actions"]["DescribeInstances"], 10, "{stats}");
    assert_eq!(stats["peak_in_flight"], 2, "{stats}");
    // 10 calls of >= 300 ms, two at a time.
    assert!(took >= Duration::from_millis(1500), "{took:?}");

    // The same load with 10 workers really runs concurrently (so the bound above is ours).
    moto.reset().await;
    moto.set_faults(json!({ "delay_ms": 300 })).await;
    let wide = connector_with(&moto, &[("max.iaas.workers", "10")], fast());
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let c = wide.clone();
            tokio::spawn(async move { c.describe_instances(&creds(), &DescribeFilter::default()).await })
        })
        .collect();
    for t in futures::future::join_all(tasks).await {
        t.unwrap().unwrap();
    }
    let peak = moto.stats().await["peak_in_flight"].as_u64().unwrap();
    assert!(peak > 2, "peak {peak}");
}

fn policy_without(action: &str) -> serde_json::Value {
    let mut p: serde_json::Value = serde_json::from_str(include_str!("../../../docs/ec2-iam-policy.json")).unwrap();
    let list = p["Statement"][0]["Action"].as_array_mut().unwrap();
    list.retain(|a| a != action);
    p
}

#[tokio::test]
async fn signatures_are_checked_with_iam_keys() {
    let moto = MotoServer::start(MotoOptions::with_auth());
    let policy: serde_json::Value = serde_json::from_str(include_str!("../../../docs/ec2-iam-policy.json")).unwrap();
    let user = moto.create_iam_user("broker-user", Some(policy)).await;
    let good = Credentials::new(user.access_key_id.clone(), user.secret_access_key.clone());
    let c = connector(&moto);

    c.validate_credentials(&good).await.unwrap();

    let wrong_secret = Credentials::new(user.access_key_id.clone(), format!("{}x", user.secret_access_key));
    let e = c.validate_credentials(&wrong_secret).await.unwrap_err();
    match &e {
        ConnectorError::Auth { code, message } => {
            assert_eq!(code, "AuthFailure");
            assert!(
                message.contains("secret access key is wrong")
                    && message.contains("AWS was not able to validate the provided access credentials"),
                "{message}"
            );
        }
        other => panic!("expected Auth, got {other:?}"),
    }
    let unknown = Credentials::new("AKIAUNKNOWNUNKNOWN00", user.secret_access_key.clone());
    assert!(matches!(c.validate_credentials(&unknown).await, Err(ConnectorError::Auth { .. })));
    // The good key still works after a wrong secret was tried with the same key id.
    c.validate_credentials(&good).await.unwrap();
}

#[tokio::test]
async fn minimal_iam_policy_suffices_and_missing_actions_are_named() {
    let moto = MotoServer::start(MotoOptions::with_auth());
    let policy: serde_json::Value = serde_json::from_str(include_str!("../../../docs/ec2-iam-policy.json")).unwrap();
    let user = moto.create_iam_user("minimal", Some(policy)).await;
    let cr = Credentials::new(user.access_key_id, user.secret_access_key);
    let c = connector_with(&moto, &[("orchestrator.imageid", AMI)], fast());

    // Every trait method, with exactly the documented policy.
    c.validate_credentials(&cr).await.unwrap();
    c.import_key_pair(&cr, "kp", PUBKEY).await.unwrap();
    assert_eq!(c.list_key_pairs(&cr).await.unwrap().len(), 1);
    c.ensure_security_group(&cr, "cb-min").await.unwrap();
    let mut req = run_request("broker-m", "m1", 2);
    req.key_name = Some("kp".into());
    req.security_groups = vec!["cb-min".into()];
    let vms = c.run_instances(&cr, &req).await.unwrap();
    let ids: Vec<String> = vms.iter().map(|v| v.id.clone()).collect();
    assert_eq!(c.describe_instances(&cr, &DescribeFilter::tag(tags::BROKER, "broker-m")).await.unwrap().len(), 2);
    c.stop_instances(&cr, &ids).await.unwrap();
    c.start_instances(&cr, &ids).await.unwrap();
    c.reboot_instances(&cr, &ids).await.unwrap();
    c.terminate_instances(&cr, &ids).await.unwrap();
    c.delete_key_pair(&cr, "kp").await.unwrap();
    assert!(!c.list_images(&cr).await.unwrap().is_empty());
    assert!(!c.list_instance_types(&cr).await.unwrap().is_empty());

    // Without ec2:RunInstances the error is Forbidden and names the action.
    let limited = moto.create_iam_user("no-run", Some(policy_without("ec2:RunInstances"))).await;
    let lcr = Credentials::new(limited.access_key_id, limited.secret_access_key);
    c.validate_credentials(&lcr).await.unwrap();
    let e = c.run_instances(&lcr, &run_request("broker-m", "m2", 1)).await.unwrap_err();
    match &e {
        ConnectorError::Forbidden { message, .. } => assert!(message.contains("ec2:RunInstances"), "{message}"),
        other => panic!("expected Forbidden, got {other:?}"),
    }
    assert!(e.to_string().contains("ec2:RunInstances"));
    assert_eq!(moto.action_count("RunInstances").await, 2, "a denial must not be retried");

    // Without ec2:DescribeRegions, validation says the keys work but lack permission.
    let no_regions = moto.create_iam_user("no-regions", Some(policy_without("ec2:DescribeRegions"))).await;
    let e = c.validate_credentials(&Credentials::new(no_regions.access_key_id, no_regions.secret_access_key)).await.unwrap_err();
    match &e {
        ConnectorError::Forbidden { message, .. } => {
            assert!(
                message.contains("credentials are valid but may not call ec2:DescribeRegions")
                    && message.contains("is not authorized to perform: ec2:DescribeRegions"),
                "{message}"
            )
        }
        other => panic!("expected Forbidden, got {other:?}"),
    }
}

#[tokio::test]
async fn build_gives_a_trait_object() {
    let moto = MotoServer::start(MotoOptions::default());
    let params =
        ParamValues::new([("region".to_string(), REGION.to_string()), ("endpoint".to_string(), moto.endpoint())].into_iter().collect());
    let c: Arc<dyn Connector> = cloudbroker_connector_ec2::build(InstanceName::parse("ec2-x").unwrap(), &params).unwrap();
    assert_eq!(c.kind(), cloudbroker_connector_ec2::KIND);
    assert_eq!(c.instance().as_str(), "ec2-x");
    c.validate_credentials(&creds()).await.unwrap();
    let e = cloudbroker_connector_ec2::build(InstanceName::parse("ec2-y").unwrap(), &ParamValues::default()).err().unwrap();
    assert!(matches!(e, ConnectorError::InvalidRequest { .. }));
}

#[tokio::test]
async fn elastic_ips_and_volumes() {
    let moto = MotoServer::start(MotoOptions::default());
    let c = connector(&moto);
    let vm = c.run_instances(&creds(), &run_request("b", "eip", 1)).await.unwrap().remove(0);
    cloudbroker_testkit::conformance::addresses_and_volumes(c.as_ref(), &creds(), &vm.id, "us-east-1a").await;
    assert_eq!(moto.action_count("AllocateAddress").await, 1);
    assert_eq!(moto.action_count("AttachVolume").await, 1);
}

/// What a moto answers for a fixed tagged fleet, with ids left out (they
/// differ between servers): per filter, the sorted tag lists of the VMs found.
async fn tag_answers(moto: &MotoServer) -> Vec<(String, Vec<Vec<(String, String)>>)> {
    let c = connector(moto);
    let cr = creds();
    let mut a = run_request("broker-a", "launch-1", 3);
    a.tags.push((tags::NAME.into(), "web*[1]?".into()));
    let launched = c.run_instances(&cr, &a).await.unwrap();
    c.run_instances(&cr, &run_request("broker-b", "launch-2", 2)).await.unwrap();
    c.run_instances(&cr, &RunRequest { tags: vec![], client_token: String::new(), ..run_request("x", "y", 1) }).await.unwrap();
    // Tags changed after the launch: added, overwritten, removed.
    c.create_tags(&cr, &[launched[0].id.clone()], &[("extra".into(), "1".into()), (tags::USER.into(), "bob".into())]).await.unwrap();
    c.delete_tags(&cr, &[launched[1].id.clone()], &[tags::LAUNCH.into()]).await.unwrap();
    let filters = [
        ("all", DescribeFilter::default()),
        ("broker-a", DescribeFilter::tag(tags::BROKER, "broker-a")),
        ("broker-*", DescribeFilter::tag(tags::BROKER, "broker-*")),
        ("user=bob", DescribeFilter::tag(tags::USER, "bob")),
        ("has-launch", DescribeFilter { tag_keys: vec![tags::LAUNCH.into()], ..Default::default() }),
        ("name-literal", DescribeFilter::tag(tags::NAME, "web*[1]?")),
        ("none", DescribeFilter::tag(tags::BROKER, "broker-z")),
    ];
    let mut out = Vec::new();
    for (name, f) in filters {
        let mut found: Vec<Vec<(String, String)>> = c
            .describe_instances(&cr, &f)
            .await
            .unwrap()
            .into_iter()
            .map(|vm| {
                let mut t = vm.tags;
                t.sort();
                t
            })
            .collect();
        found.sort();
        out.push((name.to_string(), found));
    }
    out
}

#[tokio::test]
async fn indexed_tag_lookups_answer_as_moto_does() {
    // The benchmarks start moto with --indexed-tags (moto's own lookup scans
    // every tag of the account per instance); its answers must not change.
    let plain = tag_answers(&MotoServer::start(MotoOptions::default())).await;
    let indexed = tag_answers(&MotoServer::start(MotoOptions { indexed_tags: true, ..Default::default() })).await;
    assert_eq!(plain, indexed);
    let count = |name: &str| plain.iter().find(|(n, _)| n == name).map(|(_, v)| v.len()).unwrap();
    // (Values with wildcards are in the comparison above, whatever moto makes of them.)
    assert_eq!((count("all"), count("broker-a"), count("user=bob"), count("has-launch"), count("none")), (6, 3, 1, 4, 0));
    let bob = &plain.iter().find(|(n, _)| n == "user=bob").unwrap().1[0];
    assert!(bob.contains(&("extra".into(), "1".into())), "{bob:?}");
}

/// The conformance suite every connector passes (`cloudbroker_testkit::conformance`).
#[tokio::test]
async fn passes_the_conformance_suite() {
    let moto = MotoServer::start(MotoOptions::default());
    let c = connector(&moto);
    let target = cloudbroker_testkit::conformance::Target {
        conn: c.as_ref(),
        creds: creds(),
        image_id: AMI.into(),
        instance_type: "t2.micro".into(),
        zone: format!("{REGION}a"),
        security_groups: vec![],
    };
    cloudbroker_testkit::conformance::run(&target).await;
}
