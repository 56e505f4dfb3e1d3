//! `/images`: native images (read by everyone, written by admins).

use super::actor::ApiActor;
use super::body::Body;
use super::doc::{ErrorBody, PageParams};
use super::error::{parse, ApiError, ApiResult};
use super::{no_content, ok};
use actix_web::{web, HttpResponse};
use cloudbroker_core::domain::{ImageName, InstanceName};
use cloudbroker_core::images::{ImageMapping, ImageSpec, ImageView};
use cloudbroker_core::{Broker, Resource, ServiceError};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::ToSchema;

/// One page of images, by name.
#[derive(Serialize, ToSchema)]
pub(super) struct ImagePage {
    images: Vec<ImageView>,
    /// The cursor of the next page; absent on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(required = false, nullable = false)]
    next_cursor: Option<String>,
}

/// A native image (`POST` needs `name`; `PUT` takes it from the path).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct ImageBody {
    /// Lowercase letters and digits, words joined by `-`, `_` or `.` (e.g. `ubuntu-22.04`).
    #[schema(pattern = r"^[a-z0-9]([a-z0-9._-]{0,126}[a-z0-9])?$")]
    name: Option<String>,
    #[serde(default)]
    #[schema(max_length = 1024)]
    description: String,
    #[serde(default)]
    #[schema(max_length = 64)]
    os: String,
    /// An existing image to inherit cloud image ids from; empty or null for none.
    #[schema(pattern = r"^([a-z0-9]([a-z0-9._-]{0,126}[a-z0-9])?)?$")]
    parent: Option<String>,
    /// connector instance -> its cloud image id (and defaults).
    #[serde(default)]
    #[schema(value_type = super::doc::Mappings)]
    mappings: BTreeMap<String, ImageMapping>,
}

/// The body of `PUT /images/{name}`: the name is the path's (a `name` equal
/// to it is tolerated).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub(super) struct PutImage {
    #[serde(default)]
    #[schema(max_length = 1024)]
    description: String,
    #[serde(default)]
    #[schema(max_length = 64)]
    os: String,
    /// An existing image to inherit cloud image ids from; empty or null for none.
    #[schema(pattern = r"^([a-z0-9]([a-z0-9._-]{0,126}[a-z0-9])?)?$")]
    parent: Option<String>,
    /// connector instance -> its cloud image id (and defaults).
    #[serde(default)]
    #[schema(value_type = super::doc::Mappings)]
    mappings: BTreeMap<String, ImageMapping>,
}

/// The body of `POST /images`: `name` is required.
#[derive(ToSchema)]
#[allow(dead_code)]
#[serde(deny_unknown_fields)]
pub(super) struct NewImage {
    /// Lowercase letters and digits, words joined by `-`, `_` or `.` (e.g. `ubuntu-22.04`).
    #[schema(pattern = r"^[a-z0-9]([a-z0-9._-]{0,126}[a-z0-9])?$")]
    name: String,
    #[serde(default)]
    #[schema(max_length = 1024)]
    description: String,
    #[serde(default)]
    #[schema(max_length = 64)]
    os: String,
    /// An existing image to inherit cloud image ids from; empty or null for none.
    #[schema(pattern = r"^([a-z0-9]([a-z0-9._-]{0,126}[a-z0-9])?)?$")]
    parent: Option<String>,
    /// connector instance -> its cloud image id (and defaults).
    #[serde(default)]
    #[schema(value_type = super::doc::Mappings)]
    mappings: BTreeMap<String, ImageMapping>,
}

impl ImageBody {
    fn into_spec(self, name: ImageName) -> Result<ImageSpec, ApiError> {
        let parent = match self.parent.filter(|p| !p.is_empty()) {
            Some(p) => Some(ImageName::parse(&p).map_err(|e| ApiError::field("parent", e.message))?),
            None => None,
        };
        let mut mappings = BTreeMap::new();
        for (inst, m) in self.mappings {
            // A name of no instance: the request conflicts with the configuration.
            let i = InstanceName::parse(&inst).map_err(|_| {
                ApiError(ServiceError::Conflict(format!(
                    "image '{name}': no connector instance '{}' is declared",
                    inst.chars().take(64).collect::<String>()
                )))
            })?;
            mappings.insert(i, m);
        }
        Ok(ImageSpec { name, description: self.description, os: self.os, parent, mappings })
    }
}

/// An image named in a path: an invalid name cannot exist.
fn image_in_path(s: &str) -> Result<ImageName, ApiError> {
    ImageName::parse(s)
        .map_err(|_| ApiError(ServiceError::NotFound(Resource::Record(format!("image '{}'", s.chars().take(128).collect::<String>())))))
}

/// Images (stored and from files), by name, paginated: the broker's public
/// images and those registered in the caller's project (`project`; `owner`
/// registered them); admins see all.
#[utoipa::path(get, path = "/api/v1/images", tag = "images", params(PageParams), responses((status = 200, body = ImagePage)))]
pub(super) async fn list_images(a: ApiActor, broker: web::Data<Broker>, q: web::Query<PageParams>) -> ApiResult {
    let page = super::body::page(q.limit.as_deref(), q.cursor.as_deref())?;
    let p = broker.images.page(&a.0, &page).await?;
    ok(ImagePage { images: p.items, next_cursor: p.next_cursor })
}

/// One image (another project's private image does not exist for the caller).
#[utoipa::path(get, path = "/api/v1/images/{name}", tag = "images", params(("name" = String, Path, description = "image name", pattern = r"^[a-z0-9]([a-z0-9._-]{0,126}[a-z0-9])?$")), responses((status = 200, body = ImageView)))]
pub(super) async fn get_image(a: ApiActor, broker: web::Data<Broker>, name: web::Path<String>) -> ApiResult {
    ok(broker.images.get_for(&a.0, &image_in_path(&name)?).await?)
}

/// Creates an image (admin).
#[utoipa::path(post, path = "/api/v1/images", tag = "images", request_body = NewImage,
    responses((status = 201, body = ImageView), (status = 409, description = "`conflict`: the name is taken, or the parent or an instance does not exist", body = ErrorBody)))]
pub(super) async fn create_image(a: ApiActor, broker: web::Data<Broker>, body: Body<ImageBody>) -> ApiResult {
    a.0.require_admin()?;
    let body = body.into_inner();
    let name = body.name.clone().ok_or_else(|| ApiError::field("name", "name is required"))?;
    let name = parse(ImageName::parse(&name))?;
    let v = broker.images.put(&a.0, body.into_spec(name)?, true).await?;
    Ok(HttpResponse::Created().json(v))
}

/// Creates or replaces an image (admin).
#[utoipa::path(put, path = "/api/v1/images/{name}", tag = "images", params(("name" = String, Path, description = "image name", pattern = r"^[a-z0-9]([a-z0-9._-]{0,126}[a-z0-9])?$")), request_body = PutImage,
    responses((status = 200, body = ImageView), (status = 409, description = "`conflict`: the parent or an instance does not exist, or parents would form a cycle", body = ErrorBody)))]
pub(super) async fn put_image(a: ApiActor, broker: web::Data<Broker>, name: web::Path<String>, body: Body<ImageBody>) -> ApiResult {
    a.0.require_admin()?;
    let body = body.into_inner();
    if body.name.as_deref().is_some_and(|n| n != name.as_str()) {
        return Err(ApiError::field("name", "name in the body differs from the path"));
    }
    let name = parse(ImageName::parse(&name))?;
    ok(broker.images.put(&a.0, body.into_spec(name)?, false).await?)
}

/// Deletes an image (admin).
#[utoipa::path(delete, path = "/api/v1/images/{name}", tag = "images", params(("name" = String, Path, description = "image name", pattern = r"^[a-z0-9]([a-z0-9._-]{0,126}[a-z0-9])?$")),
    responses((status = 204, description = "Deleted"), (status = 409, description = "`conflict`: other images name it as parent", body = ErrorBody)))]
pub(super) async fn delete_image(a: ApiActor, broker: web::Data<Broker>, name: web::Path<String>) -> ApiResult {
    a.0.require_admin()?;
    broker.images.delete(&a.0, &image_in_path(&name)?).await?;
    no_content()
}
