//! The UI as a console (issue 23, "Broken"), through the real server
//! without a browser: the VMs page with the launch form never reloads
//! itself (its list does, `?watch=1` is the list alone for browsers without
//! script); creating an access key is post/redirect/get with the secret
//! shown once; every error of a save at once, in plain words, what was
//! typed kept (also a refused grant); an instance declared in the UI and in
//! a file says which wins; a reload with a broken file says so in amber and
//! lists the instances it left out; the launch form's type hint is what a
//! launch uses; blank names refused, no Terminate on a VM already on its
//! way out, rows of one launch in order; shared credentials said
//! consistently; the API reference renders its Markdown and is linked.
//! On SQLite and PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::zombie_processes)]

mod common;

use cloudbroker_core::domain::VmStatus;
use cloudbroker_core::Actor;
use common::ui::{between, field_errors, flash, Ui};

async fn live_vms(app: &common::TestApp, user: &str) -> Vec<cloudbroker_core::provisioning::Vm> {
    let q = cloudbroker_core::provisioning::VmQuery { user: Some(user.parse().unwrap()), ..Default::default() };
    let page = cloudbroker_core::domain::PageRequest::parse(Some("100"), None).unwrap();
    app.broker.provisioning.list(&Actor::system(), q, page).await.unwrap().items
}

app_test!(the_launch_form_is_never_wiped_by_a_reload, |app: common::TestApp| async move {
    let sup = Ui::sign_in(&app, "super", common::SUPER_PW).await;
    sup.post("/admin/images", &[("name", "linux"), ("id.sb", "ami-sandbox-debian-12")]).await;
    let admin = app.token("super", common::SUPER_PW).await;
    app.user(&admin, "alice").await;
    let alice = Ui::sign_in(&app, "alice", "alice-password").await;
    let (s, body) = alice.post("/vms", &[("instance", "sb"), ("image", "linux"), ("name", "web")]).await;
    assert!(s == 200 && body.contains("Launched 1 VM(s)"), "{body}");
    // Pending (no reconcile ran): the page with the form does not reload itself, its list does.
    let (_, body) = alice.get("/vms").await;
    assert!(body.contains("class=\"state state-pending\""), "{body}");
    assert!(body.contains("id=\"launch-form\""), "{body}");
    assert!(!body.contains("http-equiv=\"refresh\""), "the page with the launch form never reloads itself: {body}");
    assert!(body.contains("id=\"refreshing\" data-refresh=\"3\""), "the list refreshes (ui.js): {body}");
    assert!(body.contains("href=\"/vms?watch=1\""), "without script: the list alone: {body}");
    assert!(body.contains("id=\"vm-list\""), "{body}");
    // The list alone reloads itself and has no form to wipe.
    let (s, body) = alice.get("/vms?watch=1").await;
    assert_eq!(s, 200);
    assert!(body.contains("<meta http-equiv=\"refresh\" content=\"3\">"), "{body}");
    assert!(!body.contains("id=\"launch-form\"") && body.contains("id=\"watch-note\""), "{body}");
    assert!(body.contains("state-pending"), "{body}");
    // Once nothing is pending, nothing refreshes.
    app.broker.provisioning.reconcile("test").await.unwrap();
    let (_, body) = alice.get("/vms?watch=1").await;
    assert!(body.contains("state-running") && !body.contains("http-equiv=\"refresh\""), "{body}");
    let (_, body) = alice.get("/vms").await;
    assert!(!body.contains("data-refresh"), "{body}");
    // The script that refreshes the list only, pausing while the user types.
    let js = app.http.get(app.url("/static/ui.js")).send().await.unwrap().text().await.unwrap();
    assert!(js.contains("vm-list") && js.contains("busy()"), "{js}");
});

app_test!(creating_an_access_key_is_post_redirect_get, |app: common::TestApp| async move {
    let admin = app.token("super", common::SUPER_PW).await;
    app.user(&admin, "erin").await;
    let erin = Ui::sign_in(&app, "erin", "erin-password").await;
    let (s, to) = erin.post_no_follow("/profile/access-keys", &[]).await;
    assert_eq!((s, to.as_str()), (303, "/profile"), "a redirect after the post");
    let (_, shown) = erin.get("/profile").await;
    let key_id = between(&shown, "id=\"new-access-key-id\">", "<").to_string();
    let secret = between(&shown, "id=\"new-secret-key\">", "<").to_string();
    assert!(key_id.starts_with("AKIA") && secret.len() >= 40, "{key_id}");
    assert!(flash(&shown).1.contains("Access key created"), "{shown}");
    // Reloading the page creates nothing and no longer shows the secret.
    for _ in 0..3 {
        let (s, again) = erin.get("/profile").await;
        assert_eq!(s, 200);
        assert!(!again.contains(&secret) && !again.contains("id=\"new-secret-key\""), "the secret is shown once");
    }
    let erin_name: cloudbroker_core::domain::UserName = "erin".parse().unwrap();
    assert_eq!(app.broker.access_keys.list(&Actor::system(), &erin_name).await.unwrap().len(), 1, "one key, however often reloaded");
    // Another session of the same user never sees it.
    let (_, _) = erin.post_no_follow("/profile/access-keys", &[]).await;
    let other = Ui::sign_in(&app, "erin", "erin-password").await;
    let (_, body) = other.get("/profile").await;
    assert!(!body.contains("id=\"new-secret-key\""), "{body}");
    let (_, body) = erin.get("/profile").await;
    assert!(body.contains("id=\"new-secret-key\""), "the session that made it sees it: {body}");
});

app_test!(every_error_of_a_save_at_once_in_plain_words, |app: common::TestApp| async move {
    let sup = Ui::sign_in(&app, "super", common::SUPER_PW).await;
    let (s, body) = sup.post("/admin/system", &[("p.cloud.connector.class", "ua:sandbox")]).await;
    assert!(s == 200 && body.contains("Saved 1 value(s)"), "{body}");
    let (s, body) = sup
        .post(
            "/admin/system",
            &[("p.ua.boot.delay.ms", "abc"), ("p.ua.failure.rate", "2"), ("p.ua.max.iaas.workers", "0"), ("p.quota.enable", "true")],
        )
        .await;
    assert_eq!(s, 400, "{body}");
    let errs = field_errors(&body);
    assert_eq!(errs.len(), 3, "every bad value is marked: {errs:?}");
    for key in ["ua.boot.delay.ms", "ua.failure.rate", "ua.max.iaas.workers"] {
        assert!(errs.iter().any(|e| e.contains(key)), "{key}: {errs:?}");
    }
    assert!(errs.iter().any(|e| e.contains("must be between 1 and 1000")), "plain words: {errs:?}");
    assert!(errs.iter().any(|e| e.contains("must be between 0 and 1")), "{errs:?}");
    assert!(errs.iter().any(|e| e.contains("not a whole number")), "{errs:?}");
    assert!(!body.contains("..="), "no range written as code: {body}");
    let summary = between(&body, "id=\"error-summary\">", "</p>");
    assert!(summary.contains("3 values need fixing") && summary.contains("ua.failure.rate"), "{summary}");
    assert!(body.contains("Nothing was saved; everything typed is kept."), "{body}");
    assert!(body.contains("value=\"abc\"") && body.contains("value=\"2\"") && body.contains("value=\"0\""), "typed values kept");
    assert!(!app.broker.system.flag("quota.enable"), "all or nothing");

    // The launch form: every problem at once, what was typed kept.
    sup.post("/admin/images", &[("name", "linux"), ("id.sb", "ami-sandbox-debian-12")]).await;
    let admin = app.token("super", common::SUPER_PW).await;
    app.user(&admin, "alice").await;
    let alice = Ui::sign_in(&app, "alice", "alice-password").await;
    let (s, body) = alice
        .post("/vms", &[("instance", "sb"), ("image", "linux"), ("count", "two"), ("lease", "8 weeks"), ("tags", "oops"), ("name", "   ")])
        .await;
    assert_eq!(s, 400, "{body}");
    let errs = field_errors(&body);
    assert_eq!(errs.len(), 4, "count, lease, tags and name at once: {errs:?}");
    assert!(body.contains("id=\"error-summary\""), "{body}");
    assert!(body.contains("value=\"two\"") && body.contains("value=\"8 weeks\"") && body.contains(">oops</textarea>"), "{body}");
    assert!(live_vms(&app, "alice").await.is_empty());

    // A refused grant keeps the users typed, every bad name said at once.
    sup.post(
        "/admin/credentials",
        &[("instance", "sb2"), ("name", "team"), ("access_key_id", "AKIATEAM0000000SHAR"), ("secret_access_key", "team-secret")],
    )
    .await;
    let (s, body) = sup.post("/admin/credentials/sb2/team/grants", &[("users", "alice, Bad Name, Other!")]).await;
    assert_eq!(s, 400, "{body}");
    assert!(body.contains("value=\"alice, Bad Name, Other!\""), "typed users kept: {body}");
    let msg = between(&body, "id=\"form-error\">", "</p>");
    assert!(msg.contains("Bad") && msg.contains("Other!"), "{msg}");
    let (_, body) = sup.post("/admin/credentials/sb2/team/grants", &[("users", "alice, nobody-here")]).await;
    assert!(body.contains("Grants of team not changed") && body.contains("value=\"alice, nobody-here\""), "{body}");
});

app_test!(an_instance_declared_here_and_in_a_file_says_the_file_wins, |app: common::TestApp| async move {
    let sup = Ui::sign_in(&app, "super", common::SUPER_PW).await;
    let (s, body) = sup.post("/admin/system", &[("p.cloud.connector.class", "sb:sandbox, own:sandbox")]).await;
    assert_eq!(s, 200, "{body}");
    let (class, msg) = flash(&body);
    assert!(msg.contains("sb is also declared in") && msg.contains("sb.conf:1"), "{msg}");
    assert!(msg.contains("declaration wins (files always win"), "{msg}");
    assert!(!msg.contains("own is also"), "{msg}");
    assert!(class.contains("notice"), "{class}");
    let sect = between(&body, "id=\"instance-sb\"", "</legend>");
    assert!(sect.contains("in Basics here too: the file wins"), "{sect}");
    // Another kind: the file's kind stays.
    let (_, body) = sup.post("/admin/system", &[("p.cloud.connector.class", "sb2:ec2query")]).await;
    let msg = flash(&body).1;
    assert!(msg.contains("sb2 is declared as sandbox") && msg.contains("the ec2query declared here is ignored"), "{msg}");
});

app_test!(a_reload_with_a_broken_file_says_what_failed_and_what_loaded, |app: common::TestApp| async move {
    let sup = Ui::sign_in(&app, "super", common::SUPER_PW).await;
    let dir = app.dir.path().join("connectors.d");
    std::fs::write(dir.join("z.conf"), "cloud.connector.class = fz:sandbox\nfz.boot.delay.ms = abc\n").unwrap();
    std::fs::create_dir_all(dir.join("images")).unwrap();
    std::fs::write(dir.join("images/more.conf"), "fromfile.sb = ami-sandbox-debian-12\n").unwrap();
    let (s, body) = sup.post("/admin/system/reload", &[]).await;
    assert_eq!(s, 200);
    let (class, msg) = flash(&body);
    assert!(class.contains("warn") && !class.contains("refused"), "a partial failure is amber: {class}");
    assert!(msg.starts_with("Reloaded with problems: 1 file error(s)"), "{msg}");
    assert!(msg.contains("instance(s) not loaded: fz"), "{msg}");
    assert!(msg.contains("images from files: 1 (were 0)"), "the new images file is said: {msg}");
    assert!(!msg.contains("nothing changed"), "{msg}");
    assert!(body.contains("z.conf:2"), "the problem is listed: {body}");
    // The Connectors page lists the instance left out, with its error.
    let (_, body) = sup.get("/admin/connectors").await;
    let row = between(&body, "<tr id=\"connector-fz\"", "</tr>");
    assert!(row.contains("data-state=\"not loaded\"") && row.contains("z.conf:2"), "{row}");
    assert!(between(&body, "id=\"problems\"", "</ul>").contains("z.conf:2"), "{body}");
    assert!(between(&body, "<tr id=\"connector-sb\"", "</tr>").contains("ready"));
    // A long message is not cut (a cookie of 500 characters cut it mid-word).
    let long: String = (0..150).map(|n| format!("cloud.connector.class = q{n}:sandbox\nq{n}.boot.delay.ms = bad{n}\n")).collect();
    std::fs::write(dir.join("y.conf"), long).unwrap();
    let (_, body) = sup.post("/admin/system/reload", &[]).await;
    let msg = flash(&body).1;
    assert!(msg.starts_with("Reloaded with problems") && msg.contains("q149") && msg.contains("reloaded otherwise"), "{msg}");
});

app_test!(the_type_hint_is_what_a_launch_uses, |app: common::TestApp| async move {
    let sup = Ui::sign_in(&app, "super", common::SUPER_PW).await;
    // A parent with a default type, a child with its own id and none of its own, one with neither.
    sup.post("/admin/images", &[("name", "base"), ("id.sb", "ami-sandbox-debian-12"), ("type.sb", "t2.small")]).await;
    sup.post("/admin/images", &[("name", "child"), ("parent", "base"), ("id.sb", "ami-sandbox-ubuntu-2204")]).await;
    sup.post("/admin/images", &[("name", "inherits"), ("parent", "base")]).await;
    sup.post("/admin/images", &[("name", "plain"), ("id.sb", "ami-sandbox-debian-12")]).await;
    let admin = app.token("super", common::SUPER_PW).await;
    app.user(&admin, "alice").await;
    let alice = Ui::sign_in(&app, "alice", "alice-password").await;
    let (_, form) = alice.get("/vms").await;
    for image in ["base", "child", "inherits", "plain"] {
        let option = between(&form, &format!("<option value=\"{image}\" data-types=\""), "\"");
        let hint = option.split(';').find_map(|p| p.strip_prefix("sb=")).unwrap_or_else(|| panic!("no hint for {image}: {option}"));
        let (s, body) = alice.post("/vms", &[("instance", "sb"), ("image", image), ("name", image)]).await;
        assert!(s == 200 && body.contains("Launched 1 VM(s)"), "{body}");
        let vm = live_vms(&app, "alice").await.into_iter().find(|v| v.name == image).unwrap();
        assert_eq!(hint, vm.instance_type, "{image}: the hint is what the launch used");
        // With the image chosen, the server renders the hint without script.
        let (_, page) = alice.post("/vms", &[("instance", "sb"), ("image", image), ("count", "x")]).await;
        assert!(page.contains(&format!("placeholder=\"default: {}\"", vm.instance_type)), "{image}: {page}");
    }
});

app_test!(vm_list_fixes, |app: common::TestApp| async move {
    let sup = Ui::sign_in(&app, "super", common::SUPER_PW).await;
    sup.post("/admin/images", &[("name", "linux"), ("id.sb", "ami-sandbox-debian-12")]).await;
    let admin = app.token("super", common::SUPER_PW).await;
    app.user(&admin, "alice").await;
    let alice = Ui::sign_in(&app, "alice", "alice-password").await;
    // A name of only spaces is refused next to the field.
    let (s, body) = alice.post("/vms", &[("instance", "sb"), ("image", "linux"), ("name", "  ")]).await;
    assert_eq!(s, 400, "{body}");
    assert!(body.contains("id=\"name-error\">A name of only spaces is no name"), "{body}");
    assert!(live_vms(&app, "alice").await.is_empty());
    // Rows of one launch in their launch's order.
    let (s, body) = alice.post("/vms", &[("instance", "sb"), ("image", "linux"), ("name", "row"), ("count", "5")]).await;
    assert!(s == 200 && body.contains("Launched 5 VM(s)"), "{body}");
    let mut vms = live_vms(&app, "alice").await;
    vms.sort_by_key(|v| v.launch_index);
    let (_, body) = alice.get("/vms").await;
    let shown: Vec<&str> = body.split("<tr id=\"vm-").skip(1).map(|s| s.split('"').next().unwrap()).collect();
    let want: Vec<String> = vms.iter().map(|v| v.id.to_string()).collect();
    assert_eq!(shown, want, "launch_index order");
    // A stopped VM has a colour of its own.
    let css = app.http.get(app.url("/static/style.css")).send().await.unwrap().text().await.unwrap();
    assert!(css.contains(".state-stopped {"), "{css}");
    // Shutting down: no Terminate, and its confirmation page says why.
    app.broker.provisioning.reconcile("test").await.unwrap();
    let first = &want[0];
    let (s, body) = alice.post(&format!("/vms/{first}/terminate"), &[]).await;
    assert_eq!(s, 200, "{body}");
    let vm = app.broker.provisioning.get(&Actor::system(), &first.parse().unwrap()).await.unwrap();
    assert_eq!(vm.status, VmStatus::ShuttingDown, "until the next reconcile");
    {
        let (_, body) = alice.get("/vms").await;
        let row = between(&body, &format!("<tr id=\"vm-{first}\">"), "</tr>");
        assert!(row.contains("shutting-down") && !row.contains("Terminate"), "{row}");
        let (_, detail) = alice.get(&format!("/vms/{first}")).await;
        assert!(!detail.contains(&format!("href=\"/vms/{first}/terminate\"")), "{detail}");
        let (_, body) = alice.get(&format!("/vms/{first}/terminate")).await;
        assert!(flash(&body).1.contains("nothing to terminate"), "{body}");
    }
    // Terminated: no Terminate either.
    app.broker.provisioning.reconcile("test").await.unwrap();
    let (_, body) = alice.get("/vms").await;
    if let Some(row) = body.split(&format!("<tr id=\"vm-{first}\">")).nth(1) {
        assert!(!row.split("</tr>").next().unwrap().contains("Terminate"), "{row}");
    }
});

app_test!(a_failed_launch_is_said_once, |app: common::TestApp| async move {
    let sup = Ui::sign_in(&app, "super", common::SUPER_PW).await;
    sup.post("/admin/system", &[("p.cloud.connector.class", "flaky:sandbox")]).await;
    let (_, body) = sup.post("/admin/system", &[("p.flaky.failure.rate", "1"), ("p.flaky.boot.delay.ms", "0")]).await;
    assert!(body.contains("Saved 2 value(s)"), "{body}");
    sup.post("/admin/images", &[("name", "linux"), ("id.flaky", "ami-sandbox-debian-12")]).await;
    let (s, body) = sup.post("/vms", &[("instance", "flaky"), ("image", "linux"), ("name", "doomed")]).await;
    assert_ne!(s, 200, "{body}");
    let failed: Vec<_> = live_vms(&app, "super").await.into_iter().filter(|v| v.status == VmStatus::Failed).collect();
    assert_eq!(failed.len(), 1, "{failed:?}");
    let why = failed[0].error.clone().unwrap();
    let shown = why.replace('\'', "&#x27;");
    assert_eq!(body.matches(&shown).count(), 1, "the failure is said once: {shown} in {body}");
    let form_error = between(&body, "id=\"form-error\">", "</p>");
    assert!(form_error.contains(&format!("{} below", failed[0].id)), "the form points at the failed VM: {form_error}");
});

app_test!(shared_credentials_are_said_on_the_dashboard_and_the_credentials_page, |app: common::TestApp| async move {
    let sup = Ui::sign_in(&app, "super", common::SUPER_PW).await;
    sup.post(
        "/admin/credentials",
        &[("instance", "sb2"), ("name", "team"), ("access_key_id", "AKIATEAM0000000SHAR"), ("secret_access_key", "team-secret")],
    )
    .await;
    let admin = app.token("super", common::SUPER_PW).await;
    app.user(&admin, "alice").await;
    sup.post("/admin/credentials/sb2/team/grants", &[("users", "alice")]).await;
    let alice = Ui::sign_in(&app, "alice", "alice-password").await;
    let (_, home) = alice.get("/").await;
    assert!(home.contains("class=\"badge cred-shared\">shared: team</a>"), "{home}");
    let (_, creds) = alice.get("/credentials").await;
    let sb2 = between(&creds, "id=\"cred-use-sb2\">", "</p>");
    assert!(sb2.contains("shared") && sb2.contains("<strong>team</strong>") && !sb2.contains("need them"), "{sb2}");
    // An instance that needs none says so on both pages.
    assert!(home.contains("cred-not-needed\">not needed</a>"), "{home}");
    let sb = between(&creds, "id=\"cred-use-sb\">", "</p>");
    assert!(sb.contains("not needed") && !sb.contains("need them"), "{sb}");
    assert!(!creds.contains("team-secret") && !creds.contains("AKIATEAM0000000SHAR"), "never the keys");
});

app_test!(the_api_reference_renders_markdown_and_is_linked, |app: common::TestApp| async move {
    let page = app.http.get(app.url("/api/docs")).send().await.unwrap().text().await.unwrap();
    assert!(!page.contains('`'), "no raw Markdown backticks");
    assert!(page.contains("<code>"), "{page}");
    let admin = app.token("super", common::SUPER_PW).await;
    app.user(&admin, "alice").await;
    let alice = Ui::sign_in(&app, "alice", "alice-password").await;
    for path in ["/", "/vms", "/profile", "/credentials"] {
        let (_, body) = alice.get(path).await;
        assert!(body.contains("href=\"/api/docs\""), "{path} links the API reference");
    }
});

app_test!(the_vm_list_searches_by_name_and_tag, |app: common::TestApp| async move {
    let sup = Ui::sign_in(&app, "super", common::SUPER_PW).await;
    sup.post("/admin/images", &[("name", "linux"), ("id.sb", "ami-sandbox-debian-12")]).await;
    let admin = app.token("super", common::SUPER_PW).await;
    app.user(&admin, "alice").await;
    let alice = Ui::sign_in(&app, "alice", "alice-password").await;
    alice.post("/vms", &[("instance", "sb"), ("image", "linux"), ("name", "web"), ("tags", "team=shop")]).await;
    alice.post("/vms", &[("instance", "sb"), ("image", "linux"), ("name", "db"), ("tags", "team=data")]).await;
    let rows = |body: &str| body.matches("<tr id=\"vm-").count();
    let (_, body) = alice.get("/vms").await;
    assert_eq!(rows(&body), 2);
    // Ids never wrap, the full id on hover.
    let web = live_vms(&app, "alice").await.into_iter().find(|v| v.name == "web").unwrap();
    assert!(body.contains(&format!("<td class=\"vm-id\" title=\"{0}\"><code>{0}</code></td>", web.id)), "{body}");
    let (_, body) = alice.get("/vms?q=web").await;
    assert!(rows(&body) == 1 && body.contains(&format!("id=\"vm-{}\"", web.id)), "{body}");
    assert!(body.contains("id=\"f-q\" name=\"q\" value=\"web\""), "the search is kept: {body}");
    let (_, body) = alice.get("/vms?q=team%3Ddata").await;
    assert!(rows(&body) == 1 && body.contains(">db</a>"), "{body}");
    let (_, body) = alice.get("/vms?q=nothing-like-it").await;
    assert!(rows(&body) == 0 && body.contains("No VMs match these filters"), "{body}");
});
