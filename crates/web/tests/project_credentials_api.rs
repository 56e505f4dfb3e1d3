//! The JSON API of project credentials and of grants to projects, over
//! HTTP, on SQLite and PostgreSQL: `/projects/{project}/credentials` lists a
//! project's credentials masked to its members (404 to others), its owners
//! store and delete them (403 to members and viewers); nobody reads a secret
//! back through any route. Grants of shared credentials take `projects` and
//! still `users` (their personal projects). An access key's project comes
//! from the body or `?project=`.

// Test code: panicking on an unexpected result is the point.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::zombie_processes)]

mod common;

use cloudbroker_core::domain::{ProjectName, ProjectRole};
use cloudbroker_core::testing::user;
use cloudbroker_core::Actor;
use common::{TestApp, SUPER_PW};
use reqwest::Method;
use serde_json::json;

app_test!(project_credentials_over_http, |app: TestApp| async move {
    let admin = app.token("super", SUPER_PW).await;
    let mut t = std::collections::BTreeMap::new();
    for u in ["olga", "mark", "vera", "otto"] {
        t.insert(u, app.user(&admin, u).await);
    }
    let team = ProjectName::parse("team-a").unwrap();
    let olga = Actor::new(user("olga"), false);
    app.broker.projects.create(&olga, &team, "", None).await.unwrap();
    app.broker.projects.set_member(&olga, &team, &user("mark"), ProjectRole::Member).await.unwrap();
    app.broker.projects.set_member(&olga, &team, &user("vera"), ProjectRole::Viewer).await.unwrap();

    let keys = json!({"access_key_id": "AKIATEAMA0001", "secret_access_key": "team-secret-value"});
    // Only owners (and admins) store them; outsiders do not see the project at all.
    for (who, status) in [("mark", 403), ("vera", 403), ("otto", 404)] {
        let (s, b) = app.call(Method::PUT, "/api/v1/projects/team-a/credentials/sb", &t[who], Some(keys.clone())).await;
        assert_eq!(s, status, "{who}: {b}");
    }
    let (s, b) = app.call(Method::PUT, "/api/v1/projects/team-a/credentials/sb", &t["olga"], Some(keys.clone())).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(
        (b["scope"].as_str(), b["owner"].as_str(), b["access_key_id"].as_str()),
        (Some("project"), Some("team-a"), Some("****0001"))
    );
    let (s, b) = app.call(Method::PUT, "/api/v1/projects/team-z/credentials/sb", &admin, Some(keys.clone())).await;
    assert_eq!(s, 404, "{b}");
    let (s, b) = app.call(Method::PUT, "/api/v1/projects/team-a/credentials/mars", &t["olga"], Some(keys.clone())).await;
    assert_eq!(s, 404, "{b}");
    // Members, viewers and admins see it masked; outsiders get 404.
    for who in ["olga", "mark", "vera"] {
        let (s, b) = app.call(Method::GET, "/api/v1/projects/team-a/credentials", &t[who], None).await;
        assert_eq!(s, 200, "{who}: {b}");
        assert_eq!(b["credentials"].as_array().unwrap().len(), 1, "{b}");
        assert_eq!(b["credentials"][0]["secret_access_key"], "********");
        let text = b.to_string();
        assert!(!text.contains("team-secret-value") && !text.contains("AKIATEAMA0001"), "{who}: {text}");
    }
    let (s, b) = app.call(Method::GET, "/api/v1/projects/team-a/credentials", &admin, None).await;
    assert_eq!((s, b["credentials"].as_array().map(Vec::len)), (200, Some(1)), "{b}");
    let (s, b) = app.call(Method::GET, "/api/v1/projects/team-a/credentials", &t["otto"], None).await;
    assert_eq!(s, 404, "{b}");
    // Not a user's credential: the members' own lists stay empty.
    let (_, b) = app.call(Method::GET, "/api/v1/users/olga/credentials", &t["olga"], None).await;
    assert_eq!(b["credentials"], json!([]), "{b}");
    // The secret is in no answer the members can get, nor in the database in clear.
    assert!(!app.database_text().await.contains("team-secret-value"), "the secret is stored in clear");
    // Delete: owners only.
    for (who, status) in [("mark", 403), ("vera", 403), ("otto", 404)] {
        let (s, b) = app.call(Method::DELETE, "/api/v1/projects/team-a/credentials/sb", &t[who], None).await;
        assert_eq!(s, status, "{who}: {b}");
    }
    let (s, b) = app.call(Method::DELETE, "/api/v1/projects/team-a/credentials/sb", &t["olga"], None).await;
    assert_eq!(s, 204, "{b}");
    let (s, b) = app.call(Method::DELETE, "/api/v1/projects/team-a/credentials/sb", &t["olga"], None).await;
    assert_eq!(s, 404, "{b}");

    // Grants: to projects, to users (their personal projects), both, none.
    let shared = json!({"access_key_id": "AKIASHARED0001", "secret_access_key": "shared-secret", "force": true});
    let (s, b) = app.call(Method::PUT, "/api/v1/system/credentials/sb/pool", &admin, Some(shared)).await;
    assert_eq!(s, 200, "{b}");
    let grants = "/api/v1/system/credentials/sb/pool/grants";
    for (body, status, granted) in [
        (json!({"projects": ["team-a"]}), 200, json!(["team-a"])),
        (json!({"users": ["otto"]}), 200, json!(["otto"])),
        (json!({"projects": ["team-a"], "users": ["otto", "mark"]}), 200, json!(["mark", "otto", "team-a"])),
        (json!({}), 200, json!([])),
    ] {
        let (s, b) = app.call(Method::PUT, grants, &admin, Some(body.clone())).await;
        assert_eq!((s, &b["granted_to"]), (status, &granted), "{body}: {b}");
    }
    let (s, b) = app.call(Method::PUT, grants, &admin, Some(json!({"projects": ["team-z"]}))).await;
    assert_eq!(s, 404, "{b}");
    let (s, b) = app.call(Method::PUT, grants, &admin, Some(json!({"projects": ["Not A Name"]}))).await;
    assert_eq!((s, b["error"]["field"].as_str()), (400, Some("projects")), "{b}");
    let (s, b) = app.call(Method::PUT, grants, &admin, Some(json!({"users": ["nobody"]}))).await;
    assert_eq!(s, 404, "{b}");
    let (s, b) = app.call(Method::PUT, grants, &t["olga"], Some(json!({"projects": ["team-a"]}))).await;
    assert_eq!(s, 403, "{b}");

    // An access key's project: from the body or from `?project=`; both must agree.
    let (s, k) = app.call(Method::POST, "/api/v1/users/vera/access-keys?project=team-a", &t["vera"], None).await;
    assert_eq!((s, k["project"].as_str()), (201, Some("team-a")), "{k}");
    let (s, k) = app.call(Method::POST, "/api/v1/users/vera/access-keys", &t["vera"], Some(json!({"project": "team-a"}))).await;
    assert_eq!((s, k["project"].as_str()), (201, Some("team-a")), "{k}");
    let (s, k) = app.call(Method::POST, "/api/v1/users/vera/access-keys", &t["vera"], None).await;
    assert_eq!((s, k["project"].as_str()), (201, Some("vera")), "{k}");
    let (s, b) =
        app.call(Method::POST, "/api/v1/users/vera/access-keys?project=team-a", &t["vera"], Some(json!({"project": "vera"}))).await;
    assert_eq!((s, b["error"]["field"].as_str()), (400, Some("project")), "{b}");
    let (s, b) = app.call(Method::POST, "/api/v1/users/otto/access-keys", &t["otto"], Some(json!({"project": "system"}))).await;
    assert_eq!(s, 404, "a reserved name names no project: {b}");
    app.stop().await;
});
