//! The HTTP listener. The connection's first request head is read here and
//! says where the connection goes, with the bytes read handed on unchanged
//! (the lane that serves it parses that head again; later heads are parsed
//! once): a preview host to the data plane's express lane (then hyper for
//! what it leaves); a WebSocket upgrade to the API (terminals, the files
//! watch, agent activity) straight to hyper and the API router, but on the
//! data plane, so a terminal keystroke goes from its WebSocket to quinn's
//! driver and back without a cross-thread wake-up; anything else straight to
//! hyper and the API router on the main runtime. Only requests for a preview
//! host reach the express lane or the preview handler.
//!
//! A later request on the same connection may name another host; it is
//! routed like any request, just from the thread the connection lives on.
//! A request with more than one Host is routed by neither: it gets a 400
//! (RFC 9112 §3.2) and the connection closes.

use crate::dataplane::Placer;
use crate::preview::PreviewHub;
use crate::preview::proxy::{UPSTREAM_IDLE, Upstream};
use crate::preview::{Previews, express};
use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::header;
use bytes::{Buf, Bytes, BytesMut};
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower_service::Service;
use uuid::Uuid;

/// A first request head longer than this is not looked at here (the server
/// answers it as it would any over-long head).
const MAX_SNIFF: usize = express::MAX_HEAD;
/// A connection that sends no complete request head for this long is closed.
const FIRST_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// A keep-alive connection idle this long between requests is closed (and
/// with it the preview upstream it holds).
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// At shutdown, how long requests in flight get to finish.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Accepts connections until `shutdown`, then lets requests in flight finish.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    hub: Arc<PreviewHub>,
    plane: Arc<Placer>,
    shutdown: CancellationToken,
) {
    let connections = TaskTracker::new();
    loop {
        let (tcp, remote) = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(c) => c,
                Err(e) => {
                    // Out of file descriptors and the like: back off rather
                    // than spin on a listener that can't accept.
                    tracing::warn!(error = %e, "accepting an HTTP connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let _ = tcp.set_nodelay(true);
        let conn = Conn { app: app.clone(), hub: hub.clone(), remote, shutdown: shutdown.clone() };
        connections.spawn(route(tcp, conn, plane.clone(), connections.clone()));
    }
    connections.close();
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, connections.wait()).await;
}

struct Conn {
    app: Router,
    hub: Arc<PreviewHub>,
    remote: SocketAddr,
    shutdown: CancellationToken,
}

/// What a connection's first request head says about it.
#[derive(Debug, PartialEq)]
enum FirstRequest {
    /// The client went away (or never sent a request).
    Gone,
    /// A preview host: the data plane, on the project's tunnel's thread.
    Preview(Uuid),
    /// A WebSocket to the API: the data plane, with the project it names if
    /// it names one, served by the API router.
    WebSocket(Option<Uuid>),
    /// The API or the web app, on the main runtime.
    Other,
}

async fn route(mut tcp: TcpStream, conn: Conn, plane: Arc<Placer>, tasks: TaskTracker) {
    let mut head = BytesMut::with_capacity(2048);
    let first = tokio::select! {
        () = conn.shutdown.cancelled() => FirstRequest::Gone,
        r = tokio::time::timeout(FIRST_REQUEST_TIMEOUT, first_request(&mut tcp, &mut head, &conn.hub.previews)) => {
            r.unwrap_or(FirstRequest::Gone)
        }
    };
    match first {
        FirstRequest::Gone => {}
        FirstRequest::Other => {
            serve_connection(Prefixed::new(head.freeze(), tcp, conn.hub.send_timeout), conn, Vec::new()).await
        }
        FirstRequest::Preview(project) => {
            let express = conn.hub.express;
            to_data_plane(tcp, Some(project), head, conn, &plane, &tasks, express)
        }
        FirstRequest::WebSocket(project) => to_data_plane(tcp, project, head, conn, &plane, &tasks, false),
    }
}

/// Moves a connection to the project's tunnel's thread (any, if it has none
/// yet), to the express lane first if it is a preview's (`express`).
fn to_data_plane(
    tcp: TcpStream,
    project: Option<Uuid>,
    head: BytesMut,
    conn: Conn,
    plane: &Placer,
    tasks: &TaskTracker,
    express: bool,
) {
    let std = match tcp.into_std() {
        Ok(std) => std,
        Err(e) => return tracing::debug!(error = %e, "moving a connection to the data plane"),
    };
    let shard = project.and_then(|p| conn.hub.tunnels.shard_of(p)).unwrap_or(0);
    tasks.spawn_on(
        async move {
            let tcp = match TcpStream::from_std(std) {
                Ok(tcp) => tcp,
                Err(e) => return tracing::debug!(error = %e, "moving a connection to the data plane"),
            };
            if express {
                serve_preview(tcp, head, conn).await;
            } else {
                let io = Prefixed::new(head.freeze(), tcp, conn.hub.send_timeout);
                serve_connection(io, conn, Vec::new()).await;
            }
        },
        plane.handle(shard),
    );
}

/// Reads until the first request head is complete and says where it goes.
async fn first_request(tcp: &mut TcpStream, head: &mut BytesMut, previews: &Previews) -> FirstRequest {
    loop {
        match tcp.read_buf(head).await {
            Ok(0) if head.is_empty() => return FirstRequest::Gone,
            Ok(0) => return FirstRequest::Other,
            Ok(_) => {}
            Err(_) => return FirstRequest::Gone,
        }
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(head) {
            Ok(httparse::Status::Complete(_)) => {
                let header = |name: &str| {
                    req.headers
                        .iter()
                        .find(|h| h.name.eq_ignore_ascii_case(name))
                        .and_then(|h| std::str::from_utf8(h.value).ok())
                };
                // Two Hosts name no host: the server refuses the request.
                if req.headers.iter().filter(|h| h.name.eq_ignore_ascii_case("host")).nth(1).is_some() {
                    return FirstRequest::Other;
                }
                if let Some((_, project)) = header("host").and_then(|h| previews.parse_host(h)) {
                    return FirstRequest::Preview(project);
                }
                if header("upgrade").is_some_and(|u| u.eq_ignore_ascii_case("websocket")) {
                    return FirstRequest::WebSocket(req.path.and_then(api_project));
                }
                return FirstRequest::Other;
            }
            Ok(httparse::Status::Partial) if head.len() < MAX_SNIFF => {}
            // Too long or malformed: the server gives the client its error.
            _ => return FirstRequest::Other,
        }
    }
}

/// The project an API path names (`/api/projects/{id}/…`).
fn api_project(path: &str) -> Option<Uuid> {
    let rest = path.strip_prefix("/api/projects/")?;
    rest.split(['/', '?']).next()?.parse().ok()
}

/// Serves a preview's connection: plain requests on the express lane for as
/// long as they come, then the rest like any connection.
async fn serve_preview(mut tcp: TcpStream, mut buf: BytesMut, conn: Conn) {
    match express::serve(&conn.hub, conn.remote, &mut tcp, &mut buf, &conn.shutdown, IDLE_TIMEOUT).await {
        express::Next::General(kept) => {
            let io = Prefixed::new(buf.freeze(), tcp, conn.hub.send_timeout);
            serve_connection(io, conn, kept).await
        }
        // Dropped, it closes with a lingering close.
        express::Next::Close => drop(Prefixed::new(Bytes::new(), tcp, Duration::ZERO)),
    }
}

/// Serves a connection with hyper, taking over the express lane's idle
/// upstreams (`kept`) if it had any.
async fn serve_connection(io: Prefixed, conn: Conn, kept: Vec<express::Kept>) {
    let Conn { app, hub, remote, shutdown } = conn;
    // Previews' upstream connections are driven here, in this task.
    let (upstream, mut new_drivers) = Upstream::new();
    let upstreams = upstream.clone();
    for k in kept {
        if let Err(e) = upstream.adopt(k.project, k.port, k.stream).await {
            tracing::debug!(error = %e, "taking over a preview upstream");
        }
    }
    let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
        let mut req = req.map(Body::new);
        req.extensions_mut().insert(ConnectInfo(remote));
        let hosts = req.headers().get_all(header::HOST).iter().count();
        let host = req.headers().get(header::HOST).and_then(|h| h.to_str().ok());
        let preview = host.and_then(|h| hub.previews.parse_host(h));
        let (hub, mut app, upstream) = (hub.clone(), app.clone(), upstream.clone());
        async move {
            if hosts > 1 {
                return Ok(two_hosts());
            }
            // Preview traffic is the user's app's, not the API's: none of the
            // API's layers apply to it.
            Ok::<_, Infallible>(match preview {
                Some((port, project)) => {
                    req.extensions_mut().insert(upstream);
                    crate::preview::handle(hub, req, port, project).await
                }
                None => match app.call(req).await {
                    Ok(resp) => resp,
                    Err(never) => match never {},
                },
            })
        }
    });
    // hyper's header timeout runs from the moment it waits for a request
    // head, so it is also the keep-alive idle timeout.
    let served = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(IDLE_TIMEOUT)
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    let mut served = std::pin::pin!(served);
    let mut drivers = FuturesUnordered::new();
    let mut closing = false;
    let expiry = tokio::time::sleep(UPSTREAM_IDLE);
    let mut expiry = std::pin::pin!(expiry);
    let mut armed = false;
    loop {
        if !armed && let Some(due) = upstreams.expire(std::time::Instant::now()) {
            expiry.as_mut().reset(due.into());
            armed = true;
        }
        tokio::select! {
            biased;
            r = served.as_mut() => {
                if let Err(e) = r {
                    tracing::trace!(error = %e, "HTTP connection ended");
                }
                return;
            }
            Some(driver) = new_drivers.recv() => drivers.push(driver),
            Some(()) = drivers.next(), if !drivers.is_empty() => {}
            () = upstreams.kept(), if !armed => {}
            () = &mut expiry, if armed => armed = false,
            () = shutdown.cancelled(), if !closing => {
                closing = true;
                served.as_mut().graceful_shutdown();
            }
        }
    }
}

/// The answer to a request with more than one Host (RFC 9112 §3.2): which
/// one it is for is ambiguous, and a proxy in front may have read the other
/// one, so it reaches neither a preview nor the API, and the connection
/// closes after it.
fn two_hosts() -> axum::response::Response {
    use axum::response::IntoResponse;
    let err = crate::error::ApiError::bad_request("a request must carry exactly one Host header");
    let mut resp = err.into_response();
    resp.headers_mut().insert(header::CONNECTION, header::HeaderValue::from_static("close"));
    resp
}

/// A connection whose first bytes were already read. A write the client
/// accepts nothing of for `send_timeout` fails. Dropped, it closes with a
/// lingering close (`linger`).
struct Prefixed {
    head: Bytes,
    /// Always there until the drop.
    tcp: Option<TcpStream>,
    send_timeout: Duration,
    /// Set while a write waits for the client to take bytes.
    stalled: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl Prefixed {
    fn new(head: Bytes, tcp: TcpStream, send_timeout: Duration) -> Self {
        Self { head, tcp: Some(tcp), send_timeout, stalled: None }
    }

    /// `written` as it is, but an error once writes have waited for
    /// `send_timeout` without the client taking a byte.
    fn progress<T>(&mut self, cx: &mut Context<'_>, written: Poll<std::io::Result<T>>) -> Poll<std::io::Result<T>> {
        if written.is_ready() {
            self.stalled = None;
            return written;
        }
        let timeout = self.send_timeout;
        let stalled = self.stalled.get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        match stalled.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(send_timed_out())),
            Poll::Pending => Poll::Pending,
        }
    }

    fn tcp(&mut self) -> Pin<&mut TcpStream> {
        Pin::new(self.tcp.as_mut().expect("open until dropped"))
    }
}

impl Drop for Prefixed {
    fn drop(&mut self) {
        if let (Some(tcp), Ok(runtime)) = (self.tcp.take(), tokio::runtime::Handle::try_current()) {
            runtime.spawn(linger(tcp));
        }
    }
}

/// A write that the client took none of for the hub's send timeout (here
/// and on the express lane).
pub(crate) fn send_timed_out() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::TimedOut, "the client took none of the response for the send timeout")
}

/// How long, and how much, a closing connection is read and discarded.
const LINGER: Duration = Duration::from_secs(2);
const LINGER_BYTES: usize = 64 << 20;

/// Closes like nginx's lingering close: stop sending, then read and discard
/// what the client still sends for a while. A response sent before its
/// request was read (a 413 for an upload over the limit) then reaches the
/// client, instead of being cut off by the reset that closing a socket with
/// unread bytes sends.
async fn linger(mut tcp: TcpStream) {
    use tokio::io::AsyncWriteExt;
    let _ = tcp.shutdown().await;
    let mut buf = [0u8; 8192];
    let mut read = 0;
    let _ = tokio::time::timeout(LINGER, async {
        while read < LINGER_BYTES {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => read += n,
            }
        }
    })
    .await;
}

impl AsyncRead for Prefixed {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        if self.head.has_remaining() {
            let n = self.head.len().min(buf.remaining());
            buf.put_slice(&self.head[..n]);
            self.head.advance(n);
            return Poll::Ready(Ok(()));
        }
        self.tcp().poll_read(cx, buf)
    }
}

impl AsyncWrite for Prefixed {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        let written = self.tcp().poll_write(cx, buf);
        self.progress(cx, written)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let written = self.tcp().poll_write_vectored(cx, bufs);
        self.progress(cx, written)
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.as_ref().is_some_and(TcpStream::is_write_vectored)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.tcp().poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.tcp().poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    /// Sends `parts` (one write each) on a fresh connection; returns what
    /// the first request says and every byte the server side then reads.
    async fn sniff(parts: &[&[u8]]) -> (FirstRequest, Vec<u8>) {
        let previews = Previews::new("preview.localhost".into(), "http://127.0.0.1:8080", b"k");
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        let (mut server, _) = listener.accept().await.unwrap();
        let owned: Vec<Vec<u8>> = parts.iter().map(|p| p.to_vec()).collect();
        let writer = tokio::spawn(async move {
            for p in owned {
                client.write_all(&p).await.unwrap();
                client.flush().await.unwrap();
                tokio::task::yield_now().await;
            }
            client.shutdown().await.unwrap();
        });
        let mut head = BytesMut::new();
        let first = first_request(&mut server, &mut head, &previews).await;
        let mut all = Vec::new();
        if first != FirstRequest::Gone {
            Prefixed::new(head.freeze(), server, Duration::from_secs(60)).read_to_end(&mut all).await.unwrap();
        }
        writer.await.unwrap();
        (first, all)
    }

    #[tokio::test]
    async fn previews_and_websockets_go_to_the_data_plane_and_the_api_does_not() {
        let id = uuid::Uuid::new_v4();
        let preview = format!("GET /a HTTP/1.1\r\nHost: 3000-{id}.preview.localhost:8080\r\n\r\nbody");
        let (first, bytes) = sniff(&[&preview.as_bytes()[..20], &preview.as_bytes()[20..]]).await;
        assert_eq!(first, FirstRequest::Preview(id), "a head split across reads");
        assert_eq!(bytes, preview.as_bytes(), "the server reads everything, from the first byte");

        let ws = format!(
            "GET /api/projects/{id}/terminal?ticket=t HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUpgrade: WebSocket\r\n\r\n"
        );
        assert_eq!(sniff(&[ws.as_bytes()]).await.0, FirstRequest::WebSocket(Some(id)));
        let ws = b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUpgrade: websocket\r\n\r\n";
        assert_eq!(sniff(&[ws]).await.0, FirstRequest::WebSocket(None));

        let api = b"GET /api/projects HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n";
        assert_eq!(sniff(&[api]).await, (FirstRequest::Other, api.to_vec()));
        let two = format!("GET / HTTP/1.1\r\nHost: 3000-{id}.preview.localhost\r\nHost: 127.0.0.1:8080\r\n\r\n");
        assert_eq!(sniff(&[two.as_bytes()]).await.0, FirstRequest::Other, "two Hosts: the server refuses it");
        let other = format!("GET / HTTP/1.1\r\nHost: 3000-{id}.evil.example\r\n\r\n");
        assert_eq!(sniff(&[other.as_bytes()]).await.0, FirstRequest::Other);
    }

    #[tokio::test]
    async fn odd_first_requests_are_left_to_the_server() {
        assert_eq!(sniff(&[]).await.0, FirstRequest::Gone, "closed without a byte");
        let (first, bytes) = sniff(&[b"GET / HT"]).await;
        assert_eq!((first, bytes), (FirstRequest::Other, b"GET / HT".to_vec()), "closed mid-head");
        assert_eq!(sniff(&[b"\x16\x03\x01 not http\r\n\r\n"]).await.0, FirstRequest::Other);
        let long = format!("GET / HTTP/1.1\r\nX-Long: {}\r\n", "a".repeat(MAX_SNIFF + 10));
        let (first, bytes) = sniff(&[long.as_bytes()]).await;
        assert_eq!(first, FirstRequest::Other, "a head longer than the limit");
        assert_eq!(bytes, long.as_bytes());
    }
}
