//! The whole system with `AETHER_COMPUTE=fly`: a real hub process whose
//! Fly Machines API is the fake, which boots each machine as a real aetherd
//! with the machine's env (its volume a folder). A user signs up, creates a
//! project, starts it, types in a terminal, stops and starts it again with
//! their files kept, and deletes it; reconciliation destroys machines
//! without a project, reports machines that vanished and starts that never
//! came up.

mod fake_fly;
mod support;

use fake_fly::boot::processes_with;
use fake_fly::{Boot, FakeFly, Options};
use serde_json::json;
use std::time::Duration;
use support::{TempDir, TestHub};

/// The hub's environment for the fake; `extra` adds (later values win).
fn fly_env(fake: &FakeFly, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    [
        ("AETHER_COMPUTE", "fly"),
        ("FLY_API_URL", fake.url.as_str()),
        ("FLY_API_TOKEN", fake.token.as_str()),
        ("FLY_APP_NAME", fake.app.as_str()),
        ("FLY_REGION", "iad"),
        ("AETHER_FLY_IMAGE", "registry.fly.io/aether-vms:vm-test"),
    ]
    .iter()
    .chain(extra)
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

async fn hub_on(fake: &FakeFly, extra: &[(&str, &str)]) -> TestHub {
    let env = fly_env(fake, extra);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    TestHub::start_with(&env).await
}

fn booting(root: &TempDir) -> Options {
    Options::booting(Boot { aetherd: TestHub::aetherd(), root: root.0.clone() })
}

/// Polls `f` until it returns `Some`, failing after the deadline.
async fn eventually<T>(what: &str, mut f: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + support::DEADLINE;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_works_in_a_project_on_fly_machines() {
    let root = TempDir::new("fake-fly");
    let fake = FakeFly::start(booting(&root)).await;
    let hub = hub_on(&fake, &[]).await;
    let api = hub.user().await;

    let id = api.project("on fly").await;
    assert!(fake.live_machines().is_empty(), "nothing is made at Fly before the first start");
    let (s, v) = api.post(&format!("/api/projects/{id}/start?wait=true"), json!({})).await;
    assert_eq!((s, v["status"].as_str()), (200, Some("running")), "{v}\n{}", hub.log());
    let machines = fake.live_machines();
    assert_eq!(machines.len(), 1);
    let machine = machines[0]["id"].as_str().unwrap().to_owned();
    let volume = machines[0]["config"]["mounts"][0]["volume"].as_str().unwrap().to_owned();
    let env = fake.env_of(&machine);
    assert_eq!(env["AETHER_PROJECT_ID"], id);
    assert_eq!(env["AETHER_HUB_ADDR"], hub.tunnel.to_string());
    let ca = std::fs::read_to_string(hub.data.join("tls/ca.pem")).unwrap();
    assert_eq!(env["AETHER_HUB_CA_PEM"], ca, "the VM trusts the hub's local CA");
    assert_eq!(env["AETHER_HUB_SERVER_NAME"], "aether-hub", "and checks the name its certificate carries");

    let mut term = api.terminal(&id, "").await;
    term.until("ready", |t| t.start.is_some()).await;
    term.send("echo fly-$((6*7)); echo kept > notes.txt; pwd\n").await;
    term.expect("fly-42").await;
    term.expect(&volume).await;
    term.close().await;

    let (s, v) = api.post(&format!("/api/projects/{id}/stop?wait=true"), json!({})).await;
    assert_eq!((s, v["status"].as_str()), (200, Some("stopped")), "{v}");
    assert_eq!(fake.machine(&machine).unwrap()["state"], "stopped");
    let marker = format!("FAKE_FLY_MACHINE_ID={machine}");
    eventually("the machine's processes to end", async || processes_with(&marker).is_empty().then_some(())).await;

    // Started again: the same machine and disk, a new token.
    let (s, v) = api.post(&format!("/api/projects/{id}/start?wait=true"), json!({})).await;
    assert_eq!((s, v["status"].as_str()), (200, Some("running")), "{v}\n{}", hub.log());
    assert_eq!(fake.live_machines().len(), 1);
    assert_ne!(fake.env_of(&machine)["AETHER_MACHINE_TOKEN"], env["AETHER_MACHINE_TOKEN"]);
    let mut term = api.terminal(&id, "").await;
    term.send("cat notes.txt | tr a-z A-Z\n").await;
    term.expect("KEPT").await;
    term.close().await;

    let (s, _) = api.delete(&format!("/api/projects/{id}")).await;
    assert_eq!(s, 204, "{}", hub.log());
    assert!(fake.live_machines().is_empty() && fake.live_volumes().is_empty());
    eventually("the machine's processes to end", async || processes_with(&marker).is_empty().then_some(())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconciliation_destroys_orphans_and_reports_vanished_machines() {
    let root = TempDir::new("fake-fly");
    let fake = FakeFly::start(booting(&root)).await;
    let hub = hub_on(&fake, &[("AETHER_RECONCILE_INTERVAL_MS", "100"), ("AETHER_ORPHAN_GRACE_MS", "0")]).await;
    let api = hub.user().await;
    let id = api.running_project().await;
    let (s, _) = api.post(&format!("/api/projects/{id}/stop?wait=true"), json!({})).await;
    assert_eq!(s, 200);
    let machine = fake.live_machines()[0]["id"].as_str().unwrap().to_owned();

    // A machine whose project doesn't exist (a delete that half failed).
    let fly = fake.client(&fake.token);
    let orphan = json!({ "region": "iad", "skip_launch": true, "config": {
        "image": "registry.fly.io/aether-vms:vm-test",
        "metadata": { "aether_project_id": uuid::Uuid::new_v4().to_string() } } });
    let (s, made) = fly.post("/machines", orphan).await;
    assert_eq!(s, 200, "{made}");
    let orphan = made["id"].as_str().unwrap().to_owned();
    // Someone deletes the project's machine behind the hub's back.
    let (s, _) = fly.call("DELETE", &format!("/machines/{machine}?force=true"), None, None).await;
    assert_eq!(s, 200);

    eventually("the orphan destroyed", async || (fake.machine(&orphan)?["state"] == "destroyed").then_some(())).await;
    let project = eventually("the project marked", async || {
        let (_, p) = api.get(&format!("/api/projects/{id}")).await;
        (p["status"] == "error").then_some(p)
    })
    .await;
    let message = project["error_message"].as_str().unwrap();
    assert!(message.contains(&machine) && message.contains("no longer exists"), "{message}");

    // Starting again makes a new machine on the same disk.
    let (s, v) = api.post(&format!("/api/projects/{id}/start?wait=true"), json!({})).await;
    assert_eq!((s, v["status"].as_str()), (200, Some("running")), "{v}\n{}", hub.log());
    assert_eq!(fake.live_volumes().len(), 1);

    // Dropping the fake ends what its machines ran.
    let marker = format!("FAKE_FLY_MACHINE_ID={}", fake.live_machines()[0]["id"].as_str().unwrap());
    assert!(!processes_with(&marker).is_empty());
    drop(hub);
    drop(fake);
    eventually("the machine's processes to end", async || processes_with(&marker).is_empty().then_some(())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_that_never_comes_up_is_reported() {
    let root = TempDir::new("fake-fly");
    let mut options = booting(&root);
    options.boot = None; // machines "start" but nothing dials the hub
    let fake = FakeFly::start(options).await;
    let hub = hub_on(&fake, &[("AETHER_RECONCILE_INTERVAL_MS", "100"), ("AETHER_STUCK_AFTER_MS", "1000")]).await;
    let api = hub.user().await;
    let id = api.project("silent").await;
    let (s, v) = api.post(&format!("/api/projects/{id}/start"), json!({})).await;
    assert_eq!((s, v["status"].as_str()), (202, Some("starting")), "{v}");
    let project = eventually("the start reported", async || {
        let (_, p) = api.get(&format!("/api/projects/{id}")).await;
        (p["status"] == "error").then_some(p)
    })
    .await;
    assert_eq!(project["error_message"], "the VM did not come up within 1 second");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fly_errors_land_on_the_project() {
    let root = TempDir::new("fake-fly");
    let fake = FakeFly::start(booting(&root)).await;
    let hub = hub_on(&fake, &[]).await;
    let api = hub.user().await;
    let id = api.project("no room").await;
    fake.set_capacity("iad", false);
    // The contract's "not now" answer, with the reason the project shows.
    let (s, v) = api.post(&format!("/api/projects/{id}/start?wait=true"), json!({})).await;
    assert_eq!(s, 503, "{v}");
    assert_eq!(
        (v["error"]["code"].as_str(), v["error"]["status"].as_str()),
        (Some("unavailable"), Some("error")),
        "{v}"
    );
    let answered = v["error"]["message"].as_str().unwrap();
    let (_, p) = api.get(&format!("/api/projects/{id}")).await;
    assert_eq!(p["status"], "error");
    let message = p["error_message"].as_str().unwrap();
    assert!(message.contains("no capacity") && message.contains("insufficient_capacity"), "{message}");
    assert_eq!(answered, message, "the answer gives the same reason");
    assert!(!message.contains(&fake.token));
}
