//! The server-rendered UI (askama): sign-in, sessions and CSRF, the profile.
//! Pages behind sign-in live in one scope guarded by [`session::require_session`]
//! (handlers receive the signed-in user as [`session::SignedIn`]); admin pages
//! get [`session::require_admin`] on top. Every state-changing form carries
//! the session's CSRF token; errors become form messages, never stack traces.

pub mod login;
pub mod profile;
pub mod session;

use actix_web::http::header;
use actix_web::middleware::from_fn;
use actix_web::{web, HttpResponse};
use askama::Template;

pub use session::SESSION_COOKIE;

/// Public UI routes (sign-in, assets).
pub fn public_routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/login", web::get().to(login::login_form))
        .route("/login", web::post().to(login::login))
        .route("/static/style.css", web::get().to(style));
}

/// UI routes behind sign-in. Registered last: the scope matches every path.
pub fn signed_in_routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("")
            .wrap(from_fn(session::require_session))
            .route("/", web::get().to(profile::home))
            .route("/logout", web::post().to(login::logout))
            .route("/profile/ssh-key", web::post().to(profile::set_ssh_key)),
    );
}

/// Renders a template with a status (no caching: pages hold a CSRF token).
pub(crate) fn html(status: actix_web::http::StatusCode, t: &impl Template) -> HttpResponse {
    match t.render() {
        Ok(body) => {
            HttpResponse::build(status).content_type("text/html; charset=utf-8").insert_header(("Cache-Control", "no-store")).body(body)
        }
        Err(e) => {
            tracing::error!(error = %e, "template");
            HttpResponse::InternalServerError().body("template error")
        }
    }
}

/// A 303 to another page (post/redirect/get).
pub(crate) fn redirect(to: &str) -> HttpResponse {
    HttpResponse::SeeOther().insert_header((header::LOCATION, to)).finish()
}

async fn style() -> HttpResponse {
    HttpResponse::Ok().content_type("text/css").body(include_str!("../../../../web/static/style.css"))
}
