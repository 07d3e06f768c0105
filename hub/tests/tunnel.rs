//! The tunnel endpoint refuses what it must: wrong machine tokens, unknown
//! projects and oversized frames.

mod support;

use aether_protocol::{ALPN, FrameCodec, pb};
use futures_util::{SinkExt, StreamExt};
use std::sync::Arc;
use std::time::Duration;
use support::TestHub;
use tokio_util::codec::{FramedRead, FramedWrite};

async fn dial(hub: &TestHub) -> quinn::Connection {
    let mut roots = rustls::RootCertStore::empty();
    let pem = std::fs::read(hub.data.join("tls/ca.pem")).unwrap();
    for c in rustls_pemfile::certs(&mut pem.as_slice()) {
        roots.add(c.unwrap()).unwrap();
    }
    let mut tls = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let config = quinn::ClientConfig::new(Arc::new(quinn::crypto::rustls::QuicClientConfig::try_from(tls).unwrap()));
    let mut ep = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    ep.set_default_client_config(config);
    ep.connect(hub.tunnel, "localhost").unwrap().await.expect("tls handshake with the hub's CA")
}

async fn closed_with(conn: &quinn::Connection) -> (u64, String) {
    match tokio::time::timeout(Duration::from_secs(10), conn.closed()).await.expect("hub closes the tunnel") {
        quinn::ConnectionError::ApplicationClosed(c) => {
            (c.error_code.into_inner(), String::from_utf8_lossy(&c.reason).into_owned())
        }
        other => panic!("unexpected close: {other}"),
    }
}

fn hello(project: &str, token: &str) -> pb::AgentMessage {
    pb::AgentMessage {
        msg: Some(pb::agent_message::Msg::Hello(pb::Hello {
            project_id: project.into(),
            machine_token: token.into(),
            boot_id: "test".into(),
            agent_version: "test".into(),
            capabilities: vec![],
            home: vec![],
            boot_key: vec![1; 32],
        })),
    }
}

#[tokio::test]
async fn wrong_machine_tokens_and_unknown_projects_are_refused() {
    let hub = TestHub::start().await;
    let api = hub.user().await;
    let id = api.running_project().await;

    for (project, token) in
        [(id.as_str(), "not-the-token"), ("00000000-0000-0000-0000-000000000000", "x"), ("garbage", "x")]
    {
        let conn = dial(&hub).await;
        let (send, recv) = conn.open_bi().await.unwrap();
        let mut tx = FramedWrite::new(send, FrameCodec::<pb::AgentMessage>::default());
        tx.send(hello(project, token)).await.unwrap();
        let mut rx = FramedRead::new(recv, FrameCodec::<pb::HubMessage>::default());
        if let Some(Ok(msg)) = rx.next().await {
            assert!(matches!(msg.msg, Some(pb::hub_message::Msg::Reject(_))), "{msg:?}");
        }
        let (code, reason) = closed_with(&conn).await;
        assert_eq!((code, reason.as_str()), (1, "unauthorized"), "{project}");
    }
    // The real VM's tunnel was not disturbed.
    let mut t = api.terminal(&id, "").await;
    t.send("echo fine-$((2*2))\n").await;
    t.expect("fine-4").await;
    let (_, m) = api.get("/metrics").await;
    assert!(m.as_str().unwrap().contains("aether_tunnels_rejected_total 3"), "{m}");
}

#[tokio::test]
async fn an_oversized_frame_closes_the_tunnel() {
    let hub = TestHub::start().await;
    let conn = dial(&hub).await;
    let (mut send, _recv) = conn.open_bi().await.unwrap();
    // A length prefix claiming 512 MiB, then a little of it.
    let mut frame = Vec::new();
    prost::encoding::encode_varint(512 << 20, &mut frame);
    frame.extend_from_slice(&[0u8; 1024]);
    send.write_all(&frame).await.unwrap();
    let (code, reason) = closed_with(&conn).await;
    assert_eq!((code, reason.as_str()), (2, "frame too large"));
}
