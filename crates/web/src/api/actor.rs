//! The authenticated caller of a JSON API request: `Authorization: Bearer
//! <token>`, resolved by the identity service, in the project the query's
//! `project` names (entered through `Projects::enter`, which checks the
//! membership: a malformed name is a 400 on `project`, a project the caller
//! is no member of a 404), else in its personal project.

use super::error::ApiError;
use crate::common::auth::bearer_token;
use actix_web::dev::Payload;
use actix_web::{web, FromRequest, HttpRequest};
use cloudbroker_core::domain::ProjectName;
use cloudbroker_core::{Actor, Broker, Resource, ServiceError};
use std::future::Future;
use std::pin::Pin;

/// The authenticated caller of an API request.
pub struct ApiActor(pub Actor);

impl ApiActor {
    /// Resolves the caller of a request (outside the extractor machinery).
    pub async fn of(req: &HttpRequest) -> Result<Self, ApiError> {
        ApiActor::from_request(req, &mut Payload::None).await
    }
}

impl FromRequest for ApiActor {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let broker = req.app_data::<web::Data<Broker>>().cloned();
        let token = bearer_token(req);
        let project = project_in_query(req.query_string());
        Box::pin(async move {
            let broker = broker.ok_or_else(|| ApiError(ServiceError::Internal("no broker".into())))?;
            let token = token.ok_or_else(|| {
                ApiError(ServiceError::Unauthenticated("send Authorization: Bearer <token> (get one with POST /api/v1/tokens)".into()))
            })?;
            // A deployment VM's credential opens the exchange alone.
            if token.starts_with(cloudbroker_core::deployments::exchange::VM_TOKEN_PREFIX) {
                return Err(ApiError(ServiceError::Unauthenticated(
                    "a deployment VM's token opens only /api/v1/exchange; use a user's token (POST /api/v1/tokens)".into(),
                )));
            }
            let actor = match broker.identity.resolve_token(&token).await? {
                Some(a) => a,
                None => return Err(ApiError(ServiceError::Unauthenticated("the token is unknown, expired or revoked".into()))),
            };
            match project? {
                Some(p) => Ok(ApiActor(broker.projects.enter(actor, &p).await?)),
                None => Ok(ApiActor(actor)),
            }
        })
    }
}

/// The project the query names (`?project=NAME`; absent: none). A name
/// breaking the rules is a 400 on `project`; a reserved one (`system`)
/// names no project (404).
pub fn project_in_query(query: &str) -> Result<Option<ProjectName>, ApiError> {
    let pairs = web::Query::<Vec<(String, String)>>::from_query(query).map_err(|e| ApiError::invalid(format!("query: {e}")))?.into_inner();
    let mut found = None;
    for (k, v) in pairs {
        if k != "project" {
            continue;
        }
        if found.is_some() {
            return Err(ApiError::field("project", "give `project` once"));
        }
        found = Some(v);
    }
    let Some(raw) = found else { return Ok(None) };
    match ProjectName::parse(&raw) {
        Ok(p) => Ok(Some(p)),
        // Well-formed but reserved: no project has that name.
        Err(_) if ProjectName::parse(&format!("x{raw}")).is_ok() && raw.as_bytes().first().is_some_and(u8::is_ascii_alphanumeric) => {
            Err(ApiError(ServiceError::NotFound(Resource::Record(format!("project '{raw}'")))))
        }
        Err(e) => Err(ApiError(e.into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_project_is_read_from_the_query() {
        assert!(project_in_query("").unwrap().is_none());
        assert!(project_in_query("limit=5").unwrap().is_none());
        assert_eq!(project_in_query("limit=5&project=team-a").unwrap().unwrap().as_str(), "team-a");
        assert_eq!(project_in_query("project=team%2Da").unwrap().unwrap().as_str(), "team-a");
        let e = project_in_query("project=Team%20A").unwrap_err();
        assert!(matches!(e.0, ServiceError::Invalid { field: Some("project"), .. }), "{e:?}");
        assert!(matches!(project_in_query("project=").unwrap_err().0, ServiceError::Invalid { field: Some("project"), .. }));
        assert!(matches!(project_in_query("project=a&project=b").unwrap_err().0, ServiceError::Invalid { field: Some("project"), .. }));
        assert!(matches!(project_in_query("project=system").unwrap_err().0, ServiceError::NotFound(_)));
    }
}
