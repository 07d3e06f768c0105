//! `JsonBody<T>`: a typed JSON request body whose errors wait for the
//! handler.
//!
//! axum's `Json<T>` rejects a bad body before the handler runs, which would
//! answer 400 where the contract answers 404 (someone else's project) or
//! 429 (over a rate) first. This extractor reads the body as the API always
//! has (`Json<Value>`, then `T`), keeps the outcome, and the handler takes
//! it with `.parse()?` at the point it checked it before: same order, same
//! status codes, same messages.

use crate::error::{ApiError, ApiResult};
use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::convert::Infallible;

/// A JSON request body of type `T`, parsed when the handler asks for it.
pub struct JsonBody<T>(ApiResult<T>);

impl<T> JsonBody<T> {
    /// The body, or the contract's 413 (over the body limit) or 400.
    pub fn parse(self) -> ApiResult<T> {
        self.0
    }
}

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = Infallible;

    async fn from_request(req: Request, state: &S) -> Result<Self, Infallible> {
        Ok(Self(body(Json::<Value>::from_request(req, state).await)))
    }
}

/// Parses a JSON body, answering the contract's 413 for one over the body
/// limit and 400 for anything malformed.
fn body<T: DeserializeOwned>(raw: Result<Json<Value>, JsonRejection>) -> ApiResult<T> {
    let Json(v) = raw.map_err(|e| match e.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::TooLarge("the JSON body is over the 2 MiB limit".into()),
        _ => ApiError::bad_request(e.body_text()),
    })?;
    serde_json::from_value(v).map_err(|e| ApiError::bad_request(format!("invalid body: {e}")))
}
