//! What the caller has used of their plan this month, and paying for a
//! bigger one: Checkout, the customer portal, and Stripe's webhook (the
//! only route here without a user: Stripe's signature stands for one).

use super::body::JsonBody;
use super::model::ErrorBody;
use super::model::{
    CheckoutRequest, DayUsage, Machine, MonthlyStorage, MonthlyUsage, Plan, PlanLimits, ProjectUsage, Redirect, Usage,
    WebhookReceived,
};
use super::{Access, AppState};
use crate::auth::AuthUser;
use crate::billing::{self, Billing, Checkout, signature, webhook};
use crate::error::{ApiError, ApiResult};
use crate::plans;
use axum::body::Bytes;
use axum::extract::FromRef;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::Utc;
use std::sync::Arc;
use std::time::Duration;

/// What the billing routes need: the database, Stripe (when billing is
/// on), where Stripe sends users back to, and the figures usage shows.
#[derive(Clone)]
pub struct BillingState {
    pub access: Access,
    pub billing: Option<Arc<Billing>>,
    pub public_url: Arc<str>,
    /// `AETHER_IDLE_TIMEOUT_S`, which overrides every plan's.
    pub idle_timeout: Option<Duration>,
    /// Each project's disk, in GB.
    pub volume_gb: u32,
}

super::extract::area_state!(BillingState);

impl FromRef<AppState> for BillingState {
    fn from_ref(hub: &AppState) -> Self {
        Self {
            access: hub.access.clone(),
            billing: hub.billing.clone(),
            public_url: hub.accounts.public_url.clone(),
            idle_timeout: hub.config.idle_timeout,
            volume_gb: hub.compute.volume_gb(),
        }
    }
}

/// The billing routes, on any state that holds a `BillingState`.
pub fn routes<S>() -> Router<S>
where
    S: Clone + Send + Sync + 'static,
    BillingState: FromRef<S>,
    Access: FromRef<S>,
{
    Router::new()
        .route("/billing/usage", get(usage))
        .route("/billing/usage/monthly", get(monthly))
        .route("/billing/storage/monthly", get(storage_monthly))
        .route("/billing/checkout", post(checkout))
        .route("/billing/portal", post(portal))
        .route("/billing/webhook", post(stripe_webhook))
}

/// This file's routes in the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(usage, monthly, storage_monthly, checkout, portal, stripe_webhook))]
pub(super) struct Doc;

fn on(state: &BillingState) -> ApiResult<&Billing> {
    state.billing.as_deref().ok_or_else(|| ApiError::Off("billing is off on this hub".into()))
}

/// The caller's account as billing sees it (gone: they are no one).
async fn billing_row(state: &BillingState, user: &AuthUser) -> ApiResult<crate::db::BillingRow> {
    let row = state.access.db.billing(user.id).await?;
    row.ok_or_else(|| ApiError::Unauthenticated("account no longer exists".into()))
}

/// Stripe failed us: logged here, a 502 for the caller.
fn stripe_failed(e: anyhow::Error) -> ApiError {
    tracing::warn!(error = format!("{e:#}"), "a Stripe call failed");
    ApiError::BadGateway("Stripe could not be reached; try again shortly".into())
}

/// A Checkout Session for a subscription to the plan, for the user's Stripe
/// customer (made at their first checkout); Stripe sends them back to the
/// projects page, which shows the plan once the webhook has moved it.
#[utoipa::path(post, path = "/api/billing/checkout", request_body = CheckoutRequest, responses((status = 200, body = Redirect), (status = 400, description = "Not a paid plan", body = ErrorBody), (status = 401, description = "Not signed in", body = ErrorBody), (status = 409, description = "A subscription exists", body = ErrorBody), (status = 502, description = "Stripe failed", body = ErrorBody), (status = 503, description = "Billing is off", body = ErrorBody)), operation_id = "billing_checkout", tag = "billing")]
async fn checkout(
    State(state): State<BillingState>,
    user: AuthUser,
    raw: JsonBody<CheckoutRequest>,
) -> ApiResult<Json<Redirect>> {
    let billing = on(&state)?;
    let req = raw.parse()?;
    let price = billing.price(&req.plan).ok_or_else(|| ApiError::bad_request("plan must be \"pro\" or \"team\""))?;
    let row = billing_row(&state, &user).await?;
    if row.stripe_subscription_id.is_some() && row.subscription_status.as_deref().is_some_and(billing::grants_plan) {
        return Err(ApiError::Conflict(
            "you have a subscription already: change or cancel it with \"Manage billing\" (the billing portal)".into(),
        ));
    }
    let customer = match row.stripe_customer_id {
        Some(c) => c,
        None => {
            let made = billing.payments.create_customer(user.id, &row.email).await.map_err(stripe_failed)?;
            // Two checkouts at once get the same customer (idempotency key);
            // whichever is stored first is the user's.
            state.access.db.set_stripe_customer(user.id, &made).await?.unwrap_or(made)
        }
    };
    let success_url = format!("{}/?billing=success", state.public_url);
    let cancel_url = format!("{}/?billing=canceled", state.public_url);
    let session = Checkout {
        user: user.id,
        customer: &customer,
        plan: &req.plan,
        price,
        success_url: &success_url,
        cancel_url: &cancel_url,
    };
    let url = billing.payments.checkout(&session).await.map_err(stripe_failed)?;
    Ok(Json(Redirect { url }))
}

/// A customer portal session, which comes back to the projects page.
#[utoipa::path(post, path = "/api/billing/portal", responses((status = 200, body = Redirect), (status = 401, description = "Not signed in", body = ErrorBody), (status = 409, description = "Nothing to manage yet", body = ErrorBody), (status = 502, description = "Stripe failed", body = ErrorBody), (status = 503, description = "Billing is off", body = ErrorBody)), operation_id = "billing_portal", tag = "billing")]
async fn portal(State(state): State<BillingState>, user: AuthUser) -> ApiResult<Json<Redirect>> {
    let billing = on(&state)?;
    let row = billing_row(&state, &user).await?;
    let customer = row
        .stripe_customer_id
        .ok_or_else(|| ApiError::Conflict("there is no billing to manage yet: upgrade to a plan first".into()))?;
    let url = billing.payments.portal(&customer, &format!("{}/", state.public_url)).await.map_err(stripe_failed)?;
    Ok(Json(Redirect { url }))
}

/// Stripe's events: the signature is checked on the raw body before
/// anything is parsed (400 if it fails); then the event is applied once
/// (`billing::webhook`). 200 for events that change nothing; 500 when
/// applying failed, so that Stripe delivers it again.
#[utoipa::path(post, path = "/api/billing/webhook", security(()), params(("Stripe-Signature" = String, Header)), request_body(content = String, content_type = "application/json", description = "A Stripe event, verified by its signature (5 min tolerance) and applied once"), responses((status = 200, body = WebhookReceived), (status = 400, description = "A bad signature", body = ErrorBody), (status = 500, description = "Applying failed: Stripe sends it again", body = ErrorBody), (status = 503, description = "Billing is off", body = ErrorBody)), operation_id = "billing_stripe_webhook", tag = "billing")]
async fn stripe_webhook(
    State(state): State<BillingState>,
    headers: HeaderMap,
    raw: Bytes,
) -> ApiResult<Json<WebhookReceived>> {
    let billing = on(&state)?;
    let now = Utc::now();
    let header = headers.get("stripe-signature").and_then(|v| v.to_str().ok());
    signature::verify(&billing.webhook_secret, header, &raw, now).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let text = std::str::from_utf8(&raw).map_err(|_| ApiError::bad_request("the event is not UTF-8"))?;
    let event = billing::stripe::parse_event(text, header.unwrap_or_default(), &billing.webhook_secret, now)?;
    let outcome = webhook::apply(&state.access.db, billing, &event).await?;
    tracing::debug!(event = %event.id, kind = %event.kind, ?outcome, "stripe event");
    Ok(Json(WebhookReceived { received: true }))
}

/// Compute from the usage records (deleted projects' too), by project and
/// by day; storage as the projects' disks (a volume is made at a project's
/// first start); projects as they stand; the plan's limits and every plan's
/// (what a higher one gives) from `plan_limits`.
#[utoipa::path(get, path = "/api/billing/usage", responses((status = 200, body = Usage), (status = 401, description = "Not signed in", body = ErrorBody)), operation_id = "billing_usage", tag = "billing")]
async fn usage(State(state): State<BillingState>, user: AuthUser) -> ApiResult<Json<Usage>> {
    let u = state
        .access
        .db
        .user(user.id)
        .await?
        .ok_or_else(|| ApiError::Unauthenticated("account no longer exists".into()))?;
    let limits = plans::of_user(&state.access.db, user.id).await?;
    let now = Utc::now();
    let start = plans::period_start(now);
    // The total rounded as `plans::may_start` rounds it, so the two agree
    // at the limit.
    let (by_project, used) = state.access.db.compute_by_project(user.id, start).await?;
    let by_day = state.access.db.compute_by_day(user.id, start).await?;
    let names: std::collections::HashMap<uuid::Uuid, String> =
        state.access.db.list_projects(user.id).await?.into_iter().map(|p| (p.id, p.name)).collect();
    let projects = state.access.db.count_projects(user.id).await?;
    let volumes = state.access.db.count_volumes(user.id).await?;
    let this_month = start.naive_utc();
    let storage_gb_hours = state
        .access
        .db
        .storage_monthly(user.id)
        .await?
        .into_iter()
        .find(|(m, _)| *m == this_month)
        .map_or(0.0, |(_, h)| h);
    let idle_timeout_s = state.idle_timeout.map_or(limits.idle_timeout_s, |d| d.as_secs() as i64);
    Ok(Json(Usage {
        by_day: by_day.into_iter().map(|(date, compute_seconds)| DayUsage { compute_seconds, date }).collect(),
        by_project: by_project
            .into_iter()
            .map(|(project_id, compute_seconds)| ProjectUsage {
                compute_seconds,
                name: names.get(&project_id).cloned(),
                project_id,
            })
            .collect(),
        compute_seconds_limit: limits.compute_seconds,
        compute_seconds_used: used,
        idle_timeout_s,
        machine: Machine { cpus: limits.cpus, memory_mb: limits.memory_mb },
        period_end: plans::period_end(now),
        period_start: start,
        plan: Plan::parse(&u.plan)?,
        plans: plans::all(&state.access.db).await?.into_iter().map(PlanLimits::from).collect(),
        projects_limit: limits.projects,
        projects_used: projects,
        storage_gb_hours,
        storage_gb_limit: limits.storage_gb,
        storage_gb_used: volumes * i64::from(state.volume_gb),
    }))
}

/// The caller's monthly roll-up: compute seconds by month (UTC) and
/// machine size, newest first, from the usage records as they stand.
#[utoipa::path(get, path = "/api/billing/usage/monthly", responses((status = 200, description = "Newest first", body = Vec<MonthlyUsage>), (status = 401, description = "Not signed in", body = ErrorBody)), operation_id = "billing_monthly", tag = "billing")]
async fn monthly(State(state): State<BillingState>, user: AuthUser) -> ApiResult<Json<Vec<MonthlyUsage>>> {
    let rows = state.access.db.usage_monthly(user.id).await?;
    Ok(Json(
        rows.into_iter()
            .map(|(month, cpus, memory_mb, compute_seconds)| MonthlyUsage {
                compute_seconds,
                cpus,
                memory_mb,
                month: month.and_utc(),
            })
            .collect(),
    ))
}

/// The caller's storage roll-up: GB-hours of project disks by month (UTC),
/// newest first, from the storage records as they stand.
#[utoipa::path(get, path = "/api/billing/storage/monthly", responses((status = 200, description = "Newest first", body = Vec<MonthlyStorage>), (status = 401, description = "Not signed in", body = ErrorBody)), operation_id = "billing_storage_monthly", tag = "billing")]
async fn storage_monthly(State(state): State<BillingState>, user: AuthUser) -> ApiResult<Json<Vec<MonthlyStorage>>> {
    let rows = state.access.db.storage_monthly(user.id).await?;
    Ok(Json(rows.into_iter().map(|(month, gb_hours)| MonthlyStorage { gb_hours, month: month.and_utc() }).collect()))
}
