//! The Elastic IP addresses of the current project (`/addresses`), through
//! the same provisioning service as the EC2 front's address actions: the
//! list over every connector instance the user sees (public IP, the VM it
//! is associated with, when it was allocated), allocate (on an instance),
//! associate with one of the project's VMs on the address's instance (its
//! own page, a select of those VMs), disassociate, and release behind a
//! confirmation page. A refusal (the cloud's, an address in use) comes back
//! as a form message naming what was wrong, with what was chosen kept.
//! Viewers see the list without forms (a forged form gets 403); another
//! project's address is "not found" (admins see every project's).

use super::confirm::{self, Confirm};
use super::context::{CsrfForm, Ctx};
use super::errors::{UiError, UiResult};
use super::form::{friendly, FormErrors};
use super::resources::{in_path, instances, no_such_vm, per_instance, refused, row_refused, status_of, vm_choices, Stamp, VmChoice};
use super::{html, Chrome};
use actix_web::http::StatusCode;
use actix_web::web;
use askama::Template;
use cloudbroker_core::domain::{AllocationId, InstanceName, VmId};
use cloudbroker_core::provisioning::Address;
use cloudbroker_core::{Resource, ServiceError};
use serde::Deserialize;

pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/addresses", web::get().to(list))
        .route("/addresses", web::post().to(allocate))
        .route("/addresses/{instance}/{id}/associate", web::get().to(associate_form))
        .route("/addresses/{instance}/{id}/associate", web::post().to(associate))
        .route("/addresses/{instance}/{id}/disassociate", web::post().to(disassociate))
        .route("/addresses/{instance}/{id}/release", web::get().to(confirm_release))
        .route("/addresses/{instance}/{id}/release", web::post().to(release));
}

struct AddressRow {
    instance: String,
    id: String,
    public_ip: String,
    /// The VM it is associated with (empty: none) and its private address.
    vm: String,
    private_ip: String,
    created: Stamp,
}

impl AddressRow {
    fn of(a: Address, now: chrono::DateTime<chrono::Utc>) -> Self {
        Self {
            instance: a.instance.to_string(),
            id: a.allocation_id.to_string(),
            public_ip: a.public_ip,
            vm: a.vm.map(|v| v.to_string()).unwrap_or_default(),
            private_ip: a.private_ip.unwrap_or_default(),
            created: Stamp::of(&a.created_at, now),
        }
    }

    fn associated(&self) -> bool {
        !self.vm.is_empty()
    }
}

/// The allocate form as chosen.
#[derive(Deserialize, Default, Clone)]
pub(super) struct AllocateForm {
    #[serde(default)]
    instance: String,
}

#[derive(Template)]
#[template(path = "addresses.html")]
struct AddressesPage {
    c: Chrome,
    addresses: Vec<AddressRow>,
    /// Instances whose addresses could not be read just now (instance, why).
    problems: Vec<(String, String)>,
    instances: Vec<String>,
    form: AllocateForm,
    errors: FormErrors,
    /// Which form `errors` belong to (`allocate`, or `list` for an action on a row).
    which: &'static str,
}

/// The addresses of the current project on every instance the user sees.
async fn rows(ui: &Ctx) -> (Vec<AddressRow>, Vec<(String, String)>) {
    let now = ui.broker.clock.now();
    let (all, problems) = per_instance(ui, |i| async move { ui.broker.provisioning.addresses(ui.actor(), &i).await }).await;
    let mut out: Vec<AddressRow> = all.into_iter().map(|a| AddressRow::of(a, now)).collect();
    out.sort_by(|a, b| b.created.iso.cmp(&a.created.iso).then_with(|| a.id.cmp(&b.id)));
    (out, problems)
}

async fn render(ui: &Ctx, form: AllocateForm, errors: FormErrors, which: &'static str, status: StatusCode) -> UiResult {
    let (addresses, problems) = rows(ui).await;
    let title = if ui.actor().in_personal_project() { "Elastic IPs".to_string() } else { format!("Elastic IPs of {}", ui.actor().project) };
    let page = AddressesPage { c: ui.chrome("addresses", title), addresses, problems, instances: instances(ui), form, errors, which };
    Ok(html(status, &page))
}

async fn list(ui: Ctx) -> UiResult {
    render(&ui, AllocateForm::default(), FormErrors::none(), "", StatusCode::OK).await
}

async fn allocate(ui: Ctx, form: CsrfForm<AllocateForm>) -> UiResult {
    let form = form.into_inner();
    let Ok(instance) = InstanceName::parse(form.instance.trim()) else {
        let errs = FormErrors::field("instance", "choose a connector instance");
        return render(&ui, form, errs, "allocate", StatusCode::BAD_REQUEST).await;
    };
    match ui.broker.provisioning.allocate_address(ui.actor(), &instance).await {
        Ok(a) => Ok(ui.redirect_with("/addresses", &format!("Address {} allocated on {instance}: {}", a.public_ip, a.allocation_id))),
        Err(e @ ServiceError::Forbidden(_)) => Err(e.into()),
        Err(e) => render(&ui, form, refused(&e, &["instance"], "No address was allocated."), "allocate", status_of(&e)).await,
    }
}

/// The instance and address a path names (a malformed one is no address).
fn address_in(p: &(String, String)) -> Result<(InstanceName, AllocationId), UiError> {
    in_path(p, AllocationId::parse, "No such address.")
}

/// The associate page: the address and a select of the project's VMs on its instance.
#[derive(Template)]
#[template(path = "address_associate.html")]
struct AssociatePage {
    c: Chrome,
    address: AddressRow,
    vms: Vec<VmChoice>,
    form: AssociateForm,
    errors: FormErrors,
}

#[derive(Deserialize, Default, Clone)]
pub(super) struct AssociateForm {
    #[serde(default)]
    vm: String,
}

async fn associate_page(
    ui: &Ctx,
    instance: &InstanceName,
    id: &AllocationId,
    form: AssociateForm,
    errors: FormErrors,
    status: StatusCode,
) -> UiResult {
    let a = ui.broker.provisioning.address(ui.actor(), instance, id).await?;
    ui.actor().require_act()?;
    let vms = vm_choices(ui, Some(instance)).await;
    let address = AddressRow::of(a, ui.broker.clock.now());
    let c = ui.chrome("addresses", format!("Associate address {}", address.public_ip));
    Ok(html(status, &AssociatePage { c, address, vms, form, errors }))
}

async fn associate_form(ui: Ctx, path: web::Path<(String, String)>) -> UiResult {
    let (instance, id) = address_in(&path)?;
    associate_page(&ui, &instance, &id, AssociateForm::default(), FormErrors::none(), StatusCode::OK).await
}

async fn associate(ui: Ctx, path: web::Path<(String, String)>, form: CsrfForm<AssociateForm>) -> UiResult {
    let (instance, id) = address_in(&path)?;
    let form = form.into_inner();
    let Ok(vm) = VmId::parse(form.vm.trim()) else {
        let errs = FormErrors::field("vm", "choose a VM");
        return associate_page(&ui, &instance, &id, form, errs, StatusCode::BAD_REQUEST).await;
    };
    match ui.broker.provisioning.associate_address(ui.actor(), &instance, &id, &vm).await {
        Ok(a) => Ok(ui.redirect_with("/addresses", &format!("Address {} associated with {vm}", a.public_ip))),
        Err(e @ ServiceError::Forbidden(_)) => Err(e.into()),
        Err(ServiceError::NotFound(Resource::Address(_))) => Err(UiError::NotFound("No such address.")),
        Err(e) => {
            let errs = match e {
                ServiceError::NotFound(Resource::Vm(_)) => no_such_vm(),
                _ => FormErrors::general(format!("Address {id} was not associated. {}", friendly(&e))),
            };
            associate_page(&ui, &instance, &id, form, errs, status_of(&e)).await
        }
    }
}

async fn disassociate(ui: Ctx, path: web::Path<(String, String)>, _: CsrfForm) -> UiResult {
    let (instance, id) = address_in(&path)?;
    match ui.broker.provisioning.disassociate_address(ui.actor(), &instance, &id).await {
        Ok(a) => Ok(ui.redirect_with("/addresses", &format!("Address {} disassociated", a.public_ip))),
        Err(e) => {
            let (errs, status) = row_refused(e, &format!("Address {id} was not disassociated"))?;
            render(&ui, AllocateForm::default(), errs, "list", status).await
        }
    }
}

async fn confirm_release(ui: Ctx, path: web::Path<(String, String)>) -> UiResult {
    let (instance, id) = address_in(&path)?;
    let a = ui.broker.provisioning.address(ui.actor(), &instance, &id).await?;
    ui.actor().require_act()?;
    let row = AddressRow::of(a, ui.broker.clock.now());
    let mut q = Confirm::new(
        format!("Release address {}?", row.public_ip),
        format!("/addresses/{instance}/{id}/release"),
        "Release address",
        "/addresses",
    )
    .line(format!(
        "Address {} ({id}) on {instance} goes back to the cloud; the project may not get the same address again.",
        row.public_ip
    ));
    if row.associated() {
        q = q.line(format!("It is associated with {}: the cloud refuses to release it until it is disassociated.", row.vm));
    }
    Ok(confirm::page(&ui, "addresses", q))
}

async fn release(ui: Ctx, path: web::Path<(String, String)>, _: CsrfForm) -> UiResult {
    let (instance, id) = address_in(&path)?;
    match ui.broker.provisioning.release_address(ui.actor(), &instance, &id).await {
        Ok(()) => Ok(ui.redirect_with("/addresses", &format!("Address {id} released"))),
        Err(e) => {
            let (errs, status) = row_refused(e, &format!("Address {id} was not released"))?;
            render(&ui, AllocateForm::default(), errs, "list", status).await
        }
    }
}
