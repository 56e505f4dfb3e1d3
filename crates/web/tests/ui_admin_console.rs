//! The admin console (issue 23, "Missing"), through the real server without
//! a browser: the overview's figures from seeded data (live VMs per
//! instance and state, a user at 90% of a quota listed with the figures,
//! a failed launch listed with its error and counted, an instance in
//! error, the workers), its queries reading indexes; an admin's view of a
//! user's VMs, volumes, addresses and key pairs, whose destructive actions
//! ask first on a page of their own (GET changes nothing, the POST acts)
//! and are audited with the admin as actor and the user as subject; every
//! new admin route refused to a non-admin; the audit page's action select,
//! filter, seconds and old → new values of a configuration change.
//! On SQLite and PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::zombie_processes)]

mod common;

use cloudbroker_core::domain::{ImageRef, InstanceName, PageRequest, Tags, UserName, VmAction, VmStatus, VolumeSize};
use cloudbroker_core::provisioning::{CountRange, LaunchRequest, VmQuery, VolumeSpec};
use cloudbroker_core::Actor;
use common::ui::{between, Ui};

fn user(name: &str) -> UserName {
    UserName::parse(name).unwrap()
}

fn instance(name: &str) -> InstanceName {
    InstanceName::parse(name).unwrap()
}

fn admin() -> Actor {
    Actor::new(user("super"), true)
}

/// Users `names` (password `NAME-password`), as actors.
async fn users(app: &common::TestApp, names: &[&str]) -> Vec<Actor> {
    let token = app.token("super", common::SUPER_PW).await;
    let mut out = Vec::new();
    for n in names {
        app.user(&token, n).await;
        out.push(Actor::new(user(n), false));
    }
    out
}

async fn linux_image(app: &common::TestApp) {
    let sup = Ui::sign_in(app, "super", common::SUPER_PW).await;
    sup.post("/admin/images", &[("name", "linux"), ("id.sb", "ami-sandbox-debian-12"), ("id.sb2", "ami-sandbox-debian-12")]).await;
}

async fn launch(app: &common::TestApp, who: &Actor, on: &str, n: u32) -> Vec<cloudbroker_core::provisioning::Vm> {
    let mut req = LaunchRequest::new(instance(on), ImageRef::parse("linux").unwrap());
    req.count = CountRange::exactly(n);
    req.name = format!("{}-{on}", who.name);
    match app.broker.provisioning.launch(who, req).await {
        Ok(o) => o.vms,
        Err(e) => panic!("launch of {} on {on}: {e}", who.name),
    }
}

async fn vms_of(app: &common::TestApp, name: &str) -> Vec<cloudbroker_core::provisioning::Vm> {
    let q = VmQuery { user: Some(user(name)), ..Default::default() };
    app.broker.provisioning.list(&Actor::system(), q, PageRequest::first(100)).await.unwrap().items
}

app_test!(the_overview_counts_flags_and_lists_from_a_handful_of_queries, |app: common::TestApp| async move {
    linux_image(&app).await;
    let v = users(&app, &["alice", "bob", "carol"]).await;
    let (alice, bob, carol) = (&v[0], &v[1], &v[2]);
    // sb: 10 VMs per user allowed; alice takes 9 of them (90%), carol 2 (20%).
    app.broker.system.set(&admin(), &[("sb.quota.vm".into(), Some("10".into()))]).await.unwrap();
    launch(&app, alice, "sb", 9).await;
    let carols = launch(&app, carol, "sb", 2).await;
    app.broker.provisioning.reconcile("test").await.unwrap();
    app.broker.provisioning.action(carol, &carols[0].id, VmAction::Stop).await.unwrap();
    app.broker.provisioning.reconcile("test").await.unwrap();
    // sb2 fails every launch: bob's is a failed launch of the last day.
    app.broker.system.set(&admin(), &[("sb2.failure.rate".into(), Some("1".into()))]).await.unwrap();
    let mut req = LaunchRequest::new(instance("sb2"), ImageRef::parse("linux").unwrap());
    req.name = "doomed".into();
    let _ = app.broker.provisioning.launch(bob, req).await;
    app.broker.provisioning.reconcile("test").await.unwrap();
    let bobs = vms_of(&app, "bob").await;
    assert!(bobs.iter().all(|v| v.status == VmStatus::Failed), "{bobs:?}");
    let failed = bobs.first().expect("bob's failed VM").clone();

    let sup = Ui::sign_in(&app, "super", common::SUPER_PW).await;
    let (s, body) = sup.get("/admin").await;
    assert_eq!(s, 200, "{body}");
    // The overview is first in the admin navigation and is this page.
    let nav = between(&body, "<span class=\"sep\">Admin:</span>", "</nav>");
    assert!(nav.trim_start().starts_with("<a href=\"/admin\" id=\"nav-admin-overview\" aria-current=\"page\">Overview</a>"), "{nav}");
    // Live VMs per instance and state.
    let sb_row = between(&body, "<tr data-instance=\"sb\">", "</tr>");
    assert!(sb_row.contains("data-state=\"running\">10<"), "{sb_row}");
    assert!(sb_row.contains("data-state=\"stopped\">1<"), "{sb_row}");
    assert!(sb_row.contains("<td class=\"num total\">11</td>"), "{sb_row}");
    let sb2_row = between(&body, "<tr data-instance=\"sb2\">", "</tr>");
    assert!(sb2_row.contains("<td class=\"num total\">0</td>"), "a failed VM is not live: {sb2_row}");
    assert!(body.contains("id=\"live-total\">11<"), "{body}");
    // alice at 90% is listed with the figures; carol at 20% is not.
    let near = between(&body, "<table id=\"near-quota\"", "</table>");
    let alice_row = between(near, "<tr data-user=\"alice\" data-instance=\"sb\">", "</tr>");
    assert!(alice_row.contains("<td class=\"num\">9</td><td class=\"num\">10</td>"), "{alice_row}");
    assert!(alice_row.contains("90%") && alice_row.contains("instance quota.vm"), "{alice_row}");
    assert!(!near.contains("data-user=\"carol\""), "{near}");
    assert!(body.contains("id=\"near-quota-count\">1<"), "{body}");
    // The failed launch: counted, listed with its error, linked.
    assert!(body.contains("id=\"failed-total\">1<"), "{body}");
    let row = between(&body, &format!("<tr data-vm=\"{}\">", failed.id), "</tr>");
    assert!(row.contains(&format!("href=\"/vms/{}\"", failed.id)) && row.contains(">doomed<"), "{row}");
    assert!(row.contains("href=\"/admin/users/bob\""), "{row}");
    let error = failed.error.clone().expect("the failed VM says why");
    assert!(row.contains(&error.replace('\'', "&#x27;")) || row.contains(&error), "the error {error:?} in {row}");
    // Every instance is ready.
    assert!(body.contains("id=\"no-instance-errors\""), "{body}");
    // /admin/overview is the same page.
    let (s, again) = sup.get("/admin/overview").await;
    assert!(s == 200 && again.contains("id=\"live-matrix\""), "{again}");

    // The overview's queries read indexes (the seeded tables are small:
    // PostgreSQL is asked with sequential scans discouraged).
    let live: Vec<&str> = VmStatus::ALL.iter().filter(|s| s.is_live()).map(|s| s.as_str()).collect();
    for (name, plan) in app.broker.store().console_query_plans(&live).await.unwrap() {
        let lower = plan.to_lowercase();
        assert!(lower.contains("index"), "{name} reads an index: {plan}");
        assert!(!lower.contains("scan vms\n") && !lower.ends_with("scan vms") && !lower.contains("seq scan"), "{name}: {plan}");
    }
    let counted: Vec<&str> = VmStatus::COUNTED.iter().map(|s| s.as_str()).collect();
    for (name, plan) in app.broker.store().console_query_plans(&counted).await.unwrap() {
        assert!(plan.to_lowercase().contains("index"), "{name} reads an index: {plan}");
    }
});

app_test!(an_instance_in_error_and_the_workers_are_shown, |app: common::TestApp| async move {
    // A second file declares an instance with a value its kind refuses.
    std::fs::write(app.dir.path().join("connectors.d/bad.conf"), "cloud.connector.class = broken:sandbox\nbroken.failure.rate = 7\n")
        .unwrap();
    app.broker.system.reload(&admin()).await.unwrap();
    let workers = app.broker.spawn_background();
    // The reconciler's first pass runs at once.
    for _ in 0..50 {
        if app.broker.readiness().await.workers.iter().any(|w| w.name == "reconcile" && w.runs > 0) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let sup = Ui::sign_in(&app, "super", common::SUPER_PW).await;
    let (s, body) = sup.get("/admin").await;
    assert_eq!(s, 200, "{body}");
    let errors = between(&body, "<ul id=\"file-errors\">", "</ul>");
    assert!(errors.contains("bad.conf") && errors.contains("failure.rate"), "{errors}");
    let table = between(&body, "<table id=\"workers\"", "</table>");
    let first = between(table, "<tbody>", "</tr>");
    assert!(first.contains("data-worker=\"reconcile\""), "reconcile first: {table}");
    assert!(table.contains("data-worker=\"lease\""), "{table}");
    assert!(!first.contains("<td class=\"nowrap\">never</td>"), "reconcile has run: {first}");
    workers.shutdown(std::time::Duration::from_secs(5)).await;
});

app_test!(the_workers_are_said_to_be_this_replicas_and_work_leases_name_their_holder, |app: common::TestApp| async move {
    // Another replica holds one piece of work, this one another.
    assert!(app.broker.store().try_lease("budget-watch", "replica-b-1234", 60_000).await.unwrap());
    assert!(app.broker.store().try_lease("reconcile:sb", &app.broker.replica_id, 60_000).await.unwrap());
    let sup = Ui::sign_in(&app, "super", common::SUPER_PW).await;
    let (s, body) = sup.get("/admin").await;
    assert_eq!(s, 200, "{body}");
    assert!(between(&body, "<h2 id=\"workers-h\">", "</h2>").contains("(this replica)"), "{body}");
    let scope = between(&body, "id=\"workers-scope\">", "</p>");
    assert!(scope.contains("this replica only") && scope.contains(&app.broker.replica_id), "{scope}");
    let leases = between(&body, "<table id=\"work-leases\"", "</table>");
    let other = between(leases, "data-lease=\"budget-watch\">", "</tr>");
    assert!(other.contains("another replica") && other.contains("replica-b-1234"), "{leases}");
    let mine = between(leases, "data-lease=\"reconcile:sb\">", "</tr>");
    assert!(mine.contains("this replica") && !mine.contains("another"), "{leases}");
    // Released: no longer listed.
    app.broker.store().release_lease("budget-watch", "replica-b-1234").await.unwrap();
    let (_, body) = sup.get("/admin").await;
    assert!(!between(&body, "<table id=\"work-leases\"", "</table>").contains("budget-watch"), "{body}");
});

app_test!(an_admin_acts_on_a_users_resources_audited_as_actor_and_subject, |app: common::TestApp| async move {
    linux_image(&app).await;
    let v = users(&app, &["alice"]).await;
    let alice = &v[0];
    let vms = launch(&app, alice, "sb", 2).await;
    app.broker.provisioning.reconcile("test").await.unwrap();
    let sb = instance("sb");
    let spec = VolumeSpec { size: VolumeSize::new(8).unwrap(), zone: "sba".into(), volume_type: None, tags: Tags::default() };
    let vol = app.broker.provisioning.create_volume(alice, &sb, spec).await.unwrap();
    let addr = app.broker.provisioning.allocate_address(alice, &sb).await.unwrap();
    app.broker.key_pairs.create(alice, "alice key").await.unwrap();
    let name_tag = Tags::parse_resource(std::collections::BTreeMap::from([("Name".to_string(), "lab net".to_string())])).unwrap();
    let vpc = app.broker.provisioning.create_vpc(alice, &sb, "10.7.0.0/16", &name_tag).await.unwrap();
    let group = app.broker.provisioning.create_security_group(alice, &sb, "web", "web servers", None, &Tags::default()).await.unwrap();

    let sup = Ui::sign_in(&app, "super", common::SUPER_PW).await;
    let (s, page) = sup.get("/admin/users/alice").await;
    assert_eq!(s, 200, "{page}");
    // The VPC and the group she made, with kind, name and project; nothing of anyone else's.
    let objects = between(&page, "<table id=\"user-objects\"", "</table>");
    let vpc_row = between(objects, &format!("<tr data-object=\"{}\">", vpc.vpc_id), "</tr>");
    assert!(
        vpc_row.contains("<td class=\"nowrap\">VPC</td>") && vpc_row.contains("<td>lab net</td>") && vpc_row.contains("<td>alice</td>"),
        "{vpc_row}"
    );
    assert!(objects.contains(&format!("<tr data-object=\"{}\">", group.group_id)), "{objects}");
    assert_eq!(objects.matches("<tr data-object=").count(), 2, "{objects}");
    assert!(page.contains("Networks, groups, snapshots (2)"), "{page}");
    for vm in &vms {
        let row = between(&page, &format!("<tr data-vm=\"{}\">", vm.id), "</tr>");
        assert!(row.contains("state-running") && row.contains(&format!("id=\"stop-{}\"", vm.id)), "{row}");
        assert!(row.contains(&format!("href=\"/admin/users/alice/vms/{}/terminate\"", vm.id)), "{row}");
    }
    assert!(between(&page, "<table id=\"user-volumes\"", "</table>").contains(&format!("data-volume=\"{}\"", vol.volume_id)), "{page}");
    assert!(
        between(&page, "<table id=\"user-addresses\"", "</table>").contains(&format!("data-address=\"{}\"", addr.allocation_id)),
        "{page}"
    );
    assert!(between(&page, "<table id=\"user-key-pairs\"", "</table>").contains("data-key-pair=\"alice key\""), "{page}");

    // Terminate: the GET is a confirmation page that changes nothing.
    let target = &vms[0];
    let (s, confirm) = sup.get(&format!("/admin/users/alice/vms/{}/terminate", target.id)).await;
    assert_eq!(s, 200, "{confirm}");
    assert!(
        confirm.contains(&format!("action=\"/admin/users/alice/vms/{}/terminate\"", target.id)) && confirm.contains("id=\"confirm\""),
        "{confirm}"
    );
    assert!(confirm.contains("href=\"/admin/users/alice\" class=\"button\" id=\"cancel\""), "{confirm}");
    assert_eq!(app.broker.provisioning.get(&admin(), &target.id).await.unwrap().status, VmStatus::Running);
    let (s, to) = sup.post_no_follow(&format!("/admin/users/alice/vms/{}/terminate", target.id), &[]).await;
    assert_eq!((s, to.as_str()), (303, "/admin/users/alice"));
    let after = app.broker.provisioning.get(&admin(), &target.id).await.unwrap();
    assert!(matches!(after.status, VmStatus::ShuttingDown | VmStatus::Terminated), "{after:?}");
    // Stop the other one (not destructive: no confirmation).
    let (s, to) = sup.post_no_follow(&format!("/admin/users/alice/vms/{}/stop", vms[1].id), &[]).await;
    assert_eq!((s, to.as_str()), (303, "/admin/users/alice"));
    let stopped = app.broker.provisioning.get(&admin(), &vms[1].id).await.unwrap();
    assert!(matches!(stopped.status, VmStatus::Stopping | VmStatus::Stopped), "{stopped:?}");

    // Release the address and delete the volume and the key pair, each after its confirmation.
    let (s, c) = sup.get(&format!("/admin/users/alice/addresses/sb/{}/release", addr.allocation_id)).await;
    assert!(s == 200 && c.contains("id=\"confirm\""), "{c}");
    let (s, _) = sup.post_no_follow(&format!("/admin/users/alice/addresses/sb/{}/release", addr.allocation_id), &[]).await;
    assert_eq!(s, 303);
    let (s, c) = sup.get(&format!("/admin/users/alice/volumes/sb/{}/delete", vol.volume_id)).await;
    assert!(s == 200 && c.contains("id=\"confirm\""), "{c}");
    let (s, _) = sup.post_no_follow(&format!("/admin/users/alice/volumes/sb/{}/delete", vol.volume_id), &[]).await;
    assert_eq!(s, 303);
    let (s, c) = sup.get("/admin/users/alice/key-pairs/delete?project=alice&key=alice%20key").await;
    assert!(s == 200 && c.contains("name=\"key\" value=\"alice key\"") && c.contains("id=\"confirm\""), "{c}");
    let (s, _) = sup.post_no_follow("/admin/users/alice/key-pairs/delete", &[("project", "alice"), ("key", "alice key")]).await;
    assert_eq!(s, 303);
    let (_, page) = sup.get("/admin/users/alice").await;
    assert!(page.contains("No volumes.") && page.contains("No Elastic IPs.") && page.contains("No key pairs."), "{page}");
    // Disable an access key: the existing action, now audited with the subject too.
    let (key, _) = app.broker.access_keys.create(alice, &user("alice")).await.unwrap();
    let (s, _) = sup.post_no_follow(&format!("/admin/users/alice/access-keys/{}/disable", key.access_key_id), &[]).await;
    assert_eq!(s, 303);

    // Every action: the admin as actor, alice as subject.
    let (s, audit) = sup.get("/admin/audit?subject=alice").await;
    assert_eq!(s, 200, "{audit}");
    for action in ["vm.terminate", "vm.stop", "address.release", "volume.delete", "key_pair.delete", "access_key.state"] {
        let row = between(&audit, &format!("<tr data-action=\"{action}\">"), "</tr>");
        assert!(row.contains("<td class=\"actor\">super</td><td class=\"subject\">alice</td>"), "{action}: {row}");
    }
    // A resource of someone else through alice's page is not found.
    let (s, _) = sup.get(&format!("/admin/users/super/vms/{}/terminate", vms[1].id)).await;
    assert_eq!(s, 404);
});

app_test!(a_non_admin_is_refused_every_admin_console_route, |app: common::TestApp| async move {
    linux_image(&app).await;
    let v = users(&app, &["alice", "bob"]).await;
    let vm = launch(&app, &v[1], "sb", 1).await.remove(0);
    app.broker.provisioning.reconcile("test").await.unwrap();
    let alice = Ui::sign_in(&app, "alice", "alice-password").await;
    let gets = [
        "/admin".to_string(),
        "/admin/".to_string(),
        "/admin/overview".to_string(),
        format!("/admin/users/bob/vms/{}/terminate", vm.id),
        "/admin/users/bob/volumes/sb/vol-0123456789abcdef0/delete".to_string(),
        "/admin/users/bob/addresses/sb/eipalloc-0123456789abcdef0/release".to_string(),
        "/admin/users/bob/key-pairs/delete?project=bob&key=k".to_string(),
        "/admin/audit?subject=bob".to_string(),
    ];
    for path in &gets {
        let (s, body) = alice.get(path).await;
        assert_eq!(s, 403, "GET {path}: {body}");
    }
    let posts = [
        format!("/admin/users/bob/vms/{}/stop", vm.id),
        format!("/admin/users/bob/vms/{}/terminate", vm.id),
        "/admin/users/bob/volumes/sb/vol-0123456789abcdef0/delete".to_string(),
        "/admin/users/bob/addresses/sb/eipalloc-0123456789abcdef0/release".to_string(),
        "/admin/users/bob/key-pairs/delete".to_string(),
    ];
    for path in &posts {
        let (s, body) = alice.post(path, &[("project", "bob"), ("key", "k")]).await;
        assert_eq!(s, 403, "POST {path}: {body}");
    }
    assert_eq!(app.broker.provisioning.get(&admin(), &vm.id).await.unwrap().status, VmStatus::Running, "nothing was done");
});

app_test!(the_audit_page_selects_actions_and_shows_seconds_and_old_to_new, |app: common::TestApp| async move {
    linux_image(&app).await;
    let v = users(&app, &["alice"]).await;
    let vm = launch(&app, &v[0], "sb", 1).await.remove(0);
    app.broker.provisioning.reconcile("test").await.unwrap();
    app.broker.system.set(&admin(), &[("sb.quota.vm".into(), Some("12".into()))]).await.unwrap();
    app.broker.system.set(&admin(), &[("sb.quota.vm".into(), Some("15".into()))]).await.unwrap();
    app.broker.provisioning.action(&v[0], &vm.id, VmAction::Terminate).await.unwrap();
    let sup = Ui::sign_in(&app, "super", common::SUPER_PW).await;
    let (s, body) = sup.get("/admin/audit").await;
    assert_eq!(s, 200, "{body}");
    // A select of every action the core knows, "any" first.
    let select = between(&body, "<select id=\"a-action\" name=\"action\">", "</select>");
    for a in cloudbroker_core::audit::AuditAction::ALL {
        let shown = a.as_str();
        assert!(select.contains(&format!("<option value=\"{shown}\">{shown}</option>")), "{} in {select}", a.as_str());
    }
    assert!(select.trim_start().starts_with("<option value=\"\" selected>any action</option>"), "{select}");
    // Times to the second, in a column that does not wrap.
    let first = between(&body, "<td class=\"when\">", "</td>");
    assert!(chrono::NaiveDateTime::parse_from_str(first, "%Y-%m-%d %H:%M:%S UTC").is_ok(), "{first}");
    // A configuration change shows old → new per key.
    let (_, body) = sup.get("/admin/audit?action=config.change").await;
    let rows: Vec<&str> = body.split("<tr data-action=").skip(1).collect();
    assert!(!rows.is_empty() && rows.iter().all(|r| r.starts_with("\"config.change\"")), "only config.change: {body}");
    assert!(
        rows[0].contains("<code class=\"path\">sb.quota.vm</code>: <span class=\"old\">12</span> → <span class=\"new\">15</span>"),
        "{}",
        rows[0]
    );
    assert!(select_has_selected(&body, "config.change"), "the select keeps the filter: {body}");
    // The filter by action: only terminations, and alice's own is there (subject alice).
    let (_, body) = sup.get("/admin/audit?action=vm.terminate").await;
    let rows: Vec<&str> = body.split("<tr data-action=").skip(1).collect();
    assert_eq!(rows.len(), 1, "{body}");
    assert!(
        rows[0].contains(&vm.id.to_string()) && rows[0].contains("<td class=\"actor\">alice</td><td class=\"subject\">alice</td>"),
        "{}",
        rows[0]
    );
});

fn select_has_selected(body: &str, action: &str) -> bool {
    body.contains(&format!("<option value=\"{action}\" selected>{action}</option>"))
}
