//! `cargo bench --bench throughput`: not a test, a measurement.
//!
//! (a) Throughput: `cat` of a 100 MB text file through a session to an
//!     attached client in a PTY, against the same `cat` straight into a PTY.
//!     The bench reads the PTY master as fast as it can until a marker line.
//!     Every byte goes through (`ABIDE_BENCH_STREAM_ONLY`: the daemon never
//!     sends the screen instead of a backlog). Two files: plain 80-column
//!     lines, and coloured 63-column lines like a build log's (each line goes
//!     through the terminal models' slow path). For reference, the same `cat`
//!     relayed by script(1): two PTYs and a bare relay, the floor of any
//!     design in which the program keeps a terminal of its own.
//! (b) Memory: the daemon's RSS (VmRSS) with no session, with one idle session
//!     holding 10 000 lines of scrollback, and with several (per-session cost).
//!
//! `ABIDE_BENCH_MB` changes the file size, `ABIDE_BENCH_CORPUS` (`plain`,
//! `coloured`) picks one file, `ABIDE_BENCH_RUNS` the number of
//! runs per throughput case (the median is reported), `ABIDE_BENCH_SESSIONS`
//! the session count of the memory slope.

#[path = "../tests/common/mod.rs"]
mod common;

use std::io::{Read, Write};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Rt, BIN};

const MARKER: &str = "@@abide-bench-end@@";
const ROWS: u16 = 24;
const COLS: u16 = 80;

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// What the file holds.
#[derive(Clone, Copy)]
enum Corpus {
    /// Printable 80-byte lines (79 characters + newline).
    Plain,
    /// Build-log lines with colours: bold green `Compiling`, a yellow `warning`.
    Coloured,
}

impl Corpus {
    fn describe(self) -> &'static str {
        match self {
            Corpus::Plain => "plain 80-column lines",
            Corpus::Coloured => "coloured 63-column build-log lines",
        }
    }

    fn write(self, path: &Path, bytes: u64) {
        match self {
            Corpus::Plain => write_plain(path, bytes),
            Corpus::Coloured => write_coloured(path, bytes),
        }
    }
}

fn write_coloured(path: &Path, bytes: u64) {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut written = 0u64;
    let mut i = 0u64;
    while written < bytes {
        let line = format!(
            "\x1b[1m\x1b[32m   Compiling\x1b[0m crate-{} v0.4.{} (/src/crate-{}) \x1b[33mwarning\x1b[0m: {}\n",
            i % 1000,
            i % 10,
            i % 1000,
            i % 100
        );
        f.write_all(line.as_bytes()).unwrap();
        written += line.len() as u64;
        i += 1;
    }
    f.flush().unwrap();
}

/// Printable 80-byte lines (79 characters + newline), like a build log.
fn write_plain(path: &Path, bytes: u64) {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let alphabet: Vec<u8> = (b' '..=b'~').collect();
    let mut written = 0u64;
    let mut i = 0u64;
    let mut line = Vec::with_capacity(80);
    while written < bytes {
        line.clear();
        write!(line, "{i:09} ").unwrap();
        while line.len() < 79 {
            line.push(alphabet[(i as usize * 7 + line.len()) % alphabet.len()]);
        }
        line.push(b'\n');
        f.write_all(&line).unwrap();
        written += line.len() as u64;
        i += 1;
    }
    f.flush().unwrap();
}

/// A shell script: say READY, wait for `go`, cat the file, print the marker.
fn cat_script(data: &Path, go: &Path) -> String {
    format!(
        "echo READY; while [ ! -e '{go}' ]; do sleep 0.005; done; cat '{data}'; echo '@@abide-bench''-end@@'",
        go = go.display(),
        data = data.display()
    )
}

struct Reader {
    pty: pty_process::blocking::Pty,
    buf: Vec<u8>,
    tail: Vec<u8>,
}

impl Reader {
    fn new(pty: pty_process::blocking::Pty) -> Reader {
        Reader {
            pty,
            buf: vec![0u8; 256 * 1024],
            tail: Vec::new(),
        }
    }

    /// Reads until `pat` shows up; returns the bytes read.
    fn until(&mut self, pat: &str, timeout: Duration) -> u64 {
        let re = regex::bytes::Regex::new(&regex::escape(pat)).unwrap();
        let deadline = Instant::now() + timeout;
        let mut total = 0u64;
        loop {
            if Instant::now() > deadline {
                panic!(
                    "no {pat:?} within {timeout:?}; last bytes: {}",
                    common::show(&self.tail)
                );
            }
            let n = match self.pty.read(&mut self.buf) {
                Ok(0) | Err(_) => panic!(
                    "the terminal closed before {pat:?}; last bytes: {}",
                    common::show(&self.tail)
                ),
                Ok(n) => n,
            };
            total += n as u64;
            // Search the new bytes plus the tail of the old ones (a marker
            // may straddle two reads).
            let keep = self.tail.len().min(pat.len());
            let mut window = self.tail[self.tail.len() - keep..].to_vec();
            window.extend_from_slice(&self.buf[..n]);
            let found = re.is_match(&window);
            // The last 4 KiB, for the message when the terminal closes early.
            self.tail.extend_from_slice(&self.buf[..n]);
            if self.tail.len() > 4096 {
                self.tail.drain(..self.tail.len() - 4096);
            }
            if found {
                return total;
            }
        }
    }
}

fn pty_spawn(cmd: Command) -> (Reader, std::process::Child) {
    let (pty, pts) = pty_process::blocking::open().unwrap();
    pty.resize(pty_process::Size::new(ROWS, COLS)).unwrap();
    let child = pty_process::blocking::Command::from(cmd)
        .spawn(pts)
        .unwrap();
    (Reader::new(pty), child)
}

fn reap(mut child: std::process::Child) {
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGKILL,
    );
    let _ = child.wait();
}

/// Seconds for `cat` straight into a PTY.
fn direct_run(dir: &Path, data: &Path) -> f64 {
    let mut cmd = Command::new("sh");
    cmd.args(["-c", &cat_script(data, &dir.join("go-direct"))]);
    timed_run(cmd, &dir.join("go-direct"))
}

/// Seconds for `cat` in a PTY that script(1) relays to ours: two PTYs and a
/// process between them, as in a session, with no protocol at all. The
/// floor of any design whose program keeps a terminal of its own.
fn relay_run(dir: &Path, data: &Path) -> f64 {
    let mut cmd = Command::new("script");
    cmd.args([
        "-qfc",
        &cat_script(data, &dir.join("go-relay")),
        "/dev/null",
    ]);
    timed_run(cmd, &dir.join("go-relay"))
}

fn timed_run(cmd: Command, go: &Path) -> f64 {
    let _ = std::fs::remove_file(go);
    let (mut r, child) = pty_spawn(cmd);
    r.until("READY", Duration::from_secs(20));
    let t = Instant::now();
    std::fs::write(go, b"").unwrap();
    r.until(MARKER, Duration::from_secs(600));
    let secs = t.elapsed().as_secs_f64();
    reap(child);
    secs
}

/// Whether script(1) (util-linux) is there to measure the relay floor.
fn have_script() -> bool {
    Command::new("script")
        .arg("--version")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// CPU seconds (user + system) a process has used so far.
fn cpu_secs(pid: i32) -> f64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let Some((_, rest)) = s.rsplit_once(')') else {
        return 0.0;
    };
    // Fields after the command: state is field 3; utime and stime are 14 and 15.
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0)
        + f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    ticks as f64 / hz
}

/// One run through a session: wall seconds, and CPU seconds of the daemon and the client.
struct SessionRun {
    secs: f64,
    daemon_cpu: f64,
    client_cpu: f64,
    /// Bytes the client wrote to its terminal: less than the file when the
    /// daemon sent the terminal's state instead of a backlog (adaptive delivery).
    received: u64,
}

/// Seconds for the same `cat` in a session, shown by an attached client in a PTY.
fn session_run(rt: &Rt, n: u64, data: &Path) -> SessionRun {
    let go = rt.scratch().join(format!("go-{n}"));
    let name = format!("cat{n}");
    let script = cat_script(data, &go) + "; exec sleep 100000";
    let (mut r, child) = pty_spawn(rt.command(&["new", "-s", &name, "--", "sh", "-c", &script]));
    r.until("READY", Duration::from_secs(20));
    let daemon = rt.daemon_pid().expect("daemon.pid");
    let client = child.id() as i32;
    let (d0, c0) = (cpu_secs(daemon), cpu_secs(client));
    let t = Instant::now();
    std::fs::write(&go, b"").unwrap();
    let received = r.until(MARKER, Duration::from_secs(600));
    let secs = t.elapsed().as_secs_f64();
    let (d1, c1) = (cpu_secs(daemon), cpu_secs(client));
    reap(child);
    let _ = rt.run(&["kill", &name]);
    SessionRun {
        secs,
        daemon_cpu: d1 - d0,
        client_cpu: c1 - c0,
        received,
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn mb(bytes: f64) -> String {
    format!("{:.1} MB/s", bytes / 1e6)
}

fn vm_rss_kib(pid: i32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/PID/status")
}

/// Starts an idle session that has printed `lines` 80-column lines, and waits
/// until the daemon has taken them all in.
fn idle_session(rt: &Rt, name: &str, lines: u64) {
    let done = rt.scratch().join(format!("done-{name}"));
    let script = format!(
        "i=0; while [ $i -lt {lines} ]; do i=$((i+1)); printf 'scrollback line %06d %s\\n' $i \
         'the quick brown fox jumps over the lazy dog, 0123456789 ABCDEF'; done; \
         touch '{}'; exec sleep 100000",
        done.display()
    );
    rt.ok(&["new", "-d", "-s", name, "--", "sh", "-c", &script]);
    common::eventually(
        &format!("session {name} printed"),
        Duration::from_secs(120),
        || done.exists().then_some(()),
    );
    // Wait until the daemon's log stops growing.
    let mut last = 0;
    common::eventually("output settled", Duration::from_secs(60), || {
        std::thread::sleep(Duration::from_millis(200));
        let v = rt.ls_json();
        let bytes = v
            .as_array()?
            .iter()
            .find(|s| s["name"] == name)?
            .get("output_bytes")?
            .as_u64()?;
        let settled = bytes == last && bytes > 0;
        last = bytes;
        settled.then_some(())
    });
}

fn settle_rss(pid: i32) -> u64 {
    std::thread::sleep(Duration::from_millis(500));
    vm_rss_kib(pid)
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --all-targets` does not, and a
    // test run must not spend minutes on a benchmark.
    if !std::env::args().any(|a| a == "--bench") {
        println!("throughput benchmark: run it with `cargo bench --bench throughput`");
        return;
    }
    let size_mb = env_num("ABIDE_BENCH_MB", 100);
    let runs = env_num("ABIDE_BENCH_RUNS", 3).max(1);
    let sessions = env_num("ABIDE_BENCH_SESSIONS", 5).max(1);
    println!("abide benchmark ({BIN})");

    // ---- throughput ----
    // Every byte goes through: with adaptive delivery on, a client that
    // falls behind gets the screen instead of the backlog and finishes
    // sooner, which would measure less than the pipeline.
    // And the log holds the whole file: a client that falls a whole ring
    // behind would get a snapshot and skip the rest of the way.
    let ring = (2 * size_mb * 1_000_000).to_string();
    let rt = Rt::with_env(&[
        ("ABIDE_BENCH_STREAM_ONLY", "1"),
        ("ABIDE_RING_BYTES", ring.as_str()),
    ]);
    let corpora = match std::env::var("ABIDE_BENCH_CORPUS").as_deref() {
        Ok("plain") => vec![Corpus::Plain],
        Ok("coloured") => vec![Corpus::Coloured],
        _ => vec![Corpus::Plain, Corpus::Coloured],
    };
    let mut n = 0;
    for corpus in corpora {
        throughput(&rt, corpus, size_mb, runs, &mut n);
    }
    drop(rt);

    // ---- memory ----
    let lines = 10_000;
    let rt = Rt::new();
    // A daemon with no session (it waits 30 s for its first one).
    std::fs::create_dir_all(rt.runtime_dir()).unwrap();
    // The daemon refuses a runtime directory others can reach.
    std::fs::set_permissions(
        rt.runtime_dir(),
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    let log = std::fs::File::create(rt.runtime_dir().join("daemon.log")).unwrap();
    let st = rt
        .command(&["server", "--daemon"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .status()
        .unwrap();
    assert!(st.success());
    let pid = common::eventually("daemon.pid", Duration::from_secs(10), || rt.daemon_pid());
    let rss0 = settle_rss(pid);
    idle_session(&rt, "idle0", lines + ROWS as u64);
    let rss1 = settle_rss(pid);
    for i in 1..sessions {
        idle_session(&rt, &format!("idle{i}"), lines + ROWS as u64);
    }
    let rss_n = settle_rss(pid);
    let v = rt.ls_json();
    assert_eq!(v.as_array().unwrap().len() as u64, sessions);
    let out_bytes = v[0]["output_bytes"].as_u64().unwrap_or(0);
    println!();
    println!("memory: daemon VmRSS, idle sessions of {lines} lines of 80 columns ({out_bytes} bytes of output each)");
    println!("  no session:           {:>8} KiB", rss0);
    println!(
        "  1 idle session:       {:>8} KiB   (+{:.2} MB)",
        rss1,
        (rss1 as f64 - rss0 as f64) * 1024.0 / 1e6
    );
    let per = (rss_n as f64 - rss0 as f64) / sessions as f64;
    println!(
        "  {sessions} idle sessions:      {:>8} KiB   ({:.2} MB per session; target <= 8 MB)",
        rss_n,
        per * 1024.0 / 1e6
    );
    drop(rt);
}

/// Measures one corpus: direct and through a session, runs interleaved.
fn throughput(rt: &Rt, corpus: Corpus, size_mb: u64, runs: u64, n: &mut u64) {
    let data = rt.scratch().join("data.txt");
    let bytes = size_mb * 1_000_000;
    corpus.write(&data, bytes);
    // Warm the page cache.
    let _ = std::fs::read(&data).unwrap();
    let mut direct = Vec::new();
    let mut relay = Vec::new();
    let mut session = Vec::new();
    let relay_too = have_script();
    for _ in 0..runs {
        direct.push(direct_run(rt.scratch(), &data));
        if relay_too {
            relay.push(relay_run(rt.scratch(), &data));
        }
        session.push(session_run(rt, *n, &data));
        *n += 1;
    }
    let d = bytes as f64 / median(direct.clone());
    let session_secs: Vec<f64> = session.iter().map(|r| r.secs).collect();
    let s = bytes as f64 / median(session_secs.clone());
    let fmt = |v: &[f64]| {
        v.iter()
            .map(|t| format!("{t:.2}s"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    println!();
    println!(
        "throughput: cat of {size_mb} MB of {} ({ROWS}x{COLS} PTYs), median of {runs}",
        corpus.describe()
    );
    println!(
        "  direct to a PTY:             {:>12}   ({})",
        mb(d),
        fmt(&direct)
    );
    if relay_too {
        let r = bytes as f64 / median(relay.clone());
        println!(
            "  relayed by script(1):        {:>12}   ({}; {:.0} % of direct: two PTYs' floor)",
            mb(r),
            fmt(&relay),
            100.0 * r / d
        );
    }
    println!(
        "  through a session + client:  {:>12}   ({})",
        mb(s),
        fmt(&session_secs)
    );
    println!(
        "  ratio:                       {:>11.0} %   (target >= 70 %)",
        100.0 * s / d
    );
    let received: Vec<f64> = session.iter().map(|r| r.received as f64).collect();
    println!(
        "  client terminal received:    {:>9.1} MB    ({:.0} % of the file; less: the client fell a whole ring behind)",
        median(received.clone()) / 1e6,
        100.0 * median(received) / bytes as f64
    );
    let cpu = |f: fn(&SessionRun) -> f64| {
        let v: Vec<f64> = session.iter().map(f).collect();
        median(v)
    };
    println!(
        "  CPU per run through a session (median): daemon {:.2} s, client {:.2} s \
         ({} cores, load average {})",
        cpu(|r| r.daemon_cpu),
        cpu(|r| r.client_cpu),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
}
