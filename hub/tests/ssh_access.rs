//! Who gets in over SSH, and for how long: a key reaches only its own
//! project, an expired or revoked key is refused at the jump host and leaves
//! the VM within seconds, revoking closes open sessions, the user's own
//! `authorized_keys` lines survive, and a stopped VM is started on connect.

mod sshkit;
mod support;

use chrono::SubsecRound;
use serde_json::json;
use sshkit::{Agent, named, revoke, text, vm_file, vm_keys};
use std::time::{Duration, Instant};
use support::{DEADLINE, TestHub, eventually};
use tokio::io::AsyncBufReadExt;

const GONE_WITHIN: Duration = Duration::from_secs(5);

#[tokio::test]
async fn a_key_reaches_only_its_own_project() {
    let hub = TestHub::start().await;
    let api = hub.user().await;
    let a = api.running_project().await;
    let b = api.running_project().await;
    let agent = Agent::create(&api, &a, named("only-a")).await;
    assert_eq!(agent.ssh("echo in-a").await.status.code(), Some(0));

    // The same key and config, aimed at project B: refused at the jump host.
    let config = std::fs::read_to_string(&agent.config).unwrap();
    let to_b = agent.dir.0.join("to-b.config");
    std::fs::write(&to_b, config.replace(&format!("HostName {a}"), &format!("HostName {b}"))).unwrap();
    let out = sshkit::run({
        let mut c = tokio::process::Command::new("ssh");
        c.arg("-F").arg(&to_b).args([&agent.alias, "echo in-b"]);
        c.env_remove("SSH_AUTH_SOCK").stdin(std::process::Stdio::null());
        c
    })
    .await;
    assert_eq!(out.status.code(), Some(255));
    assert!(text(&out.stderr).contains("administratively prohibited"), "{}", text(&out.stderr));
    assert!(!text(&out.stdout).contains("in-b"));

    // A key the hub does not know is refused outright.
    let (stranger, _) = sshkit::keygen(&agent.dir.0, "stranger");
    agent.use_private_key(&stranger);
    let out = agent.ssh("echo stranger").await;
    assert_eq!(out.status.code(), Some(255));
    assert!(text(&out.stderr).contains("Permission denied (publickey)"), "{}", text(&out.stderr));

    // Another user can't see or touch the agents.
    let other = hub.user().await;
    for path in [
        format!("/api/projects/{a}/agents"),
        format!("/api/projects/{a}/agents/activity"),
        format!("/api/projects/{a}/agents/{}", agent.id),
        format!("/api/projects/{a}/agents/{}/ssh", agent.id),
    ] {
        assert_eq!(other.get(&path).await.0, 404, "{path}");
    }
    assert_eq!(other.post(&format!("/api/projects/{a}/agents"), named("x")).await.0, 404);
    assert_eq!(other.delete(&format!("/api/projects/{a}/agents/{}", agent.id)).await.0, 404);
}

#[tokio::test]
async fn an_expired_key_is_refused_and_leaves_the_vm() {
    let hub = TestHub::start().await;
    let api = hub.user().await;
    let id = api.running_project().await;
    let expires = chrono::Utc::now() + chrono::Duration::seconds(6);
    let agent = Agent::create(&api, &id, json!({ "name": "brief", "expires_at": expires })).await;
    assert_eq!(
        agent.created["agent"]["expires_at"].as_str().map(|s| s.parse::<chrono::DateTime<chrono::Utc>>().unwrap()),
        Some(expires.trunc_subsecs(6))
    );
    let before = agent.ssh("echo before").await;
    assert_eq!(text(&before.stdout), "before\n", "{}", text(&before.stderr));
    assert!(vm_file(&api, &id, ".ssh/authorized_keys").await.contains("aether-agent:brief"));

    let expired_at = Instant::now() + (expires - chrono::Utc::now()).to_std().unwrap_or_default();
    eventually("the key to leave the VM", Duration::from_secs(30), || async {
        (!vm_keys(&hub, &id).contains("aether-agent:brief")).then_some(())
    })
    .await;
    assert!(Instant::now() < expired_at + GONE_WITHIN, "the expired key stayed in the VM");
    let out = agent.ssh("echo after").await;
    assert_eq!(out.status.code(), Some(255));
    assert!(text(&out.stderr).contains("Permission denied (publickey)"), "{}", text(&out.stderr));
}

#[tokio::test]
async fn revoking_refuses_at_once_closes_open_sessions_and_clears_the_vm() {
    let hub = TestHub::start().await;
    let api = hub.user().await;
    let id = api.running_project().await;
    let agent = Agent::create(&api, &id, named("doomed")).await;
    let keep = Agent::create(&api, &id, named("kept")).await;

    let mut long = agent.command("ssh", &[&agent.alias, "echo started; exec sleep 300"]).spawn().unwrap();
    let mut lines = tokio::io::BufReader::new(long.stdout.take().unwrap()).lines();
    let first = tokio::time::timeout(DEADLINE, lines.next_line()).await.expect("the session starts").unwrap();
    assert_eq!(first.as_deref(), Some("started"));

    let revoked = Instant::now();
    revoke(&api, &agent).await;
    // Refused at the jump host straight away.
    let out = agent.ssh("echo again").await;
    assert_eq!(out.status.code(), Some(255));
    assert!(text(&out.stderr).contains("Permission denied (publickey)"), "{}", text(&out.stderr));
    // The open session is closed.
    let status = tokio::time::timeout(GONE_WITHIN, long.wait()).await.expect("the open session was closed").unwrap();
    assert!(!status.success());
    // The key leaves the VM; the other agent's stays and still works.
    eventually("the key to leave the VM", GONE_WITHIN, || async {
        let keys = vm_keys(&hub, &id);
        (!keys.contains("aether-agent:doomed") && keys.contains("aether-agent:kept")).then_some(())
    })
    .await;
    assert!(revoked.elapsed() < GONE_WITHIN + Duration::from_secs(1));
    assert_eq!(text(&keep.ssh("echo kept").await.stdout), "kept\n");
    let (s, list) = api.get(&format!("/api/projects/{id}/agents")).await;
    assert_eq!(s, 200);
    assert_eq!(list.as_array().unwrap().iter().map(|a| a["name"].clone()).collect::<Vec<_>>(), vec![json!("kept")]);
    assert_eq!(api.delete(&format!("/api/projects/{id}/agents/{}", agent.id)).await.0, 404);
    // The closed session is recorded as ended.
    sshkit::session_where(&api, &id, "the revoked session's end", |s| {
        s["agent_name"] == "doomed"
            && s["command"].as_str().is_some_and(|c| c.contains("sleep 300"))
            && s["ended_at"].is_string()
    })
    .await;
}

#[tokio::test]
async fn the_users_own_authorized_keys_lines_survive_every_sync() {
    let hub = TestHub::start().await;
    let api = hub.user().await;
    let id = api.running_project().await;
    let mine = "# my laptop\nssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOwnUserKeyUserKeyUserKeyUserKeyUserKey me@laptop\n";
    // A VM without agents has no ~/.ssh of aetherd's making: the user makes it.
    let (s, v) = api.post(&format!("/api/projects/{id}/files/mkdir"), json!({"path": ".ssh"})).await;
    assert_eq!(s, 201, "{v}");
    sshkit::put_vm_file(&api, &id, ".ssh/authorized_keys", mine).await;
    let one = Agent::create(&api, &id, named("one")).await;
    let keys = vm_file(&api, &id, ".ssh/authorized_keys").await;
    assert!(keys.starts_with(mine) && keys.contains("aether-agent:one"), "{keys}");

    // The user adds a line after the block; the next syncs keep it.
    let later = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQlaterLaterLater later@desk\n";
    sshkit::put_vm_file(&api, &id, ".ssh/authorized_keys", &format!("{keys}{later}")).await;
    let two = Agent::create(&api, &id, named("two")).await;
    revoke(&api, &one).await;
    let keys = vm_file(&api, &id, ".ssh/authorized_keys").await;
    assert!(keys.starts_with(&format!("{mine}{later}")), "{keys}");
    assert!(keys.contains("aether-agent:two") && !keys.contains("aether-agent:one"), "{keys}");
    assert_eq!(keys.matches("# BEGIN aether agent keys").count(), 1);

    // A restart of the VM clears and rewrites the block, and nothing else.
    let (s, v) = api.post(&format!("/api/projects/{id}/stop?wait=true"), json!({})).await;
    assert_eq!((s, v["status"].as_str()), (200, Some("stopped")), "{v}");
    let (s, v) = api.post(&format!("/api/projects/{id}/start?wait=true"), json!({})).await;
    assert_eq!((s, v["status"].as_str()), (200, Some("running")), "{v}");
    let keys = eventually("the keys after a restart", DEADLINE, || async {
        let k = vm_keys(&hub, &id);
        k.contains("aether-agent:two").then_some(k)
    })
    .await;
    assert!(keys.starts_with(&format!("{mine}{later}")), "{keys}");
    assert_eq!(
        (sshkit::vm_mode(&api, &id, ".ssh").await, sshkit::vm_mode(&api, &id, ".ssh/authorized_keys").await),
        (0o700, 0o600)
    );
    assert_eq!(text(&two.ssh("echo two").await.stdout), "two\n");
    revoke(&api, &two).await;
    assert_eq!(vm_file(&api, &id, ".ssh/authorized_keys").await, format!("{mine}{later}"));
}

#[tokio::test]
async fn a_stopped_project_is_started_by_the_first_ssh_connection() {
    let hub = TestHub::start().await;
    let api = hub.user().await;
    let id = api.running_project().await;
    let agent = Agent::create(&api, &id, named("waker")).await;
    let (s, v) = api.post(&format!("/api/projects/{id}/stop?wait=true"), json!({})).await;
    assert_eq!((s, v["status"].as_str()), (200, Some("stopped")), "{v}");

    let out = agent.ssh("echo awake").await;
    assert_eq!(text(&out.stdout), "awake\n", "{}", text(&out.stderr));
    let (_, project) = api.get(&format!("/api/projects/{id}")).await;
    assert_eq!(project["status"], "running", "{project}");
    let (_, agents) = api.get(&format!("/api/projects/{id}/agents")).await;
    assert!(agents[0]["last_used_at"].is_string(), "{agents}");
}
