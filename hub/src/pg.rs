//! An embedded PostgreSQL cluster under the data folder, for when no
//! `DATABASE_URL` is given.
//!
//! It uses the machine's own `initdb` and `pg_ctl`, listens only on a unix
//! socket inside the data folder (no TCP port to collide on), and runs as
//! the `postgres` user when the hub runs as root, since PostgreSQL refuses
//! to run as root. A cluster left running by a killed hub is reused.

use anyhow::{Context, bail};
use sqlx::postgres::PgConnectOptions;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A running embedded cluster; `stop` shuts it down.
#[derive(Debug)]
pub struct EmbeddedPg {
    bin: PathBuf,
    data: PathBuf,
    socket_dir: PathBuf,
    as_postgres: bool,
}

const PORT: u16 = 5432;

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
    /// Initialises the cluster on first use and starts it unless it runs.
    pub fn start(dir: &Path) -> anyhow::Result<Self> {
        let bin = find_bin_dir()?;
        let as_postgres = nix::unistd::geteuid().is_root();
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let dir = dir.canonicalize()?;
        let data = dir.join("data");
        let socket_dir = dir.join("socket");
        if socket_dir.join(".s.PGSQL.5432").as_os_str().len() >= 100 {
            bail!(
                "the data folder path {} is too long for a postgres socket; set a shorter AETHER_DATA_DIR",
                dir.display()
            );
        }
        for d in [&dir, &socket_dir] {
            std::fs::create_dir_all(d)?;
        }
        let pg = Self { bin, data, socket_dir, as_postgres };
        if as_postgres {
            let user = nix::unistd::User::from_name("postgres")?
                .context("running as root needs a `postgres` user for the embedded database")?;
            for d in [&dir, &pg.socket_dir] {
                nix::unistd::chown(d.as_path(), Some(user.uid), Some(user.gid))?;
            }
            pg.check_reachable(&dir)?;
        }
        if !pg.data.join("PG_VERSION").exists() {
            tracing::info!(data = %pg.data.display(), "initialising embedded postgres");
            pg.run(
                "initdb",
                &["-D", path_str(&pg.data)?, "--auth=trust", "-U", "postgres", "-E", "UTF8", "--no-instructions"],
            )?;
        }
        if !pg.running() {
            let log = dir.join("postgres.log");
            let opts = format!("-k {} -c listen_addresses= -p {PORT}", path_str(&pg.socket_dir)?);
            pg.run(
                "pg_ctl",
                &["-D", path_str(&pg.data)?, "-l", path_str(&log)?, "-o", &opts, "-w", "-t", "60", "start"],
            )?;
        } else {
            tracing::info!("reusing the embedded postgres that is already running");
        }
        Ok(pg)
    }

    fn check_reachable(&self, dir: &Path) -> anyhow::Result<()> {
        let status = self.command("test").args(["-x", path_str(dir)?]).status()?;
        if !status.success() {
            bail!("user postgres cannot reach {}; set AETHER_DATA_DIR to a folder it can traverse", dir.display());
        }
        Ok(())
    }

    fn command(&self, program: &str) -> Command {
        let path = if program == "test" { PathBuf::from("test") } else { self.bin.join(program) };
        if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(path);
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

    /// How to connect to it.
    pub fn connect_options(&self) -> PgConnectOptions {
        PgConnectOptions::new().socket(&self.socket_dir).port(PORT).username("postgres").database("postgres")
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
