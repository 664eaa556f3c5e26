//! The session protocol over an ssh connection's stdin/stdout: the same frames,
//! acks and resume as QUIC, through anything ssh gets through (firewalls that
//! drop UDP, jump hosts).
//!
//! abide's own heartbeats find a dead link in seconds; the ssh we run also gets
//! `ServerAliveInterval` so that ssh itself never hangs for minutes, and
//! `BatchMode` on background reconnects, where nobody could answer a prompt.

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};

use crate::proto::frame::STDIO_READY as READY;
use crate::proto::policy::ConnectError;
use crate::transport::framed::{split, Link, LinkKind};

/// Quotes one word for the remote user's shell (ssh runs commands through
/// it); the core's quoting, shared with the self-deploy script.
pub use crate::proto::deploy::sh_quote;

#[derive(Clone, Debug)]
pub struct SshTarget {
    /// The user's ssh command (`--ssh`), already split into words.
    pub ssh: Vec<String>,
    pub dest: String,
    /// Path of abide on the remote host.
    pub server: String,
}

/// ssh's keepalive for the transport: gives up on a dead TCP path after
/// 3 × 5 s. abide notices sooner (3 s) and starts another ssh anyway.
pub const SSH_KEEPALIVE: [&str; 4] = ["-o", "ServerAliveInterval=5", "-o", "ServerAliveCountMax=3"];

/// How long one ssh may take to get in and start abide.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(8);

struct SshChild(#[allow(dead_code)] tokio::process::Child);

/// Starts `ssh DEST abide server --stdio` and waits for abide's ready marker.
/// `interactive` allows ssh to prompt (first connect, before raw mode).
pub async fn connect(t: &SshTarget, interactive: bool) -> Result<Link> {
    let mut cmd = tokio::process::Command::new(&t.ssh[0]);
    cmd.args(&t.ssh[1..])
        .args(SSH_KEEPALIVE)
        .args(["-o", "ConnectTimeout=5"]);
    if !interactive {
        cmd.args(["-o", "BatchMode=yes"]);
    }
    let remote = format!("{} server --stdio", sh_quote(&t.server));
    cmd.arg(&t.dest).arg(remote);
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd
        .spawn()
        .with_context(|| format!("cannot run {:?}", t.ssh[0]))?;
    let stdin = child.stdin.take().expect("piped");
    let stdout = child.stdout.take().expect("piped");
    let stderr = child.stderr.take().expect("piped");

    // Keep ssh's last words for error messages; draining also stops a chatty
    // ssh from blocking on a full pipe.
    let last_words = Arc::new(Mutex::new(String::new()));
    let lw = last_words.clone();
    tokio::spawn(async move {
        let mut lines = BufReader::new(stderr).lines();
        while let Ok(Some(l)) = lines.next_line().await {
            let mut w = lw.lock().unwrap();
            if w.len() > 4096 {
                w.clear();
            }
            w.push_str(&l);
            w.push('\n');
        }
    });

    let mut reader = BufReader::with_capacity(64 * 1024, stdout);
    let found = tokio::time::timeout(CONNECT_TIMEOUT, skip_to_ready(&mut reader)).await;
    match found {
        Ok(Ok(true)) => {}
        Ok(Ok(false)) | Ok(Err(_)) => {
            let status = tokio::time::timeout(Duration::from_secs(2), child.wait())
                .await
                .ok()
                .and_then(|r| r.ok());
            // Give the stderr task a moment to collect the message.
            tokio::time::sleep(Duration::from_millis(50)).await;
            let words = last_words.lock().unwrap().trim().to_string();
            return Err(explain_failure(
                t,
                status.and_then(|s| s.code()),
                &words,
                interactive,
            ));
        }
        Err(_) => bail!(
            "ssh to {} did not get in within {} s",
            t.dest,
            CONNECT_TIMEOUT.as_secs()
        ),
    }
    let (rx, tx) = split(reader, stdin);
    Ok(Link {
        rx,
        tx,
        kind: LinkKind::Ssh,
        auth: None,
        _owner: Some(Box::new(SshChild(child))),
    })
}

/// How long the bootstrap's relay may take to start after its connect line
/// (it only opens the daemon's socket, which is running).
pub const HANDOVER_TIMEOUT: Duration = Duration::from_secs(3);

/// The bootstrap's own ssh (`abide server --bootstrap --then-stdio`), its
/// connect line read, as a link: waits for the relay's ready marker. `reader`
/// keeps whatever it buffered past the connect line. The child's stderr must
/// be drained by the caller.
pub async fn handed_over<R>(
    mut reader: BufReader<R>,
    stdin: tokio::process::ChildStdin,
    child: tokio::process::Child,
) -> Result<Link>
where
    R: tokio::io::AsyncRead + Send + Unpin + 'static,
{
    match tokio::time::timeout(HANDOVER_TIMEOUT, skip_to_ready(&mut reader)).await {
        Ok(Ok(true)) => {}
        Ok(Ok(false)) => bail!("the bootstrap's ssh ended after the connect line"),
        Ok(Err(e)) => return Err(e),
        Err(_) => bail!("no relay on the bootstrap's ssh"),
    }
    let (rx, tx) = split(reader, stdin);
    Ok(Link {
        rx,
        tx,
        kind: LinkKind::Ssh,
        auth: None,
        _owner: Some(Box::new(SshChild(child))),
    })
}

/// Reads and discards until the ready marker; false at end of stream.
async fn skip_to_ready<R: tokio::io::AsyncRead + Unpin>(r: &mut BufReader<R>) -> Result<bool> {
    let mut window: Vec<u8> = Vec::new();
    let mut skipped = 0usize;
    loop {
        let mut byte = [0u8; 1];
        if r.read(&mut byte).await? == 0 {
            return Ok(false);
        }
        window.push(byte[0]);
        if window.len() > READY.len() {
            window.remove(0);
        }
        if window == READY {
            return Ok(true);
        }
        skipped += 1;
        if skipped > 1 << 20 {
            bail!("no abide ready marker in the first MiB from ssh");
        }
    }
}

fn explain_failure(
    t: &SshTarget,
    code: Option<i32>,
    words: &str,
    interactive: bool,
) -> anyhow::Error {
    let said = if words.is_empty() {
        String::new()
    } else {
        format!(": {words}")
    };
    if code == Some(127) || words.contains("command not found") {
        return anyhow::Error::new(ConnectError::NotInstalled(format!(
            "abide is not installed on the remote host (ran '{}' on {}){said}",
            t.server, t.dest
        )));
    }
    if !interactive
        && (words.contains("Permission denied")
            || words.contains("password")
            || words.contains("passphrase"))
    {
        return anyhow::Error::new(ConnectError::AuthRefused(format!(
            "ssh could not reconnect: authentication needs a password, and nobody can answer a prompt in the background. Use a key with ssh-agent, or ControlMaster/ControlPersist in ~/.ssh/config{said}"
        )));
    }
    anyhow!(
        "ssh to {} failed (exit {}){said}",
        t.dest,
        code.map_or("?".into(), |c| c.to_string())
    )
}
