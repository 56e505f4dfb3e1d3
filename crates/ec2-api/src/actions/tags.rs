//! Tags on instances and volumes: `CreateTags`, `DeleteTags`, `DescribeTags`.
//! Tags are kept in the broker's records and put on the cloud's instance or
//! volume where the cloud keeps tags; `cloudbroker:`/`aws:` keys are
//! reserved. Every resource id is checked to be the caller's before any change.

use super::Ctx;
use crate::error::Ec2Error;
use crate::ids::{instance_id, shown, vm_id};
use cloudbroker_core::domain::{PageRequest, Tags, VmId, VolumeId};
use cloudbroker_core::provisioning::VmQuery;
use cloudbroker_core::ServiceError;
use std::collections::BTreeMap;

/// The caller's instances and volumes among `ResourceId.N` (all checked before any change).
async fn resources(ctx: &Ctx<'_>) -> Result<(Vec<VmId>, Vec<VolumeId>), Ec2Error> {
    let ids = ctx.params.list("ResourceId")?;
    if ids.is_empty() {
        return Err(Ec2Error::missing("ResourceId.1"));
    }
    let (mut vms, mut volumes) = (Vec::new(), Vec::new());
    for id in &ids {
        if id.starts_with("vol-") {
            let v = super::volumes::volume_id("ResourceId", id)?;
            ctx.broker.provisioning.volume(&ctx.caller.actor, &ctx.instance()?, &v).await?;
            volumes.push(v);
            continue;
        }
        if !id.starts_with("i-") {
            return Err(Ec2Error::client(
                "InvalidID",
                format!("The ID '{}' is not valid: only instances (i-...) and volumes (vol-...) carry tags here", shown(id)),
            ));
        }
        let vm = vm_id(id)?;
        match ctx.broker.provisioning.get(&ctx.caller.actor, &vm).await {
            Ok(v) if v.user == ctx.caller.actor.name => vms.push(vm),
            Ok(_) | Err(ServiceError::NotFound(_)) => {
                return Err(Ec2Error::client("InvalidInstanceID.NotFound", format!("The instance ID '{}' does not exist", shown(id))));
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok((vms, volumes))
}

fn ok(ctx: &Ctx<'_>, action: &str) -> String {
    let (mut x, root) = ctx.doc(action);
    x.leaf("return", "true");
    x.finish(&root)
}

pub async fn create_tags(ctx: &Ctx<'_>) -> Result<String, Ec2Error> {
    let tags = ctx.params.tags()?;
    if tags.is_empty() {
        return Err(Ec2Error::missing("Tag.1.Key"));
    }
    let set: BTreeMap<String, String> = tags.into_iter().map(|(k, v)| (k, v.unwrap_or_default())).collect();
    // The tags are checked before any resource is looked up, as EC2 does.
    Tags::parse(set.clone()).map_err(ServiceError::from)?;
    let (vms, volumes) = resources(ctx).await?;
    for vm in vms {
        ctx.broker.provisioning.tag(&ctx.caller.actor, &vm, &set, &[]).await?;
    }
    for v in volumes {
        ctx.broker.provisioning.tag_volume(&ctx.caller.actor, &ctx.instance()?, &v, &set, &[]).await?;
    }
    Ok(ok(ctx, "CreateTags"))
}

pub async fn delete_tags(ctx: &Ctx<'_>) -> Result<String, Ec2Error> {
    let (vms, volumes) = resources(ctx).await?;
    let tags = ctx.params.tags()?;
    for v in volumes {
        let vol = ctx.broker.provisioning.volume(&ctx.caller.actor, &ctx.instance()?, &v).await?;
        let remove: Vec<String> = if tags.is_empty() {
            vol.tags.keys().cloned().collect()
        } else {
            tags.iter().filter(|(k, val)| val.as_ref().is_none_or(|val| vol.tags.get(k) == Some(val))).map(|(k, _)| k.clone()).collect()
        };
        if !remove.is_empty() {
            ctx.broker.provisioning.tag_volume(&ctx.caller.actor, &ctx.instance()?, &v, &BTreeMap::new(), &remove).await?;
        }
    }
    for id in vms {
        let vm = ctx.broker.provisioning.get(&ctx.caller.actor, &id).await?;
        // No Tag.N: every tag goes. A value given: only if it matches.
        let remove: Vec<String> = if tags.is_empty() {
            vm.tags.iter().map(|(k, _)| k.clone()).collect()
        } else {
            tags.iter().filter(|(k, v)| v.as_ref().is_none_or(|v| vm.tags.get(k) == Some(v.as_str()))).map(|(k, _)| k.clone()).collect()
        };
        if !remove.is_empty() {
            ctx.broker.provisioning.tag(&ctx.caller.actor, &id, &BTreeMap::new(), &remove).await?;
        }
    }
    Ok(ok(ctx, "DeleteTags"))
}

pub async fn describe_tags(ctx: &Ctx<'_>) -> Result<String, Ec2Error> {
    let filters = ctx.params.filters()?;
    for (f, _) in &filters {
        if !matches!(f.as_str(), "resource-id" | "resource-type" | "key" | "value") {
            return Err(Ec2Error::invalid(format!("The filter '{}' is invalid", shown(f))));
        }
    }
    let query = VmQuery { user: Some(ctx.caller.actor.name.clone()), instance: Some(ctx.instance()?), ..VmQuery::default() };
    let (mut x, root) = ctx.doc("DescribeTags");
    x.open("tagSet");
    let mut cursor: Option<String> = None;
    loop {
        let page = PageRequest::parse(Some("1000"), cursor.as_deref()).map_err(|e| Ec2Error::invalid(e.message))?;
        let p = ctx.broker.provisioning.list(&ctx.caller.actor, query.clone(), page).await?;
        for vm in p.items.iter().filter(|v| v.status.is_live()) {
            let id = instance_id(&vm.id);
            for (k, v) in vm.tags.iter() {
                let keep = filters.iter().all(|(f, values)| match f.as_str() {
                    "resource-id" => values.contains(&id),
                    "resource-type" => values.iter().any(|v| v == "instance"),
                    "key" => values.iter().any(|p| super::images::glob(p, k)),
                    _ => values.iter().any(|p| super::images::glob(p, v)),
                });
                if keep {
                    x.open("item").leaf("resourceId", &id).leaf("resourceType", "instance").leaf("key", k).leaf("value", v).close("item");
                }
            }
        }
        match p.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    for v in ctx.broker.provisioning.volumes(&ctx.caller.actor, &ctx.instance()?).await? {
        for (k, val) in &v.tags {
            let keep = filters.iter().all(|(f, values)| match f.as_str() {
                "resource-id" => values.iter().any(|i| i == v.volume_id.as_str()),
                "resource-type" => values.iter().any(|t| t == "volume"),
                "key" => values.iter().any(|p| super::images::glob(p, k)),
                _ => values.iter().any(|p| super::images::glob(p, val)),
            });
            if keep {
                x.open("item")
                    .leaf("resourceId", v.volume_id.as_str())
                    .leaf("resourceType", "volume")
                    .leaf("key", k)
                    .leaf("value", val)
                    .close("item");
            }
        }
    }
    x.close("tagSet");
    Ok(x.finish(&root))
}
