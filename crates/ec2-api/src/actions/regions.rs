//! Regions are the broker's connector instances: `DescribeRegions`,
//! `DescribeAvailabilityZones` (one zone per region), and
//! `DescribeAccountAttributes` (`max-instances` is the caller's quota, or
//! its project's when that is lower).

use super::Ctx;
use crate::error::Ec2Error;
use crate::filter::{Filter, Page};
use crate::request::Params;
use cloudbroker_core::domain::InstanceName;
use cloudbroker_core::registry::Status;

/// The filters DescribeRegions takes; any other name is refused, as EC2 does.
pub const REGION_FILTERS: &[&str] = &["region-name", "endpoint", "opt-in-status"];
/// The filters DescribeAvailabilityZones takes.
pub const ZONE_FILTERS: &[&str] = &["zone-name", "zone-id", "zone-type", "region-name", "state", "opt-in-status", "group-name"];
/// The filters DescribeInstanceTypes takes.
pub const INSTANCE_TYPE_FILTERS: &[&str] = &["instance-type", "vcpu-info.default-vcpus", "memory-info.size-in-mib", "current-generation"];

/// `DescribeRegions`' parameters: the regions wanted (`RegionName.N`; none is all), filters.
pub struct DescribeRegionsInput {
    pub wanted: Vec<String>,
    pub filters: Vec<Filter>,
}

impl DescribeRegionsInput {
    pub fn parse(params: &Params) -> Result<Self, Ec2Error> {
        let filters = crate::filter::parse(params)?;
        crate::filter::check_names(&filters, REGION_FILTERS, false)?;
        Ok(Self { wanted: params.list("RegionName")?, filters })
    }
}

/// `DescribeAvailabilityZones`' parameters: `ZoneName.N`, `ZoneId.N`, filters.
pub struct DescribeAvailabilityZonesInput {
    pub names: Vec<String>,
    pub ids: Vec<String>,
    pub filters: Vec<Filter>,
}

impl DescribeAvailabilityZonesInput {
    pub fn parse(params: &Params) -> Result<Self, Ec2Error> {
        let filters = crate::filter::parse(params)?;
        crate::filter::check_names(&filters, ZONE_FILTERS, false)?;
        Ok(Self { names: params.list("ZoneName")?, ids: params.list("ZoneId")?, filters })
    }
}

/// `DescribeInstanceTypes`' parameters: the types wanted (`InstanceType.N`;
/// none is all), filters, a page (`MaxResults` 5..100, `NextToken`).
pub struct DescribeInstanceTypesInput {
    pub wanted: Vec<String>,
    pub filters: Vec<Filter>,
    pub page: Page,
}

impl DescribeInstanceTypesInput {
    pub fn parse(params: &Params) -> Result<Self, Ec2Error> {
        let filters = crate::filter::parse(params)?;
        crate::filter::check_names(&filters, INSTANCE_TYPE_FILTERS, false)?;
        let page = Page::parse(params, 5..=100)?;
        Ok(Self { wanted: params.list("InstanceType")?, filters, page })
    }
}

/// The zone id of a region's one zone (EC2's `use1-az1` shape).
pub fn zone_id(instance: &str) -> String {
    format!("{instance}-az1")
}

pub fn describe_regions(ctx: &Ctx<'_>, input: DescribeRegionsInput) -> Result<String, Ec2Error> {
    let DescribeRegionsInput { wanted, filters } = input;
    let snap = ctx.broker.registry.snapshot();
    let endpoint = format!("{}/ec2", ctx.base_url);
    let (mut x, root) = ctx.doc("DescribeRegions");
    x.open("regionInfo");
    for i in &snap.instances {
        if !wanted.is_empty() && !wanted.iter().any(|w| w == i.name.as_str()) {
            continue;
        }
        let opt_in = if matches!(i.status, Status::Ready) { "opt-in-not-required" } else { "not-opted-in" };
        let keep = filters.iter().all(|f| match f.name.as_str() {
            "region-name" => f.values.any(i.name.as_str()),
            "endpoint" => f.values.any(&endpoint),
            _ => f.values.any(opt_in),
        });
        if !keep {
            continue;
        }
        x.open("item").leaf("regionName", i.name.as_str()).leaf("regionEndpoint", &endpoint).leaf("optInStatus", opt_in).close("item");
    }
    x.close("regionInfo");
    Ok(x.finish(&root))
}

pub fn describe_availability_zones(ctx: &Ctx<'_>, input: DescribeAvailabilityZonesInput) -> Result<String, Ec2Error> {
    let DescribeAvailabilityZonesInput { names, ids, filters } = input;
    let instance = ctx.instance()?;
    let snap = ctx.broker.registry.snapshot();
    let ready = snap.instance(instance.as_str()).is_some_and(|i| matches!(i.status, Status::Ready));
    let (name, id) = (format!("{instance}a"), zone_id(instance.as_str()));
    // EC2 refuses a zone it does not have by name or id.
    if let Some(bad) = names.iter().find(|n| **n != name).or_else(|| ids.iter().find(|i| **i != id)) {
        return Err(Ec2Error::invalid(format!("The zone '{}' does not exist.", crate::ids::shown(bad))));
    }
    let state = if ready { "available" } else { "unavailable" };
    let keep = filters.iter().all(|f| match f.name.as_str() {
        "zone-name" => f.values.any(&name),
        "zone-id" => f.values.any(&id),
        "zone-type" => f.values.any("availability-zone"),
        "region-name" | "group-name" => f.values.any(instance.as_str()),
        "state" => f.values.any(state),
        _ => f.values.any("opt-in-not-required"),
    });
    let (mut x, root) = ctx.doc("DescribeAvailabilityZones");
    x.open("availabilityZoneInfo");
    if keep {
        x.open("item")
            .leaf("zoneName", &name)
            .leaf("zoneId", &id)
            .leaf("zoneState", state)
            .leaf("regionName", instance.as_str())
            .leaf("groupName", instance.as_str())
            .leaf("optInStatus", "opt-in-not-required")
            .leaf("zoneType", "availability-zone")
            .open("messageSet")
            .close("messageSet")
            .close("item");
    }
    x.close("availabilityZoneInfo");
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
    let DescribeInstanceTypesInput { wanted, filters, page } = input;
    let types = ctx.broker.provisioning.instance_types(&ctx.caller.actor, &instance).await?;
    if let Some(missing) = wanted.iter().find(|w| !types.iter().any(|t| &t.name == *w)) {
        return Err(Ec2Error::invalid(format!("The following supplied instance types do not exist: [{}]", crate::ids::shown(missing))));
    }
    let keep = |t: &&cloudbroker_connector_api::InstanceTypeInfo| {
        filters.iter().all(|f| match f.name.as_str() {
            "instance-type" => f.values.any(&t.name),
            "vcpu-info.default-vcpus" => f.any(t.vcpus.map(|v| v.to_string()).as_deref()),
            "memory-info.size-in-mib" => f.any(t.memory_mib.map(|m| m.to_string()).as_deref()),
            _ => f.values.any("true"),
        })
    };
    let kept: Vec<_> = types.iter().filter(|t| wanted.is_empty() || wanted.contains(&t.name)).filter(keep).collect();
    let (kept, next) = page.cut(kept);
    let (mut x, root) = ctx.doc("DescribeInstanceTypes");
    x.open("instanceTypeSet");
    for t in kept {
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
    x.opt("nextToken", next.as_deref());
    Ok(x.finish(&root))
}
