//! VM leases (issue 26) through the JSON API and the EC2 front, on SQLite
//! and on PostgreSQL, against the real server on port 0 with the broker's
//! clock set by hand (so every expiry is known to the second): a launch's
//! `lease` (a duration or an RFC 3339 time), else the instance's
//! `lease.default`; past `lease.max` a 409 `policy_violation` on `lease`
//! with the exact message; a malformed lease a 400 naming `lease`.
//! `POST /vms/{id}/lease` extends (one click: `{}`), capped at `lease.max`
//! from now for members, not for admins; viewers are refused (403), other
//! projects' VMs are not found (404); `DELETE /vms/{id}/lease` is for
//! admins. On the EC2 front (boto3, tests/ec2/boto3_leases.py) the tag
//! `cloudbroker:lease` sets the lease and DescribeInstances shows
//! `cloudbroker:lease-expires` and `cloudbroker:lease-action`.

// Test code: panicking on an unexpected result is the point.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use chrono::{DateTime, Duration, Utc};
use cloudbroker_core::domain::time::{rfc3339_string, Fraction};
use common::{TestApp, SUPER_PW};
use reqwest::Method;
use serde_json::{json, Value};

/// The admin's token and alice's, with the public image `linux` on `sb`,
/// and the broker's clock stopped at a whole second (returned).
async fn setup(app: &TestApp) -> (String, String, DateTime<Utc>) {
    let admin = app.token("super", SUPER_PW).await;
    let image = json!({"name": "linux", "mappings": {"sb": {"image_id": "ami-sandbox-debian-12"}}});
    let (s, b) = app.call(Method::POST, "/api/v1/images", &admin, Some(image)).await;
    assert_eq!(s, 201, "{b}");
    let alice = app.user(&admin, "alice").await;
    let now = DateTime::from_timestamp(Utc::now().timestamp(), 0).unwrap();
    app.broker.clock.set(now);
    (admin, alice, now)
}

async fn set(app: &TestApp, admin: &str, params: Value) {
    let (s, b) = app.call(Method::PUT, "/api/v1/system/config", admin, Some(params)).await;
    assert_eq!(s, 200, "{b}");
}

/// A time as the API writes it.
fn text(t: DateTime<Utc>) -> String {
    rfc3339_string(&t, Fraction::Auto)
}

fn launch_body(lease: Option<&str>) -> Value {
    let mut b = json!({"instance": "sb", "image": "linux"});
    if let Some(l) = lease {
        b["lease"] = json!(l);
    }
    b
}

/// Launches one VM; its JSON.
async fn launch(app: &TestApp, t: &str, path: &str, lease: Option<&str>) -> Value {
    let (s, b) = app.call(Method::POST, path, t, Some(launch_body(lease))).await;
    assert_eq!(s, 201, "{b}");
    b["vms"][0].clone()
}

/// (status, code, field, message) of an error answer.
fn error(s: u16, b: &Value) -> (u16, String, String, String) {
    let e = &b["error"];
    let get = |k: &str| e[k].as_str().unwrap_or_default().to_string();
    (s, get("code"), get("field"), get("message"))
}

app_test!(a_launch_takes_a_lease, |app: TestApp| async move {
    let (admin, alice, now) = setup(&app).await;
    // No lease asked, none set on the instance: none.
    let vm = launch(&app, &alice, "/api/v1/vms", None).await;
    assert_eq!(vm["lease"], Value::Null, "{vm}");
    // A duration, or an absolute time.
    let vm = launch(&app, &alice, "/api/v1/vms", Some("2h")).await;
    assert_eq!(vm["lease"]["expires_at"], json!(text(now + Duration::hours(2))), "{vm}");
    assert_eq!(
        (&vm["lease"]["action"], &vm["lease"]["warned_at"], &vm["lease"]["ended_at"]),
        (&json!("terminate"), &Value::Null, &Value::Null)
    );
    let until = now + Duration::minutes(200);
    let vm = launch(&app, &alice, "/api/v1/vms", Some(&text(until))).await;
    assert_eq!(vm["lease"]["expires_at"], json!(text(until)), "{vm}");
    // The lease is on the VM's record: read back, and in the list.
    let id = vm["id"].as_str().unwrap();
    let (s, b) = app.call(Method::GET, &format!("/api/v1/vms/{id}"), &alice, None).await;
    assert_eq!((s, &b["lease"]["expires_at"]), (200, &json!(text(until))), "{b}");
    let (_, list) = app.call(Method::GET, "/api/v1/vms", &alice, None).await;
    assert_eq!(list["vms"].as_array().unwrap().iter().filter(|v| !v["lease"].is_null()).count(), 2, "{list}");

    // Malformed leases: 400 naming `lease`.
    let (s, b) = app.call(Method::POST, "/api/v1/vms", &alice, Some(launch_body(Some("8 hours")))).await;
    assert_eq!(
        error(s, &b),
        (
            400,
            "invalid_request".into(),
            "lease".into(),
            "'8 hours' is not a duration: units are d, h, m and s (e.g. 8h, 90m, 1d12h)".into()
        )
    );
    for bad in ["2026-13-01T00:00:00Z", "8", "0h", ""] {
        let (s, b) = app.call(Method::POST, "/api/v1/vms", &alice, Some(launch_body(Some(bad)))).await;
        assert_eq!((s, b["error"]["field"].as_str()), (400, Some("lease")), "{bad}: {b}");
    }
    let past = text(now - Duration::minutes(5));
    let (s, b) = app.call(Method::POST, "/api/v1/vms", &alice, Some(launch_body(Some(&past)))).await;
    assert_eq!((s, b["error"]["field"].as_str()), (400, Some("lease")), "{b}");
    assert!(b["error"]["message"].as_str().unwrap().contains("not in the future"), "{b}");

    // The instance's terms: the default lease and its action; past the max refused, exactly.
    set(&app, &admin, json!({"sb.lease.default": "8h", "sb.lease.max": "1d", "sb.lease.action": "stop"})).await;
    let vm = launch(&app, &alice, "/api/v1/vms", None).await;
    assert_eq!((&vm["lease"]["expires_at"], &vm["lease"]["action"]), (&json!(text(now + Duration::hours(8))), &json!("stop")), "{vm}");
    let vm = launch(&app, &alice, "/api/v1/vms", Some("1d")).await;
    assert_eq!(vm["lease"]["expires_at"], json!(text(now + Duration::days(1))), "{vm}");
    let m = "a lease of 1d 12h is not allowed on 'sb': at most 1d from now (lease.max: 1d)";
    let (s, b) = app.call(Method::POST, "/api/v1/vms", &alice, Some(launch_body(Some("1d12h")))).await;
    assert_eq!(error(s, &b), (409, "policy_violation".into(), "lease".into(), m.into()));
    let (s, b) = app.call(Method::POST, "/api/v1/vms", &alice, Some(launch_body(Some(&text(now + Duration::hours(36)))))).await;
    assert_eq!(error(s, &b), (409, "policy_violation".into(), "lease".into(), m.into()));
    // Nothing was launched by the refusals.
    let (_, list) = app.call(Method::GET, "/api/v1/vms", &alice, None).await;
    assert_eq!(list["vms"].as_array().unwrap().len(), 5, "{list}");
    // A max alone gives every launch a lease of that length.
    set(&app, &admin, json!({"sb.lease.default": null})).await;
    let vm = launch(&app, &alice, "/api/v1/vms", None).await;
    assert_eq!(vm["lease"]["expires_at"], json!(text(now + Duration::days(1))), "{vm}");
});

app_test!(a_lease_is_extended_capped_for_members_and_removed_by_admins, |app: TestApp| async move {
    let (admin, alice, now) = setup(&app).await;
    set(&app, &admin, json!({"sb.lease.default": "8h", "sb.lease.max": "1d"})).await;
    let bob = app.user(&admin, "bob").await;
    let vera = app.user(&admin, "vera").await;
    let carol = app.user(&admin, "carol").await;
    let (s, b) = app.call(Method::POST, "/api/v1/projects", &alice, Some(json!({"name": "team-a"}))).await;
    assert_eq!(s, 201, "{b}");
    for (who, role) in [("bob", "member"), ("vera", "viewer")] {
        let (s, b) = app.call(Method::PUT, &format!("/api/v1/projects/team-a/members/{who}"), &alice, Some(json!({"role": role}))).await;
        assert!(s == 200 || s == 201, "{b}");
    }
    let vm = launch(&app, &bob, "/api/v1/vms?project=team-a", None).await;
    let id = vm["id"].as_str().unwrap().to_string();
    assert_eq!(vm["lease"]["expires_at"], json!(text(now + Duration::hours(8))), "{vm}");
    let lease = format!("/api/v1/vms/{id}/lease?project=team-a");

    // One click (an empty body, or a null lease): the default from now.
    app.broker.clock.advance(Duration::hours(1));
    let now = now + Duration::hours(1);
    let (s, b) = app.call(Method::POST, &lease, &bob, Some(json!({}))).await;
    assert_eq!((s, &b["lease"]["expires_at"]), (200, &json!(text(now + Duration::hours(8)))), "{b}");
    app.broker.clock.advance(Duration::minutes(30));
    let now = now + Duration::minutes(30);
    let (s, b) = app.call(Method::POST, &lease, &alice, Some(json!({"lease": null}))).await;
    assert_eq!((s, &b["lease"]["expires_at"]), (200, &json!(text(now + Duration::hours(8)))), "{b}");
    // A member: up to lease.max from now, as a duration or a time.
    let (s, b) = app.call(Method::POST, &lease, &bob, Some(json!({"lease": "1d"}))).await;
    assert_eq!((s, &b["lease"]["expires_at"]), (200, &json!(text(now + Duration::days(1)))), "{b}");
    let (s, b) = app.call(Method::POST, &lease, &bob, Some(json!({"lease": text(now + Duration::hours(3))}))).await;
    assert_eq!((s, &b["lease"]["expires_at"]), (200, &json!(text(now + Duration::hours(3)))), "{b}");
    let (s, b) = app.call(Method::POST, &lease, &bob, Some(json!({"lease": "2d"}))).await;
    assert_eq!(
        error(s, &b),
        (
            409,
            "policy_violation".into(),
            "lease".into(),
            "a lease of 2d is not allowed on 'sb': at most 1d from now (lease.max: 1d)".into()
        )
    );
    let (s, b) = app.call(Method::POST, &lease, &alice, Some(json!({"lease": text(now + Duration::hours(30))}))).await;
    assert_eq!(
        error(s, &b),
        (
            409,
            "policy_violation".into(),
            "lease".into(),
            "a lease of 1d 6h is not allowed on 'sb': at most 1d from now (lease.max: 1d)".into()
        )
    );
    // Malformed: 400 naming `lease`; an unknown field: 400.
    let (s, b) = app.call(Method::POST, &lease, &bob, Some(json!({"lease": "soon"}))).await;
    assert_eq!((s, b["error"]["field"].as_str()), (400, Some("lease")), "{b}");
    let (s, b) = app.call(Method::POST, &lease, &bob, Some(json!({"until": "8h"}))).await;
    assert_eq!(s, 400, "{b}");
    // The refusals changed nothing.
    let (_, b) = app.call(Method::GET, &format!("/api/v1/vms/{id}?project=team-a"), &vera, None).await;
    assert_eq!(b["lease"]["expires_at"], json!(text(now + Duration::hours(3))), "{b}");
    // An admin: not capped.
    let (s, b) = app.call(Method::POST, &lease, &admin, Some(json!({"lease": "3d"}))).await;
    assert_eq!((s, &b["lease"]["expires_at"]), (200, &json!(text(now + Duration::days(3)))), "{b}");

    // A viewer is refused; an outsider and another project's caller find nothing.
    let (s, b) = app.call(Method::POST, &lease, &vera, Some(json!({}))).await;
    assert_eq!((s, b["error"]["code"].as_str()), (403, Some("forbidden")), "{b}");
    let (s, b) = app.call(Method::POST, &lease, &carol, Some(json!({}))).await;
    assert_eq!((s, b["error"]["code"].as_str()), (404, Some("not_found")), "{b}");
    let (s, b) = app.call(Method::POST, &format!("/api/v1/vms/{id}/lease"), &bob, Some(json!({}))).await;
    assert_eq!((s, b["error"]["code"].as_str()), (404, Some("not_found")), "outside team-a: {b}");
    let (s, b) = app.call(Method::POST, "/api/v1/vms/vm-nosuch/lease", &bob, Some(json!({}))).await;
    assert_eq!(s, 404, "{b}");

    // Removing a lease: admins only.
    let (s, b) = app.call(Method::DELETE, &lease, &alice, None).await;
    assert_eq!((s, b["error"]["code"].as_str()), (403, Some("forbidden")), "an owner: {b}");
    let (s, b) = app.call(Method::DELETE, &lease, &bob, None).await;
    assert_eq!((s, b["error"]["code"].as_str()), (403, Some("forbidden")), "{b}");
    let (s, b) = app.call(Method::DELETE, &lease, &admin, None).await;
    assert_eq!(s, 204, "{b}");
    let (_, b) = app.call(Method::GET, &format!("/api/v1/vms/{id}?project=team-a"), &bob, None).await;
    assert_eq!(b["lease"], Value::Null, "{b}");

    // Every change is audited, in the VM's project.
    let (s, b) = app.call(Method::GET, "/api/v1/audit?action=vm.lease.set&project=team-a", &admin, None).await;
    assert_eq!(s, 200, "{b}");
    let entries = b["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 6, "{b}");
    assert_eq!(entries[0]["detail"], "lease removed", "{b}");
    assert!(entries.iter().all(|e| e["target"].as_str().unwrap().contains(&id)), "{b}");

    // An ended VM takes no lease.
    let (s, b) = app.call(Method::POST, &format!("/api/v1/vms/{id}/terminate?project=team-a"), &bob, None).await;
    assert_eq!(s, 200, "{b}");
    for _ in 0..50 {
        let (s, b) = app.call(Method::POST, "/api/v1/reconcile", &admin, None).await;
        assert_eq!(s, 200, "{b}");
        let (_, b) = app.call(Method::GET, &format!("/api/v1/vms/{id}?project=team-a"), &bob, None).await;
        if b["state"] == "terminated" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let (s, b) = app.call(Method::POST, &lease, &admin, Some(json!({"lease": "1h"}))).await;
    assert_eq!((s, b["error"]["code"].as_str()), (409, Some("conflict")), "{b}");
});

app_test!(the_document_lists_the_lease_operations, |app: TestApp| async move {
    let doc: Value = app.http.get(app.url("/api/v1/openapi.json")).send().await.unwrap().json().await.unwrap();
    let item = &doc["paths"]["/api/v1/vms/{id}/lease"];
    assert!(item["post"]["responses"].get("409").is_some(), "{item}");
    assert!(item["delete"]["responses"].get("204").is_some(), "{item}");
    let schemas = &doc["components"]["schemas"];
    assert_eq!(schemas["LeaseBody"]["additionalProperties"], false);
    // One pattern for a lease in both bodies (its durations, each accepted).
    let pattern = &schemas["LaunchBody"]["properties"]["lease"]["pattern"];
    assert!(pattern.as_str().is_some_and(|p| p.starts_with('^')), "{pattern}");
    assert_eq!(&schemas["LeaseBody"]["properties"]["lease"]["pattern"], pattern);
    assert!(schemas["Vm"]["properties"].get("lease").is_some());
    for field in ["expires_at", "action", "warned_at", "ended_at", "note"] {
        assert!(schemas["Lease"]["properties"].get(field).is_some(), "{field}: {}", schemas["Lease"]);
    }
    // The lease parameters are listed with the instance's others, with their origins.
    let admin = app.token("super", SUPER_PW).await;
    set(&app, &admin, json!({"sb.lease.max": "2d"})).await;
    let (_, cfg) = app.call(Method::GET, "/api/v1/system/config", &admin, None).await;
    let params = cfg["params"].as_array().unwrap();
    for key in ["sb.lease.default", "sb.lease.max", "sb.lease.action", "sb.lease.warn", "sb.lease.max.actions"] {
        assert!(params.iter().any(|p| p["key"] == key), "{key}");
    }
    let max = params.iter().find(|p| p["key"] == "sb.lease.max").unwrap();
    assert_eq!((&max["value"], &max["origin"]["source"]), (&json!("2d"), &json!("ui")), "{max}");
});

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

app_test!(the_ec2_front_takes_and_shows_leases, |app: TestApp| async move {
    let (admin, alice, now) = setup(&app).await;
    let (s, k) = app.call(Method::POST, "/api/v1/users/alice/access-keys", &alice, None).await;
    assert_eq!(s, 201, "{k}");
    let key = (k["access_key_id"].as_str().unwrap().to_string(), k["secret_access_key"].as_str().unwrap().to_string());
    set(&app, &admin, json!({"sb.lease.max": "1d"})).await;
    let ami = cloudbroker_ec2_api::ids::image_id("linux");
    let run = |lease: &'static str, dry: bool| {
        let mut pairs = vec![
            ("Action", "RunInstances"),
            ("ImageId", ami.as_str()),
            ("MinCount", "1"),
            ("MaxCount", "1"),
            ("TagSpecification.1.ResourceType", "instance"),
            ("TagSpecification.1.Tag.1.Key", "cloudbroker:lease"),
            ("TagSpecification.1.Tag.1.Value", lease),
        ];
        if dry {
            pairs.push(("DryRun", "true"));
        }
        form(&pairs)
    };
    let (s, xml) = app.ec2_call(&key, "sb", &run("90m", false)).await;
    assert_eq!(s, 200, "{xml}");
    let id = between(&xml, "<instanceId>", "</instanceId>").to_string();
    let (s, xml) = app.ec2_call(&key, "sb", &form(&[("Action", "DescribeInstances"), ("InstanceId.1", &id)])).await;
    assert_eq!(s, 200, "{xml}");
    let expires = format!("<key>cloudbroker:lease-expires</key><value>{}</value>", text(now + Duration::minutes(90)));
    assert!(xml.contains(&expires), "{xml}");
    assert!(xml.contains("<key>cloudbroker:lease-action</key><value>terminate</value>"), "{xml}");
    assert!(!xml.contains("<key>cloudbroker:lease</key>"), "the asking tag is not kept: {xml}");
    // Over lease.max, and malformed: InvalidParameterValue, the dry run alike.
    for dry in [true, false] {
        let (s, xml) = app.ec2_call(&key, "sb", &run("2d", dry)).await;
        assert_eq!((s, between(&xml, "<Code>", "</Code>")), (400, "InvalidParameterValue"), "{xml}");
        assert_eq!(
            between(&xml, "<Message>", "</Message>").replace("&apos;", "'"),
            "a lease of 2d is not allowed on 'sb': at most 1d from now (lease.max: 1d)"
        );
        let (s, xml) = app.ec2_call(&key, "sb", &run("8 hours", dry)).await;
        assert_eq!((s, between(&xml, "<Code>", "</Code>")), (400, "InvalidParameterValue"), "{xml}");
        assert!(xml.contains("tag cloudbroker:lease: "), "{xml}");
    }
    // A VM without a lease shows no lease tags.
    set(&app, &admin, json!({"sb.lease.max": null})).await;
    let plain = form(&[("Action", "RunInstances"), ("ImageId", ami.as_str()), ("MinCount", "1"), ("MaxCount", "1")]);
    let (s, xml) = app.ec2_call(&key, "sb", &plain).await;
    assert_eq!(s, 200, "{xml}");
    assert!(!xml.contains("cloudbroker:lease"), "{xml}");
});

app_test!(the_ec2_front_takes_and_shows_leases_to_boto3, |app: TestApp| async move {
    let (admin, alice, now) = setup(&app).await;
    let (s, k) = app.call(Method::POST, "/api/v1/users/alice/access-keys", &alice, None).await;
    assert_eq!(s, 201, "{k}");
    set(&app, &admin, json!({"sb.lease.max": "1d", "sb.lease.action": "stop"})).await;
    let until = now + Duration::hours(5);
    let env = vec![
        ("EP".to_string(), app.url("/ec2")),
        ("ALICE_AK".into(), k["access_key_id"].as_str().unwrap().to_string()),
        ("ALICE_SK".into(), k["secret_access_key"].as_str().unwrap().to_string()),
        ("UNTIL".into(), text(until)),
        ("AWS_EC2_METADATA_DISABLED".into(), "true".into()),
        ("AWS_CONFIG_FILE".into(), "/dev/null".into()),
        ("AWS_SHARED_CREDENTIALS_FILE".into(), "/dev/null".into()),
    ];
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ec2/boto3_leases.py");
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(cloudbroker_testkit::venv_python()).arg(script).envs(env).output().unwrap()
    })
    .await
    .unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "boto3 script failed:\n{stderr}\n{stdout}");
    let out: Value = serde_json::from_str(stdout.lines().last().unwrap_or("")).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    let eight = text(now + Duration::hours(8));
    // The tag asks for the lease and is not kept; the expiry and the action show as tags.
    assert_eq!(out["run_tags"], json!({"cloudbroker:lease-action": "stop", "cloudbroker:lease-expires": eight, "owner": "alice"}), "{out}");
    assert_eq!(out["described_tags"], out["run_tags"], "{out}");
    assert_eq!(out["until_expires"], json!(text(until)), "{out}");
    assert_eq!(out["default_expires"], json!(text(now + Duration::days(1))), "a max alone is the default: {out}");
    assert_eq!(out["describe_tags"], json!([eight]), "{out}");
    assert_eq!(out["filtered"], json!(1), "{out}");
    assert_eq!(
        out["bad"],
        json!([
            "InvalidParameterValue",
            "tag cloudbroker:lease: 'soon' is not a duration: a number comes before each unit (e.g. 8h, 90m, 1d12h)"
        ])
    );
    assert_eq!(
        out["over_max"],
        json!(["InvalidParameterValue", "a lease of 2d is not allowed on 'sb': at most 1d from now (lease.max: 1d)"])
    );
    // The JSON API shows the same lease.
    let (_, list) = app.call(Method::GET, "/api/v1/vms", &alice, None).await;
    let vms = list["vms"].as_array().unwrap();
    assert_eq!(vms.len(), 3, "only the three admitted launches: {list}");
    assert!(
        vms.iter().any(|v| v["lease"]["expires_at"] == json!(eight)
            && v["lease"]["action"] == "stop"
            && v["tags"].get("cloudbroker:lease").is_none()),
        "{list}"
    );
});
