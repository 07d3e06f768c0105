//! File operations as validated domain types, and the path rule shared by
//! the hub and aetherd: a path is relative to the project home or absolute
//! inside it, and may never leave it.

use crate::domain::Invalid;
use crate::pb;

/// The nominal home of every VM; absolute paths under it address the home
/// even where the home really lives elsewhere (local VMs).
pub const NOMINAL_HOME: &[u8] = b"/home/dev";

/// A normalised path inside the home, relative to it (empty = the home).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HomePath(Vec<u8>);

impl HomePath {
    /// Normalises `path` against a home at `home` (absolute, no trailing
    /// slash). `.` and empty components vanish; `..` may go up only within
    /// the home; NUL bytes are refused.
    pub fn parse(path: &[u8], home: &[u8]) -> Result<Self, Invalid> {
        if path.contains(&0) {
            return Err(Invalid("path contains a NUL byte".into()));
        }
        if path.len() > 4096 {
            return Err(Invalid("path is longer than 4096 bytes".into()));
        }
        let rel = if path.first() == Some(&b'/') {
            [home, NOMINAL_HOME]
                .into_iter()
                .find_map(|h| strip_dir_prefix(path, h))
                .ok_or_else(|| Invalid("absolute path outside the project home".into()))?
        } else {
            path
        };
        let mut parts: Vec<&[u8]> = Vec::new();
        for part in rel.split(|b| *b == b'/') {
            match part {
                b"" | b"." => {}
                b".." => {
                    parts.pop().ok_or_else(|| Invalid("path leaves the project home".into()))?;
                }
                p => parts.push(p),
            }
        }
        Ok(Self(parts.join(&b'/')))
    }

    /// Already-normalised bytes from the other side of the tunnel, checked again.
    pub fn from_wire(bytes: Vec<u8>) -> Result<Self, Invalid> {
        let p = Self::parse(&bytes, b"/nonexistent-home")?;
        if p.0 != bytes {
            return Err(Invalid("path is not normalised".into()));
        }
        Ok(p)
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    pub fn is_home(&self) -> bool {
        self.0.is_empty()
    }

    /// The path of a child entry.
    pub fn join(&self, name: &[u8]) -> Self {
        if self.0.is_empty() { Self(name.to_vec()) } else { Self([self.0.as_slice(), b"/", name].concat()) }
    }

    /// The path as text for humans and JSON (lossy where not UTF-8).
    pub fn display(&self) -> String {
        String::from_utf8_lossy(&self.0).into_owned()
    }
}

fn strip_dir_prefix<'a>(path: &'a [u8], dir: &[u8]) -> Option<&'a [u8]> {
    let rest = path.strip_prefix(dir)?;
    (rest.is_empty() || rest[0] == b'/').then_some(rest)
}

/// One file operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FsOp {
    Stat(HomePath),
    List(HomePath),
    Read { path: HomePath, offset: u64, length: Option<u64> },
    Write { path: HomePath, if_match: Option<String>, max_bytes: u64 },
    Mkdir(HomePath),
    Delete { path: HomePath, recursive: bool, if_match: Option<String> },
    Rename { from: HomePath, to: HomePath, overwrite: bool },
    Watch { path: HomePath, exclude: Vec<String> },
}

impl TryFrom<pb::FsRequest> for FsOp {
    type Error = Invalid;
    fn try_from(r: pb::FsRequest) -> Result<Self, Invalid> {
        use pb::fs_request::Op;
        let p = |b: Vec<u8>| HomePath::from_wire(b);
        Ok(match r.op.ok_or_else(|| Invalid("empty file request".into()))? {
            Op::Stat(x) => Self::Stat(p(x.path)?),
            Op::List(x) => Self::List(p(x.path)?),
            Op::Read(x) => Self::Read { path: p(x.path)?, offset: x.offset, length: x.length },
            Op::Write(x) => Self::Write { path: p(x.path)?, if_match: x.if_match, max_bytes: x.max_bytes },
            Op::Mkdir(x) => Self::Mkdir(p(x.path)?),
            Op::Delete(x) => Self::Delete { path: p(x.path)?, recursive: x.recursive, if_match: x.if_match },
            Op::Rename(x) => Self::Rename { from: p(x.from)?, to: p(x.to)?, overwrite: x.overwrite },
            Op::Watch(x) => {
                if x.exclude.len() > 64 || x.exclude.iter().any(|e| e.is_empty() || e.len() > 255 || e.contains('/')) {
                    return Err(Invalid("bad watch exclusions".into()));
                }
                Self::Watch { path: p(x.path)?, exclude: x.exclude }
            }
        })
    }
}

impl From<FsOp> for pb::FsRequest {
    fn from(op: FsOp) -> Self {
        use pb::fs_request::Op;
        let path = |p: HomePath| pb::FsPath { path: p.0 };
        let op = match op {
            FsOp::Stat(p) => Op::Stat(path(p)),
            FsOp::List(p) => Op::List(path(p)),
            FsOp::Read { path, offset, length } => Op::Read(pb::FsRead { path: path.0, offset, length }),
            FsOp::Write { path, if_match, max_bytes } => Op::Write(pb::FsWrite { path: path.0, if_match, max_bytes }),
            FsOp::Mkdir(p) => Op::Mkdir(path(p)),
            FsOp::Delete { path, recursive, if_match } => {
                Op::Delete(pb::FsDelete { path: path.0, recursive, if_match })
            }
            FsOp::Rename { from, to, overwrite } => Op::Rename(pb::FsRename { from: from.0, to: to.0, overwrite }),
            FsOp::Watch { path, exclude } => Op::Watch(pb::FsWatch { path: path.0, exclude }),
        };
        Self { op: Some(op) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOME: &[u8] = b"/data/vms/x/home";

    fn ok(p: &str) -> String {
        HomePath::parse(p.as_bytes(), HOME).unwrap().display()
    }

    #[test]
    fn paths_normalise_inside_the_home() {
        assert_eq!(ok(""), "");
        assert_eq!(ok("."), "");
        assert_eq!(ok("src//main.rs"), "src/main.rs");
        assert_eq!(ok("./a/./b/"), "a/b");
        assert_eq!(ok("a/b/../c"), "a/c");
        assert_eq!(ok("/home/dev"), "");
        assert_eq!(ok("/home/dev/x/y"), "x/y");
        assert_eq!(ok("/data/vms/x/home/z"), "z");
    }

    #[test]
    fn paths_that_leave_the_home_are_refused() {
        for bad in [
            "..",
            "../../etc/passwd",
            "a/../../b",
            "/etc/passwd",
            "/home/devil",
            "/home",
            "/data/vms/x/homework",
            "a\0b",
        ] {
            assert!(HomePath::parse(bad.as_bytes(), HOME).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn non_utf8_names_survive() {
        let p = HomePath::parse(b"caf\xe9/\xff", HOME).unwrap();
        assert_eq!(p.as_bytes(), b"caf\xe9/\xff");
        let op = FsOp::Stat(p.clone());
        assert_eq!(FsOp::try_from(pb::FsRequest::from(op.clone())).unwrap(), op);
    }

    #[test]
    fn wire_paths_must_already_be_normal() {
        assert!(HomePath::from_wire(b"a/../b".to_vec()).is_err());
        assert!(HomePath::from_wire(b"/etc".to_vec()).is_err());
        assert!(HomePath::from_wire(b"a/b".to_vec()).is_ok());
    }
}
