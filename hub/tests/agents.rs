//! The agents API: generated and uploaded keys, what is checked, what is
//! never kept, and the activity list and live stream of agent sessions.

mod sshkit;
mod support;

use futures_util::StreamExt;
use serde_json::{Value, json};
use sshkit::{Agent, keygen, named, text};
use support::{DEADLINE, TempDir, TestHub};

/// `ssh-keygen -lf` of a public key line: its SHA256 fingerprint.
fn openssh_fingerprint(dir: &std::path::Path, line: &str) -> String {
    let file = dir.join(format!("fp-{}.pub", uuid::Uuid::new_v4().simple()));
    std::fs::write(&file, format!("{line}\n")).unwrap();
    let out = std::process::Command::new("ssh-keygen").arg("-lf").arg(&file).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout).split_whitespace().nth(1).unwrap().to_owned()
}

#[tokio::test]
async fn generated_keys_are_shown_once_and_never_kept() {
    let hub = TestHub::start().await;
    let api = hub.user().await;
    let id = api.project("keys").await;
    let dir = TempDir::new("aether-keys");
    let (s, v) =
        api.post(&format!("/api/projects/{id}/agents"), json!({"name": "claude", "expires_in_days": 30})).await;
    assert_eq!(s, 201, "{v}");
    let private = v["private_key"].as_str().unwrap().to_owned();
    assert!(private.starts_with("-----BEGIN OPENSSH PRIVATE KEY-----"), "{v}");
    let agent = &v["agent"];
    assert!(agent["public_key"].as_str().unwrap().starts_with("ssh-ed25519 AAAA"), "{agent}");
    assert_eq!(agent["fingerprint"], openssh_fingerprint(&dir.0, agent["public_key"].as_str().unwrap()));
    assert!(agent["expires_at"].is_string() && agent["last_used_at"].is_null(), "{agent}");
    // The private key matches the public one (ssh-keygen derives it back).
    let key_file = dir.0.join("id");
    std::fs::write(&key_file, &private).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let derived = std::process::Command::new("ssh-keygen").arg("-yf").arg(&key_file).output().unwrap();
    assert!(text(&derived.stdout).starts_with(agent["public_key"].as_str().unwrap()));
    // The answer says how to connect, with the default folder.
    let ssh = &v["ssh"];
    assert_eq!((ssh["target"].as_str(), ssh["port"].is_u64()), (Some(id.as_str()), true), "{ssh}");
    assert!(ssh["config"].as_str().unwrap().contains("IdentityFile ~/.ssh/aether/aether-claude-"), "{ssh}");
    assert!(ssh["known_hosts"].as_str().unwrap().contains(&format!("]:{} ssh-ed25519 ", ssh["port"])), "{ssh}");

    // Never shown again, never stored, never logged.
    let (_, list) = api.get(&format!("/api/projects/{id}/agents")).await;
    let (_, one) = api.get(&format!("/api/projects/{id}/agents/{}", agent["id"].as_str().unwrap())).await;
    for shown in [&list, &one] {
        assert!(!shown.to_string().contains("PRIVATE"), "{shown}");
    }
    assert_eq!(list[0]["fingerprint"], agent["fingerprint"]);
    let body = private.lines().nth(2).unwrap().to_owned();
    let pool = sqlx::PgPool::connect(hub.database_url.as_deref().unwrap()).await.unwrap();
    let dump: Vec<(String,)> =
        sqlx::query_as("SELECT row_to_json(a)::text FROM agents a").fetch_all(&pool).await.unwrap();
    assert_eq!(dump.len(), 1);
    assert!(!dump[0].0.contains("PRIVATE") && !dump[0].0.contains(&body), "{dump:?}");
    assert!(!hub.log().contains(&body), "the private key reached the hub's log");
}

#[tokio::test]
async fn uploaded_keys_are_checked() {
    let hub = TestHub::start().await;
    let api = hub.user().await;
    let id = api.project("uploads").await;
    let dir = TempDir::new("aether-uploads");
    let (_, public) = keygen(&dir.0, "mine");
    let url = format!("/api/projects/{id}/agents");

    let (s, v) = api.post(&url, json!({"name": "uploaded", "public_key": format!("{public}\n")})).await;
    assert_eq!(s, 201, "{v}");
    assert!(v.get("private_key").is_none(), "{v}");
    assert_eq!(v["agent"]["fingerprint"], openssh_fingerprint(&dir.0, &public));
    assert_eq!(v["agent"]["public_key"].as_str(), public.rsplit_once(' ').map(|(k, _)| k), "the comment is dropped");

    let key = public.rsplit_once(' ').unwrap().0;
    let bad: Vec<(Value, &str)> = vec![
        (json!({"name": "a", "public_key": format!("command=\"/bin/sh\" {key}")}), "options"),
        (json!({"name": "a", "public_key": format!("no-pty {key}")}), "is not accepted"),
        (json!({"name": "a", "public_key": format!("{key}\n{key}")}), "single line"),
        (json!({"name": "a", "public_key": "ssh-ed25519 AAAAnot-a-key"}), "invalid"),
        (json!({"name": "a", "public_key": "ssh-dss AAAAB3NzaC1kc3MAAACBAP8"}), "is not accepted"),
        (json!({"name": "has space"}), "name"),
        (json!({"name": ""}), "name"),
        (json!({"name": "a", "expires_in_days": 0}), "expires_in_days"),
        (json!({"name": "a", "expires_in_days": 1, "expires_at": "2099-01-01T00:00:00Z"}), "not both"),
        (json!({"name": "a", "expires_at": "2001-01-01T00:00:00Z"}), "future"),
    ];
    for (body, why) in bad {
        let (s, v) = api.post(&url, body.clone()).await;
        assert_eq!(s, 400, "{body} -> {v}");
        assert!(v["error"]["message"].as_str().unwrap().contains(why), "{body} -> {v}");
    }
    let out = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "rsa", "-b", "1024", "-N", "", "-f"])
        .arg(dir.0.join("weak"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let weak = std::fs::read_to_string(dir.0.join("weak.pub")).unwrap();
    let (s, v) = api.post(&url, json!({"name": "weak", "public_key": weak})).await;
    assert_eq!(s, 400, "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("2048"), "{v}");

    // Names and keys are unique among a project's agents.
    assert_eq!(api.post(&url, json!({"name": "UPLOADED"})).await.0, 409);
    assert_eq!(api.post(&url, json!({"name": "again", "public_key": public})).await.0, 409);
    let (s, v) = api.post(&format!("{url}?ssh_dir=relative/dir"), named("dir")).await;
    assert_eq!(s, 400, "{v}");
}

#[tokio::test]
async fn sessions_are_listed_and_streamed_live() {
    let hub = TestHub::start().await;
    let api = hub.user().await;
    let id = api.running_project().await;
    let agent = Agent::create(&api, &id, named("reporter")).await;

    let ticket = api.ticket(&id, "agent-activity").await;
    let url = format!("{}/api/projects/{id}/agents/activity/live?ticket={ticket}", hub.http.replacen("http", "ws", 1));
    let (mut live, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let reused =
        format!("{}/api/projects/{id}/agents/activity/live?ticket={ticket}", hub.http.replacen("http", "ws", 1));
    assert!(tokio_tungstenite::connect_async(reused).await.is_err(), "a ticket works once");

    let out = agent.ssh("echo live; exit 3").await;
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    let mut events = Vec::new();
    while !events.iter().any(|e: &Value| e["event"] == "end") {
        let msg = tokio::time::timeout(DEADLINE, live.next()).await.expect("a live event").unwrap().unwrap();
        if let tokio_tungstenite::tungstenite::Message::Text(t) = msg {
            events.push(serde_json::from_str(&t).unwrap());
        }
    }
    let end = events.iter().find(|e| e["event"] == "end").unwrap();
    assert_eq!((end["command"].as_str(), end["exit_code"].as_i64()), (Some("echo live; exit 3"), Some(3)), "{end}");
    assert_eq!(end["agent_name"], "reporter");

    let (s, v) = api.get(&format!("/api/projects/{id}/agents/activity?limit=1")).await;
    assert_eq!(s, 200);
    assert_eq!((v.as_array().unwrap().len(), v[0]["id"].clone()), (1, end["id"].clone()));
    assert_eq!(api.get(&format!("/api/projects/{id}/agents/activity?limit=0")).await.0, 400);
    let watch = api.ticket(&id, "watch").await;
    let wrong = format!("{}/api/projects/{id}/agents/activity/live?ticket={watch}", hub.http.replacen("http", "ws", 1));
    assert!(tokio_tungstenite::connect_async(wrong).await.is_err(), "a watch ticket is not an activity ticket");
}

/// The `ssh-ed25519 AAAA…` part of a known_hosts answer.
fn jump_key(ssh: &Value) -> String {
    let line = ssh["known_hosts"].as_str().unwrap();
    line.split_once(" ssh-ed25519 ").map(|(_, k)| k.trim().to_owned()).unwrap_or_else(|| panic!("{ssh}"))
}

#[tokio::test]
async fn every_hub_on_a_database_presents_the_same_jump_host_key() {
    support::init();
    let db = support::fresh_database().await;
    let env =
        [("AETHER_JWT_SECRET", "a-shared-jwt-secret-of-enough-length"), ("AETHER_SECRETS_KEY", &*"cd".repeat(32))];
    let (dir_a, dir_b) = (support::TempDir::new("aether-hub-a"), support::TempDir::new("aether-hub-b"));
    let mut a = TestHub::spawn(&dir_a.0, Some(db.clone()), "127.0.0.1:0", &env);
    a.wait_ready().await;
    let api = a.user().await;
    let id = api.project("pinned").await;
    let (s, v) = api.post(&format!("/api/projects/{id}/agents"), json!({"name": "pinner"})).await;
    assert_eq!(s, 201, "{v}");
    let key_a = jump_key(&v["ssh"]);

    // Another replica (or the next deploy) with an empty data folder.
    let mut b = TestHub::spawn(&dir_b.0, Some(db), "127.0.0.1:0", &env);
    b.wait_ready().await;
    let mut api_b = api.clone();
    api_b.base = b.http.clone();
    let (s, v) = api_b.get(&format!("/api/projects/{id}/agents/{}/ssh", v["agent"]["id"].as_str().unwrap())).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(jump_key(&v), key_a);
    assert!(
        !dir_b.0.join("secrets/ssh_host_ed25519_key").exists(),
        "the key lives in the database, not the data folder"
    );
}
