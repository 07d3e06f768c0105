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
//! of the hub's files); aetherd adds it to the roots it verifies with.

pub mod api;
pub mod model;

use super::{Compute, Listed, MachineState, StartSpec};
use anyhow::{Context, anyhow};
use api::{FlyApi, FlyError, RetryPolicy};
use async_trait::async_trait;
use model::{HOME, Machine, PROJECT_KEY, Volume};
use serde_json::{Value, json};
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;
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
    hub_addr: String,
    hub_ca_pem: Option<String>,
    known: Mutex<HashMap<Uuid, Known>>,
    /// One state change per project at a time within this hub.
    busy: Mutex<HashMap<Uuid, Arc<tokio::sync::Mutex<()>>>>,
}

impl std::fmt::Debug for FlyCompute {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlyCompute")
            .field("api", &self.api)
            .field("config", &self.config)
            .field("hub_addr", &self.hub_addr)
            .finish_non_exhaustive()
    }
}

fn not_found(e: &anyhow::Error) -> bool {
    e.downcast_ref::<FlyError>().is_some_and(FlyError::is_not_found)
}

/// The error without `secret` in its text (Fly may echo a request body).
fn redact(e: anyhow::Error, secret: &str) -> anyhow::Error {
    let text = format!("{e:#}");
    if secret.is_empty() || !text.contains(secret) {
        return e;
    }
    anyhow!(text.replace(secret, "<redacted>"))
}

impl FlyCompute {
    /// `hub_addr` is what VMs dial; `hub_ca_pem` the CA they verify it with,
    /// when the hub's certificate is not publicly trusted.
    pub fn new(config: FlyConfig, hub_addr: String, hub_ca_pem: Option<String>) -> anyhow::Result<Self> {
        anyhow::ensure!(!config.api_token.is_empty(), "FLY_API_TOKEN is empty");
        anyhow::ensure!(!config.app.is_empty(), "the Fly app of the VMs is not set");
        anyhow::ensure!(!config.image.is_empty(), "the VM image (AETHER_FLY_IMAGE) is not set");
        let api = FlyApi::new(&config.api_url, &config.app, &config.api_token, config.request_timeout, config.retry)
            .context("building the Fly Machines API client")?;
        Ok(Self { api, config, hub_addr, hub_ca_pem, known: Mutex::default(), busy: Mutex::default() })
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

    /// Waits through the API's wait endpoint, in rounds of at most 60 s (a
    /// 408 is "not yet"), until `state` or `op_timeout`; returns the machine.
    async fn wait_for(&self, m: &Machine, state: &str, version: Option<&str>) -> anyhow::Result<Machine> {
        let deadline = Instant::now() + self.config.op_timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.api.wait(&m.id, state, version, left.as_secs()).await {
                // Reached, or 408 "not yet": either way, look.
                Ok(_) => {}
                Err(e) if e.is_not_found() && state == "destroyed" => return Ok(m.clone()),
                Err(e) => return Err(e.into()),
            }
            let now = match self.api.get_machine(&m.id).await {
                Ok(now) => now,
                Err(e) if e.is_not_found() && state == "destroyed" => return Ok(m.clone()),
                Err(e) => return Err(e.into()),
            };
            if now.state == state {
                return Ok(now);
            }
            if now.state == "failed" || (now.is_gone() && state != "destroyed") {
                anyhow::bail!("machine {} is {} instead of {state}", m.id, now.state);
            }
            if Instant::now() >= deadline {
                anyhow::bail!(
                    "machine {} did not become {state} within {:?} (it is {})",
                    m.id,
                    self.config.op_timeout,
                    now.state
                );
            }
        }
    }

    /// Waits out transient states (at most a few in a row).
    async fn settle(&self, mut m: Machine) -> anyhow::Result<Machine> {
        for _ in 0..4 {
            if !model::is_transient(&m.state) {
                return Ok(m);
            }
            m = self.wait_for(&m, model::heading_for(&m.state), None).await?;
        }
        anyhow::bail!("machine {} keeps changing state (now {})", m.id, m.state)
    }

    /// Waits for the project's machine to reach `state` (started, stopped, ...).
    pub async fn wait_state(&self, project: Uuid, state: &str) -> anyhow::Result<()> {
        let m = self.find(project).await?.with_context(|| format!("project {project} has no machine"))?;
        self.wait_for(&m, state, None).await.map(drop)
    }

    /// Takes the machine's lease, waiting (up to `op_timeout`) for another
    /// holder's to be released or to expire.
    async fn acquire(&self, machine: &str) -> anyhow::Result<String> {
        let deadline = Instant::now() + self.config.op_timeout;
        let mut attempt = 0;
        loop {
            match self.api.acquire_lease(machine, LEASE_TTL_SECS).await {
                Ok(nonce) => return Ok(nonce),
                Err(e) if e.is_lease_held() && Instant::now() < deadline => {
                    let pause = self.api.retry.delay(attempt, None);
                    tokio::time::sleep(pause.min(deadline - Instant::now())).await;
                    attempt += 1;
                }
                Err(e) if e.is_lease_held() => {
                    return Err(anyhow!(e).context(format!(
                        "machine {machine} stayed leased by another operation for {:?}",
                        self.config.op_timeout
                    )));
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Gives the lease back; a lease that can't be released expires by itself.
    async fn release(&self, machine: &str, nonce: &str) {
        if let Err(e) = self.api.release_lease(machine, nonce).await
            && !e.is_not_found()
        {
            tracing::warn!(machine, status = ?e.status(), "could not release the machine's lease; it expires by itself");
        }
    }

    /// The machine's config for a start: image, size, the volume at
    /// /home/dev, and what aetherd needs to dial the hub.
    fn machine_config(&self, spec: &StartSpec, volume: &str) -> Value {
        let mut env = serde_json::Map::new();
        for (k, v) in &spec.env {
            env.insert(k.clone(), v.clone().into());
        }
        let project = spec.project_id.to_string();
        env.insert("AETHER_HUB_ADDR".into(), self.hub_addr.clone().into());
        env.insert("AETHER_PROJECT_ID".into(), project.clone().into());
        env.insert("AETHER_MACHINE_TOKEN".into(), spec.machine_token.clone().into());
        env.insert("AETHER_HOME".into(), HOME.into());
        if let Some(pem) = &self.hub_ca_pem {
            env.insert("AETHER_HUB_CA_PEM".into(), pem.clone().into());
        }
        json!({
            "image": self.config.image,
            "env": env,
            "guest": {
                "cpu_kind": self.config.cpu_kind,
                "cpus": self.config.cpus,
                "memory_mb": self.config.memory_mb,
            },
            "mounts": [{ "volume": volume, "path": HOME }],
            "restart": { "policy": "on-failure", "max_retries": 3 },
            "stop_config": { "signal": STOP_SIGNAL, "timeout": STOP_TIMEOUT },
            "metadata": { PROJECT_KEY: project },
            "auto_destroy": false,
        })
    }

    /// After a create failed with `e`: whether to look for what it may have
    /// made anyway (no answer, a 5xx, a taken name), and the pause before
    /// trying again, if it may succeed later. A create is not idempotent, so
    /// it is sent again only when the look found nothing.
    fn after_failed_create(&self, e: &FlyError, attempt: u32) -> (bool, Option<Duration>) {
        let look = e.is_name_taken() || (e.retryable() && !e.is_rate_limited());
        let again = e.retryable() && attempt + 1 < self.api.retry.attempts;
        (look, again.then(|| self.api.retry.delay(attempt, None)))
    }

    async fn ensure_volume(&self, project: Uuid) -> anyhow::Result<Volume> {
        if let Some(v) = self.find_volume(project).await? {
            return Ok(v);
        }
        let body = json!({
            "name": model::volume_name(project),
            "region": self.config.region,
            "size_gb": self.config.volume_size_gb,
            "encrypted": true,
            "require_unique_zone": false,
        });
        let mut attempt = 0;
        let v = loop {
            let e = match self.api.create_volume_once(&body).await {
                Ok(v) => break v,
                Err(e) => e,
            };
            let (look, again) = self.after_failed_create(&e, attempt);
            if look && let Some(v) = self.find_volume(project).await? {
                tracing::info!(%project, volume = %v.id, "a volume create that did not answer had succeeded");
                break v;
            }
            let Some(pause) = again else { return Err(e.into()) };
            tokio::time::sleep(pause).await;
            attempt += 1;
        };
        self.remember(project, None, Some(&v.id));
        tracing::info!(%project, volume = %v.id, region = %v.region, "created the project's volume");
        Ok(v)
    }

    async fn create_machine(&self, spec: &StartSpec) -> anyhow::Result<Machine> {
        let project = spec.project_id;
        let volume = self.ensure_volume(project).await?;
        let body = json!({
            "name": model::machine_name(project),
            // A volume pins its machine to its region.
            "region": volume.region,
            "config": self.machine_config(spec, &volume.id),
        });
        let mut attempt = 0;
        let m = loop {
            let e = match self.api.create_machine_once(&body).await {
                Ok(m) => break m,
                Err(e) => e,
            };
            let (look, again) = self.after_failed_create(&e, attempt);
            if look && let Some(m) = self.lookup(project).await? {
                tracing::info!(%project, machine = %m.id, "a machine create that did not answer had succeeded");
                break m;
            }
            let Some(pause) = again else { return Err(e.into()) };
            tokio::time::sleep(pause).await;
            attempt += 1;
        };
        self.remember(project, Some(&m), None);
        tracing::info!(%project, machine = %m.id, volume = %volume.id, "created the project's machine");
        Ok(m)
    }

    /// Starts an existing machine with a new config (a new token).
    async fn start_existing(&self, spec: &StartSpec, m: Machine) -> anyhow::Result<()> {
        let volume = match m.volume() {
            Some(v) => v,
            None => self.ensure_volume(spec.project_id).await?.id,
        };
        let running = m.state == "started";
        let body = json!({
            "config": self.machine_config(spec, &volume),
            "region": m.region,
            // A running machine is replaced at once; a stopped one is
            // updated in place, then started.
            "skip_launch": !running,
        });
        let nonce = self.acquire(&m.id).await?;
        let result = self.update_and_start(&m, &body, running, &nonce).await;
        self.release(&m.id, &nonce).await;
        result
    }

    async fn update_and_start(&self, m: &Machine, body: &Value, running: bool, nonce: &str) -> anyhow::Result<()> {
        let updated = self.api.update_machine(&m.id, body, nonce).await?;
        if running {
            return Ok(());
        }
        let updated = self.settle(updated).await?;
        if let Err(e) = self.api.start(&updated.id, nonce).await {
            // A start whose answer was lost, retried, finds it starting.
            let now = self.api.get_machine(&updated.id).await?;
            if !matches!(now.state.as_str(), "starting" | "started") {
                return Err(e.into());
            }
        }
        Ok(())
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
        self.wait_for(&m, "stopped", Some(m.version())).await.map(drop)
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
            self.wait_for(&m, "destroyed", None).await?;
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
            });
        }
        Ok(out)
    }

    fn placement(&self, project: Uuid) -> Option<(String, Option<String>)> {
        let k = self.known(project);
        Some((k.machine?, k.volume))
    }
}

impl FlyCompute {
    /// Deletes a volume, retrying while Fly still counts it as bound to its
    /// destroyed machine (which can last a minute); past that it is left to
    /// reconciliation, which deletes volumes without a project.
    async fn delete_volume(&self, id: &str) -> anyhow::Result<()> {
        let deadline = Instant::now() + VOLUME_RELEASE_WAIT.min(self.config.op_timeout);
        let mut attempt = 0;
        loop {
            match self.api.delete_volume(id).await {
                Ok(()) => return Ok(()),
                Err(e) if e.is_not_found() => return Ok(()),
                Err(e) if e.is_volume_bound() && Instant::now() < deadline => {
                    tokio::time::sleep(self.api.retry.delay(attempt, None)).await;
                    attempt += 1;
                }
                Err(e) if e.is_volume_bound() => {
                    tracing::warn!(
                        volume = id,
                        "the volume is still bound to its destroyed machine; reconciliation will delete it"
                    );
                    return Ok(());
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
}
