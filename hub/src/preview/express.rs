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
//! Framing is parsed strictly: one agreed `Content-Length`; transfer codings
//! that are tokens, with `chunked` at most once and last (else the body ends
//! with the stream); chunk-size lines with CRLF only and at most 15 hex
//! digits, bounded extension and trailer sizes.

use super::Visibility;
use super::proxy::{self, UPSTREAM_IDLE};
use crate::Hub;
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
/// Most answer headers (hyper's client allows as many).
const MAX_ANSWER_HEADERS: usize = 100;
/// Largest piece read from a tunnel stream at once while reading a head.
const READ_CHUNK: usize = 64 * 1024;
/// A chunk-size line (with its extensions) longer than this is refused.
const MAX_SIZE_LINE: usize = 4096;
/// A trailer section longer than this is refused.
const MAX_TRAILERS: usize = 16 * 1024;
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
    hub: &Hub,
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
                hub.activity.preview(r.project, r.port, r.owner);
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
            html |= h.value.windows(9).any(|w| w == b"text/html");
        } else if is(name, "cookie") {
            let Ok(line) = std::str::from_utf8(h.value) else { return Prepared::General };
            cookie |= line.split(';').any(|c| super::our_cookie(c).is_some());
        } else if hop_by_hop(name)
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
    match previews.cached_visibility(project, port) {
        Some(Visibility::Public) => {}
        Some(Visibility::Private) if owner => {}
        _ => return Prepared::General,
    }

    let mut head = BytesMut::with_capacity(len + 160);
    head.extend_from_slice(method.as_bytes());
    head.extend_from_slice(b" ");
    head.extend_from_slice(path.as_bytes());
    head.extend_from_slice(format!(" HTTP/1.1\r\nhost: localhost:{port}\r\n").as_bytes());
    let mut forwarded_for = Vec::new();
    for h in req.headers.iter() {
        let name = h.name;
        if is(name, "x-forwarded-for") {
            forwarded_for.push(h.value);
            continue;
        }
        if ["host", "connection", "x-forwarded-host", "x-forwarded-proto"].iter().any(|n| is(name, n)) {
            continue;
        }
        let rewritten;
        let mut value = h.value;
        if is(name, "cookie") && cookie {
            rewritten = super::without_ours(std::str::from_utf8(value).unwrap_or_default());
            if rewritten.is_empty() {
                continue;
            }
            value = rewritten.as_bytes();
        }
        header_line(&mut head, name.as_bytes(), value);
    }
    let host_at = head.len() + b"x-forwarded-host: ".len()..head.len() + b"x-forwarded-host: ".len() + host.len();
    header_line(&mut head, b"x-forwarded-host", host.as_bytes());
    header_line(&mut head, b"x-forwarded-proto", proto.as_bytes());
    head.extend_from_slice(b"x-forwarded-for: ");
    for prior in forwarded_for {
        head.extend_from_slice(prior);
        head.extend_from_slice(b", ");
    }
    head.extend_from_slice(client.as_bytes());
    head.extend_from_slice(b"\r\n\r\n");
    let head = head.freeze();
    Prepared::Express(Request { len, project, port, head, head_only: method == "HEAD", html, proto, host_at, owner })
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
    hub: &Hub,
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
            let seen = super::Seen { port: req.port, proto: req.proto, host: &req.head[req.host_at.clone()] };
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
    if up.forward(tcp, answer.head, answer.framing, hub.config.send_timeout).await.is_err() {
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
    async fn answer(&mut self, head_only: bool, seen: super::Seen<'_>) -> Result<Answer, Failed> {
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

/// An answer's head, rewritten for the client, and how its body is framed.
#[derive(Debug)]
struct Answer {
    /// Length of the app's head in `pending`.
    len: usize,
    head: BytesMut,
    framing: Framing,
    /// The app's connection can carry another request after this answer.
    reusable: bool,
}

/// Where an answer's body ends.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Framing {
    /// A 1xx: another head follows.
    Informational,
    /// This many bytes more.
    Length(u64),
    Chunked(Chunked),
    /// At the end of the stream.
    UntilClose,
}

impl Framing {
    /// How much of `data` (what arrives next) belongs to the body, and
    /// whether the body ends there.
    fn take(&mut self, data: &[u8]) -> Result<(usize, bool), Invalid> {
        Ok(match self {
            Self::Informational => (0, true),
            Self::Length(left) => {
                let n = (*left).min(data.len() as u64);
                *left -= n;
                (n as usize, *left == 0)
            }
            Self::Chunked(c) => c.feed(data)?,
            Self::UntilClose => (data.len(), false),
        })
    }
}

#[derive(Debug, PartialEq)]
struct Invalid;

/// Whether a header is hop-by-hop (`Upgrade` counts: nothing here upgrades).
fn hop_by_hop(name: &str) -> bool {
    proxy::HOP_BY_HOP.iter().any(|h| is(name, h.as_str())) || is(name, "upgrade")
}

/// A token character (RFC 9110 §5.6.2).
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Spaces and tabs off both ends.
fn trim_ows(v: &[u8]) -> &[u8] {
    let start = v.iter().position(|b| !matches!(b, b' ' | b'\t')).unwrap_or(v.len());
    let end = v.iter().rposition(|b| !matches!(b, b' ' | b'\t')).map_or(start, |i| i + 1);
    &v[start..end]
}

/// The transfer codings of every `Transfer-Encoding` line, in the order
/// applied (empty list elements skipped).
fn codings<'a>(headers: &'a [httparse::Header<'a>]) -> impl Iterator<Item = &'a [u8]> {
    headers
        .iter()
        .filter(|h| is(h.name, "transfer-encoding"))
        .flat_map(|h| h.value.split(|&b| b == b','))
        .map(trim_ows)
        .filter(|c| !c.is_empty())
}

/// Parses the answer head at the start of `data`, if it is complete;
/// `seen` rebases locations.
fn parse_answer(data: &[u8], head_only: bool, seen: super::Seen<'_>) -> Result<Option<Answer>, Invalid> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_ANSWER_HEADERS];
    let mut resp = httparse::Response::new(&mut headers);
    let len = match resp.parse(data) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err(Invalid),
    };
    let (Some(version), Some(code)) = (resp.version, resp.code) else { return Err(Invalid) };
    // Nothing asked to switch protocols.
    if code == 101 {
        return Err(Invalid);
    }
    let mut length: Option<u64> = None;
    let mut coded = false;
    let mut close = version == 0;
    let mut dated = false;
    for h in resp.headers.iter() {
        dated |= is(h.name, "date");
        if is(h.name, "content-length") {
            let v = std::str::from_utf8(h.value).map_err(|_| Invalid)?.trim();
            if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) || v.len() > 18 {
                return Err(Invalid);
            }
            let v: u64 = v.parse().map_err(|_| Invalid)?;
            if length.is_some_and(|l| l != v) {
                return Err(Invalid);
            }
            length = Some(v);
        } else if is(h.name, "transfer-encoding") {
            coded = true;
        } else if is(h.name, "connection") {
            let v = std::str::from_utf8(h.value).unwrap_or_default();
            if v.split(',').any(|t| is(t.trim(), "close")) {
                close = true;
            }
        }
    }
    // RFC 9112 §6.1: each coding a token, perhaps with parameters (`chunked`
    // takes none); `chunked` at most once and last, or the body ends with
    // the connection; a `Transfer-Encoding` naming no coding means nothing.
    let (mut any, mut chunked, mut chunked_last) = (false, 0, false);
    for coding in codings(resp.headers) {
        let name = trim_ows(coding.split(|&b| b == b';').next().unwrap_or_default());
        let is_chunked = name.eq_ignore_ascii_case(b"chunked");
        if name.is_empty() || !name.iter().all(|&b| is_tchar(b)) || (is_chunked && name.len() != coding.len()) {
            return Err(Invalid);
        }
        (any, chunked, chunked_last) = (true, chunked + usize::from(is_chunked), is_chunked);
    }
    if (coded && !any) || chunked > 1 || (chunked == 1 && !chunked_last) {
        return Err(Invalid);
    }
    let framing = if (100..200).contains(&code) {
        Framing::Informational
    } else if head_only || code == 204 || code == 304 {
        Framing::Length(0)
    } else {
        // A transfer coding overrides any Content-Length (§6.3).
        match (coded, length) {
            (true, _) if chunked_last => Framing::Chunked(Chunked::default()),
            (true, _) | (false, None) => Framing::UntilClose,
            (false, Some(n)) => Framing::Length(n),
        }
    };
    let mut head = BytesMut::with_capacity(len + 32);
    head.extend_from_slice(format!("HTTP/1.1 {code} ").as_bytes());
    head.extend_from_slice(resp.reason.unwrap_or_default().as_bytes());
    head.extend_from_slice(b"\r\n");
    for h in resp.headers.iter() {
        let hop = hop_by_hop(h.name);
        // With a transfer coding, Content-Length is not the body's length;
        // the codings go on one line of their own, below.
        let stale_length = coded && is(h.name, "content-length");
        if hop || stale_length || is(h.name, "transfer-encoding") {
            continue;
        }
        let rebased = if is(h.name, "location") || is(h.name, "content-location") {
            seen.rebase(h.value)
        } else if is(h.name, "set-cookie") {
            super::host_only_cookie(h.value)
        } else {
            None
        };
        header_line(&mut head, h.name.as_bytes(), rebased.as_deref().unwrap_or(h.value));
    }
    if !dated {
        // A proxy adds the date an answer without one was received at
        // (RFC 9110 §6.6.1), as hyper does on the general lane.
        header_line(&mut head, b"date", httpdate::fmt_http_date(std::time::SystemTime::now()).as_bytes());
    }
    // The app's codings, as one list, and `chunked` after them for a body
    // that ends with the stream (`Upstream::forward` sends it chunked): the
    // client frames the body as sent. Any other coding reaches it as the app
    // applied it (a browser undoes only `chunked`, from the app directly too).
    // None on a 204 (RFC 9112 §6.1).
    let rechunked = framing == Framing::UntilClose;
    if (any || rechunked) && code != 204 {
        head.extend_from_slice(b"transfer-encoding: ");
        let tail = rechunked.then_some(&b"chunked"[..]);
        for (i, coding) in codings(resp.headers).chain(tail).enumerate() {
            if i > 0 {
                head.extend_from_slice(b", ");
            }
            head.extend_from_slice(coding);
        }
        head.extend_from_slice(b"\r\n");
    }
    head.extend_from_slice(b"\r\n");
    // An answer with both a coding and a length is odd enough (RFC 9112
    // §6.3) that its connection isn't trusted with another request.
    let reusable = !close && framing != Framing::UntilClose && !(coded && length.is_some());
    Ok(Some(Answer { len, head, framing, reusable }))
}

/// Where a chunked body's parser is (RFC 9112 §7.1), strict: CRLF line
/// ends only, sizes of at most 15 hex digits, bounded lines and trailers.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Chunked {
    /// In a chunk-size line: the size, its digits, what comes after them
    /// (`Rest`), the line's length.
    Size {
        size: u64,
        digits: u8,
        rest: Rest,
        line: usize,
    },
    /// After the size line's CR.
    SizeLf {
        size: u64,
    },
    Data(u64),
    DataCr,
    DataLf,
    /// In the trailer section: the current line's length, the section's.
    Trailer {
        line: usize,
        total: usize,
    },
    TrailerLf {
        line: usize,
        total: usize,
    },
    Done,
}

/// What follows a chunk size's digits: `[ \t]*` and then `;` and an
/// extension, or the line's end.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Rest {
    Digits,
    Space,
    Extension,
}

impl Default for Chunked {
    fn default() -> Self {
        Self::Size { size: 0, digits: 0, rest: Rest::Digits, line: 0 }
    }
}

impl Chunked {
    /// Consumes `data` up to the body's end: how much was body, and whether
    /// it ended.
    fn feed(&mut self, data: &[u8]) -> Result<(usize, bool), Invalid> {
        let mut i = 0;
        while i < data.len() && *self != Self::Done {
            if let Self::Data(left) = *self {
                let n = left.min((data.len() - i) as u64);
                i += n as usize;
                *self = if n == left { Self::DataCr } else { Self::Data(left - n) };
                continue;
            }
            let b = data[i];
            i += 1;
            *self = match *self {
                Self::Size { size, digits, rest, line } => {
                    if line >= MAX_SIZE_LINE {
                        return Err(Invalid);
                    }
                    let line = line + 1;
                    match (rest, b) {
                        (_, b'\r') if digits > 0 => Self::SizeLf { size },
                        (Rest::Digits, _) if b.is_ascii_hexdigit() => {
                            if digits == 15 {
                                return Err(Invalid);
                            }
                            let d = (b as char).to_digit(16).expect("a hex digit") as u64;
                            Self::Size { size: size * 16 + d, digits: digits + 1, rest, line }
                        }
                        (Rest::Digits | Rest::Space, b' ' | b'\t') if digits > 0 => {
                            Self::Size { size, digits, rest: Rest::Space, line }
                        }
                        (Rest::Digits | Rest::Space, b';') if digits > 0 => {
                            Self::Size { size, digits, rest: Rest::Extension, line }
                        }
                        (Rest::Extension, b'\t' | b' '..=b'~') => Self::Size { size, digits, rest, line },
                        _ => return Err(Invalid),
                    }
                }
                Self::SizeLf { size } if b == b'\n' => {
                    if size == 0 {
                        Self::Trailer { line: 0, total: 0 }
                    } else {
                        Self::Data(size)
                    }
                }
                Self::DataCr if b == b'\r' => Self::DataLf,
                Self::DataLf if b == b'\n' => Self::default(),
                Self::Trailer { line, total } => match b {
                    b'\r' => Self::TrailerLf { line, total },
                    b'\n' => return Err(Invalid),
                    _ if total >= MAX_TRAILERS => return Err(Invalid),
                    _ => Self::Trailer { line: line + 1, total: total + 1 },
                },
                Self::TrailerLf { line, total } if b == b'\n' => {
                    if line == 0 {
                        Self::Done
                    } else {
                        Self::Trailer { line: 0, total }
                    }
                }
                _ => return Err(Invalid),
            };
        }
        Ok((i, *self == Self::Done))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::preview::Previews;

    /// Feeds `body` in pieces of `step` bytes: (bytes taken, ended).
    fn chunked(body: &[u8], step: usize) -> Result<(usize, bool), Invalid> {
        let mut c = Chunked::default();
        let mut taken = 0;
        for piece in body.chunks(step) {
            let (n, done) = c.feed(piece)?;
            taken += n;
            if done {
                return Ok((taken, true));
            }
        }
        Ok((taken, false))
    }

    #[test]
    fn a_chunked_body_ends_where_its_last_chunk_and_trailers_do_however_it_arrives() {
        let body = b"5\r\nhello\r\n1A;name=\"v\"\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nx-sum: 1\r\n\r\n";
        for step in 1..=body.len() {
            let mut more = body.to_vec();
            more.extend_from_slice(b"HTTP/1.1 200 OK\r\n");
            assert_eq!(chunked(&more, step), Ok((body.len(), true)), "in pieces of {step}");
        }
        assert_eq!(chunked(b"0\r\n\r\n", 1), Ok((5, true)));
        assert_eq!(chunked(b"3 \t;a=b c\r\nabc\r\n0 \r\n\r\n", 2), Ok((22, true)), "spaces, then an extension");
        assert_eq!(chunked(b"5\r\nhel", 3), Ok((6, false)), "not over yet");
    }

    #[test]
    fn chunked_framing_that_could_be_read_two_ways_is_refused() {
        for bad in [
            &b"5\nhello\r\n0\r\n\r\n"[..],
            b"5\r\nhello\n0\r\n\r\n",
            b"5\r\nhelloX\r\n0\r\n\r\n",
            b"\r\n",
            b";ext\r\n",
            b"-5\r\n",
            b"5 \x01\r\n",
            b"5x\r\n",
            b"5 5\r\n",
            b"0x10\r\n",
            b"1000000000000000\r\n",
            b"0\r\nx: 1\n\r\n",
        ] {
            assert_eq!(chunked(bad, 1), Err(Invalid), "{:?}", String::from_utf8_lossy(bad));
        }
        let long_line = format!("5;{}\r\n", "a".repeat(MAX_SIZE_LINE));
        assert_eq!(chunked(long_line.as_bytes(), 64), Err(Invalid));
        let long_trailer = format!("0\r\nx: {}\r\n\r\n", "a".repeat(MAX_TRAILERS));
        assert_eq!(chunked(long_trailer.as_bytes(), 64), Err(Invalid));
        assert_eq!(chunked(b"fffffffffffffff\r\n", 4), Ok((17, false)), "15 digits are allowed");
    }

    fn answer(head: &str, head_only: bool) -> Result<Option<Answer>, Invalid> {
        parse_answer(
            head.as_bytes(),
            head_only,
            super::super::Seen { port: 3000, proto: "http", host: b"3000-p.preview.localhost:8080" },
        )
    }

    fn framing(head: &str) -> Framing {
        answer(head, false).unwrap().unwrap().framing
    }

    #[test]
    fn an_answer_is_framed_as_the_rfc_says_and_loses_its_hop_by_hop_headers() {
        let text = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\n\
                    X-App: 1\r\nDate: Thu, 26 Nov 2026 05:00:00 GMT\r\n\r\nhello";
        let a = answer(text, false).unwrap().unwrap();
        assert_eq!((a.len, a.framing, a.reusable), (text.len() - 5, Framing::Length(5), true));
        assert_eq!(
            &a.head[..],
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-App: 1\r\nDate: Thu, 26 Nov 2026 05:00:00 GMT\r\n\r\n"
        );

        let a = answer(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 9\r\ndate: Thu, 26 Nov 2026 05:00:00 GMT\r\n\r\n",
            false,
        )
        .unwrap()
        .unwrap();
        assert_eq!(a.framing, Framing::Chunked(Chunked::default()));
        assert_eq!(
            &a.head[..],
            b"HTTP/1.1 200 OK\r\ndate: Thu, 26 Nov 2026 05:00:00 GMT\r\ntransfer-encoding: chunked\r\n\r\n",
            "a stale length goes"
        );
        assert!(!a.reusable, "nor is the connection trusted again");

        // A redirect to the app as it sees itself goes to the preview.
        const DATE: &str = "Date: Thu, 26 Nov 2026 05:00:00 GMT\r\n";
        let a = answer(&format!("HTTP/1.1 302 Found\r\nLocation: http://localhost:3000/in?x=1\r\n{DATE}\r\n"), false);
        let head = String::from_utf8(a.unwrap().unwrap().head.to_vec()).unwrap();
        assert!(head.contains("\r\nLocation: http://3000-p.preview.localhost:8080/in?x=1\r\n"), "{head}");
        let a = answer(&format!("HTTP/1.1 302 Found\r\nLocation: http://localhost:4000/\r\n{DATE}\r\n"), false);
        let head = String::from_utf8(a.unwrap().unwrap().head.to_vec()).unwrap();
        assert!(head.contains("\r\nLocation: http://localhost:4000/\r\n"), "another port's stays: {head}");

        // An answer without a date gets the time it arrived.
        let before = std::time::SystemTime::now() - std::time::Duration::from_secs(1);
        let a = answer("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", false).unwrap().unwrap();
        let head = std::str::from_utf8(&a.head).unwrap();
        let date = head.strip_prefix("HTTP/1.1 200 OK\r\nContent-Length: 0\r\ndate: ").unwrap();
        let date = httpdate::parse_http_date(date.strip_suffix("\r\n\r\n").unwrap()).unwrap();
        assert!(date >= before && date <= std::time::SystemTime::now(), "{head:?}");

        let a = answer("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n", false).unwrap().unwrap();
        assert_eq!((a.framing, a.reusable), (Framing::UntilClose, false));
        assert!(a.head.ends_with(b"transfer-encoding: chunked\r\n\r\n"), "sent on chunked");

        assert_eq!(framing("HTTP/1.1 204 No Content\r\n\r\n"), Framing::Length(0));
        let a = answer("HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\n\r\n", false).unwrap().unwrap();
        assert!(!String::from_utf8_lossy(&a.head).contains("transfer-encoding"), "none on a 204");
        assert_eq!(framing("HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n"), Framing::Length(0));
        assert_eq!(
            answer("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", true).unwrap().unwrap().framing,
            Framing::Length(0)
        );
        assert_eq!(framing("HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n"), Framing::Informational);

        let a = answer("HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n", false).unwrap().unwrap();
        assert_eq!((a.framing, a.reusable), (Framing::Length(2), false), "HTTP/1.0 closes");
        assert!(a.head.starts_with(b"HTTP/1.1 200 OK\r\n"));
        let a = answer("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n", false).unwrap().unwrap();
        assert!(!a.reusable);

        assert!(answer("HTTP/1.1 200 OK\r\nContent-Le", false).unwrap().is_none(), "incomplete");
        // Other transfer codings: `chunked` last frames the body, else the
        // body ends with the stream and goes on chunked; either way the
        // client gets the codings, as one list, to undo.
        let date = "Date: Thu, 26 Nov 2026 05:00:00 GMT\r\n";
        for (coded, framing, te) in [
            ("Transfer-Encoding: gzip, chunked\r\n", Framing::Chunked(Chunked::default()), "gzip, chunked"),
            (
                "Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n",
                Framing::Chunked(Chunked::default()),
                "gzip, chunked",
            ),
            ("Transfer-Encoding: chunked\r\nTransfer-Encoding: \r\n", Framing::Chunked(Chunked::default()), "chunked"),
            ("Transfer-Encoding: gzip\r\nContent-Length: 4\r\n", Framing::UntilClose, "gzip, chunked"),
            ("Transfer-Encoding: gzip,  br\r\n", Framing::UntilClose, "gzip, br, chunked"),
            (
                "Transfer-Encoding: gzip;level=1\t, chunked\r\n",
                Framing::Chunked(Chunked::default()),
                "gzip;level=1, chunked",
            ),
        ] {
            let a = answer(&format!("HTTP/1.1 200 OK\r\n{coded}{date}\r\n"), false).unwrap().unwrap();
            assert_eq!(a.framing, framing, "{coded:?}");
            assert_eq!(a.reusable, framing != Framing::UntilClose, "{coded:?}");
            let head = format!("HTTP/1.1 200 OK\r\n{date}transfer-encoding: {te}\r\n\r\n");
            assert_eq!(std::str::from_utf8(&a.head).unwrap(), head, "{coded:?}");
        }
        for bad in [
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: \r\n\r\n",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked;x=1\r\n\r\n",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: g zip, chunked\r\n\r\n",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\u{a0}\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\n",
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n",
            "HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n",
        ] {
            assert_eq!(answer(bad, false).unwrap_err(), Invalid, "{bad:?}");
        }
    }

    #[test]
    fn length_framing_counts_down_across_pieces() {
        let mut f = Framing::Length(10);
        assert_eq!(f.take(b"abcd"), Ok((4, false)));
        assert_eq!(f.take(b"efghijklmn"), Ok((6, true)));
        assert_eq!(Framing::Length(0).take(b"next"), Ok((0, true)));
    }

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
                "GET /a?b=1 HTTP/1.1\r\nhost: localhost:3000\r\nAccept: */*\r\nx-forwarded-host: {}\r\n\
                 x-forwarded-proto: https\r\nx-forwarded-for: 1.2.3.4, 10.0.0.7\r\n\r\n",
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
