//! The Machines API's wire types, as much of them as the hub reads, and what
//! Fly's machine and volume states mean to the hub.
//!
//! Only `metadata` and `mounts` are read back from a machine's config: its
//! `env` carries the machine token, and a type that never holds it can be
//! printed and logged freely.

use super::super::MachineState;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use std::collections::BTreeMap;
use uuid::Uuid;

/// The metadata key naming the project a machine belongs to.
pub const PROJECT_KEY: &str = "aether_project_id";
/// Where the project's volume is mounted in its machine.
pub const HOME: &str = "/home/dev";

/// A Fly Machine.
#[derive(Debug, Clone, Deserialize)]
pub struct Machine {
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub state: String,
    #[serde(default)]
    pub region: String,
    /// The machine's version (the current spec also calls it `version`).
    #[serde(default)]
    pub instance_id: String,
    #[serde(default)]
    pub version: Option<String>,
    #[serde(default)]
    pub config: Option<ConfigView>,
    #[serde(default)]
    pub updated_at: Option<String>,
    #[serde(default)]
    pub events: Option<Vec<MachineEvent>>,
}

/// The parts of a machine's config the hub reads back (never `env`).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ConfigView {
    #[serde(default)]
    pub metadata: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub mounts: Option<Vec<Mount>>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Mount {
    #[serde(default)]
    pub volume: String,
    #[serde(default)]
    pub path: String,
}

/// One entry of a machine's event log; `timestamp` is in Unix milliseconds.
#[derive(Debug, Clone, Deserialize)]
pub struct MachineEvent {
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub timestamp: i64,
}

impl Machine {
    /// The project this machine was created for, from its metadata.
    pub fn project(&self) -> Option<Uuid> {
        let meta = self.config.as_ref()?.metadata.as_ref()?;
        meta.get(PROJECT_KEY)?.parse().ok()
    }

    /// The volume mounted as the project's home.
    pub fn volume(&self) -> Option<String> {
        let mounts = self.config.as_ref()?.mounts.as_ref()?;
        mounts.iter().find(|m| m.path == HOME).map(|m| m.volume.clone())
    }

    /// The version to name in waits: `version` when present, else `instance_id`.
    pub fn version(&self) -> &str {
        self.version.as_deref().unwrap_or(&self.instance_id)
    }

    /// When the machine entered its current state, as well as Fly tells.
    pub fn since(&self) -> Option<DateTime<Utc>> {
        let latest = self
            .events
            .iter()
            .flatten()
            .filter(|e| e.status == self.state)
            .map(|e| e.timestamp)
            .max()
            .and_then(DateTime::from_timestamp_millis);
        latest.or_else(|| {
            let at = self.updated_at.as_deref()?;
            DateTime::parse_from_rfc3339(at).ok().map(|t| t.with_timezone(&Utc))
        })
    }

    pub fn is_gone(&self) -> bool {
        is_gone(&self.state)
    }
}

/// A Fly Volume.
#[derive(Debug, Clone, Deserialize)]
pub struct Volume {
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub state: String,
    #[serde(default)]
    pub region: String,
    #[serde(default)]
    pub attached_machine_id: Option<String>,
}

impl Volume {
    pub fn is_gone(&self) -> bool {
        matches!(self.state.as_str(), "destroyed" | "destroying" | "pending_destroy" | "scheduling_destroy")
    }
}

/// States a machine passes through on its way somewhere else.
pub fn is_transient(state: &str) -> bool {
    matches!(
        state,
        "creating"
            | "starting"
            | "stopping"
            | "restarting"
            | "suspending"
            | "destroying"
            | "launch_failed"
            | "updating"
            | "replacing"
    )
}

/// States after which this machine id will never run again.
pub fn is_gone(state: &str) -> bool {
    matches!(state, "destroying" | "destroyed" | "replaced" | "migrated")
}

/// What a Fly state means to the hub: `Running` is "up or coming up" (the
/// tunnel will follow), `Stopped` is "can be started", `Missing` is "gone".
pub fn hub_state(state: &str) -> MachineState {
    match state {
        "started" | "starting" | "restarting" | "replacing" => MachineState::Running,
        s if is_gone(s) => MachineState::Missing,
        _ => MachineState::Stopped,
    }
}

/// The state a transient state is heading for, to wait on it.
pub fn heading_for(state: &str) -> &'static str {
    match state {
        "starting" | "restarting" | "replacing" => "started",
        "suspending" => "suspended",
        "destroying" => "destroyed",
        _ => "stopped",
    }
}

const BASE32: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

/// The project's volume name: `ae_` and the project id in base32, 29
/// characters of `[a-z0-7_]` (Fly allows 30), so a volume names its project
/// even when no machine mounts it.
pub fn volume_name(project: Uuid) -> String {
    let n = project.as_u128();
    let mut s = String::with_capacity(29);
    s.push_str("ae_");
    for i in 0..26u32 {
        let digit = if i < 25 { (n >> (123 - 5 * i)) & 31 } else { (n & 7) << 2 };
        s.push(BASE32[digit as usize] as char);
    }
    s
}

/// The project a volume name belongs to, if it is one of ours.
pub fn volume_project(name: &str) -> Option<Uuid> {
    let digits = name.strip_prefix("ae_")?.as_bytes();
    if digits.len() != 26 {
        return None;
    }
    let mut n: u128 = 0;
    for (i, c) in digits.iter().enumerate() {
        let d = BASE32.iter().position(|b| b == c)? as u128;
        if i < 25 {
            n |= d << (123 - 5 * i as u32);
        } else {
            if d & 3 != 0 {
                return None;
            }
            n |= d >> 2;
        }
    }
    Some(Uuid::from_u128(n))
}

/// The machine's name: Fly refuses a second machine with the same name,
/// which backs up the metadata lookup against duplicate creates.
pub fn machine_name(project: Uuid) -> String {
    format!("aether-{project}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volume_names_round_trip_and_fit_fly_rules() {
        for id in [Uuid::nil(), Uuid::from_u128(u128::MAX), Uuid::new_v4(), Uuid::new_v4()] {
            let name = volume_name(id);
            assert!(name.len() <= 30, "{name}");
            assert!(name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'));
            assert_eq!(volume_project(&name), Some(id));
        }
        assert_eq!(volume_project("data"), None);
        assert_eq!(volume_project("ae_short"), None);
    }

    #[test]
    fn states_map_to_what_the_hub_acts_on() {
        assert_eq!(hub_state("started"), MachineState::Running);
        assert_eq!(hub_state("replacing"), MachineState::Running);
        assert_eq!(hub_state("stopping"), MachineState::Stopped);
        assert_eq!(hub_state("created"), MachineState::Stopped);
        assert_eq!(hub_state("failed"), MachineState::Stopped);
        assert_eq!(hub_state("destroyed"), MachineState::Missing);
        assert!(is_transient("stopping") && !is_transient("stopped"));
        assert_eq!(heading_for("stopping"), "stopped");
    }

    #[test]
    fn a_machine_reads_its_project_volume_and_since() {
        let project = Uuid::new_v4();
        let m: Machine = serde_json::from_value(serde_json::json!({
            "id": "m1", "state": "started", "instance_id": "v1",
            "config": {"env": {"AETHER_MACHINE_TOKEN": "secret"},
                       "metadata": {PROJECT_KEY: project.to_string()},
                       "mounts": [{"volume": "vol_1", "path": HOME}]},
            "events": [{"status": "starting", "timestamp": 1_000},
                       {"status": "started", "timestamp": 2_000}],
            "updated_at": "2024-01-01T00:00:00Z"
        }))
        .unwrap();
        assert_eq!(m.project(), Some(project));
        assert_eq!(m.volume().as_deref(), Some("vol_1"));
        assert_eq!(m.version(), "v1");
        assert_eq!(m.since().unwrap().timestamp_millis(), 2_000);
        assert!(!format!("{m:?}").contains("secret"), "env is never read");
    }
}
