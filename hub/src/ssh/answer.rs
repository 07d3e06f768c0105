//! What the API tells an agent so that it connects non-interactively and
//! safely: an OpenSSH config block (the jump host and the VM, strict host
//! key checking, its own identity and known_hosts files) and the
//! known_hosts lines for both hosts, so nothing is trusted on first use.
//!
//! The files live in a folder of the agent's choosing (`ssh_dir`, default
//! `~/.ssh/aether`); the hub only writes their text.

use serde_json::{Value, json};
use uuid::Uuid;

/// Where the agent keeps its key, config and known_hosts by default.
pub const DEFAULT_DIR: &str = "~/.ssh/aether";

/// Checks a folder for the config's paths: absolute or under `~/`, and
/// nothing an ssh_config line would need quoting for.
pub fn check_dir(dir: &str) -> Result<String, String> {
    let dir = dir.trim_end_matches('/');
    let ok = (1..=256).contains(&dir.len())
        && (dir.starts_with('/') || dir.starts_with("~/"))
        && dir.bytes().all(|b| b.is_ascii_alphanumeric() || b"/._~-".contains(&b));
    if ok {
        Ok(dir.to_owned())
    } else {
        Err("ssh_dir must be an absolute path or start with ~/, in [A-Za-z0-9/._~-]".into())
    }
}

/// Everything that goes into one answer.
pub struct Target<'a> {
    pub project: Uuid,
    pub agent_name: &'a str,
    /// The jump host as agents reach it, and its host key (`type base64`).
    pub jump_host: &'a str,
    pub jump_port: u16,
    pub jump_key: &'a str,
    /// The VM sshd's host keys (`type base64`) and login user, once reported.
    pub vm_host_keys: &'a [String],
    pub vm_user: &'a str,
    pub dir: &'a str,
}

/// `host` or `[host]:port`, as known_hosts and ssh name a host.
fn known_host(host: &str, port: u16) -> String {
    if port == 22 { host.to_owned() } else { format!("[{host}]:{port}") }
}

/// The `ssh` object of the API: host, port, user, target, command, config, known_hosts, …
pub fn answer(t: &Target) -> Value {
    let short = &t.project.simple().to_string()[..8];
    let alias = format!("aether-{}-{short}", t.agent_name.to_lowercase());
    let jump_alias = format!("{alias}-jump");
    let identity = format!("{}/{alias}", t.dir);
    let known_hosts_file = format!("{}/{alias}.known_hosts", t.dir);
    let config_file = format!("{}/{alias}.config", t.dir);
    let mut known_hosts = format!("{} {}\n", known_host(t.jump_host, t.jump_port), t.jump_key);
    for key in t.vm_host_keys {
        known_hosts.push_str(&format!("{} {key}\n", t.project));
    }
    let config = format!(
        "# aether: agent {name}, project {project}\n\
         Host {alias}\n\
         \x20 HostName {project}\n\
         \x20 Port 22\n\
         \x20 User {user}\n\
         \x20 ProxyJump {jump_alias}\n\
         \x20 IdentityFile {identity}\n\
         \x20 IdentitiesOnly yes\n\
         \x20 UserKnownHostsFile {known_hosts_file}\n\
         \x20 StrictHostKeyChecking yes\n\
         \x20 UpdateHostKeys no\n\
         \x20 ServerAliveInterval 30\n\
         Host {jump_alias}\n\
         \x20 HostName {jump_host}\n\
         \x20 Port {jump_port}\n\
         \x20 User {jump_user}\n\
         \x20 IdentityFile {identity}\n\
         \x20 IdentitiesOnly yes\n\
         \x20 UserKnownHostsFile {known_hosts_file}\n\
         \x20 StrictHostKeyChecking yes\n\
         \x20 UpdateHostKeys no\n",
        name = t.agent_name,
        project = t.project,
        user = t.vm_user,
        jump_host = t.jump_host,
        jump_port = t.jump_port,
        jump_user = super::JUMP_USER,
    );
    json!({
        "host": t.jump_host,
        "port": t.jump_port,
        "user": t.vm_user,
        "target": t.project,
        "jump": format!("{}@{}", super::JUMP_USER, known_host(t.jump_host, t.jump_port).replace(['[', ']'], "")),
        "alias": alias,
        "command": format!("ssh -F {config_file} {alias}"),
        "config": config,
        "config_file": config_file,
        "identity_file": identity,
        "known_hosts": known_hosts,
        "known_hosts_file": known_hosts_file,
        "vm_host_keys_known": !t.vm_host_keys.is_empty(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_and_known_hosts_name_both_hops() {
        let project: Uuid = "6f1c2a9e-8d3b-4c5a-9e7f-0a1b2c3d4e5f".parse().unwrap();
        let vm_keys = ["ssh-ed25519 AAAAvm".to_owned()];
        let a = answer(&Target {
            project,
            agent_name: "Claude",
            jump_host: "127.0.0.1",
            jump_port: 2222,
            jump_key: "ssh-ed25519 AAAAjump",
            vm_host_keys: &vm_keys,
            vm_user: "dev",
            dir: "/tmp/k",
        });
        assert_eq!(a["alias"], "aether-claude-6f1c2a9e");
        assert_eq!(
            a["known_hosts"],
            "[127.0.0.1]:2222 ssh-ed25519 AAAAjump\n6f1c2a9e-8d3b-4c5a-9e7f-0a1b2c3d4e5f ssh-ed25519 AAAAvm\n"
        );
        let config = a["config"].as_str().unwrap();
        assert!(config.contains("Host aether-claude-6f1c2a9e\n  HostName 6f1c2a9e-8d3b-4c5a-9e7f-0a1b2c3d4e5f\n"));
        assert!(config.contains("  ProxyJump aether-claude-6f1c2a9e-jump\n"));
        assert!(
            config.contains("Host aether-claude-6f1c2a9e-jump\n  HostName 127.0.0.1\n  Port 2222\n  User aether\n")
        );
        assert_eq!(config.matches("StrictHostKeyChecking yes").count(), 2);
        assert_eq!(config.matches("UserKnownHostsFile /tmp/k/aether-claude-6f1c2a9e.known_hosts").count(), 2);
        assert_eq!(a["command"], "ssh -F /tmp/k/aether-claude-6f1c2a9e.config aether-claude-6f1c2a9e");
        assert_eq!(a["jump"], "aether@127.0.0.1:2222");
    }

    #[test]
    fn folders_are_checked() {
        assert_eq!(check_dir("~/.ssh/aether/").unwrap(), "~/.ssh/aether");
        assert!(check_dir("/tmp/x y").is_err());
        assert!(check_dir("relative").is_err());
        assert!(check_dir("/tmp/a\nHost *").is_err());
    }
}
