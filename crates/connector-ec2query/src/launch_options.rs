//! A launch's zone, block devices and shutdown behaviour, and a new
//! volume's IOPS, encryption and throughput, as Query API parameters
//! (`Placement.AvailabilityZone`, `BlockDeviceMapping.N.Ebs.*`,
//! `InstanceInitiatedShutdownBehavior`; `Iops`, `Encrypted`, `Throughput`):
//! passed as given, for the cloud to check.

use crate::request::Params;
use cloudbroker_connector_api::{CreateVolumeRequest, RunRequest};

fn push(p: &mut Params, k: impl Into<String>, v: impl Into<String>) {
    p.push((k.into(), v.into()));
}

/// Adds the launch's options to RunInstances' parameters.
pub fn run(p: &mut Params, req: &RunRequest) {
    if let Some(zone) = &req.zone {
        push(p, "Placement.AvailabilityZone", zone.clone());
    }
    for (i, d) in req.block_devices.iter().enumerate() {
        let n = i + 1;
        push(p, format!("BlockDeviceMapping.{n}.DeviceName"), d.device_name.clone());
        if let Some(s) = d.volume_size_gib {
            push(p, format!("BlockDeviceMapping.{n}.Ebs.VolumeSize"), s.to_string());
        }
        if let Some(t) = &d.volume_type {
            push(p, format!("BlockDeviceMapping.{n}.Ebs.VolumeType"), t.clone());
        }
        if let Some(iops) = d.iops {
            push(p, format!("BlockDeviceMapping.{n}.Ebs.Iops"), iops.to_string());
        }
        if let Some(e) = d.encrypted {
            push(p, format!("BlockDeviceMapping.{n}.Ebs.Encrypted"), e.to_string());
        }
        if let Some(d) = d.delete_on_termination {
            push(p, format!("BlockDeviceMapping.{n}.Ebs.DeleteOnTermination"), d.to_string());
        }
    }
    if let Some(s) = req.shutdown_behavior {
        push(p, "InstanceInitiatedShutdownBehavior", s.as_str());
    }
}

/// Adds the new volume's options to CreateVolume's parameters.
pub fn volume(p: &mut Params, req: &CreateVolumeRequest) {
    if let Some(iops) = req.iops {
        push(p, "Iops", iops.to_string());
    }
    if let Some(e) = req.encrypted {
        push(p, "Encrypted", e.to_string());
    }
    if let Some(t) = req.throughput {
        push(p, "Throughput", t.to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cloudbroker_connector_api::{BlockDevice, ShutdownBehavior};

    #[test]
    fn options_become_query_parameters() {
        let req = RunRequest {
            zone: Some("us-east-1b".into()),
            block_devices: vec![BlockDevice {
                device_name: "/dev/sdf".into(),
                volume_size_gib: Some(20),
                volume_type: Some("io2".into()),
                iops: Some(1000),
                encrypted: Some(true),
                delete_on_termination: Some(false),
            }],
            shutdown_behavior: Some(ShutdownBehavior::Terminate),
            ..RunRequest::default()
        };
        let mut p = Params::new();
        run(&mut p, &req);
        let got: Vec<String> = p.iter().map(|(k, v)| format!("{k}={v}")).collect();
        assert_eq!(
            got,
            [
                "Placement.AvailabilityZone=us-east-1b",
                "BlockDeviceMapping.1.DeviceName=/dev/sdf",
                "BlockDeviceMapping.1.Ebs.VolumeSize=20",
                "BlockDeviceMapping.1.Ebs.VolumeType=io2",
                "BlockDeviceMapping.1.Ebs.Iops=1000",
                "BlockDeviceMapping.1.Ebs.Encrypted=true",
                "BlockDeviceMapping.1.Ebs.DeleteOnTermination=false",
                "InstanceInitiatedShutdownBehavior=terminate",
            ]
        );
        let mut p = Params::new();
        volume(&mut p, &CreateVolumeRequest { iops: Some(4000), encrypted: Some(false), throughput: Some(250), ..Default::default() });
        assert_eq!(
            p,
            [("Iops".to_string(), "4000".to_string()), ("Encrypted".into(), "false".into()), ("Throughput".into(), "250".into())]
        );
    }
}
