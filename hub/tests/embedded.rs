//! With no DATABASE_URL the hub runs its own Postgres under its data folder
//! and stops it when it exits.

mod support;

use support::{TempDir, TestHub};

#[tokio::test]
async fn the_hub_starts_and_stops_an_embedded_postgres() {
    support::init();
    let dir = TempDir::new("aether-emb");
    if nix::unistd::geteuid().is_root() {
        // The embedded cluster runs as `postgres`, which must reach the folder.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dir.0, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let mut hub = TestHub::spawn(&dir.0, None, "127.0.0.1:0", &[]);
    hub.wait_ready().await;
    let api = hub.user().await;
    let id = api.running_project().await;
    let mut t = api.terminal(&id, "").await;
    t.send("echo embedded-$((5*5))\n").await;
    t.expect("embedded-25").await;
    assert!(dir.0.join("postgres/data/postmaster.pid").exists());
    assert!(hub.terminate().success(), "log:\n{}", hub.log());
    assert!(!dir.0.join("postgres/data/postmaster.pid").exists(), "postgres was stopped");
}
