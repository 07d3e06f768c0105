//! Where project VMs run. The `Compute` trait is what the rest of the hub
//! knows; `local` runs aetherd processes on this machine, `fly` Fly Machines.

pub mod fly;
pub mod local;
pub mod runs;
pub mod sandbox;

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
    /// What the VM may use, from its owner's plan.
    pub limits: sandbox::VmLimits,
}

impl std::fmt::Debug for StartSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StartSpec").field("project_id", &self.project_id).field("machine_token", &"<redacted>").finish()
    }
}

/// One project's machine as reconciliation sees it (`Compute::inventory`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub project: Uuid,
    /// The provider's ids, when it has them; the hub stores them on the project.
    pub machine_id: Option<String>,
    pub volume_id: Option<String>,
    pub state: MachineState,
    /// The provider's own name for the state, for messages.
    pub detail: String,
    /// When the machine entered a transient state (starting, stopping, ...), if it is in one.
    pub transient_since: Option<chrono::DateTime<chrono::Utc>>,
    /// When a machine that isn't running stopped, as the provider tells
    /// (the meter closes a run the hub missed there).
    pub stopped_since: Option<chrono::DateTime<chrono::Utc>>,
}

/// One run of a machine (boot to exit) as the provider saw it: the
/// provider's side of metering.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    /// The provider's name for this run, unique within the project.
    pub key: String,
    pub started_at: chrono::DateTime<chrono::Utc>,
    /// When it ended, if it has and the provider knows.
    pub ended_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Whether it still runs. A run neither running nor with an end ended
    /// while nothing watched it (its end is the hub's best guess).
    pub running: bool,
}

/// Whether a failed start is the provider's "not now" (no capacity in the
/// region, rate limits past their retries) rather than a fault: the user
/// can try again later, or elsewhere.
pub fn is_unavailable(e: &anyhow::Error) -> bool {
    e.chain().any(|c| c.downcast_ref::<fly::api::FlyError>().is_some_and(|f| f.is_capacity() || f.is_rate_limited()))
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
    /// Every machine with its state, for reconciliation. The default asks
    /// `list`, then `status` for each.
    async fn inventory(&self) -> anyhow::Result<Vec<Listed>> {
        let mut out = Vec::new();
        for project in self.list().await? {
            let state = self.status(project).await?;
            out.push(Listed {
                project,
                machine_id: None,
                volume_id: None,
                state,
                detail: format!("{state:?}").to_lowercase(),
                transient_since: None,
                stopped_since: None,
            });
        }
        Ok(out)
    }
    /// The provider's machine and volume ids for the project, when it knows
    /// them without asking anyone.
    fn placement(&self, _project: Uuid) -> Option<(String, Option<String>)> {
        None
    }
    /// The size of each project's own disk (volume), in GB; 0 when projects
    /// have none (local VMs use the host's disk).
    fn volume_gb(&self) -> u32 {
        0
    }
    /// The project's machine runs, oldest first, when the provider keeps a
    /// timeline of them (`None`: the hub meters from its own starts and
    /// stops, and `inventory`).
    async fn runs(&self, _project: Uuid) -> anyhow::Result<Option<Vec<Run>>> {
        Ok(None)
    }
    /// CPU time the project's machine has used, in nanoseconds, when the
    /// provider can tell (the idle sweep compares two readings).
    fn cpu_usage_ns(&self, _project: Uuid) -> Option<u64> {
        None
    }
    /// Why VMs are not isolated from the host and each other, when they
    /// aren't (a local provider on a machine without what isolation needs).
    fn unisolated(&self) -> Option<String> {
        None
    }
}
