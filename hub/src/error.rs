//! The one API error type, mapped to the contract's status codes and JSON
//! shape in one place.
//!
//! Client errors are not logged; internal errors are logged once, inside the
//! request's span (which carries its request id), and the client sees only
//! `{"error":{"code":"internal",...}}`.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use std::time::Duration;

/// Every way an API call can fail.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    InvalidPath(String),
    #[error("{0}")]
    Unauthenticated(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("not found")]
    NotFound,
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    PreconditionFailed(String),
    #[error("{0}")]
    TooLarge(String),
    #[error("{0}")]
    LimitReached(String),
    #[error("{0}")]
    RangeNotSatisfiable(String),
    #[error("too many requests")]
    RateLimited,
    /// Over an abuse limit (`rate`): try again after the given time.
    #[error("too many attempts; try again in {} s", retry_after_secs(*.0))]
    Throttled(Duration),
    #[error("the project's VM is {status}")]
    Unavailable { status: String },
    /// The VM can't run now, for a reason the user can act on (the
    /// provider has no capacity, say): 503 like `Unavailable`, with it.
    #[error("{message}")]
    UnavailableBecause { status: String, message: String },
    /// A part this hub runs without (billing without Stripe keys).
    #[error("{0}")]
    Off(String),
    /// The database can't be reached; nothing the caller did wrong.
    #[error("the database is unavailable; try again shortly")]
    DatabaseUnavailable,
    #[error("{0}")]
    BadGateway(String),
    #[error("{0}")]
    Timeout(String),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    pub fn bad_request(msg: impl Into<String>) -> Self {
        Self::BadRequest(msg.into())
    }

    /// The contract's machine code (`limit_reached`, `conflict`, …).
    pub fn code(&self) -> &'static str {
        self.status_and_code().1
    }

    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            Self::BadRequest(_) => (StatusCode::BAD_REQUEST, "invalid_request"),
            Self::InvalidPath(_) => (StatusCode::BAD_REQUEST, "invalid_path"),
            Self::Unauthenticated(_) => (StatusCode::UNAUTHORIZED, "unauthenticated"),
            Self::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            Self::NotFound => (StatusCode::NOT_FOUND, "not_found"),
            Self::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            Self::PreconditionFailed(_) => (StatusCode::PRECONDITION_FAILED, "precondition_failed"),
            Self::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
            Self::LimitReached(_) => (StatusCode::UNPROCESSABLE_ENTITY, "limit_reached"),
            Self::RangeNotSatisfiable(_) => (StatusCode::RANGE_NOT_SATISFIABLE, "invalid_request"),
            Self::RateLimited | Self::Throttled(_) => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            Self::Unavailable { .. } | Self::UnavailableBecause { .. } | Self::Off(_) | Self::DatabaseUnavailable => {
                (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
            }
            Self::BadGateway(_) => (StatusCode::BAD_GATEWAY, "bad_gateway"),
            Self::Timeout(_) => (StatusCode::GATEWAY_TIMEOUT, "timeout"),
            Self::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        if database_unreachable(&e) {
            tracing::warn!(error = %e, "the database is unavailable");
            return Self::DatabaseUnavailable;
        }
        Self::Internal(e.into())
    }
}

/// Whether `e` says the database can't be reached (as opposed to a query
/// that failed): the server is down, starting, shutting down or unreachable.
pub fn database_unreachable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_) | sqlx::Error::Tls(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed => true,
        sqlx::Error::WorkerCrashed => true,
        // Class 08: connection exception; 57P01-57P03: shutting down,
        // crashed, not accepting connections yet.
        sqlx::Error::Database(d) => {
            d.code().is_some_and(|c| c.starts_with("08") || matches!(c.as_ref(), "57P01" | "57P02" | "57P03"))
        }
        _ => false,
    }
}

fn retry_after_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

impl IntoResponse for ApiError {
    fn into_response(mut self) -> Response {
        // Glue code carries database errors inside `anyhow`.
        if let Self::Internal(e) = &self
            && e.chain().any(|c| c.downcast_ref::<sqlx::Error>().is_some_and(database_unreachable))
        {
            tracing::warn!(error = format!("{e:#}"), "the database is unavailable");
            self = Self::DatabaseUnavailable;
        }
        let (status, code) = self.status_and_code();
        let message = match &self {
            Self::Internal(e) => {
                tracing::error!(error = format!("{e:#}"), "internal error");
                "internal error; see the hub's log for this request id".to_owned()
            }
            other => other.to_string(),
        };
        let mut body = json!({ "error": { "code": code, "message": message } });
        if let Self::Unavailable { status } | Self::UnavailableBecause { status, .. } = &self {
            body["error"]["status"] = json!(status);
        }
        let mut resp = (status, Json(body)).into_response();
        match self {
            Self::Unavailable { .. }
            | Self::UnavailableBecause { .. }
            | Self::RateLimited
            | Self::DatabaseUnavailable => {
                resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("2"));
            }
            Self::Throttled(wait) => {
                resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs(wait).max(1)));
            }
            _ => {}
        }
        resp
    }
}

/// Result type of every handler.
pub type ApiResult<T> = Result<T, ApiError>;
