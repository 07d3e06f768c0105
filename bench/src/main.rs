//! `aether-bench`: the terminal path measured end to end through a real hub,
//! QUIC tunnel and aetherd on loopback, each figure beside the same figure
//! for a bare local PTY measured in the same run.
//!
//! Run with `make bench` (release build). It starts its own hub (embedded
//! Postgres, local provider) in a temporary folder and removes it after.

// Printing the report is this binary's job.
#![allow(clippy::print_stdout)]

mod bare;
mod files;
mod hub;
mod previews;
mod ssh;
mod tunnels;

use std::time::Duration;

/// Keystrokes measured for the echo round trip.
pub const KEYSTROKES: usize = 2000;
/// Bytes fed to base64 for the bulk test (≈200 MB of terminal output).
pub const BULK_INPUT: u64 = 150_000_000;
/// Stop-then-start cycles timed for the VM start figure.
pub const VM_STARTS: usize = 5;
/// Idle tunnels opened for the hub memory figure.
pub const TUNNELS: usize = 1000;

/// p50 and p99 of a set of durations, in microseconds.
pub fn percentiles(mut v: Vec<Duration>) -> (f64, f64) {
    v.sort();
    let at = |q: f64| v[((v.len() as f64 * q) as usize).min(v.len() - 1)].as_secs_f64() * 1e6;
    (at(0.50), at(0.99))
}

/// Resident memory of a process, in bytes.
pub fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0)
        * 1024
}

fn main() -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    match std::env::args().nth(1).as_deref() {
        None | Some("terminal") => terminal(&rt),
        Some("files") => files::run(&rt),
        Some("previews") => previews::run(&rt),
        Some("ssh") => ssh::run(&rt),
        Some(other) => anyhow::bail!("unknown benchmark {other:?}; one of: terminal (default), files, previews, ssh"),
    }
}

fn terminal(rt: &tokio::runtime::Runtime) -> anyhow::Result<()> {
    eprintln!("bare PTY: echo and bulk output ...");
    let bare_echo = percentiles(bare::echo(KEYSTROKES)?);
    let bare_bulk = bare::bulk(BULK_INPUT)?;

    let hub = rt.block_on(hub::Hub::start())?;
    let result = rt.block_on(async {
        eprintln!("through hub + tunnel: echo and bulk output ...");
        let first = std::time::Instant::now();
        let project = hub.running_project().await?;
        let first_start = first.elapsed();
        let echo = percentiles(hub.echo(&project, KEYSTROKES).await?);
        let bulk = hub.bulk(&project, BULK_INPUT).await?;
        let aetherd_rss = hub.aetherd_rss(&project).await?;
        eprintln!("VM starts ...");
        let mut starts = hub.start_times(&project, VM_STARTS).await?;
        starts.sort();
        let starts = (first_start, starts[starts.len() / 2]);
        eprintln!("hub memory with {TUNNELS} idle tunnels ...");
        let tunnels = tunnels::measure(&hub, TUNNELS).await?;
        anyhow::Ok((echo, bulk, aetherd_rss, tunnels, starts))
    });
    rt.block_on(hub.stop());
    let (echo, bulk, aetherd_rss, tunnels, starts) = result?;

    let mb = |bytes: u64, d: Duration| bytes as f64 / 1e6 / d.as_secs_f64();
    let bare_mbs = mb(bare_bulk.0, bare_bulk.1);
    let hub_mbs = mb(bulk.delivered, bulk.elapsed);
    println!("aether terminal benchmark ({KEYSTROKES} keystrokes; {:.0} MB of output)", bulk.total as f64 / 1e6);
    println!("{:<44} {:>14} {:>14} {:>8}", "figure", "hub+tunnel", "bare PTY", "ratio");
    println!("{:<44} {:>14.1} {:>14.1} {:>7.2}x", "keystroke echo p50 (µs)", echo.0, bare_echo.0, echo.0 / bare_echo.0);
    println!("{:<44} {:>14.1} {:>14.1} {:>7.2}x", "keystroke echo p99 (µs)", echo.1, bare_echo.1, echo.1 / bare_echo.1);
    println!(
        "{:<44} {:>14.1} {:>14.1} {:>7.0}%",
        "bulk output (MB/s delivered)",
        hub_mbs,
        bare_mbs,
        100.0 * hub_mbs / bare_mbs
    );
    println!("{:<44} {:>14}", "bulk output: bytes skipped for a slow viewer", bulk.total - bulk.delivered);
    println!("{:<44} {:>14.1}", "aetherd RSS, idle, one session (MB)", aetherd_rss as f64 / 1e6);
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!("{:<44} {:>14.0}", "VM first start, to running (ms)", ms(starts.0));
    println!("{:<44} {:>14.0}", format!("VM start, stopped to running, median of {VM_STARTS} (ms)"), ms(starts.1));
    println!(
        "{:<44} {:>14.1}   (hub RSS {:.1} MB -> {:.1} MB)",
        format!("hub RSS per idle tunnel, {} tunnels (KB)", tunnels.connected),
        (tunnels.after.saturating_sub(tunnels.before)) as f64 / tunnels.connected.max(1) as f64 / 1024.0,
        tunnels.before as f64 / 1e6,
        tunnels.after as f64 / 1e6,
    );
    Ok(())
}
