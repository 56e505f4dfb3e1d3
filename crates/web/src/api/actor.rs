//! The authenticated caller of a JSON API request: `Authorization: Bearer
//! <token>`, resolved by the identity service.

use super::error::ApiError;
use crate::common::auth::bearer_token;
use actix_web::dev::Payload;
use actix_web::{web, FromRequest, HttpRequest};
use cloudbroker_core::{Actor, Broker, ServiceError};
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
        Box::pin(async move {
            let broker = broker.ok_or_else(|| ApiError(ServiceError::Internal("no broker".into())))?;
            let token = token.ok_or_else(|| {
                ApiError(ServiceError::Unauthenticated("send Authorization: Bearer <token> (get one with POST /api/v1/tokens)".into()))
            })?;
            match broker.identity.resolve_token(&token).await? {
                Some(a) => Ok(ApiActor(a)),
                None => Err(ApiError(ServiceError::Unauthenticated("the token is unknown, expired or revoked".into()))),
            }
        })
    }
}
