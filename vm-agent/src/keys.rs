//! The managed block of `~/.ssh/authorized_keys`: aetherd is its only
//! writer, and keeps it equal to the project's live agent keys.
//!
//! The user's own lines outside the block are kept as they are. Every write
//! is atomic (a new file in `~/.ssh`, fsynced, renamed over the old one),
//! and leaves `~/.ssh` 700 and the file 600, owned by the VM's user. Each
//! managed line forces `aetherd agent-session`, so that every agent session
//! is attributed and recorded; a key past its expiry is left out of every
//! write, and the agents stream rewrites the file when the next key expires.

use aether_protocol::agents::{AuthorizedKey, SetAuthorizedKeys};
use anyhow::Context;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// First line of the managed block.
pub const BEGIN: &str = "# BEGIN aether agent keys (managed by aetherd: edits inside this block are overwritten)";
/// Last line of the managed block.
pub const END: &str = "# END aether agent keys";
/// What every managed line's forced command contains (and no user line does).
pub const MARKER: &str = " agent-session --agent ";
/// Largest `authorized_keys` aetherd will read.
pub const MAX_FILE: u64 = 4 << 20;

/// The command each managed key is forced to run.
#[derive(Debug, Clone)]
pub struct ForcedCommand {
    /// This aetherd binary.
    pub exe: PathBuf,
    pub project: String,
    /// The project home (sessions start there, with it as `HOME`).
    pub home: PathBuf,
    /// Where sessions record themselves (see `activity`).
    pub spool: PathBuf,
}

/// This aetherd binary's path, as forced commands name it (without the
/// " (deleted)" Linux appends once the file was replaced by a rebuild).
pub fn own_exe() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("locating aetherd's binary")?;
    let text = exe.to_string_lossy();
    Ok(match text.strip_suffix(" (deleted)") {
        Some(path) => PathBuf::from(path),
        None => exe,
    })
}

/// Quotes a path for the shell that runs a forced command. Paths that would
/// need escaping inside `command="..."` are refused rather than escaped.
fn quote(p: &Path) -> anyhow::Result<String> {
    let s = p.to_str().context("path is not UTF-8")?;
    anyhow::ensure!(
        !s.chars().any(|c| c.is_control() || matches!(c, '\'' | '"' | '\\')),
        "path {s:?} has characters a forced command can't carry"
    );
    Ok(format!("'{s}'"))
}

impl ForcedCommand {
    /// The `authorized_keys` line for one agent key.
    pub fn line(&self, key: &AuthorizedKey) -> anyhow::Result<String> {
        Ok(format!(
            "command=\"{exe}{MARKER}{agent} --name {name} --project {project} --home {home} --spool {spool}\",no-X11-forwarding {key} aether-agent:{name}",
            exe = quote(&self.exe)?,
            agent = key.agent_id,
            name = key.name,
            project = self.project,
            home = quote(&self.home)?,
            spool = quote(&self.spool)?,
            key = key.key.as_str(),
        ))
    }
}

/// The user's lines of `text`: everything but the managed block, and but any
/// stray line carrying aetherd's forced command.
pub fn user_lines(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut inside = false;
    for line in text.lines() {
        match line.trim_end() {
            BEGIN => inside = true,
            END if inside => inside = false,
            _ if inside || line.contains(MARKER) => {}
            _ => out.push(line),
        }
    }
    // A BEGIN without an END: what followed it was kept only if it was not
    // ours, which the MARKER check already decided line by line.
    out
}

/// The whole new file: the user's lines, then the block with the keys that
/// have not expired at `now_ms` (no block at all when there are none).
pub fn render(old: &str, keys: &[AuthorizedKey], now_ms: i64, forced: &ForcedCommand) -> anyhow::Result<String> {
    let mut out = String::new();
    for line in user_lines(old) {
        out.push_str(line);
        out.push('\n');
    }
    let live: Vec<_> = keys.iter().filter(|k| k.expires_unix_ms.is_none_or(|e| e > now_ms)).collect();
    if !live.is_empty() {
        out.push_str(BEGIN);
        out.push('\n');
        for k in live {
            out.push_str(&forced.line(k)?);
            out.push('\n');
        }
        out.push_str(END);
        out.push('\n');
    }
    Ok(out)
}

/// The managed `authorized_keys` of one home.
pub struct AuthorizedKeys {
    ssh_dir: PathBuf,
    /// (uid, gid) the directory and file belong to, when aetherd is root.
    owner: Option<(u32, u32)>,
    forced: ForcedCommand,
    current: Mutex<SetAuthorizedKeys>,
}

impl AuthorizedKeys {
    pub fn new(home: &Path, owner: Option<(u32, u32)>, forced: ForcedCommand) -> Self {
        Self { ssh_dir: home.join(".ssh"), owner, forced, current: Mutex::new(SetAuthorizedKeys::default()) }
    }

    pub fn path(&self) -> PathBuf {
        self.ssh_dir.join("authorized_keys")
    }

    /// The key set last applied.
    pub fn current(&self) -> SetAuthorizedKeys {
        self.current.lock().expect("keys lock").clone()
    }

    /// Makes the block equal to `set` (minus expired keys) and remembers it.
    pub fn apply(&self, set: SetAuthorizedKeys) -> anyhow::Result<()> {
        let mut current = self.current.lock().expect("keys lock");
        self.write(&set.keys)?;
        *current = set;
        Ok(())
    }

    /// Rewrites the file from the remembered set (a key just expired).
    pub fn refresh(&self) -> anyhow::Result<()> {
        let current = self.current.lock().expect("keys lock");
        self.write(&current.keys)
    }

    /// When the next remembered key expires, in Unix ms.
    pub fn next_expiry(&self, now_ms: i64) -> Option<i64> {
        let current = self.current.lock().expect("keys lock");
        current.keys.iter().filter_map(|k| k.expires_unix_ms).filter(|e| *e > now_ms).min()
    }

    /// How long until the file must be written again, for a key that
    /// expires: the first expiry after the last write (`written_ms`), at once
    /// if that has passed by now.
    pub fn rewrite_in(&self, written_ms: i64, now_ms: i64) -> Option<std::time::Duration> {
        let due = self.next_expiry(written_ms)?;
        Some(std::time::Duration::from_millis((due - now_ms).max(0) as u64 + 1))
    }

    /// Ids of the agents whose keys are in the file now.
    pub fn live_agents(&self, now_ms: i64) -> Vec<String> {
        let current = self.current.lock().expect("keys lock");
        current
            .keys
            .iter()
            .filter(|k| k.expires_unix_ms.is_none_or(|e| e > now_ms))
            .map(|k| k.agent_id.clone())
            .collect()
    }

    fn write(&self, keys: &[AuthorizedKey]) -> anyhow::Result<()> {
        let dir = &self.ssh_dir;
        let now = crate::now_ms();
        let none_live = keys.iter().all(|k| k.expires_unix_ms.is_some_and(|e| e <= now));
        if none_live && std::fs::symlink_metadata(self.path()).is_err() {
            // Nothing to remove and nothing to add: leave the home as it is.
            return Ok(());
        }
        match std::fs::symlink_metadata(dir) {
            Ok(m) if m.is_dir() => {}
            // Never write through a link: as root that could land anywhere.
            Ok(_) => anyhow::bail!("{} is not a directory", dir.display()),
            Err(_) => std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?,
        }
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
        self.chown(dir)?;
        let path = self.path();
        let old = read_no_follow(&path)?;
        let text = render(&old, keys, now, &self.forced)?;
        let tmp = dir.join(format!(".authorized_keys.aether-{}", uuid::Uuid::new_v4().simple()));
        let result = (|| {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .custom_flags(nix::libc::O_NOFOLLOW)
                .open(&tmp)
                .with_context(|| format!("creating {}", tmp.display()))?;
            f.write_all(text.as_bytes())?;
            f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
            f.sync_all()?;
            self.chown(&tmp)?;
            std::fs::rename(&tmp, &path).with_context(|| format!("replacing {}", path.display()))?;
            std::fs::File::open(dir)?.sync_all()?;
            anyhow::Ok(())
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result
    }

    fn chown(&self, path: &Path) -> anyhow::Result<()> {
        if let Some((uid, gid)) = self.owner {
            std::os::unix::fs::lchown(path, Some(uid), Some(gid))
                .with_context(|| format!("chown {}", path.display()))?;
        }
        Ok(())
    }
}

/// The file's text, not following a link (a link's target is not ours to
/// read as root), bounded; empty when there is none.
fn read_no_follow(path: &Path) -> anyhow::Result<String> {
    use std::io::Read;
    let file = std::fs::OpenOptions::new().read(true).custom_flags(nix::libc::O_NOFOLLOW).open(path);
    let mut file = match file {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(String::new()),
        Err(e) if e.raw_os_error() == Some(nix::libc::ELOOP) => {
            tracing::warn!(path = %path.display(), "authorized_keys is a symbolic link; replacing it with a file");
            return Ok(String::new());
        }
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let mut bytes = Vec::new();
    Read::by_ref(&mut file).take(MAX_FILE + 1).read_to_end(&mut bytes)?;
    anyhow::ensure!(bytes.len() as u64 <= MAX_FILE, "{} is larger than {MAX_FILE} bytes", path.display());
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use aether_protocol::agents::{AgentName, KeyLine};

    const KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGQ2eWv8fGcl5KpE5a4w1g0s0mJ8m1yK0yQ6x0v1b2c3";

    fn forced(home: &Path) -> ForcedCommand {
        ForcedCommand {
            exe: "/usr/local/bin/aetherd".into(),
            project: "p".into(),
            home: home.into(),
            spool: home.join(".aether/sessions"),
        }
    }

    fn key(n: u8, expires: Option<i64>) -> AuthorizedKey {
        AuthorizedKey {
            agent_id: format!("00000000-0000-4000-8000-00000000000{n}"),
            name: AgentName::parse(&format!("agent{n}")).unwrap(),
            key: KeyLine::parse(KEY).unwrap(),
            expires_unix_ms: expires,
        }
    }

    #[test]
    fn block_replaces_only_itself_and_stray_lines() {
        let f = forced(Path::new("/home/dev"));
        let user = "# mine\nssh-ed25519 AAAAuser me@laptop\n";
        let one = render(user, &[key(1, None)], 0, &f).unwrap();
        assert!(one.starts_with(user), "{one}");
        assert!(one.contains(&format!("{BEGIN}\ncommand=\"'/usr/local/bin/aetherd' agent-session --agent ")));
        assert!(
            one.contains("--home '/home/dev' --spool '/home/dev/.aether/sessions'\",no-X11-forwarding ssh-ed25519")
        );
        // The user adds a line after the block; a stray managed line is dropped.
        let edited = format!("{one}ssh-rsa AAAAafter later\n{}\n", f.line(&key(3, None)).unwrap());
        let two = render(&edited, &[key(2, None)], 0, &f).unwrap();
        assert_eq!(two.matches(BEGIN).count(), 1);
        assert!(two.contains("ssh-rsa AAAAafter later\n"));
        assert!(two.contains("aether-agent:agent2") && !two.contains("agent1") && !two.contains("agent3"));
        assert_eq!(render(&two, &[], 0, &f).unwrap(), format!("{user}ssh-rsa AAAAafter later\n"));
    }

    #[test]
    fn expired_keys_are_left_out() {
        let f = forced(Path::new("/h"));
        let text = render("", &[key(1, Some(1000)), key(2, Some(3000)), key(3, None)], 2000, &f).unwrap();
        assert!(!text.contains("agent1") && text.contains("agent2") && text.contains("agent3"));
    }

    #[test]
    fn odd_paths_are_refused() {
        let f = forced(Path::new("/home/it's"));
        assert!(f.line(&key(1, None)).is_err());
    }

    #[test]
    fn writes_atomically_with_modes_and_keeps_user_lines() {
        let home = std::env::temp_dir().join(format!("aether-keys-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(home.join(".ssh")).unwrap();
        std::fs::set_permissions(home.join(".ssh"), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(home.join(".ssh/authorized_keys"), "ssh-ed25519 AAAAmine me\n").unwrap();
        let keys = AuthorizedKeys::new(&home, None, forced(&home));
        keys.apply(SetAuthorizedKeys { generation: 1, keys: vec![key(1, Some(crate::now_ms() + 60_000))] }).unwrap();
        let text = std::fs::read_to_string(keys.path()).unwrap();
        assert!(text.starts_with("ssh-ed25519 AAAAmine me\n") && text.contains("aether-agent:agent1"));
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!((mode(&home.join(".ssh")), mode(&keys.path())), (0o700, 0o600));
        assert!(keys.next_expiry(crate::now_ms()).is_some());
        keys.apply(SetAuthorizedKeys::default()).unwrap();
        assert_eq!(std::fs::read_to_string(keys.path()).unwrap(), "ssh-ed25519 AAAAmine me\n");
        let leftovers = std::fs::read_dir(home.join(".ssh")).unwrap().count();
        assert_eq!(leftovers, 1, "no temporary files left behind");
        std::fs::remove_dir_all(&home).unwrap();
    }

    #[test]
    fn a_key_that_expired_since_the_last_write_is_due_at_once() {
        let home = std::env::temp_dir().join(format!("aether-keys-{}", uuid::Uuid::new_v4().simple()));
        let keys = AuthorizedKeys::new(&home, None, forced(&home));
        let written = crate::now_ms();
        let expires = written + 60_000;
        keys.apply(SetAuthorizedKeys { generation: 1, keys: vec![key(1, Some(expires))] }).unwrap();
        let ms = |d: std::time::Duration| d.as_millis() as i64;
        assert_eq!(keys.rewrite_in(written, written).map(ms), Some(60_001));
        // However late the check comes (another branch was being served).
        assert_eq!(keys.rewrite_in(written, expires + 5_000).map(ms), Some(1));
        // Once written after its expiry, nothing is due.
        assert_eq!(keys.rewrite_in(expires + 1, expires + 5_000), None);
        std::fs::remove_dir_all(&home).unwrap();
    }
}
