//! The tunnel's wire contract, shared by the hub and aetherd.
//!
//! `pb` holds the prost types generated from `proto/tunnel.proto`; `frame`
//! frames them on a byte stream with a bounded length prefix; `domain` holds
//! the validated types the rest of the code uses. This crate does no I/O:
//! the tunnel's socket and QUIC settings are `aether-transport`'s.

pub mod agents;
pub mod domain;
pub mod frame;
pub mod fs;

/// Generated protobuf types. Convert to `domain` types at the edge.
#[allow(clippy::all, missing_docs)]
pub mod pb {
    include!(concat!(env!("OUT_DIR"), "/aether.tunnel.v1.rs"));
}

/// ALPN identifier of the tunnel protocol.
pub const ALPN: &[u8] = b"aether/1";

/// Version of this protocol crate, reported in `Hello.agent_version`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

pub use frame::{FrameCodec, FrameError, MAX_FRAME_LEN};
