//! Test harness: real hub and aetherd processes on `127.0.0.1:0`, a fresh
//! database per test on the Postgres that `DATABASE_URL` points at, and
//! small HTTP and terminal clients that speak the API as a browser would.
#![allow(dead_code)]

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

pub const DEADLINE: Duration = Duration::from_secs(20);

pub fn init() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A fresh, empty database on the test server.
pub async fn fresh_database() -> String {
    let admin = std::env::var("DATABASE_URL").expect(
        "DATABASE_URL must point at a Postgres server for integration tests; `make test` starts a throwaway one",
    );
    let name = format!("aether_test_{}", uuid::Uuid::new_v4().simple());
    let pool = sqlx::PgPool::connect(&admin).await.expect("connecting to DATABASE_URL");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&pool)
        .await
        .expect("creating test database");
    pool.close().await;
    let (base, _) = admin.rsplit_once('/').expect("DATABASE_URL has a database name");
    let query = admin.split_once('?').map(|(_, q)| format!("?{q}")).unwrap_or_default();
    format!("{base}/{name}{query}")
}

/// A scratch folder removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(prefix: &str) -> Self {
        let p = std::env::temp_dir().join(format!("{prefix}-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]));
        std::fs::create_dir_all(&p).unwrap();
        Self(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn bin_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_aether-hub")).parent().unwrap().to_path_buf()
}

/// Kills every process of every local VM under `data_dir` (they are
/// detached from the hub on purpose, so tests must clean them up).
pub fn kill_vms(data_dir: &Path) {
    let Ok(entries) = std::fs::read_dir(data_dir.join("vms")) else {
        return;
    };
    let names: Vec<String> =
        entries.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect();
    // An isolated VM's processes are its cgroup's, whatever their environment.
    for name in &names {
        let procs = std::fs::read_to_string(format!("/sys/fs/cgroup/freezer/aether/{name}/cgroup.procs"));
        for pid in procs.unwrap_or_default().lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
        }
    }
    let markers: Vec<Vec<u8>> = names.iter().map(|n| format!("AETHER_PROJECT_ID={n}").into_bytes()).collect();
    for proc_entry in std::fs::read_dir("/proc").unwrap().filter_map(|e| e.ok()) {
        let Ok(pid) = proc_entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let env = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
        if env.split(|b| *b == 0).any(|v| markers.iter().any(|m| m.as_slice() == v)) {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
        }
    }
}

/// The command lines of every process of an isolated VM (its cgroup's).
pub fn vm_processes(project: &str) -> Vec<(i32, String)> {
    let procs = std::fs::read_to_string(format!("/sys/fs/cgroup/freezer/aether/{project}/cgroup.procs"));
    procs
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse::<i32>().ok())
        .filter_map(|pid| {
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            Some((pid, String::from_utf8_lossy(&cmd).replace('\0', " ").trim().to_owned()))
        })
        .collect()
}

/// The host pid of a local VM's aetherd (isolated or not).
pub fn aetherd_pid(project: &str) -> i32 {
    let marker = format!("AETHER_PROJECT_ID={project}");
    aether_hub::compute::local::processes_with(&marker)
        .into_iter()
        .find(|pid| {
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let mut args = cmd.split(|b| *b == 0);
            args.next().is_some_and(|a| a.ends_with(b"aetherd")) && args.next() == Some(b"run")
        })
        .expect("the VM's aetherd is running")
}

/// A hub process with its own data folder and database.
pub struct TestHub {
    pub data: PathBuf,
    pub database_url: Option<String>,
    pub http: String,
    pub tunnel: std::net::SocketAddr,
    child: Option<Child>,
    _dir: Option<TempDir>,
}

impl TestHub {
    /// A connection to the hub's database.
    pub async fn db(&self) -> sqlx::PgPool {
        sqlx::PgPool::connect(self.database_url.as_deref().expect("a hub with a database")).await.unwrap()
    }

    /// Records an earlier boot of `project` with `hours` of VM time from the
    /// start of this month (UTC, as the hub counts), as heartbeats would have.
    pub async fn record_boot(&self, project: &str, hours: i32) {
        sqlx::query(
            "INSERT INTO usage_records (id, project_id, owner_id, run_key, started_at, ended_at, last_tick_at, cpus, memory_mb) \
             SELECT gen_random_uuid(), p.id, p.owner_id, 'earlier-' || gen_random_uuid(), m, \
               m + make_interval(hours => $2), m + make_interval(hours => $2), 1, 2048 \
             FROM projects p, (SELECT date_trunc('month', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS m) month \
             WHERE p.id = $1",
        )
        .bind(project.parse::<uuid::Uuid>().unwrap())
        .bind(hours)
        .execute(&self.db().await)
        .await
        .unwrap();
    }

    pub async fn start() -> Self {
        init();
        let dir = TempDir::new("aether-hub");
        let db = fresh_database().await;
        let mut hub = Self::spawn(&dir.0, Some(db), "127.0.0.1:0", &[]);
        hub._dir = Some(dir);
        hub.wait_ready().await;
        hub
    }

    /// Like `start`, with more environment for the hub (another compute
    /// provider, shorter intervals).
    pub async fn start_with(extra_env: &[(&str, &str)]) -> Self {
        init();
        let dir = TempDir::new("aether-hub");
        let db = fresh_database().await;
        let mut hub = Self::spawn(&dir.0, Some(db), "127.0.0.1:0", extra_env);
        hub._dir = Some(dir);
        hub.wait_ready().await;
        hub
    }

    /// The aetherd binary the tests built, next to the hub's.
    pub fn aetherd() -> PathBuf {
        bin_dir().join("aetherd")
    }

    /// Starts a hub process on `data` (which the caller owns).
    pub fn spawn(data: &Path, database_url: Option<String>, tunnel_listen: &str, extra_env: &[(&str, &str)]) -> Self {
        let _ = std::fs::remove_file(data.join("hub.json"));
        let log = std::fs::OpenOptions::new().create(true).append(true).open(data.join("hub.log")).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_aether-hub"));
        cmd.env("AETHER_LISTEN", "127.0.0.1:0")
            .env("AETHER_TUNNEL_LISTEN", tunnel_listen)
            .env("AETHER_SSH_LISTEN", "127.0.0.1:0")
            .env("AETHER_DATA_DIR", data)
            .env("AETHER_AETHERD_BIN", bin_dir().join("aetherd"))
            .env("AETHER_HEARTBEAT_INTERVAL_MS", "200")
            // Most tests run several projects of one fresh (unverified)
            // account; the accounts tests set the limit themselves.
            .env("AETHER_UNVERIFIED_PROJECTS", "-1")
            .env("RUST_LOG", "info,aether_hub=debug")
            .env_remove("DATABASE_URL")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        if let Some(url) = &database_url {
            cmd.env("DATABASE_URL", url);
        }
        assert!(
            bin_dir().join("aetherd").exists(),
            "aetherd is not built; run `cargo build --bins` first (make test does)"
        );
        let child = cmd.spawn().expect("starting aether-hub");
        Self {
            data: data.to_path_buf(),
            database_url,
            http: String::new(),
            tunnel: "0.0.0.0:0".parse().unwrap(),
            child: Some(child),
            _dir: None,
        }
    }

    /// Waits for the hub to write its addresses and answer `/healthz`.
    pub async fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("hub exited with {status}; log:\n{}", self.log());
            }
            if let Ok(text) = std::fs::read_to_string(self.data.join("hub.json"))
                && let Ok(v) = serde_json::from_str::<Value>(&text)
            {
                self.http = format!("http://{}", v["http"].as_str().unwrap());
                self.tunnel = v["tunnel"].as_str().unwrap().parse().unwrap();
                if reqwest::get(format!("{}/healthz", self.http)).await.is_ok_and(|r| r.status().is_success()) {
                    return;
                }
            }
            assert!(Instant::now() < deadline, "hub did not become ready; log:\n{}", self.log());
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.data.join("hub.log")).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// SIGKILLs the hub process only (its VMs keep running).
    pub fn kill_hard(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The hub's exit status, if it exits within `timeout` by itself.
    pub fn exit_within(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let c = self.child.as_mut().expect("hub running");
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(s) = c.try_wait().unwrap() {
                self.child = None;
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// SIGTERM, then waits for a clean exit.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut c = self.child.take().expect("hub running");
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(c.id() as i32), nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(s) = c.try_wait().unwrap() {
                return s;
            }
            assert!(Instant::now() < deadline, "hub did not exit after SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn api(&self) -> Api {
        Api { base: self.http.clone(), token: None, http: reqwest::Client::new() }
    }

    /// A signed-up user with a fresh random email.
    pub async fn user(&self) -> Api {
        let mut api = self.api();
        let email = format!("u{}@example.com", &uuid::Uuid::new_v4().simple().to_string()[..10]);
        let (s, v) = api.post("/api/auth/signup", json!({"email": email, "password": "correct horse battery"})).await;
        assert_eq!(s, 201, "{v}");
        api.token = Some(v["access_token"].as_str().unwrap().to_owned());
        api
    }
}

impl Drop for TestHub {
    fn drop(&mut self) {
        // A failed test shows what the hub said.
        if std::thread::panicking() {
            let log = self.log();
            eprintln!(
                "--- hub log (last 40 lines) ---\n{}",
                log.lines().rev().take(40).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
        self.kill_hard();
        kill_vms(&self.data);
    }
}

/// An API client, optionally signed in.
#[derive(Clone)]
pub struct Api {
    pub base: String,
    pub token: Option<String>,
    http: reqwest::Client,
}

impl Api {
    pub async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let (status, _, value) = self.call_with_headers(method, path, body).await;
        (status, value)
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.call(reqwest::Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    pub async fn patch(&self, path: &str, body: Value) -> (u16, Value) {
        self.call(reqwest::Method::PATCH, path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> (u16, Value) {
        self.call(reqwest::Method::DELETE, path, None).await
    }

    /// Creates a project and returns its id.
    pub async fn project(&self, name: &str) -> String {
        let (s, v) = self.post("/api/projects", json!({ "name": name })).await;
        assert_eq!(s, 201, "{v}");
        v["id"].as_str().unwrap().to_owned()
    }

    /// Creates and starts a project, waiting until it runs.
    pub async fn running_project(&self) -> String {
        let id = self.project("demo").await;
        let (s, v) = self.post(&format!("/api/projects/{id}/start?wait=true"), json!({})).await;
        assert_eq!((s, v["status"].as_str()), (200, Some("running")), "{v}");
        id
    }

    pub async fn ticket(&self, project: &str, purpose: &str) -> String {
        let (s, v) = self.post("/api/tickets", json!({ "project_id": project, "purpose": purpose })).await;
        assert_eq!(s, 200, "{v}");
        v["ticket"].as_str().unwrap().to_owned()
    }

    /// Opens a terminal WebSocket with a fresh ticket; `extra` is appended to the query.
    pub async fn terminal(&self, project: &str, extra: &str) -> Term {
        let ticket = self.ticket(project, "terminal").await;
        Term::connect(&self.base, project, &format!("ticket={ticket}{extra}")).await.expect("terminal attach")
    }
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A terminal viewer, as the browser's terminal would track it.
pub struct Term {
    ws: Ws,
    pub out: Vec<u8>,
    /// `start` of the first `ready`.
    pub start: Option<u64>,
    /// Offset of the next byte expected.
    pub offset: u64,
    pub readies: Vec<Value>,
    pub exit: Option<i64>,
    pub error: Option<Value>,
    /// The hub said it is starting the VM (a terminal opened on a stopped project).
    pub starting: bool,
    pub closed: bool,
    /// The close frame's code and reason, if the hub sent one.
    pub close_frame: Option<(u16, String)>,
}

impl Term {
    /// Connects; an HTTP refusal comes back as `Err((status, body))`.
    pub async fn connect(base: &str, project: &str, query: &str) -> Result<Term, (u16, String)> {
        let url = format!("{}/api/projects/{project}/terminal?{query}", base.replacen("http://", "ws://", 1));
        match tokio_tungstenite::connect_async(url).await {
            Ok((ws, _)) => Ok(Term {
                ws,
                out: vec![],
                start: None,
                offset: 0,
                readies: vec![],
                exit: None,
                error: None,
                starting: false,
                closed: false,
                close_frame: None,
            }),
            Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
                let body = resp.body().as_ref().map(|b| String::from_utf8_lossy(b).into_owned()).unwrap_or_default();
                Err((resp.status().as_u16(), body))
            }
            Err(e) => panic!("websocket: {e}"),
        }
    }

    pub async fn send(&mut self, keys: &str) {
        self.ws.send(Message::Binary(keys.as_bytes().to_vec().into())).await.unwrap();
    }

    /// Sends one binary message of any size (a paste); false if the hub
    /// closed the connection before taking all of it.
    pub async fn send_bytes(&mut self, bytes: Vec<u8>) -> bool {
        self.ws.send(Message::Binary(bytes.into())).await.is_ok()
    }

    pub async fn resize(&mut self, cols: u32, rows: u32) {
        let msg = json!({ "type": "resize", "cols": cols, "rows": rows }).to_string();
        self.ws.send(Message::Text(msg.into())).await.unwrap();
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.out).into_owned()
    }

    /// Reads until `pred` holds, failing the test after the deadline.
    pub async fn until(&mut self, what: &str, pred: impl Fn(&Term) -> bool) {
        let deadline = tokio::time::Instant::now() + DEADLINE;
        while !pred(self) {
            assert!(!self.closed, "closed while waiting for {what}; saw: {:?}", self.text());
            match tokio::time::timeout_at(deadline, self.ws.next()).await {
                Err(_) => panic!("timed out waiting for {what}; saw: {:?}", self.text()),
                Ok(None) | Ok(Some(Err(_))) => self.closed = true,
                Ok(Some(Ok(msg))) => self.absorb(msg),
            }
        }
    }

    /// Waits for `needle` to appear in the output.
    pub async fn expect(&mut self, needle: &str) {
        self.until(needle, |t| t.text().contains(needle)).await;
    }

    fn absorb(&mut self, msg: Message) {
        match msg {
            Message::Binary(b) => {
                self.offset += b.len() as u64;
                self.out.extend_from_slice(&b);
            }
            Message::Text(t) => {
                let v: Value = serde_json::from_str(&t).unwrap();
                match v["type"].as_str() {
                    Some("ready") => {
                        let start = v["start"].as_u64().unwrap();
                        self.start.get_or_insert(start);
                        self.offset = start;
                        self.readies.push(v);
                    }
                    Some("exit") => self.exit = v["code"].as_i64(),
                    Some("error") => self.error = Some(v),
                    Some("starting") => self.starting = true,
                    _ => panic!("unexpected control message {v}"),
                }
            }
            Message::Close(frame) => {
                self.closed = true;
                self.close_frame = frame.map(|f| (u16::from(f.code), f.reason.to_string()));
            }
            _ => {}
        }
    }

    /// Waits until nothing more arrives for `quiet` (used only to check that
    /// something did NOT arrive, after a positive marker was seen).
    pub async fn drain_for(&mut self, quiet: Duration) {
        while let Ok(Some(Ok(msg))) = tokio::time::timeout(quiet, self.ws.next()).await {
            self.absorb(msg);
        }
    }

    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
    }
}

/// Polls `f` until it returns `Some`, failing after the deadline.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

impl TestHub {
    /// An API client whose connections come from `ip`: on Linux every
    /// 127.x.y.z is this machine, so tests can be several clients at once.
    pub fn api_from(&self, ip: &str) -> Api {
        let http = reqwest::Client::builder().local_address(ip.parse::<std::net::IpAddr>().unwrap()).build().unwrap();
        Api { base: self.http.clone(), token: None, http }
    }
}

impl Api {
    /// Like `call`, with the answer's headers too.
    pub async fn call_with_headers(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, reqwest::header::HeaderMap, Value) {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap();
        (status, headers, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    /// Sends `body` as it is, with a JSON content type.
    pub async fn post_raw(&self, method: reqwest::Method, path: &str, body: Vec<u8>) -> (u16, Value) {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        let resp = req.header("content-type", "application/json").body(body).send().await.expect("request");
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }
}
