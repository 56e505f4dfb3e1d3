//! Projects keep their things to their members, through every route and
//! every EC2 action. Project team-a: alice owns it, bob is a member, carol a
//! viewer; dave is in team-b only. Every JSON API operation of the
//! published document that names a project's thing (`{project}`, a VM's
//! `{id}`), and every EC2 action that reads or acts on a resource, is called
//! with team-a's resources:
//! - dave (in his own project, in team-b, or naming team-a) gets 404 / the
//!   EC2 `*.NotFound` code, never 2xx, never 400 (the body is not looked at
//!   before the project), and nothing of team-a changes;
//! - carol reads (200) and every mutating call is 403 / `UnauthorizedOperation`;
//! - bob acts on alice's resources (the VM routes and actions), but cannot
//!   manage the project (403);
//! - the project credential's secret is never readable by members;
//! - once bob is removed from team-a, his next call in team-a (token with
//!   `?project=team-a`, and his team-a access key) fails at once on the
//!   replica that removed him, and within `KEY_CACHE_TTL` on another one.
//!
//! The UI's project pages and forms get the same treatment with sessions
//! (the header's switcher enters team-a for carol and bob, not for dave).
//! The tables are data: a new route is swept as soon as the document has
//! it, and a new EC2 action fails the sweep until it is given a row.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::zombie_processes)]

mod common;

use cloudbroker_core::domain::VmId;
use cloudbroker_ec2_api::action::Action;
use cloudbroker_ec2_api::ids::{image_id, instance_id};
use common::{TestApp, SUPER_PW};
use reqwest::Method;
use serde_json::{json, Map, Value};

const TEAM: &str = "team-a";
const CLOUD_KEY: &str = "team-a-cloud-account";
const CLOUD_SECRET: &str = "team-a-cloud-secret-never-shown";

/// Follows a `$ref` into the document's components.
fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(r) => resolve(doc, doc.pointer(&r.replacen('#', "", 1)).unwrap_or(&Value::Null)),
        None => schema,
    }
}

/// A value valid by `schema` (required properties only, smallest choices),
/// with the project's own names where a field takes one.
fn sample(doc: &Value, schema: &Value) -> Value {
    let s = resolve(doc, schema);
    if let Some(e) = s.get("enum").and_then(Value::as_array) {
        // A role: the least one (`viewer`), so a sample never grants more.
        return e.iter().find(|v| *v == "viewer").or(e.first()).cloned().unwrap_or(Value::Null);
    }
    for key in ["oneOf", "anyOf", "allOf"] {
        if let Some(first) = s.get(key).and_then(Value::as_array).and_then(|v| v.iter().find(|x| x.get("type") != Some(&json!("null")))) {
            return sample(doc, first);
        }
    }
    let ty = match s.get("type") {
        Some(Value::Array(types)) => types.iter().find(|t| *t != "null").cloned().unwrap_or(Value::Null),
        Some(t) => t.clone(),
        None if s.get("properties").is_some() => json!("object"),
        None => Value::Null,
    };
    match ty.as_str() {
        Some("object") => {
            let mut out = Map::new();
            let required: Vec<&str> =
                s.get("required").and_then(Value::as_array).map(|r| r.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
            for (name, prop) in s.get("properties").and_then(Value::as_object).into_iter().flatten() {
                if required.contains(&name.as_str()) {
                    out.insert(name.clone(), sample(doc, prop));
                }
            }
            Value::Object(out)
        }
        Some("string") => {
            let min = s.get("minLength").and_then(Value::as_u64).unwrap_or(1).max(12) as usize;
            json!("a".repeat(min))
        }
        Some("integer") | Some("number") => json!(s.get("minimum").and_then(Value::as_i64).unwrap_or(1).max(1)),
        Some("boolean") => json!(false),
        Some("array") => json!([]),
        _ => Value::Null,
    }
}

/// The first `<tag>value</tag>` of an EC2 answer.
fn xml_value(xml: &str, tag: &str) -> Option<String> {
    let start = xml.find(&format!("<{tag}>"))? + tag.len() + 2;
    let end = xml[start..].find(&format!("</{tag}>"))?;
    Some(xml[start..start + end].to_string())
}

/// The error code of an EC2 answer (`None`: it succeeded).
fn ec2_code(xml: &str) -> Option<String> {
    xml_value(xml, "Code")
}

type Key = (String, String);

struct Team {
    admin: String,
    alice: String,
    bob: String,
    carol: String,
    dave: String,
    /// A VM of team-a's for the JSON sweep, and one for the EC2 sweep.
    vm: String,
    vm_ec2: String,
    /// team-a's EC2 things, made by alice with her team-a key.
    instance: String,
    allocation: String,
    public_ip: String,
    association: String,
    volume: String,
    snapshot: String,
    vpc: String,
    subnet: String,
    group: String,
    key_pair: String,
    image: String,
    alice_key: Key,
    bob_key: Key,
    carol_key: Key,
    dave_key: Key,
    dave_personal_key: Key,
}

async fn access_key(app: &TestApp, token: &str, who: &str, project: Option<&str>) -> Key {
    let body = project.map(|p| json!({ "project": p }));
    let (s, k) = app.call(Method::POST, &format!("/api/v1/users/{who}/access-keys"), token, body).await;
    assert_eq!(s, 201, "{who}'s key for {project:?}: {k}");
    (k["access_key_id"].as_str().unwrap().to_string(), k["secret_access_key"].as_str().unwrap().to_string())
}

async fn ec2_ok(app: &TestApp, key: &Key, body: &str) -> String {
    let (s, xml) = app.ec2_call(key, "sb", &format!("{body}&Version=2016-11-15")).await;
    assert_eq!(s, 200, "{body}: {xml}");
    xml
}

async fn setup(app: &TestApp) -> Team {
    let admin = app.token("super", SUPER_PW).await;
    let image = json!({"name": "ubuntu", "mappings": {"sb": {"image_id": "ami-sandbox-ubuntu-2204", "instance_type": "t2.small"}}});
    assert_eq!(app.call(Method::POST, "/api/v1/images", &admin, Some(image)).await.0, 201);
    let alice = app.user(&admin, "alice").await;
    let bob = app.user(&admin, "bob").await;
    let carol = app.user(&admin, "carol").await;
    let dave = app.user(&admin, "dave").await;

    // team-a: alice creates it (its owner) and adds bob and carol; team-b is dave's.
    let (s, b) = app.call(Method::POST, "/api/v1/projects", &alice, Some(json!({"name": TEAM, "description": "team A"}))).await;
    assert_eq!(s, 201, "{b}");
    for (who, role) in [("bob", "member"), ("carol", "viewer")] {
        let (s, b) = app.call(Method::PUT, &format!("/api/v1/projects/{TEAM}/members/{who}"), &alice, Some(json!({ "role": role }))).await;
        assert_eq!(s, 200, "{who}: {b}");
    }
    let (s, b) = app.call(Method::POST, "/api/v1/projects", &dave, Some(json!({"name": "team-b"}))).await;
    assert_eq!(s, 201, "{b}");

    // team-a's credential on sb2, its quota on sb, two VMs on sb.
    let creds = json!({"access_key_id": CLOUD_KEY, "secret_access_key": CLOUD_SECRET});
    let (s, b) = app.call(Method::PUT, &format!("/api/v1/projects/{TEAM}/credentials/sb2"), &alice, Some(creds)).await;
    assert_eq!(s, 200, "{b}");
    // (Quotas are the admins' to set, for projects as for users.)
    let (s, b) = app.call(Method::PUT, &format!("/api/v1/projects/{TEAM}/quotas/sb"), &admin, Some(json!({"limit": 10}))).await;
    assert_eq!(s, 200, "{b}");
    let mut vms = Vec::new();
    for _ in 0..2 {
        let (s, b) = app
            .call(Method::POST, &format!("/api/v1/vms?project={TEAM}"), &alice, Some(json!({"instance": "sb", "image": "ubuntu"})))
            .await;
        assert_eq!(s, 201, "{b}");
        assert_eq!(b["vms"][0]["project"], TEAM, "{b}");
        vms.push(b["vms"][0]["id"].as_str().unwrap().to_string());
    }

    // Both run before anything is swept (what the owner sees must not move on its own).
    for vm in &vms {
        let mut status = String::new();
        for _ in 0..50 {
            let (_, b) = app.call(Method::GET, &format!("/api/v1/vms/{vm}?project={TEAM}"), &alice, None).await;
            status = b["state"].as_str().unwrap_or_default().to_string();
            if status == "running" {
                break;
            }
            app.broker.provisioning.reconcile("test").await.unwrap();
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        let (_, b) = app.call(Method::GET, &format!("/api/v1/vms/{vm}?project={TEAM}"), &alice, None).await;
        assert_eq!(status, "running", "{vm}: {b}");
    }

    let alice_key = access_key(app, &alice, "alice", Some(TEAM)).await;
    let bob_key = access_key(app, &bob, "bob", Some(TEAM)).await;
    let carol_key = access_key(app, &carol, "carol", Some(TEAM)).await;
    let dave_key = access_key(app, &dave, "dave", Some("team-b")).await;
    let dave_personal_key = access_key(app, &dave, "dave", None).await;

    // team-a's EC2 things, made with alice's team-a key.
    let instance = instance_id(&VmId::parse(&vms[1]).unwrap());
    let pk = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGdvb2Qga2V5IGZvciB0ZXN0cyBvbmx5IG9rIG9rIG9r team";
    let material = base64_encode(pk.as_bytes());
    ec2_ok(app, &alice_key, &format!("Action=ImportKeyPair&KeyName=team-key&PublicKeyMaterial={}", urlencode(&material))).await;
    let xml = ec2_ok(app, &alice_key, "Action=AllocateAddress&Domain=vpc").await;
    let allocation = xml_value(&xml, "allocationId").unwrap();
    let public_ip = xml_value(&xml, "publicIp").unwrap();
    // The VM boots at once in the sandbox; wait until the broker knows it runs.
    let mut association = String::new();
    for _ in 0..50 {
        let (s, xml) = app
            .ec2_call(
                &alice_key,
                "sb",
                &format!("Action=AssociateAddress&Version=2016-11-15&AllocationId={allocation}&InstanceId={instance}"),
            )
            .await;
        if s == 200 {
            association = xml_value(&xml, "associationId").unwrap();
            break;
        }
        app.broker.provisioning.reconcile("test").await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(!association.is_empty(), "alice associates team-a's address");
    ec2_ok(app, &alice_key, &format!("Action=CreateTags&ResourceId.1={instance}&Tag.1.Key=team&Tag.1.Value=a")).await;
    let xml = ec2_ok(app, &alice_key, "Action=CreateVolume&AvailabilityZone=sba&Size=1").await;
    let volume = xml_value(&xml, "volumeId").unwrap();
    let xml = ec2_ok(app, &alice_key, &format!("Action=CreateSnapshot&VolumeId={volume}")).await;
    let snapshot = xml_value(&xml, "snapshotId").unwrap();
    let xml = ec2_ok(app, &alice_key, "Action=CreateVpc&CidrBlock=10.9.0.0/16").await;
    let vpc = xml_value(&xml, "vpcId").unwrap();
    let xml = ec2_ok(app, &alice_key, &format!("Action=CreateSubnet&VpcId={vpc}&CidrBlock=10.9.1.0/24&AvailabilityZone=sba")).await;
    let subnet = xml_value(&xml, "subnetId").unwrap();
    let xml = ec2_ok(app, &alice_key, &format!("Action=CreateSecurityGroup&GroupName=team-web&GroupDescription=web&VpcId={vpc}")).await;
    let group = xml_value(&xml, "groupId").unwrap();
    let xml = ec2_ok(app, &alice_key, "Action=RegisterImage&Name=team-rocky&ImageLocation=ami-sandbox-rocky-9").await;
    let image = xml_value(&xml, "imageId").unwrap();

    Team {
        admin,
        alice,
        bob,
        carol,
        dave,
        vm: vms[0].clone(),
        vm_ec2: vms[1].clone(),
        instance,
        allocation,
        public_ip,
        association,
        volume,
        snapshot,
        vpc,
        subnet,
        group,
        key_pair: "team-key".into(),
        image,
        alice_key,
        bob_key,
        carol_key,
        dave_key,
        dave_personal_key,
    }
}

fn base64_encode(b: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(b)
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|c| match c {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (c as char).to_string(),
            _ => format!("%{c:02X}"),
        })
        .collect()
}

/// Everything of team-a's, as its owner sees it.
async fn team_view(app: &TestApp, t: &Team) -> Vec<(String, u16, Value)> {
    let mut out = Vec::new();
    for path in [
        format!("/api/v1/vms/{}?project={TEAM}", t.vm),
        format!("/api/v1/vms/{}?project={TEAM}", t.vm_ec2),
        format!("/api/v1/projects/{TEAM}"),
        format!("/api/v1/projects/{TEAM}/members"),
        format!("/api/v1/projects/{TEAM}/credentials"),
        format!("/api/v1/projects/{TEAM}/quotas"),
    ] {
        let (s, mut b) = app.call(Method::GET, &path, &t.alice, None).await;
        if let Some(o) = b.as_object_mut() {
            o.remove("updated_at");
        }
        out.push((path, s, b));
    }
    // The EC2 things, with alice's team-a key.
    for body in [
        format!("Action=DescribeInstances&InstanceId.1={}", t.instance),
        format!("Action=DescribeAddresses&AllocationId.1={}", t.allocation),
        format!("Action=DescribeVolumes&VolumeId.1={}", t.volume),
        format!("Action=DescribeKeyPairs&KeyName.1={}", t.key_pair),
        format!("Action=DescribeImages&ImageId.1={}", t.image),
    ] {
        let (s, xml) = app.ec2_call(&t.alice_key, "sb", &format!("{body}&Version=2016-11-15")).await;
        // Request ids and times differ per answer.
        let kept: String = xml
            .lines()
            .filter(|l| !l.contains("requestId") && !l.contains("Time>") && !l.contains("<launchTime>") && !l.contains("createTime"))
            .collect();
        out.push((body, s, Value::String(kept)));
    }
    out
}

/// Who calls, in which project (the query's `project`), and what they get.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Expect {
    /// 404 on every operation.
    NotFound,
    /// GET 200, everything else 403.
    Reads,
    /// GET 200; the VM's operations reach it (neither 403 nor 404); the
    /// project's management 403.
    Acts,
}

/// The JSON API operations of the document that name team-a's things.
fn team_operations(doc: &Value, t: &Team) -> Vec<(Method, String, Option<Value>, bool)> {
    let mut out = Vec::new();
    for (template, item) in doc["paths"].as_object().unwrap() {
        let vm_route = template.contains("/vms/{id}");
        if !template.contains("{project}") && !vm_route {
            continue;
        }
        assert!(!template.contains("{id}") || vm_route, "{template}: the sweep does not know which of team-a's ids to use here; add it");
        // `{user}`: alice, the owner (a member may leave a project; nobody
        // else may change or remove her).
        let path = template.replace("{project}", TEAM).replace("{id}", &t.vm).replace("{user}", "alice").replace("{instance}", "sb2");
        for (method, op) in item.as_object().unwrap() {
            if !matches!(method.as_str(), "get" | "post" | "put" | "patch" | "delete") {
                continue;
            }
            let m = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let body = op.pointer("/requestBody/content/application~1json/schema").map(|s| sample(doc, s));
            out.push((m, path.clone(), body, vm_route));
        }
    }
    out
}

/// Calls every team-a operation as `token` with the query `project`;
/// answers what did not go as `expect` says.
async fn sweep_api(
    app: &TestApp,
    ops: &[(Method, String, Option<Value>, bool)],
    token: &str,
    project: Option<&str>,
    expect: Expect,
) -> Vec<String> {
    let mut failures = Vec::new();
    for (m, path, body, vm_route) in ops {
        let full = match project {
            Some(p) => format!("{path}?project={p}"),
            None => path.clone(),
        };
        let (status, answer) = app.call(m.clone(), &full, token, body.clone()).await;
        let ok = match (expect, *m == Method::GET) {
            (Expect::NotFound, _) => status == 404,
            (Expect::Reads, true) | (Expect::Acts, true) => status == 200,
            (Expect::Reads, false) => status == 403,
            // Removing a VM's lease is the admins' alone: a member is refused (403), not "not found".
            (Expect::Acts, false) if *vm_route && *m == Method::DELETE && path.ends_with("/lease") => status == 403,
            (Expect::Acts, false) if *vm_route => !matches!(status, 400 | 401 | 403 | 404) && status < 500,
            (Expect::Acts, false) => status == 403,
        };
        if !ok {
            failures
                .push(format!("{expect:?} {m} {full} {} -> {status} {answer}", body.as_ref().map(|b| b.to_string()).unwrap_or_default()));
        }
        let text = answer.to_string();
        assert!(!text.contains(CLOUD_SECRET) && !text.contains(CLOUD_KEY), "{m} {full} shows the project's credential: {text}");
    }
    failures
}

/// What an EC2 action is to the sweep.
#[derive(Clone, Copy, Debug)]
enum Kind {
    /// Names no resource of a project (regions, zones, instance types...).
    Nothing,
    /// Makes a resource in the key's project: a viewer is refused.
    Creates,
    /// Reads team-a's resource: a non-member gets `code` (or, for a
    /// filter, an answer without it), a viewer reads it.
    Reads(&'static str),
    /// Acts on team-a's resource: a non-member gets `code` (`""`: EC2
    /// answers success whether or not it exists, and nothing changes), a
    /// viewer `UnauthorizedOperation`.
    Acts(&'static str),
}

/// Every EC2 action, with parameters naming team-a's things (`{instance}`,
/// `{allocation}`, `{association}`, `{ip}`, `{volume}`, `{key}`, `{image}`;
/// `{ubuntu}` is the broker's public image, `{who}` the caller),
/// in an order a member can run them in (reads, makes, acts, ends).
const EC2_ACTIONS: &[(&str, &str, Kind)] = &[
    ("DescribeRegions", "", Kind::Nothing),
    ("DescribeAvailabilityZones", "", Kind::Nothing),
    ("DescribeAccountAttributes", "", Kind::Nothing),
    ("DescribeInstanceTypes", "", Kind::Nothing),
    ("DescribeInstances", "InstanceId.1={instance}", Kind::Reads("InvalidInstanceID.NotFound")),
    ("DescribeInstanceStatus", "InstanceId.1={instance}", Kind::Reads("InvalidInstanceID.NotFound")),
    ("DescribeTags", "Filter.1.Name=resource-id&Filter.1.Value.1={instance}", Kind::Reads("")),
    ("DescribeImages", "ImageId.1={image}", Kind::Reads("InvalidAMIID.NotFound")),
    ("DescribeKeyPairs", "KeyName.1={key}", Kind::Reads("InvalidKeyPair.NotFound")),
    ("DescribeAddresses", "AllocationId.1={allocation}", Kind::Reads("InvalidAllocationID.NotFound")),
    ("DescribeVolumes", "VolumeId.1={volume}", Kind::Reads("InvalidVolume.NotFound")),
    ("DescribeSnapshots", "SnapshotId.1={snapshot}", Kind::Reads("InvalidSnapshot.NotFound")),
    ("DescribeImageAttribute", "ImageId={image}&Attribute=description", Kind::Reads("InvalidAMIID.NotFound")),
    ("DescribeVpcs", "VpcId.1={vpc}", Kind::Reads("InvalidVpcID.NotFound")),
    ("DescribeSubnets", "SubnetId.1={subnet}", Kind::Reads("InvalidSubnetID.NotFound")),
    ("DescribeSecurityGroups", "GroupId.1={group}", Kind::Reads("InvalidGroup.NotFound")),
    ("DescribeSecurityGroupRules", "Filter.1.Name=group-id&Filter.1.Value.1={group}", Kind::Reads("")),
    ("DescribeInstanceAttribute", "InstanceId={instance}&Attribute=instanceType", Kind::Reads("InvalidInstanceID.NotFound")),
    ("GetConsoleOutput", "InstanceId={instance}", Kind::Reads("InvalidInstanceID.NotFound")),
    ("DescribeInstanceTypeOfferings", "", Kind::Nothing),
    ("RunInstances", "ImageId={ubuntu}&MinCount=1&MaxCount=1", Kind::Creates),
    ("CreateKeyPair", "KeyName=made-by-{who}", Kind::Creates),
    ("ImportKeyPair", "KeyName=imported-by-{who}&PublicKeyMaterial={material}", Kind::Creates),
    ("AllocateAddress", "Domain=vpc", Kind::Creates),
    ("CreateVolume", "AvailabilityZone=sba&Size=1", Kind::Creates),
    ("RegisterImage", "Name=registered-by-{who}&ImageLocation=ami-sandbox-alpine-3", Kind::Creates),
    ("CreateVpc", "CidrBlock=10.20.0.0/16", Kind::Creates),
    ("CreateSecurityGroup", "GroupName=group-by-{who}&GroupDescription=made%20in%20a%20sweep", Kind::Creates),
    ("CreateSubnet", "VpcId={vpc}&CidrBlock=10.9.2.0/24&AvailabilityZone=sba", Kind::Acts("InvalidVpcID.NotFound")),
    ("ModifySubnetAttribute", "SubnetId={subnet}&MapPublicIpOnLaunch.Value=true", Kind::Acts("InvalidSubnetID.NotFound")),
    (
        "AuthorizeSecurityGroupIngress",
        "GroupId={group}&IpPermissions.1.IpProtocol=tcp&IpPermissions.1.FromPort=22&IpPermissions.1.ToPort=22&IpPermissions.1.IpRanges.1.CidrIp=10.0.0.0/8",
        Kind::Acts("InvalidGroup.NotFound"),
    ),
    (
        "RevokeSecurityGroupIngress",
        "GroupId={group}&IpPermissions.1.IpProtocol=tcp&IpPermissions.1.FromPort=22&IpPermissions.1.ToPort=22&IpPermissions.1.IpRanges.1.CidrIp=10.0.0.0/8",
        Kind::Acts("InvalidGroup.NotFound"),
    ),
    (
        "AuthorizeSecurityGroupEgress",
        "GroupId={group}&IpPermissions.1.IpProtocol=tcp&IpPermissions.1.FromPort=443&IpPermissions.1.ToPort=443&IpPermissions.1.IpRanges.1.CidrIp=10.0.0.0/8",
        Kind::Acts("InvalidGroup.NotFound"),
    ),
    (
        "RevokeSecurityGroupEgress",
        "GroupId={group}&IpPermissions.1.IpProtocol=tcp&IpPermissions.1.FromPort=443&IpPermissions.1.ToPort=443&IpPermissions.1.IpRanges.1.CidrIp=10.0.0.0/8",
        Kind::Acts("InvalidGroup.NotFound"),
    ),
    ("ModifyInstanceAttribute", "InstanceId={instance}&DisableApiTermination.Value=false", Kind::Acts("InvalidInstanceID.NotFound")),
    ("CreateTags", "ResourceId.1={instance}&Tag.1.Key=owner&Tag.1.Value={who}", Kind::Acts("InvalidInstanceID.NotFound")),
    ("DeleteTags", "ResourceId.1={instance}&Tag.1.Key=owner", Kind::Acts("InvalidInstanceID.NotFound")),
    ("StopInstances", "InstanceId.1={instance}", Kind::Acts("InvalidInstanceID.NotFound")),
    ("StartInstances", "InstanceId.1={instance}", Kind::Acts("InvalidInstanceID.NotFound")),
    ("RebootInstances", "InstanceId.1={instance}", Kind::Acts("InvalidInstanceID.NotFound")),
    ("AttachVolume", "VolumeId={volume}&InstanceId={instance}&Device=/dev/sdf", Kind::Acts("InvalidVolume.NotFound")),
    ("DetachVolume", "VolumeId={volume}", Kind::Acts("InvalidVolume.NotFound")),
    ("CreateSnapshot", "VolumeId={volume}", Kind::Acts("InvalidVolume.NotFound")),
    ("DeleteSnapshot", "SnapshotId={snapshot}", Kind::Acts("InvalidSnapshot.NotFound")),
    ("CreateImage", "InstanceId={instance}&Name=image-by-{who}", Kind::Acts("InvalidInstanceID.NotFound")),
    ("ModifyImageAttribute", "ImageId={image}&LaunchPermission.Add.1.UserId={who}", Kind::Acts("InvalidAMIID.NotFound")),
    ("DisassociateAddress", "AssociationId={association}", Kind::Acts("InvalidAssociationID.NotFound")),
    ("AssociateAddress", "AllocationId={allocation}&InstanceId={instance}", Kind::Acts("InvalidAllocationID.NotFound")),
    ("DeleteKeyPair", "KeyName={key}", Kind::Acts("")),
    ("DeregisterImage", "ImageId={image}", Kind::Acts("InvalidAMIID.NotFound")),
    ("DeleteVolume", "VolumeId={volume}", Kind::Acts("InvalidVolume.NotFound")),
    ("DeleteSecurityGroup", "GroupId={group}", Kind::Acts("InvalidGroup.NotFound")),
    ("DeleteSubnet", "SubnetId={subnet}", Kind::Acts("InvalidSubnetID.NotFound")),
    ("DeleteVpc", "VpcId={vpc}", Kind::Acts("InvalidVpcID.NotFound")),
    ("ReleaseAddress", "AllocationId={allocation}", Kind::Acts("InvalidAllocationID.NotFound")),
    ("TerminateInstances", "InstanceId.1={instance}", Kind::Acts("InvalidInstanceID.NotFound")),
];

/// The codes that say "no such thing here", "not allowed" or "who are you".
fn refused(code: Option<&str>) -> bool {
    code.is_some_and(|c| c.ends_with(".NotFound") || c == "UnauthorizedOperation" || c == "AuthFailure")
}

/// Runs every EC2 action with `key` (whose holder is `who`) on team-a's
/// things; answers what did not go as `expect` says.
async fn sweep_ec2(app: &TestApp, t: &Team, who: &str, key: &Key, expect: Expect) -> Vec<String> {
    let material = urlencode(&base64_encode(
        format!("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGdvb2Qga2V5IGZvciB0ZXN0cyBvbmx5IG9rIG9rIG9r {who}").as_bytes(),
    ));
    let mut failures = Vec::new();
    for (action, params, kind) in EC2_ACTIONS {
        let params = params
            .replace("{instance}", &t.instance)
            .replace("{allocation}", &t.allocation)
            .replace("{association}", &t.association)
            .replace("{ip}", &t.public_ip)
            .replace("{volume}", &t.volume)
            .replace("{snapshot}", &t.snapshot)
            .replace("{vpc}", &t.vpc)
            .replace("{subnet}", &t.subnet)
            .replace("{group}", &t.group)
            .replace("{key}", &t.key_pair)
            .replace("{image}", &t.image)
            .replace("{who}", who)
            .replace("{ubuntu}", &image_id("ubuntu"))
            .replace("{material}", &material);
        let body = format!("Action={action}&Version=2016-11-15{}{params}", if params.is_empty() { "" } else { "&" });
        let (status, xml) = app.ec2_call(key, "sb", &body).await;
        let code = ec2_code(&xml);
        let code = code.as_deref();
        let ok = match (expect, kind) {
            (_, Kind::Nothing) => status == 200,
            (Expect::NotFound, Kind::Creates) => true, // made in the caller's own project
            (Expect::NotFound, Kind::Reads("")) => status == 200 && !xml.contains(&t.instance) && !xml.contains(&t.group),
            (Expect::NotFound, Kind::Reads(want)) | (Expect::NotFound, Kind::Acts(want)) if !want.is_empty() => code == Some(*want),
            (Expect::NotFound, Kind::Acts(_)) => status == 200, // answered alike; team-a's pair is checked to be there after
            (Expect::NotFound, Kind::Reads(_)) => unreachable!(),
            (Expect::Reads, Kind::Reads(_)) => {
                status == 200
                    && xml.contains(match *action {
                        "DescribeImages" => t.image.as_str(),
                        "DescribeKeyPairs" => t.key_pair.as_str(),
                        "DescribeAddresses" => t.allocation.as_str(),
                        "DescribeVolumes" => t.volume.as_str(),
                        "DescribeSnapshots" => t.snapshot.as_str(),
                        "DescribeVpcs" => t.vpc.as_str(),
                        "DescribeSubnets" => t.subnet.as_str(),
                        "DescribeSecurityGroups" | "DescribeSecurityGroupRules" => t.group.as_str(),
                        "DescribeImageAttribute" => t.image.as_str(),
                        _ => t.instance.as_str(),
                    })
            }
            (Expect::Reads, Kind::Creates | Kind::Acts(_)) => code == Some("UnauthorizedOperation") && status == 403,
            (Expect::Acts, _) => !refused(code) && status < 500,
        };
        if !ok {
            failures.push(format!("{who} ({expect:?}) {body} -> {status} {}", code.unwrap_or("ok")));
        }
        if status == 200 && xml.contains(CLOUD_SECRET) {
            panic!("{action} shows the project's cloud secret");
        }
    }
    failures
}

app_test!(projects_keep_their_things_to_their_members, |app: TestApp| async move {
    let t = setup(&app).await;
    let before = team_view(&app, &t).await;
    assert!(before.iter().all(|(_, s, _)| *s == 200), "{before:?}");
    let doc: Value = app.http.get(app.url("/api/v1/openapi.json")).send().await.unwrap().json().await.unwrap();
    let ops = team_operations(&doc, &t);
    assert!(ops.len() >= 15, "only {} operations name a project's thing", ops.len());

    // Every EC2 action has a row.
    for a in Action::ALL {
        assert!(EC2_ACTIONS.iter().any(|(name, _, _)| *name == a.name()), "EC2 action {} has no row in the sweep; add it", a.name());
    }

    // dave: nothing of team-a exists for him, whichever project he is in.
    let mut failures = Vec::new();
    for project in [None, Some("team-b"), Some(TEAM)] {
        failures.extend(sweep_api(&app, &ops, &t.dave, project, Expect::NotFound).await);
    }
    // bob in his personal project does not see team-a's VM either.
    let vm_ops: Vec<_> = ops.iter().filter(|o| o.3).cloned().collect();
    failures.extend(sweep_api(&app, &vm_ops, &t.bob, None, Expect::NotFound).await);
    failures.extend(sweep_ec2(&app, &t, "dave", &t.dave_key, Expect::NotFound).await);
    failures.extend(sweep_ec2(&app, &t, "dave", &t.dave_personal_key, Expect::NotFound).await);
    // carol: reads everything of team-a's, changes nothing.
    failures.extend(sweep_api(&app, &ops, &t.carol, Some(TEAM), Expect::Reads).await);
    failures.extend(sweep_ec2(&app, &t, "carol", &t.carol_key, Expect::Reads).await);

    // The calls that take the project from the query or the launch body.
    let launch = json!({"instance": "sb", "image": "ubuntu"});
    let in_body = json!({"instance": "sb", "image": "ubuntu", "project": TEAM});
    let project_calls: Vec<(&str, Method, String, Option<Value>, u16)> = vec![
        ("dave", Method::GET, format!("/api/v1/vms?project={TEAM}"), None, 404),
        ("dave", Method::POST, format!("/api/v1/vms?project={TEAM}"), Some(launch.clone()), 404),
        ("dave", Method::POST, "/api/v1/vms".into(), Some(in_body.clone()), 404),
        ("dave", Method::GET, format!("/api/v1/images?project={TEAM}"), None, 404),
        ("dave", Method::GET, format!("/api/v1/audit?project={TEAM}"), None, 404),
        ("dave", Method::POST, "/api/v1/users/dave/access-keys".into(), Some(json!({ "project": TEAM })), 404),
        ("dave", Method::GET, "/api/v1/projects/team-a".into(), None, 404),
        ("carol", Method::GET, format!("/api/v1/vms?project={TEAM}"), None, 200),
        ("carol", Method::POST, format!("/api/v1/vms?project={TEAM}"), Some(launch.clone()), 403),
        ("carol", Method::POST, "/api/v1/vms".into(), Some(in_body.clone()), 403),
        ("carol", Method::GET, format!("/api/v1/audit?project={TEAM}"), None, 403),
        ("bob", Method::GET, format!("/api/v1/vms?project={TEAM}"), None, 200),
        ("bob", Method::GET, format!("/api/v1/audit?project={TEAM}"), None, 403),
        ("bob", Method::POST, "/api/v1/vms?project=team-b".into(), Some(launch.clone()), 404),
        ("alice", Method::GET, format!("/api/v1/audit?project={TEAM}"), None, 200),
    ];
    for (who, m, path, body, want) in &project_calls {
        let token = match *who {
            "alice" => &t.alice,
            "bob" => &t.bob,
            "carol" => &t.carol,
            _ => &t.dave,
        };
        let (s, b) = app.call(m.clone(), path, token, body.clone()).await;
        if s != *want {
            failures.push(format!("{who} {m} {path} -> {s} (want {want}) {b}"));
        }
        if s == 200 && path.starts_with("/api/v1/vms?") {
            let ids: Vec<&str> = b["vms"].as_array().unwrap().iter().filter_map(|v| v["id"].as_str()).collect();
            assert!(ids.contains(&t.vm.as_str()) && ids.contains(&t.vm_ec2.as_str()), "{who} lists team-a's VMs: {b}");
        }
    }
    assert!(failures.is_empty(), "the project sweep failed:\n{}", failures.join("\n"));
    // Nothing of team-a's changed.
    assert_eq!(team_view(&app, &t).await, before);
    let (s, dave_vms) = app.call(Method::GET, "/api/v1/vms?project=team-b", &t.dave, None).await;
    assert_eq!(s, 200);
    assert!(!dave_vms.to_string().contains(&t.vm), "{dave_vms}");

    // bob: acts on alice's things in team-a (the VM's routes, every EC2
    // action), and cannot manage the project.
    let mut failures = sweep_api(&app, &ops, &t.bob, Some(TEAM), Expect::Acts).await;
    failures.extend(sweep_ec2(&app, &t, "bob", &t.bob_key, Expect::Acts).await);
    assert!(failures.is_empty(), "bob could not act in team-a:\n{}", failures.join("\n"));
    let (s, b) = app.call(Method::GET, &format!("/api/v1/vms/{}?project={TEAM}", t.vm), &t.alice, None).await;
    assert_eq!(s, 200);
    assert!(matches!(b["state"].as_str(), Some("shutting-down" | "terminated")), "bob terminated team-a's VM: {b}");
    // The members are as alice left them (bob's PUT/DELETE of her membership were refused).
    let (_, members) = app.call(Method::GET, &format!("/api/v1/projects/{TEAM}/members"), &t.alice, None).await;
    let text = members.to_string();
    assert!(text.contains("\"carol\"") && text.contains("viewer") && text.contains("\"bob\""), "{members}");

    // Removing bob: his very next call in team-a fails, by token and by key.
    let (s, b) = app.call(Method::DELETE, &format!("/api/v1/projects/{TEAM}/members/bob"), &t.alice, None).await;
    assert!(s == 200 || s == 204, "{s} {b}");
    let (s, _) = app.call(Method::GET, &format!("/api/v1/vms/{}?project={TEAM}", t.vm_ec2), &t.bob, None).await;
    assert_eq!(s, 404, "a removed member's token no longer enters team-a");
    let (s, _) = app.call(Method::GET, &format!("/api/v1/vms?project={TEAM}"), &t.bob, None).await;
    assert_eq!(s, 404);
    let (s, xml) = app.ec2_call(&t.bob_key, "sb", "Action=DescribeInstances&Version=2016-11-15").await;
    assert_eq!((s, ec2_code(&xml).as_deref()), (401, Some("AuthFailure")), "a removed member's team-a key is refused at once: {xml}");
    // His own things still answer him.
    assert_eq!(app.call(Method::GET, "/api/v1/vms", &t.bob, None).await.0, 200);
    // And the admin sees team-a whole.
    let (s, b) = app.call(Method::GET, &format!("/api/v1/projects/{TEAM}/members"), &t.admin, None).await;
    assert_eq!(s, 200, "{b}");
    assert!(!b.to_string().contains("\"bob\""), "{b}");
});

// A removed member loses access at once on the replica that removed them,
// and within the caching window (`KEY_CACHE_TTL`) on another replica of the
// same database, by token and by access key alike.
app_test!(a_removed_member_loses_access_on_every_replica, |a: TestApp| async move {
    let dir_b = tempfile::tempdir().unwrap();
    std::fs::copy(a.dir.path().join("master.key"), dir_b.path().join("master.key")).unwrap();
    let b = TestApp::start(Some(a.db_url.clone()), dir_b).await.unwrap();
    let admin = a.token("super", SUPER_PW).await;
    let image = json!({"name": "ubuntu", "mappings": {"sb": {"image_id": "ami-sandbox-ubuntu-2204", "instance_type": "t2.small"}}});
    assert_eq!(a.call(Method::POST, "/api/v1/images", &admin, Some(image)).await.0, 201);
    let alice = a.user(&admin, "alice").await;
    let bob_a = a.user(&admin, "bob").await;
    let bob_b = b.token("bob", "bob-password").await;
    assert_eq!(a.call(Method::POST, "/api/v1/projects", &alice, Some(json!({"name": TEAM}))).await.0, 201);
    assert_eq!(a.call(Method::PUT, &format!("/api/v1/projects/{TEAM}/members/bob"), &alice, Some(json!({"role": "member"}))).await.0, 200);
    let (s, v) =
        a.call(Method::POST, &format!("/api/v1/vms?project={TEAM}"), &alice, Some(json!({"instance": "sb", "image": "ubuntu"}))).await;
    assert_eq!(s, 201, "{v}");
    let vm = v["vms"][0]["id"].as_str().unwrap().to_string();
    let key = access_key(&a, &bob_a, "bob", Some(TEAM)).await;
    let vm_path = format!("/api/v1/vms/{vm}?project={TEAM}");
    let describe = format!("Action=DescribeInstances&Version=2016-11-15&InstanceId.1={}", instance_id(&VmId::parse(&vm).unwrap()));
    // bob works in team-a on both replicas (each caches what it learnt).
    for app in [&a, &b] {
        let token = if std::ptr::eq(app, &a) { &bob_a } else { &bob_b };
        assert_eq!(app.call(Method::GET, &vm_path, token, None).await.0, 200);
        let (s, xml) = app.ec2_call(&key, "sb", &describe).await;
        assert!(s == 200 && xml.contains("<instanceId>"), "{xml}");
    }

    let removed = std::time::Instant::now();
    let (s, body) = a.call(Method::DELETE, &format!("/api/v1/projects/{TEAM}/members/bob"), &alice, None).await;
    assert!(s == 200 || s == 204, "{s} {body}");
    // At once on the replica that removed him.
    assert_eq!(a.call(Method::GET, &vm_path, &bob_a, None).await.0, 404);
    let (s, xml) = a.ec2_call(&key, "sb", &describe).await;
    assert_eq!((s, ec2_code(&xml).as_deref()), (401, Some("AuthFailure")), "{xml}");
    // Within the caching window on the other one.
    let deadline = cloudbroker_core::cache::KEY_CACHE_TTL + std::time::Duration::from_millis(500);
    loop {
        let by_token = b.call(Method::GET, &vm_path, &bob_b, None).await.0;
        let (s, xml) = b.ec2_call(&key, "sb", &describe).await;
        if by_token == 404 && s == 401 && ec2_code(&xml).as_deref() == Some("AuthFailure") {
            break;
        }
        assert!(
            removed.elapsed() < deadline,
            "the other replica still let bob in after {:?}: token {by_token}, key {s}",
            removed.elapsed()
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // His own project still answers him everywhere.
    assert_eq!(b.call(Method::GET, "/api/v1/vms", &bob_b, None).await.0, 200);
    b.stop().await;
});

/// A signed-in browser of `user`: the client (cookies kept, redirects not
/// followed), the CSRF field's name and the session's token.
async fn browser(app: &TestApp, user: &str) -> (reqwest::Client, &'static str, String) {
    let http = reqwest::Client::builder().cookie_store(true).redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let csrf = |html: &str| {
        let at = html.find("name=\"csrf\"").or_else(|| html.find("name=\"csrf_token\"")).expect("a CSRF field");
        let v = &html[at..];
        let start = v.find("value=\"").unwrap() + 7;
        v[start..start + v[start..].find('"').unwrap()].to_string()
    };
    let page = http.get(app.url("/login")).send().await.unwrap().text().await.unwrap();
    let field = if page.contains("name=\"csrf_token\"") { "csrf_token" } else { "csrf" };
    let password = format!("{user}-password");
    let r = http.post(app.url("/login")).form(&[("username", user), ("password", &password), (field, &csrf(&page))]).send().await.unwrap();
    assert!(r.status().is_redirection(), "{user} signs in: {}", r.status());
    let home = http.get(app.url("/vms")).send().await.unwrap().text().await.unwrap();
    let token = csrf(&home);
    (http, field, token)
}

// The UI's project pages and forms, and team-a's VM's forms: dave (who
// cannot even switch to team-a) gets 404 for all, carol (switched to
// team-a) reads the project's page and every form of hers is 403; nothing
// of team-a's changes. bob, a member, acts on the VM there and cannot
// manage the project.
app_test!(no_ui_route_reaches_another_projects_things, |app: TestApp| async move {
    let t = setup(&app).await;
    let before = team_view(&app, &t).await;
    let vm = &t.vm;
    let gets = [format!("/projects/{TEAM}"), format!("/projects/{TEAM}/audit"), format!("/vms/{vm}/terminate")];
    let mut posts: Vec<String> = ["stop", "start", "reboot", "terminate"].iter().map(|a| format!("/vms/{vm}/{a}")).collect();
    for p in
        ["", "/delete", "/members", "/members/alice", "/members/alice/remove", "/credentials/sb2", "/credentials/sb2/delete", "/quotas/sb2"]
    {
        posts.push(format!("/projects/{TEAM}{p}"));
    }
    let mut failures = Vec::new();
    for who in ["dave", "carol"] {
        let (http, field, token) = browser(&app, who).await;
        // The switcher: carol enters team-a, dave is told he is no member.
        let r = http.post(app.url("/project")).form(&[(field, token.as_str()), ("project", TEAM), ("back", "/vms")]).send().await.unwrap();
        assert!(r.status().is_redirection(), "{who} switches: {}", r.status());
        let listing = http.get(app.url("/vms")).send().await.unwrap().text().await.unwrap();
        assert_eq!(listing.contains(vm.as_str()), who == "carol", "{who}'s VM list and team-a's VM");
        for path in &gets {
            let r = http.get(app.url(path)).send().await.unwrap();
            let status = r.status().as_u16();
            let body = r.text().await.unwrap();
            let ok = match (who, path.as_str()) {
                ("dave", _) => status == 404,
                (_, p) if p.ends_with("/audit") => status == 403,
                (_, p) if p.starts_with("/vms/") => matches!(status, 200 | 403),
                _ => status == 200,
            };
            if !ok {
                failures.push(format!("{who} GET {path} -> {status}"));
            }
            assert!(!body.contains(CLOUD_SECRET) && !body.contains(CLOUD_KEY), "{who} GET {path} shows team-a's credential");
        }
        for path in &posts {
            let form = [
                (field, token.as_str()),
                ("description", "taken over"),
                ("user", who),
                ("role", "owner"),
                ("access_key_id", "AKIAMALLORY00000"),
                ("secret_access_key", "mallory-secret"),
                ("limit", "0"),
            ];
            let status = http.post(app.url(path)).form(&form).send().await.unwrap().status().as_u16();
            let want = if who == "dave" { 404 } else { 403 };
            if status != want {
                failures.push(format!("{who} POST {path} -> {status} (want {want})"));
            }
        }
    }
    assert!(failures.is_empty(), "the UI sweep failed:\n{}", failures.join("\n"));
    assert_eq!(team_view(&app, &t).await, before);

    // The key-pair, volume and address pages with team-a's real ones: dave
    // gets 404 (and his pages do not list them), carol (a viewer) sees them
    // listed and gets 403 on every form and confirmation; nothing changes.
    let (vol, addr) = (&t.volume, &t.allocation);
    let page_gets = [
        "/keypairs/team-key/delete".to_string(),
        format!("/volumes/sb/{vol}/attach"),
        format!("/volumes/sb/{vol}/delete"),
        format!("/addresses/sb/{addr}/associate"),
        format!("/addresses/sb/{addr}/release"),
    ];
    let mut page_posts = page_gets.to_vec();
    page_posts.extend([format!("/volumes/sb/{vol}/detach"), format!("/addresses/sb/{addr}/disassociate")]);
    for who in ["dave", "carol"] {
        let (http, field, token) = browser(&app, who).await;
        http.post(app.url("/project")).form(&[(field, token.as_str()), ("project", TEAM), ("back", "/vms")]).send().await.unwrap();
        let want = if who == "dave" { 404 } else { 403 };
        for l in ["/keypairs", "/volumes", "/addresses"] {
            let body = http.get(app.url(l)).send().await.unwrap().text().await.unwrap();
            let listed = body.contains("team-key") || body.contains(vol.as_str()) || body.contains(addr.as_str());
            if listed != (who == "carol") {
                failures.push(format!("{who} GET {l}: team-a's things listed: {listed}"));
            }
        }
        for path in &page_gets {
            let status = http.get(app.url(path)).send().await.unwrap().status().as_u16();
            if status != want {
                failures.push(format!("{who} GET {path} -> {status} (want {want})"));
            }
        }
        for path in &page_posts {
            let form = [(field, token.as_str()), ("vm", t.vm.as_str()), ("device", "/dev/sdf")];
            let status = http.post(app.url(path)).form(&form).send().await.unwrap().status().as_u16();
            if status != want {
                failures.push(format!("{who} POST {path} -> {status} (want {want})"));
            }
        }
    }
    assert!(failures.is_empty(), "the resource pages' sweep failed:\n{}", failures.join("\n"));
    assert_eq!(team_view(&app, &t).await, before);

    // bob, switched to team-a, acts on alice's VM and cannot manage the project.
    let (http, field, token) = browser(&app, "bob").await;
    http.post(app.url("/project")).form(&[(field, token.as_str()), ("project", TEAM), ("back", "/vms")]).send().await.unwrap();
    for path in &posts {
        let form = [(field, token.as_str()), ("description", "taken over"), ("user", "bob"), ("role", "owner"), ("limit", "0")];
        let status = http.post(app.url(path)).form(&form).send().await.unwrap().status().as_u16();
        let ok = if path.starts_with("/vms/") { (300..400).contains(&status) } else { status == 403 };
        if !ok {
            failures.push(format!("bob POST {path} -> {status}"));
        }
    }
    assert!(failures.is_empty(), "bob in the UI:\n{}", failures.join("\n"));
    let (_, b) = app.call(Method::GET, &format!("/api/v1/vms/{vm}?project={TEAM}"), &t.alice, None).await;
    assert!(matches!(b["state"].as_str(), Some("shutting-down" | "terminated")), "bob terminated team-a's VM from the UI: {b}");
});
