//! RunInstances' placement, block devices and shutdown behaviour, parsed
//! once and passed to the cloud (`Placement.AvailabilityZone`,
//! `BlockDeviceMapping.N.DeviceName` with `Ebs.VolumeSize`,
//! `Ebs.VolumeType`, `Ebs.Iops`, `Ebs.Encrypted`, `Ebs.DeleteOnTermination`,
//! `InstanceInitiatedShutdownBehavior`). What of a mapping is not read here
//! (`NoDevice`, `VirtualName`, `Ebs.SnapshotId`, ...) is left unread and
//! so refused by name ([`crate::accepted`]); whether the values suit the
//! cloud (zones, volume types with IOPS) is the cloud's to say.

use crate::error::Ec2Error;
use crate::ids::shown;
use crate::request::Params;
use cloudbroker_connector_api::{BlockDevice, ShutdownBehavior};
use cloudbroker_core::provisioning::{LaunchRequest, MAX_BLOCK_DEVICES};
use std::collections::BTreeMap;

/// What RunInstances asks for beyond image, type, count, key and tags.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct LaunchOptions {
    pub zone: Option<String>,
    pub block_devices: Vec<BlockDevice>,
    pub shutdown_behavior: Option<ShutdownBehavior>,
}

/// A boolean parameter (`true`/`false`, as EC2 takes them).
pub fn boolean(params: &Params, name: &str) -> Result<Option<bool>, Ec2Error> {
    match params.get(name) {
        None => Ok(None),
        Some(v) if v.eq_ignore_ascii_case("true") => Ok(Some(true)),
        Some(v) if v.eq_ignore_ascii_case("false") => Ok(Some(false)),
        Some(v) => Err(Ec2Error::invalid(format!("Value ({}) for parameter {name} is invalid: true or false", shown(v)))),
    }
}

/// A non-negative integer parameter within `range`, as `u32`.
fn number(params: &Params, name: &str, range: std::ops::RangeInclusive<i64>) -> Result<Option<u32>, Ec2Error> {
    Ok(params.int(name, range)?.and_then(|n| u32::try_from(n).ok()))
}

impl LaunchOptions {
    pub fn parse(params: &Params) -> Result<Self, Ec2Error> {
        let zone = match params.get("Placement.AvailabilityZone") {
            Some("") => {
                return Err(Ec2Error::invalid("Value () for parameter Placement.AvailabilityZone is invalid: an availability zone"))
            }
            Some(z) if z.len() > 64 || z.chars().any(char::is_control) => {
                return Err(Ec2Error::invalid(format!("Value ({}) for parameter Placement.AvailabilityZone is invalid", shown(z))))
            }
            z => z.map(str::to_string),
        };
        let shutdown_behavior = match params.get("InstanceInitiatedShutdownBehavior") {
            None => None,
            Some(v) => Some(ShutdownBehavior::parse(v).ok_or_else(|| {
                Ec2Error::invalid(format!(
                    "Value ({}) for parameter InstanceInitiatedShutdownBehavior is invalid: stop or terminate",
                    shown(v)
                ))
            })?),
        };
        Ok(Self { zone, block_devices: block_devices(params)?, shutdown_behavior })
    }

    /// Puts these options on `req`.
    pub fn apply(self, req: &mut LaunchRequest) {
        req.zone = self.zone;
        req.block_devices = self.block_devices;
        req.shutdown_behavior = self.shutdown_behavior;
    }
}

/// `BlockDeviceMapping.N.*`, in index order.
fn block_devices(params: &Params) -> Result<Vec<BlockDevice>, Ec2Error> {
    // Each N given, in order (malformed indices refused as every list's are).
    let mut indices = BTreeMap::new();
    for name in params.pairs().iter().map(|(k, _)| k.as_str()).filter(|k| k.starts_with("BlockDeviceMapping.")) {
        let n = name["BlockDeviceMapping.".len()..].split('.').next().unwrap_or("");
        match n.parse::<usize>() {
            Ok(i) if (1..=1_000).contains(&i) && !n.starts_with('0') => indices.insert(i, ()),
            _ => return Err(Ec2Error::invalid(format!("parameter {}: list index must be 1 to 1000", shown(name)))),
        };
    }
    if indices.len() > MAX_BLOCK_DEVICES {
        return Err(Ec2Error::invalid(format!("at most {MAX_BLOCK_DEVICES} BlockDeviceMapping entries")));
    }
    let mut out = Vec::with_capacity(indices.len());
    for n in indices.into_keys() {
        let p = |field: &str| format!("BlockDeviceMapping.{n}.{field}");
        let device_name = params.get(&p("DeviceName")).filter(|d| !d.is_empty()).ok_or_else(|| Ec2Error::missing(&p("DeviceName")))?;
        let volume_type = match params.get(&p("Ebs.VolumeType")) {
            None => None,
            Some(t) if !t.is_empty() && t.len() <= 32 && t.bytes().all(|b| b.is_ascii_alphanumeric()) => Some(t.to_string()),
            Some(t) => return Err(Ec2Error::invalid(format!("Value ({}) for parameter {} is invalid", shown(t), p("Ebs.VolumeType")))),
        };
        out.push(BlockDevice {
            device_name: device_name.to_string(),
            volume_size_gib: number(params, &p("Ebs.VolumeSize"), 1..=65_536)?,
            volume_type,
            iops: number(params, &p("Ebs.Iops"), 1..=1_000_000)?,
            encrypted: boolean(params, &p("Ebs.Encrypted"))?,
            delete_on_termination: boolean(params, &p("Ebs.DeleteOnTermination"))?,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(kv: &[(&str, &str)]) -> Params {
        Params::new(kv.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()).unwrap()
    }

    #[test]
    fn options_are_parsed_and_what_is_not_taken_stays_unread() {
        let params = p(&[
            ("Placement.AvailabilityZone", "sba"),
            ("InstanceInitiatedShutdownBehavior", "terminate"),
            ("BlockDeviceMapping.2.DeviceName", "/dev/sdf"),
            ("BlockDeviceMapping.2.Ebs.VolumeSize", "20"),
            ("BlockDeviceMapping.2.Ebs.VolumeType", "io2"),
            ("BlockDeviceMapping.2.Ebs.Iops", "1000"),
            ("BlockDeviceMapping.2.Ebs.Encrypted", "true"),
            ("BlockDeviceMapping.2.Ebs.DeleteOnTermination", "false"),
            ("BlockDeviceMapping.1.DeviceName", "/dev/sda1"),
            ("BlockDeviceMapping.1.Ebs.SnapshotId", "snap-1"),
        ]);
        let o = LaunchOptions::parse(&params).unwrap();
        assert_eq!(o.zone.as_deref(), Some("sba"));
        assert_eq!(o.shutdown_behavior, Some(ShutdownBehavior::Terminate));
        assert_eq!(o.block_devices.len(), 2);
        assert_eq!(o.block_devices[0], BlockDevice { device_name: "/dev/sda1".into(), ..BlockDevice::default() });
        let want = BlockDevice {
            device_name: "/dev/sdf".into(),
            volume_size_gib: Some(20),
            volume_type: Some("io2".into()),
            iops: Some(1000),
            encrypted: Some(true),
            delete_on_termination: Some(false),
        };
        assert_eq!(o.block_devices[1], want);
        assert_eq!(params.unread(), ["BlockDeviceMapping.1.Ebs.SnapshotId"]);
        let code = |kv: &[(&str, &str)]| LaunchOptions::parse(&p(kv)).unwrap_err().code;
        assert_eq!(code(&[("BlockDeviceMapping.1.Ebs.VolumeSize", "8")]), "MissingParameter");
        assert_eq!(
            code(&[("BlockDeviceMapping.1.DeviceName", "/dev/sdb"), ("BlockDeviceMapping.1.Ebs.Encrypted", "yes")]),
            "InvalidParameterValue"
        );
        assert_eq!(code(&[("InstanceInitiatedShutdownBehavior", "hibernate")]), "InvalidParameterValue");
        assert_eq!(code(&[("Placement.AvailabilityZone", "")]), "InvalidParameterValue");
    }
}
