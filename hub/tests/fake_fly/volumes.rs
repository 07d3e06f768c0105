//! The fake's volumes: created in a region, bound to the machine that
//! mounts them, and still bound for a while after that machine is destroyed
//! (as Fly's are), which is when deleting one answers 412.

use super::Reply;
use super::world::{World, error, new_id};
use serde_json::{Value, json};
use std::time::Duration;

pub struct Volume {
    pub id: String,
    pub name: String,
    pub region: String,
    pub size_gb: u64,
    pub state: String,
    pub machine: Option<String>,
    /// When a destroyed machine stops holding the volume.
    pub(super) unbind_at: Option<Duration>,
    pub(super) created: Duration,
}

impl World {
    pub fn volume_json(&self, v: &Volume) -> Value {
        json!({
            "id": v.id, "name": v.name, "state": v.state, "size_gb": v.size_gb,
            "region": v.region, "zone": "a1b2", "encrypted": true, "fstype": "ext4",
            "attached_machine_id": v.machine, "attached_alloc_id": null,
            "created_at": self.time(v.created),
            "block_size": 4096, "blocks": v.size_gb * 262_144, "blocks_free": v.size_gb * 262_144,
            "blocks_avail": v.size_gb * 262_144, "snapshot_retention": 5, "auto_backup_enabled": true,
        })
    }

    pub fn create_volume(&mut self, now: Duration, body: &Value) -> Result<Reply, Reply> {
        let name = body["name"].as_str().unwrap_or_default();
        let valid = !name.is_empty()
            && name.len() <= 30
            && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !valid {
            return Err(error(400, "name must be 1-30 lowercase letters, digits or underscores"));
        }
        let region =
            body["region"].as_str().filter(|r| !r.is_empty()).ok_or_else(|| error(400, "region is required"))?;
        let v = Volume {
            id: format!("vol_{}", new_id(16)),
            name: name.into(),
            region: region.into(),
            size_gb: body["size_gb"].as_u64().unwrap_or(3),
            state: "created".into(),
            machine: None,
            unbind_at: None,
            created: now,
        };
        let reply = Reply(200, self.volume_json(&v));
        self.volumes.insert(v.id.clone(), v);
        Ok(reply)
    }

    pub fn delete_volume(&mut self, id: &str) -> Result<Reply, Reply> {
        let v = self
            .volumes
            .get_mut(id)
            .filter(|v| v.state != "destroyed")
            .ok_or_else(|| error(404, "volume not found"))?;
        if let Some(m) = &v.machine {
            return Err(error(412, format!("failed_precondition: volume is currently bound to machine: {m}")));
        }
        v.state = "destroyed".into();
        let json = self.volume_json(&self.volumes[id]);
        Ok(Reply(200, json))
    }
}
