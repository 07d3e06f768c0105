//! The QUIC endpoint that VMs dial, and the registry of live tunnels.
//!
//! A tunnel is admitted after its Hello carries a machine token whose SHA-256
//! matches the one stored for the project (compared in constant time). A
//! newer tunnel for the same project replaces the older. The control stream
//! then carries heartbeats and port changes; every other stream is opened
//! by the hub (`open`).
//!
//! This is the data plane's side: it admits tunnels, keeps the registry
//! and the previews' port lists, and reports what happens (`TunnelEvent`:
//! up, down, ports, heartbeats) to an `Observer`, which the control plane
//! implements. It calls nothing of the control plane itself.

pub mod fs;
pub mod pty;
pub mod tcp;

use crate::auth::sha256;
use crate::dataplane::Placer;
use crate::db::Db;
use crate::metrics::Metrics;
use crate::preview::{ListeningPort, Previews};
use aether_protocol::domain::{Hello, StreamKind};
use aether_protocol::{ALPN, FrameCodec, FrameError, pb};
use anyhow::Context;
use chrono::{DateTime, TimeZone, Utc};
use futures_util::{SinkExt, StreamExt};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use subtle::ConstantTimeEq;
use tokio::sync::watch;
use tokio_util::codec::{FramedRead, FramedWrite};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use uuid::Uuid;

/// Largest control-stream frame aetherd may send.
pub const MAX_CONTROL_FRAME: usize = 64 * 1024;

/// Starting buffer size of the streams every tunnel holds open for its whole
/// life (control, agents): their frames are small and rare, and the framing
/// default (8 KiB each way) would be a third of an idle tunnel's memory. The
/// buffers grow when a large frame comes.
pub const QUIET_STREAM_BUFFER: usize = 512;

/// Application close codes of a tunnel connection.
pub mod close {
    pub const UNAUTHORIZED: u32 = 1;
    pub const PROTOCOL: u32 = 2;
    pub const REPLACED: u32 = 3;
    pub const SHUTDOWN: u32 = 4;
    pub const STOPPED: u32 = 5;
}

/// What happens to a project's tunnel, in the order it happens.
#[derive(Debug)]
pub enum TunnelEvent {
    /// Admitted and registered; its VM is up.
    Up { project: Uuid, tunnel: Tunnel },
    /// Gone, and no newer tunnel replaced it (its ports are cleared).
    Down { project: Uuid },
    /// The VM's listening ports changed (the previews know already).
    Ports { project: Uuid },
    /// aetherd's heartbeat.
    Heartbeat { project: Uuid, heartbeat: Heartbeat },
}

/// One heartbeat, as aetherd reported it.
#[derive(Debug, Clone)]
pub struct Heartbeat {
    pub boot_id: String,
    pub seq: u64,
    pub uptime_ms: u64,
    /// The last terminal input or agent session aetherd saw.
    pub last_activity: Option<DateTime<Utc>>,
    pub terminal_sessions: u32,
    pub ssh_sessions: u32,
    /// The VM's one-minute load average, times 100.
    pub load_avg_centi: u32,
}

impl From<pb::Heartbeat> for Heartbeat {
    fn from(hb: pb::Heartbeat) -> Self {
        Self {
            last_activity: (hb.last_activity_unix_ms > 0)
                .then(|| Utc.timestamp_millis_opt(hb.last_activity_unix_ms).single())
                .flatten(),
            boot_id: hb.boot_id,
            seq: hb.seq,
            uptime_ms: hb.uptime_ms,
            terminal_sessions: hb.terminal_sessions,
            ssh_sessions: hb.ssh_sessions,
            load_avg_centi: hb.load_avg_centi,
        }
    }
}

/// Who hears what happens to tunnels: the control plane. Each event is
/// awaited before the tunnel reads on, so a project's events arrive in
/// order; different projects' run concurrently.
#[async_trait::async_trait]
pub trait Observer: Send + Sync {
    async fn on(&self, event: TunnelEvent);
}

/// What the data plane and the jump host ask of the control plane: start a
/// project's stopped VM (as its owner would), and return once its tunnel is
/// up or the start failed.
#[async_trait::async_trait]
pub trait Wake: Send + Sync {
    async fn start(&self, project: Uuid) -> anyhow::Result<()>;
}

/// What the tunnel endpoint needs, and nothing more.
pub struct Endpoint {
    pub tunnels: Arc<Tunnels>,
    pub previews: Arc<Previews>,
    pub db: Db,
    pub metrics: Arc<Metrics>,
    /// How often aetherd heartbeats (told in the Welcome).
    pub heartbeat_interval: Duration,
    /// Identifies this hub process in the `tunnels` table.
    pub instance_id: String,
    pub observer: Arc<dyn Observer>,
}

/// A live tunnel to one project's VM.
#[derive(Clone, Debug)]
pub struct Tunnel {
    pub conn: quinn::Connection,
    pub boot_id: String,
    /// The project home's real path in the VM, as aetherd reported it.
    pub home: Vec<u8>,
    /// Streams previews may hold at once (`Config::preview_streams`).
    pub preview_streams: Arc<tokio::sync::Semaphore>,
    /// The data-plane thread its connection's driver runs on.
    pub shard: usize,
    generation: u64,
    /// When aetherd last said anything on the control stream.
    heard: Arc<Mutex<std::time::Instant>>,
}

impl Tunnel {
    /// Whether aetherd said anything on the control stream within `d`
    /// (heartbeats come every interval): a killed or frozen aetherd's
    /// tunnel lingers until QUIC's idle timeout, but goes silent at once.
    pub fn heard_within(&self, d: Duration) -> bool {
        self.heard.lock().expect("heard lock").elapsed() < d
    }

    /// Opens a stream of the given kind; the header is already written.
    pub async fn open(&self, kind: StreamKind) -> anyhow::Result<(quinn::SendStream, quinn::RecvStream)> {
        let (mut send, recv) = self.conn.open_bi().await.context("opening tunnel stream")?;
        let header = aether_protocol::frame::encode_frame(&pb::StreamOpen::from(kind));
        send.write_all(&header).await.context("writing stream header")?;
        Ok((send, recv))
    }
}

/// All tunnels this hub holds, by project.
#[derive(Default)]
pub struct Tunnels {
    map: Mutex<HashMap<Uuid, Tunnel>>,
    changed: watch::Sender<u64>,
    generation: AtomicU64,
    preview_streams: usize,
}

impl Tunnels {
    /// A registry whose tunnels each let previews hold `preview_streams`
    /// streams at once.
    pub fn new(preview_streams: usize) -> Self {
        Self { preview_streams, ..Self::default() }
    }

    pub fn get(&self, project: Uuid) -> Option<Tunnel> {
        self.map.lock().expect("tunnels lock").get(&project).cloned()
    }

    /// The data-plane thread of the project's tunnel, if it has one.
    pub fn shard_of(&self, project: Uuid) -> Option<usize> {
        self.map.lock().expect("tunnels lock").get(&project).map(|t| t.shard)
    }

    pub fn contains(&self, project: Uuid) -> bool {
        self.map.lock().expect("tunnels lock").contains_key(&project)
    }

    pub fn count(&self) -> usize {
        self.map.lock().expect("tunnels lock").len()
    }

    fn insert(
        &self,
        project: Uuid,
        conn: quinn::Connection,
        boot_id: String,
        home: Vec<u8>,
        shard: usize,
    ) -> (Tunnel, Option<Tunnel>) {
        let generation = self.generation.fetch_add(1, Ordering::Relaxed);
        let home = if home.is_empty() { aether_protocol::fs::NOMINAL_HOME.to_vec() } else { home };
        let preview_streams = Arc::new(tokio::sync::Semaphore::new(self.preview_streams));
        let heard = Arc::new(Mutex::new(std::time::Instant::now()));
        let tunnel = Tunnel { conn, boot_id, home, preview_streams, shard, generation, heard };
        let old = self.map.lock().expect("tunnels lock").insert(project, tunnel.clone());
        self.changed.send_modify(|n| *n += 1);
        (tunnel, old)
    }

    fn remove_if(&self, project: Uuid, generation: u64) -> bool {
        let mut map = self.map.lock().expect("tunnels lock");
        let current = map.get(&project).is_some_and(|t| t.generation == generation);
        if current {
            map.remove(&project);
            drop(map);
            self.changed.send_modify(|n| *n += 1);
        }
        current
    }

    /// Closes a project's tunnel (its VM is being stopped).
    pub fn close(&self, project: Uuid, reason: &str) {
        if let Some(t) = self.get(project) {
            t.conn.close(close::STOPPED.into(), reason.as_bytes());
        }
    }

    /// Waits until the project has a tunnel, or the timeout passes.
    pub async fn wait_for(&self, project: Uuid, timeout: Duration) -> Option<Tunnel> {
        let mut rx = self.changed.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(t) = self.get(project) {
                return Some(t);
            }
            if tokio::time::timeout_at(deadline, rx.changed()).await.is_err() {
                return None;
            }
        }
    }
}

/// The tunnel's TLS and transport settings. Each connection gets its own
/// transport settings for its peer's path ([`serve`]).
pub fn server_config(identity: crate::tls::TlsIdentity) -> anyhow::Result<quinn::ServerConfig> {
    let mut tls = rustls::ServerConfig::builder_with_provider(Arc::new(aether_transport::crypto_provider()))
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_single_cert(identity.cert_chain, identity.key)?;
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(tls)?;
    Ok(quinn::ServerConfig::with_crypto(Arc::new(crypto)))
}

/// Transport settings for a tunnel with `peer`.
fn transport(peer: SocketAddr) -> quinn::TransportConfig {
    let mut transport = aether_transport::transport_config(peer);
    // aetherd opens only the control stream; everything else is ours.
    transport.max_concurrent_bidi_streams(4u32.into());
    transport.max_concurrent_uni_streams(0u32.into());
    transport
}

/// `server` with the transport settings for a tunnel with `peer`.
fn for_peer(server: &quinn::ServerConfig, peer: SocketAddr) -> quinn::ServerConfig {
    let mut server = server.clone();
    server.transport_config(Arc::new(transport(peer)));
    server
}

/// Builds the hub's QUIC endpoint on `addr`.
pub fn endpoint(
    addr: SocketAddr,
    server: &quinn::ServerConfig,
    reset_key: &[u8],
    runtime: Arc<dyn quinn::Runtime>,
) -> anyhow::Result<quinn::Endpoint> {
    // The stateless-reset key survives a restart, so a restarted hub can
    // reset its old tunnels at once instead of letting them time out.
    let reset = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, reset_key);
    let mut config = quinn::EndpointConfig::new(Arc::new(reset));
    config.cid_generator(|| Box::new(RandomCids));
    aether_transport::tune_endpoint(&mut config);
    let socket = aether_transport::udp_socket(addr).with_context(|| format!("binding tunnel port {addr}"))?;
    // Connections are accepted with settings for their peer; these are for
    // one that listens where we do.
    Ok(quinn::Endpoint::new(config, Some(for_peer(server, addr)), socket, runtime)?)
}

/// Random 8-byte connection ids that any hub process accepts as its own
/// (quinn's default ties them to a per-process key), so that a restarted hub
/// answers a dead tunnel's packets with a stateless reset.
struct RandomCids;

impl quinn::ConnectionIdGenerator for RandomCids {
    fn generate_cid(&mut self) -> quinn::ConnectionId {
        let mut id = [0u8; 8];
        rand::RngCore::fill_bytes(&mut rand::rng(), &mut id);
        quinn::ConnectionId::new(&id)
    }

    fn cid_len(&self) -> usize {
        8
    }

    fn cid_lifetime(&self) -> Option<Duration> {
        None
    }
}

/// Accepts tunnels until `shutdown`, each with `server`'s settings and
/// transport settings for its peer's path.
pub async fn serve(
    endpoint: quinn::Endpoint,
    server: quinn::ServerConfig,
    hub: Arc<Endpoint>,
    placer: Arc<Placer>,
    shutdown: CancellationToken,
) {
    loop {
        let incoming = tokio::select! {
            () = shutdown.cancelled() => break,
            i = endpoint.accept() => match i { Some(i) => i, None => break },
        };
        let remote = incoming.remote_address();
        // quinn spawns the connection's driver inside `accept`, on the
        // data-plane thread chosen just before.
        let shard = placer.place_next();
        let connecting = match incoming.accept_with(Arc::new(for_peer(&server, remote))) {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!(%remote, error = %e, "tunnel refused");
                continue;
            }
        };
        let hub = hub.clone();
        tokio::spawn(async move {
            match connecting.await {
                Ok(conn) => {
                    if let Err(e) = handle(hub, conn, shard).await {
                        tracing::info!(%remote, error = format!("{e:#}"), "tunnel ended");
                    }
                }
                Err(e) => tracing::debug!(%remote, error = %e, "tunnel handshake failed"),
            }
        });
    }
    endpoint.close(close::SHUTDOWN.into(), b"hub shutting down");
}

/// The project a Hello is admitted for, or why it is refused.
async fn authenticate(hub: &Endpoint, hello: &Hello) -> anyhow::Result<Result<Uuid, &'static str>> {
    const UNKNOWN: &str = "unknown project or wrong machine token";
    let Ok(project) = hello.project_id.parse::<Uuid>() else {
        return Ok(Err(UNKNOWN));
    };
    let Some(stored) = hub.db.machine_token_hash(project).await? else {
        return Ok(Err(UNKNOWN));
    };
    let presented = sha256(hello.machine_token.as_bytes());
    if !bool::from(stored.ct_eq(&presented)) {
        return Ok(Err(UNKNOWN));
    }
    // The token is right; the key decides which aetherd it belongs to. A
    // restarted aetherd (a new key) takes the token over once the old one's
    // tunnel is gone or silent; while it is connected and heartbeating,
    // another key is an impostor.
    let silent_after = hub.heartbeat_interval * 3;
    let live = hub.tunnels.get(project).is_some_and(|t| t.heard_within(silent_after));
    if hub.db.bind_tunnel_key(project, &sha256(&hello.boot_key), !live).await? {
        return Ok(Ok(project));
    }
    hub.metrics.tunnels_impostor.fetch_add(1, Ordering::Relaxed);
    tracing::warn!(%project, boot = %hello.boot_id, "refused a second aetherd presenting this project's machine token");
    Ok(Err("another aetherd holds this machine token"))
}

async fn handle(hub: Arc<Endpoint>, conn: quinn::Connection, shard: usize) -> anyhow::Result<()> {
    let (send, recv) =
        tokio::time::timeout(Duration::from_secs(10), conn.accept_bi()).await.context("no control stream")??;
    let mut rx = FramedRead::with_capacity(
        recv,
        FrameCodec::<pb::AgentMessage>::with_max(MAX_CONTROL_FRAME),
        QUIET_STREAM_BUFFER,
    );
    let mut tx = FramedWrite::with_capacity(send, FrameCodec::<pb::HubMessage>::default(), QUIET_STREAM_BUFFER);
    let first = tokio::time::timeout(Duration::from_secs(10), rx.next()).await.context("no hello")?;
    let hello = match first {
        Some(Ok(pb::AgentMessage { msg: Some(pb::agent_message::Msg::Hello(h)) })) => Hello::try_from(h),
        Some(Err(e)) => return Err(protocol_error(&conn, e)),
        _ => Err(aether_protocol::domain::Invalid("expected hello".into())),
    };
    let hello = match hello {
        Ok(h) => h,
        Err(e) => {
            conn.close(close::PROTOCOL.into(), b"bad hello");
            return Err(e.into());
        }
    };
    let project = match authenticate(&hub, &hello).await? {
        Ok(project) => project,
        Err(why) => {
            hub.metrics.tunnels_rejected.fetch_add(1, Ordering::Relaxed);
            let reject = pb::Reject { code: "unauthorized".into(), message: why.into() };
            let _ = tx.send(pb::HubMessage { msg: Some(pb::hub_message::Msg::Reject(reject)) }).await;
            // Let aetherd read why before the connection goes.
            let _ = tx.close().await;
            let _ = tokio::time::timeout(Duration::from_secs(2), conn.closed()).await;
            conn.close(close::UNAUTHORIZED.into(), b"unauthorized");
            anyhow::bail!("rejected tunnel for {:?}: {why}", hello.project_id);
        }
    };
    let span = tracing::info_span!("tunnel", %project, boot = %hello.boot_id);
    serve_admitted(hub, conn, shard, project, hello, tx, rx).instrument(span).await
}

/// Serves an admitted tunnel's control stream until it ends.
#[allow(clippy::too_many_arguments)]
async fn serve_admitted(
    hub: Arc<Endpoint>,
    conn: quinn::Connection,
    shard: usize,
    project: Uuid,
    hello: Hello,
    mut tx: FramedWrite<quinn::SendStream, FrameCodec<pb::HubMessage>>,
    mut rx: FramedRead<quinn::RecvStream, FrameCodec<pb::AgentMessage>>,
) -> anyhow::Result<()> {
    let (tunnel, old) = hub.tunnels.insert(project, conn.clone(), hello.boot_id.clone(), hello.home.clone(), shard);
    if let Some(old) = old {
        old.conn.close(close::REPLACED.into(), b"replaced by a newer tunnel");
    }
    let welcome = pb::Welcome { heartbeat_interval_ms: hub.heartbeat_interval.as_millis() as u32 };
    tx.send(pb::HubMessage { msg: Some(pb::hub_message::Msg::Welcome(welcome)) }).await?;
    hub.db.tunnel_connected(project, &hub.instance_id, &hello.boot_id).await?;
    tracing::info!(remote = %conn.remote_address(), version = %hello.agent_version, "tunnel up");
    hub.observer.on(TunnelEvent::Up { project, tunnel: tunnel.clone() }).await;

    let result = loop {
        tokio::select! {
            msg = rx.next() => {
                *tunnel.heard.lock().expect("heard lock") = std::time::Instant::now();
                match msg {
                    Some(Ok(pb::AgentMessage { msg: Some(pb::agent_message::Msg::Heartbeat(hb)) })) => {
                        hub.metrics.heartbeats.fetch_add(1, Ordering::Relaxed);
                        hub.observer.on(TunnelEvent::Heartbeat { project, heartbeat: Heartbeat::from(hb) }).await;
                    }
                    Some(Ok(pb::AgentMessage { msg: Some(pb::agent_message::Msg::PortsChanged(p)) })) => {
                        hub.previews.set_ports(project, listening(p));
                        hub.observer.on(TunnelEvent::Ports { project }).await;
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => break Err(protocol_error(&conn, e)),
                    None => break Ok(()),
                }
            }
            _ = conn.closed() => break Ok(()),
        }
    };
    if hub.tunnels.remove_if(project, tunnel.generation) {
        tracing::info!(reason = ?conn.close_reason(), "tunnel down");
        if let Err(e) = hub.db.tunnel_disconnected(project, &hub.instance_id).await {
            tracing::warn!(error = %e, "recording tunnel down");
        }
        hub.previews.clear_ports(project);
        hub.observer.on(TunnelEvent::Down { project }).await;
    }
    result
}

fn protocol_error(conn: &quinn::Connection, e: FrameError) -> anyhow::Error {
    let reason = match &e {
        FrameError::TooLarge { .. } => "frame too large",
        _ => "malformed frame",
    };
    conn.close(close::PROTOCOL.into(), reason.as_bytes());
    anyhow::Error::new(e).context("control stream")
}

/// The ports aetherd reported, bounded: at most 1,024, with short names.
fn listening(p: pb::PortsChanged) -> Vec<ListeningPort> {
    p.ports
        .into_iter()
        .take(1024)
        .filter_map(|l| {
            let port = u16::try_from(l.port).ok().filter(|p| *p > 0)?;
            let (mut address, mut process) = (l.address, l.process);
            address.truncate(64);
            process.truncate(64);
            Some(ListeningPort { port, address, process })
        })
        .collect()
}
