//! A broker killed (SIGKILL) in the middle of a 200-VM launch into moto, then
//! restarted: every VM in moto ends up known to the broker exactly once, no
//! launch ran twice, and every requested VM is either in the cloud or failed
//! with a reason. The test command runs one round of 200 VMs; the
//! reliability suite (`bench/reliability`) runs more, at random moments:
//! `CLOUDBROKER_CRASH_ROUNDS=5 CLOUDBROKER_CRASH_VMS=300`
//! (`CLOUDBROKER_CRASH_SEED` repeats a run's kill moments).

// Test code: panicking on an unexpected result is the point; helper
// functions outside #[test] are covered by this too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::zombie_processes)]

use cloudbroker_connector_api::params::ParamValues;
use cloudbroker_connector_api::{Credentials, DescribeFilter, InstanceName, VmState};
use cloudbroker_testkit::{MotoOptions, MotoServer};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
mod common;

use std::process::Command;
use std::time::{Duration, Instant};

const PW: &str = "super-password-1";

fn start(dir: &std::path::Path) -> (common::Broker, String) {
    common::serve(
        dir,
        &[],
        &[("CLOUDBROKER_ADMIN_PASSWORD", PW), ("CLOUDBROKER_RECONCILE_INTERVAL_SECS", "1"), ("CLOUDBROKER_LAUNCH_GRACE_SECS", "3")],
    )
}

async fn token(http: &reqwest::Client, base: &str) -> String {
    let r: Value = http.post(format!("{base}/api/v1/tokens")).basic_auth("super", Some(PW)).send().await.unwrap().json().await.unwrap();
    r["token"].as_str().unwrap().to_string()
}

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_during_a_200_vm_launch_loses_and_duplicates_nothing() {
    let rounds = env_or("CLOUDBROKER_CRASH_ROUNDS", 1).max(1);
    let requests = (env_or("CLOUDBROKER_CRASH_VMS", 200) / 5).max(4);
    let seed =
        env_or("CLOUDBROKER_CRASH_SEED", std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64);
    eprintln!("crash test: {rounds} round(s) of {} VMs, seed {seed} (CLOUDBROKER_CRASH_SEED repeats it)", requests * 5);
    let mut rng = seed;
    let mut next = move |n: u64| {
        // xorshift64*: enough to place the kills, and repeatable from the seed.
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % n
    };
    let moto = MotoServer::start(MotoOptions::default());
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("connectors.d")).unwrap();
    std::fs::write(
        dir.path().join("connectors.d/aws.conf"),
        format!(
            "cloud.connector.class = aws:ec2\naws.region = us-east-1\naws.endpoint = {}\naws.max.iaas.workers = 4\naws.quota.vm = 100000\n",
            moto.endpoint()
        ),
    )
    .unwrap();
    let http = reqwest::Client::new();
    for round in 0..rounds {
        let (mut broker, base) = start(dir.path());
        let t = token(&http, &base).await;
        if round == 0 {
            let put = |path: &str, body: Value| http.put(format!("{base}{path}")).bearer_auth(&t).json(&body).send();
            assert!(put(
                "/api/v1/users/super/credentials/aws",
                json!({"access_key_id": "AKIACRASHTEST0000001", "secret_access_key": "crash-secret"})
            )
            .await
            .unwrap()
            .status()
            .is_success());
            assert_eq!(
                http.post(format!("{base}/api/v1/images"))
                    .bearer_auth(&t)
                    .json(&json!({"name": "img", "mappings": {"aws": {"image_id": "ami-12c6146b"}}}))
                    .send()
                    .await
                    .unwrap()
                    .status(),
                201
            );
        }

        // Slow RunInstances down so the kill lands with launches in every phase.
        moto.set_faults(json!({"delay_ms": 400, "delay_actions": ["RunInstances"]})).await;
        let calls_before = moto.action_count("RunInstances").await;
        let mut tasks = Vec::new();
        for i in 0..requests {
            let (http, url, t) = (http.clone(), format!("{base}/api/v1/vms"), t.clone());
            tasks.push(tokio::spawn(async move {
                let _ = http
                    .post(url)
                    .bearer_auth(t)
                    .json(&json!({"instance": "aws", "image": "img", "count": 5, "client_token": format!("r{round}c{i}")}))
                    .send()
                    .await;
            }));
        }
        // Kill once some launches reached moto, well before all of them did:
        // the first round after 8, later rounds at a random count.
        let threshold = if round == 0 { 8.min(requests / 2) } else { 1 + next(requests * 3 / 4) };
        let deadline = Instant::now() + Duration::from_secs(60);
        while moto.action_count("RunInstances").await < calls_before + threshold && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Command::new("kill").args(["-KILL", &broker.id().to_string()]).status().unwrap();
        broker.wait().unwrap();
        for t in tasks {
            let _ = t.await;
        }
        moto.set_faults(json!({})).await;
        let launched_calls = moto.action_count("RunInstances").await - calls_before;
        assert!(
            launched_calls > 0 && launched_calls < requests,
            "round {round}: the kill landed mid-launch ({launched_calls} of {requests} RunInstances)"
        );
    }

    let (mut broker, base) = start(dir.path());
    let t = token(&http, &base).await;
    // Wait for reconciliation to settle every launch.
    let deadline = Instant::now() + Duration::from_secs(60);
    let vms = loop {
        let vms = all_pages(&http, &format!("{base}/api/v1/vms"), &t, "vms").await;
        if vms.iter().all(|v| v["state"] != "requested") || Instant::now() > deadline {
            break vms;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    let audit = all_pages(&http, &format!("{base}/api/v1/audit"), &t, "entries").await;
    let completed_before_kill = audit.iter().filter(|r| r["action"] == "vm.launch" && r["outcome"] == "ok").count() as u64;
    common::stop(&mut broker);
    let calls = moto.action_count("RunInstances").await;
    assert!(
        completed_before_kill < calls,
        "some launches reached moto but were not recorded before the kill ({completed_before_kill} of {calls}): adoption was exercised"
    );

    assert!(vms.iter().all(|v| v["state"] != "requested"), "unsettled: {vms:?}");
    // Launches whose request had not been admitted when the broker died are
    // not recorded at all (their callers saw the connection drop); the rest
    // are recorded whole.
    assert!(vms.len() % 5 == 0 && vms.len() as u64 <= rounds * requests * 5, "{} records", vms.len());
    for v in vms.iter().filter(|v| v["state"] == "failed") {
        assert!(v["error"].as_str().is_some_and(|e| !e.is_empty()), "failed without a reason: {v}");
    }
    let conn = cloudbroker_connector_ec2::build(
        InstanceName::parse("aws").unwrap(),
        &ParamValues::new(BTreeMap::from([("region".to_string(), "us-east-1".to_string()), ("endpoint".to_string(), moto.endpoint())])),
    )
    .unwrap();
    let creds = Credentials::new("AKIACRASHTEST0000001", "crash-secret");
    let in_moto: Vec<_> = conn
        .describe_instances(&creds, &DescribeFilter::default())
        .await
        .unwrap()
        .into_iter()
        .filter(|v| v.state != VmState::Terminated)
        .collect();
    assert!(!in_moto.is_empty());

    // Every moto VM is known exactly once.
    let mut known: BTreeMap<String, usize> = BTreeMap::new();
    for v in &vms {
        if let Some(c) = v["cloud_id"].as_str() {
            *known.entry(c.to_string()).or_default() += 1;
        }
    }
    for v in &in_moto {
        assert_eq!(known.get(&v.id), Some(&1), "moto VM {} known {:?} times", v.id, known.get(&v.id));
    }
    let moto_ids: BTreeSet<&str> = in_moto.iter().map(|v| v.id.as_str()).collect();
    assert!(known.keys().all(|k| moto_ids.contains(k.as_str())), "the broker knows no VM that moto lacks");
    // No launch ran twice: per launch tag, at most its 5 VMs.
    let mut per_launch: BTreeMap<&str, usize> = BTreeMap::new();
    for v in &in_moto {
        *per_launch.entry(v.tag("cloudbroker:launch").unwrap()).or_default() += 1;
    }
    assert!(per_launch.values().all(|n| *n == 5), "{per_launch:?}");
    assert_eq!(in_moto.len() as u64, 5 * moto.action_count("RunInstances").await, "one RunInstances per launch");
    // Launches that never reached moto are failed, not running.
    let running = vms.iter().filter(|v| v["cloud_id"].is_string()).count();
    let failed = vms.iter().filter(|v| v["state"] == "failed").count();
    assert_eq!(running, in_moto.len());
    assert_eq!(running + failed, vms.len(), "every record is either in the cloud or failed");
    eprintln!("crash test: {} VMs recorded, {} in moto, {} failed launches", vms.len(), in_moto.len(), failed);
}

/// Every item of a paginated list, following `next_cursor`.
async fn all_pages(http: &reqwest::Client, url: &str, token: &str, key: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut q = vec![("limit", "1000".to_string())];
        if let Some(c) = &cursor {
            q.push(("cursor", c.clone()));
        }
        let r: Value = http.get(url).query(&q).bearer_auth(token).send().await.unwrap().json().await.unwrap();
        out.extend(r[key].as_array().unwrap_or_else(|| panic!("{url}: no '{key}' in {r}")).iter().cloned());
        match r["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => return out,
        }
    }
}
