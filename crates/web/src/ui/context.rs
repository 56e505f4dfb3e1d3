//! What a signed-in page handler takes from its request, extracted once:
//! [`Ctx`] (the request, the signed-in user already entered in the
//! request's project, the broker, and the layout data built from them) and [`CsrfForm`], a submitted form whose CSRF
//! token has already been checked against the session's — a handler that
//! takes one cannot forget the check, and no form struct carries the token.

use super::errors::UiError;
use super::session::{csrf_ok, SignedIn};
use super::{redirect_with, Chrome};
use actix_web::dev::Payload;
use actix_web::{web, FromRequest, HttpMessage, HttpRequest, HttpResponse};
use cloudbroker_core::domain::ProjectName;
use cloudbroker_core::{Actor, Broker, RequestId};
use futures::future::LocalBoxFuture;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use std::future::{ready, Ready};

/// The request context of a page in the signed-in scope.
pub struct Ctx {
    pub req: HttpRequest,
    pub me: SignedIn,
    pub broker: web::Data<Broker>,
}

impl Ctx {
    /// The signed-in user.
    pub fn actor(&self) -> &Actor {
        &self.me.session.actor
    }

    /// The signed-in user entered in `project` (the current project's
    /// actor as it is; another one's membership checked: NotFound for a
    /// project the user is no member of, unless an admin).
    pub async fn actor_in(&self, project: &ProjectName) -> Result<Actor, UiError> {
        let actor = self.actor();
        if &actor.project == project {
            return Ok(actor.clone());
        }
        Ok(self.broker.projects.enter(actor.clone(), project).await?)
    }

    /// The layout of this user's page `active` (its navigation entry).
    pub fn chrome(&self, active: &'static str, title: impl Into<String>) -> Chrome {
        Chrome::new(&self.me, active, title)
    }

    /// A 303 to `to` that shows `message` once there.
    pub fn redirect_with(&self, to: &str, message: &str) -> HttpResponse {
        redirect_with(&self.req, &self.broker, to, message)
    }

    /// The request's id (the one in its log lines and `X-Request-Id`).
    pub fn request_id(&self) -> RequestId {
        request_id(&self.req)
    }
}

/// The id the HTTP edge gave `req` (a fresh one for a request that did not
/// pass it, as in a bare test app).
pub fn request_id(req: &HttpRequest) -> RequestId {
    req.extensions().get::<RequestId>().cloned().unwrap_or_else(RequestId::generate)
}

impl FromRequest for Ctx {
    type Error = actix_web::Error;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let me = req.extensions().get::<SignedIn>().cloned();
        let broker = req.app_data::<web::Data<Broker>>().cloned();
        ready(match (me, broker) {
            (Some(me), Some(broker)) => Ok(Ctx { req: req.clone(), me, broker }),
            _ => Err(actix_web::error::ErrorInternalServerError("page outside the signed-in scope")),
        })
    }
}

/// A form with no fields of its own (a button: delete, revoke, sign out).
#[derive(Deserialize, Default)]
pub struct NoFields {}

/// The body of a form as sent: the CSRF token and the form's own fields.
#[derive(Deserialize)]
struct WithCsrf<T> {
    csrf: Option<String>,
    #[serde(flatten)]
    fields: T,
}

/// A submitted form (`application/x-www-form-urlencoded`, read with the
/// scope's `FormConfig`, so a malformed one gets the 400 page) that carries
/// the session's CSRF token; without it, the 403 page and nothing changes.
pub struct CsrfForm<T = NoFields>(pub T);

impl<T> CsrfForm<T> {
    /// The form's fields.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> std::ops::Deref for CsrfForm<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: DeserializeOwned + 'static> FromRequest for CsrfForm<T> {
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let req = req.clone();
        let form = web::Form::<WithCsrf<T>>::from_request(&req, payload);
        Box::pin(async move {
            let WithCsrf { csrf, fields } = form.await?.into_inner();
            let ok = req.extensions().get::<SignedIn>().is_some_and(|me| csrf_ok(&me.session, csrf.as_deref()));
            if ok {
                Ok(CsrfForm(fields))
            } else {
                Err(UiError::Csrf.into_error(&req))
            }
        })
    }
}
