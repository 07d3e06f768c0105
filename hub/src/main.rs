//! `aether-hub`: parses flags and environment into a `Config` and runs the hub.

use aether_hub::compute::fly::FlyConfig;
use aether_hub::config::{
    ComputeKind, Config, DEFAULT_BILLING_GRACE, DEFAULT_PREVIEW_STREAMS, DEFAULT_VM_ROOTFS, IsolationMode, StripeConfig,
};
use aether_transport::MAX_HUB_STREAMS;
use anyhow::Context;
use clap::Parser;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// mimalloc: the proxy paths allocate per request, and glibc's malloc was a
/// tenth of the hub's CPU time under load.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "aether-hub", version, about = "The aether control plane")]
struct Args {
    /// HTTP listen address.
    #[arg(long, env = "AETHER_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// QUIC tunnel listen address (UDP).
    #[arg(long, env = "AETHER_TUNNEL_LISTEN", default_value = "127.0.0.1:4433")]
    tunnel_listen: String,
    /// SSH jump host listen address.
    #[arg(long, env = "AETHER_SSH_LISTEN", default_value = "127.0.0.1:2222")]
    ssh_listen: SocketAddr,
    /// host:port agents reach the jump host at (default: the public URL's host, the jump host's port).
    #[arg(long, env = "AETHER_SSH_PUBLIC_ADDR")]
    ssh_public_addr: Option<String>,
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
    /// Isolation of local VMs: auto (when the machine can), required, off.
    #[arg(long, env = "AETHER_ISOLATION", value_enum, default_value = "auto")]
    isolation: IsolationMode,
    /// The VM image's root file system for isolated local VMs.
    #[arg(long, env = "AETHER_VM_ROOTFS", default_value = DEFAULT_VM_ROOTFS)]
    vm_rootfs: PathBuf,
    /// How long a running VM may go without a tunnel before it is restarted, in milliseconds.
    #[arg(long, env = "AETHER_REVIVE_AFTER_MS", default_value_t = 30_000)]
    revive_after_ms: u64,
    /// How often the meter audits running machines with the provider and idle VMs are looked for, in milliseconds.
    #[arg(long, env = "AETHER_METER_INTERVAL_MS", default_value_t = 5_000)]
    meter_interval_ms: u64,
    /// Seconds without activity after which a VM stops; overrides every plan's idle timeout.
    #[arg(long, env = "AETHER_IDLE_TIMEOUT_S")]
    idle_timeout_s: Option<u64>,
    /// Postgres URL; unset starts an embedded cluster under the data folder.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    #[arg(long, env = "AETHER_JWT_SECRET", hide_env_values = true)]
    jwt_secret: Option<String>,
    #[arg(long, env = "SUPABASE_JWT_SECRET", hide_env_values = true)]
    supabase_jwt_secret: Option<String>,
    /// Key sealing project env vars at rest: 64 hex digits (default: one
    /// generated under the data folder).
    #[arg(long, env = "AETHER_SECRETS_KEY", hide_env_values = true)]
    secrets_key: Option<String>,
    /// The built web app (default: web/dist when present).
    #[arg(long, env = "AETHER_WEB_DIR")]
    web_dir: Option<PathBuf>,
    /// Interval VMs send heartbeats at, in milliseconds.
    #[arg(long, env = "AETHER_HEARTBEAT_INTERVAL_MS", default_value_t = 15_000)]
    heartbeat_interval_ms: u64,
    /// Largest file one API write may upload, in bytes.
    #[arg(long, env = "AETHER_MAX_WRITE_BYTES", default_value_t = 100 << 20)]
    max_write_bytes: u64,
    /// Tunnel streams one project's previews may hold at once (aetherd accepts 1024 per tunnel).
    #[arg(long, env = "AETHER_PREVIEW_STREAMS", default_value_t = DEFAULT_PREVIEW_STREAMS as u32,
          value_parser = clap::value_parser!(u32).range(1..i64::from(MAX_HUB_STREAMS)))]
    preview_streams: u32,
    /// Plain preview requests take the express lane (`false`: all go through hyper).
    #[arg(long, env = "AETHER_PREVIEW_EXPRESS", default_value_t = true, action = clap::ArgAction::Set)]
    preview_express: bool,
    /// Seconds a client may accept none of a response's bytes before its connection is closed.
    #[arg(long, env = "AETHER_SEND_TIMEOUT", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    send_timeout: u64,
    /// The plan new users start on.
    #[arg(long, env = "AETHER_DEFAULT_PLAN", default_value = "free", value_parser = ["free", "pro", "team"])]
    default_plan: String,
    /// Threads that run the tunnels, previews and WebSockets (default: one per CPU).
    #[arg(long, env = "AETHER_DATA_PLANE_THREADS")]
    data_plane_threads: Option<usize>,
    /// host:port VMs dial for the tunnel (default: the tunnel listen address).
    #[arg(long, env = "AETHER_TUNNEL_PUBLIC_ADDR")]
    tunnel_public_addr: Option<String>,
    /// How often reconciliation runs, in milliseconds.
    #[arg(long, env = "AETHER_RECONCILE_INTERVAL_MS", default_value_t = 60_000)]
    reconcile_interval_ms: u64,
    /// How long a machine without a project is kept before it is destroyed, in milliseconds.
    #[arg(long, env = "AETHER_ORPHAN_GRACE_MS", default_value_t = 600_000)]
    orphan_grace_ms: u64,
    /// How long a transient state may last before it is reported, in milliseconds.
    #[arg(long, env = "AETHER_STUCK_AFTER_MS", default_value_t = 300_000)]
    stuck_after_ms: u64,
    /// The header a proxy in front of the hub puts the client's address in
    /// (e.g. Fly-Client-IP); unset: the connection's peer address.
    #[arg(long, env = "AETHER_CLIENT_IP_HEADER")]
    client_ip_header: Option<String>,
    /// How long the embedded database stays down before the hub restarts
    /// it, in milliseconds (doubling while it keeps dying).
    #[arg(long, env = "AETHER_PG_RESTART_DELAY_MS", default_value_t = 1_000)]
    pg_restart_delay_ms: u64,
    #[command(flatten)]
    fly: FlyArgs,
    #[command(flatten)]
    stripe: StripeArgs,
    #[command(flatten)]
    accounts: AccountsArgs,
}

/// Billing through Stripe: on when `STRIPE_SECRET_KEY` is set.
#[derive(clap::Args)]
struct StripeArgs {
    #[arg(long, env = "STRIPE_SECRET_KEY", hide_env_values = true)]
    stripe_secret_key: Option<String>,
    /// Signs the webhook's events (whsec_...).
    #[arg(long, env = "STRIPE_WEBHOOK_SECRET", hide_env_values = true)]
    stripe_webhook_secret: Option<String>,
    /// The Stripe price of the pro plan (price_...).
    #[arg(long, env = "STRIPE_PRICE_PRO")]
    stripe_price_pro: Option<String>,
    /// The Stripe price of the team plan (price_...).
    #[arg(long, env = "STRIPE_PRICE_TEAM")]
    stripe_price_team: Option<String>,
    /// The Stripe API's base URL, without /v1.
    #[arg(long, env = "STRIPE_API_BASE", default_value = "https://api.stripe.com")]
    stripe_api_base: String,
    /// Seconds a failed payment leaves the paid plan in place.
    #[arg(long, env = "AETHER_BILLING_GRACE_S", default_value_t = DEFAULT_BILLING_GRACE.as_secs())]
    billing_grace_s: u64,
}

/// `None` without a secret key (billing off); with one, everything else
/// billing needs must be set too, or the hub would take payments it can't
/// turn into plans.
fn stripe_config(s: StripeArgs) -> anyhow::Result<Option<StripeConfig>> {
    let set = |v: Option<String>| v.filter(|s| !s.trim().is_empty());
    let Some(secret_key) = set(s.stripe_secret_key) else {
        return Ok(None);
    };
    let need = |v: Option<String>, name: &str| {
        set(v).with_context(|| format!("STRIPE_SECRET_KEY is set (billing on), so {name} must be set too"))
    };
    Ok(Some(StripeConfig {
        secret_key,
        webhook_secret: need(s.stripe_webhook_secret, "STRIPE_WEBHOOK_SECRET")?,
        price_pro: need(s.stripe_price_pro, "STRIPE_PRICE_PRO")?,
        price_team: need(s.stripe_price_team, "STRIPE_PRICE_TEAM")?,
        api_base: s.stripe_api_base.trim_end_matches('/').to_owned(),
    }))
}

/// Accounts: sessions' tokens, mail, the unverified limit.
#[derive(clap::Args)]
struct AccountsArgs {
    /// Lifetime of an access token, in seconds (a refresh token renews it).
    #[arg(long, env = "AETHER_ACCESS_TOKEN_TTL_S", default_value_t = 900)]
    access_token_ttl_s: u64,
    /// The mail server, `smtp://host:port` (`?tls=required` for STARTTLS)
    /// or `smtps://user:pass@host`; unset: mail goes to `{data_dir}/outbox/`.
    #[arg(long, env = "AETHER_SMTP_URL", hide_env_values = true)]
    smtp_url: Option<String>,
    /// The From of the hub's mail.
    #[arg(long, env = "AETHER_MAIL_FROM", default_value = "aether <aether@localhost>")]
    mail_from: String,
    /// How many projects an account with an unverified address may run at once.
    #[arg(long, env = "AETHER_UNVERIFIED_PROJECTS", default_value_t = 1)]
    unverified_projects: i64,
}

/// The Fly Machines provider's settings (`AETHER_COMPUTE=fly`).
#[derive(clap::Args)]
struct FlyArgs {
    /// The Machines API's root URL.
    #[arg(long, env = "FLY_API_URL", default_value = "https://api.machines.dev")]
    fly_api_url: String,
    #[arg(long, env = "FLY_API_TOKEN", hide_env_values = true)]
    fly_api_token: Option<String>,
    /// The Fly app of the project VMs (on Fly, FLY_APP_NAME is the hub's own app).
    #[arg(long, env = "AETHER_FLY_APP")]
    fly_app: Option<String>,
    #[arg(long, env = "FLY_APP_NAME", hide = true)]
    fly_app_name: Option<String>,
    /// Region of new VMs (default: FLY_REGION).
    #[arg(long, env = "AETHER_FLY_REGION")]
    fly_region: Option<String>,
    #[arg(long, env = "FLY_REGION", hide = true)]
    fly_region_default: Option<String>,
    /// The VM image, built from Dockerfile.vm.
    #[arg(long, env = "AETHER_FLY_IMAGE")]
    fly_image: Option<String>,
    #[arg(long, env = "AETHER_FLY_VOLUME_GB", default_value_t = 10)]
    fly_volume_gb: u32,
    #[arg(long, env = "AETHER_FLY_CPUS", default_value_t = 1)]
    fly_cpus: u32,
    #[arg(long, env = "AETHER_FLY_MEMORY_MB", default_value_t = 1024)]
    fly_memory_mb: u32,
}

fn fly_config(f: FlyArgs) -> anyhow::Result<FlyConfig> {
    let set = |v: Option<String>| v.filter(|s| !s.trim().is_empty());
    let token = set(f.fly_api_token).context("AETHER_COMPUTE=fly: FLY_API_TOKEN is not set")?;
    let app = set(f.fly_app)
        .or(set(f.fly_app_name))
        .context("AETHER_COMPUTE=fly: set AETHER_FLY_APP to the Fly app of the project VMs")?;
    let region = set(f.fly_region)
        .or(set(f.fly_region_default))
        .context("AETHER_COMPUTE=fly: set AETHER_FLY_REGION (or FLY_REGION)")?;
    let image = set(f.fly_image).context("AETHER_COMPUTE=fly: set AETHER_FLY_IMAGE to the VM image")?;
    let mut config = FlyConfig::new(&f.fly_api_url, &token, &app, &region, &image);
    config.volume_size_gb = f.fly_volume_gb.max(1);
    config.cpus = f.fly_cpus.max(1);
    config.memory_mb = f.fly_memory_mb.max(256);
    Ok(config)
}

/// A listen address that may name a host (on Fly, UDP must be bound to
/// `fly-global-services:PORT`).
fn resolve(addr: &str) -> anyhow::Result<SocketAddr> {
    use anyhow::Context;
    use std::net::ToSocketAddrs;
    addr.to_socket_addrs()
        .with_context(|| format!("resolving {addr}"))?
        .next()
        .with_context(|| format!("no address for {addr}"))
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info,sqlx=warn".into()),
        )
        .with_ansi(false)
        .init();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let a = Args::parse();
    let fly = match a.compute {
        ComputeKind::Fly => Some(fly_config(a.fly)?),
        ComputeKind::Local => None,
    };
    let billing_grace = Duration::from_secs(a.stripe.billing_grace_s);
    let stripe = stripe_config(a.stripe)?;
    let config = Config {
        listen: a.listen,
        tunnel_listen: resolve(&a.tunnel_listen)?,
        ssh_listen: a.ssh_listen,
        ssh_public_addr: a.ssh_public_addr.filter(|s| !s.is_empty()),
        data_dir: a.data_dir,
        public_url: a.public_url,
        preview_domain: a.preview_domain,
        compute: a.compute,
        aetherd_bin: a.aetherd_bin,
        isolation: a.isolation,
        vm_rootfs: a.vm_rootfs,
        revive_after: Duration::from_millis(a.revive_after_ms),
        database_url: a.database_url.filter(|s| !s.is_empty()),
        jwt_secret: a.jwt_secret,
        supabase_jwt_secret: a.supabase_jwt_secret.filter(|s| !s.is_empty()),
        secrets_key: a.secrets_key.filter(|s| !s.is_empty()),
        web_dir: a.web_dir,
        heartbeat_interval: Duration::from_millis(a.heartbeat_interval_ms.max(100)),
        wait_timeout: Duration::from_secs(60),
        max_write_bytes: a.max_write_bytes,
        preview_streams: a.preview_streams as usize,
        preview_express: a.preview_express,
        send_timeout: Duration::from_secs(a.send_timeout),
        default_plan: a.default_plan,
        data_plane_threads: a
            .data_plane_threads
            .filter(|n| *n > 0)
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
        tunnel_public_addr: a.tunnel_public_addr.filter(|s| !s.is_empty()),
        fly,
        reconcile_interval: Duration::from_millis(a.reconcile_interval_ms.max(50)),
        meter_interval: Duration::from_millis(a.meter_interval_ms.max(100)),
        idle_timeout: a.idle_timeout_s.filter(|s| *s > 0).map(Duration::from_secs),
        orphan_grace: Duration::from_millis(a.orphan_grace_ms),
        stuck_after: Duration::from_millis(a.stuck_after_ms),
        client_ip_header: a.client_ip_header.filter(|s| !s.trim().is_empty()).map(Into::into),
        pg_restart_delay: Duration::from_millis(a.pg_restart_delay_ms),
        stripe,
        billing_grace,
        accounts: aether_hub::config::AccountsConfig {
            access_ttl: Duration::from_secs(a.accounts.access_token_ttl_s.max(1)),
            smtp_url: a.accounts.smtp_url.filter(|s| !s.trim().is_empty()),
            mail_from: a.accounts.mail_from,
            unverified_projects: a.accounts.unverified_projects,
        },
    };
    tokio::runtime::Runtime::new()?.block_on(async {
        let shutdown = CancellationToken::new();
        let signals = shutdown.clone();
        tokio::spawn(async move {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("sigterm handler");
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

#[cfg(test)]
mod tests {
    use super::*;

    fn stripe(args: &[&str]) -> anyhow::Result<Option<StripeConfig>> {
        let a = Args::try_parse_from([&["aether-hub"], args].concat())?;
        stripe_config(a.stripe)
    }

    #[test]
    fn billing_is_off_without_a_key_and_needs_everything_with_one() {
        assert!(stripe(&[]).unwrap().is_none());
        assert!(stripe(&["--stripe-secret-key", ""]).unwrap().is_none());
        let half = stripe(&["--stripe-secret-key", "sk_test_1", "--stripe-price-pro", "price_1"]);
        assert!(format!("{:#}", half.unwrap_err()).contains("STRIPE_WEBHOOK_SECRET"));
        let full = stripe(&[
            "--stripe-secret-key",
            "sk_test_1",
            "--stripe-webhook-secret",
            "whsec_1",
            "--stripe-price-pro",
            "price_pro",
            "--stripe-price-team",
            "price_team",
            "--stripe-api-base",
            "http://127.0.0.1:1234/",
        ])
        .unwrap()
        .unwrap();
        assert_eq!((full.price_team.as_str(), full.api_base.as_str()), ("price_team", "http://127.0.0.1:1234"));
        assert!(!format!("{full:?}").contains("sk_test_1"), "the key is redacted");
    }
}
