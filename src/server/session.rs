//! One program in a PTY, its output log and its terminal model.
//!
//! A single task reads the PTY, appends to the log and wakes the clients; the
//! terminal model trails the log on a blocking task and is caught up before a
//! snapshot, so a snapshot and its offset always agree (see `recorder`).
//! Client channels never get pushed bytes: each one pulls from the log at its
//! own offset, which gives replay, flow control and several clients at once
//! for free.

use std::collections::HashMap;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result};
use futures_util::FutureExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;

use crate::proto::frame::{NewSession, SessionInfo, TtyModes, WinSize};
use crate::proto::input::InputDedup;
use crate::proto::outlog::Read;
use crate::server::recorder::{Recorder, MAX_MODEL_LAG};

pub struct Session {
    pub id: u64,
    pub name: String,
    pub command: Vec<String>,
    pub pid: u32,
    pub created: SystemTime,
    state: Mutex<State>,
    /// The output log and the terminal model. Lock order: `state`, then these.
    output: Recorder,
    /// The log's end offset; changes wake the client channels.
    output_tx: watch::Sender<u64>,
    /// The program's exit code once it has exited and its output is all logged.
    exit_tx: watch::Sender<Option<i32>>,
    /// When that happened: an exited session nobody has seen is kept for a while.
    exited_at: OnceLock<Instant>,
    /// Killed (`abide kill`, expiry, kill-server): not kept once exited.
    killed: AtomicBool,
    writer: tokio::sync::Mutex<pty_process::OwnedWritePty>,
    /// A duplicate of the PTY master for TIOCSWINSZ, so a resize never waits
    /// behind a write blocked on a program that does not read its input.
    resize_fd: OwnedFd,
    /// The PTY's echo and line modes (read from the master), for the clients' prediction.
    tty_modes: watch::Sender<TtyModes>,
    /// Bells, notifications, quiet and expiry (see `server::attention`).
    pub attention: crate::server::attention::SessionAttention,
}

struct State {
    dedup: InputDedup,
    size: WinSize,
    clients: HashMap<u64, ClientSlot>,
    next_generation: u64,
}

struct ClientSlot {
    generation: u64,
    /// Set to true to tell an older channel of the same client to stand down.
    kick: watch::Sender<bool>,
}

/// A client channel's registration; dropping it unregisters.
pub struct ClientGuard {
    session: Arc<Session>,
    client_id: u64,
    generation: u64,
    pub kicked: watch::Receiver<bool>,
}

impl ClientGuard {
    /// Unregisters now (a detach: from here on the session counts as
    /// detached, before the client hears so); dropping it later does nothing more.
    pub fn release(&self) {
        let mut st = self.session.state.lock().unwrap();
        if st.clients.get(&self.client_id).map(|c| c.generation) == Some(self.generation) {
            st.clients.remove(&self.client_id);
        }
    }
}

impl Drop for ClientGuard {
    fn drop(&mut self) {
        self.release();
    }
}

pub struct Limits {
    pub ring_bytes: usize,
    pub scrollback_lines: usize,
    pub attention: Arc<crate::server::attention::Hub>,
}

/// The user's login shell from the password database, as ssh and tmux use.
fn login_shell() -> String {
    nix::unistd::User::from_uid(nix::unistd::getuid())
        .ok()
        .flatten()
        .map(|u| u.shell.to_string_lossy().into_owned())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("SHELL").ok())
        .unwrap_or_else(|| "/bin/sh".into())
}

fn home_dir() -> Option<std::path::PathBuf> {
    nix::unistd::User::from_uid(nix::unistd::getuid())
        .ok()
        .flatten()
        .map(|u| u.dir)
}

/// The environment a session's program starts with, and nothing else: the
/// user's login basics (from the password database, as `login` and sshd set
/// them), the locale and `PATH` the daemon has, what the client asked for
/// (`TERM`, `LANG`, ...), and abide's own variables. Not the rest of the
/// daemon's environment, which is whatever the command that first started it
/// had (`SSH_CONNECTION`, a stale `SSH_AUTH_SOCK`, `PWD`, ...).
/// Documented in docs/security.md.
pub fn program_env(session: &str, asked: &[(String, String)]) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = Vec::new();
    let mut set = |k: &str, v: String| {
        env.retain(|(x, _)| x != k);
        env.push((k.to_string(), v));
    };
    let user = nix::unistd::User::from_uid(nix::unistd::getuid())
        .ok()
        .flatten();
    if let Some(u) = &user {
        set("HOME", u.dir.display().to_string());
        set("USER", u.name.clone());
        set("LOGNAME", u.name.clone());
    }
    set("SHELL", login_shell());
    set(
        "PATH",
        std::env::var("PATH").unwrap_or_else(|_| {
            "/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin".into()
        }),
    );
    set("TERM", "xterm-256color".into());
    for (k, v) in std::env::vars() {
        let inherited = k == "LANG"
            || k == "LANGUAGE"
            || k.starts_with("LC_")
            || k == "TZ"
            || k == "XDG_RUNTIME_DIR"
            || (k.starts_with("ABIDE_") && k != "ABIDE_SESSION");
        if inherited {
            set(&k, v);
        }
    }
    for (k, v) in asked {
        // A name with '=' or NUL cannot be set; the client's values win otherwise.
        if !k.is_empty() && !k.contains(['=', '\0']) && !v.contains('\0') {
            set(k, v.clone());
        }
    }
    set("ABIDE_SESSION", session.to_string());
    env
}

impl Session {
    /// Starts the program. The returned future-less handle is live at once; the
    /// output pump runs as a task and calls `on_exit` when the program is gone.
    pub fn spawn(
        id: u64,
        name: String,
        spec: &NewSession,
        size: WinSize,
        limits: &Limits,
        on_exit: impl FnOnce(&Arc<Session>) + Send + 'static,
    ) -> Result<Arc<Session>> {
        let (pty, pts) = pty_process::open().context("cannot open a pseudo-terminal")?;
        pty.resize(pty_process::Size::new(size.rows.max(1), size.cols.max(1)))
            .context("cannot size the pseudo-terminal")?;
        // Close-on-exec, like the master itself: a program in another
        // session must never inherit this session's terminal.
        let resize_fd = nix::fcntl::fcntl(&pty, nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(3))
            .context("cannot duplicate the PTY")?;
        // SAFETY: F_DUPFD_CLOEXEC returned a new descriptor that nothing else owns.
        let resize_fd = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(resize_fd) };

        let (command, mut cmd) = if spec.command.is_empty() {
            let shell = login_shell();
            let base = std::path::Path::new(&shell)
                .file_name()
                .map(|b| b.to_string_lossy().into_owned())
                .unwrap_or_else(|| "sh".into());
            // A leading '-' in argv[0] makes it a login shell, as ssh does.
            (
                vec![shell.clone()],
                pty_process::Command::new(&shell).arg0(format!("-{base}")),
            )
        } else {
            (
                spec.command.clone(),
                pty_process::Command::new(&spec.command[0]).args(&spec.command[1..]),
            )
        };
        cmd = cmd.env_clear().envs(program_env(&name, &spec.env));
        if let Some(dir) = spec
            .cwd
            .clone()
            .map(std::path::PathBuf::from)
            .or_else(home_dir)
        {
            if dir.is_dir() {
                cmd = cmd.current_dir(dir);
            }
        }
        let child = cmd.spawn(pts).map_err(|e| cannot_start(&command[0], e))?;
        let pid = child.id().unwrap_or(0);
        let (reader, writer) = pty.into_split();

        let session = Arc::new(Session {
            id,
            name: name.clone(),
            command,
            pid,
            created: SystemTime::now(),
            state: Mutex::new(State {
                dedup: InputDedup::default(),
                size,
                clients: HashMap::new(),
                next_generation: 1,
            }),
            output: Recorder::new(limits.ring_bytes, size, limits.scrollback_lines),
            output_tx: watch::channel(0).0,
            exit_tx: watch::channel(None).0,
            exited_at: OnceLock::new(),
            killed: AtomicBool::new(false),
            writer: tokio::sync::Mutex::new(writer),
            resize_fd,
            tty_modes: watch::channel(TtyModes {
                echo: true,
                canonical: true,
            })
            .0,
            attention: crate::server::attention::SessionAttention::new(
                limits.attention.clone(),
                id,
                &name,
            ),
        });
        tokio::spawn(feed_model(
            Arc::downgrade(&session),
            session.subscribe_output(),
        ));
        tokio::spawn(pump_output(session.clone(), reader, child, on_exit));
        Ok(session)
    }

    fn record(&self, bytes: &[u8]) {
        self.attention.output(bytes, self.is_attached());
        let end = self.output.append(bytes);
        self.output_tx.send_replace(end);
    }

    pub fn subscribe_output(&self) -> watch::Receiver<u64> {
        self.output_tx.subscribe()
    }

    pub fn subscribe_tty_modes(&self) -> watch::Receiver<TtyModes> {
        self.tty_modes.subscribe()
    }

    /// Reads the PTY's ECHO and ICANON flags (the master reports the
    /// terminal's termios) and wakes the channels when they changed.
    fn check_tty_modes(&self) {
        use nix::sys::termios::{tcgetattr, LocalFlags};
        if let Ok(t) = tcgetattr(&self.resize_fd) {
            let m = TtyModes {
                echo: t.local_flags.contains(LocalFlags::ECHO),
                canonical: t.local_flags.contains(LocalFlags::ICANON),
            };
            self.tty_modes.send_if_modified(|old| {
                let changed = *old != m;
                *old = m;
                changed
            });
        }
    }

    pub fn subscribe_exit(&self) -> watch::Receiver<Option<i32>> {
        self.exit_tx.subscribe()
    }

    /// The program's exit code, once it has exited and all its output is logged.
    pub fn exit_code(&self) -> Option<i32> {
        *self.exit_tx.borrow()
    }

    /// How long ago the program exited, once it has.
    pub fn exited_for(&self) -> Option<Duration> {
        self.exited_at.get().map(|t| t.elapsed())
    }

    /// Whether it was told to end (by `abide kill`, its expiry or kill-server).
    pub fn was_killed(&self) -> bool {
        self.killed.load(Ordering::SeqCst)
    }

    pub fn end_offset(&self) -> u64 {
        self.output.log().log.end()
    }

    pub fn start_offset(&self) -> u64 {
        self.output.log().log.start()
    }

    /// Output from `offset`, or `Err(())` when it has left the log.
    pub fn read(&self, offset: u64, max: usize) -> Result<Vec<u8>, ReadGap> {
        let l = self.output.log();
        match l.log.read_vec(offset, max) {
            Ok(v) => Ok(v),
            Err(Read::Evicted { .. }) => Err(ReadGap::Evicted),
            Err(_) => Err(ReadGap::Future),
        }
    }

    /// The screen and scrollback as escape sequences, and the offset they stand for.
    pub async fn snapshot(self: &Arc<Self>) -> (Vec<u8>, u64) {
        self.off_runtime(|s| s.output.snapshot()).await
    }

    /// What a client showing the stream up to `from` needs to show the
    /// screen now (rows scrolled off since, within `budget`), and its offset.
    pub fn state_since(&self, from: u64, budget: usize) -> Option<(Vec<u8>, u64)> {
        self.output.state_since(from, budget, &self.name)
    }

    /// The rows that scrolled off (the newest `tail` of them), for `abide history`.
    pub async fn history(self: &Arc<Self>, tail: Option<usize>) -> Vec<u8> {
        self.off_runtime(move |s| s.output.history(tail)).await
    }

    /// Runs model work on a blocking thread. Catching the model up and
    /// rendering a whole scrollback take milliseconds to tens of them, and
    /// the daemon's runtime is one thread serving every session: on it, one
    /// reattach would stall every other session's keys.
    async fn off_runtime<T: Send + 'static>(
        self: &Arc<Self>,
        work: impl FnOnce(&Session) -> T + Send + 'static,
    ) -> T {
        let s = self.clone();
        match tokio::task::spawn_blocking(move || work(&s)).await {
            Ok(v) => v,
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }

    /// The output log's extent and the exit code, for the channel core.
    pub fn log_state(&self) -> crate::proto::server::LogState {
        let exited = *self.exit_tx.borrow();
        let modelled = self.output.modelled();
        let l = self.output.log();
        crate::proto::server::LogState {
            start: l.log.start(),
            end: l.log.end(),
            exited,
            modelled,
        }
    }

    pub fn register_client(self: &Arc<Self>, client_id: u64) -> ClientGuard {
        let mut st = self.state.lock().unwrap();
        let generation = st.next_generation;
        st.next_generation += 1;
        let (kick, kicked) = watch::channel(false);
        if let Some(old) = st
            .clients
            .insert(client_id, ClientSlot { generation, kick })
        {
            old.kick.send_replace(true);
        }
        ClientGuard {
            session: self.clone(),
            client_id,
            generation,
            kicked,
        }
    }

    pub fn is_attached(&self) -> bool {
        !self.state.lock().unwrap().clients.is_empty()
    }

    pub fn input_applied(&self, client_id: u64) -> u64 {
        self.state.lock().unwrap().dedup.applied(client_id)
    }

    /// Writes input chunk `seq` of `client_id` to the program unless it was
    /// already applied. Returns whether it was written.
    pub async fn write_input(&self, client_id: u64, seq: u64, data: &[u8]) -> Result<bool> {
        // The writer lock is held across the check and the write, so chunks
        // from two channels of one client cannot overtake each other.
        let mut writer = self.writer.lock().await;
        if !self.state.lock().unwrap().dedup.accept(client_id, seq) {
            return Ok(false);
        }
        // Nobody reads it any more; acknowledged all the same, so that a
        // client showing the last output does not resend it forever.
        if self.exit_code().is_some() {
            return Ok(false);
        }
        writer
            .write_all(data)
            .await
            .context("cannot write to the program")?;
        Ok(true)
    }

    /// The most recently active client's size wins, as in tmux. Off the
    /// runtime thread: the model is caught up first.
    pub async fn set_size(self: &Arc<Self>, size: WinSize) {
        self.off_runtime(move |s| s.resize_now(size)).await
    }

    fn resize_now(&self, size: WinSize) {
        if size.rows == 0 || size.cols == 0 {
            return;
        }
        // Most of the model's backlog is processed before the state lock is
        // taken; the resize itself then catches up only what came since.
        self.output.feed();
        let mut st = self.state.lock().unwrap();
        if st.size == size {
            return;
        }
        st.size = size;
        self.output.resize(size);
        let ws = libc::winsize {
            ws_row: size.rows,
            ws_col: size.cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCSWINSZ reads one winsize from a valid pointer; the fd is ours.
        unsafe { libc::ioctl(self.resize_fd.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
    }

    /// Hang up on the program, as a closing terminal would; SIGKILL if it
    /// lingers. Marks the session killed, so that it is not kept once
    /// exited; a program that has already exited is not signalled (its pid
    /// may belong to another process by now).
    pub fn kill(&self) {
        self.killed.store(true, Ordering::SeqCst);
        if self.exit_code().is_some() {
            return;
        }
        let pgid = nix::unistd::Pid::from_raw(self.pid as i32);
        let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGHUP);
        let _ = nix::sys::signal::kill(pgid, nix::sys::signal::Signal::SIGHUP);
        let pid = self.pid;
        let exited = self.subscribe_exit();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(3)).await;
            if exited.borrow().is_none() {
                let _ = nix::sys::signal::killpg(
                    nix::unistd::Pid::from_raw(pid as i32),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        });
    }

    pub fn info(&self) -> SessionInfo {
        let st = self.state.lock().unwrap();
        let (last_output, output_bytes) = {
            let l = self.output.log();
            (l.last_output, l.log.end())
        };
        let secs = |t: SystemTime| {
            t.duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0)
        };
        SessionInfo {
            id: self.id,
            name: self.name.clone(),
            command: self.command.clone(),
            pid: self.pid,
            created: secs(self.created),
            last_output: last_output.map(secs),
            clients: st.clients.len() as u32,
            size: st.size,
            output_bytes,
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum ReadGap {
    Evicted,
    Future,
}

/// Why the program did not start, said once (the PTY crate's error repeats
/// its cause) and in the user's terms.
fn cannot_start(program: &str, e: pty_process::Error) -> anyhow::Error {
    let io = std::error::Error::source(&e)
        .and_then(|s| s.downcast_ref::<std::io::Error>())
        .map(|io| io.kind());
    match io {
        Some(std::io::ErrorKind::NotFound) => anyhow::anyhow!(
            "cannot start '{program}': no such program (not found in PATH, or the path does not exist)"
        ),
        Some(std::io::ErrorKind::PermissionDenied) => {
            anyhow::anyhow!("cannot start '{program}': permission denied (is it executable?)")
        }
        _ => anyhow::anyhow!("cannot start '{program}': {e}"),
    }
}

fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .unwrap_or_else(|| -status.signal().unwrap_or(0))
}

/// Keeps the terminal model near the log's end, off the output path. Holds
/// the session weakly: it ends when the session is gone.
async fn feed_model(session: Weak<Session>, mut output: watch::Receiver<u64>) {
    while output.changed().await.is_ok() {
        let Some(s) = session.upgrade() else { return };
        let _ = tokio::task::spawn_blocking(move || s.output.feed()).await;
    }
}

/// The pump takes more from the PTY without waiting while this much room is left.
const MIN_READ: usize = 4096;

async fn pump_output(
    session: Arc<Session>,
    mut reader: pty_process::OwnedReadPty,
    mut child: tokio::process::Child,
    on_exit: impl FnOnce(&Arc<Session>) + Send + 'static,
) {
    let mut buf = vec![0u8; 64 * 1024];
    let mut status = None;
    // A program may turn echo off without printing (a password prompt
    // printed first): look at the modes now and then, not only on output.
    let mut modes_tick = tokio::time::interval(Duration::from_millis(50));
    modes_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            r = reader.read(&mut buf) => match r {
                Ok(n) if n > 0 => {
                    // A PTY gives at most a few KiB per read: take what else
                    // is there already, so that a flood is recorded (and the
                    // channels and the model woken) once per 64 KiB, not per
                    // read.
                    let mut filled = n;
                    while buf.len() - filled >= MIN_READ {
                        match reader.read(&mut buf[filled..]).now_or_never() {
                            Some(Ok(n)) if n > 0 => filled += n,
                            _ => break,
                        }
                    }
                    session.check_tty_modes();
                    if session.output.lag_after(filled) > MAX_MODEL_LAG {
                        // The program prints faster than the model parses:
                        // wait for the model (holding the program back, once
                        // its PTY is full, as a slow terminal does), on a
                        // blocking thread: the runtime serves other sessions.
                        let s = session.clone();
                        let _ = tokio::task::spawn_blocking(move || {
                            s.output.feed_until(MAX_MODEL_LAG / 2)
                        })
                        .await;
                    }
                    session.record(&buf[..filled]);
                }
                // EIO: every copy of the PTY's other side is closed.
                _ => break,
            },
            s = child.wait(), if status.is_none() => {
                status = Some(s);
                // The program is gone; take what it left in the PTY, but do not
                // wait forever for a background job that inherited it.
                loop {
                    match tokio::time::timeout(Duration::from_millis(100), reader.read(&mut buf)).await {
                        Ok(Ok(n)) if n > 0 => session.record(&buf[..n]),
                        _ => break,
                    }
                }
                break;
            }
            _ = modes_tick.tick() => session.check_tty_modes(),
        }
    }
    let status = match status {
        Some(s) => s,
        None => child.wait().await,
    };
    let code = status.map(exit_code).unwrap_or(1);
    tracing::info!(session = %session.name, code, "program exited");
    session.attention.exited(code);
    let _ = session.exited_at.set(Instant::now());
    session.exit_tx.send_replace(Some(code));
    on_exit(&session);
}
