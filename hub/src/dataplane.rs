//! The data plane: a few threads, each with a single-threaded runtime, that
//! run the tunnels (each tunnel's QUIC connection driver lives on one of
//! them) and the HTTP connections whose traffic is tunnel traffic: previews
//! and WebSockets (terminals, files watch), each on its tunnel's thread.
//!
//! A preview request crosses the client's TCP connection, the HTTP server,
//! the upstream HTTP client and the tunnel's QUIC connection. On the
//! work-stealing runtime each of those hops could land on another worker
//! thread and cost a cross-thread wake-up (a futex and an idle vCPU waking):
//! that was most of a preview's added latency. On the tunnel's own thread
//! the hops are plain task switches, and a burst of requests on many
//! connections leaves the tunnel's driver one wake-up that sends them in a
//! few datagrams. Tunnels are spread over the threads, so the hub still uses
//! every core.
//!
//! Everything else (the API, the database, the SSH jump host) stays on the
//! main multi-thread runtime; its tasks reach the tunnels through quinn's
//! thread-safe handles.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;
use tokio::runtime::Handle;

/// The data plane's threads. Dropping it stops them; tasks still on them
/// are dropped.
pub struct DataPlane {
    shards: Vec<Shard>,
    placer: Arc<Placer>,
}

struct Shard {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl DataPlane {
    /// Starts `threads` data-plane threads (at least one).
    pub fn start(threads: usize) -> std::io::Result<Self> {
        let mut shards = Vec::new();
        let mut handles = Vec::new();
        for i in 0..threads.max(1) {
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            let (started, handle) = std::sync::mpsc::channel();
            // The runtime is made and dropped on its own thread: a runtime
            // dropped inside an async context panics.
            let thread = std::thread::Builder::new().name(format!("aether-data-{i}")).spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                    Ok(r) => r,
                    Err(e) => {
                        let _ = started.send(Err(e));
                        return;
                    }
                };
                let _ = started.send(Ok(runtime.handle().clone()));
                runtime.block_on(async {
                    let _ = stopped.await;
                });
                runtime.shutdown_timeout(std::time::Duration::from_secs(1));
            })?;
            let handle = handle.recv().map_err(|_| std::io::Error::other("a data-plane thread ended at once"))??;
            handles.push(handle);
            shards.push(Shard { stop: Some(stop), thread: Some(thread) });
        }
        let placer = Arc::new(Placer { handles, target: AtomicUsize::new(0), next: AtomicUsize::new(0) });
        Ok(Self { shards, placer })
    }

    /// Where tunnels go, and the quinn runtime that puts them there.
    pub fn placer(&self) -> Arc<Placer> {
        self.placer.clone()
    }

    /// Stops the threads and waits for them, off the async threads.
    pub async fn stop(mut self) {
        let threads: Vec<_> = self
            .shards
            .iter_mut()
            .filter_map(|s| {
                if let Some(stop) = s.stop.take() {
                    let _ = stop.send(());
                }
                s.thread.take()
            })
            .collect();
        let _ = tokio::task::spawn_blocking(move || threads.into_iter().for_each(|t| drop(t.join()))).await;
    }
}

impl Drop for DataPlane {
    fn drop(&mut self) {
        for s in &mut self.shards {
            if let Some(stop) = s.stop.take() {
                let _ = stop.send(());
            }
        }
    }
}

/// Places tunnels on data-plane threads; quinn's runtime for the endpoint.
///
/// quinn spawns a connection's driver inside `Incoming::accept_with`, a
/// synchronous call: the tunnel listener calls `place_next` just before it,
/// and the driver goes to the thread chosen. Timers go to the thread that
/// asks for them (quinn makes them in the driver); the socket and the
/// endpoint's driver live on the first thread.
pub struct Placer {
    handles: Vec<Handle>,
    target: AtomicUsize,
    next: AtomicUsize,
}

impl std::fmt::Debug for Placer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Placer").field("threads", &self.handles.len()).finish()
    }
}

impl Placer {
    /// Chooses the thread for the next accepted tunnel (in turn) and
    /// returns its index. Call from the one task that accepts tunnels.
    pub fn place_next(&self) -> usize {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.handles.len();
        self.target.store(i, Ordering::Relaxed);
        i
    }

    /// The runtime of data-plane thread `i` (the first if out of range).
    pub fn handle(&self, i: usize) -> &Handle {
        self.handles.get(i).unwrap_or(&self.handles[0])
    }

    pub fn threads(&self) -> usize {
        self.handles.len()
    }
}

impl quinn::Runtime for Placer {
    fn new_timer(&self, t: Instant) -> Pin<Box<dyn quinn::AsyncTimer>> {
        let _on = Handle::try_current().is_err().then(|| Handle::enter(&self.handles[0]));
        Box::pin(tokio::time::sleep_until(t.into()))
    }

    fn spawn(&self, future: Pin<Box<dyn Future<Output = ()> + Send>>) {
        self.handle(self.target.load(Ordering::Relaxed)).spawn(future);
    }

    fn wrap_udp_socket(&self, sock: std::net::UdpSocket) -> std::io::Result<Arc<dyn quinn::AsyncUdpSocket>> {
        let _on = Handle::enter(&self.handles[0]);
        Ok(Arc::new(aether_transport::TunnelSocket::new(sock)?))
    }

    fn now(&self) -> Instant {
        tokio::time::Instant::now().into_std()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quinn::Runtime;

    async fn thread_of(placer: &Placer) -> String {
        let (tx, rx) = tokio::sync::oneshot::channel();
        placer.spawn(Box::pin(async move {
            let _ = tx.send(std::thread::current().name().map(str::to_owned));
        }));
        rx.await.unwrap().unwrap_or_default()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn tunnels_are_spread_over_the_threads_in_turn() {
        let plane = DataPlane::start(2).unwrap();
        let placer = plane.placer();
        assert_eq!(thread_of(&placer).await, "aether-data-0", "the endpoint's driver");
        let mut seen = Vec::new();
        for _ in 0..4 {
            let i = placer.place_next();
            assert_eq!(thread_of(&placer).await, format!("aether-data-{i}"));
            seen.push(i);
        }
        assert_eq!(seen, [0, 1, 0, 1]);
        // A timer made off the data plane still fires.
        let timer = placer.new_timer(Instant::now() + std::time::Duration::from_millis(5));
        let (tx, rx) = tokio::sync::oneshot::channel();
        placer.handle(1).spawn(async move {
            let mut timer = timer;
            std::future::poll_fn(|cx| timer.as_mut().poll(cx)).await;
            let _ = tx.send(());
        });
        tokio::time::timeout(std::time::Duration::from_secs(5), rx).await.unwrap().unwrap();
        plane.stop().await;
    }
}
