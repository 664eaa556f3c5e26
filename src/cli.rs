//! Command-line types, with help that teaches. Parsing only; `main.rs` dispatches.

use clap::{Args, Parser, Subcommand, ValueEnum};

const AFTER_HELP: &str = "\
Examples:
  abide user@host                 open (or resume) a session on host over ssh + QUIC
  abide host -- htop              run a program instead of the login shell
  abide new -s work               a local session named 'work', attached
  abide new -d -- make -j8        a detached local session running make
  abide attach work               attach to it again (from any terminal)
  abide attach host:work          attach to session 'work' on host
  abide ls [host]                 list sessions
  abide demo                      watch a session ride through network faults, locally
  abide explain \"Broken pipe\"     what an ssh/mosh/abide error means and what to do
  abide doctor host --fix         check and fix ssh keepalive settings for host

While attached: Ctrl-^ d detaches, Ctrl-^ . quits the client, Ctrl-^ ^ sends Ctrl-^.";

#[derive(Parser, Debug)]
#[command(name = "abide", version, about = "Remote terminal sessions that survive the network", after_help = AFTER_HELP)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub connect: ConnectArgs,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Start a session and attach to it (unless -d).
    New(NewArgs),
    /// Attach to a session: NAME (local), HOST: or USER@HOST (its most recent), or HOST:NAME. Default: the most recent local one.
    #[command(visible_alias = "a")]
    Attach(AttachArgs),
    /// List sessions, locally or on HOST.
    #[command(visible_alias = "list")]
    Ls(LsArgs),
    /// End a session: NAME (local) or HOST:NAME. The program gets SIGHUP.
    Kill(KillArgs),
    /// End every local session and the daemon.
    KillServer,
    /// A local session through the built-in fault proxy: blackhole, loss, roam.
    Demo(DemoArgs),
    /// Explain an SSH, mosh, tmux or abide error message and what to do about it.
    Explain(crate::doctor::ExplainArgs),
    /// Check (and with --fix, repair) the SSH keepalive settings and the path to a host.
    Doctor(crate::doctor::DoctorArgs),
    /// The server side (started for you; see --help).
    #[command(hide = true)]
    Server(ServerArgs),
    /// Print a local session's history: the lines that scrolled off its
    /// screen, including those a slow link was not shown.
    History(HistoryArgs),
}

#[derive(Args, Debug)]
pub struct HistoryArgs {
    /// The session's name.
    pub name: String,
    /// Only the last N lines.
    #[arg(long, value_name = "N")]
    pub tail: Option<u64>,
}

/// `abide [user@]host [-- cmd...]`
#[derive(Args, Debug, Default)]
pub struct ConnectArgs {
    /// The remote host, as you would give it to ssh.
    pub destination: Option<String>,
    /// Program to run instead of the login shell (creates a new session).
    #[arg(last = true)]
    pub command: Vec<String>,
    #[command(flatten)]
    pub remote: RemoteOpts,
    /// Session name on the remote host (attach if it exists, create if not).
    #[arg(short = 's', long = "session")]
    pub session: Option<String>,
}

/// Options for every command that reaches a remote host.
#[derive(Args, Debug, Default, Clone)]
pub struct RemoteOpts {
    /// The ssh command used to reach the host, with its options.
    #[arg(long, value_name = "COMMAND", default_value = "ssh", global = true)]
    pub ssh: String,
    /// Path of abide on the remote host.
    #[arg(long, value_name = "PATH", default_value = "abide", global = true)]
    pub server: String,
    /// udp: QUIC only; ssh: only through ssh; auto: QUIC, falling back to ssh.
    #[arg(long, value_enum, default_value_t = TransportChoice::Auto, global = true)]
    pub transport: TransportChoice,
    /// UDP port range for the remote QUIC endpoint, as LO-HI.
    #[arg(long, value_name = "LO-HI", global = true)]
    pub udp_ports: Option<String>,
}

#[derive(ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TransportChoice {
    #[default]
    Auto,
    Udp,
    Ssh,
}

#[derive(Args, Debug)]
pub struct NewArgs {
    /// Name of the session (default: the lowest free number).
    #[arg(short = 's', long = "session")]
    pub name: Option<String>,
    /// Do not attach; just start it.
    #[arg(short = 'd', long)]
    pub detached: bool,
    /// Program and arguments (default: your login shell).
    #[arg(last = true)]
    pub command: Vec<String>,
}

#[derive(Args, Debug)]
pub struct AttachArgs {
    /// NAME (a local session), HOST: or USER@HOST (the most recent there), HOST:NAME.
    pub target: Option<String>,
}

#[derive(Args, Debug)]
pub struct LsArgs {
    /// List the sessions on this host instead.
    pub host: Option<String>,
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct KillArgs {
    /// NAME or HOST:NAME.
    pub target: String,
}

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Seconds of blackhole.
    #[arg(long, default_value_t = 10)]
    pub blackhole_s: u64,
    /// Percentage of packets dropped during the loss phase.
    #[arg(long, default_value_t = 20)]
    pub loss_pct: u32,
    /// Seconds the loss phase lasts.
    #[arg(long, default_value_t = 8)]
    pub loss_s: u64,
}

#[derive(Args, Debug)]
pub struct ServerArgs {
    /// Run the daemon (detaches from the terminal).
    #[arg(long)]
    pub daemon: bool,
    /// Stay in the foreground (with --daemon): for debugging and service managers.
    #[arg(long)]
    pub foreground: bool,
    /// Remote side of `abide HOST`: ensure the daemon, grant access, print one line.
    #[arg(long)]
    pub bootstrap: bool,
    /// Carry one session channel over stdin/stdout (the ssh transport).
    #[arg(long)]
    pub stdio: bool,
    /// Answer one QUIC handshake on a port of the UDP range and exit (what
    /// `abide doctor HOST` runs over ssh to see whether UDP gets through).
    #[arg(long)]
    pub probe_udp: bool,
    /// With --bootstrap: session to attach to (created if missing).
    #[arg(long)]
    pub session: Option<String>,
    /// With --bootstrap: always create a new session.
    #[arg(long)]
    pub new: bool,
    /// With --bootstrap: fail when the session does not exist instead of creating it.
    #[arg(long)]
    pub existing: bool,
    /// With --bootstrap or --probe-udp: UDP port range LO-HI.
    #[arg(long)]
    pub udp_ports: Option<String>,
    /// With --bootstrap: environment for a new session, NAME=VALUE (repeatable).
    #[arg(long = "env", value_name = "NAME=VALUE")]
    pub env: Vec<String>,
    /// With --bootstrap: program for a new session.
    #[arg(last = true)]
    pub command: Vec<String>,
}
