//! Terminal sessions: named PTYs that outlive their viewers, the tunnel and
//! the hub.
//!
//! Each session's PTY master is non-blocking and driven by the runtime: one
//! task drains it into a [`Ring`] and publishes the new end offset on a
//! `watch` channel; input is written straight from the viewer's task (no
//! thread hops on the keystroke path). Viewers never touch the PTY: each pulls
//! from the ring at its own pace, so a slow viewer can only fall behind
//! itself. A viewer that falls off the front of the ring is moved forward to
//! the oldest byte held and told so with a fresh `Ready { gap: true }`.

use crate::pace::Pacer;
use crate::ring::Ring;
use aether_protocol::domain::{PtyAttach, SessionInfo, SessionName, TermSize};
use anyhow::Context;
use portable_pty::{ChildKiller, CommandBuilder, MasterPty, PtySize, native_pty_system};
use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use tokio::io::unix::AsyncFd;
use tokio::sync::watch;

/// Largest output chunk sent to a viewer in one frame.
pub const CHUNK: usize = 64 * 1024;

/// How sessions are started.
#[derive(Debug, Clone)]
pub struct PtyConfig {
    /// The project home: working directory and `HOME` of every session.
    pub home: PathBuf,
    /// Login shell; `None` uses `$SHELL` or `/bin/bash`.
    pub shell: Option<String>,
    /// Run sessions as this user (via `runuser`) when aetherd is root.
    pub user: Option<String>,
    /// Output kept per session for replay.
    pub ring_bytes: usize,
    /// Extra environment for every session.
    pub env: Vec<(String, String)>,
    /// Environment variables removed from every session (secrets).
    pub env_remove: Vec<String>,
}

/// The published progress of a session's output.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    pub end: u64,
    pub exit: Option<i32>,
}

/// One running (or finished) terminal session.
pub struct Session {
    pub name: SessionName,
    pub command: String,
    pub created_unix_ms: i64,
    pub pid: Option<u32>,
    pub(crate) ring: Arc<Mutex<Ring>>,
    pub(crate) progress: watch::Receiver<Progress>,
    io: Arc<AsyncFd<File>>,
    /// Serialises writers so two viewers' pastes never interleave mid-chunk.
    write_lock: tokio::sync::Mutex<()>,
    master: Mutex<Box<dyn MasterPty + Send>>,
    killer: Mutex<Box<dyn ChildKiller + Send + Sync>>,
    pub(crate) viewers: AtomicU32,
    pub(crate) pacer: Arc<Pacer>,
}

/// The session's process is gone; input can't be delivered.
#[derive(Debug)]
pub struct Closed;

/// A read-only viewer asked for a session that doesn't exist.
#[derive(Debug, thiserror::Error)]
#[error("no session {0}")]
pub struct NoSession(pub SessionName);

impl Session {
    /// Writes keystrokes to the PTY, waiting (only this caller) while the
    /// PTY's input queue is full.
    pub async fn write(&self, bytes: bytes::Bytes) -> Result<(), Closed> {
        let _serial = self.write_lock.lock().await;
        let mut rest = &bytes[..];
        while !rest.is_empty() {
            let mut guard = self.io.writable().await.map_err(|_| Closed)?;
            match guard.try_io(|f| f.get_ref().write(rest)) {
                Ok(Ok(n)) => rest = &rest[n..],
                Ok(Err(e)) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Ok(Err(_)) => return Err(Closed),
                Err(_would_block) => {}
            }
        }
        Ok(())
    }

    pub async fn resize(&self, size: TermSize) -> Result<(), Closed> {
        self.master.lock().expect("master lock").resize(pty_size(size)).map_err(|_| Closed)
    }

    fn progress(&self) -> Progress {
        *self.progress.borrow()
    }

    /// Ends the session's whole process group.
    pub fn kill(&self) {
        if let Some(pid) = self.pid {
            crate::signal_group(pid, nix::sys::signal::Signal::SIGHUP);
            crate::signal_group(pid, nix::sys::signal::Signal::SIGKILL);
        }
        let _ = self.killer.lock().expect("killer lock").kill();
    }

    pub fn info(&self) -> SessionInfo {
        let p = self.progress();
        SessionInfo {
            session: self.name.clone(),
            command: self.command.clone(),
            created_unix_ms: self.created_unix_ms,
            viewers: self.viewers.load(Ordering::Relaxed),
            exit_code: p.exit,
            exited: p.exit.is_some(),
        }
    }
}

/// All sessions of this VM.
pub struct Sessions {
    config: PtyConfig,
    map: Mutex<HashMap<SessionName, Arc<Session>>>,
    /// Unix ms of the last input from any viewer (for idle detection).
    pub last_activity_ms: AtomicI64,
}

impl Sessions {
    pub fn new(config: PtyConfig) -> Self {
        Self { config, map: Mutex::new(HashMap::new()), last_activity_ms: AtomicI64::new(0) }
    }

    pub fn list(&self) -> Vec<SessionInfo> {
        let mut all: Vec<_> = self.map.lock().expect("sessions lock").values().map(|s| s.info()).collect();
        all.sort_by(|a, b| a.session.cmp(&b.session));
        all
    }

    pub fn count_live(&self) -> u32 {
        self.map.lock().expect("sessions lock").values().filter(|s| s.progress().exit.is_none()).count() as u32
    }

    /// Ends and forgets a session. Returns false if there was none.
    pub fn kill(&self, name: &SessionName) -> bool {
        let removed = self.map.lock().expect("sessions lock").remove(name);
        match removed {
            Some(s) => {
                s.kill();
                true
            }
            None => false,
        }
    }

    /// Ends every session (aetherd shutting down).
    pub fn kill_all(&self) {
        let all: Vec<_> = self.map.lock().expect("sessions lock").drain().map(|(_, s)| s).collect();
        for s in all {
            s.kill();
        }
    }

    /// The session a viewer should attach to: the existing one, or a new one
    /// when there is none, or when the old one has exited and the viewer is
    /// not resuming it. A read-only viewer only watches: it gets the session
    /// as it is, ended or not, and `NoSession` when there is none. (An
    /// attach that names its own command, as the read-only tmux client of
    /// an agent's session does, is a session of its own.)
    pub fn get_or_spawn(&self, req: &PtyAttach) -> anyhow::Result<Arc<Session>> {
        let mut map = self.map.lock().expect("sessions lock");
        let watching = req.readonly && req.command.is_none();
        if let Some(s) = map.get(&req.session) {
            let p = s.progress();
            let resuming = req.since.is_some_and(|since| since < p.end);
            if p.exit.is_none() || resuming || watching {
                return Ok(s.clone());
            }
        }
        if watching {
            return Err(NoSession(req.session.clone()).into());
        }
        let session = Arc::new(self.spawn(req)?);
        map.insert(req.session.clone(), session.clone());
        Ok(session)
    }

    fn command(&self, req: &PtyAttach) -> (CommandBuilder, String) {
        let shell =
            self.config.shell.clone().or_else(|| std::env::var("SHELL").ok()).unwrap_or_else(|| "/bin/bash".into());
        let login = match &req.command {
            None => vec![shell.clone(), "-l".into()],
            Some(cmd) => vec![shell.clone(), "-lc".into(), cmd.clone()],
        };
        // As root for the VM's user: setpriv switches ids and execs, with no
        // PAM session and no process of its own between the PTY and the
        // shell, so what was typed before the shell started is the shell's.
        let mut argv: Vec<String> = match &self.config.user {
            Some(user) => ["setpriv", "--reuid", user, "--regid", user, "--init-groups", "--"]
                .map(String::from)
                .into_iter()
                .chain(login)
                .collect(),
            None => login,
        };
        let shown = req.command.clone().unwrap_or_else(|| shell.clone());
        let mut cmd = CommandBuilder::new(argv.remove(0));
        cmd.args(argv);
        cmd.cwd(&self.config.home);
        for key in &self.config.env_remove {
            cmd.env_remove(key);
        }
        cmd.env("HOME", &self.config.home);
        cmd.env("TERM", "xterm-256color");
        cmd.env("COLORTERM", "truecolor");
        cmd.env("AETHER_SESSION", req.session.as_str());
        if let Some(user) = &self.config.user {
            cmd.env("USER", user);
            cmd.env("LOGNAME", user);
            cmd.env("SHELL", &shell);
        }
        for (k, v) in &self.config.env {
            cmd.env(k, v);
        }
        (cmd, shown)
    }

    fn spawn(&self, req: &PtyAttach) -> anyhow::Result<Session> {
        let pair = native_pty_system().openpty(pty_size(req.size)).context("opening pty")?;
        let (cmd, shown) = self.command(req);
        let mut child = pair.slave.spawn_command(cmd).context("spawning shell")?;
        drop(pair.slave);
        let pid = child.process_id();
        let killer = child.clone_killer();
        let io = Arc::new(nonblocking_master(pair.master.as_ref())?);

        let ring = Arc::new(Mutex::new(Ring::new(self.config.ring_bytes)));
        let (progress_tx, progress_rx) = watch::channel(Progress::default());
        let name = req.session.to_string();
        let pacer = Arc::new(Pacer::default());
        let (reader_io, reader_ring, reader_pacer) = (io.clone(), ring.clone(), pacer.clone());
        let cap = self.config.ring_bytes as u64;
        tokio::spawn(async move {
            let mut buf = vec![0u8; CHUNK];
            loop {
                let Ok(mut guard) = reader_io.readable().await else { break };
                match guard.try_io(|f| f.get_ref().read(&mut buf)) {
                    Ok(Ok(0)) => break,
                    Ok(Ok(n)) => {
                        let evict_to = (reader_ring.lock().expect("ring lock").end() + n as u64).saturating_sub(cap);
                        reader_pacer.room_for(evict_to).await;
                        let end = {
                            let mut ring = reader_ring.lock().expect("ring lock");
                            ring.push(&buf[..n]);
                            ring.end()
                        };
                        progress_tx.send_modify(|p| p.end = end);
                    }
                    Ok(Err(e)) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    // EIO: the last process holding the terminal is gone.
                    Ok(Err(_)) => break,
                    Err(_would_block) => {}
                }
            }
            let code = tokio::task::spawn_blocking(move || child.wait().map(|s| exit_code(&s)).unwrap_or(-1))
                .await
                .unwrap_or(-1);
            progress_tx.send_modify(|p| p.exit = Some(code));
            tracing::info!(session = %name, code, "session exited");
        });

        Ok(Session {
            name: req.session.clone(),
            command: shown,
            created_unix_ms: crate::now_ms(),
            pid,
            ring,
            progress: progress_rx,
            io,
            write_lock: tokio::sync::Mutex::new(()),
            master: Mutex::new(pair.master),
            killer: Mutex::new(killer),
            viewers: AtomicU32::new(0),
            pacer,
        })
    }
}

/// A non-blocking duplicate of the PTY master, registered with the runtime.
#[allow(unsafe_code)]
fn nonblocking_master(master: &(dyn MasterPty + Send)) -> anyhow::Result<AsyncFd<File>> {
    use nix::fcntl::{FcntlArg, OFlag, fcntl};
    use std::os::fd::{FromRawFd, OwnedFd};
    let raw = master.as_raw_fd().context("pty master has no file descriptor")?;
    let dup = nix::unistd::dup(raw).context("duplicating pty master")?;
    // SAFETY: `dup` just returned this descriptor; nothing else owns it, so
    // the OwnedFd becomes its only owner and closes it exactly once.
    let owned = unsafe { OwnedFd::from_raw_fd(dup) };
    let flags = OFlag::from_bits_truncate(fcntl(dup, FcntlArg::F_GETFL)?);
    fcntl(dup, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK))?;
    // SAFETY: the File owns the descriptor and lives inside the AsyncFd, so
    // the descriptor stays open and the same for the AsyncFd's whole life.
    unsafe { AsyncFd::register(File::from(owned)) }.map_err(|e| anyhow::anyhow!("registering pty: {e}"))
}

fn exit_code(status: &portable_pty::ExitStatus) -> i32 {
    if let Some(sig) = status.signal() {
        // Shell convention for a process ended by a signal.
        let num = sig.split_whitespace().last().and_then(|n| n.parse::<i32>().ok()).unwrap_or(9);
        return 128 + num;
    }
    i32::try_from(status.exit_code()).unwrap_or(-1)
}

fn pty_size(size: TermSize) -> PtySize {
    PtySize { rows: size.rows, cols: size.cols, pixel_width: 0, pixel_height: 0 }
}
