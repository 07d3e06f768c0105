//! One viewer attached to a terminal session over one tunnel stream.
//!
//! Output is pulled from the session's ring at the viewer's own pace, so the
//! shell and other viewers never wait for it. Input and resizes from a
//! read-only viewer are dropped here.

use crate::pace::Mark;
use crate::pty::{CHUNK, Session, Sessions};
use aether_protocol::domain::{PtyAttach, PtyEvent, PtyInput};
use aether_protocol::{FrameCodec, pb};
use futures_util::{SinkExt, StreamExt};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::codec::{FramedRead, FramedWrite};

type Events<W> = FramedWrite<W, FrameCodec<pb::PtyServer>>;

/// Serves one viewer until it leaves or the session exits.
pub async fn serve<R, W>(sessions: &Sessions, session: Arc<Session>, req: PtyAttach, recv: R, send: W)
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let _viewing = crate::Counted::new(&session.viewers);
    let mut events = FramedWrite::new(send, FrameCodec::<pb::PtyServer>::default());
    let inputs = FramedRead::new(recv, FrameCodec::<pb::PtyClient>::default());
    tokio::select! {
        r = output(&session, &req, &mut events) => {
            if r.is_ok() {
                let _ = events.close().await;
            }
        }
        () = input(sessions, &session, req.readonly, inputs) => {}
    }
}

async fn emit<W: AsyncWrite + Unpin>(events: &mut Events<W>, e: PtyEvent) -> Result<(), aether_protocol::FrameError> {
    events.send(pb::PtyServer::from(e)).await
}

async fn output<W: AsyncWrite + Unpin>(
    session: &Session,
    req: &PtyAttach,
    events: &mut Events<W>,
) -> Result<(), aether_protocol::FrameError> {
    let (cursor, gap) = {
        let ring = session.ring.lock().expect("ring lock");
        match req.since {
            None => (ring.start(), false),
            Some(s) if (ring.start()..=ring.end()).contains(&s) => (s, false),
            Some(_) => (ring.start(), true),
        }
    };
    let session_name = session.name.clone();
    emit(events, PtyEvent::Ready { session: session_name, start: cursor, gap }).await?;
    let mark = session.pacer.register(cursor);
    let result = stream_output(session, events, cursor, &mark).await;
    session.pacer.unregister(&mark);
    result
}

/// Sends output from `cursor` on, as fast as the viewer takes it, then the
/// exit code.
async fn stream_output<W: AsyncWrite + Unpin>(
    session: &Session,
    events: &mut Events<W>,
    mut cursor: u64,
    mark: &Mark,
) -> Result<(), aether_protocol::FrameError> {
    let mut progress = session.progress.clone();
    loop {
        let p = *progress.borrow_and_update();
        let chunk = session.ring.lock().expect("ring lock").read_from(cursor, CHUNK);
        match chunk {
            None => {
                // Fell off the front of the ring: resynchronise at the oldest byte.
                cursor = session.ring.lock().expect("ring lock").start();
                let ready = PtyEvent::Ready { session: session.name.clone(), start: cursor, gap: true };
                emit(events, ready).await?;
                session.pacer.advance(mark, cursor);
            }
            Some(bytes) if !bytes.is_empty() => {
                cursor += bytes.len() as u64;
                emit(events, PtyEvent::Output(bytes.into())).await?;
                session.pacer.advance(mark, cursor);
            }
            Some(_) => match p.exit {
                Some(code) if cursor >= p.end => return emit(events, PtyEvent::Exit(code)).await,
                Some(_) => {}
                None => {
                    if progress.changed().await.is_err() && progress.borrow().exit.is_none() {
                        return Ok(());
                    }
                }
            },
        }
    }
}

async fn input<R: AsyncRead + Unpin>(
    sessions: &Sessions,
    session: &Session,
    readonly: bool,
    mut inputs: FramedRead<R, FrameCodec<pb::PtyClient>>,
) {
    while let Some(Ok(frame)) = inputs.next().await {
        if readonly {
            continue;
        }
        match PtyInput::try_from(frame) {
            Ok(PtyInput::Input(bytes)) => {
                sessions.last_activity_ms.store(crate::now_ms(), Ordering::Relaxed);
                if session.write(bytes).await.is_err() {
                    return;
                }
            }
            Ok(PtyInput::Resize(size)) => {
                let _ = session.resize(size).await;
            }
            Err(e) => tracing::debug!(error = %e, "ignoring bad pty input"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pty::PtyConfig;
    use aether_protocol::domain::{SessionName, TermSize};
    use std::time::Duration;
    use tokio::io::DuplexStream;

    struct Viewer {
        events: FramedRead<DuplexStream, FrameCodec<pb::PtyServer>>,
        inputs: FramedWrite<DuplexStream, FrameCodec<pb::PtyClient>>,
        offset: u64,
        seen: Vec<u8>,
        exit: Option<i32>,
    }

    impl Viewer {
        fn attach(sessions: &Arc<Sessions>, name: &str, readonly: bool, since: Option<u64>) -> Self {
            let req = PtyAttach {
                session: SessionName::parse(name).unwrap(),
                size: TermSize::new(80, 24).unwrap(),
                readonly,
                since,
                command: None,
            };
            let session = sessions.get_or_spawn(&req).unwrap();
            let (hub_in, agent_in) = tokio::io::duplex(1 << 16);
            let (agent_out, hub_out) = tokio::io::duplex(1 << 16);
            let s = sessions.clone();
            tokio::spawn(async move { serve(&s, session, req, agent_in, agent_out).await });
            Self {
                events: FramedRead::new(hub_out, FrameCodec::default()),
                inputs: FramedWrite::new(hub_in, FrameCodec::default()),
                offset: 0,
                seen: Vec::new(),
                exit: None,
            }
        }

        async fn type_str(&mut self, s: &str) {
            let input = PtyInput::Input(s.as_bytes().to_vec().into());
            self.inputs.send(pb::PtyClient::from(input)).await.unwrap();
        }

        /// Reads events until `pred` holds for what was seen, within 10 s.
        async fn until(&mut self, pred: impl Fn(&Self) -> bool) {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
            while !pred(self) {
                let frame = tokio::time::timeout_at(deadline, self.events.next())
                    .await
                    .unwrap_or_else(|_| panic!("timed out; saw {:?}", String::from_utf8_lossy(&self.seen)))
                    .expect("stream ended")
                    .unwrap();
                match PtyEvent::try_from(frame).unwrap() {
                    PtyEvent::Ready { start, .. } => self.offset = start,
                    PtyEvent::Output(b) => {
                        self.offset += b.len() as u64;
                        self.seen.extend_from_slice(&b);
                    }
                    PtyEvent::Exit(code) => self.exit = Some(code),
                    PtyEvent::Error(e) => panic!("{e}"),
                }
            }
        }

        fn text(&self) -> String {
            String::from_utf8_lossy(&self.seen).into_owned()
        }
    }

    fn sessions() -> (Arc<Sessions>, tempdir::TempDir) {
        let home = tempdir::TempDir::new();
        let s = Sessions::new(PtyConfig {
            home: home.0.clone(),
            shell: Some("/bin/bash".into()),
            user: None,
            ring_bytes: 1 << 20,
            env: vec![("PS1".into(), "$ ".into())],
            env_remove: vec![],
        });
        (Arc::new(s), home)
    }

    mod tempdir {
        pub struct TempDir(pub std::path::PathBuf);
        impl TempDir {
            pub fn new() -> Self {
                let p = std::env::temp_dir().join(format!("aetherd-test-{}", uuid::Uuid::new_v4()));
                std::fs::create_dir_all(&p).unwrap();
                Self(p)
            }
        }
        impl Drop for TempDir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
    }

    #[tokio::test]
    async fn output_input_readonly_reattach_and_exit() {
        let (sessions, _home) = sessions();
        let mut a = Viewer::attach(&sessions, "main", false, None);
        a.type_str("X=41; echo got-$((X+1))\n").await;
        a.until(|v| v.text().contains("got-42")).await;

        // A read-only viewer sees the replay, and its keystrokes are dropped.
        let mut ro = Viewer::attach(&sessions, "main", true, None);
        ro.until(|v| v.text().contains("got-42")).await;
        ro.type_str("echo from-readonly\n").await;
        a.type_str("echo marker-$X\n").await;
        a.until(|v| v.text().contains("marker-41")).await;
        ro.until(|v| v.text().contains("marker-41")).await;
        assert!(!a.text().contains("from-readonly"));

        // Resuming from an offset gets exactly what followed it.
        let mark = a.offset;
        a.type_str("echo after-mark\n").await;
        a.until(|v| v.text().contains("after-mark\r\n")).await;
        let mut b = Viewer::attach(&sessions, "main", false, Some(mark));
        b.until(|v| v.offset >= a.offset).await;
        // b may already hold more (the next prompt); what a saw must match exactly.
        let n = (a.offset - mark) as usize;
        assert_eq!(b.seen[..n], a.seen[mark as usize..a.offset as usize]);

        a.type_str("exit 3\n").await;
        a.until(|v| v.exit.is_some()).await;
        b.until(|v| v.exit.is_some()).await;
        assert_eq!((a.exit, b.exit), (Some(3), Some(3)));
    }

    #[tokio::test]
    async fn a_read_only_viewer_starts_no_session() {
        let (sessions, _home) = sessions();
        let watch = |name: &str| PtyAttach {
            session: SessionName::parse(name).unwrap(),
            size: TermSize::new(80, 24).unwrap(),
            readonly: true,
            since: None,
            command: None,
        };
        let err = sessions.get_or_spawn(&watch("nobody")).err().expect("no session to watch");
        assert!(err.is::<crate::pty::NoSession>(), "{err:#}");
        assert!(sessions.list().is_empty());

        // One that ended is watched as it ended, not started again.
        let mut a = Viewer::attach(&sessions, "done", false, None);
        a.type_str("exit 4\n").await;
        a.until(|v| v.exit.is_some()).await;
        let mut ro = Viewer::attach(&sessions, "done", true, None);
        ro.until(|v| v.exit.is_some()).await;
        assert_eq!(ro.exit, Some(4));
        assert_eq!(sessions.list().len(), 1);
    }

    #[tokio::test]
    async fn a_viewer_that_never_reads_does_not_stall_the_shell() {
        let (sessions, _home) = sessions();
        let mut a = Viewer::attach(&sessions, "main", false, None);
        // This viewer never reads; its duplex buffer fills up at once.
        let _stuck = Viewer::attach(&sessions, "main", false, None);
        a.type_str("head -c 3000000 /dev/zero | tr '\\0' x; echo; echo done-$((6*7))\n").await;
        a.until(|v| v.text().contains("done-42")).await;
    }

    #[tokio::test]
    async fn a_lone_viewer_that_stops_reading_does_not_stall_the_shell() {
        let (sessions, home) = sessions();
        let mut only = Viewer::attach(&sessions, "main", false, None);
        only.until(|v| v.offset > 0).await;
        // From here on nobody reads; 4 MB won't fit in the ring or the pipe.
        only.type_str("head -c 4000000 /dev/zero | tr '\\0' x; touch finished\n").await;
        let marker = home.0.join("finished");
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while !marker.exists() {
            assert!(std::time::Instant::now() < deadline, "the shell was stalled by a viewer that stopped reading");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
