//! What the SSH tests share: an agent's files (key, config, known_hosts)
//! written into a temporary folder from the API's answer, exactly as a user
//! would save them, and the real OpenSSH client run against them. Nothing
//! here touches the real `~/.ssh`: every command uses `-F` with the
//! answer's config, whose key and known_hosts files live in the folder.
#![allow(dead_code)]

use crate::support::{Api, DEADLINE, TempDir, eventually};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

/// An agent of a project, with its files on disk.
pub struct Agent {
    pub id: String,
    pub name: String,
    pub project: String,
    pub dir: TempDir,
    pub alias: String,
    pub config: PathBuf,
    pub known_hosts: PathBuf,
    pub identity: PathBuf,
    /// The create answer (with `private_key` when the hub generated it).
    pub created: Value,
}

fn write_private(path: &Path, text: &str) {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path).unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

impl Agent {
    /// Creates an agent (`body` as the API takes it) and saves its files
    /// once the VM's host key is known.
    pub async fn create(api: &Api, project: &str, body: Value) -> Agent {
        let dir = TempDir::new("aether-agent");
        let (s, created) = api.post(&format!("/api/projects/{project}/agents?ssh_dir={}", dir.0.display()), body).await;
        assert_eq!(s, 201, "{created}");
        let ssh = &created["ssh"];
        let identity = PathBuf::from(ssh["identity_file"].as_str().unwrap());
        // An uploaded key's private half is put in place by the test (`use_private_key`).
        if let Some(private) = created["private_key"].as_str() {
            write_private(&identity, private);
        }
        let agent = Agent {
            id: created["agent"]["id"].as_str().unwrap().to_owned(),
            name: created["agent"]["name"].as_str().unwrap().to_owned(),
            project: project.to_owned(),
            alias: ssh["alias"].as_str().unwrap().to_owned(),
            config: PathBuf::from(ssh["config_file"].as_str().unwrap()),
            known_hosts: PathBuf::from(ssh["known_hosts_file"].as_str().unwrap()),
            identity,
            dir,
            created,
        };
        agent.refresh(api).await;
        agent
    }

    /// Saves the API's current answer (waiting until it knows the VM's host key).
    pub async fn refresh(&self, api: &Api) {
        let path = format!("/api/projects/{}/agents/{}/ssh?ssh_dir={}", self.project, self.id, self.dir.0.display());
        let ssh = eventually("the VM's host key", DEADLINE, || async {
            let (s, v) = api.get(&path).await;
            assert_eq!(s, 200, "{v}");
            (v["vm_host_keys_known"] == true).then_some(v)
        })
        .await;
        std::fs::write(&self.config, ssh["config"].as_str().unwrap()).unwrap();
        std::fs::write(&self.known_hosts, ssh["known_hosts"].as_str().unwrap()).unwrap();
    }

    /// Puts the private key of an uploaded public key in place.
    pub fn use_private_key(&self, private: &Path) {
        std::fs::copy(private, &self.identity).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&self.identity, std::fs::Permissions::from_mode(0o600)).unwrap();
    }

    /// `ssh -F config` plus `args` (the alias is not added).
    pub fn command(&self, program: &str, args: &[&str]) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(program);
        cmd.arg("-F").arg(&self.config).args(args);
        cmd.env_remove("SSH_AUTH_SOCK").stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        cmd.kill_on_drop(true);
        cmd
    }

    /// `ssh -F config ALIAS command`, waited for (bounded).
    pub async fn ssh(&self, command: &str) -> Output {
        run(self.command("ssh", &[&self.alias, command])).await
    }
}

/// Runs a client command to its end, failing the test if it hangs.
pub async fn run(mut cmd: tokio::process::Command) -> Output {
    tokio::time::timeout(Duration::from_secs(60), cmd.output())
        .await
        .expect("the ssh client hung for 60 s")
        .expect("running the OpenSSH client")
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A new ed25519 key pair made by ssh-keygen: (private key file, public key line).
pub fn keygen(dir: &Path, name: &str) -> (PathBuf, String) {
    let path = dir.join(name);
    let out = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "uploaded@test", "-f"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let public = std::fs::read_to_string(path.with_extension("pub")).unwrap();
    (path, public.trim().to_owned())
}

/// A file of the VM's home, read through the files API.
pub async fn vm_file(api: &Api, project: &str, path: &str) -> String {
    let (s, v) = api.get(&format!("/api/projects/{project}/files?path={path}")).await;
    assert_eq!(s, 200, "{v}");
    match v {
        Value::String(s) => s,
        other => other.to_string(),
    }
}

/// The local VM's `authorized_keys`, read from its disk: safe to poll while
/// aetherd replaces it (each write is a rename, so a read sees a whole file).
pub fn vm_keys(hub: &crate::support::TestHub, project: &str) -> String {
    std::fs::read_to_string(hub.data.join("vms").join(project).join("home/.ssh/authorized_keys")).unwrap_or_default()
}

/// Replaces a file of the VM's home through the files API.
pub async fn put_vm_file(api: &Api, project: &str, path: &str, body: &str) {
    let resp = reqwest::Client::new()
        .put(format!("{}/api/projects/{project}/files?path={path}", api.base))
        .bearer_auth(api.token.as_deref().unwrap())
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{}", resp.status());
}

/// The mode bits of a path in the VM's home.
pub async fn vm_mode(api: &Api, project: &str, path: &str) -> u64 {
    let (s, v) = api.get(&format!("/api/projects/{project}/files/stat?path={path}")).await;
    assert_eq!(s, 200, "{v}");
    v["mode"].as_u64().unwrap() & 0o777
}

/// The project's agent sessions, newest first.
pub async fn activity(api: &Api, project: &str) -> Vec<Value> {
    let (s, v) = api.get(&format!("/api/projects/{project}/agents/activity")).await;
    assert_eq!(s, 200, "{v}");
    v.as_array().unwrap().clone()
}

/// Waits until the activity list has a session matching `pred`.
pub async fn session_where(api: &Api, project: &str, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    eventually(what, DEADLINE, || async { activity(api, project).await.into_iter().find(|s| pred(s)) }).await
}

/// A loopback port nobody listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Revokes an agent.
pub async fn revoke(api: &Api, agent: &Agent) {
    let (s, v) = api.delete(&format!("/api/projects/{}/agents/{}", agent.project, agent.id)).await;
    assert_eq!(s, 204, "{v}");
}

/// The body of a request that creates an agent named `name`.
pub fn named(name: &str) -> Value {
    json!({ "name": name })
}
