//! Validated domain types for what crosses the tunnel, and their conversions
//! to and from the generated protobuf types.
//!
//! Everything that arrives from the wire is checked here once (session names,
//! terminal sizes, port numbers), so that the hub and aetherd handle only
//! values that make sense.

use crate::pb;
use bytes::Bytes;
use std::fmt;

/// A message that does not fit the contract.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid message: {0}")]
pub struct Invalid(pub String);

fn invalid(what: impl Into<String>) -> Invalid {
    Invalid(what.into())
}

/// An error carried across the tunnel: a machine code plus a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct WireError {
    pub code: String,
    pub message: String,
}

impl WireError {
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self { code: code.into(), message: message.into() }
    }
}

impl From<pb::Error> for WireError {
    fn from(e: pb::Error) -> Self {
        Self { code: e.code, message: e.message }
    }
}

impl From<WireError> for pb::Error {
    fn from(e: WireError) -> Self {
        Self { code: e.code, message: e.message }
    }
}

/// A terminal session name: 1–64 characters of `[A-Za-z0-9_.-]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionName(String);

impl SessionName {
    pub fn parse(s: &str) -> Result<Self, Invalid> {
        let ok = !s.is_empty()
            && s.len() <= 64
            && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
            && s != "."
            && s != "..";
        if ok { Ok(Self(s.to_owned())) } else { Err(invalid(format!("session name {s:?}"))) }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SessionName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Terminal size in character cells, each side within 1..=1000.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TermSize {
    pub cols: u16,
    pub rows: u16,
}

impl TermSize {
    pub fn new(cols: u32, rows: u32) -> Result<Self, Invalid> {
        let check = |v: u32| (1..=1000).contains(&v).then_some(v as u16);
        match (check(cols), check(rows)) {
            (Some(cols), Some(rows)) => Ok(Self { cols, rows }),
            _ => Err(invalid(format!("terminal size {cols}x{rows}"))),
        }
    }
}

impl Default for TermSize {
    fn default() -> Self {
        Self { cols: 80, rows: 24 }
    }
}

/// The first message of a tunnel, from aetherd.
#[derive(Clone, PartialEq, Eq)]
pub struct Hello {
    pub project_id: String,
    pub machine_token: String,
    pub boot_id: String,
    pub agent_version: String,
    pub capabilities: Vec<String>,
    pub home: Vec<u8>,
    /// The key this aetherd process binds its tunnel to (see `tunnel.proto`).
    pub boot_key: Vec<u8>,
}

impl fmt::Debug for Hello {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hello")
            .field("project_id", &self.project_id)
            .field("machine_token", &"<redacted>")
            .field("boot_key", &"<redacted>")
            .field("boot_id", &self.boot_id)
            .field("agent_version", &self.agent_version)
            .finish()
    }
}

impl TryFrom<pb::Hello> for Hello {
    type Error = Invalid;
    fn try_from(h: pb::Hello) -> Result<Self, Invalid> {
        if h.project_id.is_empty() || h.project_id.len() > 64 {
            return Err(invalid("project id"));
        }
        if h.machine_token.is_empty() || h.machine_token.len() > 256 {
            return Err(invalid("machine token"));
        }
        if h.boot_id.len() > 64 || h.agent_version.len() > 64 || h.capabilities.len() > 64 || h.home.len() > 4096 {
            return Err(invalid("hello fields too long"));
        }
        if h.boot_key.len() != 32 {
            return Err(invalid("boot key"));
        }
        Ok(Self {
            project_id: h.project_id,
            machine_token: h.machine_token,
            boot_id: h.boot_id,
            agent_version: h.agent_version,
            capabilities: h.capabilities,
            home: h.home,
            boot_key: h.boot_key,
        })
    }
}

impl From<Hello> for pb::Hello {
    fn from(h: Hello) -> Self {
        Self {
            project_id: h.project_id,
            machine_token: h.machine_token,
            boot_id: h.boot_id,
            agent_version: h.agent_version,
            capabilities: h.capabilities,
            home: h.home,
            boot_key: h.boot_key,
        }
    }
}

/// A request to attach to (creating if needed) a terminal session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PtyAttach {
    pub session: SessionName,
    pub size: TermSize,
    pub readonly: bool,
    pub since: Option<u64>,
    /// Program to run when the session is new; `None` is the login shell.
    pub command: Option<String>,
}

/// What a hub-opened stream is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamKind {
    PtyAttach(PtyAttach),
    PtyList,
    PtyKill(SessionName),
    Tcp {
        port: u16,
    },
    Fs(crate::fs::FsOp),
    /// The long-lived agents stream: keys to the VM, SSH sessions back.
    Agents,
}

impl TryFrom<pb::StreamOpen> for StreamKind {
    type Error = Invalid;
    fn try_from(open: pb::StreamOpen) -> Result<Self, Invalid> {
        use pb::stream_open::Kind;
        match open.kind.ok_or_else(|| invalid("stream kind missing"))? {
            Kind::PtyAttach(a) => {
                if a.command.len() > 4096 {
                    return Err(invalid("command too long"));
                }
                Ok(Self::PtyAttach(PtyAttach {
                    session: SessionName::parse(&a.session)?,
                    size: TermSize::new(a.cols, a.rows)?,
                    readonly: a.readonly,
                    since: a.since,
                    command: (!a.command.is_empty()).then_some(a.command),
                }))
            }
            Kind::PtyList(_) => Ok(Self::PtyList),
            Kind::PtyKill(k) => Ok(Self::PtyKill(SessionName::parse(&k.session)?)),
            Kind::Tcp(t) => match u16::try_from(t.port) {
                Ok(port) if port > 0 => Ok(Self::Tcp { port }),
                _ => Err(invalid(format!("port {}", t.port))),
            },
            Kind::Fs(r) => Ok(Self::Fs(r.try_into()?)),
            Kind::Agents(_) => Ok(Self::Agents),
        }
    }
}

impl From<StreamKind> for pb::StreamOpen {
    fn from(kind: StreamKind) -> Self {
        use pb::stream_open::Kind;
        let kind = match kind {
            StreamKind::PtyAttach(a) => Kind::PtyAttach(pb::PtyAttach {
                session: a.session.0,
                cols: a.size.cols.into(),
                rows: a.size.rows.into(),
                readonly: a.readonly,
                since: a.since,
                command: a.command.unwrap_or_default(),
            }),
            StreamKind::PtyList => Kind::PtyList(pb::PtyList {}),
            StreamKind::PtyKill(s) => Kind::PtyKill(pb::PtyKill { session: s.0 }),
            StreamKind::Tcp { port } => Kind::Tcp(pb::TcpConnect { port: port.into() }),
            StreamKind::Fs(op) => Kind::Fs(op.into()),
            StreamKind::Agents => Kind::Agents(pb::AgentsOpen {}),
        };
        Self { kind: Some(kind) }
    }
}

/// What aetherd sends to a terminal viewer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PtyEvent {
    /// Attached; the next output byte has offset `start`.
    Ready {
        session: SessionName,
        start: u64,
        gap: bool,
    },
    Output(Bytes),
    Exit(i32),
    Error(WireError),
}

impl TryFrom<pb::PtyServer> for PtyEvent {
    type Error = Invalid;
    fn try_from(m: pb::PtyServer) -> Result<Self, Invalid> {
        use pb::pty_server::Msg;
        Ok(match m.msg.ok_or_else(|| invalid("empty pty message"))? {
            Msg::Ready(r) => Self::Ready { session: SessionName::parse(&r.session)?, start: r.start, gap: r.gap },
            Msg::Output(b) => Self::Output(b),
            Msg::Exit(e) => Self::Exit(e.code),
            Msg::Error(e) => Self::Error(e.into()),
        })
    }
}

impl From<PtyEvent> for pb::PtyServer {
    fn from(e: PtyEvent) -> Self {
        use pb::pty_server::Msg;
        let msg = match e {
            PtyEvent::Ready { session, start, gap } => Msg::Ready(pb::PtyReady { session: session.0, start, gap }),
            PtyEvent::Output(b) => Msg::Output(b),
            PtyEvent::Exit(code) => Msg::Exit(pb::PtyExit { code }),
            PtyEvent::Error(e) => Msg::Error(e.into()),
        };
        Self { msg: Some(msg) }
    }
}

/// What a terminal viewer sends to aetherd.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PtyInput {
    Input(Bytes),
    Resize(TermSize),
}

impl TryFrom<pb::PtyClient> for PtyInput {
    type Error = Invalid;
    fn try_from(m: pb::PtyClient) -> Result<Self, Invalid> {
        use pb::pty_client::Msg;
        Ok(match m.msg.ok_or_else(|| invalid("empty pty input"))? {
            Msg::Input(b) => Self::Input(b),
            Msg::Resize(r) => Self::Resize(TermSize::new(r.cols, r.rows)?),
        })
    }
}

impl From<PtyInput> for pb::PtyClient {
    fn from(i: PtyInput) -> Self {
        use pb::pty_client::Msg;
        let msg = match i {
            PtyInput::Input(b) => Msg::Input(b),
            PtyInput::Resize(s) => Msg::Resize(pb::Resize { cols: s.cols.into(), rows: s.rows.into() }),
        };
        Self { msg: Some(msg) }
    }
}

/// One terminal session as listed by aetherd.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    pub session: SessionName,
    pub command: String,
    pub created_unix_ms: i64,
    pub viewers: u32,
    pub exit_code: Option<i32>,
    pub exited: bool,
}

impl TryFrom<pb::PtySessionInfo> for SessionInfo {
    type Error = Invalid;
    fn try_from(s: pb::PtySessionInfo) -> Result<Self, Invalid> {
        Ok(Self {
            session: SessionName::parse(&s.session)?,
            command: s.command,
            created_unix_ms: s.created_unix_ms,
            viewers: s.viewers,
            exit_code: s.exit_code,
            exited: s.exited,
        })
    }
}

impl From<SessionInfo> for pb::PtySessionInfo {
    fn from(s: SessionInfo) -> Self {
        Self {
            session: s.session.0,
            command: s.command,
            created_unix_ms: s.created_unix_ms,
            viewers: s.viewers,
            exited: s.exited,
            exit_code: s.exit_code,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_kinds_round_trip() {
        let kinds = [
            StreamKind::PtyAttach(PtyAttach {
                session: SessionName::parse("agent-claude").unwrap(),
                size: TermSize::new(120, 40).unwrap(),
                readonly: true,
                since: Some(12345),
                command: None,
            }),
            StreamKind::PtyList,
            StreamKind::PtyKill(SessionName::parse("main").unwrap()),
            StreamKind::Tcp { port: 22 },
            StreamKind::Agents,
        ];
        for kind in kinds {
            let wire: pb::StreamOpen = kind.clone().into();
            assert_eq!(StreamKind::try_from(wire).unwrap(), kind);
        }
    }

    #[test]
    fn bad_values_from_the_wire_are_rejected() {
        let attach = |session: &str, cols, rows| pb::StreamOpen {
            kind: Some(pb::stream_open::Kind::PtyAttach(pb::PtyAttach {
                session: session.into(),
                cols,
                rows,
                ..Default::default()
            })),
        };
        assert!(StreamKind::try_from(attach("../x", 80, 24)).is_err());
        assert!(StreamKind::try_from(attach("", 80, 24)).is_err());
        assert!(StreamKind::try_from(attach("main", 0, 24)).is_err());
        assert!(StreamKind::try_from(attach("main", 80, 100_000)).is_err());
        let tcp = |port| pb::StreamOpen { kind: Some(pb::stream_open::Kind::Tcp(pb::TcpConnect { port })) };
        assert!(StreamKind::try_from(tcp(0)).is_err());
        assert!(StreamKind::try_from(tcp(70_000)).is_err());
        assert!(StreamKind::try_from(pb::StreamOpen { kind: None }).is_err());
    }

    #[test]
    fn pty_events_round_trip() {
        let events = [
            PtyEvent::Ready { session: SessionName::parse("main").unwrap(), start: 7, gap: true },
            PtyEvent::Output(Bytes::from_static(b"\x1b[1mhi\r\n")),
            PtyEvent::Exit(3),
            PtyEvent::Error(WireError::new("lagged", "viewer fell behind")),
        ];
        for e in events {
            let wire: pb::PtyServer = e.clone().into();
            assert_eq!(PtyEvent::try_from(wire).unwrap(), e);
        }
    }

    #[test]
    fn hello_debug_redacts_the_token() {
        let h = Hello {
            project_id: "p".into(),
            machine_token: "supersecret".into(),
            boot_id: "b".into(),
            agent_version: "1".into(),
            capabilities: vec![],
            home: vec![],
            boot_key: vec![7; 32],
        };
        assert!(!format!("{h:?}").contains("supersecret"));
    }
}
