//! The WebSockets' text messages as types: the terminal's control messages
//! both ways, the files watch's events, and the agent-activity feed's
//! session starts and ends. Binary messages (terminal bytes)
//! are not described here: they pass through unparsed.

use super::model::AgentActivity;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A text message the hub sends on the terminal WebSocket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum TerminalServerMessage {
    /// The VM was down and is starting for this terminal.
    Starting { status: String },
    /// Attached: the first output byte that follows has offset `start`;
    /// `gap` is true when `since` asked for bytes no longer buffered.
    Ready { session: String, start: u64, gap: bool },
    /// The session's process ended.
    Exit { code: i32 },
    /// Sent before a close.
    Error { code: String, message: String },
}

/// A text message the client sends on the terminal WebSocket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum TerminalClientMessage {
    Resize { cols: u32, rows: u32 },
}

/// What happened to a watched path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum WatchEventKind {
    /// Watching has begun.
    Ready,
    Created,
    Modified,
    Removed,
    Renamed,
    /// Events were lost: list the folder again.
    Resync,
    /// The watch ended; `message` says why.
    Error,
}

/// A text message of the files watch WebSocket; paths relative to the
/// project home.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct WatchEvent {
    /// For `renamed`: where it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// For `error`: what went wrong.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Absent only on an `error` the hub itself sends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(rename = "type")]
    pub kind: WatchEventKind,
}

impl WatchEvent {
    /// The hub's own `error` event: the watch ends after it.
    pub fn error(message: &str) -> Self {
        Self { from: None, message: Some(message.to_owned()), path: None, kind: WatchEventKind::Error }
    }
}

/// Whether an agent session began or ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AgentSessionPhase {
    Start,
    End,
}

/// A text message of the agent-activity WebSocket (and the data of the
/// project stream's `agent_session` event): a session started or ended,
/// with the session as the activity list shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AgentSessionMessage {
    pub event: AgentSessionPhase,
    #[serde(flatten)]
    pub session: AgentActivity,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_messages_keep_their_wire_form() {
        let ready = TerminalServerMessage::Ready { session: "main".into(), start: 7, gap: false };
        assert_eq!(
            serde_json::to_value(&ready).unwrap(),
            serde_json::json!({"type": "ready", "session": "main", "start": 7, "gap": false})
        );
        let exit = serde_json::to_value(TerminalServerMessage::Exit { code: 3 }).unwrap();
        assert_eq!(exit, serde_json::json!({"type": "exit", "code": 3}));
        let resize: TerminalClientMessage = serde_json::from_str(r#"{"type":"resize","cols":120,"rows":40}"#).unwrap();
        assert_eq!(resize, TerminalClientMessage::Resize { cols: 120, rows: 40 });
        assert!(serde_json::from_str::<TerminalClientMessage>(r#"{"type":"paste","text":"x"}"#).is_err());
        assert!(serde_json::from_str::<TerminalClientMessage>(r#"{"type":"resize","cols":-1,"rows":4}"#).is_err());
    }

    #[test]
    fn watch_events_are_sorted_as_before() {
        let e =
            WatchEvent { from: Some("a".into()), message: None, path: Some("b".into()), kind: WatchEventKind::Renamed };
        assert_eq!(serde_json::to_string(&e).unwrap(), r#"{"from":"a","path":"b","type":"renamed"}"#);
        assert_eq!(serde_json::to_string(&WatchEvent::error("gone")).unwrap(), r#"{"message":"gone","type":"error"}"#);
    }

    #[test]
    fn the_jump_hosts_session_events_are_agent_session_messages() {
        let row = crate::db::AgentSession {
            id: uuid::Uuid::new_v4(),
            agent_id: uuid::Uuid::new_v4(),
            agent_name: "claude".into(),
            started_at: chrono::Utc::now(),
            ended_at: None,
            command: "make test".into(),
            exit_code: None,
            interactive: false,
            session: Some("main".into()),
        };
        let published = crate::ssh::sync::session_event(&row);
        let m: AgentSessionMessage = serde_json::from_value(published.clone()).unwrap();
        assert_eq!(m.event, AgentSessionPhase::Start);
        assert_eq!(m.session, AgentActivity::from(row.clone()));
        assert_eq!(serde_json::to_value(&m).unwrap(), published, "nothing lost or added");
        let ended = crate::db::AgentSession { ended_at: Some(chrono::Utc::now()), exit_code: Some(2), ..row };
        let m: AgentSessionMessage = serde_json::from_value(crate::ssh::sync::session_event(&ended)).unwrap();
        assert_eq!((m.event, m.session.exit_code), (AgentSessionPhase::End, Some(2)));
    }
}
