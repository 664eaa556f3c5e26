//! What a client needs to know to reach a remote host, whoever asked: the
//! command line fills these in (`cli`), the client only reads them, so the
//! client never depends on the argument parser.

/// Options for every command that reaches a remote host, defaults applied.
#[derive(Debug, Default, Clone)]
pub struct RemoteOpts {
    pub ssh: String,
    pub server: String,
    pub no_deploy: bool,
    pub transport: TransportChoice,
    pub udp_ports: Option<String>,
}

/// `--server` when not given: the deployed abide, else the one on the PATH.
pub const DEFAULT_SERVER: &str = "abide";

/// udp: QUIC only; ssh: only through ssh; auto: race both, prefer QUIC.
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TransportChoice {
    #[default]
    Auto,
    Udp,
    Ssh,
}

impl TransportChoice {
    /// `--transport` as the link policy's choice.
    pub fn policy_choice(self) -> crate::proto::policy::Choice {
        use crate::proto::policy::{Choice, Transport};
        match self {
            TransportChoice::Auto => Choice::Race,
            TransportChoice::Udp => Choice::Only(Transport::Quic),
            TransportChoice::Ssh => Choice::Only(Transport::Ssh),
        }
    }
}

/// Environment a new session takes from the client that creates it.
pub fn client_env() -> Vec<(String, String)> {
    const KEEP: &[&str] = &[
        "TERM",
        "COLORTERM",
        "LANG",
        "LC_ALL",
        "LC_CTYPE",
        "TERM_PROGRAM",
    ];
    let mut env: Vec<(String, String)> = KEEP
        .iter()
        .filter_map(|k| std::env::var(k).ok().map(|v| (k.to_string(), v)))
        .collect();
    if !env.iter().any(|(k, _)| k == "TERM") {
        env.push(("TERM".into(), "xterm-256color".into()));
    }
    env
}
