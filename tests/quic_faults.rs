//! Remote sessions over QUIC through the loopback fault proxy: blackhole,
//! loss, NAT rebind and roam. The daemon is the real binary; the client is the
//! real attach driver without a terminal, so the test sees every byte.
//!
//! Each test checks that the bytes the client received are exactly the bytes
//! the program wrote, and that a line typed during the fault reaches the
//! program once.

use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use abide::client::attach::{run_headless, ClientIo, Outcome};
use abide::client::remote::QuicConnector;
use abide::faultproxy::FaultProxy;
use abide::proto::frame::{Target, WinSize};
use abide::server::bootstrap::ConnectLine;
use tokio::sync::mpsc;

const BIN: &str = env!("CARGO_BIN_EXE_abide");
const LINES: u32 = 150;

/// A daemon in its own runtime directory, stopped (by PID) when dropped.
struct Daemon {
    dir: tempfile::TempDir,
}

impl Daemon {
    fn new() -> Daemon {
        Daemon {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    fn rt(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    fn cmd(&self) -> Command {
        let mut c = Command::new(BIN);
        c.env("ABIDE_RUNTIME_DIR", self.rt());
        c
    }

    /// `abide server --bootstrap -- PROGRAM`, as ssh would run it remotely.
    fn bootstrap(&self, program: &str) -> ConnectLine {
        let out = self
            .cmd()
            .args([
                "server",
                "--bootstrap",
                "--udp-ports",
                "0",
                "--",
                "sh",
                "-c",
                program,
            ])
            .output()
            .expect("run bootstrap");
        assert!(
            out.status.success(),
            "bootstrap failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        ConnectLine::find(&String::from_utf8_lossy(&out.stdout))
            .expect("connect line")
            .expect("parse")
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.cmd().arg("kill-server").output();
        if let Ok(pid) = std::fs::read_to_string(self.rt().join("daemon.pid")) {
            if let Ok(pid) = pid.trim().parse::<i32>() {
                std::thread::sleep(Duration::from_millis(200));
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
    }
}

/// Prints LINE 1..N every 20 ms; echoes each input line as GOT:<line>; exits
/// after the loop once it has read "end".
fn program() -> String {
    format!(
        "stty -echo; exec 3<&0; (while IFS= read -r l <&3; do echo \"GOT:$l\"; [ \"$l\" = end ] && break; done) & \
         i=0; while [ $i -lt {LINES} ]; do i=$((i+1)); echo \"LINE $i\"; sleep 0.02; done; wait"
    )
}

struct Client {
    output: Arc<Mutex<Vec<u8>>>,
    input: mpsc::Sender<Vec<u8>>,
    task: tokio::task::JoinHandle<anyhow::Result<Outcome>>,
}

fn start_client(line: &ConnectLine, via: std::net::SocketAddr) -> Client {
    let target = abide::transport::quic::Target {
        addr: via,
        fingerprint: line.fingerprint.clone(),
        grant_id: line.grant_id,
        secret: line.secret,
    };
    let output = Arc::new(Mutex::new(Vec::new()));
    let sink = output.clone();
    let (input, rx) = mpsc::channel(16);
    let io = ClientIo {
        input: rx,
        output: Box::new(move |b: &[u8]| {
            sink.lock().unwrap().extend_from_slice(b);
            Ok(())
        }),
        size: WinSize { rows: 24, cols: 80 },
        terminal: false,
        notices: None,
        tap: None,
    };
    let conn = Arc::new(QuicConnector { target });
    let task = tokio::spawn(run_headless(conn, Target::Id(line.session_id), io));
    Client {
        output,
        input,
        task,
    }
}

impl Client {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.output.lock().unwrap()).into_owned()
    }

    async fn wait_for(&self, needle: &str, within: Duration) -> Duration {
        let start = Instant::now();
        while !self.text().contains(needle) {
            assert!(
                start.elapsed() < within,
                "no {needle:?} within {within:?}; got:\n{}",
                self.text()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        start.elapsed()
    }

    fn bytes_len(&self) -> usize {
        self.output.lock().unwrap().len()
    }

    async fn type_line(&self, s: &str) {
        self.input
            .send(format!("{s}\r").into_bytes())
            .await
            .unwrap();
    }
}

/// The output must be exactly the program's lines, in order, once each, with
/// the typed line echoed exactly once somewhere.
fn check_exact(out: &str, typed: &str) {
    let got_line = format!("GOT:{typed}\r\n");
    assert_eq!(
        out.matches(&got_line).count(),
        1,
        "typed line must arrive once:\n{out}"
    );
    let rest = out
        .replacen(&got_line, "", 1)
        .replacen("GOT:end\r\n", "", 1);
    let expected: String = (1..=LINES).map(|i| format!("LINE {i}\r\n")).collect();
    assert!(
        rest == expected,
        "output differs from what the program wrote:\n{rest}"
    );
}

/// Runs one fault scenario end to end.
async fn scenario(
    name: &str,
    fault: impl AsyncFnOnce(&FaultProxy),
    restore: impl FnOnce(&FaultProxy),
) {
    let daemon = Daemon::new();
    let line = daemon.bootstrap(&program());
    let server: std::net::SocketAddr = format!("127.0.0.1:{}", line.port).parse().unwrap();
    let proxy = FaultProxy::start(server).await.unwrap();
    let client = start_client(&line, proxy.addr());
    client
        .wait_for("LINE 20\r\n", Duration::from_secs(10))
        .await;

    fault(&proxy).await;
    let typed = format!("typed-during-{name}");
    client.type_line(&typed).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let before = client.bytes_len();
    let restored = Instant::now();
    restore(&proxy);
    while client.bytes_len() == before && restored.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    eprintln!(
        "{name}: output resumed {:?} after the path returned",
        restored.elapsed()
    );

    client
        .wait_for(&format!("LINE {LINES}\r\n"), Duration::from_secs(20))
        .await;
    client
        .wait_for(&format!("GOT:{typed}"), Duration::from_secs(5))
        .await;
    client.type_line("end").await;
    let outcome = tokio::time::timeout(Duration::from_secs(10), client.task)
        .await
        .expect("client ends")
        .unwrap();
    match outcome {
        Ok(Outcome::Exited { code, .. }) => assert_eq!(code, 0),
        Ok(_) => panic!("client ended without the program's exit"),
        Err(e) => panic!("client failed: {e:#}"),
    }
    check_exact(
        &String::from_utf8_lossy(&client.output.lock().unwrap()),
        &typed,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn survives_a_blackhole() {
    scenario(
        "blackhole",
        async |p| p.blackhole(true),
        |p| p.blackhole(false),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn survives_20_percent_loss() {
    scenario("loss", async |p| p.loss(20), |p| p.loss(0)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn survives_a_nat_rebind() {
    scenario("rebind", async |p| p.rebind().await.unwrap(), |_| {}).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn survives_a_roam() {
    scenario("roam", async |p| p.roam(), |_| {}).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_fingerprint_is_refused() {
    let daemon = Daemon::new();
    let mut line = daemon.bootstrap("sleep 30");
    line.fingerprint = "00".repeat(32);
    let server = format!("127.0.0.1:{}", line.port).parse().unwrap();
    let client = start_client(&line, server);
    let err = tokio::time::timeout(Duration::from_secs(10), client.task)
        .await
        .unwrap()
        .unwrap();
    let msg = format!("{:#}", err.err().expect("must fail"));
    assert!(msg.contains("fingerprint mismatch"), "{msg}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_secret_is_refused() {
    let daemon = Daemon::new();
    let mut line = daemon.bootstrap("sleep 30");
    line.secret[0] ^= 1;
    let server = format!("127.0.0.1:{}", line.port).parse().unwrap();
    let client = start_client(&line, server);
    let err = tokio::time::timeout(Duration::from_secs(10), client.task)
        .await
        .unwrap()
        .unwrap();
    let msg = format!("{:#}", err.err().expect("must fail"));
    assert!(msg.contains("authentication failed"), "{msg}");
}
