//! The tunnel's QUIC transport settings and UDP socket, the same at both ends.
//!
//! * Socket buffers: QUIC runs in user space, so the kernel's default UDP
//!   receive buffer (about 200 KB) is all that absorbs a burst while the
//!   process is busy elsewhere. A bulk download overflowed it, and the dropped
//!   packets counted as congestion and slowed the sender down. Both ends ask
//!   for 4 MiB.
//! * Packet size: each packet costs a fixed amount of work (header, AEAD tag,
//!   ACK bookkeeping, a pass through the kernel's UDP path), so bigger
//!   packets carry bulk data for less CPU. MTU discovery probes up to what
//!   the route toward the peer carries ([`payload_bound`]: 65,000 bytes at
//!   most, on loopback to local VMs, whose MTU is 64 KiB; 1,472 on an
//!   Ethernet network) and keeps what the whole path carries (about 1.4 KB
//!   across the internet or a WireGuard network). Probing from 65,000 on a
//!   1,500-byte network would cost seven levels of the search, three lost
//!   probes each, before the first size that passes.
//! * Segmentation offload: quinn hands the socket up to ten packets of the
//!   path's size in one send, which the kernel refuses when they add up to
//!   more than one UDP datagram may carry. [`TunnelSocket`] splits such a
//!   send into as many as needed, so small packets still go ten to a system
//!   call and large ones one each.
//! * Wake-ups: quinn's tokio socket is registered for reads and writes. The
//!   kernel signals a UDP socket writable each time it lets go of a datagram
//!   the socket sent (on loopback during the send itself, on a network card
//!   when the transmission completes), so after each send the thread went
//!   round its event loop once more for nothing, or was woken from sleep
//!   for nothing. The tunnel's socket ([`TunnelSocket`]) is registered for
//!   reads only, and asks to be told it is writable only after a send found
//!   its buffer full.

use nix::sys::socket::{getsockopt, setsockopt, sockopt};
use quinn::udp::{RecvMeta, Transmit, UdpSocketState};
use std::future::Future;
use std::net::{SocketAddr, UdpSocket};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

/// A tunnel with no packet for this long is dead (aetherd sends keep-alives
/// every 5 s).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(20);

/// Streams the hub may hold open on one tunnel at once (aetherd's limit):
/// every terminal viewer, file operation and preview upstream is one.
pub const MAX_HUB_STREAMS: u32 = 1024;

/// The largest UDP payload MTU discovery looks for: what a datagram over
/// loopback (MTU 65,536) carries with room to spare over IPv4 or IPv6.
pub const MAX_UDP_PAYLOAD: u16 = 65_000;

/// The most one send may carry, segmentation offload or not: a UDP datagram's
/// payload over IPv4 (65,535 less the IP and UDP headers; IPv6 allows 20
/// bytes more).
const MAX_SEND: usize = 65_507;

/// The most a coalesced receive (GRO) may hold: the kernel stops merging
/// datagrams at 64 KiB.
const MAX_COALESCED: usize = 65_536;

/// Transport settings both ends use for a tunnel with `peer`; each adds its
/// own on top.
pub fn transport_config(peer: SocketAddr) -> quinn::TransportConfig {
    let mut transport = quinn::TransportConfig::default();
    transport
        .max_idle_timeout(Some(quinn::IdleTimeout::from(quinn::VarInt::from_u32(IDLE_TIMEOUT.as_millis() as u32))));
    let mut mtu = quinn::MtuDiscoveryConfig::default();
    mtu.upper_bound(payload_bound(peer));
    transport.mtu_discovery_config(Some(mtu));
    transport
}

/// The largest UDP payload the route toward `peer` carries as far as this
/// host knows: the route's MTU (its interface's, unless the route or the
/// kernel's path-MTU cache says less) less the IP and UDP headers, between
/// quinn's 1,200 and [`MAX_UDP_PAYLOAD`]. quinn's own bound (1,452) when it
/// can't be told.
pub fn payload_bound(peer: SocketAddr) -> u16 {
    // A dual-stack socket sees IPv4 peers as `::ffff:a.b.c.d`; their
    // packets are IPv4.
    let peer = SocketAddr::new(peer.ip().to_canonical(), peer.port());
    let headers = if peer.is_ipv6() { 40 + 8 } else { 20 + 8 };
    match route_mtu(peer) {
        Some(mtu) => mtu.saturating_sub(headers).clamp(1_200, usize::from(MAX_UDP_PAYLOAD)) as u16,
        None => 1_452,
    }
}

/// The MTU of the route the kernel takes to `peer`: its interface's, or a
/// smaller one the route or the kernel's path-MTU cache holds.
fn route_mtu(peer: SocketAddr) -> Option<usize> {
    let any: SocketAddr = if peer.is_ipv6() { "[::]:0" } else { "0.0.0.0:0" }.parse().ok()?;
    let probe = UdpSocket::bind(any).ok()?;
    // Connecting a UDP socket sends nothing; it picks the route.
    probe.connect(peer).ok()?;
    let mtu = if peer.is_ipv6() { ipv6_mtu(&probe)? } else { getsockopt(&probe, sockopt::IpMtu).ok()? };
    usize::try_from(mtu).ok()
}

/// `IPV6_MTU` of a connected socket (nix has only the IPv4 option).
fn ipv6_mtu(socket: &UdpSocket) -> Option<libc::c_int> {
    use std::os::fd::AsRawFd;
    let mut mtu: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: the descriptor is open for the call's length (borrowed from
    // `socket`); `mtu` and `len` are valid for writes, and `len` holds
    // `mtu`'s size.
    #[allow(unsafe_code)]
    let done = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_IPV6,
            libc::IPV6_MTU,
            (&mut mtu as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    (done == 0).then_some(mtu)
}

/// The tunnel's TLS crypto: ring's, with AES-128-GCM first. rustls puts
/// AES-256-GCM first; AES-128 does 10 rounds a block against 14, and every
/// byte through the tunnel is sealed once and opened once. In a bulk
/// download the cipher was 12 % of the CPU time of both the hub and aetherd.
/// AES-128-GCM is what QUIC's own handshake packets use.
pub fn crypto_provider() -> rustls::crypto::CryptoProvider {
    let mut provider = rustls::crypto::ring::default_provider();
    let first = rustls::crypto::ring::cipher_suite::TLS13_AES_128_GCM_SHA256.suite();
    provider.cipher_suites.sort_by_key(|s| s.suite() != first);
    provider
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

/// quinn's tokio runtime with the tunnel's socket ([`TunnelSocket`]).
#[derive(Debug)]
pub struct TunnelRuntime;

impl quinn::Runtime for TunnelRuntime {
    fn new_timer(&self, t: Instant) -> Pin<Box<dyn quinn::AsyncTimer>> {
        quinn::TokioRuntime.new_timer(t)
    }

    fn spawn(&self, future: Pin<Box<dyn Future<Output = ()> + Send>>) {
        quinn::TokioRuntime.spawn(future);
    }

    fn wrap_udp_socket(&self, socket: UdpSocket) -> std::io::Result<Arc<dyn quinn::AsyncUdpSocket>> {
        Ok(Arc::new(TunnelSocket::new(socket)?))
    }

    fn now(&self) -> Instant {
        quinn::TokioRuntime.now()
    }
}

/// A UDP socket for quinn that the reactor watches for reads only (see the
/// module's notes). Must be made inside a tokio runtime.
#[derive(Debug)]
pub struct TunnelSocket {
    io: AsyncFd<UdpSocket>,
    state: UdpSocketState,
    /// The last send found the buffer full (quinn asks before every send).
    full: AtomicBool,
}

impl TunnelSocket {
    pub fn new(socket: UdpSocket) -> std::io::Result<Self> {
        socket.set_nonblocking(true)?;
        let state = UdpSocketState::new((&socket).into())?;
        Ok(Self { io: register(socket, Interest::READABLE)?, state, full: AtomicBool::new(false) })
    }
}

impl quinn::AsyncUdpSocket for TunnelSocket {
    fn create_io_poller(self: Arc<Self>) -> Pin<Box<dyn quinn::UdpPoller>> {
        Box::pin(WritablePoller { socket: self, waiting: None })
    }

    fn try_send(&self, transmit: &Transmit) -> std::io::Result<()> {
        for part in sendable(transmit) {
            let sent = self.state.send(self.io.get_ref().into(), &part);
            if sent.as_ref().is_err_and(|e| e.kind() == std::io::ErrorKind::WouldBlock) {
                // quinn sends the whole transmit again later: the packets of
                // any part already sent arrive twice, and the receiver drops
                // the copies.
                self.full.store(true, Ordering::Relaxed);
            }
            sent?;
        }
        Ok(())
    }

    fn poll_recv(
        &self,
        cx: &mut Context,
        bufs: &mut [std::io::IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> Poll<std::io::Result<usize>> {
        loop {
            let mut ready = ready!(self.io.poll_read_ready(cx))?;
            match self.state.recv(self.io.get_ref().into(), bufs, meta) {
                Ok(n) => {
                    // Fewer datagrams than asked for: the queue was empty,
                    // so don't ask again (a syscall per wake-up) before the
                    // reactor says more arrived. The kernel signals every
                    // datagram that arrives, so one that came after this
                    // read is seen at the reactor's next poll (as tokio's
                    // own TCP reads do after a short read).
                    if n < bufs.len().min(quinn::udp::BATCH_SIZE) {
                        ready.clear_ready();
                    } else {
                        ready.retain_ready();
                    }
                    return Poll::Ready(Ok(n));
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => ready.clear_ready(),
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.io.get_ref().local_addr()
    }

    fn may_fragment(&self) -> bool {
        self.state.may_fragment()
    }

    fn max_transmit_segments(&self) -> usize {
        self.state.max_gso_segments()
    }

    fn max_receive_segments(&self) -> usize {
        // quinn sizes each receive buffer as this many datagrams of the
        // endpoint's largest (which `tune_endpoint` sets to
        // MAX_UDP_PAYLOAD); more than one coalesced receive can hold would
        // only reserve memory (64 × 65,000 bytes for each of 32 buffers).
        // The socket must not be used with an endpoint that isn't tuned:
        // its buffers would be too small for a coalesced receive.
        self.state.gro_segments().min(MAX_COALESCED.div_ceil(usize::from(MAX_UDP_PAYLOAD)))
    }
}

/// `transmit` cut into sends the kernel accepts: whole packets, at most
/// [`MAX_SEND`] bytes each.
fn sendable<'a>(transmit: &Transmit<'a>) -> impl Iterator<Item = Transmit<'a>> {
    let size = transmit.segment_size.unwrap_or(transmit.contents.len()).max(1);
    let per_send = (MAX_SEND / size).max(1) * size;
    let (destination, ecn, src_ip) = (transmit.destination, transmit.ecn, transmit.src_ip);
    transmit.contents.chunks(per_send).map(move |contents| Transmit {
        destination,
        ecn,
        contents,
        segment_size: (contents.len() > size).then_some(size),
        src_ip,
    })
}

/// Registers `socket` with the current runtime's reactor for `interest` only.
fn register(socket: UdpSocket, interest: Interest) -> std::io::Result<AsyncFd<UdpSocket>> {
    // SAFETY: the `UdpSocket` owns its descriptor, which stays open and the
    // same until the `AsyncFd` drops it.
    #[allow(unsafe_code)]
    let registered = unsafe { AsyncFd::register_with_interest(socket, interest) };
    Ok(registered?)
}

/// Tells quinn, which asks before every send, whether the socket has room.
/// It does unless the last send found the buffer full; then a second
/// descriptor of the socket is registered for writes, and only until the
/// kernel says there is room again.
#[derive(Debug)]
struct WritablePoller {
    socket: Arc<TunnelSocket>,
    waiting: Option<AsyncFd<UdpSocket>>,
}

impl quinn::UdpPoller for WritablePoller {
    fn poll_writable(self: Pin<&mut Self>, cx: &mut Context) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        if !this.socket.full.load(Ordering::Relaxed) {
            return Poll::Ready(Ok(()));
        }
        if this.waiting.is_none() {
            let dup = this.socket.io.get_ref().try_clone()?;
            this.waiting = Some(register(dup, Interest::WRITABLE)?);
        }
        let waiting = this.waiting.as_ref().expect("registered above");
        let ready = ready!(waiting.poll_write_ready(cx)).map(drop);
        this.waiting = None;
        this.socket.full.store(false, Ordering::Relaxed);
        Poll::Ready(ready)
    }
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

    #[test]
    fn discovery_looks_no_further_than_the_first_hop_carries() {
        // Loopback's MTU is 65,536 (checked, so that a machine set up
        // otherwise fails here with its own figure).
        let lo: usize = std::fs::read_to_string("/sys/class/net/lo/mtu").unwrap().trim().parse().unwrap();
        assert_eq!(lo, 65_536);
        assert_eq!(route_mtu("127.0.0.1:4433".parse().unwrap()), Some(65_535), "an IPv4 packet's limit");
        assert_eq!(payload_bound("127.0.0.1:4433".parse().unwrap()), MAX_UDP_PAYLOAD);
        // As a dual-stack socket sees it.
        assert_eq!(payload_bound("[::ffff:127.0.0.1]:4433".parse().unwrap()), MAX_UDP_PAYLOAD);
        if route_mtu("[::1]:4433".parse().unwrap()).is_some() {
            assert_eq!(payload_bound("[::1]:4433".parse().unwrap()), MAX_UDP_PAYLOAD);
        }
    }

    #[test]
    fn a_send_too_large_for_one_datagram_is_cut_between_packets() {
        let destination = "127.0.0.1:9".parse().unwrap();
        let parts = |contents: &[u8], segment_size| {
            let transmit = Transmit { destination, ecn: None, contents, segment_size, src_ip: None };
            sendable(&transmit).map(|t| (t.contents.len(), t.segment_size)).collect::<Vec<_>>()
        };
        // Ten small packets fit one send, as quinn made it.
        assert_eq!(parts(&[0; 14_520], Some(1_452)), [(14_520, Some(1_452))]);
        // Ten of 6,500 bytes exactly fill one.
        assert_eq!(parts(&[0; 65_000], Some(6_500)), [(65_000, Some(6_500))]);
        // Ten large packets go one by one, each a plain datagram.
        assert_eq!(parts(&[0; 650_000], Some(65_000)), vec![(65_000, None); 10]);
        // Six of 10,000 bytes a send; the short last packet stays last.
        assert_eq!(parts(&[0; 100_500], Some(10_000)), [(60_000, Some(10_000)), (40_500, Some(10_000))]);
        // A single datagram is sent as it is.
        assert_eq!(parts(&[0; 65_000], None), [(65_000, None)]);
        assert_eq!(parts(&[0; 40], None), [(40, None)]);
    }

    #[tokio::test]
    async fn waiting_for_room_to_send_ends_when_there_is_room_and_can_be_repeated() {
        use quinn::AsyncUdpSocket;
        let socket = Arc::new(TunnelSocket::new(udp_socket("127.0.0.1:0".parse().unwrap()).unwrap()).unwrap());
        let mut poller = socket.clone().create_io_poller();
        for full in [false, true, false, true] {
            // As if the last send had found the buffer full (loopback frees
            // a datagram's buffer space as it is sent, so it never fills).
            socket.full.store(full, Ordering::Relaxed);
            let writable = std::future::poll_fn(|cx| poller.as_mut().poll_writable(cx));
            tokio::time::timeout(Duration::from_secs(10), writable).await.expect("told it is writable").unwrap();
            assert!(!socket.full.load(Ordering::Relaxed), "room again");
        }
    }
}
