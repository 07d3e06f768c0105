//! The tunnel's transport settings over real QUIC on loopback: a bulk
//! transfer runs on the large datagrams MTU discovery finds, without the
//! connection falling back to small ones (as it does when the socket hands the
//! kernel ten large packets in one segmentation-offload send, more than a
//! datagram may carry, and the kernel refuses it); on a path of small
//! datagrams it settles on what the path carries.

use aether_transport::{MAX_UDP_PAYLOAD, TunnelRuntime, transport_config, tune_endpoint, udp_socket};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Where the endpoints are; the transport settings depend on the path.
const LOOPBACK: &str = "127.0.0.1:1";

fn endpoint(server: Option<quinn::ServerConfig>) -> quinn::Endpoint {
    let mut config = quinn::EndpointConfig::default();
    tune_endpoint(&mut config);
    let socket = udp_socket("127.0.0.1:0".parse().unwrap()).unwrap();
    quinn::Endpoint::new(config, server, socket, Arc::new(TunnelRuntime)).unwrap()
}

/// A receiving endpoint with the tunnel's settings and a sending one with
/// `sender`'s, and the address to connect to.
fn pair(sender: quinn::TransportConfig) -> (quinn::Endpoint, quinn::Endpoint, SocketAddr) {
    let loopback: SocketAddr = LOOPBACK.parse().unwrap();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(cert.signing_key.serialize_der().into());
    let mut server_config = quinn::ServerConfig::with_single_cert(vec![cert.cert.der().clone()], key).unwrap();
    server_config.transport_config(Arc::new(transport_config(loopback)));
    let server = endpoint(Some(server_config));
    let addr = server.local_addr().unwrap();

    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.cert.der().clone()).unwrap();
    let mut client_config = quinn::ClientConfig::with_root_certificates(Arc::new(roots)).unwrap();
    client_config.transport_config(Arc::new(sender));
    let mut client = endpoint(None);
    client.set_default_client_config(client_config);
    (server, client, addr)
}

/// Counts what arrives on the first stream `server`'s first connection opens.
fn receive_one_stream(server: quinn::Endpoint) -> tokio::task::JoinHandle<(usize, quinn::Connection)> {
    tokio::spawn(async move {
        let conn = server.accept().await.unwrap().await.unwrap();
        let mut recv = conn.accept_uni().await.unwrap();
        let mut got = 0;
        while let Some(chunk) = recv.read_chunk(usize::MAX, true).await.unwrap() {
            got += chunk.bytes.len();
        }
        (got, conn)
    })
}

/// Sends `total` bytes on a new stream and waits for the receiver's count.
async fn send_and_count(
    conn: &quinn::Connection,
    total: usize,
    receiver: tokio::task::JoinHandle<(usize, quinn::Connection)>,
) -> usize {
    let mut send = conn.open_uni().await.unwrap();
    let block = vec![7u8; 1 << 20];
    for _ in 0..total / block.len() {
        send.write_all(&block).await.unwrap();
    }
    send.finish().unwrap();
    receiver.await.unwrap().0
}

/// A UDP relay to `to` that drops every datagram larger than `max` bytes,
/// as a path across the internet does; returns the address to send to.
fn relay(to: SocketAddr, max: usize) -> SocketAddr {
    let bind = || {
        let socket = udp_socket("127.0.0.1:0".parse().unwrap()).unwrap();
        socket.set_nonblocking(true).unwrap();
        tokio::net::UdpSocket::from_std(socket).unwrap()
    };
    let (front, back) = (bind(), bind());
    let addr = front.local_addr().unwrap();
    tokio::spawn(async move {
        let mut from_client = None;
        let (mut up, mut down) = (vec![0u8; 1 << 16], vec![0u8; 1 << 16]);
        loop {
            tokio::select! {
                Ok((n, client)) = front.recv_from(&mut up) => {
                    from_client = Some(client);
                    if n <= max {
                        let _ = back.send_to(&up[..n], to).await;
                    }
                }
                Ok((n, _)) = back.recv_from(&mut down) => {
                    if let (Some(client), true) = (from_client, n <= max) {
                        let _ = front.send_to(&down[..n], client).await;
                    }
                }
            }
        }
    });
    addr
}

#[tokio::test]
async fn bulk_data_travels_in_large_datagrams_on_loopback() {
    let (server, client, addr) = pair(transport_config(LOOPBACK.parse().unwrap()));

    const TOTAL: usize = 64 << 20;
    let receiver = receive_one_stream(server);
    let conn = client.connect(addr, "localhost").unwrap().await.unwrap();

    // Discovery probes right after the handshake; wait for it to settle.
    let deadline = Instant::now() + Duration::from_secs(10);
    while conn.stats().path.current_mtu < MAX_UDP_PAYLOAD {
        assert!(Instant::now() < deadline, "MTU discovery stopped at {} bytes", conn.stats().path.current_mtu);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(send_and_count(&conn, TOTAL, receiver).await, TOTAL);

    let path = conn.stats().path;
    assert_eq!(path.current_mtu, MAX_UDP_PAYLOAD, "{path:?}");
    assert_eq!(path.black_holes_detected, 0, "{path:?}");
    assert!(path.sent_packets < (TOTAL / 30_000) as u64, "64 MiB took {} packets", path.sent_packets);
}

/// Across the internet (or Fly's WireGuard network) a datagram carries about
/// 1.4 KB: discovery's larger probes are lost on the way, and the tunnel
/// settles on what the path carries and moves its data.
#[tokio::test]
async fn on_a_path_of_small_datagrams_discovery_settles_on_what_it_carries() {
    const PATH: usize = 1_452;
    let (server, client, addr) = pair(transport_config(LOOPBACK.parse().unwrap()));
    let receiver = receive_one_stream(server);
    let conn = client.connect(relay(addr, PATH), "localhost").unwrap().await.unwrap();
    // Data keeps flowing while discovery runs, as in a busy tunnel.
    let mut send = conn.open_uni().await.unwrap();
    let block = vec![7u8; 64 << 10];
    // quinn's search stops within 20 bytes of the largest size that passes.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut sent = 0;
    while usize::from(conn.stats().path.current_mtu) < PATH - 20 {
        assert!(Instant::now() < deadline, "discovery did not find the path's size: {:?}", conn.stats().path);
        send.write_all(&block).await.unwrap();
        sent += block.len();
    }
    send.finish().unwrap();
    assert_eq!(receiver.await.unwrap().0, sent);
}
