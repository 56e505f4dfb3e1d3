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
use super::form::{friendly, when, FormErrors};
use super::session::SignedIn;
use super::{errors, html, page, redirect_with, urlencode, Chrome};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use chrono::{DateTime, Utc};
use cloudbroker_core::domain::lease::format_duration;
use cloudbroker_core::domain::{Cursor, ImageRef, InstanceName, Lease, LeaseAsk, PageRequest, Tags, VmAction, VmId, VmStatus};
use cloudbroker_core::images::Launchable;
use cloudbroker_core::provisioning::{CountRange, InstanceType, LaunchRequest, LaunchTags, LeaseTerms, Vm, VmSort, VmTableQuery};
use cloudbroker_core::{Broker, ServiceError};
use serde::Deserialize;
use std::collections::BTreeMap;

mod bulk;

pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/vms", web::get().to(list))
        .route("/vms", web::post().to(launch))
        .route("/vms/bulk", web::post().to(bulk::confirm))
        .route("/vms/bulk/confirm", web::post().to(bulk::apply))
        .route("/vms/{id}", web::get().to(detail))
        .route("/vms/{id}/terminate", web::get().to(confirm_terminate))
        .route("/vms/{id}/lease", web::post().to(extend))
        .route("/vms/{id}/{action}", web::post().to(act));
}

/// VMs per page of the list unless `?per_page=` says otherwise.
const PAGE: u32 = 25;
/// The most VMs per page `?per_page=` may ask for.
const MAX_PER_PAGE: u32 = 200;

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
    /// When it was created, to the second (`2026-12-07 09:42:10 UTC`: a `title`).
    created: String,
    /// The same as RFC 3339 (a `<time>`'s `datetime`).
    created_iso: String,
    /// How long ago, by the broker's clock (`3 min ago`).
    created_ago: String,
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

/// How long before `now` `t` was, in words (`just now`, `3 min ago`, `2 h ago`, `5 d ago`).
pub(super) fn ago(t: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let s = (now - t).num_seconds();
    match s {
        i64::MIN..=-1 => "just now".into(),
        0..=59 => format!("{s} s ago"),
        60..=3599 => format!("{} min ago", s / 60),
        3600..=86_399 => format!("{} h ago", s / 3600),
        _ => format!("{} d ago", s / 86_400),
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
            created: v.created_at.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
            created_iso: v.created_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            created_ago: ago(v.created_at, now),
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
    /// The subnet to launch into (empty: the instance's `subnet.id` / `vpc.id`, else the cloud's default).
    #[serde(default)]
    subnet_id: String,
    /// The "Termination protection" checkbox (sent only when ticked).
    #[serde(default)]
    termination_protection: String,
    /// The fields of required tags (`tag.<key>`), and anything else sent.
    #[serde(flatten)]
    extra: BTreeMap<String, String>,
}

impl VmsPage {
    /// The header of column `key` (`name`, `state`...).
    fn th(&self, key: &str) -> &SortHeader {
        self.headers.iter().find(|h| h.key == key).unwrap_or(&self.headers[0])
    }
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
    /// This view with every state shown (terminated and failed too).
    show_all: String,
    /// The sortable columns' headers.
    headers: Vec<SortHeader>,
    pager: Pager,
    /// The page sizes offered, with ` selected` on the current one.
    per_page_choices: Vec<(u32, &'static str)>,
    /// The order, kept by the filter form (`sort`, `asc`/`desc`).
    sort: &'static str,
    dir: &'static str,
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

#[derive(Deserialize, Default)]
pub(super) struct ListQuery {
    instance: Option<String>,
    /// Empty: every state but terminated and failed; `all`: every state; else one state.
    state: Option<String>,
    /// Newest first only: the keyset of the previous page's last row (the
    /// Next link gives it, with `page`); other orders page by `page` alone.
    cursor: Option<String>,
    /// The instance to launch on (the form then applies its policies).
    launch: Option<String>,
    /// The image the launch form starts with (the Images page's Launch links).
    image: Option<String>,
    /// The list alone, reloading itself while something is pending (the
    /// view for browsers without JavaScript: the page with the launch form
    /// never reloads itself, so it never wipes what is typed).
    watch: Option<String>,
    /// Search: a VM's exact name, or a tag as `key=value`.
    q: Option<String>,
    /// The column sorted by (`name`, `state`, `type`, `instance`, `created`, `cost`).
    sort: Option<String>,
    /// `asc` or `desc` (empty: the column's own first direction).
    dir: Option<String>,
    /// The page, from 1.
    page: Option<String>,
    /// VMs per page (1 to 200, default 25).
    per_page: Option<String>,
}

/// What the table shows (its filters, order and page), as the URL says
/// it: every link of the page (sort headers, pages, "show all") keeps the rest.
#[derive(Clone)]
pub(super) struct TableView {
    instance: String,
    state: String,
    search: String,
    sort: VmSort,
    desc: bool,
    page: u64,
    per_page: u32,
    watch: bool,
}

impl TableView {
    /// The view `q` asks for, or why it cannot be shown (400).
    fn of(q: &ListQuery) -> Result<Self, ServiceError> {
        let sort = match q.sort.as_deref().unwrap_or_default() {
            "" => VmSort::Created,
            s => VmSort::parse(s).ok_or_else(|| {
                ServiceError::invalid_field(
                    "sort",
                    format!("the list is sorted by name, state, type, instance, created or cost, not '{s}'"),
                )
            })?,
        };
        let desc = match q.dir.as_deref().unwrap_or_default() {
            "" => sort.desc_first(),
            "asc" => false,
            "desc" => true,
            d => return Err(ServiceError::invalid_field("dir", format!("the direction is asc or desc, not '{d}'"))),
        };
        let page = match q.page.as_deref().unwrap_or_default() {
            "" => 1,
            p => p
                .parse::<u64>()
                .ok()
                .filter(|p| (1..=1_000_000).contains(p))
                .ok_or_else(|| ServiceError::invalid_field("page", "the page is a whole number, 1 or more".to_string()))?,
        };
        let per_page =
            match q.per_page.as_deref().unwrap_or_default() {
                "" => PAGE,
                n => n.parse::<u32>().ok().filter(|n| (1..=MAX_PER_PAGE).contains(n)).ok_or_else(|| {
                    ServiceError::invalid_field("per_page", format!("per_page is a whole number from 1 to {MAX_PER_PAGE}"))
                })?,
            };
        Ok(Self {
            instance: q.instance.clone().unwrap_or_default(),
            state: q.state.clone().unwrap_or_default(),
            search: q.q.as_deref().unwrap_or_default().trim().to_string(),
            sort,
            desc,
            page,
            per_page,
            watch: q.watch.as_deref().is_some_and(|w| !w.is_empty()),
        })
    }

    /// This view's URL, at `page`, with the keyset `cursor` when given.
    fn href_at(&self, page: u64, cursor: Option<&str>) -> String {
        let mut u = format!("/vms?instance={}&state={}&q={}", urlencode(&self.instance), urlencode(&self.state), urlencode(&self.search));
        if self.sort != VmSort::Created || !self.desc {
            u.push_str(&format!("&sort={}&dir={}", self.sort.as_str(), if self.desc { "desc" } else { "asc" }));
        }
        if self.per_page != PAGE {
            u.push_str(&format!("&per_page={}", self.per_page));
        }
        if page > 1 {
            u.push_str(&format!("&page={page}"));
        }
        if let Some(c) = cursor {
            u.push_str(&format!("&cursor={}", urlencode(c)));
        }
        if self.watch {
            u.push_str("&watch=1");
        }
        u
    }

    /// The same view with every state shown, from its first page.
    pub(super) fn show_all(&self) -> String {
        Self { state: "all".into(), ..self.clone() }.href_at(1, None)
    }

    /// The header link of column `col`: sorted by it (the other way round
    /// when it is the column sorted by), from the first page.
    fn header(&self, col: VmSort, label: &'static str) -> SortHeader {
        let current = self.sort == col;
        let desc = if current { !self.desc } else { col.desc_first() };
        let href = Self { sort: col, desc, ..self.clone() }.href_at(1, None);
        let aria = match (current, self.desc) {
            (false, _) => "none",
            (true, true) => "descending",
            (true, false) => "ascending",
        };
        let mark = match (current, self.desc) {
            (false, _) => "",
            (true, true) => "▼",
            (true, false) => "▲",
        };
        SortHeader { key: col.as_str(), label, href, aria, mark }
    }

    /// The states shown: `None` for every one.
    fn states(&self) -> Result<Option<Vec<VmStatus>>, ServiceError> {
        Ok(match self.state.as_str() {
            "" => Some(VmStatus::ALL.into_iter().filter(|s| s.is_live()).collect()),
            "all" => None,
            s => Some(vec![VmStatus::parse(s)?]),
        })
    }
}

/// A sortable column's header.
pub(super) struct SortHeader {
    /// The column as the URL names it (`data-sort`).
    key: &'static str,
    label: &'static str,
    href: String,
    /// `aria-sort`: `ascending`, `descending` or `none`.
    aria: &'static str,
    /// ▲ or ▼ on the column sorted by.
    mark: &'static str,
}

/// The pager: where the page is, and the links around it.
pub(super) struct Pager {
    /// `1–25 of 120` (`0 of 0`: nothing matches).
    range: String,
    first: Option<String>,
    prev: Option<String>,
    next: Option<String>,
}

async fn render(req: &HttpRequest, me: &SignedIn, broker: &Broker, q: ListQuery, form: LaunchForm, errs: FormErrors) -> HttpResponse {
    let actor = &me.session.actor;
    let view = match TableView::of(&q) {
        Ok(v) => v,
        Err(e) => return errors::service_error_page(req, &e),
    };
    let watch = view.watch;
    let filter_instance = view.instance.clone();
    let filter_state = view.state.clone();
    let search = view.search.clone();
    // The current project's VMs, whoever launched them (admins too: theirs is the project they work in).
    let mut query = VmTableQuery {
        project: Some(actor.project.clone()),
        sort: view.sort,
        desc: view.desc,
        offset: (view.page - 1) * u64::from(view.per_page),
        limit: view.per_page,
        ..VmTableQuery::default()
    };
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
    match view.states() {
        Ok(s) => query.states = s,
        Err(e) => return errors::service_error_page(req, &e),
    }
    // A malformed cursor is refused wherever it is sent; it is followed newest first only.
    match PageRequest::parse(None, q.cursor.as_deref()) {
        Ok(p) => query.after = p.after.filter(|_| view.sort == VmSort::Created && view.desc),
        Err(e) => return errors::service_error_page(req, &e.into()),
    }
    // Every VM's cost this month: one query for the page (and the order, sorted by cost).
    let month_costs = broker.costs.month_costs(actor).await.unwrap_or_default();
    let cost_keys: BTreeMap<String, i64> = month_costs.iter().map(|(id, c)| (id.clone(), c.cost.0)).collect();
    let p = match broker.provisioning.table(actor, &query, &cost_keys).await {
        Ok(p) => p,
        Err(e) => return errors::service_error_page(req, &e),
    };
    let pending = p.items.iter().any(|v| v.status.is_transitional() || v.status == VmStatus::Requested);
    let pager = pager(&view, p.total, p.items.len(), p.next.as_ref());
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
    if view.sort == VmSort::Created {
        in_launch_order(&mut rows);
    }
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
    let headers = [
        (VmSort::Name, "Name"),
        (VmSort::State, "State"),
        (VmSort::Instance, "Instance"),
        (VmSort::Type, "Type"),
        (VmSort::Created, "Created"),
        (VmSort::Cost, "Cost this month"),
    ]
    .into_iter()
    .map(|(col, label)| view.header(col, label))
    .collect();
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
            show_all: view.show_all(),
            headers,
            pager,
            per_page_choices: [10, 25, 50, 100, 200]
                .into_iter()
                .chain((![10, 25, 50, 100, 200].contains(&view.per_page)).then_some(view.per_page))
                .map(|n| (n, if n == view.per_page { " selected" } else { "" }))
                .collect(),
            sort: view.sort.as_str(),
            dir: if view.desc { "desc" } else { "asc" },
            filter_instance,
            filter_state,
            search,
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

/// The pager of `view` showing `shown` of `total` VMs; `next`: the keyset
/// of its last row (newest first), for the Next link.
fn pager(view: &TableView, total: u64, shown: usize, next: Option<&Cursor>) -> Pager {
    let from = (view.page - 1) * u64::from(view.per_page);
    let range = if shown == 0 {
        if total == 0 {
            "0 of 0".to_string()
        } else {
            format!("none here of {total}")
        }
    } else {
        format!("{}–{} of {total}", from + 1, from + shown as u64)
    };
    let more = from + (shown as u64) < total;
    let next = more.then(|| view.href_at(view.page + 1, next.map(|c| c.encode()).as_deref()));
    let prev = (view.page > 1).then(|| view.href_at(view.page - 1, None));
    let first = (view.page > 1).then(|| view.href_at(1, None));
    Pager { range, first, prev, next }
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
    let image = q.image.clone().unwrap_or_default();
    let form = LaunchForm { count: "1".into(), instance, image, ..LaunchForm::default() };
    render(&req, &me, &broker, q.into_inner(), form, FormErrors::none()).await
}

fn empty_query() -> ListQuery {
    ListQuery::default()
}

/// The list under a refused launch: every state, so the VMs a failed
/// launch left (the message points at them) are in it.
fn after_launch_query() -> ListQuery {
    ListQuery { state: Some("all".into()), ..ListQuery::default() }
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
        errs.add("name", "A name of only spaces is no name: type one");
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
    let subnet_id = match f.subnet_id.trim() {
        "" => None,
        s if cloudbroker_connector_api::params::is_cloud_id(s, "subnet") => Some(s.to_string()),
        _ => {
            errs.add("subnet_id", "A subnet id is subnet- then lowercase letters and digits (e.g. subnet-0a1b2c3d)");
            None
        }
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
    req.subnet_id = subnet_id;
    req.termination_protection = !f.termination_protection.is_empty();
    Ok(req)
}

/// What the launch form says when the name is left empty.
const NAME_NEEDED: &str = "Give the VM a name: it is how the list, the search and the cloud's Name tag show it";

async fn launch(ui: Ctx, form: CsrfForm<LaunchForm>) -> HttpResponse {
    let Ctx { req, me, broker } = ui;
    let s = &me.session;
    let form = form.into_inner();
    let request = match launch_request(&form) {
        Ok(r) => r,
        Err(mut errs) => {
            if form.name.is_empty() {
                errs.add("name", NAME_NEEDED);
            }
            return render(&req, &me, &broker, empty_query(), form, errs).await;
        }
    };
    // The form asks for a name (API and EC2 launches may be nameless). The
    // launch's own checks run first, without launching, so a refusal
    // (quota, policy, credentials, role) is said with it, all at once.
    if form.name.trim().is_empty() {
        return match broker.provisioning.check_launch(&s.actor, request).await {
            Ok(()) => render(&req, &me, &broker, empty_query(), form, FormErrors::field("name", NAME_NEEDED)).await,
            Err(e) => refused_launch(&req, &me, &broker, form, e, true).await,
        };
    }
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
        Err(e) => refused_launch(&req, &me, &broker, form, e, false).await,
    }
}

/// The launch form again with the service's refusal `e` next to its field
/// (and, `name_needed`, the empty name's message unless the name has one).
async fn refused_launch(
    req: &HttpRequest,
    me: &SignedIn,
    broker: &Broker,
    form: LaunchForm,
    e: ServiceError,
    name_needed: bool,
) -> HttpResponse {
    if let ServiceError::Forbidden(_) = e {
        let errs = FormErrors::general(format!("{REFUSED} {}. Nothing was launched.", friendly(&e)));
        return render(req, me, broker, empty_query(), LaunchForm::default(), errs).await;
    }
    let mut errs = FormErrors::from_service(&e, &["instance", "image", "instance_type", "count", "name", "tags", "lease", "subnet_id"]);
    match &e {
        ServiceError::NotFound(cloudbroker_core::Resource::CloudObject { .. }) => {
            errs = FormErrors::field("subnet_id", format!("{}: name one of your project's subnets, or none.", friendly(&e)));
        }
        // The cloud's "no such subnet" (a subnet the broker has no record of) goes next to the field too.
        ServiceError::Cloud(c) if c.code().is_some_and(|code| code.starts_with("InvalidSubnetID")) => {
            errs = FormErrors::field("subnet_id", format!("{}: name one of your project's subnets, or none.", friendly(&e)));
        }
        ServiceError::NotFound(r) if r.to_string().starts_with("credentials") => {
            errs = FormErrors::field("instance", friendly(&e));
        }
        ServiceError::Invalid { field: Some("instance"), message } if message.starts_with("no credentials") => {
            errs = FormErrors::field(
                "instance",
                format!("You have no credentials for {}: save them on the Credentials page, then launch again.", form.instance.trim()),
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
    if name_needed && errs.of("name").is_none() {
        errs.add("name", NAME_NEEDED);
    }
    // A launch that failed in the cloud left failed VMs: the list shows every state.
    let q = if name_needed { empty_query() } else { after_launch_query() };
    render(req, me, broker, q, form, errs).await
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

/// A button's form on a VM: where to come back (`detail`: the VM's page, else the list).
#[derive(Deserialize, Default)]
pub(super) struct ActForm {
    #[serde(default)]
    back: String,
}

async fn act(ui: Ctx, path: web::Path<(String, String)>, form: CsrfForm<ActForm>) -> UiResult {
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
    let back = if form.back == "detail" { format!("/vms/{}", vm.id) } else { "/vms".to_string() };
    Ok(ui.redirect_with(&back, &format!("{} {}: now {}", action.as_str(), vm.id, vm.status.as_str())))
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
    facts: Facts,
    /// Its states and what was done to it, oldest first.
    history: Vec<HistoryRow>,
    /// The "Create image" form (see [`super::user_images`]).
    image: super::user_images::ImageSection,
}

/// What the VM's page says beyond the list's row.
struct Facts {
    /// The cloud's id (`i-…`; empty: none yet).
    cloud_id: String,
    /// The cloud image id launched.
    image_id: String,
    private_ip: String,
    public_ip: String,
    /// The key pair it was launched with (empty: the profile's SSH key, if any).
    key_name: String,
    /// The credential it was launched with, in words.
    credential: String,
    /// The SSH command line (empty: it has no address, see `ssh_note`).
    ssh: String,
    /// What to know about the SSH line, or why there is none.
    ssh_note: String,
    /// When it was last changed, to the second.
    updated: String,
    /// The subnet and VPC the cloud placed it in (`None`: not known).
    network: Option<(String, String)>,
}

/// One line of the history table.
struct HistoryRow {
    /// To the second, in UTC.
    at: String,
    iso: String,
    /// The state taken (empty: an event, not a state).
    state: String,
    reason: String,
}

/// The login user most images of this name expect (a guess from the
/// image's name: `ubuntu`, `admin` for Debian, `ec2-user` for Amazon
/// Linux, RHEL and Fedora-like; `USER` when nothing fits).
fn login_user(image: &str) -> &'static str {
    let i = image.to_ascii_lowercase();
    if i.contains("ubuntu") {
        "ubuntu"
    } else if i.contains("debian") || i.starts_with("deb") {
        "admin"
    } else if ["amzn", "amazon", "al2", "rhel", "centos", "fedora"].iter().any(|k| i.contains(k)) {
        "ec2-user"
    } else {
        "USER"
    }
}

/// The SSH command line of `v` and its note, or (empty, why there is none).
fn ssh_line(v: &Vm) -> (String, String) {
    let Some(addr) = v.address.clone().filter(|a| !a.is_empty()) else {
        let why = if v.status.is_live() {
            "No address yet: the SSH command appears once the cloud gives the VM one."
        } else {
            "No address: the VM has ended."
        };
        return (String::new(), why.to_string());
    };
    let user = login_user(&v.image);
    let mut note = match user {
        "USER" => "Replace USER with the image's login user.".to_string(),
        u => format!("'{u}' is the usual login user of {} images; another image may need another user.", v.image),
    };
    let line = match v.key_name.as_deref().filter(|k| !k.is_empty()) {
        Some(k) => format!("ssh -i ~/.ssh/{k}.pem {user}@{addr}"),
        None => {
            note.push_str(" It was launched with no key pair: the SSH key of the launcher's profile, if any, was installed.");
            format!("ssh {user}@{addr}")
        }
    };
    (line, note)
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
    detail_page_with(ui, id, form, errors, None, status).await
}

/// The VM's page, its "Create image" form as typed with its messages (`None`: empty).
pub(super) async fn detail_page_with(
    ui: &Ctx,
    id: &VmId,
    form: ExtendForm,
    errors: FormErrors,
    image: Option<(super::user_images::ImageForm, FormErrors)>,
    status: StatusCode,
) -> Result<HttpResponse, UiError> {
    let vm = ui.broker.provisioning.get(ui.actor(), id).await?;
    let image = super::user_images::ImageSection::of(ui, &vm, image);
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
    let credential = match ui.broker.provisioning.credential_used(ui.actor(), id).await {
        Ok(Some(c)) => {
            let whose = match c.scope.as_str() {
                "user" => format!("the personal credentials of {}", c.owner),
                "project" => format!("the credentials of project {}", c.owner),
                "none" => format!("none needed on {} (the identity of {} there)", vm.instance, c.owner),
                _ => format!("the shared credentials '{}'", c.owner),
            };
            match c.hint {
                Some(h) if !h.is_empty() => format!("{whose} (access key {h})"),
                _ => whose,
            }
        }
        Ok(None) => "credentials no longer stored".to_string(),
        Err(_) => "cannot be read just now".to_string(),
    };
    let history = ui
        .broker
        .provisioning
        .history(ui.actor(), id)
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|l| HistoryRow {
            at: l.at.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
            iso: l.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            state: l.state.map(|s| s.as_str().to_string()).unwrap_or_default(),
            reason: l.reason,
        })
        .collect();
    let (ssh, ssh_note) = ssh_line(&vm);
    let mut placed = [vm.clone()];
    let network = match ui.broker.provisioning.fill_networks(&mut placed).await {
        Ok(()) => placed[0].network.take(),
        Err(_) => None,
    };
    let facts = Facts {
        cloud_id: vm.cloud_id.clone().unwrap_or_default(),
        image_id: vm.image_id.clone(),
        private_ip: vm.private_ip.clone().unwrap_or_default(),
        public_ip: vm.public_ip.clone().unwrap_or_default(),
        key_name: vm.key_name.clone().unwrap_or_default(),
        credential,
        ssh,
        ssh_note,
        updated: vm.updated_at.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
        network,
    };
    Ok(html(
        status,
        &DetailPage {
            c,
            vm: VmRow::of(vm, now),
            project,
            created,
            tags,
            terms: terms_text_,
            extension,
            can_lease,
            form,
            errors,
            cost,
            facts,
            history,
            image,
        },
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
