//! The fake's state: machines and volumes with their life cycles, leases,
//! rate-limit buckets, injected faults and the request log. Everything here
//! is synchronous and takes the fake clock's `now`, so each rule of the
//! contract is one small function the HTTP layer calls under a lock.
//!
//! A state change is not instant: an action enters the transient state
//! (`starting`, `stopping`, `destroying`, `updating`, `replacing`) and plans
//! the persistent one for later on the fake clock; `tick` applies what is
//! due. Entering `started` boots the machine's process when the fake boots
//! real ones; `stopping` and `destroying` send it SIGTERM; `stopped` and
//! `destroyed` kill what is left.

use super::boot::{Boot, Vm};
use super::leases::Lease;
use super::volumes::Volume;
use super::{Fault, Reply, Route};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::time::Duration;

/// How long the fake's transitions take, on its clock.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub boot: Duration,
    pub stop: Duration,
    pub destroy: Duration,
    pub update: Duration,
    /// How long a volume stays bound to its destroyed machine.
    pub unbind: Duration,
}

pub struct Machine {
    pub id: String,
    pub name: String,
    pub region: String,
    pub state: String,
    pub instance_id: String,
    pub config: Value,
    created: Duration,
    updated: Duration,
    events: Vec<Value>,
    plan: VecDeque<(Duration, &'static str)>,
    pub lease: Option<Lease>,
    pub vm: Option<Vm>,
}

/// One request as the fake answered it.
#[derive(Debug, Clone)]
pub struct Logged {
    pub route: Route,
    pub path: String,
    pub status: u16,
    pub nonce: Option<String>,
}

struct Bucket {
    tokens: f64,
    at: Duration,
}

pub struct World {
    pub timing: Timing,
    pub epoch: DateTime<Utc>,
    pub machines: BTreeMap<String, Machine>,
    pub volumes: BTreeMap<String, Volume>,
    pub faults: HashMap<Route, VecDeque<Fault>>,
    /// Routes answering 429 until then (`Fault::Throttle`).
    pub throttled: HashMap<Route, std::time::Instant>,
    pub no_capacity: HashSet<String>,
    pub rate_limits: bool,
    buckets: HashMap<(Route, String), Bucket>,
    pub log: Vec<Logged>,
    pub boot: Option<Boot>,
}

pub(super) fn new_id(len: usize) -> String {
    uuid::Uuid::new_v4().simple().to_string()[..len].to_owned()
}

pub(super) fn error(status: u16, message: impl Into<String>) -> Reply {
    Reply(status, json!({ "error": message.into() }))
}

/// A Go duration such as `10s`, `1m30s` or `500ms`.
fn is_go_duration(s: &str) -> bool {
    let mut rest = s;
    let mut any = false;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        if digits == 0 {
            return false;
        }
        rest = &rest[digits..];
        let Some(unit) = ["ns", "us", "µs", "ms", "s", "m", "h"].iter().find(|u| rest.starts_with(**u)) else {
            return false;
        };
        rest = &rest[unit.len()..];
        any = true;
    }
    any
}

impl Machine {
    fn enter(&mut self, state: &'static str, at: Duration, epoch: DateTime<Utc>) {
        self.state = state.into();
        self.updated = at;
        let kind = match state {
            "created" => "launch",
            "starting" | "started" => "start",
            "stopping" | "stopped" => "stop",
            "destroying" | "destroyed" => "destroy",
            _ => "update",
        };
        let ts = (epoch + chrono::Duration::from_std(at).unwrap()).timestamp_millis();
        self.events.push(json!({ "id": new_id(26).to_uppercase(), "type": kind, "status": state,
                                 "source": "flyd", "timestamp": ts }));
    }

    fn live(&self) -> bool {
        self.state != "destroyed"
    }

    fn next_due(&self) -> Option<Duration> {
        self.plan.front().map(|(at, _)| *at)
    }

    pub fn env(&self) -> BTreeMap<String, String> {
        serde_json::from_value(self.config["env"].clone()).unwrap_or_default()
    }

    fn volume(&self) -> Option<String> {
        self.config["mounts"].as_array()?.first()?["volume"].as_str().map(str::to_owned)
    }

    pub(super) fn leased_by_other(&self, now: Duration, nonce: Option<&str>) -> Option<Reply> {
        let lease = self.lease.as_ref().filter(|l| l.expires > now)?;
        (nonce != Some(lease.nonce.as_str())).then(|| {
            error(
                409,
                format!(
                    "aborted: machine ID {} lease currently held by {}, expires at {:?}",
                    self.id, lease.owner, lease.expires
                ),
            )
        })
    }
}

impl World {
    pub fn new(timing: Timing, boot: Option<Boot>, rate_limits: bool) -> Self {
        Self {
            timing,
            epoch: Utc::now(),
            machines: BTreeMap::new(),
            volumes: BTreeMap::new(),
            faults: HashMap::new(),
            throttled: HashMap::new(),
            no_capacity: HashSet::new(),
            rate_limits,
            buckets: HashMap::new(),
            log: Vec::new(),
            boot,
        }
    }

    pub(super) fn time(&self, at: Duration) -> String {
        (self.epoch + chrono::Duration::from_std(at).unwrap()).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    }

    /// Takes one token from the bucket of `route` on `key`: 1/s in bursts
    /// of 3 per action per machine, Get Machine 5/s in bursts of 10.
    pub fn take_token(&mut self, now: Duration, route: Route, key: &str) -> bool {
        if !self.rate_limits {
            return true;
        }
        let (rate, burst) = match route {
            Route::GetMachine => (5.0, 10.0),
            Route::UpdateMachine
            | Route::Start
            | Route::Stop
            | Route::DeleteMachine
            | Route::AcquireLease
            | Route::ReleaseLease
            | Route::Wait => (1.0, 3.0),
            _ => return true,
        };
        let b = self.buckets.entry((route, key.to_owned())).or_insert(Bucket { tokens: burst, at: now });
        b.tokens = (b.tokens + (now.saturating_sub(b.at)).as_secs_f64() * rate).min(burst);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    pub fn next_fault(&mut self, route: Route) -> Option<Fault> {
        self.faults.get_mut(&route)?.pop_front()
    }

    /// How long `route` still answers 429, if it is throttled.
    pub fn throttled_for(&self, route: Route) -> Option<Duration> {
        let left = self.throttled.get(&route)?.saturating_duration_since(std::time::Instant::now());
        (!left.is_zero()).then_some(left)
    }

    /// Applies every transition due by `now`; returns whether any was.
    pub fn tick(&mut self, now: Duration) -> bool {
        let mut changed = false;
        let ids: Vec<String> = self.machines.keys().cloned().collect();
        for id in ids {
            while let Some(due) = self.machines[&id].next_due().filter(|due| *due <= now) {
                let (_, state) = self.machines.get_mut(&id).unwrap().plan.pop_front().unwrap();
                self.enter(&id, state, due);
                changed = true;
            }
        }
        for v in self.volumes.values_mut() {
            if v.unbind_at.is_some_and(|at| at <= now) {
                v.unbind_at = None;
                v.machine = None;
                changed = true;
            }
        }
        changed
    }

    /// The earliest time something is planned for.
    pub fn next_due(&self) -> Option<Duration> {
        let machines = self.machines.values().filter_map(Machine::next_due);
        machines.chain(self.volumes.values().filter_map(|v| v.unbind_at)).min()
    }

    pub fn next_due_of(&self, id: &str) -> Option<Duration> {
        self.machines.get(id).and_then(Machine::next_due)
    }

    /// Moves machine `id` into `state` at `at`, with its side effects.
    fn enter(&mut self, id: &str, state: &'static str, at: Duration) {
        let epoch = self.epoch;
        let m = self.machines.get_mut(id).unwrap();
        m.enter(state, at, epoch);
        match state {
            "started" => {
                let volume = m.volume();
                if let Some(boot) = &self.boot {
                    m.vm = match boot.spawn(&m.id, &m.env(), volume.as_deref()) {
                        Ok(vm) => Some(vm),
                        Err(e) => {
                            eprintln!("fake fly: booting {id}: {e}");
                            m.enter("failed", at, epoch);
                            None
                        }
                    };
                }
            }
            "stopping" | "destroying" | "replacing" => {
                if let Some(vm) = &m.vm {
                    vm.terminate();
                }
            }
            "stopped" | "destroyed" | "failed" => {
                m.vm.take();
                if state == "destroyed" {
                    m.lease = None;
                    let unbind_at = at + self.timing.unbind;
                    for v in self.volumes.values_mut().filter(|v| v.machine.as_deref() == Some(id)) {
                        v.unbind_at = Some(unbind_at);
                    }
                }
            }
            _ => {}
        }
    }

    /// Starts a transition now: `first` at once, then the `later` states.
    fn begin(&mut self, id: &str, now: Duration, first: &'static str, later: &[(Duration, &'static str)]) {
        self.enter(id, first, now);
        let m = self.machines.get_mut(id).unwrap();
        m.plan = later.iter().map(|(after, s)| (now + *after, *s)).collect();
    }

    pub fn machine_json(&self, m: &Machine) -> Value {
        let image = m.config["image"].as_str().unwrap_or_default();
        let (repository, tag) = image.rsplit_once(':').unwrap_or((image, "latest"));
        let (registry, repository) = repository.split_once('/').unwrap_or(("docker.io", repository));
        json!({
            "id": m.id, "name": m.name, "state": m.state, "region": m.region,
            "instance_id": m.instance_id, "version": m.instance_id,
            "private_ip": format!("fdaa:0:1:a7b:{}::2", &m.id[..4]),
            "config": m.config,
            "image_ref": { "registry": registry, "repository": repository, "tag": tag,
                           "digest": format!("sha256:{}", new_id(32)), "labels": {} },
            "created_at": self.time(m.created), "updated_at": self.time(m.updated),
            "events": m.events.iter().rev().collect::<Vec<_>>(),
            "host_status": "ok",
        })
    }

    pub(super) fn machine_mut(&mut self, id: &str) -> Result<&mut Machine, Reply> {
        self.machines.get_mut(id).filter(|m| m.live()).ok_or_else(|| error(404, "machine not found"))
    }

    /// Checks a new config: an image, and at most one mount of a volume that
    /// exists in the machine's region and is not bound to another machine.
    fn check_config(&self, config: &Value, region: &str, machine: Option<&str>) -> Result<(), Reply> {
        if config["image"].as_str().is_none_or(str::is_empty) {
            return Err(error(422, "invalid config: image is required"));
        }
        let mounts = config["mounts"].as_array().map(Vec::as_slice).unwrap_or_default();
        if mounts.len() > 1 {
            return Err(error(422, "invalid config: only one mount is supported"));
        }
        for mount in mounts {
            let id = mount["volume"].as_str().unwrap_or_default();
            let v = self
                .volumes
                .get(id)
                .filter(|v| v.state != "destroyed")
                .ok_or_else(|| error(422, format!("volume {id} not found")))?;
            if v.region != region {
                return Err(error(422, format!("volume {id} is in {}, not {region}", v.region)));
            }
            if let Some(holder) = v.machine.as_deref().filter(|h| Some(*h) != machine) {
                return Err(error(422, format!("volume {id} is already attached to machine {holder}")));
            }
        }
        Ok(())
    }

    fn capacity(&self, region: &str) -> Result<(), Reply> {
        if self.no_capacity.contains(region) {
            return Err(Reply(
                412,
                json!({ "error": "insufficient resources available to fulfill request: could not reserve resource \
                                  for machine: insufficient memory available to fulfill request",
                        "status": "insufficient_capacity" }),
            ));
        }
        Ok(())
    }

    pub fn create_machine(&mut self, now: Duration, body: &Value) -> Result<Reply, Reply> {
        let config = body.get("config").filter(|c| c.is_object()).ok_or_else(|| error(422, "config is required"))?;
        let region = body["region"].as_str().unwrap_or("iad").to_owned();
        let id = new_id(14);
        let name = body["name"].as_str().map_or_else(|| format!("machine-{id}"), str::to_owned);
        if self.machines.values().any(|m| m.live() && m.name == name) {
            return Err(Reply(
                409,
                json!({ "error": format!("a machine named {name} already exists"), "status": "name_taken" }),
            ));
        }
        self.check_config(config, &region, None)?;
        self.capacity(&region)?;
        let m = Machine {
            id: id.clone(),
            name,
            region,
            state: String::new(),
            instance_id: new_id(26).to_uppercase(),
            config: config.clone(),
            created: now,
            updated: now,
            events: vec![],
            plan: VecDeque::new(),
            lease: None,
            vm: None,
        };
        let volume = m.volume();
        self.machines.insert(id.clone(), m);
        if let Some(v) = volume.and_then(|v| self.volumes.get_mut(&v)) {
            v.machine = Some(id.clone());
        }
        self.enter(&id, "created", now);
        if !body["skip_launch"].as_bool().unwrap_or(false) {
            let boot = self.timing.boot;
            let m = self.machines.get_mut(&id).unwrap();
            m.plan = [(now, "starting"), (now + boot, "started")].into();
        }
        Ok(Reply(200, self.machine_json(&self.machines[&id])))
    }

    pub fn update_machine(
        &mut self,
        now: Duration,
        id: &str,
        body: &Value,
        nonce: Option<&str>,
    ) -> Result<Reply, Reply> {
        let t = self.timing;
        let m = self.machine_mut(id)?;
        if let Some(r) = m.leased_by_other(now, nonce) {
            return Err(r);
        }
        let region = m.region.clone();
        let (old_volume, state) = (m.volume(), m.state.clone());
        let config = body.get("config").filter(|c| c.is_object()).ok_or_else(|| error(422, "config is required"))?;
        self.check_config(config, &region, Some(id))?;
        let new_volume = config["mounts"][0]["volume"].as_str().map(str::to_owned);
        if old_volume.is_some() && new_volume != old_volume {
            return Err(error(422, "changing a machine's volume is not supported"));
        }
        let m = self.machines.get_mut(id).unwrap();
        m.config = config.clone();
        m.instance_id = new_id(26).to_uppercase();
        let skip = body["skip_launch"].as_bool().unwrap_or(false);
        match (state.as_str(), skip) {
            ("started", _) => self.begin(id, now, "replacing", &[(t.boot, "started")]),
            ("stopped" | "created" | "failed", true) => {
                let back: &'static str = if state == "created" { "created" } else { "stopped" };
                self.begin(id, now, "updating", &[(t.update, back)]);
            }
            ("stopped" | "created" | "failed", false) => {
                self.begin(id, now, "replacing", &[(t.update, "starting"), (t.update + t.boot, "started")])
            }
            (s, _) => return Err(error(412, format!("failed_precondition: machine is {s}"))),
        }
        Ok(Reply(200, self.machine_json(&self.machines[id])))
    }

    pub fn start(&mut self, now: Duration, id: &str, nonce: Option<&str>) -> Result<Reply, Reply> {
        let boot = self.timing.boot;
        let region = self.machine_mut(id)?.region.clone();
        let m = self.machine_mut(id)?;
        if let Some(r) = m.leased_by_other(now, nonce) {
            return Err(r);
        }
        let previous = m.state.clone();
        if !matches!(previous.as_str(), "created" | "stopped" | "suspended" | "failed") {
            return Err(error(
                412,
                format!("failed_precondition: machine still active ({previous}), refusing to start"),
            ));
        }
        self.capacity(&region)?;
        self.begin(id, now, "starting", &[(boot, "started")]);
        Ok(Reply(200, json!({ "previous_state": previous, "migrated": false, "new_host": "" })))
    }

    pub fn stop(&mut self, now: Duration, id: &str, body: &Value, nonce: Option<&str>) -> Result<Reply, Reply> {
        if let Some(signal) = body.get("signal").filter(|s| !s.is_null())
            && !signal.as_str().is_some_and(|s| s.starts_with("SIG"))
        {
            return Err(error(400, "invalid signal"));
        }
        if let Some(timeout) = body.get("timeout").filter(|t| !t.is_null())
            && !timeout.as_str().is_some_and(is_go_duration)
        {
            return Err(error(400, "invalid timeout: want a duration such as \"10s\""));
        }
        let stop = self.timing.stop;
        let m = self.machine_mut(id)?;
        if let Some(r) = m.leased_by_other(now, nonce) {
            return Err(r);
        }
        if matches!(m.state.as_str(), "started" | "starting" | "replacing" | "restarting") {
            self.begin(id, now, "stopping", &[(stop, "stopped")]);
        }
        Ok(Reply(200, json!({ "ok": true })))
    }

    pub fn destroy(&mut self, now: Duration, id: &str, force: bool, nonce: Option<&str>) -> Result<Reply, Reply> {
        let destroy = self.timing.destroy;
        let m = self.machine_mut(id)?;
        if let Some(r) = m.leased_by_other(now, nonce) {
            return Err(r);
        }
        if m.state == "destroying" {
            return Ok(Reply(200, Value::Null));
        }
        if !force && !matches!(m.state.as_str(), "stopped" | "created" | "failed" | "suspended") {
            return Err(error(412, "failed_precondition: unable to destroy machine, not currently stopped"));
        }
        self.begin(id, now, "destroying", &[(destroy, "destroyed")]);
        Ok(Reply(200, Value::Null))
    }
}
