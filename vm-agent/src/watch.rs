//! Watches: live created/modified/removed/renamed events for a folder tree,
//! debounced and coalesced, streamed until the hub closes the stream.
//!
//! Each folder is watched on its own (not with inotify's recursive mode) so
//! that noisy folders (`.git/objects`, `node_modules`, `target`, ...) are
//! skipped entirely; new folders are added as they appear. When events are
//! lost — the kernel's queue overflowed, our own queue filled, or the watch
//! limit was reached — the client gets `resync` and must list again.

use crate::files::{Files, TEMP_PREFIX};
use aether_protocol::fs::HomePath;
use aether_protocol::{FrameCodec, pb};
use futures_util::SinkExt;
use notify::event::{ModifyKind, RenameMode};
use notify::{EventKind, RecursiveMode, Watcher};
use std::collections::HashSet;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::sync::mpsc;
use tokio_util::codec::FramedWrite;

/// Folders skipped unless the client names its own list.
pub const DEFAULT_EXCLUDE: [&str; 8] =
    [".git/objects", "node_modules", "target", ".venv", "__pycache__", ".cache", "dist", ".next"];
/// Events are gathered this long before they are sent, coalesced.
pub const DEBOUNCE: Duration = Duration::from_millis(30);
/// Raw events queued before the watch declares a resync.
const QUEUE: usize = 8192;

type Raw = notify::Result<notify::Event>;

struct Excluder {
    names: Vec<String>,
}

impl Excluder {
    /// Whether `rel` (relative to the home) lies in an excluded folder.
    fn skip(&self, rel: &Path) -> bool {
        let s = rel.to_string_lossy();
        self.names.iter().any(|ex| {
            if ex.contains('/') {
                s == ex.as_str()
                    || s.starts_with(&format!("{ex}/"))
                    || s.contains(&format!("/{ex}/"))
                    || s.ends_with(&format!("/{ex}"))
            } else {
                rel.components().any(|c| c.as_os_str() == ex.as_str())
            }
        })
    }
}

/// One coalesced change.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Change {
    kind: pb::FsEventKind,
    path: Vec<u8>,
    from: Vec<u8>,
}

/// Merges `next` into the pending changes, keeping what a client needs to know.
fn coalesce(pending: &mut Vec<Change>, next: Change) {
    use pb::FsEventKind::*;
    if next.kind == Renamed {
        pending.push(next);
        return;
    }
    if let Some(i) = pending.iter().rposition(|c| c.path == next.path && c.kind != Renamed) {
        let prev = pending[i].kind;
        match (prev, next.kind) {
            (Created, Modified) | (Modified, Modified) | (Created, Created) => return,
            (Created, Removed) => {
                pending.remove(i);
                return;
            }
            (Removed, Created) => {
                pending[i].kind = Modified;
                return;
            }
            _ => {
                pending.remove(i);
            }
        }
    }
    pending.push(next);
}

struct Tree {
    files: Files,
    excluder: Excluder,
    watcher: notify::RecommendedWatcher,
    watched: HashSet<PathBuf>,
}

impl Tree {
    fn rel(&self, p: &Path) -> Option<Vec<u8>> {
        let rel = p.strip_prefix(self.files.home()).ok()?;
        if self.excluder.skip(rel) || rel.file_name().is_some_and(|n| n.as_bytes().starts_with(TEMP_PREFIX)) {
            return None;
        }
        Some(rel.as_os_str().as_bytes().to_vec())
    }

    /// Watches `dir` and every folder below it that isn't excluded.
    /// Returns false when the watch limit was reached.
    fn add(&mut self, dir: &Path) -> bool {
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            let Ok(rel) = d.strip_prefix(self.files.home()) else { continue };
            if self.excluder.skip(rel) || self.watched.contains(&d) {
                continue;
            }
            match self.watcher.watch(&d, RecursiveMode::NonRecursive) {
                Ok(()) => {
                    self.watched.insert(d.clone());
                }
                Err(e) if matches!(e.kind, notify::ErrorKind::MaxFilesWatch) => return false,
                Err(_) => continue,
            }
            if let Ok(rd) = std::fs::read_dir(&d) {
                for e in rd.flatten() {
                    if e.file_type().is_ok_and(|t| t.is_dir()) {
                        stack.push(e.path());
                    }
                }
            }
        }
        true
    }

    fn forget(&mut self, dir: &Path) {
        let gone: Vec<_> = self.watched.iter().filter(|w| w.starts_with(dir)).cloned().collect();
        for w in gone {
            let _ = self.watcher.unwatch(&w);
            self.watched.remove(&w);
        }
    }

    /// Turns one raw event into changes; `None` means events were lost.
    fn translate(&mut self, ev: notify::Event) -> Option<Vec<Change>> {
        use pb::FsEventKind::*;
        if ev.need_rescan() {
            return None;
        }
        let mut out = Vec::new();
        let mut one = |tree: &mut Self, kind, p: &Path| {
            if let Some(path) = tree.rel(p) {
                out.push(Change { kind, path, from: vec![] });
            }
        };
        match ev.kind {
            EventKind::Create(_) => {
                for p in &ev.paths {
                    if p.is_dir() && !self.add(p) {
                        return None;
                    }
                    one(self, Created, p);
                }
            }
            EventKind::Modify(ModifyKind::Name(RenameMode::Both)) if ev.paths.len() == 2 => {
                let (from, to) = (&ev.paths[0], &ev.paths[1]);
                self.forget(from);
                if to.is_dir() && !self.add(to) {
                    return None;
                }
                match (self.rel(from), self.rel(to)) {
                    (Some(f), Some(t)) => out.push(Change { kind: Renamed, path: t, from: f }),
                    (Some(f), None) => out.push(Change { kind: Removed, path: f, from: vec![] }),
                    (None, Some(t)) => out.push(Change { kind: Created, path: t, from: vec![] }),
                    (None, None) => {}
                }
            }
            // The halves of a rename arrive as From/To and then as Both; the
            // Both event carries the pair, so the halves are ignored.
            EventKind::Modify(ModifyKind::Name(RenameMode::From | RenameMode::To)) => {}
            EventKind::Modify(ModifyKind::Name(_)) => {
                for p in &ev.paths {
                    let kind = if p.exists() { Created } else { Removed };
                    one(self, kind, p);
                }
            }
            EventKind::Modify(_) => {
                for p in &ev.paths {
                    one(self, Modified, p);
                }
            }
            EventKind::Remove(_) => {
                for p in &ev.paths {
                    self.forget(p);
                    one(self, Removed, p);
                }
            }
            _ => {}
        }
        Some(out)
    }
}

fn event(kind: pb::FsEventKind, path: Vec<u8>, from: Vec<u8>, message: String) -> pb::FsEvent {
    pb::FsEvent { kind: kind as i32, path, from, message }
}

/// Serves a watch on `path` until the hub closes the stream.
pub async fn serve<R, W>(
    files: &Files,
    path: &HomePath,
    exclude: Vec<String>,
    mut recv: R,
    send: W,
) -> anyhow::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut out = FramedWrite::new(send, FrameCodec::<pb::FsEvent>::default());
    let root = files.real_dir(path).unwrap_or_default();
    if !root.is_dir() {
        let msg = format!("{} is not a folder", path.display());
        out.send(event(pb::FsEventKind::Error, vec![], vec![], msg)).await?;
        return Ok(());
    }
    let (tx, mut rx) = mpsc::channel::<Raw>(QUEUE);
    let overflowed = Arc::new(AtomicBool::new(false));
    let flag = overflowed.clone();
    let watcher = notify::recommended_watcher(move |res: Raw| {
        if tx.try_send(res).is_err() {
            flag.store(true, Ordering::Relaxed);
        }
    })?;
    let names = if exclude.is_empty() { DEFAULT_EXCLUDE.iter().map(|s| s.to_string()).collect() } else { exclude };
    let mut tree = Tree { files: files.clone(), excluder: Excluder { names }, watcher, watched: HashSet::new() };
    let complete = tree.add(&root);
    out.send(event(pb::FsEventKind::Ready, path.as_bytes().to_vec(), vec![], String::new())).await?;
    if !complete {
        out.send(event(pb::FsEventKind::Resync, vec![], vec![], "the watch limit was reached".into())).await?;
    }

    let mut closed = [0u8; 1];
    let mut pending: Vec<Change> = Vec::new();
    let mut lost = false;
    let mut deadline: Option<tokio::time::Instant> = None;
    loop {
        let flush_at = deadline.unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(3600));
        tokio::select! {
            // Anything (or EOF) from the hub ends the watch.
            _ = recv.read(&mut closed) => return Ok(()),
            raw = rx.recv() => {
                let Some(raw) = raw else { return Ok(()) };
                match raw.ok().and_then(|ev| tree.translate(ev)) {
                    Some(changes) => changes.into_iter().for_each(|c| coalesce(&mut pending, c)),
                    None => lost = true,
                }
                deadline.get_or_insert_with(|| tokio::time::Instant::now() + DEBOUNCE);
            }
            () = tokio::time::sleep_until(flush_at), if deadline.is_some() => {
                deadline = None;
                if lost || overflowed.swap(false, Ordering::Relaxed) {
                    lost = false;
                    pending.clear();
                    while rx.try_recv().is_ok() {}
                    out.send(event(pb::FsEventKind::Resync, vec![], vec![], "events were lost; list again".into())).await?;
                    continue;
                }
                for c in pending.drain(..) {
                    out.send(event(c.kind, c.path, c.from, String::new())).await?;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pb::FsEventKind::*;

    fn c(kind: pb::FsEventKind, p: &str) -> Change {
        Change { kind, path: p.as_bytes().to_vec(), from: vec![] }
    }

    #[test]
    fn coalescing_keeps_what_matters() {
        let mut p = vec![];
        coalesce(&mut p, c(Created, "a"));
        coalesce(&mut p, c(Modified, "a"));
        coalesce(&mut p, c(Modified, "b"));
        coalesce(&mut p, c(Modified, "b"));
        assert_eq!(p, vec![c(Created, "a"), c(Modified, "b")]);
        coalesce(&mut p, c(Removed, "a"));
        assert_eq!(p, vec![c(Modified, "b")], "a file that came and went is not news");
        coalesce(&mut p, c(Removed, "b"));
        assert_eq!(p, vec![c(Removed, "b")]);
        coalesce(&mut p, c(Created, "b"));
        assert_eq!(p, vec![c(Modified, "b")], "replaced");
    }

    #[test]
    fn exclusions_match_whole_names() {
        let ex = Excluder { names: DEFAULT_EXCLUDE.iter().map(|s| s.to_string()).collect() };
        assert!(ex.skip(Path::new("node_modules/x")));
        assert!(ex.skip(Path::new("app/node_modules")));
        assert!(ex.skip(Path::new(".git/objects/ab/cdef")));
        assert!(ex.skip(Path::new("sub/.git/objects")));
        assert!(!ex.skip(Path::new(".git/HEAD")));
        assert!(!ex.skip(Path::new("targets/x")));
        assert!(!ex.skip(Path::new("src/main.rs")));
    }
}
