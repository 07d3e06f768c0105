//! A fake of the Fly Machines API for tests, never for the hub itself: an
//! axum server on `127.0.0.1:0` that keeps machines and volumes as the
//! published contract describes them (`schema` checks its answers against
//! Fly's OpenAPI document; `fly_fake.rs` pins that), with:
//!
//! * life cycles through the transient states on an injectable clock:
//!   `Clock::Manual` moves only when a test says so; with `auto` it also
//!   jumps to the next thing due whenever a wait would block (as tokio's
//!   paused time does), so flows run fast and in order; `Clock::System` is
//!   real time, for whole-system tests;
//! * wait with 408, leases with 409, per-machine rate limits with 429,
//!   `insufficient_capacity`, 401 for a bad token, 404s;
//! * faults to inject per route (an error status, doing the work and never
//!   answering, as a lost response, or a stretch of 429s with
//!   `Retry-After`);
//! * optionally, real boots: a machine that starts runs aetherd with its env
//!   (`boot`), killed when the machine stops or is destroyed, and when the
//!   fake is dropped.
#![allow(dead_code)]

pub mod boot;
mod leases;
pub mod routes;
pub mod schema;
mod volumes;
mod world;

pub use boot::Boot;
pub use world::{Logged, Timing};

use serde_json::Value;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;
use world::World;

/// The fake's time.
#[derive(Clone)]
pub enum Clock {
    Manual { now: Arc<Mutex<Duration>>, auto: bool },
    System(Instant),
}

impl Clock {
    fn now(&self) -> Duration {
        match self {
            Self::Manual { now, .. } => *now.lock().unwrap(),
            Self::System(start) => start.elapsed(),
        }
    }
}

/// An answer: status and JSON body (`Null` for none).
#[derive(Debug, Clone)]
pub struct Reply(pub u16, pub Value);

/// A route of the API, for faults, rate limits and the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Route {
    ListMachines,
    CreateMachine,
    GetMachine,
    UpdateMachine,
    DeleteMachine,
    Start,
    Stop,
    Wait,
    GetLease,
    AcquireLease,
    ReleaseLease,
    ListVolumes,
    CreateVolume,
    GetVolume,
    DeleteVolume,
}

/// Something to go wrong with the next request on a route.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Answer this instead of doing anything.
    Status(u16, Value),
    /// Do the work, then never answer (the client times out).
    LoseResponse,
    /// Answer 429 with `Retry-After` (whole seconds, rounded up) to every
    /// request on the route for this long, in real time (the client's
    /// pauses are real), starting with this one.
    Throttle(Duration),
}

impl Fault {
    pub fn status(code: u16, message: &str) -> Self {
        Self::Status(code, serde_json::json!({ "error": message }))
    }
}

pub fn is_transient(state: &str) -> bool {
    matches!(
        state,
        "creating" | "starting" | "stopping" | "restarting" | "suspending" | "destroying" | "updating" | "replacing"
    )
}

/// How to run the fake.
pub struct Options {
    pub clock: Clock,
    pub timing: Timing,
    pub boot: Option<Boot>,
    pub rate_limits: bool,
}

impl Options {
    fn manual_clock(auto: bool) -> Self {
        let s = Duration::from_secs;
        Self {
            clock: Clock::Manual { now: Arc::default(), auto },
            timing: Timing { boot: s(3), stop: s(2), destroy: s(1), update: s(1), unbind: Duration::ZERO },
            boot: None,
            rate_limits: true,
        }
    }

    /// A clock that moves only when the test advances it.
    pub fn manual() -> Self {
        Self::manual_clock(false)
    }

    /// A clock that also jumps ahead whenever a wait would block.
    pub fn auto() -> Self {
        Self::manual_clock(true)
    }

    /// Real time and real aetherd processes.
    pub fn booting(boot: Boot) -> Self {
        let ms = Duration::from_millis;
        Self {
            clock: Clock::System(Instant::now()),
            timing: Timing { boot: ms(100), stop: ms(100), destroy: ms(50), update: ms(50), unbind: ms(100) },
            boot: Some(boot),
            rate_limits: true,
        }
    }
}

/// State shared by the server's handlers.
pub struct Shared {
    world: Mutex<World>,
    clock: Clock,
    changed: watch::Sender<u64>,
    app: String,
    token: String,
    waits_received: AtomicUsize,
    pending_waits: AtomicUsize,
}

impl Shared {
    fn notify(&self) {
        self.changed.send_modify(|n| *n += 1);
    }

    /// Moves a manual clock forward to `to` and applies what fell due.
    fn advance_to(&self, to: Duration) {
        if let Clock::Manual { now, .. } = &self.clock {
            let mut t = now.lock().unwrap();
            *t = (*t).max(to);
            let at = *t;
            drop(t);
            self.world.lock().unwrap().tick(at);
        }
        self.notify();
    }
}

/// A running fake; dropping it stops the server and kills its machines.
pub struct FakeFly {
    /// The API root to give clients (`FLY_API_URL`).
    pub url: String,
    pub app: String,
    pub token: String,
    shared: Arc<Shared>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl FakeFly {
    pub async fn start(options: Options) -> Self {
        let app = format!("aether-vms-{}", &uuid::Uuid::new_v4().simple().to_string()[..6]);
        let token = format!("fo1_{}", uuid::Uuid::new_v4().simple());
        let shared = Arc::new(Shared {
            world: Mutex::new(World::new(options.timing, options.boot, options.rate_limits)),
            clock: options.clock,
            changed: watch::channel(0).0,
            app: app.clone(),
            token: token.clone(),
            waits_received: AtomicUsize::new(0),
            pending_waits: AtomicUsize::new(0),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let router = routes::router(shared.clone());
        let mut tasks = vec![tokio::spawn(async move {
            axum::serve(listener, router).await.unwrap();
        })];
        if let Clock::System(_) = shared.clock {
            tasks.push(tokio::spawn(ticker(shared.clone())));
        }
        Self { url, app, token, shared, tasks }
    }

    /// Moves a manual clock forward.
    pub fn advance(&self, by: Duration) {
        self.shared.advance_to(self.now() + by);
    }

    pub fn now(&self) -> Duration {
        self.shared.clock.now()
    }

    fn world(&self) -> std::sync::MutexGuard<'_, World> {
        let mut w = self.shared.world.lock().unwrap();
        w.tick(self.shared.clock.now());
        w
    }

    /// Makes the next request on `route` fail with `fault`.
    pub fn inject(&self, route: Route, fault: Fault) {
        self.world().faults.entry(route).or_default().push_back(fault);
    }

    /// Whether machines can be placed in `region`.
    pub fn set_capacity(&self, region: &str, available: bool) {
        let mut w = self.world();
        if available {
            w.no_capacity.remove(region);
        } else {
            w.no_capacity.insert(region.to_owned());
        }
    }

    /// Every machine, destroyed ones included, as the API shows it.
    pub fn machines(&self) -> Vec<Value> {
        let w = self.world();
        w.machines.values().map(|m| w.machine_json(m)).collect()
    }

    pub fn live_machines(&self) -> Vec<Value> {
        self.machines().into_iter().filter(|m| m["state"] != "destroyed").collect()
    }

    pub fn machine(&self, id: &str) -> Option<Value> {
        let w = self.world();
        w.machines.get(id).map(|m| w.machine_json(m))
    }

    pub fn live_volumes(&self) -> Vec<Value> {
        let w = self.world();
        w.volumes.values().filter(|v| v.state != "destroyed").map(|v| w.volume_json(v)).collect()
    }

    /// The machine's env as it was configured.
    pub fn env_of(&self, id: &str) -> std::collections::BTreeMap<String, String> {
        self.world().machines.get(id).map(|m| m.env()).unwrap_or_default()
    }

    pub fn log(&self) -> Vec<Logged> {
        self.world().log.clone()
    }

    /// How many requests on `route` were answered with `status`.
    pub fn count(&self, route: Route, status: u16) -> usize {
        self.log().iter().filter(|l| l.route == route && l.status == status).count()
    }

    /// Leases `machine` as another client would; returns the nonce.
    pub fn hold_lease(&self, machine: &str, ttl: Duration) -> String {
        let now = self.now();
        let mut w = self.world();
        let m = w.machines.get_mut(machine).expect("machine exists");
        let nonce = uuid::Uuid::new_v4().simple().to_string();
        m.lease = Some(leases::Lease {
            nonce: nonce.clone(),
            owner: "someone-else@example.com".into(),
            description: "another operation".into(),
            expires: now + ttl,
        });
        nonce
    }

    /// The live lease of `machine`, if any.
    pub fn lease_of(&self, machine: &str) -> Option<String> {
        let now = self.now();
        let w = self.world();
        let lease = w.machines.get(machine)?.lease.as_ref()?;
        (lease.expires > now).then(|| lease.nonce.clone())
    }

    /// Wait requests received so far.
    pub fn waits_received(&self) -> usize {
        self.shared.waits_received.load(Ordering::SeqCst)
    }

    /// Pids of the processes each booted machine runs.
    pub fn processes(&self) -> Vec<i32> {
        self.world().machines.values().filter_map(|m| m.vm.as_ref()).flat_map(|vm| vm.processes()).collect()
    }

    /// A raw client of the fake's API, for tests of the fake itself.
    pub fn client(&self, token: &str) -> Raw {
        Raw {
            base: format!("{}/v1/apps/{}", self.url, self.app),
            token: token.to_owned(),
            http: reqwest::Client::new(),
        }
    }
}

impl Drop for FakeFly {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
        // Dropping a machine's process kills its whole tree.
        if let Ok(mut w) = self.shared.world.lock() {
            for m in w.machines.values_mut() {
                m.vm.take();
            }
        }
    }
}

/// Applies transitions as they fall due on the real clock.
async fn ticker(shared: Arc<Shared>) {
    let mut changed = shared.changed.subscribe();
    loop {
        let (ticked, next) = {
            let mut w = shared.world.lock().unwrap();
            let now = shared.clock.now();
            (w.tick(now), w.next_due().map(|due| due.saturating_sub(now)))
        };
        if ticked {
            shared.notify();
        }
        tokio::select! {
            _ = changed.changed() => {}
            _ = tokio::time::sleep(next.unwrap_or(Duration::from_secs(3600))) => {}
        }
    }
}

/// Plain HTTP to the fake: `(status, JSON or Null)`.
pub struct Raw {
    pub base: String,
    pub token: String,
    http: reqwest::Client,
}

impl Raw {
    pub async fn call(&self, method: &str, path: &str, body: Option<Value>, nonce: Option<&str>) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = self.http.request(method, format!("{}{path}", self.base)).bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        if let Some(n) = nonce {
            req = req.header("fly-machine-lease-nonce", n);
        }
        let resp = req.send().await.expect("the fake answers");
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await.unwrap();
        (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.call("GET", path, None, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.call("POST", path, Some(body), None).await
    }
}
