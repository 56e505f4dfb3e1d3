//! Native images: one logical image (e.g. `ubuntu-22.04`) mapped to a cloud
//! image id per connector instance, with a parent hierarchy and default
//! sizes. Ids come from the API/UI and from `connectors.d/images/*.conf`
//! (files win, as for connector parameters).

use crate::error::{ServiceError, ServiceResult};
use crate::identity::Actor;
use crate::registry::{validate_image_name, Registry};
use cloudbroker_store::images::{ImageMapping, ImageRow};
use cloudbroker_store::Store;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;

/// An image as shown: stored fields plus ids from files.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct ImageView {
    pub name: String,
    pub description: String,
    pub os: String,
    pub parent: Option<String>,
    /// instance -> mapping (files override the API's).
    pub mappings: BTreeMap<String, ImageMapping>,
    /// instance -> `file:line` for mappings that come from files.
    pub file_mappings: BTreeMap<String, String>,
}

/// What a launch uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolvedImage {
    pub image_id: String,
    pub instance_type: Option<String>,
    pub security_group: Option<String>,
    /// The image in the hierarchy the id came from.
    pub from_image: String,
}

/// The image service.
pub struct Images {
    store: Store,
    registry: Arc<Registry>,
}

impl Images {
    /// A new service.
    pub fn new(store: Store, registry: Arc<Registry>) -> Self {
        Self { store, registry }
    }

    /// All images (stored and from files).
    pub async fn list(&self) -> ServiceResult<Vec<ImageView>> {
        let snap = self.registry.snapshot();
        let mut out: BTreeMap<String, ImageView> = BTreeMap::new();
        for r in self.store.list_images().await? {
            out.insert(
                r.name.clone(),
                ImageView {
                    name: r.name,
                    description: r.description,
                    os: r.os,
                    parent: r.parent,
                    mappings: r.mappings,
                    file_mappings: BTreeMap::new(),
                },
            );
        }
        for (image, maps) in &snap.file_images {
            let v = out.entry(image.clone()).or_insert_with(|| ImageView {
                name: image.clone(),
                description: String::new(),
                os: String::new(),
                parent: None,
                mappings: BTreeMap::new(),
                file_mappings: BTreeMap::new(),
            });
            for (inst, (id, loc)) in maps {
                let m = v.mappings.entry(inst.clone()).or_insert_with(|| ImageMapping {
                    image_id: id.clone(),
                    instance_type: None,
                    security_group: None,
                });
                m.image_id = id.clone();
                v.file_mappings.insert(inst.clone(), loc.to_string());
            }
        }
        Ok(out.into_values().collect())
    }

    /// One image.
    pub async fn get(&self, name: &str) -> ServiceResult<ImageView> {
        self.list().await?.into_iter().find(|i| i.name == name).ok_or_else(|| ServiceError::NotFound(format!("image '{name}'")))
    }

    /// Creates (`create_only`) or replaces an image (admin).
    pub async fn put(&self, actor: &Actor, img: ImageRow, create_only: bool) -> ServiceResult<ImageView> {
        actor.require_admin()?;
        validate_image_name(&img.name).map_err(ServiceError::Invalid)?;
        let snap = self.registry.snapshot();
        for (inst, m) in &img.mappings {
            if snap.instance(inst).is_none() {
                return Err(ServiceError::Invalid(format!("image '{}': no connector instance '{inst}' is declared", img.name)));
            }
            if m.image_id.trim().is_empty() {
                return Err(ServiceError::Invalid(format!("image '{}': empty image id for '{inst}'", img.name)));
            }
        }
        let all = self.list().await?;
        if let Some(p) = &img.parent {
            if !all.iter().any(|i| &i.name == p) {
                return Err(ServiceError::Invalid(format!("image '{}': parent image '{p}' does not exist", img.name)));
            }
            // Walk up from the parent, with this image's new parent in place.
            let parents: BTreeMap<&str, Option<&str>> = all.iter().map(|i| (i.name.as_str(), i.parent.as_deref())).collect();
            let mut chain = vec![img.name.clone()];
            let mut cur = Some(p.as_str());
            while let Some(c) = cur {
                chain.push(c.to_string());
                if c == img.name {
                    return Err(ServiceError::Invalid(format!("image parents would form a cycle: {}", chain.join(" -> "))));
                }
                if chain.len() > 64 {
                    return Err(ServiceError::Invalid("image hierarchy is deeper than 64".into()));
                }
                cur = parents.get(c).copied().flatten();
            }
        }
        self.store.put_image(&img, create_only).await?;
        self.store.audit(&actor.name, "image.save", &img.name, "ok", "").await?;
        self.get(&img.name).await
    }

    /// Deletes an image (admin).
    pub async fn delete(&self, actor: &Actor, name: &str) -> ServiceResult<()> {
        actor.require_admin()?;
        if !self.store.delete_image(name).await? {
            return Err(ServiceError::NotFound(format!("image '{name}'")));
        }
        self.store.audit(&actor.name, "image.delete", name, "ok", "").await?;
        Ok(())
    }

    /// Resolves an image for an instance: its own id, else its parent's, recursively.
    pub async fn resolve(&self, image: &str, instance: &str) -> ServiceResult<ResolvedImage> {
        let all = self.list().await?;
        let by_name: BTreeMap<&str, &ImageView> = all.iter().map(|i| (i.name.as_str(), i)).collect();
        let mut cur = by_name.get(image).copied().ok_or_else(|| ServiceError::NotFound(format!("image '{image}'")))?;
        let mut tried = Vec::new();
        loop {
            tried.push(cur.name.clone());
            if let Some(m) = cur.mappings.get(instance) {
                // Defaults from the image itself win over those of its ancestors.
                let first = by_name.get(image).and_then(|i| i.mappings.get(instance));
                return Ok(ResolvedImage {
                    image_id: m.image_id.clone(),
                    instance_type: first.and_then(|f| f.instance_type.clone()).or_else(|| m.instance_type.clone()),
                    security_group: first.and_then(|f| f.security_group.clone()).or_else(|| m.security_group.clone()),
                    from_image: cur.name.clone(),
                });
            }
            match cur.parent.as_deref().and_then(|p| by_name.get(p).copied()) {
                Some(p) if !tried.contains(&p.name) => cur = p,
                _ => {
                    let via = if tried.len() > 1 { format!(" (nor do its parents {})", tried[1..].join(", ")) } else { String::new() };
                    return Err(ServiceError::Invalid(format!(
                        "image '{image}' has no cloud image id for connector instance '{instance}'{via}"
                    )));
                }
            }
        }
    }
}
