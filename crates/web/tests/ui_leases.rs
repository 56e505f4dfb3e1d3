//! VM leases in the UI, through the real server without a browser, the
//! broker's clock set by the test: the VM list and the VM's page show the
//! lease as an absolute expiry in UTC with the time left and the action,
//! amber once warned and with the broker's note once ended; "Extend" is one
//! POST (the new expiry as the flash), capped at `lease.max` from now for a
//! member (the refusal shown, the lease unchanged), uncapped for an admin,
//! and offered to no viewer (a forged one refused); the launch form takes a
//! lease (a bad one comes back next to the field, as typed); the admin page
//! Governance lists each instance's lease terms, the leases due within a
//! day across projects, the lease worker's status and the recent lease
//! actions. On SQLite and PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::zombie_processes)]

mod common;

use chrono::{DateTime, Duration, DurationRound, Utc};
use cloudbroker_core::domain::{PageRequest, VmId, VmStatus};
use cloudbroker_core::provisioning::{Vm, VmQuery};
use cloudbroker_core::Actor;
use reqwest::redirect::Policy;

/// A signed-in user's cookie jar.
struct Ui {
    http: reqwest::Client,
    base: String,
    csrf: String,
}

fn csrf_of(body: &str) -> String {
    let at = body.find("name=\"csrf\" value=\"").expect("a form with a CSRF token") + "name=\"csrf\" value=\"".len();
    body[at..].split('"').next().unwrap().to_string()
}

impl Ui {
    async fn sign_in(app: &common::TestApp, user: &str, pw: &str) -> Self {
        let jar = std::sync::Arc::new(reqwest::cookie::Jar::default());
        let http = reqwest::Client::builder().cookie_provider(jar).redirect(Policy::limited(5)).build().unwrap();
        let page = http.get(app.url("/login")).send().await.unwrap().text().await.unwrap();
        let csrf = csrf_of(&page);
        let r = http.post(app.url("/login")).form(&[("username", user), ("password", pw), ("csrf", &csrf)]).send().await.unwrap();
        assert_eq!(r.status(), 200, "sign-in of {user}");
        let home = r.text().await.unwrap();
        Self { http, base: app.base.clone(), csrf: csrf_of(&home) }
    }

    async fn get(&self, path: &str) -> (u16, String) {
        let r = self.http.get(format!("{}{path}", self.base)).send().await.unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    /// Posts a form with the session's CSRF token.
    async fn post(&self, path: &str, fields: &[(&str, &str)]) -> (u16, String) {
        let mut f: Vec<(&str, &str)> = fields.to_vec();
        f.push(("csrf", &self.csrf));
        let r = self.http.post(format!("{}{path}", self.base)).form(&f).send().await.unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    async fn switch(&self, project: &str) -> (u16, String) {
        self.post("/project", &[("project", project), ("back", "/vms")]).await
    }
}

fn between<'a>(body: &'a str, start: &str, end: &str) -> &'a str {
    body.split(start).nth(1).and_then(|r| r.split(end).next()).unwrap_or_else(|| panic!("no {start} in {body}"))
}

/// The text of the field error with id `id`.
fn field_error<'a>(body: &'a str, id: &str) -> Option<&'a str> {
    let at = body.find(&format!("class=\"field-error\" id=\"{id}\">"))?;
    let rest = &body[at..];
    let start = rest.find('>')? + 1;
    Some(rest[start..].split("</span>").next().unwrap())
}

/// The flash message of a page.
fn flash(body: &str) -> &str {
    between(body, "id=\"flash\">", "</p>")
}

/// The row of VM `id` in the list.
fn row<'a>(body: &'a str, id: &VmId) -> &'a str {
    between(body, &format!("<tr id=\"vm-{id}\">"), "</tr>")
}

/// A time as the pages write it.
fn shown(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// The broker's clock set to now, to the minute (what the pages show is then exact).
fn set_clock(app: &common::TestApp) -> DateTime<Utc> {
    let t0 = Utc::now().duration_trunc(Duration::minutes(1)).unwrap();
    app.broker.clock.set(t0);
    t0
}

/// The admin maps a native image on `sb` and sets its lease terms.
async fn setup(app: &common::TestApp, terms: &[(&str, &str)]) -> Ui {
    let sup = Ui::sign_in(app, "super", common::SUPER_PW).await;
    let (s, body) =
        sup.post("/admin/images", &[("name", "linux"), ("id.sb", "ami-sandbox-debian-12"), ("id.sb2", "ami-sandbox-debian-12")]).await;
    assert_eq!(s, 200, "{body}");
    if !terms.is_empty() {
        let (s, body) = sup.post("/admin/system", terms).await;
        assert_eq!(s, 200, "{body}");
        assert!(body.contains("Saved"), "{body}");
    }
    sup
}

async fn user(app: &common::TestApp, name: &str) -> Ui {
    let admin = app.token("super", common::SUPER_PW).await;
    app.user(&admin, name).await;
    let ui = Ui::sign_in(app, name, &format!("{name}-password")).await;
    for i in ["sb", "sb2"] {
        let (s, body) = ui
            .post(&format!("/credentials/{i}"), &[("access_key_id", "AKIALEASE0000001234"), ("secret_access_key", "lease-cloud-secret")])
            .await;
        assert_eq!(s, 200, "{body}");
    }
    ui
}

async fn vm_named(app: &common::TestApp, name: &str) -> Vm {
    let vms = app.broker.provisioning.list(&Actor::system(), VmQuery::default(), PageRequest::default()).await.unwrap().items;
    vms.into_iter().find(|v| v.name == name).unwrap_or_else(|| panic!("no VM {name}"))
}

async fn vm(app: &common::TestApp, id: &VmId) -> Vm {
    app.broker.provisioning.get(&Actor::system(), id).await.unwrap()
}

/// Reconciles until VM `id` runs.
async fn running(app: &common::TestApp, id: &VmId) {
    for _ in 0..50 {
        app.broker.provisioning.reconcile("ui-test").await.unwrap();
        if vm(app, id).await.status == VmStatus::Running {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("{id} never ran");
}

const TERMS: [(&str, &str); 3] = [("p.sb.lease.default", "8h"), ("p.sb.lease.max", "1d"), ("p.sb.lease.action", "stop")];

app_test!(the_vm_pages_show_the_lease_and_extend_it, |app: common::TestApp| async move {
    let sup = setup(&app, &TERMS).await;
    let alice = user(&app, "alice").await;
    let t0 = set_clock(&app);
    let (s, body) = alice.post("/vms", &[("instance", "sb"), ("image", "linux"), ("name", "web")]).await;
    assert_eq!(s, 200, "{body}");
    let end = t0 + Duration::hours(8);
    assert!(flash(&body).contains(&format!("(lease until {}, then stop)", shown(end))), "{body}");
    let web = vm_named(&app, "web").await;
    assert_eq!(web.lease.as_ref().unwrap().expires_at, end);

    // The list: the absolute expiry, the time left, the action, an Extend button.
    let (_, body) = alice.get("/vms").await;
    assert!(body.contains("<th scope=\"col\">Lease</th>"), "{body}");
    let r = row(&body, &web.id);
    assert!(r.contains(&shown(end)) && r.contains("in 8h") && r.contains("then stop"), "{r}");
    assert!(r.contains(&format!("datetime=\"{}\"", end.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))), "{r}");
    assert!(!r.contains("lease-warned"), "not warned yet: {r}");
    assert!(r.contains(&format!("action=\"/vms/{}/lease\"", web.id)) && r.contains(">Extend</button>"), "{r}");
    // The VM's own page: the lease, the instance's terms and the form.
    let (s, page) = alice.get(&format!("/vms/{}", web.id)).await;
    assert_eq!(s, 200, "{page}");
    let lease = between(&page, "id=\"vm-lease\"", "</section>");
    assert!(lease.contains(&shown(end)) && lease.contains("in 8h"), "{lease}");
    assert!(lease.contains("default 8h, at most 1d, then stop, warned 1h before"), "{lease}");
    assert!(lease.contains("<label for=\"extend-lease\">") && lease.contains("placeholder=\"8h from now\""), "{lease}");

    // Three hours on: one click gives the default lease from now.
    app.broker.clock.advance(Duration::hours(3));
    let (_, body) = alice.get("/vms").await;
    assert!(row(&body, &web.id).contains("in 5h"), "{body}");
    let (s, body) = alice.post(&format!("/vms/{}/lease", web.id), &[]).await;
    assert_eq!(s, 200, "{body}");
    let later = t0 + Duration::hours(11);
    let f = flash(&body);
    assert!(f.contains(&format!("Extended the lease of {}: it now ends {} (in 8h), then stop", web.id, shown(later))), "{f}");
    assert!(!body.contains("class=\"notice refused\""), "{body}");
    assert_eq!(vm(&app, &web.id).await.lease.unwrap().expires_at, later);
    assert!(row(&body, &web.id).contains(&shown(later)), "the list shows the new expiry");

    // A member may not go past lease.max from now: the refusal next to the field, what was typed kept.
    let (s, page) = alice.post(&format!("/vms/{}/lease", web.id), &[("lease", "2d"), ("back", "detail")]).await;
    assert_eq!(s, 409, "{page}");
    let e = field_error(&page, "lease-error").unwrap_or_else(|| panic!("no message next to the lease: {page}"));
    assert!(e.contains("at most 1d from now (lease.max: 1d)"), "{e}");
    assert!(page.contains("id=\"extend-lease\" name=\"lease\" value=\"2d\""), "{page}");
    // From the list: the refusal as the flash, shown as one.
    let (s, body) = alice.post(&format!("/vms/{}/lease", web.id), &[("lease", "2d")]).await;
    assert_eq!(s, 200, "{body}");
    assert!(body.contains("class=\"notice refused\""), "{body}");
    assert!(flash(&body).starts_with("Not extended: a lease of 2d is not allowed on &#x27;sb&#x27;"), "{body}");
    assert_eq!(vm(&app, &web.id).await.lease.unwrap().expires_at, later, "unchanged");
    // A bad value: said next to the field, kept.
    let (s, page) = alice.post(&format!("/vms/{}/lease", web.id), &[("lease", "8 weeks"), ("back", "detail")]).await;
    assert_eq!(s, 400, "{page}");
    assert!(field_error(&page, "lease-error").unwrap().starts_with("Lease: "), "{page}");
    assert!(page.contains("value=\"8 weeks\""), "{page}");
    // Within the cap, on the VM's page: back there with the new expiry.
    let (s, page) = alice.post(&format!("/vms/{}/lease", web.id), &[("lease", "20h"), ("back", "detail")]).await;
    assert_eq!(s, 200, "{page}");
    let upto = t0 + Duration::hours(23);
    assert!(flash(&page).contains(&shown(upto)) && page.contains("id=\"vm-lease\""), "{page}");
    // An admin is not capped.
    let (s, page) = sup.post(&format!("/vms/{}/lease", web.id), &[("lease", "3d"), ("back", "detail")]).await;
    assert_eq!(s, 200, "{page}");
    let long = t0 + Duration::hours(3) + Duration::days(3);
    assert!(flash(&page).contains(&format!("now ends {} (in 3d)", shown(long))), "{page}");
    // One click would now shorten it: refused, said why, unchanged.
    let (s, body) = alice.post(&format!("/vms/{}/lease", web.id), &[]).await;
    assert_eq!(s, 200, "{body}");
    let f = flash(&body);
    assert!(f.starts_with("Not extended: the lease of") && f.contains(&format!("already ends {} (in 3d)", shown(long))), "{f}");
    assert_eq!(vm(&app, &web.id).await.lease.unwrap().expires_at, long, "unchanged");

    // Half an hour before the end the worker warns: amber, with the warning.
    running(&app, &web.id).await;
    app.broker.clock.set(long - Duration::minutes(30));
    let report = app.broker.provisioning.lease_pass("ui-test").await.unwrap();
    assert_eq!(report.warned, 1, "{report:?}");
    let (_, body) = alice.get("/vms").await;
    let r = row(&body, &web.id);
    assert!(r.contains("class=\"lease lease-warned\"") && r.contains("Warned: the lease ends soon") && r.contains("in 30m"), "{r}");
    let (_, page) = alice.get(&format!("/vms/{}", web.id)).await;
    assert!(page.contains("class=\"card warn\" id=\"vm-lease\""), "{page}");
    // At the end it is stopped: the note says so, the action no longer shown as to come.
    app.broker.clock.set(long + Duration::minutes(1));
    let report = app.broker.provisioning.lease_pass("ui-test").await.unwrap();
    assert_eq!(report.stopped, 1, "{report:?}");
    let ended = vm(&app, &web.id).await.lease.unwrap();
    let note = ended.note.clone().expect("a note");
    let (_, body) = alice.get("/vms").await;
    let r = row(&body, &web.id);
    assert!(r.contains("lease-ended") && r.contains("ended ") && !r.contains("then stop"), "{r}");
    assert!(r.contains(&note.replace('\'', "&#x27;")), "the note {note}: {r}");
});

app_test!(viewers_get_no_extend_button, |app: common::TestApp| async move {
    setup(&app, &TERMS).await;
    let olga = user(&app, "olga").await;
    let vic = user(&app, "vic").await;
    olga.post("/projects", &[("name", "team-a"), ("description", "")]).await;
    olga.post("/projects/team-a/members", &[("user", "vic"), ("role", "viewer")]).await;
    olga.switch("team-a").await;
    set_clock(&app);
    let (s, body) = olga.post("/vms", &[("instance", "sb"), ("image", "linux"), ("name", "shared")]).await;
    assert!(s == 200 && body.contains("Launched 1 VM(s)"), "{body}");
    let vm = vm_named(&app, "shared").await;
    let before = vm.lease.clone().unwrap().expires_at;
    assert!(row(&body, &vm.id).contains(">Extend</button>"), "the member has it");
    let (s, body) = vic.switch("team-a").await;
    assert_eq!(s, 200);
    let r = row(&body, &vm.id);
    assert!(r.contains("in 8h") && r.contains("then stop"), "the viewer sees the lease: {r}");
    assert!(!r.contains("Extend") && !r.contains("/lease"), "{r}");
    let (s, page) = vic.get(&format!("/vms/{}", vm.id)).await;
    assert_eq!(s, 200, "{page}");
    assert!(page.contains("in 8h") && !page.contains("id=\"extend-form\""), "{page}");
    // A forged one is refused, nothing changes.
    let (s, body) = vic.post(&format!("/vms/{}/lease", vm.id), &[]).await;
    assert_eq!(s, 403, "{body}");
    assert!(flash(&body).contains("Not allowed: you are a viewer of project"), "{body}");
    app.broker.clock.advance(Duration::hours(1));
    let (s, _) = vic.post(&format!("/vms/{}/lease", vm.id), &[("back", "detail")]).await;
    assert_eq!(s, 403);
    assert_eq!(vm_named(&app, "shared").await.lease.unwrap().expires_at, before, "unchanged");
});

app_test!(the_launch_form_takes_a_lease, |app: common::TestApp| async move {
    setup(&app, &TERMS).await;
    let alice = user(&app, "alice").await;
    let t0 = set_clock(&app);
    // The field, labelled, its hint the chosen instance's terms.
    let (_, body) = alice.get("/vms?launch=sb").await;
    assert!(body.contains("<label for=\"launch-lease\">Lease"), "{body}");
    assert!(body.contains("id=\"launch-lease\" name=\"lease\" value=\"\" placeholder=\"default: 8h\""), "{body}");
    assert!(body.contains("Lease on sb: default 8h, at most 1d, then stop."), "{body}");
    // No instance chosen: every instance's terms.
    let (_, body) = alice.get("/vms").await;
    let terms = between(&body, "id=\"lease-terms\"", "</ul>");
    assert!(terms.contains("<strong>sb</strong> leases: default 8h, at most 1d, then stop"), "{terms}");
    assert!(!terms.contains("sb2"), "sb2 gives no lease unless asked: {terms}");

    // A valid lease: the VM has it.
    let (s, body) = alice.post("/vms", &[("instance", "sb"), ("image", "linux"), ("name", "short"), ("lease", "90m")]).await;
    assert_eq!(s, 200, "{body}");
    let short = vm_named(&app, "short").await;
    assert_eq!(short.lease.unwrap().expires_at, t0 + Duration::minutes(90));
    assert!(row(&body, &short.id).contains("in 1h 30m"), "{body}");
    // None asked on sb2 (no terms): no lease, shown as such.
    let (s, body) = alice.post("/vms", &[("instance", "sb2"), ("image", "linux"), ("name", "free")]).await;
    assert_eq!(s, 200, "{body}");
    let free = vm_named(&app, "free").await;
    assert!(free.lease.is_none());
    assert!(row(&body, &free.id).contains("<td class=\"lease lease-none\">"), "{body}");
    assert!(!row(&body, &free.id).contains(">Extend</button>"), "nothing to extend");

    // A bad value: the message names the field, what was typed is kept, nothing launched.
    let (s, body) = alice.post("/vms", &[("instance", "sb"), ("image", "linux"), ("name", "bad"), ("lease", "8 weeks")]).await;
    assert_eq!(s, 400, "{body}");
    let e = field_error(&body, "lease-error").unwrap_or_else(|| panic!("no message next to the lease: {body}"));
    assert!(e.starts_with("Lease: ") && e.contains("8 weeks"), "{e}");
    assert!(body.contains("id=\"launch-lease\" name=\"lease\" value=\"8 weeks\""), "{body}");
    assert!(body.contains("id=\"launch-name\" name=\"name\" value=\"bad\""), "{body}");
    // Over lease.max: the policy's message next to the field.
    let (s, body) = alice.post("/vms", &[("instance", "sb"), ("image", "linux"), ("name", "long"), ("lease", "2d")]).await;
    assert!(s == 400 || s == 409, "{s}: {body}");
    let e = field_error(&body, "lease-error").unwrap_or_else(|| panic!("no message next to the lease: {body}"));
    assert!(e.contains("lease.max"), "{e}");
    assert!(body.contains("value=\"2d\""), "{body}");
    let all = app.broker.provisioning.list(&Actor::system(), VmQuery::default(), PageRequest::default()).await.unwrap().items;
    assert_eq!(all.len(), 2, "nothing more launched");
});

app_test!(the_governance_page_lists_lease_terms_and_leases_due, |app: common::TestApp| async move {
    let sup = setup(&app, &TERMS).await;
    let alice = user(&app, "alice").await;
    let t0 = set_clock(&app);
    // Nothing due yet; the terms with their origins.
    let (s, body) = sup.get("/admin/governance").await;
    assert_eq!(s, 200, "{body}");
    assert!(body.contains("id=\"leases-due-none\""), "{body}");
    assert!(body.contains("id=\"lease-actions-none\""), "{body}");
    let terms = between(&body, "id=\"lease-terms-sb\"", "</table>");
    for (name, value) in [("lease.default", "8h"), ("lease.max", "1d"), ("lease.action", "stop"), ("lease.warn", "1h")] {
        let r = between(terms, &format!("data-lease=\"{name}\""), "</tr>");
        assert!(r.contains(value), "{name}: {r}");
    }
    assert!(between(terms, "data-lease=\"lease.default\"", "</tr>").contains("set here by super"), "{terms}");
    assert!(terms.contains("data-lease=\"lease.max.actions\""), "{terms}");
    assert!(body.contains("id=\"lease-terms-sb2\""), "{body}");

    // Two VMs: one ending in 2h (in the next day), one in 2d (not).
    alice.post("/vms", &[("instance", "sb"), ("image", "linux"), ("name", "soon"), ("lease", "2h")]).await;
    alice.post("/vms", &[("instance", "sb"), ("image", "linux"), ("name", "later")]).await;
    let soon = vm_named(&app, "soon").await;
    let later = vm_named(&app, "later").await;
    let (s, body) = sup.post(&format!("/vms/{}/lease", later.id), &[("lease", "2d"), ("back", "detail")]).await;
    assert!(s == 200 && flash(&body).contains("(in 2d)"), "an admin extends past lease.max: {body}");
    let (_, body) = sup.get("/admin/governance").await;
    let due = between(&body, "id=\"leases-due-table\"", "</table>");
    let r = between(due, &format!("id=\"due-{}\"", soon.id), "</tr>");
    assert!(r.contains("soon") && r.contains("alice") && r.contains(&shown(t0 + Duration::hours(2))) && r.contains("in 2h"), "{r}");
    assert!(!due.contains(&later.id.to_string()), "not due within a day: {due}");
    // The extension shows among the recent lease actions.
    alice.post(&format!("/vms/{}/lease", soon.id), &[("lease", "3h")]).await;
    let (_, body) = sup.get("/admin/governance").await;
    let actions = between(&body, "id=\"lease-actions-table\"", "</table>");
    assert!(actions.contains("vm.lease.set") && actions.contains(&soon.id.to_string()) && actions.contains("alice"), "{actions}");
    // Nobody's worker here: said so. With the background workers, their status.
    assert!(body.contains("has not reported in this process yet"), "{body}");
    let workers = app.broker.spawn_background();
    let mut body = String::new();
    for _ in 0..100 {
        body = sup.get("/admin/governance").await.1;
        if body.contains("<dl class=\"facts\" id=\"lease-worker\">") && !body.contains(", 0 pass(es) run here") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    workers.shutdown(std::time::Duration::from_secs(10)).await;
    let w = between(&body, "<dl class=\"facts\" id=\"lease-worker\">", "</dl>");
    assert!(w.contains("pass(es) run here") && !w.contains(", 0 pass(es)") && w.contains("Last success"), "{w}");
    assert!(!between(w, "<dt>Last success</dt>", "</dd>").contains("never"), "{w}");

    // Not for members.
    let (s, _) = alice.get("/admin/governance").await;
    assert_eq!(s, 403);
});
