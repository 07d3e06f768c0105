//! Heartbeats: what the hub meters usage and liveness from.
//!
//! A heartbeat carries a per-boot sequence number so that the hub can record
//! each one idempotently, plus the VM's activity and resource use.

use crate::pty::Sessions;
use aether_protocol::pb;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// Counts heartbeats and samples the VM.
pub struct Meter {
    pub boot_id: String,
    started: Instant,
    seq: AtomicU64,
    home: PathBuf,
}

impl Meter {
    pub fn new(home: PathBuf) -> Self {
        Self { boot_id: uuid::Uuid::new_v4().to_string(), started: Instant::now(), seq: AtomicU64::new(0), home }
    }

    /// `ssh_sessions`: SSH connections through the hub's jump host now open.
    pub fn heartbeat(&self, sessions: &Sessions, ssh_sessions: u32) -> pb::Heartbeat {
        let (memory_total_bytes, memory_used_bytes) = memory();
        let (disk_total_bytes, disk_used_bytes) = disk(&self.home);
        pb::Heartbeat {
            seq: self.seq.fetch_add(1, Ordering::Relaxed) + 1,
            boot_id: self.boot_id.clone(),
            uptime_ms: self.started.elapsed().as_millis() as u64,
            last_activity_unix_ms: sessions.last_activity_ms.load(Ordering::Relaxed),
            terminal_sessions: sessions.count_live(),
            ssh_sessions,
            memory_used_bytes,
            memory_total_bytes,
            disk_used_bytes,
            disk_total_bytes,
            load_avg_centi: load_avg_centi(),
        }
    }
}

fn memory() -> (u64, u64) {
    let text = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let field = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
            * 1024
    };
    let total = field("MemTotal:");
    (total, total.saturating_sub(field("MemAvailable:")))
}

fn disk(home: &std::path::Path) -> (u64, u64) {
    match nix::sys::statvfs::statvfs(home) {
        Ok(s) => {
            let frag = s.fragment_size();
            let total = s.blocks() * frag;
            (total, total.saturating_sub(s.blocks_available() * frag))
        }
        Err(_) => (0, 0),
    }
}

fn load_avg_centi() -> u32 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|t| t.split_whitespace().next().and_then(|v| v.parse::<f64>().ok()))
        .map(|v| (v * 100.0) as u32)
        .unwrap_or(0)
}
