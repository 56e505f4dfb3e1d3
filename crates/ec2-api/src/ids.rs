//! EC2-shaped ids for the broker's objects, stable and reversible where a
//! client sends them back: a VM `vm-X` is instance `i-X`; a native image is
//! `ami-` + 17 hex digits of a hash of its name (the same on every call and
//! replica); a launch is reservation `r-` + its first 17 hex digits.
//! A malformed id is an [`IdError`] (what was expected, what was given);
//! `error.rs` turns it into EC2's `*.Malformed` answer.

use cloudbroker_core::domain::{AllocationId, LaunchId, VmId, VolumeId};
use sha2::{Digest, Sha256};

/// The EC2 instance id of a VM.
pub fn instance_id(vm: &VmId) -> String {
    format!("i-{}", vm.as_str().strip_prefix("vm-").unwrap_or(vm.as_str()))
}

/// What kind of id was expected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdKind {
    /// An instance id (`i-...`).
    Instance,
    /// A volume id (`vol-...`), given in the named parameter.
    Volume(&'static str),
    /// An allocation id (`eipalloc-...`), given in the named parameter.
    Allocation(&'static str),
}

/// A client-sent id that is not one of `kind` (`given` is cut for messages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdError {
    pub kind: IdKind,
    pub given: String,
}

impl IdError {
    fn new(kind: IdKind, given: &str) -> Self {
        Self { kind, given: shown(given) }
    }
}

/// The VM of an EC2 instance id.
pub fn vm_id(instance: &str) -> Result<VmId, IdError> {
    instance
        .strip_prefix("i-")
        .and_then(|rest| VmId::parse(&format!("vm-{rest}")).ok())
        .ok_or_else(|| IdError::new(IdKind::Instance, instance))
}

/// A volume id given in parameter `param`.
pub fn volume_id(param: &'static str, v: &str) -> Result<VolumeId, IdError> {
    VolumeId::parse(v).map_err(|_| IdError::new(IdKind::Volume(param), v))
}

/// An allocation id given in parameter `param`.
pub fn allocation_id(param: &'static str, v: &str) -> Result<AllocationId, IdError> {
    AllocationId::parse(v).map_err(|_| IdError::new(IdKind::Allocation(param), v))
}

/// The stable `ami-` id of a native image.
pub fn image_id(name: &str) -> String {
    let h = Sha256::digest(format!("cloudbroker/native-image/{name}").as_bytes());
    format!("ami-{}", &hex::encode(h)[..17])
}

/// The stable `key-` id of a key pair: a hash of its project, name and
/// creation time (a pair deleted and made again gets a new id).
pub fn key_pair_id(project: &str, name: &str, created_at: &chrono::DateTime<chrono::Utc>) -> String {
    let h = Sha256::digest(format!("cloudbroker/key-pair/{project}/{name}/{}", created_at.timestamp_millis()).as_bytes());
    format!("key-{}", &hex::encode(h)[..17])
}

/// The reservation id of a launch.
pub fn reservation_id(launch: &LaunchId) -> String {
    format!("r-{}", &launch.as_str()[..17.min(launch.as_str().len())])
}

/// A client-sent value, cut for messages.
pub fn shown(s: &str) -> String {
    s.chars().take(64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_are_stable() {
        let vm = VmId::generate();
        let i = instance_id(&vm);
        assert!(i.starts_with("i-"));
        assert_eq!(vm_id(&i).unwrap(), vm);
        assert_eq!(vm_id("i-NOT/valid").unwrap_err(), IdError { kind: IdKind::Instance, given: "i-NOT/valid".into() });
        assert_eq!(vm_id("vm-abc").unwrap_err().kind, IdKind::Instance);
        assert_eq!(volume_id("VolumeId", "v-1").unwrap_err().kind, IdKind::Volume("VolumeId"));
        assert_eq!(allocation_id("AllocationId", "x").unwrap_err().kind, IdKind::Allocation("AllocationId"));
        assert_eq!(image_id("ubuntu-22.04"), image_id("ubuntu-22.04"));
        assert_ne!(image_id("ubuntu-22.04"), image_id("debian-12"));
        assert_eq!(image_id("x").len(), 21);
    }
}
