//! VPCs and subnets: `CreateVpc`, `DeleteVpc`, `DescribeVpcs`,
//! `CreateSubnet`, `DeleteSubnet`, `DescribeSubnets`,
//! `ModifySubnetAttribute`. Those the broker makes belong to the project
//! the access key acts in; another project's do not exist
//! (`InvalidVpcID.NotFound`, `InvalidSubnetID.NotFound`); the cloud
//! account's own (its default VPC and subnets) are listed and launched
//! into but not deleted or changed here (`UnauthorizedOperation`). A block
//! outside `/16`..`/28` is `InvalidVpc.Range` / `InvalidSubnet.Range`
//! before the cloud is asked; the cloud checks the rest (a subnet outside
//! its VPC's block, overlapping another: `InvalidSubnet.Range`,
//! `InvalidSubnet.Conflict`; a VPC with subnets, a subnet with instances:
//! `DependencyViolation`).

use super::Ctx;
use crate::error::Ec2Error;
use crate::filter::{Filter, Page};
use crate::ids::shown;
use crate::request::Params;
use crate::xml::Xml;
use cloudbroker_connector_api::network::{Cidr, PREFIX_RANGE};
use cloudbroker_connector_api::params::is_cloud_id;
use cloudbroker_connector_api::CreateSubnetRequest;
use cloudbroker_core::domain::Tags;
use cloudbroker_core::provisioning::{Subnet, Vpc};
use cloudbroker_core::ObjectKind;

/// A `vpc-` id as given, or EC2's `InvalidVpcID.Malformed`.
pub fn vpc_param(v: &str) -> Result<String, Ec2Error> {
    if is_cloud_id(v, "vpc") {
        Ok(v.to_string())
    } else {
        Err(Ec2Error::client("InvalidVpcID.Malformed", format!("Invalid id: \"{}\" (expecting \"vpc-...\")", shown(v))))
    }
}

/// A `subnet-` id as given, or EC2's `InvalidSubnetID.Malformed`.
pub fn subnet_param(v: &str) -> Result<String, Ec2Error> {
    if is_cloud_id(v, "subnet") {
        Ok(v.to_string())
    } else {
        Err(Ec2Error::client("InvalidSubnetID.Malformed", format!("Invalid id: \"{}\" (expecting \"subnet-...\")", shown(v))))
    }
}

/// An IPv4 block as given: a CIDR block (else `InvalidParameterValue`)
/// with a prefix from 16 to 28 (else `range_code`).
fn block(v: &str, range_code: &str) -> Result<String, Ec2Error> {
    let c = Cidr::parse(v).ok_or_else(|| {
        Ec2Error::invalid(format!("Value ({}) for parameter cidrBlock is invalid. This is not a valid CIDR block.", shown(v)))
    })?;
    if !PREFIX_RANGE.contains(&c.prefix()) {
        return Err(Ec2Error::client(range_code, format!("The CIDR '{}' is invalid.", shown(v))));
    }
    Ok(c.to_string())
}

fn tags_of(params: &Params, resource: &str) -> Result<Tags, Ec2Error> {
    Tags::parse_resource(params.tag_specifications(resource)?.into_iter().collect())
        .map_err(|e| Ec2Error::invalid(format!("TagSpecification: {}", e.message)))
}

/// `CreateVpc`'s parameters.
pub struct CreateVpcInput {
    pub cidr: String,
    pub tags: Tags,
}

impl CreateVpcInput {
    pub fn parse(params: &Params) -> Result<Self, Ec2Error> {
        let cidr = block(params.required("CidrBlock")?, "InvalidVpc.Range")?;
        if let Some(t) = params.get("InstanceTenancy").filter(|t| *t != "default") {
            return Err(Ec2Error::client(
                "UnsupportedOperation",
                format!("The parameter InstanceTenancy={} is not supported by this broker for CreateVpc (default only)", shown(t)),
            ));
        }
        Ok(Self { cidr, tags: tags_of(params, "vpc")? })
    }
}

/// `DeleteVpc`'s parameters.
pub struct DeleteVpcInput {
    pub vpc: String,
}

impl DeleteVpcInput {
    pub fn parse(params: &Params) -> Result<Self, Ec2Error> {
        Ok(Self { vpc: vpc_param(params.required("VpcId")?)? })
    }
}

/// The filters DescribeVpcs takes (besides `tag:<key>`, `tag-key` and `tag-value`).
pub const VPC_FILTERS: &[&str] = &["vpc-id", "cidr", "cidr-block-association.cidr-block", "is-default", "state", "instance-tenancy"];

/// The filters DescribeSubnets takes (besides `tag:<key>`, `tag-key` and `tag-value`).
pub const SUBNET_FILTERS: &[&str] = &[
    "subnet-id",
    "vpc-id",
    "cidr-block",
    "cidr",
    "cidrBlock",
    "availability-zone",
    "availabilityZone",
    "default-for-az",
    "defaultForAz",
    "state",
    "available-ip-address-count",
    "map-public-ip-on-launch",
];

/// `DescribeVpcs`' and `DescribeSubnets`' parameters: filters of known
/// names, well-formed ids, a page (`MaxResults` 5..1000, not with ids).
pub struct DescribeNetInput {
    pub filters: Vec<Filter>,
    pub ids: Vec<String>,
    pub page: Page,
}

impl DescribeNetInput {
    fn parse_with(params: &Params, known: &[&str], id_param: &str, id: fn(&str) -> Result<String, Ec2Error>) -> Result<Self, Ec2Error> {
        let filters = crate::filter::parse(params)?;
        crate::filter::check_names(&filters, known, true)?;
        let ids = params.list(id_param)?.iter().map(|v| id(v)).collect::<Result<Vec<_>, _>>()?;
        let page = Page::parse(params, 5..=1000)?;
        if page.max.is_some() && !ids.is_empty() {
            return Err(Ec2Error::client(
                "InvalidParameterCombination",
                format!("The parameter {id_param} cannot be used with the parameter MaxResults"),
            ));
        }
        Ok(Self { filters, ids, page })
    }

    /// DescribeVpcs' input (`VpcId.N`).
    pub fn parse_vpcs(params: &Params) -> Result<Self, Ec2Error> {
        Self::parse_with(params, VPC_FILTERS, "VpcId", vpc_param)
    }

    /// DescribeSubnets' input (`SubnetId.N`).
    pub fn parse_subnets(params: &Params) -> Result<Self, Ec2Error> {
        Self::parse_with(params, SUBNET_FILTERS, "SubnetId", subnet_param)
    }
}

/// `CreateSubnet`'s parameters.
pub struct CreateSubnetInput {
    pub req: CreateSubnetRequest,
    pub tags: Tags,
}

impl CreateSubnetInput {
    pub fn parse(params: &Params) -> Result<Self, Ec2Error> {
        let vpc_id = vpc_param(params.required("VpcId")?)?;
        let cidr_block = block(params.required("CidrBlock")?, "InvalidSubnet.Range")?;
        let availability_zone = params.get("AvailabilityZone").filter(|z| !z.is_empty()).map(str::to_string);
        Ok(Self { req: CreateSubnetRequest { vpc_id, cidr_block, availability_zone }, tags: tags_of(params, "subnet")? })
    }
}

/// `DeleteSubnet`'s parameters.
pub struct DeleteSubnetInput {
    pub subnet: String,
}

impl DeleteSubnetInput {
    pub fn parse(params: &Params) -> Result<Self, Ec2Error> {
        Ok(Self { subnet: subnet_param(params.required("SubnetId")?)? })
    }
}

/// `ModifySubnetAttribute`'s parameters: the subnet and `MapPublicIpOnLaunch.Value`.
pub struct ModifySubnetAttributeInput {
    pub subnet: String,
    pub map_public_ip: bool,
}

impl ModifySubnetAttributeInput {
    pub fn parse(params: &Params) -> Result<Self, Ec2Error> {
        let subnet = subnet_param(params.required("SubnetId")?)?;
        let map_public_ip = match params.get("MapPublicIpOnLaunch.Value") {
            Some(v) if v.eq_ignore_ascii_case("true") => true,
            Some(v) if v.eq_ignore_ascii_case("false") => false,
            Some(v) => {
                return Err(Ec2Error::invalid(format!(
                    "Value ({}) for parameter MapPublicIpOnLaunch.Value is invalid: true or false",
                    shown(v)
                )))
            }
            None => return Err(Ec2Error::missing("MapPublicIpOnLaunch.Value")),
        };
        Ok(Self { subnet, map_public_ip })
    }
}

fn tag_set(x: &mut Xml, tags: &std::collections::BTreeMap<String, String>) {
    x.open("tagSet");
    for (k, v) in tags {
        x.open("item").leaf("key", k).leaf("value", v).close("item");
    }
    x.close("tagSet");
}

fn owner<'a>(ctx: &'a Ctx<'_>, project: &'a Option<String>) -> &'a str {
    project.as_deref().unwrap_or(ctx.caller.actor.project.as_str())
}

fn vpc_fields(ctx: &Ctx<'_>, x: &mut Xml, v: &Vpc) {
    let assoc = format!("vpc-cidr-assoc-{}", v.vpc_id.strip_prefix("vpc-").unwrap_or(&v.vpc_id));
    x.leaf("vpcId", &v.vpc_id)
        .leaf("ownerId", owner(ctx, &v.project))
        .leaf("state", &v.state)
        .leaf("cidrBlock", &v.cidr_block)
        .open("cidrBlockAssociationSet")
        .open("item")
        .leaf("cidrBlock", &v.cidr_block)
        .leaf("associationId", &assoc)
        .open("cidrBlockState")
        .leaf("state", "associated")
        .close("cidrBlockState")
        .close("item")
        .close("cidrBlockAssociationSet")
        .leaf("dhcpOptionsId", "default")
        .leaf("instanceTenancy", &v.instance_tenancy)
        .leaf("isDefault", if v.is_default { "true" } else { "false" });
    tag_set(x, &v.tags);
}

fn subnet_fields(ctx: &Ctx<'_>, x: &mut Xml, s: &Subnet) {
    x.leaf("subnetId", &s.subnet_id)
        .leaf("ownerId", owner(ctx, &s.project))
        .leaf("state", &s.state)
        .leaf("vpcId", &s.vpc_id)
        .leaf("cidrBlock", &s.cidr_block)
        .open("ipv6CidrBlockAssociationSet")
        .close("ipv6CidrBlockAssociationSet")
        .leaf("availableIpAddressCount", &s.available_ip_address_count.to_string())
        .leaf("availabilityZone", &s.availability_zone)
        .leaf("defaultForAz", if s.default_for_az { "true" } else { "false" })
        .leaf("mapPublicIpOnLaunch", if s.map_public_ip_on_launch { "true" } else { "false" })
        .leaf("assignIpv6AddressOnCreation", "false");
    tag_set(x, &s.tags);
}

fn bool_text(b: bool) -> &'static str {
    if b {
        "true"
    } else {
        "false"
    }
}

fn keep_vpc(v: &Vpc, filters: &[Filter]) -> bool {
    filters.iter().all(|f| {
        if let Some(m) = f.tags(v.tags.iter().map(|(k, v)| (k.as_str(), v.as_str()))) {
            return m;
        }
        match f.name.as_str() {
            "vpc-id" => f.any(Some(&v.vpc_id)),
            "cidr" | "cidr-block-association.cidr-block" => f.any(Some(&v.cidr_block)),
            "is-default" => f.any(Some(bool_text(v.is_default))),
            "state" => f.any(Some(&v.state)),
            "instance-tenancy" => f.any(Some(&v.instance_tenancy)),
            _ => false,
        }
    })
}

fn keep_subnet(s: &Subnet, filters: &[Filter]) -> bool {
    let count = s.available_ip_address_count.to_string();
    filters.iter().all(|f| {
        if let Some(m) = f.tags(s.tags.iter().map(|(k, v)| (k.as_str(), v.as_str()))) {
            return m;
        }
        match f.name.as_str() {
            "subnet-id" => f.any(Some(&s.subnet_id)),
            "vpc-id" => f.any(Some(&s.vpc_id)),
            "cidr-block" | "cidr" | "cidrBlock" => f.any(Some(&s.cidr_block)),
            "availability-zone" | "availabilityZone" => f.any(Some(&s.availability_zone)),
            "default-for-az" | "defaultForAz" => f.any(Some(bool_text(s.default_for_az))),
            "state" => f.any(Some(&s.state)),
            "available-ip-address-count" => f.any(Some(&count)),
            "map-public-ip-on-launch" => f.any(Some(bool_text(s.map_public_ip_on_launch))),
            _ => false,
        }
    })
}

fn returned_true(ctx: &Ctx<'_>, action: &str) -> String {
    let (mut x, root) = ctx.doc(action);
    x.leaf("return", "true");
    x.finish(&root)
}

pub async fn create_vpc(ctx: &Ctx<'_>, input: CreateVpcInput) -> Result<String, Ec2Error> {
    let instance = ctx.instance()?;
    if ctx.dry_run {
        ctx.caller.actor.require_act()?;
        return Err(Ec2Error::dry_run());
    }
    let v = ctx.broker.provisioning.create_vpc(&ctx.caller.actor, &instance, &input.cidr, &input.tags).await?;
    let (mut x, root) = ctx.doc("CreateVpc");
    x.open("vpc");
    vpc_fields(ctx, &mut x, &v);
    x.close("vpc");
    Ok(x.finish(&root))
}

pub async fn delete_vpc(ctx: &Ctx<'_>, input: DeleteVpcInput) -> Result<String, Ec2Error> {
    let instance = ctx.instance()?;
    if ctx.dry_run {
        ctx.broker.provisioning.actable_object(&ctx.caller.actor, &instance, ObjectKind::Vpc, &input.vpc).await?;
        return Err(Ec2Error::dry_run());
    }
    ctx.broker.provisioning.delete_vpc(&ctx.caller.actor, &instance, &input.vpc).await?;
    Ok(returned_true(ctx, "DeleteVpc"))
}

pub async fn describe_vpcs(ctx: &Ctx<'_>, input: DescribeNetInput) -> Result<String, Ec2Error> {
    let DescribeNetInput { filters, ids, page } = input;
    let instance = ctx.instance()?;
    let vpcs = ctx.broker.provisioning.vpcs(&ctx.caller.actor, &instance, &ids).await?;
    let vpcs: Vec<Vpc> = vpcs.into_iter().filter(|v| keep_vpc(v, &filters)).collect();
    let (vpcs, next) = page.cut(vpcs);
    let (mut x, root) = ctx.doc("DescribeVpcs");
    x.open("vpcSet");
    for v in &vpcs {
        x.open("item");
        vpc_fields(ctx, &mut x, v);
        x.close("item");
    }
    x.close("vpcSet");
    if let Some(t) = next {
        x.leaf("nextToken", &t);
    }
    Ok(x.finish(&root))
}

pub async fn create_subnet(ctx: &Ctx<'_>, input: CreateSubnetInput) -> Result<String, Ec2Error> {
    let instance = ctx.instance()?;
    if ctx.dry_run {
        ctx.broker.provisioning.vpcs(&ctx.caller.actor, &instance, std::slice::from_ref(&input.req.vpc_id)).await?;
        ctx.caller.actor.require_act()?;
        return Err(Ec2Error::dry_run());
    }
    let s = ctx.broker.provisioning.create_subnet(&ctx.caller.actor, &instance, &input.req, &input.tags).await?;
    let (mut x, root) = ctx.doc("CreateSubnet");
    x.open("subnet");
    subnet_fields(ctx, &mut x, &s);
    x.close("subnet");
    Ok(x.finish(&root))
}

pub async fn delete_subnet(ctx: &Ctx<'_>, input: DeleteSubnetInput) -> Result<String, Ec2Error> {
    let instance = ctx.instance()?;
    if ctx.dry_run {
        ctx.broker.provisioning.actable_object(&ctx.caller.actor, &instance, ObjectKind::Subnet, &input.subnet).await?;
        return Err(Ec2Error::dry_run());
    }
    ctx.broker.provisioning.delete_subnet(&ctx.caller.actor, &instance, &input.subnet).await?;
    Ok(returned_true(ctx, "DeleteSubnet"))
}

pub async fn describe_subnets(ctx: &Ctx<'_>, input: DescribeNetInput) -> Result<String, Ec2Error> {
    let DescribeNetInput { filters, ids, page } = input;
    let instance = ctx.instance()?;
    let subnets = ctx.broker.provisioning.subnets(&ctx.caller.actor, &instance, &ids).await?;
    let subnets: Vec<Subnet> = subnets.into_iter().filter(|s| keep_subnet(s, &filters)).collect();
    let (subnets, next) = page.cut(subnets);
    let (mut x, root) = ctx.doc("DescribeSubnets");
    x.open("subnetSet");
    for s in &subnets {
        x.open("item");
        subnet_fields(ctx, &mut x, s);
        x.close("item");
    }
    x.close("subnetSet");
    if let Some(t) = next {
        x.leaf("nextToken", &t);
    }
    Ok(x.finish(&root))
}

pub async fn modify_subnet_attribute(ctx: &Ctx<'_>, input: ModifySubnetAttributeInput) -> Result<String, Ec2Error> {
    let instance = ctx.instance()?;
    if ctx.dry_run {
        ctx.broker.provisioning.actable_object(&ctx.caller.actor, &instance, ObjectKind::Subnet, &input.subnet).await?;
        return Err(Ec2Error::dry_run());
    }
    ctx.broker.provisioning.set_subnet_public_ips(&ctx.caller.actor, &instance, &input.subnet, input.map_public_ip).await?;
    Ok(returned_true(ctx, "ModifySubnetAttribute"))
}
