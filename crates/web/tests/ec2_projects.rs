//! The EC2 front-end acts in the access key's project: one user with two
//! keys (his personal project's and team-a's) drives the broker with boto3
//! (tests/ec2/boto3_projects.py), on SQLite and PostgreSQL. The team key
//! launches into team-a, where another member's team key sees and acts on
//! the VM and the personal key does not see it; a viewer's team key reads
//! and cannot act (`UnauthorizedOperation`); once the user is removed from
//! team-a his team key is refused at once (`AuthFailure`) while his
//! personal key keeps working. Keys are created through the JSON API with
//! their `project`; a key for a project the user is no member of is refused.

// Test code: panicking on an unexpected result is the point.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::zombie_processes)]

mod common;

use cloudbroker_core::domain::{ProjectName, ProjectRole};
use cloudbroker_core::testing::user;
use cloudbroker_core::Actor;
use common::{TestApp, SUPER_PW};
use reqwest::Method;
use serde_json::{json, Value};

/// Creates an access key of `who` (with its own token) acting in `project`
/// (`None`: no body, the personal project); returns (id, secret).
async fn key(app: &TestApp, token: &str, who: &str, project: Option<&str>) -> (String, String) {
    let body = project.map(|p| json!({ "project": p }));
    let (s, k) = app.call(Method::POST, &format!("/api/v1/users/{who}/access-keys"), token, body).await;
    assert_eq!(s, 201, "{k}");
    assert_eq!(k["project"], project.unwrap_or(who), "{k}");
    (k["access_key_id"].as_str().unwrap().to_string(), k["secret_access_key"].as_str().unwrap().to_string())
}

fn run_script(phase: &str, mut env: Vec<(String, String)>) -> Value {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ec2/boto3_projects.py");
    env.push(("PHASE".into(), phase.into()));
    env.push(("AWS_EC2_METADATA_DISABLED".into(), "true".into()));
    env.push(("AWS_CONFIG_FILE".into(), "/dev/null".into()));
    env.push(("AWS_SHARED_CREDENTIALS_FILE".into(), "/dev/null".into()));
    let out = std::process::Command::new(cloudbroker_testkit::venv_python()).arg(&script).envs(env).output().unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "boto3 script ({phase}) failed:\n{stderr}\n{stdout}");
    serde_json::from_str(stdout.lines().last().unwrap_or("")).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

app_test!(access_keys_act_in_their_project, |app: TestApp| async move {
    let admin = app.token("super", SUPER_PW).await;
    let image = json!({"name": "ubuntu", "mappings": {"sb": {"image_id": "ami-sandbox-ubuntu-2204", "instance_type": "t2.small"}}});
    assert_eq!(app.call(Method::POST, "/api/v1/images", &admin, Some(image)).await.0, 201);
    let mut tokens = std::collections::BTreeMap::new();
    for u in ["olga", "mark", "vera", "otto"] {
        tokens.insert(u, app.user(&admin, u).await);
    }
    // team-a: olga owns it, mark is a member, vera a viewer.
    let team = ProjectName::parse("team-a").unwrap();
    let olga = Actor::new(user("olga"), false);
    app.broker.projects.create(&olga, &team, "team A", None).await.unwrap();
    app.broker.projects.set_member(&olga, &team, &user("mark"), ProjectRole::Member).await.unwrap();
    app.broker.projects.set_member(&olga, &team, &user("vera"), ProjectRole::Viewer).await.unwrap();

    let mark = key(&app, &tokens["mark"], "mark", None).await;
    let mark_team = key(&app, &tokens["mark"], "mark", Some("team-a")).await;
    let olga_team = key(&app, &tokens["olga"], "olga", Some("team-a")).await;
    let vera_team = key(&app, &tokens["vera"], "vera", Some("team-a")).await;
    // No key for a project one is no member of (nor one that does not exist).
    for p in ["team-a", "team-z", "mark"] {
        let (s, b) = app.call(Method::POST, "/api/v1/users/otto/access-keys", &tokens["otto"], Some(json!({ "project": p }))).await;
        assert_eq!(s, 404, "otto's key for {p}: {b}");
    }
    let (s, b) = app.call(Method::POST, "/api/v1/users/otto/access-keys", &tokens["otto"], Some(json!({"project": "Not A Name"}))).await;
    assert_eq!((s, b["error"]["field"].as_str()), (400, Some("project")), "{b}");
    // The listing shows each key's project.
    let (s, list) = app.call(Method::GET, "/api/v1/users/mark/access-keys", &tokens["mark"], None).await;
    assert_eq!(s, 200, "{list}");
    let mut projects: Vec<(String, String)> = list["access_keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| (k["access_key_id"].as_str().unwrap().to_string(), k["project"].as_str().unwrap().to_string()))
        .collect();
    projects.sort();
    let mut expected = vec![(mark.0.clone(), "mark".to_string()), (mark_team.0.clone(), "team-a".to_string())];
    expected.sort();
    assert_eq!(projects, expected);

    let mut env = vec![("EP".to_string(), app.url("/ec2"))];
    for (name, (ak, sk)) in [("MARK", &mark), ("MARK_TEAM", &mark_team), ("OLGA_TEAM", &olga_team), ("VERA_TEAM", &vera_team)] {
        env.push((format!("{name}_AK"), ak.clone()));
        env.push((format!("{name}_SK"), sk.clone()));
    }
    // The background reconciler's job, done here: records follow the cloud.
    let broker = app.broker.clone();
    let reconciler = tokio::spawn(async move {
        loop {
            let _ = broker.provisioning.reconcile("ec2-projects-test").await;
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    });

    let before = tokio::task::spawn_blocking({
        let env = env.clone();
        move || run_script("before", env)
    })
    .await
    .unwrap();
    let team_vm = before["team_vm"].as_str().unwrap().to_string();
    let personal_vm = before["personal_vm"].as_str().unwrap().to_string();
    // The team key's VM is team-a's, launched by mark; the personal one is mark's own.
    for (id, project) in [(&team_vm, "team-a"), (&personal_vm, "mark")] {
        let (s, vm) = app.call(Method::GET, &format!("/api/v1/vms/{}", id.replacen("i-", "vm-", 1)), &admin, None).await;
        assert_eq!(s, 200, "{vm}");
        assert_eq!((vm["project"].as_str(), vm["user"].as_str()), (Some(project), Some("mark")), "{vm}");
    }
    assert_eq!(before["mark_team_sees"], json!([team_vm]), "{before}");
    assert_eq!(before["olga_team_sees"], json!([team_vm]), "another member's team key sees it: {before}");
    assert_eq!(before["vera_team_sees"], json!([team_vm]), "the viewer's team key sees it: {before}");
    assert_eq!(before["vera_describe_team_vm"], json!([team_vm]), "{before}");
    assert_eq!(before["mark_personal_sees"], json!([personal_vm]), "the personal key does not see team-a's VM: {before}");
    assert_eq!(before["mark_personal_describe_team_vm"], "InvalidInstanceID.NotFound", "{before}");
    assert_eq!(before["olga_describe_personal_vm"], "InvalidInstanceID.NotFound", "{before}");
    assert_eq!(before["vera_terminate"], "UnauthorizedOperation", "{before}");
    assert_eq!(before["vera_stop"], "UnauthorizedOperation", "{before}");
    assert_eq!(before["vera_run"], "UnauthorizedOperation", "{before}");

    // mark leaves team-a: his team key stops working at once.
    app.broker.projects.remove_member(&olga, &team, &user("mark")).await.unwrap();
    env.push(("TEAM_VM".into(), team_vm.clone()));
    env.push(("PERSONAL_VM".into(), personal_vm.clone()));
    let after = tokio::task::spawn_blocking(move || run_script("after", env)).await.unwrap();
    reconciler.abort();
    assert_eq!(after["mark_team_describe"], "AuthFailure", "{after}");
    assert_eq!(after["mark_team_terminate"], "AuthFailure", "{after}");
    assert_eq!(after["mark_personal_sees"], json!([personal_vm]), "{after}");
    assert_eq!(after["olga_team_sees"], json!([team_vm]), "{after}");
    assert_eq!(after["olga_terminated"], json!([team_vm]), "{after}");
    assert_eq!(after["mark_terminated"], json!([personal_vm]), "{after}");
    // The key itself is still there (active): only the membership went.
    let (_, list) = app.call(Method::GET, "/api/v1/users/mark/access-keys", &tokens["mark"], None).await;
    assert!(list["access_keys"].as_array().unwrap().iter().any(|k| k["access_key_id"] == mark_team.0.as_str() && k["state"] == "active"));
    // Added back, the same key works again.
    app.broker.projects.set_member(&olga, &team, &user("mark"), ProjectRole::Member).await.unwrap();
    let holder = app.broker.access_keys.holder(&mark_team.0).await.unwrap().expect("a member again");
    assert_eq!((holder.actor.project.as_str(), holder.actor.role), ("team-a", ProjectRole::Member));
    app.broker.projects.set_member(&olga, &team, &user("mark"), ProjectRole::Viewer).await.unwrap();
    let holder = app.broker.access_keys.holder(&mark_team.0).await.unwrap().expect("a viewer now");
    assert_eq!(holder.actor.role, ProjectRole::Viewer, "the key follows the current role at once");
    app.stop().await;
});
