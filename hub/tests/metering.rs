//! Metering against the provider's truth: a local VM's life is driven
//! through everything that used to bend the meter (aetherd frozen with
//! SIGSTOP, aetherd killed, the hub killed and restarted, the machine
//! stopped while no hub runs), while the test watches the sandbox's real
//! lifetime from outside (its outermost process's start and exit). The
//! metered seconds must match that lifetime within max(0.5 %, 2 s), with
//! every run recorded once and no two records overlapping.

mod support;

use serde_json::json;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use support::{TempDir, TestHub};

fn wall_now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs_f64()
}

/// `/proc/PID/stat`'s state letter and start time (clock ticks since boot).
fn stat(pid: i32) -> Option<(char, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = text.rsplit_once(") ")?;
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let start = fields.nth(18)?.parse().ok()?;
    Some((state, start))
}

fn alive(pid: i32) -> bool {
    stat(pid).is_some_and(|(s, _)| s != 'Z' && s != 'X')
}

/// When `pid` started, as wall-clock seconds.
fn started_at(pid: i32) -> Option<f64> {
    let (_, ticks) = stat(pid)?;
    let uptime: f64 = std::fs::read_to_string("/proc/uptime").ok()?.split_whitespace().next()?.parse().ok()?;
    Some(wall_now() - (uptime - ticks as f64 / 100.0))
}

/// One sandbox as seen from outside: its pid, start and end (epoch seconds).
type Seen = (i32, f64, Option<f64>);

/// The sandbox's lifetimes as the test sees them: every 5 ms, the pid the
/// provider keeps for the VM; a new live pid starts an interval (at its
/// process's start time), a dead one ends it.
#[derive(Clone, Default)]
struct Truth {
    runs: Arc<Mutex<Vec<Seen>>>,
    stop: Arc<AtomicBool>,
}

impl Truth {
    fn watch(pid_file: PathBuf) -> Self {
        let truth = Truth::default();
        let t = truth.clone();
        std::thread::spawn(move || {
            while !t.stop.load(Ordering::Relaxed) {
                let mut runs = t.runs.lock().unwrap();
                for run in runs.iter_mut().filter(|r| r.2.is_none()) {
                    if !alive(run.0) {
                        run.2 = Some(wall_now());
                    }
                }
                let pid = std::fs::read_to_string(&pid_file).ok().and_then(|s| s.trim().parse::<i32>().ok());
                if let Some(pid) = pid
                    && alive(pid)
                    && !runs.iter().any(|r| r.0 == pid && r.2.is_none())
                    && let Some(start) = started_at(pid)
                {
                    runs.push((pid, start, None));
                }
                drop(runs);
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        truth
    }

    fn runs(&self) -> Vec<Seen> {
        self.runs.lock().unwrap().clone()
    }

    fn seconds(&self) -> f64 {
        self.runs().iter().map(|(_, s, e)| e.unwrap_or_else(wall_now) - s).sum()
    }
}

const ENV: [(&str, &str); 3] =
    [("AETHER_REVIVE_AFTER_MS", "3000"), ("AETHER_METER_INTERVAL_MS", "300"), ("AETHER_IDLE_TIMEOUT_S", "3600")];

async fn status(api: &support::Api, id: &str) -> String {
    api.get(&format!("/api/projects/{id}")).await.1["status"].as_str().unwrap_or_default().to_owned()
}

/// Waits until the VM runs a sandbox the truth hasn't seen before `seen`
/// and the project is running.
async fn new_run_running(api: &support::Api, id: &str, truth: &Truth, seen: usize) {
    support::eventually("a new run of the VM, running", Duration::from_secs(60), || {
        let (api, id, truth) = (api.clone(), id.to_owned(), truth.clone());
        async move { (truth.runs().len() > seen && status(&api, &id).await == "running").then_some(()) }
    })
    .await;
}

/// The records of the project: (run key, start, end) as epoch seconds.
async fn records(pool: &sqlx::PgPool, id: &str) -> Vec<(String, f64, Option<f64>)> {
    sqlx::query_as(
        "SELECT run_key, EXTRACT(EPOCH FROM started_at)::float8, EXTRACT(EPOCH FROM ended_at)::float8 \
         FROM usage_records WHERE project_id = $1::uuid ORDER BY started_at",
    )
    .bind(id)
    .fetch_all(pool)
    .await
    .unwrap()
}

async fn used(api: &support::Api) -> i64 {
    let (s, v) = api.get("/api/billing/usage").await;
    assert_eq!(s, 200, "{v}");
    v["compute_seconds_used"].as_i64().unwrap()
}

#[tokio::test]
async fn metered_seconds_match_the_sandboxs_lifetime_whatever_happens_to_aetherd_and_the_hub() {
    support::init();
    let dir = TempDir::new("aether-metering");
    let db = support::fresh_database().await;
    let mut hub = TestHub::spawn(&dir.0, Some(db.clone()), "127.0.0.1:0", &ENV);
    hub.wait_ready().await;
    let tunnel = format!("127.0.0.1:{}", hub.tunnel.port());
    let mut api = hub.user().await;
    let id = api.project("metered").await;
    let vm_dir = dir.0.join("vms").join(&id);
    let truth = Truth::watch(vm_dir.join("vm.pid"));
    let pool = sqlx::PgPool::connect(&db).await.unwrap();

    let (s, v) = api.post(&format!("/api/projects/{id}/start?wait=true"), json!({})).await;
    assert_eq!((s, v["status"].as_str()), (200, Some("running")), "{v}");
    assert_eq!(truth.runs().len(), 1);

    // A running VM's time counts up to now.
    support::eventually("usage up to now", Duration::from_secs(20), || {
        let (api, truth) = (api.clone(), truth.clone());
        async move {
            let t = truth.seconds();
            (t > 3.0 && (used(&api).await as f64 - t).abs() <= 2.0).then_some(())
        }
    })
    .await;

    // aetherd frozen: the tunnel goes silent, the sandbox runs on (and is
    // billed) until the hub restarts the machine.
    let frozen = support::aetherd_pid(&id);
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(frozen), nix::sys::signal::Signal::SIGSTOP).unwrap();
    new_run_running(&api, &id, &truth, 1).await;

    // aetherd killed: the sandbox ends with it, and the provider's restart
    // policy boots a new one.
    let killed = support::aetherd_pid(&id);
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(killed), nix::sys::signal::Signal::SIGKILL).unwrap();
    new_run_running(&api, &id, &truth, 2).await;

    // The hub killed while the VM runs, and back after a while.
    hub.kill_hard();
    let seen = truth.runs().len();
    support::eventually("time passing without a hub", Duration::from_secs(10), || {
        let truth = truth.clone();
        async move { (truth.runs().last().is_some_and(|r| wall_now() - r.1 > 4.0)).then_some(()) }
    })
    .await;
    let mut hub = TestHub::spawn(&dir.0, Some(db.clone()), &tunnel, &ENV);
    hub.wait_ready().await;
    api.base = hub.http.clone();
    support::eventually("running again after the hub's restart", Duration::from_secs(60), || {
        let (api, id) = (api.clone(), id.clone());
        async move { (status(&api, &id).await == "running").then_some(()) }
    })
    .await;
    assert!(truth.runs().len() >= seen, "{:?}", truth.runs());
    // Settled: running, on a run older than the hub's revive delay.
    support::eventually("a settled VM", Duration::from_secs(60), || {
        let (api, id, truth) = (api.clone(), id.clone(), truth.clone());
        async move {
            let settled = truth.runs().last().is_some_and(|r| r.2.is_none() && wall_now() - r.1 > 4.0);
            (settled && status(&api, &id).await == "running").then_some(())
        }
    })
    .await;

    // The hub killed again, and the machine stopped while it is down, as
    // the provider stops it: nothing to restart, every process ended.
    hub.kill_hard();
    std::fs::remove_file(vm_dir.join("spec.json")).unwrap();
    support::kill_vms(&dir.0);
    support::eventually("the sandbox gone", Duration::from_secs(20), || {
        let truth = truth.clone();
        async move { truth.runs().iter().all(|r| r.2.is_some()).then_some(()) }
    })
    .await;
    // A while later, the hub comes back and settles what it missed.
    let stopped_at = wall_now();
    support::eventually("time passing", Duration::from_secs(10), || async move {
        (wall_now() - stopped_at > 3.0).then_some(())
    })
    .await;
    let mut hub = TestHub::spawn(&dir.0, Some(db.clone()), &tunnel, &ENV);
    hub.wait_ready().await;
    api.base = hub.http.clone();
    let recs = support::eventually("every record closed", Duration::from_secs(20), || {
        let (pool, id, api) = (pool.clone(), id.clone(), api.clone());
        async move {
            let recs = records(&pool, &id).await;
            (recs.iter().all(|r| r.2.is_some()) && status(&api, &id).await == "stopped").then_some(recs)
        }
    })
    .await;
    truth.stop.store(true, Ordering::Relaxed);

    let runs = truth.runs();
    let true_s = truth.seconds();
    let metered_s: f64 = recs.iter().map(|r| r.2.unwrap() - r.1).sum();
    let api_s = used(&api).await;
    let tolerance = (true_s * 0.005).max(2.0);
    eprintln!(
        "metering: truth {true_s:.3} s over {} runs, metered {metered_s:.3} s over {} records (API {api_s} s), \
         off by {:.3} s; runs {runs:?}; records {recs:?}",
        runs.len(),
        recs.len(),
        metered_s - true_s
    );
    assert!((metered_s - true_s).abs() <= tolerance, "metered {metered_s} vs truth {true_s}");
    assert!((api_s as f64 - true_s).abs() <= tolerance + 1.0, "API {api_s} vs truth {true_s}");
    // Each run once, none overlapping: nothing counted twice.
    assert_eq!(recs.len(), runs.len(), "records {recs:?} vs runs {runs:?}");
    for pair in recs.windows(2) {
        assert!(pair[1].1 >= pair[0].2.unwrap(), "overlapping records {pair:?}");
    }
    for (rec, run) in recs.iter().zip(&runs) {
        assert!((rec.1 - run.1).abs() < 1.0, "start {rec:?} vs {run:?}");
        assert!((rec.2.unwrap() - run.2.unwrap()).abs() < 1.0, "end {rec:?} vs {run:?}");
    }
    // Time that passes now adds nothing: the VM is stopped.
    let before = used(&api).await;
    let later = wall_now();
    support::eventually("a second passing", Duration::from_secs(5), || async move {
        (wall_now() - later > 1.5).then_some(())
    })
    .await;
    assert_eq!(used(&api).await, before);
    drop(hub);
}

#[tokio::test]
async fn plans_are_data_and_the_monthly_roll_up_splits_runs_at_month_ends() {
    let hub = TestHub::start().await;
    let api = hub.user().await;
    let pool = hub.db().await;

    // A plan change is an UPDATE: it holds at once.
    sqlx::query("UPDATE plan_limits SET projects = 1, compute_seconds = 7200 WHERE plan = 'free'")
        .execute(&pool)
        .await
        .unwrap();
    let id = api.project("one").await;
    let (s, v) = api.post("/api/projects", json!({ "name": "two" })).await;
    assert_eq!((s, v["error"]["code"].as_str()), (422, Some("limit_reached")), "{v}");
    let (_, u) = api.get("/api/billing/usage").await;
    assert_eq!((u["compute_seconds_limit"].as_i64(), u["projects_limit"].as_i64()), (Some(7200), Some(1)), "{u}");
    let plans = u["plans"].as_array().unwrap();
    assert_eq!(plans.iter().map(|p| p["plan"].as_str().unwrap()).collect::<Vec<_>>(), ["free", "pro", "team"]);
    assert!(plans[1]["compute_seconds"].as_i64() > plans[0]["compute_seconds"].as_i64(), "{u}");

    // A run from an hour before this month to an hour into it, recorded
    // late (closed after the fact): an hour in each month.
    sqlx::query(
        "INSERT INTO usage_records (id, project_id, owner_id, run_key, started_at, ended_at, last_tick_at, cpus, memory_mb) \
         SELECT gen_random_uuid(), p.id, p.owner_id, 'late', m - interval '1 hour', m + interval '1 hour', \
                m + interval '1 hour', 1, 2048 \
         FROM projects p, (SELECT date_trunc('month', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS m) month \
         WHERE p.id = $1::uuid",
    )
    .bind(&id)
    .execute(&pool)
    .await
    .unwrap();
    let (_, u) = api.get("/api/billing/usage").await;
    assert_eq!(u["compute_seconds_used"], 3600, "{u}");
    assert_eq!(u["by_project"][0]["name"], "one", "{u}");
    let day = &u["by_day"][0];
    assert_eq!(
        (day["compute_seconds"].as_i64(), day["date"].as_str()),
        (Some(3600), u["period_start"].as_str().map(|s| &s[..10])),
        "{u}"
    );
    let (s, months) = api.get("/api/billing/usage/monthly").await;
    assert_eq!(s, 200, "{months}");
    let seconds: Vec<i64> = months.as_array().unwrap().iter().map(|m| m["compute_seconds"].as_i64().unwrap()).collect();
    assert_eq!(seconds, [3600, 3600], "{months}");
    assert_eq!((months[0]["cpus"].as_i64(), months[0]["memory_mb"].as_i64()), (Some(1), Some(2048)));

    // Another user sees none of it.
    let other = hub.user().await;
    let (_, theirs) = other.get("/api/billing/usage/monthly").await;
    assert_eq!(theirs, json!([]));
}
