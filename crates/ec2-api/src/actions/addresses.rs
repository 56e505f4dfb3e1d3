//! Elastic IPs: `AllocateAddress`, `AssociateAddress`, `DisassociateAddress`,
//! `ReleaseAddress`, `DescribeAddresses`. Addresses are the cloud's, kept by
//! the broker for the caller: Describe answers from the broker's records;
//! another user's address does not exist (`InvalidAllocationID.NotFound`),
//! nor does another user's instance (`InvalidInstanceID.NotFound`).

use super::Ctx;
use crate::error::Ec2Error;
use crate::filter::Filter;
use crate::ids::{instance_id, shown, vm_id};
use cloudbroker_core::domain::{AllocationId, InstanceName};
use cloudbroker_core::provisioning::Address;
use cloudbroker_core::ServiceError;

/// Parses an allocation id given in parameter `param`.
pub fn allocation_id(param: &str, v: &str) -> Result<AllocationId, Ec2Error> {
    AllocationId::parse(v).map_err(|_| {
        Ec2Error::client(
            "InvalidAllocationID.Malformed",
            format!("Value ({}) for parameter {param} is invalid: not an allocation id (eipalloc-...)", shown(v)),
        )
    })
}

/// The caller's address named by `AllocationId` or, failing that, `PublicIp`.
async fn named(ctx: &Ctx<'_>, instance: &InstanceName) -> Result<AllocationId, Ec2Error> {
    if let Some(v) = ctx.params.get("AllocationId").filter(|v| !v.is_empty()) {
        return allocation_id("AllocationId", v);
    }
    let Some(ip) = ctx.params.get("PublicIp").filter(|v| !v.is_empty()) else {
        return Err(Ec2Error::missing("AllocationId"));
    };
    let mine = ctx.broker.provisioning.addresses(&ctx.caller.actor, instance).await?;
    mine.into_iter()
        .find(|a| a.public_ip == ip)
        .map(|a| a.allocation_id)
        .ok_or_else(|| Ec2Error::client("InvalidAddress.NotFound", format!("Address '{}' not found.", shown(ip))))
}

fn ok(ctx: &Ctx<'_>, action: &str, extra: Option<(&str, &str)>) -> String {
    let (mut x, root) = ctx.doc(action);
    x.leaf("return", "true");
    if let Some((k, v)) = extra {
        x.leaf(k, v);
    }
    x.finish(&root)
}

pub async fn allocate_address(ctx: &Ctx<'_>) -> Result<String, Ec2Error> {
    if let Some(d) = ctx.params.get("Domain").filter(|d| !matches!(*d, "vpc" | "standard")) {
        return Err(Ec2Error::invalid(format!("Value ({}) for parameter Domain is invalid: vpc or standard", shown(d))));
    }
    let instance = ctx.instance()?;
    if ctx.dry_run {
        ctx.broker.provisioning.check_allocate_address(&ctx.caller.actor, &instance).await?;
        return Err(Ec2Error::dry_run());
    }
    let a = ctx.broker.provisioning.allocate_address(&ctx.caller.actor, &instance).await?;
    let (mut x, root) = ctx.doc("AllocateAddress");
    x.leaf("publicIp", &a.public_ip).leaf("domain", "vpc").leaf("allocationId", a.allocation_id.as_str());
    Ok(x.finish(&root))
}

pub async fn associate_address(ctx: &Ctx<'_>) -> Result<String, Ec2Error> {
    let instance = ctx.instance()?;
    let id = named(ctx, &instance).await?;
    let vm = vm_id(ctx.params.required("InstanceId")?)?;
    if ctx.params.get("AllowReassociation") == Some("true") {
        return Err(Ec2Error::invalid("AllowReassociation is not supported: disassociate the address first"));
    }
    let state = |e| match e {
        ServiceError::Conflict(m) => Ec2Error::client("IncorrectInstanceState", m),
        other => other.into(),
    };
    if ctx.dry_run {
        ctx.broker.provisioning.check_associate_address(&ctx.caller.actor, &instance, &id, &vm).await.map_err(state)?;
        return Err(Ec2Error::dry_run());
    }
    let a = ctx.broker.provisioning.associate_address(&ctx.caller.actor, &instance, &id, &vm).await.map_err(state)?;
    Ok(ok(ctx, "AssociateAddress", Some(("associationId", a.association_id.as_deref().unwrap_or("")))))
}

pub async fn disassociate_address(ctx: &Ctx<'_>) -> Result<String, Ec2Error> {
    let instance = ctx.instance()?;
    let mine = ctx.broker.provisioning.addresses(&ctx.caller.actor, &instance).await?;
    let found = if let Some(assoc) = ctx.params.get("AssociationId").filter(|v| !v.is_empty()) {
        mine.into_iter().find(|a| a.association_id.as_deref() == Some(assoc)).ok_or_else(|| {
            Ec2Error::client("InvalidAssociationID.NotFound", format!("The association ID '{}' does not exist", shown(assoc)))
        })?
    } else if let Some(ip) = ctx.params.get("PublicIp").filter(|v| !v.is_empty()) {
        mine.into_iter()
            .find(|a| a.public_ip == ip && a.association_id.is_some())
            .ok_or_else(|| Ec2Error::client("InvalidAddress.NotFound", format!("Address '{}' not found or not associated.", shown(ip))))?
    } else {
        return Err(Ec2Error::missing("AssociationId"));
    };
    if ctx.dry_run {
        ctx.broker.provisioning.check_disassociate_address(&ctx.caller.actor, &instance, &found.allocation_id).await?;
        return Err(Ec2Error::dry_run());
    }
    ctx.broker.provisioning.disassociate_address(&ctx.caller.actor, &instance, &found.allocation_id).await?;
    Ok(ok(ctx, "DisassociateAddress", None))
}

pub async fn release_address(ctx: &Ctx<'_>) -> Result<String, Ec2Error> {
    let instance = ctx.instance()?;
    let id = named(ctx, &instance).await?;
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
            _ => Some("vpc"),
        };
        field.is_some_and(|v| f.values.any(v))
    })
}

pub async fn describe_addresses(ctx: &Ctx<'_>) -> Result<String, Ec2Error> {
    let filters = crate::filter::parse(&ctx.params)?;
    for f in filters.iter().map(|f| &f.name) {
        if !matches!(f.as_str(), "public-ip" | "allocation-id" | "instance-id" | "association-id" | "private-ip-address" | "domain") {
            return Err(Ec2Error::invalid(format!("The filter '{}' is invalid", shown(f))));
        }
    }
    let ids = ctx.params.list("AllocationId")?;
    for id in &ids {
        allocation_id("AllocationId", id)?;
    }
    let ips = ctx.params.list("PublicIp")?;
    let instance = ctx.instance()?;
    let mine = ctx.broker.provisioning.addresses(&ctx.caller.actor, &instance).await?;
    if let Some(missing) = ids.iter().find(|id| !mine.iter().any(|a| a.allocation_id.as_str() == id.as_str())) {
        return Err(Ec2Error::allocation_not_found(missing));
    }
    if let Some(missing) = ips.iter().find(|ip| !mine.iter().any(|a| &a.public_ip == *ip)) {
        return Err(Ec2Error::client("InvalidAddress.NotFound", format!("Address '{}' not found.", shown(missing))));
    }
    let mine: Vec<Address> = mine
        .into_iter()
        .filter(|a| (ids.is_empty() || ids.iter().any(|i| i == a.allocation_id.as_str())) && (ips.is_empty() || ips.contains(&a.public_ip)))
        .collect();
    let cost = crate::filter::cost(&filters);
    let mine = crate::filter::retain(mine, cost, move |a| keep(a, &filters)).await?;
    let (mut x, root) = ctx.doc("DescribeAddresses");
    x.open("addressesSet");
    for a in &mine {
        x.open("item").leaf("publicIp", &a.public_ip).leaf("allocationId", a.allocation_id.as_str()).leaf("domain", "vpc");
        if let Some(vm) = &a.vm {
            x.leaf("instanceId", &instance_id(vm));
        }
        x.opt("associationId", a.association_id.as_deref()).opt("privateIpAddress", a.private_ip.as_deref());
        x.close("item");
    }
    x.close("addressesSet");
    Ok(x.finish(&root))
}
