//! The sans-IO protocol core: frames, the output log with absolute offsets, the
//! input queue with sequence numbers, and the client's resume state machine.
//!
//! Nothing in here touches a socket, a clock or a task. Time comes in as
//! `Instant` arguments and bytes come in as slices, as in quinn-proto, so every
//! decision about what is resent, what is acknowledged and when a link counts as
//! dead is tested without a network.

pub mod attention;
pub mod connect_line;
pub mod deploy;
pub mod frame;
pub mod input;
pub mod limits;
pub mod link_meter;
pub mod outlog;
pub mod policy;
pub mod predict;
pub mod relay_flush;
pub mod resume;
pub mod server;
#[cfg(test)]
mod sim;

pub use frame::{Down, Hello, Request, Up};
