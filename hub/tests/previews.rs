//! Previews through the real hub and aetherd, with a real web app started
//! inside the VM from a terminal.

mod support;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use support::{Api, Term, TestHub};
use tokio_tungstenite::tungstenite::Message;

const SERVER: &str = include_str!("fixtures/preview_server.py");

struct Preview {
    host: String,
    base: String,
    client: reqwest::Client,
}

impl Preview {
    /// The preview of `port`, reached the way a browser resolves `*.localhost`.
    fn new(hub: &TestHub, project: &str, port: u16) -> Self {
        let hub_addr: SocketAddr = hub.http.trim_start_matches("http://").parse().unwrap();
        let name = format!("{port}-{project}.preview.localhost");
        let client = reqwest::Client::builder()
            .resolve(&name, hub_addr)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        Self { host: format!("{name}:{}", hub_addr.port()), base: format!("http://{name}:{}", hub_addr.port()), client }
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(format!("{}{path}", self.base)).send().await.unwrap()
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Puts the test app in the VM and starts it from a terminal; waits until
/// the port list shows it and returns how long that took.
async fn start_app(api: &Api, hub: &TestHub, project: &str, port: u16) -> (Term, Duration) {
    let r = reqwest::Client::new()
        .put(format!("{}/api/projects/{project}/files?path=server.py", hub.http))
        .bearer_auth(api.token.as_deref().unwrap())
        .body(SERVER)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let mut t = api.terminal(project, "&session=app").await;
    t.until("prompt", |t| t.offset > 0).await;
    let started = Instant::now();
    t.send(&format!("python3 server.py {port}\n")).await;
    wait_port(api, project, port, true).await;
    (t, started.elapsed())
}

async fn wait_port(api: &Api, project: &str, port: u16, present: bool) -> Value {
    support::eventually("port list", Duration::from_secs(10), || async {
        let (_, list) = api.get(&format!("/api/projects/{project}/ports")).await;
        let found = list.as_array().unwrap().iter().find(|p| p["port"] == port).cloned();
        match (found, present) {
            (Some(p), true) => Some(p),
            (None, false) => Some(Value::Null),
            _ => None,
        }
    })
    .await
}

async fn set_visibility(api: &Api, project: &str, port: u16, v: &str) {
    let (s, body) = api.patch(&format!("/api/projects/{project}/ports/{port}"), json!({"visibility": v})).await;
    assert_eq!((s, body["visibility"].as_str()), (200, Some(v)), "{body}");
}

/// A signed-in user's running project with the test app on a free port,
/// made public: (user, project, port, the app's terminal).
async fn public_app(hub: &TestHub) -> (Api, String, u16, Term) {
    let api = hub.user().await;
    let id = api.running_project().await;
    let port = free_port();
    let (app, _) = start_app(&api, hub, &id, port).await;
    set_visibility(&api, &id, port, "public").await;
    (api, id, port, app)
}

#[tokio::test]
async fn a_public_preview_serves_pages_bodies_sse_and_websockets() {
    let hub = TestHub::start().await;
    let api = hub.user().await;
    let id = api.running_project().await;
    let port = free_port();
    let (mut app, took) = start_app(&api, &hub, &id, port).await;
    assert!(took < Duration::from_secs(2), "the port showed up after {took:?}");
    let listed = wait_port(&api, &id, port, true).await;
    assert_eq!(listed["process"], "python3", "{listed}");
    assert_eq!(listed["visibility"], "private");
    set_visibility(&api, &id, port, "public").await;
    let p = Preview::new(&hub, &id, port);
    assert_eq!(listed["preview_url"], format!("{}/", p.base));

    let r = p.get("/").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "<h1>hello from the vm</h1>");

    let upload: Vec<u8> = (0..20u32 << 20).map(|i| (i.wrapping_mul(2654435761) >> 24) as u8).collect();
    let r = p.client.post(format!("{}/echo", p.base)).body(upload.clone()).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(Sha256::digest(r.bytes().await.unwrap()), Sha256::digest(&upload), "upload echoed byte-identical");
    let big = p.get("/big").await.bytes().await.unwrap();
    let expected: Vec<u8> = (0..20 << 20).map(|i| (i % 256) as u8).collect();
    assert_eq!(Sha256::digest(&big), Sha256::digest(&expected), "download byte-identical");

    // Server-Sent Events arrive one by one, as they are sent.
    let mut sse = p.get("/sse").await;
    assert_eq!(sse.headers()["content-type"], "text/event-stream");
    let mut seen = String::new();
    while !seen.contains("data: one") {
        let chunk = tokio::time::timeout(support::DEADLINE, sse.chunk()).await.unwrap().unwrap().unwrap();
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(!seen.contains("two"), "the second event is not sent yet");
    assert_eq!(p.get("/release").await.status(), 200);
    while !seen.contains("data: two") {
        let chunk = tokio::time::timeout(support::DEADLINE, sse.chunk()).await.unwrap().unwrap().unwrap();
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }

    // A WebSocket echo through the preview host.
    let tcp = tokio::net::TcpStream::connect(hub.http.trim_start_matches("http://")).await.unwrap();
    let req = format!("ws://{}/ws", p.host);
    let (mut ws, resp) = tokio_tungstenite::client_async(req, tcp).await.unwrap();
    assert_eq!(resp.status(), 101);
    for msg in ["hello", "through the tunnel"] {
        ws.send(Message::Text(msg.into())).await.unwrap();
        let back = tokio::time::timeout(support::DEADLINE, ws.next()).await.unwrap().unwrap().unwrap();
        assert_eq!(back.into_text().unwrap().as_str(), msg);
    }

    // The app sees localhost as its host and the forwarding headers.
    let h: Value = p.get("/headers").await.json().await.unwrap();
    assert_eq!(h["host"][0], format!("localhost:{port}"));
    assert_eq!(h["x-forwarded-host"][0], p.host);
    assert_eq!(h["x-forwarded-proto"][0], "http");
    assert_eq!(h["x-forwarded-for"][0], "127.0.0.1");
    // The origin reaches the app as sent, matching `X-Forwarded-Host` (what
    // Next.js's server actions and Rails' forgery check compare). A redirect
    // to the app as it sees itself lands on the preview. On each lane:
    // `Connection: close` is the general lane's.
    for close in [false, true] {
        let get = |path: &str| {
            let r = p.client.get(format!("{}{path}", p.base));
            if close { r.header("connection", "close") } else { r }
        };
        let h: Value = get("/headers").header("origin", &p.base).send().await.unwrap().json().await.unwrap();
        assert_eq!(h["origin"], json!([p.base]), "close: {close}");
        assert_eq!(h["x-forwarded-host"], json!([p.host]), "close: {close}");
        let r = get("/redirect").send().await.unwrap();
        assert_eq!(r.status(), 302);
        assert_eq!(r.headers()["location"], format!("{}/landed?from=app", p.base).as_str(), "close: {close}");
        // The app's cookies stay on its preview's host: no `Domain`.
        let r = get("/cookies").send().await.unwrap();
        let set: Vec<_> = r.headers().get_all("set-cookie").iter().map(|v| v.to_str().unwrap().to_owned()).collect();
        assert_eq!(set, ["wide=1; Path=/", "local=2; Path=/; HttpOnly", "own=3; Path=/"], "close: {close}");
    }

    // Stopping the server drops it from the list within 2 s.
    app.send("\u{3}").await;
    let stopped = Instant::now();
    wait_port(&api, &id, port, false).await;
    assert!(stopped.elapsed() < Duration::from_secs(2), "dropped after {:?}", stopped.elapsed());
    let r = p.client.get(format!("{}/", p.base)).header("accept", "application/json").send().await.unwrap();
    assert_eq!(r.status(), 502);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "bad_gateway");
    let r = p.client.get(format!("{}/", p.base)).header("accept", "text/html").send().await.unwrap();
    assert_eq!(r.status(), 502);
    assert!(r.text().await.unwrap().contains("Nothing is listening"));
}

/// One HTTP/1.1 connection to the hub, requests sent one after another.
struct ClientConn(hyper::client::conn::http1::SendRequest<String>);

impl ClientConn {
    async fn open(hub: &TestHub) -> Self {
        let tcp = tokio::net::TcpStream::connect(hub.http.trim_start_matches("http://")).await.unwrap();
        let (sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp)).await.unwrap();
        tokio::spawn(conn);
        Self(sender)
    }

    /// GET `path` with `host` as Host: (status, body).
    async fn get(&mut self, host: &str, path: &str) -> (u16, String) {
        let (status, _, body) = self.send("GET", host, path, "").await;
        (status, body)
    }

    /// Any request: (status, headers, body).
    async fn send(&mut self, method: &str, host: &str, path: &str, body: &str) -> (u16, hyper::HeaderMap, String) {
        let (status, headers, body) = self.send_raw(method, host, path, body).await;
        (status, headers, String::from_utf8_lossy(&body).into_owned())
    }

    /// Any request: (status, headers, body's bytes).
    async fn send_raw(
        &mut self,
        method: &str,
        host: &str,
        path: &str,
        body: &str,
    ) -> (u16, hyper::HeaderMap, hyper::body::Bytes) {
        use http_body_util::BodyExt;
        self.0.ready().await.expect("the hub kept the connection open");
        let req =
            hyper::Request::builder().method(method).uri(path).header("host", host).body(body.to_owned()).unwrap();
        let resp = tokio::time::timeout(support::DEADLINE, self.0.send_request(req)).await.unwrap().unwrap();
        let (parts, body) = resp.into_parts();
        (parts.status.as_u16(), parts.headers, body.collect().await.unwrap().to_bytes())
    }

    /// Starts the app's event stream and waits for its first event; the
    /// answer stays open (holding its tunnel stream) while the body lives.
    async fn open_events(&mut self, host: &str) -> hyper::body::Incoming {
        use http_body_util::BodyExt;
        self.0.ready().await.unwrap();
        let req = hyper::Request::get("/sse").header("host", host).body(String::new()).unwrap();
        let resp = tokio::time::timeout(support::DEADLINE, self.0.send_request(req)).await.unwrap().unwrap();
        assert_eq!(resp.status(), 200);
        let mut body = resp.into_body();
        let first = tokio::time::timeout(support::DEADLINE, body.frame()).await.unwrap().unwrap().unwrap();
        assert!(first.data_ref().is_some_and(|d| d.starts_with(b"data: one")));
        body
    }
}

#[tokio::test]
async fn a_client_connection_keeps_its_connection_to_the_app_and_mixes_hosts() {
    let hub = TestHub::start().await;
    let (_api, id, port, _app) = public_app(&hub).await;
    let preview = Preview::new(&hub, &id, port).host;
    let hub_host = hub.http.trim_start_matches("http://").to_owned();

    // Keep-alive requests on one client connection reach the app on one
    // connection, like any reverse proxy's upstream keep-alive.
    let mut a = ClientConn::open(&hub).await;
    let (s, first) = a.get(&preview, "/peer").await;
    assert_eq!(s, 200, "{first}");
    for _ in 0..3 {
        assert_eq!(a.get(&preview, "/peer").await, (200, first.clone()));
    }
    // The API on the same connection, then the preview again.
    assert_eq!(a.get(&hub_host, "/healthz").await, (200, "ok".into()));
    assert_eq!(a.get(&preview, "/peer").await, (200, first.clone()));

    // Another client connection has its own.
    let mut b = ClientConn::open(&hub).await;
    let (s, second) = b.get(&preview, "/peer").await;
    assert_eq!(s, 200);
    assert_ne!(second, first);

    // The app closing its connection costs the client nothing: the next
    // request goes on a new one.
    assert_eq!(a.get(&preview, "/close").await, (200, "closed".into()));
    let (s, third) = a.get(&preview, "/peer").await;
    assert_eq!(s, 200, "{third}");
    assert_ne!(third, first);

    // A connection that starts with the API can ask for a preview too.
    let mut c = ClientConn::open(&hub).await;
    assert_eq!(c.get(&hub_host, "/healthz").await, (200, "ok".into()));
    assert_eq!(c.get(&preview, "/").await, (200, "<h1>hello from the vm</h1>".into()));
}

#[tokio::test]
async fn every_kind_of_request_and_answer_keeps_the_connection_and_its_app_connection() {
    use http_body_util::BodyExt;
    let hub = TestHub::start().await;
    let (_api, id, port, _app) = public_app(&hub).await;
    let preview = Preview::new(&hub, &id, port).host;
    let mut a = ClientConn::open(&hub).await;
    let (s, peer) = a.get(&preview, "/peer").await;
    assert_eq!(s, 200, "{peer}");

    // A HEAD answer has its length but no body, and the connection goes on.
    let (s, headers, body) = a.send("HEAD", &preview, "/", "").await;
    assert_eq!((s, headers["content-length"].to_str().unwrap(), body.as_str()), (200, "26", ""));
    // Early hints are passed on, then the answer.
    assert_eq!(a.get(&preview, "/hints").await, (200, "after hints".into()));

    // Chunked events arrive one by one, as they are sent, and the
    // connection to the app is kept after the last chunk.
    a.0.ready().await.unwrap();
    let req = hyper::Request::get("/chunked").header("host", &preview).body(String::new()).unwrap();
    let resp = tokio::time::timeout(support::DEADLINE, a.0.send_request(req)).await.unwrap().unwrap();
    assert_eq!(resp.status(), 200);
    let mut body = resp.into_body();
    let frame = tokio::time::timeout(support::DEADLINE, body.frame()).await.unwrap().unwrap().unwrap();
    assert_eq!(frame.data_ref().map(|d| &d[..]), Some(&b"data: one\n\n"[..]), "the first event alone");
    let mut b = ClientConn::open(&hub).await;
    assert_eq!(b.get(&preview, "/release").await.0, 200);
    let mut rest = Vec::new();
    let mut trailers = None;
    while let Some(frame) = tokio::time::timeout(support::DEADLINE, body.frame()).await.unwrap() {
        let frame = frame.unwrap();
        match frame.into_data() {
            Ok(d) => rest.extend_from_slice(&d),
            Err(f) => trailers = f.into_trailers().ok(),
        }
    }
    assert_eq!(rest, b"data: two\n\n");
    assert_eq!(trailers.map(|t| t["x-events"].clone()), Some(hyper::header::HeaderValue::from_static("2")));
    assert_eq!(a.get(&preview, "/peer").await, (200, peer.clone()), "the same connection to the app");

    // An answer that isn't HTTP is a 502, and the app was asked once.
    let (s, _, body) = a.send("GET", &preview, "/garbage", "").await;
    assert_eq!(s, 502, "{body}");
    assert!(body.contains("bad_gateway"), "{body}");
    assert_eq!(a.get(&preview, "/garbage-count").await, (200, "1".into()));

    // Gzip as a transfer coding, with chunked after it or ending with the
    // app's connection: the client gets the codings and the body to undo
    // them, and the app was asked once each.
    for path in ["/coded", "/coded-close"] {
        let (s, headers, body) = a.send_raw("GET", &preview, path, "").await;
        assert_eq!(s, 200, "{path}");
        assert_eq!(headers.get_all("transfer-encoding").iter().collect::<Vec<_>>(), ["gzip, chunked"], "{path}");
        let mut text = String::new();
        std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&body[..]), &mut text).unwrap();
        assert_eq!(text, "coded ".repeat(1000), "{path}");
    }
    assert_eq!(a.get(&preview, "/coded-count").await, (200, "2".into()));

    // Bytes after an answer that no one asked for are never taken for the
    // next answer.
    assert_eq!(a.get(&preview, "/extra").await, (200, "ok".into()));
    assert_eq!(a.get(&preview, "/").await, (200, "<h1>hello from the vm</h1>".into()));
    let (s, peer) = a.get(&preview, "/peer").await;
    assert_eq!(s, 200);

    // A request with a body, then plain ones again: still one connection to
    // the app.
    let (s, _, echoed) = a.send("POST", &preview, "/echo", "posted").await;
    assert_eq!((s, echoed.as_str()), (200, "posted"));
    assert_eq!(a.get(&preview, "/peer").await, (200, peer.clone()));
    assert_eq!(a.get(&preview, "/").await, (200, "<h1>hello from the vm</h1>".into()));
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let hub = TestHub::start().await;
    let (_api, id, port, _app) = public_app(&hub).await;
    let host = Preview::new(&hub, &id, port).host;
    let mut tcp = tokio::net::TcpStream::connect(hub.http.trim_start_matches("http://")).await.unwrap();
    // Two plain requests, one with a body, and a plain one again, in one write.
    let requests = format!(
        "GET / HTTP/1.1\r\nHost: {host}\r\n\r\nGET /missing HTTP/1.1\r\nHost: {host}\r\n\r\n\
         POST /echo HTTP/1.1\r\nHost: {host}\r\nContent-Length: 7\r\n\r\nposted!\
         GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    );
    tcp.write_all(requests.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    tokio::time::timeout(support::DEADLINE, tcp.read_to_end(&mut got)).await.unwrap().unwrap();
    let got = String::from_utf8_lossy(&got);
    let at =
        |needle: &str, from: usize| from + got[from..].find(needle).unwrap_or_else(|| panic!("{needle:?} in {got}"));
    let first = at("<h1>hello from the vm</h1>", 0);
    let second = at("HTTP/1.1 404", first);
    let third = at("posted!", second);
    at("<h1>hello from the vm</h1>", third);
    assert_eq!(got.matches("HTTP/1.1 ").count(), 4, "{got}");
}

#[tokio::test]
async fn a_flood_of_preview_connections_leaves_streams_for_terminals() {
    let hub = TestHub::start_with(&[("AETHER_PREVIEW_STREAMS", "2")]).await;
    let (_api, id, port, mut app) = public_app(&hub).await;
    let preview = Preview::new(&hub, &id, port).host;

    // One connection busy with a long answer, one idle after a request.
    let mut a = ClientConn::open(&hub).await;
    let events = a.open_events(&preview).await;
    let mut b = ClientConn::open(&hub).await;
    assert_eq!(b.get(&preview, "/").await.0, 200);
    let mut c = ClientConn::open(&hub).await;
    let (s, body) = c.get(&preview, "/").await;
    assert_eq!(s, 429, "{body}");
    assert!(body.contains("rate_limited"), "{body}");
    // The project's terminals are untouched.
    app.send("echo still-here\n").await;
    app.until("echo", |t| t.text().contains("still-here\r\n")).await;

    // An idle client connection lets its stream go (b stays open)...
    support::eventually("the idle connection's stream", Duration::from_secs(20), || async {
        let mut d = ClientConn::open(&hub).await;
        (d.get(&preview, "/").await.0 == 200).then_some(())
    })
    .await;
    assert_eq!(b.get(&preview, "/").await.0, 200, "and gets one again when it asks");
    // ... but a busy one keeps it until its answer ends.
    let (s, _) = ClientConn::open(&hub).await.get(&preview, "/").await;
    assert_eq!(s, 429, "a's answer and b's request hold both streams");
    drop(events);
    drop(a);
    drop(b);
    support::eventually("a freed preview stream", support::DEADLINE, || async {
        let mut d = ClientConn::open(&hub).await;
        (d.get(&preview, "/").await.0 == 200).then_some(())
    })
    .await;

    // A client that leaves while its request waits for a slow answer lets
    // its stream go without waiting for the answer (30 s away).
    let mut waiting = Vec::new();
    for _ in 0..2 {
        waiting.push(unread(&hub, &preview, "GET /slow HTTP/1.1").await);
    }
    let deadline = Instant::now() + support::DEADLINE;
    loop {
        // A request that came while a probe's closed connection still held
        // its stream was answered (429): it goes again.
        for tcp in &mut waiting {
            if answered(tcp) {
                *tcp = unread(&hub, &preview, "GET /slow HTTP/1.1").await;
            }
        }
        let (s, _) = ClientConn::open(&hub).await.get(&preview, "/").await;
        if s == 429 && !waiting.iter().any(answered) {
            break;
        }
        assert!(Instant::now() < deadline, "timed out waiting for both streams taken");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    drop(waiting);
    support::eventually("a freed preview stream", support::DEADLINE, || async {
        let mut d = ClientConn::open(&hub).await;
        (d.get(&preview, "/").await.0 == 200).then_some(())
    })
    .await;
}

/// A client that stops reading a large answer is let go after the send
/// timeout, on either lane, and its tunnel stream (the only one here) with
/// it; the next client is served.
#[tokio::test]
async fn a_client_that_stops_reading_lets_go_of_its_stream() {
    let hub = TestHub::start_with(&[("AETHER_PREVIEW_STREAMS", "1"), ("AETHER_SEND_TIMEOUT", "1")]).await;
    let (_api, id, port, _app) = public_app(&hub).await;
    let preview = Preview::new(&hub, &id, port).host;
    // HTTP/1.1 takes the express lane; HTTP/1.0 is the general lane's.
    for version in ["HTTP/1.1", "HTTP/1.0"] {
        // Reads the answer's status line, then nothing more. The last probe's
        // connection may hold the stream a moment after it closed: a 429 then,
        // and the request goes again.
        let stalled = support::eventually(&format!("the stalled answer ({version})"), support::DEADLINE, || async {
            let mut tcp = unread(&hub, &preview, &format!("GET /big {version}")).await;
            let mut head = Vec::new();
            while !head.windows(2).any(|w| w == b"\r\n") {
                let n = tokio::io::AsyncReadExt::read_buf(&mut tcp, &mut head).await.unwrap();
                assert!(n > 0, "the hub closed the connection");
            }
            let status = String::from_utf8_lossy(&head).split(' ').nth(1).map(str::to_owned);
            (status.as_deref() == Some("200")).then_some(tcp)
        })
        .await;
        // 20 MiB are more than the sockets between the hub and this client
        // hold: the stream stays taken while the hub waits to send.
        let (s, _) = ClientConn::open(&hub).await.get(&preview, "/").await;
        assert_eq!(s, 429, "the stalled answer holds the stream ({version})");
        // Never read; the hub gives up on it and frees the stream.
        support::eventually(&format!("a freed stream ({version})"), support::DEADLINE, || async {
            let (s, _) = ClientConn::open(&hub).await.get(&preview, "/").await;
            (s == 200).then_some(())
        })
        .await;
        drop(stalled);
    }
}

/// A connection of its own that has sent `request_line` to the preview, and
/// will read nothing unless the test does.
async fn unread(hub: &TestHub, preview: &str, request_line: &str) -> tokio::net::TcpStream {
    let mut tcp = tokio::net::TcpStream::connect(hub.http.trim_start_matches("http://")).await.unwrap();
    let req = format!("{request_line}\r\nHost: {preview}\r\n\r\n");
    tokio::io::AsyncWriteExt::write_all(&mut tcp, req.as_bytes()).await.unwrap();
    tcp
}

/// Whether anything (an answer, or the end) has come on `tcp`.
fn answered(tcp: &tokio::net::TcpStream) -> bool {
    let mut byte = [0u8; 1];
    !matches!(tcp.try_read(&mut byte), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
}

#[tokio::test]
async fn private_previews_need_the_one_time_link_and_never_leak_credentials() {
    let hub = TestHub::start().await;
    let api = hub.user().await;
    let id = api.running_project().await;
    let other_project = api.running_project().await;
    let port = free_port();
    let _app = start_app(&api, &hub, &id, port).await;
    let p = Preview::new(&hub, &id, port);

    let r = p.client.get(format!("{}/", p.base)).header("accept", "application/json").send().await.unwrap();
    assert_eq!(r.status(), 401, "no cookie");
    let r = p.client.get(format!("{}/", p.base)).header("accept", "text/html").send().await.unwrap();
    assert_eq!(r.status(), 302, "browsers go to sign in");
    assert!(r.headers()["location"].to_str().unwrap().starts_with(&format!("{}/__aether/preview-auth", hub.http)));

    let (s, v) = api.post(&format!("/api/projects/{id}/ports/{port}/open"), json!({})).await;
    assert_eq!(s, 200, "{v}");
    let url = v["url"].as_str().unwrap().to_owned();
    assert!(url.starts_with(&p.base), "{url}");
    let r = p.client.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 302);
    let set_cookie = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        set_cookie.contains("HttpOnly") && !set_cookie.to_lowercase().contains("domain="),
        "host-only: {set_cookie}"
    );
    let cookie = set_cookie.split(';').next().unwrap().to_owned();
    assert_eq!(p.client.get(&url).send().await.unwrap().status(), 401, "the link works once");

    let with_cookie =
        |path: &str| p.client.get(format!("{}{path}", p.base)).header("cookie", format!("theme=dark; {cookie}"));
    let r = with_cookie("/").send().await.unwrap();
    assert_eq!(r.status(), 200);

    // The app never sees aether's cookie or access token.
    let h: Value =
        with_cookie("/headers").bearer_auth(api.token.as_deref().unwrap()).send().await.unwrap().json().await.unwrap();
    assert_eq!(h["cookie"], json!(["theme=dark"]), "{h}");
    assert!(h.get("authorization").is_none(), "{h}");
    // ... but an app's own Authorization header passes.
    let h: Value =
        with_cookie("/headers").header("authorization", "Bearer app-token").send().await.unwrap().json().await.unwrap();
    assert_eq!(h["authorization"], json!(["Bearer app-token"]));

    // The cookie is worthless on another project's preview.
    let other = Preview::new(&hub, &other_project, port);
    set_visibility(&api, &other_project, port, "private").await;
    let r = other
        .client
        .get(format!("{}/", other.base))
        .header("cookie", &cookie)
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // Nor can one set for the domain all previews share (say, by a page on
    // another preview) shadow it: with the other project's cookie first, and
    // this one's after it, this preview still opens, on either lane.
    let (_, v) = api.post(&format!("/api/projects/{other_project}/ports/{port}/open"), json!({})).await;
    let r = other.client.get(v["url"].as_str().unwrap()).send().await.unwrap();
    let other_cookie = r.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned();
    for close in [false, true] {
        let r = p.client.get(format!("{}/headers", p.base)).header("cookie", format!("{other_cookie}; a=1; {cookie}"));
        let r = if close { r.header("connection", "close") } else { r };
        let r = r.send().await.unwrap();
        assert_eq!(r.status(), 200, "close: {close}");
        let h: Value = r.json().await.unwrap();
        assert_eq!(h["cookie"], json!(["a=1"]), "neither of aether's cookies reaches the app: {h}");
    }

    // Another user can't get a link to it.
    let stranger = hub.user().await;
    let (s, _) = stranger.post(&format!("/api/projects/{id}/ports/{port}/open"), json!({})).await;
    assert_eq!(s, 404);
    assert_eq!(stranger.get(&format!("/api/projects/{id}/ports")).await.0, 404);
    assert_eq!(
        stranger.patch(&format!("/api/projects/{id}/ports/{port}"), json!({"visibility": "public"})).await.0,
        404
    );
}

#[tokio::test]
async fn public_previews_need_nothing_and_going_private_is_immediate() {
    let hub = TestHub::start().await;
    let (api, id, port, _app) = public_app(&hub).await;
    let p = Preview::new(&hub, &id, port);
    assert_eq!(p.get("/").await.status(), 200);
    set_visibility(&api, &id, port, "private").await;
    assert_eq!(p.get("/").await.status(), 401);
    let (s, v) = api.patch(&format!("/api/projects/{id}/ports/{port}"), json!({"visibility": "everyone"})).await;
    assert_eq!((s, v["error"]["code"].as_str()), (400, Some("invalid_request")));
}

/// A stopped project's preview starts its VM only for its owner (their
/// access token, or the private preview's cookie): a visitor to a public
/// preview gets the "stopped" answer and costs the owner no compute.
#[tokio::test]
async fn a_stopped_projects_preview_starts_it_only_for_its_owner() {
    let hub = TestHub::start().await;
    let api = hub.user().await;
    let id = api.running_project().await;
    let port = free_port();
    // The project's startup script brings the app back whenever the VM boots.
    let put = |path: &str, body: String| {
        reqwest::Client::new()
            .put(format!("{}/api/projects/{id}/files?path={path}", hub.http))
            .bearer_auth(api.token.as_deref().unwrap())
            .body(body)
            .send()
    };
    put("server.py", SERVER.into()).await.unwrap();
    api.post(&format!("/api/projects/{id}/files/mkdir"), json!({"path": ".aether"})).await;
    put(".aether/startup.sh", format!("cd ~ && exec python3 server.py {port}\n")).await.unwrap();
    set_visibility(&api, &id, port, "public").await;
    let stop = async || {
        let (s, _) = api.post(&format!("/api/projects/{id}/stop?wait=true"), json!({})).await;
        assert_eq!(s, 200);
    };
    stop().await;

    // A visitor: the VM is stopped, and stays so.
    let p = Preview::new(&hub, &id, port);
    let r = p.client.get(format!("{}/", p.base)).header("accept", "text/html").send().await.unwrap();
    assert_eq!(r.status(), 503);
    let page = r.text().await.unwrap();
    assert!(page.contains("stopped") && !page.contains("Starting"), "{page}");
    let r = p.client.get(format!("{}/", p.base)).header("accept", "application/json").send().await.unwrap();
    assert_eq!(r.status(), 503);
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        (body["error"]["code"].as_str(), body["error"]["status"].as_str()),
        (Some("unavailable"), Some("stopped"))
    );
    // Someone else's token is anyone's.
    let stranger = hub.user().await;
    let r = p.client.get(format!("{}/", p.base)).bearer_auth(stranger.token.unwrap()).send().await.unwrap();
    assert_eq!(r.status(), 503);
    // The owner's token from a session that has signed out is no one's.
    let (_, me) = api.get("/api/me").await;
    let creds = json!({"email": me["email"], "password": "correct horse battery"});
    let (s, other) = hub.api().post("/api/auth/login", creds).await;
    assert_eq!(s, 200, "{other}");
    let ended = other["access_token"].as_str().unwrap();
    let r = p.client.post(format!("{}/api/auth/logout", hub.http)).bearer_auth(ended).send().await.unwrap();
    assert_eq!(r.status(), 204);
    let r = p.client.get(format!("{}/", p.base)).bearer_auth(ended).send().await.unwrap();
    assert_eq!(r.status(), 503);
    let (_, v) = api.get(&format!("/api/projects/{id}")).await;
    assert_eq!(v["status"], "stopped", "a visitor started the VM");

    // The owner, with their token (its scheme in any case): it starts.
    let token = api.token.as_deref().unwrap();
    let r =
        p.client.get(format!("{}/", p.base)).header("authorization", format!("bearer {token}")).send().await.unwrap();
    assert_eq!(r.status(), 503);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["status"], "starting", "{body}");
    let body = support::eventually("the page after the VM started", Duration::from_secs(30), || async {
        let r = p.get("/").await;
        if r.status() == 200 { Some(r.text().await.unwrap()) } else { None }
    })
    .await;
    assert_eq!(body, "<h1>hello from the vm</h1>");
    let (_, v) = api.get(&format!("/api/projects/{id}")).await;
    assert_eq!(v["status"], "running");

    // The owner of a private preview, by its cookie: it starts.
    set_visibility(&api, &id, port, "private").await;
    let (_, v) = api.post(&format!("/api/projects/{id}/ports/{port}/open"), json!({})).await;
    let r = p.client.get(v["url"].as_str().unwrap()).send().await.unwrap();
    let cookie = r.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned();
    stop().await;
    let r = p
        .client
        .get(format!("{}/", p.base))
        .header("cookie", &cookie)
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    assert!(r.text().await.unwrap().contains("http-equiv=\"refresh\""), "a page that reloads itself");
    support::eventually("the private page after the VM started", Duration::from_secs(30), || async {
        let r = p.client.get(format!("{}/", p.base)).header("cookie", &cookie).send().await.unwrap();
        (r.status() == 200).then_some(())
    })
    .await;
}

/// Once the owner has used the month's compute hours, neither a preview nor
/// the API starts the VM; a bigger plan lets it start again.
#[tokio::test]
async fn at_the_months_compute_limit_a_preview_does_not_start_the_vm() {
    let hub = TestHub::start().await;
    let api = hub.user().await;
    let id = api.running_project().await;
    let port = free_port();
    set_visibility(&api, &id, port, "public").await;
    let (s, _) = api.post(&format!("/api/projects/{id}/stop?wait=true"), json!({})).await;
    assert_eq!(s, 200);
    // An earlier boot of 50 hours this month: the free plan's all.
    hub.record_boot(&id, 50).await;

    // The owner visits (a visitor starts nothing in any case).
    let p = Preview::new(&hub, &id, port);
    let owner = |accept: &str| {
        p.client.get(format!("{}/", p.base)).bearer_auth(api.token.as_deref().unwrap()).header("accept", accept)
    };
    let r = owner("text/html").send().await.unwrap();
    assert_eq!(r.status(), 422);
    let page = r.text().await.unwrap();
    assert!(page.contains("compute hours for this month are used up"), "{page}");
    assert!(!page.contains("http-equiv=\"refresh\""), "no page that reloads for ever");
    let r = owner("*/*").send().await.unwrap();
    assert_eq!(r.status(), 422);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "limit_reached", "{body}");
    assert!(!body.to_string().contains("free"), "the answer doesn't name the plan: {body}");
    let (_, v) = api.get(&format!("/api/projects/{id}")).await;
    assert_eq!(v["status"], "stopped", "nothing started the VM");

    let (s, body) = api.post(&format!("/api/projects/{id}/start"), json!({})).await;
    assert_eq!(s, 422, "{body}");
    assert_eq!(body["error"]["code"], "limit_reached", "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("50 hours"), "{body}");

    sqlx::query("UPDATE users SET plan = 'pro'").execute(&hub.db().await).await.unwrap();
    let (s, body) = api.post(&format!("/api/projects/{id}/start?wait=true"), json!({})).await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["status"], "running");
}

/// Sends `request` on `tcp` and reads one answer with a `Content-Length`:
/// (status, body).
async fn exchange(tcp: &mut tokio::net::TcpStream, request: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + support::DEADLINE;
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut resp = httparse::Response::new(&mut headers);
        if let httparse::Status::Complete(len) = resp.parse(&got).unwrap() {
            let length = resp.headers.iter().find(|h| h.name.eq_ignore_ascii_case("content-length"));
            let length: usize = std::str::from_utf8(length.expect("a Content-Length").value).unwrap().parse().unwrap();
            if got.len() >= len + length {
                return (resp.code.unwrap(), String::from_utf8_lossy(&got[len..len + length]).into_owned());
            }
        }
        let n = tokio::time::timeout_at(deadline, tcp.read_buf(&mut got)).await.expect("an answer in time").unwrap();
        assert!(n > 0, "closed before a whole answer: {:?}", String::from_utf8_lossy(&got));
    }
}

async fn connect(hub: &TestHub) -> tokio::net::TcpStream {
    tokio::net::TcpStream::connect(hub.http.trim_start_matches("http://")).await.unwrap()
}

/// aether's access token never reaches the app, however its scheme is
/// written (RFC 9110: the scheme is case-insensitive), on either lane;
/// the app's own credentials do.
#[tokio::test]
async fn aethers_token_is_removed_whatever_the_case_of_its_scheme() {
    let hub = TestHub::start().await;
    let (api, id, port, _app) = public_app(&hub).await;
    let p = Preview::new(&hub, &id, port);
    let token = api.token.clone().unwrap();
    for value in
        [format!("Bearer {token}"), format!("bearer {token}"), format!("BEARER {token}"), format!("bEaReR  {token}")]
    {
        // `Connection: close` is the general lane's from the start.
        for close in [false, true] {
            let r = p.client.get(format!("{}/headers", p.base)).header("authorization", &value);
            let r = if close { r.header("connection", "close") } else { r };
            let h: Value = r.send().await.unwrap().json().await.unwrap();
            assert!(h.get("authorization").is_none(), "{value:?}, close: {close}: {h}");
        }
    }
    // With the app's own credentials on another line, only aether's go.
    let r = p
        .client
        .get(format!("{}/headers", p.base))
        .header("authorization", "bearer app-token")
        .header("authorization", format!("bearer {token}"));
    let h: Value = r.send().await.unwrap().json().await.unwrap();
    assert_eq!(h["authorization"], json!(["bearer app-token"]), "{h}");
}

/// A request body that breaks chunked framing is the client's fault: 400,
/// not a 502 that blames the app.
#[tokio::test]
async fn a_malformed_chunked_request_body_is_answered_400() {
    let hub = TestHub::start().await;
    let (_api, id, port, _app) = public_app(&hub).await;
    let host = Preview::new(&hub, &id, port).host;
    let post = |body: &str| {
        format!(
            "POST /echo HTTP/1.1\r\nHost: {host}\r\nTransfer-Encoding: chunked\r\nAccept: application/json\r\n\r\n{body}"
        )
    };
    let (s, body) = exchange(&mut connect(&hub).await, &post("5\r\nhello\r\n0\r\n\r\n")).await;
    assert_eq!((s, body.as_str()), (200, "hello"), "a well-formed chunked body is echoed");
    for bad in ["zz\r\nhello\r\n0\r\n\r\n", "5\r\nhelloXX\r\n0\r\n\r\n", "-1\r\nhello\r\n0\r\n\r\n"] {
        let (s, body) = exchange(&mut connect(&hub).await, &post(bad)).await;
        assert_eq!(s, 400, "{bad:?}: {body}");
        assert!(body.contains("invalid_request"), "{bad:?}: {body}");
    }
}

/// RFC 9112 §3.2: a request with more than one Host is refused, whichever
/// host comes first, on a connection's first request or a later one, on
/// the preview lanes and the API alike.
#[tokio::test]
async fn a_request_with_two_hosts_is_refused() {
    let hub = TestHub::start().await;
    let (_api, id, port, _app) = public_app(&hub).await;
    let preview = Preview::new(&hub, &id, port).host;
    let api = hub.http.trim_start_matches("http://").to_owned();
    let twice = |path: &str, a: &str, b: &str| {
        format!("GET {path} HTTP/1.1\r\nHost: {a}\r\nHost: {b}\r\nAccept: application/json\r\n\r\n")
    };
    for request in [
        twice("/", &preview, &preview),
        twice("/", &preview, &api),
        twice("/", &api, &preview),
        twice("/healthz", &api, &api),
    ] {
        let (s, body) = exchange(&mut connect(&hub).await, &request).await;
        assert_eq!(s, 400, "{request:?}: {body}");
        assert!(body.contains("invalid_request"), "{body}");
    }
    // After a plain request on the express lane, and after an API request.
    for first in
        [format!("GET / HTTP/1.1\r\nHost: {preview}\r\n\r\n"), format!("GET /healthz HTTP/1.1\r\nHost: {api}\r\n\r\n")]
    {
        let mut tcp = connect(&hub).await;
        assert_eq!(exchange(&mut tcp, &first).await.0, 200);
        let (s, body) = exchange(&mut tcp, &twice("/", &preview, &preview)).await;
        assert_eq!(s, 400, "after {first:?}: {body}");
    }
}

#[tokio::test]
async fn with_the_express_lane_off_previews_are_served_by_hyper_alike() {
    let hub = TestHub::start_with(&[("AETHER_PREVIEW_EXPRESS", "false")]).await;
    let (_api, id, port, _app) = public_app(&hub).await;
    let p = Preview::new(&hub, &id, port);
    let r = p.get("/").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "<h1>hello from the vm</h1>");
    let mut a = ClientConn::open(&hub).await;
    let (s, headers, body) = a.send("HEAD", &p.host, "/", "").await;
    assert_eq!((s, headers["content-length"].to_str().unwrap(), body.as_str()), (200, "26", ""));
    assert_eq!(a.get(&p.host, "/hints").await, (200, "after hints".into()));
}
