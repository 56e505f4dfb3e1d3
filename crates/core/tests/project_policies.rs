//! A project's own launch policies (issue 26), on SQLite and on
//! PostgreSQL: a project may tighten an instance's policies, never loosen
//! them. Each of the five (`policy.instance.types`, `policy.images`,
//! `policy.tags.required`, `policy.count.max`, `lease.max`) refuses a
//! launch in the project that the instance allows, with a message naming
//! the project; a project value looser than the instance's lets nothing
//! through that the instance refuses; other projects are unaffected. Only
//! the project's owners and admins set them (members and viewers read,
//! others are told nothing); a bad value is refused naming its parameter;
//! the change is audited. The project's `lease.max` also caps a launch's
//! default lease and a member's extension; admins are held by a project's
//! policies exactly when the instance's hold them.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use chrono::Duration;
use cloudbroker_connector_api::SecretString;
use cloudbroker_core::audit::AuditQuery;
use cloudbroker_core::domain::{LeaseAsk, PageRequest, ProjectName, ProjectRole, Tags};
use cloudbroker_core::images::{ImageMapping, ImageSpec};
use cloudbroker_core::provisioning::{CountRange, InstanceType, LaunchRequest, LaunchTags, Vm, VmQuery};
use cloudbroker_core::testing::{image, image_ref, instance, user};
use cloudbroker_core::{Actor, Broker, Resource, ServiceError};
use std::collections::BTreeMap;

fn admin() -> Actor {
    Actor::system()
}

fn project(s: &str) -> ProjectName {
    ProjectName::parse(s).unwrap()
}

async fn add_user(b: &Broker, name: &str, is_admin: bool) -> Actor {
    let u = b.identity.create_user(&admin(), &user(name), &SecretString::new(format!("{name}-password")), is_admin).await.unwrap();
    Actor::new(u.name, is_admin)
}

/// Public images `linux` and `alpine` on `sb`.
async fn images(b: &Broker) {
    for (name, id) in [("linux", "ami-sandbox-debian-12"), ("alpine", "ami-sandbox-alpine-3")] {
        let mut mappings = BTreeMap::new();
        mappings.insert(instance("sb"), ImageMapping { image_id: id.into(), instance_type: None, security_group: None });
        let spec = ImageSpec { name: image(name), description: String::new(), os: "linux".into(), parent: None, mappings };
        b.images.put(&admin(), spec, true).await.unwrap();
    }
}

async fn set(b: &Broker, key: &str, value: Option<&str>) {
    b.system.set(&admin(), &[(key.to_string(), value.map(str::to_string))]).await.unwrap();
}

/// Team project `team-a` owned by `alice`, with `bob` a member and `vic` a
/// viewer: (alice, bob, vic) as they act in it, and bob in his personal project.
struct Team {
    alice: Actor,
    bob: Actor,
    vic: Actor,
    bob_alone: Actor,
}

async fn team(b: &Broker) -> Team {
    images(b).await;
    let alice = add_user(b, "alice", false).await;
    let bob_alone = add_user(b, "bob", false).await;
    let vic = add_user(b, "vic", false).await;
    let p = project("team-a");
    b.projects.create(&alice, &p, "", None).await.unwrap();
    b.projects.set_member(&alice, &p, &bob_alone.name, ProjectRole::Member).await.unwrap();
    b.projects.set_member(&alice, &p, &vic.name, ProjectRole::Viewer).await.unwrap();
    Team {
        alice: b.projects.enter(alice, &p).await.unwrap(),
        bob: b.projects.enter(bob_alone.clone(), &p).await.unwrap(),
        vic: b.projects.enter(vic, &p).await.unwrap(),
        bob_alone,
    }
}

fn values(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

async fn set_policy(b: &Broker, who: &Actor, pairs: &[(&str, &str)]) -> Result<(), ServiceError> {
    b.provisioning.set_project_policy(who, &project("team-a"), &instance("sb"), &values(pairs)).await.map(|_| ())
}

/// One `linux` VM on `sb`, type `t2.small`, tagged `cost-center=rd`.
fn request() -> LaunchRequest {
    let mut r = LaunchRequest::new(instance("sb"), image_ref("linux"));
    r.instance_type = Some(InstanceType::parse("t2.small").unwrap());
    r.tags = LaunchTags::user(Tags::parse([("cost-center".to_string(), "rd".to_string())].into()).unwrap());
    r
}

/// The refusal of `r` by `who` (a launch and its dry run alike) as
/// (policy, field, message); nothing is recorded.
async fn refused(b: &Broker, who: &Actor, r: LaunchRequest) -> (&'static str, &'static str, String) {
    let before = vms(b).await.len();
    let dry = b.provisioning.check_launch(who, r.clone()).await.unwrap_err();
    let e = b.provisioning.launch(who, r).await.unwrap_err();
    assert_eq!(dry.to_string(), e.to_string(), "the dry run reports the same refusal");
    assert_eq!(vms(b).await.len(), before, "a refused launch records no VM");
    match e {
        ServiceError::PolicyViolation { policy, field, message } => (policy, field, message),
        other => panic!("not a policy refusal: {other:?}"),
    }
}

async fn allowed(b: &Broker, who: &Actor, r: LaunchRequest) -> Vec<Vm> {
    b.provisioning.check_launch(who, r.clone()).await.unwrap();
    b.provisioning.launch(who, r).await.unwrap().vms
}

async fn vms(b: &Broker) -> Vec<Vm> {
    b.provisioning.list(&admin(), VmQuery::default(), PageRequest::default()).await.unwrap().items
}

fn with(f: impl FnOnce(&mut LaunchRequest)) -> LaunchRequest {
    let mut r = request();
    f(&mut r);
    r
}

broker_test!(a_project_policy_refuses_what_the_instance_allows, |b: Broker| async move {
    let t = team(&b).await;
    set_policy(
        &b,
        &t.alice,
        &[
            ("policy.instance.types", "t2.micro, t2.small"),
            ("policy.images", "linux"),
            ("policy.tags.required", "cost-center=(rd|ops)"),
            ("policy.count.max", "2"),
            ("lease.max", "4h"),
        ],
    )
    .await
    .unwrap();
    // The instance sets nothing: the project's policies alone refuse, naming the project.
    let r = with(|r| r.instance_type = Some(InstanceType::parse("m5.large").unwrap()));
    assert_eq!(
        refused(&b, &t.bob, r.clone()).await,
        (
            "policy.instance.types",
            "instance_type",
            "instance type 'm5.large' is not allowed on 'sb' for project 'team-a' (policy.instance.types: t2.micro, t2.small)".into()
        )
    );
    let img = with(|r| r.image = image_ref("alpine"));
    assert_eq!(
        refused(&b, &t.bob, img.clone()).await,
        ("policy.images", "image", "image 'alpine' is not allowed on 'sb' for project 'team-a' (policy.images: linux)".into())
    );
    let untagged = with(|r| r.tags = LaunchTags::default());
    assert_eq!(
        refused(&b, &t.bob, untagged.clone()).await,
        (
            "policy.tags.required",
            "tags",
            "tag 'cost-center' is required on 'sb' for project 'team-a' (policy.tags.required: cost-center=(rd|ops))".into()
        )
    );
    let many = with(|r| r.count = CountRange::between(1, 3));
    assert_eq!(
        refused(&b, &t.bob, many.clone()).await,
        (
            "policy.count.max",
            "count",
            "a launch of up to 3 VMs is not allowed on 'sb' for project 'team-a': at most 2 per launch (policy.count.max: 2)".into()
        )
    );
    let long = with(|r| r.lease = Some(LeaseAsk::For(Duration::hours(5))));
    assert_eq!(
        refused(&b, &t.bob, long.clone()).await,
        ("lease.max", "lease", "a lease of 5h is not allowed on 'sb' for project 'team-a': at most 4h from now (lease.max: 4h)".into())
    );
    // What the project allows goes through; a launch asking for no lease gets the project's longest.
    let ok = allowed(&b, &t.bob, with(|r| r.count = CountRange::between(1, 2))).await;
    assert_eq!(ok.len(), 2);
    assert!(ok.iter().all(|v| v.project.as_str() == "team-a"));
    let lease = ok[0].lease.as_ref().expect("the project's lease.max gives every launch a lease");
    let span = lease.expires_at - ok[0].created_at;
    assert!(span <= Duration::hours(4) && span > Duration::hours(4) - Duration::minutes(1), "{span}");
    // Other projects are unaffected: Bob's personal project launches all of it.
    for r in [r, img, untagged, many, long] {
        allowed(&b, &t.bob_alone, r).await;
    }
    // Admins acting in the project are held to it too (the instance exempts nobody)...
    let root = add_user(&b, "root", true).await;
    let root = b.projects.enter(root, &project("team-a")).await.unwrap();
    let r = with(|r| r.instance_type = Some(InstanceType::parse("m5.large").unwrap()));
    assert_eq!(refused(&b, &root, r.clone()).await.0, "policy.instance.types");
    // ...unless the instance's policy.exempt.admins exempts them from both.
    set(&b, "sb.policy.exempt.admins", Some("true")).await;
    allowed(&b, &root, r.clone()).await;
    assert_eq!(refused(&b, &t.bob, r).await.0, "policy.instance.types", "members stay bound");
});

broker_test!(a_project_never_allows_what_the_instance_refuses, |b: Broker| async move {
    let t = team(&b).await;
    set(&b, "sb.policy.instance.types", Some("t2.*")).await;
    set(&b, "sb.policy.count.max", Some("2")).await;
    set(&b, "sb.lease.max", Some("1h")).await;
    // Looser values than the instance's are stored, but loosen nothing.
    set_policy(&b, &t.alice, &[("policy.instance.types", "t2.*, m5.*"), ("policy.count.max", "10"), ("lease.max", "1d")]).await.unwrap();
    let r = with(|r| r.instance_type = Some(InstanceType::parse("m5.large").unwrap()));
    assert_eq!(
        refused(&b, &t.bob, r).await,
        ("policy.instance.types", "instance_type", "instance type 'm5.large' is not allowed on 'sb' (policy.instance.types: t2.*)".into())
    );
    let (policy, _, message) = refused(&b, &t.bob, with(|r| r.count = CountRange::between(1, 3))).await;
    assert_eq!((policy, message.contains("for project")), ("policy.count.max", false), "{message}");
    let (policy, _, message) = refused(&b, &t.bob, with(|r| r.lease = Some(LeaseAsk::For(Duration::hours(2))))).await;
    assert_eq!(message, "a lease of 2h is not allowed on 'sb': at most 1h from now (lease.max: 1h)");
    assert_eq!(policy, "lease.max");
    // Within both: allowed, with the narrower default lease.
    let v = allowed(&b, &t.bob, request()).await;
    let span = v[0].lease.as_ref().unwrap().expires_at - v[0].created_at;
    assert!(span <= Duration::hours(1), "{span}");
    // The form sees both policies.
    let (inst, proj) = b.provisioning.policies_for(&t.bob, &instance("sb")).await.unwrap();
    assert_eq!(inst.instance_types_text(), "t2.*");
    let proj = proj.expect("the project's own");
    assert_eq!(
        (proj.instance_types_text(), proj.count_max, proj.project.as_ref()),
        ("t2.*, m5.*".into(), Some(10), Some(&project("team-a")))
    );
    assert!(b.provisioning.policies_for(&t.bob_alone, &instance("sb")).await.unwrap().1.is_none(), "Bob's own project has none");
});

broker_test!(owners_and_admins_set_policies_members_read_them, |b: Broker| async move {
    let t = team(&b).await;
    let carol = add_user(&b, "carol", false).await;
    // Members and viewers may not set them; a non-member is told nothing.
    for who in [&t.bob, &t.vic] {
        let e = set_policy(&b, who, &[("policy.count.max", "1")]).await.unwrap_err();
        assert!(matches!(e, ServiceError::Forbidden(_)), "{e:?}");
        let e = b.provisioning.delete_project_policy(who, &project("team-a"), &instance("sb")).await.unwrap_err();
        assert!(matches!(e, ServiceError::Forbidden(_)), "{e:?}");
    }
    let e = set_policy(&b, &carol, &[("policy.count.max", "1")]).await.unwrap_err();
    assert!(matches!(e, ServiceError::NotFound(Resource::Project(_))), "{e:?}");
    let e = b.provisioning.project_policies(&carol, &project("team-a")).await.unwrap_err();
    assert!(matches!(e, ServiceError::NotFound(Resource::Project(_))), "{e:?}");
    // Bad values are refused naming their parameter; nothing is stored.
    for (name, value) in
        [("policy.count.max", "0"), ("policy.count.max", "many"), ("lease.max", "forever"), ("policy.tags.required", "a=(")]
    {
        match set_policy(&b, &t.alice, &[(name, value)]).await.unwrap_err() {
            ServiceError::Invalid { field, message } => {
                assert_eq!(field, Some(name), "{message}");
                assert!(message.starts_with(&format!("{name}: ")), "{message}");
            }
            other => panic!("{other:?}"),
        }
    }
    let e = set_policy(&b, &t.alice, &[("policy.exempt.admins", "true")]).await.unwrap_err();
    assert!(e.to_string().contains("'policy.exempt.admins' is not a policy a project may set"), "{e}");
    let e = b.provisioning.set_project_policy(&t.alice, &project("team-a"), &instance("nope"), &values(&[])).await.unwrap_err();
    assert!(matches!(e, ServiceError::NotFound(Resource::Instance(_))), "{e:?}");
    // The owner sets them; every member reads them.
    let p = b
        .provisioning
        .set_project_policy(&t.alice, &project("team-a"), &instance("sb"), &values(&[("policy.count.max", "1"), ("policy.images", "")]))
        .await
        .unwrap();
    assert_eq!(p.values, values(&[("policy.count.max", "1")]));
    assert_eq!(p.updated_by.as_deref(), Some("alice"));
    for who in [&t.bob, &t.vic, &admin()] {
        let all = b.provisioning.project_policies(who, &project("team-a")).await.unwrap();
        let sb = all.iter().find(|p| p.instance.as_str() == "sb").unwrap();
        assert_eq!(sb.values, values(&[("policy.count.max", "1")]));
        assert!(all.iter().filter(|p| p.instance.as_str() != "sb").all(|p| p.values.is_empty()), "{all:?}");
    }
    assert_eq!(refused(&b, &t.bob, with(|r| r.count = CountRange::between(2, 2))).await.0, "policy.count.max");
    // Audited, naming the instance and the values.
    let log = b
        .audit
        .list(&admin(), AuditQuery { action: Some("project.update".into()), ..Default::default() }, PageRequest::default())
        .await
        .unwrap();
    assert!(log.items.iter().any(|e| e.actor == "alice" && e.detail == "launch policies on sb: policy.count.max=1"), "{:?}", log.items);
    // An admin replaces them; the owner removes them, and the launch goes through.
    set_policy(&b, &admin(), &[("policy.count.max", "3")]).await.unwrap();
    allowed(&b, &t.bob, with(|r| r.count = CountRange::between(2, 2))).await;
    b.provisioning.delete_project_policy(&t.alice, &project("team-a"), &instance("sb")).await.unwrap();
    assert!(b.provisioning.policies_for(&t.bob, &instance("sb")).await.unwrap().1.is_none());
    allowed(&b, &t.bob, with(|r| r.count = CountRange::between(5, 5))).await;
    let log = b
        .audit
        .list(&admin(), AuditQuery { action: Some("project.update".into()), ..Default::default() }, PageRequest::default())
        .await
        .unwrap();
    assert!(log.items.iter().any(|e| e.detail == "launch policies on sb: removed"), "{:?}", log.items);
});

broker_test!(a_projects_lease_max_caps_a_members_extension, |b: Broker| async move {
    let t = team(&b).await;
    set(&b, "sb.lease.default", Some("8h")).await;
    set_policy(&b, &t.alice, &[("lease.max", "2h")]).await.unwrap();
    let v = allowed(&b, &t.bob, request()).await.remove(0);
    let span = v.lease.as_ref().unwrap().expires_at - v.created_at;
    assert!(
        span <= Duration::hours(2) && span > Duration::hours(2) - Duration::minutes(1),
        "the default is cut to the project's max: {span}"
    );
    // A member asks for more than the project allows: refused naming the project.
    match b.provisioning.set_lease(&t.bob, &v.id, Some(LeaseAsk::For(Duration::hours(3)))).await.unwrap_err() {
        ServiceError::PolicyViolation { policy, field, message } => {
            assert_eq!((policy, field), ("lease.max", "lease"));
            assert_eq!(message, "a lease of 3h is not allowed on 'sb' for project 'team-a': at most 2h from now (lease.max: 2h)");
        }
        other => panic!("{other:?}"),
    }
    // One click extends within both; an admin is not capped.
    let now = b.clock.now();
    let v2 = b.provisioning.set_lease(&t.bob, &v.id, None).await.unwrap();
    let span = v2.lease.as_ref().unwrap().expires_at - now;
    assert!(span <= Duration::hours(2) + Duration::seconds(1), "{span}");
    let v3 = b.provisioning.set_lease(&admin(), &v.id, Some(LeaseAsk::For(Duration::hours(30)))).await.unwrap();
    assert!(v3.lease.as_ref().unwrap().expires_at - now > Duration::hours(29));
    // In Bob's own project the instance's terms alone apply.
    let mine = allowed(&b, &t.bob_alone, request()).await.remove(0);
    b.provisioning.set_lease(&t.bob_alone, &mine.id, Some(LeaseAsk::For(Duration::hours(3)))).await.unwrap();
});
