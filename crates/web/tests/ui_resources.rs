//! The UI's pages for what the EC2 front manages (issue 23): key pairs
//! (create with the private key shown once after post/redirect/get, import,
//! delete), volumes (create, attach to one of the project's VMs, detach,
//! delete) and Elastic IPs (allocate, associate, disassociate, release),
//! through the real server without a browser; a refusal comes back as a
//! form message naming what was wrong with what was typed kept; every
//! destructive action of the UI asks first on a page of its own (a GET
//! that changes nothing) whose form then does it; another user's ids are
//! 404 and nothing changes. On SQLite and PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::zombie_processes)]

mod common;

use cloudbroker_core::domain::{InstanceName, VmStatus};
use cloudbroker_core::Actor;
use common::ui::{between, field_errors, unescape, Ui};
use serde_json::json;

/// The system acting in `project` (its key pairs, volumes and addresses).
fn in_project(project: &str) -> Actor {
    Actor::system().in_project(project.parse().unwrap(), cloudbroker_core::domain::ProjectRole::Owner)
}

/// The form message at the top (`id="form-error"`).
fn form_error(body: &str) -> String {
    unescape(between(body, "id=\"form-error\">", "</p>"))
}

/// The flash message of a page.
fn flash(body: &str) -> String {
    unescape(between(body, "id=\"flash\">", "</p>"))
}

/// An admin token, the image `linux` on sb and sb2, and users `names`.
async fn setup(app: &common::TestApp, names: &[&str]) -> String {
    let admin = app.token("super", common::SUPER_PW).await;
    let image =
        json!({"name": "linux", "mappings": {"sb": {"image_id": "ami-sandbox-debian-12"}, "sb2": {"image_id": "ami-sandbox-debian-12"}}});
    let (s, b) = app.call(reqwest::Method::POST, "/api/v1/images", &admin, Some(image)).await;
    assert_eq!(s, 201, "{b}");
    for n in names {
        app.user(&admin, n).await;
    }
    admin
}

/// Launches VM `name` on `instance` from the UI and waits until it runs: its id.
async fn running_vm(app: &common::TestApp, ui: &Ui, user: &str, instance: &str, name: &str) -> String {
    let (s, body) = ui.post("/vms", &[("instance", instance), ("image", "linux"), ("name", name)]).await;
    assert!(s == 200 && body.contains("Launched 1 VM(s)"), "{body}");
    for _ in 0..50 {
        app.broker.provisioning.reconcile("test").await.unwrap();
        let q = cloudbroker_core::provisioning::VmQuery { user: Some(user.parse().unwrap()), ..Default::default() };
        let page = cloudbroker_core::domain::PageRequest::parse(Some("100"), None).unwrap();
        let vms = app.broker.provisioning.list(&Actor::system(), q, page).await.unwrap().items;
        if let Some(v) = vms.iter().find(|v| v.name == name && v.status == VmStatus::Running && v.cloud_id.is_some()) {
            return v.id.to_string();
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("{name} never ran");
}

/// The row of `id` in a page's table (`<tr id="{prefix}-{id}" ...>` to `</tr>`).
fn row<'a>(body: &'a str, prefix: &str, id: &str) -> Option<&'a str> {
    let at = body.find(&format!("<tr id=\"{prefix}-{id}\""))?;
    Some(&body[at..at + body[at..].find("</tr>").unwrap()])
}

/// Reloads `/volumes` until the row of `id` satisfies `ok` (the sandbox
/// settles transitions after a moment; a listing refreshes them): the row.
async fn volume_row_until(ui: &Ui, id: &str, ok: impl Fn(&str) -> bool) -> String {
    let mut last = String::new();
    for _ in 0..60 {
        let (s, body) = ui.get("/volumes").await;
        assert_eq!(s, 200, "{body}");
        if let Some(r) = row(&body, "volume", id) {
            if ok(r) {
                return r.to_string();
            }
            last = r.to_string();
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("volume {id} never got there: {last}");
}

app_test!(key_pairs_are_created_imported_and_deleted, |app: common::TestApp| async move {
    setup(&app, &["alice"]).await;
    let alice = Ui::sign_in(&app, "alice", "alice-password").await;
    let (s, body) = alice.get("/keypairs").await;
    assert_eq!(s, 200);
    assert!(body.contains("href=\"/keypairs\" aria-current=\"page\""), "linked in the navigation: {body}");
    assert!(body.contains("No key pairs yet."), "{body}");

    // Create: post/redirect/get, the private key shown once after the redirect.
    let (s, to) = alice.post_no_follow("/keypairs", &[("name", "ops key")]).await;
    assert_eq!((s, to.as_str()), (303, "/keypairs"));
    let (_, shown) = alice.get("/keypairs").await;
    let private = unescape(between(&shown, "id=\"new-private-key\" class=\"secret\">", "</pre>"));
    assert!(private.starts_with("-----BEGIN OPENSSH PRIVATE KEY-----"), "{shown}");
    assert!(shown.contains("id=\"download-private-key\"") && shown.contains("download=\"ops_key.pem\""), "{shown}");
    assert!(shown.contains("data:application/x-pem-file;base64,"), "a download needing no second request: {shown}");
    assert!(flash(&shown).contains("Key pair ops key created"), "{shown}");
    let listed = app.broker.key_pairs.list(&in_project("alice")).await.unwrap();
    assert_eq!(listed.len(), 1);
    let fp = &listed[0].fingerprint;
    assert!(
        shown.contains(&format!("title=\"{fp}\"")) && shown.contains(&format!("<code>{fp}</code>")),
        "the fingerprint, whole in its title: {shown}"
    );
    assert!(shown.contains("<time datetime=\""), "the created time, exact in its title: {shown}");
    // Reloading shows it no more, and makes nothing.
    for _ in 0..2 {
        let (s, again) = alice.get("/keypairs").await;
        assert_eq!(s, 200);
        assert!(!again.contains("new-private-key") && !again.contains("OPENSSH PRIVATE KEY"), "{again}");
    }
    assert_eq!(app.broker.key_pairs.list(&in_project("alice")).await.unwrap().len(), 1);
    // The broker keeps no private key.
    let body_of_private: String = private.lines().filter(|l| !l.starts_with("-----")).collect();
    assert!(!app.database_text().await.contains(&body_of_private[..40]), "the private key is stored nowhere");

    // A taken name: said next to the field, the name kept; no second pair.
    let (s, body) = alice.post("/keypairs", &[("name", "ops key")]).await;
    assert!(s >= 400, "{s}");
    assert!(field_errors(&body).iter().any(|e| e.contains("already exists")), "{body}");
    assert!(body.contains("id=\"keypair-name\" name=\"name\" value=\"ops key\""), "what was typed is kept: {body}");
    assert!(!body.contains("new-private-key"), "{body}");

    // Import: a key that does not parse is refused next to it, both fields kept.
    let (s, body) = alice.post("/keypairs/import", &[("name", "laptop"), ("public_key", "ssh-rsa not-a-key")]).await;
    assert!(s >= 400, "{s}");
    assert!(field_errors(&body).iter().any(|e| e.contains("not an OpenSSH public key")), "{body}");
    assert!(body.contains("value=\"laptop\"") && body.contains(">ssh-rsa not-a-key</textarea>"), "{body}");
    let pk = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGdvb2Qga2V5IGZvciB0ZXN0cyBvbmx5IG9rIG9rIG9r me@laptop";
    let (s, to) = alice.post_no_follow("/keypairs/import", &[("name", "laptop"), ("public_key", pk)]).await;
    assert_eq!((s, to.as_str()), (303, "/keypairs"));
    let (_, body) = alice.get("/keypairs").await;
    assert!(body.contains("data-keypair=\"laptop\"") && flash(&body).contains("Key pair laptop imported (SHA256:"), "{body}");
    assert!(!body.contains("new-private-key"), "an import shows no private key: {body}");

    // Delete asks first; the GET deletes nothing; the confirmation's form does.
    assert!(body.contains("href=\"/keypairs/ops%20key/delete\""), "{body}");
    let (s, page) = alice.get("/keypairs/ops%20key/delete").await;
    assert_eq!(s, 200);
    assert!(page.contains("Delete key pair ops key?") && page.contains(fp.as_str()), "{page}");
    assert_eq!(app.broker.key_pairs.list(&in_project("alice")).await.unwrap().len(), 2);
    let (s, body) = alice.confirm("/keypairs/ops%20key/delete").await;
    assert_eq!(s, 200, "{body}");
    assert!(flash(&body).contains("Key pair ops key deleted"), "{body}");
    let left: Vec<String> = app.broker.key_pairs.list(&in_project("alice")).await.unwrap().into_iter().map(|k| k.name).collect();
    assert_eq!(left, vec!["laptop".to_string()]);
    // Deleting it again: nothing there.
    assert_eq!(alice.post("/keypairs/ops%20key/delete", &[]).await.0, 404);
    assert_eq!(alice.get("/keypairs/ops%20key/delete").await.0, 404);
});

app_test!(volumes_are_created_attached_detached_and_deleted, |app: common::TestApp| async move {
    setup(&app, &["alice"]).await;
    let alice = Ui::sign_in(&app, "alice", "alice-password").await;
    let vm = running_vm(&app, &alice, "alice", "sb", "db").await;
    let (s, body) = alice.get("/volumes").await;
    assert_eq!(s, 200);
    assert!(body.contains("href=\"/volumes\" aria-current=\"page\"") && body.contains("No volumes yet."), "{body}");

    // A refusal: every field's problem at once, what was typed kept.
    let (s, body) = alice.post("/volumes", &[("instance", ""), ("size", "abc"), ("zone", "x"), ("tags", "team=data")]).await;
    assert_eq!(s, 400);
    let errs = field_errors(&body);
    assert!(errs.len() == 2 && errs.iter().any(|e| e.contains("not a volume size")), "{errs:?}");
    assert!(body.contains("id=\"error-summary\""), "{body}");
    assert!(body.contains("value=\"abc\"") && body.contains(">team=data</textarea>"), "{body}");
    // The cloud's refusal (a zone it does not have) as the form's message.
    let (s, body) = alice.post("/volumes", &[("instance", "sb"), ("size", "2"), ("zone", "elsewhere-1a"), ("tags", "team=data")]).await;
    assert!(s >= 400, "{s}");
    let msg = form_error(&body);
    assert!(msg.contains("No volume was created") && msg.contains("elsewhere-1a"), "{msg}");
    assert!(!msg.contains(".."), "the cloud's sentence ends once: {msg}");
    assert!(body.contains("value=\"elsewhere-1a\"") && body.contains("<option value=\"sb\" selected>"), "{body}");

    // Create (the zone defaults to the instance's).
    let (s, to) =
        alice.post_no_follow("/volumes", &[("instance", "sb"), ("size", "2"), ("volume_type", "gp3"), ("tags", "team=data")]).await;
    assert_eq!((s, to.as_str()), (303, "/volumes"));
    let (_, body) = alice.get("/volumes").await;
    let id = between(&flash(&body), "Volume ", " created").to_string();
    assert!(id.starts_with("vol-"), "{body}");
    let r = volume_row_until(&alice, &id, |r| r.contains("state-available")).await;
    assert!(r.contains("2 GiB") && r.contains("sba") && r.contains("gp3") && r.contains(">team=data<"), "{r}");
    assert!(r.contains(&format!("title=\"{id}\"")), "the id whole in its title: {r}");

    // Attach: its own page, a select of the project's VMs there.
    let (s, page) = alice.get(&format!("/volumes/sb/{id}/attach")).await;
    assert_eq!(s, 200);
    assert!(page.contains(&format!("<option value=\"{vm}\">db ({vm})</option>")), "{page}");
    // A bad device: said next to it, the VM chosen kept.
    let (s, page) = alice.post(&format!("/volumes/sb/{id}/attach"), &[("vm", &vm), ("device", "sdf")]).await;
    assert_eq!(s, 400);
    assert!(field_errors(&page).iter().any(|e| e.contains("not a device name")), "{page}");
    assert!(page.contains(&format!("<option value=\"{vm}\" selected>")) && page.contains("value=\"sdf\""), "{page}");
    let (s, to) = alice.post_no_follow(&format!("/volumes/sb/{id}/attach"), &[("vm", &vm), ("device", "/dev/sdf")]).await;
    assert_eq!((s, to.as_str()), (303, "/volumes"));
    let r = volume_row_until(&alice, &id, |r| r.contains("/dev/sdf")).await;
    assert!(r.contains(&format!("href=\"/vms/{vm}\"")), "{r}");

    // Delete while attached: the confirmation says so; the cloud's refusal as the form message.
    let (s, page) = alice.get(&format!("/volumes/sb/{id}/delete")).await;
    assert_eq!(s, 200);
    assert!(page.contains("It is attached to") && page.contains("/dev/sdf"), "{page}");
    let (s, body) = alice.confirm(&format!("/volumes/sb/{id}/delete")).await;
    assert!(s >= 400, "{s}");
    let msg = form_error(&body);
    assert!(msg.contains(&format!("Volume {id} was not deleted")) && msg.contains("attached"), "{msg}");
    assert_eq!(app.broker.provisioning.volumes(&in_project("alice"), &InstanceName::parse("sb").unwrap()).await.unwrap().len(), 1);

    // Detach, then delete.
    let (s, to) = alice.post_no_follow(&format!("/volumes/sb/{id}/detach"), &[]).await;
    assert_eq!((s, to.as_str()), (303, "/volumes"));
    volume_row_until(&alice, &id, |r| r.contains("state-available") && !r.contains("/dev/sdf")).await;
    let (s, body) = alice.confirm(&format!("/volumes/sb/{id}/delete")).await;
    assert_eq!(s, 200, "{body}");
    assert!(flash(&body).contains(&format!("Volume {id} deleted")) && row(&body, "volume", &id).is_none(), "{body}");
});

app_test!(addresses_are_allocated_associated_and_released, |app: common::TestApp| async move {
    setup(&app, &["alice"]).await;
    let alice = Ui::sign_in(&app, "alice", "alice-password").await;
    let vm = running_vm(&app, &alice, "alice", "sb", "web").await;
    let (s, body) = alice.get("/addresses").await;
    assert_eq!(s, 200);
    assert!(body.contains("href=\"/addresses\" aria-current=\"page\"") && body.contains("No addresses yet."), "{body}");
    let (s, body) = alice.post("/addresses", &[("instance", "")]).await;
    assert_eq!(s, 400);
    assert!(field_errors(&body).iter().any(|e| e.contains("choose a connector instance")), "{body}");

    let (s, to) = alice.post_no_follow("/addresses", &[("instance", "sb")]).await;
    assert_eq!((s, to.as_str()), (303, "/addresses"));
    let (_, body) = alice.get("/addresses").await;
    let f = flash(&body);
    let id = f.rsplit(": ").next().unwrap().to_string();
    let ip = between(&f, "Address ", " allocated").to_string();
    assert!(id.starts_with("eipalloc-"), "{f}");
    let r = row(&body, "address", &id).unwrap_or_else(|| panic!("{body}"));
    assert!(r.contains(&ip) && r.contains(&format!("href=\"/addresses/sb/{id}/associate\"")), "{r}");

    // Associate with the VM chosen on its own page.
    let (s, page) = alice.get(&format!("/addresses/sb/{id}/associate")).await;
    assert_eq!(s, 200);
    assert!(page.contains(&format!("<option value=\"{vm}\">web ({vm})</option>")), "{page}");
    let (s, page) = alice.post(&format!("/addresses/sb/{id}/associate"), &[("vm", "")]).await;
    assert_eq!(s, 400);
    assert!(field_errors(&page).iter().any(|e| e.contains("choose a VM")), "{page}");
    let (s, to) = alice.post_no_follow(&format!("/addresses/sb/{id}/associate"), &[("vm", &vm)]).await;
    assert_eq!((s, to.as_str()), (303, "/addresses"));
    let (_, body) = alice.get("/addresses").await;
    let r = row(&body, "address", &id).unwrap();
    assert!(r.contains(&format!("href=\"/vms/{vm}\"")) && r.contains(&format!("/addresses/sb/{id}/disassociate")), "{r}");

    // Release while associated: the cloud refuses, said as the form message; nothing released.
    let (s, body) = alice.confirm(&format!("/addresses/sb/{id}/release")).await;
    assert!(s >= 400, "{s}");
    let msg = form_error(&body);
    assert!(msg.contains(&format!("Address {id} was not released")) && msg.contains("in use"), "{msg}");
    assert!(!msg.contains(".."), "the cloud's sentence ends once: {msg}");
    assert!(row(&body, "address", &id).is_some(), "{body}");

    // Disassociate, then release (asked first; the GET releases nothing).
    let (s, to) = alice.post_no_follow(&format!("/addresses/sb/{id}/disassociate"), &[]).await;
    assert_eq!((s, to.as_str()), (303, "/addresses"));
    let (s, page) = alice.get(&format!("/addresses/sb/{id}/release")).await;
    assert_eq!(s, 200);
    assert!(page.contains(&format!("Release address {ip}?")) && !page.contains("It is associated"), "{page}");
    let still = app.broker.provisioning.addresses(&in_project("alice"), &InstanceName::parse("sb").unwrap()).await.unwrap();
    assert_eq!(still.len(), 1);
    let (s, body) = alice.confirm(&format!("/addresses/sb/{id}/release")).await;
    assert_eq!(s, 200, "{body}");
    assert!(flash(&body).contains(&format!("Address {id} released")) && row(&body, "address", &id).is_none(), "{body}");
});

app_test!(another_users_resources_are_not_found, |app: common::TestApp| async move {
    setup(&app, &["alice", "bob"]).await;
    let alice = Ui::sign_in(&app, "alice", "alice-password").await;
    let bob = Ui::sign_in(&app, "bob", "bob-password").await;
    let vm = running_vm(&app, &alice, "alice", "sb", "mine").await;
    let bob_vm = running_vm(&app, &bob, "bob", "sb", "bobs").await;
    alice.post("/keypairs", &[("name", "alice-key")]).await;
    alice.post("/volumes", &[("instance", "sb"), ("size", "1")]).await;
    alice.post("/addresses", &[("instance", "sb")]).await;
    let actor = in_project("alice");
    let sb = InstanceName::parse("sb").unwrap();
    let vol = app.broker.provisioning.volumes(&actor, &sb).await.unwrap()[0].volume_id.to_string();
    let addr = app.broker.provisioning.addresses(&actor, &sb).await.unwrap()[0].allocation_id.to_string();
    let before = format!(
        "{:?} {:?} {:?}",
        app.broker.key_pairs.list(&actor).await.unwrap(),
        app.broker.provisioning.volumes(&actor, &sb).await.unwrap().iter().map(|v| (&v.volume_id, &v.attachment)).collect::<Vec<_>>(),
        app.broker.provisioning.addresses(&actor, &sb).await.unwrap()
    );
    // Bob's pages do not list them; every page and form of them is 404 for him.
    for page in ["/keypairs", "/volumes", "/addresses"] {
        let (s, body) = bob.get(page).await;
        assert_eq!(s, 200);
        assert!(!body.contains("alice-key") && !body.contains(&vol) && !body.contains(&addr), "{page}: {body}");
    }
    for path in [
        "/keypairs/alice-key/delete".to_string(),
        format!("/volumes/sb/{vol}/attach"),
        format!("/volumes/sb/{vol}/delete"),
        format!("/addresses/sb/{addr}/associate"),
        format!("/addresses/sb/{addr}/release"),
    ] {
        let (s, body) = bob.get(&path).await;
        assert_eq!(s, 404, "GET {path}: {body}");
        assert!(!body.contains(&vol) || path.contains(&vol), "{body}");
    }
    for (path, fields) in [
        ("/keypairs/alice-key/delete".to_string(), vec![]),
        (format!("/volumes/sb/{vol}/attach"), vec![("vm", bob_vm.as_str()), ("device", "/dev/sdf")]),
        (format!("/volumes/sb/{vol}/detach"), vec![]),
        (format!("/volumes/sb/{vol}/delete"), vec![]),
        (format!("/addresses/sb/{addr}/associate"), vec![("vm", bob_vm.as_str())]),
        (format!("/addresses/sb/{addr}/disassociate"), vec![]),
        (format!("/addresses/sb/{addr}/release"), vec![]),
    ] {
        let (s, body) = bob.post(&path, &fields).await;
        assert_eq!(s, 404, "POST {path}: {body}");
    }
    // Nor can alice attach hers to bob's VM: his VM is not found for her.
    let (s, page) = alice.post(&format!("/volumes/sb/{vol}/attach"), &[("vm", &bob_vm), ("device", "/dev/sdf")]).await;
    assert!(s == 404 || s == 400, "{s}");
    assert!(field_errors(&page).iter().any(|e| e.contains("No such VM")), "{page}");
    let (s, page) = alice.post(&format!("/addresses/sb/{addr}/associate"), &[("vm", &bob_vm)]).await;
    assert!(s == 404 || s == 400, "{s}");
    assert!(field_errors(&page).iter().any(|e| e.contains("No such VM")), "{page}");
    let after = format!(
        "{:?} {:?} {:?}",
        app.broker.key_pairs.list(&actor).await.unwrap(),
        app.broker.provisioning.volumes(&actor, &sb).await.unwrap().iter().map(|v| (&v.volume_id, &v.attachment)).collect::<Vec<_>>(),
        app.broker.provisioning.addresses(&actor, &sb).await.unwrap()
    );
    assert_eq!(before, after, "nothing of alice's changed");
    let _ = vm;
});

app_test!(viewers_see_the_pages_without_forms, |app: common::TestApp| async move {
    let admin = setup(&app, &["alice", "carol"]).await;
    let alice_token = app.token("alice", "alice-password").await;
    let (s, b) = app.call(reqwest::Method::POST, "/api/v1/projects", &alice_token, Some(json!({"name": "team-a"}))).await;
    assert_eq!(s, 201, "{b}");
    let (s, b) =
        app.call(reqwest::Method::PUT, "/api/v1/projects/team-a/members/carol", &alice_token, Some(json!({"role": "viewer"}))).await;
    assert_eq!(s, 200, "{b}");
    let _ = admin;
    let alice = Ui::sign_in(&app, "alice", "alice-password").await;
    let (s, _) = alice.post("/project", &[("project", "team-a"), ("back", "/keypairs")]).await;
    assert_eq!(s, 200);
    alice.post("/keypairs", &[("name", "team-key")]).await;
    let carol = Ui::sign_in(&app, "carol", "carol-password").await;
    carol.post("/project", &[("project", "team-a"), ("back", "/keypairs")]).await;
    let (s, body) = carol.get("/keypairs").await;
    assert_eq!(s, 200);
    assert!(body.contains("data-keypair=\"team-key\"") && body.contains("id=\"viewer-note\""), "{body}");
    assert!(!body.contains("id=\"create-keypair-form\"") && !body.contains("/keypairs/team-key/delete"), "{body}");
    for page in ["/volumes", "/addresses"] {
        let (s, body) = carol.get(page).await;
        assert_eq!(s, 200);
        assert!(
            body.contains("id=\"viewer-note\"")
                && !body.contains("method=\"post\" action=\"/volumes\"")
                && !body.contains("id=\"allocate-form\""),
            "{body}"
        );
    }
    // A forged form or confirmation: 403, nothing made or deleted.
    assert_eq!(carol.get("/keypairs/team-key/delete").await.0, 403);
    assert_eq!(carol.post("/keypairs/team-key/delete", &[]).await.0, 403);
    assert_eq!(carol.post("/keypairs", &[("name", "carols")]).await.0, 403);
    assert_eq!(carol.post("/volumes", &[("instance", "sb"), ("size", "1")]).await.0, 403);
    assert_eq!(carol.post("/addresses", &[("instance", "sb")]).await.0, 403);
    let team = in_project("team-a");
    let names: Vec<String> = app.broker.key_pairs.list(&team).await.unwrap().into_iter().map(|k| k.name).collect();
    assert_eq!(names, vec!["team-key".to_string()]);
});

// Every destructive form of the other pages asks first: the page links to
// a confirmation (GET, nothing changes), whose form does it.
app_test!(every_destructive_action_asks_first, |app: common::TestApp| async move {
    let admin = setup(&app, &["alice", "bob"]).await;
    let sup = Ui::sign_in(&app, "super", common::SUPER_PW).await;
    let alice_token = app.token("alice", "alice-password").await;
    let alice = Ui::sign_in(&app, "alice", "alice-password").await;
    let user = |name: &str| {
        let admin = admin.clone();
        let name = name.to_string();
        let app = &app;
        async move { app.call(reqwest::Method::GET, &format!("/api/v1/users/{name}"), &admin, None).await.1 }
    };

    // Make admin: asked first; the GET changes nothing.
    let (_, page) = sup.get("/admin/users/bob").await;
    assert!(page.contains("href=\"/admin/users/bob/admin\"") && page.contains("href=\"/admin/users/bob/disabled\""), "{page}");
    assert!(page.contains("href=\"/admin/users/bob/tokens/revoke\""), "{page}");
    let (s, confirm) = sup.get("/admin/users/bob/admin").await;
    assert_eq!(s, 200);
    assert!(confirm.contains("Make bob an admin?"), "{confirm}");
    assert_eq!(user("bob").await["is_admin"], false);
    let (s, _) = sup.confirm("/admin/users/bob/admin").await;
    assert_eq!(s, 200);
    assert_eq!(user("bob").await["is_admin"], true);
    // And back: the same page asks to remove it.
    let (_, confirm) = sup.get("/admin/users/bob/admin").await;
    assert!(confirm.contains("Remove the admin role of bob?"), "{confirm}");
    sup.confirm("/admin/users/bob/admin").await;
    assert_eq!(user("bob").await["is_admin"], false);

    // Revoke all tokens.
    let bob_token = app.token("bob", "bob-password").await;
    let whoami = |t: String| {
        let app = &app;
        async move { app.call(reqwest::Method::GET, "/api/v1/users/bob", &t, None).await.0 }
    };
    assert_eq!(sup.get("/admin/users/bob/tokens/revoke").await.0, 200);
    assert_eq!(whoami(bob_token.clone()).await, 200, "the GET revokes nothing");
    sup.confirm("/admin/users/bob/tokens/revoke").await;
    assert_eq!(whoami(bob_token.clone()).await, 401);

    // Disable a user.
    let (s, confirm) = sup.get("/admin/users/bob/disabled").await;
    assert_eq!(s, 200);
    assert!(confirm.contains("Disable bob?"), "{confirm}");
    assert!(user("bob").await["disabled_at"].is_null());
    sup.confirm("/admin/users/bob/disabled").await;
    assert!(!user("bob").await["disabled_at"].is_null());

    // Delete an access key (the user's own, and an admin's of another user).
    let (s, k) = app.call(reqwest::Method::POST, "/api/v1/users/alice/access-keys", &alice_token, None).await;
    assert_eq!(s, 201, "{k}");
    let key = k["access_key_id"].as_str().unwrap().to_string();
    let keys = || {
        let app = &app;
        let t = alice_token.clone();
        async move { app.call(reqwest::Method::GET, "/api/v1/users/alice/access-keys", &t, None).await.1.to_string() }
    };
    let (_, profile) = alice.get("/profile").await;
    assert!(profile.contains(&format!("href=\"/profile/access-keys/{key}/delete\"")), "{profile}");
    assert_eq!(alice.get(&format!("/profile/access-keys/{key}/delete")).await.0, 200);
    assert!(keys().await.contains(&key));
    alice.confirm(&format!("/profile/access-keys/{key}/delete")).await;
    assert!(!keys().await.contains(&key));
    let (_, k) = app.call(reqwest::Method::POST, "/api/v1/users/alice/access-keys", &alice_token, None).await;
    let key = k["access_key_id"].as_str().unwrap().to_string();
    assert_eq!(sup.get(&format!("/admin/users/alice/access-keys/{key}/delete")).await.0, 200);
    assert!(keys().await.contains(&key));
    sup.confirm(&format!("/admin/users/alice/access-keys/{key}/delete")).await;
    assert!(!keys().await.contains(&key));
    // Someone else's key: 404 on the confirmation too.
    let (_, k) = app.call(reqwest::Method::POST, "/api/v1/users/alice/access-keys", &alice_token, None).await;
    let key = k["access_key_id"].as_str().unwrap().to_string();
    let bob2 = app.user(&admin, "bob2").await;
    let _ = bob2;
    let bob2 = Ui::sign_in(&app, "bob2", "bob2-password").await;
    assert_eq!(bob2.get(&format!("/profile/access-keys/{key}/delete")).await.0, 404);
    assert!(keys().await.contains(&key));

    // Delete a credential (the user's own).
    let creds = json!({"access_key_id": "AKIAALICE0000000", "secret_access_key": "alice-cloud-secret"});
    assert_eq!(app.call(reqwest::Method::PUT, "/api/v1/users/alice/credentials/sb2", &alice_token, Some(creds)).await.0, 200);
    let (_, page) = alice.get("/credentials").await;
    assert!(page.contains("href=\"/credentials/sb2/delete\""), "{page}");
    assert_eq!(alice.get("/credentials/sb2/delete").await.0, 200);
    let stored = || {
        let app = &app;
        let t = alice_token.clone();
        async move { app.call(reqwest::Method::GET, "/api/v1/users/alice/credentials", &t, None).await.1.to_string() }
    };
    assert!(stored().await.contains("sb2"));
    alice.confirm("/credentials/sb2/delete").await;
    assert!(!stored().await.contains("\"sb2\""), "{}", stored().await);
    assert_eq!(alice.get("/credentials/sb2/delete").await.0, 404, "nothing left to delete");

    // Revoke one token (the profile's).
    let (s, b) = app.call(reqwest::Method::GET, "/api/v1/tokens", &alice_token, None).await;
    assert_eq!(s, 200, "{b}");
    let tid = b["tokens"][0]["id"].as_str().unwrap().to_string();
    assert_eq!(alice.get(&format!("/profile/tokens/{tid}/revoke")).await.0, 200);
    assert_eq!(app.call(reqwest::Method::GET, "/api/v1/tokens", &alice_token, None).await.0, 200, "the GET revokes nothing");

    // Delete an image.
    let (_, page) = sup.get("/admin/images/linux").await;
    assert!(page.contains("href=\"/admin/images/linux/delete\""), "{page}");
    assert_eq!(sup.get("/admin/images/linux/delete").await.0, 200);
    assert_eq!(app.call(reqwest::Method::GET, "/api/v1/images/linux", &admin, None).await.0, 200);
    sup.confirm("/admin/images/linux/delete").await;
    assert_eq!(app.call(reqwest::Method::GET, "/api/v1/images/linux", &admin, None).await.0, 404);

    // Users never reach an admin confirmation.
    for path in ["/admin/users/bob/admin", "/admin/users/bob/disabled", "/admin/users/bob/tokens/revoke", "/admin/images/x/delete"] {
        let (s, _) = alice.get(path).await;
        assert!(matches!(s, 403 | 404), "{path}: {s}");
    }
});

app_test!(security_groups_are_created_given_rules_and_deleted, |app: common::TestApp| async move {
    setup(&app, &["alice", "bob"]).await;
    let alice = Ui::sign_in(&app, "alice", "alice-password").await;
    let (s, body) = alice.get("/security-groups").await;
    assert_eq!(s, 200);
    assert!(body.contains("href=\"/security-groups\" aria-current=\"page\"") && body.contains("No security groups yet."), "{body}");

    // Missing fields: said next to them, what was typed kept.
    let (s, body) = alice.post("/security-groups", &[("instance", "sb"), ("name", "web"), ("description", "")]).await;
    assert_eq!(s, 400);
    assert_eq!(field_errors(&body).len(), 1, "{body}");
    assert!(body.contains("value=\"web\"") && body.contains("<option value=\"sb\" selected>"), "{body}");
    // Create.
    let (s, to) = alice.post_no_follow("/security-groups", &[("instance", "sb"), ("name", "web"), ("description", "web servers")]).await;
    assert_eq!((s, to.as_str()), (303, "/security-groups"));
    let (_, body) = alice.get("/security-groups").await;
    let id = between(&flash(&body), "Security group ", " (").to_string();
    assert!(id.starts_with("sg-"), "{body}");
    let r = row(&body, "group", &id).unwrap();
    assert!(r.contains(">web<") && r.contains("<code>vpc-"), "{r}");
    // The cloud refuses a taken name: the form's message, the input kept.
    let (s, body) = alice.post("/security-groups", &[("instance", "sb"), ("name", "web"), ("description", "again")]).await;
    assert_eq!(s, 409);
    assert!(form_error(&body).contains("No security group was created"), "{body}");
    assert!(body.contains("value=\"again\""), "{body}");

    // A rule: added; a bad CIDR is the form's message with what was typed kept; a duplicate too.
    let group = format!("sb/{id}");
    let rule = |cidr: &'static str| [("protocol", "tcp"), ("from_port", "22"), ("to_port", ""), ("cidr", cidr)];
    let mut fields = rule("10.0.0.0/8").to_vec();
    fields.push(("group", &group));
    let (s, to) = alice.post_no_follow("/security-groups/rules", &fields).await;
    assert_eq!((s, to.as_str()), (303, "/security-groups"));
    let (_, body) = alice.get("/security-groups").await;
    let r = row(&body, "group", &id).unwrap();
    assert!(r.contains("tcp 22 from 10.0.0.0/8"), "{r}");
    let (s, body) = alice.post("/security-groups/rules", &fields).await;
    assert_eq!(s, 409);
    assert!(form_error(&body).contains("No rule was added") && form_error(&body).contains("already exists"), "{body}");
    let mut bad = rule("10.0.0.300/8").to_vec();
    bad.push(("group", &group));
    let (s, body) = alice.post("/security-groups/rules", &bad).await;
    assert_eq!(s, 400);
    assert!(form_error(&body).contains("No rule was added"), "{body}");
    assert!(body.contains("value=\"10.0.0.300/8\"") && body.contains("value=\"22\""), "{body}");
    assert!(body.contains(&format!("<option value=\"sb/{id}\" selected>")), "{body}");

    // Bob finds none of it.
    let bob = Ui::sign_in(&app, "bob", "bob-password").await;
    let (_, body) = bob.get("/security-groups").await;
    assert!(!body.contains(&id), "{body}");
    assert_eq!(bob.get(&format!("/security-groups/sb/{id}/delete")).await.0, 404);
    assert_eq!(bob.post(&format!("/security-groups/sb/{id}/delete"), &[]).await.0, 404);
    assert_eq!(bob.post(&format!("/security-groups/sb/{id}/rules/remove"), &rule("10.0.0.0/8")).await.0, 404);
    let mut theirs = rule("0.0.0.0/0").to_vec();
    theirs.push(("group", &group));
    assert_eq!(bob.post("/security-groups/rules", &theirs).await.0, 404);

    // Remove the rule, then delete the group behind its confirmation.
    let (s, to) = alice.post_no_follow(&format!("/security-groups/sb/{id}/rules/remove"), &rule("10.0.0.0/8")).await;
    assert_eq!((s, to.as_str()), (303, "/security-groups"));
    let (_, body) = alice.get("/security-groups").await;
    assert!(!row(&body, "group", &id).unwrap().contains("10.0.0.0/8"), "{body}");
    let (s, page) = alice.get(&format!("/security-groups/sb/{id}/delete")).await;
    assert_eq!(s, 200);
    assert!(page.contains(&format!("Delete security group {id}?")), "{page}");
    let g = app.broker.provisioning.security_groups(&in_project("alice"), &InstanceName::parse("sb").unwrap()).await.unwrap();
    assert_eq!(g.len(), 1, "the confirmation page changes nothing");
    let (s, body) = alice.confirm(&format!("/security-groups/sb/{id}/delete")).await;
    assert_eq!(s, 200, "{body}");
    assert!(flash(&body).contains(&format!("Security group {id} deleted")) && row(&body, "group", &id).is_none(), "{body}");
    assert!(app.broker.provisioning.security_groups(&in_project("alice"), &InstanceName::parse("sb").unwrap()).await.unwrap().is_empty());
});
