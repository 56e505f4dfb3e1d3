//! VMs and quotas of projects through the JSON API (the real server on port
//! 0), on SQLite and PostgreSQL: a launch goes to the query's `project` or
//! the body's (both given and different: 400 on `project`; a project the
//! caller is no member of: 404); lists show the project's VMs (admins':
//! everyone's, or the named project's); a viewer reads and is refused every
//! action (403); `GET /projects/{project}/quotas` for members,
//! `PUT /projects/{project}/quotas/{instance}` for admins, and the project
//! quota's refusal naming the project.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::zombie_processes)]

mod common;

use common::{TestApp, SUPER_PW};
use reqwest::Method;
use serde_json::{json, Value};

fn ids(list: &Value) -> Vec<String> {
    let mut out: Vec<String> =
        list["vms"].as_array().unwrap_or_else(|| panic!("{list}")).iter().map(|v| v["id"].as_str().unwrap().to_string()).collect();
    out.sort();
    out
}

app_test!(launches_lists_and_quotas_of_a_project, |app: TestApp| async move {
    let admin = app.token("super", SUPER_PW).await;
    let (s, b) = app
        .call(
            Method::POST,
            "/api/v1/images",
            &admin,
            Some(json!({"name": "linux", "os": "linux", "mappings": {"sb": {"image_id": "ami-sandbox-debian-12"}}})),
        )
        .await;
    assert_eq!(s, 201, "{b}");
    let alice = app.user(&admin, "alice").await;
    let bob = app.user(&admin, "bob").await;
    let vera = app.user(&admin, "vera").await;
    let carol = app.user(&admin, "carol").await;
    let (s, b) = app.call(Method::POST, "/api/v1/projects", &alice, Some(json!({"name": "team-a"}))).await;
    assert_eq!(s, 201, "{b}");
    for (who, role) in [("bob", "member"), ("vera", "viewer")] {
        let (s, b) = app.call(Method::PUT, &format!("/api/v1/projects/team-a/members/{who}"), &alice, Some(json!({"role": role}))).await;
        assert!(s == 200 || s == 201, "{b}");
    }
    let one = json!({"instance": "sb", "image": "linux"});
    let with_project = |p: &str| json!({"instance": "sb", "image": "linux", "project": p});

    // The body's project, the query's, or both agreeing.
    let (s, b) = app.call(Method::POST, "/api/v1/vms", &bob, Some(with_project("team-a"))).await;
    assert_eq!(s, 201, "{b}");
    assert_eq!((b["vms"][0]["project"].as_str(), b["vms"][0]["user"].as_str()), (Some("team-a"), Some("bob")), "{b}");
    let by_body = b["vms"][0]["id"].as_str().unwrap().to_string();
    let (s, b) = app.call(Method::POST, "/api/v1/vms?project=team-a", &alice, Some(one.clone())).await;
    assert_eq!((s, b["vms"][0]["project"].as_str()), (201, Some("team-a")), "{b}");
    let by_query = b["vms"][0]["id"].as_str().unwrap().to_string();
    let (s, b) = app.call(Method::POST, "/api/v1/vms?project=team-a", &alice, Some(with_project("team-a"))).await;
    assert_eq!(s, 201, "{b}");
    let both = b["vms"][0]["id"].as_str().unwrap().to_string();
    let (s, b) = app.call(Method::POST, "/api/v1/vms?project=team-a", &alice, Some(with_project("alice"))).await;
    assert_eq!((s, b["error"]["field"].as_str()), (400, Some("project")), "query and body disagree: {b}");
    let (s, b) = app.call(Method::POST, "/api/v1/vms", &alice, Some(with_project("Not A Name"))).await;
    assert_eq!((s, b["error"]["field"].as_str()), (400, Some("project")), "{b}");
    let (s, b) = app.call(Method::POST, "/api/v1/vms", &carol, Some(with_project("team-a"))).await;
    assert_eq!((s, b["error"]["code"].as_str()), (404, Some("not_found")), "a non-member: {b}");
    let (s, b) = app.call(Method::POST, "/api/v1/vms", &vera, Some(with_project("team-a"))).await;
    assert_eq!((s, b["error"]["code"].as_str()), (403, Some("forbidden")), "a viewer launches nothing: {b}");
    // Without a project: the personal one, as before projects.
    let (s, b) = app.call(Method::POST, "/api/v1/vms", &alice, Some(one.clone())).await;
    assert_eq!((s, b["vms"][0]["project"].as_str()), (201, Some("alice")), "{b}");
    let personal = b["vms"][0]["id"].as_str().unwrap().to_string();

    // Lists: the project's for its members and viewers; the personal project's without `project`.
    let mut team: Vec<String> = vec![by_body.clone(), by_query.clone(), both.clone()];
    team.sort();
    for who in [&alice, &bob, &vera] {
        let (s, b) = app.call(Method::GET, "/api/v1/vms?project=team-a", who, None).await;
        assert_eq!((s, ids(&b)), (200, team.clone()), "{b}");
    }
    let (_, b) = app.call(Method::GET, "/api/v1/vms", &alice, None).await;
    assert_eq!(ids(&b), vec![personal.clone()]);
    let (_, b) = app.call(Method::GET, "/api/v1/vms", &bob, None).await;
    assert!(ids(&b).is_empty(), "{b}");
    let (s, _) = app.call(Method::GET, "/api/v1/vms?project=team-a", &carol, None).await;
    assert_eq!(s, 404);
    // Admins: everyone's, or the named project's.
    let (_, b) = app.call(Method::GET, "/api/v1/vms", &admin, None).await;
    assert_eq!(ids(&b).len(), 4, "{b}");
    let (_, b) = app.call(Method::GET, "/api/v1/vms?project=team-a", &admin, None).await;
    assert_eq!(ids(&b), team);

    // A viewer reads, acts on nothing; a member acts on another member's VM.
    let (s, _) = app.call(Method::GET, &format!("/api/v1/vms/{by_body}?project=team-a"), &vera, None).await;
    assert_eq!(s, 200);
    let (s, b) = app.call(Method::POST, &format!("/api/v1/vms/{by_body}/terminate?project=team-a"), &vera, None).await;
    assert_eq!((s, b["error"]["code"].as_str()), (403, Some("forbidden")), "{b}");
    let (s, b) = app.call(Method::POST, &format!("/api/v1/vms/{by_body}/terminate?project=team-a"), &alice, None).await;
    assert_eq!(s, 200, "{b}");
    let (s, _) = app.call(Method::GET, &format!("/api/v1/vms/{by_query}"), &bob, None).await;
    assert_eq!(s, 404, "outside the project it was entered in, a team VM is not found");

    // Project quotas: members read, admins set; the refusal names the project.
    let (s, b) = app.call(Method::GET, "/api/v1/projects/team-a/quotas", &vera, None).await;
    assert_eq!(s, 200, "{b}");
    let sb = b.as_array().unwrap().iter().find(|q| q["instance"] == "sb").unwrap().clone();
    assert_eq!((sb["limit"].clone(), sb["source"].clone(), sb["usage"].clone()), (Value::Null, json!("none"), json!(2)), "{b}");
    let (s, _) = app.call(Method::GET, "/api/v1/projects/team-a/quotas", &carol, None).await;
    assert_eq!(s, 404);
    let (s, b) = app.call(Method::PUT, "/api/v1/projects/team-a/quotas/sb", &alice, Some(json!({"limit": 5}))).await;
    assert_eq!((s, b["error"]["code"].as_str()), (403, Some("forbidden")), "owners do not set quotas: {b}");
    let (s, b) = app.call(Method::PUT, "/api/v1/projects/team-a/quotas/sb", &admin, Some(json!({"limit": 2}))).await;
    assert_eq!((s, b["limit"].clone(), b["source"].clone()), (200, json!(2), json!("override")), "{b}");
    let (s, b) = app.call(Method::PUT, "/api/v1/projects/team-a/quotas/sb", &admin, Some(json!({}))).await;
    assert_eq!((s, b["error"]["code"].as_str()), (400, Some("invalid_request")), "the limit must be given (null removes it): {b}");
    let (s, b) = app.call(Method::PUT, "/api/v1/projects/team-a/quotas/sb", &admin, Some(json!({"limit": -1}))).await;
    assert_eq!(s, 400, "{b}");
    let (s, b) = app.call(Method::PUT, "/api/v1/projects/no-such/quotas/sb", &admin, Some(json!({"limit": 1}))).await;
    assert_eq!(s, 404, "{b}");
    let (s, b) = app.call(Method::PUT, "/api/v1/system/config", &admin, Some(json!({"quota.enable": "true"}))).await;
    assert_eq!(s, 200, "{b}");
    let (s, b) = app.call(Method::POST, "/api/v1/vms?project=team-a", &bob, Some(one.clone())).await;
    assert_eq!((s, b["error"]["code"].as_str()), (409, Some("quota_exceeded")), "{b}");
    assert!(b["error"]["message"].as_str().unwrap().contains("project 'team-a'"), "{b}");
    let (s, b) = app.call(Method::PUT, "/api/v1/projects/team-a/quotas/sb", &admin, Some(json!({"limit": null}))).await;
    assert_eq!((s, b["limit"].clone(), b["source"].clone()), (200, Value::Null, json!("none")), "{b}");
    let (s, b) = app.call(Method::POST, "/api/v1/vms?project=team-a", &bob, Some(one)).await;
    assert_eq!(s, 201, "{b}");
});

// An access key's VMs on the EC2 front: its project's (a team key sees and
// acts on another member's; a personal key does not see them), and a
// ClientToken first used in another project is `IdempotentParameterMismatch`.
app_test!(the_ec2_front_acts_in_the_access_keys_project, |app: TestApp| async move {
    let admin = app.token("super", SUPER_PW).await;
    let (s, b) = app
        .call(
            Method::POST,
            "/api/v1/images",
            &admin,
            Some(json!({"name": "linux", "os": "linux", "mappings": {"sb": {"image_id": "ami-sandbox-debian-12"}}})),
        )
        .await;
    assert_eq!(s, 201, "{b}");
    let alice = app.user(&admin, "alice").await;
    let bob = app.user(&admin, "bob").await;
    let (s, b) = app.call(Method::POST, "/api/v1/projects", &alice, Some(json!({"name": "team-a"}))).await;
    assert_eq!(s, 201, "{b}");
    let (s, b) = app.call(Method::PUT, "/api/v1/projects/team-a/members/bob", &alice, Some(json!({"role": "member"}))).await;
    assert!(s == 200 || s == 201, "{b}");
    let key = |who: &'static str, token: String, project: Option<&'static str>| {
        let app = &app;
        async move {
            let body = project.map(|p| json!({ "project": p }));
            let (s, k) = app.call(Method::POST, &format!("/api/v1/users/{who}/access-keys"), &token, body).await;
            assert_eq!(s, 201, "{k}");
            (k["access_key_id"].as_str().unwrap().to_string(), k["secret_access_key"].as_str().unwrap().to_string())
        }
    };
    let alice_personal = key("alice", alice.clone(), None).await;
    let alice_team = key("alice", alice.clone(), Some("team-a")).await;
    let bob_team = key("bob", bob.clone(), Some("team-a")).await;
    let (_, images) = app.ec2_call(&alice_team, "sb", "Action=DescribeImages&Version=2016-11-15").await;
    let ami = images.split("<imageId>").nth(1).and_then(|r| r.split('<').next()).unwrap().to_string();
    let run = |token: &str| format!("Action=RunInstances&Version=2016-11-15&ImageId={ami}&MinCount=1&MaxCount=1&ClientToken={token}");
    let instance_id = |body: &str| body.split("<instanceId>").nth(1).and_then(|r| r.split('<').next()).unwrap().to_string();
    let (s, body) = app.ec2_call(&bob_team, "sb", &run("bob-1")).await;
    assert_eq!(s, 200, "{body}");
    let bobs = instance_id(&body);
    // Alice's team key sees and stops Bob's VM; her personal key sees nothing of the team.
    let (_, body) = app.ec2_call(&alice_team, "sb", "Action=DescribeInstances&Version=2016-11-15").await;
    assert!(body.contains(&bobs), "{body}");
    let (_, body) = app.ec2_call(&alice_personal, "sb", "Action=DescribeInstances&Version=2016-11-15").await;
    assert!(!body.contains(&bobs), "{body}");
    let (s, body) = app.ec2_call(&alice_personal, "sb", &format!("Action=StopInstances&Version=2016-11-15&InstanceId.1={bobs}")).await;
    assert!(s == 400 && body.contains("InvalidInstanceID.NotFound"), "{s} {body}");
    let (s, body) = app.ec2_call(&alice_team, "sb", &format!("Action=StopInstances&Version=2016-11-15&InstanceId.1={bobs}")).await;
    assert_eq!(s, 200, "{body}");
    // A client token is the user's: replayed in its project, refused in another.
    let (s, body) = app.ec2_call(&alice_personal, "sb", &run("alice-1")).await;
    assert_eq!(s, 200, "{body}");
    let first = instance_id(&body);
    let (s, body) = app.ec2_call(&alice_personal, "sb", &run("alice-1")).await;
    assert_eq!((s, instance_id(&body)), (200, first), "{body}");
    let (s, body) = app.ec2_call(&alice_team, "sb", &run("alice-1")).await;
    assert!(s == 400 && body.contains("<Code>IdempotentParameterMismatch</Code>"), "{s} {body}");
    // `max-instances`: the project's quota where it is lower than the user's.
    let (s, b) = app.call(Method::PUT, "/api/v1/projects/team-a/quotas/sb", &admin, Some(json!({"limit": 7}))).await;
    assert_eq!(s, 200, "{b}");
    let max = |body: String| body.split("<attributeValue>").nth(1).and_then(|r| r.split('<').next()).unwrap().to_string();
    let (_, body) = app.ec2_call(&alice_team, "sb", "Action=DescribeAccountAttributes&Version=2016-11-15").await;
    assert_eq!(max(body), "7");
    let (_, body) = app.ec2_call(&alice_personal, "sb", "Action=DescribeAccountAttributes&Version=2016-11-15").await;
    assert_eq!(max(body), "20", "the personal project has no project quota: the user's default");
});
