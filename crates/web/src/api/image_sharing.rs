//! Images made from VMs and their launch permissions:
//! `POST /vms/{id}/image` makes a private image of the VM's project (as EC2
//! `CreateImage`), `GET`/`POST /images/{name}/launch-permissions` read and
//! change the users a private image is shared with (its project's members
//! and admins; others get 403, or 404 when they do not see the image).

use super::actor::ApiActor;
use super::body::Body;
use super::doc::ErrorBody;
use super::error::{parse, ApiError, ApiResult};
use super::ok;
use actix_web::{web, HttpResponse};
use cloudbroker_core::domain::{ImageName, UserName, VmId};
use cloudbroker_core::images::ImageView;
use cloudbroker_core::{Broker, Resource, ServiceError};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A new image made from a VM.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct NewVmImage {
    /// Lowercase letters and digits, words joined by `-`, `_` or `.`; 3 to
    /// 128 characters (it names the cloud's image too).
    #[schema(pattern = r"^[a-z0-9][a-z0-9._-]{1,126}[a-z0-9]$")]
    name: String,
    #[serde(default)]
    #[schema(max_length = 1024)]
    description: String,
    /// Take the image without rebooting the VM.
    #[serde(default)]
    no_reboot: bool,
}

/// Users to add to and remove from an image's launch permissions.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct LaunchPermissionChange {
    #[serde(default)]
    #[schema(value_type = Vec<String>)]
    add: Vec<String>,
    #[serde(default)]
    #[schema(value_type = Vec<String>)]
    remove: Vec<String>,
}

/// The users a private image is shared with.
#[derive(Serialize, ToSchema)]
pub(super) struct LaunchPermissions {
    #[schema(value_type = Vec<String>)]
    users: Vec<UserName>,
}

fn not_found(what: String) -> ApiError {
    ApiError(ServiceError::NotFound(Resource::Record(what)))
}

fn image_in_path(s: &str) -> Result<ImageName, ApiError> {
    ImageName::parse(s).map_err(|_| not_found(format!("image '{}'", s.chars().take(128).collect::<String>())))
}

fn users(names: &[String]) -> Result<Vec<UserName>, ApiError> {
    names.iter().map(|n| UserName::parse(n).map_err(|_| not_found(format!("user '{}'", n.chars().take(64).collect::<String>())))).collect()
}

/// Makes a private image of a VM of the caller's project.
#[utoipa::path(post, path = "/api/v1/vms/{id}/image", tag = "vms", params(("id" = String, Path, description = "VM id (vm-...)")),
    request_body = NewVmImage,
    responses((status = 201, body = ImageView), (status = 400, description = "`invalid`: the name or description is not valid", body = ErrorBody), (status = 409, description = "`conflict`: the name is taken or the VM is not running or stopped", body = ErrorBody),
        (status = 502, description = "the cloud refused or could not be asked", body = ErrorBody)))]
pub(super) async fn create_vm_image(a: ApiActor, broker: web::Data<Broker>, id: web::Path<String>, body: Body<NewVmImage>) -> ApiResult {
    let vm = VmId::parse(&id).map_err(|_| not_found(format!("VM '{}'", id.chars().take(64).collect::<String>())))?;
    let body = body.into_inner();
    let name = parse(ImageName::parse(&body.name))?;
    let img = broker.provisioning.create_image(&a.0, &vm, &name, &body.description, body.no_reboot).await?;
    Ok(HttpResponse::Created().json(img))
}

/// The users a private image is shared with (its project's members and admins).
#[utoipa::path(get, path = "/api/v1/images/{name}/launch-permissions", tag = "images",
    params(("name" = String, Path, description = "image name", pattern = r"^[a-z0-9]([a-z0-9._-]{0,126}[a-z0-9])?$")),
    responses((status = 200, body = LaunchPermissions)))]
pub(super) async fn get_launch_permissions(a: ApiActor, broker: web::Data<Broker>, name: web::Path<String>) -> ApiResult {
    let img = broker.images.get_for(&a.0, &image_in_path(&name)?).await?;
    if !a.0.is_admin && img.project.as_ref().is_some_and(|p| p != &a.0.project) {
        return Err(ApiError(ServiceError::Forbidden(format!("image '{}' is not your project's", img.name))));
    }
    ok(LaunchPermissions { users: img.shared_with })
}

/// Adds and removes users of a private image's launch permissions.
#[utoipa::path(post, path = "/api/v1/images/{name}/launch-permissions", tag = "images",
    params(("name" = String, Path, description = "image name", pattern = r"^[a-z0-9]([a-z0-9._-]{0,126}[a-z0-9])?$")),
    request_body = LaunchPermissionChange,
    responses((status = 200, body = ImageView), (status = 409, description = "`conflict`: a public image has no launch permissions", body = ErrorBody)))]
pub(super) async fn change_launch_permissions(
    a: ApiActor,
    broker: web::Data<Broker>,
    name: web::Path<String>,
    body: Body<LaunchPermissionChange>,
) -> ApiResult {
    let body = body.into_inner();
    let (add, remove) = (users(&body.add)?, users(&body.remove)?);
    ok(broker.provisioning.share_image(&a.0, &image_in_path(&name)?, &add, &remove).await?)
}
