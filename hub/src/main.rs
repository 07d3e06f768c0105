//! `aether-hub`: parses flags and environment into a `Config` and runs the hub.

use aether_hub::config::{ComputeKind, Config};
use clap::Parser;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(name = "aether-hub", version, about = "The aether control plane")]
struct Args {
    /// HTTP listen address.
    #[arg(long, env = "AETHER_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// QUIC tunnel listen address (UDP).
    #[arg(long, env = "AETHER_TUNNEL_LISTEN", default_value = "127.0.0.1:4433")]
    tunnel_listen: SocketAddr,
    /// SSH jump host listen address.
    #[arg(long, env = "AETHER_SSH_LISTEN", default_value = "127.0.0.1:2222")]
    ssh_listen: SocketAddr,
    /// Where the hub keeps its state (embedded database, CA, local VMs).
    #[arg(long, env = "AETHER_DATA_DIR", default_value = ".data")]
    data_dir: PathBuf,
    /// Base URL users reach the hub at.
    #[arg(long, env = "AETHER_PUBLIC_URL")]
    public_url: Option<String>,
    #[arg(long, env = "AETHER_PREVIEW_DOMAIN")]
    preview_domain: Option<String>,
    #[arg(long, env = "AETHER_COMPUTE", value_enum, default_value = "local")]
    compute: ComputeKind,
    #[arg(long, env = "AETHER_AETHERD_BIN")]
    aetherd_bin: Option<PathBuf>,
    /// Postgres URL; unset starts an embedded cluster under the data folder.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    #[arg(long, env = "AETHER_JWT_SECRET", hide_env_values = true)]
    jwt_secret: Option<String>,
    #[arg(long, env = "SUPABASE_JWT_SECRET", hide_env_values = true)]
    supabase_jwt_secret: Option<String>,
    /// The built web app (default: web/dist when present).
    #[arg(long, env = "AETHER_WEB_DIR")]
    web_dir: Option<PathBuf>,
    /// Interval VMs send heartbeats at, in milliseconds.
    #[arg(long, env = "AETHER_HEARTBEAT_INTERVAL_MS", default_value_t = 15_000)]
    heartbeat_interval_ms: u64,
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,sqlx=warn".into()),
        )
        .with_ansi(false)
        .init();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let a = Args::parse();
    let config = Config {
        listen: a.listen,
        tunnel_listen: a.tunnel_listen,
        ssh_listen: a.ssh_listen,
        data_dir: a.data_dir,
        public_url: a.public_url,
        preview_domain: a.preview_domain,
        compute: a.compute,
        aetherd_bin: a.aetherd_bin,
        database_url: a.database_url.filter(|s| !s.is_empty()),
        jwt_secret: a.jwt_secret,
        supabase_jwt_secret: a.supabase_jwt_secret.filter(|s| !s.is_empty()),
        web_dir: a.web_dir,
        heartbeat_interval: Duration::from_millis(a.heartbeat_interval_ms.max(100)),
        wait_timeout: Duration::from_secs(60),
    };
    tokio::runtime::Runtime::new()?.block_on(async {
        let shutdown = CancellationToken::new();
        let signals = shutdown.clone();
        tokio::spawn(async move {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("sigterm handler");
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            tracing::info!("shutting down");
            signals.cancel();
        });
        aether_hub::run(config, shutdown).await
    })
}
