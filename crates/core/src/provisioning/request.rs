//! The launch request: the one type every front (the JSON API, the web UI,
//! the EC2 front) builds from its wire format and hands to
//! [`super::Provisioning::launch`]. It carries only what the client asked
//! for, already parsed: the fronts decide no launch policy (key pairs are
//! resolved, counts admitted, images resolved and defaults applied in core).
//! Each field is checked once more by the launch's plan, whichever front
//! built it.

use crate::domain::{ClientToken, ImageRef, InstanceName, InvalidValue, Tags};
use cloudbroker_connector_api::model::tags as reserved;
use std::collections::BTreeMap;

/// Most VMs one launch request may ask for.
pub const MAX_COUNT: u32 = 100;

/// Client tags a launch may carry at most.
pub const MAX_CLIENT_TAGS: usize = 10;

/// Block devices a launch may map at most (EC2's `BlockDeviceMapping.N`).
pub const MAX_BLOCK_DEVICES: usize = 16;

/// How many VMs a launch asks for: at least `min`, at most `max`, admitted
/// in one transaction (as many as the quota leaves room for; none when
/// fewer than `min` fit). Checked by the launch (1 <= min <= max <=
/// [`MAX_COUNT`]), so a front may pass what its client sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CountRange {
    pub min: u32,
    pub max: u32,
}

impl CountRange {
    /// Exactly `n` VMs.
    pub fn exactly(n: u32) -> Self {
        Self { min: n, max: n }
    }

    /// Between `min` and `max` VMs (EC2's MinCount and MaxCount).
    pub fn between(min: u32, max: u32) -> Self {
        Self { min, max }
    }
}

impl From<u32> for CountRange {
    fn from(n: u32) -> Self {
        Self::exactly(n)
    }
}

/// An instance type as a client names it: 1-64 printable ASCII characters.
/// Whether the cloud offers it is the cloud's to say.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InstanceType(String);

impl InstanceType {
    /// Parses an instance type.
    pub fn parse(s: &str) -> Result<Self, InvalidValue> {
        if s.is_empty() || s.len() > 64 || !s.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(InvalidValue::new("instance_type", "instance_type is 1-64 printable characters"));
        }
        Ok(Self(s.to_string()))
    }
}

crate::domain::string_newtype!(InstanceType);

/// A launch's tags, classified: user tags (checked by [`Tags::parse`], put
/// on the cloud's instances too) and a client's reserved tags, kept on the
/// broker's records only, never put on a cloud (another broker chained in
/// front of this one tags its VMs `cloudbroker:*`, which this broker uses
/// on its cloud).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LaunchTags {
    pub user: Tags,
    pub reserved: BTreeMap<String, String>,
    /// The `Name` tag as an EC2 client gave it: recorded verbatim on every
    /// VM of the launch (the VMs' names may be numbered; this tag never is).
    pub name_tag: Option<String>,
}

impl LaunchTags {
    /// User tags only (the JSON API and the UI: reserved keys are refused by [`Tags::parse`]).
    pub fn user(tags: Tags) -> Self {
        Self { user: tags, reserved: BTreeMap::new(), name_tag: None }
    }

    /// Classifies the tags a client puts on its instances (EC2's
    /// `TagSpecification`): `Name` names the launch (returned apart; the
    /// last one wins), `cloudbroker:*` are reserved tags, the rest user tags.
    pub fn classify(pairs: impl IntoIterator<Item = (String, String)>) -> Result<(Option<String>, Self), InvalidValue> {
        let (mut name, mut user, mut reserved_tags) = (None, BTreeMap::new(), BTreeMap::new());
        for (k, v) in pairs {
            if k == reserved::NAME {
                name = Some(v);
            } else if k.starts_with("cloudbroker:") {
                reserved_tags.insert(k, v);
            } else {
                user.insert(k, v);
            }
        }
        Ok((name, Self { user: Tags::parse(user)?, reserved: reserved_tags, name_tag: None }))
    }

    /// Every tag, as the broker's records keep them.
    pub(super) fn recorded(&self) -> BTreeMap<String, String> {
        let mut all = self.user.as_map().clone();
        all.extend(self.reserved.iter().map(|(k, v)| (k.clone(), v.clone())));
        if let Some(n) = &self.name_tag {
            all.insert(reserved::NAME.to_string(), n.clone());
        }
        all
    }
}

/// What to launch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LaunchRequest {
    pub instance: InstanceName,
    pub image: ImageRef,
    /// Default: the image's on the instance, else the connector's.
    pub instance_type: Option<InstanceType>,
    pub count: CountRange,
    pub name: String,
    pub user_data: Option<String>,
    pub client_token: Option<ClientToken>,
    pub tags: LaunchTags,
    /// An SSH public key for this launch instead of the one in the user's profile.
    pub ssh_public_key: Option<String>,
    /// One of the user's key pairs (EC2's `KeyName`): its public key is
    /// used (over `ssh_public_key`), and its name recorded on the VMs.
    pub key_name: Option<String>,
    /// The lease asked for (`None`: the instance's `lease.default`, else
    /// `lease.max`, else no lease).
    pub lease: Option<crate::domain::LeaseAsk>,
    /// The availability zone (EC2's `Placement.AvailabilityZone`; `None`:
    /// the cloud chooses). The cloud checks it exists.
    pub zone: Option<String>,
    /// Block devices (EC2's `BlockDeviceMapping.N`), passed to the cloud.
    pub block_devices: Vec<cloudbroker_connector_api::BlockDevice>,
    /// EC2's `InstanceInitiatedShutdownBehavior` (`None`: the cloud's default).
    pub shutdown_behavior: Option<cloudbroker_connector_api::ShutdownBehavior>,
    /// The subnet to launch into (EC2's `SubnetId`; `None`: the instance's
    /// `subnet.id` / `vpc.id`, else the cloud's default VPC). One the actor
    /// sees and the cloud has (checked when planning).
    pub subnet_id: Option<String>,
    /// Security groups by name (EC2's `SecurityGroup.N`); with
    /// `security_group_ids` empty too, the instance's configured group.
    pub security_groups: Vec<String>,
    /// Security groups by id (EC2's `SecurityGroupId.N`).
    pub security_group_ids: Vec<String>,
    /// Termination protection on every VM of the launch (EC2's
    /// `DisableApiTermination`), written with the VM records.
    pub termination_protection: bool,
}

impl LaunchRequest {
    /// One VM of `image` on `instance`, nothing else set.
    pub fn new(instance: InstanceName, image: ImageRef) -> Self {
        Self {
            instance,
            image,
            instance_type: None,
            count: CountRange::exactly(1),
            name: String::new(),
            user_data: None,
            client_token: None,
            tags: LaunchTags::default(),
            ssh_public_key: None,
            key_name: None,
            lease: None,
            zone: None,
            block_devices: Vec::new(),
            shutdown_behavior: None,
            subnet_id: None,
            security_groups: Vec::new(),
            security_group_ids: Vec::new(),
            termination_protection: false,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn tags_are_classified_once() {
        let pairs = [("Name", "web"), ("team", "a"), ("cloudbroker:launch", "x"), ("Name", "db")];
        let (name, tags) = LaunchTags::classify(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string()))).unwrap();
        assert_eq!(name.as_deref(), Some("db"));
        assert_eq!(tags.user.get("team"), Some("a"));
        assert_eq!(tags.reserved.get("cloudbroker:launch").map(String::as_str), Some("x"));
        assert_eq!(tags.recorded().len(), 2);
        let kept = LaunchTags { name_tag: Some("chk".into()), ..tags.clone() };
        assert_eq!(kept.recorded().get("Name").map(String::as_str), Some("chk"));
        let e = LaunchTags::classify([("aws:x".to_string(), "1".to_string())]).unwrap_err();
        assert!(e.message.contains("reserved"), "{e}");
    }

    #[test]
    fn instance_types_are_printable() {
        assert_eq!(InstanceType::parse("t2.micro").unwrap().as_str(), "t2.micro");
        for bad in ["", "t2 micro", &"x".repeat(65)] {
            assert_eq!(InstanceType::parse(bad).unwrap_err().field, "instance_type");
        }
    }
}
