//! The simulated cloud's model: one [`World`] per sandbox instance, its
//! VMs, addresses and volumes with the account that owns each, and the
//! timed transitions ([`SandboxConnector::tick`]) computed from wall-clock
//! times kept with each resource, so they need no timer task. A resource is
//! found only through its own account (another account's id is "not found").

use super::*;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct SimVm {
    pub(crate) vm: Vm,
    pub(crate) account: String,
    /// Wall-clock time of the last state change, in ms since the epoch.
    pub(crate) changed_ms: i64,
    /// The security groups (ids) the VM was launched with.
    #[serde(default)]
    pub(crate) groups: Vec<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct SimAddress {
    pub(crate) info: AddressInfo,
    pub(crate) account: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct SimVolume {
    pub(crate) info: VolumeInfo,
    pub(crate) account: String,
    /// Wall-clock time of the last state change, in ms since the epoch.
    pub(crate) changed_ms: i64,
    pub(crate) tags: BTreeMap<String, String>,
}

/// One simulated cloud. Every field has a default so that a world stored by
/// an older broker still loads.
#[derive(Default, Serialize, Deserialize)]
#[serde(default)]
pub(crate) struct World {
    pub(crate) vms: BTreeMap<String, SimVm>,
    pub(crate) order: Vec<String>,
    /// Launch ids by `account` + U+001F + client token.
    pub(crate) tokens: BTreeMap<String, Vec<String>>,
    pub(crate) keys: HashMap<String, BTreeMap<String, String>>,
    pub(crate) addresses: BTreeMap<String, SimAddress>,
    pub(crate) volumes: BTreeMap<String, SimVolume>,
    pub(crate) vpcs: BTreeMap<String, crate::vpcs::SimVpc>,
    pub(crate) subnets: BTreeMap<String, crate::vpcs::SimSubnet>,
    /// Accounts whose default VPC and subnet were made.
    pub(crate) net_accounts: std::collections::BTreeSet<String>,
    /// VMs' attributes beyond [`Vm`] (user data, shutdown behaviour...), by id.
    pub(crate) attrs: BTreeMap<String, super::instance_attrs::SimAttrs>,
    pub(crate) snapshots: BTreeMap<String, SimSnapshot>,
    /// Images made from instances (`CreateImage`), each its account's alone.
    pub(crate) images: BTreeMap<String, SimImage>,
    /// Security groups by id (`security_groups`).
    pub(crate) groups: BTreeMap<String, security_groups::SimGroup>,
    /// The block devices VMs were launched with, by VM id (`launch_options`).
    pub(crate) block_devices: BTreeMap<String, Vec<cloudbroker_connector_api::BlockDevice>>,
    /// Volumes' IOPS, encryption and throughput, by volume id (`launch_options`).
    pub(crate) volume_options: BTreeMap<String, crate::launch_options::SimVolumeOptions>,
    /// Tags of VPCs, subnets, security groups and snapshots, by id (`object_tags`).
    pub(crate) object_tags: BTreeMap<String, BTreeMap<String, String>>,
    pub(crate) next: u64,
}

/// Splits resource ids into volumes and instances.
pub(crate) fn split_volumes(ids: &[String]) -> (Vec<String>, Vec<String>) {
    ids.iter().cloned().partition(|id| id.starts_with("vol-"))
}

pub(crate) fn token_key(account: &str, token: &str) -> String {
    format!("{account}\u{1f}{token}")
}

pub(crate) fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

pub(crate) fn err_invalid(code: &str, message: impl Into<String>) -> ConnectorError {
    ConnectorError::InvalidRequest { code: code.into(), message: message.into() }
}

pub(crate) fn err_not_found(code: &str, message: impl Into<String>) -> ConnectorError {
    ConnectorError::NotFound { code: code.into(), message: message.into() }
}

/// Whether `device` is a device name a volume may take.
pub(crate) fn valid_device(device: &str) -> bool {
    let rest = device.strip_prefix("/dev/sd").or_else(|| device.strip_prefix("/dev/xvd"));
    matches!(rest.map(str::as_bytes), Some([b'b'..=b'z']))
}

impl World {
    pub(crate) fn address<'w>(&'w mut self, account: &str, id: &str) -> Result<&'w mut SimAddress, ConnectorError> {
        match self.addresses.get_mut(id) {
            Some(a) if a.account == account => Ok(a),
            _ => Err(err_not_found("InvalidAllocationID.NotFound", format!("The allocation ID '{id}' does not exist"))),
        }
    }

    pub(crate) fn volume<'w>(&'w mut self, account: &str, id: &str) -> Result<&'w mut SimVolume, ConnectorError> {
        match self.volumes.get_mut(id) {
            Some(v) if v.account == account => Ok(v),
            _ => Err(err_not_found("InvalidVolume.NotFound", format!("The volume '{id}' does not exist."))),
        }
    }

    /// A VM of the account that may take an address or a volume (running or stopped).
    pub(crate) fn usable_vm(&self, account: &str, id: &str) -> Result<&SimVm, ConnectorError> {
        match self.vms.get(id) {
            Some(s) if s.account == account => match s.vm.state {
                VmState::Running | VmState::Stopped => Ok(s),
                other => Err(err_invalid("IncorrectInstanceState", format!("The instance '{id}' is not in a valid state ({other})"))),
            },
            _ => Err(err_not_found("InvalidInstanceID.NotFound", format!("The instance ID '{id}' does not exist"))),
        }
    }
}

impl SandboxConnector {
    /// Advances timed transitions.
    pub(crate) fn tick(&self, w: &mut World) {
        let now = now_ms();
        let delay = i64::try_from(self.settings.boot_delay.as_millis()).unwrap_or(i64::MAX);
        for s in w.vms.values_mut() {
            if now.saturating_sub(s.changed_ms) < delay {
                continue;
            }
            let next = match s.vm.state {
                VmState::Pending => VmState::Running,
                VmState::Stopping => VmState::Stopped,
                VmState::ShuttingDown => VmState::Terminated,
                _ => continue,
            };
            s.vm.state = next;
            s.changed_ms = now;
            if next == VmState::Terminated || next == VmState::Stopped {
                s.vm.public_ip = None;
            }
            if next == VmState::Terminated {
                s.vm.private_ip = None;
            }
        }
        // A terminated VM keeps no address and no volume.
        let gone: Vec<String> = w.vms.iter().filter(|(_, s)| s.vm.state == VmState::Terminated).map(|(id, _)| id.clone()).collect();
        for a in w.addresses.values_mut() {
            if a.info.instance_id.as_ref().is_some_and(|i| gone.contains(i)) {
                a.info.instance_id = None;
                a.info.association_id = None;
                a.info.private_ip = None;
            }
        }
        for v in w.volumes.values_mut() {
            let before = v.info.attachments.len();
            v.info.attachments.retain(|a| !gone.contains(&a.instance_id));
            if before != v.info.attachments.len() && v.info.attachments.is_empty() {
                v.info.state = VolumeState::Available;
            }
        }
        Self::tick_snapshots(w, now, delay);
        for v in w.volumes.values_mut() {
            if now.saturating_sub(v.changed_ms) < delay {
                continue;
            }
            if v.info.state == VolumeState::Creating {
                v.info.state = VolumeState::Available;
            }
            for a in &mut v.info.attachments {
                if a.state == "attaching" {
                    a.state = "attached".into();
                }
            }
            if v.info.attachments.iter().any(|a| a.state == "detaching") {
                v.info.attachments.retain(|a| a.state != "detaching");
                if v.info.attachments.is_empty() {
                    v.info.state = VolumeState::Available;
                }
            }
        }
    }
}
