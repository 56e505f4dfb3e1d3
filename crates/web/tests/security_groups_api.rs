//! `/api/v1/security-groups`: a member makes a group in her project, lists
//! and reads it, adds and removes a rule (a duplicate is 409 with the
//! cloud's code, a malformed CIDR 400), and deletes it (204); another
//! user's group is 404 to bob, a viewer of the project reads but changes
//! nothing (403). Both backends.

// Test code: panicking on an unexpected result is the point.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[macro_use]
mod common;

use common::{TestApp, SUPER_PW};
use reqwest::Method;
use serde_json::{json, Value};

fn ids(b: &Value) -> Vec<String> {
    b["groups"].as_array().unwrap().iter().map(|g| g["group_id"].as_str().unwrap().to_string()).collect()
}

app_test!(security_groups_through_the_json_api, |app: TestApp| async move {
    let admin = app.token("super", SUPER_PW).await;
    let alice = app.user(&admin, "alice").await;
    let bob = app.user(&admin, "bob").await;

    // Alice makes a group in her personal project.
    let body = json!({"instance": "sb", "name": "web", "description": "web servers", "tags": {"team": "a"}});
    let (s, g) = app.call(Method::POST, "/api/v1/security-groups", &alice, Some(body)).await;
    assert_eq!(s, 201, "{g}");
    let id = g["group_id"].as_str().unwrap().to_string();
    assert!(id.starts_with("sg-"), "{g}");
    assert_eq!((g["name"].as_str(), g["description"].as_str(), g["tags"]["team"].as_str()), (Some("web"), Some("web servers"), Some("a")));
    let path = format!("/api/v1/security-groups/sb/{id}");

    let (s, b) = app.call(Method::GET, "/api/v1/security-groups?instance=sb", &alice, None).await;
    assert_eq!((s, ids(&b)), (200, vec![id.clone()]), "{b}");
    let (s, b) = app.call(Method::GET, &path, &alice, None).await;
    assert_eq!((s, b["group_id"].as_str()), (200, Some(id.as_str())), "{b}");
    // A taken name is a conflict with the cloud's code.
    let body = json!({"instance": "sb", "name": "web", "description": "again"});
    let (s, b) = app.call(Method::POST, "/api/v1/security-groups", &alice, Some(body)).await;
    assert_eq!((s, b["error"]["code"].as_str()), (409, Some("cloud.InvalidGroup.Duplicate")), "{b}");

    // A rule: added once, a second time is 409, a bad CIDR 400.
    let rule = json!({"direction": "ingress", "protocol": "tcp", "from_port": 22, "to_port": 22, "cidr": "10.0.0.0/8"});
    let (s, b) = app.call(Method::POST, &format!("{path}/rules"), &alice, Some(rule.clone())).await;
    assert_eq!(s, 200, "{b}");
    let ingress: Vec<&Value> = b["rules"].as_array().unwrap().iter().filter(|r| r["direction"] == "ingress").collect();
    assert_eq!(ingress.len(), 1, "{b}");
    assert_eq!(
        (ingress[0]["protocol"].as_str(), ingress[0]["from_port"].as_i64(), ingress[0]["cidr"].as_str()),
        (Some("tcp"), Some(22), Some("10.0.0.0/8"))
    );
    assert!(ingress[0]["rule_id"].as_str().unwrap().starts_with("sgr-"), "{b}");
    let (s, b) = app.call(Method::POST, &format!("{path}/rules"), &alice, Some(rule.clone())).await;
    assert_eq!((s, b["error"]["code"].as_str()), (409, Some("cloud.InvalidPermission.Duplicate")), "{b}");
    let bad = json!({"direction": "ingress", "protocol": "tcp", "from_port": 80, "to_port": 80, "cidr": "10.0.0.300/8"});
    let (s, b) = app.call(Method::POST, &format!("{path}/rules"), &alice, Some(bad)).await;
    assert_eq!((s, b["error"]["code"].as_str()), (400, Some("cloud.InvalidParameterValue")), "{b}");

    // Bob finds nothing of alice's.
    let (s, b) = app.call(Method::GET, "/api/v1/security-groups?instance=sb", &bob, None).await;
    assert_eq!((s, ids(&b)), (200, Vec::<String>::new()), "{b}");
    for (m, p, body) in [
        (Method::GET, path.clone(), None),
        (Method::DELETE, path.clone(), None),
        (Method::POST, format!("{path}/rules"), Some(rule.clone())),
        (Method::POST, format!("{path}/rules/remove"), Some(rule.clone())),
    ] {
        let (s, b) = app.call(m.clone(), &p, &bob, body).await;
        assert_eq!(s, 404, "{m} {p}: {b}");
    }

    // Removed once; a second time the rule is not there (404).
    let (s, b) = app.call(Method::POST, &format!("{path}/rules/remove"), &alice, Some(rule.clone())).await;
    assert_eq!(s, 200, "{b}");
    assert!(b["rules"].as_array().unwrap().iter().all(|r| r["direction"] != "ingress"), "{b}");
    let (s, b) = app.call(Method::POST, &format!("{path}/rules/remove"), &alice, Some(rule.clone())).await;
    assert_eq!((s, b["error"]["code"].as_str()), (404, Some("cloud.InvalidPermission.NotFound")), "{b}");

    // Deleted: 204, then gone.
    let (s, b) = app.call(Method::DELETE, &path, &alice, None).await;
    assert_eq!(s, 204, "{b}");
    let (s, _) = app.call(Method::GET, &path, &alice, None).await;
    assert_eq!(s, 404);
    let (s, b) = app.call(Method::GET, "/api/v1/security-groups?instance=sb", &alice, None).await;
    assert_eq!((s, ids(&b)), (200, Vec::<String>::new()), "{b}");
});

app_test!(a_viewer_reads_a_projects_groups_and_changes_nothing, |app: TestApp| async move {
    let admin = app.token("super", SUPER_PW).await;
    let alice = app.user(&admin, "alice").await;
    let bob = app.user(&admin, "bob").await;
    let (s, b) = app.call(Method::POST, "/api/v1/projects", &alice, Some(json!({"name": "team-a"}))).await;
    assert_eq!(s, 201, "{b}");
    let (s, b) = app.call(Method::PUT, "/api/v1/projects/team-a/members/bob", &alice, Some(json!({"role": "viewer"}))).await;
    assert_eq!(s, 200, "{b}");
    let body = json!({"instance": "sb", "name": "team", "description": "team-a's"});
    let (s, g) = app.call(Method::POST, "/api/v1/security-groups?project=team-a", &alice, Some(body)).await;
    assert_eq!(s, 201, "{g}");
    let id = g["group_id"].as_str().unwrap().to_string();
    let path = format!("/api/v1/security-groups/sb/{id}");

    let (s, b) = app.call(Method::GET, "/api/v1/security-groups?instance=sb&project=team-a", &bob, None).await;
    assert_eq!((s, ids(&b)), (200, vec![id.clone()]), "{b}");
    let (s, b) = app.call(Method::GET, &format!("{path}?project=team-a"), &bob, None).await;
    assert_eq!(s, 200, "{b}");
    // Not in his personal project.
    let (s, _) = app.call(Method::GET, &path, &bob, None).await;
    assert_eq!(s, 404);
    let rule = json!({"direction": "ingress", "protocol": "tcp", "from_port": 443, "to_port": 443, "cidr": "0.0.0.0/0"});
    let body = json!({"instance": "sb", "name": "bobs", "description": "bob's"});
    for (m, p, body) in [
        (Method::POST, "/api/v1/security-groups?project=team-a".to_string(), Some(body)),
        (Method::POST, format!("{path}/rules?project=team-a"), Some(rule.clone())),
        (Method::DELETE, format!("{path}?project=team-a"), None),
    ] {
        let (s, b) = app.call(m.clone(), &p, &bob, body).await;
        assert_eq!((s, b["error"]["code"].as_str()), (403, Some("forbidden")), "{m} {p}: {b}");
    }
    let (s, b) = app.call(Method::GET, &format!("{path}?project=team-a"), &alice, None).await;
    assert_eq!((s, b["rules"].as_array().unwrap().iter().filter(|r| r["direction"] == "ingress").count()), (200, 0), "{b}");
});
