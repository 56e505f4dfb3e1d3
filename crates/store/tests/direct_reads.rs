//! SQLite's direct reads of VM records, their networks and volumes
//! (`sqlite_read`) answer exactly what
//! the sqlx path does: the same records, field for field (nulls, tags,
//! leases, quotes and non-ASCII text included), in the same order, with
//! every filter and keyset position a page takes. On PostgreSQL the
//! direct reader (`pg_read`, connections of its own, one per thread)
//! answers the same (typed rows, decoded by position), the VMs' networks
//! and volumes too, and a connection the server ended sends the read to
//! the pool instead of failing it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use chrono::{DateTime, Duration, Utc};
use cloudbroker_model::{
    ClientToken, CredentialId, InstanceName, LaunchId, LeaseAction, NewLease, ProjectName, Tags, UserName, VmId, VmStatus,
};
use cloudbroker_store::testing::TestDb;
use cloudbroker_store::vms::{VmFilter, VmRow, VmUpdate};
use cloudbroker_store::Store;

fn at(secs: i64) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-12-01T00:00:00Z").unwrap().with_timezone(&Utc) + Duration::seconds(secs)
}

fn row(i: usize) -> VmRow {
    let id = format!("vm-d{i:04}");
    let mut tags = std::collections::BTreeMap::new();
    if i.is_multiple_of(2) {
        tags.insert("team".to_string(), format!("t{}", i % 3));
        tags.insert("quote\"d".to_string(), "é \\ </x>".to_string());
    }
    VmRow {
        id: VmId::from_stored(id.clone()),
        launch_id: LaunchId::generate(),
        launch_index: (i % 3) as i64,
        user: UserName::from_stored(if i.is_multiple_of(4) { "bob" } else { "alice" }.into()),
        project: ProjectName::from_stored("alice".into()),
        instance: InstanceName::parse(if i.is_multiple_of(5) { "other" } else { "sb" }).unwrap(),
        credential_id: CredentialId::from_stored(String::new()),
        client_token: ClientToken::from_stored(format!("t-{id}")),
        name: format!("name \"{i}\" ünïcode"),
        image: "img".into(),
        image_id: "ami-1".into(),
        instance_type: "t2.micro".into(),
        state: VmStatus::Pending,
        cloud_id: (!i.is_multiple_of(3)).then(|| format!("i-{id}")),
        private_ip: (i % 2 == 1).then(|| format!("10.0.0.{i}")),
        public_ip: None,
        error: None,
        tags: Tags::from_stored(tags),
        key_name: None,
        created_at: at(0),
        updated_at: at(0),
        version: 0,
        lease: None,
    }
}

#[tokio::test]
async fn direct_reads_answer_what_the_pool_does() {
    let db = TestDb::sqlite().await.unwrap();
    let s = db.store.clone();
    assert!(s.reads_directly(), "a SQLite file is read directly");
    same_as_the_pool(&s, &db.url).await;
}

#[tokio::test]
async fn postgres_direct_reads_answer_what_the_pool_does() {
    let Some(db) = TestDb::postgres().await.unwrap() else { return };
    let s = db.store.clone();
    assert!(s.reads_postgres_directly(), "PostgreSQL is read over the reader's own connections");
    same_as_the_pool(&s, &db.url).await;
    // The server ends every session of this database (as after a
    // failover): the next reads fall back to the pool, which replaces its
    // dead connections, and the reader opens a fresh one after that.
    let all = s.page_vms(&VmFilter::default(), None, 100).await.unwrap();
    let mut admin = <sqlx::AnyConnection as sqlx::Connection>::connect(&db.url).await.unwrap();
    let killed: Vec<(bool,)> = sqlx::query_as(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()",
    )
    .fetch_all(&mut admin)
    .await
    .unwrap();
    assert!(!killed.is_empty(), "the store had no session open");
    let served = s.direct_reads_served();
    assert_eq!(s.page_vms(&VmFilter::default(), None, 100).await.unwrap(), all, "read through the pool");
    assert_eq!(s.direct_reads_served(), served, "the reader's connection was dead: the pool answered");
    assert_eq!(s.page_vms(&VmFilter::default(), None, 100).await.unwrap(), all);
    assert_eq!(s.direct_reads_served(), served + 1, "a fresh connection of the reader's answered");

    // Three reads at once on one thread (a worker serving three requests):
    // each needs a connection, and all three are kept for the next three,
    // which open none (one kept per thread made every other read under
    // load open a session: a server process and a SCRAM exchange).
    let f = VmFilter::default();
    let at_once = || async { futures::join!(s.page_vms(&f, None, 100), s.page_vms(&f, None, 100), s.page_vms(&f, None, 100)) };
    let (a, b, c) = at_once().await;
    assert_eq!((a.unwrap(), b.unwrap(), c.unwrap()), (all.clone(), all.clone(), all.clone()));
    assert_eq!(s.postgres_connections_kept(), 3, "the three connections are kept");
    let before = sessions(&mut admin).await;
    let served = s.direct_reads_served();
    for _ in 0..5 {
        let (a, b, c) = at_once().await;
        assert_eq!((a.unwrap(), b.unwrap(), c.unwrap()), (all.clone(), all.clone(), all.clone()));
    }
    assert_eq!(s.direct_reads_served(), served + 15, "every read answered directly");
    assert_eq!(sessions(&mut admin).await, before, "no session opened for them");
    assert_eq!(s.postgres_connections_kept(), 3);
}

/// Sessions open on the current database.
async fn sessions(admin: &mut sqlx::AnyConnection) -> i64 {
    let n: (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database()").fetch_one(admin).await.unwrap();
    n.0
}

/// Every VM read of `s` (with its direct reader) equals the pool's.
async fn same_as_the_pool(s: &Store, url: &str) {
    let pooled = s.without_direct_reads();
    assert!(!pooled.reads_directly());
    assert!(!pooled.reads_postgres_directly());
    s.create_user("alice", "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaA", false).await.unwrap();
    s.create_user("bob", "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaA", false).await.unwrap();
    let clock = s.clock().clone();
    let mut ids = Vec::new();
    for i in 0..30 {
        // Pairs share a creation time: the keyset's tie on the id is exercised.
        clock.set(at((i / 2) as i64));
        let r = row(i);
        assert!(s.insert_adopted_vm(&r).await.unwrap());
        ids.push(r.id.clone());
    }
    clock.set(at(100));
    for (i, id) in ids.iter().enumerate() {
        match i % 3 {
            0 => s.update_vm(&VmUpdate { error: Some("it's <gone>"), ..VmUpdate::state(id, VmStatus::Terminated) }).await.unwrap(),
            1 => s.update_vm(&VmUpdate { public_ip: Some("203.0.113.9"), ..VmUpdate::state(id, VmStatus::Running) }).await.unwrap(),
            _ => {}
        }
        if i % 4 == 1 {
            let lease =
                NewLease { expires_at: at(3600).timestamp_millis(), action: LeaseAction::Stop, warn_at: at(3000).timestamp_millis() };
            assert!(s.set_vm_lease(id, Some(&lease)).await.unwrap());
        }
    }
    clock.set(at(200));
    s.close_ended_vm_leases(at(4000).timestamp_millis()).await.unwrap();

    let before = s.direct_reads_served();
    for id in ids.iter().chain([&VmId::from_stored("vm-missing".into())]) {
        assert_eq!(s.get_vm(id).await.unwrap(), pooled.get_vm(id).await.unwrap(), "{id}");
    }
    assert!(s.get_vm(&ids[1]).await.unwrap().unwrap().lease.is_some());
    // Every one of those was answered directly (none fell back to sqlx).
    assert_eq!(s.direct_reads_served() - before, 32);
    assert_eq!(pooled.direct_reads_served(), 0);

    let filters = [
        VmFilter::default(),
        VmFilter { project: Some("alice".into()), ..VmFilter::default() },
        VmFilter { user: Some("bob".into()), ..VmFilter::default() },
        VmFilter { project: Some("alice".into()), instance: Some("sb".into()), ..VmFilter::default() },
        VmFilter { state: Some("running".into()), ..VmFilter::default() },
        VmFilter { tag: Some(("team".into(), "t1".into())), ..VmFilter::default() },
        VmFilter { tag: Some(("quote\"d".into(), "é \\ </x>".into())), ..VmFilter::default() },
        VmFilter { ended_after: Some(at(150).timestamp_millis()), ..VmFilter::default() },
        VmFilter { ended_after: Some(at(50).timestamp_millis()), project: Some("alice".into()), ..VmFilter::default() },
        VmFilter { name: Some("name \"3\" ünïcode".into()), ..VmFilter::default() },
        VmFilter { project: Some("nobody".into()), ..VmFilter::default() },
    ];
    for f in &filters {
        // Every page of 4, walked by the keyset of the last row.
        let mut after: Option<(i64, VmId)> = None;
        let mut seen = 0;
        loop {
            let a = after.as_ref().map(|(ms, id)| (*ms, id));
            let served = s.direct_reads_served();
            let direct = s.page_vms(f, a, 4).await.unwrap();
            assert_eq!(s.direct_reads_served(), served + 1, "{f:?}: read directly");
            let pool = pooled.page_vms(f, a, 4).await.unwrap();
            assert_eq!(direct, pool, "{f:?} after {after:?}");
            seen += direct.len();
            match direct.last() {
                Some(last) if direct.len() == 4 => after = Some((last.created_at.timestamp_millis(), last.id.clone())),
                _ => break,
            }
        }
        assert!(seen <= 30);
    }
    let all = s.page_vms(&VmFilter::default(), None, 100).await.unwrap();
    assert_eq!(all.len(), 30);
    assert!(all.windows(2).all(|w| (w[0].created_at, &w[0].id) > (w[1].created_at, &w[1].id)), "newest first");

    // The VMs' networks (read with a page of DescribeInstances): the same
    // map, read directly in one call, with some VMs having none.
    for (i, id) in ids.iter().enumerate().filter(|(i, _)| i % 3 != 2) {
        s.set_vm_network(id, &format!("subnet-{i:02}"), &format!("vpc-{}", i % 2)).await.unwrap();
    }
    let asked: Vec<VmId> = ids.iter().cloned().chain([VmId::from_stored("vm-missing".into())]).collect();
    let served = s.direct_reads_served();
    let direct = s.vm_networks(&asked).await.unwrap();
    assert_eq!(s.direct_reads_served(), served + 1, "the networks were read directly");
    assert_eq!(direct, pooled.vm_networks(&asked).await.unwrap());
    assert_eq!(direct.len(), 20);
    assert_eq!(direct.get(&ids[4]), Some(&("subnet-04".to_string(), "vpc-0".to_string())));
    assert!(!direct.contains_key(&ids[5]));
    assert!(s.vm_networks(&[]).await.unwrap().is_empty());

    // A page's networks and launch details in one read (DescribeInstances):
    // the same as the two reads apart and as the pool's answer, with VMs
    // that have either, both or neither, and a record whose JSON is not
    // JSON (empty sets, not a failed page).
    use cloudbroker_store::vm_launch_details::{LaunchDetails, LaunchDevice, LaunchGroup};
    for (i, id) in ids.iter().enumerate().filter(|(i, _)| i % 2 == 0) {
        let details = LaunchDetails {
            groups: vec![LaunchGroup { id: format!("sg-{i}"), name: format!("wéb \"{i}\"") }],
            devices: vec![LaunchDevice {
                device: "/dev/sda1".into(),
                volume_id: format!("vol-r{i}"),
                delete_on_termination: true,
                root: true,
            }],
        };
        s.set_vm_launch_details(id, &details).await.unwrap();
    }
    let mut raw = <sqlx::AnyConnection as sqlx::Connection>::connect(url).await.unwrap();
    sqlx::query("UPDATE vm_launch_details SET devices = 'not json' WHERE vm_id = $1")
        .bind(ids[28].as_str())
        .execute(&mut raw)
        .await
        .unwrap();
    drop(raw);
    let served = s.direct_reads_served();
    let both = s.vm_page_details(&asked).await.unwrap();
    assert_eq!(s.direct_reads_served(), served + 1, "networks and launch details were read directly, in one read");
    assert_eq!(both, pooled.vm_page_details(&asked).await.unwrap());
    assert_eq!(both.networks, direct);
    assert_eq!(both.launch, pooled.vm_launch_details(&asked).await.unwrap());
    assert_eq!(both.launch.len(), 15);
    assert_eq!(both.launch[&ids[4]].groups, vec![LaunchGroup { id: "sg-4".into(), name: "wéb \"4\"".into() }]);
    assert!(both.launch[&ids[28]].devices.is_empty(), "unreadable devices are none");
    assert_eq!(both.launch[&ids[28]].groups.len(), 1);
    assert!(!both.launch.contains_key(&ids[5]) && !both.networks.contains_key(&ids[5]) && both.networks.contains_key(&ids[4]));
    assert_eq!(s.vm_page_details(&[]).await.unwrap(), Default::default());
    // More ids than one query takes (chunks of 500): every one found.
    let many: Vec<VmId> = (0..700).map(|i| VmId::from_stored(format!("vm-x{i:04}"))).chain(ids.iter().cloned()).collect();
    let all_of_many = s.vm_page_details(&many).await.unwrap();
    assert_eq!(all_of_many, both);

    // The project's volumes on an instance (read with a page of
    // DescribeInstances): the same records, read directly.
    let mut tags = std::collections::BTreeMap::new();
    tags.insert("Name".to_string(), "dätä \"1\"".to_string());
    s.insert_volume("sb", "vol-2", "alice", "cred-1", 8, "sba", Some("gp3"), "in-use", &tags).await.unwrap();
    s.insert_volume("sb", "vol-1", "alice", "cred-1", 20, "sba", None, "available", &Default::default()).await.unwrap();
    s.insert_volume("other", "vol-3", "alice", "cred-1", 8, "sba", None, "available", &Default::default()).await.unwrap();
    s.set_volume_state("sb", "vol-2", "in-use", Some(ids[0].as_str()), Some("/dev/sdf"), Some("attached")).await.unwrap();
    let served = s.direct_reads_served();
    let direct = s.volumes("alice", "sb").await.unwrap();
    assert_eq!(s.direct_reads_served(), served + 1, "the volumes were read directly");
    assert_eq!(direct, pooled.volumes("alice", "sb").await.unwrap());
    assert_eq!(direct.len(), 2);
    assert_eq!(direct.iter().map(|v| v.volume_id.as_str()).collect::<Vec<_>>(), ["vol-1", "vol-2"]);
    assert_eq!(direct[1].vm_id.as_deref(), Some(ids[0].as_str()));
    assert!(s.volumes("bob", "sb").await.unwrap().is_empty());
}

#[tokio::test]
async fn postgres_has_no_direct_reader() {
    let Some(db) = TestDb::postgres().await.unwrap() else { return };
    assert!(!db.store.reads_directly());
}
