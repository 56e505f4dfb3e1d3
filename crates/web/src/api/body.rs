//! Request bodies and parameters as the document describes them: a body is
//! a JSON object (serde would also take an array for a struct), a whole
//! number may be written `5` or `5.0` (JSON Schema's `integer` allows both),
//! and `limit`/`cursor` are read the same way by every list.

use super::error::ApiError;
use actix_web::dev::Payload;
use actix_web::{web, FromRequest, HttpRequest};
use cloudbroker_core::domain::PageRequest;
use futures::future::LocalBoxFuture;
use serde::de::{DeserializeOwned, Error as _};
use serde::{Deserialize, Deserializer};

/// A JSON object body read into `T`; anything else is a 400 in the API's shape.
pub struct Body<T>(pub T);

impl<T> Body<T> {
    /// The value.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> std::ops::Deref for Body<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: DeserializeOwned + 'static> FromRequest for Body<T> {
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let json = web::Json::<serde_json::Value>::from_request(req, payload);
        Box::pin(async move {
            let v = json.await?.into_inner();
            object(v).map(Body).map_err(Into::into)
        })
    }
}

/// Reads a JSON object into `T`.
pub fn object<T: DeserializeOwned>(v: serde_json::Value) -> Result<T, ApiError> {
    if !v.is_object() {
        return Err(ApiError::invalid("body: send a JSON object"));
    }
    serde_json::from_value(v).map_err(|e| ApiError::invalid(format!("body: {e}")))
}

/// An optional whole number, written `5` or `5.0`.
pub fn opt_integer<'de, D: Deserializer<'de>, T: TryFrom<i64>>(d: D) -> Result<Option<T>, D::Error> {
    let Some(n) = Option::<serde_json::Number>::deserialize(d)? else { return Ok(None) };
    let whole = n.as_i64().or_else(|| n.as_f64().filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15).map(|f| f as i64));
    let i = whole.ok_or_else(|| D::Error::custom(format!("{n} is not a whole number")))?;
    T::try_from(i).map(Some).map_err(|_| D::Error::custom(format!("{n} is out of range")))
}

/// `limit` and `cursor` of a list (an empty `limit` is not a number).
pub fn page(limit: Option<&str>, cursor: Option<&str>) -> Result<PageRequest, ApiError> {
    if limit == Some("") {
        return Err(ApiError::field("limit", "limit must be a whole number from 1 to 1000"));
    }
    PageRequest::parse(limit, cursor).map_err(|e| ApiError(e.into()))
}
