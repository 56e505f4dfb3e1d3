//! Snapshots (`CreateSnapshot`, `DeleteSnapshot`, `DescribeSnapshots`) and
//! images made from instances (`CreateImage`, `DescribeImageAttribute`,
//! `ModifyImageAttribute`). Snapshots are the cloud's, kept by the broker
//! for the project the access key acts in, as volumes are: another
//! project's snapshot does not exist (`InvalidSnapshot.NotFound`), and
//! their `ownerId` is the project's name, as for images. `CreateImage` makes
//! a private image of the caller's project (see [`super::images`]), its
//! `ami-` id the hash of its name; its launch permissions
//! (`launchPermission`) name broker users by name, who then see and launch
//! it. `Group=all` (making an image public) is refused: public images are
//! the operator's.

use super::Ctx;
use crate::error::Ec2Error;
use crate::filter::Filter;
use crate::ids::{image_id, shown, vm_id, volume_id};
use crate::request::Params;
use crate::xml::Xml;
use cloudbroker_core::domain::time::{rfc3339_string, Fraction};
use cloudbroker_core::domain::{ImageName, Tags, UserName, VmId, VolumeId};
use cloudbroker_core::images::ImageView;
use cloudbroker_core::provisioning::Snapshot;
use cloudbroker_core::ServiceError;

/// A snapshot id as given in `SnapshotId`: `snap-` and 8 or 17 hex digits,
/// else EC2's `InvalidParameterValue`.
pub fn snapshot_param(v: &str) -> Result<String, Ec2Error> {
    let ok = v.strip_prefix("snap-").is_some_and(|h| matches!(h.len(), 8 | 17) && h.bytes().all(|b| b.is_ascii_hexdigit()));
    if ok {
        Ok(v.to_string())
    } else {
        Err(Ec2Error::invalid(format!("Value ({}) for parameter snapshotId is invalid. Expected: 'snap-...'.", shown(v))))
    }
}

/// `CreateSnapshot`'s parameters.
pub struct CreateSnapshotInput {
    pub volume: VolumeId,
    pub description: String,
    pub tags: Tags,
}

impl CreateSnapshotInput {
    pub fn parse(params: &Params) -> Result<Self, Ec2Error> {
        let volume = volume_id("VolumeId", params.required("VolumeId")?)?;
        let description = params.get("Description").unwrap_or("").to_string();
        let tags = Tags::parse_resource(params.tag_specifications("snapshot")?.into_iter().collect())
            .map_err(|e| Ec2Error::invalid(format!("TagSpecification: {}", e.message)))?;
        Ok(Self { volume, description, tags })
    }
}

/// `DeleteSnapshot`'s parameter.
pub struct DeleteSnapshotInput {
    pub snapshot: String,
}

impl DeleteSnapshotInput {
    pub fn parse(params: &Params) -> Result<Self, Ec2Error> {
        Ok(Self { snapshot: snapshot_param(params.required("SnapshotId")?)? })
    }
}

/// The filters DescribeSnapshots takes (besides `tag:<key>`, `tag-key`,
/// `tag-value`); any other name is refused, as EC2 does.
pub const SNAPSHOT_FILTERS: &[&str] =
    &["snapshot-id", "volume-id", "status", "owner-id", "owner-alias", "description", "progress", "start-time", "volume-size", "encrypted"];

/// `DescribeSnapshots`' parameters: filters of known names, well-formed
/// ids, owners, a page (`MaxResults` 5..1000, not with ids; `NextToken`).
pub struct DescribeSnapshotsInput {
    pub filters: Vec<Filter>,
    pub ids: Vec<String>,
    pub owners: Vec<String>,
    pub page: crate::filter::Page,
}

impl DescribeSnapshotsInput {
    pub fn parse(params: &Params) -> Result<Self, Ec2Error> {
        let filters = crate::filter::parse(params)?;
        crate::filter::check_names(&filters, SNAPSHOT_FILTERS, true)?;
        let ids = params.list("SnapshotId")?.iter().map(|id| snapshot_param(id)).collect::<Result<Vec<_>, _>>()?;
        let owners = params.list("Owner")?;
        let page = crate::filter::Page::parse(params, 5..=1000)?;
        if page.max.is_some() && !ids.is_empty() {
            return Err(Ec2Error::client(
                "InvalidParameterCombination",
                "The parameter snapshotSet cannot be used with the parameter maxResults",
            ));
        }
        Ok(Self { filters, ids, owners, page })
    }
}

/// `CreateImage`'s parameters.
pub struct CreateImageInput {
    pub vm: VmId,
    pub name: ImageName,
    pub description: String,
    pub no_reboot: bool,
}

impl CreateImageInput {
    pub fn parse(params: &Params) -> Result<Self, Ec2Error> {
        let vm = vm_id(params.required("InstanceId")?)?;
        let name = params.required("Name")?;
        let name = ImageName::parse(name)
            .map_err(|e| Ec2Error::client("InvalidAMIName.Malformed", format!("AMI name '{}' is invalid: {}", shown(name), e.message)))?;
        let description = params.get("Description").unwrap_or("").to_string();
        let no_reboot = bool_param(params, "NoReboot")?;
        Ok(Self { vm, name, description, no_reboot })
    }
}

fn bool_param(params: &Params, name: &str) -> Result<bool, Ec2Error> {
    match params.get(name) {
        None => Ok(false),
        Some(v) if v.eq_ignore_ascii_case("false") => Ok(false),
        Some(v) if v.eq_ignore_ascii_case("true") => Ok(true),
        Some(v) => Err(Ec2Error::invalid(format!("Value ({}) for parameter {name} is invalid: true or false", shown(v)))),
    }
}

/// The image attributes `DescribeImageAttribute` knows; the broker has
/// values for `launchPermission` and `description`, the others answer empty.
const IMAGE_ATTRIBUTES: &[&str] = &[
    "description",
    "kernel",
    "ramdisk",
    "launchPermission",
    "productCodes",
    "blockDeviceMapping",
    "sriovNetSupport",
    "bootMode",
    "tpmSupport",
    "uefiData",
    "lastLaunchedTime",
    "imdsSupport",
    "deregistrationProtection",
];

/// `DescribeImageAttribute`'s parameters.
pub struct DescribeImageAttributeInput {
    pub ami: String,
    pub attribute: String,
}

impl DescribeImageAttributeInput {
    pub fn parse(params: &Params) -> Result<Self, Ec2Error> {
        let attribute = params.required("Attribute")?.to_string();
        let ami = params.required("ImageId")?.to_string();
        if !IMAGE_ATTRIBUTES.contains(&attribute.as_str()) {
            return Err(Ec2Error::invalid(format!("Value ({}) for parameter attribute is invalid. Unknown attribute.", shown(&attribute))));
        }
        Ok(Self { ami, attribute })
    }
}

/// A launch permission item: a user, or the group `all`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Permission {
    User(String),
    All,
}

/// `ModifyImageAttribute`'s parameters (launch permissions only).
pub struct ModifyImageAttributeInput {
    pub ami: String,
    add: Vec<Permission>,
    remove: Vec<Permission>,
}

impl ModifyImageAttributeInput {
    pub fn parse(params: &Params) -> Result<Self, Ec2Error> {
        let ami = params.required("ImageId")?.to_string();
        let mut add = Vec::new();
        let mut remove = Vec::new();
        // The structured form: LaunchPermission.Add.N.UserId / .Group.
        for (list, op) in [(&mut add, "Add"), (&mut remove, "Remove")] {
            for n in 1..=1000 {
                let user = params.get(&format!("LaunchPermission.{op}.{n}.UserId"));
                let group = params.get(&format!("LaunchPermission.{op}.{n}.Group"));
                if user.is_none() && group.is_none() {
                    break;
                }
                if let Some(u) = user {
                    list.push(Permission::User(u.to_string()));
                }
                if let Some(g) = group {
                    list.push(group_permission(g)?);
                }
            }
        }
        // The flat form: Attribute=launchPermission, OperationType, UserId.N, UserGroup.N.
        let attribute = params.get("Attribute");
        let users = params.list("UserId")?;
        let groups = params.list("UserGroup")?;
        let operation = params.get("OperationType");
        if attribute.is_some() || operation.is_some() || !users.is_empty() || !groups.is_empty() {
            match attribute {
                Some("launchPermission") | None => {}
                Some(other) => {
                    return Err(Ec2Error::client(
                        "UnsupportedOperation",
                        format!("The attribute {} cannot be modified by this broker: only launchPermission", shown(other)),
                    ))
                }
            }
            let list = match operation {
                Some("add") => &mut add,
                Some("remove") => &mut remove,
                Some(other) => {
                    return Err(Ec2Error::invalid(format!(
                        "Value ({}) for parameter operationType is invalid: add or remove",
                        shown(other)
                    )))
                }
                None => return Err(Ec2Error::client("MissingParameter", "The request must contain the parameter operationType")),
            };
            list.extend(users.into_iter().map(Permission::User));
            for g in &groups {
                list.push(group_permission(g)?);
            }
        }
        if add.is_empty() && remove.is_empty() {
            return Err(Ec2Error::client("MissingParameter", "The request must contain the parameter launchPermission"));
        }
        Ok(Self { ami, add, remove })
    }
}

fn group_permission(g: &str) -> Result<Permission, Ec2Error> {
    if g == "all" {
        Ok(Permission::All)
    } else {
        Err(Ec2Error::client("InvalidAMIAttributeItemValue", format!("Invalid attribute item value \"{}\" for group item type.", shown(g))))
    }
}

fn time(t: chrono::DateTime<chrono::Utc>) -> String {
    rfc3339_string(&t, Fraction::Millis)
}

/// The fields of a snapshot shared by CreateSnapshot and DescribeSnapshots.
fn snapshot_fields(x: &mut Xml, s: &Snapshot) {
    x.leaf("snapshotId", &s.snapshot_id)
        .leaf("volumeId", &s.volume_id)
        .leaf("status", &s.state)
        .leaf("startTime", &time(s.created_at))
        .leaf("progress", if s.progress.is_empty() && s.state == "completed" { "100%" } else { &s.progress })
        .leaf("ownerId", &s.project)
        .leaf("volumeSize", &s.size_gib.to_string())
        .leaf("description", &s.description)
        .leaf("encrypted", "false");
    x.open("tagSet");
    for (k, v) in &s.tags {
        x.open("item").leaf("key", k).leaf("value", v).close("item");
    }
    x.close("tagSet");
}

pub async fn create_snapshot(ctx: &Ctx<'_>, input: CreateSnapshotInput) -> Result<String, Ec2Error> {
    let CreateSnapshotInput { volume, description, tags } = input;
    let instance = ctx.instance()?;
    let named = |e| match e {
        ServiceError::Invalid { message, .. } => Ec2Error::invalid(format!("parameter Description: {message}")),
        other => other.into(),
    };
    if ctx.dry_run {
        ctx.broker.provisioning.check_create_snapshot(&ctx.caller.actor, &instance, &volume, &description).await.map_err(named)?;
        return Err(Ec2Error::dry_run());
    }
    let s = ctx.broker.provisioning.create_snapshot(&ctx.caller.actor, &instance, &volume, &description, &tags).await.map_err(named)?;
    let (mut x, root) = ctx.doc("CreateSnapshot");
    snapshot_fields(&mut x, &s);
    Ok(x.finish(&root))
}

pub async fn delete_snapshot(ctx: &Ctx<'_>, input: DeleteSnapshotInput) -> Result<String, Ec2Error> {
    let instance = ctx.instance()?;
    let id = input.snapshot.as_str();
    if ctx.dry_run {
        ctx.broker.provisioning.actable_object(&ctx.caller.actor, &instance, cloudbroker_core::ObjectKind::Snapshot, id).await?;
        return Err(Ec2Error::dry_run());
    }
    ctx.broker.provisioning.delete_snapshot(&ctx.caller.actor, &instance, id).await?;
    let (mut x, root) = ctx.doc("DeleteSnapshot");
    x.leaf("return", "true");
    Ok(x.finish(&root))
}

fn keep(s: &Snapshot, filters: &[Filter]) -> bool {
    let size = s.size_gib.to_string();
    let start = time(s.created_at);
    filters.iter().all(|f| {
        if let Some(m) = f.tags(s.tags.iter().map(|(k, v)| (k.as_str(), v.as_str()))) {
            return m;
        }
        let any = |v: &str| f.values.any(v);
        match f.name.as_str() {
            "snapshot-id" => any(&s.snapshot_id),
            "volume-id" => any(&s.volume_id),
            "status" => any(&s.state),
            "owner-id" => any(&s.project),
            "description" => any(&s.description),
            "progress" => any(&s.progress),
            "start-time" => any(&start),
            "volume-size" => any(&size),
            "encrypted" => any("false"),
            // owner-alias: the broker's snapshots have none.
            _ => false,
        }
    })
}

pub async fn describe_snapshots(ctx: &Ctx<'_>, input: DescribeSnapshotsInput) -> Result<String, Ec2Error> {
    let DescribeSnapshotsInput { filters, ids, owners, page } = input;
    let instance = ctx.instance()?;
    let mine = ctx.broker.provisioning.snapshots(&ctx.caller.actor, &instance).await?;
    if let Some(missing) = ids.iter().find(|id| !mine.iter().any(|s| &s.snapshot_id == *id)) {
        return Err(crate::error::object_not_found(cloudbroker_core::ObjectKind::Snapshot, missing));
    }
    let project = ctx.caller.actor.project.as_str().to_string();
    let mine: Vec<Snapshot> = mine
        .into_iter()
        .filter(|s| ids.is_empty() || ids.contains(&s.snapshot_id))
        .filter(|s| owners.is_empty() || owners.iter().any(|o| o == "self" && s.project == project || *o == s.project))
        .collect();
    let cost = crate::filter::cost(&filters).saturating_mul(1 + cloudbroker_core::domain::MAX_TAGS);
    let mine = crate::filter::retain(mine, cost, move |s| keep(s, &filters)).await?;
    let (mine, next) = page.cut(mine);
    let (mut x, root) = ctx.doc("DescribeSnapshots");
    x.open("snapshotSet");
    for s in &mine {
        x.open("item");
        snapshot_fields(&mut x, s);
        x.close("item");
    }
    x.close("snapshotSet");
    x.opt("nextToken", next.as_deref());
    Ok(x.finish(&root))
}

pub async fn create_image(ctx: &Ctx<'_>, input: CreateImageInput) -> Result<String, Ec2Error> {
    let CreateImageInput { vm, name, description, no_reboot } = input;
    let refused = |e| match e {
        ServiceError::Conflict(m) if m.contains("already exists") => {
            Ec2Error::client("InvalidAMIName.Duplicate", format!("AMI name {name} is already in use"))
        }
        ServiceError::Conflict(m) => Ec2Error::client("IncorrectInstanceState", m),
        ServiceError::Invalid { message, .. } => Ec2Error::invalid(message),
        other => other.into(),
    };
    if ctx.dry_run {
        ctx.broker.provisioning.check_create_image(&ctx.caller.actor, &vm, &name, &description).await.map_err(refused)?;
        return Err(Ec2Error::dry_run());
    }
    ctx.broker.provisioning.create_image(&ctx.caller.actor, &vm, &name, &description, no_reboot).await.map_err(refused)?;
    let (mut x, root) = ctx.doc("CreateImage");
    x.leaf("imageId", &image_id(name.as_str()));
    Ok(x.finish(&root))
}

fn ami_not_found(ami: &str) -> Ec2Error {
    Ec2Error::client("InvalidAMIID.NotFound", format!("The image id '[{}]' does not exist", shown(ami)))
}

/// The image the caller sees under `ami` (public, its project's, or shared with it).
async fn seen_image(ctx: &Ctx<'_>, ami: &str) -> Result<ImageView, Ec2Error> {
    ctx.broker
        .images
        .list()
        .await?
        .into_iter()
        .find(|i| i.launchable_by(&ctx.caller.actor) && image_id(i.name.as_str()) == ami)
        .ok_or_else(|| ami_not_found(ami))
}

/// Whether the caller may read and change `img`'s launch permissions: a
/// private image of its project.
fn own(ctx: &Ctx<'_>, img: &ImageView, ami: &str) -> Result<(), Ec2Error> {
    if img.project.as_ref() == Some(&ctx.caller.actor.project) {
        Ok(())
    } else {
        Err(Ec2Error::new(
            403,
            "UnauthorizedOperation",
            format!("You are not authorized to change or read the attributes of {}: it is not your project's image", shown(ami)),
        ))
    }
}

pub async fn describe_image_attribute(ctx: &Ctx<'_>, input: DescribeImageAttributeInput) -> Result<String, Ec2Error> {
    let DescribeImageAttributeInput { ami, attribute } = input;
    let img = seen_image(ctx, &ami).await?;
    let (mut x, root) = ctx.doc("DescribeImageAttribute");
    x.leaf("imageId", &ami);
    match attribute.as_str() {
        "launchPermission" => {
            if img.project.is_some() {
                own(ctx, &img, &ami)?;
            }
            x.open("launchPermission");
            if img.project.is_none() {
                x.open("item").leaf("group", "all").close("item");
            }
            for u in &img.shared_with {
                x.open("item").leaf("userId", u.as_str()).close("item");
            }
            x.close("launchPermission");
        }
        "description" => {
            x.open("description").leaf("value", &img.description).close("description");
        }
        other => {
            x.open(other).close(other);
        }
    }
    Ok(x.finish(&root))
}

pub async fn modify_image_attribute(ctx: &Ctx<'_>, input: ModifyImageAttributeInput) -> Result<String, Ec2Error> {
    let ModifyImageAttributeInput { ami, add, remove } = input;
    let img = seen_image(ctx, &ami).await?;
    if img.project.is_none() {
        return Err(Ec2Error::new(
            403,
            "UnauthorizedOperation",
            format!("{} is one of the broker's public images: its launch permissions are the operator's", shown(&ami)),
        ));
    }
    own(ctx, &img, &ami)?;
    if add.iter().chain(&remove).any(|p| *p == Permission::All) {
        return Err(if ctx.caller.actor.is_admin {
            Ec2Error::client("UnsupportedOperation", "Group all is not supported by this broker: make an image public on its images page")
        } else {
            Ec2Error::new(403, "UnauthorizedOperation", "Only an administrator may make an image public (launch permission group all)")
        });
    }
    let users = |ps: &[Permission]| -> Result<Vec<UserName>, Ec2Error> {
        ps.iter()
            .filter_map(|p| match p {
                Permission::User(u) => Some(u),
                Permission::All => None,
            })
            .map(|u| {
                UserName::parse(u).map_err(|_| {
                    Ec2Error::client(
                        "InvalidAMIAttributeItemValue",
                        format!("Invalid attribute item value \"{}\" for userId item type.", shown(u)),
                    )
                })
            })
            .collect()
    };
    let (add, remove) = (users(&add)?, users(&remove)?);
    if ctx.dry_run {
        ctx.caller.actor.require_act()?;
        return Err(Ec2Error::dry_run());
    }
    match ctx.broker.provisioning.share_image(&ctx.caller.actor, &img.name, &add, &remove).await {
        Ok(_) => {}
        Err(ServiceError::NotFound(cloudbroker_core::Resource::User(u))) => {
            return Err(Ec2Error::client(
                "InvalidAMIAttributeItemValue",
                format!("Invalid attribute item value \"{}\" for userId item type.", shown(u.as_str())),
            ))
        }
        Err(e) => return Err(e.into()),
    }
    let (mut x, root) = ctx.doc("ModifyImageAttribute");
    x.leaf("return", "true");
    Ok(x.finish(&root))
}
