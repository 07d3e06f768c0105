//! `Tcp { port }` streams: a byte pipe from the hub to a port on this VM's
//! loopback (previews, and SSH to the local sshd).
//!
//! After the header aetherd answers with one `Status` frame (connected, or
//! why not), then copies raw bytes both ways until either side closes.

use aether_protocol::{FrameCodec, pb};
use futures_util::SinkExt;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_util::codec::FramedWrite;

const COPY_BUF: usize = 128 * 1024;

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
    // Large buffers: bulk transfers (downloads, scp) go in big frames.
    let upstream = async {
        tokio::io::copy_buf(&mut tokio::io::BufReader::with_capacity(COPY_BUF, &mut recv), &mut tcp_write).await?;
        tcp_write.shutdown().await
    };
    let downstream = async {
        tokio::io::copy_buf(&mut tokio::io::BufReader::with_capacity(COPY_BUF, &mut tcp_read), &mut send).await?;
        send.shutdown().await
    };
    let (up, down) = tokio::join!(upstream, downstream);
    up.and(down)?;
    Ok(())
}
