//! aetherd, the agent in every project VM.
//!
//! It dials the hub over one QUIC tunnel (`tunnel`) and serves what the hub
//! asks for on streams of that connection: terminal sessions (`pty`,
//! `viewer`, `ring`, `pace`), file operations and watches (`files`,
//! `watch`) and TCP pipes to local ports (`tcp`), and it reports listening
//! ports (`ports`); it reports heartbeats
//! (`heartbeat`). It never listens on any address.
//!
//! Agents over SSH: `agents` serves the hub's agents stream, keeps the
//! managed `authorized_keys` block (`keys`) and the VM's sshd (`sshd`);
//! `agent_session` is the forced command every agent session runs through,
//! recording itself in the spool `activity` reads.

pub mod activity;
pub mod agent_session;
pub mod agents;
pub mod files;
pub mod heartbeat;
pub mod keys;
pub mod pace;
pub mod ports;
pub mod pty;
pub mod ring;
pub mod sshd;
pub mod tcp;
pub mod tunnel;
pub mod viewer;
pub mod watch;

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};
use tokio_util::sync::CancellationToken;

/// Everything aetherd needs to run, built by `main` from flags and env.
#[derive(Debug)]
pub struct AgentConfig {
    pub tunnel: tunnel::TunnelConfig,
    pub pty: pty::PtyConfig,
    /// Owner (uid, gid) of files created through the API, when aetherd runs
    /// as root on behalf of a user.
    pub file_owner: Option<(u32, u32)>,
    /// Whose listening ports are previews.
    pub ports_scope: ports::Scope,
    /// Agents over SSH: the VM's sshd and the managed keys.
    pub agents: agents::AgentsConfig,
}

/// What the hub's streams are served by.
pub struct Services {
    pub sessions: Arc<pty::Sessions>,
    pub files: files::Files,
    pub ports: Arc<std::sync::Mutex<ports::Scanner>>,
    pub agents: Arc<agents::Agents>,
}

/// Runs aetherd until `shutdown`, then ends every session.
pub async fn run(config: AgentConfig, shutdown: CancellationToken) -> anyhow::Result<()> {
    let sessions = Arc::new(pty::Sessions::new(config.pty.clone()));
    let files = files::Files::new(config.pty.home.clone(), config.file_owner);
    let meter = Arc::new(heartbeat::Meter::new(config.pty.home.clone()));
    let ports = Arc::new(std::sync::Mutex::new(ports::Scanner::new(config.ports_scope.clone())));
    let agents = agents::Agents::start(config.agents.clone(), shutdown.clone())?;
    let services = Arc::new(Services { sessions: sessions.clone(), files, ports, agents });
    run_startup_script(&sessions, &config.pty.home);
    let result = tunnel::run(config.tunnel, services, meter, shutdown).await;
    sessions.kill_all();
    result
}

/// The project's own boot step: `~/.aether/startup.sh`, if present, runs in
/// a terminal session named `startup` (so its output can be watched), e.g.
/// to bring dev servers back up after the VM starts.
pub const STARTUP_SCRIPT: &str = ".aether/startup.sh";

fn run_startup_script(sessions: &pty::Sessions, home: &std::path::Path) {
    let script = home.join(STARTUP_SCRIPT);
    if !script.is_file() {
        return;
    }
    let req = aether_protocol::domain::PtyAttach {
        session: aether_protocol::domain::SessionName::parse("startup").expect("valid name"),
        size: aether_protocol::domain::TermSize::default(),
        readonly: true,
        since: None,
        command: Some(format!("sh {}", script.display())),
    };
    match sessions.get_or_spawn(&req) {
        Ok(_) => tracing::info!(script = %script.display(), "running the startup script"),
        Err(e) => tracing::warn!(error = format!("{e:#}"), "running the startup script"),
    }
}

/// Counts one more of something while it lives: the count goes down again
/// however the holder ends, dropped mid-way with its tunnel included.
pub(crate) struct Counted<'a>(&'a std::sync::atomic::AtomicU32);

impl<'a> Counted<'a> {
    pub(crate) fn new(count: &'a std::sync::atomic::AtomicU32) -> Self {
        count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Self(count)
    }
}

impl Drop for Counted<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// Sends `sig` to the process group led by `pid`, ignoring a group that is gone.
pub(crate) fn signal_group(pid: u32, sig: nix::sys::signal::Signal) {
    if let Ok(pid) = i32::try_from(pid) {
        let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pid), sig);
    }
}
