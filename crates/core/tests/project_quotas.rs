//! Projects and VMs (issue 24), on SQLite and on PostgreSQL: a project's
//! quota caps its members together, beside each user's own quota, in the
//! same admission (a request checked only for what it adds; the refusal
//! names the quota); its limit is the project's override, else the
//! instance's `quota.project.vm`, else none. Across two replicas sharing
//! PostgreSQL, 500 concurrent launches by 5 members against a project
//! quota of 50 admit exactly 50. VMs are the project's: a member sees and
//! acts on another member's, a viewer sees them and acts on none, anyone
//! else does not see them at all; admins see all. A client token first used
//! in another project is a conflict, never that project's VMs; no launch
//! lands in a project deleted since the actor entered it; the reconciler
//! records a lost VM in the project it is tagged with, only where its user
//! acts.

// Test code: panicking on an unexpected result is the point; helper
// functions outside #[test] are covered by this too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use cloudbroker_connector_api::SecretString;
use cloudbroker_core::domain::{ClientToken, PageRequest, ProjectName, ProjectRole, VmAction};
use cloudbroker_core::images::{ImageMapping, ImageSpec};
use cloudbroker_core::provisioning::{CountRange, LaunchRequest, ProjectQuotaSource, Vm, VmQuery};
use cloudbroker_core::testing::{image, image_ref, instance, user};
use cloudbroker_core::{Actor, Broker, Config, QuotaScope, Resource, ServiceError};
use cloudbroker_store::testing::{TestDb, POSTGRES_ENV};
use std::collections::BTreeMap;

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

/// `linux` (public) on `sb`.
async fn linux(b: &Broker) {
    let mut mappings = BTreeMap::new();
    mappings.insert(instance("sb"), ImageMapping { image_id: "ami-sandbox-debian-12".into(), instance_type: None, security_group: None });
    let spec = ImageSpec { name: image("linux"), description: String::new(), os: "linux".into(), parent: None, mappings };
    b.images.put(&admin(), spec, true).await.unwrap();
}

/// Team project `name` owned by `owner`, with `others` in their roles;
/// returns the owner and the others as they act in it.
async fn team(b: &Broker, name: &str, owner: &Actor, others: &[(&Actor, ProjectRole)]) -> (Actor, Vec<Actor>) {
    let p = project(name);
    b.projects.create(owner, &p, "", None).await.unwrap();
    let mut entered = Vec::new();
    for (who, role) in others {
        b.projects.set_member(owner, &p, &who.name, *role).await.unwrap();
        entered.push(b.projects.enter((*who).clone(), &p).await.unwrap());
    }
    (b.projects.enter(owner.clone(), &p).await.unwrap(), entered)
}

async fn enable_quotas(b: &Broker) {
    b.system.set(&admin(), &[("quota.enable".into(), Some("true".into()))]).await.unwrap();
}

fn request(count: CountRange) -> LaunchRequest {
    let mut r = LaunchRequest::new(instance("sb"), image_ref("linux"));
    r.count = count;
    r
}

async fn launch(b: &Broker, who: &Actor, count: CountRange) -> Result<Vec<Vm>, ServiceError> {
    b.provisioning.launch(who, request(count)).await.map(|o| o.vms)
}

fn refused_by(e: &ServiceError) -> (QuotaScope, i64, i64, i64) {
    match e {
        ServiceError::QuotaExceeded { scope, quota, current, requested } => (scope.clone(), *quota, *current, *requested),
        other => panic!("not a quota refusal: {other}"),
    }
}

broker_test!(a_project_quota_caps_its_members_together, |b: Broker| async move {
    linux(&b).await;
    enable_quotas(&b).await;
    let alice = add_user(&b, "alice").await;
    let bob = add_user(&b, "bob").await;
    let (alice_a, members) = team(&b, "team-a", &alice, &[(&bob, ProjectRole::Member)]).await;
    let bob_a = &members[0];
    b.provisioning.set_project_quota(&admin(), &project("team-a"), &instance("sb"), Some(3)).await.unwrap();
    let vms = launch(&b, &alice_a, CountRange::exactly(2)).await.unwrap();
    assert!(vms.iter().all(|v| v.project.as_str() == "team-a" && v.user.as_str() == "alice"), "{vms:?}");
    launch(&b, bob_a, CountRange::exactly(1)).await.unwrap();
    // Full for every member, whoever launched what.
    for who in [&alice_a, bob_a] {
        let e = launch(&b, who, CountRange::exactly(1)).await.unwrap_err();
        assert_eq!(refused_by(&e), (QuotaScope::Project(project("team-a")), 3, 3, 1), "{e}");
        assert!(e.to_string().contains("project 'team-a'"), "the refusal names the project: {e}");
        // The dry run agrees.
        let e = b.provisioning.check_launch(who, request(CountRange::exactly(1))).await.unwrap_err();
        assert_eq!(refused_by(&e).0, QuotaScope::Project(project("team-a")), "{e}");
    }
    // Their personal projects have no project quota: each user's own applies.
    launch(&b, &bob, CountRange::exactly(2)).await.unwrap();
    assert_eq!(b.provisioning.usage(&bob.name, &instance("sb")).await.unwrap(), 3, "the user quota counts every project");
    assert_eq!(b.provisioning.project_usage(&project("team-a"), &instance("sb")).await.unwrap(), 3);
    // The members read the project's quota; a non-member is told nothing.
    let q = b.provisioning.project_quotas(bob_a, &project("team-a")).await.unwrap();
    let sb = q.iter().find(|q| q.instance.as_str() == "sb").unwrap();
    assert_eq!((sb.limit, sb.source, sb.usage, sb.enforced), (Some(3), ProjectQuotaSource::Override, 3, true));
    let carol = add_user(&b, "carol").await;
    let e = b.provisioning.project_quotas(&carol, &project("team-a")).await.unwrap_err();
    assert!(matches!(e, ServiceError::NotFound(Resource::Project(_))), "{e}");
    // Terminating frees a slot of the project.
    b.provisioning.action(bob_a, &vms[0].id, VmAction::Terminate).await.unwrap();
    launch(&b, bob_a, CountRange::exactly(1)).await.unwrap();
});

broker_test!(both_quotas_apply_and_the_refusal_names_which, |b: Broker| async move {
    linux(&b).await;
    enable_quotas(&b).await;
    let alice = add_user(&b, "alice").await;
    let bob = add_user(&b, "bob").await;
    let (alice_a, members) = team(&b, "team-a", &alice, &[(&bob, ProjectRole::Member)]).await;
    let bob_a = &members[0];
    b.provisioning.set_project_quota(&admin(), &project("team-a"), &instance("sb"), Some(10)).await.unwrap();
    b.provisioning.set_quota(&admin(), &alice.name, &instance("sb"), Some(3)).await.unwrap();
    // Alice's personal VM counts against her user quota in the team too.
    launch(&b, &alice, CountRange::exactly(1)).await.unwrap();
    launch(&b, &alice_a, CountRange::exactly(2)).await.unwrap();
    let e = launch(&b, &alice_a, CountRange::exactly(1)).await.unwrap_err();
    assert_eq!(refused_by(&e), (QuotaScope::User, 3, 3, 1), "{e}");
    assert_eq!(e.to_string(), "Concurrent VM quota exceeded (quota=3, current=3, requested=1)", "the user quota's words are unchanged");
    // The project has room for Bob.
    launch(&b, bob_a, CountRange::exactly(5)).await.unwrap();
    // Both full at once: the user quota is named (checked first).
    b.provisioning.set_project_quota(&admin(), &project("team-a"), &instance("sb"), Some(7)).await.unwrap();
    let e = launch(&b, &alice_a, CountRange::exactly(1)).await.unwrap_err();
    assert_eq!(refused_by(&e).0, QuotaScope::User, "{e}");
    let e = launch(&b, bob_a, CountRange::exactly(1)).await.unwrap_err();
    assert_eq!(refused_by(&e), (QuotaScope::Project(project("team-a")), 7, 7, 1), "{e}");
    // The over-quota audit record says which.
    let log = b.audit.list(&admin(), Default::default(), PageRequest::default()).await.unwrap();
    let over: Vec<&str> = log.items.iter().filter(|e| e.outcome == "over-quota").map(|e| e.detail.as_str()).collect();
    assert!(over.iter().any(|d| d.starts_with("project team-a quota=7")), "{over:?}");
    assert!(over.iter().any(|d| d.starts_with("quota=3")), "{over:?}");
});

broker_test!(a_request_is_checked_only_for_what_it_adds, |b: Broker| async move {
    linux(&b).await;
    enable_quotas(&b).await;
    let alice = add_user(&b, "alice").await;
    let bob = add_user(&b, "bob").await;
    let (alice_a, members) = team(&b, "team-a", &alice, &[(&bob, ProjectRole::Member)]).await;
    let bob_a = &members[0];
    b.provisioning.set_project_quota(&admin(), &project("team-a"), &instance("sb"), Some(5)).await.unwrap();
    launch(&b, &alice_a, CountRange::exactly(3)).await.unwrap();
    // 2 left: 1..=5 gets exactly 2, in one admission.
    assert_eq!(launch(&b, bob_a, CountRange::between(1, 5)).await.unwrap().len(), 2);
    let e = launch(&b, bob_a, CountRange::between(1, 5)).await.unwrap_err();
    assert_eq!(refused_by(&e), (QuotaScope::Project(project("team-a")), 5, 5, 1), "{e}");
    // The tighter of the two rooms decides: the user's (2 left) under the project's (5 left).
    b.provisioning.set_project_quota(&admin(), &project("team-a"), &instance("sb"), Some(10)).await.unwrap();
    b.provisioning.set_quota(&admin(), &bob.name, &instance("sb"), Some(4)).await.unwrap();
    assert_eq!(launch(&b, bob_a, CountRange::between(1, 9)).await.unwrap().len(), 2);
    // And the project's (2 left) under the user's (6 left).
    b.provisioning.set_quota(&admin(), &alice.name, &instance("sb"), Some(9)).await.unwrap();
    b.provisioning.set_project_quota(&admin(), &project("team-a"), &instance("sb"), Some(9)).await.unwrap();
    assert_eq!(launch(&b, &alice_a, CountRange::between(1, 9)).await.unwrap().len(), 2);
    // A least count that does not fit reserves nothing.
    let e = launch(&b, &alice_a, CountRange::between(1, 3)).await.unwrap_err();
    assert_eq!(refused_by(&e), (QuotaScope::Project(project("team-a")), 9, 9, 1), "{e}");
    assert_eq!(b.provisioning.project_usage(&project("team-a"), &instance("sb")).await.unwrap(), 9);
});

broker_test!(the_project_limit_is_the_override_else_the_instance_default, |b: Broker| async move {
    linux(&b).await;
    let alice = add_user(&b, "alice").await;
    let (alice_a, _) = team(&b, "team-a", &alice, &[]).await;
    let limit = |b: Broker| async move { b.provisioning.project_limit_for(&project("team-a"), &instance("sb")).await.unwrap() };
    assert_eq!(limit(b.clone()).await, (None, ProjectQuotaSource::None), "no limit by default");
    // Not enforced while quota.enable is off.
    b.system.set(&admin(), &[("sb.quota.project.vm".into(), Some("2".into()))]).await.unwrap();
    assert_eq!(limit(b.clone()).await, (Some(2), ProjectQuotaSource::Instance));
    launch(&b, &alice_a, CountRange::exactly(3)).await.unwrap();
    enable_quotas(&b).await;
    let e = launch(&b, &alice_a, CountRange::exactly(1)).await.unwrap_err();
    assert_eq!(refused_by(&e), (QuotaScope::Project(project("team-a")), 2, 3, 1), "{e}");
    // The instance default applies to personal projects too.
    launch(&b, &alice, CountRange::exactly(2)).await.unwrap();
    let e = launch(&b, &alice, CountRange::exactly(1)).await.unwrap_err();
    assert_eq!(refused_by(&e), (QuotaScope::Project(project("alice")), 2, 2, 1), "{e}");
    // An override wins over the instance default, and removing it restores it.
    let q = b.provisioning.set_project_quota(&admin(), &project("team-a"), &instance("sb"), Some(5)).await.unwrap();
    assert_eq!((q.limit, q.source, q.usage), (Some(5), ProjectQuotaSource::Override, 3));
    assert_eq!(launch(&b, &alice_a, CountRange::between(1, 9)).await.unwrap().len(), 2);
    let q = b.provisioning.set_project_quota(&admin(), &project("team-a"), &instance("sb"), None).await.unwrap();
    assert_eq!((q.limit, q.source), (Some(2), ProjectQuotaSource::Instance));
    // Only admins set quotas: the project's owner reads them.
    let e = b.provisioning.set_project_quota(&alice_a, &project("team-a"), &instance("sb"), Some(100)).await.unwrap_err();
    assert!(matches!(e, ServiceError::Forbidden(_)), "{e}");
    assert!(b.provisioning.project_quotas(&alice_a, &project("team-a")).await.is_ok());
    // Bad values and unknown names.
    let e = b.provisioning.set_project_quota(&admin(), &project("team-a"), &instance("sb"), Some(-1)).await.unwrap_err();
    assert!(matches!(e, ServiceError::Invalid { field: Some("limit"), .. }), "{e}");
    let e = b.provisioning.set_project_quota(&admin(), &project("nope"), &instance("sb"), Some(1)).await.unwrap_err();
    assert!(matches!(e, ServiceError::NotFound(Resource::Project(_))), "{e}");
    let e = b.provisioning.set_project_quota(&admin(), &project("team-a"), &instance("nope"), Some(1)).await.unwrap_err();
    assert!(matches!(e, ServiceError::NotFound(Resource::Instance(_))), "{e}");
});

broker_test!(a_client_token_is_not_replayed_across_projects, |b: Broker| async move {
    linux(&b).await;
    let alice = add_user(&b, "alice").await;
    let (alice_a, _) = team(&b, "team-a", &alice, &[]).await;
    let mut r = request(CountRange::exactly(1));
    r.client_token = Some(ClientToken::parse("tok-1").unwrap());
    let first = b.provisioning.launch(&alice, r.clone()).await.unwrap();
    assert!(first.created);
    let again = b.provisioning.launch(&alice, r.clone()).await.unwrap();
    assert_eq!((again.created, again.vms[0].id.clone()), (false, first.vms[0].id.clone()), "same project: replayed");
    let e = b.provisioning.launch(&alice_a, r.clone()).await.unwrap_err();
    assert!(matches!(&e, ServiceError::Conflict(m) if m.contains("tok-1") && m.contains("'alice'")), "{e}");
    // Also when the project's quota is full (the refusal path looks the token up).
    enable_quotas(&b).await;
    b.provisioning.set_project_quota(&admin(), &project("team-a"), &instance("sb"), Some(0)).await.unwrap();
    let e = b.provisioning.launch(&alice_a, r).await.unwrap_err();
    assert!(matches!(e, ServiceError::Conflict(_)), "{e}");
    let listed = b.provisioning.list(&alice_a, VmQuery::default(), PageRequest::default()).await.unwrap();
    assert!(listed.items.is_empty(), "nothing of the personal project shows in the team's");
});

broker_test!(vms_are_the_projects, |b: Broker| async move {
    linux(&b).await;
    let alice = add_user(&b, "alice").await;
    let bob = add_user(&b, "bob").await;
    let vera = add_user(&b, "vera").await;
    let mallory = add_user(&b, "mallory").await;
    let (alice_a, members) = team(&b, "team-a", &alice, &[(&bob, ProjectRole::Member), (&vera, ProjectRole::Viewer)]).await;
    let (bob_a, vera_a) = (&members[0], &members[1]);
    let (mallory_b, _) = team(&b, "team-b", &mallory, &[]).await;
    let vm = launch(&b, &alice_a, CountRange::exactly(1)).await.unwrap().remove(0);
    let personal = launch(&b, &alice, CountRange::exactly(1)).await.unwrap().remove(0);
    let theirs = launch(&b, &mallory_b, CountRange::exactly(1)).await.unwrap().remove(0);
    let ids = |p: cloudbroker_core::domain::Page<Vm>| p.items.into_iter().map(|v| v.id).collect::<Vec<_>>();
    let list = |who: Actor| {
        let b = b.clone();
        async move { ids(b.provisioning.list(&who, VmQuery::default(), PageRequest::default()).await.unwrap()) }
    };
    // A member sees and acts on another member's VM; tags it too.
    assert_eq!(b.provisioning.get(bob_a, &vm.id).await.unwrap().user.as_str(), "alice");
    assert_eq!(list(bob_a.clone()).await, vec![vm.id.clone()]);
    b.provisioning.action(bob_a, &vm.id, VmAction::Stop).await.unwrap();
    let set = BTreeMap::from([("team".to_string(), "a".to_string())]);
    assert_eq!(b.provisioning.tag(bob_a, &vm.id, &set, &[]).await.unwrap().tags.get("team"), Some("a"));
    // A viewer sees it; every action is forbidden, dry runs included.
    assert_eq!(list(vera_a.clone()).await, vec![vm.id.clone()]);
    assert!(b.provisioning.get(vera_a, &vm.id).await.is_ok());
    for action in [VmAction::Start, VmAction::Stop, VmAction::Reboot, VmAction::Terminate] {
        let e = b.provisioning.action(vera_a, &vm.id, action).await.unwrap_err();
        assert!(matches!(&e, ServiceError::Forbidden(m) if m.contains("viewer")), "{action:?}: {e}");
        let e = b.provisioning.check_action(vera_a, &vm.id, action).await.unwrap_err();
        assert!(matches!(e, ServiceError::Forbidden(_)), "{action:?}: {e}");
    }
    assert!(matches!(b.provisioning.tag(vera_a, &vm.id, &set, &[]).await.unwrap_err(), ServiceError::Forbidden(_)));
    assert!(matches!(b.provisioning.check_tag(vera_a, &vm.id, &set, &[]).await.unwrap_err(), ServiceError::Forbidden(_)));
    let e = launch(&b, vera_a, CountRange::exactly(1)).await.unwrap_err();
    assert!(matches!(e, ServiceError::Forbidden(_)), "a viewer launches nothing: {e}");
    assert!(matches!(b.provisioning.check_launch(vera_a, request(CountRange::exactly(1))).await, Err(ServiceError::Forbidden(_))));
    // Outside the project: not found, whether in another project or in one's own personal one.
    for (who, id) in [(&mallory_b, &vm.id), (&mallory, &vm.id), (&bob, &vm.id), (bob_a, &personal.id), (bob_a, &theirs.id)] {
        let e = b.provisioning.get(who, id).await.unwrap_err();
        assert!(matches!(e, ServiceError::NotFound(Resource::Vm(_))), "{} on {id}: {e}", who.name);
        let e = b.provisioning.action(who, id, VmAction::Terminate).await.unwrap_err();
        assert!(matches!(e, ServiceError::NotFound(Resource::Vm(_))), "{} on {id}: {e}", who.name);
        let e = b.provisioning.tag(who, id, &set, &[]).await.unwrap_err();
        assert!(matches!(e, ServiceError::NotFound(Resource::Vm(_))), "{} on {id}: {e}", who.name);
    }
    assert_eq!(list(mallory_b.clone()).await, vec![theirs.id.clone()]);
    assert_eq!(list(alice.clone()).await, vec![personal.id.clone()], "the personal project holds only the personal VM");
    assert!(list(bob.clone()).await.is_empty());
    // Admins see all, or one project's, or one user's.
    assert_eq!(list(admin()).await.len(), 3);
    let only = |project: Option<&str>, user: Option<&str>| VmQuery {
        project: project.map(|p| ProjectName::parse(p).unwrap()),
        user: user.map(cloudbroker_core::testing::user),
        ..VmQuery::default()
    };
    let team_a = ids(b.provisioning.list(&admin(), only(Some("team-a"), None), PageRequest::default()).await.unwrap());
    assert_eq!(team_a, vec![vm.id.clone()]);
    let by_alice = ids(b.provisioning.list(&admin(), only(None, Some("alice")), PageRequest::default()).await.unwrap());
    assert_eq!(by_alice.len(), 2);
    // A non-admin's filters never widen what they see.
    assert_eq!(
        ids(b.provisioning.list(bob_a, only(Some("team-b"), Some("mallory")), PageRequest::default()).await.unwrap()),
        vec![vm.id.clone()]
    );
    // Counts per project: its members' and admins'.
    let counts = b.provisioning.project_vm_counts(bob_a, &project("team-a")).await.unwrap();
    assert_eq!(counts.iter().map(|c| (c.user.as_str(), c.count)).collect::<Vec<_>>(), [("alice", 1)], "{counts:?}");
    assert_eq!(b.provisioning.project_vm_counts(&admin(), &project("team-a")).await.unwrap(), counts);
    let e = b.provisioning.project_vm_counts(&mallory_b, &project("team-a")).await.unwrap_err();
    assert!(matches!(e, ServiceError::NotFound(Resource::Project(_))), "{e}");
    // A member terminates another member's VM; the audit record is the project's.
    b.provisioning.action(bob_a, &vm.id, VmAction::Terminate).await.unwrap();
    let log = b.audit.list(&admin(), Default::default(), PageRequest::default()).await.unwrap();
    let term = log.items.iter().find(|e| e.action == "vm.terminate").unwrap();
    assert_eq!((term.actor.as_str(), term.project.as_str()), ("bob", "team-a"));
});

/// Two replicas sharing one PostgreSQL database: 5 members of one project
/// launch 500 VMs at once, half through each replica, against a project
/// quota of 50 (and high user quotas): exactly 50 are admitted and
/// recorded, 450 refused by the project quota.
#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn two_replicas_admit_exactly_the_project_quota_postgres() {
    let Ok(base) = std::env::var(POSTGRES_ENV) else {
        eprintln!("NOTICE: {POSTGRES_ENV} is not set: the two-replica project quota test on PostgreSQL was SKIPPED");
        return;
    };
    let db = TestDb::create_postgres_database(&base).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let conn = dir.path().join("connectors.d");
    std::fs::create_dir_all(&conn).unwrap();
    std::fs::write(conn.join("sb.conf"), "cloud.connector.class = sb:sandbox\nsb.boot.delay.ms = 0\n").unwrap();
    let mut replicas = Vec::new();
    for _ in 0..2 {
        let mut config = Config::for_tests(dir.path(), Some(db.clone()));
        config.admin_password = Some(SecretString::new("super-password-1"));
        replicas.push(Broker::start(config, common::connectors()).await.unwrap());
    }
    let b = &replicas[0];
    linux(b).await;
    b.system.set(&admin(), &[("quota.enable".into(), Some("true".into())), ("sb.quota.vm".into(), Some("1000".into()))]).await.unwrap();
    let owner = add_user(b, "owner").await;
    let mut members = Vec::new();
    for i in 0..5 {
        members.push(add_user(b, &format!("member{i}")).await);
    }
    let roles: Vec<(&Actor, ProjectRole)> = members.iter().map(|m| (m, ProjectRole::Member)).collect();
    let (_, entered) = team(b, "team-a", &owner, &roles).await;
    b.provisioning.set_project_quota(&admin(), &project("team-a"), &instance("sb"), Some(50)).await.unwrap();
    // The other replica sees the configuration change before the launches.
    replicas[1].provisioning.project_quotas(&admin(), &project("team-a")).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..500 {
        let replica = replicas[i % 2].clone();
        let who = entered[i % 5].clone();
        tasks.push(tokio::spawn(async move { replica.provisioning.launch(&who, request(CountRange::exactly(1))).await }));
    }
    let (mut admitted, mut refused) = (0, 0);
    for t in tasks {
        match t.await.unwrap() {
            Ok(out) => admitted += out.vms.len(),
            Err(ServiceError::QuotaExceeded { scope: QuotaScope::Project(p), quota: 50, current: 50, requested: 1 })
                if p.as_str() == "team-a" =>
            {
                refused += 1
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!((admitted, refused), (50, 450));
    for r in &replicas {
        assert_eq!(r.provisioning.project_usage(&project("team-a"), &instance("sb")).await.unwrap(), 50);
        let all = r
            .provisioning
            .list(
                &admin(),
                VmQuery { project: Some(project("team-a")), ..VmQuery::default() },
                PageRequest::parse(Some("1000"), None).unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(all.items.len(), 50, "exactly 50 recorded");
    }
}

broker_test!(the_reconciler_keeps_vms_in_their_projects, |b: Broker| async move {
    use cloudbroker_connector_api::model::tags;
    use cloudbroker_connector_api::{DescribeFilter, RunRequest};
    use cloudbroker_core::domain::LaunchId;
    linux(&b).await;
    let alice = add_user(&b, "alice").await;
    let bob = add_user(&b, "bob").await;
    let carol = add_user(&b, "carol").await;
    let (_, members) = team(&b, "team-a", &alice, &[(&bob, ProjectRole::Member)]).await;
    let bob_a = &members[0];
    team(&b, "team-b", &carol, &[]).await;
    // A team launch says its project on the cloud; a personal one says nothing new.
    let launched = launch(&b, bob_a, CountRange::exactly(1)).await.unwrap().remove(0);
    let personal = launch(&b, &bob, CountRange::exactly(1)).await.unwrap().remove(0);
    let (creds, _) = b.vault.credentials_for(&bob.name, &instance("sb")).await.unwrap();
    let conn = b.registry.snapshot().instance("sb").unwrap().connector.clone().unwrap();
    let tagged = conn.describe_instances(&creds, &DescribeFilter::tag(tags::PROJECT, "team-a")).await.unwrap();
    assert_eq!(tagged.iter().map(|v| Some(v.id.as_str())).collect::<Vec<_>>(), [launched.cloud_id.as_deref()]);
    let all = conn.describe_instances(&creds, &DescribeFilter::tag(tags::BROKER, b.provisioning.broker_id())).await.unwrap();
    let mine = all.iter().find(|v| Some(v.id.as_str()) == personal.cloud_id.as_deref()).unwrap();
    assert_eq!(mine.tag(tags::PROJECT), None);
    // VMs whose records are lost (a restored backup): recorded in the project
    // they are tagged with when their user acts there, else refused.
    let orphan = |project: &str| RunRequest {
        image_id: "ami-sandbox-debian-12".into(),
        instance_type: "t2.micro".into(),
        count: 1,
        tags: vec![
            (tags::BROKER.into(), b.provisioning.broker_id().to_string()),
            (tags::USER.into(), "bob".into()),
            (tags::PROJECT.into(), project.into()),
            (tags::LAUNCH.into(), LaunchId::generate().to_string()),
        ],
        client_token: String::new(),
        ..Default::default()
    };
    let in_a = conn.run_instances(&creds, &orphan("team-a")).await.unwrap().remove(0);
    conn.run_instances(&creds, &orphan("team-b")).await.unwrap();
    let report = b.provisioning.reconcile("test").await.unwrap();
    assert_eq!((report.adopted, report.refused), (1, 1), "{report:?}");
    let team_vms = b.provisioning.list(bob_a, VmQuery::default(), PageRequest::default()).await.unwrap().items;
    let adopted = team_vms.iter().find(|v| v.cloud_id.as_deref() == Some(in_a.id.as_str())).expect("adopted into team-a");
    assert_eq!((adopted.project.as_str(), adopted.user.as_str()), ("team-a", "bob"));
    let personal_vms = b.provisioning.list(&bob, VmQuery::default(), PageRequest::default()).await.unwrap().items;
    assert_eq!(personal_vms.iter().map(|v| &v.id).collect::<Vec<_>>(), [&personal.id]);
    // The launched ones keep their records and projects.
    assert_eq!(b.provisioning.get(bob_a, &launched.id).await.unwrap().project.as_str(), "team-a");
});

broker_test!(no_launch_lands_in_a_deleted_project, |b: Broker| async move {
    linux(&b).await;
    let alice = add_user(&b, "alice").await;
    // Entered before the deletion (as another replica may still hold it for a moment).
    let (alice_a, _) = team(&b, "team-a", &alice, &[]).await;
    b.projects.delete(&alice, &project("team-a")).await.unwrap();
    let e = launch(&b, &alice_a, CountRange::exactly(1)).await.unwrap_err();
    assert!(matches!(&e, ServiceError::NotFound(Resource::Project(p)) if p.as_str() == "team-a"), "{e}");
    let all = b.provisioning.list(&admin(), VmQuery::default(), PageRequest::default()).await.unwrap();
    assert!(all.items.is_empty(), "nothing recorded: {:?}", all.items);
});
