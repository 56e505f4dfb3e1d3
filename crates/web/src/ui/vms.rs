//! The VMs of the current project: the list (filters by instance and
//! state, keyset pages that stay fast however many VMs there are,
//! auto-refresh while something is pending), the launch form (launching in
//! the project, with the user's and the project's quota usage per
//! instance, and the launch policies of each instance: for the instance
//! chosen, allowed types as a select, allowed images only, one field per
//! required tag, the most VMs per launch; a refusal comes back next to the
//! field with everything typed kept) and start / stop / reboot /
//! terminate (terminate asks for confirmation on its own page, so it works
//! without JavaScript). A viewer of the project gets neither form nor
//! buttons, and a forged one is refused (403, the page saying why).

use super::context::{CsrfForm, Ctx};
use super::errors::{UiError, UiResult};
use super::form::{age, friendly, FormErrors};
use super::session::SignedIn;
use super::{errors, html, page, redirect_with, urlencode, Chrome};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use cloudbroker_core::domain::{ImageRef, InstanceName, PageRequest, Tags, VmAction, VmId, VmStatus};
use cloudbroker_core::images::Launchable;
use cloudbroker_core::provisioning::{CountRange, InstanceType, LaunchRequest, LaunchTags, Vm, VmQuery};
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

/// How a refused change (a viewer's) starts its message.
const REFUSED: &str = "Not allowed:";

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
    /// Who launched it.
    user: String,
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
            user: v.user.to_string(),
            can_start: s == VmStatus::Stopped,
            can_stop: s == VmStatus::Running,
            can_terminate: s.is_live(),
        }
    }
}

/// The launch form's fields as typed.
#[derive(Deserialize, Default, Clone)]
pub(super) struct LaunchForm {
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
    /// The fields of required tags (`tag.<key>`), and anything else sent.
    #[serde(flatten)]
    extra: BTreeMap<String, String>,
}

impl LaunchForm {
    /// The value typed in the field of required tag `key`.
    fn tag_value(&self, key: &str) -> &str {
        self.extra.get(&tag_field(key)).map(String::as_str).unwrap_or_default()
    }
}

/// The form field of required tag `key`.
fn tag_field(key: &str) -> String {
    format!("tag.{key}")
}

/// A required tag as the launch form shows it.
#[derive(Clone)]
struct RequiredTag {
    key: String,
    /// The form field (`tag.<key>`).
    field: String,
    /// The values allowed (empty: any non-empty value).
    allowed: Vec<String>,
}

impl RequiredTag {
    /// Whether `v` is one of the values offered.
    fn offers(&self, v: &str) -> bool {
        self.allowed.iter().any(|x| x == v)
    }
}

/// What the launch policies of one instance allow the user (nothing here
/// when it has none, or the user is exempt).
#[derive(Clone)]
struct InstancePolicy {
    instance: String,
    /// Plain instance types allowed (the form's select).
    types: Vec<String>,
    /// Patterns of instance types allowed (`t3.*`), shown as a hint.
    type_patterns: Vec<String>,
    /// Native images allowed (empty: any).
    images: Vec<String>,
    tags: Vec<RequiredTag>,
    /// Whether tag `Name` is required with any value: the launch's name
    /// gives it, so the Name field is marked required instead of a field of its own.
    name_required: bool,
    count_max: Option<u32>,
}

impl InstancePolicy {
    /// The allowed types and patterns in words.
    fn types_text(&self) -> String {
        let mut all: Vec<&str> = self.types.iter().map(String::as_str).collect();
        all.extend(self.type_patterns.iter().map(String::as_str));
        if all.is_empty() {
            "any".into()
        } else {
            all.join(", ")
        }
    }

    /// The allowed images in words.
    fn images_text(&self) -> String {
        if self.images.is_empty() {
            "any".into()
        } else {
            self.images.join(", ")
        }
    }

    /// The required tags in words (`cost-center (rd, ops), owner`).
    fn tags_text(&self) -> String {
        if self.tags.is_empty() {
            return "none".into();
        }
        self.tags
            .iter()
            .map(|t| if t.allowed.is_empty() { t.key.clone() } else { format!("{} ({})", t.key, t.allowed.join(", ")) })
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The most VMs per launch in words.
    fn count_text(&self) -> String {
        self.count_max.map(|n| n.to_string()).unwrap_or_else(|| "no limit".into())
    }

    /// Whether `t` is one of the plain types offered.
    fn offers_type(&self, t: &str) -> bool {
        self.types.iter().any(|x| x == t)
    }

    /// Whether `image` (a native image name) is allowed.
    fn allows_image(&self, image: &str) -> bool {
        self.images.is_empty() || self.images.iter().any(|i| i == image)
    }
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
    /// The launch policies of the instances offered (those that have any).
    policies: Vec<InstancePolicy>,
    /// The instance the form is for (chosen, or the only one), when it has
    /// policies: its allowed types, images and required tags are the form's.
    focus: Option<InstancePolicy>,
    form: LaunchForm,
    errors: FormErrors,
}

#[derive(Deserialize)]
pub(super) struct ListQuery {
    instance: Option<String>,
    state: Option<String>,
    cursor: Option<String>,
    /// The instance to launch on (the form then applies its policies).
    launch: Option<String>,
}

async fn render(req: &HttpRequest, me: &SignedIn, broker: &Broker, q: ListQuery, form: LaunchForm, errs: FormErrors) -> HttpResponse {
    let actor = &me.session.actor;
    let filter_instance = q.instance.unwrap_or_default();
    let filter_state = q.state.unwrap_or_default();
    // The current project's VMs, whoever launched them (admins too: theirs is the project they work in).
    let mut query = VmQuery { project: Some(actor.project.clone()), ..VmQuery::default() };
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
    let mut policies = Vec::new();
    for i in &instances {
        policies.extend(policy_of(broker, actor, i).await);
    }
    let chosen = match form.instance.trim() {
        "" if instances.len() == 1 => instances[0].clone(),
        i => i.to_string(),
    };
    let focus = policies.iter().find(|p| p.instance == chosen).cloned();
    policies.sort_by(|a, b| a.instance.cmp(&b.instance));
    let images: Vec<(String, String, String)> = broker
        .images
        .launchable_by(actor)
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|l| {
            let i = &l.image;
            let label = if i.description.is_empty() { i.name.to_string() } else { format!("{} — {}", i.name, i.description) };
            (i.name.to_string(), label, default_types(&l, &instances))
        })
        .filter(|(name, _, _)| focus.as_ref().is_none_or(|p| p.allows_image(name) || form.image == *name))
        .collect();
    let project_quotas = if actor.in_personal_project() {
        Vec::new()
    } else {
        broker.provisioning.project_quotas(actor, &actor.project).await.unwrap_or_default()
    };
    let quotas = broker
        .provisioning
        .quotas(actor, &actor.name)
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|q| {
            let mut text = if q.enforced {
                format!("{} of {} VMs used ({} left)", q.usage, q.limit, (q.limit - q.usage).max(0))
            } else {
                format!("{} VMs (quotas are off)", q.usage)
            };
            if let Some(pq) = project_quotas.iter().find(|p| p.instance == q.instance) {
                text.insert_str(0, "you: ");
                text.push_str(&match pq.limit {
                    Some(l) if pq.enforced => {
                        format!("; project {}: {} of {l} used ({} left)", actor.project, pq.usage, (l - pq.usage).max(0))
                    }
                    _ => format!("; project {}: {} VMs, no project limit", actor.project, pq.usage),
                });
            }
            QuotaRow { instance: q.instance.to_string(), text }
        })
        .collect();
    let mut c = Chrome::new(me, "vms", "VMs");
    c.refresh = pending && !errs.any();
    let status = errs.status();
    let status = match errs.general.as_deref() {
        Some(m) if m.starts_with("Over quota") || m.starts_with("Over the quota") => StatusCode::CONFLICT,
        Some(m) if m.starts_with(REFUSED) => StatusCode::FORBIDDEN,
        _ => status,
    };
    if let Some(m) = errs.general.as_deref().filter(|m| m.starts_with(REFUSED)) {
        // A viewer's forged form: said where the page says what happened.
        c.flash = Some(m.to_string());
    }
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
            policies,
            focus,
            form,
            errors: errs,
        },
    )
}

/// The image's default instance type on each instance, as the core gives
/// it (`inst=type;...`, for the form to show it).
fn default_types(l: &Launchable, instances: &[String]) -> String {
    let on = |inst: &str| l.on.iter().find(|(i, _)| i.as_str() == inst).and_then(|(_, r)| r.instance_type.as_deref());
    instances.iter().filter_map(|inst| on(inst).map(|t| format!("{inst}={t}"))).collect::<Vec<_>>().join(";")
}

/// The launch policies of `instance` as they apply to `actor` (`None`: it
/// has none, the actor is exempt, or they cannot be read just now; the
/// admission checks them anyway).
async fn policy_of(broker: &Broker, actor: &cloudbroker_core::Actor, instance: &str) -> Option<InstancePolicy> {
    let name = InstanceName::parse(instance).ok()?;
    let p = broker.provisioning.policy_for(&name).await.ok()?;
    if p.is_empty() || !p.applies_to(actor) {
        return None;
    }
    let (patterns, types): (Vec<String>, Vec<String>) = p.instance_types.iter().cloned().partition(|t| t.contains('*'));
    let by_name = |t: &&cloudbroker_core::provisioning::RequiredTag| t.key == "Name" && t.allowed.is_none();
    Some(InstancePolicy {
        instance: instance.to_string(),
        types,
        type_patterns: patterns,
        images: p.images.iter().map(|i| i.to_string()).collect(),
        tags: p
            .required_tags
            .iter()
            .filter(|t| !by_name(t))
            .map(|t| RequiredTag { key: t.key.clone(), field: tag_field(&t.key), allowed: t.allowed.clone().unwrap_or_default() })
            .collect(),
        name_required: p.required_tags.iter().any(|t| by_name(&t)),
        count_max: p.count_max,
    })
}

async fn list(req: HttpRequest, me: SignedIn, broker: web::Data<Broker>, q: web::Query<ListQuery>) -> HttpResponse {
    let instance = q.launch.clone().unwrap_or_default();
    let form = LaunchForm { count: "1".into(), instance, ..LaunchForm::default() };
    render(&req, &me, &broker, q.into_inner(), form, FormErrors::none()).await
}

fn empty_query() -> ListQuery {
    ListQuery { instance: None, state: None, cursor: None, launch: None }
}

/// `key=value` per line (or comma-separated), then the required tags'
/// own fields (`tag.<key>`, a value typed there wins).
fn parse_tags(text: &str, fields: &BTreeMap<String, String>) -> Result<Tags, FormErrors> {
    let mut map = BTreeMap::new();
    for part in text.split(['\n', ',']).map(str::trim).filter(|p| !p.is_empty()) {
        let Some((k, v)) = part.split_once('=') else {
            return Err(FormErrors::field("tags", format!("'{part}' is not key=value")));
        };
        map.insert(k.trim().to_string(), v.trim().to_string());
    }
    for (f, v) in fields {
        if let (Some(k), v) = (f.strip_prefix("tag."), v.trim()) {
            if !k.is_empty() && !v.is_empty() {
                map.insert(k.to_string(), v.to_string());
            }
        }
    }
    Tags::parse(map).map_err(|e| FormErrors::field("tags", e.message))
}

fn launch_request(f: &LaunchForm) -> Result<LaunchRequest, FormErrors> {
    let instance = InstanceName::parse(f.instance.trim()).map_err(|_| FormErrors::field("instance", "choose a connector instance"))?;
    let image = ImageRef::parse(f.image.trim()).map_err(|_| FormErrors::field("image", "choose an image"))?;
    let count = match f.count.trim() {
        "" => 1,
        c => c.parse::<u32>().map_err(|_| FormErrors::field("count", "the count is a whole number, 1 or more"))?,
    };
    let mut req = LaunchRequest::new(instance, image);
    req.count = CountRange::exactly(count);
    req.name = f.name.trim().to_string();
    req.tags = LaunchTags::user(parse_tags(&f.tags, &f.extra)?);
    let t = f.instance_type.trim();
    if !t.is_empty() {
        req.instance_type = Some(InstanceType::parse(t).map_err(|e| FormErrors::field("instance_type", e.message))?);
    }
    Ok(req)
}

async fn launch(ui: Ctx, form: CsrfForm<LaunchForm>) -> HttpResponse {
    let Ctx { req, me, broker } = ui;
    let s = &me.session;
    let form = form.into_inner();
    let request = match launch_request(&form) {
        Ok(r) => r,
        Err(errs) => return render(&req, &me, &broker, empty_query(), form, errs).await,
    };
    let n = request.count.max;
    match broker.provisioning.launch(&s.actor, request).await {
        Ok(out) => {
            let ids: Vec<String> = out.vms.iter().map(|v| v.id.to_string()).collect();
            redirect_with(&req, &broker, "/vms", &format!("Launched {n} VM(s): {}", ids.join(", ")))
        }
        Err(e @ ServiceError::Forbidden(_)) => {
            let errs = FormErrors::general(format!("{REFUSED} {}. Nothing was launched.", friendly(&e)));
            render(&req, &me, &broker, empty_query(), LaunchForm::default(), errs).await
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
                // A required tag's refusal goes next to that tag's own field, when the form has one.
                ServiceError::PolicyViolation { field: "tags", message, .. } => {
                    if let Some(key) = message.strip_prefix("tag '").and_then(|m| m.split('\'').next()) {
                        if form.extra.contains_key(&tag_field(key)) {
                            errs = FormErrors::field(&tag_field(key), message.clone());
                        } else if key == "Name" {
                            errs = FormErrors::field("name", message.clone());
                        }
                    }
                }
                _ => {}
            }
            render(&req, &me, &broker, empty_query(), form, errs).await
        }
    }
}

fn vm_in_path(s: &str) -> Result<VmId, UiError> {
    VmId::parse(s).map_err(|_| UiError::NotFound("No such VM."))
}

#[derive(Template)]
#[template(path = "vm_terminate.html")]
struct ConfirmPage {
    c: Chrome,
    vm: VmRow,
}

async fn confirm_terminate(ui: Ctx, id: web::Path<String>) -> UiResult {
    let vm = ui.broker.provisioning.get(ui.actor(), &vm_in_path(&id)?).await?;
    ui.actor().require_act()?;
    Ok(page(&ConfirmPage { c: ui.chrome("vms", "Terminate VM"), vm: vm.into() }))
}

async fn act(ui: Ctx, path: web::Path<(String, String)>, _: CsrfForm) -> UiResult {
    let (id, action) = path.into_inner();
    let id = vm_in_path(&id)?;
    let Ok(action) = VmAction::parse(&action) else {
        return Ok(errors::not_found(ui.req).await);
    };
    let vm = match ui.broker.provisioning.action(ui.actor(), &id, action).await {
        Ok(vm) => vm,
        Err(e @ ServiceError::Forbidden(_)) => {
            let errs = FormErrors::general(format!("{REFUSED} {}. {id} was not changed.", friendly(&e)));
            return Ok(render(&ui.req, &ui.me, &ui.broker, empty_query(), LaunchForm::default(), errs).await);
        }
        Err(e) => return Err(e.into()),
    };
    Ok(ui.redirect_with("/vms", &format!("{} {}: now {}", action.as_str(), vm.id, vm.status.as_str())))
}
