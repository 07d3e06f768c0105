//! Sign-up, login, the caller's profile, and WebSocket tickets.

use super::body::JsonBody;
use super::model::ErrorBody;
use super::model::{self, AuthResponse, BillingState, Credentials, Plan, Profile, ProfilePatch, Ticket, TicketRequest};
use super::{Access, ClientIp, ClientIpHeader};
use crate::accounts;
use crate::accounts::Accounts;
use crate::auth::{
    AuthUser, TICKET_TTL, email_ok, hash_password, password_problem, random_token, sha256, verify_password,
};
use crate::db::is_unique_violation;
use crate::error::{ApiError, ApiResult};
use axum::extract::FromRef;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::Utc;
use uuid::Uuid;

pub fn routes<S>() -> Router<S>
where
    S: Clone + Send + Sync + 'static,
    Accounts: FromRef<S>,
    Access: FromRef<S>,
    ClientIpHeader: FromRef<S>,
{
    Router::new()
        .route("/auth/signup", post(signup))
        .route("/auth/login", post(login))
        .route("/me", get(me).patch(update_me).delete(super::account::delete_me))
        .route("/tickets", post(ticket))
}

/// This file's routes in the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(signup, login, me, update_me, ticket))]
pub(super) struct Doc;

fn limited(l: crate::rate::Limited) -> ApiError {
    ApiError::Throttled(l.0)
}

#[utoipa::path(post, path = "/api/auth/signup", security(()), request_body = Credentials, responses((status = 201, body = AuthResponse), (status = 400, description = "A weak password or a bad email", body = ErrorBody), (status = 409, description = "The email has an account", body = ErrorBody), (status = 429, description = "Over the sign-up rate", body = ErrorBody)), operation_id = "auth_signup", tag = "auth")]
async fn signup(
    State(acc): State<Accounts>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    raw: JsonBody<Credentials>,
) -> ApiResult<(StatusCode, Json<AuthResponse>)> {
    let c = raw.parse()?;
    let email = c.email.trim().to_owned();
    if !email_ok(&email) {
        return Err(ApiError::bad_request("email address is not valid"));
    }
    if let Some(problem) = password_problem(&c.password, &email) {
        return Err(ApiError::bad_request(problem));
    }
    // Before the hash: a refused attempt costs the hub nothing.
    acc.limits.signup(ip, &email).map_err(limited)?;
    if let Some(why) = acc.unisolated.as_deref()
        && acc.db.has_users().await?
    {
        return Err(ApiError::Forbidden(format!(
            "this hub runs VMs without isolation ({why}), so it serves its first user only"
        )));
    }
    let hash = hash_password(c.password).await?;
    let user = match acc.db.create_user(Uuid::new_v4(), &email, Some(&hash), &acc.default_plan).await {
        Ok(u) => u,
        Err(e) if is_unique_violation(&e) => {
            return Err(ApiError::Conflict("an account with this email exists".into()));
        }
        Err(e) => return Err(e.into()),
    };
    acc.limits.signed_up(ip, &email);
    let client = accounts::client_name(&headers);
    accounts::audit(&acc.db, user.id, "signed_up", Some(ip), &client).await;
    acc.mail_link(user.id, accounts::Link::Verify, &user.email).await?;
    let session = acc.sign_in(user.id, &user.email, ip, &client).await?;
    Ok((StatusCode::CREATED, Json(session.into())))
}

#[utoipa::path(post, path = "/api/auth/login", security(()), request_body = Credentials, responses((status = 200, body = AuthResponse), (status = 401, description = "Wrong email or password", body = ErrorBody), (status = 429, description = "Over the sign-in rate", body = ErrorBody)), operation_id = "auth_login", tag = "auth")]
async fn login(
    State(acc): State<Accounts>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    raw: JsonBody<Credentials>,
) -> ApiResult<Json<AuthResponse>> {
    let c = raw.parse()?;
    // Before the hash: a refused guess costs the hub nothing. Unknown
    // emails count like known ones, so the limit doesn't tell them apart.
    let attempt = acc.limits.login(ip, &c.email).map_err(limited)?;
    let user = acc.db.user_by_email(c.email.trim()).await?;
    // Verify against a dummy hash for unknown emails so timing doesn't tell.
    let stored = user.as_ref().and_then(|u| u.password_hash.clone()).unwrap_or_else(|| acc.dummy_hash.to_string());
    let ok = verify_password(c.password, stored).await;
    match user {
        Some(u) if ok && u.password_hash.is_some() => {
            attempt.succeeded();
            let client = accounts::client_name(&headers);
            accounts::audit(&acc.db, u.id, "signed_in", Some(ip), &client).await;
            Ok(Json(acc.sign_in(u.id, &u.email, ip, &client).await?.into()))
        }
        Some(u) => {
            accounts::audit(&acc.db, u.id, "sign_in_failed", Some(ip), &accounts::client_name(&headers)).await;
            Err(ApiError::Unauthenticated("wrong email or password".into()))
        }
        None => Err(ApiError::Unauthenticated("wrong email or password".into())),
    }
}

#[utoipa::path(get, path = "/api/me", responses((status = 200, body = Profile), (status = 401, description = "Not signed in", body = ErrorBody)), operation_id = "auth_me", tag = "auth")]
async fn me(State(acc): State<Accounts>, user: AuthUser) -> ApiResult<Json<Profile>> {
    profile(&acc, user.id).await
}

/// The caller as `/api/me` shows them: with whether billing is on and their
/// subscription, if they have one.
async fn profile(acc: &Accounts, id: Uuid) -> ApiResult<Json<Profile>> {
    let u = acc.db.user(id).await?.ok_or_else(|| ApiError::Unauthenticated("account no longer exists".into()))?;
    let b = acc.db.billing(id).await?.ok_or_else(|| ApiError::Unauthenticated("account no longer exists".into()))?;
    let subscription = b.stripe_subscription_id.as_ref().map(|_| model::Subscription {
        current_period_end: b.current_period_end,
        grace_until: b.grace_until,
        plan: b.subscription_plan,
        status: b.subscription_status,
    });
    let email_verified = acc.db.email_verified(id).await?;
    Ok(Json(Profile {
        billing: if acc.billing.is_some() { BillingState::On } else { BillingState::Off },
        display_name: u.display_name,
        email: u.email,
        email_verified,
        id: u.id,
        plan: Plan::parse(&u.plan)?,
        subscription,
    }))
}

#[utoipa::path(patch, path = "/api/me", request_body = ProfilePatch, responses((status = 200, body = Profile), (status = 400, description = "Invalid body", body = ErrorBody), (status = 401, description = "Not signed in", body = ErrorBody)), operation_id = "auth_update_me", tag = "auth")]
async fn update_me(
    State(acc): State<Accounts>,
    user: AuthUser,
    raw: JsonBody<ProfilePatch>,
) -> ApiResult<Json<Profile>> {
    let p = raw.parse()?;
    let name = p.display_name.trim();
    if name.chars().count() > 100 {
        return Err(ApiError::bad_request("display_name must be at most 100 characters"));
    }
    acc.db.set_display_name(user.id, name).await?.ok_or(ApiError::NotFound)?;
    profile(&acc, user.id).await
}

#[utoipa::path(post, path = "/api/tickets", request_body = TicketRequest, responses((status = 200, description = "Single use, valid at most 60 s", body = Ticket), (status = 400, description = "Invalid body or purpose", body = ErrorBody), (status = 401, description = "Not signed in", body = ErrorBody), (status = 404, description = "No such project of the caller's", body = ErrorBody), (status = 429, description = "Over the ticket rate", body = ErrorBody)), operation_id = "auth_ticket", tag = "auth")]
async fn ticket(
    State(acc): State<Accounts>,
    user: AuthUser,
    ClientIp(ip): ClientIp,
    raw: JsonBody<TicketRequest>,
) -> ApiResult<Json<Ticket>> {
    acc.limits.ticket(ip, user.id).map_err(limited)?;
    let t = raw.parse()?;
    if !matches!(t.purpose.as_str(), "terminal" | "watch" | "agent-activity") {
        return Err(ApiError::bad_request("purpose must be terminal, watch or agent-activity"));
    }
    acc.db.project(user.id, t.project_id).await?.ok_or(ApiError::NotFound)?;
    let ticket = random_token(32);
    let expires = Utc::now() + TICKET_TTL;
    acc.db.create_ticket(&sha256(ticket.as_bytes()), user.id, t.project_id, &t.purpose, expires).await?;
    Ok(Json(Ticket { expires_at: expires, ticket }))
}
