//! The express lane: most preview traffic is keep-alive `GET`s and `HEAD`s
//! that need nothing but forwarding. Such a request's head is rewritten
//! (Host, forwarding headers, aether's cookie out) and sent to the app as
//! bytes, and the answer's bytes come back as they arrive, framed by their
//! own `Content-Length` or chunked encoding, with only the answer's head
//! rewritten (hop-by-hop headers out). No request or response objects are
//! built and no HTTP library's dispatch runs: the hub spends about 40 % less
//! CPU time per request than on the general lane.
//!
//! Everything else goes to the general lane (hyper, `proxy::forward`, and
//! `handle`'s pages) for the rest of the connection, with the request still
//! in the buffer: a body, an upgrade, `Expect`, `Authorization`, hop-by-hop
//! headers, HTTP/1.0, a private port without a valid cookie, an unknown
//! visibility, a VM that isn't connected, a host that isn't a preview, the
//! sign-in path. Kept upstreams move with the connection.
//!
//! When a request can't be sent (no stream free, nothing listening) it is
//! left for the general lane, which answers with its usual pages. A kept
//! connection that the app had closed before answering is replaced here,
//! and the request sent on the new one, as the general lane does. An answer
//! that isn't HTTP/1.1 (or a stream that ends mid-head) gets the general
//! lane's 502 from here, and the request is not sent again: the app may
//! have acted on it; nor is any request the app has received.
//!
//! What a request or answer head loses or gains on the way is `policy`'s
//! decision; where an answer ends is `framing`'s.

use super::PreviewHub;
use super::framing::{Answer, Framing, parse_answer};
use super::policy;
use super::proxy::{self, UPSTREAM_IDLE};
use bytes::{Buf, Bytes, BytesMut};
use futures_util::FutureExt;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// The longest request head this lane reads (the same as the listener's).
pub const MAX_HEAD: usize = 16 * 1024;
/// The longest answer head it takes from an app (as hyper's client).
const MAX_ANSWER_HEAD: usize = 400 * 1024;
/// Most request headers it parses; more go to the general lane.
const MAX_HEADERS: usize = 64;
/// Largest piece read from a tunnel stream at once while reading a head.
const READ_CHUNK: usize = 64 * 1024;
/// How many idle upstreams a client connection keeps (as the general lane).
const KEPT: usize = 4;

/// What becomes of the connection after this lane.
pub enum Next {
    /// The general lane serves the rest, starting with what is in the
    /// buffer, and takes these idle upstreams.
    General(Vec<Kept>),
    Close,
}

/// An idle keep-alive upstream: a stream to the app's port, nothing unread.
pub struct Kept {
    pub project: Uuid,
    pub port: u16,
    pub stream: proxy::Stream,
}

/// An upstream in use.
struct Upstream {
    project: Uuid,
    port: u16,
    stream: proxy::Stream,
    /// Read from the app, not yet forwarded.
    pending: BytesMut,
    used: Instant,
}

/// Serves a connection's preview requests, starting with what is in `buf`,
/// for as long as they qualify.
pub async fn serve(
    hub: &PreviewHub,
    remote: SocketAddr,
    tcp: &mut TcpStream,
    buf: &mut BytesMut,
    shutdown: &CancellationToken,
    idle: Duration,
) -> Next {
    let mut kept: Vec<Upstream> = Vec::new();
    let proto = if hub.public_url.starts_with("https://") { "https" } else { "http" };
    let client = remote.ip().to_string();
    // The next request head must be complete by then, however slowly it
    // comes (as hyper's header timeout).
    let mut deadline = tokio::time::Instant::now() + idle;
    loop {
        let request = match prepare(buf, &hub.previews, |p| hub.tunnels.contains(p), proto, &client) {
            Prepared::Express(r) => {
                hub.control.visited(r.project, r.port, r.owner);
                r
            }
            Prepared::Partial if buf.len() < MAX_HEAD => {
                if read_more(tcp, buf, &mut kept, shutdown, deadline).await {
                    continue;
                }
                return Next::Close;
            }
            Prepared::Partial | Prepared::General => break,
        };
        let answered = exchange(hub, tcp, buf, &request, &mut kept).await;
        deadline = tokio::time::Instant::now() + idle;
        match answered {
            Exchanged::Done => {}
            Exchanged::Close => return Next::Close,
            Exchanged::General => break,
        }
    }
    Next::General(kept.into_iter().map(|u| Kept { project: u.project, port: u.port, stream: u.stream }).collect())
}

/// Waits for more of the next request; false when the connection is to
/// close (the client left, the head isn't in by `deadline`, the hub is
/// stopping). Lets go of upstreams idle for `UPSTREAM_IDLE` meanwhile.
async fn read_more(
    tcp: &mut TcpStream,
    buf: &mut BytesMut,
    kept: &mut Vec<Upstream>,
    shutdown: &CancellationToken,
    deadline: tokio::time::Instant,
) -> bool {
    loop {
        buf.reserve(4096);
        let expiry = kept.iter().map(|u| u.used + UPSTREAM_IDLE).min().map(tokio::time::Instant::from_std);
        tokio::select! {
            r = tcp.read_buf(buf) => return matches!(r, Ok(n) if n > 0),
            () = tokio::time::sleep_until(deadline) => return false,
            () = shutdown.cancelled() => return false,
            () = tokio::time::sleep_until(expiry.unwrap_or(deadline)), if expiry.is_some() => {
                let now = Instant::now();
                kept.retain(|u| now.saturating_duration_since(u.used) < UPSTREAM_IDLE);
            }
        }
    }
}

/// A request for this lane: its head as the app gets it.
#[derive(Debug)]
struct Request {
    /// Length of the client's head in the buffer.
    len: usize,
    /// It carries the owner's preview cookie.
    owner: bool,
    project: Uuid,
    port: u16,
    head: Bytes,
    /// A `HEAD`: the answer has no body whatever its headers say.
    head_only: bool,
    /// The client takes HTML (a browser): errors are pages.
    html: bool,
    /// The scheme the browser uses, and where in `head` the preview's host
    /// is (the `X-Forwarded-Host` value): answers' locations are rebased
    /// onto them (`Seen`).
    proto: &'static str,
    host_at: std::ops::Range<usize>,
}

#[derive(Debug)]
enum Prepared {
    Partial,
    General,
    Express(Request),
}

fn is(name: &str, wanted: &str) -> bool {
    name.eq_ignore_ascii_case(wanted)
}

/// Whether the request at the start of `buf` is for this lane, and if so
/// the head the app gets.
fn prepare(
    buf: &[u8],
    previews: &super::Previews,
    connected: impl Fn(Uuid) -> bool,
    proto: &'static str,
    client: &str,
) -> Prepared {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Prepared::Partial,
        Err(_) => return Prepared::General,
    };
    let (Some(method), Some(path), Some(1)) = (req.method, req.path, req.version) else {
        return Prepared::General;
    };
    let path_only = path.split('?').next().unwrap_or_default();
    if !matches!(method, "GET" | "HEAD")
        || !path.starts_with('/')
        || !path.bytes().all(|b| b.is_ascii_graphic() && b != b'#')
        || path_only == super::AUTH_PATH
    {
        return Prepared::General;
    }
    let mut host = None;
    // One of aether's cookies is among the Cookie headers.
    let mut cookie = false;
    let mut html = false;
    for h in req.headers.iter() {
        let name = h.name;
        if is(name, "host") {
            if host.is_some() {
                return Prepared::General;
            }
            host = Some(h.value);
        } else if is(name, "connection") {
            let value = std::str::from_utf8(h.value).unwrap_or_default();
            if !value.split(',').all(|t| is(t.trim(), "keep-alive")) {
                return Prepared::General;
            }
        } else if is(name, "accept") {
            html |= policy::wants_html(h.value);
        } else if is(name, "cookie") {
            let Ok(line) = std::str::from_utf8(h.value) else { return Prepared::General };
            cookie |= line.split(';').any(|c| policy::our_cookie(c).is_some());
        } else if policy::hop_by_hop(name, false)
            || ["content-length", "transfer-encoding", "expect", "authorization"].iter().any(|n| is(name, n))
        {
            return Prepared::General;
        }
    }
    let Some(host) = host.and_then(|h| std::str::from_utf8(h).ok()) else { return Prepared::General };
    let Some((port, project)) = previews.parse_host(host) else { return Prepared::General };
    if !connected(project) {
        return Prepared::General;
    }
    // Only the owner gets a good cookie: their requests keep the VM awake.
    let owner = cookie && {
        let lines = req.headers.iter().filter(|h| is(h.name, "cookie"));
        previews.any_cookie_ok(lines.filter_map(|h| std::str::from_utf8(h.value).ok()), project, port)
    };
    // An unknown visibility, or a refusal, is the general lane's to answer.
    match previews.cached_visibility(project, port).map(|v| policy::access(v, owner)) {
        Some(policy::Access::Allowed) => {}
        Some(policy::Access::SignInFirst) | None => return Prepared::General,
    }

    let mut head = BytesMut::with_capacity(len + 160);
    head.extend_from_slice(method.as_bytes());
    head.extend_from_slice(b" ");
    head.extend_from_slice(path.as_bytes());
    head.extend_from_slice(b" HTTP/1.1\r\n");
    let prior = req.headers.iter().filter(|h| is(h.name, "x-forwarded-for")).map(|h| h.value);
    let mut host_at = 0..0;
    for (name, value) in policy::forwarding(port, Some(host.as_bytes()), proto, prior, Some(client)) {
        if name == "x-forwarded-host" {
            let at = head.len() + name.len() + 2;
            host_at = at..at + value.len();
        }
        header_line(&mut head, name.as_bytes(), &value);
    }
    // No Authorization reaches this lane: no token to tell apart.
    for h in req.headers.iter() {
        match policy::request_header(h.name, h.value, false, |_| false) {
            policy::Edit::Keep => header_line(&mut head, h.name.as_bytes(), h.value),
            policy::Edit::Drop => {}
            policy::Edit::Set(v) => header_line(&mut head, h.name.as_bytes(), &v),
        }
    }
    head.extend_from_slice(b"\r\n");
    let head = head.freeze();
    Prepared::Express(Request { len, project, port, head, head_only: method == "HEAD", html, proto, host_at, owner })
}

/// For the request at the start of `buf`: the length of the client's head
/// and the head the app gets, if this lane takes it (`projects` are
/// connected). The framing tests compare it with hyper's reading.
#[doc(hidden)]
pub fn taken(buf: &[u8], previews: &super::Previews, connected: impl Fn(Uuid) -> bool) -> Option<(usize, Bytes)> {
    match prepare(buf, previews, connected, "http", "10.0.0.7") {
        Prepared::Express(r) => Some((r.len, r.head)),
        Prepared::Partial | Prepared::General => None,
    }
}

fn header_line(out: &mut BytesMut, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

enum Exchanged {
    /// Answered; the connection goes on.
    Done,
    /// Answered (or failed once the client had part of an answer): close.
    Close,
    /// Not sent: the request is the general lane's.
    General,
}

/// Why asking the app failed.
enum Failed {
    /// The stream ended before any byte of an answer.
    Closed,
    /// An answer that isn't HTTP/1.1, or the stream failed mid-head.
    Other,
}

async fn exchange(
    hub: &PreviewHub,
    tcp: &mut TcpStream,
    buf: &mut BytesMut,
    req: &Request,
    kept: &mut Vec<Upstream>,
) -> Exchanged {
    let now = Instant::now();
    kept.retain(|u| now.saturating_duration_since(u.used) < UPSTREAM_IDLE);
    let mut reused = kept.iter().position(|u| u.project == req.project && u.port == req.port).map(|i| kept.remove(i));
    // A kept connection with anything to read (bytes nobody asked for, or
    // its end) is not used again: its next answer could be the wrong one.
    if let Some(u) = &mut reused
        && u.stream.recv.read_chunk(1, true).now_or_never().is_some()
    {
        reused = None;
    }
    let (mut up, answer) = loop {
        let fresh = reused.is_none();
        let mut up = match reused.take() {
            Some(u) => u,
            None => match proxy::open(&hub.tunnels, req.project, req.port).await {
                Ok(mut stream) => Upstream {
                    project: req.project,
                    port: req.port,
                    pending: BytesMut::from(&std::mem::take(&mut stream.early)[..]),
                    stream,
                    used: now,
                },
                Err(_) => return Exchanged::General,
            },
        };
        if up.stream.send.write_chunk(req.head.clone()).await.is_err() {
            if fresh {
                return Exchanged::General;
            }
            continue;
        }
        // Past `PATIENCE`, a client that leaves meanwhile is noticed, and
        // its stream let go, without waiting for the answer (a long poll).
        let answered = {
            let seen = policy::Seen { port: req.port, proto: req.proto, host: &req.head[req.host_at.clone()] };
            let answer = up.answer(req.head_only, seen);
            let patience = tokio::time::sleep(PATIENCE);
            tokio::pin!(answer, patience);
            let mut watching = false;
            loop {
                tokio::select! {
                    biased;
                    r = &mut answer => break r,
                    () = &mut patience, if !watching => watching = true,
                    r = tcp.read_buf(buf), if watching && buf.len() < 2 * MAX_HEAD => {
                        if !matches!(r, Ok(n) if n > 0) {
                            return Exchanged::Close;
                        }
                    }
                }
            }
        };
        match answered {
            Ok(answer) => break (up, answer),
            // A kept connection the app had closed: a new one.
            Err(Failed::Closed) if !fresh => continue,
            // The app has the request: it is not sent again (it would be
            // run twice), the client gets the general lane's error.
            Err(_) => {
                buf.advance(req.len);
                return match bad_gateway(tcp, req.html).await {
                    Ok(()) => Exchanged::Done,
                    Err(_) => Exchanged::Close,
                };
            }
        }
    };
    // The request is the app's now.
    buf.advance(req.len);
    up.pending.advance(answer.len);
    if up.forward(tcp, answer.head, answer.framing, hub.send_timeout).await.is_err() {
        return Exchanged::Close;
    }
    if answer.reusable && up.pending.is_empty() {
        up.used = Instant::now();
        kept.push(up);
        if kept.len() > KEPT {
            kept.remove(0);
        }
    }
    Exchanged::Done
}

impl Upstream {
    /// Reads until a final answer's head is complete. Informational (1xx)
    /// answers are dropped, as the general lane does: nothing sent on this
    /// lane asked for one, and a proxy in front could take one for the end.
    async fn answer(&mut self, head_only: bool, seen: policy::Seen<'_>) -> Result<Answer, Failed> {
        loop {
            match parse_answer(&self.pending, head_only, seen) {
                Ok(Some(answer)) if answer.framing == Framing::Informational => {
                    self.pending.advance(answer.len);
                    continue;
                }
                Ok(Some(answer)) => return Ok(answer),
                Ok(None) if self.pending.len() <= MAX_ANSWER_HEAD => {}
                _ => return Err(Failed::Other),
            }
            match self.stream.recv.read_chunk(READ_CHUNK, true).await {
                Ok(Some(chunk)) => self.pending.extend_from_slice(&chunk.bytes),
                Ok(None) | Err(_) if self.pending.is_empty() => return Err(Failed::Closed),
                Ok(None) | Err(_) => return Err(Failed::Other),
            }
        }
    }

    /// Sends the answer's head and body to the client. What arrived past the
    /// body's end stays in `pending`. An error means the client's answer is
    /// incomplete. A body that ends with the stream is sent chunked, so the
    /// client can tell a whole one from a cut one, and its connection lives on.
    async fn forward(
        &mut self,
        tcp: &mut TcpStream,
        head: BytesMut,
        mut framing: Framing,
        stall: Duration,
    ) -> Result<(), ()> {
        let rechunk = framing == Framing::UntilClose;
        // The head and what is already here of the body go in one write.
        let mut out = head;
        let (n, mut done) = framing.take(&self.pending).map_err(drop)?;
        if rechunk && n > 0 {
            out.extend_from_slice(format!("{n:x}\r\n").as_bytes());
            out.extend_from_slice(&self.pending[..n]);
            out.extend_from_slice(b"\r\n");
        } else if !rechunk {
            out.extend_from_slice(&self.pending[..n]);
        }
        self.pending.advance(n);
        send(tcp, &mut [out.freeze()], stall).await.map_err(drop)?;
        // Then whatever has arrived at each wake-up, in one write: a chunk
        // is one STREAM frame, a few KB, and a write per chunk cost the hub
        // and the client a system call and a wake-up each. `chunks[0]` and
        // the slot after the last are for the chunk framing when rechunking.
        let mut chunks: [Bytes; BATCH + 2] = Default::default();
        while !done {
            let got = match self.stream.recv.read_chunks(&mut chunks[1..=BATCH]).await {
                Ok(Some(n)) => n,
                Ok(None) if rechunk => {
                    return send(tcp, &mut [Bytes::from_static(b"0\r\n\r\n")], stall).await.map_err(drop);
                }
                Ok(None) | Err(_) => return Err(()),
            };
            let mut total = 0;
            for chunk in &mut chunks[1..=got] {
                if done {
                    self.pending.extend_from_slice(chunk);
                    chunk.clear();
                    continue;
                }
                let (n, end) = framing.take(chunk).map_err(drop)?;
                if n < chunk.len() {
                    self.pending.extend_from_slice(&chunk[n..]);
                    chunk.truncate(n);
                }
                total += n;
                done = end;
            }
            if total >= YIELD_AFTER {
                // Reading gave the stream's window back; let quinn's driver
                // (on this thread) tell aetherd before the write to the
                // client, which can take a while. Otherwise a bulk answer
                // went in bursts of one window with aetherd waiting between
                // them (10 MB: 86-88 responses/s, 90-97 with this).
                tokio::task::yield_now().await;
            }
            let mut end = got + 1;
            if rechunk && total > 0 {
                chunks[0] = Bytes::from(format!("{total:x}\r\n"));
                chunks[end] = Bytes::from_static(b"\r\n");
                end += 1;
            }
            send(tcp, &mut chunks[..end], stall).await.map_err(drop)?;
        }
        Ok(())
    }
}

/// How many chunks are read from a tunnel stream, and written, at once.
const BATCH: usize = 16;
/// A batch of body bytes this large gives quinn's driver its turn before
/// it is written.
const YIELD_AFTER: usize = 64 * 1024;
/// How long an answer is waited for before the client is watched too.
const PATIENCE: Duration = Duration::from_secs(1);

/// Answers 502 as the general lane does when the app's answer can't be read.
async fn bad_gateway(tcp: &mut TcpStream, html: bool) -> std::io::Result<()> {
    let msg = "the app's answer could not be read as HTTP/1.1";
    let resp = super::refuse(
        html,
        crate::error::ApiError::BadGateway(format!("the preview failed: {msg}")),
        "Bad answer from the app",
        "The app in the project's VM answered with something that isn't HTTP/1.1, or closed the connection without answering.",
    );
    let (parts, body) = resp.into_parts();
    let body = axum::body::to_bytes(body, 64 * 1024).await.map_err(std::io::Error::other)?;
    let mut out = BytesMut::with_capacity(256 + body.len());
    out.extend_from_slice(format!("HTTP/1.1 {}\r\n", parts.status).as_bytes());
    for (name, value) in &parts.headers {
        if name != axum::http::header::CONTENT_LENGTH {
            header_line(&mut out, name.as_str().as_bytes(), value.as_bytes());
        }
    }
    out.extend_from_slice(format!("content-length: {}\r\n\r\n", body.len()).as_bytes());
    out.extend_from_slice(&body);
    tcp.write_all(&out).await
}

/// Writes all of `bufs` (at most `BATCH + 2`) with vectored writes; an
/// error once the client has taken none of them for `stall` (the hub's send
/// timeout), so that a client that stops reading lets go of its stream.
async fn send(tcp: &mut TcpStream, bufs: &mut [Bytes], stall: Duration) -> std::io::Result<()> {
    let mut first = 0;
    loop {
        while first < bufs.len() && bufs[first].is_empty() {
            first += 1;
        }
        if first == bufs.len() {
            return Ok(());
        }
        let mut slices = [std::io::IoSlice::new(&[]); BATCH + 2];
        for (slice, buf) in slices.iter_mut().zip(&bufs[first..]) {
            *slice = std::io::IoSlice::new(buf);
        }
        let mut write = std::pin::pin!(tcp.write_vectored(&slices[..bufs.len() - first]));
        // The timer is set only when the write has to wait.
        let mut n = match write.as_mut().now_or_never() {
            Some(written) => written?,
            None => tokio::time::timeout(stall, write).await.map_err(|_| crate::http::send_timed_out())??,
        };
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        while n > 0 {
            let k = n.min(bufs[first].len());
            bufs[first].advance(k);
            n -= k;
            if bufs[first].is_empty() {
                first += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::preview::{Previews, Visibility};

    struct Setup {
        previews: Previews,
        project: Uuid,
        host: String,
    }

    fn setup(visibility: Visibility) -> Setup {
        let previews = Previews::new("preview.localhost".into(), "http://127.0.0.1:8080", b"secret");
        let project = Uuid::new_v4();
        previews.remember_visibility(project, 3000, visibility);
        Setup { host: format!("3000-{project}.preview.localhost:8080"), previews, project }
    }

    fn prepared(s: &Setup, head: &str) -> Prepared {
        prepare(head.as_bytes(), &s.previews, |p| p == s.project, "https", "10.0.0.7")
    }

    fn express(s: &Setup, head: &str) -> String {
        match prepared(s, head) {
            Prepared::Express(r) => {
                assert_eq!(r.len, head.len());
                String::from_utf8(r.head.to_vec()).unwrap()
            }
            other => panic!("{other:?} for {head:?}"),
        }
    }

    #[test]
    fn a_plain_get_goes_to_the_app_with_its_host_and_forwarding_headers_rewritten() {
        let s = setup(Visibility::Public);
        let head = format!(
            "GET /a?b=1 HTTP/1.1\r\nHost: {}\r\nConnection: keep-alive\r\nX-Forwarded-For: 1.2.3.4\r\n\
             X-Forwarded-Host: evil\r\nAccept: */*\r\n\r\n",
            s.host
        );
        assert_eq!(
            express(&s, &head),
            format!(
                "GET /a?b=1 HTTP/1.1\r\nhost: localhost:3000\r\nx-forwarded-host: {}\r\n\
                 x-forwarded-proto: https\r\nx-forwarded-for: 1.2.3.4, 10.0.0.7\r\nAccept: */*\r\n\r\n",
                s.host
            )
        );
        assert!(matches!(prepared(&s, &head[..head.len() - 2]), Prepared::Partial));

        // The origin stays as the browser sent it: with `X-Forwarded-Host`,
        // it is what Next.js's server actions and Rails compare.
        let get = |origin: &str| format!("GET / HTTP/1.1\r\nHost: {}\r\nOrigin: {origin}\r\n\r\n", s.host);
        let sent = express(&s, &get(&format!("https://{}", s.host)));
        assert!(sent.contains(&format!("\r\nOrigin: https://{}\r\n", s.host)), "{sent}");
    }

    #[test]
    fn a_private_preview_needs_its_cookie_and_the_app_never_sees_it() {
        let s = setup(Visibility::Private);
        let get = |cookie: &str| format!("GET / HTTP/1.1\r\nHost: {}\r\nCookie: {cookie}\r\n\r\n", s.host);
        assert!(matches!(prepared(&s, &get("theme=dark")), Prepared::General), "no cookie: the general lane's 401");
        let other = s.previews.cookie_value(Uuid::new_v4(), 3000, Uuid::new_v4());
        assert!(matches!(prepared(&s, &get(&format!("aether_preview={other}"))), Prepared::General));

        let ours = s.previews.cookie_value(s.project, 3000, Uuid::new_v4());
        let sent = express(&s, &get(&format!("theme=dark; aether_preview={ours}; b=2")));
        assert!(sent.contains("\r\nCookie: theme=dark; b=2\r\n"), "{sent}");
        assert!(!sent.contains("aether_preview"), "{sent}");
        let sent = express(&s, &get(&format!("aether_preview={ours}")));
        assert!(!sent.to_lowercase().contains("cookie"), "{sent}");
    }

    #[test]
    fn anything_but_a_plain_get_or_head_is_the_general_lanes() {
        let s = setup(Visibility::Public);
        let h = &s.host;
        assert!(
            matches!(prepared(&s, &format!("HEAD / HTTP/1.1\r\nHost: {h}\r\n\r\n")), Prepared::Express(r) if r.head_only)
        );
        for head in [
            format!("POST / HTTP/1.1\r\nHost: {h}\r\nContent-Length: 1\r\n\r\nx"),
            format!("GET / HTTP/1.1\r\nHost: {h}\r\nContent-Length: 0\r\n\r\n"),
            format!("GET / HTTP/1.1\r\nHost: {h}\r\nTransfer-Encoding: chunked\r\n\r\n"),
            format!("GET / HTTP/1.1\r\nHost: {h}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"),
            format!("GET / HTTP/1.1\r\nHost: {h}\r\nConnection: close\r\n\r\n"),
            format!("GET / HTTP/1.1\r\nHost: {h}\r\nAuthorization: Bearer x\r\n\r\n"),
            format!("GET / HTTP/1.1\r\nHost: {h}\r\nExpect: 100-continue\r\n\r\n"),
            format!("GET / HTTP/1.1\r\nHost: {h}\r\nTE: trailers\r\n\r\n"),
            format!("GET / HTTP/1.1\r\nHost: {h}\r\nHost: {h}\r\n\r\n"),
            format!("GET / HTTP/1.0\r\nHost: {h}\r\n\r\n"),
            format!("GET http://{h}/ HTTP/1.1\r\nHost: {h}\r\n\r\n"),
            format!("GET /__aether/auth?token=t HTTP/1.1\r\nHost: {h}\r\n\r\n"),
            "GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n".to_owned(),
            format!("GET / HTTP/1.1\r\nHost: 3000-{}.preview.localhost\r\n\r\n", Uuid::new_v4()),
            format!("GET / HTTP/1.1\r\nHost: 3001-{}.preview.localhost\r\n\r\n", s.project),
            "GET / HTTP/1.1\r\nHost\r\n\r\n".to_owned(),
            format!("GET /a#b HTTP/1.1\r\nHost: {h}\r\n\r\n"),
            format!("GET /caf\u{e9} HTTP/1.1\r\nHost: {h}\r\n\r\n"),
        ] {
            assert!(matches!(prepared(&s, &head), Prepared::General), "{head:?}");
        }
    }
}
