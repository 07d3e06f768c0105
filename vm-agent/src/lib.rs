//! aetherd, the agent in every project VM.
//!
//! It dials the hub over one QUIC tunnel (`tunnel`) and serves what the hub
//! asks for on streams of that connection: terminal sessions (`pty`,
//! `viewer`, `ring`, `pace`) and TCP pipes to local ports (`tcp`); it reports
//! heartbeats (`heartbeat`). It never listens on a non-loopback address.

pub mod heartbeat;
pub mod pace;
pub mod pty;
pub mod ring;
pub mod tcp;
pub mod tunnel;
pub mod viewer;

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};
use tokio_util::sync::CancellationToken;

/// Everything aetherd needs to run, built by `main` from flags and env.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    pub tunnel: tunnel::TunnelConfig,
    pub pty: pty::PtyConfig,
}

/// Runs aetherd until `shutdown`, then ends every session.
pub async fn run(config: AgentConfig, shutdown: CancellationToken) -> anyhow::Result<()> {
    let sessions = Arc::new(pty::Sessions::new(config.pty.clone()));
    let meter = Arc::new(heartbeat::Meter::new(config.pty.home.clone()));
    let result = tunnel::run(config.tunnel, sessions.clone(), meter, shutdown).await;
    sessions.kill_all();
    result
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
