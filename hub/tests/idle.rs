//! Idle stop, with a short timeout (`AETHER_IDLE_TIMEOUT_S`): a VM with
//! nothing happening stops by itself within timeout + 30 s, after a
//! warning, with `stop_reason` `idle`; VMs doing work — an agent's SSH
//! session running `sleep 600`, a CPU-busy process detached from every
//! session, the owner using a preview — keep running past that window.

mod sshkit;
mod support;

use serde_json::{Value, json};
use sshkit::{Agent, named};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use support::{Api, TestHub};

const TIMEOUT_S: u64 = 10;
const WINDOW: Duration = Duration::from_secs(TIMEOUT_S + 30);
const SERVER: &str = include_str!("fixtures/preview_server.py");

async fn project(api: &Api, id: &str) -> Value {
    let (s, v) = api.get(&format!("/api/projects/{id}")).await;
    assert_eq!(s, 200, "{v}");
    v
}

async fn activity(api: &Api, id: &str) -> Value {
    let (s, v) = api.get(&format!("/api/projects/{id}/activity")).await;
    assert_eq!(s, 200, "{v}");
    v
}

async fn start(api: &Api, name: &str) -> String {
    let id = api.project(name).await;
    let (s, v) = api.post(&format!("/api/projects/{id}/start?wait=true"), json!({})).await;
    assert_eq!((s, v["status"].as_str()), (200, Some("running")), "{v}");
    id
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Collects a project's event stream (Server-Sent Events) as text.
fn events(hub: &TestHub, api: &Api, id: &str) -> std::sync::Arc<std::sync::Mutex<String>> {
    let seen = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let url = format!("{}/api/projects/{id}/events", hub.http);
    let token = api.token.clone().unwrap();
    let out = seen.clone();
    tokio::spawn(async move {
        let mut resp = reqwest::Client::new().get(url).bearer_auth(token).send().await.unwrap();
        while let Ok(Some(chunk)) = resp.chunk().await {
            out.lock().unwrap().push_str(&String::from_utf8_lossy(&chunk));
        }
    });
    seen
}

#[tokio::test]
async fn idle_vms_stop_and_working_ones_do_not() {
    let timeout = TIMEOUT_S.to_string();
    let hub = TestHub::start_with(&[("AETHER_IDLE_TIMEOUT_S", &timeout), ("AETHER_METER_INTERVAL_MS", "500")]).await;
    let api = hub.user().await;

    // An agent's long command over SSH.
    let agent_vm = start(&api, "agent").await;
    let agent = Agent::create(&api, &agent_vm, named("claude")).await;
    let mut sleeper = agent.command("ssh", &[&agent.alias, "sleep 600"]);
    let _sleeping = sleeper.spawn().unwrap();

    // A CPU-busy process started from a terminal, detached, and the
    // terminal's session ended.
    let busy_vm = start(&api, "busy").await;
    let mut t = api.terminal(&busy_vm, "&session=build").await;
    t.until("prompt", |t| t.offset > 0).await;
    t.send("setsid nohup sh -c 'while :; do :; done' >/dev/null 2>&1 < /dev/null & echo started-$((6*7))\n").await;
    t.expect("started-42").await;
    t.close().await;
    let (s, v) = api.delete(&format!("/api/projects/{busy_vm}/terminals/build")).await;
    assert_eq!(s, 204, "{v}");

    // The owner using a preview, once a second, with the preview's cookie.
    let preview_vm = start(&api, "preview").await;
    let port = free_port();
    let r = reqwest::Client::new()
        .put(format!("{}/api/projects/{preview_vm}/files?path=server.py", hub.http))
        .bearer_auth(api.token.as_deref().unwrap())
        .body(SERVER)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let mut app = api.terminal(&preview_vm, "&session=app").await;
    app.until("prompt", |t| t.offset > 0).await;
    app.send(&format!("python3 server.py {port}\n")).await;
    support::eventually("the app's port", Duration::from_secs(20), || async {
        let (_, list) = api.get(&format!("/api/projects/{preview_vm}/ports")).await;
        list.as_array().unwrap().iter().any(|p| p["port"] == port).then_some(())
    })
    .await;
    let (s, v) = api.post(&format!("/api/projects/{preview_vm}/ports/{port}/open"), json!({})).await;
    assert_eq!(s, 200, "{v}");
    let hub_addr: SocketAddr = hub.http.trim_start_matches("http://").parse().unwrap();
    let name = format!("{port}-{preview_vm}.preview.localhost");
    let client = reqwest::Client::builder()
        .resolve(&name, hub_addr)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = client.get(v["url"].as_str().unwrap()).send().await.unwrap();
    let cookie = r.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned();
    let base = format!("http://{name}:{}/", hub_addr.port());
    let visits = tokio::spawn(async move {
        loop {
            let r = client.get(&base).header("cookie", &cookie).send().await.unwrap();
            assert_eq!(r.status(), 200);
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });

    // And one with nothing happening in it.
    let idle_vm = start(&api, "idle").await;
    let started = Instant::now();
    let seen = events(&hub, &api, &idle_vm);
    let a = activity(&api, &idle_vm).await;
    assert_eq!((a["status"].as_str(), a["idle_timeout_s"].as_u64()), (Some("running"), Some(TIMEOUT_S)), "{a}");
    assert!(a["idle_stop_at"].is_string() && a["awake_because"] == json!([]), "{a}");
    let working = [(&agent_vm, "ssh_session"), (&busy_vm, "cpu"), (&preview_vm, "preview")];
    let setup_done = Instant::now();

    let stopped = support::eventually("the idle VM stopped", WINDOW, || async {
        let p = project(&api, &idle_vm).await;
        (p["status"] == "stopped").then_some(p)
    })
    .await;
    let took = started.elapsed();
    assert!(took >= Duration::from_secs(TIMEOUT_S - 1), "stopped after {took:?}");
    assert_eq!(stopped["stop_reason"], "idle", "{stopped}");
    assert!(stopped["stopped_at"].is_string(), "{stopped}");
    assert!(stopped["error_message"].as_str().is_some_and(|m| m.contains("idle")), "{stopped}");
    let text = seen.lock().unwrap().clone();
    assert!(text.contains("event: idle_warning"), "no warning before the stop: {text}");
    let a = activity(&api, &idle_vm).await;
    assert_eq!((a["status"].as_str(), &a["idle_stop_at"]), (Some("stopped"), &Value::Null), "{a}");

    // The working VMs run on through the whole window, each awake for
    // its own reason.
    while setup_done.elapsed() < WINDOW {
        for (id, why) in working {
            let a = activity(&api, id).await;
            assert_eq!(a["status"], "running", "{why}: {a}");
            assert!(a["awake_because"].as_array().unwrap().iter().any(|w| w == why), "{why}: {a}");
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    visits.abort();

    // Starting the idle VM again clears why it stopped.
    let (s, v) = api.post(&format!("/api/projects/{idle_vm}/start?wait=true"), json!({})).await;
    assert_eq!((s, v["status"].as_str()), (200, Some("running")), "{v}");
    assert!(v.get("stop_reason").is_none() && v.get("stopped_at").is_none(), "{v}");

    // Another user's project's activity is not found.
    let other = hub.user().await;
    assert_eq!(other.get(&format!("/api/projects/{idle_vm}/activity")).await.0, 404);
}

#[tokio::test]
async fn a_public_visit_starts_a_stopped_vm_only_where_the_owner_allows_it() {
    let hub = TestHub::start().await;
    let api = hub.user().await;
    let id = api.running_project().await;
    let port = free_port();
    let (s, v) = api.patch(&format!("/api/projects/{id}/ports/{port}"), json!({ "visibility": "public" })).await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = api.post(&format!("/api/projects/{id}/stop?wait=true"), json!({})).await;
    assert_eq!((s, v["status"].as_str()), (200, Some("stopped")), "{v}");

    let hub_addr: SocketAddr = hub.http.trim_start_matches("http://").parse().unwrap();
    let name = format!("{port}-{id}.preview.localhost");
    let visitor = reqwest::Client::builder().resolve(&name, hub_addr).build().unwrap();
    let url = format!("http://{name}:{}/", hub_addr.port());
    let visit = || visitor.get(&url).header("accept", "application/json").send();

    // By default a visitor neither starts the VM nor spends its owner's hours.
    let r = visit().await.unwrap();
    assert_eq!(r.status(), 503);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["status"], "stopped", "{body}");
    // The visit started nothing.
    let (_, p) = api.get(&format!("/api/projects/{id}")).await;
    assert_eq!(p["status"], "stopped", "{p}");

    // The owner lets visits to this port wake it.
    let (s, v) = api.patch(&format!("/api/projects/{id}/ports/{port}"), json!({ "wakes_on_visit": true })).await;
    assert_eq!((s, v["visibility"].as_str()), (200, Some("public")), "{v}");
    let r = visit().await.unwrap();
    assert_eq!(r.status(), 503);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["status"], "starting", "{body}");
    support::eventually("the VM started by a visit", Duration::from_secs(60), || async {
        (project(&api, &id).await["status"] == "running").then_some(())
    })
    .await;
}
