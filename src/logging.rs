//! tracing setup: the daemon logs to its log file; clients stay quiet unless
//! ABIDE_LOG asks, because their stderr is the user's terminal.
//!
//! The daemon's log is bounded: at [`LOG_CAP`] bytes `daemon.log` becomes
//! `daemon.log.1` (replacing the previous one) and a new `daemon.log` starts,
//! so a daemon that logs in a loop fills at most twice the cap. Loops that can
//! fail repeatedly (accept) log through a [`Throttle`] as well.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Size at which the daemon log is rotated (once: one old file is kept).
pub const LOG_CAP: u64 = 4 * 1024 * 1024;

/// `daemon`: this process is the daemon; `to_file`: it detached, so it logs
/// to the capped file in the runtime directory (else to stderr).
pub fn init(daemon: bool, to_file: bool) {
    let filter = std::env::var("ABIDE_LOG").unwrap_or_else(|_| {
        if daemon {
            "info".into()
        } else {
            "off".into()
        }
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_ansi(false);
    if to_file {
        let log = crate::paths::runtime_dir()
            .and_then(|rt| CappedLog::open(crate::paths::log_path(&rt), LOG_CAP));
        match log {
            Ok(log) => {
                let _ = builder.with_writer(log).try_init();
                return;
            }
            Err(e) => eprintln!("abide: cannot open the daemon log: {e:#}"),
        }
    }
    let _ = builder.with_writer(std::io::stderr).try_init();
}

/// A log file that is rotated once it reaches `cap` bytes. Each write is
/// also the process's stderr (fd 2), so a panic message lands in it too.
pub struct CappedLog {
    inner: Mutex<Inner>,
}

struct Inner {
    path: PathBuf,
    file: std::fs::File,
    written: u64,
    cap: u64,
}

impl CappedLog {
    pub fn open(path: PathBuf, cap: u64) -> anyhow::Result<CappedLog> {
        let file = crate::paths::open_runtime_file(&path, true)?;
        let written = file.metadata()?.len();
        redirect_stderr(&file);
        Ok(CappedLog {
            inner: Mutex::new(Inner {
                path,
                file,
                written,
                cap,
            }),
        })
    }
}

fn redirect_stderr(file: &std::fs::File) {
    use std::os::fd::AsRawFd;
    // SAFETY: dup2 onto fd 2 of a descriptor we own; fd 2 stays open throughout.
    unsafe { libc::dup2(file.as_raw_fd(), 2) };
}

impl Inner {
    fn rotate(&mut self) -> std::io::Result<()> {
        let old = self.path.with_extension("log.1");
        std::fs::rename(&self.path, old)?;
        let file = crate::paths::open_runtime_file(&self.path, true)
            .map_err(|e| std::io::Error::other(format!("{e:#}")))?;
        redirect_stderr(&file);
        self.file = file;
        self.written = 0;
        Ok(())
    }
}

pub struct CappedWriter<'a>(&'a Mutex<Inner>);

impl Write for CappedWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut g = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if g.written > 0 && g.written + buf.len() as u64 > g.cap {
            // If rotating fails (the directory went away), keep writing
            // nothing rather than growing the old file without bound.
            if g.rotate().is_err() {
                return Ok(buf.len());
            }
        }
        let n = g.file.write(buf)?;
        g.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for CappedLog {
    type Writer = CappedWriter<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        CappedWriter(&self.inner)
    }
}

/// Lets a repeated message through at most once per `every`, and says how
/// many were held back in between: a failure that repeats thousands of times
/// a second leaves one line a period, not thousands.
pub struct Throttle {
    every: Duration,
    last: Option<Instant>,
    held: u64,
}

impl Throttle {
    pub fn new(every: Duration) -> Self {
        Throttle {
            every,
            last: None,
            held: 0,
        }
    }

    /// `Some(n)`: log now, mentioning the `n` occurrences held back since the last line.
    pub fn allow(&mut self, now: Instant) -> Option<u64> {
        match self.last {
            Some(t) if now.duration_since(t) < self.every => {
                self.held += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.held))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::fmt::MakeWriter;

    #[test]
    fn log_is_rotated_once_at_the_cap() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("daemon.log");
        let saved = unsafe { libc::dup(2) };
        let log = CappedLog::open(path.clone(), 1000).unwrap();
        let line = [b'x'; 99];
        for _ in 0..100 {
            log.make_writer().write_all(&line).unwrap();
            log.make_writer().write_all(b"\n").unwrap();
        }
        // SAFETY: restores the test process's stderr saved above.
        unsafe {
            libc::dup2(saved, 2);
            libc::close(saved);
        }
        let now = std::fs::metadata(&path).unwrap().len();
        let old = std::fs::metadata(dir.path().join("daemon.log.1"))
            .unwrap()
            .len();
        assert!(now <= 1000 && old <= 1000, "{now} {old}");
        let files = std::fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(files, 2, "one old log is kept, no more");
    }

    #[test]
    fn throttle_lets_one_line_through_per_period_and_counts_the_rest() {
        let t0 = Instant::now();
        let mut t = Throttle::new(Duration::from_secs(10));
        assert_eq!(t.allow(t0), Some(0));
        for i in 1..1000 {
            assert_eq!(t.allow(t0 + Duration::from_millis(i)), None);
        }
        assert_eq!(t.allow(t0 + Duration::from_secs(10)), Some(999));
    }
}
