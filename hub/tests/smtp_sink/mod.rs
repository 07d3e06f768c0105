//! A mail server for tests: speaks enough SMTP on `127.0.0.1:0` to take
//! the hub's messages and keeps each, so a test can read the link in it.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// One message as received: its recipients and its text.
#[derive(Debug, Clone)]
pub struct Received {
    pub to: Vec<String>,
    pub data: String,
}

impl Received {
    /// The first `{page}?token=…` link's token in the message.
    pub fn token(&self, page: &str) -> String {
        // Undo quoted-printable, should the message use it.
        let text = self.data.replace("=\r\n", "").replace("=3D", "=");
        let at = text.find(&format!("/{page}?token=")).unwrap_or_else(|| panic!("no /{page} link in {text}"));
        let rest = &text[at + page.len() + "/?token=".len()..];
        rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_').collect()
    }
}

/// The sink: stops when dropped.
pub struct SmtpSink {
    pub addr: SocketAddr,
    mails: Arc<Mutex<Vec<Received>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl SmtpSink {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mails = Arc::new(Mutex::new(Vec::new()));
        let kept = mails.clone();
        let task = tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                tokio::spawn(session(conn, kept.clone()));
            }
        });
        Self { addr, mails, task }
    }

    /// `AETHER_SMTP_URL` for the hub.
    pub fn url(&self) -> String {
        format!("smtp://{}", self.addr)
    }

    /// The `n`th message (from 0) to `to`, waiting up to 30 s for it.
    pub async fn nth(&self, to: &str, n: usize) -> Received {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let found = self
                .mails
                .lock()
                .unwrap()
                .iter()
                .filter(|m| m.to.iter().any(|t| t.eq_ignore_ascii_case(to)))
                .nth(n)
                .cloned();
            if let Some(m) = found {
                return m;
            }
            assert!(Instant::now() < deadline, "no mail #{n} to {to} within 30 s");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn session(conn: tokio::net::TcpStream, mails: Arc<Mutex<Vec<Received>>>) {
    let (read, mut write) = conn.into_split();
    let mut lines = BufReader::new(read);
    let mut to = Vec::new();
    if write.write_all(b"220 sink ESMTP\r\n").await.is_err() {
        return;
    }
    let mut line = String::new();
    loop {
        line.clear();
        if lines.read_line(&mut line).await.unwrap_or(0) == 0 {
            return;
        }
        let verb = line.get(..4).unwrap_or("").to_ascii_uppercase();
        let reply: &[u8] = match verb.as_str() {
            "EHLO" => b"250-sink\r\n250 8BITMIME\r\n",
            "HELO" | "MAIL" | "RSET" | "NOOP" => b"250 OK\r\n",
            "RCPT" => {
                let addr = line.split_once('<').and_then(|(_, r)| r.split_once('>')).map(|(a, _)| a.to_owned());
                to.extend(addr);
                b"250 OK\r\n"
            }
            "DATA" => {
                if write.write_all(b"354 go ahead\r\n").await.is_err() {
                    return;
                }
                let mut data = String::new();
                loop {
                    line.clear();
                    if lines.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    if line == ".\r\n" || line == ".\n" {
                        break;
                    }
                    data.push_str(line.strip_prefix('.').unwrap_or(&line));
                }
                mails.lock().unwrap().push(Received { to: std::mem::take(&mut to), data });
                b"250 OK queued\r\n"
            }
            "QUIT" => {
                let _ = write.write_all(b"221 bye\r\n").await;
                return;
            }
            _ => b"502 not implemented\r\n",
        };
        if write.write_all(reply).await.is_err() {
            return;
        }
    }
}
