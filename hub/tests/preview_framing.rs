//! The express lane's HTTP/1.1 framing against hyper's (the general lane),
//! on generated answers and requests, valid and broken: chunked bodies with
//! extensions and trailers, lengths (duplicated, signed, listed), obs-fold,
//! bare LF, oversize heads, HEAD answers, 1xx, 204/304, `Connection:
//! close`, pipelined requests.
//!
//! For an answer, hyper's client reads the app's bytes directly, and reads
//! what the express lane would send the client instead: the status, the
//! headers (after the preview policy, framing headers aside) and the body
//! must be the same, and the express lane may refuse only what hyper
//! refuses too (or what `safe_refusal` lists). Where the express lane ends
//! a body, hyper must end it too: the same bytes cut there read as a whole
//! answer, and one byte shorter do not. For a request the express lane
//! takes, hyper's server must read the same request, without a body, and
//! the next pipelined request where the express lane would.
//!
//! Seeded, so a failure repeats: `AETHER_FUZZ_SEED` picks the seed,
//! `AETHER_FUZZ_CASES` the count (5,000 answers and 20,000 requests by
//! default: a few seconds in a debug build).

use aether_hub::preview::framing::{Framing, parse_answer};
use aether_hub::preview::policy::{self, Seen};
use aether_hub::preview::{Previews, Visibility, express};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use uuid::Uuid;

/// xorshift64*: small, seeded, good enough to pick grammar branches.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }
    fn pick<'a, T: ?Sized>(&mut self, items: &[&'a T]) -> &'a T {
        items[self.below(items.len())]
    }
}

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

const PORT: u16 = 3000;
const HOST: &[u8] = b"3000-p.preview.localhost:8080";

fn seen() -> Seen<'static> {
    Seen { port: PORT, proto: "http", host: HOST }
}

// ---------------------------------------------------------------- answers

/// A generated answer from an app: its bytes, and whether it answers a HEAD.
fn gen_answer(r: &mut Rng) -> (Vec<u8>, bool) {
    let eol: &[u8] = if r.one_in(25) { b"\n" } else { b"\r\n" };
    let mut out = Vec::new();
    if r.one_in(6) {
        let code = r.pick(&["100 Continue", "103 Early Hints", "102 Processing"]);
        out.extend_from_slice(format!("HTTP/1.1 {code}").as_bytes());
        out.extend_from_slice(eol);
        if r.one_in(2) {
            out.extend_from_slice(b"Link: </a.css>; rel=preload");
            out.extend_from_slice(eol);
        }
        out.extend_from_slice(eol);
    }
    let status = r.pick(&[
        "HTTP/1.1 200 OK",
        "HTTP/1.1 200 OK",
        "HTTP/1.1 200 OK",
        "HTTP/1.1 201 Created",
        "HTTP/1.1 204 No Content",
        "HTTP/1.1 304 Not Modified",
        "HTTP/1.1 302 Found",
        "HTTP/1.1 404 Not Found",
        "HTTP/1.0 200 OK",
        "HTTP/1.1 101 Switching Protocols",
        "HTTP/1.1 200",
        "HTTP/1.1 2000 OK",
        "HTTP/1.1  200 OK",
        "HTTP/2 200 OK",
        "HTTP/1.1 099 Low",
        "HTTP/1.1 600 High",
    ]);
    out.extend_from_slice(status.as_bytes());
    out.extend_from_slice(eol);
    let body: Vec<u8> =
        (0..r.pick(&[&0usize, &1, &5, &100, &3000][..]).to_owned()).map(|i| b'a' + (i % 26) as u8).collect();
    let len = body.len();
    let mut chunked = false;
    let mut headers: Vec<String> = Vec::new();
    for _ in 0..r.below(6) {
        let h = match r.below(22) {
            0..=3 => format!("Content-Length: {len}"),
            4 => format!("Content-Length: {}", len + r.below(3)),
            5 => format!("Content-Length: +{len}"),
            6 => format!("Content-Length: {len}, {len}"),
            7 => format!("Content-Length:  {len} "),
            8 | 9 => {
                chunked = true;
                "Transfer-Encoding: chunked".into()
            }
            10 => {
                chunked = true;
                r.pick(&[
                    "Transfer-Encoding: gzip, chunked",
                    "Transfer-Encoding: chunked, gzip",
                    "Transfer-Encoding: Chunked",
                    "Transfer-Encoding: chunked ",
                    "Transfer-Encoding:chunked",
                    "Transfer-Encoding: gzip",
                    "Transfer-Encoding: ",
                    "Transfer-Encoding: chunked;q=1",
                    "Transfer-Encoding : chunked",
                    "Transfer-Encoding: xchunked",
                ])
                .into()
            }
            11 => r.pick(&["Connection: close", "Connection: keep-alive", "Connection: Upgrade"]).into(),
            12 => "Keep-Alive: timeout=5".into(),
            13 => "Upgrade: h2c".into(),
            14 => r
                .pick(&["Location: http://localhost:3000/in?x=1", "Location: /rel", "Location: http://localhost:4000/"])
                .into(),
            15 => r.pick(&["Set-Cookie: a=1; Domain=preview.localhost; Path=/", "Set-Cookie: b=2"]).into(),
            16 => "X-Folded: a\r\n b".into(),
            17 => "Date: Thu, 26 Nov 2026 05:00:00 GMT".into(),
            18 => "X App: 1".into(),
            19 => format!("X-Big: {}", "x".repeat(r.pick(&[&10usize, &9000, &500_000][..]).to_owned())),
            20 => "Trailer: x-sum".into(),
            _ => "Content-Type: text/plain".into(),
        };
        headers.push(h);
    }
    for h in &headers {
        out.extend_from_slice(h.as_bytes());
        out.extend_from_slice(eol);
    }
    out.extend_from_slice(eol);
    if chunked && !r.one_in(8) {
        out.extend_from_slice(&chunk(r, &body));
    } else {
        out.extend_from_slice(&body);
    }
    if r.one_in(4) {
        // What the app sends next, unasked.
        out.extend_from_slice(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nnext");
    }
    (out, r.one_in(8))
}

/// `body` in chunked coding, sometimes with extensions, trailers or a flaw.
fn chunk(r: &mut Rng, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rest = body;
    while !rest.is_empty() {
        let n = (1 + r.below(rest.len().min(1500))).min(rest.len());
        let size = if r.one_in(3) { format!("{n:X}") } else { format!("{n:x}") };
        out.extend_from_slice(size.as_bytes());
        if r.one_in(5) {
            out.extend_from_slice(r.pick(&[&b";ext=1"[..], b"; a=\"b c\"", b" ;x", b"\t;y=z", b" "]));
        }
        out.extend_from_slice(if r.one_in(40) { b"\n" } else { b"\r\n" });
        out.extend_from_slice(&rest[..n]);
        out.extend_from_slice(if r.one_in(40) { b"X\r\n" } else { b"\r\n" });
        rest = &rest[n..];
    }
    out.extend_from_slice(r.pick(&[&b"0\r\n"[..], b"0\r\n", b"000\r\n", b"0;last\r\n", b"0x0\r\n"]));
    if r.one_in(4) {
        out.extend_from_slice(r.pick(&[&b"x-sum: 1\r\n"[..], b"x-a: 1\r\nx-b: 2\r\n", b"bad trailer\r\n"]));
    }
    if !r.one_in(30) {
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// What a client is told of an answer.
#[derive(Debug, Clone)]
enum Told {
    /// No answer: the head was refused (hyper's error, not compared).
    Refused(String),
    /// A head, then a body that ended as it should (`Ok`) or failed.
    Answer { status: u16, headers: Vec<(String, String)>, body: Result<Vec<u8>, String> },
}

impl PartialEq for Told {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Refused(_), Self::Refused(_)) => true,
            (
                Self::Answer { status: s1, headers: h1, body: b1 },
                Self::Answer { status: s2, headers: h2, body: b2 },
            ) => (s1, h1) == (s2, h2) && b1.is_ok() == b2.is_ok() && (b1.is_err() || b1 == b2),
            _ => false,
        }
    }
}

impl Told {
    fn refused(&self) -> bool {
        matches!(self, Self::Refused(_))
    }
}

/// Headers as compared: lower-case names, framing and `Date` aside (each
/// lane frames and dates the answer itself), sorted.
fn comparable(headers: &hyper::HeaderMap) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = headers
        .iter()
        .filter(|(n, _)| !matches!(n.as_str(), "content-length" | "transfer-encoding" | "date"))
        .map(|(n, v)| (n.as_str().to_owned(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
        .collect();
    out.sort();
    out
}

/// What hyper's client makes of `bytes` sent as the answer to a `GET` (or
/// a `HEAD`), with the connection closing after them. With `policy`, the
/// answer's headers go through the preview policy, as on the general lane.
async fn hyper_client(bytes: Vec<u8>, head: bool, policy: bool) -> Told {
    let (client, mut server) = tokio::io::duplex(64 * 1024);
    tokio::spawn(async move {
        // The answer comes after the request, as from an app: hyper takes
        // bytes before it asked for anything as an error.
        let mut request = Vec::new();
        while !request.windows(4).any(|w| w == b"\r\n\r\n") {
            let mut buf = [0u8; 1024];
            match server.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => request.extend_from_slice(&buf[..n]),
            }
        }
        let _ = server.write_all(&bytes).await;
        let _ = server.shutdown().await;
        let mut sink = Vec::new();
        let _ = server.read_to_end(&mut sink).await;
    });
    let told = async move {
        let (mut sender, conn) = match hyper::client::conn::http1::handshake(TokioIo::new(client)).await {
            Ok(c) => c,
            Err(e) => return Told::Refused(e.to_string()),
        };
        tokio::spawn(conn);
        let req = hyper::Request::builder()
            .method(if head { "HEAD" } else { "GET" })
            .uri("/")
            .header("host", "localhost:3000")
            .body(Empty::<Bytes>::new())
            .expect("a request");
        let mut resp = match sender.send_request(req).await {
            Ok(resp) => resp,
            Err(e) => return Told::Refused(format!("{e:?}")),
        };
        if policy {
            policy::answer_headers(resp.headers_mut(), &seen());
        }
        let (status, headers) = (resp.status().as_u16(), comparable(resp.headers()));
        let body = resp.into_body().collect().await.map(|b| b.to_bytes().to_vec()).map_err(|e| e.to_string());
        Told::Answer { status, headers, body }
    };
    tokio::time::timeout(Duration::from_secs(10), told).await.expect("hyper answers within 10 s")
}

/// What the express lane does with an app's answer: `None` if it refuses
/// the head, else the bytes it sends the client and where in `data` the
/// answer ended (`None`: with the stream, or the body failed).
fn express_answer(data: &[u8], head: bool, r: &mut Rng) -> Option<(Vec<u8>, Option<usize>)> {
    let mut at = 0;
    let answer = loop {
        let a = parse_answer(&data[at..], head, seen()).ok()??;
        // A head far past the limit is refused before it is complete.
        if at + a.len > MAX_ANSWER_HEAD {
            return None;
        }
        if a.framing != Framing::Informational {
            break a;
        }
        at += a.len;
    };
    let mut out = answer.head.to_vec();
    let mut framing = answer.framing;
    let rechunk = framing == Framing::UntilClose;
    let mut rest = &data[at + answer.len..];
    let mut taken = at + answer.len;
    // In pieces, as a tunnel stream delivers them.
    while !rest.is_empty() {
        let piece = &rest[..(1 + r.below(rest.len())).min(rest.len())];
        let Ok((n, done)) = framing.take(piece) else { return Some((out, None)) };
        if rechunk {
            out.extend_from_slice(format!("{n:x}\r\n").as_bytes());
            out.extend_from_slice(&piece[..n]);
            out.extend_from_slice(b"\r\n");
        } else {
            out.extend_from_slice(&piece[..n]);
        }
        taken += n;
        rest = &rest[n..];
        if done {
            return Some((out, Some(taken)));
        }
        if n < piece.len() {
            break;
        }
    }
    match framing.take(&[]) {
        Ok((_, true)) => Some((out, Some(taken))),
        _ if rechunk => {
            out.extend_from_slice(b"0\r\n\r\n");
            Some((out, None))
        }
        // The stream ended mid-body: the client's connection closes.
        _ => Some((out, None)),
    }
}

/// Refusals of the express lane that hyper's client doesn't make, and why
/// each is safe: the client gets a 502 instead of an answer that one reader
/// or another (a cache, a browser, a proxy in front) could frame another
/// way. `None`: not a known one.
fn safe_refusal(data: &[u8]) -> Option<&'static str> {
    let text = String::from_utf8_lossy(data).to_ascii_lowercase().replace("\r\n", "\n");
    // The final answer's head, after any 1xx.
    let informational = |h: &&str| {
        h.starts_with("http/1.1 1") && !h.starts_with("http/1.1 101") && h.len() > 12 && h.as_bytes()[12] == b' '
    };
    let head = text.split("\n\n").find(|h| !informational(h)).unwrap_or_default();
    let values = |name: &str| -> Vec<String> {
        head.lines()
            .filter_map(|l| l.split_once(':'))
            .filter(|(n, _)| *n == name)
            .flat_map(|(_, v)| v.split(',').map(|c| c.trim().to_owned()).collect::<Vec<_>>())
            .collect()
    };
    let codings = values("transfer-encoding");
    let lengths = values("content-length");
    if head.contains("101 switching") {
        return Some("nothing on this lane asked to switch protocols");
    }
    if head.starts_with("http/1.0") && !codings.is_empty() {
        return Some("a transfer coding in an HTTP/1.0 answer is faulty framing (RFC 9112 §6.1)");
    }
    if codings.iter().filter(|c| *c == "chunked").count() > 1 {
        return Some("chunked twice: hyper decodes it once, RFC 9112 §6.1 forbids it");
    }
    if codings.iter().position(|c| c == "chunked").is_some_and(|i| i + 1 < codings.len()) {
        return Some("chunked not last: hyper reads to the close, a cache may not");
    }
    if codings.iter().any(|c| c.starts_with("chunked") && c != "chunked") {
        return Some("parameters on chunked are not allowed (RFC 9112 §7)");
    }
    let mut te_lines = head.lines().filter_map(|l| l.strip_prefix("transfer-encoding:"));
    if te_lines.any(|v| v.split(',').all(|c| c.trim().is_empty())) {
        return Some("a Transfer-Encoding line that names no coding: readers take the others or not");
    }
    if lengths.iter().any(|l| l.is_empty() || !l.bytes().all(|b| b.is_ascii_digit())) {
        return Some("a Content-Length that isn't a number, even beside a Transfer-Encoding that hyper goes by");
    }
    let mut distinct = lengths.clone();
    distinct.sort();
    distinct.dedup();
    if distinct.len() > 1 {
        return Some("Content-Lengths that differ (RFC 9112 §6.3: unrecoverable); hyper's client reads no body");
    }
    if lengths.len() > 1 && head.lines().filter(|l| l.starts_with("content-length:")).any(|l| l.contains(',')) {
        return Some("a Content-Length list (`5, 5`): hyper takes equal values, the lane one number");
    }
    None
}

/// The longest answer head the express lane reads (`express::MAX_ANSWER_HEAD`).
const MAX_ANSWER_HEAD: usize = 400 * 1024;

#[tokio::test]
async fn the_express_lanes_answer_framing_agrees_with_hypers() {
    let seed = env_or("AETHER_FUZZ_SEED", 0x5eed_2026);
    let cases = env_or("AETHER_FUZZ_CASES", 5000);
    let mut r = Rng(seed | 1);
    let (mut agreed, mut safe, mut unasked) = (0, 0, 0);
    for case in 0..cases {
        let (data, head) = gen_answer(&mut r);
        let shown = || String::from_utf8_lossy(&data[..data.len().min(600)]).into_owned();
        let express = express_answer(&data, head, &mut r);
        let mut direct = hyper_client(data.clone(), head, true).await;
        // Bytes after the answer that nobody asked for: hyper fails the
        // connection (at times before handing over the answer), the express
        // lane forwards the answer and never reuses that connection. Either
        // way nothing reads them as an answer; hyper's reading of the answer
        // alone is compared.
        if let (Some((_, Some(end))), Told::Refused(e)) = (&express, &direct)
            && *end < data.len()
            && e.contains("UnexpectedMessage")
        {
            direct = hyper_client(data[..*end].to_vec(), head, true).await;
            unasked += 1;
        }
        let Some((sent, ended)) = express else {
            if !direct.refused() {
                assert!(
                    safe_refusal(&data).is_some(),
                    "case {case}: express refuses what hyper reads: {direct:?}\n{}",
                    shown()
                );
                safe += 1;
            }
            continue;
        };
        let via = hyper_client(sent.clone(), head, false).await;
        match (&direct, &via) {
            (Told::Refused(e), _) => panic!(
                "case {case}: express takes what hyper refuses ({e}) ended {ended:?} of {}\n{}",
                data.len(),
                shown()
            ),
            (
                Told::Answer { status: s1, headers: h1, body: b1 },
                Told::Answer { status: s2, headers: h2, body: b2 },
            ) => {
                assert_eq!((s1, h1), (s2, h2), "case {case}: head\n{}", shown());
                match (b1, b2) {
                    (Ok(a), Ok(b)) => assert_eq!(a, b, "case {case}: body\n{}", shown()),
                    // Both cut short; the client sees a broken answer either way.
                    (Err(_), Err(_)) => {}
                    (Ok(_), Err(e)) if ended.is_none() => {
                        panic!("case {case}: express breaks a body hyper reads ({e})\n{}", shown())
                    }
                    _ => panic!("case {case}: bodies {b1:?} / {b2:?}\n{}", shown()),
                }
            }
            (_, Told::Refused(e)) => {
                panic!("case {case}: hyper can't read the express lane's answer ({e})\n{}", shown())
            }
        }
        // Where the express lane ends the answer, so does hyper: what
        // follows is not read as this answer's (nor, on a kept
        // connection, taken for the next one's start by only one of them).
        if let Some(end) = ended
            && let Told::Answer { body: Ok(body), .. } = &direct
            && !body.is_empty()
        {
            let cut = hyper_client(data[..end].to_vec(), head, true).await;
            assert_eq!(cut, direct, "case {case}: hyper ends the answer later\n{}", shown());
            let short = hyper_client(data[..end - 1].to_vec(), head, true).await;
            assert!(
                !matches!(&short, Told::Answer { body: Ok(b), .. } if b == body),
                "case {case}: hyper ends the answer earlier\n{}",
                shown()
            );
        }
        agreed += 1;
    }
    assert!(agreed > cases / 5, "too few answers read by both: {agreed} of {cases}");
    eprintln!(
        "{cases} answers: {agreed} read alike ({unasked} with bytes after them), \
         {safe} refused by the express lane only (listed as safe)"
    );
}

// --------------------------------------------------------------- requests

/// A generated request head for a public preview (often one the express
/// lane takes), then a second request pipelined after it.
fn gen_request(r: &mut Rng, host: &str) -> Vec<u8> {
    let eol: &[u8] = if r.one_in(25) { b"\n" } else { b"\r\n" };
    let mut out = Vec::new();
    let method = r.pick(&["GET", "GET", "GET", "GET", "GET", "HEAD", "POST", "get", "GET "]);
    let path = r.pick(&["/", "/", "/", "/a?b=1", "/x/y.css", "*", "http://x/", "/a b", "/%7e"]);
    let version = r.pick(&["HTTP/1.1", "HTTP/1.1", "HTTP/1.1", "HTTP/1.0", "HTTP/1.2", "HTTP/11"]);
    out.extend_from_slice(format!("{method} {path} {version}").as_bytes());
    out.extend_from_slice(eol);
    let mut lines: Vec<String> = vec![format!("Host: {host}")];
    for _ in 0..r.below(4) {
        lines.push(match r.below(20) {
            0 => "Content-Length: 0".into(),
            1 => "Content-Length: 5".into(),
            2 => "Transfer-Encoding: chunked".into(),
            3 => "Transfer-Encoding : chunked".into(),
            4 => "X-Folded: a\r\n Transfer-Encoding: chunked".into(),
            5 => "Transfer_Encoding: chunked".into(),
            6 => r.pick(&["Connection: keep-alive", "Connection: close", "Connection: upgrade"]).into(),
            7 => format!("Host: {host}"),
            8 => "Cookie: theme=dark; aether_preview=x".into(),
            9 => "Accept: text/html".into(),
            10 => "X-Forwarded-For: 1.2.3.4".into(),
            11 => "X-Forwarded-Host: evil".into(),
            12 => "Authorization: Bearer t".into(),
            13 => "Expect: 100-continue".into(),
            14 => format!("X-Big: {}", "x".repeat(r.pick(&[&10usize, &17_000][..]).to_owned())),
            15 => "Upgrade: websocket".into(),
            16 => "Content-Length: 0\r\nContent-Length: 5".into(),
            17 => "X\u{7f}: 1".into(),
            18 => "Te: trailers".into(),
            _ => "User-Agent: fuzz".into(),
        });
    }
    let n = lines.len();
    for _ in 0..n {
        let i = r.below(n);
        let j = r.below(n);
        lines.swap(i, j);
    }
    for l in &lines {
        out.extend_from_slice(l.as_bytes());
        out.extend_from_slice(eol);
    }
    out.extend_from_slice(eol);
    out
}

/// A request as hyper's server read it.
#[derive(Debug, Clone)]
struct Seen2 {
    method: String,
    path: String,
    headers: hyper::HeaderMap,
    body: Vec<u8>,
}

/// The requests hyper's server reads from `bytes` (pipelined), with the
/// client closing after them.
async fn hyper_server(bytes: Vec<u8>) -> Vec<Seen2> {
    let (mut client, server) = tokio::io::duplex(64 * 1024);
    let seen: Arc<Mutex<Vec<Seen2>>> = Arc::default();
    let log = seen.clone();
    let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
        let log = log.clone();
        async move {
            let (parts, body) = req.into_parts();
            let body = body.collect().await.map(|b| b.to_bytes().to_vec()).unwrap_or_default();
            log.lock().unwrap().push(Seen2 {
                method: parts.method.to_string(),
                path: parts.uri.to_string(),
                headers: parts.headers,
                body,
            });
            Ok::<_, std::convert::Infallible>(hyper::Response::new(Empty::<Bytes>::new()))
        }
    });
    // Half-close: the client's end of input is not the end of its requests.
    let served =
        hyper::server::conn::http1::Builder::new().half_close(true).serve_connection(TokioIo::new(server), service);
    let talk = async move {
        let _ = client.write_all(&bytes).await;
        let _ = client.shutdown().await;
        let mut sink = Vec::new();
        let _ = client.read_to_end(&mut sink).await;
    };
    // hyper's error, if any, shows in what it read.
    let both = async {
        let (_, ()) = tokio::join!(served, talk);
    };
    tokio::time::timeout(Duration::from_secs(10), both).await.expect("hyper serves within 10 s");
    seen.lock().unwrap().clone()
}

/// Headers of a head the express lane sends the app, sorted.
fn head_headers(head: &[u8]) -> Vec<(String, String)> {
    let mut headers = [httparse::EMPTY_HEADER; 80];
    let mut req = httparse::Request::new(&mut headers);
    assert!(matches!(req.parse(head), Ok(httparse::Status::Complete(_))), "{}", String::from_utf8_lossy(head));
    let mut out: Vec<(String, String)> = req
        .headers
        .iter()
        .map(|h| (h.name.to_ascii_lowercase(), String::from_utf8_lossy(h.value).into_owned()))
        .collect();
    out.sort();
    out
}

#[tokio::test]
async fn a_request_the_express_lane_takes_is_read_alike_by_hyper_and_ends_where_it_says() {
    let seed = env_or("AETHER_FUZZ_SEED", 0x5eed_2026);
    let cases = env_or("AETHER_FUZZ_CASES", 20_000);
    let mut r = Rng(seed.rotate_left(17) | 1);
    let previews = Previews::new("preview.localhost".into(), "http://127.0.0.1:8080", b"k");
    let project = Uuid::new_v4();
    previews.remember_visibility(project, PORT, Visibility::Public);
    let host = format!("{PORT}-{project}.preview.localhost:8080");
    let next = format!("GET /next HTTP/1.1\r\nHost: {host}\r\n\r\n");
    let mut taken = 0;
    for case in 0..cases {
        let mut data = gen_request(&mut r, &host);
        let Some((len, head)) = express::taken(&data, &previews, |p| p == project) else { continue };
        taken += 1;
        assert_eq!(len, data.len(), "case {case}: the head ends where the request does");
        data.extend_from_slice(next.as_bytes());
        let shown = || String::from_utf8_lossy(&data).into_owned();
        let read = hyper_server(data.clone()).await;
        assert!(read.len() == 2, "case {case}: hyper read {} requests, not 2: {read:?}\n{}", read.len(), shown());
        assert!(read[0].body.is_empty(), "case {case}: hyper reads a body\n{}", shown());
        assert_eq!(read[1].path, "/next", "case {case}\n{}", shown());
        let line = String::from_utf8_lossy(&head).lines().next().unwrap_or_default().to_owned();
        assert_eq!(line, format!("{} {} HTTP/1.1", read[0].method, read[0].path), "case {case}\n{}", shown());
        // The same policy on hyper's reading gives the same head.
        let mut hyper_head = format!("{line}\r\n").into_bytes();
        let policed = policy::request_headers(&read[0].headers, PORT, "http", Some("10.0.0.7"), false, |_| false);
        for (n, v) in &policed {
            hyper_head.extend_from_slice(format!("{n}: ").as_bytes());
            hyper_head.extend_from_slice(v.as_bytes());
            hyper_head.extend_from_slice(b"\r\n");
        }
        hyper_head.extend_from_slice(b"\r\n");
        assert_eq!(head_headers(&head), head_headers(&hyper_head), "case {case}\n{}", shown());
    }
    assert!(taken > cases / 50, "too few requests for the express lane: {taken} of {cases}");
    eprintln!("{cases} requests: {taken} taken by the express lane, each read alike by hyper");
}
