//! The control plane's domain errors as the contract's errors: the one
//! place where `domain::Error` becomes an HTTP status and code.

use crate::domain::Error;
use crate::error::ApiError;

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        match e {
            Error::NotFound => Self::NotFound,
            Error::Unauthenticated(m) => Self::Unauthenticated(m),
            Error::Conflict(m) => Self::Conflict(m),
            Error::LimitReached(m) => Self::LimitReached(m),
            Error::Unverified(m) => Self::Forbidden(m),
            Error::Unavailable(message) => Self::UnavailableBecause { status: "error".into(), message },
            Error::Timeout(m) => Self::Timeout(m),
            Error::Internal(e) => Self::Internal(e),
        }
    }
}
