//! The tunnel's transport settings over real QUIC on loopback: a bulk
//! transfer runs on the large datagrams MTU discovery finds, without the
//! connection falling back to small ones (as it does when the socket hands the
//! kernel ten large packets in one segmentation-offload send, more than a
//! datagram may carry, and the kernel refuses it).

use aether_protocol::transport::{MAX_UDP_PAYLOAD, TunnelRuntime, transport_config, tune_endpoint, udp_socket};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn endpoint(server: Option<quinn::ServerConfig>) -> quinn::Endpoint {
    let mut config = quinn::EndpointConfig::default();
    tune_endpoint(&mut config);
    let socket = udp_socket("127.0.0.1:0".parse().unwrap()).unwrap();
    quinn::Endpoint::new(config, server, socket, Arc::new(TunnelRuntime)).unwrap()
}

#[tokio::test]
async fn bulk_data_travels_in_large_datagrams_on_loopback() {
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
    client_config.transport_config(Arc::new(transport_config()));
    let mut client = endpoint(None);
    client.set_default_client_config(client_config);

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
