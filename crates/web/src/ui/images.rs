//! Native images (admin): list, create, edit, delete. Per connector
//! instance: the cloud image id (*Cloud Image Identifiers and Image
//! Hierarchy*), the default instance type and security group (*Cloud
//! Configuration*), and the effective id with the image it is inherited
//! from; ids from `connectors.d/images/` are read-only with their file:line.
//! A missing parent or a cycle comes back next to the parent field.
//!
//! Saving checks the cloud side ([`cloudbroker_core::image_checks`]): each
//! cloud image id typed here and each default instance type is looked up on
//! the instance's cloud with the admin's credential or a shared one. A
//! missing id or an unknown type is an error next to its field naming the
//! instance and the value, everything typed kept; *save anyway* (a
//! checkbox, offered once a check refused) saves regardless and the flash
//! says what was not confirmed. What could not be asked (no credential, an
//! unreachable cloud) never blocks: it is said as "not checked: <reason>".
//! The form offers the instance types each cloud lists (a `<datalist>`).

use super::context::{CsrfForm, Ctx};
use super::errors::{UiError, UiResult};
use super::form::FormErrors;
use super::{html, Chrome};
use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use askama::Template;
use cloudbroker_core::domain::{ImageName, InstanceName};
use cloudbroker_core::image_checks::{self, Verdict};
use cloudbroker_core::images::{ImageMapping, ImageSpec, ImageView};
use std::collections::BTreeMap;

pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/images", web::get().to(list))
        .route("/images", web::post().to(create))
        .route("/images/new", web::get().to(new_form))
        .route("/images/{name}", web::get().to(edit_form))
        .route("/images/{name}", web::post().to(update))
        .route("/images/{name}/delete", web::post().to(delete));
}

struct ImageRow {
    name: String,
    description: String,
    os: String,
    parent: String,
    ids: String,
    /// Who registered it through the EC2 front (private to them); empty for public images.
    owner: String,
}

#[derive(Template)]
#[template(path = "admin_images.html")]
struct ListPage {
    c: Chrome,
    rows: Vec<ImageRow>,
}

async fn list(ui: Ctx) -> UiResult {
    let images = ui.broker.images.list().await?;
    let rows = images
        .into_iter()
        .map(|i| ImageRow {
            ids: i.mappings.iter().map(|(inst, m)| format!("{inst}: {}", m.image_id)).collect::<Vec<_>>().join(", "),
            name: i.name.to_string(),
            description: i.description,
            os: i.os,
            parent: i.parent.map(|p| p.to_string()).unwrap_or_default(),
            owner: i.owner.map(|o| o.to_string()).unwrap_or_default(),
        })
        .collect();
    Ok(html(StatusCode::OK, &ListPage { c: ui.chrome("admin/images", "Native images"), rows }))
}

/// One instance's part of the form.
struct InstanceFields {
    instance: String,
    image_id: String,
    instance_type: String,
    security_group: String,
    /// `file:line` when a file sets the id (read-only).
    file: String,
    /// The effective id and where it comes from.
    effective: String,
    /// The instance types the cloud lists (offered as a `<datalist>`).
    types: Vec<String>,
    /// `not checked: <reason>` when the cloud cannot be asked; empty otherwise.
    check: String,
}

impl InstanceFields {
    /// The `id` of this row's `<datalist>` (instance names are `[a-z0-9-]`).
    fn types_id(&self) -> String {
        format!("types-{}", self.instance)
    }
}

#[derive(Template)]
#[template(path = "admin_image_form.html")]
struct FormPage {
    c: Chrome,
    /// Editing an existing image (its name is fixed).
    editing: bool,
    name: String,
    description: String,
    os: String,
    parent: String,
    parents: Vec<String>,
    instances: Vec<InstanceFields>,
    errors: FormErrors,
    /// Offer *save anyway* (a cloud check refused this save).
    offer_anyway: bool,
}

impl FormPage {
    fn id_error(&self, instance: &str) -> Option<&str> {
        self.errors.of(&format!("id.{instance}"))
    }

    fn type_error(&self, instance: &str) -> Option<&str> {
        self.errors.of(&format!("type.{instance}"))
    }
}

/// How long the form waits for a cloud's list of instance types.
const TYPES_WAIT: std::time::Duration = image_checks::CHECK_TIMEOUT;

async fn form_page(ui: &Ctx, typed: Option<&BTreeMap<String, String>>, current: Option<ImageView>, errs: FormErrors) -> HttpResponse {
    form_page_with(ui, typed, current, errs, false).await
}

async fn form_page_with(
    ui: &Ctx,
    typed: Option<&BTreeMap<String, String>>,
    current: Option<ImageView>,
    errs: FormErrors,
    offer_anyway: bool,
) -> HttpResponse {
    let broker = &ui.broker;
    // Every instance's list of types, asked at once.
    let connectors = broker.system.connectors(ui.actor());
    let lists =
        futures::future::join_all(connectors.iter().map(|i| image_checks::instance_types(broker, ui.actor(), &i.name, TYPES_WAIT))).await;
    let catalogue = broker.images.catalogue().await.ok();
    let images = catalogue.as_ref().map(|c| c.images().to_vec()).unwrap_or_default();
    let editing = current.is_some();
    let cur = current.clone();
    let get = |k: &str, stored: String| typed.and_then(|t| t.get(k).cloned()).unwrap_or(stored);
    let name = get("name", cur.as_ref().map(|i| i.name.to_string()).unwrap_or_default());
    let mut instances = Vec::new();
    for (i, listed) in connectors.iter().zip(lists) {
        let inst = i.name.to_string();
        let (types, check) = match listed {
            Ok(t) => (t.into_iter().map(|t| t.name).collect(), String::new()),
            Err(why) => (Vec::new(), format!("not checked: {why}")),
        };
        let m = cur.as_ref().and_then(|c| c.mappings.get(&inst).cloned());
        let file = cur.as_ref().and_then(|c| c.file_mappings.get(&inst).cloned()).unwrap_or_default();
        let effective = match (&cur, ImageName::parse(&name)) {
            (Some(_), Ok(n)) => match catalogue.as_ref().map(|c| c.resolve(&n, &i.name)) {
                Some(Ok(r)) if r.from_image == name => format!("{} (this image)", r.image_id),
                Some(Ok(r)) => format!("{} (inherited from {})", r.image_id, r.from_image),
                _ => "none: launches of this image on this instance fail".into(),
            },
            _ => String::new(),
        };
        instances.push(InstanceFields {
            image_id: if file.is_empty() {
                get(&format!("id.{inst}"), m.as_ref().map(|m| m.image_id.clone()).unwrap_or_default())
            } else {
                m.as_ref().map(|m| m.image_id.clone()).unwrap_or_default()
            },
            instance_type: get(&format!("type.{inst}"), m.as_ref().and_then(|m| m.instance_type.clone()).unwrap_or_default()),
            security_group: get(&format!("sg.{inst}"), m.as_ref().and_then(|m| m.security_group.clone()).unwrap_or_default()),
            file,
            effective,
            types,
            check,
            instance: inst,
        });
    }
    let page = FormPage {
        c: ui.chrome("admin/images", if editing { format!("Image {name}") } else { "New image".into() }),
        editing,
        parents: images.iter().map(|i| i.name.to_string()).filter(|n| n != &name).collect(),
        description: get("description", cur.as_ref().map(|i| i.description.clone()).unwrap_or_default()),
        os: get("os", cur.as_ref().map(|i| i.os.clone()).unwrap_or_default()),
        parent: get("parent", cur.as_ref().and_then(|i| i.parent.as_ref().map(|p| p.to_string())).unwrap_or_default()),
        name,
        instances,
        errors: errs,
        offer_anyway,
    };
    html(page.errors.status(), &page)
}

async fn new_form(ui: Ctx) -> HttpResponse {
    form_page(&ui, None, None, FormErrors::none()).await
}

fn image_in_path(s: &str) -> Result<ImageName, UiError> {
    ImageName::parse(s).map_err(|_| UiError::NotFound("No such image."))
}

async fn edit_form(ui: Ctx, name: web::Path<String>) -> UiResult {
    let name = image_in_path(&name)?;
    let v = ui.broker.images.get(&name).await?;
    Ok(form_page(&ui, None, Some(v), FormErrors::none()).await)
}

/// The image the form describes, or the messages saying what is wrong.
fn spec_of(f: &BTreeMap<String, String>, ui: &Ctx, current: Option<&ImageView>) -> Result<ImageSpec, FormErrors> {
    let v = |k: &str| f.get(k).map(|s| s.trim().to_string()).unwrap_or_default();
    let name = ImageName::parse(&v("name")).map_err(|e| FormErrors::field("name", e.message))?;
    let parent = match v("parent").as_str() {
        "" => None,
        p => Some(ImageName::parse(p).map_err(|e| FormErrors::field("parent", e.message))?),
    };
    let mut mappings = BTreeMap::new();
    for i in ui.broker.system.connectors(ui.actor()) {
        let inst = i.name.to_string();
        let file_id = current.and_then(|c| c.file_mappings.get(&inst).and(c.mappings.get(&inst))).map(|m| m.image_id.clone());
        let id = file_id.clone().unwrap_or_else(|| v(&format!("id.{inst}")));
        let ty = v(&format!("type.{inst}"));
        let sg = v(&format!("sg.{inst}"));
        if id.is_empty() {
            if !ty.is_empty() || !sg.is_empty() {
                return Err(FormErrors::field(
                    &format!("id.{inst}"),
                    "give the cloud image id for this instance, or clear its type and group",
                ));
            }
            continue;
        }
        if id.len() > 255 || !id.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(FormErrors::field(&format!("id.{inst}"), "an image id is 1-255 printable characters without spaces"));
        }
        if file_id.is_some() && ty.is_empty() && sg.is_empty() {
            continue; // the file sets the id; nothing of ours to store
        }
        let inst_name = InstanceName::parse(&inst).map_err(|e| FormErrors::general(e.to_string()))?;
        mappings.insert(
            inst_name,
            ImageMapping { image_id: id, instance_type: (!ty.is_empty()).then_some(ty), security_group: (!sg.is_empty()).then_some(sg) },
        );
    }
    Ok(ImageSpec { name, description: v("description"), os: v("os"), parent, mappings })
}

/// The form's fields by name (the last of a repeated one).
type Fields = BTreeMap<String, String>;

async fn save(ui: &Ctx, mut typed: Fields, current: Option<ImageView>) -> HttpResponse {
    if let Some(c) = &current {
        typed.insert("name".into(), c.name.to_string());
    }
    let spec = match spec_of(&typed, ui, current.as_ref()) {
        Ok(s) => s,
        Err(errs) => return form_page(ui, Some(&typed), current, errs).await,
    };
    let name = spec.name.to_string();
    let anyway = typed.get("save_anyway").is_some_and(|v| !v.is_empty());
    let (errs, notes) = cloud_check(ui, &spec, current.as_ref(), anyway).await;
    if errs.any() {
        return form_page_with(ui, Some(&typed), current, errs, true).await;
    }
    match ui.broker.images.put(ui.actor(), spec, current.is_none()).await {
        Ok(_) => {
            let mut msg = format!("Image {name} saved");
            if !notes.is_empty() {
                msg.push_str(&format!("; {}", notes.join("; ")));
            }
            ui.redirect_with(&format!("/admin/images/{name}"), &msg)
        }
        Err(e) => {
            let errs = FormErrors::from_service(&e, &["name", "parent", "description"]);
            form_page(ui, Some(&typed), current, errs).await
        }
    }
}

/// Whether an image save's flash says something was not confirmed by the cloud (shown amber).
pub(super) fn flash_is_warning(m: &str) -> bool {
    m.starts_with("Image ") && (m.contains(" not checked: ") || m.contains("saved anyway: "))
}

/// Checks on each instance's cloud the image ids typed here (a file's id is
/// the operator's) and the default types: the refusals as field errors
/// (none with `anyway`), and what the flash should say besides (values
/// not checked and why; values saved although the cloud lacks them).
async fn cloud_check(ui: &Ctx, spec: &ImageSpec, current: Option<&ImageView>, anyway: bool) -> (FormErrors, Vec<String>) {
    let (broker, actor) = (&ui.broker, ui.actor());
    let asks = spec.mappings.iter().map(|(inst, m)| {
        let from_file = current.is_some_and(|c| c.file_mappings.contains_key(inst.as_str()));
        let id = (!from_file).then_some(m.image_id.as_str());
        let ty = m.instance_type.as_deref();
        async move { (inst, id, ty, image_checks::check(broker, actor, inst, id, ty).await) }
    });
    let mut errs = FormErrors::none();
    let mut notes = Vec::new();
    for (inst, id, ty, c) in futures::future::join_all(asks).await {
        let with = if c.asked_with.is_empty() { String::new() } else { format!(" (asked with {})", c.asked_with) };
        if let (Some(id), Some(v)) = (id, &c.image) {
            match v {
                Verdict::Found => {}
                Verdict::Missing if anyway => notes.push(format!("saved anyway: the cloud behind {inst} has no image {id}")),
                Verdict::Missing => errs
                    .add(&format!("id.{inst}"), format!("{inst}: the cloud has no image {id}{with}; correct it, or tick \"save anyway\"")),
                Verdict::NotChecked(why) => notes.push(format!("image {id} on {inst} not checked: {why}")),
            }
        }
        if let (Some(ty), Some(v)) = (ty, &c.instance_type) {
            match v {
                Verdict::Found => {}
                Verdict::Missing if anyway => notes.push(format!("saved anyway: the cloud behind {inst} does not offer the type {ty}")),
                Verdict::Missing => errs.add(
                    &format!("type.{inst}"),
                    format!("{inst}: the cloud does not offer the instance type {ty}{with}; pick one it lists, or tick \"save anyway\""),
                ),
                Verdict::NotChecked(why) => notes.push(format!("type {ty} on {inst} not checked: {why}")),
            }
        }
    }
    if errs.any() {
        errs.general = Some("Nothing was saved: the cloud lacks what is marked below. Everything typed is kept.".into());
    }
    (errs, notes)
}

async fn create(ui: Ctx, form: CsrfForm<Fields>) -> HttpResponse {
    save(&ui, form.into_inner(), None).await
}

async fn update(ui: Ctx, name: web::Path<String>, form: CsrfForm<Fields>) -> UiResult {
    let name = image_in_path(&name)?;
    let v = ui.broker.images.get(&name).await?;
    Ok(save(&ui, form.into_inner(), Some(v)).await)
}

async fn delete(ui: Ctx, name: web::Path<String>, _: CsrfForm) -> UiResult {
    let name = image_in_path(&name)?;
    ui.broker.images.delete(ui.actor(), &name).await?;
    Ok(ui.redirect_with("/admin/images", &format!("Image {name} deleted")))
}
