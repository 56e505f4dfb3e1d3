//! The server-rendered UI (askama): sign-in, sessions and CSRF, the profile,
//! credentials and VMs for every user, projects (the header's switcher
//! picks the project every page acts in), and the admin pages (system
//! configuration, connectors, native images, users, governance). Pages behind sign-in
//! live in one scope guarded by [`session::require_session`] (handlers
//! take the request context [`context::Ctx`]: the signed-in user, the
//! broker, the layout); `/admin` gets [`session::require_admin`] on top.
//! Every state-changing form is a [`context::CsrfForm`], checked against the
//! session's CSRF token before the handler runs; a failed submit comes back
//! filled, with the message next to the field; a handler's
//! [`errors::UiError`] becomes a page with the request's id, never a cause.
//! Handlers are thin over the same core service calls the JSON API makes.

pub mod addresses;
pub mod applications;
pub mod audit;
pub mod budgets;
pub mod confirm;
pub mod context;
pub mod costs;
pub mod credentials;
pub mod deploy_diagram;
pub mod deployments;
pub mod errors;
pub mod form;
pub mod governance;
pub mod images;
pub mod keypairs;
pub mod login;
pub mod one_time;
pub mod overview;
pub mod prices;
pub mod profile;
pub mod projects;
pub mod resources;
pub mod security_groups;
pub mod session;
pub mod shared;
pub mod system;
pub mod user_images;
pub mod user_resources;
pub mod users;
pub mod vms;
pub mod volumes;

use actix_web::cookie::Cookie;
use actix_web::http::header;
use actix_web::middleware::from_fn;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use base64::Engine;
use cloudbroker_core::Broker;

pub use session::SESSION_COOKIE;

/// The flash message cookie (post/redirect/get).
pub const FLASH_COOKIE: &str = "cb_flash";

/// Public UI routes (sign-in, assets).
pub fn public_routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/login", web::get().to(login::login_form))
        .route("/login", web::post().to(login::login))
        .route("/static/style.css", web::get().to(style))
        .route("/static/ui.js", web::get().to(script));
}

/// UI routes behind sign-in. Registered last: the scope matches every path.
pub fn signed_in_routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("")
            .app_data(errors::form_config())
            .app_data(errors::query_config())
            .app_data(errors::path_config())
            .wrap(from_fn(session::require_session))
            .service(
                web::scope("/admin")
                    .wrap(from_fn(session::require_admin))
                    .configure(overview::routes)
                    .configure(system::routes)
                    .configure(images::routes)
                    .configure(users::routes)
                    .configure(shared::routes)
                    .configure(audit::routes)
                    .configure(governance::routes)
                    .configure(budgets::routes)
                    .configure(prices::routes)
                    .configure(confirm::admin_routes)
                    .default_service(web::to(errors::not_found)),
            )
            .route("/", web::get().to(profile::home))
            .route("/logout", web::post().to(login::logout))
            .configure(profile::routes)
            .configure(credentials::routes)
            .configure(user_images::routes)
            .configure(vms::routes)
            .configure(applications::routes)
            .configure(deployments::routes)
            .configure(costs::routes)
            .configure(projects::routes)
            .configure(keypairs::routes)
            .configure(volumes::routes)
            .configure(addresses::routes)
            .configure(security_groups::routes)
            .configure(confirm::routes)
            .default_service(web::to(errors::not_found)),
    );
}

/// What every signed-in page's layout shows: who, where, the CSRF token for
/// the sign-out form, and the flash message of the previous action.
pub struct Chrome {
    pub user: String,
    pub is_admin: bool,
    pub csrf: String,
    /// The navigation entry of this page (`vms`, `admin/system`...).
    pub active: &'static str,
    pub title: String,
    pub flash: Option<String>,
    /// Reload the page every few seconds (something is pending).
    pub refresh: bool,
    /// The project this page acts in, the user's role there, and whether
    /// it is the user's personal project.
    pub project: String,
    pub role: String,
    pub personal: bool,
    /// The projects the header's switcher offers.
    pub projects: Vec<session::ProjectChoice>,
    /// The budget banner: this month's alerts (empty for most pages).
    pub budget_alerts: Vec<budgets::Banner>,
}

impl Chrome {
    /// The layout for a signed-in user.
    pub fn new(me: &session::SignedIn, active: &'static str, title: impl Into<String>) -> Self {
        let actor = &me.session.actor;
        Self {
            user: actor.name.to_string(),
            is_admin: actor.is_admin,
            csrf: me.session.csrf_token.clone(),
            active,
            title: title.into(),
            flash: me.flash.clone(),
            refresh: false,
            project: actor.project.to_string(),
            role: actor.role.to_string(),
            personal: actor.in_personal_project(),
            projects: me.projects.clone(),
            budget_alerts: budgets::banner(&me.budget_alerts),
        }
    }

    /// The layout of a page shown to nobody in particular (sign-in, errors).
    pub fn anonymous(title: impl Into<String>) -> Self {
        Self {
            user: String::new(),
            is_admin: false,
            csrf: String::new(),
            active: "",
            title: title.into(),
            flash: None,
            refresh: false,
            project: String::new(),
            role: String::new(),
            personal: true,
            projects: Vec::new(),
            budget_alerts: Vec::new(),
        }
    }

    /// Whether the flash message says something was refused (shown as an error).
    pub fn flash_is_refusal(&self) -> bool {
        self.flash.as_deref().is_some_and(|m| {
            m.starts_with("Not allowed")
                || m.starts_with(vms::NOT_EXTENDED)
                || m.starts_with("You are not a member")
                || m.contains("could not be opened just now")
        })
    }

    /// Whether the flash message says something partly failed (shown amber).
    pub fn flash_is_warning(&self) -> bool {
        self.flash
            .as_deref()
            .is_some_and(|m| m.starts_with(system::RELOAD_FAILED) || m.contains("problem(s)") || images::flash_is_warning(m))
    }

    /// Whether the user may launch and act here (member, owner, or admin).
    pub fn can_act(&self) -> bool {
        self.is_admin || self.role != "viewer"
    }

    /// Whether `entry` is the current navigation entry (for `aria-current`).
    pub fn is(&self, entry: &str) -> bool {
        self.active == entry
    }
}

/// Renders a template with a status (no caching: pages hold a CSRF token).
pub(crate) fn html(status: actix_web::http::StatusCode, t: &impl Template) -> HttpResponse {
    match t.render() {
        Ok(body) => {
            HttpResponse::build(status).content_type("text/html; charset=utf-8").insert_header(("Cache-Control", "no-store")).body(body)
        }
        Err(e) => {
            tracing::error!(error = %e, "template");
            HttpResponse::InternalServerError().content_type("text/plain").body("template error")
        }
    }
}

/// Renders a page with 200.
pub(crate) fn page(t: &impl Template) -> HttpResponse {
    html(actix_web::http::StatusCode::OK, t)
}

/// A 303 to another page (post/redirect/get).
pub(crate) fn redirect(to: &str) -> HttpResponse {
    HttpResponse::SeeOther().insert_header((header::LOCATION, to)).finish()
}

/// A 303 to another page that shows `message` once there.
pub(crate) fn redirect_with(req: &HttpRequest, broker: &Broker, to: &str, message: &str) -> HttpResponse {
    let mut r = redirect(to);
    let _ = r.add_cookie(&flash_cookie(req, broker, message));
    r
}

/// The cookie that shows `message` once on the next page.
pub(crate) fn flash_cookie<'a>(req: &HttpRequest, broker: &Broker, message: &str) -> Cookie<'a> {
    let value = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(shortened(message, 1500));
    session::cookie(req, broker, FLASH_COOKIE, value)
}

/// `message` within `max` characters, cut at a word with "…" when longer
/// (never mid-word).
fn shortened(message: &str, max: usize) -> String {
    if message.chars().count() <= max {
        return message.to_string();
    }
    let head: String = message.chars().take(max).collect();
    let cut = head.rfind(' ').unwrap_or(head.len());
    format!("{}…", head[..cut].trim_end_matches([',', ';', ':']))
}

/// The flash message a request carries, if any.
pub(crate) fn read_flash(c: Option<Cookie<'_>>) -> Option<String> {
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(c?.value()).ok()?;
    String::from_utf8(raw).ok().filter(|m| !m.is_empty())
}

/// Everything but the RFC 3986 unreserved set `A-Z a-z 0-9 - _ . ~`.
const QUERY_VALUE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

/// Percent-encodes a query-string value (uppercase `%XX`, space as `%20`).
pub(crate) fn urlencode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, QUERY_VALUE).to_string()
}

async fn style() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/css")
        .insert_header(("Cache-Control", "max-age=300"))
        .body(include_str!("../../../../web/static/style.css"))
}

async fn script() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/javascript")
        .insert_header(("Cache-Control", "max-age=300"))
        .body(include_str!("../../../../web/static/ui.js"))
}
