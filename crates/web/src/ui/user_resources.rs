//! An admin's view of one user's resources, on the admin user page
//! (`/admin/users/{name}`): the VMs they launched (live, and those ended in
//! the last day), the volumes and Elastic IPs they made and the key pairs
//! they made, in any project; with actions: stop a VM, terminate it,
//! delete a volume, release an address, delete a key pair (access keys are
//! the user page's own section). Every action goes through the same core
//! service a user's own action does, with the admin as actor; the audit
//! record names the admin as actor and the user as subject. Destructive
//! actions (terminate, delete, release) ask first on a page of their own
//! (GET shows it, its POST acts), so they work without JavaScript. A
//! resource that is not the user's is "not found" here, whoever has it.

use super::context::{CsrfForm, Ctx};
use super::errors::{UiError, UiResult};
use super::form::when;
use super::page;
use super::Chrome;
use actix_web::web;
use askama::Template;
use cloudbroker_core::domain::{AllocationId, InstanceName, PageRequest, ProjectName, UserName, VmAction, VmId, VmStatus, VolumeId};
use cloudbroker_core::provisioning::{Address, UserResource, Vm, VmQuery};
use serde::Deserialize;

pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/users/{name}/vms/{id}/stop", web::post().to(stop_vm))
        .route("/users/{name}/vms/{id}/terminate", web::get().to(confirm_terminate))
        .route("/users/{name}/vms/{id}/terminate", web::post().to(terminate_vm))
        .route("/users/{name}/volumes/{instance}/{id}/delete", web::get().to(confirm_delete_volume))
        .route("/users/{name}/volumes/{instance}/{id}/delete", web::post().to(delete_volume))
        .route("/users/{name}/addresses/{instance}/{id}/release", web::get().to(confirm_release))
        .route("/users/{name}/addresses/{instance}/{id}/release", web::post().to(release))
        .route("/users/{name}/key-pairs/delete", web::get().to(confirm_delete_key_pair))
        .route("/users/{name}/key-pairs/delete", web::post().to(delete_key_pair));
}

/// The most VMs the user page lists (then a note says there are more).
const VMS_SHOWN: u32 = 50;

pub(super) struct VmRow {
    pub id: String,
    pub name: String,
    pub project: String,
    pub instance: String,
    pub state: String,
    pub instance_type: String,
    pub created: String,
    pub can_stop: bool,
    pub can_terminate: bool,
}

pub(super) struct VolumeRow {
    pub project: String,
    pub instance: String,
    pub id: String,
    pub size_gib: u32,
    pub state: String,
    /// The VM it is attached to (empty: none).
    pub attached_to: String,
    pub created: String,
}

pub(super) struct AddressRow {
    pub project: String,
    pub instance: String,
    pub id: String,
    pub public_ip: String,
    /// The VM it is associated with (empty: none).
    pub vm: String,
    pub created: String,
}

/// A security group, VPC, subnet or snapshot the user made.
pub(super) struct ObjectRow {
    pub kind: &'static str,
    pub project: String,
    pub instance: String,
    pub id: String,
    /// What it lives in or came from (a VPC, a volume; empty: nothing).
    pub parent: String,
    pub state: String,
    pub name: String,
    pub created: String,
}

pub(super) struct KeyPairRow {
    pub project: String,
    pub name: String,
    pub fingerprint: String,
    pub created: String,
}

/// Everything of one user's the admin user page lists.
#[derive(Default)]
pub(super) struct Resources {
    pub vms: Vec<VmRow>,
    /// More VMs than listed.
    pub vms_more: bool,
    pub volumes: Vec<VolumeRow>,
    pub addresses: Vec<AddressRow>,
    pub key_pairs: Vec<KeyPairRow>,
    /// Security groups, VPCs, subnets and snapshots.
    pub objects: Vec<ObjectRow>,
}

fn vm_row(v: Vm) -> VmRow {
    let s = v.status;
    VmRow {
        id: v.id.to_string(),
        name: v.name,
        project: v.project.to_string(),
        instance: v.instance.to_string(),
        state: s.as_str().to_string(),
        instance_type: v.instance_type,
        created: when(&v.created_at),
        can_stop: v.cloud_id.is_some() && matches!(s, VmStatus::Running | VmStatus::Pending),
        can_terminate: v.cloud_id.is_some() && s.is_live() && s != VmStatus::ShuttingDown,
    }
}

fn address_row(r: UserResource<Address>) -> AddressRow {
    AddressRow {
        project: r.project,
        instance: r.item.instance.to_string(),
        id: r.item.allocation_id.to_string(),
        public_ip: r.item.public_ip,
        vm: r.item.vm.as_ref().map(|v| v.to_string()).unwrap_or_default(),
        created: when(&r.item.created_at),
    }
}

/// The user's resources, as the admin user page lists them.
pub(super) async fn load(ui: &Ctx, user: &UserName) -> Result<Resources, UiError> {
    let (actor, broker) = (ui.actor(), &ui.broker);
    let q = VmQuery { user: Some(user.clone()), ..VmQuery::default() };
    let day_ago = broker.clock.now() - chrono::Duration::days(1);
    let vms = broker.provisioning.list_recent(actor, q, PageRequest::first(VMS_SHOWN), Some(day_ago)).await?;
    let addresses = broker.provisioning.addresses_made_by(actor, user).await?;
    let key_pairs = broker.key_pairs.made_by(actor, user).await?;
    let objects = broker.provisioning.objects_made_by(actor, user).await?;
    Ok(Resources {
        objects: objects
            .into_iter()
            .map(|o| ObjectRow {
                kind: o.kind.noun(),
                name: o.tags.get("Name").cloned().unwrap_or_default(),
                project: o.project,
                instance: o.instance,
                id: o.cloud_id,
                parent: o.parent.unwrap_or_default(),
                state: o.state,
                created: when(&o.created_at),
            })
            .collect(),
        vms_more: vms.next_cursor.is_some(),
        vms: vms.items.into_iter().map(vm_row).collect(),
        volumes: load_volumes(ui, user).await?,
        addresses: addresses.into_iter().map(address_row).collect(),
        key_pairs: key_pairs
            .into_iter()
            .map(|(project, k)| KeyPairRow {
                project: project.to_string(),
                name: k.name,
                fingerprint: k.fingerprint,
                created: when(&k.created_at),
            })
            .collect(),
    })
}

/// The confirmation page of a destructive action: what it does, a POST
/// form (the CSRF token, `fields` as hidden inputs) and a way back.
#[derive(Template)]
#[template(path = "admin_confirm.html")]
struct ConfirmPage {
    c: Chrome,
    heading: String,
    message: String,
    action: String,
    fields: Vec<(&'static str, String)>,
    button: &'static str,
    back: String,
}

fn user_in_path(s: &str) -> Result<UserName, UiError> {
    UserName::parse(s).map_err(|_| UiError::NotFound("No such user."))
}

fn back_to(user: &UserName) -> String {
    format!("/admin/users/{user}")
}

fn confirm(ui: &Ctx, user: &UserName, heading: String, message: String, action: String, button: &'static str) -> UiResult {
    confirm_with(ui, user, heading, message, action, Vec::new(), button)
}

fn confirm_with(
    ui: &Ctx,
    user: &UserName,
    heading: String,
    message: String,
    action: String,
    fields: Vec<(&'static str, String)>,
    button: &'static str,
) -> UiResult {
    Ok(page(&ConfirmPage { c: ui.chrome("admin/users", heading.clone()), heading, message, action, fields, button, back: back_to(user) }))
}

/// VM `id`, when `user` launched it (else not found).
async fn users_vm(ui: &Ctx, user: &UserName, id: &str) -> Result<Vm, UiError> {
    let id = VmId::parse(id).map_err(|_| UiError::NotFound("No such VM."))?;
    let vm = ui.broker.provisioning.get(ui.actor(), &id).await?;
    if &vm.user != user {
        return Err(UiError::NotFound("No such VM of this user."));
    }
    Ok(vm)
}

async fn stop_vm(ui: Ctx, path: web::Path<(String, String)>, _: CsrfForm) -> UiResult {
    let (name, id) = path.into_inner();
    let user = user_in_path(&name)?;
    let vm = users_vm(&ui, &user, &id).await?;
    let vm = ui.broker.provisioning.action(ui.actor(), &vm.id, VmAction::Stop).await?;
    Ok(ui.redirect_with(&back_to(&user), &format!("VM {} of {user} is {}", vm.id, vm.status)))
}

async fn confirm_terminate(ui: Ctx, path: web::Path<(String, String)>) -> UiResult {
    let (name, id) = path.into_inner();
    let user = user_in_path(&name)?;
    let vm = users_vm(&ui, &user, &id).await?;
    let label = if vm.name.is_empty() { vm.id.to_string() } else { vm.name.clone() };
    confirm(
        &ui,
        &user,
        format!("Terminate {label} of {user}?"),
        format!(
            "VM {} of {user} (project {}, on {}, {}) will be destroyed with its disks. This cannot be undone. \
             The audit log records you as the actor and {user} as the owner.",
            vm.id, vm.project, vm.instance, vm.status
        ),
        format!("/admin/users/{user}/vms/{}/terminate", vm.id),
        "Terminate",
    )
}

async fn terminate_vm(ui: Ctx, path: web::Path<(String, String)>, _: CsrfForm) -> UiResult {
    let (name, id) = path.into_inner();
    let user = user_in_path(&name)?;
    let vm = users_vm(&ui, &user, &id).await?;
    let vm = ui.broker.provisioning.action(ui.actor(), &vm.id, VmAction::Terminate).await?;
    Ok(ui.redirect_with(&back_to(&user), &format!("VM {} of {user} is {}", vm.id, vm.status)))
}

/// `(instance, id)` of a path, parsed (a malformed one: not found).
fn cloud_ref(instance: &str) -> Result<InstanceName, UiError> {
    InstanceName::parse(instance).map_err(|_| UiError::NotFound("No such connector instance."))
}

async fn confirm_delete_volume(ui: Ctx, path: web::Path<(String, String, String)>) -> UiResult {
    let (name, instance, id) = path.into_inner();
    let user = user_in_path(&name)?;
    let (instance, id) = (cloud_ref(&instance)?, VolumeId::parse(&id).map_err(|_| UiError::NotFound("No such volume."))?);
    let v = users_volume(&ui, &user, &instance, &id).await?;
    let attached = if v.attached_to.is_empty() {
        String::new()
    } else {
        format!(" It is attached to {}: the cloud refuses to delete it until it is detached.", v.attached_to)
    };
    confirm(
        &ui,
        &user,
        format!("Delete volume {id} of {user}?"),
        format!(
            "Volume {id} ({} GiB, {}) in project {} on {instance} will be deleted with its data. This cannot be undone.{attached}",
            v.size_gib, v.state, v.project
        ),
        format!("/admin/users/{user}/volumes/{instance}/{id}/delete"),
        "Delete volume",
    )
}

/// Volume `id` on `instance`, when `user` made it (else not found).
async fn users_volume(ui: &Ctx, user: &UserName, instance: &InstanceName, id: &VolumeId) -> Result<VolumeRow, UiError> {
    let all = load_volumes(ui, user).await?;
    all.into_iter()
        .find(|v| v.instance == instance.as_str() && v.id == id.as_str())
        .ok_or(UiError::NotFound("No such volume of this user."))
}

async fn load_volumes(ui: &Ctx, user: &UserName) -> Result<Vec<VolumeRow>, UiError> {
    let volumes = ui.broker.provisioning.volumes_made_by(ui.actor(), user).await?;
    Ok(volumes
        .into_iter()
        .map(|r| VolumeRow {
            project: r.project,
            instance: r.item.instance.to_string(),
            id: r.item.volume_id.to_string(),
            size_gib: r.item.size_gib,
            state: r.item.state.clone(),
            attached_to: r.item.attachment.as_ref().map(|a| a.vm.to_string()).unwrap_or_default(),
            created: when(&r.item.created_at),
        })
        .collect())
}

async fn delete_volume(ui: Ctx, path: web::Path<(String, String, String)>, _: CsrfForm) -> UiResult {
    let (name, instance, id) = path.into_inner();
    let user = user_in_path(&name)?;
    let (instance, id) = (cloud_ref(&instance)?, VolumeId::parse(&id).map_err(|_| UiError::NotFound("No such volume."))?);
    users_volume(&ui, &user, &instance, &id).await?;
    ui.broker.provisioning.delete_volume(ui.actor(), &instance, &id).await?;
    Ok(ui.redirect_with(&back_to(&user), &format!("Volume {id} of {user} deleted")))
}

/// Address `id` on `instance`, when `user` allocated it (else not found).
async fn users_address(ui: &Ctx, user: &UserName, instance: &InstanceName, id: &AllocationId) -> Result<AddressRow, UiError> {
    let all = ui.broker.provisioning.addresses_made_by(ui.actor(), user).await?;
    all.into_iter()
        .find(|a| &a.item.instance == instance && &a.item.allocation_id == id)
        .map(address_row)
        .ok_or(UiError::NotFound("No such address of this user."))
}

async fn confirm_release(ui: Ctx, path: web::Path<(String, String, String)>) -> UiResult {
    let (name, instance, id) = path.into_inner();
    let user = user_in_path(&name)?;
    let (instance, id) = (cloud_ref(&instance)?, AllocationId::parse(&id).map_err(|_| UiError::NotFound("No such address."))?);
    let a = users_address(&ui, &user, &instance, &id).await?;
    let associated = if a.vm.is_empty() { String::new() } else { format!(" It is associated with VM {}, which loses it.", a.vm) };
    confirm(
        &ui,
        &user,
        format!("Release address {} of {user}?", a.public_ip),
        format!(
            "Elastic IP {} ({id}) in project {} on {instance} goes back to the cloud; it may not be had again.{associated}",
            a.public_ip, a.project
        ),
        format!("/admin/users/{user}/addresses/{instance}/{id}/release"),
        "Release address",
    )
}

async fn release(ui: Ctx, path: web::Path<(String, String, String)>, _: CsrfForm) -> UiResult {
    let (name, instance, id) = path.into_inner();
    let user = user_in_path(&name)?;
    let (instance, id) = (cloud_ref(&instance)?, AllocationId::parse(&id).map_err(|_| UiError::NotFound("No such address."))?);
    let a = users_address(&ui, &user, &instance, &id).await?;
    ui.broker.provisioning.release_address(ui.actor(), &instance, &id).await?;
    Ok(ui.redirect_with(&back_to(&user), &format!("Address {} ({id}) of {user} released", a.public_ip)))
}

#[derive(Deserialize)]
pub(super) struct KeyPairRef {
    #[serde(default)]
    project: String,
    #[serde(default)]
    key: String,
}

/// Key pair `key` of `project`, when `user` made it (else not found).
async fn users_key_pair(ui: &Ctx, user: &UserName, r: &KeyPairRef) -> Result<(ProjectName, KeyPairRow), UiError> {
    let project = ProjectName::parse(&r.project).map_err(|_| UiError::NotFound("No such project."))?;
    let pairs = ui.broker.key_pairs.made_by(ui.actor(), user).await?;
    pairs
        .into_iter()
        .find(|(p, k)| p == &project && k.name == r.key)
        .map(|(p, k)| {
            (p.clone(), KeyPairRow { project: p.to_string(), name: k.name, fingerprint: k.fingerprint, created: when(&k.created_at) })
        })
        .ok_or(UiError::NotFound("No such key pair of this user."))
}

async fn confirm_delete_key_pair(ui: Ctx, name: web::Path<String>, q: web::Query<KeyPairRef>) -> UiResult {
    let user = user_in_path(&name)?;
    let (project, k) = users_key_pair(&ui, &user, &q).await?;
    confirm_with(
        &ui,
        &user,
        format!("Delete key pair {} of {user}?", k.name),
        format!(
            "Key pair {} ({}) of project {project} will be deleted: launches cannot name it any more; VMs launched with it keep it.",
            k.name, k.fingerprint
        ),
        format!("/admin/users/{user}/key-pairs/delete"),
        vec![("project", project.to_string()), ("key", k.name)],
        "Delete key pair",
    )
}

async fn delete_key_pair(ui: Ctx, name: web::Path<String>, form: CsrfForm<KeyPairRef>) -> UiResult {
    let user = user_in_path(&name)?;
    let (project, k) = users_key_pair(&ui, &user, &form).await?;
    // The admin acts in the pair's project, as the service deletes there.
    let actor = ui.broker.projects.enter(ui.actor().clone(), &project).await?;
    ui.broker.key_pairs.delete(&actor, &k.name).await?;
    Ok(ui.redirect_with(&back_to(&user), &format!("Key pair {} of {user} (project {project}) deleted", k.name)))
}
