//! The `fly` provider: one Fly Machine and one Fly Volume (mounted at
//! /home/dev) per project, through the Machines REST API (`api`; wire types
//! in `model`).
//!
//! Fly is the source of truth for what belongs to which project: a machine
//! carries `metadata.aether_project_id` and a name made from the project id,
//! a volume a name that encodes it. This provider only caches the ids; the
//! hub stores a copy on the project for operators and reconciliation.
//!
//! Nothing is created with the project: the first start creates the volume
//! and a machine that boots with the start's machine token in its env, so
//! a failure (no capacity in the region, a quota) lands on the project as
//! `error` with Fly's reason, and a project never started costs nothing.
//! Later starts rotate the token by updating the machine's config without
//! launching it, then start it. Every state change holds the machine's
//! lease. Suspend is not used: a start always carries a new token, and the
//! config update that delivers it would discard a suspended snapshot anyway.
//!
//! The VM trusts the hub's tunnel certificate through `AETHER_HUB_CA_PEM`,
//! the PEM text of the hub's local CA (a machine can be handed env, not one
//! of the hub's files), which aetherd then trusts alone, and checks the name
//! that certificate carries (`AETHER_HUB_SERVER_NAME`, `aether-hub`) rather
//! than the public host it dials (`HubDial`).

pub mod api;
pub mod model;
mod steps;

use super::{Compute, Listed, MachineState, StartSpec};
use anyhow::{Context, anyhow};
use api::{FlyApi, FlyError, RetryPolicy};
use async_trait::async_trait;
use model::{Machine, Volume};
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use uuid::Uuid;

/// How long a lease is taken for; every leased step is far shorter.
const LEASE_TTL_SECS: u64 = 60;
/// What a machine gets before it is killed on stop.
const STOP_SIGNAL: &str = "SIGTERM";
const STOP_TIMEOUT: &str = "10s";
/// How long destroy keeps deleting a volume Fly still counts as bound to the
/// destroyed machine; after that reconciliation deletes it.
const VOLUME_RELEASE_WAIT: Duration = Duration::from_secs(15);

/// How the hub reaches Fly Machines and what it creates there.
#[derive(Clone)]
pub struct FlyConfig {
    /// The API's root: `https://api.machines.dev`, or
    /// `http://_api.internal:4280` inside Fly's network (`FLY_API_URL`).
    pub api_url: String,
    pub api_token: String,
    /// The Fly app that holds the project VMs (not the hub's own app).
    pub app: String,
    /// Region of new volumes and machines.
    pub region: String,
    /// The VM image built from `Dockerfile.vm`.
    pub image: String,
    pub volume_size_gb: u32,
    pub cpu_kind: String,
    pub cpus: u32,
    pub memory_mb: u32,
    /// Timeout of one API request (a wait gets its own on top).
    pub request_timeout: Duration,
    /// How long start, stop and destroy wait for a machine to settle or for
    /// another holder's lease.
    pub op_timeout: Duration,
    pub retry: RetryPolicy,
}

impl FlyConfig {
    /// Settings with the defaults for everything but where and what.
    pub fn new(api_url: &str, api_token: &str, app: &str, region: &str, image: &str) -> Self {
        Self {
            api_url: api_url.to_owned(),
            api_token: api_token.to_owned(),
            app: app.to_owned(),
            region: region.to_owned(),
            image: image.to_owned(),
            volume_size_gb: 10,
            cpu_kind: "shared".into(),
            cpus: 1,
            memory_mb: 1024,
            request_timeout: Duration::from_secs(30),
            op_timeout: Duration::from_secs(60),
            retry: RetryPolicy { base: Duration::from_millis(250), cap: Duration::from_secs(5), attempts: 5 },
        }
    }
}

impl std::fmt::Debug for FlyConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlyConfig")
            .field("api_url", &self.api_url)
            .field("api_token", &"<redacted>")
            .field("app", &self.app)
            .field("region", &self.region)
            .field("image", &self.image)
            .field("volume_size_gb", &self.volume_size_gb)
            .field("guest", &(&self.cpu_kind, self.cpus, self.memory_mb))
            .finish_non_exhaustive()
    }
}

/// What a VM needs to dial the hub and trust it.
#[derive(Debug, Clone)]
pub struct HubDial {
    /// `host:port` of the hub's tunnel, as VMs reach it.
    pub addr: String,
    /// The CA that signed the hub's tunnel certificate, when it is not
    /// publicly trusted (the hub's local CA).
    pub ca_pem: Option<String>,
    /// The name to verify in that certificate, when it isn't the host of
    /// `addr` (the local certificate names `aether-hub`, not the public host).
    pub server_name: Option<String>,
}

/// What the provider remembers of a project's placement.
#[derive(Debug, Clone, Default)]
struct Known {
    machine: Option<String>,
    volume: Option<String>,
}

/// Runs project VMs as Fly Machines.
pub struct FlyCompute {
    api: FlyApi,
    config: FlyConfig,
    hub: HubDial,
    known: Mutex<HashMap<Uuid, Known>>,
    /// One state change per project at a time within this hub.
    busy: Mutex<HashMap<Uuid, Arc<tokio::sync::Mutex<()>>>>,
}

impl std::fmt::Debug for FlyCompute {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlyCompute")
            .field("api", &self.api)
            .field("config", &self.config)
            .field("hub", &self.hub.addr)
            .finish_non_exhaustive()
    }
}

fn not_found(e: &anyhow::Error) -> bool {
    e.downcast_ref::<FlyError>().is_some_and(FlyError::is_not_found)
}

/// The error without `secret` in its text (Fly may echo a request body).
fn redact(e: anyhow::Error, secret: &str) -> anyhow::Error {
    let text = format!("{e:#}");
    // Real tokens are long; a short test string would mangle every word.
    if secret.len() < 8 || !text.contains(secret) {
        return e;
    }
    anyhow!(text.replace(secret, "<redacted>"))
}

impl FlyCompute {
    /// `hub` is how the VMs it starts reach the hub.
    pub fn new(config: FlyConfig, hub: HubDial) -> anyhow::Result<Self> {
        anyhow::ensure!(!config.api_token.is_empty(), "FLY_API_TOKEN is empty");
        anyhow::ensure!(!config.app.is_empty(), "the Fly app of the VMs is not set");
        anyhow::ensure!(!config.image.is_empty(), "the VM image (AETHER_FLY_IMAGE) is not set");
        let api = FlyApi::new(&config.api_url, &config.app, &config.api_token, config.request_timeout, config.retry)
            .context("building the Fly Machines API client")?;
        Ok(Self { api, config, hub, known: Mutex::default(), busy: Mutex::default() })
    }

    async fn busy(&self, project: Uuid) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = self.busy.lock().expect("busy map").entry(project).or_default().clone();
        lock.lock_owned().await
    }

    fn known(&self, project: Uuid) -> Known {
        self.known.lock().expect("known map").get(&project).cloned().unwrap_or_default()
    }

    fn remember(&self, project: Uuid, machine: Option<&Machine>, volume: Option<&str>) {
        let mut known = self.known.lock().expect("known map");
        let k = known.entry(project).or_default();
        if let Some(m) = machine {
            k.machine = Some(m.id.clone());
            k.volume = m.volume().or(k.volume.take());
        }
        if let Some(v) = volume {
            k.volume = Some(v.to_owned());
        }
    }

    fn forget(&self, project: Uuid) {
        self.known.lock().expect("known map").remove(&project);
        self.busy.lock().expect("busy map").remove(&project);
    }

    /// Every live machine of the project, by metadata.
    async fn machines_of(&self, project: Uuid) -> Result<Vec<Machine>, FlyError> {
        let all = self.api.list_machines().await?;
        Ok(all.into_iter().filter(|m| m.project() == Some(project) && !m.is_gone()).collect())
    }

    /// The project's machine, found by listing (a create whose answer was
    /// lost is found this way too).
    async fn lookup(&self, project: Uuid) -> Result<Option<Machine>, FlyError> {
        let mut found = self.machines_of(project).await?;
        if found.len() > 1 {
            let ids: Vec<_> = found.iter().map(|m| m.id.as_str()).collect();
            tracing::warn!(%project, ?ids, "more than one machine for the project; using the first");
        }
        let m = (!found.is_empty()).then(|| found.swap_remove(0));
        if let Some(m) = &m {
            self.remember(project, Some(m), None);
        }
        Ok(m)
    }

    /// The project's machine: the remembered one if it still exists, else
    /// whatever listing finds.
    async fn find(&self, project: Uuid) -> anyhow::Result<Option<Machine>> {
        if let Some(id) = self.known(project).machine {
            match self.api.get_machine(&id).await {
                Ok(m) if !m.is_gone() => return Ok(Some(m)),
                Ok(_) => {}
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e.into()),
            }
            self.known.lock().expect("known map").entry(project).or_default().machine = None;
        }
        Ok(self.lookup(project).await?)
    }

    async fn find_volume(&self, project: Uuid) -> Result<Option<Volume>, FlyError> {
        let name = model::volume_name(project);
        let all = self.api.list_volumes().await?;
        let v = all.into_iter().find(|v| v.name == name && !v.is_gone());
        if let Some(v) = &v {
            self.remember(project, None, Some(&v.id));
        }
        Ok(v)
    }
}

#[async_trait]
impl Compute for FlyCompute {
    /// Creates nothing yet (see the module's note): returns the name the
    /// project's machine will have.
    async fn create(&self, project: Uuid) -> anyhow::Result<String> {
        Ok(model::machine_name(project))
    }

    async fn start(&self, spec: &StartSpec) -> anyhow::Result<()> {
        let project = spec.project_id;
        let _busy = self.busy(project).await;
        let result = async {
            let existing = match self.find(project).await? {
                Some(m) => Some(self.settle(m).await?).filter(|m| !m.is_gone()),
                None => None,
            };
            match existing {
                Some(m) => self.start_existing(spec, m).await,
                None => self.create_machine(spec).await.map(drop),
            }
        };
        result.await.map_err(|e| redact(e, &spec.machine_token))
    }

    async fn stop(&self, project: Uuid) -> anyhow::Result<()> {
        let _busy = self.busy(project).await;
        let Some(m) = self.find(project).await? else {
            return Ok(());
        };
        let m = self.settle(m).await?;
        if m.state != "started" {
            return Ok(());
        }
        let nonce = self.acquire(&m.id).await?;
        let stopped = self.api.stop(&m.id, &nonce, STOP_SIGNAL, STOP_TIMEOUT).await;
        self.release(&m.id, &nonce).await;
        stopped?;
        self.wait_for(&m, "stopped").await.map(drop)
    }

    async fn destroy(&self, project: Uuid) -> anyhow::Result<()> {
        let _busy = self.busy(project).await;
        let mut volumes = BTreeSet::new();
        volumes.extend(self.known(project).volume);
        for m in self.machines_of(project).await? {
            volumes.extend(m.volume());
            let nonce = match self.acquire(&m.id).await {
                Ok(nonce) => nonce,
                Err(e) if not_found(&e) => continue,
                Err(e) => return Err(e),
            };
            let destroyed = self.api.destroy(&m.id, &nonce).await;
            self.release(&m.id, &nonce).await;
            match destroyed {
                Ok(()) => {}
                Err(e) if e.is_not_found() => continue,
                Err(e) => return Err(e.into()),
            }
            self.wait_for(&m, "destroyed").await?;
        }
        let name = model::volume_name(project);
        let listed = self.api.list_volumes().await?;
        let live: BTreeSet<_> = listed.iter().filter(|v| !v.is_gone()).map(|v| v.id.as_str()).collect();
        volumes.extend(listed.iter().filter(|v| v.name == name).map(|v| v.id.clone()));
        for id in volumes.iter().filter(|id| live.contains(id.as_str())) {
            self.delete_volume(id).await?;
        }
        self.forget(project);
        Ok(())
    }

    async fn status(&self, project: Uuid) -> anyhow::Result<MachineState> {
        Ok(match self.find(project).await? {
            Some(m) => model::hub_state(&m.state),
            None => MachineState::Missing,
        })
    }

    async fn list(&self) -> anyhow::Result<Vec<Uuid>> {
        let mut projects = BTreeSet::new();
        for m in self.api.list_machines().await? {
            if !m.is_gone() {
                projects.extend(m.project());
            }
        }
        for v in self.api.list_volumes().await? {
            if !v.is_gone() {
                projects.extend(model::volume_project(&v.name));
            }
        }
        Ok(projects.into_iter().collect())
    }

    async fn inventory(&self) -> anyhow::Result<Vec<Listed>> {
        let machines = self.api.list_machines().await?;
        let volumes = self.api.list_volumes().await?;
        let mut out = Vec::new();
        for m in machines.iter().filter(|m| !m.is_gone()) {
            let Some(project) = m.project() else { continue };
            self.remember(project, Some(m), None);
            out.push(Listed {
                project,
                machine_id: Some(m.id.clone()),
                volume_id: m.volume(),
                state: model::hub_state(&m.state),
                detail: m.state.clone(),
                transient_since: model::is_transient(&m.state).then(|| m.since()).flatten(),
                stopped_since: (model::hub_state(&m.state) == MachineState::Stopped).then(|| m.since()).flatten(),
            });
        }
        for v in volumes.iter().filter(|v| !v.is_gone()) {
            let Some(project) = model::volume_project(&v.name) else { continue };
            if out.iter().any(|l| l.project == project) {
                continue;
            }
            out.push(Listed {
                project,
                machine_id: None,
                volume_id: Some(v.id.clone()),
                state: MachineState::Missing,
                detail: "volume without a machine".into(),
                transient_since: None,
                stopped_since: None,
            });
        }
        Ok(out)
    }

    fn placement(&self, project: Uuid) -> Option<(String, Option<String>)> {
        let k = self.known(project);
        Some((k.machine?, k.volume))
    }

    fn volume_gb(&self) -> u32 {
        self.config.volume_size_gb
    }
}
