//! Opening a terminal on a stopped project starts its VM, as a browser
//! opening the workspace does: the terminal says it is starting, then
//! attaches, with no separate start call. At the plan's compute limit it
//! says why it can't.

mod support;

use serde_json::json;
use support::{Term, TestHub};

/// Creates a project, runs it once and stops it again.
async fn stopped_project(api: &support::Api) -> String {
    let id = api.running_project().await;
    let (s, v) = api.post(&format!("/api/projects/{id}/stop?wait=true"), json!({})).await;
    assert_eq!((s, v["status"].as_str()), (200, Some("stopped")), "{v}");
    id
}

async fn status(api: &support::Api, id: &str) -> String {
    let (s, v) = api.get(&format!("/api/projects/{id}")).await;
    assert_eq!(s, 200, "{v}");
    v["status"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_terminal_opened_on_a_stopped_project_starts_it_and_attaches() {
    let hub = TestHub::start().await;
    let api = hub.user().await;
    let id = stopped_project(&api).await;

    let mut t = api.terminal(&id, "&cols=80&rows=24").await;
    t.until("starting", |t| t.starting || t.start.is_some()).await;
    assert!(t.starting, "the hub should say it is starting the VM before anything else");
    // Typed before the VM is up: the browser holds it until `ready`.
    t.until("ready", |t| t.start.is_some()).await;
    t.send("echo hi\n").await;
    // The shell's answer on its own line, not the echo of the typed command.
    t.expect("\rhi\r\n").await;
    assert_eq!(status(&api, &id).await, "running");

    // Once it runs, a terminal attaches without saying `starting`.
    let mut again = api.terminal(&id, "").await;
    again.until("ready", |t| t.start.is_some()).await;
    assert!(!again.starting);
}

#[tokio::test]
async fn at_the_compute_limit_the_terminal_says_so_and_the_vm_stays_stopped() {
    let hub = TestHub::start().await;
    let api = hub.user().await;
    let id = stopped_project(&api).await;
    hub.record_boot(&id, 50).await; // the free plan's month

    let mut t = api.terminal(&id, "").await;
    t.until("closed", |t| t.closed).await;
    let error = t.error.clone().expect("an error message before the close");
    assert_eq!(error["code"], "limit_reached", "{error}");
    let message = error["message"].as_str().unwrap();
    assert!(message.contains("hours") && message.contains("upgrade"), "{message}");
    assert_eq!(t.close_frame.as_ref().map(|(code, reason)| (*code, reason.as_str())), Some((1008, "limit_reached")));
    assert!(t.start.is_none(), "never attached");
    assert_eq!(status(&api, &id).await, "stopped");
}

#[tokio::test]
async fn watchers_and_resuming_viewers_do_not_wake_a_stopped_vm() {
    let hub = TestHub::start().await;
    let api = hub.user().await;
    let id = stopped_project(&api).await;

    for extra in ["&readonly=1", "&since=10"] {
        let ticket = api.ticket(&id, "terminal").await;
        let (code, body) =
            Term::connect(&hub.http, &id, &format!("ticket={ticket}{extra}")).await.err().expect("refused");
        assert_eq!(code, 503, "{extra}: {body}");
        assert!(body.contains("\"stopped\""), "{extra}: {body}");
    }
    assert_eq!(status(&api, &id).await, "stopped");
}
