//! Accounts a user manages: sign-in sessions (a short-lived access token
//! plus a rotating refresh token, stored hashed), mailed one-time links
//! (verification, password reset, email change), the audit log, the limit
//! on unverified accounts, and deleting an account with all it holds.
//!
//! Revoking a session deletes its row; access tokens name their session
//! and `auth::AuthUser` refuses them once it is gone.

pub mod mail;

use crate::auth::{Tokens, random_token, sha256};
use crate::billing::Billing;
use crate::config::AccountsConfig;
use crate::db::Db;
use crate::domain::{Error, Result};
use crate::projects::Lifecycle;
use crate::rate::Limits;
use chrono::DateTime;
use chrono::{Duration, Utc};
use std::net::IpAddr;
use std::sync::Arc;
use uuid::Uuid;

/// A session unused this long can't be refreshed: it has ended.
pub const SESSION_IDLE: Duration = Duration::days(30);
/// Lifetime of a password-reset link.
pub const RESET_TTL: Duration = Duration::minutes(30);
/// Lifetime of a link verifying an address (new or changed).
pub const VERIFY_TTL: Duration = Duration::hours(24);
/// Most audit lines one read returns.
pub const AUDIT_LIMIT: i64 = 200;

/// What accounts reach: the users' rows, the token keys, the abuse limits,
/// the outgoing mail; for deleting an account, its projects' life cycle and
/// Stripe. A handle: a clone is a few reference counts.
#[derive(Clone)]
pub struct Accounts {
    pub db: Db,
    pub tokens: Arc<Tokens>,
    pub limits: Arc<Limits>,
    pub mailer: Arc<mail::Mailer>,
    pub config: Arc<AccountsConfig>,
    /// Where users reach the hub: mailed links point there.
    pub public_url: Arc<str>,
    /// The plan a new account starts on.
    pub default_plan: Arc<str>,
    /// An argon2 hash to verify against for unknown emails (constant timing).
    pub dummy_hash: Arc<str>,
    /// Why VMs run unisolated here, if they do: then only a first user may sign up.
    pub unisolated: Option<Arc<str>>,
    pub billing: Option<Arc<Billing>>,
    pub lifecycle: Arc<Lifecycle>,
}

/// The client as a session shows it: its `User-Agent`, bounded.
pub fn client_name(headers: &axum::http::HeaderMap) -> String {
    let ua = headers.get(axum::http::header::USER_AGENT).and_then(|v| v.to_str().ok()).unwrap_or("");
    ua.chars().filter(|c| !c.is_control()).take(200).collect()
}

/// A signed-in session: a short-lived access token and the refresh token
/// that renews it.
#[derive(Debug)]
pub struct Session {
    pub user: Uuid,
    pub email: String,
    pub access_token: String,
    pub expires_at: DateTime<Utc>,
    pub refresh_token: String,
}

impl Accounts {
    /// Starts a session for `user`.
    pub async fn sign_in(&self, user: Uuid, email: &str, ip: IpAddr, client: &str) -> Result<Session> {
        let session = Uuid::new_v4();
        let refresh = random_token(32);
        self.db.create_session(session, user, &ip.to_string(), client, &sha256(refresh.as_bytes())).await?;
        let (access_token, expires_at) = self.tokens.issue(user, email, session, self.config.access_ttl)?;
        Ok(Session { user, email: email.to_owned(), access_token, expires_at, refresh_token: refresh })
    }

    /// Trades a refresh token for a new access token and refresh token.
    pub async fn refresh(&self, refresh_token: &str) -> Result<Session> {
        use crate::db::Refreshed;
        let next = random_token(32);
        match self.db.rotate_refresh(&sha256(refresh_token.as_bytes()), &sha256(next.as_bytes()), SESSION_IDLE).await? {
            Refreshed::Rotated { session, user, email } => {
                let (access_token, expires_at) = self.tokens.issue(user, &email, session, self.config.access_ttl)?;
                Ok(Session { user, email, access_token, expires_at, refresh_token: next })
            }
            Refreshed::Reused => {
                Err(Error::Unauthenticated("this refresh token was already used; its session has ended".into()))
            }
            Refreshed::Unknown => Err(Error::Unauthenticated("invalid or expired refresh token".into())),
        }
    }

    /// Mails `email` a one-time link for `user` (earlier unused ones of the
    /// same kind stop working).
    pub async fn mail_link(&self, user: Uuid, kind: Link, email: &str) -> Result<()> {
        let token = random_token(32);
        let ttl = if kind == Link::Reset { RESET_TTL } else { VERIFY_TTL };
        self.db.void_email_tokens(user, kind.purpose()).await?;
        self.db.create_email_token(&sha256(token.as_bytes()), user, kind.purpose(), email, Utc::now() + ttl).await?;
        let (page, subject, what) = match kind {
            Link::Verify => ("verify-email", "Verify your email address for aether", "verify this address"),
            Link::Reset => ("reset-password", "Reset your aether password", "choose a new password"),
            Link::Change => {
                ("verify-email", "Confirm your new email address for aether", "make this your account's address")
            }
        };
        let link = format!("{}/{page}?token={token}", self.public_url);
        let minutes = ttl.num_minutes();
        let body = format!(
            "Hello,\r\n\r\nOpen this link to {what}:\r\n\r\n{link}\r\n\r\n\
         It works once, for {minutes} minutes. If you did not ask for this, ignore this mail.\r\n\r\n-- aether\r\n"
        );
        self.mailer.send(mail::Mail { to: email.to_owned(), subject: subject.to_owned(), body });
        Ok(())
    }

    /// Deletes the account: each project's VM and disk, the subscription when
    /// billing is on, then the user and everything keyed to them (sessions,
    /// keys, links, audit log). Usage records stay, without an owner.
    pub async fn delete_account(&self, user: Uuid) -> Result<()> {
        for project in self.db.list_projects(user).await? {
            crate::projects::delete(&self.lifecycle, project).await?;
        }
        if let Some(billing) = &self.billing
            && let Some(row) = self.db.billing(user).await?
            && let Some(sub) = row.stripe_subscription_id.as_deref()
            && row.subscription_status.as_deref() != Some("canceled")
        {
            billing
                .payments
                .cancel_subscription(sub)
                .await
                .map_err(|e| Error::Internal(e.context("cancelling the subscription")))?;
        }
        self.db.delete_user(user).await?;
        tracing::info!(user = %user, "account deleted");
        Ok(())
    }
}

/// Writes a line of the user's audit log; a failure is logged, never the
/// caller's problem.
pub async fn audit(db: &Db, user: Uuid, action: &str, ip: Option<IpAddr>, detail: &str) {
    let address = ip.map(|i| i.to_string()).unwrap_or_default();
    if let Err(e) = db.record_audit(user, action, &address, detail).await {
        tracing::warn!(error = %e, action, "writing the audit log");
    }
}

/// What a mailed link is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Link {
    Verify,
    Reset,
    Change,
}

impl Link {
    pub fn purpose(self) -> &'static str {
        match self {
            Self::Verify => "verify",
            Self::Reset => "reset",
            Self::Change => "change",
        }
    }
}

/// Refuses to start another project's VM for an account whose address is
/// not verified, past `AETHER_UNVERIFIED_PROJECTS` running at once.
pub async fn may_start(db: &Db, limit: i64, owner: Uuid, project: Uuid) -> Result<()> {
    if limit < 0 || db.email_verified(owner).await? {
        return Ok(());
    }
    if db.count_active_projects(owner, project).await? >= limit {
        return Err(Error::Unverified(format!(
            "verify your email address (see the mail we sent) to run more than {limit} project(s) at once"
        )));
    }
    Ok(())
}
