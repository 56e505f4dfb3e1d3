//! EC2 Query API answers → connector model types.
//!
//! Only direct children are read (`privateIpAddress` also appears inside
//! `networkInterfaceSet`), missing optional fields become `None`, and unknown
//! fields are ignored, so older API versions (econe) and newer ones (AWS,
//! moto) parse alike.

use crate::xml::Element;
use chrono::{DateTime, Utc};
use cloudbroker_connector_api::{
    AddressInfo, ConnectorError, ImageInfo, InstanceTypeInfo, KeyPairInfo, StateChange, Vm, VmState, VolumeAttachment, VolumeInfo,
    VolumeState,
};

/// One page of a `Describe*` call.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_token: Option<String>,
    /// `ownerId` of the first reservation, if any (DescribeInstances).
    pub owner: Option<String>,
}

fn unreadable(action: &str, what: &str) -> ConnectorError {
    ConnectorError::Transport { message: format!("unreadable {action} answer from the cloud: {what}") }
}

fn text(e: &Element, name: &str) -> Option<String> {
    e.child_text(name).map(str::to_string)
}

/// Parses `launchTime` (RFC 3339; econe sends an offset, AWS `Z` with millis).
pub fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s.trim()).ok().map(|t| t.with_timezone(&Utc))
}

/// An `instanceState`-like element (`<name>`, `<code>`) → state.
pub fn state_of(e: &Element) -> Option<VmState> {
    if let Some(s) = e.child_text("name").and_then(VmState::parse) {
        return Some(s);
    }
    // Fall back to the numeric code (low byte), as EC2 documents it.
    let code: i32 = e.child_text("code")?.parse().ok()?;
    [VmState::Pending, VmState::Running, VmState::ShuttingDown, VmState::Terminated, VmState::Stopping, VmState::Stopped]
        .into_iter()
        .find(|s| s.code() == (code & 0xff))
}

fn tags_of(item: &Element) -> Vec<(String, String)> {
    item.items("tagSet")
        .filter_map(|t| {
            let k = t.child_text("key")?.to_string();
            Some((k, t.child("value").map(|v| v.text.clone()).unwrap_or_default()))
        })
        .collect()
}

/// One `instancesSet/item` of RunInstances or DescribeInstances.
pub fn vm_of(item: &Element, action: &str) -> Result<Vm, ConnectorError> {
    let id = text(item, "instanceId").ok_or_else(|| unreadable(action, "an instance without instanceId"))?;
    let state = match item.child("instanceState").and_then(state_of) {
        Some(s) => s,
        None => {
            let raw = item.path(&["instanceState", "name"]).map(|n| n.text.clone()).unwrap_or_default();
            tracing::warn!(instance = %id, state = %raw, "unknown instance state from the cloud, reporting pending");
            VmState::Pending
        }
    };
    Ok(Vm {
        id,
        state,
        image_id: text(item, "imageId").unwrap_or_default(),
        instance_type: text(item, "instanceType").unwrap_or_default(),
        private_ip: text(item, "privateIpAddress"),
        public_ip: text(item, "ipAddress"),
        key_name: text(item, "keyName"),
        launch_time: item.child_text("launchTime").and_then(parse_time),
        client_token: text(item, "clientToken"),
        tags: tags_of(item),
        // `reason` (StateTransitionReason): `User initiated (... GMT)` after a stop or terminate.
        state_since: item.child_text("reason").and_then(cloudbroker_connector_api::model::transition_time),
        subnet_id: text(item, "subnetId"),
        vpc_id: text(item, "vpcId"),
        security_groups: groups_of(item),
        volumes: item
            .items("blockDeviceMapping")
            .filter_map(|d| {
                Some(cloudbroker_connector_api::VmVolume {
                    device_name: text(d, "deviceName")?,
                    volume_id: d.path(&["ebs", "volumeId"]).map(|v| v.text.trim().to_string()).filter(|v| !v.is_empty())?,
                    delete_on_termination: d.path(&["ebs", "deleteOnTermination"]).is_some_and(|v| v.text.trim() == "true"),
                })
            })
            .collect(),
        root_device_name: text(item, "rootDeviceName"),
    })
}

/// The `groupSet` of an instance or a reservation, as (id, name).
fn groups_of(item: &Element) -> Vec<(String, String)> {
    item.items("groupSet").filter_map(|g| Some((text(g, "groupId")?, text(g, "groupName").unwrap_or_default()))).collect()
}

/// RunInstancesResponse → the launched VMs.
pub fn run_instances(root: &Element) -> Result<Vec<Vm>, ConnectorError> {
    if root.child("instancesSet").is_none() {
        return Err(unreadable("RunInstances", "no instancesSet"));
    }
    // The groups are the reservation's where an instance does not list its own.
    let groups = groups_of(root);
    root.items("instancesSet")
        .map(|i| {
            let mut vm = vm_of(i, "RunInstances")?;
            if vm.security_groups.is_empty() {
                vm.security_groups = groups.clone();
            }
            Ok(vm)
        })
        .collect()
}

/// DescribeInstancesResponse → one page of VMs.
pub fn describe_instances(root: &Element) -> Result<Page<Vm>, ConnectorError> {
    // An answer without a reservationSet is not an empty page: taken for one,
    // it would make every VM look gone.
    if root.child("reservationSet").is_none() {
        return Err(unreadable("DescribeInstances", "no reservationSet"));
    }
    let mut items = Vec::new();
    let mut owner = None;
    for r in root.items("reservationSet") {
        if owner.is_none() {
            owner = text(r, "ownerId");
        }
        for i in r.items("instancesSet") {
            items.push(vm_of(i, "DescribeInstances")?);
        }
    }
    Ok(Page { items, next_token: text(root, "nextToken"), owner })
}

/// Start/Stop/TerminateInstancesResponse → state changes.
pub fn state_changes(root: &Element, action: &str) -> Result<Vec<StateChange>, ConnectorError> {
    root.items("instancesSet")
        .map(|i| {
            let id = text(i, "instanceId").ok_or_else(|| unreadable(action, "an item without instanceId"))?;
            let previous = i.child("previousState").and_then(state_of).ok_or_else(|| unreadable(action, "no previousState"))?;
            let current = i.child("currentState").and_then(state_of).ok_or_else(|| unreadable(action, "no currentState"))?;
            Ok(StateChange { id, previous, current })
        })
        .collect()
}

/// `<return>false</return>` of a boolean action means it was refused.
pub fn check_return(root: &Element, action: &str) -> Result<(), ConnectorError> {
    match root.child_text("return") {
        Some("false") => {
            Err(ConnectorError::Cloud { code: "ReturnFalse".into(), message: format!("the cloud answered false to {action}") })
        }
        _ => Ok(()),
    }
}

/// ImportKeyPairResponse.
pub fn imported_key(root: &Element, name: &str) -> KeyPairInfo {
    KeyPairInfo { name: text(root, "keyName").unwrap_or_else(|| name.to_string()), fingerprint: text(root, "keyFingerprint") }
}

/// DescribeKeyPairsResponse.
pub fn key_pairs(root: &Element) -> Vec<KeyPairInfo> {
    root.items("keySet").filter_map(|i| Some(KeyPairInfo { name: text(i, "keyName")?, fingerprint: text(i, "keyFingerprint") })).collect()
}

/// One `addressesSet/item` (or AllocateAddressResponse itself).
fn address_of(e: &Element, action: &str) -> Result<AddressInfo, ConnectorError> {
    Ok(AddressInfo {
        public_ip: text(e, "publicIp").ok_or_else(|| unreadable(action, "an address without publicIp"))?,
        allocation_id: text(e, "allocationId").ok_or_else(|| unreadable(action, "an address without allocationId"))?,
        instance_id: text(e, "instanceId").filter(|s| !s.is_empty()),
        association_id: text(e, "associationId").filter(|s| !s.is_empty()),
        private_ip: text(e, "privateIpAddress").filter(|s| !s.is_empty()),
    })
}

/// AllocateAddressResponse.
pub fn allocated_address(root: &Element) -> Result<AddressInfo, ConnectorError> {
    address_of(root, "AllocateAddress")
}

/// AssociateAddressResponse → the association id.
pub fn association_id(root: &Element) -> Result<String, ConnectorError> {
    text(root, "associationId").ok_or_else(|| unreadable("AssociateAddress", "no associationId"))
}

/// DescribeAddressesResponse.
pub fn addresses(root: &Element) -> Result<Vec<AddressInfo>, ConnectorError> {
    root.items("addressesSet").map(|i| address_of(i, "DescribeAddresses")).collect()
}

/// An `attachmentSet/item`, or Attach/DetachVolumeResponse itself.
pub fn attachment_of(e: &Element, action: &str) -> Result<VolumeAttachment, ConnectorError> {
    Ok(VolumeAttachment {
        volume_id: text(e, "volumeId").ok_or_else(|| unreadable(action, "an attachment without volumeId"))?,
        instance_id: text(e, "instanceId").ok_or_else(|| unreadable(action, "an attachment without instanceId"))?,
        device: text(e, "device").unwrap_or_default(),
        state: text(e, "status").ok_or_else(|| unreadable(action, "an attachment without status"))?,
    })
}

/// A `volumeSet/item`, or CreateVolumeResponse itself.
pub fn volume_of(e: &Element, action: &str) -> Result<VolumeInfo, ConnectorError> {
    let state = text(e, "status").ok_or_else(|| unreadable(action, "a volume without status"))?;
    Ok(VolumeInfo {
        volume_id: text(e, "volumeId").ok_or_else(|| unreadable(action, "a volume without volumeId"))?,
        size_gib: text(e, "size").and_then(|s| s.parse().ok()).ok_or_else(|| unreadable(action, "a volume without a numeric size"))?,
        zone: text(e, "availabilityZone").unwrap_or_default(),
        state: VolumeState::parse(&state).ok_or_else(|| unreadable(action, "an unknown volume status"))?,
        attachments: e.items("attachmentSet").map(|a| attachment_of(a, action)).collect::<Result<_, _>>()?,
    })
}

/// DescribeVolumesResponse → one page.
pub fn volumes(root: &Element) -> Result<Page<VolumeInfo>, ConnectorError> {
    let items = root.items("volumeSet").map(|i| volume_of(i, "DescribeVolumes")).collect::<Result<_, _>>()?;
    Ok(Page { items, next_token: text(root, "nextToken"), owner: None })
}

/// DescribeImagesResponse.
pub fn images(root: &Element) -> Vec<ImageInfo> {
    root.items("imagesSet")
        .filter_map(|i| {
            Some(ImageInfo {
                id: text(i, "imageId")?,
                name: text(i, "name"),
                description: text(i, "description"),
                state: text(i, "imageState"),
            })
        })
        .collect()
}

/// DescribeInstanceTypesResponse → one page.
pub fn instance_types(root: &Element) -> Page<InstanceTypeInfo> {
    let items = root
        .items("instanceTypeSet")
        .filter_map(|i| {
            Some(InstanceTypeInfo {
                name: text(i, "instanceType")?,
                vcpus: i.path(&["vCpuInfo", "defaultVCpus"]).and_then(|e| e.text.parse().ok()),
                memory_mib: i.path(&["memoryInfo", "sizeInMiB"]).and_then(|e| e.text.parse().ok()),
            })
        })
        .collect();
    Page { items, next_token: text(root, "nextToken"), owner: None }
}

/// DescribeRegionsResponse → region names.
pub fn regions(root: &Element) -> Vec<String> {
    root.items("regionInfo").filter_map(|i| text(i, "regionName")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xml::parse;

    /// A DescribeInstances page as AWS sends it (trimmed), two reservations,
    /// tags, a nested network interface and a pagination token.
    const DESCRIBE: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<DescribeInstancesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">
    <requestId>8f7724cf-496f-496e-8fe3-example</requestId>
    <reservationSet>
        <item>
            <reservationId>r-1234567890abcdef0</reservationId>
            <ownerId>123456789012</ownerId>
            <groupSet/>
            <instancesSet>
                <item>
                    <instanceId>i-1234567890abcdef0</instanceId>
                    <imageId>ami-bff32ccc</imageId>
                    <instanceState>
                        <code>16</code>
                        <name>running</name>
                    </instanceState>
                    <privateDnsName>ip-192-168-1-88.eu-west-1.compute.internal</privateDnsName>
                    <dnsName>ec2-54-194-252-215.eu-west-1.compute.amazonaws.com</dnsName>
                    <keyName>my_keypair</keyName>
                    <amiLaunchIndex>0</amiLaunchIndex>
                    <instanceType>t2.micro</instanceType>
                    <launchTime>2018-05-08T16:46:19.000Z</launchTime>
                    <clientToken>launch-1-0</clientToken>
                    <privateIpAddress>192.168.1.88</privateIpAddress>
                    <ipAddress>54.194.252.215</ipAddress>
                    <networkInterfaceSet>
                        <item>
                            <privateIpAddress>10.9.9.9</privateIpAddress>
                        </item>
                    </networkInterfaceSet>
                    <tagSet>
                        <item><key>cloudbroker:user</key><value>alice</value></item>
                        <item><key>Name</key><value>web &amp; db</value></item>
                        <item><key>empty</key><value/></item>
                    </tagSet>
                </item>
            </instancesSet>
        </item>
        <item>
            <reservationId>r-2</reservationId>
            <ownerId>123456789012</ownerId>
            <instancesSet>
                <item>
                    <instanceId>i-2</instanceId>
                    <imageId>ami-bff32ccc</imageId>
                    <instanceState><code>80</code><name>stopped</name></instanceState>
                    <instanceType>m1.small</instanceType>
                    <privateIpAddress/>
                    <clientToken/>
                </item>
                <item>
                    <instanceId>i-3</instanceId>
                    <instanceState><code>272</code><name>some-new-state</name></instanceState>
                </item>
            </instancesSet>
        </item>
    </reservationSet>
    <nextToken>eyJ2IjoiMiIsImMiOiJ</nextToken>
</DescribeInstancesResponse>"#;

    #[test]
    fn parses_describe_instances() {
        let page = describe_instances(&parse(DESCRIBE).unwrap()).unwrap();
        assert_eq!(page.next_token.as_deref(), Some("eyJ2IjoiMiIsImMiOiJ"));
        assert_eq!(page.owner.as_deref(), Some("123456789012"));
        assert_eq!(page.items.len(), 3);
        let a = &page.items[0];
        assert_eq!(a.id, "i-1234567890abcdef0");
        assert_eq!(a.state, VmState::Running);
        assert_eq!(a.image_id, "ami-bff32ccc");
        assert_eq!(a.instance_type, "t2.micro");
        assert_eq!(a.private_ip.as_deref(), Some("192.168.1.88"));
        assert_eq!(a.public_ip.as_deref(), Some("54.194.252.215"));
        assert_eq!(a.key_name.as_deref(), Some("my_keypair"));
        assert_eq!(a.client_token.as_deref(), Some("launch-1-0"));
        assert_eq!(a.launch_time.map(|t| t.to_rfc3339()), Some("2018-05-08T16:46:19+00:00".to_string()));
        assert_eq!(
            a.tags,
            vec![("cloudbroker:user".into(), "alice".into()), ("Name".into(), "web & db".into()), ("empty".into(), String::new())]
        );
        let b = &page.items[1];
        assert_eq!(
            (b.id.as_str(), b.state, b.private_ip.as_deref(), b.public_ip.as_deref(), b.client_token.as_deref()),
            ("i-2", VmState::Stopped, None, None, None)
        );
        assert!(b.tags.is_empty() && b.launch_time.is_none() && b.key_name.is_none());
        // Unknown name: the low byte of the code (272 & 0xff = 16) decides.
        assert_eq!(page.items[2].state, VmState::Running);
    }

    #[test]
    fn last_page_and_empty() {
        let p = describe_instances(&parse(r#"<DescribeInstancesResponse xmlns="http://ec2.amazonaws.com/doc/2009-04-04/"><requestId>x</requestId><reservationSet/></DescribeInstancesResponse>"#).unwrap()).unwrap();
        assert_eq!(p, Page { items: vec![], next_token: None, owner: None });
        let bad = parse("<DescribeInstancesResponse><reservationSet><item><instancesSet><item><imageId>a</imageId></item></instancesSet></item></reservationSet></DescribeInstancesResponse>").unwrap();
        assert!(matches!(describe_instances(&bad), Err(ConnectorError::Transport { .. })));
        // A 200 answer with no reservationSet at all is unreadable, not "no VMs".
        let none = parse("<DescribeInstancesResponse><requestId>x</requestId></DescribeInstancesResponse>").unwrap();
        let e = describe_instances(&none).unwrap_err();
        assert!(e.to_string().contains("no reservationSet"), "{e}");
    }

    #[test]
    fn parses_econe_style_describe() {
        // OpenNebula econe (2010-08-31 API): offsets in launchTime, no tags, no token.
        let doc = r#"<DescribeInstancesResponse xmlns="http://ec2.amazonaws.com/doc/2010-08-31/">
  <requestId>4ac62eaf-e266-4058-a970-2c01568cd417</requestId>
  <reservationSet><item><reservationId>default</reservationId><ownerId>oneadmin</ownerId>
    <groupSet><item><groupId>default</groupId></item></groupSet>
    <instancesSet><item>
      <instanceId>i-15</instanceId><imageId>ami-00000003</imageId>
      <instanceState><code>0</code><name>pending</name></instanceState>
      <privateDnsName>10.0.0.15</privateDnsName><dnsName>10.0.0.15</dnsName>
      <keyName>default</keyName><amiLaunchIndex>0</amiLaunchIndex>
      <instanceType>m1.small</instanceType>
      <launchTime>2013-09-04T10:23:11+02:00</launchTime>
      <placement><availabilityZone>default</availabilityZone></placement>
      <privateIpAddress>10.0.0.15</privateIpAddress>
    </item></instancesSet></item></reservationSet>
</DescribeInstancesResponse>"#;
        let p = describe_instances(&parse(doc).unwrap()).unwrap();
        assert_eq!(p.owner.as_deref(), Some("oneadmin"));
        assert_eq!(p.items[0].launch_time.map(|t| t.to_rfc3339()), Some("2013-09-04T08:23:11+00:00".to_string()));
        assert_eq!(p.items[0].state, VmState::Pending);
        assert_eq!(p.next_token, None);
    }

    #[test]
    fn parses_run_instances() {
        let doc = r#"<RunInstancesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">
  <requestId>r</requestId><reservationId>r-1</reservationId><ownerId>1</ownerId><groupSet/>
  <instancesSet>
    <item><instanceId>i-a</instanceId><imageId>ami-1</imageId><instanceState><code>0</code><name>pending</name></instanceState>
      <instanceType>t2.micro</instanceType><launchTime>2026-01-02T03:04:05.000Z</launchTime><clientToken>tok</clientToken>
      <privateIpAddress>10.0.0.1</privateIpAddress><tagSet><item><key>k</key><value>v</value></item></tagSet></item>
    <item><instanceId>i-b</instanceId><imageId>ami-1</imageId><instanceState><code>0</code><name>pending</name></instanceState>
      <instanceType>t2.micro</instanceType><clientToken>tok</clientToken></item>
  </instancesSet>
</RunInstancesResponse>"#;
        let vms = run_instances(&parse(doc).unwrap()).unwrap();
        assert_eq!(vms.iter().map(|v| v.id.as_str()).collect::<Vec<_>>(), ["i-a", "i-b"]);
        assert_eq!(vms[0].tags, vec![("k".to_string(), "v".to_string())]);
        assert_eq!(vms[0].private_ip.as_deref(), Some("10.0.0.1"));
        assert!(vms[1].tags.is_empty());
        assert!(run_instances(&parse("<RunInstancesResponse/>").unwrap()).is_err());
    }

    #[test]
    fn parses_state_changes_and_others() {
        let doc = r#"<StopInstancesResponse><instancesSet><item><instanceId>i-1</instanceId>
            <currentState><code>64</code><name>stopping</name></currentState>
            <previousState><code>16</code><name>running</name></previousState></item></instancesSet></StopInstancesResponse>"#;
        assert_eq!(
            state_changes(&parse(doc).unwrap(), "StopInstances").unwrap(),
            vec![StateChange { id: "i-1".into(), previous: VmState::Running, current: VmState::Stopping }]
        );
        let keys = parse("<DescribeKeyPairsResponse><keySet><item><keyName>a</keyName><keyFingerprint>1f:51</keyFingerprint></item><item><keyName>b</keyName></item></keySet></DescribeKeyPairsResponse>").unwrap();
        assert_eq!(
            key_pairs(&keys),
            vec![KeyPairInfo { name: "a".into(), fingerprint: Some("1f:51".into()) }, KeyPairInfo { name: "b".into(), fingerprint: None }]
        );
        let imgs = parse("<DescribeImagesResponse><imagesSet><item><imageId>ami-1</imageId><imageState>available</imageState><name>ubuntu</name></item></imagesSet></DescribeImagesResponse>").unwrap();
        assert_eq!(
            images(&imgs),
            vec![ImageInfo { id: "ami-1".into(), name: Some("ubuntu".into()), description: None, state: Some("available".into()) }]
        );
        let types = parse("<DescribeInstanceTypesResponse><instanceTypeSet><item><instanceType>t3.nano</instanceType><vCpuInfo><defaultVCpus>2</defaultVCpus></vCpuInfo><memoryInfo><sizeInMiB>512</sizeInMiB></memoryInfo></item></instanceTypeSet><nextToken>n</nextToken></DescribeInstanceTypesResponse>").unwrap();
        let p = instance_types(&types);
        assert_eq!(p.items, vec![InstanceTypeInfo { name: "t3.nano".into(), vcpus: Some(2), memory_mib: Some(512) }]);
        assert_eq!(p.next_token.as_deref(), Some("n"));
        let regs = parse("<DescribeRegionsResponse><regionInfo><item><regionName>opennebula</regionName><regionEndpoint>x</regionEndpoint></item></regionInfo></DescribeRegionsResponse>").unwrap();
        assert_eq!(regions(&regs), ["opennebula"]);
        assert!(check_return(&parse("<R><return>false</return></R>").unwrap(), "RebootInstances").is_err());
        assert!(check_return(&parse("<R><return>true</return></R>").unwrap(), "RebootInstances").is_ok());
        let imported =
            parse("<ImportKeyPairResponse><keyName>k</keyName><keyFingerprint>ab:cd</keyFingerprint></ImportKeyPairResponse>").unwrap();
        assert_eq!(imported_key(&imported, "k"), KeyPairInfo { name: "k".into(), fingerprint: Some("ab:cd".into()) });
    }
    #[test]
    fn parses_addresses_and_volumes() {
        let root = crate::xml::parse(
            r#"<DescribeAddressesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><requestId>r</requestId><addressesSet>
            <item><publicIp>198.51.100.1</publicIp><allocationId>eipalloc-1</allocationId><domain>vpc</domain>
            <instanceId>i-1</instanceId><associationId>eipassoc-1</associationId><privateIpAddress>10.0.0.1</privateIpAddress></item>
            <item><publicIp>198.51.100.2</publicIp><allocationId>eipalloc-2</allocationId><domain>vpc</domain></item>
            </addressesSet></DescribeAddressesResponse>"#,
        )
        .unwrap();
        let a = addresses(&root).unwrap();
        assert_eq!(a[0].association_id.as_deref(), Some("eipassoc-1"));
        assert_eq!((a[1].instance_id.as_deref(), a[1].public_ip.as_str()), (None, "198.51.100.2"));
        let root = crate::xml::parse(
            r#"<DescribeVolumesResponse><volumeSet><item><volumeId>vol-1</volumeId><size>8</size><availabilityZone>us-east-1a</availabilityZone>
            <status>in-use</status><attachmentSet><item><volumeId>vol-1</volumeId><instanceId>i-1</instanceId><device>/dev/sdf</device>
            <status>attached</status></item></attachmentSet></item></volumeSet><nextToken>t2</nextToken></DescribeVolumesResponse>"#,
        )
        .unwrap();
        let p = volumes(&root).unwrap();
        assert_eq!((p.items[0].size_gib, p.items[0].state, p.next_token.as_deref()), (8, VolumeState::InUse, Some("t2")));
        assert_eq!(p.items[0].attachments[0].device, "/dev/sdf");
        let bad = crate::xml::parse("<DescribeVolumesResponse><volumeSet><item><volumeId>v</volumeId><status>odd</status><size>1</size></item></volumeSet></DescribeVolumesResponse>").unwrap();
        assert!(matches!(volumes(&bad), Err(ConnectorError::Transport { .. })));
    }

    #[test]
    fn a_stop_carries_the_clouds_time() {
        let root = parse(
            "<DescribeInstancesResponse><reservationSet><item><instancesSet>\
             <item><instanceId>i-9</instanceId><instanceState><name>stopped</name></instanceState><reason>User initiated (2026-12-07 06:00:00 GMT)</reason></item>\
             <item><instanceId>i-8</instanceId><instanceState><name>running</name></instanceState><reason/></item>\
             </instancesSet></item></reservationSet></DescribeInstancesResponse>",
        )
        .unwrap();
        let page = describe_instances(&root).unwrap();
        let at = DateTime::parse_from_rfc3339("2026-12-07T06:00:00Z").unwrap().with_timezone(&Utc);
        assert_eq!(page.items[0].state_since, Some(at));
        assert_eq!(page.items[1].state_since, None, "a running VM gives no time");
    }

    #[test]
    fn a_launch_answers_its_groups_and_volumes() {
        // The groups at the reservation only (as some clouds answer), the volumes per instance.
        let root = parse(
            "<RunInstancesResponse><reservationId>r-1</reservationId>\
             <groupSet><item><groupId>sg-1</groupId><groupName>web</groupName></item></groupSet><instancesSet>\
             <item><instanceId>i-1</instanceId><instanceState><name>pending</name></instanceState><rootDeviceName>/dev/xvda</rootDeviceName>\
             <blockDeviceMapping><item><deviceName>/dev/xvda</deviceName><ebs><volumeId>vol-r</volumeId><status>attached</status>\
             <deleteOnTermination>true</deleteOnTermination></ebs></item>\
             <item><deviceName>/dev/sdf</deviceName><ebs><volumeId>vol-f</volumeId><deleteOnTermination>false</deleteOnTermination></ebs></item>\
             <item><deviceName>/dev/sdz</deviceName><ebs/></item></blockDeviceMapping></item>\
             <item><instanceId>i-2</instanceId><instanceState><name>pending</name></instanceState>\
             <groupSet><item><groupId>sg-2</groupId><groupName>db</groupName></item></groupSet></item>\
             </instancesSet></RunInstancesResponse>",
        )
        .unwrap();
        let vms = run_instances(&root).unwrap();
        assert_eq!(vms[0].security_groups, vec![("sg-1".to_string(), "web".to_string())]);
        assert_eq!(vms[1].security_groups, vec![("sg-2".to_string(), "db".to_string())], "an instance's own groups come first");
        assert_eq!(vms[0].root_device_name.as_deref(), Some("/dev/xvda"));
        let v: Vec<_> = vms[0].volumes.iter().map(|v| (v.device_name.as_str(), v.volume_id.as_str(), v.delete_on_termination)).collect();
        assert_eq!(v, vec![("/dev/xvda", "vol-r", true), ("/dev/sdf", "vol-f", false)], "a mapping without a volume id is left out");
        assert!(vms[1].volumes.is_empty());
    }
}
