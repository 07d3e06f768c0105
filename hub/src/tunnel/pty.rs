//! Typed client of aetherd's terminal streams (`PtyAttach`, `PtyList`,
//! `PtyKill`): events and input as the protocol's domain types, so `pb`
//! stays inside `tunnel`.

use super::Tunnel;
use aether_protocol::domain::{PtyAttach, PtyEvent, PtyInput, SessionInfo, SessionName, StreamKind, WireError};
use aether_protocol::{FrameCodec, FrameError, pb};
use futures_util::{SinkExt, StreamExt};
use tokio_util::codec::{FramedRead, FramedWrite};

/// A session's events: output, its exit, an error.
pub struct PtyEvents(FramedRead<quinn::RecvStream, FrameCodec<pb::PtyServer>>);

impl PtyEvents {
    /// The next event; `None` when the stream ended.
    pub async fn next(&mut self) -> Option<anyhow::Result<PtyEvent>> {
        Some(self.0.next().await?.map_err(anyhow::Error::from).and_then(|f| Ok(PtyEvent::try_from(f)?)))
    }
}

/// Input to a session: keystrokes and resizes.
pub struct PtyInputs(FramedWrite<quinn::SendStream, FrameCodec<pb::PtyClient>>);

impl PtyInputs {
    /// Queues `input` without flushing.
    pub async fn feed(&mut self, input: PtyInput) -> Result<(), FrameError> {
        self.0.feed(pb::PtyClient::from(input)).await
    }

    /// Sends `input`, and whatever was fed before it.
    pub async fn send(&mut self, input: PtyInput) -> Result<(), FrameError> {
        self.0.send(pb::PtyClient::from(input)).await
    }
}

impl Tunnel {
    /// Attaches to (or starts) the session `req` names.
    pub async fn attach(&self, req: PtyAttach) -> anyhow::Result<(PtyEvents, PtyInputs)> {
        let (send, recv) = self.open(StreamKind::PtyAttach(req)).await?;
        Ok((
            PtyEvents(FramedRead::new(recv, FrameCodec::default())),
            PtyInputs(FramedWrite::new(send, FrameCodec::default())),
        ))
    }

    /// The VM's terminal sessions.
    pub async fn sessions(&self) -> anyhow::Result<Vec<SessionInfo>> {
        let (_send, recv) = self.open(StreamKind::PtyList).await?;
        let mut frames = FramedRead::new(recv, FrameCodec::<pb::PtySessions>::default());
        let reply = frames.next().await.ok_or_else(|| anyhow::anyhow!("no answer from the VM"))??;
        Ok(reply.sessions.into_iter().map(SessionInfo::try_from).collect::<Result<_, _>>()?)
    }

    /// Ends a session: `Err` with aetherd's reason (`not_found`) if it can't.
    pub async fn kill_session(&self, name: SessionName) -> anyhow::Result<Result<(), WireError>> {
        let (_send, recv) = self.open(StreamKind::PtyKill(name)).await?;
        let mut frames = FramedRead::new(recv, FrameCodec::<pb::Status>::default());
        let status = frames.next().await.ok_or_else(|| anyhow::anyhow!("no answer from the VM"))??;
        Ok(match status.error {
            None => Ok(()),
            Some(e) => Err(WireError::from(e)),
        })
    }
}
