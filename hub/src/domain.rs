//! What the control plane's operations end with when they can't do what
//! was asked (`projects::start`, `stop`, `delete`, the plan and account
//! checks before a start, and `accounts`' sessions, links and deletion). The API maps these to the
//! contract's errors in one place (`api::errors`); the data plane and the
//! jump host, which ask for starts through `tunnel::Wake`, read them too.

/// Why an operation did not happen.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("not found")]
    NotFound,
    /// The caller's credentials are no good (a refresh token used twice,
    /// or unknown).
    #[error("{0}")]
    Unauthenticated(String),
    /// The project is in a state that doesn't allow it (stopping, say).
    #[error("{0}")]
    Conflict(String),
    /// The owner's plan allows no more (the month's compute is used up).
    #[error("{0}")]
    LimitReached(String),
    /// The owner must verify their address first.
    #[error("{0}")]
    Unverified(String),
    /// The VM can't run now, for a reason the user can act on (the
    /// provider has no capacity); the project shows it as its error.
    #[error("{0}")]
    Unavailable(String),
    /// The VM did not come up (or down) in time.
    #[error("{0}")]
    Timeout(String),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Self {
        Self::Internal(e.into())
    }
}

pub type Result<T> = std::result::Result<T, Error>;
