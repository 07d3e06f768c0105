//! The local provider: a project's VM is an aetherd process on this machine
//! with its own home folder under the data folder.
//!
//! aetherd is started in its own process group, detached from the hub, so it
//! outlives a hub restart exactly as a Fly Machine would; its pid is kept in
//! a file so a restarted hub finds it again. Every process of a VM carries
//! `AETHER_PROJECT_ID` in its environment, which is how stop finds and ends
//! the whole tree, including shells that started their own sessions.

use super::{Compute, MachineState, StartSpec};
use anyhow::Context;
use async_trait::async_trait;
use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use std::path::{Path, PathBuf};
use std::time::Duration;
use uuid::Uuid;

/// Variables of the hub's own environment passed on to local VMs.
const PASS_ENV: [&str; 7] = ["PATH", "LANG", "LC_ALL", "USER", "LOGNAME", "SHELL", "RUST_LOG"];

/// Runs VMs as local aetherd processes.
#[derive(Debug)]
pub struct LocalCompute {
    root: PathBuf,
    aetherd: PathBuf,
    hub_addr: String,
    ca_file: PathBuf,
}

impl LocalCompute {
    pub fn new(root: PathBuf, aetherd: PathBuf, hub_addr: String, ca_file: PathBuf) -> Self {
        Self { root, aetherd, hub_addr, ca_file }
    }

    fn dir(&self, project: Uuid) -> PathBuf {
        self.root.join(project.to_string())
    }

    /// The project's home folder.
    pub fn home(&self, project: Uuid) -> PathBuf {
        self.dir(project).join("home")
    }

    fn pid(&self, project: Uuid) -> Option<u32> {
        let text = std::fs::read_to_string(self.dir(project).join("aetherd.pid")).ok()?;
        let pid: u32 = text.trim().parse().ok()?;
        is_aetherd(pid).then_some(pid)
    }
}

/// Whether `pid` is a live (not zombie) aetherd.
fn is_aetherd(pid: u32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let state = stat.rsplit_once(") ").and_then(|(_, rest)| rest.chars().next());
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    matches!(state, Some(s) if s != 'Z' && s != 'X')
        && cmdline.split(|b| *b == 0).next().is_some_and(|argv0| argv0.ends_with(b"aetherd"))
}

/// Every process whose environment marks it as part of `project`'s VM.
fn processes_of(project: Uuid) -> Vec<i32> {
    processes_with(&format!("AETHER_PROJECT_ID={project}"))
}

/// Processes (other than this one) whose environment holds `marker`
/// (`KEY=value`). Also used by the Fly fake in the tests, whose machines are
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

async fn wait_gone(pid: u32, timeout: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    while is_aetherd(pid) {
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    true
}

fn create_dirs(home: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(home).with_context(|| format!("creating {}", home.display()))
}

#[async_trait]
impl Compute for LocalCompute {
    async fn create(&self, project: Uuid) -> anyhow::Result<String> {
        create_dirs(&self.home(project))?;
        Ok(format!("local-{project}"))
    }

    async fn start(&self, spec: &StartSpec) -> anyhow::Result<()> {
        let project = spec.project_id;
        if self.pid(project).is_some() {
            return Ok(());
        }
        let dir = self.dir(project);
        let home = self.home(project);
        create_dirs(&home)?;
        let log = std::fs::OpenOptions::new().create(true).append(true).open(dir.join("aetherd.log"))?;
        let mut cmd = tokio::process::Command::new(&self.aetherd);
        cmd.arg("run").env_clear();
        for key in PASS_ENV {
            if let Ok(v) = std::env::var(key) {
                cmd.env(key, v);
            }
        }
        cmd.envs(spec.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("HOME", &home)
            .env("AETHER_HOME", &home)
            .env("AETHER_HUB_ADDR", &self.hub_addr)
            .env("AETHER_HUB_CA", &self.ca_file)
            .env("AETHER_PROJECT_ID", project.to_string())
            .env("AETHER_MACHINE_TOKEN", &spec.machine_token)
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
        std::fs::write(dir.join("aetherd.pid"), pid.to_string())?;
        // Reap it when it exits, so it never lingers as a zombie of the hub.
        tokio::spawn(async move {
            let _ = child.wait().await;
        });
        Ok(())
    }

    async fn stop(&self, project: Uuid) -> anyhow::Result<()> {
        if let Some(pid) = self.pid(project) {
            let _ = killpg(Pid::from_raw(pid as i32), Signal::SIGTERM);
            if !wait_gone(pid, Duration::from_secs(5)).await {
                tracing::warn!(%project, pid, "aetherd ignored SIGTERM; killing");
            }
        }
        // Whatever is left of the VM, however it detached itself.
        for _ in 0..3 {
            let left = processes_of(project);
            if left.is_empty() {
                break;
            }
            for pid in left {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let _ = std::fs::remove_file(self.dir(project).join("aetherd.pid"));
        Ok(())
    }

    async fn destroy(&self, project: Uuid) -> anyhow::Result<()> {
        self.stop(project).await?;
        let dir = self.dir(project);
        if dir.exists() {
            std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
        }
        Ok(())
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
}
