//! Images in the UI (issue 22), on SQLite and PostgreSQL:
//! - in a real headless Chromium (see `common/browser.rs`; screenshots in
//!   the sub-folders `images-sqlite` and `images-postgres`): alice makes an
//!   image of her sandbox VM with "Create image" on its page, each refusal
//!   (a malformed name, a short one, the cloud's, a taken name, the
//!   project's limit, a VM no longer running) a form message with what was
//!   typed kept; the Images page names the new image (owner, project,
//!   parent, instances); she shares it with bob (an unknown user is a form
//!   message next to the field); bob sees it on his Images page and
//!   launches it through its Launch link, then makes an image of that VM;
//!   alice stops sharing (bob no longer sees it), her Deregister is refused
//!   while bob's image names hers as parent, then goes through;
//! - through the real server without a browser: a viewer of a team
//!   project sees the team's image without any form, and every forged form
//!   is refused (403) with nothing changed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::zombie_processes)]

#[path = "common/browser.rs"]
mod browser;
mod common;

use browser::Browser;
use cloudbroker_core::domain::{ImageName, PageRequest, VmId, VmStatus};
use cloudbroker_core::Actor;
use common::ui::{between, unescape, Ui};
use reqwest::Method;
use serde_json::json;
use std::time::Duration;

/// The admin's token, the public image `linux` on sb, and users `names`.
async fn setup(app: &common::TestApp, names: &[&str]) -> String {
    let admin = app.token("super", common::SUPER_PW).await;
    let image = json!({"name": "linux", "description": "Debian 12", "mappings": {"sb": {"image_id": "ami-sandbox-debian-12"}}});
    let (s, b) = app.call(Method::POST, "/api/v1/images", &admin, Some(image)).await;
    assert_eq!(s, 201, "{b}");
    for n in names {
        app.user(&admin, n).await;
    }
    admin
}

/// Waits (running the reconciler) until VM `id` is in `state`.
async fn until(app: &common::TestApp, id: &VmId, state: VmStatus) {
    let sys = Actor::system();
    for _ in 0..100 {
        app.broker.provisioning.reconcile("ui-images").await.unwrap();
        if app.broker.provisioning.get(&sys, id).await.unwrap().status == state {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{id} never became {state}");
}

/// Launches VM `name` from `image` on sb with `token` and waits until it runs.
async fn running_vm(app: &common::TestApp, token: &str, image: &str, name: &str) -> VmId {
    let body = json!({"instance": "sb", "image": image, "name": name});
    let (s, b) = app.call(Method::POST, "/api/v1/vms", token, Some(body)).await;
    assert_eq!(s, 201, "{b}");
    let id = VmId::parse(b["vms"][0]["id"].as_str().unwrap()).unwrap();
    until(app, &id, VmStatus::Running).await;
    id
}

async fn images_in_a_real_browser(app: common::TestApp, sub: &str) {
    let Some(mut b) = Browser::start_in(&app.base, sub).await else { return };
    let admin = setup(&app, &["alice", "bob"]).await;
    let _ = admin;
    let alice_token = app.token("alice", "alice-password").await;
    let bob_token = app.token("bob", "bob-password").await;
    let vm = running_vm(&app, &alice_token, "linux", "web").await;

    // alice: the VM's page offers "Create image".
    b.sign_in("alice", "alice-password").await;
    b.goto(&format!("/vms/{vm}"), "vm-page").await;
    assert_eq!(b.count("#create-image-form").await, 1, "{}", b.source().await);
    // A malformed name: next to the field, everything typed kept.
    b.fill("#image-name", "Web Golden!").await;
    b.fill("#image-description", "Web server").await;
    b.click("#image-no-reboot").await;
    b.submit("#create-image-submit", "image-bad-name").await;
    assert!(b.text("#image-name-error").await.contains("image name 'Web Golden!' is invalid"), "{}", b.source().await);
    assert_eq!(b.value("#image-name").await, "Web Golden!");
    assert_eq!(b.value("#image-description").await, "Web server");
    assert!(b.checked("#image-no-reboot").await, "the box stays ticked");
    // Too short for the cloud.
    b.fill("#image-name", "ab").await;
    b.submit("#create-image-submit", "image-short-name").await;
    assert!(b.text("#image-name-error").await.contains("3 to 128 characters"), "{}", b.source().await);
    // The cloud's refusal (the sandbox takes descriptions of at most 255 characters, as EC2).
    let long = "d".repeat(300);
    b.fill("#image-name", "web-golden").await;
    b.fill("#image-description", &long).await;
    b.submit("#create-image-submit", "image-cloud-refused").await;
    let e = b.text("#image-form-error").await;
    assert!(e.starts_with("No image was made.") && e.contains("255 characters"), "{e}");
    assert_eq!(b.value("#image-name").await, "web-golden");
    assert_eq!(b.value("#image-description").await, long);
    assert!(app.broker.images.get(&ImageName::parse("web-golden").unwrap()).await.is_err(), "nothing recorded");
    // Made: the answer names it and leads to it on the Images page.
    b.fill("#image-description", "Web server").await;
    b.submit("#create-image-submit", "image-made").await;
    let f = b.text("#flash").await;
    assert!(f.starts_with(&format!("Image web-golden made from VM {vm} on sb (ami-")) && f.ends_with("private to project alice"), "{f}");
    assert!(b.path().await.starts_with("/images?new=web-golden"), "{}", b.path().await);
    let row = b.text("#image-web-golden").await;
    assert!(row.contains("new") && row.contains("Web server") && row.contains("project alice, made by alice"), "{row}");
    assert_eq!(b.text("#image-web-golden .image-parent").await, "linux");
    assert_eq!(b.text("#image-web-golden .image-on").await, "sb");
    assert_eq!(b.count("#image-web-golden.new-image").await, 1);
    assert_eq!(b.text("#image-linux .image-whose").await, "public the broker's");
    assert_eq!(b.count("#deregister-linux").await + b.count("#share-linux").await, 0, "the broker's image is not hers to change");
    assert!(b.source().await.contains("href=\"/images\" aria-current=\"page\""), "in the navigation");
    let made = app.broker.images.get(&ImageName::parse("web-golden").unwrap()).await.unwrap();
    assert_eq!((made.owner.unwrap().as_str(), made.project.unwrap().as_str()), ("alice", "alice"));

    // The name again: taken, said next to it.
    b.goto(&format!("/vms/{vm}"), "vm-page-again").await;
    b.fill("#image-name", "web-golden").await;
    b.submit("#create-image-submit", "image-name-taken").await;
    assert!(b.text("#image-name-error").await.contains("image 'web-golden' already exists"), "{}", b.source().await);
    // The project's limit of private images (the others put straight into the store).
    let store = app.broker.store();
    let limit = cloudbroker_core::limits::MAX_PRIVATE_IMAGES;
    for n in 1..limit {
        let row = cloudbroker_store::images::ImageRow {
            name: format!("filler-{n}"),
            description: String::new(),
            os: String::new(),
            parent: None,
            mappings: Default::default(),
            owner: Some("alice".into()),
            project: Some("alice".into()),
        };
        store.put_image(&row, true).await.unwrap();
    }
    b.fill("#image-name", "web-extra").await;
    b.submit("#create-image-submit", "image-over-limit").await;
    let e = b.text("#image-form-error").await;
    assert!(e.starts_with("No image was made.") && e.contains(&limit.to_string()), "{e}");
    assert_eq!(b.value("#image-name").await, "web-extra");
    for n in 1..limit {
        store.delete_image(&format!("filler-{n}")).await.unwrap();
    }
    // A VM no longer running: the page was open; the refusal says why.
    let other = running_vm(&app, &alice_token, "linux", "short-lived").await;
    b.goto(&format!("/vms/{other}"), "vm-page-short-lived").await;
    let (s, body) = app.call(Method::POST, &format!("/api/v1/vms/{other}/terminate"), &alice_token, None).await;
    assert_eq!(s, 200, "{body}");
    until(&app, &other, VmStatus::Terminated).await;
    b.fill("#image-name", "web-late").await;
    b.submit("#create-image-submit", "image-vm-terminated").await;
    let e = b.text("#image-form-error").await;
    assert!(e.contains("is terminated: an image is made of a running or stopped VM"), "{e}");
    assert_eq!(b.value("#image-name").await, "web-late");
    b.goto(&format!("/vms/{other}"), "vm-page-terminated").await;
    assert_eq!(b.count("#create-image-form").await, 0, "no form for an ended VM");
    assert!(b.text("#vm-create-image-note").await.contains("running or stopped"));

    // Sharing: an unknown user is said next to the field, then bob.
    b.goto("/images", "images").await;
    assert!(b.text("#image-web-golden .image-shares").await.contains("nobody outside the project"));
    b.fill("#share-web-golden-user", "nobody").await;
    b.submit("#share-web-golden-submit", "share-unknown-user").await;
    assert_eq!(b.text("#share-web-golden-error").await, "there is no user named 'nobody'");
    assert_eq!(b.value("#share-web-golden-user").await, "nobody");
    b.fill("#share-web-golden-user", "bob").await;
    b.submit("#share-web-golden-submit", "shared-with-bob").await;
    assert!(b.text("#flash").await.contains("Image web-golden is shared with bob"));
    assert_eq!(b.count("#image-web-golden li.share[data-user='bob']").await, 1);
    b.sign_out().await;

    // bob sees it, shared with him, and launches it through its Launch link.
    b.sign_in("bob", "bob-password").await;
    b.goto("/images", "bob-images").await;
    assert_eq!(b.text("#image-web-golden .image-whose").await, "shared with you project alice, made by alice");
    assert_eq!(b.count("#deregister-web-golden").await + b.count("#share-web-golden").await, 0, "bob launches it, no more");
    b.submit("#launch-web-golden-sb", "bob-launch-form").await;
    assert_eq!(b.value("#launch-image").await, "web-golden", "the launch form starts with the image");
    assert_eq!(b.value("#launch-instance").await, "sb");
    b.fill("#launch-name", "from-golden").await;
    b.submit("#launch-submit", "bob-launched").await;
    assert!(b.text("#flash").await.contains("Launched 1 VM(s)"), "{}", b.source().await);
    let q = cloudbroker_core::provisioning::VmQuery { user: Some("bob".parse().unwrap()), ..Default::default() };
    let bobs = app.broker.provisioning.list(&Actor::system(), q, PageRequest::default()).await.unwrap().items;
    assert_eq!(bobs.len(), 1);
    assert_eq!((bobs[0].image.as_str(), bobs[0].image_id.as_str()), ("web-golden", made.mappings["sb"].image_id.as_str()));
    // bob makes an image of that VM: its parent is alice's image.
    until(&app, &bobs[0].id, VmStatus::Running).await;
    let (s, body) =
        app.call(Method::POST, &format!("/api/v1/vms/{}/image", bobs[0].id), &bob_token, Some(json!({"name": "bob-child"}))).await;
    assert_eq!(s, 201, "{body}");
    b.goto("/images", "bob-images-with-child").await;
    assert_eq!(b.text("#image-bob-child .image-parent").await, "web-golden");
    b.sign_out().await;

    // alice stops sharing; her Deregister is refused while bob's image names hers as parent.
    b.sign_in("alice", "alice-password").await;
    b.goto("/images", "alice-images").await;
    b.submit("#unshare-web-golden-bob", "unshared").await;
    assert!(b.text("#flash").await.contains("Image web-golden is no longer shared with bob"));
    assert_eq!(b.count("#image-web-golden li.share").await, 0);
    let bob = Ui::sign_in(&app, "bob", "bob-password").await;
    let (s, page) = bob.get("/images").await;
    assert!(s == 200 && !page.contains("id=\"image-web-golden\""), "bob no longer sees it: {page}");
    b.submit("#deregister-web-golden", "deregister-confirm-refusing").await;
    let asks = b.text(".confirm").await;
    // bob's image is another project's: alice is told there is one, not its name.
    assert!(asks.contains("The broker refuses for now: image 'web-golden' is the parent of an image of another project"), "{asks}");
    assert!(!asks.contains("bob-child"), "{asks}");
    b.submit("#confirm-button", "deregister-refused").await;
    let e = b.text("#form-error").await;
    assert!(e.contains("Image web-golden was not deregistered. image 'web-golden' is the parent of an image of another project"), "{e}");
    assert_eq!(b.count("#image-web-golden").await, 1, "still there");
    // Once bob's image is gone it goes.
    let (s, page) = bob.get("/images/bob-child/deregister").await;
    assert_eq!(s, 200, "{page}");
    let (s, page) = bob.confirm("/images/bob-child/deregister").await;
    assert!(s == 200 && unescape(&page).contains("Image bob-child deregistered"), "{page}");
    b.goto("/images", "alice-images-again").await;
    b.submit("#deregister-web-golden", "deregister-confirm").await;
    b.submit("#confirm-button", "deregistered").await;
    assert!(b.text("#flash").await.contains("Image web-golden deregistered"));
    assert_eq!(b.count("#image-web-golden").await, 0);
    assert!(app.broker.images.get(&ImageName::parse("web-golden").unwrap()).await.is_err());
    b.quit().await;
}

mod in_a_real_browser {
    use super::*;
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn sqlite() {
        images_in_a_real_browser(common::TestApp::sqlite().await, "images-sqlite").await;
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn postgres() {
        if let Some(app) = common::TestApp::postgres().await {
            images_in_a_real_browser(app, "images-postgres").await;
        }
    }
}

app_test!(a_viewer_sees_the_team_images_and_changes_nothing, |app: common::TestApp| async move {
    let admin = setup(&app, &["olga", "vic", "bob"]).await;
    let _ = admin;
    let olga_token = app.token("olga", "olga-password").await;
    let (s, body) = app.call(Method::POST, "/api/v1/projects", &olga_token, Some(json!({"name": "imgteam"}))).await;
    assert_eq!(s, 201, "{body}");
    let (s, body) = app.call(Method::PUT, "/api/v1/projects/imgteam/members/vic", &olga_token, Some(json!({"role": "viewer"}))).await;
    assert_eq!(s, 200, "{body}");
    // olga makes an image of a team VM from its page.
    let olga = Ui::sign_in(&app, "olga", "olga-password").await;
    olga.post("/project", &[("project", "imgteam")]).await;
    let (s, body) = olga.post("/vms", &[("instance", "sb"), ("image", "linux"), ("name", "team-web")]).await;
    assert!(s == 200 && body.contains("Launched 1 VM(s)"), "{body}");
    let q = cloudbroker_core::provisioning::VmQuery { project: Some("imgteam".parse().unwrap()), ..Default::default() };
    let vm = app.broker.provisioning.list(&Actor::system(), q, PageRequest::default()).await.unwrap().items.remove(0).id;
    until(&app, &vm, VmStatus::Running).await;
    let (s, to) = olga.post_no_follow(&format!("/vms/{vm}/image"), &[("name", "team-golden"), ("description", "")]).await;
    assert_eq!((s, to.as_str()), (303, "/images?new=team-golden#image-team-golden"));
    let (s, _) = olga.post("/images/team-golden/share", &[("user", "bob")]).await;
    assert_eq!(s, 200);

    // vic, a viewer: sees it and who it is shared with, without any form or link to change it.
    let vic = Ui::sign_in(&app, "vic", "vic-password").await;
    vic.post("/project", &[("project", "imgteam")]).await;
    let (s, page) = vic.get("/images").await;
    assert_eq!(s, 200, "{page}");
    let row = between(&page, "id=\"image-team-golden\"", "</tr>");
    assert!(row.contains("project imgteam, made by olga") && row.contains("data-user=\"bob\""), "{row}");
    assert!(!row.contains("<form") && !row.contains("Launch on") && !row.contains("Deregister"), "{row}");
    assert!(page.contains("id=\"viewer-note\""), "{page}");
    let (s, page) = vic.get(&format!("/vms/{vm}")).await;
    assert!(s == 200 && !page.contains("create-image-form"), "no Create image for a viewer: {page}");
    // Forged forms: 403, nothing changed.
    let name = ImageName::parse("team-golden").unwrap();
    for (path, fields) in [
        (format!("/vms/{vm}/image"), vec![("name", "vic-image")]),
        ("/images/team-golden/share".to_string(), vec![("user", "vic")]),
        ("/images/team-golden/unshare".to_string(), vec![("user", "bob")]),
        ("/images/team-golden/deregister".to_string(), vec![]),
    ] {
        let (s, page) = vic.post(&path, &fields).await;
        assert_eq!(s, 403, "{path}: {page}");
    }
    let (s, _) = vic.get("/images/team-golden/deregister").await;
    assert_eq!(s, 403, "no confirmation for a viewer");
    // olga's forms without the session's CSRF token: refused, nothing changed.
    for (path, fields) in [
        (format!("/vms/{vm}/image"), vec![("name", "no-token")]),
        ("/images/team-golden/share".to_string(), vec![("user", "vic")]),
        ("/images/team-golden/unshare".to_string(), vec![("user", "bob")]),
        ("/images/team-golden/deregister".to_string(), vec![]),
    ] {
        let r = olga.http.post(format!("{}{path}", app.base)).form(&fields).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 403, "{path} without the CSRF token");
    }
    assert!(app.broker.images.get(&ImageName::parse("no-token").unwrap()).await.is_err());
    let img = app.broker.images.get(&name).await.unwrap();
    assert_eq!(img.shared_with.iter().map(|u| u.as_str()).collect::<Vec<_>>(), ["bob"]);
    assert!(app.broker.images.get(&ImageName::parse("vic-image").unwrap()).await.is_err());
    // Another project's image is no image of anyone else's Images page; its forms are "not found".
    let bob = Ui::sign_in(&app, "bob", "bob-password").await;
    let (_, page) = bob.get("/images").await;
    assert!(page.contains("id=\"image-team-golden\" data-kind=\"shared\""), "{page}");
    let (s, _) = bob.post("/images/team-golden/share", &[("user", "vic")]).await;
    assert_eq!(s, 403, "shared with bob, not his to share");
    let (s, _) = bob.get("/images/team-golden/deregister").await;
    assert_eq!(s, 403);
});
