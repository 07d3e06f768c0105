//! The `fly` compute provider against the fake Machines API: a project's
//! machine and volume through their whole life, waits answered 408, retried
//! 429s and 5xx, `Retry-After` waited out, 4xx surfaced untouched, capacity
//! errors explained, a lost create answer that doesn't become a second
//! machine, leases held by someone else, volumes Fly keeps bound after
//! their machine is gone.

mod fake_fly;

use aether_hub::compute::fly::api::RetryPolicy;
use aether_hub::compute::fly::model::volume_name;
use aether_hub::compute::fly::{FlyCompute, FlyConfig, HubDial};
use aether_hub::compute::{Compute, MachineState, StartSpec};
use fake_fly::{FakeFly, Fault, Options, Route};
use serde_json::json;
use std::time::Duration;
use uuid::Uuid;

const CA: &str = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";

fn provider(fake: &FakeFly, tune: impl FnOnce(&mut FlyConfig)) -> FlyCompute {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut c = FlyConfig::new(&fake.url, &fake.token, &fake.app, "iad", "registry.fly.io/aether-vms:vm-test");
    c.retry = RetryPolicy { base: Duration::from_millis(5), cap: Duration::from_millis(50), attempts: 5 };
    c.request_timeout = Duration::from_secs(5);
    c.op_timeout = Duration::from_secs(30);
    tune(&mut c);
    let hub = HubDial {
        addr: "hub.example.com:4433".into(),
        ca_pem: Some(CA.into()),
        server_name: Some("aether-hub".into()),
    };
    FlyCompute::new(c, hub).unwrap()
}

fn spec(project: Uuid, token: &str) -> StartSpec {
    StartSpec { project_id: project, machine_token: token.into(), env: vec![], limits: Default::default() }
}

/// The project's one live machine at the fake.
fn machine_of(fake: &FakeFly, project: Uuid) -> serde_json::Value {
    let mine: Vec<_> = fake
        .live_machines()
        .into_iter()
        .filter(|m| m["config"]["metadata"]["aether_project_id"] == project.to_string())
        .collect();
    assert_eq!(mine.len(), 1, "{mine:#?}");
    mine[0].clone()
}

/// Polls `f` until it holds (the fake runs on this test's runtime).
async fn poll(what: &str, f: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn a_projects_machine_lives_and_dies_through_the_api() {
    let fake = FakeFly::start(Options::auto()).await;
    let fly = provider(&fake, |_| {});
    let project = Uuid::new_v4();

    assert_eq!(fly.create(project).await.unwrap(), format!("aether-{project}"));
    assert!(fake.log().is_empty(), "creating a project creates nothing at Fly");
    assert_eq!(fly.status(project).await.unwrap(), MachineState::Missing);

    fly.start(&spec(project, "token-one")).await.unwrap();
    let m = machine_of(&fake, project);
    let id = m["id"].as_str().unwrap().to_owned();
    assert_eq!(m["state"], "starting", "start returns once the machine is booting");
    fly.wait_state(project, "started").await.unwrap();
    assert_eq!(fake.machine(&id).unwrap()["state"], "started");

    let vols = fake.live_volumes();
    assert_eq!(vols.len(), 1);
    let vol = vols[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(
        (vols[0]["name"].as_str(), vols[0]["size_gb"].as_u64()),
        (Some(volume_name(project).as_str()), Some(10))
    );
    assert_eq!(vols[0]["attached_machine_id"], json!(id));
    let config = &m["config"];
    assert_eq!(m["name"], format!("aether-{project}"));
    assert_eq!(m["region"], "iad");
    assert_eq!(config["image"], "registry.fly.io/aether-vms:vm-test");
    assert_eq!(config["mounts"], json!([{ "volume": vol, "path": "/home/dev" }]));
    assert_eq!(config["metadata"], json!({ "aether_project_id": project.to_string() }));
    assert_eq!(config["restart"]["policy"], "on-failure");
    assert_eq!(config["guest"], json!({ "cpu_kind": "shared", "cpus": 1, "memory_mb": 1024 }));
    assert_eq!(config["stop_config"], json!({ "signal": "SIGTERM", "timeout": "10s" }));
    let env = fake.env_of(&id);
    assert_eq!(env["AETHER_HUB_ADDR"], "hub.example.com:4433");
    assert_eq!(env["AETHER_PROJECT_ID"], project.to_string());
    assert_eq!(env["AETHER_MACHINE_TOKEN"], "token-one");
    assert_eq!(env["AETHER_HOME"], "/home/dev");
    assert_eq!(env["AETHER_HUB_CA_PEM"], CA);
    assert_eq!(env["AETHER_HUB_SERVER_NAME"], "aether-hub");
    assert_eq!(fly.status(project).await.unwrap(), MachineState::Running);
    assert_eq!(fly.placement(project), Some((id.clone(), Some(vol.clone()))));

    fly.stop(project).await.unwrap();
    assert_eq!(fake.machine(&id).unwrap()["state"], "stopped", "stop returns once the machine has stopped");
    assert_eq!(fly.status(project).await.unwrap(), MachineState::Stopped);

    // A second start reuses the machine and its disk with a new token.
    fly.start(&spec(project, "token-two")).await.unwrap();
    fly.wait_state(project, "started").await.unwrap();
    let again = machine_of(&fake, project);
    assert_eq!(again["id"], json!(id));
    assert_ne!(again["instance_id"], m["instance_id"]);
    assert_eq!(fake.env_of(&id)["AETHER_MACHINE_TOKEN"], "token-two");
    assert_eq!(fake.live_volumes().len(), 1);

    fly.destroy(project).await.unwrap();
    assert!(fake.live_machines().is_empty() && fake.live_volumes().is_empty());
    assert_eq!(fly.status(project).await.unwrap(), MachineState::Missing);
    assert!(fly.list().await.unwrap().is_empty());

    // Waits name the machine version they wait on.
    let waits: Vec<_> = fake.log().into_iter().filter(|l| l.route == Route::Wait).collect();
    assert!(!waits.is_empty() && waits.iter().all(|l| l.path.contains("instance_id=")), "{waits:#?}");

    // Every state change held the lease, and gave it back.
    let changes = [Route::UpdateMachine, Route::Start, Route::Stop, Route::DeleteMachine];
    let log = fake.log();
    let mutations: Vec<_> = log.iter().filter(|l| changes.contains(&l.route)).collect();
    assert_eq!(mutations.len(), 4, "{mutations:#?}");
    assert!(mutations.iter().all(|l| l.nonce.is_some() && l.status == 200), "{mutations:#?}");
    assert_eq!(
        fake.count(Route::AcquireLease, 201),
        fake.log().iter().filter(|l| l.route == Route::ReleaseLease).count()
    );
}

#[tokio::test]
async fn a_wait_answered_408_is_asked_again_until_the_state_comes() {
    let mut options = Options::auto();
    options.timing.boot = Duration::from_secs(150);
    let fake = FakeFly::start(options).await;
    let fly = provider(&fake, |_| {});
    let project = Uuid::new_v4();
    fly.start(&spec(project, "token-abcdefgh")).await.unwrap();
    fly.wait_state(project, "started").await.unwrap();
    assert!(fake.count(Route::Wait, 408) >= 2, "{:#?}", fake.log());
    assert_eq!(fake.count(Route::Wait, 200), 1);
    assert!(fake.now() >= Duration::from_secs(150));
}

#[tokio::test]
async fn rate_limits_and_server_errors_are_retried() {
    let fake = FakeFly::start(Options::auto()).await;
    let fly = provider(&fake, |_| {});
    let project = Uuid::new_v4();
    fake.inject(Route::ListMachines, Fault::status(503, "upstream unavailable"));
    fake.inject(Route::CreateVolume, Fault::status(429, "rate limit exceeded"));
    fake.inject(Route::CreateVolume, Fault::status(503, "upstream unavailable"));
    fake.inject(Route::CreateMachine, Fault::status(502, "bad gateway"));
    fake.inject(Route::CreateMachine, Fault::status(429, "rate limit exceeded"));

    fly.start(&spec(project, "token-abcdefgh")).await.unwrap();
    assert_eq!(fake.live_machines().len(), 1);
    assert_eq!(fake.live_volumes().len(), 1);
    assert_eq!(fake.count(Route::ListMachines, 503), 1);
    for route in [Route::CreateVolume, Route::CreateMachine] {
        let codes: Vec<u16> = fake.log().iter().filter(|l| l.route == route).map(|l| l.status).collect();
        assert_eq!(codes.len(), 3, "{route:?}: {codes:?}");
        assert_eq!(codes.last(), Some(&200), "{route:?}: {codes:?}");
    }
}

/// A 429's `Retry-After` is waited out, creates included (which are sent
/// again by the provider, not the client), up to a bound; asked to wait
/// longer than that, the start fails at once and says so.
#[tokio::test]
async fn a_rate_limit_is_waited_out_as_fly_asks() {
    let fake = FakeFly::start(Options::auto()).await;
    // Five tries 5-50 ms apart: all within a quarter of a second.
    let fly = provider(&fake, |_| {});
    let project = Uuid::new_v4();
    let routes = [Route::ListMachines, Route::CreateVolume, Route::CreateMachine];
    for route in routes {
        fake.inject(route, Fault::Throttle(Duration::from_secs(1)));
    }
    let started = std::time::Instant::now();
    fly.start(&spec(project, "token-abcdefgh")).await.unwrap();
    assert!(started.elapsed() >= Duration::from_secs(3), "{:?}", started.elapsed());
    machine_of(&fake, project);
    for route in routes {
        assert_eq!(fake.count(route, 429), 1, "{route:?} was asked again within its Retry-After: {:#?}", fake.log());
    }

    fake.inject(Route::ListMachines, Fault::Throttle(Duration::from_secs(3600)));
    let err = format!("{:#}", fly.start(&spec(Uuid::new_v4(), "token-ijklmnop")).await.unwrap_err());
    assert!(err.contains("429") && err.contains("3600"), "{err}");
    assert_eq!(fake.count(Route::ListMachines, 429), 2, "not asked again before Fly said");
}

#[tokio::test]
async fn client_errors_are_not_retried_and_say_why() {
    let fake = FakeFly::start(Options::auto()).await;
    let fly = provider(&fake, |_| {});
    let project = Uuid::new_v4();

    fake.inject(Route::CreateMachine, Fault::status(422, "invalid config.guest.memory_mb: too small"));
    let err = format!("{:#}", fly.start(&spec(project, "token-abcdefgh")).await.unwrap_err());
    assert!(err.contains("422") && err.contains("memory_mb: too small") && err.contains("iad"), "{err}");
    assert_eq!(fake.log().iter().filter(|l| l.route == Route::CreateMachine).count(), 1);

    fly.start(&spec(project, "token-abcdefgh")).await.unwrap();
    fly.wait_state(project, "started").await.unwrap();
    fake.inject(Route::Stop, Fault::status(404, "machine not found"));
    let err = format!("{:#}", fly.stop(project).await.unwrap_err());
    assert!(err.contains("404") && err.contains("not found"), "{err}");
    assert_eq!(fake.log().iter().filter(|l| l.route == Route::Stop).count(), 1);
    assert_eq!(fake.lease_of(machine_of(&fake, project)["id"].as_str().unwrap()), None, "the lease was given back");

    let mut wrong = provider(&fake, |c| c.api_token = "wrong".into());
    let err = format!("{:#}", wrong.status(project).await.unwrap_err());
    assert!(err.contains("401") && err.contains("FLY_API_TOKEN"), "{err}");
    wrong = provider(&fake, |c| c.app = "not-our-app".into());
    assert!(format!("{:#}", wrong.list().await.unwrap_err()).contains("404"));
}

#[tokio::test]
async fn a_token_echoed_in_an_error_is_not_repeated() {
    let fake = FakeFly::start(Options::auto()).await;
    let fly = provider(&fake, |_| {});
    let project = Uuid::new_v4();
    let token = format!("token-{}", Uuid::new_v4().simple());
    let echo = format!("invalid env: AETHER_MACHINE_TOKEN={token} is not allowed");
    fake.inject(Route::CreateMachine, Fault::status(422, &echo));
    let err = format!("{:#}", fly.start(&spec(project, &token)).await.unwrap_err());
    assert!(!err.contains(&token) && err.contains("AETHER_MACHINE_TOKEN=<redacted>"), "{err}");
}

#[tokio::test]
async fn no_capacity_in_the_region_is_explained_and_not_retried() {
    let fake = FakeFly::start(Options::auto()).await;
    let fly = provider(&fake, |_| {});
    let project = Uuid::new_v4();
    fake.set_capacity("iad", false);
    let err = format!("{:#}", fly.start(&spec(project, "token-abcdefgh")).await.unwrap_err());
    assert!(err.contains("no capacity") && err.contains("insufficient_capacity") && err.contains("iad"), "{err}");
    assert_eq!(fake.log().iter().filter(|l| l.route == Route::CreateMachine).count(), 1);

    fake.set_capacity("iad", true);
    fly.start(&spec(project, "token-abcdefgh")).await.unwrap();
    assert_eq!(fake.live_volumes().len(), 1, "the volume made before is used");
}

#[tokio::test]
async fn a_create_whose_answer_was_lost_is_not_made_twice() {
    let fake = FakeFly::start(Options::auto()).await;
    let fly = provider(&fake, |c| c.request_timeout = Duration::from_secs(1));
    let project = Uuid::new_v4();
    fake.inject(Route::CreateVolume, Fault::LoseResponse);
    fake.inject(Route::CreateMachine, Fault::LoseResponse);

    fly.start(&spec(project, "token-abcdefgh")).await.unwrap();
    assert_eq!(fake.live_volumes().len(), 1);
    machine_of(&fake, project);
    assert_eq!(fake.log().iter().filter(|l| l.route == Route::CreateVolume).count(), 1);
    assert_eq!(fake.log().iter().filter(|l| l.route == Route::CreateMachine).count(), 1);
    fly.wait_state(project, "started").await.unwrap();
}

#[tokio::test]
async fn a_machine_leased_by_someone_else_is_waited_for() {
    let fake = FakeFly::start(Options::auto()).await;
    let fly = provider(&fake, |_| {});
    let project = Uuid::new_v4();
    fly.start(&spec(project, "token-abcdefgh")).await.unwrap();
    fly.wait_state(project, "started").await.unwrap();
    let id = machine_of(&fake, project)["id"].as_str().unwrap().to_owned();

    let theirs = fake.hold_lease(&id, Duration::from_secs(60));
    let stopping = tokio::spawn(async move {
        let result = fly.stop(project).await;
        (fly, result)
    });
    poll("a refused lease", || fake.count(Route::AcquireLease, 409) > 0).await;
    assert_eq!(fake.lease_of(&id), Some(theirs));
    fake.advance(Duration::from_secs(61));
    let (fly, result) = stopping.await.unwrap();
    result.unwrap();
    assert_eq!(fake.machine(&id).unwrap()["state"], "stopped");
    assert_eq!(fake.lease_of(&id), None);

    // A lease that outlasts the operation's patience is an error that says so.
    fake.hold_lease(&id, Duration::from_secs(3600));
    let impatient = provider(&fake, |c| c.op_timeout = Duration::from_millis(300));
    let err = format!("{:#}", impatient.start(&spec(project, "token-ijklmnop")).await.unwrap_err());
    assert!(err.contains("leased by another operation"), "{err}");
    drop(fly);
}

#[tokio::test]
async fn destroy_waits_for_fly_to_release_the_volume() {
    let mut options = Options::auto();
    options.timing.unbind = Duration::from_secs(30);
    let fake = FakeFly::start(options).await;
    let fly = provider(&fake, |_| {});
    let project = Uuid::new_v4();
    fly.start(&spec(project, "token-abcdefgh")).await.unwrap();

    let destroying = tokio::spawn(async move { fly.destroy(project).await });
    poll("a refused volume delete", || fake.count(Route::DeleteVolume, 412) > 0).await;
    assert_eq!(fake.live_volumes().len(), 1);
    fake.advance(Duration::from_secs(30));
    destroying.await.unwrap().unwrap();
    assert!(fake.live_volumes().is_empty() && fake.live_machines().is_empty());
}

#[tokio::test]
async fn machines_are_found_by_their_metadata_after_a_restart() {
    let fake = FakeFly::start(Options::auto()).await;
    let project = Uuid::new_v4();
    provider(&fake, |_| {}).start(&spec(project, "token-abcdefgh")).await.unwrap();
    let id = machine_of(&fake, project)["id"].as_str().unwrap().to_owned();

    // Something else in the app, and a volume left without its machine.
    let api = fake.client(&fake.token);
    let foreign = json!({ "region": "iad", "config": { "image": "nginx", "metadata": { "role": "other" } } });
    assert_eq!(api.post("/machines", foreign).await.0, 200);
    let lonely = Uuid::new_v4();
    let (s, vol) = api.post("/volumes", json!({ "name": volume_name(lonely), "region": "iad" })).await;
    assert_eq!(s, 200);

    let restarted = provider(&fake, |_| {});
    assert_eq!(restarted.placement(project), None, "nothing remembered yet");
    restarted.wait_state(project, "started").await.unwrap();
    assert_eq!(restarted.status(project).await.unwrap(), MachineState::Running);
    let mut listed = restarted.list().await.unwrap();
    listed.sort();
    let mut want = vec![project, lonely];
    want.sort();
    assert_eq!(listed, want);
    let inventory = restarted.inventory().await.unwrap();
    let mine = inventory.iter().find(|l| l.project == project).unwrap();
    assert_eq!(
        (mine.machine_id.as_deref(), mine.state, mine.detail.as_str()),
        (Some(id.as_str()), MachineState::Running, "started")
    );
    let orphan = inventory.iter().find(|l| l.project == lonely).unwrap();
    assert_eq!((orphan.machine_id.as_deref(), orphan.volume_id.as_deref()), (None, vol["id"].as_str()));
    assert_eq!(inventory.len(), 2, "the foreign machine is not ours: {inventory:#?}");
}
