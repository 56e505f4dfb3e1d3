//! Regions are the broker's connector instances: `DescribeRegions`,
//! `DescribeAvailabilityZones` (one zone per region), and
//! `DescribeAccountAttributes` (`max-instances` is the caller's quota, or
//! its project's when that is lower).

use super::Ctx;
use crate::error::Ec2Error;
use crate::request::Params;
use cloudbroker_core::domain::InstanceName;
use cloudbroker_core::registry::Status;

/// `DescribeRegions`' parameter: the regions wanted (`RegionName.N`; none is all).
pub struct DescribeRegionsInput {
    pub wanted: Vec<String>,
}

impl DescribeRegionsInput {
    pub fn parse(params: &Params) -> Result<Self, Ec2Error> {
        Ok(Self { wanted: params.list("RegionName")? })
    }
}

/// `DescribeInstanceTypes`' parameter: the types wanted (`InstanceType.N`; none is all).
pub struct DescribeInstanceTypesInput {
    pub wanted: Vec<String>,
}

impl DescribeInstanceTypesInput {
    pub fn parse(params: &Params) -> Result<Self, Ec2Error> {
        Ok(Self { wanted: params.list("InstanceType")? })
    }
}

pub fn describe_regions(ctx: &Ctx<'_>, input: DescribeRegionsInput) -> Result<String, Ec2Error> {
    let wanted = input.wanted;
    let snap = ctx.broker.registry.snapshot();
    let (mut x, root) = ctx.doc("DescribeRegions");
    x.open("regionInfo");
    for i in &snap.instances {
        if !wanted.is_empty() && !wanted.iter().any(|w| w == i.name.as_str()) {
            continue;
        }
        x.open("item")
            .leaf("regionName", i.name.as_str())
            .leaf("regionEndpoint", &format!("{}/ec2", ctx.base_url))
            .leaf("optInStatus", if matches!(i.status, Status::Ready) { "opt-in-not-required" } else { "not-opted-in" })
            .close("item");
    }
    x.close("regionInfo");
    Ok(x.finish(&root))
}

pub fn describe_availability_zones(ctx: &Ctx<'_>) -> Result<String, Ec2Error> {
    let instance = ctx.instance()?;
    let snap = ctx.broker.registry.snapshot();
    let ready = snap.instance(instance.as_str()).is_some_and(|i| matches!(i.status, Status::Ready));
    let (mut x, root) = ctx.doc("DescribeAvailabilityZones");
    x.open("availabilityZoneInfo")
        .open("item")
        .leaf("zoneName", &format!("{instance}a"))
        .leaf("zoneState", if ready { "available" } else { "unavailable" })
        .leaf("regionName", instance.as_str())
        .leaf("zoneType", "availability-zone")
        .close("item")
        .close("availabilityZoneInfo");
    Ok(x.finish(&root))
}

pub async fn describe_account_attributes(ctx: &Ctx<'_>) -> Result<String, Ec2Error> {
    let instance = ctx.instance()?;
    let (limit, _) = ctx.broker.provisioning.limit_for(&ctx.caller.actor.name, &instance).await?;
    // The key's project may cap its members lower than the user's own quota.
    let (project_limit, _) = ctx.broker.provisioning.project_limit_for(&ctx.caller.actor.project, &instance).await?;
    let limit = project_limit.map_or(limit, |p| p.min(limit));
    let (mut x, root) = ctx.doc("DescribeAccountAttributes");
    x.open("accountAttributeSet");
    for (name, value) in [("max-instances", limit.to_string()), ("supported-platforms", "VPC".to_string())] {
        x.open("item")
            .leaf("attributeName", name)
            .open("attributeValueSet")
            .open("item")
            .leaf("attributeValue", &value)
            .close("item")
            .close("attributeValueSet")
            .close("item");
    }
    x.close("accountAttributeSet");
    Ok(x.finish(&root))
}

/// `DescribeInstanceTypes`: what the region's cloud offers (listed once and
/// reused for a while by the core), `InstanceType.N` to narrow.
pub async fn describe_instance_types(ctx: &Ctx<'_>, instance: InstanceName, input: DescribeInstanceTypesInput) -> Result<String, Ec2Error> {
    let wanted = input.wanted;
    let types = ctx.broker.provisioning.instance_types(&ctx.caller.actor, &instance).await?;
    if let Some(missing) = wanted.iter().find(|w| !types.iter().any(|t| &t.name == *w)) {
        return Err(Ec2Error::invalid(format!("The following supplied instance types do not exist: [{}]", crate::ids::shown(missing))));
    }
    let (mut x, root) = ctx.doc("DescribeInstanceTypes");
    x.open("instanceTypeSet");
    for t in types.iter().filter(|t| wanted.is_empty() || wanted.contains(&t.name)) {
        x.open("item").leaf("instanceType", &t.name).leaf("currentGeneration", "true");
        if let Some(v) = t.vcpus {
            x.open("vCpuInfo").leaf("defaultVCpus", &v.to_string()).close("vCpuInfo");
        }
        if let Some(m) = t.memory_mib {
            x.open("memoryInfo").leaf("sizeInMiB", &m.to_string()).close("memoryInfo");
        }
        x.close("item");
    }
    x.close("instanceTypeSet");
    Ok(x.finish(&root))
}
