//! `aether-bench files`: file throughput through the hub beside `scp` over a
//! loopback OpenSSH connection and the local disk, a 10,000-entry listing,
//! watch latency, and the hub's and aetherd's memory while 1 GiB moves.

use crate::hub::Hub;
use futures_util::StreamExt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

const SIZE: u64 = 100 << 20;
const BIG: u64 = 1 << 30;
const ENTRIES: usize = 10_000;
const WATCH_SAMPLES: usize = 200;

fn mbs(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / 1e6 / d.as_secs_f64()
}

fn random_file(path: &Path, size: u64) -> anyhow::Result<()> {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut x: u64 = 0x2545F4914F6CDD1D;
    let mut block = vec![0u8; 1 << 20];
    for _ in 0..size / block.len() as u64 {
        for b in block.iter_mut() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x as u8;
        }
        f.write_all(&block)?;
    }
    f.into_inner()?.sync_all()?;
    Ok(())
}

/// Peak RSS of the processes while `fut` runs.
async fn peak_rss<T>(
    pids: [u32; 2],
    fut: impl std::future::Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<(T, [u64; 2])> {
    let peaks = std::sync::Arc::new([std::sync::atomic::AtomicU64::new(0), std::sync::atomic::AtomicU64::new(0)]);
    let sampler = {
        let peaks = peaks.clone();
        tokio::spawn(async move {
            loop {
                for (i, pid) in pids.iter().enumerate() {
                    peaks[i].fetch_max(crate::rss(*pid), std::sync::atomic::Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let out = fut.await;
    sampler.abort();
    Ok((
        out?,
        [peaks[0].load(std::sync::atomic::Ordering::Relaxed), peaks[1].load(std::sync::atomic::Ordering::Relaxed)],
    ))
}

impl Hub {
    fn files_url(&self, project: &str, path: &str) -> String {
        format!("{}/api/projects/{project}/files?path={path}", self.http)
    }

    async fn upload(&self, project: &str, path: &str, local: &Path) -> anyhow::Result<Duration> {
        let file = tokio::fs::File::open(local).await?;
        let body = reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::with_capacity(file, 256 * 1024));
        let t = Instant::now();
        let r = self.client.put(self.files_url(project, path)).bearer_auth(&self.token).body(body).send().await?;
        anyhow::ensure!(r.status().is_success(), "upload: {}", r.status());
        Ok(t.elapsed())
    }

    async fn download(&self, project: &str, path: &str) -> anyhow::Result<(u64, Duration)> {
        let t = Instant::now();
        let mut r = self.client.get(self.files_url(project, path)).bearer_auth(&self.token).send().await?;
        anyhow::ensure!(r.status().is_success(), "download: {}", r.status());
        let mut n = 0u64;
        while let Some(chunk) = r.chunk().await? {
            n += chunk.len() as u64;
        }
        Ok((n, t.elapsed()))
    }
}

/// A root OpenSSH server on a free loopback port with a key of its own.
struct Sshd {
    child: std::process::Child,
    port: u16,
    key: PathBuf,
}

impl Sshd {
    fn start(dir: &Path) -> anyhow::Result<Self> {
        let sshd = ["/usr/sbin/sshd", "/usr/bin/sshd"].into_iter().find(|p| Path::new(p).exists());
        let sshd = sshd.ok_or_else(|| anyhow::anyhow!("sshd not found: apt-get install openssh-server"))?;
        std::fs::create_dir_all("/run/sshd")?;
        let key = dir.join("client_key");
        let host = dir.join("host_key");
        for k in [&key, &host] {
            let ok =
                Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-f"]).arg(k).status()?.success();
            anyhow::ensure!(ok, "ssh-keygen failed");
        }
        std::fs::copy(key.with_extension("pub"), dir.join("authorized_keys"))?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let cfg = dir.join("sshd_config");
        std::fs::write(
            &cfg,
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {}\nAuthorizedKeysFile {}\nStrictModes no\nUsePAM no\n\
                 PasswordAuthentication no\nPermitRootLogin prohibit-password\nSubsystem sftp internal-sftp\nPidFile none\n",
                host.display(),
                dir.join("authorized_keys").display()
            ),
        )?;
        let child = Command::new(sshd).arg("-D").arg("-e").arg("-f").arg(&cfg).stderr(Stdio::null()).spawn()?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            anyhow::ensure!(Instant::now() < deadline, "sshd did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(Self { child, port, key })
    }

    fn scp(&self, from: &str, to: &str) -> anyhow::Result<Duration> {
        let t = Instant::now();
        let ok = Command::new("scp")
            .args([
                "-q",
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "UserKnownHostsFile=/dev/null",
                "-o",
                "BatchMode=yes",
                "-P",
            ])
            .arg(self.port.to_string())
            .arg("-i")
            .arg(&self.key)
            .args([from, to])
            .status()?
            .success();
        anyhow::ensure!(ok, "scp {from} {to} failed");
        Ok(t.elapsed())
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn run(rt: &tokio::runtime::Runtime) -> anyhow::Result<()> {
    let hub = rt.block_on(Hub::start())?;
    let result = rt.block_on(measure(&hub));
    rt.block_on(hub.stop());
    let r = result?;
    println!("aether files benchmark ({} MiB file)", SIZE >> 20);
    println!("{:<40} {:>12} {:>12} {:>12}", "throughput (MB/s)", "via hub", "scp", "local disk");
    println!("{:<40} {:>12.1} {:>12.1} {:>12.1}", "write 100 MiB", r.hub_write, r.scp_write, r.disk_write);
    println!("{:<40} {:>12.1} {:>12.1} {:>12.1}", "read 100 MiB", r.hub_read, r.scp_read, r.disk_read);
    println!("{:<40} {:>12.1}", format!("list {ENTRIES} entries via hub (ms, median of 5)"), r.list_ms);
    println!("{:<40} {:>12.1}", format!("watch latency p50 (ms, {WATCH_SAMPLES} files)"), r.watch_p50_ms);
    println!("{:<40} {:>12.1}", "watch latency p99 (ms)", r.watch_p99_ms);
    println!(
        "{:<40} hub {:.1} -> {:.1} MB, aetherd {:.1} -> {:.1} MB",
        "peak RSS while 1 GiB is written + read",
        r.rss_before[0] as f64 / 1e6,
        r.rss_peak[0] as f64 / 1e6,
        r.rss_before[1] as f64 / 1e6,
        r.rss_peak[1] as f64 / 1e6
    );
    Ok(())
}

struct Report {
    hub_write: f64,
    hub_read: f64,
    scp_write: f64,
    scp_read: f64,
    disk_write: f64,
    disk_read: f64,
    list_ms: f64,
    watch_p50_ms: f64,
    watch_p99_ms: f64,
    rss_before: [u64; 2],
    rss_peak: [u64; 2],
}

async fn measure(hub: &Hub) -> anyhow::Result<Report> {
    let project = hub.running_project().await?;
    let home = hub.data.join("vms").join(&project).join("home");
    let scratch = hub.data.join("scratch");
    std::fs::create_dir_all(&scratch)?;
    let src = scratch.join("src.bin");
    random_file(&src, SIZE)?;

    eprintln!("through the hub ...");
    let w = hub.upload(&project, "hub.bin", &src).await?;
    let (n, r) = hub.download(&project, "hub.bin").await?;
    anyhow::ensure!(n == SIZE, "read {n} bytes");

    eprintln!("scp over loopback OpenSSH ...");
    let sshd = Sshd::start(&scratch)?;
    let remote = |p: &Path| format!("root@127.0.0.1:{}", p.display());
    let sw = sshd.scp(&src.display().to_string(), &remote(&scratch.join("scp.bin")))?;
    let sr = sshd.scp(&remote(&scratch.join("scp.bin")), &scratch.join("scp-back.bin").display().to_string())?;
    drop(sshd);

    eprintln!("local disk ...");
    let t = Instant::now();
    std::fs::copy(&src, scratch.join("copy.bin"))?;
    std::fs::File::open(scratch.join("copy.bin"))?.sync_all()?;
    let dw = t.elapsed();
    let t = Instant::now();
    let mut sink = std::io::sink();
    std::io::copy(&mut std::fs::File::open(scratch.join("copy.bin"))?, &mut sink)?;
    let dr = t.elapsed();

    eprintln!("listing {ENTRIES} entries ...");
    std::fs::create_dir_all(home.join("many"))?;
    for i in 0..ENTRIES {
        std::fs::write(home.join("many").join(format!("file-{i:05}.txt")), b"x")?;
    }
    let mut lists = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let r = hub.client.get(hub.files_url(&project, "many")).bearer_auth(&hub.token).send().await?;
        let v: serde_json::Value = r.json().await?;
        anyhow::ensure!(v["entries"].as_array().map(|a| a.len()) == Some(ENTRIES), "listing incomplete");
        lists.push(t.elapsed());
    }
    lists.sort();

    eprintln!("watch latency ...");
    let (p50, p99) = watch_latency(hub, &project, &home).await?;

    eprintln!("memory while 1 GiB moves ...");
    random_file(&scratch.join("big.bin"), BIG)?;
    let pids = [hub.pid(), hub.aetherd_pid(&project)?];
    let before = [crate::rss(pids[0]), crate::rss(pids[1])];
    let (_, peak) = peak_rss(pids, async {
        hub.upload(&project, "big.bin", &scratch.join("big.bin")).await?;
        let (n, _) = hub.download(&project, "big.bin").await?;
        anyhow::ensure!(n == BIG, "read back {n} bytes");
        Ok(())
    })
    .await?;

    Ok(Report {
        hub_write: mbs(SIZE, w),
        hub_read: mbs(SIZE, r),
        scp_write: mbs(SIZE, sw),
        scp_read: mbs(SIZE, sr),
        disk_write: mbs(SIZE, dw),
        disk_read: mbs(SIZE, dr),
        list_ms: lists[lists.len() / 2].as_secs_f64() * 1e3,
        watch_p50_ms: p50,
        watch_p99_ms: p99,
        rss_before: before,
        rss_peak: peak,
    })
}

async fn watch_latency(hub: &Hub, project: &str, home: &Path) -> anyhow::Result<(f64, f64)> {
    let t = hub.post("/api/tickets", serde_json::json!({"project_id": project, "purpose": "watch"})).await?;
    let url = format!(
        "{}/api/projects/{project}/files/watch?ticket={}&path=w",
        hub.http.replacen("http://", "ws://", 1),
        t["ticket"].as_str().unwrap_or_default()
    );
    std::fs::create_dir_all(home.join("w"))?;
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await?;
    let mut next = async || -> anyhow::Result<serde_json::Value> {
        loop {
            match tokio::time::timeout(Duration::from_secs(10), ws.next()).await? {
                Some(Ok(Message::Text(t))) => return Ok(serde_json::from_str(&t)?),
                Some(Ok(_)) => continue,
                _ => anyhow::bail!("watch closed"),
            }
        }
    };
    anyhow::ensure!(next().await?["type"] == "ready", "watch not ready");
    let mut samples = Vec::with_capacity(WATCH_SAMPLES);
    for i in 0..WATCH_SAMPLES {
        let name = format!("w/f{i}");
        let t = Instant::now();
        std::fs::write(home.join(&name), b"x")?;
        loop {
            let ev = next().await?;
            if ev["path"] == name.as_str() {
                break;
            }
        }
        samples.push(t.elapsed());
    }
    let (p50, p99) = crate::percentiles(samples);
    Ok((p50 / 1e3, p99 / 1e3))
}
