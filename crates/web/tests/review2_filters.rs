//! Issue 20 item 2: `Describe*` filters are bounded (values per filter,
//! value length, filters per request) with EC2's error codes, the report's
//! hostile filter answers correctly, and what one user owns is capped in the
//! services (key pairs, Elastic IPs, volumes, tags per resource) with EC2's
//! codes, also under concurrent creation. Requests are SigV4-signed by
//! `cloudbroker-sigv` (the signer botocore's own test vectors check), on
//! SQLite and PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use cloudbroker_core::domain::{Tags, VolumeSize};
use cloudbroker_core::limits::{MAX_ADDRESSES, MAX_KEY_PAIRS, MAX_VOLUMES};
use cloudbroker_core::provisioning::VolumeSpec;
use cloudbroker_core::Actor;
use common::{TestApp, SUPER_PW};
use reqwest::Method;
use serde_json::json;

/// Alice's token and access key (id, secret).
async fn alice(app: &TestApp) -> (String, (String, String)) {
    let admin = app.token("super", SUPER_PW).await;
    let t = app.user(&admin, "alice").await;
    let (s, k) = app.call(Method::POST, "/api/v1/users/alice/access-keys", &t, None).await;
    assert_eq!(s, 201, "{k}");
    (t, (k["access_key_id"].as_str().unwrap().to_string(), k["secret_access_key"].as_str().unwrap().to_string()))
}

fn form(pairs: &[(String, String)]) -> String {
    let mut f = url::form_urlencoded::Serializer::new(String::new());
    f.append_pair("Version", "2016-11-15");
    for (k, v) in pairs {
        f.append_pair(k, v);
    }
    f.finish()
}

fn pairs(kv: &[(&str, &str)]) -> Vec<(String, String)> {
    kv.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn code(xml: &str) -> String {
    xml.split("<Code>").nth(1).and_then(|r| r.split("</Code>").next()).unwrap_or("").to_string()
}

fn message(xml: &str) -> String {
    xml.split("<Message>").nth(1).and_then(|r| r.split("</Message>").next()).unwrap_or("").to_string()
}

fn count(xml: &str, tag: &str) -> usize {
    xml.matches(&format!("<{tag}>")).count()
}

app_test!(filter_limits_answer_ec2s_codes_and_the_hostile_filter_answers_right, |app: TestApp| async move {
    let (_t, key) = alice(&app).await;
    let me = Actor::new("alice".parse().unwrap(), false);
    let long = |i: usize| format!("{}{:04}", "a".repeat(250), i);
    for i in 0..20 {
        app.broker.key_pairs.create(&me, &long(i)).await.unwrap();
    }
    let hostile = format!("*{}b", "a".repeat(253));
    let describe = |values: Vec<String>| {
        let mut kv = pairs(&[("Action", "DescribeKeyPairs"), ("Filter.1.Name", "key-name")]);
        kv.extend(values.into_iter().enumerate().map(|(i, v)| (format!("Filter.1.Value.{}", i + 1), v)));
        form(&kv)
    };

    // 200 values is the limit: the heaviest filter allowed, plus one value that matches.
    let mut values = vec![hostile.clone(); 199];
    values.push(format!("*{}", &long(7)[200..]));
    let (s, body) = app.ec2_call(&key, "sb", &describe(values)).await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(count(&body, "keyName"), 1, "{body}");
    assert!(body.contains(&long(7)), "{body}");

    // 201 values: EC2's FilterLimitExceeded, naming the filter.
    let (s, body) = app.ec2_call(&key, "sb", &describe(vec![hostile.clone(); 201])).await;
    assert_eq!((s, code(&body).as_str()), (400, "FilterLimitExceeded"), "{body}");
    assert!(message(&body).contains("key-name") && message(&body).contains("200"), "{body}");

    // A value longer than 256 characters: refused, naming the filter.
    let (s, body) = app.ec2_call(&key, "sb", &describe(vec![format!("*{}", "a".repeat(256))])).await;
    assert_eq!((s, code(&body).as_str()), (400, "InvalidParameterValue"), "{body}");
    assert!(message(&body).contains("key-name") && message(&body).contains("257"), "{body}");

    // Too many filters, on another Describe action (every one goes through the same parser).
    let mut kv = pairs(&[("Action", "DescribeVolumes")]);
    for i in 1..=51 {
        kv.push((format!("Filter.{i}.Name"), "volume-id".into()));
        kv.push((format!("Filter.{i}.Value.1"), "vol-*".into()));
    }
    let (s, body) = app.ec2_call(&key, "sb", &form(&kv)).await;
    assert_eq!((s, code(&body).as_str()), (400, "FilterLimitExceeded"), "{body}");

    // Wildcards keep their meaning on every Describe action.
    let (s, body) = app
        .ec2_call(
            &key,
            "sb",
            &form(&pairs(&[("Action", "DescribeKeyPairs"), ("Filter.1.Name", "key-name"), ("Filter.1.Value.1", "a*0?13")])),
        )
        .await;
    assert_eq!((s, count(&body, "keyName")), (200, 1), "{body}");
    let (s, body) = app
        .ec2_call(
            &key,
            "sb",
            &form(&pairs(&[("Action", "DescribeImages"), ("Filter.1.Name", "name"), ("Filter.1.Value.1", "nothing-like-?*")])),
        )
        .await;
    assert_eq!((s, count(&body, "imageId")), (200, 0), "{body}");
});

app_test!(key_pairs_are_capped_per_user_with_resource_limit_exceeded, |app: TestApp| async move {
    let (_t, key) = alice(&app).await;
    let me = Actor::new("alice".parse().unwrap(), false);
    let pk = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIIrfkw6NnNDNuTrQ6kQr+oIVd8hD6Z+8sqEQZA3xsZ1y";
    for i in 0..MAX_KEY_PAIRS - 1 {
        app.broker.key_pairs.import(&me, &format!("k{i}"), pk).await.unwrap();
    }
    let create = |name: &str| form(&pairs(&[("Action", "CreateKeyPair"), ("KeyName", name)]));
    let (s, body) = app.ec2_call(&key, "sb", &create("last")).await;
    assert_eq!(s, 200, "{body}");
    let (s, body) = app.ec2_call(&key, "sb", &create("one-too-many")).await;
    assert_eq!((s, code(&body).as_str()), (400, "ResourceLimitExceeded"), "{body}");
    assert!(message(&body).contains(&MAX_KEY_PAIRS.to_string()), "{body}");
    let (s, body) = app.ec2_call(&key, "sb", &form(&pairs(&[("Action", "DescribeKeyPairs")]))).await;
    assert_eq!((s, count(&body, "keyName") as i64), (200, MAX_KEY_PAIRS), "nothing made past the cap");
    // Deleting one makes room again.
    let (s, _) = app.ec2_call(&key, "sb", &form(&pairs(&[("Action", "DeleteKeyPair"), ("KeyName", "k0")]))).await;
    assert_eq!(s, 200);
    let (s, body) = app.ec2_call(&key, "sb", &create("one-too-many")).await;
    assert_eq!(s, 200, "{body}");
});

app_test!(addresses_are_capped_per_user_also_under_concurrent_allocation, |app: TestApp| async move {
    let (_t, key) = alice(&app).await;
    let me = Actor::new("alice".parse().unwrap(), false);
    let sb = "sb".parse().unwrap();
    // The sandbox holds at most 5 addresses per account (EC2's default): the
    // user's other addresses are recorded as on another region.
    let store = cloudbroker_store::Store::connect(&app.db_url).await.unwrap();
    for i in 0..MAX_ADDRESSES - 2 {
        store.insert_address("elsewhere", &format!("eipalloc-{i:08}"), "alice", "cred-x", "198.51.100.1").await.unwrap();
    }
    // Eight at once for the last two places.
    let calls: Vec<_> = (0..8)
        .map(|_| {
            let (app_key, body) = (key.clone(), form(&pairs(&[("Action", "AllocateAddress"), ("Domain", "vpc")])));
            let base = app.base.clone();
            let http = app.http.clone();
            tokio::spawn(async move { signed_post(&http, &base, &app_key, &body).await })
        })
        .collect();
    let mut codes = Vec::new();
    for c in calls {
        let (s, body) = c.await.unwrap();
        codes.push(if s == 200 { "ok".to_string() } else { code(&body) });
    }
    assert_eq!(codes.iter().filter(|c| *c == "ok").count(), 2, "{codes:?}");
    assert!(codes.iter().all(|c| c == "ok" || c == "AddressLimitExceeded"), "{codes:?}");
    assert_eq!(app.broker.provisioning.addresses(&me, &sb).await.unwrap().len(), 2);
    assert_eq!(store.owned_count(cloudbroker_store::limits::Owned::Addresses, "alice").await.unwrap(), MAX_ADDRESSES);
    // The cloud holds exactly what the broker recorded: an address allocated
    // past the cap (the race's losers) was given back.
    let (creds, _) = app.broker.vault.credentials_for(&me.name, &sb).await.unwrap();
    let conn = app.broker.registry.snapshot().instance("sb").unwrap().connector.clone().unwrap();
    assert_eq!(conn.describe_addresses(&creds, &[]).await.unwrap().len(), 2);
    // At the cap, the broker refuses before asking the cloud (which has room for 3 more).
    let (s, body) = app.ec2_call(&key, "sb", &form(&pairs(&[("Action", "AllocateAddress")]))).await;
    assert_eq!((s, code(&body).as_str()), (400, "AddressLimitExceeded"), "{body}");
    assert!(message(&body).contains(&MAX_ADDRESSES.to_string()), "the broker's cap, not the cloud's: {body}");
    assert_eq!(conn.describe_addresses(&creds, &[]).await.unwrap().len(), 2);
    store.close().await;
});

app_test!(volumes_and_tags_are_capped_with_ec2s_codes, |app: TestApp| async move {
    let (_t, key) = alice(&app).await;
    let me = Actor::new("alice".parse().unwrap(), false);
    let sb = "sb".parse().unwrap();
    for _ in 0..MAX_VOLUMES - 1 {
        let spec = VolumeSpec { size: VolumeSize::parse("1").unwrap(), zone: "sba".into(), volume_type: None, tags: Tags::default() };
        app.broker.provisioning.create_volume(&me, &sb, spec).await.unwrap();
    }
    // The last volume carries 40 tags, the most a resource may have.
    let mut kv =
        pairs(&[("Action", "CreateVolume"), ("Size", "1"), ("AvailabilityZone", "sba"), ("TagSpecification.1.ResourceType", "volume")]);
    for i in 1..=cloudbroker_core::domain::MAX_TAGS {
        kv.push((format!("TagSpecification.1.Tag.{i}.Key"), format!("k{i}")));
        kv.push((format!("TagSpecification.1.Tag.{i}.Value"), "v".into()));
    }
    let (s, body) = app.ec2_call(&key, "sb", &form(&kv)).await;
    assert_eq!(s, 200, "{body}");
    let volume = body.split("<volumeId>").nth(1).unwrap().split("</volumeId>").next().unwrap().to_string();
    let (s, body) =
        app.ec2_call(&key, "sb", &form(&pairs(&[("Action", "CreateVolume"), ("Size", "1"), ("AvailabilityZone", "sba")]))).await;
    assert_eq!((s, code(&body).as_str()), (400, "VolumeLimitExceeded"), "{body}");
    assert_eq!(app.broker.provisioning.volumes(&me, &sb).await.unwrap().len() as i64, MAX_VOLUMES);

    // A 41st tag: TagLimitExceeded, and the volume keeps its 40.
    let tag = |k: &str| form(&pairs(&[("Action", "CreateTags"), ("ResourceId.1", &volume), ("Tag.1.Key", k), ("Tag.1.Value", "x")]));
    let (s, body) = app.ec2_call(&key, "sb", &tag("one-more")).await;
    assert_eq!((s, code(&body).as_str()), (400, "TagLimitExceeded"), "{body}");
    // Replacing an existing tag's value is not a new tag.
    let (s, body) = app.ec2_call(&key, "sb", &tag("k1")).await;
    assert_eq!(s, 200, "{body}");
    let v = app.broker.provisioning.volumes(&me, &sb).await.unwrap().into_iter().find(|v| v.volume_id.as_str() == volume).unwrap();
    assert_eq!((v.tags.len(), v.tags.get("k1").map(String::as_str)), (40, Some("x")));
});

app_test!(vm_tags_are_capped_on_the_ec2_front_and_the_json_api, |app: TestApp| async move {
    let (token, key) = alice(&app).await;
    let admin = app.token("super", SUPER_PW).await;
    let image = json!({"name": "ubuntu", "mappings": {"sb": {"image_id": "ami-sandbox-ubuntu-2204", "instance_type": "t2.small"}}});
    assert_eq!(app.call(Method::POST, "/api/v1/images", &admin, Some(image)).await.0, 201);
    let forty: serde_json::Map<String, serde_json::Value> = (1..=40).map(|i| (format!("k{i}"), json!("v"))).collect();
    let mut forty_one = forty.clone();
    forty_one.insert("k41".into(), json!("v"));
    // The JSON API: 41 tags at launch are refused, naming the field.
    let (s, b) = app.call(Method::POST, "/api/v1/vms", &token, Some(json!({"instance": "sb", "image": "ubuntu", "tags": forty_one}))).await;
    assert_eq!(s, 400, "{b}");
    assert_eq!(b["error"]["field"], "tags", "{b}");
    let (s, b) = app.call(Method::POST, "/api/v1/vms", &token, Some(json!({"instance": "sb", "image": "ubuntu", "tags": forty}))).await;
    assert_eq!(s, 201, "{b}");
    let vm = b["vms"][0]["id"].as_str().or(b["id"].as_str()).map(str::to_string).unwrap_or_else(|| panic!("{b}"));
    let instance = format!("i-{}", vm.strip_prefix("vm-").unwrap());
    // The EC2 front: a 41st tag on that VM is EC2's TagLimitExceeded.
    let (s, body) = app
        .ec2_call(
            &key,
            "sb",
            &form(&pairs(&[("Action", "CreateTags"), ("ResourceId.1", &instance), ("Tag.1.Key", "k41"), ("Tag.1.Value", "v")])),
        )
        .await;
    assert_eq!((s, code(&body).as_str()), (400, "TagLimitExceeded"), "{body}");
    let (s, b) = app.call(Method::GET, &format!("/api/v1/vms/{vm}"), &token, None).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["tags"].as_object().map(|t| t.len()), Some(40), "{b}");
});

/// A SigV4-signed POST to `/ec2` from another task (the concurrency test).
async fn signed_post(http: &reqwest::Client, base: &str, key: &(String, String), body: &str) -> (u16, String) {
    let host = base.trim_start_matches("http://").to_string();
    let headers =
        vec![("host".to_string(), host), ("content-type".to_string(), "application/x-www-form-urlencoded; charset=utf-8".to_string())];
    let params = cloudbroker_sigv::SigningParams::new(&key.0, &key.1, "sb", "ec2", chrono::Utc::now());
    let added = cloudbroker_sigv::sign_v4_headers("POST", "/ec2", &[], &headers, body.as_bytes(), &params).unwrap();
    let mut r = http.post(format!("{base}/ec2")).body(body.to_string());
    for (k, v) in headers.iter().chain(added.iter()).filter(|(k, _)| k != "host") {
        r = r.header(k.as_str(), v.as_str());
    }
    let resp = r.send().await.unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}
