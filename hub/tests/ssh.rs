//! Agents over SSH with the real OpenSSH client, through the hub's jump host
//! and the tunnel, to the real sshd of a local VM: commands, interactive
//! sessions watched from the browser's terminal, file copies, forwarding.

mod sshkit;
mod support;

use sshkit::{Agent, free_port, named, run, session_where, text};
use std::time::Duration;
use support::TestHub;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test]
async fn a_command_prints_and_exits_with_its_code_under_strict_host_key_checking() {
    let hub = TestHub::start().await;
    let api = hub.user().await;
    let id = api.running_project().await;
    let agent = Agent::create(&api, &id, named("claude")).await;
    let config = std::fs::read_to_string(&agent.config).unwrap();
    assert_eq!(config.matches("StrictHostKeyChecking yes").count(), 2, "{config}");
    assert!(config.contains("ProxyJump "), "{config}");

    let out = agent.ssh("echo hi; exit 7").await;
    assert_eq!(text(&out.stdout), "hi\n", "stderr: {}", text(&out.stderr));
    assert_eq!(out.status.code(), Some(7), "stderr: {}", text(&out.stderr));

    // The session is recorded with its command and exit code.
    let s = session_where(&api, &id, "the exec session", |s| s["exit_code"] == 7).await;
    assert_eq!((s["command"].as_str(), s["interactive"].as_bool()), (Some("echo hi; exit 7"), Some(false)));
    assert_eq!((s["agent_id"].as_str(), s["agent_name"].as_str()), (Some(agent.id.as_str()), Some("claude")));
    assert!(s["ended_at"].is_string() && s["started_at"].is_string(), "{s}");

    // Host keys are checked for real: a wrong key for the VM stops the client.
    let good = std::fs::read_to_string(&agent.known_hosts).unwrap();
    let vm_line = good.lines().find(|l| l.starts_with(&id)).unwrap().to_owned();
    let (_, other) = sshkit::keygen(&agent.dir.0, "impostor");
    let impostor = format!("{id} {}", other.rsplit_once(' ').unwrap().0);
    std::fs::write(&agent.known_hosts, good.replace(&vm_line, &impostor)).unwrap();
    let out = agent.ssh("echo should-not-run").await;
    assert_eq!(out.status.code(), Some(255));
    assert!(text(&out.stderr).contains("Host key verification failed"), "{}", text(&out.stderr));
    assert!(!text(&out.stdout).contains("should-not-run"));
}

#[tokio::test]
async fn an_interactive_session_runs_in_tmux_and_is_watched_read_only() {
    let hub = TestHub::start().await;
    let api = hub.user().await;
    let id = api.running_project().await;
    let agent = Agent::create(&api, &id, named("coder")).await;

    let mut cmd = agent.command("ssh", &["-tt", &agent.alias]);
    cmd.env("TERM", "xterm-256color").stdin(std::process::Stdio::piped());
    let mut ssh = cmd.spawn().unwrap();
    let mut keys = ssh.stdin.take().unwrap();
    let mut stdout = ssh.stdout.take().unwrap();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let reader = {
        let seen = seen.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stdout.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                seen.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        })
    };
    keys.write_all(b"echo marker-$((6*7))\n").await.unwrap();
    let started = session_where(&api, &id, "the interactive session", |s| s["interactive"] == true).await;
    assert_eq!(started["session"], "agent-coder", "{started}");
    assert_eq!(started["command"], "", "a login shell has no command");
    // Heartbeats count the open SSH connection (an agent at work).
    let db = sqlx::PgPool::connect(hub.database_url.as_deref().unwrap()).await.unwrap();
    ssh_sessions_become(&db, &id, 1).await;

    // The user watches it from the browser, read-only.
    let mut watch = api.terminal(&id, "&session=agent-coder&readonly=1&cols=100&rows=30").await;
    watch.expect("marker-42").await;
    watch.send("echo SNEAKY-$((2+2))\n").await;
    keys.write_all(b"echo after-$((1+2))\n").await.unwrap();
    watch.expect("after-3").await;
    keys.write_all(b"exit 5\n").await.unwrap();
    let status = tokio::time::timeout(Duration::from_secs(20), ssh.wait()).await.expect("ssh exits").unwrap();
    let _ = reader.await;
    let out = text(&seen.lock().unwrap());
    assert_eq!(status.code(), Some(5), "{out}");
    assert!(out.contains("after-3") && !out.contains("SNEAKY-4"), "the watcher's keys reached the agent: {out}");
    watch.until("the view to end", |t| t.exit.is_some() || t.closed).await;

    let ended = session_where(&api, &id, "the interactive session's end", |s| {
        s["id"] == started["id"] && s["ended_at"].is_string()
    })
    .await;
    assert_eq!((ended["exit_code"].as_i64(), ended["interactive"].as_bool()), (Some(5), Some(true)), "{ended}");
    ssh_sessions_become(&db, &id, 0).await;
}

/// Waits until the project's latest heartbeat reports `n` SSH connections.
async fn ssh_sessions_become(db: &sqlx::PgPool, project: &str, n: i32) {
    support::eventually(&format!("heartbeats reporting {n} SSH sessions"), support::DEADLINE, || async move {
        let row: Option<(i32,)> = sqlx::query_as(
            "SELECT ssh_sessions FROM vm_boots WHERE project_id = $1::uuid ORDER BY last_seen_at DESC LIMIT 1",
        )
        .bind(project)
        .fetch_optional(db)
        .await
        .unwrap();
        (row == Some((n,))).then_some(())
    })
    .await;
}

fn pseudo_random(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

#[tokio::test]
async fn scp_and_sftp_copy_ten_mebibytes_both_ways_byte_for_byte() {
    let hub = TestHub::start().await;
    let api = hub.user().await;
    let id = api.running_project().await;
    let agent = Agent::create(&api, &id, named("copier")).await;
    let data = pseudo_random(10 << 20);
    let local = agent.dir.0.join("ten.bin");
    std::fs::write(&local, &data).unwrap();
    let remote = |path: &str| format!("{}:{path}", agent.alias);

    // scp (the SFTP protocol, OpenSSH's default) in and out.
    let l = local.to_str().unwrap();
    let up = run(agent.command("scp", &["-q", l, &remote("in.bin")])).await;
    assert!(up.status.success(), "{}", text(&up.stderr));
    let back = agent.dir.0.join("back.bin");
    let down = run(agent.command("scp", &["-q", &remote("in.bin"), back.to_str().unwrap()])).await;
    assert!(down.status.success(), "{}", text(&down.stderr));
    assert!(std::fs::read(&back).unwrap() == data, "scp round trip differs");
    let sum = agent.ssh("sha256sum in.bin").await;
    let expected = format!("{:x}", <sha2::Sha256 as sha2::Digest>::digest(&data));
    assert!(text(&sum.stdout).starts_with(&expected), "{}", text(&sum.stdout));

    // The legacy scp protocol, and sftp in batch mode.
    let legacy = run(agent.command("scp", &["-O", "-q", l, &remote("legacy.bin")])).await;
    assert!(legacy.status.success(), "{}", text(&legacy.stderr));
    let batch = agent.dir.0.join("batch");
    let via_sftp = agent.dir.0.join("sftp.bin");
    std::fs::write(&batch, format!("get legacy.bin {}\n", via_sftp.display())).unwrap();
    let sftp = run(agent.command("sftp", &["-q", "-b", batch.to_str().unwrap(), &agent.alias])).await;
    assert!(sftp.status.success(), "{}", text(&sftp.stderr));
    assert!(std::fs::read(&via_sftp).unwrap() == data, "scp -O then sftp round trip differs");
}

/// A server on the VM's loopback (a local VM shares the machine's) that
/// greets whoever connects.
/// A Python greeter on the port given as its argument, for the VM.
const GREETER: &str = "import socket,sys
s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('127.0.0.1', int(sys.argv[1]))); s.listen()
while True:
    c, _ = s.accept(); c.sendall(b'hello from the vm\\n'); c.close()";

async fn greeter() -> (u16, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let _ = s.write_all(b"hello from the vm\n").await;
        }
    });
    (port, task)
}

#[tokio::test]
async fn local_and_remote_forwarding_work() {
    let hub = TestHub::start().await;
    let api = hub.user().await;
    let id = api.running_project().await;
    let agent = Agent::create(&api, &id, named("forwarder")).await;
    // A greeter in the VM (its loopback is its own) for -L, and one on the
    // agent's side for -R.
    let in_vm = free_port();
    let mut term = api.terminal(&id, "&session=greeter").await;
    term.send(&format!("python3 -c \"{GREETER}\" {in_vm} && echo greeter-gone\n")).await;
    let (server, _task) = greeter().await;

    // -L: a local port to the server in the VM (a few tries: a free port
    // may be taken before ssh binds it).
    let mut greeting = None;
    for _ in 0..3 {
        let local = free_port();
        let spec = format!("127.0.0.1:{local}:127.0.0.1:{in_vm}");
        let mut fwd =
            agent.command("ssh", &["-N", "-o", "ExitOnForwardFailure=yes", "-L", &spec, &agent.alias]).spawn().unwrap();
        let deadline = tokio::time::Instant::now() + support::DEADLINE;
        while greeting.is_none() && tokio::time::Instant::now() < deadline {
            if let Ok(Some(_)) = fwd.try_wait() {
                break;
            }
            if let Ok(mut conn) = tokio::net::TcpStream::connect(("127.0.0.1", local)).await {
                let mut buf = String::new();
                if conn.read_to_string(&mut buf).await.is_ok() && !buf.is_empty() {
                    greeting = Some(buf);
                }
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        let _ = fwd.kill().await;
        if greeting.is_some() {
            break;
        }
    }
    assert_eq!(greeting.as_deref(), Some("hello from the vm\n"));

    // -R: a port in the VM back to the client's side (here the same server).
    let remote = free_port();
    let spec = format!("127.0.0.1:{remote}:127.0.0.1:{server}");
    let cmd = format!("exec 3<>/dev/tcp/127.0.0.1/{remote}; head -n 1 <&3");
    let out = run(agent.command("ssh", &["-o", "ExitOnForwardFailure=yes", "-R", &spec, &agent.alias, &cmd])).await;
    assert_eq!(text(&out.stdout), "hello from the vm\n", "{}", text(&out.stderr));
}

#[tokio::test]
async fn the_vms_sshd_ends_with_a_killed_aetherd() {
    let hub = TestHub::start().await;
    let api = hub.user().await;
    let id = api.running_project().await;
    let agent = Agent::create(&api, &id, named("short-lived")).await;
    let out = agent.ssh("true").await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let sshds: Vec<i32> =
        support::vm_processes(&id).into_iter().filter(|(_, cmd)| cmd.starts_with("sshd")).map(|(p, _)| p).collect();
    assert!(!sshds.is_empty(), "the VM's sshd is not running");

    // SIGKILL: aetherd gets no chance to stop its sshd itself. (The VM is
    // then restarted, with an sshd of its own.)
    let pid = support::aetherd_pid(&id);
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL).unwrap();
    support::eventually("the VM's sshd to end", support::DEADLINE, async || {
        sshds.iter().all(|p| !std::path::Path::new(&format!("/proc/{p}")).exists()).then_some(())
    })
    .await;
}
