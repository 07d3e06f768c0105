//! Idle stop: a running VM with nothing happening in it for its owner's
//! plan's idle timeout (`plan_limits.idle_timeout_s`, or
//! `AETHER_IDLE_TIMEOUT_S` for every plan) is stopped, with `stop_reason`
//! `idle`, after a warning on its event stream.
//!
//! What keeps a VM awake, each noticed where it passes through the hub:
//! terminal input (keystrokes, not output: `api::terminals`), a file written
//! through the API (`api::files`), an SSH or agent session open (aetherd's
//! heartbeats count the jump host's connections), preview requests from the
//! owner, or from anyone on a port the owner marked `keeps_awake`
//! (`preview`), and CPU use above `CPU_AWAKE` of one CPU (the local
//! VM's cgroup; elsewhere the load the heartbeats carry). The clock starts
//! when the VM starts (or when this hub starts, for VMs it found running).
//!
//! The signals are this hub's memory: a replica that holds no tunnel of a
//! project sees less of it, and a restarted hub gives every VM a full
//! timeout again.

use crate::db::Db;
use crate::projects::Lifecycle;
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// CPU use, as a share of one CPU averaged between two sweeps, that counts
/// as work (an idle VM's aetherd and sshd use well under 1 %).
pub const CPU_AWAKE: f64 = 0.10;
/// One-minute load average, times 100, that counts as work where the
/// provider can't read the VM's CPU time.
const LOAD_AWAKE: u32 = 50;
/// The warning comes this long before the stop (or a third of the timeout
/// before it, when that is shorter).
const WARN_BEFORE: Duration = Duration::from_secs(5 * 60);

/// Left on a project the hub stopped because it was idle.
pub const STOPPED_IDLE: &str = "Stopped: nothing happened in the VM for its idle timeout. Start it again to go on.";

/// What keeps a VM awake.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Signal {
    TerminalInput,
    FileWrite,
    SshSession,
    Preview,
    Cpu,
}

impl Signal {
    pub const ALL: [Signal; 5] =
        [Signal::TerminalInput, Signal::FileWrite, Signal::SshSession, Signal::Preview, Signal::Cpu];

    pub fn name(self) -> &'static str {
        match self {
            Signal::TerminalInput => "terminal_input",
            Signal::FileWrite => "file_write",
            Signal::SshSession => "ssh_session",
            Signal::Preview => "preview",
            Signal::Cpu => "cpu",
        }
    }
}

#[derive(Default)]
struct Signals {
    /// When the VM started, or this hub first saw it running.
    since: Option<Instant>,
    last: HashMap<Signal, Instant>,
    /// The last CPU reading: nanoseconds used, and when.
    cpu_sample: Option<(u64, Instant)>,
    /// The heartbeats' one-minute load, times 100.
    load_centi: u32,
    /// The stop time a warning went out for.
    warned_for: Option<Instant>,
}

/// Every project's signals, on this hub.
#[derive(Default)]
pub struct Activity {
    map: Mutex<HashMap<Uuid, Signals>>,
    /// Ports whose public visitors keep their VM awake (refreshed each sweep).
    awake_ports: Mutex<std::collections::HashSet<(Uuid, u16)>>,
}

/// A project's awake state at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct Awake {
    /// When the VM stops if nothing else happens.
    pub stop_at: Instant,
    /// What happened within the timeout, most recent first.
    pub because: Vec<Signal>,
}

impl Activity {
    fn with<T>(&self, project: Uuid, f: impl FnOnce(&mut Signals) -> T) -> T {
        let mut map = self.map.lock().expect("activity lock");
        f(map.entry(project).or_default())
    }

    /// Whether a public visitor's request to the port keeps its VM awake.
    pub fn keeps_awake(&self, project: Uuid, port: u16) -> bool {
        self.awake_ports.lock().expect("awake ports lock").contains(&(project, port))
    }

    pub fn set_keeps_awake(&self, project: Uuid, port: u16, on: bool) {
        let mut ports = self.awake_ports.lock().expect("awake ports lock");
        if on {
            ports.insert((project, port));
        } else {
            ports.remove(&(project, port));
        }
    }

    /// A preview request: it keeps the VM awake when it is the owner's, or
    /// when the owner said the port's visitors do.
    pub fn preview(&self, project: Uuid, port: u16, owner: bool) {
        if owner || self.keeps_awake(project, port) {
            self.touch(project, Signal::Preview);
        }
    }

    /// Something that keeps the VM awake happened now.
    pub fn touch(&self, project: Uuid, signal: Signal) {
        self.with(project, |s| {
            s.last.insert(signal, Instant::now());
        });
    }

    /// The VM (re)started: its timeout starts over.
    pub fn woke(&self, project: Uuid) {
        self.with(project, |s| {
            *s = Signals { since: Some(Instant::now()), ..Signals::default() };
        });
    }

    /// The VM stopped: its signals are forgotten.
    pub fn forget(&self, project: Uuid) {
        self.map.lock().expect("activity lock").remove(&project);
    }

    /// What a heartbeat says: open SSH connections and the load.
    pub fn heartbeat(&self, project: Uuid, ssh_sessions: u32, load_centi: u32) {
        self.with(project, |s| {
            if ssh_sessions > 0 {
                s.last.insert(Signal::SshSession, Instant::now());
            }
            s.load_centi = load_centi;
        });
    }

    /// A CPU reading of the VM (`used_ns` in total), or none where the
    /// provider can't read it: CPU counts as work when the VM used more than
    /// `CPU_AWAKE` of a CPU since the last reading (or, without readings,
    /// when the heartbeats' load is high).
    pub fn cpu(&self, project: Uuid, used_ns: Option<u64>) {
        let now = Instant::now();
        self.with(project, |s| {
            let busy = match (used_ns, s.cpu_sample) {
                (Some(used), Some((before, at))) => {
                    let elapsed = now.duration_since(at).as_nanos() as f64;
                    elapsed > 0.0 && used.saturating_sub(before) as f64 / elapsed > CPU_AWAKE
                }
                (Some(_), None) => false,
                (None, _) => s.load_centi >= LOAD_AWAKE,
            };
            if let Some(used) = used_ns {
                s.cpu_sample = Some((used, now));
            }
            if busy {
                s.last.insert(Signal::Cpu, now);
            }
        });
    }

    /// When the VM stops if nothing else happens, and why it is awake.
    pub fn awake(&self, project: Uuid, timeout: Duration) -> Awake {
        let now = Instant::now();
        self.with(project, |s| {
            let since = *s.since.get_or_insert(now);
            let mut recent: Vec<(Signal, Instant)> = Signal::ALL
                .iter()
                .filter_map(|k| s.last.get(k).map(|t| (*k, *t)))
                .filter(|(_, t)| now.duration_since(*t) < timeout)
                .collect();
            recent.sort_by_key(|r| std::cmp::Reverse(r.1));
            let last = recent.first().map_or(since, |(_, t)| (*t).max(since));
            Awake { stop_at: last + timeout, because: recent.into_iter().map(|(k, _)| k).collect() }
        })
    }

    /// Whether a warning is due for a stop at `stop_at` (once per stop time).
    fn warn_due(&self, project: Uuid, stop_at: Instant, timeout: Duration) -> bool {
        let now = Instant::now();
        let before = WARN_BEFORE.min(timeout / 3);
        self.with(project, |s| {
            if now + before < stop_at || s.warned_for == Some(stop_at) {
                return false;
            }
            s.warned_for = Some(stop_at);
            true
        })
    }
}

/// `at` (an `Instant`) as wall-clock time.
pub fn wall(at: Instant) -> DateTime<Utc> {
    let now = Instant::now();
    let utc = Utc::now();
    if at >= now { utc + (at - now) } else { utc - (now - at) }
}

/// Each plan's idle timeout, from `plan_limits`, or the override.
/// (`fixed`: `AETHER_IDLE_TIMEOUT_S`, for every plan).
pub async fn timeouts(db: &Db, fixed: Option<Duration>) -> anyhow::Result<impl Fn(&str) -> Duration + use<>> {
    let table: HashMap<String, i64> = db.idle_timeouts().await?.into_iter().collect();
    Ok(move |plan: &str| {
        fixed.unwrap_or_else(|| {
            let s = table.get(plan).or_else(|| table.get("free")).copied().unwrap_or(30 * 60);
            Duration::from_secs(s.max(60) as u64)
        })
    })
}

/// The idle timeout of the user's plan.
pub async fn timeout_of(db: &Db, fixed: Option<Duration>, owner: Uuid) -> anyhow::Result<Duration> {
    let plan = db.user(owner).await?.map(|u| u.plan).unwrap_or_default();
    Ok(timeouts(db, fixed).await?(&plan))
}

/// One sweep: reads each running VM's CPU, warns VMs close to their stop,
/// and stops the idle ones.
pub async fn sweep(lc: &Arc<Lifecycle>, idle_timeout: Option<Duration>) -> anyhow::Result<()> {
    let timeout_of = timeouts(&lc.db, idle_timeout).await?;
    let plans: HashMap<Uuid, String> = lc.db.running_plans().await?.into_iter().collect();
    {
        // Stopped VMs' signals go.
        let mut map = lc.activity.map.lock().expect("activity lock");
        map.retain(|id, _| plans.contains_key(id));
    }
    let ports = lc.db.keeps_awake_ports().await?;
    *lc.activity.awake_ports.lock().expect("awake ports lock") =
        ports.into_iter().filter_map(|(p, port)| Some((p, u16::try_from(port).ok()?))).collect();
    for (id, plan) in plans {
        lc.activity.cpu(id, lc.compute.cpu_usage_ns(id));
        let timeout = timeout_of(&plan);
        let awake = lc.activity.awake(id, timeout);
        let now = Instant::now();
        if now >= awake.stop_at {
            let Some(project) = lc.db.project_any(id).await? else { continue };
            tracing::info!(project = %id, timeout_s = timeout.as_secs(), "stopping an idle VM");
            lc.activity.forget(id);
            let reason = Some(("idle", STOPPED_IDLE.to_owned()));
            if let Err(e) = crate::projects::stop_for(lc, project, false, reason).await {
                tracing::warn!(project = %id, error = %e, "stopping an idle VM");
            }
        } else if lc.activity.warn_due(id, awake.stop_at, timeout) {
            lc.events.publish(
                id,
                "idle_warning",
                serde_json::json!({
                    "idle_stop_at": wall(awake.stop_at),
                    "idle_timeout_s": timeout.as_secs(),
                    "message": "Nothing has happened in this VM for a while: it stops soon unless something does.",
                }),
            );
        }
    }
    Ok(())
}

/// Sweeps every `every` (`meter_interval`) until `shutdown`.
pub async fn run(lc: Arc<Lifecycle>, idle_timeout: Option<Duration>, every: Duration, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            result = sweep(&lc, idle_timeout) => {
                if let Err(e) = result {
                    tracing::warn!(error = format!("{e:#}"), "idle sweep failed");
                }
            }
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signal_within_the_timeout_keeps_the_vm_awake_and_moves_its_stop() {
        let a = Activity::default();
        let p = Uuid::new_v4();
        a.woke(p);
        let first = a.awake(p, Duration::from_secs(60));
        assert!(first.because.is_empty());
        a.touch(p, Signal::FileWrite);
        let later = a.awake(p, Duration::from_secs(60));
        assert_eq!(later.because, vec![Signal::FileWrite]);
        assert!(later.stop_at >= first.stop_at);
        // Past its timeout a signal no longer counts.
        let short = a.awake(p, Duration::ZERO);
        assert!(short.because.is_empty());
    }

    #[test]
    fn cpu_counts_above_the_threshold_between_readings_only() {
        let a = Activity::default();
        let p = Uuid::new_v4();
        a.woke(p);
        a.cpu(p, Some(0));
        a.cpu(p, Some(0));
        assert!(a.awake(p, Duration::from_secs(60)).because.is_empty());
        // A whole CPU's worth of nanoseconds since the last reading.
        a.with(p, |s| s.cpu_sample = Some((0, Instant::now() - Duration::from_secs(1))));
        a.cpu(p, Some(1_000_000_000));
        assert_eq!(a.awake(p, Duration::from_secs(60)).because, vec![Signal::Cpu]);
        // Without readings, the heartbeats' load decides.
        let q = Uuid::new_v4();
        a.heartbeat(q, 0, 10);
        a.cpu(q, None);
        assert!(a.awake(q, Duration::from_secs(60)).because.is_empty());
        a.heartbeat(q, 1, 200);
        a.cpu(q, None);
        assert_eq!(a.awake(q, Duration::from_secs(60)).because.len(), 2);
    }

    #[test]
    fn a_warning_goes_out_once_per_stop_time() {
        let a = Activity::default();
        let p = Uuid::new_v4();
        a.woke(p);
        let t = Duration::from_secs(3);
        let stop = a.awake(p, t).stop_at;
        assert!(!a.warn_due(p, stop + Duration::from_secs(60), t));
        assert!(a.warn_due(p, Instant::now(), t));
        assert!(!a.warn_due(p, a.with(p, |s| s.warned_for.unwrap()), t));
    }
}
