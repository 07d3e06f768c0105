//! An embedded PostgreSQL cluster under the data folder, for when no
//! `DATABASE_URL` is given.
//!
//! It uses the machine's own `initdb`, `pg_ctl` and `postgres`, and runs as
//! the `postgres` user when the hub runs as root, since PostgreSQL refuses
//! to run as root. Only the hub can reach it: it listens on a unix socket
//! alone (no TCP port to collide on or to be reached by), in a folder that,
//! like the data, is the cluster user's and 0700, and every connection must
//! give the password the hub keeps in its secrets (scram-sha-256). A
//! cluster an older hub made (trust auth) is given that password in
//! single-user mode and its `pg_hba.conf` replaced; its data is untouched.
//!
//! A cluster left running by a killed hub is reused, and one that dies while
//! the hub runs is started again (`watch`).

use anyhow::{Context, bail};
use nix::unistd::{Gid, Uid};
use sqlx::postgres::PgConnectOptions;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// A running embedded cluster; `stop` shuts it down.
#[derive(Clone)]
pub struct EmbeddedPg {
    bin: PathBuf,
    dir: PathBuf,
    data: PathBuf,
    socket_dir: PathBuf,
    /// The cluster's OS user when the hub runs as root (`postgres`).
    owner: Option<(Uid, Gid)>,
    password: String,
}

impl std::fmt::Debug for EmbeddedPg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedPg").field("data", &self.data).field("socket_dir", &self.socket_dir).finish()
    }
}

const PORT: u16 = 5432;
/// The superuser the hub connects as.
const USER: &str = "postgres";
/// The only way in: the hub's user, over the socket, with the password.
const HBA: &str = "# Written by aether-hub, which puts it back at every start: only the hub\n\
                   # connects, over the unix socket in a folder only the cluster's user may\n\
                   # enter, with the password in the hub's secrets.\n\
                   local all postgres scram-sha-256\n";
/// How often `watch` looks at the postmaster.
const WATCH_EVERY: Duration = Duration::from_millis(500);
/// The longest `watch` waits before starting a cluster that keeps dying.
const MAX_RESTART_DELAY: Duration = Duration::from_secs(30);
/// A cluster up this long is no longer "dying again": the delay starts over.
const STABLE_AFTER: Duration = Duration::from_secs(60);

fn find_bin_dir() -> anyhow::Result<PathBuf> {
    if let Ok(dir) = std::env::var("AETHER_PG_BIN") {
        return Ok(PathBuf::from(dir));
    }
    let mut candidates: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.path().join("bin")).collect())
        .unwrap_or_default();
    candidates.sort_by_key(|p| {
        p.parent().and_then(|v| v.file_name()).and_then(|v| v.to_str()).and_then(|v| v.parse::<u32>().ok()).unwrap_or(0)
    });
    if let Some(dir) = candidates.into_iter().rev().find(|d| d.join("initdb").exists()) {
        return Ok(dir);
    }
    for dir in std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()) {
        if dir.join("initdb").exists() && dir.join("pg_ctl").exists() {
            return Ok(dir);
        }
    }
    bail!("no PostgreSQL server binaries (initdb, pg_ctl) found; install postgresql or set DATABASE_URL")
}

impl EmbeddedPg {
    /// Initialises the cluster on first use, locks it down (upgrading one an
    /// older hub left open), and starts it unless it runs. Every connection
    /// must give `password`.
    pub fn start(dir: &Path, password: &str) -> anyhow::Result<Self> {
        let bin = find_bin_dir()?;
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let dir = dir.canonicalize()?;
        let socket_dir = dir.join("socket");
        if socket_dir.join(".s.PGSQL.5432").as_os_str().len() >= 100 {
            bail!(
                "the data folder path {} is too long for a postgres socket; set a shorter AETHER_DATA_DIR",
                dir.display()
            );
        }
        let owner = if nix::unistd::geteuid().is_root() {
            let user = nix::unistd::User::from_name(USER)?
                .context("running as root needs a `postgres` user for the embedded database")?;
            Some((user.uid, user.gid))
        } else {
            None
        };
        let pg = Self { bin, data: dir.join("data"), socket_dir, dir, owner, password: password.to_owned() };
        for d in [&pg.dir, &pg.socket_dir] {
            pg.private(d, 0o700)?;
        }
        if owner.is_some() {
            pg.check_reachable()?;
        }
        let hba = pg.data.join("pg_hba.conf");
        if !pg.data.join("PG_VERSION").exists() {
            tracing::info!(data = %pg.data.display(), "initialising embedded postgres");
            pg.initdb()?;
            pg.write_private(&hba, HBA.as_bytes())?;
        } else if std::fs::read_to_string(&hba).ok().as_deref() != Some(HBA) {
            // An older hub's cluster (trust auth), or one whose access was
            // changed: give it the password first, then close the door.
            tracing::info!(data = %pg.data.display(), "locking the embedded postgres down to the hub's password");
            if pg.running() {
                pg.stop();
            }
            pg.set_password()?;
            pg.write_private(&hba, HBA.as_bytes())?;
        }
        pg.private(&pg.data, 0o700)?;
        if pg.running() {
            tracing::info!("reusing the embedded postgres that is already running");
        } else {
            pg.start_server()?;
        }
        Ok(pg)
    }

    /// Gives the cluster the hub's password again, for when it no longer
    /// takes it (the hub's secrets were replaced): stop, set, start.
    pub fn reset_password(&self) -> anyhow::Result<()> {
        tracing::warn!("the embedded postgres refused the hub's password; setting it again");
        if self.running() {
            self.stop();
        }
        self.set_password()?;
        self.start_server()
    }

    /// `path` as a folder that only the cluster's user may use.
    fn private(&self, path: &Path, mode: u32) -> anyhow::Result<()> {
        std::fs::create_dir_all(path).with_context(|| format!("creating {}", path.display()))?;
        if let Some((uid, gid)) = self.owner {
            nix::unistd::chown(path, Some(uid), Some(gid)).with_context(|| format!("chown {}", path.display()))?;
        }
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
            .with_context(|| format!("chmod {}", path.display()))
    }

    /// Writes `path` (0600, the cluster user's), replacing it whole.
    fn write_private(&self, path: &Path, content: &[u8]) -> anyhow::Result<()> {
        let tmp = path.with_extension("aether-tmp");
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .with_context(|| format!("writing {}", tmp.display()))?;
        f.write_all(content)?;
        f.sync_all()?;
        if let Some((uid, gid)) = self.owner {
            nix::unistd::chown(&tmp, Some(uid), Some(gid))?;
        }
        std::fs::rename(&tmp, path).with_context(|| format!("replacing {}", path.display()))
    }

    fn initdb(&self) -> anyhow::Result<()> {
        // initdb reads the superuser's password from a file the cluster's
        // user can read; it lives only as long as initdb runs.
        let pwfile = self.dir.join(".initdb-password");
        self.write_private(&pwfile, self.password.as_bytes())?;
        let result = self.run(
            "initdb",
            &[
                "-D",
                path_str(&self.data)?,
                "--auth=scram-sha-256",
                "--pwfile",
                path_str(&pwfile)?,
                "-U",
                USER,
                "-E",
                "UTF8",
                "--no-instructions",
            ],
        );
        let _ = std::fs::remove_file(&pwfile);
        result
    }

    /// Sets the superuser's password in single-user mode (the server must be
    /// stopped), so it is never reachable without one.
    fn set_password(&self) -> anyhow::Result<()> {
        let sql = format!(
            "SET password_encryption = 'scram-sha-256'\nALTER ROLE {USER} WITH PASSWORD '{}'\n",
            self.password.replace('\'', "''")
        );
        let mut child = self
            .command("postgres")
            .args(["--single", "-D", path_str(&self.data)?, "-c", "exit_on_error=on", USER])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("running postgres --single")?;
        // The password goes in on stdin, never on a command line.
        child.stdin.take().context("postgres --single's stdin")?.write_all(sql.as_bytes())?;
        let out = child.wait_with_output()?;
        if !out.status.success() {
            let log = String::from_utf8_lossy(&out.stderr).replace(&self.password, "<password>");
            bail!("setting the embedded postgres's password failed: {log}");
        }
        Ok(())
    }

    fn start_server(&self) -> anyhow::Result<()> {
        let log = self.dir.join("postgres.log");
        let opts = format!(
            "-k {} -c listen_addresses= -p {PORT} -c unix_socket_permissions=0700",
            path_str(&self.socket_dir)?
        );
        self.run(
            "pg_ctl",
            &["-D", path_str(&self.data)?, "-l", path_str(&log)?, "-o", &opts, "-w", "-t", "60", "start"],
        )
    }

    fn check_reachable(&self) -> anyhow::Result<()> {
        let status = self.command("test").args(["-x", path_str(&self.dir)?]).status()?;
        if !status.success() {
            bail!("user postgres cannot reach {}; set AETHER_DATA_DIR to a folder it can traverse", self.dir.display());
        }
        Ok(())
    }

    fn command(&self, program: &str) -> Command {
        let path = if program == "test" { PathBuf::from("test") } else { self.bin.join(program) };
        if self.owner.is_some() {
            let mut c = Command::new("runuser");
            c.args(["-u", USER, "--"]).arg(path);
            c
        } else {
            Command::new(path)
        }
    }

    fn run(&self, program: &str, args: &[&str]) -> anyhow::Result<()> {
        let out = self.command(program).args(args).output().with_context(|| format!("running {program}"))?;
        if !out.status.success() {
            bail!("{program} failed: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        }
        Ok(())
    }

    fn running(&self) -> bool {
        let Ok(data) = path_str(&self.data) else {
            return false;
        };
        self.command("pg_ctl").args(["-D", data, "status"]).output().is_ok_and(|o| o.status.success())
    }

    /// Whether the cluster's postmaster is alive, from its pid file (cheap
    /// enough to ask twice a second: no process is started).
    fn postmaster_alive(&self) -> bool {
        let Ok(pidfile) = std::fs::read_to_string(self.data.join("postmaster.pid")) else {
            return false;
        };
        let Some(pid) = pidfile.lines().next().and_then(|l| l.trim().parse::<i32>().ok()) else {
            return false;
        };
        // A pid file left by a killed postmaster may name a pid reused since,
        // or one not yet reaped: `pid (comm) state …`.
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            return false;
        };
        let (head, tail) = stat.rsplit_once(')').unwrap_or_default();
        head.ends_with("(postgres") && !matches!(tail.trim_start().chars().next(), Some('Z' | 'X') | None)
    }

    /// Checks that the cluster takes the hub's password, setting it again if
    /// it doesn't (the hub's secrets were replaced since it was set).
    pub async fn check_login(&self) -> anyhow::Result<()> {
        use sqlx::Connection;
        match sqlx::PgConnection::connect_with(&self.connect_options()).await {
            Ok(conn) => {
                let _ = conn.close().await;
                Ok(())
            }
            // 28P01: invalid_password.
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("28P01") => {
                let pg = self.clone();
                tokio::task::spawn_blocking(move || pg.reset_password()).await?
            }
            Err(e) => Err(e).context("connecting to the embedded postgres"),
        }
    }

    /// How to connect to it.
    pub fn connect_options(&self) -> PgConnectOptions {
        PgConnectOptions::new()
            .socket(&self.socket_dir)
            .port(PORT)
            .username(USER)
            .password(&self.password)
            .database("postgres")
    }

    /// Starts the cluster again whenever it dies, until `shutdown`: after
    /// `delay` the first time, then twice as long each time it dies again
    /// soon after (at most 30 s). Requests meanwhile answer 503.
    pub async fn watch(self, delay: Duration, shutdown: CancellationToken) {
        let mut wait = delay;
        let mut started = Instant::now();
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(WATCH_EVERY) => {}
            }
            if self.postmaster_alive() {
                continue;
            }
            if started.elapsed() >= STABLE_AFTER {
                wait = delay;
            }
            tracing::error!(restart_in = ?wait, "the embedded postgres is not running");
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(wait) => {}
            }
            let pg = self.clone();
            match tokio::task::spawn_blocking(move || pg.start_server()).await {
                Ok(Ok(())) => tracing::info!("the embedded postgres is running again"),
                Ok(Err(e)) => tracing::error!(error = format!("{e:#}"), "starting the embedded postgres again"),
                Err(e) => tracing::error!(error = %e, "starting the embedded postgres again"),
            }
            started = Instant::now();
            wait = (wait * 2).clamp(delay, MAX_RESTART_DELAY.max(delay));
        }
    }

    /// Stops the cluster (fast shutdown).
    pub fn stop(&self) {
        if let Ok(data) = path_str(&self.data)
            && let Err(e) = self.run("pg_ctl", &["-D", data, "-m", "fast", "-w", "stop"])
        {
            tracing::warn!(error = format!("{e:#}"), "stopping embedded postgres");
        }
    }
}

fn path_str(p: &Path) -> anyhow::Result<&str> {
    p.to_str().with_context(|| format!("non-UTF-8 path {}", p.display()))
}
