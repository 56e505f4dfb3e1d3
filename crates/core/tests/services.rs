//! The core services, called directly (no HTTP): identity, credentials,
//! images, provisioning and quotas, on SQLite and on PostgreSQL. The JSON
//! API, the UI and the EC2 front only translate to and from these calls, so
//! the behaviour is pinned here; the front-ends' tests check translation.

// Test code: panicking on an unexpected result is the point; helper
// functions outside #[test] are covered by this too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::zombie_processes)]

mod common;

use cloudbroker_connector_api::SecretString;
use cloudbroker_core::domain::{ClientToken, PageRequest, Tags, UserName, VmAction, VmStatus};
use cloudbroker_core::images::{ImageMapping, ImageSpec};
use cloudbroker_core::provisioning::{LaunchRequest, LaunchTags, QuotaSource, VmQuery};
use cloudbroker_core::testing::{image, image_ref, instance, user};
use cloudbroker_core::vault::Scope;
use cloudbroker_core::{Actor, Broker, Resource, ServiceError};
use std::collections::BTreeMap;

fn admin() -> Actor {
    Actor::system()
}

async fn add_user(b: &Broker, name: &str) -> Actor {
    let u = b.identity.create_user(&admin(), &user(name), &SecretString::new(format!("{name}-password")), false).await.unwrap();
    Actor::new(u.name, false)
}

async fn linux_image(b: &Broker) {
    let mut mappings = BTreeMap::new();
    mappings.insert(
        instance("sb"),
        ImageMapping { image_id: "ami-sandbox-debian-12".into(), instance_type: Some("t2.small".into()), security_group: None },
    );
    let spec = ImageSpec { name: image("linux"), description: "any Linux".into(), os: "linux".into(), parent: None, mappings };
    b.images.put(&admin(), spec, true).await.unwrap();
}

broker_test!(identity_users_passwords_tokens, |b: Broker| async move {
    let alice = add_user(&b, "alice").await;
    // Duplicates and short passwords are refused, naming the field.
    let e = b.identity.create_user(&admin(), &user("alice"), &SecretString::new("long-enough"), false).await.unwrap_err();
    assert!(matches!(e, ServiceError::Conflict(_)), "{e}");
    let e = b.identity.create_user(&admin(), &user("bob"), &SecretString::new("short"), false).await.unwrap_err();
    assert!(matches!(e, ServiceError::Invalid { field: Some("password"), .. }), "{e}");
    // Users cannot create users or see others.
    assert!(matches!(
        b.identity.create_user(&alice, &user("bob"), &SecretString::new("bob-password"), false).await,
        Err(ServiceError::Forbidden(_))
    ));
    let e = b.identity.get_user(&alice, &user("super")).await.unwrap_err();
    assert!(matches!(&e, ServiceError::NotFound(Resource::User(u)) if u.as_str() == "super"), "{e}");
    // Authentication: right and wrong password.
    let a = b.identity.authenticate(&user("alice"), &SecretString::new("alice-password"), None).await.unwrap();
    assert_eq!(a, alice);
    assert!(matches!(
        b.identity.authenticate(&user("alice"), &SecretString::new("nope-nope"), None).await,
        Err(ServiceError::Unauthenticated(_))
    ));
    // Tokens: minted, resolved, listed, revoked.
    let (raw, t) = b.identity.create_token(&alice, &alice.name, "ci", None).await.unwrap();
    // The actor carries the token it authenticated with (what it mints is revoked with it).
    assert_eq!(b.identity.resolve_token(&raw).await.unwrap(), Some(Actor { token_id: Some(t.id.clone()), ..alice.clone() }));
    assert_eq!(b.identity.list_tokens(&alice, &alice.name).await.unwrap().len(), 1);
    b.identity.revoke_token(&alice, &alice.name, &t.id).await.unwrap();
    assert_eq!(b.identity.resolve_token(&raw).await.unwrap(), None);
    let e = b.identity.revoke_token(&alice, &alice.name, &t.id).await;
    assert!(matches!(e, Err(ServiceError::NotFound(Resource::Token(_)))));
    // The reserved name cannot be created.
    assert!(UserName::parse("system").is_err());
});

broker_test!(credentials_are_sealed_masked_and_scoped, |b: Broker| async move {
    let alice = add_user(&b, "alice").await;
    let bob = add_user(&b, "bob").await;
    let m = b.vault.put(&alice, Scope::User(&alice.name), &instance("sb"), "AKIAALICE0001", "alice-secret", false).await.unwrap();
    assert_eq!((m.access_key_id.as_str(), m.secret_access_key.as_str(), m.status.as_str()), ("****0001", "********", "verified"));
    let (c, _) = b.vault.credentials_for(&alice.name, &instance("sb")).await.unwrap();
    assert_eq!(c.secret_access_key.expose(), "alice-secret");
    // Another user's credentials do not exist for bob.
    let e = b.vault.get(&bob, Scope::User(&alice.name), &instance("sb")).await.unwrap_err();
    assert!(matches!(e, ServiceError::NotFound(Resource::User(_))), "{e}");
    // Unknown instance, empty secret: typed errors.
    let e = b.vault.put(&alice, Scope::User(&alice.name), &instance("mars"), "AKIA", "s", false).await.unwrap_err();
    assert!(matches!(&e, ServiceError::NotFound(Resource::Instance(i)) if i.as_str() == "mars"), "{e}");
    let e = b.vault.put(&alice, Scope::User(&alice.name), &instance("sb"), "AKIA", "", false).await.unwrap_err();
    assert!(matches!(e, ServiceError::Invalid { field: Some("secret_access_key"), .. }), "{e}");
    // Deleting: gone, and a second delete is "not found" for that instance.
    b.vault.delete(&alice, Scope::User(&alice.name), &instance("sb")).await.unwrap();
    let e = b.vault.delete(&alice, Scope::User(&alice.name), &instance("sb")).await.unwrap_err();
    assert!(matches!(&e, ServiceError::NotFound(Resource::Credentials { instance: i }) if i.as_str() == "sb"), "{e}");
});

broker_test!(images_hierarchy_and_typed_errors, |b: Broker| async move {
    linux_image(&b).await;
    let child = ImageSpec {
        name: image("ubuntu"),
        description: String::new(),
        os: String::new(),
        parent: Some(image("linux")),
        mappings: BTreeMap::new(),
    };
    b.images.put(&admin(), child, true).await.unwrap();
    let r = b.images.resolve(&image("ubuntu"), &instance("sb")).await.unwrap();
    assert_eq!(
        (r.image_id.as_str(), r.from_image.as_str(), r.instance_type.as_deref()),
        ("ami-sandbox-debian-12", "linux", Some("t2.small"))
    );
    let e = b.images.resolve(&image("ubuntu"), &instance("sb2")).await.unwrap_err();
    assert!(matches!(e, ServiceError::Unresolved { field: "image", .. }), "{e}");
    assert!(e.to_string().contains("(nor do its parents linux)"), "{e}");
    let e = b.images.get(&image("ghost")).await.unwrap_err();
    assert!(matches!(&e, ServiceError::NotFound(Resource::Image(i)) if i.as_str() == "ghost"), "{e}");
    // A cycle is an unresolved reference in `parent` (409 in the API), and nothing changes.
    let cyc = ImageSpec {
        name: image("linux"),
        description: String::new(),
        os: String::new(),
        parent: Some(image("ubuntu")),
        mappings: BTreeMap::new(),
    };
    let e = b.images.put(&admin(), cyc, false).await.unwrap_err();
    assert!(matches!(e, ServiceError::Unresolved { field: "parent", .. }), "{e}");
    assert_eq!(b.images.get(&image("linux")).await.unwrap().parent, None);
});

broker_test!(launch_list_act_and_quota, |b: Broker| async move {
    linux_image(&b).await;
    let alice = add_user(&b, "alice").await;
    let bob = add_user(&b, "bob").await;
    b.system.set(&admin(), &[("quota.enable".into(), Some("true".into()))]).await.unwrap();
    let q = b.provisioning.set_quota(&admin(), &alice.name, &instance("sb"), Some(3)).await.unwrap();
    assert_eq!((q.limit, q.source, q.usage), (3, QuotaSource::Override, 0));

    let mut spec = LaunchRequest::new(instance("sb"), image_ref("linux"));
    spec.count = 2.into();
    spec.name = "web".into();
    spec.client_token = Some(ClientToken::parse("retry-1").unwrap());
    spec.tags = LaunchTags::user(Tags::parse([("team".to_string(), "a".to_string())].into()).unwrap());
    let out = b.provisioning.launch(&alice, spec.clone()).await.unwrap();
    assert!(out.created);
    assert_eq!(out.vms.len(), 2);
    assert!(out.vms.iter().all(|v| v.instance_type == "t2.small" && v.user == alice.name && v.cloud_id.is_some()));
    // The same client token answers with the same VMs.
    let again = b.provisioning.launch(&alice, spec).await.unwrap();
    assert!(!again.created);
    assert_eq!(again.vms.iter().map(|v| v.id.clone()).collect::<Vec<_>>(), out.vms.iter().map(|v| v.id.clone()).collect::<Vec<_>>());
    // Over quota: 2 + 2 > 3, with the numbers.
    let mut more = LaunchRequest::new(instance("sb"), image_ref("linux"));
    more.count = 2.into();
    let e = b.provisioning.launch(&alice, more).await.unwrap_err();
    assert!(
        matches!(e, ServiceError::QuotaExceeded { scope: cloudbroker_core::QuotaScope::User, quota: 3, current: 2, requested: 2 }),
        "{e}"
    );
    // An unknown image is an unresolved reference in `image`; an unknown VM is "not found" by id.
    let e = b.provisioning.launch(&alice, LaunchRequest::new(instance("sb"), image_ref("nope"))).await.unwrap_err();
    assert!(matches!(e, ServiceError::Unresolved { field: "image", .. }), "{e}");

    // Listing: newest first, paginated, own VMs only.
    let p1 = b.provisioning.list(&alice, VmQuery::default(), PageRequest::first(1)).await.unwrap();
    assert_eq!(p1.items.len(), 1);
    let cursor = p1.next_cursor.clone().expect("a second page");
    let p2 = b.provisioning.list(&alice, VmQuery::default(), PageRequest::parse(Some("1"), Some(&cursor)).unwrap()).await.unwrap();
    assert_eq!(p2.items.len(), 1);
    assert_ne!(p1.items[0].id, p2.items[0].id);
    assert!(p2.next_cursor.is_none());
    let tagged = VmQuery { tag: Some(("team".into(), "a".into())), ..VmQuery::default() };
    assert_eq!(b.provisioning.list(&alice, tagged, PageRequest::default()).await.unwrap().items.len(), 2);
    assert!(b.provisioning.list(&bob, VmQuery::default(), PageRequest::default()).await.unwrap().items.is_empty());
    let id = out.vms[0].id.clone();
    let e = b.provisioning.get(&bob, &id).await.unwrap_err();
    assert!(matches!(&e, ServiceError::NotFound(Resource::Vm(v)) if v == &id), "{e}");
    assert!(matches!(b.provisioning.action(&bob, &id, VmAction::Terminate).await, Err(ServiceError::NotFound(Resource::Vm(_)))));

    // Actions change the status; terminated VMs stop counting.
    let v = b.provisioning.action(&alice, &id, VmAction::Stop).await.unwrap();
    assert!(matches!(v.status, VmStatus::Stopping | VmStatus::Stopped), "{:?}", v.status);
    let v = b.provisioning.action(&alice, &id, VmAction::Terminate).await.unwrap();
    assert!(matches!(v.status, VmStatus::ShuttingDown | VmStatus::Terminated), "{:?}", v.status);
    let q = b.provisioning.quotas(&alice, &alice.name).await.unwrap();
    let sb = q.iter().find(|q| q.instance.as_str() == "sb").unwrap();
    assert_eq!((sb.limit, sb.usage, sb.enforced), (3, 1, true));
    let sb2 = q.iter().find(|q| q.instance.as_str() == "sb2").unwrap();
    assert_eq!((sb2.limit, sb2.source), (20, QuotaSource::Default));
});

broker_test!(system_config_changes_are_typed_and_audited, |b: Broker| async move {
    let alice = add_user(&b, "alice").await;
    assert!(matches!(b.system.config(&alice), Err(ServiceError::Forbidden(_))));
    let e = b.system.set(&admin(), &[("no.such.key".into(), Some("1".into()))]).await.unwrap_err();
    assert!(matches!(e, ServiceError::NotFound(_)) && e.to_string().contains("no.such.key"), "{e}");
    let e = b.system.set(&admin(), &[("sb.boot.delay.ms".into(), Some("5".into()))]).await.unwrap_err();
    assert!(matches!(e, ServiceError::Conflict(_)) && e.to_string().contains("sb.conf:"), "file-managed keys are refused: {e}");
    b.system.set(&admin(), &[("images.allow.raw".into(), Some("true".into()))]).await.unwrap();
    assert!(b.system.flag("images.allow.raw"));
    let log = b.audit.list(&admin(), Default::default(), PageRequest::default()).await.unwrap();
    let changes: Vec<(&str, &str)> =
        log.items.iter().filter(|e| e.action == "config.change").map(|e| (e.target.as_str(), e.outcome.as_str())).collect();
    assert!(changes.contains(&("images.allow.raw", "ok")), "{changes:?}");
    assert!(changes.contains(&("no.such.key", "rejected")), "{changes:?}");
    assert!(matches!(b.audit.list(&alice, Default::default(), PageRequest::default()).await, Err(ServiceError::Forbidden(_))));
});

broker_test!(the_transition_watch_visits_only_groups_on_the_move, |b: Broker| async move {
    linux_image(&b).await;
    let alice = add_user(&b, "alice").await;
    let bob = add_user(&b, "bob").await;
    let vm = b.provisioning.launch(&alice, LaunchRequest::new(instance("sb"), image_ref("linux"))).await.unwrap().vms.remove(0);
    let other = b.provisioning.launch(&bob, LaunchRequest::new(instance("sb"), image_ref("linux"))).await.unwrap().vms.remove(0);
    // Settle both, then move only alice's.
    b.provisioning.reconcile("t").await.unwrap();
    assert_eq!(b.provisioning.get(&alice, &vm.id).await.unwrap().status, VmStatus::Running);
    let quiet = b.provisioning.watch_transitional("t").await.unwrap();
    assert_eq!(quiet.groups, 0, "a group with nothing in transition was listed: {quiet:?}");
    b.provisioning.action(&alice, &vm.id, VmAction::Stop).await.unwrap();
    let mut last = VmStatus::Stopping;
    for _ in 0..50 {
        let r = b.provisioning.watch_transitional("t").await.unwrap();
        assert!(r.groups <= 1, "{r:?}");
        last = b.provisioning.get(&alice, &vm.id).await.unwrap().status;
        if last == VmStatus::Stopped {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(last, VmStatus::Stopped);
    assert_eq!(b.provisioning.get(&bob, &other.id).await.unwrap().status, VmStatus::Running);
});

broker_test!(listing_can_leave_out_vms_that_ended_long_ago, |b: Broker| async move {
    linux_image(&b).await;
    let alice = add_user(&b, "alice").await;
    let mut spec = LaunchRequest::new(instance("sb"), image_ref("linux"));
    spec.count = 2.into();
    let vms = b.provisioning.launch(&alice, spec).await.unwrap().vms;
    b.provisioning.action(&alice, &vms[0].id, VmAction::Terminate).await.unwrap();
    for _ in 0..50 {
        b.provisioning.reconcile("t").await.unwrap();
        if b.provisioning.get(&alice, &vms[0].id).await.unwrap().status == VmStatus::Terminated {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let all = b.provisioning.list_recent(&alice, VmQuery::default(), PageRequest::default(), None).await.unwrap();
    assert_eq!(all.items.len(), 2);
    // Everything that ended before "a second from now" is left out; live VMs stay.
    let cutoff = chrono::Utc::now() + chrono::Duration::seconds(1);
    let recent = b.provisioning.list_recent(&alice, VmQuery::default(), PageRequest::default(), Some(cutoff)).await.unwrap();
    assert_eq!(recent.items.iter().map(|v| v.id.clone()).collect::<Vec<_>>(), vec![vms[1].id.clone()]);
    let past = chrono::Utc::now() - chrono::Duration::seconds(900);
    assert_eq!(b.provisioning.list_recent(&alice, VmQuery::default(), PageRequest::default(), Some(past)).await.unwrap().items.len(), 2);
});
