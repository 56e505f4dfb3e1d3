//! The VM table and the VM page of the web console (issue 23, "Missing"),
//! through the real server without a browser: sortable columns (links in
//! the headers, the current one marked), terminated and failed hidden by
//! default with a "show all", "1–25 of 60" with Previous and Next (the sort
//! and filters kept), bulk stop/start/terminate through one confirmation
//! page acting through the provisioning service (each VM's outcome said,
//! a partial failure too), a bulk form naming another user's VM refused
//! whole with nothing done; the VM page's facts (cloud id, image ids, type,
//! credential, history with reasons, SSH line, actions); the launch form
//! refusing an empty name with what was typed kept. On SQLite and PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::zombie_processes)]

mod common;

use cloudbroker_core::domain::VmStatus;
use cloudbroker_core::Actor;
use common::ui::{between, Ui};
use reqwest::Method;

/// The ids of the table's rows, in order.
fn rows(body: &str) -> Vec<String> {
    body.split("<tr id=\"vm-").skip(1).map(|s| s.split('"').next().unwrap().to_string()).collect()
}

/// The names of the table's rows, in order.
fn names(body: &str) -> Vec<String> {
    body.split("class=\"vm-link\">").skip(1).map(|s| s.split('<').next().unwrap().to_string()).collect()
}

/// The `href` of the link with id `id`, unescaped.
fn link(body: &str, id: &str) -> Option<String> {
    let at = body.find(&format!("id=\"{id}\""))?;
    let open = body[..at].rfind("<a href=\"")?;
    Some(between(&body[open..], "<a href=\"", "\"").replace("&amp;", "&"))
}

async fn vm(app: &common::TestApp, id: &str) -> cloudbroker_core::provisioning::Vm {
    app.broker.provisioning.get(&Actor::system(), &id.parse().unwrap()).await.unwrap()
}

/// Launches `count` VMs named `name` for the token's user on `sb`; their ids.
async fn launch(app: &common::TestApp, token: &str, name: &str, count: u32) -> Vec<String> {
    let (s, b) = app
        .call(Method::POST, "/api/v1/vms", token, Some(serde_json::json!({"instance": "sb", "image": "deb", "count": count, "name": name})))
        .await;
    assert_eq!(s, 201, "{b}");
    b["vms"].as_array().unwrap().iter().map(|v| v["id"].as_str().unwrap().to_string()).collect()
}

/// The admin's token, with the native image `deb` on `sb`.
async fn admin(app: &common::TestApp) -> String {
    let admin = app.token("super", common::SUPER_PW).await;
    let image = serde_json::json!({"name": "deb", "mappings": {"sb": {"image_id": "ami-sandbox-debian-12"}}});
    let (s, b) = app.call(Method::POST, "/api/v1/images", &admin, Some(image)).await;
    assert_eq!(s, 201, "{b}");
    admin
}

/// Brings every VM to the state its cloud reports (pending → running, shutting-down → terminated).
async fn settle(app: &common::TestApp) {
    for _ in 0..3 {
        app.broker.provisioning.reconcile("test").await.unwrap();
    }
}

app_test!(the_table_sorts_filters_and_pages, |app: common::TestApp| async move {
    let admin = admin(&app).await;
    let alice = app.user(&admin, "alice").await;
    let mut ids = Vec::new();
    for name in ["mid", "zed", "alpha"] {
        ids.extend(launch(&app, &alice, name, 20).await);
    }
    settle(&app).await;
    let ui = Ui::sign_in(&app, "alice", "alice-password").await;

    // Pages: "1–25 of 60", Next keeps going, Previous goes back.
    let (s, first) = ui.get("/vms").await;
    assert_eq!(s, 200);
    assert_eq!(rows(&first).len(), 25);
    assert!(first.contains("id=\"vm-range\">1–25 of 60<"), "{first}");
    assert!(link(&first, "page-prev").is_none());
    let next = link(&first, "page-next").expect("a Next link");
    let (_, second) = ui.get(&next).await;
    assert!(second.contains("id=\"vm-range\">26–50 of 60<"), "{second}");
    let (_, third) = ui.get(&link(&second, "page-next").unwrap()).await;
    assert!(third.contains("id=\"vm-range\">51–60 of 60<"), "{third}");
    assert_eq!(rows(&third).len(), 10);
    assert!(link(&third, "page-next").is_none() && !third.contains("rel=\"next\""));
    let mut all: Vec<String> = [rows(&first), rows(&second), rows(&third)].concat();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 60, "every VM once over the three pages");
    let (_, back) = ui.get(&link(&third, "page-prev").unwrap()).await;
    assert_eq!(rows(&back), rows(&second), "Previous is the page before");

    // Sorted by name: the header links there, the current column is marked, the pages keep the order.
    let name_link = between(&first, "data-sort=\"name\"><a href=\"", "\"").replace("&amp;", "&");
    assert!(name_link.contains("sort=name") && name_link.contains("dir=asc"), "{name_link}");
    let (_, by_name) = ui.get(&name_link).await;
    assert!(by_name.contains("aria-sort=\"ascending\" data-sort=\"name\""), "{by_name}");
    assert!(
        names(&by_name).iter().take(20).all(|n| n.starts_with("alpha-")) && names(&by_name)[20].starts_with("mid-"),
        "{:?}",
        names(&by_name)
    );
    let (_, last) = ui.get("/vms?sort=name&dir=asc&page=3").await;
    assert!(names(&last).iter().all(|n| n.starts_with("zed-")) && last.contains("51–60 of 60"), "{last}");
    let next = link(&by_name, "page-next").unwrap();
    assert!(next.contains("sort=name") && next.contains("dir=asc") && next.contains("page=2"), "{next}");
    let (_, desc) = ui.get("/vms?sort=name&dir=desc").await;
    assert!(names(&desc)[0].starts_with("zed-"), "{:?}", names(&desc));
    assert!(desc.contains("aria-sort=\"descending\" data-sort=\"name\""));
    // Clicking the current column turns it round.
    let again = between(&desc, "data-sort=\"name\"><a href=\"", "\"");
    assert!(again.contains("dir=asc"), "{again}");
    // Sorted by creation, oldest first: the first launch's VMs lead.
    let (_, oldest) = ui.get("/vms?sort=created&dir=asc").await;
    assert!(names(&oldest).iter().take(20).all(|n| n.starts_with("mid-")), "{:?}", names(&oldest));
    for col in ["state", "type", "instance", "cost"] {
        let (s, body) = ui.get(&format!("/vms?sort={col}")).await;
        assert_eq!(s, 200, "{col}: {body}");
        assert_eq!(rows(&body).len(), 25, "{col}");
    }
    let (s, _) = ui.get("/vms?sort=colour").await;
    assert_eq!(s, 400);
    let (s, _) = ui.get("/vms?per_page=0").await;
    assert_eq!(s, 400);
    let (_, ten) = ui.get("/vms?per_page=10&page=6").await;
    assert!(ten.contains("51–60 of 60") && rows(&ten).len() == 10, "{ten}");

    // Terminated and failed VMs are hidden unless asked for.
    let gone = &ids[0];
    let (s, b) = app.call(Method::POST, &format!("/api/v1/vms/{gone}/terminate"), &alice, None).await;
    assert_eq!(s, 200, "{b}");
    settle(&app).await;
    assert_eq!(vm(&app, gone).await.status, VmStatus::Terminated);
    let (_, live) = ui.get("/vms?per_page=100").await;
    assert!(live.contains("1–59 of 59") && !rows(&live).contains(gone), "{live}");
    assert!(live.contains("<option value=\"\" selected>not ended"), "the default filter is said");
    let show_all = link(&live, "show-all").expect("a show-all link");
    assert!(show_all.contains("state=all") && show_all.contains("per_page=100"), "the rest kept: {show_all}");
    let (_, every) = ui.get(&show_all).await;
    assert!(every.contains("1–60 of 60") && rows(&every).contains(gone), "{every}");
    let (_, only) = ui.get("/vms?state=terminated").await;
    assert_eq!(rows(&only), vec![gone.clone()]);
    // Search by name and by tag still narrows, with the state filter.
    let (_, zed) = ui.get("/vms?q=zed-3").await;
    assert!(zed.contains("1–1 of 1"), "{zed}");
    // The list alone (?watch=1) keeps the sort, the filter and the page in its links.
    let (_, watch) = ui.get("/vms?watch=1&sort=name&dir=desc&state=all").await;
    let next = link(&watch, "page-next").unwrap();
    assert!(next.contains("watch=1") && next.contains("sort=name") && next.contains("dir=desc") && next.contains("state=all"), "{next}");
    assert!(!watch.contains("id=\"bulk\""), "no bulk form on the list alone");
});

app_test!(bulk_terminate_goes_through_one_confirmation, |app: common::TestApp| async move {
    let admin = admin(&app).await;
    let alice = app.user(&admin, "alice").await;
    let ids = launch(&app, &alice, "batch", 3).await;
    settle(&app).await;
    let ui = Ui::sign_in(&app, "alice", "alice-password").await;
    let (_, list) = ui.get("/vms").await;
    assert!(list.contains(&format!("form=\"bulk\" name=\"vm.{}\"", ids[0])), "a checkbox per row: {list}");
    let (a, b) = (format!("vm.{}", ids[0]), format!("vm.{}", ids[1]));
    let (s, confirm) = ui.post("/vms/bulk", &[("action", "terminate"), (&a, "1"), (&b, "1")]).await;
    assert_eq!(s, 200, "{confirm}");
    assert!(confirm.contains("Terminate 2 VM(s)?") && confirm.contains("id=\"confirm-bulk\""), "{confirm}");
    assert!(confirm.contains(&ids[0]) && confirm.contains(&ids[1]) && !confirm.contains(&ids[2]), "the confirmation lists the VMs");
    for id in &ids {
        assert_eq!(vm(&app, id).await.status, VmStatus::Running, "the confirmation changes nothing");
    }
    // The confirmation's own form carries the batch.
    let form = between(&confirm, "action=\"/vms/bulk/confirm\"", "</form>");
    assert!(form.contains(&format!("name=\"{a}\"")) && form.contains(&format!("name=\"{b}\"")), "{form}");
    let (s, done) = ui.post("/vms/bulk/confirm", &[("action", "terminate"), (&a, "1"), (&b, "1")]).await;
    assert_eq!(s, 200, "{done}");
    assert!(done.contains("Terminate: 2 of 2 VM(s) terminated"), "{done}");
    for id in &ids[..2] {
        let v = vm(&app, id).await;
        assert!(matches!(v.status, VmStatus::ShuttingDown | VmStatus::Terminated), "{id}: {:?}", v.status);
    }
    assert_eq!(vm(&app, &ids[2]).await.status, VmStatus::Running, "the one not selected is untouched");
    // Each went through the service: audited as one click would be.
    let q = cloudbroker_core::audit::AuditQuery { action: Some("vm.terminate".into()), ..Default::default() };
    let log = app.broker.audit.list(&Actor::system(), q, cloudbroker_core::domain::PageRequest::default()).await.unwrap();
    let targets: Vec<&str> = log.items.iter().map(|e| e.target.as_str()).collect();
    assert!(targets.contains(&ids[0].as_str()) && targets.contains(&ids[1].as_str()), "{targets:?}");
    assert!(log.items.iter().all(|e| e.actor == "alice"), "{:?}", log.items);
    // Nothing selected, or an unknown action: said, nothing done.
    let (s, body) = ui.post("/vms/bulk", &[("action", "terminate")]).await;
    assert_eq!(s, 400, "{body}");
    let c = format!("vm.{}", ids[2]);
    let (s, _) = ui.post("/vms/bulk/confirm", &[("action", "explode"), (&c, "1")]).await;
    assert_eq!(s, 400);
    assert_eq!(vm(&app, &ids[2]).await.status, VmStatus::Running);
});

app_test!(a_bulk_action_with_a_partial_failure_says_each_outcome, |app: common::TestApp| async move {
    let admin = admin(&app).await;
    let alice = app.user(&admin, "alice").await;
    let ids = launch(&app, &alice, "mixed", 2).await;
    settle(&app).await;
    let (s, b) = app.call(Method::POST, &format!("/api/v1/vms/{}/terminate", ids[1]), &alice, None).await;
    assert_eq!(s, 200, "{b}");
    settle(&app).await;
    let ui = Ui::sign_in(&app, "alice", "alice-password").await;
    let (a, b) = (format!("vm.{}", ids[0]), format!("vm.{}", ids[1]));
    let (s, confirm) = ui.post("/vms/bulk", &[("action", "stop"), (&a, "1"), (&b, "1")]).await;
    assert_eq!(s, 200);
    assert!(confirm.contains("is terminated"), "the confirmation says which will not take it: {confirm}");
    let (s, done) = ui.post("/vms/bulk/confirm", &[("action", "stop"), (&a, "1"), (&b, "1")]).await;
    assert_eq!(s, 200, "{done}");
    assert!(done.contains("Stop: 1 of 2 VM(s) stopped; 1 refused"), "{done}");
    let ok = between(&done, &format!("data-vm=\"{}\"", ids[0]), "</tr>");
    assert!(ok.contains("bulk-ok") && ok.contains("now stop"), "{ok}");
    let refused = between(&done, &format!("data-vm=\"{}\"", ids[1]), "</tr>");
    assert!(refused.contains("bulk-refused") && refused.contains("refused:") && refused.contains("terminated"), "{refused}");
    assert!(matches!(vm(&app, &ids[0]).await.status, VmStatus::Stopping | VmStatus::Stopped));
    // Everything refused: 409, each line says why.
    let (s, none) = ui.post("/vms/bulk/confirm", &[("action", "stop"), (&b, "1")]).await;
    assert_eq!(s, 409, "{none}");
    assert!(none.contains("0 of 1"), "{none}");
});

app_test!(a_bulk_form_naming_another_users_vm_is_refused_whole, |app: common::TestApp| async move {
    let admin = admin(&app).await;
    let alice = app.user(&admin, "alice").await;
    let bob = app.user(&admin, "bob").await;
    let mine = launch(&app, &alice, "mine", 1).await;
    let theirs = launch(&app, &bob, "theirs", 1).await;
    settle(&app).await;
    let ui = Ui::sign_in(&app, "alice", "alice-password").await;
    let (a, b) = (format!("vm.{}", mine[0]), format!("vm.{}", theirs[0]));
    for path in ["/vms/bulk", "/vms/bulk/confirm"] {
        let (s, body) = ui.post(path, &[("action", "terminate"), (&a, "1"), (&b, "1")]).await;
        assert_eq!(s, 404, "{path}: {body}");
        assert!(!body.contains(&theirs[0]), "{path}: bob's VM is not even named back");
        let (s, _) = ui.post(path, &[("action", "stop"), (&b, "1")]).await;
        assert_eq!(s, 404, "{path}");
    }
    assert_eq!(vm(&app, &mine[0]).await.status, VmStatus::Running, "nothing happened to alice's either");
    assert_eq!(vm(&app, &theirs[0]).await.status, VmStatus::Running, "nor to bob's");
    // A malformed id, too.
    let (s, _) = ui.post("/vms/bulk", &[("action", "stop"), ("vm.not an id", "1")]).await;
    assert_eq!(s, 404);
    // Without the CSRF token: refused.
    let r = ui.http.post(format!("{}/vms/bulk/confirm", ui.base)).form(&[("action", "terminate"), (a.as_str(), "1")]).send().await.unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(vm(&app, &mine[0]).await.status, VmStatus::Running);
});

app_test!(the_vm_page_shows_what_an_operator_needs, |app: common::TestApp| async move {
    let sup = Ui::sign_in(&app, "super", common::SUPER_PW).await;
    sup.post("/admin/images", &[("name", "debian-12"), ("id.sb", "ami-sandbox-debian-12")]).await;
    let admin = app.token("super", common::SUPER_PW).await;
    app.user(&admin, "alice").await;
    let ui = Ui::sign_in(&app, "alice", "alice-password").await;
    let (s, body) = ui
        .post("/vms", &[("instance", "sb"), ("image", "debian-12"), ("name", "web"), ("tags", "team=data"), ("instance_type", "t2.small")])
        .await;
    assert!(s == 200 && body.contains("Launched 1 VM(s)"), "{body}");
    let id = app.broker.provisioning.list(&Actor::system(), Default::default(), Default::default()).await.unwrap().items[0].id.to_string();
    settle(&app).await;
    let v = vm(&app, &id).await;
    assert_eq!(v.status, VmStatus::Running);
    let (s, page2) = ui.get(&format!("/vms/{id}")).await;
    assert_eq!(s, 200);
    let cloud_id = v.cloud_id.clone().unwrap();
    assert!(cloud_id.starts_with("i-"));
    assert!(page2.contains(&format!("<code id=\"vm-id\">{id}</code>")), "{page2}");
    assert!(page2.contains(&format!("<code id=\"vm-cloud-id\">{cloud_id}</code>")), "the i-… id beside the vm-… id");
    assert!(between(&page2, "id=\"vm-image\">", "</dd>").contains("debian-12 · cloud image <code>ami-sandbox-debian-12</code>"), "{page2}");
    assert_eq!(between(&page2, "id=\"vm-type\">", "</dd>"), "t2.small");
    assert_eq!(between(&page2, "id=\"vm-instance\">", "</dd>"), "sb");
    assert!(between(&page2, "id=\"vm-credential\">", "</dd>").contains("none needed on sb"), "{page2}");
    assert!(between(&page2, "id=\"vm-tags\">", "</dd>").contains("team=data"));
    let history = between(&page2, "id=\"vm-history-table\"", "</table>");
    assert!(history.contains("state-requested") && history.contains("launched by alice"), "{history}");
    assert!(history.contains("state-running"), "{history}");
    assert!(history.contains("vm.launch by alice"), "the launch's audit record: {history}");
    match v.address.as_deref() {
        Some(addr) => {
            let ssh = between(&page2, "<code id=\"vm-ssh\">", "</code>");
            assert_eq!(ssh, format!("ssh admin@{addr}"), "{page2}");
        }
        None => assert!(page2.contains("id=\"vm-ssh-none\""), "{page2}"),
    }
    // Actions on the page come back to it.
    assert!(page2.contains("id=\"vm-stop\"") && page2.contains(&format!("href=\"/vms/{id}/terminate\"")), "{page2}");
    let (s, after) = ui.post(&format!("/vms/{id}/stop"), &[("back", "detail")]).await;
    assert_eq!(s, 200);
    assert!(after.contains("id=\"vm-history\"") && after.contains("stop "), "back on the VM's page: {after}");
    // Terminated: the history says who did it.
    let (_, _) = ui.post(&format!("/vms/{id}/terminate"), &[]).await;
    settle(&app).await;
    let (_, ended) = ui.get(&format!("/vms/{id}")).await;
    let history = between(&ended, "id=\"vm-history-table\"", "</table>");
    assert!(history.contains("vm.terminate by alice") && history.contains("state-terminated"), "{history}");
    assert!(!ended.contains("id=\"vm-stop\"") && !ended.contains(&format!("href=\"/vms/{id}/terminate\"")), "no actions left: {ended}");
    // The list shows relative times with the absolute one in the title, and the full id in the cell's title.
    let (_, list) = ui.get("/vms?state=all").await;
    let row = between(&list, &format!("<tr id=\"vm-{id}\">"), "</tr>");
    assert!(row.contains(&format!("title=\"{id}\"")) && row.contains(" ago</time>") && row.contains(" UTC\""), "{row}");
});

app_test!(the_launch_form_refuses_an_empty_name, |app: common::TestApp| async move {
    let sup = Ui::sign_in(&app, "super", common::SUPER_PW).await;
    sup.post("/admin/images", &[("name", "linux"), ("id.sb", "ami-sandbox-debian-12")]).await;
    let admin = app.token("super", common::SUPER_PW).await;
    let token = app.user(&admin, "alice").await;
    let ui = Ui::sign_in(&app, "alice", "alice-password").await;
    for name in ["", "   "] {
        let (s, body) =
            ui.post("/vms", &[("instance", "sb"), ("image", "linux"), ("name", name), ("tags", "team=data"), ("count", "2")]).await;
        assert_eq!(s, 400, "{name:?}: {body}");
        let e = between(&body, "id=\"name-error\">", "</span>");
        assert!(e.contains("name"), "{name:?}: {e}");
        assert!(body.contains(">team=data</textarea>") && body.contains("value=\"2\""), "what was typed is kept: {body}");
        assert!(body.contains(" selected>linux</option>"), "the image kept: {body}");
    }
    assert!(app.broker.provisioning.list(&Actor::system(), Default::default(), Default::default()).await.unwrap().items.is_empty());
    // The API still launches nameless VMs.
    let (s, b) = app.call(Method::POST, "/api/v1/vms", &token, Some(serde_json::json!({"instance": "sb", "image": "linux"}))).await;
    assert_eq!(s, 201, "{b}");
});
