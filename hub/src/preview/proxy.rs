//! Forwarding a preview request to a port in the VM, through the tunnel.
//!
//! Each client connection has its own upstreams: keep-alive HTTP/1.1
//! connections over `Tcp { port }` tunnel streams, opened by a preview
//! request and reused by the next ones to the same project and port (a few
//! per client connection, since a proxy in front of the hub may carry
//! several users' requests for several previews on one connection). Their
//! drivers run in the client connection's own task (see `http`), so a
//! request and its answer cross no task or thread boundary in the hub and
//! take no lock of a shared pool. An upstream unused for `UPSTREAM_IDLE` is
//! let go, and with it its tunnel stream. Bodies stream both ways (so
//! Server-Sent Events arrive as sent), and `Upgrade` requests (WebSockets,
//! dev-server hot reload) get an upstream of their own that becomes a raw
//! byte pipe. Which headers go either way, and how they change, is
//! `policy`'s decision; hyper frames.

use super::PreviewHub;
use super::policy;
use crate::tunnel::Tunnels;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::sync::mpsc;
use uuid::Uuid;

/// Why a preview could not be forwarded.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("nothing is listening on that port")]
    Refused,
    #[error("too many connections to this project's previews")]
    Busy,
    /// The client's request body could not be read (broken chunked
    /// framing, say): the client's fault, not the app's.
    #[error("{0}")]
    ClientBody(String),
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

/// A failure of the client's request body, told apart from the app's
/// failures when forwarding fails.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct ClientBodyError(axum::Error);

/// The client's request body on its way to the app, its errors marked as
/// the client's (`ClientBodyError`).
struct ClientBody(Body);

impl hyper::body::Body for ClientBody {
    type Data = bytes::Bytes;
    type Error = ClientBodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<bytes::Bytes>, ClientBodyError>>> {
        Pin::new(&mut self.0).poll_frame(cx).map_err(ClientBodyError)
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.0.size_hint()
    }
}

/// Why sending to the app failed: the client's body, or anything else.
fn send_failed(e: hyper::Error) -> ProxyError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
    while let Some(s) = source {
        if let Some(body) = s.downcast_ref::<ClientBodyError>() {
            return ProxyError::ClientBody(body.0.to_string());
        }
        source = s.source();
    }
    anyhow::Error::new(e).context("forwarding to the VM").into()
}

/// A future that drives an upstream connection.
pub type Driver = Pin<Box<dyn Future<Output = ()> + Send>>;

/// How many upstreams one client connection keeps between requests.
const KEPT: usize = 4;
/// An upstream unused this long is let go: idle client connections must not
/// hold a project's preview streams (`Config::preview_streams`). Node's
/// servers close idle keep-alive connections after 5 s too.
pub const UPSTREAM_IDLE: Duration = Duration::from_secs(5);

/// The upstreams of one client connection (a request extension).
pub struct Upstream {
    idle: Mutex<Vec<Kept>>,
    /// Told when an upstream is kept, so the connection's task can time it.
    kept: tokio::sync::Notify,
    drivers: mpsc::UnboundedSender<Driver>,
}

/// A keep-alive upstream connection, the port it reaches, its last use.
struct Kept {
    project: Uuid,
    port: u16,
    sender: http1::SendRequest<Body>,
    used: Instant,
}

impl Upstream {
    /// A client connection's upstream; the connection's task must drive what
    /// arrives on the returned receiver.
    pub fn new() -> (Arc<Self>, mpsc::UnboundedReceiver<Driver>) {
        let (drivers, rx) = mpsc::unbounded_channel();
        (Arc::new(Self { idle: Mutex::new(Vec::new()), kept: tokio::sync::Notify::new(), drivers }), rx)
    }

    fn take(&self, project: Uuid, port: u16) -> Option<Kept> {
        let mut idle = self.idle.lock().expect("upstream lock");
        let i = idle.iter().position(|k| k.project == project && k.port == port)?;
        Some(idle.remove(i))
    }

    fn keep(&self, project: Uuid, port: u16, sender: http1::SendRequest<Body>) {
        let mut idle = self.idle.lock().expect("upstream lock");
        idle.push(Kept { project, port, sender, used: Instant::now() });
        if idle.len() > KEPT {
            idle.remove(0);
        }
        self.kept.notify_one();
    }

    /// Returns once an upstream has been kept since the last call.
    pub async fn kept(&self) {
        self.kept.notified().await;
    }

    /// Lets go of upstreams unused for `UPSTREAM_IDLE` (an answer still
    /// streaming finishes first); returns when the next one is due.
    pub fn expire(&self, now: Instant) -> Option<Instant> {
        let mut idle = self.idle.lock().expect("upstream lock");
        idle.retain(|k| now.saturating_duration_since(k.used) < UPSTREAM_IDLE);
        idle.iter().map(|k| k.used + UPSTREAM_IDLE).min()
    }

    /// Keeps an idle stream to the app, opened elsewhere (the express lane),
    /// as an upstream of this connection.
    pub async fn adopt(&self, project: Uuid, port: u16, stream: Stream) -> anyhow::Result<()> {
        let (sender, conn) = http1::handshake(TokioIo::new(TunnelIo::from(stream))).await?;
        self.drivers
            .send(Box::pin(async move {
                let _ = conn.await;
            }))
            .map_err(|_| anyhow::anyhow!("the client connection is closing"))?;
        self.keep(project, port, sender);
        Ok(())
    }

    async fn send(
        &self,
        tunnels: &Tunnels,
        project: Uuid,
        port: u16,
        mut req: Request,
        upgrade: bool,
    ) -> Result<hyper::Response<hyper::body::Incoming>, ProxyError> {
        let kept = if upgrade { None } else { self.take(project, port) };
        // Ready once the previous answer's body has been read; an error
        // means the app closed the connection.
        if let Some(mut kept) = kept
            && kept.sender.ready().await.is_ok()
        {
            match kept.sender.try_send_request(req).await {
                Ok(resp) => {
                    self.keep(project, port, kept.sender);
                    return Ok(resp);
                }
                // Closed under us before the request went out: retry on a
                // new connection.
                Err(mut e) => match e.take_message() {
                    Some(unsent) => req = unsent,
                    None => return Err(send_failed(e.into_error())),
                },
            }
        }
        let io = connect(tunnels, project, port).await?;
        let (mut sender, conn) = http1::handshake(io).await.map_err(|e| anyhow::Error::new(e).context("to the VM"))?;
        if upgrade {
            tokio::spawn(async move {
                let _ = conn.with_upgrades().await;
            });
        } else if self
            .drivers
            .send(Box::pin(async move {
                let _ = conn.await;
            }))
            .is_err()
        {
            return Err(anyhow::anyhow!("the client connection is closing").into());
        }
        let resp = sender.send_request(req).await.map_err(send_failed)?;
        if !upgrade {
            self.keep(project, port, sender);
        }
        Ok(resp)
    }
}

/// An open `Tcp { port }` stream to a port in the VM, counted against the
/// project's preview streams while it lives.
pub struct Stream {
    pub send: quinn::SendStream,
    pub recv: quinn::RecvStream,
    /// The app's first bytes, if they came with aetherd's answer.
    pub early: bytes::Bytes,
    permit: tokio::sync::OwnedSemaphorePermit,
}

/// Opens a `Tcp { port }` stream and waits for aetherd's answer.
pub async fn open(tunnels: &Tunnels, project: Uuid, port: u16) -> Result<Stream, ProxyError> {
    let tunnel = tunnels.get(project).ok_or_else(|| anyhow::anyhow!("the project's VM is not connected"))?;
    let permit = tunnel.preview_streams.clone().try_acquire_owned().map_err(|_| ProxyError::Busy)?;
    match tunnel.tcp(port).await? {
        Ok(t) => Ok(Stream { send: t.send, recv: t.recv, early: t.early, permit }),
        Err(_) => Err(ProxyError::Refused),
    }
}

async fn connect(tunnels: &Tunnels, project: Uuid, port: u16) -> Result<TokioIo<TunnelIo>, ProxyError> {
    Ok(TokioIo::new(TunnelIo::from(open(tunnels, project, port).await?)))
}

/// One tunnel stream as a byte connection.
pub struct TunnelIo {
    recv: tokio::io::Chain<std::io::Cursor<bytes::Bytes>, quinn::RecvStream>,
    send: quinn::SendStream,
    _permit: tokio::sync::OwnedSemaphorePermit,
}

impl From<Stream> for TunnelIo {
    fn from(s: Stream) -> Self {
        Self { recv: std::io::Cursor::new(s.early).chain(s.recv), send: s.send, _permit: s.permit }
    }
}

impl AsyncRead for TunnelIo {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.recv).poll_read(cx, buf)
    }
}

impl AsyncWrite for TunnelIo {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        AsyncWrite::poll_write(Pin::new(&mut self.send), cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        AsyncWrite::poll_flush(Pin::new(&mut self.send), cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        AsyncWrite::poll_shutdown(Pin::new(&mut self.send), cx)
    }
}

/// Sends `req` to `port` in the project's VM and streams the answer back.
pub async fn forward(hub: &PreviewHub, mut req: Request, project: Uuid, port: u16) -> Result<Response, ProxyError> {
    let upgrading = req.headers().contains_key(header::UPGRADE);
    let preview_host = req.headers().get(header::HOST).cloned();
    let client_ip = req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
    if req.uri().authority().is_some() {
        let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
        *req.uri_mut() = path.parse().map_err(anyhow::Error::from)?;
    }

    let proto = if hub.public_url.starts_with("https://") { "https" } else { "http" };
    let client = client_ip.map(|ip| ip.to_string());
    let aether_token = |t: &str| hub.tokens.verify(t).is_some();
    *req.headers_mut() =
        policy::request_headers(req.headers(), port, proto, client.as_deref(), upgrading, aether_token);

    let upstream = req
        .extensions_mut()
        .remove::<Arc<Upstream>>()
        .ok_or_else(|| anyhow::anyhow!("a preview request outside a client connection"))?;
    // A body the client may yet get wrong is marked as the client's.
    let mut req =
        if hyper::body::Body::is_end_stream(req.body()) { req } else { req.map(|body| Body::new(ClientBody(body))) };
    let downstream = upgrading.then(|| hyper::upgrade::on(&mut req));
    let mut resp = upstream.send(&hub.tunnels, project, port, req, upgrading).await?;
    if resp.status() == StatusCode::SWITCHING_PROTOCOLS
        && let Some(downstream) = downstream
    {
        let upstream = hyper::upgrade::on(&mut resp);
        tokio::spawn(async move {
            match tokio::try_join!(downstream, upstream) {
                Ok((down, up)) => {
                    let _ = tokio::io::copy_bidirectional(&mut TokioIo::new(down), &mut TokioIo::new(up)).await;
                }
                Err(e) => tracing::debug!(error = %e, "preview upgrade failed"),
            }
        });
    } else {
        let host = preview_host.as_ref().map_or(&b""[..], HeaderValue::as_bytes);
        policy::answer_headers(resp.headers_mut(), &policy::Seen { port, proto, host });
    }
    Ok(resp.map(Body::new))
}
