//! The UI's forms through the real server without a browser (fast):
//! validation errors come back next to their field with what was typed
//! kept and nothing stored, CSRF-less posts are refused, every admin page
//! refuses non-admins, malformed bodies get an HTML page, and no page shows
//! another user's data. Projects: the header's switcher and its cookie, the
//! fall back from a project one is no member of, members and roles, a
//! project's credentials (the secret never rendered), and a viewer who gets
//! no buttons and whose forged forms are refused. On SQLite and PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::zombie_processes)]

mod common;

use reqwest::redirect::Policy;

/// A signed-in user's cookie jar.
struct Ui {
    http: reqwest::Client,
    /// The same cookies, redirects not followed (to read a response's cookies).
    raw: reqwest::Client,
    jar: std::sync::Arc<reqwest::cookie::Jar>,
    base: String,
    csrf: String,
}

fn clients(jar: &std::sync::Arc<reqwest::cookie::Jar>) -> (reqwest::Client, reqwest::Client) {
    let http = reqwest::Client::builder().cookie_provider(jar.clone()).redirect(Policy::limited(5)).build().unwrap();
    let raw = reqwest::Client::builder().cookie_provider(jar.clone()).redirect(Policy::none()).build().unwrap();
    (http, raw)
}

fn csrf_of(body: &str) -> String {
    let at = body.find("name=\"csrf\" value=\"").expect("a form with a CSRF token") + "name=\"csrf\" value=\"".len();
    body[at..].split('"').next().unwrap().to_string()
}

impl Ui {
    async fn sign_in(app: &common::TestApp, user: &str, pw: &str) -> Self {
        let jar = std::sync::Arc::new(reqwest::cookie::Jar::default());
        let (http, raw) = clients(&jar);
        let page = http.get(app.url("/login")).send().await.unwrap().text().await.unwrap();
        let csrf = csrf_of(&page);
        let r = http.post(app.url("/login")).form(&[("username", user), ("password", pw), ("csrf", &csrf)]).send().await.unwrap();
        assert_eq!(r.status(), 200, "sign-in of {user}");
        let home = r.text().await.unwrap();
        assert!(home.contains("Dashboard"), "{home}");
        Self { http, raw, jar, base: app.base.clone(), csrf: csrf_of(&home) }
    }

    async fn get(&self, path: &str) -> (u16, String) {
        let r = self.http.get(format!("{}{path}", self.base)).send().await.unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    /// Posts a form with the session's CSRF token.
    async fn post(&self, path: &str, fields: &[(&str, &str)]) -> (u16, String) {
        let mut f: Vec<(&str, &str)> = fields.to_vec();
        f.push(("csrf", &self.csrf));
        self.post_raw(path, &f).await
    }

    async fn post_raw(&self, path: &str, fields: &[(&str, &str)]) -> (u16, String) {
        let r = self.http.post(format!("{}{path}", self.base)).form(fields).send().await.unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }
}

/// The text of the field error right after the element with `id`.
fn has_field_error(body: &str, contains: &str) -> bool {
    body.split("class=\"field-error\"").skip(1).any(|s| s.split("</span>").next().is_some_and(|e| e.contains(contains)))
}

const ADMIN_PAGES: &[&str] = &[
    "/admin/system",
    "/admin/connectors",
    "/admin/images",
    "/admin/images/new",
    "/admin/images/linux",
    "/admin/users",
    "/admin/users/super",
    "/admin/governance",
];

app_test!(non_admins_are_refused_every_admin_page, |app: common::TestApp| async move {
    let admin = app.token("super", common::SUPER_PW).await;
    app.user(&admin, "alice").await;
    let alice = Ui::sign_in(&app, "alice", "alice-password").await;
    for p in ADMIN_PAGES {
        let (s, body) = alice.get(p).await;
        assert_eq!(s, 403, "{p}");
        assert!(body.contains("for administrators") && body.contains("request id"), "{p}: {body}");
    }
    for (p, f) in [
        ("/admin/users", vec![("name", "mallory"), ("password", "mallory-password")]),
        ("/admin/users/alice/admin", vec![("value", "true")]),
        ("/admin/system", vec![("p.quota.enable", "true")]),
        ("/admin/system/reload", vec![]),
        ("/admin/images", vec![("name", "evil")]),
        ("/admin/credentials", vec![("instance", "sb"), ("name", "x"), ("access_key_id", "a"), ("secret_access_key", "b")]),
        ("/admin/credentials/sb/x/grants", vec![("users", "alice")]),
        ("/admin/credentials/sb/x/delete", vec![]),
        ("/admin/images/linux", vec![("name", "linux")]),
        ("/admin/images/linux/delete", vec![]),
        ("/admin/users/super/disabled", vec![("value", "true")]),
        ("/admin/users/super/password", vec![("password", "taken-over-pw")]),
        ("/admin/users/super/tokens/revoke", vec![]),
        ("/admin/users/alice/quotas", vec![("instance", "sb"), ("vm", "1000")]),
    ] {
        let (s, _) = alice.post(p, &f).await;
        assert_eq!(s, 403, "{p}");
    }
    let u = app.broker.identity.get_user(&cloudbroker_core::Actor::system(), &"alice".parse().unwrap()).await.unwrap();
    assert!(!u.is_admin, "alice did not make herself admin");
    assert!(app.broker.identity.get_user(&cloudbroker_core::Actor::system(), &"mallory".parse().unwrap()).await.is_err());
    // super's account is untouched: the password still works.
    app.token("super", common::SUPER_PW).await;
    // Admins get them all; unknown pages are a 404 page.
    let sup = Ui::sign_in(&app, "super", common::SUPER_PW).await;
    for p in
        ["/admin/system", "/admin/connectors", "/admin/images", "/admin/users", "/admin/users/alice", "/vms", "/credentials", "/profile"]
    {
        assert_eq!(sup.get(p).await.0, 200, "{p}");
    }
    // The declaration help names the kinds the binary registered (none written into the page).
    let (_, system) = sup.get("/admin/system").await;
    let kinds: Vec<&str> = app.broker.registry.kinds().iter().map(|k| k.as_str()).collect();
    assert!(system.contains(&format!("(connectors: {})", kinds.join(", "))), "{system}");
    assert_eq!(kinds, ["ec2", "ec2query", "sandbox"]);
    let (s, body) = sup.get("/admin/nothing-here").await;
    assert!(s == 404 && body.contains("Page not found"), "{s}");
    assert_eq!(alice.get("/no-such-page").await.0, 404);
});

app_test!(posts_without_the_csrf_token_are_refused_and_change_nothing, |app: common::TestApp| async move {
    let sup = Ui::sign_in(&app, "super", common::SUPER_PW).await;
    for (p, f) in [
        (
            "/profile/ssh-key",
            vec![("ssh_public_key", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIE9ZfpwrfDSOaGNb8DqJpnh7HyVGFiNnwaPd3OTVxJ1x x@y")],
        ),
        ("/admin/system", vec![("p.quota.enable", "true")]),
        ("/admin/users", vec![("name", "bob"), ("password", "bob-password-1")]),
        ("/credentials/sb", vec![("access_key_id", "AKIA1"), ("secret_access_key", "s")]),
        ("/vms", vec![("instance", "sb"), ("image", "ami-sandbox-debian-12")]),
    ] {
        let (s, body) = sup.post_raw(p, &f).await;
        assert_eq!(s, 403, "{p}");
        assert!(body.contains("CSRF"), "{p}: {body}");
        let mut wrong = f.clone();
        wrong.push(("csrf", "0123456789abcdef0123456789abcdef"));
        assert_eq!(sup.post_raw(p, &wrong).await.0, 403, "{p} with a wrong token");
    }
    assert!(!app.broker.system.flag("quota.enable"));
    let actor = cloudbroker_core::Actor::system();
    assert!(app.broker.identity.get_user(&actor, &"bob".parse().unwrap()).await.is_err());
    assert!(app.broker.identity.get_user(&actor, &"super".parse().unwrap()).await.unwrap().ssh_public_key.is_none());
});

app_test!(system_form_errors_stay_next_to_the_field_and_keep_input, |app: common::TestApp| async move {
    let sup = Ui::sign_in(&app, "super", common::SUPER_PW).await;
    // Declare two instances: both sections appear.
    let (s, body) = sup.post("/admin/system", &[("p.cloud.connector.class", "sbx-a:sandbox, sbx-b:sandbox")]).await;
    assert_eq!(s, 200, "{body}");
    assert!(body.contains("Saved 1 value(s): cloud.connector.class"), "{body}");
    assert!(body.contains("id=\"instance-sbx-a\"") && body.contains("id=\"instance-sbx-b\""), "{body}");
    assert!(body.contains("set here by super"), "origin of the declaration");
    // A parameter's origin after a save.
    let (_, body) = sup.post("/admin/system", &[("p.sbx-a.boot.delay.ms", "250")]).await;
    let sect = body.split("id=\"instance-sbx-a\"").nth(1).unwrap();
    assert!(sect.contains("value=\"250\"") && sect.contains("set here by super"), "{sect}");
    // A bad value: message next to the field, typed values kept, nothing stored.
    let (s, body) = sup
        .post("/admin/system", &[("p.sbx-a.max.iaas.workers", "lots"), ("p.sbx-b.boot.delay.ms", "777"), ("p.quota.enable", "true")])
        .await;
    assert_eq!(s, 400);
    assert!(has_field_error(&body, "sbx-a.max.iaas.workers"), "{body}");
    assert!(body.contains("value=\"lots\"") && body.contains("value=\"777\""), "typed values kept");
    assert!(body.contains("Nothing was saved"));
    assert!(!app.broker.system.flag("quota.enable"), "all or nothing");
    // A file's value is read-only, and a forged change of it is refused next to it.
    let sb = body.split("id=\"instance-sb\"").nth(1).unwrap();
    assert!(sb.contains("sb.conf:2") && sb.contains("readonly"), "{sb}");
    let (s, body) = sup.post("/admin/system", &[("p.sb.boot.delay.ms", "5")]).await;
    assert_eq!(s, 400);
    assert!(has_field_error(&body, "managed by"), "{body}");
    // A declaration that fails shows its error in its section and on the dashboard.
    let (_, body) = sup.post("/admin/system", &[("p.cloud.connector.class", "sbx-a:sandbox, sbx-b:sandbox, q:ec2query")]).await;
    let q = body.split("id=\"instance-q\"").nth(1).unwrap();
    assert!(q.contains("required parameter &#x27;q.endpoint&#x27; is not set"), "{q}");
    let (_, home) = sup.get("/").await;
    assert!(home.contains("q: required parameter"), "{home}");
    // Reload says what changed and what failed.
    std::fs::write(app.dir.path().join("connectors.d/z.conf"), "cloud.connector.class = fz:sandbox\nfz.boot.delay.ms = abc\n").unwrap();
    let (_, body) = sup.post("/admin/system/reload", &[]).await;
    assert!(body.contains("Configuration files reloaded") && body.contains("z.conf:2"), "{body}");
    // Bad declaration syntax is a field error on Basics.
    let (s, body) = sup.post("/admin/system", &[("p.cloud.connector.class", "Bad Name:sandbox")]).await;
    assert_eq!(s, 400);
    assert!(has_field_error(&body, "cloud.connector.class") && body.contains("value=\"Bad Name:sandbox\""), "{body}");
});

app_test!(image_user_credential_and_launch_forms, |app: common::TestApp| async move {
    let sup = Ui::sign_in(&app, "super", common::SUPER_PW).await;
    // Image: a missing parent is a field error; then a good one with inheritance shown.
    let (s, body) = sup.post("/admin/images", &[("name", "ubuntu"), ("parent", "nope"), ("id.sb", "ami-sandbox-ubuntu-2204")]).await;
    assert_eq!(s, 400);
    assert!(has_field_error(&body, "does not exist") && body.contains("value=\"ami-sandbox-ubuntu-2204\""), "{body}");
    let (s, _) = sup.post("/admin/images", &[("name", "linux"), ("id.sb", "ami-sandbox-debian-12"), ("type.sb", "t2.small")]).await;
    assert_eq!(s, 200);
    let (s, body) = sup.post("/admin/images", &[("name", "ubuntu"), ("parent", "linux"), ("id.sb2", "ami-sandbox-ubuntu-2204")]).await;
    assert_eq!(s, 200, "{body}");
    assert!(
        body.contains("ami-sandbox-debian-12 (inherited from linux)") && body.contains("ami-sandbox-ubuntu-2204 (this image)"),
        "{body}"
    );
    // A cycle is refused next to the parent.
    let (s, body) = sup.post("/admin/images/linux", &[("parent", "ubuntu"), ("id.sb", "ami-sandbox-debian-12")]).await;
    assert_eq!(s, 400);
    assert!(has_field_error(&body, "cycle"), "{body}");
    // Users: a short password keeps the name typed.
    let (s, body) = sup.post("/admin/users", &[("name", "carol"), ("password", "x")]).await;
    assert_eq!(s, 400);
    assert!(has_field_error(&body, "password must have") && body.contains("value=\"carol\""), "{body}");
    let (s, _) = sup.post("/admin/users", &[("name", "carol"), ("password", "carol-password")]).await;
    assert_eq!(s, 200);
    let (_, body) = sup.post("/admin/system", &[("p.quota.enable", "true")]).await;
    assert!(body.contains("Saved"), "{body}");
    let (s, body) = sup.post("/admin/users/carol/quotas", &[("instance", "sb"), ("vm", "-3")]).await;
    assert_eq!(s, 400);
    assert!(body.contains("value=\"-3\"") && has_field_error(&body, "between"), "{body}");
    let (_, body) = sup.post("/admin/users/carol/quotas", &[("instance", "sb"), ("vm", "1")]).await;
    assert!(body.contains("Quota of carol on sb: 1 VMs"), "{body}");

    let carol = Ui::sign_in(&app, "carol", "carol-password").await;
    let (s, body) = carol.post("/vms", &[("instance", "sb"), ("image", "linux"), ("count", "two"), ("name", "web")]).await;
    assert_eq!(s, 400);
    assert!(has_field_error(&body, "whole number") && body.contains("value=\"web\""), "{body}");
    // Credentials: masked once saved, the secret never rendered back.
    let (s, body) =
        carol.post("/credentials/sb", &[("access_key_id", "AKIACAROL0000001234"), ("secret_access_key", "carol-cloud-secret")]).await;
    assert_eq!(s, 200);
    assert!(body.contains("****1234") && body.contains("verified"), "{body}");
    assert!(!body.contains("carol-cloud-secret") && !body.contains("AKIACAROL0000001234"));
    // Over quota: a message a user understands.
    let (s, body) = carol.post("/vms", &[("instance", "sb"), ("image", "linux"), ("count", "2")]).await;
    assert_eq!(s, 409, "{body}");
    assert!(body.contains("Over quota: you may have 1 VM(s)"), "{body}");
    let (s, body) = carol.post("/vms", &[("instance", "sb"), ("image", "linux"), ("name", "web-1")]).await;
    assert_eq!(s, 200);
    assert!(body.contains("Launched 1 VM(s)") && body.contains("web-1"), "{body}");
    // Delete refused while a live VM uses them.
    let (s, body) = carol.post("/credentials/sb/delete", &[]).await;
    assert_eq!(s, 400);
    assert!(body.contains("in use by live VM"), "{body}");
    // Alice sees none of carol's.
    let admin = app.token("super", common::SUPER_PW).await;
    app.user(&admin, "alice").await;
    let alice = Ui::sign_in(&app, "alice", "alice-password").await;
    let (_, vms) = alice.get("/vms").await;
    assert!(!vms.contains("web-1") && vms.contains("No VMs"));
    let (_, creds) = alice.get("/credentials").await;
    assert!(!creds.contains("****1234"));
    let id = app.broker.provisioning.vm_counts(&cloudbroker_core::Actor::system(), None).await.unwrap();
    assert_eq!(id.iter().map(|c| c.count).sum::<i64>(), 1);
});

app_test!(profile_forms_and_malformed_bodies, |app: common::TestApp| async move {
    let admin = app.token("super", common::SUPER_PW).await;
    app.user(&admin, "dave").await;
    let dave = Ui::sign_in(&app, "dave", "dave-password").await;
    let (s, body) = dave
        .post(
            "/profile/password",
            &[("current_password", "wrong"), ("new_password", "dave-new-pass"), ("confirm_password", "dave-new-pass")],
        )
        .await;
    assert_eq!(s, 400);
    assert!(has_field_error(&body, "current password is wrong"), "{body}");
    let (s, body) =
        dave.post("/profile/password", &[("current_password", "dave-password"), ("new_password", "a"), ("confirm_password", "b")]).await;
    assert_eq!(s, 400);
    assert!(has_field_error(&body, "differ"), "{body}");
    let (s, body) = dave.post("/profile/tokens", &[("name", "ci"), ("days", "0")]).await;
    assert_eq!(s, 400);
    assert!(has_field_error(&body, "whole number of days") && body.contains("value=\"ci\""), "{body}");
    let (s, body) = dave.post("/profile/tokens", &[("name", "ci"), ("days", "7")]).await;
    assert_eq!(s, 200);
    let token = body.split("id=\"new-token\">").nth(1).unwrap().split('<').next().unwrap().to_string();
    assert!(token.starts_with("cbt_"));
    let (_, again) = dave.get("/profile").await;
    assert!(!again.contains(&token), "shown once");
    let (s, _) = app.call(reqwest::Method::GET, "/api/v1/vms", &token, None).await;
    assert_eq!(s, 200, "the token works");
    // A form missing a field: an HTML page, not actix's plain text.
    let r = dave.http.post(format!("{}/profile/ssh-key", dave.base)).form(&[("csrf", dave.csrf.as_str())]).send().await.unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    let body = r.text().await.unwrap();
    assert!(body.contains("could not be read") && body.contains("request id"), "{body}");
    // The right password changes it and signs out.
    let (s, body) = dave
        .post(
            "/profile/password",
            &[("current_password", "dave-password"), ("new_password", "dave-new-pass"), ("confirm_password", "dave-new-pass")],
        )
        .await;
    assert_eq!(s, 200);
    assert!(body.contains("Sign in") && body.contains("Password changed"), "{body}");
    Ui::sign_in(&app, "dave", "dave-new-pass").await;
});

app_test!(shared_credentials_and_the_audit_log, |app: common::TestApp| async move {
    let admin = app.token("super", common::SUPER_PW).await;
    app.user(&admin, "alice").await;
    let sup = Ui::sign_in(&app, "super", common::SUPER_PW).await;
    let (s, body) = sup
        .post(
            "/admin/credentials",
            &[("instance", "sb2"), ("name", "Bad Name"), ("access_key_id", "AKIATEAM0000000SHAR"), ("secret_access_key", "team-secret")],
        )
        .await;
    assert_eq!(s, 400);
    assert!(body.contains("value=\"AKIATEAM0000000SHAR\"") && body.contains("class=\"field-error\""), "{body}");
    let (s, body) = sup
        .post(
            "/admin/credentials",
            &[("instance", "sb2"), ("name", "team"), ("access_key_id", "AKIATEAM0000000SHAR"), ("secret_access_key", "team-secret")],
        )
        .await;
    assert_eq!(s, 200);
    assert!(body.contains("Shared credential team for sb2 saved") && body.contains("****SHAR"), "{body}");
    assert!(!body.contains("team-secret") && !body.contains("AKIATEAM0000000SHAR"), "never shown back in clear");
    let (_, body) = sup.post("/admin/credentials/sb2/team/grants", &[("users", "alice, nobody-here")]).await;
    assert!(body.contains("Grants of team not changed") && body.contains("nobody-here"), "{body}");
    let (_, body) = sup.post("/admin/credentials/sb2/team/grants", &[("users", "alice")]).await;
    assert!(body.contains("granted to 1 user(s)") && body.contains("value=\"alice\""), "{body}");
    // The audit log, newest first, filtered; a bad date is a field error.
    let (s, body) = sup.get("/admin/audit?action=credential.save").await;
    assert_eq!(s, 200);
    // The rows (the action select lists every action).
    let rows = body.split("<table id=\"audit\"").nth(1).and_then(|t| t.split("</table>").next()).unwrap_or_default();
    assert!(rows.contains("system/team/sb2") && !rows.contains("credential.grant"), "{body}");
    let (s, body) = sup.get("/admin/audit?since=yesterday").await;
    assert_eq!(s, 400);
    assert!(has_field_error(&body, "YYYY-MM-DD") && body.contains("value=\"yesterday\""), "{body}");
    let alice = Ui::sign_in(&app, "alice", "alice-password").await;
    assert_eq!(alice.get("/admin/credentials").await.0, 403);
});

app_test!(file_image_ids_are_read_only_and_disabled_users_are_out, |app: common::TestApp| async move {
    let dir = app.dir.path().join("connectors.d/images");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("base.conf"), "# shipped ids\ndebian-12.sb = ami-sandbox-debian-12\n").unwrap();
    let sup = Ui::sign_in(&app, "super", common::SUPER_PW).await;
    let (_, body) = sup.post("/admin/system/reload", &[]).await;
    assert!(body.contains("Configuration files reloaded"), "{body}");
    let (s, body) = sup.get("/admin/images/debian-12").await;
    assert_eq!(s, 200);
    let row = body.split("id=\"id.sb\"").nth(1).unwrap();
    assert!(row.contains("readonly") && row.contains("base.conf:2"), "{row}");
    assert!(body.contains("ami-sandbox-debian-12 (this image)"), "{body}");
    // A default type on top of the file's id is stored; the id stays the file's.
    let (s, body) = sup.post("/admin/images/debian-12", &[("type.sb", "t2.large"), ("save_anyway", "on")]).await;
    assert_eq!(s, 200, "{body}");
    let r = app.broker.images.resolve(&"debian-12".parse().unwrap(), &"sb".parse().unwrap()).await.unwrap();
    assert_eq!((r.image_id.as_str(), r.instance_type.as_deref()), ("ami-sandbox-debian-12", Some("t2.large")));

    // Disabling ends the user's session and sign-ins; enabling lets them back.
    let admin = app.token("super", common::SUPER_PW).await;
    app.user(&admin, "gina").await;
    let gina = Ui::sign_in(&app, "gina", "gina-password").await;
    let (_, body) = sup.post("/admin/users/gina/disabled", &[("value", "true")]).await;
    assert!(body.contains("gina disabled"), "{body}");
    let r = gina.http.get(format!("{}/vms", gina.base)).send().await.unwrap();
    assert!(r.url().path().ends_with("/login"), "session ended");
    let page = gina.http.get(format!("{}/login", gina.base)).send().await.unwrap().text().await.unwrap();
    let csrf = csrf_of(&page);
    let r = gina
        .http
        .post(format!("{}/login", gina.base))
        .form(&[("username", "gina"), ("password", "gina-password"), ("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_ne!(r.status(), 200, "a disabled user cannot sign in");
    let (_, body) = sup.post("/admin/users/super/disabled", &[("value", "true")]).await;
    assert!(body.contains("cannot be disabled"), "{body}");
    sup.post("/admin/users/gina/disabled", &[("value", "false")]).await;
    Ui::sign_in(&app, "gina", "gina-password").await;
});

app_test!(the_vm_list_pages_and_filters, |app: common::TestApp| async move {
    let admin = app.token("super", common::SUPER_PW).await;
    let hal = app.user(&admin, "hal").await;
    for (inst, n) in [("sb", 20), ("sb2", 10)] {
        let (s, b) = app
            .call(
                reqwest::Method::POST,
                "/api/v1/vms",
                &hal,
                Some(serde_json::json!({"instance": inst, "image": "ami-sandbox-debian-12", "count": n, "name": format!("{inst}-vm")})),
            )
            .await;
        assert!(s == 201 || s == 409, "{b}");
        if s == 409 {
            // Raw ids are off: map a native image and launch by it.
            let (s, b) = app
                .call(
                    reqwest::Method::POST,
                    "/api/v1/images",
                    &admin,
                    Some(serde_json::json!({"name": "deb", "mappings": {"sb": {"image_id": "ami-sandbox-debian-12"}, "sb2": {"image_id": "ami-sandbox-debian-12"}}})),
                )
                .await;
            assert!(s == 201 || s == 409, "{b}");
            let (s, b) = app
                .call(
                    reqwest::Method::POST,
                    "/api/v1/vms",
                    &hal,
                    Some(serde_json::json!({"instance": inst, "image": "deb", "count": n, "name": format!("{inst}-vm")})),
                )
                .await;
            assert_eq!(s, 201, "{b}");
        }
    }
    let ui = Ui::sign_in(&app, "hal", "hal-password").await;
    let (_, first) = ui.get("/vms").await;
    assert_eq!(first.matches("<tr id=\"vm-").count(), 25);
    let next = first.split("href=\"").find(|s| s.starts_with("/vms?") && s.contains("cursor=")).unwrap().split('"').next().unwrap();
    let (s, second) = ui.get(&next.replace("&amp;", "&")).await;
    assert_eq!(s, 200);
    assert_eq!(second.matches("<tr id=\"vm-").count(), 5);
    assert!(second.contains("First page") && !second.contains("rel=\"next\""));
    let (_, sb2) = ui.get("/vms?instance=sb2&state=").await;
    assert_eq!(sb2.matches("<tr id=\"vm-").count(), 10);
    let (s, body) = ui.get("/vms?state=sleepy").await;
    assert_eq!(s, 400, "{body}");
    let (s, _) = ui.get("/vms?cursor=garbage").await;
    assert_eq!(s, 400);
});

app_test!(launching_without_credentials_says_where_to_put_them, |app: common::TestApp| async move {
    let sup = Ui::sign_in(&app, "super", common::SUPER_PW).await;
    let (_, body) =
        sup.post("/admin/system", &[("p.cloud.connector.class", "one:ec2query"), ("p.one.endpoint", "http://127.0.0.1:9/")]).await;
    assert!(body.contains("Saved"), "{body}");
    sup.post("/admin/images", &[("name", "deb"), ("id.one", "ami-00000001")]).await;
    let admin = app.token("super", common::SUPER_PW).await;
    app.user(&admin, "ivy").await;
    let ivy = Ui::sign_in(&app, "ivy", "ivy-password").await;
    let (_, home) = ivy.get("/").await;
    assert!(home.contains("cred-missing"), "the dashboard says credentials are missing");
    let (s, body) = ivy.post("/vms", &[("instance", "one"), ("image", "deb")]).await;
    assert_eq!(s, 400);
    assert!(has_field_error(&body, "save them on the Credentials page"), "{body}");
    assert!(body.contains("<option value=\"one\" selected>"), "the choice is kept");
});

/// A SigV4-signed DescribeInstances on region `sb`: the HTTP status.
async fn ec2_describe(app: &common::TestApp, key_id: &str, secret: &str) -> u16 {
    let body = "Action=DescribeInstances&Version=2016-11-15";
    let headers = vec![
        ("host".to_string(), app.base.trim_start_matches("http://").to_string()),
        ("content-type".to_string(), "application/x-www-form-urlencoded".to_string()),
    ];
    let params = cloudbroker_sigv::SigningParams::new(key_id, secret, "sb", "ec2", chrono::Utc::now());
    let added = cloudbroker_sigv::sign_v4_headers("POST", "/ec2", &[], &headers, body.as_bytes(), &params).unwrap();
    let mut r = app.http.post(app.url("/ec2")).body(body);
    for (k, v) in headers.iter().chain(added.iter()).filter(|(k, _)| k != "host") {
        r = r.header(k.as_str(), v.as_str());
    }
    r.send().await.unwrap().status().as_u16()
}

fn between<'a>(body: &'a str, start: &str, end: &str) -> &'a str {
    body.split(start).nth(1).and_then(|r| r.split(end).next()).unwrap_or_else(|| panic!("no {start} in {body}"))
}

app_test!(access_keys_and_the_default_region_on_the_profile_page, |app: common::TestApp| async move {
    let admin = app.token("super", common::SUPER_PW).await;
    app.user(&admin, "erin").await;
    app.user(&admin, "frank").await;
    let erin = Ui::sign_in(&app, "erin", "erin-password").await;
    let (_, body) = erin.get("/profile").await;
    assert!(body.contains("No access keys."), "{body}");
    // Without the CSRF token: refused, nothing created.
    let (s, _) = erin.post_raw("/profile/access-keys", &[]).await;
    assert_eq!(s, 403);
    let erin_name: cloudbroker_core::domain::UserName = "erin".parse().unwrap();
    let actor = cloudbroker_core::Actor::system();
    assert!(app.broker.access_keys.list(&actor, &erin_name).await.unwrap().is_empty());
    // Created: the secret shown once, with an awscli line for this broker.
    let (s, body) = erin.post("/profile/access-keys", &[]).await;
    assert_eq!(s, 200, "{body}");
    let key_id = between(&body, "id=\"new-access-key-id\">", "<").to_string();
    let secret = between(&body, "id=\"new-secret-key\">", "<").to_string();
    assert!(key_id.starts_with("AKIA") && secret.len() >= 40, "{key_id}");
    let example = between(&body, "id=\"awscli-example\" readonly rows=\"3\" cols=\"80\">", "</textarea>");
    assert!(example.contains(&format!("--endpoint-url {}/ec2 --region sb ec2 describe-instances", app.base)), "{example}");
    assert!(example.contains(&key_id) && example.contains(&secret), "{example}");
    let fresh = between(&body, &format!("<tr data-key=\"{key_id}\">"), "</tr>");
    assert!(fresh.contains("<td>never</td>"), "a new key was never used: {fresh}");
    assert_eq!(ec2_describe(&app, &key_id, &secret).await, 200, "the key from the page works");
    let (_, again) = erin.get("/profile").await;
    assert!(!again.contains(&secret), "the secret is shown once");
    let row = between(&again, &format!("<tr data-key=\"{key_id}\">"), "</tr>");
    assert!(row.contains("<td class=\"state\">active</td>") && !row.contains("<td>never</td>"), "last used is shown: {row}");
    // Another user cannot touch it: not found, and it stays active.
    let frank = Ui::sign_in(&app, "frank", "frank-password").await;
    let (s, _) = frank.post(&format!("/profile/access-keys/{key_id}/disable"), &[]).await;
    assert_eq!(s, 404);
    let (s, _) = frank.post(&format!("/profile/access-keys/{key_id}/delete"), &[]).await;
    assert_eq!(s, 404);
    assert_eq!(ec2_describe(&app, &key_id, &secret).await, 200);
    // Disable, enable, delete, each followed by the page saying so.
    let (s, body) = erin.post(&format!("/profile/access-keys/{key_id}/disable"), &[]).await;
    assert!(s == 200 && body.contains("Access key disabled"), "{body}");
    assert!(between(&body, &format!("<tr data-key=\"{key_id}\">"), "</tr>").contains("disabled"));
    assert_eq!(ec2_describe(&app, &key_id, &secret).await, 401);
    let (s, body) = erin.post(&format!("/profile/access-keys/{key_id}/enable"), &[]).await;
    assert!(s == 200 && body.contains("Access key enabled"), "{body}");
    assert_eq!(ec2_describe(&app, &key_id, &secret).await, 200);
    let (s, _) = erin.post(&format!("/profile/access-keys/{key_id}/explode"), &[]).await;
    assert_eq!(s, 404);
    let (s, body) = erin.post(&format!("/profile/access-keys/{key_id}/delete"), &[]).await;
    assert!(s == 200 && body.contains("Access key deleted") && !body.contains(&format!("data-key=\"{key_id}\"")), "{body}");
    assert_eq!(ec2_describe(&app, &key_id, &secret).await, 401);
    // The limit of active keys comes back as a message on the form.
    for _ in 0..cloudbroker_core::access_keys::MAX_KEYS_PER_USER {
        assert_eq!(erin.post("/profile/access-keys", &[]).await.0, 200);
    }
    let (s, body) = erin.post("/profile/access-keys", &[]).await;
    assert!(s == 400 && body.contains("id=\"form-error\"") && body.contains("active access keys"), "{s} {body}");
    assert_eq!(app.broker.access_keys.list(&actor, &erin_name).await.unwrap().len(), cloudbroker_core::access_keys::MAX_KEYS_PER_USER);

    // The default EC2 region: a bad name next to the field, kept, nothing stored.
    let (s, body) = erin.post("/profile/default-region", &[("default_ec2_region", "no-such-cloud")]).await;
    assert_eq!(s, 400);
    assert!(has_field_error(&body, "&#x27;no-such-cloud&#x27; is not a connector instance"), "{body}");
    assert!(body.contains("value=\"no-such-cloud\""), "{body}");
    let stored = |app: &common::TestApp| {
        let b = app.broker.clone();
        async move { b.identity.get_user(&cloudbroker_core::Actor::system(), &"erin".parse().unwrap()).await.unwrap().default_ec2_region }
    };
    assert_eq!(stored(&app).await, None);
    let (s, body) = erin.post("/profile/default-region", &[("default_ec2_region", "sb2")]).await;
    assert!(s == 200 && body.contains("Default EC2 region set to sb2") && body.contains("value=\"sb2\""), "{body}");
    assert_eq!(stored(&app).await.as_deref(), Some("sb2"));
    let (s, _) = erin.post_raw("/profile/default-region", &[("default_ec2_region", "sb")]).await;
    assert_eq!(s, 403);
    assert_eq!(stored(&app).await.as_deref(), Some("sb2"));
    let (s, body) = erin.post("/profile/default-region", &[("default_ec2_region", "")]).await;
    assert!(s == 200 && body.contains("Default EC2 region cleared"), "{body}");
    assert_eq!(stored(&app).await, None);
});

app_test!(registered_images_show_their_owner_to_admins_and_stay_private_in_the_launch_form, |app: common::TestApp| async move {
    use cloudbroker_core::testing::{image, instance, user};
    let admin = app.token("super", common::SUPER_PW).await;
    app.user(&admin, "gina").await;
    app.user(&admin, "hugo").await;
    let gina = cloudbroker_core::Actor::new(user("gina"), false);
    let v =
        app.broker.provisioning.register_image(&gina, &instance("sb"), "ami-sandbox-debian-12", &image("gina-debian"), "").await.unwrap();
    assert_eq!(v.owner, Some(user("gina")));
    // The cloud must have the id.
    let e = app.broker.provisioning.register_image(&gina, &instance("sb"), "ami-sandbox-nope", &image("gina-nope"), "").await.unwrap_err();
    assert!(e.to_string().contains("ami-sandbox-nope"), "{e}");
    let sup = Ui::sign_in(&app, "super", common::SUPER_PW).await;
    let (_, body) = sup.get("/admin/images").await;
    let row = between(&body, "<tr id=\"image-gina-debian\">", "</tr>");
    assert!(row.contains("<td class=\"owner\">gina (private)</td>"), "{row}");
    let g = Ui::sign_in(&app, "gina", "gina-password").await;
    let (_, body) = g.get("/vms").await;
    assert!(body.contains("<option value=\"gina-debian\""), "gina launches her own image");
    let h = Ui::sign_in(&app, "hugo", "hugo-password").await;
    let (_, body) = h.get("/vms").await;
    assert!(!body.contains("gina-debian"), "hugo does not see gina's private image");
    // Launching it by name as hugo: it does not exist for him.
    let (s, body) = h
        .post("/vms", &[("instance", "sb"), ("image", "gina-debian"), ("count", "1"), ("name", ""), ("instance_type", ""), ("tags", "")])
        .await;
    assert_eq!(s, 400, "{body}");
    assert!(has_field_error(&body, "gina-debian"), "the image field says it: {body}");
    assert_eq!(app.broker.provisioning.vm_counts(&cloudbroker_core::Actor::system(), Some(&user("hugo"))).await.unwrap().len(), 0);
});

impl Ui {
    /// Posts a form with the session's CSRF token without following the
    /// redirect: the status and the response's `Set-Cookie` headers.
    async fn post_no_follow(&self, path: &str, fields: &[(&str, &str)]) -> (u16, Vec<String>) {
        let mut f: Vec<(&str, &str)> = fields.to_vec();
        f.push(("csrf", &self.csrf));
        let r = self.raw.post(format!("{}{path}", self.base)).form(&f).send().await.unwrap();
        let cookies = r.headers().get_all("set-cookie").iter().map(|v| v.to_str().unwrap().to_string()).collect();
        (r.status().as_u16(), cookies)
    }

    /// A GET without following redirects: status, `Set-Cookie` headers, body.
    async fn get_no_follow(&self, path: &str) -> (u16, Vec<String>, String) {
        let r = self.raw.get(format!("{}{path}", self.base)).send().await.unwrap();
        let cookies = r.headers().get_all("set-cookie").iter().map(|v| v.to_str().unwrap().to_string()).collect();
        (r.status().as_u16(), cookies, r.text().await.unwrap())
    }

    /// Sets the project cookie by hand (as a browser that kept an old one would send it).
    fn set_project_cookie(&self, project: &str) {
        let url: reqwest::Url = self.base.parse().unwrap();
        self.jar.add_cookie_str(&format!("cb_project={project}; Path=/"), &url);
    }

    /// Switches the header's project: the page it lands on.
    async fn switch(&self, project: &str) -> (u16, String) {
        self.post("/project", &[("project", project), ("back", "/vms")]).await
    }
}

/// The switcher's options: (value, label).
fn switcher_options(body: &str) -> Vec<(String, String)> {
    let select = between(body, "<select id=\"project-select\" name=\"project\">", "</select>");
    select
        .split("<option value=\"")
        .skip(1)
        .map(|o| {
            let value = o.split('"').next().unwrap().to_string();
            let label = o.split('>').nth(1).unwrap().split('<').next().unwrap().to_string();
            (value, label)
        })
        .collect()
}

/// The project the header says the page acts in.
fn current_project(body: &str) -> String {
    between(body, "id=\"current-project\" data-project=\"", "\"").to_string()
}

app_test!(the_project_switcher_sets_its_cookie_and_lists_my_projects, |app: common::TestApp| async move {
    let admin = app.token("super", common::SUPER_PW).await;
    app.user(&admin, "olga").await;
    app.user(&admin, "mia").await;
    let olga = Ui::sign_in(&app, "olga", "olga-password").await;
    let (_, home) = olga.get("/").await;
    assert_eq!(current_project(&home), "olga", "the personal project by default");
    assert_eq!(switcher_options(&home), vec![("olga".to_string(), "olga · owner (personal)".to_string())]);
    // The create form: a bad name next to the field, what was typed kept.
    let (s, body) = olga.post("/projects", &[("name", "Team A"), ("description", "the A team")]).await;
    assert_eq!(s, 400);
    assert!(has_field_error(&body, "project name") && body.contains("value=\"Team A\"") && body.contains("value=\"the A team\""), "{body}");
    // A user's name is taken: projects and users share one namespace.
    let (s, body) = olga.post("/projects", &[("name", "mia"), ("description", "x")]).await;
    assert_eq!(s, 400, "{body}");
    assert!(body.contains("id=\"name-error\"") && body.contains("value=\"mia\""), "{body}");
    let (s, body) = olga.post("/projects", &[("name", "team-a"), ("description", "the A team")]).await;
    assert_eq!(s, 200, "{body}");
    assert!(body.contains("Project team-a created") && body.contains("<h1>Project team-a"), "{body}");
    assert!(body.contains("id=\"member-olga\""), "the creator is its owner: {body}");
    // The switcher lists both, with the role; the list page counts members.
    let (_, list) = olga.get("/projects").await;
    assert_eq!(
        switcher_options(&list),
        vec![("olga".to_string(), "olga · owner (personal)".to_string()), ("team-a".to_string(), "team-a · owner".to_string())]
    );
    let row = between(&list, "<tr id=\"project-team-a\">", "</tr>");
    assert!(row.contains("the A team") && row.contains("<td class=\"members\">1</td>") && row.contains("role-owner"), "{row}");
    // Switching sets the cookie (HttpOnly, SameSite=Lax, whole site) and the pages act there.
    let (s, cookies) = olga.post_no_follow("/project", &[("project", "team-a"), ("back", "/vms")]).await;
    assert_eq!(s, 303);
    let c = cookies.iter().find(|c| c.starts_with("cb_project=team-a")).unwrap_or_else(|| panic!("{cookies:?}"));
    assert!(c.contains("HttpOnly") && c.contains("SameSite=Lax") && c.contains("Path=/"), "{c}");
    let (_, vms) = olga.get("/vms").await;
    assert_eq!(current_project(&vms), "team-a");
    assert!(vms.contains("<h1>VMs of project team-a</h1>") && vms.contains("id=\"launch\""), "an owner launches");
    assert!(vms.contains("<option value=\"team-a\" selected>"), "the switcher shows the current project");
    // The switcher follows only pages of this site.
    let (s, _) = olga.post_no_follow("/project", &[("project", "team-a"), ("back", "//evil.example/x")]).await;
    assert_eq!(s, 303);
    let r = olga
        .raw
        .post(format!("{}/project", olga.base))
        .form(&[("project", "team-a"), ("back", "https://evil.example/"), ("csrf", &olga.csrf)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["location"], "/");
    // Without the CSRF token: refused, the project unchanged.
    let (s, _) = olga.post_raw("/project", &[("project", "olga")]).await;
    assert_eq!(s, 403);
    assert_eq!(current_project(&olga.get("/").await.1), "team-a");
    // A project one is no member of: refused with a message, nothing changes.
    let (s, body) = olga.switch("mia").await;
    assert_eq!(s, 200);
    assert!(body.contains("not a member of a project named mia"), "{body}");
    assert_eq!(current_project(&body), "team-a");
    // Back to the personal project: the cookie goes.
    let (s, cookies) = olga.post_no_follow("/project", &[("project", "olga")]).await;
    assert_eq!(s, 303);
    assert!(
        cookies.iter().any(|c| c.starts_with("cb_project=;")
            || c.starts_with("cb_project=\"\"")
            || (c.starts_with("cb_project=") && c.contains("Max-Age=0"))),
        "{cookies:?}"
    );
    assert_eq!(current_project(&olga.get("/vms").await.1), "olga");
    // Signing out forgets the project chosen in this browser (the next user starts in theirs).
    olga.switch("team-a").await;
    let (s, cookies) = olga.post_no_follow("/logout", &[]).await;
    assert_eq!(s, 303);
    assert!(cookies.iter().any(|c| c.starts_with("cb_project=") && c.contains("Max-Age=0")), "{cookies:?}");
    // mia sees only her own project in the list and switcher.
    let mia = Ui::sign_in(&app, "mia", "mia-password").await;
    let (_, list) = mia.get("/projects").await;
    assert!(!list.contains("id=\"project-team-a\"") && list.contains("id=\"project-mia\""), "{list}");
    assert_eq!(mia.get("/projects/team-a").await.0, 404, "a non-member cannot tell it exists");
    // Admins list every project.
    let sup = Ui::sign_in(&app, "super", common::SUPER_PW).await;
    let (_, list) = sup.get("/projects").await;
    assert!(list.contains("id=\"project-team-a\"") && list.contains("id=\"project-mia\""), "{list}");
});

app_test!(a_project_one_is_no_member_of_falls_back_to_the_personal_one, |app: common::TestApp| async move {
    let admin = app.token("super", common::SUPER_PW).await;
    app.user(&admin, "olga").await;
    app.user(&admin, "mia").await;
    let olga = Ui::sign_in(&app, "olga", "olga-password").await;
    assert_eq!(olga.post("/projects", &[("name", "team-a"), ("description", "")]).await.0, 200);
    assert_eq!(olga.post("/projects/team-a/members", &[("user", "mia"), ("role", "member")]).await.0, 200);
    let mia = Ui::sign_in(&app, "mia", "mia-password").await;
    // A cookie naming a project mia is no member of (forged, or kept from elsewhere).
    mia.set_project_cookie("olga");
    let (s, cookies, body) = mia.get_no_follow("/vms").await;
    assert_eq!(s, 200);
    assert_eq!(current_project(&body), "mia", "the personal project");
    assert!(between(&body, "id=\"flash\">", "<").contains("not a member of project olga"), "{body}");
    assert!(cookies.iter().any(|c| c.starts_with("cb_project=") && c.contains("Max-Age=0")), "the cookie is forgotten: {cookies:?}");
    let (_, body) = mia.get("/vms").await;
    assert!(!body.contains("not a member of project"), "said once");
    // A name that is no project at all, too.
    mia.set_project_cookie("Not%20A%20Name");
    let (_, body) = mia.get("/").await;
    assert_eq!(current_project(&body), "mia");
    // mia works in team-a until she is removed; then her next page says so.
    let (s, body) = mia.switch("team-a").await;
    assert_eq!(s, 200);
    assert!(body.contains("Now working in project team-a as member"), "{body}");
    assert_eq!(current_project(&body), "team-a");
    let (s, body) = olga.post("/projects/team-a/members/mia/remove", &[]).await;
    assert!(s == 200 && body.contains("mia removed from team-a"), "{s} {body}");
    let (_, body) = mia.get("/vms").await;
    assert_eq!(current_project(&body), "mia");
    assert!(body.contains("not a member of project team-a"), "{body}");
    // A form sent for the project she lost changes nothing (not even in her own project).
    mia.set_project_cookie("team-a");
    let (s, body) = mia.post("/vms", &[("instance", "sb"), ("image", "ami-sandbox-debian-12"), ("count", "1")]).await;
    assert_eq!(s, 200);
    assert!(body.contains("Nothing was changed"), "{body}");
    let actor = cloudbroker_core::Actor::system();
    assert!(app.broker.provisioning.vm_counts(&actor, None).await.unwrap().is_empty(), "nothing launched");
});

app_test!(owners_manage_members_and_roles_with_the_forms, |app: common::TestApp| async move {
    let admin = app.token("super", common::SUPER_PW).await;
    for u in ["olga", "mia", "vic"] {
        app.user(&admin, u).await;
    }
    let olga = Ui::sign_in(&app, "olga", "olga-password").await;
    assert_eq!(olga.post("/projects", &[("name", "team-a"), ("description", "")]).await.0, 200);
    // An unknown user: next to the field, typed kept.
    let (s, body) = olga.post("/projects/team-a/members", &[("user", "nobody"), ("role", "viewer")]).await;
    assert_eq!(s, 404, "{body}");
    assert!(has_field_error(&body, "no user named nobody") && body.contains("value=\"nobody\""), "{body}");
    assert!(body.contains("<option value=\"viewer\" selected>"), "the role typed is kept: {body}");
    let (s, body) = olga.post("/projects/team-a/members", &[("user", "Bad Name"), ("role", "member")]).await;
    assert_eq!(s, 400);
    assert!(has_field_error(&body, "user name"), "{body}");
    let (s, body) = olga.post("/projects/team-a/members", &[("user", "mia"), ("role", "boss")]).await;
    assert_eq!(s, 400);
    assert!(has_field_error(&body, "unknown role"), "{body}");
    // The invitation: added by name, with a role.
    let (s, body) = olga.post("/projects/team-a/members", &[("user", "mia"), ("role", "member")]).await;
    assert!(s == 200 && body.contains("mia added to team-a as member"), "{body}");
    let (_, body) = olga.post("/projects/team-a/members", &[("user", "vic"), ("role", "viewer")]).await;
    assert!(between(&body, "<tr id=\"member-vic\">", "</tr>").contains("role-viewer"), "{body}");
    let (s, body) = olga.post("/projects/team-a/members", &[("user", "vic"), ("role", "owner")]).await;
    assert_eq!(s, 409);
    assert!(has_field_error(&body, "already a viewer"), "{body}");
    // A role changed in the table.
    let (s, body) = olga.post("/projects/team-a/members/vic", &[("role", "member")]).await;
    assert!(s == 200 && body.contains("vic is now a member of team-a"), "{body}");
    olga.post("/projects/team-a/members/vic", &[("role", "viewer")]).await;
    // The last owner stays.
    let (s, body) = olga.post("/projects/team-a/members/olga", &[("role", "member")]).await;
    assert_eq!(s, 409, "{body}");
    assert!(body.contains("Role of olga not changed"), "{body}");
    // A member sees the members but no forms; forged ones are refused.
    let mia = Ui::sign_in(&app, "mia", "mia-password").await;
    let (s, body) = mia.get("/projects/team-a").await;
    assert_eq!(s, 200);
    assert!(body.contains("id=\"member-vic\"") && !body.contains("id=\"add-member\"") && !body.contains("id=\"remove-olga\""), "{body}");
    assert!(!body.contains("id=\"project-audit\""), "the audit is for owners");
    for (p, f) in [
        ("/projects/team-a/members", vec![("user", "vic"), ("role", "owner")]),
        ("/projects/team-a/members/vic", vec![("role", "owner")]),
        ("/projects/team-a/members/olga/remove", vec![]),
        ("/projects/team-a", vec![("description", "taken over")]),
        ("/projects/team-a/delete", vec![]),
    ] {
        let (s, body) = mia.post(p, &f).await;
        assert_eq!(s, 403, "{p}: {body}");
    }
    assert_eq!(mia.get("/projects/team-a/audit").await.0, 403);
    let team: cloudbroker_core::domain::ProjectName = "team-a".parse().unwrap();
    let members = app.broker.projects.members(&cloudbroker_core::Actor::system(), &team).await.unwrap();
    let roles: Vec<(String, String)> = members.iter().map(|m| (m.user.to_string(), m.role.to_string())).collect();
    assert_eq!(roles.len(), 3, "{roles:?}");
    assert!(roles.contains(&("vic".into(), "viewer".into())) && roles.contains(&("olga".into(), "owner".into())), "{roles:?}");
    // The owner edits the description and reads the project's audit.
    let (s, body) = olga.post("/projects/team-a", &[("description", "the A team")]).await;
    assert!(s == 200 && body.contains("Description saved") && body.contains("value=\"the A team\""), "{body}");
    let (s, body) = olga.get("/projects/team-a/audit").await;
    assert_eq!(s, 200);
    assert!(body.contains("Audit log of project team-a") && body.contains("project.member"), "{body}");
    // mia leaves on her own (the page offers it to members).
    let (_, page) = mia.get("/projects/team-a").await;
    assert!(page.contains("href=\"/projects/team-a/members/mia/remove\""), "{page}");
    let (s, body) = mia.post("/projects/team-a/members/mia/remove", &[]).await;
    assert!(s == 200 && body.contains("You left project team-a"), "{body}");
    assert_eq!(mia.get("/projects/team-a").await.0, 404);
    // Admins filter the whole audit log by project; a bad name is a field error.
    let sup = Ui::sign_in(&app, "super", common::SUPER_PW).await;
    let (s, body) = sup.get("/admin/audit?project=team-a&action=project.create").await;
    assert_eq!(s, 200);
    assert!(body.contains("<td>team-a</td>") && body.contains("project.create"), "{body}");
    let (s, body) = sup.get("/admin/audit?project=Team%20A").await;
    assert_eq!(s, 400);
    assert!(has_field_error(&body, "project name") && body.contains("value=\"Team A\""), "{body}");
    // A personal project gets no members.
    let (s, body) = olga.post("/projects/olga/members", &[("user", "mia"), ("role", "member")]).await;
    assert_eq!(s, 409, "{body}");
    assert!(body.contains("personal project"), "{body}");
    // Its page links no audit log: that log is the admins' (403 to its owner).
    let (s, body) = olga.get("/projects/olga").await;
    assert_eq!(s, 200, "{body}");
    assert!(!body.contains("id=\"project-audit\"") && !body.contains("/projects/olga/audit"), "{body}");
    assert_eq!(olga.get("/projects/olga/audit").await.0, 403);
});

app_test!(a_projects_credential_form_never_echoes_the_secret, |app: common::TestApp| async move {
    let admin = app.token("super", common::SUPER_PW).await;
    app.user(&admin, "olga").await;
    app.user(&admin, "mia").await;
    let olga = Ui::sign_in(&app, "olga", "olga-password").await;
    olga.post("/projects", &[("name", "team-a"), ("description", "")]).await;
    olga.post("/projects/team-a/members", &[("user", "mia"), ("role", "member")]).await;
    // Refused (another user's sandbox account): the key id kept, the secret not.
    let (s, body) =
        olga.post("/projects/team-a/credentials/sb", &[("access_key_id", "sandbox-mia"), ("secret_access_key", "team-cloud-secret")]).await;
    assert!(s == 400 || s == 409, "{s} {body}");
    assert!(body.contains("value=\"sandbox-mia\"") && !body.contains("team-cloud-secret"), "{body}");
    assert!(
        between(&body, "id=\"pcred-sb\"", "</form>").contains("class=\"error\"") || has_field_error(&body, ""),
        "the error is by sb's form: {body}"
    );
    let (s, body) = olga
        .post("/projects/team-a/credentials/sb", &[("access_key_id", "AKIATEAMA000000WXYZ"), ("secret_access_key", "team-cloud-secret")])
        .await;
    assert_eq!(s, 200, "{body}");
    assert!(body.contains("Credentials of team-a for sb saved") && body.contains("****WXYZ"), "{body}");
    assert!(!body.contains("team-cloud-secret") && !body.contains("AKIATEAMA000000WXYZ"), "never shown back in clear");
    // A member sees the masked credential, no form; a forged save is refused.
    let mia = Ui::sign_in(&app, "mia", "mia-password").await;
    let (_, body) = mia.get("/projects/team-a").await;
    assert!(body.contains("****WXYZ") && !body.contains("id=\"save-pcred-sb\"") && !body.contains("team-cloud-secret"), "{body}");
    let (s, _) =
        mia.post("/projects/team-a/credentials/sb", &[("access_key_id", "AKIAMIA0000000000001"), ("secret_access_key", "x")]).await;
    assert_eq!(s, 403);
    let (s, _) = mia.post("/projects/team-a/credentials/sb/delete", &[]).await;
    assert_eq!(s, 403);
    // In the project, mia's credentials page shows the project's, masked.
    mia.switch("team-a").await;
    let (_, creds) = mia.get("/credentials").await;
    assert!(between(&creds, "id=\"pcred-sb\"", "</p>").contains("****WXYZ"), "{creds}");
    assert!(!creds.contains("team-cloud-secret") && !creds.contains("AKIATEAMA000000WXYZ"));
    // Nowhere in any page mia can reach.
    for p in ["/", "/vms", "/projects", "/projects/team-a", "/profile"] {
        assert!(!mia.get(p).await.1.contains("team-cloud-secret"), "{p}");
    }
    // The owner deletes them.
    let (s, body) = olga.post("/projects/team-a/credentials/sb/delete", &[]).await;
    assert!(s == 200 && body.contains("Credentials of team-a for sb deleted"), "{body}");
});

app_test!(a_viewer_gets_no_buttons_and_forged_forms_are_refused, |app: common::TestApp| async move {
    let admin = app.token("super", common::SUPER_PW).await;
    for u in ["olga", "vic"] {
        app.user(&admin, u).await;
    }
    let sup = Ui::sign_in(&app, "super", common::SUPER_PW).await;
    sup.post("/admin/images", &[("name", "linux"), ("id.sb", "ami-sandbox-debian-12")]).await;
    let olga = Ui::sign_in(&app, "olga", "olga-password").await;
    olga.post("/projects", &[("name", "team-a"), ("description", "")]).await;
    olga.post("/projects/team-a/members", &[("user", "vic"), ("role", "viewer")]).await;
    olga.switch("team-a").await;
    let (s, body) = olga.post("/vms", &[("instance", "sb"), ("image", "linux"), ("name", "shared-web")]).await;
    assert!(s == 200 && body.contains("Launched 1 VM(s)"), "{body}");
    let team: cloudbroker_core::domain::ProjectName = "team-a".parse().unwrap();
    let sys = cloudbroker_core::Actor::system();
    let q = cloudbroker_core::provisioning::VmQuery { project: Some(team.clone()), ..Default::default() };
    let vm = app.broker.provisioning.list(&sys, q, cloudbroker_core::domain::PageRequest::default()).await.unwrap().items.remove(0);
    assert_eq!((vm.user.as_str(), vm.project.as_str()), ("olga", "team-a"));
    for _ in 0..40 {
        app.broker.provisioning.reconcile("ui-test").await.unwrap();
        if app.broker.provisioning.get(&sys, &vm.id).await.unwrap().status == cloudbroker_core::domain::VmStatus::Running {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let vic = Ui::sign_in(&app, "vic", "vic-password").await;
    let (_, mine) = vic.get("/vms").await;
    assert!(!mine.contains("shared-web"), "not in vic's personal project");
    let (s, body) = vic.switch("team-a").await;
    assert_eq!(s, 200);
    assert!(body.contains("Now working in project team-a as viewer"), "{body}");
    // The VM is there, launched by olga; no launch form, no buttons.
    let row = between(&body, &format!("<tr id=\"vm-{}\">", vm.id), "</tr>");
    assert!(row.contains("shared-web") && row.contains("<td class=\"launched-by\">olga</td>"), "{row}");
    assert!(!row.contains("<button") && !row.contains("Terminate"), "{row}");
    assert!(!body.contains("id=\"launch\"") && body.contains("id=\"viewer-note\""), "{body}");
    let (_, home) = vic.get("/").await;
    assert!(!home.contains("href=\"/vms#launch\""), "{home}");
    // Forged forms: refused (403), the page says why, nothing changes.
    for action in ["stop", "reboot", "terminate"] {
        let (s, body) = vic.post(&format!("/vms/{}/{action}", vm.id), &[]).await;
        assert_eq!(s, 403, "{action}: {body}");
        assert!(between(&body, "id=\"flash\">", "</p>").contains("Not allowed: you are a viewer of project"), "{body}");
    }
    assert_eq!(vic.get(&format!("/vms/{}/terminate", vm.id)).await.0, 403, "no confirmation page either");
    let (s, body) = vic.post("/vms", &[("instance", "sb"), ("image", "linux"), ("count", "1")]).await;
    assert_eq!(s, 403, "{body}");
    assert!(body.contains("Nothing was launched"), "{body}");
    assert_eq!(app.broker.provisioning.get(&sys, &vm.id).await.unwrap().status, cloudbroker_core::domain::VmStatus::Running);
    let counts = app.broker.provisioning.project_vm_counts(&sys, &team).await.unwrap();
    assert_eq!(counts.iter().map(|c| c.count).sum::<i64>(), 1, "no VM launched by the viewer");
    // A member acts on it.
    olga.post("/projects/team-a/members/vic", &[("role", "member")]).await;
    let (_, body) = vic.get("/vms").await;
    assert!(between(&body, &format!("<tr id=\"vm-{}\">", vm.id), "</tr>").contains(">Stop</button>"), "{body}");
    let (s, body) = vic.post(&format!("/vms/{}/stop", vm.id), &[]).await;
    assert!(s == 200 && body.contains(&format!("stop {}", vm.id)), "{body}");
});

app_test!(project_quotas_and_access_keys_of_a_project_from_the_pages, |app: common::TestApp| async move {
    let admin = app.token("super", common::SUPER_PW).await;
    app.user(&admin, "olga").await;
    app.user(&admin, "mia").await;
    let olga = Ui::sign_in(&app, "olga", "olga-password").await;
    olga.post("/projects", &[("name", "team-a"), ("description", "")]).await;
    // Owners read the project's quotas; only admins set an override.
    let (_, body) = olga.get("/projects/team-a").await;
    assert!(between(&body, "<tr id=\"pquota-sb\">", "</tr>").contains("no project limit"), "{body}");
    assert!(!body.contains("id=\"pquota-vm-sb\""), "no override form for an owner");
    assert_eq!(olga.post("/projects/team-a/quotas/sb", &[("vm", "100")]).await.0, 403);
    let sup = Ui::sign_in(&app, "super", common::SUPER_PW).await;
    let (s, body) = sup.post("/projects/team-a/quotas/sb", &[("vm", "lots")]).await;
    assert_eq!(s, 400);
    assert!(has_field_error(&body, "whole number") && body.contains("value=\"lots\""), "{body}");
    let (s, body) = sup.post("/projects/team-a/quotas/sb", &[("vm", "-1")]).await;
    assert_eq!(s, 400);
    assert!(has_field_error(&body, "between") && body.contains("value=\"-1\""), "{body}");
    let (s, body) = sup.post("/projects/team-a/quotas/sb", &[("vm", "5")]).await;
    assert!(s == 200 && body.contains("Quota of project team-a on sb: 5 VMs"), "{body}");
    let row = between(&body, "<tr id=\"pquota-sb\">", "</tr>");
    assert!(row.contains("<td>5</td>") && row.contains("override"), "{row}");
    let (_, body) = olga.get("/projects/team-a").await;
    assert!(between(&body, "<tr id=\"pquota-sb\">", "</tr>").contains("<td>5</td>"), "the owner sees it");
    // Enforced: the project's members together stay within it; the page says which quota.
    sup.post("/admin/system", &[("p.quota.enable", "true")]).await;
    sup.post("/admin/images", &[("name", "linux"), ("id.sb", "ami-sandbox-debian-12")]).await;
    sup.post("/projects/team-a/quotas/sb", &[("vm", "1")]).await;
    olga.switch("team-a").await;
    let (_, vms) = olga.get("/vms").await;
    assert!(between(&vms, "<li data-instance=\"sb\">", "</li>").contains("project team-a: 0 of 1 used"), "{vms}");
    let (s, body) = olga.post("/vms", &[("instance", "sb"), ("image", "linux"), ("count", "2")]).await;
    assert_eq!(s, 409, "{body}");
    assert!(body.contains("Over the quota of project &#x27;team-a&#x27;"), "{body}");
    let (s, body) = olga.post("/vms", &[("instance", "sb"), ("image", "linux"), ("name", "team-web")]).await;
    assert!(s == 200 && body.contains("Launched 1 VM(s)"), "{body}");
    olga.switch("olga").await;
    // An access key for the team project, chosen on the profile page.
    let (_, profile) = olga.get("/profile").await;
    assert!(profile.contains("<option value=\"team-a\">team-a · owner</option>"), "{profile}");
    let (s, body) = olga.post("/profile/access-keys", &[("project", "team-a")]).await;
    assert_eq!(s, 200, "{body}");
    let key_id = between(&body, "id=\"new-access-key-id\">", "<").to_string();
    let row = between(&body, &format!("<tr data-key=\"{key_id}\">"), "</tr>");
    assert!(row.contains("<td class=\"project\">team-a</td>"), "{row}");
    let keys = app.broker.access_keys.list(&cloudbroker_core::Actor::system(), &"olga".parse().unwrap()).await.unwrap();
    assert_eq!(keys.iter().find(|k| k.access_key_id == key_id).unwrap().project.as_str(), "team-a");
    // Not for a project one is no member of: next to the field, nothing made.
    let mia = Ui::sign_in(&app, "mia", "mia-password").await;
    let (s, body) = mia.post("/profile/access-keys", &[("project", "team-a")]).await;
    assert_eq!(s, 400, "{body}");
    assert!(has_field_error(&body, "not a member of a project named team-a"), "{body}");
    assert!(app.broker.access_keys.list(&cloudbroker_core::Actor::system(), &"mia".parse().unwrap()).await.unwrap().is_empty());
});
