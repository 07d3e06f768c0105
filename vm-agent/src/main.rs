//! `aetherd`: parses flags and environment, then runs the agent.

use aether_vm_agent::{AgentConfig, pty::PtyConfig, tunnel::TunnelConfig};
use anyhow::Context;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(name = "aetherd", version, about = "The aether agent that runs in every project VM")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Dial the hub and serve it (the default).
    Run,
    /// Run one agent SSH session (the forced command of agent keys).
    AgentSession(aether_vm_agent::agent_session::SessionArgs),
    /// The program inside an agent's tmux session.
    #[command(hide = true)]
    AgentRun(aether_vm_agent::agent_session::RunArgs),
}

#[derive(clap::Args)]
struct RunArgs {
    /// The hub's tunnel address, host:port.
    #[arg(long, env = "AETHER_HUB_ADDR", default_value = "127.0.0.1:4433")]
    hub_addr: String,
    /// Name to verify in the hub's certificate (default: the host of --hub-addr).
    #[arg(long, env = "AETHER_HUB_SERVER_NAME")]
    hub_server_name: Option<String>,
    /// PEM file of the CA that signed the hub's certificate (local mode).
    #[arg(long, env = "AETHER_HUB_CA")]
    hub_ca: Option<PathBuf>,
    /// PEM text of that CA, for VMs given env rather than files (Fly).
    #[arg(long, env = "AETHER_HUB_CA_PEM", hide_env_values = true)]
    hub_ca_pem: Option<String>,
    #[arg(long, env = "AETHER_PROJECT_ID", default_value = "")]
    project_id: String,
    #[arg(long, env = "AETHER_MACHINE_TOKEN", default_value = "", hide_env_values = true)]
    machine_token: String,
    /// The project home (default: $HOME).
    #[arg(long, env = "AETHER_HOME")]
    home: Option<PathBuf>,
    /// Login shell for terminal sessions.
    #[arg(long, env = "AETHER_SHELL")]
    shell: Option<String>,
    /// Run sessions as this user (when aetherd runs as root).
    #[arg(long, env = "AETHER_USER")]
    user: Option<String>,
    /// Whose listening ports are previews: `all` (a VM of its own) or
    /// `marked` (only this VM's processes, on a shared machine).
    #[arg(long, env = "AETHER_PORTS_SCOPE", default_value = "all")]
    ports_scope: String,
    /// Output bytes kept per terminal session for replay.
    #[arg(long, env = "AETHER_RING_BYTES", default_value_t = 1 << 20)]
    ring_bytes: usize,
    /// The sshd agents reach: `local` (one of aetherd's own on a free
    /// loopback port), `system` (the VM image's, on port 22) or `off`.
    #[arg(long, env = "AETHER_SSHD", default_value = "local")]
    sshd: String,
    /// The OpenSSH server binary.
    #[arg(long, env = "AETHER_SSHD_BIN", default_value = "/usr/sbin/sshd")]
    sshd_bin: PathBuf,
    /// A bound UDP socket to dial the hub from, inherited as this descriptor
    /// (a local VM's network namespace can't reach the hub's loopback).
    #[arg(long, env = "AETHER_TUNNEL_FD")]
    tunnel_fd: Option<i32>,
    /// Names of variables of aetherd's environment that terminal sessions
    /// get (the project's env vars), comma-separated.
    #[arg(long, env = "AETHER_SESSION_ENV", default_value = "")]
    session_env: String,
}

/// The socket inherited as `fd`, kept from the sessions aetherd starts.
#[allow(unsafe_code)]
fn inherited_socket(fd: i32) -> anyhow::Result<std::net::UdpSocket> {
    use std::os::fd::FromRawFd;
    let flags = nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_GETFD).context("AETHER_TUNNEL_FD is not open")?;
    let cloexec = nix::fcntl::FdFlag::from_bits_truncate(flags) | nix::fcntl::FdFlag::FD_CLOEXEC;
    nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_SETFD(cloexec))?;
    // SAFETY: the descriptor was checked open above, was handed to this
    // process for this use only, and nothing else in it owns it.
    let socket = unsafe { std::net::UdpSocket::from_raw_fd(fd) };
    socket.local_addr().context("AETHER_TUNNEL_FD is not a bound UDP socket")?;
    socket.set_nonblocking(true)?;
    Ok(socket)
}

fn server_name(addr: &str) -> String {
    let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
    host.trim_start_matches('[').trim_end_matches(']').to_owned()
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // An agent session's stdout is the agent's: no logging set up for it.
    match cli.command {
        Some(Command::AgentSession(args)) => std::process::exit(aether_vm_agent::agent_session::main(args)),
        Some(Command::AgentRun(args)) => std::process::exit(aether_vm_agent::agent_session::run_in_tmux(args)),
        Some(Command::Run) | None => {}
    }
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_ansi(false)
        .init();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let a = cli.run;
    anyhow::ensure!(!a.project_id.is_empty(), "AETHER_PROJECT_ID is required");
    anyhow::ensure!(!a.machine_token.is_empty(), "AETHER_MACHINE_TOKEN is required");
    let home = match a.home {
        Some(h) => h,
        None => PathBuf::from(std::env::var("HOME").unwrap_or_else(|_| "/".into())),
    };
    let file_owner = match &a.user {
        Some(name) => {
            let user = nix::unistd::User::from_name(name)?.with_context(|| format!("no user {name}"))?;
            Some((user.uid.as_raw(), user.gid.as_raw()))
        }
        None => None,
    };
    let socket = a.tunnel_fd.map(inherited_socket).transpose()?;
    let mut session_env = vec![("AETHER_PROJECT_ID".to_owned(), a.project_id.clone())];
    for name in a.session_env.split(',').filter(|n| !n.is_empty()) {
        if let Ok(value) = std::env::var(name) {
            session_env.push((name.to_owned(), value));
        }
    }
    let ports_scope = match a.ports_scope.as_str() {
        "all" => aether_vm_agent::ports::Scope::All,
        _ => aether_vm_agent::ports::Scope::Marked(format!("AETHER_PROJECT_ID={}", a.project_id)),
    };
    let agents = aether_vm_agent::agents::AgentsConfig {
        sshd: aether_vm_agent::sshd::SshdConfig {
            mode: aether_vm_agent::sshd::Mode::parse(&a.sshd)?,
            home: home.clone(),
            sshd_bin: a.sshd_bin,
            user: a.user.clone(),
            env_remove: vec!["AETHER_MACHINE_TOKEN".into(), "AETHER_HUB_CA".into(), "AETHER_HUB_CA_PEM".into()],
        },
        project: a.project_id.clone(),
        home: home.canonicalize().unwrap_or_else(|_| home.clone()),
        owner: file_owner,
    };
    let config = AgentConfig {
        agents,
        file_owner,
        ports_scope,
        tunnel: TunnelConfig {
            server_name: a.hub_server_name.unwrap_or_else(|| server_name(&a.hub_addr)),
            hub_addr: a.hub_addr,
            ca_file: a.hub_ca,
            ca_pem: a.hub_ca_pem.filter(|pem| !pem.trim().is_empty()),
            project_id: a.project_id.clone(),
            machine_token: a.machine_token,
            socket,
        },
        pty: PtyConfig {
            home,
            shell: a.shell,
            user: a.user,
            ring_bytes: a.ring_bytes.max(4096),
            env: session_env,
            env_remove: vec!["AETHER_MACHINE_TOKEN".into(), "AETHER_HUB_CA".into(), "AETHER_HUB_CA_PEM".into()],
        },
    };
    // One thread: every hop inside aetherd (QUIC, PTY, viewers) stays on it,
    // with no cross-thread wake-ups on the keystroke path.
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        let shutdown = CancellationToken::new();
        let signals = shutdown.clone();
        tokio::spawn(async move {
            let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("sigterm");
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            tracing::info!("shutting down");
            signals.cancel();
        });
        aether_vm_agent::run(config, shutdown).await
    })
}
