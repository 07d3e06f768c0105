//! The aether hub: the control plane in one process.
//!
//! `api` serves the HTTP/WebSocket contract; `tunnel` accepts the QUIC
//! tunnels that VMs dial; `projects` drives VM life cycles through a
//! `compute` provider, and `reconcile` keeps the two in step; `db` is all
//! the SQL (with `pg` starting an embedded cluster when no database is
//! given); `auth` is passwords, tokens and tickets; `billing` is Stripe
//! and what it does to plans; `tls` the local CA; `events` and `metrics`
//! what is observed; `site` the public pages (the landing page and the
//! docs).

pub mod accounts;
pub mod api;
pub mod auth;
pub mod billing;
pub mod compute;
pub mod config;
pub mod dataplane;
pub mod db;
pub mod domain;
pub mod error;
pub mod events;
pub mod http;
pub mod idle;
pub mod metrics;
pub mod observer;
pub mod pg;
pub mod plans;
pub mod preview;
pub mod projects;
pub mod rate;
pub mod reconcile;
pub mod secrets;
pub mod site;
pub mod ssh;
pub mod tls;
pub mod tunnel;
pub mod usage;

use anyhow::Context;
use config::{ComputeKind, Config};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// Everything a request handler or background task can reach.
pub struct Hub {
    pub config: Config,
    pub db: db::Db,
    pub tokens: Arc<auth::Tokens>,
    /// The caller's projects and their tunnels, as the API's extractors see them.
    pub access: api::Access,
    pub tunnels: Arc<tunnel::Tunnels>,
    pub compute: Arc<dyn compute::Compute>,
    pub events: Arc<events::Events>,
    pub metrics: Arc<metrics::Metrics>,
    /// Identifies this hub process in the `tunnels` table.
    pub instance_id: String,
    pub web_dir: Option<PathBuf>,
    /// Where users reach the hub, e.g. `http://127.0.0.1:8080`.
    pub public_url: String,
    pub previews: Arc<preview::Previews>,
    /// Starts, stops and deletes projects' VMs.
    pub lifecycle: Arc<projects::Lifecycle>,
    /// The SSH jump host's state: agent keys' sync, open channels.
    pub ssh: Arc<ssh::Ssh>,
    /// Stripe, when billing is on.
    pub billing: Option<Arc<billing::Billing>>,
    /// Accounts: sessions, mailed links, abuse limits, deletion.
    pub accounts: accounts::Accounts,
    /// What keeps each VM awake (`idle`).
    pub activity: Arc<idle::Activity>,
}

/// Where a running hub listens, written to `{data_dir}/hub.json` at start.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Addresses {
    pub http: SocketAddr,
    pub tunnel: SocketAddr,
    /// The SSH jump host.
    #[serde(default)]
    pub ssh: Option<SocketAddr>,
}

fn aetherd_path(config: &Config) -> anyhow::Result<PathBuf> {
    if let Some(p) = &config.aetherd_bin {
        return Ok(p.clone());
    }
    let exe = std::env::current_exe().context("locating the hub's binary")?;
    let candidate = exe.with_file_name("aetherd");
    anyhow::ensure!(
        candidate.exists(),
        "aetherd not found next to {}; build it (cargo build --bins) or set AETHER_AETHERD_BIN",
        exe.display()
    );
    Ok(candidate)
}

/// How local VMs are isolated on this machine, as the configuration asks.
fn isolation(config: &Config) -> anyhow::Result<compute::local::Isolation> {
    use compute::local::Isolation;
    use config::IsolationMode;
    let found = match config.isolation {
        IsolationMode::Off => Err("AETHER_ISOLATION=off".to_owned()),
        _ => compute::sandbox::Sandbox::detect(&config.vm_rootfs),
    };
    match (found, config.isolation) {
        (Ok(sandbox), _) => {
            tracing::info!(rootfs = %config.vm_rootfs.display(), "local VMs are isolated");
            Ok(Isolation::Sandbox(sandbox))
        }
        (Err(why), IsolationMode::Required) => {
            anyhow::bail!("AETHER_ISOLATION=required, but local VMs can't be isolated here: {why}")
        }
        (Err(why), _) => {
            tracing::warn!(
                reason = %why,
                "LOCAL VMS ARE NOT ISOLATED: each runs as a process of this machine, with the hub's rights. \
                 This hub serves its first user only (other sign-ups are refused)."
            );
            Ok(Isolation::Off(why))
        }
    }
}

fn web_dir(config: &Config) -> Option<PathBuf> {
    match &config.web_dir {
        Some(d) => Some(d.clone()),
        None => {
            let d = PathBuf::from("web/dist");
            d.join("index.html").exists().then_some(d)
        }
    }
}

/// Runs the hub until `shutdown` is cancelled, then drains and stops.
pub async fn run(config: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    std::fs::create_dir_all(&config.data_dir).with_context(|| format!("creating {}", config.data_dir.display()))?;
    let data_dir = config.data_dir.canonicalize()?;

    let embedded = match &config.database_url {
        Some(_) => None,
        None => {
            let dir = data_dir.join("postgres");
            let password = hex::encode(tls::persistent_secret(&data_dir.join("secrets/postgres.key"), 32)?);
            let pg = tokio::task::spawn_blocking(move || pg::EmbeddedPg::start(&dir, &password)).await??;
            pg.check_login().await?;
            Some(pg)
        }
    };
    let options = match (&config.database_url, &embedded) {
        (Some(url), _) => url.parse().context("parsing DATABASE_URL")?,
        (None, Some(pg)) => pg.connect_options(),
        (None, None) => unreachable!("an embedded cluster exists when no URL is given"),
    };
    // Started again if it dies; stopped before the cluster is.
    let watching = CancellationToken::new();
    let watcher = embedded.clone().map(|pg| tokio::spawn(pg.watch(config.pg_restart_delay, watching.clone())));
    let result = serve(config, data_dir, options, shutdown).await;
    watching.cancel();
    if let Some(w) = watcher {
        let _ = w.await;
    }
    if let Some(pg) = embedded {
        tokio::task::spawn_blocking(move || pg.stop()).await?;
    }
    result
}

async fn serve(
    config: Config,
    data_dir: PathBuf,
    options: sqlx::postgres::PgConnectOptions,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let sealer = match &config.secrets_key {
        Some(hex) => secrets::Sealer::from_hex(hex)?,
        None => secrets::Sealer::new(&tls::persistent_secret(&data_dir.join("secrets/env.key"), 32)?)?,
    };
    let db = db::Db::connect(options, sealer).await.context("connecting to postgres")?;
    let jwt_secret = match &config.jwt_secret {
        Some(s) => s.as_bytes().to_vec(),
        None => tls::persistent_secret(&data_dir.join("secrets/jwt.key"), 32)?,
    };
    let tokens = Arc::new(auth::Tokens::new(&jwt_secret, config.supabase_jwt_secret.as_deref().map(str::as_bytes)));
    let identity = tls::local_identity(&data_dir.join("tls"), &[])?;
    let ca_file = identity.ca_file.clone();
    let reset_key = tls::persistent_secret(&data_dir.join("secrets/quic-reset.key"), 32)?;

    let listener =
        tokio::net::TcpListener::bind(config.listen).await.with_context(|| format!("binding {}", config.listen))?;
    let http_addr = listener.local_addr()?;
    let plane = dataplane::DataPlane::start(config.data_plane_threads).context("starting the data plane")?;
    let tunnel_server = tunnel::server_config(identity)?;
    let endpoint = tunnel::endpoint(config.tunnel_listen, &tunnel_server, &reset_key, plane.placer())?;
    let tunnel_addr = endpoint.local_addr()?;
    let ssh_listener = tokio::net::TcpListener::bind(config.ssh_listen)
        .await
        .with_context(|| format!("binding the ssh jump host on {}", config.ssh_listen))?;
    let ssh_addr = ssh_listener.local_addr()?;
    let dial_addr = if tunnel_addr.ip().is_unspecified() {
        SocketAddr::new([127, 0, 0, 1].into(), tunnel_addr.port())
    } else {
        tunnel_addr
    };

    let mut local = None;
    let compute: Arc<dyn compute::Compute> = match config.compute {
        ComputeKind::Local => {
            let provider = Arc::new(compute::local::LocalCompute::new(
                data_dir.join("vms"),
                aetherd_path(&config)?,
                dial_addr.to_string(),
                ca_file,
                isolation(&config)?,
            ));
            local = Some(provider.clone());
            provider
        }
        ComputeKind::Fly => {
            let fly = config.fly.clone().context(
                "AETHER_COMPUTE=fly needs FLY_API_TOKEN, the VMs' app (AETHER_FLY_APP or FLY_APP_NAME) and AETHER_FLY_IMAGE",
            )?;
            if config.tunnel_public_addr.is_none() {
                tracing::warn!(%dial_addr, "AETHER_TUNNEL_PUBLIC_ADDR is not set: Fly VMs will dial the tunnel's own address");
            }
            // The tunnel's certificate comes from the local CA: a VM can't be
            // handed its file, so it gets its text, and checks the name the
            // local certificate carries rather than the public host's.
            let hub = compute::fly::HubDial {
                addr: config.tunnel_public_addr.clone().unwrap_or_else(|| dial_addr.to_string()),
                ca_pem: Some(std::fs::read_to_string(&ca_file).context("reading the hub's CA")?),
                server_name: Some("aether-hub".into()),
            };
            Arc::new(compute::fly::FlyCompute::new(fly, hub)?)
        }
    };
    let tunnels = Arc::new(tunnel::Tunnels::new(config.preview_streams));
    let public_url =
        config.public_url.clone().unwrap_or_else(|| format!("http://{http_addr}")).trim_end_matches('/').to_owned();
    let preview_domain = config.preview_domain.clone().unwrap_or_else(|| "preview.localhost".into());
    let previews = preview::Previews::new(preview_domain, &public_url, &jwt_secret);
    let (ssh_host, ssh_port) =
        ssh::public_address(config.ssh_public_addr.as_deref(), config.public_url.as_deref(), ssh_addr);
    // Stored (sealed) in Postgres so that every replica and every redeploy
    // presents the key agents pinned.
    let legacy_key = data_dir.join("secrets/ssh_host_ed25519_key");
    let host_key = ssh::keys::host_key(&legacy_key, |initial| db.hub_secret("ssh_host_ed25519_key", initial)).await?;
    let events = Arc::new(events::Events::default());
    let ssh = Arc::new(ssh::Ssh::new(host_key, (ssh_host, ssh_port), db.clone(), tunnels.clone(), events.clone())?);
    let billing =
        config.stripe.as_ref().map(|s| billing::Billing::new(s, config.billing_grace).map(Arc::new)).transpose()?;
    match &config.stripe {
        Some(s) => tracing::info!(api = %s.api_base, "billing is on (Stripe)"),
        None => tracing::info!("billing is off: STRIPE_SECRET_KEY is not set"),
    }
    let mailer = accounts::mail::Mailer::new(
        config.accounts.smtp_url.as_deref(),
        data_dir.join("outbox"),
        &config.accounts.mail_from,
    )?;
    tracing::info!("mail goes to {}", mailer.describe());
    let access = api::Access {
        tokens: tokens.clone(),
        db: db.clone(),
        tunnels: tunnels.clone(),
        default_plan: config.default_plan.as_str().into(),
    };
    let activity = Arc::<idle::Activity>::default();
    let lifecycle = Arc::new(projects::Lifecycle::new(
        db.clone(),
        compute.clone(),
        tunnels.clone(),
        events.clone(),
        activity.clone(),
        &config,
    ));
    let accounts = accounts::Accounts {
        db: db.clone(),
        tokens: tokens.clone(),
        limits: Arc::default(),
        mailer: Arc::new(mailer),
        config: Arc::new(config.accounts.clone()),
        public_url: public_url.as_str().into(),
        default_plan: config.default_plan.as_str().into(),
        dummy_hash: auth::hash_password(auth::random_token(16)).await?.into(),
        unisolated: compute.unisolated().map(Arc::from),
        billing: billing.clone(),
        lifecycle: lifecycle.clone(),
    };
    let hub = Arc::new(Hub {
        accounts,
        billing,
        activity,
        lifecycle,
        ssh,
        web_dir: web_dir(&config),
        public_url,
        previews: Arc::new(previews),
        config,
        access,
        db,
        tokens,
        tunnels,
        compute,
        events,
        metrics: Arc::default(),
        instance_id: uuid::Uuid::new_v4().to_string(),
    });
    let control = Arc::new(observer::ControlPlane::new(hub.lifecycle.clone(), hub.previews.clone(), &hub.ssh));
    hub.ssh.set_wake(control.clone());
    projects::reconcile(&hub.lifecycle).await.context("reconciling projects with their VMs")?;
    // What ran and stopped while no hub watched is metered before anything else.
    if let Err(e) = usage::audit(&hub.lifecycle).await {
        tracing::warn!(error = format!("{e:#}"), "usage audit at start failed");
    }

    let addresses = Addresses { http: http_addr, tunnel: tunnel_addr, ssh: Some(ssh_addr) };
    std::fs::write(data_dir.join("hub.json"), serde_json::to_vec(&addresses)?)?;
    tracing::info!(http = %http_addr, tunnel = %tunnel_addr, data = %data_dir.display(), "aether hub listening");

    let tunnel_side = Arc::new(tunnel::Endpoint {
        tunnels: hub.tunnels.clone(),
        previews: hub.previews.clone(),
        db: hub.db.clone(),
        metrics: hub.metrics.clone(),
        heartbeat_interval: hub.config.heartbeat_interval,
        instance_id: hub.instance_id.clone(),
        observer: control.clone(),
    });
    let tunnels =
        tokio::spawn(tunnel::serve(endpoint.clone(), tunnel_server, tunnel_side, plane.placer(), shutdown.clone()));
    let jump = tokio::spawn(ssh::serve(ssh_listener, hub.ssh.clone(), shutdown.clone()));
    let limits = reconcile::Limits { orphan_grace: hub.config.orphan_grace, stuck_after: hub.config.stuck_after };
    let every = hub.config.reconcile_interval;
    let reconciler = tokio::spawn(reconcile::run(hub.lifecycle.clone(), every, limits, shutdown.clone()));
    tokio::spawn(usage::run(hub.lifecycle.clone(), hub.config.meter_interval, shutdown.clone()));
    let idle_timeout = hub.config.idle_timeout;
    tokio::spawn(idle::run(hub.lifecycle.clone(), idle_timeout, hub.config.meter_interval, shutdown.clone()));
    if let Some(local) = local {
        tokio::spawn(local.supervise(shutdown.clone()));
    }
    let preview_side = Arc::new(preview::PreviewHub {
        previews: hub.previews.clone(),
        tunnels: hub.tunnels.clone(),
        db: hub.db.clone(),
        tokens: hub.tokens.clone(),
        public_url: hub.public_url.clone(),
        send_timeout: hub.config.send_timeout,
        express: hub.config.preview_express,
        control: control.clone(),
    });
    http::serve(listener, api::app(hub.clone()), preview_side, plane.placer(), shutdown.clone()).await;
    shutdown.cancel();
    let _ = tunnels.await;
    let _ = jump.await;
    let _ = reconciler.await;
    endpoint.wait_idle().await;
    hub.db.pool.close().await;
    plane.stop().await;
    Ok(())
}
