//! Sending the hub's mail: over SMTP when `AETHER_SMTP_URL` is set, else
//! into `{data_dir}/outbox/` (one `.eml` file per message, its path logged),
//! so a hub run locally still mails its links somewhere a person can read.
//!
//! Sending is spawned off the request that asks for it: a slow or broken
//! mail server never holds up (or, by its timing, gives away) an answer.

use anyhow::Context;
use lettre::message::{Mailbox, header::ContentType};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use std::path::PathBuf;
use std::sync::Arc;

/// Where mail goes.
#[derive(Clone)]
enum Transport {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    Outbox(PathBuf),
}

/// The hub's outgoing mail.
#[derive(Clone)]
pub struct Mailer {
    transport: Transport,
    from: Mailbox,
}

/// One message to send.
#[derive(Debug, Clone)]
pub struct Mail {
    pub to: String,
    pub subject: String,
    pub body: String,
}

impl Mailer {
    /// Mail over `smtp_url`, or into `outbox` without one.
    pub fn new(smtp_url: Option<&str>, outbox: PathBuf, from: &str) -> anyhow::Result<Self> {
        let from: Mailbox = from.parse().with_context(|| format!("AETHER_MAIL_FROM {from:?} is not an address"))?;
        let transport = match smtp_url {
            Some(url) => Transport::Smtp(
                AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
                    .context("AETHER_SMTP_URL is not a valid smtp:// or smtps:// URL")?
                    .timeout(Some(std::time::Duration::from_secs(20)))
                    .build(),
            ),
            None => Transport::Outbox(outbox),
        };
        Ok(Self { transport, from })
    }

    /// Where mail goes, for the log at start.
    pub fn describe(&self) -> String {
        match &self.transport {
            Transport::Smtp(_) => "SMTP (AETHER_SMTP_URL)".into(),
            Transport::Outbox(dir) => format!("the outbox folder {} (AETHER_SMTP_URL is not set)", dir.display()),
        }
    }

    /// Sends `mail` in the background; failures are logged, not returned.
    pub fn send(self: &Arc<Self>, mail: Mail) {
        let mailer = self.clone();
        tokio::spawn(async move {
            if let Err(e) = mailer.deliver(&mail).await {
                tracing::warn!(error = format!("{e:#}"), subject = %mail.subject, "sending mail");
            }
        });
    }

    /// Sends `mail` now.
    pub async fn deliver(&self, mail: &Mail) -> anyhow::Result<()> {
        let message = Message::builder()
            .from(self.from.clone())
            .to(mail.to.parse().with_context(|| "the recipient is not a mail address")?)
            .subject(&mail.subject)
            .header(ContentType::TEXT_PLAIN)
            .body(mail.body.clone())
            .context("building the message")?;
        match &self.transport {
            Transport::Smtp(smtp) => {
                smtp.send(message).await.context("the mail server refused the message")?;
            }
            Transport::Outbox(dir) => {
                tokio::fs::create_dir_all(dir).await.with_context(|| format!("creating {}", dir.display()))?;
                let name = format!(
                    "{}-{}.eml",
                    chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ"),
                    uuid::Uuid::new_v4().simple()
                );
                let path = dir.join(name);
                tokio::fs::write(&path, message.formatted())
                    .await
                    .with_context(|| format!("writing {}", path.display()))?;
                tracing::info!(path = %path.display(), subject = %mail.subject, "mail written to the outbox");
            }
        }
        Ok(())
    }
}
