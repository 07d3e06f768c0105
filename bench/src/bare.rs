//! The baseline: the same programs on a local PTY, read directly.

use portable_pty::{CommandBuilder, PtySize, native_pty_system};
use std::io::{Read, Write};
use std::sync::mpsc;
use std::time::{Duration, Instant};

type Spawned = (Box<dyn Write + Send>, mpsc::Receiver<Vec<u8>>, Box<dyn portable_pty::Child + Send + Sync>);

fn spawn(script: &str) -> anyhow::Result<Spawned> {
    let pair = native_pty_system().openpty(PtySize { rows: 24, cols: 80, pixel_width: 0, pixel_height: 0 })?;
    let mut cmd = CommandBuilder::new("/bin/sh");
    cmd.args(["-c", script]);
    cmd.env("TERM", "xterm-256color");
    let child = pair.slave.spawn_command(cmd)?;
    drop(pair.slave);
    let mut reader = pair.master.try_clone_reader()?;
    let writer = pair.master.take_writer()?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _master = pair.master;
        let mut buf = vec![0u8; 64 * 1024];
        while let Ok(n) = reader.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    Ok((writer, rx, child))
}

/// Echo round trips of single keystrokes through `cat` on a raw-mode PTY.
pub fn echo(n: usize) -> anyhow::Result<Vec<Duration>> {
    let (mut w, rx, mut child) = spawn("stty raw -echo; echo READY; exec cat")?;
    let mut seen = Vec::new();
    while !String::from_utf8_lossy(&seen).contains("READY") {
        seen.extend(rx.recv_timeout(Duration::from_secs(10))?);
    }
    let mut times = Vec::with_capacity(n);
    for _ in 0..n + 100 {
        let t = Instant::now();
        w.write_all(b"x")?;
        w.flush()?;
        let got = rx.recv_timeout(Duration::from_secs(5))?;
        times.push(t.elapsed());
        anyhow::ensure!(got == b"x", "unexpected echo {got:?}");
    }
    let _ = child.kill();
    Ok(times.split_off(100))
}

/// Bytes of output and the time to read them all.
pub fn bulk(input: u64) -> anyhow::Result<(u64, Duration)> {
    let t = Instant::now();
    let (_w, rx, mut child) = spawn(&format!("head -c {input} /dev/zero | base64 | cat"))?;
    let mut total = 0u64;
    while let Ok(chunk) = rx.recv() {
        total += chunk.len() as u64;
    }
    let elapsed = t.elapsed();
    let _ = child.wait();
    Ok((total, elapsed))
}
