//! Pacing a terminal's output to its fastest active viewer.
//!
//! The PTY reader never overwrites ring bytes that the fastest viewer still
//! needs while that viewer is making progress: output then goes at the pace
//! of the best connection, and nothing is lost for it. A viewer that stops
//! reading (no progress for [`STALLED`]) stops counting, so it can never hold
//! the shell; viewers slower than the fastest fall off the ring's front and
//! skip ahead. With no viewer at all, output runs free.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;

/// A viewer that has not advanced for this long no longer paces output.
pub const STALLED: Duration = Duration::from_millis(250);

/// Where one viewer is.
#[derive(Debug)]
pub struct Mark {
    cursor: AtomicU64,
    last_progress_ns: AtomicU64,
}

/// The viewers of one session, as the reader sees them.
#[derive(Debug)]
pub struct Pacer {
    marks: Mutex<Vec<Arc<Mark>>>,
    progressed: Notify,
    epoch: Instant,
}

impl Default for Pacer {
    fn default() -> Self {
        Self { marks: Mutex::new(Vec::new()), progressed: Notify::new(), epoch: Instant::now() }
    }
}

impl Pacer {
    fn now_ns(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    /// A new viewer at `cursor`; it counts as active from now.
    pub fn register(&self, cursor: u64) -> Arc<Mark> {
        let mark = Arc::new(Mark { cursor: AtomicU64::new(cursor), last_progress_ns: AtomicU64::new(self.now_ns()) });
        self.marks.lock().expect("marks lock").push(mark.clone());
        mark
    }

    pub fn unregister(&self, mark: &Arc<Mark>) {
        self.marks.lock().expect("marks lock").retain(|m| !Arc::ptr_eq(m, mark));
        self.progressed.notify_waiters();
    }

    /// The viewer has now delivered everything before `cursor`.
    pub fn advance(&self, mark: &Mark, cursor: u64) {
        mark.cursor.store(cursor, Ordering::Relaxed);
        mark.last_progress_ns.store(self.now_ns(), Ordering::Relaxed);
        self.progressed.notify_waiters();
    }

    /// Whether evicting every byte before `evict_to` would take bytes from
    /// the fastest active viewer.
    fn must_wait(&self, evict_to: u64) -> bool {
        let now = self.now_ns();
        let stalled = STALLED.as_nanos() as u64;
        let marks = self.marks.lock().expect("marks lock");
        let fastest = marks
            .iter()
            .filter(|m| now.saturating_sub(m.last_progress_ns.load(Ordering::Relaxed)) < stalled)
            .map(|m| m.cursor.load(Ordering::Relaxed))
            .max();
        fastest.is_some_and(|c| c < evict_to)
    }

    /// Waits until bytes before `evict_to` may be dropped.
    pub async fn room_for(&self, evict_to: u64) {
        loop {
            let progressed = self.progressed.notified();
            tokio::pin!(progressed);
            progressed.as_mut().enable();
            if !self.must_wait(evict_to) {
                return;
            }
            // Re-check at least this often: a viewer may stall without telling us.
            let _ = tokio::time::timeout(STALLED / 5, progressed).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn waits_for_the_fastest_active_viewer_only() {
        let p = Pacer::default();
        assert!(!p.must_wait(1000), "no viewers: run free");
        let slow = p.register(0);
        let fast = p.register(0);
        p.advance(&fast, 900);
        assert!(p.must_wait(1000));
        assert!(!p.must_wait(900));
        p.advance(&fast, 1000);
        assert!(!p.must_wait(1000), "the slow viewer does not hold it");
        tokio::time::advance(STALLED * 2).await;
        assert!(!p.must_wait(5000), "stalled viewers stop pacing");
        p.advance(&slow, 10);
        assert!(p.must_wait(5000), "a viewer that moves again paces again");
        p.unregister(&slow);
        assert!(!p.must_wait(5000));
    }
}
