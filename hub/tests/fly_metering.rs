//! Metering on Fly Machines (the fake, booting real aetherds): a machine's
//! record is opened by the hub's start and closed by its stop, and when the
//! machine runs on and then stops while no hub runs, the restarted hub
//! closes the record at the time Fly's event log gives for the stop: not
//! at the hub's death (the last heartbeat), nor at its restart. The
//! metered seconds match the machine's started-to-stopped events within
//! max(0.5 %, 2 s). A project's disk is metered in GB-hours from the boot
//! that made it until the project is deleted.

mod fake_fly;
mod support;

use fake_fly::{Boot, FakeFly, Options};
use serde_json::json;
use std::time::{Duration, Instant};
use support::{TempDir, TestHub};

fn fly_env(fake: &FakeFly) -> Vec<(String, String)> {
    [
        ("AETHER_COMPUTE", "fly"),
        ("FLY_API_URL", fake.url.as_str()),
        ("FLY_API_TOKEN", fake.token.as_str()),
        ("FLY_APP_NAME", fake.app.as_str()),
        ("FLY_REGION", "iad"),
        ("AETHER_FLY_IMAGE", "registry.fly.io/aether-vms:vm-test"),
        ("AETHER_METER_INTERVAL_MS", "300"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// The epoch seconds of the machine's latest event with `status`.
fn event_at(machine: &serde_json::Value, status: &str) -> f64 {
    let events = machine["events"].as_array().unwrap();
    let ts = events.iter().filter(|e| e["status"] == status).map(|e| e["timestamp"].as_i64().unwrap()).max();
    ts.unwrap_or_else(|| panic!("no {status} event: {machine}")) as f64 / 1000.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_machine_stopped_while_the_hub_is_down_is_metered_to_its_stop() {
    support::init();
    let root = TempDir::new("fake-fly");
    let fake = FakeFly::start(Options::booting(Boot { aetherd: TestHub::aetherd(), root: root.0.clone() })).await;
    let env = fly_env(&fake);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let dir = TempDir::new("aether-fly-metering");
    let db = support::fresh_database().await;
    let mut hub = TestHub::spawn(&dir.0, Some(db.clone()), "127.0.0.1:0", &env);
    hub.wait_ready().await;
    let mut api = hub.user().await;
    let id = api.running_project().await;
    let machine = fake.live_machines()[0]["id"].as_str().unwrap().to_owned();

    // A few seconds of running, then the hub dies and the machine is
    // stopped behind its back; the hub comes back a while later.
    let ran = Instant::now();
    support::eventually("the machine running a while", Duration::from_secs(10), || async {
        (ran.elapsed() > Duration::from_secs(3)).then_some(())
    })
    .await;
    hub.kill_hard();
    // The machine runs on unwatched for a while (no heartbeat reaches
    // anyone): it must be billed up to its stop, not to the hub's death.
    let killed = Instant::now();
    support::eventually("the machine running unwatched", Duration::from_secs(10), || async {
        (killed.elapsed() > Duration::from_secs(4)).then_some(())
    })
    .await;
    let fly = fake.client(&fake.token);
    let (s, v) = fly.post(&format!("/machines/{machine}/stop"), json!({})).await;
    assert_eq!(s, 200, "{v}");
    support::eventually("the machine stopped", Duration::from_secs(20), || async {
        (fake.machine(&machine)?["state"] == "stopped").then_some(())
    })
    .await;
    let stopped = Instant::now();
    support::eventually("time passing without a hub", Duration::from_secs(10), || async {
        (stopped.elapsed() > Duration::from_secs(4)).then_some(())
    })
    .await;
    let mut hub = TestHub::spawn(&dir.0, Some(db.clone()), "127.0.0.1:0", &env);
    hub.wait_ready().await;
    api.base = hub.http.clone();

    let pool = sqlx::PgPool::connect(&db).await.unwrap();
    let recs: Vec<(f64, Option<f64>)> = support::eventually("the record closed", Duration::from_secs(20), || async {
        let recs: Vec<(f64, Option<f64>)> = sqlx::query_as(
            "SELECT EXTRACT(EPOCH FROM started_at)::float8, EXTRACT(EPOCH FROM ended_at)::float8 \
             FROM usage_records WHERE project_id = $1::uuid ORDER BY started_at",
        )
        .bind(&id)
        .fetch_all(&pool)
        .await
        .unwrap();
        recs.iter().all(|r| r.1.is_some()).then_some(recs)
    })
    .await;
    let m = fake.machine(&machine).unwrap();
    let truth = event_at(&m, "stopped") - event_at(&m, "started");
    let metered: f64 = recs.iter().map(|r| r.1.unwrap() - r.0).sum();
    eprintln!("fly metering: truth {truth:.3} s, metered {metered:.3} s over {} records", recs.len());
    assert_eq!(recs.len(), 1, "{recs:?}");
    assert!((metered - truth).abs() <= (truth * 0.005).max(2.0), "metered {metered} vs truth {truth}");
    let (_, u) = api.get("/api/billing/usage").await;
    assert!((u["compute_seconds_used"].as_f64().unwrap() - truth).abs() <= 3.0, "{u}");
}

/// A project's disk (its Fly volume) counts GB-hours at its size from the
/// boot that made it, while the project exists, stopped or not, and no more
/// once it is deleted; the month's figure and the roll-up agree.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_projects_disk_is_metered_in_gb_hours_until_the_project_is_deleted() {
    support::init();
    let root = TempDir::new("fake-fly");
    let fake = FakeFly::start(Options::booting(Boot { aetherd: TestHub::aetherd(), root: root.0.clone() })).await;
    let env = fly_env(&fake);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let dir = TempDir::new("aether-fly-storage");
    let mut hub = TestHub::spawn(&dir.0, Some(support::fresh_database().await), "127.0.0.1:0", &env);
    hub.wait_ready().await;
    let api = hub.user().await;
    let (_, before) = api.get("/api/billing/usage").await;
    assert_eq!(before["storage_gb_hours"], 0.0, "no disk yet: {before}");
    let booted = Instant::now();
    let id = api.running_project().await;
    let (_, u) = api.get("/api/billing/usage").await;
    let size = u["storage_gb_used"].as_f64().unwrap();
    assert!(size > 0.0, "the project's volume: {u}");
    let (s, _) = api.post(&format!("/api/projects/{id}/stop?wait=true"), json!({})).await;
    assert_eq!(s, 200);
    // A stopped project's disk still counts.
    let stopped = Instant::now();
    support::eventually("time passing", Duration::from_secs(10), || async {
        (stopped.elapsed() > Duration::from_secs(2)).then_some(())
    })
    .await;
    let gb_hours = |u: &serde_json::Value| u["storage_gb_hours"].as_f64().unwrap();
    let (_, u) = api.get("/api/billing/usage").await;
    let upper = size * booted.elapsed().as_secs_f64() / 3600.0;
    let lower = size * stopped.elapsed().as_secs_f64() / 3600.0;
    assert!(gb_hours(&u) >= lower && gb_hours(&u) <= upper, "{} not within [{lower}, {upper}]", gb_hours(&u));

    let (s, _) = api.delete(&format!("/api/projects/{id}")).await;
    assert_eq!(s, 204);
    let (_, at_delete) = api.get("/api/billing/usage").await;
    let deleted = Instant::now();
    support::eventually("time passing after the delete", Duration::from_secs(10), || async {
        (deleted.elapsed() > Duration::from_secs(2)).then_some(())
    })
    .await;
    let (_, later) = api.get("/api/billing/usage").await;
    assert!(gb_hours(&at_delete) > gb_hours(&u), "it grew until the delete");
    assert_eq!(gb_hours(&later), gb_hours(&at_delete), "a deleted disk costs nothing more");
    let (s, months) = api.get("/api/billing/storage/monthly").await;
    assert_eq!(s, 200, "{months}");
    assert_eq!(months[0]["gb_hours"], later["storage_gb_hours"], "{months}");
}
