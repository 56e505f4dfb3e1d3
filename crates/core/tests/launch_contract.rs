//! The launch contract, on SQLite and on PostgreSQL: one request type, a
//! count range admitted once (as many VMs as the quota leaves room for,
//! none when fewer than the least fit, never a second try), key pairs
//! resolved in core, and `launchable_by` agreeing with what a launch
//! accepts (an image it leaves out is refused; each default it shows is
//! what a launch gets, and launchable when named).

// Test code: panicking on an unexpected result is the point.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use cloudbroker_connector_api::SecretString;
use cloudbroker_core::domain::{ClientToken, PageRequest};
use cloudbroker_core::images::{ImageMapping, ImageSpec};
use cloudbroker_core::provisioning::{CountRange, InstanceType, LaunchRequest, LaunchTags};
use cloudbroker_core::testing::{image, image_ref, instance, user};
use cloudbroker_core::{Actor, Broker, Resource, ServiceError};
use std::collections::BTreeMap;

fn admin() -> Actor {
    Actor::system()
}

async fn add_user(b: &Broker, name: &str) -> Actor {
    let u = b.identity.create_user(&admin(), &user(name), &SecretString::new(format!("{name}-password")), false).await.unwrap();
    Actor::new(u.name, false)
}

/// `linux` (public): a type of its own on `sb`; `child` (public): `linux`'s
/// child with no mapping of its own; `bare` (public): on `sb2` only.
async fn images(b: &Broker) {
    let put = |name: &str, parent: Option<&str>, maps: Vec<(&str, &str, Option<&str>)>| {
        let mappings: BTreeMap<_, _> = maps
            .into_iter()
            .map(|(i, id, t)| (instance(i), ImageMapping { image_id: id.into(), instance_type: t.map(Into::into), security_group: None }))
            .collect();
        ImageSpec { name: image(name), description: String::new(), os: "linux".into(), parent: parent.map(image), mappings }
    };
    b.images.put(&admin(), put("linux", None, vec![("sb", "ami-sandbox-debian-12", Some("t2.small"))]), true).await.unwrap();
    b.images.put(&admin(), put("child", Some("linux"), vec![]), true).await.unwrap();
    b.images.put(&admin(), put("bare", None, vec![("sb2", "ami-sandbox-alpine-3", None)]), true).await.unwrap();
}

async fn quota(b: &Broker, who: &Actor, limit: i64) {
    b.system.set(&admin(), &[("quota.enable".into(), Some("true".into()))]).await.unwrap();
    b.provisioning.set_quota(&admin(), &who.name, &instance("sb"), Some(limit)).await.unwrap();
}

fn request(count: CountRange) -> LaunchRequest {
    let mut r = LaunchRequest::new(instance("sb"), image_ref("linux"));
    r.count = count;
    r
}

/// The audit records of `vm.launch` by `who`, as (outcome, detail).
async fn launch_audit(b: &Broker, who: &Actor) -> Vec<(String, String)> {
    let log = b.audit.list(&admin(), Default::default(), PageRequest::default()).await.unwrap();
    log.items
        .iter()
        .filter(|e| e.action == "vm.launch" && e.actor == who.name.as_str())
        .map(|e| (e.outcome.to_string(), e.detail.clone()))
        .collect()
}

broker_test!(a_count_range_is_admitted_once_with_as_many_as_fit, |b: Broker| async move {
    images(&b).await;
    let alice = add_user(&b, "alice").await;
    quota(&b, &alice, 3).await;
    b.provisioning.launch(&alice, request(CountRange::exactly(2))).await.unwrap();
    // 2 of 3 used: 1..=5 asked, exactly 1 launched, in one admission.
    let mut r = request(CountRange::between(1, 5));
    r.name = "web".into();
    let out = b.provisioning.launch(&alice, r).await.unwrap();
    assert!(out.created);
    assert_eq!(out.vms.len(), 1);
    assert_eq!(out.vms[0].name, "web", "one VM admitted: named as a launch of one");
    assert_eq!(b.provisioning.usage(&alice.name, &instance("sb")).await.unwrap(), 3);
    let audit = launch_audit(&b, &alice).await;
    assert_eq!(audit.iter().filter(|(o, _)| o == "requested").count(), 2, "{audit:?}");
    assert!(audit.iter().any(|(o, d)| o == "requested" && d.starts_with("1 x t2.small")), "{audit:?}");
    assert!(!audit.iter().any(|(o, _)| o == "over-quota"), "a range is never tried twice: {audit:?}");
    // Full: even the least is refused, naming it, and nothing is recorded.
    let e = b.provisioning.launch(&alice, request(CountRange::between(1, 5))).await.unwrap_err();
    assert!(
        matches!(e, ServiceError::QuotaExceeded { scope: cloudbroker_core::QuotaScope::User, quota: 3, current: 3, requested: 1 }),
        "{e}"
    );
    assert_eq!(b.provisioning.usage(&alice.name, &instance("sb")).await.unwrap(), 3);
});

broker_test!(a_count_range_whose_least_does_not_fit_reserves_nothing, |b: Broker| async move {
    images(&b).await;
    let bob = add_user(&b, "bob").await;
    quota(&b, &bob, 3).await;
    b.provisioning.launch(&bob, request(CountRange::exactly(2))).await.unwrap();
    let before = b.provisioning.list(&bob, Default::default(), PageRequest::default()).await.unwrap().items.len();
    let e = b.provisioning.launch(&bob, request(CountRange::between(2, 5))).await.unwrap_err();
    assert!(
        matches!(e, ServiceError::QuotaExceeded { scope: cloudbroker_core::QuotaScope::User, quota: 3, current: 2, requested: 2 }),
        "{e}"
    );
    let after = b.provisioning.list(&bob, Default::default(), PageRequest::default()).await.unwrap().items.len();
    assert_eq!((before, after), (2, 2), "nothing recorded");
    assert_eq!(b.provisioning.usage(&bob.name, &instance("sb")).await.unwrap(), 2);
    // The dry run agrees, and reserves nothing either.
    b.provisioning.check_launch(&bob, request(CountRange::between(1, 5))).await.unwrap();
    let e = b.provisioning.check_launch(&bob, request(CountRange::between(2, 5))).await.unwrap_err();
    assert!(
        matches!(e, ServiceError::QuotaExceeded { scope: cloudbroker_core::QuotaScope::User, quota: 3, current: 2, requested: 2 }),
        "{e}"
    );
    assert_eq!(b.provisioning.usage(&bob.name, &instance("sb")).await.unwrap(), 2);
    // A range with room for all launches its most; a client token replays it.
    b.provisioning.set_quota(&admin(), &bob.name, &instance("sb"), Some(20)).await.unwrap();
    let mut r = request(CountRange::between(2, 4));
    r.client_token = Some(ClientToken::parse("range-1").unwrap());
    let out = b.provisioning.launch(&bob, r.clone()).await.unwrap();
    assert_eq!(out.vms.len(), 4);
    let again = b.provisioning.launch(&bob, r).await.unwrap();
    assert!(!again.created);
    assert_eq!(again.vms.len(), 4);
    // Out-of-bounds ranges are the request's own fault.
    for bad in [CountRange::between(0, 1), CountRange::between(3, 2), CountRange::exactly(101)] {
        let e = b.provisioning.launch(&bob, request(bad)).await.unwrap_err();
        assert!(matches!(e, ServiceError::Invalid { field: Some("count"), .. }), "{bad:?}: {e}");
    }
});

broker_test!(key_names_and_tags_are_resolved_in_core, |b: Broker| async move {
    images(&b).await;
    let alice = add_user(&b, "alice").await;
    let pub_key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFQpWmwNDw+/viwoFdeIlYgFCWnA/NgoR/X5ICtefgTf cloudbroker-test";
    b.key_pairs.import(&alice, "k1", pub_key).await.unwrap();
    let mut r = request(CountRange::exactly(1));
    r.key_name = Some("k1".into());
    let (name, tags) = LaunchTags::classify(
        [("Name", "db"), ("team", "a"), ("cloudbroker:user", "upstream")].map(|(k, v)| (k.to_string(), v.to_string())),
    )
    .unwrap();
    r.name = name.unwrap();
    r.tags = tags;
    let vm = b.provisioning.launch(&alice, r).await.unwrap().vms.remove(0);
    assert_eq!((vm.key_name.as_deref(), vm.name.as_str()), (Some("k1"), "db"));
    assert_eq!((vm.tags.get("team"), vm.tags.get("cloudbroker:user")), (Some("a"), Some("upstream")));
    let mut r = request(CountRange::exactly(1));
    r.key_name = Some("nope".into());
    let e = b.provisioning.launch(&alice, r.clone()).await.unwrap_err();
    assert!(matches!(&e, ServiceError::NotFound(Resource::KeyPair(k)) if k == "nope"), "{e}");
    assert!(matches!(b.provisioning.check_launch(&alice, r).await, Err(ServiceError::NotFound(Resource::KeyPair(_)))));
});

broker_test!(launchable_by_agrees_with_what_a_launch_accepts, |b: Broker| async move {
    images(&b).await;
    let alice = add_user(&b, "alice").await;
    let bob = add_user(&b, "bob").await;
    b.provisioning.register_image(&bob, &instance("sb"), "ami-sandbox-rocky-9", &image("bobs"), "").await.unwrap();
    let mine = b.images.launchable_by(&alice).await.unwrap();
    let names: Vec<&str> = mine.iter().map(|l| l.image.name.as_str()).collect();
    assert_eq!(names, ["bare", "child", "linux"], "another user's private image is not launchable");
    assert!(b.images.launchable_by(&bob).await.unwrap().iter().any(|l| l.image.name.as_str() == "bobs"));
    // Left out: refused.
    let e = b.provisioning.launch(&alice, LaunchRequest::new(instance("sb"), image_ref("bobs"))).await.unwrap_err();
    assert!(matches!(e, ServiceError::Unresolved { field: "image", .. }), "{e}");
    // No cloud image on an instance: not listed there, and refused there.
    let bare = mine.iter().find(|l| l.image.name.as_str() == "bare").unwrap();
    assert_eq!(bare.on.keys().map(|i| i.as_str()).collect::<Vec<_>>(), ["sb2"]);
    let e = b.provisioning.launch(&alice, LaunchRequest::new(instance("sb"), image_ref("bare"))).await.unwrap_err();
    assert!(matches!(e, ServiceError::Unresolved { field: "image", .. }), "{e}");
    // Every image on every instance listed: launchable with its default
    // type named, and a launch naming none gets that default.
    let mut launched = 0;
    for l in &mine {
        for (inst, resolved) in &l.on {
            let plain = b.provisioning.launch(&alice, LaunchRequest::new(inst.clone(), image_ref(l.image.name.as_str()))).await.unwrap();
            assert_eq!(plain.vms[0].image_id, resolved.image_id, "{} on {inst}", l.image.name);
            if let Some(t) = &resolved.instance_type {
                assert_eq!(&plain.vms[0].instance_type, t, "{} on {inst}: the default shown is the one used", l.image.name);
                let mut r = LaunchRequest::new(inst.clone(), image_ref(l.image.name.as_str()));
                r.instance_type = Some(InstanceType::parse(t).unwrap());
                assert_eq!(&b.provisioning.launch(&alice, r).await.unwrap().vms[0].instance_type, t);
            }
            launched += 1;
        }
    }
    assert_eq!(launched, 3, "linux and child on sb, bare on sb2");
    let child = mine.iter().find(|l| l.image.name.as_str() == "child").unwrap();
    assert_eq!(child.on[&instance("sb")].instance_type.as_deref(), Some("t2.small"), "a parent's default is inherited");
});

broker_test!(concurrent_ranges_admit_exactly_the_quota, |b: Broker| async move {
    images(&b).await;
    let alice = add_user(&b, "alice").await;
    quota(&b, &alice, 10).await;
    // 8 launches of 1..=3 at once (24 wanted): each takes what is left when
    // its admission runs, so exactly the quota's 10 are admitted.
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (b, alice) = (b.clone(), alice.clone());
            tokio::spawn(async move { b.provisioning.launch(&alice, request(CountRange::between(1, 3))).await })
        })
        .collect();
    let (mut admitted, mut refused) = (0, 0);
    for t in tasks {
        match t.await.unwrap() {
            Ok(out) => {
                assert!((1..=3).contains(&out.vms.len()), "{}", out.vms.len());
                admitted += out.vms.len();
            }
            Err(ServiceError::QuotaExceeded { scope: cloudbroker_core::QuotaScope::User, quota: 10, current: 10, requested: 1 }) => {
                refused += 1
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(admitted, 10);
    assert!(refused >= 4, "{refused}");
    assert_eq!(b.provisioning.usage(&alice.name, &instance("sb")).await.unwrap(), 10);
});
