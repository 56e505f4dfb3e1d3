//! The System page with many instances and the image form's cloud checks
//! (issue 23), through the real server without a browser, on SQLite and
//! PostgreSQL: the section index lists every instance with its state; a
//! section with an error, or just saved, is open and the others are folded
//! (their values still sent); `?open=all` opens them all and a failed save
//! keeps open what was open; Save sits in a bar of its own. Saving a native
//! image looks its cloud image ids and default types up on each instance's
//! cloud: a missing id or an unknown type on the sandbox is an error next to
//! the field naming the instance and the value, everything typed kept, and
//! *save anyway* saves it, said in amber; an instance no credential can ask
//! says "not checked: no credential" and saves; the form offers the types
//! the cloud lists. The same against moto behind an `ec2` instance, asked
//! with a shared credential the admin stored.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::zombie_processes)]

mod common;

use cloudbroker_testkit::{MotoOptions, MotoServer};
use common::ui::{between, field_errors, flash, Ui};

/// The `<details …>` opening tag of a section (`advanced` or an instance).
fn section_tag<'a>(body: &'a str, id: &str) -> &'a str {
    let at = body.find(&format!("id=\"section-{id}\"")).unwrap_or_else(|| panic!("no section {id} in {body}"));
    let start = body[..at].rfind("<details").unwrap();
    let end = at + body[at..].find('>').unwrap();
    &body[start..=end]
}

fn is_open(body: &str, id: &str) -> bool {
    section_tag(body, id).contains(" open>")
}

app_test!(the_system_page_indexes_and_folds_its_sections, |app: common::TestApp| async move {
    let sup = Ui::sign_in(&app, "super", common::SUPER_PW).await;
    // Five instances (sb and sb2 from the file, three declared here).
    let (s, body) = sup.post("/admin/system", &[("p.cloud.connector.class", "sbx-a:sandbox, sbx-b:sandbox, sbx-c:sandbox")]).await;
    assert_eq!(s, 200, "{body}");
    assert!(flash(&body).1.contains("Saved 1 value(s)"), "{body}");
    let index = between(&body, "id=\"system-index\"", "</nav>");
    for name in ["sb", "sb2", "sbx-a", "sbx-b", "sbx-c"] {
        assert!(index.contains(&format!("href=\"#instance-{name}\"")), "{name} in the index: {index}");
        assert!(body.contains(&format!("id=\"instance-{name}\"")), "{name}'s section");
    }
    assert!(index.contains("href=\"#basics\"") && index.contains("href=\"#advanced\""), "{index}");
    // Just declared: open; the file's instances folded, Advanced too.
    assert!(is_open(&body, "sbx-a") && is_open(&body, "sbx-b") && is_open(&body, "sbx-c"), "{body}");
    assert!(!is_open(&body, "sb") && !is_open(&body, "sb2") && !is_open(&body, "advanced"), "{body}");
    // The page alone: everything folded but Basics (not a <details>), Save in its bar.
    let (_, body) = sup.get("/admin/system").await;
    for id in ["sb", "sb2", "sbx-a", "sbx-b", "sbx-c", "advanced"] {
        assert!(!is_open(&body, id), "{id} folded: {}", section_tag(&body, id));
    }
    assert!(between(&body, "id=\"savebar\"", "</div>").contains("id=\"save-system\""), "{body}");
    assert!(body.contains("id=\"open-all\""), "{body}");
    // A save opens what it saved, and only that.
    let (_, body) = sup.post("/admin/system", &[("p.sbx-b.boot.delay.ms", "250"), ("open", "")]).await;
    assert!(flash(&body).1.contains("Saved 1 value(s)"), "{body}");
    assert!(is_open(&body, "sbx-b") && !is_open(&body, "sbx-a") && !is_open(&body, "sb"), "{body}");
    let item = between(&body, "data-instance=\"sbx-b\"><a", "</li>");
    assert!(item.contains("1 set here") && item.contains("ready"), "{item}");
    // A bad value: its section open and marked in the index, with the count to fix.
    let (s, body) = sup.post("/admin/system", &[("p.sbx-c.max.iaas.workers", "lots"), ("p.sbx-c.failure.rate", "2"), ("open", "")]).await;
    assert_eq!(s, 400, "{body}");
    assert!(is_open(&body, "sbx-c") && section_tag(&body, "sbx-c").contains("section-error"), "{body}");
    assert!(!is_open(&body, "sbx-a") && !is_open(&body, "sbx-b"), "{body}");
    let item = between(&body, "data-instance=\"sbx-c\"><a", "</li>");
    assert!(item.contains("index-bad") && item.contains("2 to fix"), "{item}");
    // What was open when the form was sent stays open after a failed save.
    let (s, body) = sup.post("/admin/system", &[("p.sbx-c.max.iaas.workers", "lots"), ("open", "sb2,sbx-a")]).await;
    assert_eq!(s, 400);
    assert!(is_open(&body, "sb2") && is_open(&body, "sbx-a") && is_open(&body, "sbx-c") && !is_open(&body, "sbx-b"), "{body}");
    assert!(body.contains("name=\"open\" value=\"sb2,sbx-a,sbx-c\""), "{body}");
    // A declaration in error: its section open with the error, marked in the index.
    let (_, body) = sup.post("/admin/system", &[("p.cloud.connector.class", "sbx-a:sandbox, q:ec2query"), ("open", "")]).await;
    assert!(is_open(&body, "q"), "{body}");
    let (_, body) = sup.get("/admin/system").await;
    assert!(is_open(&body, "q") && !is_open(&body, "sbx-a"), "a section with an error is open: {body}");
    assert!(between(&body, "data-instance=\"q\"><a", "</li>").contains(">error<"), "{body}");
    // ?open=all opens every section; the link folds them again.
    let (_, body) = sup.get("/admin/system?open=all").await;
    for id in ["sb", "sb2", "sbx-a", "q", "advanced"] {
        assert!(is_open(&body, id), "{id}");
    }
    assert!(body.contains("id=\"collapse-all\"") && body.contains("name=\"open\" value=\"all\""), "{body}");
});

app_test!(saving_an_image_checks_the_cloud, |app: common::TestApp| async move {
    let sup = Ui::sign_in(&app, "super", common::SUPER_PW).await;
    // The form offers the types the sandbox lists.
    let (s, body) = sup.get("/admin/images/new").await;
    assert_eq!(s, 200);
    let list = between(&body, "<datalist id=\"types-sb\">", "</datalist>");
    assert!(list.contains("<option value=\"t2.micro\">") && list.contains("<option value=\"m5.large\">"), "{list}");
    assert!(body.contains("list=\"types-sb\""), "{body}");
    // A missing image id and an unknown type: errors naming the instance and the value, the form kept.
    let (s, body) = sup
        .post(
            "/admin/images",
            &[
                ("name", "ubuntu"),
                ("description", "Ubuntu LTS"),
                ("id.sb", "ami-sandbox-nope"),
                ("type.sb", "t2.small"),
                ("id.sb2", "ami-sandbox-ubuntu-2204"),
                ("type.sb2", "z9.huge"),
            ],
        )
        .await;
    assert_eq!(s, 400, "{body}");
    let errs = field_errors(&body);
    assert_eq!(errs.len(), 2, "{errs:?}");
    assert!(errs.iter().any(|e| e.contains("sb: the cloud has no image ami-sandbox-nope")), "{errs:?}");
    assert!(errs.iter().any(|e| e.contains("sb2: the cloud does not offer the instance type z9.huge")), "{errs:?}");
    assert!(errs.iter().all(|e| e.contains("asked with the sandbox identity of super")), "{errs:?}");
    for kept in ["value=\"ubuntu\"", "value=\"Ubuntu LTS\"", "value=\"ami-sandbox-nope\"", "value=\"t2.small\"", "value=\"z9.huge\""] {
        assert!(body.contains(kept), "{kept} kept: {body}");
    }
    assert!(body.contains("id=\"save_anyway\""), "save anyway offered: {body}");
    let (s, _) = sup.get("/admin/images/ubuntu").await;
    assert_eq!(s, 404, "nothing saved");
    // Save anyway: saved, the flash says what the cloud lacks, in amber.
    let (s, body) = sup
        .post("/admin/images", &[("name", "ubuntu"), ("id.sb", "ami-sandbox-nope"), ("type.sb", "t2.small"), ("save_anyway", "on")])
        .await;
    assert_eq!(s, 200, "{body}");
    let (class, msg) = flash(&body);
    assert!(msg.contains("Image ubuntu saved") && msg.contains("saved anyway: the cloud behind sb has no image ami-sandbox-nope"), "{msg}");
    assert!(class.contains("warn"), "{class}");
    // Good values save quietly.
    let (s, body) = sup.post("/admin/images", &[("name", "linux"), ("id.sb", "ami-sandbox-debian-12"), ("type.sb", "t2.small")]).await;
    assert_eq!(s, 200, "{body}");
    let (class, msg) = flash(&body);
    assert_eq!(msg, "Image linux saved");
    assert!(!class.contains("warn"), "{class}");
    // An instance no credential can ask: "not checked", and saved.
    let (_, body) =
        sup.post("/admin/system", &[("p.cloud.connector.class", "one:ec2query"), ("p.one.endpoint", "http://127.0.0.1:9/")]).await;
    assert!(body.contains("Saved"), "{body}");
    let (_, form) = sup.get("/admin/images/new").await;
    let note = between(&form, "data-instance=\"one\">", "</span>");
    assert_eq!(note, "not checked: no credential");
    assert!(!form.contains("list=\"types-one\""), "no type list without a credential");
    let (s, body) = sup.post("/admin/images", &[("name", "deb"), ("id.one", "ami-00000001"), ("type.one", "t3.micro")]).await;
    assert_eq!(s, 200, "{body}");
    let (class, msg) = flash(&body);
    assert!(msg.contains("image ami-00000001 on one not checked: no credential"), "{msg}");
    assert!(msg.contains("type t3.micro on one not checked: no credential"), "{msg}");
    assert!(class.contains("warn"), "{class}");
    // A user's own check never happens: the form is an admin's.
    let admin = app.token("super", common::SUPER_PW).await;
    app.user(&admin, "alice").await;
    let alice = Ui::sign_in(&app, "alice", "alice-password").await;
    assert_eq!(alice.get("/admin/images/new").await.0, 403);
});

/// moto behind an `ec2` instance: the checks ask it with a shared credential.
async fn checks_against_moto(db_url: Option<String>) {
    let moto = MotoServer::start(MotoOptions { ec2_only: true, ..MotoOptions::default() });
    let app = common::TestApp::on_moto(db_url, &moto, "").await;
    let sup = Ui::sign_in(&app, "super", common::SUPER_PW).await;
    // No credential yet: not checked.
    let (_, form) = sup.get("/admin/images/new").await;
    assert_eq!(between(&form, "data-instance=\"aws\">", "</span>"), "not checked: no credential", "{form}");
    // A shared credential (granted to nobody) lets the admin's check ask.
    let (s, body) = sup
        .post(
            "/admin/credentials",
            &[("instance", "aws"), ("name", "team"), ("access_key_id", "AKIATEAMMOTO0000001"), ("secret_access_key", "team-moto-secret")],
        )
        .await;
    assert_eq!(s, 200, "{body}");
    let (_, form) = sup.get("/admin/images/new").await;
    let list = between(&form, "<datalist id=\"types-aws\">", "</datalist>");
    assert!(list.contains("<option value=\"t3.micro\">"), "moto's types offered: {list}");
    let (s, body) = sup.post("/admin/images", &[("name", "ubuntu"), ("id.aws", "ami-00000000deadbeef"), ("type.aws", "t3.nonesuch")]).await;
    assert_eq!(s, 400, "{body}\nmoto's log:\n{}", moto.log());
    let errs = field_errors(&body);
    assert!(errs.iter().any(|e| e.contains("aws: the cloud has no image ami-00000000deadbeef")), "{errs:?}");
    assert!(errs.iter().any(|e| e.contains("aws: the cloud does not offer the instance type t3.nonesuch")), "{errs:?}");
    assert!(errs.iter().all(|e| e.contains("asked with the shared credential &#x27;team&#x27;")), "{errs:?}");
    assert!(!body.contains("team-moto-secret") && !body.contains("AKIATEAMMOTO0000001"), "no key is shown");
    let (s, body) = sup.post("/admin/images", &[("name", "ubuntu"), ("id.aws", "ami-12c6146b"), ("type.aws", "t3.micro")]).await;
    assert_eq!(s, 200, "{body}\nmoto's log:\n{}", moto.log());
    assert_eq!(flash(&body).1, "Image ubuntu saved");
    // moto gone: the cloud cannot be reached, said, and the save goes through.
    drop(moto);
    let (s, body) = sup.post("/admin/images", &[("name", "other"), ("id.aws", "ami-12c6146b")]).await;
    assert_eq!(s, 200, "{body}");
    let msg = flash(&body).1;
    assert!(msg.contains("image ami-12c6146b on aws not checked: "), "{msg}");
    assert!(!msg.contains("no credential"), "{msg}");
    app.stop().await;
}

db_url_test!(image_checks_ask_moto_with_a_shared_credential, super::checks_against_moto);
