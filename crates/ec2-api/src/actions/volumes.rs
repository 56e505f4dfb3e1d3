//! Volumes: `CreateVolume`, `AttachVolume`, `DetachVolume`, `DeleteVolume`,
//! `DescribeVolumes`. Volumes are the cloud's, kept by the broker for the
//! project the access key acts in: Describe answers from the broker's
//! records (asking the cloud only about volumes in transition), every
//! member's volumes; another project's volume does not exist
//! (`InvalidVolume.NotFound`), nor does another project's instance
//! (`InvalidInstanceID.NotFound`); a viewer's create, attach, detach or
//! delete is `UnauthorizedOperation`.

use super::Ctx;
use crate::error::Ec2Error;
use crate::filter::Filter;
use crate::ids::{instance_id, shown, vm_id, volume_id};
use crate::request::Params;
use crate::xml::Xml;
use cloudbroker_core::domain::time::{rfc3339_string, Fraction};
use cloudbroker_core::domain::{Tags, VmId, VolumeId, VolumeSize};
use cloudbroker_core::provisioning::{Volume, VolumeOptions, VolumeSpec, VolumeToken};
use cloudbroker_core::ServiceError;

/// `CreateVolume`'s parameters.
pub struct CreateVolumeInput {
    pub spec: VolumeSpec,
    /// `SnapshotId`: the snapshot the volume is made from.
    pub snapshot: Option<String>,
    /// No `Size` was given (with a snapshot: the snapshot's size).
    pub size_from_snapshot: bool,
    /// `Iops`, `Encrypted`, `Throughput` (the cloud checks them against the type).
    pub options: VolumeOptions,
    /// `ClientToken`: the same token (from any member of the project) with
    /// the same parameters answers the same volume.
    pub client_token: Option<VolumeToken>,
}

impl CreateVolumeInput {
    pub fn parse(params: &Params) -> Result<Self, Ec2Error> {
        let snapshot = params.get("SnapshotId").filter(|s| !s.is_empty()).map(super::snapshots::snapshot_param).transpose()?;
        let size_from_snapshot = snapshot.is_some() && params.get("Size").is_none();
        let raw = if size_from_snapshot { "1" } else { params.required("Size")? };
        let size = VolumeSize::parse(raw).map_err(|_| {
            Ec2Error::invalid(format!("Value ({}) for parameter Size is invalid: a size from 1 to {} GiB", shown(raw), VolumeSize::MAX_GIB))
        })?;
        let zone = params.required("AvailabilityZone")?.to_string();
        let volume_type = params.get("VolumeType").filter(|t| !t.is_empty()).map(str::to_string);
        let tags = Tags::parse(params.tag_specifications("volume")?.into_iter().collect())
            .map_err(|e| Ec2Error::invalid(format!("TagSpecification: {}", e.message)))?;
        // botocore sends a fresh ClientToken with every CreateVolume (its
        // retries reuse it): the broker makes one volume per token.
        let client_token = match params.get("ClientToken").filter(|t| !t.is_empty()) {
            Some(t) => Some(VolumeToken::parse(t).map_err(|_| {
                Ec2Error::invalid(format!("Value ({}) for parameter ClientToken is invalid: at most 64 ASCII characters", shown(t)))
            })?),
            None => None,
        };
        let options = VolumeOptions {
            iops: params.int("Iops", 1..=1_000_000)?.and_then(|n| u32::try_from(n).ok()),
            encrypted: super::launch_options::boolean(params, "Encrypted")?,
            throughput: params.int("Throughput", 1..=100_000)?.and_then(|n| u32::try_from(n).ok()),
        };
        Ok(Self { spec: VolumeSpec { size, zone, volume_type, tags }, snapshot, size_from_snapshot, options, client_token })
    }
}

/// `AttachVolume`'s parameters.
pub struct AttachVolumeInput {
    pub volume: VolumeId,
    pub vm: VmId,
    pub device: String,
}

impl AttachVolumeInput {
    pub fn parse(params: &Params) -> Result<Self, Ec2Error> {
        let volume = volume_id("VolumeId", params.required("VolumeId")?)?;
        let vm = vm_id(params.required("InstanceId")?)?;
        let device = params.required("Device")?.to_string();
        Ok(Self { volume, vm, device })
    }
}

/// `DetachVolume`'s parameters.
pub struct DetachVolumeInput {
    pub volume: VolumeId,
    pub vm: Option<VmId>,
    pub force: bool,
}

impl DetachVolumeInput {
    pub fn parse(params: &Params) -> Result<Self, Ec2Error> {
        let volume = volume_id("VolumeId", params.required("VolumeId")?)?;
        let vm = params.get("InstanceId").filter(|v| !v.is_empty()).map(vm_id).transpose()?;
        let force = match params.get("Force") {
            None | Some("false") => false,
            Some("true") => true,
            Some(other) => {
                return Err(Ec2Error::invalid(format!("Value ({}) for parameter Force is invalid: true or false", shown(other))))
            }
        };
        Ok(Self { volume, vm, force })
    }
}

/// `DeleteVolume`'s parameters.
pub struct DeleteVolumeInput {
    pub volume: VolumeId,
}

impl DeleteVolumeInput {
    pub fn parse(params: &Params) -> Result<Self, Ec2Error> {
        Ok(Self { volume: volume_id("VolumeId", params.required("VolumeId")?)? })
    }
}

/// The filters DescribeVolumes takes (besides `tag:<key>`, `tag-key` and
/// `tag-value`); any other name is refused, as EC2 does.
pub const VOLUME_FILTERS: &[&str] = &[
    "volume-id",
    "status",
    "attachment.instance-id",
    "attachment.device",
    "attachment.status",
    "attachment.attach-time",
    "attachment.delete-on-termination",
    "size",
    "availability-zone",
    "volume-type",
    "create-time",
    "encrypted",
    "multi-attach-enabled",
    "snapshot-id",
];

/// `DescribeVolumes`'s parameters: filters of known names, well-formed ids,
/// a page (`MaxResults` 5..500, not with ids; `NextToken`).
pub struct DescribeVolumesInput {
    pub filters: Vec<Filter>,
    pub ids: Vec<VolumeId>,
    pub page: crate::filter::Page,
}

impl DescribeVolumesInput {
    pub fn parse(params: &Params) -> Result<Self, Ec2Error> {
        let filters = crate::filter::parse(params)?;
        crate::filter::check_names(&filters, VOLUME_FILTERS, true)?;
        let ids = params.list("VolumeId")?.iter().map(|id| volume_id("VolumeId", id)).collect::<Result<Vec<_>, _>>()?;
        let page = crate::filter::Page::parse(params, 5..=500)?;
        if page.max.is_some() && !ids.is_empty() {
            return Err(Ec2Error::client(
                "InvalidParameterCombination",
                "The parameter volumeSet cannot be used with the parameter maxResults",
            ));
        }
        Ok(Self { filters, ids, page })
    }
}

fn time(t: chrono::DateTime<chrono::Utc>) -> String {
    rfc3339_string(&t, Fraction::Millis)
}

fn tags_xml(x: &mut Xml, v: &Volume) {
    x.open("tagSet");
    for (k, val) in &v.tags {
        x.open("item").leaf("key", k).leaf("value", val).close("item");
    }
    x.close("tagSet");
}

/// The fields of a volume shared by CreateVolume and DescribeVolumes.
fn volume_fields(x: &mut Xml, v: &Volume) {
    x.leaf("volumeId", v.volume_id.as_str())
        .leaf("size", &v.size_gib.to_string())
        .leaf("snapshotId", v.snapshot_id.as_deref().unwrap_or(""))
        .leaf("availabilityZone", &v.zone)
        .leaf("status", &v.state)
        .leaf("createTime", &time(v.created_at))
        .leaf("volumeType", v.volume_type.as_deref().unwrap_or("gp2"))
        .leaf("encrypted", encrypted(v));
    // IOPS and throughput as given at creation (the cloud's defaults are not known here).
    if let Some(n) = v.iops {
        x.leaf_display("iops", n);
    }
    if let Some(n) = v.throughput {
        x.leaf_display("throughput", n);
    }
}

/// `true`/`false`, as given at creation (not given: the cloud's default, not encrypted).
fn encrypted(v: &Volume) -> &'static str {
    if v.encrypted == Some(true) {
        "true"
    } else {
        "false"
    }
}

fn attachment_answer(ctx: &Ctx<'_>, action: &str, v: &Volume, fallback_state: &str) -> String {
    let (mut x, root) = ctx.doc(action);
    x.leaf("volumeId", v.volume_id.as_str());
    if let Some(a) = &v.attachment {
        x.leaf("instanceId", &instance_id(&a.vm)).leaf("device", &a.device).leaf("status", &a.state);
    } else {
        x.leaf("status", fallback_state);
    }
    x.leaf("attachTime", &time(chrono::Utc::now()));
    x.finish(&root)
}

pub async fn create_volume(ctx: &Ctx<'_>, input: CreateVolumeInput) -> Result<String, Ec2Error> {
    let instance = ctx.instance()?;
    let mut spec = input.spec;
    let snapshot = input.snapshot;
    if let Some(s) = &snapshot {
        let snap = ctx.broker.provisioning.volume_snapshot(&ctx.caller.actor, &instance, s).await?;
        if input.size_from_snapshot {
            spec.size = VolumeSize::new(snap.size_gib).map_err(|e| Ec2Error::invalid(e.message))?;
        }
    }
    let named_param = |e| match e {
        ServiceError::Invalid { field: Some(f), message } => {
            Ec2Error::invalid(format!("parameter {}: {message}", if f == "zone" { "AvailabilityZone" } else { "VolumeType" }))
        }
        other => other.into(),
    };
    if ctx.dry_run {
        ctx.broker.provisioning.check_create_volume(&ctx.caller.actor, &instance, &spec).await.map_err(named_param)?;
        return Err(Ec2Error::dry_run());
    }
    let p = &ctx.broker.provisioning;
    let v = match &input.client_token {
        // The token's only conflict: it was first used with other parameters.
        Some(t) => {
            p.create_volume_once(&ctx.caller.actor, &instance, spec, input.options, snapshot.as_deref(), t).await.map_err(|e| match e {
                ServiceError::Conflict(m) => Ec2Error::client("IdempotentParameterMismatch", m),
                e => named_param(e),
            })?
        }
        None => p.create_volume_from(&ctx.caller.actor, &instance, spec, input.options, snapshot.as_deref()).await.map_err(named_param)?,
    };
    let (mut x, root) = ctx.doc("CreateVolume");
    volume_fields(&mut x, &v);
    tags_xml(&mut x, &v);
    Ok(x.finish(&root))
}

pub async fn attach_volume(ctx: &Ctx<'_>, input: AttachVolumeInput) -> Result<String, Ec2Error> {
    let AttachVolumeInput { volume: id, vm, device } = input;
    let device = device.as_str();
    let instance = ctx.instance()?;
    let refused = |e| match e {
        ServiceError::Invalid { message, .. } => {
            Ec2Error::invalid(format!("Value ({}) for parameter Device is invalid: {message}", shown(device)))
        }
        ServiceError::Conflict(m) => Ec2Error::client("IncorrectInstanceState", m),
        other => other.into(),
    };
    if ctx.dry_run {
        ctx.broker.provisioning.check_attach_volume(&ctx.caller.actor, &instance, &id, &vm, device).await.map_err(refused)?;
        return Err(Ec2Error::dry_run());
    }
    let v = ctx.broker.provisioning.attach_volume(&ctx.caller.actor, &instance, &id, &vm, device).await.map_err(refused)?;
    Ok(attachment_answer(ctx, "AttachVolume", &v, "attaching"))
}

pub async fn detach_volume(ctx: &Ctx<'_>, input: DetachVolumeInput) -> Result<String, Ec2Error> {
    let DetachVolumeInput { volume: id, vm, force } = input;
    let instance = ctx.instance()?;
    if ctx.dry_run {
        ctx.broker.provisioning.check_detach_volume(&ctx.caller.actor, &instance, &id, vm.as_ref()).await?;
        return Err(Ec2Error::dry_run());
    }
    let before = ctx.broker.provisioning.volume(&ctx.caller.actor, &instance, &id).await?;
    let v = ctx.broker.provisioning.detach_volume(&ctx.caller.actor, &instance, &id, vm.as_ref(), force).await?;
    // The answer names the attachment being ended.
    let shown_v = Volume {
        attachment: v.attachment.clone().or(before.attachment.map(|mut a| {
            a.state = "detaching".into();
            a
        })),
        ..v
    };
    Ok(attachment_answer(ctx, "DetachVolume", &shown_v, "detached"))
}

pub async fn delete_volume(ctx: &Ctx<'_>, input: DeleteVolumeInput) -> Result<String, Ec2Error> {
    let id = input.volume;
    let instance = ctx.instance()?;
    if ctx.dry_run {
        ctx.broker.provisioning.check_delete_volume(&ctx.caller.actor, &instance, &id).await?;
        return Err(Ec2Error::dry_run());
    }
    ctx.broker.provisioning.delete_volume(&ctx.caller.actor, &instance, &id).await?;
    let (mut x, root) = ctx.doc("DeleteVolume");
    x.leaf("return", "true");
    Ok(x.finish(&root))
}

fn keep(v: &Volume, filters: &[Filter]) -> bool {
    let inst = v.attachment.as_ref().map(|a| instance_id(&a.vm));
    let size = v.size_gib.to_string();
    filters.iter().all(|f| {
        let any = |field: Option<&str>| field.is_some_and(|s| f.values.any(s));
        if let Some(m) = f.tags(v.tags.iter().map(|(k, v)| (k.as_str(), v.as_str()))) {
            return m;
        }
        match f.name.as_str() {
            "attachment.attach-time" => any(v.attachment.as_ref().map(|a| time(a.since)).as_deref()),
            "attachment.delete-on-termination" => v.attachment.is_some() && f.values.any("false"),
            "create-time" => any(Some(&time(v.created_at))),
            "encrypted" => f.values.any(encrypted(v)),
            "snapshot-id" => any(v.snapshot_id.as_deref()),
            "multi-attach-enabled" => f.values.any("false"),
            "volume-id" => any(Some(v.volume_id.as_str())),
            "status" => any(Some(&v.state)),
            "attachment.instance-id" => any(inst.as_deref()),
            "attachment.device" => any(v.attachment.as_ref().map(|a| a.device.as_str())),
            "attachment.status" => any(v.attachment.as_ref().map(|a| a.state.as_str())),
            "size" => any(Some(&size)),
            "availability-zone" => any(Some(&v.zone)),
            "volume-type" => any(Some(v.volume_type.as_deref().unwrap_or("gp2"))),
            _ => false,
        }
    })
}

pub async fn describe_volumes(ctx: &Ctx<'_>, input: DescribeVolumesInput) -> Result<String, Ec2Error> {
    let DescribeVolumesInput { filters, ids, page } = input;
    let instance = ctx.instance()?;
    let mine = ctx.broker.provisioning.volumes(&ctx.caller.actor, &instance).await?;
    if let Some(missing) = ids.iter().find(|id| !mine.iter().any(|v| &v.volume_id == *id)) {
        return Err(Ec2Error::volume_not_found(missing.as_str()));
    }
    let mine: Vec<Volume> = mine.into_iter().filter(|v| ids.is_empty() || ids.contains(&v.volume_id)).collect();
    // Tag filters read every tag of a volume.
    let cost = crate::filter::cost(&filters).saturating_mul(1 + cloudbroker_core::domain::MAX_TAGS);
    let mine = crate::filter::retain(mine, cost, move |v| keep(v, &filters)).await?;
    let (mine, next) = page.cut(mine);
    let (mut x, root) = ctx.doc("DescribeVolumes");
    x.open("volumeSet");
    for v in &mine {
        x.open("item");
        volume_fields(&mut x, v);
        x.open("attachmentSet");
        if let Some(a) = &v.attachment {
            x.open("item")
                .leaf("volumeId", v.volume_id.as_str())
                .leaf("instanceId", &instance_id(&a.vm))
                .leaf("device", &a.device)
                .leaf("status", &a.state)
                .leaf("attachTime", &time(a.since))
                .leaf("deleteOnTermination", "false")
                .close("item");
        }
        x.close("attachmentSet");
        tags_xml(&mut x, v);
        x.close("item");
    }
    x.close("volumeSet");
    x.opt("nextToken", next.as_deref());
    Ok(x.finish(&root))
}
