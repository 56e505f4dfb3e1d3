//! Elastic IPs: `AllocateAddress`, `AssociateAddress`, `DisassociateAddress`,
//! `ReleaseAddress`, `DescribeAddresses`. Addresses are the cloud's, kept by
//! the broker for the project the access key acts in: Describe answers from
//! the broker's records, every member's addresses; another project's
//! address does not exist (`InvalidAllocationID.NotFound`), nor does another
//! project's instance (`InvalidInstanceID.NotFound`); a viewer's allocate,
//! associate, disassociate or release is `UnauthorizedOperation`.

use super::Ctx;
use crate::error::Ec2Error;
use crate::filter::Filter;
use crate::ids::{allocation_id, instance_id, shown, vm_id};
use crate::request::Params;
use cloudbroker_core::domain::{AllocationId, InstanceName, VmId};
use cloudbroker_core::provisioning::Address;
use cloudbroker_core::ServiceError;
use std::collections::BTreeMap;

/// How a request names one of the caller's addresses: `AllocationId` or,
/// failing that, `PublicIp` (looked up among the caller's addresses).
pub enum AddressName {
    Allocation(AllocationId),
    PublicIp(String),
}

impl AddressName {
    fn parse(params: &Params) -> Result<Self, Ec2Error> {
        if let Some(v) = params.get("AllocationId").filter(|v| !v.is_empty()) {
            return Ok(Self::Allocation(allocation_id("AllocationId", v)?));
        }
        match params.get("PublicIp").filter(|v| !v.is_empty()) {
            Some(ip) => Ok(Self::PublicIp(ip.to_string())),
            None => Err(Ec2Error::missing("AllocationId")),
        }
    }

    /// The allocation id named.
    async fn resolve(self, ctx: &Ctx<'_>, instance: &InstanceName) -> Result<AllocationId, Ec2Error> {
        let ip = match self {
            Self::Allocation(id) => return Ok(id),
            Self::PublicIp(ip) => ip,
        };
        let mine = ctx.broker.provisioning.addresses(&ctx.caller.actor, instance).await?;
        mine.into_iter()
            .find(|a| a.public_ip == ip)
            .map(|a| a.allocation_id)
            .ok_or_else(|| Ec2Error::client("InvalidAddress.NotFound", format!("Address '{}' not found.", shown(&ip))))
    }
}

/// `AllocateAddress`'s parameters (only `Domain`, checked).
pub struct AllocateAddressInput {
    /// `TagSpecification.N` of type `elastic-ip`.
    pub tags: BTreeMap<String, String>,
}

impl AllocateAddressInput {
    pub fn parse(params: &Params) -> Result<Self, Ec2Error> {
        if let Some(d) = params.get("Domain").filter(|d| !matches!(*d, "vpc" | "standard")) {
            return Err(Ec2Error::invalid(format!("Value ({}) for parameter Domain is invalid: vpc or standard", shown(d))));
        }
        let tags: BTreeMap<String, String> = params.tag_specifications("elastic-ip")?.into_iter().collect();
        cloudbroker_core::key_pairs::check_tags(&tags).map_err(|e| match e {
            ServiceError::Invalid { message, .. } => Ec2Error::invalid(format!("TagSpecification: {message}")),
            e => e.into(),
        })?;
        Ok(Self { tags })
    }
}

/// `AssociateAddress`'s parameters. The instance is checked only once the
/// address is found (EC2's order), so its parse is kept until then.
pub struct AssociateAddressInput {
    pub address: AddressName,
    pub vm: Result<VmId, Ec2Error>,
    /// `AllowReassociation=true`: an address associated with another instance moves.
    pub allow_reassociation: bool,
}

impl AssociateAddressInput {
    pub fn parse(params: &Params) -> Result<Self, Ec2Error> {
        let address = AddressName::parse(params)?;
        let allow_reassociation = match params.get("AllowReassociation") {
            None => false,
            Some(v) if v.eq_ignore_ascii_case("true") => true,
            Some(v) if v.eq_ignore_ascii_case("false") => false,
            Some(v) => {
                return Err(Ec2Error::invalid(format!(
                    "Value ({}) for parameter AllowReassociation is invalid: true or false",
                    crate::ids::shown(v)
                )))
            }
        };
        let vm = (|| Ok(vm_id(params.required("InstanceId")?)?))();
        Ok(Self { address, vm, allow_reassociation })
    }
}

/// `DisassociateAddress`'s parameters: the association, by id or public IP
/// (neither is refused once the caller's addresses are read, EC2's order).
pub enum DisassociateAddressInput {
    Association(String),
    PublicIp(String),
    Missing,
}

impl DisassociateAddressInput {
    pub fn parse(params: &Params) -> Result<Self, Ec2Error> {
        Ok(if let Some(assoc) = params.get("AssociationId").filter(|v| !v.is_empty()) {
            Self::Association(assoc.to_string())
        } else if let Some(ip) = params.get("PublicIp").filter(|v| !v.is_empty()) {
            Self::PublicIp(ip.to_string())
        } else {
            Self::Missing
        })
    }
}

/// `ReleaseAddress`'s parameters.
pub struct ReleaseAddressInput {
    pub address: AddressName,
}

impl ReleaseAddressInput {
    pub fn parse(params: &Params) -> Result<Self, Ec2Error> {
        Ok(Self { address: AddressName::parse(params)? })
    }
}

/// The filters DescribeAddresses takes (besides `tag:<key>`, `tag-key` and
/// `tag-value`); any other name is refused, as EC2 does.
pub const ADDRESS_FILTERS: &[&str] =
    &["public-ip", "allocation-id", "instance-id", "association-id", "private-ip-address", "domain", "network-border-group"];

/// `DescribeAddresses`'s parameters: filters of known names, well-formed ids.
pub struct DescribeAddressesInput {
    pub filters: Vec<Filter>,
    pub ids: Vec<AllocationId>,
    pub ips: Vec<String>,
}

impl DescribeAddressesInput {
    pub fn parse(params: &Params) -> Result<Self, Ec2Error> {
        let filters = crate::filter::parse(params)?;
        crate::filter::check_names(&filters, ADDRESS_FILTERS, true)?;
        let ids = params.list("AllocationId")?.iter().map(|id| allocation_id("AllocationId", id)).collect::<Result<Vec<_>, _>>()?;
        let ips = params.list("PublicIp")?;
        Ok(Self { filters, ids, ips })
    }
}

fn ok(ctx: &Ctx<'_>, action: &str, extra: Option<(&str, &str)>) -> String {
    let (mut x, root) = ctx.doc(action);
    x.leaf("return", "true");
    if let Some((k, v)) = extra {
        x.leaf(k, v);
    }
    x.finish(&root)
}

pub async fn allocate_address(ctx: &Ctx<'_>, input: AllocateAddressInput) -> Result<String, Ec2Error> {
    let instance = ctx.instance()?;
    if ctx.dry_run {
        ctx.broker.provisioning.check_allocate_address(&ctx.caller.actor, &instance).await?;
        return Err(Ec2Error::dry_run());
    }
    let mut a = ctx.broker.provisioning.allocate_address(&ctx.caller.actor, &instance).await?;
    if !input.tags.is_empty() {
        a = ctx.broker.provisioning.tag_address(&ctx.caller.actor, &instance, &a.allocation_id, &input.tags, &[]).await?;
    }
    let (mut x, root) = ctx.doc("AllocateAddress");
    x.leaf("publicIp", &a.public_ip).leaf("domain", "vpc").leaf("allocationId", a.allocation_id.as_str());
    x.leaf("networkBorderGroup", instance.as_str());
    super::keypairs::tag_set(&mut x, &a.tags);
    Ok(x.finish(&root))
}

pub async fn associate_address(ctx: &Ctx<'_>, instance: InstanceName, input: AssociateAddressInput) -> Result<String, Ec2Error> {
    let id = input.address.resolve(ctx, &instance).await?;
    let vm = input.vm?;
    let state = |e| match e {
        ServiceError::Conflict(m) => Ec2Error::client("IncorrectInstanceState", m),
        other => other.into(),
    };
    if ctx.dry_run {
        ctx.broker.provisioning.check_associate_address(&ctx.caller.actor, &instance, &id, &vm).await.map_err(state)?;
        return Err(Ec2Error::dry_run());
    }
    let a = ctx
        .broker
        .provisioning
        .associate_address_moving(&ctx.caller.actor, &instance, &id, &vm, input.allow_reassociation)
        .await
        .map_err(state)?;
    Ok(ok(ctx, "AssociateAddress", Some(("associationId", a.association_id.as_deref().unwrap_or("")))))
}

pub async fn disassociate_address(ctx: &Ctx<'_>, instance: InstanceName, input: DisassociateAddressInput) -> Result<String, Ec2Error> {
    let mine = ctx.broker.provisioning.addresses(&ctx.caller.actor, &instance).await?;
    let found = match input {
        DisassociateAddressInput::Association(assoc) => {
            mine.into_iter().find(|a| a.association_id.as_deref() == Some(assoc.as_str())).ok_or_else(|| {
                Ec2Error::client("InvalidAssociationID.NotFound", format!("The association ID '{}' does not exist", shown(&assoc)))
            })?
        }
        DisassociateAddressInput::PublicIp(ip) => mine
            .into_iter()
            .find(|a| a.public_ip == ip && a.association_id.is_some())
            .ok_or_else(|| Ec2Error::client("InvalidAddress.NotFound", format!("Address '{}' not found or not associated.", shown(&ip))))?,
        DisassociateAddressInput::Missing => return Err(Ec2Error::missing("AssociationId")),
    };
    if ctx.dry_run {
        ctx.broker.provisioning.check_disassociate_address(&ctx.caller.actor, &instance, &found.allocation_id).await?;
        return Err(Ec2Error::dry_run());
    }
    ctx.broker.provisioning.disassociate_address(&ctx.caller.actor, &instance, &found.allocation_id).await?;
    Ok(ok(ctx, "DisassociateAddress", None))
}

pub async fn release_address(ctx: &Ctx<'_>, instance: InstanceName, input: ReleaseAddressInput) -> Result<String, Ec2Error> {
    let id = input.address.resolve(ctx, &instance).await?;
    if ctx.dry_run {
        ctx.broker.provisioning.check_release_address(&ctx.caller.actor, &instance, &id).await?;
        return Err(Ec2Error::dry_run());
    }
    ctx.broker.provisioning.release_address(&ctx.caller.actor, &instance, &id).await?;
    Ok(ok(ctx, "ReleaseAddress", None))
}

fn keep(a: &Address, filters: &[Filter]) -> bool {
    let inst = a.vm.as_ref().map(instance_id);
    filters.iter().all(|f| {
        let field: Option<&str> = match f.name.as_str() {
            "public-ip" => Some(&a.public_ip),
            "allocation-id" => Some(a.allocation_id.as_str()),
            "instance-id" => inst.as_deref(),
            "association-id" => a.association_id.as_deref(),
            "private-ip-address" => a.private_ip.as_deref(),
            "domain" => Some("vpc"),
            "network-border-group" => Some(a.instance.as_str()),
            _ => return f.tags(a.tags.iter().map(|(k, v)| (k.as_str(), v.as_str()))).unwrap_or(false),
        };
        field.is_some_and(|v| f.values.any(v))
    })
}

pub async fn describe_addresses(ctx: &Ctx<'_>, input: DescribeAddressesInput) -> Result<String, Ec2Error> {
    let DescribeAddressesInput { filters, ids, ips } = input;
    let instance = ctx.instance()?;
    let mine = ctx.broker.provisioning.addresses(&ctx.caller.actor, &instance).await?;
    if let Some(missing) = ids.iter().find(|id| !mine.iter().any(|a| &a.allocation_id == *id)) {
        return Err(Ec2Error::allocation_not_found(missing.as_str()));
    }
    if let Some(missing) = ips.iter().find(|ip| !mine.iter().any(|a| &a.public_ip == *ip)) {
        return Err(Ec2Error::client("InvalidAddress.NotFound", format!("Address '{}' not found.", shown(missing))));
    }
    let mine: Vec<Address> = mine
        .into_iter()
        .filter(|a| (ids.is_empty() || ids.contains(&a.allocation_id)) && (ips.is_empty() || ips.contains(&a.public_ip)))
        .collect();
    let cost = crate::filter::cost(&filters);
    let mine = crate::filter::retain(mine, cost, move |a| keep(a, &filters)).await?;
    let (mut x, root) = ctx.doc("DescribeAddresses");
    x.open("addressesSet");
    for a in &mine {
        x.open("item").leaf("publicIp", &a.public_ip).leaf("allocationId", a.allocation_id.as_str()).leaf("domain", "vpc");
        x.leaf("networkBorderGroup", a.instance.as_str());
        if let Some(vm) = &a.vm {
            x.leaf("instanceId", &instance_id(vm));
        }
        x.opt("associationId", a.association_id.as_deref()).opt("privateIpAddress", a.private_ip.as_deref());
        super::keypairs::tag_set(&mut x, &a.tags);
        x.close("item");
    }
    x.close("addressesSet");
    Ok(x.finish(&root))
}
