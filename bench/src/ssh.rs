//! `aether-bench ssh`: agents' SSH through the hub's jump host, beside the
//! same client through an OpenSSH sshd used as the jump host (`ssh -J`) in
//! front of the same target: the VM's sshd, with the same agent key (so the
//! same forced command) at the end of both paths.
//!
//! Figures: connection setup (`ssh … true`, median of 20) and bulk
//! throughput (500 MB through `cat` each way, median of 3). Runs alternate between the
//! two paths so that other load on the machine falls on both alike.

use crate::hub::Hub;
use anyhow::Context;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Connections timed per path for the setup figure.
const SETUPS: usize = 20;
/// Bytes sent through `cat` per direction.
const BULK: u64 = 500_000_000;
/// Bulk transfers per path and direction (the median is reported).
const BULK_ROUNDS: usize = 3;

/// One way of reaching the VM: an ssh config and the host alias in it.
struct Route {
    name: &'static str,
    config: PathBuf,
    alias: String,
}

impl Route {
    fn ssh(&self) -> Command {
        let mut cmd = Command::new("ssh");
        cmd.arg("-F").arg(&self.config).arg(&self.alias).env_remove("SSH_AUTH_SOCK").stdin(Stdio::null());
        cmd
    }

    fn setup(&self) -> anyhow::Result<Duration> {
        let t = Instant::now();
        let out = self.ssh().arg("true").output()?;
        anyhow::ensure!(out.status.success(), "{}: ssh true: {}", self.name, String::from_utf8_lossy(&out.stderr));
        Ok(t.elapsed())
    }

    fn time(&self, script: &str) -> anyhow::Result<Duration> {
        let t = Instant::now();
        let status = Command::new("sh").arg("-c").arg(script).env_remove("SSH_AUTH_SOCK").status()?;
        anyhow::ensure!(status.success(), "{}: {script}: {status}", self.name);
        Ok(t.elapsed())
    }

    /// Time to push `BULK` bytes up through `cat`.
    fn upload(&self) -> anyhow::Result<Duration> {
        let cfg = self.config.display();
        self.time(&format!("head -c {BULK} /dev/zero | ssh -F {cfg} {} 'cat > /dev/null'", self.alias))
    }

    /// Time to pull `BULK` bytes down through `cat`.
    fn download(&self) -> anyhow::Result<Duration> {
        let cfg = self.config.display();
        self.time(&format!("ssh -F {cfg} {} 'head -c {BULK} /dev/zero | cat' | cat > /dev/null", self.alias))
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn keygen(path: &Path) -> anyhow::Result<String> {
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(path)
        .status()
        .context("running ssh-keygen")?;
    anyhow::ensure!(status.success(), "ssh-keygen failed");
    Ok(std::fs::read_to_string(path.with_extension("pub"))?.trim().to_owned())
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// An OpenSSH sshd on a free loopback port that only forwards, as a jump host.
struct JumpSshd {
    child: std::process::Child,
    port: u16,
}

impl JumpSshd {
    fn start(dir: &Path, user: &str, client_key: &str) -> anyhow::Result<Self> {
        keygen(&dir.join("jump_host_key"))?;
        std::fs::write(dir.join("jump_authorized_keys"), format!("{client_key}\n"))?;
        let _ = std::fs::create_dir_all("/run/sshd");
        let port = free_port()?;
        let config = format!(
            "ListenAddress 127.0.0.1:{port}\nHostKey {dir}/jump_host_key\nPidFile none\n\
             AuthorizedKeysFile {dir}/jump_authorized_keys\nStrictModes no\nUsePAM no\n\
             PasswordAuthentication no\nKbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\n\
             AllowUsers {user}\nAllowTcpForwarding yes\nX11Forwarding no\nLogLevel ERROR\n",
            dir = dir.display()
        );
        std::fs::write(dir.join("jump_sshd_config"), config)?;
        let child = Command::new("/usr/sbin/sshd")
            .args(["-D", "-e", "-f"])
            .arg(dir.join("jump_sshd_config"))
            .stdin(Stdio::null())
            .stderr(std::fs::File::create(dir.join("jump_sshd.log"))?)
            .spawn()
            .context("starting the OpenSSH jump host")?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            anyhow::ensure!(Instant::now() < deadline, "the OpenSSH jump host did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(Self { child, port })
    }
}

impl Drop for JumpSshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The local VM's sshd port, from the config aetherd wrote for it.
fn vm_sshd_port(hub: &Hub, project: &str) -> anyhow::Result<u16> {
    let path = hub.data.join("vms").join(project).join("home/.aether/sshd/sshd_config");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let listen = text.lines().find_map(|l| l.strip_prefix("ListenAddress ")).context("no ListenAddress")?;
    Ok(listen.rsplit_once(':').context("no port")?.1.parse()?)
}

async fn get(hub: &Hub, path: &str) -> anyhow::Result<Value> {
    let resp = hub.client.get(format!("{}{path}", hub.http)).bearer_auth(&hub.token).send().await?;
    anyhow::ensure!(resp.status().is_success(), "{path}: {}", resp.status());
    Ok(resp.json().await?)
}

/// Both paths' configs, with the agent's files written from the API's answer.
async fn paths(hub: &Hub, dir: &Path) -> anyhow::Result<(Route, Route, JumpSshd)> {
    let project = hub.running_project().await?;
    let created = hub
        .post(&format!("/api/projects/{project}/agents?ssh_dir={}", dir.display()), json!({"name": "bench"}))
        .await?;
    let agent = created["agent"]["id"].as_str().unwrap_or_default().to_owned();
    let identity = PathBuf::from(created["ssh"]["identity_file"].as_str().unwrap_or_default());
    {
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&identity)?;
        std::io::Write::write_all(&mut f, created["private_key"].as_str().unwrap_or_default().as_bytes())?;
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    let ssh = loop {
        let ssh = get(hub, &format!("/api/projects/{project}/agents/{agent}/ssh?ssh_dir={}", dir.display())).await?;
        if ssh["vm_host_keys_known"] == true {
            break ssh;
        }
        anyhow::ensure!(Instant::now() < deadline, "the VM never reported its host key");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let text = |k: &str| ssh[k].as_str().unwrap_or_default().to_owned();
    std::fs::write(text("config_file"), text("config"))?;
    std::fs::write(text("known_hosts_file"), text("known_hosts"))?;
    let hub_path = Route { name: "hub jump host", config: text("config_file").into(), alias: text("alias") };

    // The same target behind an OpenSSH jump host.
    let vm_key = text("known_hosts").lines().find(|l| l.starts_with(&project)).context("no VM host key")?.to_owned();
    let vm_key = vm_key.split_once(' ').context("bad known_hosts line")?.1.to_owned();
    let user = text("user");
    let jump_key = keygen(&dir.join("jump_client_key"))?;
    let jump = JumpSshd::start(dir, &user, &jump_key)?;
    let vm_port = vm_sshd_port(hub, &project)?;
    let jump_host_key = std::fs::read_to_string(dir.join("jump_host_key.pub"))?;
    let jump_host_key = jump_host_key.split_whitespace().take(2).collect::<Vec<_>>().join(" ");
    std::fs::write(
        dir.join("openssh.known_hosts"),
        format!("[127.0.0.1]:{} {jump_host_key}\n[127.0.0.1]:{vm_port} {vm_key}\n", jump.port),
    )?;
    let config = format!(
        "Host openssh-jump\n  HostName 127.0.0.1\n  Port {jport}\n  User {user}\n  IdentityFile {dir}/jump_client_key\n\
         \x20 IdentitiesOnly yes\n  UserKnownHostsFile {dir}/openssh.known_hosts\n  StrictHostKeyChecking yes\n\
         Host openssh-target\n  HostName 127.0.0.1\n  Port {vm_port}\n  User {user}\n  ProxyJump openssh-jump\n\
         \x20 IdentityFile {identity}\n  IdentitiesOnly yes\n  UserKnownHostsFile {dir}/openssh.known_hosts\n\
         \x20 StrictHostKeyChecking yes\n",
        jport = jump.port,
        dir = dir.display(),
        identity = identity.display(),
    );
    std::fs::write(dir.join("openssh.config"), config)?;
    let openssh =
        Route { name: "OpenSSH jump host", config: dir.join("openssh.config"), alias: "openssh-target".into() };
    Ok((hub_path, openssh, jump))
}

/// Runs the SSH benchmark and prints its report.
pub fn run(rt: &tokio::runtime::Runtime) -> anyhow::Result<()> {
    let hub = rt.block_on(Hub::start())?;
    let dir = hub.data.join("ssh-bench");
    std::fs::create_dir_all(&dir)?;
    let result = (|| {
        let (aether, openssh, _jump) = rt.block_on(paths(&hub, &dir))?;
        eprintln!("ssh: connection setup, {SETUPS} each, alternating ...");
        for p in [&aether, &openssh] {
            p.setup()?; // warm up
        }
        let (mut a, mut o) = (Vec::new(), Vec::new());
        for _ in 0..SETUPS {
            a.push(aether.setup()?);
            o.push(openssh.setup()?);
        }
        eprintln!("ssh: {} MB through cat each way, {BULK_ROUNDS} rounds, alternating ...", BULK / 1_000_000);
        let (mut a_up, mut a_down, mut o_up, mut o_down) = (vec![], vec![], vec![], vec![]);
        for _ in 0..BULK_ROUNDS {
            a_up.push(aether.upload()?);
            o_up.push(openssh.upload()?);
            a_down.push(aether.download()?);
            o_down.push(openssh.download()?);
        }
        let (a_up, a_down, o_up, o_down) = (median(a_up), median(a_down), median(o_up), median(o_down));
        anyhow::Ok((median(a), median(o), a_up, a_down, o_up, o_down))
    })();
    rt.block_on(hub.stop());
    let (a, o, a_up, a_down, o_up, o_down) = result?;
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let mbs = |d: Duration| BULK as f64 / 1e6 / d.as_secs_f64();
    println!(
        "aether ssh benchmark (setup: median of {SETUPS}; bulk: {} MB through cat, median of {BULK_ROUNDS})",
        BULK / 1_000_000
    );
    println!("{:<40} {:>14} {:>14} {:>9}", "figure", "hub jump", "OpenSSH -J", "ratio");
    println!("{:<40} {:>14.1} {:>14.1} {:>8.2}x", "connection setup, ssh … true (ms)", ms(a), ms(o), ms(a) / ms(o));
    println!(
        "{:<40} {:>14.1} {:>14.1} {:>8.0}%",
        "upload through cat (MB/s)",
        mbs(a_up),
        mbs(o_up),
        100.0 * mbs(a_up) / mbs(o_up)
    );
    println!(
        "{:<40} {:>14.1} {:>14.1} {:>8.0}%",
        "download through cat (MB/s)",
        mbs(a_down),
        mbs(o_down),
        100.0 * mbs(a_down) / mbs(o_down)
    );
    println!("targets: setup within 1.30x of OpenSSH's jump; throughput at least 80% of it");
    Ok(())
}
