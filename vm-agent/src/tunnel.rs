//! The tunnel to the hub: dial out over QUIC, say Hello, then serve the
//! streams the hub opens, reconnecting forever with capped, jittered backoff.
//!
//! aetherd only dials out. Everything the hub asks for arrives on streams of
//! this one connection; the first stream (opened by us) is the control
//! stream carrying Hello, Welcome and Heartbeats.

use crate::Services;
use crate::heartbeat::Meter;
use aether_protocol::domain::{Hello, PtyAttach, StreamKind, WireError};
use aether_protocol::fs::FsOp;
use aether_protocol::{ALPN, FrameCodec, pb};
use anyhow::{Context, bail};
use futures_util::{SinkExt, StreamExt};
use prost::Message;
use rand::Rng;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio_util::codec::{Decoder, FramedRead, FramedWrite};
use tokio_util::sync::CancellationToken;

/// Where and how to reach the hub.
pub struct TunnelConfig {
    /// `host:port` of the hub's QUIC endpoint.
    pub hub_addr: String,
    /// Name to verify in the hub's certificate.
    pub server_name: String,
    /// PEM file of the CA that signed the hub's certificate; `None` uses the
    /// public web roots.
    pub ca_file: Option<PathBuf>,
    /// PEM text of that CA (`AETHER_HUB_CA_PEM`), for VMs that are given env
    /// but no files (Fly Machines); trusted with or instead of `ca_file`.
    pub ca_pem: Option<String>,
    pub project_id: String,
    pub machine_token: String,
    /// A UDP socket handed to aetherd already bound (`AETHER_TUNNEL_FD`):
    /// a local VM's network namespace can't reach the hub's loopback, so the
    /// provider gives it a socket of the host's.
    pub socket: Option<std::net::UdpSocket>,
}

impl std::fmt::Debug for TunnelConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TunnelConfig")
            .field("hub_addr", &self.hub_addr)
            .field("server_name", &self.server_name)
            .field("ca_file", &self.ca_file)
            .field("ca_pem", &self.ca_pem.as_ref().map(|_| "<pem>"))
            .field("project_id", &self.project_id)
            .field("machine_token", &"<redacted>")
            .finish()
    }
}

/// Exponential backoff with full jitter, capped.
#[derive(Debug)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    attempt: u32,
}

impl Backoff {
    pub fn new(base: Duration, cap: Duration) -> Self {
        Self { base, cap, attempt: 0 }
    }

    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    /// The next delay: uniform in [ceiling/2, ceiling], ceiling doubling up to the cap.
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = self.base.saturating_mul(1 << self.attempt.min(16)).min(self.cap);
        self.attempt = self.attempt.saturating_add(1);
        let half = ceiling / 2;
        half + rand::rng().random_range(Duration::ZERO..=half)
    }
}

fn client_config(cfg: &TunnelConfig) -> anyhow::Result<quinn::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    match &cfg.ca_file {
        Some(path) => {
            let pem = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
                roots.add(cert.context("parsing hub CA")?).context("adding hub CA")?;
            }
        }
        None if cfg.ca_pem.is_none() => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        None => {}
    }
    if let Some(pem) = &cfg.ca_pem {
        for cert in rustls_pemfile::certs(&mut pem.as_bytes()) {
            roots.add(cert.context("parsing AETHER_HUB_CA_PEM")?).context("adding hub CA")?;
        }
        anyhow::ensure!(!roots.is_empty(), "AETHER_HUB_CA_PEM holds no certificate");
    }
    let mut tls = rustls::ClientConfig::builder_with_provider(Arc::new(aether_transport::crypto_provider()))
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls)?;
    Ok(quinn::ClientConfig::new(Arc::new(crypto)))
}

/// `client` with the transport settings for a tunnel with the hub at `hub`.
fn for_hub(client: &quinn::ClientConfig, hub: SocketAddr) -> quinn::ClientConfig {
    let mut transport = aether_transport::transport_config(hub);
    transport.keep_alive_interval(Some(Duration::from_secs(5)));
    // quinn's default of 100 would let a busy preview's connections block a
    // terminal from opening.
    transport.max_concurrent_bidi_streams(aether_transport::MAX_HUB_STREAMS.into());
    let mut client = client.clone();
    client.transport_config(Arc::new(transport));
    client
}

/// Dials the hub until `shutdown`, serving each connection in turn.
pub async fn run(
    cfg: TunnelConfig,
    services: Arc<Services>,
    meter: Arc<Meter>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let mut cfg = cfg;
    let client = client_config(&cfg)?;
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
    let mut endpoints: Option<(bool, quinn::Endpoint)> = None;
    if let Some(socket) = cfg.socket.take() {
        let v6 = socket.local_addr()?.is_ipv6();
        endpoints = Some((v6, endpoint(socket)?));
    }
    // This process's key: every Hello it sends carries it (`boot_key`).
    let boot_key: [u8; 32] = rand::random();
    loop {
        let attempt = async {
            let addr = tokio::net::lookup_host(&cfg.hub_addr)
                .await
                .with_context(|| format!("resolving {}", cfg.hub_addr))?
                .next()
                .with_context(|| format!("no address for {}", cfg.hub_addr))?;
            let endpoint = match &endpoints {
                Some((v6, ep)) if *v6 == addr.is_ipv6() => ep.clone(),
                _ => {
                    let bind: SocketAddr = if addr.is_ipv6() { "[::]:0".parse()? } else { "0.0.0.0:0".parse()? };
                    let socket = aether_transport::udp_socket(bind).context("binding udp socket")?;
                    let ep = endpoint(socket)?;
                    endpoints = Some((addr.is_ipv6(), ep.clone()));
                    ep
                }
            };
            let conn = endpoint
                .connect_with(for_hub(&client, addr), addr, &cfg.server_name)?
                .await
                .context("connecting to hub")?;
            serve_connection(&cfg, &boot_key, conn, &services, &meter, &mut backoff, &shutdown).await
        };
        tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            r = attempt => if let Err(e) = r {
                tracing::warn!(error = format!("{e:#}"), "tunnel down");
            },
        }
        let delay = backoff.next_delay();
        tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            () = tokio::time::sleep(delay) => {}
        }
    }
}

fn endpoint(socket: std::net::UdpSocket) -> anyhow::Result<quinn::Endpoint> {
    let mut config = quinn::EndpointConfig::default();
    aether_transport::tune_endpoint(&mut config);
    Ok(quinn::Endpoint::new(config, None, socket, Arc::new(aether_transport::TunnelRuntime))?)
}

async fn serve_connection(
    cfg: &TunnelConfig,
    boot_key: &[u8; 32],
    conn: quinn::Connection,
    services: &Arc<Services>,
    meter: &Arc<Meter>,
    backoff: &mut Backoff,
    shutdown: &CancellationToken,
) -> anyhow::Result<()> {
    let (send, recv) = conn.open_bi().await.context("opening control stream")?;
    let mut tx = FramedWrite::new(send, FrameCodec::<pb::AgentMessage>::default());
    let mut rx = FramedRead::new(recv, FrameCodec::<pb::HubMessage>::with_max(1 << 20));
    let hello = Hello {
        project_id: cfg.project_id.clone(),
        machine_token: cfg.machine_token.clone(),
        boot_id: meter.boot_id.clone(),
        agent_version: aether_protocol::VERSION.into(),
        capabilities: vec!["pty".into(), "tcp".into(), "fs".into()],
        home: services.files.home().as_os_str().as_encoded_bytes().to_vec(),
        boot_key: boot_key.to_vec(),
    };
    tx.send(pb::AgentMessage { msg: Some(pb::agent_message::Msg::Hello(hello.into())) }).await?;
    let interval = match rx.next().await {
        Some(Ok(pb::HubMessage { msg: Some(pb::hub_message::Msg::Welcome(w)) })) => {
            Duration::from_millis(u64::from(w.heartbeat_interval_ms).clamp(100, 3_600_000))
        }
        Some(Ok(pb::HubMessage { msg: Some(pb::hub_message::Msg::Reject(r)) })) => {
            bail!("hub refused the tunnel: {}: {}", r.code, r.message)
        }
        Some(Ok(_)) => bail!("unexpected first message from hub"),
        Some(Err(e)) => return Err(e).context("reading welcome"),
        None => bail!("hub closed the control stream: {:?}", conn.close_reason()),
    };
    backoff.reset();
    tracing::info!(remote = %conn.remote_address(), "tunnel up");

    let mut tick = tokio::time::interval(interval);
    let mut port_scan = tokio::time::interval(crate::ports::INTERVAL);
    let mut reported: Option<Vec<pb::ListeningPort>> = None;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => {
                conn.close(0u32.into(), b"shutdown");
                return Ok(());
            }
            _ = tick.tick() => {
                let hb = meter.heartbeat(&services.sessions, services.agents.ssh_connections());
                tx.send(pb::AgentMessage { msg: Some(pb::agent_message::Msg::Heartbeat(hb)) }).await?;
            }
            _ = port_scan.tick() => {
                let scanner = services.ports.clone();
                let ports = tokio::task::spawn_blocking(move || scanner.lock().expect("scanner lock").scan()).await?;
                if reported.as_ref() != Some(&ports) {
                    let msg = pb::agent_message::Msg::PortsChanged(pb::PortsChanged { ports: ports.clone() });
                    tx.send(pb::AgentMessage { msg: Some(msg) }).await?;
                    reported = Some(ports);
                }
            }
            msg = rx.next() => match msg {
                Some(Ok(pb::HubMessage { msg: Some(pb::hub_message::Msg::Drain(_)) })) => {
                    conn.close(0u32.into(), b"drained");
                    bail!("hub asked to drain");
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e).context("control stream"),
                None => bail!("control stream closed: {:?}", conn.close_reason()),
            },
            stream = conn.accept_bi() => {
                let (send, recv) = stream.context("accepting stream")?;
                let services = services.clone();
                tokio::spawn(async move {
                    if let Err(e) = serve_stream(&services, send, recv).await {
                        tracing::debug!(error = format!("{e:#}"), "stream ended with error");
                    }
                });
            }
        }
    }
}

/// Reads one length-delimited message directly from the stream, leaving
/// everything after it unread.
pub async fn read_header<M: Message + Default, R: AsyncRead + Unpin>(recv: &mut R, max: usize) -> anyhow::Result<M> {
    let mut codec = FrameCodec::<M>::with_max(max);
    let mut buf = bytes::BytesMut::new();
    // Only what the frame still needs: the stream's raw bytes follow it.
    loop {
        let need = codec.missing(&buf)?;
        if need == 0 {
            return codec.decode(&mut buf)?.context("a whole frame decodes");
        }
        let have = buf.len();
        buf.resize(have + need, 0);
        recv.read_exact(&mut buf[have..]).await.context("reading a stream's header")?;
    }
}

async fn reply<M: Message, W: AsyncWrite + Unpin>(send: W, msg: M) -> anyhow::Result<()> {
    let mut framed = FramedWrite::new(send, FrameCodec::<M>::default());
    framed.send(msg).await?;
    framed.close().await?;
    Ok(())
}

fn status(err: Option<WireError>) -> pb::Status {
    pb::Status { error: err.map(Into::into) }
}

async fn serve_stream(
    services: &Arc<Services>,
    send: quinn::SendStream,
    mut recv: quinn::RecvStream,
) -> anyhow::Result<()> {
    let open: pb::StreamOpen = read_header(&mut recv, 64 * 1024).await?;
    match StreamKind::try_from(open) {
        Err(e) => reply(send, status(Some(WireError::new("invalid_request", e.to_string())))).await,
        Ok(StreamKind::PtyAttach(req)) => serve_pty(&services.sessions, services.agents.viewer(req), recv, send).await,
        Ok(StreamKind::PtyList) => {
            let list = services.sessions.list().into_iter().map(Into::into).collect();
            reply(send, pb::PtySessions { sessions: list }).await
        }
        Ok(StreamKind::PtyKill(name)) => {
            let err =
                (!services.sessions.kill(&name)).then(|| WireError::new("not_found", format!("no session {name}")));
            reply(send, status(err)).await
        }
        Ok(StreamKind::Tcp { port: 22 }) => crate::agents::serve_ssh(&services.agents, recv, send).await,
        Ok(StreamKind::Tcp { port }) => crate::tcp::serve(port, recv, send).await,
        Ok(StreamKind::Agents) => crate::agents::serve(&services.agents, recv, send).await,
        Ok(StreamKind::Fs(FsOp::Watch { path, exclude })) => {
            crate::watch::serve(&services.files, &path, exclude, recv, send).await
        }
        Ok(StreamKind::Fs(op)) => services.files.serve(op, recv, send).await,
    }
}

async fn serve_pty(
    sessions: &Arc<crate::pty::Sessions>,
    req: PtyAttach,
    recv: quinn::RecvStream,
    send: quinn::SendStream,
) -> anyhow::Result<()> {
    let session = match sessions.get_or_spawn(&req) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "starting session");
            let code = if e.is::<crate::pty::NoSession>() { "not_found" } else { "spawn_failed" };
            let err =
                pb::PtyServer::from(aether_protocol::domain::PtyEvent::Error(WireError::new(code, format!("{e:#}"))));
            return reply(send, err).await;
        }
    };
    crate::viewer::serve(sessions, session, req, recv, send).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_with_jitter_and_stays_capped() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
        let first = b.next_delay();
        assert!(first >= Duration::from_millis(50) && first <= Duration::from_millis(100), "{first:?}");
        let delays: Vec<_> = (0..30).map(|_| b.next_delay()).collect();
        assert!(delays.iter().all(|d| *d <= Duration::from_secs(5)));
        assert!(delays[20..].iter().all(|d| *d >= Duration::from_millis(2500)));
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(100));
    }
}
