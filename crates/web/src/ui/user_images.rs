//! Images for every user, through the same core services as the JSON API
//! and the EC2 front: "Create image" on a VM's page (`POST /vms/{id}/image`,
//! as `POST /api/v1/vms/{id}/image` and EC2 `CreateImage`: a private image
//! of the VM's project, its maker the owner) and the Images page
//! (`/images`): the images the user may launch (the broker's public ones,
//! the project's private ones, those shared with the user), each with its
//! owner, project, parent, the connector instances it resolves on and a
//! link to the launch form preselected; for the project's private images,
//! the users it is shared with, a form to share it with a user by name, a
//! button to stop sharing (as `/api/v1/images/{name}/launch-permissions`
//! and EC2 `ModifyImageAttribute`), and Deregister behind a confirmation
//! page. Every refusal (a bad or taken name, the VM's state, the cloud's,
//! the project's limit, an unknown user, an image that is another's
//! parent) is a form message with what was typed kept; viewers see the
//! page without its forms, and a forged form gets 403.

use super::confirm::{self, Confirm};
use super::context::{CsrfForm, Ctx};
use super::errors::{UiError, UiResult};
use super::form::{friendly, FormErrors};
use super::resources::status_of;
use super::{html, urlencode, Chrome};
use actix_web::http::StatusCode;
use actix_web::web;
use askama::Template;
use cloudbroker_core::domain::{ImageName, UserName, VmId};
use cloudbroker_core::provisioning::Vm;
use cloudbroker_core::{Resource, ServiceError};
use serde::Deserialize;

pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/images", web::get().to(list))
        .route("/images/{name}/share", web::post().to(share))
        .route("/images/{name}/unshare", web::post().to(unshare))
        .route("/images/{name}/deregister", web::get().to(confirm_deregister))
        .route("/images/{name}/deregister", web::post().to(deregister))
        .route("/vms/{id}/image", web::post().to(create));
}

/// The "Create image" form of a VM's page as typed.
#[derive(Deserialize, Default, Clone)]
pub(super) struct ImageForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    description: String,
    /// The box's value (`on`) when ticked; absent otherwise.
    #[serde(default)]
    no_reboot: Option<String>,
}

/// The "Create image" section of a VM's page.
pub(super) struct ImageSection {
    /// Whether the form is offered: the user may act in the VM's project,
    /// the VM is live with a cloud instance, and its connector is ready.
    pub shown: bool,
    /// Why not, when the user may act but the VM cannot be imaged (empty: nothing to say).
    pub note: String,
    pub name: String,
    pub description: String,
    pub no_reboot: bool,
    pub errors: FormErrors,
}

impl ImageSection {
    /// The section of `vm`'s page for `ui`'s user, filled with what was
    /// typed and its messages (`None`: an empty form).
    pub(super) fn of(ui: &Ctx, vm: &Vm, typed: Option<(ImageForm, FormErrors)>) -> Self {
        let actor = ui.actor();
        let may_act = actor.require_act().is_ok() && vm.project == actor.project;
        let ready = ui.broker.system.connectors(actor).iter().any(|i| i.name == vm.instance && i.connector.is_some());
        let live = vm.status.is_live() && vm.cloud_id.is_some();
        let (form, errors) = typed.unwrap_or_default();
        let note = match (may_act, live, ready) {
            (false, _, _) | (true, true, true) => String::new(),
            (true, false, _) => format!("An image is made of a running or stopped VM; {} is {}.", vm.id, vm.status),
            (true, true, false) => format!("Images cannot be made on {} just now: its connector is not ready.", vm.instance),
        };
        Self {
            // A refused submit keeps its form, whatever happened to the VM since.
            shown: may_act && ((live && ready) || errors.any()),
            note,
            name: form.name,
            description: form.description,
            no_reboot: form.no_reboot.is_some(),
            errors,
        }
    }

    /// The message next to `field`, if any.
    pub fn err(&self, field: &str) -> Option<&str> {
        self.errors.of(field)
    }
}

/// Makes an image of a VM from its page: post/redirect/get to the Images
/// page naming the new image (its row marked), or the VM's page again with
/// the refusal next to the field it is about.
async fn create(ui: Ctx, id: web::Path<String>, form: CsrfForm<ImageForm>) -> UiResult {
    let id = VmId::parse(&id).map_err(|_| UiError::NotFound("No such VM."))?;
    let form = form.into_inner();
    let name = match ImageName::parse(form.name.trim()) {
        Ok(n) => n,
        Err(e) => {
            let msg = match form.name.trim() {
                "" => "give the image a name of 3 to 128 characters".to_string(),
                n if n.chars().count() > 128 => "an image made from a VM has a name of 3 to 128 characters (the cloud's rule)".to_string(),
                _ => e.message,
            };
            return refused(&ui, &id, form, FormErrors::field("name", msg), StatusCode::BAD_REQUEST).await;
        }
    };
    let no_reboot = form.no_reboot.is_some();
    match ui.broker.provisioning.create_image(ui.actor(), &id, &name, form.description.trim(), no_reboot).await {
        Ok(img) => {
            let on: Vec<String> = img.mappings.iter().map(|(i, m)| format!("{i} ({})", m.image_id)).collect();
            let project = img.project.as_ref().map(ToString::to_string).unwrap_or_default();
            let msg = format!("Image {name} made from VM {id} on {}: private to project {project}", on.join(", "));
            let to = format!("/images?new={}#image-{name}", urlencode(name.as_str()));
            Ok(ui.redirect_with(&to, &msg))
        }
        Err(e @ (ServiceError::Forbidden(_) | ServiceError::NotFound(Resource::Vm(_)))) => Err(e.into()),
        Err(e) => {
            let errs = match &e {
                ServiceError::Invalid { field: Some(f), message } if *f == "name" || *f == "description" => {
                    FormErrors::field(f, message.clone())
                }
                ServiceError::Conflict(m) if m.contains("already exists") => FormErrors::field("name", format!("{m}: choose another name")),
                _ => FormErrors::general(format!("No image was made. {}", friendly(&e))),
            };
            refused(&ui, &id, form, errs, status_of(&e)).await
        }
    }
}

/// The VM's page again with the "Create image" form as typed and `errs`.
async fn refused(ui: &Ctx, id: &VmId, form: ImageForm, errs: FormErrors, status: StatusCode) -> UiResult {
    super::vms::detail_page_with(ui, id, Default::default(), FormErrors::none(), Some((form, errs)), status).await
}

/// One image of the Images page.
struct ImageRow {
    name: String,
    description: String,
    /// Who made or registered it (empty: the broker's own).
    owner: String,
    /// The project it is private to (empty: public).
    project: String,
    /// `public`, `project` (the current project's) or `shared` (shared with the user).
    kind: &'static str,
    parent: String,
    /// The connector instances it resolves on.
    on: Vec<String>,
    /// The users it is shared with (the project's private images).
    shared_with: Vec<String>,
    /// Whether it is the current project's (its members share and deregister it).
    ours: bool,
    /// Whether it was just made (the row is marked).
    new: bool,
}

impl ImageRow {
    /// The launch form preselected with this image on `instance`.
    fn launch_href(&self, instance: &str) -> String {
        format!("/vms?launch={}&image={}#launch", urlencode(instance), urlencode(&self.name))
    }
}

/// A form on one row as typed (share: the user's name).
#[derive(Deserialize, Default, Clone)]
pub(super) struct ShareForm {
    #[serde(default)]
    user: String,
}

#[derive(Template)]
#[template(path = "images.html")]
struct ImagesPage {
    c: Chrome,
    images: Vec<ImageRow>,
    /// The row whose share form `share` and `errors` are (empty: none).
    which: String,
    share: ShareForm,
    /// A row action's refusal (`general`), or the share form's (`user`).
    errors: FormErrors,
}

impl ImagesPage {
    /// The message next to the share form of image `name`, if any.
    fn share_error(&self, name: &str) -> Option<&str> {
        if self.which == name {
            self.errors.of("user")
        } else {
            None
        }
    }

    /// What the share form of image `name` holds (what was typed, after a refusal).
    fn typed(&self, name: &str) -> &str {
        if self.which == name {
            &self.share.user
        } else {
            ""
        }
    }
}

#[derive(Deserialize, Default)]
pub(super) struct ListQuery {
    /// An image just made (its row is marked).
    #[serde(default)]
    new: String,
}

async fn render(ui: &Ctx, new: &str, which: String, share: ShareForm, errors: FormErrors, status: StatusCode) -> UiResult {
    let actor = ui.actor();
    let images = ui
        .broker
        .images
        .launchable_by(actor)
        .await?
        .into_iter()
        .map(|l| {
            let i = l.image;
            let ours = i.project.as_ref() == Some(&actor.project);
            let kind = match &i.project {
                None => "public",
                Some(_) if ours => "project",
                Some(_) => "shared",
            };
            ImageRow {
                new: i.name.as_str() == new,
                name: i.name.to_string(),
                description: i.description,
                owner: i.owner.map(|o| o.to_string()).unwrap_or_default(),
                project: i.project.map(|p| p.to_string()).unwrap_or_default(),
                kind,
                parent: i.parent.map(|p| p.to_string()).unwrap_or_default(),
                on: l.on.keys().map(ToString::to_string).collect(),
                shared_with: if ours { i.shared_with.iter().map(ToString::to_string).collect() } else { Vec::new() },
                ours,
            }
        })
        .collect();
    let title = if actor.in_personal_project() { "Images".to_string() } else { format!("Images of {}", actor.project) };
    Ok(html(status, &ImagesPage { c: ui.chrome("images", title), images, which, share, errors }))
}

async fn list(ui: Ctx, q: web::Query<ListQuery>) -> UiResult {
    render(&ui, &q.new, String::new(), ShareForm::default(), FormErrors::none(), StatusCode::OK).await
}

fn image_in_path(s: &str) -> Result<ImageName, UiError> {
    ImageName::parse(s).map_err(|_| UiError::NotFound("No such image."))
}

/// Shares a private image of the project with a user named in the form.
async fn share(ui: Ctx, name: web::Path<String>, form: CsrfForm<ShareForm>) -> UiResult {
    let name = image_in_path(&name)?;
    let form = form.into_inner();
    let typed = form.user.trim().to_string();
    let refuse = |msg: String, status| render(&ui, "", name.to_string(), form.clone(), FormErrors::field("user", msg), status);
    if typed.is_empty() {
        return refuse("give the name of the user to share it with".into(), StatusCode::BAD_REQUEST).await;
    }
    let Ok(user) = UserName::parse(&typed) else {
        return refuse(format!("there is no user named '{typed}'"), StatusCode::NOT_FOUND).await;
    };
    match ui.broker.provisioning.share_image(ui.actor(), &name, std::slice::from_ref(&user), &[]).await {
        Ok(_) => Ok(ui.redirect_with(
            &format!("/images#image-{name}"),
            &format!("Image {name} is shared with {user}: they see it on their Images page and launch it"),
        )),
        Err(ServiceError::NotFound(Resource::User(_))) => refuse(format!("there is no user named '{user}'"), StatusCode::NOT_FOUND).await,
        Err(e @ (ServiceError::Forbidden(_) | ServiceError::NotFound(_))) => Err(e.into()),
        Err(e) => {
            let status = status_of(&e);
            refuse(format!("{name} was not shared. {}", friendly(&e)), status).await
        }
    }
}

/// Stops sharing a private image of the project with the user of the form.
async fn unshare(ui: Ctx, name: web::Path<String>, form: CsrfForm<ShareForm>) -> UiResult {
    let name = image_in_path(&name)?;
    let user = UserName::parse(form.user.trim()).map_err(|_| UiError::NotFound("No such user."))?;
    match ui.broker.provisioning.share_image(ui.actor(), &name, &[], std::slice::from_ref(&user)).await {
        Ok(_) => Ok(ui.redirect_with(
            &format!("/images#image-{name}"),
            &format!("Image {name} is no longer shared with {user}: they can no longer see or launch it"),
        )),
        Err(e @ (ServiceError::Forbidden(_) | ServiceError::NotFound(_))) => Err(e.into()),
        Err(e) => {
            let errs = FormErrors::general(format!("Image {name} is still shared with {user}. {}", friendly(&e)));
            render(&ui, "", String::new(), ShareForm::default(), errs, status_of(&e)).await
        }
    }
}

/// The project's private image `name` for one who may change it (another
/// project's image, or a public one, is no image of this page).
async fn ours(ui: &Ctx, name: &ImageName) -> Result<cloudbroker_core::images::ImageView, UiError> {
    let img = ui.broker.images.get_for(ui.actor(), name).await?;
    if img.project.as_ref() != Some(&ui.actor().project) {
        if img.project.is_some() {
            return Err(
                ServiceError::Forbidden(format!("image '{name}' is shared with you: only its project's members deregister it")).into()
            );
        }
        return Err(UiError::NotFound("No such image of your project."));
    }
    ui.actor().require_act()?;
    Ok(img)
}

async fn confirm_deregister(ui: Ctx, name: web::Path<String>) -> UiResult {
    let name = image_in_path(&name)?;
    let img = ours(&ui, &name).await?;
    let on: Vec<String> = img.mappings.iter().map(|(i, m)| format!("{} on {i}", m.image_id)).collect();
    let mut q = Confirm::new(format!("Deregister image {name}?"), format!("/images/{name}/deregister"), "Deregister image", "/images")
        .line(format!(
            "Image {name} is removed from the broker: new launches can no longer name it, and the users it is shared with lose it. \
             VMs launched from it keep running."
        ))
        .line(format!("When the broker made it from a VM, the cloud's image behind it ({}) is deregistered too.", on.join(", ")));
    if let Err(ServiceError::Conflict(why)) = ui.broker.images.check_deregister(ui.actor(), &name).await {
        q = q.line(format!("The broker refuses for now: {why}. Deregister those first."));
    }
    Ok(confirm::page(&ui, "images", q))
}

async fn deregister(ui: Ctx, name: web::Path<String>, _: CsrfForm) -> UiResult {
    let name = image_in_path(&name)?;
    match ui.broker.provisioning.deregister_image(ui.actor(), &name).await {
        Ok(()) => Ok(ui.redirect_with("/images", &format!("Image {name} deregistered"))),
        Err(e @ (ServiceError::Forbidden(_) | ServiceError::NotFound(_))) => Err(e.into()),
        Err(e) => {
            let why = match &e {
                ServiceError::Conflict(m) if m.contains("is the parent of") => {
                    format!("{m}: deregister the images made from it first")
                }
                _ => friendly(&e),
            };
            let errs = FormErrors::general(format!("Image {name} was not deregistered. {why}"));
            render(&ui, "", String::new(), ShareForm::default(), errs, status_of(&e)).await
        }
    }
}
