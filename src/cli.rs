//! Command-line types, with help that teaches. Parsing only; `main.rs` dispatches.

use clap::{Args, Parser, Subcommand, ValueEnum};

pub use crate::client::options::{RemoteOpts, TransportChoice, DEFAULT_SERVER};

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
#[command(name = "abide", version = crate::client::deploy::version_line(), about = "Remote terminal sessions that survive the network", after_help = AFTER_HELP)]
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
    /// List sessions, locally or on HOST (an exited one, kept until someone has seen its end: `exited N`).
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
    /// Print a shell completion script: abide completions bash|zsh|fish.
    Completions(CompletionsArgs),
    /// Print the manual page (roff): abide man > ~/.local/share/man/man1/abide.1
    Man,
    /// The server side (started for you; see --help).
    #[command(hide = true)]
    Server(ServerArgs),
    /// Stay connected and report bells, notifications, quiet and exits of detached sessions, here or on each HOST.
    Watch(WatchArgs),
    /// Print a session's history (NAME, or HOST:NAME): the lines that
    /// scrolled off its screen, including those a slow link was not shown.
    History(HistoryArgs),
}

#[derive(Args, Debug)]
pub struct HistoryArgs {
    /// NAME (local) or HOST:NAME.
    pub name: String,
    /// Only the last N lines.
    #[arg(long, value_name = "N")]
    pub tail: Option<u64>,
    #[command(flatten)]
    pub remote: RemoteArgs,
}

#[derive(Args, Debug)]
pub struct WatchArgs {
    /// Hosts to watch (default: this machine).
    pub hosts: Vec<String>,
    /// Run this shell command per event, with ABIDE_TITLE, ABIDE_BODY,
    /// ABIDE_SESSION, ABIDE_HOST and ABIDE_EVENT set, e.g.
    /// 'notify-send "$ABIDE_TITLE" "$ABIDE_BODY"'.
    #[arg(long, value_name = "COMMAND")]
    pub exec: Option<String>,
    /// Desktop notification through this terminal (OSC 9 / 777 / 99): auto
    /// picks by $TERM_PROGRAM/$TERM when stdout is a terminal.
    #[arg(long, value_enum, default_value_t = DesktopChoice::Auto)]
    pub desktop: DesktopChoice,
    /// Do not report "quiet" (no output for a while after activity).
    #[arg(long)]
    pub no_quiet: bool,
    #[command(flatten)]
    pub remote: RemoteArgs,
}

#[derive(ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DesktopChoice {
    #[default]
    Auto,
    Osc9,
    Osc777,
    Osc99,
    Off,
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
    pub remote: RemoteArgs,
    /// Session name on the remote host (attach if it exists, create if not).
    #[arg(short = 's', long = "session")]
    pub session: Option<String>,
}

/// The options for reaching a remote host, as given on the command line. They
/// are accepted before the subcommand (`abide --ssh X ls host`) and after it,
/// but only by commands that reach a host: clap's `global` would also accept
/// them where they mean nothing (`abide new -d --ssh X`).
#[derive(Args, Debug, Default, Clone)]
pub struct RemoteArgs {
    /// The ssh command used to reach the host, with its options [default: ssh].
    #[arg(long, value_name = "COMMAND")]
    pub ssh: Option<String>,
    /// Path of abide on the remote host [default: the one abide installs there itself].
    #[arg(long, value_name = "PATH")]
    pub server: Option<String>,
    /// Do not install abide on the remote host; run the `abide` on its PATH.
    #[arg(long)]
    pub no_deploy: bool,
    /// udp: QUIC only; ssh: only through ssh; auto: QUIC, falling back to ssh [default: auto].
    #[arg(long, value_enum)]
    pub transport: Option<TransportChoice>,
    /// UDP port range for the remote QUIC endpoint, as LO-HI.
    #[arg(long, value_name = "LO-HI")]
    pub udp_ports: Option<String>,
    /// Show typed keys before the server echoes them: auto (when the round
    /// trip is slow enough to notice), always, never.
    #[arg(long, value_enum, default_value_t = PredictChoice::Auto, global = true)]
    pub predict: PredictChoice,
}

#[derive(ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PredictChoice {
    #[default]
    Auto,
    Always,
    Never,
}

impl From<PredictChoice> for crate::proto::predict::Mode {
    fn from(c: PredictChoice) -> Self {
        match c {
            PredictChoice::Auto => Self::Auto,
            PredictChoice::Always => Self::Always,
            PredictChoice::Never => Self::Never,
        }
    }
}

impl RemoteArgs {
    /// The first option given, as written on the command line.
    pub fn first_given(&self) -> Option<&'static str> {
        [
            (self.ssh.is_some(), "--ssh"),
            (self.server.is_some(), "--server"),
            (self.transport.is_some(), "--transport"),
            (self.udp_ports.is_some(), "--udp-ports"),
            (self.no_deploy, "--no-deploy"),
        ]
        .into_iter()
        .find_map(|(given, name)| given.then_some(name))
    }

    /// These options, with `before` (given before the subcommand) filling gaps.
    pub fn resolve(self, before: &RemoteArgs) -> RemoteOpts {
        let before = before.clone();
        RemoteOpts {
            ssh: self.ssh.or(before.ssh).unwrap_or_else(|| "ssh".into()),
            server: self
                .server
                .or(before.server)
                .unwrap_or_else(|| DEFAULT_SERVER.into()),
            no_deploy: self.no_deploy || before.no_deploy,
            transport: self.transport.or(before.transport).unwrap_or_default(),
            udp_ports: self.udp_ports.or(before.udp_ports),
        }
    }
}

impl Cli {
    /// Options before a subcommand that the subcommand has no use for are an
    /// error, not silently ignored.
    /// `name`: the subcommand as written (clap's `subcommand_name`).
    pub fn check(&self, name: Option<&str>) -> Result<(), clap::Error> {
        use clap::CommandFactory;
        let (Some(cmd), Some(name)) = (&self.command, name) else {
            return Ok(());
        };
        let takes_remote = matches!(
            cmd,
            Command::Attach(_) | Command::Ls(_) | Command::Kill(_) | Command::Watch(_)
        );
        let stray = match (self.connect.remote.first_given(), takes_remote) {
            (Some(flag), false) => Some(format!(
                "{flag} is for commands that reach a remote host (abide HOST, attach, ls, kill, watch), not for '{name}'"
            )),
            _ => None,
        }
        .or_else(|| {
            self.connect.session.is_some().then(|| {
                format!("-s/--session before '{name}' means nothing; write it after the command")
            })
        })
        .or_else(|| {
            self.connect.destination.as_ref().map(|d| {
                format!("'{d}' before '{name}': write the command first (abide {name} ...)")
            })
        });
        match stray {
            Some(msg) => Err(Cli::command().error(clap::error::ErrorKind::ArgumentConflict, msg)),
            None => Ok(()),
        }
    }
}

#[derive(Args, Debug)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Args, Debug)]
pub struct NewArgs {
    /// Name of the session (default: the lowest free number).
    #[arg(short = 's', long = "session")]
    pub name: Option<String>,
    /// Do not attach; just start it.
    #[arg(short = 'd', long)]
    pub detached: bool,
    /// End the session once it has been detached this long (30m, 7d). A
    /// session whose program exited while nobody watched is kept (output and
    /// exit status) until attached, killed, this time, or 7 days after the exit.
    #[arg(long, value_name = "DURATION")]
    pub expire: Option<String>,
    /// Program and arguments (default: your login shell). Options of the
    /// program may follow it (`new -d make -j8`); `--` before it also works.
    #[arg(trailing_var_arg = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

#[derive(Args, Debug)]
pub struct AttachArgs {
    /// NAME (a local session), HOST: or USER@HOST (the most recent there), HOST:NAME.
    pub target: Option<String>,
    #[command(flatten)]
    pub remote: RemoteArgs,
}

#[derive(Args, Debug)]
pub struct LsArgs {
    /// List the sessions on this host instead.
    pub host: Option<String>,
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub remote: RemoteArgs,
}

#[derive(Args, Debug)]
pub struct KillArgs {
    /// NAME or HOST:NAME.
    pub target: String,
    #[command(flatten)]
    pub remote: RemoteArgs,
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
    /// Instead of the faults: a shell over a link where every packet waits
    /// this long each way, to see typed keys shown at once (--predict).
    #[arg(long, default_value_t = 0)]
    pub delay_ms: u64,
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
    /// Carry one session channel over stdin/stdout (the ssh transport). Full
    /// local rights; with --session NAME only attaching to NAME (for a forced
    /// command in authorized_keys; see docs/security.md).
    #[arg(long)]
    pub stdio: bool,
    /// Answer one QUIC handshake on a port of the UDP range and exit (what
    /// `abide doctor HOST` runs over ssh to see whether UDP gets through).
    #[arg(long)]
    pub probe_udp: bool,
    /// With --bootstrap: session to attach to (created if missing). With
    /// --stdio: the only session this channel may attach to.
    #[arg(long)]
    pub session: Option<String>,
    /// With --bootstrap: grant watching (`abide watch HOST`), no session.
    #[arg(long)]
    pub watch: bool,
    /// With --bootstrap: always create a new session.
    #[arg(long)]
    pub new: bool,
    /// With --bootstrap: fail when the session does not exist instead of creating it.
    #[arg(long)]
    pub existing: bool,
    /// With --bootstrap or --probe-udp: UDP port range LO-HI.
    #[arg(long)]
    pub udp_ports: Option<String>,
    /// With --bootstrap: after the connect line, carry the session channel
    /// over stdin/stdout as --stdio does (the bootstrap's ssh connection
    /// becomes the client's first ssh link: one login, not two).
    #[arg(long)]
    pub then_stdio: bool,
    /// With --bootstrap: environment for a new session, NAME=VALUE (repeatable).
    #[arg(long = "env", value_name = "NAME=VALUE")]
    pub env: Vec<String>,
    /// With --bootstrap: program for a new session.
    #[arg(last = true)]
    pub command: Vec<String>,
}
