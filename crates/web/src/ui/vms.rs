//! The VMs of the current project: the list (filters by instance and
//! state, a search by exact name or tag `key=value`, keyset pages that stay
//! fast however many VMs there are, rows of one launch in its order; while
//! something is pending the list alone refreshes, so the launch form keeps
//! what is typed, and `?watch=1` is the list alone reloading itself for
//! browsers without script), the launch form (its type hint is what the
//! launch will use, from the core's one default; launching in
//! the project, with the user's and the project's quota usage per
//! instance, and the launch policies of each instance: for the instance
//! chosen, allowed types as a select, allowed images only, one field per
//! required tag, the most VMs per launch; a refusal comes back next to the
//! field with everything typed kept) and start / stop / reboot /
//! terminate (terminate asks for confirmation on its own page, so it works
//! without JavaScript). A viewer of the project gets neither form nor
//! buttons, and a forged one is refused (403, the page saying why).
//!
//! Leases: every VM shows its lease as the broker stores it, an absolute
//! expiry in UTC, with the time left by the broker's clock, the action, the
//! warning (amber) and, once ended, what the broker did; the launch form
//! takes an optional lease (the instance's terms as its hint); "Extend" is
//! one POST (post/redirect/get, the new expiry or the refusal as the flash),
//! on the VM's own page with an optional length (a refusal next to it).

use super::context::{CsrfForm, Ctx};
use super::errors::{UiError, UiResult};
use super::form::{age, friendly, when, FormErrors};
use super::session::SignedIn;
use super::{errors, html, page, redirect_with, urlencode, Chrome};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use chrono::{DateTime, Utc};
use cloudbroker_core::domain::lease::format_duration;
use cloudbroker_core::domain::{ImageRef, InstanceName, Lease, LeaseAsk, PageRequest, Tags, VmAction, VmId, VmStatus};
use cloudbroker_core::images::Launchable;
use cloudbroker_core::provisioning::{CountRange, InstanceType, LaunchRequest, LaunchTags, LeaseTerms, Vm, VmQuery};
use cloudbroker_core::{Broker, ServiceError};
use serde::Deserialize;
use std::collections::BTreeMap;

pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/vms", web::get().to(list))
        .route("/vms", web::post().to(launch))
        .route("/vms/{id}", web::get().to(detail))
        .route("/vms/{id}/terminate", web::get().to(confirm_terminate))
        .route("/vms/{id}/lease", web::post().to(extend))
        .route("/vms/{id}/{action}", web::post().to(act));
}

/// VMs per page of the list.
const PAGE: u32 = 25;

/// How a refused change (a viewer's) starts its message.
const REFUSED: &str = "Not allowed:";

/// How a refused extension (over `lease.max`, or while the broker acts on
/// the expiry) starts its flash (shown as a refusal).
pub(super) const NOT_EXTENDED: &str = "Not extended:";

struct VmRow {
    id: String,
    /// Its launch and its place in it (rows of one launch are listed in that order).
    launch_id: String,
    launch_index: i64,
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
    /// Its lease as shown (`None`: it has none).
    lease: Option<LeaseCell>,
    /// Whether the lease may be extended (a live VM with a lease).
    can_extend: bool,
    /// Its cost this month so far, rounded to cents (`USD 0.01`; empty: it did not run).
    cost: String,
    /// The same, exact (`USD 0.0116`): the cell's `title`.
    cost_exact: String,
}

/// A VM's lease as the pages show it.
pub(super) struct LeaseCell {
    /// The absolute expiry in UTC, to the minute (`2026-12-07 18:00 UTC`).
    pub expires: String,
    /// The expiry as RFC 3339 (a `<time>`'s `datetime`).
    pub iso: String,
    /// The time left (`in 3h 5m`), how late (`due 5m ago`), or `ended`.
    pub remaining: String,
    /// `stop` or `terminate`.
    pub action: &'static str,
    /// Whether the warning was recorded (shown amber).
    pub warned: bool,
    /// Whether the broker dealt with the expiry.
    pub ended: bool,
    /// What happened, for people (shown once the lease ended).
    pub note: String,
}

/// A time left as people read it, in whole seconds rounded up (a lease
/// given 8h from now reads "8h" a few milliseconds later, not "7h 59m").
fn time_left(d: chrono::Duration) -> String {
    format_duration(chrono::Duration::seconds((d.num_milliseconds() + 999).div_euclid(1000)))
}

impl LeaseCell {
    /// `l` as seen at `now` (the broker's clock).
    pub(super) fn of(l: &Lease, now: DateTime<Utc>) -> Self {
        let left = l.expires_at - now;
        let remaining = match l.ended_at {
            Some(at) => format!("ended {}", when(&at)),
            None if left > chrono::Duration::zero() => format!("in {}", time_left(left)),
            None => format!("due {} ago", format_duration(left)),
        };
        Self {
            expires: when(&l.expires_at),
            iso: l.expires_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            remaining,
            action: l.action.as_str(),
            warned: l.warned_at.is_some(),
            ended: l.ended_at.is_some(),
            note: l.note.clone().unwrap_or_default(),
        }
    }
}

/// Whether a VM in state `s` is offered a lease (live, not on its way out).
fn takes_lease(s: VmStatus) -> bool {
    s.is_live() && s != VmStatus::ShuttingDown
}

impl VmRow {
    /// `v` as seen at `now` (the broker's clock: the lease's time left).
    fn of(v: Vm, now: DateTime<Utc>) -> Self {
        let s = v.status;
        Self {
            id: v.id.to_string(),
            launch_id: v.launch_id.to_string(),
            launch_index: v.launch_index,
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
            // On its way out already (or gone): nothing to terminate.
            can_terminate: s.is_live() && s != VmStatus::ShuttingDown,
            can_extend: takes_lease(s) && v.lease.is_some(),
            lease: v.lease.as_ref().map(|l| LeaseCell::of(l, now)),
            cost: String::new(),
            cost_exact: String::new(),
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
    /// The lease asked for (empty: the instance's default).
    #[serde(default)]
    lease: String,
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
    /// The list alone (`?watch=1`): no launch form, the whole page reloads while pending.
    watch: bool,
    /// Something is pending and the page shows the launch form: the table
    /// alone refreshes (ui.js), pausing while the user types.
    table_refresh: bool,
    /// The instance type a launch of the chosen image on the chosen
    /// instance uses when the field is left empty (empty: none chosen yet).
    type_hint: String,
    instances: Vec<String>,
    /// (name, label, default instance type per instance as `inst=type;...`).
    images: Vec<(String, String, String)>,
    states: Vec<String>,
    filter_instance: String,
    filter_state: String,
    /// The search typed (an exact name, or `key=value` for a tag).
    search: String,
    /// The first page of this list (its filters kept).
    first: String,
    next: Option<String>,
    paged: bool,
    quotas: Vec<QuotaRow>,
    /// The launch policies of the instances offered (those that have any).
    policies: Vec<InstancePolicy>,
    /// The instance the form is for (chosen, or the only one), when it has
    /// policies: its allowed types, images and required tags are the form's.
    focus: Option<InstancePolicy>,
    /// The lease field's placeholder (the chosen instance's default lease).
    lease_placeholder: String,
    /// The lease field's help (the terms of the instance chosen).
    lease_help: String,
    /// No instance chosen: each instance's lease terms (instance, in words).
    lease_terms: Vec<(String, String)>,
    form: LaunchForm,
    errors: FormErrors,
}

/// An instance's lease terms in words (`default 8h, at most 1d, then terminate`).
fn terms_text(t: &LeaseTerms) -> String {
    let default = match t.default_span() {
        Some(d) => format!("default {}", format_duration(d)),
        None => "no lease unless asked".to_string(),
    };
    let max = t.max.map_or_else(|| "no maximum".to_string(), |m| format!("at most {}", format_duration(m)));
    format!("{default}, {max}, then {}", t.action)
}

/// The lease field's placeholder and help for the instance `chosen`; none
/// chosen, a general help and the terms of each instance offered that
/// gives launches a lease (instance, terms), listed under the form.
async fn lease_hint(broker: &Broker, instances: &[String], chosen: &str) -> (String, String, Vec<(String, String)>) {
    const HOW: &str = "8h, 90m, 1d12h or a UTC time (2026-12-24T18:00:00Z).";
    let terms = |i: &str| {
        let i = i.to_string();
        async move {
            let name = InstanceName::parse(&i).ok()?;
            broker.provisioning.lease_terms(&name).await.ok().map(|t| (i, t))
        }
    };
    if !chosen.is_empty() {
        if let Some((i, t)) = terms(chosen).await {
            let placeholder = t.default_span().map_or_else(|| "none".to_string(), |d| format!("default: {}", format_duration(d)));
            return (placeholder, format!("Lease on {i}: {}. {HOW}", terms_text(&t)), Vec::new());
        }
    }
    let mut each = Vec::new();
    for i in instances {
        // Only those that set a lease: the others give none unless asked.
        if let Some((i, t)) = terms(i).await.filter(|(_, t)| t.default_span().is_some()) {
            each.push((i, terms_text(&t)));
        }
    }
    let help = format!("Empty: the instance's default (see its lease terms below). {HOW}");
    ("the instance's default".to_string(), help, each)
}

#[derive(Deserialize)]
pub(super) struct ListQuery {
    instance: Option<String>,
    state: Option<String>,
    cursor: Option<String>,
    /// The instance to launch on (the form then applies its policies).
    launch: Option<String>,
    /// The list alone, reloading itself while something is pending (the
    /// view for browsers without JavaScript: the page with the launch form
    /// never reloads itself, so it never wipes what is typed).
    watch: Option<String>,
    /// Search: a VM's exact name, or a tag as `key=value`.
    q: Option<String>,
}

async fn render(req: &HttpRequest, me: &SignedIn, broker: &Broker, q: ListQuery, form: LaunchForm, errs: FormErrors) -> HttpResponse {
    let actor = &me.session.actor;
    let filter_instance = q.instance.unwrap_or_default();
    let filter_state = q.state.unwrap_or_default();
    let watch = q.watch.as_deref().is_some_and(|w| !w.is_empty());
    let search = q.q.as_deref().unwrap_or_default().trim().to_string();
    // The current project's VMs, whoever launched them (admins too: theirs is the project they work in).
    let mut query = VmQuery { project: Some(actor.project.clone()), ..VmQuery::default() };
    if !filter_instance.is_empty() {
        match InstanceName::parse(&filter_instance) {
            Ok(i) => query.instance = Some(i),
            Err(e) => return errors::service_error_page(req, &ServiceError::invalid_field("instance", e.to_string())),
        }
    }
    match search.split_once('=') {
        _ if search.is_empty() => {}
        Some((k, v)) => query.tag = Some((k.trim().to_string(), v.trim().to_string())),
        None => query.name = Some(search.clone()),
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
    let next = p.next_cursor.map(|cur| {
        format!(
            "/vms?instance={}&state={}&q={}&cursor={}{}",
            urlencode(&filter_instance),
            urlencode(&filter_state),
            urlencode(&search),
            urlencode(&cur),
            if watch { "&watch=1" } else { "" }
        )
    });
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
    let (lease_placeholder, lease_help, lease_terms) = lease_hint(broker, &instances, &chosen).await;
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
            (i.name.to_string(), label, default_types(broker, &l, &instances))
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
    let now = broker.clock.now();
    // Every VM's cost this month: one query for the page.
    let month_costs = broker.costs.month_costs(actor).await.unwrap_or_default();
    let currency = broker.costs.currency();
    let mut c = Chrome::new(me, "vms", "VMs");
    // The whole page reloads only when it has no launch form to wipe.
    let form_shown = c.can_act() && !watch;
    c.refresh = pending && !errs.any() && !form_shown;
    let table_refresh = pending && !errs.any() && form_shown;
    let type_hint = images
        .iter()
        .find(|(name, _, _)| *name == form.image.trim())
        .and_then(|(_, _, types)| types.split(';').find_map(|p| p.strip_prefix(&format!("{chosen}="))).map(str::to_string))
        .unwrap_or_default();
    let mut rows: Vec<VmRow> = p.items.into_iter().map(|v| VmRow::of(v, now)).collect();
    in_launch_order(&mut rows);
    // A launch the cloud refused: its reason is on the failed VM's row, said once.
    let mut errs = errs;
    if let Some(general) = errs.general.as_mut() {
        if let Some(r) = rows.iter().find(|r| !r.error.is_empty() && general.contains(&r.error)) {
            *general = general.replace(&r.error, &format!("the reason is on the failed VM {} below", r.id));
        }
    }
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
            vms: with_costs(rows, &month_costs, &currency),
            watch,
            table_refresh,
            type_hint,
            instances,
            images,
            states: VmStatus::ALL.iter().map(|s| s.as_str().to_string()).collect(),
            first: format!(
                "/vms?instance={}&state={}&q={}{}",
                urlencode(&filter_instance),
                urlencode(&filter_state),
                urlencode(&search),
                if watch { "&watch=1" } else { "" }
            ),
            filter_instance,
            filter_state,
            search,
            next,
            paged,
            quotas,
            policies,
            focus,
            lease_placeholder,
            lease_help,
            lease_terms,
            form,
            errors: errs,
        },
    )
}

/// `rows` with each one's cost this month (from one query for the page).
fn with_costs(mut rows: Vec<VmRow>, costs: &BTreeMap<String, cloudbroker_core::costs::summary::MonthCost>, currency: &str) -> Vec<VmRow> {
    for r in &mut rows {
        if let Some(c) = costs.get(&r.id) {
            let m = super::costs::Money::of(c.cost);
            (r.cost, r.cost_exact) = match (c.cost.0, c.unpriced) {
                (0, true) => ("unpriced".to_string(), "unpriced".to_string()),
                (_, true) => (format!("{currency} {m} + unpriced"), format!("{currency} {} + unpriced", m.exact)),
                _ => (format!("{currency} {m}"), format!("{currency} {}", m.exact)),
            };
        }
    }
    rows
}

/// The instance type a launch of the image uses on each instance when the
/// form names none, as the core decides it for the launch itself
/// (`inst=type;...`, for the form to show it).
fn default_types(broker: &Broker, l: &Launchable, instances: &[String]) -> String {
    let on = |inst: &str| {
        let (name, resolved) = l.on.iter().find(|(i, _)| i.as_str() == inst)?;
        broker.provisioning.default_instance_type(name, resolved)
    };
    instances.iter().filter_map(|inst| on(inst).map(|t| format!("{inst}={t}"))).collect::<Vec<_>>().join(";")
}

/// Rows of one launch together, in their launch's order (`launch_index`),
/// each launch where its first row was (the store orders by creation,
/// which ties within a launch).
fn in_launch_order(rows: &mut [VmRow]) {
    let mut first: BTreeMap<String, usize> = BTreeMap::new();
    for (n, r) in rows.iter().enumerate() {
        first.entry(r.launch_id.clone()).or_insert(n);
    }
    rows.sort_by_key(|r| (first[&r.launch_id], r.launch_index));
}

/// The launch policies of `instance` as they apply to `actor` (`None`: it
/// has none, the actor is exempt, or they cannot be read just now; the
/// admission checks them anyway).
async fn policy_of(broker: &Broker, actor: &cloudbroker_core::Actor, instance: &str) -> Option<InstancePolicy> {
    let name = InstanceName::parse(instance).ok()?;
    // The instance's policies, narrowed by the project's own (both apply: project_policy.rs).
    let p = match broker.provisioning.policies_for(actor, &name).await.ok()? {
        (instance, Some(project)) => instance.narrowed_by(&project),
        (instance, None) => instance,
    };
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
    ListQuery { instance: None, state: None, cursor: None, launch: None, watch: None, q: None }
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

/// The launch asked for, or every problem of the form at once.
fn launch_request(f: &LaunchForm) -> Result<LaunchRequest, FormErrors> {
    let mut errs = FormErrors::none();
    let instance = InstanceName::parse(f.instance.trim()).map_err(|_| errs.add("instance", "choose a connector instance")).ok();
    let image = ImageRef::parse(f.image.trim()).map_err(|_| errs.add("image", "choose an image")).ok();
    let count = match f.count.trim() {
        "" => 1,
        c => c.parse::<u32>().unwrap_or_else(|_| {
            errs.add("count", "the count is a whole number, 1 or more");
            1
        }),
    };
    if !f.name.is_empty() && f.name.trim().is_empty() {
        errs.add("name", "A name of only spaces is no name: type one, or leave the field empty");
    }
    let tags = parse_tags(&f.tags, &f.extra).map_err(|e| {
        if let Some(m) = e.of("tags") {
            errs.add("tags", m);
        }
    });
    let t = f.instance_type.trim();
    let instance_type = match t {
        "" => None,
        t => InstanceType::parse(t).map_err(|e| errs.add("instance_type", e.message)).ok(),
    };
    let l = f.lease.trim();
    let lease = match l {
        "" => None,
        l => LeaseAsk::parse(l).map_err(|e| errs.add("lease", format!("Lease: {}", e.message))).ok(),
    };
    let (Some(instance), Some(image), Ok(tags), false) = (instance, image, tags, errs.any()) else {
        return Err(errs);
    };
    let mut req = LaunchRequest::new(instance, image);
    req.count = CountRange::exactly(count);
    req.name = f.name.trim().to_string();
    req.tags = LaunchTags::user(tags);
    req.instance_type = instance_type;
    req.lease = lease;
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
            let lease = match out.vms.first().and_then(|v| v.lease.as_ref()) {
                Some(l) => format!(" (lease until {}, then {})", when(&l.expires_at), l.action),
                None => String::new(),
            };
            redirect_with(&req, &broker, "/vms", &format!("Launched {n} VM(s): {}{lease}", ids.join(", ")))
        }
        Err(e @ ServiceError::Forbidden(_)) => {
            let errs = FormErrors::general(format!("{REFUSED} {}. Nothing was launched.", friendly(&e)));
            render(&req, &me, &broker, empty_query(), LaunchForm::default(), errs).await
        }
        Err(e) => {
            let mut errs = FormErrors::from_service(&e, &["instance", "image", "instance_type", "count", "name", "tags", "lease"]);
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
    let vm = VmRow::of(vm, ui.broker.clock.now());
    if !vm.can_terminate {
        let msg = format!("{} is {}: there is nothing to terminate", vm.id, vm.state);
        return Ok(ui.redirect_with(&format!("/vms/{}", vm.id), &msg));
    }
    Ok(page(&ConfirmPage { c: ui.chrome("vms", "Terminate VM"), vm }))
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

/// One VM's page: everything the list shows and more, its lease with the
/// instance's terms, and (for those who may act) the form that extends it.
#[derive(Template)]
#[template(path = "vm.html")]
struct DetailPage {
    c: Chrome,
    vm: VmRow,
    project: String,
    created: String,
    tags: Vec<(String, String)>,
    /// The instance's lease terms in words (empty: they cannot be read just now).
    terms: String,
    /// What one click on Extend gives (`8h from now`).
    extension: String,
    /// Whether the lease form is offered (a live VM, with a lease or to an admin).
    can_lease: bool,
    form: ExtendForm,
    errors: FormErrors,
    /// Its cost this month, line by line (none if it cannot be read just now).
    cost: Option<super::costs::VmCostView>,
}

/// The Extend form: an optional length or end time, and where to come back.
#[derive(Deserialize, Default, Clone)]
pub(super) struct ExtendForm {
    /// The lease asked for (empty: one click, the instance's extension).
    #[serde(default)]
    lease: String,
    /// `detail` to come back to the VM's page (else the list).
    #[serde(default)]
    back: String,
}

async fn detail(ui: Ctx, id: web::Path<String>) -> UiResult {
    let id = vm_in_path(&id)?;
    detail_page(&ui, &id, ExtendForm::default(), FormErrors::none(), StatusCode::OK).await
}

async fn detail_page(ui: &Ctx, id: &VmId, form: ExtendForm, errors: FormErrors, status: StatusCode) -> Result<HttpResponse, UiError> {
    let vm = ui.broker.provisioning.get(ui.actor(), id).await?;
    let terms = ui.broker.provisioning.lease_terms(&vm.instance).await.ok();
    let (terms_text_, extension) = match &terms {
        Some(t) => {
            let mut text = terms_text(t);
            text.push_str(&format!(", warned {} before", format_duration(t.warn)));
            (text, format!("{} from now", format_duration(t.extension())))
        }
        None => (String::new(), "the instance's default from now".to_string()),
    };
    let now = ui.broker.clock.now();
    let project = vm.project.to_string();
    let created = when(&vm.created_at);
    let tags = vm.tags.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let can_lease = ui.actor().require_act().is_ok() && takes_lease(vm.status) && (vm.lease.is_some() || ui.actor().is_admin);
    let title = format!("VM {}", if vm.name.is_empty() { vm.id.to_string() } else { vm.name.clone() });
    let c = ui.chrome("vms", title);
    let cost = ui.broker.costs.vm_cost(&vm, None).await.ok().map(|v| super::costs::VmCostView::of(v, ui.actor().is_admin));
    Ok(html(
        status,
        &DetailPage { c, vm: VmRow::of(vm, now), project, created, tags, terms: terms_text_, extension, can_lease, form, errors, cost },
    ))
}

/// Extends (or, with a length, sets) a VM's lease: post/redirect/get with
/// the new expiry as the flash; a refusal as the flash on the list, or next
/// to the field on the VM's page (what was typed kept).
async fn extend(ui: Ctx, id: web::Path<String>, form: CsrfForm<ExtendForm>) -> UiResult {
    let id = vm_in_path(&id)?;
    let form = form.into_inner();
    let on_detail = form.back == "detail";
    let back = if on_detail { format!("/vms/{id}") } else { "/vms".to_string() };
    let ask = match form.lease.trim() {
        "" => None,
        l => match LeaseAsk::parse(l) {
            Ok(a) => Some(a),
            Err(e) => {
                let errs = FormErrors::field("lease", format!("Lease: {}", e.message));
                return detail_page(&ui, &id, form, errs, StatusCode::BAD_REQUEST).await;
            }
        },
    };
    if ask.is_none() && ui.actor().require_act().is_ok() {
        if let Some(why) = needless_extension(&ui, &id).await {
            if on_detail {
                return detail_page(&ui, &id, form, FormErrors::field("lease", why), StatusCode::CONFLICT).await;
            }
            return Ok(ui.redirect_with(&back, &format!("{NOT_EXTENDED} {why}.")));
        }
    }
    match ui.broker.provisioning.set_lease(ui.actor(), &id, ask).await {
        Ok(vm) => {
            let now = ui.broker.clock.now();
            let msg = match &vm.lease {
                Some(l) => format!(
                    "Extended the lease of {}: it now ends {} (in {}), then {}",
                    vm.id,
                    when(&l.expires_at),
                    time_left(l.expires_at - now),
                    l.action
                ),
                None => format!("The lease of {} was removed", vm.id),
            };
            Ok(ui.redirect_with(&back, &msg))
        }
        Err(e @ ServiceError::Forbidden(_)) => {
            let errs = FormErrors::general(format!("{REFUSED} {}. The lease of {id} was not changed.", friendly(&e)));
            if on_detail {
                return detail_page(&ui, &id, form, errs, StatusCode::FORBIDDEN).await;
            }
            Ok(render(&ui.req, &ui.me, &ui.broker, empty_query(), LaunchForm::default(), errs).await)
        }
        Err(e @ (ServiceError::PolicyViolation { .. } | ServiceError::Conflict(_) | ServiceError::Invalid { .. })) => {
            let status = if matches!(e, ServiceError::Invalid { .. }) { StatusCode::BAD_REQUEST } else { StatusCode::CONFLICT };
            if on_detail {
                let errs = FormErrors::field("lease", friendly(&e));
                return detail_page(&ui, &id, form, errs, status).await;
            }
            Ok(ui.redirect_with(&back, &format!("{NOT_EXTENDED} {}. The lease of {id} was not changed.", friendly(&e))))
        }
        Err(e) => Err(e.into()),
    }
}

/// Why one click would not extend VM `id`'s lease but shorten it (it
/// already ends later than the instance's one-click extension from now,
/// e.g. an admin gave it longer), if so; `None` otherwise (also when the
/// VM cannot be read: setting the lease then says why).
async fn needless_extension(ui: &Ctx, id: &VmId) -> Option<String> {
    let vm = ui.broker.provisioning.get(ui.actor(), id).await.ok()?;
    let lease = vm.lease.as_ref().filter(|l| l.ended_at.is_none())?;
    let extension = ui.broker.provisioning.lease_terms(&vm.instance).await.ok()?.extension();
    let now = ui.broker.clock.now();
    (lease.expires_at > now + extension).then(|| {
        format!(
            "the lease of {id} already ends {} (in {}), later than one click would give ({} from now); ask for a longer lease on the VM's page",
            when(&lease.expires_at),
            time_left(lease.expires_at - now),
            format_duration(extension)
        )
    })
}
