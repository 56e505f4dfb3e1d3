//! The volumes of the current project (`/volumes`), through the same
//! provisioning service as the EC2 front's volume actions: the list over
//! every connector instance the user sees (size, type, zone, state, the VM
//! and device it is attached to, when it was made), create (instance, size,
//! zone, type, optional tags `key=value`), attach to one of the project's VMs on
//! the volume's instance with a device (its own page, a select of those
//! VMs), detach, and delete behind a confirmation page. A refusal (the
//! cloud's, a volume in use, a bad size) comes back as a form message
//! naming what was wrong, with what was typed. Viewers see the list
//! without forms (a forged form gets 403); another project's volume is
//! "not found" (admins see every project's, as in the EC2 front).

use super::confirm::{self, Confirm};
use super::context::{CsrfForm, Ctx};
use super::errors::{UiError, UiResult};
use super::form::FormErrors;
use super::resources::{in_path, instances, no_such_vm, per_instance, refused, row_refused, status_of, vm_choices, Stamp, VmChoice};
use super::{html, Chrome};
use actix_web::http::StatusCode;
use actix_web::web;
use askama::Template;
use cloudbroker_core::domain::{InstanceName, Tags, VmId, VolumeId, VolumeSize};
use cloudbroker_core::provisioning::{Volume, VolumeSpec};
use cloudbroker_core::ServiceError;
use serde::Deserialize;
use std::collections::BTreeMap;

pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/volumes", web::get().to(list))
        .route("/volumes", web::post().to(create))
        .route("/volumes/{instance}/{id}/attach", web::get().to(attach_form))
        .route("/volumes/{instance}/{id}/attach", web::post().to(attach))
        .route("/volumes/{instance}/{id}/detach", web::post().to(detach))
        .route("/volumes/{instance}/{id}/delete", web::get().to(confirm_delete))
        .route("/volumes/{instance}/{id}/delete", web::post().to(delete));
}

/// The volume types the form offers (the cloud checks them).
const TYPES: [&str; 7] = ["gp3", "gp2", "io1", "io2", "st1", "sc1", "standard"];

struct VolumeRow {
    instance: String,
    id: String,
    /// Its tags as `key=value, ...`.
    tags: String,
    size: String,
    volume_type: String,
    zone: String,
    state: String,
    /// The VM it is attached to, the device and the attachment's state.
    vm: String,
    device: String,
    attach_state: String,
    created: Stamp,
}

impl VolumeRow {
    fn of(v: Volume, now: chrono::DateTime<chrono::Utc>) -> Self {
        let (vm, device, attach_state) = match v.attachment {
            Some(a) => (a.vm.to_string(), a.device, a.state),
            None => Default::default(),
        };
        Self {
            instance: v.instance.to_string(),
            id: v.volume_id.to_string(),
            tags: v.tags.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(", "),
            size: format!("{} GiB", v.size_gib),
            volume_type: v.volume_type.unwrap_or_default(),
            zone: v.zone,
            state: v.state,
            vm,
            device,
            attach_state,
            created: Stamp::of(&v.created_at, now),
        }
    }

    fn attached(&self) -> bool {
        !self.vm.is_empty()
    }

    /// Whether it can be attached (settled and free).
    fn can_attach(&self) -> bool {
        !self.attached() && self.state == "available"
    }

    /// Whether it can be deleted (the cloud refuses while it is attached).
    fn can_delete(&self) -> bool {
        !self.attached() && self.state != "deleting"
    }
}

/// The create form as typed.
#[derive(Deserialize, Default, Clone)]
pub(super) struct CreateForm {
    #[serde(default)]
    instance: String,
    #[serde(default)]
    size: String,
    #[serde(default)]
    zone: String,
    #[serde(default)]
    volume_type: String,
    /// Tags, `key=value` one per line (or comma-separated).
    #[serde(default)]
    tags: String,
}

#[derive(Template)]
#[template(path = "volumes.html")]
struct VolumesPage {
    c: Chrome,
    volumes: Vec<VolumeRow>,
    /// Instances whose volumes could not be read just now (instance, why).
    problems: Vec<(String, String)>,
    instances: Vec<String>,
    types: Vec<String>,
    form: CreateForm,
    errors: FormErrors,
    /// Which form `errors` belong to (`create`, or `list` for an action on a row).
    which: &'static str,
}

impl VolumesPage {
    fn err(&self, field: &str) -> Option<&str> {
        if self.which == "create" {
            self.errors.of(field)
        } else {
            None
        }
    }
}

/// The volumes of the current project on every instance the user sees.
async fn rows(ui: &Ctx) -> (Vec<VolumeRow>, Vec<(String, String)>) {
    let now = ui.broker.clock.now();
    let (all, problems) = per_instance(ui, |i| async move { ui.broker.provisioning.volumes(ui.actor(), &i).await }).await;
    let mut out: Vec<VolumeRow> = all.into_iter().map(|v| VolumeRow::of(v, now)).collect();
    out.sort_by(|a, b| b.created.iso.cmp(&a.created.iso).then_with(|| a.id.cmp(&b.id)));
    (out, problems)
}

async fn render(ui: &Ctx, form: CreateForm, errors: FormErrors, which: &'static str, status: StatusCode) -> UiResult {
    let (volumes, problems) = rows(ui).await;
    let title = if ui.actor().in_personal_project() { "Volumes".to_string() } else { format!("Volumes of {}", ui.actor().project) };
    let page = VolumesPage {
        c: ui.chrome("volumes", title),
        volumes,
        problems,
        instances: instances(ui),
        types: TYPES.iter().map(|t| t.to_string()).collect(),
        form,
        errors,
        which,
    };
    Ok(html(status, &page))
}

async fn list(ui: Ctx) -> UiResult {
    let form = CreateForm { size: "8".into(), ..CreateForm::default() };
    render(&ui, form, FormErrors::none(), "", StatusCode::OK).await
}

/// The volume asked for, or every problem of the form at once.
fn spec(f: &CreateForm) -> Result<(InstanceName, VolumeSpec), FormErrors> {
    let mut errs = FormErrors::none();
    let instance = InstanceName::parse(f.instance.trim()).map_err(|_| errs.add("instance", "choose a connector instance")).ok();
    let size = VolumeSize::parse(f.size.trim()).map_err(|e| errs.add("size", e.message)).ok();
    let zone = match (f.zone.trim(), &instance) {
        ("", Some(i)) => format!("{i}a"),
        (z, _) => z.to_string(),
    };
    let volume_type = Some(f.volume_type.trim()).filter(|t| !t.is_empty()).map(str::to_string);
    let mut map = BTreeMap::new();
    for part in f.tags.split(['\n', ',']).map(str::trim).filter(|p| !p.is_empty()) {
        match part.split_once('=') {
            Some((k, v)) => {
                map.insert(k.trim().to_string(), v.trim().to_string());
            }
            None => errs.add("tags", format!("'{part}' is not key=value")),
        }
    }
    let tags = if errs.of("tags").is_some() { None } else { Tags::parse(map).map_err(|e| errs.add("tags", e.message)).ok() };
    match (instance, size, tags, errs.any()) {
        (Some(i), Some(size), Some(tags), false) => Ok((i, VolumeSpec { size, zone, volume_type, tags })),
        _ => Err(errs),
    }
}

async fn create(ui: Ctx, form: CsrfForm<CreateForm>) -> UiResult {
    let form = form.into_inner();
    let (instance, spec) = match spec(&form) {
        Ok(s) => s,
        Err(errs) => return render(&ui, form, errs, "create", StatusCode::BAD_REQUEST).await,
    };
    match ui.broker.provisioning.create_volume(ui.actor(), &instance, spec).await {
        Ok(v) => Ok(ui.redirect_with(
            "/volumes",
            &format!("Volume {} created on {instance}: {} GiB in {}, {}", v.volume_id, v.size_gib, v.zone, v.state),
        )),
        Err(e @ ServiceError::Forbidden(_)) => Err(e.into()),
        Err(e) => {
            let errs = refused(&e, &["instance", "size", "zone", "volume_type"], "No volume was created.");
            render(&ui, form, errs, "create", status_of(&e)).await
        }
    }
}

/// The instance and volume a path names (a malformed one is no volume).
fn volume_in(p: &(String, String)) -> Result<(InstanceName, VolumeId), UiError> {
    in_path(p, VolumeId::parse, "No such volume.")
}

/// The attach page: the volume, a select of the project's VMs on its instance, the device.
#[derive(Template)]
#[template(path = "volume_attach.html")]
struct AttachPage {
    c: Chrome,
    volume: VolumeRow,
    vms: Vec<VmChoice>,
    form: AttachForm,
    errors: FormErrors,
}

#[derive(Deserialize, Default, Clone)]
pub(super) struct AttachForm {
    #[serde(default)]
    vm: String,
    #[serde(default)]
    device: String,
}

async fn attach_page(
    ui: &Ctx,
    instance: &InstanceName,
    id: &VolumeId,
    form: AttachForm,
    errors: FormErrors,
    status: StatusCode,
) -> UiResult {
    let v = ui.broker.provisioning.volume(ui.actor(), instance, id).await?;
    ui.actor().require_act()?;
    let vms = vm_choices(ui, Some(instance)).await;
    let volume = VolumeRow::of(v, ui.broker.clock.now());
    let c = ui.chrome("volumes", format!("Attach volume {id}"));
    Ok(html(status, &AttachPage { c, volume, vms, form, errors }))
}

async fn attach_form(ui: Ctx, path: web::Path<(String, String)>) -> UiResult {
    let (instance, id) = volume_in(&path)?;
    let form = AttachForm { device: "/dev/sdf".into(), ..AttachForm::default() };
    attach_page(&ui, &instance, &id, form, FormErrors::none(), StatusCode::OK).await
}

async fn attach(ui: Ctx, path: web::Path<(String, String)>, form: CsrfForm<AttachForm>) -> UiResult {
    let (instance, id) = volume_in(&path)?;
    let form = form.into_inner();
    let mut errs = FormErrors::none();
    let vm = VmId::parse(form.vm.trim()).map_err(|_| errs.add("vm", "choose a VM")).ok();
    let device = form.device.trim().to_string();
    if device.is_empty() {
        errs.add("device", "give a device name, e.g. /dev/sdf");
    }
    let Some(vm) = vm.filter(|_| !errs.any()) else {
        return attach_page(&ui, &instance, &id, form, errs, StatusCode::BAD_REQUEST).await;
    };
    match ui.broker.provisioning.attach_volume(ui.actor(), &instance, &id, &vm, &device).await {
        Ok(v) => {
            let how = v.attachment.map(|a| format!("{} as {} ({})", a.vm, a.device, a.state)).unwrap_or_default();
            Ok(ui.redirect_with("/volumes", &format!("Volume {id} attached to {how}")))
        }
        Err(e @ ServiceError::Forbidden(_)) => Err(e.into()),
        // The volume itself gone: the page says so.
        Err(ServiceError::NotFound(cloudbroker_core::Resource::Volume(_))) => Err(UiError::NotFound("No such volume.")),
        Err(e) => {
            let errs = match e {
                ServiceError::NotFound(cloudbroker_core::Resource::Vm(_)) => no_such_vm(),
                _ => refused(&e, &["device"], &format!("Volume {id} was not attached.")),
            };
            attach_page(&ui, &instance, &id, form, errs, status_of(&e)).await
        }
    }
}

async fn detach(ui: Ctx, path: web::Path<(String, String)>, _: CsrfForm) -> UiResult {
    let (instance, id) = volume_in(&path)?;
    match ui.broker.provisioning.detach_volume(ui.actor(), &instance, &id, None, false).await {
        Ok(v) => Ok(ui.redirect_with("/volumes", &format!("Volume {id} detached: now {}", v.state))),
        Err(e) => {
            let (errs, status) = row_refused(e, &format!("Volume {id} was not detached"))?;
            render(&ui, CreateForm::default(), errs, "list", status).await
        }
    }
}

async fn confirm_delete(ui: Ctx, path: web::Path<(String, String)>) -> UiResult {
    let (instance, id) = volume_in(&path)?;
    let v = ui.broker.provisioning.volume(ui.actor(), &instance, &id).await?;
    ui.actor().require_act()?;
    let row = VolumeRow::of(v, ui.broker.clock.now());
    let named = if row.tags.is_empty() { String::new() } else { format!(" ({})", row.tags) };
    let mut q = Confirm::new(format!("Delete volume {id}?"), format!("/volumes/{instance}/{id}/delete"), "Delete volume", "/volumes")
        .line(format!("Volume {id}{named} on {instance}, {} in {}, is deleted in the cloud with everything on it.", row.size, row.zone));
    if row.attached() {
        q = q.line(format!("It is attached to {} as {}: the cloud refuses to delete it until it is detached.", row.vm, row.device));
    }
    Ok(confirm::page(&ui, "volumes", q))
}

async fn delete(ui: Ctx, path: web::Path<(String, String)>, _: CsrfForm) -> UiResult {
    let (instance, id) = volume_in(&path)?;
    match ui.broker.provisioning.delete_volume(ui.actor(), &instance, &id).await {
        Ok(()) => Ok(ui.redirect_with("/volumes", &format!("Volume {id} deleted"))),
        Err(e) => {
            let (errs, status) = row_refused(e, &format!("Volume {id} was not deleted"))?;
            render(&ui, CreateForm::default(), errs, "list", status).await
        }
    }
}
