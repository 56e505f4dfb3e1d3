//! EC2 Query API request parameters, built as ordered `(name, value)` lists
//! (the client adds `Action`, `Version` and the signature).
//!
//! EC2 encodes lists with 1-based indexes: `InstanceId.1`, `InstanceId.2`,
//! `Filter.1.Name`, `Filter.1.Value.1`, `TagSpecification.1.Tag.2.Key`, ...

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use cloudbroker_connector_api::{DescribeFilter, RunRequest};

/// Parameter list of one call.
pub type Params = Vec<(String, String)>;

fn push(p: &mut Params, k: impl Into<String>, v: impl Into<String>) {
    p.push((k.into(), v.into()));
}

/// `Prefix.1=a&Prefix.2=b...`
pub fn indexed(p: &mut Params, prefix: &str, values: &[String]) {
    for (i, v) in values.iter().enumerate() {
        push(p, format!("{prefix}.{}", i + 1), v.clone());
    }
}

/// `InstanceId.N` for start/stop/reboot/terminate.
pub fn instance_ids(ids: &[String]) -> Params {
    let mut p = Params::new();
    indexed(&mut p, "InstanceId", ids);
    p
}

/// RunInstances. `default_groups` are used when the request names none.
pub fn run_instances(req: &RunRequest, default_groups: &[String]) -> Params {
    let mut p = Params::new();
    push(&mut p, "ImageId", req.image_id.clone());
    push(&mut p, "InstanceType", req.instance_type.clone());
    push(&mut p, "MinCount", req.count.to_string());
    push(&mut p, "MaxCount", req.count.to_string());
    if let Some(k) = req.key_name.as_deref().filter(|k| !k.is_empty()) {
        push(&mut p, "KeyName", k);
    }
    if let Some(u) = req.user_data.as_deref().filter(|u| !u.is_empty()) {
        push(&mut p, "UserData", BASE64.encode(u.as_bytes()));
    }
    // The configured groups only when the request names none (by name or id).
    let groups =
        if req.security_groups.is_empty() && req.security_group_ids.is_empty() { default_groups } else { &req.security_groups[..] };
    indexed(&mut p, "SecurityGroup", groups);
    indexed(&mut p, "SecurityGroupId", &req.security_group_ids);
    if let Some(subnet) = &req.subnet_id {
        push(&mut p, "SubnetId", subnet.clone());
    }
    if !req.tags.is_empty() {
        push(&mut p, "TagSpecification.1.ResourceType", "instance");
        for (i, (k, v)) in req.tags.iter().enumerate() {
            push(&mut p, format!("TagSpecification.1.Tag.{}.Key", i + 1), k.clone());
            push(&mut p, format!("TagSpecification.1.Tag.{}.Value", i + 1), v.clone());
        }
    }
    crate::launch_options::run(&mut p, req);
    if !req.client_token.is_empty() {
        push(&mut p, "ClientToken", req.client_token.clone());
    }
    p
}

/// One named parameter.
pub fn one(name: &str, value: &str) -> Params {
    vec![(name.to_string(), value.to_string())]
}

/// AllocateAddress (a VPC address).
pub fn allocate_address() -> Params {
    one("Domain", "vpc")
}

/// AssociateAddress of an allocation with an instance.
pub fn associate_address(allocation_id: &str, instance_id: &str) -> Params {
    let mut p = one("AllocationId", allocation_id);
    push(&mut p, "InstanceId", instance_id);
    p
}

/// CreateVolume.
pub fn create_volume(req: &cloudbroker_connector_api::CreateVolumeRequest) -> Params {
    let mut p = one("Size", &req.size_gib.to_string());
    push(&mut p, "AvailabilityZone", req.zone.clone());
    if let Some(t) = req.volume_type.as_deref().filter(|t| !t.is_empty()) {
        push(&mut p, "VolumeType", t);
    }
    if let Some(s) = req.snapshot_id.as_deref() {
        push(&mut p, "SnapshotId", s);
    }
    crate::launch_options::volume(&mut p, req);
    p
}

/// AttachVolume.
pub fn attach_volume(volume_id: &str, instance_id: &str, device: &str) -> Params {
    let mut p = one("VolumeId", volume_id);
    push(&mut p, "InstanceId", instance_id);
    push(&mut p, "Device", device);
    p
}

/// DetachVolume.
pub fn detach_volume(volume_id: &str, instance_id: Option<&str>, force: bool) -> Params {
    let mut p = one("VolumeId", volume_id);
    if let Some(i) = instance_id {
        push(&mut p, "InstanceId", i);
    }
    if force {
        push(&mut p, "Force", "true");
    }
    p
}

/// CreateTags on `ids` (used when a cloud ignored `TagSpecification`).
pub fn create_tags(ids: &[String], tags: &[(String, String)]) -> Params {
    let mut p = Params::new();
    indexed(&mut p, "ResourceId", ids);
    for (i, (k, v)) in tags.iter().enumerate() {
        push(&mut p, format!("Tag.{}.Key", i + 1), k.clone());
        push(&mut p, format!("Tag.{}.Value", i + 1), v.clone());
    }
    p
}

/// One DescribeInstances page. `ids` and `max_results` must not both be
/// given (EC2 refuses `InstanceId` with `MaxResults`).
pub fn describe_instances(filter: &DescribeFilter, ids: &[String], max_results: Option<u32>, next_token: Option<&str>) -> Params {
    let mut p = Params::new();
    indexed(&mut p, "InstanceId", ids);
    let mut n = 0;
    for (k, v) in &filter.tags {
        n += 1;
        push(&mut p, format!("Filter.{n}.Name"), format!("tag:{k}"));
        push(&mut p, format!("Filter.{n}.Value.1"), v.clone());
    }
    for k in &filter.tag_keys {
        n += 1;
        push(&mut p, format!("Filter.{n}.Name"), "tag-key");
        push(&mut p, format!("Filter.{n}.Value.1"), k.clone());
    }
    if let Some(m) = max_results {
        push(&mut p, "MaxResults", m.to_string());
    }
    if let Some(t) = next_token {
        push(&mut p, "NextToken", t);
    }
    p
}

/// ImportKeyPair: `PublicKeyMaterial` is the base64 of the OpenSSH public key.
pub fn import_key_pair(name: &str, public_key: &str) -> Params {
    let mut p = Params::new();
    push(&mut p, "KeyName", name);
    push(&mut p, "PublicKeyMaterial", BASE64.encode(public_key.trim().as_bytes()));
    p
}

/// DeleteKeyPair.
pub fn key_name(name: &str) -> Params {
    vec![("KeyName".into(), name.into())]
}

/// CreateTags / DeleteTags: `ResourceId.N`, `Tag.N.Key` (and `.Value` when given).
pub fn tags(ids: &[String], tags: &[(String, Option<String>)]) -> Params {
    let mut p = Params::new();
    indexed(&mut p, "ResourceId", ids);
    for (i, (k, v)) in tags.iter().enumerate() {
        push(&mut p, format!("Tag.{}.Key", i + 1), k.as_str());
        if let Some(v) = v {
            push(&mut p, format!("Tag.{}.Value", i + 1), v.as_str());
        }
    }
    p
}

/// DescribeImages of the account's own images.
pub fn describe_own_images() -> Params {
    vec![("Owner.1".into(), "self".into())]
}

/// A paged call with only `MaxResults`/`NextToken`.
pub fn paged(max_results: Option<u32>, next_token: Option<&str>) -> Params {
    let mut p = Params::new();
    if let Some(m) = max_results {
        push(&mut p, "MaxResults", m.to_string());
    }
    if let Some(t) = next_token {
        push(&mut p, "NextToken", t);
    }
    p
}

/// DescribeSecurityGroups by name.
pub fn describe_security_group(name: &str) -> Params {
    vec![("GroupName.1".into(), name.into())]
}

/// CreateSecurityGroup.
pub fn create_security_group(name: &str) -> Params {
    vec![("GroupName".into(), name.into()), ("GroupDescription".into(), format!("{name} (created by cloudbroker)"))]
}

#[cfg(test)]
mod tests {
    use super::*;
    use cloudbroker_sigv::encode_query;

    #[test]
    fn run_instances_encoding() {
        let req = RunRequest {
            image_id: "ami-00000042".into(),
            instance_type: "m1.small".into(),
            count: 3,
            key_name: Some("alice key".into()),
            user_data: Some("#!/bin/sh\necho hi\n".into()),
            security_groups: vec!["web".into(), "ssh".into()],
            tags: vec![("cloudbroker:user".into(), "alice".into()), ("Name".into(), "a b+c".into())],
            client_token: "launch-7-0".into(),
            ..Default::default()
        };
        let p = run_instances(&req, &["default".into()]);
        assert_eq!(
            encode_query(&p),
            "ImageId=ami-00000042&InstanceType=m1.small&MinCount=3&MaxCount=3&KeyName=alice%20key\
             &UserData=IyEvYmluL3NoCmVjaG8gaGkK\
             &SecurityGroup.1=web&SecurityGroup.2=ssh\
             &TagSpecification.1.ResourceType=instance\
             &TagSpecification.1.Tag.1.Key=cloudbroker%3Auser&TagSpecification.1.Tag.1.Value=alice\
             &TagSpecification.1.Tag.2.Key=Name&TagSpecification.1.Tag.2.Value=a%20b%2Bc\
             &ClientToken=launch-7-0"
        );
    }

    #[test]
    fn run_instances_minimal_uses_default_group() {
        let req = RunRequest { image_id: "ami-1".into(), instance_type: "t2.micro".into(), count: 1, ..RunRequest::default() };
        assert_eq!(
            encode_query(&run_instances(&req, &["default".into()])),
            "ImageId=ami-1&InstanceType=t2.micro&MinCount=1&MaxCount=1&SecurityGroup.1=default"
        );
        assert_eq!(encode_query(&run_instances(&req, &[])), "ImageId=ami-1&InstanceType=t2.micro&MinCount=1&MaxCount=1");
    }

    #[test]
    fn describe_encoding() {
        let f = DescribeFilter {
            ids: vec![],
            tags: vec![("cloudbroker:launch".into(), "L 1".into()), ("env".into(), "prod".into())],
            tag_keys: vec!["cloudbroker:broker".into()],
        };
        assert_eq!(
            encode_query(&describe_instances(&f, &[], Some(100), Some("tok/1=="))),
            "Filter.1.Name=tag%3Acloudbroker%3Alaunch&Filter.1.Value.1=L%201\
             &Filter.2.Name=tag%3Aenv&Filter.2.Value.1=prod\
             &Filter.3.Name=tag-key&Filter.3.Value.1=cloudbroker%3Abroker\
             &MaxResults=100&NextToken=tok%2F1%3D%3D"
        );
        let ids = vec!["i-1".to_string(), "i-2".to_string()];
        assert_eq!(encode_query(&describe_instances(&DescribeFilter::default(), &ids, None, None)), "InstanceId.1=i-1&InstanceId.2=i-2");
        assert_eq!(encode_query(&instance_ids(&ids)), "InstanceId.1=i-1&InstanceId.2=i-2");
    }

    #[test]
    fn key_pairs_and_tags() {
        assert_eq!(
            encode_query(&import_key_pair("k", "ssh-ed25519 AAAA x@y\n")),
            "KeyName=k&PublicKeyMaterial=c3NoLWVkMjU1MTkgQUFBQSB4QHk%3D"
        );
        assert_eq!(
            encode_query(&create_tags(&["i-1".into()], &[("a".into(), "1".into()), ("b".into(), "2".into())])),
            "ResourceId.1=i-1&Tag.1.Key=a&Tag.1.Value=1&Tag.2.Key=b&Tag.2.Value=2"
        );
        assert_eq!(encode_query(&describe_own_images()), "Owner.1=self");
        assert_eq!(encode_query(&paged(Some(5), None)), "MaxResults=5");
        assert_eq!(encode_query(&create_security_group("web")), "GroupName=web&GroupDescription=web%20%28created%20by%20cloudbroker%29");
    }
}
