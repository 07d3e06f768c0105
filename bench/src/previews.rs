//! `aether-bench previews`: HTTP through a preview URL beside the same server
//! reached directly and through an nginx reverse-proxy hop, with wrk.
//!
//! The server is nginx serving static files inside the VM (started from a
//! terminal, as a user would); the proxy hop is a second nginx with an
//! upstream keep-alive pool. Needs `wrk` and `nginx` (Debian: wrk,
//! nginx-light).
//!
//! Runs on a small shared machine vary by ±20 % from one to the next, so
//! each figure is the median of `AETHER_BENCH_ROUNDS` (default 3) rounds,
//! and each round runs the three targets back to back: the comparison is
//! always between runs made a few seconds apart.

use crate::hub::Hub;
use futures_util::SinkExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

const SECONDS: u32 = 5;

fn rounds() -> usize {
    std::env::var("AETHER_BENCH_ROUNDS").ok().and_then(|v| v.parse().ok()).filter(|n| *n > 0).unwrap_or(3)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn nginx_conf(dir: &Path, port: u16, body: &str) -> anyhow::Result<std::path::PathBuf> {
    std::fs::create_dir_all(dir.join("logs"))?;
    let conf = dir.join("nginx.conf");
    std::fs::write(
        &conf,
        format!(
            // `user`: run as root (CI, a fresh machine), nginx's workers
            // would otherwise drop to `nobody`, who can't read the VM's home;
            // as anyone else nginx ignores it.
            "user root;\nworker_processes 1;\ndaemon off;\nenv AETHER_PROJECT_ID;\npid {d}/nginx.pid;\nerror_log {d}/logs/error.log;\n\
             events {{ worker_connections 1024; }}\nhttp {{\n access_log off;\n client_body_temp_path {d}/tmp;\n\
             proxy_temp_path {d}/tmp;\n fastcgi_temp_path {d}/tmp;\n uwsgi_temp_path {d}/tmp;\n scgi_temp_path {d}/tmp;\n\
             keepalive_requests 1000000;\n server {{\n  listen 127.0.0.1:{port};\n{body}\n }}\n}}\n",
            d = dir.display()
        ),
    )?;
    std::fs::create_dir_all(dir.join("tmp"))?;
    Ok(conf)
}

struct Nginx(Child);

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM, not SIGKILL: nginx's master then takes its workers down
        // with it (a killed master leaves them running).
        let _ = Command::new("kill").arg(self.0.id().to_string()).status();
        let _ = self.0.wait();
    }
}

/// One wrk run's figures.
#[derive(Debug, Default, Clone, Copy)]
struct Wrk {
    requests: f64,
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    mb_s: f64,
}

fn parse_duration_ms(s: &str) -> f64 {
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| c.is_alphabetic()).unwrap_or(s.len()));
    let v: f64 = num.parse().unwrap_or(f64::NAN);
    match unit {
        "us" => v / 1000.0,
        "ms" => v,
        "s" => v * 1000.0,
        _ => f64::NAN,
    }
}

fn parse_size_mb(s: &str) -> f64 {
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| c.is_alphabetic()).unwrap_or(s.len()));
    let v: f64 = num.parse().unwrap_or(f64::NAN);
    match unit {
        "B" => v / 1e6,
        "KB" => v * 1024.0 / 1e6,
        "MB" => v * 1024.0 * 1024.0 / 1e6,
        "GB" => v * 1024.0 * 1024.0 * 1024.0 / 1e6,
        _ => f64::NAN,
    }
}

fn wrk(url: &str, host: Option<&str>, connections: u32) -> anyhow::Result<Wrk> {
    let mut cmd = Command::new("wrk");
    cmd.args(["-t1", &format!("-c{connections}"), &format!("-d{SECONDS}s"), "--latency"]);
    if let Some(h) = host {
        cmd.args(["-H", &format!("Host: {h}")]);
    }
    let out = cmd.arg(url).stderr(Stdio::inherit()).output()?;
    anyhow::ensure!(out.status.success(), "wrk failed");
    let text = String::from_utf8_lossy(&out.stdout);
    anyhow::ensure!(!text.contains("Non-2xx"), "wrk saw errors:\n{text}");
    let mut r = Wrk::default();
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        match f.as_slice() {
            [n, "requests", "in", ..] => r.requests = n.parse().unwrap_or(f64::NAN),
            ["Requests/sec:", v] => r.rps = v.parse().unwrap_or(f64::NAN),
            ["Transfer/sec:", v] => r.mb_s = parse_size_mb(v),
            ["50%", v] => r.p50_ms = parse_duration_ms(v),
            ["99%", v] => r.p99_ms = parse_duration_ms(v),
            _ => {}
        }
    }
    Ok(r)
}

pub fn run(rt: &tokio::runtime::Runtime) -> anyhow::Result<()> {
    for tool in ["wrk", "nginx"] {
        let found =
            Command::new("sh").args(["-c", &format!("command -v {tool} || test -x /usr/sbin/{tool}")]).output()?;
        anyhow::ensure!(found.status.success(), "{tool} is needed: apt-get install -y wrk nginx-light");
    }
    let hub = rt.block_on(Hub::start())?;
    let result = rt.block_on(measure(&hub));
    rt.block_on(hub.stop());
    let rows = result?;
    println!("aether previews benchmark (wrk, {SECONDS} s per run; medians of {} rounds)", rounds());
    println!("{:<36} {:>12} {:>12} {:>12} {:>12}", "", "direct", "nginx hop", "preview", "preview/nginx");
    for (name, [d, n, p]) in rows {
        let times = ["p50", "p99", "CPU"].iter().any(|t| name.contains(t));
        let (ratio, unit) = if times { (p / n, "x") } else { (p / n * 100.0, "%") };
        let d = if d.is_nan() { "-".to_owned() } else { format!("{d:.2}") };
        println!("{name:<36} {d:>12} {n:>12.2} {p:>12.2} {ratio:>11.1}{unit}");
    }
    Ok(())
}

type Rows = Vec<(&'static str, [f64; 3])>;

async fn measure(hub: &Hub) -> anyhow::Result<Rows> {
    let project = hub.running_project().await?;
    let home = hub.data.join("vms").join(&project).join("home");
    let site = home.join("site");
    std::fs::create_dir_all(&site)?;
    std::fs::write(site.join("1k.txt"), vec![b'a'; 1024])?;
    std::fs::write(site.join("10m.bin"), vec![b'b'; 10 << 20])?;

    // The app: nginx inside the VM, started from a terminal.
    let app_port = free_port()?;
    let app_conf = nginx_conf(&home.join("nginx"), app_port, &format!("  root {};", site.display()))?;
    let ticket = hub.post("/api/tickets", serde_json::json!({"project_id": project, "purpose": "terminal"})).await?;
    let url = format!(
        "{}/api/projects/{project}/terminal?ticket={}&session=app",
        hub.http.replacen("http://", "ws://", 1),
        ticket["ticket"].as_str().unwrap_or_default()
    );
    let (mut term, _) = tokio_tungstenite::connect_async(url).await?;
    term.send(Message::Binary(format!("exec nginx -c {}\r", app_conf.display()).into_bytes().into())).await?;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let ports =
            hub.client.get(format!("{}/api/projects/{project}/ports", hub.http)).bearer_auth(&hub.token).send().await?;
        let v: serde_json::Value = ports.json().await?;
        if v.as_array().is_some_and(|a| a.iter().any(|p| p["port"] == app_port)) {
            break;
        }
        anyhow::ensure!(Instant::now() < deadline, "the app's port never showed up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let r = hub
        .client
        .patch(format!("{}/api/projects/{project}/ports/{app_port}", hub.http))
        .bearer_auth(&hub.token)
        .json(&serde_json::json!({"visibility": "public"}))
        .send()
        .await?;
    anyhow::ensure!(r.status().is_success(), "making the port public: {}", r.status());

    // The comparison hop: nginx as a reverse proxy with an upstream pool.
    let proxy_port = free_port()?;
    let proxy_conf = nginx_conf(
        &hub.data.join("nginx-proxy"),
        proxy_port,
        &format!(
            "  location / {{ proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection \"\"; }}\n }}\n \
             upstream app {{ server 127.0.0.1:{app_port}; keepalive 64;"
        ),
    )?;
    let proxy = Nginx(Command::new("nginx").arg("-c").arg(&proxy_conf).stderr(Stdio::null()).spawn()?);
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", proxy_port)).is_err() {
        anyhow::ensure!(Instant::now() < deadline, "the nginx proxy did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let hub_port = hub.http.rsplit(':').next().unwrap_or_default().to_owned();
    let preview_host = format!("{app_port}-{project}.preview.localhost:{hub_port}");
    let targets = [
        (format!("http://127.0.0.1:{app_port}"), None),
        (format!("http://127.0.0.1:{proxy_port}"), None),
        (format!("http://127.0.0.1:{hub_port}"), Some(preview_host.as_str())),
    ];
    if std::env::var_os("AETHER_BENCH_HOLD").is_some() {
        // For profiling by hand: keep everything up until stdin closes.
        for (name, (base, host)) in ["direct", "nginx", "preview"].iter().zip(&targets) {
            eprintln!("{name}: {base}/1k.txt{}", host.map(|h| format!(" (Host: {h})")).unwrap_or_default());
        }
        eprintln!("holding; close stdin to end");
        tokio::task::block_in_place(|| std::io::Read::read_to_end(&mut std::io::stdin(), &mut Vec::new()))?;
        let _ = term.close(None).await;
        return Ok(Vec::new());
    }
    // Whose CPU time is the proxying's: none for direct, the nginx hop's
    // master and worker, the hub and aetherd for the preview.
    let proxies = [Vec::new(), with_children(proxy.0.id()), vec![hub.pid(), hub.aetherd_pid(&project)?]];
    let mut runs = Vec::new();
    for (conns, path) in [(1, "/1k.txt"), (32, "/1k.txt"), (1, "/10m.bin")] {
        let mut per: [Vec<(Wrk, f64)>; 3] = Default::default();
        for round in 1..=rounds() {
            for (i, (base, host)) in targets.iter().enumerate() {
                eprintln!("round {round}: wrk -c{conns} {path} via {}", ["direct", "nginx", "preview"][i]);
                let before = cpu_us(&proxies[i]);
                let w = tokio::task::block_in_place(|| wrk(&format!("{base}{path}"), *host, conns))?;
                per[i].push((w, cpu_us(&proxies[i]) - before));
            }
        }
        runs.push(per);
    }
    let pick = |run: &[Vec<(Wrk, f64)>; 3], f: &dyn Fn(&Wrk, f64) -> f64| {
        run.clone().map(|r| median(r.iter().map(|(w, cpu)| f(w, *cpu)).collect()))
    };
    let cpu_per_request = |run| {
        let mut v = pick(run, &|w, cpu| cpu / w.requests);
        v[0] = f64::NAN;
        v
    };
    let cpu = [cpu_per_request(&runs[0]), cpu_per_request(&runs[1]), cpu_per_request(&runs[2])];
    let _ = term.close(None).await;
    Ok(vec![
        ("1 KB, 1 conn: requests/s", pick(&runs[0], &|w, _| w.rps)),
        ("1 KB, 1 conn: p50 (ms)", pick(&runs[0], &|w, _| w.p50_ms)),
        ("1 KB, 1 conn: p99 (ms)", pick(&runs[0], &|w, _| w.p99_ms)),
        ("1 KB, 1 conn: proxy CPU (µs/req)", cpu[0]),
        ("1 KB, 32 conns: requests/s", pick(&runs[1], &|w, _| w.rps)),
        ("1 KB, 32 conns: p50 (ms)", pick(&runs[1], &|w, _| w.p50_ms)),
        ("1 KB, 32 conns: p99 (ms)", pick(&runs[1], &|w, _| w.p99_ms)),
        ("1 KB, 32 conns: proxy CPU (µs/req)", cpu[1]),
        ("10 MB, 1 conn: MB/s", pick(&runs[2], &|w, _| w.mb_s)),
        ("10 MB, 1 conn: proxy CPU (ms/resp)", cpu[2].map(|us| us / 1000.0)),
    ])
}

/// A process and its children (nginx's master and workers).
fn with_children(pid: u32) -> Vec<u32> {
    let mut pids = vec![pid];
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(child) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        if stat_fields(child).and_then(|f| f.get(1).and_then(|p| p.parse::<u32>().ok())) == Some(pid) {
            pids.push(child);
        }
    }
    pids
}

/// The fields of `/proc/PID/stat` after the command name (state first).
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    Some(rest.split_whitespace().map(str::to_owned).collect())
}

/// The user and system CPU time the processes have used so far, in µs.
fn cpu_us(pids: &[u32]) -> f64 {
    // utime and stime, in clock ticks of 1/100 s (USER_HZ on Linux).
    let field = |f: &[String], i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    let ticks = |f: Vec<String>| field(&f, 11) + field(&f, 12);
    pids.iter().filter_map(|p| stat_fields(*p)).map(ticks).sum::<f64>() * 10_000.0
}
