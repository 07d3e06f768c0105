//! Project events (status, later ports and agent sessions) fanned out to the
//! SSE streams that watch them.

use serde_json::Value;
use tokio::sync::broadcast;
use uuid::Uuid;

/// One change to a project.
#[derive(Debug, Clone)]
pub struct Event {
    pub project_id: Uuid,
    pub kind: &'static str,
    pub data: Value,
}

/// The hub-wide event bus. Slow subscribers lose old events, never block.
pub struct Events {
    tx: broadcast::Sender<Event>,
}

impl Default for Events {
    fn default() -> Self {
        Self { tx: broadcast::channel(1024).0 }
    }
}

impl Events {
    pub fn publish(&self, project_id: Uuid, kind: &'static str, data: Value) {
        let _ = self.tx.send(Event { project_id, kind, data });
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.tx.subscribe()
    }
}
