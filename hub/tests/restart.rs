//! The hub dies (SIGKILL) and comes back: VMs reconnect on their own, the
//! project is running again, and terminal sessions kept their state.

mod support;

use std::time::{Duration, Instant};
use support::{TempDir, TestHub};

#[tokio::test]
async fn sessions_survive_a_hub_crash() {
    support::init();
    let dir = TempDir::new("aether-restart");
    let db = support::fresh_database().await;
    let mut hub = TestHub::spawn(&dir.0, Some(db.clone()), "127.0.0.1:0", &[]);
    hub.wait_ready().await;
    let api = hub.user().await;
    let id = api.running_project().await;

    let mut t = api.terminal(&id, "").await;
    t.send("export KEEP=v$((40+2)); echo set-$((1+2))\n").await;
    t.expect("set-3").await;
    t.close().await;

    let tunnel_port = hub.tunnel.port();
    hub.kill_hard();
    let killed = Instant::now();
    let mut hub2 = TestHub::spawn(&dir.0, Some(db.clone()), &format!("127.0.0.1:{tunnel_port}"), &[]);
    hub2.wait_ready().await;
    let mut api2 = hub2.api();
    api2.token = api.token.clone();

    support::eventually("project running again", Duration::from_secs(15), || {
        let api2 = api2.clone();
        let id = id.clone();
        async move { (api2.get(&format!("/api/projects/{id}")).await.1["status"] == "running").then_some(()) }
    })
    .await;
    let back = killed.elapsed();
    assert!(back < Duration::from_secs(15), "took {back:?}");

    let mut t = api2.terminal(&id, "").await;
    t.expect("set-3").await;
    t.send("echo kept=$KEEP\n").await;
    t.expect("kept=v42").await;

    // Heartbeats were recorded, from one boot, across both hubs.
    let pool = sqlx::PgPool::connect(&db).await.unwrap();
    let rows: Vec<(String, i64, i64)> = support::eventually("heartbeats", support::DEADLINE, || {
        let pool = pool.clone();
        let id = id.clone();
        async move {
            let rows: Vec<(String, i64, i64)> =
                sqlx::query_as("SELECT boot_id, last_seq, heartbeats FROM vm_boots WHERE project_id = $1::uuid")
                    .bind(&id)
                    .fetch_all(&pool)
                    .await
                    .unwrap();
            (rows.len() == 1 && rows[0].2 >= 3).then_some(rows)
        }
    })
    .await;
    assert!(rows[0].1 >= rows[0].2, "sequence numbers only grow: {rows:?}");
    drop(hub);
    drop(hub2);
}
