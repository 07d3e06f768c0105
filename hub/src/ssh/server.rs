//! The jump host: an SSH server (russh) that is nothing but a relay.
//!
//! Agents authenticate as `aether` with a public key that must be a live
//! agent key (not revoked, not expired). The only thing they may open is a
//! `direct-tcpip` channel to `PROJECT_ID:22` of a project their key belongs
//! to; every other request is refused. The channel is then carried over a
//! `Tcp { port: 22 }` tunnel stream to the VM's own sshd, so the agent's SSH
//! session is end to end with the VM and the hub copies bytes without
//! looking into them. A stopped VM is started first (within the hub's wait
//! timeout), and the channel opens only once the VM has the project's keys.

use super::Ssh;
use crate::db::Agent;
use crate::tunnel::Tunnel;
use anyhow::Context;
use russh::keys::PrivateKey;
use russh::server::{Auth, ChannelOpenHandle, Msg, PublicKeyOffer, Session, VerifiedPublicKey};
use russh::{Channel, ChannelOpenFailure, MethodKind, MethodSet, SshId};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tracing::Instrument;
use uuid::Uuid;

/// How long a channel waits for a VM that is up to apply its keys.
const KEYS_WAIT: Duration = Duration::from_secs(15);
/// Copy buffer per direction.
const COPY_BUF: usize = 256 * 1024;

/// The russh server configuration of the jump host.
pub fn config(host_key: PrivateKey) -> russh::server::Config {
    russh::server::Config {
        server_id: SshId::Standard("SSH-2.0-aether_jump".into()),
        methods: MethodSet::from(&[MethodKind::PublicKey][..]),
        auth_rejection_time: Duration::from_millis(300),
        // OpenSSH probes with "none" first; that probe need not cost anything.
        auth_rejection_time_initial: Some(Duration::ZERO),
        keys: vec![host_key],
        window_size: 8 << 20,
        maximum_packet_size: 32768,
        channel_buffer_size: 256,
        max_auth_attempts: 6,
        // Agents' sessions may idle for hours; dead peers are found by keepalives.
        inactivity_timeout: None,
        keepalive_interval: Some(Duration::from_secs(30)),
        keepalive_max: 3,
        nodelay: true,
        ..Default::default()
    }
}

/// One client connection.
pub struct Conn {
    ssh: Arc<Ssh>,
    peer: SocketAddr,
    /// The live agents of the key that authenticated (one per project it was added to).
    grants: Vec<Agent>,
}

impl Conn {
    pub fn new(ssh: Arc<Ssh>, peer: SocketAddr) -> Self {
        Self { ssh, peer, grants: vec![] }
    }

    async fn agents_of(&self, user: &str, key: &russh::keys::PublicKey) -> anyhow::Result<Vec<Agent>> {
        if user != super::JUMP_USER {
            return Ok(vec![]);
        }
        let fingerprint = super::keys::fingerprint(key);
        Ok(self.ssh.db.live_agents_by_fingerprint(&fingerprint).await?)
    }
}

impl russh::server::Handler for Conn {
    type Error = anyhow::Error;

    async fn auth_publickey_offered(&mut self, user: &str, offer: PublicKeyOffer<'_>) -> anyhow::Result<Auth> {
        let known = !self.agents_of(user, offer.public_key).await?.is_empty();
        Ok(if known { Auth::Accept } else { Auth::reject() })
    }

    async fn auth_publickey(&mut self, user: &str, key: VerifiedPublicKey<'_>) -> anyhow::Result<Auth> {
        let agents = self.agents_of(user, key.public_key).await?;
        if agents.is_empty() {
            tracing::info!(peer = %self.peer, %user, "ssh key refused");
            return Ok(Auth::reject());
        }
        let names: Vec<_> = agents.iter().map(|a| format!("{}/{}", a.project_id, a.name)).collect();
        tracing::info!(peer = %self.peer, agents = ?names, "agent authenticated");
        self.grants = agents;
        Ok(Auth::Accept)
    }

    async fn channel_open_direct_tcpip(
        &mut self,
        channel: Channel<Msg>,
        host: &str,
        port: u32,
        _originator_address: &str,
        _originator_port: u32,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> anyhow::Result<()> {
        let project = host.parse::<Uuid>().ok();
        let grant = self.grants.iter().find(|a| Some(a.project_id) == project && port == 22).cloned();
        match grant {
            Some(agent) => {
                let span = tracing::info_span!("ssh", project = %agent.project_id, agent = %agent.name);
                tokio::spawn(bridge(self.ssh.clone(), agent, channel, reply).instrument(span));
            }
            None => {
                tracing::info!(peer = %self.peer, %host, port, "refused a channel the key does not grant");
                reply.reject(ChannelOpenFailure::AdministrativelyProhibited).await;
            }
        }
        Ok(())
    }
}

/// Carries one channel to the VM's sshd until either side ends it, or the
/// agent is revoked or its key expires.
async fn bridge(ssh: Arc<Ssh>, agent: Agent, channel: Channel<Msg>, reply: ChannelOpenHandle) {
    // Registered before the liveness check, so a revocation can't slip between.
    let (id, cancel) = ssh.open_channel(agent.id, agent.expires_at);
    let prepared = tokio::select! {
        r = connect(&ssh, &agent) => r,
        () = cancel.cancelled() => Err(anyhow::anyhow!("the agent's key was revoked")),
    };
    match prepared {
        Err(e) => {
            tracing::warn!(error = format!("{e:#}"), "ssh channel refused");
            reply.reject(ChannelOpenFailure::ConnectFailed).await;
        }
        Ok(mut vm) => {
            reply.accept().await;
            let mut stream = channel.into_stream();
            tokio::select! {
                r = tokio::io::copy_bidirectional_with_sizes(&mut stream, &mut vm, COPY_BUF, COPY_BUF) => match r {
                    Ok((up, down)) => tracing::debug!(up, down, "ssh channel closed"),
                    Err(e) => tracing::debug!(error = %e, "ssh channel ended"),
                },
                () = cancel.cancelled() => tracing::info!("closed the channel of a revoked or expired key"),
            }
        }
    }
    ssh.close_channel(id);
}

/// The VM's sshd as a byte stream: starts the VM if needed, waits for its
/// keys, opens `Tcp { port: 22 }`.
async fn connect(ssh: &Ssh, agent: &Agent) -> anyhow::Result<impl AsyncRead + AsyncWrite + Unpin + use<>> {
    anyhow::ensure!(ssh.db.agent_is_live(agent.id).await?, "the agent's key is no longer valid");
    ssh.db.touch_agent(agent.id).await?;
    let tunnel = running(ssh, agent.project_id).await?;
    let applied = ssh.wait_applied(agent.project_id, tunnel.conn.stable_id(), KEYS_WAIT).await;
    anyhow::ensure!(applied, "the VM has not applied the project's keys");
    match tunnel.tcp(22).await? {
        Ok(stream) => Ok(stream.into_io()),
        Err(e) => anyhow::bail!("the VM refused: {}: {}", e.code, e.message),
    }
}

/// The project's tunnel, starting its VM first when it is not running.
async fn running(ssh: &Ssh, project: Uuid) -> anyhow::Result<Tunnel> {
    if let Some(t) = ssh.tunnels.get(project) {
        return Ok(t);
    }
    tracing::info!("starting the VM for an ssh connection");
    let wake = ssh.wake.get().context("the hub is starting")?;
    wake.start(project).await.map_err(|e| anyhow::anyhow!("starting the VM: {e}"))?;
    ssh.tunnels.get(project).context("the VM's tunnel went away")
}
