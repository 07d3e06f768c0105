//! Extractors: what a handler can ask of a request before it runs.
//! `AuthUser` is the caller, from a Bearer access token whose session is
//! still alive.

use super::AppState;
use crate::auth::{AuthUser, bearer};
use crate::error::ApiError;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
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
            state.db.ensure_user(claims.sub, &claims.email, &state.config.default_plan).await?;
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
