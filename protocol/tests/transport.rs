//! The tunnel's transport settings over real QUIC on loopback: a bulk
//! transfer runs on the large datagrams MTU discovery finds, without the
//! connection falling back to small ones (as it does when the socket hands the
//! kernel ten large packets in one segmentation-offload send, more than a
//! datagram may carry, and the kernel refuses it).

use aether_protocol::transport::{
    MAX_UDP_PAYLOAD, STREAM_WINDOW, TUNNEL_WINDOW, TunnelRuntime, transport_config, tune_endpoint, udp_socket,
};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

fn endpoint(server: Option<quinn::ServerConfig>) -> quinn::Endpoint {
    let mut config = quinn::EndpointConfig::default();
    tune_endpoint(&mut config);
    let socket = udp_socket("127.0.0.1:0".parse().unwrap()).unwrap();
    quinn::Endpoint::new(config, server, socket, Arc::new(TunnelRuntime)).unwrap()
}

/// A receiving endpoint with the tunnel's settings and a sending one with
/// `sender`'s, and the address to connect to.
fn pair(sender: quinn::TransportConfig) -> (quinn::Endpoint, quinn::Endpoint, std::net::SocketAddr) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(cert.signing_key.serialize_der().into());
    let mut server_config = quinn::ServerConfig::with_single_cert(vec![cert.cert.der().clone()], key).unwrap();
    server_config.transport_config(Arc::new(transport_config()));
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

#[tokio::test]
async fn bulk_data_travels_in_large_datagrams_on_loopback() {
    let (server, client, addr) = pair(transport_config());

    const TOTAL: usize = 64 << 20;
    let receiver = tokio::spawn(async move {
        let conn = server.accept().await.unwrap().await.unwrap();
        let mut recv = conn.accept_uni().await.unwrap();
        let mut got = 0;
        while let Some(chunk) = recv.read_chunk(usize::MAX, true).await.unwrap() {
            got += chunk.bytes.len();
        }
        (got, conn)
    });
    let conn = client.connect(addr, "localhost").unwrap().await.unwrap();

    // Discovery probes right after the handshake; wait for it to settle.
    let deadline = Instant::now() + Duration::from_secs(10);
    while conn.stats().path.current_mtu < MAX_UDP_PAYLOAD {
        assert!(Instant::now() < deadline, "MTU discovery stopped at {} bytes", conn.stats().path.current_mtu);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut send = conn.open_uni().await.unwrap();
    let block = vec![7u8; 1 << 20];
    for _ in 0..TOTAL / block.len() {
        send.write_all(&block).await.unwrap();
    }
    send.finish().unwrap();
    let (got, _server_conn) = receiver.await.unwrap();
    assert_eq!(got, TOTAL);

    let path = conn.stats().path;
    assert_eq!(path.current_mtu, MAX_UDP_PAYLOAD, "{path:?}");
    assert_eq!(path.black_holes_detected, 0, "{path:?}");
    assert!(path.sent_packets < (TOTAL / 30_000) as u64, "64 MiB took {} packets", path.sent_packets);
}

/// A peer that sends as much as it may (a VM's aetherd is the user's to
/// change) on streams nobody reads: the receiving end holds no more than a
/// stream's window on each, and no more than the tunnel's in all.
#[tokio::test]
async fn unread_streams_hold_at_most_the_windows() {
    let mut greedy = transport_config();
    greedy.send_window(u64::from(TUNNEL_WINDOW) * 4);
    let (server, client, addr) = pair(greedy);
    const STREAMS: usize = 24;
    // Takes every stream and keeps it, unread, until the test ends.
    let _receiver = tokio::spawn(async move {
        let conn = server.accept().await.unwrap().await.unwrap();
        let mut held = Vec::new();
        while let Ok(stream) = conn.accept_uni().await {
            held.push(stream);
        }
    });
    let conn = client.connect(addr, "localhost").unwrap().await.unwrap();
    let written: Arc<Vec<AtomicU64>> = Arc::new((0..STREAMS).map(|_| AtomicU64::new(0)).collect());
    let block = vec![1u8; 256 << 10];
    for i in 0..STREAMS {
        let mut send = conn.open_uni().await.unwrap();
        let (written, block) = (written.clone(), block.clone());
        tokio::spawn(async move {
            while let Ok(n) = send.write(&block).await {
                written[i].fetch_add(n as u64, Ordering::Relaxed);
            }
        });
    }
    let total = || written.iter().map(|w| w.load(Ordering::Relaxed)).sum::<u64>();

    // The sender says it is blocked by the tunnel's window once it has used it up.
    let deadline = Instant::now() + Duration::from_secs(20);
    while conn.stats().frame_tx.data_blocked == 0 {
        assert!(Instant::now() < deadline, "never blocked; {} bytes written", total());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let total = total();
    assert!(total <= u64::from(TUNNEL_WINDOW), "{total} bytes in flight");
    assert!(total > u64::from(TUNNEL_WINDOW) - (1 << 20), "blocked early, at {total} bytes");
    for (i, w) in written.iter().enumerate() {
        let w = w.load(Ordering::Relaxed);
        assert!(w <= u64::from(STREAM_WINDOW), "stream {i}: {w} bytes in flight");
    }
}
