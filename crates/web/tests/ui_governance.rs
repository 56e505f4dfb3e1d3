//! Launch policies in the UI, through the real server without a browser:
//! the launch form applies the chosen instance's policies (allowed types as
//! a select, patterns as a hint, only the allowed images, one field per
//! required tag, the most VMs per launch) and a refused launch comes back
//! with the policy's message next to its field and everything typed kept;
//! the admin page Governance lists each instance's policies with their
//! origins and the live VMs that break them (listed, not stopped), and is
//! refused to non-admins. On SQLite and PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::zombie_processes)]

mod common;

use cloudbroker_core::Actor;
use common::ui::Ui;

/// The text of the field error with id `id` (`<span class="field-error" id="...">`).
fn field_error<'a>(body: &'a str, id: &str) -> Option<&'a str> {
    let at = body.find(&format!("class=\"field-error\" id=\"{id}\">"))?;
    let rest = &body[at..];
    let start = rest.find('>')? + 1;
    Some(rest[start..].split("</span>").next().unwrap())
}

/// The element that starts at the first `<tag id="id"` up to its closing tag.
fn element<'a>(body: &'a str, tag: &str, id: &str) -> &'a str {
    let at = body.find(&format!("<{tag} id=\"{id}\"")).unwrap_or_else(|| panic!("no <{tag} id=\"{id}\"> in {body}"));
    let end = body[at..].find(&format!("</{tag}>")).map_or(body.len(), |e| at + e);
    &body[at..end]
}

/// The admin maps two native images on `sb`, gives alice credentials there,
/// and returns both signed in.
async fn setup(app: &common::TestApp) -> (Ui, Ui) {
    let admin = app.token("super", common::SUPER_PW).await;
    app.user(&admin, "alice").await;
    let sup = Ui::sign_in(app, "super", common::SUPER_PW).await;
    for (name, id) in [("linux", "ami-sandbox-debian-12"), ("ubuntu", "ami-sandbox-ubuntu-2204")] {
        let (s, body) = sup.post("/admin/images", &[("name", name), ("id.sb", id)]).await;
        assert_eq!(s, 200, "{body}");
    }
    let alice = Ui::sign_in(app, "alice", "alice-password").await;
    let (s, body) =
        alice.post("/credentials/sb", &[("access_key_id", "AKIAALICE0000001234"), ("secret_access_key", "alice-cloud-secret")]).await;
    assert_eq!(s, 200, "{body}");
    (sup, alice)
}

/// Sets `sb`'s policies through Configuration → System.
async fn set_policies(sup: &Ui, values: &[(&str, &str)]) {
    let (s, body) = sup.post("/admin/system", values).await;
    assert_eq!(s, 200, "{body}");
    assert!(body.contains("Saved"), "{body}");
}

async fn live_vms(app: &common::TestApp) -> i64 {
    let counts = app.broker.provisioning.vm_counts(&Actor::system(), None).await.unwrap();
    counts.iter().filter(|c| c.state != "terminated" && c.state != "failed").map(|c| c.count).sum()
}

app_test!(the_launch_form_applies_the_instances_policies, |app: common::TestApp| async move {
    let (sup, alice) = setup(&app).await;
    // Without policies: a free text type and no policy table.
    let (_, body) = alice.get("/vms?launch=sb").await;
    assert!(body.contains("<input id=\"launch-type\" name=\"instance_type\""), "{body}");
    assert!(!body.contains("id=\"launch-policies\""), "{body}");
    set_policies(
        &sup,
        &[
            ("p.sb.policy.instance.types", "t2.micro, t2.small, t3.*"),
            ("p.sb.policy.images", "linux"),
            ("p.sb.policy.tags.required", "cost-center=(rd|ops|sales), owner"),
            ("p.sb.policy.count.max", "2"),
        ],
    )
    .await;

    // The form for sb: its policy, field by field.
    let (s, body) = alice.get("/vms?launch=sb").await;
    assert_eq!(s, 200);
    let types = element(&body, "select", "launch-type");
    assert!(types.contains("name=\"instance_type\""), "{types}");
    assert!(types.contains("<option value=\"t2.micro\">") && types.contains("<option value=\"t2.small\">"), "{types}");
    assert!(!types.contains("t3.*"), "a pattern is no option: {types}");
    assert!(body.contains("Allowed on sb: t2.micro, t2.small, t3.*"), "{body}");
    let images = element(&body, "select", "launch-image");
    assert!(images.contains("value=\"linux\"") && !images.contains("value=\"ubuntu\""), "{images}");
    let cc = element(&body, "select", "launch-tag.cost-center");
    assert!(cc.contains("name=\"tag.cost-center\""), "{cc}");
    for v in ["rd", "ops", "sales"] {
        assert!(cc.contains(&format!("<option value=\"{v}\">")), "{cc}");
    }
    assert!(body.contains("<input id=\"launch-tag.owner\" name=\"tag.owner\" value=\"\" required>"), "{body}");
    assert!(body.contains("At most 2 per launch on sb"), "{body}");
    // Both instances offered and none chosen: the policies as a table, the type typed freely.
    let (_, body) = alice.get("/vms").await;
    let table = element(&body, "table", "launch-policies");
    assert!(table.contains("data-instance=\"sb\"") && !table.contains("data-instance=\"sb2\""), "{table}");
    assert!(table.contains("cost-center (rd, ops, sales), owner") && table.contains("href=\"/vms?launch=sb#launch\""), "{table}");
    assert!(body.contains("<input id=\"launch-type\" name=\"instance_type\""), "{body}");
    assert!(!body.contains("name=\"tag.owner\""), "{body}");

    // Refusals: the policy's message next to its field, everything typed kept, nothing launched.
    let good = [
        ("instance", "sb"),
        ("image", "linux"),
        ("instance_type", "t2.small"),
        ("count", "1"),
        ("name", "web"),
        ("tag.cost-center", "rd"),
        ("tag.owner", "alice"),
    ];
    let with = |k: &str, v: &'static str| -> Vec<(String, String)> {
        good.iter().map(|(a, b)| (a.to_string(), if *a == k { v.to_string() } else { b.to_string() })).collect()
    };
    let cases: [(&str, &'static str, &str, &str); 5] = [
        ("instance_type", "t2.medium", "instance_type-error", "instance type 't2.medium' is not allowed on 'sb' (policy.instance.types: "),
        ("image", "ubuntu", "image-error", "image 'ubuntu' is not allowed on 'sb' (policy.images: linux)"),
        ("count", "3", "count-error", "at most 2 per launch (policy.count.max: 2)"),
        ("tag.cost-center", "hr", "tag.cost-center-error", "tag 'cost-center' = 'hr' is not allowed on 'sb'"),
        ("tag.owner", "", "tag.owner-error", "tag 'owner' is required on 'sb'"),
    ];
    for (field, bad, error_id, message) in cases {
        let fields = with(field, bad);
        let f: Vec<(&str, &str)> = fields.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        let (s, body) = alice.post("/vms", &f).await;
        assert!(s == 400 || s == 409, "{field}: {s} {body}");
        let e = field_error(&body, error_id).unwrap_or_else(|| panic!("{field}: no message next to it: {body}"));
        assert!(e.contains(&message.replace('\'', "&#x27;")), "{field}: {e}");
        assert!(body.contains("value=\"web\""), "{field}: the name kept");
        if field != "tag.owner" {
            assert!(body.contains("id=\"launch-tag.owner\" name=\"tag.owner\" value=\"alice\""), "{field}: the owner kept: {body}");
        }
        if field != "tag.cost-center" {
            assert!(body.contains("<option value=\"rd\" selected>"), "{field}: the cost center kept");
        } else {
            assert!(body.contains("<option value=\"hr\" selected>"), "the refused value kept, shown");
        }
        if field != "instance_type" {
            assert!(body.contains("<option value=\"t2.small\" selected>"), "{field}: the type kept");
        } else {
            assert!(body.contains("<option value=\"t2.medium\" selected>"), "the refused type kept, shown");
        }
        assert_eq!(live_vms(&app).await, 0, "{field}: nothing launched");
    }
    // The same launch within the policy goes through.
    let mut ok: Vec<(&str, &str)> = good.to_vec();
    ok.retain(|(k, _)| *k != "count");
    ok.push(("count", "2"));
    let (s, body) = alice.post("/vms", &ok).await;
    assert_eq!(s, 200, "{body}");
    assert!(body.contains("Launched 2 VM(s)"), "{body}");
    assert_eq!(live_vms(&app).await, 2);

    // A required Name tag is the launch's name: the Name field is marked, no field of its own.
    set_policies(&sup, &[("p.sb.policy.tags.required", "cost-center=(rd|ops|sales), owner, Name")]).await;
    let (_, body) = alice.get("/vms?launch=sb").await;
    assert!(body.contains("(required on sb: its Name tag)") && !body.contains("name=\"tag.Name\""), "{body}");
    assert!(body.contains("<input id=\"launch-name\" name=\"name\" value=\"\" required>"), "{body}");
    let mut no_name: Vec<(&str, &str)> = good.to_vec();
    no_name.retain(|(k, _)| *k != "name");
    let (_, body) = alice.post("/vms", &no_name).await;
    let e = field_error(&body, "name-error").unwrap_or_else(|| panic!("no message next to the name: {body}"));
    assert!(e.contains("tag &#x27;Name&#x27; is required on &#x27;sb&#x27;"), "{e}");
    assert_eq!(live_vms(&app).await, 2, "nothing more launched");

    // Admins see the policy too, unless exempted from it; then the form is free for them.
    let (_, body) = sup.get("/vms?launch=sb").await;
    assert!(body.contains("<select id=\"launch-type\""), "{body}");
    set_policies(&sup, &[("p.sb.policy.exempt.admins", "true")]).await;
    let (_, body) = sup.get("/vms?launch=sb").await;
    assert!(body.contains("<input id=\"launch-type\"") && !body.contains("name=\"tag.owner\""), "{body}");
    assert!(body.contains("value=\"ubuntu\""), "every image offered: {body}");
    let (_, body) = alice.get("/vms?launch=sb").await;
    assert!(body.contains("<select id=\"launch-type\"") && body.contains("name=\"tag.owner\""), "still alice's: {body}");
});

app_test!(the_governance_page_lists_policies_and_violators, |app: common::TestApp| async move {
    let (sup, alice) = setup(&app).await;
    // Launched before any policy.
    let (s, body) =
        alice.post("/vms", &[("instance", "sb"), ("image", "linux"), ("instance_type", "t2.medium"), ("name", "big-one")]).await;
    assert_eq!(s, 200, "{body}");
    let vms = app.broker.provisioning.list(&Actor::system(), Default::default(), Default::default()).await.unwrap().items;
    let vm = vms.iter().find(|v| v.name == "big-one").expect("launched").clone();
    let (s, body) = sup.get("/admin/governance").await;
    assert_eq!(s, 200, "{body}");
    let sb = element(&body, "section", "governance-sb");
    assert!(sb.contains("no policy set") && sb.contains("None: every live VM on sb meets its policies"), "{sb}");

    // A policy set afterwards: the VM is listed, not stopped.
    set_policies(&sup, &[("p.sb.policy.instance.types", "t2.micro, t2.small")]).await;
    let (s, body) = sup.get("/admin/governance").await;
    assert_eq!(s, 200);
    assert!(body.contains("href=\"/admin/governance\" aria-current=\"page\""), "the admin nav links it");
    let sb = element(&body, "section", "governance-sb");
    let row = sb.split("data-policy=\"policy.instance.types\"").nth(1).unwrap().split("</tr>").next().unwrap();
    assert!(row.contains("t2.micro, t2.small") && row.contains("set here by super"), "{row}");
    assert!(sb.contains("href=\"/admin/system#p.sb.policy.instance.types\""), "{sb}");
    assert!(sb.contains("href=\"/admin/system#instance-sb\""), "{sb}");
    for p in ["policy.images", "policy.tags.required", "policy.count.max", "policy.exempt.admins"] {
        assert!(sb.contains(&format!("data-policy=\"{p}\"")), "{p}: {sb}");
    }
    let v = sb.split(&format!("id=\"violation-{}\"", vm.id)).nth(1).unwrap_or_else(|| panic!("{} not listed: {sb}", vm.id));
    let v = v.split("</tr>").next().unwrap();
    assert!(v.contains("big-one") && v.contains("alice") && v.contains("t2.medium"), "{v}");
    assert!(sb.contains("Not stopped: listed only"), "{sb}");
    let sb2 = element(&body, "section", "governance-sb2");
    assert!(sb2.contains("None: every live VM on sb2"), "{sb2}");
    let after = app.broker.provisioning.get(&Actor::system(), &vm.id).await.unwrap();
    assert!(after.status.is_live(), "not stopped: {:?}", after.status);

    // Not for non-admins, nor in their navigation.
    let (s, body) = alice.get("/admin/governance").await;
    assert_eq!(s, 403);
    assert!(body.contains("for administrators"), "{body}");
    let (_, vms_page) = alice.get("/vms").await;
    assert!(!vms_page.contains("/admin/governance"));
});
