//! Reaching a remote host: run the user's own ssh for the bootstrap (their
//! config, keys, agent and ProxyJump just work), then connect over QUIC.

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use tokio::io::AsyncReadExt;

use crate::cli::RemoteOpts;
use crate::client::connector::{Connector, LinkFuture};
use crate::proto::resume::Timing;
use crate::server::bootstrap::ConnectLine;
use crate::transport::quic;

/// Quotes one word for the remote user's shell (ssh runs commands through it).
pub fn sh_quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:@,+".contains(&b))
    {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The ssh command line the user asked for (`--ssh 'ssh -p 2222'`).
pub fn ssh_argv(opts: &RemoteOpts) -> Result<Vec<String>> {
    let argv = shell_words::split(&opts.ssh)
        .with_context(|| format!("cannot parse --ssh {:?}", opts.ssh))?;
    if argv.is_empty() {
        bail!("--ssh is empty");
    }
    Ok(argv)
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
}

pub async fn bootstrap(
    opts: &RemoteOpts,
    dest: &str,
    spec: &BootstrapSpec<'_>,
) -> Result<ConnectLine> {
    let mut words = vec![opts.server.clone(), "server".into(), "--bootstrap".into()];
    if let Some(p) = &opts.udp_ports {
        words.extend(["--udp-ports".into(), p.clone()]);
    }
    if let Some(s) = spec.session {
        words.extend(["--session".into(), s.to_string()]);
    }
    if spec.existing_only {
        words.push("--existing".into());
    }
    for (k, v) in crate::commands::client_env() {
        words.extend(["--env".into(), format!("{k}={v}")]);
    }
    if !spec.command.is_empty() {
        words.push("--".into());
        words.extend(spec.command.iter().cloned());
    }
    let remote_cmd = words
        .iter()
        .map(|w| sh_quote(w))
        .collect::<Vec<_>>()
        .join(" ");
    let out = run_ssh(opts, dest, &remote_cmd).await?;
    if !out.status.success() {
        return Err(ssh_failure(opts, dest, &out));
    }
    match ConnectLine::find(&out.stdout) {
        Some(line) => line,
        None => bail!(
            "the remote abide printed no connect line; is '{}' on {dest} really abide?\n  It said: {}",
            opts.server,
            out.stdout.trim()
        ),
    }
}

/// The UDP address: the server address ssh itself reached (from the remote's
/// SSH_CONNECTION), else the destination name resolved here.
pub async fn udp_addr(dest: &str, line: &ConnectLine) -> Result<SocketAddr> {
    let host = match &line.server_ip {
        Some(ip) => ip.clone(),
        None => host_part(dest).to_string(),
    };
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let mut addrs = tokio::net::lookup_host((host.as_str(), line.port))
        .await
        .with_context(|| format!("cannot resolve {host}"))?;
    addrs
        .next()
        .with_context(|| format!("{host} has no address"))
}

/// Connector for QUIC links to one granted session.
pub struct QuicConnector {
    pub target: quic::Target,
}

/// One handshake attempt may take this long before it counts as failed.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(3);

impl Connector for QuicConnector {
    fn connect(&self) -> LinkFuture {
        let target = self.target.clone();
        Box::pin(async move {
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, quic::connect(&target)).await {
                Ok(r) => r,
                Err(_) => bail!("no UDP reply from {}", target.addr),
            }
        })
    }
    fn timing(&self) -> Timing {
        Timing::QUIC
    }
    /// A new handshake every 250 ms while the path is down: the first one to
    /// get through after the path returns wins, so recovery takes one interval
    /// at worst plus a round trip. That is about 5 kB/s of handshake packets
    /// while disconnected, and nothing extra while connected.
    fn retry_interval(&self, _attempts: u32) -> Duration {
        Duration::from_millis(250)
    }
    fn max_parallel(&self) -> usize {
        HANDSHAKE_TIMEOUT.as_millis() as usize / 250
    }
    fn give_up_after(&self) -> Option<Duration> {
        None
    }
}
