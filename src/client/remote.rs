//! Reaching a remote host: run the user's own ssh for the bootstrap (their
//! config, keys, agent and ProxyJump just work), then connect over QUIC.

use std::net::SocketAddr;
use std::process::Stdio;

use anyhow::{anyhow, bail, Context, Result};
use tokio::io::AsyncReadExt;

use crate::client::connector::{Connector, DialFuture};
use crate::client::deploy::{self, Bootstrapped};
use crate::client::options::RemoteOpts;
use crate::client::transport_memory::{network_of, TransportMemory};
use crate::proto::connect_line::ConnectLine;
use crate::proto::policy::{Choice, Config, ConnectError, Transport};
use crate::transport::quic;
use crate::transport::ssh_stdio::SshTarget;

pub use crate::transport::ssh_stdio::sh_quote;

/// The ssh command line the user asked for (`--ssh 'ssh -p 2222'`).
pub fn ssh_argv(opts: &RemoteOpts) -> Result<Vec<String>> {
    let argv = shell_words::split(&opts.ssh)
        .with_context(|| format!("cannot parse --ssh {:?}", opts.ssh))?;
    if argv.is_empty() {
        bail!("--ssh is empty");
    }
    Ok(crate::client::first_minute::with_connect_timeout(argv))
}

/// The host part of `user@host` (for the UDP address when ssh does not tell us).
pub fn host_part(dest: &str) -> &str {
    dest.rsplit_once('@').map_or(dest, |(_, h)| h)
}

pub struct SshOutput {
    pub status: std::process::ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `ssh DEST REMOTE_COMMAND`, capturing its output. Prompts (password,
/// host key) still work: ssh asks on /dev/tty, not on these pipes.
pub async fn run_ssh(opts: &RemoteOpts, dest: &str, remote_cmd: &str) -> Result<SshOutput> {
    let argv = ssh_argv(opts)?;
    let mut cmd = tokio::process::Command::new(&argv[0]);
    cmd.args(&argv[1..]).arg(dest).arg(remote_cmd);
    cmd.stdin(Stdio::inherit())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd
        .spawn()
        .with_context(|| format!("cannot run {:?}", argv[0]))?;
    let mut out = child.stdout.take().expect("piped");
    let mut err = child.stderr.take().expect("piped");
    let (mut so, mut se) = (Vec::new(), Vec::new());
    let (r1, r2, status) = tokio::join!(
        out.read_to_end(&mut so),
        err.read_to_end(&mut se),
        child.wait()
    );
    r1?;
    r2?;
    Ok(SshOutput {
        status: status?,
        stdout: String::from_utf8_lossy(&so).into_owned(),
        stderr: String::from_utf8_lossy(&se).into_owned(),
    })
}

/// Turns a failed ssh run into the message the user needs.
pub fn ssh_failure(opts: &RemoteOpts, dest: &str, out: &SshOutput) -> anyhow::Error {
    let stderr = out.stderr.trim();
    let code = out.status.code();
    if code == Some(127)
        || stderr.contains("command not found")
        || stderr.contains("No such file or directory")
    {
        return anyhow!(
            "abide is not installed on the remote host (ran '{}' on {dest}).\n  Install it there (cargo install --path . on that host, or copy the binary into its PATH), or pass --server /path/to/abide.{}",
            opts.server,
            if stderr.is_empty() { String::new() } else { format!("\n  The remote said: {stderr}") }
        );
    }
    if code == Some(255) {
        return anyhow!(
            "ssh could not connect to {dest}: {}",
            if stderr.is_empty() {
                "(no message)"
            } else {
                stderr
            }
        );
    }
    anyhow!(
        "the remote abide failed (exit {}): {}",
        code.map_or("signal".to_string(), |c| c.to_string()),
        if stderr.is_empty() {
            out.stdout.trim()
        } else {
            stderr
        }
    )
}

/// What the bootstrap should do with the session.
pub struct BootstrapSpec<'a> {
    pub session: Option<&'a str>,
    pub command: &'a [String],
    /// Fail instead of creating when the named session does not exist.
    pub existing_only: bool,
    /// A grant for `abide watch`, no session.
    pub watch: bool,
    /// Keep the bootstrap's ssh as the first ssh link (`--then-stdio`): one
    /// login instead of two when UDP does not get through.
    pub handover: bool,
}

/// The remote abide did not understand `--then-stdio` (an older build of
/// the same protocol): its usage error, no connect line.
#[derive(Debug, thiserror::Error)]
#[error("the remote abide cannot hand its bootstrap over")]
pub struct NoHandover;

/// clap's exit status for a command line it does not understand.
const USAGE_ERROR: i32 = 2;

/// Runs the bootstrap over ssh; with `spec.handover`, its connection comes
/// back as a link too (when the remote abide can, else it is asked again
/// without).
pub async fn bootstrap(
    opts: &RemoteOpts,
    dest: &str,
    spec: &BootstrapSpec<'_>,
) -> Result<Bootstrapped> {
    match bootstrap_once(opts, dest, spec, spec.handover).await {
        Err(e) if spec.handover && e.downcast_ref::<NoHandover>().is_some() => {
            bootstrap_once(opts, dest, spec, false).await
        }
        r => r,
    }
}

/// Turns a failed bootstrap into its error: [`NoHandover`] when a handover
/// was asked for and the remote abide did not understand it.
pub fn bootstrap_failure(
    opts: &RemoteOpts,
    dest: &str,
    out: &SshOutput,
    handover: bool,
) -> anyhow::Error {
    if handover && out.status.code() == Some(USAGE_ERROR) {
        return NoHandover.into();
    }
    ssh_failure(opts, dest, out)
}

async fn bootstrap_once(
    opts: &RemoteOpts,
    dest: &str,
    spec: &BootstrapSpec<'_>,
    handover: bool,
) -> Result<Bootstrapped> {
    let mut words = vec![opts.server.clone(), "server".into(), "--bootstrap".into()];
    if handover {
        words.push("--then-stdio".into());
    }
    if let Some(p) = &opts.udp_ports {
        words.extend(["--udp-ports".into(), p.clone()]);
    }
    if let Some(s) = spec.session {
        words.extend(["--session".into(), s.to_string()]);
    }
    if spec.existing_only {
        words.push("--existing".into());
    }
    if spec.watch {
        words.push("--watch".into());
    }
    for (k, v) in crate::client::options::client_env() {
        words.extend(["--env".into(), format!("{k}={v}")]);
    }
    if !spec.command.is_empty() {
        words.push("--".into());
        words.extend(spec.command.iter().cloned());
    }
    if deploy::applies(opts) {
        let binaries = deploy::Binaries::installed();
        return deploy::bootstrap_with(opts, dest, &words[1..], &binaries, handover).await;
    }
    let remote_cmd = words
        .iter()
        .map(|w| sh_quote(w))
        .collect::<Vec<_>>()
        .join(" ");
    // Act on the line as soon as it arrives: waiting for ssh to close its
    // session costs round trips that a user would see as connect time.
    let argv = ssh_argv(opts)?;
    let mut child = tokio::process::Command::new(&argv[0])
        .args(&argv[1..])
        .args(if handover {
            &crate::transport::ssh_stdio::SSH_KEEPALIVE[..]
        } else {
            &[]
        })
        .arg(dest)
        .arg(&remote_cmd)
        // Never the terminal: ssh forwards whatever it reads there, and keys
        // typed while it logs in belong to the session (ssh prompts on /dev/tty).
        .stdin(if handover {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("cannot run {:?}", argv[0]))?;
    let stdout = child.stdout.take().expect("piped");
    let mut stderr = child.stderr.take().expect("piped");
    let err_task = tokio::spawn(async move {
        let mut se = Vec::new();
        let _ = stderr.read_to_end(&mut se).await;
        String::from_utf8_lossy(&se).into_owned()
    });
    let mut lines = tokio::io::BufReader::new(stdout);
    let mut seen = String::new();
    loop {
        use tokio::io::AsyncBufReadExt;
        let mut l = String::new();
        if lines.read_line(&mut l).await? == 0 {
            break;
        }
        if let Some(found) = ConnectLine::find(&l) {
            let line = found?;
            let link = match child.stdin.take() {
                Some(stdin) => {
                    let rest = deploy::Rest {
                        reader: lines,
                        stdin,
                        child,
                    };
                    rest.into_link().await
                }
                None => {
                    // Let ssh finish in the background; its exit no longer matters.
                    tokio::spawn(async move {
                        let _ = child.wait().await;
                    });
                    None
                }
            };
            return Ok(Bootstrapped {
                line,
                server: opts.server.clone(),
                uploaded: None,
                link,
            });
        }
        if seen.len() < 64 * 1024 {
            seen.push_str(&l);
        }
    }
    let status = child.wait().await?;
    let out = SshOutput {
        status,
        stdout: seen,
        stderr: err_task.await.unwrap_or_default(),
    };
    if !out.status.success() {
        return Err(bootstrap_failure(opts, dest, &out, handover));
    }
    bail!(
        "the remote abide printed no connect line; is '{}' on {dest} really abide?\n  It said: {}",
        opts.server,
        out.stdout.trim()
    )
}

/// The UDP address: the server address ssh itself reached (from the remote's
/// SSH_CONNECTION), else the destination name resolved here.
/// The connector for a session (or a watch) that a bootstrap granted: QUIC to
/// the address ssh reached, ssh through the abide the bootstrap ran, raced
/// or pinned as `--transport` says.
pub async fn connector_for(
    opts: &RemoteOpts,
    host: &str,
    line: ConnectLine,
    server: String,
) -> Result<RemoteConnector> {
    let addr = udp_addr(host, &line).await?;
    let target = crate::transport::quic::Target {
        addr,
        fingerprint: line.fingerprint.clone(),
        grant_id: line.grant_id,
        secret: line.secret,
    };
    let ssh = crate::transport::ssh_stdio::SshTarget {
        ssh: ssh_argv(opts)?,
        dest: host.to_string(),
        server,
    };
    Ok(RemoteConnector::new(
        QuicConnector { target },
        ssh,
        opts.transport.policy_choice(),
        host.to_string(),
        TransportMemory::default_location(),
    ))
}

pub async fn udp_addr(dest: &str, line: &ConnectLine) -> Result<SocketAddr> {
    resolve_udp(dest, line.server_ip.as_deref(), line.port).await
}

/// `server_ip` (what ssh reached) or else `dest`'s host, with `port`.
pub async fn resolve_udp(dest: &str, server_ip: Option<&str>, port: u16) -> Result<SocketAddr> {
    let host = match server_ip {
        Some(ip) => ip.to_string(),
        None => host_part(dest).to_string(),
    };
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let mut addrs = tokio::net::lookup_host((host.as_str(), port))
        .await
        .with_context(|| format!("cannot resolve {host}"))?;
    addrs
        .next()
        .with_context(|| format!("{host} has no address"))
}

/// Connector for QUIC links only (`--transport udp`, the demo, tests).
pub struct QuicConnector {
    pub target: quic::Target,
}

/// Maps a transport's error onto the policy's reasons: typed where the
/// transport said what happened, else "unreachable" (retried).
fn reason(e: anyhow::Error) -> ConnectError {
    match e.downcast_ref::<ConnectError>() {
        Some(c) => c.clone(),
        None => ConnectError::Unreachable(format!("{e:#}")),
    }
}

fn dial_quic(target: &quic::Target) -> DialFuture {
    let target = target.clone();
    Box::pin(async move { quic::connect(&target).await.map_err(reason) })
}

impl Connector for QuicConnector {
    fn config(&self) -> Config {
        Config::remote(Choice::Only(Transport::Quic), None)
    }

    fn dial(&self, _transport: Transport, _interactive: bool) -> DialFuture {
        dial_quic(&self.target)
    }
}

/// QUIC, ssh, or both raced, per `--transport`; the transport memory gives
/// the policy its hint for this host and local network.
pub struct RemoteConnector {
    pub quic: QuicConnector,
    pub ssh: SshTarget,
    pub choice: Choice,
    /// The host part of the memory's key.
    pub host_key: String,
    memory: TransportMemory,
}

impl RemoteConnector {
    pub fn new(
        quic: QuicConnector,
        ssh: SshTarget,
        choice: Choice,
        host_key: String,
        memory: TransportMemory,
    ) -> Self {
        RemoteConnector {
            quic,
            ssh,
            choice,
            host_key,
            memory,
        }
    }

    fn network_key(&self) -> String {
        network_of(self.quic.target.addr).unwrap_or_else(|| "unknown".into())
    }
}

impl Connector for RemoteConnector {
    fn config(&self) -> Config {
        Config::remote(self.choice, self.hint())
    }

    fn dial(&self, transport: Transport, interactive: bool) -> DialFuture {
        match transport {
            Transport::Ssh => {
                let target = self.ssh.clone();
                Box::pin(async move {
                    crate::transport::ssh_stdio::connect(&target, interactive)
                        .await
                        .map_err(reason)
                })
            }
            _ => dial_quic(&self.quic.target),
        }
    }

    fn remember(&self, transport: Transport) {
        self.memory
            .remember(&self.host_key, &self.network_key(), transport);
    }

    fn network(&self) -> Option<String> {
        network_of(self.quic.target.addr)
    }

    fn hint(&self) -> Option<Transport> {
        self.memory.hint(&self.host_key, &self.network_key())
    }
}
