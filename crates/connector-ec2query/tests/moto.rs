//! The `ec2query` connector against a real moto server on loopback (see
//! `cloudbroker-testkit`): one lifecycle run with SigV4 through moto's
//! dispatcher (with and without signature checking) and with SigV2 against
//! moto's EC2 app, then fault injection through the testkit's wrapper.

// Test code: panicking on an unexpected result is the point.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use cloudbroker_connector_api::params::ParamValues;
use cloudbroker_connector_api::retry::CallPolicy;
use cloudbroker_connector_api::{tags, Connector, ConnectorError, Credentials, DescribeFilter, InstanceName, RunRequest, VmState};
use cloudbroker_connector_ec2query::{Ec2QueryConnector, Settings, SignatureVersion};
use cloudbroker_testkit::{MotoOptions, MotoServer};
use serde_json::json;
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// An AMI moto knows (AMI validation is off in moto anyway).
const AMI: &str = "ami-12c6146b";
const PUBLIC_KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIIEewD7lj7axmC2zvGz1KxVQGgh5XId4sNJHpXaIvd2g cloudbroker-test";
/// moto answers any key when it does not check signatures.
const SECRET: &str = "moto-does-not-check-this-secret";

fn params(pairs: &[(&str, &str)]) -> ParamValues {
    ParamValues::new(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>())
}

/// A connector for `endpoint`; `page_size` small so that paging happens.
fn connector(endpoint: &str, extra: &[(&str, &str)], page_size: u32) -> Arc<Ec2QueryConnector> {
    let mut pairs = vec![("endpoint", endpoint)];
    pairs.extend_from_slice(extra);
    let mut settings = Settings::from_params(&params(&pairs)).unwrap();
    settings.page_size = page_size;
    // Quicker backoff than production, same number of attempts.
    settings.call_policy =
        CallPolicy { base_delay: Duration::from_millis(50), max_delay: Duration::from_millis(400), ..settings.call_policy.clone() };
    Arc::new(Ec2QueryConnector::new(InstanceName::parse("moto").unwrap(), settings).unwrap())
}

fn run_request(launch: &str, count: u32, key: Option<&str>) -> RunRequest {
    RunRequest {
        image_id: AMI.into(),
        instance_type: "t2.micro".into(),
        count,
        key_name: key.map(str::to_string),
        user_data: Some("#!/bin/sh\necho hello\n".into()),
        security_groups: vec!["cloudbroker-test".into()],
        tags: vec![(tags::BROKER.into(), "test-broker".into()), (tags::LAUNCH.into(), launch.into()), (tags::USER.into(), "alice".into())],
        client_token: format!("{launch}-token"),
        ..Default::default()
    }
}

fn ids_of(vms: &[cloudbroker_connector_api::Vm]) -> Vec<String> {
    let mut ids: Vec<String> = vms.iter().map(|v| v.id.clone()).collect();
    ids.sort();
    ids
}

/// The shared lifecycle, whatever the signing mode.
async fn lifecycle(moto: &MotoServer, conn: Arc<Ec2QueryConnector>, creds: &Credentials, label: &str) {
    // Credentials.
    let check = conn.validate_credentials(creds).await.unwrap();
    assert!(check.message.contains("DescribeRegions"), "{check:?}");

    // Security group: created once, then found.
    conn.ensure_security_group(creds, "cloudbroker-test").await.unwrap();
    conn.ensure_security_group(creds, "cloudbroker-test").await.unwrap();

    // Key pair.
    let key_name = format!("cb-{label}");
    let key = conn.import_key_pair(creds, &key_name, PUBLIC_KEY).await.unwrap();
    assert_eq!(key.name, key_name);
    assert!(key.fingerprint.as_deref().is_some_and(|f| !f.is_empty()), "{key:?}");
    let keys = conn.list_key_pairs(creds).await.unwrap();
    assert!(keys.iter().any(|k| k.name == key_name), "{keys:?}");

    // Three tagged VMs with the key.
    let launch = format!("{label}-small");
    let vms = conn.run_instances(creds, &run_request(&launch, 3, Some(&key_name))).await.unwrap();
    assert_eq!(vms.len(), 3);
    for vm in &vms {
        assert!(vm.id.starts_with("i-"), "{vm:?}");
        assert_eq!(vm.tag(tags::LAUNCH), Some(launch.as_str()));
        assert_eq!(vm.tag(tags::USER), Some("alice"));
        assert_eq!(vm.key_name.as_deref(), Some(key_name.as_str()));
        assert_eq!(vm.image_id, AMI);
        assert_eq!(vm.client_token.as_deref(), Some(format!("{launch}-token").as_str()));
        assert!(matches!(vm.state, VmState::Pending | VmState::Running), "{vm:?}");
    }
    let ids = ids_of(&vms);

    let described = conn.describe_instances(creds, &DescribeFilter::tag(tags::LAUNCH, &launch)).await.unwrap();
    assert_eq!(ids_of(&described), ids, "describe by tag returns exactly the launched VMs");
    for vm in &described {
        assert_eq!(vm.state, VmState::Running, "{vm:?}");
        let launched = vms.iter().find(|v| v.id == vm.id).unwrap();
        assert!(vm.private_ip.is_some(), "{vm:?}");
        assert_eq!(vm.private_ip, launched.private_ip);
        assert_eq!(vm.instance_type, "t2.micro");
        assert!(vm.launch_time.is_some());
    }
    let by_ids = conn.describe_instances(creds, &DescribeFilter::ids(&ids)).await.unwrap();
    assert_eq!(ids_of(&by_ids), ids);
    let by_key = conn
        .describe_instances(
            creds,
            &DescribeFilter { tag_keys: vec![tags::BROKER.into()], tags: vec![(tags::LAUNCH.into(), launch.clone())], ids: vec![] },
        )
        .await
        .unwrap();
    assert_eq!(ids_of(&by_key), ids);
    let none = conn.describe_instances(creds, &DescribeFilter::tag(tags::LAUNCH, "no-such-launch")).await.unwrap();
    assert!(none.is_empty());

    // Pagination: 120 VMs in 24 concurrent launches (moto pages by reservation).
    moto.reset().await;
    let big = format!("{label}-big");
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..24 {
        let (conn, creds) = (conn.clone(), creds.clone());
        let mut req = run_request(&big, 5, None);
        req.client_token = format!("{big}-{i}");
        tasks.spawn(async move { conn.run_instances(&creds, &req).await });
    }
    let mut launched = HashSet::new();
    while let Some(r) = tasks.join_next().await {
        for vm in r.unwrap().unwrap() {
            launched.insert(vm.id);
        }
    }
    assert_eq!(launched.len(), 120);
    let all = conn.describe_instances(creds, &DescribeFilter::tag(tags::LAUNCH, &big)).await.unwrap();
    assert_eq!(all.len(), 120);
    assert_eq!(all.iter().map(|v| v.id.clone()).collect::<HashSet<_>>(), launched);
    let stats = moto.stats().await;
    let pages: Vec<&serde_json::Value> = stats["log"].as_array().unwrap().iter().filter(|e| e["action"] == "DescribeInstances").collect();
    assert_eq!(pages.len(), 3, "24 reservations at 10 per page: {pages:?}");
    assert!(pages.iter().all(|p| p["max_results"] == "10"), "{pages:?}");
    assert_eq!(pages.iter().filter(|p| p["next_token"] == true).count(), 2, "{pages:?}");
    assert_eq!(stats["actions"]["RunInstances"], 24);

    // Stop, start, reboot.
    let stopped = conn.stop_instances(creds, &ids).await.unwrap();
    assert_eq!(stopped.len(), 3);
    assert!(
        stopped.iter().all(|c| c.previous == VmState::Running && matches!(c.current, VmState::Stopping | VmState::Stopped)),
        "{stopped:?}"
    );
    let now = conn.describe_instances(creds, &DescribeFilter::ids(&ids)).await.unwrap();
    assert!(now.iter().all(|v| v.state == VmState::Stopped), "{now:?}");
    let started = conn.start_instances(creds, &ids).await.unwrap();
    assert!(
        started.iter().all(|c| c.previous == VmState::Stopped && matches!(c.current, VmState::Pending | VmState::Running)),
        "{started:?}"
    );
    let now = conn.describe_instances(creds, &DescribeFilter::ids(&ids)).await.unwrap();
    assert!(now.iter().all(|v| v.state == VmState::Running), "{now:?}");
    conn.reboot_instances(creds, &ids).await.unwrap();

    // Terminate everything (more than one id chunk: 123 ids).
    let mut everything: Vec<String> = launched.into_iter().collect();
    everything.extend(ids.iter().cloned());
    let gone = conn.terminate_instances(creds, &everything).await.unwrap();
    assert_eq!(gone.len(), 123);
    assert!(gone.iter().all(|c| matches!(c.current, VmState::ShuttingDown | VmState::Terminated)), "{gone:?}");
    let now = conn.describe_instances(creds, &DescribeFilter::tag(tags::LAUNCH, &launch)).await.unwrap();
    assert!(now.iter().all(|v| matches!(v.state, VmState::ShuttingDown | VmState::Terminated)), "{now:?}");

    // Unknown ids are the cloud's NotFound.
    let e = conn.stop_instances(creds, &["i-0123456789abcdef0".into()]).await.unwrap_err();
    assert!(matches!(e, ConnectorError::NotFound { ref code, .. } if code == "InvalidInstanceID.NotFound"), "{e:?}");

    // Key pair removal, idempotent.
    conn.delete_key_pair(creds, &key_name).await.unwrap();
    assert!(!conn.list_key_pairs(creds).await.unwrap().iter().any(|k| k.name == key_name));
    conn.delete_key_pair(creds, &key_name).await.unwrap();

    // Images and (without instance.types) DescribeInstanceTypes.
    let images = conn.list_images(creds).await.unwrap();
    assert!(images.iter().all(|i| i.id.starts_with("ami-")), "{images:?}");
    // One image by id, whoever owns it (moto's public images too); an unknown id is none.
    let any_public = "ami-12c6146b";
    assert_eq!(conn.describe_image(creds, any_public).await.unwrap().map(|i| i.id).as_deref(), Some(any_public));
    assert!(conn.describe_image(creds, "ami-0123456789abcdef0").await.unwrap().is_none());
    let types = conn.list_instance_types(creds).await.unwrap();
    assert!(types.iter().any(|t| t.name == "t2.micro" && t.vcpus == Some(1) && t.memory_mib == Some(1024)), "{} types", types.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_sigv4_through_the_dispatcher() {
    let moto = MotoServer::start(MotoOptions::default());
    let conn = connector(&moto.endpoint(), &[("signature.version", "4"), ("region", "us-east-1")], 10);
    assert_eq!(conn.settings().signature, SignatureVersion::V4);
    lifecycle(&moto, conn, &Credentials::new("AKIAIOSFODNN7EXAMPLE", SECRET), "v4").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_sigv4_with_iam_checked_signatures() {
    let moto = MotoServer::start(MotoOptions::with_auth());
    let allow_all = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]});
    let user = moto.create_iam_user("cloudbroker", Some(allow_all)).await;
    let conn = connector(&moto.endpoint(), &[("region", "us-east-1")], 10);

    // A wrong secret and an unknown key are refused as authentication errors (never retried).
    moto.reset().await;
    let wrong = Credentials::new(user.access_key_id.clone(), "not-the-secret");
    let e = conn.validate_credentials(&wrong).await.unwrap_err();
    assert!(matches!(e, ConnectorError::Auth { .. }), "{e:?}");
    assert!(!e.to_string().contains("not-the-secret"));
    assert_eq!(moto.action_count("DescribeRegions").await, 1);
    let unknown = Credentials::new("AKIAUNKNOWNKEY000000", SECRET);
    let e = conn.validate_credentials(&unknown).await.unwrap_err();
    assert!(matches!(e, ConnectorError::Auth { .. }), "{e:?}");

    // A user whose policy does not allow EC2 is forbidden, not unauthenticated.
    let limited = moto
        .create_iam_user(
            "limited",
            Some(json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:ListBucket", "Resource": "*"}]})),
        )
        .await;
    let e = conn.validate_credentials(&Credentials::new(limited.access_key_id, limited.secret_access_key)).await.unwrap_err();
    assert!(matches!(e, ConnectorError::Forbidden { .. }), "{e:?}");

    let creds = Credentials::new(user.access_key_id, user.secret_access_key);
    lifecycle(&moto, conn, &creds, "v4auth").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_sigv2_against_the_ec2_app() {
    let moto = MotoServer::start(MotoOptions { ec2_only: true, ..MotoOptions::default() });
    // Trailing slash on purpose: the path is "/" either way.
    let conn = connector(&format!("{}/", moto.endpoint()), &[("signature.version", "2")], 10);
    assert_eq!(conn.settings().signature, SignatureVersion::V2);
    lifecycle(&moto, conn, &Credentials::new("oneadmin", SECRET), "v2").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigv4_signs_the_configured_region() {
    // moto's dispatcher picks the region from the SigV4 scope: VMs launched
    // through an eu-central-1 instance are not seen through a us-east-1 one.
    let moto = MotoServer::start(MotoOptions::default());
    let frankfurt = connector(&moto.endpoint(), &[("region", "eu-central-1")], 100);
    let virginia = connector(&moto.endpoint(), &[("region", "us-east-1")], 100);
    let creds = Credentials::new("AKIAIOSFODNN7EXAMPLE", SECRET);
    let vms = frankfurt.run_instances(&creds, &RunRequest { security_groups: vec![], ..run_request("fra", 2, None) }).await.unwrap();
    let found = frankfurt.describe_instances(&creds, &DescribeFilter::tag(tags::LAUNCH, "fra")).await.unwrap();
    assert_eq!(ids_of(&found), ids_of(&vms));
    assert!(virginia.describe_instances(&creds, &DescribeFilter::tag(tags::LAUNCH, "fra")).await.unwrap().is_empty());
}

// ---- faults (through the testkit's fault wrapper) ----------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttled_calls_are_retried_until_success() {
    let moto = MotoServer::start(MotoOptions::default());
    let conn = connector(&moto.endpoint(), &[("region", "us-east-1")], 100);
    let creds = Credentials::new("AKIAIOSFODNN7EXAMPLE", SECRET);
    moto.set_faults(json!({"throttle_first": 3})).await;
    conn.validate_credentials(&creds).await.unwrap();
    let stats = moto.stats().await;
    assert_eq!(stats["actions"]["DescribeRegions"], 4, "{stats}");
    assert_eq!(stats["injected"]["throttle"], 3);

    // A bare 503 (no EC2 error code) is throttling too.
    moto.reset().await;
    moto.set_faults(json!({"bare_503_first": 2})).await;
    assert!(conn.describe_instances(&creds, &DescribeFilter::default()).await.is_ok());
    assert_eq!(moto.action_count("DescribeInstances").await, 3);

    // Throttled beyond the policy's 5 attempts: the typed error comes back.
    moto.reset().await;
    moto.set_faults(json!({"throttle_first": 50})).await;
    let e = conn.validate_credentials(&creds).await.unwrap_err();
    assert_eq!(e, ConnectorError::Throttled { code: "RequestLimitExceeded".into(), message: "Request limit exceeded.".into() });
    assert_eq!(moto.action_count("DescribeRegions").await, 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capacity_errors_are_typed_and_not_retried() {
    let moto = MotoServer::start(MotoOptions::default());
    let conn = connector(&moto.endpoint(), &[("region", "us-east-1")], 100);
    let creds = Credentials::new("AKIAIOSFODNN7EXAMPLE", SECRET);
    moto.set_faults(json!({"capacity_error_actions": ["RunInstances"]})).await;
    let req = RunRequest { security_groups: vec![], ..run_request("cap", 2, None) };
    let e = conn.run_instances(&creds, &req).await.unwrap_err();
    match &e {
        ConnectorError::Capacity { code, message } => {
            assert_eq!(code, "InsufficientInstanceCapacity");
            assert!(
                message.starts_with(
                    "We currently do not have sufficient t2.micro capacity in the Availability Zone you requested (us-east-1a)."
                ),
                "{message}"
            );
        }
        other => panic!("expected Capacity, got {other:?}"),
    }
    assert_eq!(moto.action_count("RunInstances").await, 1);
    // Nothing was launched.
    moto.set_faults(json!({})).await;
    assert!(conn.describe_instances(&creds, &DescribeFilter::tag(tags::LAUNCH, "cap")).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_cloud_times_out_per_attempt() {
    let moto = MotoServer::start(MotoOptions::default());
    let conn = connector(&moto.endpoint(), &[("region", "us-east-1"), ("timeout.seconds", "1")], 100);
    let creds = Credentials::new("AKIAIOSFODNN7EXAMPLE", SECRET);
    // Warm moto up first: its first EC2 call builds the region's backend, which can take a second.
    conn.validate_credentials(&creds).await.unwrap();
    moto.set_faults(json!({"hang_actions": ["DescribeInstances"], "hang_seconds": 30})).await;
    let started = Instant::now();
    let e = conn.describe_instances(&creds, &DescribeFilter::default()).await.unwrap_err();
    let elapsed = started.elapsed();
    assert_eq!(e, ConnectorError::Timeout { seconds: 1 });
    let attempts = moto.action_count("DescribeInstances").await;
    assert_eq!(attempts, 5, "every attempt timed out and was retried");
    // 5 attempts of 1 s plus at most 4 backoffs of <= 400 ms, far from the 30 s hang.
    assert!(elapsed >= Duration::from_secs(5) && elapsed < Duration::from_secs(9), "{elapsed:?}");

    // One attempt only: the error comes within timeout.seconds.
    let mut settings = conn.settings().clone();
    settings.call_policy.max_attempts = 1;
    let single = Ec2QueryConnector::new(InstanceName::parse("moto").unwrap(), settings).unwrap();
    let started = Instant::now();
    assert_eq!(single.describe_instances(&creds, &DescribeFilter::default()).await, Err(ConnectorError::Timeout { seconds: 1 }));
    assert!(started.elapsed() < Duration::from_millis(1500), "{:?}", started.elapsed());
    // Other actions are unaffected.
    single.validate_credentials(&creds).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_is_bounded_by_max_iaas_workers() {
    let moto = MotoServer::start(MotoOptions::default());
    let conn = connector(&moto.endpoint(), &[("region", "us-east-1"), ("max.iaas.workers", "2")], 100);
    let creds = Credentials::new("AKIAIOSFODNN7EXAMPLE", SECRET);
    moto.set_faults(json!({"delay_ms": 150})).await;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let (conn, creds) = (conn.clone(), creds.clone());
        tasks.spawn(async move { conn.validate_credentials(&creds).await });
    }
    while let Some(r) = tasks.join_next().await {
        r.unwrap().unwrap();
    }
    let stats = moto.stats().await;
    assert_eq!(stats["actions"]["DescribeRegions"], 8);
    assert_eq!(stats["peak_in_flight"], 2, "{stats}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn elastic_ips_and_volumes() {
    let moto = MotoServer::start(MotoOptions::default());
    let conn = connector(&moto.endpoint(), &[("region", "us-east-1")], 100);
    let creds = Credentials::new("AKIAIOSFODNN7EXAMPLE", SECRET);
    let vm = conn.run_instances(&creds, &RunRequest { security_groups: vec![], ..run_request("eip", 1, None) }).await.unwrap().remove(0);
    cloudbroker_testkit::conformance::addresses_and_volumes(conn.as_ref(), &creds, &vm.id, "us-east-1a").await;
    assert_eq!(moto.action_count("AllocateAddress").await, 1);
    assert_eq!(moto.action_count("AttachVolume").await, 1);
}

/// The conformance suite every connector passes (`cloudbroker_testkit::conformance`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passes_the_conformance_suite() {
    let moto = MotoServer::start(MotoOptions::default());
    let conn = connector(&moto.endpoint(), &[("region", "us-east-1")], 100);
    let target = cloudbroker_testkit::conformance::Target {
        conn: conn.as_ref(),
        creds: Credentials::new("AKIAIOSFODNN7EXAMPLE", SECRET),
        image_id: AMI.into(),
        instance_type: "t2.micro".into(),
        zone: "us-east-1a".into(),
        security_groups: vec![],
    };
    cloudbroker_testkit::conformance::run(&target).await;
}
