//! The data plane: one thread that runs the QUIC tunnel endpoint (every
//! tunnel's connection driver) and the HTTP connections whose traffic is
//! tunnel traffic: previews and WebSockets (terminals, files watch).
//!
//! A preview request crosses the client's TCP connection, the HTTP server,
//! the upstream HTTP client and the tunnel's QUIC connection. On the
//! work-stealing runtime each of those hops could land on another worker
//! thread and cost a cross-thread wake-up (a futex and an idle vCPU waking):
//! that was most of a preview's added latency. On one thread the hops are
//! plain task switches, and a burst of requests on many connections leaves
//! the tunnel's driver one wake-up that sends them in a few datagrams.
//!
//! Everything else (the API, the database, the SSH jump host) stays on the
//! main multi-thread runtime; its tasks reach the tunnels through quinn's
//! thread-safe handles.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;
use tokio::runtime::Handle;

/// The data plane's thread and runtime. Dropping it stops both; tasks still
/// on it are dropped.
pub struct DataPlane {
    handle: Handle,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl DataPlane {
    pub fn start() -> std::io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let handle = runtime.handle().clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new().name("aether-dataplane".into()).spawn(move || {
            runtime.block_on(async {
                let _ = stopped.await;
            });
            runtime.shutdown_timeout(std::time::Duration::from_secs(1));
        })?;
        Ok(Self { handle, stop: Some(stop), thread: Some(thread) })
    }

    pub fn handle(&self) -> &Handle {
        &self.handle
    }

    /// A quinn runtime whose drivers, timers and socket live on this thread.
    pub fn quinn_runtime(&self) -> Arc<dyn quinn::Runtime> {
        Arc::new(QuinnOn(self.handle.clone()))
    }

    /// Stops the thread and waits for it, off the async threads.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
    }
}

impl Drop for DataPlane {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// quinn's tokio runtime, pinned to one runtime whichever thread calls it
/// (quinn spawns a connection's driver from the task that accepts it).
#[derive(Debug)]
struct QuinnOn(Handle);

impl quinn::Runtime for QuinnOn {
    fn new_timer(&self, t: Instant) -> Pin<Box<dyn quinn::AsyncTimer>> {
        let _on = self.0.enter();
        Box::pin(tokio::time::sleep_until(t.into()))
    }

    fn spawn(&self, future: Pin<Box<dyn Future<Output = ()> + Send>>) {
        self.0.spawn(future);
    }

    fn wrap_udp_socket(&self, sock: std::net::UdpSocket) -> std::io::Result<Arc<dyn quinn::AsyncUdpSocket>> {
        let _on = self.0.enter();
        quinn::TokioRuntime.wrap_udp_socket(sock)
    }

    fn now(&self) -> Instant {
        tokio::time::Instant::now().into_std()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn quinn_tasks_run_on_the_data_plane_thread() {
        let plane = DataPlane::start().unwrap();
        let runtime = plane.quinn_runtime();
        let (tx, rx) = tokio::sync::oneshot::channel();
        runtime.spawn(Box::pin(async move {
            let _ = tx.send(std::thread::current().name().map(str::to_owned));
        }));
        assert_eq!(rx.await.unwrap().as_deref(), Some("aether-dataplane"));
        // A timer made on another runtime's thread still fires (it belongs to
        // the data plane's clock).
        let timer = runtime.new_timer(Instant::now() + std::time::Duration::from_millis(5));
        let (tx, rx) = tokio::sync::oneshot::channel();
        plane.handle().spawn(async move {
            let mut timer = timer;
            std::future::poll_fn(|cx| timer.as_mut().poll(cx)).await;
            let _ = tx.send(());
        });
        tokio::time::timeout(std::time::Duration::from_secs(5), rx).await.unwrap().unwrap();
        plane.stop().await;
    }
}
