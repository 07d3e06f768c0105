//! The local provider: a project's VM runs on this machine, isolated by
//! `sandbox` (the VM image's root, its own users, processes, network and
//! cgroup limits) where the machine allows it, else as a plain aetherd
//! process with a home folder under the data folder (`Isolation::Off`: the
//! hub then serves one user only, see `isolation`).
//!
//! A VM is started in its own process group, detached from the hub, so it
//! outlives a hub restart exactly as a Fly Machine would; its pid is kept in
//! a file so a restarted hub finds it again. What a VM was started with is
//! kept beside it (`spec.json`, readable by the hub alone) while it should
//! run: `supervise` restarts a VM that ended by itself, as a Fly Machine's
//! restart policy does, and stop removes it first.

use super::runs;
use super::sandbox::{Boot, Sandbox, VmLimits};
use super::{Compute, MachineState, StartSpec};
use anyhow::Context;
use async_trait::async_trait;
use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// Variables of the hub's own environment passed on to unisolated VMs.
const PASS_ENV: [&str; 7] = ["PATH", "LANG", "LC_ALL", "USER", "LOGNAME", "SHELL", "RUST_LOG"];
/// Restarts of one VM within `RESTART_WINDOW` before the provider gives up.
const MAX_RESTARTS: usize = 5;
const RESTART_WINDOW: Duration = Duration::from_secs(60);
/// How long a stop waits for the VM's last process to exit.
const HALT_TIMEOUT: Duration = Duration::from_secs(10);

/// How local VMs are kept apart from the host and each other.
#[derive(Debug, Clone)]
pub enum Isolation {
    Sandbox(Sandbox),
    /// Plain processes on the host, and why.
    Off(String),
}

/// Runs VMs on this machine.
#[derive(Debug)]
pub struct LocalCompute {
    root: PathBuf,
    aetherd: PathBuf,
    hub_addr: String,
    ca_file: PathBuf,
    isolation: Isolation,
    /// Held while a VM is started or stopped, so the supervisor never
    /// restarts one halfway through either.
    busy: tokio::sync::Mutex<HashMap<Uuid, Vec<Instant>>>,
}

/// What a VM was started with, kept while it should run.
#[derive(serde::Serialize, serde::Deserialize)]
struct Kept {
    token: String,
    env: Vec<(String, String)>,
    limits: VmLimits,
}

impl LocalCompute {
    pub fn new(root: PathBuf, aetherd: PathBuf, hub_addr: String, ca_file: PathBuf, isolation: Isolation) -> Self {
        if let Err(e) = std::fs::create_dir_all(&root).and_then(|()| {
            // Traversable, not listable: a sandbox's setup (the VM's root,
            // which is nobody here) must reach its own home below it.
            std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o711))
        }) {
            tracing::warn!(error = %e, root = %root.display(), "preparing the VMs' folder");
        }
        Self { root, aetherd, hub_addr, ca_file, isolation, busy: Default::default() }
    }

    /// `None` when VMs are isolated; else why not.
    pub fn unisolated(&self) -> Option<&str> {
        match &self.isolation {
            Isolation::Sandbox(_) => None,
            Isolation::Off(why) => Some(why),
        }
    }

    fn dir(&self, project: Uuid) -> PathBuf {
        self.root.join(project.to_string())
    }

    /// The project's home folder on the host.
    pub fn home(&self, project: Uuid) -> PathBuf {
        self.dir(project).join("home")
    }

    /// The pid of the VM's outermost process while it lives (an exiting
    /// process lives until it is a zombie, as the run's watcher sees it).
    fn pid(&self, project: Uuid) -> Option<u32> {
        let text = std::fs::read_to_string(self.dir(project).join("vm.pid")).ok()?;
        let pid: u32 = text.trim().parse().ok()?;
        let alive = match self.current(project).and_then(|(_, ticks)| ticks) {
            // Told from a later process given the same pid by its start time.
            Some(ticks) => proc_stat(pid).is_some_and(|(state, started)| live_state(state) && started == ticks),
            None => is_vm(pid),
        };
        alive.then_some(pid)
    }

    /// The VM's current run (`vm.run`: its key, and its outermost process's
    /// start time in clock ticks).
    fn current(&self, project: Uuid) -> Option<(String, Option<u64>)> {
        let text = std::fs::read_to_string(self.dir(project).join("vm.run")).ok()?;
        let mut fields = text.split_whitespace();
        let key = fields.next()?.to_owned();
        Some((key, fields.next().and_then(|t| t.parse().ok())))
    }

    /// Whether run `key`'s watcher still runs: until it has written the
    /// run's end, the run is not over.
    fn watching(&self, project: Uuid, key: &str) -> bool {
        let Some(pid) =
            std::fs::read_to_string(self.dir(project).join("vm.watch")).ok().and_then(|t| t.trim().parse().ok())
        else {
            return false;
        };
        runs::watches(pid, key)
    }

    /// Waits until `pid()` says the VM's outermost process is gone.
    async fn wait_gone(&self, project: Uuid, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        while self.pid(project).is_some() {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        true
    }

    fn create_dirs(&self, project: Uuid) -> anyhow::Result<()> {
        let (dir, home) = (self.dir(project), self.home(project));
        std::fs::create_dir_all(&home).with_context(|| format!("creating {}", home.display()))?;
        std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o700))?;
        match &self.isolation {
            Isolation::Sandbox(sandbox) => {
                // Only the VM's root (its group here) passes through to the
                // home, which is the VM's `dev`'s; the image's first boot
                // seeds it when empty.
                std::os::unix::fs::chown(&dir, Some(0), Some(sandbox.root_uid()))?;
                std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o710))?;
                std::os::unix::fs::chown(&home, Some(sandbox.dev_uid()), Some(sandbox.dev_uid()))?;
            }
            Isolation::Off(_) => std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?,
        }
        Ok(())
    }

    async fn boot(&self, project: Uuid, kept: &Kept) -> anyhow::Result<()> {
        self.create_dirs(project)?;
        let dir = self.dir(project);
        let log = dir.join("aetherd.log");
        let started = chrono::Utc::now();
        let pid = match &self.isolation {
            Isolation::Sandbox(sandbox) => {
                let socket = aether_transport::udp_socket(if self.hub_addr.starts_with('[') {
                    "[::1]:0".parse()?
                } else {
                    "127.0.0.1:0".parse()?
                })?;
                let ca = std::fs::read_to_string(&self.ca_file).context("reading the hub's CA")?;
                let mut env: Vec<(String, String)> = [
                    ("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"),
                    ("LANG", "en_US.UTF-8"),
                    ("HOME", "/root"),
                    ("AETHER_HOME", "/home/dev"),
                    ("AETHER_USER", "dev"),
                    ("AETHER_SSHD", "system"),
                    ("AETHER_TUNNEL_FD", "3"),
                ]
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .into();
                env.extend(std::env::var("RUST_LOG").ok().map(|v| ("RUST_LOG".to_owned(), v)));
                env.extend(kept.env.iter().cloned());
                let names: Vec<&str> = kept.env.iter().map(|(k, _)| k.as_str()).collect();
                env.push(("AETHER_SESSION_ENV".into(), names.join(",")));
                env.extend([
                    ("AETHER_HUB_ADDR".to_owned(), self.hub_addr.clone()),
                    ("AETHER_HUB_CA_PEM".to_owned(), ca),
                    ("AETHER_PROJECT_ID".to_owned(), project.to_string()),
                    ("AETHER_MACHINE_TOKEN".to_owned(), kept.token.clone()),
                ]);
                let vm = Boot {
                    project,
                    home: self.home(project),
                    aetherd: self.aetherd.clone(),
                    env,
                    limits: kept.limits,
                    log: log.clone(),
                };
                let sandbox = sandbox.clone();
                tokio::task::spawn_blocking(move || sandbox.spawn(&vm, socket)).await??
            }
            Isolation::Off(_) => self.spawn_plain(project, kept, &log)?,
        };
        std::fs::write(dir.join("vm.pid"), pid.to_string())?;
        let key = format!("{pid}-{}", started.timestamp_millis());
        let ticks = proc_stat(pid).map(|(_, ticks)| ticks.to_string()).unwrap_or_default();
        std::fs::write(dir.join("vm.run"), format!("{key} {ticks}"))?;
        runs::started(&dir.join(runs::LOG), &key, started)?;
        match runs::watch(pid, &key, &dir.join(runs::LOG)) {
            Some(watcher) => std::fs::write(dir.join("vm.watch"), watcher.to_string())?,
            None => {
                let _ = std::fs::remove_file(dir.join("vm.watch"));
            }
        }
        Ok(())
    }

    /// aetherd as a process of the host (no isolation).
    fn spawn_plain(&self, project: Uuid, kept: &Kept, log: &Path) -> anyhow::Result<u32> {
        let home = self.home(project);
        let log = private_log(log)?;
        let mut cmd = tokio::process::Command::new(&self.aetherd);
        cmd.arg("run").env_clear();
        for key in PASS_ENV {
            if let Ok(v) = std::env::var(key) {
                cmd.env(key, v);
            }
        }
        cmd.envs(kept.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("HOME", &home)
            .env("AETHER_HOME", &home)
            .env("AETHER_HUB_ADDR", &self.hub_addr)
            .env("AETHER_HUB_CA", &self.ca_file)
            .env("AETHER_PROJECT_ID", project.to_string())
            .env("AETHER_MACHINE_TOKEN", &kept.token)
            // The machine is shared: only this VM's processes' ports are previews.
            .env("AETHER_PORTS_SCOPE", "marked")
            .current_dir(&home)
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(0)
            .kill_on_drop(false);
        let mut child = cmd.spawn().with_context(|| format!("starting {}", self.aetherd.display()))?;
        let pid = child.id().context("aetherd exited at once")?;
        // Reap it when it exits, so it never lingers as a zombie of the hub.
        tokio::spawn(async move {
            let _ = child.wait().await;
        });
        Ok(pid)
    }

    /// Ends every process of the VM. The run ends when its outermost
    /// process has exited, not before: an error says it would not.
    async fn halt(&self, project: Uuid) -> anyhow::Result<()> {
        let live = self.pid(project);
        match &self.isolation {
            Isolation::Sandbox(_) => Sandbox::kill(project).await?,
            Isolation::Off(_) => {
                if let Some(pid) = live {
                    let _ = killpg(Pid::from_raw(pid as i32), Signal::SIGTERM);
                    if !self.wait_gone(project, Duration::from_secs(5)).await {
                        tracing::warn!(%project, pid, "aetherd ignored SIGTERM; killing");
                    }
                }
                // Whatever is left of the VM, however it detached itself.
                for _ in 0..3 {
                    let left = processes_with(&format!("AETHER_PROJECT_ID={project}"));
                    if left.is_empty() {
                        break;
                    }
                    for pid in left {
                        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
        if let Some(pid) = live
            && !self.wait_gone(project, HALT_TIMEOUT).await
        {
            // The run goes on (and is metered) until it does; its watcher
            // records the end.
            anyhow::bail!("the VM's outermost process ({pid}) would not end");
        }
        let dir = self.dir(project);
        if let Some((key, _)) = self.current(project) {
            if live.is_some() {
                // It has just exited: the run ended now, if its watcher
                // hasn't said so earlier.
                let _ = runs::ended(&dir.join(runs::LOG), &key, chrono::Utc::now());
            } else {
                // It ended by itself: its watcher says when, unless nothing
                // watched it.
                let deadline = tokio::time::Instant::now() + HALT_TIMEOUT;
                while self.watching(project, &key) && tokio::time::Instant::now() < deadline {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
            let _ = std::fs::remove_file(dir.join("vm.run"));
        }
        let _ = std::fs::remove_file(dir.join("vm.pid"));
        let _ = std::fs::remove_file(dir.join("vm.watch"));
        Ok(())
    }

    /// Restarts VMs that should run and ended by themselves (their aetherd
    /// died), every second, until `shutdown`: a restart policy, as Fly
    /// Machines have. A VM that keeps dying is left stopped after
    /// `MAX_RESTARTS` in a minute.
    pub async fn supervise(self: std::sync::Arc<Self>, shutdown: tokio_util::sync::CancellationToken) {
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
            for project in self.list().await.unwrap_or_default() {
                let spec = self.dir(project).join("spec.json");
                if !spec.exists() || self.pid(project).is_some() {
                    continue;
                }
                let mut busy = self.busy.lock().await;
                // Re-checked under the lock: a stop removes the spec first.
                let Ok(kept) = std::fs::read(&spec)
                    .map_err(anyhow::Error::from)
                    .and_then(|b| serde_json::from_slice::<Kept>(&b).map_err(anyhow::Error::from))
                else {
                    continue;
                };
                if self.pid(project).is_some() {
                    continue;
                }
                let restarts = busy.entry(project).or_default();
                restarts.retain(|t| t.elapsed() < RESTART_WINDOW);
                if restarts.len() >= MAX_RESTARTS {
                    tracing::warn!(%project, "the VM keeps ending by itself; leaving it stopped");
                    let _ = std::fs::remove_file(&spec);
                    let _ = self.halt(project).await;
                    continue;
                }
                restarts.push(Instant::now());
                tracing::warn!(%project, "the VM ended by itself; restarting it");
                let _ = self.halt(project).await;
                if let Err(e) = self.boot(project, &kept).await {
                    tracing::warn!(%project, error = format!("{e:#}"), "restarting the VM");
                }
            }
        }
    }
}

/// Whether `pid` is a live (not zombie) VM: its sandbox or its aetherd.
fn is_vm(pid: u32) -> bool {
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let argv0 = cmdline.split(|b| *b == 0).next().unwrap_or_default();
    proc_stat(pid).is_some_and(|(state, _)| live_state(state))
        && [&b"aetherd"[..], b"bwrap", b"unshare"].iter().any(|name| argv0.ends_with(name))
}

/// Processes (other than this one) whose environment holds `marker`
/// (`KEY=value`). Used by the Fly fake in the tests, whose machines are
/// local processes too.
pub fn processes_with(marker: &str) -> Vec<i32> {
    let me = std::process::id() as i32;
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return vec![];
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| *pid != me)
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .is_ok_and(|env| env.split(|b| *b == 0).any(|var| var == marker.as_bytes()))
        })
        .collect()
}

/// `/proc/PID/stat`'s state letter and start time (clock ticks since boot).
fn proc_stat(pid: u32) -> Option<(char, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = text.rsplit_once(") ")?;
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    Some((state, fields.nth(18)?.parse().ok()?))
}

/// A process in this state has not exited (a zombie has).
fn live_state(state: char) -> bool {
    state != 'Z' && state != 'X'
}

/// A log file of the VM's, readable by the hub alone.
pub fn private_log(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new().create(true).append(true).mode(0o600).open(path)
}

/// Writes `bytes` readable by the hub alone.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new().create(true).write(true).truncate(true).mode(0o600).open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(tmp, path)
}

#[async_trait]
impl Compute for LocalCompute {
    async fn create(&self, project: Uuid) -> anyhow::Result<String> {
        self.create_dirs(project)?;
        Ok(format!("local-{project}"))
    }

    async fn start(&self, spec: &StartSpec) -> anyhow::Result<()> {
        let project = spec.project_id;
        let _busy = self.busy.lock().await;
        if self.pid(project).is_some() {
            return Ok(());
        }
        let kept = Kept { token: spec.machine_token.clone(), env: spec.env.clone(), limits: spec.limits };
        self.create_dirs(project)?;
        write_private(&self.dir(project).join("spec.json"), &serde_json::to_vec(&kept)?)?;
        // Leftovers of a VM that died while no hub watched.
        self.halt(project).await?;
        self.boot(project, &kept).await
    }

    async fn stop(&self, project: Uuid) -> anyhow::Result<()> {
        let _busy = self.busy.lock().await;
        let _ = std::fs::remove_file(self.dir(project).join("spec.json"));
        self.halt(project).await
    }

    async fn destroy(&self, project: Uuid) -> anyhow::Result<()> {
        self.stop(project).await?;
        let dir = self.dir(project);
        // The run's watcher notices the VM's end within a quarter second and
        // appends it to the log beside it, which may land while the folder
        // goes: try again until it has.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            match std::fs::remove_dir_all(&dir) {
                Ok(()) => return Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
                Err(e)
                    if e.kind() == std::io::ErrorKind::DirectoryNotEmpty && tokio::time::Instant::now() < deadline =>
                {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => return Err(e).with_context(|| format!("removing {}", dir.display())),
            }
        }
    }

    async fn status(&self, project: Uuid) -> anyhow::Result<MachineState> {
        Ok(if self.pid(project).is_some() {
            MachineState::Running
        } else if self.dir(project).exists() {
            MachineState::Stopped
        } else {
            MachineState::Missing
        })
    }

    async fn list(&self) -> anyhow::Result<Vec<Uuid>> {
        let Ok(entries) = std::fs::read_dir(&self.root) else {
            return Ok(vec![]);
        };
        Ok(entries.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok()).collect())
    }

    fn unisolated(&self) -> Option<String> {
        LocalCompute::unisolated(self).map(str::to_owned)
    }

    async fn runs(&self, project: Uuid) -> anyhow::Result<Option<Vec<super::Run>>> {
        let dir = self.dir(project);
        // A run goes on while its outermost process lives, and after that
        // until its watcher has written its end.
        let current = self
            .current(project)
            .map(|(key, _)| key)
            .filter(|key| self.pid(project).is_some() || self.watching(project, key));
        Ok(Some(runs::read(&dir.join(runs::LOG), current.as_deref())))
    }

    fn cpu_usage_ns(&self, project: Uuid) -> Option<u64> {
        match &self.isolation {
            Isolation::Sandbox(_) => Sandbox::cpu_usage_ns(project),
            Isolation::Off(_) => None,
        }
    }
}
