//! The account routes: refreshing and ending sessions, listing and revoking
//! them, changing the password, mailed links (verification, reset, email
//! change), the audit log, and deleting the account.

use super::body::JsonBody;
use super::model::ErrorBody;
use super::model::{
    AuditEntry, AuthResponse, DeleteAccount, EmailChange, EmailVerified, PasswordChange, RefreshRequest,
    RefreshResponse, ResetConfirm, ResetRequest, SessionInfo, TokenBody,
};
use super::{Access, ClientIp, ClientIpHeader};
use crate::accounts::Accounts;
use crate::accounts::{self, Link};
use crate::auth::{AuthUser, email_ok, hash_password, password_problem, sha256, verify_password};
use crate::db::is_unique_violation;
use crate::error::{ApiError, ApiResult};
use axum::extract::FromRef;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use uuid::Uuid;

pub fn routes<S>() -> Router<S>
where
    S: Clone + Send + Sync + 'static,
    Accounts: FromRef<S>,
    Access: FromRef<S>,
    ClientIpHeader: FromRef<S>,
{
    Router::new()
        .route("/auth/refresh", post(refresh))
        .route("/auth/logout", post(logout))
        .route("/auth/password-reset", post(password_reset))
        .route("/auth/password-reset/confirm", post(password_reset_confirm))
        .route("/auth/verify-email", post(verify_email))
        .route("/me/verify-email", post(resend_verification))
        .route("/me/password", post(change_password))
        .route("/me/email", post(change_email))
        .route("/me/sessions", get(sessions).delete(revoke_others))
        .route("/me/sessions/{id}", delete(revoke))
        .route("/me/audit", get(audit))
}

/// This file's routes in the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(
    refresh,
    logout,
    password_reset,
    password_reset_confirm,
    verify_email,
    resend_verification,
    change_password,
    change_email,
    sessions,
    revoke_others,
    revoke,
    audit,
    delete_me
))]
pub(super) struct Doc;

fn limited(l: crate::rate::Limited) -> ApiError {
    ApiError::Throttled(l.0)
}

#[utoipa::path(post, path = "/api/auth/refresh", security(()), request_body = RefreshRequest, responses((status = 200, description = "The refresh token is rotated", body = RefreshResponse), (status = 401, description = "Invalid, expired or reused refresh token", body = ErrorBody)), operation_id = "account_refresh", tag = "account")]
async fn refresh(State(acc): State<Accounts>, raw: JsonBody<RefreshRequest>) -> ApiResult<Json<RefreshResponse>> {
    let r = raw.parse()?;
    Ok(Json(acc.refresh(r.refresh_token.trim()).await?.into()))
}

#[utoipa::path(post, path = "/api/auth/logout", responses((status = 204, description = "The current session ended"), (status = 401, description = "Not signed in", body = ErrorBody)), operation_id = "account_logout", tag = "account")]
async fn logout(State(acc): State<Accounts>, user: AuthUser) -> ApiResult<StatusCode> {
    if let Some(session) = user.session {
        acc.db.delete_session(user.id, session).await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/me/sessions", responses((status = 200, body = Vec<SessionInfo>), (status = 401, description = "Not signed in", body = ErrorBody)), operation_id = "account_sessions", tag = "account")]
async fn sessions(State(acc): State<Accounts>, user: AuthUser) -> ApiResult<Json<Vec<SessionInfo>>> {
    let list = acc
        .db
        .sessions(user.id)
        .await?
        .into_iter()
        .map(|s| SessionInfo {
            address: s.address,
            client: s.client,
            created_at: s.created_at,
            current: Some(s.id) == user.session,
            id: s.id,
            last_used_at: s.last_used_at,
        })
        .collect();
    Ok(Json(list))
}

#[utoipa::path(delete, path = "/api/me/sessions/{id}", params(("id" = String, Path, description = "The session's id")), responses((status = 204, description = "The session ended"), (status = 401, description = "Not signed in", body = ErrorBody), (status = 404, description = "No such session of the caller's", body = ErrorBody)), operation_id = "account_revoke", tag = "account")]
async fn revoke(
    State(acc): State<Accounts>,
    user: AuthUser,
    ClientIp(ip): ClientIp,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let id: Uuid = id.parse().map_err(|_| ApiError::NotFound)?;
    if !acc.db.delete_session(user.id, id).await? {
        return Err(ApiError::NotFound);
    }
    accounts::audit(&acc.db, user.id, "session_revoked", Some(ip), &format!("session {id}")).await;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(delete, path = "/api/me/sessions", responses((status = 204, description = "Every session but the current one ended"), (status = 401, description = "Not signed in", body = ErrorBody)), operation_id = "account_revoke_others", tag = "account")]
async fn revoke_others(State(acc): State<Accounts>, user: AuthUser, ClientIp(ip): ClientIp) -> ApiResult<StatusCode> {
    let n = acc.db.delete_other_sessions(user.id, user.session).await?;
    accounts::audit(&acc.db, user.id, "sessions_revoked", Some(ip), &format!("{n} other session(s) signed out")).await;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/me/audit", responses((status = 200, description = "Newest first", body = Vec<AuditEntry>), (status = 401, description = "Not signed in", body = ErrorBody)), operation_id = "account_audit", tag = "account")]
async fn audit(State(acc): State<Accounts>, user: AuthUser) -> ApiResult<Json<Vec<AuditEntry>>> {
    Ok(Json(acc.db.audit(user.id, accounts::AUDIT_LIMIT).await?.into_iter().map(AuditEntry::from).collect()))
}

/// Checks the caller's password (rate-limited like sign-in, as it is a
/// guess too); `Unauthenticated` if it is wrong.
async fn check_password(acc: &Accounts, user: &AuthUser, ip: std::net::IpAddr, password: String) -> ApiResult<()> {
    let attempt = acc.limits.login(ip, &user.email).map_err(limited)?;
    let stored = acc.db.user(user.id).await?.ok_or(ApiError::NotFound)?.password_hash;
    let ok = match stored {
        Some(hash) => verify_password(password, hash).await,
        None => false,
    };
    if !ok {
        return Err(ApiError::Unauthenticated("the current password is wrong".into()));
    }
    attempt.succeeded();
    Ok(())
}

#[utoipa::path(post, path = "/api/me/password", request_body = PasswordChange, responses((status = 204, description = "Changed; other sessions ended"), (status = 400, description = "A weak new password", body = ErrorBody), (status = 401, description = "Wrong current password", body = ErrorBody)), operation_id = "account_change_password", tag = "account")]
async fn change_password(
    State(acc): State<Accounts>,
    user: AuthUser,
    ClientIp(ip): ClientIp,
    raw: JsonBody<PasswordChange>,
) -> ApiResult<StatusCode> {
    let p = raw.parse()?;
    if let Some(problem) = password_problem(&p.new_password, &user.email) {
        return Err(ApiError::bad_request(problem));
    }
    check_password(&acc, &user, ip, p.current_password).await?;
    acc.db.set_password_hash(user.id, &hash_password(p.new_password).await?).await?;
    let ended = acc.db.delete_other_sessions(user.id, user.session).await?;
    acc.db.void_email_tokens(user.id, "reset").await?;
    accounts::audit(&acc.db, user.id, "password_changed", Some(ip), &format!("{ended} other session(s) signed out"))
        .await;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/auth/password-reset", security(()), request_body = ResetRequest, responses((status = 202, description = "Always (no enumeration); mails a one-time link"), (status = 429, description = "Over the reset rate", body = ErrorBody)), operation_id = "account_password_reset", tag = "account")]
async fn password_reset(
    State(acc): State<Accounts>,
    ClientIp(ip): ClientIp,
    raw: JsonBody<ResetRequest>,
) -> ApiResult<StatusCode> {
    let r = raw.parse()?;
    acc.limits.password_reset(ip, &r.email).map_err(limited)?;
    // 202 whether or not the account exists: the answer tells nothing.
    if let Some(u) = acc.db.user_by_email(r.email.trim()).await?
        && u.password_hash.is_some()
    {
        acc.mail_link(u.id, Link::Reset, &u.email).await?;
        accounts::audit(&acc.db, u.id, "password_reset_requested", Some(ip), "").await;
    }
    Ok(StatusCode::ACCEPTED)
}

#[utoipa::path(post, path = "/api/auth/password-reset/confirm", security(()), request_body = ResetConfirm, responses((status = 200, description = "Signed in; every other session ended", body = AuthResponse), (status = 400, description = "A used or expired token, or a weak password", body = ErrorBody)), operation_id = "account_password_reset_confirm", tag = "account")]
async fn password_reset_confirm(
    State(acc): State<Accounts>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    raw: JsonBody<ResetConfirm>,
) -> ApiResult<Json<AuthResponse>> {
    let c = raw.parse()?;
    acc.limits.password_reset(ip, "").map_err(limited)?;
    // The password is checked before the link is used, so a weak one
    // doesn't spend it.
    if let Some(problem) = password_problem(&c.password, "") {
        return Err(ApiError::bad_request(problem));
    }
    let hash = sha256(c.token.trim().as_bytes());
    let t =
        acc.db.redeem_email_token(&hash, &["reset"]).await?.ok_or_else(|| {
            ApiError::bad_request("this reset link was already used or has expired; ask for a new one")
        })?;
    let user = acc.db.user(t.user_id).await?.ok_or_else(|| ApiError::bad_request("the account is gone"))?;
    acc.db.set_password_hash(user.id, &hash_password(c.password).await?).await?;
    acc.db.delete_other_sessions(user.id, None).await?;
    // The mail reached its owner: the address works.
    acc.db.mark_verified(user.id, &t.email).await?;
    accounts::audit(&acc.db, user.id, "password_reset", Some(ip), "every session signed out").await;
    let client = accounts::client_name(&headers);
    Ok(Json(acc.sign_in(user.id, &user.email, ip, &client).await?.into()))
}

#[utoipa::path(post, path = "/api/auth/verify-email", security(()), request_body = TokenBody, responses((status = 200, body = EmailVerified), (status = 400, description = "A used or expired token", body = ErrorBody), (status = 409, description = "Another account has the address", body = ErrorBody)), operation_id = "account_verify_email", tag = "account")]
async fn verify_email(
    State(acc): State<Accounts>,
    ClientIp(ip): ClientIp,
    raw: JsonBody<TokenBody>,
) -> ApiResult<Json<EmailVerified>> {
    let t = raw.parse()?;
    let hash = sha256(t.token.trim().as_bytes());
    let link = acc
        .db
        .redeem_email_token(&hash, &["verify", "change"])
        .await?
        .ok_or_else(|| ApiError::bad_request("this link was already used or has expired"))?;
    if link.purpose == "change" {
        let old = acc.db.user(link.user_id).await?.ok_or_else(|| ApiError::bad_request("the account is gone"))?;
        match acc.db.change_email(link.user_id, &link.email).await {
            Ok(()) => {}
            Err(e) if is_unique_violation(&e) => {
                return Err(ApiError::Conflict("another account has this email address now".into()));
            }
            Err(e) => return Err(e.into()),
        }
        accounts::audit(&acc.db, link.user_id, "email_changed", Some(ip), &format!("{} → {}", old.email, link.email))
            .await;
    } else if acc.db.mark_verified(link.user_id, &link.email).await? {
        accounts::audit(&acc.db, link.user_id, "email_verified", Some(ip), &link.email).await;
    } else {
        return Err(ApiError::bad_request("the account's address has changed since this link was sent"));
    }
    Ok(Json(EmailVerified { email: link.email, email_verified: true }))
}

#[utoipa::path(post, path = "/api/me/verify-email", responses((status = 202, description = "A new verification link is mailed"), (status = 401, description = "Not signed in", body = ErrorBody), (status = 409, description = "Already verified", body = ErrorBody)), operation_id = "account_resend_verification", tag = "account")]
async fn resend_verification(
    State(acc): State<Accounts>,
    user: AuthUser,
    ClientIp(ip): ClientIp,
) -> ApiResult<StatusCode> {
    acc.limits.password_reset(ip, &user.email).map_err(limited)?;
    if acc.db.email_verified(user.id).await? {
        return Err(ApiError::Conflict("this address is already verified".into()));
    }
    let u = acc.db.user(user.id).await?.ok_or(ApiError::NotFound)?;
    acc.mail_link(u.id, Link::Verify, &u.email).await?;
    Ok(StatusCode::ACCEPTED)
}

#[utoipa::path(post, path = "/api/me/email", request_body = EmailChange, responses((status = 202, description = "A confirmation link is mailed to the new address"), (status = 400, description = "Not an email address", body = ErrorBody), (status = 401, description = "Wrong password", body = ErrorBody), (status = 409, description = "The address has an account", body = ErrorBody)), operation_id = "account_change_email", tag = "account")]
async fn change_email(
    State(acc): State<Accounts>,
    user: AuthUser,
    ClientIp(ip): ClientIp,
    raw: JsonBody<EmailChange>,
) -> ApiResult<StatusCode> {
    let c = raw.parse()?;
    let email = c.email.trim().to_owned();
    if !email_ok(&email) {
        return Err(ApiError::bad_request("email address is not valid"));
    }
    check_password(&acc, &user, ip, c.password).await?;
    if acc.db.user_by_email(&email).await?.is_some() {
        return Err(ApiError::Conflict("an account with this email exists".into()));
    }
    acc.mail_link(user.id, Link::Change, &email).await?;
    accounts::audit(&acc.db, user.id, "email_change_requested", Some(ip), &email).await;
    Ok(StatusCode::ACCEPTED)
}

/// `DELETE /api/me`.
#[utoipa::path(delete, path = "/api/me", request_body = DeleteAccount, responses((status = 204, description = "VMs, volumes, keys and the subscription end; the account is gone"), (status = 401, description = "Not signed in", body = ErrorBody)), operation_id = "account_delete_me", tag = "account")]
pub(super) async fn delete_me(
    State(acc): State<Accounts>,
    user: AuthUser,
    ClientIp(ip): ClientIp,
    raw: JsonBody<DeleteAccount>,
) -> ApiResult<StatusCode> {
    let d = raw.parse()?;
    let has_password = acc.db.user(user.id).await?.ok_or(ApiError::NotFound)?.password_hash.is_some();
    // An account signed in elsewhere (Supabase) has no password here.
    if has_password {
        check_password(&acc, &user, ip, d.password).await?;
    }
    acc.delete_account(user.id).await?;
    Ok(StatusCode::NO_CONTENT)
}
