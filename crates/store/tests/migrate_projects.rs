//! The projects migration (0022) on a database the last binary before
//! projects filled (schema 0021, rows as its store wrote them): every user
//! gets a personal project with one owner membership, every owned row names
//! its owner's personal project, grants of shared credentials become grants
//! to the personal project of the grantee, key pairs keep their names, and
//! nothing is lost (every table holds as many rows as before). On both
//! backends.

// Test code: panicking on an unexpected result is the point.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod legacy;

use cloudbroker_model::{InstanceName, ProjectName, ProjectRole, UserName, VmId, VmStatus};
use cloudbroker_store::testing::{TestDb, POSTGRES_ENV};
use cloudbroker_store::vms::VmFilter;
use cloudbroker_store::Store;
use std::collections::BTreeSet;

fn user(s: &str) -> UserName {
    UserName::parse(s).unwrap()
}

fn personal(s: &str) -> ProjectName {
    ProjectName::personal(&user(s))
}

fn inst(s: &str) -> InstanceName {
    InstanceName::parse(s).unwrap()
}

/// An empty database at schema 0021 at `url`, filled with the legacy rows;
/// answers their ids and the row counts before the migration.
async fn legacy_database(url: &str) -> (legacy::Legacy, Vec<(&'static str, i64)>) {
    let old = Store::connect(url).await.unwrap();
    old.migrate_up_to(legacy::SCHEMA).await.unwrap();
    assert_eq!(old.applied_migrations().await.unwrap().last(), Some(&legacy::SCHEMA));
    old.close().await;
    let ids = legacy::fill(url, &legacy::Cloud::fake(), &|plain: &[u8], aad: &str| [aad.as_bytes(), plain].concat(), "k1").await;
    let mut before = Vec::new();
    for (table, n) in legacy::COUNTS {
        assert_eq!(legacy::count(url, table).await, *n, "the fixture wrote {n} rows into {table}");
        before.push((*table, *n));
    }
    before.push(("audit_log", legacy::count(url, "audit_log").await));
    assert_eq!(before.last().unwrap().1, legacy::AUDIT_ROWS);
    (ids, before)
}

async fn check(url: &str) {
    let (ids, before) = legacy_database(url).await;
    // The new binary opens it: 0022 and later run.
    let store = Store::open(url).await.unwrap();
    assert_eq!(store.applied_migrations().await.unwrap().len(), store.known_migrations());

    // Nothing lost.
    for (table, n) in &before {
        assert_eq!(legacy::count(url, table).await, *n, "{table} keeps its rows");
    }

    // Every user has a personal project named after them, with one member:
    // them, as owner.
    for name in ["super", "alice", "bob"] {
        let p = store.get_project(&personal(name)).await.unwrap().unwrap_or_else(|| panic!("{name} has a personal project"));
        assert_eq!(p.personal_of.as_ref().map(|u| u.as_str()), Some(name));
        assert!(p.is_personal());
        let members = store.project_members(&personal(name)).await.unwrap();
        assert_eq!(members.len(), 1, "{members:?}");
        assert_eq!((members[0].user_name.as_str(), members[0].role), (name, ProjectRole::Owner));
        let of = store.projects_of_user(&user(name)).await.unwrap();
        assert_eq!(of.len(), 1, "{name} is a member of their personal project only");
        assert_eq!((of[0].0.name.as_str(), of[0].1), (name, ProjectRole::Owner));
        assert_eq!(store.project_membership(&personal(name), &user(name)).await.unwrap(), Some(ProjectRole::Owner));
    }
    assert_eq!(legacy::count(url, "projects").await, 3);
    assert_eq!(legacy::count(url, "project_members").await, 3);
    assert_eq!(store.project_membership(&personal("alice"), &user("bob")).await.unwrap(), None);

    // Every owned row is in its owner's personal project.
    for (table, owner) in [
        ("vms", "user_name"),
        ("addresses", "user_name"),
        ("volumes", "user_name"),
        ("key_pairs", "user_name"),
        ("access_keys", "user_name"),
    ] {
        assert_eq!(legacy::rows_outside_personal_project(url, table, owner).await, 0, "{table}");
    }

    // VMs: each project lists exactly its owner's, with creator and project.
    let vms_of = |p: &str| {
        let store = store.clone();
        let f = VmFilter { project: Some(p.to_string()), ..VmFilter::default() };
        async move { store.list_vms(&f).await.unwrap() }
    };
    let alice_vms = vms_of("alice").await;
    let bob_vms = vms_of("bob").await;
    let set = |v: &[cloudbroker_store::vms::VmRow]| v.iter().map(|r| r.id.to_string()).collect::<BTreeSet<_>>();
    assert_eq!(set(&alice_vms), BTreeSet::from([ids.alice_vm.clone(), ids.alice_vm_done.clone(), ids.alice_vm_own.clone()]));
    assert_eq!(set(&bob_vms), BTreeSet::from([ids.bob_vm.clone(), ids.bob_vm_shared.clone()]));
    for (rows, who) in [(&alice_vms, "alice"), (&bob_vms, "bob")] {
        for r in rows.iter() {
            assert_eq!((r.user.as_str(), r.project.as_str()), (who, who), "{}", r.id);
        }
    }
    let done = store.get_vm(&VmId::parse(&ids.alice_vm_done).unwrap()).await.unwrap().unwrap();
    assert_eq!(done.state, VmStatus::Terminated);
    let own = store.get_vm(&VmId::parse(&ids.alice_vm_own).unwrap()).await.unwrap().unwrap();
    assert_eq!(own.credential_id.as_str(), ids.alice_credential, "a VM keeps the credential it was launched with");
    assert_eq!(own.tags.get("team"), Some("legacy"));
    // Quota usage per project counts what the user's quota counted.
    for (who, instance) in [("alice", "sb"), ("alice", "sb2"), ("bob", "sb"), ("bob", "sb2")] {
        assert_eq!(
            store.project_quota_usage(&personal(who), &inst(instance), &VmStatus::QUOTA_COUNTED).await.unwrap(),
            store.quota_usage(&user(who), &inst(instance), &VmStatus::QUOTA_COUNTED).await.unwrap(),
            "{who} on {instance}"
        );
    }

    // Addresses and volumes: in their owner's project, nobody else's.
    let alice_addrs = store.addresses("alice", "sb").await.unwrap();
    assert!(alice_addrs.iter().all(|a| a.project == "alice" && a.user == "alice"), "{alice_addrs:?}");
    assert!(alice_addrs.iter().any(|a| a.allocation_id == legacy::Cloud::fake().alice_addr.0));
    let bob_addrs = store.addresses("bob", "sb").await.unwrap();
    assert_eq!(bob_addrs.iter().map(|a| a.allocation_id.as_str()).collect::<Vec<_>>(), vec![legacy::Cloud::fake().bob_addr.0.as_str()]);
    let alice_vols = store.volumes("alice", "sb").await.unwrap();
    assert!(alice_vols.iter().all(|v| v.project == "alice"), "{alice_vols:?}");
    assert!(alice_vols.iter().any(|v| v.volume_id == legacy::Cloud::fake().alice_vol));
    let bob_vols = store.volumes("bob", "sb").await.unwrap();
    assert_eq!(bob_vols.iter().map(|v| v.volume_id.as_str()).collect::<Vec<_>>(), vec![legacy::Cloud::fake().bob_vol.as_str()]);

    // Key pairs keep their names, per project (both have a `laptop`).
    let names = |rows: Vec<cloudbroker_store::key_pairs::KeyPairRow>| rows.into_iter().map(|k| k.name).collect::<BTreeSet<_>>();
    assert_eq!(names(store.key_pairs(&personal("alice")).await.unwrap()), BTreeSet::from(["ci".to_string(), "laptop".to_string()]));
    assert_eq!(names(store.key_pairs(&personal("bob")).await.unwrap()), BTreeSet::from(["laptop".to_string()]));
    for who in ["alice", "bob"] {
        let k = store.key_pair(&personal(who), "laptop").await.unwrap().unwrap();
        assert_eq!((k.project.as_str(), k.created_by.as_str()), (who, who));
        assert!(k.public_key.ends_with(&format!("{who}@laptop")), "{who}'s own key: {}", k.public_key);
    }

    // The private image is private to alice's project; the broker's stays public.
    let images = store.list_images().await.unwrap();
    let alice_img = images.iter().find(|i| i.name == ids.alice_image).unwrap();
    assert_eq!((alice_img.owner.as_deref(), alice_img.project.as_deref()), (Some("alice"), Some("alice")));
    let public = images.iter().find(|i| i.name == "broker-ubuntu").unwrap();
    assert_eq!((public.owner.as_deref(), public.project.as_deref()), (None, None));

    // The grant to bob became a grant to bob's personal project; alice's
    // credential stays hers.
    assert_eq!(store.grants(&ids.shared_credential).await.unwrap(), vec!["bob".to_string()]);
    let granted = store.granted_credentials("bob", "sb2").await.unwrap();
    assert_eq!(granted.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(), vec![ids.shared_credential.as_str()]);
    assert!(store.granted_credentials("alice", "sb2").await.unwrap().is_empty());
    let mine = store.get_credential("user", "alice", "sb2").await.unwrap().unwrap();
    assert_eq!(mine.id, ids.alice_credential);

    // The access key acts in its owner's personal project.
    let k = store.access_key(&ids.access_key_id).await.unwrap().unwrap();
    assert_eq!((k.user_name.as_str(), k.project.as_str()), ("alice", "alice"));
    assert_eq!(store.list_project_access_keys("alice").await.unwrap().len(), 1);
    assert!(store.list_project_access_keys("bob").await.unwrap().is_empty());

    // Quota overrides are unchanged; no project override was invented.
    assert_eq!(store.quota_override(&user("alice"), &inst("sb")).await.unwrap(), Some(7));
    assert_eq!(store.quota_override(&user("bob"), &inst("sb2")).await.unwrap(), Some(3));
    assert_eq!(legacy::count(url, "project_quota_overrides").await, 0);

    // Every user's old audit record is in their personal project, each exactly once.
    let all = store.audit_log(1000).await.unwrap();
    assert_eq!(all.len() as i64, legacy::AUDIT_ROWS);
    for r in &all {
        assert_eq!(r.project, r.actor, "{r:?}");
    }
    for name in ["alice", "bob"] {
        let f = cloudbroker_store::audit::AuditFilter { project: Some(name.into()), ..Default::default() };
        let mine = store.audit_page(&f, 1000).await.unwrap();
        assert!(!mine.is_empty() && mine.iter().all(|r| r.actor == name), "{name}: {mine:?}");
    }

    // Opening again changes nothing (the migration ran once).
    store.close().await;
    let again = Store::open(url).await.unwrap();
    assert_eq!(legacy::count(url, "projects").await, 3);
    assert_eq!(legacy::count(url, "credential_project_grants").await, 1);
    again.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite() {
    let dir = tempfile::tempdir().unwrap();
    check(&format!("sqlite://{}", dir.path().join("legacy.db").display())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres() {
    let Ok(base) = std::env::var(POSTGRES_ENV) else {
        eprintln!("NOTICE: {POSTGRES_ENV} is not set: the PostgreSQL half of this test was SKIPPED");
        return;
    };
    check(&TestDb::create_postgres_database(&base).await.unwrap()).await;
}
