//! Terminal sessions: named PTYs that outlive their viewers, the tunnel and
//! the hub.
//!
//! Each session has one blocking reader thread that drains the PTY into a
//! [`Ring`] and publishes the new end offset on a `watch` channel, and one
//! writer thread that feeds it input. Viewers never touch the PTY: each pulls
//! from the ring at its own pace, so a slow viewer can only fall behind
//! itself. A viewer that falls off the front of the ring is moved forward to
//! the oldest byte held and told so with a fresh `Ready { gap: true }`.

use crate::ring::Ring;
use aether_protocol::domain::{PtyAttach, SessionInfo, SessionName, TermSize};
use anyhow::Context;
use portable_pty::{ChildKiller, CommandBuilder, MasterPty, PtySize, native_pty_system};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, watch};

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
    input: mpsc::Sender<Input>,
    killer: Mutex<Box<dyn ChildKiller + Send + Sync>>,
    pub(crate) viewers: AtomicU32,
}

enum Input {
    Bytes(bytes::Bytes),
    Resize(TermSize),
}

/// The session's input side is gone (it exited).
#[derive(Debug)]
pub struct Closed;

impl Session {
    /// Queues keystrokes for the PTY.
    pub async fn write(&self, bytes: bytes::Bytes) -> Result<(), Closed> {
        self.input
            .send(Input::Bytes(bytes))
            .await
            .map_err(|_| Closed)
    }

    pub async fn resize(&self, size: TermSize) -> Result<(), Closed> {
        self.input
            .send(Input::Resize(size))
            .await
            .map_err(|_| Closed)
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
        Self {
            config,
            map: Mutex::new(HashMap::new()),
            last_activity_ms: AtomicI64::new(0),
        }
    }

    pub fn list(&self) -> Vec<SessionInfo> {
        let mut all: Vec<_> = self
            .map
            .lock()
            .expect("sessions lock")
            .values()
            .map(|s| s.info())
            .collect();
        all.sort_by(|a, b| a.session.cmp(&b.session));
        all
    }

    pub fn count_live(&self) -> u32 {
        self.map
            .lock()
            .expect("sessions lock")
            .values()
            .filter(|s| s.progress().exit.is_none())
            .count() as u32
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
        let all: Vec<_> = self
            .map
            .lock()
            .expect("sessions lock")
            .drain()
            .map(|(_, s)| s)
            .collect();
        for s in all {
            s.kill();
        }
    }

    /// The session a viewer should attach to: the existing one, or a new one
    /// when there is none, or when the old one has exited and the viewer is
    /// not resuming it.
    pub fn get_or_spawn(&self, req: &PtyAttach) -> anyhow::Result<Arc<Session>> {
        let mut map = self.map.lock().expect("sessions lock");
        if let Some(s) = map.get(&req.session) {
            let p = s.progress();
            let resuming = req.since.is_some_and(|since| since < p.end);
            if p.exit.is_none() || resuming {
                return Ok(s.clone());
            }
        }
        let session = Arc::new(self.spawn(req)?);
        map.insert(req.session.clone(), session.clone());
        Ok(session)
    }

    fn command(&self, req: &PtyAttach) -> (CommandBuilder, String) {
        let shell = self
            .config
            .shell
            .clone()
            .or_else(|| std::env::var("SHELL").ok())
            .unwrap_or_else(|| "/bin/bash".into());
        let mut argv: Vec<String> = match (&self.config.user, &req.command) {
            (Some(user), None) => vec!["runuser".into(), "-l".into(), user.clone()],
            (Some(user), Some(cmd)) => vec![
                "runuser".into(),
                "-l".into(),
                user.clone(),
                "-c".into(),
                cmd.clone(),
            ],
            (None, None) => vec![shell, "-l".into()],
            (None, Some(cmd)) => vec![shell, "-lc".into(), cmd.clone()],
        };
        let shown = req.command.clone().unwrap_or_else(|| argv[0].clone());
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
        for (k, v) in &self.config.env {
            cmd.env(k, v);
        }
        (cmd, shown)
    }

    fn spawn(&self, req: &PtyAttach) -> anyhow::Result<Session> {
        let pair = native_pty_system()
            .openpty(pty_size(req.size))
            .context("opening pty")?;
        let (cmd, shown) = self.command(req);
        let mut child = pair.slave.spawn_command(cmd).context("spawning shell")?;
        drop(pair.slave);
        let pid = child.process_id();
        let killer = child.clone_killer();
        let mut reader = pair.master.try_clone_reader().context("pty reader")?;
        let writer = pair.master.take_writer().context("pty writer")?;

        let ring = Arc::new(Mutex::new(Ring::new(self.config.ring_bytes)));
        let (progress_tx, progress_rx) = watch::channel(Progress::default());
        let (input_tx, input_rx) = mpsc::channel::<Input>(256);
        spawn_writer(writer, pair.master, input_rx);

        let name = req.session.to_string();
        let reader_ring = ring.clone();
        std::thread::Builder::new()
            .name(format!("pty-read-{name}"))
            .spawn(move || {
                let mut buf = vec![0u8; CHUNK];
                loop {
                    match reader.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            let end = {
                                let mut ring = reader_ring.lock().expect("ring lock");
                                ring.push(&buf[..n]);
                                ring.end()
                            };
                            progress_tx.send_modify(|p| p.end = end);
                        }
                    }
                }
                let code = child.wait().map(|s| exit_code(&s)).unwrap_or(-1);
                progress_tx.send_modify(|p| p.exit = Some(code));
                tracing::info!(session = %name, code, "session exited");
            })
            .context("starting pty reader")?;

        Ok(Session {
            name: req.session.clone(),
            command: shown,
            created_unix_ms: crate::now_ms(),
            pid,
            ring,
            progress: progress_rx,
            input: input_tx,
            killer: Mutex::new(killer),
            viewers: AtomicU32::new(0),
        })
    }
}

fn exit_code(status: &portable_pty::ExitStatus) -> i32 {
    if let Some(sig) = status.signal() {
        // Shell convention for a process ended by a signal.
        let num = sig
            .split_whitespace()
            .last()
            .and_then(|n| n.parse::<i32>().ok())
            .unwrap_or(9);
        return 128 + num;
    }
    i32::try_from(status.exit_code()).unwrap_or(-1)
}

fn pty_size(size: TermSize) -> PtySize {
    PtySize {
        rows: size.rows,
        cols: size.cols,
        pixel_width: 0,
        pixel_height: 0,
    }
}

fn spawn_writer(
    mut writer: Box<dyn Write + Send>,
    master: Box<dyn MasterPty + Send>,
    mut rx: mpsc::Receiver<Input>,
) {
    let spawned = std::thread::Builder::new()
        .name("pty-write".into())
        .spawn(move || {
            while let Some(input) = rx.blocking_recv() {
                match input {
                    Input::Bytes(b) => {
                        if writer.write_all(&b).and_then(|_| writer.flush()).is_err() {
                            break;
                        }
                    }
                    Input::Resize(size) => {
                        let _ = master.resize(pty_size(size));
                    }
                }
            }
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "starting pty writer");
    }
}
