//! Files through the real hub and aetherd: contents, versions, limits,
//! paths that try to escape, crashes mid-write, and live watches.

mod support;

use futures_util::StreamExt;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::time::{Duration, Instant};
use support::{Api, TestHub};
use tokio_tungstenite::tungstenite::Message;

fn files_url(hub: &TestHub, project: &str, query: &str) -> String {
    format!("{}/api/projects/{project}/files?{query}", hub.http)
}

async fn put(api: &Api, url: &str, body: impl Into<reqwest::Body>, if_match: Option<&str>) -> reqwest::Response {
    let mut req = reqwest::Client::new().put(url).bearer_auth(api.token.as_deref().unwrap()).body(body);
    if let Some(tag) = if_match {
        req = req.header("if-match", tag);
    }
    req.send().await.unwrap()
}

async fn get(api: &Api, url: &str, range: Option<&str>) -> reqwest::Response {
    let mut req = reqwest::Client::new().get(url).bearer_auth(api.token.as_deref().unwrap());
    if let Some(r) = range {
        req = req.header("range", r);
    }
    req.send().await.unwrap_or_else(|e| panic!("GET {url} (range {range:?}): {e}"))
}

fn pseudo_random(n: usize) -> Vec<u8> {
    let mut x: u64 = 0x9E3779B97F4A7C15;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

#[tokio::test]
async fn binary_files_round_trip_with_ranges_and_versions() {
    let hub = TestHub::start().await;
    let api = hub.user().await;
    let id = api.running_project().await;

    let data = pseudo_random(10 << 20);
    let url = files_url(&hub, &id, "path=data/blob.bin");
    let r = put(&api, &url, data.clone(), None).await;
    assert_eq!(r.status(), 404, "parent folder missing");
    let (s, _) = api.post(&format!("/api/projects/{id}/files/mkdir"), json!({"path": "data"})).await;
    assert_eq!(s, 201);
    let r = put(&api, &url, data.clone(), None).await;
    assert_eq!(r.status(), 201);
    let etag = r.headers()["etag"].to_str().unwrap().to_owned();

    let r = get(&api, &url, None).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["etag"].to_str().unwrap(), etag);
    assert_eq!(r.headers()["content-length"].to_str().unwrap(), (10 << 20).to_string());
    let back = r.bytes().await.unwrap();
    assert_eq!(Sha256::digest(&back), Sha256::digest(&data), "byte-identical");

    let r = get(&api, &url, Some("bytes=1000-1999")).await;
    assert_eq!(r.status(), 206);
    assert_eq!(r.headers()["content-range"].to_str().unwrap(), format!("bytes 1000-1999/{}", 10 << 20));
    assert_eq!(r.bytes().await.unwrap(), data[1000..2000]);
    let r = get(&api, &url, Some("bytes=-10")).await;
    assert_eq!(r.bytes().await.unwrap(), data[data.len() - 10..]);
    assert_eq!(get(&api, &url, Some("bytes=99999999-")).await.status(), 416);

    // Replacing keeps the mode and answers 200 with a new version.
    let mut t = api.terminal(&id, "").await;
    t.send("chmod 751 data/blob.bin; echo chmod-$((1+1))\n").await;
    t.expect("chmod-2").await;
    let (_, st) = api.get(&format!("/api/projects/{id}/files/stat?path=data/blob.bin")).await;
    let r = put(&api, &url, "small now", Some(st["etag"].as_str().unwrap())).await;
    assert_eq!(r.status(), 200);
    let (_, st2) = api.get(&format!("/api/projects/{id}/files/stat?path=data/blob.bin")).await;
    assert_eq!(
        (st2["mode"].as_u64(), st2["size"].as_u64(), st2["type"].as_str()),
        (Some(0o751), Some(9), Some("file")),
        "{st2}"
    );
    assert_ne!(st2["etag"], st["etag"]);
}

#[tokio::test]
async fn a_stale_version_is_refused_and_the_terminals_change_kept() {
    let hub = TestHub::start().await;
    let api = hub.user().await;
    let id = api.running_project().await;
    let url = files_url(&hub, &id, "path=notes.txt");
    let r = put(&api, &url, "from the editor\n", None).await;
    let etag = r.headers()["etag"].to_str().unwrap().to_owned();

    let mut t = api.terminal(&id, "").await;
    t.send("echo from-the-terminal > notes.txt; echo wrote-$((2+2))\n").await;
    t.expect("wrote-4").await;

    let r = put(&api, &url, "editor overwrites\n", Some(&etag)).await;
    assert_eq!(r.status(), 412);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "precondition_failed");
    assert_eq!(get(&api, &url, None).await.text().await.unwrap(), "from-the-terminal\n");

    let r = reqwest::Client::new()
        .delete(&url)
        .bearer_auth(api.token.as_deref().unwrap())
        .header("if-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 412, "a stale delete is refused too");

    // `If-Match: *` matches any current version (RFC 9110 §13.1.1): it
    // writes over a file that exists, and refuses one that doesn't.
    let r = put(&api, &url, "any version will do\n", Some("*")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(get(&api, &url, None).await.text().await.unwrap(), "any version will do\n");
    let r = put(&api, &files_url(&hub, &id, "path=absent.txt"), "x", Some("*")).await;
    assert_eq!(r.status(), 412, "no current version to match");
}

#[tokio::test]
async fn folders_rename_and_delete() {
    let hub = TestHub::start().await;
    let api = hub.user().await;
    let id = api.running_project().await;
    let p = |s: &str| format!("/api/projects/{id}/files{s}");

    let (s, v) = api.post(&p("/mkdir"), json!({"path": "a/b/c"})).await;
    assert_eq!((s, v["type"].as_str()), (201, Some("dir")), "{v}");
    put(&api, &files_url(&hub, &id, "path=a/b/c/one.txt"), "1", None).await;
    put(&api, &files_url(&hub, &id, "path=a/two.txt"), "2", None).await;

    let (s, v) = api.get(&p("?path=a")).await;
    assert_eq!(s, 200);
    assert_eq!(v["type"], "dir");
    let names: Vec<_> = v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["name"].as_str().unwrap(), e["type"].as_str().unwrap()))
        .collect();
    assert_eq!(names, vec![("b", "dir"), ("two.txt", "file")]);

    let (s, v) = api.post(&p("/rename"), json!({"from": "a/two.txt", "to": "a/b/c/one.txt"})).await;
    assert_eq!((s, v["error"]["code"].as_str()), (409, Some("conflict")), "{v}");
    let (s, _) = api.post(&p("/rename"), json!({"from": "a/two.txt", "to": "a/b/c/one.txt", "overwrite": true})).await;
    assert_eq!(s, 200);
    assert_eq!(get(&api, &files_url(&hub, &id, "path=a/b/c/one.txt"), None).await.text().await.unwrap(), "2");
    let (s, _) = api.post(&p("/rename"), json!({"from": "a/missing", "to": "a/x"})).await;
    assert_eq!(s, 404);

    let (s, v) = api.delete(&p("?path=a")).await;
    assert_eq!((s, v["error"]["code"].as_str()), (409, Some("conflict")), "{v}");
    let (s, _) = api.delete(&p("?path=a&recursive=true")).await;
    assert_eq!(s, 204);
    assert_eq!(api.get(&p("/stat?path=a")).await.0, 404);
    let (s, v) = api.post(&p("/mkdir"), json!({"path": 5})).await;
    assert_eq!((s, v["error"]["code"].as_str()), (400, Some("invalid_request")));
}

#[tokio::test]
async fn paths_outside_the_home_are_400_and_touch_nothing() {
    let hub = TestHub::start().await;
    let api = hub.user().await;
    let id = api.running_project().await;
    let outside = hub.data.join("vms").join(&id).join("escaped.txt");
    for q in [
        "path=../../etc/passwd",
        "path=%2e%2e/%2e%2e/etc/passwd",
        "path=/etc/passwd",
        "path=a/../../x",
        "path=a%00b",
        "path=..%2Fescaped.txt",
    ] {
        let (s, v) = api.get(&format!("/api/projects/{id}/files?{q}")).await;
        assert_eq!((s, v["error"]["code"].as_str()), (400, Some("invalid_path")), "{q}: {v}");
        let r = put(&api, &files_url(&hub, &id, q), "pwned", None).await;
        assert_eq!(r.status(), 400, "{q}");
        let (s, _) = api.delete(&format!("/api/projects/{id}/files?{q}&recursive=true")).await;
        assert_eq!(s, 400, "{q}");
    }
    let (s, _) =
        api.post(&format!("/api/projects/{id}/files/rename"), json!({"from": "../escaped.txt", "to": "x"})).await;
    assert_eq!(s, 400);
    let (s, _) = api.post(&format!("/api/projects/{id}/files/mkdir"), json!({"path": "/tmp/evil"})).await;
    assert_eq!(s, 400);
    assert!(!outside.exists());
    assert!(!std::path::Path::new("/tmp/evil").exists());
    // The documented absolute form of the home works.
    let r = put(&api, &files_url(&hub, &id, "path=/home/dev/inside.txt"), "ok", None).await;
    assert_eq!(r.status(), 201);
    assert!(hub.data.join("vms").join(&id).join("home/inside.txt").exists());
}

#[tokio::test]
async fn names_that_are_not_utf8_round_trip() {
    let hub = TestHub::start().await;
    let api = hub.user().await;
    let id = api.running_project().await;
    let mut t = api.terminal(&id, "").await;
    t.send("printf data > \"$(printf 'caf\\351')\"; echo made-$((3+3))\n").await;
    t.expect("made-6").await;
    let (_, v) = api.get(&format!("/api/projects/{id}/files?path=")).await;
    let entry = v["entries"].as_array().unwrap().iter().find(|e| e["raw_name"].is_string()).expect("listed");
    assert_eq!(entry["raw_name"], "caf%E9");
    let r = get(&api, &files_url(&hub, &id, &format!("path={}", entry["raw_name"].as_str().unwrap())), None).await;
    assert_eq!(r.text().await.unwrap(), "data");
}

#[tokio::test]
async fn uploads_over_the_limit_are_413() {
    support::init();
    let dir = support::TempDir::new("aether-limit");
    let db = support::fresh_database().await;
    let mut hub = TestHub::spawn(&dir.0, Some(db), "127.0.0.1:0", &[("AETHER_MAX_WRITE_BYTES", "1048576")]);
    hub.wait_ready().await;
    let api = hub.user().await;
    let id = api.running_project().await;
    let url = files_url(&hub, &id, "path=big.bin");
    put(&api, &url, "old", None).await;
    let r = put(&api, &url, vec![7u8; 2 << 20], None).await;
    assert_eq!(r.status(), 413);
    // A streamed body without a length is cut off at the limit too.
    let chunks = futures_util::stream::iter((0..64).map(|_| Ok::<_, std::io::Error>(vec![1u8; 64 * 1024])));
    let r = put(&api, &url, reqwest::Body::wrap_stream(chunks), None).await;
    assert_eq!(r.status(), 413);
    assert_eq!(get(&api, &url, None).await.text().await.unwrap(), "old", "nothing replaced");
    let (_, v) = api.get(&format!("/api/projects/{id}/files?path=")).await;
    let names: Vec<_> =
        v["entries"].as_array().unwrap().iter().map(|e| e["name"].as_str().unwrap().to_owned()).collect();
    assert_eq!(user_files(&names), vec!["big.bin"], "no stray temporary file: {v}");
}

#[tokio::test]
async fn killing_aetherd_mid_write_keeps_the_old_file() {
    let hub = TestHub::start().await;
    let api = hub.user().await;
    let id = api.running_project().await;
    let url = files_url(&hub, &id, "path=keep.bin");
    put(&api, &url, "the old content", None).await;

    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(1);
    let body = reqwest::Body::wrap_stream(tokio_stream_from(rx));
    let upload = tokio::spawn({
        let api = api.clone();
        let url = url.clone();
        async move { put(&api, &url, body, None).await.status() }
    });
    // 24 MiB accepted by the hub means aetherd has most of it on disk.
    for _ in 0..24 {
        tx.send(Ok(vec![b'x'; 1 << 20])).await.unwrap();
    }
    let pid = support::aetherd_pid(&id);
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL).unwrap();
    let _ = tx.send(Ok(vec![b'x'; 1 << 20])).await;
    drop(tx);
    // The hub learns that a killed VM is gone when its tunnel times out (20 s
    // without packets), as it would for a crashed Fly Machine.
    let status = tokio::time::timeout(Duration::from_secs(60), upload).await.unwrap().unwrap();
    assert!(status.is_server_error() || status.is_client_error(), "the interrupted upload failed: {status}");

    let (s, v) = api.post(&format!("/api/projects/{id}/start?wait=true"), json!({})).await;
    assert_eq!((s, v["status"].as_str()), (200, Some("running")), "{v}");
    assert_eq!(get(&api, &url, None).await.text().await.unwrap(), "the old content");
    let (_, v) = api.get(&format!("/api/projects/{id}/files?path=")).await;
    let names: Vec<_> =
        v["entries"].as_array().unwrap().iter().map(|e| e["name"].as_str().unwrap().to_owned()).collect();
    assert_eq!(user_files(&names), vec!["keep.bin"], "no partial file is visible");
    let on_disk: Vec<_> = std::fs::read_dir(hub.data.join("vms").join(&id).join("home"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(user_files(&on_disk), vec!["keep.bin"], "nothing left on disk either: {on_disk:?}");
}

/// A home's entries less the image's skeleton (dotfiles), but with any
/// temporary file of a write (`.aether-write-…`).
fn user_files(names: &[String]) -> Vec<&str> {
    names.iter().map(String::as_str).filter(|n| !n.starts_with('.') || n.starts_with(".aether-write")).collect()
}

fn tokio_stream_from<T: Send + 'static>(
    mut rx: tokio::sync::mpsc::Receiver<T>,
) -> impl futures_util::Stream<Item = T> + Send + 'static {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

#[tokio::test]
async fn a_watch_sees_what_a_terminal_does_within_a_second() {
    let hub = TestHub::start().await;
    let api = hub.user().await;
    let id = api.running_project().await;
    let ticket = api.ticket(&id, "watch").await;
    let url =
        format!("{}/api/projects/{id}/files/watch?ticket={ticket}&path=", hub.http.replacen("http://", "ws://", 1));
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let mut next = async || -> Value {
        loop {
            let m = tokio::time::timeout(support::DEADLINE, ws.next()).await.expect("event").unwrap().unwrap();
            if let Message::Text(t) = m {
                return serde_json::from_str(&t).unwrap();
            }
        }
    };
    assert_eq!(next().await["type"], "ready");
    let mut t = api.terminal(&id, "").await;
    t.until("prompt", |t| t.offset > 0).await;
    let steps: [(&str, &str, &str, Option<&str>); 4] = [
        ("echo one > w.txt", "created", "w.txt", None),
        ("echo two >> w.txt", "modified", "w.txt", None),
        ("mv w.txt v.txt", "renamed", "v.txt", Some("w.txt")),
        ("rm v.txt", "removed", "v.txt", None),
    ];
    for (cmd, kind, path, from) in steps {
        let sent = Instant::now();
        t.send(&format!("{cmd}\n")).await;
        let ev = loop {
            let ev = next().await;
            if ev["type"] == kind {
                break ev;
            }
            // `>` may be reported as created then modified; both are fine.
            assert!(kind != "created" || ev["type"] == "modified", "unexpected {ev} before {kind}");
        };
        let took = sent.elapsed();
        assert_eq!(ev["path"], path, "{ev}");
        if let Some(f) = from {
            assert_eq!(ev["from"], f, "{ev}");
        }
        assert!(took < Duration::from_secs(1), "{kind} took {took:?}");
    }
    // Noisy folders are not watched.
    t.send("mkdir -p node_modules/pkg && touch node_modules/pkg/x && touch seen.txt\n").await;
    loop {
        let ev = next().await;
        assert!(!ev["path"].as_str().unwrap_or("").contains("node_modules/pkg"), "{ev}");
        if ev["path"] == "seen.txt" {
            break;
        }
    }
    ws.close(None).await.unwrap();
}

#[tokio::test]
async fn file_routes_are_404_for_others_and_503_when_stopped() {
    let hub = TestHub::start().await;
    let owner = hub.user().await;
    let other = hub.user().await;
    let id = owner.running_project().await;
    put(&owner, &files_url(&hub, &id, "path=secret.txt"), "mine", None).await;
    let p = |s: &str| format!("/api/projects/{id}/files{s}");
    let checks = [
        other.get(&p("?path=secret.txt")).await,
        other.get(&p("?path=")).await,
        other.get(&p("/stat?path=secret.txt")).await,
        other.delete(&p("?path=secret.txt")).await,
        other.post(&p("/mkdir"), json!({"path": "x"})).await,
        other.post(&p("/rename"), json!({"from": "secret.txt", "to": "y"})).await,
        other.post("/api/tickets", json!({"project_id": id, "purpose": "watch"})).await,
    ];
    for (i, (s, v)) in checks.iter().enumerate() {
        assert_eq!((*s, v["error"]["code"].as_str()), (404, Some("not_found")), "check {i}: {v}");
    }
    assert_eq!(put(&other, &files_url(&hub, &id, "path=secret.txt"), "theirs", None).await.status(), 404);
    assert_eq!(get(&owner, &files_url(&hub, &id, "path=secret.txt"), None).await.text().await.unwrap(), "mine");

    let (s, _) = owner.post(&format!("/api/projects/{id}/stop?wait=true"), json!({})).await;
    assert_eq!(s, 200);
    let (s, v) = owner.get(&p("?path=secret.txt")).await;
    assert_eq!(
        (s, v["error"]["code"].as_str(), v["error"]["status"].as_str()),
        (503, Some("unavailable"), Some("stopped")),
        "{v}"
    );
}
