//! The steps start, stop and destroy are made of: waiting through the
//! API's wait endpoint, taking and giving back leases, creating a volume
//! and a machine without ever creating two, updating a stopped machine's
//! config before starting it, and deleting a volume Fly still counts as
//! bound to its destroyed machine.

use super::api::FlyError;
use super::model::{self, HOME, Machine, PROJECT_KEY, Volume};
use super::{FlyCompute, LEASE_TTL_SECS, STOP_SIGNAL, STOP_TIMEOUT, VOLUME_RELEASE_WAIT};
use crate::compute::StartSpec;
use anyhow::{Context, anyhow};
use serde_json::{Value, json};
use std::time::Duration;
use tokio::time::Instant;
use uuid::Uuid;

impl FlyCompute {
    /// Waits through the API's wait endpoint, in rounds of at most 60 s (a
    /// 408 is "not yet"), until `state` or `op_timeout`; returns the machine.
    pub(super) async fn wait_for(&self, m: &Machine, state: &str) -> anyhow::Result<Machine> {
        let deadline = Instant::now() + self.config.op_timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.api.wait(&m.id, state, Some(m.version()), left.as_secs()).await {
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
    pub(super) async fn settle(&self, mut m: Machine) -> anyhow::Result<Machine> {
        for _ in 0..4 {
            if !model::is_transient(&m.state) {
                return Ok(m);
            }
            m = self.wait_for(&m, model::heading_for(&m.state)).await?;
        }
        anyhow::bail!("machine {} keeps changing state (now {})", m.id, m.state)
    }

    /// Waits for the project's machine to reach `state` (started, stopped, ...).
    pub async fn wait_state(&self, project: Uuid, state: &str) -> anyhow::Result<()> {
        let m = self.find(project).await?.with_context(|| format!("project {project} has no machine"))?;
        self.wait_for(&m, state).await.map(drop)
    }

    /// Takes the machine's lease, waiting (up to `op_timeout`) for another
    /// holder's to be released or to expire.
    pub(super) async fn acquire(&self, machine: &str) -> anyhow::Result<String> {
        let deadline = Instant::now() + self.config.op_timeout;
        let mut attempt = 0;
        let mut held = false;
        loop {
            match self.api.acquire_lease(machine, LEASE_TTL_SECS).await {
                Ok(nonce) => return Ok(nonce),
                // Held by someone else, or asked for too often meanwhile.
                Err(e) if e.is_lease_held() || (held && e.is_rate_limited()) => {
                    held = true;
                    if Instant::now() >= deadline {
                        return Err(anyhow!(e).context(format!(
                            "machine {machine} stayed leased by another operation for {:?}",
                            self.config.op_timeout
                        )));
                    }
                    let pause = self.api.retry.delay(attempt, e.retry_after());
                    tokio::time::sleep(pause.min(deadline - Instant::now())).await;
                    attempt += 1;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Gives the lease back; a lease that can't be released expires by itself.
    pub(super) async fn release(&self, machine: &str, nonce: &str) {
        if let Err(e) = self.api.release_lease(machine, nonce).await
            && !e.is_not_found()
        {
            tracing::warn!(machine, status = ?e.status(), "could not release the machine's lease; it expires by itself");
        }
    }

    /// The machine's config for a start: image, size, the volume at
    /// /home/dev, and what aetherd needs to dial the hub.
    pub(super) fn machine_config(&self, spec: &StartSpec, volume: &str) -> Value {
        let mut env = serde_json::Map::new();
        for (k, v) in &spec.env {
            env.insert(k.clone(), v.clone().into());
        }
        let project = spec.project_id.to_string();
        env.insert("AETHER_HUB_ADDR".into(), self.hub.addr.clone().into());
        env.insert("AETHER_PROJECT_ID".into(), project.clone().into());
        env.insert("AETHER_MACHINE_TOKEN".into(), spec.machine_token.clone().into());
        env.insert("AETHER_HOME".into(), HOME.into());
        if let Some(pem) = &self.hub.ca_pem {
            env.insert("AETHER_HUB_CA_PEM".into(), pem.clone().into());
        }
        if let Some(name) = &self.hub.server_name {
            env.insert("AETHER_HUB_SERVER_NAME".into(), name.clone().into());
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
    /// trying again, if it may succeed later (at least the `Retry-After` of
    /// a 429). A create is not idempotent, so it is sent again only when the
    /// look found nothing.
    pub(super) fn after_failed_create(&self, e: &FlyError, attempt: u32) -> (bool, Option<Duration>) {
        let look = e.is_name_taken() || (e.retryable() && !e.is_rate_limited());
        (look, e.retry_pause(&self.api.retry, attempt))
    }

    pub(super) async fn ensure_volume(&self, project: Uuid) -> anyhow::Result<Volume> {
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

    pub(super) async fn create_machine(&self, spec: &StartSpec) -> anyhow::Result<Machine> {
        let project = spec.project_id;
        let volume = self.ensure_volume(project).await?;
        let body = json!({
            "name": model::machine_name(project),
            // A volume pins its machine to its region.
            "region": volume.region,
            "config": self.machine_config(spec, &volume.id),
        });
        let deadline = Instant::now() + self.config.op_timeout;
        let mut attempt = 0;
        let m = loop {
            let e = match self.api.create_machine_once(&body).await {
                Ok(m) => break m,
                Err(e) => e,
            };
            let (look, mut again) = self.after_failed_create(&e, attempt);
            // A volume stays bound for a while (up to a minute at Fly) to
            // the machine that last had it, after that one was destroyed.
            if e.is_volume_bound() && Instant::now() < deadline {
                again = Some(self.api.retry.delay(attempt, None));
            }
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
    pub(super) async fn start_existing(&self, spec: &StartSpec, m: Machine) -> anyhow::Result<()> {
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

    pub(super) async fn update_and_start(
        &self,
        m: &Machine,
        body: &Value,
        running: bool,
        nonce: &str,
    ) -> anyhow::Result<()> {
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

    /// Deletes a volume, retrying while Fly still counts it as bound to its
    /// destroyed machine (which can last a minute); past that it is left to
    /// reconciliation, which deletes volumes without a project.
    pub(super) async fn delete_volume(&self, id: &str) -> anyhow::Result<()> {
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
