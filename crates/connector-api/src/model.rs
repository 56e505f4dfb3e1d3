//! Shared types of the connector API.

use crate::secret::SecretString;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;

/// A user's (or a shared) cloud credential for one connector instance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: SecretString,
}

impl Credentials {
    /// Builds a credential pair.
    pub fn new(access_key_id: impl Into<String>, secret_access_key: impl Into<String>) -> Self {
        Self { access_key_id: access_key_id.into(), secret_access_key: SecretString::new(secret_access_key.into()) }
    }

    /// The access key id masked for display: its last four characters.
    pub fn masked_access_key(&self) -> String {
        mask_tail(&self.access_key_id)
    }
}

/// Masks all but the last four characters of a value (`****ABCD`).
pub fn mask_tail(v: &str) -> String {
    let chars: Vec<char> = v.chars().collect();
    if chars.len() <= 4 {
        return "****".to_string();
    }
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("****{tail}")
}

/// The result of a credential check.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CredentialCheck {
    /// The account the credentials belong to, if the cloud says.
    pub account: Option<String>,
    /// A human-readable summary.
    pub message: String,
}

/// VM states, as EC2 names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "kebab-case")]
pub enum VmState {
    Pending,
    Running,
    ShuttingDown,
    Terminated,
    Stopping,
    Stopped,
}

impl VmState {
    /// The EC2 name of the state.
    pub fn as_str(self) -> &'static str {
        match self {
            VmState::Pending => "pending",
            VmState::Running => "running",
            VmState::ShuttingDown => "shutting-down",
            VmState::Terminated => "terminated",
            VmState::Stopping => "stopping",
            VmState::Stopped => "stopped",
        }
    }

    /// Parses an EC2 state name.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => VmState::Pending,
            "running" => VmState::Running,
            "shutting-down" => VmState::ShuttingDown,
            "terminated" => VmState::Terminated,
            "stopping" => VmState::Stopping,
            "stopped" => VmState::Stopped,
            _ => return None,
        })
    }

    /// EC2's numeric state code (low byte).
    pub fn code(self) -> i32 {
        match self {
            VmState::Pending => 0,
            VmState::Running => 16,
            VmState::ShuttingDown => 32,
            VmState::Terminated => 48,
            VmState::Stopping => 64,
            VmState::Stopped => 80,
        }
    }
}

/// The broker's status of a VM the cloud reports in this state.
impl From<VmState> for cloudbroker_model::VmStatus {
    fn from(s: VmState) -> Self {
        use cloudbroker_model::VmStatus;
        match s {
            VmState::Pending => VmStatus::Pending,
            VmState::Running => VmStatus::Running,
            VmState::Stopping => VmStatus::Stopping,
            VmState::Stopped => VmStatus::Stopped,
            VmState::ShuttingDown => VmStatus::ShuttingDown,
            VmState::Terminated => VmStatus::Terminated,
        }
    }
}

impl fmt::Display for VmState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A VM as the cloud describes it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Vm {
    /// The cloud's instance id (e.g. `i-0123...`).
    pub id: String,
    pub state: VmState,
    pub image_id: String,
    pub instance_type: String,
    pub private_ip: Option<String>,
    pub public_ip: Option<String>,
    pub key_name: Option<String>,
    pub launch_time: Option<DateTime<Utc>>,
    pub client_token: Option<String>,
    pub tags: Vec<(String, String)>,
    /// When the cloud says the current state began, where it says so (EC2's
    /// `StateTransitionReason` of a user-initiated stop or terminate: see
    /// [`transition_time`]); `None` when it does not. Metering bills a state
    /// the broker learns late from this time (clamped by the store).
    #[serde(default)]
    pub state_since: Option<DateTime<Utc>>,
    /// The subnet and VPC it is in, where the cloud says.
    #[serde(default)]
    pub subnet_id: Option<String>,
    #[serde(default)]
    pub vpc_id: Option<String>,
    /// The security groups it is in, as (id, name), where the cloud says
    /// (EC2's `groupSet`).
    #[serde(default)]
    pub security_groups: Vec<(String, String)>,
    /// Its EBS volumes (the root volume and those of `BlockDeviceMapping.N`),
    /// where the cloud says (EC2's `blockDeviceMapping`).
    #[serde(default)]
    pub volumes: Vec<VmVolume>,
    /// Its root device (`/dev/sda1`...), where the cloud says.
    #[serde(default)]
    pub root_device_name: Option<String>,
}

/// A volume of a VM as the cloud describes it (an item of EC2's `blockDeviceMapping`).
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct VmVolume {
    pub device_name: String,
    pub volume_id: String,
    pub delete_on_termination: bool,
}

impl Vm {
    /// The value of a tag.
    pub fn tag(&self, key: &str) -> Option<&str> {
        self.tags.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

/// The time in an EC2 `StateTransitionReason`, e.g. `User initiated
/// (2026-12-07 06:00:00 GMT)` (AWS writes `GMT`, moto `UTC`): the last
/// parenthesised `YYYY-MM-DD HH:MM:SS` followed by `GMT` or `UTC`. `None`
/// when the reason holds no such time (an empty reason, a running VM).
pub fn transition_time(reason: &str) -> Option<DateTime<Utc>> {
    let open = reason.rfind('(')?;
    let inner = reason[open + 1..].strip_suffix(')').or_else(|| reason[open + 1..].split(')').next())?.trim();
    let stamp = inner.strip_suffix("GMT").or_else(|| inner.strip_suffix("UTC"))?.trim();
    chrono::NaiveDateTime::parse_from_str(stamp, "%Y-%m-%d %H:%M:%S").ok().map(|t| t.and_utc())
}

/// A launch request.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct RunRequest {
    pub image_id: String,
    pub instance_type: String,
    /// How many VMs (all or nothing).
    pub count: u32,
    pub key_name: Option<String>,
    pub user_data: Option<String>,
    pub security_groups: Vec<String>,
    /// Security groups by id (`SecurityGroupId.N`), besides those named in
    /// `security_groups`; the cloud's default group when both are empty.
    pub security_group_ids: Vec<String>,
    /// The subnet to launch into (`None`: the cloud's default, its default VPC).
    pub subnet_id: Option<String>,
    pub tags: Vec<(String, String)>,
    /// Idempotency token derived from the broker's launch request.
    pub client_token: String,
    /// The availability zone to launch in (EC2's `Placement.AvailabilityZone`;
    /// `None`: the cloud chooses).
    pub zone: Option<String>,
    /// Block devices (EC2's `BlockDeviceMapping.N`), in the order given.
    pub block_devices: Vec<BlockDevice>,
    /// What a shutdown from inside the VM does (EC2's
    /// `InstanceInitiatedShutdownBehavior`; `None`: the cloud's default, `stop`).
    pub shutdown_behavior: Option<ShutdownBehavior>,
}

/// One block device of a launch (EC2's `BlockDeviceMapping.N` with `Ebs.*`):
/// unset fields are the cloud's defaults (the image's for the root device).
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct BlockDevice {
    /// `/dev/sda1`, `/dev/sdf`, `xvdb`...
    pub device_name: String,
    pub volume_size_gib: Option<u32>,
    /// `gp2`, `gp3`, `io1`, `io2`, `st1`, `sc1`, `standard`.
    pub volume_type: Option<String>,
    pub iops: Option<u32>,
    pub encrypted: Option<bool>,
    pub delete_on_termination: Option<bool>,
}

/// EC2's `InstanceInitiatedShutdownBehavior`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ShutdownBehavior {
    Stop,
    Terminate,
}

impl ShutdownBehavior {
    /// EC2's name (`stop`, `terminate`).
    pub fn as_str(self) -> &'static str {
        match self {
            ShutdownBehavior::Stop => "stop",
            ShutdownBehavior::Terminate => "terminate",
        }
    }

    /// Parses EC2's name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "stop" => Some(ShutdownBehavior::Stop),
            "terminate" => Some(ShutdownBehavior::Terminate),
            _ => None,
        }
    }
}

/// What to describe. Empty means "everything of the account".
#[derive(Clone, Debug, PartialEq, Default)]
pub struct DescribeFilter {
    pub ids: Vec<String>,
    /// `tag:key = value` filters, all of which must match.
    pub tags: Vec<(String, String)>,
    /// Only VMs carrying this tag key (any value).
    pub tag_keys: Vec<String>,
}

impl DescribeFilter {
    /// Filter by ids.
    pub fn ids(ids: &[String]) -> Self {
        Self { ids: ids.to_vec(), ..Self::default() }
    }

    /// Filter by one tag.
    pub fn tag(key: &str, value: &str) -> Self {
        Self { tags: vec![(key.to_string(), value.to_string())], ..Self::default() }
    }

    /// Whether a VM matches (used by connectors that filter themselves).
    pub fn matches(&self, vm: &Vm) -> bool {
        (self.ids.is_empty() || self.ids.contains(&vm.id))
            && self.tags.iter().all(|(k, v)| vm.tag(k) == Some(v.as_str()))
            && self.tag_keys.iter().all(|k| vm.tag(k).is_some())
    }
}

/// A state transition reported by start/stop/terminate.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StateChange {
    pub id: String,
    pub previous: VmState,
    pub current: VmState,
}

/// A key pair known to the cloud.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct KeyPairInfo {
    pub name: String,
    pub fingerprint: Option<String>,
}

/// An image the cloud offers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageInfo {
    pub id: String,
    pub name: Option<String>,
    pub description: Option<String>,
    pub state: Option<String>,
}

/// An instance type (size) the cloud offers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct InstanceTypeInfo {
    pub name: String,
    pub vcpus: Option<u32>,
    pub memory_mib: Option<u64>,
}

/// An Elastic IP address as the cloud describes it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddressInfo {
    pub public_ip: String,
    /// The cloud's allocation id (`eipalloc-...`).
    pub allocation_id: String,
    /// The cloud instance it is associated with, if any.
    pub instance_id: Option<String>,
    /// The association id (`eipassoc-...`) while associated.
    pub association_id: Option<String>,
    /// The private address it maps to while associated.
    pub private_ip: Option<String>,
}

/// Volume states, as EC2 names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum VolumeState {
    Creating,
    Available,
    InUse,
    Deleting,
    Deleted,
    Error,
}

impl VolumeState {
    /// The EC2 name of the state.
    pub fn as_str(self) -> &'static str {
        match self {
            VolumeState::Creating => "creating",
            VolumeState::Available => "available",
            VolumeState::InUse => "in-use",
            VolumeState::Deleting => "deleting",
            VolumeState::Deleted => "deleted",
            VolumeState::Error => "error",
        }
    }

    /// Parses an EC2 volume state name.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "creating" => VolumeState::Creating,
            "available" => VolumeState::Available,
            "in-use" => VolumeState::InUse,
            "deleting" => VolumeState::Deleting,
            "deleted" => VolumeState::Deleted,
            "error" => VolumeState::Error,
            _ => return None,
        })
    }
}

impl fmt::Display for VolumeState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A volume's attachment to a cloud instance.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeAttachment {
    pub volume_id: String,
    /// The cloud instance id.
    pub instance_id: String,
    /// The device name (`/dev/sdf`).
    pub device: String,
    /// `attaching`, `attached`, `detaching` or `detached`.
    pub state: String,
}

/// A block storage volume as the cloud describes it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeInfo {
    /// The cloud's volume id (`vol-...`).
    pub volume_id: String,
    pub size_gib: u32,
    /// The availability zone.
    pub zone: String,
    pub state: VolumeState,
    pub attachments: Vec<VolumeAttachment>,
}

/// A request for a new volume.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct CreateVolumeRequest {
    pub size_gib: u32,
    pub zone: String,
    /// `gp2`, `gp3`, `standard`... (the cloud's default when absent).
    pub volume_type: Option<String>,
    /// Provisioned IOPS (io1, io2, gp3).
    pub iops: Option<u32>,
    /// Encrypted at rest (`None`: the account's default).
    pub encrypted: Option<bool>,
    /// Throughput in MiB/s (gp3).
    pub throughput: Option<u32>,
    /// The snapshot the volume is made from (its size at least the snapshot's).
    pub snapshot_id: Option<String>,
}

/// A snapshot of a volume as the cloud describes it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotInfo {
    /// The cloud's snapshot id (`snap-...`).
    pub snapshot_id: String,
    /// The volume it was taken of.
    pub volume_id: String,
    pub size_gib: u32,
    /// `pending`, `completed`, `error` (EC2's names).
    pub state: String,
    pub description: String,
    /// When the snapshot was started.
    pub start_time: Option<DateTime<Utc>>,
    /// `0%` .. `100%`.
    pub progress: String,
}

/// An image made from a cloud instance (EC2 `CreateImage`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CreateImageRequest {
    pub instance_id: String,
    pub name: String,
    pub description: Option<String>,
    /// Take the image without rebooting the instance.
    pub no_reboot: bool,
}

/// Tags the broker puts on every VM it launches, so it can find them again
/// after a crash.
pub mod tags {
    /// Identifies the broker deployment (its id).
    pub const BROKER: &str = "cloudbroker:broker";
    /// The broker user who owns the VM.
    pub const USER: &str = "cloudbroker:user";
    /// The broker project the VM belongs to (absent on VMs launched before
    /// projects: the user's personal project).
    pub const PROJECT: &str = "cloudbroker:project";
    /// The broker's launch request id.
    pub const LAUNCH: &str = "cloudbroker:launch";
    /// Index of the VM within its launch request.
    pub const INDEX: &str = "cloudbroker:index";
    /// The user-given VM name (EC2 convention).
    pub const NAME: &str = cloudbroker_model::NAME_TAG;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_round_trip() {
        for s in [VmState::Pending, VmState::Running, VmState::ShuttingDown, VmState::Terminated, VmState::Stopping, VmState::Stopped] {
            assert_eq!(VmState::parse(s.as_str()), Some(s));
        }
        assert_eq!(VmState::parse("booting"), None);
        assert_eq!(VmState::Stopped.code(), 80);
    }

    #[test]
    fn masks_keys_and_hides_secret() {
        let c = Credentials::new("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY");
        assert_eq!(c.masked_access_key(), "****MPLE");
        assert!(!format!("{c:?}").contains("wJalr"));
        assert_eq!(mask_tail("abc"), "****");
    }

    #[test]
    fn transition_times_are_read_from_reasons() {
        let at = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        assert_eq!(transition_time("User initiated (2026-12-07 06:00:00 GMT)"), Some(at("2026-12-07T06:00:00Z")));
        assert_eq!(transition_time("User initiated (2026-12-07 06:00:01 UTC)"), Some(at("2026-12-07T06:00:01Z")));
        assert_eq!(transition_time("Server.SpotInstanceTermination (2026-01-02 03:04:05 GMT)"), Some(at("2026-01-02T03:04:05Z")));
        for none in ["", "User initiated", "User initiated (soon)", "User initiated (2026-12-07 06:00:00 CET)"] {
            assert_eq!(transition_time(none), None, "{none}");
        }
    }

    #[test]
    fn filter_matches() {
        let vm = Vm {
            id: "i-1".into(),
            state: VmState::Running,
            image_id: "ami-1".into(),
            instance_type: "t2.micro".into(),
            private_ip: None,
            public_ip: None,
            key_name: None,
            launch_time: None,
            client_token: None,
            tags: vec![("a".into(), "1".into())],
            state_since: None,
            subnet_id: None,
            vpc_id: None,
            security_groups: vec![],
            volumes: vec![],
            root_device_name: None,
        };
        assert!(DescribeFilter::default().matches(&vm));
        assert!(DescribeFilter::tag("a", "1").matches(&vm));
        assert!(!DescribeFilter::tag("a", "2").matches(&vm));
        assert!(!DescribeFilter::ids(&["i-2".into()]).matches(&vm));
        assert!(!DescribeFilter { tag_keys: vec!["b".into()], ..Default::default() }.matches(&vm));
    }

    #[test]
    fn states_map_to_the_brokers_statuses() {
        use cloudbroker_model::VmStatus;
        // Moved from the model's `statuses_round_trip_and_classify`.
        assert_eq!(VmStatus::from(VmState::ShuttingDown), VmStatus::ShuttingDown);
        assert_eq!(cloudbroker_model::NAME_TAG, tags::NAME);
    }
}
