//! Agents over SSH, aetherd's side: the agents stream the hub opens on
//! every tunnel, the VM's sshd behind the hub's `Tcp { port: 22 }` streams,
//! and read-only views of agents' interactive sessions.
//!
//! On the agents stream the hub sends the project's live keys whenever they
//! change; aetherd writes them (`keys`), answers `KeysApplied`, and hangs up
//! open sessions of agents that lost their key. It sends the sshd's host
//! keys and login user (`SshInfo`) whenever sshd (re)starts, and the start
//! and end of every agent session as the spool shows them (`activity`).
//! Until the hub has sent keys, the managed block is empty: nothing reaches
//! sshd but through the hub, which sends keys first.

use crate::activity::Spool;
use crate::keys::{AuthorizedKeys, ForcedCommand};
use crate::sshd::{Mode, Ready, Sshd, SshdConfig};
use aether_protocol::agents::{AgentsHub, AgentsVm, KeyLine, SetAuthorizedKeys};
use aether_protocol::domain::{PtyAttach, WireError};
use aether_protocol::{FrameCodec, pb};
use anyhow::Context;
use futures_util::{SinkExt, StreamExt};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::codec::{FramedRead, FramedWrite};
use tokio_util::sync::CancellationToken;

/// How often the spool is scanned for session starts and ends.
const SCAN_INTERVAL: Duration = Duration::from_millis(200);
/// How long a `Tcp { port: 22 }` stream waits for sshd to come up.
const SSHD_WAIT: Duration = Duration::from_secs(15);

/// What the agents service needs.
#[derive(Debug, Clone)]
pub struct AgentsConfig {
    pub sshd: SshdConfig,
    pub project: String,
    pub home: PathBuf,
    /// (uid, gid) of the VM's user, when aetherd runs as root for it.
    pub owner: Option<(u32, u32)>,
}

/// The agents service of one VM.
pub struct Agents {
    project: String,
    mode: Mode,
    /// Where agent sessions record themselves, and who owns it.
    spool_dir: PathBuf,
    owner: Option<(u32, u32)>,
    keys: AuthorizedKeys,
    sshd: Arc<Sshd>,
    /// One agents stream at a time reads the spool.
    spool: tokio::sync::Mutex<Spool>,
    /// SSH connections through the hub's jump host now open (heartbeats).
    ssh_connections: AtomicU32,
}

impl Agents {
    /// Clears the managed keys. The VM image's sshd starts now; a local VM's
    /// starts with the first key, so a project without agents has none (and
    /// nothing of this module in its home).
    pub fn start(config: AgentsConfig, shutdown: CancellationToken) -> anyhow::Result<Arc<Self>> {
        if config.sshd.mode == Mode::System {
            crate::sshd::first_boot()?;
        }
        let spool = config.home.join(".aether/sessions");
        let forced = ForcedCommand {
            exe: crate::keys::own_exe()?,
            project: config.project.clone(),
            home: config.home.clone(),
            spool: spool.clone(),
        };
        let keys = AuthorizedKeys::new(&config.home, config.owner, forced);
        // No key is trusted until the hub says so.
        if let Err(e) = keys.apply(SetAuthorizedKeys::default()) {
            tracing::warn!(error = format!("{e:#}"), "clearing agent keys");
        }
        let mode = config.sshd.mode;
        let sshd = Sshd::new(config.sshd, shutdown);
        if mode == Mode::System {
            sshd.ensure_started();
        }
        Ok(Arc::new(Self {
            project: config.project,
            mode,
            spool_dir: spool.clone(),
            owner: config.owner,
            keys,
            sshd,
            spool: tokio::sync::Mutex::new(Spool::new(spool)),
            ssh_connections: AtomicU32::new(0),
        }))
    }

    /// SSH connections through the hub's jump host now open.
    pub fn ssh_connections(&self) -> u32 {
        self.ssh_connections.load(Ordering::Relaxed)
    }

    /// Where the VM's port 22 really is: wherever its sshd listens (`None`
    /// while that sshd is not up), or 22 itself when aetherd runs none.
    async fn sshd_port(&self) -> Option<u16> {
        match self.mode {
            Mode::Local | Mode::System => self.sshd.port_22(SSHD_WAIT).await,
            _ => Some(22),
        }
    }

    /// A viewer of `agent-…` watches that agent's tmux session, read-only.
    pub fn viewer(&self, mut req: PtyAttach) -> PtyAttach {
        if req.session.as_str().starts_with("agent-") && req.command.is_none() {
            req.command = Some(crate::agent_session::viewer_command(&self.project, req.session.as_str()));
        }
        req
    }

    /// Applies a key set; with keys in it, makes sure sessions can record
    /// themselves and sshd runs.
    fn apply(&self, set: SetAuthorizedKeys) -> anyhow::Result<()> {
        if !set.keys.is_empty() {
            let spool = &self.spool_dir;
            std::fs::create_dir_all(spool).with_context(|| format!("creating {}", spool.display()))?;
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(spool, std::fs::Permissions::from_mode(0o700))?;
            if let Some((uid, gid)) = self.owner {
                std::os::unix::fs::lchown(spool, Some(uid), Some(gid))?;
            }
            self.sshd.ensure_started();
        }
        self.keys.apply(set)
    }

    /// Hangs up open sessions of agents whose key is gone.
    async fn end_revoked(&self, spool: &Spool) {
        let live = self.keys.live_agents(crate::now_ms());
        for (agent, pid) in spool.open_sessions() {
            if !live.contains(&agent) {
                tracing::info!(%agent, pid, "ending a session of a revoked agent");
                let _ =
                    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), nix::sys::signal::Signal::SIGHUP);
            }
        }
    }
}

/// Serves a `Tcp { port: 22 }` stream: the hub's jump host reaching the
/// VM's sshd (wherever it really listens), counted as an SSH connection.
/// Other ports are plain TCP (`tcp::serve`).
pub async fn serve_ssh(agents: &Agents, recv: quinn::RecvStream, send: quinn::SendStream) -> anyhow::Result<()> {
    match agents.sshd_port().await {
        Some(local) => {
            let _open = crate::Counted::new(&agents.ssh_connections);
            crate::tcp::serve(local, recv, send).await
        }
        None => {
            let mut framed = FramedWrite::new(send, FrameCodec::<pb::Status>::default());
            let error = WireError::new("unavailable", "the VM's sshd is not running");
            framed.send(pb::Status { error: Some(error.into()) }).await?;
            framed.close().await?;
            Ok(())
        }
    }
}

fn ssh_info(ready: &Ready) -> AgentsVm {
    let host_keys = ready.host_keys.iter().filter_map(|k| KeyLine::parse(k).ok()).collect();
    AgentsVm::SshInfo { host_keys, user: ready.user.clone() }
}

/// Serves the agents stream until the hub closes it.
pub async fn serve<R, W>(agents: &Agents, recv: R, send: W) -> anyhow::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut rx = FramedRead::new(recv, FrameCodec::<pb::AgentsHub>::default());
    let mut tx = FramedWrite::new(send, FrameCodec::<pb::AgentsVm>::default());
    let mut spool = agents.spool.lock().await;
    spool.reset();
    let mut sshd = agents.sshd.watch();
    let mut sshd_alive = true;
    let first = sshd.borrow_and_update().clone();
    if let Some(ready) = first {
        tx.send(ssh_info(&ready).into()).await?;
    }
    let mut scan = tokio::time::interval(SCAN_INTERVAL);
    // When this stream last wrote authorized_keys (never yet: any remembered
    // key's expiry counts). The next expiry is looked for after it, not
    // after now: a key that expired while another branch was being served
    // must still be removed (it used to stay in the file).
    let mut written_at = 0;
    loop {
        let expiry = agents.keys.rewrite_in(written_at, crate::now_ms());
        tokio::select! {
            frame = rx.next() => {
                let Some(frame) = frame else { return Ok(()) };
                match AgentsHub::try_from(frame.context("agents stream")?)? {
                    AgentsHub::SetAuthorizedKeys(set) => {
                        let generation = set.generation;
                        let count = set.keys.len();
                        written_at = crate::now_ms();
                        let error = agents.apply(set).err().map(|e| {
                            tracing::error!(error = format!("{e:#}"), "writing authorized_keys");
                            WireError::new("keys_failed", format!("{e:#}"))
                        });
                        if error.is_none() {
                            tracing::info!(generation, keys = count, "agent keys applied");
                        }
                        tx.send(AgentsVm::KeysApplied { generation, error }.into()).await?;
                        agents.end_revoked(&spool).await;
                    }
                }
            }
            () = sleep_opt(expiry) => {
                written_at = crate::now_ms();
                if let Err(e) = agents.keys.refresh() {
                    tracing::error!(error = format!("{e:#}"), "removing expired keys");
                }
                agents.end_revoked(&spool).await;
            }
            changed = sshd.changed(), if sshd_alive => match changed {
                Ok(()) => {
                    let ready = sshd.borrow_and_update().clone();
                    if let Some(ready) = ready {
                        tx.send(ssh_info(&ready).into()).await?;
                    }
                }
                Err(_) => sshd_alive = false,
            },
            _ = scan.tick() => {
                for found in spool.scan() {
                    tx.send(AgentsVm::Session(found.event).into()).await?;
                    if let Some(path) = found.done {
                        let _ = std::fs::remove_file(path);
                    }
                }
            }
        }
    }
}

async fn sleep_opt(d: Option<Duration>) {
    match d {
        Some(d) => tokio::time::sleep(d).await,
        None => std::future::pending().await,
    }
}
