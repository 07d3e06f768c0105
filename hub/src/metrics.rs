//! Counters exported at `/metrics` in the Prometheus text format.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

/// The hub's counters. Gauges are read from their source at scrape time.
#[derive(Default)]
pub struct Metrics {
    pub http_requests: AtomicU64,
    pub http_errors_5xx: AtomicU64,
    pub heartbeats: AtomicU64,
    pub tunnels_rejected: AtomicU64,
    pub tunnels_impostor: AtomicU64,
    pub terminal_attaches: AtomicU64,
    pub terminals_open: AtomicU64,
}

impl Metrics {
    pub fn render(&self, tunnels_connected: usize) -> String {
        let mut out = String::new();
        let mut counter = |name: &str, help: &str, kind: &str, v: u64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}");
        };
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        counter("aether_http_requests_total", "HTTP requests served.", "counter", get(&self.http_requests));
        counter(
            "aether_http_errors_5xx_total",
            "HTTP responses with a 5xx status.",
            "counter",
            get(&self.http_errors_5xx),
        );
        counter("aether_heartbeats_total", "Heartbeats received from VMs.", "counter", get(&self.heartbeats));
        counter("aether_tunnels_rejected_total", "Tunnels refused at Hello.", "counter", get(&self.tunnels_rejected));
        counter(
            "aether_tunnels_impostor_total",
            "Tunnels refused because another aetherd holds the machine token.",
            "counter",
            get(&self.tunnels_impostor),
        );
        counter(
            "aether_terminal_attaches_total",
            "Terminal WebSocket attaches.",
            "counter",
            get(&self.terminal_attaches),
        );
        counter("aether_terminals_open", "Terminal WebSockets open now.", "gauge", get(&self.terminals_open));
        counter("aether_tunnels_connected", "VM tunnels connected to this hub.", "gauge", tunnels_connected as u64);
        out
    }
}
