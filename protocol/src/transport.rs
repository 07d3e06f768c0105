//! The tunnel's QUIC transport settings and UDP socket, the same at both ends.
//!
//! * Socket buffers: QUIC runs in user space, so the kernel's default UDP
//!   receive buffer (about 200 KB) is all that absorbs a burst while the
//!   process is busy elsewhere. A bulk download overflowed it, and the dropped
//!   packets counted as congestion and slowed the sender down. Both ends ask
//!   for 4 MiB.
//! * Packet size: each packet costs a fixed amount of work (header, AEAD tag,
//!   ACK bookkeeping), so bigger packets carry bulk data for less CPU. MTU
//!   discovery probes up to [`MAX_UDP_PAYLOAD`] and keeps what the path
//!   carries: about 1.4 KB across the internet or a WireGuard network, more
//!   on loopback (local VMs) or a jumbo-frame network.

use nix::sys::socket::{setsockopt, sockopt};
use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

/// A tunnel with no packet for this long is dead (aetherd sends keep-alives
/// every 5 s).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(20);

/// Streams the hub may hold open on one tunnel at once (aetherd's limit):
/// every terminal viewer, file operation and preview upstream is one.
pub const MAX_HUB_STREAMS: u32 = 1024;

/// The largest UDP payload MTU discovery looks for. Ten of them, the most
/// quinn hands the kernel in one segmentation-offload send, must fit the
/// 64 KB such a send can carry; a larger bound made those sends fail and the
/// connection fall back to 1,200-byte packets.
pub const MAX_UDP_PAYLOAD: u16 = 6_500;

/// Transport settings both ends use; each adds its own on top.
pub fn transport_config() -> quinn::TransportConfig {
    let mut transport = quinn::TransportConfig::default();
    transport
        .max_idle_timeout(Some(quinn::IdleTimeout::from(quinn::VarInt::from_u32(IDLE_TIMEOUT.as_millis() as u32))));
    let mut mtu = quinn::MtuDiscoveryConfig::default();
    mtu.upper_bound(MAX_UDP_PAYLOAD);
    transport.mtu_discovery_config(Some(mtu));
    transport
}

/// Lets the endpoint receive (and announce) packets as large as
/// [`MAX_UDP_PAYLOAD`].
pub fn tune_endpoint(config: &mut quinn::EndpointConfig) {
    // The value is within quinn's allowed range (1200..=65527).
    let _ = config.max_udp_payload_size(MAX_UDP_PAYLOAD);
}

/// Size asked for the tunnel socket's send and receive buffers.
pub const SOCKET_BUFFER: usize = 4 << 20;

/// Binds the tunnel's UDP socket on `addr` with large kernel buffers.
///
/// The `*BUFFORCE` options (allowed to root, as aetherd and the hub run in
/// production) go past `net.core.rmem_max`; otherwise the kernel clamps the
/// plain options to that limit, which is still better than the default.
pub fn udp_socket(addr: SocketAddr) -> std::io::Result<UdpSocket> {
    let socket = UdpSocket::bind(addr)?;
    if setsockopt(&socket, sockopt::RcvBufForce, &SOCKET_BUFFER).is_err() {
        let _ = setsockopt(&socket, sockopt::RcvBuf, &SOCKET_BUFFER);
    }
    if setsockopt(&socket, sockopt::SndBufForce, &SOCKET_BUFFER).is_err() {
        let _ = setsockopt(&socket, sockopt::SndBuf, &SOCKET_BUFFER);
    }
    Ok(socket)
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::socket::getsockopt;

    #[test]
    fn the_socket_gets_buffers_larger_than_the_default() {
        let socket = udp_socket("127.0.0.1:0".parse().unwrap()).unwrap();
        let default = UdpSocket::bind("127.0.0.1:0").unwrap();
        let rcv = getsockopt(&socket, sockopt::RcvBuf).unwrap();
        assert!(rcv > getsockopt(&default, sockopt::RcvBuf).unwrap(), "receive buffer {rcv}");
        assert!(getsockopt(&socket, sockopt::SndBuf).unwrap() > getsockopt(&default, sockopt::SndBuf).unwrap());
    }
}
