//! The EC2 front-end of the real binary driven by the AWS SDK for Rust
//! (`aws-sdk-ec2`), a client nobody here wrote: regions, images, a launch
//! with tags, describe by id and by filter, stop, terminate, an unknown
//! instance's EC2 error code, and a wrong secret refused.

// Test code: panicking on an unexpected result is the point; helper
// functions outside #[test] are covered by this too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::zombie_processes)]

mod common;

use aws_sdk_ec2::types::{Filter, ResourceType, Tag, TagSpecification};
use serde_json::{json, Value};

const PW: &str = "super-password-1";

fn sdk(base: &str, key: &str, secret: &str) -> aws_sdk_ec2::Client {
    let creds = aws_credential_types::Credentials::new(key, secret, None, None, "test");
    let conf = aws_sdk_ec2::Config::builder()
        .behavior_version(aws_sdk_ec2::config::BehaviorVersion::latest())
        .endpoint_url(format!("{base}/ec2"))
        .region(aws_sdk_ec2::config::Region::new("sb"))
        .credentials_provider(creds)
        .retry_config(aws_sdk_ec2::config::retry::RetryConfig::disabled())
        .build();
    aws_sdk_ec2::Client::from_conf(conf)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_sdk_for_rust_drives_the_ec2_front() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("connectors.d")).unwrap();
    std::fs::write(dir.path().join("connectors.d/sb.conf"), "cloud.connector.class = sb:sandbox\nsb.boot.delay.ms = 0\n").unwrap();
    let (mut broker, base) =
        common::serve(dir.path(), &[], &[("CLOUDBROKER_ADMIN_PASSWORD", PW), ("CLOUDBROKER_RECONCILE_INTERVAL_SECS", "1")]);
    let http = reqwest::Client::new();
    let token = |user: &'static str, pw: &'static str| {
        let (http, base) = (http.clone(), base.clone());
        async move {
            let r: Value =
                http.post(format!("{base}/api/v1/tokens")).basic_auth(user, Some(pw)).send().await.unwrap().json().await.unwrap();
            r["token"].as_str().unwrap().to_string()
        }
    };
    let admin = token("super", PW).await;
    let post = |path: &str, t: &str, body: Value| http.post(format!("{base}{path}")).bearer_auth(t).json(&body).send();
    assert!(post("/api/v1/users", &admin, json!({"name": "alice", "password": "alice-password"})).await.unwrap().status().is_success());
    let image = json!({"name": "debian", "mappings": {"sb": {"image_id": "ami-sandbox-debian-12"}}});
    assert!(post("/api/v1/images", &admin, image).await.unwrap().status().is_success());
    let alice = token("alice", "alice-password").await;
    let key: Value = post("/api/v1/users/alice/access-keys", &alice, json!({})).await.unwrap().json().await.unwrap();
    let (ak, sk) = (key["access_key_id"].as_str().unwrap(), key["secret_access_key"].as_str().unwrap());
    let ec2 = sdk(&base, ak, sk);

    let regions = ec2.describe_regions().send().await.unwrap();
    assert_eq!(regions.regions().iter().filter_map(|r| r.region_name()).collect::<Vec<_>>(), vec!["sb"]);
    let images = ec2.describe_images().send().await.unwrap();
    let ami = images.images().iter().find(|i| i.name() == Some("debian")).and_then(|i| i.image_id()).unwrap().to_string();

    let tags = TagSpecification::builder()
        .resource_type(ResourceType::Instance)
        .tags(Tag::builder().key("Name").value("sdk").build())
        .tags(Tag::builder().key("team").value("rust").build())
        .build();
    let run = ec2
        .run_instances()
        .image_id(&ami)
        .instance_type(aws_sdk_ec2::types::InstanceType::T2Micro)
        .min_count(1)
        .max_count(2)
        .tag_specifications(tags)
        .send()
        .await
        .unwrap();
    let ids: Vec<String> = run.instances().iter().filter_map(|i| i.instance_id()).map(str::to_string).collect();
    assert_eq!(ids.len(), 2);

    // The broker's reconciler (every second here) brings them to running.
    let mut states = Vec::new();
    for _ in 0..100 {
        let d = ec2.describe_instances().set_instance_ids(Some(ids.clone())).send().await.unwrap();
        states = d
            .reservations()
            .iter()
            .flat_map(|r| r.instances())
            .filter_map(|i| i.state().and_then(|s| s.name()).map(|n| n.as_str().to_string()))
            .collect();
        if states.iter().all(|s| s == "running") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(states, vec!["running", "running"]);
    let by_tag = ec2.describe_instances().filters(Filter::builder().name("tag:team").values("rust").build()).send().await.unwrap();
    assert_eq!(by_tag.reservations().iter().map(|r| r.instances().len()).sum::<usize>(), 2);

    let stop = ec2.stop_instances().instance_ids(&ids[0]).send().await.unwrap();
    let change = &stop.stopping_instances()[0];
    assert_eq!(change.previous_state().and_then(|s| s.code()), Some(16));
    let term = ec2.terminate_instances().set_instance_ids(Some(ids.clone())).send().await.unwrap();
    assert_eq!(term.terminating_instances().len(), 2);

    let err = ec2.describe_instances().instance_ids("i-0000000000000000").send().await.unwrap_err();
    assert_eq!(err.as_service_error().and_then(|e| aws_sdk_ec2::error::ProvideErrorMetadata::code(e)), Some("InvalidInstanceID.NotFound"));
    let bad = sdk(&base, ak, "not-the-secret").describe_regions().send().await.unwrap_err();
    assert_eq!(bad.as_service_error().and_then(|e| aws_sdk_ec2::error::ProvideErrorMetadata::code(e)), Some("AuthFailure"));
    common::stop(&mut broker);
}
