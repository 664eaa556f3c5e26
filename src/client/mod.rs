//! The client: raw terminal, escape keys, the status banner, and the driver
//! that keeps one session shown across any number of links.

pub mod attach;
pub mod away;
pub mod banner;
pub mod connector;
pub mod deploy;
pub mod escape;
pub mod first_minute;
pub mod options;
pub mod predict_overlay;
pub mod remote;
pub mod terminal_contract;
pub mod transport_memory;
pub mod tty;
pub mod watch;
