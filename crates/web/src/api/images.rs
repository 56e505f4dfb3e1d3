//! `/images`: native images (read by everyone, written by admins).

use super::actor::ApiActor;
use super::error::{parse, ApiError, ApiResult};
use super::{no_content, ok};
use actix_web::{web, HttpResponse};
use cloudbroker_core::domain::{ImageName, InstanceName};
use cloudbroker_core::images::{ImageMapping, ImageSpec};
use cloudbroker_core::{Broker, Resource, ServiceError};
use serde::Deserialize;
use std::collections::BTreeMap;

pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/images", web::get().to(list_images))
        .route("/images", web::post().to(create_image))
        .route("/images/{name}", web::get().to(get_image))
        .route("/images/{name}", web::put().to(put_image))
        .route("/images/{name}", web::delete().to(delete_image));
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ImageBody {
    name: Option<String>,
    #[serde(default)]
    description: String,
    #[serde(default)]
    os: String,
    parent: Option<String>,
    #[serde(default)]
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
            let i = InstanceName::parse(&inst)
                .map_err(|_| ApiError::field("mappings", format!("image '{name}': no connector instance '{inst}' is declared")))?;
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

async fn list_images(_a: ApiActor, broker: web::Data<Broker>) -> ApiResult {
    ok(broker.images.list().await?)
}

async fn get_image(_a: ApiActor, broker: web::Data<Broker>, name: web::Path<String>) -> ApiResult {
    ok(broker.images.get(&image_in_path(&name)?).await?)
}

async fn create_image(a: ApiActor, broker: web::Data<Broker>, body: web::Json<ImageBody>) -> ApiResult {
    a.0.require_admin()?;
    let body = body.into_inner();
    let name = body.name.clone().ok_or_else(|| ApiError::field("name", "name is required"))?;
    let name = parse(ImageName::parse(&name))?;
    let v = broker.images.put(&a.0, body.into_spec(name)?, true).await?;
    Ok(HttpResponse::Created().json(v))
}

async fn put_image(a: ApiActor, broker: web::Data<Broker>, name: web::Path<String>, body: web::Json<ImageBody>) -> ApiResult {
    a.0.require_admin()?;
    let body = body.into_inner();
    if body.name.as_deref().is_some_and(|n| n != name.as_str()) {
        return Err(ApiError::field("name", "name in the body differs from the path"));
    }
    let name = parse(ImageName::parse(&name))?;
    ok(broker.images.put(&a.0, body.into_spec(name)?, false).await?)
}

async fn delete_image(a: ApiActor, broker: web::Data<Broker>, name: web::Path<String>) -> ApiResult {
    a.0.require_admin()?;
    broker.images.delete(&a.0, &image_in_path(&name)?).await?;
    no_content()
}
