//! Launch policies per connector instance (issue 26) through the JSON API
//! and the EC2 front, on SQLite and on PostgreSQL: the policies are set as
//! instance parameters (`PUT /api/v1/system/config`); each one refuses a
//! launch that breaks it, on the JSON API with 409 `policy_violation`
//! naming the `field`, on the EC2 front with `InvalidParameterValue` (a
//! `DryRun` too), both with the same message naming the policy and the
//! offending value; the same launch passes when the policy allows it.
//! The EC2 front is driven by signed requests and by boto3
//! (tests/ec2/boto3_policies.py).

// Test code: panicking on an unexpected result is the point.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{TestApp, SUPER_PW};
use reqwest::Method;
use serde_json::{json, Value};

/// The admin's token, alice's token and her access key (id, secret), with
/// public images `linux` and `alpine` on `sb`.
async fn setup(app: &TestApp) -> (String, String, (String, String)) {
    let admin = app.token("super", SUPER_PW).await;
    for (name, id) in [("linux", "ami-sandbox-debian-12"), ("alpine", "ami-sandbox-alpine-3")] {
        let image = json!({"name": name, "mappings": {"sb": {"image_id": id}}});
        let (s, b) = app.call(Method::POST, "/api/v1/images", &admin, Some(image)).await;
        assert_eq!(s, 201, "{b}");
    }
    let t = app.user(&admin, "alice").await;
    let (s, k) = app.call(Method::POST, "/api/v1/users/alice/access-keys", &t, None).await;
    assert_eq!(s, 201, "{k}");
    (admin, t, (k["access_key_id"].as_str().unwrap().to_string(), k["secret_access_key"].as_str().unwrap().to_string()))
}

async fn set(app: &TestApp, admin: &str, params: Value) {
    let (s, b) = app.call(Method::PUT, "/api/v1/system/config", admin, Some(params)).await;
    assert_eq!(s, 200, "{b}");
}

/// A launch on `sb` that every policy below allows.
fn good() -> Value {
    json!({"instance": "sb", "image": "linux", "instance_type": "t2.small", "count": 1,
           "tags": {"cost-center": "rd", "owner": "alice"}})
}

fn with(mut body: Value, key: &str, value: Value) -> Value {
    body[key] = value;
    body
}

/// The JSON API's refusal of `body`: 409 `policy_violation`, with its field and message.
async fn api_refused(app: &TestApp, t: &str, body: Value) -> (String, String) {
    let (s, b) = app.call(Method::POST, "/api/v1/vms", t, Some(body)).await;
    assert_eq!((s, b["error"]["code"].as_str()), (409, Some("policy_violation")), "{b}");
    (b["error"]["field"].as_str().unwrap().to_string(), b["error"]["message"].as_str().unwrap().to_string())
}

fn form(pairs: &[(&str, &str)]) -> String {
    let mut f = url::form_urlencoded::Serializer::new(String::new());
    f.append_pair("Version", "2016-11-15");
    for (k, v) in pairs {
        f.append_pair(k, v);
    }
    f.finish()
}

fn between<'a>(xml: &'a str, open: &str, close: &str) -> &'a str {
    xml.split(open).nth(1).and_then(|r| r.split(close).next()).unwrap_or("")
}

/// `RunInstances` on `sb` of `image` (a native name) with these extra
/// parameters (`DryRun` too when `dry`): (status, code, message unescaped).
async fn run(app: &TestApp, key: &(String, String), image: &str, extra: &[(&str, &str)], dry: bool) -> (u16, String, String) {
    let ami = cloudbroker_ec2_api::ids::image_id(image);
    let mut pairs = vec![("Action", "RunInstances"), ("ImageId", ami.as_str()), ("MinCount", "1"), ("MaxCount", "1")];
    pairs.extend_from_slice(extra);
    if dry {
        pairs.push(("DryRun", "true"));
    }
    let (s, xml) = app.ec2_call(key, "sb", &form(&pairs)).await;
    let message = between(&xml, "<Message>", "</Message>").replace("&apos;", "'").replace("&amp;", "&");
    (s, between(&xml, "<Code>", "</Code>").to_string(), message)
}

/// The EC2 front's refusal: `InvalidParameterValue` with `message`, the dry run alike.
async fn ec2_refused(app: &TestApp, key: &(String, String), image: &str, extra: &[(&str, &str)], message: &str) {
    for dry in [true, false] {
        let got = run(app, key, image, extra, dry).await;
        assert_eq!(got, (400, "InvalidParameterValue".to_string(), message.to_string()), "dry run: {dry}");
    }
}

const TAGS: [(&str, &str); 6] = [
    ("TagSpecification.1.ResourceType", "instance"),
    ("TagSpecification.1.Tag.1.Key", "cost-center"),
    ("TagSpecification.1.Tag.1.Value", "rd"),
    ("TagSpecification.1.Tag.2.Key", "owner"),
    ("TagSpecification.1.Tag.2.Value", "alice"),
    ("InstanceType", "t2.small"),
];

app_test!(every_policy_is_refused_on_the_json_api_and_the_ec2_front, |app: TestApp| async move {
    let (admin, alice, key) = setup(&app).await;
    set(
        &app,
        &admin,
        json!({
            "sb.policy.instance.types": "t2.*, m5.large",
            "sb.policy.images": "linux",
            "sb.policy.tags.required": "cost-center=(rd|ops|sales), owner",
            "sb.policy.count.max": "2",
        }),
    )
    .await;
    // Allowed on both fronts.
    let (s, b) = app.call(Method::POST, "/api/v1/vms", &alice, Some(good())).await;
    assert_eq!(s, 201, "{b}");
    let (s, code, message) = run(&app, &key, "linux", &TAGS, false).await;
    assert_eq!((s, code.as_str()), (200, ""), "{message}");
    assert_eq!(run(&app, &key, "linux", &TAGS, true).await.1, "DryRunOperation");

    // Instance types.
    let m = "instance type 'm5.xlarge' is not allowed on 'sb' (policy.instance.types: t2.*, m5.large)";
    assert_eq!(api_refused(&app, &alice, with(good(), "instance_type", json!("m5.xlarge"))).await, ("instance_type".into(), m.into()));
    let mut extra = TAGS.to_vec();
    extra[5] = ("InstanceType", "m5.xlarge");
    ec2_refused(&app, &key, "linux", &extra, m).await;

    // Images.
    let m = "image 'alpine' is not allowed on 'sb' (policy.images: linux)";
    assert_eq!(api_refused(&app, &alice, with(good(), "image", json!("alpine"))).await, ("image".into(), m.into()));
    ec2_refused(&app, &key, "alpine", &TAGS, m).await;

    // Required tags: a missing key, a value not allowed.
    let m = "tag 'owner' is required on 'sb' (policy.tags.required: cost-center=(rd|ops|sales), owner)";
    assert_eq!(api_refused(&app, &alice, with(good(), "tags", json!({"cost-center": "ops"}))).await, ("tags".into(), m.into()));
    ec2_refused(&app, &key, "linux", &TAGS[..3], m).await;
    let m = "tag 'cost-center' = 'hr' is not allowed on 'sb' (policy.tags.required: cost-center=(rd|ops|sales), owner)";
    let bad = with(good(), "tags", json!({"cost-center": "hr", "owner": "alice"}));
    assert_eq!(api_refused(&app, &alice, bad).await, ("tags".into(), m.into()));
    let mut extra = TAGS.to_vec();
    extra[2] = ("TagSpecification.1.Tag.1.Value", "hr");
    ec2_refused(&app, &key, "linux", &extra, m).await;

    // VMs per launch (EC2: MaxCount above the policy, whatever MinCount).
    let m = "a launch of up to 3 VMs is not allowed on 'sb': at most 2 per launch (policy.count.max: 2)";
    assert_eq!(api_refused(&app, &alice, with(good(), "count", json!(3))).await, ("count".into(), m.into()));
    let ami = cloudbroker_ec2_api::ids::image_id("linux");
    let mut pairs = vec![("Action", "RunInstances"), ("ImageId", ami.as_str()), ("MinCount", "1"), ("MaxCount", "3")];
    pairs.extend_from_slice(&TAGS);
    let (s, xml) = app.ec2_call(&key, "sb", &form(&pairs)).await;
    assert_eq!((s, between(&xml, "<Code>", "</Code>")), (400, "InvalidParameterValue"), "{xml}");
    assert_eq!(between(&xml, "<Message>", "</Message>").replace("&apos;", "'"), m);
    let (s, b) = app.call(Method::POST, "/api/v1/vms", &alice, Some(with(good(), "count", json!(2)))).await;
    assert_eq!(s, 201, "{b}");

    // Loosened: the same launches pass at once.
    set(&app, &admin, json!({"sb.policy.instance.types": "", "sb.policy.images": "linux, alpine"})).await;
    let (s, b) = app.call(Method::POST, "/api/v1/vms", &alice, Some(with(good(), "instance_type", json!("m5.xlarge")))).await;
    assert_eq!(s, 201, "{b}");
    let (s, code, message) = run(&app, &key, "alpine", &TAGS, false).await;
    assert_eq!((s, code.as_str()), (200, ""), "{message}");
});

app_test!(malformed_policies_are_refused_by_the_config_api, |app: TestApp| async move {
    let (admin, _, _) = setup(&app).await;
    let (s, b) =
        app.call(Method::PUT, "/api/v1/system/config", &admin, Some(json!({"sb.policy.tags.required": "cost-center=(rd, ops)"}))).await;
    assert_eq!(s, 400, "{b}");
    assert!(b["error"]["message"].as_str().unwrap().contains("key=(a|b|c)"), "{b}");
});

app_test!(every_policy_is_refused_to_boto3, |app: TestApp| async move {
    let (admin, _, key) = setup(&app).await;
    set(
        &app,
        &admin,
        json!({
            "sb.policy.instance.types": "t2.*, m5.large",
            "sb.policy.images": "linux",
            "sb.policy.tags.required": "cost-center=(rd|ops|sales), owner",
            "sb.policy.count.max": "2",
        }),
    )
    .await;
    let env = vec![
        ("EP".to_string(), app.url("/ec2")),
        ("ALICE_AK".into(), key.0.clone()),
        ("ALICE_SK".into(), key.1.clone()),
        ("AWS_EC2_METADATA_DISABLED".into(), "true".into()),
        ("AWS_CONFIG_FILE".into(), "/dev/null".into()),
        ("AWS_SHARED_CREDENTIALS_FILE".into(), "/dev/null".into()),
    ];
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ec2/boto3_policies.py");
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(cloudbroker_testkit::venv_python()).arg(script).envs(env).output().unwrap()
    })
    .await
    .unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "boto3 script failed:\n{stderr}\n{stdout}");
    let out: Value = serde_json::from_str(stdout.lines().last().unwrap_or("")).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    let refused = |m: &str| json!(["InvalidParameterValue", m]);
    let tags = "(policy.tags.required: cost-center=(rd|ops|sales), owner)";
    assert_eq!(out["type"], refused("instance type 'm5.xlarge' is not allowed on 'sb' (policy.instance.types: t2.*, m5.large)"));
    assert_eq!(out["image"], refused("image 'alpine' is not allowed on 'sb' (policy.images: linux)"));
    assert_eq!(out["missing_tag"], refused(&format!("tag 'owner' is required on 'sb' {tags}")));
    assert_eq!(out["tag_value"], refused(&format!("tag 'cost-center' = 'hr' is not allowed on 'sb' {tags}")));
    assert_eq!(out["count"], refused("a launch of up to 3 VMs is not allowed on 'sb': at most 2 per launch (policy.count.max: 2)"));
    assert_eq!((&out["allowed"], &out["allowed_two"]), (&json!(1), &json!(2)), "{out}");
});
