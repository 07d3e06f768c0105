//! The record of agent SSH sessions, from the forced command to the hub.
//!
//! `aetherd agent-session` (run by sshd, as the VM's user, once per session)
//! writes one small JSON file per session into a spool folder when the
//! session starts and rewrites it when it ends. aetherd scans the folder and
//! sends each start and end to the hub on the agents stream; an ended
//! session's file is removed once sent. A session whose process vanished
//! without writing its end (killed) is ended by the scan. Files are written
//! to a temporary name and renamed, so a scan never sees half a record; a
//! file stays until the hub has been sent its end, so nothing is lost while
//! the tunnel is down.

use aether_protocol::agents::AgentSessionEvent;
use aether_protocol::domain::SessionName;
use anyhow::Context;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Most session files one scan reads.
const MAX_FILES: usize = 1000;
/// Largest record file read.
const MAX_RECORD: u64 = 16 * 1024;

/// One session's record, as written by the forced command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub id: String,
    pub agent_id: String,
    /// The forced command's process, and its start time (clock ticks since
    /// boot), which tell a live session from a recycled pid.
    pub pid: u32,
    pub pid_start: u64,
    pub started_unix_ms: i64,
    pub command: String,
    pub interactive: bool,
    pub session: Option<String>,
    pub ended_unix_ms: Option<i64>,
    pub exit_code: Option<i32>,
}

impl Record {
    pub fn event(&self) -> AgentSessionEvent {
        AgentSessionEvent {
            id: self.id.clone(),
            agent_id: self.agent_id.clone(),
            started_unix_ms: self.started_unix_ms,
            ended_unix_ms: self.ended_unix_ms,
            exit_code: self.exit_code,
            command: self.command.clone(),
            interactive: self.interactive,
            session: self.session.as_deref().and_then(|s| SessionName::parse(s).ok()),
        }
    }

    /// Whether the session's forced command still runs.
    pub fn alive(&self) -> bool {
        process_start(self.pid) == Some(self.pid_start)
    }

    /// Whether `pid` really is this session's forced command (`aetherd
    /// agent-session --agent ID`): the spool is the VM user's to write, so a
    /// record alone must never decide which process aetherd signals.
    pub fn is_forced_command(&self) -> bool {
        let Ok(cmdline) = std::fs::read(format!("/proc/{}/cmdline", self.pid)) else {
            return false;
        };
        let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        let agent = args.iter().position(|a| *a == b"--agent").and_then(|i| args.get(i + 1));
        self.alive() && args.get(1) == Some(&&b"agent-session"[..]) && agent == Some(&self.agent_id.as_bytes())
    }
}

/// When process `pid` started, in clock ticks since boot (`/proc/PID/stat`).
pub fn process_start(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start at the
    // state, field 3; the start time is field 22.
    let (_, rest) = stat.rsplit_once(") ")?;
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Writes `rec` as `{dir}/{id}.json`, atomically.
pub fn write_record(dir: &Path, rec: &Record) -> anyhow::Result<()> {
    let path = dir.join(format!("{}.json", rec.id));
    let tmp = dir.join(format!(".{}.tmp", rec.id));
    let mut f = std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    f.write_all(&serde_json::to_vec(rec)?)?;
    f.sync_all()?;
    std::fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// What a scan found to send.
#[derive(Debug)]
pub struct Found {
    pub event: AgentSessionEvent,
    /// Remove this file once the event is sent (the session is over).
    pub done: Option<PathBuf>,
}

/// aetherd's view of the spool folder.
pub struct Spool {
    dir: PathBuf,
    /// Sessions whose start was sent on the current agents stream.
    started: HashSet<String>,
}

impl Spool {
    pub fn new(dir: PathBuf) -> Self {
        Self { dir, started: HashSet::new() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A new agents stream: every open session's start is sent again (the
    /// hub records each session once, by id).
    pub fn reset(&mut self) {
        self.started.clear();
    }

    fn records(&self) -> Vec<(PathBuf, Option<Record>)> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return vec![];
        };
        entries
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .take(MAX_FILES)
            .map(|p| {
                let rec = std::fs::metadata(&p)
                    .ok()
                    .filter(|m| m.is_file() && m.len() <= MAX_RECORD)
                    .and_then(|_| std::fs::read(&p).ok())
                    .and_then(|b| serde_json::from_slice::<Record>(&b).ok())
                    .filter(|r| p.file_stem().is_some_and(|s| s == r.id.as_str()));
                (p, rec)
            })
            .collect()
    }

    /// Starts not sent yet, and ends (of sessions that finished or vanished).
    pub fn scan(&mut self) -> Vec<Found> {
        let mut out = Vec::new();
        for (path, rec) in self.records() {
            let Some(mut rec) = rec else {
                tracing::warn!(path = %path.display(), "dropping an unreadable session record");
                let _ = std::fs::remove_file(&path);
                continue;
            };
            if rec.ended_unix_ms.is_none() && !rec.alive() {
                rec.ended_unix_ms = Some(crate::now_ms());
            }
            if rec.ended_unix_ms.is_some() {
                self.started.remove(&rec.id);
                out.push(Found { event: rec.event(), done: Some(path) });
            } else if self.started.insert(rec.id.clone()) {
                out.push(Found { event: rec.event(), done: None });
            }
        }
        out
    }

    /// Open sessions whose forced command is running: (agent id, its pid).
    pub fn open_sessions(&self) -> Vec<(String, u32)> {
        self.records()
            .into_iter()
            .filter_map(|(_, r)| r)
            .filter(|r| r.ended_unix_ms.is_none() && r.is_forced_command())
            .map(|r| (r.agent_id, r.pid))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str, pid: u32, pid_start: u64) -> Record {
        Record {
            id: id.into(),
            agent_id: "00000000-0000-4000-8000-000000000001".into(),
            pid,
            pid_start,
            started_unix_ms: 5,
            command: "echo hi".into(),
            interactive: false,
            session: None,
            ended_unix_ms: None,
            exit_code: None,
        }
    }

    #[test]
    fn starts_once_then_ends_and_vanished_sessions_end() {
        let dir = std::env::temp_dir().join(format!("aether-spool-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let me = std::process::id();
        let live = record("00000000-0000-4000-8000-00000000000a", me, process_start(me).unwrap());
        let gone = record("00000000-0000-4000-8000-00000000000b", me, 1);
        write_record(&dir, &live).unwrap();
        write_record(&dir, &gone).unwrap();
        std::fs::write(dir.join("junk.json"), b"{").unwrap();

        let mut spool = Spool::new(dir.clone());
        let found = spool.scan();
        assert_eq!(found.len(), 2, "{found:?}");
        let vanished = found.iter().find(|f| f.event.id == gone.id).unwrap();
        assert!(vanished.event.ended_unix_ms.is_some() && vanished.done.is_some());
        assert!(found.iter().any(|f| f.event.id == live.id && f.done.is_none()));
        assert!(!dir.join("junk.json").exists());
        assert!(spool.scan().iter().all(|f| f.event.id != live.id), "a start is sent once");
        assert!(spool.open_sessions().is_empty(), "this test process is not a forced command to signal");

        let mut ended = live.clone();
        ended.ended_unix_ms = Some(9);
        ended.exit_code = Some(7);
        write_record(&dir, &ended).unwrap();
        let found = spool.scan();
        let end = found.iter().find(|f| f.event.id == live.id).unwrap();
        assert_eq!((end.event.exit_code, end.done.is_some()), (Some(7), true));
        spool.reset();
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
