//! The hub's configuration as a plain struct: `main` fills it from flags and
//! environment, tests build it directly.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Which compute provider runs project VMs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ComputeKind {
    /// aetherd processes on this machine.
    Local,
    /// Fly Machines.
    Fly,
}

/// Whether local VMs must be isolated (`compute::sandbox`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum IsolationMode {
    /// Isolate when this machine can; else run plain processes, serving
    /// one user only, and say why.
    Auto,
    /// Refuse to start without isolation (CI, any shared machine).
    Required,
    /// Plain processes, serving one user only.
    Off,
}

/// Everything the hub needs to run.
#[derive(Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub tunnel_listen: SocketAddr,
    pub ssh_listen: SocketAddr,
    /// `host:port` agents reach the jump host at; default: the public URL's
    /// host (or the listen address) with the jump host's port.
    pub ssh_public_addr: Option<String>,
    pub data_dir: PathBuf,
    /// Base URL users reach the hub at; default `http://{listen}`.
    pub public_url: Option<String>,
    pub preview_domain: Option<String>,
    pub compute: ComputeKind,
    /// The aetherd binary for local VMs; default: next to the hub's binary.
    pub aetherd_bin: Option<PathBuf>,
    /// Whether local VMs must be isolated.
    pub isolation: IsolationMode,
    /// The VM image's root file system for isolated local VMs
    /// (`scripts/vm-rootfs.sh` builds it).
    pub vm_rootfs: PathBuf,
    /// How long a VM the provider says runs may go without a tunnel before
    /// the hub restarts it (its aetherd hangs or was stopped).
    pub revive_after: Duration,
    /// Postgres to use; `None` starts an embedded cluster under `data_dir`.
    pub database_url: Option<String>,
    /// Secret for the hub's own tokens; `None` generates one under `data_dir`.
    pub jwt_secret: Option<String>,
    /// When set, Supabase Auth tokens signed with it are accepted too.
    pub supabase_jwt_secret: Option<String>,
    /// Key sealing project env vars at rest (64 hex digits); `None`
    /// generates one under `data_dir`.
    pub secrets_key: Option<String>,
    /// Built web app to serve at `/`; default `web/dist` if it exists.
    pub web_dir: Option<PathBuf>,
    pub heartbeat_interval: Duration,
    /// How long `?wait=true` waits for a VM.
    pub wait_timeout: Duration,
    /// Largest file one API write may upload.
    pub max_write_bytes: u64,
    /// How many tunnel streams one project's previews may hold at once.
    /// aetherd accepts `MAX_HUB_STREAMS` per tunnel; the rest stay free for
    /// terminals, files and SSH.
    pub preview_streams: usize,
    /// Whether plain preview requests take the express lane (on by
    /// default); off, every preview request goes through hyper. For
    /// measuring what the lane buys, or working around a fault in it.
    pub preview_express: bool,
    /// How long a client may accept none of a response's bytes before its
    /// connection is closed (nginx's `send_timeout`): a preview client that
    /// stops reading then lets go of its tunnel stream and what the stream
    /// holds.
    pub send_timeout: Duration,
    /// The plan new users start on (`free`, `pro` or `team`): a hub run for
    /// oneself or a team, with billing off, can start everyone on `team`.
    pub default_plan: String,
    /// Threads that run the tunnels and their previews' and WebSockets'
    /// connections (see `dataplane`).
    pub data_plane_threads: usize,
    /// `host:port` VMs dial for the tunnel; default: the tunnel's listen
    /// address (loopback when that is unspecified).
    pub tunnel_public_addr: Option<String>,
    /// The Fly Machines provider's settings, needed when `compute` is `Fly`.
    pub fly: Option<crate::compute::fly::FlyConfig>,
    /// How often reconciliation compares the provider's machines with the database.
    pub reconcile_interval: Duration,
    /// How often the meter asks the provider which machines run (closing
    /// usage records the hub missed) and the idle sweep runs.
    pub meter_interval: Duration,
    /// Overrides every plan's idle timeout (self-hosting, tests).
    pub idle_timeout: Option<Duration>,
    /// How long a machine without a project is left alone before it is destroyed.
    pub orphan_grace: Duration,
    /// How long a project or machine may stay in a transient state before it is reported.
    pub stuck_after: Duration,
    /// A header a proxy in front of the hub sets to the client's address
    /// (`Fly-Client-IP`, `X-Forwarded-For`); `None`: the connection's peer.
    /// Abuse limits count by this address, so name a header only when every
    /// request comes through a proxy that sets it.
    pub client_ip_header: Option<std::sync::Arc<str>>,
    /// How long the embedded database's cluster stays down, once it is seen
    /// down, before the hub starts it again (doubling while it keeps dying).
    pub pg_restart_delay: Duration,
    /// Stripe, when billing is on (`STRIPE_SECRET_KEY` set); `None`: billing
    /// is off and plans change only by hand.
    pub stripe: Option<StripeConfig>,
    /// How long a failed payment leaves the paid plan in place.
    pub billing_grace: Duration,
    /// Accounts: access tokens' lifetime, mail, the unverified limit.
    pub accounts: AccountsConfig,
}

/// How accounts behave: sessions' tokens, mail, and what an unverified
/// account may do.
#[derive(Clone)]
pub struct AccountsConfig {
    /// Lifetime of an access token (a refresh token renews it).
    pub access_ttl: Duration,
    /// `smtp://`/`smtps://` URL of the mail server; `None`: mail is
    /// written to `{data_dir}/outbox/`.
    pub smtp_url: Option<String>,
    /// The From of the hub's mail.
    pub mail_from: String,
    /// How many projects an account with an unverified address may run at once.
    pub unverified_projects: i64,
}

impl Default for AccountsConfig {
    fn default() -> Self {
        Self {
            access_ttl: crate::auth::ACCESS_TTL,
            smtp_url: None,
            mail_from: "aether <aether@localhost>".into(),
            unverified_projects: 1,
        }
    }
}

impl fmt::Debug for AccountsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccountsConfig")
            .field("access_ttl", &self.access_ttl)
            // The URL may carry the server's password.
            .field("smtp_url", &self.smtp_url.as_ref().map(|_| "<redacted>"))
            .field("mail_from", &self.mail_from)
            .field("unverified_projects", &self.unverified_projects)
            .finish()
    }
}

/// What the hub needs to take payments through Stripe.
#[derive(Clone)]
pub struct StripeConfig {
    pub secret_key: String,
    /// Signs the webhook's events (`whsec_…`).
    pub webhook_secret: String,
    /// The prices Checkout sells for the pro and team plans.
    pub price_pro: String,
    pub price_team: String,
    /// The API's base URL without `/v1` (tests point it at a fake).
    pub api_base: String,
}

impl fmt::Debug for StripeConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StripeConfig")
            .field("secret_key", &"<redacted>")
            .field("webhook_secret", &"<redacted>")
            .field("price_pro", &self.price_pro)
            .field("price_team", &self.price_team)
            .field("api_base", &self.api_base)
            .finish()
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let redact = |s: &Option<String>| s.as_ref().map(|_| "<redacted>");
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field("tunnel_listen", &self.tunnel_listen)
            .field("ssh_listen", &self.ssh_listen)
            .field("ssh_public_addr", &self.ssh_public_addr)
            .field("data_dir", &self.data_dir)
            .field("public_url", &self.public_url)
            .field("compute", &self.compute)
            .field("aetherd_bin", &self.aetherd_bin)
            .field("database_url", &redact(&self.database_url))
            .field("jwt_secret", &redact(&self.jwt_secret))
            .field("supabase_jwt_secret", &redact(&self.supabase_jwt_secret))
            .field("secrets_key", &redact(&self.secrets_key))
            .field("web_dir", &self.web_dir)
            .field("heartbeat_interval", &self.heartbeat_interval)
            .field("tunnel_public_addr", &self.tunnel_public_addr)
            .field("fly", &self.fly)
            .field("reconcile_interval", &self.reconcile_interval)
            .field("meter_interval", &self.meter_interval)
            .field("idle_timeout", &self.idle_timeout)
            .field("orphan_grace", &self.orphan_grace)
            .field("stuck_after", &self.stuck_after)
            .field("default_plan", &self.default_plan)
            .field("client_ip_header", &self.client_ip_header)
            .field("pg_restart_delay", &self.pg_restart_delay)
            .field("stripe", &self.stripe)
            .field("billing_grace", &self.billing_grace)
            .field("accounts", &self.accounts)
            .finish()
    }
}

/// Where `scripts/vm-rootfs.sh` builds the VM image's root by default.
pub const DEFAULT_VM_ROOTFS: &str = "/var/cache/aether/vm-rootfs";

/// A failed payment's grace: a week, as Stripe's default retry schedule
/// takes about that long.
pub const DEFAULT_BILLING_GRACE: Duration = Duration::from_secs(7 * 24 * 3600);

/// Three quarters of the streams aetherd accepts per tunnel.
pub const DEFAULT_PREVIEW_STREAMS: usize = aether_transport::MAX_HUB_STREAMS as usize * 3 / 4;

impl Config {
    /// A local-mode configuration on ephemeral loopback ports, for tests.
    pub fn local(data_dir: PathBuf) -> Self {
        let any = "127.0.0.1:0".parse().expect("literal address");
        Self {
            listen: any,
            tunnel_listen: any,
            ssh_listen: any,
            ssh_public_addr: None,
            data_dir,
            public_url: None,
            preview_domain: None,
            compute: ComputeKind::Local,
            aetherd_bin: None,
            isolation: IsolationMode::Auto,
            vm_rootfs: DEFAULT_VM_ROOTFS.into(),
            revive_after: Duration::from_secs(30),
            database_url: None,
            jwt_secret: None,
            supabase_jwt_secret: None,
            secrets_key: None,
            web_dir: None,
            heartbeat_interval: Duration::from_secs(15),
            wait_timeout: Duration::from_secs(60),
            max_write_bytes: 100 << 20,
            preview_streams: DEFAULT_PREVIEW_STREAMS,
            preview_express: true,
            send_timeout: Duration::from_secs(60),
            default_plan: "free".into(),
            data_plane_threads: 2,
            tunnel_public_addr: None,
            fly: None,
            reconcile_interval: Duration::from_secs(60),
            meter_interval: Duration::from_secs(5),
            idle_timeout: None,
            orphan_grace: Duration::from_secs(10 * 60),
            stuck_after: Duration::from_secs(5 * 60),
            client_ip_header: None,
            pg_restart_delay: Duration::from_secs(1),
            stripe: None,
            billing_grace: DEFAULT_BILLING_GRACE,
            accounts: AccountsConfig::default(),
        }
    }
}
