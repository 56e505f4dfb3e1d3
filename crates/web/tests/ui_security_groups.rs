//! The security groups page (`/security-groups`) beyond create/ingress/
//! delete (`ui_resources`), through the real server without a browser:
//! tags on the create form (`key=value` pairs or lines, `Name` an ordinary
//! tag, a bad pair or a reserved key the field's message with everything
//! typed kept); outbound rules listed like inbound ones (protocol, ports,
//! CIDR block or group, description), added from their own form (to a CIDR
//! block and to a group), a duplicate refused as that form's message with
//! what was typed kept there (the inbound form left blank), and removed
//! with their own button. On SQLite and PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use cloudbroker_core::domain::{InstanceName, ProjectRole};
use cloudbroker_core::Actor;
use common::ui::{between, field_errors, unescape, Ui};

/// The row of group `id`, if listed.
fn row<'a>(body: &'a str, id: &str) -> Option<&'a str> {
    let at = body.find(&format!("<tr id=\"group-{id}\""))?;
    Some(&body[at..at + body[at..].find("</tr>").unwrap()])
}

/// A rule list cell of a row (`ingress` or `egress`).
fn cell<'a>(row: &'a str, dir: &str) -> &'a str {
    between(row, &format!("<td class=\"rules {dir}\">"), "</td>")
}

/// An outbound rule form's fields (the group aside).
fn egress<'a>(cidr: &'a str, port: &'a str, description: &'a str) -> [(&'static str, &'a str); 6] {
    [("direction", "egress"), ("protocol", "tcp"), ("from_port", port), ("to_port", ""), ("cidr", cidr), ("description", description)]
}

app_test!(outbound_rules_and_tags_on_the_security_groups_page, |app: common::TestApp| async move {
    let admin = app.token("super", common::SUPER_PW).await;
    app.user(&admin, "alice").await;
    let alice = Ui::sign_in(&app, "alice", "alice-password").await;
    let actor = Actor::system().in_project("alice".parse().unwrap(), ProjectRole::Owner);
    let sb = InstanceName::parse("sb").unwrap();

    // Tags: a pair without `=` and a reserved key are the field's messages; what was typed stays.
    let create = |tags: &'static str| [("instance", "sb"), ("name", "web"), ("description", "web servers"), ("tags", tags)];
    let (s, body) = alice.post("/security-groups", &create("team=web, owner")).await;
    assert_eq!(s, 400, "{body}");
    let errs = field_errors(&body);
    assert!(errs.len() == 1 && unescape(&errs[0]).starts_with("'owner' is not key=value"), "{errs:?}");
    assert!(body.contains("value=\"team=web, owner\"") && body.contains("value=\"web servers\""), "{body}");
    let (s, body) = alice.post("/security-groups", &create("aws:owner=me")).await;
    assert_eq!(s, 400, "{body}");
    let errs = field_errors(&body);
    assert!(errs.len() == 1 && unescape(&errs[0]).contains("tag 'aws:owner' is reserved"), "{errs:?}");
    assert!(body.contains("id=\"tags-error\"") && body.contains("value=\"aws:owner=me\""), "{body}");
    assert!(app.broker.provisioning.security_groups(&actor, &sb).await.unwrap().is_empty(), "nothing made");
    // Pairs, `Name` an ordinary tag: kept as typed, listed in the row.
    let (s, to) = alice.post_no_follow("/security-groups", &create("team=web, Name=front door")).await;
    assert_eq!((s, to.as_str()), (303, "/security-groups"));
    let groups = app.broker.provisioning.security_groups(&actor, &sb).await.unwrap();
    assert_eq!(groups.len(), 1);
    let id = groups[0].group_id.clone();
    let tags: Vec<(&str, &str)> = groups[0].tags.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    assert_eq!(tags, vec![("Name", "front door"), ("team", "web")]);
    let (_, body) = alice.get("/security-groups").await;
    let r = row(&body, &id).unwrap().to_string();
    assert!(r.contains("<span class=\"muted group-tags\">Name=front door, team=web</span>"), "{r}");
    // One per line works as well.
    let (s, _) =
        alice.post_no_follow("/security-groups", &[("instance", "sb"), ("name", "db"), ("description", "db"), ("tags", "a=1\nb=2")]).await;
    assert_eq!(s, 303);
    let db = app.broker.provisioning.security_groups(&actor, &sb).await.unwrap().into_iter().find(|g| g.name == "db").unwrap();
    assert_eq!(db.tags.len(), 2, "{:?}", db.tags);

    // Outbound rules: to a CIDR block with a description, and to a group.
    let group = format!("sb/{id}");
    let mut https = egress("10.0.0.0/8", "443", "to the proxies").to_vec();
    https.push(("group", &group));
    let (s, to) = alice.post_no_follow("/security-groups/rules", &https).await;
    assert_eq!((s, to.as_str()), (303, "/security-groups"));
    let mut to_db = egress(&db.group_id, "5432", "").to_vec();
    to_db.push(("group", &group));
    let (s, to) = alice.post_no_follow("/security-groups/rules", &to_db).await;
    assert_eq!((s, to.as_str()), (303, "/security-groups"));
    let (_, body) = alice.get("/security-groups").await;
    assert!(body.contains("Egress rule added to"), "{body}");
    let r = row(&body, &id).unwrap().to_string();
    let out = cell(&r, "egress");
    assert!(out.contains("tcp 443 to 10.0.0.0/8 <span class=\"muted rule-description\">(to the proxies)</span>"), "{out}");
    assert!(out.contains(&format!("tcp 5432 to {}", db.group_id)), "{out}");
    assert!(out.contains("name=\"direction\" value=\"egress\""), "a remove button per rule: {out}");
    assert!(!cell(&r, "ingress").contains("10.0.0.0/8"), "not an inbound rule: {r}");
    let rules = &app.broker.provisioning.security_group(&actor, &sb, &id).await.unwrap().rules;
    let r443 = rules.iter().find(|r| r.from_port == Some(443)).unwrap();
    assert!(r443.egress && r443.description.as_deref() == Some("to the proxies"), "{r443:?}");

    // A duplicate: the outbound form's message, what was typed kept there, the inbound form blank.
    let (s, body) = alice.post("/security-groups/rules", &https).await;
    assert_eq!(s, 409, "{body}");
    let outbound = between(&body, "id=\"add-egress\"", "</section>");
    assert!(outbound.contains("id=\"form-error\"") && outbound.contains("No rule was added"), "{outbound}");
    assert!(
        outbound.contains("value=\"10.0.0.0/8\"") && outbound.contains("value=\"443\"") && outbound.contains("value=\"to the proxies\"")
    );
    assert!(outbound.contains(&format!("<option value=\"sb/{id}\" selected>")), "{outbound}");
    let inbound = between(&body, "id=\"add-rule\"", "</section>");
    assert!(!inbound.contains("form-error") && inbound.contains("value=\"0.0.0.0/0\"") && !inbound.contains("selected>web"), "{inbound}");
    // A bad port in the outbound form: its field, in that form.
    let mut bad = egress("10.0.0.0/8", "https", "").to_vec();
    bad.push(("group", &group));
    let (s, body) = alice.post("/security-groups/rules", &bad).await;
    assert_eq!(s, 400);
    assert!(between(&body, "id=\"add-egress\"", "</section>").contains("id=\"egress-from_port-error\""), "{body}");
    // A direction that is neither: nothing to find.
    let mut sideways = egress("10.0.0.0/8", "22", "").to_vec();
    sideways[0] = ("direction", "sideways");
    sideways.push(("group", &group));
    assert_eq!(alice.post("/security-groups/rules", &sideways).await.0, 404);

    // Removed by its own button (direction egress); the inbound side untouched.
    let remove = [("direction", "egress"), ("protocol", "tcp"), ("from_port", "443"), ("to_port", "443"), ("cidr", "10.0.0.0/8")];
    let (s, to) = alice.post_no_follow(&format!("/security-groups/sb/{id}/rules/remove"), &remove).await;
    assert_eq!((s, to.as_str()), (303, "/security-groups"));
    let (_, body) = alice.get("/security-groups").await;
    assert!(body.contains(&format!("Egress rule removed from {id}")), "{body}");
    let r = row(&body, &id).unwrap().to_string();
    assert!(!cell(&r, "egress").contains("10.0.0.0/8") && cell(&r, "egress").contains(&db.group_id), "{r}");
    // Removing it again: the cloud's refusal over the list.
    let (s, body) = alice.post(&format!("/security-groups/sb/{id}/rules/remove"), &remove).await;
    assert!(s >= 400 && body.contains("id=\"form-error\""), "{s}: {body}");
});
