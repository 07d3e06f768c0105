//! The fake Fly Machines API against the published contract: every answer
//! fits the OpenAPI document's schemas, every route is one of its paths,
//! and the behaviours the hub depends on (transient states, wait and 408,
//! leases and 409, 429, insufficient_capacity, 401, 404, volumes bound to
//! machines) are the documented ones.

mod fake_fly;

use fake_fly::schema::Contract;
use fake_fly::{FakeFly, Options, Route};
use serde_json::{Value, json};
use std::time::Duration;

fn init() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

fn assert_fits(contract: &Contract, definition: &str, value: &Value) {
    let problems = contract.check(definition, value);
    assert!(problems.is_empty(), "{definition} does not fit the contract: {problems:#?}\n{value:#}");
}

fn machine_body(name: &str, volume: Option<&str>) -> Value {
    let mut config = json!({
        "image": "registry.fly.io/aether-vms:vm-1",
        "env": { "AETHER_PROJECT_ID": "p" },
        "guest": { "cpu_kind": "shared", "cpus": 1, "memory_mb": 1024 },
        "restart": { "policy": "on-failure", "max_retries": 3 },
        "stop_config": { "signal": "SIGTERM", "timeout": "10s" },
        "metadata": { "aether_project_id": "p" },
        "auto_destroy": false,
    });
    if let Some(v) = volume {
        config["mounts"] = json!([{ "volume": v, "path": "/home/dev" }]);
    }
    json!({ "name": name, "region": "iad", "config": config })
}

#[test]
fn every_route_is_in_the_contract() {
    let contract = Contract::load();
    for (method, path) in fake_fly::routes::ROUTES {
        assert!(contract.has_route(method, path), "{method} {path} is not in the contract");
    }
}

#[test]
fn the_checker_catches_what_does_not_fit() {
    let contract = Contract::load();
    let bad = json!({ "id": 7, "state": "started", "surprise": true,
                      "config": { "restart": { "policy": "sometimes" }, "guest": { "cpus": "two" } } });
    let problems = contract.check("Machine", &bad);
    for want in ["Machine.id", "Machine.surprise", "config.restart.policy", "config.guest.cpus"] {
        assert!(problems.iter().any(|p| p.contains(want)), "{want} not caught: {problems:#?}");
    }
    assert!(contract.check("Machine", &json!({ "id": "m", "version": "v", "nonce": null })).is_empty());
}

#[tokio::test]
async fn answers_fit_the_contracts_schemas() {
    init();
    let contract = Contract::load();
    let fake = FakeFly::start(Options::manual()).await;
    let api = fake.client(&fake.token);

    let (s, vol) =
        api.post("/volumes", json!({ "name": "ae_test", "region": "iad", "size_gb": 10, "encrypted": true })).await;
    assert_eq!(s, 200, "{vol}");
    assert_fits(&contract, "Volume", &vol);
    let vol_id = vol["id"].as_str().unwrap();

    let (s, m) = api.post("/machines", machine_body("one", Some(vol_id))).await;
    assert_eq!(s, 200, "{m}");
    assert_fits(&contract, "Machine", &m);
    let id = m["id"].as_str().unwrap().to_owned();
    fake.advance(Duration::from_secs(5));

    let (s, got) = api.get(&format!("/machines/{id}")).await;
    assert_eq!((s, got["state"].as_str()), (200, Some("started")));
    assert_fits(&contract, "Machine", &got);
    let (s, list) = api.get("/machines").await;
    assert_eq!(s, 200);
    for m in list.as_array().unwrap() {
        assert_fits(&contract, "Machine", m);
    }
    let (s, lease) = api.post(&format!("/machines/{id}/lease"), json!({ "ttl": 30 })).await;
    assert_eq!((s, lease["status"].as_str()), (201, Some("success")), "{lease}");
    assert_fits(&contract, "Lease", &lease["data"]);
    let nonce = lease["data"]["nonce"].as_str().unwrap();
    let mut update = machine_body("one", Some(vol_id));
    update["skip_launch"] = json!(false);
    let (s, updated) = api.call("POST", &format!("/machines/{id}"), Some(update), Some(nonce)).await;
    assert_eq!(s, 200, "{updated}");
    assert_fits(&contract, "Machine", &updated);
    assert_ne!(updated["instance_id"], got["instance_id"], "an update makes a new version");
    let (s, vols) = api.get("/volumes").await;
    assert_eq!(s, 200);
    assert_fits(&contract, "Volume", &vols[0]);
    assert_eq!(vols[0]["attached_machine_id"], json!(id));

    let (s, err) = api.get("/machines/nope").await;
    assert_eq!(s, 404);
    assert_fits(&contract, "ErrorResponse", &err);
    fake.set_capacity("iad", false);
    let (s, err) = api.post("/machines", machine_body("two", None)).await;
    assert_eq!((s, err["status"].as_str()), (412, Some("insufficient_capacity")), "{err}");
    assert_fits(&contract, "ErrorResponse", &err);
}

#[tokio::test]
async fn machines_go_through_transient_states_on_the_clock() {
    init();
    let fake = FakeFly::start(Options::manual()).await;
    let api = fake.client(&fake.token);
    let state = async |id: &str| api.get(&format!("/machines/{id}")).await.1["state"].as_str().unwrap().to_owned();

    let (_, m) = api.post("/machines", machine_body("one", None)).await;
    let id = m["id"].as_str().unwrap().to_owned();
    assert_eq!(m["state"], "created");
    assert_eq!(state(&id).await, "starting");
    fake.advance(Duration::from_secs(3));
    assert_eq!(state(&id).await, "started");

    let (s, _) = api.call("DELETE", &format!("/machines/{id}"), None, None).await;
    assert_eq!(s, 412, "a running machine is destroyed only with force");
    let (s, _) = api.post(&format!("/machines/{id}/stop"), json!({ "signal": "SIGTERM", "timeout": "ten" })).await;
    assert_eq!(s, 400, "the stop timeout is a Go duration");
    let (s, _) = api.post(&format!("/machines/{id}/stop"), json!({ "signal": "SIGTERM", "timeout": "10s" })).await;
    assert_eq!(s, 200);
    assert_eq!(state(&id).await, "stopping");
    fake.advance(Duration::from_secs(2));
    assert_eq!(state(&id).await, "stopped");

    let (s, started) = api.post(&format!("/machines/{id}/start"), json!({})).await;
    assert_eq!((s, started["previous_state"].as_str()), (200, Some("stopped")));
    let (s, _) = api.post(&format!("/machines/{id}/start"), json!({})).await;
    assert_eq!(s, 412, "starting a machine that is starting is refused");

    let (s, _) = api.call("DELETE", &format!("/machines/{id}?force=true"), None, None).await;
    assert_eq!(s, 200);
    assert_eq!(state(&id).await, "destroying");
    fake.advance(Duration::from_secs(1));
    assert_eq!(state(&id).await, "destroyed");
    assert_eq!(api.get("/machines").await.1, json!([]), "the list leaves out destroyed machines");
    assert_eq!(api.get("/machines?include_deleted=true").await.1.as_array().unwrap().len(), 1);
    assert_eq!(api.post(&format!("/machines/{id}/start"), json!({})).await.0, 404);
}

#[tokio::test]
async fn wait_answers_408_after_its_clamped_timeout() {
    init();
    let fake = FakeFly::start(Options::manual()).await;
    let api = fake.client(&fake.token);
    let (_, m) = api.post("/machines", machine_body("one", None)).await;
    let id = m["id"].as_str().unwrap().to_owned();

    assert_eq!(api.get(&format!("/machines/{id}/wait?state=sideways")).await.0, 400);
    assert_eq!(api.get(&format!("/machines/{id}/wait?timeout=soon")).await.0, 400);
    assert_eq!(api.get("/machines/nope/wait?state=started").await.0, 404);

    let wait = async |query: &str, advance: u64| {
        let waiting = {
            let api = fake.client(&fake.token);
            let path = format!("/machines/{id}/wait?{query}");
            tokio::spawn(async move { api.get(&path).await })
        };
        let before = fake.waits_received();
        poll("the wait to arrive", || fake.waits_received() > before).await;
        fake.advance(Duration::from_secs(advance));
        waiting.await.unwrap()
    };
    // A state that comes in time: 200 with the state.
    let (s, body) = wait("state=started&timeout=600", 3).await;
    assert_eq!((s, body["state"].as_str()), (200, Some("started")), "{body}");
    // timeout=0 is clamped to 1 s, timeout=600 to 60 s.
    assert_eq!(wait("state=stopped&timeout=0", 1).await.0, 408);
    assert_eq!(wait("state=stopped&timeout=600", 60).await.0, 408);
}

#[tokio::test]
async fn leases_guard_mutations() {
    init();
    let fake = FakeFly::start(Options::manual()).await;
    let api = fake.client(&fake.token);
    let (_, m) = api.post("/machines", machine_body("one", None)).await;
    let id = m["id"].as_str().unwrap().to_owned();
    fake.advance(Duration::from_secs(3));

    let (_, lease) = api.post(&format!("/machines/{id}/lease"), json!({ "ttl": 10 })).await;
    let nonce = lease["data"]["nonce"].as_str().unwrap().to_owned();
    let (s, held) = api.post(&format!("/machines/{id}/lease"), json!({ "ttl": 10 })).await;
    assert_eq!(s, 409);
    assert!(held["error"].as_str().unwrap().contains("lease currently held by"), "{held}");
    let stop = json!({ "signal": "SIGTERM" });
    assert_eq!(api.call("POST", &format!("/machines/{id}/stop"), Some(stop.clone()), None).await.0, 409);
    assert_eq!(api.call("POST", &format!("/machines/{id}/stop"), Some(stop.clone()), Some("wrong")).await.0, 409);
    assert_eq!(api.call("POST", &format!("/machines/{id}/stop"), Some(stop), Some(&nonce)).await.0, 200);
    assert_eq!(api.call("DELETE", &format!("/machines/{id}/lease"), None, Some(&nonce)).await.0, 200);
    assert_eq!(fake.lease_of(&id), None);

    // A lease nobody releases expires with its ttl (after a pause: leasing
    // is rate limited like every action on a machine).
    fake.advance(Duration::from_secs(3));
    api.post(&format!("/machines/{id}/lease"), json!({ "ttl": 10 })).await;
    assert_eq!(api.post(&format!("/machines/{id}/lease"), json!({})).await.0, 409);
    fake.advance(Duration::from_secs(10));
    assert_eq!(api.post(&format!("/machines/{id}/lease"), json!({})).await.0, 201);
}

#[tokio::test]
async fn tokens_apps_rate_limits_and_bound_volumes() {
    init();
    let fake = FakeFly::start(Options::manual()).await;
    let api = fake.client(&fake.token);

    let (s, body) = fake.client("wrong").get("/machines").await;
    assert_eq!((s, body["error"].as_str()), (401, Some("Authenticate: token validation error")));
    let mut other = fake.client(&fake.token);
    other.base = other.base.replace(&fake.app, "someone-elses-app");
    assert_eq!(other.get("/machines").await.0, 404);

    // Actions on one machine: 1/s in bursts of 3.
    let (_, m) = api.post("/machines", machine_body("one", None)).await;
    let id = m["id"].as_str().unwrap().to_owned();
    let statuses = [
        api.post(&format!("/machines/{id}/stop"), json!({})).await.0,
        api.post(&format!("/machines/{id}/stop"), json!({})).await.0,
        api.post(&format!("/machines/{id}/stop"), json!({})).await.0,
        api.post(&format!("/machines/{id}/stop"), json!({})).await.0,
    ];
    assert_eq!(statuses, [200, 200, 200, 429]);
    fake.advance(Duration::from_secs(1));
    assert_eq!(api.post(&format!("/machines/{id}/stop"), json!({})).await.0, 200);
    assert_eq!(fake.count(Route::Stop, 429), 1);

    // A volume stays bound to its machine until the machine is destroyed.
    let (_, vol) = api.post("/volumes", json!({ "name": "ae_data", "region": "iad" })).await;
    assert_eq!(vol["size_gb"], 3, "3 GB by default");
    let vol_id = vol["id"].as_str().unwrap().to_owned();
    assert_eq!(api.post("/volumes", json!({ "name": "Not Valid", "region": "iad" })).await.0, 400);
    let (_, m) = api.post("/machines", machine_body("two", Some(&vol_id))).await;
    let two = m["id"].as_str().unwrap().to_owned();
    let (s, again) = api.post("/machines", machine_body("three", Some(&vol_id))).await;
    assert_eq!(s, 422, "{again}");
    let (s, bound) = api.call("DELETE", &format!("/volumes/{vol_id}"), None, None).await;
    assert_eq!(s, 412);
    assert!(bound["error"].as_str().unwrap().contains("bound to machine"), "{bound}");
    api.call("DELETE", &format!("/machines/{two}?kill=true"), None, None).await;
    fake.advance(Duration::from_secs(1));
    let (s, deleted) = api.call("DELETE", &format!("/volumes/{vol_id}"), None, None).await;
    assert_eq!((s, deleted["state"].as_str()), (200, Some("destroyed")), "DELETE answers the volume");
    assert_eq!(api.get(&format!("/volumes/{vol_id}")).await.1["state"], "destroyed");
    assert_eq!(api.call("DELETE", &format!("/volumes/{vol_id}"), None, None).await.0, 404);
}

/// Polls `f` until it holds (the fake runs on this test's runtime).
async fn poll(what: &str, f: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
