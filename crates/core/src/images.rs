//! Native images: one logical image (e.g. `ubuntu-22.04`) mapped to a cloud
//! image id per connector instance, with a parent hierarchy and default
//! sizes. Ids come from the API/UI and from `connectors.d/images/*.conf`
//! (files win, as for connector parameters). A stored hierarchy never has a
//! cycle or a missing parent: both are refused before anything is written.
//! An image a user registered through the EC2 front (`RegisterImage`)
//! belongs to the project they acted in and records them as its owner: it
//! exists only for that project's members (and for admins), who all launch
//! it; deregistering it needs the `member` role. The broker's own images
//! (no project) are public.
//!
//! Names declared in `connectors.d/images` are the operator's: a project's
//! private image holding such a name (registered before the file declared
//! it) gives way when the catalogue is next built. It is renamed
//! `<name>-<project>` (a number added if taken), its description saying so,
//! with a warning in the log and a record in the audit log; until then (or
//! if the rename fails) the catalogue shows the file's public image under
//! that name, never the private one. Every user, the project's members
//! included, launches the operator's image by that name.
//!
//! The catalogue (every image with its mappings) is cached per replica and
//! keyed on the store's images version (bumped in the transaction of every
//! image write) and on the configuration snapshot (file images): each use
//! reads the version, one small query, and reloads only after a change,
//! wherever it was made. A cached catalogue is therefore never stale.

use crate::audit::{self, AuditAction, AuditEvent, AuditTarget};
use crate::auth::{user_name, Actor};
use crate::domain::{Cursor, ImageName, InstanceName, Page, PageRequest};
use crate::domain::{ProjectName, UserName};
use crate::error::{Resource, ServiceError, ServiceResult};
use crate::registry::{Registry, Snapshot};
use cloudbroker_store::images::{ImageMapping as StoredMapping, ImageRow};
use cloudbroker_store::Store;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The cloud side of a native image on one connector instance.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ImageMapping {
    /// 1-255 printable characters without spaces (spaces around are trimmed).
    #[cfg_attr(feature = "openapi", schema(pattern = r"^\s*[!-~]{1,255}\s*$"))]
    pub image_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_group: Option<String>,
}

impl From<StoredMapping> for ImageMapping {
    fn from(m: StoredMapping) -> Self {
        Self { image_id: m.image_id, instance_type: m.instance_type, security_group: m.security_group }
    }
}

impl From<ImageMapping> for StoredMapping {
    fn from(m: ImageMapping) -> Self {
        Self { image_id: m.image_id, instance_type: m.instance_type, security_group: m.security_group }
    }
}

/// A native image to store (created or replaced).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageSpec {
    pub name: ImageName,
    pub description: String,
    pub os: String,
    pub parent: Option<ImageName>,
    pub mappings: BTreeMap<InstanceName, ImageMapping>,
}

/// An image as shown: stored fields plus ids from files.
#[derive(Clone, Debug, Serialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ImageView {
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub name: ImageName,
    pub description: String,
    pub os: String,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub parent: Option<ImageName>,
    /// instance -> mapping (files override the API's).
    pub mappings: BTreeMap<String, ImageMapping>,
    /// instance -> `file:line` for mappings that come from files.
    pub file_mappings: BTreeMap<String, String>,
    /// The user who registered it through the EC2 front; `null` for the
    /// broker's own, public images.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub owner: Option<UserName>,
    /// The project it was registered in, to whose members alone it is
    /// visible; `null` for the broker's own, public images.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub project: Option<ProjectName>,
    /// The users besides the project's members who see and launch this
    /// private image (its launch permissions), by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>))]
    pub shared_with: Vec<UserName>,
    /// Made from a VM (EC2 `CreateImage`): its content is its own, so it
    /// resolves only where it is mapped, never through its parent (whose
    /// image is another content).
    #[serde(skip)]
    pub made_from_vm: bool,
}

impl ImageView {
    /// Whether `actor` sees it: public, its project's, or any for an admin.
    pub fn visible_to(&self, actor: &Actor) -> bool {
        actor.is_admin || self.launchable_by(actor)
    }

    /// Whether the image is shared with `user` (launch permissions).
    pub fn shared_with_user(&self, user: &UserName) -> bool {
        self.shared_with.contains(user)
    }

    /// Public, or private to `project` (what the EC2 front shows an access
    /// key acting in `project`, admins' included).
    pub fn public_or_in(&self, project: &ProjectName) -> bool {
        self.project.as_ref().is_none_or(|p| p == project)
    }

    /// Whether `actor` may launch it: public, or its project's (admins
    /// included: a launch acts in its project). The one rule behind
    /// [`Images::launchable_by`] and [`Images::resolve_for`].
    pub fn launchable_by(&self, actor: &Actor) -> bool {
        self.public_or_in(&actor.project) || self.shared_with_user(&actor.name)
    }
}

/// An image a user may launch: where it resolves, and what a launch of it
/// there goes by.
#[derive(Clone, Debug, PartialEq)]
pub struct Launchable {
    pub image: ImageView,
    /// Connector instance -> the cloud image id, default instance type (a
    /// launch naming none uses it; none: the connector's default) and
    /// security group a launch of this image there uses. Instances where
    /// it has no cloud image id are left out.
    pub on: BTreeMap<InstanceName, ResolvedImage>,
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

/// Why an image has no id for an instance (the UI and the EC2 front say which).
fn no_id(image: &ImageName, instance: &InstanceName, tried: &[String]) -> ServiceError {
    let via = if tried.len() > 1 { format!(" (nor do its parents {})", tried[1..].join(", ")) } else { String::new() };
    // Well-formed, but the image's configuration lacks it.
    ServiceError::unresolved("image", format!("image '{image}' has no cloud image id for connector instance '{instance}'{via}"))
}

/// Every image (stored and from files) at one moment, by name: what a
/// launch, a DescribeImages or a form resolves against. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Catalogue(Arc<Vec<ImageView>>);

impl Catalogue {
    /// The images, by name.
    pub fn images(&self) -> &[ImageView] {
        &self.0
    }

    /// One image.
    pub fn get(&self, name: &ImageName) -> Option<&ImageView> {
        self.0.binary_search_by(|i| i.name.as_str().cmp(name.as_str())).ok().map(|n| &self.0[n])
    }

    /// As [`Images::resolve`], over this catalogue.
    pub fn resolve(&self, image: &ImageName, instance: &InstanceName) -> ServiceResult<ResolvedImage> {
        resolve_in(&self.0, image, instance)
    }

    /// As [`Images::resolve_for`], over this catalogue.
    pub fn resolve_for(&self, actor: &Actor, image: &ImageName, instance: &InstanceName) -> ServiceResult<ResolvedImage> {
        match self.get(image) {
            Some(img) if img.launchable_by(actor) => self.resolve(image, instance),
            _ => Err(ServiceError::NotFound(Resource::Image(image.clone()))),
        }
    }
}

/// The cached catalogue and what it was built from.
struct Cached {
    version: i64,
    snap: Arc<Snapshot>,
    catalogue: Catalogue,
}

/// The image service.
pub struct Images {
    store: Store,
    registry: Arc<Registry>,
    cache: std::sync::Mutex<Option<Cached>>,
}

impl Images {
    /// A new service.
    pub fn new(store: Store, registry: Arc<Registry>) -> Self {
        Self { store, registry, cache: std::sync::Mutex::new(None) }
    }

    /// All images (stored and from files), by name.
    pub async fn list(&self) -> ServiceResult<Vec<ImageView>> {
        Ok(self.catalogue().await?.0.to_vec())
    }

    /// The catalogue: the cached one while the store's images version and
    /// the configuration snapshot are those it was built from, else a fresh
    /// read (one query when nothing changed).
    pub async fn catalogue(&self) -> ServiceResult<Catalogue> {
        self.catalogue_at(self.registry.snapshot()).await
    }

    /// As [`Self::catalogue`], with the file images of the configuration
    /// snapshot `snap` (a launch resolves its image in the snapshot it
    /// plans in).
    pub async fn catalogue_at(&self, snap: Arc<Snapshot>) -> ServiceResult<Catalogue> {
        // The version first: a write landing between it and the rows makes
        // the next use reload (never a newer version on older rows).
        let version = self.store.images_version().await?;
        {
            let g = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(c) = g.as_ref().filter(|c| c.version == version && Arc::ptr_eq(&c.snap, &snap)) {
                return Ok(c.catalogue.clone());
            }
        }
        let mut version = version;
        let mut rows = self.store.list_images().await?;
        if self.yield_names_to_files(&snap, &rows).await? {
            version = self.store.images_version().await?;
            rows = self.store.list_images().await?;
        }
        let mut merged = Self::merge(rows, &snap);
        Self::add_shares(&mut merged, self.store.image_shares().await?);
        let made = self.store.images_made_from_vms().await?;
        for i in merged.iter_mut().filter(|i| i.project.is_some()) {
            i.made_from_vm = made.contains(i.name.as_str());
        }
        let catalogue = Catalogue(Arc::new(merged));
        let mut g = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        *g = Some(Cached { version, snap, catalogue: catalogue.clone() });
        Ok(catalogue)
    }

    /// Renames the projects' private images whose names the snapshot's files
    /// declare (see the module comment). Whether any was found.
    async fn yield_names_to_files(&self, snap: &Snapshot, rows: &[ImageRow]) -> ServiceResult<bool> {
        let mut taken: std::collections::BTreeSet<String> =
            rows.iter().map(|r| r.name.clone()).chain(snap.file_images.keys().cloned()).collect();
        let mut found = false;
        for r in rows {
            let Some(project) = r.project.as_deref().filter(|_| snap.file_images.contains_key(&r.name)) else { continue };
            found = true;
            let Some(new_name) = yielded_name(&r.name, project, &taken) else {
                tracing::warn!(image = %r.name, project, "a project's private image has a name connectors.d/images declares, and no free name was found to rename it");
                continue;
            };
            let note = format!("Renamed from '{}': connectors.d/images declares that name.", r.name);
            let description: String =
                if r.description.is_empty() { note } else { format!("{note} {}", r.description) }.chars().take(1024).collect();
            if self.store.rename_private_image(&r.name, project, &new_name, &description).await? {
                tracing::warn!(
                    image = %r.name,
                    project,
                    renamed_to = %new_name,
                    "a project's private image had a name that connectors.d/images declares: renamed, the file's image takes the name"
                );
                let detail = format!("private image of {project} renamed to '{new_name}': connectors.d/images declares '{}'", r.name);
                audit::record(
                    &self.store,
                    "system",
                    &AuditEvent::ok(AuditAction::ImageRename, AuditTarget::Image(&r.name)).detail(detail).in_project(project),
                )
                .await?;
            }
            taken.insert(new_name);
        }
        Ok(found)
    }

    /// Puts each image's launch permissions on it (private images only: a
    /// file's public image under the same name has none).
    fn add_shares(images: &mut [ImageView], mut shares: BTreeMap<String, Vec<String>>) {
        for i in images.iter_mut().filter(|i| i.project.is_some()) {
            if let Some(users) = shares.remove(i.name.as_str()) {
                i.shared_with = users.into_iter().map(user_name).collect();
            }
        }
    }

    /// Stored images merged with those of the snapshot's files.
    fn merge(rows: Vec<ImageRow>, snap: &Snapshot) -> Vec<ImageView> {
        let mut out: BTreeMap<String, ImageView> = BTreeMap::new();
        for r in rows {
            out.insert(
                r.name.clone(),
                ImageView {
                    name: ImageName::from_stored(r.name),
                    description: r.description,
                    os: r.os,
                    parent: r.parent.map(ImageName::from_stored),
                    mappings: r.mappings.into_iter().map(|(k, v)| (k, v.into())).collect(),
                    file_mappings: BTreeMap::new(),
                    owner: r.owner.map(user_name),
                    project: r.project.map(ProjectName::from_stored),
                    shared_with: Vec::new(),
                    made_from_vm: false,
                },
            );
        }
        for (image, maps) in &snap.file_images {
            // A file's name is never a user's private image (see the module comment).
            if out.get(image).is_some_and(|v| v.project.is_some()) {
                out.remove(image);
            }
            let v = out.entry(image.clone()).or_insert_with(|| ImageView {
                name: ImageName::from_stored(image.clone()),
                description: String::new(),
                os: String::new(),
                parent: None,
                mappings: BTreeMap::new(),
                file_mappings: BTreeMap::new(),
                owner: None,
                project: None,
                shared_with: Vec::new(),
                made_from_vm: false,
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
        out.into_values().collect()
    }

    /// One page of images (stored and from files), by name in byte order.
    /// The stored ones come from a keyset query; file images (a few, in
    /// memory) are merged in by name.
    /// Other projects' private images are left out (admins see all).
    pub async fn page(&self, actor: &Actor, page: &PageRequest) -> ServiceResult<Page<ImageView>> {
        // Private images under names the files now declare give way first.
        self.catalogue().await?;
        let snap = self.registry.snapshot();
        let after = page.after.as_ref().map(|c| c.key.as_str());
        let want = page.limit as usize + 1;
        let mut out: BTreeMap<String, ImageView> = BTreeMap::new();
        let viewer = (!actor.is_admin).then(|| actor.project.as_str());
        for r in self.store.page_images_for(after, want as i64, viewer, actor.name.as_str()).await? {
            out.insert(
                r.name.clone(),
                ImageView {
                    name: ImageName::from_stored(r.name),
                    description: r.description,
                    os: r.os,
                    parent: r.parent.map(ImageName::from_stored),
                    mappings: r.mappings.into_iter().map(|(k, v)| (k, v.into())).collect(),
                    file_mappings: BTreeMap::new(),
                    owner: r.owner.map(user_name),
                    project: r.project.map(ProjectName::from_stored),
                    shared_with: Vec::new(),
                    made_from_vm: false,
                },
            );
        }
        let file_images = snap.file_images.iter().filter(|(name, _)| after.is_none_or(|a| name.as_str() > a)).take(want);
        for (image, maps) in file_images {
            if out.get(image).is_some_and(|v| v.project.is_some()) {
                out.remove(image);
            }
            let v = out.entry(image.clone()).or_insert_with(|| ImageView {
                name: ImageName::from_stored(image.clone()),
                description: String::new(),
                os: String::new(),
                parent: None,
                mappings: BTreeMap::new(),
                file_mappings: BTreeMap::new(),
                owner: None,
                project: None,
                shared_with: Vec::new(),
                made_from_vm: false,
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
        let mut items: Vec<ImageView> = out.into_values().take(want).collect();
        Self::add_shares(&mut items, self.store.image_shares().await?);
        Ok(Page::from_fetched(items, page.limit, |i| Cursor::new(0, i.name.as_str())))
    }

    /// One image.
    pub async fn get(&self, name: &ImageName) -> ServiceResult<ImageView> {
        self.catalogue().await?.get(name).cloned().ok_or_else(|| ServiceError::NotFound(Resource::Image(name.clone())))
    }

    /// One image as `actor` sees it: another project's private image does not exist for them.
    pub async fn get_for(&self, actor: &Actor, name: &ImageName) -> ServiceResult<ImageView> {
        self.get(name)
            .await
            .and_then(|i| if i.visible_to(actor) { Ok(i) } else { Err(ServiceError::NotFound(Resource::Image(name.clone()))) })
    }

    /// The images `actor` sees (public, its project's; all for admins).
    pub async fn list_for(&self, actor: &Actor) -> ServiceResult<Vec<ImageView>> {
        Ok(self.catalogue().await?.images().iter().filter(|i| i.visible_to(actor)).cloned().collect())
    }

    /// The images `actor` may launch (public and its project's, by name; see
    /// [`ImageView::launchable_by`]), each with the connector instances it
    /// resolves on and its defaults there: what the UI offers, the EC2
    /// front describes and runs, and a launch accepts (an image left out
    /// here is refused; a launch names its instance type, or gets the
    /// default shown here, else the connector's).
    pub async fn launchable_by(&self, actor: &Actor) -> ServiceResult<Vec<Launchable>> {
        let snap = self.registry.snapshot();
        let catalogue = self.catalogue_at(snap.clone()).await?;
        Ok(catalogue
            .images()
            .iter()
            .filter(|i| i.launchable_by(actor))
            .map(|i| Launchable {
                image: i.clone(),
                on: snap
                    .instances
                    .iter()
                    .filter_map(|inst| catalogue.resolve_for(actor, &i.name, &inst.name).ok().map(|r| (inst.name.clone(), r)))
                    .collect(),
            })
            .collect())
    }

    /// Stores an image registered from the cloud (see
    /// [`crate::provisioning::Provisioning::register_image`], which checks
    /// first that the cloud has it): private to the actor's project (which
    /// needs the `member` role), `actor` its owner, or public when an admin
    /// registers it. The name must be free.
    pub(crate) async fn register(
        &self,
        actor: &Actor,
        name: &ImageName,
        description: &str,
        instance: &InstanceName,
        cloud_image_id: &str,
    ) -> ServiceResult<ImageView> {
        self.check_register(actor, name, description)?;
        let owner = (!actor.is_admin).then(|| actor.name.to_string());
        let project = (!actor.is_admin).then(|| actor.project.to_string());
        let row = ImageRow {
            name: name.to_string(),
            description: description.to_string(),
            os: String::new(),
            parent: None,
            mappings: BTreeMap::from([(
                instance.to_string(),
                StoredMapping { image_id: cloud_image_id.to_string(), instance_type: None, security_group: None },
            )]),
            owner: owner.clone(),
            project,
        };
        self.store.put_image(&row, true).await?;
        let detail = format!("{instance}:{cloud_image_id}{}", if owner.is_some() { " (private)" } else { " (public)" });
        audit::record_by(&self.store, actor, &AuditEvent::ok(AuditAction::ImageRegister, AuditTarget::Image(name.as_str())).detail(detail))
            .await?;
        self.get(name).await
    }

    /// Stores an image made from a VM of the actor's project (see
    /// [`crate::provisioning::Provisioning::create_image`]): always private
    /// to the actor's project, admins' included, `actor` its owner, `parent`
    /// the VM's image when it still exists. The project holds at most
    /// [`crate::limits::MAX_PRIVATE_IMAGES`] private images.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn create_private(
        &self,
        actor: &Actor,
        name: &ImageName,
        description: &str,
        parent: Option<&str>,
        instance: &InstanceName,
        cloud_image_id: &str,
        detail: &str,
    ) -> ServiceResult<ImageView> {
        let catalogue = self.catalogue().await?;
        let parent = parent.and_then(|p| catalogue.get(&ImageName::from_stored(p.to_string())).map(|i| (i.name.to_string(), i.os.clone())));
        let row = ImageRow {
            name: name.to_string(),
            description: description.to_string(),
            os: parent.as_ref().map(|p| p.1.clone()).unwrap_or_default(),
            parent: parent.map(|p| p.0),
            mappings: BTreeMap::from([(
                instance.to_string(),
                StoredMapping { image_id: cloud_image_id.to_string(), instance_type: None, security_group: None },
            )]),
            owner: Some(actor.name.to_string()),
            project: Some(actor.project.to_string()),
        };
        self.store.put_image_made_from(&row, detail.split(' ').next().unwrap_or_default()).await?;
        audit::record_by(&self.store, actor, &AuditEvent::ok(AuditAction::ImageCreate, AuditTarget::Image(name.as_str())).detail(detail))
            .await?;
        self.get(name).await
    }

    /// What [`Self::create_private`] checks first: as [`Self::check_register`],
    /// and the project is under its cap of private images.
    pub(crate) async fn check_create_private(&self, actor: &Actor, name: &ImageName, description: &str) -> ServiceResult<()> {
        self.check_register(actor, name, description)?;
        let catalogue = self.catalogue().await?;
        if catalogue.get(name).is_some() {
            return Err(ServiceError::Conflict(format!("image '{name}' already exists")));
        }
        let held = catalogue.images().iter().filter(|i| i.project.as_ref() == Some(&actor.project)).count() as i64;
        if held >= crate::limits::MAX_PRIVATE_IMAGES {
            return Err(ServiceError::LimitExceeded { limit: crate::limits::Limit::PrivateImages, max: crate::limits::MAX_PRIVATE_IMAGES });
        }
        Ok(())
    }

    /// Changes the launch permissions of a private image: `add` and
    /// `remove` name broker users (each must exist). Allowed to members of
    /// the image's project and to admins; a public image has none
    /// (`Conflict`); another project's image does not exist for the caller.
    pub async fn share(&self, actor: &Actor, name: &ImageName, add: &[UserName], remove: &[UserName]) -> ServiceResult<ImageView> {
        let img = self.check_share(actor, name, add).await?;
        let Some(project) = img.project.as_ref() else {
            return Err(ServiceError::Conflict(format!("image '{name}' is public: it has no launch permissions to change")));
        };
        let add_s: Vec<String> = add.iter().map(ToString::to_string).collect();
        let remove_s: Vec<String> = remove.iter().map(ToString::to_string).collect();
        if !self.store.change_image_shares(name.as_str(), &add_s, &remove_s).await? {
            return Err(ServiceError::NotFound(Resource::Image(name.clone())));
        }
        let detail: Vec<String> = add.iter().map(|u| format!("+{u}")).chain(remove.iter().map(|u| format!("-{u}"))).collect();
        let event = AuditEvent::ok(AuditAction::ImageShare, AuditTarget::Image(name.as_str()))
            .detail(detail.join(" "))
            .in_project(project.as_str());
        audit::record_by(&self.store, actor, &event).await?;
        self.get(name).await
    }

    /// What [`Self::share`] checks before changing anything (the image as
    /// it is): a private image of the actor's project (admins: any), a
    /// member who may act, every user added exists.
    pub async fn check_share(&self, actor: &Actor, name: &ImageName, add: &[UserName]) -> ServiceResult<ImageView> {
        let img = self.get_for(actor, name).await?;
        let Some(project) = img.project.as_ref() else {
            return Err(ServiceError::Conflict(format!("image '{name}' is public: it has no launch permissions to change")));
        };
        if !actor.is_admin && project != &actor.project {
            // Shared with the actor, not theirs to share.
            return Err(ServiceError::Forbidden(format!("image '{name}' belongs to project '{project}'")));
        }
        actor.require_act()?;
        for u in add {
            if self.store.get_user(u.as_str()).await?.is_none() {
                return Err(ServiceError::NotFound(Resource::User(u.clone())));
            }
        }
        Ok(img)
    }

    /// What [`Self::register`] checks before storing: the actor may act in
    /// its project, the description's length, and a name no file declares
    /// (one the store holds is refused by the store when writing).
    pub(crate) fn check_register(&self, actor: &Actor, name: &ImageName, description: &str) -> ServiceResult<()> {
        actor.require_act()?;
        if description.chars().count() > 1024 {
            return Err(ServiceError::invalid_field("description", "description is at most 1024 characters"));
        }
        if self.registry.snapshot().file_images.contains_key(name.as_str()) {
            return Err(ServiceError::Conflict(format!("image '{name}' already exists")));
        }
        Ok(())
    }

    /// What [`Self::deregister`] checks before deleting: the actor may (a
    /// public image: admins only; a private one: its project's members),
    /// the image comes from no file, no image names it as parent (the store
    /// checks that last one again when deleting).
    pub async fn check_deregister(&self, actor: &Actor, name: &ImageName) -> ServiceResult<()> {
        let img = self.get_for(actor, name).await?;
        if img.project.is_none() {
            actor.require_admin()?;
        } else {
            actor.require_act()?;
        }
        if !actor.is_admin && img.project.as_ref().is_some_and(|p| p != &actor.project) {
            // Shared with the actor (a launch permission): theirs to launch, not to deregister.
            return Err(ServiceError::Forbidden(format!("image '{name}' is shared with you: only its project's members deregister it")));
        }
        if !img.file_mappings.is_empty() {
            return Err(ServiceError::Conflict(format!("image '{name}' comes from files under connectors.d/images: edit those files")));
        }
        let catalogue = self.catalogue().await?;
        let (seen, unseen): (Vec<&ImageView>, Vec<&ImageView>) =
            catalogue.images().iter().filter(|i| i.parent.as_ref() == Some(name)).partition(|i| i.visible_to(actor));
        if !seen.is_empty() || !unseen.is_empty() {
            // Other projects' images are named to no one but admins: a count.
            let mut what: Vec<String> = seen.iter().map(|i| i.name.to_string()).collect();
            match unseen.len() {
                0 => {}
                1 => what.push("an image of another project".to_string()),
                n => what.push(format!("{n} images of other projects")),
            }
            return Err(ServiceError::Conflict(format!("image '{name}' is the parent of {}", what.join(", "))));
        }
        Ok(())
    }

    /// Deregisters an image: a private one by a member of its project, or an
    /// admin (a public image by an admin only). Another project's private
    /// image does not exist for the caller. Refused (`Conflict`) while other
    /// images name it as parent.
    pub async fn deregister(&self, actor: &Actor, name: &ImageName) -> ServiceResult<()> {
        self.check_deregister(actor, name).await?;
        if !self.store.delete_image(name.as_str()).await? {
            return Err(ServiceError::NotFound(Resource::Image(name.clone())));
        }
        audit::record_by(&self.store, actor, &AuditEvent::ok(AuditAction::ImageDeregister, AuditTarget::Image(name.as_str()))).await?;
        Ok(())
    }

    /// Resolves an image for a launch by `actor`: as [`Self::resolve`], but
    /// another project's private image does not exist (admins included: a
    /// launch acts in its project).
    pub async fn resolve_for(&self, actor: &Actor, image: &ImageName, instance: &InstanceName) -> ServiceResult<ResolvedImage> {
        self.catalogue().await?.resolve_for(actor, image, instance)
    }

    /// Creates (`create_only`) or replaces an image (admin).
    pub async fn put(&self, actor: &Actor, img: ImageSpec, create_only: bool) -> ServiceResult<ImageView> {
        actor.require_admin()?;
        let snap = self.registry.snapshot();
        for (inst, m) in &img.mappings {
            if snap.instance(inst.as_str()).is_none() {
                // The request names what the configuration lacks: a conflict
                // with it (not a malformed request, nor a missing target).
                return Err(ServiceError::unresolved(
                    "mappings",
                    format!("image '{}': no connector instance '{inst}' is declared", img.name),
                ));
            }
            let id = m.image_id.trim();
            if id.is_empty() {
                return Err(ServiceError::invalid_field("mappings", format!("image '{}': empty image id for '{inst}'", img.name)));
            }
            if id.len() > 255 || !id.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(ServiceError::invalid_field(
                    "mappings",
                    format!("image '{}': the image id for '{inst}' must be 1-255 printable characters without spaces", img.name),
                ));
            }
        }
        if img.description.chars().count() > 1024 || img.os.chars().count() > 64 {
            return Err(ServiceError::invalid_field("description", "description is at most 1024 characters and os at most 64"));
        }
        let catalogue = self.catalogue().await?;
        let all = catalogue.images();
        if let Some(p) = &img.parent {
            if !all.iter().any(|i| &i.name == p) {
                return Err(ServiceError::unresolved("parent", format!("image '{}': parent image '{p}' does not exist", img.name)));
            }
            // Walk up from the parent, with this image's new parent in place.
            let parents: BTreeMap<&str, Option<&str>> =
                all.iter().map(|i| (i.name.as_str(), i.parent.as_ref().map(ImageName::as_str))).collect();
            let mut chain = vec![img.name.to_string()];
            let mut cur = Some(p.as_str());
            while let Some(c) = cur {
                chain.push(c.to_string());
                if c == img.name.as_str() {
                    return Err(ServiceError::unresolved("parent", format!("image parents would form a cycle: {}", chain.join(" -> "))));
                }
                if chain.len() > 64 {
                    return Err(ServiceError::unresolved("parent", "image hierarchy is deeper than 64"));
                }
                cur = parents.get(c).copied().flatten();
            }
        }
        let row = ImageRow {
            name: img.name.to_string(),
            description: img.description,
            os: img.os,
            parent: img.parent.map(|p| p.to_string()),
            mappings: img.mappings.into_iter().map(|(k, v)| (k.to_string(), v.into())).collect(),
            // New images made here are the broker's; a replaced one keeps its owner and project.
            owner: None,
            project: None,
        };
        self.store.put_image(&row, create_only).await?;
        audit::record_by(&self.store, actor, &AuditEvent::ok(AuditAction::ImageSave, AuditTarget::Image(img.name.as_str()))).await?;
        self.get(&img.name).await
    }

    /// Deletes an image (admin).
    pub async fn delete(&self, actor: &Actor, name: &ImageName) -> ServiceResult<()> {
        actor.require_admin()?;
        // An admin sees every image: the refusal names the children (the
        // store checks again when deleting, naming none).
        let catalogue = self.catalogue().await?;
        let children: Vec<&str> = catalogue.images().iter().filter(|i| i.parent.as_ref() == Some(name)).map(|i| i.name.as_str()).collect();
        if !children.is_empty() {
            return Err(ServiceError::Conflict(format!("image '{name}' is the parent of {}", children.join(", "))));
        }
        if !self.store.delete_image(name.as_str()).await? {
            return Err(ServiceError::NotFound(Resource::Image(name.clone())));
        }
        audit::record_by(&self.store, actor, &AuditEvent::ok(AuditAction::ImageDelete, AuditTarget::Image(name.as_str()))).await?;
        Ok(())
    }

    /// Resolves an image for an instance: its own id, else its parent's, recursively.
    pub async fn resolve(&self, image: &ImageName, instance: &InstanceName) -> ServiceResult<ResolvedImage> {
        self.catalogue().await?.resolve(image, instance)
    }
}

/// The name a project's private image `name` takes when the operator's files
/// declare `name`: `<name>-<project>`, else with `-2` ... `-99` added, the
/// first free one that is a valid image name.
fn yielded_name(name: &str, project: &str, taken: &std::collections::BTreeSet<String>) -> Option<String> {
    let fit = |s: String| -> String {
        let mut s: String = s.chars().take(128).collect();
        while s.ends_with(|c: char| !c.is_ascii_alphanumeric()) {
            s.pop();
        }
        s
    };
    let base = fit(format!("{name}-{project}"));
    std::iter::once(base.clone())
        .chain((2..100).map(|n| {
            let suffix = format!("-{n}");
            format!("{}{suffix}", fit(base.chars().take(128 - suffix.len()).collect()))
        }))
        .find(|c| !taken.contains(c) && ImageName::parse(c).is_ok())
}

/// [`Images::resolve`] over the images `all`, sorted by name (each looked
/// up by a binary search: resolving every image on every instance, as
/// [`Images::launchable_by`] does, builds no index).
fn resolve_in(all: &[ImageView], image: &ImageName, instance: &InstanceName) -> ServiceResult<ResolvedImage> {
    let get = |name: &str| all.binary_search_by(|i| i.name.as_str().cmp(name)).ok().map(|n| &all[n]);
    let mut cur = get(image.as_str()).ok_or_else(|| ServiceError::NotFound(Resource::Image(image.clone())))?;
    let mut tried = Vec::new();
    loop {
        tried.push(cur.name.to_string());
        if let Some(m) = cur.mappings.get(instance.as_str()) {
            // Defaults from the image itself win over those of its ancestors.
            let first = get(image.as_str()).and_then(|i| i.mappings.get(instance.as_str()));
            return Ok(ResolvedImage {
                image_id: m.image_id.clone(),
                instance_type: first.and_then(|f| f.instance_type.clone()).or_else(|| m.instance_type.clone()),
                security_group: first.and_then(|f| f.security_group.clone()).or_else(|| m.security_group.clone()),
                from_image: cur.name.to_string(),
            });
        }
        // An image made from a VM is not its parent's content: no fallback.
        match cur.parent.as_ref().filter(|_| !cur.made_from_vm).and_then(|p| get(p.as_str())) {
            Some(p) if !tried.contains(&p.name.to_string()) => cur = p,
            _ => return Err(no_id(image, instance, &tried)),
        }
    }
}

#[cfg(test)]
mod yielded_name_tests {
    #![allow(clippy::unwrap_used)]
    use super::yielded_name;
    use crate::domain::ImageName;
    use std::collections::BTreeSet;

    #[test]
    fn a_yielded_name_is_free_and_valid() {
        let taken: BTreeSet<String> = ["foo".to_string(), "foo-bob".to_string()].into();
        assert_eq!(yielded_name("foo", "alice", &taken).as_deref(), Some("foo-alice"));
        assert_eq!(yielded_name("foo", "bob", &taken).as_deref(), Some("foo-bob-2"));
        assert_eq!(yielded_name("foo", "bob.", &BTreeSet::new()).as_deref(), Some("foo-bob"));
        let long = "a".repeat(128);
        let n = yielded_name(&long, "bob", &[long.clone()].into()).unwrap();
        assert!(n.len() <= 128 && n != long && ImageName::parse(&n).is_ok(), "{n}");
    }
}

#[cfg(test)]
mod resolve_tests {
    #![allow(clippy::unwrap_used)]
    use super::{resolve_in, ImageMapping, ImageView};
    use crate::domain::{ImageName, InstanceName};
    use std::collections::BTreeMap;

    fn image(name: &str, parent: Option<&str>, on: &[(&str, &str)], made_from_vm: bool) -> ImageView {
        ImageView {
            name: ImageName::parse(name).unwrap(),
            description: String::new(),
            os: String::new(),
            parent: parent.map(|p| ImageName::parse(p).unwrap()),
            mappings: on
                .iter()
                .map(|(i, id)| (i.to_string(), ImageMapping { image_id: id.to_string(), instance_type: None, security_group: None }))
                .collect(),
            file_mappings: BTreeMap::new(),
            owner: None,
            project: None,
            shared_with: Vec::new(),
            made_from_vm,
        }
    }

    #[test]
    fn an_image_made_from_a_vm_never_resolves_through_its_parent() {
        // `base` is on sb and sb2; `golden` was made from a VM on sb; `tuned`
        // (declared, not made) is on neither and follows its parents.
        let all = vec![
            image("base", None, &[("sb", "ami-base1"), ("sb2", "ami-base2")], false),
            image("golden", Some("base"), &[("sb", "ami-gold")], true),
            image("tuned", Some("golden"), &[], false),
        ];
        let (sb, sb2) = (InstanceName::parse("sb").unwrap(), InstanceName::parse("sb2").unwrap());
        let golden = ImageName::parse("golden").unwrap();
        assert_eq!(resolve_in(&all, &golden, &sb).unwrap().image_id, "ami-gold");
        let e = resolve_in(&all, &golden, &sb2).unwrap_err().to_string();
        assert!(e.contains("has no cloud image id for connector instance 'sb2'"), "{e}");
        let tuned = ImageName::parse("tuned").unwrap();
        assert_eq!(resolve_in(&all, &tuned, &sb).unwrap().image_id, "ami-gold", "a child falls back to the made image");
        assert!(resolve_in(&all, &tuned, &sb2).is_err(), "but not past it");
        // A declared image still follows its parent.
        let mut declared = all.clone();
        declared[1].made_from_vm = false;
        assert_eq!(resolve_in(&declared, &golden, &sb2).unwrap().image_id, "ami-base2");
    }
}
