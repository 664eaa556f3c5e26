//! `abide server --bootstrap`: runs over ssh on the remote host. Makes sure the
//! daemon runs, has it create or find the session and grant access, and prints
//! one line for the client. The line is the only way the certificate
//! fingerprint and the secret reach the client, so they are only ever seen by
//! ssh's encrypted channel.
//!
//! Then ssh exits, or, with `--then-stdio`, this process carries on as the
//! `--stdio` relay on the same connection: the client's first ssh link comes
//! without a second ssh login while QUIC is tried.

use std::sync::Arc;

use anyhow::{bail, Context, Result};

pub use crate::proto::connect_line::{ConnectLine, LINE_TAG};
use crate::proto::frame::{Down, ErrorKind, Grant, GrantRequest, NewSession, Request, Target};
use crate::server::daemon::{Daemon, GrantEntry, Refusal};

fn random<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b)
        .expect("system randomness");
    b
}

/// In the daemon: the session, the endpoint and a fresh secret.
pub async fn grant(daemon: &Arc<Daemon>, req: GrantRequest) -> Result<Grant, Refusal> {
    let session = match (&req.target, daemon.find(&req.target)) {
        (Target::Create(spec), _) => daemon.create(spec, Default::default())?,
        (_, Ok(s)) => s,
        (Target::Existing(name), Err(_)) if req.create_missing.is_some() => {
            let mut spec = req.create_missing.clone().unwrap_or_default();
            spec.name = name.clone();
            daemon.create(&spec, Default::default())?
        }
        (_, Err(e)) => return Err(e),
    };
    mint(daemon, req.port_range, session.id, session.name.clone()).await
}

/// In the daemon: a grant that names no session, for `abide watch HOST`.
/// Like every grant, dropped when unused for a while (see `GrantEntry`).
pub async fn grant_watch(daemon: &Arc<Daemon>, port_range: (u16, u16)) -> Result<Grant, Refusal> {
    mint(daemon, port_range, 0, "-".into()).await
}

/// Starts the daemon's QUIC endpoint if it is not running, and mints a fresh
/// grant (id + 256-bit secret) for `session_id` (0: watching).
async fn mint(
    daemon: &Arc<Daemon>,
    port_range: (u16, u16),
    session_id: u64,
    session_name: String,
) -> Result<Grant, Refusal> {
    let mut quic = daemon.quic.lock().await;
    if quic.is_none() {
        let ep = crate::transport::quic::ServerEndpoint::start(
            crate::server::channel::quic_serve(daemon.clone()),
            port_range,
        )
        .map_err(|e| (ErrorKind::Internal, format!("{e:#}")))?;
        *quic = Some(ep);
    }
    let ep = quic.as_ref().expect("endpoint just started");
    let grant_id = random::<16>();
    let secret = random::<32>();
    daemon
        .grants
        .lock()
        .unwrap()
        .insert(grant_id, GrantEntry::new(secret, session_id));
    Ok(Grant {
        session_id,
        session_name,
        port: ep.port,
        fingerprint: ep.fingerprint.clone(),
        grant_id,
        secret,
    })
}

/// The server's address as the ssh connection we run under reached it: the
/// address a UDP client should use, whatever name or alias ssh resolved.
pub fn ssh_server_ip() -> Option<String> {
    std::env::var("SSH_CONNECTION")
        .ok()
        .and_then(|c| c.split_whitespace().nth(2).map(str::to_string))
}

/// What `abide server --bootstrap` was asked for (the command line fills it in).
#[derive(Debug, Default, Clone)]
pub struct BootstrapArgs {
    pub udp_ports: Option<String>,
    /// NAME=VALUE pairs for a new session's environment.
    pub env: Vec<String>,
    pub session: Option<String>,
    pub command: Vec<String>,
    /// Always create a new session.
    pub new: bool,
    /// Only attach to an existing session.
    pub existing: bool,
    /// A grant for watching, no session.
    pub watch: bool,
    /// After the line, relay a session channel over stdin/stdout.
    pub then_stdio: bool,
    /// A forced command: the relay may only attach to `session`.
    pub restricted: bool,
}

/// `abide server --bootstrap` itself.
pub async fn run(args: BootstrapArgs) -> Result<i32> {
    let cfg = crate::config::Config::load()?;
    let port_range = match &args.udp_ports {
        Some(r) => crate::config::parse_port_range(r)?,
        None => cfg.udp_ports,
    };
    let env = args
        .env
        .iter()
        .map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
        })
        .collect::<Option<Vec<_>>>()
        .context("--env takes NAME=VALUE")?;
    let spec = NewSession {
        name: args.session.clone(),
        command: args.command.clone(),
        env,
        cwd: None,
    };
    let (target, create_missing) = if args.new || !args.command.is_empty() {
        (Target::Create(spec), None)
    } else {
        (
            Target::Existing(args.session.clone()),
            (!args.existing).then_some(spec),
        )
    };
    let rt = crate::paths::runtime_dir()?;
    let mut link = crate::server::launch::connect_or_start(&rt).await?;
    let request = match args.watch {
        true => Request::GrantWatch { port_range },
        false => Request::Grant(GrantRequest {
            target,
            create_missing,
            port_range,
        }),
    };
    let reply = crate::transport::unix::request(&mut link, request).await?;
    let g = match reply {
        Down::Granted(g) => g,
        Down::Error { message, .. } => bail!("{message}"),
        other => bail!("unexpected reply from the daemon: {other:?}"),
    };
    let server_ip = ssh_server_ip();
    let line = ConnectLine {
        version: crate::proto::frame::PROTOCOL_VERSION,
        port: g.port,
        fingerprint: g.fingerprint,
        grant_id: g.grant_id,
        secret: g.secret,
        session_id: g.session_id,
        session_name: g.session_name,
        server_ip,
    };
    {
        use std::io::Write;
        // The client acts on the line at once: it must not sit in a buffer.
        let mut out = std::io::stdout().lock();
        writeln!(out, "{}", line.render())?;
        out.flush()?;
    }
    if args.then_stdio && !args.watch {
        let only = args.restricted.then(|| args.session.clone()).flatten();
        return crate::server::stdio::run(only).await;
    }
    Ok(0)
}
