//! A project's own launch policies through the JSON API and the EC2 front
//! (issue 26), on SQLite and on PostgreSQL: `GET
//! /api/v1/projects/{p}/policies` for its members, `PUT` and `DELETE
//! /api/v1/projects/{p}/policies/{instance}` for its owners and admins (a
//! member 403, a non-member 404, an unknown instance 404, a bad value 400
//! naming the parameter as `field`). A launch in the project that the
//! instance allows but the project does not is refused with 409
//! `policy_violation` and a message naming the project, on the EC2 front
//! with `InvalidParameterValue` and the same message (signed requests and
//! boto3, tests/ec2/boto3_project_policies.py); the same launch in another
//! project, or once the policy is removed, goes through.

// Test code: panicking on an unexpected result is the point.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{TestApp, SUPER_PW};
use reqwest::Method;
use serde_json::{json, Value};

/// Tokens of (admin, alice: owner of team-a, bob: member, vic: viewer, carol: no member),
/// with the public image `linux` on `sb`.
async fn setup(app: &TestApp) -> (String, String, String, String, String) {
    let admin = app.token("super", SUPER_PW).await;
    let image = json!({"name": "linux", "mappings": {"sb": {"image_id": "ami-sandbox-debian-12"}}});
    let (s, b) = app.call(Method::POST, "/api/v1/images", &admin, Some(image)).await;
    assert_eq!(s, 201, "{b}");
    let alice = app.user(&admin, "alice").await;
    let bob = app.user(&admin, "bob").await;
    let vic = app.user(&admin, "vic").await;
    let carol = app.user(&admin, "carol").await;
    let (s, b) = app.call(Method::POST, "/api/v1/projects", &alice, Some(json!({"name": "team-a"}))).await;
    assert_eq!(s, 201, "{b}");
    for (who, role) in [("bob", "member"), ("vic", "viewer")] {
        let (s, b) = app.call(Method::PUT, &format!("/api/v1/projects/team-a/members/{who}"), &alice, Some(json!({"role": role}))).await;
        assert_eq!(s, 200, "{b}");
    }
    (admin, alice, bob, vic, carol)
}

const SB: &str = "/api/v1/projects/team-a/policies/sb";

fn launch(instance_type: &str) -> Value {
    json!({"instance": "sb", "image": "linux", "instance_type": instance_type})
}

/// The project's own values on `sb`, as `GET .../policies` shows them to `token`.
async fn sb_values(app: &TestApp, token: &str) -> Value {
    let (s, b) = app.call(Method::GET, "/api/v1/projects/team-a/policies", token, None).await;
    assert_eq!(s, 200, "{b}");
    b["policies"].as_array().unwrap().iter().find(|p| p["instance"] == "sb").unwrap()["values"].clone()
}

app_test!(project_policies_round_trip_and_refuse_launches, |app: TestApp| async move {
    let (admin, alice, bob, vic, carol) = setup(&app).await;
    // Nothing of its own at first; members and viewers read, others are told nothing.
    assert_eq!(sb_values(&app, &bob).await, json!({}));
    assert_eq!(sb_values(&app, &vic).await, json!({}));
    let (s, b) = app.call(Method::GET, "/api/v1/projects/team-a/policies", &carol, None).await;
    assert_eq!((s, b["error"]["code"].as_str()), (404, Some("not_found")), "{b}");

    // Who may set them.
    let body = json!({"policy.instance.types": "t2.*", "policy.count.max": 2});
    for (token, status) in [(&bob, 403), (&vic, 403), (&carol, 404)] {
        let (s, b) = app.call(Method::PUT, SB, token, Some(body.clone())).await;
        assert_eq!(s, status, "{b}");
        let (s, b) = app.call(Method::DELETE, SB, token, None).await;
        assert_eq!(s, status, "{b}");
    }
    let (s, b) = app.call(Method::PUT, "/api/v1/projects/team-a/policies/nope", &alice, Some(body.clone())).await;
    assert_eq!(s, 404, "{b}");
    // Bad values: 400 naming the parameter.
    let (s, b) = app.call(Method::PUT, SB, &alice, Some(json!({"policy.count.max": 0}))).await;
    assert_eq!((s, b["error"]["field"].as_str()), (400, Some("policy.count.max")), "{b}");
    assert!(b["error"]["message"].as_str().unwrap().starts_with("policy.count.max: "), "{b}");
    let (s, b) = app.call(Method::PUT, SB, &alice, Some(json!({"policy.count.max": 10178.0}))).await;
    assert_eq!((s, b["error"]["field"].as_str()), (400, Some("policy.count.max")), "{b}");
    assert!(b["error"]["message"].as_str().unwrap().contains("10178 is out of range"), "{b}");
    let (s, b) = app.call(Method::PUT, SB, &alice, Some(json!({"policy.count.max": 2.5}))).await;
    assert_eq!(s, 400, "{b}");
    let (s, b) = app.call(Method::PUT, SB, &alice, Some(json!({"policy.images": 7}))).await;
    assert_eq!(s, 400, "{b}");
    let (s, b) = app.call(Method::PUT, SB, &alice, Some(json!({"lease.max": "forever"}))).await;
    assert_eq!((s, b["error"]["field"].as_str()), (400, Some("lease.max")), "{b}");
    let (s, b) = app.call(Method::PUT, SB, &alice, Some(json!({"policy.exempt.admins": "true"}))).await;
    assert_eq!(s, 400, "{b}");
    assert!(b["error"]["message"].as_str().unwrap().contains("policy.exempt.admins"), "{b}");
    assert_eq!(sb_values(&app, &bob).await, json!({}), "nothing stored by a refused PUT");

    // The owner sets them; members read them.
    let (s, b) = app.call(Method::PUT, SB, &alice, Some(body)).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["values"], json!({"policy.instance.types": "t2.*", "policy.count.max": "2"}), "{b}");
    assert_eq!(b["updated_by"], "alice", "{b}");
    assert_eq!(sb_values(&app, &vic).await, json!({"policy.instance.types": "t2.*", "policy.count.max": "2"}));

    // A launch in the project the instance allows is refused, naming the project.
    let (s, b) = app.call(Method::POST, "/api/v1/vms?project=team-a", &bob, Some(launch("m5.large"))).await;
    assert_eq!(
        (s, b["error"]["code"].as_str(), b["error"]["field"].as_str()),
        (409, Some("policy_violation"), Some("instance_type")),
        "{b}"
    );
    let m = "instance type 'm5.large' is not allowed on 'sb' for project 'team-a' (policy.instance.types: t2.*)";
    assert_eq!(b["error"]["message"], m, "{b}");
    let (s, b) = app
        .call(
            Method::POST,
            "/api/v1/vms?project=team-a",
            &bob,
            Some(json!({"instance": "sb", "image": "linux", "instance_type": "t2.micro", "count": 3})),
        )
        .await;
    assert_eq!((s, b["error"]["field"].as_str()), (409, Some("count")), "{b}");
    assert_eq!(
        b["error"]["message"],
        "a launch of up to 3 VMs is not allowed on 'sb' for project 'team-a': at most 2 per launch (policy.count.max: 2)"
    );
    let (s, b) = app.call(Method::POST, "/api/v1/vms?project=team-a", &bob, Some(launch("t2.micro"))).await;
    assert_eq!(s, 201, "{b}");
    // Bob's own project is not team-a's: the same launch goes through there.
    let (s, b) = app.call(Method::POST, "/api/v1/vms", &bob, Some(launch("m5.large"))).await;
    assert_eq!((s, b["vms"][0]["project"].as_str()), (201, Some("bob")), "{b}");

    // The EC2 front with bob's team-a key refuses alike (a signed request, then boto3).
    let (s, k) = app.call(Method::POST, "/api/v1/users/bob/access-keys", &bob, Some(json!({"project": "team-a"}))).await;
    assert_eq!(s, 201, "{k}");
    let key = (k["access_key_id"].as_str().unwrap().to_string(), k["secret_access_key"].as_str().unwrap().to_string());
    let ami = cloudbroker_ec2_api::ids::image_id("linux");
    let mut f = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in [
        ("Version", "2016-11-15"),
        ("Action", "RunInstances"),
        ("ImageId", ami.as_str()),
        ("MinCount", "1"),
        ("MaxCount", "1"),
        ("InstanceType", "m5.large"),
    ] {
        f.append_pair(k, v);
    }
    let (s, xml) = app.ec2_call(&key, "sb", &f.finish()).await;
    let between = |open: &str, close: &str| xml.split(open).nth(1).and_then(|r| r.split(close).next()).unwrap_or("").to_string();
    assert_eq!((s, between("<Code>", "</Code>").as_str()), (400, "InvalidParameterValue"), "{xml}");
    assert_eq!(between("<Message>", "</Message>").replace("&apos;", "'"), m);
    let env = vec![
        ("EP".to_string(), app.url("/ec2")),
        ("AK".into(), key.0.clone()),
        ("SK".into(), key.1.clone()),
        ("AMI".into(), ami.clone()),
        ("AWS_EC2_METADATA_DISABLED".into(), "true".into()),
        ("AWS_CONFIG_FILE".into(), "/dev/null".into()),
        ("AWS_SHARED_CREDENTIALS_FILE".into(), "/dev/null".into()),
    ];
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ec2/boto3_project_policies.py");
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(cloudbroker_testkit::venv_python()).arg(script).envs(env).output().unwrap()
    })
    .await
    .unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "boto3 script failed:\n{stdout}\n{stderr}");
    let got: Value = serde_json::from_str(stdout.trim().lines().last().unwrap_or("")).unwrap_or_else(|e| panic!("{e}: {stdout}\n{stderr}"));
    assert_eq!(got, json!({"refused": ["InvalidParameterValue", m], "allowed": 1}));

    // An admin replaces them; the owner removes them and the launch goes through.
    let (s, b) = app.call(Method::PUT, SB, &admin, Some(json!({"policy.instance.types": "t2.*, m5.*", "policy.images": null}))).await;
    assert_eq!((s, &b["values"]), (200, &json!({"policy.instance.types": "t2.*, m5.*"})), "{b}");
    let (s, b) = app.call(Method::DELETE, SB, &alice, None).await;
    assert_eq!(s, 204, "{b}");
    assert_eq!(sb_values(&app, &bob).await, json!({}));
    let (s, b) = app
        .call(
            Method::POST,
            "/api/v1/vms?project=team-a",
            &bob,
            Some(json!({"instance": "sb", "image": "linux", "instance_type": "c5.2xlarge", "count": 3})),
        )
        .await;
    assert_eq!(s, 201, "{b}");
    // The changes are in the project's audit log.
    let (s, b) = app.call(Method::GET, "/api/v1/audit?action=project.update&project=team-a", &admin, None).await;
    assert_eq!(s, 200, "{b}");
    let details: Vec<&str> = b["entries"].as_array().map(|a| a.iter().filter_map(|e| e["detail"].as_str()).collect()).unwrap_or_default();
    assert!(details.contains(&"launch policies on sb: policy.instance.types=t2.*; policy.count.max=2"), "{b}");
    assert!(details.contains(&"launch policies on sb: removed"), "{b}");
});

/// A signed-in browser without a browser: a cookie jar and the session's CSRF token.
struct Ui {
    http: reqwest::Client,
    base: String,
    csrf: String,
}

fn csrf_of(body: &str) -> String {
    let at = body.find("name=\"csrf\" value=\"").expect("a form with a CSRF token") + "name=\"csrf\" value=\"".len();
    body[at..].split('"').next().unwrap().to_string()
}

impl Ui {
    async fn sign_in(app: &TestApp, user: &str, pw: &str) -> Self {
        let jar = std::sync::Arc::new(reqwest::cookie::Jar::default());
        let http = reqwest::Client::builder().cookie_provider(jar).redirect(reqwest::redirect::Policy::limited(5)).build().unwrap();
        let page = http.get(app.url("/login")).send().await.unwrap().text().await.unwrap();
        let csrf = csrf_of(&page);
        let r = http.post(app.url("/login")).form(&[("username", user), ("password", pw), ("csrf", &csrf)]).send().await.unwrap();
        assert_eq!(r.status(), 200, "sign-in of {user}");
        let home = r.text().await.unwrap();
        Self { http, base: app.base.clone(), csrf: csrf_of(&home) }
    }

    async fn get(&self, path: &str) -> (u16, String) {
        let r = self.http.get(format!("{}{path}", self.base)).send().await.unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    async fn post(&self, path: &str, fields: &[(&str, &str)]) -> (u16, String) {
        let mut f: Vec<(&str, &str)> = fields.to_vec();
        f.push(("csrf", &self.csrf));
        let r = self.http.post(format!("{}{path}", self.base)).form(&f).send().await.unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }
}

/// The text of the field error with id `id`.
fn field_error<'a>(body: &'a str, id: &str) -> Option<&'a str> {
    let at = body.find(&format!("class=\"field-error\" id=\"{id}\">"))?;
    let rest = &body[at..];
    let start = rest.find('>')? + 1;
    Some(rest[start..].split("</span>").next().unwrap())
}

/// The `<div id="ppolicy-sb">` of the project page.
fn sb_section(body: &str) -> &str {
    let at = body.find("<div class=\"ppolicy\" id=\"ppolicy-sb\">").unwrap_or_else(|| panic!("no policies of sb in {body}"));
    let end = body[at..].find("</table>").map_or(body.len(), |e| at + e);
    &body[at..end]
}

app_test!(the_project_page_sets_and_shows_its_policies, |app: TestApp| async move {
    let (admin, _, _, _, _) = setup(&app).await;
    let (s, b) = app.call(Method::PUT, "/api/v1/system/config", &admin, Some(json!({"sb.policy.instance.types": "t2.*, m5.*"}))).await;
    assert_eq!(s, 200, "{b}");
    let alice = Ui::sign_in(&app, "alice", "alice-password").await;
    let (s, page) = alice.get("/projects/team-a").await;
    assert_eq!(s, 200);
    let sb = sb_section(&page);
    assert!(sb.contains("t2.*, m5.*"), "the instance's value is shown: {sb}");
    assert!(sb.contains("id=\"pp-sb-0\" name=\"policy.instance.types\" value=\"\""), "{sb}");
    // Bad values: each at its field, everything typed kept, nothing stored.
    let (s, page) = alice
        .post("/projects/team-a/policies/sb", &[("policy.instance.types", "t2.micro"), ("policy.count.max", "0"), ("lease.max", "forever")])
        .await;
    assert_eq!(s, 400, "{page}");
    assert!(field_error(&page, "pp-sb-3-error").unwrap().starts_with("policy.count.max: "), "{page}");
    assert!(field_error(&page, "pp-sb-4-error").unwrap().starts_with("lease.max: "), "{page}");
    assert_eq!(field_error(&page, "pp-sb-0-error"), None);
    let sb = sb_section(&page);
    for kept in [
        "name=\"policy.instance.types\" value=\"t2.micro\"",
        "name=\"policy.count.max\" value=\"0\"",
        "name=\"lease.max\" value=\"forever\"",
    ] {
        assert!(sb.contains(kept), "{kept} in {sb}");
    }
    let (_, b) = app.call(Method::GET, "/api/v1/projects/team-a/policies", &admin, None).await;
    assert_eq!(b["policies"][0]["values"], json!({}), "{b}");
    // Saved, then shown.
    let (s, page) = alice
        .post("/projects/team-a/policies/sb", &[("policy.instance.types", "t2.micro"), ("policy.count.max", "2"), ("lease.max", "")])
        .await;
    assert_eq!(s, 200, "{page}");
    assert!(page.contains("Launch policies of team-a on sb: policy.count.max = 2; policy.instance.types = t2.micro"), "{page}");
    let sb = sb_section(&page);
    assert!(sb.contains("name=\"policy.count.max\" value=\"2\"") && sb.contains("set by alice"), "{sb}");
    // A member reads them and has no form; posting anyway is refused.
    let bob = Ui::sign_in(&app, "bob", "bob-password").await;
    let (s, page) = bob.get("/projects/team-a").await;
    assert_eq!(s, 200);
    let sb = sb_section(&page);
    assert!(sb.contains("t2.micro") && !sb.contains("<input"), "{sb}");
    let (s, _) = bob.post("/projects/team-a/policies/sb", &[("policy.count.max", "5")]).await;
    assert_eq!(s, 403);
    // Working in team-a, Bob's launch form shows what both allow; in his own project, the instance's alone.
    let (_, form) = bob.get("/vms?launch=sb").await;
    assert!(form.contains("Allowed on sb: t2.*, m5.*") && !form.contains("launch-count-policy"), "{form}");
    let (s, _) = bob.post("/project", &[("project", "team-a"), ("back", "/vms")]).await;
    assert_eq!(s, 200);
    let (_, form) = bob.get("/vms?launch=sb").await;
    assert!(form.contains("At most 2 per launch on sb"), "{form}");
    assert!(!form.contains("Allowed on sb: t2.*, m5.*"), "{form}");
    let (_, b) = app.call(Method::GET, "/api/v1/projects/team-a/policies", &admin, None).await;
    assert_eq!(b["policies"][0]["values"]["policy.count.max"], "2", "{b}");
});
