//! The boundary around every project, tried as its VM's user (or an agent
//! in it) would: from a terminal, through the file API, previews and a
//! stolen machine token. Every VM here is isolated (`AETHER_ISOLATION` is
//! `required` in `make test`, and the hub refuses to start without it).

mod support;

use serde_json::{Value, json};
use std::net::SocketAddr;
use std::time::Duration;
use support::{Api, TestHub};

fn files(hub: &TestHub, project: &str, query: &str) -> String {
    format!("{}/api/projects/{project}/files?{query}", hub.http)
}

async fn send(req: reqwest::RequestBuilder, api: &Api) -> (u16, String) {
    let r = req.bearer_auth(api.token.as_deref().unwrap()).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// Runs `cmd` in a fresh terminal of `project` and returns what it printed
/// between two markers.
async fn run_in_vm(api: &Api, project: &str, cmd: &str) -> String {
    let mut t = api.terminal(project, &format!("&session=s{}", &uuid::Uuid::new_v4().simple().to_string()[..8])).await;
    t.send(&format!("echo BEGIN-$((1+1)); {cmd}; echo END-$((2+2))\n")).await;
    t.expect("END-4").await;
    let text = t.text();
    let begin = text.rfind("BEGIN-2").unwrap() + "BEGIN-2".len();
    let end = text.rfind("END-4").unwrap();
    text[begin..end].replace('\r', "").trim().to_owned()
}

/// A user's running project, and another user's project's home on the host
/// with a secret in it: (the first user, their project, the other home).
async fn two_users_projects(hub: &TestHub) -> (Api, String, std::path::PathBuf) {
    let api = hub.user().await;
    let id = api.running_project().await;
    let other = hub.user().await;
    let theirs = other.running_project().await;
    let their_home = hub.data.join("vms").join(&theirs).join("home");
    std::fs::write(their_home.join("secret.txt"), "theirs").unwrap();
    (api, id, their_home)
}

#[tokio::test]
async fn a_vm_sees_its_own_machine_and_none_of_the_hosts() {
    let hub = TestHub::start().await;
    let (api, id, their_home) = two_users_projects(&hub).await;

    assert_eq!(run_in_vm(&api, &id, "id -un; hostname").await, "dev\nvm");
    // Only the VM's own processes: aetherd, its sshd and this shell.
    let ps = run_in_vm(&api, &id, "ps -e -o comm= | sort -u | tr '\\n' ' '").await;
    assert!(!ps.contains("aether-hub") && !ps.contains("postgres"), "{ps}");
    // aetherd's environment (the machine token) is root's, not dev's.
    let environ =
        run_in_vm(&api, &id, "cat /proc/$(pgrep -x aetherd)/environ >/dev/null 2>&1 && echo READ || echo DENIED").await;
    assert_eq!(environ, "DENIED");
    // The host's files are not there: not the hub's data folder, not the
    // other project's home, not the host's own accounts.
    let probe = format!(
        "test -e {} && echo HUB-DATA; cat {}/secret.txt 2>/dev/null; grep -c postgres /etc/passwd",
        hub.data.display(),
        their_home.display()
    );
    assert_eq!(run_in_vm(&api, &id, &probe).await, "0");
    // The image's root is read-only, and nothing in the VM gains privileges
    // (no_new_privs: sudo can't make root of dev).
    let rw = run_in_vm(
        &api,
        &id,
        "touch /usr/bin/x 2>&1 | grep -c -e Read-only -e denied; sudo -n true 2>/dev/null && echo ROOT || echo NOROOT",
    )
    .await;
    assert_eq!(rw, "1\nNOROOT", "{rw}");
    // From the host's side, nobody but root reaches a VM's home, its log or
    // the hub's secrets.
    let vm_dir = hub.data.join("vms").join(&id);
    std::fs::write(vm_dir.join("home/private.txt"), "mine").unwrap();
    for path in [vm_dir.join("home/private.txt"), vm_dir.join("aetherd.log"), vm_dir.join("spec.json")] {
        let out =
            std::process::Command::new("runuser").args(["-u", "nobody", "--", "cat"]).arg(&path).output().unwrap();
        assert!(!out.status.success(), "nobody read {}", path.display());
    }
    // Nor does it reach what the host serves on its own addresses, or the
    // link-local network (cloud metadata services).
    let listener = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let addrs =
        std::process::Command::new("ip").args(["-4", "-o", "addr", "show", "scope", "global"]).output().unwrap();
    let words: Vec<String> = String::from_utf8_lossy(&addrs.stdout).split_whitespace().map(str::to_owned).collect();
    let host_ips: Vec<&str> =
        words.windows(2).filter(|w| w[0] == "inet").filter_map(|w| w[1].split('/').next()).collect();
    for ip in host_ips.iter().copied().chain(["169.254.169.254"]) {
        let probe = format!("(exec 3<>/dev/tcp/{ip}/{port}) 2>/dev/null && echo OPEN || echo CLOSED");
        assert_eq!(run_in_vm(&api, &id, &probe).await, "CLOSED", "the VM reached {ip}:{port}");
    }
    drop(listener);
    // Its loopback is its own: the hub's HTTP port is not on it.
    let port = hub.http.rsplit(':').next().unwrap();
    let hub_port =
        run_in_vm(&api, &id, &format!("(exec 3<>/dev/tcp/127.0.0.1/{port}) 2>/dev/null && echo OPEN || echo CLOSED"))
            .await;
    assert_eq!(hub_port, "CLOSED");
}

#[tokio::test]
async fn symlinks_cannot_take_file_routes_out_of_the_home() {
    let hub = TestHub::start().await;
    let (api, id, their_home) = two_users_projects(&hub).await;

    let links = format!(
        "ln -s /etc etclink; ln -s {} other; ln -s ../../.. up; ln -s notes.txt inside; echo mine > notes.txt",
        their_home.display()
    );
    run_in_vm(&api, &id, &links).await;
    let c = reqwest::Client::new();

    // A symlink inside the home works as its user meant it.
    assert_eq!(send(c.get(files(&hub, &id, "path=inside")), &api).await, (200, "mine\n".into()));
    // `..` and absolute links resolve with the home as the root: `up` is the
    // home itself, whose etc/passwd doesn't exist.
    assert_eq!(send(c.get(files(&hub, &id, "path=up/etc/passwd")), &api).await.0, 404);
    for (name, path) in [("etc", "etclink/passwd"), ("other home", "other/secret.txt")] {
        let (s, body) = send(c.get(files(&hub, &id, &format!("path={path}"))), &api).await;
        assert_eq!(s, 404, "{name}: reading {path} answered {s} {body}");
        let (s, _) = send(c.put(files(&hub, &id, &format!("path={path}"))).body("owned"), &api).await;
        assert!(s == 404 || s == 409, "{name}: writing {path} answered {s}");
        let (s, _) = send(c.delete(files(&hub, &id, &format!("path={path}"))), &api).await;
        assert_eq!(s, 404, "{name}: deleting {path}");
        let mkdir = format!("{}/api/projects/{id}/files/mkdir", hub.http);
        let (s, _) = send(c.post(mkdir).json(&json!({"path": format!("{path}.d")})), &api).await;
        assert!(s >= 400, "{name}: mkdir under {path} answered {s}");
        let moved = json!({"from": "notes.txt", "to": path});
        let rename = format!("{}/api/projects/{id}/files/rename", hub.http);
        let (s, _) = send(c.post(rename).json(&moved), &api).await;
        assert!(s >= 400, "{name}: renaming onto {path} answered {s}");
    }
    // Listing through a link to a folder outside lists nothing of it.
    for path in ["other", "etclink"] {
        let (s, body) = send(c.get(files(&hub, &id, &format!("path={path}/"))), &api).await;
        assert!(!body.contains("secret.txt") && !body.contains("passwd"), "{path}: {s} {body}");
    }
    assert_eq!(std::fs::read_to_string(their_home.join("secret.txt")).unwrap(), "theirs");
    assert!(!their_home.join("secret.txt.d").exists() && !their_home.join("notes.txt").exists());
    // And the file the renames tried to move is still where it was.
    assert_eq!(send(c.get(files(&hub, &id, "path=notes.txt")), &api).await, (200, "mine\n".into()));
}

#[tokio::test]
async fn a_preview_reaches_only_its_own_vms_ports() {
    let hub = TestHub::start().await;
    // B's private app, and a service of the host's, on ports A names.
    let b = hub.user().await;
    let theirs = b.running_project().await;
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut app = b.terminal(&theirs, "&session=app").await;
    app.send(&format!("python3 -m http.server {port} --bind 127.0.0.1\n")).await;
    support::eventually("B's app to listen", support::DEADLINE, || async {
        let (_, ports) = b.get(&format!("/api/projects/{theirs}/ports")).await;
        ports.as_array().unwrap().iter().any(|p| p["port"] == port).then_some(())
    })
    .await;
    let host_service = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let host_port = host_service.local_addr().unwrap().port();
    tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        while let Ok((mut s, _)) = host_service.accept().await {
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nhost").await;
        }
    });

    let a = hub.user().await;
    let mine = a.running_project().await;
    let hub_addr: SocketAddr = hub.http.trim_start_matches("http://").parse().unwrap();
    for p in [port, host_port] {
        let (s, v) = a.patch(&format!("/api/projects/{mine}/ports/{p}"), json!({"visibility": "public"})).await;
        assert_eq!(s, 200, "{v}");
        let name = format!("{p}-{mine}.preview.localhost");
        let client = reqwest::Client::builder().resolve(&name, hub_addr).build().unwrap();
        let r = client.get(format!("http://{name}:{}/", hub_addr.port())).send().await.unwrap();
        let status = r.status().as_u16();
        let body = r.text().await.unwrap();
        assert!(status >= 500, "port {p} through A's preview answered {status}");
        assert!(!body.contains("Directory listing") && body != "host", "port {p} reached: {body}");
    }
}

/// aetherd's machine token, read as the host's root can (the test plays an
/// attacker who got it anyway).
fn stolen_token(project: &str) -> String {
    let env = std::fs::read(format!("/proc/{}/environ", support::aetherd_pid(project))).unwrap();
    env.split(|b| *b == 0)
        .find_map(|v| v.strip_prefix(b"AETHER_MACHINE_TOKEN="))
        .map(|t| String::from_utf8(t.to_vec()).unwrap())
        .expect("aetherd has a machine token")
}

#[tokio::test]
async fn an_impostor_aetherd_with_a_stolen_token_is_refused() {
    let hub = TestHub::start().await;
    let api = hub.user().await;
    let id = api.running_project().await;
    let c = reqwest::Client::new();
    send(c.put(files(&hub, &id, "path=who.txt")).body("the real vm"), &api).await;

    let impostor_home = support::TempDir::new("aether-impostor");
    std::fs::write(impostor_home.0.join("who.txt"), "the impostor").unwrap();
    let log = impostor_home.0.join("impostor.log");
    let mut impostor = std::process::Command::new(TestHub::aetherd())
        .arg("run")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("AETHER_HUB_ADDR", hub.tunnel.to_string())
        .env("AETHER_HUB_CA", hub.data.join("tls/ca.pem"))
        .env("AETHER_PROJECT_ID", &id)
        .env("AETHER_MACHINE_TOKEN", stolen_token(&id))
        .env("AETHER_HOME", &impostor_home.0)
        .env("AETHER_SSHD", "off")
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(std::fs::File::create(impostor_home.0.join("impostor.err")).unwrap())
        .spawn()
        .unwrap();
    support::eventually("the hub to refuse the impostor", support::DEADLINE, || async {
        hub.log().contains("refused a second aetherd").then_some(())
    })
    .await;
    // Whatever the impostor tries meanwhile, the project's files are the
    // real VM's, and its usage is the real VM's boot alone.
    for _ in 0..5 {
        assert_eq!(send(c.get(files(&hub, &id, "path=who.txt")), &api).await, (200, "the real vm".into()));
    }
    let boots: Vec<(String,)> = sqlx::query_as("SELECT boot_id FROM vm_boots WHERE project_id = $1::uuid")
        .bind(&id)
        .fetch_all(&hub.db().await)
        .await
        .unwrap();
    assert_eq!(boots.len(), 1, "{boots:?}");
    // The impostor is told why.
    support::eventually("the impostor to hear why", support::DEADLINE, || async {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("hub refused the tunnel: unauthorized: another aetherd holds this machine token")
            .then_some(())
    })
    .await;
    let _ = impostor.kill();
    let _ = impostor.wait();
}

/// The project's status, as the API gives it.
async fn status(api: &Api, id: &str) -> String {
    api.get(&format!("/api/projects/{id}")).await.1["status"].as_str().unwrap_or_default().to_owned()
}

/// The project's latest boot, as heartbeats recorded it.
async fn latest_boot(hub: &TestHub, id: &str) -> Option<String> {
    let row: Option<(String,)> =
        sqlx::query_as("SELECT boot_id FROM vm_boots WHERE project_id = $1::uuid ORDER BY first_seen_at DESC LIMIT 1")
            .bind(id)
            .fetch_optional(&hub.db().await)
            .await
            .unwrap();
    row.map(|r| r.0)
}

/// Waits for a tunnel of a boot other than `old` while checking, on every
/// look, that the hub still counts the VM as running or starting.
async fn comes_back(hub: &TestHub, api: &Api, id: &str, old_boot: &str) -> String {
    support::eventually("the VM to come back", Duration::from_secs(60), || async {
        let s = status(api, id).await;
        assert!(s == "running" || s == "starting", "the hub lost the running VM: {s}");
        let boot = latest_boot(hub, id).await.filter(|b| b != old_boot)?;
        (s == "running").then_some(boot)
    })
    .await
}

async fn current_boot(hub: &TestHub, id: &str) -> String {
    support::eventually("a heartbeat", support::DEADLINE, || latest_boot(hub, id)).await
}

#[tokio::test]
async fn a_killed_or_frozen_aetherd_comes_back_and_the_vm_is_never_lost() {
    let hub = TestHub::start_with(&[("AETHER_REVIVE_AFTER_MS", "1000")]).await;
    let api = hub.user().await;
    let id = api.running_project().await;
    let boot = current_boot(&hub, &id).await;

    // SIGKILL: the VM ends with its aetherd and is restarted, as a Fly
    // Machine's restart policy would.
    let pid = support::aetherd_pid(&id);
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL).unwrap();
    let boot = comes_back(&hub, &api, &id, &boot).await;
    assert_eq!(run_in_vm(&api, &id, "echo alive-$((40+2))").await, "alive-42");

    // SIGSTOP: the machine runs but its aetherd says nothing; once the
    // tunnel is given up, the hub restarts the machine.
    let pid = support::aetherd_pid(&id);
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGSTOP).unwrap();
    comes_back(&hub, &api, &id, &boot).await;
    assert_eq!(run_in_vm(&api, &id, "echo alive-$((40+3))").await, "alive-43");
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists(), "the frozen aetherd was ended");
}

#[tokio::test]
async fn stopping_a_project_ends_every_process_however_it_hid() {
    let hub = TestHub::start().await;
    let api = hub.user().await;
    let id = api.running_project().await;
    // A daemon with a clean environment, in its own session, reparented.
    run_in_vm(&api, &id, "env -i setsid sh -c 'nohup sleep 4242.5 >/dev/null 2>&1 &' </dev/null").await;
    let hidden = || {
        std::fs::read_dir("/proc")
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| std::fs::read(e.path().join("cmdline")).is_ok_and(|c| c == b"sleep\x004242.5\x00"))
            .count()
    };
    support::eventually("the daemon to run", support::DEADLINE, || async { (hidden() == 1).then_some(()) }).await;
    let (s, v) = api.post(&format!("/api/projects/{id}/stop?wait=true"), json!({})).await;
    assert_eq!((s, v["status"].as_str()), (200, Some("stopped")), "{v}");
    assert_eq!(hidden(), 0, "a process of the stopped VM survived");
}

#[tokio::test]
async fn a_hub_that_cannot_isolate_says_so_and_serves_one_user() {
    support::init();
    let dir = support::TempDir::new("aether-unisolated");
    let db = support::fresh_database().await;
    let mut hub = TestHub::spawn(&dir.0, Some(db), "127.0.0.1:0", &[("AETHER_ISOLATION", "off")]);
    hub.wait_ready().await;
    assert!(hub.log().contains("LOCAL VMS ARE NOT ISOLATED"), "{}", hub.log());
    let first = hub.user().await;
    assert!(first.token.is_some());
    let (s, v): (u16, Value) = hub
        .api()
        .post("/api/auth/signup", json!({"email": "second@example.com", "password": "a long enough password"}))
        .await;
    assert_eq!((s, v["error"]["code"].as_str()), (403, Some("forbidden")), "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("without isolation"), "{v}");
}
