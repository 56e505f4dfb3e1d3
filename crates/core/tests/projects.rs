//! Projects (teams) through the core services, on SQLite and PostgreSQL:
//! personal projects come with their user; project and user names share one
//! namespace; members get their role when they enter; a project keeps an
//! owner; personal projects keep their one member; a project holding live
//! resources is not deleted; non-members cannot tell a project exists; a
//! removed member cannot enter at once on the same broker, and within the
//! cache window on another broker sharing the database.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::zombie_processes)]

mod common;

use cloudbroker_connector_api::SecretString;
use cloudbroker_core::audit::AuditQuery;
use cloudbroker_core::domain::{PageRequest, ProjectName, ProjectRole, VmAction};
use cloudbroker_core::images::{ImageMapping, ImageSpec};
use cloudbroker_core::provisioning::LaunchRequest;
use cloudbroker_core::testing::{image, image_ref, instance, user};
use cloudbroker_core::{Actor, Broker, Config, Resource, ServiceError};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

fn admin() -> Actor {
    Actor::system()
}

fn project(s: &str) -> ProjectName {
    ProjectName::parse(s).unwrap()
}

async fn add_user(b: &Broker, name: &str) -> Actor {
    let u = b.identity.create_user(&admin(), &user(name), &SecretString::new(format!("{name}-password")), false).await.unwrap();
    Actor::new(u.name, false)
}

fn is_project_not_found(e: &ServiceError, name: &str) -> bool {
    matches!(e, ServiceError::NotFound(Resource::Project(p)) if p.as_str() == name)
}

broker_test!(a_personal_project_comes_with_its_user, |b: Broker| async move {
    let alice = add_user(&b, "alice").await;
    let mine = b.projects.list(&alice).await.unwrap();
    assert_eq!(mine.len(), 1, "{mine:?}");
    assert_eq!((mine[0].name.as_str(), mine[0].personal, mine[0].role), ("alice", true, Some(ProjectRole::Owner)));
    let d = b.projects.get(&alice, &project("alice")).await.unwrap();
    assert_eq!(d.members.len(), 1);
    assert_eq!((d.members[0].user.as_str(), d.members[0].role), ("alice", ProjectRole::Owner));
    // The bootstrapped admin has one too.
    let sup = Actor::new(user("super"), true);
    assert!(b.projects.list_mine(&sup).await.unwrap().iter().any(|p| p.name.as_str() == "super" && p.personal));
    // Entering one's personal project keeps the actor as it is.
    assert_eq!(b.projects.enter(alice.clone(), &project("alice")).await.unwrap(), alice);

    // A personal project gets no members, loses none and is not deleted.
    let bob = add_user(&b, "bob").await;
    let e = b.projects.set_member(&alice, &project("alice"), &bob.name, ProjectRole::Viewer).await.unwrap_err();
    assert!(matches!(&e, ServiceError::Conflict(m) if m.contains("personal project")), "{e}");
    let e = b.projects.remove_member(&alice, &project("alice"), &alice.name).await.unwrap_err();
    assert!(matches!(&e, ServiceError::Conflict(m) if m.contains("personal project")), "{e}");
    let e = b.projects.delete(&alice, &project("alice")).await.unwrap_err();
    assert!(matches!(&e, ServiceError::Conflict(m) if m.contains("personal project")), "{e}");
    let e = b.projects.delete(&admin(), &project("alice")).await.unwrap_err();
    assert!(matches!(&e, ServiceError::Conflict(_)), "admins neither: {e}");
    assert_eq!(b.projects.get(&alice, &project("alice")).await.unwrap().members.len(), 1);
    // Nor does anyone else see it.
    let e = b.projects.get(&bob, &project("alice")).await.unwrap_err();
    assert!(is_project_not_found(&e, "alice"), "{e}");
});

broker_test!(project_and_user_names_share_one_namespace, |b: Broker| async move {
    let alice = add_user(&b, "alice").await;
    // A project cannot take a user's name ...
    let e = b.projects.create(&alice, &project("bob"), "", None).await;
    assert!(e.is_ok(), "no user bob yet: {e:?}");
    let e = b.projects.create(&alice, &project("alice"), "", None).await.unwrap_err();
    assert!(matches!(&e, ServiceError::Conflict(m) if m.contains("'alice' is taken")), "{e}");
    let e = b.projects.create(&alice, &project("super"), "", None).await.unwrap_err();
    assert!(matches!(&e, ServiceError::Conflict(_)), "{e}");
    // ... nor a new user a project's (and nothing of the user is left).
    let e = b.identity.create_user(&admin(), &user("bob"), &SecretString::new("bob-password"), false).await.unwrap_err();
    assert!(matches!(&e, ServiceError::Conflict(m) if m.contains("the name 'bob' is taken by a project")), "{e}");
    let e = b.identity.get_user(&admin(), &user("bob")).await.unwrap_err();
    assert!(matches!(e, ServiceError::NotFound(_)), "the user was not created: {e}");
    let d = b.projects.get(&alice, &project("bob")).await.unwrap();
    assert!(!d.project.personal);
    assert_eq!(d.members.iter().map(|m| (m.user.as_str(), m.role)).collect::<Vec<_>>(), [("alice", ProjectRole::Owner)]);
    // A duplicate project name is refused too.
    let e = b.projects.create(&alice, &project("bob"), "", None).await.unwrap_err();
    assert!(matches!(e, ServiceError::Conflict(_)), "{e}");
});

broker_test!(members_roles_and_the_last_owner, |b: Broker| async move {
    let alice = add_user(&b, "alice").await;
    let bob = add_user(&b, "bob").await;
    let carol = add_user(&b, "carol").await;
    let team = project("team-a");
    let p = b.projects.create(&alice, &team, "  the A team  ", None).await.unwrap();
    assert_eq!((p.description.as_str(), p.personal, p.role), ("the A team", false, Some(ProjectRole::Owner)));
    // A long description is refused, naming the field.
    let e = b.projects.update(&alice, &team, &"x".repeat(501)).await.unwrap_err();
    assert!(matches!(e, ServiceError::Invalid { field: Some("description"), .. }), "{e}");
    // Non-admins name nobody else as first owner.
    let e = b.projects.create(&alice, &project("team-x"), "", Some(&bob.name)).await.unwrap_err();
    assert!(matches!(e, ServiceError::Forbidden(_)), "{e}");

    // Non-members cannot tell it exists.
    for e in [
        b.projects.get(&bob, &team).await.unwrap_err(),
        b.projects.members(&bob, &team).await.unwrap_err(),
        b.projects.enter(bob.clone(), &team).await.unwrap_err(),
        b.projects.update(&bob, &team, "mine").await.unwrap_err(),
        b.projects.delete(&bob, &team).await.unwrap_err(),
        b.projects.set_member(&bob, &team, &bob.name, ProjectRole::Owner).await.unwrap_err(),
        b.projects.remove_member(&bob, &team, &alice.name).await.unwrap_err(),
        b.projects.enter(bob.clone(), &project("no-such")).await.unwrap_err(),
    ] {
        assert!(matches!(e, ServiceError::NotFound(Resource::Project(_))), "{e}");
    }
    assert!(b.projects.list(&bob).await.unwrap().iter().all(|p| p.name != team));

    // A viewer sees the project and reads; acts on nothing; manages nothing.
    let m = b.projects.set_member(&alice, &team, &bob.name, ProjectRole::Viewer).await.unwrap();
    assert_eq!((m.user.as_str(), m.role, m.added_by.as_str()), ("bob", ProjectRole::Viewer, "alice"));
    let bob_in = b.projects.enter(bob.clone(), &team).await.unwrap();
    assert_eq!((bob_in.project.as_str(), bob_in.role), ("team-a", ProjectRole::Viewer));
    assert!(matches!(bob_in.require_act(), Err(ServiceError::Forbidden(_))));
    let d = b.projects.get(&bob, &team).await.unwrap();
    assert_eq!(d.project.role, Some(ProjectRole::Viewer));
    assert_eq!(d.members.iter().map(|m| m.user.as_str()).collect::<Vec<_>>(), ["alice", "bob"]);
    assert!(b.projects.list(&bob).await.unwrap().iter().any(|p| p.name == team && p.role == Some(ProjectRole::Viewer)));
    assert!(matches!(b.projects.update(&bob, &team, "mine").await, Err(ServiceError::Forbidden(_))));
    assert!(matches!(b.projects.set_member(&bob, &team, &carol.name, ProjectRole::Viewer).await, Err(ServiceError::Forbidden(_))));
    assert!(matches!(b.projects.delete(&bob, &team).await, Err(ServiceError::Forbidden(_))));
    // A role change shows at once (the cached entry is forgotten).
    b.projects.set_member(&alice, &team, &bob.name, ProjectRole::Member).await.unwrap();
    let bob_in = b.projects.enter(bob.clone(), &team).await.unwrap();
    assert_eq!(bob_in.role, ProjectRole::Member);
    assert!(bob_in.require_act().is_ok() && bob_in.require_manage().is_err());

    // Unknown and disabled users are refused, clearly.
    let e = b.projects.set_member(&alice, &team, &user("nobody"), ProjectRole::Member).await.unwrap_err();
    assert!(matches!(&e, ServiceError::NotFound(Resource::User(u)) if u.as_str() == "nobody"), "{e}");
    b.identity.set_disabled(&admin(), &carol.name, true).await.unwrap();
    let e = b.projects.set_member(&alice, &team, &carol.name, ProjectRole::Member).await.unwrap_err();
    assert!(matches!(&e, ServiceError::Conflict(m) if m.contains("disabled")), "{e}");
    b.identity.set_disabled(&admin(), &carol.name, false).await.unwrap();

    // The last owner stays.
    let e = b.projects.set_member(&alice, &team, &alice.name, ProjectRole::Member).await.unwrap_err();
    assert!(matches!(&e, ServiceError::Conflict(m) if m.contains("at least one owner")), "{e}");
    let e = b.projects.remove_member(&alice, &team, &alice.name).await.unwrap_err();
    assert!(matches!(&e, ServiceError::Conflict(m) if m.contains("at least one owner")), "{e}");
    assert_eq!(
        b.projects.get(&alice, &team).await.unwrap().members.iter().find(|m| m.user == alice.name).unwrap().role,
        ProjectRole::Owner
    );
    // With a second owner, the first may step down, then leave.
    b.projects.set_member(&alice, &team, &bob.name, ProjectRole::Owner).await.unwrap();
    b.projects.set_member(&alice, &team, &alice.name, ProjectRole::Viewer).await.unwrap();
    let alice_in = b.projects.enter(alice.clone(), &team).await.unwrap();
    assert_eq!(alice_in.role, ProjectRole::Viewer);
    // A viewer may leave (no manage right needed for oneself), but not remove others.
    assert!(matches!(b.projects.remove_member(&alice, &team, &bob.name).await, Err(ServiceError::Forbidden(_))));
    b.projects.remove_member(&alice, &team, &alice.name).await.unwrap();
    assert!(is_project_not_found(&b.projects.get(&alice, &team).await.unwrap_err(), "team-a"));
    // bob, the only owner now, cannot leave.
    let e = b.projects.remove_member(&bob, &team, &bob.name).await.unwrap_err();
    assert!(matches!(&e, ServiceError::Conflict(m) if m.contains("at least one owner")), "{e}");
    // Removing someone who is no member is not found.
    let e = b.projects.remove_member(&bob, &team, &carol.name).await.unwrap_err();
    assert!(matches!(e, ServiceError::NotFound(_)), "{e}");

    // Admins: name the first owner, see and enter every project as owner.
    let ops = project("ops");
    let p = b.projects.create(&admin(), &ops, "", Some(&carol.name)).await.unwrap();
    assert_eq!(p.role, None, "the admin is no member");
    let d = b.projects.get(&carol, &ops).await.unwrap();
    assert_eq!(d.members.iter().map(|m| (m.user.as_str(), m.role)).collect::<Vec<_>>(), [("carol", ProjectRole::Owner)]);
    let all = b.projects.list(&admin()).await.unwrap();
    for name in ["alice", "bob", "carol", "ops", "super", "team-a"] {
        assert!(all.iter().any(|p| p.name.as_str() == name), "{name} in {all:?}");
    }
    let first = b.projects.page(&admin(), &PageRequest::first(2)).await.unwrap();
    assert_eq!(first.items.len(), 2);
    let rest = b.projects.page(&admin(), &PageRequest::parse(Some("1000"), first.next_cursor.as_deref()).unwrap()).await.unwrap();
    assert_eq!(first.items.len() + rest.items.len(), all.len());
    let admin_in = b.projects.enter(admin(), &ops).await.unwrap();
    assert_eq!((admin_in.project.as_str(), admin_in.role), ("ops", ProjectRole::Owner));
    let e = b.projects.enter(admin(), &project("no-such")).await.unwrap_err();
    assert!(is_project_not_found(&e, "no-such"), "{e}");

    // Audit: every change is recorded in the project; its owners read it, others do not.
    let bob_in = b.projects.enter(bob.clone(), &team).await.unwrap();
    let log = b.audit.list(&bob_in, AuditQuery::default(), PageRequest::default()).await.unwrap();
    let actions: Vec<&str> = log.items.iter().map(|e| e.action.as_str()).collect();
    for a in ["project.create", "project.member.put", "project.member.remove"] {
        assert!(actions.contains(&a), "{a} in {actions:?}");
    }
    assert!(log.items.iter().all(|e| e.project == "team-a"), "{:?}", log.items);
    let put = log.items.iter().find(|e| e.action == "project.member.put" && e.target == "team-a/alice").unwrap();
    assert_eq!(put.detail, "viewer (was owner)");
    b.projects.set_member(&bob, &team, &carol.name, ProjectRole::Viewer).await.unwrap();
    let carol_in = b.projects.enter(carol.clone(), &team).await.unwrap();
    assert!(matches!(b.audit.list(&carol_in, AuditQuery::default(), PageRequest::default()).await, Err(ServiceError::Forbidden(_))));
    let q = AuditQuery { project: Some(ops.clone()), ..AuditQuery::default() };
    let log = b.audit.list(&admin(), q, PageRequest::default()).await.unwrap();
    assert!(!log.items.is_empty() && log.items.iter().all(|e| e.project == "ops"), "{:?}", log.items);
});

async fn linux_image(b: &Broker) {
    let mut mappings = BTreeMap::new();
    mappings.insert(
        instance("sb"),
        ImageMapping { image_id: "ami-sandbox-debian-12".into(), instance_type: Some("t2.small".into()), security_group: None },
    );
    let spec = ImageSpec { name: image("linux"), description: "any Linux".into(), os: "linux".into(), parent: None, mappings };
    b.images.put(&admin(), spec, true).await.unwrap();
}

broker_test!(a_project_holding_live_resources_is_not_deleted, |b: Broker| async move {
    linux_image(&b).await;
    let alice = add_user(&b, "alice").await;
    let bob = add_user(&b, "bob").await;
    let team = project("team-a");
    b.projects.create(&alice, &team, "", None).await.unwrap();
    b.projects.set_member(&alice, &team, &bob.name, ProjectRole::Member).await.unwrap();
    let bob_in = b.projects.enter(bob.clone(), &team).await.unwrap();
    let vm = b.provisioning.launch(&bob_in, LaunchRequest::new(instance("sb"), image_ref("linux"))).await.unwrap().vms.remove(0);
    let e = b.projects.delete(&alice, &team).await.unwrap_err();
    assert!(
        matches!(&e, ServiceError::Conflict(m) if m.contains("1 live VM(s), 0 address(es), 0 volume(s) and 0 registered image(s)")),
        "{e}"
    );
    // Terminated (and settled), the project goes.
    b.provisioning.action(&bob_in, &vm.id, VmAction::Terminate).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match b.projects.delete(&alice, &team).await {
            Ok(()) => break,
            Err(ServiceError::Conflict(m)) if Instant::now() < deadline => {
                let _ = m;
                b.provisioning.reconcile("t").await.unwrap();
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert!(is_project_not_found(&b.projects.get(&alice, &team).await.unwrap_err(), "team-a"));
    // Its members cannot enter it any more, at once.
    assert!(is_project_not_found(&b.projects.enter(bob.clone(), &team).await.unwrap_err(), "team-a"));
    let log =
        b.audit.list(&admin(), AuditQuery { project: Some(team.clone()), ..Default::default() }, PageRequest::default()).await.unwrap();
    assert!(log.items.iter().any(|e| e.action == "project.delete" && e.actor == "alice"), "{:?}", log.items);
});

/// A second broker on the first one's database (another replica).
async fn replica_of(b: &Broker) -> (Broker, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("connectors.d")).unwrap();
    std::fs::write(dir.path().join("connectors.d/sb.conf"), "cloud.connector.class = sb:sandbox\nsb.boot.delay.ms = 0\n").unwrap();
    let mut config = Config::for_tests(dir.path(), Some(b.config.database_url.clone()));
    config.master_key_file = b.config.master_key_file.clone();
    let other = Broker::start(config, common::connectors()).await.unwrap();
    (other, dir)
}

broker_test!(a_removed_member_loses_access_at_once_and_on_replicas_within_the_window, |b: Broker| async move {
    let alice = add_user(&b, "alice").await;
    let bob = add_user(&b, "bob").await;
    let team = project("team-a");
    b.projects.create(&alice, &team, "", None).await.unwrap();
    b.projects.set_member(&alice, &team, &bob.name, ProjectRole::Member).await.unwrap();
    let (other, _dir) = replica_of(&b).await;
    // Both brokers have bob entered (and cached).
    assert_eq!(b.projects.enter(bob.clone(), &team).await.unwrap().role, ProjectRole::Member);
    assert_eq!(other.projects.enter(bob.clone(), &team).await.unwrap().role, ProjectRole::Member);
    let removed = Instant::now();
    b.projects.remove_member(&alice, &team, &bob.name).await.unwrap();
    // This broker: at once.
    assert!(is_project_not_found(&b.projects.enter(bob.clone(), &team).await.unwrap_err(), "team-a"));
    // The other one: within the cache window.
    let window = cloudbroker_core::cache::KEY_CACHE_TTL;
    loop {
        match other.projects.enter(bob.clone(), &team).await {
            Err(e) => {
                assert!(is_project_not_found(&e, "team-a"), "{e}");
                break;
            }
            Ok(_) => {
                assert!(
                    removed.elapsed() <= window + Duration::from_millis(500),
                    "still entered {:?} after the removal",
                    removed.elapsed()
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    // Added again (as a viewer): the other broker lets bob in at once (its refusal was not cached).
    b.projects.set_member(&alice, &team, &bob.name, ProjectRole::Viewer).await.unwrap();
    let a = other.projects.enter(bob.clone(), &team).await.unwrap_or_else(|e| panic!("refusals are never cached: {e}"));
    assert_eq!(a.role, ProjectRole::Viewer);
    other.close().await;
});

broker_test!(two_owners_demoting_each_other_at_once_leave_one_owner, |b: Broker| async move {
    let alice = add_user(&b, "alice").await;
    let bob = add_user(&b, "bob").await;
    let team = project("team-a");
    for round in 0..5 {
        b.projects.create(&alice, &team, "", None).await.unwrap();
        b.projects.set_member(&alice, &team, &bob.name, ProjectRole::Owner).await.unwrap();
        let (x, y) = tokio::join!(
            b.projects.set_member(&alice, &team, &bob.name, ProjectRole::Member),
            b.projects.set_member(&bob, &team, &alice.name, ProjectRole::Member),
        );
        let owners: Vec<_> =
            b.projects.members(&admin(), &team).await.unwrap().into_iter().filter(|m| m.role == ProjectRole::Owner).collect();
        assert_eq!(owners.len(), 1, "round {round}: {x:?} {y:?} {owners:?}");
        match (&x, &y) {
            (Ok(_), Err(ServiceError::Conflict(_))) | (Err(ServiceError::Conflict(_)), Ok(_)) => {}
            // The second may also find itself no owner any more (403) when it checks after the first commits.
            (Ok(_), Err(ServiceError::Forbidden(_))) | (Err(ServiceError::Forbidden(_)), Ok(_)) => {}
            other => panic!("round {round}: exactly one demotion passes: {other:?}"),
        }
        b.projects.delete(&admin(), &team).await.unwrap();
    }
});

// A replica may still hold a membership it cached before the member was
// removed or made a viewer (for up to the cache window): the launch's
// admission reads the membership again in its transaction, so such a stale
// actor launches nothing, and nothing is recorded.
broker_test!(a_launch_by_a_stale_membership_is_refused_in_the_admission, |b: Broker| async move {
    linux_image(&b).await;
    let alice = add_user(&b, "alice").await;
    let bob = add_user(&b, "bob").await;
    let team = project("team-a");
    b.projects.create(&alice, &team, "", None).await.unwrap();
    b.projects.set_member(&alice, &team, &bob.name, ProjectRole::Member).await.unwrap();
    let stale = b.projects.enter(bob.clone(), &team).await.unwrap();
    assert_eq!(stale.role, ProjectRole::Member);
    let req = || LaunchRequest::new(instance("sb"), image_ref("linux"));
    // Still a member: admitted.
    assert_eq!(b.provisioning.launch(&stale, req()).await.unwrap().vms.len(), 1);

    // Made a viewer: the stale member actor is refused as a viewer.
    b.projects.set_member(&alice, &team, &bob.name, ProjectRole::Viewer).await.unwrap();
    let e = b.provisioning.launch(&stale, req()).await.unwrap_err();
    assert!(matches!(&e, ServiceError::Forbidden(m) if m.contains("viewer of project 'team-a'")), "{e}");

    // Removed: as for a project one is no member of.
    b.projects.remove_member(&alice, &team, &bob.name).await.unwrap();
    let e = b.provisioning.launch(&stale, req()).await.unwrap_err();
    assert!(is_project_not_found(&e, "team-a"), "{e}");

    // Only the first launch was recorded.
    let vms = b.provisioning.list(&admin(), Default::default(), PageRequest::default()).await.unwrap().items;
    assert_eq!(vms.iter().filter(|v| v.project == team).count(), 1, "{vms:?}");
    // Admins act in every project without being members.
    let admin_in = b.projects.enter(Actor::new(user("super"), true), &team).await.unwrap();
    assert_eq!(b.provisioning.launch(&admin_in, req()).await.unwrap().vms.len(), 1);
});
