//! Extractors: what a handler can ask of a request before it runs.
//! `AuthUser` is the caller, from a Bearer access token whose session is
//! still alive; `OwnedProject` the caller's project named by the path's
//! `{id}` (anyone else's is a 404, as if it didn't exist); `LiveTunnel`
//! that project with its VM's tunnel up (503 with the project's status
//! otherwise).

use super::AppState;
use crate::auth::{AuthUser, Tokens, bearer};
use crate::db::{Db, Project};
use crate::error::ApiError;
use crate::tunnel::{Tunnel, Tunnels};
use axum::extract::{FromRef, FromRequestParts, Path};
use axum::http::request::Parts;
use std::collections::HashMap;
use std::sync::Arc;

/// What the extractors need, and the narrowest state a router of the
/// caller's projects can have: the token keys, the database, the tunnels
/// (handles: a clone is a few reference counts).
#[derive(Clone)]
pub struct Access {
    pub tokens: Arc<Tokens>,
    pub db: Db,
    pub tunnels: Arc<Tunnels>,
    /// The plan a first-seen Supabase user starts on.
    pub default_plan: Arc<str>,
}

impl Access {
    /// The project's tunnel: `Unavailable` (503, with the project's status)
    /// while its VM isn't connected.
    pub fn tunnel(&self, project: &Project) -> Result<Tunnel, ApiError> {
        self.tunnels.get(project.id).ok_or_else(|| ApiError::Unavailable { status: project.status.clone() })
    }
}

/// Makes an area's state (a struct with an `access: Access` field) one the
/// extractors can read, so the area's routes run on it alone.
macro_rules! area_state {
    ($state:ty) => {
        impl axum::extract::FromRef<$state> for $crate::api::Access {
            fn from_ref(state: &$state) -> Self {
                state.access.clone()
            }
        }
    };
}
pub(super) use area_state;

impl FromRef<AppState> for Access {
    fn from_ref(hub: &AppState) -> Self {
        hub.access.clone()
    }
}

/// The caller and their project named by the path's `{id}`.
pub struct OwnedProject {
    pub user: AuthUser,
    pub project: Project,
}

impl<S: Send + Sync> FromRequestParts<S> for OwnedProject
where
    Access: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let user = AuthUser::from_request_parts(parts, state).await?;
        let Path(params) =
            Path::<HashMap<String, String>>::from_request_parts(parts, state).await.map_err(|_| ApiError::NotFound)?;
        let id = params.get("id").and_then(|id| id.parse().ok()).ok_or(ApiError::NotFound)?;
        let project = Access::from_ref(state).db.project(user.id, id).await?.ok_or(ApiError::NotFound)?;
        Ok(Self { user, project })
    }
}

/// The caller's project (as `OwnedProject`) and its VM's live tunnel.
pub struct LiveTunnel {
    pub user: AuthUser,
    pub project: Project,
    pub tunnel: Tunnel,
}

impl<S: Send + Sync> FromRequestParts<S> for LiveTunnel
where
    Access: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let OwnedProject { user, project } = OwnedProject::from_request_parts(parts, state).await?;
        let tunnel = Access::from_ref(state).tunnel(&project)?;
        Ok(Self { user, project, tunnel })
    }
}

impl<S: Send + Sync> FromRequestParts<S> for AuthUser
where
    Access: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let state = Access::from_ref(state);
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| ApiError::Unauthenticated("missing bearer token".into()))?;
        let token = bearer(header).ok_or_else(|| ApiError::Unauthenticated("expected a bearer token".into()))?;
        let (claims, external) = state
            .tokens
            .verify(token.trim())
            .ok_or_else(|| ApiError::Unauthenticated("invalid or expired token".into()))?;
        if external {
            state.db.ensure_user(claims.sub, &claims.email, &state.default_plan).await?;
            // A well-signed token outlives its account (deleted, or a Supabase
            // user whose email a local account holds): the caller is no one.
            if !state.db.user_exists(claims.sub).await? {
                return Err(ApiError::Unauthenticated("this account no longer exists".into()));
            }
            return Ok(Self { id: claims.sub, email: claims.email, session: None });
        }
        // The hub's own tokens name a session, checked on every request so
        // that a revoked one stops at once (sessions go with their account).
        let sid = claims.sid.ok_or_else(|| ApiError::Unauthenticated("sign in again".into()))?;
        if !state.db.session_alive(sid, claims.sub).await? {
            return Err(ApiError::Unauthenticated("this session has ended; sign in again".into()));
        }
        Ok(Self { id: claims.sub, email: claims.email, session: Some(sid) })
    }
}
