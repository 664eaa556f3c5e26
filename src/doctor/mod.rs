//! `abide explain` and `abide doctor` (issue 6).
//!
//! `explain` turns an error message into what happened, why, and the fix, using
//! a knowledge base kept as data (`kb.toml`). `doctor` reads the effective ssh
//! configuration with `ssh -G`, checks the server over ssh, optionally measures
//! the path's idle timeout, and with `--fix` adds keepalives to `~/.ssh/config`.
//!
//! Each submodule has one job; this file only holds the command-line arguments
//! and the two entry points `main.rs` calls.

use std::path::PathBuf;

mod cfgfile;
mod client;
mod diff;
mod doctor_cmd;
mod explain;
mod fix;
mod kb;
mod logind;
mod matcher;
mod paths;
mod probe_idle;
mod remote;
mod report;
mod ssh;
mod sshconfig;
mod sshd;
mod style;
mod timefmt;
mod udp;

pub use udp::{probe_udp, UdpProbe};

#[derive(clap::Args, Debug)]
pub struct ExplainArgs {
    /// The error text (several words are joined with spaces), or `-` to read a
    /// pasted block from stdin. Without TEXT, stdin is read.
    pub text: Vec<String>,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
    /// List every message the knowledge base knows, instead of explaining one.
    #[arg(long, conflicts_with = "text")]
    pub list: bool,
}

#[derive(clap::Args, Debug)]
pub struct DoctorArgs {
    /// The host to check, as you would pass it to ssh. Without it, the settings
    /// that apply to hosts without a block of their own are checked.
    pub host: Option<String>,
    /// Add keepalive settings to the ssh config (backup first, diff shown).
    #[arg(long)]
    pub fix: bool,
    /// With --fix: change the settings for every host (`Host *`).
    #[arg(long)]
    pub all_hosts: bool,
    /// Check (and with --fix, edit) this ssh config file instead of ~/.ssh/config,
    /// as `ssh -F`.
    #[arg(short = 'F', value_name = "FILE")]
    pub config_file: Option<PathBuf>,
    /// Print the checklist as JSON.
    #[arg(long)]
    pub json: bool,
    /// Measure the path's idle timeout: open flows and leave them idle for
    /// 30, 60, 120 and 300 s (takes about five minutes). Needs HOST.
    #[arg(long)]
    pub probe_idle: bool,
    /// Idle durations for --probe-idle, in seconds, comma separated (default
    /// 30,60,120,300). Hidden: for tests and impatient people. The environment
    /// variable ABIDE_PROBE_IDLE_DURATIONS does the same.
    #[arg(long, hide = true, value_delimiter = ',')]
    pub probe_idle_durations: Vec<u64>,
    /// The ssh program to run (split on spaces, so `--ssh "ssh -J jump"` works).
    #[arg(long, value_name = "CMD", default_value = "ssh")]
    pub ssh: String,
    /// Only check the local configuration; do not connect to HOST.
    #[arg(long)]
    pub no_remote: bool,
}

/// `abide explain`: returns the exit code (0 recognised, 1 not, 2 bad usage).
pub fn run_explain(args: ExplainArgs) -> anyhow::Result<i32> {
    explain::run(args)
}

/// `abide doctor`: returns the exit code (0 nothing wrong, 1 something is).
pub fn run_doctor(args: DoctorArgs) -> anyhow::Result<i32> {
    doctor_cmd::run(args)
}
