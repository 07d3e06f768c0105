//! `Tcp { port }` streams: a byte pipe from the hub to a port on this VM's
//! loopback (previews, and SSH to the local sshd).
//!
//! After the header aetherd answers with one `Status` frame (connected, or
//! why not), then copies raw bytes both ways until either side closes.

use aether_protocol::{FrameCodec, pb};
use bytes::{Bytes, BytesMut};
use futures_util::SinkExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::codec::FramedWrite;

/// Largest chunk read from the tunnel at once.
const MAX_CHUNK: usize = 128 * 1024;
/// A connection's read buffer starts this small (most connections carry
/// small requests, and one is held per idle keep-alive preview connection),
/// doubles, up to `MAX_CHUNK`, while reads fill it, and halves while they
/// fill less than a quarter of it.
const FIRST_READ: usize = 8 * 1024;

pub async fn serve(port: u16, mut recv: quinn::RecvStream, send: quinn::SendStream) -> anyhow::Result<()> {
    let conn = match TcpStream::connect(("127.0.0.1", port)).await {
        Ok(c) => Ok(c),
        Err(_) => TcpStream::connect(("::1", port)).await,
    };
    let mut framed = FramedWrite::new(send, FrameCodec::<pb::Status>::default());
    let mut tcp = match conn {
        Ok(tcp) => {
            framed.send(pb::Status { error: None }).await?;
            tcp
        }
        Err(e) => {
            let error = pb::Error { code: "refused".into(), message: format!("nothing listening on port {port}: {e}") };
            framed.send(pb::Status { error: Some(error) }).await?;
            framed.close().await?;
            return Ok(());
        }
    };
    let _ = tcp.set_nodelay(true);
    let mut send = framed.into_inner();
    let (mut tcp_read, mut tcp_write) = tcp.split();
    // Chunks move without a copy in aetherd: quinn's received chunks go to
    // the socket as they are, and what the socket gives is handed to quinn
    // as it is.
    let upstream = async {
        while let Some(chunk) = recv.read_chunk(MAX_CHUNK, true).await? {
            tcp_write.write_all(&chunk.bytes).await?;
        }
        tcp_write.shutdown().await?;
        anyhow::Ok(())
    };
    let downstream = async {
        let mut size = FIRST_READ;
        let mut buf = BytesMut::new();
        loop {
            buf.reserve(size);
            let n = tcp_read.read_buf(&mut buf).await?;
            if n == 0 {
                break;
            }
            let chunk = if n >= size / 4 {
                // Handed over as it is: quinn keeps it until it is acknowledged.
                buf.split().freeze()
            } else {
                // A small read is copied, so it doesn't keep a large buffer
                // alive until then; the buffer is reused.
                let small = Bytes::copy_from_slice(&buf);
                buf.clear();
                small
            };
            size = if n >= size {
                (size * 2).min(MAX_CHUNK)
            } else if n < size / 4 {
                (size / 2).max(FIRST_READ)
            } else {
                size
            };
            send.write_chunk(chunk).await?;
        }
        send.finish()?;
        anyhow::Ok(())
    };
    let (up, down) = tokio::join!(upstream, downstream);
    up.and(down)?;
    Ok(())
}
