//! File operations on `Fs` streams: stat, list, read, write, mkdir, delete,
//! rename, each confined to the project home.
//!
//! Writes never expose a partial file: the bytes go to an unnamed file
//! (`O_TMPFILE`) in the target's folder, are synced, and only then linked
//! and renamed over the target; if the stream breaks or aetherd dies, the
//! unnamed file simply vanishes. Where `O_TMPFILE` is unsupported a hidden
//! `.aether-write-*` file is used instead, which listings never show.
//! Versions are ETags over (inode, size, mtime, ctime).
//!
//! Paths are resolved by the kernel with the home as the root
//! (`openat2` with `RESOLVE_IN_ROOT`): a symlink inside the home works as
//! the user meant it, but none leads out, whether it is absolute, climbs
//! with `..`, or is swapped in while an operation runs. Each operation
//! holds its target's folder open and names the target through it.

use aether_protocol::fs::{FsOp, HomePath};
use aether_protocol::{FrameCodec, pb};
use futures_util::SinkExt;
use sha2::{Digest, Sha256};
use std::ffi::OsStr;
use std::io::ErrorKind;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_util::codec::FramedWrite;

/// Names of in-progress writes (only where `O_TMPFILE` is unavailable).
pub const TEMP_PREFIX: &[u8] = b".aether-write-";
/// Entries per listing frame.
const LIST_BATCH: usize = 512;

/// A file error as it crosses the tunnel.
#[derive(Debug, thiserror::Error)]
#[error("{code}: {message}")]
pub struct FsError {
    pub code: &'static str,
    pub message: String,
}

fn err(code: &'static str, message: impl Into<String>) -> FsError {
    FsError { code, message: message.into() }
}

impl From<std::io::Error> for FsError {
    fn from(e: std::io::Error) -> Self {
        let code = match e.kind() {
            ErrorKind::NotFound => "not_found",
            ErrorKind::AlreadyExists | ErrorKind::DirectoryNotEmpty => "conflict",
            ErrorKind::IsADirectory | ErrorKind::NotADirectory => "conflict",
            ErrorKind::PermissionDenied => "forbidden",
            ErrorKind::StorageFull | ErrorKind::QuotaExceeded | ErrorKind::FileTooLarge => "too_large",
            _ => "io",
        };
        err(code, e.to_string())
    }
}

impl From<FsError> for pb::FsReply {
    fn from(e: FsError) -> Self {
        Self { error: Some(pb::Error { code: e.code.into(), message: e.message }), stat: None, created: false }
    }
}

impl From<nix::Error> for FsError {
    fn from(e: nix::Error) -> Self {
        std::io::Error::from(e).into()
    }
}

/// The project home's file service.
#[derive(Debug, Clone)]
pub struct Files {
    home: PathBuf,
    /// Owner for new files and folders (when aetherd runs as root for a user).
    owner: Option<(u32, u32)>,
}

/// The ETag of a file version.
pub fn etag(m: &std::fs::Metadata) -> String {
    let mut h = Sha256::new();
    for v in [m.dev(), m.ino(), m.size()] {
        h.update(v.to_le_bytes());
    }
    for v in [m.mtime(), m.mtime_nsec(), m.ctime(), m.ctime_nsec()] {
        h.update(v.to_le_bytes());
    }
    hex(&h.finalize()[..12])
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn kind_of(ft: std::fs::FileType) -> pb::FsKind {
    if ft.is_symlink() {
        pb::FsKind::Symlink
    } else if ft.is_dir() {
        pb::FsKind::Dir
    } else if ft.is_file() {
        pb::FsKind::File
    } else {
        pb::FsKind::Other
    }
}

fn mtime_ms(m: &std::fs::Metadata) -> i64 {
    m.mtime() * 1000 + m.mtime_nsec() / 1_000_000
}

fn stat_of(path: &HomePath, m: &std::fs::Metadata) -> pb::FsStat {
    pb::FsStat {
        path: path.as_bytes().to_vec(),
        kind: kind_of(m.file_type()) as i32,
        size: m.size(),
        mtime_ms: mtime_ms(m),
        mode: m.mode() & 0o7777,
        etag: etag(m),
    }
}

fn reply_ok(stat: Option<pb::FsStat>, created: bool) -> pb::FsReply {
    pb::FsReply { error: None, stat, created }
}

impl Files {
    pub fn new(home: PathBuf, owner: Option<(u32, u32)>) -> Self {
        let home = home.canonicalize().unwrap_or(home);
        Self { home, owner }
    }

    pub fn home(&self) -> &Path {
        &self.home
    }

    /// Opens `p` with the home as the root of path resolution.
    fn open_beneath(&self, p: &HomePath, flags: nix::fcntl::OFlag) -> std::io::Result<OwnedFd> {
        open_in_root(&self.home, if p.is_home() { b"." } else { p.as_bytes() }, flags)
    }

    /// `p`'s folder, opened beneath the home, and `p` named through it: what
    /// the path names can't move out of the home while it is used.
    fn locate(&self, p: &HomePath) -> std::io::Result<Located> {
        use nix::fcntl::OFlag;
        let (parent, name): (&[u8], &[u8]) = match p.as_bytes().iter().rposition(|b| *b == b'/') {
            _ if p.is_home() => (b".", b""),
            Some(i) => (&p.as_bytes()[..i], &p.as_bytes()[i + 1..]),
            None => (b".", p.as_bytes()),
        };
        let dir = open_in_root(&self.home, parent, OFlag::O_PATH | OFlag::O_DIRECTORY)?;
        let mut path = PathBuf::from(format!("/proc/self/fd/{}", dir.as_raw_fd()));
        if !name.is_empty() {
            path.push(OsStr::from_bytes(name));
        }
        Ok(Located { dir, path })
    }

    /// The real path of a folder of the home, resolved beneath it (watches
    /// name what they watch by path).
    pub fn real_dir(&self, p: &HomePath) -> Result<PathBuf, FsError> {
        use nix::fcntl::OFlag;
        let fd = self.open_beneath(p, OFlag::O_PATH | OFlag::O_DIRECTORY)?;
        let real = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))?;
        if !real.starts_with(&self.home) {
            return Err(err("invalid_path", "the path leaves the project home"));
        }
        Ok(real)
    }

    fn chown(&self, path: &Path) {
        if let Some((uid, gid)) = self.owner {
            let _ = nix::unistd::chown(path, Some(uid.into()), Some(gid.into()));
        }
    }

    /// Serves one operation on a stream (watches are served by `watch`).
    pub async fn serve<R, W>(&self, op: FsOp, mut recv: R, send: W) -> anyhow::Result<()>
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        let mut out = FramedWrite::new(send, FrameCodec::<pb::FsReply>::default());
        let result = match op {
            FsOp::Stat(p) => self.stat(&p).await.map(|s| reply_ok(Some(s), false)),
            FsOp::Mkdir(p) => self.mkdir(&p).await,
            FsOp::Delete { path, recursive, if_match } => self.delete(&path, recursive, if_match).await,
            FsOp::Rename { from, to, overwrite } => self.rename(&from, &to, overwrite).await,
            FsOp::Write { path, if_match, max_bytes } => self.write(&path, if_match, max_bytes, &mut recv).await,
            FsOp::Read { path, offset, length } => return self.read(&path, offset, length, out).await,
            FsOp::List(p) => return self.list(&p, out).await,
            FsOp::Watch { .. } => Err(err("invalid_request", "watches are served separately")),
        };
        let reply = result.unwrap_or_else(pb::FsReply::from);
        out.send(reply).await?;
        out.close().await?;
        Ok(())
    }

    async fn stat(&self, p: &HomePath) -> Result<pb::FsStat, FsError> {
        let at = self.locate(p)?;
        // The home is named by its descriptor's link, which is followed.
        let m = if p.is_home() {
            tokio::fs::metadata(&at.path).await?
        } else {
            tokio::fs::symlink_metadata(&at.path).await?
        };
        Ok(stat_of(p, &m))
    }

    async fn mkdir(&self, p: &HomePath) -> Result<pb::FsReply, FsError> {
        let dir_meta = |p: &HomePath| -> std::io::Result<std::fs::Metadata> {
            let fd = self.open_beneath(p, nix::fcntl::OFlag::O_PATH)?;
            std::fs::metadata(format!("/proc/self/fd/{}", fd.as_raw_fd()))
        };
        let existed = match dir_meta(p) {
            Ok(m) if m.is_dir() => true,
            Ok(_) => return Err(err("conflict", "a file with that name exists")),
            Err(_) => false,
        };
        if !existed {
            // Create each missing level, each in its folder as resolved
            // beneath the home, so that each gets the right owner.
            let bytes = p.as_bytes();
            let ends = bytes.iter().enumerate().filter(|(_, b)| **b == b'/').map(|(i, _)| i).chain([bytes.len()]);
            for end in ends {
                let level =
                    HomePath::from_wire(bytes[..end].to_vec()).map_err(|e| err("invalid_path", e.to_string()))?;
                let at = self.locate(&level)?;
                match std::fs::create_dir(&at.path) {
                    Ok(()) => self.chown(&at.path),
                    Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        let m = dir_meta(p)?;
        if !m.is_dir() {
            return Err(err("conflict", "a file with that name exists"));
        }
        Ok(reply_ok(Some(stat_of(p, &m)), !existed))
    }

    async fn delete(&self, p: &HomePath, recursive: bool, if_match: Option<String>) -> Result<pb::FsReply, FsError> {
        if p.is_home() {
            return Err(err("invalid_path", "the project home itself cannot be deleted"));
        }
        let at = self.locate(p)?;
        let path = &at.path;
        let m = tokio::fs::symlink_metadata(path).await?;
        if let Some(want) = if_match
            && want != "*"
            && want != etag(&m)
        {
            return Err(err("precondition_failed", "the file changed since that version"));
        }
        if m.is_dir() {
            if recursive {
                tokio::fs::remove_dir_all(path).await?;
            } else {
                tokio::fs::remove_dir(path).await.map_err(|e| match e.kind() {
                    ErrorKind::DirectoryNotEmpty => err("conflict", "the folder is not empty; delete it recursively"),
                    _ => e.into(),
                })?;
            }
        } else {
            tokio::fs::remove_file(path).await?;
        }
        Ok(reply_ok(None, false))
    }

    async fn rename(&self, from: &HomePath, to: &HomePath, overwrite: bool) -> Result<pb::FsReply, FsError> {
        if from.is_home() || to.is_home() {
            return Err(err("invalid_path", "the project home itself cannot be renamed"));
        }
        let (from_at, to_at) = (self.locate(from)?, self.locate(to)?);
        let (src, dst) = (from_at.path.clone(), to_at.path.clone());
        tokio::fs::symlink_metadata(&src).await?;
        let result = tokio::task::spawn_blocking(move || {
            if overwrite {
                std::fs::rename(&src, &dst).map_err(FsError::from)
            } else {
                nix::fcntl::renameat2(None, &src, None, &dst, nix::fcntl::RenameFlags::RENAME_NOREPLACE).map_err(|e| {
                    match e {
                        nix::Error::EEXIST => {
                            err("conflict", "the destination exists; rename with overwrite to replace it")
                        }
                        e => e.into(),
                    }
                })
            }
        })
        .await
        .map_err(|e| err("io", e.to_string()))?;
        result.map_err(|e| {
            if e.code == "conflict" && overwrite { err("conflict", "the destination is a non-empty folder") } else { e }
        })?;
        let m = tokio::fs::symlink_metadata(&to_at.path).await?;
        drop(from_at);
        Ok(reply_ok(Some(stat_of(to, &m)), false))
    }

    async fn read<W: AsyncWrite + Unpin>(
        &self,
        p: &HomePath,
        offset: u64,
        length: Option<u64>,
        mut out: FramedWrite<W, FrameCodec<pb::FsReply>>,
    ) -> anyhow::Result<()> {
        let opened = async {
            let file =
                tokio::fs::File::from_std(std::fs::File::from(self.open_beneath(p, nix::fcntl::OFlag::O_RDONLY)?));
            let m = file.metadata().await?;
            if m.is_dir() {
                return Err(err("conflict", "that is a folder; list it instead"));
            }
            Ok((file, m))
        }
        .await;
        let (mut file, m) = match opened {
            Ok(v) => v,
            Err(e) => {
                out.send(e.into()).await?;
                return Ok(out.close().await?);
            }
        };
        out.send(reply_ok(Some(stat_of(p, &m)), false)).await?;
        let mut send = out.into_inner();
        let start = offset.min(m.size());
        let len = length.unwrap_or(u64::MAX).min(m.size() - start);
        if start > 0 {
            use tokio::io::AsyncSeekExt;
            file.seek(std::io::SeekFrom::Start(start)).await?;
        }
        let mut reader = tokio::io::BufReader::with_capacity(256 * 1024, file.take(len));
        tokio::io::copy_buf(&mut reader, &mut send).await?;
        send.shutdown().await?;
        Ok(())
    }

    async fn list<W: AsyncWrite + Unpin>(
        &self,
        p: &HomePath,
        out: FramedWrite<W, FrameCodec<pb::FsReply>>,
    ) -> anyhow::Result<()> {
        let mut out = out;
        let opened = self.open_beneath(p, nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_DIRECTORY);
        let (opened, dir) = match opened {
            Ok(fd) => {
                let dir = PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()));
                (std::sync::Arc::new(fd), dir)
            }
            Err(e) if e.raw_os_error() == Some(nix::libc::ENOTDIR) => {
                out.send(err("conflict", "that is a file; read it instead").into()).await?;
                return Ok(out.close().await?);
            }
            Err(e) => {
                out.send(FsError::from(e).into()).await?;
                return Ok(out.close().await?);
            }
        };
        let names = tokio::task::spawn_blocking({
            let dir = dir.clone();
            move || -> Result<(std::fs::Metadata, Vec<Vec<u8>>), FsError> {
                let m = std::fs::metadata(&dir)?;
                if !m.is_dir() {
                    return Err(err("conflict", "that is a file; read it instead"));
                }
                let mut names: Vec<Vec<u8>> = std::fs::read_dir(&dir)?
                    .filter_map(|e| e.ok())
                    .map(|e| e.file_name().as_bytes().to_vec())
                    .filter(|n| !n.starts_with(TEMP_PREFIX))
                    .collect();
                names.sort();
                Ok((m, names))
            }
        })
        .await?;
        let (m, names) = match names {
            Ok(v) => v,
            Err(e) => {
                out.send(e.into()).await?;
                return Ok(out.close().await?);
            }
        };
        out.send(reply_ok(Some(stat_of(p, &m)), false)).await?;
        let mut entries_out = FramedWrite::new(out.into_inner(), FrameCodec::<pb::FsEntries>::default());
        let mut batches = names.chunks(LIST_BATCH).peekable();
        if batches.peek().is_none() {
            entries_out.send(pb::FsEntries { entries: vec![], done: true }).await?;
        }
        while let Some(batch) = batches.next() {
            let batch = batch.to_vec();
            let dir = dir.clone();
            let entries = tokio::task::spawn_blocking(move || {
                batch
                    .into_iter()
                    .filter_map(|name| {
                        let m = std::fs::symlink_metadata(dir.join(OsStr::from_bytes(&name))).ok()?;
                        Some(pb::FsEntry {
                            name,
                            kind: kind_of(m.file_type()) as i32,
                            size: m.size(),
                            mtime_ms: mtime_ms(&m),
                            mode: m.mode() & 0o7777,
                        })
                    })
                    .collect()
            })
            .await?;
            entries_out.send(pb::FsEntries { entries, done: batches.peek().is_none() }).await?;
        }
        entries_out.close().await?;
        drop(opened);
        Ok(())
    }

    async fn write<R: AsyncRead + Unpin>(
        &self,
        p: &HomePath,
        if_match: Option<String>,
        max_bytes: u64,
        recv: &mut R,
    ) -> Result<pb::FsReply, FsError> {
        if p.is_home() {
            return Err(err("invalid_path", "the project home is a folder"));
        }
        let at = match self.locate(p) {
            Ok(at) => at,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                return Err(err("not_found", "the parent folder does not exist"));
            }
            Err(e) if e.raw_os_error() == Some(nix::libc::ENOTDIR) => {
                return Err(err("conflict", "the parent is not a folder"));
            }
            Err(e) => return Err(e.into()),
        };
        let (path, dir) = (at.path.clone(), at.dir_path());
        let old = tokio::fs::symlink_metadata(&path).await.ok();
        let check = |old: &Option<std::fs::Metadata>| -> Result<(), FsError> {
            match (old, &if_match) {
                (Some(m), _) if m.is_dir() => Err(err("conflict", "a folder with that name exists")),
                (Some(m), Some(want)) if want != "*" && *want != etag(m) => {
                    Err(err("precondition_failed", "the file changed since that version"))
                }
                (None, Some(_)) => Err(err("precondition_failed", "the file no longer exists")),
                _ => Ok(()),
            }
        };
        check(&old)?;
        match tokio::fs::metadata(&dir).await {
            Ok(m) if m.is_dir() => {}
            Ok(_) => return Err(err("conflict", "the parent is not a folder")),
            Err(_) => return Err(err("not_found", "the parent folder does not exist")),
        }
        let mode = old.as_ref().map(|m| m.mode() & 0o7777).unwrap_or(0o644);
        let owner = old.as_ref().map(|m| (m.uid(), m.gid())).or(self.owner);
        let mut temp = Temp::create(&dir, mode)?;
        if let Some((uid, gid)) = owner {
            let _ = std::os::unix::fs::fchown(temp.file.as_ref().expect("temp file"), Some(uid), Some(gid));
        }
        let mut file = tokio::fs::File::from_std(temp.file.take().expect("temp file"));
        let mut buf = vec![0u8; 256 * 1024];
        let mut total = 0u64;
        loop {
            let n = recv.read(&mut buf).await.map_err(|e| err("aborted", format!("upload interrupted: {e}")))?;
            if n == 0 {
                break;
            }
            total += n as u64;
            if total > max_bytes {
                return Err(err("too_large", format!("the file exceeds the limit of {max_bytes} bytes")));
            }
            file.write_all(&buf[..n]).await?;
        }
        file.sync_all().await?;
        let file = file.into_std().await;
        // Re-check just before replacing: the file may have changed meanwhile.
        let current = tokio::fs::symlink_metadata(&path).await.ok();
        if if_match.is_some() {
            check(&current)?;
        }
        let created = current.is_none();
        let path2 = path.clone();
        tokio::task::spawn_blocking(move || temp.commit(file, &path2))
            .await
            .map_err(|e| err("io", e.to_string()))??;
        if let Ok(d) = std::fs::File::open(&dir) {
            let _ = d.sync_all();
        }
        let m = tokio::fs::symlink_metadata(&path).await?;
        drop(at);
        Ok(reply_ok(Some(stat_of(p, &m)), created))
    }
}

/// A path named through its folder's open descriptor
/// (`/proc/self/fd/N/name`), valid while this lives.
struct Located {
    #[allow(dead_code)]
    dir: OwnedFd,
    path: PathBuf,
}

impl Located {
    /// The folder itself, as a path.
    fn dir_path(&self) -> PathBuf {
        PathBuf::from(format!("/proc/self/fd/{}", self.dir.as_raw_fd()))
    }
}

/// `openat2(home, rel, RESOLVE_IN_ROOT)`: absolute symlinks and `..` stay
/// inside `home`; magic links (`/proc/*/fd`) aren't followed.
#[allow(unsafe_code)]
fn open_in_root(home: &Path, rel: &[u8], flags: nix::fcntl::OFlag) -> std::io::Result<OwnedFd> {
    use nix::fcntl::{OFlag, OpenHow, ResolveFlag, openat2};
    let how = OpenHow::new()
        .flags(flags | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    let root = std::fs::File::open(home)?;
    let fd = openat2(root.as_raw_fd(), OsStr::from_bytes(rel), how)?;
    // SAFETY: openat2 just returned this descriptor, and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// A file being written, invisible until `commit`.
struct Temp {
    dir: PathBuf,
    file: Option<std::fs::File>,
    /// Set when the fallback named file is used.
    named: Option<PathBuf>,
}

fn temp_name(dir: &Path) -> PathBuf {
    let mut name = TEMP_PREFIX.to_vec();
    name.extend_from_slice(uuid::Uuid::new_v4().simple().to_string().as_bytes());
    dir.join(OsStr::from_bytes(&name))
}

impl Temp {
    fn create(dir: &Path, mode: u32) -> Result<Self, FsError> {
        let unnamed = std::fs::OpenOptions::new().write(true).custom_flags(nix::libc::O_TMPFILE).mode(0o600).open(dir);
        let (file, named) = match unnamed {
            Ok(f) => (f, None),
            Err(_) => {
                let name = temp_name(dir);
                let f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&name)?;
                (f, Some(name))
            }
        };
        file.set_permissions(std::fs::Permissions::from_mode(mode))?;
        Ok(Self { dir: dir.to_path_buf(), file: Some(file), named })
    }

    /// Puts the synced file in place of `target`, atomically.
    fn commit(mut self, file: std::fs::File, target: &Path) -> Result<(), FsError> {
        let named = match self.named.take() {
            Some(n) => n,
            None => {
                use std::os::fd::AsRawFd;
                let name = temp_name(&self.dir);
                let fd_path = PathBuf::from(format!("/proc/self/fd/{}", file.as_raw_fd()));
                nix::unistd::linkat(
                    None,
                    fd_path.as_path(),
                    None,
                    name.as_path(),
                    nix::fcntl::AtFlags::AT_SYMLINK_FOLLOW,
                )?;
                name
            }
        };
        if let Err(e) = std::fs::rename(&named, target) {
            let _ = std::fs::remove_file(&named);
            return Err(e.into());
        }
        Ok(())
    }
}

impl Drop for Temp {
    fn drop(&mut self) {
        if let Some(n) = &self.named {
            let _ = std::fs::remove_file(n);
        }
    }
}
