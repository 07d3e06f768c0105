//! `aetherd agent-session`: the forced command of every agent key.
//!
//! sshd runs it (as the VM's user) for each SSH session of an agent, with
//! what the agent asked for in `SSH_ORIGINAL_COMMAND`. It records the session
//! in the spool (see `activity`), runs what was asked as plain sshd would —
//! the command through the login shell, the login shell itself, or the sftp
//! server for scp and sftp — and records how it ended. A session with a
//! terminal runs inside tmux (`agent-NAME` on the VM's tmux socket), so the
//! user can watch it, read-only, as a terminal session of the same name; the
//! program inside tmux is `aetherd agent-run`, which writes its exit code
//! where this process finds it. Nothing here may write to stdout: it is the
//! agent's.

use crate::activity::{self, Record};
use aether_protocol::agents::{AgentName, MAX_COMMAND, truncate};
use anyhow::Context;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::Duration;

/// Arguments of `aetherd agent-session` (written by `keys` into each line).
#[derive(Debug, clap::Args)]
pub struct SessionArgs {
    #[arg(long)]
    pub agent: String,
    #[arg(long)]
    pub name: String,
    #[arg(long)]
    pub project: String,
    #[arg(long)]
    pub home: PathBuf,
    #[arg(long)]
    pub spool: PathBuf,
}

/// Arguments of `aetherd agent-run`, the program inside an agent's tmux session.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Where to write the exit code.
    #[arg(long)]
    pub status: PathBuf,
}

/// The tmux socket (`tmux -L`) of a project's agent sessions.
pub fn tmux_socket(project: &str) -> String {
    format!("aether-{project}")
}

/// The command a terminal viewer of session `agent-…` runs: a read-only
/// tmux client that does not resize the agent's window.
pub fn viewer_command(project: &str, session: &str) -> String {
    format!("unset TMUX; exec tmux -L {} attach-session -f read-only,ignore-size -t ={session}", tmux_socket(project))
}

/// Runs one agent session; returns the exit code for sshd to report.
pub fn main(args: SessionArgs) -> i32 {
    match run(args) {
        Ok(code) => code,
        Err(e) => {
            // stderr reaches the agent; that is where the reason belongs.
            eprintln!("aether: {e:#}");
            255
        }
    }
}

fn login_shell() -> PathBuf {
    if let Some(s) = std::env::var_os("SHELL").filter(|s| !s.is_empty()) {
        return s.into();
    }
    nix::unistd::User::from_uid(nix::unistd::getuid())
        .ok()
        .flatten()
        .map(|u| u.shell)
        .filter(|s| !s.as_os_str().is_empty())
        .unwrap_or_else(|| "/bin/bash".into())
}

/// What sshd itself would run: `shell -c command`, or a login shell.
fn shell_command(command: Option<&str>) -> std::process::Command {
    if command == Some("internal-sftp")
        && let Some(sftp) = crate::sshd::sftp_server()
    {
        return std::process::Command::new(sftp);
    }
    let shell = login_shell();
    let mut cmd = std::process::Command::new(&shell);
    match command {
        Some(c) => {
            cmd.arg("-c").arg(c);
        }
        None => {
            let base = shell.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            cmd.arg0(format!("-{base}"));
        }
    }
    cmd
}

/// The exit code a shell would report for `status`.
pub fn exit_code(status: ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status.code().unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
}

fn tmux(project: &str) -> std::process::Command {
    let mut cmd = std::process::Command::new("tmux");
    cmd.arg("-L").arg(tmux_socket(project)).env_remove("TMUX").env_remove("TMUX_PANE");
    cmd
}

/// `agent-NAME`, or `agent-NAME-2`, ... when the agent already has a session open.
fn free_session(project: &str, name: &AgentName) -> String {
    let base = name.session().to_string();
    (1..100)
        .map(|n| if n == 1 { base.clone() } else { format!("{base}-{n}") })
        .find(|s| {
            let taken = tmux(project)
                .args(["has-session", "-t", &format!("={s}")])
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status();
            !taken.is_ok_and(|st| st.success())
        })
        .unwrap_or(base)
}

fn run(args: SessionArgs) -> anyhow::Result<i32> {
    let name = AgentName::parse(&args.name)?;
    let command = std::env::var("SSH_ORIGINAL_COMMAND").ok().filter(|c| !c.trim().is_empty());
    let interactive = std::env::var_os("SSH_TTY").is_some();
    let id = uuid::Uuid::new_v4().to_string();
    let session = interactive.then(|| free_session(&args.project, &name));
    let pid = std::process::id();
    let mut shown = command.clone().unwrap_or_default();
    truncate(&mut shown, MAX_COMMAND);
    let mut rec = Record {
        id: id.clone(),
        agent_id: args.agent.clone(),
        pid,
        pid_start: activity::process_start(pid).unwrap_or(0),
        started_unix_ms: crate::now_ms(),
        command: shown,
        interactive,
        session: session.clone(),
        ended_unix_ms: None,
        exit_code: None,
    };
    // An agent session that can't be recorded does not run.
    activity::write_record(&args.spool, &rec).context("recording the session")?;

    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let code = runtime.block_on(async {
        match &session {
            Some(s) => interactive_session(&args, &name, &id, s, command.as_deref()).await,
            None => plain_session(&args, &name, &id, command.as_deref()).await,
        }
    });
    rec.ended_unix_ms = Some(crate::now_ms());
    rec.exit_code = code.as_ref().ok().copied().flatten();
    let _ = activity::write_record(&args.spool, &rec);
    Ok(code?.unwrap_or(255))
}

/// The variables every agent session sees.
fn session_env(args: &SessionArgs, name: &AgentName, id: &str) -> Vec<(&'static str, String)> {
    vec![
        ("HOME", args.home.to_string_lossy().into_owned()),
        ("AETHER_PROJECT_ID", args.project.clone()),
        ("AETHER_AGENT", name.to_string()),
        ("AETHER_AGENT_SESSION", id.to_owned()),
    ]
}

/// Waits for `child`; on hangup or termination calls `stop` once and keeps waiting.
async fn wait_signalled(
    child: &mut tokio::process::Child,
    mut stop: impl FnMut() + Send,
) -> anyhow::Result<ExitStatus> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hup = signal(SignalKind::hangup())?;
    let mut term = signal(SignalKind::terminate())?;
    let mut stopped = false;
    loop {
        tokio::select! {
            status = child.wait() => return Ok(status?),
            _ = hup.recv(), if !stopped => { stopped = true; stop(); }
            _ = term.recv(), if !stopped => { stopped = true; stop(); }
        }
    }
}

async fn plain_session(
    args: &SessionArgs,
    name: &AgentName,
    id: &str,
    command: Option<&str>,
) -> anyhow::Result<Option<i32>> {
    let mut cmd = shell_command(command);
    cmd.envs(session_env(args, name, id)).current_dir(&args.home);
    // Without a terminal the session gets a process group of its own, to end
    // as a whole; with one (no tmux here) it must stay in the terminal's.
    let own_group = std::env::var_os("SSH_TTY").is_none();
    if own_group {
        cmd.process_group(0);
    }
    let mut child = tokio::process::Command::from(cmd).spawn().context("starting the session")?;
    let pid = child.id();
    let status = wait_signalled(&mut child, move || {
        // The connection is gone: end what it ran, as sshd would.
        let Some(pid) = pid else { return };
        let signal = move |sig| match own_group {
            true => crate::signal_group(pid, sig),
            false => {
                let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), sig);
            }
        };
        signal(nix::sys::signal::Signal::SIGHUP);
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(2)).await;
            signal(nix::sys::signal::Signal::SIGKILL);
        });
    })
    .await?;
    Ok(Some(exit_code(status)))
}

async fn interactive_session(
    args: &SessionArgs,
    name: &AgentName,
    id: &str,
    session: &str,
    command: Option<&str>,
) -> anyhow::Result<Option<i32>> {
    let status_file = args.spool.join(format!("{id}.status"));
    let exe = crate::keys::own_exe()?;
    let mut cmd = tmux(&args.project);
    cmd.args(["new-session", "-s", session, "-c"]).arg(&args.home);
    let mut env = session_env(args, name, id);
    if let Some(c) = command {
        env.push(("AETHER_AGENT_COMMAND", c.to_owned()));
    }
    for (k, v) in &env {
        cmd.arg("-e").arg(format!("{k}={v}"));
    }
    cmd.arg("--").arg(exe).arg("agent-run").arg("--status").arg(&status_file);
    cmd.envs(env).current_dir(&args.home);
    if std::env::var("TERM").map_or(true, |t| t.is_empty() || t == "dumb") {
        cmd.env("TERM", "xterm-256color");
    }
    let mut child = match tokio::process::Command::from(cmd).spawn() {
        Ok(c) => c,
        // Without tmux the session still runs, only nobody can watch it.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return plain_session(args, name, id, command).await,
        Err(e) => return Err(e).context("starting tmux"),
    };
    let project = args.project.clone();
    let target = format!("={session}");
    let status = wait_signalled(&mut child, move || {
        // The agent hung up: its session ends with its connection.
        let _ = tmux(&project).args(["kill-session", "-t", &target]).status();
    })
    .await?;
    let code = std::fs::read_to_string(&status_file).ok().and_then(|s| s.trim().parse().ok());
    let _ = std::fs::remove_file(&status_file);
    Ok(code.or_else(|| (!status.success()).then(|| exit_code(status))))
}

/// `aetherd agent-run`: runs the agent's shell (or command) inside its tmux
/// session and writes the exit code to `--status`.
pub fn run_in_tmux(args: RunArgs) -> i32 {
    let command = std::env::var("AETHER_AGENT_COMMAND").ok().filter(|c| !c.is_empty());
    // Like system(3): ^C and ^\ are for the program, not for this waiter.
    let mut block = nix::sys::signal::SigSet::empty();
    block.add(nix::sys::signal::Signal::SIGINT);
    block.add(nix::sys::signal::Signal::SIGQUIT);
    let _ = block.thread_block();
    let mut cmd = shell_command(command.as_deref());
    cmd.env_remove("AETHER_AGENT_COMMAND");
    let code = match cmd.status() {
        Ok(status) => exit_code(status),
        Err(e) => {
            eprintln!("aether: starting the shell: {e}");
            127
        }
    };
    let _ = write_status(&args.status, code);
    code
}

fn write_status(path: &Path, code: i32) -> std::io::Result<()> {
    let tmp = path.with_extension("status-tmp");
    std::fs::write(&tmp, code.to_string())?;
    std::fs::rename(tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn viewer_attaches_read_only_to_the_exact_session() {
        let c = viewer_command("p1", "agent-claude");
        assert!(c.contains("tmux -L aether-p1 attach-session -f read-only,ignore-size -t =agent-claude"), "{c}");
    }

    #[test]
    fn shell_commands_are_what_sshd_would_run() {
        let out = shell_command(Some("echo hi; exit 7")).output().unwrap();
        assert_eq!((exit_code(out.status), out.stdout.as_slice()), (7, &b"hi\n"[..]));
    }
}
