//! Where project VMs run. The `Compute` trait is what the rest of the hub
//! knows; `local` runs aetherd processes on this machine.

pub mod local;

use async_trait::async_trait;
use uuid::Uuid;

/// What a provider says about one project's machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MachineState {
    Running,
    Stopped,
    /// The provider has no machine for the project.
    Missing,
}

/// What a VM needs to boot and dial the hub.
#[derive(Clone)]
pub struct StartSpec {
    pub project_id: Uuid,
    pub machine_token: String,
    pub env: Vec<(String, String)>,
}

impl std::fmt::Debug for StartSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StartSpec")
            .field("project_id", &self.project_id)
            .field("machine_token", &"<redacted>")
            .finish()
    }
}

/// A compute provider: one machine (and its disk) per project.
#[async_trait]
pub trait Compute: Send + Sync {
    /// Creates the machine and its volume; returns the provider's machine id.
    async fn create(&self, project: Uuid) -> anyhow::Result<String>;
    /// Boots the machine (creating it if needed). Returns once it is booting.
    async fn start(&self, spec: &StartSpec) -> anyhow::Result<()>;
    /// Stops the machine and everything running in it.
    async fn stop(&self, project: Uuid) -> anyhow::Result<()>;
    /// Stops and deletes the machine and its volume.
    async fn destroy(&self, project: Uuid) -> anyhow::Result<()>;
    async fn status(&self, project: Uuid) -> anyhow::Result<MachineState>;
    /// Every project the provider has a machine for.
    async fn list(&self) -> anyhow::Result<Vec<Uuid>>;
}
