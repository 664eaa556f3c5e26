//! A small harness for driving the real `abide` binary: a private runtime
//! directory per test ([`Rt`]) and clients in real pseudo-terminals
//! ([`PtyClient`]). Every wait is bounded and fails with the captured output.
//!
//! Processes are only ever killed by PID.

#![allow(dead_code)]

pub mod fake_ssh;
pub mod redraw;
pub mod remote;
pub mod tmux;

use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use regex::bytes::Regex;

pub const BIN: &str = env!("CARGO_BIN_EXE_abide");

/// Default bound for waits. Generous: the test machine is small and shared.
pub const T: Duration = Duration::from_secs(20);

/// A fresh runtime directory and the environment every command gets. On drop
/// (also when the test panics) the daemon is stopped and the directory removed.
pub struct Rt {
    dir: tempfile::TempDir,
    env: Vec<(String, String)>,
}

impl Rt {
    pub fn new() -> Rt {
        Rt::with_env(&[])
    }

    /// `extra`: more variables, e.g. `("ABIDE_RING_BYTES", "4096")`.
    pub fn with_env(extra: &[(&str, &str)]) -> Rt {
        let dir = tempfile::Builder::new()
            .prefix("abide-test-")
            .tempdir()
            .expect("tempdir");
        let p = dir.path();
        let mut env = vec![
            (
                "ABIDE_RUNTIME_DIR".into(),
                p.join("rt").display().to_string(),
            ),
            (
                "ABIDE_CACHE_DIR".into(),
                p.join("cache").display().to_string(),
            ),
            (
                "ABIDE_CONFIG".into(),
                p.join("no-config.toml").display().to_string(),
            ),
            ("TERM".into(), "xterm-256color".into()),
        ];
        for (k, v) in extra {
            env.push((k.to_string(), v.to_string()));
        }
        Rt { dir, env }
    }

    /// The environment every command gets (for a terminal that runs abide).
    pub fn env(&self) -> &[(String, String)] {
        &self.env
    }

    pub fn runtime_dir(&self) -> PathBuf {
        self.dir.path().join("rt")
    }

    /// A scratch directory that goes away with the runtime (marker files, data).
    pub fn scratch(&self) -> &Path {
        self.dir.path()
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.args(args);
        for (k, v) in &self.env {
            c.env(k, v);
        }
        c.env_remove("ABIDE_SESSION");
        c
    }

    /// Runs a non-interactive command (no TTY: stdin from /dev/null), bounded.
    pub fn run(&self, args: &[&str]) -> Output {
        self.run_timeout(args, T)
    }

    pub fn run_timeout(&self, args: &[&str], timeout: Duration) -> Output {
        let child = self
            .command(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn abide");
        wait_output(child, timeout, &format!("abide {}", args.join(" ")))
    }

    /// `run`, asserting success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "abide {} failed ({}):\nstdout: {}\nstderr: {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8 stdout")
    }

    pub fn ls_json(&self) -> serde_json::Value {
        let out = self.ok(&["ls", "--json"]);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("ls --json: {e}: {out}"))
    }

    pub fn session_names(&self) -> Vec<String> {
        self.ls_json()
            .as_array()
            .expect("ls --json is an array")
            .iter()
            .map(|s| s["name"].as_str().expect("name").to_string())
            .collect()
    }

    /// The daemon's PID, from daemon.pid.
    pub fn daemon_pid(&self) -> Option<i32> {
        std::fs::read_to_string(self.runtime_dir().join("daemon.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// Starts a client in a PTY of `rows` x `cols`.
    pub fn pty(&self, args: &[&str], rows: u16, cols: u16) -> PtyClient {
        PtyClient::spawn(self.command(args), rows, cols)
    }
}

impl Default for Rt {
    fn default() -> Self {
        Rt::new()
    }
}

fn is_abide(pid: i32) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|c| String::from_utf8_lossy(&c).contains("abide"))
        .unwrap_or(false)
}

pub fn alive(pid: i32) -> bool {
    // A zombie still answers kill(0); look at its state too.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => !s
            .rsplit_once(')')
            .map(|(_, rest)| rest.trim_start().starts_with('Z'))
            .unwrap_or(false),
        Err(_) => false,
    }
}

impl Drop for Rt {
    fn drop(&mut self) {
        let Some(pid) = self.daemon_pid() else {
            return; // no daemon was started (or it already exited)
        };
        // Ask nicely, bounded; then make sure, by PID.
        let _ = self
            .command(&["kill-server"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map(|c| {
                let _ = try_wait_output(c, Duration::from_secs(6));
            });
        let deadline = Instant::now() + Duration::from_secs(3);
        while alive(pid) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        if alive(pid) && is_abide(pid) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }
}

/// Waits for a piped child, bounded; kills it by PID on timeout.
fn try_wait_output(mut child: Child, timeout: Duration) -> Result<Output, String> {
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    let out_t = std::thread::spawn(move || {
        let mut v = Vec::new();
        if let Some(s) = stdout.as_mut() {
            let _ = s.read_to_end(&mut v);
        }
        v
    });
    let err_t = std::thread::spawn(move || {
        let mut v = Vec::new();
        if let Some(s) = stderr.as_mut() {
            let _ = s.read_to_end(&mut v);
        }
        v
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(s) = child.try_wait().expect("try_wait") {
            break s;
        }
        if Instant::now() > deadline {
            let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGKILL);
            let _ = child.wait();
            return Err(format!("did not finish within {timeout:?}"));
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Ok(Output {
        status,
        stdout: out_t.join().unwrap(),
        stderr: err_t.join().unwrap(),
    })
}

fn wait_output(child: Child, timeout: Duration, what: &str) -> Output {
    try_wait_output(child, timeout).unwrap_or_else(|e| panic!("{what}: {e}"))
}

/// Printable rendering of captured bytes for failure messages (the tail).
pub fn show(bytes: &[u8]) -> String {
    let s = String::from_utf8_lossy(bytes);
    let s: String = s.escape_debug().collect();
    let n = s.chars().count();
    if n > 3000 {
        format!("...{}", s.chars().skip(n - 3000).collect::<String>())
    } else {
        s
    }
}

#[derive(Default)]
struct Captured {
    bytes: Vec<u8>,
    eof: bool,
}

/// The real binary in a real pseudo-terminal, its output collected by a thread.
pub struct PtyClient {
    pty: Arc<pty_process::blocking::Pty>,
    child: Child,
    out: Arc<(Mutex<Captured>, Condvar)>,
    /// `expect` searches from here, and moves it past each match.
    cursor: usize,
    status: Option<ExitStatus>,
}

impl PtyClient {
    pub fn spawn(cmd: Command, rows: u16, cols: u16) -> PtyClient {
        let (pty, pts) = pty_process::blocking::open().expect("open a pty");
        pty.resize(pty_process::Size::new(rows, cols))
            .expect("size the pty");
        let child = pty_process::blocking::Command::from(cmd)
            .spawn(pts)
            .expect("spawn abide in a pty");
        let pty = Arc::new(pty);
        let out: Arc<(Mutex<Captured>, Condvar)> = Arc::default();
        {
            let pty = pty.clone();
            let out = out.clone();
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    // EIO once the client (and everything holding the slave) is gone.
                    match (&*pty).read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            let (m, cv) = &*out;
                            m.lock().unwrap().bytes.extend_from_slice(&buf[..n]);
                            cv.notify_all();
                        }
                    }
                }
                let (m, cv) = &*out;
                m.lock().unwrap().eof = true;
                cv.notify_all();
            });
        }
        PtyClient {
            pty,
            child,
            out,
            cursor: 0,
            status: None,
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Everything the client wrote to its terminal so far.
    pub fn output(&self) -> Vec<u8> {
        self.out.0.lock().unwrap().bytes.clone()
    }

    pub fn output_string(&self) -> String {
        String::from_utf8_lossy(&self.output()).into_owned()
    }

    /// Waits until `pattern` (a regex) appears after the previous match;
    /// returns the matched text.
    pub fn expect_within(&mut self, pattern: &str, timeout: Duration) -> Result<String, String> {
        let re = Regex::new(pattern).expect("valid regex");
        let deadline = Instant::now() + timeout;
        let (m, cv) = &*self.out;
        let mut g = m.lock().unwrap();
        loop {
            if let Some(found) = re.find(&g.bytes[self.cursor.min(g.bytes.len())..]) {
                let text = String::from_utf8_lossy(found.as_bytes()).into_owned();
                self.cursor += found.end();
                return Ok(text);
            }
            let now = Instant::now();
            if g.eof || now >= deadline {
                let why = if g.eof {
                    "the terminal closed"
                } else {
                    "timed out"
                };
                return Err(format!(
                    "{why} waiting {timeout:?} for /{pattern}/; output:\n{}",
                    show(&g.bytes)
                ));
            }
            g = cv.wait_timeout(g, deadline - now).unwrap().0;
        }
    }

    /// `expect_within` with the default bound, panicking on failure.
    pub fn expect(&mut self, pattern: &str) -> String {
        self.expect_within(pattern, T)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Like `expect` for a literal string.
    pub fn expect_str(&mut self, s: &str) -> String {
        self.expect(&regex::escape(s))
    }

    /// Types `bytes` into the terminal.
    pub fn send(&self, bytes: &[u8]) {
        (&*self.pty).write_all(bytes).expect("write to the pty");
    }

    /// Ctrl-^ d.
    pub fn detach_keys(&self) {
        self.send(b"\x1ed");
    }

    /// Changes the terminal's size; the kernel sends SIGWINCH to the
    /// terminal's foreground process group (the client).
    pub fn resize(&self, rows: u16, cols: u16) {
        self.pty
            .resize(pty_process::Size::new(rows, cols))
            .expect("resize the pty");
    }

    pub fn kill(&self, sig: Signal) {
        kill(Pid::from_raw(self.pid()), sig).expect("signal the client");
    }

    /// The terminal's line discipline settings, read through the master
    /// (on Linux the master reports its slave's termios).
    pub fn termios(&self) -> nix::sys::termios::Termios {
        nix::sys::termios::tcgetattr(self.pty.as_fd()).expect("tcgetattr")
    }

    /// Canonical mode and echo: what a shell expects, and what raw mode clears.
    pub fn is_cooked(&self) -> bool {
        use nix::sys::termios::LocalFlags;
        let t = self.termios();
        t.local_flags
            .contains(LocalFlags::ICANON | LocalFlags::ECHO | LocalFlags::ISIG)
    }

    /// Waits (bounded) for the client to exit.
    pub fn wait(&mut self) -> ExitStatus {
        self.wait_within(T)
    }

    pub fn wait_within(&mut self, timeout: Duration) -> ExitStatus {
        if let Some(s) = self.status {
            return s;
        }
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(s) = self.child.try_wait().expect("try_wait") {
                self.status = Some(s);
                // Let the reader thread drain what the client wrote last.
                self.wait_eof(Duration::from_secs(2));
                return s;
            }
            if Instant::now() > deadline {
                panic!(
                    "the client did not exit within {timeout:?}; output:\n{}",
                    show(&self.output())
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn wait_eof(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let (m, cv) = &*self.out;
        let mut g = m.lock().unwrap();
        while !g.eof {
            let now = Instant::now();
            if now >= deadline {
                return;
            }
            g = cv.wait_timeout(g, deadline - now).unwrap().0;
        }
    }

    /// Waits for exit and returns the exit code (panics if killed by a signal).
    pub fn exit_code(&mut self) -> i32 {
        let s = self.wait();
        s.code().unwrap_or_else(|| {
            panic!(
                "client ended by a signal ({s}); output:\n{}",
                show(&self.output())
            )
        })
    }
}

impl Drop for PtyClient {
    fn drop(&mut self) {
        if self.status.is_none() {
            if let Ok(None) = self.child.try_wait() {
                let _ = kill(Pid::from_raw(self.pid()), Signal::SIGKILL);
            }
            let _ = self.child.wait();
        }
    }
}

/// Polls `f` until it returns `Some`, bounded.
pub fn eventually<R>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<R>) -> R {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(r) = f() {
            return r;
        }
        if Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// The numbers of every `LINE n` the program printed, in the order seen.
pub fn numbered_lines(bytes: &[u8]) -> Vec<u64> {
    let re = Regex::new(r"LINE (\d+)\r\n").unwrap();
    re.captures_iter(bytes)
        .map(|c| std::str::from_utf8(&c[1]).unwrap().parse().unwrap())
        .collect()
}

/// A vt100 model of a terminal of this size fed `bytes`, with room for scrollback.
pub fn screen_of(bytes: &[u8], rows: u16, cols: u16, scrollback: usize) -> vt100::Parser {
    use std::num::NonZeroU16;
    let mut p = vt100::Parser::new(
        NonZeroU16::new(rows).unwrap(),
        NonZeroU16::new(cols).unwrap(),
        scrollback,
    );
    p.process(bytes);
    p
}

/// The screen's rows as text, trailing blanks trimmed.
pub fn screen_rows(p: &vt100::Parser) -> Vec<String> {
    let cols = p.screen().size().1.get();
    p.screen()
        .rows(0, cols)
        .map(|r| r.trim_end().to_string())
        .collect()
}

/// The scrollback lines of the model, oldest first.
pub fn scrollback_rows(p: &mut vt100::Parser) -> Vec<String> {
    let cols = p.screen().size().1.get();
    let n = p.screen().scrollback_len();
    let mut lines = Vec::with_capacity(n);
    for off in (1..=n).rev() {
        p.screen_mut().set_scrollback(off);
        lines.push(
            p.screen()
                .rows(0, cols)
                .next()
                .unwrap_or_default()
                .trim_end()
                .to_string(),
        );
    }
    p.screen_mut().set_scrollback(0);
    lines
}

/// Writes a script to be executed. Not from this process: a file this
/// process has open for writing can be inherited by a child another test is
/// forking at that moment, and executing it then fails with ETXTBSY ("Text
/// file busy") until that child has exec'd. `install` writes it in a process
/// of its own, which nobody here forks from.
pub fn write_executable(path: &std::path::Path, text: &str) {
    let draft = path.with_extension("draft");
    std::fs::write(&draft, text).unwrap();
    let st = std::process::Command::new("install")
        .args(["-m", "0755"])
        .arg(&draft)
        .arg(path)
        .status()
        .unwrap();
    assert!(st.success(), "install {}: {st}", path.display());
}
