//! Users cannot reach each other's resources through any route. The JSON
//! API's routes are taken from the document the server publishes, so a new
//! route is swept as soon as it exists: every operation whose path names a
//! user, a project (alice's personal one) or an owned id is called by bob
//! with alice's names and ids (and a
//! body valid by the document), and must be refused (403 or 404, never 2xx,
//! never 400 that would mean the body was looked at before the owner), and
//! afterwards everything of alice's is as it was. The UI's routes for owned
//! things get the same treatment with bob's session.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::zombie_processes)]

mod common;

use common::{TestApp, SUPER_PW};
use reqwest::Method;
use serde_json::{json, Map, Value};

/// Follows a `$ref` into the document's components.
fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(r) => resolve(doc, doc.pointer(&r.replacen('#', "", 1)).unwrap_or(&Value::Null)),
        None => schema,
    }
}

/// A value valid by `schema` (required properties only, smallest choices).
fn sample(doc: &Value, schema: &Value) -> Value {
    let s = resolve(doc, schema);
    if let Some(e) = s.get("enum").and_then(Value::as_array).and_then(|e| e.first()) {
        return e.clone();
    }
    for key in ["oneOf", "anyOf", "allOf"] {
        if let Some(first) = s.get(key).and_then(Value::as_array).and_then(|v| v.iter().find(|x| x.get("type") != Some(&json!("null")))) {
            return sample(doc, first);
        }
    }
    let ty = match s.get("type") {
        Some(Value::Array(types)) => types.iter().find(|t| *t != "null").cloned().unwrap_or(Value::Null),
        Some(t) => t.clone(),
        None if s.get("properties").is_some() => json!("object"),
        None => Value::Null,
    };
    match ty.as_str() {
        Some("object") => {
            let mut out = Map::new();
            let required: Vec<&str> =
                s.get("required").and_then(Value::as_array).map(|r| r.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
            for (name, prop) in s.get("properties").and_then(Value::as_object).into_iter().flatten() {
                if required.contains(&name.as_str()) {
                    out.insert(name.clone(), sample(doc, prop));
                }
            }
            Value::Object(out)
        }
        Some("string") => {
            let min = s.get("minLength").and_then(Value::as_u64).unwrap_or(1).max(12) as usize;
            json!("a".repeat(min))
        }
        Some("integer") | Some("number") => json!(s.get("minimum").and_then(Value::as_i64).unwrap_or(1).max(1)),
        Some("boolean") => json!(false),
        Some("array") => json!([]),
        _ => Value::Null,
    }
}

struct Alice {
    token: String,
    vm: String,
    token_id: String,
    access_key: String,
    access_secret: String,
    deployment: String,
    /// A security group of alice's on sb (on sb2 the sandbox's account
    /// would be her cloud key id, which the secret scan below forbids).
    group: String,
}

async fn setup(app: &TestApp) -> (String, Alice, String) {
    let admin = app.token("super", SUPER_PW).await;
    let image = json!({"name": "ubuntu", "mappings": {"sb": {"image_id": "ami-sandbox-ubuntu-2204"}}});
    assert_eq!(app.call(Method::POST, "/api/v1/images", &admin, Some(image)).await.0, 201);
    let token = app.user(&admin, "alice").await;
    let bob = app.user(&admin, "bob").await;
    let (s, b) = app.call(Method::POST, "/api/v1/vms", &token, Some(json!({"instance": "sb", "image": "ubuntu"}))).await;
    assert_eq!(s, 201, "{b}");
    let vm = b["vms"][0]["id"].as_str().or(b["id"].as_str()).unwrap().to_string();
    let (s, b) = app.call(Method::GET, "/api/v1/tokens", &token, None).await;
    assert_eq!(s, 200, "{b}");
    let token_id = b["tokens"][0]["id"].as_str().unwrap().to_string();
    let (s, b) = app.call(Method::POST, "/api/v1/users/alice/access-keys", &token, None).await;
    assert_eq!(s, 201, "{b}");
    let access_key = b["access_key_id"].as_str().unwrap().to_string();
    let access_secret = b["secret_access_key"].as_str().unwrap().to_string();
    let creds = json!({"access_key_id": "AKIAALICE0000000", "secret_access_key": "alice-cloud-secret"});
    assert_eq!(app.call(Method::PUT, "/api/v1/users/alice/credentials/sb2", &token, Some(creds)).await.0, 200);
    let key = json!({"ssh_key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGdvb2Qga2V5IGZvciB0ZXN0cyBvbmx5IG9rIG9rIG9r alice"});
    let _ = app.call(Method::PUT, "/api/v1/users/alice/ssh-key", &token, Some(key)).await;
    // An application and a deployment of alice's.
    let doc = json!({"nodes": {"solo": {"image": "ubuntu", "ready_when": "running", "outputs": [{"name": "port"}]}}});
    let (s, b) = app.call(Method::PUT, "/api/v1/applications/iso-app", &token, Some(doc)).await;
    assert_eq!(s, 200, "{b}");
    let (s, b) = app
        .call(
            Method::POST,
            "/api/v1/deployments",
            &token,
            Some(json!({"application": "iso-app", "placement": {"solo": {"instance": "sb"}}})),
        )
        .await;
    assert_eq!(s, 201, "{b}");
    let deployment = b["id"].as_str().unwrap().to_string();
    let sg = json!({"instance": "sb", "name": "alice-sg", "description": "alice's"});
    let (s, b) = app.call(Method::POST, "/api/v1/security-groups", &token, Some(sg)).await;
    assert_eq!(s, 201, "{b}");
    let group = b["group_id"].as_str().unwrap().to_string();
    (admin, Alice { token, vm, token_id, access_key, access_secret, deployment, group }, bob)
}

/// Everything of alice's, as she sees it.
async fn alice_view(app: &TestApp, a: &Alice) -> Vec<(u16, Value)> {
    let mut out = Vec::new();
    for path in [
        format!("/api/v1/vms/{}", a.vm),
        format!("/api/v1/deployments/{}?include=params,events", a.deployment),
        "/api/v1/applications/iso-app".to_string(),
        "/api/v1/users/alice".to_string(),
        "/api/v1/users/alice/credentials".to_string(),
        "/api/v1/users/alice/access-keys".to_string(),
        "/api/v1/users/alice/quotas".to_string(),
        "/api/v1/tokens".to_string(),
        "/api/v1/projects/alice".to_string(),
        format!("/api/v1/security-groups/sb/{}", a.group),
    ] {
        let (s, mut b) = app.call(Method::GET, &path, &a.token, None).await;
        // Times that move on their own are not part of "as it was".
        for item in b.get_mut("access_keys").and_then(Value::as_array_mut).into_iter().flatten() {
            item.as_object_mut().unwrap().remove("last_used_at");
        }
        for item in b.get_mut("tokens").and_then(Value::as_array_mut).into_iter().flatten() {
            item.as_object_mut().unwrap().remove("last_used_at");
        }
        if let Some(o) = b.as_object_mut() {
            o.remove("updated_at");
        }
        out.push((s, b));
    }
    out
}

app_test!(no_api_route_reaches_another_users_things, |app: TestApp| async move {
    let (_admin, alice, bob) = setup(&app).await;
    let before = alice_view(&app, &alice).await;
    assert!(before.iter().all(|(s, _)| *s == 200), "{before:?}");
    let doc: Value = app.http.get(app.url("/api/v1/openapi.json")).send().await.unwrap().json().await.unwrap();

    let mut swept = 0;
    let mut failures = Vec::new();
    for (template, item) in doc["paths"].as_object().unwrap() {
        let owned_id = template.contains("{id}");
        // A `{project}` is alice's personal project (tests/project_isolation.rs
        // sweeps team projects, their members and viewers).
        if !template.contains("{user}") && !template.contains("{project}") && !owned_id {
            continue;
        }
        let id = if !owned_id {
            String::new()
        } else if template.contains("/vms/") {
            alice.vm.clone()
        } else if template.contains("/access-keys/") {
            alice.access_key.clone()
        } else if template.contains("/tokens/") {
            alice.token_id.clone()
        } else if template.contains("/deployments/") {
            alice.deployment.clone()
        } else if template.contains("/security-groups/") {
            alice.group.clone()
        } else {
            panic!("{template}: the sweep does not know which of alice's ids to use here; add it");
        };
        let path = template.replace("{user}", "alice").replace("{project}", "alice").replace("{id}", &id);
        let path = path.replace("{instance}", if template.contains("/security-groups/") { "sb" } else { "sb2" });
        for (method, op) in item.as_object().unwrap() {
            let Ok(m) = Method::from_bytes(method.to_uppercase().as_bytes()) else { continue };
            if !matches!(method.as_str(), "get" | "post" | "put" | "patch" | "delete") {
                continue;
            }
            let body = op.pointer("/requestBody/content/application~1json/schema").map(|s| sample(&doc, s));
            let (status, answer) = app.call(m.clone(), &path, &bob, body.clone()).await;
            swept += 1;
            if !matches!(status, 403 | 404) {
                failures.push(format!("{m} {path} {} -> {status} {answer}", body.map(|b| b.to_string()).unwrap_or_default()));
            }
        }
    }
    assert!(failures.is_empty(), "bob reached alice's things:\n{}", failures.join("\n"));
    assert!(swept >= 25, "only {swept} operations were swept");
    // Alice's things are as they were, and her token still works.
    assert_eq!(alice_view(&app, &alice).await, before);

    // After all this, no secret is in the database in clear: not the cloud
    // keys, the EC2 secret, the passwords or the bearer tokens.
    let raw = app.database_text().await;
    assert!(raw.contains("alice") && raw.contains(&alice.vm), "the scan reads real rows");
    for secret in [
        "alice-cloud-secret",
        "AKIAALICE0000000",
        alice.access_secret.as_str(),
        "alice-password",
        "bob-password",
        SUPER_PW,
        alice.token.as_str(),
        bob.as_str(),
    ] {
        assert!(!raw.contains(secret), "a secret ({} chars) is stored in clear", secret.len());
    }
});

// The UI's pages and forms for owned things, with bob's session.
app_test!(no_ui_route_reaches_another_users_things, |app: TestApp| async move {
    let (_admin, alice, _bob) = setup(&app).await;
    let before = alice_view(&app, &alice).await;
    let http = reqwest::Client::builder().cookie_store(true).redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let page = http.get(app.url("/login")).send().await.unwrap().text().await.unwrap();
    let csrf = |html: &str| {
        let at = html.find("name=\"csrf\"").or_else(|| html.find("name=\"csrf_token\"")).expect("a CSRF field");
        let v = &html[at..];
        let start = v.find("value=\"").unwrap() + 7;
        v[start..start + v[start..].find('"').unwrap()].to_string()
    };
    let field = if page.contains("name=\"csrf_token\"") { "csrf_token" } else { "csrf" };
    let r = http
        .post(app.url("/login"))
        .form(&[("username", "bob"), ("password", "bob-password"), (field, &csrf(&page))])
        .send()
        .await
        .unwrap();
    assert!(r.status().is_redirection(), "bob signs in: {}", r.status());
    let home = http.get(app.url("/vms")).send().await.unwrap().text().await.unwrap();
    let token = csrf(&home);

    let vm = &alice.vm;
    // The admin console's pages (overview, a user's resources and their confirmations) too.
    let console_gets = [
        "/admin".to_string(),
        "/admin/overview".to_string(),
        format!("/admin/users/alice/vms/{vm}/terminate"),
        "/admin/users/alice/volumes/sb/vol-0123456789abcdef0/delete".to_string(),
        "/admin/users/alice/addresses/sb/eipalloc-0123456789abcdef0/release".to_string(),
        "/admin/users/alice/key-pairs/delete?project=alice&key=k".to_string(),
    ];
    for path in [format!("/vms/{vm}/terminate"), "/admin/users/alice".to_string()].into_iter().chain(console_gets) {
        let r = http.get(app.url(&path)).send().await.unwrap();
        let status = r.status().as_u16();
        let body = r.text().await.unwrap();
        assert!(matches!(status, 403 | 404), "GET {path} -> {status}");
        assert!(!body.contains("ami-sandbox") && !body.contains("AKIAALICE"), "GET {path} shows alice's things");
    }
    let mut posts: Vec<String> = ["stop", "start", "reboot", "terminate", "image"].iter().map(|a| format!("/vms/{vm}/{a}")).collect();
    posts.push(format!("/profile/tokens/{}/revoke", alice.token_id));
    for a in ["admin", "disabled", "password", "tokens/revoke", "quotas"] {
        posts.push(format!("/admin/users/alice/{a}"));
    }
    for a in [
        format!("vms/{vm}/stop"),
        format!("vms/{vm}/terminate"),
        "volumes/sb/vol-0123456789abcdef0/delete".to_string(),
        "addresses/sb/eipalloc-0123456789abcdef0/release".to_string(),
        "key-pairs/delete".to_string(),
    ] {
        posts.push(format!("/admin/users/alice/{a}"));
    }
    for path in &posts {
        let form = [
            (field, token.as_str()),
            ("admin", "true"),
            ("disabled", "true"),
            ("password", "bob-owns-alice-now"),
            ("instance", "sb"),
            ("limit", "0"),
        ];
        let r = http.post(app.url(path)).form(&form).send().await.unwrap();
        let status = r.status().as_u16();
        assert!(matches!(status, 403 | 404), "POST {path} -> {status}");
    }
    assert_eq!(alice_view(&app, &alice).await, before);

    // The key-pair, volume and address pages: alice's (real ones) are 404 for bob, and stay as they were.
    let alice_actor = cloudbroker_core::Actor::new("alice".parse().unwrap(), false);
    let sb = cloudbroker_core::domain::InstanceName::parse("sb").unwrap();
    let pk = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGdvb2Qga2V5IGZvciB0ZXN0cyBvbmx5IG9rIG9rIG9r alice";
    app.broker.key_pairs.import(&alice_actor, "alice-key", pk).await.unwrap();
    let spec = cloudbroker_core::provisioning::VolumeSpec {
        size: cloudbroker_core::domain::VolumeSize::parse("1").unwrap(),
        zone: "sba".into(),
        volume_type: None,
        tags: cloudbroker_core::domain::Tags::parse(Default::default()).unwrap(),
    };
    let vol = app.broker.provisioning.create_volume(&alice_actor, &sb, spec).await.unwrap().volume_id.to_string();
    let addr = app.broker.provisioning.allocate_address(&alice_actor, &sb).await.unwrap().allocation_id.to_string();
    let resources = || async {
        let volumes = app.broker.provisioning.volumes(&alice_actor, &sb).await.unwrap();
        let volumes: Vec<_> = volumes.into_iter().map(|v| (v.volume_id, v.attachment)).collect();
        let addresses = app.broker.provisioning.addresses(&alice_actor, &sb).await.unwrap();
        format!("{:?} {volumes:?} {addresses:?}", app.broker.key_pairs.list(&alice_actor).await.unwrap())
    };
    let had = resources().await;
    let page_gets = [
        "/keypairs/alice-key/delete".to_string(),
        format!("/volumes/sb/{vol}/attach"),
        format!("/volumes/sb/{vol}/delete"),
        format!("/addresses/sb/{addr}/associate"),
        format!("/addresses/sb/{addr}/release"),
    ];
    for path in &page_gets {
        let status = http.get(app.url(path)).send().await.unwrap().status().as_u16();
        assert_eq!(status, 404, "GET {path}");
    }
    for l in ["/keypairs", "/volumes", "/addresses"] {
        let body = http.get(app.url(l)).send().await.unwrap().text().await.unwrap();
        assert!(!body.contains("alice-key") && !body.contains(&vol) && !body.contains(&addr), "{l} lists alice's things");
    }
    let body = http.get(app.url("/security-groups")).send().await.unwrap().text().await.unwrap();
    assert!(!body.contains(&alice.group), "/security-groups lists alice's group");
    for path in [format!("/security-groups/sb/{}/delete", alice.group), format!("/security-groups/sb/{}/rules/remove", alice.group)] {
        let form = [(field, token.as_str()), ("protocol", "tcp"), ("from_port", "22"), ("cidr", "0.0.0.0/0")];
        let status = http.post(app.url(&path)).form(&form).send().await.unwrap().status().as_u16();
        assert_eq!(status, 404, "POST {path}");
    }
    let mut page_posts = page_gets.to_vec();
    page_posts.extend([format!("/volumes/sb/{vol}/detach"), format!("/addresses/sb/{addr}/disassociate")]);
    for path in &page_posts {
        let form = [(field, token.as_str()), ("vm", vm.as_str()), ("device", "/dev/sdf")];
        let status = http.post(app.url(path)).form(&form).send().await.unwrap().status().as_u16();
        assert_eq!(status, 404, "POST {path}");
    }
    assert_eq!(resources().await, had, "alice's key pairs, volumes and addresses are as they were");
});
