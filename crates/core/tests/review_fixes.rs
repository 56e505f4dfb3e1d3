//! Regression tests for the defects found in review (issue "Defects found in
//! review"), called on the core services directly, on SQLite and PostgreSQL.
//! Each fails on the code before its fix: the reconciler trusted a tag
//! listing, tags put VMs on other users' accounts, credentials in use could be
//! deleted or swapped to another account, concurrent wrong passwords were all
//! checked, tokens outlived their parent, password changes needed no current
//! password and left sessions and tokens alive.

// Test code: panicking on an unexpected result is the point; helper
// functions outside #[test] are covered by this too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::zombie_processes)]

mod common;

use cloudbroker_connector_api::{tags, RunRequest, SecretString};
use cloudbroker_core::domain::{ClientToken, LaunchId, PageRequest, VmAction, VmId, VmStatus};
use cloudbroker_core::images::{ImageMapping, ImageSpec};
use cloudbroker_core::provisioning::{LaunchRequest, VmQuery};
use cloudbroker_core::testing::{image, image_ref, instance, user};
use cloudbroker_core::vault::Scope;
use cloudbroker_core::{Actor, Broker, ServiceError};
use std::collections::BTreeMap;
use std::time::Duration;

fn admin() -> Actor {
    Actor::system()
}

async fn add_user(b: &Broker, name: &str) -> Actor {
    let u = b.identity.create_user(&admin(), &user(name), &SecretString::new(format!("{name}-password")), false).await.unwrap();
    Actor::new(u.name, false)
}

async fn linux_image(b: &Broker) {
    let mut mappings = BTreeMap::new();
    for i in ["sb", "sb2"] {
        mappings.insert(
            instance(i),
            ImageMapping { image_id: "ami-sandbox-debian-12".into(), instance_type: Some("t2.small".into()), security_group: None },
        );
    }
    let spec = ImageSpec { name: image("linux"), description: String::new(), os: "linux".into(), parent: None, mappings };
    b.images.put(&admin(), spec, true).await.unwrap();
}

async fn launch(b: &Broker, who: &Actor, on: &str, count: u32) -> Vec<cloudbroker_core::provisioning::Vm> {
    let mut spec = LaunchRequest::new(instance(on), image_ref("linux"));
    spec.count = count.into();
    b.provisioning.launch(who, spec).await.unwrap().vms
}

async fn status_of(b: &Broker, who: &Actor, vm: &cloudbroker_core::provisioning::Vm) -> VmStatus {
    b.provisioning.get(who, &vm.id).await.unwrap().status
}

// 1. A cloud that keeps no tags: the tag listing misses every VM; the VMs are
//    asked for by id and stay as they are in the cloud.
broker_test!(vms_missing_from_the_tag_listing_are_confirmed_by_id, |b: Broker| async move {
    linux_image(&b).await;
    b.system.set(&admin(), &[("sb2.keep.tags".into(), Some("false".into()))]).await.unwrap();
    let alice = add_user(&b, "alice").await;
    let vms = launch(&b, &alice, "sb2", 2).await;
    // One is terminated in the cloud, outside the broker.
    let (creds, _) = b.vault.credentials_for(&alice.name, &instance("sb2")).await.unwrap();
    let conn = b.registry.snapshot().instance("sb2").unwrap().connector.clone().unwrap();
    conn.terminate_instances(&creds, &[vms[1].cloud_id.clone().unwrap()]).await.unwrap();
    let mut report = b.provisioning.reconcile("test").await.unwrap();
    for _ in 0..50 {
        if status_of(&b, &alice, &vms[1]).await == VmStatus::Terminated {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        report = b.provisioning.reconcile("test").await.unwrap();
    }
    assert!(report.errors.is_empty(), "{report:?}");
    assert_eq!(status_of(&b, &alice, &vms[0]).await, VmStatus::Running, "a running VM the tag listing missed was ended: {report:?}");
    assert_eq!(status_of(&b, &alice, &vms[1]).await, VmStatus::Terminated);
    assert!(report.untagged >= 1, "{report:?}");
});

// 3. VMs tagged in someone's own cloud account as another user's are not
//    recorded on that user's account.
broker_test!(forged_tags_do_not_put_vms_on_another_users_account, |b: Broker| async move {
    linux_image(&b).await;
    let alice = add_user(&b, "alice").await;
    let mallory = add_user(&b, "mallory").await;
    launch(&b, &mallory, "sb", 1).await;
    let (creds, _) = b.vault.credentials_for(&mallory.name, &instance("sb")).await.unwrap();
    let conn = b.registry.snapshot().instance("sb").unwrap().connector.clone().unwrap();
    let forged = RunRequest {
        image_id: "ami-sandbox-debian-12".into(),
        instance_type: "t2.small".into(),
        count: 3,
        key_name: None,
        user_data: None,
        security_groups: vec![],
        tags: vec![
            (tags::BROKER.into(), b.provisioning.broker_id().to_string()),
            (tags::USER.into(), "alice".into()),
            (tags::LAUNCH.into(), LaunchId::generate().to_string()),
        ],
        client_token: String::new(),
        ..Default::default()
    };
    assert_eq!(conn.run_instances(&creds, &forged).await.unwrap().len(), 3);
    let report = b.provisioning.reconcile("test").await.unwrap();
    assert_eq!((report.adopted, report.refused), (0, 3), "{report:?}");
    assert!(b.provisioning.list(&alice, VmQuery::default(), PageRequest::default()).await.unwrap().items.is_empty());
    assert_eq!(b.provisioning.list(&mallory, VmQuery::default(), PageRequest::default()).await.unwrap().items.len(), 1);
    // Alice's quota holds nothing of mallory's.
    let q = b.provisioning.quotas(&alice, &alice.name).await.unwrap();
    assert_eq!(q.iter().find(|q| q.instance.as_str() == "sb").unwrap().usage, 0);
});

// 6. Credentials live VMs use cannot be deleted, nor replaced by keys of
//    another account; keys of the same account can be.
broker_test!(credentials_in_use_are_neither_deleted_nor_swapped_to_another_account, |b: Broker| async move {
    linux_image(&b).await;
    let alice = add_user(&b, "alice").await;
    let sb = instance("sb");
    let me = Scope::User(&alice.name);
    b.vault.put(&alice, me, &sb, "AKIAALICEONE0001", "first-secret", false).await.unwrap();
    let vm = launch(&b, &alice, "sb", 1).await.remove(0);
    let e = b.vault.delete(&alice, me, &sb).await.unwrap_err();
    assert!(matches!(&e, ServiceError::Conflict(m) if m.contains(vm.id.as_str())), "{e}");
    let e = b.vault.put(&alice, me, &sb, "AKIAOTHERACCT0002", "other-secret", false).await.unwrap_err();
    assert!(matches!(&e, ServiceError::Conflict(m) if m.contains(vm.id.as_str())), "{e}");
    assert_eq!(b.vault.get(&alice, me, &sb).await.unwrap().access_key_id, "****0001", "the refused keys replaced the stored ones");
    // The same account with a new secret is fine, and the VM is still managed.
    b.vault.put(&alice, me, &sb, "AKIAALICEONE0001", "rotated-secret", false).await.unwrap();
    b.provisioning.action(&alice, &vm.id, VmAction::Terminate).await.unwrap();
    for _ in 0..50 {
        if status_of(&b, &alice, &vm).await == VmStatus::Terminated {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        b.provisioning.reconcile("test").await.unwrap();
    }
    assert_eq!(status_of(&b, &alice, &vm).await, VmStatus::Terminated);
    b.vault.delete(&alice, me, &sb).await.unwrap();
});

// 4. Concurrent wrong passwords are admitted a few at a time; the account is
//    slowed down, not locked: the right password works after a short wait.
broker_test!(login_throttle_admits_atomically_and_slows_rather_than_locks, |b: Broker| async move {
    add_user(&b, "alice").await;
    let mut tasks = Vec::new();
    for _ in 0..40 {
        let b = b.clone();
        tasks.push(tokio::spawn(async move { b.identity.authenticate(&user("alice"), &SecretString::new("wrong-password"), None).await }));
    }
    let (mut checked, mut throttled) = (0, 0);
    for t in tasks {
        match t.await.unwrap() {
            Err(ServiceError::Unauthenticated(_)) => checked += 1,
            Err(ServiceError::Throttled { retry_after_secs }) => {
                assert!(retry_after_secs <= 60, "{retry_after_secs}");
                throttled += 1;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(checked <= 6 && throttled >= 34, "{checked} checked, {throttled} throttled");
    // Slowed, not locked out: the owner gets in after the wait.
    let mut waited = 0;
    let actor = loop {
        match b.identity.authenticate(&user("alice"), &SecretString::new("alice-password"), None).await {
            Ok(a) => break a,
            Err(ServiceError::Throttled { retry_after_secs }) if waited < 10 => {
                waited += 1;
                tokio::time::sleep(Duration::from_secs(retry_after_secs)).await;
            }
            Err(e) => panic!("the right password was refused: {e}"),
        }
    };
    assert_eq!(actor.name.as_str(), "alice");
    // Success refunds the account: wrong passwords are checked again at once.
    assert!(matches!(
        b.identity.authenticate(&user("alice"), &SecretString::new("wrong-password"), None).await,
        Err(ServiceError::Unauthenticated(_))
    ));
});

// 5 and 9. Tokens minted with a token never outlive it; lifetimes are bounded
//    (no overflow on a huge one).
broker_test!(tokens_never_outlive_their_parent_and_lifetimes_are_bounded, |b: Broker| async move {
    let alice = add_user(&b, "alice").await;
    let (raw, parent) = b.identity.create_token(&alice, &alice.name, "short", Some(Duration::from_secs(60))).await.unwrap();
    let via_token = b.identity.resolve_token(&raw).await.unwrap().unwrap();
    assert_eq!(via_token.expires_at, parent.expires_at);
    let (_, child) = b.identity.create_token(&via_token, &alice.name, "child", None).await.unwrap();
    assert_eq!(child.expires_at, parent.expires_at, "a child of a 60 s token must not live forever");
    let (_, child) = b.identity.create_token(&via_token, &alice.name, "child", Some(Duration::from_secs(86_400))).await.unwrap();
    assert_eq!(child.expires_at, parent.expires_at);
    let (_, shorter) = b.identity.create_token(&via_token, &alice.name, "child", Some(Duration::from_secs(10))).await.unwrap();
    assert!(shorter.expires_at < parent.expires_at);
    for huge in [u64::MAX, 9_223_372_036_854_775, 400 * 365 * 86_400] {
        let e = b.identity.create_token(&alice, &alice.name, "huge", Some(Duration::from_secs(huge))).await.unwrap_err();
        assert!(matches!(e, ServiceError::Invalid { field: Some("expires_in_secs"), .. }), "{huge}: {e}");
    }
    // A password (no parent) may still mint a token without expiry.
    let (_, forever) = b.identity.create_token(&alice, &alice.name, "forever", None).await.unwrap();
    assert_eq!(forever.expires_at, None);
});

// 5. Changing one's own password needs the current one; any change ends the
//    user's sessions and tokens.
broker_test!(password_changes_need_the_current_password_and_end_sessions_and_tokens, |b: Broker| async move {
    let alice = add_user(&b, "alice").await;
    let (raw, _) = b.identity.create_token(&alice, &alice.name, "t", None).await.unwrap();
    let (session, _) = b.identity.create_session(&alice).await.unwrap();
    let new = SecretString::new("a-new-password");
    let e = b.identity.set_password(&alice, &alice.name, None, &new, None).await.unwrap_err();
    assert!(matches!(e, ServiceError::Invalid { field: Some("current_password"), .. }), "{e}");
    let e = b.identity.set_password(&alice, &alice.name, Some(&SecretString::new("not-my-password")), &new, None).await.unwrap_err();
    assert!(matches!(e, ServiceError::Invalid { field: Some("current_password"), .. }), "{e}");
    assert!(b.identity.resolve_token(&raw).await.unwrap().is_some(), "a refused change revoked nothing");
    b.identity.set_password(&alice, &alice.name, Some(&SecretString::new("alice-password")), &new, None).await.unwrap();
    assert!(b.identity.resolve_token(&raw).await.unwrap().is_none(), "the token outlived the password change");
    assert!(b.identity.resolve_session(&session).await.unwrap().is_none(), "the session outlived the password change");
    b.identity.authenticate(&alice.name, &new, None).await.unwrap();
    // An admin resets another user's password without it, and that also ends their tokens.
    let (raw, _) = b.identity.create_token(&alice, &alice.name, "t2", None).await.unwrap();
    b.identity.set_password(&admin(), &alice.name, None, &SecretString::new("reset-by-admin"), None).await.unwrap();
    assert!(b.identity.resolve_token(&raw).await.unwrap().is_none());
});

// 5. Admins disable an account: no sign-in, sessions and tokens end; enabling restores sign-in.
broker_test!(admins_disable_and_enable_users, |b: Broker| async move {
    let alice = add_user(&b, "alice").await;
    let bob = add_user(&b, "bob").await;
    let (raw, _) = b.identity.create_token(&alice, &alice.name, "t", None).await.unwrap();
    let (session, _) = b.identity.create_session(&alice).await.unwrap();
    assert!(matches!(b.identity.set_disabled(&bob, &alice.name, true).await, Err(ServiceError::Forbidden(_))));
    assert!(matches!(b.identity.set_disabled(&admin(), &user("super"), true).await, Err(ServiceError::Invalid { .. })));
    let u = b.identity.set_disabled(&admin(), &alice.name, true).await.unwrap();
    assert!(u.disabled_at.is_some());
    assert!(b.identity.resolve_token(&raw).await.unwrap().is_none());
    assert!(b.identity.resolve_session(&session).await.unwrap().is_none());
    let e = b.identity.authenticate(&alice.name, &SecretString::new("alice-password"), None).await.unwrap_err();
    assert!(matches!(&e, ServiceError::Forbidden(m) if m.contains("disabled")), "{e}");
    // A wrong password says nothing about the account being disabled.
    let e = b.identity.authenticate(&alice.name, &SecretString::new("wrong-password"), None).await.unwrap_err();
    assert!(matches!(e, ServiceError::Unauthenticated(_)), "{e}");
    b.identity.set_disabled(&admin(), &alice.name, false).await.unwrap();
    b.identity.authenticate(&alice.name, &SecretString::new("alice-password"), None).await.unwrap();
    assert!(b.identity.resolve_token(&raw).await.unwrap().is_none(), "re-enabling does not revive revoked tokens");
});

// 7. One record per cloud VM, whatever two replicas do.
broker_test!(one_cloud_vm_is_recorded_once, |b: Broker| async move {
    linux_image(&b).await;
    let alice = add_user(&b, "alice").await;
    let vm = launch(&b, &alice, "sb", 1).await.remove(0);
    let store = b.store();
    let mut row = store.get_vm(&vm.id).await.unwrap().unwrap();
    row.id = VmId::parse("vm-0000000000000000dup").unwrap();
    row.client_token = ClientToken::parse("adopted:dup").unwrap();
    assert!(!store.insert_adopted_vm(&row).await.unwrap(), "a second record of the same cloud VM was written");
    assert_eq!(store.vm_by_cloud_id(&"sb".parse().unwrap(), vm.cloud_id.as_deref().unwrap()).await.unwrap().unwrap().id, vm.id.as_str());
});

// 2. A rotation by another process (the CLI, a replica) while this one
//    serves: what this process seals afterwards still opens, here, in the
//    other process and after a restart; two rotations never run at once.
async fn rotation_while_another_process_serves(t: common::TestBroker) {
    let serving = t.broker.clone();
    let cli = Broker::start(serving.config.as_ref().clone(), common::connectors()).await.unwrap();
    let alice = add_user(&serving, "alice").await;
    let bob = add_user(&serving, "bob").await;
    let sb = instance("sb");
    serving.vault.put(&alice, Scope::User(&alice.name), &sb, "AKIAALICE0001", "alice-secret", false).await.unwrap();
    let before = serving.vault.key_ids();
    let r = cli.vault.rotate(&admin()).await.unwrap();
    assert!(r.dropped_keys.is_empty(), "a key was dropped while another process may still seal with it: {r:?}");
    assert_eq!(r.retired_keys, before);
    let new_id = r.current_key;
    // The serving process saves after the rotation, then everything is used.
    serving.vault.put(&bob, Scope::User(&bob.name), &sb, "AKIABOB00002", "bob-secret", false).await.unwrap();
    assert!(serving.vault.key_ids().contains(&new_id), "the serving process did not pick up the new key");
    for (who, secret) in [(&alice, "alice-secret"), (&bob, "bob-secret")] {
        for b in [&serving, &cli] {
            let (c, _) = b.vault.credentials_for(&who.name, &sb).await.unwrap();
            assert_eq!(c.secret_access_key.expose(), secret);
        }
    }
    // A second rotation, from the serving side this time; the first key may
    // only go once nothing uses it and the grace period has passed.
    serving.vault.rotate(&admin()).await.unwrap();
    let restarted = Broker::start(serving.config.as_ref().clone(), common::connectors()).await.unwrap();
    let (c, _) = restarted.vault.credentials_for(&bob.name, &sb).await.unwrap();
    assert_eq!(c.secret_access_key.expose(), "bob-secret");
    assert!(restarted.vault.key_ids().contains(&before[0]), "the first key left the file within its grace period");
    // Concurrent rotations: one runs, the other is told to wait; nothing is lost.
    let sys = admin();
    let (a, b) = tokio::join!(serving.vault.rotate(&sys), cli.vault.rotate(&sys));
    assert!(a.is_ok() || b.is_ok(), "{a:?} {b:?}");
    for r in [&a, &b] {
        if let Err(e) = r {
            assert!(matches!(e, ServiceError::Conflict(m) if m.contains("rotation")), "{e}");
        }
    }
    let fresh = Broker::start(serving.config.as_ref().clone(), common::connectors()).await.unwrap();
    for (who, secret) in [(&alice, "alice-secret"), (&bob, "bob-secret")] {
        let (c, _) = fresh.vault.credentials_for(&who.name, &sb).await.unwrap();
        assert_eq!(c.secret_access_key.expose(), secret);
    }
    for b in [cli, restarted, fresh] {
        b.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rotation_while_another_process_serves_sqlite() {
    rotation_while_another_process_serves(common::TestBroker::sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rotation_while_another_process_serves_postgres() {
    if let Some(t) = common::TestBroker::postgres().await {
        rotation_while_another_process_serves(t).await;
    }
}
