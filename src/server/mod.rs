//! The per-user daemon: it owns every session's PTY so that programs outlive
//! their clients, and it serves the same frames to local clients (Unix socket),
//! remote clients over QUIC, and remote clients over an ssh pipe.

pub mod attention;
pub mod bootstrap;
pub mod channel;
pub mod daemon;
pub mod launch;
pub mod recorder;
pub mod session;
pub mod stdio;
pub mod terminal;
