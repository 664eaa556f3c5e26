//! Reaching a remote host: run the user's own ssh for the bootstrap (their
//! config, keys, agent and ProxyJump just work), then connect over QUIC.

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use tokio::io::AsyncReadExt;

use crate::cli::RemoteOpts;
use crate::client::connector::{Connector, LinkFuture};
use crate::client::deploy::{self, Bootstrapped};
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
}

pub async fn bootstrap(
    opts: &RemoteOpts,
    dest: &str,
    spec: &BootstrapSpec<'_>,
) -> Result<Bootstrapped> {
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
    if spec.watch {
        words.push("--watch".into());
    }
    for (k, v) in crate::commands::client_env() {
        words.extend(["--env".into(), format!("{k}={v}")]);
    }
    if !spec.command.is_empty() {
        words.push("--".into());
        words.extend(spec.command.iter().cloned());
    }
    if deploy::applies(opts) {
        return deploy::bootstrap(opts, dest, &words[1..], &deploy::Binaries::installed()).await;
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
        .arg(dest)
        .arg(&remote_cmd)
        .stdin(Stdio::inherit())
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
            // Let ssh finish in the background; its exit no longer matters.
            tokio::spawn(async move {
                let _ = child.wait().await;
            });
            return found.map(|line| Bootstrapped {
                line,
                server: opts.server.clone(),
                uploaded: None,
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
        return Err(ssh_failure(opts, dest, &out));
    }
    bail!(
        "the remote abide printed no connect line; is '{}' on {dest} really abide?\n  It said: {}",
        opts.server,
        out.stdout.trim()
    )
}

/// The UDP address: the server address ssh itself reached (from the remote's
/// SSH_CONNECTION), else the destination name resolved here.
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

/// Which path a [`RemoteConnector`] uses now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Not yet known (auto, first connect): QUIC first, ssh if UDP gets no answer.
    Undecided,
    Quic,
    Ssh,
}

/// QUIC, ssh, or QUIC falling back to ssh, per `--transport`.
pub struct RemoteConnector {
    pub quic: QuicConnector,
    pub ssh: crate::transport::ssh_stdio::SshTarget,
    pub choice: crate::cli::TransportChoice,
    /// Key for the per-host transport memory.
    pub host_key: String,
    memory: crate::client::transport_memory::TransportMemory,
    mode: std::sync::Mutex<Mode>,
    notice: std::sync::Mutex<Option<String>>,
    /// The first ssh connect may prompt (it happens before raw mode).
    interactive_used: std::sync::atomic::AtomicBool,
    /// An ssh attempt is running (one at a time is enough).
    ssh_in_flight: Arc<std::sync::atomic::AtomicBool>,
    /// auto, on ssh: how often UDP is tried again.
    pub upgrade_every: Duration,
}

use std::sync::atomic::Ordering as AtomicOrdering;
use std::sync::Arc;

/// auto: how long the first QUIC handshake may take before ssh takes over.
/// A handshake on a working path takes one or two round trips (well under a
/// second even intercontinentally, with retransmission at 300 ms); 2.5 s
/// covers a lossy path's first retransmissions without making a UDP-less
/// network wait long.
const AUTO_UDP_WAIT: Duration = Duration::from_millis(2500);

/// auto, on QUIC: after this long without a link, ssh is tried alongside.
const AUTO_SSH_AFTER: Duration = Duration::from_secs(5);

/// auto, on ssh: how often to try UDP again (`ABIDE_UDP_RETRY_S` overrides).
fn udp_retry_interval() -> Duration {
    std::env::var("ABIDE_UDP_RETRY_S")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .map(Duration::from_secs_f64)
        .unwrap_or(Duration::from_secs(30))
}

impl RemoteConnector {
    pub fn new(
        quic: QuicConnector,
        ssh: crate::transport::ssh_stdio::SshTarget,
        choice: crate::cli::TransportChoice,
        host_key: String,
        memory: crate::client::transport_memory::TransportMemory,
    ) -> Self {
        use crate::cli::TransportChoice as T;
        let mode = match choice {
            T::Udp => Mode::Quic,
            T::Ssh => Mode::Ssh,
            T::Auto if memory.prefers_ssh(&host_key) => Mode::Ssh,
            T::Auto => Mode::Undecided,
        };
        let notice = (choice == T::Auto && mode == Mode::Ssh).then(|| {
            "abide: over ssh (UDP did not get through last time); trying UDP in the background"
                .to_string()
        });
        RemoteConnector {
            quic,
            ssh,
            choice,
            host_key,
            memory,
            mode: std::sync::Mutex::new(mode),
            notice: std::sync::Mutex::new(notice),
            interactive_used: std::sync::atomic::AtomicBool::new(false),
            ssh_in_flight: Arc::new(std::sync::atomic::AtomicBool::new(false)),
            upgrade_every: udp_retry_interval(),
        }
    }

    fn mode(&self) -> Mode {
        *self.mode.lock().unwrap()
    }

    fn ssh_attempt(&self) -> LinkFuture {
        let target = self.ssh.clone();
        let interactive = !self.interactive_used.swap(true, AtomicOrdering::SeqCst);
        self.ssh_in_flight.store(true, AtomicOrdering::SeqCst);
        // Cleared however the attempt ends, including being dropped unfinished
        // (the driver drops pending attempts when the old link comes back).
        let in_flight = InFlight(self.ssh_in_flight.clone());
        Box::pin(async move {
            let _in_flight = in_flight;
            crate::transport::ssh_stdio::connect(&target, interactive).await
        })
    }

    fn set_mode(&self, m: Mode) {
        *self.mode.lock().unwrap() = m;
    }
}

struct InFlight(Arc<std::sync::atomic::AtomicBool>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.store(false, AtomicOrdering::SeqCst);
    }
}

/// Makes `connect` futures that can update the connector's mode when they
/// finish; the connector is shared with the driver through an `Arc`.
pub struct SharedRemote(pub Arc<RemoteConnector>);

impl Connector for SharedRemote {
    fn connect(&self) -> LinkFuture {
        match self.connect_while_lost(Duration::ZERO) {
            Some(f) => f,
            None => Box::pin(async { bail!("an ssh attempt is already running") }),
        }
    }

    fn connect_while_lost(&self, lost_for: Duration) -> Option<LinkFuture> {
        let me = self.0.clone();
        Some(match me.mode() {
            Mode::Quic => {
                let auto = me.choice == crate::cli::TransportChoice::Auto;
                if auto
                    && lost_for > AUTO_SSH_AFTER
                    && !me.ssh_in_flight.load(AtomicOrdering::SeqCst)
                {
                    // Perhaps this network drops UDP: let ssh race the handshakes.
                    let fut = me.ssh_attempt();
                    return Some(Box::pin(async move {
                        let link = fut.await?;
                        me.set_mode(Mode::Ssh);
                        *me.notice.lock().unwrap() =
                            Some("abide: no UDP reply; carrying on over ssh".into());
                        me.memory.remember(&me.host_key, "ssh");
                        Ok(link)
                    }));
                }
                me.quic.connect()
            }
            Mode::Ssh => {
                if me.ssh_in_flight.load(AtomicOrdering::SeqCst) {
                    // One ssh at a time; the next interval tries again.
                    return None;
                }
                me.ssh_attempt()
            }
            Mode::Undecided => Box::pin(async move {
                let quic = tokio::time::timeout(
                    AUTO_UDP_WAIT,
                    crate::transport::quic::connect(&me.quic.target),
                )
                .await;
                match quic {
                    Ok(Ok(link)) => {
                        me.set_mode(Mode::Quic);
                        me.memory.remember(&me.host_key, "udp");
                        Ok(link)
                    }
                    // A wrong certificate is an attack or a misconfiguration, not a blocked port.
                    Ok(Err(e)) if format!("{e:#}").contains("fingerprint mismatch") => Err(e),
                    _ => {
                        let link = me.ssh_attempt().await?;
                        me.set_mode(Mode::Ssh);
                        *me.notice.lock().unwrap() = Some(format!(
                            "abide: no UDP reply from {} within {:.1} s; carrying on over ssh",
                            me.quic.target.addr,
                            AUTO_UDP_WAIT.as_secs_f64()
                        ));
                        me.memory.remember(&me.host_key, "ssh");
                        Ok(link)
                    }
                }
            }),
        })
    }

    fn timing(&self) -> Timing {
        match self.0.mode() {
            Mode::Ssh => Timing::SSH,
            _ => Timing::QUIC,
        }
    }

    /// QUIC: every 250 ms (see [`QuicConnector`]). ssh: 0.5, 1, 2, 2, ... s:
    /// never more than 2 s between tries while the network is down.
    fn retry_interval(&self, attempts: u32) -> Duration {
        match self.0.mode() {
            Mode::Ssh => Duration::from_millis(500u64 << attempts.saturating_sub(1).min(2)),
            _ => self.0.quic.retry_interval(attempts),
        }
    }

    fn max_parallel(&self) -> usize {
        self.0.quic.max_parallel() + 1
    }

    fn give_up_after(&self) -> Option<Duration> {
        None
    }

    fn take_notice(&self) -> Option<String> {
        self.0.notice.lock().unwrap().take()
    }

    fn upgrade_interval(&self) -> Option<Duration> {
        (self.0.choice == crate::cli::TransportChoice::Auto && self.0.mode() == Mode::Ssh)
            .then_some(self.0.upgrade_every)
    }

    fn upgrade(&self) -> Option<LinkFuture> {
        self.upgrade_interval()?;
        let me = self.0.clone();
        Some(Box::pin(async move {
            let link = tokio::time::timeout(
                AUTO_UDP_WAIT,
                crate::transport::quic::connect(&me.quic.target),
            )
            .await
            .map_err(|_| anyhow::anyhow!("no UDP reply"))??;
            me.set_mode(Mode::Quic);
            *me.notice.lock().unwrap() =
                Some("abide: UDP gets through again; moved the session to QUIC".into());
            me.memory.remember(&me.host_key, "udp");
            Ok(link)
        }))
    }
}
