//! Booting a fake machine: a real aetherd process started with the
//! machine's env, its volume played by a folder (the mount path in env
//! values is rewritten to it), in its own process group.
//!
//! Every process of a machine carries `FAKE_FLY_MACHINE_ID` in its env (and
//! aetherd passes its env on to the shells it starts), which is how a stop
//! finds and ends the whole tree, shells that made their own sessions too.

pub use aether_hub::compute::local::processes_with;
use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use std::collections::BTreeMap;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

/// Variables of the test's own environment a machine gets (a real VM has
/// its image's; these make a local aetherd and its shells work).
const PASS_ENV: [&str; 6] = ["PATH", "LANG", "USER", "LOGNAME", "SHELL", "RUST_LOG"];
const MARKER: &str = "FAKE_FLY_MACHINE_ID";
const HOME: &str = "/home/dev";

/// Where the fake finds aetherd and keeps its volumes' folders and logs.
#[derive(Debug, Clone)]
pub struct Boot {
    pub aetherd: PathBuf,
    pub root: PathBuf,
}

/// A running machine's process tree.
pub struct Vm {
    child: Child,
    marker: String,
}

impl Boot {
    /// Starts aetherd for machine `id` with `env`, its home on `volume`'s folder.
    pub fn spawn(&self, id: &str, env: &BTreeMap<String, String>, volume: Option<&str>) -> std::io::Result<Vm> {
        let home = self.root.join(volume.unwrap_or(id));
        std::fs::create_dir_all(&home)?;
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.root.join(format!("{id}.log")))?;
        let mut cmd = Command::new(&self.aetherd);
        cmd.arg("run").env_clear();
        for key in PASS_ENV {
            if let Ok(v) = std::env::var(key) {
                cmd.env(key, v);
            }
        }
        for (k, v) in env {
            let v = match v.strip_prefix(HOME) {
                Some(rest) if rest.is_empty() || rest.starts_with('/') => format!("{}{rest}", home.display()),
                _ => v.clone(),
            };
            cmd.env(k, v);
        }
        let marker = format!("{MARKER}={id}");
        // Fake machines share this host: only their own ports are previews.
        cmd.env("HOME", &home)
            .env("AETHER_PORTS_SCOPE", "marked")
            .env(MARKER, id)
            .current_dir(&home)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(0);
        Ok(Vm { child: cmd.spawn()?, marker })
    }
}

impl Vm {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The stop signal, to the process group.
    pub fn terminate(&self) {
        let _ = killpg(Pid::from_raw(self.child.id() as i32), Signal::SIGTERM);
    }

    /// Every process of this machine, however it detached itself.
    pub fn processes(&self) -> Vec<i32> {
        processes_with(&self.marker)
    }
}

/// The fake machine is gone: kill everything it ran and reap aetherd.
impl Drop for Vm {
    fn drop(&mut self) {
        let _ = killpg(Pid::from_raw(self.child.id() as i32), Signal::SIGKILL);
        for _ in 0..3 {
            let left = processes_with(&self.marker);
            if left.is_empty() {
                break;
            }
            for pid in left {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
