//! Forwarding a preview request to a port in the VM, through the tunnel.
//!
//! A pooled HTTP/1.1 client whose connector opens `Tcp { port }` tunnel
//! streams: keep-alive connections to the user's server are reused across
//! requests like any reverse proxy's upstream pool. Bodies stream both ways
//! (so Server-Sent Events arrive as sent), and `Upgrade` requests
//! (WebSockets, dev-server hot reload) become a raw byte pipe.

use crate::Hub;
use crate::tunnel::Tunnels;
use aether_protocol::domain::StreamKind;
use aether_protocol::{FrameCodec, pb};
use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use axum::http::{HeaderName, HeaderValue, StatusCode, Uri, header};
use axum::response::Response;
use futures_util::StreamExt;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio_util::codec::FramedRead;
use uuid::Uuid;

/// The pooled client used for every preview.
pub type Client = hyper_util::client::legacy::Client<Connector, Body>;

/// Why a preview could not be forwarded.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("nothing is listening on that port")]
    Refused,
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

/// aetherd found nothing listening on the port.
#[derive(Debug, thiserror::Error)]
#[error("nothing is listening on port {0}")]
struct Refused(u16);

pub fn client(tunnels: Arc<Tunnels>) -> Client {
    hyper_util::client::legacy::Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(64)
        .build(Connector { tunnels })
}

/// Opens tunnel streams for `http://{port}.{project}.tunnel/` URIs.
#[derive(Clone)]
pub struct Connector {
    tunnels: Arc<Tunnels>,
}

fn target(uri: &Uri) -> Option<(u16, Uuid)> {
    let host = uri.host()?;
    let mut parts = host.splitn(3, '.');
    let port = parts.next()?.parse().ok()?;
    let project = parts.next()?.parse().ok()?;
    (parts.next()? == "tunnel").then_some((port, project))
}

impl tower_service::Service<Uri> for Connector {
    type Response = TokioIo<TunnelIo>;
    type Error = Box<dyn std::error::Error + Send + Sync>;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let tunnels = self.tunnels.clone();
        Box::pin(async move {
            let (port, project) = target(&uri).ok_or("not a tunnel address")?;
            let tunnel = tunnels.get(project).ok_or("the project's VM is not connected")?;
            let (send, recv) = tunnel.open(StreamKind::Tcp { port }).await?;
            let mut framed = FramedRead::new(recv, FrameCodec::<pb::Status>::default());
            let status = framed.next().await.ok_or("no answer from the VM")??;
            if status.error.is_some() {
                return Err(Box::new(Refused(port)) as Self::Error);
            }
            let parts = framed.into_parts();
            let recv = std::io::Cursor::new(parts.read_buf.freeze()).chain(parts.io);
            Ok(TokioIo::new(TunnelIo { recv, send }))
        })
    }
}

/// One tunnel stream as a byte connection.
pub struct TunnelIo {
    recv: tokio::io::Chain<std::io::Cursor<bytes::Bytes>, quinn::RecvStream>,
    send: quinn::SendStream,
}

impl Connection for TunnelIo {
    fn connected(&self) -> Connected {
        Connected::new()
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

const HOP_BY_HOP: [&str; 7] =
    ["connection", "keep-alive", "proxy-connection", "proxy-authenticate", "proxy-authorization", "te", "trailer"];

fn is_refused(e: &hyper_util::client::legacy::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(s) = source {
        if s.is::<Refused>() {
            return true;
        }
        source = s.source();
    }
    false
}

/// Sends `req` to `port` in the project's VM and streams the answer back.
pub async fn forward(hub: &Hub, mut req: Request, project: Uuid, port: u16) -> Result<Response, ProxyError> {
    let upgrading = req.headers().contains_key(header::UPGRADE);
    let original_host = req.headers().get(header::HOST).cloned();
    let client_ip = req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
    let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
    *req.uri_mut() = format!("http://{port}.{project}.tunnel{path}").parse().map_err(anyhow::Error::from)?;

    let headers = req.headers_mut();
    if !upgrading {
        for h in HOP_BY_HOP.iter().chain(&["upgrade"]) {
            headers.remove(*h);
        }
    }
    headers.insert(header::HOST, HeaderValue::from_str(&format!("localhost:{port}")).map_err(anyhow::Error::from)?);
    if let Some(h) = original_host {
        headers.insert(HeaderName::from_static("x-forwarded-host"), h);
    }
    let proto = if hub.public_url.starts_with("https://") { "https" } else { "http" };
    headers.insert(HeaderName::from_static("x-forwarded-proto"), HeaderValue::from_static(proto));
    if let Some(ip) = client_ip {
        let prior = headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()).map(str::to_owned);
        let value = prior.map_or(ip.to_string(), |p| format!("{p}, {ip}"));
        if let Ok(v) = HeaderValue::from_str(&value) {
            headers.insert(HeaderName::from_static("x-forwarded-for"), v);
        }
    }

    let downstream = upgrading.then(|| hyper::upgrade::on(&mut req));
    let mut resp = match hub.previews.client.request(req).await {
        Ok(r) => r,
        Err(e) if is_refused(&e) => return Err(ProxyError::Refused),
        Err(e) => return Err(ProxyError::Other(anyhow::Error::new(e).context("forwarding to the VM"))),
    };
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
        for h in HOP_BY_HOP {
            resp.headers_mut().remove(h);
        }
    }
    Ok(resp.map(Body::new))
}
