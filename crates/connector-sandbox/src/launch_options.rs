//! What a launch or a new volume asks for beyond the basics, with EC2's
//! rules: the availability zone must be the sandbox's one zone; block
//! devices take distinct device names, sizes of 1 to [`MAX_VOLUME_GIB`]
//! GiB, EC2's volume types, and IOPS only where the type takes them
//! (`io1`/`io2` need them); throughput only on `gp3`. Whatever passes is
//! recorded in the world (block devices and volume options by id; the
//! shutdown behaviour as the VM's attribute), so a launch is simulated,
//! never merely accepted.

use super::*;
use cloudbroker_connector_api::BlockDevice;

/// EC2's volume types.
const VOLUME_TYPES: &[&str] = &["standard", "gp2", "gp3", "io1", "io2", "st1", "sc1"];

/// What the sandbox keeps of a volume's options (absent: the defaults).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub(crate) struct SimVolumeOptions {
    pub(crate) iops: Option<u32>,
    pub(crate) encrypted: bool,
    pub(crate) throughput: Option<u32>,
}

/// The zone `asked` on the sandbox whose one zone is `zone`.
pub(crate) fn check_zone(asked: Option<&str>, zone: &str) -> Result<(), ConnectorError> {
    match asked {
        Some(z) if z != zone => {
            Err(err_invalid("InvalidParameterValue", format!("Invalid availability zone: [{z}]; this sandbox has one zone, {zone}")))
        }
        _ => Ok(()),
    }
}

/// IOPS and throughput against the volume type (`None`: gp2, EC2's default).
fn check_performance(what: &str, volume_type: Option<&str>, iops: Option<u32>, throughput: Option<u32>) -> Result<(), ConnectorError> {
    let t = volume_type.unwrap_or("gp2");
    if !VOLUME_TYPES.contains(&t) {
        return Err(err_invalid("InvalidParameterValue", format!("{what}: invalid volume type: {t}")));
    }
    match (t, iops) {
        ("io1" | "io2", None) => {
            return Err(err_invalid(
                "InvalidParameterCombination",
                format!("{what}: the parameter iops must be specified for {t} volumes."),
            ))
        }
        ("io1" | "io2", Some(n)) if !(100..=64_000).contains(&n) => {
            return Err(err_invalid("InvalidParameterValue", format!("{what}: iops must be from 100 to 64000 for {t} volumes, not {n}")))
        }
        ("gp3", Some(n)) if !(3_000..=16_000).contains(&n) => {
            return Err(err_invalid("InvalidParameterValue", format!("{what}: iops must be from 3000 to 16000 for gp3 volumes, not {n}")))
        }
        ("standard" | "gp2" | "st1" | "sc1", Some(_)) => {
            return Err(err_invalid("InvalidParameterCombination", format!("{what}: the parameter iops is not supported for {t} volumes.")))
        }
        _ => {}
    }
    match (t, throughput) {
        ("gp3", Some(n)) if !(125..=1_000).contains(&n) => {
            Err(err_invalid("InvalidParameterValue", format!("{what}: throughput must be from 125 to 1000 MiB/s, not {n}")))
        }
        (_, Some(_)) if t != "gp3" => {
            Err(err_invalid("InvalidParameterCombination", format!("{what}: the parameter throughput is only supported for gp3 volumes.")))
        }
        _ => Ok(()),
    }
}

/// A launch's zone and block devices, checked as EC2 does.
pub(crate) fn check_launch(req: &RunRequest, zone: &str) -> Result<(), ConnectorError> {
    check_zone(req.zone.as_deref(), zone)?;
    let mut seen = std::collections::BTreeSet::new();
    for d in &req.block_devices {
        let name = d.device_name.as_str();
        let plain = name.strip_prefix("/dev/").unwrap_or(name);
        if plain.is_empty() || plain.len() > 32 || !plain.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(err_invalid("InvalidBlockDeviceMapping", format!("Invalid device name {name}")));
        }
        if !seen.insert(plain) {
            return Err(err_invalid(
                "InvalidBlockDeviceMapping",
                format!("The device '{name}' is used in more than one block-device mapping"),
            ));
        }
        if let Some(s) = d.volume_size_gib.filter(|s| *s == 0 || *s > MAX_VOLUME_GIB) {
            return Err(err_invalid("InvalidParameterValue", format!("Volume of {s}GiB is out of range 1-{MAX_VOLUME_GIB}")));
        }
        check_performance(name, d.volume_type.as_deref(), d.iops, None)?;
    }
    Ok(())
}

/// A new volume's options, checked as EC2 does.
pub(crate) fn check_volume(req: &CreateVolumeRequest) -> Result<(), ConnectorError> {
    check_performance("CreateVolume", req.volume_type.as_deref(), req.iops, req.throughput)
}

impl World {
    /// Records what a launch asked of VM `id`.
    pub(crate) fn record_launch(&mut self, id: &str, req: &RunRequest) {
        if !req.block_devices.is_empty() {
            self.block_devices.insert(id.to_string(), req.block_devices.clone());
        }
        if let Some(b) = req.shutdown_behavior {
            self.attrs.entry(id.to_string()).or_default().shutdown_behavior = b.as_str().to_string();
        }
    }

    /// Records a new volume's options.
    pub(crate) fn record_volume(&mut self, id: &str, req: &CreateVolumeRequest) {
        let options = SimVolumeOptions { iops: req.iops, encrypted: req.encrypted.unwrap_or(false), throughput: req.throughput };
        if options != SimVolumeOptions::default() {
            self.volume_options.insert(id.to_string(), options);
        }
    }
}

impl SandboxConnector {
    /// The block devices VM `id` was launched with (none: the image's root device only).
    pub async fn block_devices(&self, creds: &Credentials, id: &str) -> Result<Vec<BlockDevice>, ConnectorError> {
        self.enter(creds, |w, acct| {
            Self::owned(w, acct, id)?;
            Ok(w.block_devices.get(id).cloned().unwrap_or_default())
        })
        .await
    }

    /// Volume `id`'s IOPS, encryption and throughput.
    pub async fn volume_options(&self, creds: &Credentials, id: &str) -> Result<(Option<u32>, bool, Option<u32>), ConnectorError> {
        self.enter(creds, |w, acct| {
            w.volume(acct, id)?;
            let o = w.volume_options.get(id).cloned().unwrap_or_default();
            Ok((o.iops, o.encrypted, o.throughput))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dev(name: &str, t: Option<&str>, iops: Option<u32>) -> BlockDevice {
        BlockDevice { device_name: name.into(), volume_type: t.map(str::to_string), iops, ..BlockDevice::default() }
    }

    #[test]
    fn launches_follow_ec2s_rules() {
        let ok = RunRequest {
            zone: Some("sba".into()),
            block_devices: vec![dev("/dev/sda1", Some("gp3"), Some(3000))],
            ..RunRequest::default()
        };
        check_launch(&ok, "sba").unwrap();
        let code = |r: RunRequest| check_launch(&r, "sba").unwrap_err().code().map(str::to_string).unwrap_or_default();
        assert_eq!(code(RunRequest { zone: Some("sbz".into()), ..RunRequest::default() }), "InvalidParameterValue");
        let twice = vec![dev("/dev/sdb", None, None), dev("sdb", None, None)];
        assert_eq!(code(RunRequest { block_devices: twice, ..RunRequest::default() }), "InvalidBlockDeviceMapping");
        assert_eq!(
            code(RunRequest { block_devices: vec![dev("/dev/sdb", Some("gp2"), Some(500))], ..RunRequest::default() }),
            "InvalidParameterCombination"
        );
        assert_eq!(
            code(RunRequest { block_devices: vec![dev("/dev/sdb", Some("io2"), None)], ..RunRequest::default() }),
            "InvalidParameterCombination"
        );
        assert_eq!(
            code(RunRequest { block_devices: vec![dev("/dev/sdb", Some("fast"), None)], ..RunRequest::default() }),
            "InvalidParameterValue"
        );
        let big = BlockDevice { volume_size_gib: Some(MAX_VOLUME_GIB + 1), ..dev("/dev/sdb", None, None) };
        assert_eq!(code(RunRequest { block_devices: vec![big], ..RunRequest::default() }), "InvalidParameterValue");
        let v = |t: &str, iops, throughput| CreateVolumeRequest { volume_type: Some(t.into()), iops, throughput, ..Default::default() };
        check_volume(&v("gp3", Some(4000), Some(250))).unwrap();
        assert_eq!(check_volume(&v("gp2", None, Some(250))).unwrap_err().code(), Some("InvalidParameterCombination"));
        assert_eq!(check_volume(&v("gp3", None, Some(5000))).unwrap_err().code(), Some("InvalidParameterValue"));
    }
}
