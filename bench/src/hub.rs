//! A real hub process (release build, embedded Postgres, local provider)
//! and a terminal client that talks to it as a browser does.

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

pub struct Hub {
    pub data: PathBuf,
    pub http: String,
    pub tunnel: std::net::SocketAddr,
    child: Child,
    pub token: String,
    pub client: reqwest::Client,
}

/// Result of the bulk-output run.
pub struct Bulk {
    /// Bytes the command produced (by terminal offsets).
    pub total: u64,
    /// Bytes that reached the client.
    pub delivered: u64,
    pub elapsed: Duration,
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

impl Hub {
    pub async fn start() -> anyhow::Result<Self> {
        let bin = std::env::current_exe()?.with_file_name("aether-hub");
        anyhow::ensure!(bin.exists(), "{} missing: run `cargo build --release --bins` first", bin.display());
        let data =
            std::env::temp_dir().join(format!("aether-bench-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]));
        std::fs::create_dir_all(&data)?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755))?;
        let log = std::fs::File::create(data.join("hub.log"))?;
        let child = Command::new(bin)
            .env_remove("DATABASE_URL")
            .env("AETHER_DATA_DIR", &data)
            .env("AETHER_LISTEN", "127.0.0.1:0")
            .env("AETHER_TUNNEL_LISTEN", "127.0.0.1:0")
            .env("AETHER_SSH_LISTEN", "127.0.0.1:0")
            .env("RUST_LOG", std::env::var("AETHER_BENCH_LOG").unwrap_or_else(|_| "warn".into()))
            // The files benchmark moves 1 GiB in one write.
            .env("AETHER_MAX_WRITE_BYTES", (4u64 << 30).to_string())
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        let deadline = Instant::now() + Duration::from_secs(120);
        let addrs: Value = loop {
            if let Ok(text) = std::fs::read_to_string(data.join("hub.json"))
                && let Ok(v) = serde_json::from_str(&text)
            {
                break v;
            }
            anyhow::ensure!(Instant::now() < deadline, "hub did not start; see {}", data.join("hub.log").display());
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let http = format!("http://{}", addrs["http"].as_str().unwrap_or_default());
        let tunnel = addrs["tunnel"].as_str().unwrap_or_default().parse()?;
        let client = reqwest::Client::new();
        let resp: Value = client
            .post(format!("{http}/api/auth/signup"))
            .json(&json!({"email": "bench@example.com", "password": "benchmark password"}))
            .send()
            .await?
            .json()
            .await?;
        let token = resp["access_token"].as_str().unwrap_or_default().to_owned();
        Ok(Self { data, http, tunnel, child, token, client })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub async fn post(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        let resp = self.client.post(format!("{}{path}", self.http)).bearer_auth(&self.token).json(&body).send().await?;
        anyhow::ensure!(resp.status().is_success(), "{path}: {}", resp.status());
        Ok(resp.json().await?)
    }

    pub async fn running_project(&self) -> anyhow::Result<String> {
        let p = self.post("/api/projects", json!({"name": "bench"})).await?;
        let id = p["id"].as_str().unwrap_or_default().to_owned();
        let started = self.post(&format!("/api/projects/{id}/start?wait=true"), json!({})).await?;
        anyhow::ensure!(started["status"] == "running", "project did not start: {started}");
        Ok(id)
    }

    /// How long `start?wait=true` takes a stopped VM to running, `n` times.
    pub async fn start_times(&self, project: &str, n: usize) -> anyhow::Result<Vec<Duration>> {
        let mut times = Vec::with_capacity(n);
        for _ in 0..n {
            self.post(&format!("/api/projects/{project}/stop?wait=true"), json!({})).await?;
            let t = Instant::now();
            let started = self.post(&format!("/api/projects/{project}/start?wait=true"), json!({})).await?;
            anyhow::ensure!(started["status"] == "running", "project did not start: {started}");
            times.push(t.elapsed());
        }
        Ok(times)
    }

    async fn terminal(&self, project: &str, session: &str) -> anyhow::Result<Ws> {
        let t = self.post("/api/tickets", json!({"project_id": project, "purpose": "terminal"})).await?;
        let url = format!(
            "{}/api/projects/{project}/terminal?ticket={}&session={session}&cols=120&rows=40",
            self.http.replacen("http://", "ws://", 1),
            t["ticket"].as_str().unwrap_or_default()
        );
        let (ws, _) = tokio_tungstenite::connect_async_with_config(url, None, true).await?;
        Ok(ws)
    }

    /// Echo round trips of single keystrokes through `cat` on a raw-mode PTY.
    pub async fn echo(&self, project: &str, n: usize) -> anyhow::Result<Vec<Duration>> {
        let mut ws = self.terminal(project, "echo").await?;
        ws.send(Message::Binary(b"stty raw -echo; echo READY-$((40+2)); exec cat\r".to_vec().into())).await?;
        let mut seen = Vec::new();
        while !String::from_utf8_lossy(&seen).contains("READY-42") {
            if let Some(Message::Binary(b)) = next(&mut ws).await? {
                seen.extend_from_slice(&b);
            }
        }
        let mut times = Vec::with_capacity(n);
        for _ in 0..n + 100 {
            let t = Instant::now();
            ws.send(Message::Binary(b"x".to_vec().into())).await?;
            loop {
                match next(&mut ws).await? {
                    Some(Message::Binary(b)) => {
                        anyhow::ensure!(&b[..] == b"x", "unexpected echo {b:?}");
                        break;
                    }
                    _ => continue,
                }
            }
            times.push(t.elapsed());
        }
        Ok(times.split_off(100))
    }

    /// Streams ≈200 MB of output through a terminal and times it.
    pub async fn bulk(&self, project: &str, input: u64) -> anyhow::Result<Bulk> {
        let mut ws = self.terminal(project, "bulk").await?;
        let mut offset = 0u64;
        let mut seen = Vec::new();
        ws.send(Message::Binary(b"echo READY-$((40+2))\r".to_vec().into())).await?;
        while !String::from_utf8_lossy(&seen).contains("READY-42") {
            match next(&mut ws).await? {
                Some(Message::Binary(b)) => {
                    offset += b.len() as u64;
                    seen.extend_from_slice(&b);
                }
                Some(Message::Text(t)) => offset = ready_start(&t).unwrap_or(offset),
                _ => {}
            }
        }
        let cmd = format!("head -c {input} /dev/zero | base64 | cat; echo BULK-$((40+2))-DONE\r");
        let start_offset = offset;
        let mut delivered = 0u64;
        let mut tail: Vec<u8> = Vec::new();
        let t = Instant::now();
        ws.send(Message::Binary(cmd.into_bytes().into())).await?;
        loop {
            match next(&mut ws).await? {
                Some(Message::Binary(b)) => {
                    offset += b.len() as u64;
                    delivered += b.len() as u64;
                    // The marker may straddle two messages, and the prompt
                    // after it (a VM's colour prompt is ~60 bytes) may come
                    // in the same message: look before trimming.
                    tail.extend_from_slice(&b);
                    if tail.windows(12).any(|w| w == b"BULK-42-DONE") {
                        break;
                    }
                    if tail.len() > 64 {
                        tail.drain(..tail.len() - 64);
                    }
                }
                Some(Message::Text(t)) => offset = ready_start(&t).unwrap_or(offset),
                _ => {}
            }
        }
        Ok(Bulk { total: offset - start_offset, delivered, elapsed: t.elapsed() })
    }

    /// The pid of a local VM's aetherd.
    pub fn aetherd_pid(&self, project: &str) -> anyhow::Result<u32> {
        // Isolated or not, it is the process running `aetherd run` with the
        // project's id in its environment.
        let marker = format!("AETHER_PROJECT_ID={project}");
        for entry in std::fs::read_dir("/proc")?.flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
            let cmd = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
            let mut args = cmd.split(|b| *b == 0);
            let is_aetherd = args.next().is_some_and(|a| a.ends_with(b"aetherd")) && args.next() == Some(b"run");
            let env = std::fs::read(entry.path().join("environ")).unwrap_or_default();
            if is_aetherd && env.split(|b| *b == 0).any(|v| v == marker.as_bytes()) {
                return Ok(pid);
            }
        }
        anyhow::bail!("no aetherd runs for {project}")
    }

    pub async fn aetherd_rss(&self, project: &str) -> anyhow::Result<u64> {
        Ok(crate::rss(self.aetherd_pid(project)?))
    }

    pub async fn stop(mut self) {
        let _ = nix_kill(self.child.id());
        let _ = self.child.wait();
        // The local VMs are detached from the hub: end them too.
        if let Ok(entries) = std::fs::read_dir(self.data.join("vms")) {
            for e in entries.flatten() {
                if let Ok(pid) = std::fs::read_to_string(e.path().join("vm.pid")) {
                    let _ = Command::new("kill").arg(pid.trim()).status();
                }
                // An isolated VM's every process is in its cgroup.
                let cgroup = format!("/sys/fs/cgroup/freezer/aether/{}/cgroup.procs", e.file_name().to_string_lossy());
                for pid in std::fs::read_to_string(cgroup).unwrap_or_default().lines() {
                    let _ = Command::new("kill").args(["-9", pid.trim()]).status();
                }
            }
        }
        let pg = self.data.join("postgres/data");
        let bin = std::fs::read_dir("/usr/lib/postgresql").ok().and_then(|mut d| d.next()).and_then(|e| e.ok());
        if let Some(bin) = bin {
            let pg_ctl = bin.path().join("bin/pg_ctl");
            let mut cmd = if is_root() { Command::new("runuser") } else { Command::new(&pg_ctl) };
            if is_root() {
                cmd.args(["-u", "postgres", "--"]).arg(&pg_ctl);
            }
            let _ = cmd
                .args(["-D"])
                .arg(&pg)
                .args(["-m", "immediate", "stop"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        if std::env::var_os("AETHER_BENCH_KEEP").is_some() {
            eprintln!("kept {}", self.data.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.data);
        }
    }
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("Uid:")).map(|l| l.split_whitespace().nth(1) == Some("0")))
        .unwrap_or(false)
}

fn nix_kill(pid: u32) -> std::io::Result<std::process::ExitStatus> {
    Command::new("kill").arg(pid.to_string()).status()
}

fn ready_start(text: &str) -> Option<u64> {
    let v: Value = serde_json::from_str(text).ok()?;
    (v["type"] == "ready").then(|| v["start"].as_u64()).flatten()
}

async fn next(ws: &mut Ws) -> anyhow::Result<Option<Message>> {
    match tokio::time::timeout(Duration::from_secs(60), ws.next()).await {
        Ok(Some(m)) => Ok(Some(m?)),
        Ok(None) => anyhow::bail!("terminal closed"),
        Err(_) => anyhow::bail!("terminal silent for 60 s"),
    }
}
