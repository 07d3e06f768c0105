//! Terminals through the real hub, tunnel and aetherd, as a browser uses them.

mod support;

use std::time::Duration;
use support::{Term, TestHub};

#[tokio::test]
async fn output_resize_viewers_readonly_and_exit() {
    let hub = TestHub::start().await;
    let api = hub.user().await;
    let id = api.running_project().await;

    let mut a = api.terminal(&id, "&cols=80&rows=24").await;
    a.until("ready", |t| t.start.is_some()).await;
    assert_eq!(a.readies[0]["session"], "main");
    a.send("echo out-$((6*7))\n").await;
    a.expect("out-42").await;

    a.resize(101, 33).await;
    a.send("stty size\n").await;
    a.expect("33 101").await;

    // A second viewer sees the same output.
    let mut b = api.terminal(&id, "").await;
    b.expect("out-42").await;
    a.send("echo both-$((1+1))\n").await;
    a.expect("both-2").await;
    b.expect("both-2").await;

    // A read-only viewer's keystrokes never reach the shell.
    let mut ro = api.terminal(&id, "&readonly=1").await;
    ro.expect("both-2").await;
    ro.send("echo SNEAKY-$((2+2))\n").await;
    ro.resize(20, 5).await;
    a.send("echo after-$((3+3)); stty size\n").await;
    a.expect("after-6").await;
    ro.expect("after-6").await;
    a.expect("33 101").await;
    a.drain_for(Duration::from_millis(300)).await;
    assert!(!a.text().contains("SNEAKY"), "read-only input reached the shell: {}", a.text());

    a.send("exit 3\n").await;
    for t in [&mut a, &mut b, &mut ro] {
        t.until("exit", |t| t.exit.is_some()).await;
        assert_eq!(t.exit, Some(3));
    }
    let (_, list) = api.get(&format!("/api/projects/{id}/terminals")).await;
    assert_eq!(list[0]["exited"], true, "{list}");
}

#[tokio::test]
async fn reattach_replays_and_keeps_state_and_since_has_no_duplicates() {
    let hub = TestHub::start().await;
    let api = hub.user().await;
    let id = api.running_project().await;

    let mut a = api.terminal(&id, "&session=work").await;
    a.send("export KEEP=kept-$((40+2)); echo set-$((1+1))\n").await;
    a.expect("set-2").await;
    let seen = a.offset;
    a.close().await;

    // While nobody watches, output continues.
    let mut b = api.terminal(&id, "&session=work").await;
    b.expect("set-2").await;
    assert_eq!(b.start, Some(0), "a fresh attach replays from the start");
    b.send("echo value=$KEEP\n").await;
    b.expect("value=kept-42").await;
    b.drain_for(Duration::from_millis(200)).await;

    // Resuming from `seen` gets exactly the bytes after it.
    let mut c = api.terminal(&id, &format!("&session=work&since={seen}")).await;
    c.until("caught up", |t| t.offset >= b.offset).await;
    assert_eq!(c.readies[0]["start"], seen);
    assert_eq!(c.readies[0]["gap"], false);
    assert_eq!(c.out, b.out[seen as usize..], "since replay must be exact");
    assert!(!c.text().contains("set-2"), "no duplicated bytes");

    let (s, list) = api.get(&format!("/api/projects/{id}/terminals")).await;
    assert_eq!(s, 200);
    let work = list.as_array().unwrap().iter().find(|t| t["session"] == "work").expect("listed");
    assert_eq!(work["exited"], false);
    assert!(work["viewers"].as_u64().unwrap() >= 1);
    assert!(work["created_at"].as_str().is_some());

    // Ending the session closes it for its viewers.
    assert_eq!(api.delete(&format!("/api/projects/{id}/terminals/work")).await.0, 204);
    c.until("closed", |t| t.exit.is_some() || t.closed).await;
    assert_eq!(api.delete(&format!("/api/projects/{id}/terminals/work")).await.0, 404);
}

#[tokio::test]
async fn tickets_are_single_use_and_required() {
    let hub = TestHub::start().await;
    let api = hub.user().await;
    let id = api.running_project().await;
    let ticket = api.ticket(&id, "terminal").await;
    let t = Term::connect(&hub.http, &id, &format!("ticket={ticket}")).await.expect("first use");
    t.close().await;
    let again = Term::connect(&hub.http, &id, &format!("ticket={ticket}")).await.err().expect("refused");
    assert_eq!(again.0, 401, "{again:?}");
    assert!(again.1.contains("unauthenticated"), "{again:?}");
    let none = Term::connect(&hub.http, &id, "session=main").await.err().expect("refused");
    assert_eq!(none.0, 401);
    let watch = api.ticket(&id, "watch").await;
    let wrong = Term::connect(&hub.http, &id, &format!("ticket={watch}")).await.err().expect("refused");
    assert_eq!(wrong.0, 401, "a watch ticket is not a terminal ticket");
    let bad = api.post("/api/tickets", serde_json::json!({"project_id": id, "purpose": "anything"})).await;
    assert_eq!(bad.0, 400);
}

#[tokio::test]
async fn a_stopped_project_answers_503_with_its_status_to_a_watcher() {
    // A writable attach starts the VM instead (`terminal_wake.rs`).
    let hub = TestHub::start().await;
    let api = hub.user().await;
    let id = api.project("idle").await;
    let ticket = api.ticket(&id, "terminal").await;
    let query = format!("ticket={ticket}&readonly=1");
    let (status, body) = Term::connect(&hub.http, &id, &query).await.err().expect("refused");
    assert_eq!(status, 503);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (v["error"]["code"].as_str(), v["error"]["status"].as_str()),
        (Some("unavailable"), Some("stopped")),
        "{v}"
    );
    let (s, v) = api.get(&format!("/api/projects/{id}/terminals")).await;
    assert_eq!((s, v["error"]["code"].as_str()), (503, Some("unavailable")));
}

#[tokio::test]
async fn a_slow_viewer_does_not_stall_the_shell_or_others() {
    let hub = TestHub::start().await;
    let api = hub.user().await;
    let id = api.running_project().await;
    // This viewer never reads a byte.
    let _stuck = api.terminal(&id, "").await;
    let mut a = api.terminal(&id, "").await;
    a.send("head -c 8000000 /dev/zero | tr '\\0' y | fold -w 100; echo done-$((7*6))\n").await;
    a.expect("done-42").await;
    a.send("echo still-$((1+1))\n").await;
    a.expect("still-2").await;
}

/// A paste far larger than a tunnel frame (1 MiB) reaches the program
/// whole; one past the hub's bound is refused with a reason, not dropped.
#[tokio::test]
async fn a_large_paste_arrives_whole_and_one_past_the_bound_is_refused_clearly() {
    let hub = TestHub::start().await;
    let api = hub.user().await;
    let id = api.running_project().await;
    let mut t = api.terminal(&id, "&session=paste").await;
    t.until("ready", |t| t.start.is_some()).await;
    // No echo, so the paste doesn't come back as output.
    t.send("stty -echo; cat > pasted.txt; echo pasted-$((40+2))\n").await;
    // The file exists once the shell has set up cat's output: cat reads
    // what is typed next.
    support::eventually("cat started", support::DEADLINE, || async {
        let (s, _) = api.get(&format!("/api/projects/{id}/files/stat?path=pasted.txt")).await;
        (s == 200).then_some(())
    })
    .await;
    // 3 MiB of lines of 1,024 bytes (a terminal reads up to 4,095 a line).
    let paste: Vec<u8> = (0..3072).flat_map(|i| format!("{i:07} {}\n", "x".repeat(1015)).into_bytes()).collect();
    assert_eq!(paste.len(), 3 << 20);
    assert!(t.send_bytes(paste.clone()).await);
    t.send("\u{4}").await;
    t.expect("pasted-42").await;
    let (s, stat) = api.get(&format!("/api/projects/{id}/files/stat?path=pasted.txt")).await;
    assert_eq!((s, stat["size"].as_u64()), (200, Some(paste.len() as u64)), "{stat}");
    let file = reqwest::Client::new()
        .get(format!("{}/api/projects/{id}/files?path=pasted.txt", hub.http))
        .bearer_auth(api.token.as_deref().unwrap())
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert!(file[..] == paste[..], "the paste arrived changed");
    t.send("echo alive-$((1+2))\n").await;
    t.expect("alive-3").await;

    // Past the bound: an error that says why, and a close that says so too.
    let mut big = api.terminal(&id, "&session=paste").await;
    big.until("ready", |t| t.start.is_some()).await;
    big.send_bytes(vec![b'y'; 9 << 20]).await;
    big.until("closed", |t| t.closed).await;
    let error = big.error.clone().expect("an error message before the close");
    assert_eq!(error["code"], "too_large", "{error}");
    assert!(error["message"].as_str().unwrap().contains("MiB"), "{error}");
    assert_eq!(big.close_frame.as_ref().map(|c| c.0), Some(1009), "{:?}", big.close_frame);
    // The session, and its other viewer, carry on.
    t.send("echo still-$((2+2))\n").await;
    t.expect("still-4").await;
}

#[tokio::test]
async fn a_read_only_viewer_never_creates_a_session() {
    let hub = TestHub::start().await;
    let api = hub.user().await;
    let id = api.running_project().await;
    let sessions = async || {
        let (s, list) = api.get(&format!("/api/projects/{id}/terminals")).await;
        assert_eq!(s, 200, "{list}");
        list.as_array().unwrap().clone()
    };

    let mut ro = api.terminal(&id, "&session=nobody&readonly=1").await;
    ro.until("closed", |t| t.closed).await;
    let error = ro.error.clone().expect("an error message before the close");
    assert_eq!(error["code"], "not_found", "{error}");
    assert!(error["message"].as_str().unwrap().contains("nobody"), "{error}");
    assert!(ro.readies.is_empty(), "attached to something: {:?}", ro.readies);
    assert!(!sessions().await.iter().any(|s| s["session"] == "nobody"), "a read-only attach made a session");

    // A session that ended is shown ended, not started again.
    let mut a = api.terminal(&id, "&session=done").await;
    a.until("ready", |t| t.start.is_some()).await;
    a.send("exit 5\n").await;
    a.until("exit", |t| t.exit.is_some()).await;
    let mut ro = api.terminal(&id, "&session=done&readonly=1").await;
    ro.until("exit", |t| t.exit.is_some()).await;
    assert_eq!(ro.exit, Some(5));
    let done = sessions().await.into_iter().find(|s| s["session"] == "done").expect("listed");
    assert_eq!(done["exited"], true, "{done}");
}
