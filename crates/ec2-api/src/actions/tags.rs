//! Tags on instances and volumes: `CreateTags`, `DeleteTags`, `DescribeTags`.
//! Tags are kept in the broker's records and put on the cloud's instance or
//! volume where the cloud keeps tags; `cloudbroker:`/`aws:` keys are
//! reserved (DeleteTags without `Tag.N` leaves them). Every resource id,
//! and the change on it, is checked before any change; under `DryRun` that
//! check is all that happens. A leased instance's tags include
//! `cloudbroker:lease-expires` and `cloudbroker:lease-action`, made from its
//! lease as DescribeInstances shows them.

use super::Ctx;
use crate::error::Ec2Error;
use crate::ids::{instance_id, shown, vm_id, volume_id};
use crate::request::Params;
use cloudbroker_core::domain::{PageRequest, Tags, VmId, VolumeId};
use cloudbroker_core::provisioning::VmQuery;
use cloudbroker_core::ServiceError;
use std::collections::BTreeMap;

/// The caller's instances and volumes among `ResourceId.N` (all checked before any change).
/// `ResourceId.N`, at least one (each is checked, in order, against the
/// caller's resources).
fn resource_ids(params: &Params) -> Result<Vec<String>, Ec2Error> {
    let ids = params.list("ResourceId")?;
    if ids.is_empty() {
        return Err(Ec2Error::missing("ResourceId.1"));
    }
    Ok(ids)
}

/// `CreateTags`'s parameters: the tags to set (valid as a set) and the resources.
pub struct CreateTagsInput {
    pub set: BTreeMap<String, String>,
    pub resources: Vec<String>,
}

impl CreateTagsInput {
    pub fn parse(params: &Params) -> Result<Self, Ec2Error> {
        let tags = params.tags()?;
        if tags.is_empty() {
            return Err(Ec2Error::missing("Tag.1.Key"));
        }
        let set: BTreeMap<String, String> = tags.into_iter().map(|(k, v)| (k, v.unwrap_or_default())).collect();
        // The tags are checked before any resource is looked up, as EC2 does.
        Tags::parse(set.clone()).map_err(ServiceError::from)?;
        Ok(Self { set, resources: resource_ids(params)? })
    }
}

/// `DeleteTags`'s parameters. The tags are checked only once every resource
/// is found (EC2's order), so their parse is kept until then.
pub struct DeleteTagsInput {
    pub resources: Vec<String>,
    /// `Tag.N.Key` with the value it must have, if given.
    pub tags: Result<Vec<(String, Option<String>)>, Ec2Error>,
}

impl DeleteTagsInput {
    pub fn parse(params: &Params) -> Result<Self, Ec2Error> {
        let resources = resource_ids(params)?;
        Ok(Self { resources, tags: params.tags() })
    }
}

/// `DescribeTags`'s parameters: filters of known names.
pub struct DescribeTagsInput {
    pub filters: Vec<crate::filter::Filter>,
}

impl DescribeTagsInput {
    pub fn parse(params: &Params) -> Result<Self, Ec2Error> {
        let filters = crate::filter::parse(params)?;
        for f in filters.iter().map(|f| &f.name) {
            if !matches!(f.as_str(), "resource-id" | "resource-type" | "key" | "value") {
                return Err(Ec2Error::invalid(format!("The filter '{}' is invalid", shown(f))));
            }
        }
        Ok(Self { filters })
    }
}

async fn resources(ctx: &Ctx<'_>, ids: &[String]) -> Result<(Vec<VmId>, Vec<VolumeId>), Ec2Error> {
    let (mut vms, mut volumes) = (Vec::new(), Vec::new());
    for id in ids {
        if id.starts_with("vol-") {
            let v = volume_id("ResourceId", id)?;
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
            Ok(v) if v.project == ctx.caller.actor.project => vms.push(vm),
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

pub async fn create_tags(ctx: &Ctx<'_>, input: CreateTagsInput) -> Result<String, Ec2Error> {
    let CreateTagsInput { set, resources: ids } = input;
    let (vms, volumes) = resources(ctx, &ids).await?;
    let changes: Vec<_> =
        vms.into_iter().map(|v| (Target::Vm(v), Vec::new())).chain(volumes.into_iter().map(|v| (Target::Volume(v), Vec::new()))).collect();
    apply(ctx, &set, changes).await?;
    Ok(ok(ctx, "CreateTags"))
}

/// What a tag change acts on.
enum Target {
    Vm(VmId),
    Volume(VolumeId),
}

/// Sets `set` and removes each target's keys: every target checked first
/// (under `DryRun`, only checked: then `DryRunOperation`).
async fn apply(ctx: &Ctx<'_>, set: &BTreeMap<String, String>, changes: Vec<(Target, Vec<String>)>) -> Result<(), Ec2Error> {
    let p = &ctx.broker.provisioning;
    let me = &ctx.caller.actor;
    for (target, remove) in &changes {
        match target {
            Target::Vm(id) => p.check_tag(me, id, set, remove).await?,
            Target::Volume(id) => p.check_tag_volume(me, &ctx.instance()?, id, set, remove).await?,
        }
    }
    if ctx.dry_run {
        return Err(Ec2Error::dry_run());
    }
    for (target, remove) in changes.into_iter().filter(|(_, remove)| !set.is_empty() || !remove.is_empty()) {
        match target {
            Target::Vm(id) => {
                p.tag(me, &id, set, &remove).await?;
            }
            Target::Volume(id) => {
                p.tag_volume(me, &ctx.instance()?, &id, set, &remove).await?;
            }
        }
    }
    Ok(())
}

/// `DeleteTags`: no `Tag.N` removes every user tag (the reserved
/// `cloudbroker:`/`aws:` tags a client keeps on a VM stay, as EC2 keeps
/// `aws:` tags); `Tag.N.Key` alone removes that key, with `Tag.N.Value`
/// only when the value matches.
pub async fn delete_tags(ctx: &Ctx<'_>, input: DeleteTagsInput) -> Result<String, Ec2Error> {
    let (vms, volumes) = resources(ctx, &input.resources).await?;
    let tags = input.tags?;
    let removed = |current: &BTreeMap<String, String>| -> Vec<String> {
        if tags.is_empty() {
            current.keys().filter(|k| !Tags::is_reserved(k)).cloned().collect()
        } else {
            tags.iter().filter(|(k, v)| v.as_ref().is_none_or(|v| current.get(k) == Some(v))).map(|(k, _)| k.clone()).collect()
        }
    };
    let mut changes = Vec::with_capacity(vms.len() + volumes.len());
    for id in vms {
        let vm = ctx.broker.provisioning.get(&ctx.caller.actor, &id).await?;
        changes.push((Target::Vm(id), removed(vm.tags.as_map())));
    }
    for v in volumes {
        let vol = ctx.broker.provisioning.volume(&ctx.caller.actor, &ctx.instance()?, &v).await?;
        changes.push((Target::Volume(v), removed(&vol.tags)));
    }
    apply(ctx, &BTreeMap::new(), changes).await?;
    Ok(ok(ctx, "DeleteTags"))
}

/// One tag of a `DescribeTags` answer: resource id and type, key, value.
type TagRow = (String, &'static str, String, String);

pub async fn describe_tags(ctx: &Ctx<'_>, input: DescribeTagsInput) -> Result<String, Ec2Error> {
    let filters = input.filters;
    let query = VmQuery { project: Some(ctx.caller.actor.project.clone()), instance: Some(ctx.instance()?), ..VmQuery::default() };
    let mut rows: Vec<TagRow> = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = PageRequest::parse(Some("1000"), cursor.as_deref()).map_err(|e| Ec2Error::invalid(e.message))?;
        let p = ctx.broker.provisioning.list(&ctx.caller.actor, query.clone(), page).await?;
        for vm in p.items.iter().filter(|v| v.status.is_live()) {
            let id = instance_id(&vm.id);
            let lease = super::instances::lease_tags(vm);
            let stored = vm.tags.iter().filter(|(k, _)| lease.is_none() || !lease.iter().flatten().any(|(l, _)| l == k));
            rows.extend(stored.map(|(k, v)| (id.clone(), "instance", k.clone(), v.clone())));
            // A lease shows as its tags, as DescribeInstances shows it.
            rows.extend(lease.into_iter().flatten().map(|(k, v)| (id.clone(), "instance", k.to_string(), v)));
        }
        match p.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    for v in ctx.broker.provisioning.volumes(&ctx.caller.actor, &ctx.instance()?).await? {
        rows.extend(v.tags.iter().map(|(k, val)| (v.volume_id.to_string(), "volume", k.clone(), val.clone())));
    }
    let cost = crate::filter::cost(&filters);
    let rows = crate::filter::retain(rows, cost, move |(id, kind, k, v): &TagRow| {
        filters.iter().all(|f| match f.name.as_str() {
            "resource-id" => f.values.any_equal(id),
            "resource-type" => f.values.any_equal(kind),
            "key" => f.values.any(k),
            _ => f.values.any(v),
        })
    })
    .await?;
    let (mut x, root) = ctx.doc("DescribeTags");
    x.open("tagSet");
    for (id, kind, k, v) in &rows {
        x.open("item").leaf("resourceId", id).leaf("resourceType", kind).leaf("key", k).leaf("value", v).close("item");
    }
    x.close("tagSet");
    Ok(x.finish(&root))
}
