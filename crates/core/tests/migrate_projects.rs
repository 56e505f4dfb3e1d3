//! A broker started on a database the last binary before projects left
//! (schema 0021, its rows written as that binary wrote them, its cloud
//! objects made in the sandbox with the same accounts, its secrets sealed
//! with the broker's master key): after the projects migration every owner
//! sees their resources through the services and acts on them (stop,
//! terminate, tag, release, delete) with the credential each was made with
//! (the sandbox's own account, their own credential, a shared credential
//! whose grant became a grant to their personal project), their EC2 access
//! key still works, and the other user still sees nothing of theirs. On
//! both backends.

// Test code: panicking on an unexpected result is the point.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
#[path = "../../store/tests/legacy/mod.rs"]
mod legacy;

use cloudbroker_connector_api::params::ParamValues;
use cloudbroker_connector_api::{Connector, CreateVolumeRequest, Credentials, RunRequest, SecretString};
use cloudbroker_core::audit::AuditQuery;
use cloudbroker_core::domain::{AllocationId, PageRequest, ProjectName, ProjectRole, VmAction, VmId, VmStatus, VolumeId};
use cloudbroker_core::master_keys::MasterKeys;
use cloudbroker_core::provisioning::{QuotaSource, VmQuery};
use cloudbroker_core::testing::{image, instance, user};
use cloudbroker_core::{Actor, Broker, Config, ServiceError};
use cloudbroker_store::testing::{TestDb, POSTGRES_ENV};
use cloudbroker_store::Store;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

fn actor(name: &str) -> Actor {
    Actor::new(user(name), false)
}

fn not_found(r: Result<impl std::fmt::Debug, ServiceError>) {
    match r {
        Err(ServiceError::NotFound(_)) => {}
        other => panic!("expected NotFound, got {other:?}"),
    }
}

fn creds(account: &str) -> Credentials {
    Credentials::new(account, "sandbox-secret-not-checked")
}

/// Makes the legacy rows' cloud objects in the sandbox worlds kept in the
/// (0021) database, with the accounts the old binary used.
async fn make_cloud(store: &Store) -> legacy::Cloud {
    let connectors = cloudbroker_core::factory::persistent(common::connectors(), store.clone());
    let kind = connectors.kind("sandbox").unwrap();
    let params = ParamValues::new(BTreeMap::from([("boot.delay.ms".to_string(), "0".to_string())]));
    let sb: Arc<dyn Connector> = connectors.build(kind, instance("sb"), &params).unwrap();
    let sb2: Arc<dyn Connector> = connectors.build(kind, instance("sb2"), &params).unwrap();
    let run = |c: Arc<dyn Connector>, account: &'static str| async move {
        let req = RunRequest {
            image_id: "ami-sandbox-ubuntu-2204".into(),
            instance_type: "t2.micro".into(),
            count: 1,
            key_name: None,
            user_data: None,
            security_groups: Vec::new(),
            tags: Vec::new(),
            client_token: uuid::Uuid::new_v4().simple().to_string(),
            ..Default::default()
        };
        c.run_instances(&creds(account), &req).await.unwrap().remove(0).id
    };
    let alice_vm_done = run(sb.clone(), "sandbox-alice").await;
    sb.terminate_instances(&creds("sandbox-alice"), std::slice::from_ref(&alice_vm_done)).await.unwrap();
    let addr = |account: &'static str| {
        let sb = sb.clone();
        async move {
            let a = sb.allocate_address(&creds(account)).await.unwrap();
            (a.allocation_id, a.public_ip)
        }
    };
    let alice_addr_released = addr("sandbox-alice").await;
    sb.release_address(&creds("sandbox-alice"), &alice_addr_released.0).await.unwrap();
    let vol = |account: &'static str| {
        let sb = sb.clone();
        async move {
            let req = CreateVolumeRequest { size_gib: 4, zone: "sba".into(), volume_type: None, ..Default::default() };
            sb.create_volume(&creds(account), &req).await.unwrap().volume_id
        }
    };
    let alice_vol_deleted = vol("sandbox-alice").await;
    sb.delete_volume(&creds("sandbox-alice"), &alice_vol_deleted).await.unwrap();
    legacy::Cloud {
        alice_vm: run(sb.clone(), "sandbox-alice").await,
        alice_vm_done,
        alice_vm_own: run(sb2.clone(), "sandbox-alice").await,
        bob_vm: run(sb.clone(), "sandbox-bob").await,
        bob_vm_shared: run(sb2.clone(), "team-account").await,
        alice_addr: addr("sandbox-alice").await,
        alice_addr_released,
        bob_addr: addr("sandbox-bob").await,
        alice_vol: vol("sandbox-alice").await,
        alice_vol_deleted,
        bob_vol: vol("sandbox-bob").await,
        alice_image_id: "ami-sandbox-debian-12".into(),
    }
}

/// The legacy database at `url`, then a broker started on it.
async fn broker_on_legacy(dir: &std::path::Path, url: String) -> (Broker, legacy::Legacy, legacy::Cloud) {
    let conn = dir.join("connectors.d");
    std::fs::create_dir_all(&conn).unwrap();
    std::fs::write(conn.join("sb.conf"), "cloud.connector.class = sb:sandbox, sb2:sandbox\nsb.boot.delay.ms = 0\nsb2.boot.delay.ms = 0\n")
        .unwrap();
    let mut config = Config::for_tests(dir, Some(url.clone()));
    config.admin_password = Some(SecretString::new("super-password-1"));

    // What the old binary left: its schema, its sandbox, its rows, its key.
    let old = Store::connect(&url).await.unwrap();
    old.migrate_up_to(legacy::SCHEMA).await.unwrap();
    let cloud = make_cloud(&old).await;
    old.close().await;
    let keys = MasterKeys::load_or_create(&config.master_key_file).unwrap();
    let seal = |plain: &[u8], aad: &str| keys.seal(plain, aad).unwrap();
    let ids = legacy::fill(&url, &cloud, &seal, keys.current_id()).await;

    let broker = Broker::start(config, common::connectors()).await.unwrap();
    (broker, ids, cloud)
}

async fn check(dir: &std::path::Path, url: String) {
    let (b, ids, cloud) = broker_on_legacy(dir, url.clone()).await;
    for (table, n) in legacy::COUNTS {
        // The admin the fixture holds is the one `serve` would have made:
        // starting again adds nobody.
        assert_eq!(legacy::count(&url, table).await, *n, "{table} keeps its rows");
    }
    let (alice, bob) = (actor("alice"), actor("bob"));
    let sb = instance("sb");
    let vm = |s: &str| VmId::parse(s).unwrap();

    // Each is in their personal project, as its owner, and nowhere else.
    for who in [&alice, &bob] {
        let entered = b.projects.enter(who.clone(), &ProjectName::personal(&who.name)).await.unwrap();
        assert_eq!((entered.project.as_str(), entered.role), (who.name.as_str(), ProjectRole::Owner));
        let other = if who.name.as_str() == "alice" { "bob" } else { "alice" };
        not_found(b.projects.enter(who.clone(), &ProjectName::parse(other).unwrap()).await);
    }

    // VMs: each lists their own, and only those.
    let listed = |who: Actor| {
        let b = b.clone();
        async move {
            b.provisioning
                .list(&who, VmQuery::default(), PageRequest::first(100))
                .await
                .unwrap()
                .items
                .into_iter()
                .map(|v| v.id.to_string())
                .collect::<BTreeSet<_>>()
        }
    };
    assert_eq!(listed(alice.clone()).await, BTreeSet::from([ids.alice_vm.clone(), ids.alice_vm_done.clone(), ids.alice_vm_own.clone()]));
    assert_eq!(listed(bob.clone()).await, BTreeSet::from([ids.bob_vm.clone(), ids.bob_vm_shared.clone()]));
    let a = b.provisioning.get(&alice, &vm(&ids.alice_vm)).await.unwrap();
    assert_eq!((a.user.as_str(), a.project.as_str(), a.cloud_id.as_deref()), ("alice", "alice", Some(cloud.alice_vm.as_str())));
    assert_eq!(b.provisioning.get(&alice, &vm(&ids.alice_vm_done)).await.unwrap().status, VmStatus::Terminated);
    for id in [&ids.alice_vm, &ids.alice_vm_own, &ids.alice_vm_done] {
        not_found(b.provisioning.get(&bob, &vm(id)).await);
        not_found(b.provisioning.action(&bob, &vm(id), VmAction::Stop).await);
        not_found(b.provisioning.tag(&bob, &vm(id), &BTreeMap::from([("x".into(), "y".into())]), &[]).await);
    }
    for id in [&ids.bob_vm, &ids.bob_vm_shared] {
        not_found(b.provisioning.get(&alice, &vm(id)).await);
        not_found(b.provisioning.action(&alice, &vm(id), VmAction::Terminate).await);
    }

    // Acting, with the credential each VM was launched with: the sandbox's
    // own account (stop), alice's own credential (tag, terminate), the
    // shared credential granted to bob (terminate: the grant moved to his
    // personal project).
    let stopped = b.provisioning.action(&alice, &vm(&ids.alice_vm), VmAction::Stop).await.unwrap();
    assert!(matches!(stopped.status, VmStatus::Stopping | VmStatus::Stopped), "{:?}", stopped.status);
    let tagged = b
        .provisioning
        .tag(&alice, &vm(&ids.alice_vm_own), &BTreeMap::from([("owner".into(), "alice".into())]), &["team".into()])
        .await
        .unwrap();
    assert_eq!(tagged.tags.get("owner"), Some("alice"));
    assert_eq!(tagged.tags.get("team"), None);
    let ended = b.provisioning.action(&alice, &vm(&ids.alice_vm_own), VmAction::Terminate).await.unwrap();
    assert!(matches!(ended.status, VmStatus::ShuttingDown | VmStatus::Terminated), "{:?}", ended.status);
    let ended = b.provisioning.action(&bob, &vm(&ids.bob_vm_shared), VmAction::Terminate).await.unwrap();
    assert!(matches!(ended.status, VmStatus::ShuttingDown | VmStatus::Terminated), "{:?}", ended.status);
    b.provisioning.action(&bob, &vm(&ids.bob_vm), VmAction::Reboot).await.unwrap();
    // The shared credential is bob's project's to use, not alice's.
    let shared = cloudbroker_core::domain::CredentialId::from_stored(ids.shared_credential.clone());
    b.vault.credentials_to_act(&bob, &shared, "the VM").await.unwrap();
    assert!(matches!(b.vault.credentials_to_act(&alice, &shared, "the VM").await, Err(ServiceError::Forbidden(_))));

    // Addresses: each sees their live one; alice releases hers; bob cannot.
    let alloc = |s: &str| AllocationId::parse(s).unwrap();
    let addrs = |who: Actor| {
        let b = b.clone();
        let sb = sb.clone();
        async move { b.provisioning.addresses(&who, &sb).await.unwrap().into_iter().map(|a| a.allocation_id.to_string()).collect::<Vec<_>>() }
    };
    assert_eq!(addrs(alice.clone()).await, vec![cloud.alice_addr.0.clone()]);
    assert_eq!(addrs(bob.clone()).await, vec![cloud.bob_addr.0.clone()]);
    not_found(b.provisioning.address(&bob, &sb, &alloc(&cloud.alice_addr.0)).await);
    not_found(b.provisioning.release_address(&bob, &sb, &alloc(&cloud.alice_addr.0)).await);
    b.provisioning.release_address(&alice, &sb, &alloc(&cloud.alice_addr.0)).await.unwrap();
    assert!(addrs(alice.clone()).await.is_empty());

    // Volumes: the same.
    let vid = |s: &str| VolumeId::parse(s).unwrap();
    let vols = |who: Actor| {
        let b = b.clone();
        let sb = sb.clone();
        async move { b.provisioning.volumes(&who, &sb).await.unwrap().into_iter().map(|v| v.volume_id.to_string()).collect::<Vec<_>>() }
    };
    assert_eq!(vols(alice.clone()).await, vec![cloud.alice_vol.clone()]);
    assert_eq!(vols(bob.clone()).await, vec![cloud.bob_vol.clone()]);
    not_found(b.provisioning.volume(&bob, &sb, &vid(&cloud.alice_vol)).await);
    not_found(b.provisioning.delete_volume(&bob, &sb, &vid(&cloud.alice_vol)).await);
    b.provisioning.tag_volume(&alice, &sb, &vid(&cloud.alice_vol), &BTreeMap::from([("k".into(), "v".into())]), &[]).await.unwrap();
    b.provisioning.delete_volume(&alice, &sb, &vid(&cloud.alice_vol)).await.unwrap();
    assert!(vols(alice.clone()).await.is_empty());
    assert_eq!(vols(bob.clone()).await, vec![cloud.bob_vol.clone()], "bob's volume is untouched");

    // Key pairs keep their names, each user's own.
    let names = |v: Vec<cloudbroker_core::key_pairs::KeyPair>| v.into_iter().map(|k| k.name).collect::<BTreeSet<_>>();
    assert_eq!(names(b.key_pairs.list(&alice).await.unwrap()), BTreeSet::from(["ci".to_string(), "laptop".to_string()]));
    assert_eq!(names(b.key_pairs.list(&bob).await.unwrap()), BTreeSet::from(["laptop".to_string()]));
    assert!(b.key_pairs.get(&bob, "laptop").await.unwrap().public_key.ends_with("bob@laptop"));
    not_found(b.key_pairs.get(&bob, "ci").await);
    b.key_pairs.delete(&alice, "ci").await.unwrap();
    assert!(b.key_pairs.get(&alice, "laptop").await.is_ok());

    // The private image: alice's, invisible to bob.
    let img = image(&ids.alice_image);
    assert!(b.images.list_for(&alice).await.unwrap().iter().any(|i| i.name == img));
    assert!(!b.images.list_for(&bob).await.unwrap().iter().any(|i| i.name == img));
    b.images.get_for(&alice, &img).await.unwrap();
    not_found(b.images.get_for(&bob, &img).await);
    assert!(b.images.list_for(&bob).await.unwrap().iter().any(|i| i.name.as_str() == "broker-ubuntu"), "public stays public");

    // alice's EC2 access key opens (the secret sealed before) and acts in her
    // personal project.
    let h = b.access_keys.holder(&ids.access_key_id).await.unwrap().expect("the key still works");
    assert_eq!((h.actor.name.as_str(), h.actor.project.as_str(), h.actor.role), ("alice", "alice", ProjectRole::Owner));
    assert_eq!(h.secret.expose(), ids.access_key_secret);

    // Quotas: the overrides hold as before; the usage the personal project
    // counts is the user's (a stopped VM counts, a terminated one not).
    let q = b.provisioning.quotas(&alice, &alice.name).await.unwrap();
    let on_sb = q.iter().find(|q| q.instance.as_str() == "sb").unwrap();
    assert_eq!((on_sb.limit, on_sb.source, on_sb.usage), (7, QuotaSource::Override, 1), "{q:?}");
    let q = b.provisioning.quotas(&bob, &bob.name).await.unwrap();
    let on_sb2 = q.iter().find(|q| q.instance.as_str() == "sb2").unwrap();
    assert_eq!((on_sb2.limit, on_sb2.source), (3, QuotaSource::Override), "{q:?}");
    for who in [&alice, &bob] {
        let personal = ProjectName::personal(&who.name);
        assert_eq!(
            b.provisioning.project_usage(&personal, &sb).await.unwrap(),
            b.provisioning.usage(&who.name, &sb).await.unwrap(),
            "{}",
            who.name
        );
    }

    // The admin still reads every record, the old ones included.
    let admin = Actor::new(user("super"), true);
    let log = b.audit.list(&admin, AuditQuery::default(), PageRequest::first(500)).await.unwrap().items;
    assert!(log.len() as i64 >= legacy::AUDIT_ROWS, "{} records", log.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("legacy.db").display());
    check(dir.path(), url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres() {
    let Ok(base) = std::env::var(POSTGRES_ENV) else {
        eprintln!("NOTICE: {POSTGRES_ENV} is not set: the PostgreSQL half of this test was SKIPPED");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    check(dir.path(), TestDb::create_postgres_database(&base).await.unwrap()).await;
}
