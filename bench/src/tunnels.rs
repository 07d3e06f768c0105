//! Many idle tunnels from one process, to measure the hub's memory per tunnel.
//!
//! Projects and their machine tokens are written straight into the hub's
//! database (only a benchmark does this), then each tunnel dials the hub and
//! says Hello like aetherd would, and stays idle.

use crate::hub::Hub;
use aether_protocol::{ALPN, FrameCodec, pb};
use futures_util::{SinkExt, StreamExt};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::codec::{FramedRead, FramedWrite};

pub struct Tunnels {
    pub connected: usize,
    pub before: u64,
    pub after: u64,
}

async fn settle_rss(pid: u32) -> u64 {
    tokio::time::sleep(Duration::from_millis(500)).await;
    crate::rss(pid)
}

pub async fn measure(hub: &Hub, n: usize) -> anyhow::Result<Tunnels> {
    // The embedded cluster lets in only the hub's user with the hub's password.
    let key = std::fs::read(hub.data.join("secrets/postgres.key"))?;
    let password: String = key.iter().map(|b| format!("{b:02x}")).collect();
    let opts = sqlx::postgres::PgConnectOptions::new()
        .socket(hub.data.join("postgres/socket"))
        .port(5432)
        .username("postgres")
        .password(&password)
        .database("postgres");
    let pool = sqlx::PgPool::connect_with(opts).await?;
    let owner = uuid::Uuid::new_v4();
    sqlx::query("INSERT INTO users (id, email) VALUES ($1, 'tunnels@example.com')").bind(owner).execute(&pool).await?;
    let mut projects = Vec::with_capacity(n);
    for i in 0..n {
        let id = uuid::Uuid::new_v4();
        let token = format!("bench-token-{i}-{}", uuid::Uuid::new_v4());
        sqlx::query("INSERT INTO projects (id, owner_id, name, machine_token_hash) VALUES ($1, $2, 'tunnel', $3)")
            .bind(id)
            .bind(owner)
            .bind(Sha256::digest(token.as_bytes()).to_vec())
            .execute(&pool)
            .await?;
        projects.push((id, token));
    }

    let mut roots = rustls::RootCertStore::empty();
    let pem = std::fs::read(hub.data.join("tls/ca.pem"))?;
    for c in rustls_pemfile::certs(&mut pem.as_slice()) {
        roots.add(c?)?;
    }
    let mut tls = rustls::ClientConfig::builder_with_provider(Arc::new(aether_transport::crypto_provider()))
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let mut config = quinn::ClientConfig::new(Arc::new(quinn::crypto::rustls::QuicClientConfig::try_from(tls)?));
    let mut transport = quinn::TransportConfig::default();
    transport.keep_alive_interval(Some(Duration::from_secs(5)));
    config.transport_config(Arc::new(transport));
    let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse()?)?;
    endpoint.set_default_client_config(config);

    let before = settle_rss(hub.pid()).await;
    let started = Instant::now();
    let conns = futures_util::stream::iter(projects)
        .map(|(id, token)| {
            let endpoint = endpoint.clone();
            let addr = hub.tunnel;
            async move {
                let conn = endpoint.connect(addr, "localhost")?.await?;
                let (send, recv) = conn.open_bi().await?;
                let mut tx = FramedWrite::new(send, FrameCodec::<pb::AgentMessage>::default());
                let mut rx = FramedRead::new(recv, FrameCodec::<pb::HubMessage>::default());
                let hello = pb::Hello {
                    project_id: id.to_string(),
                    machine_token: token,
                    boot_id: "bench".into(),
                    agent_version: "bench".into(),
                    capabilities: vec![],
                    home: vec![],
                    boot_key: uuid::Uuid::new_v4().as_bytes().repeat(2),
                };
                tx.send(pb::AgentMessage { msg: Some(pb::agent_message::Msg::Hello(hello)) }).await?;
                match rx.next().await {
                    Some(Ok(pb::HubMessage { msg: Some(pb::hub_message::Msg::Welcome(_)) })) => {}
                    other => anyhow::bail!("no welcome: {other:?}"),
                }
                anyhow::Ok((conn, tx, rx))
            }
        })
        .buffer_unordered(32)
        .collect::<Vec<_>>()
        .await;
    let open: Vec<_> = conns.into_iter().collect::<Result<_, _>>()?;
    eprintln!("  {} tunnels up in {:.1} s", open.len(), started.elapsed().as_secs_f64());
    let after = settle_rss(hub.pid()).await;
    let connected = open.len();
    drop(open);
    endpoint.close(0u32.into(), b"done");
    Ok(Tunnels { connected, before, after })
}
