//! Typed client of aetherd's file streams (`StreamKind::Fs`): operations,
//! their replies, listings and watch events as the hub's own types, so the
//! protocol's `pb` types stay inside `tunnel`.

use super::Tunnel;
use aether_protocol::domain::{StreamKind, WireError};
use aether_protocol::fs::FsOp;
use aether_protocol::{FrameCodec, FrameError, pb};
use futures_util::StreamExt;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio_util::codec::FramedRead;

/// What a path is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
    Symlink,
    Other,
}

impl From<i32> for Kind {
    fn from(k: i32) -> Self {
        match pb::FsKind::try_from(k).unwrap_or(pb::FsKind::Unknown) {
            pb::FsKind::File => Self::File,
            pb::FsKind::Dir => Self::Dir,
            pb::FsKind::Symlink => Self::Symlink,
            _ => Self::Other,
        }
    }
}

/// A path's metadata, as aetherd reports it.
#[derive(Debug, Clone, Default)]
pub struct Stat {
    /// Raw bytes: a Unix path need not be UTF-8.
    pub path: Vec<u8>,
    pub kind: Option<Kind>,
    pub size: u64,
    pub mode: u32,
    pub mtime_ms: i64,
    pub etag: String,
}

impl From<pb::FsStat> for Stat {
    fn from(s: pb::FsStat) -> Self {
        Self {
            kind: Some(Kind::from(s.kind)),
            path: s.path,
            size: s.size,
            mode: s.mode,
            mtime_ms: s.mtime_ms,
            etag: s.etag,
        }
    }
}

impl Stat {
    pub fn is_dir(&self) -> bool {
        self.kind == Some(Kind::Dir)
    }
}

/// aetherd's answer to one operation.
#[derive(Debug, Clone, Default)]
pub struct Reply {
    /// The path's metadata after the operation (when it has one).
    pub stat: Stat,
    /// A write made the file (it didn't replace one).
    pub created: bool,
}

/// Why an operation failed.
#[derive(Debug, thiserror::Error)]
pub enum FsError {
    /// aetherd refused it (`not_found`, `invalid_path`, `conflict`, …).
    #[error("{}: {}", .0.code, .0.message)]
    Vm(WireError),
    /// The tunnel or the stream failed.
    #[error(transparent)]
    Tunnel(#[from] anyhow::Error),
}

impl From<FrameError> for FsError {
    fn from(e: FrameError) -> Self {
        Self::Tunnel(e.into())
    }
}

fn reply(frame: Option<Result<pb::FsReply, FrameError>>) -> Result<Reply, FsError> {
    let reply = frame.ok_or_else(|| anyhow::anyhow!("no answer from the VM"))??;
    if let Some(e) = reply.error {
        return Err(FsError::Vm(WireError { code: e.code, message: e.message }));
    }
    Ok(Reply { stat: reply.stat.map(Stat::from).unwrap_or_default(), created: reply.created })
}

/// One folder entry.
#[derive(Debug, Clone)]
pub struct Entry {
    pub name: Vec<u8>,
    pub kind: Kind,
    pub size: u64,
    pub mode: u32,
    pub mtime_ms: i64,
}

/// A listing's entries, batch by batch; `done` on the last.
pub struct Entries<R>(FramedRead<R, FrameCodec<pb::FsEntries>>);

impl<R: AsyncRead + Unpin> Entries<R> {
    /// The next batch and whether it is the last; `None` if the stream ended.
    pub async fn next(&mut self) -> Option<Result<(Vec<Entry>, bool), FrameError>> {
        let batch = match self.0.next().await? {
            Ok(b) => b,
            Err(e) => return Some(Err(e)),
        };
        let entries = batch
            .entries
            .into_iter()
            .map(|e| Entry { name: e.name, kind: Kind::from(e.kind), size: e.size, mode: e.mode, mtime_ms: e.mtime_ms })
            .collect();
        Some(Ok((entries, batch.done)))
    }
}

/// A change seen by a watch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Created,
    Modified,
    Removed,
    Renamed,
    /// Events were lost: read the folder again.
    Resync,
    /// The watch is set up.
    Ready,
    /// The watch ended with an error (`message`).
    Error,
}

/// One watch event.
#[derive(Debug, Clone)]
pub struct Event {
    pub kind: EventKind,
    pub path: Vec<u8>,
    /// A rename's old path (empty otherwise).
    pub from: Vec<u8>,
    pub message: String,
}

impl From<pb::FsEvent> for Event {
    fn from(e: pb::FsEvent) -> Self {
        let kind = match pb::FsEventKind::try_from(e.kind).unwrap_or(pb::FsEventKind::Unknown) {
            pb::FsEventKind::Created => EventKind::Created,
            pb::FsEventKind::Modified => EventKind::Modified,
            pb::FsEventKind::Removed => EventKind::Removed,
            pb::FsEventKind::Renamed => EventKind::Renamed,
            pb::FsEventKind::Resync => EventKind::Resync,
            pb::FsEventKind::Ready => EventKind::Ready,
            _ => EventKind::Error,
        };
        Self { kind, path: e.path, from: e.from, message: e.message }
    }
}

/// A watch's events. The watch lasts while this lives (its send side,
/// kept here, tells aetherd when it ends).
pub struct Events {
    events: FramedRead<quinn::RecvStream, FrameCodec<pb::FsEvent>>,
    _send: quinn::SendStream,
}

impl Events {
    pub async fn next(&mut self) -> Option<Result<Event, FrameError>> {
        Some(self.events.next().await?.map(Event::from))
    }
}

/// A write under way: the file's bytes go to `send`, and `reply` says how
/// it ended (aetherd may answer early, refusing it).
pub struct Write {
    pub send: quinn::SendStream,
    pub reply: WriteReply,
}

/// aetherd's answer to a write.
pub struct WriteReply(FramedRead<quinn::RecvStream, FrameCodec<pb::FsReply>>);

impl WriteReply {
    /// The answer; it may come before every byte was sent.
    pub async fn get(&mut self) -> Result<Reply, FsError> {
        reply(self.0.next().await)
    }
}

impl Tunnel {
    /// Runs one file operation: aetherd's reply, and the stream of whatever
    /// follows it (a file's bytes, a listing's frames).
    pub async fn fs(&self, op: FsOp) -> Result<(Reply, impl AsyncRead + Unpin + use<>), FsError> {
        let (_send, recv) = self.open(StreamKind::Fs(op)).await?;
        let mut framed = FramedRead::new(recv, FrameCodec::<pb::FsReply>::default());
        let reply = reply(framed.next().await)?;
        let parts = framed.into_parts();
        let rest = std::io::Cursor::new(parts.read_buf.freeze()).chain(parts.io);
        Ok((reply, rest))
    }

    /// A listing's entries, from what follows `fs(FsOp::List(…))`'s reply.
    pub fn entries<R: AsyncRead + Unpin>(rest: R) -> Entries<R> {
        Entries(FramedRead::new(rest, FrameCodec::default()))
    }

    /// Starts a write (`FsOp::Write`).
    pub async fn write(&self, op: FsOp) -> anyhow::Result<Write> {
        let (send, recv) = self.open(StreamKind::Fs(op)).await?;
        Ok(Write { send, reply: WriteReply(FramedRead::new(recv, FrameCodec::default())) })
    }

    /// Starts a watch (`FsOp::Watch`).
    pub async fn watch(&self, op: FsOp) -> anyhow::Result<Events> {
        let (send, recv) = self.open(StreamKind::Fs(op)).await?;
        Ok(Events { events: FramedRead::new(recv, FrameCodec::default()), _send: send })
    }
}
