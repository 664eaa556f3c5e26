//! Finding the daemon, and starting it when a command needs one.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::paths;
use crate::transport::framed::Link;
use crate::transport::unix;

/// Connects to a running daemon; `None` when there is none.
pub async fn connect_existing(rt: &Path) -> Result<Option<Link>> {
    Ok(try_stream(rt).await?.map(unix::link))
}

/// Connects to the daemon, starting one first if none runs.
pub async fn connect_or_start(rt: &Path) -> Result<Link> {
    let stream = connect_stream_or_start(rt).await?;
    Ok(unix::link(stream))
}

async fn try_stream(rt: &Path) -> Result<Option<tokio::net::UnixStream>> {
    let sock = paths::socket_path(rt);
    match tokio::net::UnixStream::connect(&sock).await {
        Ok(s) => Ok(Some(s)),
        // A daemon that is exiting (no sessions left) refuses or resets
        // connections: for the caller that is the same as no daemon.
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound
                    | std::io::ErrorKind::ConnectionRefused
                    | std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::ConnectionAborted
            ) =>
        {
            Ok(None)
        }
        Err(e) => Err(e).with_context(|| format!("cannot connect to {}", sock.display())),
    }
}

/// The daemon's socket as a plain stream, starting the daemon if needed.
pub async fn connect_stream_or_start(rt: &Path) -> Result<tokio::net::UnixStream> {
    if let Some(s) = try_stream(rt).await? {
        return Ok(s);
    }
    start_daemon(rt)?;
    let mut started = Instant::now();
    let deadline = started + Duration::from_secs(5);
    loop {
        if let Some(s) = try_stream(rt).await? {
            return Ok(s);
        }
        // The one we started finds the lock still held by a daemon that is
        // on its way out, and gives up: start another once that one is gone.
        if started.elapsed() > Duration::from_millis(300) {
            start_daemon(rt)?;
            started = Instant::now();
        }
        if Instant::now() > deadline {
            bail!(
                "the abide daemon did not start within 5 s; see {}",
                paths::log_path(rt).display()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn current_exe() -> Result<PathBuf> {
    std::env::current_exe().context("cannot find the abide executable")
}

/// Starts `abide server --daemon`, which detaches itself (fork + setsid) so it
/// belongs to no terminal and no client; we only reap the short-lived parent.
fn start_daemon(rt: &Path) -> Result<()> {
    let log = paths::open_runtime_file(&paths::log_path(rt), true)
        .context("cannot open the daemon log")?;
    let status = std::process::Command::new(current_exe()?)
        .args(["server", "--daemon"])
        .env("ABIDE_RUNTIME_DIR", rt)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .status()
        .context("cannot start the abide daemon")?;
    if !status.success() {
        bail!(
            "the abide daemon failed to start ({status}); see {}",
            paths::log_path(rt).display()
        );
    }
    Ok(())
}

/// In `abide server --daemon`, before any thread exists: fork, let the parent
/// exit, and make the child a session leader without a controlling terminal.
pub fn detach_from_terminal() -> Result<()> {
    // SAFETY: called from main before the async runtime or any other thread starts.
    match unsafe { nix::unistd::fork() }.context("fork")? {
        nix::unistd::ForkResult::Parent { .. } => std::process::exit(0),
        nix::unistd::ForkResult::Child => {
            nix::unistd::setsid().context("setsid")?;
            Ok(())
        }
    }
}

/// In `abide server --daemon`, before any thread or file of our own exists:
/// close every descriptor inherited from whatever started the daemon (a
/// shell, sshd, a test harness) so that no session's program ever gets one,
/// and make the process non-dumpable, so that another process of the user
/// cannot ptrace it or read its memory (grant secrets) through /proc.
pub fn harden_process() {
    let inherited: Vec<i32> = std::fs::read_dir("/proc/self/fd")
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .filter(|&fd| fd > 2)
                .collect()
        })
        .unwrap_or_default();
    for fd in inherited {
        // SAFETY: no thread exists yet and nothing in this process owns these
        // descriptors (the directory handle above is already closed: EBADF).
        unsafe { libc::close(fd) };
    }
    // SAFETY: prctl with PR_SET_DUMPABLE and an integer argument.
    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
}

pub use crate::transport::unix::{daemon_went_away, CLOSED_WITHOUT_ANSWER};

/// How many times a request is sent to a daemon that keeps going away.
pub const ATTEMPTS: usize = 3;

/// Sends one request to the daemon (starting one first when `start`), and
/// again to the next daemon when the one reached went away unanswered.
/// Returns the link, for what follows the reply; `None` when no daemon runs
/// and `start` is false.
pub async fn request(
    rt: &Path,
    req: crate::proto::frame::Request,
    start: bool,
) -> Result<Option<(Link, crate::proto::frame::Down)>> {
    let mut attempt = 1;
    loop {
        let mut link = if start {
            connect_or_start(rt).await?
        } else {
            match connect_existing(rt).await? {
                Some(link) => link,
                None => return Ok(None),
            }
        };
        match unix::request(&mut link, req.clone()).await {
            Err(e) if attempt < ATTEMPTS && daemon_went_away(&e) => attempt += 1,
            reply => return reply.map(|down| Some((link, down))),
        }
    }
}
