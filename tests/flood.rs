//! Never behind: a program that prints faster than the link (or the client's
//! terminal) carries must not keep Ctrl-C and a command's output waiting
//! behind seconds of stale output, and no line it printed may vanish
//! unaccounted for.
//!
//! Remote sessions over QUIC through the fault proxy's bottleneck (2 Mbit/s,
//! 100 ms round trip), or over a fast path to a client whose terminal reads
//! slowly. Wall-clock figures are printed; the bounds asserted are generous
//! (this runs on a loaded machine) but far below what the byte stream alone
//! takes (3-4 s on the slow link, 6 s and more for the slow terminal). The
//! exact bounds are asserted in simulated time in `abide_proto::server`.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use abide::client::attach::{run_headless, ClientIo, Outcome};
use abide::client::remote::QuicConnector;
use abide::faultproxy::FaultProxy;
use abide::proto::frame::{Target, WinSize};
use common::remote::{bootstrap, quic_target};
use common::Rt;
use tokio::sync::mpsc;

const SHELL: &str = "PS1='$ ' exec sh -i";

struct Client {
    output: Arc<Mutex<Vec<u8>>>,
    input: mpsc::Sender<Vec<u8>>,
    task: tokio::task::JoinHandle<anyhow::Result<Outcome>>,
}

impl Client {
    /// `read_rate`: the client's terminal takes this many bytes/s at most.
    fn start(
        proxy: &FaultProxy,
        line: &abide::server::bootstrap::ConnectLine,
        read_rate: Option<f64>,
    ) -> Client {
        let output = Arc::new(Mutex::new(Vec::new()));
        let sink = output.clone();
        let (input, rx) = mpsc::channel(16);
        let io = ClientIo {
            input: rx,
            output: Box::new(move |b: &[u8]| {
                if let Some(rate) = read_rate {
                    // A terminal that reads slowly: the write blocks.
                    std::thread::sleep(Duration::from_secs_f64(b.len() as f64 / rate));
                }
                sink.lock().unwrap().extend_from_slice(b);
                Ok(())
            }),
            size: WinSize { rows: 24, cols: 80 },
            terminal: false,
            notices: None,
            tap: None,
        };
        let conn = Arc::new(QuicConnector {
            target: quic_target(line, proxy.addr()),
        });
        let task = tokio::spawn(run_headless(conn, Target::Id(line.session_id), io));
        Client {
            output,
            input,
            task,
        }
    }

    fn len(&self) -> usize {
        self.output.lock().unwrap().len()
    }

    fn contains_after(&self, from: usize, needle: &[u8]) -> bool {
        let out = self.output.lock().unwrap();
        out[from.min(out.len())..]
            .windows(needle.len())
            .any(|w| w == needle)
    }

    async fn wait_for(&self, from: usize, needle: &str, within: Duration) -> Duration {
        let start = Instant::now();
        while !self.contains_after(from, needle.as_bytes()) {
            assert!(start.elapsed() < within, "no {needle:?} within {within:?}");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        start.elapsed()
    }

    async fn send(&self, s: &str) {
        self.input.send(s.as_bytes().to_vec()).await.unwrap();
    }

    async fn exit(self) {
        self.send("exit\r").await;
        let outcome = tokio::time::timeout(Duration::from_secs(20), self.task)
            .await
            .expect("client ends")
            .unwrap();
        match outcome {
            Ok(Outcome::Exited { .. }) => {}
            Ok(_) => panic!("client ended without the program's exit"),
            Err(e) => panic!("client failed: {e:#}"),
        }
    }
}

/// What the daemon's channel measured (bandwidth, round trip, states sent).
fn print_channel_figures(rt: &Rt) {
    let log = std::fs::read_to_string(rt.runtime_dir().join("daemon.log")).unwrap_or_default();
    // To study a run: ABIDE_LOG=abide::server::channel=trace and a place to keep the log.
    if let Some(keep) = std::env::var_os("ABIDE_TEST_KEEP_DAEMON_LOG") {
        std::fs::write(keep, &log).unwrap();
    }
    for l in log
        .lines()
        .filter(|l| l.contains("channel ended") || l.contains("client behind"))
    {
        eprintln!("  daemon: {l}");
    }
}

/// The wall-clock bound: far below the 3-4.5 s (slow link) and 6 s+ (slow
/// terminal) of the byte stream in release; debug builds on a loaded machine
/// parse and encrypt several times slower.
fn bound() -> Duration {
    Duration::from_secs(if cfg!(debug_assertions) { 5 } else { 2 })
}

/// The floods of this file run one at a time: two of them at once on two
/// cores measure the CPU, not the delivery. Held across awaits on purpose:
/// each test has its own runtime, so the guard blocks only other tests.
static ONE_FLOOD: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// During `seq 1 100000000`: Ctrl-C, then 0.2 s later a command. Returns how
/// long after the Ctrl-C the command's output showed.
#[allow(clippy::await_holding_lock)]
async fn ctrl_c_during_a_flood(
    shape: Option<u64>,
    one_way: Duration,
    read_rate: Option<f64>,
) -> Duration {
    let _one = ONE_FLOOD.lock().unwrap_or_else(|e| e.into_inner());
    let rt = Rt::new();
    let line = bootstrap(&rt, SHELL);
    let server = format!("127.0.0.1:{}", line.port).parse().unwrap();
    let proxy = FaultProxy::start(server).await.unwrap();
    proxy.shape(shape, one_way);
    let client = Client::start(&proxy, &line, read_rate);
    client.wait_for(0, "$ ", Duration::from_secs(10)).await;
    client.send("seq 1 100000000\r").await;
    // Let the flood run and the backlog build.
    let start = client.len();
    let t = Instant::now();
    while client.len() < start + 100_000 && t.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mark = client.len();
    let ctrl_c = Instant::now();
    client.send("\x03").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    // The output, not the echo of the command line: 42 only appears evaluated.
    client.send("echo MARK$((40+2))\r").await;
    client
        .wait_for(mark, "MARK42", Duration::from_secs(30))
        .await;
    let took = ctrl_c.elapsed();
    let c = proxy.counters();
    eprintln!(
        "  proxy: {} packets up, {} down, {} dropped",
        c.up.load(std::sync::atomic::Ordering::Relaxed),
        c.down.load(std::sync::atomic::Ordering::Relaxed),
        c.dropped.load(std::sync::atomic::Ordering::Relaxed)
    );
    client.exit().await;
    print_channel_figures(&rt);
    took
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_answers_during_a_flood_on_a_slow_link() {
    let took = ctrl_c_during_a_flood(Some(2_000_000), Duration::from_millis(50), None).await;
    eprintln!(
        "2 Mbit/s, 100 ms RTT: the command after Ctrl-C showed {took:?} after it (target 0.4 s)"
    );
    // The byte stream alone played 3-4.5 s of backlog first.
    assert!(took < bound(), "{took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_answers_during_a_flood_to_a_slowly_reading_terminal() {
    let took = ctrl_c_during_a_flood(None, Duration::ZERO, Some(2e6)).await;
    eprintln!("fast link, terminal reading 2 MB/s: the command after Ctrl-C showed {took:?} after it (target 0.3 s)");
    // The byte stream alone played up to 12 MB (6 s at 2 MB/s) first.
    assert!(took < bound(), "{took:?}");
}

/// Typing into a program that redraws the whole screen 20 times a second,
/// over 2 Mbit/s and 100 ms round trip: each key must show on the client's
/// screen within 2 RTT + 50 ms. Returns each key's delay, and how many
/// bytes of output reached the client between the key and its echo.
#[allow(clippy::await_holding_lock)]
async fn typing_into_a_redraw() -> Vec<(Duration, usize)> {
    let _one = ONE_FLOOD.lock().unwrap_or_else(|e| e.into_inner());
    let rt = Rt::new();
    let script = rt.scratch().join("redraw.py");
    std::fs::write(&script, common::redraw::REDRAW).unwrap();
    let line = bootstrap(&rt, &format!("exec python3 {}", script.display()));
    let server = format!("127.0.0.1:{}", line.port).parse().unwrap();
    let proxy = FaultProxy::start(server).await.unwrap();
    proxy.shape(Some(2_000_000), Duration::from_millis(50));
    let client = Client::start(&proxy, &line, None);
    // The redraw runs (and a byte stream alone would fall further behind
    // every second: 260 KB/s into 250 KB/s).
    let t = Instant::now();
    let typist = common::redraw::Typist {
        output: &client.output,
        input: &client.input,
    };
    let took = typist
        .type_into_redraw(Duration::from_secs(5), "abcdefghijkl")
        .await;
    eprintln!(
        "  received {} KB in {:.1} s",
        client.len() / 1000,
        t.elapsed().as_secs_f64()
    );
    client.send("\x03").await;
    let _ = tokio::time::timeout(Duration::from_secs(20), client.task).await;
    print_channel_figures(&rt);
    took
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_show_within_two_round_trips_during_a_20_fps_redraw() {
    let keys = typing_into_a_redraw().await;
    let target = Duration::from_millis(2 * 100 + 50);
    let mut took: Vec<Duration> = keys.iter().map(|k| k.0).collect();
    let ahead: Vec<usize> = keys.iter().map(|k| k.1).collect();
    eprintln!("2 Mbit/s, 100 ms RTT, 20 fps redraw: key to screen {took:?} (target {target:?})");
    eprintln!("  output bytes received between each key and its echo: {ahead:?}");
    took.sort();
    let (p50, max) = (took[took.len() / 2], took[took.len() - 1]);
    eprintln!("  p50 {p50:?}, max {max:?}");
    // The target is printed (release, idle machine: p50 0.18-0.19 s, max
    // 0.19-0.23 s); the core asserts it in simulated time. Here the
    // assertion is a regression bound on the median, generous for a loaded
    // machine and debug builds, but below the byte stream's, which the
    // link's rate sets, not the CPU: it grows with the backlog, to a 1.1 s
    // median and 1.7 s at the end after 3 s of redraw (we wait 5 s).
    let bound = Duration::from_secs(1);
    assert!(p50 <= bound, "median key {p50:?}, bound {bound:?}");
}

/// Every line `seq` printed is in the client's scrollback once, in order,
/// or counted by a marker line that names `abide history`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(clippy::await_holding_lock)]
async fn every_line_is_shown_or_counted_by_the_marker() {
    const N: u64 = 300_000;
    let _one = ONE_FLOOD.lock().unwrap_or_else(|e| e.into_inner());
    let rt = Rt::new();
    // Starts once the client is there and stays: a client reconnecting after
    // the program ended would be told the session ended, its tail unseen
    // (exited sessions are not kept for late clients yet).
    let line = bootstrap(
        &rt,
        &format!("stty -echo; read go; seq 1 {N}; echo DONE; sleep 100"),
    );
    let server = format!("127.0.0.1:{}", line.port).parse().unwrap();
    let proxy = FaultProxy::start(server).await.unwrap();
    proxy.shape(Some(2_000_000), Duration::from_millis(50));
    let client = Client::start(&proxy, &line, None);
    client.send("go\r").await;
    client.wait_for(0, "DONE", Duration::from_secs(60)).await;
    // The rest of the frame that carried DONE (cursor, modes).
    tokio::time::sleep(Duration::from_millis(300)).await;
    client.task.abort();
    let out = client.output.lock().unwrap().clone();
    let mut viewer = common::screen_of(&out, 24, 80, 1_000_000);
    let mut rows = common::scrollback_rows(&mut viewer);
    rows.extend(common::screen_rows(&viewer));
    let marker = regex::Regex::new(r"^abide: (\d+) earlier lines not shown").unwrap();
    let mut expect = 1u64;
    let (mut shown, mut markers, mut counted, mut off_by) = (0u64, 0u64, 0u64, 0u64);
    for r in &rows {
        if let Some(c) = marker.captures(r) {
            let n: u64 = c[1].parse().unwrap();
            markers += 1;
            counted += n;
            expect += n;
            continue;
        }
        let Ok(v) = r.parse::<u64>() else { continue };
        // Counts of rows that also left the daemon's history are estimates
        // (to 64 rows); everything else is exact.
        off_by += v.abs_diff(expect);
        assert!(v.abs_diff(expect) <= 64, "row {v}, expected {expect}");
        shown += 1;
        expect = v + 1;
    }
    eprintln!(
        "seq 1 {N} over 2 Mbit/s: {shown} lines shown, {counted} counted by {markers} markers, \
         {off_by} rows of estimate error, {} bytes received",
        out.len()
    );
    assert_eq!(expect, N + 1, "the last line is shown");
    assert!(rows.iter().any(|r| r == "DONE"));
    assert!(markers > 0, "a flood on a slow link is summarised");
}

/// `abide history NAME [--tail N]` prints the rows that scrolled off, in order.
#[test]
fn history_prints_the_rows_that_scrolled_off() {
    let rt = Rt::new();
    rt.ok(&[
        "new",
        "-d",
        "-s",
        "h",
        "--",
        "sh",
        "-c",
        "seq 1 30000; echo END; sleep 1000",
    ]);
    let all = common::eventually("END logged", Duration::from_secs(20), || {
        let out = rt.run(&["history", "h"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        // 24 rows stay on the screen (29979..30000, END, the cursor row).
        text.contains("\n29978\x1b[0m\n").then_some(text)
    });
    let rows: Vec<u64> = all
        .lines()
        .filter_map(|l| l.trim_end_matches("\x1b[0m").parse().ok())
        .collect();
    // 10 000 rows of history are kept (the default).
    assert_eq!(rows.len(), 10_000);
    assert!(rows.windows(2).all(|w| w[1] == w[0] + 1));
    assert_eq!(*rows.last().unwrap(), 29_978);
    let tail = rt.ok(&["history", "h", "--tail", "3"]);
    assert_eq!(tail, "29976\x1b[0m\n29977\x1b[0m\n29978\x1b[0m\n");
    let missing = rt.run(&["history", "nope"]);
    assert!(!missing.status.success());
}
