//! Command-line types. Parsing only; `main.rs` dispatches.

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(name = "abide", version, about = "Remote terminal sessions that survive the network")]
#[command(args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Explain an SSH, mosh, tmux or abide error message and what to do about it.
    Explain(crate::doctor::ExplainArgs),
    /// Check (and with --fix, repair) the SSH keepalive settings and the path to a host.
    Doctor(crate::doctor::DoctorArgs),
}
