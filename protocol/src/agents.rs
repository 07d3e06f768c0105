//! Agents over SSH as validated domain types: agent names, public key lines,
//! the key set the hub pushes to aetherd, and the session records aetherd
//! reports back.
//!
//! A key line crosses the tunnel as bare `type base64`, checked here on both
//! sides: whatever the hub sends, aetherd can only ever write a plain key
//! (no `command=`, no newline) into `authorized_keys`, with its own options.

use crate::domain::{Invalid, SessionName, WireError};
use crate::pb;

/// Most keys one project may have at once.
pub const MAX_KEYS: usize = 256;
/// Longest key line accepted (an RSA-16384 key is about 2.8 KB).
pub const MAX_KEY_LINE: usize = 8192;
/// Longest command recorded for a session.
pub const MAX_COMMAND: usize = 4096;
/// Key types agents may use: what OpenSSH's sshd and the hub's jump host both verify.
pub const KEY_TYPES: [&str; 5] =
    ["ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521", "ssh-rsa"];

fn invalid(what: impl Into<String>) -> Invalid {
    Invalid(what.into())
}

/// An agent's name: 1–40 of `[A-Za-z0-9_-]`, starting with a letter or digit.
/// It names the agent's terminal session (`agent-NAME`) too, so it is also a
/// valid tmux session name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AgentName(String);

impl AgentName {
    pub fn parse(s: &str) -> Result<Self, Invalid> {
        let ok = (1..=40).contains(&s.len())
            && s.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
            && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if ok { Ok(Self(s.to_owned())) } else { Err(invalid(format!("agent name {s:?}"))) }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The terminal session an interactive session of this agent runs in.
    pub fn session(&self) -> SessionName {
        SessionName::parse(&format!("agent-{}", self.0)).expect("agent names make valid session names")
    }
}

impl std::fmt::Display for AgentName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A public key as `type base64`, nothing else: one line, a known type, a
/// base64 body.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KeyLine(String);

impl KeyLine {
    pub fn parse(s: &str) -> Result<Self, Invalid> {
        if s.len() > MAX_KEY_LINE {
            return Err(invalid("key line too long"));
        }
        let mut parts = s.split(' ');
        let (Some(kind), Some(body), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(invalid("a key line is `type base64`"));
        };
        if !KEY_TYPES.contains(&kind) {
            return Err(invalid(format!("key type {kind:?}")));
        }
        let base64 = |b: u8| b.is_ascii_alphanumeric() || b == b'+' || b == b'/' || b == b'=';
        if body.len() < 16 || !body.bytes().all(base64) {
            return Err(invalid("key body is not base64"));
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The key type, e.g. `ssh-ed25519`.
    pub fn kind(&self) -> &str {
        self.0.split(' ').next().unwrap_or_default()
    }
}

/// Whether `s` looks like a UUID (the hub's ids), without parsing it.
fn uuid_like(s: &str) -> bool {
    s.len() == 36 && s.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-')
}

/// One live agent key, as aetherd writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizedKey {
    pub agent_id: String,
    pub name: AgentName,
    pub key: KeyLine,
    /// Unix ms after which the key must be gone.
    pub expires_unix_ms: Option<i64>,
}

/// The whole set of a project's live keys.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SetAuthorizedKeys {
    pub generation: u64,
    pub keys: Vec<AuthorizedKey>,
}

impl TryFrom<pb::SetAuthorizedKeys> for SetAuthorizedKeys {
    type Error = Invalid;
    fn try_from(m: pb::SetAuthorizedKeys) -> Result<Self, Invalid> {
        if m.keys.len() > MAX_KEYS {
            return Err(invalid("too many keys"));
        }
        let keys = m
            .keys
            .into_iter()
            .map(|k| {
                if !uuid_like(&k.agent_id) {
                    return Err(invalid("agent id"));
                }
                Ok(AuthorizedKey {
                    agent_id: k.agent_id,
                    name: AgentName::parse(&k.name)?,
                    key: KeyLine::parse(&k.public_key)?,
                    expires_unix_ms: (k.expires_unix_ms != 0).then_some(k.expires_unix_ms),
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { generation: m.generation, keys })
    }
}

impl From<SetAuthorizedKeys> for pb::SetAuthorizedKeys {
    fn from(s: SetAuthorizedKeys) -> Self {
        let keys = s
            .keys
            .into_iter()
            .map(|k| pb::AuthorizedKey {
                agent_id: k.agent_id,
                name: k.name.0,
                public_key: k.key.0,
                expires_unix_ms: k.expires_unix_ms.unwrap_or(0),
            })
            .collect();
        Self { generation: s.generation, keys }
    }
}

/// What the hub sends on the agents stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentsHub {
    SetAuthorizedKeys(SetAuthorizedKeys),
}

impl TryFrom<pb::AgentsHub> for AgentsHub {
    type Error = Invalid;
    fn try_from(m: pb::AgentsHub) -> Result<Self, Invalid> {
        match m.msg.ok_or_else(|| invalid("empty agents message"))? {
            pb::agents_hub::Msg::SetAuthorizedKeys(s) => Ok(Self::SetAuthorizedKeys(s.try_into()?)),
        }
    }
}

impl From<AgentsHub> for pb::AgentsHub {
    fn from(m: AgentsHub) -> Self {
        let msg = match m {
            AgentsHub::SetAuthorizedKeys(s) => pb::agents_hub::Msg::SetAuthorizedKeys(s.into()),
        };
        Self { msg: Some(msg) }
    }
}

/// One agent SSH session as aetherd records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentSessionEvent {
    pub id: String,
    pub agent_id: String,
    pub started_unix_ms: i64,
    pub ended_unix_ms: Option<i64>,
    pub exit_code: Option<i32>,
    pub command: String,
    pub interactive: bool,
    pub session: Option<SessionName>,
}

/// What aetherd sends on the agents stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentsVm {
    KeysApplied { generation: u64, error: Option<WireError> },
    SshInfo { host_keys: Vec<KeyLine>, user: String },
    Session(AgentSessionEvent),
}

impl TryFrom<pb::AgentsVm> for AgentsVm {
    type Error = Invalid;
    fn try_from(m: pb::AgentsVm) -> Result<Self, Invalid> {
        use pb::agents_vm::Msg;
        Ok(match m.msg.ok_or_else(|| invalid("empty agents message"))? {
            Msg::KeysApplied(a) => Self::KeysApplied { generation: a.generation, error: a.error.map(Into::into) },
            Msg::SshInfo(i) => {
                if i.host_keys.len() > 16 {
                    return Err(invalid("too many host keys"));
                }
                let user_ok = (1..=32).contains(&i.user.len())
                    && i.user.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
                if !user_ok {
                    return Err(invalid(format!("login user {:?}", i.user)));
                }
                let host_keys = i.host_keys.iter().map(|k| KeyLine::parse(k)).collect::<Result<_, _>>()?;
                Self::SshInfo { host_keys, user: i.user }
            }
            Msg::Session(s) => {
                if !uuid_like(&s.id) || !uuid_like(&s.agent_id) {
                    return Err(invalid("session or agent id"));
                }
                if s.command.len() > MAX_COMMAND {
                    return Err(invalid("command too long"));
                }
                let session = (!s.session.is_empty()).then(|| SessionName::parse(&s.session)).transpose()?;
                Self::Session(AgentSessionEvent {
                    id: s.id,
                    agent_id: s.agent_id,
                    started_unix_ms: s.started_unix_ms,
                    ended_unix_ms: s.ended_unix_ms,
                    exit_code: s.exit_code,
                    command: s.command,
                    interactive: s.interactive,
                    session,
                })
            }
        })
    }
}

impl From<AgentsVm> for pb::AgentsVm {
    fn from(m: AgentsVm) -> Self {
        use pb::agents_vm::Msg;
        let msg = match m {
            AgentsVm::KeysApplied { generation, error } => {
                Msg::KeysApplied(pb::KeysApplied { generation, error: error.map(Into::into) })
            }
            AgentsVm::SshInfo { host_keys, user } => {
                Msg::SshInfo(pb::SshInfo { host_keys: host_keys.into_iter().map(|k| k.0).collect(), user })
            }
            AgentsVm::Session(s) => Msg::Session(pb::AgentSessionEvent {
                id: s.id,
                agent_id: s.agent_id,
                started_unix_ms: s.started_unix_ms,
                ended_unix_ms: s.ended_unix_ms,
                exit_code: s.exit_code,
                command: s.command,
                interactive: s.interactive,
                session: s.session.map(|n| n.as_str().to_owned()).unwrap_or_default(),
            }),
        };
        Self { msg: Some(msg) }
    }
}

/// Cuts `s` to at most `max` bytes on a character boundary.
pub fn truncate(s: &mut String, max: usize) {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGQ2eWv8fGcl5KpE5a4w1g0s0mJ8m1yK0yQ6x0v1b2c3";
    const ID: &str = "6f1c2a9e-8d3b-4c5a-9e7f-0a1b2c3d4e5f";

    #[test]
    fn names_and_key_lines() {
        assert_eq!(AgentName::parse("claude-code_2").unwrap().session().as_str(), "agent-claude-code_2");
        for bad in ["", "-x", "a.b", "a b", "a:b", &"x".repeat(41), "é"] {
            assert!(AgentName::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(KeyLine::parse(KEY).unwrap().kind(), "ssh-ed25519");
        let bad = [
            format!("command=\"sh\" {KEY}"),
            format!("{KEY} comment"),
            format!("{KEY}\nssh-ed25519 AAAA"),
            "ssh-dss AAAAB3NzaC1kc3MAAACBAP".into(),
            "ssh-ed25519 AAAA\"C3NzaC1lZDI1NTE5".into(),
            "ssh-ed25519 short".into(),
        ];
        for b in bad {
            assert!(KeyLine::parse(&b).is_err(), "{b:?}");
        }
    }

    #[test]
    fn key_sets_round_trip_and_are_checked() {
        let set = SetAuthorizedKeys {
            generation: 3,
            keys: vec![AuthorizedKey {
                agent_id: ID.into(),
                name: AgentName::parse("claude").unwrap(),
                key: KeyLine::parse(KEY).unwrap(),
                expires_unix_ms: Some(1_700_000_000_000),
            }],
        };
        let wire: pb::AgentsHub = AgentsHub::SetAuthorizedKeys(set.clone()).into();
        assert_eq!(AgentsHub::try_from(wire.clone()).unwrap(), AgentsHub::SetAuthorizedKeys(set));
        let mut smuggled = wire;
        if let Some(pb::agents_hub::Msg::SetAuthorizedKeys(s)) = &mut smuggled.msg {
            s.keys[0].public_key = format!("{KEY}\ncommand=\"x\" {KEY}");
        }
        assert!(AgentsHub::try_from(smuggled).is_err());
    }

    #[test]
    fn vm_messages_round_trip() {
        let msgs = [
            AgentsVm::KeysApplied { generation: 9, error: None },
            AgentsVm::SshInfo { host_keys: vec![KeyLine::parse(KEY).unwrap()], user: "dev".into() },
            AgentsVm::Session(AgentSessionEvent {
                id: ID.into(),
                agent_id: ID.into(),
                started_unix_ms: 1,
                ended_unix_ms: Some(2),
                exit_code: Some(7),
                command: "echo hi".into(),
                interactive: true,
                session: Some(SessionName::parse("agent-claude").unwrap()),
            }),
        ];
        for m in msgs {
            let wire: pb::AgentsVm = m.clone().into();
            assert_eq!(AgentsVm::try_from(wire).unwrap(), m);
        }
        let bad_user = pb::AgentsVm {
            msg: Some(pb::agents_vm::Msg::SshInfo(pb::SshInfo { host_keys: vec![], user: "a b".into() })),
        };
        assert!(AgentsVm::try_from(bad_user).is_err());
    }

    #[test]
    fn truncation_respects_characters() {
        let mut s = "aé".repeat(10);
        truncate(&mut s, 4);
        assert_eq!(s, "aéa");
    }
}
