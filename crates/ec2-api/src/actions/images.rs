//! Images: `DescribeImages` (the native images that resolve to a cloud image
//! on the caller's region, under their stable `ami-` ids, see
//! [`crate::ids`]), `RegisterImage` and `DeregisterImage`.
//!
//! Owners: the broker's own images are public and owned by [`BROKER_OWNER`];
//! an image a user registers belongs to the project their access key acts
//! in (`imageOwnerId` is the project's name: for a personal project, the
//! user's name), private to its members, and `Owner.N=self` selects it. An
//! admin's registration makes a public image. Another project's private
//! image does not exist for the caller (`InvalidAMIID.NotFound`), admins
//! included: the EC2 front acts in the access key's project. A viewer's
//! `RegisterImage` or `DeregisterImage` is `UnauthorizedOperation`.

use super::Ctx;
use crate::error::Ec2Error;
use crate::ids::{image_id, shown};
use crate::request::Params;
use cloudbroker_core::domain::{ImageName, InstanceName};
use cloudbroker_core::images::ImageView;
use cloudbroker_core::ServiceError;

/// The owner id of the broker's own (public) images in `DescribeImages`
/// (`Owner.N=cloudbroker`; `amazon` is accepted as an alias).
pub const BROKER_OWNER: &str = "cloudbroker";

fn not_found(id: &str) -> Ec2Error {
    Ec2Error::client("InvalidAMIID.NotFound", format!("The image id '[{}]' does not exist", shown(id)))
}

/// The image the caller sees under `ami`: public or its project's.
async fn visible_image(ctx: &Ctx<'_>, ami: &str) -> Result<ImageView, Ec2Error> {
    let project = &ctx.caller.actor.project;
    ctx.broker
        .images
        .list()
        .await?
        .into_iter()
        .find(|i| (i.public_or_in(project) || i.launchable_by(&ctx.caller.actor)) && image_id(i.name.as_str()) == ami)
        .ok_or_else(|| not_found(ami))
}

/// The `imageOwnerId` of an image: its project's name, or [`BROKER_OWNER`].
fn owner_id(img: &ImageView) -> &str {
    img.project.as_ref().map_or(BROKER_OWNER, |p| p.as_str())
}

fn owner_matches(owners: &[String], img: &ImageView, ctx: &Ctx<'_>) -> bool {
    let owner = owner_id(img);
    owners.is_empty()
        || owners.iter().any(|o| match o.as_str() {
            "all" => true,
            "self" => img.project.as_ref() == Some(&ctx.caller.actor.project),
            "amazon" | BROKER_OWNER => img.project.is_none(),
            other => other == owner,
        })
}

/// One image of a `DescribeImages` answer.
struct ImageRow {
    ami: String,
    name: String,
    description: String,
    os: String,
    owner: String,
    public: &'static str,
    cloud_image_id: String,
}

/// The filters DescribeImages takes (besides `tag:<key>`, `tag-key` and
/// `tag-value`: native images carry no tags, so those match none); any
/// other name is refused, as EC2 does.
pub const IMAGE_FILTERS: &[&str] = &[
    "name",
    "image-id",
    "state",
    "owner-id",
    "owner-alias",
    "is-public",
    "description",
    "architecture",
    "image-type",
    "platform-details",
    "root-device-type",
    "virtualization-type",
];

/// `DescribeImages`' parameters: filters of known names.
pub struct DescribeImagesInput {
    pub ids: Vec<String>,
    pub owners: Vec<String>,
    pub filters: Vec<crate::filter::Filter>,
    /// `MaxResults` (5..1000, not with ids) and `NextToken`.
    pub page: crate::filter::Page,
}

impl DescribeImagesInput {
    pub fn parse(params: &Params) -> Result<Self, Ec2Error> {
        let ids = params.list("ImageId")?;
        let owners = params.list("Owner")?;
        let filters = crate::filter::parse(params)?;
        crate::filter::check_names(&filters, IMAGE_FILTERS, true)?;
        let page = crate::filter::Page::parse(params, 5..=1000)?;
        if page.max.is_some() && !ids.is_empty() {
            return Err(Ec2Error::client(
                "InvalidParameterCombination",
                "The parameter imagesSet cannot be used with the parameter maxResults",
            ));
        }
        Ok(Self { ids, owners, filters, page })
    }
}

/// `RegisterImage`'s parameters.
pub struct RegisterImageInput {
    pub location: String,
    pub name: ImageName,
    pub description: String,
}

impl RegisterImageInput {
    pub fn parse(params: &Params) -> Result<Self, Ec2Error> {
        let location = params.required("ImageLocation")?.to_string();
        let name = params.required("Name")?;
        let name = ImageName::parse(name)
            .map_err(|e| Ec2Error::client("InvalidAMIName.Malformed", format!("AMI name '{}' is invalid: {}", shown(name), e.message)))?;
        let description = params.get("Description").unwrap_or("").to_string();
        Ok(Self { location, name, description })
    }
}

/// `DeregisterImage`'s parameter: the `ami-` id as sent.
pub struct DeregisterImageInput {
    pub ami: String,
}

impl DeregisterImageInput {
    pub fn parse(params: &Params) -> Result<Self, Ec2Error> {
        Ok(Self { ami: params.required("ImageId")?.to_string() })
    }
}

pub async fn describe_images(ctx: &Ctx<'_>, instance: InstanceName, input: DescribeImagesInput) -> Result<String, Ec2Error> {
    let DescribeImagesInput { ids, owners, filters, page } = input;
    let mut rows = Vec::new();
    // What the caller may launch on this region: what RunInstances accepts.
    for launchable in ctx.broker.images.launchable_by(&ctx.caller.actor).await? {
        let img = &launchable.image;
        if !owner_matches(&owners, img, ctx) {
            continue;
        }
        let Some(resolved) = launchable.on.get(&instance) else { continue };
        let ami = image_id(img.name.as_str());
        if !ids.is_empty() && !ids.contains(&ami) {
            continue;
        }
        rows.push(ImageRow {
            ami,
            name: img.name.to_string(),
            description: img.description.clone(),
            os: img.os.clone(),
            owner: owner_id(img).to_string(),
            public: if img.project.is_none() { "true" } else { "false" },
            cloud_image_id: resolved.image_id.clone(),
        });
    }
    let cost = crate::filter::cost(&filters);
    let rows = crate::filter::retain(rows, cost, move |r: &ImageRow| {
        filters.iter().all(|f| match f.name.as_str() {
            "name" => f.values.any(&r.name),
            "image-id" => f.values.any(&r.ami),
            "owner-id" => f.values.any(&r.owner),
            "is-public" => f.values.any_equal(r.public),
            "state" => f.values.any_equal("available"),
            "owner-alias" => r.public == "true" && f.values.any(BROKER_OWNER),
            "description" => f.values.any(&r.description),
            "architecture" => f.values.any("x86_64"),
            "image-type" => f.values.any("machine"),
            "platform-details" => f.values.any(if r.os.is_empty() { "Linux/UNIX" } else { &r.os }),
            "root-device-type" => f.values.any("ebs"),
            "virtualization-type" => f.values.any("hvm"),
            _ => false,
        })
    })
    .await?;
    if let Some(missing) = ids.iter().find(|id| !rows.iter().any(|r| &r.ami == *id)) {
        return Err(not_found(missing));
    }
    let (rows, next) = page.cut(rows);
    let (mut x, root) = ctx.doc("DescribeImages");
    x.open("imagesSet");
    for r in rows {
        x.open("item")
            .leaf("imageId", &r.ami)
            .leaf("imageLocation", &format!("{}/{}", r.owner, r.name))
            .leaf("imageState", "available")
            .leaf("imageOwnerId", &r.owner)
            .leaf("isPublic", r.public)
            .leaf("architecture", "x86_64")
            .leaf("imageType", "machine")
            .leaf("name", &r.name)
            .leaf("description", &r.description)
            .leaf("platformDetails", if r.os.is_empty() { "Linux/UNIX" } else { &r.os })
            .leaf("rootDeviceType", "ebs")
            .leaf("virtualizationType", "hvm")
            .opt("cloudImageId", Some(r.cloud_image_id.as_str()))
            .close("item");
    }
    x.close("imagesSet");
    x.opt("nextToken", next.as_deref());
    Ok(x.finish(&root))
}

/// `RegisterImage`: `ImageLocation` is an image id of the cloud behind the
/// region (it must exist there, seen with the caller's credentials); `Name`
/// becomes the native image's name (lowercase letters, digits, `-`, `_`,
/// `.`), `Description` its description. Answers the new `ami-` id.
pub async fn register_image(ctx: &Ctx<'_>, instance: InstanceName, input: RegisterImageInput) -> Result<String, Ec2Error> {
    let RegisterImageInput { location, name, description } = input;
    let (location, description) = (location.as_str(), description.as_str());
    let registered = if ctx.dry_run {
        ctx.broker.provisioning.check_register_image(&ctx.caller.actor, &instance, location, &name, description).await
    } else {
        ctx.broker.provisioning.register_image(&ctx.caller.actor, &instance, location, &name, description).await.map(|_| ())
    };
    match registered {
        Ok(()) if ctx.dry_run => return Err(Ec2Error::dry_run()),
        Ok(()) => {}
        Err(ServiceError::Conflict(_)) => {
            return Err(Ec2Error::client("InvalidAMIName.Duplicate", format!("AMI name {name} is already in use")));
        }
        Err(ServiceError::Invalid { message, .. }) => return Err(Ec2Error::invalid(message)),
        Err(e) => return Err(e.into()),
    }
    let (mut x, root) = ctx.doc("RegisterImage");
    x.leaf("imageId", &image_id(name.as_str()));
    Ok(x.finish(&root))
}

/// `DeregisterImage`: by a member of the image's project, or an admin (the
/// broker's public images by an admin only). Refused with `DependencyViolation` while other
/// images name it as their parent.
pub async fn deregister_image(ctx: &Ctx<'_>, input: DeregisterImageInput) -> Result<String, Ec2Error> {
    let ami = input.ami.as_str();
    let img = visible_image(ctx, ami).await?;
    let deregistered = if ctx.dry_run {
        ctx.broker.images.check_deregister(&ctx.caller.actor, &img.name).await
    } else {
        ctx.broker.provisioning.deregister_image(&ctx.caller.actor, &img.name).await
    };
    match deregistered {
        Ok(()) if ctx.dry_run => return Err(Ec2Error::dry_run()),
        Ok(()) => {}
        Err(ServiceError::Conflict(m)) => return Err(Ec2Error::client("DependencyViolation", m)),
        Err(ServiceError::NotFound(_)) => return Err(not_found(ami)),
        Err(ServiceError::Forbidden(m)) if img.project.is_some() => return Err(Ec2Error::new(403, "UnauthorizedOperation", m)),
        Err(ServiceError::Forbidden(_)) => {
            return Err(Ec2Error::new(
                403,
                "UnauthorizedOperation",
                format!("You are not authorized to deregister {}: it is one of the broker's public images", shown(ami)),
            ))
        }
        Err(e) => return Err(e.into()),
    }
    let (mut x, root) = ctx.doc("DeregisterImage");
    x.leaf("return", "true");
    Ok(x.finish(&root))
}
