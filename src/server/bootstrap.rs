//! `abide server --bootstrap`: runs over ssh on the remote host. Makes sure the
//! daemon runs, has it create or find the session and grant access, and prints
//! one line for the client; then ssh exits. The line is the only way the
//! certificate fingerprint and the secret reach the client, so they are only
//! ever seen by ssh's encrypted channel.

use std::sync::Arc;

use anyhow::{bail, Context, Result};

use crate::cli::ServerArgs;
use crate::proto::frame::{Down, ErrorKind, Grant, GrantRequest, NewSession, Request, Target};
use crate::server::daemon::{Daemon, GrantEntry, Refusal};

/// First word of the bootstrap line; lets the client find it among whatever a
/// login script prints.
pub const LINE_TAG: &str = "ABIDE-CONNECT";

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
    let mut quic = daemon.quic.lock().await;
    if quic.is_none() {
        let ep = crate::transport::quic::ServerEndpoint::start(daemon.clone(), req.port_range)
            .map_err(|e| (ErrorKind::Internal, format!("{e:#}")))?;
        *quic = Some(ep);
    }
    let ep = quic.as_ref().expect("endpoint just started");
    let grant_id = random::<16>();
    let secret = random::<32>();
    daemon.grants.lock().unwrap().insert(
        grant_id,
        GrantEntry::new(secret, session.id),
    );
    Ok(Grant {
        session_id: session.id,
        session_name: session.name.clone(),
        port: ep.port,
        fingerprint: ep.fingerprint.clone(),
        grant_id,
        secret,
    })
}

/// In the daemon: a grant that names no session, for `abide watch HOST`.
pub async fn grant_watch(daemon: &Arc<Daemon>, port_range: (u16, u16)) -> Result<Grant, Refusal> {
    let mut quic = daemon.quic.lock().await;
    if quic.is_none() {
        let ep = crate::transport::quic::ServerEndpoint::start(daemon.clone(), port_range)
            .map_err(|e| (ErrorKind::Internal, format!("{e:#}")))?;
        *quic = Some(ep);
    }
    let ep = quic.as_ref().expect("endpoint just started");
    let grant_id = random::<16>();
    let secret = random::<32>();
    // Like every grant, dropped when unused for a while (see `GrantEntry`).
    daemon
        .grants
        .lock()
        .unwrap()
        .insert(grant_id, GrantEntry::new(secret, 0));
    Ok(Grant {
        session_id: 0,
        session_name: "-".into(),
        port: ep.port,
        fingerprint: ep.fingerprint.clone(),
        grant_id,
        secret,
    })
}

/// The parsed bootstrap line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectLine {
    pub version: u32,
    pub port: u16,
    pub fingerprint: String,
    pub grant_id: [u8; 16],
    pub secret: [u8; 32],
    pub session_id: u64,
    pub session_name: String,
    /// The server's address as this ssh connection saw it (from SSH_CONNECTION).
    pub server_ip: Option<String>,
}

impl ConnectLine {
    pub fn render(&self) -> String {
        format!(
            "{LINE_TAG} {} {} {} {} {} {} {} {}",
            self.version,
            self.port,
            self.fingerprint,
            hex::encode(self.grant_id),
            hex::encode(self.secret),
            self.session_id,
            self.server_ip.as_deref().unwrap_or("-"),
            self.session_name,
        )
    }

    /// Finds and parses the line in ssh's output.
    pub fn find(output: &str) -> Option<Result<ConnectLine>> {
        let line = output
            .lines()
            .rev()
            .find(|l| l.trim_start().starts_with(LINE_TAG))?;
        Some(Self::parse(line.trim()))
    }

    fn parse(line: &str) -> Result<ConnectLine> {
        let f: Vec<&str> = line.split(' ').collect();
        if f.len() != 9 || f[0] != LINE_TAG {
            bail!("malformed bootstrap line from the server: {line:?}");
        }
        let version: u32 = f[1].parse().context("bootstrap line: version")?;
        if version != crate::proto::frame::PROTOCOL_VERSION {
            bail!(
                "protocol version mismatch: the remote abide speaks {version}, this one speaks {}; leave out --server and --no-deploy so that abide installs its own version there, or install the same version on both ends",
                crate::proto::frame::PROTOCOL_VERSION
            );
        }
        let mut grant_id = [0u8; 16];
        hex::decode_to_slice(f[4], &mut grant_id).context("bootstrap line: grant id")?;
        let mut secret = [0u8; 32];
        hex::decode_to_slice(f[5], &mut secret).context("bootstrap line: secret")?;
        Ok(ConnectLine {
            version,
            port: f[2].parse().context("bootstrap line: port")?,
            fingerprint: f[3].to_string(),
            grant_id,
            secret,
            session_id: f[6].parse().context("bootstrap line: session id")?,
            server_ip: (f[7] != "-").then(|| f[7].to_string()),
            session_name: f[8].to_string(),
        })
    }
}

/// The server's address as the ssh connection we run under reached it: the
/// address a UDP client should use, whatever name or alias ssh resolved.
pub fn ssh_server_ip() -> Option<String> {
    std::env::var("SSH_CONNECTION")
        .ok()
        .and_then(|c| c.split_whitespace().nth(2).map(str::to_string))
}

/// `abide server --bootstrap` itself.
pub async fn run(args: ServerArgs) -> Result<i32> {
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
    println!("{}", line.render());
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_round_trips_through_noise() {
        let l = ConnectLine {
            version: crate::proto::frame::PROTOCOL_VERSION,
            port: 60001,
            fingerprint: "ab".repeat(32),
            grant_id: [1; 16],
            secret: [2; 32],
            session_id: 77,
            session_name: "work".into(),
            server_ip: Some("10.0.0.1".into()),
        };
        let out = format!("Welcome to host\nlast login: x\n{}\n", l.render());
        assert_eq!(ConnectLine::find(&out).unwrap().unwrap(), l);
        assert!(ConnectLine::find("nothing here").is_none());
        let other = l.render().replacen(" 1 ", " 99 ", 1);
        let err = ConnectLine::find(&other).unwrap().unwrap_err().to_string();
        assert!(err.contains("version mismatch"), "{err}");
    }
}
