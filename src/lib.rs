//! abide: remote terminal sessions that the network cannot kill.
//!
//! The data path, once: program → PTY → output log (absolute offsets) + terminal
//! model → frames → transport → client → the user's terminal; keystrokes travel
//! back with sequence numbers. See README.md, section "Architecture".

pub mod cli;
pub mod client;
pub mod commands;
pub mod config;
pub mod doctor;
pub mod faultproxy;
pub mod logging;
pub mod paths;
pub mod plain_lines;
pub mod server;
pub mod transport;

/// The sans-IO core lives in its own crate (`crates/abide-proto`) so that the
/// compiler keeps it free of tokio and sockets; `crate::proto` names it here.
pub use abide_proto as proto;
