//! A launch's zone, block devices and shutdown behaviour, and a new
//! volume's IOPS, encryption and throughput, put on the SDK's calls as
//! given: the cloud checks them (unset fields are its defaults).

use aws_sdk_ec2::operation::create_volume::builders::CreateVolumeFluentBuilder;
use aws_sdk_ec2::operation::run_instances::builders::RunInstancesFluentBuilder;
use aws_sdk_ec2::types::{BlockDeviceMapping, EbsBlockDevice, Placement, ShutdownBehavior as SdkShutdown, VolumeType};
use cloudbroker_connector_api::{CreateVolumeRequest, RunRequest, ShutdownBehavior};

fn int(n: Option<u32>) -> Option<i32> {
    n.and_then(|n| i32::try_from(n).ok())
}

/// `b` with the request's placement, block devices and shutdown behaviour.
pub(crate) fn run(mut b: RunInstancesFluentBuilder, req: &RunRequest) -> RunInstancesFluentBuilder {
    if let Some(zone) = &req.zone {
        b = b.placement(Placement::builder().availability_zone(zone.clone()).build());
    }
    for d in &req.block_devices {
        let ebs = EbsBlockDevice::builder()
            .set_volume_size(int(d.volume_size_gib))
            .set_volume_type(d.volume_type.as_deref().map(VolumeType::from))
            .set_iops(int(d.iops))
            .set_encrypted(d.encrypted)
            .set_delete_on_termination(d.delete_on_termination)
            .build();
        b = b.block_device_mappings(BlockDeviceMapping::builder().device_name(d.device_name.clone()).ebs(ebs).build());
    }
    if let Some(s) = req.shutdown_behavior {
        b = b.instance_initiated_shutdown_behavior(match s {
            ShutdownBehavior::Stop => SdkShutdown::Stop,
            ShutdownBehavior::Terminate => SdkShutdown::Terminate,
        });
    }
    b
}

/// `b` with the new volume's IOPS, encryption and throughput.
pub(crate) fn volume(b: CreateVolumeFluentBuilder, req: &CreateVolumeRequest) -> CreateVolumeFluentBuilder {
    b.set_iops(int(req.iops)).set_encrypted(req.encrypted).set_throughput(int(req.throughput))
}
