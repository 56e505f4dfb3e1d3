//! Launch policies per connector instance (issue 26), on SQLite and on
//! PostgreSQL: each `policy.*` parameter refuses a launch that breaks it,
//! in the admission, with a message naming the policy and the offending
//! value (and the same refusal from a dry run), and records no VM (the
//! refusal is audited); the
//! same launch is allowed when the policy allows it. Admins are held to
//! the policies unless `policy.exempt.admins` is true. A changed parameter
//! applies at once to the next launch; VMs that already break a new policy
//! are listed for admins, never stopped.

// Test code: panicking on an unexpected result is the point; helper
// functions outside #[test] are covered by this too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use cloudbroker_connector_api::SecretString;
use cloudbroker_core::domain::{ClientToken, PageRequest, Tags, VmStatus};
use cloudbroker_core::images::{ImageMapping, ImageSpec};
use cloudbroker_core::provisioning::{CountRange, InstanceType, LaunchRequest, LaunchTags, Vm, VmQuery};
use cloudbroker_core::testing::{image, image_ref, instance, user};
use cloudbroker_core::{Actor, Broker, ServiceError};
use std::collections::BTreeMap;

fn admin() -> Actor {
    Actor::system()
}

async fn add_user(b: &Broker, name: &str, is_admin: bool) -> Actor {
    let u = b.identity.create_user(&admin(), &user(name), &SecretString::new(format!("{name}-password")), is_admin).await.unwrap();
    Actor::new(u.name, is_admin)
}

/// Public images `linux` and `alpine` on `sb` and `sb2`.
async fn images(b: &Broker) {
    for (name, id) in [("linux", "ami-sandbox-debian-12"), ("alpine", "ami-sandbox-alpine-3")] {
        let mut mappings = BTreeMap::new();
        for on in ["sb", "sb2"] {
            mappings.insert(instance(on), ImageMapping { image_id: id.into(), instance_type: None, security_group: None });
        }
        let spec = ImageSpec { name: image(name), description: String::new(), os: "linux".into(), parent: None, mappings };
        b.images.put(&admin(), spec, true).await.unwrap();
    }
}

async fn set(b: &Broker, key: &str, value: Option<&str>) {
    b.system.set(&admin(), &[(key.to_string(), value.map(str::to_string))]).await.unwrap();
}

/// One `linux` VM on `sb`, type `t2.small`, tagged `cost-center=rd`, `owner=ann`.
fn request() -> LaunchRequest {
    let mut r = LaunchRequest::new(instance("sb"), image_ref("linux"));
    r.instance_type = Some(InstanceType::parse("t2.small").unwrap());
    r.tags = tags(&[("cost-center", "rd"), ("owner", "ann")]);
    r
}

fn tags(pairs: &[(&str, &str)]) -> LaunchTags {
    LaunchTags::user(Tags::parse(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()).unwrap())
}

/// The refusal of `r` by `who` (a launch and its dry run refuse alike),
/// as (policy, field, message); nothing is recorded.
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

broker_test!(instance_types_are_refused_unless_allowed, |b: Broker| async move {
    images(&b).await;
    let ann = add_user(&b, "ann", false).await;
    set(&b, "sb.policy.instance.types", Some("t2.*, m5.large")).await;
    let mut r = request();
    r.instance_type = Some(InstanceType::parse("m5.xlarge").unwrap());
    assert_eq!(
        refused(&b, &ann, r).await,
        (
            "policy.instance.types",
            "instance_type",
            "instance type 'm5.xlarge' is not allowed on 'sb' (policy.instance.types: t2.*, m5.large)".to_string()
        )
    );
    // A pattern, an exact type, and the default type (the broker's t2.micro) pass.
    allowed(&b, &ann, request()).await;
    let mut r = request();
    r.instance_type = Some(InstanceType::parse("m5.large").unwrap());
    allowed(&b, &ann, r).await;
    let mut r = request();
    r.instance_type = None;
    let v = allowed(&b, &ann, r).await;
    assert_eq!(v[0].instance_type, "t2.micro");
    let mut r = request();
    r.instance_type = Some(InstanceType::parse("c5.2xlarge").unwrap());
    assert_eq!(refused(&b, &ann, r).await.0, "policy.instance.types");
});

broker_test!(images_are_refused_unless_allowed_and_raw_ids_when_set, |b: Broker| async move {
    images(&b).await;
    let ann = add_user(&b, "ann", false).await;
    set(&b, "images.allow.raw", Some("true")).await;
    // No policy: a raw cloud id is launched.
    let mut raw = request();
    raw.image = image_ref("ami-sandbox-rocky-9");
    allowed(&b, &ann, raw.clone()).await;
    set(&b, "sb.policy.images", Some("linux")).await;
    let mut r = request();
    r.image = image_ref("alpine");
    assert_eq!(
        refused(&b, &ann, r).await,
        ("policy.images", "image", "image 'alpine' is not allowed on 'sb' (policy.images: linux)".to_string())
    );
    assert_eq!(
        refused(&b, &ann, raw).await,
        (
            "policy.images",
            "image",
            "image 'ami-sandbox-rocky-9' is a raw cloud image id, not allowed on 'sb' (policy.images: linux)".to_string()
        )
    );
    allowed(&b, &ann, request()).await;
    set(&b, "sb.policy.images", Some("linux, alpine")).await;
    let mut r = request();
    r.image = image_ref("alpine");
    allowed(&b, &ann, r).await;
});

broker_test!(required_tags_and_their_values, |b: Broker| async move {
    images(&b).await;
    let ann = add_user(&b, "ann", false).await;
    set(&b, "sb.policy.tags.required", Some("cost-center=(rd|ops|sales), owner")).await;
    let mut r = request();
    r.tags = tags(&[("cost-center", "rd")]);
    assert_eq!(
        refused(&b, &ann, r).await,
        (
            "policy.tags.required",
            "tags",
            "tag 'owner' is required on 'sb' (policy.tags.required: cost-center=(rd|ops|sales), owner)".to_string()
        )
    );
    let mut r = request();
    r.tags = tags(&[("cost-center", "hr"), ("owner", "ann")]);
    assert_eq!(
        refused(&b, &ann, r).await,
        (
            "policy.tags.required",
            "tags",
            "tag 'cost-center' = 'hr' is not allowed on 'sb' (policy.tags.required: cost-center=(rd|ops|sales), owner)".to_string()
        )
    );
    let mut r = request();
    r.tags = LaunchTags::default();
    assert_eq!(
        refused(&b, &ann, r).await.2,
        "tag 'cost-center' is required on 'sb' (policy.tags.required: cost-center=(rd|ops|sales), owner)"
    );
    let v = allowed(&b, &ann, request()).await;
    assert_eq!(v[0].tags.get("owner"), Some("ann"));
    // Any value of a key without allowed values; other tags are free.
    let mut r = request();
    r.tags = tags(&[("cost-center", "sales"), ("owner", "bob"), ("extra", "x")]);
    allowed(&b, &ann, r).await;
    // A required `Name` is the launch's name.
    set(&b, "sb.policy.tags.required", Some("Name")).await;
    assert_eq!(refused(&b, &ann, request()).await.2, "tag 'Name' is required on 'sb' (policy.tags.required: Name)");
    let mut r = request();
    r.name = "web".into();
    allowed(&b, &ann, r).await;
});

broker_test!(count_max_refuses_a_range_going_higher, |b: Broker| async move {
    images(&b).await;
    let ann = add_user(&b, "ann", false).await;
    set(&b, "sb.policy.count.max", Some("3")).await;
    let mut r = request();
    r.count = CountRange::between(1, 5);
    assert_eq!(
        refused(&b, &ann, r).await,
        (
            "policy.count.max",
            "count",
            "a launch of up to 5 VMs is not allowed on 'sb': at most 3 per launch (policy.count.max: 3)".to_string()
        )
    );
    let mut r = request();
    r.count = CountRange::exactly(3);
    assert_eq!(allowed(&b, &ann, r).await.len(), 3);
    // The refused launch (not its dry run) is audited with its reason.
    let log = b.audit.list(&admin(), Default::default(), PageRequest::default()).await.unwrap();
    let rejected: Vec<(&str, &str)> = log
        .items
        .iter()
        .filter(|e| e.action == "vm.launch" && e.outcome == "rejected")
        .map(|e| (e.actor.as_str(), e.detail.as_str()))
        .collect();
    assert_eq!(rejected, [("ann", "a launch of up to 5 VMs is not allowed on 'sb': at most 3 per launch (policy.count.max: 3)")]);
});

broker_test!(admins_are_held_to_policies_unless_exempt, |b: Broker| async move {
    images(&b).await;
    let ann = add_user(&b, "ann", false).await;
    let root = add_user(&b, "root", true).await;
    set(&b, "sb.policy.instance.types", Some("t2.micro")).await;
    assert_eq!(refused(&b, &root, request()).await.0, "policy.instance.types", "not exempt by default");
    set(&b, "sb.policy.exempt.admins", Some("true")).await;
    allowed(&b, &root, request()).await;
    assert_eq!(refused(&b, &ann, request()).await.0, "policy.instance.types", "users are never exempt");
    // The admin's VM breaks the policy: listed, not stopped.
    let listed = b.provisioning.policy_violations(&admin(), &instance("sb")).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].0.user.as_str(), "root");
    assert_eq!(listed[0].1, "instance type 't2.small' is not allowed on 'sb' (policy.instance.types: t2.micro)");
    let e = b.provisioning.policy_violations(&ann, &instance("sb")).await.unwrap_err();
    assert!(matches!(e, ServiceError::Forbidden(_)), "{e}");
});

broker_test!(a_changed_policy_applies_to_the_next_launch_only, |b: Broker| async move {
    images(&b).await;
    let ann = add_user(&b, "ann", false).await;
    let mut first = request();
    first.client_token = Some(ClientToken::parse("tok-1").unwrap());
    let before = allowed(&b, &ann, first.clone()).await;
    assert!(b.provisioning.policy_violations(&admin(), &instance("sb")).await.unwrap().is_empty());
    set(&b, "sb.policy.tags.required", Some("project")).await;
    let p = b.provisioning.policy_for(&instance("sb")).await.unwrap();
    assert_eq!(p.required_tags_text(), "project");
    assert_eq!(refused(&b, &ann, request()).await.0, "policy.tags.required", "the next launch is checked");
    // A retry of the launch admitted before the policy answers with its VMs.
    let replay = b.provisioning.launch(&ann, first).await.unwrap();
    assert!(!replay.created);
    assert_eq!(replay.vms.iter().map(|v| v.id.clone()).collect::<Vec<_>>(), before.iter().map(|v| v.id.clone()).collect::<Vec<_>>());
    // The VM launched before is not touched, only listed.
    let listed = b.provisioning.policy_violations(&admin(), &instance("sb")).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].0.id, before[0].id);
    assert_eq!(listed[0].1, "tag 'project' is required on 'sb' (policy.tags.required: project)");
    let vm = b.provisioning.get(&admin(), &before[0].id).await.unwrap();
    assert!(vm.status.is_live() && vm.status != VmStatus::Terminated, "{:?}", vm.status);
    // Another instance has its own policies (none).
    let mut other = request();
    other.instance = instance("sb2");
    allowed(&b, &ann, other).await;
    // Unset: allowed again at once.
    set(&b, "sb.policy.tags.required", None).await;
    allowed(&b, &ann, request()).await;
    assert!(b.provisioning.policy_for(&instance("sb")).await.unwrap().is_empty());
});

broker_test!(malformed_policies_are_refused_when_set, |b: Broker| async move {
    let e = b.system.set(&admin(), &[("sb.policy.tags.required".into(), Some("cost-center=(rd, ops)".into()))]).await.unwrap_err();
    assert!(e.to_string().contains("key=(a|b|c)"), "{e}");
    let e = b.system.set(&admin(), &[("sb.policy.count.max".into(), Some("0".into()))]).await.unwrap_err();
    assert!(e.to_string().contains("out of range"), "{e}");
    assert!(b.provisioning.policy_for(&instance("sb")).await.unwrap().is_empty());
    let e = b.provisioning.policy_for(&instance("nope")).await.unwrap_err();
    assert!(matches!(e, ServiceError::NotFound(_)), "{e}");
});
