//! The VM's OpenSSH server, which agents reach through the hub's jump host.
//!
//! In the VM image (`system`) it is the system sshd on port 22, which aetherd
//! starts after the image's first-boot script (`first_boot`) and restarts if
//! it dies. In
//! local mode (`local`, the default) several VMs share one machine, so
//! aetherd runs an sshd of its own on a free loopback port, with a generated
//! config: its own host key under `~/.aether/sshd`, the home's
//! `authorized_keys`, and the user aetherd runs as. The hub always asks for
//! port 22; `port()` says where that really is. Either way the server
//! listens on loopback only.

use anyhow::Context;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// Which sshd serves agents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// An sshd of aetherd's own on a free loopback port (local VMs).
    Local,
    /// The system sshd on port 22 (the VM image).
    System,
    /// None: agents can't connect.
    Off,
}

impl Mode {
    pub fn parse(s: &str) -> anyhow::Result<Self> {
        match s {
            "local" => Ok(Self::Local),
            "system" => Ok(Self::System),
            "off" => Ok(Self::Off),
            _ => anyhow::bail!("AETHER_SSHD must be local, system or off, not {s:?}"),
        }
    }
}

/// How to run sshd.
#[derive(Debug, Clone)]
pub struct SshdConfig {
    pub mode: Mode,
    pub home: PathBuf,
    /// The sshd binary (absolute: sshd re-executes itself).
    pub sshd_bin: PathBuf,
    /// The user agents log in as; default: `dev` for `system`, aetherd's own user for `local`.
    pub user: Option<String>,
    /// Environment variables sshd must not inherit (aetherd's secrets).
    pub env_remove: Vec<String>,
}

/// What the hub needs to know about the running sshd.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ready {
    pub port: u16,
    /// Host public keys, `type base64`.
    pub host_keys: Vec<String>,
    pub user: String,
}

/// The supervised sshd.
pub struct Sshd {
    mode: Mode,
    ready: watch::Receiver<Option<Ready>>,
    /// What the supervisor needs, until it is started.
    pending: std::sync::Mutex<Option<Pending>>,
}

type Pending = (SshdConfig, watch::Sender<Option<Ready>>, CancellationToken);

/// First-boot script of the VM image, run before the system sshd starts.
const FIRST_BOOT: &str = "/opt/aether/first-boot.sh";

impl Sshd {
    /// Prepares sshd's supervision (until `shutdown`); nothing runs before `ensure_started`.
    pub fn new(config: SshdConfig, shutdown: CancellationToken) -> Arc<Self> {
        let (tx, rx) = watch::channel(None);
        let mode = config.mode;
        Arc::new(Self { mode, ready: rx, pending: std::sync::Mutex::new(Some((config, tx, shutdown))) })
    }

    /// Starts supervising sshd, once; later calls do nothing.
    pub fn ensure_started(&self) {
        if self.mode == Mode::Off {
            return;
        }
        if let Some((config, tx, shutdown)) = self.pending.lock().expect("sshd lock").take() {
            tokio::spawn(supervise(config, tx, shutdown));
        }
    }

    /// Changes as sshd comes and goes.
    pub fn watch(&self) -> watch::Receiver<Option<Ready>> {
        self.ready.clone()
    }

    /// Where the VM's port 22 really is, waiting up to `timeout` for sshd.
    /// `None` when there is no sshd to reach.
    pub async fn port_22(&self, timeout: Duration) -> Option<u16> {
        if self.mode == Mode::Off {
            return None;
        }
        let mut rx = self.ready.clone();
        let ready = tokio::time::timeout(timeout, rx.wait_for(Option::is_some)).await.ok()?.ok()?.clone();
        ready.map(|r| r.port)
    }
}

async fn supervise(config: SshdConfig, tx: watch::Sender<Option<Ready>>, shutdown: CancellationToken) {
    let mut backoff = crate::tunnel::Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
    loop {
        let run = async {
            let (mut child, ready) = match config.mode {
                Mode::Local => spawn_local(&config).await?,
                Mode::System => spawn_system(&config).await?,
                Mode::Off => unreachable!("no supervisor without sshd"),
            };
            tracing::info!(port = ready.port, user = %ready.user, "sshd up");
            tx.send_replace(Some(ready));
            let status = child.wait().await?;
            anyhow::Ok(status)
        };
        tokio::select! {
            () = shutdown.cancelled() => return,
            r = run => match r {
                Ok(status) => tracing::warn!(%status, "sshd exited"),
                Err(e) => tracing::warn!(error = format!("{e:#}"), "sshd down"),
            },
        }
        tx.send_replace(None);
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(backoff.next_delay()) => {}
        }
    }
}

#[allow(unsafe_code)]
fn command(config: &SshdConfig, args: &[&str]) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(&config.sshd_bin);
    cmd.args(args).stdin(Stdio::null()).kill_on_drop(true);
    for key in &config.env_remove {
        cmd.env_remove(key);
    }
    // sshd must not outlive aetherd, even a killed one (`kill_on_drop` needs
    // aetherd alive), and it can't be found by its environment afterwards:
    // sshd overwrites it with its process title.
    // SAFETY: the closure runs in the forked child before exec and only makes
    // one async-signal-safe system call (prctl).
    unsafe {
        cmd.pre_exec(|| {
            nix::sys::prctl::set_pdeathsig(Some(nix::sys::signal::Signal::SIGTERM)).map_err(std::io::Error::from)
        });
    }
    cmd
}

/// Waits until something accepts on `port`, or the child exits, or 10 s pass.
async fn wait_listening(child: &mut tokio::process::Child, port: u16) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            return Ok(());
        }
        if let Some(status) = child.try_wait()? {
            anyhow::bail!("sshd exited at start: {status}");
        }
        anyhow::ensure!(tokio::time::Instant::now() < deadline, "sshd did not listen on port {port}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn current_user() -> anyhow::Result<String> {
    let uid = nix::unistd::getuid();
    Ok(nix::unistd::User::from_uid(uid)?.with_context(|| format!("no user for uid {uid}"))?.name)
}

/// The sftp server binary, where this system keeps it.
pub fn sftp_server() -> Option<&'static str> {
    [
        "/usr/lib/openssh/sftp-server",
        "/usr/libexec/openssh/sftp-server",
        "/usr/libexec/sftp-server",
        "/usr/lib/ssh/sftp-server",
    ]
    .into_iter()
    .find(|p| Path::new(p).exists())
}

fn read_pub(path: &Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut parts = text.split_whitespace();
    match (parts.next(), parts.next()) {
        (Some(kind), Some(body)) => Ok(format!("{kind} {body}")),
        _ => anyhow::bail!("{} holds no public key", path.display()),
    }
}

/// The local sshd's files: host key, config.
async fn local_files(config: &SshdConfig, port: u16, user: &str) -> anyhow::Result<(PathBuf, String)> {
    let dir = config.home.join(".aether/sshd");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
    let key = dir.join("ssh_host_ed25519_key");
    if !key.exists() {
        let status = tokio::process::Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", "aether-vm", "-f"])
            .arg(&key)
            .stdin(Stdio::null())
            .status()
            .await
            .context("running ssh-keygen")?;
        anyhow::ensure!(status.success(), "ssh-keygen failed: {status}");
    }
    let host_key = read_pub(&key.with_extension("pub"))?;
    let mut text = format!(
        "# Written by aetherd at every start: the local VM's own sshd.\n\
         ListenAddress 127.0.0.1:{port}\n\
         HostKey {key}\n\
         PidFile none\n\
         AuthorizedKeysFile {keys}\n\
         StrictModes no\n\
         UsePAM no\n\
         PubkeyAuthentication yes\n\
         PasswordAuthentication no\n\
         KbdInteractiveAuthentication no\n\
         PermitRootLogin prohibit-password\n\
         AllowUsers {user}\n\
         AllowTcpForwarding yes\n\
         X11Forwarding no\n\
         PrintMotd no\n\
         PrintLastLog no\n\
         ClientAliveInterval 30\n\
         AcceptEnv LANG LC_*\n",
        key = key.display(),
        keys = config.home.join(".ssh/authorized_keys").display(),
    );
    if let Some(sftp) = sftp_server() {
        text.push_str(&format!("Subsystem sftp {sftp}\n"));
    }
    let file = dir.join("sshd_config");
    std::fs::write(&file, text)?;
    Ok((file, host_key))
}

async fn spawn_local(config: &SshdConfig) -> anyhow::Result<(tokio::process::Child, Ready)> {
    let user = match &config.user {
        Some(u) => u.clone(),
        None => current_user()?,
    };
    if nix::unistd::geteuid().is_root() {
        // sshd's privilege separation needs its empty directory.
        std::fs::create_dir_all("/run/sshd").context("creating /run/sshd")?;
    }
    // A free port can be taken between probing and binding: try a few.
    let mut last = None;
    for _ in 0..5 {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let (file, host_key) = local_files(config, port, &user).await?;
        let mut child = command(config, &["-D", "-e", "-f"])
            .arg(&file)
            .spawn()
            .with_context(|| format!("starting {}", config.sshd_bin.display()))?;
        match wait_listening(&mut child, port).await {
            Ok(()) => return Ok((child, Ready { port, host_keys: vec![host_key], user })),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| anyhow::anyhow!("sshd did not start")))
}

/// Runs the VM image's first-boot script (seeds an empty home, makes host
/// keys and sshd's run folder), if there is one. It must run before anything
/// creates files in the home: it seeds only an empty one. Tried three times.
pub fn first_boot() -> anyhow::Result<()> {
    if !Path::new(FIRST_BOOT).exists() {
        return Ok(());
    }
    let mut last = None;
    for attempt in 1..=3 {
        match std::process::Command::new(FIRST_BOOT).stdin(Stdio::null()).status() {
            Ok(s) if s.success() => return Ok(()),
            Ok(s) => last = Some(anyhow::anyhow!("{FIRST_BOOT} failed: {s}")),
            Err(e) => last = Some(anyhow::Error::new(e).context(format!("running {FIRST_BOOT}"))),
        }
        tracing::warn!(attempt, "first boot failed");
        std::thread::sleep(Duration::from_millis(500 * attempt));
    }
    Err(last.unwrap_or_else(|| anyhow::anyhow!("{FIRST_BOOT} failed")))
}

async fn spawn_system(config: &SshdConfig) -> anyhow::Result<(tokio::process::Child, Ready)> {
    let out = command(config, &["-T"]).output().await.context("running sshd -T")?;
    anyhow::ensure!(out.status.success(), "sshd -T: {}", String::from_utf8_lossy(&out.stderr).trim());
    let text = String::from_utf8_lossy(&out.stdout);
    let host_keys = text
        .lines()
        .filter_map(|l| l.strip_prefix("hostkey "))
        .filter_map(|p| read_pub(&PathBuf::from(format!("{}.pub", p.trim()))).ok())
        .collect();
    let mut child = command(config, &["-D", "-e"]).spawn().context("starting sshd")?;
    wait_listening(&mut child, 22).await?;
    let user = config.user.clone().unwrap_or_else(|| "dev".into());
    Ok((child, Ready { port: 22, host_keys, user }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse() {
        assert_eq!(Mode::parse("local").unwrap(), Mode::Local);
        assert_eq!(Mode::parse("system").unwrap(), Mode::System);
        assert!(Mode::parse("maybe").is_err());
    }

    #[tokio::test]
    async fn off_has_no_port_22() {
        let config = SshdConfig {
            mode: Mode::Off,
            home: "/nonexistent".into(),
            sshd_bin: "/usr/sbin/sshd".into(),
            user: None,
            env_remove: vec![],
        };
        let sshd = Sshd::new(config, CancellationToken::new());
        sshd.ensure_started();
        assert_eq!(sshd.port_22(Duration::from_millis(10)).await, None);
    }
}
