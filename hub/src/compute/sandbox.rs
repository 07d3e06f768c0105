//! A local VM's boundary: the VM image's root file system, its own users,
//! processes, network and limits, on the hub's machine. Made of existing
//! tools, not namespace code of our own:
//!
//! * `unshare` (util-linux, with `newuidmap`) makes a user namespace that
//!   maps the VM's uids 0–65535 to host uids `base`–`base+65535`, which own
//!   nothing on the host: the VM's root is nobody outside it.
//! * `bwrap` (bubblewrap) makes the mount, pid, network, IPC, UTS and cgroup
//!   namespaces: the image's root read-only at `/`, the project's home at
//!   `/home/dev`, aetherd's binary, fresh `/proc`, `/dev`, `/tmp` and `/run`;
//!   the VM's root keeps only the capabilities a machine's root needs to run
//!   sshd and switch users (no `CAP_SYS_ADMIN`, so nothing can be remounted).
//! * `slirp4netns` gives the network namespace outbound traffic in user
//!   mode, without the host's loopback, and blackhole routes close off the
//!   host's own addresses, link-local and private networks; aetherd reaches
//!   the hub's tunnel through a UDP socket of the host's that the provider
//!   hands it (fd 3).
//! * cgroup v1 controllers (`memory`, `pids`, `cpu`, `freezer`) under
//!   `aether/{project}` bound the VM's memory, processes and CPU, and stop
//!   freezes and kills every process in it, however it detached itself;
//!   `cpuacct` tells the idle sweep how much CPU the VM uses.

use anyhow::{Context, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::time::Duration;
use uuid::Uuid;

/// The controllers a VM's cgroups are made in.
const CONTROLLERS: [&str; 5] = ["memory", "pids", "cpu", "freezer", "cpuacct"];
const CGROUP_ROOT: &str = "/sys/fs/cgroup";
/// uids (and gids) each VM's namespace maps.
const ID_COUNT: u32 = 65_536;
/// The image's user (`infra/vm/setup.sh`).
pub const DEV_UID: u32 = 1000;
/// What the VM's root may still do (in its own user namespace only): run
/// sshd, switch to `dev`, own files, see its processes.
const CAPS: [&str; 14] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_AUDIT_WRITE",
    "CAP_SETFCAP",
    // aetherd reads /proc/PID/fd of dev's processes to name a port's owner.
    "CAP_SYS_PTRACE",
];

/// What one VM may use (from its owner's plan).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct VmLimits {
    /// CPUs' worth of time per period.
    pub cpus: u32,
    pub memory_mb: u64,
    /// Processes and threads.
    pub pids: u32,
}

impl Default for VmLimits {
    fn default() -> Self {
        Self { cpus: 1, memory_mb: 2048, pids: 4096 }
    }
}

/// One VM's boot: what `Sandbox::spawn` starts.
#[derive(Debug, Clone)]
pub struct Boot {
    pub project: Uuid,
    /// The project's home on the host, the VM's `/home/dev`.
    pub home: PathBuf,
    /// The aetherd binary, the VM's `/usr/local/bin/aetherd`.
    pub aetherd: PathBuf,
    /// aetherd's environment.
    pub env: Vec<(String, String)>,
    pub limits: VmLimits,
    /// Where the VM's output goes.
    pub log: PathBuf,
}

/// The tools and image local VMs are isolated with, found on this machine.
#[derive(Debug, Clone)]
pub struct Sandbox {
    rootfs: PathBuf,
    /// The host uid the VMs' root is.
    base: u32,
}

fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(tool).is_file()))
}

/// Whether `/etc/subuid` (or subgid) lets root map `base`..`base+count`.
fn sub_ids_allow(file: &str, base: u32) -> bool {
    let text = std::fs::read_to_string(file).unwrap_or_default();
    text.lines().any(|line| {
        let mut f = line.split(':');
        let (Some(who), Some(start), Some(count)) = (f.next(), f.next(), f.next()) else { return false };
        let (Ok(start), Ok(count)) = (start.parse::<u64>(), count.parse::<u64>()) else { return false };
        (who == "root" || who == "0")
            && start <= u64::from(base)
            && u64::from(base) + u64::from(ID_COUNT) <= start + count
    })
}

impl Sandbox {
    /// The sandbox, or why this machine can't isolate VMs.
    pub fn detect(rootfs: &Path) -> Result<Self, String> {
        if !nix::unistd::geteuid().is_root() {
            return Err(
                "the hub does not run as root (user namespaces with a range of uids and cgroups need it)".into()
            );
        }
        let missing: Vec<_> = ["unshare", "newuidmap", "newgidmap", "bwrap", "slirp4netns", "nsenter", "ip"]
            .into_iter()
            .filter(|t| !on_path(t))
            .collect();
        if !missing.is_empty() {
            return Err(format!(
                "missing {} (apt-get install util-linux uidmap bubblewrap slirp4netns iproute2)",
                missing.join(", ")
            ));
        }
        if !rootfs.join(".aether-rootfs").is_file() {
            return Err(format!("no VM image at {} (scripts/vm-rootfs.sh builds it)", rootfs.display()));
        }
        let base = std::fs::metadata(rootfs).map_err(|e| format!("{}: {e}", rootfs.display()))?.uid();
        if base == 0 {
            return Err(format!(
                "{} is owned by root; scripts/vm-rootfs.sh shifts it to the VMs' uids",
                rootfs.display()
            ));
        }
        if !sub_ids_allow("/etc/subuid", base) || !sub_ids_allow("/etc/subgid", base) {
            return Err(format!(
                "/etc/subuid and /etc/subgid don't give root the uids {base}-{} (usermod --add-subuids ... root)",
                u64::from(base) + u64::from(ID_COUNT) - 1
            ));
        }
        for c in CONTROLLERS {
            let dir = Path::new(CGROUP_ROOT).join(c);
            if std::fs::create_dir_all(dir.join("aether")).is_err() {
                return Err(format!("cgroup v1 controller {} is not writable", dir.display()));
            }
        }
        Ok(Self { rootfs: rootfs.to_path_buf(), base })
    }

    /// The host uid (and gid) of the VM's root.
    pub fn root_uid(&self) -> u32 {
        self.base
    }

    /// The host uid of the VM's `dev`.
    pub fn dev_uid(&self) -> u32 {
        self.base + DEV_UID
    }

    fn cgroups(project: Uuid) -> impl Iterator<Item = PathBuf> {
        CONTROLLERS.into_iter().map(move |c| Path::new(CGROUP_ROOT).join(c).join("aether").join(project.to_string()))
    }

    fn make_cgroups(project: Uuid, limits: VmLimits) -> anyhow::Result<Vec<std::fs::File>> {
        let mut procs = Vec::new();
        for dir in Self::cgroups(project) {
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            procs.push(std::fs::OpenOptions::new().write(true).open(dir.join("cgroup.procs"))?);
        }
        let [memory, pids, cpu, _, _] =
            CONTROLLERS.map(|c| Path::new(CGROUP_ROOT).join(c).join("aether").join(project.to_string()));
        let bytes = limits.memory_mb * 1024 * 1024;
        std::fs::write(memory.join("memory.limit_in_bytes"), bytes.to_string())?;
        // No swap beyond the limit, where the kernel accounts it.
        let _ = std::fs::write(memory.join("memory.memsw.limit_in_bytes"), bytes.to_string());
        std::fs::write(pids.join("pids.max"), limits.pids.to_string())?;
        std::fs::write(cpu.join("cpu.cfs_period_us"), "100000")?;
        std::fs::write(cpu.join("cpu.cfs_quota_us"), (u64::from(limits.cpus) * 100_000).to_string())?;
        Ok(procs)
    }

    /// Boots the VM: returns the pid of its outermost process (bwrap's
    /// monitor, outside the namespaces). `env` is aetherd's environment;
    /// `socket` is the host UDP socket aetherd dials the hub from.
    pub fn spawn(&self, vm: &Boot, socket: std::net::UdpSocket) -> anyhow::Result<u32> {
        let Boot { project, home, aetherd, env, limits, log } = vm;
        let (project, limits, log) = (*project, *limits, log.as_path());
        let procs = Self::make_cgroups(project, limits)?;
        let procs: Vec<OwnedFd> = procs.into_iter().map(OwnedFd::from).collect();
        let (info_read, info_write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
        let out = super::local::private_log(log)?;
        let map = format!("{},0,{ID_COUNT}", self.base);
        let mut cmd = std::process::Command::new("unshare");
        cmd.args(["--map-users", &map, "--map-groups", &map, "--setuid", "0", "--setgid", "0", "--", "bwrap"]);
        cmd.args(["--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try"]);
        cmd.args(["--hostname", "vm", "--new-session", "--info-fd", "4"]);
        cmd.arg("--ro-bind").arg(&self.rootfs).arg("/");
        cmd.arg("--bind").arg(home).arg("/home/dev");
        cmd.arg("--ro-bind").arg(aetherd).arg("/usr/local/bin/aetherd");
        cmd.args(["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/run"]);
        for shared in ["/tmp", "/var/tmp", "/dev/shm"] {
            cmd.args(["--perms", "1777", "--tmpfs", shared]);
        }
        cmd.args(["--chdir", "/home/dev", "--cap-drop", "ALL"]);
        for cap in CAPS {
            cmd.args(["--cap-add", cap]);
        }
        cmd.args(["--", "/usr/local/bin/aetherd", "run"]);
        cmd.env_clear().envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        cmd.stdin(std::process::Stdio::null()).stdout(out.try_clone()?).stderr(out);
        cmd.process_group(0);
        let handed = [(socket.as_raw_fd(), 3), (info_write.as_raw_fd(), 4)];
        let mut child = spawn_joined(&mut cmd, &procs, &handed).context("starting the VM (unshare, bwrap)")?;
        drop((info_write, socket, procs));
        let pid = child.id();
        // Reap it when it exits, so it never lingers as a zombie of the hub.
        std::thread::spawn(move || {
            let _ = child.wait();
        });
        let inner = read_child_pid(info_read).context("the VM did not start (see its aetherd.log)")?;
        let netns = vm_netns(project, inner)?;
        self.network(project, &netns, log)?;
        Ok(pid)
    }

    /// Outbound network for the VM's namespace: slirp4netns, in the VM's
    /// cgroups so that it ends with the VM.
    fn network(&self, project: Uuid, netns: &std::fs::File, log: &Path) -> anyhow::Result<()> {
        let procs: Vec<OwnedFd> = Self::cgroups(project)
            .map(|d| std::fs::OpenOptions::new().write(true).open(d.join("cgroup.procs")).map(OwnedFd::from))
            .collect::<Result<_, _>>()?;
        let out = super::local::private_log(log)?;
        let mut cmd = std::process::Command::new("slirp4netns");
        cmd.args(["--configure", "--mtu=65520", "--disable-host-loopback", "--enable-sandbox", "--enable-seccomp"]);
        cmd.args(["--netns-type=path", "/proc/self/fd/3", "tap0"]);
        cmd.env_clear().stdin(std::process::Stdio::null()).stdout(out.try_clone()?).stderr(out);
        cmd.process_group(0);
        let mut child = spawn_joined(&mut cmd, &procs, &[(netns.as_raw_fd(), 3)]).context("starting slirp4netns")?;
        std::thread::spawn(move || {
            let _ = child.wait();
        });
        close_off(netns)
    }

    /// Every process of the VM (slirp4netns included).
    pub fn processes(project: Uuid) -> Vec<i32> {
        let dir = Path::new(CGROUP_ROOT).join("freezer/aether").join(project.to_string());
        std::fs::read_to_string(dir.join("cgroup.procs"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    }

    /// CPU time every process of the VM has used, in nanoseconds.
    pub fn cpu_usage_ns(project: Uuid) -> Option<u64> {
        let file = Path::new(CGROUP_ROOT).join("cpuacct/aether").join(project.to_string()).join("cpuacct.usage");
        std::fs::read_to_string(file).ok()?.trim().parse().ok()
    }

    /// Ends every process of the VM: frozen first, so nothing forks or
    /// escapes meanwhile, then killed, then thawed so the kills land; then
    /// waits until the VM's cgroup is empty. Only processes it hasn't seen
    /// before are frozen again (refreezing the dying stalls their exit).
    pub async fn kill(project: Uuid) -> anyhow::Result<()> {
        let freezer = Path::new(CGROUP_ROOT).join("freezer/aether").join(project.to_string());
        if !freezer.exists() {
            return Ok(());
        }
        let state = freezer.join("freezer.state");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let mut killed = std::collections::HashSet::new();
        loop {
            let left = Self::processes(project);
            if left.is_empty() {
                break;
            }
            if tokio::time::Instant::now() >= deadline {
                bail!("{} processes of the VM would not end", left.len());
            }
            let new = left.iter().any(|pid| !killed.contains(pid));
            if new {
                let _ = std::fs::write(&state, "FROZEN");
            }
            for pid in left {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
                killed.insert(pid);
            }
            if new {
                let _ = std::fs::write(&state, "THAWED");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        for dir in Self::cgroups(project) {
            let _ = std::fs::remove_dir(dir);
        }
        Ok(())
    }
}

/// The VM's network namespace, held open (so no later process can stand in
/// for it): that of a process in the VM's cgroup whose namespace is not the
/// host's, `hint` (bwrap's report of its first process) tried first.
fn vm_netns(project: Uuid, hint: u32) -> anyhow::Result<std::fs::File> {
    let host = std::fs::read_link("/proc/self/ns/net")?;
    let cgroup = format!("aether/{project}");
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let candidates = std::iter::once(hint as i32).chain(Sandbox::processes(project));
        for pid in candidates {
            let link = format!("/proc/{pid}/ns/net");
            if std::fs::read_link(&link).is_ok_and(|ns| ns != host)
                && let Ok(file) = std::fs::File::open(&link)
                // Still the VM's process once the namespace is held.
                && std::fs::read_to_string(format!("/proc/{pid}/cgroup")).is_ok_and(|c| c.contains(&cgroup))
            {
                return Ok(file);
            }
        }
        anyhow::ensure!(std::time::Instant::now() < deadline, "the VM has no network namespace (see its aetherd.log)");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Networks no VM may reach through slirp4netns, which connects from the
/// host: link-local (cloud metadata services) and the private ranges the
/// host may sit in. slirp4netns's own subnet (10.0.2.0/24: its gateway and
/// DNS) is a narrower route and stays reachable.
const CLOSED_NETS: [&str; 5] = ["169.254.0.0/16", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10"];

/// Makes the host's own addresses and `CLOSED_NETS` unreachable from the
/// VM's network namespace (blackhole routes, which the VM's root, without
/// `CAP_NET_ADMIN`, can't remove): what the host serves on them is not the
/// VM's, whatever address it listens on.
fn close_off(netns: &std::fs::File) -> anyhow::Result<()> {
    let addrs = std::process::Command::new("ip").args(["-4", "-o", "addr", "show", "scope", "global"]).output()?;
    let host = String::from_utf8_lossy(&addrs.stdout)
        .split_whitespace()
        .collect::<Vec<_>>()
        .windows(2)
        .filter(|w| w[0] == "inet")
        .filter_map(|w| w[1].split('/').next().map(|ip| format!("{ip}/32")))
        .collect::<Vec<_>>();
    let routes: String = CLOSED_NETS
        .iter()
        .map(|n| n.to_string())
        .chain(host)
        .map(|net| format!("route replace blackhole {net}\n"))
        .collect();
    // `ip -batch -` reads the routes from its standard input; `replace`
    // makes a second try harmless.
    let mut last = String::new();
    for _ in 0..3 {
        let mut cmd = std::process::Command::new("nsenter");
        cmd.args(["--net=/proc/self/fd/3", "--", "ip", "-batch", "-"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped());
        let mut ip = spawn_joined(&mut cmd, &[], &[(netns.as_raw_fd(), 3)]).context("starting nsenter")?;
        use std::io::Write;
        let fed = ip.stdin.take().context("nsenter's stdin")?.write_all(routes.as_bytes());
        let out = ip.wait_with_output()?;
        if fed.is_ok() && out.status.success() {
            return Ok(());
        }
        last = format!("{} {}", out.status, String::from_utf8_lossy(&out.stderr).trim());
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    anyhow::bail!("closing the VM's network off: {last}")
}

/// Spawns `cmd` inside the cgroups whose `cgroup.procs` are `procs` (so
/// that everything it starts is the VM's from its first instruction), with
/// each `(from, to)` of `handed` at descriptor `to` (the originals stay
/// close-on-exec, so no other VM's start inherits them).
#[allow(unsafe_code)]
fn spawn_joined(
    cmd: &mut std::process::Command,
    procs: &[OwnedFd],
    handed: &[(i32, i32)],
) -> std::io::Result<std::process::Child> {
    let procs: Vec<i32> = procs.iter().map(AsRawFd::as_raw_fd).collect();
    let handed = handed.to_vec();
    // SAFETY: between fork and exec this runs only async-signal-safe calls,
    // write(2) and dup2(2), on descriptors opened before the fork, and
    // allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            for fd in &procs {
                if nix::libc::write(*fd, b"0".as_ptr().cast(), 1) != 1 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            for (from, to) in &handed {
                if nix::libc::dup2(*from, *to) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    cmd.spawn()
}

/// The pid of the sandbox's first process, as bwrap reports it on its info
/// descriptor (`{"child-pid": N}`), read until bwrap closes it.
fn read_child_pid(fd: OwnedFd) -> anyhow::Result<u32> {
    let mut text = String::new();
    std::fs::File::from(fd).take(4096).read_to_string(&mut text)?;
    let v: serde_json::Value = serde_json::from_str(&text).with_context(|| format!("bwrap said {text:?}"))?;
    v["child-pid"].as_u64().and_then(|p| u32::try_from(p).ok()).context("bwrap reported no child pid")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sub_id_ranges_must_cover_the_whole_map() {
        let dir = std::env::temp_dir().join(format!("aether-subuid-{}", Uuid::new_v4().simple()));
        std::fs::write(&dir, "someone:100000:65536\nroot:1000000000:1000000000\n").unwrap();
        let f = dir.to_str().unwrap();
        assert!(sub_ids_allow(f, 1_000_000_000));
        assert!(sub_ids_allow(f, 1_999_934_464));
        assert!(!sub_ids_allow(f, 1_999_934_465));
        assert!(!sub_ids_allow(f, 100_000));
        std::fs::remove_file(&dir).unwrap();
    }
}
