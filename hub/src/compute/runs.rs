//! The local provider's timeline of each VM's runs: `runs.log` beside the
//! VM, one line when a run starts (`start KEY UNIX_MS`, written by the
//! provider just before it spawns the sandbox) and one when it ends (`end
//! KEY UNIX_MS`), written by a small watcher process started with the VM
//! and detached from the hub — so an end is recorded while no hub runs — and
//! by the provider's own stop once the outermost process has exited. The
//! earliest end of a run counts, and a run is not over while its watcher
//! lives: between the process's exit and the watcher's line it still
//! counts as running, so the meter never closes it early at its last tick. Nothing inside the VM can write the file (it lives
//! outside the VM's root and home).

use super::Run;
use chrono::{DateTime, TimeZone, Utc};
use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

/// The file's name in the VM's folder.
pub const LOG: &str = "runs.log";
/// Lines kept when the file is rewritten at a start (the newest).
const KEEP: usize = 200;

fn append(log: &Path, line: &str) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new().create(true).append(true).mode(0o600).open(log)?;
    f.write_all(line.as_bytes())
}

/// Records that run `key` started at `at`.
pub fn started(log: &Path, key: &str, at: DateTime<Utc>) -> std::io::Result<()> {
    if let Ok(text) = std::fs::read_to_string(log) {
        let lines: Vec<&str> = text.lines().collect();
        if lines.len() > KEEP * 2 {
            let kept = lines[lines.len() - KEEP..].join("\n") + "\n";
            let tmp = log.with_extension("tmp");
            std::fs::write(&tmp, kept)?;
            std::fs::rename(tmp, log)?;
        }
    }
    append(log, &format!("start {key} {}\n", at.timestamp_millis()))
}

/// Records that run `key` ended at `at` (an earlier end, if any, stands).
pub fn ended(log: &Path, key: &str, at: DateTime<Utc>) -> std::io::Result<()> {
    append(log, &format!("end {key} {}\n", at.timestamp_millis()))
}

/// Starts the watcher of the run `key`, whose outermost process is `pid`:
/// it appends the run's end to `log` once `pid` has exited. It is its own
/// process group, outside the VM's cgroups, so it outlives the hub and
/// isn't killed with the VM. Returns the watcher's pid.
pub fn watch(pid: u32, key: &str, log: &Path) -> Option<u32> {
    // Polls the process's state (a zombie whose parent, the hub, is gone
    // has exited too), four times a second.
    let script = r#"while read -r _ _ st _ 2>/dev/null < "/proc/$1/stat" && [ "$st" != Z ] && [ "$st" != X ]; do sleep 0.25; done; printf 'end %s %s\n' "$2" "$(date +%s%3N)" >> "$3""#;
    let mut cmd = std::process::Command::new("sh");
    cmd.args(["-c", script, "aether-run-watch", &pid.to_string(), key])
        .arg(log)
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    match cmd.spawn() {
        Ok(mut child) => {
            let watcher = child.id();
            // Reaped while the hub lives; init reaps it otherwise.
            std::thread::spawn(move || {
                let _ = child.wait();
            });
            Some(watcher)
        }
        Err(e) => {
            tracing::warn!(error = %e, "starting a VM's run watcher; its end will be the hub's");
            None
        }
    }
}

/// Whether `pid` is the live watcher of run `key`.
pub fn watches(pid: u32, key: &str) -> bool {
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
    // sh -c SCRIPT aether-run-watch PID KEY LOG
    args.get(3) == Some(&&b"aether-run-watch"[..]) && args.get(5) == Some(&key.as_bytes())
}

fn ms(v: &str) -> Option<DateTime<Utc>> {
    Utc.timestamp_millis_opt(v.parse().ok()?).single()
}

/// The runs in `log`, oldest first; `current` is the run whose processes
/// live now, if any.
pub fn read(log: &Path, current: Option<&str>) -> Vec<Run> {
    parse(&std::fs::read_to_string(log).unwrap_or_default(), current)
}

fn parse(text: &str, current: Option<&str>) -> Vec<Run> {
    let mut runs: Vec<Run> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut ends: HashMap<String, DateTime<Utc>> = HashMap::new();
    for line in text.lines() {
        let mut f = line.split(' ');
        match (f.next(), f.next(), f.next().and_then(ms)) {
            (Some("start"), Some(key), Some(at)) if !index.contains_key(key) => {
                index.insert(key.to_owned(), runs.len());
                runs.push(Run { key: key.to_owned(), started_at: at, ended_at: None, running: false });
            }
            (Some("end"), Some(key), Some(at)) => {
                let e = ends.entry(key.to_owned()).or_insert(at);
                *e = (*e).min(at);
            }
            _ => {}
        }
    }
    for run in &mut runs {
        run.ended_at = ends.get(&run.key).map(|e| (*e).max(run.started_at));
        run.running = run.ended_at.is_none() && current == Some(run.key.as_str());
    }
    runs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_earliest_end_of_each_run_counts() {
        let text = "start 10-1000 1000\nend 10-1000 5000\nend 10-1000 4000\nstart 11-6000 6000\nbad line\n\
                    start 12-9000 9000\n";
        let runs = parse(text, Some("12-9000"));
        assert_eq!(runs.len(), 3);
        assert_eq!(runs[0].ended_at, ms("4000"));
        assert!(!runs[0].running);
        // Neither running nor ended: it ended while nothing watched.
        assert_eq!((runs[1].ended_at, runs[1].running), (None, false));
        assert_eq!((runs[2].ended_at, runs[2].running), (None, true));
    }

    #[test]
    fn the_watcher_writes_the_end_when_the_process_exits() {
        let dir = std::env::temp_dir().join(format!("aether-runs-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join(LOG);
        let mut child = std::process::Command::new("sleep").arg("0.3").spawn().unwrap();
        // A zombie counts as exited: it isn't reaped here until later.
        let at = Utc::now();
        started(&log, "k", at).unwrap();
        let watcher = watch(child.id(), "k", &log).unwrap();
        assert!(watches(watcher, "k") && !watches(watcher, "other"));
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let exited = loop {
            let stat = std::fs::read_to_string(format!("/proc/{}/stat", child.id())).unwrap();
            if stat.rsplit_once(") ").is_some_and(|(_, rest)| rest.starts_with('Z')) {
                break Utc::now();
            }
            assert!(std::time::Instant::now() < deadline, "sleep did not exit");
            std::thread::sleep(std::time::Duration::from_millis(5));
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let run = loop {
            let runs = read(&log, None);
            if runs[0].ended_at.is_some() {
                break runs[0].clone();
            }
            assert!(std::time::Instant::now() < deadline, "no end written");
            std::thread::sleep(std::time::Duration::from_millis(20));
        };
        let end = run.ended_at.unwrap();
        assert!(end >= at && (end - exited).num_milliseconds().abs() < 600, "{run:?} exited {exited}");
        // Its watcher is gone once it has written the end.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while watches(watcher, "k") {
            assert!(std::time::Instant::now() < deadline, "the watcher outlived its line");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        child.wait().unwrap();
        std::fs::remove_dir_all(dir).unwrap();
    }
}
