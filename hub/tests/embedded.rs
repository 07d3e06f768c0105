//! With no DATABASE_URL the hub runs its own Postgres under its data folder:
//! it stops it when it exits, lets no one else in, upgrades a cluster an
//! older hub left open, and starts it again when it dies.

mod support;

use serde_json::{Value, json};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use support::{DEADLINE, TempDir, TestHub};

#[tokio::test]
async fn the_hub_starts_and_stops_an_embedded_postgres() {
    support::init();
    let dir = TempDir::new("aether-emb");
    if nix::unistd::geteuid().is_root() {
        // The embedded cluster runs as `postgres`, which must reach the folder.
        std::fs::set_permissions(&dir.0, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let mut hub = TestHub::spawn(&dir.0, None, "127.0.0.1:0", &[]);
    hub.wait_ready().await;
    let api = hub.user().await;
    let id = api.running_project().await;
    let mut t = api.terminal(&id, "").await;
    t.send("echo embedded-$((5*5))\n").await;
    t.expect("embedded-25").await;
    assert!(dir.0.join("postgres/data/postmaster.pid").exists());
    assert!(hub.terminate().success(), "log:\n{}", hub.log());
    assert!(!dir.0.join("postgres/data/postmaster.pid").exists(), "postgres was stopped");
}

/// The folder with the machine's PostgreSQL binaries, as the hub finds it.
fn pg_bin() -> PathBuf {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.path().join("bin")).collect())
        .unwrap_or_default();
    dirs.sort_by_key(|d| d.parent().and_then(|v| v.file_name()).and_then(|v| v.to_str()?.parse::<u32>().ok()));
    dirs.pop().expect("PostgreSQL server binaries under /usr/lib/postgresql")
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// `program` from the PostgreSQL binaries, as the cluster's user would run it.
fn as_cluster_user(program: &str) -> Command {
    let path = pg_bin().join(program);
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(path);
        c
    } else {
        Command::new(path)
    }
}

/// A data folder the embedded cluster's user can traverse.
fn data_folder(prefix: &str) -> TempDir {
    let dir = TempDir::new(prefix);
    if is_root() {
        std::fs::set_permissions(&dir.0, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    dir
}

/// `psql -c sql` against the embedded cluster's socket, run by `user` (this
/// process when `None`) with `password` if any: its output, or why not.
fn psql(data: &Path, user: Option<&str>, password: Option<&str>, sql: &str) -> Result<String, String> {
    let socket = data.join("postgres/socket");
    let args = [
        "-X",
        "-w",
        "-At",
        "-h",
        socket.to_str().unwrap(),
        "-p",
        "5432",
        "-U",
        "postgres",
        "-d",
        "postgres",
        "-c",
        sql,
    ];
    let mut cmd = match user {
        Some(u) => {
            let mut c = Command::new("runuser");
            c.args(["-u", u, "--", "psql"]);
            c
        }
        None => Command::new("psql"),
    };
    cmd.args(args).env_remove("PGPASSWORD").env("PGCONNECT_TIMEOUT", "5").current_dir("/");
    if let Some(p) = password {
        cmd.env("PGPASSWORD", p);
    }
    let out = cmd.output().expect("running psql");
    match out.status.success() {
        true => Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned()),
        false => Err(String::from_utf8_lossy(&out.stderr).into_owned()),
    }
}

/// The password the hub keeps for its embedded cluster.
fn hub_password(data: &Path) -> String {
    hex::encode(std::fs::read(data.join("secrets/postgres.key")).expect("the hub's postgres password"))
}

fn mode_and_owner(path: &Path) -> (u32, u32) {
    let m = std::fs::metadata(path).unwrap();
    (m.permissions().mode() & 0o777, m.uid())
}

#[tokio::test]
async fn only_the_hub_can_reach_its_embedded_database() {
    support::init();
    let dir = data_folder("aether-emb-private");
    let mut hub = TestHub::spawn(&dir.0, None, "127.0.0.1:0", &[]);
    hub.wait_ready().await;
    let api = hub.user().await;
    api.project("secret plans").await;

    let owner = if is_root() {
        nix::unistd::User::from_name("postgres").unwrap().unwrap().uid.as_raw()
    } else {
        nix::unistd::geteuid().as_raw()
    };
    for folder in ["postgres", "postgres/socket", "postgres/data"] {
        assert_eq!(mode_and_owner(&dir.0.join(folder)), (0o700, owner), "{folder}");
    }
    // No TCP listener: the postmaster's first listen address is empty.
    let pidfile = std::fs::read_to_string(dir.0.join("postgres/data/postmaster.pid")).unwrap();
    assert_eq!(pidfile.lines().nth(5), Some(""), "postmaster.pid: {pidfile}");

    // Reaching the socket (this process can) is not enough: it takes the password.
    let err = psql(&dir.0, None, None, "SELECT name FROM projects").unwrap_err();
    assert!(err.contains("password"), "{err}");
    let err = psql(&dir.0, None, Some("a guess"), "SELECT name FROM projects").unwrap_err();
    assert!(err.contains("password authentication failed"), "{err}");
    let names = psql(&dir.0, None, Some(&hub_password(&dir.0)), "SELECT name FROM projects").unwrap();
    assert_eq!(names, "secret plans", "the hub's password opens it");

    if is_root() {
        // Another local user reaches neither the socket nor the files.
        let err = psql(&dir.0, Some("nobody"), Some(&hub_password(&dir.0)), "SELECT name FROM projects").unwrap_err();
        assert!(err.contains("Permission denied"), "{err}");
        for path in ["postgres/postgres.log", "postgres/data/PG_VERSION", "postgres/data/pg_hba.conf"] {
            let out =
                Command::new("runuser").args(["-u", "nobody", "--", "cat"]).arg(dir.0.join(path)).output().unwrap();
            assert!(!out.status.success(), "nobody read {path}");
        }
    }
    assert!(hub.terminate().success(), "log:\n{}", hub.log());
}

#[tokio::test]
async fn an_older_hubs_open_cluster_is_locked_down_with_its_data() {
    support::init();
    let dir = data_folder("aether-emb-legacy");
    // The cluster as hubs made it before: trust auth, a socket anyone may
    // use, left running (as a killed hub leaves it), with data in it.
    let pg = dir.0.join("postgres");
    std::fs::create_dir_all(pg.join("socket")).unwrap();
    if is_root() {
        let user = nix::unistd::User::from_name("postgres").unwrap().unwrap();
        for d in [&pg, &pg.join("socket")] {
            nix::unistd::chown(d.as_path(), Some(user.uid), Some(user.gid)).unwrap();
        }
    }
    for d in [&pg, &pg.join("socket")] {
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let data = pg.join("data");
    let out = as_cluster_user("initdb")
        .args(["-D", data.to_str().unwrap(), "--auth=trust", "-U", "postgres", "-E", "UTF8", "--no-instructions"])
        .output()
        .unwrap();
    assert!(out.status.success(), "initdb: {}", String::from_utf8_lossy(&out.stderr));
    let opts = format!("-k {} -c listen_addresses= -p 5432", pg.join("socket").display());
    let log = pg.join("postgres.log");
    let out = as_cluster_user("pg_ctl")
        .args(["-D", data.to_str().unwrap(), "-l", log.to_str().unwrap(), "-o", &opts, "-w", "start"])
        .output()
        .unwrap();
    assert!(out.status.success(), "pg_ctl start: {}", String::from_utf8_lossy(&out.stderr));
    psql(&dir.0, None, None, "CREATE TABLE notes (body text); INSERT INTO notes VALUES ('kept')").unwrap();
    if is_root() {
        assert!(psql(&dir.0, Some("nobody"), None, "SELECT 1").is_ok(), "the old cluster was open to anyone");
    }

    let mut hub = TestHub::spawn(&dir.0, None, "127.0.0.1:0", &[]);
    hub.wait_ready().await;
    assert_eq!(hub.user().await.get("/api/me").await.0, 200);

    let err = psql(&dir.0, None, None, "SELECT body FROM notes").unwrap_err();
    assert!(err.contains("password"), "trust is gone: {err}");
    if is_root() {
        let err = psql(&dir.0, Some("nobody"), None, "SELECT 1").unwrap_err();
        assert!(err.contains("Permission denied"), "{err}");
    }
    let kept = psql(&dir.0, None, Some(&hub_password(&dir.0)), "SELECT body FROM notes").unwrap();
    assert_eq!(kept, "kept", "the data is still there");
    assert!(hub.terminate().success(), "log:\n{}", hub.log());
}

#[tokio::test]
async fn a_hub_whose_database_password_was_replaced_gets_back_in() {
    support::init();
    let dir = data_folder("aether-emb-rekey");
    let mut hub = TestHub::spawn(&dir.0, None, "127.0.0.1:0", &[]);
    hub.wait_ready().await;
    let (s, _) = hub
        .api()
        .post("/api/auth/signup", json!({"email": "k@example.com", "password": "correct horse battery"}))
        .await;
    assert_eq!(s, 201);
    assert!(hub.terminate().success(), "log:\n{}", hub.log());

    // The secrets folder was restored from elsewhere, or lost.
    std::fs::write(dir.0.join("secrets/postgres.key"), [7u8; 32]).unwrap();
    let mut hub = TestHub::spawn(&dir.0, None, "127.0.0.1:0", &[]);
    hub.wait_ready().await;
    let (s, v) =
        hub.api().post("/api/auth/login", json!({"email": "k@example.com", "password": "correct horse battery"})).await;
    assert_eq!(s, 200, "the account is still there: {v}");
    assert!(psql(&dir.0, None, Some(&hex::encode([7u8; 32])), "SELECT 1").is_ok(), "the new password opens it");
    assert!(hub.terminate().success(), "log:\n{}", hub.log());
}

#[tokio::test]
async fn the_hub_rides_out_its_database_going_down() {
    support::init();
    let dir = data_folder("aether-emb-down");
    // Down for at least 5 s once seen down, so there is time to look.
    let mut hub = TestHub::spawn(&dir.0, None, "127.0.0.1:0", &[("AETHER_PG_RESTART_DELAY_MS", "5000")]);
    hub.wait_ready().await;
    let api = hub.user().await;
    let id = api.project("survivor").await;

    let data = dir.0.join("postgres/data");
    let out =
        as_cluster_user("pg_ctl").args(["-D", data.to_str().unwrap(), "-m", "immediate", "stop"]).output().unwrap();
    assert!(out.status.success(), "pg_ctl stop: {}", String::from_utf8_lossy(&out.stderr));

    // What needs the database says so, in the contract's shape.
    let down = |(s, v): (u16, Value)| (s == 503 && v["error"]["code"] == "unavailable").then_some(v);
    support::eventually("the projects list to answer 503", DEADLINE, || async { down(api.get("/api/projects").await) })
        .await;
    let (s, v) = api.get(&format!("/api/projects/{id}")).await;
    assert_eq!((s, v["error"]["code"].as_str()), (503, Some("unavailable")), "{v}");
    let (s, v) =
        hub.api().post("/api/auth/login", json!({"email": "x@example.com", "password": "whatever it is"})).await;
    assert_eq!((s, v["error"]["code"].as_str()), (503, Some("unavailable")), "{v}");
    let (s, v) = api.get("/readyz").await;
    assert_eq!((s, v["error"]["code"].as_str()), (503, Some("unavailable")), "{v}");
    // What doesn't keeps working.
    assert_eq!(api.get("/healthz").await.0, 200);
    assert_eq!(api.get("/metrics").await.0, 200);

    // The hub starts it again by itself, and everything is back.
    let back = support::eventually("the database to come back", Duration::from_secs(60), || async {
        let (s, v) = api.get("/api/projects").await;
        (s == 200).then_some(v)
    })
    .await;
    assert_eq!(back[0]["id"], id.as_str(), "{back}");
    assert_eq!(api.get("/readyz").await.0, 200);
    assert_eq!(api.post("/api/projects", json!({"name": "after"})).await.0, 201);
    assert!(hub.terminate().success(), "log:\n{}", hub.log());
}
