//! The API's request and response bodies as types: what `/api/openapi.json`
//! describes and the web app's types are generated from.
//!
//! Database rows are converted here, at the API's edge: the database's
//! status and plan strings become `ProjectStatus` and `Plan`, and columns
//! the API never shows stay behind. The fields of answers that used to be
//! built with `json!` (whose map sorts its keys) are declared in
//! alphabetical order, so the bytes on the wire are the ones clients saw.

use crate::error::{ApiError, ApiResult};
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

/// Converts a JSON value built elsewhere in the hub (sign-in, SSH
/// settings) into its API type; a mismatch is the hub's bug.
pub fn from_value<T: serde::de::DeserializeOwned>(v: Value) -> ApiResult<T> {
    serde_json::from_value(v).map_err(|e| ApiError::Internal(anyhow::anyhow!("an answer lost its shape: {e}")))
}

// --- Enums the database keeps as strings -------------------------------

/// Where a project's VM is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ProjectStatus {
    Stopped,
    Starting,
    Running,
    Stopping,
    Error,
}

impl ProjectStatus {
    /// The status of a `projects.status` value (the column's CHECK allows
    /// only these).
    pub fn parse(s: &str) -> ApiResult<Self> {
        Ok(match s {
            "stopped" => Self::Stopped,
            "starting" => Self::Starting,
            "running" => Self::Running,
            "stopping" => Self::Stopping,
            "error" => Self::Error,
            other => return Err(ApiError::Internal(anyhow::anyhow!("unknown project status {other:?}"))),
        })
    }
}

/// A user's plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Plan {
    Free,
    Pro,
    Team,
}

impl Plan {
    /// The plan of a `users.plan` value (the column's CHECK allows only these).
    pub fn parse(s: &str) -> ApiResult<Self> {
        Ok(match s {
            "free" => Self::Free,
            "pro" => Self::Pro,
            "team" => Self::Team,
            other => return Err(ApiError::Internal(anyhow::anyhow!("unknown plan {other:?}"))),
        })
    }
}

/// A plan Checkout sells.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum PaidPlan {
    Pro,
    Team,
}

/// What a WebSocket ticket opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum TicketPurpose {
    Terminal,
    Watch,
    AgentActivity,
}

/// Whether this hub takes payments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum BillingState {
    On,
    Off,
}

/// Who may open a port's preview.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum PortVisibility {
    Private,
    Public,
}

impl From<PortVisibility> for crate::preview::Visibility {
    fn from(v: PortVisibility) -> Self {
        match v {
            PortVisibility::Private => Self::Private,
            PortVisibility::Public => Self::Public,
        }
    }
}

impl From<crate::preview::Visibility> for PortVisibility {
    fn from(v: crate::preview::Visibility) -> Self {
        match v {
            crate::preview::Visibility::Private => Self::Private,
            crate::preview::Visibility::Public => Self::Public,
        }
    }
}

/// The error body of every failed call.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ErrorDetail {
    /// The contract's machine code (`not_found`, `limit_reached`, …).
    pub code: String,
    pub message: String,
    /// The VM's status, on 503 `unavailable`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
}

// --- Auth and account ----------------------------------------------------

#[derive(Debug, Deserialize, ToSchema)]
pub struct Credentials {
    pub email: String,
    pub password: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct UserRef {
    pub email: String,
    pub id: Uuid,
}

/// What signing up, signing in and confirming a password reset answer.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AuthResponse {
    pub access_token: String,
    pub expires_at: DateTime<Utc>,
    pub refresh_token: String,
    pub user: UserRef,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct RefreshRequest {
    pub refresh_token: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RefreshResponse {
    pub access_token: String,
    pub expires_at: DateTime<Utc>,
    pub refresh_token: String,
}

impl From<crate::accounts::Session> for AuthResponse {
    fn from(s: crate::accounts::Session) -> Self {
        Self {
            access_token: s.access_token,
            expires_at: s.expires_at,
            refresh_token: s.refresh_token,
            user: UserRef { email: s.email, id: s.user },
        }
    }
}

impl From<crate::accounts::Session> for RefreshResponse {
    fn from(s: crate::accounts::Session) -> Self {
        Self { access_token: s.access_token, expires_at: s.expires_at, refresh_token: s.refresh_token }
    }
}

/// The caller as `/api/me` shows them.
#[derive(Debug, Serialize, ToSchema)]
pub struct Profile {
    pub billing: BillingState,
    pub display_name: String,
    pub email: String,
    pub email_verified: bool,
    pub id: Uuid,
    pub plan: Plan,
    /// The user's Stripe subscription, once they have had one.
    #[schema(required = true)]
    pub subscription: Option<Subscription>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Subscription {
    #[schema(required = true)]
    pub current_period_end: Option<DateTime<Utc>>,
    /// Set while a failed payment's grace runs (the plan stays until then).
    #[schema(required = true)]
    pub grace_until: Option<DateTime<Utc>>,
    /// The plan it pays for.
    #[schema(required = true, value_type = Option<PaidPlan>)]
    pub plan: Option<String>,
    /// Stripe's status: active, trialing, past_due, unpaid, canceled, …
    #[schema(required = true)]
    pub status: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct ProfilePatch {
    pub display_name: String,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct TicketRequest {
    pub project_id: Uuid,
    /// Checked by the handler, which answers with the contract's message.
    #[schema(value_type = TicketPurpose)]
    pub purpose: String,
}

/// A single-use WebSocket ticket.
#[derive(Debug, Serialize, ToSchema)]
pub struct Ticket {
    pub expires_at: DateTime<Utc>,
    pub ticket: String,
}

/// A signed-in device as its owner sees it.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionInfo {
    pub address: String,
    pub client: String,
    pub created_at: DateTime<Utc>,
    /// The session making this request.
    pub current: bool,
    pub id: Uuid,
    pub last_used_at: DateTime<Utc>,
}

/// One line of the account's audit log.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEntry {
    pub action: String,
    pub address: String,
    pub at: DateTime<Utc>,
    pub detail: String,
}

impl From<crate::db::AuditRow> for AuditEntry {
    fn from(r: crate::db::AuditRow) -> Self {
        Self { action: r.action, address: r.address, at: r.at, detail: r.detail }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct PasswordChange {
    pub current_password: String,
    pub new_password: String,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct ResetRequest {
    pub email: String,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct ResetConfirm {
    pub token: String,
    pub password: String,
}

/// A token from a mailed link.
#[derive(Debug, Deserialize, ToSchema)]
pub struct TokenBody {
    pub token: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EmailVerified {
    pub email: String,
    pub email_verified: bool,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct EmailChange {
    pub email: String,
    pub password: String,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct DeleteAccount {
    /// The account's password (none for an account without one).
    #[serde(default)]
    pub password: String,
}

// --- Projects ------------------------------------------------------------

/// A project as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Project {
    pub id: Uuid,
    pub name: String,
    pub description: String,
    pub status: ProjectStatus,
    /// Present when `status` is `error`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    #[schema(required = true)]
    pub last_accessed_at: Option<DateTime<Utc>>,
    pub base_image: String,
    /// Why the hub stopped it by itself (`idle`, `compute_limit`,
    /// `payment`), until it starts again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped_at: Option<DateTime<Utc>>,
    pub env_vars: BTreeMap<String, String>,
}

impl TryFrom<crate::db::Project> for Project {
    type Error = ApiError;

    fn try_from(p: crate::db::Project) -> ApiResult<Self> {
        Ok(Self {
            id: p.id,
            name: p.name,
            description: p.description,
            status: ProjectStatus::parse(&p.status)?,
            error_message: p.error_message,
            created_at: p.created_at,
            updated_at: p.updated_at,
            last_accessed_at: p.last_accessed_at,
            base_image: p.base_image,
            stop_reason: p.stop_reason,
            stopped_at: p.stopped_at,
            env_vars: from_value(p.env_vars)?,
        })
    }
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct NewProject {
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub base_image: Option<String>,
    /// Checked by the handler (names, sizes), which says which one is wrong.
    #[schema(value_type = Option<BTreeMap<String, String>>)]
    pub env_vars: Option<Value>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct ProjectPatch {
    pub name: Option<String>,
    pub description: Option<String>,
    #[schema(value_type = Option<BTreeMap<String, String>>)]
    pub env_vars: Option<Value>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Wait {
    /// Answer once the transition is over (200), or 504 after 60 s.
    #[serde(default)]
    pub wait: bool,
}

/// Why a VM is awake and when it stops if nothing happens.
#[derive(Debug, Serialize, ToSchema)]
pub struct Activity {
    /// From `terminal_input`, `file_write`, `ssh_session`, `agent_run`,
    /// `preview`, `cpu`.
    pub awake_because: Vec<&'static str>,
    /// When it stops if nothing happens; null when not running.
    #[schema(required = true)]
    pub idle_stop_at: Option<DateTime<Utc>>,
    pub idle_timeout_s: u64,
    pub status: ProjectStatus,
    #[schema(required = true)]
    pub stop_reason: Option<String>,
    #[schema(required = true)]
    pub stopped_at: Option<DateTime<Utc>>,
}

// --- Terminals -----------------------------------------------------------

/// A terminal session in the VM.
#[derive(Debug, Serialize, ToSchema)]
pub struct TerminalInfo {
    pub command: String,
    #[schema(required = true)]
    pub created_at: Option<DateTime<Utc>>,
    #[schema(required = true)]
    pub exit_code: Option<i32>,
    pub exited: bool,
    pub session: String,
    pub viewers: u32,
}

// --- Files ---------------------------------------------------------------

/// What a path is; `other` covers sockets, FIFOs and devices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum FileKind {
    File,
    Dir,
    Symlink,
    Other,
}

/// `…/files/stat`, and the answer of a write, mkdir or rename.
#[derive(Debug, Serialize, ToSchema)]
pub struct FileStat {
    /// Unquoted here; the `ETag` header quotes it.
    pub etag: String,
    pub mode: u32,
    #[schema(required = true)]
    pub mtime: Option<DateTime<Utc>>,
    pub path: String,
    pub size: u64,
    #[serde(rename = "type")]
    pub kind: FileKind,
}

/// One entry of a folder listing.
#[derive(Debug, Serialize, ToSchema)]
pub struct DirEntry {
    pub mode: u32,
    #[schema(required = true)]
    pub mtime: Option<DateTime<Utc>>,
    /// The name as UTF-8 (lossy for names that are not).
    pub name: String,
    /// Only for names that are not UTF-8: the bytes percent-encoded,
    /// usable as-is in `?path=`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub raw_name: Option<String>,
    pub size: u64,
    #[serde(rename = "type")]
    pub kind: FileKind,
}

/// `GET …/files?path=<folder>` (streamed: written by hand in this order).
#[derive(Debug, Serialize, ToSchema)]
pub struct DirListing {
    /// Always `dir`.
    #[serde(rename = "type")]
    #[schema(value_type = String, example = "dir")]
    pub kind: FileKind,
    /// Relative to the project home; "" is the home itself.
    pub path: String,
    pub entries: Vec<DirEntry>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct MkdirRequest {
    pub path: String,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct RenameRequest {
    pub from: String,
    pub to: String,
    #[serde(default)]
    pub overwrite: bool,
}

// --- Ports ---------------------------------------------------------------

/// A port listening in the VM (or, after a PATCH, one that isn't: then
/// only `port`, `preview_url` and `visibility`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Port {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// A public visitor's requests keep the VM awake.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keeps_awake: Option<bool>,
    pub port: u16,
    pub preview_url: String,
    /// The listening process, when the VM knows it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub process: Option<String>,
    pub visibility: PortVisibility,
    /// A public visitor's request starts the stopped VM.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wakes_on_visit: Option<bool>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct PortPatch {
    pub visibility: Option<PortVisibility>,
    /// A public visitor's requests keep the VM awake.
    pub keeps_awake: Option<bool>,
    /// A public visitor's request starts the stopped VM.
    pub wakes_on_visit: Option<bool>,
}

/// A one-time link that lets this browser into a private preview.
#[derive(Debug, Serialize, ToSchema)]
pub struct PreviewLink {
    pub expires_at: DateTime<Utc>,
    pub url: String,
}

// --- Agents --------------------------------------------------------------

/// An SSH key that lets an agent into the project's VM.
#[derive(Debug, Serialize, ToSchema)]
pub struct Agent {
    pub created_at: DateTime<Utc>,
    #[schema(required = true)]
    pub expires_at: Option<DateTime<Utc>>,
    pub fingerprint: String,
    pub id: Uuid,
    #[schema(required = true)]
    pub last_used_at: Option<DateTime<Utc>>,
    pub name: String,
    pub public_key: String,
}

impl From<crate::db::Agent> for Agent {
    fn from(a: crate::db::Agent) -> Self {
        Self {
            created_at: a.created_at,
            expires_at: a.expires_at,
            fingerprint: a.fingerprint,
            id: a.id,
            last_used_at: a.last_used_at,
            name: a.name,
            public_key: a.public_key,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct NewAgent {
    pub name: String,
    /// An OpenSSH public key; without one the hub generates the pair.
    pub public_key: Option<String>,
    pub expires_in_days: Option<i64>,
    /// An exact expiry instead of `expires_in_days`.
    pub expires_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SshDir {
    /// Where the agent keeps the files the settings name (default `~/.ssh/aether`).
    pub ssh_dir: Option<String>,
}

/// How to reach the VM with an agent's key.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AgentSsh {
    pub alias: String,
    pub command: String,
    pub config: String,
    pub config_file: String,
    pub host: String,
    pub identity_file: String,
    pub jump: String,
    /// known_hosts lines for the jump host and the VM.
    pub known_hosts: String,
    pub known_hosts_file: String,
    pub port: u16,
    pub target: Uuid,
    pub user: String,
    pub vm_host_keys_known: bool,
}

/// `POST …/agents`: `private_key` only when the hub made the key, and never again.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedAgent {
    pub agent: Agent,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub private_key: Option<String>,
    pub ssh: AgentSsh,
}

/// One command or session an agent ran.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AgentActivity {
    pub agent_id: Uuid,
    /// The key's name when the session ran (it may be revoked since).
    pub agent_name: String,
    pub command: String,
    #[schema(required = true)]
    pub ended_at: Option<DateTime<Utc>>,
    #[schema(required = true)]
    pub exit_code: Option<i32>,
    pub id: Uuid,
    pub interactive: bool,
    #[schema(required = true)]
    pub session: Option<String>,
    pub started_at: DateTime<Utc>,
}

impl From<crate::db::AgentSession> for AgentActivity {
    fn from(s: crate::db::AgentSession) -> Self {
        Self {
            agent_id: s.agent_id,
            agent_name: s.agent_name,
            command: s.command,
            ended_at: s.ended_at,
            exit_code: s.exit_code,
            id: s.id,
            interactive: s.interactive,
            session: s.session,
            started_at: s.started_at,
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ActivityLimit {
    /// 1 to 500, default 50.
    pub limit: Option<i64>,
}

// --- Usage and billing ---------------------------------------------------

/// What the caller has used of their plan this month.
#[derive(Debug, Serialize, ToSchema)]
pub struct Usage {
    /// Compute by day (UTC), oldest first; days without any are left out.
    pub by_day: Vec<DayUsage>,
    pub by_project: Vec<ProjectUsage>,
    pub compute_seconds_limit: i64,
    /// Includes a running VM's time up to now.
    pub compute_seconds_used: i64,
    /// The caller's plan's idle timeout.
    pub idle_timeout_s: i64,
    /// One VM's size on the caller's plan.
    pub machine: Machine,
    pub period_end: DateTime<Utc>,
    pub period_start: DateTime<Utc>,
    pub plan: Plan,
    /// Every plan's limits, lowest first (what a higher plan gives).
    pub plans: Vec<PlanLimits>,
    pub projects_limit: i64,
    pub projects_used: i64,
    pub storage_gb_hours: f64,
    pub storage_gb_limit: i64,
    pub storage_gb_used: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DayUsage {
    pub compute_seconds: i64,
    pub date: NaiveDate,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProjectUsage {
    pub compute_seconds: i64,
    /// Null for a deleted project.
    #[schema(required = true)]
    pub name: Option<String>,
    pub project_id: Uuid,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Machine {
    pub cpus: i32,
    pub memory_mb: i64,
}

/// One plan's limits (`plan_limits`).
#[derive(Debug, Serialize, ToSchema)]
pub struct PlanLimits {
    pub compute_seconds: i64,
    pub cpus: i32,
    pub idle_timeout_s: i64,
    pub memory_mb: i64,
    pub pids: i32,
    pub plan: String,
    pub projects: i64,
    pub rank: i32,
    pub storage_gb: i64,
}

impl From<crate::plans::Plan> for PlanLimits {
    fn from(p: crate::plans::Plan) -> Self {
        Self {
            compute_seconds: p.compute_seconds,
            cpus: p.cpus,
            idle_timeout_s: p.idle_timeout_s,
            memory_mb: p.memory_mb,
            pids: p.pids,
            plan: p.plan,
            projects: p.projects,
            rank: p.rank,
            storage_gb: p.storage_gb,
        }
    }
}

/// Compute seconds of one month (UTC) on one machine size.
#[derive(Debug, Serialize, ToSchema)]
pub struct MonthlyUsage {
    pub compute_seconds: i64,
    pub cpus: i32,
    pub memory_mb: i64,
    pub month: DateTime<Utc>,
}

/// GB-hours of project disks in one month (UTC).
#[derive(Debug, Serialize, ToSchema)]
pub struct MonthlyStorage {
    pub gb_hours: f64,
    pub month: DateTime<Utc>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct CheckoutRequest {
    /// Checked by the handler, which answers with the contract's message.
    #[schema(value_type = PaidPlan)]
    pub plan: String,
}

/// Where Checkout or the billing portal sends the browser.
#[derive(Debug, Serialize, ToSchema)]
pub struct Redirect {
    pub url: String,
}

/// What the hub answers Stripe.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookReceived {
    pub received: bool,
}
