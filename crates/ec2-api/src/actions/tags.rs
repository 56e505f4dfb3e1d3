//! Tags on instances, volumes and the recorded cloud objects (VPCs,
//! subnets, security groups, snapshots): `CreateTags`, `DeleteTags`,
//! `DescribeTags`. Tags are kept in the broker's records and put on the
//! cloud's object where the cloud keeps tags; `cloudbroker:`/`aws:` keys are
//! reserved (DeleteTags without `Tag.N` leaves them). Every resource id,
//! and the change on it, is checked before any change; under `DryRun` that
//! check is all that happens. A leased instance's tags include
//! `cloudbroker:lease-expires` and `cloudbroker:lease-action`, made from its
//! lease as DescribeInstances shows them.

use super::Ctx;
use crate::error::Ec2Error;
use crate::ids::{allocation_id, instance_id, key_pair_id, shown, vm_id, volume_id};
use crate::request::Params;
use cloudbroker_core::domain::NAME_TAG;
use cloudbroker_core::domain::{AllocationId, PageRequest, Tags, VmId, VolumeId};
use cloudbroker_core::provisioning::VmQuery;
use cloudbroker_core::ObjectKind;
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
        // `Name` is a tag like any other (it renames an instance).
        Tags::parse(set.iter().filter(|(k, _)| k.as_str() != NAME_TAG).map(|(k, v)| (k.clone(), v.clone())).collect())
            .map_err(ServiceError::from)?;
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

/// The filters DescribeTags takes (besides `tag:<key>`: a tag of that key
/// with a matching value); any other name is refused, as EC2 does.
pub const TAG_FILTERS: &[&str] = &["resource-id", "resource-type", "key", "value"];

/// `DescribeTags`'s parameters: filters of known names, a page
/// (`MaxResults` 5..1000, `NextToken`).
pub struct DescribeTagsInput {
    pub filters: Vec<crate::filter::Filter>,
    pub page: crate::filter::Page,
}

impl DescribeTagsInput {
    pub fn parse(params: &Params) -> Result<Self, Ec2Error> {
        let filters = crate::filter::parse(params)?;
        for f in filters.iter().map(|f| &f.name) {
            if !TAG_FILTERS.contains(&f.as_str()) && f.strip_prefix("tag:").is_none_or(|k| k.is_empty()) {
                return Err(Ec2Error::invalid(format!("The filter '{}' is invalid", shown(f))));
            }
        }
        let page = crate::filter::Page::parse(params, 5..=1000)?;
        Ok(Self { filters, page })
    }
}

/// The kind of recorded cloud object an id names by its prefix (`vpc-`,
/// `subnet-`, `sg-`, `snap-`), if any.
fn object_kind(id: &str) -> Option<ObjectKind> {
    [("vpc-", ObjectKind::Vpc), ("subnet-", ObjectKind::Subnet), ("sg-", ObjectKind::SecurityGroup), ("snap-", ObjectKind::Snapshot)]
        .into_iter()
        .find(|(p, _)| id.starts_with(p))
        .map(|(_, k)| k)
}

/// DescribeTags' `resource-type` of an object kind.
fn object_type(kind: ObjectKind) -> &'static str {
    match kind {
        ObjectKind::Vpc => "vpc",
        ObjectKind::Subnet => "subnet",
        ObjectKind::SecurityGroup => "security-group",
        ObjectKind::Snapshot => "snapshot",
    }
}

/// The recorded cloud objects among `ids` (each the caller's project's,
/// else its kind's NotFound), with their current tags, and the other ids.
async fn object_resources(
    ctx: &Ctx<'_>,
    ids: Vec<String>,
) -> Result<(Vec<String>, Vec<(ObjectKind, String, BTreeMap<String, String>)>), Ec2Error> {
    let (mut rest, mut objects) = (Vec::with_capacity(ids.len()), Vec::new());
    for id in ids {
        match object_kind(&id) {
            Some(kind) => {
                let row = ctx.broker.provisioning.visible_object(&ctx.caller.actor, &ctx.instance()?, kind, &id).await?;
                if row.project != ctx.caller.actor.project.as_str() {
                    return Err(ServiceError::NotFound(cloudbroker_core::Resource::CloudObject { kind, id }).into());
                }
                objects.push((kind, id, row.tags));
            }
            None => rest.push(id),
        }
    }
    Ok((rest, objects))
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
                format!(
                    "The ID '{}' is not valid: only instances (i-...), volumes (vol-...), VPCs (vpc-...), subnets (subnet-...), \
                     security groups (sg-...), snapshots (snap-...), key pairs (key-...) and addresses (eipalloc-...) carry tags here",
                    shown(id)
                ),
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
    let (ids, kept) = kept_resources(ctx, ids).await?;
    let kept: Vec<(Kept, Vec<String>)> = kept.into_iter().map(|k| (k, Vec::new())).collect();
    check_kept(ctx, &set, &kept).await?;
    let (ids, objects) = object_resources(ctx, ids).await?;
    let (vms, volumes) = resources(ctx, &ids).await?;
    let changes: Vec<_> = vms
        .into_iter()
        .map(|v| (Target::Vm(v), Vec::new()))
        .chain(volumes.into_iter().map(|v| (Target::Volume(v), Vec::new())))
        .chain(objects.into_iter().map(|(kind, id, _)| (Target::Object(kind, id), Vec::new())))
        .collect();
    apply(ctx, &set, changes).await?;
    apply_kept(ctx, &set, kept).await?;
    Ok(ok(ctx, "CreateTags"))
}

/// What a tag change acts on.
enum Target {
    Vm(VmId),
    Volume(VolumeId),
    /// A VPC, subnet, security group or snapshot, by its cloud id.
    Object(ObjectKind, String),
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
            Target::Object(kind, id) => {
                p.check_tag_object(me, &ctx.instance()?, *kind, id, set, remove).await?;
            }
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
            Target::Object(kind, id) => {
                p.tag_object(me, &ctx.instance()?, kind, &id, set, &remove).await?;
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
    let (ids, kept) = kept_resources(ctx, input.resources).await?;
    let (ids, objects) = object_resources(ctx, ids).await?;
    let (vms, volumes) = resources(ctx, &ids).await?;
    let tags = input.tags?;
    let removed = |current: &BTreeMap<String, String>| -> Vec<String> {
        if tags.is_empty() {
            current.keys().filter(|k| !Tags::is_reserved(k) || k.as_str() == NAME_TAG).cloned().collect()
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
    for (kind, id, current) in objects {
        let remove = removed(&current);
        changes.push((Target::Object(kind, id), remove));
    }
    let kept: Vec<(Kept, Vec<String>)> = kept
        .into_iter()
        .map(|k| {
            let remove = removed(k.tags());
            (k, remove)
        })
        .collect();
    check_kept(ctx, &BTreeMap::new(), &kept).await?;
    apply(ctx, &BTreeMap::new(), changes).await?;
    apply_kept(ctx, &BTreeMap::new(), kept).await?;
    Ok(ok(ctx, "DeleteTags"))
}

/// One tag of a `DescribeTags` answer: resource id and type, key, value.
type TagRow = (String, &'static str, String, String);

pub async fn describe_tags(ctx: &Ctx<'_>, input: DescribeTagsInput) -> Result<String, Ec2Error> {
    let DescribeTagsInput { filters, page } = input;
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
    // VPCs, subnets, security groups and snapshots: their records' tags.
    for kind in [ObjectKind::Vpc, ObjectKind::Subnet, ObjectKind::SecurityGroup, ObjectKind::Snapshot] {
        for o in ctx.broker.provisioning.objects(&ctx.caller.actor, &ctx.instance()?, kind).await? {
            rows.extend(o.tags.iter().map(|(k, val)| (o.cloud_id.clone(), object_type(kind), k.clone(), val.clone())));
        }
    }
    // Key pairs and Elastic IPs: tags kept by the broker.
    let project = ctx.caller.actor.project.to_string();
    for p in ctx.broker.key_pairs.list(&ctx.caller.actor).await? {
        let id = key_pair_id(&project, &p.name, &p.created_at);
        rows.extend(p.tags.iter().map(|(k, val)| (id.clone(), "key-pair", k.clone(), val.clone())));
    }
    for a in ctx.broker.provisioning.addresses(&ctx.caller.actor, &ctx.instance()?).await? {
        rows.extend(a.tags.iter().map(|(k, val)| (a.allocation_id.to_string(), "elastic-ip", k.clone(), val.clone())));
    }
    let cost = crate::filter::cost(&filters);
    let rows = crate::filter::retain(rows, cost, move |(id, kind, k, v): &TagRow| {
        filters.iter().all(|f| match f.name.as_str() {
            "resource-id" => f.values.any_equal(id),
            "resource-type" => f.values.any_equal(kind),
            "key" => f.values.any(k),
            "value" => f.values.any(v),
            tag => tag.strip_prefix("tag:") == Some(k.as_str()) && f.values.any(v),
        })
    })
    .await?;
    let (rows, next) = page.cut(rows);
    let (mut x, root) = ctx.doc("DescribeTags");
    x.open("tagSet");
    for (id, kind, k, v) in &rows {
        x.open("item").leaf("resourceId", id).leaf("resourceType", kind).leaf("key", k).leaf("value", v).close("item");
    }
    x.close("tagSet");
    x.opt("nextToken", next.as_deref());
    Ok(x.finish(&root))
}

/// A key pair or an Elastic IP among `ResourceId.N`: their tags are kept by
/// the broker (not on the cloud), with their current tags.
enum Kept {
    KeyPair { name: String, tags: BTreeMap<String, String> },
    Address { id: AllocationId, tags: BTreeMap<String, String> },
}

impl Kept {
    fn tags(&self) -> &BTreeMap<String, String> {
        match self {
            Kept::KeyPair { tags, .. } | Kept::Address { tags, .. } => tags,
        }
    }
}

/// The key pairs (`key-…`) and addresses (`eipalloc-…`) among `ids`, each
/// found among the caller's project's (else EC2's NotFound for it), and the
/// other ids, in order.
async fn kept_resources(ctx: &Ctx<'_>, ids: Vec<String>) -> Result<(Vec<String>, Vec<Kept>), Ec2Error> {
    let (mut rest, mut kept) = (Vec::with_capacity(ids.len()), Vec::new());
    let mut pairs = None;
    for id in ids {
        if id.starts_with("key-") {
            if pairs.is_none() {
                pairs = Some(ctx.broker.key_pairs.list(&ctx.caller.actor).await?);
            }
            let project = ctx.caller.actor.project.as_str();
            let found = pairs.iter().flatten().find(|p| key_pair_id(project, &p.name, &p.created_at) == id);
            match found {
                Some(p) => kept.push(Kept::KeyPair { name: p.name.clone(), tags: p.tags.clone() }),
                None => return Err(super::keypairs::not_found(&id)),
            }
        } else if id.starts_with("eipalloc-") {
            let a = allocation_id("ResourceId", &id)?;
            let addr = ctx.broker.provisioning.address(&ctx.caller.actor, &ctx.instance()?, &a).await?;
            kept.push(Kept::Address { id: a, tags: addr.tags });
        } else {
            rest.push(id);
        }
    }
    Ok((rest, kept))
}

/// Checks every key pair and address change; called before `apply`, which
/// checks the VMs and volumes and only then changes anything.
async fn check_kept(ctx: &Ctx<'_>, set: &BTreeMap<String, String>, changes: &[(Kept, Vec<String>)]) -> Result<(), Ec2Error> {
    let me = &ctx.caller.actor;
    for (target, remove) in changes {
        match target {
            Kept::KeyPair { name, .. } => {
                ctx.broker.key_pairs.check_tag(me, name, set, remove).await?;
            }
            Kept::Address { id, .. } => {
                ctx.broker.provisioning.check_tag_address(me, &ctx.instance()?, id, set, remove).await?;
            }
        }
    }
    // Under DryRun, `apply` answers DryRunOperation once the VMs and volumes are checked too.
    Ok(())
}

/// Makes the (checked) key pair and address changes.
async fn apply_kept(ctx: &Ctx<'_>, set: &BTreeMap<String, String>, changes: Vec<(Kept, Vec<String>)>) -> Result<(), Ec2Error> {
    let me = &ctx.caller.actor;
    for (target, remove) in changes.into_iter().filter(|(_, remove)| !set.is_empty() || !remove.is_empty()) {
        match target {
            Kept::KeyPair { name, .. } => {
                ctx.broker.key_pairs.tag(me, &name, set, &remove).await?;
            }
            Kept::Address { id, .. } => {
                ctx.broker.provisioning.tag_address(me, &ctx.instance()?, &id, set, &remove).await?;
            }
        }
    }
    Ok(())
}
