//! Agents over SSH, the hub's side: the jump host (`server`), the agents
//! stream that keeps each VM's `authorized_keys` equal to the project's live
//! keys (`sync`), key generation and checks (`keys`), and what the API tells
//! an agent to put in its SSH config (`answer`).
//!
//! `Ssh` is the shared state: who has to be told that a project's keys
//! changed, which VMs have applied their keys on their current tunnel, and
//! every open jump channel with the agent it runs for, so that revoking an
//! agent (or its key expiring) closes its channels at once. It reaches the
//! database, the tunnels and the event bus, and asks the control plane to
//! start a stopped VM through `tunnel::Wake`; it calls nothing else of it.

pub mod answer;
pub mod keys;
mod server;
pub mod sync;

use crate::db::Db;
use crate::events::Events;
use crate::tunnel::{Tunnels, Wake};
use aether_protocol::agents::KeyLine;
use anyhow::Context;
use chrono::{DateTime, Utc};
use russh::keys::PrivateKey;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// The user agents log in to the jump host as.
pub const JUMP_USER: &str = "aether";
/// How often channels of expired keys are looked for.
const SWEEP_INTERVAL: Duration = Duration::from_millis(250);

/// The tunnel (quinn connection id) and key change a VM has applied.
type Applied = Option<(usize, u64)>;

/// One open jump channel.
struct OpenChannel {
    agent: Uuid,
    expires_at: Option<DateTime<Utc>>,
    cancel: CancellationToken,
}

/// The hub's SSH state.
pub struct Ssh {
    host_key: PrivateKey,
    /// The jump host's key as `type base64`, for known_hosts lines.
    pub host_key_line: KeyLine,
    /// Where agents reach the jump host.
    pub public_host: Arc<str>,
    pub public_port: u16,
    changes: Mutex<HashMap<Uuid, watch::Sender<u64>>>,
    /// Per project: the tunnel (quinn connection id) whose VM applied the
    /// project's keys, and the change (`changes` count) it applied.
    applied: Mutex<HashMap<Uuid, watch::Sender<Applied>>>,
    channels: Mutex<HashMap<u64, OpenChannel>>,
    next_channel: AtomicU64,
    /// Per project: bumped whenever the VM reports its sshd's host keys.
    reported: Mutex<HashMap<Uuid, watch::Sender<u64>>>,
    db: Db,
    tunnels: Arc<Tunnels>,
    events: Arc<Events>,
    /// Starts a stopped VM for an agent (set once the control plane exists).
    wake: OnceLock<Arc<dyn Wake>>,
}

impl Ssh {
    /// The jump host's state with its host key.
    pub fn new(
        host_key: PrivateKey,
        (public_host, public_port): (String, u16),
        db: Db,
        tunnels: Arc<Tunnels>,
        events: Arc<Events>,
    ) -> anyhow::Result<Self> {
        let host_key_line = keys::key_line(host_key.public_key()).context("the jump host's key")?;
        Ok(Self {
            host_key,
            host_key_line,
            public_host: public_host.into(),
            public_port,
            changes: Mutex::default(),
            applied: Mutex::default(),
            channels: Mutex::default(),
            next_channel: AtomicU64::new(1),
            reported: Mutex::default(),
            db,
            tunnels,
            events,
            wake: OnceLock::new(),
        })
    }

    /// Who starts a stopped VM when an agent connects to it.
    pub fn set_wake(&self, wake: Arc<dyn Wake>) {
        let _ = self.wake.set(wake);
    }

    fn changes_of(&self, project: Uuid) -> watch::Sender<u64> {
        self.changes.lock().expect("ssh lock").entry(project).or_insert_with(|| watch::channel(0).0).clone()
    }

    /// The project's keys changed: its VM must be sent them again. Returns
    /// the change's number (the generation that carries it).
    pub fn keys_changed(&self, project: Uuid) -> u64 {
        let tx = self.changes_of(project);
        tx.send_modify(|n| *n += 1);
        *tx.borrow()
    }

    /// Changes of the project's keys, for its agents stream.
    pub fn subscribe(&self, project: Uuid) -> watch::Receiver<u64> {
        self.changes_of(project).subscribe()
    }

    fn applied_of(&self, project: Uuid) -> watch::Sender<Applied> {
        self.applied.lock().expect("ssh lock").entry(project).or_insert_with(|| watch::channel(None).0).clone()
    }

    /// The VM on tunnel `conn` has written the keys of change `generation`.
    pub fn set_applied(&self, project: Uuid, conn: usize, generation: u64) {
        self.applied_of(project).send_replace(Some((conn, generation)));
    }

    /// Tunnel `conn` is gone (if it was the one with the keys applied).
    pub fn clear_applied(&self, project: Uuid, conn: usize) {
        self.applied_of(project).send_if_modified(|v| {
            let was = v.is_some_and(|(c, _)| c == conn);
            if was {
                *v = None;
            }
            was
        });
    }

    /// Waits until the VM on tunnel `conn` has applied the project's keys.
    pub async fn wait_applied(&self, project: Uuid, conn: usize, timeout: Duration) -> bool {
        let mut rx = self.applied_of(project).subscribe();
        let applied = rx.wait_for(|v| v.is_some_and(|(c, _)| c == conn));
        tokio::time::timeout(timeout, applied).await.is_ok_and(|r| r.is_ok())
    }

    /// Tells the VM that the project's keys changed and waits (up to
    /// `timeout`, and only while it is connected) until it has applied them.
    pub async fn sync_keys(&self, project: Uuid, timeout: Duration) -> bool {
        let generation = self.keys_changed(project);
        if self.tunnels.get(project).is_none() {
            return false;
        }
        let mut rx = self.applied_of(project).subscribe();
        let applied = rx.wait_for(|v| v.is_some_and(|(_, g)| g >= generation));
        tokio::time::timeout(timeout, applied).await.is_ok_and(|r| r.is_ok())
    }

    fn reported_of(&self, project: Uuid) -> watch::Sender<u64> {
        self.reported.lock().expect("ssh lock").entry(project).or_insert_with(|| watch::channel(0).0).clone()
    }

    /// The VM just reported (and the hub stored) its sshd's host keys.
    pub fn host_keys_reported(&self, project: Uuid) {
        self.reported_of(project).send_modify(|n| *n += 1);
    }

    /// The VM sshd's stored host keys and login user; when there are none
    /// yet and the VM is connected, waits up to `timeout` for its report.
    pub async fn vm_ssh(&self, project: Uuid, timeout: Duration) -> sqlx::Result<Option<(String, String)>> {
        let mut rx = self.reported_of(project).subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let stored = self.db.vm_ssh(project).await?;
            if stored.is_some() || self.tunnels.get(project).is_none() {
                return Ok(stored);
            }
            if tokio::time::timeout_at(deadline, rx.changed()).await.is_err() {
                return Ok(None);
            }
        }
    }

    /// Registers a channel opened for `agent`; its token is cancelled on revocation or expiry.
    fn open_channel(&self, agent: Uuid, expires_at: Option<DateTime<Utc>>) -> (u64, CancellationToken) {
        let id = self.next_channel.fetch_add(1, Ordering::Relaxed);
        let cancel = CancellationToken::new();
        self.channels.lock().expect("ssh lock").insert(id, OpenChannel { agent, expires_at, cancel: cancel.clone() });
        (id, cancel)
    }

    fn close_channel(&self, id: u64) {
        self.channels.lock().expect("ssh lock").remove(&id);
    }

    /// Closes every open channel of `agent` (just revoked).
    pub fn revoke(&self, agent: Uuid) -> usize {
        let channels = self.channels.lock().expect("ssh lock");
        let mine: Vec<_> = channels.values().filter(|c| c.agent == agent).collect();
        for c in &mine {
            c.cancel.cancel();
        }
        mine.len()
    }

    /// Open channels, for metrics and tests.
    pub fn open_channels(&self) -> usize {
        self.channels.lock().expect("ssh lock").len()
    }

    fn sweep_expired(&self) {
        let now = Utc::now();
        for c in self.channels.lock().expect("ssh lock").values() {
            if c.expires_at.is_some_and(|e| e <= now) && !c.cancel.is_cancelled() {
                tracing::info!(agent = %c.agent, "closing a channel: the agent's key expired");
                c.cancel.cancel();
            }
        }
    }
}

/// Where agents reach the jump host: `configured` (`host:port`), else the
/// public URL's host with the bound port, else the bound address (loopback
/// for an unspecified one).
pub fn public_address(configured: Option<&str>, public_url: Option<&str>, bound: SocketAddr) -> (String, u16) {
    if let Some((host, port)) = configured.and_then(|c| c.rsplit_once(':'))
        && let Ok(port) = port.parse()
    {
        return (host.trim_start_matches('[').trim_end_matches(']').to_owned(), port);
    }
    if let Some(host) =
        public_url.and_then(|u| u.parse::<axum::http::Uri>().ok()).and_then(|u| u.host().map(str::to_owned))
    {
        return (host.trim_start_matches('[').trim_end_matches(']').to_owned(), bound.port());
    }
    let ip = if bound.ip().is_unspecified() { std::net::Ipv4Addr::LOCALHOST.into() } else { bound.ip() };
    (ip.to_string(), bound.port())
}

/// Serves the jump host on `listener` until `shutdown`.
pub async fn serve(listener: tokio::net::TcpListener, ssh: Arc<Ssh>, shutdown: CancellationToken) {
    let config = Arc::new(server::config(ssh.host_key.clone()));
    let mut sweep = tokio::time::interval(SWEEP_INTERVAL);
    loop {
        let (tcp, peer) = tokio::select! {
            () = shutdown.cancelled() => break,
            _ = sweep.tick() => {
                ssh.sweep_expired();
                continue;
            }
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "accepting an ssh connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = tcp.set_nodelay(true);
        let handler = server::Conn::new(ssh.clone(), peer);
        let config = config.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let session = match russh::server::run_stream(config, tcp, handler).await {
                Ok(s) => s,
                Err(e) => {
                    tracing::debug!(%peer, error = format!("{e:#}"), "ssh handshake failed");
                    return;
                }
            };
            let handle = session.handle();
            tokio::select! {
                r = session => if let Err(e) = r {
                    tracing::debug!(%peer, error = format!("{e:#}"), "ssh connection ended");
                },
                () = shutdown.cancelled() => {
                    let _ = handle.disconnect(russh::Disconnect::ByApplication, "hub shutting down".into(), String::new()).await;
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_public_address_prefers_what_was_configured() {
        let bound: SocketAddr = "0.0.0.0:2222".parse().unwrap();
        assert_eq!(public_address(Some("ssh.example.com:22"), None, bound), ("ssh.example.com".into(), 22));
        assert_eq!(public_address(None, Some("https://hub.example.com"), bound), ("hub.example.com".into(), 2222));
        assert_eq!(public_address(None, None, bound), ("127.0.0.1".into(), 2222));
        assert_eq!(public_address(Some("[::1]:2200"), None, bound), ("::1".into(), 2200));
    }
}
