//! Typed clients of aetherd's byte streams: `Tcp { port }` (a connection to
//! a port in the VM: previews, and the VM's sshd for the jump host) and the
//! agents stream (the project's keys one way, sessions the other).

use super::{QUIET_STREAM_BUFFER, Tunnel};
use aether_protocol::agents::{AgentsHub, AgentsVm};
use aether_protocol::domain::{StreamKind, WireError};
use aether_protocol::{FrameCodec, FrameError, pb};
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio_util::codec::{FramedRead, FramedWrite};

/// A connection aetherd made to a port in the VM: `early` holds bytes the
/// VM sent that were read with its answer, before `recv`'s.
pub struct TcpStream {
    pub send: quinn::SendStream,
    pub recv: quinn::RecvStream,
    pub early: Bytes,
}

impl TcpStream {
    /// Both directions as one byte stream.
    pub fn into_io(self) -> impl tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin {
        use tokio::io::AsyncReadExt;
        tokio::io::join(std::io::Cursor::new(self.early).chain(self.recv), self.send)
    }
}

/// The agents stream, hub side: messages from the VM.
pub struct AgentsRx(FramedRead<quinn::RecvStream, FrameCodec<pb::AgentsVm>>);

impl AgentsRx {
    pub async fn next(&mut self) -> Option<anyhow::Result<AgentsVm>> {
        Some(self.0.next().await?.map_err(anyhow::Error::from).and_then(|f| Ok(AgentsVm::try_from(f)?)))
    }
}

/// The agents stream, hub side: messages to the VM.
pub struct AgentsTx(FramedWrite<quinn::SendStream, FrameCodec<pb::AgentsHub>>);

impl AgentsTx {
    pub async fn send(&mut self, msg: AgentsHub) -> Result<(), FrameError> {
        self.0.send(msg.into()).await
    }
}

impl Tunnel {
    /// Connects to `127.0.0.1:{port}` in the VM: `Err` with aetherd's
    /// reason when nothing listens there (or the port is refused).
    pub async fn tcp(&self, port: u16) -> anyhow::Result<Result<TcpStream, WireError>> {
        let (send, recv) = self.open(StreamKind::Tcp { port }).await?;
        let mut framed = FramedRead::new(recv, FrameCodec::<pb::Status>::with_max(64 * 1024));
        let status = framed.next().await.ok_or_else(|| anyhow::anyhow!("no answer from the VM"))??;
        if let Some(e) = status.error {
            return Ok(Err(WireError::from(e)));
        }
        let parts = framed.into_parts();
        Ok(Ok(TcpStream { send, recv: parts.io, early: parts.read_buf.freeze() }))
    }

    /// Opens the agents stream; `max` bounds what the VM may send in one
    /// message.
    pub async fn agents(&self, max: usize) -> anyhow::Result<(AgentsRx, AgentsTx)> {
        let (send, recv) = self.open(StreamKind::Agents).await?;
        Ok((
            AgentsRx(FramedRead::with_capacity(recv, FrameCodec::with_max(max), QUIET_STREAM_BUFFER)),
            AgentsTx(FramedWrite::with_capacity(send, FrameCodec::default(), QUIET_STREAM_BUFFER)),
        ))
    }
}
