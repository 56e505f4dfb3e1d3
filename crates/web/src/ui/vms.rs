//! The user's VMs: the list (filters by instance and state, keyset pages
//! that stay fast however many VMs there are, auto-refresh while something
//! is pending), the launch form (with the user's quota usage per instance)
//! and start / stop / reboot / terminate (terminate asks for confirmation
//! on its own page, so it works without JavaScript).

use super::form::{age, friendly, FormErrors};
use super::session::{csrf_ok, csrf_refused, SignedIn};
use super::{errors, html, page, redirect_with, urlencode, Chrome};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use cloudbroker_core::domain::{ImageRef, InstanceName, PageRequest, Tags, VmAction, VmId, VmStatus};
use cloudbroker_core::images::ImageView;
use cloudbroker_core::provisioning::{LaunchSpec, Vm, VmQuery};
use cloudbroker_core::{Broker, ServiceError};
use serde::Deserialize;
use std::collections::BTreeMap;

pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/vms", web::get().to(list))
        .route("/vms", web::post().to(launch))
        .route("/vms/{id}/terminate", web::get().to(confirm_terminate))
        .route("/vms/{id}/{action}", web::post().to(act));
}

/// VMs per page of the list.
const PAGE: u32 = 25;

struct VmRow {
    id: String,
    name: String,
    state: String,
    address: String,
    image: String,
    instance: String,
    instance_type: String,
    age: String,
    error: String,
    can_start: bool,
    can_stop: bool,
    can_terminate: bool,
}

impl From<Vm> for VmRow {
    fn from(v: Vm) -> Self {
        let s = v.status;
        Self {
            id: v.id.to_string(),
            name: v.name,
            state: s.as_str().into(),
            address: v.address.unwrap_or_default(),
            image: v.image,
            instance: v.instance.to_string(),
            instance_type: v.instance_type,
            age: age(&v.created_at),
            error: v.error.unwrap_or_default(),
            can_start: s == VmStatus::Stopped,
            can_stop: s == VmStatus::Running,
            can_terminate: s.is_live(),
        }
    }
}

/// The launch form's fields as typed.
#[derive(Deserialize, Default, Clone)]
pub(super) struct LaunchForm {
    csrf: Option<String>,
    #[serde(default)]
    instance: String,
    #[serde(default)]
    image: String,
    #[serde(default)]
    instance_type: String,
    #[serde(default)]
    count: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    tags: String,
}

struct QuotaRow {
    instance: String,
    text: String,
}

#[derive(Template)]
#[template(path = "vms.html")]
struct VmsPage {
    c: Chrome,
    vms: Vec<VmRow>,
    instances: Vec<String>,
    /// (name, label, default instance type per instance as `inst=type;...`).
    images: Vec<(String, String, String)>,
    states: Vec<String>,
    filter_instance: String,
    filter_state: String,
    next: Option<String>,
    paged: bool,
    quotas: Vec<QuotaRow>,
    form: LaunchForm,
    errors: FormErrors,
}

#[derive(Deserialize)]
pub(super) struct ListQuery {
    instance: Option<String>,
    state: Option<String>,
    cursor: Option<String>,
}

async fn render(req: &HttpRequest, me: &SignedIn, broker: &Broker, q: ListQuery, form: LaunchForm, errs: FormErrors) -> HttpResponse {
    let actor = &me.session.actor;
    let filter_instance = q.instance.unwrap_or_default();
    let filter_state = q.state.unwrap_or_default();
    let mut query = VmQuery { user: Some(actor.name.clone()), ..VmQuery::default() };
    if !filter_instance.is_empty() {
        match InstanceName::parse(&filter_instance) {
            Ok(i) => query.instance = Some(i),
            Err(e) => return errors::service_error_page(req, &ServiceError::invalid_field("instance", e.to_string())),
        }
    }
    if !filter_state.is_empty() {
        match VmStatus::parse(&filter_state) {
            Ok(s) => query.status = Some(s),
            Err(e) => return errors::service_error_page(req, &e.into()),
        }
    }
    let paged = q.cursor.as_deref().is_some_and(|c| !c.is_empty());
    let page_req = match PageRequest::parse(Some(&PAGE.to_string()), q.cursor.as_deref()) {
        Ok(p) => p,
        Err(e) => return errors::service_error_page(req, &e.into()),
    };
    let p = match broker.provisioning.list(actor, query, page_req).await {
        Ok(p) => p,
        Err(e) => return errors::service_error_page(req, &e),
    };
    let pending = p.items.iter().any(|v| v.status.is_transitional() || v.status == VmStatus::Requested);
    let next = p
        .next_cursor
        .map(|cur| format!("/vms?instance={}&state={}&cursor={}", urlencode(&filter_instance), urlencode(&filter_state), urlencode(&cur)));
    let instances: Vec<String> = broker.system.connectors(actor).iter().map(|i| i.name.to_string()).collect();
    let all = broker.images.list().await.unwrap_or_default();
    let images = all
        .iter()
        // A launch acts as its user: only public images and the user's own registered ones.
        .filter(|i| i.owned_by_or_public(&actor.name))
        .map(|i| {
            let label = if i.description.is_empty() { i.name.to_string() } else { format!("{} — {}", i.name, i.description) };
            (i.name.to_string(), label, default_types(&all, i, &instances))
        })
        .collect();
    let quotas = broker
        .provisioning
        .quotas(actor, &actor.name)
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|q| QuotaRow {
            instance: q.instance.to_string(),
            text: if q.enforced {
                format!("{} of {} VMs used ({} left)", q.usage, q.limit, (q.limit - q.usage).max(0))
            } else {
                format!("{} VMs (quotas are off)", q.usage)
            },
        })
        .collect();
    let mut c = Chrome::new(me, "vms", "VMs");
    c.refresh = pending && !errs.any();
    let status = errs.status();
    let status = match errs.general.as_deref() {
        Some(m) if m.starts_with("Over quota") => StatusCode::CONFLICT,
        _ => status,
    };
    html(
        status,
        &VmsPage {
            c,
            vms: p.items.into_iter().map(VmRow::from).collect(),
            instances,
            images,
            states: VmStatus::ALL.iter().map(|s| s.as_str().to_string()).collect(),
            filter_instance,
            filter_state,
            next,
            paged,
            quotas,
            form,
            errors: errs,
        },
    )
}

/// The default instance type of an image on each instance, walking up its
/// parents like a launch does (for the form to preselect it).
fn default_types(all: &[ImageView], img: &ImageView, instances: &[String]) -> String {
    let mut out = Vec::new();
    for inst in instances {
        let mut cur = Some(img);
        for _ in 0..64 {
            let Some(c) = cur else { break };
            if let Some(t) = c.mappings.get(inst).and_then(|m| m.instance_type.clone()) {
                out.push(format!("{inst}={t}"));
                break;
            }
            cur = c.parent.as_ref().and_then(|p| all.iter().find(|i| &i.name == p));
        }
    }
    out.join(";")
}

async fn list(req: HttpRequest, me: SignedIn, broker: web::Data<Broker>, q: web::Query<ListQuery>) -> HttpResponse {
    let form = LaunchForm { count: "1".into(), ..LaunchForm::default() };
    render(&req, &me, &broker, q.into_inner(), form, FormErrors::none()).await
}

fn empty_query() -> ListQuery {
    ListQuery { instance: None, state: None, cursor: None }
}

/// `key=value` per line (or comma-separated).
fn parse_tags(text: &str) -> Result<Tags, FormErrors> {
    let mut map = BTreeMap::new();
    for part in text.split(['\n', ',']).map(str::trim).filter(|p| !p.is_empty()) {
        let Some((k, v)) = part.split_once('=') else {
            return Err(FormErrors::field("tags", format!("'{part}' is not key=value")));
        };
        map.insert(k.trim().to_string(), v.trim().to_string());
    }
    Tags::parse(map).map_err(|e| FormErrors::field("tags", e.message))
}

fn launch_spec(f: &LaunchForm) -> Result<LaunchSpec, FormErrors> {
    let instance = InstanceName::parse(f.instance.trim()).map_err(|_| FormErrors::field("instance", "choose a connector instance"))?;
    let image = ImageRef::parse(f.image.trim()).map_err(|_| FormErrors::field("image", "choose an image"))?;
    let count = match f.count.trim() {
        "" => 1,
        c => c.parse::<u32>().map_err(|_| FormErrors::field("count", "the count is a whole number, 1 or more"))?,
    };
    let mut spec = LaunchSpec::new(instance, image);
    spec.count = count;
    spec.name = f.name.trim().to_string();
    let t = f.instance_type.trim();
    spec.instance_type = (!t.is_empty()).then(|| t.to_string());
    spec.tags = parse_tags(&f.tags)?;
    Ok(spec)
}

async fn launch(req: HttpRequest, me: SignedIn, broker: web::Data<Broker>, form: web::Form<LaunchForm>) -> HttpResponse {
    let s = &me.session;
    if !csrf_ok(s, form.csrf.as_deref()) {
        return csrf_refused();
    }
    let form = form.into_inner();
    let spec = match launch_spec(&form) {
        Ok(s) => s,
        Err(errs) => return render(&req, &me, &broker, empty_query(), form, errs).await,
    };
    let n = spec.count;
    match broker.provisioning.launch(&s.actor, spec).await {
        Ok(out) => {
            let ids: Vec<String> = out.vms.iter().map(|v| v.id.to_string()).collect();
            redirect_with(&req, &broker, "/vms", &format!("Launched {n} VM(s): {}", ids.join(", ")))
        }
        Err(e) => {
            let mut errs = FormErrors::from_service(&e, &["instance", "image", "instance_type", "count", "name", "tags"]);
            match &e {
                ServiceError::NotFound(r) if r.to_string().starts_with("credentials") => {
                    errs = FormErrors::field("instance", friendly(&e));
                }
                ServiceError::Invalid { field: Some("instance"), message } if message.starts_with("no credentials") => {
                    errs = FormErrors::field(
                        "instance",
                        format!(
                            "You have no credentials for {}: save them on the Credentials page, then launch again.",
                            form.instance.trim()
                        ),
                    );
                }
                _ => {}
            }
            render(&req, &me, &broker, empty_query(), form, errs).await
        }
    }
}

fn vm_in_path(req: &HttpRequest, s: &str) -> Result<VmId, Box<HttpResponse>> {
    VmId::parse(s).map_err(|_| Box::new(errors::error_page(Some(req), StatusCode::NOT_FOUND, "Not found", "No such VM.")))
}

#[derive(Template)]
#[template(path = "vm_terminate.html")]
struct ConfirmPage {
    c: Chrome,
    vm: VmRow,
}

async fn confirm_terminate(req: HttpRequest, me: SignedIn, broker: web::Data<Broker>, id: web::Path<String>) -> HttpResponse {
    let id = match vm_in_path(&req, &id) {
        Ok(i) => i,
        Err(r) => return *r,
    };
    match broker.provisioning.get(&me.session.actor, &id).await {
        Ok(vm) => page(&ConfirmPage { c: Chrome::new(&me, "vms", "Terminate VM"), vm: vm.into() }),
        Err(e) => errors::service_error_page(&req, &e),
    }
}

#[derive(Deserialize)]
pub(super) struct CsrfOnly {
    csrf: Option<String>,
}

async fn act(
    req: HttpRequest,
    me: SignedIn,
    broker: web::Data<Broker>,
    path: web::Path<(String, String)>,
    form: web::Form<CsrfOnly>,
) -> HttpResponse {
    let s = &me.session;
    if !csrf_ok(s, form.csrf.as_deref()) {
        return csrf_refused();
    }
    let (id, action) = path.into_inner();
    let id = match vm_in_path(&req, &id) {
        Ok(i) => i,
        Err(r) => return *r,
    };
    let Ok(action) = VmAction::parse(&action) else {
        return errors::not_found(req).await;
    };
    match broker.provisioning.action(&s.actor, &id, action).await {
        Ok(vm) => redirect_with(&req, &broker, "/vms", &format!("{} {}: now {}", action.as_str(), vm.id, vm.status.as_str())),
        Err(e) => errors::service_error_page(&req, &e),
    }
}
