//! Projects: CRUD, start and stop, and tenancy (another user's project is a 404).

mod support;

use serde_json::json;
use std::time::Duration;
use support::TestHub;

#[tokio::test]
async fn create_list_rename_start_stop_delete() {
    let hub = TestHub::start().await;
    let api = hub.user().await;

    let a = api.project("first").await;
    let b = api.project("second").await;
    let (s, v) = api.get("/api/projects").await;
    assert_eq!(s, 200);
    let ids: Vec<_> = v.as_array().unwrap().iter().map(|p| p["id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(ids, vec![b.clone(), a.clone()], "newest first");
    assert_eq!(v[0]["status"], "stopped");

    let (s, v) = api.patch(&format!("/api/projects/{a}"), json!({"name": "renamed", "description": "d"})).await;
    assert_eq!((s, v["name"].as_str(), v["description"].as_str()), (200, Some("renamed"), Some("d")), "{v}");
    let (s, v) = api.patch(&format!("/api/projects/{a}"), json!({"name": "  "})).await;
    assert_eq!((s, v["error"]["code"].as_str()), (400, Some("invalid_request")));

    let (s, v) = api.post(&format!("/api/projects/{a}/start?wait=true"), json!({})).await;
    assert_eq!((s, v["status"].as_str()), (200, Some("running")), "{v}");
    let (s, v) = api.post(&format!("/api/projects/{a}/stop?wait=true"), json!({})).await;
    assert_eq!((s, v["status"].as_str()), (200, Some("stopped")), "{v}");
    let (_, v) = api.get(&format!("/api/projects/{a}")).await;
    assert_eq!(v["status"], "stopped");

    // Without wait, start answers 202 at once and the project gets running.
    let (s, v) = api.post(&format!("/api/projects/{a}/start"), json!({})).await;
    assert_eq!(s, 202, "{v}");
    support::eventually("running", support::DEADLINE, || {
        let api = api.clone();
        let a = a.clone();
        async move { (api.get(&format!("/api/projects/{a}")).await.1["status"] == "running").then_some(()) }
    })
    .await;

    let home = hub.data.join("vms").join(&a).join("home");
    assert!(home.exists());
    let (s, _) = api.delete(&format!("/api/projects/{a}")).await;
    assert_eq!(s, 204);
    assert_eq!(api.get(&format!("/api/projects/{a}")).await.0, 404);
    assert!(!home.exists(), "deleting a project removes its VM's home");
    support::eventually("no vm process left", support::DEADLINE, || async {
        std::fs::read_dir("/proc")
            .unwrap()
            .filter_map(|e| e.ok())
            .all(|e| {
                let env = std::fs::read(e.path().join("environ")).unwrap_or_default();
                !env.windows(a.len()).any(|w| w == a.as_bytes())
            })
            .then_some(())
    })
    .await;
}

#[tokio::test]
async fn another_users_project_is_404_everywhere() {
    let hub = TestHub::start().await;
    let owner = hub.user().await;
    let other = hub.user().await;
    let id = owner.running_project().await;

    let p = format!("/api/projects/{id}");
    let checks = [
        other.get(&p).await,
        other.patch(&p, json!({"name": "mine now"})).await,
        other.post(&format!("{p}/start?wait=true"), json!({})).await,
        other.post(&format!("{p}/stop"), json!({})).await,
        other.get(&format!("{p}/terminals")).await,
        other.delete(&format!("{p}/terminals/main")).await,
        other.get(&format!("{p}/events")).await,
        other.post("/api/tickets", json!({"project_id": id, "purpose": "terminal"})).await,
        other.delete(&p).await,
    ];
    for (i, (s, v)) in checks.iter().enumerate() {
        assert_eq!((*s, v["error"]["code"].as_str()), (404, Some("not_found")), "check {i}: {v}");
    }
    let (_, list) = other.get("/api/projects").await;
    assert_eq!(list, json!([]));
    // A ticket of the owner's is no use on a path that names another project.
    let theirs = other.project("theirs").await;
    let ticket = owner.ticket(&id, "terminal").await;
    let refused = support::Term::connect(&hub.http, &theirs, &format!("ticket={ticket}")).await.err().unwrap();
    assert_eq!(refused.0, 404, "{refused:?}");
    // And nothing changed for the owner.
    let (s, v) = owner.get(&p).await;
    assert_eq!((s, v["status"].as_str(), v["name"].as_str()), (200, Some("running"), Some("demo")));
    assert_eq!(owner.get("/api/projects/not-a-uuid").await.0, 404);
}

#[tokio::test]
async fn the_free_plan_limits_projects() {
    let hub = TestHub::start().await;
    let api = hub.user().await;
    for i in 0..5 {
        api.project(&format!("p{i}")).await;
    }
    let (s, v) = api.post("/api/projects", json!({"name": "one too many"})).await;
    assert_eq!((s, v["error"]["code"].as_str()), (422, Some("limit_reached")), "{v}");
}

#[tokio::test]
async fn the_event_stream_reports_status_changes() {
    let hub = TestHub::start().await;
    let api = hub.user().await;
    let id = api.project("events").await;
    let resp = reqwest::Client::new()
        .get(format!("{}/api/projects/{id}/events", hub.http))
        .bearer_auth(api.token.as_deref().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let mut resp = resp;
    let (s, _) = api.post(&format!("/api/projects/{id}/start?wait=true"), json!({})).await;
    assert_eq!(s, 200);
    let mut seen = String::new();
    let deadline = tokio::time::Instant::now() + support::DEADLINE;
    while !seen.contains("\"status\":\"running\"") {
        let chunk = tokio::time::timeout_at(deadline, resp.chunk()).await.expect("event in time").unwrap().unwrap();
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(seen.contains("event: status"), "{seen}");
    assert!(seen.contains("\"status\":\"starting\""), "{seen}");
}

#[tokio::test]
async fn env_vars_are_sealed_at_rest_and_reach_the_vm() {
    support::init();
    let dir = support::TempDir::new("aether-env");
    let db = support::fresh_database().await;
    let mut hub = TestHub::spawn(&dir.0, Some(db.clone()), "127.0.0.1:0", &[]);
    hub.wait_ready().await;
    let api = hub.user().await;
    let env = json!({"API_KEY": "s3cret-value-1", "GREETING": "hello there"});
    let (s, v) = api.post("/api/projects", json!({"name": "envy", "env_vars": env})).await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["env_vars"], env);
    let id = v["id"].as_str().unwrap().to_owned();

    // Nothing in the row shows the value.
    let pool = sqlx::PgPool::connect(&db).await.unwrap();
    let raw: String = sqlx::query_scalar("SELECT row_to_json(p)::text FROM projects p WHERE id = $1::uuid")
        .bind(&id)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(!raw.contains("s3cret-value-1") && !raw.contains("hello there"), "{raw}");

    // The owner reads it back, a change replaces it, and the VM's shells get it.
    let (s, v) = api.patch(&format!("/api/projects/{id}"), json!({"env_vars": {"API_KEY": "s3cret-value-2"}})).await;
    assert_eq!((s, &v["env_vars"]), (200, &json!({"API_KEY": "s3cret-value-2"})), "{v}");
    assert_eq!(api.get(&format!("/api/projects/{id}")).await.1["env_vars"]["API_KEY"], "s3cret-value-2");
    let (s, v) = api.post(&format!("/api/projects/{id}/start?wait=true"), json!({})).await;
    assert_eq!(s, 200, "{v}");
    let mut term = api.terminal(&id, "").await;
    term.send("echo key=[$API_KEY]\n").await;
    term.expect("key=[s3cret-value-2]").await;
    term.close().await;

    // A row from before sealing (plaintext) is sealed when the hub starts, and
    // reads the same.
    sqlx::query("UPDATE projects SET env_sealed = NULL, env_vars = '{\"OLD\": \"plain-legacy\"}' WHERE id = $1::uuid")
        .bind(&id)
        .execute(&pool)
        .await
        .unwrap();
    hub.terminate();
    let mut hub = TestHub::spawn(&dir.0, Some(db.clone()), "127.0.0.1:0", &[]);
    hub.wait_ready().await;
    let raw: String = sqlx::query_scalar("SELECT row_to_json(p)::text FROM projects p WHERE id = $1::uuid")
        .bind(&id)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(!raw.contains("plain-legacy"), "{raw}");
    let mut api = api;
    api.base = hub.http.clone();
    assert_eq!(api.get(&format!("/api/projects/{id}")).await.1["env_vars"], json!({"OLD": "plain-legacy"}));

    // A hub with another key refuses to start rather than fail every read.
    let other = support::TempDir::new("aether-env-other");
    let mut wrong = TestHub::spawn(&other.0, Some(db), "127.0.0.1:0", &[("AETHER_SECRETS_KEY", &"ab".repeat(32))]);
    let status = wrong.exit_within(Duration::from_secs(30)).expect("a hub with the wrong key kept running");
    assert!(!status.success());
    assert!(wrong.log().contains("AETHER_SECRETS_KEY"), "{}", wrong.log());
}

/// A user past the month's compute hours (the free plan's 50) has their
/// running VMs stopped, with a message on each project, and can't start them.
#[tokio::test]
async fn at_the_compute_limit_running_vms_stop_and_say_why() {
    let hub = TestHub::start_with(&[("AETHER_RECONCILE_INTERVAL_MS", "100")]).await;
    let api = hub.user().await;
    let id = api.running_project().await;
    let other = hub.user().await;
    let bystander = other.running_project().await;
    // An earlier boot of 50 hours this month.
    hub.record_boot(&id, 50).await;

    let project = support::eventually("the VM stopped", support::DEADLINE, || async {
        let (_, p) = api.get(&format!("/api/projects/{id}")).await;
        (p["status"] == "stopped").then_some(p)
    })
    .await;
    let message = project["error_message"].as_str().unwrap_or_default();
    assert!(message.contains("compute hours"), "{project}");
    let (s, body) = api.post(&format!("/api/projects/{id}/start"), json!({})).await;
    assert_eq!((s, &body["error"]["code"]), (422, &json!("limit_reached")), "{body}");
    let (_, p) = other.get(&format!("/api/projects/{bystander}")).await;
    assert_eq!(p["status"], "running", "another user's VM runs on");

    // The hours stay used when the project goes.
    let (s, _) = api.delete(&format!("/api/projects/{id}")).await;
    assert_eq!(s, 204);
    let fresh = api.project("fresh").await;
    let (s, body) = api.post(&format!("/api/projects/{fresh}/start"), json!({})).await;
    assert_eq!((s, &body["error"]["code"]), (422, &json!("limit_reached")), "{body}");

    // The usage shows it, the deleted project's hours included, and only
    // the caller's.
    let (s, u) = api.get("/api/billing/usage").await;
    assert_eq!(s, 200, "{u}");
    assert!(u["compute_seconds_used"].as_i64().unwrap() >= 50 * 3600, "{u}");
    assert_eq!(u["compute_seconds_limit"], 50 * 3600, "{u}");
    assert_eq!(
        (u["plan"].as_str(), u["projects_used"].as_i64(), u["projects_limit"].as_i64()),
        (Some("free"), Some(1), Some(5))
    );
    assert_eq!(
        (u["storage_gb_used"].as_i64(), u["storage_gb_limit"].as_i64()),
        (Some(0), Some(50)),
        "local VMs have no volume"
    );
    let deleted = u["by_project"].as_array().unwrap().iter().find(|p| p["project_id"] == id.as_str()).cloned();
    assert!(deleted.is_some_and(|p| p["compute_seconds"].as_i64().unwrap() >= 50 * 3600), "{u}");
    let start: chrono::DateTime<chrono::Utc> = u["period_start"].as_str().unwrap().parse().unwrap();
    let end: chrono::DateTime<chrono::Utc> = u["period_end"].as_str().unwrap().parse().unwrap();
    assert!(start <= chrono::Utc::now() && chrono::Utc::now() < end, "{u}");
    let (_, theirs) = other.get("/api/billing/usage").await;
    assert!(theirs["compute_seconds_used"].as_i64().unwrap() < 3600, "{theirs}");
    assert!(!theirs["by_project"].to_string().contains(&id), "{theirs}");
}

/// Usage is the hub's to count: a heartbeat with an old (or absurd) sequence
/// number still moves the boot's last-seen time on, and changes nothing else.
#[tokio::test]
async fn a_heartbeats_sequence_number_cant_stop_its_usage_from_growing() {
    use aether_hub::db::{Db, HeartbeatRecord};
    let hub = TestHub::start().await;
    // Opened before any project exists: it can't open the hub's sealed env
    // vars, and needn't.
    let options = hub.database_url.as_deref().unwrap().parse().unwrap();
    let db = Db::connect(options, aether_hub::secrets::Sealer::new(&[7; 32]).unwrap()).await.unwrap();
    let api = hub.user().await;
    let id: uuid::Uuid = api.project("metered").await.parse().unwrap();
    let beat = |seq: i64, uptime_ms: i64| HeartbeatRecord {
        project_id: id,
        boot_id: "boot-1",
        seq,
        uptime_ms,
        last_activity: None,
        terminal_sessions: 0,
        ssh_sessions: 0,
    };
    let seen = || async {
        sqlx::query_as::<_, (chrono::DateTime<chrono::Utc>, i64, i64, i64)>(
            "SELECT last_seen_at, last_seq, heartbeats, uptime_ms FROM vm_boots WHERE project_id = $1",
        )
        .bind(id)
        .fetch_one(&hub.db().await)
        .await
        .unwrap()
    };
    db.record_heartbeat(&beat(i64::MAX, 1_000)).await.unwrap();
    let first = seen().await;
    db.record_heartbeat(&beat(2, 2_000)).await.unwrap();
    let later = seen().await;
    assert!(later.0 > first.0, "seen later: {first:?} then {later:?}");
    assert_eq!((later.1, later.2, later.3), (i64::MAX, 1, 1_000), "nothing else changed");

    // A hub from before usage had owners records a boot without one: it
    // takes the project's owner.
    let pool = hub.db().await;
    sqlx::query("INSERT INTO vm_boots (project_id, boot_id, last_seq) VALUES ($1, 'older-hub', 1)")
        .bind(id)
        .execute(&pool)
        .await
        .unwrap();
    let (owner, expected): (uuid::Uuid, uuid::Uuid) = sqlx::query_as(
        "SELECT b.owner_id, p.owner_id FROM vm_boots b, projects p WHERE b.boot_id = 'older-hub' AND p.id = $1",
    )
    .bind(id)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(owner, expected);
}

/// A hub run for a team can start every new user on the team plan.
#[tokio::test]
async fn new_users_start_on_the_hubs_default_plan() {
    let hub = TestHub::start_with(&[("AETHER_DEFAULT_PLAN", "team")]).await;
    let api = hub.user().await;
    let (_, me) = api.get("/api/me").await;
    assert_eq!(me["plan"], "team", "{me}");
    let (_, u) = api.get("/api/billing/usage").await;
    assert_eq!(
        (u["compute_seconds_limit"].as_i64(), u["projects_limit"].as_i64()),
        (Some(2_000 * 3600), Some(200)),
        "{u}"
    );
}
